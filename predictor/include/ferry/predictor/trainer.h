// Training: turns a labelled Dataset into feature matrices grouped by day (one query group
// per scoring round), labels each row "fails within `horizon` steps", and trains an
// XGBoost ranker (rank:pairwise / rank:ndcg) or, for the baseline, a binary classifier.
// Splits are by time only; training rows whose label window runs past the training range
// are dropped, so no label uses a failure after the training cut-off.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ferry/predictor/error.h"
#include "ferry/predictor/features.h"
#include "ferry/predictor/risk_model.h"
#include "ferry/predictor/telemetry.h"

namespace ferry::predictor {

/// Rows of one range of days, sorted by day; one group per day.
struct FeatureMatrix {
  std::size_t cols = 0;
  std::vector<float> x;                 // rows * cols, row-major
  std::vector<float> label;             // 1 = fails within the horizon
  std::vector<uint32_t> group_sizes;    // rows per day, in day order
  std::vector<int32_t> row_day;
  std::vector<uint32_t> row_device;     // index into Dataset::devices
  std::vector<int32_t> days_to_failure; // -1 = no failure observed
  std::size_t rows() const { return label.size(); }
  const float* row(std::size_t r) const { return x.data() + r * cols; }
};

/// Builds rows for every device sample with day in [first_day, last_day]. A row is positive
/// when the device's failure day f satisfies 0 <= f - day < horizon.
FeatureMatrix build_matrix(const Dataset& data, const FeatureSpec& spec,
                           const ModelNormaliser& norm, int32_t first_day, int32_t last_day,
                           int horizon);

struct TimeSplit {
  int32_t train_first = 0, train_last = 0;  // training days (labels end here too)
  int32_t eval_first = 0, eval_last = 0;    // held-out later days
};

/// First `train_days` days train, the rest evaluate.
PResult<TimeSplit> split_by_days(const Dataset& data, int train_days);

struct TrainParams {
  std::string objective = "rank:pairwise";  // or rank:ndcg, binary:logistic (baseline)
  int horizon = 7;
  int rounds = 80;
  int max_depth = 4;
  double eta = 0.1;
  double min_child_weight = 1.0;
  int nthread = 2;
  int seed = 0;
  std::vector<int> windows{1, 3, 7};
  // Further XGBoost parameters passed through unchanged (e.g. {"lambda", "10"}).
  std::vector<std::pair<std::string, std::string>> extra;
};

/// Trains on split.train_first .. split.train_last - horizon + 1 and returns the model with
/// its normaliser (fit on the training days) and a probability calibration.
PResult<RiskModel> train_risk_model(const Dataset& data, const TimeSplit& split,
                                    const TrainParams& params);

/// Fits P(label | score) = sigmoid(a * score + b) by Newton's method.
Calibration fit_calibration(const std::vector<float>& scores, const std::vector<float>& labels);

}  // namespace ferry::predictor
