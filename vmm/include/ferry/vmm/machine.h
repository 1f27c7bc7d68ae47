// Machine: one guest — its KVM VM, RAM, vCPU threads, devices and control plane. A
// machine is either booted from a kernel (`ferry run --kernel`) or built empty to
// receive a migrated guest (`ferry run --incoming`), in which case its vCPUs stay
// paused until the migrated state is loaded and resume() is called.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "ferry/migration/vm_interface.h"
#include "ferry/vmm/devices/block_backend.h"
#include "ferry/vmm/vm_config.h"
#include "ferry/vmm/vmm_error.h"

namespace ferry::vmm {

class GuestMemory;

enum class MachineMode {
  Boot,      // load the kernel and start running
  Incoming,  // build devices and memory only; wait for migrated state
};

/// A snapshot for `status` requests and logs.
struct MachineStatus {
  std::string state;  // "running", "paused", "stopped"
  uint64_t memory_bytes = 0;
  uint32_t vcpus = 0;
  uint64_t vcpu_exits = 0;
  uint64_t emulation_fixups = 0;  // instructions completed by the VMM (int3, fwait)
  uint64_t serial_bytes = 0;
  uint64_t unclaimed_io = 0;
  unsigned throttle_percent = 0;
  bool dirty_logging = false;
  std::string dirty_log_mode;  // "bitmap" or "ring"
};

/// How a machine ended.
struct MachineExit {
  enum class Kind { GuestStatus, GuestError, Quit, MigratedAway };
  Kind kind = Kind::Quit;
  int status = 0;      // the exit-port byte for GuestStatus
  std::string reason;  // human-readable for GuestError
};

class Machine {
 public:
  /// Builds the machine. In Boot mode the kernel is loaded but vCPUs do not run until
  /// start(). Errors name what was wrong (config, /dev/kvm, memory, kernel, disk).
  static VmmResult<std::unique_ptr<Machine>> create(const VmConfig& config, MachineMode mode);
  virtual ~Machine() = default;

  /// Starts the vCPU threads (paused in Incoming mode).
  virtual VmmResult<void> start() = 0;
  /// Blocks until the guest exits, fails, is quit, or migrates away.
  virtual MachineExit wait() = 0;
  virtual VmmResult<void> pause() = 0;
  virtual VmmResult<void> resume() = 0;
  /// Ends the machine (vCPUs stop; wait() returns `exit`).
  virtual void stop(MachineExit exit) = 0;
  virtual MachineStatus status() const = 0;
  virtual const VmConfig& config() const = 0;
  virtual GuestMemory& memory() = 0;
  /// The view the migration engine drives (source or destination side).
  virtual migration::MigratableVm& migratable() = 0;
  /// Injects faults into guest requests of disk `index` (tests and demos; never on by
  /// default). An all-zero `faults` clears them. BadConfig for a disk that does not exist.
  virtual VmmResult<void> set_disk_faults(std::size_t index, const BlockFaultInjection& faults) = 0;
};

/// Maps an exit to the `ferry run` process status: the guest's exit-port byte, 124 for
/// a guest crash (triple fault, emulation failure), 0 for quit or a completed migration.
int exit_status_of(const MachineExit& exit);

}  // namespace ferry::vmm
