// IoBus: routes guest port I/O and MMIO exits to the device registered at the address.
// Ranges may not overlap; an access to no device is counted and answered with all-ones
// (reads) or dropped (writes), like an empty ISA/PCI bus. Registration happens before
// vCPUs start; lookups afterwards are lock-free reads of an immutable table.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <vector>

#include "ferry/vmm/bus.h"

namespace ferry::vmm {

class IoBus {
 public:
  /// Registers `device` for [base, base + size). False if the range overlaps another.
  bool add_pio(uint16_t base, uint16_t size, PioDevice* device);
  bool add_mmio(uint64_t base, uint64_t size, MmioDevice* device);

  /// Dispatches an access; returns false if no device claimed it.
  bool pio_read(uint16_t port, std::span<uint8_t> data);
  bool pio_write(uint16_t port, std::span<const uint8_t> data);
  bool mmio_read(uint64_t gpa, std::span<uint8_t> data);
  bool mmio_write(uint64_t gpa, std::span<const uint8_t> data);

  /// Accesses that hit no device since start (reported in `status`).
  uint64_t unclaimed_accesses() const { return unclaimed_.load(std::memory_order_relaxed); }

 private:
  struct PioRange {
    uint16_t base, size;
    PioDevice* device;
  };
  struct MmioRange {
    uint64_t base, size;
    MmioDevice* device;
  };
  std::vector<PioRange> pio_;
  std::vector<MmioRange> mmio_;
  std::atomic<uint64_t> unclaimed_{0};
};

}  // namespace ferry::vmm
