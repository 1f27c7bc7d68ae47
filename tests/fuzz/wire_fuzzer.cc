// Fuzzes the migration record parser (wire.h): the record header and every payload
// decoder. An input that starts with a valid 16-byte header is dispatched on its type
// (the golden records in tests/golden/ are the seeds); any other input picks a decoder
// with its first byte. Every payload a decoder accepts must re-encode to the same bytes:
// the wire format has one encoding per value, so accepting anything else is a bug.
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "ferry/migration/protocol.h"
#include "ferry/migration/wire.h"

namespace {

using namespace ferry::migration;
using Bytes = std::span<const uint8_t>;

template <class T>
void expect_canonical(const WireResult<T>& decoded, Bytes payload) {
  if (decoded && encode_payload(*decoded) != std::vector<uint8_t>(payload.begin(), payload.end())) {
    std::abort();  // accepted bytes that the encoder would never produce
  }
}

// Streamed decoders: what they consumed must re-encode to the same bytes.
template <class T>
void streamed(WireResult<T> (*decode)(ferry::ByteReader&), Bytes payload) {
  ferry::ByteReader r(payload);
  auto v = decode(r);
  if (v) {
    expect_canonical(v, payload.first(r.position()));
  }
}

void decode_as(uint16_t type, Bytes p) {
  switch (static_cast<RecordType>(type)) {
    case RecordType::Hello:
      return expect_canonical(decode_hello(p), p);
    case RecordType::HelloReply:
      return expect_canonical(decode_hello_reply(p), p);
    case RecordType::ChannelJoin:
      return expect_canonical(decode_channel_join(p), p);
    case RecordType::PageBatch: {
      // Header, then entries as the receiver walks them.
      ferry::ByteReader r(p);
      auto h = decode_page_batch_header(r);
      if (!h) {
        return;
      }
      for (uint32_t i = 0; i < h->count && r.remaining() >= kPageEntrySize; ++i) {
        auto e = decode_page_entry(r);
        if (!e || r.remaining() < e->payload_length) {
          return;
        }
        std::vector<uint8_t> skip(e->payload_length);
        r.bytes(skip);
      }
      return;
    }
    case RecordType::DiskBatch:
      return streamed(&decode_disk_extent_header, p);
    case RecordType::RoundEnd:
      return expect_canonical(decode_round_end(p), p);
    case RecordType::BlackoutBegin:
      return expect_canonical(decode_blackout_begin(p), p);
    case RecordType::ChannelDone:
      return expect_canonical(decode_channel_done(p), p);
    case RecordType::Digest:
      return expect_canonical(decode_digest(p), p);
    case RecordType::DestReady:
      return expect_canonical(decode_dest_ready(p), p);
    case RecordType::Commit:
      return expect_canonical(decode_commit(p), p);
    case RecordType::Resumed:
      return expect_canonical(decode_resumed(p), p);
    case RecordType::Cancel:
    case RecordType::Error:
      return expect_canonical(decode_wire_message(p), p);
    case RecordType::MachineState:
    case RecordType::Invalid:
      break;
  }
  // Not a record type: the streamed decoders on their own.
  switch (type % 3) {
    case 0:
      return streamed(&decode_page_entry, p);
    case 1:
      return streamed(&decode_page_batch_header, p);
    default:
      return streamed(&decode_disk_extent_header, p);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Bytes in(data, size);
  (void)record_type_name(size >= 2 ? static_cast<uint16_t>(data[0] | data[1] << 8) : 0);
  if (size >= kRecordHeaderSize) {
    auto header = decode_record_header(in.first(kRecordHeaderSize));
    if (header) {
      const auto type = static_cast<RecordType>(header->type);
      Bytes payload = in.subspan(kRecordHeaderSize);
      // read_record's checks; decoded regardless (a hostile peer computes the hash too).
      (void)(header->length <= max_payload_length(type) && header->length == payload.size() &&
             header->payload_hash == wire_hash(payload));
      decode_as(header->type, payload);
      return 0;
    }
  }
  if (size == 0) {
    return 0;
  }
  decode_as(static_cast<uint16_t>(data[0] % 20), in.subspan(1));
  return 0;
}
