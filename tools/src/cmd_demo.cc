// `ferry demo`: Ferry's main job on one host, end to end. Boots the self-verifying test
// guest with a disk, starts a destination VMM, live-migrates the running guest to it over
// loopback, prints the migration report and the guest's own verdict after the move.
#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "commands.h"
#include "vm_session.h"

extern char** environ;

namespace ferry::tools {

namespace {

namespace fs = std::filesystem;

struct DemoOptions {
  std::string workdir = "/tmp/ferry-demo", kernel, memory = "512M", cmdline;
  unsigned wss_mib = 256, rate_mib = 100, seconds = 12;
};

std::string self_exe() { return fs::read_symlink("/proc/self/exe").string(); }

// Spawns `argv` with stdout and stderr appended to `log`; returns the pid or -1.
pid_t spawn_logged(const std::vector<std::string>& argv, const std::string& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -1;
}

int wait_exit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool wait_for_text(const std::string& path, const std::string& needle, int timeout_s) {
  for (int i = 0; i < timeout_s * 20; ++i) {
    if (read_text(path).find(needle) != std::string::npos) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

uint16_t free_loopback_port() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  // 0 if the kernel gave no port (bind or getsockname failed); the caller refuses it.
  const bool bound = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                     getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  close(fd);
  return bound ? ntohs(addr.sin_port) : 0;
}

std::string default_guest() {
  // The build tree layout: <build>/tools/ferry and <build>/tests/guests/.
  return (fs::path(self_exe()).parent_path().parent_path() / "tests/guests/ferry-test-guest.bin")
      .string();
}

void print_guest_tail(const std::string& log) {
  std::istringstream lines(read_text(log));
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("verify", 0) == 0 || line.rfind("FERRY-GUEST done", 0) == 0 ||
        line.rfind("vcpu ", 0) == 0 || line.find("TIME-BACKWARDS") != std::string::npos) {
      std::printf("  guest> %s\n", line.c_str());
    }
  }
}

int run_demo(const DemoOptions& o) {
  const std::string kernel = o.kernel.empty() ? default_guest() : o.kernel;
  if (!fs::exists(kernel)) {
    print_error("demo", fmt::format("test guest '{}' not found (build target ferry_test_guest, "
                                    "or pass --kernel)",
                                    kernel));
    return 1;
  }
  std::error_code ec;
  fs::remove_all(o.workdir, ec);
  fs::create_directories(o.workdir, ec);
  if (ec) {
    print_error("demo", fmt::format("cannot create '{}': {}", o.workdir, ec.message()));
    return 1;
  }
  const std::string w = o.workdir, exe = self_exe();
  { std::ofstream(w + "/src.img").flush(); }
  fs::resize_file(w + "/src.img", 64ull << 20, ec);
  const uint16_t port = free_loopback_port();
  if (port == 0) {
    print_error("demo", "cannot find a free loopback port");
    return 1;
  }
  const std::string to = fmt::format("tcp:127.0.0.1:{}", port);
  const std::string cmdline =
      o.cmdline.empty() ? fmt::format("wss={} rate={} duration={} fill=full pattern=random",
                                      o.wss_mib, o.rate_mib, o.seconds)
                        : o.cmdline;
  std::printf("ferry demo: workdir %s\n", w.c_str());
  std::printf("[1/4] destination VMM waiting on %s\n", to.c_str());
  pid_t dst = spawn_logged({exe, "run", "--incoming", to, "--disk", w + "/dst.img", "--report",
                            w + "/destination-report.json"},
                           w + "/destination.log");
  std::printf("[2/4] booting the test guest (%s RAM, 64 MiB disk): %s\n", o.memory.c_str(),
              cmdline.c_str());
  pid_t src = spawn_logged({exe, "run", "--kernel", kernel, "--mem", o.memory, "--disk",
                            w + "/src.img", "--control", w + "/source.sock", "--cmdline", cmdline},
                           w + "/source.log");
  if (dst < 0 || src < 0 || !wait_for_text(w + "/source.log", "progress", 60) ||
      !wait_for_text(w + "/destination.log", "waiting for a migration", 10)) {
    print_error("demo", "the VMMs did not start; see " + w + "/source.log and destination.log");
    kill(dst, SIGKILL);
    kill(src, SIGKILL);
    return 1;
  }
  std::printf("[3/4] guest running and dirtying memory and disk; live-migrating it\n");
  pid_t mig = spawn_logged(
      {exe, "migrate", "--control", w + "/source.sock", "--to", to, "--report", w + "/report.json"},
      w + "/migrate.log");
  const int mig_status = wait_exit(mig);
  std::printf("%s", read_text(w + "/migrate.log").c_str());
  if (mig_status != 0) {
    print_error("demo", "migration failed (the guest stayed on the source); logs in " + w);
    kill(dst, SIGKILL);
    wait_exit(src);
    return 1;
  }
  const int src_status = wait_exit(src);
  std::printf("[4/4] guest now runs on the destination; waiting for it to finish and verify\n");
  const int dst_status = wait_exit(dst);
  print_guest_tail(w + "/destination.log");
  pid_t svg = spawn_logged({exe, "report", w + "/report.json", "--svg", w + "/timeline.svg"},
                           w + "/report-render.log");
  wait_exit(svg);
  std::printf("\nreport: %s/report.json (timeline: %s/timeline.svg)\n", w.c_str(), w.c_str());
  std::printf(
      "source exit %d, destination (guest) exit %d: %s\n", src_status, dst_status,
      dst_status == 0 && src_status == 0 ? "guest verified every page after the move" : "FAILED");
  return dst_status == 0 && src_status == 0 ? 0 : 1;
}

}  // namespace

void add_demo_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<DemoOptions>();
  CLI::App* cmd = app.add_subcommand(
      "demo",
      "Boot the self-verifying test guest, live-migrate it to a second Ferry process on\n"
      "this host while it dirties memory and disk, and print the migration report.");
  cmd->add_option("--workdir", o->workdir, "Where logs, images and reports go");
  cmd->add_option("--kernel", o->kernel, "Guest kernel (default: the built test guest)");
  cmd->add_option("--mem", o->memory, "Guest memory (default 512M)");
  cmd->add_option("--wss", o->wss_mib, "Working set the guest dirties, MiB (default 256)");
  cmd->add_option("--rate", o->rate_mib, "Dirty rate, MiB/s (default 100)");
  cmd->add_option("--seconds", o->seconds, "How long the guest runs in total (default 12)");
  cmd->add_option("--cmdline", o->cmdline, "Full guest command line (overrides the above)");
  cmd->callback([o, &exit_code] { exit_code = run_demo(*o); });
}

}  // namespace ferry::tools
