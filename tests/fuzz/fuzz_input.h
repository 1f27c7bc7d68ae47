// FuzzInput: hands out integers and byte spans from the front of a libFuzzer input,
// returning zeros once it runs dry, so every harness consumes any input without checks.
// Shared by the targets in tests/fuzz/ (docs/reliability.md, "Fuzzing").
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace ferry::fuzz {

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  /// Next little-endian integer of sizeof(T) bytes (missing bytes read as zero).
  template <class T>
  T take() {
    uint8_t buf[sizeof(T)] = {};
    const size_t n = size_ < sizeof(T) ? size_ : sizeof(T);
    if (n != 0) {
      std::memcpy(buf, data_, n);
    }
    advance(n);
    T v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) {
      v = static_cast<T>(v | (static_cast<T>(buf[i]) << (8 * i)));
    }
    return v;
  }
  /// Up to `n` next bytes (fewer if the input is shorter).
  std::span<const uint8_t> bytes(size_t n) {
    n = n < size_ ? n : size_;
    std::span<const uint8_t> out(data_, n);
    advance(n);
    return out;
  }
  /// Everything not consumed yet.
  std::span<const uint8_t> rest() { return bytes(size_); }
  size_t remaining() const { return size_; }

 private:
  void advance(size_t n) {
    data_ += n;
    size_ -= n;
  }
  const uint8_t* data_;
  size_t size_;
};

}  // namespace ferry::fuzz
