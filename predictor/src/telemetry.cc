#include "ferry/predictor/telemetry.h"

#include <fmt/format.h>

#include <charconv>

namespace ferry::predictor {

const char* device_kind_name(DeviceKind kind) {
  return kind == DeviceKind::Disk ? "disk" : "cpu";
}

TelemetrySchema disk_schema() {
  return {DeviceKind::Disk,
          {"smart_1_raw", "smart_5_raw", "smart_9_raw", "smart_194_raw", "smart_197_raw"}};
}

TelemetrySchema cpu_schema() {
  return {DeviceKind::Cpu,
          {"freq_ratio_mean", "freq_ratio_min", "freq_ratio_spread", "throttle_count",
           "probe_speed_ratio"}};
}

namespace {

// Howard Hinnant's days_from_civil: exact for the proleptic Gregorian calendar.
int32_t days_from_civil(int y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const int era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int>(doe) - 719468;
}

bool parse_int(std::string_view s, int& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

std::optional<int32_t> parse_iso_date(std::string_view text) {
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') {
    return std::nullopt;
  }
  int y = 0, m = 0, d = 0;
  if (!parse_int(text.substr(0, 4), y) || !parse_int(text.substr(5, 2), m) ||
      !parse_int(text.substr(8, 2), d)) {
    return std::nullopt;
  }
  static constexpr int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m < 1 || m > 12 || d < 1 || d > kDays[m - 1]) {
    return std::nullopt;
  }
  const int32_t days = days_from_civil(y, static_cast<unsigned>(m), static_cast<unsigned>(d));
  if (format_iso_date(days) != text) {  // rejects 2013-02-29
    return std::nullopt;
  }
  return days;
}

std::string format_iso_date(int32_t day) {
  const int32_t z = day + 719468;
  const int era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int y = static_cast<int>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return fmt::format("{:04d}-{:02d}-{:02d}", y + (m <= 2 ? 1 : 0), m, d);
}

}  // namespace ferry::predictor
