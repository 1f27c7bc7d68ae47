// Feature engineering: names, deltas, slopes, gaps, missing values, per-model
// normalisation and the no-look-ahead guarantee.
#include <gtest/gtest.h>

#include <cmath>

#include "ferry/predictor/features.h"

namespace ferry::predictor {
namespace {

FeatureSpec one_channel() {
  return FeatureSpec{TelemetrySchema{DeviceKind::Disk, {"a"}}, {1, 3, 7}};
}

DeviceTelemetryHistory linear(int days, float step) {
  DeviceTelemetryHistory h{"d", "h", "M", {}};
  for (int d = 0; d < days; ++d) {
    h.samples.push_back({d, {step * static_cast<float>(d)}});
  }
  return h;
}

std::vector<float> features_at(const DeviceTelemetryHistory& h, std::size_t i,
                               const FeatureSpec& spec = one_channel(),
                               std::vector<ChannelStats> norm = {{0.0f, 1.0f}}) {
  std::vector<float> out(feature_count(spec));
  compute_features(h, i, spec, norm, out.data());
  return out;
}

TEST(Features, NamesMatchCount) {
  FeatureSpec spec{disk_schema(), {1, 3, 7}};
  const auto names = feature_names(spec);
  EXPECT_EQ(names.size(), feature_count(spec));
  EXPECT_EQ(names.size(), 5u * 6u + 1u);
  EXPECT_EQ(names[0], "smart_1_raw");
  EXPECT_EQ(names[1], "smart_1_raw.z");
  EXPECT_EQ(names[4], "smart_1_raw.d7");
  EXPECT_EQ(names[5], "smart_1_raw.slope7");
  EXPECT_EQ(names.back(), "history_steps");
}

TEST(Features, DeltasAndSlopeOnALinearSeries) {
  const auto f = features_at(linear(10, 2.0f), 9);
  EXPECT_FLOAT_EQ(f[0], 18.0f);  // value
  EXPECT_FLOAT_EQ(f[2], 2.0f);   // d1
  EXPECT_FLOAT_EQ(f[3], 6.0f);   // d3
  EXPECT_FLOAT_EQ(f[4], 14.0f);  // d7
  EXPECT_NEAR(f[5], 2.0f, 1e-5);  // slope per step
  EXPECT_FLOAT_EQ(f[6], 7.0f);   // history capped at the longest window
}

TEST(Features, ShortHistoryAndGapsGiveMissing) {
  auto h = linear(2, 1.0f);
  auto f = features_at(h, 1);
  EXPECT_FLOAT_EQ(f[2], 1.0f);
  EXPECT_TRUE(std::isnan(f[3]));  // no sample 3 steps back
  EXPECT_TRUE(std::isnan(f[4]));
  EXPECT_FLOAT_EQ(f[6], 1.0f);
  // Samples at days 0 and 5: a window may stretch to twice its length, so d3 at day 5 may
  // use day 0 (>= day -1) but d1 may look back to day 3 at most and is missing.
  DeviceTelemetryHistory g{"d", "h", "M", {{0, {1.0f}}, {5, {4.0f}}}};
  f = features_at(g, 1);
  EXPECT_TRUE(std::isnan(f[2]));
  EXPECT_FLOAT_EQ(f[3], 3.0f);
}

TEST(Features, MissingValuesStayMissing) {
  auto h = linear(8, 1.0f);
  h.samples[7].values[0] = kMissing;
  h.samples[3].values[0] = kMissing;
  auto f = features_at(h, 7);
  EXPECT_TRUE(std::isnan(f[0]));
  EXPECT_TRUE(std::isnan(f[1]));
  EXPECT_TRUE(std::isnan(f[2]));
  EXPECT_NEAR(f[5], 1.0f, 1e-5);  // the slope skips missing points
}

TEST(Features, NoLookAhead) {
  auto h = linear(12, 3.0f);
  const auto before = features_at(h, 6);
  for (std::size_t i = 7; i < h.samples.size(); ++i) {
    h.samples[i].values[0] = 1e6f;
  }
  h.samples.push_back({40, {-5.0f}});
  const auto after = features_at(h, 6);
  for (std::size_t k = 0; k < before.size(); ++k) {
    EXPECT_TRUE(before[k] == after[k] || (std::isnan(before[k]) && std::isnan(after[k]))) << k;
  }
}

TEST(Features, PerModelNormalisationAndUnknownModelFallback) {
  Dataset ds;
  ds.schema = TelemetrySchema{DeviceKind::Disk, {"a"}};
  for (int i = 0; i < 30; ++i) {
    ds.devices.push_back({{"x" + std::to_string(i), "h", "Big", {{0, {100.0f + (i % 2) * 20}}}}, {}, ""});
    ds.devices.push_back({{"y" + std::to_string(i), "h", "Small", {{0, {1.0f + (i % 2) * 2}}}}, {}, ""});
  }
  ds.devices.push_back({{"z", "h", "Rare", {{0, {5.0f}}}}, {}, ""});
  auto norm = ModelNormaliser::fit(ds, 0, 0);
  EXPECT_EQ(norm.model_count(), 2u);  // "Rare" has too few devices
  bool known = false;
  EXPECT_FLOAT_EQ(norm.stats_for("Big", &known)[0].mean, 110.0f);
  EXPECT_TRUE(known);
  EXPECT_FLOAT_EQ(norm.stats_for("Small", &known)[0].scale, 1.0f);
  const auto& global = norm.stats_for("Never seen", &known);
  EXPECT_FALSE(known);
  EXPECT_NEAR(global[0].mean, (30 * 110.0 + 30 * 2.0 + 5.0) / 61.0, 1e-3);
  // The same raw value gets a different z-score per model.
  DeviceTelemetryHistory h{"d", "h", "Big", {{0, {120.0f}}}};
  EXPECT_FLOAT_EQ(features_at(h, 0, one_channel(), norm.stats_for("Big", nullptr))[1], 1.0f);
  // JSON round trip, and a wrong channel count is refused.
  auto back = ModelNormaliser::from_json(norm.to_json(), 1);
  ASSERT_TRUE(back);
  EXPECT_FLOAT_EQ(back->stats_for("Big", nullptr)[0].mean, 110.0f);
  EXPECT_FALSE(ModelNormaliser::from_json(norm.to_json(), 2));
}

TEST(Features, ValidateHistoryRejectsBadInput) {
  const auto schema = one_channel().schema;
  DeviceTelemetryHistory empty{"d", "h", "M", {}};
  EXPECT_EQ(validate_history(empty, schema).error().errc, PredictorErrc::EmptyHistory);
  DeviceTelemetryHistory wrong{"d", "h", "M", {{0, {1.0f, 2.0f}}}};
  EXPECT_EQ(validate_history(wrong, schema).error().errc, PredictorErrc::WrongFeatureSet);
  DeviceTelemetryHistory inf{"d", "h", "M", {{0, {INFINITY}}}};
  EXPECT_EQ(validate_history(inf, schema).error().errc, PredictorErrc::NonFinite);
  DeviceTelemetryHistory order{"d", "h", "M", {{1, {1.0f}}, {1, {1.0f}}}};
  EXPECT_EQ(validate_history(order, schema).error().errc, PredictorErrc::BadArgument);
  DeviceTelemetryHistory nan{"d", "h", "M", {{0, {kMissing}}}};
  EXPECT_TRUE(validate_history(nan, schema));
}

}  // namespace
}  // namespace ferry::predictor
