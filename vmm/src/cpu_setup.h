// Guest CPU model: CPUID derived from KVM_GET_SUPPORTED_CPUID and filtered by the VMM,
// boot-time MSRs and LAPIC LINT pins. On a KVM-PVM host (software virtualization, see
// HOST-KVM.md) features whose instructions KVM cannot emulate in guest ring 0 are hidden.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "ferry/kernel-interfaces/kvm.h"
#include "ferry/vmm/vmm_error.h"

namespace ferry::vmm {

struct CpuidPolicy {
  uint32_t vcpus = 1;
  /// Hide cmpxchg16b, xsave/AVX and the PMU: instructions PVM's emulator cannot run.
  bool pvm_workarounds = false;
};

/// True when /dev/kvm is provided by kvm-pvm (module kvm_pvm loaded).
bool host_is_kvm_pvm();

/// Builds the CPUID table common to all vCPUs from KVM's supported set.
kernel::CpuidEntries filter_cpuid(const kernel::CpuidEntries& supported, const CpuidPolicy& policy);
/// Per-vCPU adjustments (APIC IDs in leaves 1, 0xB, 0x1F).
kernel::CpuidEntries cpuid_for_vcpu(const kernel::CpuidEntries& common, uint32_t vcpu_id);

/// Serialises a CPUID table for the migration config (raw kvm_cpuid_entry2 records).
std::vector<uint8_t> encode_cpuid(const kernel::CpuidEntries& entries);
VmmResult<kernel::CpuidEntries> decode_cpuid(std::span<const uint8_t> blob);

/// Sets MSRs a freshly created vCPU needs before its first instruction.
VmmResult<void> setup_boot_msrs(kernel::VcpuFd& vcpu);
/// Wires LAPIC LINT0 to ExtINT (legacy PIC) and LINT1 to NMI, as firmware would.
VmmResult<void> setup_lapic_lint(kernel::VcpuFd& vcpu);

}  // namespace ferry::vmm
