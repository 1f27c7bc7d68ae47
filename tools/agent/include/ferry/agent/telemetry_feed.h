// Where an agent's telemetry comes from, one history per device, advanced once per poll.
// Live: this host's CPU readings (cpufreq, throttle counters, a speed probe). Injected, for
// tests and demos and never by default: the recorded history of a real Backblaze drive
// replayed one day per poll, or a synthetic CPU-frequency anomaly (predictor/cpu_synth.h).
#pragma once

#include <memory>
#include <string>

#include "ferry/kernel-interfaces/result.h"
#include "ferry/predictor/telemetry.h"

namespace ferry::agent {

class TelemetryFeed {
 public:
  virtual ~TelemetryFeed() = default;
  /// "replay of Backblaze drive 9XW02BXV (ST31500541AS), day 12 of 20".
  virtual std::string describe() const = 0;
  /// Takes one more reading and returns the device's history so far.
  virtual predictor::DeviceTelemetryHistory next() = 0;
};

/// Replays `device` as if installed in `host`: the first poll shows its samples up to
/// `start_index`, each later poll `step` more, then the history stays at its end.
std::unique_ptr<TelemetryFeed> replay_feed(predictor::LabelledDevice device, std::string host,
                                           std::size_t start_index, std::size_t step);

/// This host's live CPU telemetry read under `root` ("/"), one sample per poll.
std::unique_ptr<TelemetryFeed> live_cpu_feed(std::string host, std::string root = "/");

/// A drive's recorded history from the Backblaze day files in `dir` (first `max_days`).
Result<predictor::LabelledDevice, std::string> load_backblaze_drive(const std::string& dir,
                                                                    const std::string& serial,
                                                                    std::size_t max_days);

/// A synthetic host CPU that develops `anomaly` (sustained_drop, oscillation,
/// single_core_throttle) and fails, from the generator with `seed`.
Result<predictor::LabelledDevice, std::string> synthetic_cpu_anomaly(const std::string& anomaly,
                                                                     uint64_t seed);

}  // namespace ferry::agent
