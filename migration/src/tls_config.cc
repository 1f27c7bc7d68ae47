#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "ferry/migration/tls_config.h"
#include "tls_context.h"

namespace ferry::migration {

namespace {

using detail::BioPtr;
using detail::drain_openssl_errors;
using detail::PkeyPtr;
using detail::X509Ptr;

BioPtr memory_bio(std::string_view text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

Result<std::string, TlsError> read_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    TlsErrc errc = errno == ENOENT ? TlsErrc::MissingFile : TlsErrc::ReadFile;
    return fail(TlsError{errc, path, std::strerror(errno)});
  }
  if (!S_ISREG(st.st_mode)) {
    return fail(TlsError{TlsErrc::ReadFile, path, "not a regular file"});
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return fail(TlsError{TlsErrc::ReadFile, path, std::strerror(errno)});
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return fail(TlsError{TlsErrc::ReadFile, path, "read failed"});
  }
  return text.str();
}

// Verifies that `cert` chains to a certificate in `store` (times ignored: an expired own
// certificate is the peer's to refuse, and tests need to present one).
Result<void, TlsError> check_issued_by_ca(X509_STORE* store, X509* cert,
                                          STACK_OF(X509) * chain) {
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> vctx(X509_STORE_CTX_new(),
                                                                      X509_STORE_CTX_free);
  if (!vctx || X509_STORE_CTX_init(vctx.get(), store, cert, chain) != 1) {
    return fail(TlsError{TlsErrc::Context, "", drain_openssl_errors()});
  }
  X509_STORE_CTX_set_flags(vctx.get(), X509_V_FLAG_NO_CHECK_TIME);
  if (X509_verify_cert(vctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(vctx.get());
    return fail(TlsError{TlsErrc::NotIssuedByCa, "", X509_verify_cert_error_string(err)});
  }
  return {};
}

Result<void, TlsError> load_ca(SSL_CTX* ctx, std::string_view ca_pem) {
  BioPtr bio = memory_bio(ca_pem);
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int count = 0;
  while (X509Ptr ca{PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)}) {
    if (X509_STORE_add_cert(store, ca.get()) != 1) {
      return fail(TlsError{TlsErrc::BadCa, "ca.pem", drain_openssl_errors()});
    }
    ++count;
  }
  ERR_clear_error();  // the loop ends on "no start line", which is not an error
  if (count == 0) {
    return fail(TlsError{TlsErrc::BadCa, "ca.pem", "no PEM certificate found"});
  }
  return {};
}

Result<std::string, TlsError> load_cert_and_key(SSL_CTX* ctx, std::string_view cert_pem,
                                                std::string_view key_pem) {
  BioPtr cert_bio = memory_bio(cert_pem);
  X509Ptr cert{PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr)};
  if (!cert) {
    return fail(TlsError{TlsErrc::BadCert, "cert.pem", drain_openssl_errors()});
  }
  if (SSL_CTX_use_certificate(ctx, cert.get()) != 1) {
    return fail(TlsError{TlsErrc::BadCert, "cert.pem", drain_openssl_errors()});
  }
  // Any further certificates in cert.pem are intermediates sent along with ours.
  while (X509Ptr extra{PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr)}) {
    if (SSL_CTX_add1_chain_cert(ctx, extra.get()) != 1) {
      return fail(TlsError{TlsErrc::BadCert, "cert.pem", drain_openssl_errors()});
    }
  }
  ERR_clear_error();
  BioPtr key_bio = memory_bio(key_pem);
  // A null passphrase callback that returns 0 makes an encrypted key fail instead of
  // prompting on the terminal.
  PkeyPtr key{PEM_read_bio_PrivateKey(
      key_bio.get(), nullptr, [](char*, int, int, void*) { return 0; }, nullptr)};
  if (!key) {
    return fail(TlsError{TlsErrc::BadKey, "key.pem",
                         "not an unencrypted PEM private key (" + drain_openssl_errors() + ")"});
  }
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    return fail(TlsError{TlsErrc::KeyMismatch, "key.pem", "the key does not belong to cert.pem"});
  }
  STACK_OF(X509)* chain = nullptr;
  SSL_CTX_get0_chain_certs(ctx, &chain);
  auto issued = check_issued_by_ca(SSL_CTX_get_cert_store(ctx), cert.get(), chain);
  if (!issued) {
    TlsError err = issued.error();
    err.path = "cert.pem";
    return fail(err);
  }
  return detail::name_text(X509_get_subject_name(cert.get()));
}

