// The migration fault matrix (issue 7): for every phase boundary and the middle of each
// phase, cut the link, kill the destination VMM, or kill the source VMM, with real KVM
// and the self-verifying test guest. The fault is placed by PhaseProxy on a wire record,
// so it lands at the same protocol point on every run, however fast the host is.
//
// Asserted for every cell (docs/migration.md, "Commit protocol and failure matrix"):
//  - the guest runs on exactly one side (after the documented operator step for the
//    ambiguous commit window: resume the source copy if the destination does not run it,
//    discard it if it does), or on none when the source host itself died before Commit;
//  - where it runs, its final self-check finds no lost or stale page ("failures=0") and
//    every disk sector it ever wrote reads back with the expected tag, on this side's
//    image (the guest's disk digest, "disk_sectors=N");
//  - the destination never runs a guest it did not get a complete Commit for;
//  - the error message of the side that reports names the phase.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <regex>

#include "migration_harness.h"
#include "phase_proxy.h"
#include "test_env.h"

namespace ferry::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr uint16_t kHello = 1, kHelloReply = 2, kPageBatch = 4, kDiskBatch = 5,
                   kBlackoutBegin = 7, kChannelDone = 8, kMachineState = 9, kDestReady = 11,
                   kCommit = 12, kResumed = 13;

bool is_data(const WireUnit& u) { return u.type == kPageBatch || u.type == kDiskBatch; }

enum class Fault { CutLink, KillDestination, KillSource };

const char* fault_name(Fault f) {
  switch (f) {
    case Fault::CutLink:
      return "CutLink";
    case Fault::KillDestination:
      return "KillDestination";
    case Fault::KillSource:
      return "KillSource";
  }
  return "?";
}

// Where the guest must end up.
enum class Outcome {
  OnSource,      // the source resumed it (or never paused it); destination discarded
  ResumeSource,  // ambiguous window, destination does not run it: operator resumes source
  OnDestination, // destination runs it; source copy (if alive) is paused, operator discards
  Nowhere,       // the source host died before Commit: the destination must not run it
};

const char* outcome_name(Outcome o) {
  switch (o) {
    case Outcome::OnSource:
      return "runs on source";
    case Outcome::ResumeSource:
      return "source paused (commit unknown) -> operator resumes source";
    case Outcome::OnDestination:
      return "runs on destination";
    case Outcome::Nowhere:
      return "lost with the source host; destination discards";
  }
  return "?";
}

// Phases in protocol order, as MigrationError::message() names them.
enum Phase { kAtPre = 1, kAtBrownout, kAtBlackout, kAtCommit };
constexpr const char* kPhaseNames[] = {"?", "pre-migration", "brownout", "blackout", "commit"};

struct Point {
  const char* name;
  PhaseProxy::Trigger trigger;
  // Each side reports the phase *it* was in when it noticed the fault. The source runs
  // ahead of what the destination has read by up to the socket buffers (it may already
  // wait for DestReady when the destination still reads round 1), and a RST discards what
  // the destination had not read yet, so: the source names this phase or a later one,
  // the destination this phase or an earlier one.
  Phase source_at_least;
  Phase dest_at_most;
  bool commit_sent;   // the source already wrote Commit (its outcome is unknown to it)
  bool dest_resumed;  // the destination had resumed the guest
};

PhaseProxy::Trigger before(Dir dir, uint16_t type) {
  return [dir, type](const WireUnit& u) {
    return u.dir == dir && u.type == type ? Verdict::FireBefore : Verdict::Forward;
  };
}

PhaseProxy::Trigger mid(Dir dir, uint16_t type) {
  return [dir, type](const WireUnit& u) {
    return u.dir == dir && u.type == type ? Verdict::FireMidRecord : Verdict::Forward;
  };
}

// Before the `nth` data record (0-based) of brownout round `round`.
PhaseProxy::Trigger in_round(unsigned round, unsigned nth) {
  return [round, nth](const WireUnit& u) {
    return u.dir == Dir::ToDest && is_data(u) && !u.blackout && u.round_ends == round &&
                   u.data_in_round == nth
               ? Verdict::FireBefore
               : Verdict::Forward;
  };
}

