// The cost/benefit optimiser: N follows the costs, hosts aggregate their devices,
// capacity caps the plan, and every decision carries its reasons.
#include <gtest/gtest.h>

#include "ferry/predictor/optimiser.h"

namespace ferry::predictor {
namespace {

RiskScore score(const std::string& dev, const std::string& host, double p,
                std::vector<FeatureContribution> why = {}) {
  RiskScore s;
  s.device_id = dev;
  s.host = host;
  s.score = static_cast<float>(p);
  s.probability = p;
  s.top_features = std::move(why);
  return s;
}

TEST(Optimiser, EvacuatesWhenExpectedLossExceedsMigrationCost) {
  EvacuationCosts c;  // interruption 100, migration 1: break-even at p = 1 %
  const auto plan = choose_evacuations({score("a", "h1", 0.02), score("b", "h2", 0.005)}, {}, c);
  ASSERT_EQ(plan.evacuate.size(), 1u);
  EXPECT_EQ(plan.evacuate[0].host, "h1");
  EXPECT_DOUBLE_EQ(plan.evacuate[0].expected_benefit, 2.0);
  EXPECT_DOUBLE_EQ(plan.evacuate[0].cost, 1.0);
  ASSERT_EQ(plan.keep.size(), 1u);
  EXPECT_EQ(plan.keep[0].host, "h2");
  // Make migration dearer and nothing moves; cheaper and both move.
  c.migration_cost = 5;
  EXPECT_TRUE(choose_evacuations({score("a", "h1", 0.02)}, {}, c).evacuate.empty());
  c.migration_cost = 0.1;
  EXPECT_EQ(choose_evacuations({score("a", "h1", 0.02), score("b", "h2", 0.005)}, {}, c).evacuate.size(), 2u);
}

TEST(Optimiser, HostsAggregateDevicesAndGuests) {
  EvacuationCosts c;
  c.fixed_host_cost = 10;
  // Two 30 % disks on one host: P(host fails) = 1 - 0.7^2 = 0.51.
  const std::map<std::string, uint32_t> guests{{"h1", 4}, {"h2", 0}};
  const auto plan = choose_evacuations(
      {score("a", "h1", 0.3), score("b", "h1", 0.3), score("c", "h2", 0.9)}, guests, c);
  ASSERT_EQ(plan.evacuate.size(), 1u);
  const auto& d = plan.evacuate[0];
  EXPECT_EQ(d.host, "h1");
  EXPECT_NEAR(d.failure_probability, 0.51, 1e-12);
  EXPECT_EQ(d.guests, 4u);
  EXPECT_NEAR(d.net(), 0.51 * 4 * 100 - (4 * 1 + 10), 1e-9);
  EXPECT_EQ(d.devices.size(), 2u);
  // h2 has no guests: nothing to gain, whatever its risk.
  ASSERT_EQ(plan.keep.size(), 1u);
  EXPECT_EQ(plan.keep[0].host, "h2");
}

TEST(Optimiser, CapacityKeepsTheBestNetBenefit) {
  EvacuationCosts c;
  c.max_hosts = 2;
  const auto plan = choose_evacuations({score("a", "h1", 0.2), score("b", "h2", 0.9),
                                        score("c", "h3", 0.5), score("d", "h4", 0.05)},
                                       {}, c);
  ASSERT_EQ(plan.evacuate.size(), 2u);
  EXPECT_EQ(plan.evacuate[0].host, "h2");
  EXPECT_EQ(plan.evacuate[1].host, "h3");
  ASSERT_EQ(plan.keep.size(), 2u);
  EXPECT_EQ(plan.keep[0].host, "h1");  // kept, best first
}

TEST(Optimiser, ReasonsComeFromTheRiskiestDevice) {
  const auto plan = choose_evacuations(
      {score("sda", "h1", 0.1, {{"smart_1_raw", 3, 0.1f}}),
       score("sdb", "h1", 0.6, {{"smart_5_raw.d7", 24, 1.5f}, {"smart_197_raw", 8, 0.7f}})},
      {}, EvacuationCosts{});
  ASSERT_EQ(plan.evacuate.size(), 1u);
  const auto& d = plan.evacuate[0];
  EXPECT_EQ(d.devices[0], "sdb");
  ASSERT_EQ(d.reasons.size(), 2u);
  EXPECT_EQ(d.reasons[0].feature, "sdb: smart_5_raw.d7");
  EXPECT_FLOAT_EQ(d.reasons[0].value, 24.0f);
}

TEST(Optimiser, EmptyInputGivesEmptyPlan) {
  const auto plan = choose_evacuations({}, {}, EvacuationCosts{});
  EXPECT_TRUE(plan.evacuate.empty());
  EXPECT_TRUE(plan.keep.empty());
}

}  // namespace
}  // namespace ferry::predictor
