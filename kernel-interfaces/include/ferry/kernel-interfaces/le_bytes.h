// Little-endian byte encoding shared by the migration wire format and the VMM's
// device-state records. Readers are bounds-checked: a short buffer is an error, never
// an out-of-range read.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace ferry {

/// Appends fixed-width little-endian values to a growing byte vector.
class ByteWriter {
 public:
  explicit ByteWriter(std::vector<uint8_t>& out) : out_(out) {}
  void u8(uint8_t v) { out_.push_back(v); }
  void u16(uint16_t v) { put(v, 2); }
  void u32(uint32_t v) { put(v, 4); }
  void u64(uint64_t v) { put(v, 8); }
  void bytes(std::span<const uint8_t> data) { out_.insert(out_.end(), data.begin(), data.end()); }
  /// Length-prefixed (u32) string or blob.
  void blob(std::span<const uint8_t> data) {
    u32(static_cast<uint32_t>(data.size()));
    bytes(data);
  }
  void str(const std::string& s) {
    blob({reinterpret_cast<const uint8_t*>(s.data()), s.size()});  // SAFETY: char -> byte view
  }
  size_t size() const { return out_.size(); }

 private:
  void put(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) {
      out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
    }
  }
  std::vector<uint8_t>& out_;
};

/// Reads fixed-width little-endian values; every accessor returns false/nullopt instead
/// of reading past the end, and `ok()` stays false after the first short read.
class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> in) : in_(in) {}
  bool u8(uint8_t& v) { return get(v, 1); }
  bool u16(uint16_t& v) { return get(v, 2); }
  bool u32(uint32_t& v) { return get(v, 4); }
  bool u64(uint64_t& v) { return get(v, 8); }
  bool bytes(std::span<uint8_t> out) {
    if (!ok_ || remaining() < out.size()) {
      ok_ = false;
      return false;
    }
    // memcpy with a null pointer is undefined even for 0 bytes (an empty vector's data()).
    if (!out.empty()) {
      std::memcpy(out.data(), in_.data() + pos_, out.size());
    }
    pos_ += out.size();
    return true;
  }
  /// Reads a u32-length-prefixed blob of at most `max_len` bytes.
  bool blob(std::vector<uint8_t>& out, size_t max_len) {
    uint32_t n = 0;
    if (!u32(n) || n > max_len || n > remaining()) {
      ok_ = false;
      return false;
    }
    out.assign(in_.begin() + static_cast<std::ptrdiff_t>(pos_),
               in_.begin() + static_cast<std::ptrdiff_t>(pos_ + n));
    pos_ += n;
    return true;
  }
  bool str(std::string& out, size_t max_len) {
    std::vector<uint8_t> tmp;
    if (!blob(tmp, max_len)) {
      return false;
    }
    out.assign(tmp.begin(), tmp.end());
    return true;
  }
  size_t remaining() const { return in_.size() - pos_; }
  size_t position() const { return pos_; }
  bool ok() const { return ok_; }
  bool at_end() const { return ok_ && pos_ == in_.size(); }

 private:
  template <class T>
  bool get(T& v, int n) {
    if (!ok_ || remaining() < static_cast<size_t>(n)) {
      ok_ = false;
      return false;
    }
    uint64_t acc = 0;
    for (int i = 0; i < n; ++i) {
      acc |= static_cast<uint64_t>(in_[pos_ + i]) << (8 * i);
    }
    v = static_cast<T>(acc);
    pos_ += n;
    return true;
  }
  std::span<const uint8_t> in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace ferry
