#include "vm_session.h"

#include <fmt/format.h>

#include <cstdio>

#include "migration_glue.h"

namespace ferry::tools {

nlohmann::json status_json(const vmm::MachineStatus& s) {
  return {{"state", s.state},
          {"memory_bytes", s.memory_bytes},
          {"vcpus", s.vcpus},
          {"vcpu_exits", s.vcpu_exits},
          {"emulation_fixups", s.emulation_fixups},
          {"serial_bytes", s.serial_bytes},
          {"unclaimed_io", s.unclaimed_io},
          {"throttle_percent", s.throttle_percent},
          {"dirty_logging", s.dirty_logging},
          {"dirty_log_mode", s.dirty_log_mode}};
}

Result<vmm::BlockFaultInjection, std::string> disk_faults_from_json(const nlohmann::json& request) {
  // Every field optional, unsigned, bounded; a missing one is 0 (= no such fault).
  auto field = [&](const char* name, uint64_t max, uint64_t& out) -> bool {
    auto it = request.find(name);
    if (it == request.end()) {
      out = 0;
      return true;
    }
    if (!it->is_number_unsigned() || it->get<uint64_t>() > max) {
      return false;
    }
    out = it->get<uint64_t>();
    return true;
  };
  uint64_t disk = 0, latency = 0, first = 0, count = 0;
  if (!field("disk", 1024, disk) || !field("latency_us", 10'000'000, latency) ||
      !field("eio_first_sector", UINT64_MAX / 2, first) ||
      !field("eio_sectors", UINT64_MAX / 2, count)) {
    return fail(std::string(
        "inject-disk-fault wants unsigned integers: disk, latency_us (<= 10000000), "
        "eio_first_sector, eio_sectors"));
  }
  vmm::BlockFaultInjection faults;
  faults.latency = std::chrono::microseconds(latency);
  faults.eio_first_sector = first;
  faults.eio_sector_count = count;
  return faults;
}

void add_basic_control_handlers(vmm::ControlServer& server, vmm::Machine& machine) {
  server.on("status", [&machine](const nlohmann::json&, vmm::ControlResponder&) {
    return nlohmann::json{{"ok", true}, {"status", status_json(machine.status())}};
  });
  server.on("pause", [&machine](const nlohmann::json&, vmm::ControlResponder&) {
    auto rc = machine.pause();
    return rc ? nlohmann::json{{"ok", true}}
              : nlohmann::json{{"ok", false}, {"error", rc.error().message()}};
  });
  server.on("resume", [&machine](const nlohmann::json&, vmm::ControlResponder&) {
    auto rc = machine.resume();
    return rc ? nlohmann::json{{"ok", true}}
              : nlohmann::json{{"ok", false}, {"error", rc.error().message()}};
  });
  server.on("inject-disk-fault", [&machine](const nlohmann::json& request,
                                            vmm::ControlResponder&) {
    auto faults = disk_faults_from_json(request);
    if (!faults) {
      return nlohmann::json{{"ok", false}, {"error", faults.error()}};
    }
    auto rc = machine.set_disk_faults(request.value("disk", 0u), *faults);
    return rc ? nlohmann::json{{"ok", true}}
              : nlohmann::json{{"ok", false}, {"error", rc.error().message()}};
  });
  server.on("quit", [&machine](const nlohmann::json&, vmm::ControlResponder&) {
    machine.stop(vmm::MachineExit{vmm::MachineExit::Kind::Quit, 0, "quit requested"});
    return nlohmann::json{{"ok", true}};
  });
}

bool open_control(const std::string& path, std::unique_ptr<vmm::ControlServer>& out) {
  if (path.empty()) {
    return true;
  }
  auto server = vmm::ControlServer::create(path);
  if (!server) {
    print_error("run", server.error().message());
    return false;
  }
  out = std::move(*server);
  return true;
}

int run_until_exit(vmm::Machine& machine, std::unique_ptr<vmm::ControlServer> control) {
  if (control) {
    add_basic_control_handlers(*control, machine);
    add_migrate_control_handler(*control, machine);
    control->start();
  }
  const vmm::MachineExit exit = machine.wait();
  if (exit.kind == vmm::MachineExit::Kind::GuestError) {
    print_error("run", "guest failed: " + exit.reason);
  }
  // Stop serving (and join a handler still replying) before the machine goes away.
  control.reset();
  return vmm::exit_status_of(exit);
}

void print_error(const char* cmd, const std::string& message) {
  std::fprintf(stderr, "ferry %s: %s\n", cmd, message.c_str());
}

}  // namespace ferry::tools
