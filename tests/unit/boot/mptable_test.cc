// The Intel MP table: signatures, checksums, processor/IOAPIC/routing entries, and that
// load_kernel writes it in the EBDA for every format.
#include "ferry/vmm/boot/mptable.h"

#include <gtest/gtest.h>

#include "ferry/vmm/boot/layout.h"
#include "ferry/vmm/boot/loader.h"
#include "test_images.h"

namespace ferry::vmm::boot {
namespace {

using test::TestRam;

uint8_t sum(const uint8_t* p, size_t n) {
  uint8_t s = 0;
  for (size_t i = 0; i < n; ++i) {
    s = static_cast<uint8_t>(s + p[i]);
  }
  return s;
}

TEST(MpTable, FloatingPointerAndConfigurationTable) {
  TestRam ram(16 << 20);
  auto size = write_mptable(*ram.mem, 2);
  ASSERT_TRUE(size) << size.error().message();
  const uint8_t* fp = ram.ptr(kMpTableAddr);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(fp), 4), "_MP_");
  EXPECT_EQ(sum(fp, 16), 0);
  EXPECT_EQ(fp[8], 1);   // length
  EXPECT_EQ(fp[9], 4);   // spec 1.4
  EXPECT_EQ(fp[11], 0);  // a configuration table follows (no default config)
  const uint32_t table = ram.at<uint32_t>(kMpTableAddr + 4);
  EXPECT_EQ(table, kMpTableAddr + 16);
  const uint8_t* ct = ram.ptr(table);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(ct), 4), "PCMP");
  const uint16_t length = ram.at<uint16_t>(table + 4);
  EXPECT_EQ(length, *size - 16);
  EXPECT_EQ(sum(ct, length), 0);
  EXPECT_EQ(ram.at<uint16_t>(table + 34), 2 + 1 + 1 + 16 + 2);  // entries
  EXPECT_EQ(ram.at<uint32_t>(table + 36), kLapicAddr);

  // Two processors: APIC IDs 0 (enabled, BSP) and 1 (enabled).
  const uint64_t p0 = table + 44;
  EXPECT_EQ(*ram.ptr(p0), 0);
  EXPECT_EQ(*ram.ptr(p0 + 1), 0);
  EXPECT_EQ(*ram.ptr(p0 + 3), 3);
  EXPECT_EQ(*ram.ptr(p0 + 20 + 1), 1);
  EXPECT_EQ(*ram.ptr(p0 + 20 + 3), 1);
  // ISA bus, then the IOAPIC with ID 2 at 0xfec00000.
  const uint64_t bus = p0 + 40;
  EXPECT_EQ(*ram.ptr(bus), 1);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(ram.ptr(bus + 2)), 6), "ISA   ");
  const uint64_t ioapic = bus + 8;
  EXPECT_EQ(*ram.ptr(ioapic), 2);
  EXPECT_EQ(*ram.ptr(ioapic + 1), 2);
  EXPECT_EQ(ram.at<uint32_t>(ioapic + 4), kIoapicAddr);
  // IRQ 4 (the UART) reaches IOAPIC 2, pin 4.
  const uint64_t irq4 = ioapic + 8 + 4 * 8;
  EXPECT_EQ(*ram.ptr(irq4), 3);
  EXPECT_EQ(*ram.ptr(irq4 + 5), 4);
  EXPECT_EQ(*ram.ptr(irq4 + 6), 2);
  EXPECT_EQ(*ram.ptr(irq4 + 7), 4);
  EXPECT_LE(*size, kMpTableMaxBytes);
}

TEST(MpTable, FitsForTheMostCpusAndIsWrittenByLoadKernel) {
  TestRam ram(64 << 20);
  auto plan =
      load_kernel(*ram.mem, test::pvh_vmlinux(), {}, "", {KernelFormat::Auto, kMaxBootCpus});
  ASSERT_TRUE(plan) << plan.error().message();
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(ram.ptr(kMpTableAddr)), 4), "_MP_");
  const uint32_t table = ram.at<uint32_t>(kMpTableAddr + 4);
  EXPECT_EQ(ram.at<uint16_t>(table + 34), kMaxBootCpus + 1 + 1 + 16 + 2);
  EXPECT_EQ(sum(ram.ptr(table), ram.at<uint16_t>(table + 4)), 0);
  // The table lives in the EBDA, which the e820 map reports reserved.
  for (const E820Entry& e : plan->e820) {
    if (e.addr <= kMpTableAddr && kMpTableAddr < e.addr + e.size) {
      EXPECT_EQ(e.type, kE820Reserved);
    }
  }
}

}  // namespace
}  // namespace ferry::vmm::boot
