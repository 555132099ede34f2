/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Receive-path fuzzer for the apertnic core: arbitrary bytes are handed to
 * apn_core_receive() of a NIC with a few incoming apertures (contiguous,
 * page list, sequenced and narrowed, source-checked, invalid, unreachable,
 * event apertures), outgoing entries that ERROR segments can name, endpoints
 * with event and variable-length queues, an IPv4 address and bound ports.
 *
 * Oracle: besides ASan/UBSan,
 * - every DMA write lands inside an aperture's memory, the sequenced entry's
 *   seq field, the OS queue or a configured endpoint queue;
 * - the receive path transmits nothing but APN_SEG_ERROR frames: one
 *   segment, len 0, nonce/seq/flags 0, to the source MAC and source host of
 *   the frame received, in answer to one of its WRITE, EVENT or CLOSE segments
 *   (same in_index and out_index, in order; never to an ERROR segment),
 *   with a refusal counter id as offset that moved at least as often;
 *   and, for remote reads, the answers to its READ_REQ segments (READ_RESP
 *   segments, or an ERROR with APN_SEG_F_READ and the tag in seq).
 *
 * Built with -fsanitize=fuzzer (ninja fuzz_rx_libfuzzer) this is a libFuzzer target. Built
 * without, main() replays files:
 *
 *   fuzz_rx [-s] [-m N] FILE...   replay each file, then N deterministic
 *                                 mutations of it; -s: each file as given
 *                                 must be delivered with no drop
 *   fuzz_rx -g DIR                write the seed corpus into DIR
 */
#include "qemu/osdep.h"
#include "apertnic_core.h"
#include "fake.h"
#include "apertnic_bytes.h"

#define FZ_MEM          (1u << 20)
#define FZ_OSQ          0x1000u
#define FZ_OSQ_EVENTS   16u
#define FZ_IN_TABLE     0x2000u
#define FZ_IN_COUNT     8u
#define FZ_OUT_TABLE    0x2800u
#define FZ_OUT_COUNT    4u
#define FZ_PAGE_LIST    0x3000u
#define FZ_EVQ0         0x4000u
#define FZ_EVQ1         0x4400u
#define FZ_EVQ_EVENTS   4u      /* small: overflow episodes are common */
#define FZ_VARQ1        0x5000u
#define FZ_VARQ_BYTES   256u
#define FZ_BUF          0x10000u
#define FZ_PAGE0        0x20000u
#define FZ_PAGE1        0x30000u
#define FZ_PAGE2        0x28000u
#define FZ_HOST         7
#define FZ_SRC_HOST     3
#define FZ_IP           0x0a000007u     /* 10.0.0.7 */
#define FZ_SRC_IP       0x0a000003u
#define FZ_PORT         4000            /* endpoint 1: both queues */
#define FZ_PORT_NOQ     4001            /* endpoint 2: valid, no queues */
#define FZ_PORT_INVALID 4002            /* endpoint 3: not valid */

static const uint8_t fz_mac[6] = { 0x52, 0x54, 0x00, 0xf0, 0x00, 0x07 };
static const uint8_t fz_src_mac[6] = { 0x52, 0x54, 0x00, 0xf0, 0x00, 0x03 };

/* The incoming apertures: index, and what the fuzzer may write. */
enum {
    AP_CONTIG,          /* 4 KiB at FZ_BUF; endpoint 0 */
    AP_PAGES,           /* 8 KiB through a 3-page list, first_byte 0x800; ep 1 */
    AP_SEQ,             /* sequenced, narrowed, source host checked; ep 0 */
    AP_SRC_MAC,         /* source MAC checked; endpoint 1 */
    AP_INVALID,
    AP_UNREACHABLE,     /* page list outside guest memory; endpoint 3 */
    AP_EVENT,           /* event aperture of endpoint 1 (has a queue) */
    AP_EVENT_NOQ,       /* event aperture of endpoint 2 (no queue) */
};

static const uint32_t fz_nonce[FZ_IN_COUNT] = {
    0x11111111, 0x22222222, 0x33333333, 0x44444444, 0x55555555, 0x66666666,
    0x77777777, 0x88888888,
};

typedef struct Window {
    uint64_t addr, len;
} Window;

static const Window fz_windows[] = {
    { FZ_BUF, 0x1000 },                                 /* AP_CONTIG */
    { FZ_PAGE0 + 0x800, 0x800 },                        /* AP_PAGES */
    { FZ_PAGE1, 0x1000 },
    { FZ_PAGE2, 0x800 },
    { FZ_BUF + 0x1000 + 0x100, 0x200 },                 /* AP_SEQ, narrowed */
    { FZ_IN_TABLE + AP_SEQ * 64 + offsetof(struct apn_in_entry, seq), 4 },
    { FZ_BUF + 0x2000, 0x1000 },                        /* AP_SRC_MAC */
    { FZ_OSQ, 64 + 16 * FZ_OSQ_EVENTS },                /* OS queue */
    { FZ_EVQ0, 64 + 16 * FZ_EVQ_EVENTS },               /* endpoint queues */
    { FZ_EVQ1, 64 + 16 * FZ_EVQ_EVENTS },
    { FZ_VARQ1, 64 + FZ_VARQ_BYTES },
};

