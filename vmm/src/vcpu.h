// Vcpu: one guest CPU and the host thread that runs it. The run loop is a switch on the
// KVM exit reason with one handler per reason; port and MMIO exits go to the IoBus.
// Pausing, throttling and stopping pull the thread out of KVM_RUN with immediate_exit
// plus a signal (SIGUSR1, whose handler does nothing).
#pragma once

#include <pthread.h>

#include <atomic>
#include <functional>
#include <string>
#include <thread>

#include "ferry/kernel-interfaces/kvm.h"
#include "ferry/vmm/io_bus.h"
#include "run_control.h"

namespace ferry::vmm {

/// How a vCPU thread ended (the machine turns this into the process exit status).
struct VcpuExit {
  enum class Kind { Stopped, GuestError };
  Kind kind = Kind::Stopped;
  std::string reason;  // for GuestError: what happened, with registers/instruction bytes
};

class Vcpu {
 public:
  using ExitHandler = std::function<void(uint32_t vcpu_id, const VcpuExit&)>;

  /// Empties this machine's dirty rings when KVM reports this vCPU's ring full.
  using RingFullHandler = std::function<bool()>;

  Vcpu(kernel::VcpuFd fd, IoBus& bus, RunControl& control, ExitHandler on_exit,
       RingFullHandler on_ring_full = {})
      : fd_(std::move(fd)),
        bus_(bus),
        control_(control),
        on_exit_(std::move(on_exit)),
        on_ring_full_(std::move(on_ring_full)) {}
  Vcpu(const Vcpu&) = delete;
  Vcpu& operator=(const Vcpu&) = delete;
  ~Vcpu();

  /// Starts the thread (it parks at once if the machine is paused).
  void start();
  /// Pulls the thread out of KVM_RUN so it re-checks the run state. Thread-safe.
  void kick();
  void join();

  kernel::VcpuFd& fd() { return fd_; }
  const kernel::VcpuFd& fd() const { return fd_; }
  uint64_t exits() const { return exits_.load(std::memory_order_relaxed); }
  /// Instructions the VMM completed after KVM failed to emulate them (insn_fixup.h).
  uint64_t fixups() const { return fixups_.load(std::memory_order_relaxed); }

  /// Installs the no-op SIGUSR1 handler used by kick() (idempotent, process-wide).
  static void install_kick_signal();

 private:
  void thread_main();
  /// One KVM_RUN and its exit; false when the thread must end.
  bool run_once();
  void complete_pending_io();
  bool handle_io(kvm_run& run);
  bool handle_mmio(kvm_run& run);
  bool try_fixup(kvm_run& run);
  bool guest_error(std::string reason);
  std::string describe_registers() const;
  void throttle_sleep();

  kernel::VcpuFd fd_;
  IoBus& bus_;
  RunControl& control_;
  ExitHandler on_exit_;
  RingFullHandler on_ring_full_;
  std::thread thread_;
  std::atomic<pthread_t> native_{};
  std::atomic<bool> started_{false};
  std::atomic<uint64_t> exits_{0};
  std::atomic<uint64_t> fixups_{0};
  bool io_pending_ = false;
};

}  // namespace ferry::vmm
