#include "sender_pipeline.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "absent_pages.h"
#include "ferry/migration/protocol.h"

namespace ferry::migration {

void RateLimiter::acquire(size_t bytes) {
  if (rate_ == 0) {
    return;
  }
  using clock = std::chrono::steady_clock;
  // Allow a burst of ~10 ms so small records do not each pay a sleep.
  constexpr auto kBurst = std::chrono::milliseconds(10);
  clock::time_point wake;
  {
    std::lock_guard lock(mu_);
    auto now = clock::now();
    if (next_ < now - kBurst) {
      next_ = now - kBurst;
    }
    next_ +=
        std::chrono::nanoseconds(static_cast<int64_t>(bytes * 1e9 / static_cast<double>(rate_)));
    wake = next_;
  }
  if (wake > clock::now()) {
    std::this_thread::sleep_until(wake);
  }
}

void PipelineShared::fail(MigrationError error) {
  {
    std::lock_guard lock(fail_mu);
    if (!failure) {
      failure = std::move(error);
    }
  }
  aborted = true;
  std::lock_guard lock(barrier_mu);
  barrier_cv.notify_all();
}

ChannelPipeline::ChannelPipeline(uint32_t index, ByteStream& stream, PipelineShared& shared)
    : index_(index), stream_(stream), shared_(shared), level_(shared.compression) {}

ChannelPipeline::~ChannelPipeline() { abort(); }

void ChannelPipeline::start() {
  encoder_thread_ = std::thread([this] { encode_loop(); });
  writer_thread_ = std::thread([this] { write_loop(); });
}

bool ChannelPipeline::submit(SendJob job) {
  if (shared_.aborted) {
    return false;
  }
  return jobs_.push(std::move(job), nullptr, &shared_.aborted);
}

void ChannelPipeline::finish() {
  jobs_.close();
  if (encoder_thread_.joinable()) {
    encoder_thread_.join();
  }
  if (writer_thread_.joinable()) {
    writer_thread_.join();
  }
}

void ChannelPipeline::abort(bool graceful) {
  shared_.aborted = true;  // before reading in_write_: see write_loop
  jobs_.abort();
  frames_.abort();
  // A writer blocked inside write_all only returns on progress, timeout or shutdown.
  if (in_write_ && !graceful) {
    stream_.shutdown();
  }
  if (encoder_thread_.joinable()) {
    encoder_thread_.join();
  }
  if (writer_thread_.joinable()) {
    writer_thread_.join();
  }
}

void ChannelPipeline::encode_loop() {
  while (auto job = jobs_.pop()) {
    encoding_ = true;
    std::optional<Frame> frame = encode_job(*job);
    encoding_ = false;
    if (!frame) {
      break;  // failure recorded in shared_
    }
    if (starved_.exchange(0) > 0) {
      level_.encoder_bound();
    }
    bool waited = false;
    if (!frames_.push(std::move(*frame), &waited, &shared_.aborted)) {
      break;
    }
    if (waited) {
      level_.link_bound();
    }
  }
  frames_.close();
}

std::optional<ChannelPipeline::Frame> ChannelPipeline::encode_job(SendJob& job) {
  switch (job.kind) {
    case SendJob::Kind::Pages:
      return encode_pages(job);
    case SendJob::Kind::Disk:
      return encode_disk(job);
    case SendJob::Kind::Control:
      return Frame{std::move(job.frame), false};
    case SendJob::Kind::Done: {
      ChannelDone done{index_, 0, data_records_, pages_sent_};
      return Frame{frame_record(RecordType::ChannelDone, encode_payload(done)), false};
    }
    case SendJob::Kind::Barrier:
      return Frame{{}, true};
  }
  return std::nullopt;
}

void ChannelPipeline::write_frame_header(std::vector<uint8_t>& frame, RecordType type) {
  std::span<const uint8_t> payload(frame.data() + kRecordHeaderSize,
                                   frame.size() - kRecordHeaderSize);
  std::vector<uint8_t> header;
  ByteWriter w(header);
  encode(w, RecordHeader{static_cast<uint16_t>(type), 0, static_cast<uint32_t>(payload.size()),
                         wire_hash(payload)});
  std::memcpy(frame.data(), header.data(), kRecordHeaderSize);
}

ChannelPipeline::Frame ChannelPipeline::encode_pages(const SendJob& job) {
  Frame f;
  f.bytes.reserve(kRecordHeaderSize + kPageBatchHeaderSize +
                  job.pages.size() * (kPageEntrySize + kWirePageSize));
  f.bytes.resize(kRecordHeaderSize);
  ByteWriter w(f.bytes);
  encode(w, PageBatchHeader{job.round, static_cast<uint32_t>(job.pages.size())});
  std::vector<uint8_t> payload, entry;
  entry.reserve(kPageEntrySize);
  payload.reserve(kWirePageSize + 64);
  // Incompressible content: store raw for a while instead of paying zstd for nothing,
  // then try again (the content may change). compression_backoff.h says how long.
  const int level = zstd_backoff_.probe() ? level_.level() : 0;
  uint32_t tried = 0, shrank = 0;
  // Round 0 meets every page; holes (never-written guest RAM) go out as Zero without
  // being read, which would allocate them (absent_pages.h). A guest write after the
  // check is in the dirty log, as for any page of the round.
  std::array<uint8_t, kMaxPagesPerBatch> absent{};
  if (job.round == 0 && shared_.absent_is_zero && job.pages.size() <= absent.size()) {
    detail::find_absent(*shared_.pages, job.pages, absent);
  }
  for (size_t i = 0; i < job.pages.size(); ++i) {
    const uint64_t idx = job.pages[i];
    payload.clear();
    EncodedBlock enc;
    const size_t entry_at = f.bytes.size();
    if (absent[i] != 0) {
      enc.codec = PageCodec::Zero;
      enc.hash = encoder_.zero_hash(kWirePageSize);
      f.bytes.resize(entry_at + kPageEntrySize);
    } else {
      // Snapshot the page straight into the frame, where a raw payload goes: the guest
      // may be writing it, and the hash and the payload must describe the same bytes (a
      // later write is caught by the dirty log). One copy per raw page.
      f.bytes.resize(entry_at + kPageEntrySize);  // the entry, filled in below
      const std::span<const uint8_t> guest = shared_.pages->page(idx);
      f.bytes.insert(f.bytes.end(), guest.begin(), guest.end());  // no zero-fill first
      uint8_t* snapshot = f.bytes.data() + entry_at + kPageEntrySize;
      bool known = shared_.allow_same && shared_.held_known[idx] != 0;
      enc = encoder_.encode_in_place({snapshot, kWirePageSize}, level, known,
                                     shared_.held_hash[idx], payload);
      if (enc.codec == PageCodec::Zstd) {
        std::memcpy(snapshot, payload.data(), payload.size());
      }
      f.bytes.resize(entry_at + kPageEntrySize + enc.payload_length);
    }
    PageEntry e;
    e.gpa = shared_.pages->gpa_of(idx);
    e.hash = enc.hash;
    e.uncompressed_length = kWirePageSize;
    e.payload_length = enc.payload_length;
    e.codec = static_cast<uint8_t>(enc.codec);
    entry.clear();
    ByteWriter ew(entry);
    encode(ew, e);
    std::memcpy(f.bytes.data() + entry_at, entry.data(), kPageEntrySize);
    shared_.held_hash[idx] = enc.hash;
    shared_.held_known[idx] = 1;
    tried += enc.codec == PageCodec::Raw || enc.codec == PageCodec::Zstd ? 1 : 0;
    shrank += enc.codec == PageCodec::Zstd ? 1 : 0;
    switch (enc.codec) {
      case PageCodec::Zero:
        ++shared_.stats.zero;
        break;
      case PageCodec::SameAsBefore:
        ++shared_.stats.same;
        break;
      case PageCodec::Zstd:
        ++shared_.stats.zstd;
        break;
      default:
        ++shared_.stats.raw;
        break;
    }
  }
  if (level > 0) {
    zstd_backoff_.record(tried, shrank);
  }
  shared_.stats.guest_bytes += job.pages.size() * kWirePageSize;
  write_frame_header(f.bytes, RecordType::PageBatch);
  ++data_records_;
  pages_sent_ += job.pages.size();
  return f;
}

std::optional<ChannelPipeline::Frame> ChannelPipeline::encode_disk(const SendJob& job) {
  SourceDisk& d = (*shared_.disks)[job.disk];
  std::vector<uint8_t> data(job.length);
  {
    std::lock_guard lock(d.io);
    auto r = d.disk->read_at(job.offset, data);
    if (!r) {
      shared_.fail(MigrationError{
          MigrationErrc::VmPort, shared_.phase, GuestLocation::Invalid,
          fmt::format("reading disk {} at {}: {}", job.disk, job.offset, r.error().message)});
      return std::nullopt;
    }
  }
  // Per-block hashes of what the destination will hold (the Tracked disk digest).
  for (uint64_t off = 0; off < job.length; off += d.block_size) {
    size_t len = std::min<size_t>(d.block_size, job.length - off);
    d.held_block_hash[(job.offset + off) / d.block_size] = XXH3_64bits(data.data() + off, len);
  }
  Frame f;
  f.bytes.resize(kRecordHeaderSize);
  std::vector<uint8_t> payload;
  EncodedBlock enc = encoder_.encode(data, level_.level(), false, 0, payload);
  ByteWriter w(f.bytes);
  DiskExtentHeader h;
  h.offset = job.offset;
  h.hash = enc.hash;
  h.disk = job.disk;
  h.round = job.round;
  h.length = job.length;
  h.payload_length = enc.payload_length;
  h.codec = static_cast<uint8_t>(enc.codec);
  encode(w, h);
  w.bytes(payload);
  write_frame_header(f.bytes, RecordType::DiskBatch);
  shared_.stats.guest_bytes += job.length;
  shared_.stats.disk_bytes += job.length;
  ++data_records_;
  return f;
}

void ChannelPipeline::write_loop() {
  bool waited = false;
  while (auto frame = frames_.pop(&waited)) {
    if (waited && encoding_) {
      ++starved_;  // the link waited for the encoder
    }
    if (frame->barrier) {
      if (auto r = stream_.flush(); !r) {
        shared_.fail(stream_failure(r.error(), shared_.phase,
                                    fmt::format("channel {} ({})", index_, stream_.peer())));
        break;
      }
      std::lock_guard lock(shared_.barrier_mu);
      --shared_.barrier_pending;
      shared_.barrier_cv.notify_all();
      continue;
    }
    if (shared_.limiter != nullptr) {
      shared_.limiter->acquire(frame->bytes.size());
    }
    in_write_ = true;
    if (shared_.aborted) {
      in_write_ = false;
      break;
    }
    auto r = stream_.write_all(frame->bytes);
    in_write_ = false;
    if (!r) {
      shared_.fail(stream_failure(r.error(), shared_.phase,
                                  fmt::format("channel {} ({})", index_, stream_.peer())));
      break;
    }
    shared_.stats.wire_bytes += frame->bytes.size();
  }
  // Unblock an encoder waiting for queue space after a failure.
  frames_.abort();
}

}  // namespace ferry::migration
