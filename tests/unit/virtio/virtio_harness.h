// Test harness for the virtio-blk unit tests: guest RAM on the heap (GuestMemory::wrap),
// a fake IrqLine, temporary raw images, and GuestDriver, which plays the guest's virtio
// driver: it initialises the device through MMIO registers exactly like Linux's
// virtio_mmio does and writes rings and descriptors straight into RAM (as a vCPU would,
// so those writes are *not* in GuestMemory's VMM-dirty bitmap).
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "ferry/vmm/devices/virtio_block.h"

namespace ferry::vmm::test {

inline constexpr uint64_t kRamSize = 4ull << 20;

/// Page-aligned heap memory posing as guest RAM at gpa 0.
class GuestRam {
 public:
  explicit GuestRam(uint64_t size = kRamSize)
      : buf_(static_cast<uint8_t*>(std::aligned_alloc(4096, size))), size_(size) {
    std::memset(buf_.get(), 0, size);
    mem_ = GuestMemory::wrap({GuestRegion{0, size, buf_.get()}});
  }
  GuestMemory& mem() { return *mem_; }
  uint8_t* host(uint64_t gpa) { return buf_.get() + gpa; }
  uint64_t size() const { return size_; }
  template <class T>
  void put(uint64_t gpa, const T& v) {
    std::memcpy(host(gpa), &v, sizeof(T));
  }
  template <class T>
  T get(uint64_t gpa) {
    T v;
    std::memcpy(&v, host(gpa), sizeof(T));
    return v;
  }
  /// Pages the VMM wrote since the last call (one bool per page).
  std::vector<bool> take_vmm_dirty() {
    std::vector<uint64_t> bits((size_ / 4096 + 63) / 64, 0);
    mem_->take_vmm_dirty(0, bits);
    std::vector<bool> out(size_ / 4096);
    for (size_t i = 0; i < out.size(); ++i) {
      out[i] = (bits[i / 64] >> (i % 64)) & 1;
    }
    return out;
  }

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> buf_;
  uint64_t size_;
  std::unique_ptr<GuestMemory> mem_;
};

class FakeIrq final : public IrqLine {
 public:
  void set_level(bool asserted) override {
    if (asserted && !level_.load()) {
      raises_.fetch_add(1);
    }
    level_.store(asserted);
  }
  void pulse() override { raises_.fetch_add(1); }
  bool level() const { return level_.load(); }
  int raises() const { return raises_.load(); }

 private:
  std::atomic<bool> level_{false};
  std::atomic<int> raises_{0};
};

/// A raw image file in TMPDIR (or /tmp), deleted with the object.
class TempImage {
 public:
  explicit TempImage(uint64_t size, uint8_t fill = 0) {
    const char* dir = std::getenv("TMPDIR");
    std::string tmpl = std::string(dir ? dir : "/tmp") + "/ferry-vblk-XXXXXX";
    int fd = ::mkstemp(tmpl.data());
    path_ = tmpl;
    std::vector<uint8_t> data(size, fill);
    for (uint64_t i = 0; i < size; i += 512) {
      data[i] = static_cast<uint8_t>(i / 512);  // each sector starts with its number
    }
    (void)!::write(fd, data.data(), data.size());
    ::close(fd);
  }
  ~TempImage() { ::unlink(path_.c_str()); }
  const std::string& path() const { return path_; }
  std::vector<uint8_t> contents() const {
    std::ifstream f(path_, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
  }

 private:
  std::string path_;
};

/// One buffer of a request chain as the driver lays it out.
struct Seg {
  uint64_t addr;
  uint32_t len;
  bool writable;
};

struct UsedElem {
  uint32_t id;
  uint32_t len;
};

// Driver-side memory layout (guest physical).
inline constexpr uint64_t kDescGpa = 0x1000;
inline constexpr uint64_t kAvailGpa = 0x3000;
inline constexpr uint64_t kUsedGpa = 0x4000;
inline constexpr uint64_t kHeaderGpa = 0x8000;  // one 16-byte header slot per descriptor head
inline constexpr uint64_t kStatusGpa = 0xa000;  // one status byte per head
inline constexpr uint64_t kDataGpa = 0x10000;   // data buffers from here on

/// A guest driver for one virtio-mmio block device with a single queue.
class GuestDriver {
 public:
  GuestDriver(GuestRam& ram, MmioDevice& mmio, uint16_t queue_size = 64)
      : ram_(ram), mmio_(&mmio), qsize_(queue_size) {}

