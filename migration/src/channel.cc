#include "ferry/migration/channel.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <random>

#include <fmt/format.h>

#include "ferry/kernel-interfaces/le_bytes.h"
#include "ferry/migration/tls_stream.h"

namespace ferry::migration {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr uint8_t kTlsHandshakeByte = 0x16;
constexpr uint8_t kTlsAlertByte = 0x15;

milliseconds left_until(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
  return std::max(left, milliseconds(1));
}

bool expired(Clock::time_point deadline) { return Clock::now() >= deadline; }

const char* status_text(ChannelStatus status) {
  switch (status) {
    case ChannelStatus::Ok:
      return "accepted";
    case ChannelStatus::BadVersion:
      return "unsupported channel protocol version";
    case ChannelStatus::OtherSession:
      return "the acceptor is busy with another migration session";
    case ChannelStatus::BadIndex:
      return "channel index/count does not match the session";
    case ChannelStatus::DuplicateIndex:
      return "this channel index is already connected";
    case ChannelStatus::Invalid:
      break;
  }
  return "unknown status";
}

std::vector<uint8_t> encode_ack(ChannelStatus status) {
  std::vector<uint8_t> out;
  ByteWriter w(out);
  w.bytes(kChannelAckMagic);
  w.u32(static_cast<uint32_t>(status));
  w.u32(0);  // reserved
  return out;
}

StreamError refused(std::string detail) {
  return StreamError{StreamErrc::Io, {}, std::move(detail)};
}

// "tcp:10.0.0.1:4444" -> "tcp:10.0.0.1", "tcp:[::1]:4444" -> "tcp:[::1]": the limits
// count per host, whatever source port a connection comes from.
std::string peer_host(const std::string& peer) {
  const size_t colon = peer.rfind(':');
  const bool port_follows = colon != std::string::npos && colon + 1 < peer.size() &&
                            peer.find_first_not_of("0123456789", colon + 1) == std::string::npos;
  return port_follows && colon > 4 ? peer.substr(0, colon) : peer;
}

uint64_t random_session_id() {
  std::random_device rd;
  uint64_t id = 0;
  while (id == 0) {
    id = (static_cast<uint64_t>(rd()) << 32) | rd();
  }
  return id;
}

// Opens one channel: TCP connect, optional TLS, preamble, reply.
StreamResult<std::unique_ptr<ByteStream>> open_channel(const Address& address,
                                                       const ChannelPreamble& preamble,
                                                       const ChannelOptions& options,
                                                       Clock::time_point deadline) {
  auto tcp = connect(address, left_until(deadline), options.tcp);
  if (!tcp) {
    return fail(tcp.error());
  }
  std::unique_ptr<ByteStream> stream = std::move(*tcp);
  if (options.tls) {
    auto tls = tls_handshake(std::move(stream), *options.tls, TlsRole::Client,
                             left_until(deadline));
    if (!tls) {
      return fail(tls.error());
    }
    stream = std::move(*tls);
  }
  stream->set_timeout(left_until(deadline));
  auto w = stream->write_all(encode_preamble(preamble));
  if (w) {
    w = stream->flush();
  }
  uint8_t ack[kChannelAckSize];
  if (w) {
    w = stream->read_exact(ack);
  }
  std::string where =
      fmt::format("channel {}/{} to {}", preamble.index + 1, preamble.count, address.to_string());
  if (!w) {
    StreamError err = w.error();
    if (err.errc == StreamErrc::Closed && !options.tls) {
      err.detail += " (the acceptor closed the channel during setup; does it require TLS?)";
    }
    err.detail = where + ": " + err.detail;
    return fail(err);
  }
  if (std::memcmp(ack, kChannelAckMagic, sizeof(kChannelAckMagic)) != 0) {
    if (ack[0] == kTlsAlertByte || ack[0] == kTlsHandshakeByte) {
      return fail(refused(where + ": the acceptor answered with TLS; it requires --tls-dir"));
    }
    return fail(refused(where + ": the acceptor's reply is not a Ferry channel reply"));
  }
  uint32_t status = 0;
  ByteReader r(std::span<const uint8_t>(ack).subspan(sizeof(kChannelAckMagic)));
  r.u32(status);
  if (static_cast<ChannelStatus>(status) != ChannelStatus::Ok) {
    return fail(refused(fmt::format("{}: refused: {}", where,
                                    status_text(static_cast<ChannelStatus>(status)))));
  }
  stream->set_timeout(milliseconds(0));
  return stream;
}

}  // namespace

