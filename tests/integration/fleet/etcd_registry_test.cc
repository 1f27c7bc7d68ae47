// The etcd client and the fleet registry against a real etcd (Debian's etcd-server) on
// loopback, started and stopped by PID here: keys, prefixes, transactions, leases that
// expire, and capacity reservations that race.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <signal.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include <fmt/format.h>

#include "ferry/agent/fleet_registry.h"
#include "fleet_harness.h"
#include "test_env.h"

namespace ferry::testing {
namespace {

using namespace std::chrono_literals;
using agent::EtcdClient;
using agent::FleetRegistry;
using agent::HostRecord;

uint16_t unused_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

class EtcdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (run_command({"etcd", "--version"}, 5s).exit_code != 0) {
      GTEST_SKIP() << "SKIPPED: etcd is missing (Debian package etcd-server)";
    }
    dir_ = make_temp_dir("ferry-etcd");
    const uint16_t client = unused_port(), peer = unused_port();
    endpoint_ = fmt::format("127.0.0.1:{}", client);
    const std::string peer_url = fmt::format("http://127.0.0.1:{}", peer);
    etcd_ = std::make_unique<Subprocess>(std::vector<std::string>{
        "etcd", "--name", "t", "--data-dir", dir_ + "/data", "--listen-client-urls",
        "http://" + endpoint_, "--advertise-client-urls", "http://" + endpoint_,
        "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
        "--initial-cluster", "t=" + peer_url});
    ASSERT_TRUE(etcd_->wait_for_output("ready to serve client requests", 15s, true))
        << etcd_->err();
  }
  void TearDown() override {
    etcd_.reset();  // SIGKILL by PID, then reaped
    std::filesystem::remove_all(dir_);
  }

  HostRecord host(const std::string& name, uint64_t mem) {
    HostRecord r;
    r.name = name;
    r.address = "10.0.0.1";
    r.mem_total_mib = mem;
    r.vcpus_total = 16;
    return r;
  }

  std::string dir_, endpoint_;
  std::unique_ptr<Subprocess> etcd_;
};

TEST_F(EtcdTest, KeysRoundTripIncludingBinaryBytes) {
  EtcdClient etcd(endpoint_);
  constexpr char kBytes[] = "bin\0\xff\x01 value";  // an embedded NUL and a non-UTF-8 byte
  const std::string value(kBytes, sizeof kBytes - 1);
  ASSERT_TRUE(etcd.put("/t/a", value));
  ASSERT_TRUE(etcd.put("/t/b", "2"));
  ASSERT_TRUE(etcd.put("/u/c", "3"));
  auto a = etcd.get("/t/a");
  ASSERT_TRUE(a) << a.error().message();
  ASSERT_TRUE(a->has_value());
  EXPECT_EQ((*a)->value, value);
  EXPECT_GT((*a)->mod_revision, 0);
  auto range = etcd.get_prefix("/t/");
  ASSERT_TRUE(range);
  ASSERT_EQ(range->kvs.size(), 2u);
  EXPECT_EQ(range->kvs[1].key, "/t/b");
  EXPECT_GE(range->revision, range->kvs[1].mod_revision);
  auto removed = etcd.remove("/t/a");
  ASSERT_TRUE(removed);
  EXPECT_EQ(*removed, 1);
  auto gone = etcd.get("/t/a");
  ASSERT_TRUE(gone);
  EXPECT_FALSE(gone->has_value());
}

TEST_F(EtcdTest, TransactionCreatesOnlyIfAbsent) {
  EtcdClient etcd(endpoint_);
  using agent::EtcdCompare;
  using agent::EtcdOp;
  std::vector<EtcdCompare> absent{{"/lock", {}, EtcdCompare::Target::Version,
                                   EtcdCompare::Op::Equal, 0, {}}};
  auto first = etcd.txn(absent, {{EtcdOp::Kind::Put, "/lock", "one", 0}});
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_TRUE(*first);
  auto second = etcd.txn(absent, {{EtcdOp::Kind::Put, "/lock", "two", 0}},
                         {{EtcdOp::Kind::Put, "/lost", "two", 0}});
  ASSERT_TRUE(second);
  EXPECT_FALSE(*second);
  EXPECT_EQ((*etcd.get("/lock"))->value, "one");
  EXPECT_EQ((*etcd.get("/lost"))->value, "two") << "the failure branch ran";
}

