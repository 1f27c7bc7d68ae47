// The Linux paths: PVH (hvm_start_info, memmap, modules, 32-bit entry) and the bzImage
// 64-bit boot protocol (zero page fields, e820, initrd placement), and their bad inputs.
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
                         std::string_view cmdline = "console=ttyS0 ferry.cmd=uname -a",
                         KernelFormat format = KernelFormat::Auto) {
  return load_kernel(*ram.mem, kernel, initrd, cmdline, BootOptions{format, 1});
}

void expect_error(const VmmResult<BootPlan>& plan, VmmErrc errc, const std::string& needle) {
  ASSERT_FALSE(plan) << "loaded: " << plan->description;
  EXPECT_EQ(plan.error().errc, errc) << plan.error().message();
  EXPECT_NE(plan.error().message().find(needle), std::string::npos) << plan.error().message();
}

TEST(Pvh, WritesStartInfoMemmapAndModule) {
  TestRam ram(kRam);
  const Bytes kernel = test::pvh_vmlinux();
  const Bytes initrd(10000, 0x37);
  EXPECT_EQ(detect_format(kernel).value(), KernelFormat::Pvh);
  auto plan = load(ram, kernel, initrd);
  ASSERT_TRUE(plan) << plan.error().message();
  EXPECT_EQ(plan->format, KernelFormat::Pvh);
  EXPECT_EQ(*ram.ptr(test::kPvhKernelAt), 0x5a);  // text byte 0 = 0 ^ 0x5a
  EXPECT_EQ(*ram.ptr(test::kPvhKernelAt + 0xfff), (0xfff ^ 0x5a) & 0xff);
  EXPECT_EQ(*ram.ptr(test::kPvhKernelAt + 0x1000), 0);  // bss zeroed
  EXPECT_EQ(*ram.ptr(test::kPvhKernelAt + 0x2fff), 0);
  EXPECT_EQ(*ram.ptr(test::kPvhKernelAt + 0x3000), 0xaa);

  ASSERT_EQ(plan->vcpus.size(), 1u);
  const VcpuBootState& bsp = plan->vcpus[0];
  EXPECT_EQ(bsp.mode, CpuMode::Protected32);
  EXPECT_EQ(bsp.regs.rip, test::kPvhEntry);
  EXPECT_EQ(bsp.regs.rbx, kBootInfoAddr);
  EXPECT_EQ(bsp.regs.rflags, 0x2u);
  EXPECT_EQ(plan->ap_start, ApStart::WaitForSipi);

  const auto info = ram.at<HvmStartInfo>(kBootInfoAddr);
  EXPECT_EQ(info.magic, kHvmStartMagic);
  EXPECT_EQ(info.version, 1u);
  EXPECT_EQ(info.flags, 0u);
  EXPECT_EQ(info.rsdp_paddr, 0u);
  EXPECT_EQ(info.reserved, 0u);
  EXPECT_EQ(ram.str(info.cmdline_paddr), "console=ttyS0 ferry.cmd=uname -a");
  ASSERT_EQ(info.memmap_entries, 4u);
  const auto m0 = ram.at<HvmMemmapEntry>(info.memmap_paddr);
  const auto m1 = ram.at<HvmMemmapEntry>(info.memmap_paddr + 24);
  const auto m2 = ram.at<HvmMemmapEntry>(info.memmap_paddr + 48);
  const auto m3 = ram.at<HvmMemmapEntry>(info.memmap_paddr + 72);
  EXPECT_EQ(m0.addr, 0u);
  EXPECT_EQ(m0.size, kEbdaStart);
  EXPECT_EQ(m0.type, kE820Ram);
  EXPECT_EQ(m1.type, kE820Reserved);
  EXPECT_EQ(m2.addr, 0x100000u);
  EXPECT_EQ(m2.size, kRam - 0x100000);
  EXPECT_EQ(m2.type, kE820Ram);
  EXPECT_EQ(m3.addr, kMmioHoleStart);
  EXPECT_EQ(m3.size, kMmioHoleEnd - kMmioHoleStart);
  EXPECT_EQ(m3.type, kE820Reserved);
  EXPECT_EQ(m3.reserved, 0u);

  ASSERT_EQ(info.nr_modules, 1u);
  const auto mod = ram.at<HvmModlistEntry>(info.modlist_paddr);
  EXPECT_EQ(mod.size, initrd.size());
  EXPECT_EQ(mod.paddr, plan->initrd_addr);
  EXPECT_EQ(mod.paddr % 4096, 0u);
  EXPECT_LE(mod.paddr + mod.size, kRam);  // placed high, inside RAM
  EXPECT_GT(mod.paddr + 4096 + mod.size, kRam);
  EXPECT_EQ(std::memcmp(ram.ptr(mod.paddr), initrd.data(), initrd.size()), 0);
}

