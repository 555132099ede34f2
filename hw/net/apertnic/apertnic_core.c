/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * apertnic device core. See apertnic_core.h for the split between this file
 * and the QEMU glue, and docs/specs/apertnic.rst for the behaviour.
 *
 * Every value read from a register write, guest memory or the network is
 * untrusted: it is checked before use, and a bad one is counted (network),
 * logged with LOG_GUEST_ERROR (guest) and ignored. Nothing here aborts.
 */
#include "qemu/osdep.h"
#include "qemu/log.h"
#include "apertnic_core.h"
#include "trace.h"

/* ---- small helpers --------------------------------------------------------- */

static inline uint16_t get_be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | p[3];
}

static inline void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = v >> 8;
    p[1] = v;
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

static inline uint16_t get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 |
           (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = v;
    p[1] = v >> 8;
    p[2] = v >> 16;
    p[3] = v >> 24;
}

static inline void count(ApnCore *core, enum apn_counter_id id)
{
    core->regs.counters[id]++;
}

static inline bool is_pow2(uint64_t v)
{
    return v && !(v & (v - 1));
}

static inline uint64_t pow2_ceil64(uint64_t v)
{
    uint64_t p = 1;

    while (p < v) {
        p <<= 1;
    }
    return p;
}

static const char *const counter_names[APN_CNT__COUNT] = {
#define APN_COUNTER_NAME(id, name) name,
    APN_COUNTER_LIST(APN_COUNTER_NAME)
#undef APN_COUNTER_NAME
};

const char *apn_counter_name(unsigned id)
{
    return id < APN_CNT__COUNT ? counter_names[id] : NULL;
}

/* CRC32C (Castagnoli, reflected polynomial 0x82f63b78), byte-wise table. */
static uint32_t crc32c_table[256];

static void crc32c_init_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        }
        crc32c_table[i] = c;
    }
}

uint32_t apn_crc32c(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    if (!crc32c_table[1]) {
        crc32c_init_table();
    }
    crc = ~crc;
    while (len--) {
        crc = crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    }
    return ~crc;
}

static uint64_t in_table_base(ApnCore *core)
{
    return (uint64_t)core->regs.in_table_hi << 32 | core->regs.in_table_lo;
}

static uint64_t out_table_base(ApnCore *core)
{
    return (uint64_t)core->regs.out_table_hi << 32 | core->regs.out_table_lo;
}

static uint64_t osq_base(ApnCore *core)
{
    return (uint64_t)core->regs.osq_base_hi << 32 | core->regs.osq_base_lo;
}

static inline bool core_enabled(ApnCore *core)
{
    return core->regs.ctrl & APN_CTRL_ENABLE;
}

/* ---- OS event queue ---------------------------------------------------------- */

/*
 * Post one event on the OS queue and signal `vector`. A full queue is never
 * overwritten: the loss is counted on the device and in the control block,
 * and the vector is still raised so the driver notices.
 */
static void osq_post(ApnCore *core, uint8_t type, uint16_t endpoint,
                     uint32_t info, uint64_t data, unsigned vector)
{
    ApnCoreRegs *r = &core->regs;
    uint64_t base = osq_base(core);
    uint8_t ev[16];
    uint8_t word[4];

    if (!r->osq_size) {
        trace_apertnic_osq_disabled(type);
        return;
    }
    if (r->osq_wrptr - r->osq_rdptr >= r->osq_size) {
        count(core, APN_CNT_OSQ_OVERFLOWS);
        trace_apertnic_osq_overflow(type, r->osq_wrptr, r->osq_rdptr);
        put_le32(word, (uint32_t)r->counters[APN_CNT_OSQ_OVERFLOWS]);
        core->ops->dma_write(core->opaque,
                             base + offsetof(struct apn_queue_ctrl, overflows),
                             word, 4);
    } else {
        memset(ev, 0, sizeof(ev));
        ev[0] = type;
        ev[2] = endpoint;
        ev[3] = endpoint >> 8;
        put_le32(ev + 4, info);
        put_le32(ev + 8, (uint32_t)data);
        put_le32(ev + 12, (uint32_t)(data >> 32));
        if (core->ops->dma_write(core->opaque,
                                 base + sizeof(struct apn_queue_ctrl) +
                                 (uint64_t)(r->osq_wrptr & (r->osq_size - 1)) *
                                 sizeof(struct apn_event), ev, sizeof(ev))) {
            qemu_log_mask(LOG_GUEST_ERROR,
                          "apertnic: OS queue at 0x%" PRIx64 " is not "
                          "writable; event %u lost\n", base, type);
            return;
        }
        r->osq_wrptr++;
        put_le32(word, r->osq_wrptr);
        core->ops->dma_write(core->opaque,
                             base + offsetof(struct apn_queue_ctrl, wrptr),
                             word, 4);
        count(core, APN_CNT_OSQ_EVENTS);
        trace_apertnic_osq_event(type, endpoint, info, r->osq_wrptr);
    }
    count(core, APN_CNT_IRQS);
    trace_apertnic_irq(vector);
    core->ops->notify(core->opaque, vector);
}

/* ---- mapping cache ---------------------------------------------------------- */

static inline uint32_t cache_hash(ApnCache *c, uint32_t key)
{
    /* Fibonacci hashing spreads consecutive indices across buckets. */
    return (key * 2654435761u) >> 7 & c->bucket_mask;
}

static void lru_unlink(ApnCache *c, int32_t i)
{
    ApnCacheSlot *s = &c->slots[i];

    if (s->lru_prev >= 0) {
        c->slots[s->lru_prev].lru_next = s->lru_next;
    } else {
        c->lru_head = s->lru_next;
    }
    if (s->lru_next >= 0) {
        c->slots[s->lru_next].lru_prev = s->lru_prev;
    } else {
        c->lru_tail = s->lru_prev;
    }
    s->lru_prev = s->lru_next = -1;
}

