// qemu_compare_bench: live-migrates the same test guest (same binary, memory size and
// workload) with Ferry and with QEMU 7.2 over loopback, in one run, plain TCP and TLS 1.3,
// and prints per scenario: total time, downtime, bytes on the wire, CPU seconds of both
// sides, Ferry's throughput, and the Ferry/QEMU ratio of every figure. QEMU runs with its
// defaults and uncapped with multifd+zstd (4 channels). The machine's limits (memcpy,
// single-stream loopback TCP) are measured in the same run, and a closing summary says
// whether each target of issue 5 is met. Memory only (no disk: QEMU's migration assumes
// shared storage). Run it through bench/qemu_compare/run.sh, which installs QEMU.
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "transport/machine_limits.h"

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

struct Result {
  bool ok = false;
  double total_ms = 0, downtime_ms = 0, wire_mib = 0, cpu_s = 0;
  double guest_mib = 0;        // Ferry: uncompressed guest bytes moved
  double bulk_guest_bps = 0;   // Ferry: guest bytes/s of the first (bulk) round
  double bulk_wire_bps = 0;    // Ferry: wire bytes/s of the first round
  double pause_resume_ms = 0;  // Ferry: source's pause -> Resumed ack
  std::string note;
};

pid_t spawn(const std::vector<std::string>& argv, const std::string& log) {
  // Truncated here, before the fork: truncating in the child raced with wait_for(), which
  // could still read the previous run's "FERRY-GUEST running" and start the migration
  // while the guest was filling its working set (sending half of it as zero pages).
  int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    int null = open("/dev/null", O_RDONLY);
    dup2(null, STDIN_FILENO);
    std::vector<char*> args;
    for (const auto& a : argv) {
      args.push_back(const_cast<char*>(a.c_str()));
    }
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(fd);
  return pid;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool wait_for(const std::string& path, const std::string& needle, int seconds) {
  for (int i = 0; i < seconds * 20; ++i) {
    if (slurp(path).find(needle) != std::string::npos) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// utime + stime of a process, in seconds.
double cpu_seconds(pid_t pid) {
  std::string stat = slurp(fmt::format("/proc/{}/stat", pid));
  const size_t close_paren = stat.rfind(')');
  if (close_paren == std::string::npos) {
    return 0;
  }
  std::istringstream in(stat.substr(close_paren + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14 || i == 15) {
      ticks += std::stod(field);
    }
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

void stop(pid_t pid) {
  if (pid > 0) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
}

uint16_t free_port() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

class Qmp {
 public:
  explicit Qmp(const std::string& path) {
    for (int i = 0; i < 200 && fd_ < 0; ++i) {
      int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un sa{};
      sa.sun_family = AF_UNIX;
      std::snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path.c_str());
      if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0) {
        fd_ = fd;
      } else {
        close(fd);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
    if (fd_ >= 0) {
      line();
      cmd("qmp_capabilities");
    }
  }
  ~Qmp() {
    if (fd_ >= 0) {
      close(fd_);
    }
  }
  bool ok() const { return fd_ >= 0; }
  json cmd(const std::string& name, json args = nullptr) {
    json req{{"execute", name}};
    if (!args.is_null()) {
      req["arguments"] = args;
    }
    const std::string text = req.dump() + "\n";
    if (write(fd_, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
      return nullptr;
    }
    while (true) {
      std::string reply = line();
      if (reply.empty()) {
        return nullptr;
      }
      json j = json::parse(reply, nullptr, false);
      if (j.contains("return") || j.contains("error")) {
        return j;
      }
    }
  }

 private:
  std::string line() {
    std::string out;
    char c;
    while (read(fd_, &c, 1) == 1 && c != '\n') {
      out.push_back(c);
    }
    return out;
  }
  int fd_ = -1;
};

struct Scenario {
  std::string name, cmdline;
  bool random_content = false;   // the throughput target is judged on this one
  bool blackout_target = false;  // the blackout-median target is judged on this one
};

struct Run {
  std::string dir;
  unsigned mem_mib = 1024;
  bool tls = false;
  std::vector<std::string> ferry_args;  // extra `ferry migrate` options
  int qemu_timeout_s = 40;
  bool pin = false;  // source VMM on CPU 0, destination VMM on CPU 1 (--pin)
};

// With --pin, runs the VMM under `taskset` (which execs it: the pid stays the VMM's) so
// the two sides never share a core, as on two hosts. Same for Ferry and QEMU.
std::vector<std::string> on_cpu(const Run& run, const char* cpu, std::vector<std::string> argv) {
  if (run.pin) {
    argv.insert(argv.begin(), {"taskset", "-c", cpu});
  }
  return argv;
}

double median(std::vector<double> v) {
  if (v.empty()) {
    return 0;
  }
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

Result run_ferry(const Scenario& s, const Run& run) {
  Result r;
  const std::string& dir = run.dir;
  const uint16_t port = free_port();
  const std::string to = fmt::format("tcp:127.0.0.1:{}", port);
  std::vector<std::string> dst_args{FERRY_BINARY, "run", "--incoming", to};
  std::vector<std::string> mig_args{FERRY_BINARY,
                                    "migrate",
                                    "--quiet",
                                    "--control",
                                    dir + "/ferry-src.sock",
                                    "--to",
                                    to,
                                    "--report",
                                    dir + "/ferry-report.json"};
  if (run.tls) {
    dst_args.insert(dst_args.end(), {"--tls-dir", dir + "/tls/dst"});
    mig_args.insert(mig_args.end(), {"--tls-dir", dir + "/tls/src", "--tls-name", "127.0.0.1"});
  }
  mig_args.insert(mig_args.end(), run.ferry_args.begin(), run.ferry_args.end());
  std::filesystem::remove(dir + "/ferry-report.json");
  pid_t dst = spawn(on_cpu(run, "1", dst_args), dir + "/ferry-dst.log");
  pid_t src = spawn(on_cpu(run, "0",
                           {FERRY_BINARY, "run", "--kernel", FERRY_TEST_GUEST, "--mem",
                            fmt::format("{}M", run.mem_mib), "--control",
                            dir + "/ferry-src.sock", "--cmdline", s.cmdline}),
                    dir + "/ferry-src.log");
  if (!wait_for(dir + "/ferry-src.log", "FERRY-GUEST running", 120)) {
    r.note = "guest did not start";
  } else {
    std::this_thread::sleep_for(std::chrono::seconds(2));
    const double cpu0 = cpu_seconds(src) + cpu_seconds(dst);
    pid_t mig = spawn(mig_args, dir + "/ferry-migrate.log");
    int status = 0;
    waitpid(mig, &status, 0);
    const double cpu1 = cpu_seconds(src) + cpu_seconds(dst);
    json rep = json::parse(slurp(dir + "/ferry-report.json"), nullptr, false);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && !rep.is_discarded()) {
      r.ok = true;
      r.total_ms = rep.value("total_ns", 0.0) / 1e6;
      r.downtime_ms = rep.value("blackout_ns", 0.0) / 1e6;
      r.pause_resume_ms = rep.value("source_blackout_ns", 0.0) / 1e6;
      r.wire_mib = rep.value("wire_bytes", 0.0) / (1 << 20);
      r.guest_mib = rep.value("guest_bytes", 0.0) / (1 << 20);
      if (rep.contains("rounds") && !rep["rounds"].empty()) {
        const json& first = rep["rounds"][0];
        const double secs = first.value("duration_ns", 0.0) / 1e9;
        r.bulk_guest_bps = first.value("throughput_bytes_per_s", 0.0);
        r.bulk_wire_bps = secs > 0 ? first.value("wire_bytes", 0.0) / secs : 0;
      }
      r.cpu_s = cpu1 - cpu0;  // the source exits at commit: its CPU up to then counts
    } else {
      r.note = "migration failed: " + slurp(dir + "/ferry-migrate.log");
    }
  }
  stop(src);
  stop(dst);
  return r;
}

std::vector<std::string> qemu_args(const Scenario& s, const Run& run, const std::string& side) {
  const std::string& dir = run.dir;
  std::vector<std::string> a{"qemu-system-x86_64",
                             "-M",
                             "microvm,x-option-roms=off,rtc=off,pit=off,pic=off,isa-serial=on",
                             "-enable-kvm",
                             "-cpu",
                             "host,-arch-capabilities",
                             "-m",
                             std::to_string(run.mem_mib),
                             "-nographic",
                             "-no-reboot",
                             "-display",
                             "none",
                             "-monitor",
                             "none",
                             "-net",
                             "none",
                             "-kernel",
                             FERRY_TEST_GUEST,
                             "-append",
                             s.cmdline,
                             "-device",
                             "isa-debug-exit,iobase=0xf4,iosize=0x04",
                             "-serial",
                             "file:" + dir + "/qemu-" + side + ".log",
                             "-qmp",
                             "unix:" + dir + "/qemu-" + side + ".qmp,server=on,wait=off"};
  if (run.tls) {
    // QEMU's layout: ca-cert.pem plus server-*.pem / client-*.pem (see prepare_tls).
    const bool server = side == "dst";
    a.insert(a.end(),
             {"-object", fmt::format("tls-creds-x509,id=tls0,dir={}/tls/qemu-{},endpoint={}"
                                     ",verify-peer=on",
                                     dir, side, server ? "server" : "client")});
  }
  if (side == "dst") {
    a.insert(a.end(), {"-incoming", "defer"});
  }
  return a;
}

void configure_qemu(Qmp& sq, Qmp& dq, const Run& run, bool multifd) {
  if (multifd) {
    const json caps{{"capabilities", json::array({{{"capability", "multifd"}, {"state", true}}})}};
    const json params{{"multifd-compression", "zstd"}, {"multifd-channels", 4}};
    for (Qmp* q : {&sq, &dq}) {
      q->cmd("migrate-set-capabilities", caps);
      q->cmd("migrate-set-parameters", params);
    }
    sq.cmd("migrate-set-parameters", {{"max-bandwidth", 100ll << 30}});  // uncapped
  }
  if (run.tls) {
    for (Qmp* q : {&sq, &dq}) {
      q->cmd("migrate-set-parameters", {{"tls-creds", "tls0"}});
    }
    sq.cmd("migrate-set-parameters", {{"tls-hostname", "127.0.0.1"}});
  }
}

Result run_qemu(const Scenario& s, const Run& run, bool multifd) {
  Result r;
  const std::string& dir = run.dir;
  const uint16_t port = free_port();
  pid_t src = spawn(on_cpu(run, "0", qemu_args(s, run, "src")), dir + "/qemu-src.out");
  pid_t dst = spawn(on_cpu(run, "1", qemu_args(s, run, "dst")), dir + "/qemu-dst.out");
  {
    Qmp sq(dir + "/qemu-src.qmp"), dq(dir + "/qemu-dst.qmp");
    if (!sq.ok() || !dq.ok() || !wait_for(dir + "/qemu-src.log", "FERRY-GUEST running", 120)) {
      r.note = "QEMU or its guest did not start: " + slurp(dir + "/qemu-src.out");
    } else {
      configure_qemu(sq, dq, run, multifd);
      dq.cmd("migrate-incoming", {{"uri", fmt::format("tcp:127.0.0.1:{}", port)}});
      std::this_thread::sleep_for(std::chrono::seconds(2));
      const double cpu0 = cpu_seconds(src) + cpu_seconds(dst);
      sq.cmd("migrate", {{"uri", fmt::format("tcp:127.0.0.1:{}", port)}});
      json q;
      std::string status;
      for (int i = 0; i < run.qemu_timeout_s * 50 && status != "completed" && status != "failed";
           ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        q = sq.cmd("query-migrate");
        status = q.is_null() ? "" : q["return"].value("status", "");
      }
      const double cpu1 = cpu_seconds(src) + cpu_seconds(dst);
      if (status == "completed") {
        r.ok = true;
        r.total_ms = q["return"].value("total-time", 0.0);
        r.downtime_ms = q["return"].value("downtime", 0.0);
        r.wire_mib = q["return"]["ram"].value("transferred", 0.0) / (1 << 20);
        r.cpu_s = cpu1 - cpu0;
      } else {
        r.note =
            "QEMU migration " + (status.empty() || status == "active"
                                     ? fmt::format("did not finish within {} s", run.qemu_timeout_s)
                                     : status + ": " + q.dump());
        sq.cmd("migrate_cancel");
      }
    }
  }
  stop(src);
  stop(dst);
  return r;
}

// Certificates from `ferry tls gen` for Ferry's layout (DIR/ca.pem, cert.pem, key.pem),
// copied into QEMU's layout for the same CA.
bool prepare_tls(const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string tls = dir + "/tls";
  for (const auto& [side, name] : {std::pair{"dst", "127.0.0.1"}, std::pair{"src", "source"}}) {
    const std::string cmd =
        fmt::format("{} tls gen --out {}/{} --ca-dir {}/ca --name {} >/dev/null", FERRY_BINARY, tls,
                    side, tls, name);
    if (std::system(cmd.c_str()) != 0) {
      return false;
    }
  }
  std::error_code ec;
  for (const auto& [side, role] : {std::pair{"dst", "server"}, std::pair{"src", "client"}}) {
    const std::string q = fmt::format("{}/qemu-{}", tls, side);
    fs::create_directories(q, ec);
    fs::copy_file(tls + "/" + side + "/ca.pem", q + "/ca-cert.pem", ec);
    fs::copy_file(tls + "/" + side + "/cert.pem", fmt::format("{}/{}-cert.pem", q, role), ec);
    fs::copy_file(tls + "/" + side + "/key.pem", fmt::format("{}/{}-key.pem", q, role), ec);
  }
  return !ec;
}

std::string cell(bool ok, double value, const char* fmt_spec) {
  return ok ? fmt::format(fmt::runtime(fmt_spec), value) : std::string("-");
}

constexpr const char* kRowFormat = "  {:<24} {:>9} {:>11} {:>9} {:>7} {:>10} {:>10}  {}\n";

void print_header() {
  fmt::print(kRowFormat, "", "total ms", "downtime ms", "wire MiB", "CPU s", "guest GB/s",
             "wire GB/s", "");
}

void print_row(const std::string& who, const Result& r) {
  // Throughput over the bulk (first) round; Ferry reports it, QEMU does not.
  const bool bulk = r.ok && r.bulk_guest_bps > 0;
  fmt::print(kRowFormat, who, cell(r.ok, r.total_ms, "{:.0f}"), cell(r.ok, r.downtime_ms, "{:.1f}"),
             cell(r.ok, r.wire_mib, "{:.0f}"), cell(r.ok, r.cpu_s, "{:.2f}"),
             cell(bulk, r.bulk_guest_bps / 1e9, "{:.2f}"),
             cell(bulk, r.bulk_wire_bps / 1e9, "{:.2f}"), r.note);
}

void print_ratio(const std::string& label, const Result& f, const Result& q) {
  if (!f.ok || !q.ok) {
    fmt::print("  {:<24} (no ratio: one side did not complete)\n", label);
    return;
  }
  auto ratio = [](double a, double b) { return b > 0 ? fmt::format("{:.2f}", a / b) : "-"; };
  fmt::print(kRowFormat, label, ratio(f.total_ms, q.total_ms), ratio(f.downtime_ms, q.downtime_ms),
             ratio(f.wire_mib, q.wire_mib), ratio(f.cpu_s, q.cpu_s), "", "", "");
}

struct Limits {
  double memcpy_bps = 0, loopback_bps = 0;
};

Limits measure_limits() {
  Limits l;
  l.memcpy_bps =
      ferry::bench::median_of(3, [] { return ferry::bench::memcpy_bytes_per_s(512 << 20); });
  l.loopback_bps =
      ferry::bench::median_of(3, [] { return ferry::bench::loopback_tcp_bytes_per_s(512 << 20); });
  return l;
}

void print_throughput(const Result& f, const Limits& lim) {
  if (!f.ok || f.bulk_guest_bps <= 0) {
    return;
  }
  const double whole = f.total_ms > 0 ? f.guest_mib * (1 << 20) / (f.total_ms / 1e3) : 0;
  fmt::print(
      "  ferry bulk round: guest {:.2f} GB/s = {:.0f}% of loopback, {:.0f}% of memcpy; wire "
      "{:.2f} GB/s = {:.0f}% of loopback; whole migration: guest {:.2f} GB/s = {:.0f}% of "
      "loopback; pause->resume ack {:.1f} ms\n",
      f.bulk_guest_bps / 1e9, 100 * f.bulk_guest_bps / lim.loopback_bps,
      100 * f.bulk_guest_bps / lim.memcpy_bps, f.bulk_wire_bps / 1e9,
      100 * f.bulk_wire_bps / lim.loopback_bps, whole / 1e9, 100 * whole / lim.loopback_bps,
      f.pause_resume_ms);
}

struct Outcome {
  Result ferry, qemu, multifd;
  std::vector<double> blackouts_ms, pause_resume_ms;  // every Ferry run
};

std::string verdict(bool met) { return met ? "MET    " : "NOT MET"; }

void print_summary(const std::vector<Scenario>& scenarios,
                   const std::map<std::pair<size_t, bool>, Outcome>& out, const Limits& lim) {
  fmt::print("\nTargets (issue 5), plain TCP unless stated:\n");
  for (size_t i = 0; i < scenarios.size(); ++i) {
    if (!scenarios[i].blackout_target || !out.count({i, false})) {
      continue;
    }
    const Outcome& o = out.at({i, false});
    const double med = median(o.blackouts_ms);
    fmt::print(
        "  {} blackout median < 10 ms ({}): {:.1f} ms over {} runs (min {:.1f}, max {:.1f}); "
        "pause->resume ack median {:.1f} ms\n",
        verdict(!o.blackouts_ms.empty() && med < 10), scenarios[i].name, med, o.blackouts_ms.size(),
        o.blackouts_ms.empty() ? 0
                               : *std::min_element(o.blackouts_ms.begin(), o.blackouts_ms.end()),
        o.blackouts_ms.empty() ? 0
                               : *std::max_element(o.blackouts_ms.begin(), o.blackouts_ms.end()),
        median(o.pause_resume_ms));
  }
  for (size_t i = 0; i < scenarios.size(); ++i) {
    if (!out.count({i, false})) {
      continue;
    }
    const Outcome& o = out.at({i, false});
    if (o.ferry.ok && o.multifd.ok) {
      const double r = o.ferry.total_ms / o.multifd.total_ms;
      fmt::print("  {} total <= 0.5x QEMU multifd ({}): {:.0f} ms vs {:.0f} ms = {:.2f}x\n",
                 verdict(r <= 0.5), scenarios[i].name, o.ferry.total_ms, o.multifd.total_ms, r);
    } else {
      fmt::print("  NOT MET total <= 0.5x QEMU multifd ({}): a run did not complete\n",
                 scenarios[i].name);
    }
  }
  for (size_t i = 0; i < scenarios.size(); ++i) {
    if (!scenarios[i].random_content || !out.count({i, false}) || !out.at({i, false}).ferry.ok) {
      continue;
    }
    const Result& f = out.at({i, false}).ferry;
    // Judged on bytes on the wire: the test guest's "random" pages still compress 2-4x, so
    // guest bytes per second can exceed the link and would overstate what the link carried.
    const double frac = f.bulk_wire_bps / lim.loopback_bps;
    const double whole = f.guest_mib * (1 << 20) / (f.total_ms / 1e3) / lim.loopback_bps;
    fmt::print(
        "  {} throughput >= 80% of loopback ({}): bulk round wire {:.2f} GB/s = {:.0f}% of "
        "{:.2f} GB/s (guest data {:.2f} GB/s = {:.0f}%, compressed; whole migration incl. "
        "setup: {:.0f}%)\n",
        verdict(frac >= 0.8), scenarios[i].name, f.bulk_wire_bps / 1e9, 100 * frac,
        lim.loopback_bps / 1e9, f.bulk_guest_bps / 1e9, 100 * f.bulk_guest_bps / lim.loopback_bps,
        100 * whole);
    if (out.count({i, true}) && out.at({i, true}).ferry.ok) {
      const Result& t = out.at({i, true}).ferry;
      const double r = t.bulk_guest_bps / f.bulk_guest_bps;
      fmt::print(
          "  {} TLS >= 60% of plain ({}): bulk round {:.2f} vs {:.2f} GB/s = {:.0f}% "
          "(total time plain/TLS = {:.0f}%)\n",
          verdict(r >= 0.6), scenarios[i].name, t.bulk_guest_bps / 1e9, f.bulk_guest_bps / 1e9,
          100 * r, 100 * f.total_ms / t.total_ms);
    }
  }
}

bool ensure_qemu() {
  if (std::system("command -v qemu-system-x86_64 >/dev/null 2>&1") == 0) {
    return true;
  }
  fmt::print("qemu-system-x86_64 missing: installing qemu-system-x86 with apt-get\n");
  std::fflush(stdout);
  const char* apt =
      "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends qemu-system-x86";
  const std::string cmd = geteuid() == 0 ? std::string(apt) : fmt::format("sudo -n env {}", apt);
  return std::system((cmd + " >/dev/null").c_str()) == 0 &&
         std::system("command -v qemu-system-x86_64 >/dev/null 2>&1") == 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Ferry vs QEMU 7.2 live migration on this host"};
  unsigned mem_mib = 1024;
  int repeat = 3;
  std::string only;
  std::vector<std::string> ferry_args;
  bool no_tls = false;
  bool pin = false;
  app.add_option("mem_mib", mem_mib, "Guest memory in MiB (default 1024)");
  app.add_option("--repeat", repeat, "Ferry runs of the blackout-target scenario (median)");
  app.add_option("--only", only, "Run only scenarios whose name contains this");
  app.add_flag("--no-tls", no_tls, "Skip the TLS rows");
  app.add_flag("--pin", pin,
               "Source VMMs on CPU 0, destinations on CPU 1 (taskset), for Ferry and QEMU alike: "
               "on one 2-core host the scheduler otherwise sometimes puts both sides on one core");
  app.add_option("--ferry-arg", ferry_args, "Extra `ferry migrate` option (repeatable)")
      ->allow_extra_args(false);
  CLI11_PARSE(app, argc, argv);
  if (!ensure_qemu()) {
    fmt::print("qemu-system-x86_64 is not installed and could not be installed\n");
    return 1;
  }
  char tmpl[] = "/tmp/ferry-qemu-compare-XXXXXX";
  Run run;
  run.dir = mkdtemp(tmpl);
  run.mem_mib = mem_mib;
  run.ferry_args = ferry_args;
  run.pin = pin;
  if (pin && std::thread::hardware_concurrency() < 2) {
    fmt::print("--pin needs two CPUs\n");
    return 1;
  }
  if (!no_tls && !prepare_tls(run.dir)) {
    fmt::print("`ferry tls gen` failed; see {}\n", run.dir);
    return 1;
  }
  const unsigned random_wss = mem_mib > 160 ? mem_mib - 128 : mem_mib / 2;
  const std::vector<Scenario> scenarios{
      {"idle", "mode=idle duration=0"},
      {"256 MiB @ 50 MiB/s", "wss=256 rate=50 fill=full pattern=random duration=0", false, true},
      {"512 MiB @ 400 MiB/s", "wss=512 rate=400 fill=full pattern=random duration=0"},
      {fmt::format("{} MiB random, ~static", random_wss),
       fmt::format("wss={} rate=1 fill=full pattern=random duration=0", random_wss), true},
  };
  const Limits lim = measure_limits();
  fmt::print("guest memory {} MiB, loopback, {} CPUs{}, logs in {}\nferry migrate extra args: {}\n",
             mem_mib, std::thread::hardware_concurrency(),
             pin ? " (pinned: sources on CPU 0, destinations on CPU 1)" : "", run.dir,
             ferry_args.empty() ? "(defaults)" : fmt::format("{}", fmt::join(ferry_args, " ")));
  fmt::print(
      "machine limits (median of 3): memcpy {:.2f} GB/s, loopback TCP 1 stream {:.2f} GB/s\n",
      lim.memcpy_bps / 1e9, lim.loopback_bps / 1e9);
  std::map<std::pair<size_t, bool>, Outcome> out;
  for (size_t i = 0; i < scenarios.size(); ++i) {
    const Scenario& s = scenarios[i];
    if (!only.empty() && s.name.find(only) == std::string::npos) {
      continue;
    }
    for (bool tls : {false, true}) {
      if (tls && no_tls) {
        continue;
      }
      run.tls = tls;
      fmt::print("\n{}, {} (guest: {})\n", s.name, tls ? "TLS 1.3" : "plain TCP", s.cmdline);
      std::fflush(stdout);
      Outcome& o = out[{i, tls}];
      const int runs = s.blackout_target && !tls ? std::max(1, repeat) : 1;
      std::vector<Result> ok_runs;
      for (int k = 0; k < runs; ++k) {
        Result f = run_ferry(s, run);
        if (f.ok) {
          o.blackouts_ms.push_back(f.downtime_ms);
          o.pause_resume_ms.push_back(f.pause_resume_ms);
          ok_runs.push_back(f);
        } else if (k == 0) {
          o.ferry = f;
        }
        if (runs > 1) {
          print_row(fmt::format("  ferry run {}", k + 1), f);
        }
      }
      if (!ok_runs.empty()) {
        // The table shows the run with the median total time.
        std::sort(ok_runs.begin(), ok_runs.end(),
                  [](const Result& a, const Result& b) { return a.total_ms < b.total_ms; });
        o.ferry = ok_runs[ok_runs.size() / 2];
      }
      o.qemu = run_qemu(s, run, false);
      o.multifd = run_qemu(s, run, true);
      print_header();
      print_row("ferry", o.ferry);
      print_row("qemu (defaults)", o.qemu);
      print_row("qemu multifd+zstd", o.multifd);
      print_ratio("ferry/qemu", o.ferry, o.qemu);
      print_ratio("ferry/qemu multifd", o.ferry, o.multifd);
      print_throughput(o.ferry, lim);
      std::fflush(stdout);
    }
  }
  const Limits after = measure_limits();
  fmt::print(
      "\nmachine limits again at the end: memcpy {:.2f} GB/s, loopback TCP {:.2f} GB/s "
      "(fractions above use the first measurement)\n",
      after.memcpy_bps / 1e9, after.loopback_bps / 1e9);
  print_summary(scenarios, out, lim);
  return 0;
}
