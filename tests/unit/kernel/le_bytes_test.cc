#include "ferry/kernel-interfaces/le_bytes.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

TEST(LeBytes, WritesLittleEndianAndReadsItBack) {
  std::vector<uint8_t> out;
  ByteWriter w(out);
  w.u16(0x0102);
  w.u32(0x03040506);
  w.u64(0x0708090a0b0c0d0eull);
  w.str("ok");
  EXPECT_EQ(out[0], 0x02);
  EXPECT_EQ(out[2], 0x06);
  ByteReader r(out);
  uint16_t a = 0;
  uint32_t b = 0;
  uint64_t c = 0;
  std::string s;
  ASSERT_TRUE(r.u16(a) && r.u32(b) && r.u64(c) && r.str(s, 16));
  EXPECT_EQ(a, 0x0102);
  EXPECT_EQ(b, 0x03040506u);
  EXPECT_EQ(c, 0x0708090a0b0c0d0eull);
  EXPECT_EQ(s, "ok");
  EXPECT_TRUE(r.at_end());
}

TEST(LeBytes, ShortInputFailsAndStaysFailed) {
  const std::vector<uint8_t> three{1, 2, 3};
  ByteReader r(three);
  uint32_t v = 0;
  EXPECT_FALSE(r.u32(v));
  uint8_t b = 0;
  EXPECT_FALSE(r.u8(b)) << "a failed reader refuses further reads";
  EXPECT_FALSE(r.ok());
}

TEST(LeBytes, BlobLengthIsCheckedBeforeCopying) {
  std::vector<uint8_t> out;
  ByteWriter w(out);
  w.u32(1u << 30);  // claims a gigabyte, has nothing
  ByteReader r(out);
  std::vector<uint8_t> blob;
  EXPECT_FALSE(r.blob(blob, 1u << 31));
  EXPECT_TRUE(blob.empty());
  std::vector<uint8_t> small;
  ByteWriter w2(small);
  w2.blob(std::vector<uint8_t>(10, 7));
  ByteReader r2(small);
  EXPECT_FALSE(r2.blob(blob, 9)) << "over the caller's cap";
}

TEST(LeBytes, EmptyReadsIntoEmptyBuffersAreFine) {
  // Found by tests/fuzz/wire_fuzzer: bytes() into an empty vector (null data()) passed a
  // null pointer to memcpy, which UBSan reports even for 0 bytes.
  std::vector<uint8_t> none;
  ByteReader r(none);
  std::vector<uint8_t> out;
  EXPECT_TRUE(r.bytes(out));
  EXPECT_TRUE(r.at_end());
  const std::vector<uint8_t> one{9};
  ByteReader r1(one);
  EXPECT_TRUE(r1.bytes(out));
  EXPECT_EQ(r1.position(), 0u);
}

}  // namespace
}  // namespace ferry
