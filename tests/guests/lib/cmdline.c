/* Command-line parser and text formatting of the test guest. Pure code: compiles freestanding
 * and hosted (see guest_lib.h); the accepted keys are documented in docs/test-guest.md. */
#include "guest_lib.h"

static int tok_eq(const char *p, uint32_t len, const char *lit) {
    uint32_t i = 0;
    for (; i < len; i++) {
        if (lit[i] == '\0' || lit[i] != p[i]) {
            return 0;
        }
    }
    return lit[i] == '\0';
}

int gl_parse_u64(const char *s, uint32_t len, uint64_t *out) {
    uint64_t v = 0;
    uint32_t i = 0;
    uint32_t base = 10;
    if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        i = 2;
    }
    if (i == len) {
        return 0;
    }
    for (; i < len; i++) {
        char c = s[i];
        uint32_t d;
        if (c >= '0' && c <= '9') {
            d = (uint32_t)(c - '0');
        } else if (base == 16 && c >= 'a' && c <= 'f') {
            d = (uint32_t)(c - 'a' + 10);
        } else if (base == 16 && c >= 'A' && c <= 'F') {
            d = (uint32_t)(c - 'A' + 10);
        } else {
            return 0;
        }
        if (v > (UINT64_MAX - d) / base) {
            return 0; /* overflow */
        }
        v = v * base + d;
    }
    *out = v;
    return 1;
}

int gl_parse_size(const char *s, uint32_t len, uint64_t *out) {
    uint32_t shift = 0;
    if (len > 0) {
        char c = s[len - 1];
        if (c == 'k' || c == 'K') {
            shift = 10;
        } else if (c == 'm' || c == 'M') {
            shift = 20;
        } else if (c == 'g' || c == 'G') {
            shift = 30;
        }
        /* A trailing hex digit B..F is a suffix only for K/M/G, none of which are hex. */
    }
    uint64_t v;
    if (!gl_parse_u64(s, shift ? len - 1 : len, &v)) {
        return 0;
    }
    if (shift && v > (UINT64_MAX >> shift)) {
        return 0;
    }
    *out = v << shift;
    return 1;
}

void gl_config_defaults(struct gl_config *cfg) {
    cfg->mode = GL_MODE_WORKLOAD;
    cfg->wss_mib = 64;
    cfg->rate_mib = 0;
    cfg->pattern = GL_PATTERN_SEQ;
    cfg->hot_mib = 0;
    cfg->fill = GL_FILL_HEADER;
    cfg->duration_s = 10;
    cfg->report_ms = 1000;
    cfg->disk = -1;
    cfg->disk_ops = 8;
    cfg->cpus = 0; /* auto: the loader's vCPU count, else 1 */
    cfg->tsc_khz = 0;
    cfg->seed = 1;
    cfg->inject = GL_INJECT_NONE;
    cfg->idle_spin = 0;
    cfg->n_virtio = 0;
    for (uint32_t i = 0; i < GL_MAX_VIRTIO; i++) {
        cfg->virtio[i].base = 0;
        cfg->virtio[i].size = 0;
        cfg->virtio[i].irq = 0;
    }
}

/* "<size>@<base>:<irq>[:<id>]" as Linux's virtio_mmio.device= takes it. */
static int parse_virtio(const char *v, uint32_t len, struct gl_virtio_dev *dev) {
    uint32_t at = 0;
    while (at < len && v[at] != '@') {
        at++;
    }
    uint32_t colon = at + 1;
    while (colon < len && v[colon] != ':') {
        colon++;
    }
    if (at == len || colon >= len) {
        return 0;
    }
    uint32_t end = colon + 1;
    while (end < len && v[end] != ':') {
        end++;
    }
    uint64_t size, base, irq;
    if (!gl_parse_size(v, at, &size) || !gl_parse_u64(v + at + 1, colon - at - 1, &base) ||
        !gl_parse_u64(v + colon + 1, end - colon - 1, &irq)) {
        return 0;
    }
    if (size < 0x100 || base == 0 || (base & 0x3) != 0 || base + size < base ||
        base + size > (4ull << 30) || irq > 255) {
        return 0; /* must lie in the guest's identity map below 4 GiB */
    }
    dev->base = base;
    dev->size = size;
    dev->irq = (uint32_t)irq;
    return 1;
}

static int parse_u32_range(const char *v, uint32_t len, uint64_t lo, uint64_t hi,
                           uint32_t *out) {
    uint64_t x;
    if (!gl_parse_u64(v, len, &x) || x < lo || x > hi) {
        return 0;
    }
    *out = (uint32_t)x;
    return 1;
}

/* Index of v in names[0..n), or -1. */
static int parse_choice(const char *v, uint32_t vl, const char *const *names, int n) {
    for (int i = 0; i < n; i++) {
        if (tok_eq(v, vl, names[i])) {
            return i;
        }
    }
    return -1;
}

