// TlsStream: OpenSSL's record layer over an inner ByteStream through a custom BIO.
// Over a generic stream OpenSSL reads with read_ahead off, so every BIO read asks for
// exactly the bytes the record layer needs (header, then body) and maps onto read_exact;
// over a TcpStream it reads ahead through TcpStream::read_some.
#include "ferry/migration/tls_stream.h"

#include <openssl/x509v3.h>
#include <arpa/inet.h>

#include <optional>

#include <fmt/format.h>

#include "ferry/migration/tcp_stream.h"
#include "tls_context.h"

namespace ferry::migration {

namespace {

using detail::drain_openssl_errors;

constexpr uint8_t kTlsHandshakeRecord = 0x16;
// The server's first application record: proof for the client that the server accepted
// its certificate (in TLS 1.3 the client finishes before the server has checked it).
constexpr uint8_t kAcceptedByte = 0xF1;
constexpr size_t kReadAheadBuffer = 256 << 10;

// The first certificate problem seen by the verify callback.
struct VerifyFailure {
  int error = X509_V_OK;
  int depth = 0;
  std::string subject;
  std::string not_after;
};

class TlsStream final : public ByteStream {
 public:
  TlsStream(std::unique_ptr<ByteStream> inner, const TlsConfig& config, TlsRole role)
      : inner_(std::move(inner)),
        tcp_(dynamic_cast<TcpStream*>(inner_.get())),
        config_(config),
        role_(role) {}

  StreamResult<void> handshake();

  StreamResult<void> write_all(std::span<const uint8_t> data) override;
  StreamResult<void> read_exact(std::span<uint8_t> out) override;
  StreamResult<void> flush() override { return inner_->flush(); }
  void set_timeout(std::chrono::milliseconds timeout) override { inner_->set_timeout(timeout); }
  void shutdown() override { inner_->shutdown(); }
  std::string peer() const override { return peer_; }

  // BIO callbacks (static trampolines below).
  int bio_write(const char* data, int len);
  int bio_read(char* out, int len);
  long bio_flush();
  int on_verify(int preverify_ok, X509_STORE_CTX* store);

 private:
  StreamError handshake_error(int ret);
  StreamError verify_error(long result) const;
  StreamError record_error(int ret, const char* what);
  void configure_peer_name();

