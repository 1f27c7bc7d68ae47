// Destination state machine (docs/wire-format.md, "Receiver state machine"):
//   identify channels -> AwaitHello -> [factory] -> Brownout -> Blackout -> Verify
//   -> AwaitCommit -> Resumed.
// Channel 0 is handled on the calling thread; channels 1..N-1 each on their own thread.
#include "ferry/migration/receiver.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <mutex>
#include <optional>
#include <thread>

#include "digest.h"
#include "ferry/migration/dirty_set.h"
#include "ferry/migration/page_codec.h"
#include "ferry/migration/protocol.h"
#include "ferry/migration/wire.h"

namespace ferry::migration {

namespace {

using Status = Result<void, MigrationError>;

struct DestDisk {
  MigratableDisk* disk = nullptr;
  uint64_t size = 0;
  uint32_t block_size = 0;
  std::vector<uint64_t> block_hash;  // Tracked digest: hash of what we wrote, per block
  std::mutex io;
};

class Receiver {
 public:
  Receiver(std::vector<std::unique_ptr<ByteStream>> channels, const VmFactory& factory,
           const ReceiverOptions& options)
      : given_(std::move(channels)), factory_(factory), opt_(options) {}

  Result<ReceivedVm, MigrationError> run();

 private:
  Status identify_channels();
  Status accept_hello();
  Status refuse(ByteStream& stream, const std::string& reason);
  Status control_loop();
  Status verify_and_ready();
  Status await_commit();
  Status apply_data(const RawRecord& rec, BlockDecoder& decoder, uint32_t channel);
  Status apply_pages(std::span<const uint8_t> payload, BlockDecoder& decoder, uint64_t& pages);
  Status apply_disk(std::span<const uint8_t> payload, BlockDecoder& decoder);
  Status check_done(const ChannelDone& done, uint32_t channel);
  void data_channel(uint32_t index);
  void record_failure(const MigrationError& e);
  Status first_failure();
  MigrationError fail_cleanup(MigrationError e);
  void enter_phase(MigrationPhase phase);
  MigrationError proto(const std::string& detail) { return protocol_failure(phase_, detail); }

