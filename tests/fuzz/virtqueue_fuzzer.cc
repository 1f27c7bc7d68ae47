// Fuzzes descriptor-chain walking (Virtqueue, virtio spec v1.2 §2.7) over guest RAM the
// input supplies: 16 bytes of queue configuration (size, ring addresses, ring progress
// after a restore) and then the first 64 KiB of RAM, descriptor table and rings included.
// Chains the walker accepts must lie wholly in RAM, which drain_queue() checks byte by
// byte under ASan.
#include <cstdint>

#include "fuzz_guest.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ferry::vmm;
  ferry::fuzz::FuzzInput in(data, size);
  VirtqueueState st;
  const uint16_t size_sel = in.take<uint16_t>();
  // Mostly a power of two up to 256; sometimes any value (create must refuse it).
  st.size = (size_sel & 0x8000) ? static_cast<uint16_t>(size_sel & 0x7fff)
                                : static_cast<uint16_t>(1u << (size_sel % 9));
  st.ready = true;
  st.desc_addr = in.take<uint32_t>();
  st.driver_addr = in.take<uint32_t>();
  st.device_addr = in.take<uint16_t>();
  st.last_avail_idx = in.take<uint16_t>();
  st.used_idx = st.last_avail_idx;
  const uint64_t cap = uint64_t{in.take<uint8_t>()} << 10;  // max_chain_bytes
  ferry::fuzz::FuzzRam ram(in.rest());
  auto q = Virtqueue::create(ram.mem(), st, cap == 0 ? 1 << 20 : cap);
  if (!q) {
    return 0;
  }
  (void)q->pending();
  (void)q->should_interrupt();
  ferry::fuzz::drain_queue(*q, ram.mem(), 64);
  (void)q->state();
  return 0;
}
