// Record I/O over a ByteStream: frames payloads into records (wire.h) and reads records
// back with every check done before allocation (type, flags, per-type length limit) and
// the payload checksum verified after. Shared by the sender and the receiver.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "ferry/kernel-interfaces/result.h"
#include "ferry/migration/byte_stream.h"
#include "ferry/migration/migration_error.h"
#include "ferry/migration/wire.h"

namespace ferry::migration {

/// One record as read from a stream: checked header, verified payload.
struct RawRecord {
  RecordType type = RecordType::Invalid;
  std::vector<uint8_t> payload;
  /// Header + payload bytes.
  size_t wire_size() const { return kRecordHeaderSize + payload.size(); }
};

/// Reads one record; rejects unknown types, nonzero flags, over-limit lengths (before
/// allocating) and checksum mismatches. Errors carry `phase` and say what was wrong.
Result<RawRecord, MigrationError> read_record(ByteStream& stream, MigrationPhase phase);

/// Frames and writes one record.
Result<void, MigrationError> write_record(ByteStream& stream, RecordType type,
                                          std::span<const uint8_t> payload, MigrationPhase phase);

/// Encodes any wire struct into a fresh payload vector.
template <class T>
std::vector<uint8_t> encode_payload(const T& value) {
  std::vector<uint8_t> out;
  ByteWriter w(out);
  encode(w, value);
  return out;
}

/// Maps a stream failure to a MigrationError (TimedOut -> Timeout, others -> Stream).
MigrationError stream_failure(const StreamError& error, MigrationPhase phase,
                              const std::string& context);

/// A Protocol error: "<context>: <detail>".
MigrationError protocol_failure(MigrationPhase phase, const std::string& detail);

/// CLOCK_REALTIME and CLOCK_MONOTONIC in nanoseconds.
uint64_t realtime_ns();
uint64_t monotonic_ns();

}  // namespace ferry::migration
