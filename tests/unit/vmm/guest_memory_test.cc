#include "ferry/vmm/guest_memory.h"

#include <gtest/gtest.h>

#include <limits>

namespace ferry::vmm {
namespace {

TEST(GuestMemory, SplitsAroundTheMmioHole) {
  auto mem = GuestMemory::create(4ull << 30, false);
  ASSERT_TRUE(mem) << mem.error().message();
  auto regions = (*mem)->regions();
  ASSERT_EQ(regions.size(), 2u);
  EXPECT_EQ(regions[0].gpa, 0u);
  EXPECT_EQ(regions[0].size, kMmioHoleStart);
  EXPECT_EQ(regions[1].gpa, kMmioHoleEnd);
  EXPECT_EQ(regions[1].size, (4ull << 30) - kMmioHoleStart);
  EXPECT_EQ(regions[1].first_page, kMmioHoleStart / kGuestPageSize);
  EXPECT_FALSE((*mem)->contains(kMmioHoleStart, 1)) << "the hole is not RAM";
  EXPECT_TRUE((*mem)->contains(kMmioHoleEnd, 4096));
}

TEST(GuestMemory, RejectsSizesThatAreNotWhole2MiB) {
  EXPECT_FALSE(GuestMemory::create(0, false));
  EXPECT_FALSE(GuestMemory::create((2ull << 20) + 4096, false));
}

TEST(GuestMemory, BoundsChecksEveryAccessIncludingOverflow) {
  auto mem = GuestMemory::create(4ull << 20, false);
  ASSERT_TRUE(mem);
  GuestMemory& m = **mem;
  uint8_t buf[16] = {};
  EXPECT_TRUE(m.read((4ull << 20) - 16, buf));
  EXPECT_FALSE(m.read((4ull << 20) - 15, buf)) << "crosses the end of RAM";
  EXPECT_FALSE(m.write(std::numeric_limits<uint64_t>::max() - 4, buf)) << "gpa + len wraps";
  EXPECT_FALSE(m.view(8, std::numeric_limits<uint64_t>::max()));
  EXPECT_TRUE(m.view(4ull << 20, 0)) << "an empty range at the end is inside";
}

TEST(GuestMemory, WritesMarkPagesDirtyAndTakingClearsThem) {
  auto mem = GuestMemory::create(4ull << 20, false);
  ASSERT_TRUE(mem);
  GuestMemory& m = **mem;
  const uint8_t data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  ASSERT_TRUE(m.write(3 * 4096 + 4092, data));  // straddles pages 3 and 4
  ASSERT_TRUE(m.write_obj<uint32_t>(100 * 4096, 7));
  std::vector<uint64_t> bitmap(16, 0);
  m.take_vmm_dirty(0, bitmap);
  EXPECT_EQ(bitmap[0], (1ull << 3) | (1ull << 4));
  EXPECT_EQ(bitmap[1], 1ull << (100 - 64));
  std::vector<uint64_t> again(16, 0);
  m.take_vmm_dirty(0, again);
  EXPECT_EQ(again, std::vector<uint64_t>(16, 0)) << "a take clears what it returned";
  EXPECT_EQ(m.read_obj<uint32_t>(100 * 4096).value_or(0), 7u);
}

TEST(GuestMemory, WrapGivesTestsTheSameApiOverTheirBuffers) {
  std::vector<uint8_t> backing(64 * 1024);
  auto mem = GuestMemory::wrap({GuestRegion{0x10000, backing.size(), backing.data()}});
  EXPECT_TRUE(mem->contains(0x10000, backing.size()));
  EXPECT_FALSE(mem->contains(0, 1));
  ASSERT_TRUE(mem->write_obj<uint16_t>(0x10002, 0xbeef));
  EXPECT_EQ(backing[2], 0xef);
  EXPECT_EQ(backing[3], 0xbe);
}

}  // namespace
}  // namespace ferry::vmm
