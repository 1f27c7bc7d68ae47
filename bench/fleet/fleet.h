// bench/fleet: a simulated fleet (hosts x guests, no real VMs) driven by real Backblaze
// drive histories. Each simulated day runs the agent's decision path: score every disk
// (RiskModel::score), pick hosts (choose_evacuations, or the SMART-rule baseline), place
// their guests (plan_evacuation_in_place), then apply the day's real drive failures to
// count hits, misses and false alarms. Everything is single-threaded and deterministic
// for a given seed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "ferry/predictor/optimiser.h"
#include "ferry/predictor/placement.h"
#include "ferry/predictor/risk_model.h"
#include "ferry/predictor/telemetry.h"

namespace ferry::bench {

using predictor::Dataset;
using predictor::DeviceTelemetryHistory;
using predictor::GuestDemand;
using predictor::HostCapacity;

struct FleetOptions {
  uint32_t hosts = 10000;
  uint32_t guests_per_host = 10;
  uint32_t disks_per_host = 4;
  uint64_t seed = 1;
  uint64_t host_mem_mib = 128 * 1024;  // guest memory each host offers
  uint32_t host_vcpus = 64;
};

/// One disk bay of one host, filled with a real drive (index into Dataset::devices).
struct DiskSlot {
  uint32_t device = 0;
  uint32_t host = 0;
  std::string id;  // serial, or "serial#2" for the second copy of a reused drive
};

/// The simulated fleet before any decision: which drive sits in which host, and the guests.
struct Fleet {
  std::vector<DiskSlot> slots;
  std::vector<std::string> host_names;
  std::vector<std::vector<uint32_t>> host_slots;
  std::vector<std::vector<GuestDemand>> guests;         // initial guests per host
  std::vector<std::vector<int32_t>> host_failure_days;  // failure days of its drives, sorted
  std::unordered_map<std::string, uint32_t> host_index;
  std::size_t drives_used = 0;    // distinct drives placed
  std::size_t drives_reused = 0;  // drives placed in more than one bay
  uint32_t max_copies = 0;
};

/// Shuffles the drives (seeded) and deals them round-robin into hosts x disks bays,
/// starting over with the shuffled list when there are more bays than drives.
Fleet build_fleet(const Dataset& data, const FleetOptions& options);

/// The first failure of `host` on or after `day`, if any.
std::optional<int32_t> next_failure(const Fleet& fleet, uint32_t host, int32_t day);

/// One day's telemetry as the agents would hand it to the model: for each bay whose drive
/// reported that day, the drive's history up to and including the day.
struct DayInput {
  int32_t day = 0;
  std::vector<DeviceTelemetryHistory> histories;
  std::vector<uint32_t> slot;  // bay of each history
};
DayInput day_input(const Dataset& data, const Fleet& fleet, int32_t day);

/// What a policy decided for one day: hosts to evacuate (best first) and each host's risk
/// as the registry would publish it (NaN = no reading today, never a destination).
struct Decision {
  std::vector<uint32_t> evacuate;
  std::vector<double> risk;
};

/// The live state of the fleet under one policy.
struct FleetState {
  std::vector<HostCapacity> hosts;
  std::vector<std::vector<GuestDemand>> guests;
  std::vector<std::optional<int32_t>> evacuated_day;  // set when the host started draining
  std::vector<bool> failed;
  std::vector<std::pair<uint32_t, int32_t>> evacuations;  // (host, day), in order
};
FleetState initial_state(const Fleet& fleet, const FleetOptions& options);

/// Per-day figures for one policy.
struct DayStats {
  int32_t day = 0;
  double decide_ms = 0;          // scoring (model) or rule check (baseline)
  double choose_ms = 0;          // top-N (choose_evacuations) incl. building its inputs
  double place_ms = 0;           // plan_evacuation_in_place for every source of the day
  std::size_t chosen = 0;        // hosts newly chosen for evacuation
  std::size_t to_migrate = 0;    // guests planned to move (incl. retries of leftovers)
  std::size_t unplaced = 0;      // guests without a destination (stay on the source)
  double gib_to_move = 0;        // memory of the guests placed
  std::size_t destinations = 0;  // distinct destination hosts
  std::size_t max_landed = 0;    // most guests landing on one destination
  std::size_t failures = 0;      // hosts whose drive really failed today
  std::size_t hits = 0;          // ... that had been chosen on or before today
  std::size_t hits_ahead = 0;    // ... chosen at least one day before
  std::size_t misses = 0;
  std::size_t interrupted = 0;     // guests on a host when it failed
  std::size_t true_alarms = 0;     // of today's choices: a failure within the horizon
  std::size_t false_alarms = 0;    // ... none (filled in by score_alarms)
  std::size_t unscored_hosts = 0;  // hosts without any reading today
};

/// Runs one day for a policy: marks risk, drains the chosen hosts (placing their guests and
/// retrying yesterday's leftovers), then applies the real failures of the day.
DayStats run_day(FleetState& state, const Fleet& fleet, int32_t day, const Decision& decision,
                 const predictor::PlacementPolicy& policy);

/// Fills true/false alarms per day: a choice on day e is true when its host fails on a day
/// f with 0 <= f - e < horizon (failures after the data ends are unknown: counted false).
void score_alarms(const FleetState& state, const Fleet& fleet, int horizon,
                  std::vector<DayStats>& days);

/// The SMART-rule baseline: every host with a drive reporting raw 5 or 197 > 0 today.
Decision smart_rule_decision(const DayInput& in, const Fleet& fleet, const FleetState& state,
                             const predictor::TelemetrySchema& schema);

/// The model's decision from today's scores, via choose_evacuations().
Decision model_decision(const std::vector<predictor::RiskScore>& scores, const Fleet& fleet,
                        const FleetState& state, const predictor::EvacuationCosts& costs);

}  // namespace ferry::bench