static ApnCore *fz_core;
static Fake fz_fake;
static uint8_t fz_tables[0x2000];  /* pristine FZ_IN_TABLE .. FZ_PAGE_LIST+4K */

static void fz_fail(const char *why)
{
    fprintf(stderr, "fuzz_rx: %s\n", why);
    abort();
}

static void fz_check_write(Fake *f, uint64_t addr, uint64_t len)
{
    (void)f;
    for (size_t i = 0; i < ARRAY_SIZE(fz_windows); i++) {
        const Window *w = &fz_windows[i];
        if (addr >= w->addr && len <= w->len && addr - w->addr <= w->len - len) {
            return;
        }
    }
    fprintf(stderr, "fuzz_rx: DMA write of %" PRIu64 " bytes at 0x%" PRIx64
            " outside every aperture and queue\n", len, addr);
    abort();
}

static uint8_t *fz_in(uint32_t idx)
{
    return fz_fake.mem + FZ_IN_TABLE + idx * APN_TABLE_ENTRY_SIZE;
}

static void fz_put_in(uint32_t idx, uint32_t flags, uint16_t ep, uint64_t base,
                      uint32_t size, uint32_t first_byte)
{
    uint8_t *p = fz_in(idx);

    memset(p, 0, APN_TABLE_ENTRY_SIZE);
    put_le32(p + offsetof(struct apn_in_entry, flags), flags);
    put_le16(p + offsetof(struct apn_in_entry, endpoint), ep);
    put_le32(p + offsetof(struct apn_in_entry, nonce), fz_nonce[idx]);
    put_le64(p + offsetof(struct apn_in_entry, base), base);
    put_le32(p + offsetof(struct apn_in_entry, size), size);
    put_le32(p + offsetof(struct apn_in_entry, first_byte), first_byte);
}

static void fz_put_out(uint32_t idx, uint32_t flags, uint16_t ep,
                       uint16_t dest_host, uint32_t dest_in_index)
{
    uint8_t *p = fz_fake.mem + FZ_OUT_TABLE + idx * APN_TABLE_ENTRY_SIZE;

    memset(p, 0, APN_TABLE_ENTRY_SIZE);
    put_le32(p + offsetof(struct apn_out_entry, flags), flags);
    put_le16(p + offsetof(struct apn_out_entry, endpoint), ep);
    put_le16(p + offsetof(struct apn_out_entry, dest_host), dest_host);
    put_le32(p + offsetof(struct apn_out_entry, dest_in_index), dest_in_index);
    put_le32(p + offsetof(struct apn_out_entry, size), 0x1000);
}

static void fz_reg(uint32_t addr, uint32_t val)
{
    apn_core_reg_write(fz_core, addr, val, 4);
}

static void fz_ep(uint32_t ep, uint32_t ctrl, uint32_t port, uint32_t evq,
                  uint32_t evq_size, uint32_t varq, uint32_t varq_size)
{
    fz_reg(APN_EP_REG(ep, APN_EPR_PORT), port);
    fz_reg(APN_EP_REG(ep, APN_EPR_EVQ_LO), evq);
    fz_reg(APN_EP_REG(ep, APN_EPR_EVQ_SIZE), evq_size);
    fz_reg(APN_EP_REG(ep, APN_EPR_VARQ_LO), varq);
    fz_reg(APN_EP_REG(ep, APN_EPR_VARQ_SIZE), varq_size);
    fz_reg(APN_EP_REG(ep, APN_EPR_CTRL), ctrl);
}

