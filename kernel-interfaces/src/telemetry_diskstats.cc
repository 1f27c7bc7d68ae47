#include "ferry/kernel-interfaces/telemetry_diskstats.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <sstream>

namespace ferry::kernel {

namespace {

std::vector<std::string> words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string w; in >> w;) {
    out.push_back(w);
  }
  return out;
}

bool to_u64(const std::string& s, uint64_t& v) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size();
}

// Fills the counters from `f` starting at the first counter field.
bool fill_counters(const std::vector<std::string>& f, std::size_t at, DiskStats& d) {
  std::vector<uint64_t> v(f.size() - at);
  for (std::size_t i = at; i < f.size(); ++i) {
    if (!to_u64(f[i], v[i - at])) {
      return false;
    }
  }
  uint64_t* base[] = {&d.reads, &d.reads_merged, &d.sectors_read, &d.read_ms, &d.writes,
                      &d.writes_merged, &d.sectors_written, &d.write_ms, &d.in_flight, &d.io_ms,
                      &d.weighted_io_ms};
  for (std::size_t i = 0; i < 11; ++i) {
    *base[i] = v[i];
  }
  if (v.size() >= 15) {
    d.discards = v[11], d.discards_merged = v[12], d.sectors_discarded = v[13], d.discard_ms = v[14];
  }
  if (v.size() >= 17) {
    d.flushes = v[15], d.flush_ms = v[16];
  }
  return true;
}

}  // namespace

TelemetryResult<std::vector<DiskStats>> parse_diskstats(const std::string& text) {
  std::vector<DiskStats> out;
  std::istringstream in(text);
  std::size_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    const auto f = words(line);
    if (f.empty()) {
      continue;
    }
    DiskStats d;
    uint64_t major = 0, minor = 0;
    const bool sized = f.size() == 14 || f.size() == 18 || f.size() == 20;
    if (!sized || !to_u64(f[0], major) || !to_u64(f[1], minor) || !fill_counters(f, 3, d)) {
      return fail(TelemetryError{TelemetryErrc::Malformed, "/proc/diskstats",
                                 fmt::format("line {}: {} fields or a non-number", line_no, f.size())});
    }
    d.major = static_cast<uint32_t>(major), d.minor = static_cast<uint32_t>(minor);
    d.name = f[2];
    out.push_back(std::move(d));
  }
  return out;
}

TelemetryResult<DiskStats> parse_block_stat(const std::string& name, const std::string& text) {
  const auto f = words(text);
  DiskStats d;
  d.name = name;
  const bool sized = f.size() == 11 || f.size() == 15 || f.size() == 17;
  if (!sized || !fill_counters(f, 0, d)) {
    return fail(TelemetryError{TelemetryErrc::Malformed, "/sys/block/" + name + "/stat",
                               fmt::format("{} fields or a non-number", f.size())});
  }
  return d;
}

TelemetryResult<std::vector<DiskStats>> read_diskstats(const std::string& root) {
  auto text = read_telemetry_file(root, "/proc/diskstats");
  if (!text) {
    return fail(text.error());
  }
  return parse_diskstats(*text);
}

TelemetryResult<std::vector<DiskStats>> read_block_stats(const std::string& root) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path dir = fs::path(root + "/sys/block");
  if (!fs::is_directory(dir, ec)) {
    return fail(TelemetryError{TelemetryErrc::Absent, "/sys/block", ""});
  }
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  std::vector<DiskStats> out;
  for (const auto& n : names) {
    auto text = read_telemetry_file(root, "/sys/block/" + n + "/stat");
    if (!text) {
      if (text.error().errc == TelemetryErrc::Absent) {
        continue;  // an entry without stat (not a block device) is skipped
      }
      return fail(text.error());
    }
    auto d = parse_block_stat(n, *text);
    if (!d) {
      return fail(d.error());
    }
    out.push_back(std::move(*d));
  }
  return out;
}

}  // namespace ferry::kernel
