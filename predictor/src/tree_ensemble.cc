#include "ferry/predictor/tree_ensemble.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <type_traits>

namespace ferry::predictor {

namespace {

using nlohmann::json;

Unexpected<PredictorError> corrupt(std::string what) {
  return perr(PredictorErrc::CorruptModel, std::move(what));
}

// XGBoost stores numbers in some fields as strings ("5E-1").
PResult<double> number_of(const json& j, const char* what) {
  try {
    if (j.is_number()) {
      return j.get<double>();
    }
    if (j.is_string()) {
      return std::stod(j.get<std::string>());
    }
  } catch (const std::exception&) {
  }
  return corrupt(fmt::format("{} is not a number", what));
}

template <class T>
PResult<std::vector<T>> array_of(const json& tree, const char* key, std::size_t n) {
  if (!tree.contains(key) || !tree[key].is_array() || tree[key].size() != n) {
    return corrupt(fmt::format("tree field '{}' missing or not {} long", key, n));
  }
  std::vector<T> out;
  out.reserve(n);
  for (const auto& v : tree[key]) {
    if (!v.is_number()) {
      return corrupt(fmt::format("tree field '{}' holds a non-number", key));
    }
    // Range-check in double first: out-of-range float or integer conversions are undefined.
    const double d = v.get<double>();
    const bool ok = std::is_floating_point_v<T>
                        ? std::fabs(d) <= static_cast<double>(std::numeric_limits<float>::max())
                        : d >= static_cast<double>(std::numeric_limits<T>::lowest()) &&
                              d <= static_cast<double>(std::numeric_limits<T>::max()) &&
                              d == std::floor(d);
    if (!ok) {
      return corrupt(fmt::format("tree field '{}' holds an out-of-range value", key));
    }
    out.push_back(static_cast<T>(d));
  }
  return out;
}

}  // namespace

PResult<TreeEnsemble> TreeEnsemble::from_xgboost_json(const json& doc, std::size_t num_features) {
  TreeEnsemble ens;
  ens.num_features_ = num_features;
  try {
    const json& learner = doc.at("learner");
    ens.objective_ = learner.at("objective").at("name").get<std::string>();
    auto base = number_of(learner.at("learner_model_param").at("base_score"), "base_score");
    if (!base) {
      return fail(base.error());
    }
    const auto nf = number_of(learner.at("learner_model_param").at("num_feature"), "num_feature");
    if (!nf || !(*nf >= 0 && *nf < 1e9) || static_cast<std::size_t>(*nf) != num_features) {
      return perr(PredictorErrc::WrongFeatureSet,
                  fmt::format("XGBoost model has {} features, feature set has {}",
                              nf && *nf >= 0 && *nf < 1e9 ? static_cast<long>(*nf) : -1L,
                              num_features));
    }
    if (ens.objective_ == "binary:logistic") {
      if (*base <= 0 || *base >= 1) {
        return corrupt("binary:logistic base_score outside (0, 1)");
      }
      // cppcheck-suppress invalidFunctionArg ; base is in (0, 1) here, so 1/base - 1 > 0
      ens.base_margin_ = static_cast<float>(-std::log(1.0 / *base - 1.0));
    } else if (ens.objective_.starts_with("rank:") || ens.objective_ == "reg:squarederror") {
      ens.base_margin_ = static_cast<float>(*base);
    } else {
      return corrupt(fmt::format("unsupported objective '{}'", ens.objective_));
    }
    const json& model = learner.at("gradient_booster").at("model");
    if (learner.at("gradient_booster").at("name") != "gbtree") {
      return corrupt("only gbtree boosters are supported");
    }
    for (const json& tree : model.at("trees")) {
      if (auto ok = ens.add_tree(tree); !ok) {
        return fail(ok.error());
      }
    }
  } catch (const std::exception& e) {
    return corrupt(fmt::format("XGBoost model JSON: {}", e.what()));
  }
  return ens;
}

PResult<void> TreeEnsemble::add_tree(const json& tree) {
  const auto n = static_cast<std::size_t>(
      std::stoul(tree.at("tree_param").at("num_nodes").get<std::string>()));
  auto left = array_of<int32_t>(tree, "left_children", n);
  auto right = array_of<int32_t>(tree, "right_children", n);
  auto feat = array_of<uint32_t>(tree, "split_indices", n);
  auto cond = array_of<float>(tree, "split_conditions", n);
  auto defl = array_of<int>(tree, "default_left", n);
  auto hess = array_of<double>(tree, "sum_hessian", n);
  for (auto* e : {&left, &right}) {
    if (!*e) {
      return fail(e->error());
    }
  }
  if (!feat || !cond || !defl || !hess) {
    return fail(!feat ? feat.error() : !cond ? cond.error() : !defl ? defl.error() : hess.error());
  }
  if (n == 0) {
    return corrupt("tree without nodes");
  }
  const std::size_t offset = nodes_.size();
  roots_.push_back(offset);
  for (std::size_t i = 0; i < n; ++i) {
    Node node;
    const int32_t l = (*left)[i], r = (*right)[i];
    if (l != -1) {
      if (l < 0 || r < 0 || static_cast<std::size_t>(l) >= n || static_cast<std::size_t>(r) >= n) {
        return corrupt(fmt::format("tree {} node {}: bad child index", roots_.size() - 1, i));
      }
      if ((*feat)[i] >= num_features_) {
        return perr(PredictorErrc::WrongFeatureSet,
                    fmt::format("tree splits on feature {} of {}", (*feat)[i], num_features_));
      }
      node.left = static_cast<int32_t>(offset) + l;
      node.right = static_cast<int32_t>(offset) + r;
    }
    node.feature = (*feat)[i];
    node.split = (*cond)[i];
    node.default_left = (*defl)[i] != 0;
    nodes_.push_back(node);
  }
  return fill_means(offset, *hess);
}

PResult<void> TreeEnsemble::fill_means(std::size_t offset, const std::vector<double>& hess) {
  // Post-order walk from the root; every node may be reached once (no cycles, no sharing).
  const std::size_t n = nodes_.size() - offset;
  std::vector<uint8_t> state(n, 0);  // 0 unseen, 1 on stack, 2 done
  std::vector<std::size_t> stack{0};
  while (!stack.empty()) {
    const std::size_t i = stack.back();
    Node& node = nodes_[offset + i];
    if (node.left < 0) {
      node.mean = node.split;
      state[i] = 2;
      stack.pop_back();
      continue;
    }
    const std::size_t l = static_cast<std::size_t>(node.left) - offset;
    const std::size_t r = static_cast<std::size_t>(node.right) - offset;
    if (state[i] == 0) {
      state[i] = 1;
      for (std::size_t c : {l, r}) {
        if (state[c] != 0 || c == i) {
          return corrupt("tree has a cycle or a shared child");
        }
        stack.push_back(c);
      }
      continue;
    }
    const double hl = hess[l], hr = hess[r], h = hl + hr;
    const double ml = nodes_[offset + l].mean, mr = nodes_[offset + r].mean;
    node.mean = static_cast<float>(h > 0 ? (ml * hl + mr * hr) / h : 0.5 * (ml + mr));
    state[i] = 2;
    stack.pop_back();
  }
  return {};
}

std::size_t TreeEnsemble::leaf_of(std::size_t root, const float* x) const {
  std::size_t i = root;
  while (nodes_[i].left >= 0) {
    const Node& n = nodes_[i];
    const float v = x[n.feature];
    const bool go_left = std::isnan(v) ? n.default_left : v < n.split;
    i = static_cast<std::size_t>(go_left ? n.left : n.right);
  }
  return i;
}

float TreeEnsemble::predict_margin(const float* x) const {
  float sum = base_margin_;
  for (std::size_t root : roots_) {
    sum += nodes_[leaf_of(root, x)].split;
  }
  return sum;
}

float TreeEnsemble::predict(const float* x) const {
  const float m = predict_margin(x);
  return objective_ == "binary:logistic" ? 1.0f / (1.0f + std::exp(-m)) : m;
}

void TreeEnsemble::contributions(const float* x, float* out) const {
  out[num_features_] += base_margin_;
  for (std::size_t root : roots_) {
    std::size_t i = root;
    out[num_features_] += nodes_[i].mean;
    while (nodes_[i].left >= 0) {
      const Node& n = nodes_[i];
      const float v = x[n.feature];
      const bool go_left = std::isnan(v) ? n.default_left : v < n.split;
      const std::size_t next = static_cast<std::size_t>(go_left ? n.left : n.right);
      out[n.feature] += nodes_[next].mean - n.mean;
      i = next;
    }
  }
}

}  // namespace ferry::predictor
