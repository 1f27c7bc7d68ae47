#include "ferry/agent/telemetry_feed.h"

#include <algorithm>

#include <fmt/format.h>

#include "ferry/predictor/backblaze.h"
#include "ferry/predictor/cpu_synth.h"
#include "ferry/predictor/host_telemetry.h"

namespace ferry::agent {
namespace {

class ReplayFeed final : public TelemetryFeed {
 public:
  ReplayFeed(predictor::LabelledDevice device, std::string host, std::size_t start,
             std::size_t step)
      : device_(std::move(device)), host_(std::move(host)), step_(std::max<std::size_t>(step, 1)) {
    const std::size_t n = device_.history.samples.size();
    shown_ = std::min(start + 1, n);
    first_ = true;
  }

  std::string describe() const override {
    return fmt::format("replay of {} {} ({}), sample {} of {}",
                       predictor::device_kind_name(device_.history.kind),
                       device_.history.device_id, device_.history.model, shown_,
                       device_.history.samples.size());
  }

  predictor::DeviceTelemetryHistory next() override {
    if (!first_) {
      shown_ = std::min(shown_ + step_, device_.history.samples.size());
    }
    first_ = false;
    predictor::DeviceTelemetryHistory history = device_.history;
    history.host = host_;
    history.samples.resize(shown_);
    return history;
  }

 private:
  predictor::LabelledDevice device_;
  std::string host_;
  std::size_t step_;
  std::size_t shown_ = 0;
  bool first_ = true;
};

class LiveCpuFeed final : public TelemetryFeed {
 public:
  LiveCpuFeed(std::string host, std::string root) : root_(std::move(root)) {
    history_.device_id = host + "/cpu";
    history_.host = std::move(host);
    history_.model = "host-cpu";
    history_.kind = predictor::DeviceKind::Cpu;
  }

  std::string describe() const override {
    return fmt::format("live CPU telemetry under {} ({} samples)", root_, history_.samples.size());
  }

  predictor::DeviceTelemetryHistory next() override {
    auto reading = predictor::read_cpu_reading(root_, probe_);
    history_.samples.push_back({static_cast<int32_t>(history_.samples.size()), reading.values});
    // Features look back a bounded window; keep the history bounded too.
    constexpr std::size_t kKeep = 64;
    if (history_.samples.size() > kKeep) {
      history_.samples.erase(history_.samples.begin());
    }
    return history_;
  }

 private:
  std::string root_;
  predictor::SpeedProbe probe_;
  predictor::DeviceTelemetryHistory history_;
};

}  // namespace

std::unique_ptr<TelemetryFeed> replay_feed(predictor::LabelledDevice device, std::string host,
                                           std::size_t start_index, std::size_t step) {
  return std::make_unique<ReplayFeed>(std::move(device), std::move(host), start_index, step);
}

std::unique_ptr<TelemetryFeed> live_cpu_feed(std::string host, std::string root) {
  return std::make_unique<LiveCpuFeed>(std::move(host), std::move(root));
}

Result<predictor::LabelledDevice, std::string> load_backblaze_drive(const std::string& dir,
                                                                    const std::string& serial,
                                                                    std::size_t max_days) {
  predictor::LoadOptions options;
  options.max_days = max_days;
  auto dataset = predictor::load_backblaze_dataset(predictor::resolve_backblaze_dir(dir.empty()
      ? std::nullopt : std::optional<std::string>(dir)), options);
  if (!dataset) {
    return fail(dataset.error().message());
  }
  for (auto& device : dataset->devices) {
    if (device.history.device_id == serial) {
      // cppcheck-suppress returnStdMoveLocal ; an element of the dataset, not a local: move
      return std::move(device);
    }
  }
  return fail(fmt::format("drive '{}' is not in the Backblaze data ({} drives, {} days)", serial,
                          dataset->devices.size(), dataset->last_day - dataset->first_day + 1));
}

Result<predictor::LabelledDevice, std::string> synthetic_cpu_anomaly(const std::string& anomaly,
                                                                     uint64_t seed) {
  if (anomaly != predictor::kAnomalySustainedDrop && anomaly != predictor::kAnomalyOscillation &&
      anomaly != predictor::kAnomalySingleCore) {
    return fail(fmt::format("unknown CPU anomaly '{}' (known: {}, {}, {})", anomaly,
                            predictor::kAnomalySustainedDrop, predictor::kAnomalyOscillation,
                            predictor::kAnomalySingleCore));
  }
  predictor::CpuSynthConfig config;
  config.seed = seed;
  auto dataset = predictor::generate_cpu_telemetry(config);
  for (auto& device : dataset.devices) {
    if (device.anomaly == anomaly && device.failure_day) {
      // cppcheck-suppress returnStdMoveLocal ; an element of the dataset, not a local: move
      return std::move(device);
    }
  }
  return fail(fmt::format("the CPU generator (seed {}) made no failing host with '{}'", seed,
                          anomaly));
}

}  // namespace ferry::agent
