// The fleet end to end on one machine: three hosts in their own network namespaces, one
// etcd, an agent per host. Host A runs 5 self-verifying guests and replays the recorded
// SMART history of a Backblaze drive that failed; its agent must rank A at risk and move
// every guest to B or C, where each guest verifies all of its memory after the move.
// Second case: B's agent is killed while a guest is on its way to B; that guest must stay
// on A or land on C, never be lost.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "fleet_harness.h"
#include "test_env.h"

namespace ferry::testing {
namespace {

using namespace std::chrono_literals;

// Real drives of the 2013-04 Backblaze days in ../shared/data: S1F052LZ (ST3000DM001)
// failed on 2013-04-24 with growing reallocated and pending sectors; W1F09LPX and S1F0CRDQ
// (same model) stayed healthy.
constexpr const char* kFailingDrive = "S1F052LZ";
constexpr const char* kHealthyDriveB = "W1F09LPX";
constexpr const char* kHealthyDriveC = "S1F0CRDQ";
constexpr int kGuests = 5;
// Long enough to span the evacuation; each guest then checks every page and exits.
constexpr int kGuestSeconds = 35;

class FleetE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!kvm_unavailable_reason().empty() || !fleet_unavailable_reason().empty()) {
      return;
    }
    model_dir_ = new std::string(make_temp_dir("ferry-fleet-model"));
    // A small model on the first 20 days (the drive data the agents replay): ~10 s.
    auto trained = run_command({ferry_binary(), "model", "train", "--max-days", "20", "--all-days",
                                "--rounds", "30", "--out", *model_dir_ + "/disk.json"},
                               std::chrono::seconds(240));
    model_ok_ = trained.exit_code == 0;
    if (!model_ok_) {
      model_error_ = new std::string(trained.err);
    }
  }

  void SetUp() override {
    FERRY_REQUIRE_KVM();
    if (auto why = fleet_unavailable_reason(); !why.empty()) {
      GTEST_SKIP() << "SKIPPED: fleet test needs " << why;
    }
    ASSERT_TRUE(model_ok_) << "ferry model train failed: " << (model_error_ ? *model_error_ : "");
    work_ = make_temp_dir("ferry-fleet");
    fleet_ = std::make_unique<NetnsFleet>(std::vector<std::string>{"hosta", "hostb", "hostc"}, work_);
    ASSERT_TRUE(fleet_->ok()) << fleet_->error();
    ASSERT_TRUE(fleet_->start_etcd()) << fleet_->error();
  }

  void TearDown() override {
    if (HasFailure() && fleet_) {
      for (const char* host : {"hosta", "hostb", "hostc"}) {
        std::fprintf(stderr, "---- %s timeline\n%s", host, slurp(fleet_->timeline(host)).c_str());
        if (auto* agent = fleet_->agent(host)) {
          std::fprintf(stderr, "---- %s agent stderr\n%s", host, agent->err().c_str());
        }
      }
    }
    fleet_.reset();
    if (!HasFailure()) {
      std::filesystem::remove_all(work_);
    }
  }

  std::vector<std::string> common(const char* drive) const {
    return {"--model", *model_dir_ + "/disk.json", "--max-days", "20", "--replay-disk", drive,
            "--poll-ms", "500", "--lease-ttl", "3", "--receiver-timeout", "8",
            "--stop-guests-on-exit"};
  }

  void start_destinations(int mem_b, int mem_c) {
    auto b = common(kHealthyDriveB);
    b.insert(b.end(), {"--mem", std::to_string(mem_b), "--cpus", "8"});
    auto c = common(kHealthyDriveC);
    c.insert(c.end(), {"--mem", std::to_string(mem_c), "--cpus", "8"});
    fleet_->start_agent("hostb", b);
    fleet_->start_agent("hostc", c);
    ASSERT_TRUE(wait_until([&] { return fleet_->fleet_status().out.find("hostc") != std::string::npos &&
                                        fleet_->fleet_status().out.find("hostb") != std::string::npos; },
                           20s))
        << "B and C did not register: " << fleet_->fleet_status().out;
  }

  void start_source() {
    auto a = common(kFailingDrive);
    a.insert(a.end(), {"--mem", "1024", "--cpus", "8", "--replay-lead", "12", "--guest-kernel",
                       test_guest()});
    for (int i = 1; i <= kGuests; ++i) {
      a.insert(a.end(), {"--guest", fmt::format("g{}:32:1:wss=8 rate=20 pattern=random duration={}",
                                                i, kGuestSeconds)});
    }
    fleet_->start_agent("hosta", a);
  }

  // Which hosts printed "verify ok" for `guest` in its serial log.
  std::vector<std::string> verified_on(int guest) const {
    std::vector<std::string> hosts;
    for (const char* host : {"hosta", "hostb", "hostc"}) {
      std::string serial = slurp(fmt::format("{}/g{}.serial", fleet_->state_dir(host), guest));
      if (serial.find("verify ok") != std::string::npos) {
        hosts.push_back(host);
      }
      EXPECT_EQ(serial.find("verify FAIL"), std::string::npos)
          << "g" << guest << " found lost or corrupt pages on " << host << ":\n" << serial;
    }
    return hosts;
  }

  bool all_guests_done() const {
    for (int i = 1; i <= kGuests; ++i) {
      if (verified_on(i).empty()) {
        return false;
      }
    }
    return true;
  }

  static std::string* model_dir_;
  static std::string* model_error_;
  static bool model_ok_;
  std::string work_;
  std::unique_ptr<NetnsFleet> fleet_;
};

