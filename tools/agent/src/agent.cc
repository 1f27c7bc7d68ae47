#include "ferry/agent/agent.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "ferry/agent/fleet_registry.h"
#include "ferry/agent/timeline.h"
#include "ferry/predictor/risk_model.h"
#include "ferry/vmm/control_server.h"

namespace ferry::agent {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

int64_t unix_ms() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string reasons_text(const std::vector<std::string>& reasons, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < reasons.size() && i < n; ++i) {
    out += (i == 0 ? "" : "; ") + reasons[i];
  }
  return out;
}

// Sleeps up to `d`, waking early when `stop` is set.
void nap(const std::atomic<bool>& stop, milliseconds d) {
  auto until = Clock::now() + d;
  while (!stop.load() && Clock::now() < until) {
    std::this_thread::sleep_for(std::min(milliseconds(50), std::chrono::duration_cast<milliseconds>(
                                                               until - Clock::now())));
  }
}

struct OwnedGuest {
  std::unique_ptr<GuestProcess> process;
  bool migrating = false;
};

struct Receiver {
  std::unique_ptr<GuestProcess> process;
  MigrationRequest request;
  uint16_t port = 0;
  bool running = false;
};

// The figures of a migration report the timeline shows.
std::string report_summary(const nlohmann::json& report) {
  double total_ms = report.value("total_ns", 0.0) / 1e6;
  double blackout_ms = report.value("blackout_ns", 0.0) / 1e6;
  double brownout_ms = 0.0;
  for (const auto& phase : report.value("phases", nlohmann::json::array())) {
    if (phase.value("phase", "") == "brownout") {
      brownout_ms += phase.value("duration_ns", 0.0) / 1e6;
    }
  }
  std::size_t rounds = report.value("rounds", nlohmann::json::array()).size();
  double wire_mib = report.value("wire_bytes", 0.0) / 1048576.0;
  return fmt::format("brownout {:.0f} ms ({} rounds), blackout {:.1f} ms, total {:.0f} ms, "
                     "wire {:.1f} MiB",
                     brownout_ms, rounds, blackout_ms, total_ms, wire_mib);
}

}  // namespace

struct Agent::State {
  explicit State(AgentOptions o)
      : options(std::move(o)),
        etcd(options.etcd),
        registry(etcd, options.name),
        timeline(options.name, options.timeline_path) {}

  AgentOptions options;
  EtcdClient etcd;
  FleetRegistry registry;
  Timeline timeline;
  std::optional<predictor::RiskModel> disk_model, cpu_model;

  std::mutex mutex;  // guards everything below
  std::map<std::string, OwnedGuest> guests;
  std::map<std::string, Receiver> receivers;
  std::string host_state = kHostHealthy;
  double risk = 0.0;
  std::vector<DeviceRisk> devices;
  bool lease_ok = false;
  bool drained_logged = false;

  std::thread evacuation;
  std::atomic<bool> evacuating{false};
  std::atomic<bool> evacuation_done{false};
  uint16_t next_port = 0;

  // ---- setup -----------------------------------------------------------------------
  bool load_models() {
    auto load = [&](const std::string& path, std::optional<predictor::RiskModel>& out) {
      if (path.empty()) {
        return true;
      }
      auto model = predictor::RiskModel::load(path);
      if (!model) {
        std::fprintf(stderr, "ferry agent: model '%s': %s\n", path.c_str(),
                     model.error().message().c_str());
        return false;
      }
      out.emplace(std::move(*model));
      return true;
    };
    return load(options.disk_model, disk_model) && load(options.cpu_model, cpu_model);
  }

