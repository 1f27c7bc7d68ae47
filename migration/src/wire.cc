// Field-by-field little-endian encoders and validating decoders for wire.h.
#include "ferry/migration/wire.h"

#include <fmt/format.h>
#include <xxhash.h>

namespace ferry::migration {

namespace {

WireError err(std::string detail) { return WireError{std::move(detail)}; }

bool reserved_zero(std::span<const uint8_t> bytes) {
  for (uint8_t b : bytes) {
    if (b != 0) {
      return false;
    }
  }
  return true;
}

/// Fails unless the reader consumed the payload exactly.
WireResult<void> finish(const ByteReader& r, const char* what) {
  if (!r.ok()) {
    return fail(err(fmt::format("{} record truncated", what)));
  }
  if (!r.at_end()) {
    return fail(err(fmt::format("{} record has {} trailing bytes", what, r.remaining())));
  }
  return {};
}

}  // namespace

std::string record_type_name(uint16_t type) {
  static constexpr const char* kNames[] = {
      "Invalid",  "Hello",         "HelloReply",  "ChannelJoin",  "PageBatch", "DiskBatch",
      "RoundEnd", "BlackoutBegin", "ChannelDone", "MachineState", "Digest",    "DestReady",
      "Commit",   "Resumed",       "Cancel",      "Error"};
  if (type == 0 || type > kMaxRecordType) {
    return fmt::format("Invalid({})", type);
  }
  return kNames[type];
}

uint64_t wire_hash(std::span<const uint8_t> bytes) {
  return XXH3_64bits(bytes.data(), bytes.size());
}

uint32_t max_payload_length(RecordType type) {
  switch (type) {
    case RecordType::Hello:
      return kMaxConfigBlob + kMaxControlRecord;
    case RecordType::PageBatch:
      return kPageBatchHeaderSize + kMaxPagesPerBatch * (kPageEntrySize + kWirePageSize);
    case RecordType::DiskBatch:
      return kDiskExtentHeaderSize + kMaxDiskExtent;
    case RecordType::MachineState:
      return kMaxMachineState;
    case RecordType::HelloReply:
    case RecordType::Cancel:
    case RecordType::Error:
      return kMaxMessageText + 16;
    case RecordType::ChannelJoin:
      return kChannelJoinSize;
    case RecordType::RoundEnd:
      return kRoundEndSize;
    case RecordType::BlackoutBegin:
      return kBlackoutBeginSize;
    case RecordType::ChannelDone:
      return kChannelDoneSize;
    case RecordType::Digest:
      return kMaxControlRecord;
    case RecordType::DestReady:
      return kDestReadySize;
    case RecordType::Commit:
      return kCommitSize;
    case RecordType::Resumed:
      return kResumedSize;
    case RecordType::Invalid:
      break;
  }
  return 0;
}

std::vector<uint8_t> frame_record(RecordType type, std::span<const uint8_t> payload) {
  std::vector<uint8_t> out;
  out.reserve(kRecordHeaderSize + payload.size());
  ByteWriter w(out);
  encode(w, RecordHeader{static_cast<uint16_t>(type), 0, static_cast<uint32_t>(payload.size()),
                         wire_hash(payload)});
  w.bytes(payload);
  return out;
}

// ---- encoders ------------------------------------------------------------------------
void encode(ByteWriter& w, const RecordHeader& v) {
  w.u16(v.type);
  w.u16(v.flags);
  w.u32(v.length);
  w.u64(v.payload_hash);
}

void encode(ByteWriter& w, const PageEntry& v) {
  w.u64(v.gpa);
  w.u64(v.hash);
  w.u32(v.uncompressed_length);
  w.u32(v.payload_length);
  w.u8(v.codec);
  w.bytes(v.reserved);
}

void encode(ByteWriter& w, const PageBatchHeader& v) {
  w.u32(v.round);
  w.u32(v.count);
}

void encode(ByteWriter& w, const DiskExtentHeader& v) {
  w.u64(v.offset);
  w.u64(v.hash);
  w.u32(v.disk);
  w.u32(v.round);
  w.u32(v.length);
  w.u32(v.payload_length);
  w.u8(v.codec);
  w.bytes(v.reserved);
}

void encode(ByteWriter& w, const ChannelJoin& v) {
  w.u32(v.magic);
  w.u16(v.version);
  w.u16(v.reserved);
  w.u64(v.session);
  w.u32(v.channel);
  w.u32(v.channel_count);
}

void encode(ByteWriter& w, const RoundEnd& v) {
  w.u32(v.round);
  w.u32(v.throttle_percent);
  w.u64(v.pages);
  w.u64(v.disk_bytes);
  w.u64(v.wire_bytes);
  w.u64(v.dirty_pages);
  w.u64(v.duration_ns);
}

void encode(ByteWriter& w, const BlackoutBegin& v) {
  w.u64(v.pause_realtime_ns);
  w.u32(v.round);
  w.u32(v.reserved);
}

void encode(ByteWriter& w, const ChannelDone& v) {
  w.u32(v.channel);
  w.u32(v.reserved);
  w.u64(v.data_records);
  w.u64(v.pages);
}

void encode(ByteWriter& w, const DestReady& v) {
  w.u64(v.state_bytes);
  w.u64(v.verify_ns);
}

void encode(ByteWriter& w, const Commit& v) { w.u64(v.session); }

void encode(ByteWriter& w, const Resumed& v) {
  w.u64(v.resume_realtime_ns);
  w.u64(v.blackout_ns);
}

void encode(ByteWriter& w, const Hello& v) {
  w.u32(v.magic);
  w.u16(v.version);
  w.u16(0);  // reserved
  w.u64(v.session);
  w.u64(v.features);
  w.u32(v.channel_count);
  w.u32(v.page_size);
  w.u32(v.vcpus);
  w.u32(static_cast<uint32_t>(v.disk_sizes.size()));
  w.u64(v.memory_bytes);
  for (size_t i = 0; i < v.disk_sizes.size(); ++i) {
    w.u64(v.disk_sizes[i]);
    w.u32(i < v.disk_block_sizes.size() ? v.disk_block_sizes[i] : 0);
    w.u32(0);  // reserved
  }
  w.blob(v.config_blob);
}

void encode(ByteWriter& w, const HelloReply& v) {
  w.u16(v.status);
  w.u16(v.version);
  w.str(v.reason);
}

void encode(ByteWriter& w, const Digest& v) {
  w.u32(static_cast<uint32_t>(v.regions.size()));
  w.u32(static_cast<uint32_t>(v.disks.size()));
  for (const RegionDigest& r : v.regions) {
    w.u64(r.gpa);
    w.u64(r.size);
    w.u64(r.hash);
  }
  for (const DiskDigest& d : v.disks) {
    w.u64(d.size);
    w.u32(d.block_size);
    w.u32(0);  // reserved
    w.u64(d.hash);
  }
}

void encode(ByteWriter& w, const WireMessage& v) {
  w.u16(v.code);
  w.u16(v.phase);
  w.str(v.text);
}

// ---- decoders ------------------------------------------------------------------------
WireResult<RecordHeader> decode_record_header(std::span<const uint8_t> bytes) {
  ByteReader r(bytes);
  RecordHeader h;
  r.u16(h.type);
  r.u16(h.flags);
  r.u32(h.length);
  r.u64(h.payload_hash);
  if (!r.ok() || bytes.size() != kRecordHeaderSize) {
    return fail(err("record header truncated"));
  }
  if (h.type == 0 || h.type > kMaxRecordType) {
    return fail(err(fmt::format("unknown record type {}", h.type)));
  }
  if (h.flags != 0) {
    return fail(
        err(fmt::format("{} record has unknown flags {:#x}", record_type_name(h.type), h.flags)));
  }
  uint32_t limit = max_payload_length(static_cast<RecordType>(h.type));
  if (h.length > limit) {
    return fail(err(fmt::format("{} record length {} exceeds the limit {}",
                                record_type_name(h.type), h.length, limit)));
  }
  return h;
}

WireResult<PageEntry> decode_page_entry(ByteReader& r) {
  PageEntry e;
  r.u64(e.gpa);
  r.u64(e.hash);
  r.u32(e.uncompressed_length);
  r.u32(e.payload_length);
  r.u8(e.codec);
  r.bytes(e.reserved);
  if (!r.ok()) {
    return fail(err("page entry truncated"));
  }
  if (e.codec == 0 || e.codec > kMaxPageCodec) {
    return fail(err(fmt::format("page {:#x}: unknown codec {}", e.gpa, e.codec)));
  }
  if (!reserved_zero(e.reserved)) {
    return fail(err(fmt::format("page {:#x}: reserved bytes are not zero", e.gpa)));
  }
  if (e.gpa % kWirePageSize != 0) {
    return fail(err(fmt::format("page gpa {:#x} is not page-aligned", e.gpa)));
  }
  if (e.uncompressed_length != kWirePageSize) {
    return fail(err(fmt::format("page {:#x}: uncompressed length {} is not {}", e.gpa,
                                e.uncompressed_length, kWirePageSize)));
  }
  auto codec = static_cast<PageCodec>(e.codec);
  bool no_payload = codec == PageCodec::Zero || codec == PageCodec::SameAsBefore;
  if ((no_payload && e.payload_length != 0) ||
      (codec == PageCodec::Raw && e.payload_length != kWirePageSize) ||
      (codec == PageCodec::Zstd && (e.payload_length == 0 || e.payload_length > kWirePageSize))) {
    return fail(err(fmt::format("page {:#x}: payload length {} invalid for codec {}", e.gpa,
                                e.payload_length, e.codec)));
  }
  return e;
}

WireResult<PageBatchHeader> decode_page_batch_header(ByteReader& r) {
  PageBatchHeader h;
  r.u32(h.round);
  r.u32(h.count);
  if (!r.ok()) {
    return fail(err("PageBatch header truncated"));
  }
  if (h.count == 0 || h.count > kMaxPagesPerBatch) {
    return fail(err(fmt::format("PageBatch count {} outside 1..{}", h.count, kMaxPagesPerBatch)));
  }
  return h;
}

WireResult<DiskExtentHeader> decode_disk_extent_header(ByteReader& r) {
  DiskExtentHeader h;
  r.u64(h.offset);
  r.u64(h.hash);
  r.u32(h.disk);
  r.u32(h.round);
  r.u32(h.length);
  r.u32(h.payload_length);
  r.u8(h.codec);
  r.bytes(h.reserved);
  if (!r.ok()) {
    return fail(err("DiskBatch header truncated"));
  }
  if (h.codec == 0 || h.codec > kMaxPageCodec ||
      static_cast<PageCodec>(h.codec) == PageCodec::SameAsBefore) {
    return fail(err(fmt::format("disk extent: codec {} not allowed", h.codec)));
  }
  if (!reserved_zero(h.reserved)) {
    return fail(err("disk extent: reserved bytes are not zero"));
  }
  if (h.length == 0 || h.length > kMaxDiskExtent) {
    return fail(err(fmt::format("disk extent length {} outside 1..{}", h.length, kMaxDiskExtent)));
  }
  auto codec = static_cast<PageCodec>(h.codec);
  if ((codec == PageCodec::Zero && h.payload_length != 0) ||
      (codec == PageCodec::Raw && h.payload_length != h.length) ||
      (codec == PageCodec::Zstd && (h.payload_length == 0 || h.payload_length > h.length))) {
    return fail(err(fmt::format("disk extent: payload length {} invalid for codec {}",
                                h.payload_length, h.codec)));
  }
  return h;
}

WireResult<ChannelJoin> decode_channel_join(std::span<const uint8_t> payload) {
  ByteReader r(payload);
  ChannelJoin v;
  r.u32(v.magic);
  r.u16(v.version);
  r.u16(v.reserved);
  r.u64(v.session);
  r.u32(v.channel);
  r.u32(v.channel_count);
  if (auto ok = finish(r, "ChannelJoin"); !ok) {
    return fail(ok.error());
  }
  if (v.magic != kWireMagic) {
    return fail(err(fmt::format("ChannelJoin: bad magic {:#x}", v.magic)));
  }
  if (!protocol_version_supported(v.version)) {
    return fail(err(fmt::format("ChannelJoin: unsupported protocol version {}", v.version)));
  }
  if (v.reserved != 0 || v.channel == 0 || v.channel >= v.channel_count ||
      v.channel_count > kMaxChannels) {
    return fail(
        err(fmt::format("ChannelJoin: channel {} of {} invalid", v.channel, v.channel_count)));
  }
  return v;
}

WireResult<RoundEnd> decode_round_end(std::span<const uint8_t> payload) {
  ByteReader r(payload);
  RoundEnd v;
  r.u32(v.round);
  r.u32(v.throttle_percent);
  r.u64(v.pages);
  r.u64(v.disk_bytes);
  r.u64(v.wire_bytes);
  r.u64(v.dirty_pages);
  r.u64(v.duration_ns);
  if (auto ok = finish(r, "RoundEnd"); !ok) {
    return fail(ok.error());
  }
  if (v.throttle_percent > 100) {
    return fail(err(fmt::format("RoundEnd: throttle {}% out of range", v.throttle_percent)));
  }
  return v;
}

WireResult<BlackoutBegin> decode_blackout_begin(std::span<const uint8_t> payload) {
  ByteReader r(payload);
  BlackoutBegin v;
  r.u64(v.pause_realtime_ns);
  r.u32(v.round);
  r.u32(v.reserved);
  if (auto ok = finish(r, "BlackoutBegin"); !ok) {
    return fail(ok.error());
  }
  if (v.reserved != 0) {
    return fail(err("BlackoutBegin: reserved field is not zero"));
  }
  return v;
}

WireResult<ChannelDone> decode_channel_done(std::span<const uint8_t> payload) {
  ByteReader r(payload);
  ChannelDone v;
  r.u32(v.channel);
  r.u32(v.reserved);
  r.u64(v.data_records);
  r.u64(v.pages);
  if (auto ok = finish(r, "ChannelDone"); !ok) {
    return fail(ok.error());
  }
  if (v.reserved != 0 || v.channel >= kMaxChannels) {
    return fail(err("ChannelDone: bad channel or reserved field"));
  }
  return v;
}

WireResult<DestReady> decode_dest_ready(std::span<const uint8_t> payload) {
  ByteReader r(payload);
  DestReady v;
  r.u64(v.state_bytes);
  r.u64(v.verify_ns);
  if (auto ok = finish(r, "DestReady"); !ok) {
    return fail(ok.error());
  }
  return v;
}

WireResult<Commit> decode_commit(std::span<const uint8_t> payload) {
  ByteReader r(payload);
  Commit v;
  r.u64(v.session);
  if (auto ok = finish(r, "Commit"); !ok) {
    return fail(ok.error());
  }
  return v;
}

WireResult<Resumed> decode_resumed(std::span<const uint8_t> payload) {
  ByteReader r(payload);
  Resumed v;
  r.u64(v.resume_realtime_ns);
  r.u64(v.blackout_ns);
  if (auto ok = finish(r, "Resumed"); !ok) {
    return fail(ok.error());
  }
  return v;
}

WireResult<Hello> decode_hello(std::span<const uint8_t> payload) {
  ByteReader r(payload);
  Hello v;
  uint16_t reserved = 1;
  uint32_t disks = 0;
  r.u32(v.magic);
  r.u16(v.version);
  r.u16(reserved);
  if (r.ok() && v.magic != kWireMagic) {
    return fail(err(fmt::format("Hello: bad magic {:#x} (not a Ferry migration stream)", v.magic)));
  }
  if (r.ok() && !protocol_version_supported(v.version)) {
    return fail(
        err(fmt::format("Hello: protocol version {} not supported (this side speaks {}"
                        " and {})",
                        v.version, kProtocolVersion, kProtocolVersion - 1)));
  }
  r.u64(v.session);
  r.u64(v.features);
  r.u32(v.channel_count);
  r.u32(v.page_size);
  r.u32(v.vcpus);
  r.u32(disks);
  r.u64(v.memory_bytes);
  if (!r.ok()) {
    return fail(err("Hello record truncated"));
  }
  if (reserved != 0 || disks > kMaxDisks || v.channel_count == 0 ||
      v.channel_count > kMaxChannels || v.page_size != kWirePageSize) {
    return fail(err(fmt::format("Hello: invalid fields (disks {}, channels {}, page size {})",
                                disks, v.channel_count, v.page_size)));
  }
  for (uint32_t i = 0; i < disks; ++i) {
    uint64_t size = 0;
    uint32_t block = 0;
    uint32_t pad = 1;
    r.u64(size);
    r.u32(block);
    r.u32(pad);
    if (r.ok() && (pad != 0 || block < kWirePageSize || (block & (block - 1)) != 0 ||
                   block > kMaxDiskExtent)) {
      return fail(err(fmt::format("Hello: disk {} block size {} invalid", i, block)));
    }
    v.disk_sizes.push_back(size);
    v.disk_block_sizes.push_back(block);
  }
  r.blob(v.config_blob, kMaxConfigBlob);
  if (auto ok = finish(r, "Hello"); !ok) {
    return fail(ok.error());
  }
  return v;
}

WireResult<HelloReply> decode_hello_reply(std::span<const uint8_t> payload) {
  ByteReader r(payload);
  HelloReply v;
  r.u16(v.status);
  r.u16(v.version);
  r.str(v.reason, kMaxMessageText);
  if (auto ok = finish(r, "HelloReply"); !ok) {
    return fail(ok.error());
  }
  if (v.status == 0 || v.status > 2) {
    return fail(err(fmt::format("HelloReply: unknown status {}", v.status)));
  }
  return v;
}

WireResult<Digest> decode_digest(std::span<const uint8_t> payload) {
  ByteReader r(payload);
  Digest v;
  uint32_t regions = 0;
  uint32_t disks = 0;
  r.u32(regions);
  r.u32(disks);
  if (!r.ok() || regions > kMaxRegions || disks > kMaxDisks) {
    return fail(err(fmt::format("Digest: {} regions / {} disks out of range", regions, disks)));
  }
  for (uint32_t i = 0; i < regions; ++i) {
    RegionDigest d;
    r.u64(d.gpa);
    r.u64(d.size);
    r.u64(d.hash);
    v.regions.push_back(d);
  }
  for (uint32_t i = 0; i < disks; ++i) {
    DiskDigest d;
    uint32_t pad = 1;
    r.u64(d.size);
    r.u32(d.block_size);
    r.u32(pad);
    r.u64(d.hash);
    if (r.ok() && (pad != 0 || d.block_size == 0)) {
      return fail(err("Digest: bad disk entry"));
    }
    v.disks.push_back(d);
  }
  if (auto ok = finish(r, "Digest"); !ok) {
    return fail(ok.error());
  }
  return v;
}

WireResult<WireMessage> decode_wire_message(std::span<const uint8_t> payload) {
  ByteReader r(payload);
  WireMessage v;
  r.u16(v.code);
  r.u16(v.phase);
  r.str(v.text, kMaxMessageText);
  if (auto ok = finish(r, "Cancel/Error"); !ok) {
    return fail(ok.error());
  }
  if (v.code == 0 || v.code > kMaxWireErrorCode) {
    return fail(err(fmt::format("unknown error code {}", v.code)));
  }
  return v;
}

}  // namespace ferry::migration
