// TLS 1.3 over any ByteStream (a decorator: the record layer reads and writes through the
// inner stream via a custom OpenSSL BIO). Both sides present a certificate from the
// configured CA (mutual authentication); the handshake, plus one confirmation record from
// the server, completes before the stream is returned, so a refused peer never gets to
// send or receive application data. Failures are StreamErrc::Tls with the reason.
#pragma once

#include <chrono>
#include <memory>

#include "ferry/migration/byte_stream.h"
#include "ferry/migration/tls_config.h"

namespace ferry::migration {

enum class TlsRole { Client, Server };

/// Runs the handshake as `role` over `inner`. `timeout` becomes the inner stream's
/// no-progress timeout for the handshake and stays in force afterwards (set_timeout
/// changes it). The returned stream owns `inner`.
StreamResult<std::unique_ptr<ByteStream>> tls_handshake(std::unique_ptr<ByteStream> inner,
                                                        const TlsConfig& config, TlsRole role,
                                                        std::chrono::milliseconds timeout);

}  // namespace ferry::migration
