// Golden byte fixtures: the encoder output of one record of every type must equal the
// committed bytes in tests/golden/ (a wire change must bump kProtocolVersion and update
// the fixtures on purpose). Regenerate with FERRY_UPDATE_GOLDEN=1.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>

#include "ferry/migration/protocol.h"
#include "ferry/migration/wire.h"

namespace ferry::migration {
namespace {

std::vector<uint8_t> page_batch_payload() {
  std::vector<uint8_t> out;
  ByteWriter w(out);
  encode(w, PageBatchHeader{3, 3});
  std::vector<uint8_t> zero(4096, 0), raw(4096);
  for (size_t i = 0; i < raw.size(); ++i) {
    raw[i] = static_cast<uint8_t>(i);
  }
  encode(w, PageEntry{0x1000, wire_hash(zero), 4096, 0, static_cast<uint8_t>(PageCodec::Zero), {}});
  encode(
      w,
      PageEntry{
          0x2000, 0x1111222233334444, 4096, 0, static_cast<uint8_t>(PageCodec::SameAsBefore), {}});
  encode(w,
         PageEntry{0x3000, wire_hash(raw), 4096, 4096, static_cast<uint8_t>(PageCodec::Raw), {}});
  w.bytes(raw);
  return out;
}

std::vector<std::pair<std::string, std::vector<uint8_t>>> fixtures() {
  Hello hello;
  hello.session = 0x0102030405060708;
  hello.features = kFeatureZstd | kFeatureSameAsBefore | kFeatureDisk;
  hello.channel_count = 2;
  hello.vcpus = 2;
  hello.memory_bytes = 256ull << 20;
  hello.disk_sizes = {1ull << 30};
  hello.disk_block_sizes = {65536};
  hello.config_blob = {'f', 'e', 'r', 'r', 'y'};
  DiskExtentHeader disk;
  disk.offset = 1 << 20;
  disk.hash = 0xABCDEF;
  disk.disk = 0;
  disk.round = 2;
  disk.length = 65536;
  disk.codec = static_cast<uint8_t>(PageCodec::Zero);
  std::vector<uint8_t> disk_payload;
  ByteWriter dw(disk_payload);
  encode(dw, disk);
  Digest digest;
  digest.regions = {{0, 1 << 20, 0x1111}, {1ull << 32, 1 << 20, 0x2222}};
  digest.disks = {{1ull << 30, 65536, 0x3333}};
  auto rec = [](RecordType t, std::vector<uint8_t> p) { return frame_record(t, p); };
  return {
      {"hello.bin", rec(RecordType::Hello, encode_payload(hello))},
      {"hello_reply_refused.bin",
       rec(RecordType::HelloReply,
           encode_payload(
               HelloReply{static_cast<uint16_t>(HelloStatus::Refused), 1, "guest needs 512 MiB"}))},
      {"channel_join.bin",
       rec(RecordType::ChannelJoin, encode_payload(ChannelJoin{kWireMagic, 1, 0, 7, 1, 2}))},
      {"page_batch.bin", rec(RecordType::PageBatch, page_batch_payload())},
      {"disk_batch.bin", rec(RecordType::DiskBatch, disk_payload)},
      {"round_end.bin",
       rec(RecordType::RoundEnd, encode_payload(RoundEnd{1, 20, 100, 65536, 500000, 42, 1000}))},
      {"blackout_begin.bin",
       rec(RecordType::BlackoutBegin, encode_payload(BlackoutBegin{1700000000000000000, 4, 0}))},
      {"channel_done.bin", rec(RecordType::ChannelDone, encode_payload(ChannelDone{1, 0, 9, 500}))},
      {"machine_state.bin", rec(RecordType::MachineState, {'S', 'T', 'A', 'T', 'E'})},
      {"digest.bin", rec(RecordType::Digest, encode_payload(digest))},
      {"dest_ready.bin", rec(RecordType::DestReady, encode_payload(DestReady{4096, 123}))},
      {"commit.bin", rec(RecordType::Commit, encode_payload(Commit{0x0102030405060708}))},
      {"resumed.bin",
       rec(RecordType::Resumed, encode_payload(Resumed{1700000000005000000, 5000000}))},
      {"cancel.bin", rec(RecordType::Cancel,
                         encode_payload(WireMessage{static_cast<uint16_t>(WireErrorCode::Operator),
                                                    2, "cancelled by request"}))},
      {"error.bin", rec(RecordType::Error, encode_payload(WireMessage{
                                               static_cast<uint16_t>(WireErrorCode::DigestMismatch),
                                               3, "memory digest mismatch"}))},
  };
}

TEST(Golden, EncoderMatchesCommittedBytes) {
  const std::string dir = FERRY_GOLDEN_DIR;
  const bool update = std::getenv("FERRY_UPDATE_GOLDEN") != nullptr;
  for (const auto& [name, bytes] : fixtures()) {
    const std::string path = dir + "/" + name;
    if (update) {
      std::ofstream(path, std::ios::binary)
          .write(reinterpret_cast<const char*>(bytes.data()),
                 static_cast<std::streamsize>(bytes.size()));
      continue;
    }
    std::ifstream in(path, std::ios::binary);
    ASSERT_TRUE(in) << "missing fixture " << path << " (run with FERRY_UPDATE_GOLDEN=1)";
    std::vector<uint8_t> golden((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
    EXPECT_EQ(golden, bytes) << name << " differs from the encoder output";
    // Every fixture also parses: header checks and checksum.
    auto header = decode_record_header(std::span(golden.data(), kRecordHeaderSize));
    ASSERT_TRUE(header) << name;
    EXPECT_EQ(header->length, golden.size() - kRecordHeaderSize) << name;
    EXPECT_EQ(header->payload_hash,
              wire_hash(std::span(golden.data() + kRecordHeaderSize, header->length)))
        << name;
  }
}

TEST(Golden, HelloFixtureLayout) {
  // Spot-check the documented layout (docs/wire-format.md) on the committed bytes.
  std::ifstream in(FERRY_GOLDEN_DIR "/hello.bin", std::ios::binary);
  ASSERT_TRUE(in);
  std::vector<uint8_t> b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GE(b.size(), 24u);
  EXPECT_EQ(b[0], 1);  // type Hello, LE u16
  EXPECT_EQ(b[1], 0);
  EXPECT_EQ(b[2], 0);  // flags
  EXPECT_EQ(std::string(b.begin() + 16, b.begin() + 20), "FRRY");
  EXPECT_EQ(b[20], kProtocolVersion);
}

}  // namespace
}  // namespace ferry::migration
