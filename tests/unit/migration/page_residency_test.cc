// The sender's zstd backoff on incompressible memory, and the receiver's pre-faulting of
// pages it is about to write (migration/src/compression_backoff.h, absent_pages.h).
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstdint>
#include <vector>

#include "absent_pages.h"
#include "compression_backoff.h"
#include "ferry/migration/dirty_set.h"

namespace ferry::migration::detail {
namespace {

// Probes until `failures` probes in a row found nothing to compress; returns how many
// raw batches followed the last failure.
uint32_t raw_batches_after_failures(CompressionBackoff& b, int failures) {
  for (int f = 0; f < failures; ++f) {
    while (!b.probe()) {
    }
    b.record(64, 0);
  }
  return b.batches_to_skip();
}

TEST(CompressionBackoff, ProbesEveryBatchWhileContentCompresses) {
  CompressionBackoff b;
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(b.probe());
    b.record(64, 40);
  }
}

TEST(CompressionBackoff, PauseDoublesWithEachFailedProbeUpToTheCap) {
  CompressionBackoff b;
  EXPECT_EQ(raw_batches_after_failures(b, 1), 16u);
  EXPECT_EQ(raw_batches_after_failures(b, 1), 32u);
  EXPECT_EQ(raw_batches_after_failures(b, 1), 64u);
  EXPECT_EQ(raw_batches_after_failures(b, 10), CompressionBackoff::kMaxSkip);
  // The pause really is that many raw batches, then a probe.
  for (uint32_t i = 0; i < CompressionBackoff::kMaxSkip; ++i) {
    ASSERT_FALSE(b.probe()) << i;
  }
  EXPECT_TRUE(b.probe());
}

TEST(CompressionBackoff, OneCompressibleBatchResetsThePause) {
  CompressionBackoff b;
  raw_batches_after_failures(b, 5);
  while (!b.probe()) {
  }
  b.record(64, 64);
  EXPECT_TRUE(b.probe());
  b.record(64, 0);
  EXPECT_EQ(b.batches_to_skip(), CompressionBackoff::kMinSkip);
}

TEST(CompressionBackoff, TinyBatchesDoNotDecide) {
  CompressionBackoff b;
  b.record(8, 0);
  EXPECT_TRUE(b.probe());
}

TEST(PopulateForWrite, MakesExactlyTheRequestedPagesResident) {
  constexpr uint64_t kPages = 64;
  void* mem = mmap(nullptr, kPages * kPageSize, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  if (!kernel_can_populate()) {
    munmap(mem, kPages * kPageSize);
    GTEST_SKIP() << "this kernel has no MADV_POPULATE_WRITE (Linux < 5.14)";
  }
  GuestPages pages({RamRegion{0x100000, kPages * kPageSize, static_cast<uint8_t*>(mem)}});
  std::vector<uint64_t> all(kPages);
  for (uint64_t i = 0; i < kPages; ++i) {
    all[i] = i;
  }
  std::vector<uint8_t> absent(kPages, 0);
  find_absent(pages, all, absent);
  for (uint64_t i = 0; i < kPages; ++i) {
    ASSERT_EQ(absent[i], 1) << "page " << i << " resident before anything touched it";
  }

  populate_for_write(pages, 8, 16);

  std::fill(absent.begin(), absent.end(), 0);
  find_absent(pages, all, absent);
  for (uint64_t i = 0; i < kPages; ++i) {
    EXPECT_EQ(absent[i], (i >= 8 && i < 24) ? 0 : 1) << "page " << i;
  }
  // Populated pages still read as zero.
  for (uint64_t i = 8; i < 24; ++i) {
    for (uint8_t byte : pages.page(i)) {
      ASSERT_EQ(byte, 0);
    }
  }
  munmap(mem, kPages * kPageSize);
}

}  // namespace
}  // namespace ferry::migration::detail
