// Boots the built ferry-test-guest.bin under QEMU/KVM through tests/guests/run-qemu.sh and
// checks its serial protocol and exit statuses (docs/test-guest.md). This validates the guest
// image itself, independently of Ferry's VMM. Skipped when /dev/kvm or qemu-system-x86_64
// is unavailable (QEMU comes from Debian's qemu-system-x86 package).
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/resource.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "ferry/test_guest_path.h"
#include "guest_lib.h"

namespace {

struct GuestRun {
    int status = -1;
    std::string out;
    std::vector<std::string> lines;
};

bool qemu_usable(std::string *why) {
    if (access("/dev/kvm", R_OK | W_OK) != 0) {
        *why = "/dev/kvm not usable";
        return false;
    }
    if (std::system("command -v qemu-system-x86_64 >/dev/null 2>&1") != 0) {
        *why = "qemu-system-x86_64 not installed (apt-get install qemu-system-x86)";
        return false;
    }
    return true;
}

#define SKIP_WITHOUT_QEMU()                 \
    do {                                    \
        std::string why;                    \
        if (!qemu_usable(&why)) {           \
            GTEST_SKIP() << why;            \
        }                                   \
    } while (0)

GuestRun run_guest(const std::string &guest_args, const std::string &opts = "") {
    std::string cmd = std::string(FERRY_TEST_GUEST_RUN_QEMU) + " -g " + FERRY_TEST_GUEST_PATH +
                      " -M microvm -m 256 -t 60 " + opts + " -- " + guest_args + " 2>&1";
    GuestRun r;
    FILE *f = popen(cmd.c_str(), "r");
    if (!f) {
        return r;
    }
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        r.out.append(buf, n);
    }
    int rc = pclose(f);
    r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    std::istringstream in(r.out);
    std::string line;
    while (std::getline(in, line)) {
        // SeaBIOS leaves text (and escape codes) before the guest's first line.
        auto pos = line.find("FERRY-GUEST");
        if (pos != std::string::npos) {
            line = line.substr(pos);
        }
        r.lines.push_back(line);
    }
    return r;
}

// "key=value" fields of the first line starting with prefix; empty if none.
std::map<std::string, std::string> fields(const GuestRun &r, const std::string &prefix) {
    std::map<std::string, std::string> m;
    for (const auto &l : r.lines) {
        if (l.rfind(prefix, 0) == 0) {
            std::istringstream in(l);
            std::string tok;
            while (in >> tok) {
                auto eq = tok.find('=');
                if (eq != std::string::npos) {
                    m[tok.substr(0, eq)] = tok.substr(eq + 1);
                }
            }
            break;
        }
    }
    return m;
}

int count_prefix(const GuestRun &r, const std::string &prefix) {
    int n = 0;
    for (const auto &l : r.lines) {
        n += l.rfind(prefix, 0) == 0;
    }
    return n;
}

TEST(GuestQemu, HelloPrintsReadyAndExitsZero) {
    SKIP_WITHOUT_QEMU();
    GuestRun r = run_guest("mode=hello");
    ASSERT_EQ(r.status, 0) << r.out;
    auto ready = fields(r, "FERRY-GUEST ready");
    EXPECT_EQ(ready["vcpus"], "1");
    EXPECT_EQ(ready["clock"], "kvmclock");
    EXPECT_NEAR(std::stod(ready["mem"]), 256, 2);
    EXPECT_EQ(fields(r, "FERRY-GUEST done")["status"], "0");
}

TEST(GuestQemu, WorkloadVerifiesItself) {
    SKIP_WITHOUT_QEMU();
    GuestRun r = run_guest("wss=16 duration=1 report=200 pattern=random seed=5");
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_EQ(fields(r, "FERRY-GUEST ready")["pattern"], "random");
    EXPECT_GE(count_prefix(r, "progress t_ms="), 4) << r.out;
    auto ok = fields(r, "verify ok");
    EXPECT_EQ(ok["pages"], "4096") << r.out;
    auto done = fields(r, "FERRY-GUEST done");
    EXPECT_EQ(done["failures"], "0");
    EXPECT_EQ(done["time_backwards"], "0");
    EXPECT_GT(std::stoull(done["writes"]), 4096u);
}