static void fz_setup(void)
{
    ApnCoreConfig cfg = {
        .num_endpoints = 4,
        .num_out = 16,
        .out_slot_shift = 16,
        .max_in = 64,
        .cache_entries = 2,     /* evictions on almost every frame */
        .mtu = 1500,
        .flush_delay_ns = 1000,
    };
    const char *why = NULL;
    uint8_t *p;

    memcpy(cfg.mac, fz_mac, 6);
    fake_init(&fz_fake, FZ_MEM);
    fz_core = calloc(1, sizeof(*fz_core));
    if (!fz_core || apn_core_init(fz_core, &cfg, &fake_ops, &fz_fake, &why)) {
        fprintf(stderr, "fuzz_rx: apn_core_init: %s\n", why ? why : "ENOMEM");
        abort();
    }

    fz_put_in(AP_CONTIG, APN_ENTRY_VALID | APN_IN_CONTIG, 0, FZ_BUF, 0x1000,
              0);
    fz_put_in(AP_PAGES, APN_ENTRY_VALID, 1, FZ_PAGE_LIST, 0x2000, 0x800);
    put_le64(fz_fake.mem + FZ_PAGE_LIST, FZ_PAGE0);
    put_le64(fz_fake.mem + FZ_PAGE_LIST + 8, FZ_PAGE1);
    put_le64(fz_fake.mem + FZ_PAGE_LIST + 16, FZ_PAGE2);
    fz_put_in(AP_SEQ, APN_ENTRY_VALID | APN_IN_CONTIG | APN_ENTRY_SEQ |
              APN_IN_CHECK_SRC_HOST, 0, FZ_BUF + 0x1000, 0x1000, 0);
    p = fz_in(AP_SEQ);
    put_le16(p + offsetof(struct apn_in_entry, src_host), FZ_SRC_HOST);
    put_le16(p + offsetof(struct apn_in_entry, src_host_mask), 0xffff);
    put_le32(p + offsetof(struct apn_in_entry, narrow_start), 0x100);
    put_le32(p + offsetof(struct apn_in_entry, narrow_len), 0x200);
    fz_put_in(AP_SRC_MAC, APN_ENTRY_VALID | APN_IN_CONTIG |
              APN_IN_CHECK_SRC_MAC, 1, FZ_BUF + 0x2000, 0x1000, 0);
    memcpy(fz_in(AP_SRC_MAC) + offsetof(struct apn_in_entry, src_mac),
           fz_src_mac, 6);
    fz_put_in(AP_INVALID, APN_IN_CONTIG, 1, FZ_BUF, 0x1000, 0);
    fz_put_in(AP_UNREACHABLE, APN_ENTRY_VALID, 3, FZ_MEM + 0x1000, 0x1000, 0);
    /* Event apertures have no memory: base points at the tables. */
    fz_put_in(AP_EVENT, APN_ENTRY_VALID |
              APN_ENTRY_TYPE_EVENT << APN_ENTRY_TYPE_SHIFT, 1, FZ_IN_TABLE,
              0x100, 0);
    fz_put_in(AP_EVENT_NOQ, APN_ENTRY_VALID |
              APN_ENTRY_TYPE_EVENT << APN_ENTRY_TYPE_SHIFT, 2, FZ_IN_TABLE,
              0x100, 0);
    /* What ERROR segments name: where each entry sends. */
    fz_put_out(0, APN_ENTRY_VALID, 0, FZ_SRC_HOST, AP_UNREACHABLE);
    fz_put_out(1, APN_ENTRY_VALID | APN_ENTRY_SEQ, 1, FZ_SRC_HOST, 0);
    fz_put_out(2, 0, 1, FZ_SRC_HOST, 0);
    fz_put_out(3, APN_ENTRY_VALID, 3, FZ_SRC_HOST, 0);
    memcpy(fz_tables, fz_fake.mem + FZ_IN_TABLE, sizeof(fz_tables));

    fz_reg(APN_REG_IN_TABLE_LO, FZ_IN_TABLE);
    fz_reg(APN_REG_IN_TABLE_COUNT, FZ_IN_COUNT);
    fz_reg(APN_REG_OUT_TABLE_LO, FZ_OUT_TABLE);
    fz_reg(APN_REG_OUT_TABLE_COUNT, FZ_OUT_COUNT);
    fz_reg(APN_REG_HOST_ID, FZ_HOST);
    fz_reg(APN_REG_IP_ADDR, FZ_IP);
    fz_reg(APN_REG_OSQ_BASE_LO, FZ_OSQ);
    fz_ep(0, APN_EP_VALID, 0, FZ_EVQ0, FZ_EVQ_EVENTS, 0, 0);
    fz_ep(1, APN_EP_VALID | APN_EP_TRUSTED, FZ_PORT, FZ_EVQ1, FZ_EVQ_EVENTS,
          FZ_VARQ1, FZ_VARQ_BYTES);
    fz_ep(2, APN_EP_VALID, FZ_PORT_NOQ, 0, 0, 0, 0);
    fz_ep(3, 0, FZ_PORT_INVALID, FZ_EVQ0, FZ_EVQ_EVENTS, 0, 0);
    fz_reg(APN_REG_CTRL, APN_CTRL_ENABLE);
    fz_fake.on_write = fz_check_write;
}

static bool fz_is_refusal(uint32_t id)
{
    switch (id) {
    case APN_CNT_RX_DROP_INDEX:
    case APN_CNT_RX_DROP_INVALID:
    case APN_CNT_RX_DROP_NONCE:
    case APN_CNT_RX_DROP_SEQ:
    case APN_CNT_RX_DROP_SRC_MAC:
    case APN_CNT_RX_DROP_SRC_HOST:
    case APN_CNT_RX_DROP_BOUNDS:
    case APN_CNT_RX_DROP_DMA:
        return true;
    }
    return false;
}

/*
 * The receive of `in` (`in_len` bytes) may send only answers to its
 * segments, each in a frame of its own to the source MAC and source host,
 * in segment order:
 * - an ERROR (len 0, nonce 0, offset a refusal counter id) for a refused
 *   WRITE, EVENT, CLOSE or READ_REQ segment with the same in_index and
 *   out_index;
 *   flags and seq 0, or for a READ_REQ APN_SEG_F_READ and seq = its tag;
 * - READ_RESP segments serving a READ_REQ: to its reply aperture and
 *   nonce, out_index = its tag, offsets from its reply offset on, in
 *   order, read_len bytes in all.
 * Never anything in answer to an ERROR or READ_RESP segment.
 */
