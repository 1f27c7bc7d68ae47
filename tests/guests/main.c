/* Ring-3 entry of the test guest (boot.S irets here on every vCPU): the BSP reads the
 * multiboot info, parses the command line, plans memory, prints the ready line and drives
 * the run; APs go to ap_main. Serial protocol and exit codes: docs/test-guest.md. */
#include "workload.h"

#define MB_INFO_MEM (1u << 0)
#define MB_INFO_CMDLINE (1u << 2)
#define MB_INFO_MMAP (1u << 6)
#define MIB (1ull << 20)
#define FOUR_GIB (4ull << 30)
#define AP_WAIT_NS 2000000000ull

struct mb_info {
    uint32_t flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
    uint32_t syms[4];
    uint32_t mmap_length, mmap_addr;
};

struct mb_mmap_entry {
    uint32_t size;
    uint64_t base;
    uint64_t len;
    uint32_t type;
} __attribute__((packed));

struct ram_plan {
    uint64_t total_bytes; /* all usable RAM */
    uint64_t free_start;  /* first byte after the image, 2 MiB aligned */
    uint64_t free_end;    /* end of the RAM region holding the image (below 4 GiB) */
};

static uint64_t align_up(uint64_t v, uint64_t a) {
    return (v + a - 1) & ~(a - 1);
}

__attribute__((noreturn)) static void finish(uint32_t status, uint64_t writes, uint64_t failures, uint64_t backwards) {
    struct gl_line l;
    gl_line_reset(&l);
    gl_line_str(&l, "FERRY-GUEST done status=");
    gl_line_u64(&l, status);
    gl_line_str(&l, " writes=");
    gl_line_u64(&l, writes);
    gl_line_str(&l, " failures=");
    gl_line_u64(&l, failures);
    gl_line_str(&l, " time_backwards=");
    gl_line_u64(&l, backwards);
    print_line(&l);
    guest_exit(status);
}

__attribute__((noreturn)) static void fail_early(uint32_t status, const char *what, const char *detail, uint32_t dlen) {
    struct gl_line l;
    gl_line_reset(&l);
    gl_line_str(&l, what);
    if (detail) {
        gl_line_str(&l, " token='");
        gl_line_mem(&l, detail, dlen);
        gl_line_str(&l, "'");
    }
    print_line(&l);
    finish(status, 0, 0, 0);
}

static uint64_t max_u64(uint64_t a, uint64_t b) {
    return a > b ? a : b;
}

/* End of the image and of the boot structures the loader put after it (QEMU places the
 * multiboot info, command line and memory map right after bss_end). */
static uint64_t boot_data_end(const struct mb_info *mbi) {
    uint64_t end = (uint64_t)(uintptr_t)_end;
    if (!mbi) {
        return end;
    }
    uint64_t m = (uint64_t)(uintptr_t)mbi;
    if (m >= MIB) {
        end = max_u64(end, m + sizeof(*mbi));
    }
    if ((mbi->flags & MB_INFO_CMDLINE) && mbi->cmdline >= MIB) {
        const char *c = (const char *)(uintptr_t)mbi->cmdline;
        uint64_t len = 0;
        while (c[len]) {
            len++;
        }
        end = max_u64(end, mbi->cmdline + len + 1);
    }
    if ((mbi->flags & MB_INFO_MMAP) && mbi->mmap_addr >= MIB) {
        end = max_u64(end, (uint64_t)mbi->mmap_addr + mbi->mmap_length);
    }
    return end;
}