TEST_F(EtcdTest, KeysUnderALeaseVanishWhenItIsNotRenewed) {
  EtcdClient etcd(endpoint_);
  auto lease = etcd.grant_lease(2);
  ASSERT_TRUE(lease) << lease.error().message();
  ASSERT_TRUE(etcd.put("/leased", "x", *lease));
  auto ttl = etcd.keep_alive(*lease);
  ASSERT_TRUE(ttl) << ttl.error().message();
  EXPECT_GT(*ttl, 0);
  EXPECT_TRUE(wait_until([&] { return !*etcd.get("/leased"); }, 6s)) << "lease did not expire";
  auto expired = etcd.keep_alive(*lease);
  ASSERT_TRUE(expired);
  EXPECT_EQ(*expired, 0) << "an expired lease reports TTL 0";
}

TEST_F(EtcdTest, UnreachableEtcdIsAClearError) {
  EtcdClient etcd(fmt::format("127.0.0.1:{}", unused_port()), 1000ms);
  auto r = etcd.get("/x");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("127.0.0.1"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find("refused"), std::string::npos) << r.error().message();
}

TEST_F(EtcdTest, ReservationsNeverOverfillADestination) {
  EtcdClient etcd(endpoint_);
  FleetRegistry dest(etcd, "dest");
  ASSERT_TRUE(dest.open_lease(30));
  ASSERT_TRUE(dest.publish(host("dest", 100)));
  // Eight sources race for 20 MiB each on a 100 MiB host: exactly five may win.
  std::atomic<int> won{0}, errors{0};
  std::vector<std::thread> sources;
  for (int i = 0; i < 8; ++i) {
    sources.emplace_back([&, i] {
      EtcdClient own(endpoint_);
      FleetRegistry source(own, fmt::format("src{}", i));
      if (!source.open_lease(30)) {
        ++errors;
        return;
      }
      auto r = source.reserve("dest", {fmt::format("g{}", i), 20, 1});
      if (!r) {
        ++errors;
      } else if (*r) {
        ++won;
      }
    });
  }
  for (auto& t : sources) {
    t.join();
  }
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(won.load(), 5);
  auto held = dest.reservations();
  ASSERT_TRUE(held);
  EXPECT_EQ(held->size(), 5u);
  auto fleet = dest.hosts();
  ASSERT_TRUE(fleet);
  auto caps = FleetRegistry::capacities(*fleet, *held);
  ASSERT_EQ(caps.size(), 1u);
  EXPECT_EQ(caps[0].mem_used_mib, 100u);
}

TEST_F(EtcdTest, ADeadSourcesReservationIsReleasedWithItsLease) {
  EtcdClient etcd(endpoint_);
  FleetRegistry dest(etcd, "dest"), source(etcd, "src");
  ASSERT_TRUE(dest.open_lease(30));
  ASSERT_TRUE(dest.publish(host("dest", 64)));
  ASSERT_TRUE(source.open_lease(30));
  auto first = source.reserve("dest", {"g1", 64, 1});
  ASSERT_TRUE(first);
  EXPECT_TRUE(*first);
  FleetRegistry other(etcd, "other");
  ASSERT_TRUE(other.open_lease(30));
  EXPECT_FALSE(*other.reserve("dest", {"g2", 32, 1})) << "the host is full";
  ASSERT_TRUE(source.close_lease());  // the source dies
  auto again = other.reserve("dest", {"g2", 32, 1});
  ASSERT_TRUE(again);
  EXPECT_TRUE(*again) << "the dead source's reservation was released";
}

TEST_F(EtcdTest, AtRiskOrDepartedHostsTakeNoReservation) {
  EtcdClient etcd(endpoint_);
  FleetRegistry dest(etcd, "dest"), source(etcd, "src");
  ASSERT_TRUE(dest.open_lease(30));
  ASSERT_TRUE(source.open_lease(30));
  auto record = host("dest", 1024);
  record.state = agent::kHostAtRisk;
  ASSERT_TRUE(dest.publish(record));
  EXPECT_FALSE(*source.reserve("dest", {"g1", 32, 1}));
  EXPECT_FALSE(*source.reserve("nowhere", {"g1", 32, 1}));
}

