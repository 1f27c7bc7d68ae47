// TLS 1.3 with mutual authentication over real loopback sockets and real OpenSSL on both
// sides. Certificates (good, expired, wrong CA) are generated per run with OpenSSL's C
// API into a temp dir. Every refusal must happen in the handshake and say why.
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "ferry/kernel-interfaces/socket.h"
#include "ferry/migration/tls_config.h"
#include "ferry/migration/tls_stream.h"
#include "transport_test_util.h"

namespace ferry::migration {
namespace {

using std::chrono::milliseconds;
namespace fs = std::filesystem;

constexpr milliseconds kTimeout{5000};

class Tls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/ferry-tls-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = new fs::path(tmpl);
    auto gen = [](const char* ca, const char* out, CertificateSpec spec) {
      auto r = generate_certificate((*root_ / ca).string(), (*root_ / out).string(), spec);
      ASSERT_TRUE(r) << r.error().message();
    };
    gen("ca-a", "host-a", {.name = "host-a"});
    gen("ca-a", "host-b", {.name = "host-b", .alt_names = {"127.0.0.1"}});
    gen("ca-a", "expired", {.name = "host-old", .valid_from_s = -7200, .valid_until_s = -3600});
    gen("ca-b", "mallory", {.name = "host-b"});
  }
  static void TearDownTestSuite() {
    fs::remove_all(*root_);
    delete root_;
  }
  static TlsConfig config(const char* dir) {
    auto c = TlsConfig::load_dir((*root_ / dir).string());
    EXPECT_TRUE(c) << c.error().message();
    return *c;
  }
  static fs::path dir(const char* name) { return *root_ / name; }

  struct Outcome {
    StreamResult<std::unique_ptr<ByteStream>> client;
    StreamResult<std::unique_ptr<ByteStream>> server;
  };
  // Handshakes a client and a server over a fresh loopback TCP pair, concurrently.
  static Outcome handshake(const TlsConfig& client_cfg, const TlsConfig& server_cfg) {
    auto [c, s] = test::tcp_pair();
    auto server = std::async(std::launch::async, [&, s = std::move(s)]() mutable {
      return tls_handshake(std::move(s), server_cfg, TlsRole::Server, kTimeout);
    });
    auto client = tls_handshake(std::move(c), client_cfg, TlsRole::Client, kTimeout);
    return Outcome{std::move(client), server.get()};
  }
  static std::string why(const StreamResult<std::unique_ptr<ByteStream>>& r) {
    if (r) {
      return "<succeeded>";
    }
    if (std::getenv("FERRY_TEST_VERBOSE") != nullptr) {
      std::fprintf(stderr, "  refusal: %s\n", r.error().message().c_str());
    }
    return r.error().message();
  }

  static inline fs::path* root_ = nullptr;
};

TEST_F(Tls, MutualHandshakeCarriesLargeDataBothWays) {
  auto out = handshake(config("host-b"), config("host-a"));
  ASSERT_TRUE(out.client) << why(out.client);
  ASSERT_TRUE(out.server) << why(out.server);
  auto& client = *out.client;
  auto& server = *out.server;
  EXPECT_NE(client->peer().find("CN=host-a"), std::string::npos) << client->peer();
  EXPECT_NE(server->peer().find("CN=host-b"), std::string::npos) << server->peer();
  const auto up = test::pattern(24 << 20, 11);
  const auto down = test::pattern(3 << 20, 12);
  std::thread writer([&] {
    ASSERT_TRUE(client->write_all(up));
    ASSERT_TRUE(client->flush());
    std::vector<uint8_t> back(down.size());
    ASSERT_TRUE(client->read_exact(back));
    EXPECT_TRUE(back == down);
  });
  std::vector<uint8_t> got(up.size());
  ASSERT_TRUE(server->read_exact(std::span(got).first(7)));
  ASSERT_TRUE(server->read_exact(std::span(got).subspan(7)));
  EXPECT_TRUE(got == up);
  ASSERT_TRUE(server->write_all(down));
  ASSERT_TRUE(server->flush());
  writer.join();
}

