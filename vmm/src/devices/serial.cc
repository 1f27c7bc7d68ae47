#include "ferry/vmm/devices/serial.h"

#include <unistd.h>

#include "ferry/kernel-interfaces/le_bytes.h"

namespace ferry::vmm {

namespace {
// Register offsets (DLAB=0 unless noted).
constexpr uint16_t kData = 0;  // RBR / THR, DLL with DLAB
constexpr uint16_t kIer = 1;   // DLM with DLAB
constexpr uint16_t kIir = 2;   // FCR on write
constexpr uint16_t kLcr = 3;
constexpr uint16_t kMcr = 4;
constexpr uint16_t kLsr = 5;
constexpr uint16_t kMsr = 6;
constexpr uint16_t kScr = 7;

constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kIerRxData = 0x01;
constexpr uint8_t kIerThre = 0x02;
constexpr uint8_t kLsrDataReady = 0x01;
constexpr uint8_t kLsrThre = 0x20;
constexpr uint8_t kLsrTemt = 0x40;
constexpr uint8_t kIirNoInterrupt = 0x01;
constexpr uint8_t kIirThre = 0x02;
constexpr uint8_t kIirRxData = 0x04;
constexpr uint8_t kIirFifoEnabled = 0xc0;
constexpr uint8_t kMcrLoop = 0x10;
// With loopback off, report CTS | DSR | DCD as a connected terminal would.
constexpr uint8_t kMsrConnected = 0xb0;
}  // namespace

Serial::Serial(int out_fd, IrqLine* irq) : out_fd_(out_fd), irq_(irq) {
  regs_.lsr = kLsrThre | kLsrTemt;
  regs_.msr = kMsrConnected;
}

void Serial::pio_read(uint16_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mutex_);
  for (uint8_t& byte : data) {
    byte = 0;
  }
  if (!data.empty()) {
    data[0] = read_register(offset);
  }
  update_irq();
}

void Serial::pio_write(uint16_t offset, std::span<const uint8_t> data) {
  std::lock_guard lock(mutex_);
  if (!data.empty()) {
    write_register(offset, data[0]);
  }
  update_irq();
}

uint8_t Serial::iir() const {
  uint8_t fifo = (regs_.fcr & 0x01) ? kIirFifoEnabled : 0;
  if ((regs_.ier & kIerRxData) && !rx_.empty()) {
    return fifo | kIirRxData;
  }
  if ((regs_.ier & kIerThre) && regs_.thre_pending) {
    return fifo | kIirThre;
  }
  return fifo | kIirNoInterrupt;
}

uint8_t Serial::read_register(uint16_t offset) {
  const bool dlab = regs_.lcr & kLcrDlab;
  switch (offset) {
    case kData:
      if (dlab) {
        return regs_.dll;
      }
      if (!rx_.empty()) {
        uint8_t byte = rx_.front();
        rx_.pop_front();
        return byte;
      }
      return 0;
    case kIer:
      return dlab ? regs_.dlm : regs_.ier;
    case kIir: {
      uint8_t value = iir();
      // Reading IIR while it reports THRE clears that interrupt (16550 behaviour).
      if ((value & 0x0f) == kIirThre) {
        regs_.thre_pending = false;
      }
      return value;
    }
    case kLcr:
      return regs_.lcr;
    case kMcr:
      return regs_.mcr;
    case kLsr:
      return static_cast<uint8_t>(kLsrThre | kLsrTemt | (rx_.empty() ? 0 : kLsrDataReady));
    case kMsr:
      return (regs_.mcr & kMcrLoop) ? static_cast<uint8_t>((regs_.mcr & 0x0f) << 4) : regs_.msr;
    case kScr:
      return regs_.scr;
    default:
      return 0;
  }
}

void Serial::write_register(uint16_t offset, uint8_t value) {
  const bool dlab = regs_.lcr & kLcrDlab;
  switch (offset) {
    case kData:
      if (dlab) {
        regs_.dll = value;
        return;
      }
      if (regs_.mcr & kMcrLoop) {
        if (rx_.size() < kRxFifoSize) {
          rx_.push_back(value);
        }
      } else if (out_fd_ >= 0) {
        // A console that stops reading must not stall the vCPU forever: one attempt.
        [[maybe_unused]] ssize_t n = ::write(out_fd_, &value, 1);
      }
      ++written_;
      regs_.thre_pending = true;  // the byte left at once; THR is empty again
      return;
    case kIer:
      if (dlab) {
        regs_.dlm = value;
      } else {
        regs_.ier = value & 0x0f;
        if (regs_.ier & kIerThre) {
          regs_.thre_pending = true;
        }
      }
      return;
    case kIir:
      regs_.fcr = value;
      if (value & 0x02) {
        rx_.clear();
      }
      return;
    case kLcr:
      regs_.lcr = value;
      return;
    case kMcr:
      regs_.mcr = value & 0x1f;
      return;
    case kScr:
      regs_.scr = value;
      return;
    default:
      return;  // LSR and MSR are read-only
  }
}

void Serial::update_irq() {
  const bool level = (iir() & kIirNoInterrupt) == 0;
  if (irq_ != nullptr && level != irq_level_) {
    irq_->set_level(level);
    irq_level_ = level;
  }
}

void Serial::enqueue_input(std::span<const uint8_t> bytes) {
  std::lock_guard lock(mutex_);
  for (uint8_t byte : bytes) {
    if (rx_.size() < kRxFifoSize) {
      rx_.push_back(byte);
    } else {
      ++dropped_input_;
    }
  }
  update_irq();
}

uint64_t Serial::bytes_written() const {
  std::lock_guard lock(mutex_);
  return written_;
}

SerialState Serial::save() const {
  std::lock_guard lock(mutex_);
  SerialState state = regs_;
  state.rx_fifo.assign(rx_.begin(), rx_.end());
  return state;
}

void Serial::restore(const SerialState& state) {
  std::lock_guard lock(mutex_);
  regs_ = state;
  rx_.assign(state.rx_fifo.begin(), state.rx_fifo.end());
  regs_.rx_fifo.clear();
  irq_level_ = false;
  update_irq();
}

void SerialState::encode(std::vector<uint8_t>& out) const {
  ByteWriter w(out);
  for (uint8_t v : {ier, lcr, mcr, lsr, msr, scr, dll, dlm, fcr}) {
    w.u8(v);
  }
  w.u8(thre_pending ? 1 : 0);
  w.blob(rx_fifo);
}

VmmResult<SerialState> SerialState::decode(std::span<const uint8_t> blob) {
  ByteReader r(blob);
  SerialState s;
  uint8_t thre = 0;
  for (uint8_t* v : {&s.ier, &s.lcr, &s.mcr, &s.lsr, &s.msr, &s.scr, &s.dll, &s.dlm, &s.fcr}) {
    r.u8(*v);
  }
  r.u8(thre);
  r.blob(s.rx_fifo, Serial::kRxFifoSize);
  if (!r.at_end()) {
    return fail(vmm_error(VmmErrc::RestoreState, "serial state: truncated or oversized"));
  }
  s.thre_pending = thre != 0;
  return s;
}

}  // namespace ferry::vmm
