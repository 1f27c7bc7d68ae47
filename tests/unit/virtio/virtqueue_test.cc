// Virtqueue against hand-written rings: every malformed ring or chain is refused with
// the right error, and the used ring is written through GuestMemory (VMM-dirty).
#include "ferry/vmm/devices/virtqueue.h"

#include <gtest/gtest.h>

#include "virtio_harness.h"

namespace ferry::vmm::test {
namespace {

constexpr uint16_t kSize = 8;
constexpr uint64_t kCap = 1 << 20;

VirtqueueState ring_state() {
  return VirtqueueState{kSize, true, kDescGpa, kAvailGpa, kUsedGpa, 0, 0};
}

class VirtqueueTest : public ::testing::Test {
 protected:
  void desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    const uint64_t d = kDescGpa + 16ull * i;
    ram_.put(d, addr);
    ram_.put(d + 8, len);
    ram_.put(d + 12, flags);
    ram_.put(d + 14, next);
  }
  void avail(uint16_t slot, uint16_t head, uint16_t idx) {
    ram_.put<uint16_t>(kAvailGpa + 4 + 2 * slot, head);
    ram_.put<uint16_t>(kAvailGpa + 2, idx);
  }
  Virtqueue queue() {
    auto q = Virtqueue::create(ram_.mem(), ring_state(), kCap);
    EXPECT_TRUE(q.has_value());
    return std::move(*q);
  }
  QueueErrc chain_error(Virtqueue& q) {
    auto popped = q.pop();
    EXPECT_TRUE(popped.has_value());
    EXPECT_TRUE(popped->has_value());
    EXPECT_FALSE((*popped)->chain.has_value());
    return (*popped)->chain.has_value() ? QueueErrc::Invalid : (*popped)->chain.error();
  }
  GuestRam ram_;
};

TEST_F(VirtqueueTest, CreateRejectsBadSizesAlignmentAndRingsOutsideRam) {
  auto st = ring_state();
  for (uint16_t bad_size : {0, 3, 6, 100}) {
    st.size = bad_size;
    auto q = Virtqueue::create(ram_.mem(), st, kCap);
    ASSERT_FALSE(q.has_value());
    EXPECT_EQ(q.error(), QueueErrc::BadSize);
  }
  st = ring_state();
  st.desc_addr = kDescGpa + 8;
  EXPECT_EQ(Virtqueue::create(ram_.mem(), st, kCap).error(), QueueErrc::RingMisaligned);
  st = ring_state();
  st.device_addr = kUsedGpa + 2;
  EXPECT_EQ(Virtqueue::create(ram_.mem(), st, kCap).error(), QueueErrc::RingMisaligned);
  st = ring_state();
  st.device_addr = kRamSize - 16;  // used ring runs off the end of RAM
  EXPECT_EQ(Virtqueue::create(ram_.mem(), st, kCap).error(), QueueErrc::RingOutsideRam);
  st = ring_state();
  st.desc_addr = 0xffff'ffff'ffff'fff0ull;  // wraps around: must not pass the check
  EXPECT_EQ(Virtqueue::create(ram_.mem(), st, kCap).error(), QueueErrc::RingOutsideRam);
}

TEST_F(VirtqueueTest, PopsAValidChain) {
  Virtqueue q = queue();
  auto empty = q.pop();
  ASSERT_TRUE(empty.has_value());
  EXPECT_FALSE(empty->has_value());
  desc(2, 0x20000, 16, kVirtqDescFNext, 5);
  desc(5, 0x21000, 512, kVirtqDescFNext | kVirtqDescFWrite, 7);
  desc(7, 0x22000, 1, kVirtqDescFWrite, 0);
  avail(0, 2, 1);
  auto popped = q.pop();
  ASSERT_TRUE(popped.has_value() && popped->has_value());
  ASSERT_TRUE((*popped)->chain.has_value());
  const DescriptorChain& c = *(*popped)->chain;
  EXPECT_EQ(c.head, 2);
  ASSERT_EQ(c.buffers.size(), 3u);
  EXPECT_EQ(c.buffers[1].addr, 0x21000u);
  EXPECT_TRUE(c.buffers[1].device_writable);
  EXPECT_EQ(c.readable_bytes, 16u);
  EXPECT_EQ(c.writable_bytes, 513u);
  EXPECT_EQ(q.state().last_avail_idx, 1);
}

TEST_F(VirtqueueTest, NextIndexOutOfRangeFailsTheChain) {
  Virtqueue q = queue();
  desc(0, 0x20000, 16, kVirtqDescFNext, kSize);  // next == queue size
  avail(0, 0, 1);
  EXPECT_EQ(chain_error(q), QueueErrc::IndexOutOfRange);
  desc(1, 0x20000, 16, kVirtqDescFNext, 0xffff);
  avail(1, 1, 2);
  EXPECT_EQ(chain_error(q), QueueErrc::IndexOutOfRange);
}

TEST_F(VirtqueueTest, LoopIsDetected) {
  Virtqueue q = queue();
  desc(0, 0x20000, 16, kVirtqDescFNext, 1);
  desc(1, 0x20000, 16, kVirtqDescFNext, 0);
  avail(0, 0, 1);
  EXPECT_EQ(chain_error(q), QueueErrc::ChainLoop);
  desc(3, 0x20000, 16, kVirtqDescFNext, 3);  // self loop
  avail(1, 3, 2);
  EXPECT_EQ(chain_error(q), QueueErrc::ChainLoop);
}

TEST_F(VirtqueueTest, BufferOutsideRamIsRefused) {
  Virtqueue q = queue();
  desc(0, kRamSize - 8, 16, 0, 0);  // straddles the end of RAM
  avail(0, 0, 1);
  EXPECT_EQ(chain_error(q), QueueErrc::BufferOutsideRam);
  desc(1, 0xffff'ffff'ffff'fff8ull, 16, 0, 0);  // addr + len wraps
  avail(1, 1, 2);
  EXPECT_EQ(chain_error(q), QueueErrc::BufferOutsideRam);
  desc(2, 0x1'0000'0000ull, 1, 0, 0);  // far beyond RAM
  avail(2, 2, 3);
  EXPECT_EQ(chain_error(q), QueueErrc::BufferOutsideRam);
}

TEST_F(VirtqueueTest, HugeLengthsAreCapped) {
  Virtqueue q = queue();
  desc(0, 0x20000, 0xffff'ffffu, 0, 0);
  avail(0, 0, 1);
  EXPECT_EQ(chain_error(q), QueueErrc::ChainTooLong);
  // Each descriptor below the cap, the sum above it.
  for (uint16_t i = 0; i < kSize; ++i) {
    desc(i, 0x20000, (kCap / 4) + 1, i + 1 < kSize ? kVirtqDescFNext : 0, i + 1);
  }
  avail(1, 0, 2);
  EXPECT_EQ(chain_error(q), QueueErrc::ChainTooLong);
}

TEST_F(VirtqueueTest, IndirectAndWriteBeforeReadAreRefused) {
  Virtqueue q = queue();
  desc(0, 0x20000, 32, kVirtqDescFIndirect, 0);
  avail(0, 0, 1);
  EXPECT_EQ(chain_error(q), QueueErrc::IndirectNotNegotiated);
  desc(1, 0x20000, 0, kVirtqDescFWrite | kVirtqDescFNext, 2);  // empty writable first
  desc(2, 0x21000, 16, 0, 0);
  avail(1, 1, 2);
  EXPECT_EQ(chain_error(q), QueueErrc::WriteBeforeRead);
}

TEST_F(VirtqueueTest, BrokenAvailRingIsAQueueError) {
  Virtqueue q = queue();
  avail(0, kSize, 1);  // head index out of range
  auto popped = q.pop();
  ASSERT_FALSE(popped.has_value());
  EXPECT_EQ(popped.error(), QueueErrc::HeadOutOfRange);

  Virtqueue q2 = queue();
  ram_.put<uint16_t>(kAvailGpa + 2, kSize + 1);  // more entries than the ring holds
  auto jumped = q2.pop();
  ASSERT_FALSE(jumped.has_value());
  EXPECT_EQ(jumped.error(), QueueErrc::AvailIdxJump);
}

TEST_F(VirtqueueTest, UsedRingWritesAreVmmDirtyAndWrapAround) {
  Virtqueue q = queue();
  (void)ram_.take_vmm_dirty();
  for (uint16_t i = 0; i < kSize + 3; ++i) {
    ASSERT_TRUE(q.push_used(static_cast<uint16_t>(i % kSize), 100u + i).has_value());
  }
  EXPECT_EQ(ram_.get<uint16_t>(kUsedGpa + 2), kSize + 3);
  // Slot 2 was overwritten by the 11th element (id 2, len 110).
  EXPECT_EQ(ram_.get<uint32_t>(kUsedGpa + 4 + 8 * 2), 2u);
  EXPECT_EQ(ram_.get<uint32_t>(kUsedGpa + 4 + 8 * 2 + 4), 110u);
  auto dirty = ram_.take_vmm_dirty();
  EXPECT_TRUE(dirty[kUsedGpa / 4096]);
  EXPECT_FALSE(dirty[kAvailGpa / 4096]);
  EXPECT_FALSE(dirty[kDescGpa / 4096]);
}

TEST_F(VirtqueueTest, InterruptSuppressionFlagIsHonoured) {
  Virtqueue q = queue();
  EXPECT_TRUE(q.should_interrupt());
  ram_.put<uint16_t>(kAvailGpa, kVirtqAvailFNoInterrupt);
  EXPECT_FALSE(q.should_interrupt());
}

TEST_F(VirtqueueTest, RestoredProgressContinues) {
  auto st = ring_state();
  st.last_avail_idx = 0xfffe;  // indices wrap at 2^16
  st.used_idx = 0xfffe;
  auto q = Virtqueue::create(ram_.mem(), st, kCap);
  ASSERT_TRUE(q.has_value());
  desc(4, 0x20000, 16, 0, 0);
  ram_.put<uint16_t>(kAvailGpa + 4 + 2 * (0xfffe % kSize), 4);
  ram_.put<uint16_t>(kAvailGpa + 2, 0xffff);
  auto popped = q->pop();
  ASSERT_TRUE(popped.has_value() && popped->has_value());
  EXPECT_EQ((*popped)->head, 4);
  ASSERT_TRUE(q->push_used(4, 0).has_value());
  EXPECT_EQ(ram_.get<uint16_t>(kUsedGpa + 2), 0xffff);
}

}  // namespace
}  // namespace ferry::vmm::test

namespace ferry::vmm::test {
namespace {

// Two RAM regions adjacent in guest-physical space but separate on the host: a buffer
// that crosses the boundary would be two unrelated host ranges, so it is refused.
TEST(VirtqueueRegions, BufferAcrossTwoRegionsIsRefused) {
  constexpr uint64_t kHalf = 2 << 20;
  std::vector<uint8_t> low(kHalf + 4096), high(kHalf + 4096);
  auto align = [](std::vector<uint8_t>& v) {
    return reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(v.data()) + 4095) & ~4095ull);
  };
  auto mem = GuestMemory::wrap({GuestRegion{0, kHalf, align(low)},
                                GuestRegion{kHalf, kHalf, align(high)}});
  auto q = Virtqueue::create(*mem, VirtqueueState{8, true, kDescGpa, kAvailGpa, kUsedGpa, 0, 0},
                             1 << 20);
  ASSERT_TRUE(q.has_value());
  auto put_desc = [&](uint16_t i, uint64_t addr, uint32_t len) {
    ASSERT_TRUE(mem->write_obj(kDescGpa + 16ull * i, addr));
    ASSERT_TRUE(mem->write_obj(kDescGpa + 16ull * i + 8, len));
  };
  put_desc(0, kHalf - 256, 512);  // straddles the boundary
  put_desc(1, kHalf, 512);        // wholly in the high region: fine
  ASSERT_TRUE(mem->write_obj<uint16_t>(kAvailGpa + 4, 0));
  ASSERT_TRUE(mem->write_obj<uint16_t>(kAvailGpa + 6, 1));
  ASSERT_TRUE(mem->write_obj<uint16_t>(kAvailGpa + 2, 2));
  auto first = q->pop();
  ASSERT_TRUE(first.has_value() && first->has_value());
  ASSERT_FALSE((*first)->chain.has_value());
  EXPECT_EQ((*first)->chain.error(), QueueErrc::BufferOutsideRam);
  auto second = q->pop();
  ASSERT_TRUE(second.has_value() && second->has_value());
  EXPECT_TRUE((*second)->chain.has_value());
}

}  // namespace
}  // namespace ferry::vmm::test
