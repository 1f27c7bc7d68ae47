// The exit port (0xf4, like QEMU's isa-debug-exit): a guest byte written here ends the
// VM with that byte as Ferry's exit status (QEMU reports (byte << 1) | 1 instead).
#pragma once

#include <functional>
#include <span>

#include "ferry/vmm/bus.h"

namespace ferry::vmm {

class DebugExit final : public PioDevice {
 public:
  static constexpr uint16_t kPort = 0xf4;
  static constexpr uint16_t kSize = 4;

  explicit DebugExit(std::function<void(int status)> on_exit) : on_exit_(std::move(on_exit)) {}
  void pio_read(uint16_t, std::span<uint8_t> data) override {
    for (uint8_t& b : data) {
      b = 0xff;
    }
  }
  void pio_write(uint16_t, std::span<const uint8_t> data) override {
    on_exit_(data.empty() ? 0 : data[0]);
  }

 private:
  std::function<void(int)> on_exit_;
};

}  // namespace ferry::vmm
