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

/// JSON form of a machine status for control replies.
nlohmann::json status_json(const vmm::MachineStatus& status);

/// Prints "ferry <cmd>: <message>" to stderr.
void print_error(const char* cmd, const std::string& message);

}  // namespace ferry::tools
