#include "subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace ferry::testing {

Subprocess::Subprocess(std::vector<std::string> argv) {
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
    std::perror("pipe2");
    std::abort();
  }
  pid_ = fork();
  if (pid_ < 0) {
    std::perror("fork");
    std::abort();
  }
  if (pid_ == 0) {
    dup2(out_pipe[1], STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, STDIN_FILENO);
    std::vector<char*> args;
    for (auto& a : argv) {
      args.push_back(a.data());
    }
    args.push_back(nullptr);
    execvp(args[0], args.data());
    std::perror("execvp");
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  out_thread_ = std::thread([this, fd = out_pipe[0]] { reader(fd, out_); });
  err_thread_ = std::thread([this, fd = err_pipe[0]] { reader(fd, err_); });
}

Subprocess::~Subprocess() {
  if (!exit_code_) {
    kill(SIGKILL);
    wait(std::chrono::seconds(10));
  }
  if (out_thread_.joinable()) {
    out_thread_.join();
  }
  if (err_thread_.joinable()) {
    err_thread_.join();
  }
}

void Subprocess::reader(int fd, std::string& sink) {
  char buf[4096];
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    std::lock_guard lock(mutex_);
    sink.append(buf, static_cast<size_t>(n));
    cv_.notify_all();
  }
  close(fd);
}

bool Subprocess::wait_for_output(const std::string& needle, std::chrono::milliseconds timeout,
                                 bool in_stderr) {
  std::unique_lock lock(mutex_);
  return cv_.wait_for(lock, timeout,
                      [&] { return (in_stderr ? err_ : out_).find(needle) != std::string::npos; });
}

std::optional<int> Subprocess::wait(std::chrono::milliseconds timeout) {
  if (exit_code_) {
    return exit_code_;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    pid_t rc = waitpid(pid_, &status, WNOHANG);
    if (rc == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      // Let the readers drain what the child wrote before it exited.
      if (out_thread_.joinable()) {
        out_thread_.join();
      }
      if (err_thread_.joinable()) {
        err_thread_.join();
      }
      return exit_code_;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void Subprocess::kill(int signal) {
  if (pid_ > 0 && !exit_code_) {
    ::kill(pid_, signal);
  }
}

std::string Subprocess::out() const {
  std::lock_guard lock(mutex_);
  return out_;
}

std::string Subprocess::err() const {
  std::lock_guard lock(mutex_);
  return err_;
}

RunResult run_command(std::vector<std::string> argv, std::chrono::milliseconds timeout) {
  Subprocess child(std::move(argv));
  RunResult result;
  result.exit_code = child.wait(timeout);
  if (!result.exit_code) {
    child.kill(SIGKILL);
    child.wait(std::chrono::seconds(10));
  }
  result.out = child.out();
  result.err = child.err();
  return result;
}

}  // namespace ferry::testing
