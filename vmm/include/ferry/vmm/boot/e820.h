// The guest's physical memory map as the boot protocols report it (e820 types): RAM from
// GuestMemory::regions(), the legacy area [EBDA, 1 MiB) and the 3-4 GiB MMIO hole
// reserved. The same table feeds the Linux zero page, the PVH memmap and multiboot mmap.
#pragma once

#include <cstdint>
#include <vector>

#include "ferry/vmm/guest_memory.h"

namespace ferry::vmm::boot {

struct E820Entry {
  uint64_t addr = 0;
  uint64_t size = 0;
  uint32_t type = 0;  // kE820Ram or kE820Reserved (boot_structs.h)

  bool operator==(const E820Entry&) const = default;
};

/// Builds the map, sorted by address and non-overlapping.
std::vector<E820Entry> build_e820(const GuestMemory& mem);

/// End of the RAM region that contains `gpa` (0 if none): the highest address + 1 a
/// contiguous object starting at gpa may reach.
uint64_t ram_end_from(const GuestMemory& mem, uint64_t gpa);

}  // namespace ferry::vmm::boot