std::vector<uint8_t> encode_preamble(const ChannelPreamble& preamble) {
  std::vector<uint8_t> out;
  ByteWriter w(out);
  w.bytes(kChannelMagic);
  w.u16(preamble.version);
  w.u16(0);  // flags, reserved
  w.u16(preamble.index);
  w.u16(preamble.count);
  w.u64(preamble.session_id);
  w.u64(0);  // reserved
  return out;
}

Result<ChannelPreamble, std::string> decode_preamble(std::span<const uint8_t> bytes) {
  if (bytes.size() != kChannelPreambleSize) {
    return fail(fmt::format("preamble is {} bytes, expected {}", bytes.size(),
                            kChannelPreambleSize));
  }
  if (std::memcmp(bytes.data(), kChannelMagic, sizeof(kChannelMagic)) != 0) {
    if (bytes[0] == kTlsHandshakeByte) {
      return fail(std::string("not a Ferry channel: the peer started a TLS handshake, but "
                              "this listener has no --tls-dir"));
    }
    return fail(std::string("not a Ferry channel (bad magic)"));
  }
  ChannelPreamble p;
  uint16_t flags = 0;
  uint64_t reserved = 0;
  ByteReader r(bytes.subspan(sizeof(kChannelMagic)));
  r.u16(p.version);
  r.u16(flags);
  r.u16(p.index);
  r.u16(p.count);
  r.u64(p.session_id);
  r.u64(reserved);
  if (flags != 0 || reserved != 0) {
    return fail(std::string("reserved preamble fields are not zero"));
  }
  if (p.session_id == 0) {
    return fail(std::string("session id 0 is invalid"));
  }
  return p;
}

StreamResult<std::vector<std::unique_ptr<ByteStream>>> connect_channels(
    const Address& address, unsigned count, const ChannelOptions& options) {
  if (count == 0 || count > kMaxSessionChannels) {
    return fail(
        refused(fmt::format("channel count {} is outside 1..{}", count, kMaxSessionChannels)));
  }
  auto deadline = Clock::now() + options.timeout;
  ChannelPreamble preamble;
  preamble.count = static_cast<uint16_t>(count);
  preamble.session_id = random_session_id();
  std::vector<std::unique_ptr<ByteStream>> channels;
  for (unsigned i = 0; i < count; ++i) {
    preamble.index = static_cast<uint16_t>(i);
    auto channel = open_channel(address, preamble, options, deadline);
    if (!channel) {
      return fail(channel.error());
    }
    channels.push_back(std::move(*channel));
  }
  return channels;
}

namespace {

// Gathers one session's channels on the accepting side.
class Gathering {
 public:
  explicit Gathering(const ChannelOptions& options) : options_(options) {}

  bool complete() const { return count_ > 0 && connected_ == count_; }
  std::vector<std::unique_ptr<ByteStream>> take() { return std::move(slots_); }
  const std::string& last_refusal() const { return last_refusal_; }
  unsigned connected() const { return connected_; }
  unsigned count() const { return count_; }

  // Runs TLS and the preamble exchange on one accepted connection; keeps it or refuses it.
  void offer(std::unique_ptr<ByteStream> stream, Clock::time_point deadline);

 private:
  void refuse(const std::string& peer, const std::string& why) {
    ++refusals_[peer_host(peer)];
    last_refusal_ = fmt::format("{}: {}", peer, why);
    if (options_.on_refused) {
      options_.on_refused(refused(last_refusal_));
    }
  }
  ChannelStatus judge(const ChannelPreamble& p, const std::string& host) const;

