// The sender's per-channel pipeline: the scanner (migrate_out's thread) submits jobs;
// each channel has an encoder thread (gather page bytes, hash, zero/same/zstd/raw,
// frame a record) and a writer thread (rate limit, write_all), so scanning, encoding and
// sending overlap. A page always travels on the same channel (page/64 % channels), so
// records for one page arrive in order and "same as before" refers to the right bytes.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "bounded_queue.h"
#include "compression_backoff.h"
#include "ferry/migration/byte_stream.h"
#include "ferry/migration/dirty_set.h"
#include "ferry/migration/migration_error.h"
#include "ferry/migration/page_codec.h"
#include "ferry/migration/report.h"
#include "ferry/migration/vm_interface.h"

namespace ferry::migration {

/// Token bucket shared by every writer thread (`--max-bandwidth`).
class RateLimiter {
 public:
  explicit RateLimiter(uint64_t bytes_per_s) : rate_(bytes_per_s) {}
  /// Sleeps as needed so the long-run rate stays at or below the limit.
  void acquire(size_t bytes);

 private:
  uint64_t rate_;
  std::mutex mu_;
  std::chrono::steady_clock::time_point next_{};
};

/// Per-disk sender state.
struct SourceDisk {
  MigratableDisk* disk = nullptr;
  uint64_t size = 0;
  uint32_t block_size = 0;
  uint64_t blocks = 0;
  DirtyBitmap dirty;
  std::vector<uint64_t> held_block_hash;  // what the destination holds, per block
  std::mutex io;                          // read_at is not assumed thread-safe
};

/// Counters shared by the pipelines and read by the scanner / progress thread.
struct PipelineStats {
  std::atomic<uint64_t> zero{0}, same{0}, raw{0}, zstd{0};
  std::atomic<uint64_t> guest_bytes{0};  // uncompressed bytes encoded
  std::atomic<uint64_t> disk_bytes{0};
  std::atomic<uint64_t> wire_bytes{0};  // bytes written to streams
};

/// State every channel pipeline shares.
struct PipelineShared {
  const GuestPages* pages = nullptr;
  std::vector<SourceDisk>* disks = nullptr;
  RateLimiter* limiter = nullptr;  // nullptr = unlimited
  CompressionSpec compression;
  bool allow_same = true;
  bool absent_is_zero = false;      // round 0 may send holes as Zero unread (absent_pages.h)
  std::vector<uint64_t> held_hash;  // per page: hash the destination holds
  std::vector<uint8_t> held_known;  // per page: held_hash is valid
  PipelineStats stats;
  std::atomic<MigrationPhase> phase{MigrationPhase::Brownout};

  // First failure wins; every pipeline stops when `aborted` is set.
  std::atomic<bool> aborted{false};
  std::mutex fail_mu;
  std::optional<MigrationError> failure;
  void fail(MigrationError error);

  // Barrier: the scanner waits until every writer has flushed everything before it.
  std::mutex barrier_mu;
  std::condition_variable barrier_cv;
  size_t barrier_pending = 0;
};

struct SendJob {
  enum class Kind { Pages, Disk, Control, Done, Barrier };
  Kind kind = Kind::Pages;
  uint32_t round = 0;
  std::vector<uint64_t> pages;  // Pages: page indices, at most kMaxPagesPerBatch
  uint32_t disk = 0;            // Disk: extent
  uint64_t offset = 0;
  uint32_t length = 0;
  std::vector<uint8_t> frame;  // Control: a framed record
};

class ChannelPipeline {
 public:
  ChannelPipeline(uint32_t index, ByteStream& stream, PipelineShared& shared);
  ~ChannelPipeline();
  ChannelPipeline(const ChannelPipeline&) = delete;
  ChannelPipeline& operator=(const ChannelPipeline&) = delete;

  void start();
  /// Queues a job (blocks when the queue is full); false once the pipeline is aborted.
  bool submit(SendJob job);
  /// Lets the queues drain, then joins both threads.
  void finish();
  /// Drops queued work and joins. With `graceful` a frame being written is finished
  /// (bounded by the stream timeout) so the stream stays usable for a Cancel record;
  /// otherwise a writer stuck in write_all is unblocked by shutting the stream down.
  void abort(bool graceful = false);

 private:
  struct Frame {
    std::vector<uint8_t> bytes;
    bool barrier = false;
  };
  void encode_loop();
  void write_loop();
  std::optional<Frame> encode_job(SendJob& job);
  Frame encode_pages(const SendJob& job);
  std::optional<Frame> encode_disk(const SendJob& job);
  void write_frame_header(std::vector<uint8_t>& frame, RecordType type);

  uint32_t index_;
  ByteStream& stream_;
  PipelineShared& shared_;
  BoundedQueue<SendJob> jobs_{32};
  BoundedQueue<Frame> frames_{8};
  BlockEncoder encoder_;
  LevelController level_;
  std::atomic<bool> encoding_{false};
  std::atomic<uint64_t> starved_{0};
  std::atomic<bool> in_write_{false};
  detail::CompressionBackoff zstd_backoff_;  // encoder thread only
  uint64_t data_records_ = 0;       // encoder thread only
  uint64_t pages_sent_ = 0;
  std::thread encoder_thread_;
  std::thread writer_thread_;
};

}  // namespace ferry::migration
