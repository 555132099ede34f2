/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * apertnic device core: registers, aperture tables and their mapping cache,
 * store gathering and packing, frame encode/decode and receive checks,
 * endpoints with their event and variable-length queues, user-level
 * commands, connection messages (UDP/IPv4), the kernel's Ethernet rings,
 * remote reads and the per-endpoint DMA request/completion queues.
 *
 * The core knows nothing of QOM. It reaches guest memory, the network, the
 * interrupt controller and a timer through ApnCoreOps, so the same file builds
 * into QEMU (apertnic.c supplies the ops) and into host unit tests and fuzzers.
 */
#ifndef APERTNIC_CORE_H
#define APERTNIC_CORE_H

#include "apertnic_hw.h"

/* Largest MTU the core supports; the `mtu` property may choose less. */
#define APN_MAX_MTU            9000
#define APN_MAX_FRAME          (APN_ETH_HLEN + APN_MAX_MTU)

typedef struct ApnCoreOps {
    /* Guest memory; return 0 on success, -1 when the access failed. */
    int (*dma_read)(void *opaque, uint64_t addr, void *buf, uint64_t len);
    int (*dma_write)(void *opaque, uint64_t addr, const void *buf, uint64_t len);
    /* Hand one Ethernet frame (no FCS) to the network. */
    void (*send_frame)(void *opaque, const uint8_t *frame, size_t len);
    /* Signal MSI-X vector `vector`. */
    void (*notify)(void *opaque, unsigned vector);
    /* One-shot timer that calls apn_core_flush_timer(); re-arming replaces it. */
    void (*timer_arm)(void *opaque, uint64_t delay_ns);
    void (*timer_cancel)(void *opaque);
    /* The clock the timer runs on, in ns. */
    uint64_t (*now_ns)(void *opaque);
    /*
     * The ops below are optional (NULL: the feature degrades as noted).
     *
     * The device can take frames again (apn_core_can_receive() turned
     * true): deliver what the network queued. NULL: nothing to do.
     */
    void (*rx_ready)(void *opaque);
    /*
     * Call apn_core_bh() soon, outside the current call chain (a bottom
     * half); several calls before it runs are one call. NULL: DMA-channel
     * work beyond a doorbell's budget and GET continuations wait for the
     * next doorbell or CQ_RDPTR write.
     */
    void (*schedule)(void *opaque);
    /*
     * A second one-shot timer, on the now_ns clock, that calls
     * apn_core_read_timer(); re-arming replaces it. NULL: remote reads
     * never time out.
     */
    void (*read_timer_arm)(void *opaque, uint64_t delay_ns);
    void (*read_timer_cancel)(void *opaque);
} ApnCoreOps;

/* Sizing chosen by the device's properties; fixed after realize. */
typedef struct ApnCoreConfig {
    uint32_t num_endpoints;    /* user pages in BAR0 */
    uint32_t num_out;          /* outgoing aperture slots in BAR2 */
    uint32_t out_slot_shift;   /* log2 bytes per slot */
    uint32_t max_in;           /* most incoming table entries */
    uint32_t cache_entries;    /* mapping cache size */
    uint32_t mtu;              /* largest Ethernet payload sent */
    uint64_t flush_delay_ns;   /* a burst is sent once stores pause this long */
    uint64_t read_timeout_ns;  /* a remote read fails after this; 0 = never */
    uint8_t mac[6];
} ApnCoreConfig;

/* A cached, host-endian copy of one table entry. */
typedef struct ApnCachedEntry {
    uint32_t flags;
    uint16_t endpoint;
    /* outgoing */
    uint16_t dest_host;
    uint32_t dest_in_index;
    uint32_t size;
    /* incoming */
    uint16_t src_host;
    uint16_t src_host_mask;
    uint8_t src_mac[6];
    uint32_t first_byte;
    uint32_t narrow_start;
    uint32_t narrow_len;
    uint64_t base;
    /* both */
    uint32_t nonce;
    uint32_t seq;
} ApnCachedEntry;