/* Numeric keys stored in uint32_t fields. */
struct u32_key {
    const char *key;
    uint64_t lo, hi;
    size_t off;
    const char *err;
};

static const struct u32_key kU32Keys[] = {
    {"wss", 1, 4095, offsetof(struct gl_config, wss_mib), "wss must be 1..4095 (MiB)"},
    {"rate", 0, 1000000, offsetof(struct gl_config, rate_mib), "rate must be 0..1000000 (MiB/s)"},
    {"hot", 1, 4095, offsetof(struct gl_config, hot_mib), "hot must be 1..4095 (MiB)"},
    {"duration", 0, 1000000, offsetof(struct gl_config, duration_s),
     "duration must be 0..1000000 (s)"},
    {"report", 10, 3600000, offsetof(struct gl_config, report_ms),
     "report must be 10..3600000 (ms)"},
    {"disk_ops", 0, 10000, offsetof(struct gl_config, disk_ops), "disk_ops must be 0..10000"},
    {"cpus", 1, GL_MAX_CPUS, offsetof(struct gl_config, cpus), "cpus must be 1..8"},
    {"smp", 1, GL_MAX_CPUS, offsetof(struct gl_config, cpus), "cpus must be 1..8"},
};

/* Keys whose value is one word of a fixed list; the index is the stored value. */
static const char *const kModes[] = {"workload", "badvirtio", "hello", "fault", "idle"};
static const char *const kPatterns[] = {"seq", "random", "hot"};
static const char *const kFills[] = {"header", "full"};
static const char *const kIdles[] = {"hlt", "spin"};
static const char *const kInjects[] = {"none", "stale", "corrupt"};

static int apply_choice(struct gl_config *cfg, const char *k, uint32_t kl, const char *v,
                        uint32_t vl, const char **err) {
#define GL_CHOICE(name, list, field, type, msg)                              \
    if (tok_eq(k, kl, name)) {                                                \
        int c = parse_choice(v, vl, list, (int)(sizeof(list) / sizeof(list[0]))); \
        if (c < 0) {                                                          \
            *err = msg;                                                       \
            return 0;                                                         \
        }                                                                     \
        cfg->field = (type)c;                                                 \
        return 1;                                                             \
    }
    GL_CHOICE("mode", kModes, mode, enum gl_mode,
              "mode must be workload, idle, badvirtio, hello or fault")
    GL_CHOICE("pattern", kPatterns, pattern, enum gl_pattern, "pattern must be seq, random or hot")
    GL_CHOICE("fill", kFills, fill, enum gl_fill, "fill must be header or full")
    GL_CHOICE("idle", kIdles, idle_spin, uint32_t, "idle must be hlt or spin")
    GL_CHOICE("inject", kInjects, inject, uint32_t, "inject must be none, stale or corrupt")
#undef GL_CHOICE
    return -1;
}

/* Apply one key=value; 1 ok, 0 bad value, -1 unknown key. */
static int apply_kv(struct gl_config *cfg, const char *k, uint32_t kl, const char *v,
                    uint32_t vl, const char **err) {
    uint32_t u;
    *err = "bad value";
    for (uint32_t i = 0; i < sizeof(kU32Keys) / sizeof(kU32Keys[0]); i++) {
        const struct u32_key *key = &kU32Keys[i];
        if (tok_eq(k, kl, key->key)) {
            *err = key->err;
            return parse_u32_range(v, vl, key->lo, key->hi,
                                   (uint32_t *)(void *)((char *)cfg + key->off));
        }
    }
    int r = apply_choice(cfg, k, kl, v, vl, err);
    if (r >= 0) {
        return r;
    }
    if (tok_eq(k, kl, "disk")) {
        *err = "disk must be 0 or 1";
        if (!parse_u32_range(v, vl, 0, 1, &u)) {
            return 0;
        }
        cfg->disk = (int32_t)u;
        return 1;
    }
    if (tok_eq(k, kl, "tsc_khz")) {
        *err = "tsc_khz must be 1000..100000000";
        if (!parse_u32_range(v, vl, 1000, 100000000, &u)) {
            return 0;
        }
        cfg->tsc_khz = u;
        return 1;
    }
    if (tok_eq(k, kl, "seed")) {
        *err = "seed must be a number";
        return gl_parse_u64(v, vl, &cfg->seed);
    }
    if (tok_eq(k, kl, "virtio_mmio.device")) {
        if (cfg->n_virtio == GL_MAX_VIRTIO) {
            *err = "too many virtio_mmio.device entries";
            return 0;
        }
        *err = "virtio_mmio.device must be <size>@<base>:<irq> below 4 GiB";
        if (!parse_virtio(v, vl, &cfg->virtio[cfg->n_virtio])) {
            return 0;
        }
        cfg->n_virtio++;
        return 1;
    }
    return -1;
}

