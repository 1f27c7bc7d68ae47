// Block-device I/O counters from /proc/diskstats and /sys/block/<dev>/stat, laid out as in
// the kernel's Documentation/admin-guide/iostats.rst (11 base fields, 4 discard fields
// since 4.18, 2 flush fields since 5.5). Latency per I/O comes from the ms/ios deltas.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ferry/kernel-interfaces/telemetry_source.h"

namespace ferry::kernel {

struct DiskStats {
  std::string name;  // "sda", "nvme0n1"
  uint32_t major = 0, minor = 0;
  uint64_t reads = 0, reads_merged = 0, sectors_read = 0, read_ms = 0;
  uint64_t writes = 0, writes_merged = 0, sectors_written = 0, write_ms = 0;
  uint64_t in_flight = 0, io_ms = 0, weighted_io_ms = 0;
  std::optional<uint64_t> discards, discards_merged, sectors_discarded, discard_ms;
  std::optional<uint64_t> flushes, flush_ms;
};

/// Parses /proc/diskstats text (14, 18 or 20 fields per line).
TelemetryResult<std::vector<DiskStats>> parse_diskstats(const std::string& text);
/// Parses one /sys/block/<name>/stat (11, 15 or 17 fields).
TelemetryResult<DiskStats> parse_block_stat(const std::string& name, const std::string& text);

/// Reads <root>/proc/diskstats.
TelemetryResult<std::vector<DiskStats>> read_diskstats(const std::string& root);
/// Reads <root>/sys/block/*/stat, sorted by name; Absent if /sys/block does not exist.
TelemetryResult<std::vector<DiskStats>> read_block_stats(const std::string& root);

}  // namespace ferry::kernel
