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
    /* Without an exit device nothing stops us: spin (ring-3 hlt would fault). */
    for (;;) {
        cpu_relax();
    }
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
