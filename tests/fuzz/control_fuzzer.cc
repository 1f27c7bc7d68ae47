// Fuzzes the control socket's line protocol (control_server.h): the request parser on
// the first input line, and the reply encoder on replies that quote arbitrary bytes (the
// rest of the input), as the migrate handler quotes a peer's error text. Every encoded
// line must be one line of valid JSON that parses back to an object.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "ferry/vmm/control_server.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using ferry::vmm::encode_control_line;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nl = input.find('\n');
  const std::string_view line = input.substr(0, nl);
  const std::string_view quoted = nl == std::string_view::npos ? "" : input.substr(nl + 1);
  auto request = ferry::vmm::parse_control_request(line);
  nlohmann::json reply;
  if (request) {
    // What handlers do with fields: typed reads that may throw, which they catch.
    try {
      (void)request->value("channels", 1u);
      (void)request->value("to", std::string());
      (void)request->value("downtime_ms", 10u);
    } catch (const nlohmann::json::exception&) {
    }
    reply = {{"ok", true}, {"echo", *request}, {"error", std::string(quoted)}};
  } else {
    reply = {{"ok", false}, {"error", request.error() + ": " + std::string(quoted)}};
  }
  const std::string out = encode_control_line(reply);
  if (out.empty() || out.back() != '\n' || out.find('\n') != out.size() - 1) {
    std::abort();
  }
  auto back = nlohmann::json::parse(out, nullptr, false);
  if (back.is_discarded() || !back.is_object() || !back.contains("ok")) {
    std::abort();
  }
  return 0;
}