static void lru_push_head(ApnCache *c, int32_t i)
{
    ApnCacheSlot *s = &c->slots[i];

    s->lru_prev = -1;
    s->lru_next = c->lru_head;
    if (c->lru_head >= 0) {
        c->slots[c->lru_head].lru_prev = i;
    }
    c->lru_head = i;
    if (c->lru_tail < 0) {
        c->lru_tail = i;
    }
}

static int32_t cache_find(ApnCache *c, uint32_t key)
{
    int32_t i = c->buckets[cache_hash(c, key)];

    while (i >= 0 && c->slots[i].key != key) {
        i = c->slots[i].hash_next;
    }
    return i;
}

static void cache_unhash(ApnCache *c, int32_t i)
{
    int32_t *link = &c->buckets[cache_hash(c, c->slots[i].key)];

    while (*link != i) {
        link = &c->slots[*link].hash_next;
    }
    *link = c->slots[i].hash_next;
    c->slots[i].in_use = false;
}

static void cache_clear(ApnCache *c)
{
    for (uint32_t b = 0; b <= c->bucket_mask; b++) {
        c->buckets[b] = -1;
    }
    c->lru_head = c->lru_tail = -1;
    for (uint32_t i = 0; i < c->nslots; i++) {
        c->slots[i].in_use = false;
        c->slots[i].hash_next = -1;
        lru_push_head(c, i);
    }
}

static void cache_invalidate(ApnCore *core, uint32_t key)
{
    ApnCache *c = &core->cache;
    int32_t i = cache_find(c, key);

    if (i >= 0) {
        cache_unhash(c, i);
        /* A free slot is the first to be reused. */
        lru_unlink(c, i);
        c->slots[i].lru_next = -1;
        c->slots[i].lru_prev = c->lru_tail;
        if (c->lru_tail >= 0) {
            c->slots[c->lru_tail].lru_next = i;
        }
        c->lru_tail = i;
        if (c->lru_head < 0) {
            c->lru_head = i;
        }
    }
}

static void decode_out_entry(const uint8_t *raw, ApnCachedEntry *e)
{
    memset(e, 0, sizeof(*e));
    e->flags = get_le32(raw + offsetof(struct apn_out_entry, flags));
    e->endpoint = get_le16(raw + offsetof(struct apn_out_entry, endpoint));
    e->dest_host = get_le16(raw + offsetof(struct apn_out_entry, dest_host));
    e->dest_in_index = get_le32(raw + offsetof(struct apn_out_entry,
                                               dest_in_index));
    e->nonce = get_le32(raw + offsetof(struct apn_out_entry, nonce));
    e->size = get_le32(raw + offsetof(struct apn_out_entry, size));
    e->seq = get_le32(raw + offsetof(struct apn_out_entry, seq));
}

static void decode_in_entry(const uint8_t *raw, ApnCachedEntry *e)
{
    memset(e, 0, sizeof(*e));
    e->flags = get_le32(raw + offsetof(struct apn_in_entry, flags));
    e->endpoint = get_le16(raw + offsetof(struct apn_in_entry, endpoint));
    e->src_host = get_le16(raw + offsetof(struct apn_in_entry, src_host));
    e->src_host_mask = get_le16(raw + offsetof(struct apn_in_entry,
                                               src_host_mask));
    memcpy(e->src_mac, raw + offsetof(struct apn_in_entry, src_mac), 6);
    e->nonce = get_le32(raw + offsetof(struct apn_in_entry, nonce));
    e->seq = get_le32(raw + offsetof(struct apn_in_entry, seq));
    e->base = get_le64(raw + offsetof(struct apn_in_entry, base));
    e->size = get_le32(raw + offsetof(struct apn_in_entry, size));
    e->first_byte = get_le32(raw + offsetof(struct apn_in_entry, first_byte));
    e->narrow_start = get_le32(raw + offsetof(struct apn_in_entry,
                                              narrow_start));
    e->narrow_len = get_le32(raw + offsetof(struct apn_in_entry, narrow_len));
}

/*
 * Find a table entry, reading it from guest memory on a miss. Returns NULL
 * when the index is outside the programmed table or the read failed; the
 * caller counts that as its own drop reason.
 */
static ApnCachedEntry *lookup(ApnCore *core, bool out, uint32_t index)
{
    ApnCache *c = &core->cache;
    uint32_t key = (out ? APN_INVAL_OUT : 0) | (index & APN_INVAL_INDEX_MASK);
    uint8_t raw[APN_TABLE_ENTRY_SIZE];
    uint64_t addr;
    int32_t i;

    if (index > APN_INVAL_INDEX_MASK - 1 ||
        index >= (out ? core->regs.out_table_count
                      : core->regs.in_table_count)) {
        return NULL;
    }
    i = cache_find(c, key);
    if (i >= 0) {
        count(core, APN_CNT_CACHE_HITS);
        if (c->lru_head != i) {
            lru_unlink(c, i);
            lru_push_head(c, i);
        }
        return &c->slots[i].entry;
    }

    count(core, APN_CNT_CACHE_MISSES);
    addr = (out ? out_table_base(core) : in_table_base(core)) +
           (uint64_t)index * APN_TABLE_ENTRY_SIZE;
    trace_apertnic_cache_miss(out, index, addr);
    if (core->ops->dma_read(core->opaque, addr, raw, sizeof(raw))) {
        qemu_log_mask(LOG_GUEST_ERROR,
                      "apertnic: cannot read %s table entry %u at 0x%" PRIx64
                      "\n", out ? "outgoing" : "incoming", index, addr);
        osq_post(core, APN_EV_DEVICE_ERROR, 0, APN_ERR_DMA, addr, APN_VEC_OSQ);
        return NULL;
    }

    i = c->lru_tail;
    if (c->slots[i].in_use) {
        count(core, APN_CNT_CACHE_EVICTIONS);
        trace_apertnic_cache_evict(c->slots[i].key);
        cache_unhash(c, i);
    }
    lru_unlink(c, i);
    lru_push_head(c, i);
    c->slots[i].key = key;
    c->slots[i].in_use = true;
    c->slots[i].hash_next = c->buckets[cache_hash(c, key)];
    c->buckets[cache_hash(c, key)] = i;
    if (out) {
        decode_out_entry(raw, &c->slots[i].entry);
    } else {
        decode_in_entry(raw, &c->slots[i].entry);
    }
    return &c->slots[i].entry;
}

