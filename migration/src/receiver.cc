// Destination state machine (docs/wire-format.md, "Receiver state machine"):
//   identify channels -> AwaitHello -> [factory] -> Brownout -> Blackout -> Verify
//   -> AwaitCommit -> Resumed.
// Channel 0 is handled on the calling thread; channels 1..N-1 each on their own thread.
// This file: channel identification, hello checks, the driver and failure cleanup.
#include <fmt/format.h>
#include <xxhash.h>

#include "digest.h"
#include "absent_pages.h"
#include "receiver_impl.h"

namespace ferry::migration::detail {

void Receiver::enter_phase(MigrationPhase phase) {
  uint64_t now = realtime_ns();
  if (!report_.phases.empty()) {
    report_.phases.back().end_ns = now;
  }
  report_.phases.push_back({phase, now, 0});
  phase_ = phase;
}

void Receiver::record_failure(const MigrationError& e) {
  {
    std::lock_guard lock(fail_mu_);
    if (!failure_) {
      failure_ = e;
    }
  }
  failed_ = true;
  // Stop the data channels (the source's writes to them fail at once). Channel 0 stays
  // open: the control loop notices failed_ after its next record and sends our reason
  // to the source in an Error record.
  for (size_t c = 1; c < ch_.size(); ++c) {
    if (ch_[c]) {
      ch_[c]->shutdown();
    }
  }
}

Status Receiver::first_failure() {
  std::lock_guard lock(fail_mu_);
  if (failure_) {
    return fail(*failure_);
  }
  return {};
}

Status Receiver::refuse(ByteStream& stream, const std::string& reason) {
  HelloReply reply{static_cast<uint16_t>(HelloStatus::Refused), kProtocolVersion,
                   reason.substr(0, kMaxMessageText)};
  (void)write_record(stream, RecordType::HelloReply, encode_payload(reply), phase_);
  (void)stream.flush();
  sent_error_ = true;
  return fail(MigrationError{MigrationErrc::Refused, phase_, {}, reason});
}

Status Receiver::identify_channels() {
  std::vector<std::unique_ptr<ByteStream>> pending = std::move(given_);
  std::unique_ptr<ByteStream> control;
  size_t next = 0;
  while (true) {
    if (next == pending.size()) {
      const size_t want = hello_ ? hello_->channel_count : 1;
      if (hello_ && joins_.size() + 1 >= want) {
        break;
      }
      if (!opt_.accept_channel) {
        return fail(proto(
            hello_ ? fmt::format("hello announced {} channels, {} arrived", want, joins_.size() + 1)
                   : "no Hello record on any channel"));
      }
      auto more = opt_.accept_channel();
      if (!more) {
        return fail(stream_failure(more.error(), phase_, "accepting a migration channel"));
      }
      pending.push_back(std::move(*more));
    }
    ByteStream& s = *pending[next];
    s.set_timeout(opt_.io_timeout);
    auto rec = read_record(s, phase_);
    if (!rec) {
      return fail(rec.error());
    }
    if (rec->type == RecordType::Hello) {
      if (hello_) {
        return fail(proto("two Hello records"));
      }
      auto hello = decode_hello(rec->payload);
      if (!hello) {
        return refuse(s, hello.error().detail);
      }
      hello_ = *hello;
      control = std::move(pending[next]);
    } else if (rec->type == RecordType::ChannelJoin) {
      auto join = decode_channel_join(rec->payload);
      if (!join) {
        return fail(proto(join.error().detail));
      }
      joins_.push_back(*join);
      pending[next]->set_timeout(opt_.io_timeout);
    } else {
      return fail(
          proto(fmt::format("first record on a channel is {}, expected Hello or "
                            "ChannelJoin",
                            record_type_name(static_cast<uint16_t>(rec->type)))));
    }
    ++next;
  }
  ch_.resize(hello_->channel_count);
  ch_[0] = std::move(control);
  size_t j = 0;
  for (auto& p : pending) {
    if (!p) {
      continue;  // the control channel, already moved
    }
    const ChannelJoin& join = joins_[j++];
    if (join.session != hello_->session || join.channel_count != hello_->channel_count ||
        join.channel >= ch_.size() || ch_[join.channel]) {
      return fail(
          proto(fmt::format("channel {} does not belong to this migration (session or "
                            "index mismatch)",
                            join.channel)));
    }
    ch_[join.channel] = std::move(p);
  }
  return {};
}

Status Receiver::accept_hello() {
  ByteStream& c0 = *ch_[0];
  const Hello& h = *hello_;
  report_.memory_bytes = h.memory_bytes;
  report_.vcpus = h.vcpus;
  report_.disk_sizes = h.disk_sizes;
  report_.channels = h.channel_count;
  report_.peer = c0.peer();
  if (h.features & ~kKnownFeatures) {
    return refuse(c0, fmt::format("unknown feature bits {:#x}", h.features & ~kKnownFeatures));
  }
  if (h.memory_bytes == 0 || h.memory_bytes % kPageSize != 0) {
    return refuse(c0,
                  fmt::format("memory size {} is not a positive multiple of 4096", h.memory_bytes));
  }
  if (h.memory_bytes > opt_.max_memory_bytes) {
    return refuse(c0, fmt::format("guest needs {} MiB of memory, this host allows {} MiB",
                                  h.memory_bytes >> 20, opt_.max_memory_bytes >> 20));
  }
  if (h.vcpus == 0 || h.vcpus > opt_.max_vcpus) {
    return refuse(
        c0, fmt::format("guest has {} vCPUs, this host allows 1..{}", h.vcpus, opt_.max_vcpus));
  }
  for (uint64_t size : h.disk_sizes) {
    if (size > opt_.max_disk_bytes) {
      return refuse(
          c0, fmt::format("disk of {} bytes exceeds the {} byte limit", size, opt_.max_disk_bytes));
    }
  }
  VmDescription desc{h.memory_bytes, h.vcpus, h.disk_sizes, h.config_blob};
  auto vm = factory_(desc);
  if (!vm) {
    return refuse(c0, fmt::format("cannot host the guest: {}", vm.error().message));
  }
  vm_ = std::move(*vm);
  pages_ = GuestPages(vm_->ram_regions());
  if (pages_.memory_bytes() != h.memory_bytes || vm_->disk_count() != h.disk_sizes.size()) {
    return refuse(c0, "the VM built here does not match the source's memory size or disks");
  }
  disks_ = std::vector<DestDisk>(h.disk_sizes.size());
  for (size_t i = 0; i < disks_.size(); ++i) {
    DestDisk& d = disks_[i];
    d.disk = &vm_->disk(i);
    d.size = h.disk_sizes[i];
    d.block_size = h.disk_block_sizes[i];
    if (d.disk->size_bytes() != d.size) {
      return refuse(c0, fmt::format("disk {} here has {} bytes, the source's has {}", i,
                                    d.disk->size_bytes(), d.size));
    }
    d.block_hash.assign(block_count(d.size, d.block_size), 0);
  }
  page_round_ = std::make_unique<std::atomic<uint32_t>[]>(pages_.page_count());
  page_hash_.assign(pages_.page_count(), 0);
  absent_is_zero_ = absent_means_zero();
  {
    const std::vector<uint8_t> zeros(kPageSize, 0);
    zero_page_hash_ = XXH3_64bits(zeros.data(), zeros.size());
  }
  channel_done_.assign(h.channel_count, 0);
  channel_records_.assign(h.channel_count, 0);
  channel_pages_.assign(h.channel_count, 0);
  channel_holes_.assign(h.channel_count, HoleWindow{});
  HelloReply reply{static_cast<uint16_t>(HelloStatus::Accepted), h.version, ""};
  if (auto s = write_record(c0, RecordType::HelloReply, encode_payload(reply), phase_); !s) {
    return s;
  }
  if (auto f = c0.flush(); !f) {
    return fail(stream_failure(f.error(), phase_, "sending HelloReply"));
  }
  return {};
}

void Receiver::drain(ByteStream& stream) {
  // Closing a TCP socket with unread input sends a RST, which can destroy our Error
  // record before the source reads it. Swallow what is already in flight first: stop
  // at the source's Cancel, at EOF, after 20 ms of silence, or after 300 ms.
  stream.set_timeout(std::chrono::milliseconds(20));
  const uint64_t deadline = monotonic_ns() + 300'000'000;
  while (monotonic_ns() < deadline) {
    auto rec = read_record(stream, phase_);
    if (!rec || rec->type == RecordType::Cancel) {
      return;
    }
  }
}

MigrationError Receiver::fail_cleanup(MigrationError e) {
  if (e.phase == MigrationPhase::Invalid) {
    e.phase = phase_;
  }
  e.guest = GuestLocation::NotStartedOnDestination;
  failed_ = true;
  // Data channels first, so their threads stop; channel 0 carries our reason.
  for (size_t c = 1; c < ch_.size(); ++c) {
    if (ch_[c]) {
      ch_[c]->shutdown();
    }
  }
  for (auto& t : threads_) {
    t.join();
  }
  threads_.clear();
  ByteStream* c0 = ch_.empty() ? nullptr : ch_[0].get();
  if (c0 != nullptr && !sent_error_) {
    c0->set_timeout(std::chrono::milliseconds(500));
    WireErrorCode code = WireErrorCode::Internal;
    switch (e.errc) {
      case MigrationErrc::Protocol:
      case MigrationErrc::Codec:
        code = WireErrorCode::Protocol;
        break;
      case MigrationErrc::DigestMismatch:
        code = WireErrorCode::DigestMismatch;
        break;
      case MigrationErrc::VmPort:
        code = WireErrorCode::VmFailure;
        break;
      case MigrationErrc::Timeout:
        code = WireErrorCode::Timeout;
        break;
      default:
        break;
    }
    WireMessage msg{static_cast<uint16_t>(code), static_cast<uint16_t>(e.phase),
                    e.detail.substr(0, kMaxMessageText)};
    (void)write_record(*c0, RecordType::Error, encode_payload(msg), phase_);
    (void)c0->flush();
    drain(*c0);
  }
  for (auto& c : ch_) {
    if (c) {
      c->shutdown();
    }
  }
  for (auto& c : given_) {
    if (c) {
      c->shutdown();
    }
  }
  vm_.reset();  // the incoming guest is discarded; it never ran
  return e;
}

Result<ReceivedVm, MigrationError> Receiver::run() {
  report_.role = "destination";
  report_.start_ns = realtime_ns();
  enter_phase(MigrationPhase::PreMigration);
  Status st = identify_channels();
  if (st) {
    st = accept_hello();
  }
  if (st) {
    st = control_loop();
  }
  if (st) {
    st = verify_and_ready();
  }
  if (st) {
    st = await_commit();
  }
  report_.end_ns = realtime_ns();
  report_.codecs = {zero_, same_, raw_, zstd_};
  report_.pages_sent = report_.codecs.total();
  report_.disk_bytes = disk_bytes_;
  report_.guest_bytes = report_.pages_sent * kPageSize + disk_bytes_;
  report_.wire_bytes = wire_bytes_;
  report_.compression_ratio =
      wire_bytes_ > 0 ? static_cast<double>(report_.guest_bytes) / wire_bytes_ : 0;
  if (!st) {
    MigrationError e = fail_cleanup(st.error());
    if (!report_.phases.empty()) {
      report_.phases.back().end_ns = report_.end_ns;
    }
    report_.outcome = "failed";
    report_.error = e.message();
    if (opt_.failure_report != nullptr) {
      *opt_.failure_report = report_;
    }
    return fail(e);
  }
  enter_phase(MigrationPhase::Completed);
  report_.phases.back().end_ns = report_.phases.back().start_ns;
  report_.outcome = "completed";
  return ReceivedVm{std::move(vm_), report_};
}

}  // namespace ferry::migration::detail

namespace ferry::migration {

Result<ReceivedVm, MigrationError> migrate_in(std::vector<std::unique_ptr<ByteStream>> channels,
                                              const VmFactory& factory,
                                              const ReceiverOptions& options) {
  detail::Receiver receiver(std::move(channels), factory, options);
  return receiver.run();
}

}  // namespace ferry::migration
