// In-process evaluator of XGBoost gradient-boosted trees read from XGBoost's own JSON model
// format (1.7 schema: learner.gradient_booster.model.trees[*]). It reproduces XGBoost's
// arithmetic (float accumulation from base_score, `x < split` goes left, NaN takes the
// default branch) so scores match XGBoosterPredictFromDMatrix; tests check this.
// It also gives per-feature contributions (Saabas path attribution, as XGBoost's
// approx_contribs) to explain why a device ranks high.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ferry/predictor/error.h"

namespace ferry::predictor {

class TreeEnsemble {
 public:
  /// Parses an XGBoost JSON model (the whole document with "learner"). Rejects trees that
  /// reference features >= num_features, bad child indices, cycles and unknown objectives.
  static PResult<TreeEnsemble> from_xgboost_json(const nlohmann::json& doc,
                                                 std::size_t num_features);

  /// Raw margin: base margin plus the sum of one leaf per tree.
  float predict_margin(const float* x) const;
  /// What XGBoost's predict returns: margin, or sigmoid(margin) for binary:logistic.
  float predict(const float* x) const;
  /// Adds each feature's contribution to the margin into out[0..num_features-1] and the
  /// bias into out[num_features]; the total equals predict_margin(x).
  void contributions(const float* x, float* out) const;

  const std::string& objective() const { return objective_; }
  std::size_t tree_count() const { return roots_.size(); }
  std::size_t num_features() const { return num_features_; }

 private:
  struct Node {
    int32_t left = -1;   // -1 for a leaf
    int32_t right = -1;
    uint32_t feature = 0;
    float split = 0.0f;  // threshold, or the leaf value for a leaf
    bool default_left = false;
    float mean = 0.0f;   // cover-weighted mean of the leaves below (for contributions)
  };
  std::size_t leaf_of(std::size_t root, const float* x) const;
  PResult<void> add_tree(const nlohmann::json& tree);  // may throw json exceptions
  PResult<void> fill_means(std::size_t offset, const std::vector<double>& hess);

  std::vector<Node> nodes_;          // all trees, concatenated
  std::vector<std::size_t> roots_;   // index of each tree's root in nodes_
  std::string objective_;
  float base_margin_ = 0.0f;
  std::size_t num_features_ = 0;
};

}  // namespace ferry::predictor
