// Boots the built ferry-test-guest.bin under QEMU/KVM through tests/guests/run-qemu.sh and
// checks its serial protocol and exit statuses (docs/test-guest.md). This validates the guest
// image itself, independently of Ferry's VMM. Skipped when /dev/kvm or qemu-system-x86_64
// is unavailable (QEMU comes from Debian's qemu-system-x86 package).
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
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
            EXPECT_NEAR(mibs, 8.0, 1.0) << l;
            checked++;
        }
    }
    EXPECT_GE(checked, 4);
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

}  // namespace
