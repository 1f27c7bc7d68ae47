#include "ferry/predictor/placement.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <tuple>

namespace ferry::predictor {
namespace {

// Sort key of a host that fits: smaller is better. Free share is negated so that more
// free memory sorts first; the exact risk breaks ties inside one risk step.
struct RankKey {
  double risk_bucket;
  double neg_free_share;
  double risk;
  const std::string* name;

  bool operator<(const RankKey& o) const {
    return std::tie(risk_bucket, neg_free_share, risk, *name) <
           std::tie(o.risk_bucket, o.neg_free_share, o.risk, *o.name);
  }
};

uint64_t free_mem(const HostCapacity& h) {
  return h.mem_total_mib > h.mem_used_mib ? h.mem_total_mib - h.mem_used_mib : 0;
}

// Called only for hosts that fit, so the guest's memory is available.
RankKey rank_key(const HostCapacity& h, const GuestDemand& g, const PlacementPolicy& policy) {
  const double bucket = policy.risk_step > 0 ? std::floor(h.risk / policy.risk_step) : h.risk;
  const double left = static_cast<double>(free_mem(h) - g.mem_mib);
  const double share = h.mem_total_mib > 0 ? left / static_cast<double>(h.mem_total_mib) : 0.0;
  return RankKey{bucket, -share, h.risk, &h.name};
}

std::string placed_reason(const HostCapacity& h, const GuestDemand& g) {
  const double left = static_cast<double>(free_mem(h) - g.mem_mib);
  const double share = h.mem_total_mib > 0 ? left / static_cast<double>(h.mem_total_mib) : 0.0;
  return fmt::format("risk {:.4f}, {:.0f}% of memory free after placing", h.risk, share * 100);
}

// "no healthy host with 512 MiB free" plus why each other host was ruled out, so the
// timeline says whether the fleet is full or merely unhealthy.
std::string unplaced_reason(const std::vector<HostCapacity>& hosts, const GuestDemand& g,
                            std::string_view source, const PlacementPolicy& policy) {
  // One counter per HostFit value; NoVcpus is the last one.
  std::array<std::size_t, static_cast<std::size_t>(HostFit::NoVcpus) + 1> counts{};
  const std::set<std::string> none;
  for (const auto& h : hosts) {
    ++counts[static_cast<std::size_t>(host_fit(h, g, source, none, policy))];
  }
  auto n = [&](HostFit f) { return counts[static_cast<std::size_t>(f)]; };
  return fmt::format(
      "no healthy host with {} MiB free (and {} vCPUs): {} too full, {} short of vCPUs, "
      "{} too risky, {} at risk, {} out of service",
      g.mem_mib, g.vcpus, n(HostFit::NoMemory), n(HostFit::NoVcpus), n(HostFit::TooRisky),
      n(HostFit::AtRisk), n(HostFit::OutOfService));
}

}  // namespace

HostFit host_fit(const HostCapacity& host, const GuestDemand& guest, std::string_view source,
                 const std::set<std::string>& excluded, const PlacementPolicy& policy) {
  if (host.name == source) {
    return HostFit::Source;
  }
  if (excluded.count(host.name) != 0) {
    return HostFit::Excluded;
  }
  if (!host.in_service) {
    return HostFit::OutOfService;
  }
  if (host.at_risk) {
    return HostFit::AtRisk;
  }
  // NaN risk (no telemetry yet) is treated as unknown, hence unsafe.
  if (!std::isfinite(host.risk) || host.risk > policy.max_destination_risk) {
    return HostFit::TooRisky;
  }
  const uint64_t avail = free_mem(host);
  if (avail < guest.mem_mib) {
    return HostFit::NoMemory;
  }
  const double keep = policy.headroom_fraction * static_cast<double>(host.mem_total_mib);
  if (static_cast<double>(avail - guest.mem_mib) < keep) {
    return HostFit::NoMemory;
  }
  const double vcpu_cap = static_cast<double>(host.vcpus_total) * policy.vcpu_overcommit;
  if (static_cast<double>(host.vcpus_used) + guest.vcpus > vcpu_cap) {
    return HostFit::NoVcpus;
  }
  return HostFit::Fits;
}

std::vector<std::string> rank_destinations(const std::vector<HostCapacity>& hosts,
                                           const GuestDemand& guest, std::string_view source,
                                           const std::set<std::string>& excluded,
                                           const PlacementPolicy& policy) {
  std::vector<RankKey> keys;
  for (const auto& h : hosts) {
    if (host_fit(h, guest, source, excluded, policy) == HostFit::Fits) {
      keys.push_back(rank_key(h, guest, policy));
    }
  }
  std::sort(keys.begin(), keys.end());
  std::vector<std::string> out;
  out.reserve(keys.size());
  for (const auto& k : keys) {
    out.push_back(*k.name);
  }
  return out;
}

std::optional<std::size_t> best_destination(const std::vector<HostCapacity>& hosts,
                                            const GuestDemand& guest, std::string_view source,
                                            const std::set<std::string>& excluded,
                                            const PlacementPolicy& policy) {
  std::optional<std::size_t> best;
  std::optional<RankKey> best_key;
  for (std::size_t i = 0; i < hosts.size(); ++i) {
    if (host_fit(hosts[i], guest, source, excluded, policy) != HostFit::Fits) {
      continue;
    }
    const RankKey k = rank_key(hosts[i], guest, policy);
    if (!best_key || k < *best_key) {
      best = i;
      best_key = k;
    }
  }
  return best;
}

void charge(HostCapacity& host, const GuestDemand& guest) {
  host.mem_used_mib += guest.mem_mib;
  host.vcpus_used += guest.vcpus;
  host.guests += 1;
}

std::vector<Placement> plan_evacuation_in_place(std::vector<HostCapacity>& hosts,
                                                std::vector<GuestDemand> guests,
                                                std::string_view source,
                                                const PlacementPolicy& policy) {
  // Largest first: big guests are the hardest to fit, so they choose while the most
  // capacity is left (first-fit decreasing). Ties keep a fixed order (id).
  std::stable_sort(guests.begin(), guests.end(), [](const GuestDemand& a, const GuestDemand& b) {
    return std::tie(b.mem_mib, b.vcpus, a.id) < std::tie(a.mem_mib, a.vcpus, b.id);
  });
  const std::set<std::string> none;
  std::vector<Placement> out;
  out.reserve(guests.size());
  for (const auto& g : guests) {
    Placement p{g.id, std::nullopt, {}};
    if (auto i = best_destination(hosts, g, source, none, policy)) {
      p.destination = hosts[*i].name;
      p.reason = placed_reason(hosts[*i], g);
      charge(hosts[*i], g);
    } else {
      p.reason = unplaced_reason(hosts, g, source, policy);
    }
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<Placement> plan_evacuation(std::vector<HostCapacity> hosts,
                                       std::vector<GuestDemand> guests, std::string_view source,
                                       const PlacementPolicy& policy) {
  return plan_evacuation_in_place(hosts, std::move(guests), source, policy);
}

}  // namespace ferry::predictor
