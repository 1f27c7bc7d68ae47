/* The dirtying workload: each vCPU owns a slice of the working set, verifies a page's
 * self-check against the expected-seq table before every write, then writes seq+1. Pacing
 * (rate=) uses a per-vCPU one-second window on guest time. */
#include "workload.h"

#define CLOCK_EVERY 16u /* writes between clock reads */
#define NS_PER_S 1000000000ull
#define PACE_MIN_SLEEP_NS 1000000ull
#define PACE_STALL_NS 50000000ull
#define STALL_REPORT_NS 50000000ull /* print a `stall` line from 50 ms on (host noise: ~20 ms) */
#define MAX_STALL_LINES 20u

struct guest_state g;
struct vcpu_state g_vcpu[MAX_CPUS];

uint64_t guest_now(uint32_t cpu) {
    struct vcpu_state *s = &g_vcpu[cpu];
    uint64_t now = clock_ns(cpu);
    if (now < s->last_ns) {
        s->time_backwards++;
        if (__atomic_fetch_add(&g.backwards_lines, 1u, __ATOMIC_RELAXED) < MAX_BACKWARDS_LINES) {
            struct gl_line l;
            gl_line_reset(&l);
            gl_line_str(&l, "TIME-BACKWARDS delta_ns=");
            gl_line_u64(&l, s->last_ns - now);
            gl_line_str(&l, " cpu=");
            gl_line_u64(&l, cpu);
            print_line(&l);
        }
        return s->last_ns;
    }
    s->last_ns = now;
    return now;
}

/* A gap in the write loop that nobody asked for: a VM pause (migration blackout), host
 * preemption, a long VM exit. The largest is reported per vCPU; big ones get a line. */
static void note_stall(uint32_t cpu, uint64_t gap_ns, uint64_t now) {
    struct vcpu_state *s = &g_vcpu[cpu];
    if (gap_ns > s->max_stall_ns) {
        s->max_stall_ns = gap_ns;
    }
    if (gap_ns >= STALL_REPORT_NS &&
        __atomic_fetch_add(&g.stall_lines, 1u, __ATOMIC_RELAXED) < MAX_STALL_LINES) {
        struct gl_line l;
        gl_line_reset(&l);
        gl_line_str(&l, "stall cpu=");
        gl_line_u64(&l, cpu);
        gl_line_str(&l, " us=");
        gl_line_u64(&l, gap_ns / 1000);
        gl_line_str(&l, " at_ms=");
        gl_line_u64(&l, now / 1000000ull);
        print_line(&l);
    }
}

static const char *kind_name(enum fail_kind k) {
    return k == FAIL_STALE ? "stale" : k == FAIL_CORRUPT ? "corrupt" : "disk";
}

void report_failure(uint32_t cpu, enum fail_kind kind, uint64_t where, uint64_t expected,
                    uint64_t got) {
    g_vcpu[cpu].failures++;
    if (__atomic_fetch_add(&g.fail_lines, 1u, __ATOMIC_RELAXED) >= MAX_FAIL_LINES) {
        return;
    }
    struct gl_line l;
    gl_line_reset(&l);
    gl_line_str(&l, "verify FAIL kind=");
    gl_line_str(&l, kind_name(kind));
    gl_line_str(&l, " page=");
    gl_line_hex(&l, where);
    gl_line_str(&l, " expected=");
    gl_line_u64(&l, expected);
    gl_line_str(&l, " got=");
    gl_line_u64(&l, got);
    print_line(&l);
}

static inline uint64_t *page_ptr(uint64_t idx) {
    return (uint64_t *)(uintptr_t)(g.ws_base + idx * GL_PAGE_SIZE);
}

static void check_and_write(uint32_t cpu, uint64_t idx) {
    uint64_t *page = page_ptr(idx);
    uint64_t gpa = (uint64_t)(uintptr_t)page;
    uint64_t exp = g.expected[idx];
    uint64_t got;
    enum gl_page_state st = gl_page_check(page, gpa, exp, g.cfg.fill, &got);
    if (st != GL_PAGE_OK) {
        report_failure(cpu, st == GL_PAGE_STALE ? FAIL_STALE : FAIL_CORRUPT, gpa, exp, got);
    }
    gl_page_fill(page, gpa, exp + 1, g.cfg.fill);
    g.expected[idx] = exp + 1;
}

void workload_init_slice(uint32_t cpu) {
    struct vcpu_state *s = &g_vcpu[cpu];
    for (uint64_t i = 0; i < s->npages; i++) {
        uint64_t idx = s->first_page + i;
        uint64_t *page = page_ptr(idx);
        gl_page_fill(page, (uint64_t)(uintptr_t)page, 1, g.cfg.fill);
        g.expected[idx] = 1;
    }
    s->writes += s->npages;
}

/* Per-vCPU pacing and picking; lives on the vCPU's stack between workload_run calls. */
struct pacer {
    int initialised;
    struct gl_picker picker;
    uint64_t window_start;
    uint64_t window_writes;
    uint64_t last_now; /* previous pace check */
};

static struct pacer g_pacer[MAX_CPUS];

/* Guest time at which the next write is allowed. */
static uint64_t pace_next_ok(const struct pacer *p) {
    return p->window_start + p->window_writes * NS_PER_S / g.pages_per_s_per_vcpu;
}

