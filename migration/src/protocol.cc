#include "ferry/migration/protocol.h"

#include <fmt/format.h>
#include <time.h>

namespace ferry::migration {

MigrationError stream_failure(const StreamError& error, MigrationPhase phase,
                              const std::string& context) {
  MigrationError e;
  e.errc = error.errc == StreamErrc::TimedOut ? MigrationErrc::Timeout : MigrationErrc::Stream;
  e.phase = phase;
  e.detail = fmt::format("{}: {}", context, error.message());
  return e;
}

MigrationError protocol_failure(MigrationPhase phase, const std::string& detail) {
  MigrationError e;
  e.errc = MigrationErrc::Protocol;
  e.phase = phase;
  e.detail = detail;
  return e;
}

Result<RawRecord, MigrationError> read_record(ByteStream& stream, MigrationPhase phase) {
  uint8_t header_bytes[kRecordHeaderSize];
  if (auto r = stream.read_exact(header_bytes); !r) {
    return fail(stream_failure(r.error(), phase, fmt::format("reading from {}", stream.peer())));
  }
  auto header = decode_record_header(header_bytes);
  if (!header) {
    return fail(protocol_failure(
        phase, fmt::format("bad record from {}: {}", stream.peer(), header.error().detail)));
  }
  RawRecord rec;
  rec.type = static_cast<RecordType>(header->type);
  rec.payload.resize(header->length);  // bounded by max_payload_length(type)
  if (auto r = stream.read_exact(rec.payload); !r) {
    return fail(stream_failure(
        r.error(), phase,
        fmt::format("reading {} payload from {}", record_type_name(header->type), stream.peer())));
  }
  if (wire_hash(rec.payload) != header->payload_hash) {
    return fail(
        protocol_failure(phase, fmt::format("{} record from {}: payload checksum mismatch",
                                            record_type_name(header->type), stream.peer())));
  }
  return rec;
}

Result<void, MigrationError> write_record(ByteStream& stream, RecordType type,
                                          std::span<const uint8_t> payload, MigrationPhase phase) {
  std::vector<uint8_t> framed = frame_record(type, payload);
  if (auto r = stream.write_all(framed); !r) {
    return fail(
        stream_failure(r.error(), phase,
                       fmt::format("sending {} to {}",
                                   record_type_name(static_cast<uint16_t>(type)), stream.peer())));
  }
  return {};
}

namespace {
uint64_t clock_ns(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}
}  // namespace

uint64_t realtime_ns() { return clock_ns(CLOCK_REALTIME); }
uint64_t monotonic_ns() { return clock_ns(CLOCK_MONOTONIC); }

}  // namespace ferry::migration
