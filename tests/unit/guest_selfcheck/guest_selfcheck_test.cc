// Host-side tests of the test guest's pure helpers (tests/guests/lib): page self-check,
// disk sector patterns, page pickers, command-line parser, clock arithmetic, formatting.
// The same C files are compiled freestanding into ferry-test-guest.bin.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "ferry/test_guest_path.h"
#include "guest_lib.h"

namespace {

std::vector<uint64_t> make_page() {
    return std::vector<uint64_t>(GL_PAGE_WORDS, 0);
}

TEST(GuestPage, HeaderFillChecksAndLeavesRestAlone) {
    auto page = make_page();
    page[100] = 0xabcdef;
    gl_page_fill(page.data(), 0x200000, 7, GL_FILL_HEADER);
    EXPECT_EQ(page[0], 7u);
    EXPECT_EQ(page[1], 0x200000u);
    EXPECT_EQ(page[2], gl_header_checksum(7, 0x200000));
    EXPECT_EQ(page[100], 0xabcdefu);
    uint64_t got = 0;
    EXPECT_EQ(gl_page_check(page.data(), 0x200000, 7, GL_FILL_HEADER, &got), GL_PAGE_OK);
    EXPECT_EQ(got, 7u);
}

TEST(GuestPage, OlderCopyIsStaleNotCorrupt) {
    for (gl_fill fill : {GL_FILL_HEADER, GL_FILL_FULL}) {
        auto page = make_page();
        gl_page_fill(page.data(), 0x300000, 4, fill);
        auto old_copy = page;
        gl_page_fill(page.data(), 0x300000, 5, fill);
        uint64_t got = 0;
        EXPECT_EQ(gl_page_check(old_copy.data(), 0x300000, 5, fill, &got), GL_PAGE_STALE);
        EXPECT_EQ(got, 4u);
        // A page newer than the table (stale table) is reported as stale too.
        EXPECT_EQ(gl_page_check(page.data(), 0x300000, 4, fill, &got), GL_PAGE_STALE);
        EXPECT_EQ(got, 5u);
    }
}

TEST(GuestPage, CorruptionIsDetected) {
    auto page = make_page();
    gl_page_fill(page.data(), 0x400000, 9, GL_FILL_FULL);
    uint64_t got = 0;
    ASSERT_EQ(gl_page_check(page.data(), 0x400000, 9, GL_FILL_FULL, &got), GL_PAGE_OK);
    // One flipped bit anywhere in the content, or a page copied to another address.
    for (uint32_t word : {2u, 3u, 200u, GL_PAGE_WORDS - 1}) {
        auto bad = page;
        bad[word] ^= 1u << 17;
        EXPECT_EQ(gl_page_check(bad.data(), 0x400000, 9, GL_FILL_FULL, &got), GL_PAGE_CORRUPT)
            << "word " << word;
    }
    EXPECT_EQ(gl_page_check(page.data(), 0x401000, 9, GL_FILL_FULL, &got), GL_PAGE_CORRUPT);
    auto zero = make_page();
    EXPECT_EQ(gl_page_check(zero.data(), 0x400000, 1, GL_FILL_HEADER, &got), GL_PAGE_CORRUPT);
    // With fill=header the rest of the page is not covered.
    auto hdr = make_page();
    gl_page_fill(hdr.data(), 0x400000, 3, GL_FILL_HEADER);
    hdr[50] = 1;
    EXPECT_EQ(gl_page_check(hdr.data(), 0x400000, 3, GL_FILL_HEADER, &got), GL_PAGE_OK);
}

TEST(GuestPage, FullContentLooksRandomAndChangesWithSeq) {
    auto a = make_page();
    auto b = make_page();
    gl_page_fill(a.data(), 0x500000, 1, GL_FILL_FULL);
    gl_page_fill(b.data(), 0x500000, 2, GL_FILL_FULL);
    std::set<uint64_t> words(a.begin() + 3, a.end());
    EXPECT_EQ(words.size(), GL_PAGE_WORDS - 3);  // no repeats: nothing for zstd to find
    std::set<uint8_t> bytes;
    const auto *p = reinterpret_cast<const uint8_t *>(a.data());
    bytes.insert(p, p + GL_PAGE_SIZE);
    EXPECT_GT(bytes.size(), 240u);
    int same = 0;
    for (uint32_t i = 3; i < GL_PAGE_WORDS; i++) {
        same += a[i] == b[i];
    }
    EXPECT_EQ(same, 0);
}

TEST(GuestSector, RoundTripAndMismatch) {
    uint64_t s[GL_SECTOR_WORDS];
    gl_sector_fill(s, 1234, 3);
    uint32_t got = 0;
    EXPECT_TRUE(gl_sector_check(s, 1234, 3, &got));
    EXPECT_FALSE(gl_sector_check(s, 1234, 4, &got));
    EXPECT_EQ(got, 3u);
    EXPECT_FALSE(gl_sector_check(s, 1235, 3, &got));
    s[40] ^= 1;
    EXPECT_FALSE(gl_sector_check(s, 1234, 3, &got));
    uint64_t t[GL_SECTOR_WORDS];
    gl_sector_fill(t, 1234, 4);
    EXPECT_NE(std::memcmp(s + 2, t + 2, sizeof(uint64_t) * (GL_SECTOR_WORDS - 2)), 0);
}

TEST(GuestPicker, SequentialWraps) {
    gl_picker p;
    gl_picker_init(&p, GL_PATTERN_SEQ, 3, 0, 1);
    std::vector<uint64_t> seen;
    for (int i = 0; i < 7; i++) {
        seen.push_back(gl_picker_next(&p));
    }
    EXPECT_EQ(seen, (std::vector<uint64_t>{0, 1, 2, 0, 1, 2, 0}));
}

TEST(GuestPicker, RandomCoversRangeUniformly) {
    gl_picker p;
    gl_picker_init(&p, GL_PATTERN_RANDOM, 100, 0, 42);
    std::vector<int> hist(100, 0);
    for (int i = 0; i < 100000; i++) {
        uint64_t v = gl_picker_next(&p);
        ASSERT_LT(v, 100u);
        hist[v]++;
    }
    for (int h : hist) {
        EXPECT_GT(h, 800);
        EXPECT_LT(h, 1200);
    }
}

TEST(GuestPicker, HotSetGetsEightyPercent) {
    gl_picker p;
    const uint64_t n = 1000, hot = 100;
    gl_picker_init(&p, GL_PATTERN_HOT, n, hot, 7);
    int in_hot = 0;
    const int picks = 200000;
    for (int i = 0; i < picks; i++) {
        uint64_t v = gl_picker_next(&p);
        ASSERT_LT(v, n);
        in_hot += v < hot;
    }
    // 80 % aimed at the hot set plus the uniform 20 % that lands there by chance.
    double expected = 0.8 + 0.2 * double(hot) / double(n);
    EXPECT_NEAR(double(in_hot) / picks, expected, 0.01);
}

TEST(GuestPicker, DifferentSeedsDiffer) {
    gl_picker a, b;
    gl_picker_init(&a, GL_PATTERN_RANDOM, 1u << 20, 0, 1);
    gl_picker_init(&b, GL_PATTERN_RANDOM, 1u << 20, 0, 2);
    int same = 0;
    for (int i = 0; i < 100; i++) {
        same += gl_picker_next(&a) == gl_picker_next(&b);
    }
    EXPECT_LT(same, 5);
}

struct Parsed {
    gl_config cfg;
    gl_parse_result res;
};

Parsed parse(const char *s) {
    Parsed p;
    gl_config_defaults(&p.cfg);
    gl_parse_cmdline(s, &p.cfg, &p.res);
    return p;
}

std::string tok(const gl_token &t) {
    return std::string(t.p, t.len);
}

TEST(GuestCmdline, Defaults) {
    Parsed p = parse("");
    ASSERT_TRUE(p.res.ok);
    EXPECT_EQ(p.cfg.mode, GL_MODE_WORKLOAD);
    EXPECT_EQ(p.cfg.wss_mib, 64u);
    EXPECT_EQ(p.cfg.rate_mib, 0u);
    EXPECT_EQ(p.cfg.pattern, GL_PATTERN_SEQ);
    EXPECT_EQ(p.cfg.fill, GL_FILL_HEADER);
    EXPECT_EQ(p.cfg.duration_s, 10u);
    EXPECT_EQ(p.cfg.report_ms, 1000u);
    EXPECT_EQ(p.cfg.disk, -1);
    EXPECT_EQ(p.cfg.cpus, 0u);  // auto
    EXPECT_EQ(p.cfg.n_virtio, 0u);
    Parsed n = parse(nullptr);
    EXPECT_TRUE(n.res.ok);
}

TEST(GuestCmdline, EveryKey) {
    Parsed p = parse(
        "/path/ferry-test-guest.bin mode=badvirtio wss=256 rate=50 pattern=hot hot=16 "
        "fill=full duration=0 report=250 disk=0 disk_ops=3 cpus=2 tsc_khz=2500000 seed=0x10 "
        "virtio_mmio.device=4K@0xd0000000:5 virtio_mmio.device=512@0xfeb02e00:12:3");
    ASSERT_TRUE(p.res.ok) << p.res.error;
    EXPECT_EQ(p.res.n_warn, 0u);  // the image name (first word) is not a warning
    EXPECT_EQ(p.cfg.mode, GL_MODE_BADVIRTIO);
    EXPECT_EQ(p.cfg.wss_mib, 256u);
    EXPECT_EQ(p.cfg.rate_mib, 50u);
    EXPECT_EQ(p.cfg.pattern, GL_PATTERN_HOT);
    EXPECT_EQ(p.cfg.hot_mib, 16u);
    EXPECT_EQ(p.cfg.fill, GL_FILL_FULL);
    EXPECT_EQ(p.cfg.duration_s, 0u);
    EXPECT_EQ(p.cfg.report_ms, 250u);
    EXPECT_EQ(p.cfg.disk, 0);
    EXPECT_EQ(p.cfg.disk_ops, 3u);
    EXPECT_EQ(p.cfg.cpus, 2u);
    EXPECT_EQ(p.cfg.tsc_khz, 2500000u);
    EXPECT_EQ(p.cfg.seed, 16u);
    ASSERT_EQ(p.cfg.n_virtio, 2u);
    EXPECT_EQ(p.cfg.virtio[0].base, 0xd0000000u);
    EXPECT_EQ(p.cfg.virtio[0].size, 4096u);
    EXPECT_EQ(p.cfg.virtio[0].irq, 5u);
    EXPECT_EQ(p.cfg.virtio[1].base, 0xfeb02e00u);
    EXPECT_EQ(p.cfg.virtio[1].size, 512u);
    EXPECT_EQ(p.cfg.virtio[1].irq, 12u);
}

TEST(GuestCmdline, ModesAndSmpAlias) {
    EXPECT_EQ(parse("mode=hello").cfg.mode, GL_MODE_HELLO);
    EXPECT_EQ(parse("mode=fault").cfg.mode, GL_MODE_FAULT);
    EXPECT_EQ(parse("mode=workload").cfg.mode, GL_MODE_WORKLOAD);
    EXPECT_EQ(parse("smp=2").cfg.cpus, 2u);
    EXPECT_EQ(parse("pattern=random").cfg.pattern, GL_PATTERN_RANDOM);
    EXPECT_EQ(parse("inject=stale").cfg.inject, GL_INJECT_STALE);
    EXPECT_EQ(parse("inject=corrupt").cfg.inject, GL_INJECT_CORRUPT);
    EXPECT_EQ(parse("").cfg.inject, GL_INJECT_NONE);
    EXPECT_FALSE(parse("inject=maybe").res.ok);
}

TEST(GuestCmdline, UnknownKeysWarnOnly) {
    Parsed p = parse("kernel foo=1 wss=8 console=ttyS0 lonely");
    ASSERT_TRUE(p.res.ok);
    EXPECT_EQ(p.cfg.wss_mib, 8u);
    ASSERT_EQ(p.res.n_warn, 3u);
    EXPECT_EQ(tok(p.res.warn[0]), "foo=1");
    EXPECT_EQ(tok(p.res.warn[1]), "console=ttyS0");
    EXPECT_EQ(tok(p.res.warn[2]), "lonely");
}

TEST(GuestCmdline, BadValuesAreErrorsNamingTheToken) {
    const char *bad[] = {"wss=0",          "wss=abc",       "wss=4096",    "rate=-1",
                         "pattern=zigzag", "fill=half",     "mode=nap",    "report=5",
                         "disk=2",         "cpus=0",        "cpus=9",      "tsc_khz=5",
                         "duration=1x",    "wss=",          "hot=0",
                         "virtio_mmio.device=4K@0x1ffffffff:5",
                         "virtio_mmio.device=4K0xd0000000:5", "virtio_mmio.device=4K@0xd0000000",
                         "virtio_mmio.device=4K@0xd0000001:5",
                         "wss=99999999999999999999999"};
    for (const char *b : bad) {
        std::string line = std::string("wss=8 ") + b;
        Parsed p = parse(line.c_str());
        EXPECT_FALSE(p.res.ok) << b;
        EXPECT_NE(p.res.error, nullptr) << b;
        EXPECT_EQ(tok(p.res.bad), b);
    }
    Parsed h = parse("wss=8 hot=9");
    EXPECT_FALSE(h.res.ok);
}

TEST(GuestCmdline, NumbersAndSizes) {
    uint64_t v = 0;
    EXPECT_TRUE(gl_parse_u64("18446744073709551615", 20, &v));
    EXPECT_EQ(v, UINT64_MAX);
    EXPECT_FALSE(gl_parse_u64("18446744073709551616", 20, &v));
    EXPECT_TRUE(gl_parse_u64("0xFfFf", 6, &v));
    EXPECT_EQ(v, 0xffffu);
    EXPECT_FALSE(gl_parse_u64("0x", 2, &v));
    EXPECT_FALSE(gl_parse_u64("", 0, &v));
    EXPECT_TRUE(gl_parse_size("4K", 2, &v));
    EXPECT_EQ(v, 4096u);
    EXPECT_TRUE(gl_parse_size("2m", 2, &v));
    EXPECT_EQ(v, 2u << 20);
    EXPECT_TRUE(gl_parse_size("1G", 2, &v));
    EXPECT_EQ(v, 1u << 30);
    EXPECT_TRUE(gl_parse_size("0x200", 5, &v));
    EXPECT_EQ(v, 512u);
    EXPECT_FALSE(gl_parse_size("K", 1, &v));
}

TEST(GuestClock, PvclockMatchesTheAbi) {
    // 1 GHz TSC: mul = 2^31 with shift +1 gives 1 ns per cycle.
    EXPECT_EQ(gl_pvclock_ns(1000 + 5000, 1000, 777, 0x80000000u, 1), 777u + 5000u);
    // 3 GHz TSC: shift -1, mul = 2^32 * 2/3 -> 1/3 ns per cycle.
    uint64_t ns = gl_pvclock_ns(3000000000ull, 0, 0, 0xaaaaaaabu, -1);
    EXPECT_NEAR(double(ns), 1e9, 2.0);
    // Huge deltas do not overflow (128-bit product).
    ns = gl_pvclock_ns(1ull << 50, 0, 0, 0xffffffffu, 0);
    EXPECT_NEAR(double(ns), double(1ull << 50), double(1ull << 20));
}

TEST(GuestClock, TscFallback) {
    uint64_t mult = gl_tsc_mult(2500000);  // 2.5 GHz
    EXPECT_NEAR(double(gl_tsc_to_ns(2500000000ull, mult)), 1e9, 1.0);
    EXPECT_NEAR(double(gl_tsc_to_ns(2500000000ull * 3600, mult)), 3600e9, 3600.0);
}

std::string line_of(void (*fill)(gl_line *)) {
    gl_line l;
    gl_line_reset(&l);
    fill(&l);
    return std::string(l.buf, l.len);
}

TEST(GuestLine, Formatting) {
    EXPECT_EQ(line_of([](gl_line *l) { gl_line_u64(l, 0); }), "0");
    EXPECT_EQ(line_of([](gl_line *l) { gl_line_u64(l, UINT64_MAX); }), "18446744073709551615");
    EXPECT_EQ(line_of([](gl_line *l) { gl_line_i64(l, INT64_MIN); }), "-9223372036854775808");
    EXPECT_EQ(line_of([](gl_line *l) { gl_line_hex(l, 0); }), "0x0");
    EXPECT_EQ(line_of([](gl_line *l) { gl_line_hex(l, 0xfeb02e00); }), "0xfeb02e00");
    EXPECT_EQ(line_of([](gl_line *l) { gl_line_fixed(l, 12345, 1); }), "1234.5");
    EXPECT_EQ(line_of([](gl_line *l) { gl_line_fixed(l, 5, 2); }), "0.05");
    EXPECT_EQ(line_of([](gl_line *l) {
                  gl_line_str(l, "a=");
                  gl_line_mem(l, "xyz", 2);
              }),
              "a=xy");
    gl_line l;
    gl_line_reset(&l);
    for (int i = 0; i < 100; i++) {
        gl_line_str(&l, "0123456789");
    }
    EXPECT_EQ(l.len, GL_LINE_MAX);  // truncated, never overflows
    EXPECT_EQ(l.buf[GL_LINE_MAX], '\0');
}

TEST(GuestNames, MatchTheProtocol) {
    EXPECT_STREQ(gl_mode_name(GL_MODE_BADVIRTIO), "badvirtio");
    EXPECT_STREQ(gl_pattern_name(GL_PATTERN_HOT), "hot");
    EXPECT_STREQ(gl_fill_name(GL_FILL_FULL), "full");
}

// ---- the built image honours the boot contract (docs/test-guest.md) ----

std::vector<uint8_t> read_image() {
    std::ifstream in(FERRY_TEST_GUEST_PATH, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

template <typename T>
T at(const std::vector<uint8_t> &img, size_t off) {
    T v{};
    std::memcpy(&v, img.data() + off, sizeof(T));
    return v;
}

TEST(GuestImage, MultibootHeaderDescribesTheFile) {
    auto img = read_image();
    ASSERT_GE(img.size(), 8192u) << FERRY_TEST_GUEST_PATH;
    // First multiboot header in the first 8 KiB, 4-byte aligned.
    size_t off = 0;
    while (off + 32 <= 8192 && at<uint32_t>(img, off) != 0x1BADB002u) {
        off += 4;
    }
    ASSERT_LT(off + 32, 8192u);
    uint32_t magic = at<uint32_t>(img, off), flags = at<uint32_t>(img, off + 4);
    EXPECT_EQ(uint32_t(magic + flags + at<uint32_t>(img, off + 8)), 0u);  // checksum
    EXPECT_TRUE(flags & (1u << 16));                                     // a.out kludge
    EXPECT_TRUE(flags & (1u << 1));                                      // memory info
    uint32_t header_addr = at<uint32_t>(img, off + 12), load_addr = at<uint32_t>(img, off + 16);
    uint32_t load_end = at<uint32_t>(img, off + 20), bss_end = at<uint32_t>(img, off + 24);
    uint32_t entry = at<uint32_t>(img, off + 28);
    EXPECT_EQ(load_addr, 0x100000u);
    EXPECT_EQ(header_addr - load_addr, off);  // file offset 0 is load_addr
    EXPECT_EQ(load_end - load_addr, img.size()) << "loaders read exactly this many bytes";
    EXPECT_GE(bss_end, load_end);
    EXPECT_GE(entry, load_addr);
    EXPECT_LT(entry, load_end);
}

TEST(GuestImage, Ferry64HeaderFollows) {
    auto img = read_image();
    ASSERT_GE(img.size(), 8192u);
    size_t off = 0;
    while (off + 40 <= 8192 && at<uint64_t>(img, off) != 0x0034365952524546ull) {
        off += 8;
    }
    ASSERT_LT(off + 40, 8192u) << "no FERRY64 header";
    EXPECT_EQ(std::memcmp(img.data() + off, "FERRY64", 8), 0);
    uint64_t entry64 = at<uint64_t>(img, off + 8), load_addr = at<uint64_t>(img, off + 16);
    uint64_t load_end = at<uint64_t>(img, off + 24), bss_end = at<uint64_t>(img, off + 32);
    EXPECT_EQ(load_addr, 0x100000u);
    EXPECT_EQ(load_end - load_addr, img.size());
    EXPECT_GE(bss_end, load_end);
    EXPECT_GE(entry64, load_addr);
    EXPECT_LT(entry64, load_end);
    EXPECT_EQ(at<uint32_t>(img, 20), uint32_t(load_end));  // same as the multiboot header
    EXPECT_EQ(at<uint32_t>(img, 24), uint32_t(bss_end));
}

// Every vCPU's TSS must carry a zeroed I/O bitmap (ring-3 port I/O on KVM-PVM) and its
// own ring-0 and IST stacks; the GDT's TSS descriptors must point at them.
TEST(GuestImage, EveryTssAllowsPortIoAndHasItsOwnStacks) {
    auto img = read_image();
    const uint64_t kcode = 0x00af9a000000ffffull, kdata = 0x00cf92000000ffffull;
    size_t gdt = 0;
    for (size_t off = 8; off + 16 <= img.size(); off += 8) {
        if (at<uint64_t>(img, off) == kcode && at<uint64_t>(img, off + 8) == kdata) {
            gdt = off - 8;
            break;
        }
    }
    ASSERT_NE(gdt, 0u) << "GDT not found";
    std::set<uint64_t> rsp0s, ists;
    for (uint32_t cpu = 0; cpu < GL_MAX_CPUS; cpu++) {
        size_t d = gdt + 0x28 + 16 * cpu;
        uint64_t base = at<uint16_t>(img, d + 2) | uint64_t(img[d + 4]) << 16 |
                        uint64_t(img[d + 7]) << 24 | uint64_t(at<uint32_t>(img, d + 8)) << 32;
        uint32_t limit = at<uint16_t>(img, d) | uint32_t(img[d + 6] & 0xf) << 16;
        EXPECT_EQ(img[d + 5], 0x89) << "cpu " << cpu;  // present, available 64-bit TSS
        EXPECT_EQ(limit, 0x68u + 0x2000u) << "cpu " << cpu;
        ASSERT_GE(base, 0x100000u);
        size_t t = base - 0x100000;
        ASSERT_LE(t + limit + 1, img.size());
        EXPECT_EQ(at<uint16_t>(img, t + 0x66), 0x68u) << "cpu " << cpu;  // iomap_base
        for (size_t i = 0; i < 0x2000; i++) {
            ASSERT_EQ(img[t + 0x68 + i], 0) << "cpu " << cpu << " port byte " << i;
        }
        EXPECT_EQ(img[t + 0x2068], 0xff) << "cpu " << cpu;
        uint64_t rsp0 = at<uint64_t>(img, t + 4), ist1 = at<uint64_t>(img, t + 0x24);
        EXPECT_NE(rsp0, 0u) << "cpu " << cpu;
        EXPECT_NE(ist1, 0u) << "cpu " << cpu;
        rsp0s.insert(rsp0);
        ists.insert(ist1);
    }
    EXPECT_EQ(rsp0s.size(), GL_MAX_CPUS);
    EXPECT_EQ(ists.size(), GL_MAX_CPUS);
}

}  // namespace
