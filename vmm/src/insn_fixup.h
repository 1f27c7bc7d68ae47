// Instructions KVM's emulator cannot run in guest ring 0 on a KVM-PVM host (HOST-KVM.md)
// that the VMM completes itself, so a stock Linux kernel gets further: `int3` becomes a
// #BP delivered to the guest, `fwait` (no x87 exception can be pending) is skipped.
#pragma once

#include <cstdint>
#include <span>

namespace ferry::vmm {

struct InsnFixup {
  enum class Kind { None, SkipInstruction, InjectBreakpoint };
  Kind kind = Kind::None;
  uint8_t length = 0;     // bytes to advance RIP by
  const char* name = "";  // for logs
};

/// What to do about an emulation failure on `insn` (the bytes at RIP).
InsnFixup fixup_for(std::span<const uint8_t> insn);

}  // namespace ferry::vmm
