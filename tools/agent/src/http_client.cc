#include "ferry/agent/http_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>

#include <fmt/format.h>

#include "ferry/kernel-interfaces/socket.h"
#include "ferry/migration/address.h"

namespace ferry::agent {
namespace {

using Clock = std::chrono::steady_clock;

// Largest response accepted: etcd range replies of a whole fleet stay far below this.
constexpr std::size_t kMaxResponseBytes = std::size_t{64} << 20;
constexpr std::size_t kMaxHeaderBytes = std::size_t{64} << 10;

HttpError http_error(std::string detail) { return HttpError{std::move(detail)}; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

}  // namespace

HttpResult<ParsedResponse> parse_http_response(std::string_view raw, bool first_message_only) {
  ParsedResponse parsed;
  std::size_t header_end = raw.find("\r\n\r\n");
  if (header_end == std::string_view::npos) {
    if (raw.size() > kMaxHeaderBytes) {
      return fail(http_error("response headers longer than 64 KiB"));
    }
    return parsed;
  }
  std::string_view head = raw.substr(0, header_end);
  std::string_view body = raw.substr(header_end + 4);
  std::size_t line_end = head.find("\r\n");
  std::string_view status_line = head.substr(0, line_end);
  if (!status_line.starts_with("HTTP/1.") || status_line.size() < 12) {
    return fail(http_error(fmt::format("not an HTTP/1.x response: '{}'",
                                       status_line.substr(0, 40))));
  }
  int status = 0;
  auto [ptr, ec] = std::from_chars(status_line.data() + 9, status_line.data() + 12, status);
  if (ec != std::errc() || ptr != status_line.data() + 12 || status < 100 || status > 599) {
    return fail(http_error(fmt::format("bad HTTP status line '{}'", status_line)));
  }
  parsed.response.status = status;

  bool chunked = false;
  std::optional<std::size_t> content_length;
  std::string_view rest = line_end == std::string_view::npos ? "" : head.substr(line_end + 2);
  while (!rest.empty()) {
    std::size_t eol = rest.find("\r\n");
    std::string_view line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? "" : rest.substr(eol + 2);
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      return fail(http_error(fmt::format("bad HTTP header line '{}'", line)));
    }
    std::string_view name = trim(line.substr(0, colon));
    std::string_view value = trim(line.substr(colon + 1));
    if (iequals(name, "Transfer-Encoding") && iequals(value, "chunked")) {
      chunked = true;
    } else if (iequals(name, "Content-Length")) {
      std::size_t length = 0;
      auto [p, e] = std::from_chars(value.data(), value.data() + value.size(), length);
      if (e != std::errc() || p != value.data() + value.size() || length > kMaxResponseBytes) {
        return fail(http_error(fmt::format("bad Content-Length '{}'", value)));
      }
      content_length = length;
    }
  }

  if (!chunked) {
    if (!content_length) {
      // Without a length the body ends with the connection: the caller decides.
      parsed.response.body.assign(body);
      return parsed;
    }
    if (body.size() < *content_length) {
      return parsed;
    }
    parsed.response.body.assign(body.substr(0, *content_length));
    parsed.complete = true;
    return parsed;
  }
  // Chunked: "<hex size>[;ext]\r\n<data>\r\n" ... "0\r\n\r\n".
  while (true) {
    std::size_t eol = body.find("\r\n");
    if (eol == std::string_view::npos) {
      return parsed;
    }
    std::string_view size_text = body.substr(0, eol);
    if (std::size_t semi = size_text.find(';'); semi != std::string_view::npos) {
      size_text = size_text.substr(0, semi);
    }
    std::size_t size = 0;
    auto [p, e] = std::from_chars(size_text.data(), size_text.data() + size_text.size(), size, 16);
    if (e != std::errc() || p != size_text.data() + size_text.size() ||
        size > kMaxResponseBytes) {
      return fail(http_error(fmt::format("bad chunk size '{}'", size_text.substr(0, 20))));
    }
    if (size == 0) {
      parsed.complete = true;
      return parsed;
    }
    if (body.size() < eol + 2 + size + 2) {
      return parsed;
    }
    parsed.response.body.append(body.substr(eol + 2, size));
    if (parsed.response.body.size() > kMaxResponseBytes) {
      return fail(http_error("response body larger than 64 MiB"));
    }
    body.remove_prefix(eol + 2 + size + 2);
    if (first_message_only) {
      parsed.complete = true;
      return parsed;
    }
  }
}

HttpResult<HttpResponse> HttpClient::post(std::string_view path, std::string_view json_body,
                                          bool first_message_only) const {
  const auto deadline = Clock::now() + timeout_;
  auto address = migration::Address::parse("tcp:" + endpoint_);
  if (!address) {
    return fail(http_error(address.error().message()));
  }
  auto resolved = address->resolve();
  if (!resolved) {
    return fail(http_error(resolved.error().message()));
  }
  auto fd = kernel::tcp_connect(resolved->front(), timeout_);
  if (!fd) {
    return fail(http_error(fmt::format("connect {}: {}", endpoint_, fd.error().message())));
  }
  std::string request = fmt::format(
      "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n"
      "Content-Length: {}\r\nConnection: close\r\n\r\n",
      path, endpoint_, json_body.size());
  request.append(json_body);

  std::size_t sent = 0;
  while (sent < request.size()) {
    pollfd pfd{fd->get(), POLLOUT, 0};
    int ready = ::poll(&pfd, 1, remaining_ms(deadline));
    if (ready <= 0) {
      return fail(http_error(fmt::format("POST {}{}: send timed out after {} ms", endpoint_,
                                         path, timeout_.count())));
    }
    ssize_t n = ::send(fd->get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return fail(http_error(fmt::format("POST {}{}: send: {}", endpoint_, path,
                                         std::strerror(errno))));
    }
    sent += static_cast<std::size_t>(n);
  }

  std::string raw;
  char buffer[16384];
  while (true) {
    auto parsed = parse_http_response(raw, first_message_only);
    if (!parsed) {
      return fail(http_error(fmt::format("POST {}{}: {}", endpoint_, path, parsed.error().detail)));
    }
    if (parsed->complete) {
      return std::move(parsed->response);
    }
    pollfd pfd{fd->get(), POLLIN, 0};
    int ready = ::poll(&pfd, 1, remaining_ms(deadline));
    if (ready <= 0) {
      return fail(http_error(fmt::format("POST {}{}: no complete response within {} ms",
                                         endpoint_, path, timeout_.count())));
    }
    ssize_t n = ::recv(fd->get(), buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return fail(http_error(fmt::format("POST {}{}: recv: {}", endpoint_, path,
                                         std::strerror(errno))));
    }
    if (n == 0) {
      // Connection closed: complete only for a body without a length.
      if (parsed->response.status != 0 && raw.find("\r\n\r\n") != std::string::npos &&
          raw.find("Content-Length") == std::string::npos &&
          raw.find("chunked") == std::string::npos) {
        return std::move(parsed->response);
      }
      return fail(http_error(fmt::format("POST {}{}: connection closed mid-response",
                                         endpoint_, path)));
    }
    raw.append(buffer, static_cast<std::size_t>(n));
    if (raw.size() > kMaxResponseBytes + kMaxHeaderBytes) {
      return fail(http_error(fmt::format("POST {}{}: response larger than 64 MiB", endpoint_, path)));
    }
  }
}

}  // namespace ferry::agent
