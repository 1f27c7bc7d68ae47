// Source side of a live migration: migrate_out() drives pre-migration -> brownout (pre-copy
// rounds of memory and disk) -> blackout (pause, last dirty pages, machine state, digests)
// -> commit over one or more ByteStream channels. Until the destination acknowledges the
// commit the source owns the guest: every failure resumes it here (docs/migration.md).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "ferry/kernel-interfaces/result.h"
#include "ferry/migration/byte_stream.h"
#include "ferry/migration/convergence.h"
#include "ferry/migration/migration_error.h"
#include "ferry/migration/page_codec.h"
#include "ferry/migration/report.h"
#include "ferry/migration/vm_interface.h"

namespace ferry::migration {

/// How a side computes the whole-memory / disk digest it compares at commit.
enum class DigestMode {
  Full,     // re-hash every page (and re-read every disk block) now: proves the contents
  Tracked,  // hash list kept while sending/receiving: proves the transfer, costs no blackout
};

struct SenderOptions {
  std::chrono::milliseconds downtime_target{10};
  uint64_t max_bandwidth = 0;  // bytes per second over all channels; 0 = unlimited
  CompressionSpec compression;
  uint32_t max_rounds = 30;
  /// A channel that makes no progress for this long fails the migration.
  std::chrono::milliseconds io_timeout{10'000};
  /// Waiting for HelloReply (the destination builds its VM) and for DestReady / Resumed.
  std::chrono::milliseconds handshake_timeout{60'000};
  /// Tracked keeps the blackout independent of memory size; Full additionally proves the
  /// dirty log missed nothing, at ~15-40 ms per GiB of blackout on each side that uses it.
  DigestMode memory_digest = DigestMode::Tracked;
  DigestMode disk_digest = DigestMode::Tracked;
  std::optional<double> risk_score;           // optional predictor input to the policy
  ConvergencePolicy* policy = nullptr;        // nullptr: DefaultConvergencePolicy(max_rounds)
  const std::atomic<bool>* cancel = nullptr;  // set true to cancel (honoured before commit)
  std::chrono::milliseconds progress_interval{200};
  /// If set, receives the (partial) report when migrate_out fails.
  MigrationReport* failure_report = nullptr;
};

/// Called from a progress thread at least every `progress_interval` while running.
using ProgressFn = std::function<void(const ProgressEvent&)>;

/// Migrates `vm` out over `channels` (channel 0 carries control records; pages are spread
/// over all of them). On success the destination runs the guest and the local VM is left
/// paused with dirty logging stopped: the caller tears it down. On failure the guest runs
/// here again (except GuestLocation::PausedOnSource, see MigrationError).
Result<MigrationReport, MigrationError> migrate_out(
    MigratableVm& vm, std::vector<std::unique_ptr<ByteStream>> channels,
    const SenderOptions& options, ProgressFn progress);

}  // namespace ferry::migration