/*
 * The mapping cache: `cache_entries` slots found through a hash of
 * (table, index) and kept in LRU order, so a lookup costs the same whatever
 * the number of apertures in the tables.
 */
typedef struct ApnCacheSlot {
    uint32_t key;              /* APN_INVAL_OUT for outgoing | index */
    int32_t hash_next;         /* next slot in this hash bucket, -1 ends */
    int32_t lru_prev, lru_next;
    bool in_use;
    ApnCachedEntry entry;
} ApnCacheSlot;

typedef struct ApnCache {
    uint32_t nslots;
    uint32_t bucket_mask;
    uint32_t hash_shift;       /* 32 - log2(buckets): the hash's top bits */
    ApnCacheSlot *slots;
    int32_t *buckets;
    int32_t lru_head, lru_tail; /* head: most recently used */
} ApnCache;

/* Stores gathered for one outgoing aperture, not yet sent. */
typedef struct ApnBurst {
    bool active;
    uint32_t out_index;
    uint32_t start;            /* offset in the aperture of data[0] */
    uint32_t len;
    ApnCachedEntry entry;      /* the outgoing entry when the burst began */
    uint8_t data[APN_MAX_MTU];
} ApnBurst;

/*
 * Segments closed but not yet sent (FIG 12 step 6): consecutive bursts and
 * event stores to one destination host share one frame. `data` holds the
 * encoded segments (headers and padded payloads) back to back; the Ethernet
 * header, frame header and CRC are added when the frame is sent.
 */
typedef struct ApnTxFrame {
    bool active;
    uint8_t nseg;
    uint16_t dst_host;
    uint8_t dst_mac[6];
    uint32_t len;              /* bytes used in data */
    uint8_t data[APN_MAX_MTU];
} ApnTxFrame;

/* A command register set: one per user page, and the privileged block. */
typedef struct ApnCmdRegs {
    uint32_t status;           /* APN_CMD_* of the last command */
    uint32_t out_index, out_dest_host, out_dest_in_index, out_nonce;
    uint32_t in_index, in_nonce, in_narrow_start, in_narrow_len;
    uint32_t msg_dest_host, msg_dest_port, msg_type, msg_in_index;
    uint32_t msg_nonce, msg_info;
} ApnCmdRegs;

/* DMA channel limits (docs/specs/apertnic.rst, "DMA channel"). */
#define APN_DMA_INFLIGHT       8        /* requests started, not yet retired */
#define APN_DMA_BUDGET_REQS    64       /* requests started per doorbell / bh */
#define APN_DMA_BUDGET_BYTES   (256 * 1024) /* PUT bytes per doorbell / bh */
#define APN_DMA_MAX_LEN        (1u << 24)

/* One request between RQ_HEAD (retired) and rq_next (started). */
enum {
    APN_DMA_FREE = 0,
    APN_DMA_BUSY,              /* started: PUT sending, GET reading */
    APN_DMA_DONE,              /* waiting to retire in order */
};

typedef struct ApnDmaSlot {
    uint8_t opcode;            /* APN_REQ_*, or 0 for a bad request */
    uint8_t state;             /* APN_DMA_* */
    uint16_t reserved;
    int32_t read;              /* GET: its read-table entry, -1 = none yet */
    uint32_t out_index, in_index, len, remote_offset, local_offset, cookie;
    uint32_t progress;         /* PUT: bytes sent */
    uint32_t status;           /* APN_DMA_DONE: 0 or a counter id */
    uint32_t bytes;            /* APN_DMA_DONE: bytes sent or landed */
} ApnDmaSlot;

