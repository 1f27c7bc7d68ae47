// KvmMachine: the Machine implementation over /dev/kvm. Member order is destruction
// order in reverse: vCPU threads stop and go first, then devices, then RAM and the VM.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "dirty_log.h"
#include "ferry/kernel-interfaces/kvm.h"
#include "ferry/vmm/devices/debug_exit.h"
#include "ferry/vmm/devices/serial.h"
#include "ferry/vmm/guest_memory.h"
#include "ferry/vmm/io_bus.h"
#include "ferry/vmm/machine.h"
#include "kvm_irq_line.h"
#include "run_control.h"
#include "vcpu.h"

namespace ferry::vmm {

class MigrationAdapter;
class BlockDevice;

class KvmMachine final : public Machine {
 public:
  KvmMachine(VmConfig config, MachineMode mode, kernel::KvmSystem kvm, kernel::VmFd vm);
  ~KvmMachine() override;

  VmmResult<void> build();

  VmmResult<void> start() override;
  MachineExit wait() override;
  VmmResult<void> pause() override;
  VmmResult<void> resume() override;
  void stop(MachineExit exit) override;
  MachineStatus status() const override;
  VmmResult<void> set_disk_faults(std::size_t index, const BlockFaultInjection& faults) override;
  const VmConfig& config() const override { return config_; }
  GuestMemory& memory() override { return *memory_; }
  migration::MigratableVm& migratable() override;

  // For MigrationAdapter and machine-state code.
  kernel::VmFd& vm() { return vm_; }
  const kernel::KvmSystem& kvm() const { return kvm_; }
  std::vector<std::unique_ptr<Vcpu>>& vcpus() { return vcpus_; }
  Serial& serial() { return *serial_; }
  std::vector<std::unique_ptr<BlockDevice>>& disks() { return disks_; }
  DirtyLog& dirty_log() { return *dirty_log_; }
  RunControl& control() { return *control_; }
  const kernel::CpuidEntries& cpuid() const { return cpuid_; }
  bool paused() const;
  void set_throttle_percent(unsigned percent);

 private:
  VmmResult<void> setup_vm();
  VmmResult<void> enable_dirty_ring();
  VmmResult<void> setup_memory();
  VmmResult<void> setup_vcpus();
  VmmResult<void> setup_devices();
  VmmResult<void> load_guest();
  void kick_all();
  void throttle_loop();
  void stdin_loop();

  VmConfig config_;
  const MachineMode mode_;
  kernel::KvmSystem kvm_;
  kernel::VmFd vm_;
  kernel::CpuidEntries cpuid_;
  std::unique_ptr<GuestMemory> memory_;
  std::unique_ptr<DirtyLog> dirty_log_;
  IoBus bus_;
  std::vector<std::unique_ptr<KvmIrqLine>> irq_lines_;
  std::unique_ptr<Serial> serial_;
  std::unique_ptr<DebugExit> debug_exit_;
  std::vector<std::unique_ptr<BlockDevice>> disks_;
  std::unique_ptr<RunControl> control_;
  std::unique_ptr<MigrationAdapter> adapter_;
  std::vector<std::unique_ptr<Vcpu>> vcpus_;

  mutable std::mutex exit_mutex_;
  std::condition_variable exit_cv_;
  std::optional<MachineExit> exit_;
  bool user_paused_ = false;
  bool dirty_manual_protect_ = false;
  std::thread throttle_thread_;
  std::thread stdin_thread_;
};

}  // namespace ferry::vmm