const std::vector<Point>& points() {
  static const std::vector<Point> kPoints = {
      {"pre-migration: channel up, before Hello", before(Dir::ToDest, kHello), kAtPre, kAtPre,
       false, false},
      {"pre-migration: destination built the VM, HelloReply in flight",
       before(Dir::ToSource, kHelloReply), kAtPre, kAtBrownout, false, false},
      {"brownout: start, before the first page", in_round(0, 0), kAtBrownout, kAtBrownout, false,
       false},
      {"brownout: middle of round 0", in_round(0, 40), kAtBrownout, kAtBrownout, false, false},
      {"brownout: round 0 -> round 1 boundary", in_round(1, 0), kAtBrownout, kAtBrownout, false,
       false},
      {"brownout: middle of round 1", in_round(1, 2), kAtBrownout, kAtBrownout, false, false},
      {"blackout: source paused, before BlackoutBegin", before(Dir::ToDest, kBlackoutBegin),
       kAtBlackout, kAtBrownout, false, false},
      {"blackout: final pages sent, before ChannelDone", before(Dir::ToDest, kChannelDone),
       kAtBlackout, kAtBlackout, false, false},
      {"blackout: middle of the machine-state record", mid(Dir::ToDest, kMachineState),
       kAtBlackout, kAtBlackout, false, false},
      {"after the last state record: verified, DestReady in flight",
       before(Dir::ToSource, kDestReady), kAtBlackout, kAtCommit, false, false},
      {"before commit: DestReady delivered, Commit not", before(Dir::ToDest, kCommit), kAtCommit,
       kAtCommit, true, false},
      {"commit: Commit record cut in half", mid(Dir::ToDest, kCommit), kAtCommit, kAtCommit, true,
       false},
      {"after commit: destination resumed, Resumed in flight", before(Dir::ToSource, kResumed),
       kAtCommit, kAtCommit, true, true},
  };
  return kPoints;
}

Outcome expected(const Point& p, Fault f) {
  switch (f) {
    case Fault::CutLink:
      return p.dest_resumed ? Outcome::OnDestination
                            : (p.commit_sent ? Outcome::ResumeSource : Outcome::OnSource);
    case Fault::KillDestination:
      return p.commit_sent ? Outcome::ResumeSource : Outcome::OnSource;
    case Fault::KillSource:
      return p.dest_resumed ? Outcome::OnDestination : Outcome::Nowhere;
  }
  return Outcome::OnSource;
}

// SIGKILL, then wait (without reaping: the Subprocess owner does that) until it is dead.
void kill_and_wait_dead(pid_t pid) {
  if (pid <= 0) {
    return;
  }
  ::kill(pid, SIGKILL);
  const auto deadline = std::chrono::steady_clock::now() + seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) {
      return;
    }
    const size_t paren = line.rfind(')');
    if (paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z') {
      return;  // a zombie: its sockets are closed
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
}

// The phase an error line names ("... migration failed: brownout: ..."), 0 if none.
int named_phase(const std::string& text) {
  for (int p = kAtPre; p <= kAtCommit; ++p) {
    if (has(text, std::string("failed: ") + kPhaseNames[p] + ": ")) {
      return p;
    }
  }
  return 0;
}

bool names_phase(const std::string& text, const std::string& phase) {
  return has(text, "failed: " + phase + ": ");
}

// `before`: the side the guest ran on before it moved here. The serial stream is split
// where the guest was paused, possibly mid-line, so the lines are checked on both parts
// joined in order.
void expect_clean_finish(Subprocess& vm, const std::string& side,
                         const Subprocess* before = nullptr) {
  ASSERT_EQ(vm.wait(seconds(90)), 0) << side << ": " << vm.out() << vm.err();
  const std::string out = (before != nullptr ? before->out() : std::string()) + vm.out();
  EXPECT_TRUE(has(out, "verify ok")) << side << ": " << out;
  EXPECT_TRUE(has(out, "failures=0 time_backwards=0")) << side << ": " << out;
  // The guest re-read every disk sector it wrote, on this side's image.
  std::smatch m;
  EXPECT_TRUE(std::regex_search(out, m, std::regex("disk_sectors=([1-9][0-9]*)")))
      << side << ": no disk sectors verified: " << out;
}

void expect_never_ran(Subprocess& vm, const std::string& side) {
  EXPECT_FALSE(has(vm.out(), "FERRY-GUEST")) << side << " ran the guest: " << vm.out();
  EXPECT_FALSE(has(vm.out(), "progress t_ms=")) << side << " ran the guest: " << vm.out();
}