static void fz_check_sent(const uint8_t *in, size_t in_len,
                          const uint64_t *before)
{
    const uint8_t *ci = in + APN_ETH_HLEN;
    size_t pos = APN_FRAME_HDR_LEN, avail;
    unsigned next = 0, nseg, nerr = 0;
    unsigned per_reason[APN_CNT__COUNT] = { 0 };
    uint64_t errs = fz_core->regs.counters[APN_CNT_TX_ERROR_MSGS] -
                    before[APN_CNT_TX_ERROR_MSGS];
    /* The READ_REQ being answered with READ_RESP segments. */
    uint32_t resp_left = 0, resp_in = 0, resp_nonce = 0, resp_off = 0;
    uint32_t resp_tag = 0;

    if (!fz_fake.nframes) {
        if (errs && in_len >= 12 && memcmp(in + 6, fz_mac, 6)) {
            fz_fail("tx_error_msgs counted, no frame sent");
        }
        return;
    }
    if (in_len < APN_ETH_HLEN + APN_FRAME_HDR_LEN ||
        get_be16(in + 12) != APN_ETHERTYPE) {
        fz_fail("a frame sent in answer to a frame that is not a CI frame");
    }
    if (in[6] & 1) {
        fz_fail("an answer sent to a group source MAC");
    }
    if (!memcmp(in + 6, fz_mac, 6)) {
        fz_fail("an answer to our own MAC reached the wire");
    }
    avail = in_len - APN_ETH_HLEN;
    nseg = ci[1];
    for (unsigned k = 0; k < fz_fake.nframes; k++) {
        const uint8_t *f = fz_fake.frames[k].data;
        size_t flen = fz_fake.frames[k].len;
        const uint8_t *fc = f + APN_ETH_HLEN;
        const uint8_t *h = fc + APN_FRAME_HDR_LEN;
        size_t ci_len, end;
        uint32_t in_index, out_index, reason, seg_len;
        const uint8_t *s = NULL;

        /* One segment, from us to the source, CRC right, zero padding. */
        if (flen < APN_MIN_ETH_FRAME ||
            memcmp(f, in + 6, 6) || memcmp(f + 6, fz_mac, 6) ||
            get_be16(f + 12) != APN_ETHERTYPE ||
            fc[0] != APN_WIRE_VERSION || fc[1] != 1 ||
            get_be16(fc + 2) != FZ_HOST || get_be16(fc + 4) != get_be16(ci + 2) ||
            get_be16(fc + 6) != 0) {
            fz_fail("a sent frame is not one segment to the source");
        }
        seg_len = get_be16(h + 2);
        ci_len = APN_FRAME_HDR_LEN + APN_SEG_HDR_LEN + APN_SEG_PAD(seg_len);
        end = APN_ETH_HLEN + ci_len + APN_CRC_LEN;
        if (end > flen || (end < APN_MIN_ETH_FRAME ? flen != APN_MIN_ETH_FRAME
                                                   : flen != end) ||
            get_be32(fc + ci_len) != apn_crc32c(0, fc, ci_len)) {
            fz_fail("a sent frame's length or CRC is wrong");
        }
        for (size_t b = end; b < flen; b++) {
            if (f[b]) {
                fz_fail("a sent frame's padding is not zero");
            }
        }
        in_index = get_be32(h + 4);
        reason = get_be32(h + 16);
        out_index = get_be32(h + 20);

        if (h[0] == APN_SEG_READ_RESP) {
            if (!resp_left) {
                /* The next READ_REQ of the input this can start to serve. */
                while (!s && next < nseg && pos + APN_SEG_HDR_LEN <= avail) {
                    const uint8_t *c = ci + pos, *q = c + APN_SEG_HDR_LEN;

                    pos += APN_SEG_HDR_LEN + APN_SEG_PAD(get_be16(c + 2));
                    next++;
                    if (c[0] == APN_SEG_READ_REQ &&
                        get_be16(c + 2) == APN_READ_REQ_LEN && pos <= avail &&
                        get_be32(q + 4) == in_index &&
                        get_be32(q + 8) == get_be32(h + 8) &&
                        get_be32(q + 12) == reason &&
                        get_be32(q + 16) == out_index) {
                        s = c;
                    }
                }
                if (!s) {
                    fz_fail("a READ_RESP answers no READ_REQ (in order)");
                }
                resp_left = get_be32(s + APN_SEG_HDR_LEN);
                resp_in = get_be32(s + APN_SEG_HDR_LEN + 4);
                resp_nonce = get_be32(s + APN_SEG_HDR_LEN + 8);
                resp_off = get_be32(s + APN_SEG_HDR_LEN + 12);
                resp_tag = get_be32(s + APN_SEG_HDR_LEN + 16);
                if (!resp_left || resp_left > APN_READ_MAX_LEN) {
                    fz_fail("a READ_REQ of a bad length was served");
                }
            }
            if (h[1] != 0 || !seg_len || seg_len > resp_left ||
                in_index != resp_in || get_be32(h + 8) != resp_nonce ||
                get_be32(h + 12) != 0 || reason != resp_off ||
                out_index != resp_tag) {
                fz_fail("a READ_RESP does not answer its READ_REQ");
            }
            resp_left -= seg_len;
            resp_off += seg_len;
            continue;
        }

        if (h[0] != APN_SEG_ERROR || seg_len != 0 || get_be32(h + 8) != 0) {
            fz_fail("a sent segment is neither an ERROR nor a READ_RESP");
        }
        if (resp_left) {
            fz_fail("an ERROR inside a READ_RESP answer");
        }
        if (!fz_is_refusal(reason)) {
            fz_fail("an ERROR names no refusal counter");
        }
        per_reason[reason]++;
        nerr++;
        /*
         * The next segment that can be refused with exactly this ERROR: a
         * WRITE, an EVENT of 1-8 bytes, a CLOSE of 0 bytes (flags and seq
         * 0) or a READ_REQ (APN_SEG_F_READ, seq = its tag), with these
         * indices.
         */
        while (!s && next < nseg && pos + APN_SEG_HDR_LEN <= avail) {
            const uint8_t *c = ci + pos;
            uint16_t clen = get_be16(c + 2);
            bool fits;

            pos += APN_SEG_HDR_LEN + APN_SEG_PAD(clen);
            next++;
            fits = pos <= avail && get_be32(c + 4) == in_index &&
                   get_be32(c + 20) == out_index;
            if (!fits) {
                continue;
            }
            if (c[0] == APN_SEG_READ_REQ) {
                fits = clen == APN_READ_REQ_LEN && h[1] == APN_SEG_F_READ &&
                       get_be32(h + 12) == get_be32(c + APN_SEG_HDR_LEN + 16);
            } else {
                fits = (c[0] == APN_SEG_WRITE ||
                        (c[0] == APN_SEG_EVENT && clen >= 1 && clen <= 8) ||
                        (c[0] == APN_SEG_CLOSE && clen == 0)) &&
                       h[1] == 0 && get_be32(h + 12) == 0;
            }
            if (fits) {
                s = c;
            }
        }
        if (!s) {
            fz_fail("an ERROR answers no segment of the frame (in order)");
        }
    }
    if (resp_left) {
        fz_fail("a READ_REQ was answered in part");
    }
    if (errs != nerr) {
        fz_fail("ERROR frames sent != tx_error_msgs");
    }
    for (unsigned id = 0; id < APN_CNT__COUNT; id++) {
        if (per_reason[id] > fz_core->regs.counters[id] - before[id]) {
            fz_fail("more ERRORs for a reason than drops counted for it");
        }
    }
}

