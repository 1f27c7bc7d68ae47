// A fleet on one machine for the agent tests: one etcd and N hosts, each host in its own
// network namespace joined by veth links to a bridge in a "core" namespace where etcd
// listens. The addresses (10.231.0.0/24) exist only inside those namespaces, so no
// traffic leaves the machine. Namespaces, links and processes are torn down by the
// destructor; etcd and agents are stopped by PID.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "subprocess.h"

namespace ferry::testing {

/// Empty if this machine can build the fleet (root, `ip`, `etcd`); otherwise why not.
std::string fleet_unavailable_reason();

/// Whole file, or "" if it cannot be read.
std::string slurp(const std::string& path);
/// Polls `done` every 50 ms until it is true or `timeout` passes.
bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout);
/// How many times `needle` occurs in `text`.
std::size_t count_of(const std::string& text, const std::string& needle);

class NetnsFleet {
 public:
  /// Creates the core namespace with the bridge and one namespace per host name.
  NetnsFleet(const std::vector<std::string>& hosts, std::string work_dir);
  ~NetnsFleet();
  NetnsFleet(const NetnsFleet&) = delete;
  NetnsFleet& operator=(const NetnsFleet&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  /// Starts etcd in the core namespace; false (with error()) if it is not ready in 15 s.
  bool start_etcd();
  /// HOST:PORT of etcd, reachable from every host namespace.
  std::string etcd_endpoint() const;
  /// The host's address inside its namespace.
  std::string address(const std::string& host) const;
  /// argv prefix that runs a command inside the host's namespace.
  std::vector<std::string> in_host(const std::string& host) const;

  /// Starts `ferry agent` for `host` inside its namespace with the common options plus
  /// `extra`; its timeline goes to <work>/<host>.timeline, state to <work>/<host>/.
  Subprocess& start_agent(const std::string& host, const std::vector<std::string>& extra);
  Subprocess* agent(const std::string& host);
  std::string timeline(const std::string& host) const;
  std::string state_dir(const std::string& host) const;
  /// Runs `ferry fleet status` from the first host's namespace.
  RunResult fleet_status(bool json = false) const;

 private:
  std::string ns(const std::string& name) const;

  std::string tag_;
  std::string work_;
  std::vector<std::string> hosts_;
  std::vector<std::string> created_;  // namespaces to delete
  std::string error_;
  std::unique_ptr<Subprocess> etcd_;
  std::map<std::string, std::unique_ptr<Subprocess>> agents_;
};

}  // namespace ferry::testing
