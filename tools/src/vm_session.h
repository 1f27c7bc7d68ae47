// VmSession: a running machine plus its control socket, shared by `ferry run` (boot)
// and `ferry run --incoming` (after a migration arrives). Registers the control
// commands every VMM answers: status, pause, resume, quit.
#pragma once

#include <memory>
#include <string>

#include "ferry/vmm/control_server.h"
#include "ferry/vmm/machine.h"

namespace ferry::tools {

/// Registers status/pause/resume/quit handlers for `machine` on `server`.
void add_basic_control_handlers(vmm::ControlServer& server, vmm::Machine& machine);

/// The fields of an "inject-disk-fault" request (latency_us, eio_first_sector, eio_sectors);
/// an error naming the fields when one is not an unsigned integer in range.
Result<vmm::BlockFaultInjection, std::string> disk_faults_from_json(const nlohmann::json& request);

/// JSON form of a machine status for control replies.
nlohmann::json status_json(const vmm::MachineStatus& status);

/// Creates the control socket at `path` into `out` (nothing when `path` is empty);
/// false, with the error printed, if it cannot be created.
bool open_control(const std::string& path, std::unique_ptr<vmm::ControlServer>& out);

/// Serves every VMM command (status, pause, resume, quit, migrate) on `control` (if any),
/// runs the machine until it ends and returns the `ferry run` exit status.
int run_until_exit(vmm::Machine& machine, std::unique_ptr<vmm::ControlServer> control);

/// Prints "ferry <cmd>: <message>" to stderr.
void print_error(const char* cmd, const std::string& message);

}  // namespace ferry::tools
