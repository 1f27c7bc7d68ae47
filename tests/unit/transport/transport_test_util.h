// Helpers for the transport tests: a connected TcpStream pair on 127.0.0.1 and
// deterministic pseudo-random payloads.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <future>
#include <memory>
#include <utility>
#include <vector>

#include "ferry/migration/address.h"
#include "ferry/migration/tcp_stream.h"

namespace ferry::migration::test {

inline std::vector<uint8_t> pattern(size_t size, uint64_t seed) {
  std::vector<uint8_t> out(size);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < size; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out[i] = static_cast<uint8_t>(x);
  }
  return out;
}

inline Listener loopback_listener() {
  auto address = Address::parse("tcp:127.0.0.1:0");
  EXPECT_TRUE(address);
  auto listener = Listener::bind(*address);
  EXPECT_TRUE(listener) << listener.error().message();
  return std::move(*listener);
}

/// Connected (client, server) pair of TcpStreams over loopback.
inline std::pair<std::unique_ptr<TcpStream>, std::unique_ptr<TcpStream>> tcp_pair(
    const TcpOptions& options = {}) {
  Listener listener = loopback_listener();
  auto accepted = std::async(std::launch::async, [&] {
    return listener.accept(std::chrono::seconds(5), options);
  });
  auto client = connect(listener.address(), std::chrono::seconds(5), options);
  auto server = accepted.get();
  EXPECT_TRUE(client) << client.error().message();
  EXPECT_TRUE(server) << server.error().message();
  return {std::move(*client), std::move(*server)};
}

}  // namespace ferry::migration::test
