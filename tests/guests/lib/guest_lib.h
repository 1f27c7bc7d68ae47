/* Pure helpers of Ferry's freestanding test guest: page self-check, disk sector patterns,
 * page pickers, command-line parsing, pvclock/TSC arithmetic and line formatting.
 * They compile both freestanding (inside the guest) and hosted (tests/unit/guest_selfcheck),
 * so they use only <stdint.h>/<stddef.h>, never libc, never floating point.
 * The guest's serial protocol built from these is documented in docs/test-guest.md. */
#ifndef FERRY_TEST_GUEST_LIB_H
#define FERRY_TEST_GUEST_LIB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GL_PAGE_SIZE 4096u
#define GL_PAGE_WORDS (GL_PAGE_SIZE / 8u)
#define GL_SECTOR_SIZE 512u
#define GL_SECTOR_WORDS (GL_SECTOR_SIZE / 8u)
#define GL_MAX_VIRTIO 4u
#define GL_MAX_WARN 8u
#define GL_MAX_CPUS 8u

/* ---- self-check of working-set pages ------------------------------------------------- */

/* Every working-set page starts with this header (words 0..2 of the page). */
struct gl_page_header {
    uint64_t seq;      /* write sequence of this page, 1 after the init pass */
    uint64_t gpa;      /* guest-physical address of the page itself */
    uint64_t checksum; /* covers seq, gpa and (fill=full) words 3..511 */
};

/* Values are indexes into the command-line parser's word lists (cmdline.c). */
enum gl_fill { GL_FILL_HEADER = 0, GL_FILL_FULL = 1 };

enum gl_page_state { GL_PAGE_OK = 0, GL_PAGE_STALE = 1, GL_PAGE_CORRUPT = 2 };

/* A 64-bit finaliser (splitmix64): good diffusion, a handful of integer instructions. */
uint64_t gl_mix64(uint64_t x);

/* Checksum of a header-only page. */
uint64_t gl_header_checksum(uint64_t seq, uint64_t gpa);

/* Checksum of a page as written with `fill` (reads words 0, 1 and, for full, 3..511). */
uint64_t gl_page_checksum(const uint64_t *page, enum gl_fill fill);

/* Write the self-check (and, for fill=full, random-looking content) for (gpa, seq). */
void gl_page_fill(uint64_t *page, uint64_t gpa, uint64_t seq, enum gl_fill fill);

/* Check a page against the expected sequence. STALE = valid checksum and address but another
 * seq (an older copy of the page, or a newer one when the expectation table itself is stale);
 * CORRUPT = checksum or address wrong. *got_seq receives the seq word found. */
enum gl_page_state gl_page_check(const uint64_t *page, uint64_t gpa, uint64_t expected_seq,
                                 enum gl_fill fill, uint64_t *got_seq);

/* ---- disk sector patterns --------------------------------------------------------------- */

/* Fill one 512-byte sector with content derived from (sector, generation). */
void gl_sector_fill(uint64_t *sector_words, uint64_t sector, uint32_t gen);

/* 1 if the sector holds exactly the pattern for (sector, gen). *got_gen = the gen word seen. */
int gl_sector_check(const uint64_t *sector_words, uint64_t sector, uint32_t gen,
                    uint32_t *got_gen);

/* ---- random numbers and page pickers -------------------------------------------------- */

struct gl_rng {
    uint64_t s;
};

void gl_rng_seed(struct gl_rng *r, uint64_t seed);
uint64_t gl_rng_next(struct gl_rng *r);
/* Uniform-ish value in [0, n) without division (multiply-high). n > 0. */
uint64_t gl_rng_below(struct gl_rng *r, uint64_t n);

/* Values are indexes into the command-line parser's word lists (cmdline.c). */
enum gl_pattern { GL_PATTERN_SEQ = 0, GL_PATTERN_RANDOM = 1, GL_PATTERN_HOT = 2 };

struct gl_picker {
    enum gl_pattern pattern;
    uint64_t npages;    /* pages in this vCPU's slice, > 0 */
    uint64_t hot_pages; /* first hot_pages of the slice are the hot set (pattern=hot) */
    uint64_t cursor;
    struct gl_rng rng;
};

void gl_picker_init(struct gl_picker *p, enum gl_pattern pattern, uint64_t npages,
                    uint64_t hot_pages, uint64_t seed);
/* Next page index in [0, npages). pattern=hot: 80 % of picks fall in [0, hot_pages). */
uint64_t gl_picker_next(struct gl_picker *p);

