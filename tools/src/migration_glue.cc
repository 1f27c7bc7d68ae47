#include "migration_glue.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <fstream>

#include "ferry/migration/receiver.h"
#include "ferry/migration/report.h"
#include "ferry/migration/sender.h"
#include "vm_session.h"

namespace ferry::tools {

namespace {

// Direct writes of at least this size use IORING_OP_SEND_ZC on the source's channels.
constexpr size_t kSourceZeroCopyThreshold = 64 << 10;

using migration::VmPortError;
using migration::VmResult;

// The destination's VM as the receiver sees it, owning the machine so run_incoming can
// take it back once the guest runs here.
class OwnedMachineVm final : public migration::MigratableVm {
 public:
  explicit OwnedMachineVm(std::unique_ptr<vmm::Machine> machine) : machine_(std::move(machine)) {}
  std::unique_ptr<vmm::Machine> take() { return std::move(machine_); }

  migration::VmDescription describe() const override { return vm().describe(); }
  std::vector<migration::RamRegion> ram_regions() const override { return vm().ram_regions(); }
  size_t disk_count() const override { return vm().disk_count(); }
  migration::MigratableDisk& disk(size_t i) override { return vm().disk(i); }
  VmResult<void> start_dirty_log() override { return vm().start_dirty_log(); }
  VmResult<void> harvest_dirty(migration::DirtyBitmap& b) override { return vm().harvest_dirty(b); }
  VmResult<void> stop_dirty_log() override { return vm().stop_dirty_log(); }
  VmResult<void> pause() override { return vm().pause(); }
  VmResult<void> resume() override { return vm().resume(); }
  void set_throttle_percent(unsigned p) override { vm().set_throttle_percent(p); }
  VmResult<std::vector<uint8_t>> save_machine_state() override { return vm().save_machine_state(); }
  VmResult<void> load_machine_state(std::span<const uint8_t> blob) override {
    return vm().load_machine_state(blob);
  }

 private:
  migration::MigratableVm& vm() const { return machine_->migratable(); }
  std::unique_ptr<vmm::Machine> machine_;
};

// A destination disk file must be new, or a regular file of exactly the size it will
// receive (it is overwritten); anything else is refused before the guest moves.
VmResult<void> prepare_disk_image(const std::string& path, uint64_t size) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) != size) {
      return fail(VmPortError{fmt::format(
          "destination disk '{}' exists and is not a {}-byte regular file; give a new path", path,
          size)});
    }
    return {};
  }
  int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    const int err = errno;
    if (fd >= 0) {
      ::close(fd);
    }
    return fail(VmPortError{
        fmt::format("cannot create destination disk '{}': {}", path, std::strerror(err))});
  }
  ::close(fd);
  return {};
}

migration::VmFactory make_factory(const IncomingOptions& options) {
  return [&options](const migration::VmDescription& description)
             -> VmResult<std::unique_ptr<migration::MigratableVm>> {
    auto config = vmm::decode_config(description.config_blob);
    if (!config) {
      return fail(VmPortError{"source machine config: " + config.error().message()});
    }
    if (description.disk_sizes.size() != options.disks.size() ||
        config->disks.size() != options.disks.size()) {
      return fail(
          VmPortError{fmt::format("the guest has {} disk(s); this destination was given "
                                  "{} --disk path(s)",
                                  description.disk_sizes.size(), options.disks.size())});
    }
    for (size_t i = 0; i < options.disks.size(); ++i) {
      if (auto ok = prepare_disk_image(options.disks[i], description.disk_sizes[i]); !ok) {
        return fail(ok.error());
      }
      config->disks[i].path = options.disks[i];
    }
    config->serial_out_fd = options.serial_out_fd;
    config->serial_in_fd = -1;
    config->kvm_path = options.kvm_device;
    config->control_path = options.control;
    auto machine = vmm::Machine::create(*config, vmm::MachineMode::Incoming);
    if (!machine) {
      return fail(VmPortError{machine.error().message()});
    }
    if (auto ok = (*machine)->start(); !ok) {
      return fail(VmPortError{ok.error().message()});
    }
    return std::unique_ptr<migration::MigratableVm>(new OwnedMachineVm(std::move(*machine)));
  };
}