GuestSpec matrix_guest() {
  GuestSpec spec;
  spec.mem = "64M";
  // Long enough that the guest is still running when the last point of a migration is
  // reached on a loaded host; short enough to keep the matrix near two minutes.
  spec.cmdline = "wss=16 duration=3 rate=30 fill=full report=500";
  spec.disk_bytes = 4 << 20;
  return spec;
}

std::string fmt_cell(const Point& p, Fault f, Outcome o) {
  return std::string(fault_name(f)) + " at \"" + p.name + "\", expected: " + outcome_name(o);
}

struct Cell {
  size_t point;
  Fault fault;
};

class FaultMatrix : public ::testing::TestWithParam<Cell> {};

TEST_P(FaultMatrix, GuestEndsOnExactlyOneSideIntact) {
  FERRY_REQUIRE_KVM();
  const Point& point = points()[GetParam().point];
  const Fault fault = GetParam().fault;
  const Outcome outcome = expected(point, fault);
  SCOPED_TRACE(fmt_cell(point, fault, outcome));

  MigrationRig rig("matrix");
  const uint16_t port = free_port();
  auto dst = rig.start_destination(port, "dst.img");
  std::atomic<pid_t> src_pid{-1};
  const pid_t dst_pid = dst->pid();
  PhaseProxy proxy(port, point.trigger, [&] {
    if (fault == Fault::KillDestination) {
      kill_and_wait_dead(dst_pid);
    } else if (fault == Fault::KillSource) {
      kill_and_wait_dead(src_pid.load());
    }
  });
  auto src = rig.start_source(matrix_guest());
  src_pid = src->pid();
  // Several rounds: the guest dirties pages faster than a 1 ms downtime target allows.
  auto m = rig.migrate(rig.source_control(), proxy.port(), {"--downtime-ms", "1", "--quiet"});
  ASSERT_TRUE(proxy.fired()) << "the fault point was never reached; wire trace:" << proxy.trace()
                             << "\n" << m.out << m.err;
  EXPECT_NE(m.exit_code, 0) << m.out;
  // Which phase each side's error names (the fault matrix table in docs/reliability.md).
  const int src_phase = fault == Fault::KillSource ? 0 : named_phase(m.err);
  if (fault != Fault::KillSource) {
    EXPECT_GE(src_phase, point.source_at_least) << "source error: " << m.err;
  }
  auto report_line = [&](int dst_phase) {
    std::printf("MATRIX | %s | %s | %s | source: %s | destination: %s |\n", point.name,
                fault_name(fault), outcome_name(outcome), src_phase ? kPhaseNames[src_phase] : "-",
                dst_phase ? kPhaseNames[dst_phase] : "-");
  };

  switch (outcome) {
    case Outcome::OnSource:
      EXPECT_TRUE(has(m.err, "keeps running on the source")) << m.err;
      expect_clean_finish(*src, "source");
      EXPECT_NE(dst->wait(seconds(30)), 0) << dst->err();
      expect_never_ran(*dst, "destination");
      if (fault == Fault::CutLink) {
        const int dst_phase = named_phase(dst->err());
        EXPECT_GE(dst_phase, kAtPre) << "destination error names no phase: " << dst->err();
        EXPECT_LE(dst_phase, point.dest_at_most) << dst->err();
        report_line(dst_phase);
      } else {
        report_line(0);
      }
      break;
    case Outcome::ResumeSource: {
      EXPECT_TRUE(has(m.err, "PAUSED")) << m.err;
      EXPECT_TRUE(names_phase(m.err, "commit")) << m.err;
      // Operator step 1: the destination does not run the guest (it failed or died).
      EXPECT_NE(dst->wait(seconds(30)), 0) << dst->out() << dst->err();
      report_line(fault == Fault::CutLink ? named_phase(dst->err()) : 0);
      if (fault != Fault::KillDestination || !point.dest_resumed) {
        expect_never_ran(*dst, "destination");
      }
      // Step 3: resume the source copy; nothing was lost while it was paused.
      auto resume = run_command(
          {ferry_binary(), "ctl", "--control", rig.source_control(), "resume"}, seconds(20));
      EXPECT_EQ(resume.exit_code, 0) << resume.out << resume.err;
      expect_clean_finish(*src, "source");
      break;
    }
    case Outcome::OnDestination:
      report_line(0);
      expect_clean_finish(*dst, "destination", src.get());
      if (fault == Fault::CutLink) {
        EXPECT_TRUE(has(m.err, "PAUSED")) << m.err;
        // Step 2: the destination runs it, so the paused source copy is discarded.
        auto quit = run_command(
            {ferry_binary(), "ctl", "--control", rig.source_control(), "quit"}, seconds(20));
        EXPECT_EQ(quit.exit_code, 0) << quit.out << quit.err;
        src->wait(seconds(30));
      }
      EXPECT_FALSE(has(src->out(), "FERRY-GUEST done")) << "finished on the source too";
      break;
    case Outcome::Nowhere:
      EXPECT_NE(dst->wait(seconds(30)), 0) << dst->out() << dst->err();
      expect_never_ran(*dst, "destination");
      {
        const int dst_phase = named_phase(dst->err());
        EXPECT_GE(dst_phase, kAtPre) << "destination error names no phase: " << dst->err();
        EXPECT_LE(dst_phase, point.dest_at_most) << dst->err();
        report_line(dst_phase);
      }
      break;
  }
}

