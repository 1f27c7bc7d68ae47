// Safe defaults of the migration listener (accept_channels): a silent connection holds it
// for handshake_timeout at most; once a session started, only its announced channels from
// its own peer address are accepted; an address that keeps sending garbage is cut off.
// Real loopback sockets (127.0.0.x), no root.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include "ferry/kernel-interfaces/le_bytes.h"
#include "ferry/migration/channel.h"

namespace ferry::migration {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

Listener loopback() {
  auto address = Address::parse("tcp:127.0.0.1:0");
  EXPECT_TRUE(address);
  auto listener = Listener::bind(*address);
  EXPECT_TRUE(listener) << listener.error().message();
  return std::move(*listener);
}

// A raw client socket from `source_ip` (any 127.0.0.x is local on Linux).
int raw_connect(const Listener& listener, const char* source_ip = "127.0.0.1") {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  inet_pton(AF_INET, source_ip, &local.sin_addr);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)), 0);
  sockaddr_in remote{};
  remote.sin_family = AF_INET;
  remote.sin_port = htons(listener.address().port);
  inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof(remote)), 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

void send_preamble(int fd, uint16_t index, uint16_t count, uint64_t session) {
  ChannelPreamble p;
  p.index = index;
  p.count = count;
  p.session_id = session;
  auto bytes = encode_preamble(p);
  ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(bytes.size()));
}

// The acceptor's ChannelStatus for this connection, or -1 if it closed without one.
int read_status(int fd) {
  uint8_t ack[kChannelAckSize];
  size_t got = 0;
  while (got < sizeof(ack)) {
    ssize_t n = ::recv(fd, ack + got, sizeof(ack) - got, 0);
    if (n <= 0) {
      return -1;
    }
    got += static_cast<size_t>(n);
  }
  uint32_t status = 0;
  std::memcpy(&status, ack + 8, 4);  // little-endian host
  return static_cast<int>(status);
}

struct Refusals {
  std::mutex mu;
  std::vector<std::string> lines;
  void add(const StreamError& e) {
    std::lock_guard lock(mu);
    lines.push_back(e.message());
  }
  bool any(const std::string& needle) {
    std::lock_guard lock(mu);
    for (const auto& l : lines) {
      if (l.find(needle) != std::string::npos) {
        return true;
      }
    }
    return false;
  }
};

ChannelOptions acceptor(Refusals& refusals, milliseconds handshake = milliseconds(300)) {
  ChannelOptions o;
  o.timeout = milliseconds(10000);
  o.handshake_timeout = handshake;
  o.on_refused = [&refusals](const StreamError& e) { refusals.add(e); };
  return o;
}

TEST(AcceptLimits, DefaultsAreBounded) {
  ChannelOptions o;
  EXPECT_GT(o.handshake_timeout.count(), 0);
  EXPECT_LE(o.handshake_timeout, milliseconds(10000));
  EXPECT_GT(o.max_refusals_per_peer, 0u);
  EXPECT_LE(o.max_refusals_per_peer, 64u);
}

TEST(AcceptLimits, SilentConnectionHoldsTheListenerOnlyForTheHandshakeTimeout) {
  Listener listener = loopback();
  Refusals refusals;
  const int silent = raw_connect(listener);  // connects, never says a word
  auto t0 = Clock::now();
  auto accepted =
      std::async(std::launch::async, [&] { return accept_channels(listener, acceptor(refusals)); });
  const int real = raw_connect(listener);
  send_preamble(real, 0, 1, 42);
  EXPECT_EQ(read_status(real), static_cast<int>(ChannelStatus::Ok));
  auto channels = accepted.get();
  ASSERT_TRUE(channels) << channels.error().message();
  EXPECT_EQ(channels->size(), 1u);
  EXPECT_LT(Clock::now() - t0, milliseconds(3000)) << "the silent connection held the listener";
  EXPECT_TRUE(refusals.any("no channel preamble")) << "the silent one is reported";
  ::close(silent);
  ::close(real);
}

