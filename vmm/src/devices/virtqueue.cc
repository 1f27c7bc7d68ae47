#include "ferry/vmm/devices/virtqueue.h"

#include <bit>

namespace ferry::vmm {

namespace {

// Ring layouts of §2.7 (guest byte order is little-endian, as is the host's).
static_assert(std::endian::native == std::endian::little);

struct VirtqDesc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(VirtqDesc) == 16);

struct VirtqUsedElem {
  uint32_t id;
  uint32_t len;
};
static_assert(sizeof(VirtqUsedElem) == 8);

// Ring indices and flags are read and written atomically in place: they are the
// synchronisation points with the driver (acquire on avail->idx pairs with the driver's
// write barrier; the seq_cst store of used->idx orders it before the flags read in
// should_interrupt). Alignment is guaranteed by the ring alignment checked in create().
std::optional<uint16_t> load_u16(const GuestMemory& mem, uint64_t gpa, int order) {
  auto v = mem.view(gpa, sizeof(uint16_t));
  if (!v) {
    return std::nullopt;
  }
  // SAFETY: the view lies in guest RAM and gpa is 2-byte aligned (ring alignment).
  return __atomic_load_n(reinterpret_cast<const uint16_t*>(v->data()), order);
}

bool store_u16(GuestMemory& mem, uint64_t gpa, uint16_t value, int order) {
  auto v = mem.writable_view(gpa, sizeof(uint16_t));  // marks the page VMM-dirty
  if (!v) {
    return false;
  }
  // SAFETY: the view lies in guest RAM and gpa is 2-byte aligned (ring alignment).
  __atomic_store_n(reinterpret_cast<uint16_t*>(v->data()), value, order);
  return true;
}

constexpr uint64_t kAvailIdxOffset = 2;
constexpr uint64_t kAvailRingOffset = 4;
constexpr uint64_t kUsedIdxOffset = 2;
constexpr uint64_t kUsedRingOffset = 4;

}  // namespace

std::string_view queue_errc_name(QueueErrc errc) {
  switch (errc) {
    case QueueErrc::Invalid:
      return "invalid";
    case QueueErrc::BadSize:
      return "queue size not a power of two in 1..max";
    case QueueErrc::RingOutsideRam:
      return "ring outside guest RAM";
    case QueueErrc::RingMisaligned:
      return "ring address misaligned";
    case QueueErrc::AvailIdxJump:
      return "avail index moved by more than the queue size";
    case QueueErrc::HeadOutOfRange:
      return "head descriptor index out of range";
    case QueueErrc::IndexOutOfRange:
      return "descriptor index out of range";
    case QueueErrc::ChainLoop:
      return "descriptor chain loops";
    case QueueErrc::IndirectNotNegotiated:
      return "indirect descriptor not negotiated";
    case QueueErrc::BufferOutsideRam:
      return "buffer outside guest RAM";
    case QueueErrc::ChainTooLong:
      return "descriptor chain too long";
    case QueueErrc::WriteBeforeRead:
      return "readable descriptor after a writable one";
    case QueueErrc::UsedRingWrite:
      return "used ring write failed";
  }
  return "unknown";
}

Result<Virtqueue, QueueErrc> Virtqueue::create(GuestMemory& mem, const VirtqueueState& state,
                                               uint64_t max_chain_bytes) {
  if (state.size == 0 || state.size > kMaxSplitQueueSize || !std::has_single_bit(state.size)) {
    return fail(QueueErrc::BadSize);
  }
  if (state.desc_addr % 16 != 0 || state.driver_addr % 2 != 0 || state.device_addr % 4 != 0) {
    return fail(QueueErrc::RingMisaligned);
  }
  if (!mem.contains(state.desc_addr, desc_table_bytes(state.size)) ||
      !mem.contains(state.driver_addr, avail_ring_bytes(state.size)) ||
      !mem.contains(state.device_addr, used_ring_bytes(state.size))) {
    return fail(QueueErrc::RingOutsideRam);
  }
  return Virtqueue(mem, state, max_chain_bytes);
}

Virtqueue::Virtqueue(GuestMemory& mem, const VirtqueueState& state, uint64_t max_chain_bytes)
    : mem_(&mem),
      size_(state.size),
      desc_addr_(state.desc_addr),
      avail_addr_(state.driver_addr),
      used_addr_(state.device_addr),
      last_avail_idx_(state.last_avail_idx),
      used_idx_(state.used_idx),
      max_chain_bytes_(max_chain_bytes) {}

