// Page codec: encodings, round trips, and rejection of corrupted payloads.
#include <gtest/gtest.h>
#include <xxhash.h>
#include <zstd.h>

#include <random>

#include "ferry/migration/page_codec.h"

namespace ferry::migration {
namespace {

std::vector<uint8_t> random_page(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> p(4096);
  for (auto& b : p) {
    b = static_cast<uint8_t>(rng());
  }
  return p;
}

std::vector<uint8_t> text_page() {
  std::vector<uint8_t> p(4096);
  for (size_t i = 0; i < p.size(); ++i) {
    p[i] = static_cast<uint8_t>("abcabcabd"[i % 9]);
  }
  return p;
}

uint64_t h(const std::vector<uint8_t>& v) { return XXH3_64bits(v.data(), v.size()); }

TEST(Codec, ParseCompression) {
  EXPECT_EQ(parse_compression("auto")->mode, CompressionSpec::Mode::Auto);
  EXPECT_EQ(parse_compression("off")->mode, CompressionSpec::Mode::Off);
  EXPECT_EQ(parse_compression("zstd")->level, 3);
  EXPECT_EQ(parse_compression("zstd:7")->level, 7);
  EXPECT_FALSE(parse_compression("zstd:0"));
  EXPECT_FALSE(parse_compression("zstd:20"));
  EXPECT_FALSE(parse_compression("zstd:3x"));
  EXPECT_FALSE(parse_compression("zstd7"));
  EXPECT_FALSE(parse_compression("lz4"));
  EXPECT_EQ(to_string(*parse_compression("zstd:7")), "zstd:7");
}

TEST(Codec, EncodingsRoundTrip) {
  BlockEncoder enc;
  BlockDecoder dec;
  std::vector<uint8_t> out(4096);

  std::vector<uint8_t> zero(4096, 0), payload;
  EncodedBlock z = enc.encode(zero, 3, false, 0, payload);
  EXPECT_EQ(z.codec, PageCodec::Zero);
  EXPECT_TRUE(payload.empty());
  EXPECT_EQ(z.hash, h(zero));
  ASSERT_TRUE(dec.decode(PageCodec::Zero, {}, z.hash, out));
  EXPECT_EQ(out, zero);

  std::vector<uint8_t> text = text_page();
  payload.clear();
  EncodedBlock t = enc.encode(text, 3, false, 0, payload);
  EXPECT_EQ(t.codec, PageCodec::Zstd);
  EXPECT_LT(payload.size(), 200u);
  ASSERT_TRUE(dec.decode(PageCodec::Zstd, payload, t.hash, out));
  EXPECT_EQ(out, text);

  // Random bytes do not shrink: stored raw.
  std::vector<uint8_t> rnd = random_page(1);
  payload.clear();
  EncodedBlock r = enc.encode(rnd, 3, false, 0, payload);
  EXPECT_EQ(r.codec, PageCodec::Raw);
  EXPECT_EQ(payload, rnd);
  ASSERT_TRUE(dec.decode(PageCodec::Raw, payload, r.hash, out));
  EXPECT_EQ(out, rnd);

  // Level 0 (compression off / auto at its fastest): raw even when compressible.
  payload.clear();
  EXPECT_EQ(enc.encode(text, 0, false, 0, payload).codec, PageCodec::Raw);

  // Same as before: hash only, and only when allowed and equal.
  payload.clear();
  EncodedBlock s = enc.encode(rnd, 3, true, h(rnd), payload);
  EXPECT_EQ(s.codec, PageCodec::SameAsBefore);
  EXPECT_TRUE(payload.empty());
  payload.clear();
  EXPECT_EQ(enc.encode(rnd, 3, true, h(rnd) + 1, payload).codec, PageCodec::Raw);
}

TEST(Codec, RejectsCorruptAndTruncatedPayloads) {
  BlockEncoder enc;
  BlockDecoder dec;
  std::vector<uint8_t> out(4096);
  std::vector<uint8_t> text = text_page(), payload;
  EncodedBlock t = enc.encode(text, 3, false, 0, payload);
  ASSERT_EQ(t.codec, PageCodec::Zstd);

  for (size_t n = 0; n < payload.size(); ++n) {  // every truncation
    EXPECT_FALSE(dec.decode(PageCodec::Zstd, std::span(payload.data(), n), t.hash, out)) << n;
  }
  for (size_t i = 0; i < payload.size(); ++i) {  // every single-byte corruption
    std::vector<uint8_t> bad = payload;
    bad[i] ^= 0x5A;
    EXPECT_FALSE(dec.decode(PageCodec::Zstd, bad, t.hash, out)) << "byte " << i;
  }
  std::vector<uint8_t> trailing = payload;
  trailing.push_back(0);
  auto tr = dec.decode(PageCodec::Zstd, trailing, t.hash, out);
  ASSERT_FALSE(tr);
  EXPECT_NE(tr.error().detail.find("extra bytes"), std::string::npos);

  // A valid frame of the wrong size (4095 bytes) is refused by its declared size.
  std::vector<uint8_t> short_frame(ZSTD_compressBound(4095));
  size_t n = ZSTD_compress(short_frame.data(), short_frame.size(), text.data(), 4095, 3);
  short_frame.resize(n);
  auto sz = dec.decode(PageCodec::Zstd, short_frame, t.hash, out);
  ASSERT_FALSE(sz);
  EXPECT_NE(sz.error().detail.find("declares 4095"), std::string::npos);

  // Wrong hash after a clean decode.
  auto hm = dec.decode(PageCodec::Zstd, payload, t.hash ^ 1, out);
  ASSERT_FALSE(hm);
  EXPECT_NE(hm.error().detail.find("hash mismatch"), std::string::npos);

  EXPECT_FALSE(dec.decode(PageCodec::Raw, std::span(text.data(), 100), t.hash, out));
  EXPECT_FALSE(dec.decode(PageCodec::Zero, std::span(text.data(), 1), t.hash, out));
  EXPECT_FALSE(dec.decode(PageCodec::SameAsBefore, {}, t.hash, out));
  EXPECT_FALSE(dec.decode(PageCodec::Invalid, {}, t.hash, out));
}

TEST(Codec, DiskExtentRoundTrip) {
  BlockEncoder enc;
  BlockDecoder dec;
  std::vector<uint8_t> extent(1 << 20);
  for (size_t i = 0; i < extent.size(); ++i) {
    extent[i] = static_cast<uint8_t>(i / 4096);
  }
  std::vector<uint8_t> payload, out(extent.size());
  EncodedBlock e = enc.encode(extent, 1, false, 0, payload);
  EXPECT_EQ(e.codec, PageCodec::Zstd);
  ASSERT_TRUE(dec.decode(e.codec, payload, e.hash, out));
  EXPECT_EQ(out, extent);
}

TEST(Codec, LevelControllerAdaptsToBackPressure) {
  LevelController fixed(*parse_compression("zstd:5"));
  for (int i = 0; i < 100; ++i) {
    fixed.link_bound();
  }
  EXPECT_EQ(fixed.level(), 5);
  EXPECT_EQ(LevelController(*parse_compression("off")).level(), 0);

  LevelController a(*parse_compression("auto"));
  EXPECT_EQ(a.level(), 1);
  for (int i = 0; i < 100; ++i) {
    a.link_bound();  // slow link: compress harder
  }
  EXPECT_EQ(a.level(), 6);
  for (int i = 0; i < 100; ++i) {
    a.encoder_bound();  // fast link: down to raw
  }
  EXPECT_EQ(a.level(), 0);
  // Alternating signals do not move it.
  for (int i = 0; i < 100; ++i) {
    a.link_bound();
    a.encoder_bound();
  }
  EXPECT_EQ(a.level(), 0);
}

TEST(Codec, EmptyBlocksDecodeWithoutTouchingNullBuffers) {
  // Found by tests/fuzz/page_codec_fuzzer: Zero and Raw into an empty output called
  // memset/memcpy on a null data() (UBSan). Ferry never decodes empty blocks (extents are
  // 1..kMaxDiskExtent bytes), but the API takes any span.
  BlockDecoder dec;
  std::vector<uint8_t> none;
  EXPECT_TRUE(dec.decode(PageCodec::Zero, {}, wire_hash(none), none));
  EXPECT_TRUE(dec.decode(PageCodec::Raw, {}, wire_hash(none), none));
  const std::vector<uint8_t> one{1};
  EXPECT_FALSE(dec.decode(PageCodec::Raw, one, wire_hash(none), none));
}

}  // namespace
}  // namespace ferry::migration
