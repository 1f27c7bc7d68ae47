// `ferry run`: boot a guest (or receive a migrated one) and run it until it exits.
#include <fmt/format.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>

#include "commands.h"
#include "ferry/vmm/control_server.h"
#include "ferry/vmm/machine.h"
#include "migration_glue.h"
#include "vm_session.h"

namespace ferry::tools {

namespace {

struct RunOptions {
  std::string kernel, initrd, cmdline, memory = "256M", control, serial = "stdio";
  std::string kvm_device = "/dev/kvm";
  std::string incoming, tls_dir, tls_name, report, max_mem;
  uint32_t max_vcpus = 64;
  uint32_t dirty_ring = 0;
  uint32_t cpus = 1;
  std::vector<std::string> disks;
  bool hugepages = false;
  uint64_t fault_latency_us = 0;  // INJECTION: added to every guest disk request batch
  std::string fault_eio;          // INJECTION: FIRST:COUNT sectors fail with EIO
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
  config.dirty_ring_entries = o.dirty_ring;
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
  if (options.fault_latency_us != 0 || !options.fault_eio.empty()) {
    vmm::BlockFaultInjection faults;
    faults.latency = std::chrono::microseconds(options.fault_latency_us);
    if (!options.fault_eio.empty() &&
        std::sscanf(options.fault_eio.c_str(), "%" SCNu64 ":%" SCNu64, &faults.eio_first_sector,
                    &faults.eio_sector_count) != 2) {
      print_error("run", fmt::format("bad --inject-disk-eio '{}': expected FIRST:COUNT sectors",
                                     options.fault_eio));
      return 2;
    }
    for (std::size_t i = 0; i < options.disks.size(); ++i) {
      if (auto ok = (*machine)->set_disk_faults(i, faults); !ok) {
        print_error("run", ok.error().message());
        return 1;
      }
    }
    std::fprintf(stderr, "ferry run: FAULT INJECTION on every disk: +%" PRIu64 " us per request "
                 "batch, EIO on %" PRIu64 " sectors from %" PRIu64 "\n",
                 options.fault_latency_us, faults.eio_sector_count, faults.eio_first_sector);
  }
  std::unique_ptr<vmm::ControlServer> control;
  if (!open_control(options.control, control)) {
    return 1;
  }
  if (auto ok = (*machine)->start(); !ok) {
    print_error("run", ok.error().message());
    return 1;
  }
  return run_until_exit(**machine, std::move(control));
}

int run_incoming_from(const RunOptions& o) {
  IncomingOptions in;
  in.listen = o.incoming;
  in.disks = o.disks;
  in.control = o.control;
  in.tls_dir = o.tls_dir;
  in.tls_name = o.tls_name;
  in.report_path = o.report;
  in.max_vcpus = o.max_vcpus;
  in.kvm_device = o.kvm_device;
  in.serial_out_fd = o.serial == "none" ? -1 : STDOUT_FILENO;
  if (!o.max_mem.empty()) {
    auto mem = vmm::parse_memory_size(o.max_mem);
    if (!mem) {
      print_error("run", mem.error().message());
      return 2;
    }
    in.max_memory_bytes = *mem;
  }
  return run_incoming(in);
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
  run->add_option("--dirty-ring", options->dirty_ring,
                  "Track dirty pages for migration with per-vCPU dirty rings of N entries "
                  "(power of two) instead of the dirty bitmap");
  run->add_flag("--hugepages", options->hugepages, "Back guest RAM with hugetlbfs pages");
  run->add_option("--inject-disk-latency-us", options->fault_latency_us,
                  "INJECTION (tests/demos): add this latency to every guest disk request batch");
  run->add_option("--inject-disk-eio", options->fault_eio,
                  "INJECTION (tests/demos): guest requests touching sectors FIRST:COUNT fail "
                  "with EIO");
  run->add_option("--incoming", options->incoming,
                  "Receive a migrating guest on tcp:ADDR:PORT instead of booting one; --disk "
                  "then names where each migrated disk is written (new file or same size)");
  run->add_option("--tls-dir", options->tls_dir,
                  "With --incoming: require TLS 1.3 with mutual auth (DIR/ca.pem, cert.pem, "
                  "key.pem)");
  run->add_option("--tls-name", options->tls_name,
                  "With --tls-dir: the name the source's certificate must carry");
  run->add_option("--report", options->report,
                  "With --incoming: write the destination's migration report (JSON) here");
  run->add_option("--max-mem", options->max_mem,
                  "With --incoming: refuse guests larger than this (default: host RAM)");
  run->add_option("--max-cpus", options->max_vcpus,
                  "With --incoming: refuse guests with more vCPUs (default 64)");
  run->callback([options, &exit_code] {
    if (!options->incoming.empty()) {
      exit_code = run_incoming_from(*options);
      return;
    }
    if (options->kernel.empty()) {
      print_error("run", "--kernel is required");
      exit_code = 2;
      return;
    }
    exit_code = run_boot(*options);
  });
}

}  // namespace ferry::tools
