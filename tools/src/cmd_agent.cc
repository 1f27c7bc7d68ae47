// `ferry agent`: the per-host agent (tools/agent/): owns this host's guests, publishes the
// host in etcd, scores its telemetry and evacuates its guests when the fleet's top-N
// decision marks it. See docs/fleet.md.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <climits>

#include <fmt/format.h>

#include "commands.h"
#include "ferry/agent/agent.h"
#include "vm_session.h"

namespace ferry::tools {
namespace {

std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop = true; }

struct AgentCli {
  agent::AgentOptions options;
  std::vector<std::string> guests;
  std::string guest_kernel;
  std::vector<std::string> replay_disks;
  std::string replay_from;
  std::size_t replay_step = 1;
  std::size_t replay_lead = 10;
  std::string data_dir;
  std::size_t max_days = 0;
  std::string cpu_anomaly;
  uint64_t cpu_seed = 1;
  bool live_cpu = false;
  std::string ports = "7100-7199";
  uint32_t poll_ms = 5000;
  uint32_t migration_timeout_s = 120;
  uint32_t receiver_timeout_s = 20;
};

std::string self_executable() {
  char path[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) {
    return "ferry";
  }
  path[n] = '\0';
  return path;
}

std::string default_host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') {
    return "host";
  }
  return name;
}

bool build_feeds(AgentCli& c) {
  for (const auto& serial : c.replay_disks) {
    auto drive = agent::load_backblaze_drive(c.data_dir, serial, c.max_days);
    if (!drive) {
      print_error("agent", "--replay-disk: " + drive.error());
      return false;
    }
    const auto& samples = drive->history.samples;
    std::size_t start = samples.size() > c.replay_lead ? samples.size() - 1 - c.replay_lead : 0;
    if (!c.replay_from.empty()) {
      auto day = predictor::parse_iso_date(c.replay_from);
      if (!day) {
        print_error("agent", fmt::format("--replay-from '{}' is not YYYY-MM-DD", c.replay_from));
        return false;
      }
      start = 0;
      while (start + 1 < samples.size() && samples[start].day < *day) {
        ++start;
      }
    }
    c.options.feeds.push_back(
        agent::replay_feed(std::move(*drive), c.options.name, start, c.replay_step));
  }
  if (!c.cpu_anomaly.empty()) {
    auto cpu = agent::synthetic_cpu_anomaly(c.cpu_anomaly, c.cpu_seed);
    if (!cpu) {
      print_error("agent", "--inject-cpu-anomaly: " + cpu.error());
      return false;
    }
    std::size_t n = cpu->history.samples.size();
    std::size_t start = n > c.replay_lead ? n - 1 - c.replay_lead : 0;
    c.options.feeds.push_back(agent::replay_feed(std::move(*cpu), c.options.name, start, c.replay_step));
  }
  if (c.live_cpu) {
    c.options.feeds.push_back(agent::live_cpu_feed(c.options.name));
  }
  bool has_disk = !c.replay_disks.empty();
  bool has_cpu = !c.cpu_anomaly.empty() || c.live_cpu;
  if (has_disk && c.options.disk_model.empty()) {
    print_error("agent", "disk telemetry needs --model (a disk model from `ferry model train`)");
    return false;
  }
  if (has_cpu && c.options.cpu_model.empty()) {
    print_error("agent", "CPU telemetry needs --cpu-model (from `ferry model train --cpu-synth`)");
    return false;
  }
  return true;
}

int run_agent(AgentCli& c) {
  auto& o = c.options;
  if (o.name.empty()) {
    o.name = default_host_name();
  }
  if (!agent::valid_guest_id(o.name)) {
    print_error("agent", fmt::format("bad --name '{}': use 1-64 of [A-Za-z0-9_.-]", o.name));
    return 2;
  }
  if (o.state_dir.empty()) {
    o.state_dir = "/run/ferry/agent-" + o.name;
  }
  unsigned first = 0, last = 0;
  if (std::sscanf(c.ports.c_str(), "%u-%u", &first, &last) != 2 || first == 0 || last < first ||
      last > 65535) {
    print_error("agent", fmt::format("bad --ports '{}': expected FIRST-LAST, e.g. 7100-7199", c.ports));
    return 2;
  }
  o.port_first = static_cast<uint16_t>(first);
  o.port_last = static_cast<uint16_t>(last);
  o.poll = std::chrono::milliseconds(c.poll_ms);
  o.migration.timeout = std::chrono::seconds(c.migration_timeout_s);
  o.migration.receiver_timeout = std::chrono::seconds(c.receiver_timeout_s);
  o.ferry_binary = self_executable();
  for (const auto& text : c.guests) {
    auto spec = agent::GuestSpec::parse(text);
    if (!spec) {
      print_error("agent", spec.error());
      return 2;
    }
    if (c.guest_kernel.empty()) {
      print_error("agent", "--guest needs --guest-kernel (the image to boot)");
      return 2;
    }
    spec->kernel = c.guest_kernel;
    o.guests.push_back(std::move(*spec));
  }
  if (!build_feeds(c)) {
    return 2;
  }
  struct sigaction action {};
  action.sa_handler = on_signal;
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
  agent::Agent agent(std::move(o));
  return agent.run(g_stop);
}

}  // namespace

