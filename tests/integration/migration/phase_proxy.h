// PhaseProxy: a loopback TCP proxy that understands the migration wire format (channel
// preamble/ack, then 16-byte record headers, docs/wire-format.md) and fires a fault at a
// precise protocol point: before a given record is forwarded, or after only its header.
// The fault is an action run on the proxy thread (kill a VMM, stall) followed by an
// abrupt cut (RST both ways). Test-only: the engine itself has no fault hooks, so the
// faults hit real, unmodified `ferry` processes.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace ferry::testing {

/// Which way a unit travels through the proxy.
enum class Dir { ToDest, ToSource };

/// One unit the proxy is about to forward: the channel preamble/ack, or one record.
struct WireUnit {
  Dir dir = Dir::ToDest;
  uint16_t type = 0;    // RecordType; 0 for the channel preamble / ack
  uint32_t length = 0;  // payload bytes
  // Counters before this unit (source -> destination): RoundEnd records seen, and data
  // records (PageBatch/DiskBatch) since the last RoundEnd or BlackoutBegin.
  unsigned round_ends = 0;
  unsigned data_in_round = 0;
  bool blackout = false;  // BlackoutBegin already forwarded
};

/// What to do with the unit: forward it, fire before it, or forward only its 16-byte
/// header and fire (a record cut in half).
enum class Verdict { Forward, FireBefore, FireMidRecord };

class PhaseProxy {
 public:
  using Trigger = std::function<Verdict(const WireUnit&)>;
  using Action = std::function<void()>;
  /// Forwards 127.0.0.1:port() -> 127.0.0.1:target_port; fires `action` once, then cuts.
  /// `stall` > 0: before cutting, stop forwarding for that long with both sockets open
  /// (a peer that goes silent), or until a peer closes its end.
  PhaseProxy(uint16_t target_port, Trigger trigger, Action action,
             std::chrono::milliseconds stall = std::chrono::milliseconds(0));
  ~PhaseProxy();
  uint16_t port() const { return port_; }
  bool fired() const { return fired_.load(); }
  /// Record types seen, in order, for failure messages ("Hello HelloReply PageBatch...").
  std::string trace() const;

 private:
  void run();
  void serve(int client, int server);
  bool pump(int from, int to, Dir dir, std::string& buffer, bool& header_done);

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  uint16_t target_;
  Trigger trigger_;
  Action action_;
  std::chrono::milliseconds stall_;
  WireUnit state_;
  std::atomic<bool> fired_{false};
  std::atomic<bool> stop_{false};
  mutable std::mutex trace_mu_;
  std::string trace_;
  std::thread thread_;
};

}  // namespace ferry::testing
