// The Ferry migration wire format: every struct that crosses the network, in one header.
// A stream is a sequence of records, each a 16-byte RecordHeader {type, flags, length,
// XXH3-64 of the payload} followed by `length` payload bytes. All integers are
// little-endian and encoded field by field (never memcpy'd structs); docs/wire-format.md
// is the normative description and tests/golden/ holds byte fixtures of each record.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "ferry/kernel-interfaces/le_bytes.h"
#include "ferry/kernel-interfaces/result.h"

namespace ferry::migration {

/// "FRRY" read as a little-endian u32; first field of Hello and ChannelJoin.
inline constexpr uint32_t kWireMagic = 0x59525246;
/// Wire protocol version (independent of the release version). Bump on any change here.
inline constexpr uint16_t kProtocolVersion = 1;

/// The receiver accepts the current version and the one before it (0 is never valid).
constexpr bool protocol_version_supported(uint16_t version) {
  return version != 0 && (version == kProtocolVersion || version + 1 == kProtocolVersion);
}

// ---- Limits, checked before anything is allocated ------------------------------------
inline constexpr uint32_t kWirePageSize = 4096;
inline constexpr uint32_t kMaxPagesPerBatch = 64;
inline constexpr uint32_t kMaxDiskExtent = 1u << 20;  // bytes of one DiskBatch extent
inline constexpr uint32_t kMaxConfigBlob = 1u << 20;
inline constexpr uint32_t kMaxMachineState = 64u << 20;
inline constexpr uint32_t kMaxMessageText = 4096;
inline constexpr uint32_t kMaxChannels = 64;
inline constexpr uint32_t kMaxDisks = 16;
inline constexpr uint32_t kMaxRegions = 64;
inline constexpr uint32_t kMaxControlRecord = 64u << 10;

// ---- Enums: 0 is always Invalid; unknown values are rejected on decode ---------------
enum class RecordType : uint16_t {
  Invalid = 0,
  Hello = 1,          // source -> dest, channel 0, first record
  HelloReply = 2,     // dest -> source, channel 0
  ChannelJoin = 3,    // source -> dest, first record of channels 1..N-1
  PageBatch = 4,      // source -> dest, any channel
  DiskBatch = 5,      // source -> dest, any channel
  RoundEnd = 6,       // source -> dest, channel 0
  BlackoutBegin = 7,  // source -> dest, channel 0
  ChannelDone = 8,    // source -> dest, last data record of every channel
  MachineState = 9,   // source -> dest, channel 0
  Digest = 10,        // source -> dest, channel 0
  DestReady = 11,     // dest -> source, channel 0
  Commit = 12,        // source -> dest, channel 0
  Resumed = 13,       // dest -> source, channel 0
  Cancel = 14,        // source -> dest, channel 0
  Error = 15,         // dest -> source, channel 0
};
inline constexpr uint16_t kMaxRecordType = 15;

enum class PageCodec : uint8_t {
  Invalid = 0,
  Zero = 1,          // all-zero page/extent, no payload
  SameAsBefore = 2,  // destination already holds these bytes; hash only, no payload
  Raw = 3,           // payload = the bytes
  Zstd = 4,          // payload = one zstd frame with the content size set
};
inline constexpr uint8_t kMaxPageCodec = 4;

enum class HelloStatus : uint16_t { Invalid = 0, Accepted = 1, Refused = 2 };

/// Why a side cancelled or failed; carried by Cancel and Error records.
enum class WireErrorCode : uint16_t {
  Invalid = 0,
  Internal = 1,
  Protocol = 2,        // malformed, unexpected or out-of-range record
  Refused = 3,         // capacity or version check failed
  VmFailure = 4,       // the VM port (dirty log, pause, state load...) failed
  DigestMismatch = 5,  // whole-memory or disk digest differs
  Timeout = 6,
  Operator = 7,  // cancelled on request
};
inline constexpr uint16_t kMaxWireErrorCode = 7;

/// Feature bits in Hello; the receiver refuses any bit it does not know.
inline constexpr uint64_t kFeatureZstd = 1u << 0;
inline constexpr uint64_t kFeatureSameAsBefore = 1u << 1;
inline constexpr uint64_t kFeatureDisk = 1u << 2;
inline constexpr uint64_t kKnownFeatures = kFeatureZstd | kFeatureSameAsBefore | kFeatureDisk;

// ---- Fixed-layout structs (the sizes below are the on-wire sizes) --------------------
struct RecordHeader {
  uint16_t type = 0;
  uint16_t flags = 0;  // reserved, must be 0
  uint32_t length = 0;
  uint64_t payload_hash = 0;  // XXH3-64 of the payload bytes
};
inline constexpr size_t kRecordHeaderSize = 16;

struct PageEntry {
  uint64_t gpa = 0;                  // page-aligned guest physical address
  uint64_t hash = 0;                 // XXH3-64 of the 4096 uncompressed bytes
  uint32_t uncompressed_length = 0;  // always kWirePageSize
  uint32_t payload_length = 0;       // 0 for Zero / SameAsBefore
  uint8_t codec = 0;                 // PageCodec
  uint8_t reserved[7] = {};
};
inline constexpr size_t kPageEntrySize = 32;

struct PageBatchHeader {
  uint32_t round = 0;
  uint32_t count = 0;  // 1..kMaxPagesPerBatch entries follow, each with its payload
};
inline constexpr size_t kPageBatchHeaderSize = 8;

struct DiskExtentHeader {
  uint64_t offset = 0;
  uint64_t hash = 0;  // XXH3-64 of the uncompressed extent
  uint32_t disk = 0;
  uint32_t round = 0;
  uint32_t length = 0;  // uncompressed bytes, 1..kMaxDiskExtent
  uint32_t payload_length = 0;
  uint8_t codec = 0;  // PageCodec (SameAsBefore not allowed)
  uint8_t reserved[7] = {};
};
inline constexpr size_t kDiskExtentHeaderSize = 40;

struct ChannelJoin {
  uint32_t magic = kWireMagic;
  uint16_t version = kProtocolVersion;
  uint16_t reserved = 0;
  uint64_t session = 0;
  uint32_t channel = 0;
  uint32_t channel_count = 0;
};
inline constexpr size_t kChannelJoinSize = 24;

struct RoundEnd {
  uint32_t round = 0;
  uint32_t throttle_percent = 0;
  uint64_t pages = 0;        // pages sent this round
  uint64_t disk_bytes = 0;   // disk bytes sent this round
  uint64_t wire_bytes = 0;   // record bytes this round, all channels
  uint64_t dirty_pages = 0;  // pages found dirty after the round
  uint64_t duration_ns = 0;
};
inline constexpr size_t kRoundEndSize = 48;

struct BlackoutBegin {
  uint64_t pause_realtime_ns = 0;  // CLOCK_REALTIME when the source paused the guest
  uint32_t round = 0;
  uint32_t reserved = 0;
};
inline constexpr size_t kBlackoutBeginSize = 16;

struct ChannelDone {
  uint32_t channel = 0;
  uint32_t reserved = 0;
  uint64_t data_records = 0;  // PageBatch + DiskBatch records sent on this channel
  uint64_t pages = 0;         // page entries sent on this channel
};
inline constexpr size_t kChannelDoneSize = 24;

struct DestReady {
  uint64_t state_bytes = 0;  // machine-state bytes loaded
  uint64_t verify_ns = 0;    // time the destination spent checking digests
};
inline constexpr size_t kDestReadySize = 16;

struct Commit {
  uint64_t session = 0;
};
inline constexpr size_t kCommitSize = 8;

struct Resumed {
  uint64_t resume_realtime_ns = 0;  // CLOCK_REALTIME when the destination resumed
  uint64_t blackout_ns = 0;         // resume - source pause (same-host clocks)
};
inline constexpr size_t kResumedSize = 16;

static_assert(sizeof(RecordHeader) == kRecordHeaderSize);
static_assert(sizeof(PageEntry) == kPageEntrySize);
static_assert(sizeof(PageBatchHeader) == kPageBatchHeaderSize);
static_assert(sizeof(DiskExtentHeader) == kDiskExtentHeaderSize);
static_assert(sizeof(ChannelJoin) == kChannelJoinSize);
static_assert(sizeof(RoundEnd) == kRoundEndSize);
static_assert(sizeof(BlackoutBegin) == kBlackoutBeginSize);
static_assert(sizeof(ChannelDone) == kChannelDoneSize);
static_assert(sizeof(DestReady) == kDestReadySize);
static_assert(sizeof(Commit) == kCommitSize);
static_assert(sizeof(Resumed) == kResumedSize);
static_assert(std::is_trivially_copyable_v<RecordHeader> &&
              std::is_trivially_copyable_v<PageEntry> &&
              std::is_trivially_copyable_v<DiskExtentHeader> &&
              std::is_trivially_copyable_v<RoundEnd> && std::is_trivially_copyable_v<Resumed>);

// ---- Variable-length records ---------------------------------------------------------
struct Hello {
  uint32_t magic = kWireMagic;
  uint16_t version = kProtocolVersion;
  uint64_t session = 0;
  uint64_t features = 0;
  uint32_t channel_count = 1;
  uint32_t page_size = kWirePageSize;
  uint32_t vcpus = 0;
  uint64_t memory_bytes = 0;
  std::vector<uint64_t> disk_sizes;
  std::vector<uint32_t> disk_block_sizes;  // dirty-tracking granularity, one per disk
  std::vector<uint8_t> config_blob;
};

struct HelloReply {
  uint16_t status = 0;  // HelloStatus
  uint16_t version = kProtocolVersion;
  std::string reason;
};

struct RegionDigest {
  uint64_t gpa = 0;
  uint64_t size = 0;
  uint64_t hash = 0;  // XXH3-64 over the LE array of per-page XXH3-64 hashes
};

struct DiskDigest {
  uint64_t size = 0;
  uint32_t block_size = 0;  // the per-block hashes cover blocks of this size
  uint64_t hash = 0;        // XXH3-64 over the LE array of per-block XXH3-64 hashes
};

struct Digest {
  std::vector<RegionDigest> regions;
  std::vector<DiskDigest> disks;
};

/// Cancel (source -> dest) and Error (dest -> source).
struct WireMessage {
  uint16_t code = 0;   // WireErrorCode
  uint16_t phase = 0;  // MigrationPhase of the sender of this record
  std::string text;
};

/// What a decoder found wrong, worded for a person.
struct WireError {
  std::string detail;
};

template <class T>
using WireResult = Result<T, WireError>;

/// Name of a record type for messages ("PageBatch"); "Invalid(<n>)" for unknown values.
std::string record_type_name(uint16_t type);

// ---- Encoders append to `w`; decoders reject short, long or out-of-range input -------
void encode(ByteWriter& w, const RecordHeader& v);
void encode(ByteWriter& w, const PageEntry& v);
void encode(ByteWriter& w, const PageBatchHeader& v);
void encode(ByteWriter& w, const DiskExtentHeader& v);
void encode(ByteWriter& w, const ChannelJoin& v);
void encode(ByteWriter& w, const RoundEnd& v);
void encode(ByteWriter& w, const BlackoutBegin& v);
void encode(ByteWriter& w, const ChannelDone& v);
void encode(ByteWriter& w, const DestReady& v);
void encode(ByteWriter& w, const Commit& v);
void encode(ByteWriter& w, const Resumed& v);
void encode(ByteWriter& w, const Hello& v);
void encode(ByteWriter& w, const HelloReply& v);
void encode(ByteWriter& w, const Digest& v);
void encode(ByteWriter& w, const WireMessage& v);

/// Header fields only (type range, reserved flags); length limits are per record type.
WireResult<RecordHeader> decode_record_header(std::span<const uint8_t> bytes);
/// Streamed decoders read one fixed struct from `r` and validate its fields.
WireResult<PageEntry> decode_page_entry(ByteReader& r);
WireResult<PageBatchHeader> decode_page_batch_header(ByteReader& r);
WireResult<DiskExtentHeader> decode_disk_extent_header(ByteReader& r);
/// Whole-payload decoders: the payload must be consumed exactly.
WireResult<ChannelJoin> decode_channel_join(std::span<const uint8_t> payload);
WireResult<RoundEnd> decode_round_end(std::span<const uint8_t> payload);
WireResult<BlackoutBegin> decode_blackout_begin(std::span<const uint8_t> payload);
WireResult<ChannelDone> decode_channel_done(std::span<const uint8_t> payload);
WireResult<DestReady> decode_dest_ready(std::span<const uint8_t> payload);
WireResult<Commit> decode_commit(std::span<const uint8_t> payload);
WireResult<Resumed> decode_resumed(std::span<const uint8_t> payload);
WireResult<Hello> decode_hello(std::span<const uint8_t> payload);
WireResult<HelloReply> decode_hello_reply(std::span<const uint8_t> payload);
WireResult<Digest> decode_digest(std::span<const uint8_t> payload);
WireResult<WireMessage> decode_wire_message(std::span<const uint8_t> payload);

/// Largest payload a record of `type` may carry; 0 for unknown types.
uint32_t max_payload_length(RecordType type);

/// XXH3-64 of `bytes` (the checksum used everywhere on the wire).
uint64_t wire_hash(std::span<const uint8_t> bytes);

/// Frames `payload` as one record: header (with the payload's hash) + payload.
std::vector<uint8_t> frame_record(RecordType type, std::span<const uint8_t> payload);

}  // namespace ferry::migration
