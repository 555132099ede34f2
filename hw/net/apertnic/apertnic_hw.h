/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * apertnic hardware interface: PCI identity, register map, in-memory table and
 * queue formats, and the wire format. The single source of truth, included by the
 * QEMU device, its qtests, the Linux driver and libapertnic; docs/specs/apertnic.rst
 * describes the same facts in prose.
 *
 * Only fixed-width types; no compiler extensions beyond what C99 and the kernel
 * accept. Register values are little-endian (PCI); in-memory tables, queues and
 * events are little-endian; everything on the wire is big-endian.
 */
#ifndef APERTNIC_HW_H
#define APERTNIC_HW_H

#ifdef __KERNEL__
#include <linux/types.h>
#else
#include <stdint.h>
#endif

/* ---- PCI identity --------------------------------------------------------- */
/*
 * Red Hat's vendor ID for emulated devices with a device ID outside the range
 * QEMU has allocated (docs/specs/pci-ids.rst): a local, unregistered ID that
 * must be replaced before this device could be proposed upstream.
 */
#define APN_PCI_VENDOR_ID          0x1b36
#define APN_PCI_DEVICE_ID          0x11a7
#define APN_PCI_REVISION           0x01
#define APN_PCI_CLASS              0x0200 /* network, Ethernet */

#define APN_BAR_REGS               0      /* 32-bit MMIO: registers and user pages */
#define APN_BAR_APERTURES          2      /* 64-bit prefetchable MMIO: outgoing apertures */
#define APN_BAR_MSIX               4      /* MSI-X table and PBA */

#define APN_MAGIC                  0x41504e31u /* "APN1" */
#define APN_SPEC_VERSION           0x00010000u /* major 1, minor 0 */

/* ---- MSI-X vectors --------------------------------------------------------- */
#define APN_VEC_OSQ                0      /* OS event queue */
#define APN_VEC_RINGS              1      /* kernel Ethernet rings: frames in, frames sent */
#define APN_NUM_VECTORS            2

/* ---- BAR0: privileged register page (0x0000-0x0fff), OS only ---------------- */
#define APN_REG_MAGIC              0x000  /* RO: APN_MAGIC */
#define APN_REG_VERSION            0x004  /* RO: APN_SPEC_VERSION */
#define APN_REG_CAPS               0x008  /* RO: APN_CAP_* */
#define APN_REG_STATUS             0x00c  /* RO: APN_STATUS_* */
#define APN_REG_CTRL               0x010  /* RW: APN_CTRL_* */
#define APN_REG_HOST_ID            0x014  /* RW: this NIC's 16-bit cluster host address */
#define APN_REG_MAC_LO             0x018  /* RO: MAC bytes 0-3 (byte 0 in bits 7:0) */
#define APN_REG_MAC_HI             0x01c  /* RO: MAC bytes 4-5 in bits 15:0 */
#define APN_REG_MTU                0x020  /* RO: largest Ethernet payload sent */
#define APN_REG_NUM_ENDPOINTS      0x024  /* RO: user pages in BAR0 */
#define APN_REG_NUM_OUT            0x028  /* RO: outgoing aperture slots in BAR2 */
#define APN_REG_OUT_SLOT_SHIFT     0x02c  /* RO: log2 of one slot's size in BAR2 */
#define APN_REG_MAX_IN             0x030  /* RO: most incoming table entries */
#define APN_REG_CACHE_ENTRIES      0x034  /* RO: mapping cache entries */
#define APN_REG_NUM_VECTORS        0x038  /* RO: MSI-X vectors */

#define APN_REG_IN_TABLE_LO        0x040  /* RW: incoming table guest address, 64-byte aligned */
#define APN_REG_IN_TABLE_HI        0x044
#define APN_REG_IN_TABLE_COUNT     0x048  /* RW: entries in the table, <= MAX_IN */
#define APN_REG_OUT_TABLE_LO       0x050  /* RW: outgoing table guest address, 64-byte aligned */
#define APN_REG_OUT_TABLE_HI       0x054
#define APN_REG_OUT_TABLE_COUNT    0x058  /* RW: entries, <= NUM_OUT */
#define APN_REG_TABLE_INVAL        0x060  /* WO: drop cached entries, APN_INVAL_* */

#define APN_REG_OSQ_BASE_LO        0x070  /* RW: OS queue (struct apn_queue_ctrl + events) */
#define APN_REG_OSQ_BASE_HI        0x074
#define APN_REG_OSQ_SIZE           0x078  /* RW: events, power of two >= 2; 0 disables */
#define APN_REG_OSQ_WRPTR          0x07c  /* RO: NIC's write pointer (free running) */
#define APN_REG_OSQ_RDPTR          0x080  /* RW: host's read pointer (free running) */

