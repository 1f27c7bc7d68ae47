// qemu_compare_bench: live-migrates the same test guest (same binary, memory size and
// workload) with Ferry and with QEMU 7.2 over loopback, in one run, and prints per
// scenario: total time, downtime, bytes on the wire, CPU seconds of both sides, and the
// Ferry/QEMU ratios. QEMU runs twice: with its defaults, and uncapped with multifd+zstd.
// Memory only (no disk: QEMU's migration assumes shared storage). Plain TCP; TLS is not
// covered yet. Usage: qemu_compare_bench [MEM_MIB=1024]
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

struct Result {
  bool ok = false;
  double total_ms = 0, downtime_ms = 0, wire_mib = 0, cpu_s = 0;
  std::string note;
};

pid_t spawn(const std::vector<std::string>& argv, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
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
};

Result run_ferry(const Scenario& s, unsigned mem_mib, const std::string& dir) {
  Result r;
  const uint16_t port = free_port();
  const std::string to = fmt::format("tcp:127.0.0.1:{}", port);
  pid_t dst = spawn({FERRY_BINARY, "run", "--incoming", to}, dir + "/ferry-dst.log");
  pid_t src = spawn({FERRY_BINARY, "run", "--kernel", FERRY_TEST_GUEST, "--mem",
                     fmt::format("{}M", mem_mib), "--control", dir + "/ferry-src.sock",
                     "--cmdline", s.cmdline},
                    dir + "/ferry-src.log");
  if (!wait_for(dir + "/ferry-src.log", "FERRY-GUEST running", 120)) {
    r.note = "guest did not start";
  } else {
    std::this_thread::sleep_for(std::chrono::seconds(2));
    const double cpu0 = cpu_seconds(src) + cpu_seconds(dst);
    pid_t mig = spawn({FERRY_BINARY, "migrate", "--quiet", "--control", dir + "/ferry-src.sock",
                       "--to", to, "--report", dir + "/ferry-report.json"},
                      dir + "/ferry-migrate.log");
    int status = 0;
    waitpid(mig, &status, 0);
    const double cpu1 = cpu_seconds(src) + cpu_seconds(dst);
    json rep = json::parse(slurp(dir + "/ferry-report.json"), nullptr, false);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && !rep.is_discarded()) {
      r.ok = true;
      r.total_ms = rep.value("total_ns", 0.0) / 1e6;
      r.downtime_ms = rep.value("blackout_ns", 0.0) / 1e6;
      r.wire_mib = rep.value("wire_bytes", 0.0) / (1 << 20);
      r.cpu_s = cpu1 - cpu0;  // the source exits at commit: its CPU up to then counts
    } else {
      r.note = "migration failed: " + slurp(dir + "/ferry-migrate.log");
    }
  }
  stop(src);
  stop(dst);
  return r;
}

Result run_qemu(const Scenario& s, unsigned mem_mib, bool multifd, const std::string& dir) {
  Result r;
  const uint16_t port = free_port();
  auto args = [&](const std::string& side) {
    std::vector<std::string> a{
        "qemu-system-x86_64", "-M", "microvm,x-option-roms=off,rtc=off,pit=off,pic=off,isa-serial=on",
        "-enable-kvm", "-cpu", "host,-arch-capabilities", "-m", std::to_string(mem_mib),
        "-nographic", "-no-reboot", "-display", "none", "-monitor", "none", "-net", "none",
        "-kernel", FERRY_TEST_GUEST, "-append", s.cmdline, "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04", "-serial",
        "file:" + dir + "/qemu-" + side + ".log", "-qmp",
        "unix:" + dir + "/qemu-" + side + ".qmp,server=on,wait=off"};
    if (side == "dst") {
      a.push_back("-incoming");
      a.push_back("defer");
    }
    return a;
  };
  pid_t src = spawn(args("src"), dir + "/qemu-src.out");
  pid_t dst = spawn(args("dst"), dir + "/qemu-dst.out");
  {
    Qmp sq(dir + "/qemu-src.qmp"), dq(dir + "/qemu-dst.qmp");
    if (!sq.ok() || !dq.ok() || !wait_for(dir + "/qemu-src.log", "FERRY-GUEST running", 120)) {
      r.note = "QEMU or its guest did not start";
    } else {
      if (multifd) {
        const json caps{{"capabilities", json::array({{{"capability", "multifd"}, {"state", true}}})}};
        const json params{{"multifd-compression", "zstd"}, {"multifd-channels", 4}};
        for (Qmp* q : {&sq, &dq}) {
          q->cmd("migrate-set-capabilities", caps);
          q->cmd("migrate-set-parameters", params);
        }
        sq.cmd("migrate-set-parameters", {{"max-bandwidth", 100ll << 30}});  // uncapped
      }
      dq.cmd("migrate-incoming", {{"uri", fmt::format("tcp:127.0.0.1:{}", port)}});
      std::this_thread::sleep_for(std::chrono::seconds(2));
      const double cpu0 = cpu_seconds(src) + cpu_seconds(dst);
      sq.cmd("migrate", {{"uri", fmt::format("tcp:127.0.0.1:{}", port)}});
      json q;
      std::string status;
      for (int i = 0; i < 3000 && status != "completed" && status != "failed"; ++i) {
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
        r.note = "QEMU migration " + (status.empty() || status == "active"
                                          ? std::string("did not finish within 60 s")
                                          : status);
        sq.cmd("migrate_cancel");
      }
    }
  }
  stop(src);
  stop(dst);
  return r;
}

