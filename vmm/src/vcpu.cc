#include "vcpu.h"

#include <fmt/format.h>
#include <signal.h>

#include <cstring>

#include "insn_fixup.h"

namespace ferry::vmm {

namespace {
constexpr int kKickSignal = SIGUSR1;
constexpr auto kThrottleSlice = std::chrono::milliseconds(10);

void ignore_kick(int) {}

std::string hex_bytes(const uint8_t* bytes, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += fmt::format("{}{:02x}", i ? " " : "", bytes[i]);
  }
  return out;
}
}  // namespace

void Vcpu::install_kick_signal() {
  struct sigaction action {};
  action.sa_handler = ignore_kick;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return EINTR
  sigaction(kKickSignal, &action, nullptr);
}

Vcpu::~Vcpu() { join(); }

void Vcpu::start() {
  thread_ = std::thread([this] {
    native_.store(pthread_self());
    started_.store(true, std::memory_order_release);
    thread_main();
  });
}

void Vcpu::kick() {
  // SAFETY: kvm_run is mapped for the vCPU's lifetime; immediate_exit is a plain byte the
  // kernel reads on entry, so a racing write at worst causes one extra early exit.
  fd_.run_state()->immediate_exit = 1;
  if (started_.load(std::memory_order_acquire)) {
    pthread_kill(native_.load(), kKickSignal);
  }
}

void Vcpu::join() {
  if (thread_.joinable()) {
    thread_.join();
  }
}

void Vcpu::thread_main() {
  // The kick signal must reach this thread even if the creator blocked it.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, kKickSignal);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  while (true) {
    if (control_.should_leave()) {
      complete_pending_io();
    }
    if (!control_.wait_until_runnable()) {
      break;
    }
    if (control_.throttle_percent() > 0) {
      throttle_sleep();
    }
    if (!run_once()) {
      break;
    }
  }
  control_.vcpu_exited();
}

void Vcpu::throttle_sleep() {
  const auto pct = control_.throttle_percent();
  std::this_thread::sleep_for(kThrottleSlice * pct / 100);
}

void Vcpu::complete_pending_io() {
  if (!io_pending_) {
    return;
  }
  // An `in` result is copied into guest RAX only on the next KVM_RUN; with
  // immediate_exit set KVM finishes the instruction and returns EINTR at once.
  fd_.run_state()->immediate_exit = 1;
  (void)fd_.run();
  io_pending_ = false;
}

