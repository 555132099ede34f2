/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests for the apertnic device core (hw/net/apertnic/apertnic_core.c),
 * built outside QEMU against the fake machine in fake.c.
 *
 * Every test pins behaviour a driver, a user of the apertures or the QEMU
 * glue relies on: register semantics, the wire format, the receive checks
 * and their ERROR replies, store gathering, packing and the idle timer, the
 * mapping cache, the OS queue, endpoints with their event and
 * variable-length queues, user-page commands, connection messages over
 * UDP/IPv4, event frames, and migration.
 */
#include "qemu/osdep.h"
#include "qemu/log.h"
#include <check.h>
#include "apertnic_core.h"
#include "fake.h"
#include "apertnic_bytes.h"

/* ---- guest memory layout of the fake machine ------------------------------ */
#define MEM_SIZE        (4u << 20)
#define OSQ_ADDR        0x8000u
#define OSQ_EVENTS      16u
#define OUT_TABLE       0x10000u
#define IN_TABLE        0x20000u
#define PAGE_LIST       0x30000u
#define RX_BUF          0x200000u
#define NONCE           0x5eed1234u
#define NONCE2          0x0badf00du

#define TX_HOST         3
#define RX_HOST         7
#define TABLE_COUNT     16
#define TX_SLOT         5
#define RX_INDEX        9

static const uint8_t tx_mac[6] = { 0x52, 0x54, 0x00, 0xaa, 0x00, 0x03 };
static const uint8_t rx_mac[6] = { 0x52, 0x54, 0x00, 0xaa, 0x00, 0x07 };

/* ---- test data ---------------------------------------------------------------- */

static const uint8_t *pattern(void)
{
    static uint8_t pat[65536];

    if (!pat[1]) {
        for (unsigned i = 0; i < sizeof(pat); i++) {
            pat[i] = (uint8_t)(i * 7 + 3 + (i >> 8));
        }
    }
    return pat;
}

/* ---- a NIC on the fake machine ----------------------------------------------- */

typedef struct Nic {
    ApnCore core;
    Fake fake;
} Nic;

static ApnCoreConfig default_cfg(const uint8_t mac[6])
{
    ApnCoreConfig cfg = {
        .num_endpoints = 64,
        .num_out = 256,
        .out_slot_shift = 16,
        .max_in = 65536,
        .cache_entries = 64,
        .mtu = 1500,
        .flush_delay_ns = 5000,
    };

    memcpy(cfg.mac, mac, 6);
    return cfg;
}

static Nic *nic_new_cfg(const ApnCoreConfig *cfg, uint64_t mem_size)
{
    Nic *n = calloc(1, sizeof(*n));
    const char *why = NULL;

    ck_assert_ptr_nonnull(n);
    fake_init(&n->fake, mem_size);
    ck_assert_msg(apn_core_init(&n->core, cfg, &fake_ops, &n->fake, &why) == 0,
                  "apn_core_init: %s", why);
    return n;
}

static void nic_free(Nic *n)
{
    apn_core_cleanup(&n->core);
    fake_destroy(&n->fake);
    free(n);
}

static uint32_t rd(Nic *n, uint32_t addr)
{
    return apn_core_reg_read(&n->core, addr, 4);
}

static uint64_t rd64(Nic *n, uint32_t addr)
{
    return apn_core_reg_read(&n->core, addr, 8);
}

static void wr(Nic *n, uint32_t addr, uint32_t val)
{
    apn_core_reg_write(&n->core, addr, val, 4);
}

static uint64_t cnt(Nic *n, enum apn_counter_id id)
{
    return rd64(n, APN_COUNTER_OFFSET(id));
}

static void set_route(Nic *n, uint16_t host, const uint8_t mac[6])
{
    uint64_t v = APN_HOST_VALID;

    for (int i = 0; i < 6; i++) {
        v |= (uint64_t)mac[i] << (8 * i);
    }
    apn_core_reg_write(&n->core, APN_REG_HOST_MAC_BASE + 8 * host, v, 8);
}

static void fence(Nic *n)
{
    wr(n, APN_USER_PAGE(0) + APN_UREG_FENCE, 1);
}

/* Program tables, host id and the OS queue, then set CTRL.ENABLE. */
static void nic_program(Nic *n, uint16_t host, uint32_t in_count,
                        uint32_t out_count)
{
    wr(n, APN_REG_IN_TABLE_LO, IN_TABLE);
    wr(n, APN_REG_IN_TABLE_HI, 0);
    wr(n, APN_REG_IN_TABLE_COUNT, in_count);
    wr(n, APN_REG_OUT_TABLE_LO, OUT_TABLE);
    wr(n, APN_REG_OUT_TABLE_HI, 0);
    wr(n, APN_REG_OUT_TABLE_COUNT, out_count);
    wr(n, APN_REG_HOST_ID, host);
    wr(n, APN_REG_OSQ_BASE_LO, OSQ_ADDR);
    wr(n, APN_REG_OSQ_BASE_HI, 0);
    wr(n, APN_REG_OSQ_SIZE, OSQ_EVENTS);
    wr(n, APN_REG_CTRL, APN_CTRL_ENABLE);
    ck_assert_uint_eq(rd(n, APN_REG_CTRL), APN_CTRL_ENABLE);
}

static uint64_t table_base(Nic *n, bool out)
{
    return out ? (uint64_t)rd(n, APN_REG_OUT_TABLE_HI) << 32 |
                 rd(n, APN_REG_OUT_TABLE_LO)
               : (uint64_t)rd(n, APN_REG_IN_TABLE_HI) << 32 |
                 rd(n, APN_REG_IN_TABLE_LO);
}

/* Entry `idx` of a table in fake memory, or NULL when it is outside. */
static uint8_t *entry_ptr(Nic *n, bool out, uint32_t idx)
{
    uint64_t a = table_base(n, out) + (uint64_t)idx * APN_TABLE_ENTRY_SIZE;

    if (a > n->fake.mem_size || n->fake.mem_size - a < APN_TABLE_ENTRY_SIZE) {
        return NULL;
    }
    return n->fake.mem + a;
}

static void put_out(Nic *n, uint32_t idx, const struct apn_out_entry *e)
{
    uint8_t *p = entry_ptr(n, true, idx);

    if (!p) {
        return;
    }
    memset(p, 0, APN_TABLE_ENTRY_SIZE);
    put_le32(p + offsetof(struct apn_out_entry, flags), e->flags);
    put_le16(p + offsetof(struct apn_out_entry, endpoint), e->endpoint);
    put_le16(p + offsetof(struct apn_out_entry, dest_host), e->dest_host);
    put_le32(p + offsetof(struct apn_out_entry, dest_in_index),
            e->dest_in_index);
    put_le32(p + offsetof(struct apn_out_entry, nonce), e->nonce);
    put_le32(p + offsetof(struct apn_out_entry, size), e->size);
    put_le32(p + offsetof(struct apn_out_entry, seq), e->seq);
}

static void put_in(Nic *n, uint32_t idx, const struct apn_in_entry *e)
{
    uint8_t *p = entry_ptr(n, false, idx);

    if (!p) {
        return;
    }
    memset(p, 0, APN_TABLE_ENTRY_SIZE);
    put_le32(p + offsetof(struct apn_in_entry, flags), e->flags);
    put_le16(p + offsetof(struct apn_in_entry, endpoint), e->endpoint);
    put_le16(p + offsetof(struct apn_in_entry, src_host), e->src_host);
    put_le16(p + offsetof(struct apn_in_entry, src_host_mask),
            e->src_host_mask);
    memcpy(p + offsetof(struct apn_in_entry, src_mac), e->src_mac, 6);
    put_le32(p + offsetof(struct apn_in_entry, nonce), e->nonce);
    put_le32(p + offsetof(struct apn_in_entry, seq), e->seq);
    put_le64(p + offsetof(struct apn_in_entry, base), e->base);
    put_le32(p + offsetof(struct apn_in_entry, size), e->size);
    put_le32(p + offsetof(struct apn_in_entry, first_byte), e->first_byte);
    put_le32(p + offsetof(struct apn_in_entry, narrow_start), e->narrow_start);
    put_le32(p + offsetof(struct apn_in_entry, narrow_len), e->narrow_len);
}

static uint32_t out_seq_in_mem(Nic *n, uint32_t idx)
{
    return get_le32(n->fake.mem + table_base(n, true) + idx * 64 +
                   offsetof(struct apn_out_entry, seq));
}

static uint32_t in_seq_in_mem(Nic *n, uint32_t idx)
{
    return get_le32(n->fake.mem + table_base(n, false) + idx * 64 +
                   offsetof(struct apn_in_entry, seq));
}

static struct apn_out_entry out_entry(uint16_t dest_host, uint32_t in_index,
                                      uint32_t size)
{
    return (struct apn_out_entry) {
        .flags = APN_ENTRY_VALID,
        .dest_host = dest_host,
        .dest_in_index = in_index,
        .nonce = NONCE,
        .size = size,
    };
}

static struct apn_in_entry contig_in(uint64_t base, uint32_t size)
{
    return (struct apn_in_entry) {
        .flags = APN_ENTRY_VALID | APN_IN_CONTIG,
        .nonce = NONCE,
        .base = base,
        .size = size,
    };
}

/* Sender: host TX_HOST, slot TX_SLOT -> RX_HOST's incoming aperture RX_INDEX. */
static Nic *tx_nic(void)
{
    ApnCoreConfig cfg = default_cfg(tx_mac);
    Nic *n = nic_new_cfg(&cfg, MEM_SIZE);
    struct apn_out_entry e = out_entry(RX_HOST, RX_INDEX, 4096);

    nic_program(n, TX_HOST, TABLE_COUNT, TABLE_COUNT);
    set_route(n, RX_HOST, rx_mac);
    put_out(n, TX_SLOT, &e);
    return n;
}

/* Receiver: host RX_HOST, aperture RX_INDEX is 4 KiB at RX_BUF. */
static Nic *rx_nic_cfg(const ApnCoreConfig *cfg)
{
    Nic *n = nic_new_cfg(cfg, MEM_SIZE);
    struct apn_in_entry e = contig_in(RX_BUF, 4096);

    nic_program(n, RX_HOST, TABLE_COUNT, TABLE_COUNT);
    put_in(n, RX_INDEX, &e);
    return n;
}

static Nic *rx_nic(void)
{
    ApnCoreConfig cfg = default_cfg(rx_mac);

    return rx_nic_cfg(&cfg);
}

static uint64_t ap(Nic *n, uint32_t slot, uint32_t off)
{
    return (uint64_t)slot << n->core.cfg.out_slot_shift | off;
}

static void store(Nic *n, uint32_t slot, uint32_t off, uint64_t val,
                  unsigned size)
{
    apn_core_aperture_write(&n->core, ap(n, slot, off), val, size);
}

/* Store `len` bytes of `data` with 8-byte stores (the tail narrower). */
static void store_bytes(Nic *n, uint32_t slot, uint32_t off,
                        const uint8_t *data, uint32_t len)
{
    while (len) {
        unsigned size = len >= 8 ? 8 : len >= 4 ? 4 : len >= 2 ? 2 : 1;
        uint64_t v = 0;

        for (unsigned i = 0; i < size; i++) {
            v |= (uint64_t)data[i] << (8 * i);
        }
        store(n, slot, off, v, size);
        off += size;
        data += size;
        len -= size;
    }
}

/* Hand a frame to the core in a buffer of exactly `len` bytes (for ASan). */
static void receive(Nic *n, const uint8_t *frame, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);

    ck_assert_ptr_nonnull(copy);
    memcpy(copy, frame, len);
    apn_core_receive(&n->core, copy, len);
    free(copy);
}

static uint8_t *snapshot(Nic *n)
{
    uint8_t *s = malloc(n->fake.mem_size);

    ck_assert_ptr_nonnull(s);
    memcpy(s, n->fake.mem, n->fake.mem_size);
    return s;
}

/* Memory equals the snapshot except [skip, skip + skip_len). */
static void assert_mem_unchanged(Nic *n, const uint8_t *snap, uint64_t skip,
                                 uint64_t skip_len)
{
    for (uint64_t a = 0; a < n->fake.mem_size; a++) {
        if (a >= skip && a < skip + skip_len) {
            continue;
        }
        if (n->fake.mem[a] != snap[a]) {
            ck_abort_msg("guest memory at 0x%" PRIx64 " changed: 0x%02x -> "
                         "0x%02x", a, snap[a], n->fake.mem[a]);
        }
    }
}

static const enum apn_counter_id rx_drop_ids[] = {
    APN_CNT_RX_FILTERED, APN_CNT_RX_DROP_DISABLED, APN_CNT_RX_DROP_MALFORMED,
    APN_CNT_RX_DROP_CRC, APN_CNT_RX_DROP_NOT_CI, APN_CNT_RX_DROP_INDEX,
    APN_CNT_RX_DROP_INVALID, APN_CNT_RX_DROP_NONCE, APN_CNT_RX_DROP_SEQ,
    APN_CNT_RX_DROP_SRC_MAC, APN_CNT_RX_DROP_SRC_HOST, APN_CNT_RX_DROP_BOUNDS,
    APN_CNT_RX_DROP_DMA, APN_CNT_RX_DROP_NO_PORT, APN_CNT_RX_DROP_BAD_IP,
    APN_CNT_RX_DROP_RING, APN_CNT_RX_DROP_READ,
};

static const enum apn_counter_id tx_drop_ids[] = {
    APN_CNT_TX_DROP_DISABLED, APN_CNT_TX_DROP_INVALID, APN_CNT_TX_DROP_BOUNDS,
    APN_CNT_TX_DROP_NO_ROUTE, APN_CNT_TX_DROP_DMA, APN_CNT_TX_DROP_RING,
    APN_CNT_TX_DROP_READ,
};

static uint64_t rx_drops(Nic *n)
{
    uint64_t sum = 0;

    for (size_t i = 0; i < ARRAY_SIZE(rx_drop_ids); i++) {
        sum += cnt(n, rx_drop_ids[i]);
    }
    return sum;
}

/* `id` (or none, for APN_CNT__COUNT) is the only RX drop counter that moved. */
static void assert_only_rx_drop(Nic *n, enum apn_counter_id id, uint64_t val)
{
    for (size_t i = 0; i < ARRAY_SIZE(rx_drop_ids); i++) {
        uint64_t expect = rx_drop_ids[i] == id ? val : 0;

        ck_assert_msg(cnt(n, rx_drop_ids[i]) == expect,
                      "counter %s is %" PRIu64 ", expected %" PRIu64,
                      apn_counter_name(rx_drop_ids[i]),
                      cnt(n, rx_drop_ids[i]), expect);
    }
}

static void assert_only_tx_drop(Nic *n, enum apn_counter_id id, uint64_t val)
{
    for (size_t i = 0; i < ARRAY_SIZE(tx_drop_ids); i++) {
        uint64_t expect = tx_drop_ids[i] == id ? val : 0;

        ck_assert_msg(cnt(n, tx_drop_ids[i]) == expect,
                      "counter %s is %" PRIu64 ", expected %" PRIu64,
                      apn_counter_name(tx_drop_ids[i]),
                      cnt(n, tx_drop_ids[i]), expect);
    }
}

/* ---- an independent CI frame builder ------------------------------------------ */

typedef struct SegSpec {
    uint8_t type, flags;
    uint16_t len;
    uint32_t in_index, nonce, seq, offset, out_index;
    const uint8_t *payload;
} SegSpec;

typedef struct FrameSpec {
    uint8_t dst[6], src[6];
    uint16_t ethertype;
    uint8_t version;
    int nseg_field;            /* < 0: the number of segments built */
    uint16_t src_host, dst_host, flags;
    unsigned nseg;
    SegSpec seg[4];
    size_t pad_to;             /* 0: APN_MIN_ETH_FRAME */
    uint8_t pad_byte;
} FrameSpec;

static size_t build_frame(uint8_t *buf, size_t cap, const FrameSpec *fs)
{
    uint8_t *ci = buf + APN_ETH_HLEN;
    size_t pos = APN_FRAME_HDR_LEN;
    size_t total, min = fs->pad_to ? fs->pad_to : APN_MIN_ETH_FRAME;

    ck_assert_uint_ge(cap, APN_ETH_HLEN + APN_FRAME_HDR_LEN);
    memcpy(buf, fs->dst, 6);
    memcpy(buf + 6, fs->src, 6);
    put_be16(buf + 12, fs->ethertype);
    ci[0] = fs->version;
    ci[1] = fs->nseg_field < 0 ? fs->nseg : (unsigned)fs->nseg_field;
    put_be16(ci + 2, fs->src_host);
    put_be16(ci + 4, fs->dst_host);
    put_be16(ci + 6, fs->flags);
    for (unsigned i = 0; i < fs->nseg; i++) {
        const SegSpec *s = &fs->seg[i];
        uint8_t *h = ci + pos;

        ck_assert_uint_le(APN_ETH_HLEN + pos + APN_SEG_HDR_LEN +
                          APN_SEG_PAD(s->len) + APN_CRC_LEN, cap);
        h[0] = s->type;
        h[1] = s->flags;
        put_be16(h + 2, s->len);
        put_be32(h + 4, s->in_index);
        put_be32(h + 8, s->nonce);
        put_be32(h + 12, s->seq);
        put_be32(h + 16, s->offset);
        put_be32(h + 20, s->out_index);
        if (s->len) {
            memcpy(h + APN_SEG_HDR_LEN, s->payload, s->len);
        }
        memset(h + APN_SEG_HDR_LEN + s->len, 0, APN_SEG_PAD(s->len) - s->len);
        pos += APN_SEG_HDR_LEN + APN_SEG_PAD(s->len);
    }
    put_be32(ci + pos, apn_crc32c(0, ci, pos));
    total = APN_ETH_HLEN + pos + APN_CRC_LEN;
    if (total < min) {
        ck_assert_uint_le(min, cap);
        memset(buf + total, fs->pad_byte, min - total);
        total = min;
    }
    return total;
}

/* One WRITE segment of `len` pattern bytes from TX_HOST to RX_INDEX. */
static void spec_default(FrameSpec *fs, uint32_t offset, uint16_t len)
{
    memset(fs, 0, sizeof(*fs));
    memcpy(fs->dst, rx_mac, 6);
    memcpy(fs->src, tx_mac, 6);
    fs->ethertype = APN_ETHERTYPE;
    fs->version = APN_WIRE_VERSION;
    fs->nseg_field = -1;
    fs->src_host = TX_HOST;
    fs->dst_host = RX_HOST;
    fs->nseg = 1;
    fs->seg[0] = (SegSpec) {
        .type = APN_SEG_WRITE,
        .len = len,
        .in_index = RX_INDEX,
        .nonce = NONCE,
        .offset = offset,
        .out_index = TX_SLOT,
        .payload = pattern(),
    };
}

/* Parsed view of a single-segment frame the core sent. */
typedef struct SentSeg {
    uint16_t src_host, dst_host;
    uint8_t type, flags;
    uint16_t len;
    uint32_t in_index, nonce, seq, offset, out_index;
    const uint8_t *payload;
} SentSeg;

/*
 * Parse a (packed) CI frame the core sent into `segs` (room for `max`);
 * checks the structure, the CRC and that nothing but zero padding follows.
 * Returns the number of segments.
 */
static unsigned parse_frame(const FakeFrame *f, SentSeg *segs, unsigned max)
{
    const uint8_t *ci = f->data + APN_ETH_HLEN;
    size_t pos = APN_FRAME_HDR_LEN;
    unsigned nseg;

    ck_assert_uint_ge(f->len, APN_MIN_ETH_FRAME);
    ck_assert_uint_eq(get_be16(f->data + 12), APN_ETHERTYPE);
    ck_assert_uint_eq(ci[0], APN_WIRE_VERSION);
    nseg = ci[1];
    ck_assert_uint_ge(nseg, 1);
    ck_assert_uint_le(nseg, max);
    ck_assert_uint_eq(get_be16(ci + 6), 0);
    for (unsigned i = 0; i < nseg; i++) {
        const uint8_t *h = ci + pos;
        SentSeg *s = &segs[i];

        ck_assert_uint_le(APN_ETH_HLEN + pos + APN_SEG_HDR_LEN, f->len);
        s->src_host = get_be16(ci + 2);
        s->dst_host = get_be16(ci + 4);
        s->type = h[0];
        s->flags = h[1];
        s->len = get_be16(h + 2);
        s->in_index = get_be32(h + 4);
        s->nonce = get_be32(h + 8);
        s->seq = get_be32(h + 12);
        s->offset = get_be32(h + 16);
        s->out_index = get_be32(h + 20);
        s->payload = h + APN_SEG_HDR_LEN;
        pos += APN_SEG_HDR_LEN + APN_SEG_PAD(s->len);
        ck_assert_uint_le(APN_ETH_HLEN + pos + APN_CRC_LEN, f->len);
        for (unsigned b = s->len; b < APN_SEG_PAD(s->len); b++) {
            ck_assert_uint_eq(s->payload[b], 0);
        }
    }
    ck_assert_uint_eq(get_be32(ci + pos), apn_crc32c(0, ci, pos));
    /* Exactly the frame, or the minimum Ethernet frame zero-padded. */
    pos += APN_ETH_HLEN + APN_CRC_LEN;
    if (pos < APN_MIN_ETH_FRAME) {
        ck_assert_uint_eq(f->len, APN_MIN_ETH_FRAME);
        for (size_t b = pos; b < f->len; b++) {
            ck_assert_uint_eq(f->data[b], 0);
        }
    } else {
        ck_assert_uint_eq(f->len, pos);
    }
    return nseg;
}

static SentSeg parse_sent(const FakeFrame *f)
{
    SentSeg s;

    ck_assert_uint_eq(parse_frame(f, &s, 1), 1);
    return s;
}

/*
 * `f` is exactly the APN_SEG_ERROR frame a NIC with `mac` and host id
 * `host` sends for a segment refused for `reason`, to `dst` (the refused
 * frame's source MAC) and `dst_host` (its source host).
 */
static void assert_error_frame(const FakeFrame *f, const uint8_t mac[6],
                               uint16_t host, const uint8_t dst[6],
                               uint16_t dst_host, uint32_t in_index,
                               uint32_t out_index, enum apn_counter_id reason)
{
    uint8_t expect[APN_MIN_ETH_FRAME];
    FrameSpec fs;
    size_t len;

    memset(&fs, 0, sizeof(fs));
    memcpy(fs.dst, dst, 6);
    memcpy(fs.src, mac, 6);
    fs.ethertype = APN_ETHERTYPE;
    fs.version = APN_WIRE_VERSION;
    fs.nseg_field = -1;
    fs.src_host = host;
    fs.dst_host = dst_host;
    fs.nseg = 1;
    fs.seg[0] = (SegSpec) {
        .type = APN_SEG_ERROR,
        .in_index = in_index,
        .offset = reason,
        .out_index = out_index,
    };
    len = build_frame(expect, sizeof(expect), &fs);
    ck_assert_uint_eq(len, APN_MIN_ETH_FRAME);
    ck_assert_uint_eq(f->len, len);
    ck_assert_mem_eq(f->data, expect, len);
}

/* Refusals of one segment that are reported to the sender (spec: Receive). */
static bool is_seg_refusal(enum apn_counter_id id)
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
    default:
        return false;
    }
}

/* ============================================================================ */
/* CRC32C and counter names                                                      */
/* ============================================================================ */

START_TEST(test_crc32c_check_value)
{
    static const char check[] = "123456789";
    uint8_t buf[32];

    /* The CRC-32C check value and the RFC 3720 B.4 test vectors. */
    ck_assert_uint_eq(apn_crc32c(0, check, 9), 0xe3069283u);
    ck_assert_uint_eq(apn_crc32c(0, check, 0), 0);
    memset(buf, 0, sizeof(buf));
    ck_assert_uint_eq(apn_crc32c(0, buf, 32), 0x8a9136aau);
    memset(buf, 0xff, sizeof(buf));
    ck_assert_uint_eq(apn_crc32c(0, buf, 32), 0x62a8ab43u);
    for (int i = 0; i < 32; i++) {
        buf[i] = i;
    }
    ck_assert_uint_eq(apn_crc32c(0, buf, 32), 0x46dd794eu);
    for (int i = 0; i < 32; i++) {
        buf[i] = 31 - i;
    }
    ck_assert_uint_eq(apn_crc32c(0, buf, 32), 0x113fdb5cu);
}
END_TEST

START_TEST(test_crc32c_incremental)
{
    static const char check[] = "123456789";
    const uint8_t *p = pattern();
    uint32_t whole = apn_crc32c(0, p, 1000);

    /* Feeding the previous result back in continues the CRC. */
    for (size_t split = 0; split <= 9; split++) {
        uint32_t c = apn_crc32c(0, check, split);
        ck_assert_uint_eq(apn_crc32c(c, check + split, 9 - split),
                          0xe3069283u);
    }
    for (size_t split = 0; split <= 1000; split += 37) {
        uint32_t c = apn_crc32c(0, p, split);
        ck_assert_uint_eq(apn_crc32c(c, p + split, 1000 - split), whole);
    }
    {
        uint32_t c = 0;
        for (size_t i = 0; i < 1000; i++) {
            c = apn_crc32c(c, p + i, 1);
        }
        ck_assert_uint_eq(c, whole);
    }
}
END_TEST

START_TEST(test_counter_names)
{
    /* Device, driver and library print the same names in the same order. */
    ck_assert_str_eq(apn_counter_name(APN_CNT_TX_FRAMES), "tx_frames");
    ck_assert_str_eq(apn_counter_name(APN_CNT_RX_DROP_NONCE),
                     "rx_drop_nonce");
    ck_assert_str_eq(apn_counter_name(APN_CNT_IRQS), "irqs");
    ck_assert_ptr_null(apn_counter_name(APN_CNT__COUNT));
    ck_assert_ptr_null(apn_counter_name(~0u));
    for (unsigned i = 0; i < APN_CNT__COUNT; i++) {
        ck_assert_ptr_nonnull(apn_counter_name(i));
        for (unsigned j = 0; j < i; j++) {
            ck_assert_str_ne(apn_counter_name(i), apn_counter_name(j));
        }
    }
    ck_assert_uint_le(APN_CNT__COUNT, APN_COUNTERS_MAX);
}
END_TEST

/* ============================================================================ */
/* apn_core_init and BAR sizes                                                   */
/* ============================================================================ */

START_TEST(test_init_defaults)
{
    ApnCoreConfig cfg = default_cfg(rx_mac);
    Nic *n = nic_new_cfg(&cfg, MEM_SIZE);

    ck_assert_uint_eq(rd(n, APN_REG_NUM_ENDPOINTS), 64);
    ck_assert_uint_eq(rd(n, APN_REG_NUM_OUT), 256);
    ck_assert_uint_eq(rd(n, APN_REG_OUT_SLOT_SHIFT), 16);
    ck_assert_uint_eq(rd(n, APN_REG_MAX_IN), 65536);
    ck_assert_uint_eq(rd(n, APN_REG_CACHE_ENTRIES), 64);
    ck_assert_uint_eq(rd(n, APN_REG_MTU), 1500);
    /* Out of reset: disabled, nothing programmed, nothing counted. */
    ck_assert_uint_eq(rd(n, APN_REG_CTRL), 0);
    ck_assert_uint_eq(rd(n, APN_REG_IN_TABLE_COUNT), 0);
    ck_assert_uint_eq(rd(n, APN_REG_OUT_TABLE_COUNT), 0);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_SIZE), 0);
    for (unsigned i = 0; i < APN_CNT__COUNT; i++) {
        ck_assert_uint_eq(cnt(n, i), 0);
    }
    ck_assert_uint_eq(n->fake.dma_reads + n->fake.dma_writes, 0);
    nic_free(n);
}
END_TEST

typedef struct BadCfg {
    const char *what;
    void (*set)(ApnCoreConfig *cfg);
} BadCfg;

#define BAD(name, stmt) \
    static void bad_##name(ApnCoreConfig *c) { stmt; }
BAD(endpoints0, c->num_endpoints = 0)
BAD(endpoints1025, c->num_endpoints = 1025)
BAD(shift11, c->out_slot_shift = 11)
BAD(shift25, c->out_slot_shift = 25)
BAD(shift_huge, c->out_slot_shift = 64)
BAD(out0, c->num_out = 0)
BAD(out65537, c->num_out = 65537)
BAD(window8g, { c->num_out = 65536; c->out_slot_shift = 17; })
BAD(window_shift24, { c->num_out = 257; c->out_slot_shift = 24; })
BAD(in0, c->max_in = 0)
BAD(in_big, c->max_in = (1u << 24) + 1)
BAD(cache0, c->cache_entries = 0)
BAD(cache65537, c->cache_entries = 65537)
BAD(cache_huge, c->cache_entries = 0x80000000u)
BAD(mtu255, c->mtu = 255)
BAD(mtu9001, c->mtu = 9001)
BAD(mtu0, c->mtu = 0)
#undef BAD

static const BadCfg bad_cfgs[] = {
    { "endpoints 0", bad_endpoints0 },
    { "endpoints 1025", bad_endpoints1025 },
    { "out_slot_shift 11", bad_shift11 },
    { "out_slot_shift 25", bad_shift25 },
    { "out_slot_shift 64", bad_shift_huge },
    { "num_out 0", bad_out0 },
    { "num_out 65537", bad_out65537 },
    { "8 GiB aperture window", bad_window8g },
    { "257 16 MiB slots", bad_window_shift24 },
    { "max_in 0", bad_in0 },
    { "max_in 2^24 + 1", bad_in_big },
    { "cache 0", bad_cache0 },
    { "cache 65537", bad_cache65537 },
    { "cache 2^31", bad_cache_huge },
    { "mtu 255", bad_mtu255 },
    { "mtu 9001", bad_mtu9001 },
    { "mtu 0", bad_mtu0 },
};

START_TEST(test_init_rejects)
{
    ApnCoreConfig cfg = default_cfg(rx_mac);
    ApnCore *core = calloc(1, sizeof(*core));
    Fake fake;
    const char *why = NULL;

    fake_init(&fake, 4096);
    bad_cfgs[_i].set(&cfg);
    ck_assert_msg(apn_core_init(core, &cfg, &fake_ops, &fake, &why) == -1,
                  "%s accepted", bad_cfgs[_i].what);
    ck_assert_msg(why && *why, "%s: no reason given", bad_cfgs[_i].what);
    /* A rejected core owns nothing: cleanup is safe. */
    apn_core_cleanup(core);
    free(core);
    fake_destroy(&fake);
}
END_TEST

START_TEST(test_init_limits_accepted)
{
    static const ApnCoreConfig edges[] = {
        { .num_endpoints = 1, .num_out = 1, .out_slot_shift = 12,
          .max_in = 1, .cache_entries = 1, .mtu = 256 },
        { .num_endpoints = APN_MAX_ENDPOINTS, .num_out = 65536,
          .out_slot_shift = 16, .max_in = 1u << 24, .cache_entries = 65536,
          .mtu = 9000 },
        { .num_endpoints = 64, .num_out = 256, .out_slot_shift = 24,
          .max_in = 65536, .cache_entries = 64, .mtu = 1500 },
    };

    for (size_t i = 0; i < ARRAY_SIZE(edges); i++) {
        ApnCore *core = calloc(1, sizeof(*core));
        const char *why = NULL;
        Fake fake;

        fake_init(&fake, 4096);
        ck_assert_msg(apn_core_init(core, &edges[i], &fake_ops, &fake,
                                    &why) == 0, "edge %zu: %s", i, why);
        ck_assert_uint_eq(apn_core_reg_read(core, APN_REG_MAGIC, 4),
                          APN_MAGIC);
        apn_core_cleanup(core);
        free(core);
        fake_destroy(&fake);
    }
}
END_TEST

static bool is_pow2(uint64_t v)
{
    return v && !(v & (v - 1));
}

START_TEST(test_bar_sizes)
{
    static const uint32_t eps[] = { 1, 2, 3, 63, 64, 65, 1000, 1024 };
    static const struct { uint32_t num_out, shift; } outs[] = {
        { 1, 12 }, { 3, 12 }, { 256, 16 }, { 255, 16 }, { 257, 16 },
        { 65536, 16 }, { 256, 24 }, { 1000, 13 },
    };
    ApnCoreConfig cfg = default_cfg(rx_mac);

    for (size_t i = 0; i < ARRAY_SIZE(eps); i++) {
        uint64_t s;

        cfg.num_endpoints = eps[i];
        s = apn_core_regs_bar_size(&cfg);
        ck_assert_msg(is_pow2(s), "regs BAR 0x%" PRIx64 " for %u endpoints",
                      s, eps[i]);
        /* Privileged page, counters and every user page fit. */
        ck_assert_uint_ge(s, APN_USER_PAGE(eps[i]));
        ck_assert_uint_ge(s, APN_COUNTERS_BASE + 8 * APN_COUNTERS_MAX);
        ck_assert_uint_lt(s / 2, APN_USER_PAGE(eps[i]));
    }
    cfg = default_cfg(rx_mac);
    ck_assert_uint_eq(apn_core_regs_bar_size(&cfg), 0x80000);
    ck_assert_uint_eq(apn_core_aperture_bar_size(&cfg), 16u << 20);
    for (size_t i = 0; i < ARRAY_SIZE(outs); i++) {
        uint64_t need = (uint64_t)outs[i].num_out << outs[i].shift;
        uint64_t s;

        cfg.num_out = outs[i].num_out;
        cfg.out_slot_shift = outs[i].shift;
        s = apn_core_aperture_bar_size(&cfg);
        ck_assert_msg(is_pow2(s), "aperture BAR 0x%" PRIx64, s);
        ck_assert_uint_ge(s, need);
        ck_assert_uint_lt(s / 2, need);
    }
}
END_TEST

/* ============================================================================ */
/* Registers                                                                     */
/* ============================================================================ */

START_TEST(test_regs_identity)
{
    static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
    ApnCoreConfig cfg = default_cfg(mac);
    Nic *n = nic_new_cfg(&cfg, MEM_SIZE);

    qemu_log_counts_reset();
    ck_assert_uint_eq(rd(n, APN_REG_MAGIC), APN_MAGIC);
    ck_assert_uint_eq(rd(n, APN_REG_VERSION), APN_SPEC_VERSION);
    ck_assert_uint_eq(rd64(n, APN_REG_MAGIC),
                      (uint64_t)APN_SPEC_VERSION << 32 | APN_MAGIC);
    ck_assert_uint_eq(rd(n, APN_REG_CAPS),
                      APN_CAP_CACHE | APN_CAP_GATHER | APN_CAP_RINGS |
                      APN_CAP_READ | APN_CAP_DMA);
    ck_assert_uint_eq(rd(n, APN_REG_NUM_VECTORS), APN_NUM_VECTORS);
    /* MAC byte 0 in bits 7:0 of MAC_LO, bytes 4-5 in MAC_HI 15:0. */
    ck_assert_uint_eq(rd(n, APN_REG_MAC_LO), 0x12005452u);
    ck_assert_uint_eq(rd(n, APN_REG_MAC_HI), 0x5634u);
    ck_assert_uint_eq(rd(n, APN_REG_STATUS) & ~APN_STATUS_LINK_UP, 0);
    /* Write-only registers read as zero. */
    ck_assert_uint_eq(rd(n, APN_REG_TABLE_INVAL), 0);
    ck_assert_uint_eq(rd(n, APN_REG_IRQ_TEST), 0);
    ck_assert_uint_eq(rd(n, APN_REG_FLUSH), 0);
    ck_assert_uint_eq(rd(n, APN_USER_PAGE(0) + APN_UREG_FENCE), 0);
    ck_assert_uint_eq(qemu_log_guest_errors, 0);
    /* Unknown registers read zero and are reported. */
    ck_assert_uint_eq(rd(n, 0x0a0), 0);
    ck_assert_uint_eq(qemu_log_guest_errors, 1);
    ck_assert_uint_eq(rd(n, 0x400), 0);
    ck_assert_uint_eq(qemu_log_guest_errors, 2);
    nic_free(n);
}
END_TEST