/* 1 = may write now; otherwise the caller waits. */
static int pace_allows(struct pacer *p, uint64_t now) {
    uint64_t pps = g.pages_per_s_per_vcpu;
    if (pps == 0) {
        return 1;
    }
    /* After a stall (VM paused for a migration, host preemption) start a new window
     * instead of catching up: the dirty rate stays `rate` right after a blackout. */
    uint64_t stall_ns = PACE_STALL_NS + 2 * NS_PER_S / pps;
    uint64_t gap = now - p->last_now;
    p->last_now = now;
    uint64_t elapsed = now - p->window_start;
    if (gap > stall_ns || elapsed >= 2 * NS_PER_S) {
        p->window_start = now;
        p->window_writes = 0;
        elapsed = 0;
    } else if (elapsed >= NS_PER_S) {
        p->window_start += NS_PER_S;
        p->window_writes = p->window_writes > pps ? p->window_writes - pps : 0;
        elapsed -= NS_PER_S;
    }
    uint64_t allowed = elapsed * pps / NS_PER_S + 1;
    return p->window_writes < allowed;
}

void workload_run(uint32_t cpu, uint64_t deadline_ns) {
    struct vcpu_state *s = &g_vcpu[cpu];
    struct pacer *p = &g_pacer[cpu];
    if (!p->initialised) {
        uint64_t hot = g.ws_pages ? g.hot_pages * s->npages / g.ws_pages : 0;
        gl_picker_init(&p->picker, g.cfg.pattern, s->npages, hot, g.cfg.seed * 7919u + cpu);
        p->window_start = guest_now(cpu);
        p->window_writes = 0;
        p->last_now = p->window_start;
        p->initialised = 1;
    }
    uint64_t writes = 0;
    uint64_t prev = guest_now(cpu);
    for (;;) {
        uint64_t now = guest_now(cpu);
        note_stall(cpu, now - prev, now);
        prev = now;
        if (now >= deadline_ns || g.stop) {
            break;
        }
        if (!pace_allows(p, now)) {
            /* Sleep at least 1 ms (then write a burst): each hlt round trip costs ~0.1 ms. */
            uint64_t wake = pace_next_ok(p);
            if (wake < now + PACE_MIN_SLEEP_NS) {
                wake = now + PACE_MIN_SLEEP_NS;
            }
            uint64_t target = wake < deadline_ns ? wake : deadline_ns;
            guest_sleep_until(cpu, target);
            prev = guest_now(cpu);
            note_stall(cpu, prev > target ? prev - target : 0, prev); /* oversleep only */
            continue;
        }
        uint32_t n = CLOCK_EVERY;
        if (g.pages_per_s_per_vcpu) {
            n = 1; /* paced: re-check the budget after every write */
        }
        for (uint32_t i = 0; i < n; i++) {
            check_and_write(cpu, s->first_page + gl_picker_next(&p->picker));
        }
        writes += n;
        p->window_writes += n;
        if ((writes & 1023u) < n) {
            s->writes += writes;
            writes = 0;
        }
    }
    s->writes += writes;
}

void workload_inject(void) {
    /* The last page of the working set: written once more, then its previous version is
     * put back (stale, as a lost migration update would leave it), or one bit of it is
     * flipped (corrupt). The table keeps the newer seq, so the checker must notice. */
    uint64_t idx = g.ws_pages - 1;
    uint64_t *page = page_ptr(idx);
    if (g.cfg.inject == GL_INJECT_STALE) {
        static uint64_t old[GL_PAGE_WORDS];
        memcpy(old, page, GL_PAGE_SIZE);
        check_and_write(0, idx);
        memcpy(page, old, GL_PAGE_SIZE);
    } else if (g.cfg.inject == GL_INJECT_CORRUPT) {
        page[g.cfg.fill == GL_FILL_FULL ? 300 : 2] ^= 1ull << 40;
    }
}

uint64_t workload_verify_all(void) {
    uint64_t bad = 0;
    for (uint64_t idx = 0; idx < g.ws_pages; idx++) {
        uint64_t *page = page_ptr(idx);
        uint64_t got;
        enum gl_page_state st =
            gl_page_check(page, (uint64_t)(uintptr_t)page, g.expected[idx], g.cfg.fill, &got);
        if (st != GL_PAGE_OK) {
            bad++;
            report_failure(0, st == GL_PAGE_STALE ? FAIL_STALE : FAIL_CORRUPT,
                           (uint64_t)(uintptr_t)page, g.expected[idx], got);
        }
    }
    return bad;
}

void ap_main(uint32_t cpu) {
    struct vcpu_state *s = &g_vcpu[cpu];
    lapic_cpu_init();
    s->last_ns = clock_ns(cpu);
    __atomic_store_n(&s->arrived, 1u, __ATOMIC_RELEASE);
    while (g.go == 0) {
        cpu_relax();
    }
    if (g.go == 1 && cpu < g.nvcpus) {
        workload_init_slice(cpu);
        __atomic_store_n(&s->init_done, 1u, __ATOMIC_RELEASE);
        if (g.cfg.mode != GL_MODE_IDLE) {
            while (!g.start) {
                cpu_relax();
            }
            workload_run(cpu, ~0ull);
        }
        __atomic_store_n(&s->stopped, 1u, __ATOMIC_RELEASE);
    }
    guest_park(); /* the BSP ends the VM through the exit port */
}
