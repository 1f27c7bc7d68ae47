// Test PKI generation with OpenSSL's C API (no `openssl` command needed): a CA and host
// certificates in Cloud Hypervisor's --tls-dir layout. Used by `ferry tls gen` and tests.
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "ferry/migration/tls_config.h"
#include "tls_context.h"

namespace ferry::migration {

namespace {

using detail::BioPtr;
using detail::drain_openssl_errors;
using detail::PkeyPtr;
using detail::X509Ptr;

TlsError gen_error(std::string path, std::string detail) {
  return TlsError{TlsErrc::Generate, std::move(path), std::move(detail)};
}

PkeyPtr new_key() { return PkeyPtr(EVP_EC_gen("P-256")); }

std::string to_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string to_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

Result<void, TlsError> write_file(const std::filesystem::path& path, const std::string& text,
                                  mode_t mode) {
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  if (ec) {
    return fail(gen_error(path.parent_path().string(), ec.message()));
  }
  std::filesystem::remove(path, ec);
  // Created with its final mode (O_EXCL after the remove): a private key is never readable
  // by others, not even between the write and a chmod.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    return fail(gen_error(path.string(), std::strerror(errno)));
  }
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      int err = errno;
      ::close(fd);
      return fail(gen_error(path.string(), std::strerror(err)));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0) {
    return fail(gen_error(path.string(), std::strerror(errno)));
  }
  // The umask may have narrowed `mode` (a certificate should stay world-readable).
  if (::chmod(path.c_str(), mode) != 0) {
    return fail(gen_error(path.string(), std::strerror(errno)));
  }
  return {};
}

bool add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX v3{};
  X509V3_set_ctx(&v3, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str());
  if (ext == nullptr) {
    return false;
  }
  bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

std::string san_entry(const std::string& name) {
  unsigned char buf[16];
  bool ip = ::inet_pton(AF_INET, name.c_str(), buf) == 1 ||
            ::inet_pton(AF_INET6, name.c_str(), buf) == 1;
  return (ip ? "IP:" : "DNS:") + name;
}

// A certificate for `subject_key`, signed by `issuer_key` (self-signed when issuer is null).
Result<X509Ptr, TlsError> make_cert(const std::string& cn, EVP_PKEY* subject_key, X509* issuer,
                                    EVP_PKEY* issuer_key, int64_t from_s, int64_t until_s,
                                    bool is_ca, const std::vector<std::string>& sans) {
  X509Ptr cert(X509_new());
  if (!cert) {
    return fail(gen_error("", drain_openssl_errors()));
  }
  X509_set_version(cert.get(), 2);
  // Random 64-bit serial: two test CAs never issue colliding serials.
  BIGNUM* serial = BN_new();
  BN_rand(serial, 64, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY);
  BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert.get()));
  BN_free(serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), static_cast<long>(from_s));
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(until_s));
  X509_set_pubkey(cert.get(), subject_key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Ferry test"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509* signer = issuer != nullptr ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  bool ok = add_ext(cert.get(), signer, NID_subject_key_identifier, "hash");
  if (is_ca) {
    ok = ok && add_ext(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
         add_ext(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    std::string san;
    for (const auto& entry : sans) {
      san += (san.empty() ? "" : ",") + san_entry(entry);
    }
    ok = ok && add_ext(cert.get(), signer, NID_authority_key_identifier, "keyid:always") &&
         add_ext(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE") &&
         add_ext(cert.get(), signer, NID_key_usage, "critical,digitalSignature") &&
         add_ext(cert.get(), signer, NID_ext_key_usage, "serverAuth,clientAuth") &&
         add_ext(cert.get(), signer, NID_subject_alt_name, san);
  }
  if (!ok || X509_sign(cert.get(), issuer_key, EVP_sha256()) == 0) {
    return fail(gen_error("", "signing: " + drain_openssl_errors()));
  }
  return cert;
}

Result<std::string, TlsError> slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return fail(gen_error(path.string(), std::strerror(errno)));
  }
  return std::string(std::istreambuf_iterator<char>(in), {});
}

struct Ca {
  X509Ptr cert;
  PkeyPtr key;
};

// Loads CA_DIR/ca.pem + ca-key.pem, or creates them (valid for ten years).
Result<Ca, TlsError> load_or_create_ca(const std::filesystem::path& dir) {
  auto cert_path = dir / "ca.pem";
  auto key_path = dir / "ca-key.pem";
  if (std::filesystem::exists(cert_path) && std::filesystem::exists(key_path)) {
    auto cert_pem = slurp(cert_path);
    auto key_pem = slurp(key_path);
    if (!cert_pem || !key_pem) {
      return fail(!cert_pem ? cert_pem.error() : key_pem.error());
    }
    const std::string& cert_text = *cert_pem;
    const std::string& key_text = *key_pem;
    BioPtr cb(BIO_new_mem_buf(cert_text.data(), static_cast<int>(cert_text.size())));
    BioPtr kb(BIO_new_mem_buf(key_text.data(), static_cast<int>(key_text.size())));
    Ca ca{X509Ptr(PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr)),
          PkeyPtr(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr))};
    if (!ca.cert || !ca.key) {
      return fail(gen_error(dir.string(), "unreadable CA: " + drain_openssl_errors()));
    }
    return ca;
  }
  PkeyPtr key = new_key();
  if (!key) {
    return fail(gen_error("", "EC key generation: " + drain_openssl_errors()));
  }
  std::string cn = fmt::format("Ferry test CA {}", dir.filename().string());
  auto cert = make_cert(cn, key.get(), nullptr, key.get(), -3600, 3650LL * 86400, true, {});
  if (!cert) {
    return fail(cert.error());
  }
  auto w = write_file(cert_path, to_pem(cert->get()), 0644);
  if (w) {
    w = write_file(key_path, to_pem(key.get()), 0600);
  }
  if (!w) {
    return fail(w.error());
  }
  return Ca{std::move(*cert), std::move(key)};
}

}  // namespace

Result<void, TlsError> generate_certificate(const std::string& ca_dir, const std::string& out_dir,
                                            const CertificateSpec& spec) {
  if (spec.name.empty()) {
    return fail(gen_error("", "a certificate needs a name"));
  }
  auto ca = load_or_create_ca(ca_dir);
  if (!ca) {
    return fail(ca.error());
  }
  PkeyPtr key = new_key();
  if (!key) {
    return fail(gen_error("", "EC key generation: " + drain_openssl_errors()));
  }
  std::vector<std::string> sans{spec.name};
  sans.insert(sans.end(), spec.alt_names.begin(), spec.alt_names.end());
  auto cert = make_cert(spec.name, key.get(), ca->cert.get(), ca->key.get(), spec.valid_from_s,
                        spec.valid_until_s, false, sans);
  if (!cert) {
    return fail(cert.error());
  }
  std::filesystem::path out(out_dir);
  auto w = write_file(out / "ca.pem", to_pem(ca->cert.get()), 0644);
  if (w) {
    w = write_file(out / "cert.pem", to_pem(cert->get()), 0644);
  }
  if (w) {
    w = write_file(out / "key.pem", to_pem(key.get()), 0600);
  }
  return w;
}

}  // namespace ferry::migration