#define APN_REG_IRQ_TEST           0x090  /* WO: raise MSI-X vector N (self-test) */
#define APN_REG_FLUSH              0x094  /* WO: send every gathered burst now */
#define APN_REG_IP_ADDR            0x098  /* RW: this NIC's IPv4 address (a.b.c.d = 0xaabbccdd) */
#define APN_REG_OUT_CLOSE          0x09c  /* WO: send a CLOSE segment through outgoing aperture
					   * N (any owner), after its gathered stores: how the
					   * OS closes a dying process's connections */

/*
 * Kernel Ethernet rings (seed 002): frames that are neither CI frames nor
 * datagrams for a bound port go to the RX ring; the TX ring sends the kernel's
 * frames. A ring is an array of `size` struct apn_ring_desc at a 64-byte
 * aligned address (no control block); pointers run free (slot =
 * ptr & (size - 1)) and the host owns [HEAD, TAIL) until the device advances
 * HEAD. Writing a size empties the ring (HEAD = TAIL = 0). A TAIL more than
 * `size` ahead of HEAD, or behind HEAD, is logged and ignored. The rings work
 * whatever CTRL.ENABLE says (which gates CI traffic and the device's own
 * datagram handling only). Vector APN_VEC_RINGS signals progress while
 * enabled in RING_IRQ: RX once per frame, TX once per TX_TAIL doorbell.
 * With the RX ring enabled and full (HEAD == TAIL), the device stops taking
 * frames from the network, CI frames included (they queue in QEMU), until
 * the host posts buffers.
 */
#define APN_REG_RX_RING_LO         0x200  /* RW: 64-byte aligned */
#define APN_REG_RX_RING_HI         0x204
#define APN_REG_RX_RING_SIZE       0x208  /* RW: descriptors, power of two in [2, 4096]; 0 = off */
#define APN_REG_RX_TAIL            0x20c  /* RW: buffers posted by the host */
#define APN_REG_RX_HEAD            0x210  /* RO: descriptors the device has filled */
#define APN_REG_TX_RING_LO         0x220  /* RW: 64-byte aligned */
#define APN_REG_TX_RING_HI         0x224
#define APN_REG_TX_RING_SIZE       0x228  /* RW: descriptors, power of two in [2, 4096]; 0 = off */
#define APN_REG_TX_TAIL            0x22c  /* RW: frames posted by the host; a write is the
					   * doorbell: the device sends [HEAD, TAIL) at once */
#define APN_REG_TX_HEAD            0x230  /* RO: descriptors the device has sent */
#define APN_REG_RING_IRQ           0x240  /* RW: bit 0 RX, bit 1 TX: raise APN_VEC_RINGS */
#define APN_RING_IRQ_RX            (1u << 0)
#define APN_RING_IRQ_TX            (1u << 1)

/*
 * Privileged command block (0x100-0x17f): the user page's command registers
 * (APN_UREG_CMD_* below, same offsets from 0x100) acting for endpoint
 * APN_REG_CMD_EP whatever its trust level: kernel connection management
 * for untrusted endpoints.
 */
#define APN_REG_CMD_BLOCK          0x100
#define APN_REG_CMD_EP             0x11c  /* RW: endpoint the block acts for */

/*
 * Event post (0x180-0x19f, OS only): the OS adds an event to endpoint
 * EV_POST_EP's event queue, in order with the device's own events and under
 * the same rules (a full queue loses it and counts an overflow; an armed
 * endpoint is woken). Write EP, INFO, DATA_LO and DATA_HI, then TYPE (bits 7:0
 * type, bits 15:8 flags), which posts it with APN_EV_F_POSTED added to the
 * flags. A post for an endpoint that is not valid or has no event queue is
 * logged and ignored (cmd_refused). Kernel connection management uses it to
 * tell an untrusted endpoint what it did with the endpoint's messages.
 */
#define APN_REG_EV_POST_EP         0x180  /* RW */
#define APN_REG_EV_POST_INFO       0x184  /* RW */
#define APN_REG_EV_POST_DATA_LO    0x188  /* RW */
#define APN_REG_EV_POST_DATA_HI    0x18c  /* RW */
#define APN_REG_EV_POST_TYPE       0x190  /* WO: posts the event */

/*
 * Per-endpoint registers (OS only), 0x40 bytes each from 0x2000: queue
 * placement, port binding and trust. APN_EP_REG(ep, APN_EPR_*).
 */
