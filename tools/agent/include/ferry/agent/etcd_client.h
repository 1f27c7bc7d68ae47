// etcd v3 through its JSON gateway (POST /v3/kv/range, /v3/kv/put, /v3/kv/txn,
// /v3/lease/grant, /v3/lease/keepalive, ...; keys and values are base64 in JSON, 64-bit
// numbers are JSON strings). Only what the fleet registry needs: leases, puts under a
// lease, prefix reads, deletes and compare-and-swap transactions.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/agent/http_client.h"

namespace ferry::agent {

struct EtcdError {
  std::string detail;  // "etcd 10.0.0.1:2379 /v3/kv/put: HTTP 400: ..."
  std::string message() const { return detail; }
};

template <typename T>
using EtcdResult = Result<T, EtcdError>;

struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;
  int64_t lease = 0;
};

struct RangeResult {
  std::vector<KeyValue> kvs;
  int64_t revision = 0;  // store revision the read saw
};

/// One comparison of a transaction, on `key` or on every key in [key, range_end).
struct EtcdCompare {
  enum class Target { Version, Create, Mod, Value };
  enum class Op { Equal, Greater, Less, NotEqual };
  std::string key;
  std::string range_end;  // empty = just `key`
  Target target = Target::Version;
  Op op = Op::Equal;
  int64_t number = 0;  // for Version / Create / Mod
  std::string value;   // for Value
};

/// One operation of a transaction branch: put (with optional lease) or delete.
struct EtcdOp {
  enum class Kind { Put, Delete };
  Kind kind = Kind::Put;
  std::string key;
  std::string value;
  int64_t lease = 0;
};

/// Standard base64 (RFC 4648) as etcd's gateway uses for bytes fields.
std::string base64_encode(std::string_view bytes);
/// nullopt for text that is not base64.
std::optional<std::string> base64_decode(std::string_view text);
/// The smallest key greater than every key starting with `prefix` (etcd's range_end).
std::string prefix_end(std::string_view prefix);

class EtcdClient {
 public:
  explicit EtcdClient(std::string endpoint,
                      std::chrono::milliseconds timeout = std::chrono::milliseconds(3000))
      : http_(std::move(endpoint), timeout) {}

  const std::string& endpoint() const { return http_.endpoint(); }

  /// A lease of `ttl_seconds`; its id.
  EtcdResult<int64_t> grant_lease(int64_t ttl_seconds);
  /// Renews a lease; the TTL it now has, or 0 when the lease no longer exists.
  EtcdResult<int64_t> keep_alive(int64_t lease);
  EtcdResult<void> revoke_lease(int64_t lease);

  EtcdResult<void> put(std::string_view key, std::string_view value, int64_t lease = 0);
  EtcdResult<std::optional<KeyValue>> get(std::string_view key);
  EtcdResult<RangeResult> get_prefix(std::string_view prefix);
  /// Deletes `key`; the number of keys deleted (0 or 1).
  EtcdResult<int64_t> remove(std::string_view key);
  /// Runs `success` if every comparison holds, else `failure`; true when they held.
  EtcdResult<bool> txn(const std::vector<EtcdCompare>& compares,
                       const std::vector<EtcdOp>& success,
                       const std::vector<EtcdOp>& failure = {});

 private:
  EtcdResult<std::string> call(std::string_view path, const std::string& body,
                               bool first_message_only = false);

  HttpClient http_;
};

}  // namespace ferry::agent