std::vector<Cell> all_cells() {
  std::vector<Cell> cells;
  for (size_t p = 0; p < points().size(); ++p) {
    for (Fault f : {Fault::CutLink, Fault::KillDestination, Fault::KillSource}) {
      cells.push_back({p, f});
    }
  }
  return cells;
}

INSTANTIATE_TEST_SUITE_P(
    PhasesTimesFaults, FaultMatrix, ::testing::ValuesIn(all_cells()),
    [](const ::testing::TestParamInfo<Cell>& info) {
      return "P" + std::to_string(info.param.point + 1) + "_" + fault_name(info.param.fault);
    });

// A destination that stops reading and answering in the middle of the brownout (no bytes
// either way for 12 s, longer than the source's 10 s io_timeout, and no close): the source
// gives up after its timeout and keeps running; the destination discards.
TEST(FaultMatrixStall, SilentDestinationMidBrownout) {
  FERRY_REQUIRE_KVM();
  MigrationRig rig("matrix-stall");
  const uint16_t port = free_port();
  auto dst = rig.start_destination(port, "dst.img");
  PhaseProxy proxy(port, in_round(0, 40), nullptr, seconds(12));  // > io_timeout (10 s)
  GuestSpec spec = matrix_guest();
  spec.cmdline = "wss=16 duration=16 rate=30 fill=full report=500";
  auto src = rig.start_source(spec);
  const auto t0 = std::chrono::steady_clock::now();
  auto m = rig.migrate(rig.source_control(), proxy.port(), {"--quiet"});
  const auto waited = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(proxy.fired()) << proxy.trace();
  EXPECT_NE(m.exit_code, 0);
  EXPECT_TRUE(has(m.err, "keeps running on the source")) << m.err;
  EXPECT_TRUE(names_phase(m.err, "brownout")) << m.err;
  EXPECT_LT(waited, seconds(40)) << "the source must not wait much longer than its timeout";
  expect_clean_finish(*src, "source");
  EXPECT_NE(dst->wait(seconds(40)), 0) << dst->err();
  expect_never_ran(*dst, "destination");
}

bool can_connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

// Safe defaults: while a migration runs, the source VMM refuses a second `migrate` with a
// clear error, and the destination (one session per `ferry run --incoming`) no longer
// listens, so a second source is refused at connect time. The first migration completes.
TEST(FaultMatrixLimits, SecondMigrationAndSecondSourceAreRefused) {
  FERRY_REQUIRE_KVM();
  MigrationRig rig("matrix-limits");
  const uint16_t port = free_port();
  auto dst = rig.start_destination(port, "dst.img");
  GuestSpec spec = matrix_guest();
  spec.cmdline = "wss=16 duration=10 rate=30 fill=full report=500";
  auto src = rig.start_source(spec);
  RunResult first;
  std::thread migrating([&] {
    first = rig.migrate(rig.source_control(), port, {"--max-bandwidth", "16000000", "--quiet"});
  });
  std::this_thread::sleep_for(milliseconds(1500));  // the first one is in its brownout
  auto second = run_command({ferry_binary(), "migrate", "--control", rig.source_control(), "--to",
                             "tcp:127.0.0.1:" + std::to_string(free_port()), "--quiet"},
                            seconds(30));
  const bool refused_listener = !can_connect(port);
  migrating.join();
  EXPECT_NE(second.exit_code, 0);
  EXPECT_TRUE(has(second.err, "a migration is already running")) << second.err;
  EXPECT_TRUE(refused_listener) << "the destination still accepts connections mid-migration";
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  expect_clean_finish(*dst, "destination", src.get());
}

}  // namespace
}  // namespace ferry::testing
