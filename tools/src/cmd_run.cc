// `ferry run`: boot a guest (or receive a migrated one) and run it until it exits.
#include <unistd.h>

#include <fmt/format.h>

#include "commands.h"
#include "ferry/vmm/control_server.h"
#include "ferry/vmm/machine.h"
#include "vm_session.h"

namespace ferry::tools {

namespace {

struct RunOptions {
  std::string kernel, initrd, cmdline, memory = "256M", control, serial = "stdio";
  std::string kvm_device = "/dev/kvm";
  uint32_t cpus = 1;
  std::vector<std::string> disks;
  bool hugepages = false;
};

vmm::VmmResult<vmm::VmConfig> build_config(const RunOptions& o) {
  vmm::VmConfig config;
  auto mem = vmm::parse_memory_size(o.memory);
  if (!mem) {
    return fail(mem.error());
  }
  config.memory_bytes = *mem;
  config.vcpus = o.cpus;
  config.kernel_path = o.kernel;
  config.initrd_path = o.initrd;
  config.cmdline = o.cmdline;
  config.hugetlb = o.hugepages;
  config.control_path = o.control;
  config.kvm_path = o.kvm_device;
  for (const std::string& spec : o.disks) {
    vmm::DiskConfig disk;
    disk.path = spec;
    if (spec.size() > 3 && spec.ends_with(",ro")) {
      disk.path = spec.substr(0, spec.size() - 3);
      disk.read_only = true;
    }
    config.disks.push_back(disk);
  }
  if (o.serial == "stdio") {
    config.serial_out_fd = STDOUT_FILENO;
    config.serial_in_fd = isatty(STDIN_FILENO) ? STDIN_FILENO : -1;
  } else if (o.serial == "none") {
    config.serial_out_fd = -1;
  } else {
    return fail(vmm::vmm_error(vmm::VmmErrc::BadConfig,
                               fmt::format("--serial must be stdio or none, not '{}'", o.serial)));
  }
  return config;
}

int run_boot(const RunOptions& options) {
  auto config = build_config(options);
  if (!config) {
    print_error("run", config.error().message());
    return 1;
  }
  auto machine = vmm::Machine::create(*config, vmm::MachineMode::Boot);
  if (!machine) {
    print_error("run", machine.error().message());
    return 1;
  }
  std::unique_ptr<vmm::ControlServer> control;
  if (!options.control.empty()) {
    auto server = vmm::ControlServer::create(options.control);
    if (!server) {
      print_error("run", server.error().message());
      return 1;
    }
    control = std::move(*server);
    add_basic_control_handlers(*control, **machine);
    control->start();
  }
  if (auto ok = (*machine)->start(); !ok) {
    print_error("run", ok.error().message());
    return 1;
  }
  const vmm::MachineExit exit = (*machine)->wait();
  if (exit.kind == vmm::MachineExit::Kind::GuestError) {
    print_error("run", "guest failed: " + exit.reason);
  }
  return vmm::exit_status_of(exit);
}

}  // namespace

void add_run_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<RunOptions>();
  CLI::App* run = app.add_subcommand(
      "run",
      "Boot a guest on /dev/kvm and run it until it exits.\n"
      "Exit status: the byte the guest writes to port 0xf4, 124 if the guest crashed\n"
      "(triple fault, emulation failure), 1 on a setup error.");
  run->add_option("--kernel", options->kernel,
                  "Kernel: Ferry test guest, multiboot, Linux bzImage or PVH vmlinux")
      ->check(CLI::ExistingFile);
  run->add_option("--initrd", options->initrd, "Initial ramdisk (Linux)")->check(CLI::ExistingFile);
  run->add_option("--cmdline", options->cmdline, "Kernel command line");
  run->add_option("--mem", options->memory, "Guest memory, e.g. 512M, 2G (default 256M)");
  run->add_option("--cpus", options->cpus, "Number of vCPUs (default 1)");
  run->add_option("--disk", options->disks,
                  "Raw disk image for a virtio-mmio block device (repeatable; PATH,ro for "
                  "read-only)");
  run->add_option("--control", options->control,
                  "Control socket path (JSON lines; see docs/control-socket.md)");
  run->add_option("--serial", options->serial, "Console: stdio (default) or none");
  run->add_option("--kvm-device", options->kvm_device, "KVM device node (default /dev/kvm)");
  run->add_flag("--hugepages", options->hugepages, "Back guest RAM with hugetlbfs pages");
  run->callback([options, &exit_code] {
    if (options->kernel.empty()) {
      print_error("run", "--kernel is required");
      exit_code = 2;
      return;
    }
    exit_code = run_boot(*options);
  });
}

}  // namespace ferry::tools