static void plan_ram(const struct mb_info *mbi, struct ram_plan *plan) {
    uint64_t image_end = (uint64_t)(uintptr_t)_end;
    plan->total_bytes = 0;
    plan->free_start = align_up(boot_data_end(mbi), 2 * MIB);
    plan->free_end = 0;
    if (mbi && (mbi->flags & MB_INFO_MMAP)) {
        uint64_t p = mbi->mmap_addr;
        uint64_t end = p + mbi->mmap_length;
        while (p + sizeof(struct mb_mmap_entry) <= end) {
            const struct mb_mmap_entry *e = (const struct mb_mmap_entry *)(uintptr_t)p;
            if (e->type == 1) {
                plan->total_bytes += e->len;
                uint64_t rend = e->base + e->len;
                if (rend > FOUR_GIB) {
                    rend = FOUR_GIB;
                }
                if (e->base <= image_end && rend > plan->free_end) {
                    plan->free_end = rend;
                }
            }
            p += e->size + 4;
        }
    } else if (mbi && (mbi->flags & MB_INFO_MEM)) {
        plan->total_bytes = ((uint64_t)mbi->mem_upper + 1024) * 1024;
        plan->free_end = MIB + (uint64_t)mbi->mem_upper * 1024;
    }
    if (plan->free_end < plan->free_start) {
        plan->free_end = plan->free_start;
    }
}

static void print_warnings(const struct gl_parse_result *res) {
    for (uint32_t i = 0; i < res->n_warn; i++) {
        struct gl_line l;
        gl_line_reset(&l);
        gl_line_str(&l, "warning: ignoring unknown option '");
        gl_line_mem(&l, res->warn[i].p, res->warn[i].len);
        gl_line_str(&l, "'");
        print_line(&l);
    }
}

static void spin_ns(uint64_t ns) {
    uint64_t t = guest_now(0);
    while (guest_now(0) - t < ns) {
        cpu_relax();
    }
}

/* Multiboot loaders (QEMU) leave APs waiting for INIT/SIPI: copy the real-mode trampoline
 * to 0x8000 and send INIT, SIPI, SIPI to all but ourselves through the xAPIC ICR, which
 * ring 3 reaches like any MMIO. Ferry starts APs at entry64 itself. */
static void start_aps_with_sipi(void) {
    extern char ap_tramp_start[], ap_tramp_end[];
    const uint64_t icr_lo = 0xfee00300ull, icr_hi = 0xfee00310ull;
    memcpy((void *)(uintptr_t)0x8000, ap_tramp_start, (size_t)(ap_tramp_end - ap_tramp_start));
    mmio_write32(icr_hi, 0);
    mmio_write32(icr_lo, 0x000c4500u); /* INIT, assert, all excluding self */
    spin_ns(10000000ull);
    for (int i = 0; i < 2; i++) {
        mmio_write32(icr_lo, 0x000c4600u | (0x8000u >> 12)); /* STARTUP, vector 0x08 */
        spin_ns(200000ull);
    }
}

static uint32_t wait_for_aps(uint32_t want, uint64_t loader_cpus) {
    if (want > 1 && loader_cpus == 0) {
        start_aps_with_sipi();
    }
    uint64_t start = guest_now(0);
    uint32_t n = 1;
    for (uint32_t cpu = 1; cpu < want; cpu++) {
        while (!__atomic_load_n(&g_vcpu[cpu].arrived, __ATOMIC_ACQUIRE)) {
            if (guest_now(0) - start > AP_WAIT_NS) {
                return n;
            }
            cpu_relax();
        }
        n++;
    }
    return n;
}

static void print_ready(void) {
    struct gl_line l;
    gl_line_reset(&l);
    gl_line_str(&l, "FERRY-GUEST ready vcpus=");
    gl_line_u64(&l, g.nvcpus);
    gl_line_str(&l, " mem=");
    gl_line_u64(&l, g.mem_mib);
    gl_line_str(&l, " wss=");
    gl_line_u64(&l, g.cfg.wss_mib);
    gl_line_str(&l, " pattern=");
    gl_line_str(&l, gl_pattern_name(g.cfg.pattern));
    gl_line_str(&l, " rate=");
    gl_line_u64(&l, g.cfg.rate_mib);
    gl_line_str(&l, " fill=");
    gl_line_str(&l, gl_fill_name(g.cfg.fill));
    gl_line_str(&l, " clock=");
    gl_line_str(&l, clock_name());
    print_line(&l);
}

