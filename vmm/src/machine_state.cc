#include "machine_state.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <cstring>

#include "block_device.h"
#include "ferry/kernel-interfaces/le_bytes.h"
#include "kvm_machine.h"

namespace ferry::vmm {

namespace {

constexpr uint32_t kMsrArchCapabilities = 0x10a;
// Writing a kvmclock wall-clock MSR makes KVM write the wall-clock struct into guest RAM
// at once (at gpa 0 when the guest never set it): restoring it would modify the memory
// that was just migrated and verified. The guest already holds the struct it read.
constexpr uint32_t kMsrKvmWallClock = 0x11;
constexpr uint32_t kMsrKvmWallClockNew = 0x4b564d00;

VmmError save_error(const std::string& what, const kernel::SysError& cause) {
  return vmm_error(VmmErrc::SaveState, what, cause);
}
VmmError restore_error(const std::string& what,
                       std::optional<kernel::SysError> cause = std::nullopt) {
  return vmm_error(VmmErrc::RestoreState, what, cause);
}

// Kernel ABI structs travel as length-checked byte images: their layout is fixed by
// <linux/kvm.h> for x86-64, and the length check rejects a mismatched peer.
template <class T>
void put_struct(ByteWriter& w, const T& value) {
  static_assert(std::is_trivially_copyable_v<T>);
  // SAFETY: T is trivially copyable; we view exactly its bytes.
  w.blob({reinterpret_cast<const uint8_t*>(&value), sizeof(T)});
}

template <class T>
bool get_struct(ByteReader& r, T& value) {
  std::vector<uint8_t> bytes;
  if (!r.blob(bytes, sizeof(T)) || bytes.size() != sizeof(T)) {
    return false;
  }
  std::memcpy(&value, bytes.data(), sizeof(T));
  return true;
}

// Per-vCPU state in restore order (Firecracker's order; LAPIC before MSRs so the TSC
// deadline MSR lands on a configured timer, events last).
struct VcpuState {
  kvm_mp_state mp_state{};
  kvm_regs regs{};
  kvm_sregs sregs{};
  std::vector<uint8_t> xsave;
  kvm_xcrs xcrs{};
  kvm_debugregs debugregs{};
  kvm_lapic_state lapic{};
  std::vector<kvm_msr_entry> msrs;
  kvm_vcpu_events events{};
};

VmmResult<std::vector<uint32_t>> migratable_msrs(KvmMachine& machine) {
  auto list = machine.kvm().get_msr_index_list();
  if (!list) {
    return fail(save_error("read MSR index list", list.error()));
  }
  // KVM_GET_MSRS stops at the first MSR it cannot read: keep only readable ones.
  std::vector<uint32_t> readable;
  kernel::VcpuFd& probe = machine.vcpus().front()->fd();
  for (uint32_t index : *list) {
    if (index == kMsrKvmWallClock || index == kMsrKvmWallClockNew) {
      continue;
    }
    auto got = probe.get_msrs(std::span<const uint32_t>(&index, 1));
    if (got && got->size() == 1) {
      readable.push_back(index);
    }
  }
  return readable;
}

VmmResult<VcpuState> save_vcpu(kernel::VcpuFd& fd, std::span<const uint32_t> msr_indices,
                               size_t xsave_size) {
  VcpuState s;
  auto fail_with = [&](const char* what, const kernel::SysError& e) {
    return fail(save_error(fmt::format("vCPU {}: {}", fd.id(), what), e));
  };
  if (auto v = fd.get_mp_state(); v) {
    s.mp_state = *v;
  } else {
    return fail_with("MP state", v.error());
  }
  if (auto v = fd.get_regs(); v) {
    s.regs = *v;
  } else {
    return fail_with("registers", v.error());
  }
  if (auto v = fd.get_sregs(); v) {
    s.sregs = *v;
  } else {
    return fail_with("sregs", v.error());
  }
  if (auto v = fd.get_xsave2(xsave_size); v) {
    s.xsave = std::move(*v);
  } else {
    return fail_with("XSAVE", v.error());
  }
  if (auto v = fd.get_xcrs(); v) {
    s.xcrs = *v;
  } else {
    return fail_with("XCRs", v.error());
  }
  if (auto v = fd.get_debugregs(); v) {
    s.debugregs = *v;
  } else {
    return fail_with("debug registers", v.error());
  }
  if (auto v = fd.get_lapic(); v) {
    s.lapic = *v;
  } else {
    return fail_with("LAPIC", v.error());
  }
  if (auto v = fd.get_msrs(msr_indices); v) {
    s.msrs = std::move(*v);
  } else {
    return fail_with("MSRs", v.error());
  }
  if (s.msrs.size() != msr_indices.size()) {
    return fail(save_error(fmt::format("vCPU {}: only {} of {} MSRs readable", fd.id(),
                                       s.msrs.size(), msr_indices.size()),
                           kernel::make_error(EIO, "KVM_GET_MSRS")));
  }
  if (auto v = fd.get_vcpu_events(); v) {
    s.events = *v;
  } else {
    return fail_with("events", v.error());
  }
  return s;
}

void encode_vcpu(ByteWriter& w, const VcpuState& s) {
  put_struct(w, s.mp_state);
  put_struct(w, s.regs);
  put_struct(w, s.sregs);
  w.blob(s.xsave);
  put_struct(w, s.xcrs);
  put_struct(w, s.debugregs);
  put_struct(w, s.lapic);
  w.u32(static_cast<uint32_t>(s.msrs.size()));
  for (const kvm_msr_entry& msr : s.msrs) {
    w.u32(msr.index);
    w.u64(msr.data);
  }
  put_struct(w, s.events);
}

bool decode_vcpu(ByteReader& r, VcpuState& s) {
  uint32_t msr_count = 0;
  if (!get_struct(r, s.mp_state) || !get_struct(r, s.regs) || !get_struct(r, s.sregs) ||
      !r.blob(s.xsave, 1 << 20) || !get_struct(r, s.xcrs) || !get_struct(r, s.debugregs) ||
      !get_struct(r, s.lapic) || !r.u32(msr_count) || msr_count > 4096) {
    return false;
  }
  s.msrs.resize(msr_count);
  for (kvm_msr_entry& msr : s.msrs) {
    msr = {};
    uint64_t data = 0;
    if (!r.u32(msr.index) || !r.u64(data)) {
      return false;
    }
    msr.data = data;
  }
  return get_struct(r, s.events);
}

VmmResult<void> restore_vcpu(kernel::VcpuFd& fd, const VcpuState& s) {
  auto check = [&](const char* what, const kernel::SysResult<void>& rc) -> VmmResult<void> {
    if (!rc) {
      return fail(restore_error(fmt::format("vCPU {}: {}", fd.id(), what), rc.error()));
    }
    return {};
  };
  VmmResult<void> ok;
  if (!(ok = check("MP state", fd.set_mp_state(s.mp_state)))) {
    return ok;
  }
  if (!(ok = check("registers", fd.set_regs(s.regs)))) {
    return ok;
  }
  if (!(ok = check("sregs", fd.set_sregs(s.sregs)))) {
    return ok;
  }
  if (!(ok = check("XSAVE", fd.set_xsave(s.xsave)))) {
    return ok;
  }
  if (!(ok = check("XCRs", fd.set_xcrs(s.xcrs)))) {
    return ok;
  }
  if (!(ok = check("debug registers", fd.set_debugregs(s.debugregs)))) {
    return ok;
  }
  if (!(ok = check("LAPIC", fd.set_lapic(s.lapic)))) {
    return ok;
  }
  auto set = fd.set_msrs(s.msrs);
  if (!set || *set != s.msrs.size()) {
    const uint32_t bad = set && *set < s.msrs.size() ? s.msrs[*set].index : 0;
    return fail(restore_error(
        fmt::format("vCPU {}: MSRs ({} of {} set; first refused {:#x}{})", fd.id(), set ? *set : 0,
                    s.msrs.size(), bad,
                    bad == kMsrArchCapabilities ? ", ARCH_CAPABILITIES differs between hosts" : ""),
        set ? std::nullopt : std::optional(set.error())));
  }
  return check("events", fd.set_vcpu_events(s.events));
}

}  // namespace

VmmResult<std::vector<uint8_t>> save_machine_state(KvmMachine& machine) {
  auto msrs = migratable_msrs(machine);
  if (!msrs) {
    return fail(msrs.error());
  }
  const int xsave_size = machine.kvm().check_extension(KVM_CAP_XSAVE2);
  std::vector<uint8_t> out;
  ByteWriter w(out);
  w.u64(kMachineStateMagic);
  w.u32(kMachineStateVersion);
  w.u32(static_cast<uint32_t>(machine.vcpus().size()));
  for (auto& vcpu : machine.vcpus()) {
    auto state = save_vcpu(vcpu->fd(), *msrs, static_cast<size_t>(std::max(xsave_size, 0)));
    if (!state) {
      return fail(state.error());
    }
    encode_vcpu(w, *state);
  }
  for (uint32_t chip_id : {KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_IRQCHIP_IOAPIC}) {
    kvm_irqchip chip{};
    chip.chip_id = chip_id;
    if (auto rc = machine.vm().get_irqchip(chip); !rc) {
      return fail(save_error(fmt::format("irqchip {}", chip_id), rc.error()));
    }
    put_struct(w, chip);
  }
  kvm_pit_state2 pit{};
  if (auto rc = machine.vm().get_pit2(pit); !rc) {
    return fail(save_error("PIT", rc.error()));
  }
  put_struct(w, pit);
  auto clock = machine.vm().get_clock();
  if (!clock) {
    return fail(save_error("kvmclock", clock.error()));
  }
  w.u64(clock->clock);
  std::vector<uint8_t> serial;
  machine.serial().save().encode(serial);
  w.blob(serial);
  w.u32(static_cast<uint32_t>(machine.disks().size()));
  for (auto& disk : machine.disks()) {
    auto blob = disk->save_state();
    if (!blob) {
      return fail(blob.error());
    }
    w.blob(*blob);
  }
  w.u64(XXH3_64bits(out.data(), out.size()));
  return out;
}

VmmResult<void> load_machine_state(KvmMachine& machine, std::span<const uint8_t> blob) {
  if (blob.size() < 8 || blob.size() > kMaxMachineStateBytes) {
    return fail(
        restore_error(fmt::format("machine state of {} bytes is out of range", blob.size())));
  }
  ByteReader tail(blob.subspan(blob.size() - 8));
  uint64_t checksum = 0;
  tail.u64(checksum);
  if (XXH3_64bits(blob.data(), blob.size() - 8) != checksum) {
    return fail(restore_error("machine state checksum mismatch"));
  }
  ByteReader r(blob.first(blob.size() - 8));
  uint64_t magic = 0;
  uint32_t version = 0, vcpus = 0;
  if (!r.u64(magic) || magic != kMachineStateMagic || !r.u32(version) ||
      version != kMachineStateVersion || !r.u32(vcpus)) {
    return fail(restore_error("machine state: bad magic or version"));
  }
  if (vcpus != machine.vcpus().size()) {
    return fail(restore_error(
        fmt::format("machine state has {} vCPUs, this machine {}", vcpus, machine.vcpus().size())));
  }
  std::vector<VcpuState> states(vcpus);
  for (VcpuState& s : states) {
    if (!decode_vcpu(r, s)) {
      return fail(restore_error("machine state: truncated vCPU record"));
    }
  }
  kvm_irqchip chips[3]{};
  kvm_pit_state2 pit{};
  uint64_t clock_ns = 0;
  std::vector<uint8_t> serial_blob;
  uint32_t disks = 0;
  if (!get_struct(r, chips[0]) || !get_struct(r, chips[1]) || !get_struct(r, chips[2]) ||
      !get_struct(r, pit) || !r.u64(clock_ns) || !r.blob(serial_blob, 1 << 16) || !r.u32(disks)) {
    return fail(restore_error("machine state: truncated VM record"));
  }
  if (disks != machine.disks().size()) {
    return fail(restore_error(
        fmt::format("machine state has {} disks, this machine {}", disks, machine.disks().size())));
  }
  std::vector<std::vector<uint8_t>> disk_blobs(disks);
  for (auto& disk_blob : disk_blobs) {
    if (!r.blob(disk_blob, 1 << 20)) {
      return fail(restore_error("machine state: truncated disk record"));
    }
  }
  if (!r.at_end()) {
    return fail(restore_error("machine state: trailing bytes"));
  }
  auto serial = SerialState::decode(serial_blob);
  if (!serial) {
    return fail(serial.error());
  }
  // Everything decoded: only now touch the machine.
  for (const kvm_irqchip& chip : chips) {
    if (auto rc = machine.vm().set_irqchip(chip); !rc) {
      return fail(restore_error(fmt::format("irqchip {}", chip.chip_id), rc.error()));
    }
  }
  if (auto rc = machine.vm().set_pit2(pit); !rc) {
    return fail(restore_error("PIT", rc.error()));
  }
  for (size_t i = 0; i < vcpus; ++i) {
    if (auto ok = restore_vcpu(machine.vcpus()[i]->fd(), states[i]); !ok) {
      return ok;
    }
  }
  kvm_clock_data clock{};
  clock.clock = clock_ns;
  if (auto rc = machine.vm().set_clock(clock); !rc) {
    return fail(restore_error("kvmclock", rc.error()));
  }
  machine.serial().restore(*serial);
  for (size_t i = 0; i < disks; ++i) {
    if (auto ok = machine.disks()[i]->restore_state(disk_blobs[i]); !ok) {
      return ok;
    }
  }
  return {};
}

}  // namespace ferry::vmm
