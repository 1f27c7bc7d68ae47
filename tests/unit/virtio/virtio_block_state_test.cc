// VirtioBlockState: save on one device, encode, decode, restore on a fresh device over
// the same RAM and image, and the guest's I/O continues (including requests the source
// never popped). Decode rejects every malformed field.
#include <gtest/gtest.h>

#include "virtio_harness.h"

namespace ferry::vmm::test {
namespace {

constexpr uint64_t kImageSize = 1 << 20;

std::vector<uint8_t> encode(const VirtioBlockState& s) {
  std::vector<uint8_t> out;
  ByteWriter w(out);
  encode_virtio_block_state(s, w);
  return out;
}

VmmResult<VirtioBlockState> decode(const std::vector<uint8_t>& bytes) {
  ByteReader r(bytes);
  return decode_virtio_block_state(r);
}

class VirtioBlockStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dev = VirtioBlock::create(ram_.mem(), irq_, BlockConfig{image_.path()});
    ASSERT_TRUE(dev.has_value()) << dev.error().message();
    src_ = std::move(*dev);
    drv_ = std::make_unique<GuestDriver>(ram_, src_->mmio());
    ASSERT_TRUE(drv_->init());
  }
  GuestRam ram_;
  FakeIrq irq_;
  TempImage image_{kImageSize};
  std::unique_ptr<VirtioBlock> src_;
  std::unique_ptr<GuestDriver> drv_;
};

TEST_F(VirtioBlockStateTest, SaveEncodeDecodeRestoreContinuesIo) {
  for (int i = 0; i < 70; ++i) {  // more than the queue size: ring indices wrap
    ASSERT_EQ(drv_->write(i, pattern(512, static_cast<uint8_t>(i))).status, kVirtioBlkSOk);
  }
  // A request the source leaves on the avail ring: quiesced, the source never pops it.
  src_->quiesce();
  const uint16_t head = drv_->add_request(kVirtioBlkTIn, 3, 0x60000, 512, true);
  drv_->publish(head);
  drv_->notify();
  const VirtioBlockState saved = src_->save();
  EXPECT_EQ(saved.capacity_sectors, kImageSize / 512);
  ASSERT_EQ(saved.transport.queues.size(), 1u);
  EXPECT_EQ(saved.transport.queues[0].last_avail_idx, 70);
  EXPECT_EQ(saved.transport.queues[0].used_idx, 70);
  EXPECT_EQ(saved.transport.queues[0].size, 64);
  EXPECT_TRUE(saved.transport.queues[0].ready);
  EXPECT_NE(saved.transport.status & kVirtioStatusDriverOk, 0u);
  EXPECT_NE(saved.transport.driver_features & kVirtioFVersion1, 0u);

  const auto bytes = encode(saved);
  auto decoded = decode(bytes);
  ASSERT_TRUE(decoded.has_value()) << decoded.error().message();
  EXPECT_EQ(encode(*decoded), bytes);

  // The destination: a fresh device (and IRQ line) over the same RAM and image.
  src_.reset();
  FakeIrq dst_irq;
  auto dst = VirtioBlock::restore(ram_.mem(), dst_irq, BlockConfig{image_.path()}, *decoded);
  ASSERT_TRUE(dst.has_value()) << dst.error().message();
  EXPECT_TRUE((*dst)->quiesced());
  drv_->set_mmio((*dst)->mmio());
  // Registers came across.
  EXPECT_EQ(drv_->status(), saved.transport.status);
  EXPECT_EQ(drv_->read32(virtio_mmio_reg::kQueueReady), 1u);
  // Starts quiesced: the pending request waits for resume().
  EXPECT_FALSE(drv_->wait_used(std::chrono::milliseconds(50)).has_value());
  (*dst)->resume();
  auto used = drv_->wait_used();
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(used->len, 513u);
  EXPECT_EQ(drv_->used_idx(), 71);
  EXPECT_EQ(std::vector<uint8_t>(ram_.host(0x60000), ram_.host(0x60000) + 512), pattern(512, 3));
  // New I/O continues on the restored device with the same rings.
  for (int i = 0; i < 70; ++i) {
    ASSERT_EQ(drv_->write(100 + i, pattern(1024, static_cast<uint8_t>(i + 7))).status,
              kVirtioBlkSOk);
  }
  ASSERT_EQ(drv_->read(100 + 69, 1024, 0x70000).status, kVirtioBlkSOk);
  EXPECT_EQ(std::vector<uint8_t>(ram_.host(0x70000), ram_.host(0x70000) + 1024), pattern(1024, 76));
  EXPECT_EQ(drv_->used_idx(), 71 + 71);
  EXPECT_TRUE(dst_irq.level());
}

