/* Ring-3 runtime of the test guest: mem* functions the compiler may call, serial output
 * (16550 THR at 0x3f8, no LSR polling: every port access is a VM exit), the exit port and
 * the clock (kvmclock per vCPU, or TSC at a known frequency). */
#include "guest.h"

void *memset(void *d, int c, size_t n) {
    unsigned char *p = d;
    while (n--) {
        *p++ = (unsigned char)c;
    }
    return d;
}

void *memcpy(void *d, const void *s, size_t n) {
    unsigned char *dp = d;
    const unsigned char *sp = s;
    while (n--) {
        *dp++ = *sp++;
    }
    return d;
}

void *memmove(void *d, const void *s, size_t n) {
    unsigned char *dp = d;
    const unsigned char *sp = s;
    if (dp < sp) {
        while (n--) {
            *dp++ = *sp++;
        }
    } else {
        while (n--) {
            dp[n] = sp[n];
        }
    }
    return d;
}

int memcmp(const void *a, const void *b, size_t n) {
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < n; i++) {
        if (x[i] != y[i]) {
            return x[i] < y[i] ? -1 : 1;
        }
    }
    return 0;
}

static volatile uint32_t g_print_lock;

void serial_write(const char *s, uint32_t len) {
    for (uint32_t i = 0; i < len; i++) {
        outb(COM1, (uint8_t)s[i]);
    }
}

void print_line(struct gl_line *l) {
    while (__atomic_exchange_n(&g_print_lock, 1u, __ATOMIC_ACQUIRE)) {
        cpu_relax();
    }
    /* One extra byte for '\n' is reserved in gl_line.buf. */
    l->buf[l->len] = '\n';
    serial_write(l->buf, l->len + 1);
    l->buf[l->len] = '\0';
    __atomic_store_n(&g_print_lock, 0u, __ATOMIC_RELEASE);
}

void print_str(const char *s) {
    struct gl_line l;
    gl_line_reset(&l);
    gl_line_str(&l, s);
    print_line(&l);
}

void guest_exit(uint32_t status) {
    outb(EXIT_PORT, (uint8_t)status);
    /* Without an exit device nothing stops us: halt (or spin with idle=spin). */
    guest_park();
}

static enum clock_kind g_clock;
static uint64_t g_tsc_mult;

enum clock_kind clock_setup(uint64_t tsc_khz) {
    if (g_cpu_boot[0].kvmclock_on) {
        g_clock = CLOCK_KVMCLOCK;
    } else if (tsc_khz) {
        g_tsc_mult = gl_tsc_mult(tsc_khz);
        g_clock = CLOCK_TSC;
    } else {
        g_clock = CLOCK_NONE;
    }
    return g_clock;
}

const char *clock_name(void) {
    return g_clock == CLOCK_KVMCLOCK ? "kvmclock" : g_clock == CLOCK_TSC ? "tsc" : "none";
}

uint64_t clock_ns(uint32_t cpu) {
    if (g_clock != CLOCK_KVMCLOCK || !g_cpu_boot[cpu].kvmclock_on) {
        return gl_tsc_to_ns(rdtsc_ordered(), g_tsc_mult);
    }
    const struct pvclock_info *p = &g_pvclock[cpu];
    for (;;) {
        uint32_t v = p->version;
        __asm__ volatile("" ::: "memory");
        uint64_t tsc = rdtsc_ordered();
        uint64_t ns = gl_pvclock_ns(tsc, p->tsc_timestamp, p->system_time,
                                    p->tsc_to_system_mul, p->tsc_shift);
        __asm__ volatile("" ::: "memory");
        if (!(v & 1) && v == p->version) {
            return ns;
        }
        cpu_relax();
    }
}

/* ---- idle: LAPIC one-shot timer + a ring-3 `hlt` that the #GP handler turns into a ring-0
 * `sti; hlt` (boot.S exc_13) -------------------------------------------------------------
 * The LAPIC is reached from ring 3 like any MMIO (it is mapped user-accessible). Each
 * sleep costs two MMIO exits, an interrupt and a few emulated ring-0 instructions
 * (~0.1 ms here), so callers sleep only for a millisecond or more. */
#define LAPIC_BASE 0xfee00000ull
#define LAPIC_SVR 0x0f0u
#define LAPIC_LVT_TIMER 0x320u
#define LAPIC_TIMER_INIT 0x380u
#define LAPIC_TIMER_CUR 0x390u
#define LAPIC_TIMER_DIV 0x3e0u
#define VEC_TIMER 32u
#define VEC_SPURIOUS 33u
#define LVT_MASKED 0x10000u

static uint64_t g_lapic_ticks_per_ms; /* 0 = no usable timer: sleeping spins */
static int g_idle_hlt = 1;

void lapic_cpu_init(void) {
    mmio_write32(LAPIC_BASE + LAPIC_SVR, 0x100u | VEC_SPURIOUS); /* software-enable */
    mmio_write32(LAPIC_BASE + LAPIC_TIMER_DIV, 0xbu);            /* divide by 1 */
    mmio_write32(LAPIC_BASE + LAPIC_LVT_TIMER, LVT_MASKED | VEC_TIMER);
}

uint64_t lapic_calibrate(int use_hlt) {
    g_idle_hlt = use_hlt;
    if (!use_hlt) {
        return 0;
    }
    lapic_cpu_init();
    mmio_write32(LAPIC_BASE + LAPIC_TIMER_INIT, 0xffffffffu);
    uint64_t t0 = clock_ns(0);
    while (clock_ns(0) - t0 < 5000000ull) {
        cpu_relax();
    }
    uint32_t cur = mmio_read32(LAPIC_BASE + LAPIC_TIMER_CUR);
    uint64_t dt = clock_ns(0) - t0;
    mmio_write32(LAPIC_BASE + LAPIC_TIMER_INIT, 0);
    uint64_t ticks = 0xffffffffull - cur;
    g_lapic_ticks_per_ms = cur == 0 || dt == 0 ? 0 : ticks * 1000000ull / dt;
    return g_lapic_ticks_per_ms;
}

int idle_uses_hlt(void) {
    return g_idle_hlt && g_lapic_ticks_per_ms != 0;
}

static inline void sys_idle(uint64_t op) {
    __asm__ volatile("hlt" : "+a"(op) : : "memory");
}

void guest_sleep_until(uint32_t cpu, uint64_t deadline_ns) {
    for (;;) {
        uint64_t now = clock_ns(cpu);
        if (now >= deadline_ns) {
            return;
        }
        uint64_t rem = deadline_ns - now;
        if (!idle_uses_hlt() || rem < 200000ull) {
            cpu_relax();
            continue;
        }
        uint64_t count = rem * g_lapic_ticks_per_ms / 1000000ull;
        if (count > 0xffffffffull) {
            count = 0xffffffffull;
        }
        mmio_write32(LAPIC_BASE + LAPIC_LVT_TIMER, VEC_TIMER); /* one-shot, unmasked */
        mmio_write32(LAPIC_BASE + LAPIC_TIMER_INIT, count ? (uint32_t)count : 1u);
        sys_idle(0);
    }
}

void guest_park(void) {
    if (g_idle_hlt) {
        sys_idle(1); /* never returns */
    }
    for (;;) {
        cpu_relax();
    }
}
