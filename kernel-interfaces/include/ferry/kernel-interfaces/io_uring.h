// IoUring: move-only RAII owner of one liburing `struct io_uring` (Documentation:
// io_uring(7), io_uring_setup(2), liburing's man pages). One ring per owning thread; the
// ring is not safe for concurrent use. Opcodes the caller needs are probed at creation so
// an old kernel fails early with an error naming the missing opcode. `user_data` of every
// SQE is a SlabKey (index + generation into an OpSlab), never a pointer to the stack.
#pragma once

#include <liburing.h>
#include <sys/uio.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "ferry/kernel-interfaces/sys_error.h"

namespace ferry::kernel {

/// One reaped completion, copied out of the CQ ring (the CQE slot is already released).
struct Completion {
  uint64_t user_data = 0;
  int32_t res = 0;  // >= 0 result, or -errno
  uint32_t flags = 0;  // IORING_CQE_F_MORE, IORING_CQE_F_NOTIF, ...

  bool more() const { return (flags & IORING_CQE_F_MORE) != 0; }
  bool notification() const { return (flags & IORING_CQE_F_NOTIF) != 0; }
};

/// "IORING_OP_SEND_ZC" for a known opcode, "IORING_OP_<unknown>" otherwise.
const char* io_uring_opcode_name(int opcode);

class IoUring {
 public:
  IoUring() = default;
  IoUring(const IoUring&) = delete;
  IoUring& operator=(const IoUring&) = delete;
  IoUring(IoUring&& other) noexcept : ring_(std::move(other.ring_)) {}
  IoUring& operator=(IoUring&& other) noexcept;
  ~IoUring() { reset(); }

  /// Sets up a ring with `entries` SQEs (rounded up to a power of two by the kernel) and
  /// probes every opcode in `required_opcodes`. A missing opcode fails with EOPNOTSUPP
  /// and `op` = "io_uring probe: IORING_OP_<NAME> not supported". `setup_flags` are
  /// IORING_SETUP_* (e.g. IORING_SETUP_COOP_TASKRUN); 0 is always valid.
  static SysResult<IoUring> create(unsigned entries, std::span<const int> required_opcodes,
                                   unsigned setup_flags = 0);

  /// A free SQE, cleared. Fails with EBUSY when the submission queue is full: submit()
  /// first (the SQ holds entries() SQEs between submits).
  SysResult<io_uring_sqe*> get_sqe();
  /// Number of SQEs that can still be prepared before a submit is needed.
  unsigned sq_space_left() const;
  /// Number of prepared but not yet submitted SQEs.
  unsigned sq_ready() const;

  /// Submits all prepared SQEs in one io_uring_enter; returns how many were consumed.
  SysResult<unsigned> submit();
  /// Submits and waits until at least `wait_nr` completions are available.
  SysResult<unsigned> submit_and_wait(unsigned wait_nr);

  /// Blocks until one completion is available and reaps it (submits pending SQEs first).
  SysResult<Completion> wait();
  /// Like wait(), but gives up after `timeout`: returns nullopt on timeout. Uses the
  /// EXT_ARG getevents path, so no SQE is spent on the timeout.
  SysResult<std::optional<Completion>> wait_for(std::chrono::nanoseconds timeout);
  /// Reaps one completion if one is ready; never blocks, never enters the kernel.
  std::optional<Completion> peek();
  /// Reaps up to `out.size()` ready completions; returns how many were written.
  size_t peek_batch(std::span<Completion> out);

  /// Registers fixed buffers (IORING_OP_READ_FIXED/WRITE_FIXED, SEND_ZC with
  /// IORING_RECVSEND_FIXED_BUF use them by index). Pages are pinned until unregistered.
  SysResult<void> register_buffers(std::span<const iovec> buffers);
  /// Drops the registered buffers (also done by the kernel when the ring closes).
  SysResult<void> unregister_buffers();
  /// Registers `fds` as fixed files (IOSQE_FIXED_FILE then takes an index).
  SysResult<void> register_files(std::span<const int> fds);

  /// The ring fd (-1 for an empty/moved-from ring).
  int fd() const { return ring_ ? ring_->ring_fd : -1; }
  unsigned entries() const { return ring_ ? ring_->sq.ring_entries : 0; }
  bool valid() const { return ring_ != nullptr; }
  /// The liburing ring, for io_uring_prep_* helpers that take it (rarely needed).
  io_uring* raw() { return ring_.get(); }
  void reset() noexcept;

 private:
  explicit IoUring(std::unique_ptr<io_uring> ring) : ring_(std::move(ring)) {}
  // Heap-held so moving an IoUring never moves the liburing struct the kernel mmaps
  // point into (liburing keeps pointers to the SQ/CQ rings in it).
  std::unique_ptr<io_uring> ring_;
};

/// A handle into an OpSlab: low 32 bits index, high 32 bits generation. A completion
/// for a slot that was freed and reused carries a stale generation and is detected.
using SlabKey = uint64_t;

/// Fixed-size slab of in-flight operation records, addressed by SlabKey. The key goes
/// into sqe->user_data; the record (buffers, iovecs, timespecs the kernel reads while
/// the op is in flight) lives in the slab, whose storage never moves after creation.
template <class T>
class OpSlab {
 public:
  explicit OpSlab(size_t capacity) : slots_(capacity) {
    free_.reserve(capacity);
    for (size_t i = capacity; i > 0; --i) {
      free_.push_back(static_cast<uint32_t>(i - 1));
    }
  }

  /// Stores `value` and returns its key, or nullopt when every slot is in use.
  std::optional<SlabKey> insert(T value) {
    if (free_.empty()) {
      return std::nullopt;
    }
    uint32_t index = free_.back();
    free_.pop_back();
    Slot& slot = slots_[index];
    slot.value = std::move(value);
    slot.used = true;
    return (static_cast<uint64_t>(slot.generation) << 32) | index;
  }
  /// The record for `key`, or nullptr if the key is stale or out of range.
  T* get(SlabKey key) {
    uint32_t index = static_cast<uint32_t>(key);
    if (index >= slots_.size()) {
      return nullptr;
    }
    Slot& slot = slots_[index];
    if (!slot.used || slot.generation != static_cast<uint32_t>(key >> 32)) {
      return nullptr;
    }
    return &slot.value;
  }
  /// Removes the record for `key` and returns it (nullopt if stale).
  std::optional<T> take(SlabKey key) {
    T* value = get(key);
    if (value == nullptr) {
      return std::nullopt;
    }
    uint32_t index = static_cast<uint32_t>(key);
    std::optional<T> out(std::move(*value));
    Slot& slot = slots_[index];
    slot.used = false;
    ++slot.generation;
    free_.push_back(index);
    return out;
  }
  size_t in_use() const { return slots_.size() - free_.size(); }
  size_t capacity() const { return slots_.size(); }

 private:
  struct Slot {
    T value{};
    uint32_t generation = 0;
    bool used = false;
  };
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
};

}  // namespace ferry::kernel
