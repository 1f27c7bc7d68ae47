#include "ferry/agent/fleet_registry.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <random>
#include <thread>

#include <fmt/format.h>

namespace ferry::agent {
namespace {

template <typename T>
std::optional<T> parse_record(const std::string& text,
                              std::optional<T> (*from)(const nlohmann::json&)) {
  try {
    return from(nlohmann::json::parse(text));
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

std::optional<Reservation> reservation_from_json(const nlohmann::json& j) {
  try {
    Reservation r;
    r.dest = j.at("dest").get<std::string>();
    r.guest = j.at("guest").get<std::string>();
    r.source = j.at("source").get<std::string>();
    r.mem_mib = j.at("mem_mib").get<uint64_t>();
    r.vcpus = j.at("vcpus").get<uint32_t>();
    return r;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

std::optional<MigrationRequest> request_from_json(const nlohmann::json& j) {
  try {
    MigrationRequest r;
    r.dest = j.at("dest").get<std::string>();
    r.guest = j.at("guest").get<std::string>();
    r.source = j.at("source").get<std::string>();
    r.mem_mib = j.at("mem_mib").get<uint64_t>();
    r.vcpus = j.at("vcpus").get<uint32_t>();
    return r;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

std::optional<ReceiverStatus> receiver_from_json(const nlohmann::json& j) {
  try {
    ReceiverStatus s;
    s.dest = j.at("dest").get<std::string>();
    s.guest = j.at("guest").get<std::string>();
    s.state = j.at("state").get<std::string>();
    s.listen = j.value("listen", "");
    s.error = j.value("error", "");
    return s;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

}  // namespace

uint64_t HostRecord::mem_used_mib() const {
  uint64_t sum = 0;
  for (const auto& g : guests) {
    sum += g.mem_mib;
  }
  return sum;
}

uint32_t HostRecord::vcpus_used() const {
  uint32_t sum = 0;
  for (const auto& g : guests) {
    sum += g.vcpus;
  }
  return sum;
}

nlohmann::json HostRecord::to_json() const {
  nlohmann::json guest_list = nlohmann::json::array();
  for (const auto& g : guests) {
    guest_list.push_back(
        {{"id", g.id}, {"mem_mib", g.mem_mib}, {"vcpus", g.vcpus}, {"state", g.state}});
  }
  nlohmann::json device_list = nlohmann::json::array();
  for (const auto& d : devices) {
    device_list.push_back({{"device", d.device},
                           {"model", d.model},
                           {"kind", d.kind},
                           {"probability", d.probability},
                           {"score", d.score},
                           {"reasons", d.reasons}});
  }
  return {{"name", name},
          {"address", address},
          {"mem_total_mib", mem_total_mib},
          {"vcpus_total", vcpus_total},
          {"guests", guest_list},
          {"risk", risk},
          {"devices", device_list},
          {"state", state},
          {"updated_unix_ms", updated_unix_ms}};
}

std::optional<HostRecord> HostRecord::from_json(const nlohmann::json& j) {
  try {
    HostRecord r;
    r.name = j.at("name").get<std::string>();
    r.address = j.at("address").get<std::string>();
    r.mem_total_mib = j.at("mem_total_mib").get<uint64_t>();
    r.vcpus_total = j.at("vcpus_total").get<uint32_t>();
    for (const auto& g : j.at("guests")) {
      r.guests.push_back({g.at("id").get<std::string>(), g.at("mem_mib").get<uint64_t>(),
                          g.at("vcpus").get<uint32_t>(), g.value("state", "running")});
    }
    r.risk = j.value("risk", 0.0);
    for (const auto& d : j.value("devices", nlohmann::json::array())) {
      r.devices.push_back({d.value("device", ""), d.value("model", ""), d.value("kind", ""),
                           d.value("probability", 0.0), d.value("score", 0.0),
                           d.value("reasons", std::vector<std::string>{})});
    }
    r.state = j.value("state", kHostHealthy);
    r.updated_unix_ms = j.value("updated_unix_ms", int64_t{0});
    return r;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

EtcdResult<void> FleetRegistry::open_lease(int64_t ttl_seconds) {
  auto lease = etcd_.grant_lease(ttl_seconds);
  if (!lease) {
    return fail(lease.error());
  }
  lease_ = *lease;
  return {};
}

EtcdResult<bool> FleetRegistry::keep_alive() {
  auto ttl = etcd_.keep_alive(lease_);
  if (!ttl) {
    return fail(ttl.error());
  }
  return *ttl > 0;
}

EtcdResult<void> FleetRegistry::close_lease() {
  if (lease_ == 0) {
    return {};
  }
  auto revoked = etcd_.revoke_lease(lease_);
  lease_ = 0;
  return revoked;
}

EtcdResult<void> FleetRegistry::publish(const HostRecord& record) {
  return etcd_.put(std::string(kHostsPrefix) + record.name, record.to_json().dump(), lease_);
}

EtcdResult<std::vector<HostRecord>> FleetRegistry::hosts() {
  auto range = etcd_.get_prefix(kHostsPrefix);
  if (!range) {
    return fail(range.error());
  }
  std::vector<HostRecord> out;
  for (const auto& kv : range->kvs) {
    if (auto record = parse_record<HostRecord>(kv.value, &HostRecord::from_json)) {
      out.push_back(std::move(*record));
    }
  }
  std::sort(out.begin(), out.end(),
            [](const HostRecord& a, const HostRecord& b) { return a.name < b.name; });
  return out;
}

std::vector<predictor::HostCapacity> FleetRegistry::capacities(
    const std::vector<HostRecord>& hosts, const std::vector<Reservation>& reservations) {
  std::map<std::string, std::pair<uint64_t, uint32_t>> reserved;
  for (const auto& r : reservations) {
    reserved[r.dest].first += r.mem_mib;
    reserved[r.dest].second += r.vcpus;
  }
  std::vector<predictor::HostCapacity> out;
  for (const auto& h : hosts) {
    predictor::HostCapacity c;
    c.name = h.name;
    c.risk = h.risk;
    c.at_risk = h.state == kHostAtRisk;
    c.in_service = h.state != kHostOutOfService;
    c.mem_total_mib = h.mem_total_mib;
    c.vcpus_total = h.vcpus_total;
    c.mem_used_mib = h.mem_used_mib() + reserved[h.name].first;
    c.vcpus_used = h.vcpus_used() + reserved[h.name].second;
    c.guests = static_cast<uint32_t>(h.guests.size());
    out.push_back(std::move(c));
  }
  return out;
}

EtcdResult<std::vector<Reservation>> FleetRegistry::reservations() {
  auto range = etcd_.get_prefix(kReservationsPrefix);
  if (!range) {
    return fail(range.error());
  }
  std::vector<Reservation> out;
  for (const auto& kv : range->kvs) {
    if (auto r = parse_record<Reservation>(kv.value, &reservation_from_json)) {
      out.push_back(std::move(*r));
    }
  }
  return out;
}

EtcdResult<bool> FleetRegistry::reserve(const std::string& dest,
                                        const predictor::GuestDemand& guest) {
  const std::string prefix = std::string(kReservationsPrefix) + dest + "/";
  // Optimistic: read, check, write if nothing changed; a lost race is retried after a
  // short random pause so that racing sources spread out.
  std::minstd_rand jitter(static_cast<uint32_t>(std::hash<std::string>{}(self_ + guest.id)));
  for (int attempt = 0; attempt < 16; ++attempt) {
    if (attempt > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2 + jitter() % 20));
    }
    auto held = etcd_.get_prefix(prefix);
    if (!held) {
      return fail(held.error());
    }
    auto host = etcd_.get(std::string(kHostsPrefix) + dest);
    if (!host) {
      return fail(host.error());
    }
    if (!*host) {
      return false;  // the destination left the fleet
    }
    auto record = parse_record<HostRecord>((*host)->value, &HostRecord::from_json);
    if (!record || record->state != kHostHealthy) {
      return false;
    }
    uint64_t mem = record->mem_used_mib();
    uint32_t vcpus = record->vcpus_used();
    for (const auto& kv : held->kvs) {
      if (auto r = parse_record<Reservation>(kv.value, &reservation_from_json)) {
        mem += r->mem_mib;
        vcpus += r->vcpus;
      }
    }
    if (mem + guest.mem_mib > record->mem_total_mib ||
        vcpus + guest.vcpus > record->vcpus_total) {
      return false;
    }
    Reservation mine{dest, guest.id, self_, guest.mem_mib, guest.vcpus};
    nlohmann::json value{{"dest", mine.dest},       {"guest", mine.guest},
                         {"source", mine.source},   {"mem_mib", mine.mem_mib},
                         {"vcpus", mine.vcpus}};
    // Nothing in the destination's reservation range changed since we read it, and the
    // host record is the one we checked against.
    std::vector<EtcdCompare> unchanged{
        {prefix, prefix_end(prefix), EtcdCompare::Target::Mod, EtcdCompare::Op::Less,
         held->revision + 1, {}},
        {std::string(kHostsPrefix) + dest, {}, EtcdCompare::Target::Mod, EtcdCompare::Op::Equal,
         (*host)->mod_revision, {}}};
    auto done = etcd_.txn(unchanged, {{EtcdOp::Kind::Put, prefix + guest.id, value.dump(), lease_}});
    if (!done) {
      return fail(done.error());
    }
    if (*done) {
      return true;
    }
  }
  return false;
}

EtcdResult<void> FleetRegistry::release(const std::string& dest, const std::string& guest) {
  auto removed = etcd_.remove(std::string(kReservationsPrefix) + dest + "/" + guest);
  if (!removed) {
    return fail(removed.error());
  }
  return {};
}

EtcdResult<void> FleetRegistry::request_migration(const MigrationRequest& request) {
  nlohmann::json value{{"dest", request.dest},     {"guest", request.guest},
                       {"source", request.source}, {"mem_mib", request.mem_mib},
                       {"vcpus", request.vcpus}};
  return etcd_.put(std::string(kMigrationsPrefix) + request.dest + "/" + request.guest,
                   value.dump(), lease_);
}

EtcdResult<void> FleetRegistry::withdraw_migration(const std::string& dest,
                                                   const std::string& guest) {
  auto removed = etcd_.remove(std::string(kMigrationsPrefix) + dest + "/" + guest);
  if (!removed) {
    return fail(removed.error());
  }
  return {};
}

EtcdResult<std::vector<MigrationRequest>> FleetRegistry::incoming_requests() {
  auto range = etcd_.get_prefix(std::string(kMigrationsPrefix) + self_ + "/");
  if (!range) {
    return fail(range.error());
  }
  std::vector<MigrationRequest> out;
  for (const auto& kv : range->kvs) {
    if (auto r = parse_record<MigrationRequest>(kv.value, &request_from_json)) {
      out.push_back(std::move(*r));
    }
  }
  return out;
}

EtcdResult<void> FleetRegistry::set_receiver(const ReceiverStatus& status) {
  nlohmann::json value{{"dest", status.dest},     {"guest", status.guest},
                       {"state", status.state},   {"listen", status.listen},
                       {"error", status.error}};
  return etcd_.put(std::string(kReceiversPrefix) + self_ + "/" + status.guest, value.dump(),
                   lease_);
}

EtcdResult<void> FleetRegistry::clear_receiver(const std::string& guest) {
  auto removed = etcd_.remove(std::string(kReceiversPrefix) + self_ + "/" + guest);
  if (!removed) {
    return fail(removed.error());
  }
  return {};
}

EtcdResult<std::optional<ReceiverStatus>> FleetRegistry::receiver(const std::string& dest,
                                                                  const std::string& guest) {
  auto kv = etcd_.get(std::string(kReceiversPrefix) + dest + "/" + guest);
  if (!kv) {
    return fail(kv.error());
  }
  if (!*kv) {
    return std::optional<ReceiverStatus>();
  }
  return parse_record<ReceiverStatus>((*kv)->value, &receiver_from_json);
}

}  // namespace ferry::agent
