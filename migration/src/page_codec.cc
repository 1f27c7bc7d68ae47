// Page/extent codec: zero flag, same-as-before, zstd or raw; strict decoding.
#include "ferry/migration/page_codec.h"

#include <fmt/format.h>
#include <xxhash.h>
#include <zstd.h>

#include <charconv>
#include <cstring>

namespace ferry::migration {

std::optional<CompressionSpec> parse_compression(std::string_view text) {
  CompressionSpec spec;
  if (text == "auto") {
    spec.mode = CompressionSpec::Mode::Auto;
    return spec;
  }
  if (text == "off") {
    spec.mode = CompressionSpec::Mode::Off;
    spec.level = 0;
    return spec;
  }
  if (text.substr(0, 4) != "zstd") {
    return std::nullopt;
  }
  spec.mode = CompressionSpec::Mode::Zstd;
  if (text.size() == 4) {
    return spec;
  }
  if (text[4] != ':') {
    return std::nullopt;
  }
  std::string_view num = text.substr(5);
  int level = 0;
  auto [ptr, ec] = std::from_chars(num.data(), num.data() + num.size(), level);
  if (ec != std::errc() || ptr != num.data() + num.size() || level < 1 || level > 19) {
    return std::nullopt;
  }
  spec.level = level;
  return spec;
}

std::string to_string(const CompressionSpec& spec) {
  switch (spec.mode) {
    case CompressionSpec::Mode::Auto:
      return "auto";
    case CompressionSpec::Mode::Off:
      return "off";
    case CompressionSpec::Mode::Zstd:
      return fmt::format("zstd:{}", spec.level);
  }
  return "invalid";
}

// ---- LevelController -----------------------------------------------------------------
namespace {
// Consecutive back-pressure signals needed before moving one step; damps flapping.
constexpr int kVotesPerStep = 8;
constexpr int kLadderSize = 4;
}  // namespace

LevelController::LevelController(const CompressionSpec& spec) {
  adaptive_ = spec.mode == CompressionSpec::Mode::Auto;
  fixed_level_ = spec.mode == CompressionSpec::Mode::Zstd ? spec.level : 0;
}

int LevelController::level() const { return adaptive_ ? kLadder[step_] : fixed_level_; }

void LevelController::link_bound() {
  if (!adaptive_) {
    return;
  }
  votes_ = votes_ < 0 ? 1 : votes_ + 1;
  if (votes_ >= kVotesPerStep && step_ + 1 < kLadderSize) {
    ++step_;
    votes_ = 0;
  }
}

void LevelController::encoder_bound() {
  if (!adaptive_) {
    return;
  }
  votes_ = votes_ > 0 ? -1 : votes_ - 1;
  if (votes_ <= -kVotesPerStep && step_ > 0) {
    --step_;
    votes_ = 0;
  }
}

// ---- helpers -------------------------------------------------------------------------
bool is_all_zero(std::span<const uint8_t> data) {
  // Word-at-a-time scan; the tail (if any) byte by byte.
  size_t i = 0;
  for (; i + 8 <= data.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, data.data() + i, 8);
    if (word != 0) {
      return false;
    }
  }
  for (; i < data.size(); ++i) {
    if (data[i] != 0) {
      return false;
    }
  }
  return true;
}

// ---- BlockEncoder --------------------------------------------------------------------
BlockEncoder::BlockEncoder() : cctx_(ZSTD_createCCtx()) {
  std::vector<uint8_t> zeros(kWirePageSize, 0);
  zero_page_hash_ = XXH3_64bits(zeros.data(), zeros.size());
}

BlockEncoder::~BlockEncoder() { ZSTD_freeCCtx(cctx_); }

uint64_t BlockEncoder::zero_hash(size_t length) {
  if (length == kWirePageSize) {
    return zero_page_hash_;
  }
  std::vector<uint8_t> zeros(length, 0);
  return XXH3_64bits(zeros.data(), zeros.size());
}

EncodedBlock BlockEncoder::encode(std::span<const uint8_t> data, int level, bool allow_same,
                                  uint64_t held_hash, std::vector<uint8_t>& out) {
  EncodedBlock result = encode_in_place(data, level, allow_same, held_hash, out);
  if (result.codec == PageCodec::Raw) {
    out.insert(out.end(), data.begin(), data.end());
  }
  return result;
}