  /// Points the driver at another device (a migrated one) keeping its ring indices.
  void set_mmio(MmioDevice& mmio) { mmio_ = &mmio; }

  uint32_t read32(uint64_t off) {
    uint32_t v = 0;
    mmio_->mmio_read(off, {reinterpret_cast<uint8_t*>(&v), 4});
    return v;
  }
  void write32(uint64_t off, uint32_t v) {
    mmio_->mmio_write(off, {reinterpret_cast<const uint8_t*>(&v), 4});
  }
  uint64_t features() {
    write32(virtio_mmio_reg::kDeviceFeaturesSel, 0);
    uint64_t lo = read32(virtio_mmio_reg::kDeviceFeatures);
    write32(virtio_mmio_reg::kDeviceFeaturesSel, 1);
    return lo | (uint64_t{read32(virtio_mmio_reg::kDeviceFeatures)} << 32);
  }
  void set_status(uint32_t s) { write32(virtio_mmio_reg::kStatus, s); }
  uint32_t status() { return read32(virtio_mmio_reg::kStatus); }

  /// Linux's probe sequence: reset, ACK, DRIVER, features, FEATURES_OK, queue, DRIVER_OK.
  /// Returns false if the device refused a step.
  bool init(uint64_t accept_mask = ~0ull) {
    set_status(0);
    set_status(kVirtioStatusAcknowledge);
    set_status(kVirtioStatusAcknowledge | kVirtioStatusDriver);
    const uint64_t f = features() & accept_mask;
    write32(virtio_mmio_reg::kDriverFeaturesSel, 0);
    write32(virtio_mmio_reg::kDriverFeatures, static_cast<uint32_t>(f));
    write32(virtio_mmio_reg::kDriverFeaturesSel, 1);
    write32(virtio_mmio_reg::kDriverFeatures, static_cast<uint32_t>(f >> 32));
    const uint32_t base = kVirtioStatusAcknowledge | kVirtioStatusDriver;
    set_status(base | kVirtioStatusFeaturesOk);
    if ((status() & kVirtioStatusFeaturesOk) == 0) {
      return false;
    }
    setup_queue();
    set_status(base | kVirtioStatusFeaturesOk | kVirtioStatusDriverOk);
    return (status() & kVirtioStatusNeedsReset) == 0;
  }

  void setup_queue(uint64_t desc = kDescGpa, uint64_t avail = kAvailGpa, uint64_t used = kUsedGpa) {
    namespace r = virtio_mmio_reg;
    std::memset(ram_.host(kDescGpa), 0, 0x4000);  // rings start clean
    write32(r::kQueueSel, 0);
    write32(r::kQueueNum, qsize_);
    write32(r::kQueueDescLow, static_cast<uint32_t>(desc));
    write32(r::kQueueDescHigh, static_cast<uint32_t>(desc >> 32));
    write32(r::kQueueDriverLow, static_cast<uint32_t>(avail));
    write32(r::kQueueDriverHigh, static_cast<uint32_t>(avail >> 32));
    write32(r::kQueueDeviceLow, static_cast<uint32_t>(used));
    write32(r::kQueueDeviceHigh, static_cast<uint32_t>(used >> 32));
    write32(r::kQueueReady, 1);
    avail_idx_ = 0;
    used_seen_ = 0;
    next_desc_ = 0;
  }

  /// Writes raw descriptor `index` (for malformed-chain tests).
  void put_desc(uint16_t index, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    const uint64_t d = kDescGpa + 16ull * index;
    ram_.put(d, addr);
    ram_.put(d + 8, len);
    ram_.put(d + 12, flags);
    ram_.put(d + 14, next);
  }
  /// Puts `head` on the avail ring and bumps avail->idx (without notifying).
  void publish(uint16_t head) {
    ram_.put<uint16_t>(kAvailGpa + 4 + 2ull * (avail_idx_ % qsize_), head);
    ++avail_idx_;
    __atomic_store_n(reinterpret_cast<uint16_t*>(ram_.host(kAvailGpa + 2)), avail_idx_,
                     __ATOMIC_RELEASE);
  }
  void notify() { write32(virtio_mmio_reg::kQueueNotify, 0); }
  void set_avail_idx(uint16_t idx) {
    avail_idx_ = idx;
    __atomic_store_n(reinterpret_cast<uint16_t*>(ram_.host(kAvailGpa + 2)), idx, __ATOMIC_RELEASE);
  }

