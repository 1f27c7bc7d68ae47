// Private to migration/src/tls*: the OpenSSL objects behind a TlsConfig, and small RAII
// helpers for OpenSSL pointers. Nothing outside these files sees an OpenSSL type.
#pragma once

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

namespace ferry::migration::detail {

template <class T, void (*Free)(T*)>
struct OsslDeleter {
  void operator()(T* p) const { Free(p); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, OsslDeleter<SSL_CTX, SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, OsslDeleter<SSL, SSL_free>>;
using X509Ptr = std::unique_ptr<X509, OsslDeleter<X509, X509_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, OsslDeleter<EVP_PKEY, EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, OsslDeleter<BIO, BIO_free_all>>;
using BioMethodPtr = std::unique_ptr<BIO_METHOD, OsslDeleter<BIO_METHOD, BIO_meth_free>>;

struct TlsContext {
  SslCtxPtr ctx;            // TLS 1.3 only, verify peer, own cert + key loaded
  BioMethodPtr bio_method;  // the BIO type that bridges OpenSSL to a ByteStream
  std::string own_subject;  // "CN=host-a"
};

/// Drains OpenSSL's thread-local error queue into one line ("; "-separated reasons).
std::string drain_openssl_errors();
/// X509_NAME as "CN=host-a,O=Ferry test".
std::string name_text(const X509_NAME* name);
/// Creates the BIO_METHOD used by TlsStream (defined in tls_stream.cc).
BioMethodPtr make_stream_bio_method();

}  // namespace ferry::migration::detail
