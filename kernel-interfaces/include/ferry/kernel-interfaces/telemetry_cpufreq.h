// Per-CPU frequency and thermal-throttle counters from sysfs
// (Documentation/admin-guide/pm/cpufreq.rst; x86 thermal_throttle/*_throttle_count).
// Each field is optional: a VM usually has no cpufreq directory, AMD has no
// thermal_throttle; those read as absent (nullopt), never as zero.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ferry/kernel-interfaces/telemetry_source.h"

namespace ferry::kernel {

struct CpuFreqStats {
  uint32_t cpu = 0;
  std::optional<uint64_t> cur_khz;    // cpufreq/scaling_cur_freq
  std::optional<uint64_t> max_khz;    // cpufreq/cpuinfo_max_freq
  std::optional<uint64_t> min_khz;    // cpufreq/cpuinfo_min_freq
  std::optional<uint64_t> core_throttle_count;     // thermal_throttle/core_throttle_count
  std::optional<uint64_t> package_throttle_count;  // thermal_throttle/package_throttle_count
};

/// Reads <root>/sys/devices/system/cpu/cpu<N>/... for every N, sorted by N. Absent when
/// the cpu directory has no cpu<N> entries; Malformed when a present file is not a number.
TelemetryResult<std::vector<CpuFreqStats>> read_cpu_freq(const std::string& root);

/// True when at least one CPU reports both current and maximum frequency.
bool has_frequency(const std::vector<CpuFreqStats>& cpus);
/// True when at least one CPU reports a throttle counter.
bool has_throttle_counters(const std::vector<CpuFreqStats>& cpus);

}  // namespace ferry::kernel
