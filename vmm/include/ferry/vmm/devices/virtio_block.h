// VirtioBlock: a virtio 1.x block device (virtio spec v1.2 §5.2) on the virtio-mmio
// transport, backed by a raw image file. The vCPU thread only writes registers; a device
// worker thread, woken through an EventFd by QueueNotify, parses requests, does the I/O
// through io_uring and fills the used ring, so a vCPU never blocks on the disk. It also
// is the migration engine's MigratableDisk: a 64 KiB dirty-block map of guest writes.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "ferry/kernel-interfaces/event_fd.h"
#include "ferry/migration/vm_interface.h"
#include "ferry/vmm/bus.h"
#include "ferry/vmm/devices/block_backend.h"
#include "ferry/vmm/devices/block_dirty_map.h"
#include "ferry/vmm/devices/virtio_block_state.h"
#include "ferry/vmm/devices/virtio_mmio.h"
#include "ferry/vmm/devices/virtqueue.h"
#include "ferry/vmm/guest_memory.h"

namespace ferry::vmm {

inline constexpr uint32_t kVirtioBlockDeviceId = 2;
// Feature bits (§5.2.3).
inline constexpr uint64_t kVirtioBlkFSegMax = 1ull << 2;
inline constexpr uint64_t kVirtioBlkFRo = 1ull << 5;
inline constexpr uint64_t kVirtioBlkFFlush = 1ull << 9;
// Request types and status values (§5.2.6).
inline constexpr uint32_t kVirtioBlkTIn = 0;
inline constexpr uint32_t kVirtioBlkTOut = 1;
inline constexpr uint32_t kVirtioBlkTFlush = 4;
inline constexpr uint32_t kVirtioBlkTGetId = 8;
inline constexpr uint8_t kVirtioBlkSOk = 0;
inline constexpr uint8_t kVirtioBlkSIoErr = 1;
inline constexpr uint8_t kVirtioBlkSUnsupp = 2;
inline constexpr uint32_t kVirtioBlkIdBytes = 20;
/// Largest data transfer of one request; larger chains fail (Linux sends <= 4 MiB).
inline constexpr uint64_t kMaxBlockRequestBytes = 8ull << 20;
/// Size of the config space the device exposes (capacity, size_max, seg_max, geometry,
/// blk_size); fields of features not offered read as 0.
inline constexpr uint64_t kVirtioBlkConfigBytes = 24;

struct BlockConfig {
  std::string path;                   // raw image file
  bool read_only = false;             // also forced when the file is not writable
  std::string serial = "ferry-vblk";  // GET_ID answer, at most 20 bytes used
  uint16_t queue_size = 256;          // QueueNumMax: a power of two in 2..1024
};

/// Counters for the control socket and tests. Monotonic; never reset by the guest.
struct VirtioBlockStats {
  uint64_t popped = 0;    // chains taken off the avail ring (popped - requests = in flight)
  uint64_t requests = 0;  // chains completed (good or bad)
  uint64_t reads = 0;
  uint64_t writes = 0;
  uint64_t flushes = 0;
  uint64_t get_ids = 0;
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
  uint64_t io_errors = 0;     // requests answered VIRTIO_BLK_S_IOERR
  uint64_t unsupported = 0;   // requests answered VIRTIO_BLK_S_UNSUPP
  uint64_t bad_chains = 0;    // chains refused by the virtqueue (used length 0)
  uint64_t queue_errors = 0;  // ring-level faults that set NEEDS_RESET
  uint64_t ignored_mmio = 0;  // transport accesses ignored
};

class VirtioBlock final : public VirtioDevice, public migration::MigratableDisk {
 public:
  /// Opens the image and starts the worker thread. `mem` and `irq` must outlive it.
  static VmmResult<std::unique_ptr<VirtioBlock>> create(GuestMemory& mem, IrqLine& irq,
                                                        const BlockConfig& config);
  /// Destination side: a device carrying `state` over the image in `config` (same
  /// capacity required). It starts quiesced: call resume() when the guest resumes.
  static VmmResult<std::unique_ptr<VirtioBlock>> restore(GuestMemory& mem, IrqLine& irq,
                                                         const BlockConfig& config,
                                                         const VirtioBlockState& state);
  ~VirtioBlock() override;