/* Run one input from the same starting state. */
static void fz_one(const uint8_t *data, size_t len)
{
    uint64_t before[APN_CNT__COUNT];

    if (!fz_core) {
        fz_setup();
    }
    memcpy(fz_fake.mem + FZ_IN_TABLE, fz_tables, sizeof(fz_tables));
    fz_reg(APN_REG_TABLE_INVAL, APN_INVAL_ALL_INDEX);
    fz_reg(APN_REG_TABLE_INVAL, APN_INVAL_OUT | APN_INVAL_ALL_INDEX);
    fz_reg(APN_REG_OSQ_SIZE, FZ_OSQ_EVENTS);     /* empties the queue */
    /* Empty the endpoint queues; endpoint 0 armed, endpoint 1 not. */
    fz_reg(APN_EP_REG(0, APN_EPR_EVQ_SIZE), FZ_EVQ_EVENTS);
    fz_reg(APN_EP_REG(1, APN_EPR_EVQ_SIZE), FZ_EVQ_EVENTS);
    fz_reg(APN_EP_REG(1, APN_EPR_VARQ_SIZE), FZ_VARQ_BYTES);
    fz_reg(APN_USER_PAGE(0) + APN_UREG_ARM, 1);
    fz_reg(APN_USER_PAGE(1) + APN_UREG_ARM, 0);
    fake_clear_frames(&fz_fake);
    memcpy(before, fz_core->regs.counters, sizeof(before));
    apn_core_receive(fz_core, data, len);
    fz_check_sent(data, len, before);
}

/*
 * Write the CRC where the receiver will look for it, so mutated frames get
 * past the CRC check to the per-segment checks. False if the structure does
 * not leave room for one.
 */
static bool fz_fix_crc(uint8_t *frame, size_t len)
{
    uint8_t *ci = frame + APN_ETH_HLEN;
    size_t avail, pos = APN_FRAME_HDR_LEN;
    uint32_t crc;

    if (len < APN_ETH_HLEN + APN_FRAME_HDR_LEN + APN_CRC_LEN) {
        return false;
    }
    avail = len - APN_ETH_HLEN;
    for (unsigned i = 0; i < ci[1]; i++) {
        if (pos + APN_SEG_HDR_LEN > avail) {
            return false;
        }
        pos += APN_SEG_HDR_LEN + APN_SEG_PAD((ci[pos + 2] << 8) | ci[pos + 3]);
        if (pos + APN_CRC_LEN > avail) {
            return false;
        }
    }
    crc = apn_crc32c(0, ci, pos);
    ci[pos] = crc >> 24;
    ci[pos + 1] = crc >> 16;
    ci[pos + 2] = crc >> 8;
    ci[pos + 3] = crc;
    return true;
}

/* Internet checksum (RFC 1071) of `len` bytes, added to `sum`. */
static uint32_t fz_csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
    for (; len > 1; p += 2, len -= 2) {
        sum += (uint32_t)p[0] << 8 | p[1];
    }
    if (len) {
        sum += (uint32_t)p[0] << 8;
    }
    return sum;
}

static uint16_t fz_csum_fold(uint32_t sum)
{
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return (uint16_t)~sum;
}

/*
 * Make an IPv4 frame's header checksum (and its UDP checksum, when the UDP
 * length fits and the checksum is not 0) right, so mutated datagrams get
 * past them. False if there is no room for the headers.
 */
