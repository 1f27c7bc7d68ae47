/* Disk exercise of the test guest (BSP only): write a 4 KiB block whose sectors hold
 * content derived from (sector, generation), read it back and compare, and remember the
 * generation per block in RAM so the end-of-run pass (and a migration) can be checked. */
#include "workload.h"

#define DISK_TIMEOUT_NS 5000000000ull /* 5 s: generous, I/O goes through the host */

void disk_setup(void *ring_mem, uint32_t *gen_table, uint64_t max_blocks, uint64_t *bufs) {
    struct disk_state *d = &g.disk;
    d->nblocks = d->dev.capacity / DISK_BLOCK_SECTORS;
    if (d->nblocks > max_blocks) {
        d->nblocks = max_blocks;
    }
    (void)ring_mem;
    d->gen = gen_table;
    for (uint64_t i = 0; i < d->nblocks; i++) {
        d->gen[i] = 0;
    }
    d->buf = bufs;
    d->rbuf = bufs + GL_PAGE_WORDS;
    gl_rng_seed(&d->rng, g.cfg.seed ^ 0xd15c);
    d->present = d->nblocks > 0;
}

static void fill_block(uint64_t *buf, uint64_t block, uint32_t gen) {
    for (uint32_t s = 0; s < DISK_BLOCK_SECTORS; s++) {
        gl_sector_fill(buf + s * GL_SECTOR_WORDS, block * DISK_BLOCK_SECTORS + s, gen);
    }
}

/* Compare a read-back block; reports and returns the number of bad sectors. */
static uint64_t check_block(const uint64_t *buf, uint64_t block, uint32_t gen) {
    uint64_t bad = 0;
    for (uint32_t s = 0; s < DISK_BLOCK_SECTORS; s++) {
        uint64_t sector = block * DISK_BLOCK_SECTORS + s;
        uint32_t got;
        if (!gl_sector_check(buf + s * GL_SECTOR_WORDS, sector, gen, &got)) {
            bad++;
            report_failure(0, FAIL_DISK, sector, gen, got);
        }
    }
    return bad;
}

static int do_io(uint32_t type, uint64_t block, uint64_t *buf) {
    struct disk_state *d = &g.disk;
    uint32_t len = buf ? DISK_BLOCK_SECTORS * GL_SECTOR_SIZE : 0;
    int st = vblk_request(&d->dev, type, block * DISK_BLOCK_SECTORS, buf, len, DISK_TIMEOUT_NS);
    if (st != VIRTIO_BLK_S_OK) {
        struct gl_line l;
        gl_line_reset(&l);
        gl_line_str(&l, "disk error type=");
        gl_line_u64(&l, type);
        gl_line_str(&l, " sector=");
        gl_line_u64(&l, block * DISK_BLOCK_SECTORS);
        gl_line_str(&l, " status=");
        gl_line_i64(&l, st);
        print_line(&l);
        d->failures++;
        return 0;
    }
    d->ops++;
    return 1;
}

void disk_exercise(uint32_t nops) {
    struct disk_state *d = &g.disk;
    if (!d->present) {
        return;
    }
    for (uint32_t i = 0; i < nops; i++) {
        uint64_t block = gl_rng_below(&d->rng, d->nblocks);
        uint32_t gen = d->gen[block] + 1;
        fill_block(d->buf, block, gen);
        if (!do_io(VIRTIO_BLK_T_OUT, block, d->buf)) {
            /* Unknown on-disk state now: stop checking this block. */
            d->gen[block] = 0;
            continue;
        }
        d->gen[block] = gen;
        memset(d->rbuf, 0, GL_PAGE_SIZE);
        if (do_io(VIRTIO_BLK_T_IN, block, d->rbuf)) {
            check_block(d->rbuf, block, gen);
        }
    }
    if (nops) {
        do_io(VIRTIO_BLK_T_FLUSH, 0, 0);
    }
}

uint64_t disk_verify_all(uint64_t *nsectors) {
    struct disk_state *d = &g.disk;
    uint64_t bad = 0;
    *nsectors = 0;
    if (!d->present) {
        return 0;
    }
    for (uint64_t b = 0; b < d->nblocks; b++) {
        if (d->gen[b] == 0) {
            continue;
        }
        memset(d->rbuf, 0, GL_PAGE_SIZE);
        if (!do_io(VIRTIO_BLK_T_IN, b, d->rbuf)) {
            bad += DISK_BLOCK_SECTORS;
            continue;
        }
        bad += check_block(d->rbuf, b, d->gen[b]);
        *nsectors += DISK_BLOCK_SECTORS;
    }
    return bad;
}