TEST(GuestQemu, TwoVcpusEachDirtyTheirSlice) {
    SKIP_WITHOUT_QEMU();
    // QEMU's multiboot starts only the BSP; the guest starts the AP with INIT/SIPI.
    GuestRun r = run_guest("cpus=2 wss=16 duration=1 pattern=random", "-c 2");
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_EQ(fields(r, "FERRY-GUEST ready")["vcpus"], "2");
    for (const char *cpu : {"vcpu cpu=0", "vcpu cpu=1"}) {
        auto v = fields(r, cpu);
        ASSERT_FALSE(v.empty()) << r.out;
        EXPECT_EQ(v["pages"], "2048");
        EXPECT_GT(std::stoull(v["writes"]), 2048u) << cpu;
        EXPECT_EQ(v["failures"], "0");
    }
    EXPECT_EQ(count_prefix(r, "verify ok"), 1) << r.out;
}

double children_cpu_s() {
    rusage ru{};
    getrusage(RUSAGE_CHILDREN, &ru);
    return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

TEST(GuestQemu, IdleGuestHaltsInsteadOfSpinning) {
    SKIP_WITHOUT_QEMU();
    double cpu0 = children_cpu_s();
    auto t0 = std::chrono::steady_clock::now();
    GuestRun r = run_guest("mode=idle cpus=2 wss=16 duration=2 report=500", "-c 2");
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double cpu = children_cpu_s() - cpu0;
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_EQ(fields(r, "FERRY-GUEST running")["idle"], "hlt") << r.out;
    EXPECT_GE(count_prefix(r, "progress t_ms="), 3);
    EXPECT_EQ(count_prefix(r, "verify ok"), 1) << r.out;
    // Two spinning vCPUs would use ~2 CPU-seconds per second.
    EXPECT_LT(cpu, 0.4 * wall) << "cpu " << cpu << " s over " << wall << " s";
}

TEST(GuestQemu, FullFillHotSet) {
    SKIP_WITHOUT_QEMU();
    GuestRun r = run_guest("wss=16 duration=1 fill=full pattern=hot hot=2");
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_EQ(fields(r, "FERRY-GUEST ready")["fill"], "full");
    EXPECT_EQ(count_prefix(r, "verify ok"), 1) << r.out;
}

TEST(GuestQemu, RateLimitHolds) {
    SKIP_WITHOUT_QEMU();
    GuestRun r = run_guest("wss=32 rate=8 duration=3 report=500");
    ASSERT_EQ(r.status, 0) << r.out;
    int checked = 0;
    for (const auto &l : r.lines) {
        if (l.rfind("progress", 0) == 0 && l.find("t_ms=500 ") == std::string::npos) {
            auto pos = l.find("mib_per_s=");
            double mibs = std::stod(l.substr(pos + 10));
            // Never above the rate; below it only if the host starves the vCPU.
            EXPECT_LE(mibs, 8.8) << l;
            EXPECT_GE(mibs, 4.0) << l;
            checked++;
        }
    }
    EXPECT_GE(checked, 4);
}

TEST(GuestQemu, InjectedStalePageIsCaught) {
    SKIP_WITHOUT_QEMU();
    // The guest puts the last page back to its previous version after the init pass; the
    // next write to it (or the final pass) must report it, exactly once.
    for (const char *fill : {"header", "full"}) {
        GuestRun r = run_guest(std::string("wss=16 duration=1 inject=stale fill=") + fill);
        EXPECT_EQ(r.status, 1) << r.out;
        auto fail = fields(r, "verify FAIL kind=");
        EXPECT_EQ(fail["kind"], "stale") << r.out;
        EXPECT_EQ(fail["page"], "0x" + [] {
            char b[32];
            std::snprintf(b, sizeof(b), "%x", 0x200000 + 16 * 1024 * 1024 - 4096);
            return std::string(b);
        }()) << r.out;
        EXPECT_EQ(std::stoull(fail["expected"]), std::stoull(fail["got"]) + 1);
        EXPECT_EQ(fields(r, "verify FAIL total=")["total"], "1") << r.out;
        EXPECT_EQ(fields(r, "FERRY-GUEST done")["failures"], "1");
    }
}

TEST(GuestQemu, InjectedCorruptionIsCaught) {
    SKIP_WITHOUT_QEMU();
    GuestRun r = run_guest("wss=16 duration=1 inject=corrupt fill=full pattern=random");
    EXPECT_EQ(r.status, 1) << r.out;
    EXPECT_EQ(fields(r, "verify FAIL kind=")["kind"], "corrupt") << r.out;
}

// Host TSC rate from /proc/cpuinfo ("cpu MHz"), 0 if unknown.
uint64_t host_tsc_khz() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("cpu MHz", 0) == 0) {
            return static_cast<uint64_t>(std::stod(line.substr(line.find(':') + 1)) * 1000);
        }
    }
    return 0;
}

