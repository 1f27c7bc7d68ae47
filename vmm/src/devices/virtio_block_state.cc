#include "ferry/vmm/devices/virtio_block_state.h"

#include <fmt/format.h>

#include <bit>

namespace ferry::vmm {

namespace {

constexpr uint16_t kFlagReadOnly = 1;
constexpr uint32_t kKnownStatus = kVirtioStatusAcknowledge | kVirtioStatusDriver |
                                  kVirtioStatusDriverOk | kVirtioStatusFeaturesOk |
                                  kVirtioStatusNeedsReset | kVirtioStatusFailed;
constexpr uint32_t kKnownInterrupts = kVirtioInterruptUsedBuffer | kVirtioInterruptConfigChange;

VmmError bad_state(const std::string& what) {
  return vmm_error(VmmErrc::RestoreState, "virtio-blk state: " + what);
}

void encode_queue(const VirtqueueState& q, ByteWriter& out) {
  out.u16(q.size);
  out.u8(q.ready ? 1 : 0);
  out.u8(0);  // reserved
  out.u64(q.desc_addr);
  out.u64(q.driver_addr);
  out.u64(q.device_addr);
  out.u16(q.last_avail_idx);
  out.u16(q.used_idx);
}

VmmResult<VirtqueueState> decode_queue(ByteReader& in, uint32_t index) {
  VirtqueueState q;
  uint8_t ready = 0;
  uint8_t reserved = 0;
  in.u16(q.size);
  in.u8(ready);
  in.u8(reserved);
  in.u64(q.desc_addr);
  in.u64(q.driver_addr);
  in.u64(q.device_addr);
  in.u16(q.last_avail_idx);
  in.u16(q.used_idx);
  if (!in.ok()) {
    return fail(bad_state(fmt::format("queue {} truncated", index)));
  }
  if (ready > 1 || reserved != 0) {
    return fail(bad_state(fmt::format("queue {}: ready {} reserved {}", index, ready, reserved)));
  }
  q.ready = ready == 1;
  if (q.size == 0 || q.size > kMaxSplitQueueSize || !std::has_single_bit(q.size)) {
    return fail(bad_state(fmt::format("queue {}: size {}", index, q.size)));
  }
  if (q.ready && (q.desc_addr % 16 != 0 || q.driver_addr % 2 != 0 || q.device_addr % 4 != 0)) {
    return fail(bad_state(fmt::format("queue {}: misaligned ring", index)));
  }
  // The device never has more chains popped than the ring holds.
  if (static_cast<uint16_t>(q.last_avail_idx - q.used_idx) > q.size) {
    return fail(bad_state(fmt::format("queue {}: used index {} too far behind avail {}", index,
                                      q.used_idx, q.last_avail_idx)));
  }
  if (!q.ready && (q.last_avail_idx != 0 || q.used_idx != 0)) {
    return fail(bad_state(fmt::format("queue {}: progress on a queue that is not ready", index)));
  }
  return q;
}

}  // namespace

void encode_virtio_block_state(const VirtioBlockState& state, ByteWriter& out) {
  out.u32(VirtioBlockState::kMagic);
  out.u16(VirtioBlockState::kVersion);
  out.u16(state.read_only ? kFlagReadOnly : 0);
  out.u64(state.capacity_sectors);
  const VirtioMmioState& t = state.transport;
  out.u32(t.status);
  out.u64(t.driver_features);
  out.u32(t.device_features_sel);
  out.u32(t.driver_features_sel);
  out.u32(t.queue_sel);
  out.u32(t.interrupt_status);
  out.u32(t.config_generation);
  out.u32(static_cast<uint32_t>(t.queues.size()));
  for (const VirtqueueState& q : t.queues) {
    encode_queue(q, out);
  }
}

VmmResult<VirtioBlockState> decode_virtio_block_state(ByteReader& in) {
  uint32_t magic = 0;
  uint16_t version = 0;
  uint16_t flags = 0;
  VirtioBlockState state;
  VirtioMmioState& t = state.transport;
  uint32_t queue_count = 0;
  in.u32(magic);
  in.u16(version);
  in.u16(flags);
  in.u64(state.capacity_sectors);
  in.u32(t.status);
  in.u64(t.driver_features);
  in.u32(t.device_features_sel);
  in.u32(t.driver_features_sel);
  in.u32(t.queue_sel);
  in.u32(t.interrupt_status);
  in.u32(t.config_generation);
  in.u32(queue_count);
  if (!in.ok()) {
    return fail(bad_state("truncated"));
  }
  if (magic != VirtioBlockState::kMagic || version != VirtioBlockState::kVersion) {
    return fail(
        bad_state(fmt::format("magic {:#x} version {} (want {:#x} version {})", magic, version,
                              VirtioBlockState::kMagic, VirtioBlockState::kVersion)));
  }
  if ((flags & ~kFlagReadOnly) != 0) {
    return fail(bad_state(fmt::format("unknown flags {:#x}", flags)));
  }
  state.read_only = (flags & kFlagReadOnly) != 0;
  if (state.capacity_sectors == 0) {
    return fail(bad_state("zero capacity"));
  }
  if ((t.status & ~kKnownStatus) != 0) {
    return fail(bad_state(fmt::format("unknown status bits {:#x}", t.status)));
  }
  if ((t.interrupt_status & ~kKnownInterrupts) != 0) {
    return fail(bad_state(fmt::format("unknown interrupt bits {:#x}", t.interrupt_status)));
  }
  if (queue_count > VirtioBlockState::kMaxQueues) {
    return fail(
        bad_state(fmt::format("{} queues (max {})", queue_count, VirtioBlockState::kMaxQueues)));
  }
  for (uint32_t i = 0; i < queue_count; ++i) {
    auto q = decode_queue(in, i);
    if (!q) {
      return fail(q.error());
    }
    t.queues.push_back(*q);
  }
  return state;
}

}  // namespace ferry::vmm
