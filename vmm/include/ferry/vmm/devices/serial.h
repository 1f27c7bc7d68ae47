// A 16550A UART (the PC's COM1 at 0x3f8, IRQ 4): enough of the register set for Linux's
// 8250 driver and the test guest — THR/RBR, IER, IIR/FCR, LCR (with DLAB), MCR, LSR,
// MSR, SCR, a 64-byte receive FIFO, and the THRE / RX-data interrupts.
// Output goes to a file descriptor; input bytes are queued by the VMM (stdin thread).
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <span>
#include <vector>

#include "ferry/vmm/bus.h"
#include "ferry/vmm/vmm_error.h"

namespace ferry::vmm {

/// Register state that migrates (plus the unread input bytes).
struct SerialState {
  uint8_t ier = 0, lcr = 0, mcr = 0, lsr = 0, msr = 0, scr = 0, dll = 0, dlm = 0, fcr = 0;
  bool thre_pending = false;
  std::vector<uint8_t> rx_fifo;

  void encode(std::vector<uint8_t>& out) const;
  static VmmResult<SerialState> decode(std::span<const uint8_t> blob);
};

class Serial final : public PioDevice {
 public:
  static constexpr uint16_t kCom1Base = 0x3f8;
  static constexpr uint32_t kCom1Irq = 4;
  static constexpr size_t kRxFifoSize = 64;

  /// `out_fd` receives guest output (-1 = discard); `irq` may be null (no interrupts).
  Serial(int out_fd, IrqLine* irq);

  void pio_read(uint16_t offset, std::span<uint8_t> data) override;
  void pio_write(uint16_t offset, std::span<const uint8_t> data) override;

  /// Queues input for the guest; bytes beyond the FIFO size are dropped (and counted).
  void enqueue_input(std::span<const uint8_t> bytes);
  /// Bytes the guest wrote since start.
  uint64_t bytes_written() const;

  SerialState save() const;
  void restore(const SerialState& state);

 private:
  uint8_t read_register(uint16_t offset);
  void write_register(uint16_t offset, uint8_t value);
  void update_irq();
  uint8_t iir() const;

  mutable std::mutex mutex_;
  int out_fd_;
  IrqLine* irq_;
  SerialState regs_;
  std::deque<uint8_t> rx_;
  uint64_t written_ = 0;
  uint64_t dropped_input_ = 0;
  bool irq_level_ = false;
};

}  // namespace ferry::vmm
