#include "ferry/kernel-interfaces/kvm.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

namespace ferry::kernel {

namespace {

// One place that issues an ioctl and converts failure into a SysError named `op`.
template <class Arg>
SysResult<int> do_ioctl(int fd, unsigned long request, Arg arg, const char* op) {
  // SAFETY: `request` comes from <linux/kvm.h> and `arg` matches the type it documents.
  int rc = retry_eintr([&] { return ::ioctl(fd, request, arg); });
  if (rc < 0) {
    return fail(last_error(op));
  }
  return rc;
}

template <class Arg>
SysResult<void> ioctl_void(int fd, unsigned long request, Arg arg, const char* op) {
  auto rc = do_ioctl(fd, request, arg, op);
  if (!rc) {
    return fail(rc.error());
  }
  return {};
}

template <class T>
SysResult<T> ioctl_get(int fd, unsigned long request, const char* op) {
  T value{};
  auto rc = do_ioctl(fd, request, &value, op);
  if (!rc) {
    return fail(rc.error());
  }
  return value;
}

// A kvm_* struct with a flexible array tail, allocated with room for `n` entries.
template <class Header, class Entry>
struct FlexBuffer {
  explicit FlexBuffer(size_t n) : bytes(sizeof(Header) + n * sizeof(Entry)) {}
  // SAFETY: the buffer is sized and aligned (vector<uint64_t>) for Header + n entries.
  Header* get() { return reinterpret_cast<Header*>(bytes.data()); }
  Entry* entries() { return reinterpret_cast<Entry*>(bytes.data() + sizeof(Header)); }
  std::vector<uint8_t> bytes;
};

}  // namespace

// ---- KvmSystem -------------------------------------------------------------------

SysResult<KvmSystem> KvmSystem::open(const char* path) {
  auto fd = UniqueFd::open(path, O_RDWR);
  if (!fd) {
    return fail(SysError{fd.error().code, "open /dev/kvm"});
  }
  auto version = do_ioctl(fd->get(), KVM_GET_API_VERSION, 0, "KVM_GET_API_VERSION");
  if (!version) {
    return fail(version.error());
  }
  if (*version != KVM_API_VERSION) {
    return fail(make_error(ENOTSUP, "KVM_GET_API_VERSION"));
  }
  return KvmSystem(std::move(*fd));
}

int KvmSystem::check_extension(long cap) const {
  auto rc = do_ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap, "KVM_CHECK_EXTENSION");
  return rc ? *rc : 0;
}

SysResult<size_t> KvmSystem::get_vcpu_mmap_size() const {
  auto rc = do_ioctl(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE");
  if (!rc) {
    return fail(rc.error());
  }
  return static_cast<size_t>(*rc);
}

SysResult<CpuidEntries> KvmSystem::get_supported_cpuid() const {
  // KVM reports E2BIG while the buffer is too small; grow until it fits.
  for (size_t n = 64; n <= 4096; n *= 2) {
    std::vector<uint64_t> storage((sizeof(kvm_cpuid2) + n * sizeof(kvm_cpuid_entry2)) / 8 + 1);
    // SAFETY: storage is 8-byte aligned and large enough for kvm_cpuid2 + n entries.
    auto* cpuid = reinterpret_cast<kvm_cpuid2*>(storage.data());
    cpuid->nent = static_cast<uint32_t>(n);
    auto rc = do_ioctl(fd_.get(), KVM_GET_SUPPORTED_CPUID, cpuid, "KVM_GET_SUPPORTED_CPUID");
    if (rc) {
      return CpuidEntries(cpuid->entries, cpuid->entries + cpuid->nent);
    }
    if (rc.error().errnum() != E2BIG) {
      return fail(rc.error());
    }
  }
  return fail(make_error(E2BIG, "KVM_GET_SUPPORTED_CPUID"));
}

SysResult<std::vector<uint32_t>> KvmSystem::get_msr_index_list() const {
  for (uint32_t n = 64; n <= 8192; n *= 2) {
    std::vector<uint32_t> storage(1 + n);
    // SAFETY: kvm_msr_list is {u32 nmsrs; u32 indices[]}, which storage matches.
    auto* list = reinterpret_cast<kvm_msr_list*>(storage.data());
    list->nmsrs = n;
    auto rc = do_ioctl(fd_.get(), KVM_GET_MSR_INDEX_LIST, list, "KVM_GET_MSR_INDEX_LIST");
    if (rc) {
      return std::vector<uint32_t>(list->indices, list->indices + list->nmsrs);
    }
    if (rc.error().errnum() != E2BIG) {
      return fail(rc.error());
    }
  }
  return fail(make_error(E2BIG, "KVM_GET_MSR_INDEX_LIST"));
}

SysResult<VmFd> KvmSystem::create_vm() const {
  auto rc = do_ioctl(fd_.get(), KVM_CREATE_VM, 0, "KVM_CREATE_VM");
  if (!rc) {
    return fail(rc.error());
  }
  return VmFd(UniqueFd(*rc));
}

// ---- VmFd ------------------------------------------------------------------------

int VmFd::check_extension(long cap) const {
  auto rc = do_ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap, "KVM_CHECK_EXTENSION");
  return rc ? *rc : 0;
}