  // Guests a previous agent left running here (their control sockets answer): taken over,
  // not booted twice.
  void adopt_guests() {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(options.state_dir, ec)) {
      if (entry.path().extension() != ".sock") {
        continue;
      }
      std::string id = entry.path().stem().string();
      if (!valid_guest_id(id)) {
        continue;
      }
      auto process = GuestProcess::adopt(id, options.state_dir);
      if (!process) {
        continue;  // a stale socket of a guest that ended
      }
      timeline.record("GUEST-ADOPTED",
                      fmt::format("{}: {} MiB, {} vCPU, left running by a previous agent", id,
                                  (*process)->spec().mem_mib, (*process)->spec().vcpus));
      std::lock_guard lock(mutex);
      guests[id] = OwnedGuest{std::move(*process), false};
    }
  }

  bool boot_guests() {
    for (const auto& spec : options.guests) {
      {
        std::lock_guard lock(mutex);
        if (guests.count(spec.id) != 0) {
          continue;  // adopted
        }
      }
      auto process = GuestProcess::boot(options.ferry_binary, spec, options.state_dir);
      if (!process) {
        std::fprintf(stderr, "ferry agent: cannot start guest %s: %s\n", spec.id.c_str(),
                     process.error().message().c_str());
        return false;
      }
      // Owned once its control socket answers: a migration needs it.
      auto until = Clock::now() + std::chrono::seconds(10);
      bool answering = false;
      while (!answering && Clock::now() < until && !(*process)->poll_exit()) {
        auto reply = vmm::control_request((*process)->control_path(), {{"cmd", "status"}}, nullptr,
                                          500);
        answering = reply && reply->value("ok", false);
        if (!answering) {
          std::this_thread::sleep_for(milliseconds(20));
        }
      }
      if (!answering) {
        std::fprintf(stderr, "ferry agent: guest %s did not come up (exit status %d); see %s/%s.log\n",
                     spec.id.c_str(), (*process)->poll_exit().value_or(-1),
                     options.state_dir.c_str(), spec.id.c_str());
        (*process)->kill();
        return false;
      }
      timeline.record("GUEST-STARTED",
                      fmt::format("{}: {} MiB, {} vCPU, pid {}, serial {}", spec.id, spec.mem_mib,
                                  spec.vcpus, (*process)->pid(), (*process)->serial_path()));
      std::lock_guard lock(mutex);
      guests[spec.id] = OwnedGuest{std::move(*process), false};
    }
    return true;
  }

  // ---- registration ------------------------------------------------------------------
  HostRecord record_locked() const {
    HostRecord r;
    r.name = options.name;
    r.address = options.address;
    r.mem_total_mib = options.mem_mib;
    r.vcpus_total = options.vcpus;
    for (const auto& [id, g] : guests) {
      r.guests.push_back({id, g.process->spec().mem_mib, g.process->spec().vcpus,
                          g.migrating ? "migrating" : "running"});
    }
    for (const auto& [id, rc] : receivers) {
      if (!rc.running) {
        // Counted as used while it arrives: the reservation is the source's, this is ours.
        r.guests.push_back({id, rc.request.mem_mib, rc.request.vcpus, "incoming"});
      }
    }
    r.risk = risk;
    r.devices = devices;
    r.state = host_state;
    r.updated_unix_ms = unix_ms();
    return r;
  }

  void keep_registered() {
    if (lease_ok) {
      auto alive = registry.keep_alive();
      if (alive && *alive) {
        return;
      }
      timeline.record("LEASE-LOST", alive ? "lease expired; registering again"
                                          : "etcd unreachable: " + alive.error().message());
      lease_ok = false;
    }
    auto opened = registry.open_lease(options.lease_ttl_s);
    if (!opened) {
      std::fprintf(stderr, "ferry agent: etcd: %s\n", opened.error().message().c_str());
      return;
    }
    lease_ok = true;
  }

  void publish() {
    if (!lease_ok) {
      return;
    }
    HostRecord record;
    {
      std::lock_guard lock(mutex);
      record = record_locked();
    }
    if (auto done = registry.publish(record); !done) {
      std::fprintf(stderr, "ferry agent: publish: %s\n", done.error().message().c_str());
    }
  }

  // ---- telemetry and risk ------------------------------------------------------------
  void score_telemetry() {
    std::vector<predictor::DeviceTelemetryHistory> disks, cpus;
    for (auto& feed : options.feeds) {
      auto history = feed->next();
      (history.kind == predictor::DeviceKind::Disk ? disks : cpus).push_back(std::move(history));
    }
    std::vector<DeviceRisk> scored;
    auto score = [&](const std::optional<predictor::RiskModel>& model,
                     const std::vector<predictor::DeviceTelemetryHistory>& histories,
                     const char* kind) {
      if (!model || histories.empty()) {
        return;
      }
      auto scores = model->score(histories);
      if (!scores) {
        std::fprintf(stderr, "ferry agent: scoring %s telemetry: %s\n", kind,
                     scores.error().message().c_str());
        return;
      }
      for (const auto& s : *scores) {
        DeviceRisk d{s.device_id, s.model, kind, s.probability, s.score, {}};
        for (const auto& f : s.top_features) {
          d.reasons.push_back(fmt::format("{} = {:.4g} ({:+.3f})", f.feature, f.value,
                                          f.contribution));
        }
        scored.push_back(std::move(d));
      }
    };
    score(disk_model, disks, "disk");
    score(cpu_model, cpus, "cpu");
    std::sort(scored.begin(), scored.end(),
              [](const DeviceRisk& a, const DeviceRisk& b) { return a.probability > b.probability; });
    double survive = 1.0;
    for (const auto& d : scored) {
      survive *= 1.0 - std::clamp(d.probability, 0.0, 1.0);
    }
    std::lock_guard lock(mutex);
    devices = std::move(scored);
    risk = 1.0 - survive;
  }

  // The same top-N decision every agent runs on the risks the fleet published.
  void decide(const std::vector<HostRecord>& fleet) {
    std::vector<predictor::RiskScore> scores;
    std::map<std::string, uint32_t> guests_per_host;
    for (const auto& host : fleet) {
      guests_per_host[host.name] = static_cast<uint32_t>(host.guests.size());
      if (host.state == kHostOutOfService) {
        continue;
      }
      for (const auto& d : host.devices) {
        predictor::RiskScore s;
        s.device_id = d.device;
        s.host = host.name;
        s.model = d.model;
        s.score = static_cast<float>(d.score);
        s.probability = d.probability;
        scores.push_back(std::move(s));
      }
    }
    auto plan = predictor::choose_evacuations(scores, guests_per_host, options.costs);
    auto me = std::find_if(plan.evacuate.begin(), plan.evacuate.end(),
                           [&](const auto& d) { return d.host == options.name; });
    if (me == plan.evacuate.end()) {
      return;
    }
    std::string why;
    {
      std::lock_guard lock(mutex);
      if (host_state != kHostHealthy) {
        return;
      }
      host_state = kHostAtRisk;
      if (!devices.empty()) {
        why = fmt::format("riskiest {} {} ({}) p={:.3f}: {}", devices.front().kind,
                          devices.front().device, devices.front().model,
                          devices.front().probability, reasons_text(devices.front().reasons, 3));
      }
    }
    std::size_t rank = static_cast<std::size_t>(me - plan.evacuate.begin()) + 1;
    timeline.record("PREDICTED",
                    fmt::format("host at risk: P(fail within horizon) {:.3f}, top-N rank {} of {} "
                                "chosen ({} hosts scored), expected benefit {:.1f} vs cost {:.1f}; {}",
                                me->failure_probability, rank, plan.evacuate.size(),
                                guests_per_host.size(), me->expected_benefit, me->cost, why));
  }

  // ---- receiving guests --------------------------------------------------------------
  uint16_t pick_port_locked() {
    const uint32_t span = static_cast<uint32_t>(options.port_last - options.port_first) + 1;
    for (uint32_t i = 0; i < span; ++i) {
      uint16_t port = static_cast<uint16_t>(options.port_first + (next_port + i) % span);
      bool used = std::any_of(receivers.begin(), receivers.end(),
                              [&](const auto& kv) { return kv.second.port == port; });
      if (!used) {
        next_port = static_cast<uint16_t>((next_port + i + 1) % span);
        return port;
      }
    }
    return 0;
  }

  void serve_incoming() {
    auto requests = registry.incoming_requests();
    if (!requests) {
      return;
    }
    std::set<std::string> requested;
    for (const auto& request : *requests) {
      requested.insert(request.guest);
      std::unique_lock lock(mutex);
      if (receivers.count(request.guest) != 0 || guests.count(request.guest) != 0) {
        continue;
      }
      if (!valid_guest_id(request.guest) || host_state != kHostHealthy) {
        lock.unlock();
        registry.set_receiver({options.name, request.guest, "failed", "",
                               host_state != kHostHealthy ? "host is " + host_state
                                                          : "invalid guest id"});
        continue;
      }
      uint16_t port = pick_port_locked();
      std::string listen = fmt::format("tcp:{}:{}", options.address, port);
      GuestSpec spec{request.guest, request.mem_mib, request.vcpus, "", ""};
      std::vector<std::string> extra;
      if (!options.migration.tls_dir.empty()) {
        extra.insert(extra.end(), {"--tls-dir", options.migration.tls_dir});
        if (!options.migration.tls_name.empty()) {
          extra.insert(extra.end(), {"--tls-name", options.migration.tls_name});
        }
      }
      auto process = port == 0 ? Result<std::unique_ptr<GuestProcess>, ProcessError>(
                                     fail(ProcessError{"no free port in the receiver range"}))
                               : GuestProcess::receive(options.ferry_binary, spec, listen,
                                                       options.state_dir, extra);
      if (!process) {
        lock.unlock();
        registry.set_receiver({options.name, request.guest, "failed", "", process.error().detail});
        timeline.record("RECEIVE-FAILED", fmt::format("{} from {}: {}", request.guest,
                                                      request.source, process.error().detail));
        continue;
      }
      receivers[request.guest] = Receiver{std::move(*process), request, port, false};
      lock.unlock();
      // The receiver needs a moment to bind; the source retries its connection anyway.
      registry.set_receiver({options.name, request.guest, "listening", listen, ""});
      timeline.record("RECEIVING", fmt::format("{} from {} ({} MiB, {} vCPU) on {}",
                                               request.guest, request.source, request.mem_mib,
                                               request.vcpus, listen));
    }

    // Progress of every receiver: running (adopt), exited (failed), or abandoned.
    std::vector<std::string> finished;
    std::lock_guard lock(mutex);
    for (auto& [id, rc] : receivers) {
      if (auto status = rc.process->poll_exit()) {
        registry.set_receiver({options.name, id, "failed", "",
                               fmt::format("receiver exited with status {}", *status)});
        timeline.record("RECEIVE-FAILED",
                        fmt::format("{} from {}: receiver exited with status {} (see {}/{}.log)",
                                    id, rc.request.source, *status, options.state_dir, id));
        finished.push_back(id);
        continue;
      }
      if (!rc.running) {
        auto reply = vmm::control_request(rc.process->control_path(), {{"cmd", "status"}},
                                          nullptr, 300);
        if (reply && reply->value("ok", false)) {
          rc.running = true;
          registry.set_receiver({options.name, id, "running", "", ""});
          timeline.record("RECEIVED", fmt::format("{} from {}: guest runs here (pid {})", id,
                                                  rc.request.source, rc.process->pid()));
          guests[id] = OwnedGuest{std::move(rc.process), false};
          finished.push_back(id);
          continue;
        }
        if (requested.count(id) == 0) {
          // The source withdrew (or died) before the guest arrived.
          rc.process->kill();
          registry.clear_receiver(id);
          timeline.record("RECEIVE-FAILED",
                          fmt::format("{}: the source withdrew its request; receiver stopped", id));
          finished.push_back(id);
        }
      }
    }
    for (const auto& id : finished) {
      receivers.erase(id);
    }
  }

  // ---- owned guests ------------------------------------------------------------------
  void reap_guests() {
    std::lock_guard lock(mutex);
    for (auto it = guests.begin(); it != guests.end();) {
      if (it->second.migrating) {
        ++it;  // the evacuation decides what its exit means
        continue;
      }
      if (auto status = it->second.process->poll_exit()) {
        timeline.record("GUEST-EXITED",
                        fmt::format("{}: VMM exited with status {} (serial {})", it->first,
                                    *status, it->second.process->serial_path()));
        registry.clear_receiver(it->first);
        it = guests.erase(it);
      } else {
        ++it;
      }
    }
  }

  // ---- evacuation --------------------------------------------------------------------
  enum class MoveOutcome { Moved, Failed, NoDestination, GuestGone };

  MoveOutcome migrate_guest(const std::string& id, std::set<std::string>& excluded,
                            const std::atomic<bool>& stop) {
    predictor::GuestDemand demand;
    std::string control;
    {
      std::lock_guard lock(mutex);
      auto it = guests.find(id);
      if (it == guests.end()) {
        return MoveOutcome::GuestGone;
      }
      demand = {id, it->second.process->spec().mem_mib, it->second.process->spec().vcpus};
      control = it->second.process->control_path();
    }
    auto fleet = registry.hosts();
    auto held = registry.reservations();
    if (!fleet || !held) {
      timeline.record("MIGRATION-FAILED",
                      fmt::format("{}: cannot read the fleet from etcd: {}", id,
                                  !fleet ? fleet.error().message() : held.error().message()));
      return MoveOutcome::Failed;
    }
    auto candidates = predictor::rank_destinations(FleetRegistry::capacities(*fleet, *held),
                                                   demand, options.name, excluded,
                                                   options.placement);
    std::string dest;
    for (const auto& c : candidates) {
      auto reserved = registry.reserve(c, demand);
      if (reserved && *reserved) {
        dest = c;
        break;
      }
    }
    if (dest.empty()) {
      return MoveOutcome::NoDestination;
    }
    registry.request_migration({dest, id, options.name, demand.mem_mib, demand.vcpus});
    timeline.record("MIGRATION-STARTED",
                    fmt::format("{} -> {} ({} MiB, {} vCPU; {} candidate(s): {})", id, dest,
                                demand.mem_mib, demand.vcpus, candidates.size(),
                                fmt::join(candidates, ", ")));
    auto cleanup = [&] {
      registry.withdraw_migration(dest, id);
      registry.release(dest, id);
    };
    auto give_up = [&](const std::string& why) {
      cleanup();
      excluded.insert(dest);
      timeline.record("MIGRATION-FAILED",
                      fmt::format("{} -> {}: {}; the guest keeps running on {}", id, dest, why,
                                  options.name));
      return MoveOutcome::Failed;
    };

    // Wait for the destination's receiver.
    std::string listen;
    auto deadline = Clock::now() + options.migration.receiver_timeout;
    while (Clock::now() < deadline && !stop.load()) {
      auto status = registry.receiver(dest, id);
      if (status && *status) {
        if ((*status)->state == "listening") {
          listen = (*status)->listen;
          break;
        }
        if ((*status)->state == "failed") {
          return give_up("destination could not receive: " + (*status)->error);
        }
      }
      nap(stop, milliseconds(100));
    }
    if (listen.empty()) {
      return give_up(fmt::format("destination did not start a receiver within {} s",
                                 options.migration.receiver_timeout.count()));
    }

    {
      std::lock_guard lock(mutex);
      guests[id].migrating = true;
    }
    publish();
    nlohmann::json request{{"cmd", "migrate"},
                           {"to", listen},
                           {"channels", options.migration.channels},
                           {"downtime_ms", options.migration.downtime_ms},
                           {"verify", options.migration.verify}};
    if (!options.migration.tls_dir.empty()) {
      request["tls_dir"] = options.migration.tls_dir;
      request["tls_name"] = options.migration.tls_name;
    }
    // The receiver may still be binding: a refused connection is retried a few times.
    Result<nlohmann::json, vmm::VmmError> reply = fail(vmm::VmmError{});
    for (int attempt = 0; attempt < 10; ++attempt) {
      reply = vmm::control_request(control, request, nullptr,
                                   static_cast<int>(options.migration.timeout.count() * 1000));
      bool refused = reply && !reply->value("ok", false) &&
                     reply->value("error", "").find("refused") != std::string::npos &&
                     reply->value("guest", "") != "paused-on-source";
      if (!refused) {
        break;
      }
      nap(stop, milliseconds(200));
    }
    auto finish_move = [&](const nlohmann::json& report, const char* how) {
      {
        std::lock_guard lock(mutex);
        auto it = guests.find(id);
        if (it != guests.end()) {
          it->second.process->poll_exit();
          guests.erase(it);
        }
      }
      cleanup();
      timeline.record("MIGRATED", fmt::format("{} -> {}: {}{}", id, dest, report_summary(report), how));
      publish();
      return MoveOutcome::Moved;
    };
    auto back_to_running = [&] {
      std::lock_guard lock(mutex);
      if (auto it = guests.find(id); it != guests.end()) {
        it->second.migrating = false;
      }
    };
    if (!reply) {
      back_to_running();
      return give_up("control socket: " + reply.error().message());
    }
    if (reply->value("ok", false)) {
      return finish_move(reply->value("report", nlohmann::json::object()), "");
    }
    std::string error = reply->value("error", std::string("unknown error"));
    if (reply->value("guest", "") == "paused-on-source") {
      // The commit's answer was lost: the destination knows whether it runs the guest.
      timeline.record("MIGRATION-IN-DOUBT",
                      fmt::format("{} -> {}: {}; guest paused here, asking {}", id, dest, error,
                                  dest));
      auto until = Clock::now() + std::chrono::seconds(options.lease_ttl_s * 2 + 10);
      while (Clock::now() < until) {
        auto status = registry.receiver(dest, id);
        if (status && *status && (*status)->state == "running") {
          vmm::control_request(control, {{"cmd", "quit"}}, nullptr, 2000);
          return finish_move(reply->value("report", nlohmann::json::object()),
                             " (commit confirmed by the destination)");
        }
        if (status && (!*status || (*status)->state == "failed")) {
          break;  // the destination does not run it (failed, or gone with its lease)
        }
        nap(stop, milliseconds(200));
      }
      auto resumed = vmm::control_request(control, {{"cmd", "resume"}}, nullptr, 5000);
      back_to_running();
      return give_up(fmt::format("{}; destination does not run it, resumed here ({})", error,
                                 resumed && resumed->value("ok", false) ? "ok" : "resume failed"));
    }
    back_to_running();
    return give_up(error);
  }

  void evacuate(const std::atomic<bool>& stop) {
    std::vector<std::string> order;
    {
      std::lock_guard lock(mutex);
      for (const auto& [id, g] : guests) {
        order.push_back(id);
      }
      // Largest first: they are the hardest to place.
      std::sort(order.begin(), order.end(), [&](const auto& a, const auto& b) {
        return guests[a].process->spec().mem_mib > guests[b].process->spec().mem_mib;
      });
    }
    timeline.record("EVACUATION-STARTED",
                    fmt::format("{} guest(s): {}; up to {} at a time", order.size(),
                                fmt::join(order, ", "), options.max_parallel_migrations));
    std::mutex queue_mutex;
    std::size_t next = 0;
    std::map<std::string, std::set<std::string>> excluded;
    std::set<std::string> no_destination_logged;
    std::atomic<std::size_t> moved{0}, gone{0};
    auto worker = [&] {
      while (!stop.load()) {
        std::string id;
        {
          std::lock_guard lock(queue_mutex);
          if (next >= order.size()) {
            return;
          }
          id = order[next++];
        }
        std::size_t attempts = 0;
        while (!stop.load()) {
          std::set<std::string> tried;
          {
            std::lock_guard lock(queue_mutex);
            tried = excluded[id];
          }
          auto outcome = migrate_guest(id, tried, stop);
          {
            std::lock_guard lock(queue_mutex);
            excluded[id] = tried;
          }
          if (outcome == MoveOutcome::Moved || outcome == MoveOutcome::GuestGone) {
            (outcome == MoveOutcome::Moved ? moved : gone) += 1;
            break;
          }
          if (outcome == MoveOutcome::NoDestination) {
            std::lock_guard lock(queue_mutex);
            if (no_destination_logged.insert(id).second) {
              timeline.record("NO-DESTINATION",
                              fmt::format("{}: no healthy host has room now; it stays on {} and "
                                          "is retried every poll", id, options.name));
            }
            // Hosts excluded earlier may be healthy again later.
            excluded[id].clear();
          } else if (++attempts >= options.max_attempts_per_guest) {
            std::lock_guard lock(queue_mutex);
            excluded[id].clear();
            attempts = 0;
          }
          nap(stop, options.poll);
        }
      }
    };
    std::vector<std::thread> workers;
    for (std::size_t i = 0; i < std::max<std::size_t>(1, options.max_parallel_migrations); ++i) {
      workers.emplace_back(worker);
    }
    for (auto& w : workers) {
      w.join();
    }
    {
      std::lock_guard lock(mutex);
      bool empty = std::none_of(guests.begin(), guests.end(),
                                [](const auto& kv) { return !kv.second.migrating; });
      if (empty && !stop.load()) {
        host_state = kHostOutOfService;
        timeline.record("HOST-DRAINED",
                        fmt::format("{} guest(s) evacuated, {} ended on their own; host marked {}",
                                    moved.load(), gone.load(), kHostOutOfService));
      }
    }
    publish();
    evacuation_done = true;
  }

  void stop_guests() {
    std::lock_guard lock(mutex);
    for (auto& [id, g] : guests) {
      vmm::control_request(g.process->control_path(), {{"cmd", "quit"}}, nullptr, 2000);
    }
    for (auto& [id, g] : guests) {
      auto until = Clock::now() + std::chrono::seconds(3);
      while (!g.process->poll_exit() && Clock::now() < until) {
        std::this_thread::sleep_for(milliseconds(20));
      }
      g.process->kill();
    }
    for (auto& [id, rc] : receivers) {
      rc.process->kill();
    }
  }
};

