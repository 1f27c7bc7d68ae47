// Virtqueue: the device side of one virtio 1.x split virtqueue (virtio spec v1.2 §2.7).
// Every guest-supplied value is checked before use: ring areas and buffers must lie in
// guest RAM (GuestMemory), descriptor indices must be < queue size, a chain has at most
// queue-size descriptors (so loops end), and chain lengths are capped. All reads and
// writes of guest memory go through GuestMemory, so used-ring writes are marked dirty.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "ferry/kernel-interfaces/result.h"
#include "ferry/vmm/guest_memory.h"

namespace ferry::vmm {

/// Largest queue size the spec allows for a split ring.
inline constexpr uint16_t kMaxSplitQueueSize = 32768;

// Descriptor flags (virtq_desc.flags) and ring flags.
inline constexpr uint16_t kVirtqDescFNext = 1;
inline constexpr uint16_t kVirtqDescFWrite = 2;
inline constexpr uint16_t kVirtqDescFIndirect = 4;
inline constexpr uint16_t kVirtqAvailFNoInterrupt = 1;

/// Everything that describes a queue to the device, as set through the transport, plus
/// the device's progress through the rings (non-zero only after a state restore).
struct VirtqueueState {
  uint16_t size = 0;
  bool ready = false;
  uint64_t desc_addr = 0;       // descriptor table (QueueDesc)
  uint64_t driver_addr = 0;     // available ring (QueueDriver)
  uint64_t device_addr = 0;     // used ring (QueueDevice)
  uint16_t last_avail_idx = 0;  // next avail ring slot the device will consume
  uint16_t used_idx = 0;        // next used ring slot the device will fill
};

/// Why a queue or a chain was refused.
enum class QueueErrc {
  Invalid = 0,
  BadSize,          // queue size 0, not a power of two, or too large
  RingOutsideRam,   // descriptor table / avail / used ring not inside guest RAM
  RingMisaligned,   // ring address not aligned as §2.7 requires
  AvailIdxJump,     // avail->idx moved by more than the queue size: driver is broken
  HeadOutOfRange,   // avail ring names a head descriptor >= queue size
  IndexOutOfRange,  // a descriptor's next field >= queue size
  ChainLoop,        // more descriptors in one chain than the queue holds
  IndirectNotNegotiated,
  BufferOutsideRam,  // [addr, addr+len) not wholly inside one RAM region
  ChainTooLong,      // total bytes of the chain above the cap
  WriteBeforeRead,   // a device-readable descriptor after a device-writable one
  UsedRingWrite,     // writing the used ring failed (ring left RAM: cannot happen once valid)
};

/// Short human text for an errc ("descriptor index out of range").
std::string_view queue_errc_name(QueueErrc errc);

/// One buffer of a descriptor chain, already checked to lie inside guest RAM.
struct DescBuffer {
  uint64_t addr = 0;
  uint32_t len = 0;
  bool device_writable = false;
};

/// A validated descriptor chain: all device-readable buffers come before all
/// device-writable ones (§2.7.4.2), lengths summed without overflow.
struct DescriptorChain {
  uint16_t head = 0;
  std::vector<DescBuffer> buffers;
  uint64_t readable_bytes = 0;
  uint64_t writable_bytes = 0;
};

/// A head popped from the avail ring whose chain may or may not be valid. A bad chain
/// is that request's failure: the device completes `head` with used length 0.
struct PoppedChain {
  uint16_t head = 0;
  Result<DescriptorChain, QueueErrc> chain;
};

class Virtqueue {
 public:
  /// Validates `state` (size, alignment, rings inside RAM) and builds the queue.
  /// `max_chain_bytes` caps the sum of a chain's buffer lengths.
  static Result<Virtqueue, QueueErrc> create(GuestMemory& mem, const VirtqueueState& state,
                                             uint64_t max_chain_bytes);

  /// Pops the next available chain, nullopt when the ring is empty. An error here
  /// (AvailIdxJump, HeadOutOfRange) means the driver broke the ring: NEEDS_RESET.
  Result<std::optional<PoppedChain>, QueueErrc> pop();
  /// Puts `head` on the used ring with `len` bytes written, then publishes used->idx.
  Result<void, QueueErrc> push_used(uint16_t head, uint32_t len);
  /// True unless the driver set VIRTQ_AVAIL_F_NO_INTERRUPT (no EVENT_IDX offered).
  bool should_interrupt() const;
  /// Number of chains the driver made available that the device has not popped.
  Result<uint16_t, QueueErrc> pending() const;

  /// The current configuration and ring progress, for save/restore.
  VirtqueueState state() const;
  uint16_t size() const { return size_; }

 private:
  Virtqueue(GuestMemory& mem, const VirtqueueState& state, uint64_t max_chain_bytes);
  Result<DescriptorChain, QueueErrc> walk_chain(uint16_t head) const;

  GuestMemory* mem_;
  uint16_t size_;
  uint64_t desc_addr_;
  uint64_t avail_addr_;
  uint64_t used_addr_;
  uint16_t last_avail_idx_;
  uint16_t used_idx_;
  uint64_t max_chain_bytes_;
};

/// Bytes the rings of a queue of `size` entries occupy (§2.7: 16*size, 6+2*size, 6+8*size).
inline constexpr uint64_t desc_table_bytes(uint16_t size) { return 16ull * size; }
inline constexpr uint64_t avail_ring_bytes(uint16_t size) { return 6ull + 2ull * size; }
inline constexpr uint64_t used_ring_bytes(uint16_t size) { return 6ull + 8ull * size; }

}  // namespace ferry::vmm
