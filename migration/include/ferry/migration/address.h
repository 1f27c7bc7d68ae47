// Migration endpoints: `tcp:HOST:PORT` parsing (IPv4, [IPv6], host names such as
// localhost), a Listener for the destination and connect() for the source. Both produce
// TcpStreams; sockets are SOCK_CLOEXEC with TCP_NODELAY and large socket buffers.
// docs/transport.md describes the address syntax.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/kernel-interfaces/result.h"
#include "ferry/kernel-interfaces/socket.h"
#include "ferry/kernel-interfaces/unique_fd.h"
#include "ferry/migration/byte_stream.h"
#include "ferry/migration/tcp_stream.h"

namespace ferry::migration {

enum class AddressErrc {
  Invalid = 0,
  Parse,    // the text is not tcp:HOST:PORT
  Resolve,  // HOST did not resolve to an IPv4/IPv6 address
};

struct AddressError {
  AddressErrc errc = AddressErrc::Invalid;
  std::string input;   // the text as given
  std::string detail;  // what is wrong with it

  /// "bad migration address 'tcp:foo': missing port (expected tcp:HOST:PORT)".
  std::string message() const;
};

/// A parsed `tcp:HOST:PORT`. HOST is kept as written (without IPv6 brackets).
struct Address {
  std::string host;
  uint16_t port = 0;  // 0 only makes sense for listening (the kernel picks a port)

  /// Parses "tcp:127.0.0.1:4444", "tcp:[::1]:4444", "tcp:localhost:4444".
  static Result<Address, AddressError> parse(std::string_view text);
  /// Resolves HOST (numeric first, then getaddrinfo) to socket addresses, IPv4 first.
  Result<std::vector<kernel::SocketAddress>, AddressError> resolve() const;
  /// Back to the "tcp:HOST:PORT" form (brackets added for IPv6).
  std::string to_string() const;
};

/// A bound, listening TCP socket on the destination.
class Listener {
 public:
  Listener(Listener&&) noexcept = default;
  Listener& operator=(Listener&&) noexcept = default;

  /// Binds and listens on `address` (port 0 picks a free port; see address()).
  static StreamResult<Listener> bind(const Address& address, int backlog = 64);
  /// The bound address, with the real port ("tcp:127.0.0.1:38211").
  const Address& address() const { return bound_; }
  /// Waits up to `timeout` (0 = forever) for one connection; TimedOut when none came.
  StreamResult<std::unique_ptr<TcpStream>> accept(std::chrono::milliseconds timeout,
                                                  const TcpOptions& options = {});
  int fd() const { return fd_.get(); }

 private:
  Listener(kernel::UniqueFd fd, Address bound) : fd_(std::move(fd)), bound_(std::move(bound)) {}
  kernel::UniqueFd fd_;
  Address bound_;
};

/// Connects to `address` (each resolved address in turn) within `timeout` (0 = the
/// kernel's own connect timeout). Errors say which address refused and why.
StreamResult<std::unique_ptr<TcpStream>> connect(const Address& address,
                                                 std::chrono::milliseconds timeout,
                                                 const TcpOptions& options = {});

}  // namespace ferry::migration
