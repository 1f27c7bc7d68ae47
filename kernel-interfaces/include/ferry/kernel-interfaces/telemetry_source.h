// Shared plumbing of the /proc and /sys telemetry readers: every reader takes a root path
// ("/" in production, a fixture tree in tests), reads one text file, and hands the text to
// a pure parse_* function. A source the kernel does not provide (no cpufreq in a VM, no
// thermal_throttle on AMD) is reported as Absent, never replaced by a guessed value.
#pragma once

#include <string>

#include "ferry/kernel-interfaces/result.h"

namespace ferry::kernel {

enum class TelemetryErrc {
  Absent,      // the file or directory does not exist on this host
  Unreadable,  // it exists but reading failed (permissions, I/O)
  Malformed,   // the text does not have the documented layout
};

struct TelemetryError {
  TelemetryErrc errc;
  std::string path;    // the file (under the root) that was read
  std::string detail;  // what was wrong, e.g. "line 3: 9 fields"

  /// "/proc/diskstats: absent" / "...: malformed: line 3: expected 14, 18 or 20 fields".
  std::string message() const;
};

template <class T>
using TelemetryResult = Result<T, TelemetryError>;

/// Reads `root` + `rel` (rel starts with '/') whole. ENOENT/ENOTDIR give Absent.
TelemetryResult<std::string> read_telemetry_file(const std::string& root, const std::string& rel);

/// Parses one unsigned decimal number with optional surrounding whitespace (a sysfs value).
TelemetryResult<unsigned long long> parse_sysfs_u64(const std::string& text, const std::string& path);

}  // namespace ferry::kernel
