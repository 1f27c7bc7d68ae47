// Destination side of a live migration: migrate_in() checks the hello against this host's
// limits, builds the VM through the factory, applies pages and disk extents arriving on
// any channel in any order, loads the machine state, verifies the whole-memory and disk
// digests, and resumes the guest only when the source commits. It never runs a guest
// that did not arrive whole (docs/migration.md has the commit protocol).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "ferry/kernel-interfaces/result.h"
#include "ferry/migration/byte_stream.h"
#include "ferry/migration/migration_error.h"
#include "ferry/migration/report.h"
#include "ferry/migration/sender.h"  // DigestMode
#include "ferry/migration/vm_interface.h"

namespace ferry::migration {

/// Accepts one more incoming channel (used when the hello announces more channels than
/// migrate_in was given).
using ChannelAcceptor = std::function<StreamResult<std::unique_ptr<ByteStream>>()>;

struct ReceiverOptions {
  uint64_t max_memory_bytes = 64ull << 30;  // refuse guests larger than this
  uint32_t max_vcpus = 64;
  uint64_t max_disk_bytes = 1ull << 40;  // per disk
  /// A channel with no progress for this long fails the migration (rounds can be long).
  std::chrono::milliseconds io_timeout{30'000};
  /// How long to wait for Commit after DestReady before discarding the guest.
  std::chrono::milliseconds commit_timeout{60'000};
  /// Full re-hashes the destination's RAM / re-reads its image before DestReady (costs
  /// blackout time proportional to size); Tracked uses the hashes verified on arrival.
  DigestMode memory_digest = DigestMode::Tracked;
  DigestMode disk_digest = DigestMode::Tracked;
  ChannelAcceptor accept_channel;             // optional
  const std::atomic<bool>* cancel = nullptr;  // checked between records
  /// If set, receives the (partial) report when migrate_in fails.
  MigrationReport* failure_report = nullptr;
};

struct ReceivedVm {
  std::unique_ptr<MigratableVm> vm;  // running (resumed) when returned
  MigrationReport report;
};

/// Receives a migration over `channels` (any order; channel 0 is found by its Hello).
/// On success the guest has been resumed here and the source told so.
Result<ReceivedVm, MigrationError> migrate_in(std::vector<std::unique_ptr<ByteStream>> channels,
                                              const VmFactory& factory,
                                              const ReceiverOptions& options);

}  // namespace ferry::migration
