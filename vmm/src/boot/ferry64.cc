// The Ferry64 flat image: the project's test guest. A FERRY64 header in the first 8 KiB
// says where the image loads and where its 64-bit entry is; the VMM enters every vCPU
// there in long mode with a multiboot info block (docs/boot.md).
#include "ferry/vmm/boot/boot_structs.h"
#include "ferry/vmm/boot/layout.h"
#include "formats.h"

namespace ferry::vmm::boot::detail {

std::optional<uint64_t> find_ferry64_header(std::span<const uint8_t> kernel) {
  for (uint64_t off = 0; off < kFerry64SearchBytes; off += 8) {
    auto magic = read_at<uint64_t>(kernel, off);
    if (!magic) {
      return std::nullopt;
    }
    if (*magic == kFerry64Magic) {
      return off;
    }
  }
  return std::nullopt;
}

namespace {

VmmResult<Ferry64Header> validated_header(std::span<const uint8_t> kernel) {
  auto off = find_ferry64_header(kernel);
  if (!off) {
    return fail(
        kernel_error("ferry64: no FERRY64 header in the first {} bytes", kFerry64SearchBytes));
  }
  auto header = read_at<Ferry64Header>(kernel, *off);
  if (!header) {
    return fail(kernel_error("ferry64: header at {:#x} is truncated (file has {} bytes)", *off,
                             kernel.size()));
  }
  const Ferry64Header& h = *header;
  if (h.load_end_addr <= h.load_addr) {
    return fail(kernel_error("ferry64: load_end_addr {:#x} is not above load_addr {:#x}",
                             h.load_end_addr, h.load_addr));
  }
  if (h.load_end_addr - h.load_addr > kernel.size()) {
    return fail(
        kernel_error("ferry64: image of {:#x} bytes (load_end_addr - load_addr) is "
                     "longer than the file ({:#x} bytes)",
                     h.load_end_addr - h.load_addr, kernel.size()));
  }
  if (*off + sizeof(Ferry64Header) > h.load_end_addr - h.load_addr) {
    return fail(kernel_error("ferry64: header at {:#x} lies outside the loaded image", *off));
  }
  if (h.bss_end_addr != 0 && h.bss_end_addr < h.load_end_addr) {
    return fail(kernel_error("ferry64: bss_end_addr {:#x} is below load_end_addr {:#x}",
                             h.bss_end_addr, h.load_end_addr));
  }
  if (h.entry64 < h.load_addr || h.entry64 >= h.load_end_addr) {
    return fail(kernel_error("ferry64: entry64 {:#x} is outside the image [{:#x}, {:#x})",
                             h.entry64, h.load_addr, h.load_end_addr));
  }
  return h;
}

}  // namespace

VmmResult<void> load_ferry64(const LoadInput& in, BootPlan& plan) {
  auto header = validated_header(in.kernel);
  if (!header) {
    return fail(header.error());
  }
  const Ferry64Header& h = *header;
  const uint64_t image = h.load_end_addr - h.load_addr;
  const uint64_t end = h.bss_end_addr == 0 ? h.load_end_addr : h.bss_end_addr;
  auto loaded =
      load_segment(in.mem, h.load_addr, in.kernel.first(image), end - h.load_addr, "ferry64 image");
  if (!loaded) {
    return loaded;
  }
  plan.kernel_start = h.load_addr;
  plan.kernel_end = end;
  plan.entry = h.entry64;
  if (auto module = load_module_after(in, plan, end); !module) {
    return module;
  }
  auto info = write_multiboot_info(in.mem, plan);
  if (!info) {
    return fail(info.error());
  }
  plan.boot_info_addr = *info;
  plan.ap_start = ApStart::AtEntry;
  for (uint32_t cpu = 0; cpu < in.options.cpus; ++cpu) {
    VcpuBootState state = entry_state(h.entry64, stack_top(cpu), CpuMode::Long64);
    state.regs.rax = kMultibootBootloaderMagic;
    state.regs.rbx = *info;
    state.regs.rdi = cpu;              // vCPU index (0 = BSP)
    state.regs.rsi = in.options.cpus;  // number of vCPUs
    plan.vcpus.push_back(state);
  }
  plan.description = fmt::format(
      "ferry64 image [{:#x}, {:#x}) entry {:#x}, {} vCPU(s) in long mode, multiboot info at "
      "{:#x}",
      h.load_addr, end, h.entry64, in.options.cpus, *info);
  return {};
}

}  // namespace ferry::vmm::boot::detail
