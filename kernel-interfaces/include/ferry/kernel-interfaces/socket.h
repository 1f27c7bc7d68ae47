// TCP socket syscalls for the migration transport (socket(7), tcp(7)): every socket is
// SOCK_CLOEXEC, connect and accept take a timeout (poll on a non-blocking fd, then back to
// blocking for io_uring), and errors name the syscall. Addresses are resolved above this
// layer; here they are plain sockaddr_storage values.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "ferry/kernel-interfaces/unique_fd.h"

namespace ferry::kernel {

/// A socket address with its length (IPv4 or IPv6).
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  int family() const { return storage.ss_family; }
  // SAFETY: sockaddr_storage is layout-compatible with every sockaddr_* type.
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  /// "127.0.0.1:4444" or "[::1]:4444".
  std::string to_string() const;
  /// Port in host byte order.
  uint16_t port() const;
};

/// Socket options every migration connection gets: TCP_NODELAY (records are flushed
/// explicitly, Nagle would only add latency) and, when `buffer_bytes` > 0, SO_SNDBUF and
/// SO_RCVBUF of that size (the kernel doubles it and caps it at wmem_max/rmem_max).
struct StreamSocketOptions {
  int buffer_bytes = 0;  // 0 keeps the kernel's autotuning
  bool no_delay = true;
};

/// socket(family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP).
SysResult<UniqueFd> tcp_socket(int family);
/// Applies `options` to a connected or listening socket.
SysResult<void> set_stream_options(int fd, const StreamSocketOptions& options);
/// SO_REUSEADDR, bind and listen in one go.
SysResult<UniqueFd> tcp_listen(const SocketAddress& address, int backlog);
/// Waits up to `timeout` (negative = forever) for a connection; nullopt on timeout. The
/// returned socket is blocking and SOCK_CLOEXEC; `peer` receives the remote address.
SysResult<std::optional<UniqueFd>> tcp_accept(int listen_fd, std::chrono::milliseconds timeout,
                                              SocketAddress* peer);
/// Connects with a timeout (negative = the kernel's own, ~2 min): ETIMEDOUT when it
/// expires, ECONNREFUSED etc. as reported by SO_ERROR. Returns a blocking socket.
SysResult<UniqueFd> tcp_connect(const SocketAddress& address, std::chrono::milliseconds timeout);
/// getsockname / getpeername.
SysResult<SocketAddress> local_address(int fd);
SysResult<SocketAddress> remote_address(int fd);
/// shutdown(2); ENOTCONN (already gone) is not an error.
SysResult<void> shutdown_socket(int fd, int how);

}  // namespace ferry::kernel