START_TEST(test_regs_ro_ignore_writes)
{
    static const uint32_t ro[] = {
        APN_REG_MAGIC, APN_REG_VERSION, APN_REG_CAPS, APN_REG_STATUS,
        APN_REG_MAC_LO, APN_REG_MAC_HI, APN_REG_MTU, APN_REG_NUM_ENDPOINTS,
        APN_REG_NUM_OUT, APN_REG_OUT_SLOT_SHIFT, APN_REG_MAX_IN,
        APN_REG_CACHE_ENTRIES, APN_REG_NUM_VECTORS, APN_REG_OSQ_WRPTR,
        APN_COUNTER_OFFSET(APN_CNT_TX_FRAMES),
        APN_COUNTER_OFFSET(APN_CNT_TX_FRAMES) + 4,
        APN_COUNTER_OFFSET(APN_CNT_IRQS),
    };
    ApnCoreConfig cfg = default_cfg(rx_mac);
    Nic *n = nic_new_cfg(&cfg, MEM_SIZE);

    apn_core_set_link(&n->core, true);
    n->core.regs.counters[APN_CNT_IRQS] = 5;
    for (size_t i = 0; i < ARRAY_SIZE(ro); i++) {
        uint32_t before = rd(n, ro[i]);

        qemu_log_counts_reset();
        wr(n, ro[i], ~before);
        ck_assert_msg(rd(n, ro[i]) == before, "register 0x%x changed", ro[i]);
        ck_assert_msg(qemu_log_guest_errors == 1,
                      "write to RO register 0x%x not reported", ro[i]);
    }
    ck_assert_uint_eq(rd(n, APN_REG_MAC_LO), get_le32(rx_mac));
    ck_assert_uint_eq(cnt(n, APN_CNT_IRQS), 5);
    nic_free(n);
}
END_TEST

START_TEST(test_regs_tables_locked)
{
    ApnCoreConfig cfg = default_cfg(rx_mac);
    static const uint32_t regs[] = {
        APN_REG_IN_TABLE_LO, APN_REG_IN_TABLE_HI, APN_REG_IN_TABLE_COUNT,
        APN_REG_OUT_TABLE_LO, APN_REG_OUT_TABLE_HI, APN_REG_OUT_TABLE_COUNT,
    };
    static const uint32_t v1[] = { 0x1000, 0x2, 100, 0x3000, 0x4, 200 };
    static const uint32_t v2[] = { 0x5000, 0x6, 10, 0x7000, 0x8, 20 };
    Nic *n = nic_new_cfg(&cfg, MEM_SIZE);

    for (size_t i = 0; i < ARRAY_SIZE(regs); i++) {
        wr(n, regs[i], v1[i]);
        ck_assert_uint_eq(rd(n, regs[i]), v1[i]);
    }
    wr(n, APN_REG_CTRL, APN_CTRL_ENABLE);
    qemu_log_counts_reset();
    for (size_t i = 0; i < ARRAY_SIZE(regs); i++) {
        wr(n, regs[i], v2[i]);
        ck_assert_msg(rd(n, regs[i]) == v1[i],
                      "0x%x changed while enabled", regs[i]);
    }
    ck_assert_uint_eq(qemu_log_guest_errors, ARRAY_SIZE(regs));
    wr(n, APN_REG_CTRL, 0);
    for (size_t i = 0; i < ARRAY_SIZE(regs); i++) {
        wr(n, regs[i], v2[i]);
        ck_assert_uint_eq(rd(n, regs[i]), v2[i]);
    }

    /* Table addresses must be 64-byte aligned (the high half is free). */
    qemu_log_counts_reset();
    wr(n, APN_REG_IN_TABLE_LO, 0x5020);
    wr(n, APN_REG_OUT_TABLE_LO, 0x7001);
    ck_assert_uint_eq(rd(n, APN_REG_IN_TABLE_LO), 0x5000);
    ck_assert_uint_eq(rd(n, APN_REG_OUT_TABLE_LO), 0x7000);
    ck_assert_uint_eq(qemu_log_guest_errors, 2);
    wr(n, APN_REG_IN_TABLE_HI, 0xffffffff);
    ck_assert_uint_eq(rd(n, APN_REG_IN_TABLE_HI), 0xffffffff);

    /* Counts are limited by MAX_IN and NUM_OUT. */
    qemu_log_counts_reset();
    wr(n, APN_REG_IN_TABLE_COUNT, 65536);
    ck_assert_uint_eq(rd(n, APN_REG_IN_TABLE_COUNT), 65536);
    wr(n, APN_REG_IN_TABLE_COUNT, 65537);
    ck_assert_uint_eq(rd(n, APN_REG_IN_TABLE_COUNT), 65536);
    wr(n, APN_REG_OUT_TABLE_COUNT, 256);
    ck_assert_uint_eq(rd(n, APN_REG_OUT_TABLE_COUNT), 256);
    wr(n, APN_REG_OUT_TABLE_COUNT, 257);
    ck_assert_uint_eq(rd(n, APN_REG_OUT_TABLE_COUNT), 256);
    wr(n, APN_REG_OUT_TABLE_COUNT, 0xffffffff);
    ck_assert_uint_eq(rd(n, APN_REG_OUT_TABLE_COUNT), 256);
    ck_assert_uint_eq(qemu_log_guest_errors, 3);

    /* One 64-bit store programs both halves. */
    apn_core_reg_write(&n->core, APN_REG_IN_TABLE_LO, 0x123456789abcde40ull,
                       8);
    ck_assert_uint_eq(rd64(n, APN_REG_IN_TABLE_LO), 0x123456789abcde40ull);
    nic_free(n);
}
END_TEST

START_TEST(test_regs_osq)
{
    ApnCoreConfig cfg = default_cfg(rx_mac);
    static const uint32_t bad[] = { 1, 3, 6, 100, 1u << 21, 0x80000000u,
                                    0xffffffffu };
    Nic *n = nic_new_cfg(&cfg, MEM_SIZE);

    qemu_log_counts_reset();
    wr(n, APN_REG_OSQ_SIZE, 2);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_SIZE), 2);
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        wr(n, APN_REG_OSQ_SIZE, bad[i]);
        ck_assert_msg(rd(n, APN_REG_OSQ_SIZE) == 2, "size %u accepted",
                      bad[i]);
    }
    ck_assert_uint_eq(qemu_log_guest_errors, ARRAY_SIZE(bad));
    wr(n, APN_REG_OSQ_SIZE, 1u << 20);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_SIZE), 1u << 20);
    wr(n, APN_REG_OSQ_SIZE, 0);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_SIZE), 0);

    qemu_log_counts_reset();
    wr(n, APN_REG_OSQ_BASE_LO, OSQ_ADDR + 0x20);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_BASE_LO), 0);
    ck_assert_uint_eq(qemu_log_guest_errors, 1);
    wr(n, APN_REG_OSQ_BASE_LO, OSQ_ADDR);
    wr(n, APN_REG_OSQ_BASE_HI, 0x1);
    ck_assert_uint_eq(rd64(n, APN_REG_OSQ_BASE_LO), 0x100000000ull | OSQ_ADDR);

    /* (Re)programming the size empties the queue. */
    wr(n, APN_REG_OSQ_BASE_HI, 0);
    wr(n, APN_REG_OSQ_SIZE, 8);
    wr(n, APN_REG_IRQ_TEST, 0);
    wr(n, APN_REG_IRQ_TEST, 0);
    wr(n, APN_REG_IRQ_TEST, 0);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 3);

    /* The read pointer moves only within [rdptr, wrptr]. */
    qemu_log_counts_reset();
    wr(n, APN_REG_OSQ_RDPTR, 4);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_RDPTR), 0);
    wr(n, APN_REG_OSQ_RDPTR, 2);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_RDPTR), 2);
    wr(n, APN_REG_OSQ_RDPTR, 1);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_RDPTR), 2);
    wr(n, APN_REG_OSQ_RDPTR, 3);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_RDPTR), 3);
    ck_assert_uint_eq(qemu_log_guest_errors, 2);

    wr(n, APN_REG_OSQ_SIZE, 4);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 0);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_RDPTR), 0);
    nic_free(n);
}
END_TEST

START_TEST(test_regs_host_id)
{
    Nic *n = tx_nic();

    qemu_log_counts_reset();
    wr(n, APN_REG_HOST_ID, 0xffff);
    ck_assert_uint_eq(rd(n, APN_REG_HOST_ID), 0xffff);
    ck_assert_uint_eq(qemu_log_guest_errors, 0);
    wr(n, APN_REG_HOST_ID, 0x10000);
    ck_assert_uint_eq(rd(n, APN_REG_HOST_ID), 0xffff);
    wr(n, APN_REG_HOST_ID, 0xffffffff);
    ck_assert_uint_eq(rd(n, APN_REG_HOST_ID), 0xffff);
    ck_assert_uint_eq(qemu_log_guest_errors, 2);

    /* The host id is the frame's source address. */
    wr(n, APN_REG_HOST_ID, 0x1234);
    store(n, TX_SLOT, 0, 1, 8);
    fence(n);
    ck_assert_uint_eq(n->fake.nframes, 1);
    ck_assert_uint_eq(parse_sent(&n->fake.frames[0]).src_host, 0x1234);
    nic_free(n);
}
END_TEST

START_TEST(test_regs_host_table)
{
    ApnCoreConfig cfg = default_cfg(rx_mac);
    Nic *n = nic_new_cfg(&cfg, MEM_SIZE);
    const uint32_t e5 = APN_REG_HOST_MAC_BASE + 8 * 5;
    const uint32_t e255 = APN_REG_HOST_MAC_BASE + 8 * 255;

    qemu_log_counts_reset();
    wr(n, e5, 0x11223344);
    wr(n, e5 + 4, 0x80005566);
    ck_assert_uint_eq(rd64(n, e5), 0x8000556611223344ull);
    ck_assert_uint_eq(rd(n, e5), 0x11223344);
    ck_assert_uint_eq(rd(n, e5 + 4), 0x80005566);
    /* Bits 62:48 are reserved and read as zero. */
    wr(n, e5 + 4, 0xffffffff);
    ck_assert_uint_eq(rd64(n, e5), 0x8000ffff11223344ull);
    /* One 64-bit store replaces the whole entry. */
    apn_core_reg_write(&n->core, e255, 0xfedcba9876543210ull, 8);
    ck_assert_uint_eq(rd64(n, e255), 0x8000ba9876543210ull);
    apn_core_reg_write(&n->core, e255, 0x0000112233445566ull, 8);
    ck_assert_uint_eq(rd64(n, e255), 0x0000112233445566ull);
    ck_assert_uint_eq(rd64(n, e5), 0x8000ffff11223344ull);
    ck_assert_uint_eq(qemu_log_guest_errors, 0);
    /* The host table is not locked by CTRL.ENABLE. */
    wr(n, APN_REG_CTRL, APN_CTRL_ENABLE);
    wr(n, e5, 0);
    ck_assert_uint_eq(rd(n, e5), 0);
    nic_free(n);
}
END_TEST

START_TEST(test_regs_counters)
{
    ApnCoreConfig cfg = default_cfg(rx_mac);
    Nic *n = nic_new_cfg(&cfg, MEM_SIZE);
    uint32_t a = APN_COUNTER_OFFSET(APN_CNT_RX_BYTES);

    n->core.regs.counters[APN_CNT_RX_BYTES] = 0x0123456789abcdefull;
    qemu_log_counts_reset();
    ck_assert_uint_eq(rd(n, a), 0x89abcdefu);
    ck_assert_uint_eq(rd(n, a + 4), 0x01234567u);
    ck_assert_uint_eq(rd64(n, a), 0x0123456789abcdefull);
    /* Reserved counter slots read zero without complaint. */
    for (unsigned id = APN_CNT__COUNT; id < APN_COUNTERS_MAX; id++) {
        ck_assert_uint_eq(rd64(n, APN_COUNTER_OFFSET(id)), 0);
    }
    ck_assert_uint_eq(qemu_log_guest_errors, 0);
    apn_core_reg_write(&n->core, a, 0, 8);
    ck_assert_uint_eq(rd64(n, a), 0x0123456789abcdefull);
    ck_assert_uint_ge(qemu_log_guest_errors, 1);
    nic_free(n);
}
END_TEST

START_TEST(test_regs_ctrl_reset)
{
    Nic *n = tx_nic();

    apn_core_set_link(&n->core, true);
    store(n, TX_SLOT, 0, 0x1111, 8);
    fence(n);
    store(n, TX_SLOT, 0x40, 0x2222, 8);     /* pending burst, timer armed */
    ck_assert(n->fake.timer_armed);
    ck_assert_uint_eq(n->fake.nframes, 1);
    ck_assert_uint_ne(cnt(n, APN_CNT_TX_FRAMES), 0);

    wr(n, APN_REG_CTRL, APN_CTRL_RESET | APN_CTRL_ENABLE);
    ck_assert_uint_eq(rd(n, APN_REG_CTRL), 0);
    ck_assert_uint_eq(rd(n, APN_REG_HOST_ID), 0);
    ck_assert_uint_eq(rd64(n, APN_REG_IN_TABLE_LO), 0);
    ck_assert_uint_eq(rd64(n, APN_REG_OUT_TABLE_LO), 0);
    ck_assert_uint_eq(rd(n, APN_REG_IN_TABLE_COUNT), 0);
    ck_assert_uint_eq(rd(n, APN_REG_OUT_TABLE_COUNT), 0);
    ck_assert_uint_eq(rd64(n, APN_REG_OSQ_BASE_LO), 0);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_SIZE), 0);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 0);
    ck_assert_uint_eq(rd64(n, APN_REG_HOST_MAC_BASE + 8 * RX_HOST), 0);
    for (unsigned i = 0; i < APN_CNT__COUNT; i++) {
        ck_assert_uint_eq(cnt(n, i), 0);
    }
    /* The link is the outside world's, not a register. */
    ck_assert_uint_eq(rd(n, APN_REG_STATUS), APN_STATUS_LINK_UP);
    /* The pending burst is dropped and its timer cancelled. */
    ck_assert(!n->fake.timer_armed);
    nic_program(n, TX_HOST, TABLE_COUNT, TABLE_COUNT);
    set_route(n, RX_HOST, rx_mac);
    fence(n);
    apn_core_flush_timer(&n->core);
    ck_assert_uint_eq(n->fake.nframes, 1);
    /* The mapping cache starts empty. */
    store(n, TX_SLOT, 0, 0x3333, 8);
    ck_assert_uint_eq(cnt(n, APN_CNT_CACHE_MISSES), 1);
    ck_assert_uint_eq(cnt(n, APN_CNT_CACHE_HITS), 0);
    nic_free(n);
}
END_TEST

START_TEST(test_regs_ctrl_reserved)
{
    ApnCoreConfig cfg = default_cfg(rx_mac);
    Nic *n = nic_new_cfg(&cfg, MEM_SIZE);

    qemu_log_counts_reset();
    wr(n, APN_REG_CTRL, APN_CTRL_ENABLE | 0x6);
    ck_assert_uint_eq(rd(n, APN_REG_CTRL), APN_CTRL_ENABLE);
    ck_assert_uint_eq(qemu_log_guest_errors, 1);
    wr(n, APN_REG_CTRL, 0);
    ck_assert_uint_eq(rd(n, APN_REG_CTRL), 0);
    nic_free(n);
}
END_TEST

START_TEST(test_regs_user_pages)
{
    Nic *n = tx_nic();

    /* The last endpoint's fence sends the burst. */
    store(n, TX_SLOT, 0, 1, 8);
    wr(n, APN_USER_PAGE(63) + APN_UREG_FENCE, 0);
    ck_assert_uint_eq(n->fake.nframes, 1);

    /* No user page past NUM_ENDPOINTS; other user-page offsets are unknown. */
    store(n, TX_SLOT, 0x10, 2, 8);
    qemu_log_counts_reset();
    wr(n, APN_USER_PAGE(64) + APN_UREG_FENCE, 0);
    wr(n, APN_USER_PAGE(0) + 0x800, 0);
    ck_assert_uint_eq(qemu_log_guest_errors, 2);
    ck_assert_uint_eq(n->fake.nframes, 1);
    ck_assert_uint_eq(rd(n, APN_USER_PAGE(0) + 0x800), 0);
    nic_free(n);
}
END_TEST

/* ============================================================================ */
/* Encode and decode                                                             */
/* ============================================================================ */

START_TEST(test_tx_frame_format)
{
    Nic *tx = tx_nic();
    uint8_t expect[128];
    FrameSpec fs;
    const FakeFrame *f;
    const uint8_t *ci, *seg;
    size_t elen;

    apn_core_aperture_write(&tx->core, ap(tx, TX_SLOT, 0x100),
                            0x0706050403020100ull, 8);
    apn_core_aperture_write(&tx->core, ap(tx, TX_SLOT, 0x108),
                            0x0f0e0d0c0b0a0908ull, 8);
    ck_assert_uint_eq(tx->fake.nframes, 0);     /* gathered, not yet sent */
    fence(tx);
    ck_assert_uint_eq(tx->fake.nframes, 1);
    f = &tx->fake.frames[0];
    ck_assert_uint_eq(f->len, APN_ETH_HLEN + APN_FRAME_HDR_LEN +
                      APN_SEG_HDR_LEN + 16 + APN_CRC_LEN);

    /* Ethernet header */
    ck_assert_mem_eq(f->data, rx_mac, 6);
    ck_assert_mem_eq(f->data + 6, tx_mac, 6);
    ck_assert_uint_eq(get_be16(f->data + 12), APN_ETHERTYPE);
    /* frame header */
    ci = f->data + APN_ETH_HLEN;
    ck_assert_uint_eq(ci[0], APN_WIRE_VERSION);
    ck_assert_uint_eq(ci[1], 1);
    ck_assert_uint_eq(get_be16(ci + 2), TX_HOST);
    ck_assert_uint_eq(get_be16(ci + 4), RX_HOST);
    ck_assert_uint_eq(get_be16(ci + 6), 0);
    /* segment header */
    seg = ci + APN_FRAME_HDR_LEN;
    ck_assert_uint_eq(seg[0], APN_SEG_WRITE);
    ck_assert_uint_eq(seg[1], 0);
    ck_assert_uint_eq(get_be16(seg + 2), 16);
    ck_assert_uint_eq(get_be32(seg + 4), RX_INDEX);
    ck_assert_uint_eq(get_be32(seg + 8), NONCE);
    ck_assert_uint_eq(get_be32(seg + 12), 0);
    ck_assert_uint_eq(get_be32(seg + 16), 0x100);
    ck_assert_uint_eq(get_be32(seg + 20), TX_SLOT);
    /* payload: the stores' bytes in address order (little-endian stores) */
    for (int i = 0; i < 16; i++) {
        ck_assert_uint_eq(seg[APN_SEG_HDR_LEN + i], i);
    }
    /* CRC32C over frame header .. end of segment, big-endian */
    ck_assert_uint_eq(get_be32(seg + APN_SEG_HDR_LEN + 16),
                      apn_crc32c(0, ci, APN_FRAME_HDR_LEN +
                                 APN_SEG_HDR_LEN + 16));

    /* Byte-exact against the independent builder. */
    spec_default(&fs, 0x100, 16);
    fs.seg[0].payload = seg + APN_SEG_HDR_LEN;
    elen = build_frame(expect, sizeof(expect), &fs);
    ck_assert_uint_eq(elen, f->len);
    ck_assert_mem_eq(expect, f->data, elen);

    ck_assert_uint_eq(cnt(tx, APN_CNT_TX_STORES), 2);
    ck_assert_uint_eq(cnt(tx, APN_CNT_TX_SEGMENTS), 1);
    ck_assert_uint_eq(cnt(tx, APN_CNT_TX_FRAMES), 1);
    ck_assert_uint_eq(cnt(tx, APN_CNT_TX_BYTES), f->len);
    assert_only_tx_drop(tx, APN_CNT__COUNT, 0);
    nic_free(tx);
}
END_TEST

START_TEST(test_tx_frame_padding)
{
    Nic *tx = tx_nic();
    const FakeFrame *f;
    SentSeg s;

    /* 5 payload bytes: padded to 8 inside the segment, frame to 60. */
    store(tx, TX_SLOT, 0x20, 0xa4a3a2a1, 4);
    store(tx, TX_SLOT, 0x24, 0xa5, 1);
    fence(tx);
    ck_assert_uint_eq(tx->fake.nframes, 1);
    f = &tx->fake.frames[0];
    ck_assert_uint_eq(f->len, APN_MIN_ETH_FRAME);
    s = parse_sent(f);
    ck_assert_uint_eq(s.len, 5);
    ck_assert_uint_eq(s.offset, 0x20);
    for (int i = 0; i < 5; i++) {
        ck_assert_uint_eq(s.payload[i], 0xa1 + i);
    }
    for (int i = 5; i < 8; i++) {
        ck_assert_uint_eq(s.payload[i], 0);
    }
    /* 14 + 8 + 24 + 8 + 4 = 58 bytes of frame; the rest is zero padding. */
    ck_assert_uint_eq(f->data[58], 0);
    ck_assert_uint_eq(f->data[59], 0);
    nic_free(tx);
}
END_TEST

/* Send `len` pattern bytes through tx slot `slot` at `off`, deliver to rx. */
static const FakeFrame *send_one(Nic *tx, uint32_t slot, uint32_t off,
                                 uint32_t len)
{
    unsigned before = tx->fake.nframes;

    store_bytes(tx, slot, off, pattern(), len);
    fence(tx);
    ck_assert_uint_eq(tx->fake.nframes, before + 1);
    return &tx->fake.frames[before];
}

START_TEST(test_roundtrip_contig)
{
    Nic *tx = tx_nic(), *rx = rx_nic();
    const FakeFrame *f = send_one(tx, TX_SLOT, 0x100, 40);
    uint8_t *snap = snapshot(rx);

    qemu_log_counts_reset();
    receive(rx, f->data, f->len);
    ck_assert_mem_eq(rx->fake.mem + RX_BUF + 0x100, pattern(), 40);
    assert_mem_unchanged(rx, snap, RX_BUF + 0x100, 40);
    assert_only_rx_drop(rx, APN_CNT__COUNT, 0);
    ck_assert_uint_eq(cnt(rx, APN_CNT_RX_FRAMES), 1);
    ck_assert_uint_eq(cnt(rx, APN_CNT_RX_SEGMENTS), 1);
    ck_assert_uint_eq(cnt(rx, APN_CNT_RX_BYTES), f->len);
    ck_assert_uint_eq(qemu_log_guest_errors, 0);
    ck_assert_uint_eq(rx->fake.nframes, 0);
    free(snap);
    nic_free(tx);
    nic_free(rx);
}
END_TEST

START_TEST(test_roundtrip_pagelist)
{
    /* Pages deliberately out of order: each 4 KiB is translated alone. */
    static const uint64_t pages[] = { 0x250000, 0x240000, 0x260000 };
    Nic *tx = tx_nic(), *rx = rx_nic();
    struct apn_out_entry oe = out_entry(RX_HOST, 10, 8192);
    struct apn_in_entry ie = {
        .flags = APN_ENTRY_VALID,
        .nonce = NONCE,
        .base = PAGE_LIST,
        .first_byte = 0x800,
        .size = 8192,
    };
    const FakeFrame *f;
    uint8_t *snap;

    put_out(tx, 6, &oe);
    put_in(rx, 10, &ie);
    for (size_t i = 0; i < ARRAY_SIZE(pages); i++) {
        put_le64(rx->fake.mem + PAGE_LIST + 8 * i, pages[i]);
    }
    snap = snapshot(rx);

    /* Aperture offset 0x7f0 is byte 0xff0 of the first page. */
    f = send_one(tx, 6, 0x7f0, 32);
    receive(rx, f->data, f->len);
    assert_only_rx_drop(rx, APN_CNT__COUNT, 0);
    ck_assert_mem_eq(rx->fake.mem + 0x250ff0, pattern(), 16);
    ck_assert_mem_eq(rx->fake.mem + 0x240000, pattern() + 16, 16);

    /* The aperture's first byte and its last byte (in the third page). */
    f = send_one(tx, 6, 0, 8);
    receive(rx, f->data, f->len);
    ck_assert_mem_eq(rx->fake.mem + 0x250800, pattern(), 8);
    f = send_one(tx, 6, 8192 - 8, 8);
    receive(rx, f->data, f->len);
    ck_assert_mem_eq(rx->fake.mem + 0x2607f8, pattern(), 8);
    assert_only_rx_drop(rx, APN_CNT__COUNT, 0);

    for (uint64_t a = 0; a < MEM_SIZE; a++) {
        bool written = (a >= 0x250ff0 && a < 0x251000) ||
                       (a >= 0x240000 && a < 0x240010) ||
                       (a >= 0x250800 && a < 0x250808) ||
                       (a >= 0x2607f8 && a < 0x260800);
        if (!written && rx->fake.mem[a] != snap[a]) {
            ck_abort_msg("stray write at 0x%" PRIx64, a);
        }
    }
    free(snap);
    nic_free(tx);
    nic_free(rx);
}
END_TEST

START_TEST(test_rx_pagelist_dma_error)
{
    /* A page-list write that fails part way is counted as rx_drop_dma. */
    Nic *rx = rx_nic();
    struct apn_in_entry ie = {
        .flags = APN_ENTRY_VALID | APN_ENTRY_SEQ,
        .nonce = NONCE,
        .seq = 3,
        .base = PAGE_LIST,
        .size = 8192,
    };
    uint8_t buf[128];
    FrameSpec fs;
    size_t len;

    put_in(rx, 10, &ie);
    put_le64(rx->fake.mem + PAGE_LIST, 0x250000);
    put_le64(rx->fake.mem + PAGE_LIST + 8, (uint64_t)MEM_SIZE);   /* unmapped */
    spec_default(&fs, 0xff8, 16);
    fs.seg[0].in_index = 10;
    fs.seg[0].flags = APN_SEG_F_SEQ;
    fs.seg[0].seq = 3;
    len = build_frame(buf, sizeof(buf), &fs);
    qemu_log_counts_reset();
    receive(rx, buf, len);
    assert_only_rx_drop(rx, APN_CNT_RX_DROP_DMA, 1);
    ck_assert_uint_eq(qemu_log_guest_errors, 1);
    /* The sequence does not advance for a segment that was not delivered. */
    ck_assert_uint_eq(in_seq_in_mem(rx, 10), 3);
    nic_free(rx);
}
END_TEST

START_TEST(test_roundtrip_seq)
{
    Nic *tx = tx_nic(), *rx = rx_nic();
    struct apn_out_entry oe = out_entry(RX_HOST, RX_INDEX, 4096);
    struct apn_in_entry ie = contig_in(RX_BUF, 4096);
    FakeFrame first;
    SentSeg s;

    oe.flags |= APN_ENTRY_SEQ;
    oe.seq = 7;
    put_out(tx, TX_SLOT, &oe);
    ie.flags |= APN_ENTRY_SEQ;
    ie.seq = 7;
    put_in(rx, RX_INDEX, &ie);

    s = parse_sent(send_one(tx, TX_SLOT, 0, 8));
    ck_assert_uint_eq(s.flags, APN_SEG_F_SEQ);
    ck_assert_uint_eq(s.seq, 7);
    /* The sender writes the next number back to its table entry. */
    ck_assert_uint_eq(out_seq_in_mem(tx, TX_SLOT), 8);
    s = parse_sent(send_one(tx, TX_SLOT, 8, 8));
    ck_assert_uint_eq(s.seq, 8);
    ck_assert_uint_eq(out_seq_in_mem(tx, TX_SLOT), 9);

    first = tx->fake.frames[0];
    receive(rx, first.data, first.len);
    ck_assert_uint_eq(in_seq_in_mem(rx, RX_INDEX), 8);
    receive(rx, tx->fake.frames[1].data, tx->fake.frames[1].len);
    ck_assert_uint_eq(in_seq_in_mem(rx, RX_INDEX), 9);
    ck_assert_mem_eq(rx->fake.mem + RX_BUF, pattern(), 8);
    ck_assert_mem_eq(rx->fake.mem + RX_BUF + 8, pattern(), 8);
    assert_only_rx_drop(rx, APN_CNT__COUNT, 0);

    /* A replay is dropped. */
    memset(rx->fake.mem + RX_BUF, 0, 16);
    receive(rx, first.data, first.len);
    assert_only_rx_drop(rx, APN_CNT_RX_DROP_SEQ, 1);
    ck_assert_uint_eq(rx->fake.mem[RX_BUF], 0);
    ck_assert_uint_eq(in_seq_in_mem(rx, RX_INDEX), 9);
    nic_free(tx);
    nic_free(rx);
}
END_TEST

START_TEST(test_tx_loopback)
{
    Nic *n = tx_nic();
    struct apn_out_entry oe = out_entry(TX_HOST, RX_INDEX, 4096);
    struct apn_in_entry ie = contig_in(RX_BUF, 4096);

    /* Traffic to our own host id never reaches the wire. */
    set_route(n, TX_HOST, tx_mac);
    put_out(n, 7, &oe);
    put_in(n, RX_INDEX, &ie);
    store_bytes(n, 7, 0x40, pattern(), 24);
    fence(n);
    ck_assert_uint_eq(n->fake.nframes, 0);
    ck_assert_mem_eq(n->fake.mem + RX_BUF + 0x40, pattern(), 24);
    ck_assert_uint_eq(cnt(n, APN_CNT_TX_FRAMES), 1);
    ck_assert_uint_eq(cnt(n, APN_CNT_RX_FRAMES), 1);
    ck_assert_uint_eq(cnt(n, APN_CNT_RX_SEGMENTS), 1);
    assert_only_rx_drop(n, APN_CNT__COUNT, 0);
    nic_free(n);
}
END_TEST

START_TEST(test_rx_multi_segment)
{
    Nic *rx = rx_nic();
    uint8_t buf[256];
    FrameSpec fs;
    uint8_t *snap;
    size_t len;

    spec_default(&fs, 0, 8);
    fs.nseg = 2;
    fs.seg[1] = fs.seg[0];
    fs.seg[1].offset = 64;
    fs.seg[1].len = 13;
    fs.seg[1].payload = pattern() + 100;
    len = build_frame(buf, sizeof(buf), &fs);
    receive(rx, buf, len);
    ck_assert_mem_eq(rx->fake.mem + RX_BUF, pattern(), 8);
    ck_assert_mem_eq(rx->fake.mem + RX_BUF + 64, pattern() + 100, 13);
    ck_assert_uint_eq(cnt(rx, APN_CNT_RX_SEGMENTS), 2);
    assert_only_rx_drop(rx, APN_CNT__COUNT, 0);

    /* Each segment is checked alone. */
    memset(rx->fake.mem + RX_BUF, 0, 128);
    fs.seg[1].nonce = NONCE2;
    len = build_frame(buf, sizeof(buf), &fs);
    receive(rx, buf, len);
    ck_assert_mem_eq(rx->fake.mem + RX_BUF, pattern(), 8);
    ck_assert_uint_eq(rx->fake.mem[RX_BUF + 64], 0);
    assert_only_rx_drop(rx, APN_CNT_RX_DROP_NONCE, 1);

    /* The structure is validated before any segment touches memory. */
    memset(rx->fake.mem + RX_BUF, 0, 128);
    snap = snapshot(rx);
    fs.seg[1].nonce = NONCE;
    fs.nseg_field = 3;
    len = build_frame(buf, sizeof(buf), &fs);
    receive(rx, buf, len);
    assert_mem_unchanged(rx, snap, 0, 0);
    ck_assert_uint_eq(cnt(rx, APN_CNT_RX_DROP_MALFORMED), 1);
    fs.nseg_field = 1;   /* CRC no longer where one segment says */
    len = build_frame(buf, sizeof(buf), &fs);
    receive(rx, buf, len);
    assert_mem_unchanged(rx, snap, 0, 0);
    ck_assert_uint_eq(cnt(rx, APN_CNT_RX_DROP_CRC), 1);
    free(snap);
    nic_free(rx);
}
END_TEST

START_TEST(test_rx_broadcast_and_padding)
{
    Nic *rx = rx_nic();
    uint8_t buf[128];
    FrameSpec fs;
    size_t len;

    /* Broadcast destination MAC is accepted. */
    spec_default(&fs, 0, 4);
    memset(fs.dst, 0xff, 6);
    fs.pad_byte = 0xee;               /* padding after the CRC is ignored */
    len = build_frame(buf, sizeof(buf), &fs);
    ck_assert_uint_eq(len, APN_MIN_ETH_FRAME);
    receive(rx, buf, len);
    ck_assert_mem_eq(rx->fake.mem + RX_BUF, pattern(), 4);
    assert_only_rx_drop(rx, APN_CNT__COUNT, 0);

    /* Unpadded (short) frames and frames with trailing bytes too. */
    spec_default(&fs, 0x10, 4);
    len = build_frame(buf, sizeof(buf), &fs);
    receive(rx, buf, APN_ETH_HLEN + APN_FRAME_HDR_LEN + APN_SEG_HDR_LEN +
            4 + APN_CRC_LEN);
    ck_assert_mem_eq(rx->fake.mem + RX_BUF + 0x10, pattern(), 4);
    fs.pad_to = 128;
    fs.seg[0].offset = 0x20;
    len = build_frame(buf, sizeof(buf), &fs);
    receive(rx, buf, len);
    ck_assert_mem_eq(rx->fake.mem + RX_BUF + 0x20, pattern(), 4);
    assert_only_rx_drop(rx, APN_CNT__COUNT, 0);
    ck_assert_uint_eq(cnt(rx, APN_CNT_RX_SEGMENTS), 3);
    nic_free(rx);
}
END_TEST

/* ============================================================================ */
/* Receive drops: each reason counted by itself, memory untouched                */
/* ============================================================================ */

typedef struct RxCase {
    const char *name;
    void (*mutate)(Nic *rx, FrameSpec *fs, struct apn_in_entry *e);
    int corrupt;                 /* frame byte to flip after building, or -1 */
    enum apn_counter_id expect;  /* APN_CNT__COUNT: delivered */
    unsigned guest_errors;
} RxCase;

#define MUT(name, body) \
    static void mut_##name(Nic *rx, FrameSpec *fs, struct apn_in_entry *e) \
    { (void)rx; (void)fs; (void)e; body; }

MUT(none, )
MUT(nonce, fs->seg[0].nonce ^= 1)
MUT(nonce_zero, { e->nonce = 0; fs->seg[0].nonce = 1; })
MUT(bounds_end, fs->seg[0].offset = 4096 - 32)
MUT(bounds_at_end, { fs->seg[0].offset = 4096; fs->seg[0].len = 1; })
MUT(bounds_wrap, fs->seg[0].offset = 0xffffffc0u)
MUT(bounds_size0, e->size = 0)
MUT(in_last_byte, fs->seg[0].offset = 4096 - 64)
MUT(narrow_inside, { e->narrow_start = 0x200; e->narrow_len = 0x100;
                     fs->seg[0].offset = 0x200; })
MUT(narrow_inside_end, { e->narrow_start = 0x200; e->narrow_len = 0x100;
                         fs->seg[0].offset = 0x2c0; })
MUT(narrow_below, { e->narrow_start = 0x200; e->narrow_len = 0x100;
                    fs->seg[0].offset = 0x1c0; })
MUT(narrow_straddle_lo, { e->narrow_start = 0x200; e->narrow_len = 0x100;
                          fs->seg[0].offset = 0x1f8; })
MUT(narrow_above, { e->narrow_start = 0x200; e->narrow_len = 0x100;
                    fs->seg[0].offset = 0x2c8; })
MUT(narrow_outside_extent, { e->narrow_start = 0xf00; e->narrow_len = 0x200;
                             fs->seg[0].offset = 0xf00; })
MUT(narrow_wrap, { e->narrow_start = 0xffffff00u; e->narrow_len = 0x200;
                   fs->seg[0].offset = 0; })
MUT(invalid, e->flags &= ~APN_ENTRY_VALID)
MUT(invalid_event_type, e->flags |= APN_ENTRY_TYPE_EVENT <<
                                    APN_ENTRY_TYPE_SHIFT)
MUT(index_count, fs->seg[0].in_index = TABLE_COUNT)
MUT(index_huge, fs->seg[0].in_index = 0xffffffffu)
MUT(index_mask, fs->seg[0].in_index = 0x7fffffffu)
MUT(index_high_bit, fs->seg[0].in_index = 0x80000000u | RX_INDEX)
MUT(dst_host, fs->dst_host = RX_HOST + 1)
MUT(dst_host_high, fs->dst_host = 0x100 | RX_HOST)
MUT(dst_mac, fs->dst[5] ^= 1)
MUT(dst_mac_multicast, fs->dst[0] |= 1)
MUT(ipv4_not_ip, fs->ethertype = 0x0800)
MUT(not_ci_vlan, fs->ethertype = 0x8100)
MUT(disabled, wr(rx, APN_REG_CTRL, 0))
MUT(version, fs->version = 2)
MUT(nseg0, fs->nseg_field = 0)
MUT(seg_event, fs->seg[0].type = APN_SEG_EVENT)
MUT(seg_type0, fs->seg[0].type = 0)
MUT(src_host_match, { e->flags |= APN_IN_CHECK_SRC_HOST; e->src_host = 0x0120;
                      e->src_host_mask = 0xfff0; fs->src_host = 0x0123; })
MUT(src_host_masked, { e->flags |= APN_IN_CHECK_SRC_HOST;
                       e->src_host = 0x0120; e->src_host_mask = 0xfff0;
                       fs->src_host = 0x0133; })
