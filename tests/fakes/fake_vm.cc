#include "fake_vm.h"

#include <xxhash.h>

#include <chrono>
#include <cstring>
#include <random>

#include "ferry/kernel-interfaces/le_bytes.h"

namespace ferry::testing {

using migration::DirtyBitmap;
using migration::kPageSize;
using migration::VmPortError;
using migration::VmResult;

std::vector<uint8_t> encode_config(const FakeVmConfig& c) {
  std::vector<uint8_t> out;
  ByteWriter w(out);
  w.u32(0xFA4E);
  w.u32(static_cast<uint32_t>(c.regions.size()));
  for (const auto& r : c.regions) {
    w.u64(r.gpa);
    w.u64(r.size);
  }
  w.u32(c.vcpus);
  w.u32(c.disk_block);
  w.u32(static_cast<uint32_t>(c.disk_sizes.size()));
  for (uint64_t d : c.disk_sizes) {
    w.u64(d);
  }
  return out;
}

bool decode_config(std::span<const uint8_t> blob, FakeVmConfig& c) {
  ByteReader r(blob);
  uint32_t magic = 0, n = 0, disks = 0;
  if (!r.u32(magic) || magic != 0xFA4E || !r.u32(n) || n > 8) {
    return false;
  }
  c.regions.resize(n);
  for (auto& reg : c.regions) {
    r.u64(reg.gpa);
    r.u64(reg.size);
  }
  r.u32(c.vcpus);
  r.u32(c.disk_block);
  r.u32(disks);
  if (!r.ok() || disks > 4) {
    return false;
  }
  c.disk_sizes.resize(disks);
  for (auto& d : c.disk_sizes) {
    r.u64(d);
  }
  return r.at_end();
}

// ---- FakeDisk ------------------------------------------------------------------------
FakeDisk::FakeDisk(uint64_t size, uint32_t block) : data_(size, 0), block_(block) {
  dirty_.assign((size / block + 1 + 63) / 64, 0);
}

VmResult<void> FakeDisk::start_dirty_tracking() {
  std::lock_guard lock(mu_);
  tracking_ = true;
  return {};
}

VmResult<void> FakeDisk::stop_dirty_tracking() {
  std::lock_guard lock(mu_);
  tracking_ = false;
  return {};
}

VmResult<void> FakeDisk::harvest_dirty(DirtyBitmap& bitmap) {
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < bitmap.size() && i < dirty_.size(); ++i) {
    bitmap[i] |= dirty_[i];
    dirty_[i] = 0;
  }
  return {};
}

VmResult<void> FakeDisk::read_at(uint64_t offset, std::span<uint8_t> out) {
  std::lock_guard lock(mu_);
  if (offset > data_.size() || data_.size() - offset < out.size()) {
    return fail(VmPortError{"fake disk read out of range"});
  }
  std::memcpy(out.data(), data_.data() + offset, out.size());
  return {};
}

VmResult<void> FakeDisk::write_at(uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard lock(mu_);
  if (offset > data_.size() || data_.size() - offset < data.size()) {
    return fail(VmPortError{"fake disk write out of range"});
  }
  std::memcpy(data_.data() + offset, data.data(), data.size());
  return {};
}

void FakeDisk::guest_write(uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard lock(mu_);
  std::memcpy(data_.data() + offset, data.data(), data.size());
  if (tracking_) {
    for (uint64_t b = offset / block_; b <= (offset + data.size() - 1) / block_; ++b) {
      dirty_[b / 64] |= uint64_t{1} << (b % 64);
    }
  }
}

std::vector<uint8_t> FakeDisk::contents() const {
  std::lock_guard lock(mu_);
  return data_;
}

// ---- FakeVm --------------------------------------------------------------------------
FakeVm::FakeVm(const FakeVmConfig& config) : config_(config) {
  for (const auto& r : config_.regions) {
    ram_.push_back(std::make_unique<uint8_t[]>(r.size));  // value-initialised: zero
    pages_ += r.size / kPageSize;
  }
  for (uint64_t size : config_.disk_sizes) {
    disks_.push_back(std::make_unique<FakeDisk>(size, config_.disk_block));
  }
  dirty_.assign((pages_ + 63) / 64, 0);
}

FakeVm::~FakeVm() { stop_guest(); }

migration::VmDescription FakeVm::describe() const {
  uint64_t bytes = 0;
  for (const auto& r : config_.regions) {
    bytes += r.size;
  }
  return {bytes, config_.vcpus, config_.disk_sizes, encode_config(config_)};
}

