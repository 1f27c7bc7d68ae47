// Migrations that fail: whatever breaks, the guest ends up running on exactly one side
// with its memory intact (its own self-check passes where it finishes).
#include <gtest/gtest.h>
#include <signal.h>

#include "migration_harness.h"
#include "test_env.h"

namespace ferry::testing {
namespace {

using std::chrono::seconds;

// The migration failed: the source guest runs on and finishes clean; the destination
// never ran it.
void expect_guest_stayed_on_source(Subprocess& src, Subprocess* dst) {
  ASSERT_EQ(src.wait(seconds(60)), 0) << src.out() << src.err();
  EXPECT_TRUE(has(src.out(), "FERRY-GUEST done status=0")) << src.out();
  EXPECT_TRUE(has(src.out(), "failures=0 time_backwards=0")) << src.out();
  if (dst != nullptr) {
    dst->wait(seconds(30));
    EXPECT_FALSE(has(dst->out(), "FERRY-GUEST")) << "destination ran the guest: " << dst->out();
  }
}

TEST(MigrationFailure, DestinationKilledMidBrownout) {
  FERRY_REQUIRE_KVM();
  MigrationRig rig("fail-kill");
  const uint16_t port = free_port();
  auto dst = rig.start_destination(port, "dst.img");
  auto src = rig.start_source(GuestSpec{});
  // Slow the link so the brownout lasts, then kill the destination inside it.
  std::thread killer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1200));
    dst->kill(SIGKILL);
  });
  auto m = rig.migrate(rig.source_control(), port, {"--max-bandwidth", "20000000"});
  killer.join();
  EXPECT_NE(m.exit_code, 0);
  EXPECT_TRUE(has(m.err, "keeps running on the source")) << m.err;
  expect_guest_stayed_on_source(*src, nullptr);
}

TEST(MigrationFailure, DestinationRefusesGuestLargerThanItsLimit) {
  FERRY_REQUIRE_KVM();
  MigrationRig rig("fail-mem");
  const uint16_t port = free_port();
  auto dst = rig.start_destination(port, "dst.img", {"--max-mem", "64M"});
  auto src = rig.start_source(GuestSpec{});
  auto m = rig.migrate(rig.source_control(), port);
  EXPECT_NE(m.exit_code, 0);
  EXPECT_TRUE(has(m.err, "memory")) << m.err;
  EXPECT_NE(dst->wait(seconds(30)), 0);
  expect_guest_stayed_on_source(*src, dst.get());
}

TEST(MigrationFailure, DestinationWithoutADiskForTheGuestRefuses) {
  FERRY_REQUIRE_KVM();
  MigrationRig rig("fail-disk");
  const uint16_t port = free_port();
  auto dst = rig.start_destination(port, "");
  auto src = rig.start_source(GuestSpec{});
  auto m = rig.migrate(rig.source_control(), port);
  EXPECT_NE(m.exit_code, 0);
  EXPECT_TRUE(has(m.err, "disk")) << m.err;
  expect_guest_stayed_on_source(*src, dst.get());
}

TEST(MigrationFailure, NobodyListening) {
  FERRY_REQUIRE_KVM();
  MigrationRig rig("fail-noone");
  auto src = rig.start_source(GuestSpec{});
  auto m = rig.migrate(rig.source_control(), free_port());
  EXPECT_NE(m.exit_code, 0);
  EXPECT_TRUE(has(m.err, "connect")) << m.err;
  expect_guest_stayed_on_source(*src, nullptr);
}

// Cut the link at several points of the stream: early (hello), in the first round, and
// deep into the transfer.
class ConnectionCut : public ::testing::TestWithParam<uint64_t> {};

TEST_P(ConnectionCut, GuestRunsOnExactlyOneSide) {
  FERRY_REQUIRE_KVM();
  MigrationRig rig("fail-cut");
  const uint16_t port = free_port();
  auto dst = rig.start_destination(port, "dst.img");
  CuttingProxy proxy(port, GetParam());
  auto src = rig.start_source(GuestSpec{});
  auto m = rig.migrate(rig.source_control(), proxy.port());
  ASSERT_TRUE(proxy.cut()) << "the proxy never reached its cut point: " << m.out << m.err;
  EXPECT_NE(m.exit_code, 0) << m.out;
  expect_guest_stayed_on_source(*src, dst.get());
}

// The destination's side of the link dies in the blackout: it received everything and
// verified it, but its DestReady never reaches the paused source. The source must resume
// its guest; the destination, never told to commit, must not run it.
TEST(MigrationFailure, LinkCutDuringBlackoutWhenTheDestinationIsReady) {
  FERRY_REQUIRE_KVM();
  MigrationRig rig("fail-blackout");
  const uint16_t port = free_port();
  auto dst = rig.start_destination(port, "dst.img");
  // Channel ack (16 bytes) + HelloReply (16-byte header + 8) pass; DestReady does not.
  CuttingProxy proxy(port, ~0ull, 16 + 24);
  auto src = rig.start_source(GuestSpec{});
  auto m = rig.migrate(rig.source_control(), proxy.port());
  ASSERT_TRUE(proxy.cut()) << m.out << m.err;
  EXPECT_NE(m.exit_code, 0) << m.out;
  EXPECT_TRUE(has(m.err, "keeps running on the source")) << m.err;
  expect_guest_stayed_on_source(*src, dst.get());
  // The error names the phase it failed in: the source was paused, waiting for DestReady.
  EXPECT_TRUE(has(m.err, "migration failed: blackout") || has(m.err, "migration failed: commit"))
      << m.err;
}

INSTANTIATE_TEST_SUITE_P(AtByteOffsets, ConnectionCut, ::testing::Values(100, 2u << 20, 16u << 20));

}  // namespace
}  // namespace ferry::testing
