// Wire format: round trips, limits, and rejection of malformed input.
#include "ferry/migration/wire.h"

#include <gtest/gtest.h>

#include "fakes/mem_stream.h"
#include "ferry/migration/protocol.h"

namespace ferry::migration {
namespace {

Hello sample_hello() {
  Hello h;
  h.session = 0x1122334455667788;
  h.features = kFeatureZstd | kFeatureDisk;
  h.channel_count = 3;
  h.vcpus = 2;
  h.memory_bytes = 256ull << 20;
  h.disk_sizes = {1ull << 30};
  h.disk_block_sizes = {65536};
  h.config_blob = {1, 2, 3, 4, 5};
  return h;
}

TEST(Wire, VersionPolicy) {
  EXPECT_TRUE(protocol_version_supported(kProtocolVersion));
  EXPECT_FALSE(protocol_version_supported(0));
  EXPECT_FALSE(protocol_version_supported(kProtocolVersion + 1));
  if (kProtocolVersion > 1) {
    EXPECT_TRUE(protocol_version_supported(kProtocolVersion - 1));
  }
}

TEST(Wire, HelloRoundTrip) {
  Hello h = sample_hello();
  auto d = decode_hello(encode_payload(h));
  ASSERT_TRUE(d) << d.error().detail;
  EXPECT_EQ(d->session, h.session);
  EXPECT_EQ(d->features, h.features);
  EXPECT_EQ(d->channel_count, 3u);
  EXPECT_EQ(d->memory_bytes, h.memory_bytes);
  EXPECT_EQ(d->disk_sizes, h.disk_sizes);
  EXPECT_EQ(d->disk_block_sizes, h.disk_block_sizes);
  EXPECT_EQ(d->config_blob, h.config_blob);
}

TEST(Wire, HelloRejectsEveryTruncationAndTrailingBytes) {
  std::vector<uint8_t> bytes = encode_payload(sample_hello());
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(decode_hello(std::span(bytes.data(), n))) << "prefix " << n;
  }
  bytes.push_back(0);
  auto d = decode_hello(bytes);
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().detail.find("trailing"), std::string::npos);
}

TEST(Wire, HelloRejectsBadMagicVersionAndFields) {
  Hello h = sample_hello();
  h.magic = 0xdeadbeef;
  EXPECT_NE(decode_hello(encode_payload(h)).error().detail.find("magic"), std::string::npos);
  h = sample_hello();
  h.version = kProtocolVersion + 1;
  EXPECT_NE(decode_hello(encode_payload(h)).error().detail.find("version"), std::string::npos);
  h = sample_hello();
  h.channel_count = kMaxChannels + 1;
  EXPECT_FALSE(decode_hello(encode_payload(h)));
  h = sample_hello();
  h.disk_block_sizes = {1000};  // not a power of two
  EXPECT_FALSE(decode_hello(encode_payload(h)));
  h = sample_hello();
  h.page_size = 8192;
  EXPECT_FALSE(decode_hello(encode_payload(h)));
}

TEST(Wire, FixedRecordsRoundTrip) {
  ChannelJoin j{kWireMagic, kProtocolVersion, 0, 42, 2, 4};
  auto jd = decode_channel_join(encode_payload(j));
  ASSERT_TRUE(jd);
  EXPECT_EQ(jd->channel, 2u);
  EXPECT_EQ(encode_payload(j).size(), kChannelJoinSize);
  j.channel = 0;  // channel 0 never joins: it carries the Hello
  EXPECT_FALSE(decode_channel_join(encode_payload(j)));

  RoundEnd r{3, 40, 100, 200, 300, 400, 500};
  EXPECT_EQ(encode_payload(r).size(), kRoundEndSize);
  auto rd = decode_round_end(encode_payload(r));
  ASSERT_TRUE(rd);
  EXPECT_EQ(rd->dirty_pages, 400u);
  r.throttle_percent = 101;
  EXPECT_FALSE(decode_round_end(encode_payload(r)));

  EXPECT_EQ(decode_blackout_begin(encode_payload(BlackoutBegin{7, 2, 0}))->pause_realtime_ns, 7u);
  EXPECT_EQ(decode_channel_done(encode_payload(ChannelDone{1, 0, 5, 6}))->pages, 6u);
  EXPECT_EQ(decode_dest_ready(encode_payload(DestReady{9, 10}))->verify_ns, 10u);
  EXPECT_EQ(decode_commit(encode_payload(Commit{11}))->session, 11u);
  EXPECT_EQ(decode_resumed(encode_payload(Resumed{12, 13}))->blackout_ns, 13u);

  HelloReply hr{static_cast<uint16_t>(HelloStatus::Refused), kProtocolVersion, "too big"};
  EXPECT_EQ(decode_hello_reply(encode_payload(hr))->reason, "too big");
  hr.status = 9;
  EXPECT_FALSE(decode_hello_reply(encode_payload(hr)));

  WireMessage m{static_cast<uint16_t>(WireErrorCode::DigestMismatch), 3, "bad"};
  EXPECT_EQ(decode_wire_message(encode_payload(m))->text, "bad");
  m.code = 99;
  EXPECT_FALSE(decode_wire_message(encode_payload(m)));

  Digest dg;
  dg.regions = {{0, 4096, 1}, {1ull << 32, 8192, 2}};
  dg.disks = {{1 << 20, 65536, 3}};
  auto dd = decode_digest(encode_payload(dg));
  ASSERT_TRUE(dd);
  EXPECT_EQ(dd->regions[1].gpa, 1ull << 32);
  EXPECT_EQ(dd->disks[0].hash, 3u);
}

