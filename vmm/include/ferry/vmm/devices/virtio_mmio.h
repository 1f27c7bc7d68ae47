// VirtioMmioTransport: the virtio-mmio version 2 register block (virtio spec v1.2 §4.2.2)
// in front of one VirtioDevice. It checks the driver's side of the protocol: feature
// negotiation order, queue configuration only while the queue is not ready, queue sizes,
// notify only after DRIVER_OK. Out-of-range offsets, non-4-byte register accesses and
// out-of-order writes are ignored and counted. Interrupts go out on a level IrqLine.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "ferry/vmm/bus.h"
#include "ferry/vmm/devices/virtqueue.h"
#include "ferry/vmm/vmm_error.h"

namespace ferry::vmm {

inline constexpr uint32_t kVirtioMmioMagic = 0x74726976;  // "virt"
inline constexpr uint32_t kVirtioMmioVersion = 2;
inline constexpr uint32_t kVirtioMmioVendorId = 0x59525246;  // "FRRY"
inline constexpr uint64_t kVirtioMmioWindowSize = 0x1000;
inline constexpr uint64_t kVirtioMmioConfigOffset = 0x100;

// Register offsets (§4.2.2).
namespace virtio_mmio_reg {
inline constexpr uint64_t kMagicValue = 0x000;
inline constexpr uint64_t kVersion = 0x004;
inline constexpr uint64_t kDeviceId = 0x008;
inline constexpr uint64_t kVendorId = 0x00c;
inline constexpr uint64_t kDeviceFeatures = 0x010;
inline constexpr uint64_t kDeviceFeaturesSel = 0x014;
inline constexpr uint64_t kDriverFeatures = 0x020;
inline constexpr uint64_t kDriverFeaturesSel = 0x024;
inline constexpr uint64_t kQueueSel = 0x030;
inline constexpr uint64_t kQueueNumMax = 0x034;
inline constexpr uint64_t kQueueNum = 0x038;
inline constexpr uint64_t kQueueReady = 0x044;
inline constexpr uint64_t kQueueNotify = 0x050;
inline constexpr uint64_t kInterruptStatus = 0x060;
inline constexpr uint64_t kInterruptAck = 0x064;
inline constexpr uint64_t kStatus = 0x070;
inline constexpr uint64_t kQueueDescLow = 0x080;
inline constexpr uint64_t kQueueDescHigh = 0x084;
inline constexpr uint64_t kQueueDriverLow = 0x090;
inline constexpr uint64_t kQueueDriverHigh = 0x094;
inline constexpr uint64_t kQueueDeviceLow = 0x0a0;
inline constexpr uint64_t kQueueDeviceHigh = 0x0a4;
inline constexpr uint64_t kShmSel = 0x0ac;
inline constexpr uint64_t kShmLenLow = 0x0b0;
inline constexpr uint64_t kShmLenHigh = 0x0b4;
inline constexpr uint64_t kShmBaseLow = 0x0b8;
inline constexpr uint64_t kShmBaseHigh = 0x0bc;
inline constexpr uint64_t kConfigGeneration = 0x0fc;
}  // namespace virtio_mmio_reg

// Device status bits (§2.1).
inline constexpr uint32_t kVirtioStatusAcknowledge = 0x01;
inline constexpr uint32_t kVirtioStatusDriver = 0x02;
inline constexpr uint32_t kVirtioStatusDriverOk = 0x04;
inline constexpr uint32_t kVirtioStatusFeaturesOk = 0x08;
inline constexpr uint32_t kVirtioStatusNeedsReset = 0x40;
inline constexpr uint32_t kVirtioStatusFailed = 0x80;
// InterruptStatus bits.
inline constexpr uint32_t kVirtioInterruptUsedBuffer = 0x1;
inline constexpr uint32_t kVirtioInterruptConfigChange = 0x2;
/// VIRTIO_F_VERSION_1: required, this transport speaks only virtio 1.x.
inline constexpr uint64_t kVirtioFVersion1 = 1ull << 32;

/// The device-specific half of a virtio device, driven by the transport. Calls come from
/// vCPU threads with the transport's register lock held (never concurrently).
class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;
  virtual uint32_t device_id() const = 0;
  /// Feature bits offered to the driver (must include kVirtioFVersion1).
  virtual uint64_t device_features() const = 0;
  virtual uint32_t queue_count() const = 0;
  virtual uint16_t queue_max_size() const = 0;
  virtual uint64_t config_size() const = 0;
  /// Reads device config bytes [offset, offset + data.size()), already bounds-checked.
  virtual void read_config(uint64_t offset, std::span<uint8_t> data) const = 0;
  /// DRIVER_OK: starts the device with the negotiated features and the queues (one entry
  /// per queue, ready or not). False if the queues are unusable: the transport then sets
  /// NEEDS_RESET.
  virtual bool activate(uint64_t features, std::span<const VirtqueueState> queues) = 0;
  /// The driver wrote QueueNotify for a ready queue of an active device. Must not block.
  virtual void notify_queue(uint32_t index) = 0;
  /// Device reset: waits for in-flight requests, then forgets the queues.
  virtual void reset() = 0;
};

