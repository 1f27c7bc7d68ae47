// Source state machine: pre-migration -> brownout -> blackout -> commit.
// Invariant: until Commit starts going out, every failure path resumes the guest here,
// stops dirty logging and tells the destination (best effort) to discard its copy.
#include "ferry/migration/sender.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include "digest.h"
#include "ferry/migration/dirty_set.h"
#include "ferry/migration/protocol.h"
#include "ferry/migration/wire.h"
#include "sender_pipeline.h"

namespace ferry::migration {

namespace {

using Status = Result<void, MigrationError>;

MigrationError vm_failure(MigrationPhase phase, const std::string& what, const VmPortError& e) {
  return MigrationError{MigrationErrc::VmPort, phase, GuestLocation::Invalid,
                        fmt::format("{}: {}", what, e.message)};
}

uint64_t random_session() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ monotonic_ns();
}

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
  Status harvest(uint64_t& dirty_pages, uint64_t& dirty_disk_bytes);
  Status wait_barrier();
  Status check_health();
  Status submit(size_t channel, SendJob job);
  Status send_control(RecordType type, std::vector<uint8_t> payload);
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

void Sender::enter_phase(MigrationPhase phase) {
  uint64_t now = realtime_ns();
  if (!report_.phases.empty()) {
    report_.phases.back().end_ns = now;
  }
  report_.phases.push_back({phase, now, 0});
  phase_ = phase;
  shared_.phase = phase;
}

Status Sender::check_health() {
  if (shared_.aborted) {
    std::lock_guard lock(shared_.fail_mu);
    if (shared_.failure) {
      return fail(*shared_.failure);
    }
    return fail(MigrationError{MigrationErrc::Cancelled, phase_, {}, "pipeline aborted"});
  }
  if (opt_.cancel != nullptr && opt_.cancel->load()) {
    return fail(MigrationError{MigrationErrc::Cancelled, phase_, {}, "cancelled by request"});
  }
  return {};
}

Status Sender::submit(size_t channel, SendJob job) {
  if (!pipes_[channel]->submit(std::move(job))) {
    if (auto h = check_health(); !h) {
      return h;
    }
    return fail(MigrationError{MigrationErrc::Cancelled, phase_, {}, "pipeline stopped"});
  }
  return {};
}

Status Sender::send_control(RecordType type, std::vector<uint8_t> payload) {
  SendJob job;
  job.kind = SendJob::Kind::Control;
  job.frame = frame_record(type, payload);
  return submit(0, std::move(job));
}

Status Sender::wait_barrier() {
  {
    std::lock_guard lock(shared_.barrier_mu);
    shared_.barrier_pending = pipes_.size();
  }
  for (size_t c = 0; c < pipes_.size(); ++c) {
    SendJob job;
    job.kind = SendJob::Kind::Barrier;
    if (auto s = submit(c, std::move(job)); !s) {
      return s;
    }
  }
  std::unique_lock lock(shared_.barrier_mu);
  while (shared_.barrier_pending > 0 && !shared_.aborted) {
    shared_.barrier_cv.wait_for(lock, std::chrono::milliseconds(50));
    if (opt_.cancel != nullptr && opt_.cancel->load()) {
      break;
    }
  }
  lock.unlock();
  return check_health();
}

Status Sender::pre_migration() {
  enter_phase(MigrationPhase::PreMigration);
  if (channels_.empty() || channels_.size() > kMaxChannels) {
    return fail(MigrationError{
        MigrationErrc::BadOptions,
        phase_,
        {},
        fmt::format("{} channels given (1..{} allowed)", channels_.size(), kMaxChannels)});
  }
  pages_ = GuestPages(vm_.ram_regions());
  VmDescription desc = vm_.describe();
  if (desc.memory_bytes != pages_.memory_bytes() || desc.disk_sizes.size() != vm_.disk_count()) {
    return fail(MigrationError{MigrationErrc::VmPort,
                               phase_,
                               {},
                               "VM description disagrees with its RAM regions or disks"});
  }
  report_.memory_bytes = desc.memory_bytes;
  report_.vcpus = desc.vcpus;
  report_.disk_sizes = desc.disk_sizes;
  Hello hello;
  hello.session = session_;
  hello.features = kFeatureSameAsBefore |
                   (opt_.compression.mode != CompressionSpec::Mode::Off ? kFeatureZstd : 0) |
                   (vm_.disk_count() > 0 ? kFeatureDisk : 0);
  hello.channel_count = static_cast<uint32_t>(channels_.size());
  hello.vcpus = desc.vcpus;
  hello.memory_bytes = desc.memory_bytes;
  hello.config_blob = desc.config_blob;
  disks_ = std::vector<SourceDisk>(vm_.disk_count());
  for (size_t i = 0; i < disks_.size(); ++i) {
    SourceDisk& d = disks_[i];
    d.disk = &vm_.disk(i);
    d.size = d.disk->size_bytes();
    d.block_size = d.disk->tracking_block_size();
    if (d.block_size < kPageSize || (d.block_size & (d.block_size - 1)) != 0 ||
        d.block_size > kMaxDiskExtent || d.size != desc.disk_sizes[i]) {
      return fail(MigrationError{
          MigrationErrc::VmPort,
          phase_,
          {},
          fmt::format("disk {}: bad size or tracking block size {}", i, d.block_size)});
    }
    d.blocks = block_count(d.size, d.block_size);
    d.held_block_hash.assign(d.blocks, 0);
    hello.disk_sizes.push_back(d.size);
    hello.disk_block_sizes.push_back(d.block_size);
  }
  for (auto& ch : channels_) {
    ch->set_timeout(opt_.io_timeout);
  }
  if (auto s = write_record(*channels_[0], RecordType::Hello, encode_payload(hello), phase_); !s) {
    return s;
  }
  for (uint32_t c = 1; c < channels_.size(); ++c) {
    ChannelJoin join;
    join.session = session_;
    join.channel = c;
    join.channel_count = static_cast<uint32_t>(channels_.size());
    if (auto s = write_record(*channels_[c], RecordType::ChannelJoin, encode_payload(join), phase_);
        !s) {
      return s;
    }
  }
  for (auto& ch : channels_) {
    if (auto f = ch->flush(); !f) {
      return fail(stream_failure(f.error(), phase_, "sending hello"));
    }
  }
  auto reply_rec = read_reply("HelloReply");
  if (!reply_rec) {
    return fail(reply_rec.error());
  }
  if (reply_rec->type != RecordType::HelloReply) {
    return fail(protocol_failure(
        phase_, fmt::format("expected HelloReply, got {}",
                            record_type_name(static_cast<uint16_t>(reply_rec->type)))));
  }
  auto reply = decode_hello_reply(reply_rec->payload);
  if (!reply) {
    return fail(protocol_failure(phase_, reply.error().detail));
  }
  if (reply->status != static_cast<uint16_t>(HelloStatus::Accepted)) {
    return fail(MigrationError{
        MigrationErrc::Refused, phase_, {}, fmt::format("destination refused: {}", reply->reason)});
  }
  return {};
}

Result<RawRecord, MigrationError> Sender::read_reply(const char* waiting_for) {
  ByteStream& ch = *channels_[0];
  ch.set_timeout(opt_.handshake_timeout);
  auto rec = read_record(ch, phase_);
  ch.set_timeout(opt_.io_timeout);
  if (!rec) {
    MigrationError e = rec.error();
    e.detail = fmt::format("waiting for {}: {}", waiting_for, e.detail);
    return fail(e);
  }
  if (rec->type == RecordType::Error) {
    auto msg = decode_wire_message(rec->payload);
    return fail(MigrationError{
        MigrationErrc::PeerFailed,
        phase_,
        {},
        fmt::format("destination failed: {}", msg ? msg->text : "(unreadable Error record)")});
  }
  return rec;
}

Status Sender::start_tracking() {
  // Start logging, then harvest once and drop the result: the first round reads every
  // page after this point anyway, and the KVM log may start all-set (INITIALLY_SET).
  if (auto r = vm_.start_dirty_log(); !r) {
    return fail(vm_failure(phase_, "starting dirty log", r.error()));
  }
  dirty_log_on_ = true;
  dirty_ = make_bitmap(pages_.page_count());
  if (auto r = vm_.harvest_dirty(dirty_); !r) {
    return fail(vm_failure(phase_, "harvesting dirty log", r.error()));
  }
  set_all(dirty_, pages_.page_count());
  for (size_t i = 0; i < disks_.size(); ++i) {
    SourceDisk& d = disks_[i];
    if (auto r = d.disk->start_dirty_tracking(); !r) {
      return fail(vm_failure(phase_, fmt::format("disk {}: start dirty tracking", i), r.error()));
    }
    disk_tracking_on_ = true;
    d.dirty = make_bitmap(d.blocks);
    if (auto r = d.disk->harvest_dirty(d.dirty); !r) {
      return fail(vm_failure(phase_, fmt::format("disk {}: harvest", i), r.error()));
    }
    set_all(d.dirty, d.blocks);
  }
  return {};
}

Status Sender::harvest(uint64_t& dirty_pages, uint64_t& dirty_disk_bytes) {
  if (auto r = vm_.harvest_dirty(dirty_); !r) {
    return fail(vm_failure(phase_, "harvesting dirty log", r.error()));
  }
  dirty_pages = count_set(dirty_);
  dirty_disk_bytes = 0;
  for (size_t i = 0; i < disks_.size(); ++i) {
    if (auto r = disks_[i].disk->harvest_dirty(disks_[i].dirty); !r) {
      return fail(vm_failure(phase_, fmt::format("disk {}: harvest", i), r.error()));
    }
    dirty_disk_bytes += count_set(disks_[i].dirty) * disks_[i].block_size;
  }
  return {};
}

Status Sender::send_round(uint32_t round, bool blackout) {
  RoundReport rr;
  rr.round = round;
  rr.blackout = blackout;
  rr.start_ns = realtime_ns();
  rr.throttle_percent = throttle_;
  const uint64_t t0 = monotonic_ns();
  const uint64_t zero0 = shared_.stats.zero, same0 = shared_.stats.same, raw0 = shared_.stats.raw,
                 zstd0 = shared_.stats.zstd, disk0 = shared_.stats.disk_bytes,
                 wire0 = shared_.stats.wire_bytes, guest0 = shared_.stats.guest_bytes;
  std::vector<uint64_t> dirty = set_indices(dirty_, pages_.page_count());
  std::fill(dirty_.begin(), dirty_.end(), 0);
  uint64_t disk_total = 0;
  for (SourceDisk& d : disks_) {
    disk_total += count_set(d.dirty) * d.block_size;
  }
  round_start_guest_bytes_ = guest0;
  round_total_bytes_ = dirty.size() * kPageSize + disk_total;
  round_ = round;

  std::vector<SendJob> pending(channels_.size());
  uint64_t dispatched = 0;
  for (uint64_t idx : dirty) {
    // A round can take seconds on a slow link: honour cancel while dispatching it.
    if ((++dispatched & 4095) == 0) {
      if (auto h = check_health(); !h) {
        return h;
      }
    }
    size_t c = channel_of_page(idx);
    pending[c].pages.push_back(idx);
    if (pending[c].pages.size() == kMaxPagesPerBatch) {
      pending[c].round = round;
      if (auto s = submit(c, std::move(pending[c])); !s) {
        return s;
      }
      pending[c] = SendJob{};
    }
  }
  for (size_t c = 0; c < pending.size(); ++c) {
    if (!pending[c].pages.empty()) {
      pending[c].round = round;
      if (auto s = submit(c, std::move(pending[c])); !s) {
        return s;
      }
    }
  }
  // Disk: runs of dirty blocks, cut at kMaxDiskExtent-aligned boundaries so that every
  // byte range always travels on the same channel.
  for (uint32_t di = 0; di < disks_.size(); ++di) {
    SourceDisk& d = disks_[di];
    const uint64_t per_extent = kMaxDiskExtent / d.block_size;
    std::vector<uint64_t> blocks = set_indices(d.dirty, d.blocks);
    std::fill(d.dirty.begin(), d.dirty.end(), 0);
    for (size_t i = 0; i < blocks.size();) {
      size_t j = i + 1;
      while (j < blocks.size() && blocks[j] == blocks[j - 1] + 1 &&
             blocks[j] / per_extent == blocks[i] / per_extent) {
        ++j;
      }
      SendJob job;
      job.kind = SendJob::Kind::Disk;
      job.round = round;
      job.disk = di;
      job.offset = blocks[i] * d.block_size;
      job.length = static_cast<uint32_t>(
          std::min<uint64_t>(blocks[j - 1] * d.block_size + d.block_size, d.size) - job.offset);
      if (auto s = submit((blocks[i] / per_extent + di) % channels_.size(), std::move(job)); !s) {
        return s;
      }
      i = j;
    }
  }
  if (auto s = wait_barrier(); !s) {
    return s;
  }
  rr.duration_ns = std::max<uint64_t>(monotonic_ns() - t0, 1);
  rr.pages_sent = dirty.size();
  rr.codecs = {shared_.stats.zero - zero0, shared_.stats.same - same0, shared_.stats.raw - raw0,
               shared_.stats.zstd - zstd0};
  rr.disk_bytes_sent = shared_.stats.disk_bytes - disk0;
  rr.wire_bytes = shared_.stats.wire_bytes - wire0;
  rr.throughput_bytes_per_s =
      static_cast<double>(shared_.stats.guest_bytes - guest0) * 1e9 / rr.duration_ns;
  report_.rounds.push_back(rr);
  return {};
}

Status Sender::brownout() {
  enter_phase(MigrationPhase::Brownout);
  ConvergencePolicy& policy = opt_.policy != nullptr ? *opt_.policy : default_policy_;
  for (uint32_t round = 0;; ++round) {
    if (auto s = send_round(round, false); !s) {
      return s;
    }
    uint64_t dirty_pages = 0;
    uint64_t dirty_disk = 0;
    if (auto s = harvest(dirty_pages, dirty_disk); !s) {
      return s;
    }
    RoundReport& rr = report_.rounds.back();
    rr.dirty_pages_found = dirty_pages;
    rr.dirty_disk_bytes_found = dirty_disk;
    rr.dirty_rate_pages_per_s = static_cast<double>(dirty_pages) * 1e9 / rr.duration_ns;
    RoundEnd end{round,         throttle_.load(), rr.pages_sent, rr.disk_bytes_sent,
                 rr.wire_bytes, dirty_pages, rr.duration_ns};
    if (auto s = send_control(RecordType::RoundEnd, encode_payload(end)); !s) {
      return s;
    }
    if (auto s = check_health(); !s) {
      return s;
    }
    ConvergenceInput in;
    in.iteration = round + 1;
    in.dirty_pages = dirty_pages;
    in.remaining_bytes = dirty_pages * kPageSize + dirty_disk;
    in.bandwidth_bytes_per_s = rr.throughput_bytes_per_s;
    in.dirty_rate_bytes_per_s = rr.dirty_rate_pages_per_s * kPageSize;
    in.downtime_budget = opt_.downtime_target;
    in.risk_score = opt_.risk_score;
    ConvergenceDecision d = policy.decide(in);
    report_.decisions.push_back(d);
    if (d.throttle_percent != throttle_) {
      throttle_ = d.throttle_percent;
      vm_.set_throttle_percent(throttle_);
      report_.max_throttle_percent = std::max(report_.max_throttle_percent, throttle_.load());
    }
    if (d.action == ConvergenceAction::SwitchOver) {
      round_ = round + 1;
      return {};
    }
  }
}

Status Sender::blackout() {
  enter_phase(MigrationPhase::Blackout);
  if (auto r = vm_.pause(); !r) {
    paused_ = true;  // pause is idempotent; make sure recovery resumes whatever stopped
    return fail(vm_failure(phase_, "pausing the guest", r.error()));
  }
  paused_ = true;
  report_.pause_ns = realtime_ns();
  if (auto s = send_control(RecordType::BlackoutBegin,
                            encode_payload(BlackoutBegin{report_.pause_ns, round_.load(), 0}));
      !s) {
    return s;
  }
  uint64_t dirty_pages = 0;
  uint64_t dirty_disk = 0;
  if (auto s = harvest(dirty_pages, dirty_disk); !s) {
    return s;
  }
  if (auto s = send_round(round_, true); !s) {
    return s;
  }
  for (size_t c = 0; c < pipes_.size(); ++c) {
    SendJob done;
    done.kind = SendJob::Kind::Done;
    if (auto s = submit(c, std::move(done)); !s) {
      return s;
    }
  }
  if (auto s = wait_barrier(); !s) {
    return s;
  }
  for (auto& p : pipes_) {
    p->finish();
  }
  // Channel 0 is now ours alone: state and digest go out directly.
  auto state = vm_.save_machine_state();
  if (!state) {
    return fail(vm_failure(phase_, "saving machine state", state.error()));
  }
  report_.machine_state_bytes = state->size();
  if (state->size() > kMaxMachineState) {
    return fail(MigrationError{MigrationErrc::VmPort,
                               phase_,
                               {},
                               fmt::format("machine state of {} bytes exceeds the {} limit",
                                           state->size(), kMaxMachineState)});
  }
  if (auto s = write_record(*channels_[0], RecordType::MachineState, *state, phase_); !s) {
    return s;
  }
  const uint64_t d0 = monotonic_ns();
  Digest digest;
  digest.regions =
      opt_.memory_digest == DigestMode::Full
          ? memory_digest_full(pages_, std::max(2u, std::thread::hardware_concurrency()))
          : memory_digest_from(pages_, shared_.held_hash);
  for (size_t i = 0; i < disks_.size(); ++i) {
    SourceDisk& d = disks_[i];
    if (opt_.disk_digest == DigestMode::Full) {
      auto dd = disk_digest_full(*d.disk, d.size, d.block_size);
      if (!dd) {
        return fail(vm_failure(phase_, fmt::format("disk {}: digest", i), dd.error()));
      }
      digest.disks.push_back(*dd);
    } else {
      digest.disks.push_back(disk_digest_from(d.size, d.block_size, d.held_block_hash));
    }
  }
  report_.digest_ns = monotonic_ns() - d0;
  if (auto s = write_record(*channels_[0], RecordType::Digest, encode_payload(digest), phase_);
      !s) {
    return s;
  }
  if (auto f = channels_[0]->flush(); !f) {
    return fail(stream_failure(f.error(), phase_, "sending digest"));
  }
  return {};
}

Status Sender::commit() {
  enter_phase(MigrationPhase::Commit);
  auto ready = read_reply("DestReady");
  if (!ready) {
    return fail(ready.error());
  }
  if (ready->type != RecordType::DestReady || !decode_dest_ready(ready->payload)) {
    return fail(protocol_failure(
        phase_, fmt::format("expected DestReady, got {}",
                            record_type_name(static_cast<uint16_t>(ready->type)))));
  }
  if (auto h = check_health(); !h) {
    return h;  // last chance to cancel: nothing has been committed yet
  }
  // The commit point: once any byte of Commit may have left, the destination may run
  // the guest, so no failure from here on resumes it here.
  commit_started_ = true;
  if (auto s =
          write_record(*channels_[0], RecordType::Commit, encode_payload(Commit{session_}), phase_);
      !s) {
    return s;
  }
  if (auto f = channels_[0]->flush(); !f) {
    return fail(stream_failure(f.error(), phase_, "sending Commit"));
  }
  auto resumed = read_reply("Resumed");
  if (!resumed) {
    MigrationError e = resumed.error();
    if (e.errc == MigrationErrc::PeerFailed) {
      commit_started_ = false;  // the destination said it did not resume: the guest is ours
    }
    return fail(e);
  }
  auto r = resumed->type == RecordType::Resumed
               ? decode_resumed(resumed->payload)
               : WireResult<Resumed>(fail(WireError{"unexpected record"}));
  if (!r) {
    return fail(protocol_failure(
        phase_, fmt::format("expected Resumed, got {}",
                            record_type_name(static_cast<uint16_t>(resumed->type)))));
  }
  report_.resume_ns = r->resume_realtime_ns;
  report_.blackout_ns = r->blackout_ns;
  report_.source_blackout_ns = realtime_ns() - report_.pause_ns;
  return {};
}

MigrationError Sender::recover(MigrationError error) {
  if (error.phase == MigrationPhase::Invalid) {
    error.phase = phase_;
  }
  if (commit_started_) {
    // Ambiguous: the destination may be running the guest. Keep ours paused and intact.
    error.errc = MigrationErrc::CommitUnknown;
    error.guest = GuestLocation::PausedOnSource;
    for (auto& p : pipes_) {
      p->abort();
    }
    vm_.stop_dirty_log();
    for (SourceDisk& d : disks_) {
      d.disk->stop_dirty_tracking();
    }
    return error;
  }
  // Guest first: every millisecond here is downtime.
  if (paused_) {
    if (auto r = vm_.resume(); !r) {
      error.detail += fmt::format("; resuming the guest failed too: {}", r.error().message);
    }
  }
  vm_.set_throttle_percent(0);
  error.guest = GuestLocation::RunningOnSource;
  for (size_t c = 1; c < channels_.size(); ++c) {
    channels_[c]->shutdown();
  }
  // Let channel 0's writer finish the frame in flight (bounded by io_timeout; the guest
  // already runs again) so the Cancel below lands on a record boundary and the
  // destination's Error record, if it sent one, can still be read.
  for (size_t c = 0; c < pipes_.size(); ++c) {
    pipes_[c]->abort(c == 0);
  }
  if (dirty_log_on_) {
    vm_.stop_dirty_log();
  }
  if (disk_tracking_on_) {
    for (SourceDisk& d : disks_) {
      d.disk->stop_dirty_tracking();
    }
  }
  // Best effort: tell the destination to discard, and pick up its own reason if it
  // closed on us (e.g. it rejected a record).
  ByteStream& ch0 = *channels_[0];
  ch0.set_timeout(std::chrono::milliseconds(500));
  WireMessage cancel{static_cast<uint16_t>(WireErrorCode::Internal),
                     static_cast<uint16_t>(error.phase), error.detail.substr(0, kMaxMessageText)};
  if (error.errc == MigrationErrc::Cancelled) {
    cancel.code = static_cast<uint16_t>(WireErrorCode::Operator);
  }
  (void)write_record(ch0, RecordType::Cancel, encode_payload(cancel), phase_);
  (void)ch0.flush();
  if (error.errc == MigrationErrc::Stream || error.errc == MigrationErrc::Timeout) {
    auto rec = read_record(ch0, phase_);
    if (rec && rec->type == RecordType::Error) {
      if (auto msg = decode_wire_message(rec->payload)) {
        error.errc = MigrationErrc::PeerFailed;
        error.detail = fmt::format("destination failed: {} (after: {})", msg->text, error.detail);
      }
    }
  }
  ch0.shutdown();
  return error;
}

void Sender::progress_loop() {
  const uint64_t start = monotonic_ns();
  uint64_t last_bytes = 0;
  uint64_t last_t = start;
  double rate = 0;
  std::unique_lock lock(progress_mu_);
  while (!progress_stop_) {
    progress_cv_.wait_for(lock, opt_.progress_interval);
    if (progress_stop_) {
      break;
    }
    const uint64_t now = monotonic_ns();
    const uint64_t sent = shared_.stats.guest_bytes;
    if (now > last_t) {
      double inst = static_cast<double>(sent - last_bytes) * 1e9 / (now - last_t);
      rate = rate == 0 ? inst : 0.5 * rate + 0.5 * inst;
    }
    last_bytes = sent;
    last_t = now;
    ProgressEvent e;
    e.phase = phase_;
    e.round = round_;
    uint64_t done = sent - round_start_guest_bytes_;
    e.remaining_bytes = round_total_bytes_ > done ? round_total_bytes_ - done : 0;
    e.sent_bytes = sent;
    e.wire_bytes = shared_.stats.wire_bytes;
    e.rate_bytes_per_s = rate;
    e.eta_s = rate > 0 ? static_cast<double>(e.remaining_bytes) / rate : -1;
    e.throttle_percent = throttle_;
    e.elapsed_ns = now - start;
    lock.unlock();
    if (progress_) {
      progress_(e);
    }
    lock.lock();
  }
}

void Sender::finish_report(const char* outcome) {
  report_.end_ns = realtime_ns();
  if (!report_.phases.empty()) {
    report_.phases.back().end_ns = report_.end_ns;
  }
  report_.outcome = outcome;
  report_.codecs = {shared_.stats.zero, shared_.stats.same, shared_.stats.raw, shared_.stats.zstd};
  report_.pages_sent = report_.codecs.total();
  report_.guest_bytes = shared_.stats.guest_bytes;
  report_.disk_bytes = shared_.stats.disk_bytes;
  report_.wire_bytes = shared_.stats.wire_bytes;
  report_.compression_ratio =
      report_.wire_bytes > 0 ? static_cast<double>(report_.guest_bytes) / report_.wire_bytes : 0;
}

Result<MigrationReport, MigrationError> Sender::run() {
  report_.role = "source";
  report_.start_ns = realtime_ns();
  report_.channels = static_cast<uint32_t>(channels_.size());
  report_.compression = to_string(opt_.compression);
  report_.downtime_target_ns = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(opt_.downtime_target).count());
  report_.max_bandwidth = opt_.max_bandwidth;
  report_.peer = channels_.empty() ? "" : channels_[0]->peer();
  std::thread progress([this] { progress_loop(); });

