// `ferry fleet status`: the fleet as etcd holds it — every registered host with its risk,
// state, capacity and guests, plus the reservations and migrations in flight.
#include <fmt/format.h>

#include "commands.h"
#include "ferry/agent/fleet_registry.h"
#include "vm_session.h"

namespace ferry::tools {
namespace {

struct FleetCli {
  std::string etcd;
  bool json = false;
};

int fleet_status(const FleetCli& c) {
  agent::EtcdClient etcd(c.etcd);
  agent::FleetRegistry registry(etcd, "");
  auto hosts = registry.hosts();
  if (!hosts) {
    print_error("fleet", hosts.error().message());
    return 1;
  }
  auto reservations = registry.reservations();
  if (!reservations) {
    print_error("fleet", reservations.error().message());
    return 1;
  }
  if (c.json) {
    nlohmann::json out{{"hosts", nlohmann::json::array()}, {"reservations", nlohmann::json::array()}};
    for (const auto& h : *hosts) {
      out["hosts"].push_back(h.to_json());
    }
    for (const auto& r : *reservations) {
      out["reservations"].push_back({{"dest", r.dest}, {"guest", r.guest}, {"source", r.source},
                                     {"mem_mib", r.mem_mib}, {"vcpus", r.vcpus}});
    }
    fmt::print("{}\n", out.dump(2));
    return 0;
  }
  fmt::print("{} host(s) registered in etcd {}\n\n", hosts->size(), c.etcd);
  fmt::print("{:<12} {:<16} {:<15} {:>8} {:>13} {:>7}  {}\n", "HOST", "ADDRESS", "STATE", "RISK",
             "MEM MiB", "vCPUs", "GUESTS");
  for (const auto& h : *hosts) {
    std::vector<std::string> guests;
    for (const auto& g : h.guests) {
      guests.push_back(g.state == "running" ? g.id : fmt::format("{} ({})", g.id, g.state));
    }
    fmt::print("{:<12} {:<16} {:<15} {:>8.4f} {:>6}/{:<6} {:>3}/{:<3}  {}\n", h.name, h.address,
               h.state, h.risk, h.mem_used_mib(), h.mem_total_mib, h.vcpus_used(), h.vcpus_total,
               guests.empty() ? "-" : fmt::format("{}", fmt::join(guests, ", ")));
  }
  bool header = false;
  for (const auto& h : *hosts) {
    if (h.devices.empty() || h.devices.front().probability < 0.01) {
      continue;
    }
    if (!header) {
      fmt::print("\nriskiest device per host (p >= 0.01):\n");
      header = true;
    }
    const auto& d = h.devices.front();
    fmt::print("  {:<12} {} {} ({}) p={:.3f}", h.name, d.kind, d.device, d.model, d.probability);
    for (std::size_t i = 0; i < d.reasons.size() && i < 3; ++i) {
      fmt::print("{}{}", i == 0 ? ": " : "; ", d.reasons[i]);
    }
    fmt::print("\n");
  }
  if (!reservations->empty()) {
    fmt::print("\nreservations (migrations in flight):\n");
    for (const auto& r : *reservations) {
      fmt::print("  {} -> {}: {} ({} MiB, {} vCPU)\n", r.source, r.dest, r.guest, r.mem_mib, r.vcpus);
    }
  }
  return 0;
}

}  // namespace

void add_fleet_command(CLI::App& app, int& exit_code) {
  auto c = std::make_shared<FleetCli>();
  CLI::App* fleet = app.add_subcommand("fleet", "Inspect the fleet registered in etcd");
  fleet->require_subcommand(1);
  CLI::App* status = fleet->add_subcommand(
      "status", "Hosts with their risk, state, capacity and guests; migrations in flight");
  status->add_option("--etcd", c->etcd, "etcd client endpoint HOST:PORT")->required();
  status->add_flag("--json", c->json, "Print the raw records as JSON");
  status->callback([c, &exit_code] { exit_code = fleet_status(*c); });
}

}  // namespace ferry::tools
