// Synthetic host CPU telemetry with injected anomalies. No public labelled data exists for
// CPU-frequency faults, so this documented generator stands in: hosts poll per-core
// frequency ratios, a throttle counter and an effective-speed probe; some hosts develop an
// anomaly (sustained drop, oscillation, single-core throttle) some steps before a fault.
// Results on this data are synthetic and are always reported apart from real-data figures.
#pragma once

#include <cstdint>
#include <string>

#include "ferry/predictor/telemetry.h"

namespace ferry::predictor {

struct CpuSynthConfig {
  uint64_t seed = 1;
  int hosts = 400;
  int cores = 8;
  int steps = 60;                   // polls (time steps); one query group per step
  double anomaly_fraction = 0.15;   // hosts that develop an anomaly
  int min_lead = 4;                 // steps from anomaly onset to fault
  int max_lead = 12;
  double benign_dip_rate = 0.03;    // per host-step: a one-step fleet-wide-looking dip
  double missing_throttle = 0.10;   // hosts without throttle counters (e.g. VMs)
};

/// Anomaly kinds the generator injects ("" for healthy hosts).
inline constexpr const char* kAnomalySustainedDrop = "sustained_drop";
inline constexpr const char* kAnomalyOscillation = "oscillation";
inline constexpr const char* kAnomalySingleCore = "single_core_throttle";

/// Generates a cpu_schema() Dataset; devices with an anomaly carry its name in `anomaly`,
/// and failure_day when the fault falls inside the generated steps (the host then stops
/// reporting, like a failed disk). Deterministic for a given config.
Dataset generate_cpu_telemetry(const CpuSynthConfig& config);

}  // namespace ferry::predictor
