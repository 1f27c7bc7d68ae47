#include "ferry/migration/tcp_stream.h"

#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "ferry/kernel-interfaces/socket.h"

namespace ferry::migration {

namespace {

constexpr unsigned kRingEntries = 8;
// Reads of at least this much skip the receive buffer (one copy fewer).
constexpr size_t kDirectRecv = 64 << 10;

StreamError io_error(const kernel::SysError& err, const std::string& context) {
  return StreamError{StreamErrc::Io, err.code, fmt::format("{}: {}", context, err.op)};
}

}  // namespace

StreamResult<std::unique_ptr<TcpStream>> TcpStream::create(kernel::UniqueFd socket,
                                                           const TcpOptions& options) {
  auto remote = kernel::remote_address(socket.get());
  if (!remote) {
    return fail(io_error(remote.error(), "TCP stream"));
  }
  std::string peer = "tcp:" + remote->to_string();
  auto opts = kernel::set_stream_options(
      socket.get(), kernel::StreamSocketOptions{.buffer_bytes = options.socket_buffer});
  if (!opts) {
    return fail(io_error(opts.error(), peer));
  }
  std::vector<int> ops = {IORING_OP_SEND, IORING_OP_RECV, IORING_OP_ASYNC_CANCEL};
  TcpOptions effective = options;
  if (options.zero_copy_threshold > 0) {
    ops.push_back(IORING_OP_SEND_ZC);
  }
  auto ring = kernel::IoUring::create(kRingEntries, ops);
  if (!ring && options.zero_copy_threshold > 0 &&
      ring.error().code == std::errc::operation_not_supported) {
    // Kernels before 6.0 lack SEND_ZC: zero copy is an optimisation, so fall back to
    // plain sends rather than failing the channel.
    ops.pop_back();
    effective.zero_copy_threshold = 0;
    ring = kernel::IoUring::create(kRingEntries, ops);
  }
  if (!ring) {
    return fail(io_error(ring.error(), peer));
  }
  return std::unique_ptr<TcpStream>(
      new TcpStream(std::move(socket), std::move(*ring), effective, std::move(peer)));
}

TcpStream::TcpStream(kernel::UniqueFd fd, kernel::IoUring ring, const TcpOptions& options,
                     std::string peer)
    : fd_(std::move(fd)),
      options_(options),
      timeout_(options.timeout),
      peer_(std::move(peer)),
      send_buf_(options.send_buffer),
      recv_buf_(std::max<size_t>(options.recv_buffer, 4096)),
      ring_(std::move(ring)) {}

TcpStream::~TcpStream() {
  // Every op is reaped before the call that issued it returns, so nothing is in flight;
  // the ring is closed first (member order) and the socket last.
}

void TcpStream::shutdown() {
  aborted_.store(true, std::memory_order_release);
  // shutdown(2) wakes a recv or send that io_uring has parked on the socket: the recv
  // completes with 0 and the send with -EPIPE, which the owner then reports as Aborted.
  (void)kernel::shutdown_socket(fd_.get(), SHUT_RDWR);
}

StreamError TcpStream::aborted_error() const {
  return StreamError{StreamErrc::Aborted, {}, fmt::format("{}: shut down locally", peer_)};
}

StreamError TcpStream::error_from(int32_t res, const char* what) const {
  if (aborted_.load(std::memory_order_acquire)) {
    return aborted_error();
  }
  std::error_code code(-res, std::generic_category());
  if (res == -EPIPE || res == -ECONNRESET) {
    return StreamError{StreamErrc::Closed, code,
                       fmt::format("{} {}: the peer closed the connection", what, peer_)};
  }
  return StreamError{StreamErrc::Io, code, fmt::format("{} {}", what, peer_)};
}

StreamResult<int32_t> TcpStream::await_op(kernel::SlabKey key, const char* what) {
  std::optional<int32_t> result;
  bool cancelled = false;
  for (;;) {
    kernel::SysResult<std::optional<kernel::Completion>> got;
    // After a cancel, wait untimed for the op's own completion (the cancel makes it
    // prompt), but a SEND_ZC notification wait is timed again.
    if (timeout_.count() > 0 && (!cancelled || result)) {
      got = ring_.wait_for(timeout_);
    } else {
      got = ring_.wait().transform([](kernel::Completion c) { return std::optional(c); });
    }
    if (!got) {
      return fail(io_error(got.error(), peer_));
    }
    if (!got->has_value() && result) {
      // SEND_ZC went out but the kernel still references the caller's pages (on loopback
      // until the peer reads them). Returning success would let the caller overwrite
      // bytes in flight, so the stream is declared broken; the pages stay pinned, never
      // freed under the kernel, and the notification is reaped by a later wait or ring exit.
      broken_ = StreamError{
          StreamErrc::TimedOut, {},
          fmt::format("{} {}: zero-copy send not released for {} ms (peer not reading)", what,
                      peer_, timeout_.count())};
      (void)kernel::shutdown_socket(fd_.get(), SHUT_RDWR);
      return fail(*broken_);
    }
    if (!got->has_value()) {
      // No completion within the timeout: cancel the op and wait for it to come back, so
      // the kernel never writes into a buffer after we return.
      auto sqe = ring_.get_sqe();
      auto cancel_key = slab_.insert(Op{OpKind::Cancel});
      if (!sqe || !cancel_key) {
        return fail(StreamError{StreamErrc::Io, {}, "io_uring: no slot for a cancel"});
      }
      io_uring_prep_cancel64(*sqe, key, 0);
      io_uring_sqe_set_data64(*sqe, *cancel_key);
      cancelled = true;
      continue;
    }
    const kernel::Completion& c = **got;
    if (c.user_data != key) {
      slab_.take(c.user_data);  // a cancel's own completion
      continue;
    }
    if (c.notification()) {
      break;  // SEND_ZC: the kernel no longer references the buffer
    }
    result = c.res;
    if (!c.more()) {
      break;
    }
  }
  slab_.take(key);
  if (cancelled && result && (*result == -ECANCELED || *result == -EINTR)) {
    return fail(StreamError{
        StreamErrc::TimedOut, {},
        fmt::format("{} {}: no progress for {} ms", what, peer_, timeout_.count())});
  }
  return *result;
}

StreamResult<size_t> TcpStream::send_once(std::span<const uint8_t> data, bool from_send_buffer) {
  auto sqe = ring_.get_sqe();
  // Zero-copy only for sends straight from the caller's memory: from our own send buffer
  // it would still cost the copy into that buffer, plus a wait for the notification
  // before the buffer can be refilled (measured slower in bench/transport).
  auto zc = !from_send_buffer && options_.zero_copy_threshold > 0 &&
            data.size() >= options_.zero_copy_threshold;
  auto key = slab_.insert(Op{zc ? OpKind::SendZc : OpKind::Send});
  if (!sqe || !key) {
    return fail(StreamError{StreamErrc::Io, {}, "io_uring: no free submission slot"});
  }
  // MSG_NOSIGNAL: a closed peer is an -EPIPE completion, never a SIGPIPE.
  if (zc) {
    io_uring_prep_send_zc(*sqe, fd_.get(), data.data(), data.size(), MSG_NOSIGNAL | wait_all(),
                          0);
  } else {
    io_uring_prep_send(*sqe, fd_.get(), data.data(), data.size(), MSG_NOSIGNAL | wait_all());
  }
  io_uring_sqe_set_data64(*sqe, *key);
  auto res = await_op(*key, "send to");
  if (!res) {
    return fail(res.error());
  }
  if (zc && (*res == -EOPNOTSUPP || *res == -EINVAL) && stats_.zero_copy_sends == 0) {
    // The ring knows SEND_ZC but this socket/kernel refuses it: nothing was sent, so
    // plain sends take over for the rest of the stream's life.
    options_.zero_copy_threshold = 0;
    return send_once(data, from_send_buffer);
  }
  if (*res < 0) {
    return fail(error_from(*res, "send to"));
  }
  ++stats_.send_ops;
  stats_.zero_copy_sends += zc ? 1 : 0;
  stats_.bytes_sent += static_cast<uint64_t>(*res);
  return static_cast<size_t>(*res);
}

StreamResult<void> TcpStream::send_span(std::span<const uint8_t> data, bool from_send_buffer) {
  while (!data.empty()) {
    if (aborted_.load(std::memory_order_acquire)) {
      return fail(aborted_error());
    }
    // No MSG_WAITALL: every completion is progress, so the timeout measures stalls, not
    // the length of a big send.
    auto sent = send_once(data, from_send_buffer);
    if (!sent) {
      return fail(sent.error());
    }
    data = data.subspan(*sent);
  }
  return {};
}

StreamResult<void> TcpStream::write_all(std::span<const uint8_t> data) {
  if (aborted_.load(std::memory_order_acquire)) {
    return fail(aborted_error());
  }
  if (broken_) {
    return fail(*broken_);
  }
  const size_t cap = send_buf_.size();
  const bool big = data.size() >= options_.direct_send_threshold || data.size() > cap;
  if (!big && send_len_ + data.size() <= cap) {
    std::memcpy(send_buf_.data() + send_len_, data.data(), data.size());
    send_len_ += data.size();
    return {};
  }
  auto flushed = flush();
  if (!flushed) {
    return flushed;
  }
  if (big) {
    // Big writes go straight from the caller's memory: one copy fewer.
    return send_span(data, false);
  }
  std::memcpy(send_buf_.data(), data.data(), data.size());
  send_len_ = data.size();
  return {};
}

StreamResult<void> TcpStream::flush() {
  if (broken_) {
    return fail(*broken_);
  }
  if (send_len_ == 0) {
    return aborted_.load(std::memory_order_acquire) ? fail(aborted_error())
                                                    : StreamResult<void>{};
  }
  auto sent = send_span({send_buf_.data(), send_len_}, true);
  send_len_ = 0;
  return sent;
}

int TcpStream::wait_all() const {
  // Without a timeout, MSG_WAITALL lets io_uring finish the whole transfer in one op
  // (it retries short sends/receives itself). With a timeout every completion must be a
  // progress report, so the op returns whatever moved.
  return timeout_.count() == 0 ? MSG_WAITALL : 0;
}

StreamResult<size_t> TcpStream::recv_once(std::span<uint8_t> out, int flags) {
  if (aborted_.load(std::memory_order_acquire)) {
    return fail(aborted_error());
  }
  if (broken_) {
    return fail(*broken_);
  }
  auto sqe = ring_.get_sqe();
  auto key = slab_.insert(Op{OpKind::Recv});
  if (!sqe || !key) {
    return fail(StreamError{StreamErrc::Io, {}, "io_uring: no free submission slot"});
  }
  io_uring_prep_recv(*sqe, fd_.get(), out.data(), out.size(), flags);
  io_uring_sqe_set_data64(*sqe, *key);
  auto res = await_op(*key, "receive from");
  if (!res) {
    return fail(res.error());
  }
  if (*res < 0) {
    return fail(error_from(*res, "receive from"));
  }
  if (*res == 0) {
    if (aborted_.load(std::memory_order_acquire)) {
      return fail(aborted_error());
    }
    return fail(StreamError{
        StreamErrc::Closed, {},
        fmt::format("{} closed the connection (EOF after {} bytes received)", peer_,
                    stats_.bytes_received)});
  }
  ++stats_.recv_ops;
  stats_.bytes_received += static_cast<uint64_t>(*res);
  return static_cast<size_t>(*res);
}

StreamResult<void> TcpStream::read_exact(std::span<uint8_t> out) {
  size_t have = std::min(out.size(), rend_ - rpos_);
  std::memcpy(out.data(), recv_buf_.data() + rpos_, have);
  rpos_ += have;
  out = out.subspan(have);
  while (!out.empty()) {
    if (out.size() >= kDirectRecv) {
      // Large reads land directly in the caller's memory.
      auto got = recv_once(out, wait_all());
      if (!got) {
        return fail(got.error());
      }
      out = out.subspan(*got);
      continue;
    }
    auto got = recv_once(recv_buf_, 0);
    if (!got) {
      return fail(got.error());
    }
    size_t take = std::min(out.size(), *got);
    std::memcpy(out.data(), recv_buf_.data(), take);
    rpos_ = take;
    rend_ = *got;
    out = out.subspan(take);
  }
  if (rpos_ == rend_) {
    rpos_ = rend_ = 0;
  }
  return {};
}

}  // namespace ferry::migration

namespace ferry::migration {

StreamResult<size_t> TcpStream::read_some(std::span<uint8_t> out) {
  if (out.empty()) {
    return size_t{0};
  }
  if (rpos_ < rend_) {
    size_t take = std::min(out.size(), rend_ - rpos_);
    std::memcpy(out.data(), recv_buf_.data() + rpos_, take);
    rpos_ += take;
    if (rpos_ == rend_) {
      rpos_ = rend_ = 0;
    }
    return take;
  }
  return recv_once(out, 0);
}

}  // namespace ferry::migration
