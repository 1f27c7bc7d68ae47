#include "ferry/agent/guest_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <charconv>
#include <cstring>

#include <fmt/format.h>

#include "ferry/vmm/control_server.h"

namespace ferry::agent {
namespace {

int status_to_code(int status) {
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status);
  }
  if (WIFSIGNALED(status)) {
    return 128 + WTERMSIG(status);
  }
  return 255;
}

}  // namespace

bool valid_guest_id(const std::string& id) {
  if (id.empty() || id.size() > 64 || id == "." || id == "..") {
    return false;
  }
  for (char c : id) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) {
      return false;
    }
  }
  return true;
}

Result<GuestSpec, std::string> GuestSpec::parse(const std::string& text) {
  // ID:MEM_MIB:VCPUS[:CMDLINE] (the command line may itself contain ':').
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (int i = 0; i < 3; ++i) {
    std::size_t colon = text.find(':', start);
    if (colon == std::string::npos) {
      parts.push_back(text.substr(start));
      start = std::string::npos;
      break;
    }
    parts.push_back(text.substr(start, colon - start));
    start = colon + 1;
  }
  if (parts.size() < 3) {
    return fail(fmt::format("bad guest '{}': expected ID:MEM_MIB:VCPUS[:CMDLINE]", text));
  }
  GuestSpec spec;
  spec.id = parts[0];
  if (!valid_guest_id(spec.id)) {
    return fail(fmt::format("bad guest id '{}': use 1-64 of [A-Za-z0-9_.-]", spec.id));
  }
  auto number = [](const std::string& s, uint64_t& out) {
    auto [p, e] = std::from_chars(s.data(), s.data() + s.size(), out);
    return e == std::errc() && p == s.data() + s.size();
  };
  uint64_t vcpus = 0;
  if (!number(parts[1], spec.mem_mib) || spec.mem_mib < 2 || spec.mem_mib > (1u << 20)) {
    return fail(fmt::format("bad guest '{}': memory '{}' is not a MiB count in 2..1048576",
                            text, parts[1]));
  }
  if (!number(parts[2], vcpus) || vcpus < 1 || vcpus > 64) {
    return fail(fmt::format("bad guest '{}': vCPUs '{}' is not in 1..64", text, parts[2]));
  }
  spec.vcpus = static_cast<uint32_t>(vcpus);
  if (start != std::string::npos) {
    spec.cmdline = text.substr(start);
  }
  return spec;
}

GuestProcess::~GuestProcess() {
  // A running guest is not ours to kill when the agent object goes away: only reap it
  // if it already ended, so it does not linger as a zombie.
  poll_exit();
}

Result<std::unique_ptr<GuestProcess>, ProcessError> GuestProcess::spawn(
    const GuestSpec& spec, const std::vector<std::string>& argv, const std::string& state_dir,
    const std::string& control, bool die_with_parent) {
  std::string serial = fmt::format("{}/{}.serial", state_dir, spec.id);
  std::string log = fmt::format("{}/{}.log", state_dir, spec.id);
  int serial_fd = ::open(serial.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (serial_fd < 0) {
    return fail(ProcessError{fmt::format("open {}: {}", serial, std::strerror(errno))});
  }
  int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (log_fd < 0) {
    ::close(serial_fd);
    return fail(ProcessError{fmt::format("open {}: {}", log, std::strerror(errno))});
  }
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(serial_fd);
    ::close(log_fd);
    return fail(ProcessError{fmt::format("fork: {}", std::strerror(errno))});
  }
  if (pid == 0) {
    if (die_with_parent) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) {
        ::_exit(127);
      }
    } else {
      ::setsid();  // a guest outlives its agent and is not hit by the agent's Ctrl-C
    }
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    ::dup2(serial_fd, 1);
    ::dup2(log_fd, 2);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(serial_fd);
  ::close(log_fd);
  return std::unique_ptr<GuestProcess>(new GuestProcess(spec, pid, control, serial));
}

Result<std::unique_ptr<GuestProcess>, ProcessError> GuestProcess::boot(
    const std::string& ferry_binary, const GuestSpec& spec, const std::string& state_dir) {
  std::string control = fmt::format("{}/{}.sock", state_dir, spec.id);
  std::vector<std::string> argv{ferry_binary, "run",
                                "--kernel", spec.kernel,
                                "--mem", fmt::format("{}M", spec.mem_mib),
                                "--cpus", std::to_string(spec.vcpus),
                                "--control", control};
  if (!spec.cmdline.empty()) {
    argv.insert(argv.end(), {"--cmdline", spec.cmdline});
  }
  return spawn(spec, argv, state_dir, control, /*die_with_parent=*/false);
}

Result<std::unique_ptr<GuestProcess>, ProcessError> GuestProcess::receive(
    const std::string& ferry_binary, const GuestSpec& spec, const std::string& listen,
    const std::string& state_dir, const std::vector<std::string>& extra_args) {
  std::string control = fmt::format("{}/{}.sock", state_dir, spec.id);
  std::vector<std::string> argv{ferry_binary, "run",      "--incoming",
                                listen,       "--control", control,
                                "--max-mem",  fmt::format("{}M", spec.mem_mib),
                                "--max-cpus", std::to_string(spec.vcpus)};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  return spawn(spec, argv, state_dir, control, /*die_with_parent=*/true);
}

Result<std::unique_ptr<GuestProcess>, ProcessError> GuestProcess::adopt(
    const std::string& id, const std::string& state_dir) {
  std::string control = fmt::format("{}/{}.sock", state_dir, id);
  auto reply = vmm::control_request(control, {{"cmd", "status"}}, nullptr, 1000);
  if (!reply || !reply->value("ok", false)) {
    return fail(ProcessError{fmt::format("no VMM answers on {}", control)});
  }
  const auto& status = (*reply)["status"];
  GuestSpec spec;
  spec.id = id;
  spec.mem_mib = status.value("memory_bytes", uint64_t{0}) >> 20;
  spec.vcpus = status.value("vcpus", 1u);
  auto process = std::unique_ptr<GuestProcess>(
      new GuestProcess(spec, -1, control, fmt::format("{}/{}.serial", state_dir, id)));
  process->adopted_ = true;
  return process;
}

std::optional<int> GuestProcess::poll_exit() {
  if (exit_status_) {
    return exit_status_;
  }
  if (adopted_) {
    // Not our child: it is alive while its control socket answers.
    auto reply = vmm::control_request(control_, {{"cmd", "status"}}, nullptr, 1000);
    if (!reply && reply.error().message().find("connect") != std::string::npos) {
      exit_status_ = -1;
    }
    return exit_status_;
  }
  if (pid_ <= 0) {
    return exit_status_;
  }
  int status = 0;
  pid_t done = ::waitpid(pid_, &status, WNOHANG);
  if (done == pid_) {
    exit_status_ = status_to_code(status);
  }
  return exit_status_;
}

void GuestProcess::kill() {
  if (adopted_ && !poll_exit()) {
    vmm::control_request(control_, {{"cmd", "quit"}}, nullptr, 2000);
    exit_status_ = -1;
    return;
  }
  if (pid_ > 0 && !poll_exit()) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    if (::waitpid(pid_, &status, 0) == pid_) {
      exit_status_ = status_to_code(status);
    }
  }
}

}  // namespace ferry::agent