#define APN_EP_REGS_BASE           0x2000
#define APN_EP_REGS_SIZE           0x40
#define APN_EP_REG(ep, r)          (APN_EP_REGS_BASE + APN_EP_REGS_SIZE * (ep) + (r))
#define APN_EPR_CTRL               0x00   /* RW: APN_EP_* */
#define APN_EPR_PORT               0x04   /* RW: UDP port bound to the endpoint, 0 = none */
#define APN_EPR_EVQ_LO             0x08   /* RW: fixed-size event queue (ctrl block + events) */
#define APN_EPR_EVQ_HI             0x0c
#define APN_EPR_EVQ_SIZE           0x10   /* RW: events, power of two in [2, 2^16]; 0 = none */
#define APN_EPR_VARQ_LO            0x14   /* RW: variable-length queue (ctrl block + bytes) */
#define APN_EPR_VARQ_HI            0x18
#define APN_EPR_VARQ_SIZE          0x1c   /* RW: bytes, power of two in [64, 2^24]; 0 = none */
#define APN_EPR_RQ_LO              0x20   /* RW: DMA request queue (ctrl block + requests) */
#define APN_EPR_RQ_HI              0x24
#define APN_EPR_RQ_SIZE            0x28   /* RW: requests, power of two in [2, 4096]; 0 = none */
#define APN_EPR_CQ_LO              0x2c   /* RW: completion queue (ctrl block + events) */
#define APN_EPR_CQ_HI              0x30
#define APN_EPR_CQ_SIZE            0x34   /* RW: completions, power of two in [2, 2^16]; 0 = none.
					   * Writing RQ_SIZE or CQ_SIZE abandons requests in
					   * flight and empties both queues */
