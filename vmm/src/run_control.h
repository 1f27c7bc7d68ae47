// RunControl: the shared run/pause/stop state of all vCPU threads of one machine, and the
// handshake that lets pause() return only when every vCPU is parked outside KVM_RUN
// with its pending port/MMIO I/O completed (so saved registers are consistent).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace ferry::vmm {

enum class RunState { Running, Paused, Stopping };

class RunControl {
 public:
  RunControl(unsigned vcpus, bool start_paused)
      : vcpus_(vcpus), state_(start_paused ? RunState::Paused : RunState::Running) {}

  /// vCPU side: blocks while paused; returns false when the vCPU must exit.
  bool wait_until_runnable();
  /// vCPU side: true if the vCPU should leave KVM_RUN and park/stop now.
  bool should_leave() const { return state_.load(std::memory_order_acquire) != RunState::Running; }
  /// vCPU side: announce that this vCPU has exited its thread.
  void vcpu_exited();

  /// Controller side. Returns once all live vCPUs are parked (or have exited).
  /// `kick` is called after the state change to pull vCPUs out of KVM_RUN.
  template <class Kick>
  void pause(Kick&& kick) {
    {
      std::lock_guard lock(mutex_);
      if (state_ == RunState::Stopping) {
        return;
      }
      state_ = RunState::Paused;
    }
    kick();
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return parked_ + exited_ >= vcpus_ || state_ == RunState::Stopping; });
  }
  void resume();
  template <class Kick>
  void stop(Kick&& kick) {
    {
      std::lock_guard lock(mutex_);
      state_ = RunState::Stopping;
    }
    cv_.notify_all();
    kick();
  }
  RunState state() const { return state_.load(std::memory_order_acquire); }
  bool all_exited() const {
    std::lock_guard lock(mutex_);
    return exited_ >= vcpus_;
  }

  /// Throttle: percent of time vCPUs are held out of KVM_RUN (0..99).
  void set_throttle_percent(unsigned percent) { throttle_.store(percent > 99 ? 99 : percent); }
  unsigned throttle_percent() const { return throttle_.load(); }

 private:
  const unsigned vcpus_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::atomic<RunState> state_;
  unsigned parked_ = 0;
  unsigned exited_ = 0;
  std::atomic<unsigned> throttle_{0};
};

}  // namespace ferry::vmm