/* Write the sequence number back to the table entry (the patent's step 8). */
static void write_back_seq(ApnCore *core, bool out, uint32_t index,
                           uint32_t seq)
{
    uint64_t addr = (out ? out_table_base(core) : in_table_base(core)) +
                    (uint64_t)index * APN_TABLE_ENTRY_SIZE +
                    (out ? offsetof(struct apn_out_entry, seq)
                         : offsetof(struct apn_in_entry, seq));
    uint8_t word[4];

    put_le32(word, seq);
    core->ops->dma_write(core->opaque, addr, word, 4);
}

/* ---- transmit ----------------------------------------------------------------- */

static void host_mac(ApnCore *core, uint16_t host, uint8_t mac[6], bool *ok)
{
    uint64_t e = host < APN_HOST_MAC_ENTRIES ? core->regs.host_mac[host] : 0;

    *ok = e & APN_HOST_VALID;
    for (int i = 0; i < 6; i++) {
        mac[i] = e >> (8 * i);
    }
}

/* Largest payload one segment of a single-segment frame can carry. */
static uint32_t max_burst(ApnCore *core)
{
    /* Rounded down: the payload is padded to 4 bytes on the wire. */
    return (core->cfg.mtu - APN_FRAME_HDR_LEN - APN_SEG_HDR_LEN - APN_CRC_LEN) &
           ~3u;
}

/*
 * Encode a single-segment CI frame into core->frame. Returns its length
 * (padded to the Ethernet minimum).
 */
static size_t encode_frame(ApnCore *core, const uint8_t dst_mac[6],
                           uint16_t dst_host, uint8_t seg_type,
                           uint8_t seg_flags, uint32_t in_index,
                           uint32_t nonce, uint32_t seq, uint32_t offset,
                           uint32_t out_index, const uint8_t *payload,
                           uint16_t len)
{
    uint8_t *f = core->frame;
    uint8_t *ci = f + APN_ETH_HLEN;
    uint8_t *seg = ci + APN_FRAME_HDR_LEN;
    size_t ci_len = APN_FRAME_HDR_LEN + APN_SEG_HDR_LEN + APN_SEG_PAD(len);
    size_t total;

    memcpy(f, dst_mac, 6);
    memcpy(f + 6, core->cfg.mac, 6);
    put_be16(f + 12, APN_ETHERTYPE);

    ci[0] = APN_WIRE_VERSION;
    ci[1] = 1;
    put_be16(ci + 2, (uint16_t)core->regs.host_id);
    put_be16(ci + 4, dst_host);
    put_be16(ci + 6, 0);

    seg[0] = seg_type;
    seg[1] = seg_flags;
    put_be16(seg + 2, len);
    put_be32(seg + 4, in_index);
    put_be32(seg + 8, nonce);
    put_be32(seg + 12, seq);
    put_be32(seg + 16, offset);
    put_be32(seg + 20, out_index);
    memcpy(seg + APN_SEG_HDR_LEN, payload, len);
    memset(seg + APN_SEG_HDR_LEN + len, 0, APN_SEG_PAD(len) - len);

    put_be32(ci + ci_len, apn_crc32c(0, ci, ci_len));
    total = APN_ETH_HLEN + ci_len + APN_CRC_LEN;
    if (total < APN_MIN_ETH_FRAME) {
        memset(f + total, 0, APN_MIN_ETH_FRAME - total);
        total = APN_MIN_ETH_FRAME;
    }
    return total;
}

static void transmit(ApnCore *core, const uint8_t *frame, size_t len,
                     uint16_t dst_host)
{
    count(core, APN_CNT_TX_FRAMES);
    core->regs.counters[APN_CNT_TX_BYTES] += len;
    if (dst_host == (uint16_t)core->regs.host_id) {
        /* Traffic to ourselves never reaches the wire, as on a real port. */
        apn_core_receive(core, frame, len);
    } else {
        core->ops->send_frame(core->opaque, frame, len);
    }
}

