#include "ferry/predictor/cpu_synth.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numbers>

namespace ferry::predictor {

namespace {

// splitmix64 + Box-Muller: the same numbers on every platform (std:: distributions are
// implementation-defined).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double normal() {
    const double u1 = std::max(uniform(), 1e-300), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }
  int range(int lo, int hi) { return lo + static_cast<int>(next() % static_cast<uint64_t>(hi - lo + 1)); }

 private:
  uint64_t state_;
};

struct HostPlan {
  std::string anomaly;
  int onset = -1;
  int fault = -1;
  int bad_core = 0;
  double depth = 0;   // drop fraction or oscillation amplitude
  int period = 3;
  bool has_throttle = true;
  bool model_b = false;
};

HostPlan plan_host(Rng& rng, const CpuSynthConfig& c) {
  HostPlan p;
  p.model_b = rng.uniform() < 0.4;
  p.has_throttle = rng.uniform() >= c.missing_throttle;
  if (rng.uniform() < c.anomaly_fraction) {
    static constexpr const char* kKinds[] = {kAnomalySustainedDrop, kAnomalyOscillation,
                                             kAnomalySingleCore};
    p.anomaly = kKinds[rng.next() % 3];
    p.onset = rng.range(std::min(8, c.steps - 1), std::max(8, c.steps - 3));
    p.fault = p.onset + rng.range(c.min_lead, c.max_lead);
    p.bad_core = rng.range(0, c.cores - 1);
    p.depth = p.anomaly == kAnomalyOscillation ? 0.10 + 0.10 * rng.uniform()
                                               : 0.12 + 0.20 * rng.uniform();
    p.period = rng.range(2, 4);
  }
  return p;
}

// Per-core frequency ratios (current / max) for one step.
std::vector<double> core_ratios(Rng& rng, const CpuSynthConfig& c, const HostPlan& p, int t,
                                double load, bool dip) {
  const double base = p.model_b ? 0.72 : 0.86;
  const double jitter = p.model_b ? 0.06 : 0.03;
  std::vector<double> r(static_cast<std::size_t>(c.cores));
  const double progress = p.onset >= 0 && t >= p.onset
                              ? std::min(1.0, static_cast<double>(t - p.onset + 1) / (p.fault - p.onset))
                              : 0.0;
  for (int k = 0; k < c.cores; ++k) {
    double v = base + load + jitter * rng.normal() - (dip ? 0.2 : 0.0);
    if (progress > 0 && p.anomaly == kAnomalySustainedDrop) {
      v *= 1.0 - p.depth * progress;
    } else if (progress > 0 && p.anomaly == kAnomalyOscillation) {
      v += p.depth * (0.4 + 0.6 * progress) * std::sin(2.0 * std::numbers::pi * t / p.period);
    } else if (progress > 0 && p.anomaly == kAnomalySingleCore && k == p.bad_core &&
               rng.uniform() < 0.3 + 0.7 * progress) {
      v = 0.35 + 0.15 * rng.uniform();
    }
    r[static_cast<std::size_t>(k)] = std::clamp(v, 0.05, 1.2);
  }
  return r;
}

}  // namespace

Dataset generate_cpu_telemetry(const CpuSynthConfig& c) {
  Rng rng(c.seed);
  Dataset ds;
  ds.schema = cpu_schema();
  ds.first_day = 0;
  ds.last_day = c.steps - 1;
  for (int h = 0; h < c.hosts; ++h) {
    const HostPlan p = plan_host(rng, c);
    LabelledDevice dev;
    dev.history.host = fmt::format("host{:04d}", h);
    dev.history.device_id = dev.history.host + "/cpu";
    dev.history.model = p.model_b ? "cpu-model-b" : "cpu-model-a";
    dev.history.kind = DeviceKind::Cpu;
    dev.anomaly = p.anomaly;
    double load = 0, throttle = 0;
    for (int t = 0; t < c.steps; ++t) {
      if (p.fault >= 0 && t > p.fault) {
        break;  // the host failed: it stops reporting
      }
      load = 0.7 * load + 0.05 * rng.normal();
      const bool dip = rng.uniform() < c.benign_dip_rate;
      const auto r = core_ratios(rng, c, p, t, load, dip);
      double sum = 0, mn = 10, mx = -10;
      for (double v : r) {
        sum += v, mn = std::min(mn, v), mx = std::max(mx, v);
      }
      const double mean = sum / c.cores;
      // Benign throttle events happen on healthy hosts too; the throttled core adds more.
      throttle += rng.uniform() < 0.02 ? 1 : 0;
      if (p.anomaly == kAnomalySingleCore && t >= p.onset && mn < 0.5) {
        throttle += rng.range(1, 3);
      }
      TelemetrySample s;
      s.day = t;
      s.values = {static_cast<float>(mean), static_cast<float>(mn), static_cast<float>(mx - mn),
                  p.has_throttle ? static_cast<float>(throttle) : kMissing,
                  static_cast<float>(mean * (1.0 + 0.03 * rng.normal()))};
      dev.history.samples.push_back(std::move(s));
    }
    if (p.fault >= 0 && p.fault < c.steps) {
      dev.failure_day = p.fault;
    }
    ds.devices.push_back(std::move(dev));
  }
  return ds;
}

}  // namespace ferry::predictor
