// BlockDirtyMap: which blocks of a disk image the guest wrote while migration tracks
// them, one bit per tracking block (64 KiB by default). Device worker threads mark,
// the migration thread harvests; both sides are lock-free (atomic words).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace ferry::vmm {

inline constexpr uint32_t kDefaultTrackingBlockSize = 64 * 1024;

class BlockDirtyMap {
 public:
  /// Covers `disk_bytes` in blocks of `block_size` (a power of two >= 4096).
  BlockDirtyMap(uint64_t disk_bytes, uint32_t block_size);

  /// Clears the map and starts recording.
  void start();
  /// Stops recording (marks are ignored) and clears the map.
  void stop();
  bool tracking() const { return tracking_.load(std::memory_order_acquire); }

  /// Records a write of [offset, offset + len); no-op when not tracking or len == 0.
  /// Call after the write completed, so a harvest that races the write sees it later.
  void mark(uint64_t offset, uint64_t len);
  /// ORs the blocks marked since the last harvest into `out` (bit i of word i/64 = block
  /// i; resized up to word_count() if shorter) and clears them.
  void harvest(std::vector<uint64_t>& out);

  uint64_t block_count() const { return block_count_; }
  size_t word_count() const { return word_count_; }
  uint32_t block_size() const { return block_size_; }

 private:
  uint64_t disk_bytes_;
  uint32_t block_size_;
  uint64_t block_count_;
  size_t word_count_;
  std::unique_ptr<std::atomic<uint64_t>[]> words_;
  std::atomic<bool> tracking_{false};
};

}  // namespace ferry::vmm