std::string cell(const Result& r, double value, const char* fmt_spec) {
  return r.ok ? fmt::format(fmt::runtime(fmt_spec), value) : std::string("-");
}

void print_row(const std::string& who, const Result& r) {
  fmt::print("  {:<22} {:>10} {:>11} {:>10} {:>8}  {}\n", who, cell(r, r.total_ms, "{:.0f}"),
             cell(r, r.downtime_ms, "{:.1f}"), cell(r, r.wire_mib, "{:.0f}"),
             cell(r, r.cpu_s, "{:.2f}"), r.note);
}

void print_ratio(const std::string& label, const Result& f, const Result& q) {
  if (!f.ok || !q.ok) {
    return;
  }
  auto ratio = [](double a, double b) { return b > 0 ? fmt::format("{:.2f}", a / b) : "-"; };
  fmt::print("  {:<22} {:>10} {:>11} {:>10} {:>8}\n", label, ratio(f.total_ms, q.total_ms),
             ratio(f.downtime_ms, q.downtime_ms), ratio(f.wire_mib, q.wire_mib),
             ratio(f.cpu_s, q.cpu_s));
}

}  // namespace

int main(int argc, char** argv) {
  const unsigned mem_mib = argc > 1 ? static_cast<unsigned>(std::atoi(argv[1])) : 1024;
  if (system("command -v qemu-system-x86_64 >/dev/null 2>&1") != 0) {
    fmt::print("qemu-system-x86_64 not installed (apt-get install qemu-system-x86)\n");
    return 1;
  }
  char tmpl[] = "/tmp/ferry-qemu-compare-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::vector<Scenario> scenarios{
      {"idle", "mode=idle"},
      {"256 MiB @ 50 MiB/s", "wss=256 rate=50 fill=full pattern=random duration=0"},
      {"512 MiB @ 400 MiB/s", "wss=512 rate=400 fill=full pattern=random duration=0"},
  };
  fmt::print("guest memory {} MiB, plain TCP over loopback, logs in {}\n", mem_mib, dir);
  for (const Scenario& s : scenarios) {
    fmt::print("\n{} (guest: {})\n", s.name, s.cmdline);
    fmt::print("  {:<22} {:>10} {:>11} {:>10} {:>8}\n", "", "total ms", "downtime ms",
               "wire MiB", "CPU s");
    const Result ferry = run_ferry(s, mem_mib, dir);
    const Result qemu = run_qemu(s, mem_mib, false, dir);
    const Result multifd = run_qemu(s, mem_mib, true, dir);
    print_row("ferry", ferry);
    print_row("qemu (defaults)", qemu);
    print_row("qemu multifd+zstd", multifd);
    print_ratio("ferry/qemu", ferry, qemu);
    print_ratio("ferry/qemu multifd", ferry, multifd);
  }
  return 0;
}