  /// Builds a chain from `segs` in consecutive descriptors; returns its head.
  uint16_t add_chain(const std::vector<Seg>& segs) {
    const uint16_t head = next_desc_;
    for (size_t i = 0; i < segs.size(); ++i) {
      const uint16_t idx = static_cast<uint16_t>((head + i) % qsize_);
      const bool last = i + 1 == segs.size();
      put_desc(idx, segs[i].addr, segs[i].len,
               static_cast<uint16_t>((segs[i].writable ? kVirtqDescFWrite : 0) |
                                     (last ? 0 : kVirtqDescFNext)),
               static_cast<uint16_t>((idx + 1) % qsize_));
    }
    next_desc_ = static_cast<uint16_t>((head + segs.size()) % qsize_);
    return head;
  }

  uint16_t used_idx() {
    return __atomic_load_n(reinterpret_cast<uint16_t*>(ram_.host(kUsedGpa + 2)), __ATOMIC_ACQUIRE);
  }
  /// Waits until the device used one more chain; nullopt after `timeout`.
  std::optional<UsedElem> wait_used(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (used_idx() == used_seen_) {
      if (std::chrono::steady_clock::now() > deadline) {
        return std::nullopt;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    UsedElem e = ram_.get<UsedElem>(kUsedGpa + 4 + 8ull * (used_seen_ % qsize_));
    ++used_seen_;
    return e;
  }

  /// Header + data + status chain for request `type` at `sector` (data at `data_gpa`).
  uint16_t add_request(uint32_t type, uint64_t sector, uint64_t data_gpa, uint32_t data_len,
                       bool data_writable) {
    const uint64_t hdr = kHeaderGpa + 16ull * next_desc_;
    const uint64_t st = kStatusGpa + next_desc_;
    ram_.put<uint32_t>(hdr, type);
    ram_.put<uint32_t>(hdr + 4, 0);
    ram_.put<uint64_t>(hdr + 8, sector);
    ram_.put<uint8_t>(st, 0xff);
    std::vector<Seg> segs{{hdr, 16, false}};
    if (data_len > 0) {
      segs.push_back({data_gpa, data_len, data_writable});
    }
    segs.push_back({st, 1, true});
    last_status_gpa_ = st;
    return add_chain(segs);
  }

  struct Done {
    bool completed = false;
    uint8_t status = 0xff;
    uint32_t used_len = 0;
  };
  /// Submits one request, notifies, waits for it.
  Done run(uint32_t type, uint64_t sector, uint64_t data_gpa, uint32_t data_len) {
    const bool writable = type == kVirtioBlkTIn || type == kVirtioBlkTGetId;
    const uint16_t head = add_request(type, sector, data_gpa, data_len, writable);
    const uint64_t st = last_status_gpa_;
    publish(head);
    notify();
    auto used = wait_used();
    if (!used || used->id != head) {
      return {};
    }
    return {true, ram_.get<uint8_t>(st), used->len};
  }
  Done read(uint64_t sector, uint32_t len, uint64_t gpa = kDataGpa) {
    return run(kVirtioBlkTIn, sector, gpa, len);
  }
  Done write(uint64_t sector, const std::vector<uint8_t>& data, uint64_t gpa = kDataGpa) {
    std::memcpy(ram_.host(gpa), data.data(), data.size());
    return run(kVirtioBlkTOut, sector, gpa, static_cast<uint32_t>(data.size()));
  }
  void ack_interrupt() {
    write32(virtio_mmio_reg::kInterruptAck, read32(virtio_mmio_reg::kInterruptStatus));
  }
  uint16_t queue_size() const { return qsize_; }

 private:
  GuestRam& ram_;
  MmioDevice* mmio_;
  uint16_t qsize_;
  uint16_t avail_idx_ = 0;
  uint16_t used_seen_ = 0;
  uint16_t next_desc_ = 0;
  uint64_t last_status_gpa_ = 0;
};

/// Polls `pred` until it holds or `timeout` passes (device work happens on its thread).
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

inline std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) {
    v[i] = static_cast<uint8_t>(seed * 31 + i * 7 + (i >> 9));
  }
  return v;
}

}  // namespace ferry::vmm::test
