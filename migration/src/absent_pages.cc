#include "absent_pages.h"

#include <sys/mman.h>
#include <sys/sysinfo.h>

#include <algorithm>
#include <array>

namespace ferry::migration::detail {

namespace {
constexpr size_t kMaxRun = 256;  // pages per mincore call
#ifndef MADV_POPULATE_WRITE
constexpr int MADV_POPULATE_WRITE = 23;  // Linux 5.14 uapi value, for older libc headers
#endif
}  // namespace

bool absent_means_zero() {
  struct sysinfo info {};
  return sysinfo(&info) == 0 && info.totalswap == 0;
}

void find_absent(const GuestPages& pages, std::span<const uint64_t> indices,
                 std::span<uint8_t> absent) {
  std::array<unsigned char, kMaxRun> vec{};
  size_t i = 0;
  while (i < indices.size()) {
    // A run of consecutive pages that are also contiguous in host memory: one call.
    uint8_t* start = pages.page(indices[i]).data();
    size_t n = 1;
    while (i + n < indices.size() && n < kMaxRun && indices[i + n] == indices[i] + n &&
           pages.page(indices[i + n]).data() == start + n * kPageSize) {
      ++n;
    }
    // SAFETY: [start, start + n pages) lies inside guest RAM's mapping; mincore only
    // reads page-table/page-cache state and fails (EINVAL/ENOMEM) rather than faulting.
    if (mincore(start, n * kPageSize, vec.data()) == 0) {
      for (size_t k = 0; k < n; ++k) {
        absent[i + k] = (vec[k] & 1) == 0 ? 1 : 0;
      }
    }
    i += n;
  }
}

bool kernel_can_populate() {
  // Asked once, on a scratch page: a failure on guest memory (unaligned test buffers, odd
  // mappings) must not turn the advice off for everyone.
  static const bool supported = [] {
    const size_t len = kPageSize;
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      return false;
    }
    const bool ok = madvise(p, len, MADV_POPULATE_WRITE) == 0;
    munmap(p, len);
    return ok;
  }();
  return supported;
}

void populate_for_write(const GuestPages& pages, uint64_t first, uint64_t count) {
  if (!kernel_can_populate()) {
    return;
  }
  uint64_t i = 0;
  while (i < count) {
    uint8_t* start = pages.page(first + i).data();
    uint64_t n = 1;
    while (i + n < count && pages.page(first + i + n).data() == start + n * kPageSize) {
      ++n;
    }
    // SAFETY: [start, start + n pages) lies inside guest RAM's writable mapping; the call
    // only faults the pages in, as the writes that follow would.
    // A failure (memory that cannot be populated) only means the writes fault as usual.
    (void)madvise(start, n * kPageSize, MADV_POPULATE_WRITE);
    i += n;
  }
}

}  // namespace ferry::migration::detail
