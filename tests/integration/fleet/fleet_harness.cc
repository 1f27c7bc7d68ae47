#include "fleet_harness.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "test_env.h"

namespace ferry::testing {
namespace {

constexpr const char* kSubnet = "10.231.0";
constexpr const char* kEtcdPort = "2379";

bool run_ok(std::vector<std::string> argv, std::string* error) {
  auto result = run_command(argv, std::chrono::seconds(10));
  if (result.exit_code != 0) {
    std::string line;
    for (const auto& a : argv) {
      line += a + " ";
    }
    *error = fmt::format("'{}' failed: {}", line, result.err);
    return false;
  }
  return true;
}

}  // namespace

std::string fleet_unavailable_reason() {
  if (::geteuid() != 0) {
    return "network namespaces need root";
  }
  if (run_command({"ip", "-V"}, std::chrono::seconds(5)).exit_code != 0) {
    return "the `ip` command (iproute2) is missing";
  }
  if (run_command({"etcd", "--version"}, std::chrono::seconds(5)).exit_code != 0) {
    return "etcd is missing (Debian package etcd-server; tools/scripts/install-deps.sh)";
  }
  return {};
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (done()) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

NetnsFleet::NetnsFleet(const std::vector<std::string>& hosts, std::string work_dir)
    : tag_(fmt::format("ferry{}", ::getpid())), work_(std::move(work_dir)), hosts_(hosts) {
  const std::string core = ns("core");
  if (!run_ok({"ip", "netns", "add", core}, &error_)) {
    return;
  }
  created_.push_back(core);
  if (!run_ok({"ip", "-n", core, "link", "add", "br0", "type", "bridge"}, &error_) ||
      !run_ok({"ip", "-n", core, "link", "set", "br0", "up"}, &error_) ||
      !run_ok({"ip", "-n", core, "link", "set", "lo", "up"}, &error_) ||
      !run_ok({"ip", "-n", core, "addr", "add", fmt::format("{}.254/24", kSubnet), "dev", "br0"},
              &error_)) {
    return;
  }
  for (std::size_t i = 0; i < hosts_.size(); ++i) {
    const std::string host_ns = ns(hosts_[i]);
    const std::string port = fmt::format("v{}", i);
    if (!run_ok({"ip", "netns", "add", host_ns}, &error_)) {
      return;
    }
    created_.push_back(host_ns);
    if (!run_ok({"ip", "-n", core, "link", "add", port, "type", "veth", "peer", "name", "eth0",
                 "netns", host_ns},
                &error_) ||
        !run_ok({"ip", "-n", core, "link", "set", port, "master", "br0", "up"}, &error_) ||
        !run_ok({"ip", "-n", host_ns, "link", "set", "lo", "up"}, &error_) ||
        !run_ok({"ip", "-n", host_ns, "addr", "add", address(hosts_[i]) + "/24", "dev", "eth0"},
                &error_) ||
        !run_ok({"ip", "-n", host_ns, "link", "set", "eth0", "up"}, &error_)) {
      return;
    }
  }
}

NetnsFleet::~NetnsFleet() {
  // Agents first (they quit their guests), then etcd, then the namespaces.
  for (auto& [host, agent] : agents_) {
    agent->kill(SIGTERM);
  }
  for (auto& [host, agent] : agents_) {
    if (!agent->wait(std::chrono::seconds(15))) {
      agent->kill(SIGKILL);
    }
  }
  // Guests that outlived a killed agent: they live in its namespace, find them by their sockets.
  for (const auto& host : hosts_) {
    run_command({"pkill", "-KILL", "-f", state_dir(host) + "/"}, std::chrono::seconds(5));
  }
  etcd_.reset();
  for (auto it = created_.rbegin(); it != created_.rend(); ++it) {
    run_command({"ip", "netns", "del", *it}, std::chrono::seconds(10));
  }
}

std::string NetnsFleet::ns(const std::string& name) const { return tag_ + "-" + name; }

std::string NetnsFleet::address(const std::string& host) const {
  for (std::size_t i = 0; i < hosts_.size(); ++i) {
    if (hosts_[i] == host) {
      return fmt::format("{}.{}", kSubnet, i + 1);
    }
  }
  return "";
}

std::string NetnsFleet::etcd_endpoint() const { return fmt::format("{}.254:{}", kSubnet, kEtcdPort); }

std::vector<std::string> NetnsFleet::in_host(const std::string& host) const {
  return {"ip", "netns", "exec", ns(host)};
}

bool NetnsFleet::start_etcd() {
  const std::string url = fmt::format("http://{}", etcd_endpoint());
  etcd_ = std::make_unique<Subprocess>(std::vector<std::string>{
      "ip", "netns", "exec", ns("core"), "etcd", "--name", "fleet-test", "--data-dir",
      work_ + "/etcd", "--listen-client-urls", url, "--advertise-client-urls", url,
      "--listen-peer-urls", fmt::format("http://{}.254:2380", kSubnet),
      "--initial-advertise-peer-urls", fmt::format("http://{}.254:2380", kSubnet),
      "--initial-cluster", fmt::format("fleet-test=http://{}.254:2380", kSubnet)});
  if (!etcd_->wait_for_output("ready to serve client requests", std::chrono::seconds(15),
                              /*in_stderr=*/true)) {
    error_ = "etcd did not become ready in 15 s: " + etcd_->err().substr(0, 2000);
    return false;
  }
  return true;
}

Subprocess& NetnsFleet::start_agent(const std::string& host, const std::vector<std::string>& extra) {
  std::vector<std::string> argv = in_host(host);
  argv.insert(argv.end(), {ferry_binary(), "agent", "--name", host, "--etcd", etcd_endpoint(),
                           "--address", address(host), "--state-dir", state_dir(host),
                           "--timeline", timeline(host)});
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto& slot = agents_[host];
  slot = std::make_unique<Subprocess>(argv);
  return *slot;
}

Subprocess* NetnsFleet::agent(const std::string& host) {
  auto it = agents_.find(host);
  return it == agents_.end() ? nullptr : it->second.get();
}

std::string NetnsFleet::timeline(const std::string& host) const {
  return work_ + "/" + host + ".timeline";
}

std::string NetnsFleet::state_dir(const std::string& host) const { return work_ + "/" + host; }

RunResult NetnsFleet::fleet_status(bool json) const {
  std::vector<std::string> argv = in_host(hosts_.front());
  argv.insert(argv.end(), {ferry_binary(), "fleet", "status", "--etcd", etcd_endpoint()});
  if (json) {
    argv.push_back("--json");
  }
  return run_command(argv, std::chrono::seconds(10));
}

}  // namespace ferry::testing
