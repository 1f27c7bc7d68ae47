#include "kvm_machine.h"

#include <fmt/format.h>
#include <poll.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <fstream>
#include <iterator>

#include "block_device.h"
#include "cpu_setup.h"
#include "ferry/vmm/boot/loader.h"
#include "migration_adapter.h"

namespace ferry::vmm {

namespace {
// KVM needs three pages for the (Intel) real-mode TSS and one for the identity map,
// placed in the MMIO hole just below the BIOS area where no RAM or device lives.
constexpr uint64_t kTssAddress = 0xfffbd000;
constexpr uint64_t kIdentityMapAddress = 0xfffbc000;
constexpr uint64_t kVirtioMmioBase = 0xd0000000;
constexpr uint32_t kVirtioFirstIrq = 5;
constexpr auto kThrottleTick = std::chrono::milliseconds(10);

VmmResult<std::vector<uint8_t>> read_file(const std::string& path, VmmErrc errc, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return fail(vmm_error(errc, fmt::format("cannot open {} '{}'", what, path),
                          kernel::last_error("open")));
  }
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  if (in.bad()) {
    return fail(vmm_error(errc, fmt::format("cannot read {} '{}'", what, path)));
  }
  return bytes;
}

uint64_t host_ram_bytes() {
  struct sysinfo info {};
  if (::sysinfo(&info) != 0) {
    return 0;
  }
  return static_cast<uint64_t>(info.totalram) * info.mem_unit;
}
}  // namespace

int exit_status_of(const MachineExit& exit) {
  switch (exit.kind) {
    case MachineExit::Kind::GuestStatus:
      return exit.status;
    case MachineExit::Kind::GuestError:
      return 124;
    case MachineExit::Kind::Quit:
    case MachineExit::Kind::MigratedAway:
      return 0;
  }
  return 125;
}

