#include "migration_harness.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

#include "test_env.h"

namespace ferry::testing {

using std::chrono::seconds;

uint16_t free_port() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

bool has(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

MigrationRig::MigrationRig(std::string name) : dir_(make_temp_dir("ferry-" + name)) {}

std::unique_ptr<Subprocess> MigrationRig::start_source(const GuestSpec& spec) {
  std::vector<std::string> argv{ferry_binary(), "run",
                                "--kernel",     test_guest(),
                                "--mem",        spec.mem,
                                "--cpus",       std::to_string(spec.cpus),
                                "--control",    source_control(),
                                "--cmdline",    spec.cmdline};
  if (spec.disk) {
    const std::string image = dir_ + "/src.img";
    { std::ofstream(image).flush(); }
    EXPECT_EQ(truncate(image.c_str(), static_cast<off_t>(spec.disk_bytes)), 0);
    argv.push_back("--disk");
    argv.push_back(image);
  }
  argv.insert(argv.end(), spec.extra.begin(), spec.extra.end());
  auto child = std::make_unique<Subprocess>(argv);
  EXPECT_TRUE(child->wait_for_output("progress", seconds(60))) << child->out() << child->err();
  return child;
}

std::unique_ptr<Subprocess> MigrationRig::start_destination(uint16_t port,
                                                            const std::string& disk_name,
                                                            std::vector<std::string> extra,
                                                            const std::string& control) {
  std::vector<std::string> argv{ferry_binary(), "run", "--incoming",
                                "tcp:127.0.0.1:" + std::to_string(port)};
  if (!disk_name.empty()) {
    argv.push_back("--disk");
    argv.push_back(dir_ + "/" + disk_name);
  }
  if (!control.empty()) {
    argv.push_back("--control");
    argv.push_back(control);
  }
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto child = std::make_unique<Subprocess>(argv);
  EXPECT_TRUE(child->wait_for_output("waiting for a migration", seconds(30), true)) << child->err();
  return child;
}

RunResult MigrationRig::migrate(const std::string& control, uint16_t port,
                                std::vector<std::string> extra) {
  report_path_ = dir_ + "/report-" + std::to_string(port) + ".json";
  std::vector<std::string> argv{ferry_binary(), "migrate",
                                "--control",    control,
                                "--to",         "tcp:127.0.0.1:" + std::to_string(port),
                                "--report",     report_path_};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return run_command(argv, seconds(180));
}

nlohmann::json MigrationRig::last_report() const {
  std::ifstream in(report_path_);
  return nlohmann::json::parse(in, nullptr, false);
}

CuttingProxy::CuttingProxy(uint16_t target_port, uint64_t cut_after, uint64_t cut_reverse_after)
    : target_(target_port), cut_after_(cut_after), cut_reverse_after_(cut_reverse_after) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  listen(listen_fd_, 8);
  socklen_t len = sizeof(addr);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { run(); });
}

CuttingProxy::~CuttingProxy() {
  stop_ = true;
  thread_.join();
  close(listen_fd_);
}

void CuttingProxy::run() {
  while (!stop_) {
    pollfd lp{listen_fd_, POLLIN, 0};
    if (poll(&lp, 1, 100) <= 0) {
      continue;
    }
    int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) {
      continue;
    }
    int server = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(target_);
    if (connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      close(client);
      close(server);
      continue;
    }
    char buf[65536];
    bool open = true;
    while (open && !stop_) {
      pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
      if (poll(fds, 2, 100) <= 0) {
        continue;
      }
      for (int i = 0; i < 2 && open; ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
          continue;
        }
        const int from = i == 0 ? client : server;
        const int to = i == 0 ? server : client;
        size_t want = sizeof(buf);
        if (i == 0) {
          want = std::min<uint64_t>(want, cut_after_ - forwarded_.load());
        }
        ssize_t n = want == 0 ? 0 : read(from, buf, want);
        if (n > 0 && i == 1 && returned_ + static_cast<uint64_t>(n) > cut_reverse_after_) {
          cut_ = true;  // the server's next message does not get through
          open = false;
          break;
        }
        if (n <= 0 || write(to, buf, static_cast<size_t>(n)) != n) {
          open = false;
          break;
        }
        if (i == 1) {
          returned_ += static_cast<uint64_t>(n);
        }
        if (i == 0) {
          forwarded_ += static_cast<uint64_t>(n);
          if (forwarded_.load() >= cut_after_) {
            cut_ = true;
            open = false;
          }
        }
      }
    }
    // An abrupt cut: RST rather than an orderly close, like a failed link or peer.
    linger lg{1, 0};
    setsockopt(client, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    setsockopt(server, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(client);
    close(server);
  }
}

}  // namespace ferry::testing
