/* The test guest's only ring-0 C code: per-vCPU setup before the drop to ring 3 (kvmclock,
 * CPUID probing, PIC masking on the BSP) and the exception reporter. KVM-PVM emulates ring 0
 * at ~640 ns per instruction, so this stays short and avoids x87/SSE/int n (see
 * ../shared/HOST-KVM.md and docs/test-guest.md). */
#include "guest.h"

#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01u
#define KVM_FEATURE_CLOCKSOURCE2 (1u << 3)

struct pvclock_info g_pvclock[MAX_CPUS];
struct cpu_boot_info g_cpu_boot[MAX_CPUS];

static inline void cpuid(uint32_t leaf, uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d) {
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

static inline void wrmsr(uint32_t msr, uint64_t v) {
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

void ring0_cpu_setup(uint32_t cpu, uint32_t mbi, uint32_t magic) {
    struct cpu_boot_info *bi = &g_cpu_boot[cpu];
    uint32_t a, b, c, d;
    bi->magic = magic;
    bi->mbi = mbi;
    cpuid(0x40000000u, &a, &b, &c, &d);
    /* "KVMKVMKVM\0\0\0" in EBX, ECX, EDX */
    bi->kvm_signature = b == 0x4b4d564bu && c == 0x564b4d56u && d == 0x4d;
    bi->hv_max_leaf = a;
    if (bi->kvm_signature && a >= 0x40000001u) {
        cpuid(0x40000001u, &a, &b, &c, &d);
        bi->kvm_features = a;
        if (a & KVM_FEATURE_CLOCKSOURCE2) {
            wrmsr(MSR_KVM_SYSTEM_TIME_NEW, (uint64_t)(uintptr_t)&g_pvclock[cpu] | 1u);
            bi->kvmclock_on = 1;
        }
    }
    if (cpu == 0) {
        if (bi->hv_max_leaf >= 0x40000010u) {
            cpuid(0x40000010u, &a, &b, &c, &d);
            bi->tsc_khz_cpuid = a;
        }
        /* Mask both PICs: firmware (SeaBIOS under QEMU) leaves IRQ0 unmasked at vector 8. */
        outb(0x21, 0xff);
        outb(0xa1, 0xff);
    }
}

/* Frame built by exc_common in boot.S (lowest address first). */
struct exc_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rdi, rsi, rbp, rbx, rdx, rcx, rax;
    uint64_t vector, error, rip, cs, rflags, rsp, ss;
};

static void ring0_serial(const char *s, uint32_t len) {
    for (uint32_t i = 0; i < len; i++) {
        outb(COM1, (uint8_t)s[i]);
    }
}

__attribute__((noreturn)) void ring0_exception(struct exc_frame *f) {
    uint64_t cr2;
    uint32_t a, b, c, d;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    cpuid(1, &a, &b, &c, &d);
    struct gl_line l;
    gl_line_reset(&l);
    gl_line_str(&l, "\nEXCEPTION vec=");
    gl_line_u64(&l, f->vector);
    gl_line_str(&l, " err=");
    gl_line_hex(&l, f->error);
    gl_line_str(&l, " rip=");
    gl_line_hex(&l, f->rip);
    gl_line_str(&l, " cr2=");
    gl_line_hex(&l, cr2);
    gl_line_str(&l, " rsp=");
    gl_line_hex(&l, f->rsp);
    gl_line_str(&l, " cpl=");
    gl_line_u64(&l, f->cs & 3);
    gl_line_str(&l, " cpu=");
    gl_line_u64(&l, b >> 24);
    gl_line_str(&l, "\n");
    ring0_serial(l.buf, l.len);
    outb(EXIT_PORT, EXIT_EXCEPTION);
    for (;;) {
        __asm__ volatile("cli; hlt");
    }
}