static void add_warn(struct gl_parse_result *res, const char *p, uint32_t len) {
    if (res->n_warn < GL_MAX_WARN) {
        res->warn[res->n_warn].p = p;
        res->warn[res->n_warn].len = len;
        res->n_warn++;
    }
}

void gl_parse_cmdline(const char *s, struct gl_config *cfg, struct gl_parse_result *res) {
    res->ok = 1;
    res->error = 0;
    res->bad.p = 0;
    res->bad.len = 0;
    res->n_warn = 0;
    if (s == 0) {
        return;
    }
    int first = 1;
    const char *p = s;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == '\n') {
            p++;
        }
        if (!*p) {
            break;
        }
        const char *tok = p;
        uint32_t eq = 0, len = 0;
        while (p[len] && p[len] != ' ' && p[len] != '\t' && p[len] != '\n') {
            if (p[len] == '=' && eq == 0) {
                eq = len;
            }
            len++;
        }
        p += len;
        int was_first = first;
        first = 0;
        if (eq == 0) {
            if (!was_first) { /* the first word is the image name (multiboot convention) */
                add_warn(res, tok, len);
            }
            continue;
        }
        const char *err = 0;
        int r = apply_kv(cfg, tok, eq, tok + eq + 1, len - eq - 1, &err);
        if (r < 0) {
            add_warn(res, tok, len);
        } else if (r == 0) {
            res->ok = 0;
            res->error = err;
            res->bad.p = tok;
            res->bad.len = len;
            return;
        }
    }
    if (cfg->hot_mib > cfg->wss_mib) {
        res->ok = 0;
        res->error = "hot must not exceed wss";
    }
}

const char *gl_mode_name(enum gl_mode m) {
    switch (m) {
    case GL_MODE_BADVIRTIO:
        return "badvirtio";
    case GL_MODE_HELLO:
        return "hello";
    case GL_MODE_FAULT:
        return "fault";
    case GL_MODE_IDLE:
        return "idle";
    case GL_MODE_WORKLOAD:
    default:
        return "workload";
    }
}

const char *gl_pattern_name(enum gl_pattern p) {
    return p == GL_PATTERN_RANDOM ? "random" : p == GL_PATTERN_HOT ? "hot" : "seq";
}

const char *gl_fill_name(enum gl_fill f) {
    return f == GL_FILL_FULL ? "full" : "header";
}

/* ---- line formatting -------------------------------------------------------------------- */

void gl_line_reset(struct gl_line *l) {
    l->len = 0;
    l->buf[0] = '\0';
}

void gl_line_mem(struct gl_line *l, const char *s, uint32_t len) {
    for (uint32_t i = 0; i < len && l->len < GL_LINE_MAX; i++) {
        l->buf[l->len++] = s[i];
    }
    l->buf[l->len] = '\0';
}

void gl_line_str(struct gl_line *l, const char *s) {
    while (*s && l->len < GL_LINE_MAX) {
        l->buf[l->len++] = *s++;
    }
    l->buf[l->len] = '\0';
}

void gl_line_u64(struct gl_line *l, uint64_t v) {
    char tmp[24];
    uint32_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n && l->len < GL_LINE_MAX) {
        l->buf[l->len++] = tmp[--n];
    }
    l->buf[l->len] = '\0';
}

void gl_line_i64(struct gl_line *l, int64_t v) {
    if (v < 0) {
        gl_line_str(l, "-");
        gl_line_u64(l, (uint64_t)0 - (uint64_t)v);
    } else {
        gl_line_u64(l, (uint64_t)v);
    }
}

void gl_line_hex(struct gl_line *l, uint64_t v) {
    char tmp[16];
    uint32_t n = 0;
    do {
        uint32_t d = (uint32_t)(v & 0xf);
        tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        v >>= 4;
    } while (v);
    gl_line_str(l, "0x");
    while (n && l->len < GL_LINE_MAX) {
        l->buf[l->len++] = tmp[--n];
    }
    l->buf[l->len] = '\0';
}

void gl_line_fixed(struct gl_line *l, uint64_t v, uint32_t decimals) {
    uint64_t div = 1;
    for (uint32_t i = 0; i < decimals; i++) {
        div *= 10;
    }
    gl_line_u64(l, v / div);
    if (decimals) {
        char tmp[20];
        uint64_t frac = v % div;
        for (uint32_t i = decimals; i > 0; i--) {
            tmp[i - 1] = (char)('0' + frac % 10);
            frac /= 10;
        }
        gl_line_str(l, ".");
        gl_line_mem(l, tmp, decimals);
    }
}
