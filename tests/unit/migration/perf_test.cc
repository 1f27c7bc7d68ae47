// Throughput and blackout figures of the engine itself (fake VM, in-memory streams, no
// network): printed for docs/migration.md, asserted only loosely so a loaded CI machine
// does not fail them.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>

#include "ferry/migration/page_codec.h"
#include "ferry/kernel-interfaces/sanitizers.h"
#include "harness.h"

namespace ferry::testing {
namespace {

#if defined(FERRY_UNDER_TSAN) || defined(FERRY_UNDER_ASAN)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

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
  if (kSanitized) {
    GTEST_SKIP() << "figures are meaningless under a sanitizer";
  }
  run_one("idle, raw", 64, 1, "off", migration::DigestMode::Tracked, false);
  run_one("idle, auto, 2 channels", 64, 2, "auto", migration::DigestMode::Tracked, false);
  run_one("50 MiB/s dirtying, tracked", 64, 2, "auto", migration::DigestMode::Tracked, true);
  run_one("50 MiB/s dirtying, full", 64, 2, "auto", migration::DigestMode::Full, true);
}

TEST(Perf, CodecThroughputPerLevel) {
  if (kSanitized) {
    GTEST_SKIP() << "figures are meaningless under a sanitizer";
  }
  FakeVmConfig c;
  c.regions = {{0, 16u << 20}};
  FakeVm vm(c);
  vm.fill(12);  // 1/4 zero, 1/4 text, 1/2 random pages
  std::vector<uint8_t> mem = vm.memory();
  migration::BlockEncoder enc;
  migration::BlockDecoder dec;
  std::vector<uint8_t> out(4096);
  for (int level : {0, 1, 3, 6}) {
    std::vector<uint8_t> payload;
    payload.reserve(mem.size() + (1 << 20));
    std::vector<migration::EncodedBlock> blocks;
    auto t0 = std::chrono::steady_clock::now();
    for (size_t off = 0; off < mem.size(); off += 4096) {
      blocks.push_back(enc.encode(std::span(mem.data() + off, 4096), level, false, 0, payload));
    }
    auto t1 = std::chrono::steady_clock::now();
    size_t pos = 0;
    for (const auto& b : blocks) {
      if (b.codec != migration::PageCodec::Zero) {
        ASSERT_TRUE(
            dec.decode(b.codec, std::span(payload.data() + pos, b.payload_length), b.hash, out));
      }
      pos += b.payload_length;
    }
    auto t2 = std::chrono::steady_clock::now();
    double enc_s = std::chrono::duration<double>(t1 - t0).count();
    double dec_s = std::chrono::duration<double>(t2 - t1).count();
    std::printf("[perf] codec level %d: encode %7.0f MiB/s, decode %7.0f MiB/s, ratio %.2f\n",
                level, mem.size() / enc_s / 1048576.0, mem.size() / dec_s / 1048576.0,
                static_cast<double>(mem.size()) / std::max<size_t>(payload.size(), 1));
  }
}

}  // namespace
}  // namespace ferry::testing
