// Destination placement for evacuations: given the fleet as the registry sees it (risk,
// capacity, service state per host), choose where each guest of an at-risk host goes.
// Pure logic over plain structs (no etcd, no VMs), so the agent, `ferry fleet` and the
// bench/fleet simulation all run exactly this code. The agent still reserves the chosen
// capacity in etcd; these functions only rank and plan.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::predictor {

/// One host as the fleet registry sees it.
struct HostCapacity {
  std::string name;            // host id
  double risk = 0.0;           // calibrated P(host fails within horizon), from the agent
  bool at_risk = false;        // chosen for evacuation by the top-N decision
  bool in_service = true;      // false once drained / out of service
  uint64_t mem_total_mib = 0;  // guest memory the host offers
  uint64_t mem_used_mib = 0;   // running guests + outstanding reservations
  uint32_t vcpus_total = 0;
  uint32_t vcpus_used = 0;
  uint32_t guests = 0;
};

/// What one guest needs on its destination.
struct GuestDemand {
  std::string id;
  uint64_t mem_mib = 0;
  uint32_t vcpus = 1;
};

struct PlacementPolicy {
  double max_destination_risk = 0.05;  // never place on a host riskier than this
  double headroom_fraction = 0.0;      // keep this share of memory free on destinations
  // vCPUs a host may hand out per physical vCPU slot: vcpus_used + guest.vcpus must stay
  // <= vcpus_total * vcpu_overcommit. 1.0 = no overcommit.
  double vcpu_overcommit = 1.0;
  // Risks are compared in steps of this size (floor(risk / step)); hosts in the same step
  // count as equally safe and are ordered by free memory share, which spreads guests.
  // 0 = exact comparison. A calibrated risk of 0.0011 vs 0.0012 is noise, not a reason to
  // fill one host first; the agent should set a step such as 0.005.
  double risk_step = 0.0;
};

/// Why a host cannot take a guest (Fits = it can).
enum class HostFit {
  Fits,
  Source,        // the host being evacuated
  Excluded,      // in the caller's exclusion set (e.g. a migration there just failed)
  AtRisk,        // itself chosen for evacuation
  OutOfService,  // drained or out of service
  TooRisky,      // risk > max_destination_risk, or not a finite number
  NoMemory,      // not enough memory left once the headroom is kept
  NoVcpus,       // not enough vCPUs left
};

/// Whether `host` can take `guest` under `policy`, and if not, the first reason why.
HostFit host_fit(const HostCapacity& host, const GuestDemand& guest, std::string_view source,
                 const std::set<std::string>& excluded, const PlacementPolicy& policy);

/// Candidate destinations for one guest, best first: excludes the source, `excluded`
/// hosts (e.g. where this guest's migration just failed), at-risk, out-of-service, too-risky
/// and too-full hosts; ranks lower risk first, then more free memory share (spreads load), then
/// name.
std::vector<std::string> rank_destinations(const std::vector<HostCapacity>& hosts,
                                           const GuestDemand& guest, std::string_view source,
                                           const std::set<std::string>& excluded,
                                           const PlacementPolicy& policy);

/// The first entry of rank_destinations() (index into `hosts`), found in one linear pass
/// without sorting; nullopt when no host fits.
std::optional<std::size_t> best_destination(const std::vector<HostCapacity>& hosts,
                                            const GuestDemand& guest, std::string_view source,
                                            const std::set<std::string>& excluded,
                                            const PlacementPolicy& policy);

/// Charges `guest` to `host` (memory, vCPUs, guest count), as a reservation does.
void charge(HostCapacity& host, const GuestDemand& guest);

struct Placement {
  std::string guest;
  std::optional<std::string> destination;
  std::string reason;
};

/// Places every guest of `source` in order (largest first), charging each choice to the
/// chosen host so later guests see the reduced capacity; a guest with no destination gets
/// nullopt and a reason ("no healthy host with 512 MiB free").
std::vector<Placement> plan_evacuation(std::vector<HostCapacity> hosts,
                                       std::vector<GuestDemand> guests, std::string_view source,
                                       const PlacementPolicy& policy);

/// As plan_evacuation(), but charges `hosts` in place so that several evacuations planned
/// in a row (one decision round) see each other's placements.
std::vector<Placement> plan_evacuation_in_place(std::vector<HostCapacity>& hosts,
                                                std::vector<GuestDemand> guests,
                                                std::string_view source,
                                                const PlacementPolicy& policy);

}  // namespace ferry::predictor