/* Send the gathered burst, if any, as one CI frame. */
static void burst_flush(ApnCore *core)
{
    ApnBurst *b = &core->burst;
    ApnCachedEntry *e = &b->entry;
    uint8_t mac[6];
    uint8_t flags = 0;
    uint32_t seq = 0;
    size_t len;
    bool routed;

    if (core->timer_armed) {
        core->ops->timer_cancel(core->opaque);
        core->timer_armed = false;
    }
    if (!b->active) {
        return;
    }
    b->active = false;

    if (e->dest_host == (uint16_t)core->regs.host_id) {
        memcpy(mac, core->cfg.mac, 6); /* looped back: no route needed */
        routed = true;
    } else {
        host_mac(core, e->dest_host, mac, &routed);
    }
    if (!routed) {
        count(core, APN_CNT_TX_DROP_NO_ROUTE);
        trace_apertnic_tx_drop("no_route", b->out_index);
        qemu_log_mask(LOG_GUEST_ERROR,
                      "apertnic: outgoing aperture %u names host %u, which "
                      "has no route; %u bytes dropped\n",
                      b->out_index, e->dest_host, b->len);
        return;
    }
    if (e->flags & APN_ENTRY_SEQ) {
        /* The cached copy and the table both advance: write-through. */
        ApnCachedEntry *live = lookup(core, true, b->out_index);
        seq = live ? live->seq : e->seq;
        flags |= APN_SEG_F_SEQ;
        if (live) {
            live->seq = seq + 1;
        }
        write_back_seq(core, true, b->out_index, seq + 1);
    }
    len = encode_frame(core, mac, e->dest_host, APN_SEG_WRITE, flags,
                       e->dest_in_index, e->nonce, seq, b->start,
                       b->out_index, b->data, b->len);
    count(core, APN_CNT_TX_SEGMENTS);
    trace_apertnic_tx_frame(e->dest_host, e->dest_in_index, b->start, b->len,
                            seq);
    transmit(core, core->frame, len, e->dest_host);
}

void apn_core_flush_timer(ApnCore *core)
{
    core->timer_armed = false;
    burst_flush(core);
}

uint64_t apn_core_aperture_bar_size(const ApnCoreConfig *cfg)
{
    return pow2_ceil64((uint64_t)cfg->num_out << cfg->out_slot_shift);
}

void apn_core_aperture_write(ApnCore *core, uint64_t addr, uint64_t val,
                             unsigned size)
{
    ApnBurst *b = &core->burst;
    uint32_t slot = addr >> core->cfg.out_slot_shift;
    uint32_t off = addr & ((1u << core->cfg.out_slot_shift) - 1);
    ApnCachedEntry *e;

    count(core, APN_CNT_TX_STORES);
    if (!core_enabled(core)) {
        count(core, APN_CNT_TX_DROP_DISABLED);
        trace_apertnic_tx_drop("disabled", slot);
        return;
    }
    if (slot >= core->cfg.num_out) {
        count(core, APN_CNT_TX_DROP_INVALID);
        trace_apertnic_tx_drop("no_slot", slot);
        return;
    }
    if (b->active && (b->out_index != slot || b->start + b->len != off ||
                      b->len + size > max_burst(core))) {
        burst_flush(core);
    }
    if (!b->active) {
        e = lookup(core, true, slot);
        if (!e || !(e->flags & APN_ENTRY_VALID)) {
            count(core, APN_CNT_TX_DROP_INVALID);
            trace_apertnic_tx_drop("invalid", slot);
            qemu_log_mask(LOG_GUEST_ERROR,
                          "apertnic: store to outgoing aperture %u, which is "
                          "not valid\n", slot);
            return;
        }
        b->entry = *e;
        b->out_index = slot;
        b->start = off;
        b->len = 0;
    }
    if ((uint64_t)off + size > b->entry.size) {
        count(core, APN_CNT_TX_DROP_BOUNDS);
        trace_apertnic_tx_drop("bounds", slot);
        qemu_log_mask(LOG_GUEST_ERROR,
                      "apertnic: store at offset 0x%x of outgoing aperture %u "
                      "is past its size 0x%x\n", off, slot, b->entry.size);
        if (!b->len) {
            b->active = false;
        }
        return;
    }
    for (unsigned i = 0; i < size; i++) {
        b->data[b->len + i] = val >> (8 * i);
    }
    b->len += size;
    b->active = true;

    if (b->len + 8 > max_burst(core)) {
        burst_flush(core);
    } else {
        /* An idle timer: a burst goes out once stores pause, not mid-run. */
        core->timer_armed = true;
        core->ops->timer_arm(core->opaque, core->cfg.flush_delay_ns);
    }
}

uint64_t apn_core_aperture_read(ApnCore *core, uint64_t addr, unsigned size)
{
    /* Remote reads are not implemented yet: reads see zeros. */
    burst_flush(core);
    qemu_log_mask(LOG_UNIMP, "apertnic: read of %u bytes at 0x%" PRIx64
                  " in the aperture window (remote read) is not implemented\n",
                  size, addr);
    return 0;
}

/* ---- receive --------------------------------------------------------------------- */

static void rx_drop(ApnCore *core, enum apn_counter_id id, uint32_t in_index)
{
    count(core, id);
    trace_apertnic_rx_drop(apn_counter_name(id), in_index);
}

/* DMA-write a segment's payload into the aperture, page by page. */
static bool rx_write(ApnCore *core, const ApnCachedEntry *e, uint32_t offset,
                     const uint8_t *data, uint32_t len)
{
    uint64_t pos = (uint64_t)e->first_byte + offset;

    if (e->flags & APN_IN_CONTIG) {
        return !core->ops->dma_write(core->opaque, e->base + offset, data, len);
    }
    while (len) {
        uint32_t in_page = APN_PAGE_SIZE - (pos & (APN_PAGE_SIZE - 1));
        uint32_t chunk = len < in_page ? len : in_page;
        uint8_t raw[8];
        uint64_t page;

        if (core->ops->dma_read(core->opaque,
                                e->base + (pos >> APN_PAGE_SHIFT) * 8,
                                raw, 8)) {
            return false;
        }
        page = get_le64(raw) & ~(uint64_t)(APN_PAGE_SIZE - 1);
        if (core->ops->dma_write(core->opaque,
                                 page + (pos & (APN_PAGE_SIZE - 1)),
                                 data, chunk)) {
            return false;
        }
        pos += chunk;
        data += chunk;
        len -= chunk;
    }
    return true;
}