/* ---- command line ----------------------------------------------------------------------- */

/* Values are indexes into the parser's word lists too. */
enum gl_inject { GL_INJECT_NONE = 0, GL_INJECT_STALE = 1, GL_INJECT_CORRUPT = 2 };

/* Values are indexes into the parser's word lists (cmdline.c): keep the order. */
enum gl_mode {
    GL_MODE_WORKLOAD = 0,
    GL_MODE_BADVIRTIO = 1,
    GL_MODE_HELLO = 2,
    GL_MODE_FAULT = 3,
    GL_MODE_IDLE = 4
};

struct gl_virtio_dev {
    uint64_t base;
    uint64_t size;
    uint32_t irq;
};

struct gl_config {
    enum gl_mode mode;
    uint32_t wss_mib;      /* working set, MiB */
    uint32_t rate_mib;     /* dirty rate MiB/s over all vCPUs, 0 = unlimited */
    enum gl_pattern pattern;
    uint32_t hot_mib;      /* 0 = default (wss/8, at least 1) */
    enum gl_fill fill;
    uint32_t duration_s;   /* 0 = forever */
    uint32_t report_ms;
    int32_t disk;          /* -1 = auto (on if a device exists), 0 off, 1 on */
    uint32_t disk_ops;     /* write+read-back operations per report interval */
    uint32_t cpus;         /* vCPUs to run the workload; 0 = auto (loader's count or 1) */
    uint64_t tsc_khz;      /* 0 = unknown */
    uint64_t seed;
    uint32_t idle_spin;    /* 1 = wait by spinning instead of hlt (idle=spin) */
    uint32_t inject;       /* GL_INJECT_*: damage one page on purpose (checker self-test) */
    uint32_t n_virtio;
    struct gl_virtio_dev virtio[GL_MAX_VIRTIO];
};

struct gl_token {
    const char *p;
    uint32_t len;
};

struct gl_parse_result {
    int ok;                 /* 1 = usable config */
    const char *error;      /* static text when !ok */
    struct gl_token bad;    /* offending token when !ok */
    uint32_t n_warn;        /* unknown keys (ignored) */
    struct gl_token warn[GL_MAX_WARN];
};

void gl_config_defaults(struct gl_config *cfg);

/* Parse a multiboot-style command line of space-separated key=value tokens into cfg (which
 * should hold the defaults). A first token without '=' is the image name and is skipped. */
void gl_parse_cmdline(const char *s, struct gl_config *cfg, struct gl_parse_result *res);

/* Decimal or 0x-hex unsigned number occupying exactly [s, s+len). 1 on success. */
int gl_parse_u64(const char *s, uint32_t len, uint64_t *out);

/* Number with an optional K/M/G suffix (binary units), as Linux's memparse. */
int gl_parse_size(const char *s, uint32_t len, uint64_t *out);

const char *gl_mode_name(enum gl_mode m);
const char *gl_pattern_name(enum gl_pattern p);
const char *gl_fill_name(enum gl_fill f);

/* ---- time ------------------------------------------------------------------------------ */

/* pvclock (kvmclock) time in ns for a TSC reading, per the Linux pvclock ABI. */
uint64_t gl_pvclock_ns(uint64_t tsc, uint64_t tsc_timestamp, uint64_t system_time,
                       uint32_t tsc_to_system_mul, int8_t tsc_shift);

/* Multiplier so that ns = (tsc * mult) >> 32 for a TSC of khz kHz (khz >= 1000). */
uint64_t gl_tsc_mult(uint64_t khz);
uint64_t gl_tsc_to_ns(uint64_t tsc, uint64_t mult);

/* ---- line formatting ------------------------------------------------------------------- */

#define GL_LINE_MAX 240u

struct gl_line {
    uint32_t len;
    char buf[GL_LINE_MAX + 1];
};

void gl_line_reset(struct gl_line *l);
void gl_line_str(struct gl_line *l, const char *s);
void gl_line_mem(struct gl_line *l, const char *s, uint32_t len);
void gl_line_u64(struct gl_line *l, uint64_t v);
void gl_line_i64(struct gl_line *l, int64_t v);
void gl_line_hex(struct gl_line *l, uint64_t v); /* "0x" + lowercase hex, no padding */
/* v / 10^decimals printed with `decimals` fraction digits (e.g. 12345, 1 -> "1234.5"). */
void gl_line_fixed(struct gl_line *l, uint64_t v, uint32_t decimals);

#ifdef __cplusplus
}
#endif

#endif
