// Plain telemetry records the predictor consumes: a schema (which channels a device
// reports), per-device histories of samples, and labelled datasets for training. These are
// the types the fleet agent hands to RiskModel::score(); no VMM or migration types here.
// A missing reading is NaN ("not reported"), never a made-up value.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace ferry::predictor {

enum class DeviceKind { Disk, Cpu };

/// "disk" / "cpu".
const char* device_kind_name(DeviceKind kind);

/// Which channels a device of this kind reports, in the order of TelemetrySample::values.
struct TelemetrySchema {
  DeviceKind kind = DeviceKind::Disk;
  std::vector<std::string> channels;

  bool operator==(const TelemetrySchema&) const = default;
};

/// The disk schema: the SMART raw attributes the 2013 Backblaze data populates.
TelemetrySchema disk_schema();
/// The host CPU schema: frequency ratios, per-core spread, throttle counter, speed probe.
TelemetrySchema cpu_schema();

inline constexpr float kMissing = std::numeric_limits<float>::quiet_NaN();

/// One reading of every channel at one time step (a day, or one poll of the fleet).
struct TelemetrySample {
  int32_t day = 0;            // time step: days since 1970-01-01, or a poll counter
  std::vector<float> values;  // one per schema channel; NaN = not reported
};

/// Everything known about one device, oldest sample first.
struct DeviceTelemetryHistory {
  std::string device_id;  // disk serial or "host/cpu"
  std::string host;       // host the device sits in (the unit that gets evacuated)
  std::string model;      // drive or CPU model: features are normalised per model
  std::vector<TelemetrySample> samples;
  DeviceKind kind = DeviceKind::Disk;  // checked against the model's schema when scoring
};

/// A history plus ground truth: the time step of the failure, if it failed.
struct LabelledDevice {
  DeviceTelemetryHistory history;
  std::optional<int32_t> failure_day;
  std::string anomaly;  // synthetic data only: the injected anomaly type
};

/// A labelled collection of device histories over [first_day, last_day].
struct Dataset {
  TelemetrySchema schema;
  std::vector<LabelledDevice> devices;
  int32_t first_day = 0;
  int32_t last_day = -1;
};

/// Days since 1970-01-01 for a "YYYY-MM-DD" date; nullopt when it is not a valid date.
std::optional<int32_t> parse_iso_date(std::string_view text);
/// "YYYY-MM-DD" for days since 1970-01-01.
std::string format_iso_date(int32_t day);

}  // namespace ferry::predictor
