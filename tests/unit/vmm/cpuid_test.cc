#include <gtest/gtest.h>

#include "cpu_setup.h"

namespace ferry::vmm {
namespace {

kernel::CpuidEntries sample() {
  kernel::CpuidEntries e(4);
  e[0].function = 1;
  e[0].ecx = (1u << 13) | (1u << 26) | (1u << 28) | 1u;  // cx16, xsave, avx, sse3
  e[0].ebx = 0xff00ffff;
  e[1].function = 7;
  e[1].ebx = (1u << 5) | 1u;  // avx2, fsgsbase
  e[2].function = 0xA;
  e[2].eax = 0x12345678;
  e[3].function = 0xB;
  return e;
}

TEST(Cpuid, PvmWorkaroundsHideWhatTheEmulatorCannotRun) {
  auto out = filter_cpuid(sample(), CpuidPolicy{2, true});
  EXPECT_EQ(out[0].ecx & ((1u << 13) | (1u << 26) | (1u << 28)), 0u);
  EXPECT_EQ(out[0].ecx & 1u, 1u) << "unrelated features stay";
  EXPECT_NE(out[0].ecx & (1u << 31), 0u) << "hypervisor bit";
  EXPECT_EQ(out[1].ebx, 1u);
  EXPECT_EQ(out[2].eax, 0u) << "no PMU";
}

TEST(Cpuid, HardwareKvmKeepsXsaveAndAvx) {
  auto out = filter_cpuid(sample(), CpuidPolicy{1, false});
  EXPECT_NE(out[0].ecx & (1u << 26), 0u);
  EXPECT_NE(out[1].ebx & (1u << 5), 0u);
}

TEST(Cpuid, ApicIdsPerVcpuAndEncodingRoundTrip) {
  auto common = filter_cpuid(sample(), CpuidPolicy{2, false});
  auto v1 = cpuid_for_vcpu(common, 1);
  EXPECT_EQ(v1[0].ebx >> 24, 1u);
  EXPECT_EQ((v1[0].ebx >> 16) & 0xff, 2u) << "logical processor count";
  EXPECT_EQ(v1[3].edx, 1u) << "x2APIC id";
  auto decoded = decode_cpuid(encode_cpuid(common));
  ASSERT_TRUE(decoded);
  ASSERT_EQ(decoded->size(), common.size());
  EXPECT_EQ((*decoded)[0].ecx, common[0].ecx);
  EXPECT_FALSE(decode_cpuid(std::vector<uint8_t>(7, 0)));
  EXPECT_FALSE(decode_cpuid({}));
}

}  // namespace
}  // namespace ferry::vmm