std::optional<migration::ChannelOptions> channel_options(const std::string& tls_dir,
                                                         const std::string& tls_name,
                                                         std::string& error) {
  migration::ChannelOptions options;
  if (!tls_dir.empty()) {
    auto tls = load_tls(tls_dir, tls_name, error);
    if (!tls) {
      return std::nullopt;
    }
    options.tls = std::move(*tls);
  }
  return options;
}

void write_report(const std::string& path, const nlohmann::json& report) {
  if (path.empty()) {
    return;
  }
  std::ofstream out(path);
  // The error text may quote a peer's Cancel/Error record, which need not be UTF-8;
  // dump() would throw on it (U+FFFD instead).
  out << report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  if (!out) {
    print_error("run", fmt::format("cannot write report '{}'", path));
  }
}

nlohmann::json handle_migrate(vmm::Machine& machine, const nlohmann::json& request,
                              vmm::ControlResponder& responder) {
  auto bad = [](const std::string& why) { return nlohmann::json{{"ok", false}, {"error", why}}; };
  if (!request.contains("to") || !request["to"].is_string()) {
    return bad("migrate needs \"to\": \"tcp:HOST:PORT\"");
  }
  auto address = migration::Address::parse(request["to"].get<std::string>());
  if (!address) {
    return bad(address.error().message());
  }
  migration::SenderOptions sender;
  unsigned channels = 1;
  std::string tls_dir, tls_name, compress = "auto", verify = "tracked";
  bool zero_copy = true;
  try {
    zero_copy = request.value("zero_copy", true);
    channels = request.value("channels", 1u);
    sender.downtime_target = std::chrono::milliseconds(request.value("downtime_ms", 10u));
    sender.max_bandwidth = request.value("max_bandwidth", uint64_t{0});
    sender.max_rounds = request.value("max_rounds", sender.max_rounds);
    compress = request.value("compress", compress);
    tls_dir = request.value("tls_dir", tls_dir);
    tls_name = request.value("tls_name", tls_name);
    verify = request.value("verify", verify);
  } catch (const nlohmann::json::exception& e) {
    return bad(std::string("bad migrate request field: ") + e.what());
  }
  if (channels == 0 || channels > migration::kMaxSessionChannels) {
    return bad(fmt::format("channels must be 1..{}", migration::kMaxSessionChannels));
  }
  auto compression = migration::parse_compression(compress);
  if (!compression) {
    return bad(fmt::format("bad compress '{}' (auto, off, zstd or zstd:LEVEL)", compress));
  }
  sender.compression = *compression;
  if (verify != "tracked" && verify != "full") {
    return bad(fmt::format("bad verify '{}' (tracked or full)", verify));
  }
  // full: re-hash all of guest RAM in the blackout, which also catches a page the dirty
  // log missed; tracked: hashes kept while sending, no blackout cost (docs/migration.md).
  sender.memory_digest =
      verify == "full" ? migration::DigestMode::Full : migration::DigestMode::Tracked;
  std::string error;
  auto options = channel_options(tls_dir, tls_name, error);
  if (!options) {
    return bad(error);
  }
  // The source's channels carry page batches (~256 KiB records) to a destination that
  // always reads them, so big writes go out with SEND_ZC: 1.1-1.3x the throughput of
  // plain sends at ~40% less CPU per byte (docs/transport.md). The destination only
  // writes small acks. Kernels without SEND_ZC fall back to plain sends.
  options->tcp.zero_copy_threshold = zero_copy ? kSourceZeroCopyThreshold : 0;
  auto streams = migration::connect_channels(*address, channels, *options);
  if (!streams) {
    return bad(fmt::format("connect to {}: {}", request["to"].get<std::string>(),
                           streams.error().message()));
  }
  migration::MigrationReport partial;
  sender.failure_report = &partial;
  auto report = migration::migrate_out(machine.migratable(), std::move(*streams), sender,
                                       [&responder](const migration::ProgressEvent& event) {
                                         responder.send(migration::to_json(event));
                                       });
  if (!report) {
    nlohmann::json reply = bad(report.error().message());
    reply["guest"] = report.error().guest == migration::GuestLocation::PausedOnSource
                         ? "paused-on-source"
                         : "running-on-source";
    reply["report"] = migration::to_json(partial);
    return reply;
  }
  machine.stop(vmm::MachineExit{vmm::MachineExit::Kind::MigratedAway, 0, "migrated away"});
  return {{"ok", true}, {"report", migration::to_json(*report)}};
}

}  // namespace

