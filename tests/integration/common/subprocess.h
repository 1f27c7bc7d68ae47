// Subprocess: a child process (usually `ferry ...`) whose stdout and stderr are captured
// by reader threads, so a test can wait for a line to appear while the child runs, then
// wait for exit with a deadline. The destructor kills (SIGKILL) a child still running.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace ferry::testing {

class Subprocess {
 public:
  /// Starts argv[0] with the given arguments (execvp). Aborts the test run if fork fails.
  explicit Subprocess(std::vector<std::string> argv);
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  /// True once `needle` appeared in stdout (or stderr if `in_stderr`) before `timeout`.
  bool wait_for_output(const std::string& needle, std::chrono::milliseconds timeout,
                       bool in_stderr = false);
  /// Waits for exit; the exit code (128 + signal if killed) or nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  void kill(int signal);
  std::string out() const;
  std::string err() const;

 private:
  void reader(int fd, std::string& sink);

  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::string out_, err_;
  std::thread out_thread_, err_thread_;
};

/// Runs a command to completion (or kills it after `timeout`).
struct RunResult {
  std::optional<int> exit_code;  // nullopt = timed out
  std::string out, err;
};
RunResult run_command(std::vector<std::string> argv, std::chrono::milliseconds timeout);

}  // namespace ferry::testing
