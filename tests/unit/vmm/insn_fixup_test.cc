#include "insn_fixup.h"

#include <gtest/gtest.h>

#include <vector>

namespace ferry::vmm {
namespace {

TEST(InsnFixup, Int3BecomesABreakpointAfterTheInstruction) {
  const std::vector<uint8_t> insn{0xcc, 0x90, 0x90};
  const InsnFixup f = fixup_for(insn);
  EXPECT_EQ(f.kind, InsnFixup::Kind::InjectBreakpoint);
  EXPECT_EQ(f.length, 1);
}

TEST(InsnFixup, FwaitIsSkipped) {
  const std::vector<uint8_t> insn{0x9b, 0xdb, 0xe3};
  EXPECT_EQ(fixup_for(insn).kind, InsnFixup::Kind::SkipInstruction);
}

TEST(InsnFixup, EverythingElseIsLeftToFail) {
  for (std::vector<uint8_t> insn : {std::vector<uint8_t>{0x0f, 0x01, 0xca},              // clac
                                    std::vector<uint8_t>{0xf3, 0x48, 0x0f, 0xb8, 0xc7},  // popcnt
                                    std::vector<uint8_t>{}}) {
    EXPECT_EQ(fixup_for(insn).kind, InsnFixup::Kind::None);
  }
}

}  // namespace
}  // namespace ferry::vmm