  /// The register window to put on the MMIO bus (kVirtioMmioWindowSize bytes).
  MmioDevice& mmio() { return transport_; }
  VirtioMmioTransport& transport() { return transport_; }
  /// The EventFd the worker waits on: the VMM may register it as a KVM ioeventfd for
  /// base + 0x50 (QueueNotify) so notifies skip the exit to userspace.
  int notify_fd() const { return notify_.fd(); }

  /// Stops taking new requests and waits until every popped request has completed and
  /// its used-ring entry is written. Idempotent. For pause and state save.
  void quiesce();
  /// Takes requests again (and looks at the avail ring at once).
  void resume();
  bool quiesced() const;
  /// The device state; call while quiesced, or in-flight requests are not in it.
  VirtioBlockState save() const;
  /// Loads `state` into this device in place (destination side, guest paused): checks
  /// it against this image (capacity, read-only) and the guest RAM, drops the current
  /// queue state and leaves the device quiesced; resume() starts it. References to this
  /// object (bus, MigratableDisk) stay valid. On error the device stays quiesced, either
  /// unchanged (state refused up front) or reset (rings refused).
  VmmResult<void> load_state(const VirtioBlockState& state);

  VirtioBlockStats stats() const;
  void set_fault_injection(const BlockFaultInjection& faults);
  bool read_only() const { return backend_->read_only(); }
  uint64_t capacity_sectors() const { return backend_->size_bytes() / kSectorSize; }

  // VirtioDevice (called by the transport).
  uint32_t device_id() const override { return kVirtioBlockDeviceId; }
  uint64_t device_features() const override;
  uint32_t queue_count() const override { return 1; }
  uint16_t queue_max_size() const override { return queue_max_; }
  uint64_t config_size() const override { return kVirtioBlkConfigBytes; }
  void read_config(uint64_t offset, std::span<uint8_t> data) const override;
  bool activate(uint64_t features, std::span<const VirtqueueState> queues) override;
  void notify_queue(uint32_t index) override;
  void reset() override;

  // migration::MigratableDisk (called by the migration engine's thread).
  uint64_t size_bytes() const override { return backend_->size_bytes(); }
  uint32_t tracking_block_size() const override { return dirty_.block_size(); }
  migration::VmResult<void> start_dirty_tracking() override;
  migration::VmResult<void> harvest_dirty(migration::DirtyBitmap& bitmap) override;
  migration::VmResult<void> stop_dirty_tracking() override;
  migration::VmResult<void> read_at(uint64_t offset, std::span<uint8_t> out) override;
  migration::VmResult<void> write_at(uint64_t offset, std::span<const uint8_t> data) override;
  migration::VmResult<void> flush() override;

 private:
  struct Request;
  struct Counters;

  VirtioBlock(GuestMemory& mem, IrqLine& irq, std::unique_ptr<BlockBackend> backend,
              const BlockConfig& config, kernel::EventFd notify);
  void start_worker();
  void worker_loop();
  void drain_available();
  bool pop_batch(std::vector<Request>& batch);
  Request parse(uint16_t head, const DescriptorChain& chain);
  void execute(std::vector<Request>& batch);
  void answer_get_id(Request& r);
  std::optional<BlockOp> make_data_op(const Request& r);
  void finish_data_op(Request& r, const BlockOp& op);
  void complete(std::vector<Request>& batch);
  void wait_idle(std::unique_lock<std::mutex>& lock) const;

  GuestMemory& mem_;
  std::unique_ptr<BlockBackend> backend_;
  BlockDirtyMap dirty_;
  std::string serial_;
  uint16_t queue_max_;
  kernel::EventFd notify_;
  VirtioMmioTransport transport_;
  std::unique_ptr<Counters> counters_;

  // Queue state shared by the vCPU side (activate/reset) and the worker, under mu_.
  mutable std::mutex mu_;
  mutable std::condition_variable idle_cv_;
  std::optional<Virtqueue> queue_;
  bool paused_ = false;  // quiesce()
  int holds_ = 0;        // reset() in progress: no new batches
  bool busy_ = false;    // the worker owns popped, not yet completed requests
  bool broken_ = false;  // ring fault: NEEDS_RESET until the driver resets
  std::atomic<bool> stop_{false};
  std::thread worker_;
};

}  // namespace ferry::vmm