void prefix_paths(TlsError& err, const std::string& dir) {
  if (!err.path.empty() && err.path.front() != '/') {
    err.path = dir + "/" + err.path;
  }
}

}  // namespace

namespace detail {

std::string drain_openssl_errors() {
  std::string out;
  while (unsigned long code = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    const char* reason = ERR_reason_error_string(code);
    if (!out.empty()) {
      out += "; ";
    }
    out += reason != nullptr ? reason : buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

std::string name_text(const X509_NAME* name) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

}  // namespace detail

std::string TlsError::message() const {
  const char* what = "TLS configuration error";
  switch (errc) {
    case TlsErrc::MissingFile:
      what = "TLS file missing";
      break;
    case TlsErrc::ReadFile:
      what = "cannot read TLS file";
      break;
    case TlsErrc::BadCa:
      what = "bad CA certificate";
      break;
    case TlsErrc::BadCert:
      what = "bad certificate";
      break;
    case TlsErrc::BadKey:
      what = "bad private key";
      break;
    case TlsErrc::KeyMismatch:
      what = "private key does not match certificate";
      break;
    case TlsErrc::NotIssuedByCa:
      what = "certificate is not issued by the configured CA";
      break;
    case TlsErrc::Context:
      what = "cannot set up TLS";
      break;
    case TlsErrc::Generate:
      what = "cannot generate certificate";
      break;
    case TlsErrc::Invalid:
      break;
  }
  if (path.empty()) {
    return fmt::format("{}: {}", what, detail);
  }
  return fmt::format("{} ({}): {}", what, path, detail);
}

Result<TlsConfig, TlsError> TlsConfig::load_dir(const std::string& dir) {
  auto ca = read_file(dir + "/ca.pem");
  if (!ca) {
    return fail(ca.error());
  }
  auto cert = read_file(dir + "/cert.pem");
  if (!cert) {
    return fail(cert.error());
  }
  auto key = read_file(dir + "/key.pem");
  if (!key) {
    return fail(key.error());
  }
  auto config = from_pem(*ca, *cert, *key);
  if (!config) {
    TlsError err = config.error();
    prefix_paths(err, dir);
    return fail(err);
  }
  return config;
}

Result<TlsConfig, TlsError> TlsConfig::from_pem(std::string_view ca_pem, std::string_view cert_pem,
                                                std::string_view key_pem) {
  auto ctx = std::make_shared<detail::TlsContext>();
  ctx->ctx.reset(SSL_CTX_new(TLS_method()));
  if (!ctx->ctx) {
    return fail(TlsError{TlsErrc::Context, "", drain_openssl_errors()});
  }
  SSL_CTX* c = ctx->ctx.get();
  // TLS 1.3 only: no downgrade, no renegotiation, forward secrecy always.
  SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION);
  SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  // AES-128-GCM first: with AES-NI it is the fastest TLS 1.3 suite (bench/transport), and
  // 128-bit security is ample for a session key that lives minutes.
  SSL_CTX_set_ciphersuites(
      c, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
  // No session tickets or cache: every channel does a full mutual handshake, and no
  // post-handshake ticket record can surprise the first read.
  SSL_CTX_set_num_tickets(c, 0);
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  // NO_AUTO_CHAIN: send the certificate and the intermediates from cert.pem only, never
  // our trusted root (the peer must hold the CA itself).
  SSL_CTX_set_mode(c, SSL_MODE_AUTO_RETRY | SSL_MODE_NO_AUTO_CHAIN);
  auto ca = load_ca(c, ca_pem);
  if (!ca) {
    return fail(ca.error());
  }
  auto subject = load_cert_and_key(c, cert_pem, key_pem);
  if (!subject) {
    return fail(subject.error());
  }
  ctx->own_subject = std::move(*subject);
  ctx->bio_method = detail::make_stream_bio_method();
  if (!ctx->bio_method) {
    return fail(TlsError{TlsErrc::Context, "", drain_openssl_errors()});
  }
  return TlsConfig(std::move(ctx));
}

const std::string& TlsConfig::own_subject() const { return ctx_->own_subject; }

}  // namespace ferry::migration