TEST(Pvh, FourByteNoteAndNoInitrd) {
  TestRam ram(kRam);
  Bytes desc;
  put<uint32_t>(desc, 0, static_cast<uint32_t>(test::kPvhEntry));
  auto plan = load(ram, test::pvh_vmlinux(desc));
  ASSERT_TRUE(plan) << plan.error().message();
  EXPECT_EQ(plan->vcpus[0].regs.rip, test::kPvhEntry);
  EXPECT_EQ(ram.at<HvmStartInfo>(kBootInfoAddr).nr_modules, 0u);
  EXPECT_EQ(ram.at<HvmStartInfo>(kBootInfoAddr).modlist_paddr, 0u);
}

TEST(Pvh, MalformedElf) {
  TestRam ram(kRam);
  const KernelFormat pvh = KernelFormat::Pvh;
  // Offsets inside the ELF64 built by pvh_vmlinux: phdrs at 0x40 (56 bytes each).
  expect_error(load(ram, test::pvh_vmlinux(Bytes{1, 2, 3}), {}, "", pvh), VmmErrc::LoadKernel,
               "3-byte descriptor");
  expect_error(load(ram, test::pvh_vmlinux(test::le64(0x5000000)), {}, "", pvh),
               VmmErrc::LoadKernel, "outside the loaded image");

  Bytes phnum0 = test::pvh_vmlinux();
  put<uint16_t>(phnum0, 56, 0);
  expect_error(load(ram, phnum0, {}, "", pvh), VmmErrc::LoadKernel, "0 program headers");

  Bytes phentsize = test::pvh_vmlinux();
  put<uint16_t>(phentsize, 54, 32);
  expect_error(load(ram, phentsize, {}, "", pvh), VmmErrc::LoadKernel, "program header size");

  Bytes phoff = test::pvh_vmlinux();
  put<uint64_t>(phoff, 32, 0xfffffffffffffff0ull);
  expect_error(load(ram, phoff, {}, "", pvh), VmmErrc::LoadKernel, "past the end of the file");

  Bytes seg_off = test::pvh_vmlinux();
  put<uint64_t>(seg_off, 0x40 + 8, 0x7fffffffffffffffull);  // PT_LOAD p_offset
  expect_error(load(ram, seg_off, {}, "", pvh), VmmErrc::LoadKernel, "outside the file");

  Bytes filesz = test::pvh_vmlinux();
  put<uint64_t>(filesz, 0x40 + 40, 0x100);  // p_memsz < p_filesz
  expect_error(load(ram, filesz, {}, "", pvh), VmmErrc::LoadKernel, "exceeds memsz");

  Bytes low = test::pvh_vmlinux();
  put<uint64_t>(low, 0x40 + 24, 0x80000);  // p_paddr below 1 MiB
  expect_error(load(ram, low, {}, "", pvh), VmmErrc::LoadKernel, "below 0x100000");

  Bytes high = test::pvh_vmlinux();
  put<uint64_t>(high, 0x40 + 24, 0xfffffffffffff000ull);  // p_paddr wraps with memsz
  expect_error(load(ram, high, {}, "", pvh), VmmErrc::LoadKernel, "wraps around");

  // The note segment: first note's namesz made huge.
  Bytes note = test::pvh_vmlinux();
  const uint64_t note_off = test::get<uint64_t>(note, 0x40 + 56 + 8);
  put<uint32_t>(note, note_off, 0xfffffff0u);
  expect_error(load(ram, note, {}, "", pvh), VmmErrc::LoadKernel, "runs past its segment");

  // A PT_NOTE covering the whole file many times over must not make scanning slow.
  Bytes big_note = test::pvh_vmlinux();
  big_note.resize(1 << 20);
  put<uint64_t>(big_note, 0x40 + 56 + 8, 0);         // PT_NOTE p_offset
  put<uint64_t>(big_note, 0x40 + 56 + 32, 1 << 20);  // PT_NOTE p_filesz
  expect_error(load(ram, big_note, {}, "", pvh), VmmErrc::LoadKernel, "note segment of");

  Bytes bad_magic = test::pvh_vmlinux();
  bad_magic[5] = 2;  // big-endian
  expect_error(load(ram, bad_magic, {}, "", pvh), VmmErrc::LoadKernel, "little-endian");

  Bytes truncated = test::pvh_vmlinux();
  truncated.resize(40);
  expect_error(load(ram, truncated, {}, "", pvh), VmmErrc::LoadKernel, "truncated");

  const Bytes no_note =
      test::make_elf(true, 0x1000000, {{PT_LOAD, 0x1000000, 0x1000000, Bytes(0x100, 1), 0x100}});
  expect_error(load(ram, no_note, {}, "", pvh), VmmErrc::LoadKernel, "no XEN_ELFNOTE");
  expect_error(load(ram, no_note), VmmErrc::LoadKernel, "neither a PVH entry note");
}