TEST(AcceptLimits, ChannelsOfTheSessionFromAnotherAddressAreRefused) {
  Listener listener = loopback();
  Refusals refusals;
  auto accepted =
      std::async(std::launch::async, [&] { return accept_channels(listener, acceptor(refusals)); });
  const int first = raw_connect(listener, "127.0.0.1");
  send_preamble(first, 0, 2, 7);
  EXPECT_EQ(read_status(first), static_cast<int>(ChannelStatus::Ok));
  // Right session id and a free index, but from another host: refused with a reason.
  const int foreign = raw_connect(listener, "127.0.0.2");
  send_preamble(foreign, 1, 2, 7);
  EXPECT_EQ(read_status(foreign), static_cast<int>(ChannelStatus::OtherSession));
  // Another session entirely, also refused.
  const int other = raw_connect(listener, "127.0.0.1");
  send_preamble(other, 1, 2, 8);
  EXPECT_EQ(read_status(other), static_cast<int>(ChannelStatus::OtherSession));
  const int second = raw_connect(listener, "127.0.0.1");
  send_preamble(second, 1, 2, 7);
  EXPECT_EQ(read_status(second), static_cast<int>(ChannelStatus::Ok));
  auto channels = accepted.get();
  ASSERT_TRUE(channels) << channels.error().message();
  EXPECT_EQ(channels->size(), 2u);
  EXPECT_TRUE(refusals.any("not this address")) << "the foreign peer's refusal names why";
  for (int fd : {first, foreign, other, second}) {
    ::close(fd);
  }
}

TEST(AcceptLimits, DuplicateAndOutOfCountChannelsAreRefused) {
  Listener listener = loopback();
  Refusals refusals;
  auto accepted =
      std::async(std::launch::async, [&] { return accept_channels(listener, acceptor(refusals)); });
  const int first = raw_connect(listener);
  send_preamble(first, 0, 2, 9);
  EXPECT_EQ(read_status(first), static_cast<int>(ChannelStatus::Ok));
  const int dup = raw_connect(listener);
  send_preamble(dup, 0, 2, 9);
  EXPECT_EQ(read_status(dup), static_cast<int>(ChannelStatus::DuplicateIndex));
  const int beyond = raw_connect(listener);  // index 2 of an announced 2: no third channel
  send_preamble(beyond, 2, 3, 9);
  EXPECT_EQ(read_status(beyond), static_cast<int>(ChannelStatus::BadIndex));
  const int second = raw_connect(listener);
  send_preamble(second, 1, 2, 9);
  EXPECT_EQ(read_status(second), static_cast<int>(ChannelStatus::Ok));
  auto channels = accepted.get();
  ASSERT_TRUE(channels) << channels.error().message();
  EXPECT_EQ(channels->size(), 2u);
  for (int fd : {first, dup, beyond, second}) {
    ::close(fd);
  }
}

TEST(AcceptLimits, AnAddressThatKeepsFailingIsClosedUnread) {
  Listener listener = loopback();
  Refusals refusals;
  ChannelOptions options = acceptor(refusals);
  options.max_refusals_per_peer = 3;
  auto accepted =
      std::async(std::launch::async, [&] { return accept_channels(listener, options); });
  for (int i = 0; i < 3; ++i) {
    const int junk = raw_connect(listener, "127.0.0.3");
    const char garbage[32] = "GET / HTTP/1.0\r\n\r\n";
    ASSERT_EQ(::send(junk, garbage, sizeof(garbage), MSG_NOSIGNAL), 32);
    EXPECT_EQ(read_status(junk), -1) << "garbage gets no reply";
    ::close(junk);
  }
  // Now even a well-formed preamble from that address is not read.
  const int late = raw_connect(listener, "127.0.0.3");
  send_preamble(late, 0, 1, 11);
  EXPECT_EQ(read_status(late), -1);
  ::close(late);
  // Other addresses are unaffected.
  const int good = raw_connect(listener, "127.0.0.1");
  send_preamble(good, 0, 1, 12);
  EXPECT_EQ(read_status(good), static_cast<int>(ChannelStatus::Ok));
  auto channels = accepted.get();
  ASSERT_TRUE(channels) << channels.error().message();
  EXPECT_TRUE(refusals.any("closed unread"));
  ::close(good);
}

}  // namespace
}  // namespace ferry::migration
