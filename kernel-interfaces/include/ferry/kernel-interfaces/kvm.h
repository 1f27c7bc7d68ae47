// RAII wrappers over the KVM API (Documentation/virt/kvm/api.rst): the /dev/kvm system
// fd, a VM fd and a vCPU fd with its kvm_run mapping. One method per ioctl, named after
// it; request numbers come from <linux/kvm.h>. Errors carry the ioctl name.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "ferry/kernel-interfaces/linux_kvm.h"
#include "ferry/kernel-interfaces/mapping.h"
#include "ferry/kernel-interfaces/unique_fd.h"

namespace ferry::kernel {

/// CPUID entries in the layout KVM_GET_SUPPORTED_CPUID / KVM_SET_CPUID2 expect.
using CpuidEntries = std::vector<kvm_cpuid_entry2>;

class VmFd;
class VcpuFd;

/// The /dev/kvm system handle.
class KvmSystem {
 public:
  /// Opens `path` (normally /dev/kvm) and checks KVM_GET_API_VERSION == 12.
  static SysResult<KvmSystem> open(const char* path = "/dev/kvm");

  /// KVM_CHECK_EXTENSION on the system fd; 0 when absent.
  int check_extension(long cap) const;
  /// KVM_GET_VCPU_MMAP_SIZE.
  SysResult<size_t> get_vcpu_mmap_size() const;
  /// KVM_GET_SUPPORTED_CPUID.
  SysResult<CpuidEntries> get_supported_cpuid() const;
  /// KVM_GET_MSR_INDEX_LIST: the MSRs to save and restore for migration.
  SysResult<std::vector<uint32_t>> get_msr_index_list() const;
  /// KVM_CREATE_VM (type 0). Retries EINTR, which the ioctl can return under signals.
  SysResult<VmFd> create_vm() const;
  int fd() const { return fd_.get(); }

