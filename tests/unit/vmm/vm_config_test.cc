#include "ferry/vmm/vm_config.h"

#include <gtest/gtest.h>

namespace ferry::vmm {
namespace {

TEST(VmConfig, ParsesMemorySizes) {
  EXPECT_EQ(parse_memory_size("512M").value(), 512ull << 20);
  EXPECT_EQ(parse_memory_size("2G").value(), 2ull << 30);
  EXPECT_EQ(parse_memory_size("2GiB").value(), 2ull << 30);
  EXPECT_EQ(parse_memory_size("4096").value(), 4096u);
  for (const char* bad : {"", "M", "12Q", "1.5G", "-1G", "99999999999999999999", "20000000T"}) {
    EXPECT_FALSE(parse_memory_size(bad)) << bad;
  }
}

TEST(VmConfig, ValidatesRanges) {
  VmConfig c;
  EXPECT_TRUE(validate_config(c));
  c.memory_bytes = 1 << 20;
  EXPECT_FALSE(validate_config(c));
  c.memory_bytes = (256ull << 20) + 4096;
  EXPECT_FALSE(validate_config(c)) << "not a whole number of 2 MiB";
  c.memory_bytes = 256ull << 20;
  c.vcpus = 0;
  EXPECT_FALSE(validate_config(c));
  c.vcpus = kMaxVcpus + 1;
  EXPECT_FALSE(validate_config(c));
}

TEST(VmConfig, EncodeDecodeRoundTripAndRejection) {
  VmConfig c;
  c.memory_bytes = 1ull << 30;
  c.vcpus = 2;
  c.cmdline = "wss=64 virtio_mmio.device=4K@0xd0000000:5";
  c.cpuid_blob = {1, 2, 3, 4};
  c.disks = {DiskConfig{"/a.img", false}, DiskConfig{"/b.img", true}};
  const std::vector<uint8_t> blob = encode_config(c);
  auto d = decode_config(blob);
  ASSERT_TRUE(d) << d.error().message();
  EXPECT_EQ(d->memory_bytes, c.memory_bytes);
  EXPECT_EQ(d->vcpus, 2u);
  EXPECT_EQ(d->cmdline, c.cmdline);
  EXPECT_EQ(d->cpuid_blob, c.cpuid_blob);
  ASSERT_EQ(d->disks.size(), 2u);
  EXPECT_TRUE(d->disks[1].read_only);
  EXPECT_TRUE(d->disks[0].path.empty()) << "paths are the destination's business";
  for (size_t cut = 0; cut < blob.size(); ++cut) {
    EXPECT_FALSE(decode_config(std::span(blob).first(cut))) << "truncated at " << cut;
  }
  auto extra = blob;
  extra.push_back(0);
  EXPECT_FALSE(decode_config(extra));
  auto huge = c;
  huge.vcpus = 10000;
  EXPECT_FALSE(decode_config(encode_config(huge))) << "a peer's config is validated too";
}

}  // namespace
}  // namespace ferry::vmm