MUT(src_host_exact, { e->flags |= APN_IN_CHECK_SRC_HOST; e->src_host = 4;
                      e->src_host_mask = 0xffff; })
MUT(src_host_mask0, { e->flags |= APN_IN_CHECK_SRC_HOST; e->src_host = 99;
                      e->src_host_mask = 0; })
MUT(src_host_unchecked, { e->src_host = 99; e->src_host_mask = 0xffff; })
MUT(src_mac_match, { e->flags |= APN_IN_CHECK_SRC_MAC;
                     memcpy(e->src_mac, tx_mac, 6); })
MUT(src_mac, { e->flags |= APN_IN_CHECK_SRC_MAC; memcpy(e->src_mac, tx_mac, 6);
               e->src_mac[0] ^= 0x02; })
MUT(seq_match, { e->flags |= APN_ENTRY_SEQ; e->seq = 5;
                 fs->seg[0].flags = APN_SEG_F_SEQ; fs->seg[0].seq = 5; })
MUT(seq_no_flag, { e->flags |= APN_ENTRY_SEQ; e->seq = 5;
                   fs->seg[0].seq = 5; })
MUT(seq_old, { e->flags |= APN_ENTRY_SEQ; e->seq = 5;
               fs->seg[0].flags = APN_SEG_F_SEQ; fs->seg[0].seq = 4; })
MUT(seq_ahead, { e->flags |= APN_ENTRY_SEQ; e->seq = 5;
                 fs->seg[0].flags = APN_SEG_F_SEQ; fs->seg[0].seq = 6; })
MUT(seq_unchecked, { e->seq = 5; fs->seg[0].flags = APN_SEG_F_SEQ;
                     fs->seg[0].seq = 77; })
MUT(dma_contig, e->base = MEM_SIZE - 0x100)
MUT(dma_pagelist, { e->flags &= ~APN_IN_CONTIG; e->base = MEM_SIZE; })
MUT(index_table_unreadable, { wr(rx, APN_REG_CTRL, 0);
                              wr(rx, APN_REG_IN_TABLE_HI, 1);
                              wr(rx, APN_REG_CTRL, APN_CTRL_ENABLE); })
#undef MUT

#define CRC_AT      (APN_ETH_HLEN + APN_FRAME_HDR_LEN + APN_SEG_HDR_LEN + 64)
static const RxCase rx_cases[] = {
    { "baseline", mut_none, -1, APN_CNT__COUNT, 0 },
    { "nonce", mut_nonce, -1, APN_CNT_RX_DROP_NONCE, 0 },
    { "nonce zero", mut_nonce_zero, -1, APN_CNT_RX_DROP_NONCE, 0 },
    { "bounds past end", mut_bounds_end, -1, APN_CNT_RX_DROP_BOUNDS, 0 },
    { "bounds at end", mut_bounds_at_end, -1, APN_CNT_RX_DROP_BOUNDS, 0 },
    { "bounds wrap", mut_bounds_wrap, -1, APN_CNT_RX_DROP_BOUNDS, 0 },
    { "bounds size 0", mut_bounds_size0, -1, APN_CNT_RX_DROP_BOUNDS, 0 },
    { "last bytes", mut_in_last_byte, -1, APN_CNT__COUNT, 0 },
    { "narrow inside", mut_narrow_inside, -1, APN_CNT__COUNT, 0 },
    { "narrow inside end", mut_narrow_inside_end, -1, APN_CNT__COUNT, 0 },
    { "narrow below", mut_narrow_below, -1, APN_CNT_RX_DROP_BOUNDS, 0 },
    { "narrow straddle", mut_narrow_straddle_lo, -1, APN_CNT_RX_DROP_BOUNDS,
      0 },
    { "narrow above", mut_narrow_above, -1, APN_CNT_RX_DROP_BOUNDS, 0 },
    { "narrow outside extent", mut_narrow_outside_extent, -1,
      APN_CNT_RX_DROP_BOUNDS, 0 },
    { "narrow wrap", mut_narrow_wrap, -1, APN_CNT_RX_DROP_BOUNDS, 0 },
    { "invalid", mut_invalid, -1, APN_CNT_RX_DROP_INVALID, 0 },
    { "event-type entry", mut_invalid_event_type, -1,
      APN_CNT_RX_DROP_INVALID, 0 },
    { "index = count", mut_index_count, -1, APN_CNT_RX_DROP_INDEX, 0 },
    { "index 0xffffffff", mut_index_huge, -1, APN_CNT_RX_DROP_INDEX, 0 },
    { "index 0x7fffffff", mut_index_mask, -1, APN_CNT_RX_DROP_INDEX, 0 },
    { "index bit 31", mut_index_high_bit, -1, APN_CNT_RX_DROP_INDEX, 0 },
    { "crc payload", mut_none, CRC_AT - 1, APN_CNT_RX_DROP_CRC, 0 },
    { "crc field", mut_none, CRC_AT + 3, APN_CNT_RX_DROP_CRC, 0 },
    { "crc seg header", mut_none,
      APN_ETH_HLEN + APN_FRAME_HDR_LEN + 8, APN_CNT_RX_DROP_CRC, 0 },
    { "crc frame flags", mut_none, APN_ETH_HLEN + 7, APN_CNT_RX_DROP_CRC, 0 },
    { "dst host", mut_dst_host, -1, APN_CNT_RX_FILTERED, 0 },
    { "dst host high byte", mut_dst_host_high, -1, APN_CNT_RX_FILTERED, 0 },
    { "dst mac", mut_dst_mac, -1, APN_CNT_RX_FILTERED, 0 },
    { "dst multicast", mut_dst_mac_multicast, -1, APN_CNT_RX_FILTERED, 0 },
    /* IPv4 is classified as a datagram: a CI payload is not one. */
    { "IPv4, not a datagram", mut_ipv4_not_ip, -1, APN_CNT_RX_DROP_BAD_IP,
      0 },
    { "not CI (vlan)", mut_not_ci_vlan, -1, APN_CNT_RX_DROP_NOT_CI, 0 },
    { "disabled", mut_disabled, -1, APN_CNT_RX_DROP_DISABLED, 0 },
    { "version", mut_version, -1, APN_CNT_RX_DROP_MALFORMED, 0 },
    { "nseg 0", mut_nseg0, -1, APN_CNT_RX_DROP_MALFORMED, 0 },
    { "event segment", mut_seg_event, -1, APN_CNT_RX_DROP_MALFORMED, 0 },
    { "segment type 0", mut_seg_type0, -1, APN_CNT_RX_DROP_MALFORMED, 0 },
    { "src host in mask", mut_src_host_match, -1, APN_CNT__COUNT, 0 },
    { "src host outside mask", mut_src_host_masked, -1,
      APN_CNT_RX_DROP_SRC_HOST, 0 },
    { "src host exact", mut_src_host_exact, -1, APN_CNT_RX_DROP_SRC_HOST, 0 },
    { "src host mask 0", mut_src_host_mask0, -1, APN_CNT__COUNT, 0 },
    { "src host unchecked", mut_src_host_unchecked, -1, APN_CNT__COUNT, 0 },
    { "src mac match", mut_src_mac_match, -1, APN_CNT__COUNT, 0 },
    { "src mac", mut_src_mac, -1, APN_CNT_RX_DROP_SRC_MAC, 0 },
    { "seq match", mut_seq_match, -1, APN_CNT__COUNT, 0 },
    { "seq flag missing", mut_seq_no_flag, -1, APN_CNT_RX_DROP_SEQ, 0 },
    { "seq old", mut_seq_old, -1, APN_CNT_RX_DROP_SEQ, 0 },
    { "seq ahead", mut_seq_ahead, -1, APN_CNT_RX_DROP_SEQ, 0 },
    { "seq unchecked", mut_seq_unchecked, -1, APN_CNT__COUNT, 0 },
    { "dma contig", mut_dma_contig, -1, APN_CNT_RX_DROP_DMA, 1 },
    { "dma page list", mut_dma_pagelist, -1, APN_CNT_RX_DROP_DMA, 1 },
    { "table unreadable", mut_index_table_unreadable, -1,
      APN_CNT_RX_DROP_INDEX, 1 },
};

START_TEST(test_rx_case)
{
    const RxCase *c = &rx_cases[_i];
    Nic *rx = rx_nic();
    struct apn_in_entry e = contig_in(RX_BUF, 4096);
    uint8_t buf[256];
    FrameSpec fs;
    uint8_t *snap;
    size_t len;
    unsigned writes;

    spec_default(&fs, 0x100, 64);
    c->mutate(rx, &fs, &e);
    put_in(rx, RX_INDEX, &e);
    len = build_frame(buf, sizeof(buf), &fs);
    if (c->corrupt >= 0) {
        ck_assert_uint_lt(c->corrupt, len);
        buf[c->corrupt] ^= 0x40;
    }
    snap = snapshot(rx);
    writes = rx->fake.dma_writes;
    qemu_log_counts_reset();

    receive(rx, buf, len);

    ck_assert_uint_eq(cnt(rx, APN_CNT_RX_FRAMES), 1);
    ck_assert_uint_eq(cnt(rx, APN_CNT_RX_BYTES), len);
    if (c->expect == APN_CNT__COUNT) {
        uint32_t off = fs.seg[0].offset;

        assert_only_rx_drop(rx, APN_CNT__COUNT, 0);
        ck_assert_mem_eq(rx->fake.mem + RX_BUF + off, pattern(), 64);
        if (e.flags & APN_ENTRY_SEQ) {
            ck_assert_uint_eq(in_seq_in_mem(rx, RX_INDEX), fs.seg[0].seq + 1);
            snap[IN_TABLE + RX_INDEX * 64 +
                 offsetof(struct apn_in_entry, seq)] = fs.seg[0].seq + 1;
        }
        assert_mem_unchanged(rx, snap, RX_BUF + off, 64);
    } else {
        /* A table that cannot be read is reported on the OS queue. */
        bool event = c->guest_errors && c->expect == APN_CNT_RX_DROP_INDEX;

        assert_only_rx_drop(rx, c->expect, 1);
        assert_mem_unchanged(rx, snap, OSQ_ADDR, event ? 64 + 16 : 0);
        ck_assert_uint_eq(rx->fake.nnotify, event);
        if (!c->guest_errors) {
            ck_assert_uint_eq(rx->fake.dma_writes, writes);
        }
    }
    /* Network input is counted, not logged; failed DMA is the guest's. */
    ck_assert_uint_eq(qemu_log_guest_errors, c->guest_errors);
    if (c->expect != APN_CNT__COUNT && is_seg_refusal(c->expect)) {
        /* A refused segment is answered with one ERROR, to its source. */
        ck_assert_uint_eq(rx->fake.nframes, 1);
        assert_error_frame(&rx->fake.frames[0], rx_mac, RX_HOST, fs.src,
                           fs.src_host, fs.seg[0].in_index, TX_SLOT,
                           c->expect);
        ck_assert_uint_eq(cnt(rx, APN_CNT_TX_ERROR_MSGS), 1);
        ck_assert_uint_eq(cnt(rx, APN_CNT_TX_SEGMENTS), 1);
        ck_assert_uint_eq(cnt(rx, APN_CNT_TX_FRAMES), 1);
        ck_assert_uint_eq(cnt(rx, APN_CNT_TX_BYTES), APN_MIN_ETH_FRAME);
    } else {
        /* Delivered, or a frame-level drop whose fields are not trusted. */
        ck_assert_uint_eq(rx->fake.nframes, 0);
        ck_assert_uint_eq(cnt(rx, APN_CNT_TX_ERROR_MSGS), 0);
        ck_assert_uint_eq(cnt(rx, APN_CNT_TX_FRAMES), 0);
    }
    /* No endpoint is valid: nobody is told on an endpoint queue. */
    ck_assert_uint_eq(cnt(rx, APN_CNT_EVQ_EVENTS), 0);
    free(snap);
    nic_free(rx);
}
END_TEST

START_TEST(test_rx_check_order)
{
    /* Checked in the documented order; the first failure is what counts. */
    static const enum apn_counter_id order[] = {
        APN_CNT_RX_DROP_NONCE, APN_CNT_RX_DROP_SRC_MAC,
        APN_CNT_RX_DROP_SRC_HOST, APN_CNT_RX_DROP_SEQ,
        APN_CNT_RX_DROP_BOUNDS, APN_CNT__COUNT,
    };
    Nic *rx = rx_nic();
    struct apn_in_entry e = contig_in(RX_BUF, 4096);
    static const uint8_t other_mac[6] = { 0x52, 0x54, 0x00, 0xcc, 0xcc, 0xcc };
    uint8_t buf[256];
    FrameSpec fs;
    size_t len;

    e.flags |= APN_IN_CHECK_SRC_MAC | APN_IN_CHECK_SRC_HOST | APN_ENTRY_SEQ;
    memcpy(e.src_mac, tx_mac, 6);
    e.src_host = TX_HOST;
    e.src_host_mask = 0xffff;
    e.seq = 10;
    e.narrow_start = 0x100;
    e.narrow_len = 0x40;
    put_in(rx, RX_INDEX, &e);

    spec_default(&fs, 0x200, 64);              /* outside the narrowing */
    fs.seg[0].nonce = NONCE2;
    memcpy(fs.src, other_mac, 6);
    fs.src_host = TX_HOST + 1;
    fs.seg[0].flags = APN_SEG_F_SEQ;
    fs.seg[0].seq = 11;
    for (size_t step = 0; step < ARRAY_SIZE(order); step++) {
        uint64_t before = order[step] == APN_CNT__COUNT ? 0
                          : cnt(rx, order[step]);

        len = build_frame(buf, sizeof(buf), &fs);
        receive(rx, buf, len);
        if (order[step] == APN_CNT__COUNT) {
            ck_assert_mem_eq(rx->fake.mem + RX_BUF + 0x100, pattern(), 64);
        } else {
            ck_assert_msg(cnt(rx, order[step]) == before + 1,
                          "step %zu: expected %s", step,
                          apn_counter_name(order[step]));
            ck_assert_uint_eq(rx_drops(rx), step + 1);
        }
        switch (step) {
        case 0: fs.seg[0].nonce = NONCE; break;
        case 1: memcpy(fs.src, tx_mac, 6); break;
        case 2: fs.src_host = TX_HOST; break;
        case 3: fs.seg[0].seq = 10; break;
        case 4: fs.seg[0].offset = 0x100; break;
        }
    }
    ck_assert_uint_eq(rx->fake.dma_writes, 2);      /* payload + seq */

    /* Index and validity come before everything else. */
    fs.seg[0].nonce = NONCE2;
    fs.seg[0].in_index = TABLE_COUNT;
    len = build_frame(buf, sizeof(buf), &fs);
    receive(rx, buf, len);
    ck_assert_uint_eq(cnt(rx, APN_CNT_RX_DROP_INDEX), 1);
    fs.seg[0].in_index = RX_INDEX + 1;               /* zeroed: not valid */
    len = build_frame(buf, sizeof(buf), &fs);
    receive(rx, buf, len);
    ck_assert_uint_eq(cnt(rx, APN_CNT_RX_DROP_INVALID), 1);
    ck_assert_uint_eq(cnt(rx, APN_CNT_RX_DROP_NONCE), 1);
    nic_free(rx);
}
END_TEST

START_TEST(test_rx_truncated)
{
    Nic *rx = rx_nic();
    uint8_t buf[256];
    FrameSpec fs;
    uint8_t *snap;
    size_t full;

    spec_default(&fs, 0x100, 64);
    full = build_frame(buf, sizeof(buf), &fs);
    ck_assert_uint_gt(full, APN_MIN_ETH_FRAME);   /* no padding to hide in */
    snap = snapshot(rx);
    for (size_t len = 0; len < full; len++) {
        uint64_t drops = rx_drops(rx);
        uint64_t bad = cnt(rx, APN_CNT_RX_DROP_MALFORMED) +
                       cnt(rx, APN_CNT_RX_DROP_CRC) +
                       cnt(rx, APN_CNT_RX_FILTERED);

        receive(rx, buf, len);
        ck_assert_msg(rx_drops(rx) == drops + 1 &&
                      cnt(rx, APN_CNT_RX_DROP_MALFORMED) +
                      cnt(rx, APN_CNT_RX_DROP_CRC) +
                      cnt(rx, APN_CNT_RX_FILTERED) == bad + 1,
                      "truncated to %zu bytes: not dropped as malformed", len);
    }
    ck_assert_uint_eq(cnt(rx, APN_CNT_RX_SEGMENTS), 0);
    ck_assert_uint_eq(rx->fake.dma_writes, 0);
    assert_mem_unchanged(rx, snap, 0, 0);
    /* The whole frame still goes through. */
    receive(rx, buf, full);
    ck_assert_mem_eq(rx->fake.mem + RX_BUF + 0x100, pattern(), 64);
    free(snap);
    nic_free(rx);
}
END_TEST

START_TEST(test_rx_corrupt_any_byte)
{
    Nic *rx = rx_nic();
    uint8_t buf[256];
    FrameSpec fs;
    uint8_t *snap;
    size_t full;

    spec_default(&fs, 0x100, 64);
    full = build_frame(buf, sizeof(buf), &fs);
    snap = snapshot(rx);
    for (size_t i = 0; i < full; i++) {
        uint64_t drops = rx_drops(rx);

        if (i >= 6 && i < 12) {
            continue;       /* the source MAC is not checked by default */
        }
        for (unsigned bit = 0; bit < 8; bit++) {
            buf[i] ^= 1u << bit;
            receive(rx, buf, full);
            buf[i] ^= 1u << bit;
            ck_assert_msg(rx_drops(rx) == drops + 1,
                          "bit %u of byte %zu flipped: not dropped", bit, i);
            drops++;
        }
    }
    ck_assert_uint_eq(rx->fake.dma_writes, 0);
    assert_mem_unchanged(rx, snap, 0, 0);
    free(snap);
    nic_free(rx);
}
END_TEST

/* ============================================================================ */
/* Store gathering                                                               */
/* ============================================================================ */

START_TEST(test_gather_contiguous)
{
    Nic *tx = tx_nic();
    SentSeg s;

    /* Mixed sizes, each contiguous with the last: one segment. */
    store(tx, TX_SLOT, 0x40, 0x01, 1);
    store(tx, TX_SLOT, 0x41, 0x0302, 2);
    store(tx, TX_SLOT, 0x43, 0x04, 1);
    store(tx, TX_SLOT, 0x44, 0x08070605, 4);
    store(tx, TX_SLOT, 0x48, 0x100f0e0d0c0b0a09ull, 8);
    ck_assert_uint_eq(tx->fake.nframes, 0);
    fence(tx);
    ck_assert_uint_eq(tx->fake.nframes, 1);
    s = parse_sent(&tx->fake.frames[0]);
    ck_assert_uint_eq(s.offset, 0x40);
    ck_assert_uint_eq(s.len, 16);
    for (int i = 0; i < 16; i++) {
        ck_assert_uint_eq(s.payload[i], i + 1);
    }
    ck_assert_uint_eq(cnt(tx, APN_CNT_TX_STORES), 5);
    ck_assert_uint_eq(cnt(tx, APN_CNT_TX_SEGMENTS), 1);
    /* A fence with nothing gathered sends nothing. */
    fence(tx);
    wr(tx, APN_REG_FLUSH, 1);
    ck_assert_uint_eq(tx->fake.nframes, 1);
    nic_free(tx);
}
END_TEST

/*
 * Store `total` bytes contiguously from offset 0 (first store `lead` bytes,
 * then 8-byte stores) and check every frame: at most `mtu` bytes of Ethernet
 * payload, segments contiguous and in order, the data intact.
 */
static void check_mtu_split(uint32_t mtu, unsigned lead, uint32_t total,
                            bool full_frames)
{
    ApnCoreConfig cfg = default_cfg(tx_mac);
    struct apn_out_entry oe = out_entry(RX_HOST, RX_INDEX, 65536);
    const uint8_t *p = pattern();
    uint32_t next = 0, off = 0;
    Nic *tx;

    cfg.mtu = mtu;
    tx = nic_new_cfg(&cfg, MEM_SIZE);
    nic_program(tx, TX_HOST, TABLE_COUNT, TABLE_COUNT);
    set_route(tx, RX_HOST, rx_mac);
    put_out(tx, TX_SLOT, &oe);

    while (off < total) {
        unsigned size = off ? 8 : lead;
        uint64_t v = 0;

        while (size > total - off) {
            size /= 2;
        }

        for (unsigned i = 0; i < size; i++) {
            v |= (uint64_t)p[off + i] << (8 * i);
        }
        store(tx, TX_SLOT, off, v, size);
        off += size;
    }
    /* Full frames went out without waiting for a fence. */
    ck_assert_uint_ge(tx->fake.nframes, total / mtu);
    fence(tx);
    for (unsigned i = 0; i < tx->fake.nframes; i++) {
        const FakeFrame *f = &tx->fake.frames[i];
        SentSeg s = parse_sent(f);
        size_t payload = APN_FRAME_HDR_LEN + APN_SEG_HDR_LEN +
                         APN_SEG_PAD(s.len) + APN_CRC_LEN;

        ck_assert_msg(payload <= mtu, "mtu %u lead %u: frame %u carries %zu "
                      "bytes of Ethernet payload (segment of %u)", mtu, lead,
                      i, payload, s.len);
        ck_assert_uint_le(f->len, APN_ETH_HLEN + (size_t)(mtu > 46 ? mtu : 46));
        ck_assert_uint_eq(s.offset, next);
        ck_assert_mem_eq(s.payload, p + next, s.len);
        if (full_frames && i + 1 < tx->fake.nframes) {
            /* Not split early: another 8-byte store would not have fit. */
            ck_assert_uint_gt(payload + 8, mtu);
        }
        next += s.len;
    }
    ck_assert_uint_eq(next, total);
    ck_assert_uint_eq(cnt(tx, APN_CNT_TX_SEGMENTS), tx->fake.nframes);
    nic_free(tx);
}

START_TEST(test_gather_mtu_split)
{
    check_mtu_split(1500, 8, 16384, true);
    check_mtu_split(256, 8, 4096, true);
    check_mtu_split(9000, 8, 65536, true);
    check_mtu_split(1500, 4, 4096, false);
}
END_TEST

START_TEST(test_gather_mtu_any)
{
    /* Every MTU the device accepts, including ones not a multiple of 4. */
    for (uint32_t mtu = 256; mtu < 300; mtu++) {
        for (unsigned lead = 1; lead <= 8; lead *= 2) {
            check_mtu_split(mtu, lead, 2048, false);
        }
    }
    check_mtu_split(1501, 1, 4096, false);
}
END_TEST

START_TEST(test_gather_flush_order)
{
    Nic *tx = tx_nic();
    struct apn_out_entry oe = out_entry(RX_HOST, 11, 4096);
    SentSeg s[8];

    /*
     * Each store that does not continue the burst closes it into a segment;
     * segments for one host are packed into one frame in store order.
     */
    put_out(tx, 6, &oe);
    store(tx, TX_SLOT, 0, 0xa, 8);
    store(tx, TX_SLOT, 8, 0xb, 8);
    store(tx, TX_SLOT, 32, 0xc, 8);              /* gap: closes */
    store(tx, 6, 40, 0xd, 8);                    /* other slot: closes */
    store(tx, 6, 32, 0xe, 8);                    /* backwards: closes */
    store(tx, 6, 32, 0xf, 8);                    /* same address: closes */
    ck_assert_uint_eq(tx->fake.nframes, 0);
    ck_assert_uint_eq(cnt(tx, APN_CNT_TX_SEGMENTS), 4);
    fence(tx);
    ck_assert_uint_eq(tx->fake.nframes, 1);
    ck_assert_uint_eq(cnt(tx, APN_CNT_TX_SEGMENTS), 5);
    ck_assert_uint_eq(cnt(tx, APN_CNT_TX_FRAMES), 1);
    ck_assert_uint_eq(parse_frame(&tx->fake.frames[0], s, 8), 5);

    ck_assert_uint_eq(s[0].out_index, TX_SLOT);
    ck_assert_uint_eq(s[0].in_index, RX_INDEX);
    ck_assert_uint_eq(s[0].offset, 0);
    ck_assert_uint_eq(s[0].len, 16);
    ck_assert_uint_eq(s[0].payload[0], 0xa);
    ck_assert_uint_eq(s[0].payload[8], 0xb);
    ck_assert_uint_eq(s[1].out_index, TX_SLOT);
    ck_assert_uint_eq(s[1].in_index, RX_INDEX);
    ck_assert_uint_eq(s[1].offset, 32);
    ck_assert_uint_eq(s[1].payload[0], 0xc);
    ck_assert_uint_eq(s[2].out_index, 6);
    ck_assert_uint_eq(s[2].in_index, 11);
    ck_assert_uint_eq(s[2].offset, 40);
    ck_assert_uint_eq(s[2].payload[0], 0xd);
    ck_assert_uint_eq(s[3].out_index, 6);
    ck_assert_uint_eq(s[3].offset, 32);
    ck_assert_uint_eq(s[3].payload[0], 0xe);
    ck_assert_uint_eq(s[4].out_index, 6);
    ck_assert_uint_eq(s[4].offset, 32);
    ck_assert_uint_eq(s[4].payload[0], 0xf);
    for (int i = 0; i < 5; i++) {
        ck_assert_uint_eq(s[i].type, APN_SEG_WRITE);
        ck_assert_uint_eq(s[i].dst_host, RX_HOST);
        ck_assert_uint_eq(s[i].nonce, NONCE);
        ck_assert_uint_eq(s[i].len, i ? 8 : 16);
    }
    nic_free(tx);
}
END_TEST

START_TEST(test_gather_timer)
{
    Nic *tx = tx_nic();

    store(tx, TX_SLOT, 0, 1, 8);
    ck_assert(tx->fake.timer_armed);
    ck_assert_uint_eq(tx->fake.timer_arms, 1);
    ck_assert_uint_eq(tx->fake.timer_delay_ns, 5000);
    /* Armed once per gather: a later store only notes its time. */
    tx->fake.now_ns = 1000;
    store(tx, TX_SLOT, 8, 2, 8);
    ck_assert_uint_eq(tx->fake.timer_arms, 1);
    ck_assert(tx->fake.timer_armed);
    ck_assert_uint_eq(tx->fake.nframes, 0);

    /* Expiry 5000 ns after the first store: idle for 4000, wait 1000 more. */
    tx->fake.now_ns = 5000;
    tx->fake.timer_armed = false;
    apn_core_flush_timer(&tx->core);
    ck_assert_uint_eq(tx->fake.nframes, 0);
    ck_assert(tx->fake.timer_armed);
    ck_assert_uint_eq(tx->fake.timer_arms, 2);
    ck_assert_uint_eq(tx->fake.timer_delay_ns, 1000);

    /*
     * Idle for the whole delay: the timer firing sends the burst, and keeps
     * running (a store came recently), so the next gather need not arm it.
     */
    tx->fake.now_ns = 6000;
    tx->fake.timer_armed = false;
    apn_core_flush_timer(&tx->core);
    ck_assert_uint_eq(tx->fake.nframes, 1);
    ck_assert_uint_eq(parse_sent(&tx->fake.frames[0]).len, 16);
    ck_assert(tx->fake.timer_armed);
    ck_assert_uint_eq(tx->fake.timer_arms, 3);
    ck_assert_uint_eq(tx->fake.timer_delay_ns, 5000);

    /* The next burst finds it running; a fence sends and leaves it running. */
    tx->fake.now_ns = 7000;
    store(tx, TX_SLOT, 0x100, 3, 8);
    ck_assert_uint_eq(tx->fake.timer_arms, 3);
    fence(tx);
    ck_assert_uint_eq(tx->fake.nframes, 2);
    ck_assert(tx->fake.timer_armed);

    /* FLUSH sends as well. */
    store(tx, TX_SLOT, 0x200, 4, 8);
    wr(tx, APN_REG_FLUSH, 0);
    ck_assert_uint_eq(tx->fake.nframes, 3);
    ck_assert_uint_eq(tx->fake.timer_arms, 3);
    ck_assert_uint_eq(tx->fake.timer_cancels, 0);

    /*
     * Nothing gathered: expiries keep it running until 20 delays pass
     * without a store (last store at 7000), then it stops and the next
     * gather arms it again.
     */
    tx->fake.now_ns = 7000 + 20 * 5000 - 1;
    tx->fake.timer_armed = false;
    apn_core_flush_timer(&tx->core);
    ck_assert(tx->fake.timer_armed);
    ck_assert_uint_eq(tx->fake.timer_arms, 4);
    tx->fake.now_ns = 7000 + 20 * 5000;
    tx->fake.timer_armed = false;
    apn_core_flush_timer(&tx->core);
    ck_assert(!tx->fake.timer_armed);
    ck_assert_uint_eq(tx->fake.timer_arms, 4);
    ck_assert_uint_eq(tx->fake.nframes, 3);
    store(tx, TX_SLOT, 0x300, 5, 8);
    ck_assert(tx->fake.timer_armed);
    ck_assert_uint_eq(tx->fake.timer_arms, 5);
    ck_assert_uint_eq(tx->fake.timer_delay_ns, 5000);
    nic_free(tx);
}
END_TEST

typedef struct TxCase {
    const char *name;
    void (*setup)(Nic *tx);
    uint32_t slot, off;
    unsigned size;
    enum apn_counter_id expect;
    unsigned guest_errors;
} TxCase;

static void txs_none(Nic *tx)
{
    (void)tx;
}

static void txs_disabled(Nic *tx)
{
    wr(tx, APN_REG_CTRL, 0);
}

static void txs_not_valid(Nic *tx)
{
    struct apn_out_entry oe = out_entry(RX_HOST, RX_INDEX, 4096);

    oe.flags = 0;
    put_out(tx, TX_SLOT, &oe);
}

static void txs_no_route(Nic *tx)
{
    apn_core_reg_write(&tx->core, APN_REG_HOST_MAC_BASE + 8 * RX_HOST,
                       0x0000aabbccddeeffull, 8);
}

static void txs_no_route_host(Nic *tx)
{
    struct apn_out_entry oe = out_entry(0x1234, RX_INDEX, 4096);

    put_out(tx, TX_SLOT, &oe);
}

static void txs_small(Nic *tx)
{
    struct apn_out_entry oe = out_entry(RX_HOST, RX_INDEX, 64);

    put_out(tx, TX_SLOT, &oe);
}

static void txs_table_unreadable(Nic *tx)
{
    wr(tx, APN_REG_CTRL, 0);
    wr(tx, APN_REG_OUT_TABLE_LO, MEM_SIZE - 64 * 4);
    wr(tx, APN_REG_CTRL, APN_CTRL_ENABLE);
}

static const TxCase tx_cases[] = {
    { "disabled", txs_disabled, TX_SLOT, 0, 8, APN_CNT_TX_DROP_DISABLED, 0 },
    { "slot >= num_out", txs_none, 256, 0, 8, APN_CNT_TX_DROP_INVALID, 0 },
    { "slot >= table count", txs_none, TABLE_COUNT, 0, 8,
      APN_CNT_TX_DROP_INVALID, 1 },
    { "entry not valid", txs_not_valid, TX_SLOT, 0, 8,
      APN_CNT_TX_DROP_INVALID, 1 },
    { "table unreadable", txs_table_unreadable, TX_SLOT, 0, 8,
      APN_CNT_TX_DROP_INVALID, 2 },
    { "bounds", txs_none, TX_SLOT, 4096 - 4, 8, APN_CNT_TX_DROP_BOUNDS, 1 },
    { "bounds at size", txs_none, TX_SLOT, 4096, 1, APN_CNT_TX_DROP_BOUNDS,
      1 },
    { "bounds small", txs_small, TX_SLOT, 64, 4, APN_CNT_TX_DROP_BOUNDS, 1 },
    { "bounds slot end", txs_none, TX_SLOT, 0xfff8, 8,
      APN_CNT_TX_DROP_BOUNDS, 1 },
    { "no route", txs_no_route, TX_SLOT, 0, 8, APN_CNT_TX_DROP_NO_ROUTE, 1 },
    { "no route (host >= 256)", txs_no_route_host, TX_SLOT, 0, 8,
      APN_CNT_TX_DROP_NO_ROUTE, 1 },
};

START_TEST(test_tx_drop_case)
{
    const TxCase *c = &tx_cases[_i];
    Nic *tx = tx_nic();

    c->setup(tx);
    qemu_log_counts_reset();
    store(tx, c->slot, c->off, 0x1122334455667788ull, c->size);
    if (c->expect != APN_CNT_TX_DROP_NO_ROUTE) {
        /* Dropped at the store: nothing gathered, no timer. */
        ck_assert(!tx->fake.timer_armed);
    }
    fence(tx);
    apn_core_flush_timer(&tx->core);
    ck_assert_uint_eq(tx->fake.nframes, 0);
    ck_assert_uint_eq(cnt(tx, APN_CNT_TX_FRAMES), 0);
    ck_assert_uint_eq(cnt(tx, APN_CNT_TX_SEGMENTS), 0);
    ck_assert_uint_eq(cnt(tx, APN_CNT_TX_STORES), 1);
    assert_only_tx_drop(tx, c->expect, 1);
    ck_assert_msg(qemu_log_guest_errors == c->guest_errors,
                  "%s: %u guest errors logged", c->name,
                  qemu_log_guest_errors);
    nic_free(tx);
}
END_TEST

START_TEST(test_tx_bounds_keeps_burst)
{
    Nic *tx = tx_nic();
    SentSeg s;

    /* A store past the end is dropped; what was gathered still goes. */
    store(tx, TX_SLOT, 4096 - 8, 0x55, 8);
    store(tx, TX_SLOT, 4096, 0x66, 8);
    ck_assert_uint_eq(cnt(tx, APN_CNT_TX_DROP_BOUNDS), 1);
    fence(tx);
    ck_assert_uint_eq(tx->fake.nframes, 1);
    s = parse_sent(&tx->fake.frames[0]);
    ck_assert_uint_eq(s.offset, 4096 - 8);
    ck_assert_uint_eq(s.len, 8);
    ck_assert_uint_eq(s.payload[0], 0x55);
    nic_free(tx);
}
END_TEST

START_TEST(test_gather_flushed_by_control_writes)
{
    Nic *tx = tx_nic();
    struct apn_out_entry oe = out_entry(RX_HOST, RX_INDEX, 4096);
    static const uint8_t new_mac[6] = { 0x52, 0x54, 0x00, 0xbb, 0xbb, 0xbb };
    SentSeg s;

    /* TABLE_INVAL: the burst goes out under the entry it was gathered with. */
    store(tx, TX_SLOT, 0, 1, 8);
    oe.nonce = NONCE2;
    put_out(tx, TX_SLOT, &oe);
    wr(tx, APN_REG_TABLE_INVAL, APN_INVAL_OUT | TX_SLOT);
    ck_assert_uint_eq(tx->fake.nframes, 1);
    ck_assert_uint_eq(parse_sent(&tx->fake.frames[0]).nonce, NONCE);
    s = parse_sent(send_one(tx, TX_SLOT, 8, 8));
    ck_assert_uint_eq(s.nonce, NONCE2);

    /* Invalidating another index (or the other table) flushes too. */
    store(tx, TX_SLOT, 0x10, 2, 8);
    wr(tx, APN_REG_TABLE_INVAL, 3);
    ck_assert_uint_eq(tx->fake.nframes, 3);

    /* A route change: the burst goes to the old MAC. */
    store(tx, TX_SLOT, 0x20, 3, 8);
    set_route(tx, RX_HOST, new_mac);
    ck_assert_uint_eq(tx->fake.nframes, 4);
    ck_assert_mem_eq(tx->fake.frames[3].data, rx_mac, 6);
    store(tx, TX_SLOT, 0x30, 4, 8);
    wr(tx, APN_REG_HOST_MAC_BASE + 8 * 200, 0);
    ck_assert_uint_eq(tx->fake.nframes, 5);
    ck_assert_mem_eq(tx->fake.frames[4].data, new_mac, 6);

    /* A host id change: the burst carries the old source. */
    store(tx, TX_SLOT, 0x40, 5, 8);
    wr(tx, APN_REG_HOST_ID, 42);
    ck_assert_uint_eq(tx->fake.nframes, 6);
    ck_assert_uint_eq(parse_sent(&tx->fake.frames[5]).src_host, TX_HOST);

    /* Clearing CTRL.ENABLE sends what was accepted while enabled. */
    store(tx, TX_SLOT, 0x50, 6, 8);
    wr(tx, APN_REG_CTRL, 0);
    ck_assert_uint_eq(tx->fake.nframes, 7);
    ck_assert_uint_eq(parse_sent(&tx->fake.frames[6]).src_host, 42);
    nic_free(tx);
}
END_TEST

