#include "ferry/kernel-interfaces/telemetry_source.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <charconv>

#include "ferry/kernel-interfaces/unique_fd.h"

namespace ferry::kernel {

std::string TelemetryError::message() const {
  const char* what = errc == TelemetryErrc::Absent       ? "absent"
                     : errc == TelemetryErrc::Unreadable ? "unreadable"
                                                         : "malformed";
  return detail.empty() ? fmt::format("{}: {}", path, what)
                        : fmt::format("{}: {}: {}", path, what, detail);
}

TelemetryResult<std::string> read_telemetry_file(const std::string& root, const std::string& rel) {
  const std::string path = root + rel;
  auto fd = UniqueFd::open(path.c_str(), O_RDONLY);
  if (!fd) {
    const int e = fd.error().errnum();
    return fail(TelemetryError{e == ENOENT || e == ENOTDIR ? TelemetryErrc::Absent
                                                           : TelemetryErrc::Unreadable,
                               rel, e == ENOENT || e == ENOTDIR ? "" : fd.error().message()});
  }
  std::string out;
  char buf[4096];
  while (true) {
    const ssize_t n = retry_eintr([&] { return ::read(fd->get(), buf, sizeof buf); });
    if (n < 0) {
      return fail(TelemetryError{TelemetryErrc::Unreadable, rel, last_error("read").message()});
    }
    if (n == 0) {
      return out;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
}

TelemetryResult<unsigned long long> parse_sysfs_u64(const std::string& text,
                                                    const std::string& path) {
  std::size_t b = text.find_first_not_of(" \t\n");
  std::size_t e = text.find_last_not_of(" \t\n");
  if (b == std::string::npos) {
    return fail(TelemetryError{TelemetryErrc::Malformed, path, "empty"});
  }
  unsigned long long v = 0;
  const char* first = text.data() + b;
  const char* last = text.data() + e + 1;
  auto [p, ec] = std::from_chars(first, last, v);
  if (ec != std::errc() || p != last) {
    return fail(TelemetryError{TelemetryErrc::Malformed, path,
                               fmt::format("'{}' is not an unsigned number", std::string(first, last))});
  }
  return v;
}

}  // namespace ferry::kernel
