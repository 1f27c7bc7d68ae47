// DirtyLog: KVM dirty-page logging over all RAM slots, with two backends:
//  - Bitmap (default): KVM_GET_DIRTY_LOG in the manual-protect mode
//    (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2): GET only reads the bitmap and CLEAR_DIRTY_LOG
//    re-protects exactly the pages harvested, so harvesting is cheap. Falls back to the
//    classic mode where the capability is missing.
//  - Ring (KVM_CAP_DIRTY_LOG_RING): per-vCPU rings of dirty GFNs, collected and re-armed
//    with KVM_RESET_DIRTY_RINGS; a vCPU whose ring fills drains it itself.
// Either way a harvest also takes the pages the VMM wrote (GuestMemory's bitmap).
#pragma once

#include <mutex>
#include <span>
#include <vector>

#include "ferry/kernel-interfaces/kvm.h"
#include "ferry/vmm/guest_memory.h"

namespace ferry::vmm {

enum class DirtyLogMode { Bitmap, Ring };

class DirtyLog {
 public:
  DirtyLog(kernel::VmFd& vm, GuestMemory& memory, DirtyLogMode mode, bool manual_protect)
      : vm_(vm), memory_(memory), mode_(mode), manual_protect_(manual_protect) {}

  /// Ring mode: takes vCPU `index`'s mapped ring of `entries` kvm_dirty_gfn records.
  void attach_ring(kernel::Mapping ring, uint32_t entries);

  /// Re-registers every slot with KVM_MEM_LOG_DIRTY_PAGES.
  VmmResult<void> start();
  /// ORs dirty pages (KVM log + VMM writes) into `bitmap`, one bit per page across all
  /// regions, and re-protects them.
  VmmResult<void> harvest(std::span<uint64_t> bitmap);
  VmmResult<void> stop();
  /// Ring mode: collects every ring into the pending set and re-arms them. Called by a
  /// vCPU thread on KVM_EXIT_DIRTY_RING_FULL, and by harvest(). Thread-safe.
  VmmResult<void> drain_rings();
  bool active() const { return active_; }
  DirtyLogMode mode() const { return mode_; }

 private:
  struct Ring {
    kernel::Mapping map;
    uint32_t entries = 0;
    uint32_t next = 0;  // index of the next entry to collect
  };
  VmmResult<void> set_logging(bool enabled);
  VmmResult<void> harvest_bitmaps(std::span<uint64_t> bitmap);
  VmmResult<void> drain_rings_locked();

  kernel::VmFd& vm_;
  GuestMemory& memory_;
  const DirtyLogMode mode_;
  const bool manual_protect_;
  bool active_ = false;
  std::mutex mutex_;
  std::vector<uint64_t> scratch_;
  std::vector<Ring> rings_;
  std::vector<uint64_t> ring_pending_;  // pages collected from rings, not yet harvested
};

}  // namespace ferry::vmm