TEST_F(VirtioBlockStateTest, RestoreRefusesAMismatchedDiskOrRings) {
  ASSERT_EQ(drv_->write(0, pattern(512, 1)).status, kVirtioBlkSOk);
  src_->quiesce();
  VirtioBlockState saved = src_->save();
  TempImage bigger(kImageSize * 2);
  FakeIrq irq;
  auto dst = VirtioBlock::restore(ram_.mem(), irq, BlockConfig{bigger.path()}, saved);
  ASSERT_FALSE(dst.has_value());
  EXPECT_EQ(dst.error().errc, VmmErrc::RestoreState);
  dst = VirtioBlock::restore(ram_.mem(), irq, BlockConfig{image_.path(), true}, saved);
  ASSERT_FALSE(dst.has_value());
  // Rings outside this machine's RAM.
  VirtioBlockState far = saved;
  far.transport.queues[0].device_addr = kRamSize * 4;
  dst = VirtioBlock::restore(ram_.mem(), irq, BlockConfig{image_.path()}, far);
  ASSERT_FALSE(dst.has_value());
  // Features the device does not offer.
  VirtioBlockState feat = saved;
  feat.transport.driver_features |= 1ull << 28;
  dst = VirtioBlock::restore(ram_.mem(), irq, BlockConfig{image_.path()}, feat);
  ASSERT_FALSE(dst.has_value());
  // Queue larger than this device's maximum.
  BlockConfig small{image_.path()};
  small.queue_size = 32;
  dst = VirtioBlock::restore(ram_.mem(), irq, small, saved);
  ASSERT_FALSE(dst.has_value());
}

TEST_F(VirtioBlockStateTest, RestoreKeepsPendingInterruptAndNeedsReset) {
  ASSERT_EQ(drv_->read(0, 512).status, kVirtioBlkSOk);
  ASSERT_TRUE(eventually([&] { return irq_.level(); }));
  src_->quiesce();
  VirtioBlockState saved = src_->save();
  EXPECT_EQ(saved.transport.interrupt_status, kVirtioInterruptUsedBuffer);
  FakeIrq irq;
  auto dst = VirtioBlock::restore(ram_.mem(), irq, BlockConfig{image_.path()}, saved);
  ASSERT_TRUE(dst.has_value()) << dst.error().message();
  EXPECT_TRUE(irq.level());  // the guest has not acked yet: the line is still up
  GuestDriver probe(ram_, (*dst)->mmio());
  EXPECT_EQ(probe.read32(virtio_mmio_reg::kInterruptStatus), kVirtioInterruptUsedBuffer);
  probe.ack_interrupt();
  EXPECT_FALSE(irq.level());
}

