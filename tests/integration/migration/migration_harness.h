// Helpers for migration tests: free loopback ports, a source VMM running the test guest,
// a destination waiting with --incoming, `ferry migrate`, and a TCP proxy that cuts the
// connection after a chosen number of bytes.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "subprocess.h"

namespace ferry::testing {

/// A loopback TCP port nobody listens on right now.
uint16_t free_port();

struct GuestSpec {
  std::string mem = "128M";
  unsigned cpus = 1;
  std::string cmdline = "wss=32 duration=6 rate=50 fill=full";
  bool disk = true;
  uint64_t disk_bytes = 16 << 20;
  std::vector<std::string> extra;  // more `ferry run` options
};

class MigrationRig {
 public:
  explicit MigrationRig(std::string name);
  const std::string& dir() const { return dir_; }

  /// Starts the source guest (control socket src.sock) and waits until it runs.
  std::unique_ptr<Subprocess> start_source(const GuestSpec& spec);
  /// Starts `ferry run --incoming` on `port` writing the disk to `disk_name`.
  std::unique_ptr<Subprocess> start_destination(uint16_t port, const std::string& disk_name,
                                                std::vector<std::string> extra = {},
                                                const std::string& control = "");
  /// Runs `ferry migrate` from `control` to 127.0.0.1:`port`.
  RunResult migrate(const std::string& control, uint16_t port, std::vector<std::string> extra = {});
  /// The report written by the last migrate().
  nlohmann::json last_report() const;
  std::string source_control() const { return dir_ + "/src.sock"; }

 private:
  std::string dir_;
  std::string report_path_;
};

/// Forwards 127.0.0.1:listen_port -> 127.0.0.1:target_port (one connection at a time) and
/// cuts every connection once `cut_after` bytes went from client to server, or once the
/// server tries to send more than `cut_reverse_after` bytes back.
class CuttingProxy {
 public:
  CuttingProxy(uint16_t target_port, uint64_t cut_after, uint64_t cut_reverse_after = ~0ull);
  ~CuttingProxy();
  uint16_t port() const { return port_; }
  uint64_t forwarded() const { return forwarded_.load(); }
  bool cut() const { return cut_.load(); }

 private:
  void run();
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  uint16_t target_;
  uint64_t cut_after_;
  uint64_t cut_reverse_after_;
  std::atomic<uint64_t> forwarded_{0};
  uint64_t returned_ = 0;
  std::atomic<bool> cut_{false};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

/// Counts lines of the form produced by the test guest (e.g. "FERRY-GUEST done").
bool has(const std::string& text, const std::string& needle);

}  // namespace ferry::testing