/* Check one write segment against its incoming aperture and deliver it. */
static void rx_segment(ApnCore *core, const uint8_t *src_mac, uint16_t src_host,
                       const uint8_t *seg, const uint8_t *payload)
{
    uint8_t type = seg[0];
    uint8_t flags = seg[1];
    uint16_t len = get_be16(seg + 2);
    uint32_t in_index = get_be32(seg + 4);
    uint32_t nonce = get_be32(seg + 8);
    uint32_t seq = get_be32(seg + 12);
    uint32_t offset = get_be32(seg + 16);
    uint32_t lo, hi;
    ApnCachedEntry *e;

    count(core, APN_CNT_RX_SEGMENTS);
    if (type != APN_SEG_WRITE) {
        rx_drop(core, APN_CNT_RX_DROP_MALFORMED, in_index);
        return;
    }
    e = lookup(core, false, in_index);
    if (!e) {
        rx_drop(core, APN_CNT_RX_DROP_INDEX, in_index);
        return;
    }
    if (!(e->flags & APN_ENTRY_VALID) ||
        (e->flags & APN_ENTRY_TYPE_MASK) >> APN_ENTRY_TYPE_SHIFT !=
        APN_ENTRY_TYPE_DATA) {
        rx_drop(core, APN_CNT_RX_DROP_INVALID, in_index);
        return;
    }
    if (nonce != e->nonce) {
        rx_drop(core, APN_CNT_RX_DROP_NONCE, in_index);
        return;
    }
    if ((e->flags & APN_IN_CHECK_SRC_MAC) && memcmp(src_mac, e->src_mac, 6)) {
        rx_drop(core, APN_CNT_RX_DROP_SRC_MAC, in_index);
        return;
    }
    if ((e->flags & APN_IN_CHECK_SRC_HOST) &&
        ((src_host ^ e->src_host) & e->src_host_mask)) {
        rx_drop(core, APN_CNT_RX_DROP_SRC_HOST, in_index);
        return;
    }
    if ((e->flags & APN_ENTRY_SEQ) &&
        (!(flags & APN_SEG_F_SEQ) || seq != e->seq)) {
        rx_drop(core, APN_CNT_RX_DROP_SEQ, in_index);
        return;
    }
    lo = 0;
    hi = e->size;
    if (e->narrow_len) {
        lo = e->narrow_start;
        hi = e->narrow_start + e->narrow_len;
        if (hi < lo || hi > e->size) {
            /* A narrowing outside the extent admits nothing. */
            hi = lo;
        }
    }
    if (offset < lo || (uint64_t)offset + len > hi) {
        rx_drop(core, APN_CNT_RX_DROP_BOUNDS, in_index);
        return;
    }
    if (!rx_write(core, e, offset, payload, len)) {
        rx_drop(core, APN_CNT_RX_DROP_DMA, in_index);
        qemu_log_mask(LOG_GUEST_ERROR,
                      "apertnic: DMA to incoming aperture %u failed\n",
                      in_index);
        return;
    }
    if (e->flags & APN_ENTRY_SEQ) {
        e->seq = seq + 1;
        write_back_seq(core, false, in_index, e->seq);
    }
    trace_apertnic_rx_write(in_index, offset, len);
}

bool apn_core_can_receive(ApnCore *core)
{
    /* Every frame is consumed at once (delivered or counted as dropped). */
    (void)core;
    return true;
}

void apn_core_receive(ApnCore *core, const uint8_t *frame, size_t len)
{
    static const uint8_t broadcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    const uint8_t *ci = frame + APN_ETH_HLEN;
    size_t ci_avail, pos;
    unsigned nseg;

    count(core, APN_CNT_RX_FRAMES);
    core->regs.counters[APN_CNT_RX_BYTES] += len;

    if (len < APN_ETH_HLEN) {
        rx_drop(core, APN_CNT_RX_DROP_MALFORMED, 0);
        return;
    }
    if (memcmp(frame, core->cfg.mac, 6) && memcmp(frame, broadcast, 6)) {
        rx_drop(core, APN_CNT_RX_FILTERED, 0);
        return;
    }
    if (get_be16(frame + 12) != APN_ETHERTYPE) {
        rx_drop(core, APN_CNT_RX_DROP_NOT_CI, 0);
        return;
    }
    if (!core_enabled(core)) {
        rx_drop(core, APN_CNT_RX_DROP_DISABLED, 0);
        return;
    }

    /* Validate the whole structure, then the CRC, before touching memory. */
    ci_avail = len - APN_ETH_HLEN;
    if (ci_avail < APN_FRAME_HDR_LEN + APN_CRC_LEN ||
        ci[0] != APN_WIRE_VERSION || ci[1] == 0) {
        rx_drop(core, APN_CNT_RX_DROP_MALFORMED, 0);
        return;
    }
    if (get_be16(ci + 4) != (uint16_t)core->regs.host_id) {
        rx_drop(core, APN_CNT_RX_FILTERED, 0);
        return;
    }
    nseg = ci[1];
    pos = APN_FRAME_HDR_LEN;
    for (unsigned i = 0; i < nseg; i++) {
        if (pos + APN_SEG_HDR_LEN > ci_avail) {
            rx_drop(core, APN_CNT_RX_DROP_MALFORMED, 0);
            return;
        }
        pos += APN_SEG_HDR_LEN + APN_SEG_PAD(get_be16(ci + pos + 2));
        if (pos + APN_CRC_LEN > ci_avail) {
            rx_drop(core, APN_CNT_RX_DROP_MALFORMED, 0);
            return;
        }
    }
    if (get_be32(ci + pos) != apn_crc32c(0, ci, pos)) {
        rx_drop(core, APN_CNT_RX_DROP_CRC, 0);
        return;
    }

    pos = APN_FRAME_HDR_LEN;
    for (unsigned i = 0; i < nseg; i++) {
        const uint8_t *seg = ci + pos;

        rx_segment(core, frame + 6, get_be16(ci + 2), seg,
                   seg + APN_SEG_HDR_LEN);
        pos += APN_SEG_HDR_LEN + APN_SEG_PAD(get_be16(seg + 2));
    }
}

