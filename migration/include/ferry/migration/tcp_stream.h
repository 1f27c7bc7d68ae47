// TcpStream: a ByteStream over one connected TCP socket, driven by io_uring. Writes are
// gathered in a send buffer and pushed by flush() (IORING_OP_SEND); big writes go out
// directly (optionally IORING_OP_SEND_ZC, zero-copy); reads refill a receive buffer
// in large IORING_OP_RECVs. A stream owns its ring, so it is used by one thread at a time;
// shutdown() alone may be called from any thread. See docs/transport.md.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ferry/kernel-interfaces/io_uring.h"
#include "ferry/kernel-interfaces/unique_fd.h"
#include "ferry/migration/byte_stream.h"

namespace ferry::migration {

/// Tuning of one TcpStream. Defaults come from bench/transport (docs/transport.md), among
/// the settings that keep plain write semantics (see zero_copy_threshold).
struct TcpOptions {
  size_t send_buffer = 1 << 20;  // write_all gathers small writes up to this many bytes
  size_t recv_buffer = 1 << 20;  // one recv asks for up to this many bytes
  // write_all calls of at least this many bytes flush the buffer and send straight from
  // the caller's memory (saves a copy; small writes are still gathered).
  size_t direct_send_threshold = 64 << 10;
  // Direct sends of at least this many bytes use IORING_OP_SEND_ZC (0 = never). It was
  // the fastest setting in every run and costs ~40% less CPU per byte on loopback, but
  // write_all then returns only once the kernel has released the pages: after the peer
  // ACKed them, and on loopback only after the peer *application read them*. Enable it
  // only where the peer is always reading (the source's page channels), never where both
  // sides may write big messages at once.
  size_t zero_copy_threshold = 0;
  // SO_SNDBUF/SO_RCVBUF request; 0 keeps the kernel's autotuning (which may grow the
  // receive buffer to tcp_rmem's max). A fixed 4 MiB was not consistently faster here.
  int socket_buffer = 0;
  std::chrono::milliseconds timeout{0};  // no-progress timeout (0 = wait forever)
};

/// Counters for benchmarks and reports.
struct TcpStreamStats {
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  uint64_t send_ops = 0;
  uint64_t zero_copy_sends = 0;
  uint64_t recv_ops = 0;
};

class TcpStream final : public ByteStream {
 public:
  /// Wraps a connected blocking socket: applies socket options and creates the ring.
  static StreamResult<std::unique_ptr<TcpStream>> create(kernel::UniqueFd socket,
                                                         const TcpOptions& options = {});
  ~TcpStream() override;
  TcpStream(const TcpStream&) = delete;
  TcpStream& operator=(const TcpStream&) = delete;

  StreamResult<void> write_all(std::span<const uint8_t> data) override;
  StreamResult<void> read_exact(std::span<uint8_t> out) override;
  StreamResult<void> flush() override;
  void set_timeout(std::chrono::milliseconds timeout) override { timeout_ = timeout; }
  void shutdown() override;
  std::string peer() const override { return peer_; }

  /// Returns at least one and at most out.size() bytes: buffered input first, else one
  /// recv straight into `out`. For decorators (TLS) that can consume partial input.
  StreamResult<size_t> read_some(std::span<uint8_t> out);
  /// Bytes already received and buffered but not yet returned by read_exact.
  size_t buffered_input() const { return rend_ - rpos_; }
  const TcpStreamStats& stats() const { return stats_; }
  int fd() const { return fd_.get(); }

 private:
  // One in-flight ring operation; its key in slab_ is the SQE's user_data.
  enum class OpKind : uint8_t { None, Send, SendZc, Recv, Cancel };
  struct Op {
    OpKind kind = OpKind::None;
  };

  TcpStream(kernel::UniqueFd fd, kernel::IoUring ring, const TcpOptions& options,
            std::string peer);
  StreamResult<void> send_span(std::span<const uint8_t> data, bool from_send_buffer);
  StreamResult<size_t> send_once(std::span<const uint8_t> data, bool from_send_buffer);
  StreamResult<size_t> recv_once(std::span<uint8_t> out, int flags);
  int wait_all() const;
  StreamResult<int32_t> run_op(kernel::SlabKey key, const char* what);
  StreamResult<int32_t> await_op(kernel::SlabKey key, const char* what);
  StreamResult<void> reap_zero_copy_notification();
  StreamError error_from(int32_t res, const char* what) const;
  StreamError aborted_error() const;

  // Member order matters: the ring (declared after the buffers) is destroyed first, so
  // the kernel never holds a buffer that is already freed.
  kernel::UniqueFd fd_;
  TcpOptions options_;
  std::chrono::milliseconds timeout_;
  std::string peer_;
  std::vector<uint8_t> send_buf_;
  size_t send_len_ = 0;
  std::vector<uint8_t> recv_buf_;
  size_t rpos_ = 0;
  size_t rend_ = 0;
  std::optional<StreamError> broken_;  // set when the stream cannot be used any more
  std::atomic<bool> aborted_{false};
  TcpStreamStats stats_;
  kernel::OpSlab<Op> slab_{8};
  kernel::IoUring ring_;
};

}  // namespace ferry::migration