// Forwards to another stream but hides its type, so TlsStream cannot use TcpStream's
// read_some and must read each record exactly (the path any non-TCP ByteStream takes).
class OpaqueStream final : public ByteStream {
 public:
  explicit OpaqueStream(std::unique_ptr<ByteStream> inner) : inner_(std::move(inner)) {}
  StreamResult<void> write_all(std::span<const uint8_t> d) override { return inner_->write_all(d); }
  StreamResult<void> read_exact(std::span<uint8_t> out) override { return inner_->read_exact(out); }
  StreamResult<void> flush() override { return inner_->flush(); }
  void set_timeout(std::chrono::milliseconds t) override { inner_->set_timeout(t); }
  void shutdown() override { inner_->shutdown(); }
  std::string peer() const override { return "opaque(" + inner_->peer() + ")"; }

 private:
  std::unique_ptr<ByteStream> inner_;
};

TEST_F(Tls, WorksOverAnyByteStreamWithExactReads) {
  auto [c, s] = test::tcp_pair();
  TlsConfig server_cfg = config("host-a");
  auto server = std::async(std::launch::async, [&, s = std::move(s)]() mutable {
    return tls_handshake(std::make_unique<OpaqueStream>(std::move(s)), server_cfg,
                         TlsRole::Server, kTimeout);
  });
  auto client = tls_handshake(std::make_unique<OpaqueStream>(std::move(c)), config("host-b"),
                              TlsRole::Client, kTimeout);
  auto srv = server.get();
  ASSERT_TRUE(client) << why(client);
  ASSERT_TRUE(srv) << why(srv);
  EXPECT_NE((*srv)->peer().find("opaque(tcp:"), std::string::npos);
  const auto data = test::pattern(3 << 20, 13);
  std::thread writer([&] {
    ASSERT_TRUE((*client)->write_all(data));
    ASSERT_TRUE((*client)->flush());
  });
  std::vector<uint8_t> got(data.size());
  ASSERT_TRUE((*srv)->read_exact(got));
  writer.join();
  EXPECT_TRUE(got == data);
}

TEST_F(Tls, ExpectedPeerNamesThatMatchAreAccepted) {
  TlsConfig client = config("host-b");
  client.expect_peer_name("host-a");
  TlsConfig server = config("host-a");
  server.expect_peer_name("127.0.0.1");  // host-b's IP subjectAltName
  auto out = handshake(client, server);
  EXPECT_TRUE(out.client) << why(out.client);
  EXPECT_TRUE(out.server) << why(out.server);
}

TEST_F(Tls, WrongPeerNameIsRefused) {
  TlsConfig client = config("host-b");
  client.expect_peer_name("migration.example");
  auto out = handshake(client, config("host-a"));
  ASSERT_FALSE(out.client);
  EXPECT_EQ(out.client.error().errc, StreamErrc::Tls);
  EXPECT_NE(why(out.client).find("not valid for the expected name 'migration.example'"),
            std::string::npos)
      << why(out.client);
  ASSERT_FALSE(out.server);  // the server never gets to the application data
  EXPECT_EQ(out.server.error().errc, StreamErrc::Tls) << why(out.server);
}

TEST_F(Tls, ClientCertificateFromAnotherCaIsRefused) {
  // Mallory trusts our CA too (ca.pem bundles both), so it gets as far as presenting its
  // own certificate, which CA A did not sign.
  fs::path both = dir("mallory-trusts-a");
  fs::create_directories(both);
  {
    std::ofstream ca(both / "ca.pem");
    ca << std::ifstream(dir("mallory") / "ca.pem").rdbuf();
    ca << std::ifstream(dir("host-a") / "ca.pem").rdbuf();
  }
  fs::copy_file(dir("mallory") / "cert.pem", both / "cert.pem");
  fs::copy_file(dir("mallory") / "key.pem", both / "key.pem");
  auto out = handshake(config("mallory-trusts-a"), config("host-a"));
  ASSERT_FALSE(out.server);
  EXPECT_EQ(out.server.error().errc, StreamErrc::Tls);
  EXPECT_NE(why(out.server).find("client certificate (CN=host-b,O=Ferry test) is not signed by "
                                 "the configured CA"),
            std::string::npos)
      << why(out.server);
  ASSERT_FALSE(out.client);
  EXPECT_NE(why(out.client).find("unknown ca"), std::string::npos) << why(out.client);
}

