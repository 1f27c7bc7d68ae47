// Linux bzImage through the 64-bit boot protocol (Documentation/arch/x86/boot.rst,
// "64-bit Boot Protocol"): the setup header is copied into a zeroed boot_params (zero
// page), the loader fills e820, command line and initrd, the protected-mode kernel goes
// to its preferred address, and the BSP enters at load address + 0x200 in long mode with
// RSI = zero page, CS = __BOOT_CS (0x10), data segments = __BOOT_DS (0x18).
#include <array>

#include "ferry/vmm/boot/boot_structs.h"
#include "ferry/vmm/boot/layout.h"
#include "formats.h"

namespace ferry::vmm::boot::detail {

namespace {

constexpr uint64_t kSetupSectorBytes = 512;
constexpr uint64_t kMaxSetupHeaderEnd = 0x290;  // sizeof(boot_params.hdr) ends below here

struct BzHeader {
  uint64_t header_end = 0;  // 0x202 + byte at 0x201
  uint64_t pm_offset = 0;   // file offset of the protected-mode kernel
  uint16_t version = 0;
  uint32_t initrd_addr_max = 0;
  uint32_t kernel_alignment = 0;
  bool relocatable = false;
  uint32_t cmdline_size = 0;
  uint64_t pref_address = 0;
  uint32_t init_size = 0;
};

template <class T>
T field(std::span<const uint8_t> file, uint64_t offset) {
  return *read_at<T>(file, offset);  // callers check the file covers the whole header
}

VmmResult<BzHeader> parse_header(std::span<const uint8_t> file) {
  if (file.size() < zp::kHeaderEndByte + 1) {
    return fail(
        kernel_error("bzImage: file of {} bytes is too short for a setup header", file.size()));
  }
  BzHeader h;
  h.header_end = 0x202 + uint64_t{file[zp::kHeaderEndByte]};
  if (h.header_end > file.size() || h.header_end < zp::kInitSize + 4 ||
      h.header_end > kMaxSetupHeaderEnd) {
    return fail(kernel_error("bzImage: setup header end {:#x} is implausible (file {} bytes)",
                             h.header_end, file.size()));
  }
  if (field<uint16_t>(file, zp::kBootFlag) != zp::kBootFlagValue) {
    return fail(kernel_error("bzImage: boot flag {:#x} is not 0xAA55",
                             field<uint16_t>(file, zp::kBootFlag)));
  }
  if (field<uint32_t>(file, zp::kHeaderMagic) != zp::kHeaderMagicValue) {
    return fail(kernel_error("bzImage: no \"HdrS\" setup header signature"));
  }
  h.version = field<uint16_t>(file, zp::kVersion);
  if (h.version < zp::kMinVersion) {
    return fail(kernel_error("bzImage: boot protocol {}.{:02} is older than 2.12", h.version >> 8,
                             h.version & 0xff));
  }
  if ((field<uint16_t>(file, zp::kXloadflags) & zp::kXlfKernel64) == 0) {
    return fail(kernel_error("bzImage: kernel has no 64-bit entry (XLF_KERNEL_64 clear)"));
  }
  if ((field<uint8_t>(file, zp::kLoadFlags) & zp::kLoadedHigh) == 0) {
    return fail(kernel_error("bzImage: zImage (not LOADED_HIGH) is not supported"));
  }
  uint64_t setup_sects = field<uint8_t>(file, zp::kSetupSects);
  h.pm_offset = ((setup_sects == 0 ? 4 : setup_sects) + 1) * kSetupSectorBytes;
  if (h.pm_offset >= file.size()) {
    return fail(
        kernel_error("bzImage: protected-mode code at {:#x} is past the end of the "
                     "file ({} bytes)",
                     h.pm_offset, file.size()));
  }
  h.initrd_addr_max = field<uint32_t>(file, zp::kInitrdAddrMax);
  h.kernel_alignment = field<uint32_t>(file, zp::kKernelAlignment);
  h.relocatable = field<uint8_t>(file, zp::kRelocatableKernel) != 0;
  h.cmdline_size = field<uint32_t>(file, zp::kCmdlineSize);
  h.pref_address = field<uint64_t>(file, zp::kPrefAddress);
  h.init_size = field<uint32_t>(file, zp::kInitSize);
  return h;
}

/// Where the protected-mode kernel goes: pref_address (the address it was linked for,
/// so a relocatable kernel need not move itself), else 1 MiB.
VmmResult<uint64_t> load_address(const BzHeader& h) {
  uint64_t addr = h.pref_address != 0 ? h.pref_address : kKernelMinAddr;
  if (h.relocatable && h.kernel_alignment != 0 &&
      (h.kernel_alignment & (h.kernel_alignment - 1)) == 0 && addr % h.kernel_alignment != 0) {
    return fail(
        kernel_error("bzImage: pref_address {:#x} is not aligned to kernel_alignment "
                     "{:#x}",
                     addr, h.kernel_alignment));
  }
  return addr;
}

VmmResult<void> write_zero_page(const LoadInput& in, const BootPlan& plan, const BzHeader& h) {
  std::array<uint8_t, 4096> zero_page{};
  // The setup header travels unchanged; then the loader's fields are set on top.
  std::copy(in.kernel.begin() + zp::kSetupHeader, in.kernel.begin() + h.header_end,
            zero_page.begin() + zp::kSetupHeader);
  auto put = [&](uint64_t off, auto value) {
    std::memcpy(zero_page.data() + off, &value, sizeof(value));
  };
  put(zp::kVidMode, uint16_t{0xffff});  // "normal" VGA mode
  put(zp::kTypeOfLoader, zp::kTypeOfLoaderUndefined);
  put(zp::kCode32Start, static_cast<uint32_t>(plan.kernel_start));
  put(zp::kCmdLinePtr, static_cast<uint32_t>(kCmdlineAddr));
  put(zp::kExtCmdLinePtr, uint32_t{0});
  put(zp::kRamdiskImage, static_cast<uint32_t>(plan.initrd_addr));
  put(zp::kRamdiskSize, static_cast<uint32_t>(plan.initrd_size));
  put(zp::kExtRamdiskImage, static_cast<uint32_t>(plan.initrd_addr >> 32));
  put(zp::kExtRamdiskSize, static_cast<uint32_t>(plan.initrd_size >> 32));
  if (plan.e820.size() > zp::kE820MaxEntries) {
    return fail(vmm_error(VmmErrc::BadConfig, fmt::format("e820 map of {} entries exceeds {}",
                                                          plan.e820.size(), zp::kE820MaxEntries)));
  }
  put(zp::kE820Entries, static_cast<uint8_t>(plan.e820.size()));
  for (size_t i = 0; i < plan.e820.size(); ++i) {
    const E820Entry& e = plan.e820[i];
    put(zp::kE820Table + i * sizeof(BootE820Entry), BootE820Entry{e.addr, e.size, e.type});
  }
  if (!in.mem.write_obj(kZeroPageAddr, zero_page)) {
    return fail(vmm_error(VmmErrc::BadConfig, "guest RAM does not cover the zero page"));
  }
  return {};
}

VmmResult<void> load_initrd(const LoadInput& in, BootPlan& plan, const BzHeader& h) {
  if (in.initrd.empty()) {
    return {};
  }
  // initrd_addr_max is the highest address the initrd may *occupy*.
  const uint64_t max_end = std::min<uint64_t>(uint64_t{h.initrd_addr_max} + 1, kMmioHoleStart);
  auto addr = place_high(in.mem, plan.kernel_end, max_end, in.initrd.size());
  if (!addr) {
    return fail(
        vmm_error(VmmErrc::LoadInitrd,
                  fmt::format("initrd of {} bytes does not fit between the kernel end {:#x} and "
                              "min(initrd_addr_max + 1 = {:#x}, top of low RAM {:#x})",
                              in.initrd.size(), plan.kernel_end, uint64_t{h.initrd_addr_max} + 1,
                              ram_end_from(in.mem, kKernelMinAddr))));
  }
  in.mem.write(*addr, in.initrd);
  plan.initrd_addr = *addr;
  plan.initrd_size = in.initrd.size();
  return {};
}

}  // namespace

bool looks_like_bzimage(std::span<const uint8_t> kernel) {
  return read_at<uint16_t>(kernel, zp::kBootFlag) == zp::kBootFlagValue &&
         read_at<uint32_t>(kernel, zp::kHeaderMagic) == zp::kHeaderMagicValue;
}

VmmResult<void> load_bzimage(const LoadInput& in, BootPlan& plan) {
  auto h = parse_header(in.kernel);
  if (!h) {
    return fail(h.error());
  }
  if (h->cmdline_size != 0 && in.cmdline.size() > h->cmdline_size) {
    return fail(
        vmm_error(VmmErrc::BadConfig, fmt::format("command line of {} bytes exceeds the kernel's "
                                                  "cmdline_size {}",
                                                  in.cmdline.size(), h->cmdline_size)));
  }
  auto addr = load_address(*h);
  if (!addr) {
    return fail(addr.error());
  }
  const std::span<const uint8_t> pm = in.kernel.subspan(h->pm_offset);
  // The kernel needs init_size bytes from its load address to decompress in place.
  const uint64_t footprint = std::max<uint64_t>(pm.size(), h->init_size);
  auto loaded = load_segment(in.mem, *addr, pm, footprint, "bzImage protected-mode kernel");
  if (!loaded) {
    return loaded;
  }
  plan.kernel_start = *addr;
  plan.kernel_end = *addr + footprint;
  plan.entry = *addr + zp::kEntry64Offset;
  if (auto initrd = load_initrd(in, plan, *h); !initrd) {
    return initrd;
  }
  if (auto zero_page = write_zero_page(in, plan, *h); !zero_page) {
    return zero_page;
  }
  plan.boot_info_addr = kZeroPageAddr;
  plan.ap_start = ApStart::WaitForSipi;
  VcpuBootState bsp = entry_state(plan.entry, stack_top(0), CpuMode::Long64);
  bsp.regs.rsi = kZeroPageAddr;
  plan.vcpus.push_back(bsp);
  plan.description = fmt::format(
      "bzImage protocol {}.{:02}: kernel at {:#x} (init_size {:#x}) entry {:#x} (64-bit), "
      "zero page at {:#x}{}",
      h->version >> 8, h->version & 0xff, *addr, h->init_size, plan.entry, kZeroPageAddr,
      plan.initrd_size
          ? fmt::format(", initrd {} bytes at {:#x}", plan.initrd_size, plan.initrd_addr)
          : std::string());
  return {};
}

}  // namespace ferry::vmm::boot::detail
