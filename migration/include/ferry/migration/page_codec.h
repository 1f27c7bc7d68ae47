// Per-page (and per-disk-extent) encoding: zero pages as a flag, "same as before" as a
// hash only, otherwise zstd (libzstd) or raw bytes when zstd does not shrink them.
// Decoding validates codec, lengths and the XXH3-64 of the decoded bytes. One encoder or
// decoder per thread: each owns a zstd context.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/kernel-interfaces/result.h"
#include "ferry/migration/wire.h"

struct ZSTD_CCtx_s;
struct ZSTD_DCtx_s;

namespace ferry::migration {

/// `--compress auto|off|zstd[:LEVEL]`.
struct CompressionSpec {
  enum class Mode { Auto, Off, Zstd };
  Mode mode = Mode::Auto;
  int level = 3;  // used by Mode::Zstd (1..19)
};

/// Parses "auto", "off", "zstd" or "zstd:LEVEL" (LEVEL 1..19); nullopt if malformed.
std::optional<CompressionSpec> parse_compression(std::string_view text);
std::string to_string(const CompressionSpec& spec);

/// Adaptive level for Mode::Auto, driven by pipeline back-pressure: when the encoder
/// waits for the link (queue full) the link is the bottleneck and a stronger level is
/// worth it; when the link waits for the encoder, go faster, down to raw (level 0).
class LevelController {
 public:
  explicit LevelController(const CompressionSpec& spec);
  /// Current zstd level; 0 means store raw.
  int level() const;
  /// The encoder had to wait for queue space (the link is slower than the compressor).
  void link_bound();
  /// The sender thread found its queue empty (the compressor is slower than the link).
  void encoder_bound();

 private:
  static constexpr int kLadder[] = {0, 1, 3, 6};
  bool adaptive_ = true;
  int fixed_level_ = 0;
  int step_ = 1;   // index into kLadder
  int votes_ = 0;  // >0: toward stronger, <0: toward faster
};

/// How one page or extent was encoded (payload bytes were appended to the output vector).
struct EncodedBlock {
  PageCodec codec = PageCodec::Invalid;
  uint64_t hash = 0;  // XXH3-64 of the uncompressed bytes
  uint32_t payload_length = 0;
};

/// Encoder for one thread. Not copyable.
class BlockEncoder {
 public:
  BlockEncoder();
  ~BlockEncoder();
  BlockEncoder(const BlockEncoder&) = delete;
  BlockEncoder& operator=(const BlockEncoder&) = delete;

  /// Encodes `data`: Zero if all zero; SameAsBefore if `allow_same` and hash == `held_hash`
  /// (what the destination holds); zstd at `level` if it shrinks; else Raw. Payload bytes
  /// are appended to `out`.
  EncodedBlock encode(std::span<const uint8_t> data, int level, bool allow_same, uint64_t held_hash,
                      std::vector<uint8_t>& out);
  /// Same decision as encode(), but a Raw result appends nothing: for callers whose
  /// `data` already sits where the raw payload goes (the sender's frame). Only a Zstd
  /// payload is appended to `out`.
  EncodedBlock encode_in_place(std::span<const uint8_t> data, int level, bool allow_same,
                               uint64_t held_hash, std::vector<uint8_t>& out);
  /// XXH3-64 of an all-zero block of `length` bytes (cached for the page size).
  uint64_t zero_hash(size_t length);

 private:
  ZSTD_CCtx_s* cctx_ = nullptr;
  uint64_t zero_page_hash_ = 0;
};

struct CodecError {
  std::string detail;
};

/// Decoder for one thread. Not copyable.
class BlockDecoder {
 public:
  BlockDecoder();
  ~BlockDecoder();
  BlockDecoder(const BlockDecoder&) = delete;
  BlockDecoder& operator=(const BlockDecoder&) = delete;

  /// Decodes `payload` (codec Zero, Raw or Zstd) into `out` (exactly the uncompressed
  /// length) and checks XXH3-64(out) == expected_hash. SameAsBefore is handled by the
  /// caller (it only needs a hash check of what it already holds).
  Result<void, CodecError> decode(PageCodec codec, std::span<const uint8_t> payload,
                                  uint64_t expected_hash, std::span<uint8_t> out);

 private:
  ZSTD_DCtx_s* dctx_ = nullptr;
};

/// True if every byte of `data` is zero.
bool is_all_zero(std::span<const uint8_t> data);

}  // namespace ferry::migration