void apn_core_set_link(ApnCore *core, bool up)
{
    uint32_t old = core->regs.status;

    if (up) {
        core->regs.status |= APN_STATUS_LINK_UP;
    } else {
        core->regs.status &= ~APN_STATUS_LINK_UP;
    }
    if (old != core->regs.status && core_enabled(core)) {
        osq_post(core, APN_EV_LINK, 0, core->regs.status, 0, APN_VEC_OSQ);
    }
}

/* ---- registers -------------------------------------------------------------------- */

uint64_t apn_core_regs_bar_size(const ApnCoreConfig *cfg)
{
    return pow2_ceil64(APN_USER_PAGE(cfg->num_endpoints));
}

static uint32_t mac_lo(ApnCore *core)
{
    return get_le32(core->cfg.mac);
}

static uint32_t reg_read32(ApnCore *core, uint32_t addr)
{
    ApnCoreRegs *r = &core->regs;

    switch (addr) {
    case APN_REG_MAGIC:          return APN_MAGIC;
    case APN_REG_VERSION:        return APN_SPEC_VERSION;
    case APN_REG_CAPS:           return APN_CAP_CACHE | APN_CAP_GATHER;
    case APN_REG_STATUS:         return r->status;
    case APN_REG_CTRL:           return r->ctrl;
    case APN_REG_HOST_ID:        return r->host_id;
    case APN_REG_MAC_LO:         return mac_lo(core);
    case APN_REG_MAC_HI:         return get_le16(core->cfg.mac + 4);
    case APN_REG_MTU:            return core->cfg.mtu;
    case APN_REG_NUM_ENDPOINTS:  return core->cfg.num_endpoints;
    case APN_REG_NUM_OUT:        return core->cfg.num_out;
    case APN_REG_OUT_SLOT_SHIFT: return core->cfg.out_slot_shift;
    case APN_REG_MAX_IN:         return core->cfg.max_in;
    case APN_REG_CACHE_ENTRIES:  return core->cfg.cache_entries;
    case APN_REG_NUM_VECTORS:    return APN_NUM_VECTORS;
    case APN_REG_IN_TABLE_LO:    return r->in_table_lo;
    case APN_REG_IN_TABLE_HI:    return r->in_table_hi;
    case APN_REG_IN_TABLE_COUNT: return r->in_table_count;
    case APN_REG_OUT_TABLE_LO:   return r->out_table_lo;
    case APN_REG_OUT_TABLE_HI:   return r->out_table_hi;
    case APN_REG_OUT_TABLE_COUNT: return r->out_table_count;
    case APN_REG_OSQ_BASE_LO:    return r->osq_base_lo;
    case APN_REG_OSQ_BASE_HI:    return r->osq_base_hi;
    case APN_REG_OSQ_SIZE:       return r->osq_size;
    case APN_REG_OSQ_WRPTR:      return r->osq_wrptr;
    case APN_REG_OSQ_RDPTR:      return r->osq_rdptr;
    case APN_REG_TABLE_INVAL:
    case APN_REG_IRQ_TEST:
    case APN_REG_FLUSH:
        return 0;
    }
    if (addr >= APN_REG_HOST_MAC_BASE &&
        addr < APN_REG_HOST_MAC_BASE + 8 * APN_HOST_MAC_ENTRIES) {
        uint64_t e = r->host_mac[(addr - APN_REG_HOST_MAC_BASE) / 8];
        return addr & 4 ? e >> 32 : (uint32_t)e;
    }
    if (addr >= APN_COUNTERS_BASE &&
        addr < APN_COUNTERS_BASE + 8 * APN_COUNTERS_MAX) {
        unsigned id = (addr - APN_COUNTERS_BASE) / 8;
        uint64_t v = id < APN_CNT__COUNT ? r->counters[id] : 0;
        return addr & 4 ? v >> 32 : (uint32_t)v;
    }
    if (addr >= APN_USER_PAGES_BASE) {
        return 0; /* user page registers are write-only */
    }
    qemu_log_mask(LOG_GUEST_ERROR, "apertnic: read of unknown register "
                  "0x%x\n", addr);
    return 0;
}

/* Table base and size registers may change only while CI traffic is off. */
static bool tables_locked(ApnCore *core, uint32_t addr)
{
    if (core_enabled(core)) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: write to register 0x%x "
                      "ignored while CTRL.ENABLE is set\n", addr);
        return true;
    }
    return false;
}

static void table_invalidate(ApnCore *core, uint32_t val)
{
    bool out = val & APN_INVAL_OUT;
    uint32_t index = val & APN_INVAL_INDEX_MASK;

    /* A burst gathered under the old entry goes out under the old entry. */
    burst_flush(core);
    trace_apertnic_table_inval(out, index);
    if (index == APN_INVAL_ALL_INDEX) {
        for (uint32_t i = 0; i < core->cache.nslots; i++) {
            ApnCacheSlot *s = &core->cache.slots[i];
            if (s->in_use && !!(s->key & APN_INVAL_OUT) == out) {
                cache_invalidate(core, s->key);
            }
        }
    } else {
        cache_invalidate(core, (out ? APN_INVAL_OUT : 0) | index);
    }
}

