/* Polled ring-3 driver for a virtio-mmio (version 2) block device with one split virtqueue,
 * as the test guest uses it (virtio 1.x spec sections 2.7, 4.2.2, 5.2). One request is in
 * flight at a time; descriptors 0..2 carry header, data and status. badvirtio.c reaches into
 * the rings directly to feed the device malformed requests. */
#ifndef FERRY_TEST_GUEST_VIRTIO_BLK_H
#define FERRY_TEST_GUEST_VIRTIO_BLK_H

#include "guest.h"

/* MMIO register offsets */
#define VIRTIO_MMIO_MAGIC 0x000
#define VIRTIO_MMIO_VERSION 0x004
#define VIRTIO_MMIO_DEVICE_ID 0x008
#define VIRTIO_MMIO_VENDOR_ID 0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES 0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES 0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL 0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX 0x034
#define VIRTIO_MMIO_QUEUE_NUM 0x038
#define VIRTIO_MMIO_QUEUE_READY 0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY 0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS 0x060
#define VIRTIO_MMIO_INTERRUPT_ACK 0x064
#define VIRTIO_MMIO_STATUS 0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW 0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH 0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW 0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH 0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW 0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH 0x0a4
#define VIRTIO_MMIO_CONFIG_GENERATION 0x0fc
#define VIRTIO_MMIO_CONFIG 0x100

#define VIRTIO_STATUS_ACK 0x01
#define VIRTIO_STATUS_DRIVER 0x02
#define VIRTIO_STATUS_DRIVER_OK 0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8

#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

#define VBLK_QUEUE_SIZE 16u
#define VBLK_TIMEOUT (-1)

struct vring_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct vring_avail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[];
};

struct vring_used_elem {
    uint32_t id;
    uint32_t len;
};

struct vring_used {
    uint16_t flags;
    uint16_t idx;
    struct vring_used_elem ring[];
};

struct virtio_blk_outhdr {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};

enum vblk_err {
    VBLK_OK = 0,
    VBLK_NO_DEVICE,      /* magic wrong or device id 0 */
    VBLK_NOT_BLOCK,      /* another device type */
    VBLK_BAD_VERSION,    /* legacy (version 1) or unknown MMIO version */
    VBLK_NO_VERSION_1,   /* VIRTIO_F_VERSION_1 not offered */
    VBLK_FEATURES_REFUSED,
    VBLK_QUEUE_UNAVAILABLE,
};

struct vblk {
    uint64_t base;
    uint64_t size;
    uint32_t qsize;
    struct vring_desc *desc;
    struct vring_avail *avail;
    struct vring_used *used;
    uint16_t avail_idx;
    uint16_t used_idx;
    uint64_t capacity; /* 512-byte sectors */
    struct virtio_blk_outhdr *hdr;
    volatile uint8_t *status;
    uint8_t *scratch; /* one page for badvirtio's odd buffers */
    uint64_t requests;
};

/* Memory the driver needs: 4 pages (rings + header/status page), page-aligned. */
#define VBLK_MEM_PAGES 5u

static inline uint32_t vblk_read(const struct vblk *v, uint32_t off) {
    return mmio_read32(v->base + off);
}
static inline void vblk_write(const struct vblk *v, uint32_t off, uint32_t val) {
    mmio_write32(v->base + off, val);
}

/* Reset and initialise the device at `base`, using `mem` (VBLK_MEM_PAGES pages). */
enum vblk_err vblk_init(struct vblk *v, uint64_t base, uint64_t size, void *mem);
const char *vblk_err_name(enum vblk_err e);
/* Reset the device (status 0) and wait until it reads back 0 (bounded). 1 = ok. */
int vblk_reset(struct vblk *v);
/* Put descriptor chain `head` on the avail ring and notify queue 0. */
void vblk_submit(struct vblk *v, uint16_t head);
/* Wait for the next used entry; returns 1 if one arrived within timeout_ns. */
int vblk_wait(struct vblk *v, uint64_t timeout_ns);
/* One request: type, sector, data buffer (NULL/0 for flush). Returns the virtio-blk status
 * byte, or VBLK_TIMEOUT. */
int vblk_request(struct vblk *v, uint32_t type, uint64_t sector, void *buf, uint32_t len,
                 uint64_t timeout_ns);

#endif
