// A small blocking HTTP/1.1 client for etcd's v3 JSON gateway: one POST per connection
// ("Connection: close"), bodies of Content-Length or chunked encoding, every wait bounded
// by a deadline. Streaming endpoints (lease keep-alive) are read up to their first message.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "ferry/kernel-interfaces/result.h"

namespace ferry::agent {

struct HttpError {
  std::string detail;  // "connect 10.0.0.1:2379: Connection refused", "timed out after 2000 ms"
  std::string message() const { return detail; }
};

template <typename T>
using HttpResult = Result<T, HttpError>;

struct HttpResponse {
  int status = 0;    // 200, 404, ...
  std::string body;  // de-chunked
};

/// Parses the bytes of an HTTP/1.1 response received so far: complete=false while more are
/// needed, an error for a malformed one. With `first_message_only`, a chunked body is
/// complete after its first chunk (gRPC-gateway streams never end on their own).
struct ParsedResponse {
  bool complete = false;
  HttpResponse response;
};
HttpResult<ParsedResponse> parse_http_response(std::string_view raw, bool first_message_only);

class HttpClient {
 public:
  /// `endpoint` is HOST:PORT (IPv4, [IPv6] or a name).
  explicit HttpClient(std::string endpoint,
                      std::chrono::milliseconds timeout = std::chrono::milliseconds(3000))
      : endpoint_(std::move(endpoint)), timeout_(timeout) {}

  /// POSTs a JSON body to `path` and returns the response (any status).
  HttpResult<HttpResponse> post(std::string_view path, std::string_view json_body,
                                bool first_message_only = false) const;

  const std::string& endpoint() const { return endpoint_; }

 private:
  std::string endpoint_;
  std::chrono::milliseconds timeout_;
};

}  // namespace ferry::agent