/* Lay out working set, tables and device memory in the free RAM; 0 if it does not fit. */
static int place_memory(const struct ram_plan *plan, uint64_t *next) {
    uint64_t p = plan->free_start;
    g.ws_base = p;
    g.ws_pages = (uint64_t)g.cfg.wss_mib * (MIB / GL_PAGE_SIZE);
    p += (uint64_t)g.cfg.wss_mib * MIB;
    g.expected = (uint64_t *)(uintptr_t)p;
    p = align_up(p + g.ws_pages * 8, GL_PAGE_SIZE);
    *next = p;
    return p + (VBLK_MEM_PAGES + 2) * GL_PAGE_SIZE <= plan->free_end;
}

static void setup_disk(uint64_t *next, uint64_t free_end) {
    uint8_t *ring = (uint8_t *)(uintptr_t)*next;
    uint64_t *bufs = (uint64_t *)(uintptr_t)(*next + VBLK_MEM_PAGES * GL_PAGE_SIZE);
    *next += (VBLK_MEM_PAGES + 2) * GL_PAGE_SIZE;
    struct gl_line l;
    gl_line_reset(&l);
    for (uint32_t i = 0; i < g.cfg.n_virtio; i++) {
        enum vblk_err e =
            vblk_init(&g.disk.dev, g.cfg.virtio[i].base, g.cfg.virtio[i].size, ring);
        if (e == VBLK_OK) {
            uint64_t room = (free_end - *next) / sizeof(uint32_t);
            uint64_t max = room < DISK_MAX_BLOCKS ? room : DISK_MAX_BLOCKS;
            disk_setup(ring, (uint32_t *)(uintptr_t)*next, max, bufs);
            *next = align_up(*next + g.disk.nblocks * sizeof(uint32_t), GL_PAGE_SIZE);
            gl_line_str(&l, "disk ok base=");
            gl_line_hex(&l, g.cfg.virtio[i].base);
            gl_line_str(&l, " capacity_sectors=");
            gl_line_u64(&l, g.disk.dev.capacity);
            gl_line_str(&l, " queue=");
            gl_line_u64(&l, g.disk.dev.qsize);
            print_line(&l);
            return;
        }
        gl_line_str(&l, "disk skip base=");
        gl_line_hex(&l, g.cfg.virtio[i].base);
        gl_line_str(&l, " reason=");
        gl_line_str(&l, vblk_err_name(e));
        print_line(&l);
        gl_line_reset(&l);
    }
    if (g.cfg.disk == 1) {
        print_str("disk error: disk=1 but no usable virtio-blk device");
        g.extra_failures++;
    }
}

static uint64_t sum_writes(void) {
    uint64_t w = 0;
    for (uint32_t i = 0; i < g.nvcpus; i++) {
        w += g_vcpu[i].writes;
    }
    return w;
}

static void print_progress(uint64_t t_ms, uint64_t writes, uint64_t pps) {
    struct gl_line l;
    gl_line_reset(&l);
    gl_line_str(&l, "progress t_ms=");
    gl_line_u64(&l, t_ms);
    gl_line_str(&l, " writes=");
    gl_line_u64(&l, writes);
    gl_line_str(&l, " pages_per_s=");
    gl_line_u64(&l, pps);
    gl_line_str(&l, " mib_per_s=");
    gl_line_fixed(&l, pps * 10 / 256, 1);
    gl_line_str(&l, " disk_ops=");
    gl_line_u64(&l, g.disk.ops);
    print_line(&l);
}