VmmResult<std::unique_ptr<Machine>> Machine::create(const VmConfig& config, MachineMode mode) {
  if (auto ok = validate_config(config); !ok) {
    return fail(ok.error());
  }
  const uint64_t host_ram = host_ram_bytes();
  if (host_ram != 0 && config.memory_bytes > host_ram) {
    return fail(vmm_error(VmmErrc::BadConfig,
                          fmt::format("guest memory {} MiB exceeds this host's RAM ({} MiB)",
                                      config.memory_bytes >> 20, host_ram >> 20)));
  }
  auto kvm = kernel::KvmSystem::open(config.kvm_path.c_str());
  if (!kvm) {
    return fail(vmm_error(VmmErrc::OpenKvm,
                          fmt::format("cannot use {} as KVM (is the kvm module loaded, and may "
                                      "this user open it?)",
                                      config.kvm_path),
                          kvm.error()));
  }
  for (auto [cap, name] :
       {std::pair{KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"}, std::pair{KVM_CAP_PIT2, "KVM_CAP_PIT2"},
        std::pair{KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
        std::pair{KVM_CAP_XSAVE2, "KVM_CAP_XSAVE2"}, std::pair{KVM_CAP_XCRS, "KVM_CAP_XCRS"},
        std::pair{KVM_CAP_VCPU_EVENTS, "KVM_CAP_VCPU_EVENTS"},
        std::pair{KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE"},
        std::pair{KVM_CAP_ADJUST_CLOCK, "KVM_CAP_ADJUST_CLOCK"},
        std::pair{KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"}}) {
    if (kvm->check_extension(cap) <= 0) {
      return fail(vmm_error(VmmErrc::MissingCapability,
                            fmt::format("/dev/kvm lacks {}, which Ferry requires", name)));
    }
  }
  const int max_vcpus = kvm->check_extension(KVM_CAP_MAX_VCPUS);
  if (max_vcpus > 0 && config.vcpus > static_cast<uint32_t>(max_vcpus)) {
    return fail(vmm_error(VmmErrc::BadConfig, fmt::format("{} vCPUs requested; this host's KVM "
                                                          "allows at most {}",
                                                          config.vcpus, max_vcpus)));
  }
  auto vm = kvm->create_vm();
  if (!vm) {
    return fail(vmm_error(VmmErrc::CreateVm, "create VM", vm.error()));
  }
  auto machine = std::make_unique<KvmMachine>(config, mode, std::move(*kvm), std::move(*vm));
  if (auto ok = machine->build(); !ok) {
    return fail(ok.error());
  }
  return std::unique_ptr<Machine>(std::move(machine));
}

KvmMachine::KvmMachine(VmConfig config, MachineMode mode, kernel::KvmSystem kvm, kernel::VmFd vm)
    : config_(std::move(config)), mode_(mode), kvm_(std::move(kvm)), vm_(std::move(vm)) {}

KvmMachine::~KvmMachine() {
  stop(MachineExit{MachineExit::Kind::Quit, 0, "machine destroyed"});
  for (auto& vcpu : vcpus_) {
    vcpu->join();
  }
  if (throttle_thread_.joinable()) {
    throttle_thread_.join();
  }
  if (stdin_thread_.joinable()) {
    stdin_thread_.join();
  }
  // Devices may still complete in-flight I/O into guest RAM: stop them before memory goes.
  disks_.clear();
}

VmmResult<void> KvmMachine::build() {
  control_ = std::make_unique<RunControl>(config_.vcpus, mode_ == MachineMode::Incoming);
  for (auto step : {&KvmMachine::setup_vm, &KvmMachine::setup_memory, &KvmMachine::setup_vcpus,
                    &KvmMachine::setup_devices}) {
    if (auto ok = (this->*step)(); !ok) {
      return ok;
    }
  }
  adapter_ = std::make_unique<MigrationAdapter>(*this);
  if (mode_ == MachineMode::Boot) {
    return load_guest();
  }
  return {};
}

VmmResult<void> KvmMachine::setup_vm() {
  if (auto rc = vm_.set_tss_addr(kTssAddress); !rc) {
    return fail(vmm_error(VmmErrc::CreateVm, "set TSS address", rc.error()));
  }
  if (auto rc = vm_.set_identity_map_addr(kIdentityMapAddress); !rc) {
    return fail(vmm_error(VmmErrc::CreateVm, "set identity map address", rc.error()));
  }
  if (auto rc = vm_.create_irqchip(); !rc) {
    return fail(vmm_error(VmmErrc::SetupIrqchip, "create in-kernel irqchip", rc.error()));
  }
  if (auto rc = vm_.create_pit2(KVM_PIT_SPEAKER_DUMMY); !rc) {
    return fail(vmm_error(VmmErrc::SetupIrqchip, "create in-kernel PIT", rc.error()));
  }
  if (config_.dirty_ring_entries != 0) {
    if (auto ok = enable_dirty_ring(); !ok) {
      return ok;
    }
  }
  // Manual dirty-log protection makes harvesting cheap; without it we fall back.
  bool manual = false;
  const int manual_caps = vm_.check_extension(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
  if (manual_caps > 0) {
    manual = vm_.enable_cap(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE)
                 .has_value();
  }
  auto supported = kvm_.get_supported_cpuid();
  if (!supported) {
    return fail(vmm_error(VmmErrc::SetupCpuid, "read supported CPUID", supported.error()));
  }
  if (config_.cpuid_blob.empty()) {
    cpuid_ = filter_cpuid(*supported, CpuidPolicy{config_.vcpus, host_is_kvm_pvm()});
    config_.cpuid_blob = encode_cpuid(cpuid_);
  } else {
    auto decoded = decode_cpuid(config_.cpuid_blob);
    if (!decoded) {
      return fail(decoded.error());
    }
    cpuid_ = std::move(*decoded);
  }
  dirty_manual_protect_ = manual;
  return {};
}

VmmResult<void> KvmMachine::enable_dirty_ring() {
  const uint32_t entries = config_.dirty_ring_entries;
  const uint64_t bytes = uint64_t{entries} * sizeof(kvm_dirty_gfn);
  const int max_bytes = vm_.check_extension(KVM_CAP_DIRTY_LOG_RING);
  if (max_bytes <= 0) {
    return fail(vmm_error(VmmErrc::MissingCapability,
                          "--dirty-ring needs KVM_CAP_DIRTY_LOG_RING, which this KVM lacks"));
  }
  if ((entries & (entries - 1)) != 0 || bytes < 4096 || bytes > uint64_t(max_bytes)) {
    return fail(vmm_error(VmmErrc::BadConfig,
                          fmt::format("dirty ring of {} entries: must be a power of two from "
                                      "256 to {}",
                                      entries, max_bytes / sizeof(kvm_dirty_gfn))));
  }
  // The acquire/release flavour is required on weakly ordered hosts and fine on x86.
  const uint32_t cap = vm_.check_extension(KVM_CAP_DIRTY_LOG_RING_ACQ_REL) > 0
                           ? KVM_CAP_DIRTY_LOG_RING_ACQ_REL
                           : KVM_CAP_DIRTY_LOG_RING;
  if (auto rc = vm_.enable_cap(cap, bytes); !rc) {
    return fail(vmm_error(VmmErrc::DirtyLog, "enable dirty ring", rc.error()));
  }
  return {};
}

VmmResult<void> KvmMachine::setup_memory() {
  auto memory = GuestMemory::create(config_.memory_bytes, config_.hugetlb);
  if (!memory) {
    return fail(memory.error());
  }
  memory_ = std::move(*memory);
  for (const GuestRegion& region : memory_->regions()) {
    kvm_userspace_memory_region slot{};
    slot.slot = region.slot;
    slot.guest_phys_addr = region.gpa;
    slot.memory_size = region.size;
    slot.userspace_addr = reinterpret_cast<uint64_t>(region.host);
    if (auto rc = vm_.set_user_memory_region(slot); !rc) {
      return fail(vmm_error(VmmErrc::SetMemoryRegion,
                            fmt::format("register slot {} (gpa {:#x}, {} MiB)", region.slot,
                                        region.gpa, region.size >> 20),
                            rc.error()));
    }
  }
  dirty_log_ = std::make_unique<DirtyLog>(
      vm_, *memory_, config_.dirty_ring_entries ? DirtyLogMode::Ring : DirtyLogMode::Bitmap,
      dirty_manual_protect_);
  return {};
}

VmmResult<void> KvmMachine::setup_vcpus() {
  Vcpu::install_kick_signal();
  auto mmap_size = kvm_.get_vcpu_mmap_size();
  if (!mmap_size) {
    return fail(vmm_error(VmmErrc::CreateVcpu, "read vCPU mmap size", mmap_size.error()));
  }
  for (uint32_t id = 0; id < config_.vcpus; ++id) {
    auto fd = vm_.create_vcpu(id, *mmap_size);
    if (!fd) {
      return fail(vmm_error(VmmErrc::CreateVcpu, fmt::format("create vCPU {}", id), fd.error()));
    }
    if (auto rc = fd->set_cpuid2(cpuid_for_vcpu(cpuid_, id)); !rc) {
      return fail(
          vmm_error(VmmErrc::SetupCpuid, fmt::format("set CPUID of vCPU {}", id), rc.error()));
    }
    if (auto ok = setup_boot_msrs(*fd); !ok) {
      return ok;
    }
    if (auto ok = setup_lapic_lint(*fd); !ok) {
      return ok;
    }
    if (config_.dirty_ring_entries != 0) {
      auto ring = fd->map_dirty_ring(config_.dirty_ring_entries * sizeof(kvm_dirty_gfn));
      if (!ring) {
        return fail(vmm_error(VmmErrc::DirtyLog, fmt::format("map dirty ring of vCPU {}", id),
                              ring.error()));
      }
      dirty_log_->attach_ring(std::move(*ring), config_.dirty_ring_entries);
    }
    vcpus_.push_back(std::make_unique<Vcpu>(
        std::move(*fd), bus_, *control_,
        [this](uint32_t vcpu_id, const VcpuExit& exit) {
          stop(MachineExit{MachineExit::Kind::GuestError, 0,
                           fmt::format("vCPU {}: {}", vcpu_id, exit.reason)});
        },
        [this] { return dirty_log_->drain_rings().has_value(); }));
  }
  return {};
}

VmmResult<void> KvmMachine::setup_devices() {
  irq_lines_.push_back(std::make_unique<KvmIrqLine>(vm_, Serial::kCom1Irq));
  serial_ = std::make_unique<Serial>(config_.serial_out_fd, irq_lines_.back().get());
  bus_.add_pio(Serial::kCom1Base, 8, serial_.get());
  debug_exit_ = std::make_unique<DebugExit>([this](int status) {
    stop(MachineExit{MachineExit::Kind::GuestStatus, status, "guest wrote the exit port"});
  });
  bus_.add_pio(DebugExit::kPort, DebugExit::kSize, debug_exit_.get());
  for (size_t i = 0; i < config_.disks.size(); ++i) {
    const uint32_t irq = kVirtioFirstIrq + static_cast<uint32_t>(i);
    irq_lines_.push_back(std::make_unique<KvmIrqLine>(vm_, irq));
    auto disk = BlockDevice::create(*memory_, *irq_lines_.back(), config_.disks[i]);
    if (!disk) {
      return fail(disk.error());
    }
    const uint64_t base = kVirtioMmioBase + i * 0x1000;
    bus_.add_mmio(base, 0x1000, &(*disk)->transport());
    if (mode_ == MachineMode::Boot) {
      // An incoming machine carries the source's command line, which already has it.
      config_.cmdline += fmt::format(" virtio_mmio.device=4K@{:#x}:{}", base, irq);
    }
    disks_.push_back(std::move(*disk));
  }
  return {};
}

VmmResult<void> KvmMachine::load_guest() {
  if (config_.kernel_path.empty()) {
    return fail(vmm_error(VmmErrc::BadConfig, "no kernel given (--kernel PATH)"));
  }
  auto kernel = read_file(config_.kernel_path, VmmErrc::LoadKernel, "kernel");
  if (!kernel) {
    return fail(kernel.error());
  }
  std::vector<uint8_t> initrd;
  if (!config_.initrd_path.empty()) {
    auto bytes = read_file(config_.initrd_path, VmmErrc::LoadInitrd, "initrd");
    if (!bytes) {
      return fail(bytes.error());
    }
    initrd = std::move(*bytes);
  }
  auto plan = boot::load_kernel(*memory_, *kernel, initrd, config_.cmdline,
                                boot::BootOptions{boot::KernelFormat::Auto, config_.vcpus});
  if (!plan) {
    return fail(plan.error());
  }
  for (size_t i = 0; i < vcpus_.size(); ++i) {
    kernel::VcpuFd& fd = vcpus_[i]->fd();
    if (i >= plan->vcpus.size()) {
      continue;  // AP waiting for INIT/SIPI from the BSP
    }
    auto sregs = fd.get_sregs();
    if (!sregs) {
      return fail(vmm_error(VmmErrc::SetupRegisters, "read sregs", sregs.error()));
    }
    boot::apply_sregs(*plan, i, *sregs);
    if (auto rc = fd.set_sregs(*sregs); !rc) {
      return fail(
          vmm_error(VmmErrc::SetupRegisters, fmt::format("set sregs of vCPU {}", i), rc.error()));
    }
    if (auto rc = fd.set_regs(plan->vcpus[i].regs); !rc) {
      return fail(
          vmm_error(VmmErrc::SetupRegisters, fmt::format("set regs of vCPU {}", i), rc.error()));
    }
    if (i > 0) {
      // APs start UNINITIALIZED with the in-kernel irqchip (KVM_RUN returns EAGAIN).
      kvm_mp_state runnable{KVM_MP_STATE_RUNNABLE};
      if (auto rc = fd.set_mp_state(runnable); !rc) {
        return fail(
            vmm_error(VmmErrc::SetupRegisters, fmt::format("start vCPU {}", i), rc.error()));
      }
    }
  }
  return {};
}

VmmResult<void> KvmMachine::start() {
  for (auto& vcpu : vcpus_) {
    vcpu->start();
  }
  throttle_thread_ = std::thread([this] { throttle_loop(); });
  if (config_.serial_in_fd >= 0) {
    stdin_thread_ = std::thread([this] { stdin_loop(); });
  }
  return {};
}

void KvmMachine::throttle_loop() {
  // A vCPU spinning in guest ring 3 never exits on its own; kick it every tick so it
  // can sleep its throttle share.
  while (control_->state() != RunState::Stopping) {
    std::this_thread::sleep_for(kThrottleTick);
    if (control_->throttle_percent() > 0 && control_->state() == RunState::Running) {
      kick_all();
    }
  }
}

void KvmMachine::stdin_loop() {
  while (control_->state() != RunState::Stopping) {
    pollfd pfd{config_.serial_in_fd, POLLIN, 0};
    if (::poll(&pfd, 1, 100) <= 0) {
      continue;
    }
    uint8_t buf[64];
    ssize_t n = ::read(config_.serial_in_fd, buf, sizeof(buf));
    if (n <= 0) {
      return;  // EOF: the guest just sees no more input
    }
    serial_->enqueue_input({buf, static_cast<size_t>(n)});
  }
}

void KvmMachine::kick_all() {
  for (auto& vcpu : vcpus_) {
    vcpu->kick();
  }
}

MachineExit KvmMachine::wait() {
  std::unique_lock lock(exit_mutex_);
  exit_cv_.wait(lock, [&] { return exit_.has_value(); });
  return *exit_;
}

VmmResult<void> KvmMachine::pause() {
  control_->pause([this] { kick_all(); });
  for (auto& disk : disks_) {
    disk->quiesce();
  }
  std::lock_guard lock(exit_mutex_);
  user_paused_ = true;
  return {};
}

VmmResult<void> KvmMachine::resume() {
  for (auto& disk : disks_) {
    disk->unquiesce();
  }
  control_->resume();
  std::lock_guard lock(exit_mutex_);
  user_paused_ = false;
  return {};
}

bool KvmMachine::paused() const { return control_->state() == RunState::Paused; }

void KvmMachine::set_throttle_percent(unsigned percent) { control_->set_throttle_percent(percent); }

void KvmMachine::stop(MachineExit exit) {
  {
    std::lock_guard lock(exit_mutex_);
    if (!exit_) {
      exit_ = std::move(exit);
    }
  }
  exit_cv_.notify_all();
  control_->stop([this] { kick_all(); });
}

MachineStatus KvmMachine::status() const {
  MachineStatus s;
  switch (control_->state()) {
    case RunState::Running:
      s.state = "running";
      break;
    case RunState::Paused:
      s.state = "paused";
      break;
    case RunState::Stopping:
      s.state = "stopped";
      break;
  }
  s.memory_bytes = config_.memory_bytes;
  s.vcpus = config_.vcpus;
  for (const auto& vcpu : vcpus_) {
    s.vcpu_exits += vcpu->exits();
    s.emulation_fixups += vcpu->fixups();
  }
  s.serial_bytes = serial_->bytes_written();
  s.unclaimed_io = bus_.unclaimed_accesses();
  s.throttle_percent = control_->throttle_percent();
  s.dirty_logging = dirty_log_->active();
  s.dirty_log_mode = dirty_log_->mode() == DirtyLogMode::Ring ? "ring" : "bitmap";
  return s;
}

migration::MigratableVm& KvmMachine::migratable() { return *adapter_; }

VmmResult<void> KvmMachine::set_disk_faults(std::size_t index, const BlockFaultInjection& faults) {
  if (index >= disks_.size()) {
    return fail(vmm_error(VmmErrc::BadConfig, fmt::format("no disk {} (this machine has {})",
                                                          index, disks_.size())));
  }
  disks_[index]->set_fault_injection(faults);
  return {};
}

}  // namespace ferry::vmm
