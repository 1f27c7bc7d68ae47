// The kernel loader: detects the format of a kernel file (Ferry64 flat image, multiboot
// v1, Linux PVH vmlinux, Linux bzImage), copies it into guest memory, writes the boot
// information its protocol wants, and returns a BootPlan: how each vCPU must start.
// Pure over GuestMemory + file bytes (no KVM calls), so every path is unit-tested.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/kernel-interfaces/linux_kvm.h"
#include "ferry/vmm/boot/cpu_setup.h"
#include "ferry/vmm/boot/e820.h"
#include "ferry/vmm/guest_memory.h"
#include "ferry/vmm/vmm_error.h"

namespace ferry::vmm::boot {

enum class KernelFormat {
  Auto = 0,   // detect (load_kernel never returns Auto in a plan)
  Ferry64,    // the project's flat test guest with a FERRY64 header
  Multiboot,  // multiboot v1: a.out kludge or ELF32
  Pvh,        // ELF vmlinux with XEN_ELFNOTE_PHYS32_ENTRY
  BzImage,    // Linux bzImage, 64-bit boot protocol
};

/// "ferry64", "multiboot", "pvh", "bzimage" ("auto" for Auto).
const char* format_name(KernelFormat format);
/// Parses a format_name() string (for --kernel-format); nullopt if unknown.
std::optional<KernelFormat> parse_format(std::string_view name);

/// How the application processors (vCPU 1..n-1) start.
enum class ApStart {
  AtEntry,      // every vCPU has a VcpuBootState and starts running at once (Ferry64)
  WaitForSipi,  // only the BSP runs; APs stay in KVM's reset state until INIT/SIPI
};

struct BootOptions {
  KernelFormat format = KernelFormat::Auto;
  uint32_t cpus = 1;  // vCPUs the VM will have (1..kMaxBootCpus)
};

/// The initial state of one vCPU: general registers as given, and special registers as
/// set_mode_sregs(sregs, plan.tables, mode) makes them.
struct VcpuBootState {
  kvm_regs regs{};
  CpuMode mode = CpuMode::Long64;
};

struct BootPlan {
  KernelFormat format = KernelFormat::Auto;
  std::vector<VcpuBootState> vcpus;  // [0] = BSP; all vCPUs if ap_start == AtEntry
  ApStart ap_start = ApStart::WaitForSipi;
  CpuTables tables;           // page tables (CR3), GDT and IDT the sregs point at
  uint64_t entry = 0;         // guest-physical entry point
  uint64_t kernel_start = 0;  // lowest and highest+1 address the kernel occupies
  uint64_t kernel_end = 0;    // (including bss / init_size)
  uint64_t initrd_addr = 0;   // 0 if no initrd
  uint64_t initrd_size = 0;
  uint64_t boot_info_addr = 0;  // multiboot info, hvm_start_info or zero page
  std::vector<E820Entry> e820;  // the map handed to the guest
  std::string description;      // one line for logs
};

/// Loads `kernel` (and `initrd`, possibly empty) into `mem` and prepares the boot.
/// Every size, address and offset from the files is validated; errors are
/// VmmErrc::LoadKernel (or LoadInitrd / BadConfig) and say what is wrong.
VmmResult<BootPlan> load_kernel(GuestMemory& mem, std::span<const uint8_t> kernel,
                                std::span<const uint8_t> initrd, std::string_view cmdline,
                                const BootOptions& options);

/// Detects the format without writing anything; LoadKernel error if none matches.
VmmResult<KernelFormat> detect_format(std::span<const uint8_t> kernel);

/// Fills `sregs` (from KVM_GET_SREGS) for vCPU `index` of `plan`. Precondition:
/// index < plan.vcpus.size().
void apply_sregs(const BootPlan& plan, size_t index, kvm_sregs& sregs);

}  // namespace ferry::vmm::boot
