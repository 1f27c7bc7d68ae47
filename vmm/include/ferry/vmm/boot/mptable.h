// Intel MultiProcessor Specification 1.4 tables: how a guest without ACPI (Linux booted
// through PVH or bzImage with rsdp 0) learns its CPUs, the IOAPIC and the ISA interrupt
// routing. Without them Linux sees one CPU and no IOAPIC ("APIC: ACPI MADT or MP tables
// are not detected"). Written at kMpTableAddr (EBDA, reserved in the e820 map).
#pragma once

#include <cstdint>

#include "ferry/vmm/guest_memory.h"
#include "ferry/vmm/vmm_error.h"

namespace ferry::vmm::boot {

inline constexpr uint64_t kLapicAddr = 0xfee00000;
inline constexpr uint64_t kIoapicAddr = 0xfec00000;
/// ISA IRQs 0..15 are routed 1:1 to IOAPIC pins 0..15 (KVM's default GSI routing).
inline constexpr uint32_t kMpIsaIrqs = 16;

/// Writes the floating pointer and configuration table for `cpus` processors (APIC IDs
/// 0..cpus-1, vCPU 0 the BSP), one ISA bus, the IOAPIC (ID = cpus) and its routing.
/// Returns the table's size in bytes.
VmmResult<uint64_t> write_mptable(GuestMemory& mem, uint32_t cpus);

}  // namespace ferry::vmm::boot
