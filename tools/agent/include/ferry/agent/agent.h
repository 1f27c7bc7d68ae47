// `ferry agent`: one per host. It owns the host's guests (Ferry VMM child processes),
// registers the host in etcd under a lease, polls telemetry every `poll` and scores it with
// the in-process model, runs the fleet-wide top-N decision on the risks every agent
// publishes, and when that decision marks this host it evacuates every guest by live
// migration to healthy hosts with room (reserved through etcd transactions), retrying a
// failed migration elsewhere while the guest stays safe on this host. It also receives
// guests that other agents evacuate to it. Everything it decides goes to the timeline.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ferry/agent/guest_process.h"
#include "ferry/agent/telemetry_feed.h"
#include "ferry/predictor/optimiser.h"
#include "ferry/predictor/placement.h"

namespace ferry::agent {

struct MigrationSettings {
  uint32_t downtime_ms = 50;
  uint32_t channels = 2;
  std::string verify = "tracked";
  std::string tls_dir, tls_name;
  std::chrono::seconds timeout{120};          // one migration, end to end
  std::chrono::seconds receiver_timeout{20};  // destination to start listening
};

struct AgentOptions {
  std::string name;          // host name in the fleet
  std::string etcd;          // HOST:PORT of etcd's client URL
  std::string address;       // this host's IP for migration receivers
  std::string state_dir;     // control sockets, serial logs
  std::string ferry_binary;  // the `ferry` executable that runs guests
  uint64_t mem_mib = 1024;   // guest memory this host offers
  uint32_t vcpus = 4;
  std::chrono::milliseconds poll{5000};
  int64_t lease_ttl_s = 10;
  std::string disk_model, cpu_model;  // model files; a kind without one is not scored
  std::vector<std::unique_ptr<TelemetryFeed>> feeds;
  std::vector<GuestSpec> guests;  // booted at start
  uint16_t port_first = 7100, port_last = 7199;
  std::size_t max_parallel_migrations = 1;
  std::size_t max_attempts_per_guest = 4;  // destinations tried before waiting a poll
  predictor::EvacuationCosts costs;
  predictor::PlacementPolicy placement;
  MigrationSettings migration;
  std::string timeline_path;
  bool stop_guests_on_exit = false;
  bool exit_when_drained = false;
  bool exit_when_idle = false;  // no guests and no receivers left (demos)
};

class Agent {
 public:
  explicit Agent(AgentOptions options);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  /// Runs until `stop` becomes true (or an exit condition holds); the process exit status.
  int run(const std::atomic<bool>& stop);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace ferry::agent
