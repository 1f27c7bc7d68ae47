// Multi-channel establishment over loopback, plain and TLS: index order, data on every
// channel at once, strays (garbage, other sessions, duplicates) refused without ending
// the wait, timeouts that say how far it got, and TLS/plaintext mismatches both ways.
#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <mutex>
#include <thread>

#include "ferry/migration/channel.h"
#include "ferry/migration/tls_config.h"
#include "transport_test_util.h"

namespace ferry::migration {
namespace {

using std::chrono::milliseconds;
namespace fs = std::filesystem;
using Channels = std::vector<std::unique_ptr<ByteStream>>;

class Channel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/ferry-channel-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = new fs::path(tmpl);
    for (const char* host : {"src", "dst"}) {
      auto r = generate_certificate((*root_ / "ca").string(), (*root_ / host).string(),
                                    {.name = host});
      ASSERT_TRUE(r) << r.error().message();
    }
    auto r = generate_certificate((*root_ / "other-ca").string(), (*root_ / "rogue").string(),
                                  {.name = "src"});
    ASSERT_TRUE(r) << r.error().message();
  }
  static void TearDownTestSuite() {
    fs::remove_all(*root_);
    delete root_;
  }
  static TlsConfig tls(const char* host) {
    auto c = TlsConfig::load_dir((*root_ / host).string());
    EXPECT_TRUE(c) << c.error().message();
    return *c;
  }
  static ChannelOptions opts(std::optional<TlsConfig> config = std::nullopt,
                             milliseconds timeout = milliseconds(5000)) {
    ChannelOptions o;
    o.tls = std::move(config);
    o.timeout = timeout;
    return o;
  }
  // Each channel i carries its own index and a payload; every channel is read by its own
  // thread so all N are busy at once.
  static void exchange_on_all(Channels& sender, Channels& receiver) {
    ASSERT_EQ(sender.size(), receiver.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < sender.size(); ++i) {
      threads.emplace_back([&, i] {
        auto data = test::pattern(2 << 20, i);
        data[0] = static_cast<uint8_t>(i);
        ASSERT_TRUE(sender[i]->write_all(data));
        ASSERT_TRUE(sender[i]->flush());
      });
      threads.emplace_back([&, i] {
        std::vector<uint8_t> got(2 << 20);
        ASSERT_TRUE(receiver[i]->read_exact(got));
        auto want = test::pattern(2 << 20, i);
        want[0] = static_cast<uint8_t>(i);
        EXPECT_TRUE(got == want) << "channel " << i;
      });
    }
    for (auto& t : threads) {
      t.join();
    }
  }
  static inline fs::path* root_ = nullptr;
};

TEST_F(Channel, PlainChannelsArriveInIndexOrderAndCarryData) {
  Listener listener = test::loopback_listener();
  auto acceptor = std::async(std::launch::async, [&] { return accept_channels(listener, opts()); });
  auto connected = connect_channels(listener.address(), 4, opts());
  auto accepted = acceptor.get();
  ASSERT_TRUE(connected) << connected.error().message();
  ASSERT_TRUE(accepted) << accepted.error().message();
  ASSERT_EQ(accepted->size(), 4u);
  exchange_on_all(*connected, *accepted);
  exchange_on_all(*accepted, *connected);
}

TEST_F(Channel, TlsChannelsWithExpectedNames) {
  Listener listener = test::loopback_listener();
  TlsConfig dst = tls("dst");
  dst.expect_peer_name("src");
  TlsConfig src = tls("src");
  src.expect_peer_name("dst");
  auto acceptor =
      std::async(std::launch::async, [&] { return accept_channels(listener, opts(dst)); });
  auto connected = connect_channels(listener.address(), 3, opts(src));
  auto accepted = acceptor.get();
  ASSERT_TRUE(connected) << connected.error().message();
  ASSERT_TRUE(accepted) << accepted.error().message();
  EXPECT_NE((*accepted)[0]->peer().find("tls("), std::string::npos);
  exchange_on_all(*connected, *accepted);
}

TEST_F(Channel, StraysAreRefusedWithoutEndingTheWait) {
  Listener listener = test::loopback_listener();
  std::mutex mu;
  std::vector<std::string> refusals;
  ChannelOptions acceptor_opts = opts();
  acceptor_opts.on_refused = [&](const StreamError& e) {
    std::lock_guard lock(mu);
    refusals.push_back(e.message());
  };
  auto acceptor =
      std::async(std::launch::async, [&] { return accept_channels(listener, acceptor_opts); });

  auto raw = [&](std::span<const uint8_t> bytes) {
    auto s = connect(listener.address(), milliseconds(2000));
    EXPECT_TRUE(s);
    EXPECT_TRUE((*s)->write_all(bytes));
    EXPECT_TRUE((*s)->flush());
    return std::move(*s);
  };
  auto reply_status = [](TcpStream& s) {
    uint8_t ack[kChannelAckSize];
    s.set_timeout(milliseconds(2000));
    EXPECT_TRUE(s.read_exact(ack));
    return static_cast<ChannelStatus>(ack[8] | ack[9] << 8);
  };
  const auto garbage = test::pattern(kChannelPreambleSize, 99);
  auto g = raw(garbage);
  std::vector<uint8_t> probe(1);
  EXPECT_EQ(g->read_exact(probe).error().errc, StreamErrc::Closed);  // no reply, just a close

  ChannelPreamble a{kChannelVersion, 0, 2, 0xAAAA};
  auto a0 = raw(encode_preamble(a));
  EXPECT_EQ(reply_status(*a0), ChannelStatus::Ok);
  auto b0 = raw(encode_preamble({kChannelVersion, 0, 2, 0xBBBB}));
  EXPECT_EQ(reply_status(*b0), ChannelStatus::OtherSession);
  auto dup = raw(encode_preamble(a));
  EXPECT_EQ(reply_status(*dup), ChannelStatus::DuplicateIndex);
  auto badver = raw(encode_preamble({kChannelVersion + 1, 1, 2, 0xAAAA}));
  EXPECT_EQ(reply_status(*badver), ChannelStatus::BadVersion);
  a.index = 1;
  auto a1 = raw(encode_preamble(a));
  EXPECT_EQ(reply_status(*a1), ChannelStatus::Ok);

  auto accepted = acceptor.get();
  ASSERT_TRUE(accepted) << accepted.error().message();
  ASSERT_EQ(accepted->size(), 2u);
  std::lock_guard lock(mu);
  ASSERT_EQ(refusals.size(), 4u);
  EXPECT_NE(refusals[0].find("bad magic"), std::string::npos) << refusals[0];
  EXPECT_NE(refusals[1].find("another migration session"), std::string::npos) << refusals[1];
  EXPECT_NE(refusals[2].find("already connected"), std::string::npos) << refusals[2];
  EXPECT_NE(refusals[3].find("version"), std::string::npos) << refusals[3];
}