/* mode=idle: no writes after the init pass; the BSP sleeps between progress lines. */
static void run_idle_loop(void) {
    uint64_t report_ns = (uint64_t)g.cfg.report_ms * 1000000ull;
    uint64_t t0 = guest_now(0);
    uint64_t end = g.cfg.duration_s ? t0 + (uint64_t)g.cfg.duration_s * 1000000000ull : ~0ull;
    for (uint64_t next = t0 + report_ns;; next += report_ns) {
        guest_sleep_until(0, next < end ? next : end);
        uint64_t now = guest_now(0);
        if (now >= end) {
            return;
        }
        print_progress((now - t0) / 1000000ull, sum_writes(), 0);
        if (next + report_ns <= now) {
            next = now;
        }
    }
}

static void run_bsp_loop(void) {
    uint64_t report_ns = (uint64_t)g.cfg.report_ms * 1000000ull;
    uint64_t t0 = guest_now(0);
    uint64_t end = g.cfg.duration_s ? t0 + (uint64_t)g.cfg.duration_s * 1000000000ull : ~0ull;
    uint64_t next_report = t0 + report_ns;
    uint64_t last_t = t0, last_w = sum_writes();
    for (;;) {
        workload_run(0, next_report < end ? next_report : end);
        uint64_t now = guest_now(0);
        if (now >= next_report) {
            uint64_t w = sum_writes();
            uint64_t dt_us = (now - last_t) / 1000;
            uint64_t pps = dt_us ? (w - last_w) * 1000000ull / dt_us : 0;
            print_progress((now - t0) / 1000000ull, w, pps);
            last_t = now;
            last_w = w;
            disk_exercise(g.cfg.disk_ops);
            next_report += report_ns;
            now = guest_now(0);
            if (next_report <= now) { /* behind (VM paused): skip missed reports */
                next_report = now + report_ns;
            }
        }
        if (now >= end) {
            break;
        }
    }
}

static void print_running(uint64_t t_init) {
    struct gl_line l;
    gl_line_reset(&l);
    gl_line_str(&l, "FERRY-GUEST running init_ms=");
    gl_line_u64(&l, (guest_now(0) - t_init) / 1000000ull);
    gl_line_str(&l, " pages=");
    gl_line_u64(&l, g.ws_pages);
    gl_line_str(&l, " idle=");
    gl_line_str(&l, idle_uses_hlt() ? "hlt" : "spin");
    print_line(&l);
}

/* Init pass on every vCPU, first disk operations, optional damage; then the run starts. */
static void start_workload(void) {
    g.go = 1;
    uint64_t t_init = guest_now(0);
    workload_init_slice(0);
    for (uint32_t i = 1; i < g.nvcpus; i++) {
        while (!__atomic_load_n(&g_vcpu[i].init_done, __ATOMIC_ACQUIRE)) {
            cpu_relax();
        }
    }
    disk_exercise(g.cfg.disk_ops);
    if (g.cfg.inject != GL_INJECT_NONE) {
        workload_inject();
    }
    print_running(t_init);
    __atomic_store_n(&g.start, 1u, __ATOMIC_RELEASE);
}

static void stop_aps(void) {
    __atomic_store_n(&g.stop, 1u, __ATOMIC_RELEASE);
    uint64_t t_stop = guest_now(0);
    for (uint32_t i = 1; i < g.nvcpus; i++) {
        while (!__atomic_load_n(&g_vcpu[i].stopped, __ATOMIC_ACQUIRE)) {
            if (guest_now(0) - t_stop > AP_WAIT_NS) {
                print_str("error: a vCPU did not stop");
                g.extra_failures++;
                break;
            }
            cpu_relax();
        }
    }
}

