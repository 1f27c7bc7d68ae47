// Live collectors that turn this host's raw telemetry into predictor samples: SMART
// attributes via `smartctl --json` (smartmontools), the CPU sample of cpu_schema() from
// sysfs cpufreq / thermal-throttle counters, and an effective-speed probe (a short
// calibrated loop) that works inside VMs where cpufreq is absent. Every absent source is
// listed by name and its channel left NaN; nothing is guessed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ferry/kernel-interfaces/telemetry_cpufreq.h"
#include "ferry/kernel-interfaces/telemetry_diskstats.h"
#include "ferry/predictor/error.h"
#include "ferry/predictor/telemetry.h"

namespace ferry::predictor {

/// Parses `smartctl --json -A` output into disk_schema() values (raw values of SMART 1, 5,
/// 9, 194, 197; NaN for attributes the drive does not report). Errors: CorruptModel is not
/// used here; malformed JSON or a missing attribute table give OpenData with the reason.
PResult<std::vector<float>> parse_smartctl_json(const std::string& text);

/// Runs `smartctl --json -A <device>` and parses it. OpenData when smartctl is not
/// installed or cannot read the device (the message says which).
PResult<std::vector<float>> read_smart(const std::string& device);

/// I/O behaviour of one block device between two /proc/diskstats snapshots.
struct IoRates {
  double read_latency_ms = 0.0;   // mean time per completed read (NaN if no reads)
  double write_latency_ms = 0.0;  // mean time per completed write (NaN if no writes)
  double utilisation = 0.0;       // fraction of the interval with I/O in flight
  double queue_depth = 0.0;       // mean requests in flight (weighted ms / interval)
  uint64_t in_flight = 0;         // requests in flight at the second snapshot
};

/// Rates from two snapshots `interval_ms` apart. Counters that went backwards (device
/// reset, wrap) give an error instead of a negative rate.
PResult<IoRates> io_rates(const kernel::DiskStats& before, const kernel::DiskStats& after,
                          double interval_ms);

/// A cpu_schema() reading plus the names of the sources that were absent.
struct CpuReading {
  std::vector<float> values;         // cpu_schema() order, NaN = absent
  std::vector<std::string> absent;   // e.g. "cpufreq", "thermal_throttle"
};

/// Builds a CPU reading from sysfs stats and a probe ratio (NaN if no probe was run).
CpuReading cpu_reading_from(const std::vector<kernel::CpuFreqStats>& cpus, float probe_ratio);

/// Effective-speed probe: times a fixed integer loop. The first calibrate() sets the
/// baseline (best of several runs); ratio() is baseline time / current time, so 1.0 means
/// full speed and 0.6 means the CPU runs at 60 % (throttled or contended).
class SpeedProbe {
 public:
  /// Runs the loop `runs` times and keeps the fastest as the baseline; returns it in ns.
  double calibrate(int runs = 5);
  /// Current speed relative to the baseline (calibrates first if needed).
  float ratio(int runs = 3);
  double baseline_ns() const { return baseline_ns_; }

 private:
  double baseline_ns_ = 0.0;
};

/// Reads this host's CPU telemetry under `root` ("/" live) and runs the probe.
CpuReading read_cpu_reading(const std::string& root, SpeedProbe& probe);

}  // namespace ferry::predictor
