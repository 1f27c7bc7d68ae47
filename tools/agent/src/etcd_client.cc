#include "ferry/agent/etcd_client.h"

#include <array>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace ferry::agent {
namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

EtcdError etcd_error(std::string detail) { return EtcdError{std::move(detail)}; }

// The gateway prints int64 fields as strings and omits zero values.
int64_t int_field(const nlohmann::json& object, const char* name) {
  auto it = object.find(name);
  if (it == object.end()) {
    return 0;
  }
  if (it->is_number_integer()) {
    return it->get<int64_t>();
  }
  if (it->is_string()) {
    try {
      return std::stoll(it->get<std::string>());
    } catch (const std::exception&) {
      return 0;
    }
  }
  return 0;
}

EtcdResult<KeyValue> parse_kv(const nlohmann::json& kv) {
  KeyValue out;
  auto key = base64_decode(kv.value("key", ""));
  auto value = base64_decode(kv.value("value", ""));
  if (!key || !value) {
    return fail(etcd_error("etcd returned a key or value that is not base64"));
  }
  out.key = std::move(*key);
  out.value = std::move(*value);
  out.create_revision = int_field(kv, "create_revision");
  out.mod_revision = int_field(kv, "mod_revision");
  out.version = int_field(kv, "version");
  out.lease = int_field(kv, "lease");
  return out;
}

const char* target_name(EtcdCompare::Target target) {
  switch (target) {
    case EtcdCompare::Target::Version: return "VERSION";
    case EtcdCompare::Target::Create: return "CREATE";
    case EtcdCompare::Target::Mod: return "MOD";
    case EtcdCompare::Target::Value: return "VALUE";
  }
  return "VERSION";
}

const char* op_name(EtcdCompare::Op op) {
  switch (op) {
    case EtcdCompare::Op::Equal: return "EQUAL";
    case EtcdCompare::Op::Greater: return "GREATER";
    case EtcdCompare::Op::Less: return "LESS";
    case EtcdCompare::Op::NotEqual: return "NOT_EQUAL";
  }
  return "EQUAL";
}

nlohmann::json op_json(const EtcdOp& op) {
  if (op.kind == EtcdOp::Kind::Delete) {
    return {{"request_delete_range", {{"key", base64_encode(op.key)}}}};
  }
  nlohmann::json put{{"key", base64_encode(op.key)}, {"value", base64_encode(op.value)}};
  if (op.lease != 0) {
    put["lease"] = std::to_string(op.lease);
  }
  return {{"request_put", put}};
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = (static_cast<uint8_t>(bytes[i]) << 16) |
                 (static_cast<uint8_t>(bytes[i + 1]) << 8) | static_cast<uint8_t>(bytes[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (std::size_t left = bytes.size() - i; left > 0) {
    uint32_t v = static_cast<uint8_t>(bytes[i]) << 16;
    if (left == 2) {
      v |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    }
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += left == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  std::array<int8_t, 256> table;
  table.fill(-1);
  for (std::size_t i = 0; i < kAlphabet.size(); ++i) {
    table[static_cast<uint8_t>(kAlphabet[i])] = static_cast<int8_t>(i);
  }
  if (text.size() % 4 != 0) {
    return std::nullopt;
  }
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    int padding = 0;
    uint32_t v = 0;
    for (std::size_t j = 0; j < 4; ++j) {
      char c = text[i + j];
      if (c == '=') {
        // Padding only in the last group, only at its end.
        if (i + 4 != text.size() || j < 2) {
          return std::nullopt;
        }
        ++padding;
        v <<= 6;
        continue;
      }
      if (padding > 0 || table[static_cast<uint8_t>(c)] < 0) {
        return std::nullopt;
      }
      v = (v << 6) | static_cast<uint32_t>(table[static_cast<uint8_t>(c)]);
    }
    out += static_cast<char>((v >> 16) & 0xff);
    if (padding < 2) {
      out += static_cast<char>((v >> 8) & 0xff);
    }
    if (padding < 1) {
      out += static_cast<char>(v & 0xff);
    }
  }
  return out;
}

std::string prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<uint8_t>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<uint8_t>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

EtcdResult<std::string> EtcdClient::call(std::string_view path, const std::string& body,
                                         bool first_message_only) {
  auto response = http_.post(path, body, first_message_only);
  if (!response) {
    return fail(etcd_error(fmt::format("etcd {}: {}", endpoint(), response.error().detail)));
  }
  if (response->status != 200) {
    std::string reason = response->body.substr(0, 300);
    try {
      auto parsed = nlohmann::json::parse(response->body);
      reason = parsed.value("message", parsed.value("error", reason));
    } catch (const nlohmann::json::exception&) {
    }
    return fail(etcd_error(
        fmt::format("etcd {} {}: HTTP {}: {}", endpoint(), path, response->status, reason)));
  }
  return std::move(response->body);
}

namespace {
EtcdResult<nlohmann::json> parse_json(const std::string& endpoint, std::string_view path,
                                      const std::string& text) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    return fail(etcd_error(fmt::format("etcd {} {}: reply is not JSON: {}", endpoint, path,
                                       e.what())));
  }
}
}  // namespace

EtcdResult<int64_t> EtcdClient::grant_lease(int64_t ttl_seconds) {
  nlohmann::json body{{"TTL", std::to_string(ttl_seconds)}};
  auto text = call("/v3/lease/grant", body.dump());
  if (!text) {
    return fail(text.error());
  }
  auto reply = parse_json(endpoint(), "/v3/lease/grant", *text);
  if (!reply) {
    return fail(reply.error());
  }
  int64_t id = int_field(*reply, "ID");
  if (id == 0) {
    return fail(etcd_error(fmt::format("etcd {}: lease grant refused: {}", endpoint(),
                                       reply->value("error", text->substr(0, 200)))));
  }
  return id;
}