static bool fz_fix_ip(uint8_t *frame, size_t len)
{
    uint8_t *ip = frame + APN_ETH_HLEN;
    uint8_t *udp = ip + APN_IPV4_HLEN;
    uint16_t ulen, c;
    uint32_t sum;

    if (len < APN_ETH_HLEN + APN_IPV4_HLEN + APN_UDP_HLEN) {
        return false;
    }
    ip[10] = ip[11] = 0;
    c = fz_csum_fold(fz_csum_add(0, ip, APN_IPV4_HLEN));
    ip[10] = c >> 8;
    ip[11] = c;
    ulen = get_be16(udp + 4);
    if (ulen >= APN_UDP_HLEN &&
        ulen <= len - APN_ETH_HLEN - APN_IPV4_HLEN && get_be16(udp + 6)) {
        udp[6] = udp[7] = 0;
        sum = fz_csum_add(0, ip + 12, 8) + 17 + ulen;
        c = fz_csum_fold(fz_csum_add(sum, udp, ulen));
        c = c ? c : 0xffff;
        udp[6] = c >> 8;
        udp[7] = c;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Each input is received as given and again with its CRC (CI frames) or
 * its IP and UDP checksums (everything else) made right.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy;

    fz_one(data, size);
    copy = malloc(size ? size : 1);
    if (!copy) {
        abort();
    }
    memcpy(copy, data, size);
    if (size >= APN_ETH_HLEN && get_be16(copy + 12) != APN_ETHERTYPE
        ? fz_fix_ip(copy, size) : fz_fix_crc(copy, size)) {
        fz_one(copy, size);
    }
    free(copy);
    return 0;
}

#ifndef APN_LIBFUZZER

/* ---- seed corpus --------------------------------------------------------------- */

typedef struct SeedSeg {
    uint8_t type;           /* 0: APN_SEG_WRITE */
    uint32_t in_index, offset, seq;
    uint8_t flags;
    uint16_t len;
    uint32_t out_index;
} SeedSeg;

static size_t seed_frame(uint8_t *buf, const uint8_t src_mac[6],
                         uint16_t src_host, const SeedSeg *segs,
                         unsigned nseg)
{
    uint8_t *ci = buf + APN_ETH_HLEN;
    size_t pos = APN_FRAME_HDR_LEN;
    size_t total;

    memcpy(buf, fz_mac, 6);
    memcpy(buf + 6, src_mac, 6);
    put_be16(buf + 12, APN_ETHERTYPE);
    ci[0] = APN_WIRE_VERSION;
    ci[1] = nseg;
    put_be16(ci + 2, src_host);
    put_be16(ci + 4, FZ_HOST);
    put_be16(ci + 6, 0);
    for (unsigned i = 0; i < nseg; i++) {
        uint8_t *h = ci + pos;
        uint8_t type = segs[i].type ? segs[i].type : APN_SEG_WRITE;

        h[0] = type;
        h[1] = segs[i].flags;
        put_be16(h + 2, segs[i].len);
        put_be32(h + 4, segs[i].in_index);
        put_be32(h + 8, type == APN_SEG_ERROR ? 0
                                             : fz_nonce[segs[i].in_index]);
        put_be32(h + 12, segs[i].seq);
        put_be32(h + 16, segs[i].offset);
        put_be32(h + 20, segs[i].out_index);
        for (unsigned b = 0; b < APN_SEG_PAD(segs[i].len); b++) {
            h[APN_SEG_HDR_LEN + b] = b < segs[i].len ? (uint8_t)(b * 13 + i)
                                                     : 0;
        }
        pos += APN_SEG_HDR_LEN + APN_SEG_PAD(segs[i].len);
    }
    put_be32(ci + pos, apn_crc32c(0, ci, pos));
    total = APN_ETH_HLEN + pos + APN_CRC_LEN;
    if (total < APN_MIN_ETH_FRAME) {
        memset(buf + total, 0, APN_MIN_ETH_FRAME - total);
        total = APN_MIN_ETH_FRAME;
    }
    return total;
}

/* A UDP/IPv4 datagram from FZ_SRC_IP:sport to FZ_IP:dport. */
static size_t seed_datagram(uint8_t *buf, uint16_t sport, uint16_t dport,
                            const uint8_t *payload, uint16_t len)
{
    uint8_t *ip = buf + APN_ETH_HLEN;
    uint8_t *udp = ip + APN_IPV4_HLEN;
    uint16_t ulen = APN_UDP_HLEN + len;
    size_t total = APN_ETH_HLEN + APN_IPV4_HLEN + ulen;

    memcpy(buf, fz_mac, 6);
    memcpy(buf + 6, fz_src_mac, 6);
    put_be16(buf + 12, 0x0800);
    memset(ip, 0, APN_IPV4_HLEN);
    ip[0] = 0x45;
    put_be16(ip + 2, APN_IPV4_HLEN + ulen);
    put_be16(ip + 6, 0x4000);
    ip[8] = 64;
    ip[9] = 17;
    put_be32(ip + 12, FZ_SRC_IP);
    put_be32(ip + 16, FZ_IP);
    put_be16(udp, sport);
    put_be16(udp + 2, dport);
    put_be16(udp + 4, ulen);
    put_be16(udp + 6, 1);                /* nonzero: fz_fix_ip computes it */
    memcpy(udp + APN_UDP_HLEN, payload, len);
    if (total < APN_MIN_ETH_FRAME) {
        memset(buf + total, 0, APN_MIN_ETH_FRAME - total);
        total = APN_MIN_ETH_FRAME;
    }
    fz_fix_ip(buf, total);
    return total;
}

static int write_seed(const char *dir, const char *name, const uint8_t *buf,
                      size_t len)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s.bin", dir, name);
    f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f)) {
        perror(path);
        return 1;
    }
    printf("%s: %zu bytes\n", path, len);
    return 0;
}

