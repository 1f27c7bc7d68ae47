// TlsConfig: the certificates a migration endpoint presents and trusts, loaded from a
// `--tls-dir` in Cloud Hypervisor's layout (ca.pem = trusted CA, cert.pem = own
// certificate, key.pem = its private key), checked at load time (parseable, key matches
// certificate, certificate issued by the CA). Also: making a test CA and host certificates
// (`ferry tls gen`, tests). OpenSSL types stay in migration/src/tls*; see docs/tls.md.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/kernel-interfaces/result.h"

namespace ferry::migration {

enum class TlsErrc {
  Invalid = 0,
  MissingFile,  // ca.pem, cert.pem or key.pem does not exist
  ReadFile,     // exists but cannot be read
  BadCa,        // ca.pem holds no parseable certificate
  BadCert,      // cert.pem is not a parseable certificate
  BadKey,       // key.pem is not a parseable (unencrypted) private key
  KeyMismatch,  // key.pem is not the key of cert.pem
  NotIssuedByCa,  // cert.pem is not signed by (a CA in) ca.pem
  Context,      // OpenSSL refused to build the TLS context
  Generate,     // certificate generation or writing failed
};

struct TlsError {
  TlsErrc errc = TlsErrc::Invalid;
  std::string path;    // the file concerned, if any
  std::string detail;  // OpenSSL's reason or the OS error

  /// "TLS key /etc/ferry/tls/key.pem does not match certificate .../cert.pem".
  std::string message() const;
};

namespace detail {
struct TlsContext;  // defined in migration/src/tls_context.h (wraps SSL_CTX)
}

/// Immutable, cheap to copy (the OpenSSL context is shared); safe to use from several
/// threads at once (one TlsStream per channel).
class TlsConfig {
 public:
  /// Loads DIR/ca.pem, DIR/cert.pem and DIR/key.pem.
  static Result<TlsConfig, TlsError> load_dir(const std::string& dir);
  /// Builds a config from PEM text (what load_dir does after reading the files).
  static Result<TlsConfig, TlsError> from_pem(std::string_view ca_pem, std::string_view cert_pem,
                                              std::string_view key_pem);

  /// Requires the peer's certificate to be valid for `name` (a DNS subjectAltName, an IP
  /// subjectAltName for an address literal, or the CN when no SAN exists). Empty: any
  /// certificate from the CA is accepted.
  TlsConfig& expect_peer_name(std::string name) {
    expected_peer_name_ = std::move(name);
    return *this;
  }
  const std::string& expected_peer_name() const { return expected_peer_name_; }
  /// Subject of the own certificate ("CN=host-a"), for logs.
  const std::string& own_subject() const;

  const detail::TlsContext& context() const { return *ctx_; }

 private:
  explicit TlsConfig(std::shared_ptr<const detail::TlsContext> ctx) : ctx_(std::move(ctx)) {}
  std::shared_ptr<const detail::TlsContext> ctx_;
  std::string expected_peer_name_;
};

/// What `generate_certificate` puts in a host certificate.
struct CertificateSpec {
  std::string name;                    // CN, and the first subjectAltName (DNS or IP)
  std::vector<std::string> alt_names;  // further subjectAltNames
  int64_t valid_from_s = -3600;        // notBefore, seconds relative to now
  int64_t valid_until_s = 825LL * 86400;  // notAfter, seconds relative to now (<0: expired)
};

/// Makes sure CA_DIR holds a test CA (ca.pem + ca-key.pem, created if absent), then
/// writes OUT_DIR/ca.pem (a copy of the CA certificate), OUT_DIR/cert.pem (signed by the
/// CA, for both server and client authentication) and OUT_DIR/key.pem (mode 0600).
/// Keys are EC P-256. Directories are created as needed.
Result<void, TlsError> generate_certificate(const std::string& ca_dir, const std::string& out_dir,
                                            const CertificateSpec& spec);

}  // namespace ferry::migration
