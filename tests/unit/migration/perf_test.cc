// Throughput and blackout figures of the engine itself (fake VM, in-memory streams, no
// network): printed for docs/migration.md, asserted only loosely so a loaded CI machine
// does not fail them.
#include <gtest/gtest.h>

#include <cstdio>

#include "harness.h"

namespace ferry::testing {
namespace {

void run_one(const char* name, uint64_t mib, size_t channels, const char* compress,
             migration::DigestMode digest, bool dirtying) {
  FakeVmConfig c;
  c.regions = {{0, mib << 20}};
  c.disk_sizes = {};
  FakeVm src(c);
  src.fill(11);
  if (dirtying) {
    src.start_guest(8192, 12'800);  // 50 MiB/s of page writes over a 32 MiB working set
  }
  RunSetup s;
  s.channels = channels;
  s.sender.compression = *migration::parse_compression(compress);
  s.sender.memory_digest = digest;
  s.receiver.memory_digest = digest;
  RunResult r = run_migration(src, s);
  src.stop_guest();
  ASSERT_TRUE(*r.out) << r.out->error().message();
  ASSERT_TRUE(*r.in) << r.in->error().message();
  const auto& rep = **r.out;
  double secs = (rep.end_ns - rep.start_ns) / 1e9;
  std::printf(
      "[perf] %-28s %4llu MiB ch=%zu %-6s digest=%-7s total %7.1f ms  %7.1f MiB/s guest"
      "  wire %6.1f MiB  rounds %zu  blackout %6.2f ms (digest %5.2f ms)\n",
      name, static_cast<unsigned long long>(mib), channels, compress,
      digest == migration::DigestMode::Full ? "full" : "tracked", secs * 1e3,
      rep.guest_bytes / secs / 1048576.0, rep.wire_bytes / 1048576.0, rep.rounds.size(),
      rep.blackout_ns / 1e6, rep.digest_ns / 1e6);
  EXPECT_TRUE(src.memory() == r.dest()->memory());
  EXPECT_GT(rep.guest_bytes / secs, 20e6);  // loose floor: 20 MB/s even on a busy machine
}

TEST(Perf, EngineThroughputAndBlackout) {
  run_one("idle, raw", 128, 1, "off", migration::DigestMode::Tracked, false);
  run_one("idle, auto", 128, 1, "auto", migration::DigestMode::Tracked, false);
  run_one("idle, auto, 2 channels", 128, 2, "auto", migration::DigestMode::Tracked, false);
  run_one("idle, auto, full digest", 128, 2, "auto", migration::DigestMode::Full, false);
  run_one("50 MiB/s dirtying, tracked", 128, 2, "auto", migration::DigestMode::Tracked, true);
  run_one("50 MiB/s dirtying, full", 128, 2, "auto", migration::DigestMode::Full, true);
}

}  // namespace
}  // namespace ferry::testing
