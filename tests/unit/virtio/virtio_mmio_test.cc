// The virtio-mmio register block in front of a real VirtioBlock: identification,
// feature negotiation order, queue configuration rules, bad accesses (ignored and
// counted), interrupts, reset, config space.
#include <gtest/gtest.h>

#include "virtio_harness.h"

namespace ferry::vmm::test {
namespace {

namespace reg = virtio_mmio_reg;

class VirtioMmioTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dev = VirtioBlock::create(ram_.mem(), irq_, BlockConfig{image_.path()});
    ASSERT_TRUE(dev.has_value()) << dev.error().message();
    dev_ = std::move(*dev);
    drv_ = std::make_unique<GuestDriver>(ram_, dev_->mmio());
  }
  uint64_t ignored() { return dev_->stats().ignored_mmio; }

  GuestRam ram_;
  FakeIrq irq_;
  TempImage image_{1 << 20};
  std::unique_ptr<VirtioBlock> dev_;
  std::unique_ptr<GuestDriver> drv_;
};

TEST_F(VirtioMmioTest, IdentifiesAsVirtioMmioV2Block) {
  EXPECT_EQ(drv_->read32(reg::kMagicValue), 0x74726976u);
  EXPECT_EQ(drv_->read32(reg::kVersion), 2u);
  EXPECT_EQ(drv_->read32(reg::kDeviceId), 2u);
  EXPECT_NE(drv_->read32(reg::kVendorId), 0u);
  const uint64_t f = drv_->features();
  EXPECT_NE(f & kVirtioFVersion1, 0u);
  EXPECT_NE(f & kVirtioBlkFFlush, 0u);
  EXPECT_EQ(f & kVirtioBlkFRo, 0u);
  EXPECT_EQ(f & (1ull << 28), 0u);  // no INDIRECT_DESC
  EXPECT_EQ(f & (1ull << 29), 0u);  // no EVENT_IDX
  drv_->write32(reg::kDeviceFeaturesSel, 7);
  EXPECT_EQ(drv_->read32(reg::kDeviceFeatures), 0u);
  EXPECT_EQ(drv_->read32(reg::kQueueNumMax), 256u);
  EXPECT_EQ(drv_->read32(reg::kShmLenLow), 0xffff'ffffu);
}

TEST_F(VirtioMmioTest, ConfigSpaceHoldsCapacityAndSegMax) {
  const uint64_t sectors = (1 << 20) / 512;
  EXPECT_EQ(drv_->read32(0x100), static_cast<uint32_t>(sectors));
  EXPECT_EQ(drv_->read32(0x104), 0u);
  uint64_t cap64 = 0;
  dev_->mmio().mmio_read(0x100, {reinterpret_cast<uint8_t*>(&cap64), 8});
  EXPECT_EQ(cap64, sectors);
  EXPECT_EQ(drv_->read32(0x10c), 254u);  // seg_max = queue size - 2
  uint8_t byte = 0xee;
  dev_->mmio().mmio_read(0x101, {&byte, 1});
  EXPECT_EQ(byte, static_cast<uint8_t>(sectors >> 8));
  // Past the config struct: zeros, counted.
  const uint64_t before = ignored();
  EXPECT_EQ(drv_->read32(0x100 + kVirtioBlkConfigBytes), 0u);
  EXPECT_EQ(drv_->read32(0xffc), 0u);
  EXPECT_EQ(ignored(), before + 2);
  EXPECT_EQ(drv_->read32(reg::kConfigGeneration), 0u);
}

TEST_F(VirtioMmioTest, BadAccessesAreIgnoredAndCounted) {
  const uint64_t before = ignored();
  uint8_t two[2] = {1, 0};
  dev_->mmio().mmio_write(reg::kStatus, two);  // 2-byte register write
  EXPECT_EQ(drv_->status(), 0u);
  uint8_t eight[8] = {1, 0, 0, 0, 0, 0, 0, 0};
  dev_->mmio().mmio_write(reg::kStatus, eight);  // 8-byte
  EXPECT_EQ(drv_->status(), 0u);
  uint32_t v = 0xdead;
  dev_->mmio().mmio_read(reg::kMagicValue + 1, {reinterpret_cast<uint8_t*>(&v), 4});  // unaligned
  EXPECT_EQ(v, 0u);
  uint8_t one = 0xee;
  dev_->mmio().mmio_read(reg::kMagicValue, {&one, 1});  // short read of a register
  EXPECT_EQ(one, 0u);
  drv_->write32(0x0f0, 1);                // unknown register
  drv_->write32(reg::kMagicValue, 1);     // read-only register
  (void)drv_->read32(reg::kQueueNotify);  // write-only register
  drv_->write32(0x100, 0x1234);           // config space is read-only
  EXPECT_EQ(ignored(), before + 8);
}

TEST_F(VirtioMmioTest, FeatureNegotiationFollowsTheStatusOrder) {
  const uint64_t before = ignored();
  // Features written before DRIVER are ignored.
  drv_->write32(reg::kDriverFeaturesSel, 1);
  drv_->write32(reg::kDriverFeatures, 1);
  EXPECT_EQ(ignored(), before + 1);
  // DRIVER without ACKNOWLEDGE, DRIVER_OK without FEATURES_OK: ignored.
  drv_->set_status(kVirtioStatusDriver);
  EXPECT_EQ(drv_->status(), 0u);
  drv_->set_status(kVirtioStatusAcknowledge | kVirtioStatusDriver | kVirtioStatusDriverOk);
  EXPECT_EQ(drv_->status(), 0u);
  drv_->set_status(kVirtioStatusAcknowledge);
  drv_->set_status(kVirtioStatusAcknowledge | kVirtioStatusDriver);
  // Clearing a bit without reset is ignored.
  drv_->set_status(kVirtioStatusDriver);
  EXPECT_EQ(drv_->status(), kVirtioStatusAcknowledge | kVirtioStatusDriver);
  // Without VERSION_1 the device refuses FEATURES_OK (legacy drivers are not served).
  drv_->write32(reg::kDriverFeaturesSel, 0);
  drv_->write32(reg::kDriverFeatures, static_cast<uint32_t>(kVirtioBlkFFlush));
  drv_->set_status(kVirtioStatusAcknowledge | kVirtioStatusDriver | kVirtioStatusFeaturesOk);
  EXPECT_EQ(drv_->status() & kVirtioStatusFeaturesOk, 0u);
  // A feature the device never offered is refused too.
  drv_->write32(reg::kDriverFeaturesSel, 1);
  drv_->write32(reg::kDriverFeatures, 1u | (1u << 28));  // bit 60: never offered
  drv_->set_status(kVirtioStatusAcknowledge | kVirtioStatusDriver | kVirtioStatusFeaturesOk);
  EXPECT_EQ(drv_->status() & kVirtioStatusFeaturesOk, 0u);
  // And the full, correct sequence works.
  EXPECT_TRUE(drv_->init());
  EXPECT_EQ(drv_->status(), kVirtioStatusAcknowledge | kVirtioStatusDriver |
                                kVirtioStatusFeaturesOk | kVirtioStatusDriverOk);
  // After FEATURES_OK, features are frozen.
  const uint64_t frozen = ignored();
  drv_->write32(reg::kDriverFeatures, 0);
  EXPECT_EQ(ignored(), frozen + 1);
}

TEST_F(VirtioMmioTest, QueueConfigurationRules) {
  drv_->set_status(kVirtioStatusAcknowledge);
  drv_->set_status(kVirtioStatusAcknowledge | kVirtioStatusDriver);
  const uint64_t before = ignored();
  drv_->write32(reg::kQueueSel, 0);
  drv_->write32(reg::kQueueNum, 512);  // > QueueNumMax
  drv_->write32(reg::kQueueNum, 48);   // not a power of two
  drv_->write32(reg::kQueueNum, 0);
  EXPECT_EQ(ignored(), before + 3);
  drv_->write32(reg::kQueueReady, 2);  // only 0 and 1 mean something
  EXPECT_EQ(drv_->read32(reg::kQueueReady), 0u);
  drv_->write32(reg::kQueueSel, 1);  // the block device has one queue
  EXPECT_EQ(drv_->read32(reg::kQueueNumMax), 0u);
  EXPECT_EQ(drv_->read32(reg::kQueueReady), 0u);
  drv_->write32(reg::kQueueNum, 16);
  drv_->write32(reg::kQueueReady, 1);
  EXPECT_EQ(ignored(), before + 6);
  // Once ready, the queue's size and addresses are frozen.
  drv_->write32(reg::kQueueSel, 0);
  drv_->write32(reg::kQueueNum, 64);
  drv_->write32(reg::kQueueReady, 1);
  EXPECT_EQ(drv_->read32(reg::kQueueReady), 1u);
  drv_->write32(reg::kQueueDescLow, 0x5000);
  drv_->write32(reg::kQueueNum, 32);
  EXPECT_EQ(ignored(), before + 8);
  drv_->write32(reg::kQueueReady, 0);  // allowed before DRIVER_OK
  EXPECT_EQ(drv_->read32(reg::kQueueReady), 0u);
}

TEST_F(VirtioMmioTest, NotifyBeforeReadyOrDriverOkIsIgnored) {
  const uint64_t before = ignored();
  drv_->notify();
  EXPECT_EQ(ignored(), before + 1);
  ASSERT_TRUE(drv_->init());
  drv_->write32(reg::kQueueNotify, 3);  // no such queue
  EXPECT_EQ(ignored(), before + 2);
  // Once initialised, notifies reach the device.
  auto done = drv_->read(0, 512);
  ASSERT_TRUE(done.completed);
  EXPECT_EQ(done.status, kVirtioBlkSOk);
}

TEST_F(VirtioMmioTest, RingOutsideRamSetsNeedsReset) {
  drv_->set_status(kVirtioStatusAcknowledge);
  drv_->set_status(kVirtioStatusAcknowledge | kVirtioStatusDriver);
  const uint64_t f = drv_->features();
  drv_->write32(reg::kDriverFeaturesSel, 0);
  drv_->write32(reg::kDriverFeatures, static_cast<uint32_t>(f));
  drv_->write32(reg::kDriverFeaturesSel, 1);
  drv_->write32(reg::kDriverFeatures, static_cast<uint32_t>(f >> 32));
  const uint32_t base = kVirtioStatusAcknowledge | kVirtioStatusDriver | kVirtioStatusFeaturesOk;
  drv_->set_status(base);
  drv_->setup_queue(kDescGpa, kAvailGpa, kRamSize - 8);  // used ring runs off RAM
  drv_->set_status(base | kVirtioStatusDriverOk);
  EXPECT_NE(drv_->status() & kVirtioStatusNeedsReset, 0u);
  EXPECT_EQ(drv_->read32(reg::kInterruptStatus), kVirtioInterruptConfigChange);
  EXPECT_TRUE(irq_.level());
  // Notifies are ignored while NEEDS_RESET; a reset brings the device back.
  drv_->notify();
  drv_->set_status(0);
  EXPECT_EQ(drv_->status(), 0u);
  EXPECT_FALSE(irq_.level());
  ASSERT_TRUE(drv_->init());
  EXPECT_EQ(drv_->read(1, 512).status, kVirtioBlkSOk);
}

TEST_F(VirtioMmioTest, InterruptIsLevelRaisedOnUseAndLoweredOnAck) {
  ASSERT_TRUE(drv_->init());
  EXPECT_FALSE(irq_.level());
  ASSERT_TRUE(drv_->read(0, 512).completed);
  EXPECT_TRUE(eventually([&] { return irq_.level(); }));
  EXPECT_EQ(drv_->read32(reg::kInterruptStatus), kVirtioInterruptUsedBuffer);
  drv_->write32(reg::kInterruptAck, kVirtioInterruptConfigChange);  // wrong bit: stays up
  EXPECT_TRUE(irq_.level());
  drv_->ack_interrupt();
  EXPECT_FALSE(irq_.level());
  EXPECT_EQ(drv_->read32(reg::kInterruptStatus), 0u);
  // With VIRTQ_AVAIL_F_NO_INTERRUPT the device completes quietly.
  ram_.put<uint16_t>(kAvailGpa, kVirtqAvailFNoInterrupt);
  const int raises = irq_.raises();
  ASSERT_TRUE(drv_->read(0, 512).completed);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(irq_.level());
  EXPECT_EQ(irq_.raises(), raises);
}

TEST_F(VirtioMmioTest, ResetClearsRegistersAndQueues) {
  ASSERT_TRUE(drv_->init());
  ASSERT_TRUE(drv_->read(0, 512).completed);
  drv_->set_status(0);
  EXPECT_EQ(drv_->status(), 0u);
  EXPECT_EQ(drv_->read32(reg::kQueueReady), 0u);
  EXPECT_EQ(drv_->read32(reg::kInterruptStatus), 0u);
  EXPECT_FALSE(irq_.level());
  // Re-initialised from scratch (ring indices restart at 0).
  ASSERT_TRUE(drv_->init());
  EXPECT_EQ(drv_->read(2, 1024).status, kVirtioBlkSOk);
}

}  // namespace
}  // namespace ferry::vmm::test
