#include "ferry/kernel-interfaces/io_uring.h"

#include <algorithm>
#include <cerrno>
#include <ctime>

#include "ferry/kernel-interfaces/sanitizers.h"

namespace ferry::kernel {

namespace {

// Names of the opcodes liburing 2.3 knows, in enum order. The probe error needs a
// static string (SysError::op is a const char*), hence the parallel "not supported" list.
#define FERRY_URING_OPS(X)                                                                  \
  X(NOP) X(READV) X(WRITEV) X(FSYNC) X(READ_FIXED) X(WRITE_FIXED) X(POLL_ADD) X(POLL_REMOVE) \
  X(SYNC_FILE_RANGE) X(SENDMSG) X(RECVMSG) X(TIMEOUT) X(TIMEOUT_REMOVE) X(ACCEPT)            \
  X(ASYNC_CANCEL) X(LINK_TIMEOUT) X(CONNECT) X(FALLOCATE) X(OPENAT) X(CLOSE)                 \
  X(FILES_UPDATE) X(STATX) X(READ) X(WRITE) X(FADVISE) X(MADVISE) X(SEND) X(RECV)            \
  X(OPENAT2) X(EPOLL_CTL) X(SPLICE) X(PROVIDE_BUFFERS) X(REMOVE_BUFFERS) X(TEE)              \
  X(SHUTDOWN) X(RENAMEAT) X(UNLINKAT) X(MKDIRAT) X(SYMLINKAT) X(LINKAT) X(MSG_RING)          \
  X(FSETXATTR) X(SETXATTR) X(FGETXATTR) X(GETXATTR) X(SOCKET) X(URING_CMD) X(SEND_ZC)        \
  X(SENDMSG_ZC)

#define FERRY_NAME(op) "IORING_OP_" #op,
#define FERRY_MISSING(op) "io_uring probe: IORING_OP_" #op " not supported by this kernel",
constexpr const char* kOpNames[] = {FERRY_URING_OPS(FERRY_NAME)};
constexpr const char* kOpMissing[] = {FERRY_URING_OPS(FERRY_MISSING)};
#undef FERRY_NAME
#undef FERRY_MISSING
#undef FERRY_URING_OPS
constexpr int kKnownOps = static_cast<int>(sizeof(kOpNames) / sizeof(kOpNames[0]));
static_assert(kKnownOps == IORING_OP_SENDMSG_ZC + 1, "opcode name table out of date");

const char* missing_text(int opcode) {
  if (opcode >= 0 && opcode < kKnownOps) {
    return kOpMissing[opcode];
  }
  return "io_uring probe: an opcode unknown to liburing is not supported by this kernel";
}

#if defined(FERRY_UNDER_TSAN)
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
// liburing maps the rings with raw syscalls that ThreadSanitizer does not intercept, so a
// new ring at the address of a freed one inherits the old ring's access history and shows
// false races between unrelated threads. A release when a ring is torn down and an
// acquire on the same addresses when one is set up order the two for TSan.
void tsan_ring_sync(const io_uring& ring, void (*op)(void*)) {
  op(ring.sq.ring_ptr);
  op(ring.cq.ring_ptr);
  op(ring.sq.sqes);
}
void announce_new_ring(const io_uring& ring) { tsan_ring_sync(ring, __tsan_acquire); }
void announce_ring_gone(const io_uring& ring) { tsan_ring_sync(ring, __tsan_release); }
#else
void announce_new_ring(const io_uring&) {}
void announce_ring_gone(const io_uring&) {}
#endif

Completion copy_and_release(io_uring* ring, io_uring_cqe* cqe) {
  Completion c{cqe->user_data, cqe->res, cqe->flags};
  io_uring_cqe_seen(ring, cqe);
  return c;
}

}  // namespace

const char* io_uring_opcode_name(int opcode) {
  if (opcode >= 0 && opcode < kKnownOps) {
    return kOpNames[opcode];
  }
  return "IORING_OP_<unknown>";
}

IoUring& IoUring::operator=(IoUring&& other) noexcept {
  if (this != &other) {
    reset();
    ring_ = std::move(other.ring_);
  }
  return *this;
}

void IoUring::reset() noexcept {
  if (ring_) {
    // Closing the ring cancels whatever is still in flight; callers that lent buffers to
    // the kernel must reap (or cancel) their ops before dropping the ring.
    announce_ring_gone(*ring_);
    io_uring_queue_exit(ring_.get());
    ring_.reset();
  }
}

SysResult<IoUring> IoUring::create(unsigned entries, std::span<const int> required_opcodes,
                                   unsigned setup_flags) {
  auto ring = std::make_unique<io_uring>();
  io_uring_params params{};
  params.flags = setup_flags;
  int rc = io_uring_queue_init_params(entries, ring.get(), &params);
  if (rc < 0) {
    return fail(make_error(-rc, "io_uring_setup"));
  }
  announce_new_ring(*ring);
  // From here on `out` owns the ring, so every early return tears it down.
  IoUring out(std::move(ring));
  if (required_opcodes.empty()) {
    return out;
  }
  io_uring_probe* probe = io_uring_get_probe_ring(out.ring_.get());
  if (probe == nullptr) {
    return fail(make_error(ENOSYS, "io_uring_register(IORING_REGISTER_PROBE)"));
  }
  for (int opcode : required_opcodes) {
    if (opcode < 0 || opcode > 255 || !io_uring_opcode_supported(probe, opcode)) {
      io_uring_free_probe(probe);
      return fail(make_error(EOPNOTSUPP, missing_text(opcode)));
    }
  }
  io_uring_free_probe(probe);
  return out;
}

SysResult<io_uring_sqe*> IoUring::get_sqe() {
  if (!ring_) {
    return fail(make_error(EBADF, "io_uring_get_sqe"));
  }
  io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
  if (sqe == nullptr) {
    return fail(make_error(EBUSY, "io_uring_get_sqe (submission queue full)"));
  }
  // liburing 2.3 hands out the slot as the previous user left it; start clean so a stale
  // flag (IOSQE_IO_LINK, buf_index) never leaks into the next op.
  *sqe = io_uring_sqe{};
  return sqe;
}

unsigned IoUring::sq_space_left() const {
  return ring_ ? io_uring_sq_space_left(ring_.get()) : 0;
}

unsigned IoUring::sq_ready() const { return ring_ ? io_uring_sq_ready(ring_.get()) : 0; }

SysResult<unsigned> IoUring::submit() {
  if (!ring_) {
    return fail(make_error(EBADF, "io_uring_enter"));
  }
  int rc = 0;
  for (int attempt = 0; attempt < kMaxEintrRetries; ++attempt) {
    rc = io_uring_submit(ring_.get());
    if (rc != -EINTR) {
      break;
    }
  }
  if (rc < 0) {
    return fail(make_error(-rc, "io_uring_enter(submit)"));
  }
  return static_cast<unsigned>(rc);
}

SysResult<unsigned> IoUring::submit_and_wait(unsigned wait_nr) {
  if (!ring_) {
    return fail(make_error(EBADF, "io_uring_enter"));
  }
  int rc = 0;
  for (int attempt = 0; attempt < kMaxEintrRetries; ++attempt) {
    rc = io_uring_submit_and_wait(ring_.get(), wait_nr);
    if (rc != -EINTR) {
      break;
    }
  }
  if (rc < 0) {
    return fail(make_error(-rc, "io_uring_enter(submit_and_wait)"));
  }
  return static_cast<unsigned>(rc);
}

SysResult<Completion> IoUring::wait() {
  if (!ring_) {
    return fail(make_error(EBADF, "io_uring_enter"));
  }
  io_uring_cqe* cqe = nullptr;
  int rc = 0;
  for (int attempt = 0; attempt < kMaxEintrRetries; ++attempt) {
    rc = io_uring_submit_and_wait(ring_.get(), 1);
    if (rc >= 0) {
      rc = io_uring_wait_cqe(ring_.get(), &cqe);
    }
    if (rc != -EINTR) {
      break;
    }
  }
  if (rc < 0) {
    return fail(make_error(-rc, "io_uring_wait_cqe"));
  }
  return copy_and_release(ring_.get(), cqe);
}

SysResult<std::optional<Completion>> IoUring::wait_for(std::chrono::nanoseconds timeout) {
  if (!ring_) {
    return fail(make_error(EBADF, "io_uring_enter"));
  }
  if (auto ready = peek()) {
    return ready;
  }
  auto ns = timeout.count() < 0 ? 0 : timeout.count();
  __kernel_timespec ts{};
  ts.tv_sec = ns / 1'000'000'000;
  ts.tv_nsec = ns % 1'000'000'000;
  // liburing 2.3's io_uring_submit_and_wait_timeout returns the submit count (and no CQE)
  // when the wait times out, so submit and wait separately; with IORING_FEAT_EXT_ARG the
  // wait still costs no SQE.
  if (sq_ready() > 0) {
    auto submitted = submit();
    if (!submitted) {
      return fail(submitted.error());
    }
  }
  io_uring_cqe* cqe = nullptr;
  int rc = 0;
  for (int attempt = 0; attempt < kMaxEintrRetries; ++attempt) {
    rc = io_uring_wait_cqe_timeout(ring_.get(), &cqe, &ts);
    if (rc != -EINTR) {
      break;
    }
  }
  if (rc == -ETIME || (rc >= 0 && cqe == nullptr)) {
    return std::optional<Completion>{};
  }
  if (rc < 0) {
    return fail(make_error(-rc, "io_uring_wait_cqe_timeout"));
  }
  return std::optional<Completion>(copy_and_release(ring_.get(), cqe));
}

std::optional<Completion> IoUring::peek() {
  if (!ring_) {
    return std::nullopt;
  }
  io_uring_cqe* cqe = nullptr;
  if (io_uring_peek_cqe(ring_.get(), &cqe) != 0 || cqe == nullptr) {
    return std::nullopt;
  }
  return copy_and_release(ring_.get(), cqe);
}

size_t IoUring::peek_batch(std::span<Completion> out) {
  if (!ring_ || out.empty()) {
    return 0;
  }
  constexpr unsigned kChunk = 32;
  io_uring_cqe* cqes[kChunk];
  size_t total = 0;
  while (total < out.size()) {
    unsigned want = static_cast<unsigned>(std::min<size_t>(kChunk, out.size() - total));
    unsigned got = io_uring_peek_batch_cqe(ring_.get(), cqes, want);
    for (unsigned i = 0; i < got; ++i) {
      out[total + i] = Completion{cqes[i]->user_data, cqes[i]->res, cqes[i]->flags};
    }
    io_uring_cq_advance(ring_.get(), got);
    total += got;
    if (got < want) {
      break;
    }
  }
  return total;
}

SysResult<void> IoUring::register_buffers(std::span<const iovec> buffers) {
  if (!ring_) {
    return fail(make_error(EBADF, "IORING_REGISTER_BUFFERS"));
  }
  int rc = io_uring_register_buffers(ring_.get(), buffers.data(),
                                     static_cast<unsigned>(buffers.size()));
  if (rc < 0) {
    return fail(make_error(-rc, "IORING_REGISTER_BUFFERS"));
  }
  return {};
}

SysResult<void> IoUring::unregister_buffers() {
  if (!ring_) {
    return fail(make_error(EBADF, "IORING_UNREGISTER_BUFFERS"));
  }
  int rc = io_uring_unregister_buffers(ring_.get());
  if (rc < 0) {
    return fail(make_error(-rc, "IORING_UNREGISTER_BUFFERS"));
  }
  return {};
}

SysResult<void> IoUring::register_files(std::span<const int> fds) {
  if (!ring_) {
    return fail(make_error(EBADF, "IORING_REGISTER_FILES"));
  }
  int rc = io_uring_register_files(ring_.get(), fds.data(), static_cast<unsigned>(fds.size()));
  if (rc < 0) {
    return fail(make_error(-rc, "IORING_REGISTER_FILES"));
  }
  return {};
}

}  // namespace ferry::kernel
