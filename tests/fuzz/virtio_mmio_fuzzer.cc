// Fuzzes the virtio-mmio register block (VirtioMmioTransport, spec v1.2 §4.2.2) with a
// sequence of guest register reads and writes, in front of a small synchronous device
// whose queues are real Virtqueues over guest RAM: a notify walks and completes every
// available chain at once, so descriptor walking is reached through the transport the
// way a guest reaches it. Input: u16 RAM length, that many RAM bytes (gpa 0), then
// 7-byte operations {kind, offset u16, value u32}.
#include <cstdint>
#include <optional>
#include <vector>

#include "ferry/vmm/devices/virtio_mmio.h"
#include "fuzz_guest.h"
#include "fuzz_input.h"

namespace {

using namespace ferry::vmm;

class NullIrq final : public IrqLine {
 public:
  void set_level(bool) override {}
  void pulse() override {}
};

class SyncDevice final : public VirtioDevice {
 public:
  explicit SyncDevice(GuestMemory& mem) : mem_(mem) {}
  void attach(VirtioMmioTransport& t) { transport_ = &t; }
  uint32_t device_id() const override { return 2; }
  uint64_t device_features() const override { return kVirtioFVersion1 | (1u << 5) | (1u << 9); }
  uint32_t queue_count() const override { return 2; }
  uint16_t queue_max_size() const override { return 16; }
  uint64_t config_size() const override { return 24; }
  void read_config(uint64_t offset, std::span<uint8_t> data) const override {
    for (size_t i = 0; i < data.size(); ++i) {
      data[i] = static_cast<uint8_t>(offset + i);  // offset + size <= 24, checked above us
    }
  }
  bool activate(uint64_t, std::span<const VirtqueueState> queues) override {
    queues_.clear();
    for (const VirtqueueState& st : queues) {
      if (!st.ready) {
        queues_.emplace_back();
        continue;
      }
      auto q = Virtqueue::create(mem_, st, 1 << 20);
      if (!q) {
        queues_.clear();
        return false;
      }
      queues_.emplace_back(std::move(*q));
    }
    return true;
  }
  void notify_queue(uint32_t index) override {
    if (index >= queues_.size()) {
      std::abort();  // the transport promised a ready queue of an active device
    }
    if (!queues_[index]) {
      return;
    }
    if (!ferry::fuzz::drain_queue(*queues_[index], mem_, 32)) {
      transport_->signal_needs_reset();
      return;
    }
    transport_->signal_used_buffer();
  }
  void reset() override { queues_.clear(); }

 private:
  GuestMemory& mem_;
  VirtioMmioTransport* transport_ = nullptr;
  std::vector<std::optional<Virtqueue>> queues_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ferry::fuzz::FuzzInput in(data, size);
  const uint16_t ram_len = in.take<uint16_t>();
  ferry::fuzz::FuzzRam ram(in.bytes(ram_len));
  NullIrq irq;
  SyncDevice device(ram.mem());
  VirtioMmioTransport transport(device, irq);
  device.attach(transport);
  static constexpr size_t kWidths[] = {4, 1, 2, 8};
  for (int ops = 0; in.remaining() > 0 && ops < 4096; ++ops) {
    const uint8_t kind = in.take<uint8_t>();
    const uint16_t offset = in.take<uint16_t>();
    const uint32_t value = in.take<uint32_t>();
    uint8_t buf[8] = {static_cast<uint8_t>(value), static_cast<uint8_t>(value >> 8),
                      static_cast<uint8_t>(value >> 16), static_cast<uint8_t>(value >> 24)};
    const size_t width = kWidths[(kind >> 1) % 4];
    // Mostly inside the 4 KiB window, sometimes beyond it.
    const uint64_t off = (kind & 0x80) ? offset : offset % kVirtioMmioWindowSize;
    if (kind & 1) {
      transport.mmio_write(off, std::span<const uint8_t>(buf, width));
    } else {
      transport.mmio_read(off, std::span<uint8_t>(buf, width));
    }
    if ((kind & 0x70) == 0x70) {
      // Save and restore into a fresh transport, as live migration does.
      VirtioMmioState st = transport.save();
      SyncDevice device2(ram.mem());
      VirtioMmioTransport t2(device2, irq);
      device2.attach(t2);
      (void)t2.restore(st);
    }
  }
  (void)transport.status();
  (void)transport.interrupt_status();
  return 0;
}
