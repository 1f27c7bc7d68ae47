// A fake VM for migration unit tests: guest RAM is byte vectors, disks are byte vectors
// with block dirty tracking, and an optional "guest" thread keeps writing pages and disk
// blocks (each write bumps a per-page counter, like the real test guest) so dirty rounds
// are real. Implements MigratableVm / MigratableDisk; failures can be injected.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "ferry/migration/vm_interface.h"

namespace ferry::testing {

struct FakeVmConfig {
  struct Region {
    uint64_t gpa = 0;
    uint64_t size = 0;
  };
  std::vector<Region> regions{{0, 8u << 20}};
  uint32_t vcpus = 2;
  std::vector<uint64_t> disk_sizes;
  uint32_t disk_block = 64u << 10;
};

/// Serialises / parses the config carried in VmDescription::config_blob.
std::vector<uint8_t> encode_config(const FakeVmConfig& config);
bool decode_config(std::span<const uint8_t> blob, FakeVmConfig& out);

class FakeDisk final : public migration::MigratableDisk {
 public:
  FakeDisk(uint64_t size, uint32_t block);
  uint64_t size_bytes() const override { return data_.size(); }
  uint32_t tracking_block_size() const override { return block_; }
  migration::VmResult<void> start_dirty_tracking() override;
  migration::VmResult<void> harvest_dirty(migration::DirtyBitmap& bitmap) override;
  migration::VmResult<void> stop_dirty_tracking() override;
  migration::VmResult<void> read_at(uint64_t offset, std::span<uint8_t> out) override;
  migration::VmResult<void> write_at(uint64_t offset, std::span<const uint8_t> data) override;
  migration::VmResult<void> flush() override { return {}; }

  /// A guest write: updates bytes and marks the blocks dirty while tracking.
  void guest_write(uint64_t offset, std::span<const uint8_t> data);
  std::vector<uint8_t> contents() const;
  bool tracking() const { return tracking_; }

 private:
  mutable std::mutex mu_;
  std::vector<uint8_t> data_;
  uint32_t block_;
  migration::DirtyBitmap dirty_;
  bool tracking_ = false;
};

/// Failure injection switches for the VM port.
struct FakeVmFaults {
  bool fail_pause = false;
  bool fail_save_state = false;
  bool fail_load_state = false;
  bool fail_resume = false;
  bool lose_dirty_page = false;  // harvest drops one dirty page (a dirty-log bug)
};

class FakeVm final : public migration::MigratableVm {
 public:
  explicit FakeVm(const FakeVmConfig& config);
  ~FakeVm() override;

  migration::VmDescription describe() const override;
  std::vector<migration::RamRegion> ram_regions() const override;
  size_t disk_count() const override { return disks_.size(); }
  migration::MigratableDisk& disk(size_t index) override { return *disks_[index]; }
  migration::VmResult<void> start_dirty_log() override;
  migration::VmResult<void> harvest_dirty(migration::DirtyBitmap& bitmap) override;
  migration::VmResult<void> stop_dirty_log() override;
  migration::VmResult<void> pause() override;
  migration::VmResult<void> resume() override;
  void set_throttle_percent(unsigned percent) override;
  migration::VmResult<std::vector<uint8_t>> save_machine_state() override;
  migration::VmResult<void> load_machine_state(std::span<const uint8_t> blob) override;

  /// Fills memory and disks with a deterministic mix of zero, compressible and random
  /// pages (seeded), without marking anything dirty.
  void fill(uint64_t seed);
  /// Starts the guest thread: bumps the counter of a random page in the first
  /// `working_set_pages` pages at `pages_per_s` (and a disk block every 16 pages).
  void start_guest(uint64_t working_set_pages, uint64_t pages_per_s);
  void stop_guest();
  /// A guest write of the bytes the page already holds: dirty, content unchanged.
  void guest_touch_page(uint64_t page);
  /// A single guest write (marks dirty while logging).
  void guest_write_page(uint64_t page, uint64_t value);

  /// Destination side: the VM exists but has never run until resume().
  void mark_incoming() { started_ = false; }
  /// Counts resume() calls in a counter that outlives the VM (the receiver destroys a
  /// VM it discards; tests still need to know it never ran).
  void set_resume_witness(std::shared_ptr<std::atomic<int>> w) { witness_ = std::move(w); }
  /// The fake "vCPU state": changes with every guest write, checked on load.
  uint64_t vcpu_state() const { return vcpu_state_; }
  bool running() const { return started_ && !paused_; }
  bool paused() const { return paused_; }
  bool started() const { return started_; }
  bool dirty_logging() const { return dirty_log_; }
  unsigned throttle() const { return throttle_; }
  unsigned max_throttle() const { return max_throttle_; }
  int resume_count() const { return resume_count_; }
  uint64_t guest_writes() const { return guest_writes_; }
  FakeVmFaults& faults() { return faults_; }
  /// Whole memory (all regions concatenated) and disk contents, for comparisons.
  std::vector<uint8_t> memory() const;
  std::vector<uint8_t> disk_contents(size_t i) const { return disks_[i]->contents(); }
  const FakeVmConfig& config() const { return config_; }

 private:
  void guest_loop(uint64_t working_set, uint64_t pages_per_s);
  uint8_t* page_ptr(uint64_t page) const;

  FakeVmConfig config_;
  std::vector<std::unique_ptr<uint8_t[]>> ram_;
  std::vector<std::unique_ptr<FakeDisk>> disks_;
  uint64_t pages_ = 0;
  mutable std::mutex mu_;  // guards guest writes vs. harvest / pause
  std::condition_variable cv_;
  migration::DirtyBitmap dirty_;
  bool dirty_log_ = false;
  std::atomic<bool> paused_{false};
  std::atomic<bool> started_{true};
  std::atomic<unsigned> throttle_{0};
  std::atomic<unsigned> max_throttle_{0};
  std::atomic<int> resume_count_{0};
  std::atomic<uint64_t> guest_writes_{0};
  uint64_t vcpu_state_ = 0x5eed;
  FakeVmFaults faults_;
  std::atomic<bool> stop_{false};
  std::shared_ptr<std::atomic<int>> witness_;
  std::thread guest_;
};

/// A VmFactory that builds a FakeVm (not started) from the description's config blob.
/// `resumes` counts resume() calls on every VM it built (even after they are destroyed).
/// `configure` (optional) runs on each VM built, e.g. to inject faults.
migration::VmFactory fake_factory(std::shared_ptr<std::atomic<int>> resumes,
                                  std::function<void(FakeVm&)> configure = {});

}  // namespace ferry::testing