void add_agent_command(CLI::App& app, int& exit_code) {
  auto c = std::make_shared<AgentCli>();
  auto& o = c->options;
  o.placement.risk_step = 0.005;
  CLI::App* cmd = app.add_subcommand(
      "agent",
      "Run this host's agent: own its guests, register it in etcd, score its telemetry,\n"
      "and evacuate its guests by live migration when the fleet's top-N decision marks it.\n"
      "Fault injection (--replay-disk, --inject-cpu-anomaly) is for tests and demos only.");
  cmd->add_option("--name", o.name, "Host name in the fleet (default: hostname)");
  cmd->add_option("--etcd", o.etcd, "etcd client endpoint HOST:PORT")->required();
  cmd->add_option("--address", o.address, "IP address where this host receives migrations")
      ->required();
  cmd->add_option("--state-dir", o.state_dir,
                  "Control sockets and serial logs (default /run/ferry/agent-NAME)");
  cmd->add_option("--mem", o.mem_mib, "Guest memory this host offers, MiB")->capture_default_str();
  cmd->add_option("--cpus", o.vcpus, "vCPUs this host offers")->capture_default_str();
  cmd->add_option("--poll-ms", c->poll_ms, "Telemetry and fleet poll interval")->capture_default_str();
  cmd->add_option("--lease-ttl", o.lease_ttl_s, "etcd lease TTL, seconds")->capture_default_str();
  cmd->add_option("--model", o.disk_model, "Disk risk model (from `ferry model train`)");
  cmd->add_option("--cpu-model", o.cpu_model, "CPU risk model (`ferry model train --cpu-synth`)");
  cmd->add_flag("--live-cpu", c->live_cpu, "Score this host's live CPU telemetry (needs --cpu-model)");
  cmd->add_option("--guest", c->guests,
                  "Boot a guest: ID:MEM_MIB:VCPUS[:CMDLINE] (repeatable)");
  cmd->add_option("--guest-kernel", c->guest_kernel, "Image the --guest entries boot");
  cmd->add_option("--replay-disk", c->replay_disks,
                  "INJECTION: replay this Backblaze drive's recorded SMART history as one of "
                  "this host's disks, one day per poll (repeatable)");
  cmd->add_option("--replay-from", c->replay_from, "First day replayed (YYYY-MM-DD)");
  cmd->add_option("--replay-lead", c->replay_lead,
                  "Without --replay-from: start this many samples before the history's end")
      ->capture_default_str();
  cmd->add_option("--replay-step", c->replay_step, "Samples revealed per poll")->capture_default_str();
  cmd->add_option("--data", c->data_dir, "Backblaze data dir (default: $FERRY_DATA_DIR, ../shared/data)");
  cmd->add_option("--max-days", c->max_days, "Load only the first N day files");
  cmd->add_option("--inject-cpu-anomaly", c->cpu_anomaly,
                  "INJECTION: replay a synthetic CPU that develops this anomaly "
                  "(sustained_drop, oscillation, single_core_throttle)");
  cmd->add_option("--cpu-seed", c->cpu_seed, "Seed of the synthetic CPU generator")->capture_default_str();
  cmd->add_option("--ports", c->ports, "Port range for migration receivers")->capture_default_str();
  cmd->add_option("--max-parallel", o.max_parallel_migrations,
                  "Concurrent outgoing migrations during an evacuation")->capture_default_str();
  cmd->add_option("--interruption-cost", o.costs.interruption_cost,
                  "Cost of a guest hit by a host failure")->capture_default_str();
  cmd->add_option("--migration-cost", o.costs.migration_cost, "Cost of one live migration")
      ->capture_default_str();
  cmd->add_option("--max-hosts", o.costs.max_hosts,
                  "Hosts the fleet evacuates at once (0 = unlimited)");
  cmd->add_option("--max-dest-risk", o.placement.max_destination_risk,
                  "Never migrate to a host riskier than this")->capture_default_str();
  cmd->add_option("--risk-step", o.placement.risk_step,
                  "Destinations whose risks differ by less than this count as equally safe "
                  "(then the emptier one wins, spreading load)")->capture_default_str();
  cmd->add_option("--headroom", o.placement.headroom_fraction,
                  "Share of a destination's memory kept free")->capture_default_str();
  cmd->add_option("--downtime-ms", o.migration.downtime_ms, "Migration downtime target")
      ->capture_default_str();
  cmd->add_option("--channels", o.migration.channels, "Migration channels")->capture_default_str();
  cmd->add_option("--verify", o.migration.verify, "Migration digest: tracked | full")
      ->check(CLI::IsMember({"tracked", "full"}))->capture_default_str();
  cmd->add_option("--migration-timeout", c->migration_timeout_s, "One migration, seconds")
      ->capture_default_str();
  cmd->add_option("--receiver-timeout", c->receiver_timeout_s,
                  "Seconds a destination has to start listening")->capture_default_str();
  cmd->add_option("--tls-dir", o.migration.tls_dir, "TLS for migrations (ca.pem, cert.pem, key.pem)");
  cmd->add_option("--tls-name", o.migration.tls_name, "Expected peer certificate name");
  cmd->add_option("--timeline", o.timeline_path, "Append the evacuation timeline to this file");
  cmd->add_flag("--stop-guests-on-exit", o.stop_guests_on_exit,
                "Quit this host's guests when the agent stops");
  cmd->add_flag("--exit-when-drained", o.exit_when_drained, "Exit once every guest left");
  cmd->add_flag("--exit-when-idle", o.exit_when_idle,
                "Exit once no guest runs here and none is arriving");
  cmd->callback([c, &exit_code] { exit_code = run_agent(*c); });
}

}  // namespace ferry::tools
