// Page tables, GDT, sregs and the e820 map the boot paths hand to guests.
#include "ferry/vmm/boot/cpu_setup.h"

#include <gtest/gtest.h>

#include "ferry/vmm/boot/e820.h"
#include "ferry/vmm/boot/layout.h"
#include "test_images.h"

namespace ferry::vmm::boot {
namespace {

using test::TestRam;
constexpr uint64_t k1GiB = 1ull << 30;
constexpr uint64_t k2MiB = 2ull << 20;

TEST(CpuTables, GdtHasNullCode32Code64Data) {
  TestRam ram(16 << 20);
  auto tables = write_cpu_tables(*ram.mem);
  ASSERT_TRUE(tables) << tables.error().message();
  EXPECT_EQ(tables->gdt, kGdtAddr);
  EXPECT_EQ(tables->gdt_limit, kGdtEntries * 8 - 1);
  EXPECT_EQ(ram.at<uint64_t>(kGdtAddr + 0), 0u);
  EXPECT_EQ(ram.at<uint64_t>(kGdtAddr + kSelectorCode32), kGdtCode32);
  EXPECT_EQ(ram.at<uint64_t>(kGdtAddr + kSelectorCode64), kGdtCode64);
  EXPECT_EQ(ram.at<uint64_t>(kGdtAddr + kSelectorData), kGdtData);
  // 64-bit code: L = 1, D = 0, P = 1, DPL 0, code exec/read.
  EXPECT_EQ((kGdtCode64 >> 53) & 1, 1u);
  EXPECT_EQ((kGdtCode64 >> 54) & 1, 0u);
  EXPECT_EQ((kGdtCode32 >> 54) & 1, 1u);
  EXPECT_EQ(tables->idt, kIdtAddr);
  EXPECT_EQ(tables->idt_limit, 0);
}

TEST(CpuTables, IdentityMapsFirstFourGibWithTwoMibPages) {
  TestRam ram(16 << 20);
  auto tables = write_cpu_tables(*ram.mem);
  ASSERT_TRUE(tables);
  EXPECT_EQ(tables->pml4, kPml4Addr);
  EXPECT_EQ(tables->identity_mapped, 4 * k1GiB);
  EXPECT_EQ(ram.at<uint64_t>(kPml4Addr), kPdptAddr | kPtePresent | kPteWritable);
  EXPECT_EQ(ram.at<uint64_t>(kPml4Addr + 8), 0u);
  for (uint64_t d = 0; d < 4; ++d) {
    EXPECT_EQ(ram.at<uint64_t>(kPdptAddr + d * 8),
              (kPdAddr + d * 0x1000) | kPtePresent | kPteWritable);
  }
  EXPECT_EQ(ram.at<uint64_t>(kPdptAddr + 4 * 8), 0u);
  // Every 2 MiB page maps to itself, the MMIO hole at 3-4 GiB included.
  for (uint64_t gpa : {uint64_t{0}, k2MiB, 3 * k1GiB, 4 * k1GiB - k2MiB, uint64_t{0xfee00000}}) {
    const uint64_t d = gpa / k1GiB;
    const uint64_t e = (gpa % k1GiB) / k2MiB;
    const uint64_t pde = ram.at<uint64_t>(kPdAddr + d * 0x1000 + e * 8);
    EXPECT_EQ(pde, (gpa & ~(k2MiB - 1)) | kPtePresent | kPteWritable | kPteHuge) << gpa;
  }
}

TEST(CpuTables, MapsRamAboveFourGib) {
  TestRam ram(16 << 20, 2 << 20);  // a 2 MiB region at 4 GiB
  EXPECT_EQ(identity_map_size(*ram.mem), 5 * k1GiB);
  auto tables = write_cpu_tables(*ram.mem);
  ASSERT_TRUE(tables);
  EXPECT_EQ(ram.at<uint64_t>(kPdptAddr + 4 * 8), (kPdAddr + 0x4000) | kPtePresent | kPteWritable);
  EXPECT_EQ(ram.at<uint64_t>(kPdAddr + 0x4000), 4 * k1GiB | kPtePresent | kPteWritable | kPteHuge);
}

TEST(CpuTables, FailsWhenRamDoesNotCoverLowMemory) {
  test::Bytes buf(0x400);
  auto mem = GuestMemory::wrap({{0, buf.size(), buf.data(), 0, 0}});
  auto tables = write_cpu_tables(*mem);
  ASSERT_FALSE(tables);
  EXPECT_EQ(tables.error().errc, VmmErrc::SetupRegisters);
}

TEST(Sregs, LongMode) {
  TestRam ram(16 << 20);
  auto tables = write_cpu_tables(*ram.mem);
  kvm_sregs sregs{};
  sregs.tr.selector = 0x1234;  // not ours: must survive
  set_long_mode_sregs(sregs, *tables);
  EXPECT_EQ(sregs.cr0 & (kCr0Pe | kCr0Pg), kCr0Pe | kCr0Pg);
  EXPECT_EQ(sregs.cr4 & kCr4Pae, kCr4Pae);
  EXPECT_EQ(sregs.efer, kEferLme | kEferLma);
  EXPECT_EQ(sregs.cr3, kPml4Addr);
  EXPECT_EQ(sregs.cs.selector, kSelectorCode64);
  EXPECT_EQ(sregs.cs.l, 1);
  EXPECT_EQ(sregs.cs.db, 0);
  EXPECT_EQ(sregs.cs.type, 0xb);
  EXPECT_EQ(sregs.cs.present, 1);
  for (const kvm_segment* seg : {&sregs.ds, &sregs.es, &sregs.ss, &sregs.fs, &sregs.gs}) {
    EXPECT_EQ(seg->selector, kSelectorData);
    EXPECT_EQ(seg->type, 0x3);
    EXPECT_EQ(seg->base, 0u);
    EXPECT_EQ(seg->limit, 0xffffffffu);
  }
  EXPECT_EQ(sregs.gdt.base, kGdtAddr);
  EXPECT_EQ(sregs.gdt.limit, kGdtEntries * 8 - 1);
  EXPECT_EQ(sregs.tr.selector, 0x1234);
}

TEST(Sregs, Protected32WithoutPaging) {
  TestRam ram(16 << 20);
  auto tables = write_cpu_tables(*ram.mem);
  kvm_sregs sregs{};
  set_long_mode_sregs(sregs, *tables);  // leftovers must be cleared
  set_protected32_sregs(sregs, *tables);
  EXPECT_EQ(sregs.cr0 & kCr0Pe, kCr0Pe);
  EXPECT_EQ(sregs.cr0 & kCr0Pg, 0u);
  EXPECT_EQ(sregs.cr4, 0u);
  EXPECT_EQ(sregs.efer, 0u);
  EXPECT_EQ(sregs.cs.selector, kSelectorCode32);
  EXPECT_EQ(sregs.cs.l, 0);
  EXPECT_EQ(sregs.cs.db, 1);
  EXPECT_EQ(sregs.cs.limit, 0xffffffffu);
  EXPECT_EQ(sregs.ss.selector, kSelectorData);
  EXPECT_EQ(sregs.ss.db, 1);
  EXPECT_EQ(sregs.tr.type, 0xb);
  EXPECT_EQ(sregs.tr.limit, 0x67u);
}

TEST(E820, LowRamLegacyHoleAndMmioHole) {
  TestRam ram(64 << 20);
  const std::vector<E820Entry> want{
      {0, kEbdaStart, kE820Ram},
      {kEbdaStart, 0x100000 - kEbdaStart, kE820Reserved},
      {0x100000, (64 << 20) - 0x100000, kE820Ram},
      {kMmioHoleStart, kMmioHoleEnd - kMmioHoleStart, kE820Reserved},
  };
  EXPECT_EQ(build_e820(*ram.mem), want);
}

TEST(E820, RamAboveFourGib) {
  TestRam ram(8 << 20, 4 << 20);
  auto map = build_e820(*ram.mem);
  ASSERT_EQ(map.size(), 5u);
  EXPECT_EQ(map[4], (E820Entry{kMmioHoleEnd, 4 << 20, kE820Ram}));
  EXPECT_EQ(ram_end_from(*ram.mem, 0x100000), 8u << 20);
  EXPECT_EQ(ram_end_from(*ram.mem, kMmioHoleEnd + 5), kMmioHoleEnd + (4 << 20));
  EXPECT_EQ(ram_end_from(*ram.mem, 8u << 20), 0u);
}

}  // namespace
}  // namespace ferry::vmm::boot