  std::vector<std::unique_ptr<ByteStream>> given_;
  const VmFactory& factory_;
  const ReceiverOptions& opt_;
  std::vector<std::unique_ptr<ByteStream>> ch_;  // by channel index
  std::optional<Hello> hello_;
  std::vector<ChannelJoin> joins_;
  std::unique_ptr<MigratableVm> vm_;
  GuestPages pages_;
  std::vector<DestDisk> disks_;
  std::unique_ptr<std::atomic<uint32_t>[]> page_round_;
  std::vector<uint64_t> page_hash_;
  std::vector<std::thread> threads_;
  std::vector<uint8_t> channel_done_;  // written by each channel's own thread
  std::vector<uint64_t> channel_records_;
  std::vector<uint64_t> channel_pages_;
  std::vector<uint8_t> machine_state_;
  bool have_state_ = false;
  Digest digest_;
  MigrationReport report_;
  std::atomic<MigrationPhase> phase_{MigrationPhase::PreMigration};
  std::atomic<uint64_t> zero_{0}, same_{0}, raw_{0}, zstd_{0}, disk_bytes_{0}, wire_bytes_{0};
  std::mutex fail_mu_;
  std::optional<MigrationError> failure_;
  std::atomic<bool> failed_{false};
  bool sent_error_ = false;
};

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
  channel_done_.assign(h.channel_count, 0);
  channel_records_.assign(h.channel_count, 0);
  channel_pages_.assign(h.channel_count, 0);
  HelloReply reply{static_cast<uint16_t>(HelloStatus::Accepted), h.version, ""};
  if (auto s = write_record(c0, RecordType::HelloReply, encode_payload(reply), phase_); !s) {
    return s;
  }
  if (auto f = c0.flush(); !f) {
    return fail(stream_failure(f.error(), phase_, "sending HelloReply"));
  }
  return {};
}

Status Receiver::apply_data(const RawRecord& rec, BlockDecoder& decoder, uint32_t channel) {
  ++channel_records_[channel];
  if (rec.type == RecordType::DiskBatch) {
    return apply_disk(rec.payload, decoder);
  }
  return apply_pages(rec.payload, decoder, channel_pages_[channel]);
}

Status Receiver::apply_pages(std::span<const uint8_t> payload, BlockDecoder& decoder,
                             uint64_t& pages) {
  ByteReader r(payload);
  auto header = decode_page_batch_header(r);
  if (!header) {
    return fail(proto(header.error().detail));
  }
  pages += header->count;
  size_t pos = r.position();
  for (uint32_t i = 0; i < header->count; ++i) {
    ByteReader er(payload.subspan(pos));
    auto e = decode_page_entry(er);
    if (!e) {
      return fail(proto(e.error().detail));
    }
    pos += kPageEntrySize;
    if (payload.size() - pos < e->payload_length) {
      return fail(proto(fmt::format("page {:#x}: payload truncated", e->gpa)));
    }
    std::span<const uint8_t> body = payload.subspan(pos, e->payload_length);
    pos += e->payload_length;
    auto idx = pages_.index_of(e->gpa);
    if (!idx) {
      return fail(proto(fmt::format("page gpa {:#x} is outside guest RAM", e->gpa)));
    }
    // A page always travels on one channel, so rounds arrive in order; an older round
    // can only come from a misbehaving peer and must not overwrite newer bytes.
    std::atomic<uint32_t>& round = page_round_[*idx];
    if (header->round < round.load()) {
      continue;
    }
    round = header->round;
    std::span<uint8_t> page = pages_.page(*idx);
    auto codec = static_cast<PageCodec>(e->codec);
    if (codec == PageCodec::SameAsBefore) {
      if (XXH3_64bits(page.data(), page.size()) != e->hash) {
        return fail(MigrationError{MigrationErrc::Codec,
                                   phase_,
                                   {},
                                   fmt::format("page {:#x}: marked same-as-before but this side "
                                               "holds different bytes",
                                               e->gpa)});
      }
      ++same_;
    } else {
      if (auto d = decoder.decode(codec, body, e->hash, page); !d) {
        return fail(MigrationError{MigrationErrc::Codec,
                                   phase_,
                                   {},
                                   fmt::format("page {:#x}: {}", e->gpa, d.error().detail)});
      }
      ++(codec == PageCodec::Zero ? zero_ : codec == PageCodec::Raw ? raw_ : zstd_);
    }
    page_hash_[*idx] = e->hash;
  }
  if (pos != payload.size()) {
    return fail(proto(fmt::format("PageBatch has {} trailing bytes", payload.size() - pos)));
  }
  return {};
}

Status Receiver::apply_disk(std::span<const uint8_t> payload, BlockDecoder& decoder) {
  ByteReader r(payload);
  auto h = decode_disk_extent_header(r);
  if (!h) {
    return fail(proto(h.error().detail));
  }
  if (h->disk >= disks_.size()) {
    return fail(
        proto(fmt::format("disk index {} but the guest has {} disks", h->disk, disks_.size())));
  }
  DestDisk& d = disks_[h->disk];
  if (h->offset % d.block_size != 0 || h->offset > d.size || d.size - h->offset < h->length ||
      (h->length % d.block_size != 0 && h->offset + h->length != d.size)) {
    return fail(
        proto(fmt::format("disk {} extent [{}, +{}) outside the {}-byte disk or not "
                          "block-aligned",
                          h->disk, h->offset, h->length, d.size)));
  }
  if (r.remaining() != h->payload_length) {
    return fail(proto(fmt::format("disk extent payload is {} bytes, header says {}", r.remaining(),
                                  h->payload_length)));
  }
  std::vector<uint8_t> data(h->length);  // <= kMaxDiskExtent, checked by the decoder
  if (auto dec = decoder.decode(static_cast<PageCodec>(h->codec), payload.subspan(r.position()),
                                h->hash, data);
      !dec) {
    return fail(MigrationError{
        MigrationErrc::Codec,
        phase_,
        {},
        fmt::format("disk {} extent at {}: {}", h->disk, h->offset, dec.error().detail)});
  }
  std::lock_guard lock(d.io);
  if (auto w = d.disk->write_at(h->offset, data); !w) {
    return fail(MigrationError{MigrationErrc::VmPort,
                               phase_,
                               {},
                               fmt::format("writing disk {}: {}", h->disk, w.error().message)});
  }
  for (uint64_t off = 0; off < h->length; off += d.block_size) {
    size_t len = std::min<size_t>(d.block_size, h->length - off);
    d.block_hash[(h->offset + off) / d.block_size] = XXH3_64bits(data.data() + off, len);
  }
  disk_bytes_ += h->length;
  return {};
}

Status Receiver::check_done(const ChannelDone& done, uint32_t channel) {
  if (done.channel != channel || done.data_records != channel_records_[channel] ||
      done.pages != channel_pages_[channel]) {
    return fail(
        proto(fmt::format("channel {}: ChannelDone says {} records / {} pages, {} / {} "
                          "arrived",
                          channel, done.data_records, done.pages, channel_records_[channel],
                          channel_pages_[channel])));
  }
  channel_done_[channel] = 1;
  return {};
}

void Receiver::data_channel(uint32_t index) {
  BlockDecoder decoder;
  ByteStream& s = *ch_[index];
  while (!failed_) {
    auto rec = read_record(s, phase_);
    if (!rec) {
      record_failure(rec.error());
      return;
    }
    wire_bytes_ += rec->wire_size();
    Status st;
    if (rec->type == RecordType::PageBatch || rec->type == RecordType::DiskBatch) {
      st = apply_data(*rec, decoder, index);
    } else if (rec->type == RecordType::ChannelDone) {
      auto done = decode_channel_done(rec->payload);
      st = done ? check_done(*done, index) : Status(fail(proto(done.error().detail)));
      if (st) {
        return;
      }
    } else {
      st = fail(proto(fmt::format("{} record on data channel {}",
                                  record_type_name(static_cast<uint16_t>(rec->type)), index)));
    }
    if (!st) {
      record_failure(st.error());
      return;
    }
  }
}

Status Receiver::control_loop() {
  enter_phase(MigrationPhase::Brownout);
  ByteStream& c0 = *ch_[0];
  BlockDecoder decoder;
  for (uint32_t c = 1; c < ch_.size(); ++c) {
    threads_.emplace_back([this, c] { data_channel(c); });
  }
  while (true) {
    if (opt_.cancel != nullptr && opt_.cancel->load()) {
      return fail(MigrationError{MigrationErrc::Cancelled, phase_, {}, "cancelled by request"});
    }
    auto rec = read_record(c0, phase_);
    if (!rec) {
      if (auto f = first_failure(); !f) {
        return f;  // a data channel failed first and shut channel 0 down
      }
      return fail(rec.error());
    }
    wire_bytes_ += rec->wire_size();
    if (failed_) {
      return first_failure();
    }
    const MigrationPhase phase = phase_;
    const bool blackout = phase == MigrationPhase::Blackout;
    const bool c0_done = channel_done_[0] != 0;
    Status st;
    switch (rec->type) {
      case RecordType::PageBatch:
      case RecordType::DiskBatch:
        st = c0_done ? Status(fail(proto("data record after ChannelDone on channel 0")))
                     : apply_data(*rec, decoder, 0);
        break;
      case RecordType::RoundEnd: {
        auto v = decode_round_end(rec->payload);
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
        break;
      }
      case RecordType::BlackoutBegin: {
        auto v = decode_blackout_begin(rec->payload);
        if (!v || blackout) {
          return fail(proto(v ? "second BlackoutBegin" : v.error().detail));
        }
        report_.pause_ns = v->pause_realtime_ns;
        enter_phase(MigrationPhase::Blackout);
        break;
      }
      case RecordType::ChannelDone: {
        auto v = decode_channel_done(rec->payload);
        if (!v || !blackout || c0_done) {
          return fail(proto(v ? "ChannelDone outside the blackout" : v.error().detail));
        }
        st = check_done(*v, 0);
        break;
      }
      case RecordType::MachineState:
        if (!blackout || !c0_done || have_state_) {
          return fail(
              proto("MachineState out of order (expected after ChannelDone in the "
                    "blackout, once)"));
        }
        machine_state_ = std::move(rec->payload);
        have_state_ = true;
        break;
      case RecordType::Digest: {
        if (!have_state_) {
          return fail(proto("Digest before MachineState"));
        }
        auto v = decode_digest(rec->payload);
        if (!v) {
          return fail(proto(v.error().detail));
        }
        digest_ = std::move(*v);
        return {};
      }
      case RecordType::Cancel: {
        auto v = decode_wire_message(rec->payload);
        sent_error_ = true;  // the source is gone; no point answering
        return fail(MigrationError{
            MigrationErrc::PeerFailed,
            phase_,
            {},
            fmt::format("source cancelled: {}", v ? v->text : "(unreadable Cancel record)")});
      }
      default:
        return fail(proto(fmt::format("unexpected {} record in {}",
                                      record_type_name(static_cast<uint16_t>(rec->type)),
                                      phase_name(phase))));
    }
    if (!st) {
      return st;
    }
  }
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

}  // namespace

Result<ReceivedVm, MigrationError> migrate_in(std::vector<std::unique_ptr<ByteStream>> channels,
                                              const VmFactory& factory,
                                              const ReceiverOptions& options) {
  Receiver receiver(std::move(channels), factory, options);
  return receiver.run();
}

}  // namespace ferry::migration