 private:
  explicit KvmSystem(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

class VmFd {
 public:
  VmFd(VmFd&&) noexcept = default;
  VmFd& operator=(VmFd&&) noexcept = default;

  int check_extension(long cap) const;
  /// KVM_ENABLE_CAP on the VM.
  SysResult<void> enable_cap(uint32_t cap, uint64_t arg0 = 0, uint64_t arg1 = 0);
  /// KVM_SET_USER_MEMORY_REGION.
  SysResult<void> set_user_memory_region(const kvm_userspace_memory_region& region);
  /// KVM_SET_TSS_ADDR (needed on Intel before creating vCPUs).
  SysResult<void> set_tss_addr(uint64_t addr);
  /// KVM_SET_IDENTITY_MAP_ADDR.
  SysResult<void> set_identity_map_addr(uint64_t addr);
  /// KVM_CREATE_IRQCHIP (PIC + IOAPIC + per-vCPU LAPIC in the kernel).
  SysResult<void> create_irqchip();
  /// KVM_CREATE_PIT2.
  SysResult<void> create_pit2(uint32_t flags);
  /// KVM_IRQ_LINE: set the level of an irqchip input pin.
  SysResult<void> irq_line(uint32_t irq, bool level);
  /// KVM_GET_IRQCHIP / KVM_SET_IRQCHIP (chip_id selects PIC master/slave/IOAPIC).
  SysResult<void> get_irqchip(kvm_irqchip& chip) const;
  SysResult<void> set_irqchip(const kvm_irqchip& chip);
  /// KVM_GET_PIT2 / KVM_SET_PIT2.
  SysResult<void> get_pit2(kvm_pit_state2& state) const;
  SysResult<void> set_pit2(const kvm_pit_state2& state);
  /// KVM_GET_CLOCK / KVM_SET_CLOCK (kvmclock base).
  SysResult<kvm_clock_data> get_clock() const;
  SysResult<void> set_clock(const kvm_clock_data& data);
  /// KVM_GET_DIRTY_LOG into `bitmap` (one bit per page of the slot).
  SysResult<void> get_dirty_log(uint32_t slot, std::span<uint64_t> bitmap);
  /// KVM_CLEAR_DIRTY_LOG (manual protect): re-protect pages [first, first+count) whose
  /// bits are set in `bitmap` (bit 0 = page `first`; first and count multiples of 64).
  SysResult<void> clear_dirty_log(uint32_t slot, uint64_t first_page, uint32_t num_pages,
                                  std::span<uint64_t> bitmap);
  /// KVM_RESET_DIRTY_RINGS: re-protects every page whose ring entry was marked RESET;
  /// returns how many entries were reset.
  SysResult<int> reset_dirty_rings();
  /// KVM_CREATE_VCPU; maps its kvm_run page of `mmap_size` bytes.
  SysResult<VcpuFd> create_vcpu(uint32_t id, size_t mmap_size);
  int fd() const { return fd_.get(); }

 private:
  friend class KvmSystem;
  explicit VmFd(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

class VcpuFd {
 public:
  VcpuFd(VcpuFd&&) noexcept = default;
  VcpuFd& operator=(VcpuFd&&) noexcept = default;

  /// KVM_RUN. EINTR (signal or immediate_exit) is returned as an error, not retried:
  /// the caller's loop decides what an interruption means.
  SysResult<void> run();
  kvm_run* run_state() const {
    // SAFETY: the mapping is at least sizeof(kvm_run) bytes and lives as long as this.
    return reinterpret_cast<kvm_run*>(run_map_.data());
  }
  uint32_t id() const { return id_; }

  SysResult<kvm_regs> get_regs() const;
  SysResult<void> set_regs(const kvm_regs& regs);
  SysResult<kvm_sregs> get_sregs() const;
  SysResult<void> set_sregs(const kvm_sregs& sregs);
  SysResult<void> set_cpuid2(const CpuidEntries& entries);
  /// KVM_GET_MSRS / KVM_SET_MSRS for the given indices; returns how many were processed.
  SysResult<std::vector<kvm_msr_entry>> get_msrs(std::span<const uint32_t> indices) const;
  SysResult<size_t> set_msrs(std::span<const kvm_msr_entry> entries);
  /// KVM_GET_XSAVE2 (size from KVM_CAP_XSAVE2) / KVM_SET_XSAVE.
  SysResult<std::vector<uint8_t>> get_xsave2(size_t size) const;
  SysResult<void> set_xsave(std::span<const uint8_t> area);
  SysResult<kvm_xcrs> get_xcrs() const;
  SysResult<void> set_xcrs(const kvm_xcrs& xcrs);
  SysResult<kvm_lapic_state> get_lapic() const;
  SysResult<void> set_lapic(const kvm_lapic_state& lapic);
  SysResult<kvm_vcpu_events> get_vcpu_events() const;
  SysResult<void> set_vcpu_events(const kvm_vcpu_events& events);
  SysResult<kvm_mp_state> get_mp_state() const;
  SysResult<void> set_mp_state(const kvm_mp_state& state);
  SysResult<kvm_debugregs> get_debugregs() const;
  SysResult<void> set_debugregs(const kvm_debugregs& regs);
  /// Maps this vCPU's dirty ring (KVM_CAP_DIRTY_LOG_RING) of `bytes` bytes.
  SysResult<Mapping> map_dirty_ring(size_t bytes) const;
  /// KVM_GET_TSC_KHZ.
  SysResult<uint32_t> get_tsc_khz() const;
  int fd() const { return fd_.get(); }

 private:
  friend class VmFd;
  VcpuFd(UniqueFd fd, Mapping run_map, uint32_t id)
      : fd_(std::move(fd)), run_map_(std::move(run_map)), id_(id) {}
  // Reverse destruction order matters: unmap kvm_run before closing the fd.
  UniqueFd fd_;
  Mapping run_map_;
  uint32_t id_ = 0;
};

}  // namespace ferry::kernel
