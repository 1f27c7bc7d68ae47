// Fuzzes the host telemetry parsers the predictor reads live: /proc/diskstats,
// /sys/block/<dev>/stat, single sysfs numbers, `smartctl --json -A` output and ISO dates,
// plus io_rates() between two parsed stat snapshots (counters from the input, so
// backwards and huge values occur). The first byte picks the parser; the rest is text.
#include <cmath>
#include <cstdint>
#include <string>

#include "ferry/kernel-interfaces/telemetry_diskstats.h"
#include "ferry/kernel-interfaces/telemetry_source.h"
#include "ferry/predictor/host_telemetry.h"
#include "ferry/predictor/telemetry.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ferry;
  if (size == 0) {
    return 0;
  }
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 6) {
    case 0:
      (void)kernel::parse_diskstats(text);
      break;
    case 1:
      (void)kernel::parse_block_stat("sda", text);
      break;
    case 2:
      (void)kernel::parse_sysfs_u64(text, "/sys/fuzz");
      break;
    case 3:
      (void)predictor::parse_smartctl_json(text);
      break;
    case 4:
      if (auto day = predictor::parse_iso_date(text)) {
        // A parsed date formats back to a date that parses to the same day.
        if (predictor::parse_iso_date(predictor::format_iso_date(*day)) != day) {
          __builtin_trap();
        }
      }
      break;
    default: {
      // Two snapshots separated by '|', interval from the second byte.
      const size_t bar = text.find('|');
      if (bar == std::string::npos) {
        break;
      }
      auto before = kernel::parse_block_stat("sda", text.substr(0, bar));
      auto after = kernel::parse_block_stat("sda", text.substr(bar + 1));
      if (before && after) {
        const double interval = size > 1 ? data[1] * 10.0 : 0.0;
        (void)predictor::io_rates(*before, *after, interval);
      }
      break;
    }
  }
  return 0;
}