/// The transport registers, as migrated (ring progress is filled in by the device).
struct VirtioMmioState {
  uint32_t status = 0;  // includes kVirtioStatusNeedsReset when set
  uint64_t driver_features = 0;
  uint32_t device_features_sel = 0;
  uint32_t driver_features_sel = 0;
  uint32_t queue_sel = 0;
  uint32_t interrupt_status = 0;
  uint32_t config_generation = 0;
  std::vector<VirtqueueState> queues;
};

class VirtioMmioTransport final : public MmioDevice {
 public:
  /// `device` and `irq` must outlive the transport.
  VirtioMmioTransport(VirtioDevice& device, IrqLine& irq);

  void mmio_read(uint64_t offset, std::span<uint8_t> data) override;
  void mmio_write(uint64_t offset, std::span<const uint8_t> data) override;

  /// Device side (any thread): the device put buffers on a used ring.
  void signal_used_buffer();
  /// Device side (any thread): the driver broke a queue; sets NEEDS_RESET and raises a
  /// configuration-change interrupt (§2.1.2).
  void signal_needs_reset();

  /// Current registers (ring progress fields are zero).
  VirtioMmioState save() const;
  /// Loads registers into a freshly constructed or reset transport, checking them
  /// against the device (features, queue count and sizes); activates the device when
  /// the state has DRIVER_OK. The interrupt line is re-asserted if status is non-zero.
  VmmResult<void> restore(const VirtioMmioState& state);

  uint32_t status() const;
  uint32_t interrupt_status() const;
  /// Guest accesses ignored so far: bad offsets or sizes, out-of-order or invalid writes.
  uint64_t ignored_accesses() const { return ignored_.load(std::memory_order_relaxed); }

 private:
  struct QueueRegs {
    uint16_t size = 0;
    bool ready = false;
    uint64_t desc = 0;
    uint64_t driver = 0;
    uint64_t device = 0;
  };

  uint32_t read_register(uint64_t offset);
  void write_register(uint64_t offset, uint32_t value);
  void write_queue_register(uint64_t offset, uint32_t value);
  void write_status(uint32_t value);
  bool features_acceptable() const;
  void reset_locked();
  void raise_interrupt(uint32_t bits);
  void ignore() { ignored_.fetch_add(1, std::memory_order_relaxed); }
  std::vector<VirtqueueState> queue_states() const;

  VirtioDevice& device_;
  IrqLine& irq_;

  // Register state, touched by vCPU threads only, under mu_.
  mutable std::mutex mu_;
  uint32_t status_ = 0;  // without NEEDS_RESET, which lives in needs_reset_
  uint64_t driver_features_ = 0;
  uint32_t device_features_sel_ = 0;
  uint32_t driver_features_sel_ = 0;
  uint32_t queue_sel_ = 0;
  uint32_t config_generation_ = 0;
  std::vector<QueueRegs> queues_;

  // Shared with the device's worker thread: interrupt state under irq_mu_.
  mutable std::mutex irq_mu_;
  uint32_t interrupt_status_ = 0;
  std::atomic<bool> needs_reset_{false};
  std::atomic<uint64_t> ignored_{0};
};

}  // namespace ferry::vmm