TEST(GuestQemu, WithoutKvmclockTheTscNeedsItsRate) {
    SKIP_WITHOUT_QEMU();
    const std::string no_kvmclock = "-q \"-cpu host,-arch-capabilities,kvmclock=off\"";
    GuestRun none = run_guest("wss=8 duration=1", no_kvmclock);
    EXPECT_EQ(none.status, 2) << none.out;
    EXPECT_NE(none.out.find("no kvmclock; pass tsc_khz="), std::string::npos) << none.out;
    uint64_t khz = host_tsc_khz();
    if (khz == 0) {
        GTEST_SKIP() << "no cpu MHz in /proc/cpuinfo";
    }
    auto t0 = std::chrono::steady_clock::now();
    GuestRun r = run_guest("wss=8 duration=2 tsc_khz=" + std::to_string(khz), no_kvmclock);
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_EQ(fields(r, "FERRY-GUEST ready")["clock"], "tsc");
    EXPECT_EQ(count_prefix(r, "verify ok"), 1);
    EXPECT_GT(wall, 1.8);  // a wrong TSC rate would stretch or shrink duration=2
    EXPECT_LT(wall, 8.0);
}

TEST(GuestQemu, BadCommandLineExitsTwo) {
    SKIP_WITHOUT_QEMU();
    GuestRun r = run_guest("wss=16 pattern=zigzag");
    EXPECT_EQ(r.status, 2) << r.out;
    EXPECT_NE(r.out.find("FERRY-GUEST bad-cmdline: pattern must be"), std::string::npos);
    GuestRun big = run_guest("wss=4000");
    EXPECT_EQ(big.status, 2) << big.out;
}

TEST(GuestQemu, ExceptionIsReportedWithStatusThree) {
    SKIP_WITHOUT_QEMU();
    GuestRun r = run_guest("mode=fault");
    EXPECT_EQ(r.status, 3) << r.out;
    auto exc = fields(r, "EXCEPTION");
    EXPECT_EQ(exc["vec"], "14") << r.out;
    EXPECT_EQ(exc["cr2"], "0x4000000000");
    EXPECT_EQ(exc["cpl"], "3");
}

class TempDisk {
  public:
    explicit TempDisk(size_t bytes) {
        char tmpl[] = "/tmp/ferry-guest-disk-XXXXXX";
        int fd = mkstemp(tmpl);
        path_ = tmpl;
        if (fd >= 0) {
            if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
                path_.clear();
            }
            close(fd);
        }
    }
    ~TempDisk() { unlink(path_.c_str()); }
    const std::string &path() const { return path_; }

  private:
    std::string path_;
};

