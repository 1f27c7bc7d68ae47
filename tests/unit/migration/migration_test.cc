// End-to-end sender/receiver state machines against the fake VM over in-memory streams.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "harness.h"

namespace ferry::testing {
namespace {

using migration::GuestLocation;
using migration::MigrationErrc;
using migration::MigrationPhase;

FakeVmConfig small_config() {
  FakeVmConfig c;
  c.regions = {{0, 4u << 20}, {1ull << 32, 2u << 20}};  // two regions with a hole
  c.vcpus = 2;
  c.disk_sizes = {3u << 20};
  c.disk_block = 64u << 10;
  return c;
}

void expect_identical(const FakeVm& src, const FakeVm& dst) {
  ASSERT_EQ(src.memory().size(), dst.memory().size());
  EXPECT_TRUE(src.memory() == dst.memory()) << "destination memory differs from the source";
  for (size_t i = 0; i < src.disk_count(); ++i) {
    EXPECT_TRUE(src.disk_contents(i) == dst.disk_contents(i)) << "disk " << i << " differs";
  }
  EXPECT_EQ(src.vcpu_state(), dst.vcpu_state());
}

TEST(Migration, IdleGuestSingleChannel) {
  FakeVm src(small_config());
  src.fill(1);
  RunResult r = run_migration(src, {});
  ASSERT_TRUE(*r.out) << r.out->error().message();
  ASSERT_TRUE(*r.in) << r.in->error().message();
  FakeVm* dst = r.dest();
  ASSERT_NE(dst, nullptr);
  expect_identical(src, *dst);
  EXPECT_TRUE(dst->running());
  EXPECT_TRUE(src.paused());  // the source copy stays paused for the caller to tear down
  EXPECT_FALSE(src.dirty_logging());
  EXPECT_EQ(*r.dest_resumes, 1);

  const migration::MigrationReport& rep = **r.out;
  EXPECT_EQ(rep.outcome, "completed");
  EXPECT_GE(rep.rounds.size(), 2u);  // at least the full round and the blackout round
  EXPECT_EQ(rep.rounds.front().pages_sent, 1536u);
  EXPECT_TRUE(rep.rounds.back().blackout);
  EXPECT_GT(rep.codecs.zero, 0u);
  EXPECT_GT(rep.codecs.zstd, 0u);
  EXPECT_GT(rep.codecs.raw, 0u);
  EXPECT_GT(rep.compression_ratio, 1.0);
  EXPECT_EQ(rep.disk_bytes, 3u << 20);
  EXPECT_GT(rep.blackout_ns, 0u);
  EXPECT_GE(rep.source_blackout_ns, rep.blackout_ns / 2);
  EXPECT_FALSE(rep.decisions.empty());
  EXPECT_GT(rep.phase_duration_ns(MigrationPhase::Brownout), 0u);
  EXPECT_GT(rep.phase_duration_ns(MigrationPhase::Blackout), 0u);
  EXPECT_EQ((*r.in)->report.blackout_ns, rep.blackout_ns);
}

TEST(Migration, DirtyingGuestFourChannelsReverseOrder) {
  FakeVmConfig c = small_config();
  c.regions = {{0, 32u << 20}};
  FakeVm src(c);
  src.fill(2);
  src.start_guest(2048, 50'000);
  RunSetup setup;
  setup.channels = 4;
  setup.reverse_channel_order = true;  // the receiver finds channel 0 by its Hello
  setup.sender.downtime_target = std::chrono::milliseconds(5);
  // A slow-ish link so the guest really dirties pages between rounds.
  for (int i = 0; i < 4; ++i) {
    PipeFaults f;
    f.bytes_per_s = 100u << 20;
    setup.to_dest.push_back(f);
  }
  RunResult r = run_migration(src, setup);
  src.stop_guest();
  ASSERT_TRUE(*r.out) << r.out->error().message();
  ASSERT_TRUE(*r.in) << r.in->error().message();
  expect_identical(src, *r.dest());
  const auto& rep = **r.out;
  EXPECT_GT(rep.rounds.size(), 2u);
  EXPECT_GT(rep.rounds[0].dirty_pages_found, 0u);
  EXPECT_GT(src.guest_writes(), 100u);
  EXPECT_EQ(rep.channels, 4u);
}

TEST(Migration, ReceiverAcceptsAnnouncedExtraChannels) {
  FakeVm src(small_config());
  src.fill(8);
  std::vector<std::unique_ptr<migration::ByteStream>> out, first;
  std::vector<std::unique_ptr<migration::ByteStream>> later;
  for (int c = 0; c < 3; ++c) {
    auto [a, b] = make_stream_pair();
    out.push_back(std::move(a));
    (c == 1 ? first : later).push_back(std::move(b));  // hand in only channel 1 up front
  }
  std::mutex mu;
  int accepted = 0;
  migration::ReceiverOptions ro;
  ro.accept_channel = [&]() -> migration::StreamResult<std::unique_ptr<migration::ByteStream>> {
    std::lock_guard lock(mu);
    if (later.empty()) {
      return fail(migration::StreamError{migration::StreamErrc::Closed, {}, "no more"});
    }
    ++accepted;
    auto s = std::move(later.back());
    later.pop_back();
    return s;
  };
  auto resumes = std::make_shared<std::atomic<int>>(0);
  std::optional<Result<migration::ReceivedVm, migration::MigrationError>> in;
  std::thread t(
      [&] { in.emplace(migration::migrate_in(std::move(first), fake_factory(resumes), ro)); });
  auto res = migration::migrate_out(src, std::move(out), {}, {});
  t.join();
  ASSERT_TRUE(res) << res.error().message();
  ASSERT_TRUE(*in) << in->error().message();
  EXPECT_EQ(accepted, 2);
  expect_identical(src, *static_cast<FakeVm*>((*in)->vm.get()));
}

TEST(Migration, GuestDirtyingFasterThanLinkIsThrottledAndFinishes) {
  FakeVmConfig c = small_config();
  c.regions = {{0, 16u << 20}};
  c.disk_sizes = {};
  FakeVm src(c);
  src.fill(3);
  // ~80 MB/s of distinct dirty pages against a 20 MB/s link.
  src.start_guest(4096, 20'000);
  RunSetup setup;
  setup.sender.compression = *migration::parse_compression("off");
  setup.to_dest.push_back(PipeFaults{.bytes_per_s = 20u << 20});
  RunResult r = run_migration(src, setup);
  src.stop_guest();
  ASSERT_TRUE(*r.out) << r.out->error().message();
  ASSERT_TRUE(*r.in) << r.in->error().message();
  expect_identical(src, *r.dest());
  const auto& rep = **r.out;
  EXPECT_GT(rep.max_throttle_percent, 0u);
  EXPECT_GT(src.max_throttle(), 0u);
  EXPECT_EQ(src.throttle(), 0u);  // reset at the end
  bool saw_throttle_reason = false;
  for (const auto& d : rep.decisions) {
    saw_throttle_reason |= d.reason.find("throttle up") != std::string::npos;
  }
  EXPECT_TRUE(saw_throttle_reason);
}

TEST(Migration, CompressionModesAndFullDigests) {
  for (const char* spec : {"off", "zstd:9", "auto"}) {
    FakeVm src(small_config());
    src.fill(4);
    RunSetup setup;
    setup.channels = 2;
    setup.sender.compression = *migration::parse_compression(spec);
    // Defaults are Tracked; this covers the Full re-hash / re-read paths on both sides.
    setup.sender.memory_digest = migration::DigestMode::Full;
    setup.sender.disk_digest = migration::DigestMode::Full;
    setup.receiver.memory_digest = migration::DigestMode::Full;
    setup.receiver.disk_digest = migration::DigestMode::Full;
    RunResult r = run_migration(src, setup);
    ASSERT_TRUE(*r.out) << spec << ": " << r.out->error().message();
    ASSERT_TRUE(*r.in) << spec;
    expect_identical(src, *r.dest());
    if (std::string(spec) == "off") {
      EXPECT_EQ((*r.out)->codecs.zstd, 0u);
    } else if (std::string(spec) == "zstd:9") {
      EXPECT_GT((*r.out)->codecs.zstd, 0u);
    }
  }
}

TEST(Migration, SameAsBeforePagesSendOnlyAHash) {
  FakeVmConfig c = small_config();
  c.regions = {{0, 4u << 20}};
  c.disk_sizes = {};
  FakeVm src(c);
  src.fill(5);
  RunSetup setup;
  setup.sender.downtime_target = std::chrono::milliseconds(0);  // never "fits": run rounds
  setup.sender.max_rounds = 3;
  setup.sender.progress_interval = std::chrono::milliseconds(10);
  setup.sender.compression = *migration::parse_compression("off");
  setup.to_dest.push_back(PipeFaults{.bytes_per_s = 20u << 20});
  // Pages written with the bytes they already hold: dirty, but the destination has them.
  setup.progress = [&](const migration::ProgressEvent& e) {
    if (e.phase == MigrationPhase::Brownout) {
      for (uint64_t p = 0; p < 64; ++p) {
        src.guest_touch_page(p);
      }
    }
  };
  RunResult r = run_migration(src, setup);
  ASSERT_TRUE(*r.out) << r.out->error().message();
  ASSERT_TRUE(*r.in);
  expect_identical(src, *r.dest());
  EXPECT_GT((*r.out)->codecs.same, 0u);
  EXPECT_EQ((*r.in)->report.codecs.same, (*r.out)->codecs.same);
}

TEST(Migration, MaxBandwidthCapsTheWireRate) {
  FakeVmConfig c = small_config();
  c.regions = {{0, 8u << 20}};
  c.disk_sizes = {};
  FakeVm src(c);
  src.fill(13);
  RunSetup setup;
  setup.channels = 2;
  setup.sender.max_bandwidth = 16u << 20;  // 16 MiB/s over both channels
  setup.sender.compression = *migration::parse_compression("off");
  RunResult r = run_migration(src, setup);
  ASSERT_TRUE(*r.out) << r.out->error().message();
  const auto& rep = **r.out;
  const double secs = (rep.end_ns - rep.start_ns) / 1e9;
  const double rate = rep.wire_bytes / secs;
  // ~6 MiB of records at 16 MiB/s: about 0.4 s. The limiter allows a 10 ms burst.
  EXPECT_LT(rate, 1.15 * (16u << 20)) << "wire rate " << rate;
  EXPECT_GT(secs, 0.8 * rep.wire_bytes / (16u << 20));
  expect_identical(src, *r.dest());
}

TEST(Migration, ProgressEventsAreEmitted) {
  FakeVmConfig c = small_config();
  c.regions = {{0, 8u << 20}};
  FakeVm src(c);
  src.fill(6);
  std::mutex mu;
  std::vector<migration::ProgressEvent> events;
  RunSetup setup;
  setup.sender.progress_interval = std::chrono::milliseconds(20);
  setup.sender.compression = *migration::parse_compression("off");
  setup.to_dest.push_back(PipeFaults{.bytes_per_s = 40u << 20});  // ~0.3 s
  setup.progress = [&](const migration::ProgressEvent& e) {
    std::lock_guard lock(mu);
    events.push_back(e);
  };
  RunResult r = run_migration(src, setup);
  ASSERT_TRUE(*r.out) << r.out->error().message();
  std::lock_guard lock(mu);
  ASSERT_GE(events.size(), 5u);
  bool brownout = false;
  for (const auto& e : events) {
    brownout |= e.phase == MigrationPhase::Brownout && e.remaining_bytes > 0 &&
                e.rate_bytes_per_s > 0 && e.eta_s >= 0;
  }
  EXPECT_TRUE(brownout);
  nlohmann::json j = migration::to_json(events.back());
  EXPECT_EQ(j["event"], "progress");
  EXPECT_TRUE(j.contains("eta_s"));
}

TEST(Migration, LostDirtyPageIsCaughtByTheDigest) {
  FakeVmConfig c = small_config();
  c.regions = {{0, 4u << 20}};
  c.disk_sizes = {};
  FakeVm src(c);
  src.fill(7);
  src.faults().lose_dirty_page = true;  // the final harvest forgets one page
  src.start_guest(512, 200'000);
  RunSetup setup;
  setup.sender.memory_digest = migration::DigestMode::Full;  // re-hash the real memory
  RunResult r = run_migration(src, setup);
  src.stop_guest();
  // Either no page was dirty at the final harvest (nothing to lose) or the digest caught it.
  if (!*r.out) {
    EXPECT_EQ(r.out->error().errc, MigrationErrc::PeerFailed) << r.out->error().message();
    EXPECT_NE(r.out->error().detail.find("digest mismatch"), std::string::npos);
    EXPECT_EQ(r.out->error().guest, GuestLocation::RunningOnSource);
    EXPECT_TRUE(src.running());
    ASSERT_FALSE(*r.in);
    EXPECT_EQ(r.in->error().errc, MigrationErrc::DigestMismatch);
    EXPECT_EQ(*r.dest_resumes, 0);
  } else {
    GTEST_LOG_(INFO) << "no dirty page at the final harvest this time";
  }
}

}  // namespace
}  // namespace ferry::testing
