#include "ferry/vmm/io_bus.h"

#include <gtest/gtest.h>

namespace ferry::vmm {
namespace {

struct Recorder : PioDevice, MmioDevice {
  void pio_read(uint16_t offset, std::span<uint8_t> data) override {
    last_offset = offset;
    data[0] = 0x42;
  }
  void pio_write(uint16_t offset, std::span<const uint8_t> data) override {
    last_offset = offset;
    last_value = data[0];
  }
  void mmio_read(uint64_t offset, std::span<uint8_t> data) override {
    last_offset = offset;
    data[0] = 0x43;
  }
  void mmio_write(uint64_t offset, std::span<const uint8_t> data) override {
    last_offset = offset;
    last_value = data[0];
  }
  uint64_t last_offset = ~0ull;
  uint8_t last_value = 0;
};

TEST(IoBus, RoutesByRangeWithDeviceRelativeOffsets) {
  IoBus bus;
  Recorder uart, disk;
  ASSERT_TRUE(bus.add_pio(0x3f8, 8, &uart));
  ASSERT_TRUE(bus.add_mmio(0xd0000000, 0x1000, &disk));
  uint8_t v = 7;
  EXPECT_TRUE(bus.pio_write(0x3fb, {&v, 1}));
  EXPECT_EQ(uart.last_offset, 3u);
  EXPECT_EQ(uart.last_value, 7);
  EXPECT_TRUE(bus.mmio_read(0xd0000070, {&v, 1}));
  EXPECT_EQ(disk.last_offset, 0x70u);
  EXPECT_EQ(v, 0x43);
}

TEST(IoBus, RefusesOverlapsAndCountsUnclaimedAccesses) {
  IoBus bus;
  Recorder a, b;
  ASSERT_TRUE(bus.add_pio(0x3f8, 8, &a));
  EXPECT_FALSE(bus.add_pio(0x3ff, 2, &b));
  ASSERT_TRUE(bus.add_mmio(0x1000, 0x1000, &a));
  EXPECT_FALSE(bus.add_mmio(0x1fff, 1, &b));
  uint8_t v = 0;
  EXPECT_FALSE(bus.pio_read(0x80, {&v, 1}));
  EXPECT_EQ(v, 0xff) << "an empty bus reads all-ones";
  EXPECT_FALSE(bus.mmio_write(0x5000, {&v, 1}));
  EXPECT_EQ(bus.unclaimed_accesses(), 2u);
}

}  // namespace
}  // namespace ferry::vmm
