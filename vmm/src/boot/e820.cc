#include "ferry/vmm/boot/e820.h"

#include <algorithm>

#include "ferry/vmm/boot/boot_structs.h"
#include "ferry/vmm/boot/layout.h"

namespace ferry::vmm::boot {

std::vector<E820Entry> build_e820(const GuestMemory& mem) {
  std::vector<E820Entry> map;
  for (const GuestRegion& region : mem.regions()) {
    if (region.size == 0) {
      continue;
    }
    if (region.gpa != 0 || region.size <= kEbdaStart) {
      map.push_back({region.gpa, region.size, kE820Ram});
      continue;
    }
    // The legacy hole [EBDA, 1 MiB) is carved out of the RAM that starts at 0: guests
    // (Linux included) expect BIOS/VGA space there and must not allocate it.
    map.push_back({0, kEbdaStart, kE820Ram});
    const uint64_t legacy_end = std::min(region.size, kKernelMinAddr);
    map.push_back({kEbdaStart, legacy_end - kEbdaStart, kE820Reserved});
    if (region.size > kKernelMinAddr) {
      map.push_back({kKernelMinAddr, region.size - kKernelMinAddr, kE820Ram});
    }
  }
  map.push_back({kMmioHoleStart, kMmioHoleEnd - kMmioHoleStart, kE820Reserved});
  std::sort(map.begin(), map.end(),
            [](const E820Entry& a, const E820Entry& b) { return a.addr < b.addr; });
  return map;
}

uint64_t ram_end_from(const GuestMemory& mem, uint64_t gpa) {
  for (const GuestRegion& region : mem.regions()) {
    if (gpa >= region.gpa && gpa - region.gpa < region.size) {
      return region.gpa + region.size;
    }
  }
  return 0;
}

}  // namespace ferry::vmm::boot
