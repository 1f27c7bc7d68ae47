#include "ferry/vmm/boot/cpu_setup.h"

#include <fmt/format.h>

#include <array>

#include "ferry/vmm/boot/layout.h"

namespace ferry::vmm::boot {

namespace {

constexpr uint64_t k1GiB = 1ull << 30;
constexpr uint64_t k2MiB = 2ull << 20;
constexpr uint64_t k4GiB = 4ull << 30;

kvm_segment flat_segment(uint16_t selector, uint8_t type, bool code64) {
  kvm_segment seg{};
  seg.base = 0;
  seg.limit = 0xffffffff;
  seg.selector = selector;
  seg.type = type;
  seg.present = 1;
  seg.dpl = 0;
  seg.db = code64 ? 0 : 1;  // D must be 0 when L = 1
  seg.s = 1;
  seg.l = code64 ? 1 : 0;
  seg.g = 1;
  seg.avl = 0;
  seg.unusable = 0;
  return seg;
}

void set_common(kvm_sregs& sregs, const CpuTables& tables) {
  const kvm_segment data = flat_segment(kSelectorData, 0x3, false);  // RW, accessed
  sregs.ds = data;
  sregs.es = data;
  sregs.fs = data;
  sregs.gs = data;
  sregs.ss = data;
  sregs.gdt.base = tables.gdt;
  sregs.gdt.limit = tables.gdt_limit;
  sregs.idt.base = tables.idt;
  sregs.idt.limit = tables.idt_limit;
}

}  // namespace

uint64_t identity_map_size(const GuestMemory& mem) {
  uint64_t top = k4GiB;
  for (const GuestRegion& region : mem.regions()) {
    top = std::max(top, region.gpa + region.size);
  }
  top = (top + k1GiB - 1) / k1GiB * k1GiB;
  return std::min(top, kMaxIdentityMapped);
}

VmmResult<CpuTables> write_cpu_tables(GuestMemory& mem) {
  const std::array<uint64_t, kGdtEntries> gdt{0, kGdtCode32, kGdtCode64, kGdtData};
  if (!mem.write_obj(kGdtAddr, gdt)) {
    return fail(vmm_error(VmmErrc::SetupRegisters,
                          fmt::format("guest RAM does not cover the GDT at {:#x}", kGdtAddr)));
  }
  const uint64_t mapped = identity_map_size(mem);
  const uint64_t directories = mapped / k1GiB;
  // PML4 and PDPT pages are rewritten whole so stale entries never survive a reload.
  std::array<uint64_t, 512> pml4{};
  std::array<uint64_t, 512> pdpt{};
  pml4[0] = kPdptAddr | kPtePresent | kPteWritable;
  for (uint64_t d = 0; d < directories; ++d) {
    pdpt[d] = (kPdAddr + d * 0x1000) | kPtePresent | kPteWritable;
    std::array<uint64_t, 512> pd{};
    for (uint64_t e = 0; e < 512; ++e) {
      pd[e] = (d * k1GiB + e * k2MiB) | kPtePresent | kPteWritable | kPteHuge;
    }
    if (!mem.write_obj(kPdAddr + d * 0x1000, pd)) {
      return fail(vmm_error(VmmErrc::SetupRegisters,
                            fmt::format("guest RAM does not cover the page directory at {:#x}",
                                        kPdAddr + d * 0x1000)));
    }
  }
  if (!mem.write_obj(kPml4Addr, pml4) || !mem.write_obj(kPdptAddr, pdpt)) {
    return fail(
        vmm_error(VmmErrc::SetupRegisters,
                  fmt::format("guest RAM does not cover the page tables at {:#x}", kPml4Addr)));
  }
  CpuTables tables;
  tables.pml4 = kPml4Addr;
  tables.gdt = kGdtAddr;
  tables.gdt_limit = static_cast<uint16_t>(kGdtEntries * 8 - 1);
  tables.idt = kIdtAddr;
  tables.idt_limit = 0;
  tables.identity_mapped = mapped;
  return tables;
}

void set_long_mode_sregs(kvm_sregs& sregs, const CpuTables& tables) {
  set_common(sregs, tables);
  sregs.cs = flat_segment(kSelectorCode64, 0xb, true);  // execute/read, accessed
  sregs.cr0 = kCr0Pe | kCr0Et | kCr0Ne | kCr0Pg;
  sregs.cr3 = tables.pml4;
  sregs.cr4 = kCr4Pae;
  sregs.efer = kEferLme | kEferLma;
}

void set_protected32_sregs(kvm_sregs& sregs, const CpuTables& tables) {
  set_common(sregs, tables);
  sregs.cs = flat_segment(kSelectorCode32, 0xb, false);
  sregs.cr0 = kCr0Pe | kCr0Et | kCr0Ne;
  sregs.cr3 = 0;
  sregs.cr4 = 0;
  sregs.efer = 0;
  // PVH: "TR: must be a 32-bit TSS (active) with base of 0 and limit of 0x67".
  sregs.tr = kvm_segment{};
  sregs.tr.limit = 0x67;
  sregs.tr.type = 0xb;
  sregs.tr.present = 1;
}

void set_mode_sregs(kvm_sregs& sregs, const CpuTables& tables, CpuMode mode) {
  if (mode == CpuMode::Long64) {
    set_long_mode_sregs(sregs, tables);
  } else {
    set_protected32_sregs(sregs, tables);
  }
}

}  // namespace ferry::vmm::boot