EncodedBlock BlockEncoder::encode_in_place(std::span<const uint8_t> data, int level,
                                           bool allow_same, uint64_t held_hash,
                                           std::vector<uint8_t>& out) {
  EncodedBlock result;
  if (is_all_zero(data)) {
    result.codec = PageCodec::Zero;
    result.hash = zero_hash(data.size());
    return result;
  }
  result.hash = XXH3_64bits(data.data(), data.size());
  if (allow_same && result.hash == held_hash) {
    result.codec = PageCodec::SameAsBefore;
    return result;
  }
  size_t start = out.size();
  if (level > 0 && cctx_ != nullptr) {
    size_t bound = ZSTD_compressBound(data.size());
    out.resize(start + bound);
    ZSTD_CCtx_reset(cctx_, ZSTD_reset_session_only);
    ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(cctx_, ZSTD_c_contentSizeFlag, 1);
    ZSTD_CCtx_setParameter(cctx_, ZSTD_c_checksumFlag, 0);
    size_t n = ZSTD_compress2(cctx_, out.data() + start, bound, data.data(), data.size());
    // Keep zstd only when it actually shrinks the block (strictly smaller than raw).
    if (!ZSTD_isError(n) && n < data.size()) {
      out.resize(start + n);
      result.codec = PageCodec::Zstd;
      result.payload_length = static_cast<uint32_t>(n);
      return result;
    }
    out.resize(start);
  }
  result.codec = PageCodec::Raw;
  result.payload_length = static_cast<uint32_t>(data.size());
  return result;
}

// ---- BlockDecoder --------------------------------------------------------------------
BlockDecoder::BlockDecoder() : dctx_(ZSTD_createDCtx()) {}

BlockDecoder::~BlockDecoder() { ZSTD_freeDCtx(dctx_); }

Result<void, CodecError> BlockDecoder::decode(PageCodec codec, std::span<const uint8_t> payload,
                                              uint64_t expected_hash, std::span<uint8_t> out) {
  switch (codec) {
    case PageCodec::Zero:
      if (!payload.empty()) {
        return fail(CodecError{"zero block carries a payload"});
      }
      if (!out.empty()) {  // an empty span's data() may be null: UB for memset even at 0
        std::memset(out.data(), 0, out.size());
      }
      break;
    case PageCodec::Raw:
      if (payload.size() != out.size()) {
        return fail(CodecError{
            fmt::format("raw payload is {} bytes, expected {}", payload.size(), out.size())});
      }
      if (!out.empty()) {
        std::memcpy(out.data(), payload.data(), out.size());
      }
      break;
    case PageCodec::Zstd: {
      if (dctx_ == nullptr) {
        return fail(CodecError{"zstd decoder context could not be created"});
      }
      unsigned long long declared = ZSTD_getFrameContentSize(payload.data(), payload.size());
      if (declared == ZSTD_CONTENTSIZE_ERROR || declared == ZSTD_CONTENTSIZE_UNKNOWN) {
        return fail(CodecError{"zstd payload is not a frame with a declared content size"});
      }
      if (declared != out.size()) {
        return fail(CodecError{
            fmt::format("zstd frame declares {} bytes, expected {}", declared, out.size())});
      }
      size_t frame = ZSTD_findFrameCompressedSize(payload.data(), payload.size());
      if (ZSTD_isError(frame) || frame != payload.size()) {
        return fail(CodecError{"zstd payload truncated or followed by extra bytes"});
      }
      size_t n = ZSTD_decompressDCtx(dctx_, out.data(), out.size(), payload.data(), payload.size());
      if (ZSTD_isError(n)) {
        return fail(CodecError{fmt::format("zstd: {}", ZSTD_getErrorName(n))});
      }
      if (n != out.size()) {
        return fail(CodecError{fmt::format("zstd produced {} bytes, expected {}", n, out.size())});
      }
      break;
    }
    case PageCodec::SameAsBefore:
    case PageCodec::Invalid:
    default:
      return fail(
          CodecError{fmt::format("codec {} cannot be decoded here", static_cast<int>(codec))});
  }
  uint64_t got = XXH3_64bits(out.data(), out.size());
  if (got != expected_hash) {
    return fail(CodecError{fmt::format(
        "hash mismatch after decoding: got {:016x}, expected {:016x}", got, expected_hash)});
  }
  return {};
}

}  // namespace ferry::migration
