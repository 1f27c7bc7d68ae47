// BlockBackend: a raw disk image file and the io_uring that performs its I/O
// (READV/WRITEV/FSYNC, probed at creation). Two rings: one owned by the device's worker
// thread for guest requests, one behind a mutex for the migration engine's whole-block
// reads and writes. Optional fault injection (latency, EIO on a sector range) exists for
// host-agent tests and is off unless set through set_fault_injection().
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "ferry/kernel-interfaces/io_uring.h"
#include "ferry/kernel-interfaces/unique_fd.h"
#include "ferry/vmm/vmm_error.h"

namespace ferry::vmm {

inline constexpr uint64_t kSectorSize = 512;

/// Faults injected into guest requests (not into migration reads/writes).
struct BlockFaultInjection {
  /// Added before each batch of guest I/O is submitted.
  std::chrono::microseconds latency{0};
  /// Guest reads and writes touching [eio_first_sector, eio_first_sector + eio_sector_count)
  /// fail with EIO without reaching the file. Count 0 = no EIO range.
  uint64_t eio_first_sector = 0;
  uint64_t eio_sector_count = 0;
};

enum class BlockOpKind : uint8_t { Read, Write, Flush };

/// One I/O for BlockBackend::run. `iov` points into guest RAM (GuestMemory views).
struct BlockOp {
  BlockOpKind kind = BlockOpKind::Read;
  uint64_t offset = 0;
  std::vector<iovec> iov;
  /// Filled by run(): bytes transferred (reads/writes) or 0 (flush), or -errno.
  int64_t result = 0;

  uint64_t length() const;
};

class BlockBackend {
 public:
  /// Opens `path` read-write, or read-only when `read_only` is asked or the file itself
  /// is not writable (EACCES/EROFS). Fails clearly for a missing file, a directory or
  /// other non-regular file, and a size that is zero or not a multiple of 512.
  static VmmResult<std::unique_ptr<BlockBackend>> open(const std::string& path, bool read_only,
                                                       unsigned ring_entries);

  BlockBackend(const BlockBackend&) = delete;
  BlockBackend& operator=(const BlockBackend&) = delete;

  uint64_t size_bytes() const { return size_; }
  bool read_only() const { return read_only_; }
  const std::string& path() const { return path_; }

  /// Worker thread only: submits every op (reads, writes, flushes) and waits for all of
  /// them; each op's `result` says how it ended. An error means the ring itself failed.
  VmmResult<void> run(std::span<BlockOp> ops);

  /// Any thread: synchronous whole-range read/write/fsync for the migration engine.
  VmmResult<void> read_at(uint64_t offset, std::span<uint8_t> out);
  VmmResult<void> write_at(uint64_t offset, std::span<const uint8_t> data);
  VmmResult<void> flush();

  void set_fault_injection(const BlockFaultInjection& faults);
  BlockFaultInjection fault_injection() const;

 private:
  BlockBackend(std::string path, kernel::UniqueFd fd, uint64_t size, bool read_only,
               kernel::IoUring worker_ring, kernel::IoUring sync_ring);
  VmmResult<void> submit_and_reap(kernel::IoUring& ring, std::span<BlockOp* const> ops);
  VmmResult<void> sync_transfer(BlockOpKind kind, uint64_t offset, uint8_t* data, size_t len);
  bool hits_eio_range(const BlockOp& op, const BlockFaultInjection& faults) const;

  std::string path_;
  kernel::UniqueFd fd_;
  uint64_t size_ = 0;
  bool read_only_ = false;
  kernel::IoUring worker_ring_;  // used only by the device worker thread
  std::mutex sync_mu_;           // guards sync_ring_
  kernel::IoUring sync_ring_;
  std::atomic<uint32_t> batch_generation_{0};  // high half of user_data: a stale CQE never matches
  mutable std::mutex faults_mu_;
  BlockFaultInjection faults_;
};

}  // namespace ferry::vmm
