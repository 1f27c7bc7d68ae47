// Fuzzes the page / disk-extent codec (page_codec.h). Two properties per input:
//  1. BlockDecoder::decode on an arbitrary codec byte, output length and payload (zstd
//     frames included) fails cleanly or fills exactly the output buffer;
//  2. BlockEncoder::encode of the same bytes, at a level picked by the input, decodes
//     back to the very same bytes with the hash it reported.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "ferry/migration/page_codec.h"
#include "fuzz_input.h"

using namespace ferry::migration;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static BlockDecoder decoder;  // one zstd context for the process, as per thread in Ferry
  static BlockEncoder encoder;
  ferry::fuzz::FuzzInput in(data, size);
  const auto codec = static_cast<PageCodec>(in.take<uint8_t>() % (kMaxPageCodec + 2));
  const uint8_t level_sel = in.take<uint8_t>();
  // Output length: a page most of the time, else anything up to a disk extent.
  const uint32_t raw_len = in.take<uint32_t>();
  const size_t out_len = (raw_len & 1) ? raw_len % (kMaxDiskExtent + 1) : kWirePageSize;
  const uint64_t expected_hash = in.take<uint64_t>();
  const auto payload = in.rest();

  std::vector<uint8_t> out(out_len);
  (void)decoder.decode(codec, payload, expected_hash, out);
  (void)decoder.decode(codec, payload, wire_hash(out), out);

  // Round trip of the payload bytes as a block.
  std::vector<uint8_t> encoded;
  static constexpr int kLevels[] = {0, 1, 3, 6, 9};
  const bool allow_same = (level_sel & 0x80) != 0;
  const uint64_t block_hash = wire_hash(payload);
  EncodedBlock e = encoder.encode(payload, kLevels[level_sel % 5], allow_same,
                                  allow_same ? block_hash : ~block_hash, encoded);
  if (e.hash != block_hash || e.payload_length != encoded.size()) {
    std::abort();
  }
  if (e.codec == PageCodec::SameAsBefore || payload.empty()) {
    return 0;
  }
  std::vector<uint8_t> back(payload.size());
  auto ok = decoder.decode(e.codec, encoded, e.hash, back);
  if (!ok || !std::equal(back.begin(), back.end(), payload.begin())) {
    std::abort();
  }
  return 0;
}
