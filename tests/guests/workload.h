/* State shared by the test guest's vCPUs while the workload runs: configuration, working set,
 * per-vCPU counters, failure reporting, disk exercise. All of it runs in ring 3. */
#ifndef FERRY_TEST_GUEST_WORKLOAD_H
#define FERRY_TEST_GUEST_WORKLOAD_H

#include "guest.h"
#include "virtio_blk.h"

#define MAX_FAIL_LINES 10u
#define MAX_BACKWARDS_LINES 10u
#define DISK_BLOCK_SECTORS 8u /* the disk exercise works in 4 KiB blocks */
#define DISK_MAX_BLOCKS (1u << 20)

enum fail_kind { FAIL_STALE, FAIL_CORRUPT, FAIL_DISK };

/* One per vCPU, written by its owner, read by the BSP. */
struct vcpu_state {
    volatile uint32_t arrived;
    volatile uint32_t init_done;
    volatile uint32_t stopped;
    volatile uint64_t writes;
    volatile uint64_t failures;
    volatile uint64_t time_backwards;
    uint64_t last_ns;
    uint64_t max_stall_ns; /* longest unrequested gap in the write loop */
    uint64_t first_page; /* slice of the working set */
    uint64_t npages;
} __attribute__((aligned(64)));

struct disk_state {
    int present;
    struct vblk dev;
    uint64_t nblocks;   /* blocks exercised (from the device start) */
    uint32_t *gen;      /* expected generation per block, 0 = never written */
    uint64_t *buf;      /* one 4 KiB block to write */
    uint64_t *rbuf;     /* one 4 KiB block read back */
    uint64_t ops;       /* requests completed */
    uint64_t failures;
    struct gl_rng rng;
};

struct guest_state {
    struct gl_config cfg;
    uint32_t nvcpus;
    uint64_t mem_mib;
    uint64_t ws_base;   /* gpa of page 0 of the working set */
    uint64_t ws_pages;
    uint64_t hot_pages; /* over the whole working set */
    uint64_t *expected; /* expected seq per working-set page */
    uint64_t pages_per_s_per_vcpu; /* 0 = unlimited */
    volatile uint32_t go;    /* 1 = init your slice, 2 = park */
    volatile uint32_t start; /* 1 = run the workload */
    volatile uint32_t stop;
    volatile uint32_t fail_lines;
    volatile uint32_t backwards_lines;
    volatile uint32_t stall_lines;
    uint64_t extra_failures; /* BSP-only failures (missing vCPUs etc.) */
    struct disk_state disk;
};

extern struct guest_state g;
extern struct vcpu_state g_vcpu[MAX_CPUS];

/* Guest time on `cpu`, checked for monotonicity (a regression is counted and printed). */
uint64_t guest_now(uint32_t cpu);
void report_failure(uint32_t cpu, enum fail_kind kind, uint64_t where, uint64_t expected,
                    uint64_t got);

/* Workload (workload.c). */
void workload_init_slice(uint32_t cpu);
/* Dirty pages on `cpu` until guest time reaches deadline_ns or g.stop is set. */
void workload_run(uint32_t cpu, uint64_t deadline_ns);
/* Verify every page of the working set; returns the number of bad pages. */
uint64_t workload_verify_all(void);
/* inject=stale|corrupt: damage the last working-set page on purpose (checker self-test). */
void workload_inject(void);
void ap_main(uint32_t cpu) __attribute__((noreturn));

/* Disk exercise (disk.c). */
void disk_setup(void *ring_mem, uint32_t *gen_table, uint64_t max_blocks, uint64_t *bufs);
void disk_exercise(uint32_t nops);
/* Read back every written block; returns the number of bad sectors, *nsectors = checked. */
uint64_t disk_verify_all(uint64_t *nsectors);

/* mode=badvirtio (badvirtio.c): returns the exit status. */
uint32_t badvirtio_run(struct vblk *v, void *ring_mem);

#endif
