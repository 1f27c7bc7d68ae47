// Source state machine, part 3: the phase driver, recovery after a failure (resume the
// guest first, then cancel the destination), the progress thread and the report totals.
#include <fmt/format.h>

#include <thread>

#include "absent_pages.h"
#include "sender_impl.h"

namespace ferry::migration::detail {

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
  if (channels_.empty()) {
    return error;  // bad options: nothing was sent
  }
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

Status Sender::run_phases() {
  Status status = pre_migration();
  if (status) {
    shared_.pages = &pages_;
    shared_.disks = &disks_;
    shared_.limiter = opt_.max_bandwidth > 0 ? &limiter_ : nullptr;
    shared_.compression = opt_.compression;
    shared_.absent_is_zero = detail::absent_means_zero();
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
  return status;
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

  Status status = run_phases();
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

}  // namespace ferry::migration::detail
