// x86 CPU-mode setup for the boot paths: identity page tables and a GDT written into
// guest memory at the addresses of layout.h, and the kvm_sregs values for entering in
// 64-bit long mode or in flat 32-bit protected mode without paging (Intel SDM vol. 3,
// 9.8 "Initializing IA-32e mode"; multiboot and PVH entry contracts).
#pragma once

#include <cstdint>

#include "ferry/kernel-interfaces/linux_kvm.h"
#include "ferry/vmm/guest_memory.h"
#include "ferry/vmm/vmm_error.h"

namespace ferry::vmm::boot {

/// The mode a vCPU starts in.
enum class CpuMode {
  Long64,       // CR0.PE|PG, CR4.PAE, EFER.LME|LMA, CS.L = 1, identity page tables
  Protected32,  // CR0.PE only, flat 4 GiB segments, no paging
};

/// GDT descriptors (flat, base 0, limit 4 GiB, accessed bit set so the CPU never writes
/// the table back).
inline constexpr uint64_t kGdtCode32 = 0x00cf9b000000ffffull;
inline constexpr uint64_t kGdtCode64 = 0x00af9b000000ffffull;
inline constexpr uint64_t kGdtData = 0x00cf93000000ffffull;

// Control-register bits.
inline constexpr uint64_t kCr0Pe = 1ull << 0;
inline constexpr uint64_t kCr0Et = 1ull << 4;
inline constexpr uint64_t kCr0Ne = 1ull << 5;
inline constexpr uint64_t kCr0Pg = 1ull << 31;
inline constexpr uint64_t kCr4Pae = 1ull << 5;
inline constexpr uint64_t kEferLme = 1ull << 8;
inline constexpr uint64_t kEferLma = 1ull << 10;
// Page-table entry bits.
inline constexpr uint64_t kPtePresent = 1ull << 0;
inline constexpr uint64_t kPteWritable = 1ull << 1;
inline constexpr uint64_t kPteHuge = 1ull << 7;

/// Where write_cpu_tables put things: what CR3/GDTR/IDTR must point at.
struct CpuTables {
  uint64_t pml4 = 0;
  uint64_t gdt = 0;
  uint16_t gdt_limit = 0;
  uint64_t idt = 0;
  uint16_t idt_limit = 0;
  uint64_t identity_mapped = 0;  // bytes identity-mapped from 0 (a multiple of 1 GiB)
};

/// Bytes the identity map covers for this memory: 0-4 GiB always (RAM and the MMIO
/// hole), plus RAM above 4 GiB, rounded up to 1 GiB and capped at kMaxIdentityMapped.
uint64_t identity_map_size(const GuestMemory& mem);

/// Writes the GDT, the empty IDT and the identity page tables (2 MiB pages) into guest
/// memory. Fails only if guest RAM does not cover the low-memory layout.
VmmResult<CpuTables> write_cpu_tables(GuestMemory& mem);

/// Sets CR0/CR3/CR4/EFER, the segment registers, GDTR and IDTR for a 64-bit entry
/// (CS = kSelectorCode64, data segments = kSelectorData). Other fields are left as given,
/// so pass what KVM_GET_SREGS returned.
void set_long_mode_sregs(kvm_sregs& sregs, const CpuTables& tables);

/// Sets flat 32-bit protected mode without paging (CS = kSelectorCode32, data segments =
/// kSelectorData, TR a busy 32-bit TSS of limit 0x67 as PVH requires).
void set_protected32_sregs(kvm_sregs& sregs, const CpuTables& tables);

/// Dispatches on `mode`.
void set_mode_sregs(kvm_sregs& sregs, const CpuTables& tables, CpuMode mode);

}  // namespace ferry::vmm::boot
