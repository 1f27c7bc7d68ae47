#include "ferry/vmm/boot/loader.h"

#include "ferry/vmm/boot/layout.h"
#include "ferry/vmm/boot/mptable.h"
#include "formats.h"

namespace ferry::vmm::boot {

namespace {

using detail::LoadInput;

constexpr std::pair<KernelFormat, const char*> kNames[] = {
    {KernelFormat::Auto, "auto"},           {KernelFormat::Ferry64, "ferry64"},
    {KernelFormat::Multiboot, "multiboot"}, {KernelFormat::Pvh, "pvh"},
    {KernelFormat::BzImage, "bzimage"},
};

VmmResult<void> write_cmdline(GuestMemory& mem, std::string_view cmdline) {
  if (cmdline.size() >= kCmdlineCapacity) {
    return fail(vmm_error(VmmErrc::BadConfig,
                          fmt::format("command line of {} bytes is too long (at most {})",
                                      cmdline.size(), kCmdlineCapacity - 1)));
  }
  if (cmdline.find('\0') != std::string_view::npos) {
    return fail(vmm_error(VmmErrc::BadConfig, "command line contains a NUL byte"));
  }
  auto dst = mem.writable_view(kCmdlineAddr, kCmdlineCapacity);
  if (!dst) {
    return fail(vmm_error(VmmErrc::BadConfig, "guest RAM does not cover the command line"));
  }
  std::fill(dst->begin(), dst->end(), uint8_t{0});
  std::copy(cmdline.begin(), cmdline.end(), dst->begin());
  return {};
}

VmmResult<void> check_memory(const GuestMemory& mem) {
  // The boot structures live in [0, 1 MiB) and every kernel at or above 1 MiB.
  if (!mem.contains(0, kKernelMinAddr)) {
    return fail(vmm_error(VmmErrc::BadConfig,
                          "guest RAM must start at 0 and cover the first MiB for booting"));
  }
  return {};
}

}  // namespace

const char* format_name(KernelFormat format) {
  for (const auto& [value, name] : kNames) {
    if (value == format) {
      return name;
    }
  }
  return "invalid";
}

std::optional<KernelFormat> parse_format(std::string_view name) {
  for (const auto& [value, known] : kNames) {
    if (name == known) {
      return value;
    }
  }
  return std::nullopt;
}

VmmResult<KernelFormat> detect_format(std::span<const uint8_t> kernel) {
  if (kernel.empty()) {
    return fail(vmm_error(VmmErrc::LoadKernel, "kernel file is empty"));
  }
  if (detail::looks_like_elf(kernel)) {
    // An ELF vmlinux carries the PVH note; an ELF multiboot kernel its header.
    if (detail::has_pvh_note(kernel)) {
      return KernelFormat::Pvh;
    }
    if (detail::find_multiboot_header(kernel)) {
      return KernelFormat::Multiboot;
    }
    return fail(vmm_error(VmmErrc::LoadKernel,
                          "ELF kernel has neither a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY) "
                          "nor a multiboot header"));
  }
  if (detail::find_ferry64_header(kernel)) {
    return KernelFormat::Ferry64;
  }
  if (detail::looks_like_bzimage(kernel)) {
    return KernelFormat::BzImage;
  }
  if (detail::find_multiboot_header(kernel)) {
    return KernelFormat::Multiboot;
  }
  return fail(vmm_error(VmmErrc::LoadKernel,
                        fmt::format("unrecognised kernel format ({} bytes): no FERRY64 header, "
                                    "no bzImage setup header, no multiboot header, not ELF",
                                    kernel.size())));
}

VmmResult<BootPlan> load_kernel(GuestMemory& mem, std::span<const uint8_t> kernel,
                                std::span<const uint8_t> initrd, std::string_view cmdline,
                                const BootOptions& options) {
  if (options.cpus == 0 || options.cpus > kMaxBootCpus) {
    return fail(vmm_error(VmmErrc::BadConfig, fmt::format("{} vCPUs: the boot layout supports "
                                                          "1..{}",
                                                          options.cpus, kMaxBootCpus)));
  }
  if (auto ok = check_memory(mem); !ok) {
    return fail(ok.error());
  }
  KernelFormat format = options.format;
  if (format == KernelFormat::Auto) {
    auto detected = detect_format(kernel);
    if (!detected) {
      return fail(detected.error());
    }
    format = *detected;
  }
  BootPlan plan;
  plan.format = format;
  auto tables = write_cpu_tables(mem);
  if (!tables) {
    return fail(tables.error());
  }
  plan.tables = *tables;
  plan.e820 = build_e820(mem);
  if (auto mp = write_mptable(mem, options.cpus); !mp) {
    return fail(mp.error());
  }
  if (auto ok = write_cmdline(mem, cmdline); !ok) {
    return fail(ok.error());
  }
  const LoadInput in{mem, kernel, initrd, cmdline, options};
  VmmResult<void> loaded;
  switch (format) {
    case KernelFormat::Ferry64:
      loaded = detail::load_ferry64(in, plan);
      break;
    case KernelFormat::Multiboot:
      loaded = detail::load_multiboot(in, plan);
      break;
    case KernelFormat::Pvh:
      loaded = detail::load_pvh(in, plan);
      break;
    case KernelFormat::BzImage:
      loaded = detail::load_bzimage(in, plan);
      break;
    case KernelFormat::Auto:
      loaded = fail(vmm_error(VmmErrc::BadConfig, "kernel format unresolved"));
      break;
  }
  if (!loaded) {
    return fail(loaded.error());
  }
  return plan;
}

void apply_sregs(const BootPlan& plan, size_t index, kvm_sregs& sregs) {
  set_mode_sregs(sregs, plan.tables, plan.vcpus.at(index).mode);
}

}  // namespace ferry::vmm::boot

namespace ferry::vmm::boot::detail {

bool looks_like_elf(std::span<const uint8_t> kernel) {
  return kernel.size() >= 4 && kernel[0] == 0x7f && kernel[1] == 'E' && kernel[2] == 'L' &&
         kernel[3] == 'F';
}

}  // namespace ferry::vmm::boot::detail
