#include "ferry/migration/report.h"

#include <nlohmann/json.hpp>

namespace ferry::migration {

uint64_t MigrationReport::phase_duration_ns(MigrationPhase phase) const {
  for (const PhaseSpan& p : phases) {
    if (p.phase == phase && p.end_ns >= p.start_ns) {
      return p.end_ns - p.start_ns;
    }
  }
  return 0;
}

namespace {

nlohmann::json codecs_json(const CodecCounts& c) {
  return {{"zero", c.zero}, {"same", c.same}, {"raw", c.raw}, {"zstd", c.zstd}};
}

nlohmann::json round_json(const RoundReport& r) {
  return {{"round", r.round},
          {"blackout", r.blackout},
          {"start_ns", r.start_ns},
          {"duration_ns", r.duration_ns},
          {"pages_sent", r.pages_sent},
          {"codecs", codecs_json(r.codecs)},
          {"disk_bytes_sent", r.disk_bytes_sent},
          {"wire_bytes", r.wire_bytes},
          {"dirty_pages_found", r.dirty_pages_found},
          {"dirty_disk_bytes_found", r.dirty_disk_bytes_found},
          {"dirty_rate_pages_per_s", r.dirty_rate_pages_per_s},
          {"throughput_bytes_per_s", r.throughput_bytes_per_s},
          {"throttle_percent", r.throttle_percent}};
}

}  // namespace

nlohmann::json to_json(const MigrationReport& r) {
  nlohmann::json phases = nlohmann::json::array();
  for (const PhaseSpan& p : r.phases) {
    phases.push_back({{"phase", phase_name(p.phase)},
                      {"start_ns", p.start_ns},
                      {"end_ns", p.end_ns},
                      {"duration_ns", p.end_ns >= p.start_ns ? p.end_ns - p.start_ns : 0}});
  }
  nlohmann::json rounds = nlohmann::json::array();
  for (const RoundReport& round : r.rounds) {
    rounds.push_back(round_json(round));
  }
  nlohmann::json decisions = nlohmann::json::array();
  for (const ConvergenceDecision& d : r.decisions) {
    decisions.push_back({{"iteration", d.iteration},
                         {"action", action_name(d.action)},
                         {"throttle_percent", d.throttle_percent},
                         {"predicted_downtime_ms", d.predicted_downtime_ms},
                         {"reason", d.reason}});
  }
  return {{"ferry_migration_report", 1},
          {"role", r.role},
          {"outcome", r.outcome},
          {"error", r.error},
          {"peer", r.peer},
          {"start_ns", r.start_ns},
          {"end_ns", r.end_ns},
          {"total_ns", r.end_ns >= r.start_ns ? r.end_ns - r.start_ns : 0},
          {"phases", phases},
          {"rounds", rounds},
          {"decisions", decisions},
          {"memory_bytes", r.memory_bytes},
          {"vcpus", r.vcpus},
          {"disk_sizes", r.disk_sizes},
          {"channels", r.channels},
          {"compression", r.compression},
          {"downtime_target_ns", r.downtime_target_ns},
          {"max_bandwidth", r.max_bandwidth},
          {"pause_ns", r.pause_ns},
          {"resume_ns", r.resume_ns},
          {"blackout_ns", r.blackout_ns},
          {"source_blackout_ns", r.source_blackout_ns},
          {"digest_ns", r.digest_ns},
          {"machine_state_bytes", r.machine_state_bytes},
          {"max_throttle_percent", r.max_throttle_percent},
          {"pages_sent", r.pages_sent},
          {"codecs", codecs_json(r.codecs)},
          {"guest_bytes", r.guest_bytes},
          {"disk_bytes", r.disk_bytes},
          {"wire_bytes", r.wire_bytes},
          {"compression_ratio", r.compression_ratio}};
}

nlohmann::json to_json(const ProgressEvent& e) {
  return {{"event", "progress"},
          {"phase", phase_name(e.phase)},
          {"round", e.round},
          {"remaining_bytes", e.remaining_bytes},
          {"sent_bytes", e.sent_bytes},
          {"wire_bytes", e.wire_bytes},
          {"rate_bytes_per_s", e.rate_bytes_per_s},
          {"eta_s", e.eta_s},
          {"throttle_percent", e.throttle_percent},
          {"elapsed_ns", e.elapsed_ns}};
}

}  // namespace ferry::migration