TEST_F(Tls, MutuallyDistrustingCasAreRefusedOnBothSides) {
  auto out = handshake(config("mallory"), config("host-a"));
  ASSERT_FALSE(out.client);
  EXPECT_NE(why(out.client).find("server certificate (CN=host-a,O=Ferry test) is not signed"),
            std::string::npos)
      << why(out.client);
  ASSERT_FALSE(out.server);
  EXPECT_NE(why(out.server).find("refused"), std::string::npos) << why(out.server);
}

TEST_F(Tls, ServerCertificateFromAnotherCaIsRefusedByTheClient) {
  auto out = handshake(config("host-b"), config("mallory"));
  ASSERT_FALSE(out.client);
  EXPECT_NE(why(out.client).find("server certificate"), std::string::npos) << why(out.client);
  EXPECT_NE(why(out.client).find("not signed by the configured CA"), std::string::npos);
  ASSERT_FALSE(out.server);
}

TEST_F(Tls, ExpiredClientCertificateIsRefusedAndTheClientIsToldWhy) {
  auto out = handshake(config("expired"), config("host-a"));
  ASSERT_FALSE(out.server);
  EXPECT_NE(why(out.server).find("client certificate (CN=host-old,O=Ferry test) expired on"),
            std::string::npos)
      << why(out.server);
  // TLS 1.3: the client finished first; the server's alert arrives instead of the
  // confirmation record, and handshake() reports it.
  ASSERT_FALSE(out.client);
  EXPECT_EQ(out.client.error().errc, StreamErrc::Tls);
  EXPECT_NE(why(out.client).find("certificate expired"), std::string::npos) << why(out.client);
}

TEST_F(Tls, ExpiredServerCertificateIsRefused) {
  auto out = handshake(config("host-b"), config("expired"));
  ASSERT_FALSE(out.client);
  EXPECT_NE(why(out.client).find("server certificate (CN=host-old,O=Ferry test) expired on"),
            std::string::npos)
      << why(out.client);
  ASSERT_FALSE(out.server);
}

TEST_F(Tls, ClientWithoutCertificateIsRefused) {
  // A real OpenSSL client that trusts our CA but presents no certificate.
  Listener listener = test::loopback_listener();
  TlsConfig server_cfg = config("host-a");
  auto server = std::async(std::launch::async, [&] {
    auto tcp = listener.accept(kTimeout);
    EXPECT_TRUE(tcp);
    return tls_handshake(std::move(*tcp), server_cfg, TlsRole::Server, kTimeout);
  });
  auto addr = listener.address().resolve();
  ASSERT_TRUE(addr);
  auto fd = kernel::tcp_connect(addr->front(), kTimeout);
  ASSERT_TRUE(fd);
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  ASSERT_EQ(SSL_CTX_load_verify_locations(ctx, (dir("host-a") / "ca.pem").c_str(), nullptr), 1);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd->get());
  EXPECT_EQ(SSL_connect(ssl), 1);  // TLS 1.3: the client finishes before being judged
  char byte = 0;
  EXPECT_LE(SSL_read(ssl, &byte, 1), 0);  // an alert, never application data
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  auto result = server.get();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().errc, StreamErrc::Tls);
  EXPECT_NE(why(result).find("client presented no certificate"), std::string::npos)
      << why(result);
}

TEST_F(Tls, PlaintextPeerIsRefusedWithAHint) {
  auto [c, s] = test::tcp_pair();
  TlsConfig server_cfg = config("host-a");
  auto server = std::async(std::launch::async, [&, s = std::move(s)]() mutable {
    return tls_handshake(std::move(s), server_cfg, TlsRole::Server, kTimeout);
  });
  const std::string hello = "FERRYCH1 plaintext preamble here";
  ASSERT_TRUE(c->write_all({reinterpret_cast<const uint8_t*>(hello.data()), hello.size()}));
  ASSERT_TRUE(c->flush());
  auto result = server.get();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().errc, StreamErrc::Tls);
  EXPECT_NE(why(result).find("peer is not speaking TLS (first byte 0x46"), std::string::npos)
      << why(result);
  EXPECT_NE(why(result).find("--tls-dir"), std::string::npos);
}

