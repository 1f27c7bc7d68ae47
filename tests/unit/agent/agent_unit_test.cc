#include <gtest/gtest.h>

#include <random>

#include "ferry/agent/etcd_client.h"
#include "ferry/agent/fleet_registry.h"
#include "ferry/agent/guest_process.h"
#include "ferry/agent/http_client.h"
#include "ferry/agent/telemetry_feed.h"

namespace ferry::agent {
namespace {

TEST(Base64, MatchesRfc4648Vectors) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(*base64_decode("Zm9vYg=="), "foob");
}

TEST(Base64, RoundTripsEveryByteValue) {
  std::mt19937 rng(7);
  for (int len = 0; len < 70; ++len) {
    std::string bytes(static_cast<std::size_t>(len), '\0');
    for (auto& b : bytes) {
      b = static_cast<char>(rng());
    }
    auto back = base64_decode(base64_encode(bytes));
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, bytes);
  }
}

TEST(Base64, RejectsMalformedText) {
  EXPECT_FALSE(base64_decode("Zm9"));     // not a multiple of 4
  EXPECT_FALSE(base64_decode("Zm9*"));    // not in the alphabet
  EXPECT_FALSE(base64_decode("Z==="));    // too much padding
  EXPECT_FALSE(base64_decode("Zg==Zm9v"));  // padding in the middle
}

TEST(PrefixEnd, IsTheNextKeyAfterThePrefix) {
  EXPECT_EQ(prefix_end("/ferry/hosts/"), "/ferry/hosts0");
  EXPECT_EQ(prefix_end(std::string("a\xff", 2)), "b");
  EXPECT_EQ(prefix_end(""), std::string(1, '\0'));
}

TEST(HttpResponse, ContentLengthBody) {
  std::string raw = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
  auto partial = parse_http_response(raw.substr(0, raw.size() - 2), false);
  ASSERT_TRUE(partial);
  EXPECT_FALSE(partial->complete);
  auto full = parse_http_response(raw, false);
  ASSERT_TRUE(full);
  EXPECT_TRUE(full->complete);
  EXPECT_EQ(full->response.status, 200);
  EXPECT_EQ(full->response.body, "hello");
}

TEST(HttpResponse, ChunkedBodyAndFirstMessageOfAStream) {
  std::string raw =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4;x=y\r\n\":1}\r\n";
  auto open = parse_http_response(raw, false);
  ASSERT_TRUE(open);
  EXPECT_FALSE(open->complete) << "no terminating chunk yet";
  auto first = parse_http_response(raw, true);
  ASSERT_TRUE(first);
  EXPECT_TRUE(first->complete);
  EXPECT_EQ(first->response.body, "{\"a");
  auto done = parse_http_response(raw + "0\r\n\r\n", false);
  ASSERT_TRUE(done);
  EXPECT_TRUE(done->complete);
  EXPECT_EQ(done->response.body, "{\"a\":1}");
}

