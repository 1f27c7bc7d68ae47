// The narrow view of a virtual machine that the migration engine needs. migration/ never
// includes vmm/ headers: vmm/ implements these interfaces, and unit tests implement them
// with a fake VM (tests/fakes/) so the sender and receiver run without /dev/kvm.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ferry/kernel-interfaces/result.h"

namespace ferry::migration {

inline constexpr uint64_t kPageSize = 4096;

/// A failure reported by the VM side of the interface, already worded for a person.
struct VmPortError {
  std::string message;
};

template <class T>
using VmResult = Result<T, VmPortError>;

/// One contiguous range of guest RAM and where it lives in this process.
/// Pages are numbered across regions in order: page 0 is the first page of region 0.
struct RamRegion {
  uint64_t gpa = 0;
  uint64_t size = 0;        // multiple of kPageSize
  uint8_t* host = nullptr;  // host mapping of [gpa, gpa + size)
};

/// Dirty bitmap over a range of pages: bit i of word i/64 = page i.
using DirtyBitmap = std::vector<uint64_t>;

/// A block device whose contents migrate with the guest.
class MigratableDisk {
 public:
  virtual ~MigratableDisk() = default;
  virtual uint64_t size_bytes() const = 0;
  /// Granularity of dirty tracking, a power of two >= 4096 (e.g. 64 KiB).
  virtual uint32_t tracking_block_size() const = 0;
  /// Starts recording guest writes; blocks written from now on show up in harvest_dirty.
  virtual VmResult<void> start_dirty_tracking() = 0;
  /// ORs the blocks written since the last harvest into `bitmap` (sized for the disk)
  /// and clears the device's record of them.
  virtual VmResult<void> harvest_dirty(DirtyBitmap& bitmap) = 0;
  virtual VmResult<void> stop_dirty_tracking() = 0;
  virtual VmResult<void> read_at(uint64_t offset, std::span<uint8_t> out) = 0;
  /// Destination side: writes migrated contents into the new image.
  virtual VmResult<void> write_at(uint64_t offset, std::span<const uint8_t> data) = 0;
  virtual VmResult<void> flush() = 0;
};

/// What the destination must be able to host; sent in the hello.
struct VmDescription {
  uint64_t memory_bytes = 0;
  uint32_t vcpus = 0;
  std::vector<uint64_t> disk_sizes;  // bytes, one per disk in order
  /// Opaque VMM configuration (memory layout, cmdline, devices, CPUID) that the
  /// destination VMM uses to rebuild an identical machine before loading state.
  std::vector<uint8_t> config_blob;
};

class MigratableVm {
 public:
  virtual ~MigratableVm() = default;

  virtual VmDescription describe() const = 0;
  virtual std::vector<RamRegion> ram_regions() const = 0;
  virtual size_t disk_count() const = 0;
  virtual MigratableDisk& disk(size_t index) = 0;

  /// Enables dirty logging on every RAM slot; the caller treats all pages as dirty once.
  virtual VmResult<void> start_dirty_log() = 0;
  /// ORs into `bitmap` (one bit per page across all regions) every page written since
  /// the last call: the KVM dirty log and every page the VMM itself wrote. Re-protects
  /// the harvested pages so later writes are seen again.
  virtual VmResult<void> harvest_dirty(DirtyBitmap& bitmap) = 0;
  virtual VmResult<void> stop_dirty_log() = 0;

  /// Stops every vCPU outside KVM_RUN with in-flight device I/O drained. Idempotent.
  virtual VmResult<void> pause() = 0;
  /// Lets vCPUs run again (on the destination: starts them for the first time).
  virtual VmResult<void> resume() = 0;
  /// Holds vCPUs out of KVM_RUN for `percent` of each time slice (0 = no throttle).
  virtual void set_throttle_percent(unsigned percent) = 0;

  /// Serialises every vCPU, the in-kernel irqchip/PIT/clock and every device. Paused only.
  /// The blob is self-checking (ends with a checksum); migration treats it as opaque.
  virtual VmResult<std::vector<uint8_t>> save_machine_state() = 0;
  /// Destination side: loads a blob produced by save_machine_state. VM must be paused.
  virtual VmResult<void> load_machine_state(std::span<const uint8_t> blob) = 0;
};

/// Destination side: builds a VM (not yet running) that can receive `description`,
/// or says why it cannot (too little memory, too many vCPUs, disk not writable, ...).
using VmFactory =
    std::function<VmResult<std::unique_ptr<MigratableVm>>(const VmDescription& description)>;

}  // namespace ferry::migration