static void irq_test(ApnCore *core, uint32_t vector)
{
    if (vector >= APN_NUM_VECTORS) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: IRQ_TEST names vector %u; "
                      "the device has %u\n", vector, APN_NUM_VECTORS);
        return;
    }
    osq_post(core, APN_EV_TEST, 0, vector, 0, vector);
}

static void ctrl_write(ApnCore *core, uint32_t val)
{
    if (val & APN_CTRL_RESET) {
        apn_core_reset(core);
        return;
    }
    if (val & ~APN_CTRL_ENABLE) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: CTRL bits 0x%x are "
                      "reserved\n", val & ~APN_CTRL_ENABLE);
    }
    if (!(val & APN_CTRL_ENABLE)) {
        burst_flush(core);
    }
    core->regs.ctrl = val & APN_CTRL_ENABLE;
    trace_apertnic_ctrl(core->regs.ctrl);
}

static void reg_write32(ApnCore *core, uint32_t addr, uint32_t val)
{
    ApnCoreRegs *r = &core->regs;

    switch (addr) {
    case APN_REG_CTRL:
        ctrl_write(core, val);
        return;
    case APN_REG_HOST_ID:
        if (val > 0xffff) {
            qemu_log_mask(LOG_GUEST_ERROR, "apertnic: host id 0x%x does not "
                          "fit 16 bits; ignored\n", val);
            return;
        }
        burst_flush(core);
        r->host_id = val;
        return;
    case APN_REG_IN_TABLE_LO:
    case APN_REG_IN_TABLE_HI:
    case APN_REG_OUT_TABLE_LO:
    case APN_REG_OUT_TABLE_HI:
        if (tables_locked(core, addr)) {
            return;
        }
        if ((addr == APN_REG_IN_TABLE_LO || addr == APN_REG_OUT_TABLE_LO) &&
            (val & (APN_TABLE_ENTRY_SIZE - 1))) {
            qemu_log_mask(LOG_GUEST_ERROR, "apertnic: table address 0x%x is "
                          "not 64-byte aligned; ignored\n", val);
            return;
        }
        *(addr == APN_REG_IN_TABLE_LO ? &r->in_table_lo :
          addr == APN_REG_IN_TABLE_HI ? &r->in_table_hi :
          addr == APN_REG_OUT_TABLE_LO ? &r->out_table_lo :
          &r->out_table_hi) = val;
        cache_clear(&core->cache);
        return;
    case APN_REG_IN_TABLE_COUNT:
    case APN_REG_OUT_TABLE_COUNT: {
        uint32_t limit = addr == APN_REG_IN_TABLE_COUNT ? core->cfg.max_in
                                                        : core->cfg.num_out;
        if (tables_locked(core, addr)) {
            return;
        }
        if (val > limit) {
            qemu_log_mask(LOG_GUEST_ERROR, "apertnic: table size %u exceeds "
                          "the device's %u entries; ignored\n", val, limit);
            return;
        }
        *(addr == APN_REG_IN_TABLE_COUNT ? &r->in_table_count
                                         : &r->out_table_count) = val;
        cache_clear(&core->cache);
        return;
    }
    case APN_REG_TABLE_INVAL:
        table_invalidate(core, val);
        return;
    case APN_REG_OSQ_BASE_LO:
        if (val & 63) {
            qemu_log_mask(LOG_GUEST_ERROR, "apertnic: OS queue address 0x%x "
                          "is not 64-byte aligned; ignored\n", val);
            return;
        }
        r->osq_base_lo = val;
        return;
    case APN_REG_OSQ_BASE_HI:
        r->osq_base_hi = val;
        return;
    case APN_REG_OSQ_SIZE:
        if (val && (!is_pow2(val) || val < 2 || val > (1u << 20))) {
            qemu_log_mask(LOG_GUEST_ERROR, "apertnic: OS queue size %u is not "
                          "a power of two in [2, 2^20]; ignored\n", val);
            return;
        }
        /* (Re)programming the queue starts it empty. */
        r->osq_size = val;
        r->osq_wrptr = r->osq_rdptr = 0;
        return;
    case APN_REG_OSQ_RDPTR:
        if (val - r->osq_rdptr > r->osq_wrptr - r->osq_rdptr) {
            qemu_log_mask(LOG_GUEST_ERROR, "apertnic: OS queue read pointer "
                          "%u is beyond the write pointer %u; ignored\n",
                          val, r->osq_wrptr);
            return;
        }
        r->osq_rdptr = val;
        return;
    case APN_REG_IRQ_TEST:
        irq_test(core, val);
        return;
    case APN_REG_FLUSH:
        burst_flush(core);
        return;
    }
    if (addr >= APN_REG_HOST_MAC_BASE &&
        addr < APN_REG_HOST_MAC_BASE + 8 * APN_HOST_MAC_ENTRIES) {
        uint64_t *e = &r->host_mac[(addr - APN_REG_HOST_MAC_BASE) / 8];

        burst_flush(core);
        if (addr & 4) {
            *e = (*e & 0xffffffffull) | (uint64_t)val << 32;
        } else {
            *e = (*e & ~0xffffffffull) | val;
        }
        *e &= APN_HOST_MAC_MASK | APN_HOST_VALID;
        return;
    }
    if (addr >= APN_USER_PAGES_BASE) {
        uint32_t ep = (addr - APN_USER_PAGES_BASE) / APN_USER_PAGE_SIZE;
        uint32_t ureg = addr & (APN_USER_PAGE_SIZE - 1);

        if (ep < core->cfg.num_endpoints && ureg == APN_UREG_FENCE) {
            burst_flush(core);
            return;
        }
    }
    qemu_log_mask(LOG_GUEST_ERROR, "apertnic: write of 0x%x to %s register "
                  "0x%x ignored\n", val,
                  addr < APN_COUNTERS_BASE + 8 * APN_COUNTERS_MAX &&
                  addr >= APN_COUNTERS_BASE ? "read-only" : "unknown", addr);
}