TEST_F(Tls, SilentPeerTimesOutTheHandshake) {
  auto [c, s] = test::tcp_pair();
  auto start = std::chrono::steady_clock::now();
  auto result = tls_handshake(std::move(s), config("host-a"), TlsRole::Server, milliseconds(80));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().errc, StreamErrc::TimedOut) << why(result);
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(3000));
}

TEST_F(Tls, PeerCloseAndLocalShutdownAfterHandshake) {
  auto out = handshake(config("host-b"), config("host-a"));
  ASSERT_TRUE(out.client && out.server);
  auto& server = *out.server;
  std::thread killer([&] {
    std::this_thread::sleep_for(milliseconds(40));
    server->shutdown();
  });
  std::vector<uint8_t> buf(4);
  auto r = server->read_exact(buf);
  killer.join();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().errc, StreamErrc::Aborted) << r.error().message();

  auto again = handshake(config("host-b"), config("host-a"));
  ASSERT_TRUE(again.client && again.server);
  again.client->reset();
  auto closed = (*again.server)->read_exact(buf);
  ASSERT_FALSE(closed);
  EXPECT_EQ(closed.error().errc, StreamErrc::Closed) << closed.error().message();
}

TEST_F(Tls, ConfigErrorsNameTheFileAndTheProblem) {
  auto missing = TlsConfig::load_dir((dir("nowhere")).string());
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().errc, TlsErrc::MissingFile);
  EXPECT_NE(missing.error().message().find("nowhere/ca.pem"), std::string::npos);

  fs::path broken = dir("broken");
  fs::create_directories(broken);
  fs::copy_file(dir("host-a") / "ca.pem", broken / "ca.pem");
  fs::copy_file(dir("host-a") / "cert.pem", broken / "cert.pem");
  fs::copy_file(dir("host-b") / "key.pem", broken / "key.pem");  // someone else's key
  auto mismatch = TlsConfig::load_dir(broken.string());
  ASSERT_FALSE(mismatch);
  EXPECT_EQ(mismatch.error().errc, TlsErrc::KeyMismatch) << mismatch.error().message();
  EXPECT_NE(mismatch.error().message().find("broken/key.pem"), std::string::npos);

  fs::remove(broken / "key.pem");
  fs::create_directory(broken / "key.pem");
  auto unreadable = TlsConfig::load_dir(broken.string());
  ASSERT_FALSE(unreadable);
  EXPECT_EQ(unreadable.error().errc, TlsErrc::ReadFile) << unreadable.error().message();
  fs::remove(broken / "key.pem");

  fs::copy_file(dir("host-a") / "key.pem", broken / "key.pem");
  std::ofstream(broken / "cert.pem") << "-----BEGIN CERTIFICATE-----\nnot base64\n";
  auto garbage = TlsConfig::load_dir(broken.string());
  ASSERT_FALSE(garbage);
  EXPECT_EQ(garbage.error().errc, TlsErrc::BadCert) << garbage.error().message();

  fs::copy_file(dir("host-a") / "cert.pem", broken / "cert.pem",
                fs::copy_options::overwrite_existing);
  fs::copy_file(dir("mallory") / "ca.pem", broken / "ca.pem",
                fs::copy_options::overwrite_existing);
  auto foreign = TlsConfig::load_dir(broken.string());
  ASSERT_FALSE(foreign);
  EXPECT_EQ(foreign.error().errc, TlsErrc::NotIssuedByCa) << foreign.error().message();

  EXPECT_EQ(fs::status(dir("host-a") / "key.pem").permissions() & fs::perms::others_read,
            fs::perms::none);
}

}  // namespace
}  // namespace ferry::migration
