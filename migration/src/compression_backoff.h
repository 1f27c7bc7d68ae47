// When the sender's encoder tries zstd on a batch of pages. Guest memory that does not
// compress (encrypted or random data) gains nothing from zstd and costs its full speed:
// a batch where fewer than 1 in 8 pages shrank is followed by batches stored raw, and
// every further failed probe doubles that pause (16 batches up to 1024, i.e. 4 MiB up to
// 256 MiB of pages), so a large incompressible guest pays zstd on ~0.1% of its pages
// instead of ~6% (profiled 2026-11-26: zstd was 20% of the source's CPU in a bulk round
// of random pages). One batch that compresses brings the pause back to 16.
#pragma once

#include <algorithm>
#include <cstdint>

namespace ferry::migration::detail {

class CompressionBackoff {
 public:
  static constexpr uint32_t kMinSkip = 16;
  static constexpr uint32_t kMaxSkip = 1024;

  /// True when this batch should try zstd; false when it goes raw. Call once per batch.
  bool probe() {
    if (skip_ == 0) {
      return true;
    }
    --skip_;
    return false;
  }

  /// After a probed batch: `tried` pages went through zstd, `shrank` of them got smaller.
  /// Small batches (fewer than 16 tried pages) say too little and change nothing.
  void record(uint32_t tried, uint32_t shrank) {
    if (tried < 16) {
      return;
    }
    if (shrank * 8 < tried) {
      skip_ = next_skip_;
      next_skip_ = std::min(next_skip_ * 2, kMaxSkip);
    } else {
      next_skip_ = kMinSkip;
    }
  }

  uint32_t batches_to_skip() const { return skip_; }

 private:
  uint32_t skip_ = 0;
  uint32_t next_skip_ = kMinSkip;
};

}  // namespace ferry::migration::detail