#define APN_EP_VALID               (1u << 0)
#define APN_EP_TRUSTED             (1u << 1)  /* may program apertures and send messages */
#define APN_EP_KERNEL_CM           (1u << 2)  /* kernel connection management (seed 004's
					       * untrusted applications): connection
					       * messages to the port go to the OS queue
					       * (same event, this endpoint's number), not
					       * to the endpoint's event queue */
#define APN_MAX_ENDPOINTS          512    /* the registers above must end below 0x10000 */

#define APN_REG_HOST_MAC_BASE      0x800  /* RW: 64-bit host table, see APN_HOST_* */
#define APN_HOST_MAC_ENTRIES       256

#define APN_CAP_CACHE              (1u << 0)  /* mapping cache present */
#define APN_CAP_GATHER             (1u << 1)  /* stores gathered into bursts */
#define APN_CAP_RINGS              (1u << 2)  /* kernel Ethernet rings */
#define APN_CAP_READ               (1u << 3)  /* remote reads (loads, READ_REQ/RESP) */
#define APN_CAP_DMA                (1u << 4)  /* DMA request and completion queues */

#define APN_STATUS_LINK_UP         (1u << 0)

#define APN_CTRL_ENABLE            (1u << 0)  /* send and receive CI frames */
#define APN_CTRL_RESET             (1u << 31) /* WO: device reset; reads as 0 */

/*
 * Host table entry i (at APN_REG_HOST_MAC_BASE + 8 * i, two 32-bit accesses or
 * one 64-bit access) routes cluster host address i to an Ethernet address.
 */
#define APN_HOST_MAC_MASK          0x0000ffffffffffffull /* MAC, byte 0 in bits 7:0 */
#define APN_HOST_VALID             (1ull << 63)

/* Host IPv4 table: cluster address i -> IPv4 address, for connection datagrams. */
#define APN_REG_HOST_IP_BASE       0x1800 /* RW: 32-bit entries, 0 = none */

/* APN_REG_TABLE_INVAL: bit 31 chooses the table, bits 30:0 the index */
#define APN_INVAL_OUT              (1u << 31)
#define APN_INVAL_INDEX_MASK       0x7fffffffu
#define APN_INVAL_ALL_INDEX        APN_INVAL_INDEX_MASK /* every entry of that table */

/* ---- BAR0: counters (0x1000-0x17ff), 64-bit, read only ------------------------ */
#define APN_COUNTERS_BASE          0x1000
#define APN_COUNTER_OFFSET(id)     (APN_COUNTERS_BASE + 8 * (id))
/* New counters are only ever appended, so ids stay stable. */

/* X-macro so device, driver and library print the same names in the same order */
#define APN_COUNTER_LIST(C) \
	C(TX_FRAMES,            "tx_frames") \
	C(TX_BYTES,             "tx_bytes") \
	C(TX_SEGMENTS,          "tx_segments") \
	C(TX_STORES,            "tx_stores") \
	C(TX_DROP_DISABLED,     "tx_drop_disabled") \
	C(TX_DROP_INVALID,      "tx_drop_invalid") \
	C(TX_DROP_BOUNDS,       "tx_drop_bounds") \
	C(TX_DROP_NO_ROUTE,     "tx_drop_no_route") \
	C(TX_DROP_DMA,          "tx_drop_dma") \
	C(RX_FRAMES,            "rx_frames") \
	C(RX_BYTES,             "rx_bytes") \
	C(RX_SEGMENTS,          "rx_segments") \
	C(RX_FILTERED,          "rx_filtered") \
	C(RX_DROP_DISABLED,     "rx_drop_disabled") \
	C(RX_DROP_MALFORMED,    "rx_drop_malformed") \
	C(RX_DROP_CRC,          "rx_drop_crc") \
	C(RX_DROP_NOT_CI,       "rx_drop_not_ci") \
	C(RX_DROP_INDEX,        "rx_drop_index") \
	C(RX_DROP_INVALID,      "rx_drop_invalid") \
	C(RX_DROP_NONCE,        "rx_drop_nonce") \
	C(RX_DROP_SEQ,          "rx_drop_seq") \
	C(RX_DROP_SRC_MAC,      "rx_drop_src_mac") \
	C(RX_DROP_SRC_HOST,     "rx_drop_src_host") \
	C(RX_DROP_BOUNDS,       "rx_drop_bounds") \
	C(RX_DROP_DMA,          "rx_drop_dma") \
	C(CACHE_HITS,           "cache_hits") \
	C(CACHE_MISSES,         "cache_misses") \
	C(CACHE_EVICTIONS,      "cache_evictions") \
	C(OSQ_EVENTS,           "osq_events") \
	C(OSQ_OVERFLOWS,        "osq_overflows") \
	C(IRQS,                 "irqs") \
	C(EVQ_EVENTS,           "evq_events") \
	C(EVQ_OVERFLOWS,        "evq_overflows") \
	C(CMD_REFUSED,          "cmd_refused") \
	C(TX_MSGS,              "tx_msgs") \
	C(RX_MSGS,              "rx_msgs") \
	C(RX_DROP_NO_PORT,      "rx_drop_no_port") \
	C(RX_DROP_BAD_IP,       "rx_drop_bad_ip") \
	C(TX_ERROR_MSGS,        "tx_error_msgs") \
	C(RX_ERROR_MSGS,        "rx_error_msgs") \
	C(RX_RING_FRAMES,       "rx_ring_frames") \
	C(TX_RING_FRAMES,       "tx_ring_frames") \
	C(RX_DROP_RING,         "rx_drop_ring") \
	C(TX_DROP_RING,         "tx_drop_ring") \
	C(TX_READ_REQS,         "tx_read_reqs") \
	C(RX_READ_REQS,         "rx_read_reqs") \
	C(TX_DROP_READ,         "tx_drop_read") \
	C(RX_DROP_READ,         "rx_drop_read") \
	C(READS_DONE,           "reads_done") \
	C(READ_TIMEOUTS,        "read_timeouts") \
	C(DMA_REQS,             "dma_reqs") \
	C(DMA_ERRORS,           "dma_errors") \
	C(DMA_BAD_REQS,         "dma_bad_reqs") \
	C(TX_CLOSES,            "tx_closes") \
	C(RX_CLOSES,            "rx_closes") \
	C(OSQ_MSGS,             "osq_msgs") \
	C(EV_POSTS,             "ev_posts")

#define APN_COUNTER_ENUM(id, name) APN_CNT_##id,
enum apn_counter_id {
	APN_COUNTER_LIST(APN_COUNTER_ENUM)
	APN_CNT__COUNT
};
#undef APN_COUNTER_ENUM
#define APN_COUNTERS_MAX           256    /* room reserved in BAR0 (0x1000-0x17ff) */

/* ---- BAR0: user pages (0x10000 + 0x1000 * endpoint) ---------------------------- */
/*
 * One 4 KiB page per endpoint, mapped into the owning process. It holds only the
 * controls a user may touch; everything that could reach another process's memory
 * is on the privileged page.
 */
#define APN_USER_PAGES_BASE        0x10000
#define APN_USER_PAGE_SIZE         0x1000
#define APN_USER_PAGE(ep)          (APN_USER_PAGES_BASE + APN_USER_PAGE_SIZE * (ep))
#define APN_UREG_FENCE             0x000  /* WO: send this endpoint's gathered stores now */
#define APN_UREG_EVQ_RDPTR         0x004  /* RW: consumer's event read pointer (RDPTR') */
#define APN_UREG_EVQ_WRPTR         0x008  /* RO: NIC's event write pointer */
#define APN_UREG_VARQ_RDPTR        0x00c  /* RW: consumer's byte read pointer */
#define APN_UREG_VARQ_WRPTR        0x010  /* RO: NIC's byte write pointer */
#define APN_UREG_ARM               0x014  /* WO: 1 = interrupt on the next event (or now, if
					   * events are pending); one-shot */
#define APN_UREG_CMD_STATUS        0x018  /* RO: result of the last command, APN_CMD_* */

/*
 * Commands (trusted endpoints; the privileged command block for others). Write
 * the arguments, then the command register; APN_UREG_CMD_STATUS says how it went.
 */
