// Parallel migration channels: N TCP (optionally TLS) connections between a source and a
// destination, each opened with a small preamble (magic, version, session id, index,
// count) so the acceptor groups the connections of one session in index order and
// refuses strays (other sessions, duplicates, garbage, plaintext on a TLS listener).
// The byte layout and the refusal rules are in docs/transport.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "ferry/migration/address.h"
#include "ferry/migration/byte_stream.h"
#include "ferry/migration/tcp_stream.h"
#include "ferry/migration/tls_config.h"

namespace ferry::migration {

/// Preamble sent by the connecting side on every channel (32 bytes, little-endian).
inline constexpr uint8_t kChannelMagic[8] = {'F', 'E', 'R', 'R', 'Y', 'C', 'H', 'N'};
/// Reply from the accepting side (16 bytes).
inline constexpr uint8_t kChannelAckMagic[8] = {'F', 'E', 'R', 'R', 'Y', 'A', 'C', 'K'};
inline constexpr uint16_t kChannelVersion = 1;
inline constexpr size_t kChannelPreambleSize = 32;
inline constexpr size_t kChannelAckSize = 16;
inline constexpr unsigned kMaxSessionChannels = 64;

/// Status in the acceptor's reply; anything but Ok is followed by a close.
enum class ChannelStatus : uint32_t {
  Invalid = 0,
  Ok = 1,
  BadVersion = 2,     // preamble version not understood
  OtherSession = 3,   // the acceptor is already gathering another session's channels
  BadIndex = 4,       // index >= count, count 0 or > kMaxSessionChannels, or count differs
  DuplicateIndex = 5, // this index is already connected
};

/// The connecting side's view of one channel in the preamble.
struct ChannelPreamble {
  uint16_t version = kChannelVersion;
  uint16_t index = 0;
  uint16_t count = 0;
  uint64_t session_id = 0;
};

/// Preamble and reply encoding, exposed for tests and fuzzing.
std::vector<uint8_t> encode_preamble(const ChannelPreamble& preamble);
/// Decodes a preamble; the error text says which field is wrong.
Result<ChannelPreamble, std::string> decode_preamble(std::span<const uint8_t> bytes);

struct ChannelOptions {
  TcpOptions tcp;                       // per-connection TCP tuning
  std::optional<TlsConfig> tls;         // set: every channel is TLS with mutual auth
  std::chrono::milliseconds timeout{10000};  // whole establishment deadline
  /// Acceptor only: one connection's TLS handshake + preamble must finish within this,
  /// so a silent or slow connection cannot hold the listener for the whole `timeout`.
  std::chrono::milliseconds handshake_timeout{5000};
  /// Acceptor only: after this many refused connections from one address, further
  /// connections from it are closed at once, unread.
  unsigned max_refusals_per_peer = 8;
  /// Acceptor only: told about every refused connection (for logs); may be empty.
  std::function<void(const StreamError&)> on_refused;
};

/// Opens `count` channels to `address` (1..kMaxSessionChannels) under a fresh random
/// session id. Returns them in index order, with no stream timeout set.
StreamResult<std::vector<std::unique_ptr<ByteStream>>> connect_channels(
    const Address& address, unsigned count, const ChannelOptions& options);

/// Accepts connections on `listener` until one session's channels are all present.
/// Strays are refused and reported through options.on_refused; they do not end the wait.
/// Limits: once a session's first channel is accepted, only its announced channel count
/// is accepted, and only from that channel's peer address (others are refused as
/// foreign); each connection gets `handshake_timeout`; an address with
/// `max_refusals_per_peer` refused connections is no longer read at all.
/// On timeout the error names how many channels arrived and the last refusal.
StreamResult<std::vector<std::unique_ptr<ByteStream>>> accept_channels(
    Listener& listener, const ChannelOptions& options);

}  // namespace ferry::migration
