// Top-N by cost and benefit: given per-device risk scores, decide which hosts to evacuate.
// N is not a fixed threshold: a host is evacuated when the expected cost of leaving its
// guests in place (P(host fails) x guests x interruption cost) exceeds the cost of
// migrating them, best net benefit first, up to the spare capacity. Each decision carries
// the reasons (the top feature contributions of the riskiest device on the host).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ferry/predictor/risk_model.h"

namespace ferry::predictor {

struct EvacuationCosts {
  double interruption_cost = 100.0;  // one guest hit by an unannounced host failure
  double migration_cost = 1.0;       // one live migration of one guest (blackout, traffic)
  double fixed_host_cost = 0.0;      // per evacuated host (draining, operator attention)
  std::size_t max_hosts = 0;         // spare capacity in hosts; 0 = unlimited
  uint32_t default_guests = 1;       // guests on a host the caller did not list
};

struct EvacuationDecision {
  std::string host;
  std::vector<std::string> devices;  // devices on the host, riskiest first
  double failure_probability = 0.0;  // 1 - prod(1 - p_device)
  uint32_t guests = 0;
  double expected_benefit = 0.0;     // failure_probability * guests * interruption_cost
  double cost = 0.0;                 // guests * migration_cost + fixed_host_cost
  double net() const { return expected_benefit - cost; }
  std::vector<FeatureContribution> reasons;  // "device: feature" with contributions
};

struct EvacuationPlan {
  std::vector<EvacuationDecision> evacuate;  // chosen, best net benefit first
  std::vector<EvacuationDecision> keep;      // not chosen, best net benefit first
};

/// Groups scores by host and chooses which hosts to evacuate under `costs`.
EvacuationPlan choose_evacuations(const std::vector<RiskScore>& scores,
                                  const std::map<std::string, uint32_t>& guests_per_host,
                                  const EvacuationCosts& costs);

}  // namespace ferry::predictor