EtcdResult<int64_t> EtcdClient::keep_alive(int64_t lease) {
  nlohmann::json body{{"ID", std::to_string(lease)}};
  // A keep-alive is a stream on the gateway: one message answers one request.
  auto text = call("/v3/lease/keepalive", body.dump(), /*first_message_only=*/true);
  if (!text) {
    return fail(text.error());
  }
  auto reply = parse_json(endpoint(), "/v3/lease/keepalive", *text);
  if (!reply) {
    return fail(reply.error());
  }
  if (reply->contains("error")) {
    return fail(etcd_error(fmt::format("etcd {}: keep-alive: {}", endpoint(),
                                       (*reply)["error"].dump())));
  }
  // An expired lease answers without a TTL.
  return int_field(reply->value("result", nlohmann::json::object()), "TTL");
}

EtcdResult<void> EtcdClient::revoke_lease(int64_t lease) {
  nlohmann::json body{{"ID", std::to_string(lease)}};
  auto text = call("/v3/lease/revoke", body.dump());
  if (!text) {
    return fail(text.error());
  }
  return {};
}

EtcdResult<void> EtcdClient::put(std::string_view key, std::string_view value, int64_t lease) {
  nlohmann::json body{{"key", base64_encode(key)}, {"value", base64_encode(value)}};
  if (lease != 0) {
    body["lease"] = std::to_string(lease);
  }
  auto text = call("/v3/kv/put", body.dump());
  if (!text) {
    return fail(text.error());
  }
  return {};
}

EtcdResult<std::optional<KeyValue>> EtcdClient::get(std::string_view key) {
  nlohmann::json body{{"key", base64_encode(key)}};
  auto text = call("/v3/kv/range", body.dump());
  if (!text) {
    return fail(text.error());
  }
  auto reply = parse_json(endpoint(), "/v3/kv/range", *text);
  if (!reply) {
    return fail(reply.error());
  }
  auto kvs = reply->find("kvs");
  if (kvs == reply->end() || !kvs->is_array() || kvs->empty()) {
    return std::optional<KeyValue>();
  }
  auto kv = parse_kv(kvs->front());
  if (!kv) {
    return fail(kv.error());
  }
  return std::optional<KeyValue>(std::move(*kv));
}

EtcdResult<RangeResult> EtcdClient::get_prefix(std::string_view prefix) {
  nlohmann::json body{{"key", base64_encode(prefix)},
                      {"range_end", base64_encode(prefix_end(prefix))}};
  auto text = call("/v3/kv/range", body.dump());
  if (!text) {
    return fail(text.error());
  }
  auto reply = parse_json(endpoint(), "/v3/kv/range", *text);
  if (!reply) {
    return fail(reply.error());
  }
  RangeResult result;
  result.revision = int_field(reply->value("header", nlohmann::json::object()), "revision");
  if (auto kvs = reply->find("kvs"); kvs != reply->end() && kvs->is_array()) {
    for (const auto& item : *kvs) {
      auto kv = parse_kv(item);
      if (!kv) {
        return fail(kv.error());
      }
      result.kvs.push_back(std::move(*kv));
    }
  }
  return result;
}

EtcdResult<int64_t> EtcdClient::remove(std::string_view key) {
  nlohmann::json body{{"key", base64_encode(key)}};
  auto text = call("/v3/kv/deleterange", body.dump());
  if (!text) {
    return fail(text.error());
  }
  auto reply = parse_json(endpoint(), "/v3/kv/deleterange", *text);
  if (!reply) {
    return fail(reply.error());
  }
  return int_field(*reply, "deleted");
}

EtcdResult<bool> EtcdClient::txn(const std::vector<EtcdCompare>& compares,
                                 const std::vector<EtcdOp>& success,
                                 const std::vector<EtcdOp>& failure) {
  nlohmann::json body{{"compare", nlohmann::json::array()},
                      {"success", nlohmann::json::array()},
                      {"failure", nlohmann::json::array()}};
  for (const auto& c : compares) {
    nlohmann::json cmp{{"key", base64_encode(c.key)},
                       {"target", target_name(c.target)},
                       {"result", op_name(c.op)}};
    if (!c.range_end.empty()) {
      cmp["range_end"] = base64_encode(c.range_end);
    }
    switch (c.target) {
      case EtcdCompare::Target::Version: cmp["version"] = std::to_string(c.number); break;
      case EtcdCompare::Target::Create: cmp["create_revision"] = std::to_string(c.number); break;
      case EtcdCompare::Target::Mod: cmp["mod_revision"] = std::to_string(c.number); break;
      case EtcdCompare::Target::Value: cmp["value"] = base64_encode(c.value); break;
    }
    body["compare"].push_back(std::move(cmp));
  }
  for (const auto& op : success) {
    body["success"].push_back(op_json(op));
  }
  for (const auto& op : failure) {
    body["failure"].push_back(op_json(op));
  }
  auto text = call("/v3/kv/txn", body.dump());
  if (!text) {
    return fail(text.error());
  }
  auto reply = parse_json(endpoint(), "/v3/kv/txn", *text);
  if (!reply) {
    return fail(reply.error());
  }
  return reply->value("succeeded", false);
}

}  // namespace ferry::agent
