#include "cpu_setup.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <cstring>

namespace ferry::vmm {

namespace {
constexpr uint32_t kLeafFeatures = 1;
constexpr uint32_t kLeafPmu = 0xA;
constexpr uint32_t kLeafTopology = 0xB;
constexpr uint32_t kLeafTopologyV2 = 0x1F;
constexpr uint32_t kLeafExtendedFeatures = 7;

constexpr uint32_t kEcxCx16 = 1u << 13;
constexpr uint32_t kEcxXsave = 1u << 26;
constexpr uint32_t kEcxOsxsave = 1u << 27;
constexpr uint32_t kEcxAvx = 1u << 28;
constexpr uint32_t kEcxHypervisor = 1u << 31;
constexpr uint32_t kEcxPdcm = 1u << 15;  // perf capabilities MSR: PMU hidden below
constexpr uint32_t kEbxAvx2 = 1u << 5;
constexpr uint32_t kEbxAvx512F = 1u << 16;

constexpr uint32_t kMsrMiscEnable = 0x1a0;
constexpr uint64_t kMiscEnableFastStrings = 1;

constexpr uint32_t kApicLvtLint0 = 0x350;
constexpr uint32_t kApicLvtLint1 = 0x360;
constexpr uint32_t kDeliveryExtInt = 7;
constexpr uint32_t kDeliveryNmi = 4;
}  // namespace

bool host_is_kvm_pvm() {
  struct stat st {};
  return ::stat("/sys/module/kvm_pvm", &st) == 0;
}

kernel::CpuidEntries filter_cpuid(const kernel::CpuidEntries& supported,
                                  const CpuidPolicy& policy) {
  kernel::CpuidEntries out;
  for (kvm_cpuid_entry2 entry : supported) {
    switch (entry.function) {
      case kLeafFeatures:
        entry.ecx |= kEcxHypervisor;
        entry.ebx = (entry.ebx & 0x0000ffff) | ((policy.vcpus & 0xff) << 16);
        if (policy.pvm_workarounds) {
          entry.ecx &= ~(kEcxCx16 | kEcxXsave | kEcxOsxsave | kEcxAvx | kEcxPdcm);
        }
        break;
      case kLeafExtendedFeatures:
        if (policy.pvm_workarounds && entry.index == 0) {
          entry.ebx &= ~(kEbxAvx2 | kEbxAvx512F);
        }
        break;
      case kLeafPmu:
        // No virtual PMU: perf counters are not migrated by Ferry.
        entry.eax = entry.ebx = entry.ecx = entry.edx = 0;
        break;
      case 0xD:
        if (policy.pvm_workarounds) {
          continue;  // xsave is hidden, so its enumeration leaf goes too
        }
        break;
      default:
        break;
    }
    out.push_back(entry);
  }
  return out;
}

kernel::CpuidEntries cpuid_for_vcpu(const kernel::CpuidEntries& common, uint32_t vcpu_id) {
  kernel::CpuidEntries out = common;
  for (kvm_cpuid_entry2& entry : out) {
    if (entry.function == kLeafFeatures) {
      entry.ebx = (entry.ebx & 0x00ffffff) | (vcpu_id << 24);
    } else if (entry.function == kLeafTopology || entry.function == kLeafTopologyV2) {
      entry.edx = vcpu_id;  // x2APIC ID
    }
  }
  return out;
}

std::vector<uint8_t> encode_cpuid(const kernel::CpuidEntries& entries) {
  std::vector<uint8_t> out(entries.size() * sizeof(kvm_cpuid_entry2));
  if (!entries.empty()) {
    std::memcpy(out.data(), entries.data(), out.size());
  }
  return out;
}

VmmResult<kernel::CpuidEntries> decode_cpuid(std::span<const uint8_t> blob) {
  if (blob.empty() || blob.size() % sizeof(kvm_cpuid_entry2) != 0 ||
      blob.size() / sizeof(kvm_cpuid_entry2) > 4096) {
    return fail(vmm_error(VmmErrc::SetupCpuid, "CPUID table has a bad size"));
  }
  kernel::CpuidEntries entries(blob.size() / sizeof(kvm_cpuid_entry2));
  std::memcpy(entries.data(), blob.data(), blob.size());
  return entries;
}

VmmResult<void> setup_boot_msrs(kernel::VcpuFd& vcpu) {
  const kvm_msr_entry entries[] = {{kMsrMiscEnable, 0, kMiscEnableFastStrings}};
  auto rc = vcpu.set_msrs(entries);
  if (!rc || *rc != std::size(entries)) {
    return fail(vmm_error(VmmErrc::SetupMsrs, fmt::format("set boot MSRs of vCPU {}", vcpu.id()),
                          rc ? std::nullopt : std::optional(rc.error())));
  }
  return {};
}

VmmResult<void> setup_lapic_lint(kernel::VcpuFd& vcpu) {
  auto lapic = vcpu.get_lapic();
  if (!lapic) {
    return fail(vmm_error(VmmErrc::SetupIrqchip, "read LAPIC", lapic.error()));
  }
  auto set_lvt = [&](uint32_t offset, uint32_t mode) {
    uint32_t value;
    std::memcpy(&value, &lapic->regs[offset], 4);
    value = (value & ~0x700u) | (mode << 8);
    std::memcpy(&lapic->regs[offset], &value, 4);
  };
  set_lvt(kApicLvtLint0, kDeliveryExtInt);
  set_lvt(kApicLvtLint1, kDeliveryNmi);
  if (auto rc = vcpu.set_lapic(*lapic); !rc) {
    return fail(vmm_error(VmmErrc::SetupIrqchip, "write LAPIC", rc.error()));
  }
  return {};
}

}  // namespace ferry::vmm