  std::unique_ptr<ByteStream> inner_;
  // Set when the inner stream is TCP: then OpenSSL reads ahead and the BIO receives
  // straight into OpenSSL's buffer (read_some) instead of record by record.
  TcpStream* tcp_;
  TlsConfig config_;
  TlsRole role_;
  detail::SslPtr ssl_;
  std::string peer_;
  std::optional<StreamError> io_error_;  // why the inner stream failed under OpenSSL
  std::optional<VerifyFailure> verify_failure_;
  bool first_read_ = true;
  std::optional<uint8_t> plaintext_first_byte_;
};

TlsStream* stream_of(BIO* bio) { return static_cast<TlsStream*>(BIO_get_data(bio)); }

int bio_write_cb(BIO* bio, const char* data, int len) {
  BIO_clear_retry_flags(bio);
  return stream_of(bio)->bio_write(data, len);
}

int bio_read_cb(BIO* bio, char* out, int len) {
  BIO_clear_retry_flags(bio);
  return stream_of(bio)->bio_read(out, len);
}

long bio_ctrl_cb(BIO* bio, int cmd, long, void*) {
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return stream_of(bio)->bio_flush();
    case BIO_CTRL_PUSH:
    case BIO_CTRL_POP:
      return 0;
    default:
      return 0;  // PENDING/WPENDING: nothing is buffered in the BIO itself
  }
}

int bio_create_cb(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

int verify_cb(int preverify_ok, X509_STORE_CTX* store) {
  // SAFETY: the SSL pointer is stored in the store context by libssl during the
  // handshake, and our TlsStream is its app data for the SSL's whole life.
  auto* ssl = static_cast<SSL*>(
      X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* self = static_cast<TlsStream*>(SSL_get_app_data(ssl));
  return self->on_verify(preverify_ok, store);
}

std::string asn1_time_text(const ASN1_TIME* t) {
  detail::BioPtr bio(BIO_new(BIO_s_mem()));
  ASN1_TIME_print(bio.get(), t);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

bool is_ip_literal(const std::string& name) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, name.c_str(), buf) == 1 ||
         ::inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

}  // namespace

namespace detail {
BioMethodPtr make_stream_bio_method() {
  BioMethodPtr method(BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ferry stream"));
  if (!method) {
    return method;
  }
  BIO_meth_set_write(method.get(), bio_write_cb);
  BIO_meth_set_read(method.get(), bio_read_cb);
  BIO_meth_set_ctrl(method.get(), bio_ctrl_cb);
  BIO_meth_set_create(method.get(), bio_create_cb);
  return method;
}
}  // namespace detail

int TlsStream::bio_write(const char* data, int len) {
  // SAFETY: OpenSSL hands us `len` readable bytes; the span does not outlive the call.
  auto r = inner_->write_all({reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(len)});
  if (!r) {
    io_error_ = r.error();
    return -1;
  }
  return len;
}

int TlsStream::bio_read(char* out, int len) {
  // SAFETY: OpenSSL hands us `len` writable bytes; the span does not outlive the call.
  std::span<uint8_t> buf{reinterpret_cast<uint8_t*>(out), static_cast<size_t>(len)};
  if (tcp_ != nullptr) {
    auto got = tcp_->read_some(buf);
    if (!got) {
      io_error_ = got.error();
      return -1;
    }
    len = static_cast<int>(*got);
  } else {
    auto r = inner_->read_exact(buf);
    if (!r) {
      io_error_ = r.error();
      return -1;
    }
  }
  if (first_read_ && len > 0) {
    first_read_ = false;
    if (role_ == TlsRole::Server && buf[0] != kTlsHandshakeRecord) {
      plaintext_first_byte_ = buf[0];
    }
  }
  return len;
}

long TlsStream::bio_flush() {
  auto r = inner_->flush();
  if (!r) {
    io_error_ = r.error();
    return 0;
  }
  return 1;
}

int TlsStream::on_verify(int preverify_ok, X509_STORE_CTX* store) {
  if (!preverify_ok && !verify_failure_) {
    VerifyFailure f;
    f.error = X509_STORE_CTX_get_error(store);
    f.depth = X509_STORE_CTX_get_error_depth(store);
    // Name the peer's own (leaf) certificate, whatever depth failed; keep the failing
    // certificate's dates for "expired on".
    if (X509* leaf = X509_STORE_CTX_get0_cert(store)) {
      f.subject = detail::name_text(X509_get_subject_name(leaf));
    }
    if (X509* cert = X509_STORE_CTX_get_current_cert(store)) {
      f.not_after = asn1_time_text(X509_get0_notAfter(cert));
    }
    verify_failure_ = std::move(f);
  }
  return preverify_ok;
}

void TlsStream::configure_peer_name() {
  const std::string& name = config_.expected_peer_name();
  if (name.empty()) {
    return;
  }
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl_.get());
  if (is_ip_literal(name)) {
    X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
    return;
  }
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
  if (role_ == TlsRole::Client) {
    SSL_set_tlsext_host_name(ssl_.get(), name.c_str());
  }
}

StreamResult<void> TlsStream::handshake() {
  const auto& ctx = config_.context();
  ssl_.reset(SSL_new(ctx.ctx.get()));
  BIO* bio = BIO_new(ctx.bio_method.get());
  if (!ssl_ || bio == nullptr) {
    BIO_free(bio);
    return fail(StreamError{StreamErrc::Tls, {}, "SSL_new: " + drain_openssl_errors()});
  }
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_.get(), bio, bio);  // the SSL owns the BIO from here on
  SSL_set_app_data(ssl_.get(), this);
  if (tcp_ != nullptr) {
    // Without read-ahead OpenSSL asks for each record's header and body separately; with
    // it, one BIO read fills a buffer of several records.
    SSL_set_read_ahead(ssl_.get(), 1);
    SSL_set_default_read_buffer_len(ssl_.get(), kReadAheadBuffer);
  }
  SSL_set_verify(ssl_.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb);
  configure_peer_name();
  peer_ = fmt::format("tls({})", inner_->peer());

  ERR_clear_error();
  int ret = role_ == TlsRole::Client ? SSL_connect(ssl_.get()) : SSL_accept(ssl_.get());
  if (ret != 1) {
    StreamError err = handshake_error(ret);
    // Push out the alert OpenSSL queued in the inner stream's send buffer, so the peer
    // learns why instead of seeing a bare close.
    (void)inner_->flush();
    return fail(err);
  }
  X509* peer_cert = SSL_get0_peer_certificate(ssl_.get());
  if (peer_cert == nullptr) {  // cannot happen with FAIL_IF_NO_PEER_CERT; belt and braces
    return fail(StreamError{StreamErrc::Tls, {}, fmt::format("{}: no peer certificate", peer_)});
  }
  peer_ = fmt::format("tls({}, {})", inner_->peer(),
                      detail::name_text(X509_get_subject_name(peer_cert)));
  uint8_t confirm = kAcceptedByte;
  if (role_ == TlsRole::Server) {
    auto w = write_all({&confirm, 1});
    if (w) {
      w = flush();
    }
    return w;
  }
  auto r = read_exact({&confirm, 1});
  if (!r) {
    return r;
  }
  if (confirm != kAcceptedByte) {
    return fail(StreamError{StreamErrc::Tls, {},
                            fmt::format("{}: unexpected first record from the server", peer_)});
  }
  return {};
}

StreamError TlsStream::verify_error(long result) const {
  std::string who = role_ == TlsRole::Client ? "server" : "client";
  std::string reason = X509_verify_cert_error_string(result);
  std::string subject = verify_failure_ ? verify_failure_->subject : "";
  std::string what;
  switch (result) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
      what = fmt::format("{} certificate ({}) is not signed by the configured CA", who, subject);
      break;
    case X509_V_ERR_CERT_HAS_EXPIRED:
      what = fmt::format("{} certificate ({}) expired on {}", who, subject,
                         verify_failure_ ? verify_failure_->not_after : "?");
      break;
    case X509_V_ERR_CERT_NOT_YET_VALID:
      what = fmt::format("{} certificate ({}) is not valid yet", who, subject);
      break;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      what = fmt::format("{} certificate ({}) is not valid for the expected name '{}'", who,
                         subject, config_.expected_peer_name());
      break;
    default:
      what = fmt::format("{} certificate ({}) rejected", who, subject);
  }
  return StreamError{StreamErrc::Tls, {},
                     fmt::format("{}: {} ({})", inner_->peer(), what, reason)};
}

