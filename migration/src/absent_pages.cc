#include "absent_pages.h"

#include <sys/mman.h>
#include <sys/sysinfo.h>

#include <algorithm>
#include <array>

namespace ferry::migration::detail {

namespace {
constexpr size_t kMaxRun = 256;  // pages per mincore call
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

}  // namespace ferry::migration::detail
