// DirtyLog: KVM dirty-page logging over all RAM slots, in the manual-protect mode
// (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2): GET_DIRTY_LOG only reads the bitmap and
// CLEAR_DIRTY_LOG re-protects exactly the pages harvested, so harvesting is cheap and
// the classic "get also re-protects everything" stall is avoided. Falls back to the
// classic mode where the capability is missing.
#pragma once

#include <mutex>
#include <span>
#include <vector>

#include "ferry/kernel-interfaces/kvm.h"
#include "ferry/vmm/guest_memory.h"

namespace ferry::vmm {

class DirtyLog {
 public:
  DirtyLog(kernel::VmFd& vm, GuestMemory& memory, bool manual_protect)
      : vm_(vm), memory_(memory), manual_protect_(manual_protect) {}

  /// Re-registers every slot with KVM_MEM_LOG_DIRTY_PAGES.
  VmmResult<void> start();
  /// ORs dirty pages (KVM log + VMM writes) into `bitmap`, one bit per page across all
  /// regions, and re-protects them.
  VmmResult<void> harvest(std::span<uint64_t> bitmap);
  VmmResult<void> stop();
  bool active() const { return active_; }
  bool manual_protect() const { return manual_protect_; }

 private:
  VmmResult<void> set_logging(bool enabled);

  kernel::VmFd& vm_;
  GuestMemory& memory_;
  const bool manual_protect_;
  bool active_ = false;
  std::mutex mutex_;
  std::vector<uint64_t> scratch_;
};

}  // namespace ferry::vmm
