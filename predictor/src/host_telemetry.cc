#include "ferry/predictor/host_telemetry.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>

namespace ferry::predictor {

PResult<std::vector<float>> parse_smartctl_json(const std::string& text) {
  const auto doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return perr(PredictorErrc::OpenData, "smartctl output is not JSON");
  }
  const auto table = doc.value("/ata_smart_attributes/table"_json_pointer, nlohmann::json());
  if (!table.is_array()) {
    return perr(PredictorErrc::OpenData, "smartctl output has no ata_smart_attributes table "
                                         "(not an ATA drive, or no SMART support)");
  }
  const int ids[] = {1, 5, 9, 194, 197};
  std::vector<float> values(std::size(ids), kMissing);
  for (const auto& attr : table) {
    if (!attr.is_object() || !attr.contains("id") || !attr["id"].is_number_integer()) {
      continue;
    }
    const auto raw = attr.value("/raw/value"_json_pointer, nlohmann::json());
    for (std::size_t i = 0; i < std::size(ids); ++i) {
      if (attr["id"].get<int>() == ids[i] && raw.is_number()) {
        // SMART 194 packs min/max temperatures in the upper bytes; keep the current one.
        const double v = raw.get<double>();
        values[i] = static_cast<float>(ids[i] == 194 ? std::fmod(v, 256.0) : v);
      }
    }
  }
  return values;
}

PResult<std::vector<float>> read_smart(const std::string& device) {
  if (device.find_first_of("'\"`$;&|<> \\") != std::string::npos) {
    return perr(PredictorErrc::BadArgument, fmt::format("unsafe device path '{}'", device));
  }
  const std::string cmd = fmt::format("smartctl --json -A '{}' 2>/dev/null", device);
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  if (!pipe) {
    return perr(PredictorErrc::OpenData, "cannot run smartctl");
  }
  std::string out;
  char buf[4096];
  for (std::size_t n; (n = fread(buf, 1, sizeof buf, pipe.get())) > 0;) {
    out.append(buf, n);
  }
  if (out.empty()) {
    return perr(PredictorErrc::OpenData,
                fmt::format("smartctl gave no output for {} (is smartmontools installed?)", device));
  }
  return parse_smartctl_json(out);
}

PResult<IoRates> io_rates(const kernel::DiskStats& before, const kernel::DiskStats& after,
                          double interval_ms) {
  const kernel::DiskStats& a = before;  // short names for the counter table below
  const kernel::DiskStats& b = after;
  if (interval_ms <= 0) {
    return perr(PredictorErrc::BadArgument, "interval must be positive");
  }
  const uint64_t* pairs[][2] = {{&a.reads, &b.reads},   {&a.read_ms, &b.read_ms},
                                {&a.writes, &b.writes}, {&a.write_ms, &b.write_ms},
                                {&a.io_ms, &b.io_ms},   {&a.weighted_io_ms, &b.weighted_io_ms}};
  for (const auto& p : pairs) {
    if (*p[1] < *p[0]) {
      return perr(PredictorErrc::BadArgument,
                  fmt::format("{}: counters went backwards (device reset?)", b.name));
    }
  }
  const auto d = [](uint64_t x, uint64_t y) { return static_cast<double>(y - x); };
  IoRates r;
  const double reads = d(a.reads, b.reads), writes = d(a.writes, b.writes);
  r.read_latency_ms = reads > 0 ? d(a.read_ms, b.read_ms) / reads : std::nan("");
  r.write_latency_ms = writes > 0 ? d(a.write_ms, b.write_ms) / writes : std::nan("");
  r.utilisation = std::min(1.0, d(a.io_ms, b.io_ms) / interval_ms);
  r.queue_depth = d(a.weighted_io_ms, b.weighted_io_ms) / interval_ms;
  r.in_flight = b.in_flight;
  return r;
}

CpuReading cpu_reading_from(const std::vector<kernel::CpuFreqStats>& cpus, float probe_ratio) {
  CpuReading r;
  r.values.assign(cpu_schema().channels.size(), kMissing);
  double sum = 0, mn = 1e9, mx = -1e9;
  std::size_t n = 0;
  double throttle = 0;
  bool any_throttle = false;
  for (const auto& c : cpus) {
    if (c.cur_khz && c.max_khz && *c.max_khz > 0) {
      const double ratio = static_cast<double>(*c.cur_khz) / static_cast<double>(*c.max_khz);
      sum += ratio, mn = std::min(mn, ratio), mx = std::max(mx, ratio), ++n;
    }
    if (c.core_throttle_count) {
      throttle += static_cast<double>(*c.core_throttle_count);
      any_throttle = true;
    }
  }
  if (n > 0) {
    r.values[0] = static_cast<float>(sum / static_cast<double>(n));
    r.values[1] = static_cast<float>(mn);
    r.values[2] = static_cast<float>(mx - mn);
  } else {
    r.absent.emplace_back("cpufreq");
  }
  if (any_throttle) {
    r.values[3] = static_cast<float>(throttle);
  } else {
    r.absent.emplace_back("thermal_throttle");
  }
  if (std::isnan(probe_ratio)) {
    r.absent.emplace_back("speed_probe");
  }
  r.values[4] = probe_ratio;
  return r;
}

namespace {

double time_loop_ns() {
  const auto t0 = std::chrono::steady_clock::now();
  // A dependent multiply-xor chain the compiler cannot fold; ~2 ms on a 3 GHz core.
  volatile uint64_t sink = 0;
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (int i = 0; i < 2'000'000; ++i) {
    x ^= x >> 13;
    x *= 0xff51afd7ed558ccdULL;
  }
  sink = x;
  (void)sink;
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

double SpeedProbe::calibrate(int runs) {
  double best = 1e30;
  for (int i = 0; i < std::max(1, runs); ++i) {
    best = std::min(best, time_loop_ns());
  }
  baseline_ns_ = best;
  return best;
}

float SpeedProbe::ratio(int runs) {
  if (baseline_ns_ <= 0) {
    calibrate();
  }
  double best = 1e30;
  for (int i = 0; i < std::max(1, runs); ++i) {
    best = std::min(best, time_loop_ns());
  }
  return static_cast<float>(std::min(baseline_ns_ / best, 2.0));
}

CpuReading read_cpu_reading(const std::string& root, SpeedProbe& probe) {
  const float ratio = probe.ratio();
  auto cpus = kernel::read_cpu_freq(root);
  if (!cpus) {
    CpuReading r = cpu_reading_from({}, ratio);
    r.absent.insert(r.absent.begin(), "cpu sysfs (" + cpus.error().message() + ")");
    return r;
  }
  return cpu_reading_from(*cpus, ratio);
}

}  // namespace ferry::predictor
