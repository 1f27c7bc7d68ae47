// Multiboot v1 kernels (the Multiboot Specification 0.6.96): a header with magic
// 0x1BADB002 in the first 8 KiB; either the a.out kludge (flag 16: addresses in the
// header) or an ELF image loaded by physical address. Entry in flat 32-bit protected
// mode, EAX = 0x2BADB002, EBX = multiboot info; only the BSP runs.
#include "elf_reader.h"
#include "ferry/vmm/boot/boot_structs.h"
#include "ferry/vmm/boot/layout.h"
#include "formats.h"

namespace ferry::vmm::boot::detail {

namespace {

constexpr uint64_t kSearchBytes = 8192;
constexpr uint32_t kFlagPageAlign = 1u << 0;
constexpr uint32_t kFlagMemoryInfo = 1u << 1;
constexpr uint32_t kFlagVideoMode = 1u << 2;
constexpr uint32_t kFlagAoutKludge = 1u << 16;
constexpr uint32_t kKnownRequired = kFlagPageAlign | kFlagMemoryInfo | kFlagVideoMode;

struct MultibootHeader {
  uint32_t magic, flags, checksum;
  uint32_t header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr;
};

struct Loaded {
  uint64_t start = 0, end = 0, entry = 0;
};

VmmResult<Loaded> load_aout(const LoadInput& in, const MultibootHeader& h, uint64_t hdr_off) {
  if (h.header_addr < h.load_addr || h.header_addr - h.load_addr > hdr_off) {
    return fail(
        kernel_error("multiboot: header_addr {:#x} / load_addr {:#x} put the image "
                     "start before the file start (header at file offset {:#x})",
                     h.header_addr, h.load_addr, hdr_off));
  }
  const uint64_t file_start = hdr_off - (h.header_addr - h.load_addr);
  const uint64_t available = in.kernel.size() - file_start;
  uint64_t image = available;
  if (h.load_end_addr != 0) {
    if (h.load_end_addr < h.load_addr || h.load_end_addr - h.load_addr > available) {
      return fail(
          kernel_error("multiboot: load_end_addr {:#x} is below load_addr {:#x} or "
                       "past the end of the file ({} bytes from offset {:#x})",
                       h.load_end_addr, h.load_addr, available, file_start));
    }
    image = h.load_end_addr - h.load_addr;
  }
  uint64_t end = h.load_addr + image;
  if (h.bss_end_addr != 0) {
    if (h.bss_end_addr < end) {
      return fail(kernel_error("multiboot: bss_end_addr {:#x} is below the image end {:#x}",
                               h.bss_end_addr, end));
    }
    end = h.bss_end_addr;
  }
  if (h.entry_addr < h.load_addr || h.entry_addr >= end) {
    return fail(kernel_error("multiboot: entry_addr {:#x} is outside the image [{:#x}, {:#x})",
                             h.entry_addr, h.load_addr, end));
  }
  auto loaded = load_segment(in.mem, h.load_addr, in.kernel.subspan(file_start, image),
                             end - h.load_addr, "multiboot a.out image");
  if (!loaded) {
    return fail(loaded.error());
  }
  return Loaded{h.load_addr, end, h.entry_addr};
}

VmmResult<Loaded> load_elf(const LoadInput& in) {
  auto image = parse_elf(in.kernel, "multiboot");
  if (!image) {
    return fail(kernel_error("multiboot: header without the a.out kludge (flag 16), and {}",
                             image.error().detail));
  }
  auto range = load_elf_segments(in.mem, in.kernel, *image, "multiboot ELF");
  if (!range) {
    return fail(range.error());
  }
  // e_entry is virtual; translate it through the segment that holds it (as GRUB does).
  uint64_t entry = image->entry;
  for (const ElfSegment& seg : image->segments) {
    if (seg.type == kPtLoad && entry >= seg.vaddr && entry - seg.vaddr < seg.memsz) {
      entry = entry - seg.vaddr + seg.paddr;
      break;
    }
  }
  if (entry < range->start || entry >= range->end || entry > UINT32_MAX) {
    return fail(
        kernel_error("multiboot: ELF entry {:#x} is outside the loaded image [{:#x}, "
                     "{:#x})",
                     image->entry, range->start, range->end));
  }
  return Loaded{range->start, range->end, entry};
}

}  // namespace

std::optional<uint64_t> find_multiboot_header(std::span<const uint8_t> kernel) {
  for (uint64_t off = 0; off + 12 <= kSearchBytes; off += 4) {
    auto magic = read_at<uint32_t>(kernel, off);
    if (!magic) {
      return std::nullopt;
    }
    if (*magic == kMultibootHeaderMagic) {
      return off;
    }
  }
  return std::nullopt;
}

VmmResult<void> load_multiboot(const LoadInput& in, BootPlan& plan) {
  auto off = find_multiboot_header(in.kernel);
  if (!off) {
    return fail(kernel_error("multiboot: no header (magic {:#x}) in the first {} bytes",
                             kMultibootHeaderMagic, kSearchBytes));
  }
  MultibootHeader h{};
  auto first = read_at<std::array<uint32_t, 3>>(in.kernel, *off);
  if (!first) {
    return fail(kernel_error("multiboot: header at {:#x} is truncated", *off));
  }
  h.magic = (*first)[0];
  h.flags = (*first)[1];
  h.checksum = (*first)[2];
  if (static_cast<uint32_t>(h.magic + h.flags + h.checksum) != 0) {
    return fail(kernel_error("multiboot: bad checksum {:#x} for flags {:#x} (header at {:#x})",
                             h.checksum, h.flags, *off));
  }
  if ((h.flags & 0xffff & ~kKnownRequired) != 0) {
    return fail(kernel_error("multiboot: header requires features {:#x} this loader lacks",
                             h.flags & 0xffff & ~kKnownRequired));
  }
  VmmResult<Loaded> loaded = fail(VmmError{});
  if ((h.flags & kFlagAoutKludge) != 0) {
    auto full = read_at<MultibootHeader>(in.kernel, *off);
    if (!full) {
      return fail(kernel_error("multiboot: a.out header at {:#x} is truncated", *off));
    }
    loaded = load_aout(in, *full, *off);
  } else {
    loaded = load_elf(in);
  }
  if (!loaded) {
    return fail(loaded.error());
  }
  plan.kernel_start = loaded->start;
  plan.kernel_end = loaded->end;
  plan.entry = loaded->entry;
  if (auto module = load_module_after(in, plan, loaded->end); !module) {
    return module;
  }
  auto info = write_multiboot_info(in.mem, plan);
  if (!info) {
    return fail(info.error());
  }
  plan.boot_info_addr = *info;
  plan.ap_start = ApStart::WaitForSipi;
  VcpuBootState bsp = entry_state(loaded->entry, stack_top(0), CpuMode::Protected32);
  bsp.regs.rax = kMultibootBootloaderMagic;
  bsp.regs.rbx = *info;
  plan.vcpus.push_back(bsp);
  plan.description =
      fmt::format("multiboot {} kernel [{:#x}, {:#x}) entry {:#x} (32-bit), info at {:#x}",
                  (h.flags & kFlagAoutKludge) != 0 ? "a.out-kludge" : "ELF", loaded->start,
                  loaded->end, loaded->entry, *info);
  return {};
}

}  // namespace ferry::vmm::boot::detail
