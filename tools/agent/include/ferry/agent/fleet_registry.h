// The fleet as etcd holds it. Every agent keeps one lease and, under it:
//   /ferry/hosts/<host>                  HostRecord (address, capacity, guests, risk, state)
//   /ferry/reservations/<dest>/<guest>   capacity a source holds on <dest> while it migrates
//   /ferry/migrations/<dest>/<guest>     a source's request that <dest> receive <guest>
//   /ferry/receivers/<dest>/<guest>      <dest>'s answer: listening address, then the outcome
// A dead agent's lease expires and every key it wrote disappears with it, so a host drops
// out of the fleet and its reservations and requests are released without anyone's help.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ferry/agent/etcd_client.h"
#include "ferry/predictor/placement.h"

namespace ferry::agent {

inline constexpr const char* kHostsPrefix = "/ferry/hosts/";
inline constexpr const char* kReservationsPrefix = "/ferry/reservations/";
inline constexpr const char* kMigrationsPrefix = "/ferry/migrations/";
inline constexpr const char* kReceiversPrefix = "/ferry/receivers/";

struct GuestRecord {
  std::string id;
  uint64_t mem_mib = 0;
  uint32_t vcpus = 1;
  std::string state;  // "running", "migrating" (leaving), "incoming"
};

/// One scored device as published: enough for every agent to run the same top-N decision.
struct DeviceRisk {
  std::string device;
  std::string model;
  std::string kind;  // "disk" | "cpu"
  double probability = 0.0;
  double score = 0.0;
  std::vector<std::string> reasons;  // "smart_5_raw.z = 9.66 (+0.83)"
};

/// Host states, in the order an evacuation moves through them.
inline constexpr const char* kHostHealthy = "healthy";
inline constexpr const char* kHostAtRisk = "at-risk";        // chosen; evacuating
inline constexpr const char* kHostOutOfService = "out-of-service";  // drained

struct HostRecord {
  std::string name;
  std::string address;  // IP where this host's migration receivers listen
  uint64_t mem_total_mib = 0;
  uint32_t vcpus_total = 0;
  std::vector<GuestRecord> guests;
  double risk = 0.0;  // P(host fails within the horizon) = 1 - prod(1 - p_device)
  std::vector<DeviceRisk> devices;
  std::string state = kHostHealthy;
  int64_t updated_unix_ms = 0;

  uint64_t mem_used_mib() const;
  uint32_t vcpus_used() const;
  nlohmann::json to_json() const;
  static std::optional<HostRecord> from_json(const nlohmann::json& j);
};

struct Reservation {
  std::string dest, guest, source;
  uint64_t mem_mib = 0;
  uint32_t vcpus = 0;
};

/// A request that a destination start a receiver for a guest.
struct MigrationRequest {
  std::string dest, guest, source;
  uint64_t mem_mib = 0;
  uint32_t vcpus = 1;
};

/// A destination's receiver state for one guest.
struct ReceiverStatus {
  std::string dest, guest;
  std::string state;   // "listening", "running", "failed"
  std::string listen;  // tcp:ADDR:PORT
  std::string error;
};

class FleetRegistry {
 public:
  FleetRegistry(EtcdClient& etcd, std::string self) : etcd_(etcd), self_(std::move(self)) {}

  /// Grants this host's lease (ttl seconds).
  EtcdResult<void> open_lease(int64_t ttl_seconds);
  /// Renews the lease; false when it had already expired (the caller re-registers).
  EtcdResult<bool> keep_alive();
  /// Revokes the lease: the host and everything it wrote leave the fleet at once.
  EtcdResult<void> close_lease();
  int64_t lease() const { return lease_; }

  EtcdResult<void> publish(const HostRecord& record);
  /// Every registered host, sorted by name (records that do not parse are skipped).
  EtcdResult<std::vector<HostRecord>> hosts();

  /// Capacity the fleet sees per host: running guests plus reservations held on it.
  static std::vector<predictor::HostCapacity> capacities(
      const std::vector<HostRecord>& hosts, const std::vector<Reservation>& reservations);
  EtcdResult<std::vector<Reservation>> reservations();

  /// Reserves `guest` on `dest` if it still fits there, atomically with every other
  /// reservation on `dest` (an etcd transaction over the reservation range). False when it
  /// no longer fits or another reservation raced in (after a few retries).
  EtcdResult<bool> reserve(const std::string& dest, const predictor::GuestDemand& guest);
  EtcdResult<void> release(const std::string& dest, const std::string& guest);

  EtcdResult<void> request_migration(const MigrationRequest& request);
  EtcdResult<void> withdraw_migration(const std::string& dest, const std::string& guest);
  /// Requests addressed to this host.
  EtcdResult<std::vector<MigrationRequest>> incoming_requests();

  EtcdResult<void> set_receiver(const ReceiverStatus& status);
  EtcdResult<void> clear_receiver(const std::string& guest);
  EtcdResult<std::optional<ReceiverStatus>> receiver(const std::string& dest,
                                                     const std::string& guest);

 private:
  EtcdClient& etcd_;
  std::string self_;
  std::atomic<int64_t> lease_{0};  // read by the evacuation thread too
};

}  // namespace ferry::agent