  Status status = pre_migration();
  if (status) {
    shared_.pages = &pages_;
    shared_.disks = &disks_;
    shared_.limiter = opt_.max_bandwidth > 0 ? &limiter_ : nullptr;
    shared_.compression = opt_.compression;
    shared_.held_hash.assign(pages_.page_count(), 0);
    shared_.held_known.assign(pages_.page_count(), 0);
    status = start_tracking();
  }
  if (status) {
    for (uint32_t c = 0; c < channels_.size(); ++c) {
      pipes_.push_back(std::make_unique<ChannelPipeline>(c, *channels_[c], shared_));
      pipes_.back()->start();
    }
    status = brownout();
  }
  if (status) {
    status = blackout();
  }
  if (status) {
    status = commit();
  }
  Result<MigrationReport, MigrationError> result;
  if (status) {
    vm_.stop_dirty_log();
    for (SourceDisk& d : disks_) {
      d.disk->stop_dirty_tracking();
    }
    vm_.set_throttle_percent(0);
    enter_phase(MigrationPhase::Completed);
    finish_report("completed");
    result = report_;
  } else {
    MigrationError e = recover(status.error());
    report_.error = e.message();
    finish_report("failed");
    if (opt_.failure_report != nullptr) {
      *opt_.failure_report = report_;
    }
    result = fail(e);
  }
  {
    std::lock_guard lock(progress_mu_);
    progress_stop_ = true;
    progress_cv_.notify_all();
  }
  progress.join();
  if (progress_) {
    // One last event so a display can show the final state (phase completed / failed).
    ProgressEvent last;
    last.phase = result ? MigrationPhase::Completed : phase_.load();
    last.round = round_;
    last.sent_bytes = shared_.stats.guest_bytes;
    last.wire_bytes = shared_.stats.wire_bytes;
    last.eta_s = 0;
    last.elapsed_ns = report_.end_ns - report_.start_ns;
    progress_(last);
  }
  pipes_.clear();
  return result;
}

}  // namespace

Result<MigrationReport, MigrationError> migrate_out(
    MigratableVm& vm, std::vector<std::unique_ptr<ByteStream>> channels,
    const SenderOptions& options, ProgressFn progress) {
  Sender sender(vm, std::move(channels), options, std::move(progress));
  return sender.run();
}

}  // namespace ferry::migration
