// Machine state: every vCPU (registers, FPU/XSAVE, XCRs, MSRs, LAPIC, events, MP state,
// debug registers), the in-kernel PIC/IOAPIC/PIT and kvmclock, and each device, as
// explicit structs with save()/restore(). The encoded blob (what migration carries as
// one opaque record) is versioned and ends with an XXH3-64 of everything before it.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "ferry/vmm/vmm_error.h"

namespace ferry::vmm {

class KvmMachine;

inline constexpr uint64_t kMachineStateMagic = 0x5441545359524546;  // "FERYSTAT"
inline constexpr uint32_t kMachineStateVersion = 1;
/// A bigger claimed size is refused before allocating.
inline constexpr size_t kMaxMachineStateBytes = 64ull << 20;

/// Saves the state of a paused machine.
VmmResult<std::vector<uint8_t>> save_machine_state(KvmMachine& machine);
/// Loads a blob from save_machine_state into a paused, freshly built machine.
VmmResult<void> load_machine_state(KvmMachine& machine, std::span<const uint8_t> blob);

}  // namespace ferry::vmm