static void print_vcpu_lines(void) {
    for (uint32_t i = 0; i < g.nvcpus; i++) {
        struct gl_line l;
        gl_line_reset(&l);
        gl_line_str(&l, "vcpu cpu=");
        gl_line_u64(&l, i);
        gl_line_str(&l, " pages=");
        gl_line_u64(&l, g_vcpu[i].npages);
        gl_line_str(&l, " writes=");
        gl_line_u64(&l, g_vcpu[i].writes);
        gl_line_str(&l, " failures=");
        gl_line_u64(&l, g_vcpu[i].failures);
        gl_line_str(&l, " time_backwards=");
        gl_line_u64(&l, g_vcpu[i].time_backwards);
        gl_line_str(&l, " max_stall_us=");
        gl_line_u64(&l, g_vcpu[i].max_stall_ns / 1000);
        print_line(&l);
    }
}

/* Final pass over every page and every written disk block, summary, exit. */
static void finish_workload(void) {
    print_vcpu_lines();
    workload_verify_all(); /* failures are counted per vCPU by report_failure */
    uint64_t nsectors = 0;
    disk_verify_all(&nsectors);
    uint64_t failures = g.disk.failures + g.extra_failures, backwards = 0;
    for (uint32_t i = 0; i < MAX_CPUS; i++) {
        failures += g_vcpu[i].failures;
        backwards += g_vcpu[i].time_backwards;
    }
    struct gl_line l;
    gl_line_reset(&l);
    gl_line_str(&l, failures ? "verify FAIL total=" : "verify ok");
    if (failures) {
        gl_line_u64(&l, failures);
    }
    gl_line_str(&l, " pages=");
    gl_line_u64(&l, g.ws_pages);
    gl_line_str(&l, " disk_sectors=");
    gl_line_u64(&l, nsectors);
    print_line(&l);
    finish(failures || backwards ? EXIT_VERIFY_FAIL : EXIT_OK, sum_writes(), failures, backwards);
}

static void run_workload(void) {
    start_workload();
    if (g.cfg.mode == GL_MODE_IDLE) {
        run_idle_loop();
    } else {
        run_bsp_loop();
    }
    stop_aps();
    finish_workload();
}

/* Command line and clock; exits with status 2 if either is unusable. */
static void read_config(const struct mb_info *mbi, uint32_t magic) {
    if (magic != MB_BOOT_MAGIC) {
        fail_early(EXIT_BAD_CMDLINE, "FERRY-GUEST error: boot magic is not 0x2BADB002", 0, 0);
    }
    gl_config_defaults(&g.cfg);
    struct gl_parse_result res;
    const char *cmdline =
        (mbi->flags & MB_INFO_CMDLINE) ? (const char *)(uintptr_t)mbi->cmdline : 0;
    gl_parse_cmdline(cmdline, &g.cfg, &res);
    print_warnings(&res);
    if (!res.ok) {
        struct gl_line l;
        gl_line_reset(&l);
        gl_line_str(&l, "FERRY-GUEST bad-cmdline: ");
        gl_line_str(&l, res.error);
        fail_early(EXIT_BAD_CMDLINE, l.buf, res.bad.p, res.bad.len);
    }
    uint64_t khz = g.cfg.tsc_khz ? g.cfg.tsc_khz : g_cpu_boot[0].tsc_khz_cpuid;
    if (clock_setup(khz) == CLOCK_NONE) {
        fail_early(EXIT_BAD_CMDLINE, "FERRY-GUEST bad-cmdline: no kvmclock; pass tsc_khz=", 0, 0);
    }
}

__attribute__((noreturn)) static void run_badvirtio(uint64_t ring_addr) {
    g.go = 2;
    uint32_t st = EXIT_BAD_CMDLINE;
    if (g.cfg.n_virtio == 0) {
        print_str("BADVIRTIO error: no virtio_mmio.device= on the command line");
    } else {
        g.disk.dev.base = g.cfg.virtio[0].base;
        g.disk.dev.size = g.cfg.virtio[0].size;
        st = badvirtio_run(&g.disk.dev, (void *)(uintptr_t)ring_addr);
    }
    finish(st, 0, st == EXIT_OK ? 0 : 1, 0);
}

