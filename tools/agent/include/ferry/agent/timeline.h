// The evacuation timeline: an incident log of what an agent decided and did, one line per
// event, "<UTC time> <host> <EVENT> <detail>", appended to a file and echoed to stdout.
// Events: STARTED, GUEST-STARTED, GUEST-ADOPTED, GUEST-EXITED, PREDICTED, EVACUATION-STARTED,
// MIGRATION-STARTED, MIGRATED, MIGRATION-FAILED, NO-DESTINATION, HOST-DRAINED,
// RECEIVING, RECEIVED, RECEIVE-FAILED, LEASE-LOST, STOPPED.
#pragma once

#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>

namespace ferry::agent {

class Timeline {
 public:
  /// `path` may be empty (stdout only).
  Timeline(std::string host, const std::string& path, bool echo = true);
  ~Timeline();
  Timeline(const Timeline&) = delete;
  Timeline& operator=(const Timeline&) = delete;

  /// False if the file could not be opened (the message says why).
  bool ok(std::string* why) const;
  void record(std::string_view event, std::string_view detail);

 private:
  std::string host_;
  std::FILE* file_ = nullptr;
  std::string open_error_;
  bool echo_;
  std::mutex mutex_;
};

/// "2026-11-25T20:41:02.123Z" for now.
std::string utc_timestamp();

}  // namespace ferry::agent