std::string* FleetE2eTest::model_dir_ = nullptr;
std::string* FleetE2eTest::model_error_ = nullptr;
bool FleetE2eTest::model_ok_ = false;

TEST_F(FleetE2eTest, FailingDriveOnAEvacuatesEveryGuestToBAndC) {
  start_destinations(512, 512);
  start_source();
  const std::string a_timeline = fleet_->timeline("hosta");
  ASSERT_TRUE(wait_until([&] { return slurp(a_timeline).find("HOST-DRAINED") != std::string::npos; },
                         90s))
      << "A was not drained:\n" << slurp(a_timeline);
  std::string timeline = slurp(a_timeline);
  EXPECT_NE(timeline.find("PREDICTED"), std::string::npos);
  EXPECT_NE(timeline.find(kFailingDrive), std::string::npos) << "the timeline names the drive";
  EXPECT_EQ(count_of(timeline, " MIGRATED "), static_cast<std::size_t>(kGuests)) << timeline;
  EXPECT_EQ(count_of(timeline, "blackout "), static_cast<std::size_t>(kGuests)) << timeline;
  EXPECT_NE(timeline.find(fmt::format("{} guest(s) evacuated", kGuests)), std::string::npos);

  // The fleet sees A out of service and every guest on B or C.
  auto status = fleet_->fleet_status(/*json=*/true);
  ASSERT_EQ(status.exit_code, 0) << status.err;
  auto fleet = nlohmann::json::parse(status.out);
  std::size_t guests_on_bc = 0;
  for (const auto& host : fleet["hosts"]) {
    if (host["name"] == "hosta") {
      EXPECT_EQ(host["state"], "out-of-service");
      EXPECT_GT(host["risk"].get<double>(), 0.05);
      EXPECT_TRUE(host["guests"].empty());
    } else {
      EXPECT_EQ(host["state"], "healthy");
      EXPECT_LT(host["risk"].get<double>(), 0.05);
      guests_on_bc += host["guests"].size();
    }
  }
  EXPECT_EQ(guests_on_bc, static_cast<std::size_t>(kGuests)) << status.out;
  auto table = fleet_->fleet_status();
  EXPECT_NE(table.out.find("out-of-service"), std::string::npos) << table.out;

  // Every guest finishes its run on B or C and finds every page intact.
  ASSERT_TRUE(wait_until([&] { return all_guests_done(); }, std::chrono::seconds(kGuestSeconds + 40)))
      << "not every guest verified itself";
  std::set<std::string> used;
  for (int i = 1; i <= kGuests; ++i) {
    auto hosts = verified_on(i);
    ASSERT_EQ(hosts.size(), 1u) << "g" << i << " ran to completion on more than one host";
    EXPECT_NE(hosts.front(), "hosta") << "g" << i << " was not moved";
    used.insert(hosts.front());
  }
  EXPECT_EQ(used.size(), 2u) << "guests were not spread over B and C";
}

TEST_F(FleetE2eTest, KillingTheDestinationAgentMidEvacuationLosesNoGuest) {
  // B has more room, so it is the first choice; C can take every guest.
  start_destinations(1024, 512);
  start_source();
  Subprocess* b = fleet_->agent("hostb");
  ASSERT_TRUE(b->wait_for_output("RECEIVING", 60s)) << "no migration to B started";
  b->kill(SIGKILL);
  const std::string a_timeline = fleet_->timeline("hosta");
  ASSERT_TRUE(wait_until([&] { return slurp(a_timeline).find("HOST-DRAINED") != std::string::npos; },
                         120s))
      << "A was not drained after B died:\n" << slurp(a_timeline);
  std::string timeline = slurp(a_timeline);
  EXPECT_NE(timeline.find("MIGRATION-FAILED"), std::string::npos) << timeline;
  EXPECT_NE(timeline.find("keeps running on hosta"), std::string::npos) << timeline;

  // B dropped out of the fleet when its lease expired.
  EXPECT_TRUE(wait_until([&] { return fleet_->fleet_status().out.find("hostb") == std::string::npos; },
                         10s))
      << fleet_->fleet_status().out;

  // Every guest completes exactly once, on A or C — never on B, never twice, never lost.
  ASSERT_TRUE(wait_until([&] { return all_guests_done(); }, std::chrono::seconds(kGuestSeconds + 40)))
      << "a guest was lost";
  for (int i = 1; i <= kGuests; ++i) {
    auto hosts = verified_on(i);
    ASSERT_EQ(hosts.size(), 1u) << "g" << i;
    EXPECT_NE(hosts.front(), "hostb") << "g" << i << " ran on the dead host";
  }
}

}  // namespace
}  // namespace ferry::testing
