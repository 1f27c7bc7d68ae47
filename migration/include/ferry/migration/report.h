// MigrationReport: the typed record of one migration (phase timings, every round, every
// convergence decision, blackout measured on both sides, totals), written as JSON by
// `ferry migrate --report` and rendered by `ferry report`. ProgressEvent is the periodic
// progress sample the VMM streams as JSON lines over its control socket.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "ferry/migration/convergence.h"
#include "ferry/migration/migration_error.h"

namespace ferry::migration {

/// One phase, CLOCK_REALTIME nanoseconds (same-host clocks compare across processes).
struct PhaseSpan {
  MigrationPhase phase = MigrationPhase::Invalid;
  uint64_t start_ns = 0;
  uint64_t end_ns = 0;
};

/// How many pages went out with each encoding.
struct CodecCounts {
  uint64_t zero = 0;
  uint64_t same = 0;
  uint64_t raw = 0;
  uint64_t zstd = 0;
  uint64_t total() const { return zero + same + raw + zstd; }
};

struct RoundReport {
  uint32_t round = 0;
  bool blackout = false;  // the final round, sent with the guest paused
  uint64_t start_ns = 0;  // CLOCK_REALTIME
  uint64_t duration_ns = 0;
  uint64_t pages_sent = 0;
  CodecCounts codecs;
  uint64_t disk_bytes_sent = 0;
  uint64_t wire_bytes = 0;         // record bytes on all channels
  uint64_t dirty_pages_found = 0;  // dirty after this round (the next round's work)
  uint64_t dirty_disk_bytes_found = 0;
  double dirty_rate_pages_per_s = 0;
  double throughput_bytes_per_s = 0;  // guest bytes (uncompressed) per second
  unsigned throttle_percent = 0;
};

struct MigrationReport {
  std::string role;     // "source" or "destination"
  std::string outcome;  // "completed" or "failed"
  std::string error;    // MigrationError::message() when failed
  std::string peer;
  uint64_t start_ns = 0;
  uint64_t end_ns = 0;
  std::vector<PhaseSpan> phases;
  std::vector<RoundReport> rounds;
  std::vector<ConvergenceDecision> decisions;

  uint64_t memory_bytes = 0;
  uint32_t vcpus = 0;
  std::vector<uint64_t> disk_sizes;
  uint32_t channels = 0;
  std::string compression;
  uint64_t downtime_target_ns = 0;
  uint64_t max_bandwidth = 0;

  uint64_t pause_ns = 0;            // source pause, CLOCK_REALTIME
  uint64_t resume_ns = 0;           // destination resume, CLOCK_REALTIME
  uint64_t blackout_ns = 0;         // resume_ns - pause_ns (destination's measurement)
  uint64_t source_blackout_ns = 0;  // pause -> Resumed ack received, source's clock
  uint64_t digest_ns = 0;           // time spent computing/verifying digests
  uint64_t machine_state_bytes = 0;
  unsigned max_throttle_percent = 0;

  uint64_t pages_sent = 0;
  CodecCounts codecs;
  uint64_t guest_bytes = 0;  // uncompressed page + disk bytes moved
  uint64_t disk_bytes = 0;
  uint64_t wire_bytes = 0;       // all record bytes, all channels
  double compression_ratio = 0;  // guest_bytes / wire_bytes

  /// Duration of `phase` in ns, 0 if it never started.
  uint64_t phase_duration_ns(MigrationPhase phase) const;
};

/// JSON object with every field above (phases by name, decisions with reasons).
nlohmann::json to_json(const MigrationReport& report);

/// A progress sample, emitted at least every ~200 ms while a migration runs.
struct ProgressEvent {
  MigrationPhase phase = MigrationPhase::Invalid;
  uint32_t round = 0;
  uint64_t remaining_bytes = 0;  // guest bytes still to send in this round
  uint64_t sent_bytes = 0;       // guest bytes sent so far
  uint64_t wire_bytes = 0;
  double rate_bytes_per_s = 0;  // recent guest-byte throughput
  double eta_s = -1;            // remaining / rate; -1 when unknown
  unsigned throttle_percent = 0;
  uint64_t elapsed_ns = 0;
};

/// {"event":"progress","phase":"brownout",...}: one JSON line per event.
nlohmann::json to_json(const ProgressEvent& event);

}  // namespace ferry::migration
