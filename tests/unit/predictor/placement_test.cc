// Destination placement: safest host first, capacity and headroom respected, at-risk,
// out-of-service, source and excluded hosts never chosen, load spread across equal hosts,
// a reason when nothing fits, and the same answer every time.
#include "ferry/predictor/placement.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>

namespace ferry::predictor {
namespace {

HostCapacity host(const std::string& name, double risk, uint64_t mem_total = 65536,
                  uint64_t mem_used = 0, uint32_t vcpus_total = 64, uint32_t vcpus_used = 0) {
  HostCapacity h;
  h.name = name;
  h.risk = risk;
  h.mem_total_mib = mem_total;
  h.mem_used_mib = mem_used;
  h.vcpus_total = vcpus_total;
  h.vcpus_used = vcpus_used;
  return h;
}

const std::set<std::string> kNone;

TEST(Placement, LowerRiskFirstThenFreeShareThenName) {
  const std::vector<HostCapacity> hosts{
      host("c", 0.002), host("a", 0.010), host("b", 0.002, 65536, 32768),
      host("d", 0.002),  // same risk and free share as c: name decides
  };
  const auto r = rank_destinations(hosts, {"g", 1024, 1}, "src", kNone, {});
  EXPECT_EQ(r, (std::vector<std::string>{"c", "d", "b", "a"}));
}

TEST(Placement, RiskStepTreatsCloseRisksAsEqual) {
  const std::vector<HostCapacity> hosts{host("busy", 0.0010, 65536, 49152),
                                        host("idle", 0.0012, 65536, 0), host("worse", 0.02)};
  PlacementPolicy p;
  EXPECT_EQ(rank_destinations(hosts, {"g", 1024, 1}, "src", kNone, p).front(), "busy");
  p.risk_step = 0.005;  // 0.0010 and 0.0012 fall in one step: the idle host wins
  EXPECT_EQ(rank_destinations(hosts, {"g", 1024, 1}, "src", kNone, p),
            (std::vector<std::string>{"idle", "busy", "worse"}));
}

TEST(Placement, CapacityAndHeadroomExcludeFullHosts) {
  const std::vector<HostCapacity> hosts{
      host("full", 0.001, 16384, 15872),         // 512 MiB free
      host("tight", 0.001, 16384, 14336),        // 2048 MiB free
      host("roomy", 0.003, 16384, 0),            // all free
      host("cpu-bound", 0.001, 16384, 0, 8, 7),  // one vCPU left
  };
  const GuestDemand g{"g", 1024, 2};
  PlacementPolicy p;
  EXPECT_EQ(rank_destinations(hosts, g, "src", kNone, p),
            (std::vector<std::string>{"tight", "roomy"}));
  // Keeping 10 % (1638 MiB) free rules out "tight": 2048 - 1024 < 1638.
  p.headroom_fraction = 0.10;
  EXPECT_EQ(rank_destinations(hosts, g, "src", kNone, p), (std::vector<std::string>{"roomy"}));
  EXPECT_EQ(host_fit(hosts[1], g, "src", kNone, p), HostFit::NoMemory);
  EXPECT_EQ(host_fit(hosts[3], g, "src", kNone, p), HostFit::NoVcpus);
  // 2x overcommit gives the vCPU-bound host room again (7 + 2 <= 16).
  p.vcpu_overcommit = 2.0;
  EXPECT_EQ(host_fit(hosts[3], g, "src", kNone, p), HostFit::Fits);
  // Memory used beyond the total (a stale report) is full, not an underflow.
  EXPECT_EQ(host_fit(host("over", 0.0, 1024, 4096), g, "src", kNone, p), HostFit::NoMemory);
}

TEST(Placement, NeverChoosesSourceExcludedAtRiskOutOfServiceOrTooRisky) {
  std::vector<HostCapacity> hosts{
      host("src", 0.0),     host("failed-before", 0.0),
      host("at-risk", 0.0), host("drained", 0.0),
      host("risky", 0.06),  host("unknown", std::numeric_limits<double>::quiet_NaN()),
      host("ok", 0.04)};
  hosts[2].at_risk = true;
  hosts[3].in_service = false;
  const std::set<std::string> excluded{"failed-before"};
  const GuestDemand g{"g", 512, 1};
  const PlacementPolicy p;  // max_destination_risk 0.05
  EXPECT_EQ(rank_destinations(hosts, g, "src", excluded, p), (std::vector<std::string>{"ok"}));
  EXPECT_EQ(host_fit(hosts[0], g, "src", excluded, p), HostFit::Source);
  EXPECT_EQ(host_fit(hosts[1], g, "src", excluded, p), HostFit::Excluded);
  EXPECT_EQ(host_fit(hosts[2], g, "src", excluded, p), HostFit::AtRisk);
  EXPECT_EQ(host_fit(hosts[3], g, "src", excluded, p), HostFit::OutOfService);
  EXPECT_EQ(host_fit(hosts[4], g, "src", excluded, p), HostFit::TooRisky);
  EXPECT_EQ(host_fit(hosts[5], g, "src", excluded, p), HostFit::TooRisky);
  // A whole plan (which has no exclusion set) only ever lands on the healthy hosts.
  const auto plan = plan_evacuation(hosts, {{"a", 512, 1}, {"b", 512, 1}, {"c", 512, 1}}, "src", p);
  for (const auto& pl : plan) {
    ASSERT_TRUE(pl.destination.has_value()) << pl.reason;
    EXPECT_TRUE(*pl.destination == "ok" || *pl.destination == "failed-before") << *pl.destination;
  }
}

TEST(Placement, PlanSpreadsGuestsAcrossEqualHosts) {
  std::vector<HostCapacity> hosts{host("src", 0.3)};
  for (int i = 0; i < 4; ++i) {
    hosts.push_back(host("h" + std::to_string(i), 0.001, 32768));
  }
  std::vector<GuestDemand> guests;
  guests.reserve(8);
  for (int i = 0; i < 8; ++i) {
    guests.push_back({"g" + std::to_string(i), 2048, 2});
  }
  const auto plan = plan_evacuation(hosts, guests, "src", {});
  ASSERT_EQ(plan.size(), 8u);
  std::map<std::string, int> per_host;
  for (const auto& pl : plan) {
    ASSERT_TRUE(pl.destination.has_value()) << pl.reason;
    ++per_host[*pl.destination];
  }
  // Each choice is charged, so the next guest sees the host fuller: two guests each.
  EXPECT_EQ(per_host, (std::map<std::string, int>{{"h0", 2}, {"h1", 2}, {"h2", 2}, {"h3", 2}}));
}

TEST(Placement, PlanPlacesLargestFirstAndChargesCapacity) {
  // One destination with 6 GiB: the 4 GiB guest goes first even though listed last, then
  // two 1 GiB guests fill the rest and the third finds no room.
  const std::vector<HostCapacity> hosts{host("src", 0.5), host("dst", 0.0, 6144)};
  const auto plan = plan_evacuation(
      hosts, {{"s1", 1024, 1}, {"s2", 1024, 1}, {"s3", 1024, 1}, {"big", 4096, 4}}, "src", {});
  ASSERT_EQ(plan.size(), 4u);
  EXPECT_EQ(plan[0].guest, "big");
  EXPECT_EQ(plan[0].destination, std::optional<std::string>("dst"));
  EXPECT_EQ(plan[1].destination, std::optional<std::string>("dst"));
  EXPECT_EQ(plan[2].destination, std::optional<std::string>("dst"));
  EXPECT_EQ(plan[3].guest, "s3");
  EXPECT_FALSE(plan[3].destination.has_value());
}

TEST(Placement, NoDestinationGivesAReason) {
  std::vector<HostCapacity> hosts{host("src", 0.5), host("small", 0.0, 256), host("risky", 0.2),
                                  host("drained", 0.0)};
  hosts[3].in_service = false;
  const auto plan = plan_evacuation(hosts, {{"g", 512, 1}}, "src", {});
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_FALSE(plan[0].destination.has_value());
  EXPECT_EQ(plan[0].reason.rfind("no healthy host with 512 MiB free", 0), 0u) << plan[0].reason;
  EXPECT_NE(plan[0].reason.find("1 too full"), std::string::npos) << plan[0].reason;
  EXPECT_NE(plan[0].reason.find("1 too risky"), std::string::npos) << plan[0].reason;
  EXPECT_NE(plan[0].reason.find("1 out of service"), std::string::npos) << plan[0].reason;
  // An empty fleet, or no guests at all, is not an error.
  EXPECT_FALSE(plan_evacuation({}, {{"g", 1, 1}}, "src", {})[0].destination.has_value());
  EXPECT_TRUE(plan_evacuation(hosts, {}, "src", {}).empty());
}

TEST(Placement, DeterministicAndBestMatchesRanking) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> risk(0.0, 0.08);
  std::uniform_int_distribution<uint64_t> used(0, 60000);
  std::vector<HostCapacity> hosts;
  hosts.reserve(300);
  for (int i = 0; i < 300; ++i) {
    // Few distinct risks and used-memory levels, so the tie-breaks are exercised.
    hosts.push_back(host("h" + std::to_string(i), std::round(risk(rng) * 100) / 100, 65536,
                         used(rng) / 8192 * 8192));
  }
  PlacementPolicy p;
  p.headroom_fraction = 0.05;
  const GuestDemand g{"g", 4096, 2};
  const auto ranked = rank_destinations(hosts, g, "h0", {"h1"}, p);
  ASSERT_FALSE(ranked.empty());
  const auto best = best_destination(hosts, g, "h0", {"h1"}, p);
  ASSERT_TRUE(best.has_value());
  EXPECT_EQ(hosts[*best].name, ranked.front());
  // Input order does not change the answer.
  auto shuffled = hosts;
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  EXPECT_EQ(rank_destinations(shuffled, g, "h0", {"h1"}, p), ranked);
  std::vector<GuestDemand> guests;
  guests.reserve(40);
  for (int i = 0; i < 40; ++i) {
    guests.push_back({"g" + std::to_string(i), uint64_t{1024} * (1 + i % 5), 1u + i % 3});
  }
  const auto a = plan_evacuation(hosts, guests, "h0", p);
  const auto b = plan_evacuation(shuffled, guests, "h0", p);
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].guest, b[i].guest);
    EXPECT_EQ(a[i].destination, b[i].destination);
  }
}

TEST(Placement, InPlaceChargesTheFleetAcrossEvacuations) {
  std::vector<HostCapacity> hosts{host("a", 0.4), host("b", 0.4), host("dst", 0.0, 4096)};
  hosts[0].at_risk = hosts[1].at_risk = true;
  const auto pa = plan_evacuation_in_place(hosts, {{"a1", 3072, 1}}, "a", {});
  const auto pb = plan_evacuation_in_place(hosts, {{"b1", 3072, 1}}, "b", {});
  EXPECT_EQ(pa[0].destination, std::optional<std::string>("dst"));
  EXPECT_FALSE(pb[0].destination.has_value());  // "dst" already holds a1
  EXPECT_EQ(hosts[2].mem_used_mib, 3072u);
  EXPECT_EQ(hosts[2].vcpus_used, 1u);
  EXPECT_EQ(hosts[2].guests, 1u);
}

}  // namespace
}  // namespace ferry::predictor