Result<uint16_t, QueueErrc> Virtqueue::pending() const {
  // Acquire: the ring entries and descriptors the driver wrote before idx are visible.
  auto avail_idx = load_u16(*mem_, avail_addr_ + kAvailIdxOffset, __ATOMIC_ACQUIRE);
  if (!avail_idx) {
    return fail(QueueErrc::RingOutsideRam);
  }
  const uint16_t pending = static_cast<uint16_t>(*avail_idx - last_avail_idx_);
  if (pending > size_) {
    return fail(QueueErrc::AvailIdxJump);
  }
  return pending;
}

Result<std::optional<PoppedChain>, QueueErrc> Virtqueue::pop() {
  auto pending_count = pending();
  if (!pending_count) {
    return fail(pending_count.error());
  }
  if (*pending_count == 0) {
    return std::optional<PoppedChain>{};
  }
  const uint64_t slot = last_avail_idx_ % size_;
  auto head = mem_->read_obj<uint16_t>(avail_addr_ + kAvailRingOffset + 2 * slot);
  if (!head) {
    return fail(QueueErrc::RingOutsideRam);
  }
  if (*head >= size_) {
    return fail(QueueErrc::HeadOutOfRange);
  }
  ++last_avail_idx_;
  return std::optional<PoppedChain>(PoppedChain{*head, walk_chain(*head)});
}

Result<DescriptorChain, QueueErrc> Virtqueue::walk_chain(uint16_t head) const {
  DescriptorChain chain;
  chain.head = head;
  uint16_t index = head;
  uint64_t total = 0;
  bool seen_writable = false;
  for (uint32_t count = 0;; ++count) {
    if (index >= size_) {
      return fail(QueueErrc::IndexOutOfRange);
    }
    // A chain of more than size_ descriptors must revisit one: that is a loop.
    if (count >= size_) {
      return fail(QueueErrc::ChainLoop);
    }
    auto desc = mem_->read_obj<VirtqDesc>(desc_addr_ + 16ull * index);
    if (!desc) {
      return fail(QueueErrc::RingOutsideRam);
    }
    if ((desc->flags & kVirtqDescFIndirect) != 0) {
      return fail(QueueErrc::IndirectNotNegotiated);
    }
    // total <= max_chain_bytes_ before the add, and len < 2^32: no overflow.
    total += desc->len;
    if (total > max_chain_bytes_) {
      return fail(QueueErrc::ChainTooLong);
    }
    if (!mem_->contains(desc->addr, desc->len)) {
      return fail(QueueErrc::BufferOutsideRam);
    }
    const bool writable = (desc->flags & kVirtqDescFWrite) != 0;
    if (!writable && seen_writable) {
      return fail(QueueErrc::WriteBeforeRead);
    }
    seen_writable = seen_writable || writable;
    (writable ? chain.writable_bytes : chain.readable_bytes) += desc->len;
    chain.buffers.push_back(DescBuffer{desc->addr, desc->len, writable});
    if ((desc->flags & kVirtqDescFNext) == 0) {
      return chain;
    }
    index = desc->next;
  }
}

Result<void, QueueErrc> Virtqueue::push_used(uint16_t head, uint32_t len) {
  const uint64_t slot = used_idx_ % size_;
  if (!mem_->write_obj(used_addr_ + kUsedRingOffset + 8 * slot, VirtqUsedElem{head, len})) {
    return fail(QueueErrc::UsedRingWrite);
  }
  // The element must be visible before the index that publishes it (§2.7.8): release,
  // and seq_cst so it is also ordered before the flags load in should_interrupt().
  ++used_idx_;
  if (!store_u16(*mem_, used_addr_ + kUsedIdxOffset, used_idx_, __ATOMIC_SEQ_CST)) {
    return fail(QueueErrc::UsedRingWrite);
  }
  return {};
}

bool Virtqueue::should_interrupt() const {
  // seq_cst like the used idx store: a driver re-enabling interrupts after reading the
  // old used idx must not be missed.
  auto flags = load_u16(*mem_, avail_addr_, __ATOMIC_SEQ_CST);
  return !flags || (*flags & kVirtqAvailFNoInterrupt) == 0;
}

VirtqueueState Virtqueue::state() const {
  return VirtqueueState{size_,           true,     desc_addr_, avail_addr_, used_addr_,
                        last_avail_idx_, used_idx_};
}

}  // namespace ferry::vmm
