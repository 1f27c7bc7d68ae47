// Convergence policy: switch-over, progressive throttling, forced completion.
#include "ferry/migration/convergence.h"

#include <gtest/gtest.h>

namespace ferry::migration {
namespace {

ConvergenceInput input(uint32_t it, uint64_t remaining, double bw, double dirty_rate) {
  ConvergenceInput in;
  in.iteration = it;
  in.remaining_bytes = remaining;
  in.dirty_pages = remaining / 4096;
  in.bandwidth_bytes_per_s = bw;
  in.dirty_rate_bytes_per_s = dirty_rate;
  in.downtime_budget = std::chrono::milliseconds(10);
  return in;
}

TEST(Convergence, SwitchesOverWhenRemainderFitsBudget) {
  DefaultConvergencePolicy p;
  // 1 MiB at 1 GiB/s = ~1 ms.
  ConvergenceDecision d = p.decide(input(1, 1 << 20, 1 << 30, 0));
  EXPECT_EQ(d.action, ConvergenceAction::SwitchOver);
  EXPECT_EQ(d.throttle_percent, 0u);
  EXPECT_LT(d.predicted_downtime_ms, 10);
  EXPECT_FALSE(d.reason.empty());
}

TEST(Convergence, ThrottlesProgressivelyThenForcesSwitchOver) {
  DefaultConvergencePolicy p;
  std::vector<unsigned> levels;
  ConvergenceDecision d;
  // Dirty rate twice the link and nothing shrinks: a guest that never converges.
  for (uint32_t it = 1; it < 40; ++it) {
    d = p.decide(input(it, 512ull << 20, 100e6, 200e6));
    levels.push_back(d.throttle_percent);
    if (d.action == ConvergenceAction::SwitchOver) {
      break;
    }
  }
  EXPECT_EQ(d.action, ConvergenceAction::SwitchOver);
  EXPECT_EQ(d.throttle_percent, 99u);
  EXPECT_NE(d.reason.find("forcing"), std::string::npos);
  // The ladder was climbed in order: 20, 40, 60, 80, 90, 95, 99.
  std::vector<unsigned> expect = {0, 20, 40, 60, 80, 90, 95, 99};
  size_t pos = 0;
  for (unsigned l : levels) {
    while (pos < expect.size() && expect[pos] != l) {
      ++pos;
    }
    ASSERT_LT(pos, expect.size()) << "level " << l << " out of order";
  }
  EXPECT_LT(levels.size(), 20u);
}

TEST(Convergence, ShrinkingRoundsAreNotThrottled) {
  DefaultConvergencePolicy p;
  uint64_t remaining = 512ull << 20;
  for (uint32_t it = 1; it < 6; ++it) {
    ConvergenceDecision d = p.decide(input(it, remaining, 100e6, 10e6));
    EXPECT_EQ(d.throttle_percent, 0u);
    remaining /= 4;
  }
}

TEST(Convergence, RoundLimitForcesSwitchOver) {
  DefaultConvergencePolicy p(DefaultConvergencePolicy::Config{3, 3, 0.8});
  EXPECT_EQ(p.decide(input(1, 1ull << 30, 1e6, 0)).action, ConvergenceAction::Continue);
  EXPECT_EQ(p.decide(input(2, 1ull << 29, 1e6, 0)).action, ConvergenceAction::Continue);
  ConvergenceDecision d = p.decide(input(3, 1ull << 28, 1e6, 0));
  EXPECT_EQ(d.action, ConvergenceAction::SwitchOver);
  EXPECT_NE(d.reason.find("round limit"), std::string::npos);
}

TEST(Convergence, HighRiskEscalatesFaster) {
  DefaultConvergencePolicy calm, urgent;
  ConvergenceInput in = input(1, 512ull << 20, 100e6, 50e6);
  EXPECT_EQ(calm.decide(in).throttle_percent, 0u);
  in.risk_score = 0.95;
  EXPECT_EQ(urgent.decide(in).throttle_percent, 40u);
  EXPECT_NE(urgent.decide(input(2, 512ull << 20, 100e6, 50e6)).reason.find("not converging"),
            std::string::npos);
}

}  // namespace
}  // namespace ferry::migration

namespace ferry::migration {
namespace {

TEST(DataBandwidth, CountsOnlyTheBytesThatCarriedData) {
  // 256 MiB of data and 768 MiB of zero pages in 0.4 s: the round's guest rate is
  // 2.5 GiB/s, but the data went at 640 MiB/s, and the next round is all data.
  const double all = 1024.0 * 1048576 / 0.4;
  const double data = data_bandwidth_bytes_per_s(256ull << 20, 400'000'000, all);
  EXPECT_DOUBLE_EQ(data, 256.0 * 1048576 / 0.4);
  // 20 MiB left: predicted 7.8 ms at the guest rate, 31 ms at the data rate.
  DefaultConvergencePolicy policy;
  ConvergenceInput in;
  in.iteration = 1;
  in.remaining_bytes = 20ull << 20;
  in.bandwidth_bytes_per_s = data;
  in.downtime_budget = std::chrono::milliseconds(10);
  EXPECT_EQ(policy.decide(in).action, ConvergenceAction::Continue);
}

TEST(DataBandwidth, FallsBackWhenTooLittleDataMoved) {
  EXPECT_DOUBLE_EQ(data_bandwidth_bytes_per_s(4096 * 3, 200'000'000, 5e9), 5e9);
  EXPECT_DOUBLE_EQ(data_bandwidth_bytes_per_s(64ull << 20, 0, 5e9), 5e9);
}

}  // namespace
}  // namespace ferry::migration
