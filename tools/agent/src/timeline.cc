#include "ferry/agent/timeline.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

namespace ferry::agent {

std::string utc_timestamp() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&seconds, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000);
}

Timeline::Timeline(std::string host, const std::string& path, bool echo)
    : host_(std::move(host)), echo_(echo) {
  if (!path.empty()) {
    file_ = std::fopen(path.c_str(), "ae");
    if (file_ == nullptr) {
      open_error_ = fmt::format("cannot open timeline '{}': {}", path, std::strerror(errno));
    }
  }
}

Timeline::~Timeline() {
  if (file_ != nullptr) {
    std::fclose(file_);
  }
}

bool Timeline::ok(std::string* why) const {
  if (!open_error_.empty() && why != nullptr) {
    *why = open_error_;
  }
  return open_error_.empty();
}

void Timeline::record(std::string_view event, std::string_view detail) {
  std::string line = fmt::format("{} {} {:<18} {}\n", utc_timestamp(), host_, event, detail);
  std::lock_guard lock(mutex_);
  if (file_ != nullptr) {
    std::fputs(line.c_str(), file_);
    std::fflush(file_);
  }
  if (echo_) {
    std::fputs(line.c_str(), stdout);
    std::fflush(stdout);
  }
}

}  // namespace ferry::agent