TEST(Wire, PageEntryValidation) {
  auto check = [](PageEntry e) {
    std::vector<uint8_t> b;
    ByteWriter w(b);
    encode(w, e);
    EXPECT_EQ(b.size(), kPageEntrySize);
    ByteReader r(b);
    return decode_page_entry(r);
  };
  PageEntry ok{0x1000, 5, 4096, 4096, static_cast<uint8_t>(PageCodec::Raw), {}};
  EXPECT_TRUE(check(ok));
  PageEntry e = ok;
  e.gpa = 0x1001;
  EXPECT_FALSE(check(e));
  e = ok;
  e.codec = 0;
  EXPECT_FALSE(check(e));
  e = ok;
  e.codec = kMaxPageCodec + 1;
  EXPECT_FALSE(check(e));
  e = ok;
  e.reserved[3] = 1;
  EXPECT_FALSE(check(e));
  e = ok;
  e.uncompressed_length = 8192;
  EXPECT_FALSE(check(e));
  e = ok;
  e.payload_length = 100;  // raw must be exactly a page
  EXPECT_FALSE(check(e));
  e = ok;
  e.codec = static_cast<uint8_t>(PageCodec::Zero);
  EXPECT_FALSE(check(e));  // zero carries no payload
  e.payload_length = 0;
  EXPECT_TRUE(check(e));
  e.codec = static_cast<uint8_t>(PageCodec::Zstd);
  e.payload_length = 5000;
  EXPECT_FALSE(check(e));
}

TEST(Wire, DiskExtentValidation) {
  auto check = [](DiskExtentHeader h) {
    std::vector<uint8_t> b;
    ByteWriter w(b);
    encode(w, h);
    EXPECT_EQ(b.size(), kDiskExtentHeaderSize);
    ByteReader r(b);
    return decode_disk_extent_header(r);
  };
  DiskExtentHeader ok;
  ok.length = 65536;
  ok.payload_length = 65536;
  ok.codec = static_cast<uint8_t>(PageCodec::Raw);
  EXPECT_TRUE(check(ok));
  DiskExtentHeader h = ok;
  h.length = kMaxDiskExtent + 1;
  h.payload_length = h.length;
  EXPECT_FALSE(check(h));
  h = ok;
  h.codec = static_cast<uint8_t>(PageCodec::SameAsBefore);
  EXPECT_FALSE(check(h));
}

TEST(Wire, RecordHeaderRejectsUnknownTypeFlagsAndOversize) {
  auto header = [](uint16_t type, uint16_t flags, uint32_t len) {
    std::vector<uint8_t> b;
    ByteWriter w(b);
    encode(w, RecordHeader{type, flags, len, 0});
    return decode_record_header(b);
  };
  EXPECT_TRUE(header(4, 0, 100));
  EXPECT_FALSE(header(0, 0, 0));
  EXPECT_FALSE(header(kMaxRecordType + 1, 0, 0));
  EXPECT_FALSE(header(4, 1, 100));
  auto big = header(static_cast<uint16_t>(RecordType::PageBatch), 0, 0xFFFFFFFF);
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().detail.find("exceeds the limit"), std::string::npos);
  EXPECT_FALSE(header(static_cast<uint16_t>(RecordType::Commit), 0, kCommitSize + 1));
}

TEST(Wire, ReadRecordChecksAndChecksum) {
  auto [a, b] = testing::make_stream_pair();
  std::vector<uint8_t> payload = encode_payload(Commit{77});
  ASSERT_TRUE(write_record(*a, RecordType::Commit, payload, MigrationPhase::Commit));
  auto rec = read_record(*b, MigrationPhase::Commit);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->type, RecordType::Commit);
  EXPECT_EQ(decode_commit(rec->payload)->session, 77u);

  // Flip one payload byte: checksum mismatch.
  std::vector<uint8_t> framed = frame_record(RecordType::Commit, payload);
  framed.back() ^= 1;
  ASSERT_TRUE(a->write_all(framed));
  auto bad = read_record(*b, MigrationPhase::Commit);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().errc, MigrationErrc::Protocol);
  EXPECT_NE(bad.error().detail.find("checksum"), std::string::npos);

  // A header claiming 4 GiB is refused before anything is allocated or read.
  std::vector<uint8_t> huge;
  ByteWriter w(huge);
  encode(w, RecordHeader{static_cast<uint16_t>(RecordType::MachineState), 0, 0xFFFFFFF0, 0});
  ASSERT_TRUE(a->write_all(huge));
  auto over = read_record(*b, MigrationPhase::Blackout);
  ASSERT_FALSE(over);
  EXPECT_NE(over.error().detail.find("exceeds the limit"), std::string::npos);

  // Truncated: the writer closes mid-payload.
  framed = frame_record(RecordType::Commit, payload);
  ASSERT_TRUE(a->write_all(std::span(framed.data(), framed.size() - 3)));
  a.reset();
  auto cut = read_record(*b, MigrationPhase::Commit);
  ASSERT_FALSE(cut);
  EXPECT_EQ(cut.error().errc, MigrationErrc::Stream);
}

}  // namespace
}  // namespace ferry::migration