StreamError TlsStream::handshake_error(int ret) {
  int ssl_err = SSL_get_error(ssl_.get(), ret);
  std::string openssl = ssl_err == SSL_ERROR_SSL ? drain_openssl_errors() : "";
  ERR_clear_error();
  const std::string where = inner_->peer();
  if (plaintext_first_byte_) {
    return StreamError{
        StreamErrc::Tls, {},
        fmt::format("{}: peer is not speaking TLS (first byte 0x{:02x}, a TLS handshake starts "
                    "with 0x16); is it configured without --tls-dir?",
                    where, *plaintext_first_byte_)};
  }
  long verify = SSL_get_verify_result(ssl_.get());
  if (verify != X509_V_OK && verify_failure_) {
    return verify_error(verify);
  }
  if (openssl.find("peer did not return a certificate") != std::string::npos) {
    return StreamError{StreamErrc::Tls, {},
                       fmt::format("{}: client presented no certificate (mutual TLS requires "
                                   "one signed by the configured CA)",
                                   where)};
  }
  if (openssl.find("alert") != std::string::npos) {
    return StreamError{StreamErrc::Tls, {},
                       fmt::format("{}: the peer refused the handshake: {}", where, openssl)};
  }
  if (io_error_) {
    StreamError err = *io_error_;
    StreamErrc errc = err.errc == StreamErrc::TimedOut || err.errc == StreamErrc::Aborted
                          ? err.errc
                          : StreamErrc::Tls;
    std::string hint = err.errc == StreamErrc::Closed
                           ? " (the peer hung up mid-handshake: does it expect plaintext, "
                             "i.e. no --tls-dir, or did it refuse us?)"
                           : "";
    return StreamError{errc, err.code,
                       fmt::format("TLS handshake with {} failed: {}{}", where, err.message(),
                                   hint)};
  }
  return StreamError{StreamErrc::Tls, {},
                     fmt::format("TLS handshake with {} failed: {}", where,
                                 openssl.empty() ? "unknown error" : openssl)};
}

StreamError TlsStream::record_error(int ret, const char* what) {
  int ssl_err = SSL_get_error(ssl_.get(), ret);
  if (io_error_) {
    StreamError err = *io_error_;
    io_error_.reset();
    ERR_clear_error();
    return err;
  }
  if (ssl_err == SSL_ERROR_ZERO_RETURN) {
    return StreamError{StreamErrc::Closed, {}, fmt::format("{} closed the TLS session", peer_)};
  }
  std::string openssl = drain_openssl_errors();
  if (openssl.find("alert") != std::string::npos) {
    // In TLS 1.3 the server checks the client certificate after the client finished, so
    // a refusal reaches the client here, as an alert instead of the confirmation record.
    return StreamError{StreamErrc::Tls, {},
                       fmt::format("{}: the peer refused the TLS session (it did not accept "
                                   "our certificate): {}",
                                   peer_, openssl)};
  }
  return StreamError{StreamErrc::Tls, {}, fmt::format("{} {}: {}", what, peer_, openssl)};
}

StreamResult<void> TlsStream::write_all(std::span<const uint8_t> data) {
  while (!data.empty()) {
    // SSL_write_ex without partial-write mode writes everything or fails; chunk so the
    // int-sized length limit never matters.
    size_t chunk = std::min<size_t>(data.size(), 1 << 30);
    size_t written = 0;
    ERR_clear_error();
    int ret = SSL_write_ex(ssl_.get(), data.data(), chunk, &written);
    if (ret != 1) {
      return fail(record_error(ret, "TLS write to"));
    }
    data = data.subspan(written);
  }
  return {};
}

StreamResult<void> TlsStream::read_exact(std::span<uint8_t> out) {
  while (!out.empty()) {
    size_t got = 0;
    ERR_clear_error();
    int ret = SSL_read_ex(ssl_.get(), out.data(), out.size(), &got);
    if (ret != 1) {
      return fail(record_error(ret, "TLS read from"));
    }
    out = out.subspan(got);
  }
  return {};
}

StreamResult<std::unique_ptr<ByteStream>> tls_handshake(std::unique_ptr<ByteStream> inner,
                                                        const TlsConfig& config, TlsRole role,
                                                        std::chrono::milliseconds timeout) {
  inner->set_timeout(timeout);
  auto stream = std::make_unique<TlsStream>(std::move(inner), config, role);
  auto done = stream->handshake();
  if (!done) {
    return fail(done.error());
  }
  return std::unique_ptr<ByteStream>(std::move(stream));
}

}  // namespace ferry::migration
