// In-memory ByteStream pair for unit tests: two endpoints joined by two bounded byte
// pipes, with fault injection per direction (cut the connection after N bytes, flip the
// byte at offset K, add latency per write, cap bandwidth). Behaves like a TCP connection:
// a cut or a peer's shutdown/destruction makes the other side see Closed after draining.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ferry/migration/byte_stream.h"

namespace ferry::testing {

struct PipeFaults {
  uint64_t cut_after_bytes = std::numeric_limits<uint64_t>::max();
  uint64_t corrupt_byte = std::numeric_limits<uint64_t>::max();
  std::chrono::microseconds write_delay{0};
  uint64_t bytes_per_s = 0;  // 0 = unlimited
  size_t capacity = 4u << 20;
  /// If set, counts every byte accepted in this direction (outlives the streams).
  std::shared_ptr<std::atomic<uint64_t>> counter;
  /// If set, receives a copy of every byte accepted in this direction.
  std::shared_ptr<std::vector<uint8_t>> capture;
};

struct Connection;

class MemStream final : public migration::ByteStream {
 public:
  MemStream(std::shared_ptr<Connection> conn, int side, std::string name);
  ~MemStream() override;
  migration::StreamResult<void> write_all(std::span<const uint8_t> data) override;
  migration::StreamResult<void> read_exact(std::span<uint8_t> out) override;
  migration::StreamResult<void> flush() override { return {}; }
  void set_timeout(std::chrono::milliseconds timeout) override { timeout_ = timeout; }
  void shutdown() override;
  std::string peer() const override { return name_; }

  /// Cuts the connection now (both directions), like a pulled cable.
  void cut();
  /// Bytes this endpoint has written so far.
  uint64_t bytes_written() const;

 private:
  std::shared_ptr<Connection> conn_;
  int side_;
  std::string name_;
  std::chrono::milliseconds timeout_{0};
};

/// A connected pair: first = "source" end, second = "destination" end.
std::pair<std::unique_ptr<MemStream>, std::unique_ptr<MemStream>> make_stream_pair(
    PipeFaults source_to_dest = {}, PipeFaults dest_to_source = {},
    const std::string& name = "mem");

}  // namespace ferry::testing
