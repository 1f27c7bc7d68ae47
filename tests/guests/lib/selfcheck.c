/* Page self-check, disk sector patterns, random page pickers and clock arithmetic of the
 * test guest. Pure integer code: compiles freestanding and hosted (see guest_lib.h). */
#include "guest_lib.h"

#define GL_GOLDEN 0x9e3779b97f4a7c15ull
#define GL_HDR_SALT 0x5ec0de5eed0f7e11ull
#define GL_DISK_SALT 0xd15cb10c5a1700d5ull
#define GL_MUL 0xff51afd7ed558ccdull

uint64_t gl_mix64(uint64_t x) {
    x += GL_GOLDEN;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

uint64_t gl_header_checksum(uint64_t seq, uint64_t gpa) {
    return gl_mix64(seq ^ gl_mix64(gpa ^ GL_HDR_SALT));
}

static inline uint64_t rotl64(uint64_t v, unsigned r) {
    return (v << r) | (v >> (64u - r));
}

/* Four independent lanes so the multiply chains overlap (the checksum runs on every write
 * with fill=full); word i (3..511) goes to lane i & 3. */
struct ck_lanes {
    uint64_t h[4];
};

static inline void lanes_init(struct ck_lanes *c, uint64_t seed) {
    c->h[0] = seed;
    c->h[1] = seed ^ 0x1111111111111111ull;
    c->h[2] = seed ^ 0x2222222222222222ull;
    c->h[3] = seed ^ 0x3333333333333333ull;
}

static inline void lanes_add(struct ck_lanes *c, uint32_t i, uint64_t w) {
    c->h[i & 3] = rotl64(c->h[i & 3] ^ w, 29) * GL_MUL;
}

static inline uint64_t lanes_final(const struct ck_lanes *c) {
    return gl_mix64(c->h[0] ^ rotl64(c->h[1], 16) ^ rotl64(c->h[2], 32) ^ rotl64(c->h[3], 48));
}

uint64_t gl_page_checksum(const uint64_t *page, enum gl_fill fill) {
    uint64_t h = gl_header_checksum(page[0], page[1]);
    if (fill != GL_FILL_FULL) {
        return h;
    }
    struct ck_lanes c;
    lanes_init(&c, h);
    lanes_add(&c, 3, page[3]);
    for (uint32_t i = 4; i < GL_PAGE_WORDS; i += 4) {
        lanes_add(&c, i, page[i]);
        lanes_add(&c, i + 1, page[i + 1]);
        lanes_add(&c, i + 2, page[i + 2]);
        lanes_add(&c, i + 3, page[i + 3]);
    }
    return lanes_final(&c);
}

static inline uint64_t content_word(uint64_t s) {
    s = (s ^ (s >> 31)) * GL_MUL;
    return s ^ (s >> 29);
}

void gl_page_fill(uint64_t *page, uint64_t gpa, uint64_t seq, enum gl_fill fill) {
    uint64_t h = gl_header_checksum(seq, gpa);
    if (fill == GL_FILL_FULL) {
        /* Content is a function of (gpa, seq) and looks random, so it does not compress and
         * a copy of an older version is always distinguishable. The checksum is folded in
         * while writing: one pass over the page. */
        uint64_t s = gl_mix64(gpa ^ (seq * GL_GOLDEN));
        struct ck_lanes c;
        lanes_init(&c, h);
        for (uint32_t i = 3; i < GL_PAGE_WORDS; i++) {
            uint64_t w = content_word(s + (uint64_t)i * GL_GOLDEN);
            page[i] = w;
            lanes_add(&c, i, w);
        }
        h = lanes_final(&c);
    }
    page[1] = gpa;
    page[0] = seq;
    page[2] = h;
}

enum gl_page_state gl_page_check(const uint64_t *page, uint64_t gpa, uint64_t expected_seq,
                                 enum gl_fill fill, uint64_t *got_seq) {
    uint64_t seq = page[0];
    *got_seq = seq;
    if (page[1] != gpa || page[2] != gl_page_checksum(page, fill)) {
        return GL_PAGE_CORRUPT;
    }
    return seq == expected_seq ? GL_PAGE_OK : GL_PAGE_STALE;
}

void gl_sector_fill(uint64_t *w, uint64_t sector, uint32_t gen) {
    w[0] = sector;
    w[1] = gen;
    uint64_t s = gl_mix64(sector ^ GL_DISK_SALT ^ ((uint64_t)gen << 40));
    for (uint32_t i = 2; i < GL_SECTOR_WORDS; i++) {
        s = gl_mix64(s + i);
        w[i] = s;
    }
}

int gl_sector_check(const uint64_t *w, uint64_t sector, uint32_t gen, uint32_t *got_gen) {
    *got_gen = (uint32_t)w[1];
    if (w[0] != sector || w[1] != gen) {
        return 0;
    }
    uint64_t s = gl_mix64(sector ^ GL_DISK_SALT ^ ((uint64_t)gen << 40));
    for (uint32_t i = 2; i < GL_SECTOR_WORDS; i++) {
        s = gl_mix64(s + i);
        if (w[i] != s) {
            return 0;
        }
    }
    return 1;
}

void gl_rng_seed(struct gl_rng *r, uint64_t seed) {
    r->s = gl_mix64(seed) | 1u;
}

uint64_t gl_rng_next(struct gl_rng *r) {
    /* xorshift64* */
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545f4914f6cdd1dull;
}

uint64_t gl_rng_below(struct gl_rng *r, uint64_t n) {
    return (uint64_t)(((unsigned __int128)gl_rng_next(r) * n) >> 64);
}

void gl_picker_init(struct gl_picker *p, enum gl_pattern pattern, uint64_t npages,
                    uint64_t hot_pages, uint64_t seed) {
    p->pattern = pattern;
    p->npages = npages ? npages : 1;
    p->hot_pages = hot_pages == 0 ? 1 : (hot_pages > p->npages ? p->npages : hot_pages);
    p->cursor = 0;
    gl_rng_seed(&p->rng, seed);
}

uint64_t gl_picker_next(struct gl_picker *p) {
    switch (p->pattern) {
    case GL_PATTERN_RANDOM:
        return gl_rng_below(&p->rng, p->npages);
    case GL_PATTERN_HOT: {
        uint64_t r = gl_rng_next(&p->rng);
        /* Low 32 bits pick the set (4 of 5 = 80 % hot), the high bits the page. */
        uint64_t fifth = ((r & 0xffffffffu) * 5u) >> 32;
        uint64_t n = fifth < 4 ? p->hot_pages : p->npages;
        return (uint64_t)(((unsigned __int128)(r >> 32) * n) >> 32);
    }
    case GL_PATTERN_SEQ:
    default: {
        uint64_t v = p->cursor;
        p->cursor = v + 1 == p->npages ? 0 : v + 1;
        return v;
    }
    }
}

uint64_t gl_pvclock_ns(uint64_t tsc, uint64_t tsc_timestamp, uint64_t system_time,
                       uint32_t tsc_to_system_mul, int8_t tsc_shift) {
    uint64_t delta = tsc - tsc_timestamp;
    if (tsc_shift < 0) {
        delta >>= -tsc_shift;
    } else {
        delta <<= tsc_shift;
    }
    return system_time + (uint64_t)(((unsigned __int128)delta * tsc_to_system_mul) >> 32);
}

uint64_t gl_tsc_mult(uint64_t khz) {
    if (khz < 1000) {
        khz = 1000;
    }
    return (1000000ull << 32) / khz;
}

uint64_t gl_tsc_to_ns(uint64_t tsc, uint64_t mult) {
    return (uint64_t)(((unsigned __int128)tsc * mult) >> 32);
}
