// Feature engineering over device histories: per channel the current value, a per-model
// z-score (makers and models report on different scales), deltas over several windows and
// a least-squares slope over the longest window. Features at sample i read samples[0..i]
// only, so no feature can look into the future. Missing inputs give NaN features, which
// the trees route down their learned default branch.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ferry/predictor/error.h"
#include "ferry/predictor/telemetry.h"

namespace ferry::predictor {

/// Which features a model uses: the telemetry schema and the delta windows (in time steps).
struct FeatureSpec {
  TelemetrySchema schema;
  std::vector<int> windows{1, 3, 7};

  bool operator==(const FeatureSpec&) const = default;
};

/// Number of features per row for `spec`.
std::size_t feature_count(const FeatureSpec& spec);
/// Feature names, e.g. "smart_5_raw", "smart_5_raw.z", "smart_5_raw.d3", "smart_5_raw.slope7".
std::vector<std::string> feature_names(const FeatureSpec& spec);

/// Mean and scale of one channel for one device model.
struct ChannelStats {
  float mean = 0.0f;
  float scale = 1.0f;
};

/// Per-model normalisation, fit on training days only. Models with too few devices, and
/// models never seen in training, fall back to the statistics of all devices.
class ModelNormaliser {
 public:
  /// Fits on samples with day in [first_day, last_day]; models with fewer than
  /// `min_devices` devices get no statistics of their own.
  static ModelNormaliser fit(const Dataset& data, int32_t first_day, int32_t last_day,
                             std::size_t min_devices = 20);
  /// Statistics for `model`; `known` tells whether the model had its own.
  const std::vector<ChannelStats>& stats_for(const std::string& model, bool* known) const;
  nlohmann::json to_json() const;
  static PResult<ModelNormaliser> from_json(const nlohmann::json& j, std::size_t channels);
  std::size_t model_count() const { return per_model_.size(); }

 private:
  std::map<std::string, std::vector<ChannelStats>> per_model_;
  std::vector<ChannelStats> global_;
};

/// Writes feature_count(spec) features of `history` at sample `index` into `out`, reading
/// samples[0..index] only. Precondition: every sample has schema.channels.size() values.
void compute_features(const DeviceTelemetryHistory& history, std::size_t index,
                      const FeatureSpec& spec, const std::vector<ChannelStats>& norm, float* out);

/// Checks a history against a schema: not empty, right value count, no infinities, days
/// strictly increasing. NaN values are allowed (they mean "not reported").
PResult<void> validate_history(const DeviceTelemetryHistory& history, const TelemetrySchema& schema);

}  // namespace ferry::predictor
