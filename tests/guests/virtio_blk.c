/* Polled virtio-mmio block driver of the test guest (see virtio_blk.h). Every register access
 * is a VM exit (~20 us here), so init touches each register once. */
#include "virtio_blk.h"

#define VIRTIO_MMIO_MAGIC_VALUE 0x74726976u /* "virt" */
#define VIRTIO_ID_BLOCK 2u

const char *vblk_err_name(enum vblk_err e) {
    switch (e) {
    case VBLK_OK:
        return "ok";
    case VBLK_NO_DEVICE:
        return "no-device";
    case VBLK_NOT_BLOCK:
        return "not-a-block-device";
    case VBLK_BAD_VERSION:
        return "unsupported-mmio-version";
    case VBLK_NO_VERSION_1:
        return "no-virtio-1.0";
    case VBLK_FEATURES_REFUSED:
        return "features-refused";
    case VBLK_QUEUE_UNAVAILABLE:
        return "queue-unavailable";
    }
    return "?";
}

int vblk_reset(struct vblk *v) {
    vblk_write(v, VIRTIO_MMIO_STATUS, 0);
    for (int i = 0; i < 1000; i++) {
        if (vblk_read(v, VIRTIO_MMIO_STATUS) == 0) {
            return 1;
        }
    }
    return 0;
}

static void setup_rings(struct vblk *v, uint8_t *mem) {
    memset(mem, 0, VBLK_MEM_PAGES * GL_PAGE_SIZE);
    v->desc = (struct vring_desc *)mem;
    v->avail = (struct vring_avail *)(mem + GL_PAGE_SIZE);
    v->used = (struct vring_used *)(mem + 2 * GL_PAGE_SIZE);
    v->hdr = (struct virtio_blk_outhdr *)(mem + 3 * GL_PAGE_SIZE);
    v->status = mem + 3 * GL_PAGE_SIZE + 64;
    v->scratch = mem + 4 * GL_PAGE_SIZE;
    v->avail_idx = 0;
    v->used_idx = 0;
}

