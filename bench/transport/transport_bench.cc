// transport_bench: how fast the migration transport moves bytes on this machine, next to
// the machine's own limits (memcpy bandwidth, plain-socket loopback TCP). Every figure is
// printed, none is asserted. Run: build/bench/transport/transport_bench [--bytes N] [--channels N]
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <future>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "ferry/migration/address.h"
#include "ferry/migration/channel.h"
#include "ferry/migration/tcp_stream.h"
#include "ferry/migration/tls_config.h"

namespace {

using namespace ferry::migration;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

struct Figure {
  double gbps = 0;      // GB/s (1e9 bytes per second)
  double cpu_s = 0;     // process CPU seconds (user + system) over the run
  double wall_s = 0;
};

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto tv = [](timeval t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

Figure measure(size_t bytes, const std::function<void()>& run) {
  double cpu0 = cpu_seconds();
  auto t0 = Clock::now();
  run();
  double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  return Figure{static_cast<double>(bytes) / wall / 1e9, cpu_seconds() - cpu0, wall};
}

// The machine is shared, so each row is the median of several trials, taken separately
// for wall-clock throughput and for CPU cost.
int g_trials = 5;
Figure median_of(const std::function<Figure()>& trial) {
  std::vector<Figure> runs;
  for (int i = 0; i < g_trials; ++i) {
    runs.push_back(trial());
  }
  auto mid = runs.begin() + static_cast<std::ptrdiff_t>(runs.size() / 2);
  std::nth_element(runs.begin(), mid, runs.end(),
                   [](const Figure& a, const Figure& b) { return a.gbps < b.gbps; });
  Figure out = *mid;
  std::nth_element(runs.begin(), mid, runs.end(),
                   [](const Figure& a, const Figure& b) { return a.cpu_s < b.cpu_s; });
  out.cpu_s = mid->cpu_s;
  return out;
}

std::vector<uint8_t> random_bytes(size_t size) {
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

Figure memcpy_bandwidth(size_t bytes) {
  const size_t block = 64 << 20;  // well beyond the caches
  std::vector<uint8_t> src = random_bytes(block), dst(block);
  size_t rounds = std::max<size_t>(1, bytes / block);
  return measure(rounds * block, [&] {
    for (size_t i = 0; i < rounds; ++i) {
      std::memcpy(dst.data(), src.data(), block);
      asm volatile("" : : "r"(dst.data()) : "memory");
    }
  });
}

// The machine's limit: blocking send()/recv() on a loopback socket pair, 1 MiB calls.
Figure plain_socket_baseline(size_t bytes, const std::vector<uint8_t>& chunk) {
  // Kernel defaults: autotuned buffers (TcpOptions{}.socket_buffer == 0), TCP_NODELAY.
  Listener listener = *Listener::bind(*Address::parse("tcp:127.0.0.1:0"));
  TcpOptions kernel_defaults;
  kernel_defaults.socket_buffer = 0;
  auto accepted =
      std::async(std::launch::async, [&] { return listener.accept({}, kernel_defaults); });
  auto client = connect(listener.address(), std::chrono::seconds(5), kernel_defaults);
  auto server = accepted.get();
  int out = (*client)->fd();
  int in = (*server)->fd();
  return measure(bytes, [&] {
    std::thread sender([&] {
      size_t left = bytes;
      while (left > 0) {
        size_t n = std::min(left, chunk.size());
        ssize_t sent = ::send(out, chunk.data(), n, MSG_NOSIGNAL);
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
  });
}

// Moves `bytes` in total over `tx`/`rx` channel pairs, one sender and one receiver thread
// per channel, writes of `write_size` bytes.
Figure stream_throughput(std::vector<std::unique_ptr<ByteStream>>& tx,
                         std::vector<std::unique_ptr<ByteStream>>& rx, size_t bytes,
                         const std::vector<uint8_t>& chunk, size_t write_size) {
  size_t per_channel = bytes / tx.size();
  return measure(per_channel * tx.size(), [&] {
    std::vector<std::thread> threads;
    for (size_t i = 0; i < tx.size(); ++i) {
      threads.emplace_back([&, i] {
        size_t left = per_channel;
        while (left > 0) {
          size_t n = std::min({left, write_size, chunk.size()});
          if (!tx[i]->write_all({chunk.data(), n})) {
            std::fprintf(stderr, "write failed\n");
            return;
          }
          left -= n;
        }
        (void)tx[i]->flush();
      });
      threads.emplace_back([&, i] {
        std::vector<uint8_t> buf(1 << 20);
        size_t left = per_channel;
        while (left > 0) {
          size_t n = std::min(left, buf.size());
          if (!rx[i]->read_exact({buf.data(), n})) {
            std::fprintf(stderr, "read failed\n");
            return;
          }
          left -= n;
        }
      });
    }
    for (auto& t : threads) {
      t.join();
    }
  });
}

struct Pair {
  std::vector<std::unique_ptr<ByteStream>> tx, rx;
};

Pair open_channels(unsigned n, const ChannelOptions& options) {
  Listener listener = *Listener::bind(*Address::parse("tcp:127.0.0.1:0"));
  auto accepted =
      std::async(std::launch::async, [&] { return accept_channels(listener, options); });
  auto connected = connect_channels(listener.address(), n, options);
  auto rx = accepted.get();
  if (!connected || !rx) {
    std::fprintf(stderr, "channel setup failed: %s\n",
                 (!connected ? connected.error() : rx.error()).message().c_str());
    std::exit(1);
  }
  return Pair{std::move(*connected), std::move(*rx)};
}

size_t g_bytes = 0;
void print(const std::string& label, const Figure& f, const std::string& ratio) {
  // GB per CPU-second: what the bytes cost in CPU, both ends together; steadier than
  // wall-clock throughput when other processes share the cores.
  double per_cpu = f.cpu_s > 0 ? static_cast<double>(g_bytes) / f.cpu_s / 1e9 : 0;
  fmt::print("{:<44} {:6.2f} GB/s  {:5.2f} GB/CPU-s  {}\n", label, f.gbps, per_cpu, ratio);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Migration transport throughput on loopback"};
  size_t mib = 256;
  unsigned channels = 4;
  size_t write_kib = 256;
  app.add_option("--mib", mib, "MiB moved per measurement");
  app.add_option("--channels", channels, "N for the multi-channel rows");
  app.add_option("--write-kib", write_kib, "size of each write_all call in KiB");
  app.add_option("--trials", g_trials, "trials per row (medians are printed)");
  bool tls_only = false;
  app.add_flag("--tls-only", tls_only, "only the limits, default TcpStream and TLS rows");
  CLI11_PARSE(app, argc, argv);
  const size_t bytes = mib << 20;
  g_bytes = bytes;
  const size_t write_size = write_kib << 10;
  const auto chunk = random_bytes(4 << 20);

  char tmpl[] = "/tmp/ferry-transport-bench-XXXXXX";
  fs::path dir = ::mkdtemp(tmpl);
  (void)generate_certificate((dir / "ca").string(), (dir / "a").string(), {.name = "a"});
  (void)generate_certificate((dir / "ca").string(), (dir / "b").string(), {.name = "b"});
  auto tls_a = TlsConfig::load_dir((dir / "a").string());
  if (!tls_a) {
    std::fprintf(stderr, "%s\n", tls_a.error().message().c_str());
    return 1;
  }

  fmt::print(
      "transport_bench: {} MiB per row, writes of {} KiB, random content, {} CPUs, median of {}\n"
      "GB/CPU-s = bytes moved per CPU-second spent by this process (sender + receiver)\n\n",
      mib, write_kib, std::thread::hardware_concurrency(), g_trials);
  Figure mem = median_of([&] { return memcpy_bandwidth(bytes); });
  print("memcpy bandwidth", mem, "");
  Figure base = median_of([&] { return plain_socket_baseline(bytes, chunk); });
  print("loopback TCP, plain send/recv (1 stream)", base, "(baseline)");

  auto run = [&](unsigned n, const ChannelOptions& options) {
    return median_of([&] {
      Pair p = open_channels(n, options);
      return stream_throughput(p.tx, p.rx, bytes, chunk, write_size);
    });
  };
  // The send-path variants: SEND vs SEND_ZC for big writes, fixed 4 MiB socket buffers vs
  // the kernel's autotuning. The TcpOptions defaults are whichever measured fastest.
  Figure tcp1;
  for (bool zc : {false, true}) {
    if (tls_only) {
      break;
    }
    for (int sockbuf : {4 << 20, 0}) {
      ChannelOptions o;
      o.tcp.zero_copy_threshold = zc ? (64 << 10) : 0;
      o.tcp.socket_buffer = sockbuf;
      Figure f = run(1, o);
      print(fmt::format("TcpStream, 1 ch, {}, {}", zc ? "SEND_ZC" : "SEND",
                        sockbuf ? "SO_SNDBUF 4 MiB" : "autotuned buf"),
            f, fmt::format("{:.2f}x loopback", f.gbps / base.gbps));
    }
  }
  ChannelOptions plain;
  tcp1 = run(1, plain);
  print("TcpStream, 1 channel, default TcpOptions", tcp1,
        fmt::format("{:.2f}x loopback", tcp1.gbps / base.gbps));
  ChannelOptions tls;
  tls.tls = *tls_a;
  Figure tls1 = run(1, tls);
  print("TlsStream (TLS 1.3), 1 channel", tls1,
        fmt::format("{:.2f}x TcpStream", tls1.gbps / tcp1.gbps));
  Figure tcpn = run(channels, plain);
  print(fmt::format("TcpStream, {} channels", channels), tcpn,
        fmt::format("{:.2f}x loopback", tcpn.gbps / base.gbps));
  ChannelOptions zc_n;
  zc_n.tcp.zero_copy_threshold = 64 << 10;
  Figure zcn = run(channels, zc_n);
  print(fmt::format("TcpStream, {} channels, SEND_ZC", channels), zcn,
        fmt::format("{:.2f}x loopback", zcn.gbps / base.gbps));
  Figure tlsn = run(channels, tls);
  print(fmt::format("TlsStream (TLS 1.3), {} channels", channels), tlsn,
        fmt::format("{:.2f}x TcpStream {} ch", tlsn.gbps / tcpn.gbps, channels));
  fs::remove_all(dir);
  return 0;
}
