/* mode=badvirtio: feed the virtio-blk device malformed descriptors, rings, registers and
 * MMIO accesses, one case at a time, and check after each that the device (i.e. the VMM)
 * is still alive: after a reset a well-formed write + read-back must work. One line per case:
 *   BADVIRTIO case=<name> result=<ok|survived|dead> needs_reset=<0|1> completed=<0|1>
 *             req_status=<n|-> [note=<text>]
 * "survived" = alive but the device deviated from the virtio spec or reported success for a
 * request it cannot have carried out (see note). Only "dead" fails the run. */
#include "workload.h"

#define BV_WAIT_NS 200000000ull /* a bad request may never complete */
#define BV_GOOD_NS 5000000000ull
#define BV_GOOD_SECTOR 8u
#define BV_EXPECT_FAILURE 256 /* any non-zero status (or no completion) is right */

struct bv {
    struct vblk *v;
    uint8_t *mem;    /* VBLK_MEM_PAGES ring pages, then 2 buffer pages */
    uint64_t *wbuf;
    uint64_t *rbuf;
    uint32_t gen;
    /* outcome of the current case */
    int submitted, completed, req_status, expect_status;
    const char *note;
};

struct bv_case {
    const char *name;
    void (*run)(struct bv *b);
};

static void mmio_write8(uint64_t a, uint8_t v) {
    __asm__ volatile("movb %0, (%1)" : : "q"(v), "r"(a) : "memory");
}
static uint16_t mmio_read16(uint64_t a) {
    uint16_t v;
    __asm__ volatile("movw (%1), %0" : "=r"(v) : "r"(a) : "memory");
    return v;
}
static uint8_t mmio_read8(uint64_t a) {
    uint8_t v;
    __asm__ volatile("movb (%1), %0" : "=q"(v) : "r"(a) : "memory");
    return v;
}
static uint64_t mmio_read64(uint64_t a) {
    uint64_t v;
    __asm__ volatile("movq (%1), %0" : "=r"(v) : "r"(a) : "memory");
    return v;
}
static void mmio_write64(uint64_t a, uint64_t v) {
    __asm__ volatile("movq %0, (%1)" : : "r"(v), "r"(a) : "memory");
}

static void desc(struct vblk *v, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                 uint16_t next) {
    v->desc[i].addr = addr;
    v->desc[i].len = len;
    v->desc[i].flags = flags;
    v->desc[i].next = next;
}

static uint64_t addr_of(const volatile void *p) {
    return (uint64_t)(uintptr_t)p;
}

static void hdr(struct vblk *v, uint32_t type, uint64_t sector) {
    v->hdr->type = type;
    v->hdr->reserved = 0;
    v->hdr->sector = sector;
    *v->status = 0xff;
}

static void submit_wait(struct bv *b, uint16_t head) {
    vblk_submit(b->v, head);
    b->submitted = 1;
    b->completed = vblk_wait(b->v, BV_WAIT_NS);
    b->req_status = b->completed ? *b->v->status : -1;
}

