#include "ferry/vmm/boot/mptable.h"

#include <fmt/format.h>

#include <cstring>
#include <vector>

#include "ferry/vmm/boot/layout.h"

namespace ferry::vmm::boot {

namespace {

constexpr uint8_t kEntryProcessor = 0;
constexpr uint8_t kEntryBus = 1;
constexpr uint8_t kEntryIoapic = 2;
constexpr uint8_t kEntryIoInterrupt = 3;
constexpr uint8_t kEntryLocalInterrupt = 4;
constexpr uint8_t kIntTypeInt = 0;
constexpr uint8_t kIntTypeNmi = 1;
constexpr uint8_t kIntTypeExtInt = 3;
constexpr uint8_t kLapicVersion = 0x14;
constexpr uint8_t kIoapicVersion = 0x11;
constexpr uint64_t kFloatingBytes = 16;

class Writer {
 public:
  void u8(uint8_t v) { bytes_.push_back(v); }
  void u16(uint16_t v) { put(v, 2); }
  void u32(uint32_t v) { put(v, 4); }
  void text(const char* s, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      bytes_.push_back(static_cast<uint8_t>(s[i]));
    }
  }
  void zeros(size_t n) { bytes_.insert(bytes_.end(), n, 0); }
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  void put(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) {
      bytes_.push_back(static_cast<uint8_t>(v >> (8 * i)));
    }
  }
  std::vector<uint8_t> bytes_;
};

/// The byte that makes the sum of bytes[begin, end) zero.
uint8_t checksum(const std::vector<uint8_t>& bytes, size_t begin, size_t end) {
  uint8_t sum = 0;
  for (size_t i = begin; i < end; ++i) {
    sum = static_cast<uint8_t>(sum + bytes[i]);
  }
  return static_cast<uint8_t>(-sum);
}

void write_entries(Writer& w, uint32_t cpus) {
  for (uint32_t cpu = 0; cpu < cpus; ++cpu) {
    w.u8(kEntryProcessor);
    w.u8(static_cast<uint8_t>(cpu));  // local APIC ID
    w.u8(kLapicVersion);
    w.u8(cpu == 0 ? 0x3 : 0x1);  // enabled, BSP
    w.u32(0x600);                // signature: family 6
    w.u32(0x201);                // features: FPU, APIC
    w.zeros(8);
  }
  w.u8(kEntryBus);
  w.u8(0);
  w.text("ISA   ", 6);
  const uint8_t ioapic_id = static_cast<uint8_t>(cpus);
  w.u8(kEntryIoapic);
  w.u8(ioapic_id);
  w.u8(kIoapicVersion);
  w.u8(1);  // enabled
  w.u32(static_cast<uint32_t>(kIoapicAddr));
  for (uint32_t irq = 0; irq < kMpIsaIrqs; ++irq) {
    w.u8(kEntryIoInterrupt);
    w.u8(kIntTypeInt);
    w.u16(0);  // polarity/trigger: conforming to the bus (ISA: high, edge)
    w.u8(0);   // source bus
    w.u8(static_cast<uint8_t>(irq));
    w.u8(ioapic_id);
    w.u8(static_cast<uint8_t>(irq));  // IOAPIC pin
  }
  // LINT0 = ExtINT (the PIC, virtual wire), LINT1 = NMI, on every local APIC (0xff).
  for (auto [type, lint] : {std::pair<uint8_t, uint8_t>{kIntTypeExtInt, 0}, {kIntTypeNmi, 1}}) {
    w.u8(kEntryLocalInterrupt);
    w.u8(type);
    w.u16(0);
    w.u8(0);
    w.u8(0);
    w.u8(0xff);
    w.u8(lint);
  }
}

}  // namespace

VmmResult<uint64_t> write_mptable(GuestMemory& mem, uint32_t cpus) {
  if (cpus == 0 || cpus >= 0xff) {
    return fail(vmm_error(VmmErrc::BadConfig, fmt::format("MP table for {} vCPUs", cpus)));
  }
  Writer w;
  // Floating pointer structure.
  w.text("_MP_", 4);
  w.u32(static_cast<uint32_t>(kMpTableAddr + kFloatingBytes));
  w.u8(1);     // length in 16-byte units
  w.u8(4);     // spec revision 1.4
  w.u8(0);     // checksum, below
  w.zeros(5);  // feature bytes: a configuration table follows; no IMCR (virtual wire)
  // Configuration table header; length, entry count and checksum patched below.
  w.text("PCMP", 4);
  w.u16(0);
  w.u8(4);
  w.u8(0);
  w.text("FERRY   ", 8);
  w.text("FERRY VM    ", 12);
  w.u32(0);  // OEM table
  w.u16(0);
  w.u16(0);  // entry count
  w.u32(static_cast<uint32_t>(kLapicAddr));
  w.u16(0);  // extended table length
  w.u8(0);
  w.u8(0);
  write_entries(w, cpus);
  std::vector<uint8_t>& bytes = w.bytes();
  const uint64_t table_len = bytes.size() - kFloatingBytes;
  const uint16_t entries = static_cast<uint16_t>(cpus + 1 + 1 + kMpIsaIrqs + 2);
  std::memcpy(&bytes[kFloatingBytes + 4], &table_len, 2);
  std::memcpy(&bytes[kFloatingBytes + 34], &entries, 2);
  bytes[kFloatingBytes + 7] = checksum(bytes, kFloatingBytes, bytes.size());
  bytes[10] = checksum(bytes, 0, kFloatingBytes);
  if (bytes.size() > kMpTableMaxBytes || !mem.write(kMpTableAddr, bytes)) {
    return fail(vmm_error(
        VmmErrc::BadConfig,
        fmt::format("MP table of {} bytes does not fit at {:#x}", bytes.size(), kMpTableAddr)));
  }
  return bytes.size();
}

}  // namespace ferry::vmm::boot
