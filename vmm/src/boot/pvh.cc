// Linux (or any) PVH kernel: an ELF image whose XEN_ELFNOTE_PHYS32_ENTRY note gives a
// 32-bit entry point. Segments load at their physical addresses; the kernel gets an
// hvm_start_info (version 1, with the e820 memmap and the initrd as module 0) in EBX and
// starts in flat 32-bit protected mode without paging (Xen's docs/misc/pvh.pandoc).
#include <elf.h>

#include "elf_reader.h"
#include "ferry/vmm/boot/boot_structs.h"
#include "ferry/vmm/boot/layout.h"
#include "formats.h"

namespace ferry::vmm::boot::detail {

namespace {

constexpr uint32_t kXenElfnotePhys32Entry = 18;

/// The entry from the note: its descriptor is 4 or 8 bytes (Linux emits a pointer-sized
/// value), and it must be a 32-bit address.
VmmResult<std::optional<uint64_t>> pvh_entry(std::span<const uint8_t> file, const ElfImage& image) {
  std::optional<uint64_t> entry;
  std::optional<VmmError> bad;
  auto walked = for_each_note(file, image, "pvh", [&](const ElfNote& note) {
    if (note.name != "Xen" || note.type != kXenElfnotePhys32Entry || entry || bad) {
      return;
    }
    if (note.desc.size() == 4) {
      entry = *read_at<uint32_t>(note.desc, 0);
    } else if (note.desc.size() == 8) {
      entry = *read_at<uint64_t>(note.desc, 0);
    } else {
      bad = kernel_error("pvh: PHYS32_ENTRY note has a {}-byte descriptor (want 4 or 8)",
                         note.desc.size());
    }
  });
  if (!walked) {
    return fail(walked.error());
  }
  if (bad) {
    return fail(*bad);
  }
  return entry;
}

VmmResult<uint64_t> write_start_info(GuestMemory& mem, const BootPlan& plan) {
  std::vector<HvmMemmapEntry> memmap;
  for (const E820Entry& e : plan.e820) {
    memmap.push_back({e.addr, e.size, e.type, 0});
  }
  if (memmap.size() * sizeof(HvmMemmapEntry) > kBootMemmapBytes) {
    return fail(vmm_error(VmmErrc::BadConfig,
                          fmt::format("memory map of {} entries is too long", memmap.size())));
  }
  HvmStartInfo info{};
  info.magic = kHvmStartMagic;
  info.version = kHvmStartVersion;
  info.cmdline_paddr = kCmdlineAddr;
  info.memmap_paddr = kBootMemmapAddr;
  info.memmap_entries = static_cast<uint32_t>(memmap.size());
  bool ok = true;
  if (plan.initrd_size != 0) {
    info.nr_modules = 1;
    info.modlist_paddr = kBootModulesAddr;
    ok = mem.write_obj(kBootModulesAddr, HvmModlistEntry{plan.initrd_addr, plan.initrd_size, 0, 0});
  }
  ok = ok &&
       mem.write(kBootMemmapAddr, {reinterpret_cast<const uint8_t*>(memmap.data()),  // SAFETY:
                                   memmap.size() * sizeof(HvmMemmapEntry)}) &&       // POD view
       mem.write_obj(kBootInfoAddr, info);
  if (!ok) {
    return fail(vmm_error(VmmErrc::BadConfig, "guest RAM does not cover the boot info page"));
  }
  return kBootInfoAddr;
}

}  // namespace

bool has_pvh_note(std::span<const uint8_t> kernel) {
  auto image = parse_elf(kernel, "pvh");
  if (!image) {
    return false;
  }
  auto entry = pvh_entry(kernel, *image);
  return entry && entry->has_value();
}

VmmResult<void> load_pvh(const LoadInput& in, BootPlan& plan) {
  auto image = parse_elf(in.kernel, "pvh");
  if (!image) {
    return fail(image.error());
  }
  if (image->machine != EM_X86_64 && image->machine != EM_386) {
    return fail(kernel_error("pvh: ELF machine {} is not x86", image->machine));
  }
  auto entry = pvh_entry(in.kernel, *image);
  if (!entry) {
    return fail(entry.error());
  }
  if (!entry->has_value()) {
    return fail(kernel_error("pvh: ELF file has no XEN_ELFNOTE_PHYS32_ENTRY note (type {})",
                             kXenElfnotePhys32Entry));
  }
  const uint64_t rip = **entry;
  auto range = load_elf_segments(in.mem, in.kernel, *image, "pvh");
  if (!range) {
    return fail(range.error());
  }
  if (rip < range->start || rip >= range->end || rip > UINT32_MAX) {
    return fail(kernel_error("pvh: PHYS32 entry {:#x} is outside the loaded image [{:#x}, {:#x})",
                             rip, range->start, range->end));
  }
  plan.kernel_start = range->start;
  plan.kernel_end = range->end;
  plan.entry = rip;
  if (!in.initrd.empty()) {
    auto addr = place_high(in.mem, range->end, kMmioHoleStart, in.initrd.size());
    if (!addr) {
      return fail(vmm_error(
          VmmErrc::LoadInitrd,
          fmt::format("initrd of {} bytes does not fit in guest RAM between "
                      "the kernel end {:#x} and the top of low memory {:#x}",
                      in.initrd.size(), range->end, ram_end_from(in.mem, kKernelMinAddr))));
    }
    in.mem.write(*addr, in.initrd);
    plan.initrd_addr = *addr;
    plan.initrd_size = in.initrd.size();
  }
  auto info = write_start_info(in.mem, plan);
  if (!info) {
    return fail(info.error());
  }
  plan.boot_info_addr = *info;
  plan.ap_start = ApStart::WaitForSipi;
  VcpuBootState bsp = entry_state(rip, stack_top(0), CpuMode::Protected32);
  bsp.regs.rbx = *info;
  plan.vcpus.push_back(bsp);
  plan.description = fmt::format(
      "pvh {} kernel [{:#x}, {:#x}) entry {:#x} (32-bit), start info at {:#x}{}",
      image->is64 ? "ELF64" : "ELF32", range->start, range->end, rip, *info,
      plan.initrd_size
          ? fmt::format(", initrd {} bytes at {:#x}", plan.initrd_size, plan.initrd_addr)
          : std::string());
  return {};
}

}  // namespace ferry::vmm::boot::detail
