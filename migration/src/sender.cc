// Source state machine: pre-migration -> brownout -> blackout -> commit.
// Invariant: until Commit starts going out, every failure path resumes the guest here,
// stops dirty logging and tells the destination (best effort) to discard its copy.
// This file: setup, hello exchange, dirty tracking, and the public entry point.
#include <fmt/format.h>

#include <random>

#include "digest.h"
#include "sender_impl.h"

namespace ferry::migration::detail {

MigrationError vm_failure(MigrationPhase phase, const std::string& what, const VmPortError& e) {
  return MigrationError{MigrationErrc::VmPort, phase, GuestLocation::Invalid,
                        fmt::format("{}: {}", what, e.message)};
}

uint64_t random_session() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ monotonic_ns();
}

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

Status Sender::send_control(RecordType type, std::span<const uint8_t> payload) {
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
  hello.vcpus = desc.vcpus;
  hello.memory_bytes = desc.memory_bytes;
  hello.config_blob = desc.config_blob;
  if (auto s = build_hello(desc, hello); !s) {
    return s;
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

Status Sender::build_hello(const VmDescription& desc, Hello& hello) {
  hello.session = session_;
  hello.features = kFeatureSameAsBefore |
                   (opt_.compression.mode != CompressionSpec::Mode::Off ? kFeatureZstd : 0) |
                   (vm_.disk_count() > 0 ? kFeatureDisk : 0);
  hello.channel_count = static_cast<uint32_t>(channels_.size());
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

}  // namespace ferry::migration::detail

namespace ferry::migration {

Result<MigrationReport, MigrationError> migrate_out(
    MigratableVm& vm, std::vector<std::unique_ptr<ByteStream>> channels,
    const SenderOptions& options, ProgressFn progress) {
  detail::Sender sender(vm, std::move(channels), options, std::move(progress));
  return sender.run();
}

}  // namespace ferry::migration