TEST(HttpResponse, MalformedResponsesAreErrors) {
  EXPECT_FALSE(parse_http_response("SSH-2.0-OpenSSH\r\n\r\n", false));
  EXPECT_FALSE(parse_http_response("HTTP/1.1 2x0 OK\r\n\r\n", false));
  EXPECT_FALSE(parse_http_response("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false));
  EXPECT_FALSE(parse_http_response("HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n", false));
  EXPECT_FALSE(parse_http_response(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false));
  EXPECT_FALSE(parse_http_response("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", false));
}

TEST(GuestSpec, ParsesIdMemoryVcpusAndCommandLine) {
  auto spec = GuestSpec::parse("web-1:512:2:wss=64 duration=30 note=a:b");
  ASSERT_TRUE(spec) << spec.error();
  EXPECT_EQ(spec->id, "web-1");
  EXPECT_EQ(spec->mem_mib, 512u);
  EXPECT_EQ(spec->vcpus, 2u);
  EXPECT_EQ(spec->cmdline, "wss=64 duration=30 note=a:b");
  auto bare = GuestSpec::parse("g:64:1");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->cmdline, "");
}

TEST(GuestSpec, RejectsBadFieldsWithTheReason) {
  auto no_cpus = GuestSpec::parse("g:64");
  ASSERT_FALSE(no_cpus);
  EXPECT_NE(no_cpus.error().find("ID:MEM_MIB:VCPUS"), std::string::npos);
  EXPECT_FALSE(GuestSpec::parse("../x:64:1"));   // path in the id
  EXPECT_FALSE(GuestSpec::parse("g:lots:1"));
  EXPECT_FALSE(GuestSpec::parse("g:64:0"));
  EXPECT_FALSE(GuestSpec::parse("g:64:999"));
  EXPECT_FALSE(GuestSpec::parse(":64:1"));
}

TEST(HostRecord, JsonRoundTripAndCapacityView) {
  HostRecord h;
  h.name = "b";
  h.address = "10.0.0.2";
  h.mem_total_mib = 1024;
  h.vcpus_total = 8;
  h.guests = {{"g1", 256, 2, "running"}, {"g2", 128, 1, "incoming"}};
  h.risk = 0.002;
  h.devices = {{"S1", "ST3000DM001", "disk", 0.002, -1.5, {"smart_5_raw = 0 (+0.01)"}}};
  auto back = HostRecord::from_json(h.to_json());
  ASSERT_TRUE(back);
  EXPECT_EQ(back->to_json(), h.to_json());
  EXPECT_EQ(back->mem_used_mib(), 384u);
  EXPECT_EQ(back->vcpus_used(), 3u);

  HostRecord a = h;
  a.name = "a";
  a.state = kHostAtRisk;
  HostRecord c = h;
  c.name = "c";
  c.state = kHostOutOfService;
  auto caps = FleetRegistry::capacities({a, h, c}, {{"b", "g9", "a", 100, 1}});
  ASSERT_EQ(caps.size(), 3u);
  EXPECT_TRUE(caps[0].at_risk);
  EXPECT_EQ(caps[1].mem_used_mib, 484u) << "running guests plus the reservation";
  EXPECT_EQ(caps[1].vcpus_used, 4u);
  EXPECT_FALSE(caps[2].in_service);
}

TEST(HostRecord, MissingFieldsAreRejectedNotGuessed) {
  EXPECT_FALSE(HostRecord::from_json(nlohmann::json{{"name", "x"}}));
  EXPECT_FALSE(HostRecord::from_json(nlohmann::json::array()));
}

}  // namespace
}  // namespace ferry::agent

namespace ferry::agent {
namespace {

predictor::LabelledDevice device_with_samples(std::size_t n) {
  predictor::LabelledDevice d;
  d.history.device_id = "S1";
  d.history.host = "recorded-host";
  d.history.model = "M";
  for (std::size_t i = 0; i < n; ++i) {
    d.history.samples.push_back({static_cast<int32_t>(i), {static_cast<float>(i)}});
  }
  return d;
}

TEST(ReplayFeed, RevealsTheHistoryStepByStepAsThisHost) {
  auto feed = replay_feed(device_with_samples(10), "hosta", /*start_index=*/3, /*step=*/2);
  auto first = feed->next();
  EXPECT_EQ(first.host, "hosta") << "the replayed drive sits in this host";
  EXPECT_EQ(first.samples.size(), 4u);
  EXPECT_EQ(feed->next().samples.size(), 6u);
  EXPECT_EQ(feed->next().samples.size(), 8u);
  EXPECT_EQ(feed->next().samples.size(), 10u);
  EXPECT_EQ(feed->next().samples.size(), 10u) << "stays at the end";
  EXPECT_NE(feed->describe().find("S1"), std::string::npos);
}

TEST(ReplayFeed, StartBeyondTheEndShowsEverything) {
  auto feed = replay_feed(device_with_samples(3), "h", 99, 1);
  EXPECT_EQ(feed->next().samples.size(), 3u);
}

TEST(CpuAnomaly, EveryKnownKindYieldsAFailingSyntheticCpu) {
  for (const char* kind : {"sustained_drop", "oscillation", "single_core_throttle"}) {
    auto cpu = synthetic_cpu_anomaly(kind, 1);
    ASSERT_TRUE(cpu) << kind << ": " << cpu.error();
    EXPECT_EQ(cpu->anomaly, kind);
    EXPECT_TRUE(cpu->failure_day.has_value());
    EXPECT_EQ(cpu->history.kind, predictor::DeviceKind::Cpu);
  }
  auto unknown = synthetic_cpu_anomaly("meltdown", 1);
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().find("sustained_drop"), std::string::npos) << "lists the known kinds";
}

}  // namespace
}  // namespace ferry::agent