#define APN_UREG_OUT_INDEX         0x020  /* RW: an outgoing aperture this endpoint owns */
#define APN_UREG_OUT_DEST_HOST     0x024  /* RW */
#define APN_UREG_OUT_DEST_IN_INDEX 0x028  /* RW */
#define APN_UREG_OUT_NONCE         0x02c  /* RW */
#define APN_UREG_OUT_COMMIT        0x030  /* WO: write dest host, in-index, nonce into the entry */
#define APN_UREG_OUT_CLOSE         0x034  /* WO: send a CLOSE segment through outgoing aperture
					   * N, which this endpoint must own (any trust level:
					   * its destination is fixed already), after its
					   * gathered stores; APN_UREG_CMD_STATUS says how it went */
#define APN_UREG_IN_INDEX          0x040  /* RW: an incoming aperture this endpoint owns */
#define APN_UREG_IN_NONCE          0x044  /* RW */
#define APN_UREG_IN_NARROW_START   0x048  /* RW */
#define APN_UREG_IN_NARROW_LEN     0x04c  /* RW: 0 = whole extent */
#define APN_UREG_IN_COMMIT         0x050  /* WO: write nonce and narrowing into the entry */
#define APN_UREG_MSG_DEST_HOST     0x060  /* RW: connection message to <host:port> */
#define APN_UREG_MSG_DEST_PORT     0x064  /* RW */
#define APN_UREG_MSG_TYPE          0x068  /* RW: APN_MSG_* */
#define APN_UREG_MSG_IN_INDEX      0x06c  /* RW */
#define APN_UREG_MSG_NONCE         0x070  /* RW */
#define APN_UREG_MSG_INFO          0x074  /* RW: ERROR: reason; others: 0 */
#define APN_UREG_MSG_SEND          0x078  /* WO: send it from this endpoint's port */

/*
 * DMA channel (seeds 000/001): requests the application queues in memory and
 * the device works through without system calls; see struct apn_dma_req.
 * The request queue is a struct apn_queue_ctrl followed by RQ_SIZE requests;
 * there the device is the consumer: it mirrors RQ_HEAD into the control
 * block's `rdptr` (its `wrptr` is the application's and is not read). The
 * completion queue is a control block followed by CQ_SIZE struct apn_event
 * (APN_EV_PUT_DONE / APN_EV_GET_DONE); the device mirrors CQ_WRPTR into
 * `wrptr`. An armed endpoint (APN_UREG_ARM) is woken by a completion as by
 * an event.
 */
#define APN_UREG_RQ_TAIL           0x080  /* RW: doorbell: requests produced (free running);
					   * reads return the tail the device holds */
#define APN_UREG_RQ_HEAD           0x084  /* RO: requests retired (their DMA complete) */
#define APN_UREG_CQ_RDPTR          0x088  /* RW: completions consumed */
#define APN_UREG_CQ_WRPTR          0x08c  /* RO: completions written */
#define APN_UREG_READ_LANDING      0x090  /* RW: APN_READ_LANDING_VALID | the index of this
					   * endpoint's incoming aperture where loads from
					   * its outgoing apertures land (remote read);
					   * 0 = none */
#define APN_READ_LANDING_VALID     (1u << 31)
#define APN_READ_LANDING_INDEX     0x7fffffffu

#define APN_CMD_OK                 0
#define APN_CMD_EPERM              1  /* endpoint not trusted, or not valid */
#define APN_CMD_ENOENT             2  /* no such aperture, or not this endpoint's */
#define APN_CMD_EINVAL             3  /* a bad argument (narrowing, message type, port) */
#define APN_CMD_ENOROUTE           4  /* no MAC or IP for the destination host */
#define APN_CMD_EIO                5  /* a DMA to the table failed */
#define APN_CMD_EDISABLED          6  /* MSG_SEND while CTRL.ENABLE is clear */

/* ---- In-memory tables (little-endian, 64-byte entries) ------------------------ */
#define APN_TABLE_ENTRY_SIZE       64

/* flags shared by both tables */
#define APN_ENTRY_VALID            (1u << 0)
#define APN_ENTRY_SEQ              (1u << 1)  /* out: send sequence numbers; in: check them */
#define APN_ENTRY_TYPE_SHIFT       4
#define APN_ENTRY_TYPE_MASK        (0xfu << APN_ENTRY_TYPE_SHIFT)
#define APN_ENTRY_TYPE_DATA        0u         /* CI data writes into memory */
#define APN_ENTRY_TYPE_EVENT       1u         /* CI event frames onto an event queue */
/* incoming only */
#define APN_IN_CHECK_SRC_MAC       (1u << 8)
#define APN_IN_CHECK_SRC_HOST      (1u << 9)
#define APN_IN_CONTIG              (1u << 10) /* base is the memory itself, not a page list */

#define APN_PAGE_SHIFT             12
#define APN_PAGE_SIZE              (1u << APN_PAGE_SHIFT)

/*
 * Outgoing aperture: BAR2 slot i maps through entry i. The owner (endpoint) and
 * size are the OS's; destination host, in-index and nonce the user's (seed 004).
 */
