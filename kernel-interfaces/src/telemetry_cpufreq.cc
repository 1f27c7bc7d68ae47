#include "ferry/kernel-interfaces/telemetry_cpufreq.h"

#include <algorithm>
#include <charconv>
#include <filesystem>

namespace ferry::kernel {

namespace {

constexpr const char* kCpuDir = "/sys/devices/system/cpu";

// An absent file is nullopt; a present but unparsable file is an error.
TelemetryResult<std::optional<uint64_t>> optional_value(const std::string& root,
                                                        const std::string& rel) {
  auto text = read_telemetry_file(root, rel);
  if (!text) {
    if (text.error().errc == TelemetryErrc::Absent) {
      return std::optional<uint64_t>{};
    }
    return fail(text.error());
  }
  auto v = parse_sysfs_u64(*text, rel);
  if (!v) {
    return fail(v.error());
  }
  return std::optional<uint64_t>(*v);
}

}  // namespace

TelemetryResult<std::vector<CpuFreqStats>> read_cpu_freq(const std::string& root) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<uint32_t> ids;
  for (const auto& e : fs::directory_iterator(root + kCpuDir, ec)) {
    const std::string n = e.path().filename().string();
    uint32_t id = 0;
    if (n.size() > 3 && n.starts_with("cpu")) {
      auto [p, err] = std::from_chars(n.data() + 3, n.data() + n.size(), id);
      if (err == std::errc() && p == n.data() + n.size()) {
        ids.push_back(id);
      }
    }
  }
  if (ids.empty()) {
    return fail(TelemetryError{TelemetryErrc::Absent, kCpuDir, "no cpu<N> directories"});
  }
  std::sort(ids.begin(), ids.end());
  std::vector<CpuFreqStats> out;
  for (uint32_t id : ids) {
    CpuFreqStats s;
    s.cpu = id;
    // Appended piecewise: GCC 12 warns falsely (array-bounds) on string(const char*) + "...".
    std::string base(kCpuDir);
    base += "/cpu";
    base += std::to_string(id);
    const std::pair<std::optional<uint64_t>*, const char*> fields[] = {
        {&s.cur_khz, "/cpufreq/scaling_cur_freq"},
        {&s.max_khz, "/cpufreq/cpuinfo_max_freq"},
        {&s.min_khz, "/cpufreq/cpuinfo_min_freq"},
        {&s.core_throttle_count, "/thermal_throttle/core_throttle_count"},
        {&s.package_throttle_count, "/thermal_throttle/package_throttle_count"},
    };
    for (const auto& [slot, rel] : fields) {
      auto v = optional_value(root, base + rel);
      if (!v) {
        return fail(v.error());
      }
      *slot = *v;
    }
    out.push_back(s);
  }
  return out;
}

bool has_frequency(const std::vector<CpuFreqStats>& cpus) {
  return std::any_of(cpus.begin(), cpus.end(),
                     [](const auto& c) { return c.cur_khz && c.max_khz && *c.max_khz > 0; });
}

bool has_throttle_counters(const std::vector<CpuFreqStats>& cpus) {
  return std::any_of(cpus.begin(), cpus.end(), [](const auto& c) {
    return c.core_throttle_count.has_value() || c.package_throttle_count.has_value();
  });
}

}  // namespace ferry::kernel