TEST(GuestQemu, DiskRoundTripOnMicrovm) {
    SKIP_WITHOUT_QEMU();
    TempDisk disk(16u << 20);
    ASSERT_FALSE(disk.path().empty());
    GuestRun r = run_guest("wss=8 duration=1 report=200 disk_ops=4", "-d " + disk.path());
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_EQ(fields(r, "disk ok")["capacity_sectors"], "32768") << r.out;
    auto ok = fields(r, "verify ok");
    ASSERT_FALSE(ok.empty()) << r.out;
    EXPECT_GT(std::stoul(ok["disk_sectors"]), 0u);
    // The image on the host holds the guest's patterns: check every written sector.
    std::ifstream in(disk.path(), std::ios::binary);
    std::vector<uint64_t> sector(GL_SECTOR_WORDS);
    uint64_t written = 0;
    for (uint64_t s = 0; s < 32768; s++) {
        in.read(reinterpret_cast<char *>(sector.data()), GL_SECTOR_SIZE);
        ASSERT_TRUE(in.good());
        if (sector[0] == 0 && sector[1] == 0) {
            continue;
        }
        uint32_t got;
        EXPECT_TRUE(gl_sector_check(sector.data(), s, static_cast<uint32_t>(sector[1]), &got))
            << "sector " << s;
        written++;
    }
    EXPECT_GE(written, std::stoul(ok["disk_sectors"]));
}

TEST(GuestQemu, BadVirtioLeavesQemuAlive) {
    SKIP_WITHOUT_QEMU();
    TempDisk disk(1u << 20);
    GuestRun r = run_guest("mode=badvirtio", "-d " + disk.path());
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_GE(count_prefix(r, "BADVIRTIO case="), 40) << r.out;
    auto sum = fields(r, "BADVIRTIO summary");
    EXPECT_EQ(sum["dead"], "0");
    for (const auto &l : r.lines) {
        EXPECT_EQ(l.find("result=dead"), std::string::npos) << l;
    }
}

// ---- live migration under QEMU: the guest must verify itself on the destination ----