/* Standard 3-descriptor IN request with one field replaced by the caller afterwards. */
static void std_in(struct bv *b, uint64_t sector) {
    struct vblk *v = b->v;
    hdr(v, VIRTIO_BLK_T_IN, sector);
    desc(v, 0, addr_of(v->hdr), sizeof(*v->hdr), VRING_DESC_F_NEXT, 1);
    desc(v, 1, addr_of(v->scratch), 4096, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
    desc(v, 2, addr_of(v->status), 1, VRING_DESC_F_WRITE, 0);
}

/* ---- descriptor cases ---- */
static void c_head_oob(struct bv *b) {
    std_in(b, 0);
    submit_wait(b, (uint16_t)(b->v->qsize + 3));
}
static void c_next_oob(struct bv *b) {
    std_in(b, 0);
    b->v->desc[0].next = (uint16_t)(b->v->qsize + 3);
    submit_wait(b, 0);
}
static void c_chain_loop(struct bv *b) {
    std_in(b, 0);
    b->v->desc[1].next = 0;
    submit_wait(b, 0);
}
static void c_self_loop(struct bv *b) {
    std_in(b, 0);
    b->v->desc[0].next = 0;
    submit_wait(b, 0);
}
static void c_buf_outside_ram(struct bv *b) {
    std_in(b, 0);
    b->expect_status = BV_EXPECT_FAILURE;
    b->v->desc[1].addr = 0x7fff00000000ull;
    submit_wait(b, 0);
}
static void c_buf_in_mmio_hole(struct bv *b) {
    std_in(b, 0);
    b->expect_status = BV_EXPECT_FAILURE;
    b->v->desc[1].addr = 0xfec00000ull; /* IOAPIC */
    b->v->desc[1].len = 512;
    submit_wait(b, 0);
}
static void c_buf_wraps(struct bv *b) {
    std_in(b, 0);
    b->expect_status = BV_EXPECT_FAILURE;
    b->v->desc[1].addr = 0xfffffffffffff000ull;
    b->v->desc[1].len = 0x2000;
    submit_wait(b, 0);
}
static void c_huge_len(struct bv *b) {
    std_in(b, 0);
    b->expect_status = BV_EXPECT_FAILURE;
    b->v->desc[1].len = 0xfffffe00u;
    submit_wait(b, 0);
}
static void c_hdr_short(struct bv *b) {
    std_in(b, 0);
    b->v->desc[0].len = 8;
    submit_wait(b, 0);
}
static void c_hdr_writable(struct bv *b) {
    std_in(b, 0);
    b->v->desc[0].flags |= VRING_DESC_F_WRITE;
    submit_wait(b, 0);
}
static void c_status_readonly(struct bv *b) {
    std_in(b, 0);
    b->v->desc[2].flags = 0;
    submit_wait(b, 0);
}
static void c_status_zero_len(struct bv *b) {
    std_in(b, 0);
    b->v->desc[2].len = 0;
    submit_wait(b, 0);
}
static void c_no_status(struct bv *b) {
    std_in(b, 0);
    b->v->desc[0].flags = 0;
    submit_wait(b, 0);
}
static void c_in_data_readonly(struct bv *b) {
    std_in(b, 0);
    b->expect_status = BV_EXPECT_FAILURE;
    b->v->desc[1].flags = VRING_DESC_F_NEXT;
    submit_wait(b, 0);
}
static void c_zero_len_data(struct bv *b) {
    std_in(b, 0);
    b->v->desc[1].len = 0;
    submit_wait(b, 0);
}
static void c_unaligned_len(struct bv *b) {
    std_in(b, 0);
    b->v->desc[1].len = 100;
    submit_wait(b, 0);
}
static void c_indirect(struct bv *b) {
    std_in(b, 0);
    b->v->desc[0].flags = VRING_DESC_F_INDIRECT;
    b->v->desc[0].addr = addr_of(b->v->desc) + 16;
    b->v->desc[0].len = 48;
    submit_wait(b, 0);
}
static void c_sector_past_end(struct bv *b) {
    std_in(b, b->v->capacity);
    b->expect_status = VIRTIO_BLK_S_IOERR;
    submit_wait(b, 0);
}
static void c_sector_overflow(struct bv *b) {
    std_in(b, 0xffffffffffffff00ull);
    b->expect_status = VIRTIO_BLK_S_IOERR;
    submit_wait(b, 0);
}
static void c_unknown_type(struct bv *b) {
    std_in(b, 0);
    b->v->hdr->type = 0x77;
    b->expect_status = VIRTIO_BLK_S_UNSUPP;
    submit_wait(b, 0);
}
static void c_avail_idx_jump(struct bv *b) {
    struct vblk *v = b->v;
    std_in(b, 0);
    v->avail_idx = (uint16_t)(v->avail_idx + 1000);
    submit_wait(b, 0);
}

/* ---- queue-setup cases (device partially initialised by the case) ---- */
static void to_features_ok(struct vblk *v) {
    vblk_reset(v);
    vblk_write(v, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER);
    vblk_write(v, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    vblk_write(v, VIRTIO_MMIO_DRIVER_FEATURES, 1);
    vblk_write(v, VIRTIO_MMIO_STATUS,
               VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
}
static void set_queue(struct vblk *v, uint32_t sel, uint32_t num, uint64_t d, uint64_t a,
                      uint64_t u) {
    vblk_write(v, VIRTIO_MMIO_QUEUE_SEL, sel);
    vblk_write(v, VIRTIO_MMIO_QUEUE_NUM, num);
    vblk_write(v, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)d);
    vblk_write(v, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(d >> 32));
    vblk_write(v, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)a);
    vblk_write(v, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, (uint32_t)(a >> 32));
    vblk_write(v, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)u);
    vblk_write(v, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (uint32_t)(u >> 32));
    vblk_write(v, VIRTIO_MMIO_QUEUE_READY, 1);
}
static void driver_ok(struct vblk *v) {
    uint32_t st = vblk_read(v, VIRTIO_MMIO_STATUS);
    vblk_write(v, VIRTIO_MMIO_STATUS, st | VIRTIO_STATUS_DRIVER_OK);
}
static void queue_num_case(struct bv *b, uint32_t num) {
    struct vblk *v = b->v;
    to_features_ok(v);
    memset(b->mem, 0, 3 * GL_PAGE_SIZE);
    v->avail_idx = v->used_idx = 0;
    set_queue(v, 0, num, addr_of(v->desc), addr_of(v->avail), addr_of(v->used));
    driver_ok(v);
    std_in(b, 0);
    submit_wait(b, 0);
}
static void c_queue_num_too_big(struct bv *b) {
    vblk_write(b->v, VIRTIO_MMIO_QUEUE_SEL, 0);
    uint32_t max = vblk_read(b->v, VIRTIO_MMIO_QUEUE_NUM_MAX);
    queue_num_case(b, max * 2 > 256 ? 256 : max * 2);
    if (b->completed) {
        b->note = "accepted-queue-num-above-max";
    }
}
static void c_queue_num_huge(struct bv *b) {
    queue_num_case(b, 0xffffffffu);
}
static void c_queue_num_not_pow2(struct bv *b) {
    queue_num_case(b, 3);
}
static void c_queue_num_zero(struct bv *b) {
    queue_num_case(b, 0);
}
static void c_queue_sel_oob(struct bv *b) {
    struct vblk *v = b->v;
    to_features_ok(v);
    vblk_write(v, VIRTIO_MMIO_QUEUE_SEL, 9);
    if (vblk_read(v, VIRTIO_MMIO_QUEUE_NUM_MAX) != 0) {
        b->note = "queue-9-has-nonzero-num-max";
    }
    set_queue(v, 9, 8, addr_of(v->desc), addr_of(v->avail), addr_of(v->used));
    driver_ok(v);
    vblk_write(v, VIRTIO_MMIO_QUEUE_NOTIFY, 9);
    vblk_write(v, VIRTIO_MMIO_QUEUE_NOTIFY, 0xffffffffu);
}
static void c_ring_outside_ram(struct bv *b) {
    struct vblk *v = b->v;
    to_features_ok(v);
    set_queue(v, 0, v->qsize, 0xffffffff00000000ull, 0x7fff00000000ull, 0xfffffffffffff000ull);
    driver_ok(v);
    vblk_write(v, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
}
static void c_ring_in_mmio(struct bv *b) {
    struct vblk *v = b->v;
    to_features_ok(v);
    /* used ring on the device's own registers */
    set_queue(v, 0, v->qsize, addr_of(v->desc), addr_of(v->avail), v->base);
    driver_ok(v);
    std_in(b, 0);
    submit_wait(b, 0);
}
static void c_notify_before_driver_ok(struct bv *b) {
    struct vblk *v = b->v;
    to_features_ok(v);
    memset(b->mem, 0, 3 * GL_PAGE_SIZE);
    v->avail_idx = v->used_idx = 0;
    set_queue(v, 0, v->qsize, addr_of(v->desc), addr_of(v->avail), addr_of(v->used));
    std_in(b, 0);
    submit_wait(b, 0);
}
static void c_queue_change_live(struct bv *b) {
    struct vblk *v = b->v;
    vblk_write(v, VIRTIO_MMIO_QUEUE_NUM, 2);
    vblk_write(v, VIRTIO_MMIO_QUEUE_DESC_LOW, 0);
    vblk_write(v, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
    std_in(b, 0);
    submit_wait(b, 0);
}
static void c_features_after_ok(struct bv *b) {
    vblk_write(b->v, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    vblk_write(b->v, VIRTIO_MMIO_DRIVER_FEATURES, 0xffffffffu);
    std_in(b, 0);
    submit_wait(b, 0);
}
static void c_unoffered_features(struct bv *b) {
    struct vblk *v = b->v;
    vblk_reset(v);
    vblk_write(v, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER);
    for (uint32_t sel = 0; sel < 4; sel++) {
        vblk_write(v, VIRTIO_MMIO_DRIVER_FEATURES_SEL, sel);
        vblk_write(v, VIRTIO_MMIO_DRIVER_FEATURES, 0xffffffffu);
    }
    vblk_write(v, VIRTIO_MMIO_STATUS,
               VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    if (vblk_read(v, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK) {
        b->note = "features-ok-kept-with-unoffered-bits";
    }
}

/* ---- register / MMIO cases ---- */
static void c_reserved_offsets(struct bv *b) {
    struct vblk *v = b->v;
    static const uint32_t offs[] = {0x018, 0x028, 0x03c, 0x048, 0x058, 0x068, 0x0b0, 0x0c0, 0x0f0};
    for (uint32_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        vblk_write(v, offs[i], 0xdeadbeefu);
        (void)vblk_read(v, offs[i]);
    }
}
static void c_readonly_registers(struct bv *b) {
    struct vblk *v = b->v;
    static const uint32_t offs[] = {VIRTIO_MMIO_MAGIC, VIRTIO_MMIO_VERSION,
                                    VIRTIO_MMIO_DEVICE_ID, VIRTIO_MMIO_VENDOR_ID,
                                    VIRTIO_MMIO_DEVICE_FEATURES, VIRTIO_MMIO_QUEUE_NUM_MAX,
                                    VIRTIO_MMIO_INTERRUPT_STATUS,
                                    VIRTIO_MMIO_CONFIG_GENERATION};
    for (uint32_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        vblk_write(v, offs[i], 0);
    }
    if (vblk_read(v, VIRTIO_MMIO_MAGIC) != 0x74726976u) {
        b->note = "magic-changed";
    }
}
static void c_config_write(struct bv *b) {
    struct vblk *v = b->v;
    vblk_write(v, VIRTIO_MMIO_CONFIG, 0x1234);
    vblk_write(v, VIRTIO_MMIO_CONFIG + 4, 0x5678);
    uint64_t cap = ((uint64_t)vblk_read(v, VIRTIO_MMIO_CONFIG + 4) << 32) |
                   vblk_read(v, VIRTIO_MMIO_CONFIG);
    if (cap != v->capacity) {
        b->note = "capacity-writable";
    }
}
static void c_config_out_of_range(struct bv *b) {
    struct vblk *v = b->v;
    uint32_t last = (uint32_t)(v->size < 0x1000 ? v->size : 0x1000) - 4;
    vblk_write(v, last, 0xffffffffu);
    (void)vblk_read(v, last);
    vblk_write(v, 0x1f0, 0xffffffffu);
    (void)vblk_read(v, 0x1f0);
}
static void c_beyond_region(struct bv *b) {
    /* Right after the region: unassigned MMIO, or a neighbour's read-only magic. */
    struct vblk *v = b->v;
    (void)mmio_read32(v->base + v->size);
    mmio_write32(v->base + v->size, 0);
}
static void c_narrow_access(struct bv *b) {
    struct vblk *v = b->v;
    (void)mmio_read16(v->base + VIRTIO_MMIO_MAGIC);
    (void)mmio_read8(v->base + VIRTIO_MMIO_CONFIG + 1);
    (void)mmio_read8(v->base + VIRTIO_MMIO_STATUS);
    mmio_write8(v->base + VIRTIO_MMIO_QUEUE_NOTIFY, 0);
    mmio_write8(v->base + VIRTIO_MMIO_STATUS + 1, 0xff);
}
static void c_wide_access(struct bv *b) {
    struct vblk *v = b->v;
    (void)mmio_read64(v->base + VIRTIO_MMIO_QUEUE_DESC_LOW);
    (void)mmio_read64(v->base + VIRTIO_MMIO_CONFIG);
    mmio_write64(v->base + VIRTIO_MMIO_QUEUE_DESC_LOW, 0xffffffffffffffffull);
    mmio_write64(v->base + VIRTIO_MMIO_QUEUE_NOTIFY, 0);
}
static void c_status_garbage(struct bv *b) {
    vblk_write(b->v, VIRTIO_MMIO_STATUS, 0xff);
    std_in(b, 0);
    submit_wait(b, 0);
}
static void c_interrupt_ack_garbage(struct bv *b) {
    vblk_write(b->v, VIRTIO_MMIO_INTERRUPT_ACK, 0xffffffffu);
}

static const struct bv_case kCases[] = {
    {"head_out_of_range", c_head_oob},
    {"next_out_of_range", c_next_oob},
    {"chain_loop", c_chain_loop},
    {"self_loop", c_self_loop},
    {"buffer_outside_ram", c_buf_outside_ram},
    {"buffer_in_mmio_hole", c_buf_in_mmio_hole},
    {"buffer_wraps_address_space", c_buf_wraps},
    {"huge_length", c_huge_len},
    {"header_too_short", c_hdr_short},
    {"header_device_writable", c_hdr_writable},
    {"status_read_only", c_status_readonly},
    {"status_zero_length", c_status_zero_len},
    {"no_status_descriptor", c_no_status},
    {"in_data_read_only", c_in_data_readonly},
    {"zero_length_data", c_zero_len_data},
    {"data_not_sector_multiple", c_unaligned_len},
    {"indirect_not_negotiated", c_indirect},
    {"sector_past_end", c_sector_past_end},
    {"sector_overflow", c_sector_overflow},
    {"unknown_request_type", c_unknown_type},
    {"avail_idx_jump", c_avail_idx_jump},
    {"queue_num_above_max", c_queue_num_too_big},
    {"queue_num_huge", c_queue_num_huge},
    {"queue_num_not_power_of_2", c_queue_num_not_pow2},
    {"queue_num_zero", c_queue_num_zero},
    {"queue_sel_out_of_range", c_queue_sel_oob},
    {"rings_outside_ram", c_ring_outside_ram},
    {"used_ring_on_mmio", c_ring_in_mmio},
    {"notify_before_driver_ok", c_notify_before_driver_ok},
    {"queue_changed_while_live", c_queue_change_live},
    {"features_after_features_ok", c_features_after_ok},
    {"unoffered_features", c_unoffered_features},
    {"reserved_offsets", c_reserved_offsets},
    {"read_only_registers", c_readonly_registers},
    {"config_write", c_config_write},
    {"config_out_of_range", c_config_out_of_range},
    {"beyond_mmio_region", c_beyond_region},
    {"narrow_access", c_narrow_access},
    {"wide_access", c_wide_access},
    {"status_garbage", c_status_garbage},
    {"interrupt_ack_garbage", c_interrupt_ack_garbage},
};

/* Reset, re-initialise, write one block and read it back. 1 = device works. */
static int healthy(struct bv *b) {
    struct vblk *v = b->v;
    if (vblk_init(v, v->base, v->size, b->mem) != VBLK_OK) {
        return 0;
    }
    if (v->capacity < BV_GOOD_SECTOR + 8) {
        return 0;
    }
    b->gen++;
    for (uint32_t s = 0; s < 8; s++) {
        gl_sector_fill(b->wbuf + s * GL_SECTOR_WORDS, BV_GOOD_SECTOR + s, b->gen);
    }
    if (vblk_request(v, VIRTIO_BLK_T_OUT, BV_GOOD_SECTOR, b->wbuf, 4096, BV_GOOD_NS) != 0) {
        return 0;
    }
    memset(b->rbuf, 0, 4096);
    if (vblk_request(v, VIRTIO_BLK_T_IN, BV_GOOD_SECTOR, b->rbuf, 4096, BV_GOOD_NS) != 0) {
        return 0;
    }
    for (uint32_t s = 0; s < 8; s++) {
        uint32_t got;
        if (!gl_sector_check(b->rbuf + s * GL_SECTOR_WORDS, BV_GOOD_SECTOR + s, b->gen, &got)) {
            return 0;
        }
    }
    return 1;
}

static void print_case(const char *name, const char *result, const struct bv *b,
                       uint32_t dev_status) {
    struct gl_line l;
    gl_line_reset(&l);
    gl_line_str(&l, "BADVIRTIO case=");
    gl_line_str(&l, name);
    gl_line_str(&l, " result=");
    gl_line_str(&l, result);
    gl_line_str(&l, " needs_reset=");
    gl_line_u64(&l, (dev_status & VIRTIO_STATUS_NEEDS_RESET) ? 1 : 0);
    gl_line_str(&l, " completed=");
    gl_line_u64(&l, b->completed ? 1 : 0);
    gl_line_str(&l, " req_status=");
    if (b->completed) {
        gl_line_u64(&l, (uint64_t)b->req_status);
    } else {
        gl_line_str(&l, "-");
    }
    if (b->note) {
        gl_line_str(&l, " note=");
        gl_line_str(&l, b->note);
    }
    print_line(&l);
}

uint32_t badvirtio_run(struct vblk *v, void *ring_mem) {
    struct bv b;
    memset(&b, 0, sizeof(b));
    b.v = v;
    b.mem = ring_mem;
    b.wbuf = (uint64_t *)((uint8_t *)ring_mem + VBLK_MEM_PAGES * GL_PAGE_SIZE);
    b.rbuf = b.wbuf + GL_PAGE_WORDS;
    if (!healthy(&b)) {
        print_str("BADVIRTIO error: the device does not work before any bad input");
        return EXIT_VERIFY_FAIL;
    }
    uint32_t dead = 0, survived = 0, n = sizeof(kCases) / sizeof(kCases[0]);
    for (uint32_t i = 0; i < n; i++) {
        b.submitted = b.completed = 0;
        b.req_status = -1;
        b.expect_status = -1;
        b.note = 0;
        if (i > 0 && !healthy(&b)) { /* fresh, working device for every case */
            print_str("BADVIRTIO error: device dead before the case");
            return EXIT_VERIFY_FAIL;
        }
        kCases[i].run(&b);
        uint32_t dev_status = vblk_read(v, VIRTIO_MMIO_STATUS);
        if (b.expect_status >= 0 && b.completed && !b.note) {
            if (b.req_status == 0) {
                b.note = "bad-request-reported-ok";
            } else if (b.expect_status != BV_EXPECT_FAILURE && b.req_status != b.expect_status) {
                b.note = "unexpected-status";
            }
        }
        const char *result = "ok";
        if (!healthy(&b)) {
            result = "dead";
            dead++;
        } else if (b.note) {
            result = "survived";
            survived++;
        }
        print_case(kCases[i].name, result, &b, dev_status);
        if (dead) {
            break; /* nothing later would mean anything */
        }
    }
    struct gl_line l;
    gl_line_reset(&l);
    gl_line_str(&l, "BADVIRTIO summary cases=");
    gl_line_u64(&l, n);
    gl_line_str(&l, " dead=");
    gl_line_u64(&l, dead);
    gl_line_str(&l, " deviations=");
    gl_line_u64(&l, survived);
    print_line(&l);
    return dead ? EXIT_VERIFY_FAIL : EXIT_OK;
}
