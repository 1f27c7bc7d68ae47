// Metrics on hand-made evaluation rows with known answers, including tied scores.
#include <gtest/gtest.h>

#include <cmath>

#include "ferry/predictor/evaluate.h"

namespace ferry::predictor {
namespace {

// Two days, four devices; device 0 fails on day 11 (positive on both days, horizon 7),
// device 1 fails on day 30 (outside the horizon: negative).
FeatureMatrix two_days() {
  FeatureMatrix m;
  m.cols = 1;
  m.group_sizes = {4, 4};
  for (int day : {10, 11}) {
    for (uint32_t dev = 0; dev < 4; ++dev) {
      m.x.push_back(0.0f);
      m.row_day.push_back(day);
      m.row_device.push_back(dev);
      const int32_t dtf = dev == 0 ? 11 - day : dev == 1 ? 30 - day : -1;
      m.days_to_failure.push_back(dtf);
      m.label.push_back(dtf >= 0 && dtf < 7 ? 1.0f : 0.0f);
    }
  }
  return m;
}

TEST(Evaluate, PerfectRankingAndChosenN) {
  const auto m = two_days();
  const std::vector<float> scores{0.9f, 0.5f, 0.1f, 0.2f, 0.9f, 0.5f, 0.1f, 0.2f};
  // Flag device 0 on day 10 only and device 1 on day 11.
  const std::vector<uint8_t> flags{1, 0, 0, 0, 0, 1, 0, 0};
  EvalOptions o;
  o.false_evacuation_rates = {0.0, 0.2};
  const auto r = evaluate_method("m", m, scores, flags, o);
  EXPECT_DOUBLE_EQ(r.flags_per_day, 1.0);
  EXPECT_DOUBLE_EQ(r.precision, 0.5);
  EXPECT_DOUBLE_EQ(r.recall, 0.5);
  EXPECT_EQ(r.failures, 1u);
  EXPECT_EQ(r.caught, 1u);
  EXPECT_DOUBLE_EQ(r.mean_lead_days, 1.0);  // flagged 1 day before failing
  EXPECT_DOUBLE_EQ(r.ndcg, 1.0);
  EXPECT_DOUBLE_EQ(r.recall_at_fer[0], 1.0);  // both positives rank first: no false flag
  EXPECT_DOUBLE_EQ(r.failures_at_fer[0], 1.0);
  EXPECT_DOUBLE_EQ(r.caught_curve[0].y, 1.0);  // top-1 per day catches it
}

TEST(Evaluate, TiesAreNeverBrokenInTheMethodsFavour) {
  const auto m = two_days();
  const std::vector<float> flat(8, 0.0f);  // a rule that scores everything the same
  EvalOptions o;
  o.false_evacuation_rates = {0.1};
  const auto r = evaluate_method("flat", m, flat, std::vector<uint8_t>(8, 0), o);
  // One positive among 4 tied rows: its gain gets the mean discount of ranks 1..4.
  const double mean_disc = (1 + 1 / std::log2(3.0) + 0.5 + 1 / std::log2(5.0)) / 4;
  EXPECT_NEAR(r.ndcg, mean_disc, 1e-12);
  EXPECT_DOUBLE_EQ(r.recall_at_fer[0], 0.0);  // the whole tie block has 6 false flags
  EXPECT_DOUBLE_EQ(r.caught_curve[0].y, 0.0);  // top-1 cannot take a block of 4
  EXPECT_EQ(r.caught, 0u);
  EXPECT_DOUBLE_EQ(r.precision, 0.0);
}

TEST(Evaluate, FlagByCostAndSmartRule) {
  auto m = two_days();
  const std::vector<double> p{0.5, 0.001, 0.02, 0.0, 0.009, 0.011, 0, 0};
  const auto flags = flag_by_cost(m, p, EvacuationCosts{});
  EXPECT_EQ(flags, (std::vector<uint8_t>{1, 0, 1, 0, 0, 1, 0, 0}));
  FeatureSpec spec{disk_schema(), {1, 3, 7}};
  FeatureMatrix s;
  s.cols = feature_count(spec);
  s.x.assign(2 * s.cols, 0.0f);
  s.label = {0, 1};
  s.x[6] = 3.0f;                 // smart_5_raw of row 0
  s.x[s.cols + 24] = kMissing;   // smart_197_raw of row 1 missing counts as 0
  s.x[s.cols + 6] = 0.0f;
  const auto rule = smart_rule_scores(s, spec);
  EXPECT_FLOAT_EQ(rule[0], 3.0f);
  EXPECT_FLOAT_EQ(rule[1], 0.0f);
}

TEST(Evaluate, TableListsEveryMethod) {
  const auto m = two_days();
  EvalOptions o;
  const auto a = evaluate_method("alpha", m, std::vector<float>(8, 1.0f), std::vector<uint8_t>(8, 0), o);
  const auto t = format_metrics_table({a}, o);
  EXPECT_NE(t.find("| alpha |"), std::string::npos);
  EXPECT_NE(t.find("FER 0.01%"), std::string::npos);
}

}  // namespace
}  // namespace ferry::predictor
