// Live migration of the self-verifying test guest between two Ferry processes.
// The guest checks every page's self-check (sequence, address, checksum against its
// table of expected sequence numbers), its disk sectors and that kvmclock never went
// backwards; it prints "failures=0 time_backwards=0" only if nothing was lost.
#include <gtest/gtest.h>

#include "migration_harness.h"
#include "test_env.h"

namespace ferry::testing {
namespace {

using std::chrono::seconds;

void expect_guest_finished_clean(const Subprocess& vm) {
  const std::string out = vm.out();
  EXPECT_TRUE(has(out, "verify ok")) << out << vm.err();
  EXPECT_TRUE(has(out, "FERRY-GUEST done status=0")) << out;
  EXPECT_TRUE(has(out, "failures=0 time_backwards=0")) << out;
}

TEST(Migration, GuestDirtyingMemoryAndDiskMovesWithNothingLost) {
  FERRY_REQUIRE_KVM();
  MigrationRig rig("mig-basic");
  const uint16_t port = free_port();
  auto dst = rig.start_destination(port, "dst.img", {"--report", rig.dir() + "/dst.json"});
  auto src = rig.start_source(GuestSpec{});
  // Full verification: the source re-hashes its real RAM in the blackout, so a page the
  // dirty log (or the VMM's own bitmap) missed would fail the commit.
  auto m = rig.migrate(rig.source_control(), port, {"--verify", "full"});
  ASSERT_EQ(m.exit_code, 0) << m.out << m.err;
  EXPECT_EQ(src->wait(seconds(30)), 0) << "source exits once the destination runs the guest";
  EXPECT_FALSE(has(src->out(), "FERRY-GUEST done")) << "the guest must not finish on the source";
  ASSERT_EQ(dst->wait(seconds(60)), 0) << dst->out() << dst->err();
  expect_guest_finished_clean(*dst);
  // The disk sectors the guest wrote before the move were read back on the destination.
  EXPECT_TRUE(has(dst->out(), "disk_sectors=")) << dst->out();

  const nlohmann::json report = rig.last_report();
  ASSERT_FALSE(report.is_discarded());
  EXPECT_EQ(report["outcome"], "completed") << report.dump(2);
  EXPECT_GT(report["rounds"].size(), 0u);
}

TEST(Migration, SmpGuestWithTwoVcpus) {
  FERRY_REQUIRE_KVM();
  MigrationRig rig("mig-smp");
  const uint16_t port = free_port();
  auto dst = rig.start_destination(port, "dst.img");
  GuestSpec spec;
  spec.cpus = 2;
  spec.cmdline = "wss=32 duration=5 rate=40 cpus=2";
  auto src = rig.start_source(spec);
  auto m = rig.migrate(rig.source_control(), port);
  ASSERT_EQ(m.exit_code, 0) << m.out << m.err;
  ASSERT_EQ(dst->wait(seconds(60)), 0) << dst->out() << dst->err();
  expect_guest_finished_clean(*dst);
  EXPECT_TRUE(has(dst->out(), "vcpus=2") || has(src->out(), "vcpus=2"));
}

TEST(Migration, PingPongTenTimes) {
  FERRY_REQUIRE_KVM();
  MigrationRig rig("mig-pingpong");
  GuestSpec spec;
  spec.mem = "64M";
  spec.cmdline = "wss=16 duration=0 rate=20 fill=full report=200";
  spec.disk_bytes = 4 << 20;
  std::unique_ptr<Subprocess> current = rig.start_source(spec);
  std::string control = rig.source_control();
  for (int hop = 1; hop <= 10; ++hop) {
    const uint16_t port = free_port();
    const std::string next_control = rig.dir() + "/hop" + std::to_string(hop) + ".sock";
    auto next = rig.start_destination(port, "hop" + std::to_string(hop) + ".img", {}, next_control);
    auto m = rig.migrate(control, port, {"--quiet"});
    ASSERT_EQ(m.exit_code, 0) << "hop " << hop << ": " << m.out << m.err;
    ASSERT_EQ(current->wait(seconds(30)), 0) << "hop " << hop;
    // The guest keeps making progress on its new host before the next hop.
    ASSERT_TRUE(next->wait_for_output("progress", seconds(20))) << next->err();
    current = std::move(next);
    control = next_control;
  }
  // Stop the guest through its final control socket; it never verified a failure.
  auto quit = run_command({ferry_binary(), "ctl", "--control", control, "quit"}, seconds(20));
  EXPECT_EQ(quit.exit_code, 0) << quit.err;
  EXPECT_EQ(current->wait(seconds(20)), 0);
  EXPECT_FALSE(has(current->out(), "verify FAIL")) << current->out();
  EXPECT_FALSE(has(current->out(), "TIME-BACKWARDS")) << current->out();
}

TEST(Migration, DirtyRingBackend) {
  FERRY_REQUIRE_KVM();
  MigrationRig rig("mig-ring");
  const uint16_t port = free_port();
  auto dst = rig.start_destination(port, "dst.img");
  GuestSpec spec;
  spec.cmdline = "wss=64 duration=5 rate=100 fill=full pattern=random";
  spec.extra = {"--dirty-ring", "1024"};  // small: the rings fill and are drained mid-round
  auto src = rig.start_source(spec);
  auto m = rig.migrate(rig.source_control(), port, {"--verify", "full"});
  ASSERT_EQ(m.exit_code, 0) << m.out << m.err;
  ASSERT_EQ(dst->wait(seconds(60)), 0) << dst->out() << dst->err();
  expect_guest_finished_clean(*dst);
}

TEST(Migration, GuestDirtyingFasterThanTheLinkIsThrottledAndFinishes) {
  FERRY_REQUIRE_KVM();
  MigrationRig rig("mig-throttle");
  const uint16_t port = free_port();
  auto dst = rig.start_destination(port, "dst.img");
  GuestSpec spec;
  spec.cmdline = "wss=64 duration=15 rate=0 fill=full pattern=random";  // as fast as it can
  auto src = rig.start_source(spec);
  auto m = rig.migrate(rig.source_control(), port, {"--max-bandwidth", "40000000"});
  ASSERT_EQ(m.exit_code, 0) << m.out << m.err;
  ASSERT_EQ(dst->wait(seconds(60)), 0) << dst->out() << dst->err();
  expect_guest_finished_clean(*dst);
  const nlohmann::json report = rig.last_report();
  unsigned max_throttle = 0;
  for (const auto& round : report["rounds"]) {
    max_throttle = std::max(max_throttle, round.value("throttle_percent", 0u));
  }
  EXPECT_GT(max_throttle, 0u) << "a guest faster than the link must have been throttled: "
                              << report.dump(2);
}

TEST(Migration, TlsWithMutualAuthentication) {
  FERRY_REQUIRE_KVM();
  MigrationRig rig("mig-tls");
  const std::string pki = rig.dir() + "/pki";
  for (const char* host : {"src", "dst"}) {
    auto gen = run_command({ferry_binary(), "tls", "gen", "--ca-dir", pki + "/ca", "--out",
                            pki + "/" + host, "--name", host},
                           seconds(60));
    ASSERT_EQ(gen.exit_code, 0) << gen.out << gen.err;
  }
  const uint16_t port = free_port();
  // Each side insists on the other's name: mutual authentication, not just encryption.
  auto dst =
      rig.start_destination(port, "dst.img", {"--tls-dir", pki + "/dst", "--tls-name", "src"});
  auto src = rig.start_source(GuestSpec{});
  auto m =
      rig.migrate(rig.source_control(), port, {"--tls-dir", pki + "/src", "--tls-name", "dst"});
  ASSERT_EQ(m.exit_code, 0) << m.out << m.err;
  ASSERT_EQ(dst->wait(seconds(60)), 0) << dst->out() << dst->err();
  expect_guest_finished_clean(*dst);
}

TEST(Migration, TlsDestinationRefusesAPlaintextSource) {
  FERRY_REQUIRE_KVM();
  MigrationRig rig("mig-tls-plain");
  const std::string pki = rig.dir() + "/pki";
  auto gen = run_command({ferry_binary(), "tls", "gen", "--ca-dir", pki + "/ca", "--out",
                          pki + "/dst", "--name", "dst"},
                         seconds(60));
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  const uint16_t port = free_port();
  auto dst = rig.start_destination(port, "dst.img", {"--tls-dir", pki + "/dst"});
  auto src = rig.start_source(GuestSpec{});
  auto m = rig.migrate(rig.source_control(), port);  // no --tls-dir: plaintext
  EXPECT_NE(m.exit_code, 0);
  ASSERT_EQ(src->wait(seconds(60)), 0);
  EXPECT_TRUE(has(src->out(), "failures=0 time_backwards=0")) << src->out();
  EXPECT_FALSE(has(dst->out(), "FERRY-GUEST"));
}

}  // namespace
}  // namespace ferry::testing
