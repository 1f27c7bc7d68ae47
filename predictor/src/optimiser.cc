#include "ferry/predictor/optimiser.h"

#include <algorithm>
#include <unordered_map>

namespace ferry::predictor {

EvacuationPlan choose_evacuations(const std::vector<RiskScore>& scores,
                                  const std::map<std::string, uint32_t>& guests_per_host,
                                  const EvacuationCosts& costs) {
  struct HostAcc {
    double survive = 1.0;
    std::vector<const RiskScore*> devices;
  };
  std::unordered_map<std::string, HostAcc> hosts;
  std::vector<std::string> order;  // first-seen order keeps the output deterministic
  for (const auto& s : scores) {
    auto [it, fresh] = hosts.try_emplace(s.host);
    if (fresh) {
      order.push_back(s.host);
    }
    it->second.survive *= 1.0 - std::clamp(s.probability, 0.0, 1.0);
    it->second.devices.push_back(&s);
  }
  std::vector<EvacuationDecision> all;
  all.reserve(order.size());
  for (const auto& host : order) {
    auto& acc = hosts[host];
    std::stable_sort(acc.devices.begin(), acc.devices.end(),
                     [](const RiskScore* a, const RiskScore* b) { return a->score > b->score; });
    EvacuationDecision d;
    d.host = host;
    for (const RiskScore* s : acc.devices) {
      d.devices.push_back(s->device_id);
    }
    auto g = guests_per_host.find(host);
    d.guests = g == guests_per_host.end() ? costs.default_guests : g->second;
    d.failure_probability = 1.0 - acc.survive;
    d.expected_benefit = d.failure_probability * d.guests * costs.interruption_cost;
    d.cost = d.guests * costs.migration_cost + costs.fixed_host_cost;
    for (const auto& f : acc.devices.front()->top_features) {
      d.reasons.push_back({acc.devices.front()->device_id + ": " + f.feature, f.value, f.contribution});
    }
    all.push_back(std::move(d));
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const auto& a, const auto& b) { return a.net() > b.net(); });
  EvacuationPlan plan;
  for (auto& d : all) {
    const bool room = costs.max_hosts == 0 || plan.evacuate.size() < costs.max_hosts;
    // A host without guests has nothing to gain from evacuation.
    if (room && d.guests > 0 && d.net() > 0) {
      plan.evacuate.push_back(std::move(d));
    } else {
      plan.keep.push_back(std::move(d));
    }
  }
  return plan;
}

}  // namespace ferry::predictor