__attribute__((noreturn)) static void run_fault(void) {
    /* Exercise the exception path: a ring-3 write above the 4 GiB identity map. */
    g.go = 2;
    print_str("FERRY-GUEST fault: writing to 0x4000000000 (unmapped)");
    *(volatile uint64_t *)(uintptr_t)0x4000000000ull = 1;
    finish(EXIT_VERIFY_FAIL, 0, 1, 0);
}

/* Rates, hot set, slices and the disk, once the vCPU count is known. */
static void prepare_workload(uint64_t *next, uint64_t free_end) {
    uint64_t per_vcpu = (uint64_t)g.cfg.rate_mib * (MIB / GL_PAGE_SIZE) / g.nvcpus;
    g.pages_per_s_per_vcpu = g.cfg.rate_mib && per_vcpu == 0 ? 1 : per_vcpu;
    uint64_t hot = g.cfg.hot_mib ? g.cfg.hot_mib : (g.cfg.wss_mib / 8 ? g.cfg.wss_mib / 8 : 1);
    g.hot_pages = hot * (MIB / GL_PAGE_SIZE);
    for (uint32_t i = 0; i < g.nvcpus; i++) {
        g_vcpu[i].first_page = g.ws_pages * i / g.nvcpus;
        g_vcpu[i].npages = g.ws_pages * (i + 1) / g.nvcpus - g_vcpu[i].first_page;
    }
    if (g.cfg.disk != 0 && g.cfg.n_virtio > 0) {
        setup_disk(next, free_end);
    } else if (g.cfg.disk == 1) {
        print_str("disk error: disk=1 but no virtio_mmio.device= on the command line");
        g.extra_failures++;
    }
}

static void bsp_main(uint32_t mbi_addr, uint32_t magic, uint64_t loader_cpus) {
    const struct mb_info *mbi = (const struct mb_info *)(uintptr_t)mbi_addr;
    read_config(mbi, magic);
    struct ram_plan plan;
    plan_ram(mbi, &plan);
    g.mem_mib = (plan.total_bytes + MIB / 2) / MIB;
    if (g.cfg.cpus == 0) {
        g.cfg.cpus = loader_cpus >= 1 && loader_cpus <= MAX_CPUS ? (uint32_t)loader_cpus : 1;
    }
    int multi = g.cfg.mode == GL_MODE_WORKLOAD || g.cfg.mode == GL_MODE_IDLE;
    g.nvcpus = multi ? wait_for_aps(g.cfg.cpus, loader_cpus) : 1;
    uint64_t next = 0;
    int fits = place_memory(&plan, &next);
    print_ready();
    if (g.cfg.mode == GL_MODE_HELLO) {
        g.go = 2;
        print_str("FERRY-GUEST hello");
        finish(EXIT_OK, 0, 0, 0);
    }
    lapic_calibrate(!g.cfg.idle_spin); /* after the boot-time mark: takes 5 ms */
    if (g.cfg.mode == GL_MODE_FAULT) {
        run_fault();
    }
    if (!fits) {
        fail_early(EXIT_BAD_CMDLINE, "FERRY-GUEST bad-cmdline: wss does not fit in guest RAM",
                   0, 0);
    }
    if (g.nvcpus < g.cfg.cpus) {
        print_str("error: fewer vCPUs arrived than cpus= asked for");
        g.extra_failures++;
    }
    if (g.cfg.mode == GL_MODE_BADVIRTIO) {
        run_badvirtio(next);
    }
    prepare_workload(&next, plan.free_end);
    run_workload();
}

/* boot.S irets here: cpu = APIC ID, loader_cpus = RSI at entry64 (Ferry: vCPU count). */
__attribute__((noreturn)) void guest_main(uint32_t cpu, uint32_t mbi, uint32_t magic,
                                          uint64_t loader_cpus) {
    if (cpu != 0) {
        ap_main(cpu);
    }
    bsp_main(mbi, magic, loader_cpus);
    guest_exit(EXIT_OK);
}
