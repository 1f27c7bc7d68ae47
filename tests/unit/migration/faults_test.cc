// Failure paths: refusals, cuts at many byte offsets in both directions, corruption,
// stalls, cancellation, out-of-order and oversized records, VM-port failures. After each:
// the guest runs on exactly one side (or, in the one ambiguous window, stays paused and
// intact on the source), and the destination never ran a guest that did not arrive whole.
#include <gtest/gtest.h>

#include <random>

#include "ferry/migration/protocol.h"
#include "ferry/migration/wire.h"
#include "harness.h"

namespace ferry::testing {
namespace {

using migration::GuestLocation;
using migration::MigrationErrc;
using migration::MigrationPhase;

FakeVmConfig cfg() {
  FakeVmConfig c;
  c.regions = {{0, 2u << 20}};
  c.vcpus = 1;
  c.disk_sizes = {1u << 20};
  return c;
}

/// The invariant every failure must keep.
void expect_safe(const RunResult& r, FakeVm& src, const std::vector<uint8_t>& before,
                 const std::string& what) {
  SCOPED_TRACE(what);
  ASSERT_TRUE(r.out.has_value());
  ASSERT_FALSE(*r.out) << "migration unexpectedly succeeded";
  const migration::MigrationError& e = r.out->error();
  EXPECT_NE(e.phase, MigrationPhase::Invalid);
  EXPECT_EQ(e.message().rfind(migration::phase_name(e.phase), 0), 0u) << e.message();
  EXPECT_TRUE(src.memory() == before) << "source memory changed";
  EXPECT_FALSE(src.dirty_logging());
  EXPECT_EQ(src.throttle(), 0u);
  if (e.guest == GuestLocation::RunningOnSource) {
    EXPECT_TRUE(src.running()) << e.message();
    EXPECT_EQ(*r.dest_resumes, 0) << "guest running on both sides";
    ASSERT_TRUE(r.in.has_value());
    EXPECT_FALSE(*r.in);
  } else {
    ASSERT_EQ(e.guest, GuestLocation::PausedOnSource) << e.message();
    EXPECT_EQ(e.errc, MigrationErrc::CommitUnknown);
    EXPECT_TRUE(src.paused());
  }
}

TEST(Faults, RefusesTooMuchMemoryAndTooManyVcpus) {
  {
    FakeVm src(cfg());
    src.fill(1);
    auto before = src.memory();
    RunSetup s;
    s.receiver.max_memory_bytes = 1u << 20;
    RunResult r = run_migration(src, s);
    expect_safe(r, src, before, "memory");
    EXPECT_EQ(r.out->error().errc, MigrationErrc::Refused);
    EXPECT_EQ(r.out->error().phase, MigrationPhase::PreMigration);
    EXPECT_NE(r.out->error().detail.find("2 MiB of memory, this host allows 1 MiB"),
              std::string::npos)
        << r.out->error().detail;
    EXPECT_EQ(r.in->error().errc, MigrationErrc::Refused);
  }
  {
    FakeVmConfig c = cfg();
    c.vcpus = 8;
    FakeVm src(c);
    auto before = src.memory();
    RunSetup s;
    s.receiver.max_vcpus = 4;
    RunResult r = run_migration(src, s);
    expect_safe(r, src, before, "vcpus");
    EXPECT_NE(r.out->error().detail.find("8 vCPUs"), std::string::npos);
  }
}

TEST(Faults, NoChannelsIsABadOption) {
  FakeVm src(cfg());
  auto res = migration::migrate_out(src, {}, {}, {});
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().errc, MigrationErrc::BadOptions);
  EXPECT_EQ(res.error().guest, GuestLocation::RunningOnSource);
  EXPECT_TRUE(src.running());
  EXPECT_FALSE(src.dirty_logging());
}

TEST(Faults, FactoryRefusalIsReported) {
  FakeVm src(cfg());
  auto before = src.memory();
  RunSetup s;
  auto resumes = std::make_shared<std::atomic<int>>(0);
  RunResult r;
  {
    auto [a, b] = make_stream_pair();
    std::vector<std::unique_ptr<migration::ByteStream>> in;
    in.push_back(std::move(b));
    migration::VmFactory refuse = [](const migration::VmDescription&)
        -> migration::VmResult<std::unique_ptr<migration::MigratableVm>> {
      return fail(migration::VmPortError{"disk image not writable"});
    };
    std::thread t([&] { r.in.emplace(migration::migrate_in(std::move(in), refuse, {})); });
    std::vector<std::unique_ptr<migration::ByteStream>> out;
    out.push_back(std::move(a));
    r.out.emplace(migration::migrate_out(src, std::move(out), {}, {}));
    t.join();
  }
  expect_safe(r, src, before, "factory");
  EXPECT_NE(r.out->error().detail.find("disk image not writable"), std::string::npos);
}

/// Runs a clean migration of a fresh, deterministic VM and returns the bytes each way.
std::pair<uint64_t, uint64_t> clean_totals() {
  FakeVm src(cfg());
  src.fill(9);
  RunResult r = run_migration(src, {});
  EXPECT_TRUE(*r.out);
  return {*r.to_dest_bytes, *r.to_source_bytes};
}

TEST(Faults, CutSourceToDestinationAtManyOffsets) {
  auto [total, back] = clean_totals();
  ASSERT_GT(total, 1000u);
  EXPECT_EQ(back, 24u + 32u + 32u);  // HelloReply, DestReady, Resumed
  std::vector<uint64_t> offsets = {
      0, 10, 100, 5000, total / 4, total / 2, total * 3 / 4, total - 300, total - 30, total - 1};
  for (uint64_t off : offsets) {
    FakeVm src(cfg());
    src.fill(9);
    auto before = src.memory();
    RunSetup s;
    s.to_dest.push_back(PipeFaults{.cut_after_bytes = off});
    RunResult r = run_migration(src, s);
    expect_safe(r, src, before, "cut at " + std::to_string(off) + " of " + std::to_string(total));
    EXPECT_EQ(*r.dest_resumes, 0);
    if (off >= total - 24) {
      // Inside the Commit record: the one ambiguous window.
      EXPECT_EQ(r.out->error().guest, GuestLocation::PausedOnSource);
      EXPECT_NE(r.out->error().message().find("PAUSED"), std::string::npos);
    } else {
      EXPECT_EQ(r.out->error().guest, GuestLocation::RunningOnSource) << off;
    }
  }
}

TEST(Faults, CutDestinationToSourceAtEveryReply) {
  // 0..23 HelloReply, 24..55 DestReady, 56..87 Resumed.
  for (uint64_t off : std::vector<uint64_t>{0, 10, 24, 40, 56, 70}) {
    FakeVm src(cfg());
    src.fill(9);
    auto before = src.memory();
    RunSetup s;
    s.to_source.push_back(PipeFaults{.cut_after_bytes = off});
    RunResult r = run_migration(src, s);
    if (off >= 56) {
      // The destination resumed, then the Resumed ack was lost: the guest runs there and
      // the source keeps its copy paused (never two running copies).
      ASSERT_TRUE(*r.in) << r.in->error().message();
      EXPECT_EQ(*r.dest_resumes, 1);
      EXPECT_TRUE(r.dest()->running());
      ASSERT_FALSE(*r.out);
      EXPECT_EQ(r.out->error().guest, GuestLocation::PausedOnSource);
      EXPECT_TRUE(src.paused());
      EXPECT_TRUE(src.memory() == r.dest()->memory());
    } else {
      expect_safe(r, src, before, "reply cut at " + std::to_string(off));
      EXPECT_EQ(r.out->error().guest, GuestLocation::RunningOnSource);
    }
  }
}

TEST(Faults, CorruptedBytesAreRejectedAndTheSourceKeepsRunning) {
  auto [total, back] = clean_totals();
  (void)back;
  for (uint64_t off :
       std::vector<uint64_t>{3, 40, 600, total / 3, total / 2, total - 100, total - 5}) {
    FakeVm src(cfg());
    src.fill(9);
    auto before = src.memory();
    RunSetup s;
    s.to_dest.push_back(PipeFaults{.corrupt_byte = off});
    RunResult r = run_migration(src, s);
    expect_safe(r, src, before, "corrupt byte " + std::to_string(off));
    EXPECT_EQ(r.out->error().guest, GuestLocation::RunningOnSource);
    EXPECT_EQ(*r.dest_resumes, 0);
    ASSERT_FALSE(*r.in);
    EXPECT_TRUE(r.in->error().errc == MigrationErrc::Protocol ||
                r.in->error().errc == MigrationErrc::Codec)
        << r.in->error().message();
  }
}

TEST(Faults, CorruptionIsReportedByTheDestination) {
  auto [total, back] = clean_totals();
  (void)back;
  FakeVm src(cfg());
  src.fill(9);
  RunSetup s;
  s.to_dest.push_back(PipeFaults{.corrupt_byte = total / 2});
  RunResult r = run_migration(src, s);
  ASSERT_FALSE(*r.out);
  EXPECT_EQ(r.out->error().errc, MigrationErrc::PeerFailed) << r.out->error().message();
  EXPECT_NE(r.out->error().detail.find("checksum mismatch"), std::string::npos)
      << r.out->error().detail;
}

TEST(Faults, CorruptionOnADataChannelIsReportedByTheDestination) {
  FakeVmConfig c = cfg();
  c.regions = {{0, 4u << 20}};
  FakeVm src(c);
  src.fill(9);
  auto before = src.memory();
  RunSetup s;
  s.channels = 3;
  s.to_dest = {PipeFaults{}, PipeFaults{.corrupt_byte = 200'000}, PipeFaults{}};
  RunResult r = run_migration(src, s);
  expect_safe(r, src, before, "corrupt channel 1");
  EXPECT_EQ(r.out->error().errc, MigrationErrc::PeerFailed) << r.out->error().message();
  EXPECT_NE(r.out->error().detail.find("checksum mismatch"), std::string::npos)
      << r.out->error().detail;
}

TEST(Faults, StalledDestinationTimesOut) {
  FakeVm src(cfg());
  src.fill(2);
  auto before = src.memory();
  auto [a, b] = make_stream_pair(PipeFaults{.capacity = 64u << 10});
  // A destination that accepts the hello, then stops reading.
  std::thread peer([&b = b] {
    auto hello = migration::read_record(*b, MigrationPhase::PreMigration);
    ASSERT_TRUE(hello);
    migration::HelloReply ok{static_cast<uint16_t>(migration::HelloStatus::Accepted),
                             migration::kProtocolVersion, ""};
    ASSERT_TRUE(migration::write_record(*b, migration::RecordType::HelloReply,
                                        migration::encode_payload(ok),
                                        MigrationPhase::PreMigration));
  });
  std::vector<std::unique_ptr<migration::ByteStream>> out;
  out.push_back(std::move(a));
  migration::SenderOptions opt;
  opt.io_timeout = std::chrono::milliseconds(200);
  auto t0 = std::chrono::steady_clock::now();
  auto res = migration::migrate_out(src, std::move(out), opt, {});
  peer.join();
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().errc, MigrationErrc::Timeout) << res.error().message();
  EXPECT_EQ(res.error().phase, MigrationPhase::Brownout);
  EXPECT_EQ(res.error().guest, GuestLocation::RunningOnSource);
  EXPECT_TRUE(src.running());
  EXPECT_TRUE(src.memory() == before);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

TEST(Faults, SilentDestinationHitsTheHandshakeTimeout) {
  FakeVm src(cfg());
  auto [a, b] = make_stream_pair();
  std::vector<std::unique_ptr<migration::ByteStream>> out;
  out.push_back(std::move(a));
  migration::SenderOptions opt;
  opt.handshake_timeout = std::chrono::milliseconds(150);
  auto res = migration::migrate_out(src, std::move(out), opt, {});
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().errc, MigrationErrc::Timeout);
  EXPECT_EQ(res.error().phase, MigrationPhase::PreMigration);
  EXPECT_NE(res.error().detail.find("HelloReply"), std::string::npos);
  EXPECT_TRUE(src.running());
}

TEST(Faults, CancelDuringBrownout) {
  FakeVmConfig c = cfg();
  c.regions = {{0, 8u << 20}};
  FakeVm src(c);
  src.fill(3);
  auto before = src.memory();
  std::atomic<bool> cancel{false};
  RunSetup s;
  s.sender.cancel = &cancel;
  s.sender.progress_interval = std::chrono::milliseconds(10);
  s.sender.compression = *migration::parse_compression("off");
  s.to_dest.push_back(PipeFaults{.bytes_per_s = 20u << 20});
  s.progress = [&](const migration::ProgressEvent& e) {
    if (e.phase == MigrationPhase::Brownout && e.sent_bytes > (1u << 20)) {
      cancel = true;
    }
  };
  RunResult r = run_migration(src, s);
  expect_safe(r, src, before, "cancel");
  EXPECT_EQ(r.out->error().errc, MigrationErrc::Cancelled);
  EXPECT_EQ(r.out->error().phase, MigrationPhase::Brownout);
  EXPECT_NE(r.in->error().detail.find("source cancelled"), std::string::npos)
      << r.in->error().message();
}

TEST(Faults, VmPortFailuresOnEitherSide) {
  {
    FakeVm src(cfg());
    src.fill(4);
    auto before = src.memory();
    src.faults().fail_pause = true;
    RunResult r = run_migration(src, {});
    expect_safe(r, src, before, "pause fails");
    EXPECT_EQ(r.out->error().phase, MigrationPhase::Blackout);
    EXPECT_EQ(r.out->error().errc, MigrationErrc::VmPort);
  }
  {
    FakeVm src(cfg());
    src.fill(4);
    auto before = src.memory();
    src.faults().fail_save_state = true;
    RunResult r = run_migration(src, {});
    expect_safe(r, src, before, "save fails");
  }
  {
    FakeVm src(cfg());
    src.fill(4);
    auto before = src.memory();
    RunSetup s;
    s.configure_dest = [](FakeVm& vm) { vm.faults().fail_load_state = true; };
    RunResult r = run_migration(src, s);
    expect_safe(r, src, before, "load fails");
    EXPECT_EQ(r.out->error().errc, MigrationErrc::PeerFailed);
    EXPECT_NE(r.out->error().detail.find("injected load failure"), std::string::npos);
  }
  {
    // The destination cannot resume after Commit: it says so, the source takes over.
    FakeVm src(cfg());
    src.fill(4);
    auto before = src.memory();
    RunSetup s;
    s.configure_dest = [](FakeVm& vm) { vm.faults().fail_resume = true; };
    RunResult r = run_migration(src, s);
    expect_safe(r, src, before, "dest resume fails");
    EXPECT_EQ(r.out->error().phase, MigrationPhase::Commit);
    EXPECT_EQ(r.out->error().guest, GuestLocation::RunningOnSource);
  }
}

// ---- A hand-driven source feeding the receiver crafted records ------------------------
class ManualSource {
 public:
  ManualSource() {
    auto [a, b] = make_stream_pair();
    src_ = std::move(a);
    std::vector<std::unique_ptr<migration::ByteStream>> in;
    in.push_back(std::move(b));
    opts_.io_timeout = std::chrono::milliseconds(2000);
    thread_ = std::thread([this, in = std::move(in)]() mutable {
      result_.emplace(migration::migrate_in(std::move(in), fake_factory(resumes_), opts_));
    });
  }
  ~ManualSource() {
    src_.reset();
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  migration::Hello hello() const {
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
  void send(migration::RecordType type, const std::vector<uint8_t>& payload) {
    ASSERT_TRUE(src_->write_all(migration::frame_record(type, payload)));
  }
  void send_raw(const std::vector<uint8_t>& bytes) { ASSERT_TRUE(src_->write_all(bytes)); }
  std::optional<migration::RawRecord> reply() {
    auto r = migration::read_record(*src_, MigrationPhase::PreMigration);
    if (!r) {
      return std::nullopt;
    }
    return *r;
  }
  void handshake() {
    send(migration::RecordType::Hello, migration::encode_payload(hello()));
    auto r = reply();
    ASSERT_TRUE(r);
    ASSERT_EQ(r->type, migration::RecordType::HelloReply);
    ASSERT_EQ(migration::decode_hello_reply(r->payload)->status,
              static_cast<uint16_t>(migration::HelloStatus::Accepted));
  }
  /// Waits for the receiver and returns its error.
  migration::MigrationError finish() {
    thread_.join();
    EXPECT_FALSE(*result_);
    EXPECT_EQ(*resumes_, 0);
    return result_->error();
  }

  std::unique_ptr<MemStream> src_;
  migration::ReceiverOptions opts_;
  std::shared_ptr<std::atomic<int>> resumes_ = std::make_shared<std::atomic<int>>(0);
  std::optional<Result<migration::ReceivedVm, migration::MigrationError>> result_;
  std::thread thread_;
};

std::vector<uint8_t> page_batch(uint64_t gpa, uint32_t round) {
  std::vector<uint8_t> out;
  ByteWriter w(out);
  migration::encode(w, migration::PageBatchHeader{round, 1});
  migration::PageEntry e;
  e.gpa = gpa;
  std::vector<uint8_t> zero(4096, 0);
  e.hash = migration::wire_hash(zero);
  e.uncompressed_length = 4096;
  e.codec = static_cast<uint8_t>(migration::PageCodec::Zero);
  migration::encode(w, e);
  return out;
}

TEST(Receiver, MutatedOrTruncatedReplayNeverResumes) {
  // Capture a clean single-channel migration, then replay it to fresh receivers with one
  // byte changed (or cut short) at random places: every replay must fail, none resume.
  FakeVmConfig c;
  c.regions = {{0, 1u << 20}};
  c.disk_sizes = {256u << 10};
  FakeVm src(c);
  src.fill(21);
  RunSetup s;
  auto captured = std::make_shared<std::vector<uint8_t>>();
  s.to_dest.push_back(PipeFaults{.capture = captured});
  RunResult clean = run_migration(src, s);
  ASSERT_TRUE(*clean.out);
  ASSERT_GT(captured->size(), 100'000u);

  auto replay = [&](std::vector<uint8_t> bytes) {
    auto resumes = std::make_shared<std::atomic<int>>(0);
    auto [a, b] = make_stream_pair(PipeFaults{.capacity = bytes.size() + 1});
    std::vector<std::unique_ptr<migration::ByteStream>> in;
    in.push_back(std::move(b));
    migration::ReceiverOptions ro;
    ro.io_timeout = std::chrono::milliseconds(100);
    ro.commit_timeout = std::chrono::milliseconds(100);
    EXPECT_TRUE(a->write_all(bytes));  // then stays silent (a truncated stream times out)
    auto res = migration::migrate_in(std::move(in), fake_factory(resumes), ro);
    return std::make_pair(res.has_value(), resumes->load());
  };
  // Sanity: the unmodified capture (Commit included) does resume: the replay is faithful.
  auto [ok, n] = replay(*captured);
  EXPECT_TRUE(ok);
  EXPECT_EQ(n, 1);

  std::mt19937_64 rng(7);
  for (int i = 0; i < 120; ++i) {
    std::vector<uint8_t> bytes = *captured;
    size_t off = rng() % bytes.size();
    bytes[off] ^= static_cast<uint8_t>(1 + rng() % 255);
    auto [ok2, n2] = replay(bytes);
    EXPECT_FALSE(ok2) << "mutation at " << off;
    EXPECT_EQ(n2, 0) << "mutation at " << off;
  }
  for (int i = 0; i < 15; ++i) {
    std::vector<uint8_t> bytes = *captured;
    bytes.resize(rng() % bytes.size());
    auto [ok3, n3] = replay(bytes);
    EXPECT_FALSE(ok3);
    EXPECT_EQ(n3, 0) << "truncated to " << bytes.size();
  }
}

TEST(Receiver, RefusesUnsupportedVersionWithAReason) {
  ManualSource m;
  migration::Hello h = m.hello();
  h.version = 99;
  m.send(migration::RecordType::Hello, migration::encode_payload(h));
  auto r = m.reply();
  ASSERT_TRUE(r);
  auto reply = migration::decode_hello_reply(r->payload);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, static_cast<uint16_t>(migration::HelloStatus::Refused));
  EXPECT_NE(reply->reason.find("version 99"), std::string::npos) << reply->reason;
  EXPECT_EQ(m.finish().errc, MigrationErrc::Refused);
}

TEST(Receiver, RefusesHugeMemoryClaimBeforeAllocating) {
  ManualSource m;
  migration::Hello h = m.hello();
  h.memory_bytes = 1ull << 50;  // 1 PiB: refused by the limit, never passed to the factory
  m.send(migration::RecordType::Hello, migration::encode_payload(h));
  auto r = m.reply();
  ASSERT_TRUE(r);
  EXPECT_NE(migration::decode_hello_reply(r->payload)->reason.find("this host allows"),
            std::string::npos);
  EXPECT_EQ(m.finish().errc, MigrationErrc::Refused);
}

TEST(Receiver, RejectsOutOfOrderRecords) {
  {
    ManualSource m;
    m.handshake();
    m.send(migration::RecordType::MachineState, {1, 2, 3});
    auto e = m.finish();
    EXPECT_EQ(e.errc, MigrationErrc::Protocol);
    EXPECT_NE(e.detail.find("MachineState out of order"), std::string::npos) << e.detail;
    EXPECT_EQ(e.guest, GuestLocation::NotStartedOnDestination);
  }
  {
    ManualSource m;
    m.handshake();
    m.send(migration::RecordType::Commit, migration::encode_payload(migration::Commit{5}));
    auto e = m.finish();
    EXPECT_NE(e.detail.find("unexpected Commit record in brownout"), std::string::npos) << e.detail;
    auto err = m.reply();  // the receiver says why before closing
    (void)err;
  }
  {
    ManualSource m;
    m.handshake();
    m.send(migration::RecordType::BlackoutBegin,
           migration::encode_payload(migration::BlackoutBegin{1, 1, 0}));
    m.send(migration::RecordType::RoundEnd, migration::encode_payload(migration::RoundEnd{}));
    EXPECT_NE(m.finish().detail.find("RoundEnd during blackout"), std::string::npos);
  }
  {
    ManualSource m;
    m.handshake();
    m.send(migration::RecordType::Hello, migration::encode_payload(m.hello()));
    EXPECT_EQ(m.finish().errc, MigrationErrc::Protocol);
  }
}

TEST(Receiver, RejectsOutOfRangeAndOversizedRecords) {
  {
    ManualSource m;
    m.handshake();
    m.send(migration::RecordType::PageBatch, page_batch(1u << 20, 0));  // one past the end
    auto e = m.finish();
    EXPECT_NE(e.detail.find("outside guest RAM"), std::string::npos) << e.detail;
  }
  {
    ManualSource m;
    m.handshake();
    std::vector<uint8_t> header;
    ByteWriter w(header);
    migration::encode(
        w, migration::RecordHeader{static_cast<uint16_t>(migration::RecordType::PageBatch), 0,
                                   0x7FFFFFFF, 0});
    m.send_raw(header);
    auto e = m.finish();
    EXPECT_NE(e.detail.find("exceeds the limit"), std::string::npos) << e.detail;
  }
  {
    ManualSource m;
    m.handshake();
    std::vector<uint8_t> header;
    ByteWriter w(header);
    migration::encode(w, migration::RecordHeader{99, 0, 0, 0});
    m.send_raw(header);
    EXPECT_NE(m.finish().detail.find("unknown record type 99"), std::string::npos);
  }
  {
    ManualSource m;
    m.handshake();
    m.send(migration::RecordType::PageBatch, page_batch(0, 0));
    m.send(migration::RecordType::BlackoutBegin,
           migration::encode_payload(migration::BlackoutBegin{1, 1, 0}));
    // ChannelDone claiming more pages than arrived.
    m.send(migration::RecordType::ChannelDone,
           migration::encode_payload(migration::ChannelDone{0, 0, 1, 2}));
    EXPECT_NE(m.finish().detail.find("ChannelDone says"), std::string::npos);
  }
}

TEST(Receiver, NeverResumesWithoutCommit) {
  // A source that delivers everything, then disappears before Commit.
  ManualSource m;
  m.handshake();
  for (uint64_t p = 0; p < 256; ++p) {
    m.send(migration::RecordType::PageBatch, page_batch(p * 4096, 0));
  }
  m.send(migration::RecordType::BlackoutBegin,
         migration::encode_payload(migration::BlackoutBegin{1, 1, 0}));
  m.send(migration::RecordType::ChannelDone,
         migration::encode_payload(migration::ChannelDone{0, 0, 256, 256}));
  FakeVm probe(FakeVmConfig{{{0, 1u << 20}}, 1, {}, 65536});
  probe.pause();
  auto state = probe.save_machine_state();
  ASSERT_TRUE(state);
  m.send(migration::RecordType::MachineState, *state);
  migration::Digest d;
  std::vector<uint64_t> hashes(256, migration::wire_hash(std::vector<uint8_t>(4096, 0)));
  d.regions = {{0, 1u << 20,
                migration::wire_hash(std::span(reinterpret_cast<const uint8_t*>(hashes.data()),
                                               hashes.size() * 8))}};
  m.send(migration::RecordType::Digest, migration::encode_payload(d));
  auto ready = m.reply();
  ASSERT_TRUE(ready);
  ASSERT_EQ(ready->type, migration::RecordType::DestReady);
  m.src_.reset();  // the source vanishes instead of committing
  auto e = m.finish();
  EXPECT_EQ(e.phase, MigrationPhase::Commit);
  EXPECT_NE(e.detail.find("waiting for Commit"), std::string::npos) << e.detail;
}

}  // namespace
}  // namespace ferry::testing
