// The fixed guest-physical layout the boot loaders use below 1 MiB, in one place.
// Every structure the VMM writes before the first instruction (GDT, page tables, boot
// information, command line, stacks) lives here; kernels load at or above 1 MiB
// (kKernelMinAddr), so nothing a kernel file says can overlap these. docs/boot.md draws it.
#pragma once

#include <cstdint>

namespace ferry::vmm::boot {

// 0x00000-0x004ff: real-mode IVT and BIOS data area, left zero.

/// GDT (kGdtEntries descriptors); selectors below. Linux's 64-bit boot protocol wants
/// __BOOT_CS = 0x10 and __BOOT_DS = 0x18, so the 64-bit code and data sit there.
inline constexpr uint64_t kGdtAddr = 0x500;
inline constexpr uint32_t kGdtEntries = 4;
inline constexpr uint16_t kSelectorCode32 = 0x08;
inline constexpr uint16_t kSelectorCode64 = 0x10;
inline constexpr uint16_t kSelectorData = 0x18;
/// Empty IDT (limit 0): any exception before the guest loads its own IDT triple-faults,
/// which KVM reports as KVM_EXIT_SHUTDOWN instead of running garbage.
inline constexpr uint64_t kIdtAddr = 0x600;

/// One page of boot information: the multiboot info or hvm_start_info at its start,
/// then the module list, the memory map and the boot loader name.
inline constexpr uint64_t kBootInfoAddr = 0x1000;
inline constexpr uint64_t kBootModulesAddr = kBootInfoAddr + 0x100;
inline constexpr uint64_t kBootMemmapAddr = kBootInfoAddr + 0x200;
inline constexpr uint64_t kBootMemmapBytes = 0xc00;  // 128 entries of 24 bytes
inline constexpr uint64_t kBootLoaderNameAddr = kBootInfoAddr + 0xe00;

/// Linux zero page (struct boot_params) for the bzImage protocol.
inline constexpr uint64_t kZeroPageAddr = 0x7000;

/// Kernel command line, NUL-terminated; kCmdlineCapacity includes the NUL.
inline constexpr uint64_t kCmdlineAddr = 0x9000;
inline constexpr uint64_t kCmdlineCapacity = 0x1000;

/// Identity page tables (long mode): PML4, one PDPT, then up to kMaxPageDirectories page
/// directories of 2 MiB pages. Always 0-4 GiB (RAM and the MMIO hole), plus RAM above
/// 4 GiB up to kMaxIdentityMapped.
inline constexpr uint64_t kPml4Addr = 0x10000;
inline constexpr uint64_t kPdptAddr = 0x11000;
inline constexpr uint64_t kPdAddr = 0x12000;
inline constexpr uint32_t kMaxPageDirectories = 64;
inline constexpr uint64_t kMaxIdentityMapped = uint64_t{kMaxPageDirectories} << 30;

/// Boot stacks: vCPU i starts with RSP = kStackTop(i); 4 KiB each, 16-byte aligned.
inline constexpr uint64_t kStacksAddr = 0x70000;
inline constexpr uint64_t kStackSize = 0x1000;
inline constexpr uint32_t kMaxBootCpus = 32;
constexpr uint64_t stack_top(uint32_t vcpu) {
  return kStacksAddr + (uint64_t{vcpu} + 1) * kStackSize;
}

/// Top of conventional memory (start of the EBDA); [kEbdaStart, 1 MiB) is reported
/// reserved in every memory map.
inline constexpr uint64_t kEbdaStart = 0x9fc00;
/// Intel MP table (floating pointer, then the configuration table) in the first KiB of
/// the EBDA, where Linux's smp_scan_config looks ("last KiB of base memory").
inline constexpr uint64_t kMpTableAddr = kEbdaStart;
inline constexpr uint64_t kMpTableMaxBytes = 0x400;
/// Lowest address any kernel segment, module or initrd may occupy.
inline constexpr uint64_t kKernelMinAddr = 0x100000;

static_assert(kPdAddr + uint64_t{kMaxPageDirectories} * 0x1000 <= kStacksAddr);
static_assert(kStacksAddr + uint64_t{kMaxBootCpus} * kStackSize <= kEbdaStart);
static_assert(kCmdlineAddr + kCmdlineCapacity <= kPml4Addr);
static_assert(kBootLoaderNameAddr < kBootInfoAddr + 0x1000);

}  // namespace ferry::vmm::boot