static int write_seeds(const char *dir)
{
    static const struct {
        const char *name;
        const uint8_t *src_mac;
        uint16_t src_host;
        unsigned nseg;
        SeedSeg seg[3];
    } seeds[] = {
        { "contig", fz_src_mac, 9, 1, { { 0, AP_CONTIG, 0x10, 0, 0, 16, 0 } } },
        { "pagelist-cross", fz_src_mac, 9, 1,
          { { 0, AP_PAGES, 0x7f0, 0, 0, 32, 0 } } },
        { "seq-narrow", fz_src_mac, FZ_SRC_HOST, 1,
          { { 0, AP_SEQ, 0x100, 0, APN_SEG_F_SEQ, 8, 0 } } },
        { "src-mac", fz_src_mac, 9, 1,
          { { 0, AP_SRC_MAC, 0xff8, 0, 0, 8, 0 } } },
        { "multiseg", fz_src_mac, FZ_SRC_HOST, 3,
          { { 0, AP_CONTIG, 0, 0, 0, 5, 0 }, { 0, AP_PAGES, 0x1ffc, 0, 0, 4, 0 },
            { 0, AP_SEQ, 0x2f0, 0, APN_SEG_F_SEQ, 16, 0 } } },
        /* An EVENT segment: APN_EV_EVENT on endpoint 1. */
        { "event", fz_src_mac, 9, 1,
          { { APN_SEG_EVENT, AP_EVENT, 0x40, 0, 0, 8, 1 } } },
        /* A CLOSE: APN_EV_CLOSE (APN_EV_F_APERTURE) on endpoint 0. */
        { "close", fz_src_mac, 9, 1,
          { { APN_SEG_CLOSE, AP_CONTIG, 0, 0, 0, 0, 3 } } },
        /* An ERROR for outgoing entry 0: APN_EV_TX_ERROR on endpoint 0. */
        { "error", fz_src_mac, FZ_SRC_HOST, 1,
          { { APN_SEG_ERROR, AP_UNREACHABLE, APN_CNT_RX_DROP_NONCE, 0, 0, 0,
              0 } } },
    };
    static const uint8_t raw[20] = "not a message, data";
    uint8_t buf[256], msg[APN_MSG_LEN];
    size_t len;

    for (size_t i = 0; i < ARRAY_SIZE(seeds); i++) {
        len = seed_frame(buf, seeds[i].src_mac, seeds[i].src_host,
                         seeds[i].seg, seeds[i].nseg);
        if (write_seed(dir, seeds[i].name, buf, len)) {
            return 1;
        }
    }

    /* A READ_REQ for 40 bytes of AP_CONTIG: one READ_RESP back. */
    {
        static const SeedSeg rr = { APN_SEG_READ_REQ, AP_CONTIG, 0x100, 0, 0,
                                    APN_READ_REQ_LEN, 2 };
        uint8_t *p = buf + APN_ETH_HLEN + APN_FRAME_HDR_LEN + APN_SEG_HDR_LEN;

        len = seed_frame(buf, fz_src_mac, 9, &rr, 1);
        put_be32(p, 40);                 /* read_len */
        put_be32(p + 4, 5);              /* reply_in_index */
        put_be32(p + 8, 0x0a0b0c0d);     /* reply_nonce */
        put_be32(p + 12, 0x80);          /* reply_offset */
        put_be32(p + 16, 0x0102);        /* tag */
        fz_fix_crc(buf, len);
        if (write_seed(dir, "read-req", buf, len)) {
            return 1;
        }
    }

    /* A CONNECT message to endpoint 1's port: APN_EV_CONNECT. */
    memset(msg, 0, sizeof(msg));
    put_be32(msg, APN_MSG_MAGIC);
    msg[4] = APN_WIRE_VERSION;
    msg[5] = APN_MSG_CONNECT;
    put_be16(msg + 6, 5000);             /* reply port */
    put_be16(msg + 8, FZ_SRC_HOST);
    put_be32(msg + 12, 12);              /* in_index */
    put_be32(msg + 16, 0xabcdef01);      /* nonce */
    len = seed_datagram(buf, 5000, FZ_PORT, msg, sizeof(msg));
    if (write_seed(dir, "msg-connect", buf, len)) {
        return 1;
    }
    /* Any other datagram: a record on endpoint 1's variable-length queue. */
    len = seed_datagram(buf, 5001, FZ_PORT, raw, sizeof(raw));
    return write_seed(dir, "datagram", buf, len);
}

/* ---- replay with deterministic mutations --------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* Frames and segments dropped, and events and records lost. */
static uint64_t fz_drops(void)
{
    const uint64_t *c = fz_core->regs.counters;
    uint64_t sum = c[APN_CNT_RX_FILTERED] + c[APN_CNT_RX_DROP_NO_PORT] +
                   c[APN_CNT_RX_DROP_BAD_IP] + c[APN_CNT_EVQ_OVERFLOWS] +
                   c[APN_CNT_RX_DROP_READ] + c[APN_CNT_RX_DROP_RING];

    for (unsigned id = APN_CNT_RX_DROP_DISABLED; id <= APN_CNT_RX_DROP_DMA;
         id++) {
        sum += c[id];
    }
    return sum;
}

