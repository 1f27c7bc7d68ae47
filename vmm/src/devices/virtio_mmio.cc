#include "ferry/vmm/devices/virtio_mmio.h"

#include <fmt/format.h>

#include <bit>
#include <cstring>

namespace ferry::vmm {

namespace reg = virtio_mmio_reg;

namespace {

constexpr uint32_t kDriverSettableStatus = kVirtioStatusAcknowledge | kVirtioStatusDriver |
                                           kVirtioStatusDriverOk | kVirtioStatusFeaturesOk |
                                           kVirtioStatusFailed;

uint32_t low32(uint64_t v) { return static_cast<uint32_t>(v); }
uint32_t high32(uint64_t v) { return static_cast<uint32_t>(v >> 32); }
void set_low32(uint64_t& v, uint32_t lo) { v = (v & ~0xffff'ffffull) | lo; }
void set_high32(uint64_t& v, uint32_t hi) { v = (v & 0xffff'ffffull) | (uint64_t{hi} << 32); }

// Each step needs the one before it (§3.1.1): ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK.
bool status_in_order(uint32_t s) {
  return !(((s & kVirtioStatusDriver) && !(s & kVirtioStatusAcknowledge)) ||
           ((s & kVirtioStatusFeaturesOk) && !(s & kVirtioStatusDriver)) ||
           ((s & kVirtioStatusDriverOk) && !(s & kVirtioStatusFeaturesOk)));
}

}  // namespace

VirtioMmioTransport::VirtioMmioTransport(VirtioDevice& device, IrqLine& irq)
    : device_(device), irq_(irq), queues_(device.queue_count()) {
  for (QueueRegs& q : queues_) {
    q.size = device_.queue_max_size();
  }
}

void VirtioMmioTransport::mmio_read(uint64_t offset, std::span<uint8_t> data) {
  std::memset(data.data(), 0, data.size());
  std::lock_guard lock(mu_);
  if (offset >= kVirtioMmioConfigOffset) {
    const uint64_t config_offset = offset - kVirtioMmioConfigOffset;
    // Config space takes 1/2/4/8-byte accesses inside the device's config struct.
    if (config_offset > device_.config_size() ||
        data.size() > device_.config_size() - config_offset || data.empty()) {
      ignore();
      return;
    }
    device_.read_config(config_offset, data);
    return;
  }
  if (data.size() != 4 || offset % 4 != 0) {
    ignore();
    return;
  }
  const uint32_t value = read_register(offset);
  std::memcpy(data.data(), &value, 4);  // little-endian host, checked in virtqueue.cc
}

void VirtioMmioTransport::mmio_write(uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard lock(mu_);
  if (offset >= kVirtioMmioConfigOffset) {
    // The block config offers no writable field (no CONFIG_WCE): ignore the write.
    ignore();
    return;
  }
  if (data.size() != 4 || offset % 4 != 0) {
    ignore();
    return;
  }
  uint32_t value = 0;
  std::memcpy(&value, data.data(), 4);
  write_register(offset, value);
}

uint32_t VirtioMmioTransport::read_register(uint64_t offset) {
  const bool queue_valid = queue_sel_ < queues_.size();
  switch (offset) {
    case reg::kMagicValue:
      return kVirtioMmioMagic;
    case reg::kVersion:
      return kVirtioMmioVersion;
    case reg::kDeviceId:
      return device_.device_id();
    case reg::kVendorId:
      return kVirtioMmioVendorId;
    case reg::kDeviceFeatures: {
      const uint64_t features = device_.device_features();
      return device_features_sel_ == 0   ? low32(features)
             : device_features_sel_ == 1 ? high32(features)
                                         : 0;
    }
    case reg::kQueueNumMax:
      return queue_valid ? device_.queue_max_size() : 0;
    case reg::kQueueReady:
      return queue_valid && queues_[queue_sel_].ready ? 1 : 0;
    case reg::kInterruptStatus:
      return interrupt_status();
    case reg::kStatus:
      return status();
    case reg::kShmLenLow:
    case reg::kShmLenHigh:
    case reg::kShmBaseLow:
    case reg::kShmBaseHigh:
      return 0xffff'ffff;  // no shared memory regions: length -1 (§4.2.2)
    case reg::kConfigGeneration:
      return config_generation_;
    default:
      ignore();  // write-only or unknown register
      return 0;
  }
}

void VirtioMmioTransport::write_register(uint64_t offset, uint32_t value) {
  switch (offset) {
    case reg::kDeviceFeaturesSel:
      device_features_sel_ = value;
      return;
    case reg::kDriverFeatures:
      // Features may only be written between DRIVER and FEATURES_OK (§3.1.1).
      if ((status_ & kVirtioStatusDriver) == 0 || (status_ & kVirtioStatusFeaturesOk) != 0 ||
          driver_features_sel_ > 1) {
        ignore();
        return;
      }
      (driver_features_sel_ == 0 ? set_low32 : set_high32)(driver_features_, value);
      return;
    case reg::kDriverFeaturesSel:
      driver_features_sel_ = value;
      return;
    case reg::kQueueSel:
      queue_sel_ = value;
      return;
    case reg::kQueueNotify:
      if ((status_ & kVirtioStatusDriverOk) == 0 || needs_reset_.load() ||
          value >= queues_.size() || !queues_[value].ready) {
        ignore();
        return;
      }
      device_.notify_queue(value);
      return;
    case reg::kInterruptAck: {
      std::lock_guard lock(irq_mu_);
      interrupt_status_ &= ~value;
      if (interrupt_status_ == 0) {
        irq_.set_level(false);
      }
      return;
    }
    case reg::kStatus:
      write_status(value);
      return;
    case reg::kShmSel:
      return;
    default:
      write_queue_register(offset, value);
  }
}

void VirtioMmioTransport::write_queue_register(uint64_t offset, uint32_t value) {
  const bool is_queue_reg = offset == reg::kQueueNum || offset == reg::kQueueReady ||
                            (offset >= reg::kQueueDescLow && offset <= reg::kQueueDeviceHigh);
  // Queue registers change only while the queue is not live (§4.2.3.2).
  if (!is_queue_reg || queue_sel_ >= queues_.size() || (status_ & kVirtioStatusDriverOk) != 0) {
    ignore();
    return;
  }
  QueueRegs& q = queues_[queue_sel_];
  if (offset == reg::kQueueReady) {
    if (value > 1 || (value == 1 && q.size == 0)) {
      ignore();
      return;
    }
    q.ready = value == 1;
    return;
  }
  if (q.ready) {
    ignore();
    return;
  }
  switch (offset) {
    case reg::kQueueNum:
      if (value == 0 || value > device_.queue_max_size() || !std::has_single_bit(value)) {
        ignore();
        return;
      }
      q.size = static_cast<uint16_t>(value);
      return;
    case reg::kQueueDescLow:
      return set_low32(q.desc, value);
    case reg::kQueueDescHigh:
      return set_high32(q.desc, value);
    case reg::kQueueDriverLow:
      return set_low32(q.driver, value);
    case reg::kQueueDriverHigh:
      return set_high32(q.driver, value);
    case reg::kQueueDeviceLow:
      return set_low32(q.device, value);
    case reg::kQueueDeviceHigh:
      return set_high32(q.device, value);
    default:
      ignore();  // gaps between the address registers
  }
}

bool VirtioMmioTransport::features_acceptable() const {
  const uint64_t offered = device_.device_features();
  return (driver_features_ & ~offered) == 0 && (driver_features_ & kVirtioFVersion1) != 0;
}

void VirtioMmioTransport::write_status(uint32_t value) {
  if (value == 0) {
    reset_locked();
    return;
  }
  // The driver may echo NEEDS_RESET back (read-modify-write) but never sets it itself.
  const bool echo_needs_reset = (value & kVirtioStatusNeedsReset) != 0 && needs_reset_.load();
  if (echo_needs_reset) {
    value &= ~kVirtioStatusNeedsReset;
  }
  const uint32_t added = value & ~status_;
  const bool clears_bits = (status_ & ~value) != 0;
  const bool unknown_bits = (value & ~kDriverSettableStatus) != 0;
  if (clears_bits || unknown_bits || !status_in_order(value)) {
    ignore();
    return;
  }
  if ((added & kVirtioStatusFeaturesOk) != 0 && !features_acceptable()) {
    // Leaving FEATURES_OK clear is how the device refuses the feature set (§3.1.1 step 6).
    value &= ~kVirtioStatusFeaturesOk;
    if ((value & kVirtioStatusDriverOk) != 0) {
      ignore();
      return;
    }
  }
  status_ = value;
  if ((added & kVirtioStatusDriverOk) != 0) {
    if (!device_.activate(driver_features_, queue_states())) {
      signal_needs_reset();
    }
  }
}

std::vector<VirtqueueState> VirtioMmioTransport::queue_states() const {
  std::vector<VirtqueueState> out;
  out.reserve(queues_.size());
  for (const QueueRegs& q : queues_) {
    out.push_back(VirtqueueState{q.size, q.ready, q.desc, q.driver, q.device, 0, 0});
  }
  return out;
}

void VirtioMmioTransport::reset_locked() {
  device_.reset();
  status_ = 0;
  driver_features_ = 0;
  device_features_sel_ = 0;
  driver_features_sel_ = 0;
  queue_sel_ = 0;
  for (QueueRegs& q : queues_) {
    q = QueueRegs{};
    q.size = device_.queue_max_size();
  }
  std::lock_guard lock(irq_mu_);
  needs_reset_.store(false);
  interrupt_status_ = 0;
  irq_.set_level(false);
}

void VirtioMmioTransport::raise_interrupt(uint32_t bits) {
  std::lock_guard lock(irq_mu_);
  interrupt_status_ |= bits;
  irq_.set_level(true);
}

void VirtioMmioTransport::signal_used_buffer() { raise_interrupt(kVirtioInterruptUsedBuffer); }

void VirtioMmioTransport::signal_needs_reset() {
  needs_reset_.store(true);
  raise_interrupt(kVirtioInterruptConfigChange);
}

uint32_t VirtioMmioTransport::status() const {
  return status_ | (needs_reset_.load() ? kVirtioStatusNeedsReset : 0);
}

uint32_t VirtioMmioTransport::interrupt_status() const {
  std::lock_guard lock(irq_mu_);
  return interrupt_status_;
}

VirtioMmioState VirtioMmioTransport::save() const {
  std::lock_guard lock(mu_);
  VirtioMmioState state;
  state.status = status();
  state.driver_features = driver_features_;
  state.device_features_sel = device_features_sel_;
  state.driver_features_sel = driver_features_sel_;
  state.queue_sel = queue_sel_;
  state.interrupt_status = interrupt_status();
  state.config_generation = config_generation_;
  state.queues = queue_states();
  return state;
}

VmmResult<void> VirtioMmioTransport::restore(const VirtioMmioState& state) {
  auto bad = [](const std::string& what) {
    return fail(vmm_error(VmmErrc::RestoreState, "virtio-mmio state: " + what));
  };
  if (state.queues.size() != queues_.size()) {
    return bad(fmt::format("{} queues, device has {}", state.queues.size(), queues_.size()));
  }
  const uint32_t status_bits = state.status & ~kVirtioStatusNeedsReset;
  if ((status_bits & ~kDriverSettableStatus) != 0 || !status_in_order(status_bits)) {
    return bad(fmt::format("bad status {:#x}", state.status));
  }
  if ((status_bits & kVirtioStatusFeaturesOk) != 0 &&
      (state.driver_features & ~device_.device_features()) != 0) {
    return bad(
        fmt::format("driver features {:#x} not offered by this device", state.driver_features));
  }
  if ((state.interrupt_status & ~(kVirtioInterruptUsedBuffer | kVirtioInterruptConfigChange)) !=
      0) {
    return bad(fmt::format("interrupt status {:#x}", state.interrupt_status));
  }
  for (const VirtqueueState& q : state.queues) {
    if (q.size == 0 || q.size > device_.queue_max_size() || !std::has_single_bit(q.size)) {
      return bad(fmt::format("queue size {} (max {})", q.size, device_.queue_max_size()));
    }
  }
  std::lock_guard lock(mu_);
  reset_locked();
  status_ = status_bits;
  driver_features_ = state.driver_features;
  device_features_sel_ = state.device_features_sel;
  driver_features_sel_ = state.driver_features_sel;
  queue_sel_ = state.queue_sel;
  config_generation_ = state.config_generation;
  for (size_t i = 0; i < queues_.size(); ++i) {
    const VirtqueueState& q = state.queues[i];
    queues_[i] = QueueRegs{q.size, q.ready, q.desc_addr, q.driver_addr, q.device_addr};
  }
  if ((status_ & kVirtioStatusDriverOk) != 0 && (state.status & kVirtioStatusNeedsReset) == 0) {
    if (!device_.activate(driver_features_, state.queues)) {
      reset_locked();  // never leave DRIVER_OK set over a device that is not running
      return bad("device refused the saved queues (rings outside guest RAM?)");
    }
  }
  std::lock_guard irq_lock(irq_mu_);
  needs_reset_.store((state.status & kVirtioStatusNeedsReset) != 0);
  interrupt_status_ = state.interrupt_status;
  irq_.set_level(interrupt_status_ != 0);
  return {};
}

}  // namespace ferry::vmm
