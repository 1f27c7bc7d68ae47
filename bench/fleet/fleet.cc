#include "fleet.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <random>

namespace ferry::bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// A plausible mix of guest sizes: 2/4/8/16 GiB with 1/2/4/8 vCPUs (mean 6.2 GiB, 3.1 vCPUs).
GuestDemand random_guest(std::mt19937_64& rng, std::string id) {
  static constexpr uint64_t kMemGib[] = {2, 4, 8, 16};
  static constexpr uint32_t kVcpus[] = {1, 2, 4, 8};
  std::discrete_distribution<int> pick({30, 30, 25, 15});
  const int k = pick(rng);
  return GuestDemand{std::move(id), kMemGib[k] * 1024, kVcpus[k]};
}

void move_guest(FleetState& st, uint32_t src, uint32_t dst, const GuestDemand& g) {
  auto& from = st.hosts[src];
  from.mem_used_mib -= std::min(from.mem_used_mib, g.mem_mib);
  from.vcpus_used -= std::min(from.vcpus_used, g.vcpus);
  from.guests -= std::min<uint32_t>(from.guests, 1);
  st.guests[dst].push_back(g);  // plan_evacuation_in_place already charged the destination
}

// Places every guest still on `src` (charging destinations in st.hosts); guests without a
// destination stay on the source. Adds the figures to `s` and the landings to `landed`.
void drain(FleetState& st, const Fleet& fleet, uint32_t src,
           const predictor::PlacementPolicy& policy, DayStats& s,
           std::map<uint32_t, std::size_t>& landed) {
  auto plan =
      predictor::plan_evacuation_in_place(st.hosts, st.guests[src], fleet.host_names[src], policy);
  std::map<std::string, GuestDemand> by_id;
  for (auto& g : st.guests[src]) {
    by_id.emplace(g.id, std::move(g));
  }
  st.guests[src].clear();
  for (const auto& p : plan) {
    auto node = by_id.extract(p.guest);
    if (!p.destination) {
      ++s.unplaced;
      st.guests[src].push_back(std::move(node.mapped()));
      continue;
    }
    const uint32_t dst = fleet.host_index.at(*p.destination);
    s.gib_to_move += static_cast<double>(node.mapped().mem_mib) / 1024.0;
    ++landed[dst];
    move_guest(st, src, dst, node.mapped());
  }
  s.to_migrate += plan.size();
}

// Real failures of the day: a failing host that already started draining is a hit, else
// a miss; its remaining guests are interrupted and restarted elsewhere (not counted as
// migrations), and the host leaves service.
void apply_failures(FleetState& st, const Fleet& fleet, int32_t day,
                    const predictor::PlacementPolicy& policy, DayStats& s) {
  for (uint32_t h = 0; h < st.hosts.size(); ++h) {
    const auto& f = fleet.host_failure_days[h];
    if (st.failed[h] || !std::binary_search(f.begin(), f.end(), day)) {
      continue;
    }
    ++s.failures;
    if (st.evacuated_day[h] && *st.evacuated_day[h] <= day) {
      ++s.hits;
      s.hits_ahead += *st.evacuated_day[h] < day ? 1 : 0;
    } else {
      ++s.misses;
    }
    s.interrupted += st.guests[h].size();
    st.failed[h] = true;
    st.hosts[h].in_service = false;
    DayStats scratch;
    std::map<uint32_t, std::size_t> ignored;
    drain(st, fleet, h, policy, scratch, ignored);
  }
}

}  // namespace

