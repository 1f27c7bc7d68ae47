// The Ferry64 test-guest path and multiboot v1 (a.out kludge and ELF32): what lands in
// guest memory, the multiboot info, the vCPU entry states, and malformed headers.
#include <gtest/gtest.h>

#include "ferry/vmm/boot/layout.h"
#include "ferry/vmm/boot/loader.h"
#include "test_images.h"

namespace ferry::vmm::boot {
namespace {

using test::Bytes;
using test::put;
using test::TestRam;

constexpr uint64_t kRam = 64 << 20;

VmmResult<BootPlan> load(TestRam& ram, const Bytes& kernel, const Bytes& initrd = {},
                         std::string_view cmdline = "console=ttyS0", uint32_t cpus = 1,
                         KernelFormat format = KernelFormat::Auto) {
  return load_kernel(*ram.mem, kernel, initrd, cmdline, BootOptions{format, cpus});
}

void expect_load_error(const VmmResult<BootPlan>& plan, const std::string& needle) {
  ASSERT_FALSE(plan) << "loaded: " << plan->description;
  EXPECT_EQ(plan.error().errc, VmmErrc::LoadKernel) << plan.error().message();
  EXPECT_NE(plan.error().message().find(needle), std::string::npos) << plan.error().message();
}

void expect_multiboot_info(const TestRam& ram, uint64_t info_addr, bool with_module) {
  const auto info = ram.at<MultibootInfo>(info_addr);
  uint32_t flags =
      kMultibootInfoMemory | kMultibootInfoCmdline | kMultibootInfoMmap | kMultibootInfoLoaderName;
  if (with_module) {
    flags |= kMultibootInfoMods;
  }
  EXPECT_EQ(info.flags, flags);
  EXPECT_EQ(info.mem_lower, kEbdaStart >> 10);
  EXPECT_EQ(info.mem_upper, (kRam - 0x100000) >> 10);
  EXPECT_EQ(ram.str(info.cmdline), "console=ttyS0");
  EXPECT_EQ(ram.str(info.boot_loader_name), "Ferry");
  ASSERT_EQ(info.mmap_length, 4 * sizeof(MultibootMmapEntry));
  // Packed structs: compare copies of their fields, never references into them.
  const auto e0 = ram.at<MultibootMmapEntry>(info.mmap_addr);
  const auto e2 = ram.at<MultibootMmapEntry>(info.mmap_addr + 2 * 24);
  const auto e3 = ram.at<MultibootMmapEntry>(info.mmap_addr + 3 * 24);
  EXPECT_EQ(uint32_t{e0.size}, 20u);
  EXPECT_EQ(uint64_t{e0.addr}, 0u);
  EXPECT_EQ(uint64_t{e0.len}, kEbdaStart);
  EXPECT_EQ(uint32_t{e0.type}, kE820Ram);
  EXPECT_EQ(uint64_t{e2.addr}, 0x100000u);
  EXPECT_EQ(uint64_t{e2.len}, kRam - 0x100000);
  EXPECT_EQ(uint64_t{e3.addr}, kMmioHoleStart);
  EXPECT_EQ(uint32_t{e3.type}, kE820Reserved);
}

TEST(Ferry64, LoadsImageZeroesBssAndEntersEveryVcpuInLongMode) {
  TestRam ram(kRam);
  const Bytes image = test::ferry64_image();
  EXPECT_EQ(detect_format(image).value(), KernelFormat::Ferry64);
  auto plan = load(ram, image, {}, "console=ttyS0", 2);
  ASSERT_TRUE(plan) << plan.error().message();
  EXPECT_EQ(plan->format, KernelFormat::Ferry64);
  EXPECT_EQ(std::memcmp(ram.ptr(0x100000), image.data(), image.size()), 0);
  for (uint64_t a = 0x100000 + image.size(); a < 0x100000 + image.size() + 0x2000; ++a) {
    ASSERT_EQ(*ram.ptr(a), 0) << std::hex << a;
  }
  EXPECT_EQ(*ram.ptr(0x100000 + image.size() + 0x2000), 0xaa);  // past bss: untouched
  EXPECT_EQ(plan->entry, 0x100100u);
  EXPECT_EQ(plan->kernel_end, 0x100000u + image.size() + 0x2000);
  EXPECT_EQ(plan->ap_start, ApStart::AtEntry);
  ASSERT_EQ(plan->vcpus.size(), 2u);
  for (uint32_t i = 0; i < 2; ++i) {
    const VcpuBootState& v = plan->vcpus[i];
    EXPECT_EQ(v.mode, CpuMode::Long64);
    EXPECT_EQ(v.regs.rip, 0x100100u);
    EXPECT_EQ(v.regs.rax, kMultibootBootloaderMagic);
    EXPECT_EQ(v.regs.rbx, kBootInfoAddr);
    EXPECT_EQ(v.regs.rsp, stack_top(i));
    EXPECT_LT(v.regs.rsp, 0x100000u);
    EXPECT_EQ(v.regs.rsp % 16, 0u);
    EXPECT_EQ(v.regs.rdi, i);
    EXPECT_EQ(v.regs.rflags, 0x2u);  // IF clear
  }
  EXPECT_NE(plan->vcpus[0].regs.rsp, plan->vcpus[1].regs.rsp);
  expect_multiboot_info(ram, plan->boot_info_addr, false);
  kvm_sregs sregs{};
  apply_sregs(*plan, 1, sregs);
  EXPECT_EQ(sregs.cs.l, 1);
  EXPECT_EQ(sregs.cr3, kPml4Addr);
}

TEST(Ferry64, InitrdBecomesModuleAfterTheKernel) {
  TestRam ram(kRam);
  const Bytes initrd(5000, 0x42);
  auto plan = load(ram, test::ferry64_image(), initrd);
  ASSERT_TRUE(plan) << plan.error().message();
  EXPECT_EQ(plan->initrd_addr % 4096, 0u);
  EXPECT_GE(plan->initrd_addr, plan->kernel_end);
  EXPECT_EQ(std::memcmp(ram.ptr(plan->initrd_addr), initrd.data(), initrd.size()), 0);
  expect_multiboot_info(ram, plan->boot_info_addr, true);
  const auto info = ram.at<MultibootInfo>(kBootInfoAddr);
  ASSERT_EQ(info.mods_count, 1u);
  const auto mod = ram.at<MultibootModule>(info.mods_addr);
  EXPECT_EQ(mod.mod_start, plan->initrd_addr);
  EXPECT_EQ(mod.mod_end, plan->initrd_addr + initrd.size());
  EXPECT_EQ(ram.str(mod.string), "initrd");
}

TEST(Ferry64, MalformedHeaders) {
  struct Case {
    const char* name;
    void (*mutate)(Bytes&);
    const char* needle;
  };
  const Case cases[] = {
      {"end<=load", [](Bytes& b) { put<uint64_t>(b, 0x1018, 0x100000); }, "load_end_addr"},
      {"longer than file", [](Bytes& b) { put<uint64_t>(b, 0x1018, 0x100000 + 0x10000); },
       "longer than the file"},
      {"bss below end", [](Bytes& b) { put<uint64_t>(b, 0x1020, 0x100010); }, "bss_end_addr"},
      {"entry outside", [](Bytes& b) { put<uint64_t>(b, 0x1008, 0x200000); }, "entry64"},
      {"below 1 MiB",
       [](Bytes& b) {
         put<uint64_t>(b, 0x1008, 0x1000);
         put<uint64_t>(b, 0x1010, 0x0);
         put<uint64_t>(b, 0x1018, 0x3000);
         put<uint64_t>(b, 0x1020, 0x3000);
       },
       "below 0x100000"},
      {"outside RAM",
       [](Bytes& b) {
         put<uint64_t>(b, 0x1008, 0x40000100);
         put<uint64_t>(b, 0x1010, 0x40000000);
         put<uint64_t>(b, 0x1018, 0x40003000);
         put<uint64_t>(b, 0x1020, 0x40005000);
       },
       "not inside guest RAM"},
      {"wrapping",
       [](Bytes& b) {
         put<uint64_t>(b, 0x1008, 0xffffffffffff0100ull);
         put<uint64_t>(b, 0x1010, 0xffffffffffff0000ull);
         put<uint64_t>(b, 0x1018, 0xffffffffffff3000ull);
         put<uint64_t>(b, 0x1020, 0xffffffffffffffffull);
       },
       "not inside guest RAM"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    TestRam ram(kRam);
    Bytes image = test::ferry64_image();
    c.mutate(image);
    expect_load_error(load(ram, image), c.needle);
  }
}

TEST(Ferry64, TruncatedHeaderAndUnalignedMagic) {
  TestRam ram(kRam);
  Bytes image = test::ferry64_image();
  image.resize(0x1010);  // header cut after entry64
  expect_load_error(load(ram, image, {}, "", 1, KernelFormat::Ferry64), "truncated");
  Bytes unaligned(0x3000, 0);
  put<uint64_t>(unaligned, 0x1004, kFerry64Magic);
  EXPECT_FALSE(detect_format(unaligned));
  expect_load_error(load(ram, unaligned, {}, "", 1, KernelFormat::Ferry64), "no FERRY64 header");
}

TEST(Ferry64, InitrdTooBig) {
  TestRam ram(4 << 20);
  const Bytes initrd(3 << 20, 1);
  auto plan = load(ram, test::ferry64_image(), initrd);
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().errc, VmmErrc::LoadInitrd);
  EXPECT_NE(plan.error().message().find("does not fit"), std::string::npos);
}

TEST(Multiboot, AoutKludgeEntersInProtectedModeBspOnly) {
  TestRam ram(kRam);
  const Bytes kernel = test::multiboot_aout();
  EXPECT_EQ(detect_format(kernel).value(), KernelFormat::Multiboot);
  auto plan = load(ram, kernel, {}, "console=ttyS0", 2);
  ASSERT_TRUE(plan) << plan.error().message();
  EXPECT_EQ(std::memcmp(ram.ptr(0x200000), kernel.data(), kernel.size()), 0);
  EXPECT_EQ(*ram.ptr(0x200000 + kernel.size()), 0);  // bss
  EXPECT_EQ(*ram.ptr(0x200000 + kernel.size() + 0xfff), 0);
  EXPECT_EQ(*ram.ptr(0x200000 + kernel.size() + 0x1000), 0xaa);
  EXPECT_EQ(plan->ap_start, ApStart::WaitForSipi);
  ASSERT_EQ(plan->vcpus.size(), 1u);
  EXPECT_EQ(plan->vcpus[0].mode, CpuMode::Protected32);
  EXPECT_EQ(plan->vcpus[0].regs.rip, 0x200080u);
  EXPECT_EQ(plan->vcpus[0].regs.rax, kMultibootBootloaderMagic);
  EXPECT_EQ(plan->vcpus[0].regs.rbx, kBootInfoAddr);
  expect_multiboot_info(ram, kBootInfoAddr, false);
  kvm_sregs sregs{};
  apply_sregs(*plan, 0, sregs);
  EXPECT_EQ(sregs.cs.selector, kSelectorCode32);
  EXPECT_EQ(sregs.cr0 & kCr0Pg, 0u);
}

TEST(Multiboot, Elf32KernelLoadsByPhysicalAddress) {
  TestRam ram(kRam);
  Bytes text(0x800, 0x90);
  const uint32_t flags = 3;  // page-align + memory info, no a.out kludge
  put<uint32_t>(text, 0x10, kMultibootHeaderMagic);
  put<uint32_t>(text, 0x14, flags);
  put<uint32_t>(text, 0x18, static_cast<uint32_t>(-(kMultibootHeaderMagic + flags)));
  const Bytes kernel =
      test::make_elf(false, 0xc0300020, {{PT_LOAD, 0x300000, 0xc0300000, text, 0x1000}});
  EXPECT_EQ(detect_format(kernel).value(), KernelFormat::Multiboot);
  auto plan = load(ram, kernel, Bytes(100, 7));
  ASSERT_TRUE(plan) << plan.error().message();
  EXPECT_EQ(std::memcmp(ram.ptr(0x300000), text.data(), text.size()), 0);
  EXPECT_EQ(*ram.ptr(0x300000 + 0x800), 0);
  EXPECT_EQ(plan->vcpus[0].regs.rip, 0x300020u);  // e_entry translated to physical
  EXPECT_EQ(plan->kernel_end, 0x301000u);
  EXPECT_EQ(plan->initrd_addr, 0x301000u);
  expect_multiboot_info(ram, kBootInfoAddr, true);
}

TEST(Multiboot, MalformedHeaders) {
  TestRam ram(kRam);
  Bytes bad_sum = test::multiboot_aout();
  put<uint32_t>(bad_sum, 0x48, 0x1234);
  expect_load_error(load(ram, bad_sum), "bad checksum");

  expect_load_error(load(ram, test::multiboot_aout((1u << 16) | (1u << 5))),
                    "requires features 0x20");

  Bytes before_file = test::multiboot_aout();
  put<uint32_t>(before_file, 0x4c, 0x200000 + 0x1000);  // header_addr far past load_addr
  expect_load_error(load(ram, before_file), "before the file start");

  Bytes past_end = test::multiboot_aout();
  put<uint32_t>(past_end, 0x54, 0x200000 + 0x10000);
  expect_load_error(load(ram, past_end), "past the end of the file");

  Bytes entry = test::multiboot_aout();
  put<uint32_t>(entry, 0x5c, 0x100);
  expect_load_error(load(ram, entry), "entry_addr");

  Bytes bss = test::multiboot_aout();
  put<uint32_t>(bss, 0x58, 0x200010);
  expect_load_error(load(ram, bss), "bss_end_addr");

  Bytes truncated = test::multiboot_aout();
  truncated.resize(0x50);
  expect_load_error(load(ram, truncated), "truncated");

  // Header without the kludge in a file that is not ELF.
  Bytes not_elf = test::multiboot_aout(3);
  expect_load_error(load(ram, not_elf), "not an ELF file");
}

}  // namespace
}  // namespace ferry::vmm::boot