START_TEST(test_aperture_read)
{
    Nic *tx = tx_nic();

    store(tx, TX_SLOT, 0, 1, 8);
    ck_assert_uint_eq(apn_core_aperture_read(&tx->core, ap(tx, TX_SLOT, 0),
                                             8), 0);
    /* A read orders after earlier stores: they are sent first. */
    ck_assert_uint_eq(tx->fake.nframes, 1);
    ck_assert_uint_eq(parse_sent(&tx->fake.frames[0]).type, APN_SEG_WRITE);
    ck_assert(!tx->core.burst.active && !tx->core.pend.active);
    nic_free(tx);
}
END_TEST

/* ============================================================================ */
/* Mapping cache                                                                 */
/* ============================================================================ */

/* A receiver with `nent` contiguous apertures 0..nent-1 of 4 KiB each. */
static Nic *cache_nic(uint32_t cache_entries, uint32_t nent)
{
    ApnCoreConfig cfg = default_cfg(rx_mac);
    Nic *n;

    cfg.cache_entries = cache_entries;
    n = nic_new_cfg(&cfg, MEM_SIZE);
    nic_program(n, RX_HOST, TABLE_COUNT, TABLE_COUNT);
    for (uint32_t i = 0; i < nent; i++) {
        struct apn_in_entry e = contig_in(RX_BUF + 0x1000 * i, 4096);
        put_in(n, i, &e);
    }
    return n;
}

/* Deliver 8 bytes to aperture `idx` and say whether it hit the cache. */
static bool touch(Nic *n, uint32_t idx, uint32_t nonce)
{
    uint64_t hits = cnt(n, APN_CNT_CACHE_HITS);
    uint64_t misses = cnt(n, APN_CNT_CACHE_MISSES);
    unsigned reads = n->fake.dma_reads;
    uint8_t buf[128];
    FrameSpec fs;
    size_t len;

    spec_default(&fs, 0, 8);
    fs.seg[0].in_index = idx;
    fs.seg[0].nonce = nonce;
    len = build_frame(buf, sizeof(buf), &fs);
    receive(n, buf, len);
    ck_assert_uint_eq(cnt(n, APN_CNT_CACHE_HITS) +
                      cnt(n, APN_CNT_CACHE_MISSES), hits + misses + 1);
    if (cnt(n, APN_CNT_CACHE_HITS) > hits) {
        /* A hit never reads guest memory. */
        ck_assert_uint_eq(n->fake.dma_reads, reads);
        return true;
    }
    ck_assert_uint_eq(n->fake.dma_reads, reads + 1);
    return false;
}

START_TEST(test_cache_lru)
{
    Nic *n = cache_nic(4, 5);
    enum { A, B, C, D, E };

    ck_assert(!touch(n, A, NONCE));
    ck_assert(!touch(n, B, NONCE));
    ck_assert(!touch(n, C, NONCE));
    ck_assert(!touch(n, D, NONCE));
    ck_assert_uint_eq(cnt(n, APN_CNT_CACHE_EVICTIONS), 0);
    ck_assert(touch(n, A, NONCE));
    ck_assert(!touch(n, E, NONCE));            /* evicts B, the LRU */
    ck_assert_uint_eq(cnt(n, APN_CNT_CACHE_EVICTIONS), 1);
    ck_assert(touch(n, A, NONCE));
    ck_assert(touch(n, C, NONCE));
    ck_assert(touch(n, D, NONCE));
    ck_assert(touch(n, E, NONCE));
    ck_assert(!touch(n, B, NONCE));            /* evicts A */
    ck_assert_uint_eq(cnt(n, APN_CNT_CACHE_EVICTIONS), 2);
    ck_assert(!touch(n, A, NONCE));            /* evicts C */
    ck_assert(touch(n, D, NONCE));
    ck_assert(touch(n, E, NONCE));
    ck_assert(touch(n, B, NONCE));
    ck_assert_uint_eq(cnt(n, APN_CNT_CACHE_HITS), 8);
    ck_assert_uint_eq(cnt(n, APN_CNT_CACHE_MISSES), 7);
    ck_assert_uint_eq(cnt(n, APN_CNT_CACHE_EVICTIONS), 3);
    /* Every frame was delivered. */
    ck_assert_uint_eq(rx_drops(n), 0);
    nic_free(n);
}
END_TEST

START_TEST(test_cache_inval_index)
{
    Nic *n = cache_nic(4, 5);
    struct apn_in_entry e = contig_in(RX_BUF, 4096);

    ck_assert(!touch(n, 0, NONCE));
    ck_assert(touch(n, 0, NONCE));
    /* The OS changes the entry and invalidates it: the new nonce counts. */
    e.nonce = NONCE2;
    put_in(n, 0, &e);
    wr(n, APN_REG_TABLE_INVAL, 0);
    ck_assert(!touch(n, 0, NONCE2));
    ck_assert_uint_eq(rx_drops(n), 0);
    touch(n, 0, NONCE);
    assert_only_rx_drop(n, APN_CNT_RX_DROP_NONCE, 1);

    /* The same index in the other table is a different entry. */
    wr(n, APN_REG_TABLE_INVAL, APN_INVAL_OUT | 0);
    ck_assert(touch(n, 0, NONCE2));

    /* A freed slot is reused before anything is evicted. */
    ck_assert(!touch(n, 1, NONCE));
    ck_assert(!touch(n, 2, NONCE));
    ck_assert(!touch(n, 3, NONCE));
    wr(n, APN_REG_TABLE_INVAL, 2);
    ck_assert(!touch(n, 4, NONCE));
    ck_assert_uint_eq(cnt(n, APN_CNT_CACHE_EVICTIONS), 0);
    ck_assert(touch(n, 0, NONCE2));
    ck_assert(touch(n, 1, NONCE));
    ck_assert(touch(n, 3, NONCE));
    ck_assert(!touch(n, 2, NONCE));
    ck_assert_uint_eq(cnt(n, APN_CNT_CACHE_EVICTIONS), 1);
    /* Invalidating what is not cached is harmless. */
    wr(n, APN_REG_TABLE_INVAL, 12);
    wr(n, APN_REG_TABLE_INVAL, 0x7ffffffe);
    ck_assert(touch(n, 2, NONCE));
    nic_free(n);
}
END_TEST

START_TEST(test_cache_inval_all)
{
    Nic *n = cache_nic(4, 5);

    for (uint32_t i = 0; i < 4; i++) {
        ck_assert(!touch(n, i, NONCE));
    }
    /* An aperture store caches outgoing entry 0 (evicting incoming 0). */
    store(n, 0, 0, 0, 8);
    ck_assert_uint_eq(cnt(n, APN_CNT_CACHE_EVICTIONS), 1);
    ck_assert(touch(n, 1, NONCE));

    /* ALL of the outgoing table leaves the incoming entries alone. */
    wr(n, APN_REG_TABLE_INVAL, APN_INVAL_OUT | APN_INVAL_ALL_INDEX);
    ck_assert(touch(n, 1, NONCE));
    ck_assert(touch(n, 2, NONCE));
    ck_assert(touch(n, 3, NONCE));
    ck_assert(!touch(n, 0, NONCE));            /* reuses the freed slot */
    ck_assert_uint_eq(cnt(n, APN_CNT_CACHE_EVICTIONS), 1);

    /* ALL of the incoming table: every entry is read again, none evicted. */
    wr(n, APN_REG_TABLE_INVAL, APN_INVAL_ALL_INDEX);
    for (uint32_t i = 0; i < 4; i++) {
        ck_assert(!touch(n, i, NONCE));
    }
    ck_assert_uint_eq(cnt(n, APN_CNT_CACHE_EVICTIONS), 1);
    ck_assert_uint_eq(rx_drops(n), 0);
    nic_free(n);
}
END_TEST

START_TEST(test_cache_big_table)
{
    static const uint32_t strides[] = { 1, 61, 64 };
    const uint64_t in_table = 4u << 20;

    for (size_t s = 0; s < ARRAY_SIZE(strides); s++) {
        ApnCoreConfig cfg = default_cfg(rx_mac);
        uint32_t nkeys = 1024;
        unsigned max_chain = 0;
        Nic *n;

        cfg.cache_entries = nkeys;
        n = nic_new_cfg(&cfg, 8u << 20);
        wr(n, APN_REG_IN_TABLE_LO, (uint32_t)in_table);
        wr(n, APN_REG_IN_TABLE_COUNT, 65536);
        ck_assert_uint_eq(rd(n, APN_REG_IN_TABLE_COUNT), 65536);
        wr(n, APN_REG_HOST_ID, RX_HOST);
        wr(n, APN_REG_CTRL, APN_CTRL_ENABLE);
        for (uint32_t i = 0; i < nkeys; i++) {
            uint32_t idx = i ? (i * strides[s]) % 65536 : 65535;
            struct apn_in_entry e = contig_in(RX_BUF, 4096);
            put_in(n, idx, &e);
            ck_assert(!touch(n, idx, NONCE));
        }
        for (uint32_t i = 0; i < nkeys; i++) {
            uint32_t idx = i ? (i * strides[s]) % 65536 : 65535;
            ck_assert_msg(touch(n, idx, NONCE), "stride %u: index %u missed",
                          strides[s], idx);
        }
        ck_assert_uint_eq(cnt(n, APN_CNT_CACHE_EVICTIONS), 0);
        ck_assert_uint_eq(rx_drops(n), 0);

        /* A hit walks one short hash chain, whatever the table size. */
        for (uint32_t b = 0; b <= n->core.cache.bucket_mask; b++) {
            unsigned len = 0;
            for (int32_t i = n->core.cache.buckets[b]; i >= 0;
                 i = n->core.cache.slots[i].hash_next) {
                len++;
            }
            max_chain = len > max_chain ? len : max_chain;
        }
        ck_assert_msg(max_chain <= 8, "stride %u: hash chain of %u",
                      strides[s], max_chain);
        nic_free(n);
    }
}
END_TEST

START_TEST(test_cache_tx_hit)
{
    Nic *tx = tx_nic();
    unsigned reads;

    send_one(tx, TX_SLOT, 0, 8);
    ck_assert_uint_eq(cnt(tx, APN_CNT_CACHE_MISSES), 1);
    reads = tx->fake.dma_reads;
    send_one(tx, TX_SLOT, 8, 8);
    ck_assert_uint_eq(cnt(tx, APN_CNT_CACHE_HITS), 1);
    ck_assert_uint_eq(tx->fake.dma_reads, reads);
    nic_free(tx);
}
END_TEST

/* ============================================================================ */
/* OS queue                                                                      */
/* ============================================================================ */

static const uint8_t *osq_event(Nic *n, uint32_t slot)
{
    return n->fake.mem + OSQ_ADDR + sizeof(struct apn_queue_ctrl) +
           slot * sizeof(struct apn_event);
}

static uint32_t osq_ctrl(Nic *n, size_t field)
{
    return get_le32(n->fake.mem + OSQ_ADDR + field);
}

static unsigned osq_writes_seen;
static unsigned osq_event_write_at, osq_wrptr_write_at;

static void osq_order_hook(Fake *f, uint64_t addr, uint64_t len)
{
    /* Nothing is signalled before the event and the mirror are written. */
    ck_assert_uint_eq(f->nnotify, 0);
    osq_writes_seen++;
    if (addr == OSQ_ADDR + sizeof(struct apn_queue_ctrl) && len == 16) {
        osq_event_write_at = osq_writes_seen;
    }
    if (addr == OSQ_ADDR + offsetof(struct apn_queue_ctrl, wrptr)) {
        osq_wrptr_write_at = osq_writes_seen;
    }
}

START_TEST(test_osq_event_layout)
{
    ApnCoreConfig cfg = default_cfg(rx_mac);
    Nic *n = nic_new_cfg(&cfg, MEM_SIZE);
    const uint8_t *ev;

    nic_program(n, RX_HOST, TABLE_COUNT, TABLE_COUNT);
    memset(n->fake.mem + OSQ_ADDR + 64, 0xaa, 16 * OSQ_EVENTS);
    n->fake.on_write = osq_order_hook;
    wr(n, APN_REG_IRQ_TEST, 0);
    n->fake.on_write = NULL;
    ck_assert_uint_eq(osq_event_write_at, 1);
    ck_assert_uint_eq(osq_wrptr_write_at, 2);

    ev = osq_event(n, 0);
    ck_assert_uint_eq(ev[0], APN_EV_TEST);
    ck_assert_uint_eq(ev[1], 0);                   /* flags */
    ck_assert_uint_eq(ev[2] | ev[3] << 8, 0);      /* endpoint */
    ck_assert_uint_eq(get_le32(ev + 4), 0);         /* info: the vector */
    ck_assert_uint_eq(get_le64(ev + 8), 0);         /* data */
    ck_assert_uint_eq(osq_event(n, 1)[0], 0xaa);
    ck_assert_uint_eq(osq_ctrl(n, offsetof(struct apn_queue_ctrl, wrptr)), 1);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 1);
    ck_assert_uint_eq(n->fake.nnotify, 1);
    ck_assert_uint_eq(n->fake.notify_vec[0], APN_VEC_OSQ);

    wr(n, APN_REG_IRQ_TEST, 1);
    ev = osq_event(n, 1);
    ck_assert_uint_eq(ev[0], APN_EV_TEST);
    ck_assert_uint_eq(get_le32(ev + 4), 1);
    ck_assert_uint_eq(osq_ctrl(n, offsetof(struct apn_queue_ctrl, wrptr)), 2);
    ck_assert_uint_eq(n->fake.nnotify, 2);
    ck_assert_uint_eq(n->fake.notify_vec[1], 1);
    ck_assert_uint_eq(cnt(n, APN_CNT_OSQ_EVENTS), 2);
    ck_assert_uint_eq(cnt(n, APN_CNT_IRQS), 2);
    /* The device does not touch the consumer's fields. */
    ck_assert_uint_eq(osq_ctrl(n, offsetof(struct apn_queue_ctrl, rdptr)), 0);
    ck_assert_uint_eq(osq_ctrl(n, offsetof(struct apn_queue_ctrl, overflows)),
                      0);
    nic_free(n);
}
END_TEST

START_TEST(test_osq_irq_test_vector)
{
    static const uint32_t bad[] = { APN_NUM_VECTORS, 2, 0x100, 0xffffffffu };
    ApnCoreConfig cfg = default_cfg(rx_mac);
    Nic *n = nic_new_cfg(&cfg, MEM_SIZE);

    nic_program(n, RX_HOST, TABLE_COUNT, TABLE_COUNT);
    qemu_log_counts_reset();
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        wr(n, APN_REG_IRQ_TEST, bad[i]);
    }
    ck_assert_uint_eq(qemu_log_guest_errors, ARRAY_SIZE(bad));
    ck_assert_uint_eq(n->fake.nnotify, 0);
    ck_assert_uint_eq(n->fake.dma_writes, 0);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 0);

    /* No queue programmed: nothing is written. */
    wr(n, APN_REG_OSQ_SIZE, 0);
    wr(n, APN_REG_IRQ_TEST, 0);
    ck_assert_uint_eq(n->fake.dma_writes, 0);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 0);

    /* A queue outside guest memory: reported, not signalled. */
    wr(n, APN_REG_OSQ_BASE_HI, 1);
    wr(n, APN_REG_OSQ_SIZE, 4);
    qemu_log_counts_reset();
    wr(n, APN_REG_IRQ_TEST, 0);
    ck_assert_uint_eq(qemu_log_guest_errors, 1);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 0);
    ck_assert_uint_eq(n->fake.nnotify, 0);
    nic_free(n);
}
END_TEST

START_TEST(test_osq_overflow)
{
    ApnCoreConfig cfg = default_cfg(rx_mac);
    Nic *n = nic_new_cfg(&cfg, MEM_SIZE);
    uint8_t *snap;

    nic_program(n, RX_HOST, TABLE_COUNT, TABLE_COUNT);
    wr(n, APN_REG_OSQ_SIZE, 4);
    for (uint32_t i = 0; i < 4; i++) {
        wr(n, APN_REG_IRQ_TEST, i & 1);
    }
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 4);
    ck_assert_uint_eq(cnt(n, APN_CNT_OSQ_OVERFLOWS), 0);

    /* Full: counted, never overwritten, the vector still raised. */
    snap = snapshot(n);
    wr(n, APN_REG_IRQ_TEST, 1);
    ck_assert_uint_eq(cnt(n, APN_CNT_OSQ_OVERFLOWS), 1);
    ck_assert_uint_eq(osq_ctrl(n, offsetof(struct apn_queue_ctrl, overflows)),
                      1);
    snap[OSQ_ADDR + offsetof(struct apn_queue_ctrl, overflows)] = 1;
    assert_mem_unchanged(n, snap, 0, 0);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 4);
    ck_assert_uint_eq(cnt(n, APN_CNT_OSQ_EVENTS), 4);
    ck_assert_uint_eq(n->fake.nnotify, 5);
    ck_assert_uint_eq(n->fake.notify_vec[4], 1);

    /* Consuming two makes room for two; they wrap to slots 0 and 1. */
    wr(n, APN_REG_OSQ_RDPTR, 2);
    wr(n, APN_REG_IRQ_TEST, 1);
    wr(n, APN_REG_IRQ_TEST, 1);
    ck_assert_uint_eq(get_le32(osq_event(n, 0) + 4), 1);
    ck_assert_uint_eq(get_le32(osq_event(n, 1) + 4), 1);
    ck_assert_uint_eq(get_le32(osq_event(n, 2) + 4), 0);
    ck_assert_uint_eq(osq_ctrl(n, offsetof(struct apn_queue_ctrl, wrptr)), 6);
    wr(n, APN_REG_IRQ_TEST, 0);
    ck_assert_uint_eq(cnt(n, APN_CNT_OSQ_OVERFLOWS), 2);
    ck_assert_uint_eq(osq_ctrl(n, offsetof(struct apn_queue_ctrl, overflows)),
                      2);
    ck_assert_uint_eq(get_le32(osq_event(n, 2) + 4), 0);
    free(snap);
    nic_free(n);
}
END_TEST

START_TEST(test_osq_link_events)
{
    ApnCoreConfig cfg = default_cfg(rx_mac);
    Nic *n = nic_new_cfg(&cfg, MEM_SIZE);

    /* While disabled the status changes silently. */
    apn_core_set_link(&n->core, true);
    ck_assert_uint_eq(rd(n, APN_REG_STATUS), APN_STATUS_LINK_UP);
    ck_assert_uint_eq(n->fake.nnotify, 0);

    nic_program(n, RX_HOST, TABLE_COUNT, TABLE_COUNT);
    apn_core_set_link(&n->core, true);          /* no change: no event */
    ck_assert_uint_eq(n->fake.nnotify, 0);
    apn_core_set_link(&n->core, false);
    ck_assert_uint_eq(rd(n, APN_REG_STATUS), 0);
    ck_assert_uint_eq(osq_event(n, 0)[0], APN_EV_LINK);
    ck_assert_uint_eq(get_le32(osq_event(n, 0) + 4), 0);
    apn_core_set_link(&n->core, true);
    ck_assert_uint_eq(osq_event(n, 1)[0], APN_EV_LINK);
    ck_assert_uint_eq(get_le32(osq_event(n, 1) + 4), APN_STATUS_LINK_UP);
    ck_assert_uint_eq(n->fake.nnotify, 2);
    ck_assert_uint_eq(n->fake.notify_vec[0], APN_VEC_OSQ);
    ck_assert_uint_eq(n->fake.notify_vec[1], APN_VEC_OSQ);
    nic_free(n);
}
END_TEST

START_TEST(test_osq_dma_error_event)
{
    Nic *rx = rx_nic();
    uint8_t buf[128];
    FrameSpec fs;
    size_t len;
    const uint8_t *ev;

    wr(rx, APN_REG_CTRL, 0);
    wr(rx, APN_REG_IN_TABLE_HI, 1);
    wr(rx, APN_REG_CTRL, APN_CTRL_ENABLE);
    spec_default(&fs, 0, 8);
    len = build_frame(buf, sizeof(buf), &fs);
    receive(rx, buf, len);
    assert_only_rx_drop(rx, APN_CNT_RX_DROP_INDEX, 1);
    ev = osq_event(rx, 0);
    ck_assert_uint_eq(ev[0], APN_EV_DEVICE_ERROR);
    ck_assert_uint_eq(get_le32(ev + 4), APN_ERR_DMA);
    ck_assert_uint_eq(get_le64(ev + 8),
                      0x100000000ull + IN_TABLE + RX_INDEX * 64);
    ck_assert_uint_eq(rx->fake.nnotify, 1);
    ck_assert_uint_eq(rx->fake.notify_vec[0], APN_VEC_OSQ);
    nic_free(rx);
}
END_TEST

/* ============================================================================ */
/* Migration                                                                     */
/* ============================================================================ */

/*
 * Migrate `src` into a fresh core on a fresh machine: guest RAM, the
 * registers and (when active) the burst travel, as apertnic.c's VMState
 * does; nothing else does.
 */
static Nic *migrate(Nic *src)
{
    Nic *dst = nic_new_cfg(&src->core.cfg, src->fake.mem_size);

    memcpy(dst->fake.mem, src->fake.mem, src->fake.mem_size);
    dst->core.regs = src->core.regs;
    if (src->core.burst.active) {
        dst->core.burst = src->core.burst;
    }
    if (src->core.pend.active) {
        dst->core.pend = src->core.pend;
    }
    dst->fake.now_ns = 1000000;     /* another host's clock */
    apn_core_post_load(&dst->core);
    return dst;
}

START_TEST(test_post_load_clamps)
{
    Nic *tx = tx_nic();
    ApnCoreRegs *r = &tx->core.regs;

    send_one(tx, TX_SLOT, 0, 8);

    /* An untrusted stream: sizes beyond what the device has. */
    r->in_table_count = 65537;
    r->out_table_count = 257;
    r->osq_size = 3;
    apn_core_post_load(&tx->core);
    ck_assert_uint_eq(rd(tx, APN_REG_IN_TABLE_COUNT), 0);
    ck_assert_uint_eq(rd(tx, APN_REG_OUT_TABLE_COUNT), 0);
    ck_assert_uint_eq(rd(tx, APN_REG_OSQ_SIZE), 0);
    r->osq_size = 1u << 21;
    apn_core_post_load(&tx->core);
    ck_assert_uint_eq(rd(tx, APN_REG_OSQ_SIZE), 0);
    r->osq_size = 0x80000000u;
    apn_core_post_load(&tx->core);
    ck_assert_uint_eq(rd(tx, APN_REG_OSQ_SIZE), 0);

    /* In-range values survive. */
    r->in_table_count = 65536;
    r->out_table_count = 256;
    r->osq_size = 1u << 20;
    apn_core_post_load(&tx->core);
    ck_assert_uint_eq(rd(tx, APN_REG_IN_TABLE_COUNT), 65536);
    ck_assert_uint_eq(rd(tx, APN_REG_OUT_TABLE_COUNT), 256);
    ck_assert_uint_eq(rd(tx, APN_REG_OSQ_SIZE), 1u << 20);

    /* The mapping cache is not trusted across a load: it refills. */
    r->out_table_count = TABLE_COUNT;
    store(tx, TX_SLOT, 0, 1, 8);
    ck_assert_uint_eq(cnt(tx, APN_CNT_CACHE_MISSES), 2);
    nic_free(tx);
}
END_TEST

START_TEST(test_post_load_burst)
{
    Nic *src = tx_nic(), *dst;
    SentSeg s;

    /* A burst gathered when the VM stopped is sent on the destination. */
    store_bytes(src, TX_SLOT, 0x80, pattern(), 24);
    dst = migrate(src);
    ck_assert(dst->fake.timer_armed);
    ck_assert_uint_eq(dst->fake.timer_arms, 1);
    ck_assert_uint_eq(dst->fake.timer_delay_ns, 5000);
    ck_assert_uint_eq(dst->fake.nframes, 0);
    /* Sent after the idle delay on the destination's clock. */
    dst->fake.now_ns += 5000;
    apn_core_flush_timer(&dst->core);
    ck_assert_uint_eq(dst->fake.nframes, 1);
    s = parse_sent(&dst->fake.frames[0]);
    ck_assert_uint_eq(s.offset, 0x80);
    ck_assert_uint_eq(s.len, 24);
    ck_assert_uint_eq(s.nonce, NONCE);
    ck_assert_uint_eq(s.in_index, RX_INDEX);
    ck_assert_uint_eq(s.src_host, TX_HOST);
    ck_assert_mem_eq(s.payload, pattern(), 24);
    ck_assert_mem_eq(dst->fake.frames[0].data, rx_mac, 6);
    nic_free(dst);

    /* The stream is untrusted: a burst that could not have been built is
     * dropped, not sent. */
    for (int bad = 0; bad < 4; bad++) {
        ApnBurst *b = &src->core.burst;

        fence(src);                         /* nothing else pending */
        store_bytes(src, TX_SLOT, 0x80, pattern(), 24);
        ck_assert(b->active);
        ck_assert(!src->core.pend.active);
        switch (bad) {
        case 0: b->out_index = 256; break;              /* >= num_out */
        case 1: b->len = APN_MAX_MTU; break;            /* > the MTU */
        case 2: b->start = 4096 - 8; break;             /* past the entry */
        case 3: b->entry.size = 16; break;
        }
        dst = migrate(src);
        ck_assert_msg(!dst->fake.timer_armed, "bad burst %d resumed", bad);
        fence(dst);
        apn_core_flush_timer(&dst->core);
        ck_assert_msg(dst->fake.nframes == 0, "bad burst %d sent", bad);
        nic_free(dst);
        b->active = false;                  /* never send the forgery */
    }
    nic_free(src);
}
END_TEST

/* ============================================================================ */
/* Endpoints: registers, event queues, variable-length queues (FIG 8, 13)       */
/* ============================================================================ */

#define EVQ_ADDR(ep)    (0x100000u + (ep) * 0x1000u)    /* ep < 64 */
#define VARQ_ADDR(ep)   (0x140000u + (ep) * 0x4000u)    /* ep < 16 */
#define EV_INDEX        11      /* rx: an event aperture */
#define TX_IP           0x0a000003u
#define RX_IP           0x0a000007u
#define RX_PORT         5000

static void epw(Nic *n, uint32_t ep, uint32_t r, uint32_t val)
{
    wr(n, APN_EP_REG(ep, r), val);
}

static uint32_t epr(Nic *n, uint32_t ep, uint32_t r)
{
    return rd(n, APN_EP_REG(ep, r));
}

static void uw(Nic *n, uint32_t ep, uint32_t off, uint32_t val)
{
    wr(n, APN_USER_PAGE(ep) + off, val);
}

static uint32_t ur(Nic *n, uint32_t ep, uint32_t off)
{
    return rd(n, APN_USER_PAGE(ep) + off);
}

/* Endpoint `ep`: queues at EVQ_ADDR / VARQ_ADDR (size 0: none), then CTRL. */
static void ep_setup(Nic *n, uint32_t ep, uint32_t ctrl, uint32_t port,
                     uint32_t evq_size, uint32_t varq_size)
{
    epw(n, ep, APN_EPR_EVQ_LO, EVQ_ADDR(ep));
    epw(n, ep, APN_EPR_EVQ_HI, 0);
    epw(n, ep, APN_EPR_EVQ_SIZE, evq_size);
    epw(n, ep, APN_EPR_VARQ_LO, VARQ_ADDR(ep));
    epw(n, ep, APN_EPR_VARQ_HI, 0);
    epw(n, ep, APN_EPR_VARQ_SIZE, varq_size);
    epw(n, ep, APN_EPR_PORT, port);
    epw(n, ep, APN_EPR_CTRL, ctrl);
}

typedef struct Ev {
    uint8_t type, flags;
    uint16_t endpoint;
    uint32_t info;
    uint64_t data;
} Ev;

static Ev ev_at(const uint8_t *p)
{
    return (Ev) {
        .type = p[0], .flags = p[1], .endpoint = (uint16_t)(p[2] | p[3] << 8),
        .info = get_le32(p + 4), .data = get_le64(p + 8),
    };
}

static Ev evq_ev(Nic *n, uint32_t ep, uint32_t slot)
{
    return ev_at(n->fake.mem + EVQ_ADDR(ep) + 64 + 16 * slot);
}

static Ev osq_ev(Nic *n, uint32_t slot)
{
    return ev_at(n->fake.mem + OSQ_ADDR + 64 + 16 * slot);
}

static uint32_t evq_ctrl(Nic *n, uint32_t ep, size_t field)
{
    return get_le32(n->fake.mem + EVQ_ADDR(ep) + field);
}

static uint32_t varq_ctrl(Nic *n, uint32_t ep, size_t field)
{
    return get_le32(n->fake.mem + VARQ_ADDR(ep) + field);
}

#define assert_ev(ev, t, ep, i, d) do {                                       \
        Ev e_ = (ev);                                                         \
        ck_assert_uint_eq(e_.type, (t));                                      \
        ck_assert_uint_eq(e_.flags, 0);                                       \
        ck_assert_uint_eq(e_.endpoint, (ep));                                 \
        ck_assert_uint_eq(e_.info, (i));                                      \
        ck_assert_uint_eq(e_.data, (d));                                      \
    } while (0)

/* An incoming event aperture of endpoint `ep`: `size` offsets. */
static struct apn_in_entry event_in(uint16_t ep, uint32_t size)
{
    return (struct apn_in_entry) {
        .flags = APN_ENTRY_VALID |
                 APN_ENTRY_TYPE_EVENT << APN_ENTRY_TYPE_SHIFT,
        .endpoint = ep,
        .nonce = NONCE,
        .size = size,
    };
}

/* Receive one EVENT segment: `len` bytes of `val` (little-endian). */
static void rx_event(Nic *n, uint32_t idx, uint32_t offset, uint64_t val,
                     uint16_t len)
{
    uint8_t pl[16] = { 0 }, buf[128];
    FrameSpec fs;

    for (unsigned i = 0; i < 8; i++) {
        pl[i] = val >> (8 * i);
    }
    spec_default(&fs, offset, len);
    fs.seg[0].type = APN_SEG_EVENT;
    fs.seg[0].in_index = idx;
    fs.seg[0].payload = pl;
    receive(n, buf, build_frame(buf, sizeof(buf), &fs));
}

/* A receiver with event aperture EV_INDEX of endpoint `ep` (`evq` events). */
static Nic *ev_nic(uint32_t ep, uint32_t evq)
{
    Nic *n = rx_nic();
    struct apn_in_entry e = event_in(ep, 0x100);

    put_in(n, EV_INDEX, &e);
    ep_setup(n, ep, APN_EP_VALID, 0, evq, 0);
    return n;
}

/* ---- UDP/IPv4, built independently of the core ------------------------------- */

