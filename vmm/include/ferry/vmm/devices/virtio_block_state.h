// VirtioBlockState: everything a virtio-mmio block device needs to continue on another
// VMM after its in-flight requests were drained: the transport registers, the negotiated
// features, each queue's rings and progress, the interrupt status and the disk's
// identity (capacity, read-only). Encoded little-endian through ByteWriter/ByteReader;
// docs/virtio-block.md lists the byte layout.
#pragma once

#include <cstdint>

#include "ferry/kernel-interfaces/le_bytes.h"
#include "ferry/vmm/devices/virtio_mmio.h"
#include "ferry/vmm/vmm_error.h"

namespace ferry::vmm {

struct VirtioBlockState {
  /// "VBLK" and the layout version; decode rejects anything else.
  static constexpr uint32_t kMagic = 0x4b4c4256;
  static constexpr uint16_t kVersion = 1;
  /// Upper bound on queues in a decoded state (the block device has one).
  static constexpr uint32_t kMaxQueues = 16;

  uint64_t capacity_sectors = 0;
  bool read_only = false;
  VirtioMmioState transport;  // queues carry last_avail_idx / used_idx
};

/// Appends `state` to `out`.
void encode_virtio_block_state(const VirtioBlockState& state, ByteWriter& out);
/// Reads one state, rejecting a bad magic/version, truncation, unknown status or
/// interrupt bits, queue sizes that are zero/not a power of two/too large, a ready queue
/// with misaligned rings, and an impossible ring progress (used beyond avail).
VmmResult<VirtioBlockState> decode_virtio_block_state(ByteReader& in);

}  // namespace ferry::vmm