Fleet build_fleet(const Dataset& data, const FleetOptions& o) {
  Fleet f;
  std::mt19937_64 rng(o.seed);
  std::vector<uint32_t> perm(data.devices.size());
  std::iota(perm.begin(), perm.end(), 0u);
  std::shuffle(perm.begin(), perm.end(), rng);
  const std::size_t bays = static_cast<std::size_t>(o.hosts) * o.disks_per_host;
  f.host_names.resize(o.hosts);
  f.host_slots.resize(o.hosts);
  f.guests.resize(o.hosts);
  f.host_failure_days.resize(o.hosts);
  for (uint32_t h = 0; h < o.hosts; ++h) {
    f.host_names[h] = fmt::format("host{:05}", h);
    f.host_index.emplace(f.host_names[h], h);
    for (uint32_t g = 0; g < o.guests_per_host; ++g) {
      f.guests[h].push_back(random_guest(rng, fmt::format("{}/g{}", f.host_names[h], g)));
    }
  }
  std::vector<uint32_t> copies(data.devices.size(), 0);
  for (std::size_t k = 0; k < bays && !perm.empty(); ++k) {
    const uint32_t dev = perm[k % perm.size()];
    const auto host = static_cast<uint32_t>(k / o.disks_per_host);
    const uint32_t copy = ++copies[dev];
    const auto& serial = data.devices[dev].history.device_id;
    f.slots.push_back({dev, host, copy == 1 ? serial : fmt::format("{}#{}", serial, copy)});
    f.host_slots[host].push_back(static_cast<uint32_t>(f.slots.size() - 1));
    if (const auto& fd = data.devices[dev].failure_day) {
      f.host_failure_days[host].push_back(*fd);
    }
  }
  for (auto& days : f.host_failure_days) {
    std::sort(days.begin(), days.end());
  }
  for (uint32_t c : copies) {
    f.drives_used += c > 0 ? 1 : 0;
    f.drives_reused += c > 1 ? 1 : 0;
    f.max_copies = std::max(f.max_copies, c);
  }
  return f;
}

std::optional<int32_t> next_failure(const Fleet& fleet, uint32_t host, int32_t day) {
  const auto& d = fleet.host_failure_days[host];
  auto it = std::lower_bound(d.begin(), d.end(), day);
  return it == d.end() ? std::nullopt : std::optional<int32_t>(*it);
}

DayInput day_input(const Dataset& data, const Fleet& fleet, int32_t day) {
  DayInput in;
  in.day = day;
  in.histories.reserve(fleet.slots.size());
  for (uint32_t k = 0; k < fleet.slots.size(); ++k) {
    const auto& slot = fleet.slots[k];
    const auto& src = data.devices[slot.device].history;
    const auto& s = src.samples;
    auto end = std::upper_bound(s.begin(), s.end(), day,
                                [](int32_t d, const auto& x) { return d < x.day; });
    if (end == s.begin() || std::prev(end)->day != day) {
      continue;  // the drive did not report today (not installed yet, or gone)
    }
    DeviceTelemetryHistory h{slot.id, fleet.host_names[slot.host], src.model, {}, src.kind};
    h.samples.assign(s.begin(), end);
    in.histories.push_back(std::move(h));
    in.slot.push_back(k);
  }
  return in;
}

FleetState initial_state(const Fleet& fleet, const FleetOptions& o) {
  FleetState st;
  const std::size_t n = fleet.host_names.size();
  st.hosts.resize(n);
  st.guests = fleet.guests;
  st.evacuated_day.resize(n);
  st.failed.assign(n, false);
  for (std::size_t h = 0; h < n; ++h) {
    auto& c = st.hosts[h];
    c.name = fleet.host_names[h];
    c.mem_total_mib = o.host_mem_mib;
    c.vcpus_total = o.host_vcpus;
    for (const auto& g : st.guests[h]) {
      predictor::charge(c, g);
    }
  }
  return st;
}