std::vector<migration::RamRegion> FakeVm::ram_regions() const {
  std::vector<migration::RamRegion> out;
  for (size_t i = 0; i < ram_.size(); ++i) {
    out.push_back({config_.regions[i].gpa, config_.regions[i].size, ram_[i].get()});
  }
  return out;
}

uint8_t* FakeVm::page_ptr(uint64_t page) const {
  for (size_t i = 0; i < ram_.size(); ++i) {
    uint64_t n = config_.regions[i].size / kPageSize;
    if (page < n) {
      return ram_[i].get() + page * kPageSize;
    }
    page -= n;
  }
  return nullptr;
}

VmResult<void> FakeVm::start_dirty_log() {
  std::lock_guard lock(mu_);
  dirty_log_ = true;
  // Like KVM with INITIALLY_SET: everything starts dirty.
  for (uint64_t p = 0; p < pages_; ++p) {
    dirty_[p / 64] |= uint64_t{1} << (p % 64);
  }
  return {};
}

VmResult<void> FakeVm::harvest_dirty(DirtyBitmap& bitmap) {
  std::lock_guard lock(mu_);
  if (!dirty_log_) {
    return fail(VmPortError{"dirty log not started"});
  }
  bool dropped = false;
  for (size_t i = 0; i < bitmap.size() && i < dirty_.size(); ++i) {
    uint64_t w = dirty_[i];
    if (faults_.lose_dirty_page && !dropped && w != 0 && paused_) {
      w &= w - 1;  // drop the lowest dirty page in the final harvest
      dropped = true;
    }
    bitmap[i] |= w;
    dirty_[i] = 0;
  }
  return {};
}

VmResult<void> FakeVm::stop_dirty_log() {
  std::lock_guard lock(mu_);
  dirty_log_ = false;
  return {};
}

VmResult<void> FakeVm::pause() {
  if (faults_.fail_pause) {
    return fail(VmPortError{"injected pause failure"});
  }
  std::lock_guard lock(mu_);  // waits for an in-flight guest write to finish
  paused_ = true;
  return {};
}

VmResult<void> FakeVm::resume() {
  if (faults_.fail_resume) {
    return fail(VmPortError{"injected resume failure"});
  }
  std::lock_guard lock(mu_);
  paused_ = false;
  started_ = true;
  ++resume_count_;
  if (witness_) {
    ++*witness_;
  }
  cv_.notify_all();
  return {};
}

void FakeVm::set_throttle_percent(unsigned percent) {
  throttle_ = percent;
  if (percent > max_throttle_) {
    max_throttle_ = percent;
  }
}

VmResult<std::vector<uint8_t>> FakeVm::save_machine_state() {
  if (faults_.fail_save_state) {
    return fail(VmPortError{"injected save failure"});
  }
  if (!paused_) {
    return fail(VmPortError{"save_machine_state while running"});
  }
  std::vector<uint8_t> blob;
  ByteWriter w(blob);
  w.u64(vcpu_state_);
  w.u32(config_.vcpus);
  for (int i = 0; i < 1000; ++i) {
    w.u32(static_cast<uint32_t>(vcpu_state_ * 31 + i));  // some bulk, like XSAVE areas
  }
  w.u64(XXH3_64bits(blob.data(), blob.size()));
  return blob;
}

VmResult<void> FakeVm::load_machine_state(std::span<const uint8_t> blob) {
  if (faults_.fail_load_state) {
    return fail(VmPortError{"injected load failure"});
  }
  if (started_ && !paused_) {
    return fail(VmPortError{"load_machine_state while running"});
  }
  if (blob.size() < 16 || XXH3_64bits(blob.data(), blob.size() - 8) != [&] {
        uint64_t v = 0;
        std::memcpy(&v, blob.data() + blob.size() - 8, 8);
        return v;
      }()) {
    return fail(VmPortError{"machine state checksum mismatch"});
  }
  ByteReader r(blob);
  r.u64(vcpu_state_);
  return {};
}