/* RFC 1071 over `len` bytes, starting from `sum`; the complement, folded. */
static uint16_t ref_csum(const uint8_t *p, size_t len, uint32_t sum)
{
    for (size_t i = 0; i + 1 < len; i += 2) {
        sum += get_be16(p + i);
    }
    if (len & 1) {
        sum += (uint32_t)p[len - 1] << 8;
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return (uint16_t)~sum;
}

/* Recompute the IPv4 header checksum and the UDP checksum (or leave it 0). */
static void ip_fix(uint8_t *f, bool udp_csum)
{
    uint8_t *ip = f + APN_ETH_HLEN, *udp = ip + APN_IPV4_HLEN;
    uint16_t ulen = get_be16(udp + 4), c;
    uint32_t pseudo = get_be16(ip + 12) + get_be16(ip + 14) +
                      get_be16(ip + 16) + get_be16(ip + 18) + 17 + ulen;

    put_be16(ip + 10, 0);
    put_be16(ip + 10, ref_csum(ip, APN_IPV4_HLEN, 0));
    put_be16(udp + 6, 0);
    if (udp_csum) {
        c = ref_csum(udp, ulen, pseudo);
        put_be16(udp + 6, c ? c : 0xffff);
    }
}

/* TX_IP:sport -> RX_IP:dport from tx_mac to rx_mac, padded to 60 bytes. */
static size_t build_udp(uint8_t *f, uint16_t sport, uint16_t dport,
                        const uint8_t *payload, uint16_t len)
{
    uint8_t *ip = f + APN_ETH_HLEN, *udp = ip + APN_IPV4_HLEN;
    size_t total = APN_ETH_HLEN + APN_IPV4_HLEN + APN_UDP_HLEN + len;

    memcpy(f, rx_mac, 6);
    memcpy(f + 6, tx_mac, 6);
    put_be16(f + 12, 0x0800);
    memset(ip, 0, APN_IPV4_HLEN);
    ip[0] = 0x45;
    put_be16(ip + 2, APN_IPV4_HLEN + APN_UDP_HLEN + len);
    put_be16(ip + 6, 0x4000);
    ip[8] = 64;
    ip[9] = 17;
    put_be32(ip + 12, TX_IP);
    put_be32(ip + 16, RX_IP);
    put_be16(udp, sport);
    put_be16(udp + 2, dport);
    put_be16(udp + 4, APN_UDP_HLEN + len);
    if (len) {
        memcpy(udp + APN_UDP_HLEN, payload, len);
    }
    if (total < APN_MIN_ETH_FRAME) {
        memset(f + total, 0, APN_MIN_ETH_FRAME - total);
        total = APN_MIN_ETH_FRAME;
    }
    ip_fix(f, true);
    return total;
}

static void build_msg(uint8_t m[APN_MSG_LEN], uint8_t type, uint16_t port,
                      uint16_t src_host, uint32_t in_index, uint32_t nonce,
                      uint32_t info)
{
    put_be32(m, APN_MSG_MAGIC);
    m[4] = APN_WIRE_VERSION;
    m[5] = type;
    put_be16(m + 6, port);
    put_be16(m + 8, src_host);
    put_be16(m + 10, 0);
    put_be32(m + 12, in_index);
    put_be32(m + 16, nonce);
    put_be32(m + 20, info);
}

/* Receive a `len`-byte datagram (pattern bytes) from TX_IP:sport to dport. */
static void rx_datagram(Nic *n, uint16_t sport, uint16_t dport,
                        const uint8_t *payload, uint16_t len)
{
    uint8_t buf[2048];

    ck_assert_uint_le(len, sizeof(buf) - 64);
    receive(n, buf, build_udp(buf, sport, dport, payload, len));
}

/* Receiver with IP_ADDR RX_IP. */
static Nic *ip_nic(void)
{
    Nic *n = rx_nic();

    wr(n, APN_REG_IP_ADDR, RX_IP);
    return n;
}

/* A datagram to `port`: the endpoint (0..15) that got an event, or -1. */
static int port_target(Nic *n, uint16_t port)
{
    uint32_t before[16];
    uint64_t no_port = cnt(n, APN_CNT_RX_DROP_NO_PORT);
    int got = -1;

    for (uint32_t ep = 0; ep < 16; ep++) {
        before[ep] = ur(n, ep, APN_UREG_EVQ_WRPTR);
    }
    rx_datagram(n, 7777, port, pattern(), 4);
    for (uint32_t ep = 0; ep < 16; ep++) {
        if (ur(n, ep, APN_UREG_EVQ_WRPTR) != before[ep]) {
            ck_assert_int_eq(got, -1);
            got = ep;
        }
    }
    ck_assert_uint_eq(cnt(n, APN_CNT_RX_DROP_NO_PORT), no_port + (got < 0));
    return got;
}

START_TEST(test_ep_regs)
{
    static const uint32_t bad_evq[] = { 1, 3, 6, 1u << 17, 0x80000000u,
                                        0xffffffffu };
    static const uint32_t bad_varq[] = { 1, 2, 32, 63, 96, 1u << 25,
                                         0xffffffffu };
    static const uint32_t regs[] = {
        APN_EPR_CTRL, APN_EPR_PORT, APN_EPR_EVQ_LO, APN_EPR_EVQ_HI,
        APN_EPR_EVQ_SIZE, APN_EPR_VARQ_LO, APN_EPR_VARQ_HI, APN_EPR_VARQ_SIZE,
    };
    ApnCoreConfig cfg = default_cfg(rx_mac);
    Nic *n = nic_new_cfg(&cfg, MEM_SIZE);

    qemu_log_counts_reset();
    for (uint32_t ep = 0; ep < 64; ep += 63) {
        for (size_t i = 0; i < ARRAY_SIZE(regs); i++) {
            ck_assert_uint_eq(epr(n, ep, regs[i]), 0);
        }
    }
    ck_assert_uint_eq(qemu_log_guest_errors, 0);

    /* CTRL: VALID, TRUSTED, KERNEL_CM; other bits are logged and dropped. */
    epw(n, 63, APN_EPR_CTRL, APN_EP_VALID | APN_EP_TRUSTED);
    ck_assert_uint_eq(epr(n, 63, APN_EPR_CTRL),
                      APN_EP_VALID | APN_EP_TRUSTED);
    epw(n, 63, APN_EPR_CTRL, APN_EP_VALID | APN_EP_KERNEL_CM);
    ck_assert_uint_eq(epr(n, 63, APN_EPR_CTRL),
                      APN_EP_VALID | APN_EP_KERNEL_CM);
    ck_assert_uint_eq(qemu_log_guest_errors, 0);
    epw(n, 63, APN_EPR_CTRL, 0xffffffffu);
    ck_assert_uint_eq(epr(n, 63, APN_EPR_CTRL),
                      APN_EP_VALID | APN_EP_TRUSTED | APN_EP_KERNEL_CM);
    ck_assert_uint_eq(qemu_log_guest_errors, 1);
    ck_assert_uint_eq(epr(n, 62, APN_EPR_CTRL), 0);

    /* PORT: 16 bits. */
    qemu_log_counts_reset();
    epw(n, 1, APN_EPR_PORT, 0xffff);
    ck_assert_uint_eq(epr(n, 1, APN_EPR_PORT), 0xffff);
    epw(n, 1, APN_EPR_PORT, 0x10000);
    ck_assert_uint_eq(epr(n, 1, APN_EPR_PORT), 0xffff);
    ck_assert_uint_eq(qemu_log_guest_errors, 1);

    /* Queue addresses: 64-byte aligned low halves, free high halves. */
    qemu_log_counts_reset();
    epw(n, 1, APN_EPR_EVQ_LO, 0x1020);
    epw(n, 1, APN_EPR_VARQ_LO, 0x2001);
    ck_assert_uint_eq(epr(n, 1, APN_EPR_EVQ_LO), 0);
    ck_assert_uint_eq(epr(n, 1, APN_EPR_VARQ_LO), 0);
    ck_assert_uint_eq(qemu_log_guest_errors, 2);
    epw(n, 1, APN_EPR_EVQ_LO, 0xffffffc0u);
    epw(n, 1, APN_EPR_VARQ_LO, 0x2040);
    epw(n, 1, APN_EPR_EVQ_HI, 0xffffffffu);
    epw(n, 1, APN_EPR_VARQ_HI, 0x12345678u);
    ck_assert_uint_eq(rd64(n, APN_EP_REG(1, APN_EPR_EVQ_LO)),
                      0xffffffffffffffc0ull);
    ck_assert_uint_eq(epr(n, 1, APN_EPR_VARQ_LO), 0x2040);
    ck_assert_uint_eq(epr(n, 1, APN_EPR_VARQ_HI), 0x12345678u);
    apn_core_reg_write(&n->core, APN_EP_REG(2, APN_EPR_EVQ_LO),
                       0x0000000500001000ull, 8);
    ck_assert_uint_eq(epr(n, 2, APN_EPR_EVQ_LO), 0x1000);
    ck_assert_uint_eq(epr(n, 2, APN_EPR_EVQ_HI), 5);
    ck_assert_uint_eq(qemu_log_guest_errors, 2);

    /* Sizes: powers of two in [2, 2^16] events, [64, 2^24] bytes. */
    qemu_log_counts_reset();
    epw(n, 1, APN_EPR_EVQ_SIZE, 2);
    epw(n, 1, APN_EPR_VARQ_SIZE, 64);
    for (size_t i = 0; i < ARRAY_SIZE(bad_evq); i++) {
        epw(n, 1, APN_EPR_EVQ_SIZE, bad_evq[i]);
        ck_assert_msg(epr(n, 1, APN_EPR_EVQ_SIZE) == 2,
                      "event queue size %u accepted", bad_evq[i]);
    }
    for (size_t i = 0; i < ARRAY_SIZE(bad_varq); i++) {
        epw(n, 1, APN_EPR_VARQ_SIZE, bad_varq[i]);
        ck_assert_msg(epr(n, 1, APN_EPR_VARQ_SIZE) == 64,
                      "variable-length queue size %u accepted", bad_varq[i]);
    }
    ck_assert_uint_eq(qemu_log_guest_errors,
                      ARRAY_SIZE(bad_evq) + ARRAY_SIZE(bad_varq));
    epw(n, 1, APN_EPR_EVQ_SIZE, 1u << 16);
    epw(n, 1, APN_EPR_VARQ_SIZE, 1u << 24);
    ck_assert_uint_eq(epr(n, 1, APN_EPR_EVQ_SIZE), 1u << 16);
    ck_assert_uint_eq(epr(n, 1, APN_EPR_VARQ_SIZE), 1u << 24);
    epw(n, 1, APN_EPR_EVQ_SIZE, 0);
    epw(n, 1, APN_EPR_VARQ_SIZE, 0);
    ck_assert_uint_eq(epr(n, 1, APN_EPR_EVQ_SIZE), 0);
    ck_assert_uint_eq(epr(n, 1, APN_EPR_VARQ_SIZE), 0);
    ck_assert_uint_eq(qemu_log_guest_errors,
                      ARRAY_SIZE(bad_evq) + ARRAY_SIZE(bad_varq));

    /* Reserved offsets of a block are logged, both ways. */
    qemu_log_counts_reset();
    epw(n, 1, 0x3c, 1);
    ck_assert_uint_eq(epr(n, 1, 0x3c), 0);
    ck_assert_uint_eq(qemu_log_guest_errors, 2);

    /* Blocks past NUM_ENDPOINTS are unknown registers. */
    qemu_log_counts_reset();
    epw(n, 64, APN_EPR_CTRL, APN_EP_VALID);
    ck_assert_uint_eq(epr(n, 64, APN_EPR_CTRL), 0);
    ck_assert_uint_eq(qemu_log_guest_errors, 2);
    ck_assert_uint_eq(epr(n, 63, APN_EPR_CTRL),
                      APN_EP_VALID | APN_EP_TRUSTED | APN_EP_KERNEL_CM);
    nic_free(n);
}
END_TEST

START_TEST(test_ep_port_map)
{
    Nic *n = ip_nic();

    for (uint32_t ep = 1; ep <= 4; ep++) {
        ep_setup(n, ep, 0, 0, 64, 4096);
    }
    epw(n, 1, APN_EPR_PORT, 5000);
    epw(n, 1, APN_EPR_CTRL, APN_EP_VALID);
    ck_assert_int_eq(port_target(n, 5000), 1);

    /* A port another valid endpoint holds: logged, ignored. */
    qemu_log_counts_reset();
    epw(n, 2, APN_EPR_CTRL, APN_EP_VALID);
    epw(n, 2, APN_EPR_PORT, 5000);
    ck_assert_uint_eq(epr(n, 2, APN_EPR_PORT), 0);
    epw(n, 3, APN_EPR_PORT, 5000);                  /* not valid: the same */
    ck_assert_uint_eq(epr(n, 3, APN_EPR_PORT), 0);
    ck_assert_uint_eq(qemu_log_guest_errors, 2);
    ck_assert_int_eq(port_target(n, 5000), 1);

    /* Endpoints that are not valid bind nothing; two may name a port. */
    qemu_log_counts_reset();
    epw(n, 3, APN_EPR_PORT, 6000);
    epw(n, 4, APN_EPR_PORT, 6000);
    ck_assert_uint_eq(epr(n, 4, APN_EPR_PORT), 6000);
    ck_assert_uint_eq(qemu_log_guest_errors, 0);
    ck_assert_int_eq(port_target(n, 6000), -1);
    epw(n, 3, APN_EPR_CTRL, APN_EP_VALID);
    ck_assert_int_eq(port_target(n, 6000), 3);
    /* VALID on an endpoint whose port another holds clears its PORT. */
    epw(n, 4, APN_EPR_CTRL, APN_EP_VALID);
    ck_assert_uint_eq(epr(n, 4, APN_EPR_CTRL), APN_EP_VALID);
    ck_assert_uint_eq(epr(n, 4, APN_EPR_PORT), 0);
    ck_assert_uint_eq(qemu_log_guest_errors, 1);
    ck_assert_int_eq(port_target(n, 6000), 3);

    /* Rewriting one's own port is fine; moving frees the old one. */
    qemu_log_counts_reset();
    epw(n, 1, APN_EPR_PORT, 5000);
    ck_assert_int_eq(port_target(n, 5000), 1);
    epw(n, 1, APN_EPR_PORT, 5001);
    ck_assert_int_eq(port_target(n, 5000), -1);
    ck_assert_int_eq(port_target(n, 5001), 1);
    epw(n, 2, APN_EPR_PORT, 5000);
    ck_assert_int_eq(port_target(n, 5000), 2);
    ck_assert_uint_eq(qemu_log_guest_errors, 0);

    /* Clearing VALID unbinds (the register keeps its value). */
    epw(n, 1, APN_EPR_CTRL, 0);
    ck_assert_uint_eq(epr(n, 1, APN_EPR_PORT), 5001);
    ck_assert_int_eq(port_target(n, 5001), -1);
    epw(n, 2, APN_EPR_PORT, 5001);                  /* free again */
    ck_assert_int_eq(port_target(n, 5001), 2);
    ck_assert_int_eq(port_target(n, 5000), -1);
    epw(n, 1, APN_EPR_CTRL, APN_EP_VALID);          /* taken meanwhile */
    ck_assert_uint_eq(epr(n, 1, APN_EPR_PORT), 0);
    ck_assert_int_eq(port_target(n, 5001), 2);
    ck_assert_uint_eq(qemu_log_guest_errors, 1);

    /* Port 0 is no binding; TRUSTED alone changes nothing. */
    epw(n, 2, APN_EPR_PORT, 0);
    ck_assert_int_eq(port_target(n, 5001), -1);
    ck_assert_int_eq(port_target(n, 0), -1);
    epw(n, 3, APN_EPR_CTRL, APN_EP_VALID | APN_EP_TRUSTED);
    ck_assert_int_eq(port_target(n, 6000), 3);
    nic_free(n);
}
END_TEST

START_TEST(test_ep_reset)
{
    Nic *n = ev_nic(5, 8);

    wr(n, APN_REG_IP_ADDR, RX_IP);
    ep_setup(n, 5, APN_EP_VALID | APN_EP_TRUSTED, RX_PORT, 8, 256);
    rx_event(n, EV_INDEX, 1, 2, 1);
    rx_datagram(n, 1, RX_PORT, pattern(), 5);
    uw(n, 5, APN_UREG_EVQ_RDPTR, 2);
    uw(n, 5, APN_UREG_ARM, 1);                      /* armed */
    uw(n, 5, APN_UREG_OUT_INDEX, 3);
    uw(n, 5, APN_UREG_MSG_INFO, 9);
    uw(n, 5, APN_UREG_OUT_COMMIT, 0);               /* a status */
    wr(n, APN_REG_CMD_EP, 5);
    wr(n, APN_REG_CMD_BLOCK + APN_UREG_IN_NONCE, 7);
    ck_assert_uint_eq(ur(n, 5, APN_UREG_EVQ_WRPTR), 2);
    ck_assert_uint_eq(ur(n, 5, APN_UREG_VARQ_WRPTR), 16);
    ck_assert_uint_ne(ur(n, 5, APN_UREG_CMD_STATUS), 0);

    wr(n, APN_REG_CTRL, APN_CTRL_RESET);
    for (uint32_t r = 0; r < 0x20; r += 4) {
        ck_assert_uint_eq(epr(n, 5, r), 0);
    }
    for (uint32_t off = 0; off < 0x80; off += 4) {
        ck_assert_msg(ur(n, 5, off) == 0, "user page 0x%x survived reset",
                      off);
        ck_assert_msg(rd(n, APN_REG_CMD_BLOCK + off) == 0,
                      "command block 0x%x survived reset", off);
    }
    ck_assert_uint_eq(rd(n, APN_REG_IP_ADDR), 0);

    /* Bindings and ARM are gone too. */
    nic_program(n, RX_HOST, TABLE_COUNT, TABLE_COUNT);
    wr(n, APN_REG_IP_ADDR, RX_IP);
    ck_assert_int_eq(port_target(n, RX_PORT), -1);
    ep_setup(n, 5, APN_EP_VALID, 0, 8, 0);
    rx_event(n, EV_INDEX, 1, 2, 1);
    ck_assert_uint_eq(ur(n, 5, APN_UREG_EVQ_WRPTR), 1);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 1);    /* NO_PORT only */
    assert_ev(osq_ev(n, 0), APN_EV_NO_PORT, 0, RX_PORT,
              (uint64_t)TX_IP << 16 | 7777);
    nic_free(n);
}
END_TEST

START_TEST(test_evq_post_layout)
{
    Nic *n = ev_nic(2, 4);
    uint8_t *ctrl = n->fake.mem + EVQ_ADDR(2);
    uint8_t *snap;

    /* The consumer's own control fields are the consumer's. */
    put_le32(ctrl + offsetof(struct apn_queue_ctrl, rdptr), 0x11111111);
    put_le32(ctrl + offsetof(struct apn_queue_ctrl, irq), 0x22222222);
    snap = snapshot(n);
    for (unsigned len = 1; len <= 4; len++) {
        rx_event(n, EV_INDEX, 0x10 * len, 0x8877665544332211ull, len);
    }
    assert_only_rx_drop(n, APN_CNT__COUNT, 0);
    ck_assert_uint_eq(cnt(n, APN_CNT_EVQ_EVENTS), 4);
    assert_ev(evq_ev(n, 2, 0), APN_EV_EVENT, 2, 0x10, 0x11);
    assert_ev(evq_ev(n, 2, 1), APN_EV_EVENT, 2, 0x20, 0x2211);
    assert_ev(evq_ev(n, 2, 2), APN_EV_EVENT, 2, 0x30, 0x332211);
    assert_ev(evq_ev(n, 2, 3), APN_EV_EVENT, 2, 0x40, 0x44332211);
    ck_assert_uint_eq(evq_ctrl(n, 2, offsetof(struct apn_queue_ctrl, wrptr)),
                      4);
    ck_assert_uint_eq(ur(n, 2, APN_UREG_EVQ_WRPTR), 4);
    ck_assert_uint_eq(ur(n, 2, APN_UREG_EVQ_RDPTR), 0);
    /* Only the events and the mirror were written; no interrupt. */
    assert_mem_unchanged(n, snap, EVQ_ADDR(2), 64 + 4 * 16);
    ck_assert_uint_eq(evq_ctrl(n, 2, offsetof(struct apn_queue_ctrl, rdptr)),
                      0x11111111);
    ck_assert_uint_eq(evq_ctrl(n, 2, offsetof(struct apn_queue_ctrl, irq)),
                      0x22222222);
    ck_assert_uint_eq(evq_ctrl(n, 2, offsetof(struct apn_queue_ctrl,
                                              overflows)), 0);
    ck_assert_uint_eq(n->fake.nnotify, 0);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 0);

    /* Consuming two: the next two wrap to slots 0 and 1. */
    uw(n, 2, APN_UREG_EVQ_RDPTR, 2);
    rx_event(n, EV_INDEX, 0xff, 0x0807060504030201ull, 8);
    rx_event(n, EV_INDEX, 0, 0xa5, 5);
    assert_ev(evq_ev(n, 2, 0), APN_EV_EVENT, 2, 0xff, 0x0807060504030201ull);
    assert_ev(evq_ev(n, 2, 1), APN_EV_EVENT, 2, 0, 0xa5);
    assert_ev(evq_ev(n, 2, 2), APN_EV_EVENT, 2, 0x30, 0x332211);
    ck_assert_uint_eq(ur(n, 2, APN_UREG_EVQ_WRPTR), 6);
    ck_assert_uint_eq(evq_ctrl(n, 2, offsetof(struct apn_queue_ctrl, wrptr)),
                      6);

    /* The read pointer moves only within [RDPTR, WRPTR]. */
    qemu_log_counts_reset();
    uw(n, 2, APN_UREG_EVQ_RDPTR, 7);
    ck_assert_uint_eq(ur(n, 2, APN_UREG_EVQ_RDPTR), 2);
    uw(n, 2, APN_UREG_EVQ_RDPTR, 1);
    ck_assert_uint_eq(ur(n, 2, APN_UREG_EVQ_RDPTR), 2);
    ck_assert_uint_eq(qemu_log_guest_errors, 2);
    uw(n, 2, APN_UREG_EVQ_RDPTR, 6);
    ck_assert_uint_eq(ur(n, 2, APN_UREG_EVQ_RDPTR), 6);
    /* EVQ_WRPTR is read only. */
    uw(n, 2, APN_UREG_EVQ_WRPTR, 0);
    ck_assert_uint_eq(ur(n, 2, APN_UREG_EVQ_WRPTR), 6);
    ck_assert_uint_eq(qemu_log_guest_errors, 3);

    /* Reprogramming the size empties the queue. */
    epw(n, 2, APN_EPR_EVQ_SIZE, 8);
    ck_assert_uint_eq(ur(n, 2, APN_UREG_EVQ_WRPTR), 0);
    ck_assert_uint_eq(ur(n, 2, APN_UREG_EVQ_RDPTR), 0);
    ck_assert_uint_eq(n->fake.nnotify, 0);
    free(snap);
    nic_free(n);
}
END_TEST

START_TEST(test_evq_no_queue)
{
    /* An endpoint that is not valid, or has no queue, gets no events. */
    Nic *n = ev_nic(2, 4);
    uint8_t *snap;

    epw(n, 2, APN_EPR_CTRL, 0);
    snap = snapshot(n);
    rx_event(n, EV_INDEX, 0, 1, 1);
    assert_only_rx_drop(n, APN_CNT_RX_DROP_INVALID, 1);
    epw(n, 2, APN_EPR_CTRL, APN_EP_VALID);
    epw(n, 2, APN_EPR_EVQ_SIZE, 0);
    rx_event(n, EV_INDEX, 0, 1, 1);
    assert_only_rx_drop(n, APN_CNT_RX_DROP_INVALID, 2);
    assert_mem_unchanged(n, snap, 0, 0);
    ck_assert_uint_eq(cnt(n, APN_CNT_EVQ_EVENTS), 0);
    ck_assert_uint_eq(cnt(n, APN_CNT_EVQ_OVERFLOWS), 0);
    /* Refused segments: an ERROR to the sender each. */
    ck_assert_uint_eq(n->fake.nframes, 2);
    assert_error_frame(&n->fake.frames[1], rx_mac, RX_HOST, tx_mac, TX_HOST,
                       EV_INDEX, TX_SLOT, APN_CNT_RX_DROP_INVALID);
    free(snap);
    nic_free(n);
}
END_TEST

START_TEST(test_evq_overflow_episode)
{
    Nic *n = ev_nic(2, 4);
    uint8_t *snap;

    for (unsigned i = 0; i < 4; i++) {
        rx_event(n, EV_INDEX, i, i, 1);
    }
    snap = snapshot(n);
    /* Full: the event is lost, counted, and the OS told once. */
    rx_event(n, EV_INDEX, 4, 4, 1);
    ck_assert_uint_eq(cnt(n, APN_CNT_EVQ_OVERFLOWS), 1);
    ck_assert_uint_eq(cnt(n, APN_CNT_EVQ_EVENTS), 4);
    ck_assert_uint_eq(evq_ctrl(n, 2, offsetof(struct apn_queue_ctrl,
                                              overflows)), 1);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 1);
    assert_ev(osq_ev(n, 0), APN_EV_OVERFLOW, 2, 1, 0);
    ck_assert_uint_eq(n->fake.nnotify, 1);
    ck_assert_uint_eq(n->fake.notify_vec[0], APN_VEC_OSQ);
    /* Never overwritten. */
    snap[EVQ_ADDR(2) + offsetof(struct apn_queue_ctrl, overflows)] = 1;
    assert_mem_unchanged(n, snap, OSQ_ADDR, 64 + 16);
    ck_assert_uint_eq(ur(n, 2, APN_UREG_EVQ_WRPTR), 4);
    assert_only_rx_drop(n, APN_CNT__COUNT, 0);

    /* The same episode: counted, not reported again. */
    rx_event(n, EV_INDEX, 5, 5, 1);
    rx_event(n, EV_INDEX, 6, 6, 1);
    ck_assert_uint_eq(cnt(n, APN_CNT_EVQ_OVERFLOWS), 3);
    ck_assert_uint_eq(evq_ctrl(n, 2, offsetof(struct apn_queue_ctrl,
                                              overflows)), 3);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 1);
    /* A rejected or unchanged read pointer frees nothing. */
    uw(n, 2, APN_UREG_EVQ_RDPTR, 5);
    uw(n, 2, APN_UREG_EVQ_RDPTR, 0);
    rx_event(n, EV_INDEX, 7, 7, 1);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 1);
    ck_assert_uint_eq(cnt(n, APN_CNT_EVQ_OVERFLOWS), 4);

    /* Freeing space ends the episode; the next loss is a new one. */
    uw(n, 2, APN_UREG_EVQ_RDPTR, 1);
    rx_event(n, EV_INDEX, 8, 8, 1);                 /* fits, slot 0 */
    assert_ev(evq_ev(n, 2, 0), APN_EV_EVENT, 2, 8, 8);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 1);
    rx_event(n, EV_INDEX, 9, 9, 1);
    ck_assert_uint_eq(cnt(n, APN_CNT_EVQ_OVERFLOWS), 5);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 2);
    assert_ev(osq_ev(n, 1), APN_EV_OVERFLOW, 2, 5, 0);

    /* Reprogramming the queue restarts the count and the episode. */
    epw(n, 2, APN_EPR_EVQ_SIZE, 2);
    rx_event(n, EV_INDEX, 0, 0, 1);
    rx_event(n, EV_INDEX, 0, 0, 1);
    rx_event(n, EV_INDEX, 0, 0, 1);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 3);
    assert_ev(osq_ev(n, 2), APN_EV_OVERFLOW, 2, 1, 0);
    ck_assert_uint_eq(evq_ctrl(n, 2, offsetof(struct apn_queue_ctrl,
                                              overflows)), 1);
    ck_assert_uint_eq(cnt(n, APN_CNT_EVQ_OVERFLOWS), 6);
    ck_assert_uint_eq(cnt(n, APN_CNT_EVQ_EVENTS), 7);
    ck_assert_uint_eq(n->fake.nframes, 0);
    free(snap);
    nic_free(n);
}
END_TEST

START_TEST(test_evq_arm)
{
    Nic *n = ev_nic(2, 8);

    /* ARM on an empty queue: the next event raises OOB_DATA, once. */
    ck_assert_uint_eq(ur(n, 2, APN_UREG_ARM), 0);
    uw(n, 2, APN_UREG_ARM, 1);
    ck_assert_uint_eq(ur(n, 2, APN_UREG_ARM), 0);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 0);
    rx_event(n, EV_INDEX, 1, 1, 1);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 1);
    assert_ev(osq_ev(n, 0), APN_EV_OOB_DATA, 2, 0, 0);
    ck_assert_uint_eq(n->fake.nnotify, 1);
    ck_assert_uint_eq(n->fake.notify_vec[0], APN_VEC_OSQ);
    ck_assert_uint_eq(cnt(n, APN_CNT_OSQ_EVENTS), 1);
    ck_assert_uint_eq(cnt(n, APN_CNT_IRQS), 1);
    rx_event(n, EV_INDEX, 2, 2, 1);                 /* one-shot */
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 1);
    ck_assert_uint_eq(ur(n, 2, APN_UREG_EVQ_WRPTR), 2);

    /* ARM while events are pending fires at once. */
    uw(n, 2, APN_UREG_EVQ_RDPTR, 1);
    uw(n, 2, APN_UREG_ARM, 1);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 2);
    assert_ev(osq_ev(n, 1), APN_EV_OOB_DATA, 2, 0, 0);
    ck_assert_uint_eq(n->fake.nnotify, 2);
    rx_event(n, EV_INDEX, 3, 3, 1);                 /* and is not left armed */
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 2);

    /* Drain, arm, then an event: OOB_DATA. Arm then disarm: nothing. */
    uw(n, 2, APN_UREG_EVQ_RDPTR, 3);
    uw(n, 2, APN_UREG_ARM, 1);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 2);
    rx_event(n, EV_INDEX, 4, 4, 1);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 3);
    uw(n, 2, APN_UREG_EVQ_RDPTR, 4);
    uw(n, 2, APN_UREG_ARM, 1);
    uw(n, 2, APN_UREG_ARM, 0);
    rx_event(n, EV_INDEX, 5, 5, 1);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 3);
    ck_assert_uint_eq(cnt(n, APN_CNT_EVQ_EVENTS), 5);

    nic_free(n);
}
END_TEST

/* A variable-length record at byte `pos` of endpoint `ep`'s queue. */
static void assert_var_rec(Nic *n, uint32_t ep, uint32_t size, uint32_t pos,
                           const uint8_t *payload, uint32_t len)
{
    const uint8_t *q = n->fake.mem + VARQ_ADDR(ep) + 64;
    uint32_t rec = 8 + ((len + 7) & ~7u);
    uint8_t *want = malloc(rec);

    ck_assert_ptr_nonnull(want);
    memset(want, 0, rec);
    put_le32(want, len);
    put_le32(want + 4, TX_IP);
    memcpy(want + 8, payload, len);
    for (uint32_t i = 0; i < rec; i++) {
        ck_assert_msg(q[(pos + i) & (size - 1)] == want[i],
                      "record at %u: byte %u is 0x%02x, expected 0x%02x",
                      pos, i, q[(pos + i) & (size - 1)], want[i]);
    }
    free(want);
}

START_TEST(test_varq_records_wrap)
{
    static const struct { uint16_t len, sport; uint32_t pos; } d[] = {
        { 8, 1000, 0 },         /* record 16 at 0 */
        { 30, 1001, 16 },       /* record 40 at 16..55 */
        { 20, 1002, 56 },       /* header at 56..63, payload wraps to 0 */
        { 40, 1003, 88 },       /* 24..63 and 0..7 */
    };
    Nic *n = ip_nic();
    uint8_t *snap;

    ep_setup(n, 3, APN_EP_VALID, RX_PORT, 16, 64);
    memset(n->fake.mem + VARQ_ADDR(3) + 64, 0xee, 64);
    for (size_t i = 0; i < ARRAY_SIZE(d); i++) {
        const uint8_t *p = pattern() + 100 * i;
        uint32_t rec = 8 + ((d[i].len + 7) & ~7u);

        ck_assert_uint_eq(ur(n, 3, APN_UREG_VARQ_WRPTR), d[i].pos);
        snap = snapshot(n);
        rx_datagram(n, d[i].sport, RX_PORT, p, d[i].len);
        ck_assert_uint_eq(ur(n, 3, APN_UREG_VARQ_WRPTR), d[i].pos + rec);
        ck_assert_uint_eq(varq_ctrl(n, 3, offsetof(struct apn_queue_ctrl,
                                                   wrptr)), d[i].pos + rec);
        assert_var_rec(n, 3, 64, d[i].pos, p, d[i].len);
        assert_ev(evq_ev(n, 3, i), APN_EV_VAR, 3, d[i].len,
                  d[i].pos | (uint64_t)d[i].sport << 32);
        /* Nothing but the record, the mirror and the event changed. */
        for (uint32_t b = 0; b < rec; b++) {
            snap[VARQ_ADDR(3) + 64 + ((d[i].pos + b) & 63)] =
                n->fake.mem[VARQ_ADDR(3) + 64 + ((d[i].pos + b) & 63)];
        }
        memcpy(snap + VARQ_ADDR(3), n->fake.mem + VARQ_ADDR(3), 4);
        assert_mem_unchanged(n, snap, EVQ_ADDR(3), 64 + 16 * 16);
        free(snap);
        /* The consumer frees it. */
        uw(n, 3, APN_UREG_VARQ_RDPTR, d[i].pos + rec);
        ck_assert_uint_eq(ur(n, 3, APN_UREG_VARQ_RDPTR), d[i].pos + rec);
    }
    ck_assert_uint_eq(cnt(n, APN_CNT_EVQ_EVENTS), 4);
    ck_assert_uint_eq(cnt(n, APN_CNT_EVQ_OVERFLOWS), 0);
    ck_assert_uint_eq(cnt(n, APN_CNT_RX_MSGS), 0);
    assert_only_rx_drop(n, APN_CNT__COUNT, 0);

    /* A zero-length datagram is an 8-byte record. */
    rx_datagram(n, 1004, RX_PORT, NULL, 0);
    ck_assert_uint_eq(ur(n, 3, APN_UREG_VARQ_WRPTR), 144);
    assert_ev(evq_ev(n, 3, 4), APN_EV_VAR, 3, 0, 136 | 1004ull << 32);

    /* VARQ_RDPTR: within [RDPTR, WRPTR] and a multiple of 8. */
    qemu_log_counts_reset();
    uw(n, 3, APN_UREG_VARQ_RDPTR, 140);
    uw(n, 3, APN_UREG_VARQ_RDPTR, 152);
    uw(n, 3, APN_UREG_VARQ_RDPTR, 128);
    ck_assert_uint_eq(ur(n, 3, APN_UREG_VARQ_RDPTR), 136);
    ck_assert_uint_eq(qemu_log_guest_errors, 3);
    uw(n, 3, APN_UREG_VARQ_WRPTR, 0);               /* read only */
    ck_assert_uint_eq(ur(n, 3, APN_UREG_VARQ_WRPTR), 144);
    ck_assert_uint_eq(qemu_log_guest_errors, 4);
    nic_free(n);
}
END_TEST

START_TEST(test_varq_lost)
{
    Nic *n = ip_nic();
    uint8_t *snap;

    ep_setup(n, 3, APN_EP_VALID, RX_PORT, 16, 64);
    rx_datagram(n, 1, RX_PORT, pattern(), 40);      /* 48 of 64 used */
    ck_assert_uint_eq(ur(n, 3, APN_UREG_VARQ_WRPTR), 48);

    /* No room: lost whole, counted, one OVERFLOW per episode. */
    snap = snapshot(n);
    rx_datagram(n, 2, RX_PORT, pattern(), 9);       /* a 24-byte record */
    ck_assert_uint_eq(ur(n, 3, APN_UREG_VARQ_WRPTR), 48);
    ck_assert_uint_eq(ur(n, 3, APN_UREG_EVQ_WRPTR), 1);
    ck_assert_uint_eq(cnt(n, APN_CNT_EVQ_OVERFLOWS), 1);
    ck_assert_uint_eq(varq_ctrl(n, 3, offsetof(struct apn_queue_ctrl,
                                               overflows)), 1);
    ck_assert_uint_eq(evq_ctrl(n, 3, offsetof(struct apn_queue_ctrl,
                                              overflows)), 0);
    assert_ev(osq_ev(n, 0), APN_EV_OVERFLOW, 3, 1, 0);
    snap[VARQ_ADDR(3) + offsetof(struct apn_queue_ctrl, overflows)] = 1;
    assert_mem_unchanged(n, snap, OSQ_ADDR, 64 + 16);
    free(snap);
    rx_datagram(n, 2, RX_PORT, pattern(), 9);
    ck_assert_uint_eq(cnt(n, APN_CNT_EVQ_OVERFLOWS), 2);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 1);
    rx_datagram(n, 2, RX_PORT, pattern(), 8);       /* 16 bytes: fits */
    ck_assert_uint_eq(ur(n, 3, APN_UREG_VARQ_WRPTR), 64);

    /* Freeing space ends the episode; too big for the queue is lost. */
    uw(n, 3, APN_UREG_VARQ_RDPTR, 64);
    rx_datagram(n, 3, RX_PORT, pattern(), 57);      /* 72 > 64 */
    ck_assert_uint_eq(ur(n, 3, APN_UREG_VARQ_WRPTR), 64);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 2);
    assert_ev(osq_ev(n, 1), APN_EV_OVERFLOW, 3, 3, 0);
    rx_datagram(n, 3, RX_PORT, pattern(), 56);      /* exactly 64 fits */
    ck_assert_uint_eq(ur(n, 3, APN_UREG_VARQ_WRPTR), 128);
    assert_var_rec(n, 3, 64, 64, pattern(), 56);

    /* No variable-length queue: lost the same way. */
    ep_setup(n, 4, APN_EP_VALID, RX_PORT + 1, 16, 0);
    rx_datagram(n, 4, RX_PORT + 1, pattern(), 4);
    ck_assert_uint_eq(ur(n, 4, APN_UREG_EVQ_WRPTR), 0);
    ck_assert_uint_eq(cnt(n, APN_CNT_EVQ_OVERFLOWS), 4);
    assert_ev(osq_ev(n, 2), APN_EV_OVERFLOW, 4, 1, 0);

    /* No room for the event: the record is not written. */
    ep_setup(n, 5, APN_EP_VALID, RX_PORT + 2, 2, 256);
    rx_datagram(n, 5, RX_PORT + 2, pattern(), 4);
    rx_datagram(n, 5, RX_PORT + 2, pattern(), 4);
    ck_assert_uint_eq(ur(n, 5, APN_UREG_VARQ_WRPTR), 32);
    rx_datagram(n, 5, RX_PORT + 2, pattern(), 4);
    ck_assert_uint_eq(ur(n, 5, APN_UREG_VARQ_WRPTR), 32);
    ck_assert_uint_eq(ur(n, 5, APN_UREG_EVQ_WRPTR), 2);
    ck_assert_uint_eq(evq_ctrl(n, 5, offsetof(struct apn_queue_ctrl,
                                              overflows)), 1);
    assert_ev(osq_ev(n, 3), APN_EV_OVERFLOW, 5, 1, 0);
    ck_assert_uint_eq(cnt(n, APN_CNT_EVQ_OVERFLOWS), 5);
    assert_only_rx_drop(n, APN_CNT__COUNT, 0);
    nic_free(n);
}
END_TEST

/* ============================================================================ */
/* User-page commands and the privileged command block (seed 004)                */
/* ============================================================================ */

#define CMD_EP_N        3       /* the endpoint the command tests act for */

/*
 * A NIC whose outgoing TX_SLOT and incoming RX_INDEX belong to endpoint
 * CMD_EP_N (port 4000, CTRL `ctrl`); outgoing 6 and incoming 10 to
 * endpoint 4; outgoing 7 and incoming 11 are endpoint 3's but not valid.
 * The entries' reserved words are filled, so a stray write shows.
 */
static Nic *cmd_nic(uint32_t ctrl)
{
    Nic *n = tx_nic();
    struct apn_out_entry oe = out_entry(RX_HOST, RX_INDEX, 4096);
    struct apn_in_entry ie = contig_in(RX_BUF, 4096);

    oe.endpoint = CMD_EP_N;
    oe.flags |= APN_ENTRY_SEQ;
    oe.seq = 42;
    put_out(n, TX_SLOT, &oe);
    ie.endpoint = CMD_EP_N;
    ie.flags |= APN_IN_CHECK_SRC_HOST;
    ie.src_host = TX_HOST;
    ie.src_host_mask = 0xff;
    memcpy(ie.src_mac, tx_mac, 6);
    put_in(n, RX_INDEX, &ie);
    oe.endpoint = 4;
    put_out(n, 6, &oe);
    ie.endpoint = 4;
    put_in(n, 10, &ie);
    oe.endpoint = CMD_EP_N;
    oe.flags = 0;
    put_out(n, 7, &oe);
    ie.endpoint = CMD_EP_N;
    ie.flags = APN_IN_CONTIG;
    put_in(n, 11, &ie);
    memset(entry_ptr(n, true, TX_SLOT) + 24, 0xa5, 40);
    memset(entry_ptr(n, false, RX_INDEX) + 48, 0x5a, 16);
    ep_setup(n, CMD_EP_N, ctrl, 4000, 8, 0);
    wr(n, APN_REG_IP_ADDR, TX_IP);
    wr(n, APN_REG_HOST_IP_BASE + 4 * RX_HOST, RX_IP);
    return n;
}

/* Command registers of user page `ep`, or of the block for ep == ~0u. */
static uint32_t cmd_addr(uint32_t ep, uint32_t off)
{
    return ep == ~0u ? APN_REG_CMD_BLOCK + off : APN_USER_PAGE(ep) + off;
}

static void cmd_out(Nic *n, uint32_t ep, uint32_t idx, uint32_t host,
                    uint32_t in_index, uint32_t nonce)
{
    wr(n, cmd_addr(ep, APN_UREG_OUT_INDEX), idx);
    wr(n, cmd_addr(ep, APN_UREG_OUT_DEST_HOST), host);
    wr(n, cmd_addr(ep, APN_UREG_OUT_DEST_IN_INDEX), in_index);
    wr(n, cmd_addr(ep, APN_UREG_OUT_NONCE), nonce);
    wr(n, cmd_addr(ep, APN_UREG_OUT_COMMIT), 1);
}