std::optional<migration::TlsConfig> load_tls(const std::string& dir, const std::string& name,
                                             std::string& error) {
  auto tls = migration::TlsConfig::load_dir(dir);
  if (!tls) {
    error = tls.error().message();
    return std::nullopt;
  }
  if (!name.empty()) {
    tls->expect_peer_name(name);
  }
  return std::move(*tls);
}

void add_migrate_control_handler(vmm::ControlServer& server, vmm::Machine& machine) {
  server.on("migrate", [&machine](const nlohmann::json& request, vmm::ControlResponder& r) {
    return handle_migrate(machine, request, r);
  });
}

int run_incoming(const IncomingOptions& options) {
  auto address = migration::Address::parse(options.listen);
  if (!address) {
    print_error("run", address.error().message());
    return 1;
  }
  std::string error;
  auto channel_opts = channel_options(options.tls_dir, options.tls_name, error);
  if (!channel_opts) {
    print_error("run", error);
    return 1;
  }
  // Refuse a bad control path now, not after the guest has moved here.
  std::unique_ptr<vmm::ControlServer> control;
  if (!open_control(options.control, control)) {
    return 1;
  }
  auto listener = migration::Listener::bind(*address);
  if (!listener) {
    print_error("run", fmt::format("listen on {}: {}", options.listen, listener.error().message()));
    return 1;
  }
  std::fprintf(stderr, "ferry run: waiting for a migration on %s\n", options.listen.c_str());
  channel_opts->timeout = options.accept_timeout.count() > 0
                              ? options.accept_timeout
                              : std::chrono::milliseconds(24ll * 3600 * 1000);
  channel_opts->on_refused = [](const migration::StreamError& e) {
    std::fprintf(stderr, "ferry run: refused a connection: %s\n", e.message().c_str());
  };
  auto streams = migration::accept_channels(*listener, *channel_opts);
  {
    // One session per destination: stop listening now, so a second source is refused at
    // connect time instead of waiting unanswered in the backlog while this one runs.
    migration::Listener closed = std::move(*listener);
  }
  if (!streams) {
    print_error("run", "accept migration: " + streams.error().message());
    return 1;
  }
  migration::ReceiverOptions receiver;
  if (options.max_memory_bytes != 0) {
    receiver.max_memory_bytes = options.max_memory_bytes;
  } else if (struct sysinfo info{}; ::sysinfo(&info) == 0) {
    receiver.max_memory_bytes = static_cast<uint64_t>(info.totalram) * info.mem_unit;
  }
  receiver.max_vcpus = options.max_vcpus;
  migration::MigrationReport partial;
  receiver.failure_report = &partial;
  auto received = migration::migrate_in(std::move(*streams), make_factory(options), receiver);
  if (!received) {
    write_report(options.report_path, migration::to_json(partial));
    print_error("run", "incoming migration failed: " + received.error().message());
    return 1;
  }
  write_report(options.report_path, migration::to_json(received->report));
  std::unique_ptr<vmm::Machine> machine = static_cast<OwnedMachineVm*>(received->vm.get())->take();
  std::fprintf(stderr, "ferry run: migration complete; the guest runs here now\n");
  return run_until_exit(*machine, std::move(control));
}

}  // namespace ferry::tools
