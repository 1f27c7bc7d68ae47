#include "run_control.h"

namespace ferry::vmm {

bool RunControl::wait_until_runnable() {
  std::unique_lock lock(mutex_);
  if (state_ == RunState::Running) {
    return true;
  }
  ++parked_;
  cv_.notify_all();
  cv_.wait(lock, [&] { return state_ != RunState::Paused; });
  --parked_;
  return state_ == RunState::Running;
}

void RunControl::vcpu_exited() {
  std::lock_guard lock(mutex_);
  ++exited_;
  cv_.notify_all();
}

void RunControl::resume() {
  {
    std::lock_guard lock(mutex_);
    if (state_ == RunState::Paused) {
      state_ = RunState::Running;
    }
  }
  cv_.notify_all();
}

}  // namespace ferry::vmm
