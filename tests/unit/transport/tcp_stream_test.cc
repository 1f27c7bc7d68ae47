// TcpStream and addresses over real loopback sockets: parsing, large round trips,
// batching, timeouts, peer close, connection refusal and cross-thread shutdown.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "ferry/migration/address.h"
#include "ferry/migration/tcp_stream.h"
#include "transport_test_util.h"

namespace ferry::migration {
namespace {

using std::chrono::milliseconds;
using test::pattern;
using test::tcp_pair;

TEST(Address, ParsesIpv4Ipv6AndNames) {
  auto v4 = Address::parse("tcp:127.0.0.1:4444");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 4444);
  auto v6 = Address::parse("tcp:[::1]:80");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->to_string(), "tcp:[::1]:80");
  auto name = Address::parse("tcp:localhost:5000");
  ASSERT_TRUE(name);
  auto resolved = name->resolve();
  ASSERT_TRUE(resolved) << resolved.error().message();
  EXPECT_FALSE(resolved->empty());
}

TEST(Address, RejectsMalformedTextWithAReason) {
  struct Case {
    const char* text;
    const char* reason;
  };
  const Case cases[] = {
      {"127.0.0.1:4444", "missing 'tcp:' prefix"},
      {"tcp:127.0.0.1", "missing port"},
      {"tcp:127.0.0.1:", "missing port"},
      {"tcp::4444", "missing host"},
      {"tcp:::1:4444", "need brackets"},
      {"tcp:[::1:4444", "closing ']'"},
      {"tcp:[::1]4444", "missing ':PORT'"},
      {"tcp:[nope]:1", "not an IPv6 address"},
      {"tcp:host:65536", "0..65535"},
      {"tcp:host:12ab", "0..65535"},
  };
  for (const auto& c : cases) {
    auto parsed = Address::parse(c.text);
    ASSERT_FALSE(parsed) << c.text;
    EXPECT_NE(parsed.error().message().find(c.reason), std::string::npos)
        << c.text << " -> " << parsed.error().message();
  }
  auto bad_host = Address::parse("tcp:no-such-host.invalid:1");
  ASSERT_TRUE(bad_host);
  EXPECT_FALSE(bad_host->resolve());
}

TEST(TcpStream, LargeRoundTripBothDirections) {
  auto [client, server] = tcp_pair();
  const auto up = pattern(48 << 20, 1);
  const auto down = pattern(9 << 20, 2);
  std::thread sender([&, &client = client] {
    ASSERT_TRUE(client->write_all(up));
    ASSERT_TRUE(client->flush());
    std::vector<uint8_t> back(down.size());
    ASSERT_TRUE(client->read_exact(back));
    EXPECT_TRUE(back == down);
  });
  std::vector<uint8_t> got(up.size());
  // Mixed read sizes: tiny reads from the buffer, then one large direct read.
  ASSERT_TRUE(server->read_exact(std::span(got).first(3)));
  ASSERT_TRUE(server->read_exact(std::span(got).subspan(3, 70000)));
  ASSERT_TRUE(server->read_exact(std::span(got).subspan(70003)));
  EXPECT_TRUE(got == up);
  ASSERT_TRUE(server->write_all(down));
  ASSERT_TRUE(server->flush());
  sender.join();
  EXPECT_EQ(client->stats().bytes_sent, up.size());
  EXPECT_EQ(server->stats().bytes_received, up.size());
  EXPECT_EQ(client->peer().rfind("tcp:127.0.0.1:", 0), 0u);
}

TEST(TcpStream, SmallWritesAreBatchedUntilFlush) {
  auto [client, server] = tcp_pair();
  const auto data = pattern(64 << 10, 3);
  for (size_t off = 0; off < data.size(); off += 64) {
    ASSERT_TRUE(client->write_all(std::span(data).subspan(off, 64)));
  }
  EXPECT_EQ(client->stats().send_ops, 0u);  // still in the send buffer
  ASSERT_TRUE(client->flush());
  EXPECT_LE(client->stats().send_ops, 2u);
  std::vector<uint8_t> got(data.size());
  ASSERT_TRUE(server->read_exact(got));
  EXPECT_EQ(got, data);
}

TEST(TcpStream, ZeroCopySendsRoundTrip) {
  TcpOptions options;
  options.zero_copy_threshold = 64 << 10;
  auto [client, server] = tcp_pair(options);
  const auto data = pattern(8 << 20, 4);
  std::thread sender([&, &client = client] {
    ASSERT_TRUE(client->write_all(data));  // direct send from caller memory
    ASSERT_TRUE(client->write_all(std::span(data).first(300 << 10)));  // via send buffer
    ASSERT_TRUE(client->flush());
  });
  std::vector<uint8_t> got(data.size() + (300 << 10));
  ASSERT_TRUE(server->read_exact(got));
  sender.join();
  EXPECT_TRUE(std::equal(data.begin(), data.end(), got.begin()));
  EXPECT_TRUE(std::equal(data.begin(), data.begin() + (300 << 10), got.begin() + data.size()));
  EXPECT_GT(client->stats().zero_copy_sends, 0u);
}