SysResult<void> VmFd::enable_cap(uint32_t cap, uint64_t arg0, uint64_t arg1) {
  kvm_enable_cap request{};
  request.cap = cap;
  request.args[0] = arg0;
  request.args[1] = arg1;
  return ioctl_void(fd_.get(), KVM_ENABLE_CAP, &request, "KVM_ENABLE_CAP");
}

SysResult<void> VmFd::set_user_memory_region(const kvm_userspace_memory_region& region) {
  return ioctl_void(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION");
}

SysResult<void> VmFd::set_tss_addr(uint64_t addr) {
  return ioctl_void(fd_.get(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(addr),
                    "KVM_SET_TSS_ADDR");
}

SysResult<void> VmFd::set_identity_map_addr(uint64_t addr) {
  return ioctl_void(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &addr, "KVM_SET_IDENTITY_MAP_ADDR");
}

SysResult<void> VmFd::create_irqchip() {
  return ioctl_void(fd_.get(), KVM_CREATE_IRQCHIP, 0, "KVM_CREATE_IRQCHIP");
}

SysResult<void> VmFd::create_pit2(uint32_t flags) {
  kvm_pit_config config{};
  config.flags = flags;
  return ioctl_void(fd_.get(), KVM_CREATE_PIT2, &config, "KVM_CREATE_PIT2");
}

SysResult<void> VmFd::irq_line(uint32_t irq, bool level) {
  kvm_irq_level line{};
  line.irq = irq;
  line.level = level ? 1 : 0;
  return ioctl_void(fd_.get(), KVM_IRQ_LINE, &line, "KVM_IRQ_LINE");
}

SysResult<void> VmFd::get_irqchip(kvm_irqchip& chip) const {
  return ioctl_void(fd_.get(), KVM_GET_IRQCHIP, &chip, "KVM_GET_IRQCHIP");
}

SysResult<void> VmFd::set_irqchip(const kvm_irqchip& chip) {
  return ioctl_void(fd_.get(), KVM_SET_IRQCHIP, &chip, "KVM_SET_IRQCHIP");
}

SysResult<void> VmFd::get_pit2(kvm_pit_state2& state) const {
  return ioctl_void(fd_.get(), KVM_GET_PIT2, &state, "KVM_GET_PIT2");
}

SysResult<void> VmFd::set_pit2(const kvm_pit_state2& state) {
  return ioctl_void(fd_.get(), KVM_SET_PIT2, &state, "KVM_SET_PIT2");
}

SysResult<kvm_clock_data> VmFd::get_clock() const {
  return ioctl_get<kvm_clock_data>(fd_.get(), KVM_GET_CLOCK, "KVM_GET_CLOCK");
}

SysResult<void> VmFd::set_clock(const kvm_clock_data& data) {
  return ioctl_void(fd_.get(), KVM_SET_CLOCK, &data, "KVM_SET_CLOCK");
}

SysResult<void> VmFd::get_dirty_log(uint32_t slot, std::span<uint64_t> bitmap) {
  kvm_dirty_log log{};
  log.slot = slot;
  log.dirty_bitmap = bitmap.data();
  return ioctl_void(fd_.get(), KVM_GET_DIRTY_LOG, &log, "KVM_GET_DIRTY_LOG");
}

SysResult<void> VmFd::clear_dirty_log(uint32_t slot, uint64_t first_page, uint32_t num_pages,
                                      std::span<uint64_t> bitmap) {
  kvm_clear_dirty_log clear{};
  clear.slot = slot;
  clear.first_page = first_page;
  clear.num_pages = num_pages;
  clear.dirty_bitmap = bitmap.data();
  return ioctl_void(fd_.get(), KVM_CLEAR_DIRTY_LOG, &clear, "KVM_CLEAR_DIRTY_LOG");
}

SysResult<int> VmFd::reset_dirty_rings() {
  return do_ioctl(fd_.get(), KVM_RESET_DIRTY_RINGS, 0, "KVM_RESET_DIRTY_RINGS");
}

SysResult<VcpuFd> VmFd::create_vcpu(uint32_t id, size_t mmap_size) {
  auto rc = do_ioctl(fd_.get(), KVM_CREATE_VCPU, static_cast<unsigned long>(id), "KVM_CREATE_VCPU");
  if (!rc) {
    return fail(rc.error());
  }
  UniqueFd fd(*rc);
  auto run_map = Mapping::of_fd(fd.get(), mmap_size, PROT_READ | PROT_WRITE, 0);
  if (!run_map) {
    return fail(SysError{run_map.error().code, "mmap kvm_run"});
  }
  return VcpuFd(std::move(fd), std::move(*run_map), id);
}

// ---- VcpuFd ----------------------------------------------------------------------

SysResult<void> VcpuFd::run() {
  // SAFETY: KVM_RUN takes no argument; kvm_run is mapped for the life of this object.
  if (::ioctl(fd_.get(), KVM_RUN, 0) < 0) {
    return fail(last_error("KVM_RUN"));
  }
  return {};
}

SysResult<kvm_regs> VcpuFd::get_regs() const {
  return ioctl_get<kvm_regs>(fd_.get(), KVM_GET_REGS, "KVM_GET_REGS");
}
SysResult<void> VcpuFd::set_regs(const kvm_regs& regs) {
  return ioctl_void(fd_.get(), KVM_SET_REGS, &regs, "KVM_SET_REGS");
}
SysResult<kvm_sregs> VcpuFd::get_sregs() const {
  return ioctl_get<kvm_sregs>(fd_.get(), KVM_GET_SREGS, "KVM_GET_SREGS");
}
SysResult<void> VcpuFd::set_sregs(const kvm_sregs& sregs) {
  return ioctl_void(fd_.get(), KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");
}

SysResult<void> VcpuFd::set_cpuid2(const CpuidEntries& entries) {
  FlexBuffer<kvm_cpuid2, kvm_cpuid_entry2> buffer(entries.size());
  buffer.get()->nent = static_cast<uint32_t>(entries.size());
  std::memcpy(buffer.entries(), entries.data(), entries.size() * sizeof(kvm_cpuid_entry2));
  return ioctl_void(fd_.get(), KVM_SET_CPUID2, buffer.get(), "KVM_SET_CPUID2");
}

SysResult<std::vector<kvm_msr_entry>> VcpuFd::get_msrs(std::span<const uint32_t> indices) const {
  FlexBuffer<kvm_msrs, kvm_msr_entry> buffer(indices.size());
  buffer.get()->nmsrs = static_cast<uint32_t>(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) {
    buffer.entries()[i] = kvm_msr_entry{indices[i], 0, 0};
  }
  auto rc = do_ioctl(fd_.get(), KVM_GET_MSRS, buffer.get(), "KVM_GET_MSRS");
  if (!rc) {
    return fail(rc.error());
  }
  // KVM stops at the first MSR it cannot read and returns how many it processed.
  return std::vector<kvm_msr_entry>(buffer.entries(), buffer.entries() + *rc);
}

SysResult<size_t> VcpuFd::set_msrs(std::span<const kvm_msr_entry> entries) {
  FlexBuffer<kvm_msrs, kvm_msr_entry> buffer(entries.size());
  buffer.get()->nmsrs = static_cast<uint32_t>(entries.size());
  std::memcpy(buffer.entries(), entries.data(), entries.size() * sizeof(kvm_msr_entry));
  auto rc = do_ioctl(fd_.get(), KVM_SET_MSRS, buffer.get(), "KVM_SET_MSRS");
  if (!rc) {
    return fail(rc.error());
  }
  return static_cast<size_t>(*rc);
}

SysResult<std::vector<uint8_t>> VcpuFd::get_xsave2(size_t size) const {
  std::vector<uint8_t> area(std::max(size, sizeof(kvm_xsave)));
  auto rc = do_ioctl(fd_.get(), KVM_GET_XSAVE2, area.data(), "KVM_GET_XSAVE2");
  if (!rc) {
    return fail(rc.error());
  }
  return area;
}

SysResult<void> VcpuFd::set_xsave(std::span<const uint8_t> area) {
  if (area.size() < sizeof(kvm_xsave)) {
    return fail(make_error(EINVAL, "KVM_SET_XSAVE"));
  }
  return ioctl_void(fd_.get(), KVM_SET_XSAVE, area.data(), "KVM_SET_XSAVE");
}

SysResult<kvm_xcrs> VcpuFd::get_xcrs() const {
  return ioctl_get<kvm_xcrs>(fd_.get(), KVM_GET_XCRS, "KVM_GET_XCRS");
}
SysResult<void> VcpuFd::set_xcrs(const kvm_xcrs& xcrs) {
  return ioctl_void(fd_.get(), KVM_SET_XCRS, &xcrs, "KVM_SET_XCRS");
}
SysResult<kvm_lapic_state> VcpuFd::get_lapic() const {
  return ioctl_get<kvm_lapic_state>(fd_.get(), KVM_GET_LAPIC, "KVM_GET_LAPIC");
}
SysResult<void> VcpuFd::set_lapic(const kvm_lapic_state& lapic) {
  return ioctl_void(fd_.get(), KVM_SET_LAPIC, &lapic, "KVM_SET_LAPIC");
}
SysResult<kvm_vcpu_events> VcpuFd::get_vcpu_events() const {
  return ioctl_get<kvm_vcpu_events>(fd_.get(), KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS");
}
SysResult<void> VcpuFd::set_vcpu_events(const kvm_vcpu_events& events) {
  return ioctl_void(fd_.get(), KVM_SET_VCPU_EVENTS, &events, "KVM_SET_VCPU_EVENTS");
}
SysResult<kvm_mp_state> VcpuFd::get_mp_state() const {
  return ioctl_get<kvm_mp_state>(fd_.get(), KVM_GET_MP_STATE, "KVM_GET_MP_STATE");
}
SysResult<void> VcpuFd::set_mp_state(const kvm_mp_state& state) {
  return ioctl_void(fd_.get(), KVM_SET_MP_STATE, &state, "KVM_SET_MP_STATE");
}
SysResult<kvm_debugregs> VcpuFd::get_debugregs() const {
  return ioctl_get<kvm_debugregs>(fd_.get(), KVM_GET_DEBUGREGS, "KVM_GET_DEBUGREGS");
}
SysResult<void> VcpuFd::set_debugregs(const kvm_debugregs& regs) {
  return ioctl_void(fd_.get(), KVM_SET_DEBUGREGS, &regs, "KVM_SET_DEBUGREGS");
}

SysResult<Mapping> VcpuFd::map_dirty_ring(size_t bytes) const {
  const off_t offset = static_cast<off_t>(KVM_DIRTY_LOG_PAGE_OFFSET) * ::getpagesize();
  auto ring = Mapping::of_fd(fd_.get(), bytes, PROT_READ | PROT_WRITE, offset);
  if (!ring) {
    return fail(SysError{ring.error().code, "mmap dirty ring"});
  }
  return ring;
}

SysResult<uint32_t> VcpuFd::get_tsc_khz() const {
  auto rc = do_ioctl(fd_.get(), KVM_GET_TSC_KHZ, 0, "KVM_GET_TSC_KHZ");
  if (!rc) {
    return fail(rc.error());
  }
  return static_cast<uint32_t>(*rc);
}

}  // namespace ferry::kernel
