#include "ferry/kernel-interfaces/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <unistd.h>

#include <fmt/format.h>

namespace ferry::kernel {

namespace {

SysResult<void> set_int_option(int fd, int level, int name, int value, const char* op) {
  if (::setsockopt(fd, level, name, &value, sizeof(value)) != 0) {
    return fail(last_error(op));
  }
  return {};
}

SysResult<void> set_nonblocking(int fd, bool on) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) {
    return fail(last_error("fcntl(F_GETFL)"));
  }
  flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (::fcntl(fd, F_SETFL, flags) != 0) {
    return fail(last_error("fcntl(F_SETFL)"));
  }
  return {};
}

// Polls one fd for `events`, retrying EINTR with the remaining time. Returns false on
// timeout.
SysResult<bool> poll_one(int fd, short events, std::chrono::milliseconds timeout,
                         const char* op) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int wait_ms = -1;
    if (timeout.count() >= 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      wait_ms = static_cast<int>(std::max<int64_t>(0, left.count()));
    }
    pollfd pfd{fd, events, 0};
    int rc = ::poll(&pfd, 1, wait_ms);
    if (rc > 0) {
      return true;
    }
    if (rc == 0) {
      return false;
    }
    if (errno != EINTR) {
      return fail(last_error(op));
    }
  }
}

}  // namespace

std::string SocketAddress::to_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  if (family() == AF_INET6) {
    // SAFETY: family() says the storage holds a sockaddr_in6.
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
    return fmt::format("[{}]:{}", text, port());
  }
  if (family() == AF_INET) {
    // SAFETY: family() says the storage holds a sockaddr_in.
    const auto* in4 = reinterpret_cast<const sockaddr_in*>(&storage);
    ::inet_ntop(AF_INET, &in4->sin_addr, text, sizeof(text));
    return fmt::format("{}:{}", text, port());
  }
  return "<unknown address family>";
}

uint16_t SocketAddress::port() const {
  if (family() == AF_INET6) {
    // SAFETY: family() says the storage holds a sockaddr_in6.
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  }
  if (family() == AF_INET) {
    // SAFETY: family() says the storage holds a sockaddr_in.
    return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  }
  return 0;
}

SysResult<UniqueFd> tcp_socket(int family) {
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) {
    return fail(last_error("socket"));
  }
  return UniqueFd(fd);
}

SysResult<void> set_stream_options(int fd, const StreamSocketOptions& options) {
  if (options.no_delay) {
    auto r = set_int_option(fd, IPPROTO_TCP, TCP_NODELAY, 1, "setsockopt(TCP_NODELAY)");
    if (!r) {
      return r;
    }
  }
  if (options.buffer_bytes > 0) {
    auto r = set_int_option(fd, SOL_SOCKET, SO_SNDBUF, options.buffer_bytes,
                            "setsockopt(SO_SNDBUF)");
    if (!r) {
      return r;
    }
    return set_int_option(fd, SOL_SOCKET, SO_RCVBUF, options.buffer_bytes,
                          "setsockopt(SO_RCVBUF)");
  }
  return {};
}

SysResult<UniqueFd> tcp_listen(const SocketAddress& address, int backlog) {
  auto fd = tcp_socket(address.family());
  if (!fd) {
    return fd;
  }
  auto reuse = set_int_option(fd->get(), SOL_SOCKET, SO_REUSEADDR, 1, "setsockopt(SO_REUSEADDR)");
  if (!reuse) {
    return fail(reuse.error());
  }
  if (::bind(fd->get(), address.get(), address.length) != 0) {
    return fail(last_error("bind"));
  }
  if (::listen(fd->get(), backlog) != 0) {
    return fail(last_error("listen"));
  }
  return fd;
}

SysResult<std::optional<UniqueFd>> tcp_accept(int listen_fd, std::chrono::milliseconds timeout,
                                              SocketAddress* peer) {
  for (;;) {
    auto ready = poll_one(listen_fd, POLLIN, timeout, "poll(accept)");
    if (!ready) {
      return fail(ready.error());
    }
    if (!*ready) {
      return std::optional<UniqueFd>{};
    }
    SocketAddress addr;
    addr.length = sizeof(addr.storage);
    // SAFETY: storage is large enough for any address family; length tells the kernel.
    int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&addr.storage), &addr.length,
                       SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      // The connection may have gone between poll and accept; poll again.
      if (errno == EAGAIN || errno == ECONNABORTED || errno == EINTR) {
        continue;
      }
      return fail(last_error("accept4"));
    }
    UniqueFd out(fd);
    // Accepted non-blocking so a race above never blocks; io_uring wants blocking fds
    // (a non-blocking socket makes its recv/send return -EAGAIN instead of waiting).
    auto blocking = set_nonblocking(fd, false);
    if (!blocking) {
      return fail(blocking.error());
    }
    if (peer != nullptr) {
      *peer = addr;
    }
    return std::optional<UniqueFd>(std::move(out));
  }
}

SysResult<UniqueFd> tcp_connect(const SocketAddress& address, std::chrono::milliseconds timeout) {
  auto fd = tcp_socket(address.family());
  if (!fd) {
    return fd;
  }
  auto nb = set_nonblocking(fd->get(), true);
  if (!nb) {
    return fail(nb.error());
  }
  if (::connect(fd->get(), address.get(), address.length) != 0) {
    if (errno != EINPROGRESS) {
      return fail(last_error("connect"));
    }
    auto ready = poll_one(fd->get(), POLLOUT, timeout, "poll(connect)");
    if (!ready) {
      return fail(ready.error());
    }
    if (!*ready) {
      return fail(make_error(ETIMEDOUT, "connect"));
    }
    int so_error = 0;
    socklen_t len = sizeof(so_error);
    if (::getsockopt(fd->get(), SOL_SOCKET, SO_ERROR, &so_error, &len) != 0) {
      return fail(last_error("getsockopt(SO_ERROR)"));
    }
    if (so_error != 0) {
      return fail(make_error(so_error, "connect"));
    }
  }
  nb = set_nonblocking(fd->get(), false);
  if (!nb) {
    return fail(nb.error());
  }
  return fd;
}

SysResult<SocketAddress> local_address(int fd) {
  SocketAddress addr;
  addr.length = sizeof(addr.storage);
  // SAFETY: storage is large enough for any address family.
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr.storage), &addr.length) != 0) {
    return fail(last_error("getsockname"));
  }
  return addr;
}

SysResult<SocketAddress> remote_address(int fd) {
  SocketAddress addr;
  addr.length = sizeof(addr.storage);
  // SAFETY: storage is large enough for any address family.
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr.storage), &addr.length) != 0) {
    return fail(last_error("getpeername"));
  }
  return addr;
}

SysResult<void> shutdown_socket(int fd, int how) {
  if (::shutdown(fd, how) != 0 && errno != ENOTCONN) {
    return fail(last_error("shutdown"));
  }
  return {};
}

}  // namespace ferry::kernel