/* One endpoint: its OS registers, its queues' pointers, its user page. */
typedef struct ApnEndpoint {
    uint32_t ctrl;             /* APN_EP_* */
    uint32_t port;             /* bound UDP port, 0 = none */
    uint32_t evq_lo, evq_hi, evq_size;
    uint32_t varq_lo, varq_hi, varq_size;
    uint32_t evq_wrptr, evq_rdptr;     /* events, free running */
    uint32_t varq_wrptr, varq_rdptr;   /* bytes, free running */
    uint32_t evq_lost, varq_lost;      /* the ctrl blocks' overflows */
    bool armed;                /* ARM written, no OOB_DATA posted since */
    bool evq_overflowing;      /* APN_EV_OVERFLOW posted for this episode */
    bool varq_overflowing;
    ApnCmdRegs cmd;
    /* DMA channel and remote read (migrated in a subsection) */
    uint32_t rq_lo, rq_hi, rq_size, cq_lo, cq_hi, cq_size;
    uint32_t rq_tail;          /* last doorbell */
    uint32_t rq_head;          /* retired */
    uint32_t rq_next;          /* started: rq_head <= rq_next <= rq_tail */
    uint32_t cq_wrptr, cq_rdptr;
    uint32_t read_landing;     /* APN_UREG_READ_LANDING */
    ApnDmaSlot dma[APN_DMA_INFLIGHT];  /* slot pos & (APN_DMA_INFLIGHT - 1) */
} ApnEndpoint;

/* Architectural state: everything here is migrated (see apertnic.c). */
typedef struct ApnCoreRegs {
    uint32_t ctrl;
    uint32_t status;
    uint32_t host_id;
    uint32_t in_table_lo, in_table_hi, in_table_count;
    uint32_t out_table_lo, out_table_hi, out_table_count;
    uint32_t osq_base_lo, osq_base_hi, osq_size, osq_wrptr, osq_rdptr;
    uint64_t host_mac[APN_HOST_MAC_ENTRIES];
    uint64_t counters[APN_CNT__COUNT];
    uint32_t ip_addr;
    uint32_t host_ip[APN_HOST_MAC_ENTRIES];
    uint32_t cmd_ep;           /* the privileged command block's endpoint */
    ApnCmdRegs cmd;            /* the privileged command block */
    /* kernel Ethernet rings (migrated in a subsection) */
    uint32_t rx_ring_lo, rx_ring_hi, rx_ring_size, rx_tail, rx_head;
    uint32_t tx_ring_lo, tx_ring_hi, tx_ring_size, tx_tail, tx_head;
    uint32_t ring_irq;
    /* event post staging registers (migrated in a subsection) */
    uint32_t ev_post_ep, ev_post_info, ev_post_data_lo, ev_post_data_hi;
    ApnEndpoint ep[APN_MAX_ENDPOINTS]; /* the first cfg.num_endpoints used */
} ApnCoreRegs;

/*
 * An outstanding remote read: a load (answered with APN_EV_READ_DONE) or a
 * DMA-channel GET (answered by retiring its request). A GET larger than
 * APN_READ_MAX_LEN is asked for in chunks, one READ_REQ at a time. The tag
 * on the wire is gen << 8 | index; READ_RESP segments must match it, come
 * from `host` and arrive in order.
 */
#define APN_READ_TAG_SHIFT     8

enum {
    APN_READ_FREE = 0,
    APN_READ_LOAD,
    APN_READ_GET,
};

typedef struct ApnRead {
    uint8_t kind;              /* APN_READ_* */
    uint8_t want_next;         /* GET: chunk done, next READ_REQ to send */
    uint16_t ep;
    uint16_t host;             /* where the READ_REQ went */
    uint16_t reserved;
    uint32_t tag;
    uint32_t out_index;        /* outgoing aperture (remote memory) */
    uint32_t in_index;         /* landing incoming aperture */
    uint32_t remote_offset;    /* of byte 0 */
    uint32_t land_offset;      /* of byte 0 */
    uint32_t len;              /* bytes in all */
    uint32_t asked;            /* bytes asked for so far */
    uint32_t done;             /* bytes landed so far, in order */
    uint32_t rq_pos;           /* GET: its request's position */
    uint64_t deadline;         /* now_ns by which asked == done, or fail */
} ApnRead;

