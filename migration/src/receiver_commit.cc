// Destination, control path: the channel-0 record loop (state machine), verification of
// the whole-memory and disk digests, and the Commit -> resume -> Resumed handshake.
#include <fmt/format.h>

#include <algorithm>
#include <thread>

#include "digest.h"
#include "receiver_impl.h"

namespace ferry::migration::detail {

Status Receiver::control_loop() {
  enter_phase(MigrationPhase::Brownout);
  ByteStream& c0 = *ch_[0];
  BlockDecoder decoder;
  for (uint32_t c = 1; c < ch_.size(); ++c) {
    threads_.emplace_back([this, c] { data_channel(c); });
  }
  bool digest_seen = false;
  // NOLINTNEXTLINE(bugprone-infinite-loop): handle_control sets digest_seen by reference
  while (!digest_seen) {
    if (opt_.cancel != nullptr && opt_.cancel->load()) {
      return fail(MigrationError{MigrationErrc::Cancelled, phase_, {}, "cancelled by request"});
    }
    auto rec = read_record(c0, phase_);
    if (!rec) {
      if (auto f = first_failure(); !f) {
        return f;  // a data channel failed first
      }
      return fail(rec.error());
    }
    wire_bytes_ += rec->wire_size();
    if (failed_) {
      return first_failure();
    }
    if (auto st = handle_control(*rec, decoder, digest_seen); !st) {
      return st;
    }
  }
  return {};
}

Status Receiver::handle_control(RawRecord& rec, BlockDecoder& decoder, bool& digest_seen) {
  const bool blackout = phase_ == MigrationPhase::Blackout;
  const bool c0_done = channel_done_[0] != 0;
  switch (rec.type) {
    case RecordType::PageBatch:
    case RecordType::DiskBatch:
      if (c0_done) {
        return fail(proto("data record after ChannelDone on channel 0"));
      }
      return apply_data(rec, decoder, 0);
    case RecordType::RoundEnd:
      return on_round_end(rec.payload, blackout);
    case RecordType::BlackoutBegin:
      return on_blackout_begin(rec.payload, blackout);
    case RecordType::ChannelDone: {
      auto v = decode_channel_done(rec.payload);
      if (!v || !blackout || c0_done) {
        return fail(proto(v ? "ChannelDone outside the blackout" : v.error().detail));
      }
      return check_done(*v, 0);
    }
    case RecordType::MachineState:
      if (!blackout || !c0_done || have_state_) {
        return fail(
            proto("MachineState out of order (expected after ChannelDone in the blackout, once)"));
      }
      machine_state_ = std::move(rec.payload);
      have_state_ = true;
      return {};
    case RecordType::Digest: {
      if (!have_state_) {
        return fail(proto("Digest before MachineState"));
      }
      auto v = decode_digest(rec.payload);
      if (!v) {
        return fail(proto(v.error().detail));
      }
      digest_ = std::move(*v);
      digest_seen = true;
      return {};
    }
    case RecordType::Cancel:
      return on_cancel(rec.payload);
    default:
      return fail(proto(fmt::format("unexpected {} record in {}",
                                    record_type_name(static_cast<uint16_t>(rec.type)),
                                    phase_name(phase_))));
  }
}

Status Receiver::on_round_end(std::span<const uint8_t> payload, bool blackout) {
  auto v = decode_round_end(payload);
  if (!v || blackout) {
    return fail(proto(v ? "RoundEnd during blackout" : v.error().detail));
  }
  RoundReport rr;
  rr.round = v->round;
  rr.duration_ns = v->duration_ns;
  rr.pages_sent = v->pages;
  rr.disk_bytes_sent = v->disk_bytes;
  rr.wire_bytes = v->wire_bytes;
  rr.dirty_pages_found = v->dirty_pages;
  rr.throttle_percent = v->throttle_percent;
  report_.rounds.push_back(rr);
  return {};
}

Status Receiver::on_blackout_begin(std::span<const uint8_t> payload, bool blackout) {
  auto v = decode_blackout_begin(payload);
  if (!v || blackout) {
    return fail(proto(v ? "second BlackoutBegin" : v.error().detail));
  }
  report_.pause_ns = v->pause_realtime_ns;
  enter_phase(MigrationPhase::Blackout);
  return {};
}

Status Receiver::on_cancel(std::span<const uint8_t> payload) {
  auto v = decode_wire_message(payload);
  sent_error_ = true;  // the source is gone; no point answering
  return fail(MigrationError{
      MigrationErrc::PeerFailed,
      phase_,
      {},
      fmt::format("source cancelled: {}", v ? v->text : "(unreadable Cancel record)")});
}

Status Receiver::verify_and_ready() {
  for (auto& t : threads_) {
    t.join();
  }
  threads_.clear();
  if (auto f = first_failure(); !f) {
    return f;
  }
  for (size_t c = 0; c < channel_done_.size(); ++c) {
    if (!channel_done_[c]) {
      return fail(proto(fmt::format("channel {} ended without ChannelDone", c)));
    }
  }
  const uint64_t t0 = monotonic_ns();
  // Verify memory and disks before loading the machine state: loading it (kvmclock,
  // TSC MSRs) lets KVM itself write guest RAM, which would be a false mismatch.
  if (auto s = verify_memory(); !s) {
    return s;
  }
  if (auto s = verify_disks(); !s) {
    return s;
  }
  if (auto r = vm_->load_machine_state(machine_state_); !r) {
    return fail(MigrationError{MigrationErrc::VmPort,
                               phase_,
                               {},
                               fmt::format("loading machine state: {}", r.error().message)});
  }
  report_.machine_state_bytes = machine_state_.size();
  report_.digest_ns = monotonic_ns() - t0;
  DestReady ready{machine_state_.size(), report_.digest_ns};
  if (auto s = write_record(*ch_[0], RecordType::DestReady, encode_payload(ready), phase_); !s) {
    return s;
  }
  if (auto f = ch_[0]->flush(); !f) {
    return fail(stream_failure(f.error(), phase_, "sending DestReady"));
  }
  return {};
}

Status Receiver::verify_memory() {
  std::vector<RegionDigest> mine =
      opt_.memory_digest == DigestMode::Full
          ? memory_digest_full(pages_, std::max(2u, std::thread::hardware_concurrency()))
          : memory_digest_from(pages_, page_hash_);
  if (digest_.regions.size() != mine.size()) {
    return fail(MigrationError{MigrationErrc::DigestMismatch,
                               phase_,
                               {},
                               fmt::format("digest covers {} regions, guest has {}",
                                           digest_.regions.size(), mine.size())});
  }
  for (size_t i = 0; i < mine.size(); ++i) {
    const RegionDigest& a = digest_.regions[i];
    if (a.gpa != mine[i].gpa || a.size != mine[i].size || a.hash != mine[i].hash) {
      return fail(MigrationError{MigrationErrc::DigestMismatch,
                                 phase_,
                                 {},
                                 fmt::format("memory digest mismatch in region {:#x}+{:#x}: "
                                             "source {:016x}, destination {:016x}",
                                             a.gpa, a.size, a.hash, mine[i].hash)});
    }
  }
  return {};
}

Status Receiver::verify_disks() {
  if (digest_.disks.size() != disks_.size()) {
    return fail(MigrationError{MigrationErrc::DigestMismatch, phase_, {}, "disk count differs"});
  }
  for (size_t i = 0; i < disks_.size(); ++i) {
    DestDisk& d = disks_[i];
    if (auto f = d.disk->flush(); !f) {
      return fail(MigrationError{MigrationErrc::VmPort,
                                 phase_,
                                 {},
                                 fmt::format("flushing disk {}: {}", i, f.error().message)});
    }
    DiskDigest theirs = digest_.disks[i];
    auto mine_d = opt_.disk_digest == DigestMode::Full
                      ? disk_digest_full(*d.disk, d.size, d.block_size)
                      : VmResult<DiskDigest>(disk_digest_from(d.size, d.block_size, d.block_hash));
    if (!mine_d) {
      return fail(MigrationError{MigrationErrc::VmPort,
                                 phase_,
                                 {},
                                 fmt::format("reading disk {}: {}", i, mine_d.error().message)});
    }
    if (theirs.size != mine_d->size || theirs.block_size != mine_d->block_size ||
        theirs.hash != mine_d->hash) {
      return fail(MigrationError{MigrationErrc::DigestMismatch,
                                 phase_,
                                 {},
                                 fmt::format("disk {} digest mismatch: source {:016x}, "
                                             "destination {:016x}",
                                             i, theirs.hash, mine_d->hash)});
    }
  }
  return {};
}

Status Receiver::await_commit() {
  enter_phase(MigrationPhase::Commit);
  ByteStream& c0 = *ch_[0];
  c0.set_timeout(opt_.commit_timeout);
  auto rec = read_record(c0, phase_);
  if (!rec) {
    MigrationError e = rec.error();
    e.detail = "waiting for Commit: " + e.detail;
    return fail(e);
  }
  if (rec->type == RecordType::Cancel) {
    auto v = decode_wire_message(rec->payload);
    sent_error_ = true;
    return fail(MigrationError{
        MigrationErrc::PeerFailed,
        phase_,
        {},
        fmt::format("source cancelled before commit: {}", v ? v->text : "(unreadable)")});
  }
  auto commit = rec->type == RecordType::Commit ? decode_commit(rec->payload)
                                                : WireResult<Commit>(fail(WireError{""}));
  if (!commit || commit->session != hello_->session) {
    return fail(proto(fmt::format("expected Commit for this session, got {}",
                                  record_type_name(static_cast<uint16_t>(rec->type)))));
  }
  if (auto r = vm_->resume(); !r) {
    // Tell the source we are NOT running it, so it can safely resume its copy.
    return fail(MigrationError{MigrationErrc::VmPort,
                               phase_,
                               {},
                               fmt::format("resuming the guest: {}", r.error().message)});
  }
  report_.resume_ns = realtime_ns();
  report_.blackout_ns = report_.pause_ns > 0 && report_.resume_ns > report_.pause_ns
                            ? report_.resume_ns - report_.pause_ns
                            : 0;
  Resumed resumed{report_.resume_ns, report_.blackout_ns};
  // The guest runs here now; a lost Resumed leaves the source paused, which is the
  // documented ambiguous window -- never a second running copy.
  (void)write_record(c0, RecordType::Resumed, encode_payload(resumed), phase_);
  (void)c0.flush();
  return {};
}

}  // namespace ferry::migration::detail