struct apn_out_entry {
	uint32_t flags;          /* APN_ENTRY_* */
	uint16_t endpoint;       /* OS: owning endpoint */
	uint16_t dest_host;      /* user: cluster address of the remote NIC */
	uint32_t dest_in_index;  /* user: incoming aperture at the remote NIC */
	uint32_t nonce;          /* user: the remote aperture's nonce */
	uint32_t size;           /* OS: bytes, power of two, <= slot size */
	uint32_t seq;            /* next sequence number sent */
	uint32_t reserved[10];
};

/*
 * Incoming aperture: frames whose segment names in-index i are checked against
 * entry i and written to memory. With APN_IN_CONTIG, base is the guest address of
 * the aperture's first byte; otherwise base is the guest address of a page list
 * (one 64-bit page address per 4 KiB page) and first_byte the aperture's start
 * within the memory that list describes.
 */
struct apn_in_entry {
	uint32_t flags;          /* APN_ENTRY_* | APN_IN_* */
	uint16_t endpoint;       /* OS: owning endpoint */
	uint16_t src_host;       /* OS: expected sender (with src_host_mask) */
	uint16_t src_host_mask;  /* OS: bits of src_host compared */
	uint8_t  src_mac[6];     /* OS: expected sender MAC */
	uint32_t nonce;          /* user: frames must carry this nonce */
	uint32_t seq;            /* next expected sequence number */
	uint64_t base;           /* OS: see above */
	uint32_t size;           /* OS: extent in bytes */
	uint32_t first_byte;     /* OS: start within the page-list region */
	uint32_t narrow_start;   /* user: accepted range [start, start + len) ... */
	uint32_t narrow_len;     /* ... inside [0, size); len 0 = whole extent */
	uint32_t reserved[4];
};

/* ---- Event queues (little-endian) -------------------------------------------- */
/*
 * Every event queue in memory starts with a 64-byte control block followed by
 * `size` 16-byte events. Pointers run free; the slot is ptr & (size - 1).
 */
struct apn_queue_ctrl {
	uint32_t wrptr;          /* NIC: mirror of its write pointer */
	uint32_t rdptr;          /* consumer: its read pointer */
	uint32_t irq;            /* consumer: nonzero asks for an interrupt */
	uint32_t overflows;      /* NIC: events lost because the queue was full */
	uint32_t reserved[12];
};

struct apn_event {
	uint8_t  type;           /* APN_EV_* */
	uint8_t  flags;
	uint16_t endpoint;
	uint32_t info;           /* type-specific */
	uint64_t data;           /* type-specific */
};

/* apn_event.flags */
#define APN_EV_F_POSTED            (1u << 0)  /* posted by the OS (APN_REG_EV_POST_TYPE) */
#define APN_EV_F_APERTURE          (1u << 1)  /* APN_EV_CLOSE from a CLOSE segment: info =
					     * this NIC's incoming aperture it named,
					     * data = its nonce | src_host << 32 (no port) */

/* OS queue events */
#define APN_EV_LINK                1  /* info: APN_STATUS_* */
#define APN_EV_OOB_DATA            2  /* endpoint (armed) has new events; info 0 */
#define APN_EV_DEVICE_ERROR        3  /* info: APN_ERR_*, data: detail */
#define APN_EV_TEST                4  /* info: value written to IRQ_TEST */
#define APN_EV_OVERFLOW            5  /* endpoint's queue lost events; info: events and
				     * records it has lost in all; once per episode */
#define APN_EV_NO_PORT             6  /* datagram for an unbound port; info: port,
				     * data: source IPv4 << 16 | source port */

/*
 * Endpoint queue events. Connection messages carry the sender's address:
 * info = in-index, data = nonce | src_host << 32 | reply port << 48.
 */
#define APN_EV_CONNECT             16
#define APN_EV_ACCEPT              17
#define APN_EV_CLOSE               18
#define APN_EV_ALIVE               19
#define APN_EV_ALIVEACK            20
#define APN_EV_ERROR_MSG           21 /* a peer's ERROR message: same layout, info = reason */
#define APN_EV_EVENT               22 /* an event frame: info = offset, data = payload */
#define APN_EV_VAR                 23 /* a datagram on the variable-length queue:
				     * info = bytes, data = its record's byte
				     * position | source UDP port << 32 */
#define APN_EV_RX_DROP             24 /* a segment for this endpoint's aperture was dropped:
				     * info = counter id, data = in-index | src_host << 32 */
#define APN_EV_TX_ERROR            25 /* the remote NIC refused our segment: info = its
				     * counter id, data = out-index | remote in-index << 32 */
