// KvmIrqLine: an IrqLine wired to one input pin of the in-kernel irqchip (KVM_IRQ_LINE).
#pragma once

#include <cstdio>

#include "ferry/kernel-interfaces/kvm.h"
#include "ferry/vmm/bus.h"

namespace ferry::vmm {

class KvmIrqLine final : public IrqLine {
 public:
  KvmIrqLine(kernel::VmFd& vm, uint32_t gsi) : vm_(vm), gsi_(gsi) {}
  void set_level(bool asserted) override { report(vm_.irq_line(gsi_, asserted)); }
  void pulse() override {
    report(vm_.irq_line(gsi_, true));
    report(vm_.irq_line(gsi_, false));
  }

 private:
  void report(const kernel::SysResult<void>& rc) {
    // An irqchip that refuses a line is a VMM bug, not a guest one: say so, keep going.
    if (!rc) {
      std::fprintf(stderr, "ferry: irq %u: %s\n", gsi_, rc.error().message().c_str());
    }
  }
  kernel::VmFd& vm_;
  uint32_t gsi_;
};

}  // namespace ferry::vmm