/* Largest UDP payload a received frame can carry, plus a record header. */
#define APN_VAR_REC_MAX        (APN_MAX_MTU + 16)

typedef struct ApnCore {
    const ApnCoreOps *ops;
    void *opaque;
    ApnCoreConfig cfg;
    ApnCoreRegs regs;
    ApnCache cache;
    ApnBurst burst;
    ApnTxFrame pend;           /* migrated too */
    ApnRead reads[APN_MAX_READS];          /* migrated too */
    uint32_t read_gen;         /* tag generation, migrated */
    bool read_timer_armed;
    bool bh_pending;           /* schedule() called, apn_core_bh() not yet */
    bool read_waiters;         /* a GET waits for a free read entry */
    uint32_t bh_next_ep;       /* round robin over endpoints */
    bool timer_armed;
    uint64_t last_store_ns;    /* when the last store was gathered */
    /* Derived from regs.ep (rebuilt after migration): port -> endpoint + 1 */
    uint16_t port_map[65536];
    uint8_t frame[APN_MAX_FRAME + 64];     /* outgoing frames and messages */
    uint8_t err_frame[128];    /* APN_SEG_ERROR replies, built on receive */
    uint8_t rec[APN_VAR_REC_MAX];          /* a variable-length record */
    uint8_t resp_frame[APN_MAX_FRAME + 64]; /* READ_RESP replies, on receive */
    uint8_t read_buf[APN_READ_MAX_LEN];    /* memory a READ_REQ asks for */
    uint8_t dma_buf[APN_MAX_MTU];          /* one PUT segment's payload */
} ApnCore;

/* Lifecycle. apn_core_init validates cfg; returns 0 or -1 with *why set. */
int apn_core_init(ApnCore *core, const ApnCoreConfig *cfg,
                  const ApnCoreOps *ops, void *opaque, const char **why);
void apn_core_cleanup(ApnCore *core);
void apn_core_reset(ApnCore *core);
/*
 * After loading migrated state: drop the cache, check what was loaded,
 * rebuild the port map and resume a burst or pending frame.
 */
void apn_core_post_load(ApnCore *core);

/* BAR0 (registers and user pages) and BAR2 (outgoing apertures). */
uint64_t apn_core_reg_read(ApnCore *core, uint64_t addr, unsigned size);
void apn_core_reg_write(ApnCore *core, uint64_t addr, uint64_t val,
                        unsigned size);
uint64_t apn_core_aperture_read(ApnCore *core, uint64_t addr, unsigned size);
void apn_core_aperture_write(ApnCore *core, uint64_t addr, uint64_t val,
                             unsigned size);
uint64_t apn_core_regs_bar_size(const ApnCoreConfig *cfg);
uint64_t apn_core_aperture_bar_size(const ApnCoreConfig *cfg);

/*
 * Network side. apn_core_can_receive() is false while the RX ring is
 * enabled and has no posted buffer; apn_core_receive() then refuses the
 * frame (returns false: the caller keeps it and offers it again after
 * ops->rx_ready). Otherwise it consumes the frame and returns true.
 */
bool apn_core_can_receive(ApnCore *core);
bool apn_core_receive(ApnCore *core, const uint8_t *frame, size_t len);
void apn_core_set_link(ApnCore *core, bool up);
void apn_core_flush_timer(ApnCore *core);
/* ops->read_timer_arm expired. */
void apn_core_read_timer(ApnCore *core);
/* The bottom half ops->schedule asked for. */
void apn_core_bh(ApnCore *core);

/* Exposed for unit tests and the qtest's frame builder. */
uint32_t apn_crc32c(uint32_t crc, const void *buf, size_t len);
const char *apn_counter_name(unsigned id);

#endif /* APERTNIC_CORE_H */
