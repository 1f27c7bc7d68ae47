#include "insn_fixup.h"

namespace ferry::vmm {

InsnFixup fixup_for(std::span<const uint8_t> insn) {
  if (insn.empty()) {
    return {};
  }
  switch (insn[0]) {
    case 0xcc:  // int3: the trap is delivered after the instruction, so RIP+1 then #BP
      return {InsnFixup::Kind::InjectBreakpoint, 1, "int3"};
    case 0x9b:  // fwait: nothing to wait for without x87 exceptions
      return {InsnFixup::Kind::SkipInstruction, 1, "fwait"};
    default:
      return {};
  }
}

}  // namespace ferry::vmm
