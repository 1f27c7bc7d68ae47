// The machine's own limits, measured without any Ferry code so other benchmarks can print
// them next to their figures in the same run: memcpy bandwidth (64 MiB blocks, beyond the
// caches) and single-stream loopback TCP throughput (blocking send/recv, 1 MiB calls,
// kernel-autotuned buffers, TCP_NODELAY). Header-only; plain POSIX sockets.
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

namespace ferry::bench {

/// Incompressible bytes (xorshift64).
inline std::vector<uint8_t> random_bytes(size_t size) {
  std::vector<uint8_t> out(size);
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (size_t i = 0; i < size; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(out.data() + i, &x, std::min<size_t>(8, size - i));
  }
  return out;
}

/// Bytes per second copied by memcpy, at least `bytes` in 64 MiB blocks.
inline double memcpy_bytes_per_s(size_t bytes) {
  const size_t block = 64 << 20;
  std::vector<uint8_t> src = random_bytes(block), dst(block);
  const size_t rounds = std::max<size_t>(1, bytes / block);
  std::memcpy(dst.data(), src.data(), block);  // fault the pages in first
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < rounds; ++i) {
    std::memcpy(dst.data(), src.data(), block);
    asm volatile("" : : "r"(dst.data()) : "memory");
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return static_cast<double>(rounds * block) / s;
}

/// Bytes per second over one loopback TCP connection (0 if the sockets cannot be set up).
inline double loopback_tcp_bytes_per_s(size_t bytes) {
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  // SAFETY: addr is a sockaddr_in of the length passed.
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listener, 1) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(listener);
    return 0;
  }
  int out = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(out, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(out);
    close(listener);
    return 0;
  }
  int in = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  close(listener);
  const int one = 1;
  setsockopt(out, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(in, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  const std::vector<uint8_t> chunk = random_bytes(1 << 20);
  const auto t0 = std::chrono::steady_clock::now();
  std::thread sender([&] {
    size_t left = bytes;
    while (left > 0) {
      ssize_t sent = ::send(out, chunk.data(), std::min(left, chunk.size()), MSG_NOSIGNAL);
      if (sent <= 0) {
        return;
      }
      left -= static_cast<size_t>(sent);
    }
  });
  std::vector<uint8_t> buf(chunk.size());
  size_t left = bytes;
  while (left > 0) {
    ssize_t got = ::recv(in, buf.data(), std::min(left, buf.size()), 0);
    if (got <= 0) {
      break;
    }
    left -= static_cast<size_t>(got);
  }
  sender.join();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  close(out);
  close(in);
  return left == 0 ? static_cast<double>(bytes) / s : 0;
}

/// Median of `trials` calls of `measure` (the host is shared; one sample is noisy).
template <typename F>
double median_of(int trials, F measure) {
  std::vector<double> v;
  for (int i = 0; i < trials; ++i) {
    v.push_back(measure());
  }
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace ferry::bench