TEST(TcpStream, ZeroCopySendToAPeerThatNeverReadsTimesOutAndBreaksTheStream) {
  TcpOptions options;
  options.zero_copy_threshold = 64 << 10;
  options.socket_buffer = 0;
  auto [client, server] = tcp_pair(options);
  client->set_timeout(milliseconds(100));
  auto start = std::chrono::steady_clock::now();
  auto w = client->write_all(pattern(256 << 10, 10));
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().errc, StreamErrc::TimedOut) << w.error().message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(3000));
  auto again = client->write_all(pattern(16, 10));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().errc, StreamErrc::TimedOut);
}

TEST(TcpStream, ReadTimesOutAndTheStreamStaysUsable) {
  auto [client, server] = tcp_pair();
  server->set_timeout(milliseconds(50));
  std::vector<uint8_t> buf(16);
  auto start = std::chrono::steady_clock::now();
  auto r = server->read_exact(buf);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().errc, StreamErrc::TimedOut);
  EXPECT_NE(r.error().message().find("no progress for 50 ms"), std::string::npos);
  EXPECT_GE(elapsed, milliseconds(45));
  EXPECT_LT(elapsed, milliseconds(2000));
  const auto data = pattern(16, 5);
  ASSERT_TRUE(client->write_all(data));
  ASSERT_TRUE(client->flush());
  ASSERT_TRUE(server->read_exact(buf));
  EXPECT_EQ(buf, data);
}

TEST(TcpStream, WriteTimesOutWhenThePeerStopsReading) {
  TcpOptions options;
  options.socket_buffer = 64 << 10;
  auto [client, server] = tcp_pair(options);
  client->set_timeout(milliseconds(100));
  const auto data = pattern(32 << 20, 6);
  auto w = client->write_all(data);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().errc, StreamErrc::TimedOut);
}

TEST(TcpStream, PeerCloseIsClosedNotAnError) {
  auto [client, server] = tcp_pair();
  const auto data = pattern(10, 7);
  ASSERT_TRUE(client->write_all(data));
  ASSERT_TRUE(client->flush());
  client.reset();
  std::vector<uint8_t> buf(20);
  auto r = server->read_exact(buf);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().errc, StreamErrc::Closed);
  EXPECT_NE(r.error().message().find("EOF after 10 bytes"), std::string::npos);
  // Writing to a closed peer ends in Closed (EPIPE/ECONNRESET), never SIGPIPE.
  StreamResult<void> w;
  for (int i = 0; i < 100 && w; ++i) {
    w = server->write_all(pattern(1 << 20, 8));
    if (w) {
      w = server->flush();
    }
  }
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().errc, StreamErrc::Closed);
}

TEST(TcpStream, ShutdownFromAnotherThreadAbortsABlockedRead) {
  auto [client, server] = tcp_pair();
  std::thread killer([&, &server = server] {
    std::this_thread::sleep_for(milliseconds(50));
    server->shutdown();
  });
  std::vector<uint8_t> buf(1);
  auto start = std::chrono::steady_clock::now();
  auto r = server->read_exact(buf);  // no timeout: only shutdown() can end this
  killer.join();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().errc, StreamErrc::Aborted);
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(2000));
  EXPECT_EQ(server->write_all(buf).error().errc, StreamErrc::Aborted);
}

TEST(TcpStream, ShutdownFromAnotherThreadAbortsABlockedWrite) {
  TcpOptions options;
  options.socket_buffer = 64 << 10;
  auto [client, server] = tcp_pair(options);
  std::thread killer([&, &client = client] {
    std::this_thread::sleep_for(milliseconds(50));
    client->shutdown();
  });
  auto w = client->write_all(pattern(64 << 20, 9));
  killer.join();
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().errc, StreamErrc::Aborted);
}

TEST(TcpStream, ConnectionRefusedAndAcceptTimeout) {
  Listener listener = test::loopback_listener();
  Address gone = listener.address();
  auto t = listener.accept(milliseconds(30));
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().errc, StreamErrc::TimedOut);
  { Listener dropped = std::move(listener); }
  auto c = connect(gone, milliseconds(1000));
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().errc, StreamErrc::Io);
  EXPECT_EQ(c.error().code.value(), ECONNREFUSED);
  EXPECT_NE(c.error().message().find(gone.to_string()), std::string::npos);
}

}  // namespace
}  // namespace ferry::migration
