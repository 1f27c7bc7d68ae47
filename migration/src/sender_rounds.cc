// Source state machine, part 2: brownout rounds with the convergence policy, the
// blackout (pause, final dirty set, machine state, digests) and the commit handshake.
#include <fmt/format.h>

#include <algorithm>
#include <thread>

#include "digest.h"
#include "sender_impl.h"

namespace ferry::migration::detail {

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

  if (auto s = dispatch_pages(round, dirty); !s) {
    return s;
  }
  if (auto s = dispatch_disks(round); !s) {
    return s;
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

Status Sender::dispatch_pages(uint32_t round, const std::vector<uint64_t>& dirty) {
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
  return {};
}

Status Sender::dispatch_disks(uint32_t round) {
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
                 rr.wire_bytes, dirty_pages,      rr.duration_ns};
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
    const uint64_t data_pages = rr.codecs.raw + rr.codecs.zstd + rr.codecs.same;
    in.bandwidth_bytes_per_s = data_bandwidth_bytes_per_s(
        data_pages * kPageSize + rr.disk_bytes_sent, rr.duration_ns, rr.throughput_bytes_per_s);
    in.dirty_rate_bytes_per_s = rr.dirty_rate_pages_per_s * kPageSize;
    in.downtime_budget = opt_.downtime_target;
    in.risk_score = opt_.risk_score;
    // cppcheck-suppress danglingTempReference ; decide() returns by value (cppcheck 2.10 misreads the virtual call)
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
  return send_state_and_digest();
}

Status Sender::send_state_and_digest() {
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

}  // namespace ferry::migration::detail