static void cmd_in(Nic *n, uint32_t ep, uint32_t idx, uint32_t nonce,
                   uint32_t start, uint32_t len)
{
    wr(n, cmd_addr(ep, APN_UREG_IN_INDEX), idx);
    wr(n, cmd_addr(ep, APN_UREG_IN_NONCE), nonce);
    wr(n, cmd_addr(ep, APN_UREG_IN_NARROW_START), start);
    wr(n, cmd_addr(ep, APN_UREG_IN_NARROW_LEN), len);
    wr(n, cmd_addr(ep, APN_UREG_IN_COMMIT), 1);
}

static void cmd_msg(Nic *n, uint32_t ep, uint32_t host, uint32_t port,
                    uint32_t type, uint32_t in_index, uint32_t nonce,
                    uint32_t info)
{
    wr(n, cmd_addr(ep, APN_UREG_MSG_DEST_HOST), host);
    wr(n, cmd_addr(ep, APN_UREG_MSG_DEST_PORT), port);
    wr(n, cmd_addr(ep, APN_UREG_MSG_TYPE), type);
    wr(n, cmd_addr(ep, APN_UREG_MSG_IN_INDEX), in_index);
    wr(n, cmd_addr(ep, APN_UREG_MSG_NONCE), nonce);
    wr(n, cmd_addr(ep, APN_UREG_MSG_INFO), info);
    wr(n, cmd_addr(ep, APN_UREG_MSG_SEND), 1);
}

static uint32_t cmd_status(Nic *n, uint32_t ep)
{
    return rd(n, cmd_addr(ep, APN_UREG_CMD_STATUS));
}

START_TEST(test_cmd_trust)
{
    static const uint32_t untrusted[] = { 0, APN_EP_VALID, APN_EP_TRUSTED };

    for (size_t i = 0; i < ARRAY_SIZE(untrusted); i++) {
        Nic *n = cmd_nic(untrusted[i]);
        uint8_t *snap = snapshot(n);

        qemu_log_counts_reset();
        cmd_out(n, CMD_EP_N, TX_SLOT, RX_HOST, 12, NONCE2);
        ck_assert_uint_eq(cmd_status(n, CMD_EP_N), APN_CMD_EPERM);
        cmd_in(n, CMD_EP_N, RX_INDEX, NONCE2, 0, 0);
        ck_assert_uint_eq(cmd_status(n, CMD_EP_N), APN_CMD_EPERM);
        cmd_msg(n, CMD_EP_N, RX_HOST, 5000, APN_MSG_CONNECT, 1, 2, 0);
        ck_assert_uint_eq(cmd_status(n, CMD_EP_N), APN_CMD_EPERM);
        ck_assert_uint_eq(cnt(n, APN_CNT_CMD_REFUSED), 3);
        ck_assert_uint_eq(qemu_log_guest_errors, 3);
        ck_assert_uint_eq(n->fake.nframes, 0);
        ck_assert_uint_eq(cnt(n, APN_CNT_TX_MSGS), 0);
        assert_mem_unchanged(n, snap, 0, 0);
        /* The arguments are kept; the command did not run. */
        ck_assert_uint_eq(ur(n, CMD_EP_N, APN_UREG_OUT_NONCE), NONCE2);

        /* The command block runs it for the endpoint whatever its trust. */
        wr(n, APN_REG_CMD_EP, CMD_EP_N);
        cmd_out(n, ~0u, TX_SLOT, RX_HOST, 12, NONCE2);
        ck_assert_uint_eq(cmd_status(n, ~0u), APN_CMD_OK);
        cmd_in(n, ~0u, RX_INDEX, NONCE2, 0, 0);
        ck_assert_uint_eq(cmd_status(n, ~0u), APN_CMD_OK);
        ck_assert_uint_eq(cmd_status(n, CMD_EP_N), APN_CMD_EPERM);
        ck_assert_uint_eq(cnt(n, APN_CNT_CMD_REFUSED), 3);
        ck_assert_uint_eq(get_le32(entry_ptr(n, true, TX_SLOT) +
                                  offsetof(struct apn_out_entry, nonce)),
                          NONCE2);
        ck_assert_uint_eq(get_le32(entry_ptr(n, false, RX_INDEX) +
                                  offsetof(struct apn_in_entry, nonce)),
                          NONCE2);
        free(snap);
        nic_free(n);
    }

    /* VALID and TRUSTED: the user page runs it. */
    {
        Nic *n = cmd_nic(APN_EP_VALID | APN_EP_TRUSTED);

        qemu_log_counts_reset();
        cmd_out(n, CMD_EP_N, TX_SLOT, RX_HOST, 12, NONCE2);
        ck_assert_uint_eq(cmd_status(n, CMD_EP_N), APN_CMD_OK);
        ck_assert_uint_eq(cnt(n, APN_CNT_CMD_REFUSED), 0);
        ck_assert_uint_eq(qemu_log_guest_errors, 0);
        nic_free(n);
    }
}
END_TEST

START_TEST(test_cmd_out_commit)
{
    Nic *n = cmd_nic(APN_EP_VALID | APN_EP_TRUSTED);
    uint8_t *e = entry_ptr(n, true, TX_SLOT);
    uint8_t before[64];
    SentSeg s[2];

    /* A burst gathered before the command goes to the old destination. */
    store(n, TX_SLOT, 0, 0x1111, 8);
    cmd_out(n, CMD_EP_N, TX_SLOT, RX_HOST, 12, NONCE2);
    ck_assert_uint_eq(cmd_status(n, CMD_EP_N), APN_CMD_OK);
    ck_assert_uint_eq(n->fake.nframes, 0);          /* closed, still packed */
    memcpy(before, e, 64);
    ck_assert_uint_eq(get_le32(e + offsetof(struct apn_out_entry, seq)), 43);
    store(n, TX_SLOT, 8, 0x2222, 8);
    ck_assert_uint_eq(cnt(n, APN_CNT_CACHE_MISSES), 2);  /* re-read */
    fence(n);
    ck_assert_uint_eq(n->fake.nframes, 1);
    ck_assert_uint_eq(parse_frame(&n->fake.frames[0], s, 2), 2);
    ck_assert_uint_eq(s[0].in_index, RX_INDEX);
    ck_assert_uint_eq(s[0].nonce, NONCE);
    ck_assert_uint_eq(s[0].seq, 42);
    ck_assert_uint_eq(s[0].offset, 0);
    ck_assert_uint_eq(s[1].in_index, 12);
    ck_assert_uint_eq(s[1].nonce, NONCE2);
    ck_assert_uint_eq(s[1].seq, 43);
    ck_assert_uint_eq(s[1].offset, 8);

    /* Only dest_host, dest_in_index and nonce were written. */
    ck_assert_uint_eq(get_le32(e), APN_ENTRY_VALID | APN_ENTRY_SEQ);
    ck_assert_uint_eq(e[4] | e[5] << 8, CMD_EP_N);
    ck_assert_uint_eq(e[6] | e[7] << 8, RX_HOST);
    ck_assert_uint_eq(get_le32(e + 8), 12);
    ck_assert_uint_eq(get_le32(e + 12), NONCE2);
    ck_assert_uint_eq(get_le32(e + 16), 4096);
    ck_assert_uint_eq(get_le32(e + 20), 44);
    for (int i = 24; i < 64; i++) {
        ck_assert_uint_eq(e[i], 0xa5);
    }

    /* The arguments read back; the trigger reads 0. */
    ck_assert_uint_eq(ur(n, CMD_EP_N, APN_UREG_OUT_INDEX), TX_SLOT);
    ck_assert_uint_eq(ur(n, CMD_EP_N, APN_UREG_OUT_DEST_HOST), RX_HOST);
    ck_assert_uint_eq(ur(n, CMD_EP_N, APN_UREG_OUT_DEST_IN_INDEX), 12);
    ck_assert_uint_eq(ur(n, CMD_EP_N, APN_UREG_OUT_NONCE), NONCE2);
    ck_assert_uint_eq(ur(n, CMD_EP_N, APN_UREG_OUT_COMMIT), 0);
    ck_assert_uint_eq(ur(n, CMD_EP_N, APN_UREG_IN_COMMIT), 0);
    ck_assert_uint_eq(ur(n, CMD_EP_N, APN_UREG_MSG_SEND), 0);

    /* Not its own, not valid, outside the table: ENOENT, nothing written. */
    memcpy(before, e, 64);
    {
        static const uint32_t bad[] = { 6, 7, TABLE_COUNT, 0xffffffffu };
        uint8_t *snap = snapshot(n);

        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
            qemu_log_counts_reset();
            cmd_out(n, CMD_EP_N, bad[i], RX_HOST, 1, 1);
            ck_assert_msg(cmd_status(n, CMD_EP_N) == APN_CMD_ENOENT,
                          "out index %u: status %u", bad[i],
                          cmd_status(n, CMD_EP_N));
            ck_assert_uint_eq(qemu_log_guest_errors, 1);
        }
        /* A host that does not fit 16 bits. */
        cmd_out(n, CMD_EP_N, TX_SLOT, 0x10000 | RX_HOST, 1, 1);
        ck_assert_uint_eq(cmd_status(n, CMD_EP_N), APN_CMD_EINVAL);
        assert_mem_unchanged(n, snap, 0, 0);
        free(snap);
    }
    ck_assert_uint_eq(cnt(n, APN_CNT_CMD_REFUSED), 0);

    /* A table that cannot be read: EIO. */
    wr(n, APN_REG_CTRL, 0);
    wr(n, APN_REG_OUT_TABLE_HI, 1);
    wr(n, APN_REG_CTRL, APN_CTRL_ENABLE);
    cmd_out(n, CMD_EP_N, TX_SLOT, RX_HOST, 1, 1);
    ck_assert_uint_eq(cmd_status(n, CMD_EP_N), APN_CMD_EIO);

    /* CMD_STATUS is read only; the status stays until the next command. */
    qemu_log_counts_reset();
    uw(n, CMD_EP_N, APN_UREG_CMD_STATUS, 0);
    ck_assert_uint_eq(cmd_status(n, CMD_EP_N), APN_CMD_EIO);
    ck_assert_uint_eq(qemu_log_guest_errors, 1);
    ck_assert_mem_eq(e, before, 64);
    nic_free(n);
}
END_TEST

START_TEST(test_cmd_in_commit)
{
    static const struct { uint32_t start, len, status; } narrow[] = {
        { 0, 0, APN_CMD_OK },
        { 0x100, 0, APN_CMD_EINVAL },       /* len 0 needs start 0 */
        { 0, 4096, APN_CMD_OK },
        { 4095, 1, APN_CMD_OK },
        { 4096, 0, APN_CMD_EINVAL },
        { 4096, 1, APN_CMD_EINVAL },
        { 0x800, 0x801, APN_CMD_EINVAL },
        { 0x800, 0x800, APN_CMD_OK },
        { 0xffffffffu, 2, APN_CMD_EINVAL },
        { 1, 0xffffffffu, APN_CMD_EINVAL },
        { 0x800, 0x100, APN_CMD_OK },
    };
    Nic *n = cmd_nic(APN_EP_VALID | APN_EP_TRUSTED);
    uint8_t *e = entry_ptr(n, false, RX_INDEX);
    uint8_t buf[256];
    FrameSpec fs;
    uint32_t nonce = NONCE, start = 0, len = 0;

    /* The entry is cached by a delivery first. */
    spec_default(&fs, 0, 64);
    memcpy(fs.dst, tx_mac, 6);
    fs.dst_host = TX_HOST;
    receive(n, buf, build_frame(buf, sizeof(buf), &fs));
    assert_only_rx_drop(n, APN_CNT__COUNT, 0);

    for (size_t i = 0; i < ARRAY_SIZE(narrow); i++) {
        uint8_t before[64];

        memcpy(before, e, 64);
        qemu_log_counts_reset();
        cmd_in(n, CMD_EP_N, RX_INDEX, 0x100 + i, narrow[i].start,
               narrow[i].len);
        ck_assert_msg(cmd_status(n, CMD_EP_N) == narrow[i].status,
                      "narrowing [0x%x, +0x%x): status %u", narrow[i].start,
                      narrow[i].len, cmd_status(n, CMD_EP_N));
        ck_assert_uint_eq(qemu_log_guest_errors, !!narrow[i].status);
        if (!narrow[i].status) {
            nonce = 0x100 + i;
            start = narrow[i].start;
            len = narrow[i].len;
        }
        ck_assert_uint_eq(get_le32(e + offsetof(struct apn_in_entry, nonce)),
                          nonce);
        ck_assert_uint_eq(get_le32(e + offsetof(struct apn_in_entry,
                                               narrow_start)), start);
        ck_assert_uint_eq(get_le32(e + offsetof(struct apn_in_entry,
                                               narrow_len)), len);
        /* Everything else is the OS's. */
        ck_assert_mem_eq(e, before, offsetof(struct apn_in_entry, nonce));
        ck_assert_mem_eq(e + 20, before + 20, 40 - 20);
        ck_assert_mem_eq(e + 48, before + 48, 16);
    }
    ck_assert_uint_eq(get_le32(e), APN_ENTRY_VALID | APN_IN_CONTIG |
                      APN_IN_CHECK_SRC_HOST);
    for (int i = 48; i < 64; i++) {
        ck_assert_uint_eq(e[i], 0x5a);
    }

    /* The cached copy was dropped: the new nonce and narrowing count. */
    receive(n, buf, build_frame(buf, sizeof(buf), &fs));
    assert_only_rx_drop(n, APN_CNT_RX_DROP_NONCE, 1);
    fs.seg[0].nonce = nonce;
    receive(n, buf, build_frame(buf, sizeof(buf), &fs));
    ck_assert_uint_eq(cnt(n, APN_CNT_RX_DROP_BOUNDS), 1);
    fs.seg[0].offset = 0x8c0;
    receive(n, buf, build_frame(buf, sizeof(buf), &fs));
    ck_assert_mem_eq(n->fake.mem + RX_BUF + 0x8c0, pattern(), 64);
    ck_assert_uint_eq(rx_drops(n), 2);

    /* Ownership and existence, as for OUT_COMMIT. */
    cmd_in(n, CMD_EP_N, 10, 1, 0, 0);
    ck_assert_uint_eq(cmd_status(n, CMD_EP_N), APN_CMD_ENOENT);
    cmd_in(n, CMD_EP_N, 11, 1, 0, 0);
    ck_assert_uint_eq(cmd_status(n, CMD_EP_N), APN_CMD_ENOENT);
    cmd_in(n, CMD_EP_N, TABLE_COUNT, 1, 0, 0);
    ck_assert_uint_eq(cmd_status(n, CMD_EP_N), APN_CMD_ENOENT);
    ck_assert_uint_eq(get_le32(e + offsetof(struct apn_in_entry, nonce)),
                      nonce);
    ck_assert_uint_eq(cnt(n, APN_CNT_CMD_REFUSED), 0);
    nic_free(n);
}
END_TEST

START_TEST(test_cmd_block)
{
    Nic *n = cmd_nic(0);

    /* CMD_EP names an endpoint the device has. */
    qemu_log_counts_reset();
    wr(n, APN_REG_CMD_EP, 63);
    ck_assert_uint_eq(rd(n, APN_REG_CMD_EP), 63);
    wr(n, APN_REG_CMD_EP, 64);
    wr(n, APN_REG_CMD_EP, 0xffffffffu);
    ck_assert_uint_eq(rd(n, APN_REG_CMD_EP), 63);
    ck_assert_uint_eq(qemu_log_guest_errors, 2);

    /* Acting for endpoint 63, endpoint 3's entry is not its own. */
    cmd_out(n, ~0u, TX_SLOT, RX_HOST, 12, NONCE2);
    ck_assert_uint_eq(cmd_status(n, ~0u), APN_CMD_ENOENT);
    wr(n, APN_REG_CMD_EP, CMD_EP_N);
    cmd_out(n, ~0u, TX_SLOT, RX_HOST, 12, NONCE2);
    ck_assert_uint_eq(cmd_status(n, ~0u), APN_CMD_OK);

    /* The block's registers are its own, not the user page's. */
    ck_assert_uint_eq(rd(n, APN_REG_CMD_BLOCK + APN_UREG_OUT_INDEX), TX_SLOT);
    ck_assert_uint_eq(ur(n, CMD_EP_N, APN_UREG_OUT_INDEX), 0);
    ck_assert_uint_eq(ur(n, CMD_EP_N, APN_UREG_CMD_STATUS), 0);
    ck_assert_uint_eq(rd(n, APN_REG_CMD_BLOCK + APN_UREG_OUT_COMMIT), 0);
    qemu_log_counts_reset();
    wr(n, APN_REG_CMD_BLOCK + APN_UREG_CMD_STATUS, 5);
    ck_assert_uint_eq(cmd_status(n, ~0u), APN_CMD_OK);
    ck_assert_uint_eq(qemu_log_guest_errors, 1);

    /* A message for a valid, untrusted endpoint: kernel connection setup. */
    epw(n, CMD_EP_N, APN_EPR_CTRL, APN_EP_VALID);
    cmd_msg(n, ~0u, RX_HOST, 5000, APN_MSG_CONNECT, 1, 2, 0);
    ck_assert_uint_eq(cmd_status(n, ~0u), APN_CMD_OK);
    ck_assert_uint_eq(n->fake.nframes, 1);
    ck_assert_uint_eq(cnt(n, APN_CNT_TX_MSGS), 1);
    ck_assert_uint_eq(cnt(n, APN_CNT_CMD_REFUSED), 0);
    nic_free(n);
}
END_TEST

/* ============================================================================ */
/* Connection messages and datagrams (UDP/IPv4)                                  */
/* ============================================================================ */

START_TEST(test_msg_status)
{
    Nic *n = cmd_nic(APN_EP_VALID | APN_EP_TRUSTED);
    const uint32_t ep = CMD_EP_N;
    static const struct { uint32_t host, port, type; } bad[] = {
        { RX_HOST, 5000, 0 },
        { RX_HOST, 5000, APN_MSG_ERROR + 1 },
        { RX_HOST, 5000, 0xffffffffu },
        { RX_HOST, 0, APN_MSG_CONNECT },
        { RX_HOST, 0x10000, APN_MSG_CONNECT },
    };

    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        qemu_log_counts_reset();
        cmd_msg(n, ep, bad[i].host, bad[i].port, bad[i].type, 0, 0, 0);
        ck_assert_msg(cmd_status(n, ep) == APN_CMD_EINVAL,
                      "type %u port %u: status %u", bad[i].type, bad[i].port,
                      cmd_status(n, ep));
        ck_assert_uint_eq(qemu_log_guest_errors, 1);
    }
    /* No port bound to the sender. */
    epw(n, ep, APN_EPR_PORT, 0);
    cmd_msg(n, ep, RX_HOST, 5000, APN_MSG_CONNECT, 0, 0, 0);
    ck_assert_uint_eq(cmd_status(n, ep), APN_CMD_EINVAL);
    epw(n, ep, APN_EPR_PORT, 4000);

    /* Disabled. */
    wr(n, APN_REG_CTRL, 0);
    cmd_msg(n, ep, RX_HOST, 5000, APN_MSG_CONNECT, 0, 0, 0);
    ck_assert_uint_eq(cmd_status(n, ep), APN_CMD_EDISABLED);
    wr(n, APN_REG_CTRL, APN_CTRL_ENABLE);

    /* No HOST_IP, no valid route, no IP_ADDR, no such host. */
    wr(n, APN_REG_HOST_IP_BASE + 4 * RX_HOST, 0);
    cmd_msg(n, ep, RX_HOST, 5000, APN_MSG_CONNECT, 0, 0, 0);
    ck_assert_uint_eq(cmd_status(n, ep), APN_CMD_ENOROUTE);
    wr(n, APN_REG_HOST_IP_BASE + 4 * RX_HOST, RX_IP);
    wr(n, APN_REG_HOST_MAC_BASE + 8 * RX_HOST + 4, 0);
    cmd_msg(n, ep, RX_HOST, 5000, APN_MSG_CONNECT, 0, 0, 0);
    ck_assert_uint_eq(cmd_status(n, ep), APN_CMD_ENOROUTE);
    set_route(n, RX_HOST, rx_mac);
    wr(n, APN_REG_IP_ADDR, 0);
    cmd_msg(n, ep, RX_HOST, 5000, APN_MSG_CONNECT, 0, 0, 0);
    ck_assert_uint_eq(cmd_status(n, ep), APN_CMD_ENOROUTE);
    wr(n, APN_REG_IP_ADDR, TX_IP);
    cmd_msg(n, ep, 0x10000 | RX_HOST, 5000, APN_MSG_CONNECT, 0, 0, 0);
    ck_assert_uint_eq(cmd_status(n, ep), APN_CMD_ENOROUTE);
    cmd_msg(n, ep, 256, 5000, APN_MSG_CONNECT, 0, 0, 0);
    ck_assert_uint_eq(cmd_status(n, ep), APN_CMD_ENOROUTE);
    ck_assert_uint_eq(n->fake.nframes, 0);
    ck_assert_uint_eq(cnt(n, APN_CNT_TX_MSGS), 0);
    ck_assert_uint_eq(cnt(n, APN_CNT_TX_FRAMES), 0);

    /* Every type CONNECT..ERROR goes. */
    for (uint32_t t = APN_MSG_CONNECT; t <= APN_MSG_ERROR; t++) {
        cmd_msg(n, ep, RX_HOST, 0xffff, t, 0, 0, 0);
        ck_assert_uint_eq(cmd_status(n, ep), APN_CMD_OK);
    }
    ck_assert_uint_eq(n->fake.nframes, 6);
    ck_assert_uint_eq(cnt(n, APN_CNT_TX_MSGS), 6);
    ck_assert_uint_eq(cnt(n, APN_CNT_TX_FRAMES), 6);
    ck_assert_uint_eq(cnt(n, APN_CNT_TX_BYTES), 6 * 66);
    ck_assert_uint_eq(cnt(n, APN_CNT_TX_SEGMENTS), 0);
    ck_assert_uint_eq(cnt(n, APN_CNT_CMD_REFUSED), 0);
    nic_free(n);
}
END_TEST

START_TEST(test_msg_encoding)
{
    Nic *tx = cmd_nic(APN_EP_VALID | APN_EP_TRUSTED), *rx = ip_nic();
    const FakeFrame *f;
    const uint8_t *ip, *udp, *m;
    uint8_t expect[128], msg[APN_MSG_LEN];
    uint32_t pseudo;

    /* Stores issued before the message leave before it. */
    store(tx, TX_SLOT, 0, 1, 8);
    cmd_msg(tx, CMD_EP_N, RX_HOST, RX_PORT, APN_MSG_ERROR, 0x01020304u,
            0xa1b2c3d4u, 0x55667788u);
    ck_assert_uint_eq(cmd_status(tx, CMD_EP_N), APN_CMD_OK);
    ck_assert_uint_eq(tx->fake.nframes, 2);
    ck_assert_uint_eq(get_be16(tx->fake.frames[0].data + 12), APN_ETHERTYPE);
    ck_assert(!tx->core.burst.active && !tx->core.pend.active);
    f = &tx->fake.frames[1];
    ck_assert_uint_eq(f->len, APN_ETH_HLEN + APN_IPV4_HLEN + APN_UDP_HLEN +
                      APN_MSG_LEN);

    /* Ethernet */
    ck_assert_mem_eq(f->data, rx_mac, 6);
    ck_assert_mem_eq(f->data + 6, tx_mac, 6);
    ck_assert_uint_eq(get_be16(f->data + 12), 0x0800);
    /* IPv4: 45 00 0034 0000 4000 40 11 csum src dst */
    ip = f->data + APN_ETH_HLEN;
    ck_assert_uint_eq(ip[0], 0x45);
    ck_assert_uint_eq(ip[1], 0);
    ck_assert_uint_eq(get_be16(ip + 2), 52);
    ck_assert_uint_eq(get_be16(ip + 4), 0);
    ck_assert_uint_eq(get_be16(ip + 6), 0x4000);
    ck_assert_uint_eq(ip[8], 64);
    ck_assert_uint_eq(ip[9], 17);
    ck_assert_uint_eq(get_be32(ip + 12), TX_IP);
    ck_assert_uint_eq(get_be32(ip + 16), RX_IP);
    /* 4500 + 0034 + 4000 + 4011 + 0a00 + 0003 + 0a00 + 0007 = d94f */
    ck_assert_uint_eq(get_be16(ip + 10), 0x26b0);
    ck_assert_uint_eq(ref_csum(ip, APN_IPV4_HLEN, 0), 0);
    /* UDP: from the endpoint's port, length 32, checksum over the pseudo
     * header */
    udp = ip + APN_IPV4_HLEN;
    ck_assert_uint_eq(get_be16(udp), 4000);
    ck_assert_uint_eq(get_be16(udp + 2), RX_PORT);
    ck_assert_uint_eq(get_be16(udp + 4), 32);
    ck_assert_uint_ne(get_be16(udp + 6), 0);
    pseudo = (TX_IP >> 16) + (TX_IP & 0xffff) + (RX_IP >> 16) +
             (RX_IP & 0xffff) + 17 + 32;
    ck_assert_uint_eq(ref_csum(udp, 32, pseudo), 0);
    /* struct apn_msg, big-endian */
    m = udp + APN_UDP_HLEN;
    ck_assert_uint_eq(get_be32(m), APN_MSG_MAGIC);
    ck_assert_uint_eq(m[4], APN_WIRE_VERSION);
    ck_assert_uint_eq(m[5], APN_MSG_ERROR);
    ck_assert_uint_eq(get_be16(m + 6), 4000);
    ck_assert_uint_eq(get_be16(m + 8), TX_HOST);
    ck_assert_uint_eq(get_be16(m + 10), 0);
    ck_assert_uint_eq(get_be32(m + 12), 0x01020304u);
    ck_assert_uint_eq(get_be32(m + 16), 0xa1b2c3d4u);
    ck_assert_uint_eq(get_be32(m + 20), 0x55667788u);
    /* Byte-exact against the independent builder. */
    build_msg(msg, APN_MSG_ERROR, 4000, TX_HOST, 0x01020304u, 0xa1b2c3d4u,
              0x55667788u);
    ck_assert_uint_eq(build_udp(expect, 4000, RX_PORT, msg, sizeof(msg)),
                      f->len);
    ck_assert_mem_eq(expect, f->data, f->len);

    /* Received: an event on the bound endpoint. */
    ep_setup(rx, 6, APN_EP_VALID, RX_PORT, 8, 256);
    receive(rx, f->data, f->len);
    assert_only_rx_drop(rx, APN_CNT__COUNT, 0);
    ck_assert_uint_eq(cnt(rx, APN_CNT_RX_MSGS), 1);
    assert_ev(evq_ev(rx, 6, 0), APN_EV_ERROR_MSG, 6, 0x55667788u,
              0xa1b2c3d4u | (uint64_t)TX_HOST << 32 | 4000ull << 48);
    ck_assert_uint_eq(ur(rx, 6, APN_UREG_VARQ_WRPTR), 0);
    ck_assert_uint_eq(rx->fake.nframes, 0);
    nic_free(tx);
    nic_free(rx);
}
END_TEST

START_TEST(test_msg_receive)
{
    Nic *n = ip_nic();
    uint8_t m[APN_MSG_LEN + 8];
    uint32_t slot = 0;

    ep_setup(n, 6, APN_EP_VALID, RX_PORT, 32, 1024);
    for (uint8_t t = APN_MSG_CONNECT; t <= APN_MSG_ERROR; t++) {
        build_msg(m, t, 4000 + t, 0x100 | t, 0x100 + t, 0xabc00000u + t,
                  0x900 + t);
        rx_datagram(n, 1234, RX_PORT, m, APN_MSG_LEN);
        assert_ev(evq_ev(n, 6, slot++), APN_EV_MSG_DATA(t), 6,
                  t == APN_MSG_ERROR ? 0x900u + t : 0x100u + t,
                  (0xabc00000u + t) | (uint64_t)(0x100 | t) << 32 |
                  (uint64_t)(4000 + t) << 48);
    }
    ck_assert_uint_eq(APN_EV_MSG_DATA(APN_MSG_CONNECT), APN_EV_CONNECT);
    ck_assert_uint_eq(APN_EV_MSG_DATA(APN_MSG_ERROR), APN_EV_ERROR_MSG);
    ck_assert_uint_eq(cnt(n, APN_CNT_RX_MSGS), 6);

    /* Trailing bytes after a message are ignored. */
    build_msg(m, APN_MSG_ALIVE, 1, 2, 3, 4, 5);
    memset(m + APN_MSG_LEN, 0xee, 8);
    rx_datagram(n, 1234, RX_PORT, m, sizeof(m));
    assert_ev(evq_ev(n, 6, slot++), APN_EV_ALIVE, 6, 3,
              4 | 2ull << 32 | 1ull << 48);
    ck_assert_uint_eq(cnt(n, APN_CNT_RX_MSGS), 7);
    ck_assert_uint_eq(ur(n, 6, APN_UREG_VARQ_WRPTR), 0);

    /* Not messages: records on the variable-length queue. */
    for (int k = 0; k < 5; k++) {
        uint16_t len = APN_MSG_LEN;
        uint32_t pos = ur(n, 6, APN_UREG_VARQ_WRPTR);

        build_msg(m, APN_MSG_CONNECT, 1, 2, 3, 4, 5);
        switch (k) {
        case 0: m[0] ^= 1; break;                       /* magic */
        case 1: m[4] = 2; break;                        /* version */
        case 2: m[5] = 0; break;                        /* type */
        case 3: m[5] = APN_MSG_ERROR + 1; break;
        case 4: len = APN_MSG_LEN - 1; break;           /* short */
        }
        rx_datagram(n, 1234, RX_PORT, m, len);
        assert_ev(evq_ev(n, 6, slot++), APN_EV_VAR, 6, len,
                  pos | 1234ull << 32);
        assert_var_rec(n, 6, 1024, pos, m, len);
    }
    ck_assert_uint_eq(cnt(n, APN_CNT_RX_MSGS), 7);

    /* A message for a full queue is counted and lost. */
    epw(n, 6, APN_EPR_EVQ_SIZE, 2);
    for (int k = 0; k < 3; k++) {
        build_msg(m, APN_MSG_CLOSE, 1, 2, 3, 4, 5);
        rx_datagram(n, 1234, RX_PORT, m, APN_MSG_LEN);
    }
    ck_assert_uint_eq(cnt(n, APN_CNT_RX_MSGS), 10);
    ck_assert_uint_eq(cnt(n, APN_CNT_EVQ_OVERFLOWS), 1);
    ck_assert_uint_eq(ur(n, 6, APN_UREG_EVQ_WRPTR), 2);
    assert_only_rx_drop(n, APN_CNT__COUNT, 0);
    ck_assert_uint_eq(n->fake.nframes, 0);
    nic_free(n);
}
END_TEST

START_TEST(test_msg_loopback)
{
    Nic *n = cmd_nic(APN_EP_VALID | APN_EP_TRUSTED);

    /* To our own host id: looped back to our own receive path. */
    wr(n, APN_REG_HOST_IP_BASE + 4 * TX_HOST, TX_IP);
    cmd_msg(n, CMD_EP_N, TX_HOST, 4000, APN_MSG_ACCEPT, 7, 8, 0);
    ck_assert_uint_eq(cmd_status(n, CMD_EP_N), APN_CMD_OK);
    ck_assert_uint_eq(n->fake.nframes, 0);
    ck_assert_uint_eq(cnt(n, APN_CNT_TX_MSGS), 1);
    ck_assert_uint_eq(cnt(n, APN_CNT_TX_FRAMES), 1);
    ck_assert_uint_eq(cnt(n, APN_CNT_RX_FRAMES), 1);
    ck_assert_uint_eq(cnt(n, APN_CNT_RX_MSGS), 1);
    assert_ev(evq_ev(n, CMD_EP_N, 0), APN_EV_ACCEPT, CMD_EP_N, 7,
              8 | (uint64_t)TX_HOST << 32 | 4000ull << 48);
    assert_only_rx_drop(n, APN_CNT__COUNT, 0);
    nic_free(n);
}
END_TEST

START_TEST(test_rx_ip_checks)
{
    static const char *const names[] = {
        "baseline", "DF clear, TTL 1", "broadcast", "UDP checksum 0",
        "Ethernet padding", "bytes past the total length",
        "version 6", "IHL 6", "total length 27", "total length past frame",
        "more fragments", "fragment offset", "TCP", "header checksum",
        "another address", "UDP length 7", "UDP length past packet",
        "UDP checksum", "short frame",
    };
    enum { FIRST_BAD = 6 };
    static const uint8_t payload[12] = "hello, world";

    for (unsigned c = 0; c < ARRAY_SIZE(names); c++) {
        Nic *n = ip_nic();
        uint8_t f[256], *ip = f + APN_ETH_HLEN, *udp = ip + APN_IPV4_HLEN;
        size_t len = build_udp(f, 1234, RX_PORT, payload, sizeof(payload));
        bool fix = true, udp_csum = true;

        ep_setup(n, 6, APN_EP_VALID, RX_PORT, 8, 256);
        memset(f + len, 0x77, sizeof(f) - len);
        switch (c) {
        case 1: ip[6] = 0; ip[8] = 1; break;
        case 2: put_be32(ip + 16, 0xffffffffu); break;
        case 3: udp_csum = false; break;
        case 4:
            len = build_udp(f, 1234, RX_PORT, payload, 4);
            memset(f + 46, 0xee, len - 46);
            fix = false;
            break;
        case 5: len += 10; break;
        case 6: ip[0] = 0x65; break;
        case 7: ip[0] = 0x46; break;
        case 8: put_be16(ip + 2, 27); break;
        case 9: put_be16(ip + 2, len - APN_ETH_HLEN + 1); break;
        case 10: ip[6] |= 0x20; break;
        case 11: ip[7] = 1; break;
        case 12: ip[9] = 6; break;
        case 13: ip_fix(f, true); ip[11] ^= 1; fix = false; break;
        case 14: put_be32(ip + 16, RX_IP + 1); break;
        case 15: put_be16(udp + 4, 7); break;
        case 16: put_be16(udp + 4, get_be16(ip + 2) - APN_IPV4_HLEN + 1); break;
        case 17: ip_fix(f, true); udp[APN_UDP_HLEN] ^= 1; fix = false; break;
        case 18: len = APN_ETH_HLEN + 27; break;
        }
        if (fix) {
            ip_fix(f, udp_csum);
        }
        receive(n, f, len);
        if (c < FIRST_BAD) {
            ck_assert_msg(rx_drops(n) == 0, "%s: dropped", names[c]);
            ck_assert_uint_eq(ur(n, 6, APN_UREG_EVQ_WRPTR), 1);
            ck_assert_uint_eq(evq_ev(n, 6, 0).type, APN_EV_VAR);
        } else {
            ck_assert_msg(cnt(n, APN_CNT_RX_DROP_BAD_IP) == 1,
                          "%s: not rx_drop_bad_ip", names[c]);
            assert_only_rx_drop(n, APN_CNT_RX_DROP_BAD_IP, 1);
            ck_assert_uint_eq(ur(n, 6, APN_UREG_EVQ_WRPTR), 0);
            ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 0);
        }
        ck_assert_uint_eq(cnt(n, APN_CNT_RX_FRAMES), 1);
        ck_assert_uint_eq(n->fake.nframes, 0);
        nic_free(n);
    }

    /* No IP_ADDR: nothing is ours, not even broadcast; disabled: dropped. */
    {
        Nic *n = ip_nic();
        uint8_t f[128];
        size_t len = build_udp(f, 1234, RX_PORT, payload, sizeof(payload));

        ep_setup(n, 6, APN_EP_VALID, RX_PORT, 8, 256);
        wr(n, APN_REG_IP_ADDR, 0);
        receive(n, f, len);
        put_be32(f + APN_ETH_HLEN + 16, 0xffffffffu);
        ip_fix(f, true);
        receive(n, f, len);
        assert_only_rx_drop(n, APN_CNT_RX_DROP_BAD_IP, 2);
        wr(n, APN_REG_IP_ADDR, RX_IP);
        wr(n, APN_REG_CTRL, 0);
        receive(n, f, len);
        ck_assert_uint_eq(cnt(n, APN_CNT_RX_DROP_DISABLED), 1);
        ck_assert_uint_eq(ur(n, 6, APN_UREG_EVQ_WRPTR), 0);
        nic_free(n);
    }
}
END_TEST