TEST(VirtioBlockStateDecode, RejectsMalformedState) {
  VirtioBlockState good;
  good.capacity_sectors = 2048;
  good.transport.status = kVirtioStatusAcknowledge | kVirtioStatusDriver | kVirtioStatusFeaturesOk |
                          kVirtioStatusDriverOk;
  good.transport.driver_features = kVirtioFVersion1;
  good.transport.queues.push_back(VirtqueueState{64, true, kDescGpa, kAvailGpa, kUsedGpa, 10, 10});
  const auto bytes = encode(good);
  ASSERT_TRUE(decode(bytes).has_value());

  // Every truncation fails.
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(decode(std::vector<uint8_t>(bytes.begin(), bytes.begin() + n)).has_value()) << n;
  }
  auto mutate = [&](auto change) {
    VirtioBlockState s = good;
    change(s);
    return decode(encode(s));
  };
  auto patched = [&](size_t offset, uint8_t value) {
    auto b = bytes;
    b[offset] = value;
    return decode(b);
  };
  EXPECT_FALSE(patched(0, 'X').has_value());   // magic
  EXPECT_FALSE(patched(4, 2).has_value());     // version
  EXPECT_FALSE(patched(6, 0x80).has_value());  // unknown flag
  EXPECT_FALSE(mutate([](auto& s) { s.capacity_sectors = 0; }).has_value());
  EXPECT_FALSE(mutate([](auto& s) { s.transport.status |= 0x100; }).has_value());
  EXPECT_FALSE(mutate([](auto& s) { s.transport.status |= 0x10; }).has_value());
  EXPECT_FALSE(mutate([](auto& s) { s.transport.interrupt_status = 4; }).has_value());
  EXPECT_FALSE(mutate([](auto& s) { s.transport.queues[0].size = 0; }).has_value());
  EXPECT_FALSE(mutate([](auto& s) { s.transport.queues[0].size = 48; }).has_value());
  EXPECT_FALSE(mutate([](auto& s) { s.transport.queues[0].desc_addr += 8; }).has_value());
  EXPECT_FALSE(mutate([](auto& s) { s.transport.queues[0].device_addr += 2; }).has_value());
  // One request popped and not yet used is a valid progress; two more than popped is not.
  EXPECT_TRUE(mutate([](auto& s) { s.transport.queues[0].used_idx = 9; }).has_value());
  EXPECT_FALSE(mutate([](auto& s) { s.transport.queues[0].used_idx = 11; }).has_value());
  EXPECT_FALSE(mutate([](auto& s) {
                 s.transport.queues[0].ready = false;
               }).has_value());  // progress on a queue that is not ready
  EXPECT_FALSE(mutate([](auto& s) {
                 s.transport.queues.resize(VirtioBlockState::kMaxQueues + 1, s.transport.queues[0]);
               }).has_value());
  // ready byte other than 0/1, reserved byte non-zero (queue record starts at offset 52).
  EXPECT_FALSE(patched(52 + 2, 2).has_value());
  EXPECT_FALSE(patched(52 + 3, 1).has_value());
}

}  // namespace
}  // namespace ferry::vmm::test

namespace ferry::vmm::test {
namespace {

// The destination VMM keeps one device object (the bus and the migration engine hold
// references to it) and loads the state into it in place, even after it was used.
TEST_F(VirtioBlockStateTest, LoadStateInPlaceReplacesQueueState) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(drv_->write(i, pattern(512, static_cast<uint8_t>(i + 40))).status, kVirtioBlkSOk);
  }
  src_->quiesce();
  const VirtioBlockState saved = src_->save();
  src_.reset();

  FakeIrq dst_irq;
  auto dst = VirtioBlock::create(ram_.mem(), dst_irq, BlockConfig{image_.path()});
  ASSERT_TRUE(dst.has_value());
  // The device is live with other queue state (a 16-entry queue, one request done).
  // (Its setup zeroes the rings drv_ uses too; the idx words are put back below.)
  GuestDriver other(ram_, (*dst)->mmio(), 16);
  ASSERT_TRUE(other.init());
  ASSERT_EQ(other.read(0, 512).status, kVirtioBlkSOk);
  // A state for another disk is refused up front and leaves the device quiesced.
  VirtioBlockState wrong = saved;
  wrong.capacity_sectors += 1;
  EXPECT_FALSE((*dst)->load_state(wrong).has_value());
  EXPECT_TRUE((*dst)->quiesced());
  // The real state replaces the live queue in place.
  ASSERT_TRUE((*dst)->load_state(saved).has_value());
  EXPECT_TRUE((*dst)->quiesced());
  const VirtioBlockState loaded = (*dst)->save();
  EXPECT_EQ(loaded.transport.queues[0].size, 64);
  EXPECT_EQ(loaded.transport.queues[0].last_avail_idx, 5);
  (*dst)->resume();
  drv_->set_mmio((*dst)->mmio());
  // Put back the two idx words `other` zeroed, as the migrated guest's RAM has them.
  ram_.put<uint16_t>(kAvailGpa + 2, 5);
  ram_.put<uint16_t>(kUsedGpa + 2, 5);
  ASSERT_EQ(drv_->write(9, pattern(512, 99)).status, kVirtioBlkSOk);
  ASSERT_EQ(drv_->read(2, 512, 0x70000).status, kVirtioBlkSOk);
  EXPECT_EQ(std::vector<uint8_t>(ram_.host(0x70000), ram_.host(0x70000) + 512),
            pattern(512, 42));
  EXPECT_EQ(image_.contents()[9 * 512 + 1], pattern(512, 99)[1]);
}

}  // namespace
}  // namespace ferry::vmm::test