void FakeVm::fill(uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (uint64_t p = 0; p < pages_; ++p) {
    uint8_t* page = page_ptr(p);
    switch (rng() % 4) {
      case 0:  // zero page
        break;
      case 1:  // compressible text-like
        for (uint64_t i = 0; i < kPageSize; ++i) {
          page[i] = static_cast<uint8_t>("ferry migrates guests "[i % 22]);
        }
        break;
      default:  // random
        for (uint64_t i = 0; i < kPageSize; i += 8) {
          uint64_t v = rng();
          std::memcpy(page + i, &v, 8);
        }
        break;
    }
  }
  for (auto& d : disks_) {
    std::vector<uint8_t> chunk(d->tracking_block_size());
    for (uint64_t off = 0; off < d->size_bytes(); off += chunk.size()) {
      size_t n = std::min<uint64_t>(chunk.size(), d->size_bytes() - off);
      for (size_t i = 0; i < n; ++i) {
        chunk[i] = (rng() % 3 == 0) ? 0 : static_cast<uint8_t>(rng());
      }
      (void)d->write_at(off, std::span<const uint8_t>(chunk.data(), n));
    }
  }
}

void FakeVm::guest_write_page(uint64_t page, uint64_t value) {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return !paused_ || stop_; });
  if (stop_) {
    return;
  }
  uint8_t* p = page_ptr(page);
  uint64_t counter = 0;
  std::memcpy(&counter, p, 8);
  counter += 1;
  std::memcpy(p, &counter, 8);
  std::memcpy(p + 8, &value, 8);
  vcpu_state_ = vcpu_state_ * 6364136223846793005ull + value;
  if (dirty_log_) {
    dirty_[page / 64] |= uint64_t{1} << (page % 64);
  }
  ++guest_writes_;
}

void FakeVm::guest_touch_page(uint64_t page) {
  std::lock_guard lock(mu_);
  if (dirty_log_ && !paused_) {
    dirty_[page / 64] |= uint64_t{1} << (page % 64);
  }
}

void FakeVm::guest_loop(uint64_t working_set, uint64_t pages_per_s) {
  std::mt19937_64 rng(42);
  uint64_t n = 0;
  auto next = std::chrono::steady_clock::now();
  const auto period = std::chrono::nanoseconds(1'000'000'000 / std::max<uint64_t>(pages_per_s, 1));
  while (!stop_) {
    unsigned t = throttle_;
    // Throttle: each write takes 1/(1 - t) of its nominal time.
    next += t >= 100 ? period * 100 : period * 100 / (100 - t);
    std::this_thread::sleep_until(next);
    auto now = std::chrono::steady_clock::now();
    if (now - next > std::chrono::milliseconds(50)) {
      next = now;  // do not accumulate debt while paused
    }
    uint64_t page = rng() % std::min(working_set, pages_);
    guest_write_page(page, rng());
    if (++n % 16 == 0 && !disks_.empty()) {
      FakeDisk& d = *disks_[0];
      uint64_t value = rng();
      uint64_t off = (rng() % (d.size_bytes() / 8)) * 8;
      std::unique_lock lock(mu_);  // a paused guest does no disk I/O either
      cv_.wait(lock, [&] { return !paused_ || stop_; });
      if (!stop_) {
        d.guest_write(off, std::span<const uint8_t>(reinterpret_cast<uint8_t*>(&value), 8));
      }
    }
  }
}

void FakeVm::start_guest(uint64_t working_set_pages, uint64_t pages_per_s) {
  stop_ = false;
  guest_ = std::thread(
      [this, working_set_pages, pages_per_s] { guest_loop(working_set_pages, pages_per_s); });
}

void FakeVm::stop_guest() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  if (guest_.joinable()) {
    guest_.join();
  }
}

std::vector<uint8_t> FakeVm::memory() const {
  std::lock_guard lock(mu_);
  std::vector<uint8_t> out;
  for (size_t i = 0; i < ram_.size(); ++i) {
    out.insert(out.end(), ram_[i].get(), ram_[i].get() + config_.regions[i].size);
  }
  return out;
}

migration::VmFactory fake_factory(std::shared_ptr<std::atomic<int>> resumes,
                                  std::function<void(FakeVm&)> configure) {
  return
      [resumes, configure](
          const migration::VmDescription& d) -> VmResult<std::unique_ptr<migration::MigratableVm>> {
        FakeVmConfig config;
        if (!decode_config(d.config_blob, config)) {
          return fail(VmPortError{"config blob is not a fake VM config"});
        }
        auto vm = std::make_unique<FakeVm>(config);
        vm->mark_incoming();
        vm->set_resume_witness(resumes);
        if (configure) {
          configure(*vm);
        }
        return vm;
      };
}

}  // namespace ferry::testing