/* Segments, messages and datagrams delivered. */
static uint64_t fz_delivered(void)
{
    const uint64_t *c = fz_core->regs.counters;

    return c[APN_CNT_RX_SEGMENTS] + c[APN_CNT_RX_MSGS] + c[APN_CNT_EVQ_EVENTS];
}

static size_t mutate(uint8_t *buf, size_t len, size_t cap)
{
    unsigned n = 1 + rng() % 4;

    for (unsigned k = 0; k < n; k++) {
        switch (rng() % 6) {
        case 0:                         /* flip a bit */
            if (len) {
                size_t at = rng() % len;
                buf[at] ^= 1u << (rng() % 8);
            }
            break;
        case 1:                         /* set a byte */
            if (len) {
                size_t at = rng() % len;
                buf[at] = rng();
            }
            break;
        case 2:                         /* truncate */
            len = len ? rng() % len : 0;
            break;
        case 3:                         /* extend */
            while (len < cap && rng() % 4) {
                buf[len++] = rng();
            }
            break;
        case 4:                         /* an interesting 16-bit value */
            if (len >= 2) {
                static const uint16_t v[] = { 0, 1, 0xff, 0x100, 0x7fff,
                                              0x8000, 0xfffc, 0xffff };
                size_t at = rng() % (len - 1);
                put_be16(buf + at, v[rng() % ARRAY_SIZE(v)]);
            }
            break;
        case 5:                         /* fix up a CRC somewhere */
            if (len > APN_ETH_HLEN + 4) {
                size_t at = APN_ETH_HLEN + rng() % (len - APN_ETH_HLEN - 3);
                put_be32(buf + at, apn_crc32c(0, buf + APN_ETH_HLEN,
                                             at - APN_ETH_HLEN));
            }
            break;
        }
    }
    return len;
}

static int replay(const char *path, bool strict, unsigned mutations)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data, *copy;
    long size;
    size_t cap;

    if (!f || fseek(f, 0, SEEK_END) || (size = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET)) {
        perror(path);
        return 1;
    }
    data = malloc(size ? size : 1);
    if (!data || fread(data, 1, size, f) != (size_t)size) {
        perror(path);
        return 1;
    }
    fclose(f);

    /* An exact-size heap copy, so ASan sees any over-read. */
    copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    {
        uint64_t drops, segs, errs;

        if (!fz_core) {
            fz_setup();
        }
        drops = fz_drops();
        errs = fz_core->regs.counters[APN_CNT_TX_ERROR_MSGS];
        segs = fz_delivered();
        fz_one(copy, size);
        if (strict && (fz_drops() != drops || fz_delivered() == segs ||
                       fz_core->regs.counters[APN_CNT_TX_ERROR_MSGS] != errs)) {
            fprintf(stderr, "fuzz_rx: seed %s was not delivered\n", path);
            return 1;
        }
    }
    free(copy);

    cap = size + 64;
    for (unsigned m = 0; m < mutations; m++) {
        size_t len;

        copy = malloc(cap);
        memcpy(copy, data, size);
        len = mutate(copy, size, cap);
        /* Re-home the mutant in an exact-size buffer. */
        {
            uint8_t *exact = malloc(len ? len : 1);
            memcpy(exact, copy, len);
            LLVMFuzzerTestOneInput(exact, len);
            free(exact);
        }
        free(copy);
    }
    free(data);
    return 0;
}

int main(int argc, char **argv)
{
    bool strict = false;
    unsigned mutations = 0;
    int i, files = 0;

    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-g") && i + 1 < argc) {
            return write_seeds(argv[i + 1]);
        } else if (!strcmp(argv[i], "-s")) {
            strict = true;
        } else if (!strcmp(argv[i], "-m") && i + 1 < argc) {
            mutations = strtoul(argv[++i], NULL, 0);
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: %s [-s] [-m N] FILE... | -g DIR\n",
                    argv[0]);
            return 2;
        } else {
            if (replay(argv[i], strict, mutations)) {
                return 1;
            }
            files++;
        }
    }
    if (!files) {
        fprintf(stderr, "fuzz_rx: no input files\n");
        return 2;
    }
    printf("fuzz_rx: %d inputs, %u mutations each: %" PRIu64 " frames, %"
           PRIu64 " segments delivered or dropped, %" PRIu64 " dropped, %"
           PRIu64 " ERRORs sent, %" PRIu64 " endpoint events, %" PRIu64
           " messages\n",
           files, mutations, fz_core->regs.counters[APN_CNT_RX_FRAMES],
           fz_core->regs.counters[APN_CNT_RX_SEGMENTS], fz_drops(),
           fz_core->regs.counters[APN_CNT_TX_ERROR_MSGS],
           fz_core->regs.counters[APN_CNT_EVQ_EVENTS],
           fz_core->regs.counters[APN_CNT_RX_MSGS]);
    apn_core_cleanup(fz_core);
    free(fz_core);
    fake_destroy(&fz_fake);
    return 0;
}

#endif /* !APN_LIBFUZZER */