bool Vcpu::run_once() {
  kvm_run& run = *fd_.run_state();
  run.immediate_exit = control_.should_leave() ? 1 : 0;
  auto rc = fd_.run();
  io_pending_ = false;
  if (!rc) {
    const int err = rc.error().errnum();
    if (err == EINTR || err == EAGAIN) {
      return true;  // kicked (pause/stop/throttle) or an AP still waiting for SIPI
    }
    return guest_error(rc.error().message());
  }
  exits_.fetch_add(1, std::memory_order_relaxed);
  switch (run.exit_reason) {
    case KVM_EXIT_IO:
      return handle_io(run);
    case KVM_EXIT_MMIO:
      return handle_mmio(run);
    case KVM_EXIT_INTR:
      return true;
    case KVM_EXIT_DIRTY_RING_FULL:
      if (on_ring_full_ && on_ring_full_()) {
        return true;
      }
      return guest_error("dirty ring full and could not be drained");
    case KVM_EXIT_HLT:
      return guest_error("guest halted with interrupts disabled (HLT exit)");
    case KVM_EXIT_SHUTDOWN:
      return guest_error("guest triple fault (KVM_EXIT_SHUTDOWN); " + describe_registers());
    case KVM_EXIT_FAIL_ENTRY:
      return guest_error(fmt::format("KVM_EXIT_FAIL_ENTRY, hardware reason {:#x}",
                                     run.fail_entry.hardware_entry_failure_reason));
    case KVM_EXIT_SYSTEM_EVENT:
      return guest_error(
          fmt::format("guest system event {} (shutdown/reset requested)", run.system_event.type));
    case KVM_EXIT_INTERNAL_ERROR: {
      if (try_fixup(run)) {
        return true;
      }
      const auto& ie = run.internal;
      std::string data;
      for (uint32_t i = 0; i < ie.ndata && i < 16; ++i) {
        data += fmt::format(" {:#x}", ie.data[i]);
      }
      std::string insn;
      if (ie.suberror == KVM_INTERNAL_ERROR_EMULATION && run.emulation_failure.ndata >= 3 &&
          (run.emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
        insn = ", instruction bytes " +
               hex_bytes(run.emulation_failure.insn_bytes,
                         std::min<size_t>(run.emulation_failure.insn_size, 15));
      }
      return guest_error(
          fmt::format("KVM_EXIT_INTERNAL_ERROR suberror {} ({}), data:{}{}; {}", ie.suberror,
                      ie.suberror == KVM_INTERNAL_ERROR_EMULATION ? "instruction emulation failed"
                                                                  : "internal error",
                      data, insn, describe_registers()));
    }
    default:
      return guest_error(fmt::format("unhandled KVM exit reason {}", run.exit_reason));
  }
}

bool Vcpu::try_fixup(kvm_run& run) {
  if (run.internal.suberror != KVM_INTERNAL_ERROR_EMULATION || run.emulation_failure.ndata < 3 ||
      !(run.emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
    return false;
  }
  const InsnFixup fix = fixup_for(std::span<const uint8_t>(
      run.emulation_failure.insn_bytes,
      std::min<size_t>(run.emulation_failure.insn_size, sizeof(run.emulation_failure.insn_bytes))));
  if (fix.kind == InsnFixup::Kind::None) {
    return false;
  }
  auto regs = fd_.get_regs();
  if (!regs) {
    return false;
  }
  regs->rip += fix.length;
  if (!fd_.set_regs(*regs)) {
    return false;
  }
  if (fix.kind == InsnFixup::Kind::InjectBreakpoint) {
    auto events = fd_.get_vcpu_events();
    if (!events) {
      return false;
    }
    events->exception.injected = 1;
    events->exception.nr = 3;  // #BP
    events->exception.has_error_code = 0;
    events->exception.error_code = 0;
    if (!fd_.set_vcpu_events(*events)) {
      return false;
    }
  }
  fixups_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool Vcpu::handle_io(kvm_run& run) {
  const auto& io = run.io;
  // SAFETY: data_offset/size/count come from the kernel and point inside the kvm_run
  // mapping; the product is bounded by the page the kernel reserved for it.
  uint8_t* data = reinterpret_cast<uint8_t*>(&run) + io.data_offset;
  for (uint32_t i = 0; i < io.count; ++i) {
    std::span<uint8_t> chunk(data + static_cast<size_t>(i) * io.size, io.size);
    if (io.direction == KVM_EXIT_IO_OUT) {
      bus_.pio_write(io.port, chunk);
    } else {
      bus_.pio_read(io.port, chunk);
    }
  }
  io_pending_ = io.direction == KVM_EXIT_IO_IN;
  return true;
}

bool Vcpu::handle_mmio(kvm_run& run) {
  auto& mmio = run.mmio;
  const size_t len = std::min<size_t>(mmio.len, sizeof(mmio.data));
  if (mmio.is_write) {
    bus_.mmio_write(mmio.phys_addr, {mmio.data, len});
  } else {
    bus_.mmio_read(mmio.phys_addr, {mmio.data, len});
    io_pending_ = true;
  }
  return true;
}

bool Vcpu::guest_error(std::string reason) {
  on_exit_(fd_.id(), VcpuExit{VcpuExit::Kind::GuestError, std::move(reason)});
  return false;
}

std::string Vcpu::describe_registers() const {
  auto regs = fd_.get_regs();
  auto sregs = fd_.get_sregs();
  if (!regs || !sregs) {
    return "registers unavailable";
  }
  return fmt::format(
      "rip={:#x} rsp={:#x} rax={:#x} rflags={:#x} cr0={:#x} cr3={:#x} cr4={:#x} "
      "efer={:#x} cs.sel={:#x}",
      regs->rip, regs->rsp, regs->rax, regs->rflags, sregs->cr0, sregs->cr3, sregs->cr4,
      sregs->efer, sregs->cs.selector);
}

}  // namespace ferry::vmm
