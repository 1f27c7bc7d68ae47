#include "boot_common.h"

#include <algorithm>
#include <vector>

#include "ferry/vmm/boot/boot_structs.h"
#include "ferry/vmm/boot/layout.h"

namespace ferry::vmm::boot::detail {

namespace {
constexpr uint64_t kPage = 0x1000;
constexpr uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }
}  // namespace

VmmResult<void> load_segment(GuestMemory& mem, uint64_t gpa, std::span<const uint8_t> bytes,
                             uint64_t mem_size, std::string_view what) {
  if (mem_size < bytes.size()) {
    return fail(kernel_error("{}: file size {:#x} exceeds memory size {:#x}", what, bytes.size(),
                             mem_size));
  }
  if (gpa < kKernelMinAddr) {
    return fail(
        kernel_error("{}: load address {:#x} is below {:#x}, where the VMM keeps its "
                     "boot structures",
                     what, gpa, kKernelMinAddr));
  }
  if (!mem.contains(gpa, mem_size)) {
    return fail(kernel_error("{}: [{:#x}, +{:#x}) is not inside guest RAM ({} MiB)", what, gpa,
                             mem_size, mem.size() >> 20));
  }
  auto dst = mem.writable_view(gpa, mem_size);
  std::memcpy(dst->data(), bytes.data(), bytes.size());
  std::memset(dst->data() + bytes.size(), 0, mem_size - bytes.size());
  return {};
}

std::optional<uint64_t> place_high(const GuestMemory& mem, uint64_t min_addr, uint64_t max_end,
                                   uint64_t size) {
  uint64_t end = std::min(max_end, ram_end_from(mem, kKernelMinAddr));
  if (size > end) {
    return std::nullopt;
  }
  const uint64_t addr = (end - size) & ~(kPage - 1);
  if (addr < align_up(min_addr, kPage) || !mem.contains(addr, size)) {
    return std::nullopt;
  }
  return addr;
}

std::optional<uint64_t> place_after(const GuestMemory& mem, uint64_t after, uint64_t size) {
  if (after > UINT64_MAX - kPage) {
    return std::nullopt;
  }
  const uint64_t addr = align_up(std::max(after, kKernelMinAddr), kPage);
  if (!mem.contains(addr, size)) {
    return std::nullopt;
  }
  return addr;
}

VmmResult<void> load_module_after(const LoadInput& in, BootPlan& plan, uint64_t kernel_end) {
  if (in.initrd.empty()) {
    return {};
  }
  auto addr = place_after(in.mem, kernel_end, in.initrd.size());
  if (!addr || *addr + in.initrd.size() > UINT32_MAX) {
    return fail(vmm_error(VmmErrc::LoadInitrd,
                          fmt::format("initrd of {} bytes does not fit in guest RAM below 4 GiB "
                                      "after the kernel (which ends at {:#x})",
                                      in.initrd.size(), kernel_end)));
  }
  in.mem.write(*addr, in.initrd);
  plan.initrd_addr = *addr;
  plan.initrd_size = in.initrd.size();
  return {};
}

VmmResult<uint64_t> write_multiboot_info(GuestMemory& mem, const BootPlan& plan) {
  MultibootInfo info{};
  info.flags =
      kMultibootInfoMemory | kMultibootInfoCmdline | kMultibootInfoMmap | kMultibootInfoLoaderName;
  std::vector<MultibootMmapEntry> mmap;
  for (const E820Entry& e : plan.e820) {
    if (e.type == kE820Ram && e.addr == 0) {
      info.mem_lower = static_cast<uint32_t>(std::min<uint64_t>(e.size, 640 << 10) >> 10);
    }
    if (e.type == kE820Ram && e.addr == kKernelMinAddr) {
      info.mem_upper = static_cast<uint32_t>(std::min<uint64_t>(e.size >> 10, UINT32_MAX));
    }
    mmap.push_back({20, e.addr, e.size, e.type});
  }
  if (mmap.size() * sizeof(MultibootMmapEntry) > kBootMemmapBytes) {
    return fail(vmm_error(VmmErrc::BadConfig,
                          fmt::format("memory map of {} entries is too long", mmap.size())));
  }
  info.cmdline = static_cast<uint32_t>(kCmdlineAddr);
  info.mmap_addr = static_cast<uint32_t>(kBootMemmapAddr);
  info.mmap_length = static_cast<uint32_t>(mmap.size() * sizeof(MultibootMmapEntry));
  info.boot_loader_name = static_cast<uint32_t>(kBootLoaderNameAddr);
  constexpr char kName[] = "Ferry";
  constexpr char kModuleName[] = "initrd";
  const uint64_t module_name_addr = kBootModulesAddr + sizeof(MultibootModule);
  if (plan.initrd_size != 0) {
    info.flags |= kMultibootInfoMods;
    info.mods_count = 1;
    info.mods_addr = static_cast<uint32_t>(kBootModulesAddr);
    const MultibootModule module{static_cast<uint32_t>(plan.initrd_addr),
                                 static_cast<uint32_t>(plan.initrd_addr + plan.initrd_size),
                                 static_cast<uint32_t>(module_name_addr), 0};
    mem.write_obj(kBootModulesAddr, module);
    mem.write_obj(module_name_addr, kModuleName);
  }
  const bool ok =
      mem.write(kBootMemmapAddr, {reinterpret_cast<const uint8_t*>(mmap.data()),  // SAFETY: POD
                                  mmap.size() * sizeof(MultibootMmapEntry)}) &&
      mem.write_obj(kBootLoaderNameAddr, kName) && mem.write_obj(kBootInfoAddr, info);
  if (!ok) {
    return fail(vmm_error(VmmErrc::BadConfig, "guest RAM does not cover the boot info page"));
  }
  return kBootInfoAddr;
}

VcpuBootState entry_state(uint64_t rip, uint64_t rsp, CpuMode mode) {
  VcpuBootState state;
  state.regs.rip = rip;
  state.regs.rsp = rsp;
  state.regs.rflags = 0x2;  // reserved bit 1; IF = 0: interrupts off at every entry
  state.mode = mode;
  return state;
}

}  // namespace ferry::vmm::boot::detail
