#include "ferry/vmm/io_bus.h"

#include <cstring>

namespace ferry::vmm {

bool IoBus::add_pio(uint16_t base, uint16_t size, PioDevice* device) {
  for (const PioRange& r : pio_) {
    if (base < r.base + r.size && r.base < base + size) {
      return false;
    }
  }
  pio_.push_back({base, size, device});
  return true;
}

bool IoBus::add_mmio(uint64_t base, uint64_t size, MmioDevice* device) {
  for (const MmioRange& r : mmio_) {
    if (base < r.base + r.size && r.base < base + size) {
      return false;
    }
  }
  mmio_.push_back({base, size, device});
  return true;
}

bool IoBus::pio_read(uint16_t port, std::span<uint8_t> data) {
  for (const PioRange& r : pio_) {
    if (port >= r.base && port - r.base < r.size) {
      r.device->pio_read(static_cast<uint16_t>(port - r.base), data);
      return true;
    }
  }
  std::memset(data.data(), 0xff, data.size());
  unclaimed_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

bool IoBus::pio_write(uint16_t port, std::span<const uint8_t> data) {
  for (const PioRange& r : pio_) {
    if (port >= r.base && port - r.base < r.size) {
      r.device->pio_write(static_cast<uint16_t>(port - r.base), data);
      return true;
    }
  }
  unclaimed_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

bool IoBus::mmio_read(uint64_t gpa, std::span<uint8_t> data) {
  for (const MmioRange& r : mmio_) {
    if (gpa >= r.base && gpa - r.base < r.size) {
      r.device->mmio_read(gpa - r.base, data);
      return true;
    }
  }
  std::memset(data.data(), 0xff, data.size());
  unclaimed_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

bool IoBus::mmio_write(uint64_t gpa, std::span<const uint8_t> data) {
  for (const MmioRange& r : mmio_) {
    if (gpa >= r.base && gpa - r.base < r.size) {
      r.device->mmio_write(gpa - r.base, data);
      return true;
    }
  }
  unclaimed_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

}  // namespace ferry::vmm
