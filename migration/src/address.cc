#include "ferry/migration/address.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>

#include <fmt/format.h>

namespace ferry::migration {

namespace {

constexpr std::string_view kScheme = "tcp:";

AddressError parse_error(std::string_view input, std::string detail) {
  return AddressError{AddressErrc::Parse, std::string(input), std::move(detail)};
}

std::optional<kernel::SocketAddress> numeric_address(const std::string& host, uint16_t port) {
  kernel::SocketAddress out;
  in_addr v4{};
  in6_addr v6{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    // SAFETY: storage is large enough and suitably aligned for sockaddr_in.
    auto* sin = reinterpret_cast<sockaddr_in*>(&out.storage);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    sin->sin_addr = v4;
    out.length = sizeof(sockaddr_in);
    return out;
  }
  if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    // SAFETY: storage is large enough and suitably aligned for sockaddr_in6.
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    sin6->sin6_addr = v6;
    out.length = sizeof(sockaddr_in6);
    return out;
  }
  return std::nullopt;
}

StreamError socket_error(const kernel::SysError& err, std::string detail) {
  StreamErrc errc = err.errnum() == ETIMEDOUT ? StreamErrc::TimedOut : StreamErrc::Io;
  return StreamError{errc, err.code, fmt::format("{} ({})", detail, err.op)};
}

}  // namespace

std::string AddressError::message() const {
  if (errc == AddressErrc::Resolve) {
    return fmt::format("cannot resolve migration address '{}': {}", input, detail);
  }
  return fmt::format("bad migration address '{}': {} (expected tcp:HOST:PORT, e.g. "
                     "tcp:127.0.0.1:4444 or tcp:[::1]:4444)",
                     input, detail);
}

Result<Address, AddressError> Address::parse(std::string_view text) {
  if (text.substr(0, kScheme.size()) != kScheme) {
    return fail(parse_error(text, "missing 'tcp:' prefix"));
  }
  std::string_view rest = text.substr(kScheme.size());
  std::string_view host;
  std::string_view port_text;
  if (!rest.empty() && rest.front() == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) {
      return fail(parse_error(text, "'[' without a closing ']'"));
    }
    host = rest.substr(1, close - 1);
    if (close + 1 >= rest.size() || rest[close + 1] != ':') {
      return fail(parse_error(text, "missing ':PORT' after ']'"));
    }
    port_text = rest.substr(close + 2);
    in6_addr v6{};
    if (::inet_pton(AF_INET6, std::string(host).c_str(), &v6) != 1) {
      return fail(parse_error(text, fmt::format("'{}' is not an IPv6 address", host)));
    }
  } else {
    size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos) {
      return fail(parse_error(text, "missing port"));
    }
    host = rest.substr(0, colon);
    port_text = rest.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return fail(parse_error(text, "IPv6 addresses need brackets, as in tcp:[::1]:4444"));
    }
  }
  if (host.empty()) {
    return fail(parse_error(text, "missing host (use 0.0.0.0 to listen on every interface)"));
  }
  if (port_text.empty()) {
    return fail(parse_error(text, "missing port"));
  }
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535) {
    return fail(parse_error(text, fmt::format("port '{}' is not a number in 0..65535", port_text)));
  }
  return Address{std::string(host), static_cast<uint16_t>(port)};
}

Result<std::vector<kernel::SocketAddress>, AddressError> Address::resolve() const {
  if (auto numeric = numeric_address(host, port)) {
    return std::vector<kernel::SocketAddress>{*numeric};
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  addrinfo* list = nullptr;
  std::string service = std::to_string(port);
  int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &list);
  if (rc != 0) {
    return fail(AddressError{AddressErrc::Resolve, to_string(), ::gai_strerror(rc)});
  }
  std::vector<kernel::SocketAddress> v4;
  std::vector<kernel::SocketAddress> v6;
  for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    kernel::SocketAddress addr;
    std::memcpy(&addr.storage, ai->ai_addr, ai->ai_addrlen);
    addr.length = ai->ai_addrlen;
    (ai->ai_family == AF_INET ? v4 : v6).push_back(addr);
  }
  ::freeaddrinfo(list);
  v4.insert(v4.end(), v6.begin(), v6.end());
  if (v4.empty()) {
    return fail(AddressError{AddressErrc::Resolve, to_string(), "no IPv4/IPv6 address"});
  }
  return v4;
}

std::string Address::to_string() const {
  if (host.find(':') != std::string::npos) {
    return fmt::format("tcp:[{}]:{}", host, port);
  }
  return fmt::format("tcp:{}:{}", host, port);
}

StreamResult<Listener> Listener::bind(const Address& address, int backlog) {
  auto resolved = address.resolve();
  if (!resolved) {
    return fail(StreamError{StreamErrc::Io, {}, resolved.error().message()});
  }
  kernel::SysError last{};
  for (const auto& sockaddr : *resolved) {
    auto fd = kernel::tcp_listen(sockaddr, backlog);
    if (!fd) {
      last = fd.error();
      continue;
    }
    auto local = kernel::local_address(fd->get());
    if (!local) {
      return fail(socket_error(local.error(), "listen on " + address.to_string()));
    }
    Address bound{address.host, local->port()};
    return Listener(std::move(*fd), std::move(bound));
  }
  return fail(socket_error(last, "cannot listen on " + address.to_string()));
}

StreamResult<std::unique_ptr<TcpStream>> Listener::accept(std::chrono::milliseconds timeout,
                                                          const TcpOptions& options) {
  auto wait = timeout.count() > 0 ? timeout : std::chrono::milliseconds(-1);
  auto fd = kernel::tcp_accept(fd_.get(), wait, nullptr);
  if (!fd) {
    return fail(socket_error(fd.error(), "accept on " + bound_.to_string()));
  }
  if (!fd->has_value()) {
    return fail(StreamError{StreamErrc::TimedOut, {},
                            fmt::format("no connection to {} within {} ms", bound_.to_string(),
                                        timeout.count())});
  }
  return TcpStream::create(std::move(**fd), options);
}

StreamResult<std::unique_ptr<TcpStream>> connect(const Address& address,
                                                 std::chrono::milliseconds timeout,
                                                 const TcpOptions& options) {
  auto resolved = address.resolve();
  if (!resolved) {
    return fail(StreamError{StreamErrc::Io, {}, resolved.error().message()});
  }
  auto wait = timeout.count() > 0 ? timeout : std::chrono::milliseconds(-1);
  kernel::SysError last{};
  std::string tried;
  for (const auto& sockaddr : *resolved) {
    auto fd = kernel::tcp_connect(sockaddr, wait);
    if (fd) {
      return TcpStream::create(std::move(*fd), options);
    }
    last = fd.error();
    tried = sockaddr.to_string();
  }
  return fail(socket_error(last, fmt::format("cannot connect to {} ({})", address.to_string(),
                                             tried)));
}

}  // namespace ferry::migration