START_TEST(test_rx_no_port)
{
    Nic *n = ip_nic();
    uint8_t m[APN_MSG_LEN];

    ep_setup(n, 7, 0, 6001, 8, 256);            /* bound, but not valid */
    rx_datagram(n, 4321, 6000, pattern(), 10);
    assert_only_rx_drop(n, APN_CNT_RX_DROP_NO_PORT, 1);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 1);
    assert_ev(osq_ev(n, 0), APN_EV_NO_PORT, 0, 6000,
              (uint64_t)TX_IP << 16 | 4321);
    ck_assert_uint_eq(n->fake.nnotify, 1);
    ck_assert_uint_eq(n->fake.notify_vec[0], APN_VEC_OSQ);
    build_msg(m, APN_MSG_CONNECT, 1, 2, 3, 4, 5);
    rx_datagram(n, 4322, 6001, m, sizeof(m));
    assert_only_rx_drop(n, APN_CNT_RX_DROP_NO_PORT, 2);
    assert_ev(osq_ev(n, 1), APN_EV_NO_PORT, 0, 6001,
              (uint64_t)TX_IP << 16 | 4322);
    ck_assert_uint_eq(cnt(n, APN_CNT_RX_MSGS), 0);
    ck_assert_uint_eq(cnt(n, APN_CNT_EVQ_EVENTS), 0);
    ck_assert_uint_eq(ur(n, 7, APN_UREG_VARQ_WRPTR), 0);
    ck_assert_uint_eq(n->fake.nframes, 0);
    nic_free(n);
}
END_TEST

/* ============================================================================ */
/* ERROR segments and refusal reports                                            */
/* ============================================================================ */

/* An ERROR segment from RX_HOST (rx_mac) to TX_HOST. */
static size_t error_frame(uint8_t *buf, size_t cap, uint16_t src_host,
                          uint32_t in_index, uint32_t out_index,
                          uint32_t reason, uint16_t len)
{
    FrameSpec fs;

    spec_default(&fs, reason, len);
    memcpy(fs.dst, tx_mac, 6);
    memcpy(fs.src, rx_mac, 6);
    fs.src_host = src_host;
    fs.dst_host = TX_HOST;
    fs.seg[0].type = APN_SEG_ERROR;
    fs.seg[0].nonce = 0;
    fs.seg[0].in_index = in_index;
    fs.seg[0].out_index = out_index;
    return build_frame(buf, cap, &fs);
}

START_TEST(test_seg_error_roundtrip)
{
    Nic *tx = tx_nic(), *rx = rx_nic();
    struct apn_out_entry oe = out_entry(RX_HOST, RX_INDEX, 4096);
    struct apn_in_entry ie = contig_in(RX_BUF, 4096);
    const FakeFrame *f;
    uint8_t buf[128];
    size_t len;

    oe.endpoint = 2;
    put_out(tx, TX_SLOT, &oe);
    ep_setup(tx, 2, APN_EP_VALID, 0, 16, 0);
    ie.endpoint = 4;
    ie.nonce = NONCE2;
    put_in(rx, RX_INDEX, &ie);
    ep_setup(rx, 4, APN_EP_VALID, 0, 8, 0);

    /* Refused: the receiving endpoint and the sender are told. */
    f = send_one(tx, TX_SLOT, 0x40, 16);
    receive(rx, f->data, f->len);
    assert_only_rx_drop(rx, APN_CNT_RX_DROP_NONCE, 1);
    ck_assert_uint_eq(ur(rx, 4, APN_UREG_EVQ_WRPTR), 1);
    assert_ev(evq_ev(rx, 4, 0), APN_EV_RX_DROP, 4, APN_CNT_RX_DROP_NONCE,
              RX_INDEX | (uint64_t)TX_HOST << 32);
    ck_assert_uint_eq(rx->fake.nframes, 1);
    assert_error_frame(&rx->fake.frames[0], rx_mac, RX_HOST, tx_mac, TX_HOST,
                       RX_INDEX, TX_SLOT, APN_CNT_RX_DROP_NONCE);

    /* The sender's endpoint learns which aperture and why. */
    receive(tx, rx->fake.frames[0].data, rx->fake.frames[0].len);
    ck_assert_uint_eq(cnt(tx, APN_CNT_RX_ERROR_MSGS), 1);
    ck_assert_uint_eq(cnt(tx, APN_CNT_RX_SEGMENTS), 1);
    assert_only_rx_drop(tx, APN_CNT__COUNT, 0);
    ck_assert_uint_eq(ur(tx, 2, APN_UREG_EVQ_WRPTR), 1);
    assert_ev(evq_ev(tx, 2, 0), APN_EV_TX_ERROR, 2, APN_CNT_RX_DROP_NONCE,
              TX_SLOT | (uint64_t)RX_INDEX << 32);
    /* Never an ERROR in answer to an ERROR. */
    ck_assert_uint_eq(tx->fake.nframes, 1);
    ck_assert_uint_eq(cnt(tx, APN_CNT_TX_ERROR_MSGS), 0);

    /* Stale or forged reports are counted and otherwise ignored. */
    {
        static const struct { uint16_t host; uint32_t in, out; } stale[] = {
            { RX_HOST + 1, RX_INDEX, TX_SLOT },     /* another host */
            { RX_HOST, RX_INDEX + 1, TX_SLOT },     /* another aperture */
            { RX_HOST, RX_INDEX, 6 },               /* entry not valid */
            { RX_HOST, RX_INDEX, TABLE_COUNT },     /* outside the table */
            { RX_HOST, RX_INDEX, APN_INVAL_OUT | TX_SLOT },
        };

        for (size_t i = 0; i < ARRAY_SIZE(stale); i++) {
            len = error_frame(buf, sizeof(buf), stale[i].host, stale[i].in,
                              stale[i].out, APN_CNT_RX_DROP_BOUNDS, 0);
            receive(tx, buf, len);
            ck_assert_uint_eq(cnt(tx, APN_CNT_RX_ERROR_MSGS), 2 + i);
            ck_assert_msg(ur(tx, 2, APN_UREG_EVQ_WRPTR) == 1,
                          "stale ERROR %zu reported", i);
        }
    }
    /* The aperture now sends elsewhere: the old report is stale. */
    oe.dest_in_index = RX_INDEX + 1;
    put_out(tx, TX_SLOT, &oe);
    wr(tx, APN_REG_TABLE_INVAL, APN_INVAL_OUT | TX_SLOT);
    receive(tx, rx->fake.frames[0].data, rx->fake.frames[0].len);
    ck_assert_uint_eq(cnt(tx, APN_CNT_RX_ERROR_MSGS), 7);
    ck_assert_uint_eq(ur(tx, 2, APN_UREG_EVQ_WRPTR), 1);
    /* Pointed back, but its endpoint is not valid: nobody to tell. */
    oe.dest_in_index = RX_INDEX;
    put_out(tx, TX_SLOT, &oe);
    wr(tx, APN_REG_TABLE_INVAL, APN_INVAL_OUT | TX_SLOT);
    epw(tx, 2, APN_EPR_CTRL, 0);
    receive(tx, rx->fake.frames[0].data, rx->fake.frames[0].len);
    ck_assert_uint_eq(cnt(tx, APN_CNT_RX_ERROR_MSGS), 8);
    ck_assert_uint_eq(ur(tx, 2, APN_UREG_EVQ_WRPTR), 1);
    epw(tx, 2, APN_EPR_CTRL, APN_EP_VALID);
    receive(tx, rx->fake.frames[0].data, rx->fake.frames[0].len);
    ck_assert_uint_eq(ur(tx, 2, APN_UREG_EVQ_WRPTR), 2);
    assert_ev(evq_ev(tx, 2, 1), APN_EV_TX_ERROR, 2, APN_CNT_RX_DROP_NONCE,
              TX_SLOT | (uint64_t)RX_INDEX << 32);

    /* An ERROR with a payload is malformed. */
    len = error_frame(buf, sizeof(buf), RX_HOST, RX_INDEX, TX_SLOT,
                      APN_CNT_RX_DROP_NONCE, 4);
    receive(tx, buf, len);
    assert_only_rx_drop(tx, APN_CNT_RX_DROP_MALFORMED, 1);
    ck_assert_uint_eq(cnt(tx, APN_CNT_RX_ERROR_MSGS), 9);
    ck_assert_uint_eq(ur(tx, 2, APN_UREG_EVQ_WRPTR), 2);
    ck_assert_uint_eq(tx->fake.nframes, 1);
    ck_assert_uint_eq(cnt(tx, APN_CNT_TX_ERROR_MSGS), 0);
    nic_free(tx);
    nic_free(rx);
}
END_TEST

START_TEST(test_seg_error_rules)
{
    Nic *rx = rx_nic();
    struct apn_in_entry ie = contig_in(RX_BUF, 4096);
    uint8_t buf[512];
    FrameSpec fs;
    SentSeg s;

    ie.endpoint = 4;
    put_in(rx, RX_INDEX, &ie);
    ep_setup(rx, 4, APN_EP_VALID, 0, 8, 0);

    /* Never to a group source MAC; the endpoint is still told. */
    spec_default(&fs, 0, 8);
    fs.src[0] |= 1;
    fs.seg[0].nonce = NONCE2;
    receive(rx, buf, build_frame(buf, sizeof(buf), &fs));
    assert_only_rx_drop(rx, APN_CNT_RX_DROP_NONCE, 1);
    ck_assert_uint_eq(rx->fake.nframes, 0);
    ck_assert_uint_eq(cnt(rx, APN_CNT_TX_ERROR_MSGS), 0);
    ck_assert_uint_eq(cnt(rx, APN_CNT_TX_FRAMES), 0);
    assert_ev(evq_ev(rx, 4, 0), APN_EV_RX_DROP, 4, APN_CNT_RX_DROP_NONCE,
              RX_INDEX | (uint64_t)TX_HOST << 32);

    /* Each refused segment of a packed frame gets its own ERROR frame, in
     * order; delivered ones and ERROR segments get none. */
    spec_default(&fs, 0, 8);
    fs.nseg = 4;
    fs.seg[1] = fs.seg[0];
    fs.seg[1].nonce = NONCE2;
    fs.seg[1].out_index = 6;
    fs.seg[2] = fs.seg[0];
    fs.seg[2].type = APN_SEG_ERROR;
    fs.seg[2].len = 0;
    fs.seg[2].in_index = 99;
    fs.seg[2].out_index = 8;
    fs.seg[3] = fs.seg[0];
    fs.seg[3].in_index = 200;
    fs.seg[3].out_index = 7;
    fs.seg[3].offset = 8;
    receive(rx, buf, build_frame(buf, sizeof(buf), &fs));
    ck_assert_uint_eq(cnt(rx, APN_CNT_RX_SEGMENTS), 5);
    ck_assert_uint_eq(cnt(rx, APN_CNT_RX_DROP_NONCE), 2);
    ck_assert_uint_eq(cnt(rx, APN_CNT_RX_DROP_INDEX), 1);
    ck_assert_uint_eq(cnt(rx, APN_CNT_RX_ERROR_MSGS), 1);
    ck_assert_mem_eq(rx->fake.mem + RX_BUF, pattern(), 8);
    ck_assert_uint_eq(rx->fake.nframes, 2);
    assert_error_frame(&rx->fake.frames[0], rx_mac, RX_HOST, tx_mac, TX_HOST,
                       RX_INDEX, 6, APN_CNT_RX_DROP_NONCE);
    assert_error_frame(&rx->fake.frames[1], rx_mac, RX_HOST, tx_mac, TX_HOST,
                       200, 7, APN_CNT_RX_DROP_INDEX);
    s = parse_sent(&rx->fake.frames[1]);
    ck_assert_uint_eq(s.type, APN_SEG_ERROR);
    ck_assert_uint_eq(cnt(rx, APN_CNT_TX_ERROR_MSGS), 2);
    ck_assert_uint_eq(cnt(rx, APN_CNT_TX_SEGMENTS), 2);
    ck_assert_uint_eq(cnt(rx, APN_CNT_TX_FRAMES), 2);
    ck_assert_uint_eq(cnt(rx, APN_CNT_TX_BYTES), 2 * APN_MIN_ETH_FRAME);
    /* An index refusal names no entry, so no endpoint is told. */
    ck_assert_uint_eq(ur(rx, 4, APN_UREG_EVQ_WRPTR), 2);
    assert_ev(evq_ev(rx, 4, 1), APN_EV_RX_DROP, 4, APN_CNT_RX_DROP_NONCE,
              RX_INDEX | (uint64_t)TX_HOST << 32);

    /* A refusal in a broadcast frame is answered to the source MAC. */
    spec_default(&fs, 0, 8);
    memset(fs.dst, 0xff, 6);
    fs.seg[0].offset = 4096;
    fake_clear_frames(&rx->fake);
    receive(rx, buf, build_frame(buf, sizeof(buf), &fs));
    ck_assert_uint_eq(rx->fake.nframes, 1);
    assert_error_frame(&rx->fake.frames[0], rx_mac, RX_HOST, tx_mac, TX_HOST,
                       RX_INDEX, TX_SLOT, APN_CNT_RX_DROP_BOUNDS);
    nic_free(rx);
}
END_TEST

START_TEST(test_seg_error_loopback)
{
    /* To ourselves: the refusal and its ERROR never reach the wire. */
    Nic *n = tx_nic();
    struct apn_out_entry oe = out_entry(TX_HOST, RX_INDEX, 4096);
    struct apn_in_entry ie = contig_in(RX_BUF, 4096);

    oe.endpoint = 2;
    put_out(n, 7, &oe);
    ie.endpoint = 4;
    ie.nonce = NONCE2;
    put_in(n, RX_INDEX, &ie);
    ep_setup(n, 2, APN_EP_VALID, 0, 8, 0);
    ep_setup(n, 4, APN_EP_VALID, 0, 8, 0);
    store(n, 7, 0, 1, 8);
    fence(n);
    ck_assert_uint_eq(n->fake.nframes, 0);
    ck_assert_uint_eq(cnt(n, APN_CNT_TX_FRAMES), 2);
    ck_assert_uint_eq(cnt(n, APN_CNT_RX_FRAMES), 2);
    ck_assert_uint_eq(cnt(n, APN_CNT_TX_SEGMENTS), 2);
    ck_assert_uint_eq(cnt(n, APN_CNT_RX_SEGMENTS), 2);
    ck_assert_uint_eq(cnt(n, APN_CNT_TX_ERROR_MSGS), 1);
    ck_assert_uint_eq(cnt(n, APN_CNT_RX_ERROR_MSGS), 1);
    assert_only_rx_drop(n, APN_CNT_RX_DROP_NONCE, 1);
    assert_ev(evq_ev(n, 4, 0), APN_EV_RX_DROP, 4, APN_CNT_RX_DROP_NONCE,
              RX_INDEX | (uint64_t)TX_HOST << 32);
    assert_ev(evq_ev(n, 2, 0), APN_EV_TX_ERROR, 2, APN_CNT_RX_DROP_NONCE,
              7 | (uint64_t)RX_INDEX << 32);
    ck_assert_uint_eq(cnt(n, APN_CNT_EVQ_EVENTS), 2);
    nic_free(n);
}
END_TEST

/* ============================================================================ */
/* Event frames                                                                  */
/* ============================================================================ */

#define EV_SLOT         8       /* tx: an outgoing event aperture */

static void put_event_out(Nic *n, uint32_t slot, uint32_t seq_flag,
                          uint32_t seq)
{
    struct apn_out_entry oe = out_entry(RX_HOST, EV_INDEX, 64);

    oe.flags |= APN_ENTRY_TYPE_EVENT << APN_ENTRY_TYPE_SHIFT | seq_flag;
    oe.seq = seq;
    put_out(n, slot, &oe);
}

START_TEST(test_event_tx)
{
    static const struct { uint32_t off; unsigned size; uint64_t val; } st[] = {
        { 0, 1, 0x11 }, { 2, 2, 0x2322 }, { 4, 4, 0x37363534 },
        { 8, 8, 0x4f4e4d4c4b4a4948ull }, { 63, 1, 0xab },
    };
    Nic *tx = tx_nic(), *rx = ev_nic(2, 16);
    SentSeg s[8];

    put_event_out(tx, EV_SLOT, APN_ENTRY_SEQ, 100);
    for (size_t i = 0; i < ARRAY_SIZE(st); i++) {
        store(tx, EV_SLOT, st[i].off, st[i].val, st[i].size);
        /* Not gathered: a segment per store, each packed at once. */
        ck_assert_uint_eq(cnt(tx, APN_CNT_TX_SEGMENTS), i + 1);
        ck_assert_uint_eq(tx->fake.timer_arms, 1);
    }
    /* Past the entry's size. */
    qemu_log_counts_reset();
    store(tx, EV_SLOT, 62, 0, 4);
    store(tx, EV_SLOT, 64, 0, 1);
    assert_only_tx_drop(tx, APN_CNT_TX_DROP_BOUNDS, 2);
    ck_assert_uint_eq(qemu_log_guest_errors, 2);
    ck_assert_uint_eq(tx->fake.nframes, 0);
    fence(tx);
    ck_assert_uint_eq(tx->fake.nframes, 1);
    ck_assert_uint_eq(parse_frame(&tx->fake.frames[0], s, 8), 5);
    for (size_t i = 0; i < ARRAY_SIZE(st); i++) {
        ck_assert_uint_eq(s[i].type, APN_SEG_EVENT);
        ck_assert_uint_eq(s[i].flags, APN_SEG_F_SEQ);
        ck_assert_uint_eq(s[i].seq, 100 + i);
        ck_assert_uint_eq(s[i].len, st[i].size);
        ck_assert_uint_eq(s[i].offset, st[i].off);
        ck_assert_uint_eq(s[i].in_index, EV_INDEX);
        ck_assert_uint_eq(s[i].out_index, EV_SLOT);
        ck_assert_uint_eq(s[i].nonce, NONCE);
        for (unsigned b = 0; b < st[i].size; b++) {
            ck_assert_uint_eq(s[i].payload[b], (uint8_t)(st[i].val >> 8 * b));
        }
    }
    ck_assert_uint_eq(out_seq_in_mem(tx, EV_SLOT), 105);

    /* Delivered: one APN_EV_EVENT each, in order. */
    receive(rx, tx->fake.frames[0].data, tx->fake.frames[0].len);
    assert_only_rx_drop(rx, APN_CNT__COUNT, 0);
    for (size_t i = 0; i < ARRAY_SIZE(st); i++) {
        assert_ev(evq_ev(rx, 2, i), APN_EV_EVENT, 2, st[i].off, st[i].val);
    }

    /* The burst being gathered is closed first: store order is kept. */
    store(tx, TX_SLOT, 0, 0x55, 8);
    store(tx, EV_SLOT, 1, 0x66, 1);
    store(tx, TX_SLOT, 8, 0x77, 8);
    fence(tx);
    ck_assert_uint_eq(tx->fake.nframes, 2);
    ck_assert_uint_eq(parse_frame(&tx->fake.frames[1], s, 8), 3);
    ck_assert_uint_eq(s[0].type, APN_SEG_WRITE);
    ck_assert_uint_eq(s[0].offset, 0);
    ck_assert_uint_eq(s[1].type, APN_SEG_EVENT);
    ck_assert_uint_eq(s[1].payload[0], 0x66);
    ck_assert_uint_eq(s[2].type, APN_SEG_WRITE);
    ck_assert_uint_eq(s[2].offset, 8);
    receive(rx, tx->fake.frames[1].data, tx->fake.frames[1].len);
    assert_only_rx_drop(rx, APN_CNT__COUNT, 0);
    ck_assert_uint_eq(rx->fake.mem[RX_BUF], 0x55);
    ck_assert_uint_eq(rx->fake.mem[RX_BUF + 8], 0x77);
    assert_ev(evq_ev(rx, 2, 5), APN_EV_EVENT, 2, 1, 0x66);
    nic_free(tx);
    nic_free(rx);
}
END_TEST

START_TEST(test_event_rx)
{
    Nic *n = ev_nic(2, 16);
    struct apn_in_entry e = event_in(2, 0x100);
    uint8_t buf[128];
    FrameSpec fs;

    /* Length 0 and 9 are malformed: counted, no ERROR, no report. */
    rx_event(n, EV_INDEX, 0, 0, 0);
    rx_event(n, EV_INDEX, 0, 0, 9);
    assert_only_rx_drop(n, APN_CNT_RX_DROP_MALFORMED, 2);
    ck_assert_uint_eq(n->fake.nframes, 0);
    ck_assert_uint_eq(ur(n, 2, APN_UREG_EVQ_WRPTR), 0);

    /* Bounds: offset < size; the narrowing does not apply. */
    e.narrow_start = 0x10;
    e.narrow_len = 0x10;
    put_in(n, EV_INDEX, &e);
    wr(n, APN_REG_TABLE_INVAL, EV_INDEX);
    rx_event(n, EV_INDEX, 0xff, 0xfe, 1);
    rx_event(n, EV_INDEX, 0x80, 0xfd, 1);
    assert_ev(evq_ev(n, 2, 0), APN_EV_EVENT, 2, 0xff, 0xfe);
    assert_ev(evq_ev(n, 2, 1), APN_EV_EVENT, 2, 0x80, 0xfd);
    assert_only_rx_drop(n, APN_CNT_RX_DROP_MALFORMED, 2);
    rx_event(n, EV_INDEX, 0x100, 0xfc, 1);
    ck_assert_uint_eq(cnt(n, APN_CNT_RX_DROP_BOUNDS), 1);
    ck_assert_uint_eq(rx_drops(n), 3);
    assert_ev(evq_ev(n, 2, 2), APN_EV_RX_DROP, 2, APN_CNT_RX_DROP_BOUNDS,
              EV_INDEX | (uint64_t)TX_HOST << 32);
    ck_assert_uint_eq(n->fake.nframes, 1);
    assert_error_frame(&n->fake.frames[0], rx_mac, RX_HOST, tx_mac, TX_HOST,
                       EV_INDEX, TX_SLOT, APN_CNT_RX_DROP_BOUNDS);

    /* A WRITE to an event aperture, an EVENT to a data aperture: invalid. */
    spec_default(&fs, 0, 8);
    fs.seg[0].in_index = EV_INDEX;
    receive(n, buf, build_frame(buf, sizeof(buf), &fs));
    ck_assert_uint_eq(cnt(n, APN_CNT_RX_DROP_INVALID), 1);
    assert_ev(evq_ev(n, 2, 3), APN_EV_RX_DROP, 2, APN_CNT_RX_DROP_INVALID,
              EV_INDEX | (uint64_t)TX_HOST << 32);
    rx_event(n, RX_INDEX, 0, 1, 1);
    ck_assert_uint_eq(cnt(n, APN_CNT_RX_DROP_INVALID), 2);
    ck_assert_uint_eq(ur(n, 2, APN_UREG_EVQ_WRPTR), 4);
    ck_assert_uint_eq(n->fake.nframes, 3);
    assert_error_frame(&n->fake.frames[2], rx_mac, RX_HOST, tx_mac, TX_HOST,
                       RX_INDEX, TX_SLOT, APN_CNT_RX_DROP_INVALID);

    /* Sequenced event apertures check and advance their number. */
    e = event_in(2, 0x100);
    e.flags |= APN_ENTRY_SEQ;
    e.seq = 7;
    put_in(n, EV_INDEX, &e);
    wr(n, APN_REG_TABLE_INVAL, EV_INDEX);
    spec_default(&fs, 0x20, 2);
    fs.seg[0].type = APN_SEG_EVENT;
    fs.seg[0].in_index = EV_INDEX;
    fs.seg[0].flags = APN_SEG_F_SEQ;
    fs.seg[0].seq = 7;
    receive(n, buf, build_frame(buf, sizeof(buf), &fs));
    assert_ev(evq_ev(n, 2, 4), APN_EV_EVENT, 2, 0x20,
              pattern()[0] | pattern()[1] << 8);
    ck_assert_uint_eq(in_seq_in_mem(n, EV_INDEX), 8);
    receive(n, buf, build_frame(buf, sizeof(buf), &fs));
    ck_assert_uint_eq(cnt(n, APN_CNT_RX_DROP_SEQ), 1);
    ck_assert_uint_eq(in_seq_in_mem(n, EV_INDEX), 8);
    ck_assert_uint_eq(cnt(n, APN_CNT_EVQ_EVENTS), 6);
    nic_free(n);
}
END_TEST

/* ============================================================================ */
/* Packing (FIG 12 step 6)                                                       */
/* ============================================================================ */

START_TEST(test_pack_hosts)
{
    static const uint8_t mac8[6] = { 0x52, 0x54, 0x00, 0xaa, 0x00, 0x08 };
    Nic *tx = tx_nic(), *rx = rx_nic();
    struct apn_out_entry oe = out_entry(RX_HOST, 11, 4096);
    struct apn_in_entry ie = contig_in(RX_BUF + 0x1000, 4096);
    SentSeg s[4];

    set_route(tx, 8, mac8);
    put_out(tx, 6, &oe);
    oe = out_entry(8, 12, 4096);
    put_out(tx, 7, &oe);
    put_in(rx, 11, &ie);

    store(tx, TX_SLOT, 0, 0xa, 8);              /* A: host 7 */
    store(tx, 6, 0, 0xb, 8);                    /* B: host 7, closes A */
    store(tx, 7, 0, 0xc, 8);                    /* C: host 8, closes B */
    ck_assert_uint_eq(tx->fake.nframes, 0);
    /* C closes into a frame for another host: A and B leave first. */
    store(tx, TX_SLOT, 0x100, 0xd, 8);
    ck_assert_uint_eq(tx->fake.nframes, 1);
    fence(tx);
    ck_assert_uint_eq(tx->fake.nframes, 3);
    ck_assert_uint_eq(cnt(tx, APN_CNT_TX_FRAMES), 3);
    ck_assert_uint_eq(cnt(tx, APN_CNT_TX_SEGMENTS), 4);

    ck_assert_mem_eq(tx->fake.frames[0].data, rx_mac, 6);
    ck_assert_uint_eq(parse_frame(&tx->fake.frames[0], s, 4), 2);
    ck_assert_uint_eq(s[0].dst_host, RX_HOST);
    ck_assert_uint_eq(s[0].out_index, TX_SLOT);
    ck_assert_uint_eq(s[0].payload[0], 0xa);
    ck_assert_uint_eq(s[1].out_index, 6);
    ck_assert_uint_eq(s[1].in_index, 11);
    ck_assert_uint_eq(s[1].payload[0], 0xb);
    ck_assert_uint_eq(tx->fake.frames[0].len,
                      APN_ETH_HLEN + APN_FRAME_HDR_LEN +
                      2 * (APN_SEG_HDR_LEN + 8) + APN_CRC_LEN);
    ck_assert_mem_eq(tx->fake.frames[1].data, mac8, 6);
    s[0] = parse_sent(&tx->fake.frames[1]);
    ck_assert_uint_eq(s[0].dst_host, 8);
    ck_assert_uint_eq(s[0].payload[0], 0xc);
    ck_assert_mem_eq(tx->fake.frames[2].data, rx_mac, 6);
    s[0] = parse_sent(&tx->fake.frames[2]);
    ck_assert_uint_eq(s[0].offset, 0x100);
    ck_assert_uint_eq(s[0].payload[0], 0xd);

    /* The receiver takes every segment of a packed frame. */
    receive(rx, tx->fake.frames[0].data, tx->fake.frames[0].len);
    assert_only_rx_drop(rx, APN_CNT__COUNT, 0);
    ck_assert_uint_eq(cnt(rx, APN_CNT_RX_SEGMENTS), 2);
    ck_assert_uint_eq(rx->fake.mem[RX_BUF], 0xa);
    ck_assert_uint_eq(rx->fake.mem[RX_BUF + 0x1000], 0xb);
    nic_free(tx);
    nic_free(rx);
}
END_TEST

/*
 * 1-byte stores two bytes apart: each closes the last into a 28-byte
 * segment. The frame goes as soon as no 8-byte segment (32 bytes) fits.
 */
static void check_pack_full(uint32_t mtu)
{
    ApnCoreConfig cfg = default_cfg(tx_mac);
    struct apn_out_entry oe = out_entry(RX_HOST, RX_INDEX, 65536);
    uint32_t room = mtu - APN_FRAME_HDR_LEN - APN_CRC_LEN, per = 0;
    SentSeg *s = calloc(255, sizeof(*s));
    Nic *tx;

    while (room - per * 28 >= APN_SEG_HDR_LEN + 8) {
        per++;
    }
    ck_assert_uint_lt(per, 255);
    cfg.mtu = mtu;
    tx = nic_new_cfg(&cfg, MEM_SIZE);
    nic_program(tx, TX_HOST, TABLE_COUNT, TABLE_COUNT);
    set_route(tx, RX_HOST, rx_mac);
    put_out(tx, TX_SLOT, &oe);
    for (uint32_t i = 0; i < 2 * per + 1; i++) {
        store(tx, TX_SLOT, 2 * i, i, 1);
        /* Store i closes segment i - 1: frame k leaves with store k*per. */
        ck_assert_uint_eq(tx->fake.nframes, i / per);
    }
    for (unsigned k = 0; k < 2; k++) {
        const FakeFrame *f = &tx->fake.frames[k];

        ck_assert_uint_eq(parse_frame(f, s, 255), per);
        ck_assert_uint_le(f->len - APN_ETH_HLEN, mtu);
        ck_assert_uint_lt(mtu - (f->len - APN_ETH_HLEN), APN_SEG_HDR_LEN + 8);
        for (uint32_t j = 0; j < per; j++) {
            ck_assert_uint_eq(s[j].offset, 2 * (k * per + j));
            ck_assert_uint_eq(s[j].len, 1);
            ck_assert_uint_eq(s[j].payload[0], (uint8_t)(k * per + j));
        }
    }
    fence(tx);
    ck_assert_uint_eq(tx->fake.nframes, 3);
    ck_assert_uint_eq(parse_sent(&tx->fake.frames[2]).offset, 4 * per);
    ck_assert_uint_eq(cnt(tx, APN_CNT_TX_SEGMENTS), 2 * per + 1);
    free(s);
    nic_free(tx);
}

START_TEST(test_pack_mtu_full)
{
    ApnCoreConfig cfg = default_cfg(tx_mac);
    struct apn_out_entry oe = out_entry(RX_HOST, RX_INDEX, 4096);
    SentSeg s[8];
    Nic *tx;

    check_pack_full(1500);          /* 53 a frame */
    check_pack_full(256);
    check_pack_full(257);
    check_pack_full(264);           /* 28 bytes left: full, 8 a frame */

    /* A segment that does not fit sends the frame before it. MTU 256:
     * 244 bytes of room, six 32-byte segments leave 52; then 64 more. */
    cfg.mtu = 256;
    tx = nic_new_cfg(&cfg, MEM_SIZE);
    nic_program(tx, TX_HOST, TABLE_COUNT, TABLE_COUNT);
    set_route(tx, RX_HOST, rx_mac);
    put_out(tx, TX_SLOT, &oe);
    for (uint32_t i = 0; i < 6; i++) {
        store(tx, TX_SLOT, 0x100 * i, i, 8);
    }
    store_bytes(tx, TX_SLOT, 0x800, pattern(), 40);     /* closes the 6th */
    ck_assert_uint_eq(tx->fake.nframes, 0);
    store(tx, TX_SLOT, 0xc00, 0, 8);                    /* closes the 40 */
    ck_assert_uint_eq(tx->fake.nframes, 1);
    ck_assert_uint_eq(parse_frame(&tx->fake.frames[0], s, 8), 6);
    ck_assert_uint_eq(tx->fake.frames[0].len,
                      APN_ETH_HLEN + APN_FRAME_HDR_LEN + 6 * 32 + APN_CRC_LEN);
    fence(tx);
    ck_assert_uint_eq(tx->fake.nframes, 2);
    ck_assert_uint_eq(parse_frame(&tx->fake.frames[1], s, 8), 2);
    ck_assert_uint_eq(s[0].offset, 0x800);
    ck_assert_uint_eq(s[0].len, 40);
    ck_assert_mem_eq(s[0].payload, pattern(), 40);
    ck_assert_uint_eq(s[1].offset, 0xc00);
    nic_free(tx);
}
END_TEST

/* 256 one-byte event stores with MTU 9000: 255 segments to a frame. */
static Nic *pack_255_nic(void)
{
    ApnCoreConfig cfg = default_cfg(tx_mac);
    struct apn_out_entry oe = out_entry(RX_HOST, EV_INDEX, 4096);
    Nic *tx;

    cfg.mtu = 9000;
    tx = nic_new_cfg(&cfg, MEM_SIZE);
    nic_program(tx, TX_HOST, TABLE_COUNT, TABLE_COUNT);
    set_route(tx, RX_HOST, rx_mac);
    oe.flags |= APN_ENTRY_TYPE_EVENT << APN_ENTRY_TYPE_SHIFT;
    put_out(tx, EV_SLOT, &oe);
    return tx;
}

START_TEST(test_pack_255)
{
    Nic *tx = pack_255_nic();
    SentSeg *s = calloc(255, sizeof(*s));

    for (uint32_t i = 0; i < 256; i++) {
        store(tx, EV_SLOT, i, i, 1);
    }
    ck_assert_uint_eq(tx->fake.nframes, 1);
    ck_assert_uint_eq(parse_frame(&tx->fake.frames[0], s, 255), 255);
    for (uint32_t j = 0; j < 255; j++) {
        ck_assert_uint_eq(s[j].type, APN_SEG_EVENT);
        ck_assert_uint_eq(s[j].offset, j);
        ck_assert_uint_eq(s[j].payload[0], j);
    }
    fence(tx);
    ck_assert_uint_eq(tx->fake.nframes, 2);
    ck_assert_uint_eq(parse_sent(&tx->fake.frames[1]).offset, 255);
    free(s);
    nic_free(tx);
}
END_TEST

START_TEST(test_pack_255_sent_when_full)
{
    /*
     * Spec (store gathering): the pending frame is sent "when it is full
     * (no room for one more 8-byte segment within the MTU, or 255
     * segments)". A frame full by the MTU leaves with the segment that
     * fills it; one full by count waits for the next segment or a timer.
     */
    Nic *tx = pack_255_nic();

    for (uint32_t i = 0; i < 255; i++) {
        store(tx, EV_SLOT, i, i, 1);
    }
    ck_assert_msg(tx->fake.nframes == 1,
                  "a frame with 255 segments is still pending");
    nic_free(tx);
}
END_TEST

/* ============================================================================ */
/* The idle flush timer on the fake clock                                        */
/* ============================================================================ */

START_TEST(test_timer_idle)
{
    Nic *tx = tx_nic();
    struct apn_out_entry oe = out_entry(RX_HOST, 11, 4096);
    SentSeg s[64];

    put_out(tx, 6, &oe);
    put_event_out(tx, EV_SLOT, 0, 0);
    /* One gather, stores of every kind (40 segments, one frame's worth):
     * the timer is armed exactly once. */
    for (uint32_t i = 0; i < 40; i++) {
        tx->fake.now_ns = 40 * i;
        switch (i % 4) {
        case 0: store(tx, TX_SLOT, 8 * i, i, 8); break;
        case 1: store(tx, 6, 0x10 * i, i, 4); break;        /* closes */
        case 2: store(tx, EV_SLOT, i, i, 1); break;         /* event */
        case 3: store(tx, TX_SLOT, 0x800 + i, i, 1); break; /* closes */
        }
    }
    ck_assert_uint_eq(tx->fake.timer_arms, 1);
    ck_assert_uint_eq(tx->fake.timer_cancels, 0);
    ck_assert_uint_eq(tx->fake.timer_delay_ns, 5000);
    ck_assert_uint_eq(tx->fake.nframes, 0);
    ck_assert_uint_eq(cnt(tx, APN_CNT_TX_SEGMENTS), 39);
    /* Last store at 1560. Expiry at 5000: 3440 idle, 1560 to go. */
    tx->fake.now_ns = 5000;
    tx->fake.timer_armed = false;
    apn_core_flush_timer(&tx->core);
    ck_assert_uint_eq(tx->fake.nframes, 0);
    ck_assert(tx->fake.timer_armed);
    ck_assert_uint_eq(tx->fake.timer_arms, 2);
    ck_assert_uint_eq(tx->fake.timer_delay_ns, 1560);
    /* A store meanwhile is only noted; the next expiry waits again. */
    tx->fake.now_ns = 6000;
    store(tx, TX_SLOT, 0xf00, 1, 8);
    ck_assert_uint_eq(tx->fake.timer_arms, 2);
    tx->fake.now_ns = 6560;
    tx->fake.timer_armed = false;
    apn_core_flush_timer(&tx->core);
    ck_assert_uint_eq(tx->fake.nframes, 0);
    ck_assert_uint_eq(tx->fake.timer_arms, 3);
    ck_assert_uint_eq(tx->fake.timer_delay_ns, 4440);
    /* One nanosecond short, then a whole delay idle: everything goes. */
    tx->fake.now_ns = 10999;
    tx->fake.timer_armed = false;
    apn_core_flush_timer(&tx->core);
    ck_assert_uint_eq(tx->fake.nframes, 0);
    ck_assert_uint_eq(tx->fake.timer_arms, 4);
    ck_assert_uint_eq(tx->fake.timer_delay_ns, 1);
    tx->fake.now_ns = 11000;
    tx->fake.timer_armed = false;
    apn_core_flush_timer(&tx->core);
    ck_assert_uint_eq(tx->fake.nframes, 1);
    ck_assert_uint_eq(parse_frame(&tx->fake.frames[0], s, 64), 41);
    ck_assert_uint_eq(s[0].offset, 0);
    ck_assert_uint_eq(s[2].type, APN_SEG_EVENT);
    ck_assert_uint_eq(s[40].offset, 0xf00);
    ck_assert(!tx->core.burst.active);
    ck_assert(!tx->core.pend.active);
    /* Sent; the timer keeps running while stores came within 20 delays. */
    ck_assert(tx->fake.timer_armed);
    ck_assert_uint_eq(tx->fake.timer_arms, 5);
    ck_assert_uint_eq(tx->fake.timer_delay_ns, 5000);

    /* Nothing gathered: an expiry sends nothing; 20 delays idle stop it. */
    tx->fake.now_ns = 20000;
    tx->fake.timer_armed = false;
    apn_core_flush_timer(&tx->core);
    ck_assert_uint_eq(tx->fake.nframes, 1);
    ck_assert_uint_eq(tx->fake.timer_arms, 6);
    tx->fake.now_ns = 6000 + 20 * 5000;
    tx->fake.timer_armed = false;
    apn_core_flush_timer(&tx->core);
    ck_assert_uint_eq(tx->fake.nframes, 1);
    ck_assert_uint_eq(tx->fake.timer_arms, 6);
    ck_assert(!tx->fake.timer_armed);
    /* A dropped store gathers nothing and arms nothing. */
    store(tx, TX_SLOT, 4096, 1, 8);
    ck_assert_uint_eq(tx->fake.timer_arms, 6);
    ck_assert(!tx->fake.timer_armed);
    /* The next gather arms it again, for the full delay. */
    store(tx, TX_SLOT, 0, 1, 8);
    ck_assert_uint_eq(tx->fake.timer_arms, 7);
    ck_assert_uint_eq(tx->fake.timer_delay_ns, 5000);
    nic_free(tx);
}
END_TEST

