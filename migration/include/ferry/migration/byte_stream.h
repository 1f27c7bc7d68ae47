// ByteStream: the one interface every migration channel implements (plain TCP driven by
// io_uring, TLS layered over another ByteStream, and the in-memory pair used by unit
// tests). The sender and receiver state machines see only this interface.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <system_error>

#include "ferry/kernel-interfaces/result.h"

namespace ferry::migration {

enum class StreamErrc {
  Invalid = 0,
  Closed,    // the peer closed (or EOF) before the requested bytes arrived
  TimedOut,  // no progress for longer than the stream's timeout
  Io,        // a socket/io_uring error; `code` holds the errno
  Tls,       // handshake, certificate or record-layer failure
  Aborted,   // shutdown() was called locally
};

struct StreamError {
  StreamErrc errc = StreamErrc::Invalid;
  std::error_code code;  // errno where one exists
  std::string detail;    // e.g. "peer certificate not signed by the configured CA"

  /// One line: "stream closed by peer: <detail>".
  std::string message() const;
};

template <class T>
using StreamResult = Result<T, StreamError>;

class ByteStream {
 public:
  virtual ~ByteStream() = default;

  /// Sends all of `data` or fails; on success the bytes are queued or sent.
  virtual StreamResult<void> write_all(std::span<const uint8_t> data) = 0;
  /// Receives exactly `out.size()` bytes or fails (Closed if EOF arrives first).
  virtual StreamResult<void> read_exact(std::span<uint8_t> out) = 0;
  /// Pushes any buffered bytes to the peer.
  virtual StreamResult<void> flush() = 0;
  /// Fails reads/writes that make no progress for `timeout` (0 = wait forever).
  virtual void set_timeout(std::chrono::milliseconds timeout) = 0;
  /// Aborts both directions; pending and future calls fail promptly. Thread-safe.
  virtual void shutdown() = 0;
  /// Human-readable peer description ("tcp:127.0.0.1:4444", "tls(tcp:...)").
  virtual std::string peer() const = 0;
};

}  // namespace ferry::migration