DayStats run_day(FleetState& st, const Fleet& fleet, int32_t day, const Decision& decision,
                 const predictor::PlacementPolicy& policy) {
  DayStats s;
  s.day = day;
  for (std::size_t h = 0; h < st.hosts.size(); ++h) {
    st.hosts[h].risk = decision.risk[h];
    s.unscored_hosts += std::isnan(decision.risk[h]) ? 1 : 0;
  }
  // Leftovers first (hosts still draining from earlier days), then today's choices; all
  // sources are marked before placing so no guest lands on another source.
  std::vector<uint32_t> sources;
  for (uint32_t h = 0; h < st.hosts.size(); ++h) {
    if (st.evacuated_day[h] && !st.failed[h] && !st.guests[h].empty()) {
      sources.push_back(h);
    }
  }
  for (uint32_t h : decision.evacuate) {
    if (st.evacuated_day[h] || st.failed[h] || st.guests[h].empty()) {
      continue;
    }
    st.evacuated_day[h] = day;
    st.evacuations.emplace_back(h, day);
    sources.push_back(h);
    ++s.chosen;
  }
  for (uint32_t h : sources) {
    st.hosts[h].at_risk = true;
    st.hosts[h].in_service = false;
  }
  std::map<uint32_t, std::size_t> landed;
  const auto t0 = Clock::now();
  for (uint32_t h : sources) {
    drain(st, fleet, h, policy, s, landed);
  }
  s.place_ms = ms_since(t0);
  s.destinations = landed.size();
  for (const auto& [host, n] : landed) {
    s.max_landed = std::max(s.max_landed, n);
  }
  apply_failures(st, fleet, day, policy, s);
  return s;
}

void score_alarms(const FleetState& st, const Fleet& fleet, int horizon,
                  std::vector<DayStats>& days) {
  for (const auto& evacuation : st.evacuations) {
    const uint32_t host = evacuation.first;
    const int32_t day = evacuation.second;
    auto it =
        std::find_if(days.begin(), days.end(), [day](const DayStats& d) { return d.day == day; });
    if (it == days.end()) {
      continue;
    }
    const auto f = next_failure(fleet, host, day);
    if (f && *f - day < horizon) {
      ++it->true_alarms;
    } else {
      ++it->false_alarms;
    }
  }
}

Decision smart_rule_decision(const DayInput& in, const Fleet& fleet, const FleetState& st,
                             const predictor::TelemetrySchema& schema) {
  const auto col = [&](const char* name) {
    return static_cast<std::size_t>(
        std::find(schema.channels.begin(), schema.channels.end(), name) - schema.channels.begin());
  };
  const std::size_t c5 = col("smart_5_raw"), c197 = col("smart_197_raw");
  Decision d;
  d.risk.assign(fleet.host_names.size(), kNaN);
  std::vector<double> rule(fleet.host_names.size(), 0.0);
  for (std::size_t i = 0; i < in.histories.size(); ++i) {
    const uint32_t h = fleet.slots[in.slot[i]].host;
    const auto& v = in.histories[i].samples.back().values;
    for (std::size_t c : {c5, c197}) {
      if (c < v.size() && !std::isnan(v[c]) && v[c] > 0) {
        rule[h] += v[c];
      }
    }
    // The rule has no probability: a host it does not flag counts as safe (risk 0).
    d.risk[h] = 0.0;
  }
  for (uint32_t h = 0; h < rule.size(); ++h) {
    if (rule[h] > 0 && !st.evacuated_day[h] && !st.failed[h]) {
      d.evacuate.push_back(h);
    }
  }
  // Most reallocated + pending sectors first, as an operator would work the list.
  std::stable_sort(d.evacuate.begin(), d.evacuate.end(),
                   [&](uint32_t a, uint32_t b) { return rule[a] > rule[b]; });
  return d;
}

Decision model_decision(const std::vector<predictor::RiskScore>& scores, const Fleet& fleet,
                        const FleetState& st, const predictor::EvacuationCosts& costs) {
  std::map<std::string, uint32_t> guests;
  for (std::size_t h = 0; h < st.hosts.size(); ++h) {
    // Draining and failed hosts have nothing left to gain, so top-N skips them.
    const bool gone = st.evacuated_day[h].has_value() || st.failed[h];
    guests.emplace(fleet.host_names[h], gone ? 0u : static_cast<uint32_t>(st.guests[h].size()));
  }
  const auto plan = predictor::choose_evacuations(scores, guests, costs);
  Decision d;
  d.risk.assign(fleet.host_names.size(), kNaN);
  for (const auto* list : {&plan.evacuate, &plan.keep}) {
    for (const auto& e : *list) {
      d.risk[fleet.host_index.at(e.host)] = e.failure_probability;
    }
  }
  for (const auto& e : plan.evacuate) {
    d.evacuate.push_back(fleet.host_index.at(e.host));
  }
  return d;
}

}  // namespace ferry::bench