/* ============================================================================ */
/* CRC32C slicing and the cache hash                                             */
/* ============================================================================ */

static uint32_t crc32c_bitwise(uint32_t crc, const uint8_t *p, size_t len)
{
    crc = ~crc;
    while (len--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) {
            crc = (crc & 1) ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
        }
    }
    return ~crc;
}

static uint64_t test_rng = 0x243f6a8885a308d3ull;

static uint32_t rnd(void)
{
    test_rng ^= test_rng << 13;
    test_rng ^= test_rng >> 7;
    test_rng ^= test_rng << 17;
    return (uint32_t)(test_rng >> 16);
}

START_TEST(test_crc32c_slicing)
{
    uint8_t data[2048];

    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = rnd();
    }
    for (unsigned it = 0; it < 3000; it++) {
        uint32_t align = rnd() % 16;
        size_t len = it < 64 ? it : rnd() % (it & 1 ? 24 : 1100);
        uint32_t init = it & 2 ? rnd() : 0;
        /* An exact-size buffer at `align`: ASan sees any over-read. */
        uint8_t *buf = malloc(align + len + !(align + len));
        uint32_t split, c;

        ck_assert_ptr_nonnull(buf);
        memcpy(buf + align, data + rnd() % 512, len);
        ck_assert_msg(apn_crc32c(init, buf + align, len) ==
                      crc32c_bitwise(init, buf + align, len),
                      "len %zu align %u init 0x%08x", len, align, init);
        split = len ? rnd() % (len + 1) : 0;
        c = apn_crc32c(init, buf + align, split);
        ck_assert_uint_eq(apn_crc32c(c, buf + align + split, len - split),
                          crc32c_bitwise(init, buf + align, len));
        free(buf);
    }
}
END_TEST

/*
 * 32 incoming entries `stride` apart in a 32-entry cache (64 buckets): all
 * cached, all hit, and the longest hash chain at most `max_ok`.
 */
static void check_hash_stride(const uint32_t *strides, size_t n_strides,
                              unsigned max_ok)
{
    for (size_t k = 0; k < n_strides; k++) {
        ApnCoreConfig cfg = default_cfg(rx_mac);
        const uint32_t nkeys = 32;
        unsigned max_chain = 0, used = 0;
        Nic *n;

        cfg.cache_entries = nkeys;
        n = nic_new_cfg(&cfg, 8u << 20);
        wr(n, APN_REG_IN_TABLE_LO, 4u << 20);
        wr(n, APN_REG_IN_TABLE_COUNT, 65536);
        wr(n, APN_REG_HOST_ID, RX_HOST);
        wr(n, APN_REG_CTRL, APN_CTRL_ENABLE);
        for (uint32_t i = 0; i < nkeys; i++) {
            struct apn_in_entry e = contig_in(RX_BUF, 4096);
            uint32_t idx = (i * strides[k]) & 0xffff;

            put_in(n, idx, &e);
            ck_assert(!touch(n, idx, NONCE));
        }
        for (uint32_t i = 0; i < nkeys; i++) {
            ck_assert(touch(n, (i * strides[k]) & 0xffff, NONCE));
        }
        ck_assert_uint_eq(cnt(n, APN_CNT_CACHE_EVICTIONS), 0);
        for (uint32_t b = 0; b <= n->core.cache.bucket_mask; b++) {
            unsigned len = 0;

            for (int32_t i = n->core.cache.buckets[b]; i >= 0;
                 i = n->core.cache.slots[i].hash_next) {
                len++;
            }
            used += len;
            max_chain = len > max_chain ? len : max_chain;
        }
        ck_assert_uint_eq(used, nkeys);
        ck_assert_msg(max_chain <= max_ok, "stride %u: a hash chain of %u",
                      strides[k], max_chain);
        nic_free(n);
    }
}

START_TEST(test_cache_hash_stride)
{
    /*
     * Power-of-two strides, as tables are laid out: a hash of the low bits
     * would put all 32 in one bucket. Three in a chain is what a random
     * hash gives 32 keys in 64 buckets about as often as not.
     */
    static const uint32_t strides[] = { 1, 2048, 1024, 512, 64 };

    check_hash_stride(strides, ARRAY_SIZE(strides), 3);
}
END_TEST

/* ============================================================================ */
/* Migration of a pending frame and of endpoints                                 */
/* ============================================================================ */

/* Stores on `n` that leave a pending frame of three segments, no burst. */
static void make_pending(Nic *n)
{
    struct apn_out_entry oe = out_entry(RX_HOST, 11, 4096);

    put_out(n, 6, &oe);
    put_event_out(n, EV_SLOT, 0, 0);
    store_bytes(n, TX_SLOT, 0x10, pattern(), 13);
    store(n, 6, 0x20, 0x1122334455667788ull, 8);
    store(n, EV_SLOT, 4, 0xbeef, 2);             /* closes the burst too */
    ck_assert(n->core.pend.active);
    ck_assert(!n->core.burst.active);
    ck_assert_uint_eq(n->core.pend.nseg, 3);
}

START_TEST(test_post_load_pend)
{
    Nic *src = tx_nic(), *dst;

    /* A pending frame is sent from the destination after the idle delay,
     * exactly as the source would have sent it. */
    make_pending(src);
    dst = migrate(src);
    ck_assert(dst->fake.timer_armed);
    ck_assert_uint_eq(dst->fake.timer_arms, 1);
    ck_assert_uint_eq(dst->fake.timer_delay_ns, 5000);
    fence(src);
    ck_assert_uint_eq(src->fake.nframes, 1);
    dst->fake.now_ns += 4999;
    dst->fake.timer_armed = false;
    apn_core_flush_timer(&dst->core);
    ck_assert_uint_eq(dst->fake.nframes, 0);
    ck_assert_uint_eq(dst->fake.timer_delay_ns, 1);
    dst->fake.now_ns += 1;
    dst->fake.timer_armed = false;
    apn_core_flush_timer(&dst->core);
    ck_assert_uint_eq(dst->fake.nframes, 1);
    ck_assert_uint_eq(dst->fake.frames[0].len, src->fake.frames[0].len);
    ck_assert_mem_eq(dst->fake.frames[0].data, src->fake.frames[0].data,
                     src->fake.frames[0].len);
    ck_assert_uint_eq(cnt(dst, APN_CNT_TX_FRAMES), 1);
    nic_free(dst);

    /* With a burst behind it: one frame, in store order. */
    store(src, TX_SLOT, 0x100, 1, 8);
    store(src, 6, 0x100, 2, 8);
    store(src, TX_SLOT, 0x200, 3, 8);
    ck_assert(src->core.pend.active && src->core.burst.active);
    dst = migrate(src);
    fence(dst);
    fence(src);
    ck_assert_uint_eq(dst->fake.nframes, 1);
    ck_assert_uint_eq(src->fake.nframes, 2);
    ck_assert_uint_eq(dst->fake.frames[0].len, src->fake.frames[1].len);
    ck_assert_mem_eq(dst->fake.frames[0].data, src->fake.frames[1].data,
                     src->fake.frames[1].len);
    nic_free(dst);

    /* The stream is untrusted: a frame that could not have been built is
     * dropped, not sent. */
    for (int bad = 0; bad < 5; bad++) {
        ApnTxFrame *p = &src->core.pend;

        fence(src);
        make_pending(src);
        switch (bad) {
        case 0: p->nseg = 0; break;
        case 1: p->nseg = 4; break;
        case 2: p->len = APN_MAX_MTU; break;            /* > the room */
        case 3: p->len -= 4; break;                     /* mid-segment */
        case 4: p->data[2] = 0xff; break;               /* first len */
        }
        dst = migrate(src);
        ck_assert_msg(!dst->fake.timer_armed, "bad frame %d resumed", bad);
        fence(dst);
        apn_core_flush_timer(&dst->core);
        ck_assert_msg(dst->fake.nframes == 0, "bad frame %d sent", bad);
        nic_free(dst);
        p->active = false;                  /* never send the forgery */
    }
    nic_free(src);
}
END_TEST

START_TEST(test_post_load_endpoints)
{
    Nic *src = ip_nic(), *dst;
    ApnEndpoint *p;

    ep_setup(src, 1, APN_EP_VALID | APN_EP_TRUSTED, 5000, 8, 256);
    ep_setup(src, 2, APN_EP_VALID, 5001, 8, 256);
    rx_datagram(src, 1, 5000, pattern(), 4);
    uw(src, 1, APN_UREG_ARM, 1);                    /* pending: fires */

    /* Forgeries in the stream. */
    p = &src->core.regs.ep[3];
    p->ctrl = 0xf0 | APN_EP_VALID;
    p->port = 0x12345;
    p->evq_lo = EVQ_ADDR(3) | 0x21;
    p->evq_size = 3;
    p->varq_lo = VARQ_ADDR(3) | 1;
    p->varq_size = 32;
    p->varq_wrptr = 0x13;
    p->varq_rdptr = 0x11;
    src->core.regs.ep[4].ctrl = APN_EP_VALID;       /* 5000 is endpoint 1's */
    src->core.regs.ep[4].port = 5000;
    src->core.regs.ep[100].ctrl = APN_EP_VALID;     /* past NUM_ENDPOINTS */
    src->core.regs.ep[100].port = 6000;
    src->core.regs.cmd_ep = 64;

    dst = migrate(src);
    /* The port map is rebuilt; queue pointers carry over. */
    ck_assert_int_eq(port_target(dst, 5000), 1);
    ck_assert_uint_eq(ur(dst, 1, APN_UREG_EVQ_WRPTR), 2);
    ck_assert_uint_eq(ur(dst, 1, APN_UREG_VARQ_WRPTR), 32);
    assert_ev(evq_ev(dst, 1, 1), APN_EV_VAR, 1, 4, 16 | 7777ull << 32);
    ck_assert_int_eq(port_target(dst, 5001), 2);
    ck_assert_int_eq(port_target(dst, 6000), -1);
    /* Clamped. */
    ck_assert_uint_eq(epr(dst, 3, APN_EPR_CTRL), APN_EP_VALID);
    ck_assert_uint_eq(epr(dst, 3, APN_EPR_PORT), 0);
    ck_assert_uint_eq(epr(dst, 3, APN_EPR_EVQ_LO), EVQ_ADDR(3));
    ck_assert_uint_eq(epr(dst, 3, APN_EPR_EVQ_SIZE), 0);
    ck_assert_uint_eq(epr(dst, 3, APN_EPR_VARQ_LO), VARQ_ADDR(3));
    ck_assert_uint_eq(epr(dst, 3, APN_EPR_VARQ_SIZE), 0);
    ck_assert_uint_eq(ur(dst, 3, APN_UREG_VARQ_WRPTR), 0x10);
    ck_assert_uint_eq(ur(dst, 3, APN_UREG_VARQ_RDPTR), 0x10);
    ck_assert_uint_eq(epr(dst, 4, APN_EPR_PORT), 0);
    ck_assert_uint_eq(dst->core.regs.ep[100].ctrl, 0);
    ck_assert_uint_eq(dst->core.regs.ep[100].port, 0);
    ck_assert_uint_eq(rd(dst, APN_REG_CMD_EP), 0);
    nic_free(dst);
    nic_free(src);
}
END_TEST

/* ============================================================================ */
/* Regressions for core bugs found earlier (fixed; run by default)              */
/* ============================================================================ */

START_TEST(test_post_load_osq_size_1)
{
    /* OSQ_SIZE rejects 1 ("power of two >= 2"); so should post_load. */
    Nic *tx = tx_nic();

    tx->core.regs.osq_size = 1;
    apn_core_post_load(&tx->core);
    ck_assert_uint_eq(rd(tx, APN_REG_OSQ_SIZE), 0);
    nic_free(tx);
}
END_TEST

START_TEST(test_init_endpoints_max)
{
    /*
     * apertnic_hw.h: per-endpoint registers (APN_EP_REG) must end below the
     * user pages, so at most APN_MAX_ENDPOINTS; init still accepts 1024.
     */
    ApnCoreConfig cfg = default_cfg(rx_mac);
    ApnCore *core = calloc(1, sizeof(*core));
    const char *why = NULL;
    Fake fake;

    ck_assert_uint_le(APN_EP_REG(APN_MAX_ENDPOINTS, 0), APN_USER_PAGES_BASE);
    fake_init(&fake, 4096);
    cfg.num_endpoints = APN_MAX_ENDPOINTS + 1;
    ck_assert_msg(apn_core_init(core, &cfg, &fake_ops, &fake, &why) == -1,
                  "%u endpoints accepted: APN_EP_REG(%u) overlaps user page 0",
                  cfg.num_endpoints, APN_MAX_ENDPOINTS);
    apn_core_cleanup(core);
    free(core);
    fake_destroy(&fake);
}
END_TEST

/* ============================================================================ */

/* ============================================================================ */
/* CLOSE segments, event post, kernel connection management                      */
/* ============================================================================ */

#define assert_evf(ev, t, f, ep, i, d) do {                                   \
        Ev e_ = (ev);                                                         \
        ck_assert_uint_eq(e_.type, (t));                                      \
        ck_assert_uint_eq(e_.flags, (f));                                     \
        ck_assert_uint_eq(e_.endpoint, (ep));                                 \
        ck_assert_uint_eq(e_.info, (i));                                      \
        ck_assert_uint_eq(e_.data, (d));                                      \
    } while (0)

START_TEST(test_close_roundtrip)
{
    /*
     * The stores gathered through the aperture, then one CLOSE (len 0,
     * offset 0, no sequence number) in the same frame; the receiver writes
     * the data and posts APN_EV_CLOSE with APN_EV_F_APERTURE.
     */
    Nic *tx = tx_nic(), *rx = rx_nic();
    struct apn_out_entry o = out_entry(RX_HOST, RX_INDEX, 4096);
    struct apn_in_entry e = contig_in(RX_BUF, 4096);
    SentSeg s[2];

    o.flags |= APN_ENTRY_SEQ;
    o.seq = 41;
    o.endpoint = 4;
    put_out(tx, TX_SLOT, &o);
    ep_setup(tx, 4, APN_EP_VALID, 0, 0, 0);
    e.endpoint = 2;
    e.flags |= APN_ENTRY_SEQ;
    e.seq = 41;
    put_in(rx, RX_INDEX, &e);
    ep_setup(rx, 2, APN_EP_VALID, 0, 4, 0);

    store_bytes(tx, TX_SLOT, 0x20, pattern(), 16);
    uw(tx, 4, APN_UREG_OUT_CLOSE, TX_SLOT);
    ck_assert_uint_eq(ur(tx, 4, APN_UREG_CMD_STATUS), APN_CMD_OK);
    ck_assert_uint_eq(tx->fake.nframes, 1);
    ck_assert_uint_eq(parse_frame(&tx->fake.frames[0], s, 2), 2);
    ck_assert_uint_eq(s[0].type, APN_SEG_WRITE);
    ck_assert_uint_eq(s[0].seq, 41);
    ck_assert_uint_eq(s[1].type, APN_SEG_CLOSE);
    ck_assert_uint_eq(s[1].flags, 0);
    ck_assert_uint_eq(s[1].len, 0);
    ck_assert_uint_eq(s[1].in_index, RX_INDEX);
    ck_assert_uint_eq(s[1].nonce, NONCE);
    ck_assert_uint_eq(s[1].seq, 0);
    ck_assert_uint_eq(s[1].offset, 0);
    ck_assert_uint_eq(s[1].out_index, TX_SLOT);
    ck_assert_uint_eq(out_seq_in_mem(tx, TX_SLOT), 42);
    ck_assert_uint_eq(cnt(tx, APN_CNT_TX_CLOSES), 1);
    ck_assert_uint_eq(cnt(tx, APN_CNT_TX_SEGMENTS), 2);
    assert_only_tx_drop(tx, APN_CNT__COUNT, 0);

    receive(rx, tx->fake.frames[0].data, tx->fake.frames[0].len);
    ck_assert_mem_eq(rx->fake.mem + RX_BUF + 0x20, pattern(), 16);
    ck_assert_uint_eq(in_seq_in_mem(rx, RX_INDEX), 42);
    assert_evf(evq_ev(rx, 2, 0), APN_EV_CLOSE, APN_EV_F_APERTURE, 2,
               RX_INDEX, NONCE | (uint64_t)TX_HOST << 32);
    ck_assert_uint_eq(ur(rx, 2, APN_UREG_EVQ_WRPTR), 1);
    ck_assert_uint_eq(cnt(rx, APN_CNT_RX_CLOSES), 1);
    assert_only_rx_drop(rx, APN_CNT__COUNT, 0);
    ck_assert_uint_eq(rx->fake.nframes, 0);
    nic_free(tx);
    nic_free(rx);
}
END_TEST

START_TEST(test_close_status)
{
    /* APN_UREG_OUT_CLOSE's statuses; APN_REG_OUT_CLOSE's refusals. */
    Nic *tx = tx_nic();
    struct apn_out_entry o = out_entry(RX_HOST, RX_INDEX, 4096);

    o.endpoint = 1;
    put_out(tx, 1, &o);
    o.endpoint = 2;
    put_out(tx, 2, &o);
    o.endpoint = 1;
    o.dest_host = RX_HOST + 1;                  /* no route */
    put_out(tx, 3, &o);
    ep_setup(tx, 1, APN_EP_VALID, 0, 0, 0);
    qemu_log_counts_reset();

    uw(tx, 1, APN_UREG_OUT_CLOSE, 2);           /* endpoint 2's */
    ck_assert_uint_eq(ur(tx, 1, APN_UREG_CMD_STATUS), APN_CMD_ENOENT);
    uw(tx, 1, APN_UREG_OUT_CLOSE, 4);           /* zeroed: not valid */
    ck_assert_uint_eq(ur(tx, 1, APN_UREG_CMD_STATUS), APN_CMD_ENOENT);
    uw(tx, 1, APN_UREG_OUT_CLOSE, TABLE_COUNT);
    ck_assert_uint_eq(ur(tx, 1, APN_UREG_CMD_STATUS), APN_CMD_ENOENT);
    uw(tx, 1, APN_UREG_OUT_CLOSE, 3);
    ck_assert_uint_eq(ur(tx, 1, APN_UREG_CMD_STATUS), APN_CMD_ENOROUTE);
    uw(tx, 2, APN_UREG_OUT_CLOSE, 2);           /* endpoint 2 not valid */
    ck_assert_uint_eq(ur(tx, 2, APN_UREG_CMD_STATUS), APN_CMD_EPERM);
    wr(tx, APN_REG_CTRL, 0);
    uw(tx, 1, APN_UREG_OUT_CLOSE, 1);
    ck_assert_uint_eq(ur(tx, 1, APN_UREG_CMD_STATUS), APN_CMD_EDISABLED);
    wr(tx, APN_REG_CTRL, APN_CTRL_ENABLE);
    ck_assert_uint_eq(qemu_log_guest_errors, 6);
    ck_assert_uint_eq(tx->fake.nframes, 0);
    ck_assert_uint_eq(cnt(tx, APN_CNT_TX_CLOSES), 0);
    ck_assert_uint_eq(cnt(tx, APN_CNT_CMD_REFUSED), 0);
    ck_assert_uint_eq(cnt(tx, APN_CNT_TX_DROP_NO_ROUTE), 1);
    ck_assert_uint_eq(cnt(tx, APN_CNT_TX_DROP_DISABLED), 1);

    /* The privileged register: any owner; a bad index is refused. */
    wr(tx, APN_REG_OUT_CLOSE, 2);
    ck_assert_uint_eq(tx->fake.nframes, 1);
    ck_assert_uint_eq(parse_sent(&tx->fake.frames[0]).type, APN_SEG_CLOSE);
    wr(tx, APN_REG_OUT_CLOSE, 4);
    wr(tx, APN_REG_OUT_CLOSE, TABLE_COUNT);
    ck_assert_uint_eq(cnt(tx, APN_CNT_CMD_REFUSED), 2);
    ck_assert_uint_eq(cnt(tx, APN_CNT_TX_CLOSES), 1);
    ck_assert_uint_eq(tx->fake.nframes, 1);
    ck_assert_uint_eq(rd(tx, APN_REG_OUT_CLOSE), 0);
    nic_free(tx);
}
END_TEST

START_TEST(test_close_rx_checks)
{
    /*
     * Checked like a write of 0 bytes at offset 0, except for sequence and
     * bounds: a narrowed, sequenced aperture takes it and its seq stays;
     * a refused one gets an ERROR like a write; a payload is malformed.
     */
    Nic *rx = rx_nic();
    struct apn_in_entry e = contig_in(RX_BUF, 4096);
    uint8_t buf[128];
    FrameSpec fs;
    uint8_t *snap;

    e.endpoint = 3;
    e.flags |= APN_ENTRY_SEQ;
    e.seq = 9;
    e.narrow_start = 0x100;
    e.narrow_len = 0x100;
    put_in(rx, RX_INDEX, &e);
    ep_setup(rx, 3, APN_EP_VALID, 0, 8, 0);
    spec_default(&fs, 0, 0);
    fs.seg[0].type = APN_SEG_CLOSE;
    snap = snapshot(rx);

    receive(rx, buf, build_frame(buf, sizeof(buf), &fs));
    assert_only_rx_drop(rx, APN_CNT__COUNT, 0);
    assert_evf(evq_ev(rx, 3, 0), APN_EV_CLOSE, APN_EV_F_APERTURE, 3,
               RX_INDEX, NONCE | (uint64_t)TX_HOST << 32);
    assert_mem_unchanged(rx, snap, EVQ_ADDR(3), 64 + 16);
    ck_assert_uint_eq(in_seq_in_mem(rx, RX_INDEX), 9);

    fs.seg[0].nonce = NONCE2;
    receive(rx, buf, build_frame(buf, sizeof(buf), &fs));
    assert_only_rx_drop(rx, APN_CNT_RX_DROP_NONCE, 1);
    ck_assert_uint_eq(rx->fake.nframes, 1);
    assert_error_frame(&rx->fake.frames[0], rx_mac, RX_HOST, tx_mac, TX_HOST,
                       RX_INDEX, TX_SLOT, APN_CNT_RX_DROP_NONCE);
    assert_ev(evq_ev(rx, 3, 1), APN_EV_RX_DROP, 3, APN_CNT_RX_DROP_NONCE,
              RX_INDEX | (uint64_t)TX_HOST << 32);

    fs.seg[0].nonce = NONCE;
    fs.seg[0].len = 4;
    receive(rx, buf, build_frame(buf, sizeof(buf), &fs));
    ck_assert_uint_eq(cnt(rx, APN_CNT_RX_DROP_MALFORMED), 1);
    ck_assert_uint_eq(rx->fake.nframes, 1);
    ck_assert_uint_eq(cnt(rx, APN_CNT_RX_CLOSES), 1);
    ck_assert_uint_eq(ur(rx, 3, APN_UREG_EVQ_WRPTR), 2);
    free(snap);
    nic_free(rx);
}
END_TEST

START_TEST(test_ev_post)
{
    /* Staging registers, the POSTED flag, refusals, overflow, reset. */
    Nic *n = ev_nic(2, 2);

    qemu_log_counts_reset();
    wr(n, APN_REG_EV_POST_EP, 2);
    wr(n, APN_REG_EV_POST_INFO, 0xa1);
    wr(n, APN_REG_EV_POST_DATA_LO, 0xb2);
    wr(n, APN_REG_EV_POST_DATA_HI, 0xc3);
    ck_assert_uint_eq(rd(n, APN_REG_EV_POST_EP), 2);
    ck_assert_uint_eq(rd(n, APN_REG_EV_POST_INFO), 0xa1);
    ck_assert_uint_eq(rd(n, APN_REG_EV_POST_DATA_LO), 0xb2);
    ck_assert_uint_eq(rd(n, APN_REG_EV_POST_DATA_HI), 0xc3);
    wr(n, APN_REG_EV_POST_TYPE, APN_EV_ACCEPT | 0x42 << 8);
    assert_evf(evq_ev(n, 2, 0), APN_EV_ACCEPT, 0x42 | APN_EV_F_POSTED, 2,
               0xa1, 0xc3000000b2ull);
    ck_assert_uint_eq(rd(n, APN_REG_EV_POST_TYPE), 0);
    ck_assert_uint_eq(cnt(n, APN_CNT_EV_POSTS), 1);
    ck_assert_uint_eq(qemu_log_guest_errors, 0);

    /* A full queue loses it like any event. */
    wr(n, APN_REG_EV_POST_TYPE, APN_EV_ALIVE);
    wr(n, APN_REG_EV_POST_TYPE, APN_EV_ALIVE);
    ck_assert_uint_eq(ur(n, 2, APN_UREG_EVQ_WRPTR), 2);
    ck_assert_uint_eq(cnt(n, APN_CNT_EVQ_OVERFLOWS), 1);
    ck_assert_uint_eq(cnt(n, APN_CNT_EV_POSTS), 3);

    /* Refused: out of range, not valid, no queue. */
    wr(n, APN_REG_EV_POST_EP, 64);
    wr(n, APN_REG_EV_POST_TYPE, APN_EV_ALIVE);
    wr(n, APN_REG_EV_POST_EP, 5);
    wr(n, APN_REG_EV_POST_TYPE, APN_EV_ALIVE);
    ep_setup(n, 6, APN_EP_VALID, 0, 0, 0);
    wr(n, APN_REG_EV_POST_EP, 6);
    wr(n, APN_REG_EV_POST_TYPE, APN_EV_ALIVE);
    ck_assert_uint_eq(cnt(n, APN_CNT_CMD_REFUSED), 3);
    ck_assert_uint_eq(cnt(n, APN_CNT_EV_POSTS), 3);
    ck_assert_uint_eq(qemu_log_guest_errors, 3);

    wr(n, APN_REG_CTRL, APN_CTRL_RESET);
    ck_assert_uint_eq(rd(n, APN_REG_EV_POST_EP), 0);
    ck_assert_uint_eq(rd(n, APN_REG_EV_POST_INFO), 0);
    ck_assert_uint_eq(rd(n, APN_REG_EV_POST_DATA_LO), 0);
    ck_assert_uint_eq(rd(n, APN_REG_EV_POST_DATA_HI), 0);
    nic_free(n);
}
END_TEST

START_TEST(test_kernel_cm)
{
    /*
     * KERNEL_CM: messages go to the OS queue with the endpoint's number;
     * other datagrams to the endpoint's queues. The bit survives a load.
     */
    Nic *n = ip_nic(), *dst;
    uint8_t m[APN_MSG_LEN];

    ep_setup(n, 6, APN_EP_VALID | APN_EP_KERNEL_CM, RX_PORT, 8, 1024);
    build_msg(m, APN_MSG_CONNECT, 4001, 0x33, 12, 0xfeed, 0);
    rx_datagram(n, 1234, RX_PORT, m, APN_MSG_LEN);
    assert_ev(osq_ev(n, 0), APN_EV_CONNECT, 6, 12,
              0xfeed | 0x33ull << 32 | 4001ull << 48);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 1);
    ck_assert_uint_eq(n->fake.nnotify, 1);
    ck_assert_uint_eq(n->fake.notify_vec[0], APN_VEC_OSQ);
    ck_assert_uint_eq(ur(n, 6, APN_UREG_EVQ_WRPTR), 0);
    ck_assert_uint_eq(cnt(n, APN_CNT_OSQ_MSGS), 1);
    ck_assert_uint_eq(cnt(n, APN_CNT_RX_MSGS), 1);

    m[0] ^= 1;                                  /* not a message */
    rx_datagram(n, 1234, RX_PORT, m, APN_MSG_LEN);
    ck_assert_uint_eq(evq_ev(n, 6, 0).type, APN_EV_VAR);
    ck_assert_uint_eq(rd(n, APN_REG_OSQ_WRPTR), 1);

    dst = migrate(n);
    ck_assert_uint_eq(epr(dst, 6, APN_EPR_CTRL),
                      APN_EP_VALID | APN_EP_KERNEL_CM);
    build_msg(m, APN_MSG_ERROR, 4001, 0x33, 12, 0xfeed, 77);
    rx_datagram(dst, 1234, RX_PORT, m, APN_MSG_LEN);
    assert_ev(osq_ev(dst, 1), APN_EV_ERROR_MSG, 6, 77,
              0xfeed | 0x33ull << 32 | 4001ull << 48);
    ck_assert_uint_eq(cnt(dst, APN_CNT_OSQ_MSGS), 2);
    nic_free(dst);
    nic_free(n);
}
END_TEST

static Suite *core_suite(void)
{
    Suite *s = suite_create("apertnic_core");
    TCase *tc;

    tc = tcase_create("crc");
    tcase_add_test(tc, test_crc32c_check_value);
    tcase_add_test(tc, test_crc32c_incremental);
    tcase_add_test(tc, test_crc32c_slicing);
    tcase_add_test(tc, test_counter_names);
    suite_add_tcase(s, tc);

    tc = tcase_create("init");
    tcase_add_test(tc, test_init_defaults);
    tcase_add_loop_test(tc, test_init_rejects, 0, ARRAY_SIZE(bad_cfgs));
    tcase_add_test(tc, test_init_limits_accepted);
    tcase_add_test(tc, test_init_endpoints_max);
    tcase_add_test(tc, test_bar_sizes);
    suite_add_tcase(s, tc);

    tc = tcase_create("regs");
    tcase_add_test(tc, test_regs_identity);
    tcase_add_test(tc, test_regs_ro_ignore_writes);
    tcase_add_test(tc, test_regs_tables_locked);
    tcase_add_test(tc, test_regs_osq);
    tcase_add_test(tc, test_regs_host_id);
    tcase_add_test(tc, test_regs_host_table);
    tcase_add_test(tc, test_regs_counters);
    tcase_add_test(tc, test_regs_ctrl_reset);
    tcase_add_test(tc, test_regs_ctrl_reserved);
    tcase_add_test(tc, test_regs_user_pages);
    suite_add_tcase(s, tc);

    tc = tcase_create("wire");
    tcase_add_test(tc, test_tx_frame_format);
    tcase_add_test(tc, test_tx_frame_padding);
    tcase_add_test(tc, test_roundtrip_contig);
    tcase_add_test(tc, test_roundtrip_pagelist);
    tcase_add_test(tc, test_rx_pagelist_dma_error);
    tcase_add_test(tc, test_roundtrip_seq);
    tcase_add_test(tc, test_tx_loopback);
    tcase_add_test(tc, test_rx_multi_segment);
    tcase_add_test(tc, test_rx_broadcast_and_padding);
    suite_add_tcase(s, tc);

    tc = tcase_create("rx_drops");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_rx_case, 0, ARRAY_SIZE(rx_cases));
    tcase_add_test(tc, test_rx_check_order);
    tcase_add_test(tc, test_rx_truncated);
    tcase_add_test(tc, test_rx_corrupt_any_byte);
    suite_add_tcase(s, tc);

    tc = tcase_create("gather");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_gather_contiguous);
    tcase_add_test(tc, test_gather_mtu_split);
    tcase_add_test(tc, test_gather_mtu_any);
    tcase_add_test(tc, test_gather_flush_order);
    tcase_add_test(tc, test_gather_timer);
    tcase_add_loop_test(tc, test_tx_drop_case, 0, ARRAY_SIZE(tx_cases));
    tcase_add_test(tc, test_tx_bounds_keeps_burst);
    tcase_add_test(tc, test_gather_flushed_by_control_writes);
    tcase_add_test(tc, test_aperture_read);
    suite_add_tcase(s, tc);

    tc = tcase_create("cache");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_cache_lru);
    tcase_add_test(tc, test_cache_inval_index);
    tcase_add_test(tc, test_cache_inval_all);
    tcase_add_test(tc, test_cache_big_table);
    tcase_add_test(tc, test_cache_tx_hit);
    tcase_add_test(tc, test_cache_hash_stride);
    suite_add_tcase(s, tc);

    tc = tcase_create("osq");
    tcase_add_test(tc, test_osq_event_layout);
    tcase_add_test(tc, test_osq_irq_test_vector);
    tcase_add_test(tc, test_osq_overflow);
    tcase_add_test(tc, test_osq_link_events);
    tcase_add_test(tc, test_osq_dma_error_event);
    suite_add_tcase(s, tc);

    tc = tcase_create("migration");
    tcase_add_test(tc, test_post_load_clamps);
    tcase_add_test(tc, test_post_load_burst);
    tcase_add_test(tc, test_post_load_osq_size_1);
    tcase_add_test(tc, test_post_load_pend);
    tcase_add_test(tc, test_post_load_endpoints);
    suite_add_tcase(s, tc);

    tc = tcase_create("endpoints");
    tcase_add_test(tc, test_ep_regs);
    tcase_add_test(tc, test_ep_port_map);
    tcase_add_test(tc, test_ep_reset);
    tcase_add_test(tc, test_evq_post_layout);
    tcase_add_test(tc, test_evq_no_queue);
    tcase_add_test(tc, test_evq_overflow_episode);
    tcase_add_test(tc, test_evq_arm);
    tcase_add_test(tc, test_varq_records_wrap);
    tcase_add_test(tc, test_varq_lost);
    suite_add_tcase(s, tc);

    tc = tcase_create("commands");
    tcase_add_test(tc, test_cmd_trust);
    tcase_add_test(tc, test_cmd_out_commit);
    tcase_add_test(tc, test_cmd_in_commit);
    tcase_add_test(tc, test_cmd_block);
    suite_add_tcase(s, tc);

    tc = tcase_create("messages");
    tcase_add_test(tc, test_msg_status);
    tcase_add_test(tc, test_msg_encoding);
    tcase_add_test(tc, test_msg_receive);
    tcase_add_test(tc, test_msg_loopback);
    tcase_add_test(tc, test_rx_ip_checks);
    tcase_add_test(tc, test_rx_no_port);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors_events");
    tcase_add_test(tc, test_seg_error_roundtrip);
    tcase_add_test(tc, test_seg_error_rules);
    tcase_add_test(tc, test_seg_error_loopback);
    tcase_add_test(tc, test_event_tx);
    tcase_add_test(tc, test_event_rx);
    suite_add_tcase(s, tc);

    tc = tcase_create("packing_timer");
    tcase_add_test(tc, test_pack_hosts);
    tcase_add_test(tc, test_pack_mtu_full);
    tcase_add_test(tc, test_pack_255);
    tcase_add_test(tc, test_pack_255_sent_when_full);
    tcase_add_test(tc, test_timer_idle);
    suite_add_tcase(s, tc);

    tc = tcase_create("close_post_kcm");
    tcase_add_test(tc, test_close_roundtrip);
    tcase_add_test(tc, test_close_status);
    tcase_add_test(tc, test_close_rx_checks);
    tcase_add_test(tc, test_ev_post);
    tcase_add_test(tc, test_kernel_cm);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(core_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
