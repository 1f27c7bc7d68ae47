// The receiver against a hostile source (issue 7): claims of huge sizes are refused from
// the header or the Hello alone, before the VM factory runs or a payload buffer is sized;
// records out of order or in the wrong direction end the migration; nothing resumes.
#include <gtest/gtest.h>

#include "ferry/kernel-interfaces/le_bytes.h"
#include "ferry/migration/protocol.h"
#include "ferry/migration/wire.h"
#include "harness.h"

namespace ferry::testing {
namespace {

using migration::MigrationErrc;
using migration::MigrationPhase;
using migration::RecordType;

// A hand-driven source with a factory that counts its calls.
class HostileSource {
 public:
  HostileSource() {
    auto [a, b] = make_stream_pair();
    src_ = std::move(a);
    std::vector<std::unique_ptr<migration::ByteStream>> in;
    in.push_back(std::move(b));
    opts_.io_timeout = std::chrono::milliseconds(2000);
    opts_.max_memory_bytes = 1ull << 30;
    opts_.max_vcpus = 8;
    opts_.max_disk_bytes = 1ull << 30;
    auto inner = fake_factory(resumes_);
    factory_ = [this, inner](const migration::VmDescription& d) {
      ++factory_calls_;
      return inner(d);
    };
    thread_ = std::thread([this, in = std::move(in)]() mutable {
      result_.emplace(migration::migrate_in(std::move(in), factory_, opts_));
    });
  }
  ~HostileSource() {
    src_.reset();
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  static migration::Hello hello() {
    FakeVmConfig c;
    c.regions = {{0, 1u << 20}};
    c.disk_sizes = {};
    migration::Hello h;
    h.session = 5;
    h.channel_count = 1;
    h.vcpus = 1;
    h.memory_bytes = 1u << 20;
    h.config_blob = encode_config(c);
    return h;
  }
  void send(RecordType type, const std::vector<uint8_t>& payload) {
    ASSERT_TRUE(src_->write_all(migration::frame_record(type, payload)));
  }
  // Only a header: the receiver must judge the length without waiting for a payload.
  void send_header(uint16_t type, uint32_t length) {
    std::vector<uint8_t> header;
    ByteWriter w(header);
    migration::encode(w, migration::RecordHeader{type, 0, length, 0});
    ASSERT_TRUE(src_->write_all(header));
  }
  std::optional<migration::RawRecord> reply() {
    auto r = migration::read_record(*src_, MigrationPhase::PreMigration);
    if (!r) {
      return std::nullopt;
    }
    return *r;
  }
  void handshake() {
    send(RecordType::Hello, migration::encode_payload(hello()));
    auto r = reply();
    ASSERT_TRUE(r);
    ASSERT_EQ(migration::decode_hello_reply(r->payload)->status,
              static_cast<uint16_t>(migration::HelloStatus::Accepted));
  }
  migration::MigrationError finish() {
    thread_.join();
    EXPECT_FALSE(*result_);
    EXPECT_EQ(*resumes_, 0) << "a hostile source got a guest resumed";
    return result_->error();
  }
  int factory_calls() const { return factory_calls_.load(); }

 private:
  std::unique_ptr<MemStream> src_;
  migration::ReceiverOptions opts_;
  migration::VmFactory factory_;
  std::atomic<int> factory_calls_{0};
  std::shared_ptr<std::atomic<int>> resumes_ = std::make_shared<std::atomic<int>>(0);
  std::optional<Result<migration::ReceivedVm, migration::MigrationError>> result_;
  std::thread thread_;
};

TEST(ReceiverLimits, HugeRecordLengthIsRefusedFromTheHeaderAlone) {
  // Hello, MachineState and PageBatch claiming 4 GiB - 1: no payload is ever sent, so a
  // receiver that tried to read (or allocate) it first would hang until the timeout.
  {
    HostileSource s;
    s.send_header(static_cast<uint16_t>(RecordType::Hello), 0xFFFFFFFFu);
    auto e = s.finish();
    EXPECT_NE(e.detail.find("exceeds the limit"), std::string::npos) << e.detail;
    EXPECT_EQ(s.factory_calls(), 0);
  }
  {
    HostileSource s;
    s.handshake();
    s.send_header(static_cast<uint16_t>(RecordType::MachineState), migration::kMaxMachineState + 1);
    auto e = s.finish();
    EXPECT_NE(e.detail.find("exceeds the limit"), std::string::npos) << e.detail;
  }
  {
    HostileSource s;
    s.handshake();
    s.send_header(static_cast<uint16_t>(RecordType::DiskBatch), 0xFFFFFFFFu);
    auto e = s.finish();
    EXPECT_NE(e.detail.find("exceeds the limit"), std::string::npos) << e.detail;
  }
}

TEST(ReceiverLimits, HelloClaimsAreRefusedBeforeTheFactoryRuns) {
  struct Claim {
    const char* what;
    void (*apply)(migration::Hello&);
    const char* reason;
  };
  const Claim claims[] = {
      {"1 PiB of memory", [](migration::Hello& h) { h.memory_bytes = 1ull << 50; },
       "this host allows"},
      {"memory not page-aligned", [](migration::Hello& h) { h.memory_bytes = (1u << 20) + 1; },
       "multiple of 4096"},
      {"65536 vCPUs", [](migration::Hello& h) { h.vcpus = 65536; }, "vCPUs"},
      {"an 8 EiB disk",
       [](migration::Hello& h) {
         h.disk_sizes = {1ull << 63};
         h.disk_block_sizes = {1u << 16};
       },
       "exceeds"},
      {"unknown features", [](migration::Hello& h) { h.features = 1ull << 40; }, "feature"},
  };
  for (const Claim& c : claims) {
    SCOPED_TRACE(c.what);
    HostileSource s;
    migration::Hello h = HostileSource::hello();
    c.apply(h);
    s.send(RecordType::Hello, migration::encode_payload(h));
    auto r = s.reply();
    if (r && r->type == RecordType::HelloReply) {
      auto reply = migration::decode_hello_reply(r->payload);
      ASSERT_TRUE(reply);
      EXPECT_EQ(reply->status, static_cast<uint16_t>(migration::HelloStatus::Refused));
      EXPECT_NE(reply->reason.find(c.reason), std::string::npos) << reply->reason;
    }
    auto e = s.finish();
    EXPECT_TRUE(e.errc == MigrationErrc::Refused || e.errc == MigrationErrc::Protocol)
        << e.message();
    EXPECT_EQ(s.factory_calls(), 0) << "the factory ran for a refused Hello";
  }
}

TEST(ReceiverLimits, RecordsOutOfOrderOrFromTheWrongSideEndTheMigration) {
  // Records only the destination sends, and control records before their phase.
  const std::pair<RecordType, std::vector<uint8_t>> bad[] = {
      {RecordType::DestReady, migration::encode_payload(migration::DestReady{})},
      {RecordType::Resumed, migration::encode_payload(migration::Resumed{})},
      {RecordType::HelloReply,
       migration::encode_payload(migration::HelloReply{
           static_cast<uint16_t>(migration::HelloStatus::Accepted), 1, ""})},
      {RecordType::ChannelJoin, migration::encode_payload(migration::ChannelJoin{})},
      {RecordType::ChannelDone, migration::encode_payload(migration::ChannelDone{})},
  };
  for (const auto& [type, payload] : bad) {
    SCOPED_TRACE(migration::record_type_name(static_cast<uint16_t>(type)));
    HostileSource s;
    s.handshake();
    s.send(type, payload);
    auto e = s.finish();
    EXPECT_EQ(e.errc, MigrationErrc::Protocol) << e.message();
    EXPECT_EQ(e.phase, MigrationPhase::Brownout) << e.message();
  }
  {
    // A data record before Hello.
    HostileSource s;
    s.send(RecordType::RoundEnd, migration::encode_payload(migration::RoundEnd{}));
    auto e = s.finish();
    EXPECT_EQ(e.errc, MigrationErrc::Protocol) << e.message();
    EXPECT_EQ(s.factory_calls(), 0);
  }
}

}  // namespace
}  // namespace ferry::testing
