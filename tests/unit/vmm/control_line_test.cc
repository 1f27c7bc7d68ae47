// The control socket's pure line functions: request parsing, and reply encoding of text
// that is not UTF-8 (found while writing tests/fuzz/control_fuzzer.cc: nlohmann's dump()
// throws on it, which ended the server thread and so the VMM).
#include <gtest/gtest.h>

#include <string>

#include "ferry/vmm/control_server.h"

namespace ferry::vmm {
namespace {

TEST(ControlLine, ParsesObjectsWithAStringCmdOnly) {
  auto ok = parse_control_request(R"({"cmd":"status","x":1})");
  ASSERT_TRUE(ok) << ok.error();
  EXPECT_EQ((*ok)["cmd"], "status");
  for (const char* bad : {"", "[]", "\"cmd\"", "{\"cmd\":1}", "{\"x\":1}", "{\"cmd\":\"a\""}) {
    auto r = parse_control_request(bad);
    EXPECT_FALSE(r) << bad;
  }
  EXPECT_EQ(parse_control_request("[1]").error(), "request is not a JSON object");
  EXPECT_EQ(parse_control_request("{}").error(), "request has no string \"cmd\"");
}

TEST(ControlLine, RepliesQuotingInvalidUtf8AreEncodedNotThrown) {
  // A migration peer's Error record text ends up in the migrate reply verbatim.
  const std::string peer_text = "destination failed: \xff\xfe bad \xc3";
  nlohmann::json reply = {{"ok", false}, {"error", peer_text}};
  std::string line;
  ASSERT_NO_THROW(line = encode_control_line(reply));
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  auto back = nlohmann::json::parse(line);
  EXPECT_EQ(back["ok"], false);
  EXPECT_NE(back["error"].get<std::string>().find("\xEF\xBF\xBD"), std::string::npos);  // U+FFFD
  EXPECT_EQ(encode_control_line({{"ok", true}}), "{\"ok\":true}\n");
}

}  // namespace
}  // namespace ferry::vmm