  const ChannelOptions& options_;
  std::vector<std::unique_ptr<ByteStream>> slots_;
  std::map<std::string, unsigned> refusals_;  // by peer address, without the port
  std::string session_host_;                  // the address the session's channels come from
  uint64_t session_ = 0;
  unsigned count_ = 0;
  unsigned connected_ = 0;
  std::string last_refusal_;
};

ChannelStatus Gathering::judge(const ChannelPreamble& p, const std::string& host) const {
  if (p.version != kChannelVersion) {
    return ChannelStatus::BadVersion;
  }
  if (p.count == 0 || p.count > kMaxSessionChannels || p.index >= p.count) {
    return ChannelStatus::BadIndex;
  }
  // One session per listener, and all its channels from the address of its first one:
  // a session id seen on the network does not let another host join the migration.
  if (session_ != 0 && (p.session_id != session_ || host != session_host_)) {
    return ChannelStatus::OtherSession;
  }
  if (session_ != 0 && p.count != count_) {
    return ChannelStatus::BadIndex;
  }
  if (session_ != 0 && slots_[p.index]) {
    return ChannelStatus::DuplicateIndex;
  }
  return ChannelStatus::Ok;
}

void Gathering::offer(std::unique_ptr<ByteStream> stream, Clock::time_point deadline) {
  std::string peer = stream->peer();
  const std::string host = peer_host(peer);
  if (auto it = refusals_.find(host);
      it != refusals_.end() && it->second >= options_.max_refusals_per_peer) {
    if (it->second++ == options_.max_refusals_per_peer) {
      refuse(peer, fmt::format("{} connections from this address were refused; further ones "
                               "are closed unread",
                               options_.max_refusals_per_peer));
    }
    stream->shutdown();
    return;
  }
  // A connection that says nothing holds the listener for handshake_timeout at most.
  deadline = std::min(deadline, Clock::now() + options_.handshake_timeout);
  if (options_.tls) {
    auto tls = tls_handshake(std::move(stream), *options_.tls, TlsRole::Server,
                             left_until(deadline));
    if (!tls) {
      refuse(peer, tls.error().message());
      return;
    }
    stream = std::move(*tls);
  }
  stream->set_timeout(left_until(deadline));
  uint8_t raw[kChannelPreambleSize];
  auto r = stream->read_exact(raw);
  if (!r) {
    refuse(peer, "no channel preamble: " + r.error().message());
    return;
  }
  auto preamble = decode_preamble(raw);
  if (!preamble) {
    refuse(peer, preamble.error());  // garbage gets no reply, just a close
    return;
  }
  ChannelStatus status = judge(*preamble, host);
  auto w = stream->write_all(encode_ack(status));
  if (w) {
    w = stream->flush();
  }
  if (status != ChannelStatus::Ok) {
    std::string why = status_text(status);
    if (status == ChannelStatus::OtherSession && preamble->session_id == session_) {
      why = fmt::format("the session's channels come from {}, not this address", session_host_);
    }
    refuse(peer, fmt::format("channel {}/{} of session {:016x} refused: {}", preamble->index + 1,
                             preamble->count, preamble->session_id, why));
    return;
  }
  if (!w) {
    refuse(peer, "cannot acknowledge channel: " + w.error().message());
    return;
  }
  if (session_ == 0) {
    session_host_ = host;
    session_ = preamble->session_id;
    count_ = preamble->count;
    slots_.resize(count_);
  }
  stream->set_timeout(milliseconds(0));
  slots_[preamble->index] = std::move(stream);
  ++connected_;
}

}  // namespace

StreamResult<std::vector<std::unique_ptr<ByteStream>>> accept_channels(
    Listener& listener, const ChannelOptions& options) {
  auto deadline = Clock::now() + options.timeout;
  Gathering gathering(options);
  while (!gathering.complete()) {
    if (expired(deadline)) {
      break;
    }
    auto tcp = listener.accept(left_until(deadline), options.tcp);
    if (!tcp) {
      if (tcp.error().errc == StreamErrc::TimedOut) {
        break;
      }
      return fail(tcp.error());
    }
    gathering.offer(std::move(*tcp), deadline);
  }
  if (gathering.complete()) {
    return gathering.take();
  }
  std::string got = gathering.count() == 0
                        ? std::string("no channel arrived")
                        : fmt::format("{} of {} channels arrived", gathering.connected(),
                                      gathering.count());
  std::string why = gathering.last_refusal().empty()
                        ? std::string()
                        : "; last refused connection: " + gathering.last_refusal();
  return fail(StreamError{StreamErrc::TimedOut, {},
                          fmt::format("waiting for migration channels on {} for {} ms: {}{}",
                                      listener.address().to_string(), options.timeout.count(),
                                      got, why)});
}

}  // namespace ferry::migration