TEST_F(Channel, ConnectorLearnsWhyItWasRefused) {
  Listener listener = test::loopback_listener();
  auto acceptor = std::async(std::launch::async, [&] {
    return accept_channels(listener, opts(std::nullopt, milliseconds(1500)));
  });
  // Another session already holds the acceptor.
  auto first = connect(listener.address(), milliseconds(2000));
  ASSERT_TRUE(first);
  ASSERT_TRUE((*first)->write_all(encode_preamble({kChannelVersion, 0, 2, 0x1234})));
  ASSERT_TRUE((*first)->flush());
  uint8_t ack[kChannelAckSize];
  ASSERT_TRUE((*first)->read_exact(ack));
  auto second = connect_channels(listener.address(), 2, opts());
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message().find("refused: the acceptor is busy with another"),
            std::string::npos)
      << second.error().message();
  auto accepted = acceptor.get();
  ASSERT_FALSE(accepted);
  EXPECT_EQ(accepted.error().errc, StreamErrc::TimedOut);
  EXPECT_NE(accepted.error().message().find("1 of 2 channels arrived"), std::string::npos)
      << accepted.error().message();
}

TEST_F(Channel, PlaintextConnectorToTlsListenerIsRefusedOnBothSides) {
  Listener listener = test::loopback_listener();
  auto acceptor = std::async(std::launch::async, [&] {
    return accept_channels(listener, opts(tls("dst"), milliseconds(1000)));
  });
  auto connected = connect_channels(listener.address(), 1, opts());
  ASSERT_FALSE(connected);
  EXPECT_NE(connected.error().message().find("TLS"), std::string::npos)
      << connected.error().message();
  auto accepted = acceptor.get();
  ASSERT_FALSE(accepted);
  EXPECT_NE(accepted.error().message().find("peer is not speaking TLS"), std::string::npos)
      << accepted.error().message();
}

TEST_F(Channel, TlsConnectorToPlaintextListenerIsRefusedOnBothSides) {
  Listener listener = test::loopback_listener();
  auto acceptor = std::async(std::launch::async, [&] {
    return accept_channels(listener, opts(std::nullopt, milliseconds(1000)));
  });
  auto connected = connect_channels(listener.address(), 1, opts(tls("src")));
  ASSERT_FALSE(connected);
  EXPECT_NE(connected.error().message().find("no --tls-dir"), std::string::npos)
      << connected.error().message();
  auto accepted = acceptor.get();
  ASSERT_FALSE(accepted);
  EXPECT_NE(accepted.error().message().find("this listener has no --tls-dir"), std::string::npos)
      << accepted.error().message();
}

TEST_F(Channel, CertificateFromAnotherCaNeverBecomesAChannel) {
  Listener listener = test::loopback_listener();
  auto acceptor = std::async(std::launch::async, [&] {
    return accept_channels(listener, opts(tls("dst"), milliseconds(1000)));
  });
  auto connected = connect_channels(listener.address(), 2, opts(tls("rogue")));
  ASSERT_FALSE(connected);
  EXPECT_EQ(connected.error().errc, StreamErrc::Tls);
  auto accepted = acceptor.get();
  ASSERT_FALSE(accepted);
  EXPECT_NE(accepted.error().message().find("no channel arrived"), std::string::npos);
  EXPECT_NE(accepted.error().message().find("last refused connection"), std::string::npos)
      << accepted.error().message();
}

TEST(ChannelPreamble, RoundTripsAndRejectsBadFields) {
  ChannelPreamble p{kChannelVersion, 3, 8, 0x0123456789abcdefull};
  auto bytes = encode_preamble(p);
  ASSERT_EQ(bytes.size(), kChannelPreambleSize);
  auto back = decode_preamble(bytes);
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->index, 3);
  EXPECT_EQ(back->count, 8);
  EXPECT_EQ(back->session_id, p.session_id);
  EXPECT_FALSE(decode_preamble(std::span(bytes).first(31)));
  auto reserved = bytes;
  reserved[31] = 1;
  EXPECT_NE(decode_preamble(reserved).error().find("reserved"), std::string::npos);
  auto zero = encode_preamble({kChannelVersion, 0, 1, 0});
  EXPECT_NE(decode_preamble(zero).error().find("session id 0"), std::string::npos);
  EXPECT_FALSE(connect_channels(Address{"127.0.0.1", 1}, 0, {}));
  EXPECT_FALSE(connect_channels(Address{"127.0.0.1", 1}, kMaxSessionChannels + 1, {}));
}

}  // namespace
}  // namespace ferry::migration