#define APN_EV_READ_DONE           26 /* a load through an outgoing aperture was answered
				     * (or failed): info = bytes landed, data = landing
				     * offset | status << 32; status 0 or a counter id
				     * (local, or the remote NIC's for a refusal) */
#define APN_EV_PUT_DONE            27 /* completion queue: info = status (0 or a counter id),
				     * data = cookie | bytes << 32 (bytes sent or landed) */
#define APN_EV_GET_DONE            28 /* completion queue: as PUT_DONE */
#define APN_EV_MSG_DATA(type)      ((type) - APN_MSG_CONNECT + APN_EV_CONNECT)

/*
 * DMA request (32 bytes, little-endian) on an endpoint's request queue. PUT
 * sends [local_offset, +len) of the endpoint's incoming aperture local_in_index
 * to remote_offset through outgoing aperture out_index; GET reads the remote
 * range into the local one. The device peeks at a request, works on it, and
 * retires it (advances RQ_HEAD) only when its DMA is complete; it starts a
 * request only when the completion queue has room for its completion, so the
 * completion queue cannot overflow. Requests start in order and retire in
 * order: one completion per request, in request order, a bad request
 * completing with a non-zero status (never skipped). Both apertures must be
 * VALID data apertures of this endpoint. The application must not change a
 * request before it retires.
 */
struct apn_dma_req {
	uint8_t  opcode;         /* APN_REQ_* */
	uint8_t  flags;          /* 0 (others: a bad request) */
	uint16_t reserved;
	uint32_t out_index;      /* an outgoing aperture of this endpoint: remote memory */
	uint32_t local_in_index; /* an incoming aperture of this endpoint: local memory */
	uint32_t len;            /* bytes, <= 2^24 */
	uint32_t remote_offset;
	uint32_t local_offset;
	uint32_t cookie;         /* returned in the completion */
	uint32_t reserved2;
};
#define APN_REQ_PUT                1
#define APN_REQ_GET                2

/* Kernel ring descriptor (16 bytes, little-endian). */
struct apn_ring_desc {
	uint64_t addr;           /* buffer guest address */
	uint16_t len;            /* TX: frame bytes; RX: buffer size in, frame bytes out */
	uint16_t flags;          /* APN_DESC_* */
	uint32_t reserved;
};
#define APN_DESC_DONE              (1u << 0)  /* written by the device */
#define APN_DESC_ERROR             (1u << 1)  /* with DONE: RX: frame larger than the buffer
					     * (len = its length, dropped) or the buffer
					     * not writable; TX: len outside
					     * [14, MTU + 14] or the buffer not readable
					     * (not sent) */

/*
 * Variable-length queue: records of an 8-byte header (length, source IPv4)
 * and the datagram payload, padded to 8 bytes; a record may wrap around the
 * end of the queue.
 */
struct apn_var_hdr {
	uint32_t len;            /* payload bytes */
	uint32_t src_ip;         /* sender, with the port in the APN_EV_VAR event */
};

#define APN_ERR_DMA                1  /* a table or queue DMA failed; data: address */
#define APN_ERR_TABLE              2  /* a table entry was malformed; data: index */

/* ---- Wire format (big-endian) -------------------------------------------------- */
/*
 * A CI frame: Ethernet header (EtherType APN_ETHERTYPE), struct apn_frame_hdr,
 * then `nseg` segments, each a struct apn_seg_hdr and `len` payload bytes padded
 * to 4, then a CRC32C (Castagnoli) of everything from the frame header to the
 * end of the last segment. Padding after the CRC (short frames) is ignored.
 */
#define APN_ETHERTYPE              0x88b5 /* IEEE local experimental EtherType 1 */
#define APN_WIRE_VERSION           1
#define APN_ETH_HLEN               14

struct apn_frame_hdr {
	uint8_t  version;        /* APN_WIRE_VERSION */
	uint8_t  nseg;           /* segments that follow, >= 1 */
	uint16_t src_host;       /* sender's cluster address */
	uint16_t dst_host;       /* receiver's cluster address */
	uint16_t flags;          /* reserved, 0 */
};

struct apn_seg_hdr {
	uint8_t  type;           /* APN_SEG_* */
	uint8_t  flags;          /* APN_SEG_F_* */
	uint16_t len;            /* payload bytes */
	uint32_t in_index;       /* receiver's incoming aperture */
	uint32_t nonce;
	uint32_t seq;            /* valid with APN_SEG_F_SEQ */
	uint32_t offset;         /* byte offset in the aperture */
	uint32_t out_index;      /* sender's outgoing aperture */
};

#define APN_SEG_WRITE              1
#define APN_SEG_EVENT              2  /* payload (<= 8 bytes) becomes one APN_EV_EVENT */
#define APN_SEG_READ_REQ           4  /* remote read: checked like a write of read_len
				     * bytes at `offset` of `in_index` (sequence
				     * included); payload is struct apn_read_req;
				     * out_index = the requester's outgoing aperture */
#define APN_SEG_READ_RESP          5  /* read data: checked like a write against the
				     * requester's landing aperture, except that it
				     * carries no sequence number and is not
				     * sequence-checked; out_index = tag */
#define APN_SEG_ERROR              3  /* len 0: the receiver refused a segment of
				     * out_index; offset = its counter id. With
				     * APN_SEG_F_READ it refuses a READ_REQ whose
				     * tag is in `seq` */

#define APN_SEG_CLOSE              6  /* len 0: the sender closed the connection behind
				     * out_index (APN_REG_OUT_CLOSE, APN_UREG_OUT_CLOSE).
				     * Checked like a write of 0 bytes at offset 0 of
				     * in_index (valid, nonce, source; not sequence-
				     * checked, consumes no sequence number) and posted
				     * as APN_EV_CLOSE with APN_EV_F_APERTURE to the
				     * aperture's endpoint; a refused one is answered
				     * with ERROR like a write */

#define APN_SEG_F_SEQ              (1u << 0)
#define APN_SEG_F_READ             (1u << 1)  /* ERROR: answers a READ_REQ, seq = its tag */

#define APN_FRAME_HDR_LEN          8
#define APN_SEG_HDR_LEN            24
#define APN_CRC_LEN                4
#define APN_SEG_PAD(len)           (((len) + 3u) & ~3u)
#define APN_MIN_ETH_FRAME          60

/* Payload of an APN_SEG_READ_REQ segment (big-endian). */
struct apn_read_req {
	uint32_t read_len;       /* bytes wanted, 1 to APN_READ_MAX_LEN */
	uint32_t reply_in_index; /* requester's landing aperture ... */
	uint32_t reply_nonce;    /* ... its nonce ... */
	uint32_t reply_offset;   /* ... and where in it the data goes */
	uint32_t tag;            /* requester's bookkeeping, echoed in out_index */
};
#define APN_READ_REQ_LEN           20
#define APN_READ_MAX_LEN           65536 /* most bytes one READ_REQ asks for; the answer
				       * comes as READ_RESP segments of at most an
				       * MTU, in order */
#define APN_MAX_READS              64    /* remote reads (loads and DMA GETs) a NIC has
				       * outstanding at once; a load beyond it fails
				       * (APN_EV_READ_DONE, tx_drop_read), a GET waits */

/*
 * Connection messages (seed 004): UDP/IPv4 datagrams to <host:port>. The UDP
 * payload is struct apn_msg (big-endian). A datagram to a bound port that is
 * not a message goes to that endpoint's variable-length queue; one to an
 * unbound port is reported to the OS (APN_EV_NO_PORT) and dropped, or, with
 * the RX ring enabled, goes to the RX ring (no APN_EV_NO_PORT then).
 */
#define APN_MSG_MAGIC              0x41504e4du /* "APNM" */
#define APN_MSG_CONNECT            1  /* in_index, nonce: my aperture for you */
#define APN_MSG_ACCEPT             2  /* in_index, nonce; port = the accepting port' */
#define APN_MSG_CLOSE              3
#define APN_MSG_ALIVE              4
#define APN_MSG_ALIVEACK           5
#define APN_MSG_ERROR              6  /* info = reason */

struct apn_msg {
	uint32_t magic;          /* APN_MSG_MAGIC */
	uint8_t  version;        /* APN_WIRE_VERSION */
	uint8_t  type;           /* APN_MSG_* */
	uint16_t port;           /* sender's port, to reply to */
	uint16_t src_host;       /* sender's cluster address */
	uint16_t reserved;
	uint32_t in_index;
	uint32_t nonce;
	uint32_t info;
};
#define APN_MSG_LEN                24
#define APN_IPV4_HLEN              20
#define APN_UDP_HLEN               8

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(sizeof(struct apn_out_entry) == APN_TABLE_ENTRY_SIZE, "out entry size");
_Static_assert(sizeof(struct apn_in_entry) == APN_TABLE_ENTRY_SIZE, "in entry size");
_Static_assert(sizeof(struct apn_queue_ctrl) == 64, "queue ctrl size");
_Static_assert(sizeof(struct apn_event) == 16, "event size");
_Static_assert(sizeof(struct apn_frame_hdr) == APN_FRAME_HDR_LEN, "frame header size");
_Static_assert(sizeof(struct apn_seg_hdr) == APN_SEG_HDR_LEN, "segment header size");
_Static_assert(sizeof(struct apn_msg) == APN_MSG_LEN, "message size");
_Static_assert(sizeof(struct apn_read_req) == APN_READ_REQ_LEN, "read request size");
_Static_assert(sizeof(struct apn_dma_req) == 32, "DMA request size");
_Static_assert(sizeof(struct apn_ring_desc) == 16, "ring descriptor size");
_Static_assert(sizeof(struct apn_var_hdr) == 8, "variable record header size");
#endif

#endif /* APERTNIC_HW_H */
