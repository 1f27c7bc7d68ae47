// Device interfaces of the VMM's I/O buses. The vCPU loop routes KVM_EXIT_MMIO and
// KVM_EXIT_IO to the device registered at the address; devices raise interrupts through
// IrqLine. Accesses are at most 8 bytes; `offset` is relative to the device's base.
#pragma once

#include <cstdint>
#include <span>

namespace ferry::vmm {

/// A device on the guest-physical MMIO bus.
class MmioDevice {
 public:
  virtual ~MmioDevice() = default;
  /// Fills `data` (1..8 bytes) with the register value at `offset`; unknown offsets read 0.
  virtual void mmio_read(uint64_t offset, std::span<uint8_t> data) = 0;
  /// Handles a guest write; unknown offsets and bad sizes are ignored (and may be logged).
  virtual void mmio_write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

/// A device on the x86 port I/O bus.
class PioDevice {
 public:
  virtual ~PioDevice() = default;
  virtual void pio_read(uint16_t offset, std::span<uint8_t> data) = 0;
  virtual void pio_write(uint16_t offset, std::span<const uint8_t> data) = 0;
};

/// An interrupt line into the in-kernel irqchip (IOAPIC pin / PIC line).
class IrqLine {
 public:
  virtual ~IrqLine() = default;
  /// Level-triggered assert/deassert.
  virtual void set_level(bool asserted) = 0;
  /// Edge: assert then deassert.
  virtual void pulse() = 0;
};

}  // namespace ferry::vmm