class Qemu {
  public:
    Qemu(std::vector<std::string> args) {
        std::vector<char *> argv;
        for (auto &a : args) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
        if (posix_spawnp(&pid_, argv[0], nullptr, nullptr, argv.data(), environ) != 0) {
            pid_ = -1;
        }
    }
    ~Qemu() {
        if (pid_ > 0 && !reaped_) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
    }
    // Exit status (QEMU's), or -1 on timeout.
    int wait_exit(int timeout_s) {
        for (int i = 0; i < timeout_s * 20; i++) {
            int st = 0;
            if (waitpid(pid_, &st, WNOHANG) == pid_) {
                reaped_ = true;
                return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        return -1;
    }
    bool started() const { return pid_ > 0; }

  private:
    pid_t pid_ = -1;
    bool reaped_ = false;
};

class Qmp {
  public:
    explicit Qmp(const std::string &path) {
        for (int i = 0; i < 100 && fd_ < 0; i++) {
            int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            sockaddr_un sa{};
            sa.sun_family = AF_UNIX;
            std::snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path.c_str());
            if (connect(fd, reinterpret_cast<sockaddr *>(&sa), sizeof(sa)) == 0) {
                fd_ = fd;
            } else {
                close(fd);
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
        }
        if (fd_ >= 0) {
            read_line();  // greeting
            cmd("qmp_capabilities");
        }
    }
    ~Qmp() {
        if (fd_ >= 0) {
            close(fd_);
        }
    }
    bool ok() const { return fd_ >= 0; }
    nlohmann::json cmd(const std::string &name, nlohmann::json args = nullptr) {
        nlohmann::json req{{"execute", name}};
        if (!args.is_null()) {
            req["arguments"] = args;
        }
        std::string line = req.dump() + "\n";
        if (write(fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
            return nullptr;
        }
        for (;;) {
            std::string reply = read_line();
            if (reply.empty()) {
                return nullptr;
            }
            auto j = nlohmann::json::parse(reply, nullptr, false);
            if (j.contains("return") || j.contains("error")) {
                return j;
            }
        }
    }

  private:
    std::string read_line() {
        std::string out;
        char c;
        while (read(fd_, &c, 1) == 1) {
            if (c == '\n') {
                return out;
            }
            out.push_back(c);
        }
        return out;
    }
    int fd_ = -1;
};

std::string slurp(const std::string &path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

TEST(GuestQemu, VerifiesItselfAfterQemuLiveMigration) {
    SKIP_WITHOUT_QEMU();
    TempDisk disk(8u << 20);  // shared by both sides, as QEMU migration expects
    const std::string dir = "/tmp/ferry-guest-mig-" + std::to_string(getpid());
    ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
    const int port = 20000 + getpid() % 20000;
    auto qemu_args = [&](const std::string &side) {
        return std::vector<std::string>{
            "qemu-system-x86_64", "-M",
            "microvm,x-option-roms=off,rtc=off,pit=off,pic=off,isa-serial=on",
            "-global", "virtio-mmio.force-legacy=false", "-enable-kvm", "-cpu",
            "host,-arch-capabilities", "-m", "256", "-nographic", "-no-reboot", "-display",
            "none", "-monitor", "none", "-net", "none", "-kernel", FERRY_TEST_GUEST_PATH,
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-drive",
            "id=d0,file=" + disk.path() + ",format=raw,if=none,cache=none", "-device",
            "virtio-blk-device,drive=d0", "-append",
            "wss=64 rate=40 pattern=random fill=full duration=5 report=250 disk_ops=2 "
            "virtio_mmio.device=512@0xfeb02e00:12",
            "-serial", "file:" + dir + "/" + side + ".log", "-qmp",
            "unix:" + dir + "/" + side + ".qmp,server=on,wait=off"};
    };
    auto dst_args = qemu_args("dst");
    dst_args.push_back("-incoming");
    dst_args.push_back("tcp:127.0.0.1:" + std::to_string(port));
    Qemu src(qemu_args("src"));
    Qemu dst(dst_args);
    ASSERT_TRUE(src.started() && dst.started());
    Qmp sq(dir + "/src.qmp");
    Qmp dq(dir + "/dst.qmp");
    ASSERT_TRUE(sq.ok() && dq.ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // mid-run
    auto r = sq.cmd("migrate", {{"uri", "tcp:127.0.0.1:" + std::to_string(port)}});
    ASSERT_TRUE(r.contains("return")) << r.dump();
    std::string status;
    for (int i = 0; i < 600 && status != "completed" && status != "failed"; i++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        auto q = sq.cmd("query-migrate");
        status = q["return"].value("status", "");
    }
    ASSERT_EQ(status, "completed");
    sq.cmd("quit");
    int rc = dst.wait_exit(60);
    std::string dst_log = slurp(dir + "/dst.log");
    std::string src_log = slurp(dir + "/src.log");
    std::system(("rm -rf " + dir).c_str());
    EXPECT_EQ(rc, 1) << "guest status " << (rc >> 1) << "\nsource:\n" << src_log
                     << "\ndestination:\n" << dst_log;
    EXPECT_NE(src_log.find("FERRY-GUEST running"), std::string::npos) << src_log;
    EXPECT_EQ(src_log.find("FERRY-GUEST done"), std::string::npos) << "finished before migrating";
    EXPECT_NE(dst_log.find("verify ok pages=16384 disk_sectors="), std::string::npos) << dst_log;
    EXPECT_NE(dst_log.find("time_backwards=0"), std::string::npos) << dst_log;
    // The guest sees the blackout as a stall of its write loop (QEMU: tens of ms).
    std::smatch m;
    ASSERT_TRUE(std::regex_search(dst_log, m, std::regex("max_stall_us=(\\d+)"))) << dst_log;
    EXPECT_GE(std::stoull(m[1]), 1000u) << dst_log;
}

}  // namespace
