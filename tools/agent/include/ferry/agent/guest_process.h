// A guest the agent owns: one `ferry run` VMM process, its control socket and its serial
// log under the agent's state directory. Guests are started by the agent (boot), or arrive
// by migration (receive: `ferry run --incoming`); either way the VMM is a child process.
// A receiver dies with the agent (PR_SET_PDEATHSIG) because nobody else would adopt it;
// a running guest outlives its agent, and a restarted agent finds it by its socket.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ferry/kernel-interfaces/result.h"

namespace ferry::agent {

/// What a guest is: enough to boot it, and to reserve room for it elsewhere.
struct GuestSpec {
  std::string id;  // [A-Za-z0-9_.-]{1,64}, unique in the fleet
  uint64_t mem_mib = 64;
  uint32_t vcpus = 1;
  std::string kernel;   // boot image (e.g. the test guest)
  std::string cmdline;  // guest command line

  /// Parses "ID:MEM_MIB:VCPUS[:CMDLINE]"; the kernel comes from elsewhere.
  static Result<GuestSpec, std::string> parse(const std::string& text);
};

/// True for ids safe to use as file names and etcd key parts.
bool valid_guest_id(const std::string& id);

struct ProcessError {
  std::string detail;
  std::string message() const { return detail; }
};

class GuestProcess {
 public:
  ~GuestProcess();
  GuestProcess(const GuestProcess&) = delete;
  GuestProcess& operator=(const GuestProcess&) = delete;

  /// Boots `spec` with `ferry_binary run`, serial to <state_dir>/<id>.serial.
  static Result<std::unique_ptr<GuestProcess>, ProcessError> boot(
      const std::string& ferry_binary, const GuestSpec& spec, const std::string& state_dir);
  /// Takes over a guest VMM that is already running (left by a previous agent) through its
  /// control socket; nullopt-like error when nothing answers there. Its memory and vCPUs
  /// come from the VMM's status.
  static Result<std::unique_ptr<GuestProcess>, ProcessError> adopt(const std::string& id,
                                                                   const std::string& state_dir);
  /// Starts `ferry_binary run --incoming <listen>` for `spec`, dying with this process.
  static Result<std::unique_ptr<GuestProcess>, ProcessError> receive(
      const std::string& ferry_binary, const GuestSpec& spec, const std::string& listen,
      const std::string& state_dir, const std::vector<std::string>& extra_args);

  const GuestSpec& spec() const { return spec_; }
  pid_t pid() const { return pid_; }
  const std::string& control_path() const { return control_; }
  const std::string& serial_path() const { return serial_; }

  bool adopted() const { return adopted_; }
  /// The exit status once the process ended (128 + signal if killed; -1 for an adopted
  /// guest, whose status only its parent saw), else nullopt.
  std::optional<int> poll_exit();
  /// SIGKILL and reap (an adopted guest is asked to quit instead).
  void kill();

 private:
  GuestProcess(GuestSpec spec, pid_t pid, std::string control, std::string serial)
      : spec_(std::move(spec)), pid_(pid), control_(std::move(control)), serial_(std::move(serial)) {}
  static Result<std::unique_ptr<GuestProcess>, ProcessError> spawn(
      const GuestSpec& spec, const std::vector<std::string>& argv, const std::string& state_dir,
      const std::string& control, bool die_with_parent);

  GuestSpec spec_;
  pid_t pid_ = -1;
  std::optional<int> exit_status_;
  bool adopted_ = false;
  std::string control_;
  std::string serial_;
};

}  // namespace ferry::agent