// Fault injection reaches the fleet: an agent replaying a synthetic CPU-frequency anomaly
// publishes a higher risk than one reading this host's live (healthy) CPU telemetry.
TEST_F(EtcdTest, InjectedCpuAnomalyRaisesThePublishedRisk) {
  const std::string model = dir_ + "/cpu.json";
  auto trained = run_command({ferry_binary(), "model", "train", "--cpu-synth", "--rounds", "30",
                              "--all-days", "--out", model},
                             120s);
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  auto agent_argv = [&](const std::string& name, const std::vector<std::string>& extra) {
    std::vector<std::string> argv{ferry_binary(), "agent",      "--name",      name,
                                  "--etcd",       endpoint_,    "--address",   "127.0.0.1",
                                  "--state-dir",  dir_ + "/" + name, "--cpu-model", model,
                                  "--poll-ms",    "200"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  };
  Subprocess sick(agent_argv("sick", {"--inject-cpu-anomaly", "sustained_drop", "--replay-lead", "2"}));
  Subprocess live(agent_argv("live", {"--live-cpu"}));
  EtcdClient etcd(endpoint_);
  FleetRegistry reader(etcd, "reader");
  std::vector<HostRecord> hosts;
  ASSERT_TRUE(wait_until(
      [&] {
        auto h = reader.hosts();
        if (!h || h->size() != 2 || (*h)[0].devices.empty() || (*h)[1].devices.empty()) {
          return false;
        }
        hosts = *h;
        return true;
      },
      30s))
      << sick.out() << sick.err() << live.out() << live.err();
  const HostRecord& live_host = hosts[0].name == "live" ? hosts[0] : hosts[1];
  const HostRecord& sick_host = hosts[0].name == "sick" ? hosts[0] : hosts[1];
  EXPECT_EQ(sick_host.devices.front().kind, "cpu");
  EXPECT_GT(sick_host.risk, live_host.risk)
      << "sick " << sick_host.to_json().dump() << "\nlive " << live_host.to_json().dump();
  EXPECT_NE(sick.out().find("replay of cpu"), std::string::npos)
      << "the timeline says the telemetry is replayed: " << sick.out();
  std::printf("published risk: injected sustained_drop %.4f, live CPU %.4f\n", sick_host.risk,
              live_host.risk);
}

// An agent that dies does not take its booted guests with it, and its successor takes them
// over instead of booting them twice.
TEST_F(EtcdTest, RestartedAgentAdoptsTheGuestsItLeftRunning) {
  FERRY_REQUIRE_KVM();
  const std::string state = dir_ + "/host";
  const std::vector<std::string> argv{
      ferry_binary(), "agent",       "--name",       "h1",           "--etcd",
      endpoint_,      "--address",   "127.0.0.1",    "--state-dir",  state,
      "--poll-ms",    "200",         "--guest-kernel", test_guest(), "--guest",
      "g1:32:1:wss=4 duration=20",   "--stop-guests-on-exit"};
  auto first = std::make_unique<Subprocess>(argv);
  ASSERT_TRUE(first->wait_for_output("GUEST-STARTED", 30s)) << first->out() << first->err();
  first->kill(SIGKILL);
  first.reset();
  ASSERT_TRUE(wait_until([&] { return slurp(state + "/g1.serial").find("progress") != std::string::npos; },
                         10s))
      << "the guest keeps running without its agent: " << slurp(state + "/g1.serial");

  Subprocess second(argv);
  ASSERT_TRUE(second.wait_for_output("GUEST-ADOPTED", 30s)) << second.out() << second.err();
  EXPECT_EQ(second.out().find("GUEST-STARTED"), std::string::npos) << "booted twice: " << second.out();
  EXPECT_NE(second.out().find("g1: 32 MiB, 1 vCPU"), std::string::npos) << second.out();
  EtcdClient etcd(endpoint_);
  FleetRegistry reader(etcd, "reader");
  ASSERT_TRUE(wait_until(
      [&] {
        auto hosts = reader.hosts();
        return hosts && hosts->size() == 1 && (*hosts)[0].guests.size() == 1 &&
               (*hosts)[0].guests[0].id == "g1";
      },
      10s));
  second.kill(SIGTERM);  // --stop-guests-on-exit: the adopted guest is quit too
  ASSERT_TRUE(second.wait(20s).has_value());
  EXPECT_TRUE(wait_until([&] { return !std::filesystem::exists(state + "/g1.sock"); }, 10s))
      << "the adopted guest was stopped with its agent";
}

}  // namespace
}  // namespace ferry::testing