static enum vblk_err negotiate(struct vblk *v) {
    uint32_t st = VIRTIO_STATUS_ACK;
    vblk_write(v, VIRTIO_MMIO_STATUS, st);
    st |= VIRTIO_STATUS_DRIVER;
    vblk_write(v, VIRTIO_MMIO_STATUS, st);
    vblk_write(v, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    uint32_t hi = vblk_read(v, VIRTIO_MMIO_DEVICE_FEATURES);
    if (!(hi & 1u)) { /* VIRTIO_F_VERSION_1 = bit 32 */
        vblk_write(v, VIRTIO_MMIO_STATUS, st | VIRTIO_STATUS_FAILED);
        return VBLK_NO_VERSION_1;
    }
    vblk_write(v, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    vblk_write(v, VIRTIO_MMIO_DRIVER_FEATURES, 0);
    vblk_write(v, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    vblk_write(v, VIRTIO_MMIO_DRIVER_FEATURES, 1);
    st |= VIRTIO_STATUS_FEATURES_OK;
    vblk_write(v, VIRTIO_MMIO_STATUS, st);
    if (!(vblk_read(v, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK)) {
        vblk_write(v, VIRTIO_MMIO_STATUS, st | VIRTIO_STATUS_FAILED);
        return VBLK_FEATURES_REFUSED;
    }
    return VBLK_OK;
}

static enum vblk_err setup_queue(struct vblk *v) {
    vblk_write(v, VIRTIO_MMIO_QUEUE_SEL, 0);
    uint32_t max = vblk_read(v, VIRTIO_MMIO_QUEUE_NUM_MAX);
    if (max == 0) {
        return VBLK_QUEUE_UNAVAILABLE;
    }
    v->qsize = max < VBLK_QUEUE_SIZE ? max : VBLK_QUEUE_SIZE;
    vblk_write(v, VIRTIO_MMIO_QUEUE_NUM, v->qsize);
    uint64_t d = (uint64_t)(uintptr_t)v->desc;
    uint64_t a = (uint64_t)(uintptr_t)v->avail;
    uint64_t u = (uint64_t)(uintptr_t)v->used;
    vblk_write(v, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)d);
    vblk_write(v, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(d >> 32));
    vblk_write(v, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)a);
    vblk_write(v, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, (uint32_t)(a >> 32));
    vblk_write(v, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)u);
    vblk_write(v, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (uint32_t)(u >> 32));
    vblk_write(v, VIRTIO_MMIO_QUEUE_READY, 1);
    return VBLK_OK;
}

enum vblk_err vblk_init(struct vblk *v, uint64_t base, uint64_t size, void *mem) {
    v->base = base;
    v->size = size;
    if (vblk_read(v, VIRTIO_MMIO_MAGIC) != VIRTIO_MMIO_MAGIC_VALUE) {
        return VBLK_NO_DEVICE;
    }
    if (vblk_read(v, VIRTIO_MMIO_VERSION) != 2) {
        return VBLK_BAD_VERSION;
    }
    uint32_t id = vblk_read(v, VIRTIO_MMIO_DEVICE_ID);
    if (id == 0) {
        return VBLK_NO_DEVICE;
    }
    if (id != VIRTIO_ID_BLOCK) {
        return VBLK_NOT_BLOCK;
    }
    vblk_reset(v);
    setup_rings(v, mem);
    enum vblk_err e = negotiate(v);
    if (e != VBLK_OK) {
        return e;
    }
    e = setup_queue(v);
    if (e != VBLK_OK) {
        vblk_write(v, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_FAILED);
        return e;
    }
    uint32_t st = vblk_read(v, VIRTIO_MMIO_STATUS);
    vblk_write(v, VIRTIO_MMIO_STATUS, st | VIRTIO_STATUS_DRIVER_OK);
    uint32_t gen, lo, hi;
    do {
        gen = vblk_read(v, VIRTIO_MMIO_CONFIG_GENERATION);
        lo = vblk_read(v, VIRTIO_MMIO_CONFIG);
        hi = vblk_read(v, VIRTIO_MMIO_CONFIG + 4);
    } while (gen != vblk_read(v, VIRTIO_MMIO_CONFIG_GENERATION));
    v->capacity = ((uint64_t)hi << 32) | lo;
    return VBLK_OK;
}

void vblk_submit(struct vblk *v, uint16_t head) {
    v->avail->ring[v->avail_idx % v->qsize] = head;
    full_barrier(); /* descriptors and ring entry before the index */
    v->avail_idx++;
    __atomic_store_n(&v->avail->idx, v->avail_idx, __ATOMIC_RELEASE);
    full_barrier(); /* index before the notify */
    vblk_write(v, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
}

int vblk_wait(struct vblk *v, uint64_t timeout_ns) {
    uint64_t start = clock_ns(0);
    uint32_t spins = 0;
    for (;;) {
        uint16_t idx = __atomic_load_n(&v->used->idx, __ATOMIC_ACQUIRE);
        if (idx != v->used_idx) {
            v->used_idx++;
            return 1;
        }
        if ((++spins & 63) == 0 && clock_ns(0) - start > timeout_ns) {
            return 0;
        }
        cpu_relax();
    }
}

int vblk_request(struct vblk *v, uint32_t type, uint64_t sector, void *buf, uint32_t len,
                 uint64_t timeout_ns) {
    v->hdr->type = type;
    v->hdr->reserved = 0;
    v->hdr->sector = sector;
    *v->status = 0xff;
    struct vring_desc *d = v->desc;
    d[0].addr = (uint64_t)(uintptr_t)v->hdr;
    d[0].len = sizeof(struct virtio_blk_outhdr);
    d[0].flags = VRING_DESC_F_NEXT;
    uint16_t st_idx = 1;
    if (buf && len) {
        d[0].next = 1;
        d[1].addr = (uint64_t)(uintptr_t)buf;
        d[1].len = len;
        d[1].flags = VRING_DESC_F_NEXT | (type == VIRTIO_BLK_T_OUT ? 0 : VRING_DESC_F_WRITE);
        d[1].next = 2;
        st_idx = 2;
    } else {
        d[0].next = 1;
    }
    d[st_idx].addr = (uint64_t)(uintptr_t)v->status;
    d[st_idx].len = 1;
    d[st_idx].flags = VRING_DESC_F_WRITE;
    d[st_idx].next = 0;
    vblk_submit(v, 0);
    if (!vblk_wait(v, timeout_ns)) {
        return VBLK_TIMEOUT;
    }
    v->requests++;
    return *v->status;
}
