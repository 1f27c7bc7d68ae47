// Guest RAM for the virtio fuzzers: two heap blocks of exactly their size (so ASan flags
// any access past a region), 64 KiB at gpa 0 and 4 KiB at 1 MiB, filled from the input.
// drain_queue() plays a device: pops chains, touches every byte of every buffer the
// walker vouched for (through GuestMemory's views), and completes them.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "ferry/vmm/devices/virtqueue.h"
#include "ferry/vmm/guest_memory.h"

namespace ferry::fuzz {

inline constexpr uint64_t kLowRamSize = 64 << 10;
inline constexpr uint64_t kHighRamGpa = 1 << 20;
inline constexpr uint64_t kHighRamSize = 4 << 10;

class FuzzRam {
 public:
  explicit FuzzRam(std::span<const uint8_t> contents)
      : low_(std::make_unique<uint8_t[]>(kLowRamSize)),
        high_(std::make_unique<uint8_t[]>(kHighRamSize)) {
    const size_t n = contents.size() < kLowRamSize ? contents.size() : kLowRamSize;
    if (n != 0) {
      std::memcpy(low_.get(), contents.data(), n);
    }
    mem_ = vmm::GuestMemory::wrap({vmm::GuestRegion{0, kLowRamSize, low_.get(), 0, 0},
                                   vmm::GuestRegion{kHighRamGpa, kHighRamSize, high_.get(), 1,
                                                    kLowRamSize / vmm::kGuestPageSize}});
  }
  vmm::GuestMemory& mem() { return *mem_; }

 private:
  std::unique_ptr<uint8_t[]> low_;
  std::unique_ptr<uint8_t[]> high_;
  std::unique_ptr<vmm::GuestMemory> mem_;
};

/// Pops up to `max_chains` chains and completes each; false once the ring is broken.
inline bool drain_queue(vmm::Virtqueue& q, vmm::GuestMemory& mem, int max_chains) {
  for (int i = 0; i < max_chains; ++i) {
    auto popped = q.pop();
    if (!popped) {
      return false;
    }
    if (!popped->has_value()) {
      return true;
    }
    uint32_t written = 0;
    if ((*popped)->chain) {
      const vmm::DescriptorChain& chain = *(*popped)->chain;
      uint64_t readable = 0, writable = 0;
      bool seen_writable = false;
      for (const vmm::DescBuffer& b : chain.buffers) {
        // The walker's promises: inside one region, readable buffers first.
        if ((!b.device_writable && seen_writable) || !mem.contains(b.addr, b.len)) {
          std::abort();
        }
        seen_writable = seen_writable || b.device_writable;
        if (b.device_writable) {
          auto view = mem.writable_view(b.addr, b.len);
          std::memset(view->data(), 0x5a, view->size());
          writable += b.len;
        } else {
          auto view = mem.view(b.addr, b.len);
          volatile uint8_t sink = 0;
          for (uint8_t byte : *view) {
            sink = static_cast<uint8_t>(sink ^ byte);
          }
          readable += b.len;
        }
      }
      if (readable != chain.readable_bytes || writable != chain.writable_bytes) {
        std::abort();
      }
      written = static_cast<uint32_t>(writable);
    }
    if (!q.push_used((*popped)->head, written)) {
      return false;
    }
  }
  return true;
}

}  // namespace ferry::fuzz