TEST(Pvh, InitrdTooBig) {
  TestRam ram(24 << 20);
  expect_error(load(ram, test::pvh_vmlinux(), Bytes(8 << 20, 1)), VmmErrc::LoadInitrd,
               "does not fit");
}

TEST(BzImage, ZeroPageE820CmdlineAndEntry) {
  TestRam ram(kRam);
  const Bytes kernel = test::bzimage();
  const Bytes initrd(12345, 0x99);
  EXPECT_EQ(detect_format(kernel).value(), KernelFormat::BzImage);
  auto plan = load(ram, kernel, initrd);
  ASSERT_TRUE(plan) << plan.error().message();
  // Protected-mode kernel at pref_address, zeroed up to init_size.
  EXPECT_EQ(std::memcmp(ram.ptr(test::kBzPrefAddress), kernel.data() + test::kBzPmOffset,
                        kernel.size() - test::kBzPmOffset),
            0);
  EXPECT_EQ(*ram.ptr(test::kBzPrefAddress + 0x3fff), 0);
  EXPECT_EQ(plan->kernel_end, test::kBzPrefAddress + 0x4000);

  ASSERT_EQ(plan->vcpus.size(), 1u);
  const VcpuBootState& bsp = plan->vcpus[0];
  EXPECT_EQ(bsp.mode, CpuMode::Long64);
  EXPECT_EQ(bsp.regs.rip, test::kBzPrefAddress + 0x200);
  EXPECT_EQ(bsp.regs.rsi, kZeroPageAddr);
  EXPECT_EQ(bsp.regs.rflags, 0x2u);
  kvm_sregs sregs{};
  apply_sregs(*plan, 0, sregs);
  EXPECT_EQ(sregs.cs.selector, 0x10);  // __BOOT_CS
  EXPECT_EQ(sregs.ds.selector, 0x18);  // __BOOT_DS

  const uint64_t z = kZeroPageAddr;
  EXPECT_EQ(ram.at<uint16_t>(z + zp::kBootFlag), 0xaa55);
  EXPECT_EQ(ram.at<uint32_t>(z + zp::kHeaderMagic), zp::kHeaderMagicValue);
  EXPECT_EQ(ram.at<uint16_t>(z + zp::kVersion), 0x020f);
  EXPECT_EQ(ram.at<uint64_t>(z + zp::kPrefAddress), test::kBzPrefAddress);
  EXPECT_EQ(ram.at<uint8_t>(z + zp::kTypeOfLoader), 0xff);
  EXPECT_EQ(ram.at<uint16_t>(z + zp::kVidMode), 0xffff);
  EXPECT_EQ(ram.at<uint32_t>(z + zp::kCode32Start), test::kBzPrefAddress);
  EXPECT_EQ(ram.at<uint32_t>(z + zp::kCmdLinePtr), kCmdlineAddr);
  EXPECT_EQ(ram.str(kCmdlineAddr), "console=ttyS0 ferry.cmd=uname -a");
  EXPECT_EQ(ram.at<uint32_t>(z + zp::kExtCmdLinePtr), 0u);
  EXPECT_EQ(ram.at<uint8_t>(z + 0x000), 0);  // screen_info etc. zero, not 0xaa
  EXPECT_EQ(ram.at<uint8_t>(z + 0xfff), 0);

  EXPECT_EQ(ram.at<uint32_t>(z + zp::kRamdiskImage), plan->initrd_addr);
  EXPECT_EQ(ram.at<uint32_t>(z + zp::kRamdiskSize), initrd.size());
  EXPECT_EQ(ram.at<uint32_t>(z + zp::kExtRamdiskImage), 0u);
  EXPECT_EQ(plan->initrd_addr % 4096, 0u);
  EXPECT_LE(plan->initrd_addr + initrd.size(), kRam);
  EXPECT_GT(plan->initrd_addr + initrd.size() + 4096, kRam);
  EXPECT_EQ(std::memcmp(ram.ptr(plan->initrd_addr), initrd.data(), initrd.size()), 0);

  ASSERT_EQ(ram.at<uint8_t>(z + zp::kE820Entries), 4);
  const auto e0 = ram.at<BootE820Entry>(z + zp::kE820Table);
  const auto e2 = ram.at<BootE820Entry>(z + zp::kE820Table + 40);
  const auto e3 = ram.at<BootE820Entry>(z + zp::kE820Table + 60);
  EXPECT_EQ(uint64_t{e0.addr}, 0u);
  EXPECT_EQ(uint64_t{e0.size}, kEbdaStart);
  EXPECT_EQ(uint32_t{e0.type}, kE820Ram);
  EXPECT_EQ(uint64_t{e2.addr}, 0x100000u);
  EXPECT_EQ(uint64_t{e2.size}, kRam - 0x100000);
  EXPECT_EQ(uint64_t{e3.addr}, kMmioHoleStart);
  EXPECT_EQ(uint32_t{e3.type}, kE820Reserved);
}

