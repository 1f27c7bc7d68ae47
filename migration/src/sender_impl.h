// Private to the sender: the Sender state machine class, split over sender.cc
// (setup, hello, tracking), sender_rounds.cc (brownout, blackout, commit) and
// sender_finish.cc (recovery, progress, report).
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "ferry/migration/dirty_set.h"
#include "ferry/migration/protocol.h"
#include "ferry/migration/sender.h"
#include "ferry/migration/wire.h"
#include "sender_pipeline.h"

namespace ferry::migration::detail {

using Status = Result<void, MigrationError>;

/// "<what>: <VM port message>" as a VmPort error in `phase`.
MigrationError vm_failure(MigrationPhase phase, const std::string& what, const VmPortError& e);
/// A random session id for Hello / ChannelJoin / Commit.
uint64_t random_session();

/// The source state machine; one instance per migrate_out call.
class Sender {
 public:
  Sender(MigratableVm& vm, std::vector<std::unique_ptr<ByteStream>> channels,
         const SenderOptions& options, ProgressFn progress)
      : vm_(vm),
        channels_(std::move(channels)),
        opt_(options),
        progress_(std::move(progress)),
        default_policy_(DefaultConvergencePolicy::Config{options.max_rounds, 3, 0.8}),
        limiter_(options.max_bandwidth) {}

  Result<MigrationReport, MigrationError> run();

 private:
  Status pre_migration();
  Status start_tracking();
  Status brownout();
  Status blackout();
  Status commit();
  Status send_round(uint32_t round, bool blackout);
  Status dispatch_pages(uint32_t round, const std::vector<uint64_t>& dirty);
  Status dispatch_disks(uint32_t round);
  Status send_state_and_digest();
  Status build_hello(const VmDescription& desc, Hello& hello);
  Status run_phases();
  Status harvest(uint64_t& dirty_pages, uint64_t& dirty_disk_bytes);
  Status wait_barrier();
  Status check_health();
  Status submit(size_t channel, SendJob job);
  Status send_control(RecordType type, std::span<const uint8_t> payload);
  Result<RawRecord, MigrationError> read_reply(const char* waiting_for);
  MigrationError recover(MigrationError error);
  void enter_phase(MigrationPhase phase);
  void progress_loop();
  void finish_report(const char* outcome);
  size_t channel_of_page(uint64_t index) const {
    return (index / kMaxPagesPerBatch) % channels_.size();
  }

  MigratableVm& vm_;
  std::vector<std::unique_ptr<ByteStream>> channels_;
  const SenderOptions& opt_;
  ProgressFn progress_;
  DefaultConvergencePolicy default_policy_;
  RateLimiter limiter_;
  uint64_t session_ = random_session();

  GuestPages pages_;
  DirtyBitmap dirty_;
  std::vector<SourceDisk> disks_;
  PipelineShared shared_;
  std::vector<std::unique_ptr<ChannelPipeline>> pipes_;
  MigrationReport report_;
  std::atomic<uint32_t> round_{0};  // read by the progress thread
  std::atomic<unsigned> throttle_{0};

  std::atomic<MigrationPhase> phase_{MigrationPhase::PreMigration};
  std::atomic<uint64_t> round_total_bytes_{0};
  std::atomic<uint64_t> round_start_guest_bytes_{0};
  bool dirty_log_on_ = false;
  bool disk_tracking_on_ = false;
  bool paused_ = false;
  bool commit_started_ = false;

  std::mutex progress_mu_;
  std::condition_variable progress_cv_;
  bool progress_stop_ = false;
};

}  // namespace ferry::migration::detail
