/* Shared declarations of the test guest's runtime (ring 0 setup, serial, exit port, clock,
 * memory helpers). The guest is single-image and freestanding; all of it runs in ring 3
 * except ring0.c and boot.S. Serial protocol: docs/test-guest.md. */
#ifndef FERRY_TEST_GUEST_H
#define FERRY_TEST_GUEST_H

#include <stddef.h>
#include <stdint.h>

#include "lib/guest_lib.h"

#define MAX_CPUS GL_MAX_CPUS
#define MB_BOOT_MAGIC 0x2BADB002u

#define EXIT_OK 0
#define EXIT_VERIFY_FAIL 1
#define EXIT_BAD_CMDLINE 2
#define EXIT_EXCEPTION 3

#define COM1 0x3f8
#define EXIT_PORT 0xf4

/* pvclock_vcpu_time_info (Linux arch/x86/include/asm/pvclock-abi.h), written by KVM. */
struct pvclock_info {
    volatile uint32_t version;
    uint32_t pad0;
    volatile uint64_t tsc_timestamp;
    volatile uint64_t system_time;
    volatile uint32_t tsc_to_system_mul;
    volatile int8_t tsc_shift;
    volatile uint8_t flags;
    uint8_t pad[2];
} __attribute__((aligned(64)));

/* What ring 0 learned on each vCPU before dropping to ring 3. */
struct cpu_boot_info {
    uint32_t kvm_signature; /* 1 = CPUID 0x40000000 says KVMKVMKVM */
    uint32_t kvm_features;  /* CPUID 0x40000001 EAX */
    uint32_t hv_max_leaf;
    uint32_t tsc_khz_cpuid; /* CPUID 0x40000010 EAX (0 if absent) */
    uint32_t kvmclock_on;   /* MSR_KVM_SYSTEM_TIME_NEW enabled */
    uint32_t magic;
    uint32_t mbi;
} __attribute__((aligned(64)));

extern struct pvclock_info g_pvclock[MAX_CPUS];
extern struct cpu_boot_info g_cpu_boot[MAX_CPUS];
extern char _image_start[], _edata_load[], _end[];

/* ---- port and MMIO access (ring 3 reaches ports through the TSS I/O bitmap) ---- */
static inline void outb(uint16_t port, uint8_t v) {
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port) : "memory");
}
static inline uint8_t inb(uint16_t port) {
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port) : "memory");
    return v;
}
static inline uint32_t mmio_read32(uint64_t addr) {
    uint32_t v;
    __asm__ volatile("movl (%1), %0" : "=r"(v) : "r"(addr) : "memory");
    return v;
}
static inline void mmio_write32(uint64_t addr, uint32_t v) {
    __asm__ volatile("movl %0, (%1)" : : "r"(v), "r"(addr) : "memory");
}
static inline uint64_t rdtsc_ordered(void) {
    uint32_t lo, hi;
    __asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi) : : "memory");
    return ((uint64_t)hi << 32) | lo;
}
static inline void cpu_relax(void) {
    __asm__ volatile("pause" ::: "memory");
}
static inline void full_barrier(void) {
    __asm__ volatile("mfence" ::: "memory");
}

/* ---- runtime (rt.c) ---- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);

void serial_write(const char *s, uint32_t len);
/* Print the line plus '\n' under the print lock (any vCPU, ring 3). */
void print_line(struct gl_line *l);
void print_str(const char *s);
__attribute__((noreturn)) void guest_exit(uint32_t status);

/* ---- clock (rt.c) ---- */
enum clock_kind { CLOCK_NONE = 0, CLOCK_KVMCLOCK = 1, CLOCK_TSC = 2 };
/* Choose kvmclock if every running vCPU enabled it, else TSC at tsc_khz (0 = unknown). */
enum clock_kind clock_setup(uint64_t tsc_khz);
const char *clock_name(void);
/* Raw guest time in ns on vCPU `cpu` (its own kvmclock page). */
uint64_t clock_ns(uint32_t cpu);

/* ---- idle (rt.c) ---- */
/* Per-vCPU LAPIC setup (ring 3, MMIO): enable, divide by 1, timer masked. */
void lapic_cpu_init(void);
/* BSP: measure the LAPIC timer against the clock; 0 = unusable (sleeps spin). */
uint64_t lapic_calibrate(int use_hlt);
int idle_uses_hlt(void);
/* Sleep (ring-0 hlt woken by a LAPIC one-shot) or spin until guest time deadline_ns. */
void guest_sleep_until(uint32_t cpu, uint64_t deadline_ns);
/* Halt this vCPU for good (or spin if idle=spin). */
__attribute__((noreturn)) void guest_park(void);

#endif
