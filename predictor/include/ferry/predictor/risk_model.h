// RiskModel: a trained failure-risk model as Ferry stores and uses it. One JSON file holds
// the feature set (schema + windows), the per-model normaliser, the score-to-probability
// calibration and XGBoost's own JSON model; scoring runs the in-process tree evaluator
// (no XGBoost call, no threads) and explains each score by its top feature contributions.
// This is the API the fleet agent uses: load(), then score(histories).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ferry/predictor/error.h"
#include "ferry/predictor/features.h"
#include "ferry/predictor/telemetry.h"
#include "ferry/predictor/tree_ensemble.h"

namespace ferry::predictor {

inline constexpr int kRiskModelFormatVersion = 1;

/// Logistic map from a raw score to P(fails within the horizon), fit on training days.
struct Calibration {
  double slope = 1.0;
  double intercept = 0.0;
  double probability(double score) const;
};

/// One feature's share of a score.
struct FeatureContribution {
  std::string feature;
  float value = 0.0f;         // the feature value (NaN = missing)
  float contribution = 0.0f;  // its additive share of the margin
};

struct RiskScore {
  std::string device_id;
  std::string host;
  std::string model;
  float score = 0.0f;        // ranking score (higher = fails sooner / more likely)
  double probability = 0.0;  // calibrated P(fails within horizon)
  bool known_model = true;   // false: model unseen in training, fleet-wide normalisation used
  std::vector<FeatureContribution> top_features;  // largest positive contributions first
};

/// Facts about how the model was trained, kept in the file for the model card.
struct TrainingInfo {
  std::string objective;
  int horizon = 7;
  int rounds = 0;
  int max_depth = 0;
  double eta = 0.0;
  int32_t train_first_day = 0;
  int32_t train_last_day = 0;
  std::size_t train_rows = 0;
  std::size_t train_positives = 0;
};

class RiskModel {
 public:
  RiskModel(FeatureSpec spec, ModelNormaliser norm, Calibration calib, TrainingInfo info,
            std::string xgboost_json, TreeEnsemble trees);

  /// Parses a model file's text. Errors: CorruptModel (bad JSON, missing field, bad trees),
  /// WrongFeatureSet (feature names differ from what this build computes for the spec).
  static PResult<RiskModel> from_json_text(std::string_view text);
  static PResult<RiskModel> load(const std::string& path);
  std::string to_json_text() const;
  PResult<void> save(const std::string& path) const;

  /// Scores each history at its latest sample. Errors: WrongFeatureSet (a history of
  /// another schema), EmptyHistory, NonFinite (an infinite reading); NaN = missing.
  /// An empty input gives an empty result.
  PResult<std::vector<RiskScore>> score(const std::vector<DeviceTelemetryHistory>& histories,
                                        std::size_t top_k = 3) const;
  /// Scores one feature row (feature_count(spec()) floats).
  float score_row(const float* features) const { return trees_.predict(features); }
  /// Top-k positive contributions for one feature row.
  std::vector<FeatureContribution> explain_row(const float* features, std::size_t top_k) const;
  /// Normalisation statistics for a device model.
  const std::vector<ChannelStats>& stats_for(const std::string& model, bool* known) const {
    return norm_.stats_for(model, known);
  }

  const FeatureSpec& spec() const { return spec_; }
  const Calibration& calibration() const { return calib_; }
  const TrainingInfo& info() const { return info_; }
  const TreeEnsemble& trees() const { return trees_; }
  /// XGBoost's own JSON model (loadable with XGBoosterLoadModelFromBuffer).
  const std::string& xgboost_json() const { return xgboost_json_; }

 private:
  FeatureSpec spec_;
  ModelNormaliser norm_;
  Calibration calib_;
  TrainingInfo info_;
  std::string xgboost_json_;
  TreeEnsemble trees_;
};

}  // namespace ferry::predictor
