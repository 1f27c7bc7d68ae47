#include "ferry/vmm/devices/block_dirty_map.h"

namespace ferry::vmm {

BlockDirtyMap::BlockDirtyMap(uint64_t disk_bytes, uint32_t block_size)
    : disk_bytes_(disk_bytes),
      block_size_(block_size),
      block_count_((disk_bytes + block_size - 1) / block_size),
      word_count_(static_cast<size_t>((block_count_ + 63) / 64)),
      words_(std::make_unique<std::atomic<uint64_t>[]>(word_count_)) {}

void BlockDirtyMap::start() {
  for (size_t i = 0; i < word_count_; ++i) {
    words_[i].store(0, std::memory_order_relaxed);
  }
  tracking_.store(true, std::memory_order_release);
}

void BlockDirtyMap::stop() {
  tracking_.store(false, std::memory_order_release);
  for (size_t i = 0; i < word_count_; ++i) {
    words_[i].store(0, std::memory_order_relaxed);
  }
}

void BlockDirtyMap::mark(uint64_t offset, uint64_t len) {
  if (len == 0 || !tracking() || offset >= disk_bytes_) {
    return;
  }
  const uint64_t last_byte =
      len - 1 > disk_bytes_ - 1 - offset ? disk_bytes_ - 1 : offset + len - 1;
  for (uint64_t block = offset / block_size_; block <= last_byte / block_size_; ++block) {
    words_[block / 64].fetch_or(1ull << (block % 64), std::memory_order_release);
  }
}

void BlockDirtyMap::harvest(std::vector<uint64_t>& out) {
  if (out.size() < word_count_) {
    out.resize(word_count_, 0);
  }
  for (size_t i = 0; i < word_count_; ++i) {
    // Test first: a clean word costs a load, not an atomic exchange.
    if (words_[i].load(std::memory_order_relaxed) != 0) {
      out[i] |= words_[i].exchange(0, std::memory_order_acq_rel);
    }
  }
}

}  // namespace ferry::vmm
