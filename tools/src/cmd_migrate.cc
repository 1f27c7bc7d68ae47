// `ferry migrate`: ask a running VMM (through its control socket) to live-migrate its
// guest to a destination started with `ferry run --incoming`, show progress, and print
// the summary; `--report` keeps the JSON report.
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "commands.h"
#include "ferry/migration/report_render.h"
#include "ferry/vmm/control_server.h"
#include "vm_session.h"

namespace ferry::tools {

namespace {

struct MigrateOptions {
  std::string control, to, compress = "auto", tls_dir, tls_name, report, verify = "tracked";
  unsigned downtime_ms = 10, channels = 1, max_rounds = 30;
  uint64_t max_bandwidth = 0;
  bool quiet = false;
  bool no_zero_copy = false;
};

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  return fmt::format("{:.1f} {}", bytes, units[u]);
}

// One status line per event: rewritten in place on a terminal, printed once a second
// otherwise (so logs stay readable).
class ProgressPrinter {
 public:
  explicit ProgressPrinter(bool quiet) : quiet_(quiet), tty_(isatty(STDERR_FILENO)) {}
  void operator()(const nlohmann::json& event) {
    if (quiet_ || event.value("event", "") != "progress") {
      return;
    }
    const double elapsed = event.value("elapsed_ns", 0.0) / 1e9;
    if (!tty_ && elapsed - last_printed_ < 1.0) {
      return;
    }
    last_printed_ = elapsed;
    const double eta = event.value("eta_s", -1.0);
    std::string line = fmt::format(
        "{:>8.2f}s  {:<10} round {:<3} remaining {:>10}  rate {:>10}/s  ETA {:>6}  throttle {}%",
        elapsed, event.value("phase", "?"), event.value("round", 0),
        human_bytes(event.value("remaining_bytes", 0.0)),
        human_bytes(event.value("rate_bytes_per_s", 0.0)),
        eta < 0 ? std::string("-") : fmt::format("{:.1f}s", eta),
        event.value("throttle_percent", 0));
    std::fprintf(stderr, tty_ ? "\r%s\033[K" : "%s\n", line.c_str());
    printed_ = true;
  }
  void finish() {
    if (tty_ && printed_) {
      std::fprintf(stderr, "\n");
    }
  }

 private:
  bool quiet_, tty_;
  bool printed_ = false;
  double last_printed_ = -10;
};

int run_migrate(const MigrateOptions& o) {
  nlohmann::json request{{"cmd", "migrate"},
                         {"to", o.to},
                         {"channels", o.channels},
                         {"downtime_ms", o.downtime_ms},
                         {"max_bandwidth", o.max_bandwidth},
                         {"compress", o.compress},
                         {"max_rounds", o.max_rounds},
                         {"verify", o.verify},
                         {"zero_copy", !o.no_zero_copy}};
  if (!o.tls_dir.empty()) {
    request["tls_dir"] = o.tls_dir;
    request["tls_name"] = o.tls_name;
  }
  ProgressPrinter progress(o.quiet);
  // A migration can take long; the VMM streams progress at least every 200 ms.
  auto reply = vmm::control_request(
      o.control, request, [&progress](const nlohmann::json& line) { progress(line); },
      /*timeout_ms=*/120'000);
  progress.finish();
  if (!reply) {
    print_error("migrate", reply.error().message());
    return 1;
  }
  if (reply->contains("report") && !o.report.empty()) {
    std::ofstream out(o.report);
    out << (*reply)["report"].dump(2) << "\n";
    if (!out) {
      print_error("migrate", fmt::format("cannot write report '{}'", o.report));
    }
  }
  if ((*reply)["ok"] != true) {
    print_error("migrate", "migration failed: " + reply->value("error", std::string("?")));
    if (reply->value("guest", "") == "paused-on-source") {
      std::fprintf(stderr,
                   "ferry migrate: the guest is PAUSED on the source and may run on the "
                   "destination; see docs/migration.md before resuming it\n");
    } else {
      std::fprintf(stderr, "ferry migrate: the guest keeps running on the source\n");
    }
    return 1;
  }
  std::printf("%s", migration::render_report_table((*reply)["report"]).c_str());
  return 0;
}

}  // namespace

void add_migrate_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<MigrateOptions>();
  CLI::App* cmd = app.add_subcommand(
      "migrate",
      "Live-migrate the guest of a running VMM to a destination started with\n"
      "`ferry run --incoming tcp:ADDR:PORT`. Until the destination confirms, the guest\n"
      "stays owned by the source: any failure leaves it running there.");
  cmd->add_option("--control", o->control, "Control socket of the source VMM")->required();
  cmd->add_option("--to", o->to, "Destination, tcp:HOST:PORT")->required();
  cmd->add_option("--downtime-ms", o->downtime_ms, "Blackout target in ms (default 10)");
  cmd->add_option("--max-bandwidth", o->max_bandwidth,
                  "Cap on bytes per second over all channels (default 0 = unlimited)");
  cmd->add_option("--channels", o->channels, "Parallel TCP channels (default 1)");
  cmd->add_option("--compress", o->compress, "auto | off | zstd | zstd:LEVEL (default auto)");
  cmd->add_option("--max-rounds", o->max_rounds, "Pre-copy rounds before forcing switchover");
  cmd->add_option("--tls-dir", o->tls_dir, "TLS 1.3 with mutual auth: DIR/ca.pem,cert.pem,key.pem");
  cmd->add_option("--tls-name", o->tls_name, "Name the destination's certificate must carry");
  cmd->add_option("--report", o->report, "Write the JSON migration report here");
  cmd->add_option("--verify", o->verify,
                  "Memory digest checked before the destination may run the guest: tracked "
                  "(hashes kept while sending; default) or full (re-hash all RAM in the "
                  "blackout: slower, also catches a page the dirty log missed)")
      ->check(CLI::IsMember({"tracked", "full"}));
  cmd->add_flag("--quiet", o->quiet, "No progress lines");
  cmd->add_flag("--no-zero-copy", o->no_zero_copy,
                "Plain sends instead of IORING_OP_SEND_ZC for page batches (for comparisons)");
  cmd->callback([o, &exit_code] { exit_code = run_migrate(*o); });
}

}  // namespace ferry::tools