uint64_t apn_core_reg_read(ApnCore *core, uint64_t addr, unsigned size)
{
    uint64_t val;

    if (size == 8) {
        val = reg_read32(core, addr) |
              (uint64_t)reg_read32(core, addr + 4) << 32;
    } else {
        val = reg_read32(core, addr);
    }
    trace_apertnic_reg_read(addr, val, size);
    return val;
}

void apn_core_reg_write(ApnCore *core, uint64_t addr, uint64_t val,
                        unsigned size)
{
    trace_apertnic_reg_write(addr, val, size);
    if (size == 8 && addr >= APN_REG_HOST_MAC_BASE &&
        addr < APN_REG_HOST_MAC_BASE + 8 * APN_HOST_MAC_ENTRIES) {
        /* One 64-bit store updates a route atomically. */
        uint64_t *e = &core->regs.host_mac[(addr - APN_REG_HOST_MAC_BASE) / 8];
        burst_flush(core);
        *e = val & (APN_HOST_MAC_MASK | APN_HOST_VALID);
        return;
    }
    reg_write32(core, addr, (uint32_t)val);
    if (size == 8) {
        reg_write32(core, addr + 4, (uint32_t)(val >> 32));
    }
}

/* ---- lifecycle ------------------------------------------------------------------------ */

int apn_core_init(ApnCore *core, const ApnCoreConfig *cfg,
                  const ApnCoreOps *ops, void *opaque, const char **why)
{
    uint32_t buckets;

    memset(core, 0, sizeof(*core));
    if (cfg->num_endpoints < 1 || cfg->num_endpoints > 1024) {
        *why = "endpoints must be 1 to 1024";
        return -1;
    }
    if (cfg->out_slot_shift < APN_PAGE_SHIFT || cfg->out_slot_shift > 24) {
        *why = "out-slot-shift must be 12 to 24";
        return -1;
    }
    if (cfg->num_out < 1 || cfg->num_out > 65536 ||
        ((uint64_t)cfg->num_out << cfg->out_slot_shift) > (1ull << 32)) {
        *why = "out-apertures must be 1 to 65536 and the window at most 4 GiB";
        return -1;
    }
    if (cfg->max_in < 1 || cfg->max_in > (1u << 24)) {
        *why = "max-in-apertures must be 1 to 16777216";
        return -1;
    }
    if (cfg->cache_entries < 1 || cfg->cache_entries > 65536) {
        *why = "cache-entries must be 1 to 65536";
        return -1;
    }
    if (cfg->mtu < 256 || cfg->mtu > APN_MAX_MTU) {
        *why = "mtu must be 256 to 9000";
        return -1;
    }
    core->cfg = *cfg;
    core->ops = ops;
    core->opaque = opaque;

    buckets = pow2_ceil64(cfg->cache_entries * 2);
    core->cache.nslots = cfg->cache_entries;
    core->cache.bucket_mask = buckets - 1;
    core->cache.slots = calloc(cfg->cache_entries, sizeof(ApnCacheSlot));
    core->cache.buckets = calloc(buckets, sizeof(int32_t));
    if (!core->cache.slots || !core->cache.buckets) {
        apn_core_cleanup(core);
        *why = "out of memory for the mapping cache";
        return -1;
    }
    apn_core_reset(core);
    return 0;
}

void apn_core_cleanup(ApnCore *core)
{
    free(core->cache.slots);
    free(core->cache.buckets);
    core->cache.slots = NULL;
    core->cache.buckets = NULL;
}

void apn_core_reset(ApnCore *core)
{
    uint32_t status = core->regs.status & APN_STATUS_LINK_UP;

    trace_apertnic_reset();
    if (core->timer_armed) {
        core->ops->timer_cancel(core->opaque);
        core->timer_armed = false;
    }
    core->burst.active = false;
    memset(&core->regs, 0, sizeof(core->regs));
    core->regs.status = status;
    cache_clear(&core->cache);
}

void apn_core_post_load(ApnCore *core)
{
    ApnCoreRegs *r = &core->regs;

    /* The migration stream is untrusted too: clamp what indexes memory. */
    if (r->in_table_count > core->cfg.max_in) {
        r->in_table_count = 0;
    }
    if (r->out_table_count > core->cfg.num_out) {
        r->out_table_count = 0;
    }
    if (r->osq_size && (!is_pow2(r->osq_size) || r->osq_size < 2 ||
                        r->osq_size > (1u << 20))) {
        r->osq_size = 0;
    }
    cache_clear(&core->cache);

    /*
     * A burst gathered when the VM stopped migrates with it (the source can
     * no longer send, and its RAM is already copied): send it from here.
     */
    core->timer_armed = false;
    if (core->burst.active) {
        ApnBurst *b = &core->burst;
        if (b->out_index >= core->cfg.num_out || !b->len ||
            b->len > max_burst(core) ||
            (uint64_t)b->start + b->len > b->entry.size) {
            b->active = false;
        } else {
            core->timer_armed = true;
            core->ops->timer_arm(core->opaque, core->cfg.flush_delay_ns);
        }
    }
}
