#include "ferry/vmm/devices/serial.h"

#include <gtest/gtest.h>
#include <unistd.h>

namespace ferry::vmm {
namespace {

class FakeIrq : public IrqLine {
 public:
  void set_level(bool asserted) override {
    level = asserted;
    ++changes;
  }
  void pulse() override { ++changes; }
  bool level = false;
  int changes = 0;
};

uint8_t in(Serial& s, uint16_t reg) {
  uint8_t v = 0;
  s.pio_read(reg, {&v, 1});
  return v;
}
void out(Serial& s, uint16_t reg, uint8_t v) { s.pio_write(reg, {&v, 1}); }

TEST(Serial, TransmitsBytesToTheOutputFd) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  Serial serial(fds[1], nullptr);
  for (char c : std::string("hi\n")) {
    out(serial, 0, static_cast<uint8_t>(c));
  }
  char buf[8] = {};
  ASSERT_EQ(read(fds[0], buf, sizeof(buf)), 3);
  EXPECT_STREQ(buf, "hi\n");
  EXPECT_EQ(serial.bytes_written(), 3u);
  EXPECT_EQ(in(serial, 5) & 0x60, 0x60) << "THR empty and transmitter idle";
  close(fds[0]);
  close(fds[1]);
}

TEST(Serial, ReceivesInputAndRaisesTheRxInterrupt) {
  FakeIrq irq;
  Serial serial(-1, &irq);
  out(serial, 1, 0x01);  // IER: received data available
  EXPECT_FALSE(irq.level);
  const uint8_t input[] = {'a', 'b'};
  serial.enqueue_input(input);
  EXPECT_TRUE(irq.level);
  EXPECT_EQ(in(serial, 2) & 0x0f, 0x04) << "IIR says RX data";
  EXPECT_EQ(in(serial, 5) & 1, 1) << "LSR data ready";
  EXPECT_EQ(in(serial, 0), 'a');
  EXPECT_EQ(in(serial, 0), 'b');
  EXPECT_FALSE(irq.level) << "line drops when the FIFO is empty";
  EXPECT_EQ(in(serial, 5) & 1, 0);
}

TEST(Serial, DivisorLatchAndScratchRegisters) {
  Serial serial(-1, nullptr);
  out(serial, 3, 0x80);  // DLAB
  out(serial, 0, 0x0c);
  out(serial, 1, 0x00);
  EXPECT_EQ(in(serial, 0), 0x0c);
  out(serial, 3, 0x03);
  out(serial, 7, 0x5a);
  EXPECT_EQ(in(serial, 7), 0x5a);
  EXPECT_EQ(in(serial, 3), 0x03);
}

TEST(Serial, FifoOverflowDropsInsteadOfGrowing) {
  Serial serial(-1, nullptr);
  std::vector<uint8_t> flood(1000, 'x');
  serial.enqueue_input(flood);
  EXPECT_EQ(serial.save().rx_fifo.size(), Serial::kRxFifoSize);
}

TEST(Serial, StateRoundTripsAndRejectsGarbage) {
  Serial a(-1, nullptr);
  out(a, 3, 0x03);
  out(a, 1, 0x01);
  out(a, 7, 0x42);
  const uint8_t input[] = {'z'};
  a.enqueue_input(input);
  std::vector<uint8_t> blob;
  a.save().encode(blob);
  auto decoded = SerialState::decode(blob);
  ASSERT_TRUE(decoded);
  Serial b(-1, nullptr);
  b.restore(*decoded);
  EXPECT_EQ(in(b, 7), 0x42);
  EXPECT_EQ(in(b, 0), 'z');
  blob.pop_back();
  EXPECT_FALSE(SerialState::decode(blob));
  EXPECT_FALSE(SerialState::decode(std::vector<uint8_t>(3, 0)));
}

}  // namespace
}  // namespace ferry::vmm
