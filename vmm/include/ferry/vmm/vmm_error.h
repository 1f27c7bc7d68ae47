// VmmError: the error type of the vmm/ library. One VmmErrc per failing operation; the
// wrapped SysError (if any) says which syscall/ioctl failed and why.
#pragma once

#include <optional>
#include <string>

#include "ferry/kernel-interfaces/result.h"
#include "ferry/kernel-interfaces/sys_error.h"

namespace ferry::vmm {

enum class VmmErrc {
  Invalid = 0,
  OpenKvm,
  KvmApiVersion,
  MissingCapability,
  CreateVm,
  CreateVcpu,
  SetupCpuid,
  SetupMsrs,
  SetupIrqchip,
  SetupRegisters,
  AllocateMemory,
  SetMemoryRegion,
  BadConfig,
  LoadKernel,
  LoadInitrd,
  OpenDisk,
  DiskIo,
  DirtyLog,
  VcpuRun,
  GuestFault,
  SaveState,
  RestoreState,
  ControlSocket,
};

struct VmmError {
  VmmErrc errc = VmmErrc::Invalid;
  std::string detail;  // what, with the relevant values (slot, gpa, path)
  std::optional<kernel::SysError> cause;

  /// "create vCPU 1: KVM_CREATE_VCPU: Invalid argument (errno 22)".
  std::string message() const;
};

template <class T>
using VmmResult = Result<T, VmmError>;

/// Shorthand: an error with a detail and optional kernel cause.
inline VmmError vmm_error(VmmErrc errc, std::string detail,
                          std::optional<kernel::SysError> cause = std::nullopt) {
  return VmmError{errc, std::move(detail), cause};
}

}  // namespace ferry::vmm