TEST(BzImage, InitrdRespectsInitrdAddrMax) {
  TestRam ram(kRam);
  Bytes kernel = test::bzimage();
  put<uint32_t>(kernel, zp::kInitrdAddrMax, 0x1ffffff);  // 32 MiB - 1
  auto plan = load(ram, kernel, Bytes(5000, 1));
  ASSERT_TRUE(plan) << plan.error().message();
  EXPECT_LE(plan->initrd_addr + 5000, 0x2000000u);
  EXPECT_GE(plan->initrd_addr, 0x2000000u - 0x3000);

  put<uint32_t>(kernel, zp::kInitrdAddrMax, 0x1004000);  // no room above the kernel
  TestRam ram2(kRam);
  expect_error(load(ram2, kernel, Bytes(5000, 1)), VmmErrc::LoadInitrd, "initrd_addr_max");
}

TEST(BzImage, MalformedHeaders) {
  struct Case {
    const char* name;
    void (*mutate)(Bytes&);
    const char* needle;
  };
  const Case cases[] = {
      {"boot flag", [](Bytes& b) { put<uint16_t>(b, zp::kBootFlag, 0x1234); }, "boot flag"},
      {"old protocol", [](Bytes& b) { put<uint16_t>(b, zp::kVersion, 0x020b); }, "2.11"},
      {"no 64-bit entry", [](Bytes& b) { put<uint16_t>(b, zp::kXloadflags, 0x2); },
       "XLF_KERNEL_64"},
      {"zImage", [](Bytes& b) { put<uint8_t>(b, zp::kLoadFlags, 0); }, "LOADED_HIGH"},
      {"setup past file", [](Bytes& b) { put<uint8_t>(b, zp::kSetupSects, 200); },
       "past the end of the file"},
      {"header end", [](Bytes& b) { put<uint8_t>(b, zp::kHeaderEndByte, 0x10); },
       "setup header end"},
      {"misaligned pref", [](Bytes& b) { put<uint64_t>(b, zp::kPrefAddress, 0x1001000); },
       "not aligned"},
      {"pref above RAM", [](Bytes& b) { put<uint64_t>(b, zp::kPrefAddress, 0x40000000); },
       "not inside guest RAM"},
      {"huge init_size", [](Bytes& b) { put<uint32_t>(b, zp::kInitSize, 0xfffff000); },
       "not inside guest RAM"},
      {"pref below 1 MiB",
       [](Bytes& b) {
         put<uint64_t>(b, zp::kPrefAddress, 0x80000);
         put<uint8_t>(b, zp::kRelocatableKernel, 0);
       },
       "below 0x100000"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    TestRam ram(kRam);
    Bytes kernel = test::bzimage();
    c.mutate(kernel);
    expect_error(load(ram, kernel, {}, "", KernelFormat::BzImage), VmmErrc::LoadKernel, c.needle);
  }
  TestRam ram(kRam);
  Bytes tiny = test::bzimage();
  tiny.resize(0x180);
  expect_error(load(ram, tiny, {}, "", KernelFormat::BzImage), VmmErrc::LoadKernel, "too short");
}

TEST(BzImage, CmdlineLongerThanKernelAllows) {
  TestRam ram(kRam);
  Bytes kernel = test::bzimage();
  put<uint32_t>(kernel, zp::kCmdlineSize, 10);
  expect_error(load(ram, kernel, {}, "console=ttyS0 quiet"), VmmErrc::BadConfig, "cmdline_size 10");
}

}  // namespace
}  // namespace ferry::vmm::boot