Agent::Agent(AgentOptions options) : state_(std::make_unique<State>(std::move(options))) {}

Agent::~Agent() {
  if (state_->evacuation.joinable()) {
    state_->evacuation.join();
  }
}

int Agent::run(const std::atomic<bool>& stop) {
  State& s = *state_;
  std::string why;
  if (!s.timeline.ok(&why)) {
    std::fprintf(stderr, "ferry agent: %s\n", why.c_str());
    return 1;
  }
  std::error_code ec;
  std::filesystem::create_directories(s.options.state_dir, ec);
  if (ec) {
    std::fprintf(stderr, "ferry agent: state dir '%s': %s\n", s.options.state_dir.c_str(),
                 ec.message().c_str());
    return 1;
  }
  if (!s.load_models()) {
    return 1;
  }
  s.keep_registered();
  if (!s.lease_ok) {
    std::fprintf(stderr, "ferry agent: cannot register in etcd at %s\n", s.options.etcd.c_str());
    return 1;
  }
  std::vector<std::string> feeds;
  for (const auto& f : s.options.feeds) {
    feeds.push_back(f->describe());
  }
  s.timeline.record("STARTED",
                    fmt::format("etcd {}, address {}, capacity {} MiB / {} vCPU, poll {} ms, "
                                "lease {} s, telemetry: {}",
                                s.options.etcd, s.options.address, s.options.mem_mib,
                                s.options.vcpus, s.options.poll.count(), s.options.lease_ttl_s,
                                feeds.empty() ? std::string("none") : fmt::format("{}", fmt::join(feeds, "; "))));
  s.adopt_guests();
  if (!s.boot_guests()) {
    s.stop_guests();
    (void)s.registry.close_lease();
    return 1;
  }

  int status = 0;
  while (!stop.load()) {
    auto poll_start = Clock::now();
    s.keep_registered();
    s.reap_guests();
    s.score_telemetry();
    s.publish();
    if (s.lease_ok) {
      s.serve_incoming();
      if (!s.evacuating.load()) {
        if (auto fleet = s.registry.hosts()) {
          s.decide(*fleet);
        }
        bool at_risk;
        {
          std::lock_guard lock(s.mutex);
          at_risk = s.host_state == kHostAtRisk;
        }
        if (at_risk) {
          s.evacuating = true;
          s.evacuation = std::thread([&s, &stop] { s.evacuate(stop); });
        }
      }
      s.publish();
    }
    if (s.evacuation_done.load() && s.options.exit_when_drained) {
      break;
    }
    if (s.options.exit_when_idle) {
      std::lock_guard lock(s.mutex);
      if (s.guests.empty() && s.receivers.empty()) {
        break;
      }
    }
    nap(stop, s.options.poll - std::chrono::duration_cast<milliseconds>(Clock::now() - poll_start));
  }
  if (s.evacuation.joinable()) {
    s.evacuation.join();
  }
  if (s.options.stop_guests_on_exit) {
    s.stop_guests();
  }
  s.timeline.record("STOPPED", stop.load() ? "signal" : "done");
  (void)s.registry.close_lease();
  return status;
}

}  // namespace ferry::agent
