// The migration engine wired to a running VMM: the "migrate" control command on the
// source, and `ferry run --incoming` on the destination.
#pragma once

#include <optional>
#include <string>

#include "ferry/migration/channel.h"
#include "ferry/vmm/control_server.h"
#include "ferry/vmm/machine.h"

namespace ferry::tools {

/// Registers "migrate" on a source VMM's control socket. Request fields: "to"
/// (tcp:HOST:PORT, required), "channels", "downtime_ms", "max_bandwidth", "compress",
/// "max_rounds", "tls_dir", "tls_name", "verify" (tracked | full). Progress is streamed as
/// {"event":"progress"} lines; the reply carries the report. On success the VMM exits (status 0).
void add_migrate_control_handler(vmm::ControlServer& server, vmm::Machine& machine);

struct IncomingOptions {
  std::string listen;              // tcp:ADDR:PORT
  std::vector<std::string> disks;  // where to write each migrated disk
  std::string control;             // control socket once the guest runs here
  std::string tls_dir, tls_name;
  std::string report_path;        // destination-side report (JSON)
  uint64_t max_memory_bytes = 0;  // 0 = this host's RAM
  uint32_t max_vcpus = 64;
  std::string kvm_device = "/dev/kvm";
  int serial_out_fd = 1;
  std::chrono::milliseconds accept_timeout{0};  // 0 = wait forever
};

/// Waits for one migration, runs the guest it brings until it exits; the exit status.
int run_incoming(const IncomingOptions& options);

/// Loads TLS settings for channels; nullopt + message on error.
std::optional<migration::TlsConfig> load_tls(const std::string& dir, const std::string& name,
                                             std::string& error);

}  // namespace ferry::tools
