#include "phase_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace ferry::testing {

namespace {

// Wire constants (migration/include/ferry/migration/{wire,channel}.h), repeated here so
// the proxy is an independent reading of the format.
constexpr size_t kPreambleSize = 32;
constexpr size_t kAckSize = 16;
constexpr size_t kHeaderSize = 16;
constexpr uint16_t kPageBatch = 4;
constexpr uint16_t kDiskBatch = 5;
constexpr uint16_t kRoundEnd = 6;
constexpr uint16_t kBlackoutBegin = 7;

const char* type_name(uint16_t type) {
  static constexpr const char* kNames[] = {
      "Preamble",      "Hello",       "HelloReply",   "ChannelJoin", "PageBatch",
      "DiskBatch",     "RoundEnd",    "BlackoutBegin", "ChannelDone", "MachineState",
      "Digest",        "DestReady",   "Commit",       "Resumed",     "Cancel",
      "Error"};
  return type < std::size(kNames) ? kNames[type] : "Unknown";
}

bool write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n <= 0) {
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

void close_abruptly(int fd) {
  linger lg{1, 0};  // RST, like a failed link or a dead host
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  close(fd);
}

int connect_loopback(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

PhaseProxy::PhaseProxy(uint16_t target_port, Trigger trigger, Action action,
                       std::chrono::milliseconds stall)
    : target_(target_port), trigger_(std::move(trigger)), action_(std::move(action)),
      stall_(stall) {
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

PhaseProxy::~PhaseProxy() {
  stop_ = true;
  thread_.join();
  close(listen_fd_);
}

std::string PhaseProxy::trace() const {
  std::lock_guard lock(trace_mu_);
  return trace_;
}

void PhaseProxy::run() {
  while (!stop_) {
    pollfd lp{listen_fd_, POLLIN, 0};
    if (poll(&lp, 1, 100) <= 0) {
      continue;
    }
    int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) {
      continue;
    }
    int server = connect_loopback(target_);
    if (server < 0) {
      close(client);
      continue;
    }
    serve(client, server);
  }
}

void PhaseProxy::serve(int client, int server) {
  std::string buffers[2];
  bool header_done[2] = {false, false};
  bool open = true;
  while (open && !stop_ && !fired_) {
    pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
    if (poll(fds, 2, 100) <= 0) {
      continue;
    }
    for (int i = 0; i < 2 && open && !fired_; ++i) {
      if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
        open = i == 0 ? pump(client, server, Dir::ToDest, buffers[0], header_done[0])
                      : pump(server, client, Dir::ToSource, buffers[1], header_done[1]);
      }
    }
  }
  if (fired_ && stall_.count() > 0) {
    // Silent peer: read nothing, send nothing, until one side gives up and closes.
    const auto end = std::chrono::steady_clock::now() + stall_;
    while (!stop_ && std::chrono::steady_clock::now() < end) {
      pollfd fds[2] = {{client, POLLRDHUP, 0}, {server, POLLRDHUP, 0}};
      if (poll(fds, 2, 100) > 0 &&
          ((fds[0].revents | fds[1].revents) & (POLLRDHUP | POLLHUP | POLLERR))) {
        break;
      }
    }
  }
  if (fired_) {
    close_abruptly(client);
    close_abruptly(server);
  } else {
    // A peer ended the connection itself: pass its close on in order, after its data.
    close(client);
    close(server);
  }
}

// Reads what is available from `from` and forwards every complete unit, asking the
// trigger first. False when the connection ends (EOF, error, or the fault fired).
bool PhaseProxy::pump(int from, int to, Dir dir, std::string& buffer, bool& header_done) {
  char chunk[65536];
  ssize_t n = read(from, chunk, sizeof(chunk));
  if (n <= 0) {
    return false;
  }
  buffer.append(chunk, static_cast<size_t>(n));
  while (true) {
    size_t size = 0;
    WireUnit unit = state_;
    unit.dir = dir;
    if (!header_done) {
      size = dir == Dir::ToDest ? kPreambleSize : kAckSize;
    } else if (buffer.size() >= kHeaderSize) {
      uint16_t type = 0;
      uint32_t length = 0;
      std::memcpy(&type, buffer.data(), 2);  // little-endian host (x86-64)
      std::memcpy(&length, buffer.data() + 4, 4);
      unit.type = type;
      unit.length = length;
      size = kHeaderSize + length;
    } else {
      return true;
    }
    if (buffer.size() < size) {
      return true;
    }
    const Verdict verdict = fired_ ? Verdict::Forward : trigger_(unit);
    {
      std::lock_guard lock(trace_mu_);
      if (unit.type != kPageBatch && unit.type != kDiskBatch) {
        trace_ += dir == Dir::ToDest ? " >" : " <";
        trace_ += type_name(unit.type);
      }
      if (verdict != Verdict::Forward) {
        trace_ += verdict == Verdict::FireBefore ? " [FIRE before]" : " [FIRE mid-record]";
      }
    }
    if (verdict == Verdict::FireMidRecord) {
      write_all(to, buffer.data(), kHeaderSize);
    }
    if (verdict != Verdict::Forward) {
      fired_ = true;
      if (action_) {
        action_();
      }
      return false;
    }
    if (!write_all(to, buffer.data(), size)) {
      return false;
    }
    buffer.erase(0, size);
    header_done = true;
    if (dir == Dir::ToDest) {
      if (unit.type == kRoundEnd) {
        ++state_.round_ends;
        state_.data_in_round = 0;
      } else if (unit.type == kBlackoutBegin) {
        state_.blackout = true;
        state_.data_in_round = 0;
      } else if (unit.type == kPageBatch || unit.type == kDiskBatch) {
        ++state_.data_in_round;
      }
    }
  }
}

}  // namespace ferry::testing
