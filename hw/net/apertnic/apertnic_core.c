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
#include "apertnic_bytes.h"
#include "trace.h"

/* ---- small helpers --------------------------------------------------------- */

/* Internet checksum (RFC 1071): add 16-bit big-endian words, then fold. */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
    while (len > 1) {
        sum += (uint32_t)p[0] << 8 | p[1];
        p += 2;
        len -= 2;
    }
    if (len) {
        sum += (uint32_t)p[0] << 8;
    }
    return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return (uint16_t)~sum;
}

static inline void count(ApnCore *core, enum apn_counter_id id)
{
    core->regs.counters[id]++;
}

static inline uint32_t min_u32(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}

static void rx_frame(ApnCore *core, const uint8_t *frame, size_t len);
static void kick(ApnCore *core);

static inline unsigned ctz32_portable(uint32_t v)
{
    unsigned n = 0;

    while (v && !(v & 1)) {
        v >>= 1;
        n++;
    }
    return n;
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

/*
 * CRC32C (Castagnoli, reflected polynomial 0x82f63b78), eight bytes a step
 * ("slicing by 8"): table k gives the CRC of a byte followed by k zero bytes.
 * A byte-wise loop cost half of the receive path's instructions.
 */
static uint32_t crc32c_tables[8][256];

static void crc32c_init_tables(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        }
        crc32c_tables[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        for (int t = 1; t < 8; t++) {
            uint32_t prev = crc32c_tables[t - 1][i];
            crc32c_tables[t][i] = (prev >> 8) ^ crc32c_tables[0][prev & 0xff];
        }
    }
}

uint32_t apn_crc32c(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    const uint32_t (*t)[256] = crc32c_tables;

    if (!crc32c_tables[0][1]) {
        crc32c_init_tables();
    }
    crc = ~crc;
    for (; len >= 8; p += 8, len -= 8) {
        uint32_t lo = get_le32(p) ^ crc;
        uint32_t hi = get_le32(p + 4);

        crc = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^
              t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
              t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^
              t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
    }
    while (len--) {
        crc = t[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
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
    /*
     * Mix every key bit into every bit (a multiply-xorshift finaliser), then
     * take the top bits: a plain multiplicative hash left strided indices
     * (multiples of 1024, say) in a few buckets.
     */
    key ^= key >> 16;
    key *= 0x7feb352du;
    key ^= key >> 15;
    key *= 0x846ca68bu;
    key ^= key >> 16;
    return key >> c->hash_shift;
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

/* ---- endpoint queues (FIG 8 and 13) ------------------------------------------ */

static void encode_event(uint8_t ev[16], uint8_t type, uint16_t endpoint,
                         uint32_t info, uint64_t data)
{
    memset(ev, 0, 16);
    ev[0] = type;
    /* ev[1], the flags, is 0 but for ep_post_flags() */
    put_le16(ev + 2, endpoint);
    put_le32(ev + 4, info);
    put_le64(ev + 8, data);
}

static uint64_t evq_base(const ApnEndpoint *p)
{
    return (uint64_t)p->evq_hi << 32 | p->evq_lo;
}

static uint64_t varq_base(const ApnEndpoint *p)
{
    return (uint64_t)p->varq_hi << 32 | p->varq_lo;
}

/* The bits APN_EPR_CTRL keeps. */
#define APN_EP_CTRL_BITS (APN_EP_VALID | APN_EP_TRUSTED | APN_EP_KERNEL_CM)

static inline bool ep_valid(ApnCore *core, uint32_t ep)
{
    return ep < core->cfg.num_endpoints &&
           (core->regs.ep[ep].ctrl & APN_EP_VALID);
}

static inline bool evq_full(const ApnEndpoint *p)
{
    return p->evq_wrptr - p->evq_rdptr >= p->evq_size;
}

/*
 * An event or a variable-length record was lost because the endpoint's
 * queue had no room: count it on the device and in the queue's control
 * block, and tell the OS once per episode (until the consumer frees space).
 */
static void ep_lost(ApnCore *core, uint32_t ep, bool var)
{
    ApnEndpoint *p = &core->regs.ep[ep];
    uint32_t *lost = var ? &p->varq_lost : &p->evq_lost;
    bool *episode = var ? &p->varq_overflowing : &p->evq_overflowing;
    uint8_t word[4];

    count(core, APN_CNT_EVQ_OVERFLOWS);
    (*lost)++;
    trace_apertnic_evq_lost(ep, var, *lost);
    if (var ? p->varq_size : p->evq_size) {
        put_le32(word, *lost);
        core->ops->dma_write(core->opaque,
                             (var ? varq_base(p) : evq_base(p)) +
                             offsetof(struct apn_queue_ctrl, overflows),
                             word, 4);
    }
    if (!*episode) {
        *episode = true;
        osq_post(core, APN_EV_OVERFLOW, ep, p->evq_lost + p->varq_lost, 0,
                 APN_VEC_OSQ);
    }
}

/* An armed endpoint has something new: disarm it and tell the OS. */
static void ep_wake(ApnCore *core, uint32_t ep)
{
    ApnEndpoint *p = &core->regs.ep[ep];

    if (p->armed) {
        p->armed = false;
        osq_post(core, APN_EV_OOB_DATA, ep, 0, 0, APN_VEC_OSQ);
    }
}

/*
 * Post one event (apn_event.flags = `flags`) on endpoint `ep`'s event
 * queue. An endpoint that is not valid or has no queue gets nothing; a full
 * queue is never overwritten. An armed endpoint is disarmed and the OS told
 * with APN_EV_OOB_DATA.
 */
static bool ep_post_flags(ApnCore *core, uint32_t ep, uint8_t type,
                          uint8_t flags, uint32_t info, uint64_t data)
{
    ApnEndpoint *p;
    uint8_t ev[16], word[4];
    uint64_t base;

    if (!ep_valid(core, ep) || !core->regs.ep[ep].evq_size) {
        trace_apertnic_evq_none(ep, type);
        return false;
    }
    p = &core->regs.ep[ep];
    if (evq_full(p)) {
        ep_lost(core, ep, false);
        return false;
    }
    base = evq_base(p);
    encode_event(ev, type, ep, info, data);
    ev[1] = flags;
    if (core->ops->dma_write(core->opaque,
                             base + sizeof(struct apn_queue_ctrl) +
                             (uint64_t)(p->evq_wrptr & (p->evq_size - 1)) *
                             sizeof(struct apn_event), ev, sizeof(ev))) {
        qemu_log_mask(LOG_GUEST_ERROR,
                      "apertnic: event queue of endpoint %u at 0x%" PRIx64
                      " is not writable; event %u lost\n", ep, base, type);
        return false;
    }
    p->evq_wrptr++;
    put_le32(word, p->evq_wrptr);
    core->ops->dma_write(core->opaque,
                         base + offsetof(struct apn_queue_ctrl, wrptr),
                         word, 4);
    count(core, APN_CNT_EVQ_EVENTS);
    trace_apertnic_evq_event(ep, type, info, p->evq_wrptr);
    ep_wake(core, ep);
    return true;
}

static bool ep_post(ApnCore *core, uint32_t ep, uint8_t type, uint32_t info,
                    uint64_t data)
{
    return ep_post_flags(core, ep, type, 0, info, data);
}

/*
 * A datagram for endpoint `ep` that is not a connection message: copy it to
 * the variable-length queue as a record (struct apn_var_hdr, payload padded
 * to 8 bytes, wrapping at the end) and post APN_EV_VAR. A record needs room
 * on both queues, or it is lost whole.
 */
static void ep_post_var(ApnCore *core, uint32_t ep, uint32_t src_ip,
                        uint16_t src_port, const uint8_t *payload,
                        uint32_t len)
{
    ApnEndpoint *p = &core->regs.ep[ep];
    uint32_t rec = sizeof(struct apn_var_hdr) + ((len + 7) & ~7u);
    uint32_t used = p->varq_wrptr - p->varq_rdptr;
    uint32_t pos, first;
    uint64_t base;
    uint8_t word[4];

    if (!p->evq_size || !p->varq_size || used > p->varq_size ||
        rec > p->varq_size - used || rec > sizeof(core->rec)) {
        ep_lost(core, ep, true);
        return;
    }
    if (evq_full(p)) {
        ep_lost(core, ep, false);
        return;
    }
    memset(core->rec, 0, rec);
    put_le32(core->rec, len);
    put_le32(core->rec + 4, src_ip);
    memcpy(core->rec + sizeof(struct apn_var_hdr), payload, len);

    base = varq_base(p) + sizeof(struct apn_queue_ctrl);
    pos = p->varq_wrptr & (p->varq_size - 1);
    first = p->varq_size - pos < rec ? p->varq_size - pos : rec;
    if (core->ops->dma_write(core->opaque, base + pos, core->rec, first) ||
        (rec > first &&
         core->ops->dma_write(core->opaque, base, core->rec + first,
                              rec - first))) {
        qemu_log_mask(LOG_GUEST_ERROR,
                      "apertnic: variable-length queue of endpoint %u at 0x%"
                      PRIx64 " is not writable; datagram lost\n", ep,
                      varq_base(p));
        return;
    }
    pos = p->varq_wrptr;
    p->varq_wrptr += rec;
    put_le32(word, p->varq_wrptr);
    core->ops->dma_write(core->opaque,
                         varq_base(p) + offsetof(struct apn_queue_ctrl, wrptr),
                         word, 4);
    trace_apertnic_varq_record(ep, len, pos);
    ep_post(core, ep, APN_EV_VAR, len, pos | (uint64_t)src_port << 32);
}

/*
 * APN_UREG_ARM: one-shot; fires at once if events or completions are
 * already waiting.
 */
static void ep_arm(ApnCore *core, uint32_t ep, uint32_t val)
{
    ApnEndpoint *p = &core->regs.ep[ep];

    if (!(val & 1)) {
        p->armed = false;
        return;
    }
    if (p->evq_wrptr != p->evq_rdptr ||
        (p->cq_size && p->cq_wrptr != p->cq_rdptr)) {
        trace_apertnic_ep_arm(ep, true);
        p->armed = false;
        osq_post(core, APN_EV_OOB_DATA, ep, 0, 0, APN_VEC_OSQ);
    } else {
        trace_apertnic_ep_arm(ep, false);
        p->armed = true;
    }
}

/* ---- port map ----------------------------------------------------------------- */

/* The endpoint a UDP port is bound to, or -1. */
static int32_t port_owner(ApnCore *core, uint16_t port)
{
    uint16_t m = port ? core->port_map[port] : 0;

    return m && ep_valid(core, m - 1u) ? m - 1 : -1;
}

/* Rebuild port_map from the endpoints; a conflicting binding is cleared. */
static void port_map_rebuild(ApnCore *core)
{
    memset(core->port_map, 0, sizeof(core->port_map));
    for (uint32_t i = 0; i < core->cfg.num_endpoints; i++) {
        ApnEndpoint *p = &core->regs.ep[i];

        if (!(p->ctrl & APN_EP_VALID) || !p->port) {
            continue;
        }
        if (core->port_map[p->port]) {
            p->port = 0;
        } else {
            core->port_map[p->port] = i + 1;
        }
    }
}

/* ---- transmit ----------------------------------------------------------------- */

/*
 * The MAC of cluster host `host`; our own host id is looped back and needs
 * no route.
 */
static void host_mac(ApnCore *core, uint16_t host, uint8_t mac[6], bool *ok)
{
    uint64_t e = host < APN_HOST_MAC_ENTRIES ? core->regs.host_mac[host] : 0;

    if (host == (uint16_t)core->regs.host_id) {
        memcpy(mac, core->cfg.mac, 6);
        *ok = true;
        return;
    }
    *ok = e & APN_HOST_VALID;
    for (int i = 0; i < 6; i++) {
        mac[i] = e >> (8 * i);
    }
}

/* Room for segments in one frame. */
static uint32_t frame_room(ApnCore *core)
{
    return core->cfg.mtu - APN_FRAME_HDR_LEN - APN_CRC_LEN;
}

/* Largest payload one segment can carry (a multiple of 4: no padding). */
static uint32_t max_burst(ApnCore *core)
{
    return (frame_room(core) - APN_SEG_HDR_LEN) & ~3u;
}

/*
 * Hand a frame to the network, or to our own receive path when it is
 * addressed to us: traffic to ourselves never reaches the wire, as on a
 * real port.
 */
static void transmit(ApnCore *core, const uint8_t *frame, size_t len,
                     bool loop)
{
    count(core, APN_CNT_TX_FRAMES);
    core->regs.counters[APN_CNT_TX_BYTES] += len;
    if (loop) {
        rx_frame(core, frame, len);
    } else {
        core->ops->send_frame(core->opaque, frame, len);
    }
}

static void encode_seg(uint8_t *seg, uint8_t type, uint8_t flags,
                       uint32_t in_index, uint32_t nonce, uint32_t seq,
                       uint32_t offset, uint32_t out_index,
                       const uint8_t *payload, uint16_t len)
{
    seg[0] = type;
    seg[1] = flags;
    put_be16(seg + 2, len);
    put_be32(seg + 4, in_index);
    put_be32(seg + 8, nonce);
    put_be32(seg + 12, seq);
    put_be32(seg + 16, offset);
    put_be32(seg + 20, out_index);
    if (len) {
        memcpy(seg + APN_SEG_HDR_LEN, payload, len);
    }
    memset(seg + APN_SEG_HDR_LEN + len, 0, APN_SEG_PAD(len) - len);
}

/*
 * Wrap `ci_len` bytes of segments at f + APN_ETH_HLEN + APN_FRAME_HDR_LEN
 * into a CI frame: Ethernet and frame headers, CRC, padding. Returns the
 * frame's length.
 */
static size_t finish_frame(ApnCore *core, uint8_t *f, const uint8_t dst_mac[6],
                           uint16_t dst_host, uint8_t nseg, size_t seg_len)
{
    uint8_t *ci = f + APN_ETH_HLEN;
    size_t ci_len = APN_FRAME_HDR_LEN + seg_len;
    size_t total;

    memcpy(f, dst_mac, 6);
    memcpy(f + 6, core->cfg.mac, 6);
    put_be16(f + 12, APN_ETHERTYPE);
    ci[0] = APN_WIRE_VERSION;
    ci[1] = nseg;
    put_be16(ci + 2, (uint16_t)core->regs.host_id);
    put_be16(ci + 4, dst_host);
    put_be16(ci + 6, 0);
    put_be32(ci + ci_len, apn_crc32c(0, ci, ci_len));
    total = APN_ETH_HLEN + ci_len + APN_CRC_LEN;
    if (total < APN_MIN_ETH_FRAME) {
        memset(f + total, 0, APN_MIN_ETH_FRAME - total);
        total = APN_MIN_ETH_FRAME;
    }
    return total;
}

/* Send the pending (packed) frame, if any. */
static void frame_send(ApnCore *core)
{
    ApnTxFrame *p = &core->pend;
    uint8_t *f = core->frame;
    size_t len;

    if (!p->active) {
        return;
    }
    p->active = false;
    memcpy(f + APN_ETH_HLEN + APN_FRAME_HDR_LEN, p->data, p->len);
    len = finish_frame(core, f, p->dst_mac, p->dst_host, p->nseg, p->len);
    trace_apertnic_tx_frame(p->dst_host, p->nseg, len);
    transmit(core, f, len, p->dst_host == (uint16_t)core->regs.host_id);
}

/*
 * Append one segment to the pending frame (FIG 12 step 6): segments for the
 * same host share a frame, in order, until it is full; a segment for another
 * host sends the pending frame first.
 */
static void pack_segment(ApnCore *core, uint16_t dst_host,
                         const uint8_t dst_mac[6], uint8_t type,
                         uint8_t flags, uint32_t in_index, uint32_t nonce,
                         uint32_t seq, uint32_t offset, uint32_t out_index,
                         const uint8_t *payload, uint16_t len)
{
    ApnTxFrame *p = &core->pend;
    uint32_t need = APN_SEG_HDR_LEN + APN_SEG_PAD(len);

    if (p->active && (p->dst_host != dst_host ||
                      memcmp(p->dst_mac, dst_mac, 6) ||
                      p->len + need > frame_room(core) || p->nseg == 255)) {
        frame_send(core);
    }
    if (!p->active) {
        p->active = true;
        p->nseg = 0;
        p->len = 0;
        p->dst_host = dst_host;
        memcpy(p->dst_mac, dst_mac, 6);
    }
    encode_seg(p->data + p->len, type, flags, in_index, nonce, seq, offset,
               out_index, payload, len);
    p->len += need;
    p->nseg++;
    count(core, APN_CNT_TX_SEGMENTS);
    trace_apertnic_tx_segment(type, dst_host, in_index, offset, len, seq);
    if (frame_room(core) - p->len < APN_SEG_HDR_LEN + 8 || p->nseg == 255) {
        frame_send(core);   /* full: no room, or nseg at its 8-bit limit */
    }
}

/* Next sequence number of an outgoing aperture, written back (step 8). */
static uint32_t next_seq(ApnCore *core, uint32_t out_index, uint32_t fallback)
{
    ApnCachedEntry *live = lookup(core, true, out_index);
    uint32_t seq = live ? live->seq : fallback;

    if (live) {
        live->seq = seq + 1;
    }
    write_back_seq(core, true, out_index, seq + 1);
    return seq;
}

/* Close the gathered burst, if any, into a segment of the pending frame. */
static void burst_close(ApnCore *core)
{
    ApnBurst *b = &core->burst;
    ApnCachedEntry *e = &b->entry;
    uint8_t mac[6];
    uint8_t flags = 0;
    uint32_t seq = 0;
    bool routed;

    if (!b->active) {
        return;
    }
    b->active = false;

    host_mac(core, e->dest_host, mac, &routed);
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
        seq = next_seq(core, b->out_index, e->seq);
        flags |= APN_SEG_F_SEQ;
    }
    pack_segment(core, e->dest_host, mac, APN_SEG_WRITE, flags,
                 e->dest_in_index, e->nonce, seq, b->start, b->out_index,
                 b->data, b->len);
}

/*
 * The idle timer. What is gathered goes out once no store has come for a
 * whole flush delay. A store only notes its time; it arms the timer only when
 * the timer is not running. Once running, the timer re-arms itself from the
 * main loop: for the rest of the delay while a gather waits, else for another
 * delay while stores keep coming (APN_TIMER_LINGER delays), so it is still
 * running when the next gather starts. Arming it from the vCPU costs a main-loop
 * notification (an eventfd write and a wake-up of the main-loop thread, which
 * then contends for the BQL with the storing vCPU); a fenced message each time
 * paid that on its first store, nearly half of a 64-byte round trip under TCG.
 * A fence therefore leaves the timer running. The delay is unchanged: a gather
 * leaves exactly one delay after its last store.
 */
#define APN_TIMER_LINGER 20

static void tx_timer_note_store(ApnCore *core)
{
    core->last_store_ns = core->ops->now_ns(core->opaque);
    if (!core->timer_armed && (core->burst.active || core->pend.active)) {
        core->timer_armed = true;
        core->ops->timer_arm(core->opaque, core->cfg.flush_delay_ns);
    }
}

/* Send everything gathered: the burst, then the pending frame. */
static void tx_flush(ApnCore *core)
{
    burst_close(core);
    frame_send(core);
}

void apn_core_flush_timer(ApnCore *core)
{
    uint64_t delay = core->cfg.flush_delay_ns;
    uint64_t idle = core->ops->now_ns(core->opaque) - core->last_store_ns;

    core->timer_armed = false;
    if (core->burst.active || core->pend.active) {
        if (idle < delay) {
            core->timer_armed = true; /* not idle long enough yet */
            core->ops->timer_arm(core->opaque, delay - idle);
            return;
        }
        tx_flush(core);
    }
    if (idle < delay * APN_TIMER_LINGER) {
        core->timer_armed = true; /* stores still coming: keep running */
        core->ops->timer_arm(core->opaque, delay);
    }
}

uint64_t apn_core_aperture_bar_size(const ApnCoreConfig *cfg)
{
    return pow2_ceil64((uint64_t)cfg->num_out << cfg->out_slot_shift);
}

/* A store to an event aperture: one APN_SEG_EVENT segment of its own. */
static void tx_event(ApnCore *core, uint32_t slot, ApnCachedEntry *e,
                     uint32_t off, uint64_t val, unsigned size)
{
    uint16_t dest_host = e->dest_host;
    uint32_t in_index = e->dest_in_index, nonce = e->nonce, seq = 0;
    uint8_t payload[8], mac[6], flags = 0;
    bool routed;

    if ((uint64_t)off + size > e->size) {
        count(core, APN_CNT_TX_DROP_BOUNDS);
        trace_apertnic_tx_drop("bounds", slot);
        qemu_log_mask(LOG_GUEST_ERROR,
                      "apertnic: store at offset 0x%x of outgoing event "
                      "aperture %u is past its size 0x%x\n", off, slot,
                      e->size);
        return;
    }
    host_mac(core, dest_host, mac, &routed);
    if (!routed) {
        count(core, APN_CNT_TX_DROP_NO_ROUTE);
        trace_apertnic_tx_drop("no_route", slot);
        qemu_log_mask(LOG_GUEST_ERROR,
                      "apertnic: outgoing aperture %u names host %u, which "
                      "has no route; event dropped\n", slot, dest_host);
        return;
    }
    if (e->flags & APN_ENTRY_SEQ) {
        seq = e->seq;
        e->seq = seq + 1;
        write_back_seq(core, true, slot, seq + 1);
        flags |= APN_SEG_F_SEQ;
    }
    for (unsigned i = 0; i < size; i++) {
        payload[i] = val >> (8 * i);
    }
    pack_segment(core, dest_host, mac, APN_SEG_EVENT, flags, in_index, nonce,
                 seq, off, slot, payload, size);
}

void apn_core_aperture_write(ApnCore *core, uint64_t addr, uint64_t val,
                             unsigned size)
{
    ApnBurst *b = &core->burst;
    uint32_t slot = addr >> core->cfg.out_slot_shift;
    uint32_t off = addr & ((1u << core->cfg.out_slot_shift) - 1);
    ApnCachedEntry *e;
    uint32_t type;

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
    if (size < 1 || size > 8) {
        count(core, APN_CNT_TX_DROP_INVALID);
        trace_apertnic_tx_drop("size", slot);
        return;
    }
    if (b->active && (b->out_index != slot || b->start + b->len != off ||
                      b->len + size > max_burst(core))) {
        burst_close(core);
    }
    if (!b->active) {
        e = lookup(core, true, slot);
        type = e ? (e->flags & APN_ENTRY_TYPE_MASK) >> APN_ENTRY_TYPE_SHIFT
                 : 0;
        if (!e || !(e->flags & APN_ENTRY_VALID) ||
            (type != APN_ENTRY_TYPE_DATA && type != APN_ENTRY_TYPE_EVENT)) {
            count(core, APN_CNT_TX_DROP_INVALID);
            trace_apertnic_tx_drop("invalid", slot);
            qemu_log_mask(LOG_GUEST_ERROR,
                          "apertnic: store to outgoing aperture %u, which is "
                          "not valid\n", slot);
            return;
        }
        if (type == APN_ENTRY_TYPE_EVENT) {
            tx_event(core, slot, e, off, val, size);
            tx_timer_note_store(core);
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
    put_le_sized(b->data + b->len, val, size);
    b->len += size;
    b->active = true;

    if (b->len + 8 > max_burst(core)) {
        burst_close(core);
    }
    /* An idle timer: what is gathered goes out once stores pause. */
    tx_timer_note_store(core);
}

/* ---- remote read: the requesting side ---------------------------------- */

static inline uint32_t entry_type(const ApnCachedEntry *e)
{
    return (e->flags & APN_ENTRY_TYPE_MASK) >> APN_ENTRY_TYPE_SHIFT;
}

/* A VALID data aperture of endpoint `ep`, copied (lookup may evict). */
static bool own_data_entry(ApnCore *core, bool out, uint32_t index,
                           uint32_t ep, ApnCachedEntry *copy)
{
    ApnCachedEntry *e = lookup(core, out, index);

    if (!e || !(e->flags & APN_ENTRY_VALID) ||
        entry_type(e) != APN_ENTRY_TYPE_DATA || e->endpoint != ep) {
        return false;
    }
    *copy = *e;
    return true;
}

static void dma_get_done(ApnCore *core, uint32_t ep, uint32_t pos,
                         uint32_t status, uint32_t bytes);

/*
 * A CLOSE segment through outgoing aperture `index`, data or event: for
 * APN_REG_OUT_CLOSE (`ep` -1, any owner) or APN_UREG_OUT_CLOSE (endpoint
 * `ep`'s own). The aperture's gathered stores leave first; the CLOSE
 * carries no sequence number (the aperture's next one is unchanged) and
 * leaves at once. Returns an APN_CMD_* status.
 */
static uint32_t out_close(ApnCore *core, uint32_t index, int32_t ep)
{
    ApnCachedEntry *e = lookup(core, true, index);
    ApnCachedEntry oe;
    uint8_t mac[6];
    bool routed;

    if (!e || !(e->flags & APN_ENTRY_VALID) ||
        (entry_type(e) != APN_ENTRY_TYPE_DATA &&
         entry_type(e) != APN_ENTRY_TYPE_EVENT) ||
        (ep >= 0 && e->endpoint != ep)) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: CLOSE through outgoing "
                      "aperture %u, which is not a valid aperture%s; "
                      "ignored\n", index,
                      ep >= 0 ? " of this endpoint" : "");
        if (ep < 0) {
            count(core, APN_CNT_CMD_REFUSED);
        }
        trace_apertnic_tx_close(ep, index, 0, 0, APN_CMD_ENOENT);
        return APN_CMD_ENOENT;
    }
    oe = *e;        /* burst_close() may evict it */
    if (!core_enabled(core)) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: CLOSE through outgoing "
                      "aperture %u while CTRL.ENABLE is clear\n", index);
        count(core, APN_CNT_TX_DROP_DISABLED);
        trace_apertnic_tx_close(ep, index, oe.dest_host, oe.dest_in_index,
                                APN_CMD_EDISABLED);
        return APN_CMD_EDISABLED;
    }
    host_mac(core, oe.dest_host, mac, &routed);
    if (!routed) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: outgoing aperture %u names "
                      "host %u, which has no route; CLOSE dropped\n", index,
                      oe.dest_host);
        count(core, APN_CNT_TX_DROP_NO_ROUTE);
        trace_apertnic_tx_close(ep, index, oe.dest_host, oe.dest_in_index,
                                APN_CMD_ENOROUTE);
        return APN_CMD_ENOROUTE;
    }
    /* What was stored through the aperture arrives before its CLOSE. */
    if (core->burst.active && core->burst.out_index == index) {
        burst_close(core);
    }
    count(core, APN_CNT_TX_CLOSES);
    trace_apertnic_tx_close(ep, index, oe.dest_host, oe.dest_in_index,
                            APN_CMD_OK);
    pack_segment(core, oe.dest_host, mac, APN_SEG_CLOSE, 0, oe.dest_in_index,
                 oe.nonce, 0, 0, index, NULL, 0);
    frame_send(core);
    return APN_CMD_OK;
}

/* Arm the read timer for the earliest deadline of a read awaiting data. */
static void read_timer_update(ApnCore *core)
{
    uint64_t first = UINT64_MAX, now;
    bool any = false;

    for (unsigned i = 0; i < APN_MAX_READS; i++) {
        ApnRead *r = &core->reads[i];

        if (r->kind != APN_READ_FREE && r->asked != r->done) {
            any = true;
            if (r->deadline < first) {
                first = r->deadline;
            }
        }
    }
    if (!any || !core->cfg.read_timeout_ns || !core->ops->read_timer_arm) {
        if (core->read_timer_armed && core->ops->read_timer_cancel) {
            core->ops->read_timer_cancel(core->opaque);
        }
        core->read_timer_armed = false;
        return;
    }
    now = core->ops->now_ns(core->opaque);
    core->read_timer_armed = true;
    core->ops->read_timer_arm(core->opaque, first > now ? first - now : 0);
}

static ApnRead *read_alloc(ApnCore *core)
{
    for (unsigned i = 0; i < APN_MAX_READS; i++) {
        ApnRead *r = &core->reads[i];

        if (r->kind == APN_READ_FREE) {
            memset(r, 0, sizeof(*r));
            core->read_gen = (core->read_gen + 1) & 0xffffff;
            r->tag = core->read_gen << APN_READ_TAG_SHIFT | i;
            return r;
        }
    }
    return NULL;
}

static ApnRead *read_by_tag(ApnCore *core, uint32_t tag)
{
    uint32_t i = tag & ((1u << APN_READ_TAG_SHIFT) - 1);

    if (i >= APN_MAX_READS || core->reads[i].kind == APN_READ_FREE ||
        core->reads[i].tag != tag) {
        return NULL;
    }
    return &core->reads[i];
}

/*
 * A read is over, with `status` 0 or a counter id: free its entry, then
 * tell the load's endpoint (APN_EV_READ_DONE) or complete the GET.
 */
static void read_finish(ApnCore *core, ApnRead *r, uint32_t status)
{
    ApnRead done = *r;

    r->kind = APN_READ_FREE;
    trace_apertnic_read_done(done.ep, done.tag, done.done, status);
    if (!status) {
        count(core, APN_CNT_READS_DONE);
    }
    if (done.kind == APN_READ_LOAD) {
        ep_post(core, done.ep, APN_EV_READ_DONE, done.done,
                done.land_offset | (uint64_t)status << 32);
    } else {
        dma_get_done(core, done.ep, done.rq_pos, status, done.done);
    }
    read_timer_update(core);
    if (core->read_waiters) {
        kick(core);         /* a GET waits for a free entry */
    }
}

void apn_core_read_timer(ApnCore *core)
{
    uint64_t now = core->ops->now_ns(core->opaque);

    core->read_timer_armed = false;
    for (unsigned i = 0; i < APN_MAX_READS; i++) {
        ApnRead *r = &core->reads[i];

        if (r->kind != APN_READ_FREE && r->asked != r->done &&
            r->deadline <= now) {
            count(core, APN_CNT_READ_TIMEOUTS);
            trace_apertnic_read_drop("timeout", r->tag);
            read_finish(core, r, APN_CNT_READ_TIMEOUTS);
        }
    }
    read_timer_update(core);
}

/*
 * Ask for the next chunk of read `r`: one APN_SEG_READ_REQ through its
 * outgoing aperture, sent at once after what is gathered. The apertures are
 * looked up again (the tables may have changed since the read began); a
 * failure finishes the read with that status.
 */
static void read_req_send(ApnCore *core, ApnRead *r)
{
    uint32_t chunk = min_u32(r->len - r->asked, APN_READ_MAX_LEN);
    uint8_t payload[APN_READ_REQ_LEN], mac[6], flags = 0;
    ApnCachedEntry oe, le;
    uint32_t seq = 0, offset;
    enum apn_counter_id status;
    bool routed;

    r->want_next = 0;
    if (!core_enabled(core)) {
        status = APN_CNT_TX_DROP_DISABLED;
        goto fail;
    }
    if (!own_data_entry(core, true, r->out_index, r->ep, &oe)) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: read "
                      "through outgoing aperture %u, which is not its own "
                      "valid data aperture\n", r->ep, r->out_index);
        status = APN_CNT_TX_DROP_INVALID;
        goto fail;
    }
    if ((uint64_t)r->remote_offset + r->asked + chunk > oe.size) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: read of "
                      "[0x%x, +0x%x) is past outgoing aperture %u's size "
                      "0x%x\n", r->ep, r->remote_offset, r->len,
                      r->out_index, oe.size);
        status = APN_CNT_TX_DROP_BOUNDS;
        goto fail;
    }
    if (!own_data_entry(core, false, r->in_index, r->ep, &le)) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: landing "
                      "aperture %u is not its own valid data aperture\n",
                      r->ep, r->in_index);
        status = APN_CNT_TX_DROP_READ;
        goto fail;
    }
    if ((uint64_t)r->land_offset + r->asked + chunk > le.size) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: read lands "
                      "past incoming aperture %u's size 0x%x\n", r->ep,
                      r->in_index, le.size);
        status = APN_CNT_TX_DROP_BOUNDS;
        goto fail;
    }
    host_mac(core, oe.dest_host, mac, &routed);
    if (!routed) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: outgoing aperture %u names "
                      "host %u, which has no route; read refused\n",
                      r->out_index, oe.dest_host);
        status = APN_CNT_TX_DROP_NO_ROUTE;
        goto fail;
    }

    /* Stores issued before the read leave before it. */
    burst_close(core);
    if (oe.flags & APN_ENTRY_SEQ) {
        seq = next_seq(core, r->out_index, oe.seq);
        flags |= APN_SEG_F_SEQ;
    }
    offset = r->remote_offset + r->asked;
    put_be32(payload, chunk);
    put_be32(payload + 4, r->in_index);
    put_be32(payload + 8, le.nonce);
    put_be32(payload + 12, r->land_offset + r->asked);
    put_be32(payload + 16, r->tag);
    r->host = oe.dest_host;
    r->asked += chunk;
    r->deadline = core->ops->now_ns(core->opaque) + core->cfg.read_timeout_ns;
    count(core, APN_CNT_TX_READ_REQS);
    trace_apertnic_read_req(r->ep, r->tag, r->out_index, offset, chunk);
    read_timer_update(core);
    /* The answer may come back inside frame_send (loopback): r is done. */
    pack_segment(core, oe.dest_host, mac, APN_SEG_READ_REQ, flags,
                 oe.dest_in_index, oe.nonce, seq, offset, r->out_index,
                 payload, APN_READ_REQ_LEN);
    frame_send(core);
    return;

fail:
    count(core, status);
    trace_apertnic_read_drop(apn_counter_name(status), r->tag);
    read_finish(core, r, status);
}

/*
 * A load from an outgoing data aperture (seed 004's read request): after
 * the gathered stores (packed with them when they go to the same host), an
 * APN_SEG_READ_REQ asks the remote NIC for the loaded bytes, which land at
 * the same offset of the endpoint's READ_LANDING aperture;
 * APN_EV_READ_DONE says when (or why not). The load itself returns 0: the
 * data arrives asynchronously. Whatever happens, what was gathered leaves.
 */
static void aperture_load(ApnCore *core, uint32_t slot, uint32_t off,
                          unsigned size);

uint64_t apn_core_aperture_read(ApnCore *core, uint64_t addr, unsigned size)
{
    burst_close(core);
    aperture_load(core, addr >> core->cfg.out_slot_shift,
                  addr & ((1u << core->cfg.out_slot_shift) - 1), size);
    tx_flush(core);
    return 0;
}

static void aperture_load(ApnCore *core, uint32_t slot, uint32_t off,
                          unsigned size)
{
    enum apn_counter_id status;
    ApnCachedEntry *e;
    ApnEndpoint *p;
    ApnRead *r;
    uint32_t ep;

    if (!core_enabled(core)) {
        count(core, APN_CNT_TX_DROP_DISABLED);
        trace_apertnic_tx_drop("disabled", slot);
        return;
    }
    if (slot >= core->cfg.num_out ||
        (size != 1 && size != 2 && size != 4 && size != 8)) {
        count(core, APN_CNT_TX_DROP_INVALID);
        trace_apertnic_tx_drop("no_slot", slot);
        return;
    }
    e = lookup(core, true, slot);
    if (!e || !(e->flags & APN_ENTRY_VALID) || !ep_valid(core, e->endpoint)) {
        count(core, APN_CNT_TX_DROP_INVALID);
        trace_apertnic_tx_drop("invalid", slot);
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: load from outgoing "
                      "aperture %u, which is not valid or has no valid "
                      "endpoint\n", slot);
        return;
    }
    ep = e->endpoint;
    p = &core->regs.ep[ep];
    if (entry_type(e) != APN_ENTRY_TYPE_DATA) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: load from outgoing event "
                      "aperture %u\n", slot);
        status = APN_CNT_TX_DROP_INVALID;
    } else if ((uint64_t)off + size > e->size) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: load at offset 0x%x of "
                      "outgoing aperture %u is past its size 0x%x\n", off,
                      slot, e->size);
        status = APN_CNT_TX_DROP_BOUNDS;
    } else if (!(p->read_landing & APN_READ_LANDING_VALID)) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: load from "
                      "outgoing aperture %u with no READ_LANDING aperture\n",
                      ep, slot);
        status = APN_CNT_TX_DROP_READ;
    } else {
        r = read_alloc(core);
        if (!r) {
            qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: load from "
                          "outgoing aperture %u refused: %u reads "
                          "outstanding\n", ep, slot, APN_MAX_READS);
            status = APN_CNT_TX_DROP_READ;
            goto refused;
        }
        r->kind = APN_READ_LOAD;
        r->ep = ep;
        r->out_index = slot;
        r->in_index = p->read_landing & APN_READ_LANDING_INDEX;
        r->remote_offset = off;
        r->land_offset = off;
        r->len = size;
        read_req_send(core, r);
        return;
    }
refused:
    count(core, status);
    trace_apertnic_read_refused(ep, slot, status);
    ep_post(core, ep, APN_EV_READ_DONE, 0, off | (uint64_t)status << 32);
}

/* ---- receive --------------------------------------------------------------------- */

static void rx_drop(ApnCore *core, enum apn_counter_id id, uint32_t in_index)
{
    count(core, id);
    trace_apertnic_rx_drop(apn_counter_name(id), in_index);
}

/* One DMA in the direction asked: into guest memory or out of it. */
static int guest_dma(ApnCore *core, uint64_t addr, void *buf, uint32_t len,
                     bool to_guest)
{
    return to_guest ? core->ops->dma_write(core->opaque, addr, buf, len)
                    : core->ops->dma_read(core->opaque, addr, buf, len);
}

/*
 * DMA between buf and [offset, +len) of an incoming aperture's memory:
 * directly when it is contiguous, else page by page through its page list.
 */
static bool aperture_dma(ApnCore *core, const ApnCachedEntry *e,
                         uint32_t offset, uint8_t *buf, uint32_t len,
                         bool to_guest)
{
    uint64_t pos = (uint64_t)e->first_byte + offset;

    if (e->flags & APN_IN_CONTIG) {
        return !guest_dma(core, e->base + offset, buf, len, to_guest);
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
        if (guest_dma(core, page + (pos & (APN_PAGE_SIZE - 1)), buf, chunk,
                      to_guest)) {
            return false;
        }
        pos += chunk;
        buf += chunk;
        len -= chunk;
    }
    return true;
}

/* Write a segment's payload into the aperture. */
static bool rx_write(ApnCore *core, const ApnCachedEntry *e, uint32_t offset,
                     const uint8_t *data, uint32_t len)
{
    /* Only read from: the cast lets both directions share one walk. */
    return aperture_dma(core, e, offset, (uint8_t *)data, len, true);
}

/* Read [offset, +len) of an aperture's memory (remote reads, PUT). */
static bool rx_read(ApnCore *core, const ApnCachedEntry *e, uint32_t offset,
                    uint8_t *data, uint32_t len)
{
    return aperture_dma(core, e, offset, data, len, false);
}

/*
 * Tell the sender its segment was refused: a one-segment APN_SEG_ERROR frame
 * straight back to the source MAC (no route needed), naming its outgoing
 * aperture and our counter id (and, for a READ_REQ, APN_SEG_F_READ and its
 * tag in seq). Built in its own buffer: the frame being received may be
 * core->frame (loopback).
 */
static void send_seg_error(ApnCore *core, const uint8_t *src_mac,
                           uint16_t src_host, uint32_t in_index,
                           uint32_t out_index, enum apn_counter_id reason,
                           uint8_t flags, uint32_t seq)
{
    uint8_t *f = core->err_frame;
    size_t len;

    if (src_mac[0] & 1) {
        return;     /* never to a group address */
    }
    encode_seg(f + APN_ETH_HLEN + APN_FRAME_HDR_LEN, APN_SEG_ERROR, flags,
               in_index, 0, seq, reason, out_index, NULL, 0);
    len = finish_frame(core, f, src_mac, src_host, 1, APN_SEG_HDR_LEN);
    count(core, APN_CNT_TX_ERROR_MSGS);
    count(core, APN_CNT_TX_SEGMENTS);
    trace_apertnic_tx_error(src_host, in_index, out_index, reason);
    transmit(core, f, len, !memcmp(src_mac, core->cfg.mac, 6));
}

/*
 * The remote NIC refused one of our segments: report it to the endpoint
 * that owns the outgoing aperture, if the report matches where the aperture
 * sends (a stale or forged report is counted and otherwise ignored). A
 * refused READ_REQ (APN_SEG_F_READ) finishes its read instead.
 */
static void rx_seg_error(ApnCore *core, uint16_t src_host, uint8_t flags,
                         uint16_t len, uint32_t in_index, uint32_t seq,
                         uint32_t out_index, uint32_t reason)
{
    ApnCachedEntry *e;
    ApnRead *r;
    bool match;

    if (len) {
        rx_drop(core, APN_CNT_RX_DROP_MALFORMED, in_index);
        return;
    }
    count(core, APN_CNT_RX_ERROR_MSGS);
    if (flags & APN_SEG_F_READ) {
        r = read_by_tag(core, seq);
        match = r && r->out_index == out_index && r->host == src_host &&
                r->asked != r->done;
        trace_apertnic_rx_error(src_host, in_index, out_index, reason, match);
        if (match) {
            read_finish(core, r, reason ? reason : APN_CNT_RX_ERROR_MSGS);
        }
        return;
    }
    e = lookup(core, true, out_index);
    match = e && (e->flags & APN_ENTRY_VALID) && e->dest_host == src_host &&
            e->dest_in_index == in_index;
    trace_apertnic_rx_error(src_host, in_index, out_index, reason, match);
    if (match) {
        ep_post(core, e->endpoint, APN_EV_TX_ERROR, reason,
                out_index | (uint64_t)in_index << 32);
    }
}

/* What a segment is checked as (rx_check). */
typedef enum {
    APN_RX_DATA,        /* WRITE, READ_REQ, READ_RESP: a data aperture */
    APN_RX_EVENT,       /* EVENT: an event aperture */
    APN_RX_CLOSE,       /* CLOSE: either type, no bounds */
} ApnRxKind;

/*
 * The checks of a segment against incoming entry `in_index`, in order:
 * index, VALID and type, nonce, source MAC, source host, sequence (unless
 * `seq_check` is false), bounds of [offset, +len) against the narrowed
 * extent (an EVENT: offset < size; a CLOSE: none). Returns 0 or the
 * refusal's counter id; *owned is set when the entry is VALID (its endpoint
 * hears of a refusal).
 */
static uint32_t rx_check(ApnCore *core, const uint8_t *src_mac,
                         uint16_t src_host, uint32_t in_index, uint32_t nonce,
                         uint8_t flags, uint32_t seq, uint32_t offset,
                         uint64_t len, ApnRxKind kind, bool seq_check,
                         ApnCachedEntry **pe, bool *owned)
{
    ApnCachedEntry *e = lookup(core, false, in_index);
    bool event = kind == APN_RX_EVENT;
    uint32_t lo, hi;

    *owned = false;
    *pe = e;
    if (!e) {
        return APN_CNT_RX_DROP_INDEX;
    }
    if (!(e->flags & APN_ENTRY_VALID)) {
        return APN_CNT_RX_DROP_INVALID;
    }
    *owned = true;
    if (kind == APN_RX_CLOSE) {
        event = entry_type(e) == APN_ENTRY_TYPE_EVENT;
    }
    if (entry_type(e) != (event ? APN_ENTRY_TYPE_EVENT : APN_ENTRY_TYPE_DATA)) {
        return APN_CNT_RX_DROP_INVALID;
    }
    if (nonce != e->nonce) {
        return APN_CNT_RX_DROP_NONCE;
    }
    if ((e->flags & APN_IN_CHECK_SRC_MAC) && memcmp(src_mac, e->src_mac, 6)) {
        return APN_CNT_RX_DROP_SRC_MAC;
    }
    if ((e->flags & APN_IN_CHECK_SRC_HOST) &&
        ((src_host ^ e->src_host) & e->src_host_mask)) {
        return APN_CNT_RX_DROP_SRC_HOST;
    }
    if (seq_check && (e->flags & APN_ENTRY_SEQ) &&
        (!(flags & APN_SEG_F_SEQ) || seq != e->seq)) {
        return APN_CNT_RX_DROP_SEQ;
    }
    if (kind == APN_RX_CLOSE) {
        return 0;
    }
    if (event) {
        return offset < e->size ? 0 : APN_CNT_RX_DROP_BOUNDS;
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
        return APN_CNT_RX_DROP_BOUNDS;
    }
    return 0;
}

/*
 * Serve a READ_REQ that passed the checks: `len` bytes already read into
 * core->read_buf go back to the requester's source MAC as READ_RESP
 * segments of at most one MTU, one a frame, in order.
 */
static void rx_serve_read(ApnCore *core, const uint8_t *src_mac,
                          uint16_t src_host, uint32_t reply_in_index,
                          uint32_t reply_nonce, uint32_t reply_offset,
                          uint32_t tag, uint32_t len)
{
    uint8_t *f = core->resp_frame;
    uint32_t max = max_burst(core), pos = 0;
    bool loop = !memcmp(src_mac, core->cfg.mac, 6);
    uint8_t mac[6];

    memcpy(mac, src_mac, 6);    /* src_mac may be in a looped-back frame */
    count(core, APN_CNT_RX_READ_REQS);
    trace_apertnic_read_serve(src_host, reply_in_index, reply_offset, len,
                              tag);
    while (pos < len) {
        uint32_t n = min_u32(len - pos, max);
        size_t flen;

        encode_seg(f + APN_ETH_HLEN + APN_FRAME_HDR_LEN, APN_SEG_READ_RESP, 0,
                   reply_in_index, reply_nonce, 0, reply_offset + pos, tag,
                   core->read_buf + pos, n);
        flen = finish_frame(core, f, mac, src_host, 1,
                            APN_SEG_HDR_LEN + APN_SEG_PAD(n));
        count(core, APN_CNT_TX_SEGMENTS);
        transmit(core, f, flen, loop);
        pos += n;
    }
}

/*
 * A READ_RESP: it must answer an outstanding read (tag, host, landing
 * aperture, the next offset, no more than asked), else it is rx_drop_read.
 * Then it is checked like a write against the landing aperture (no
 * sequence check) and written; a refusal finishes the read with its
 * reason. The last byte of the last chunk finishes the read.
 */
static void rx_read_resp(ApnCore *core, const uint8_t *src_mac,
                         uint16_t src_host, const uint8_t *seg,
                         const uint8_t *payload)
{
    uint16_t len = get_be16(seg + 2);
    uint32_t in_index = get_be32(seg + 4);
    uint32_t nonce = get_be32(seg + 8);
    uint32_t offset = get_be32(seg + 16);
    uint32_t tag = get_be32(seg + 20);
    ApnRead *r = read_by_tag(core, tag);
    ApnCachedEntry *e;
    uint32_t reason;
    bool owned;

    if (!r || r->host != src_host || r->in_index != in_index || !len ||
        offset != r->land_offset + r->done || len > r->asked - r->done) {
        rx_drop(core, APN_CNT_RX_DROP_READ, in_index);
        trace_apertnic_read_drop("unexpected", tag);
        return;
    }
    reason = rx_check(core, src_mac, src_host, in_index, nonce, 0, 0, offset,
                      len, APN_RX_DATA, false, &e, &owned);
    if (!reason && !rx_write(core, e, offset, payload, len)) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: DMA to landing aperture %u "
                      "failed\n", in_index);
        reason = APN_CNT_RX_DROP_DMA;
    }
    if (reason) {
        rx_drop(core, reason, in_index);
        read_finish(core, r, reason);
        return;
    }
    r->done += len;
    /* A read that makes progress is alive: time out only after silence. */
    r->deadline = core->ops->now_ns(core->opaque) + core->cfg.read_timeout_ns;
    trace_apertnic_read_resp(tag, offset, len);
    if (r->done == r->asked) {
        if (r->done == r->len) {
            read_finish(core, r, 0);
        } else {
            r->want_next = 1;       /* the next chunk, from the bh */
            read_timer_update(core);
            kick(core);
        }
    }
}

/*
 * Check one WRITE, EVENT, READ_REQ or CLOSE segment against its incoming
 * aperture and deliver or serve it; report a refusal to the aperture's
 * endpoint and the sender.
 */
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
    uint32_t out_index = get_be32(seg + 20);
    uint32_t reason, owner = 0, tag = 0;
    uint32_t reply_in = 0, reply_nonce = 0, reply_offset = 0;
    uint64_t want = len;
    uint8_t err_flags = 0;
    ApnCachedEntry *e;
    bool owned;

    count(core, APN_CNT_RX_SEGMENTS);
    switch (type) {
    case APN_SEG_WRITE:
        break;
    case APN_SEG_EVENT:
        if (len < 1 || len > 8) {
            rx_drop(core, APN_CNT_RX_DROP_MALFORMED, in_index);
            return;
        }
        break;
    case APN_SEG_READ_REQ:
        if (len != APN_READ_REQ_LEN || (src_mac[0] & 1)) {
            /* cannot be answered */
            rx_drop(core, APN_CNT_RX_DROP_MALFORMED, in_index);
            return;
        }
        want = get_be32(payload);
        reply_in = get_be32(payload + 4);
        reply_nonce = get_be32(payload + 8);
        reply_offset = get_be32(payload + 12);
        tag = get_be32(payload + 16);
        err_flags = APN_SEG_F_READ;
        break;
    case APN_SEG_CLOSE:
        if (len) {
            rx_drop(core, APN_CNT_RX_DROP_MALFORMED, in_index);
            return;
        }
        break;
    case APN_SEG_READ_RESP:
        rx_read_resp(core, src_mac, src_host, seg, payload);
        return;
    case APN_SEG_ERROR:
        rx_seg_error(core, src_host, flags, len, in_index, seq, out_index,
                     offset);
        return;
    default:
        rx_drop(core, APN_CNT_RX_DROP_MALFORMED, in_index);
        return;
    }

    reason = rx_check(core, src_mac, src_host, in_index, nonce, flags, seq,
                      offset, want,
                      type == APN_SEG_EVENT ? APN_RX_EVENT :
                      type == APN_SEG_CLOSE ? APN_RX_CLOSE : APN_RX_DATA,
                      type != APN_SEG_CLOSE, &e, &owned);
    if (owned) {
        owner = e->endpoint;
    }
    if (!reason && type == APN_SEG_READ_REQ &&
        (!want || want > APN_READ_MAX_LEN)) {
        reason = APN_CNT_RX_DROP_BOUNDS;
    }
    if (!reason && type == APN_SEG_EVENT &&
        (!ep_valid(core, owner) || !core->regs.ep[owner].evq_size)) {
        /* nowhere to deliver it */
        reason = APN_CNT_RX_DROP_INVALID;
    }
    if (reason) {
        goto refuse;
    }

    if (type == APN_SEG_CLOSE) {
        /* The sender closed its side: tell the aperture's endpoint. */
        count(core, APN_CNT_RX_CLOSES);
        trace_apertnic_rx_close(in_index, src_host, out_index, owner);
        ep_post_flags(core, owner, APN_EV_CLOSE, APN_EV_F_APERTURE, in_index,
                      nonce | (uint64_t)src_host << 32);
        return;
    }
    if (type == APN_SEG_EVENT) {
        uint64_t data = 0;

        if (e->flags & APN_ENTRY_SEQ) {
            e->seq = seq + 1;
            write_back_seq(core, false, in_index, e->seq);
        }
        for (unsigned i = 0; i < len; i++) {
            data |= (uint64_t)payload[i] << (8 * i);
        }
        trace_apertnic_rx_event(in_index, offset, data);
        ep_post(core, owner, APN_EV_EVENT, offset, data);
        return;
    }
    if (type == APN_SEG_READ_REQ) {
        if (!rx_read(core, e, offset, core->read_buf, want)) {
            qemu_log_mask(LOG_GUEST_ERROR,
                          "apertnic: DMA from incoming aperture %u failed\n",
                          in_index);
            reason = APN_CNT_RX_DROP_DMA;
            goto refuse;
        }
    } else if (!rx_write(core, e, offset, payload, len)) {
        qemu_log_mask(LOG_GUEST_ERROR,
                      "apertnic: DMA to incoming aperture %u failed\n",
                      in_index);
        reason = APN_CNT_RX_DROP_DMA;
        goto refuse;
    }
    if (e->flags & APN_ENTRY_SEQ) {
        e->seq = seq + 1;
        write_back_seq(core, false, in_index, e->seq);
    }
    if (type == APN_SEG_READ_REQ) {
        rx_serve_read(core, src_mac, src_host, reply_in, reply_nonce,
                      reply_offset, tag, want);
        return;
    }
    trace_apertnic_rx_write(in_index, offset, len);
    return;

refuse:
    rx_drop(core, reason, in_index);
    if (owned && ep_valid(core, owner)) {
        ep_post(core, owner, APN_EV_RX_DROP, reason,
                in_index | (uint64_t)src_host << 32);
    }
    send_seg_error(core, src_mac, src_host, in_index, out_index, reason,
                   err_flags, tag);
}

/*
 * An IPv4 frame the device does not take: counted as rx_drop_bad_ip, or,
 * with `ring` (the RX ring is on), left for the ring. Returns true when
 * the frame was dealt with here.
 */
static bool rx_bad_ip(ApnCore *core, bool ring, const char *why)
{
    if (ring) {
        return false;
    }
    count(core, APN_CNT_RX_DROP_BAD_IP);
    trace_apertnic_rx_ip_drop(why);
    return true;
}

/*
 * A UDP/IPv4 datagram (connection messages, FIG 7): to the endpoint bound
 * to its destination port, as an event if it is a struct apn_msg, else as
 * a record on the variable-length queue. Returns false for a frame left to
 * the RX ring (only with `ring`): not a well-formed UDP datagram to our
 * address, or to a port no valid endpoint is bound to.
 */
static bool rx_ip(ApnCore *core, const uint8_t *frame, size_t len, bool ring)
{
    const uint8_t *ip = frame + APN_ETH_HLEN;
    const uint8_t *udp = ip + APN_IPV4_HLEN;
    size_t avail = len - APN_ETH_HLEN;
    uint32_t src_ip, dst_ip, sum;
    uint16_t tot, ulen, sport, dport;
    const uint8_t *m;
    int32_t ep;

    if (avail < APN_IPV4_HLEN + APN_UDP_HLEN) {
        return rx_bad_ip(core, ring, "short");
    }
    if (ip[0] != 0x45) {
        return rx_bad_ip(core, ring, "version or options");
    }
    tot = get_be16(ip + 2);
    if (tot < APN_IPV4_HLEN + APN_UDP_HLEN || tot > avail) {
        return rx_bad_ip(core, ring, "length");
    }
    if (get_be16(ip + 6) & 0x3fff) {
        return rx_bad_ip(core, ring, "fragment");
    }
    if (ip[9] != 17) {
        return rx_bad_ip(core, ring, "not udp");
    }
    if (csum_fold(csum_add(0, ip, APN_IPV4_HLEN))) {
        return rx_bad_ip(core, ring, "header checksum");
    }
    src_ip = get_be32(ip + 12);
    dst_ip = get_be32(ip + 16);
    if (!core->regs.ip_addr ||
        (dst_ip != core->regs.ip_addr && dst_ip != 0xffffffffu)) {
        return rx_bad_ip(core, ring, "not our address");
    }
    ulen = get_be16(udp + 4);
    if (ulen < APN_UDP_HLEN || ulen > tot - APN_IPV4_HLEN) {
        return rx_bad_ip(core, ring, "udp length");
    }
    if (get_be16(udp + 6)) {
        sum = csum_add(0, ip + 12, 8);
        sum += 17 + ulen;
        if (csum_fold(csum_add(sum, udp, ulen))) {
            return rx_bad_ip(core, ring, "udp checksum");
        }
    }
    sport = get_be16(udp);
    dport = get_be16(udp + 2);
    ep = port_owner(core, dport);
    if (ep < 0) {
        if (ring) {
            return false;
        }
        count(core, APN_CNT_RX_DROP_NO_PORT);
        trace_apertnic_rx_no_port(dport, src_ip, sport);
        osq_post(core, APN_EV_NO_PORT, 0, dport,
                 (uint64_t)src_ip << 16 | sport, APN_VEC_OSQ);
        return true;
    }

    m = udp + APN_UDP_HLEN;
    ulen -= APN_UDP_HLEN;
    if (ulen >= APN_MSG_LEN && get_be32(m) == APN_MSG_MAGIC &&
        m[4] == APN_WIRE_VERSION && m[5] >= APN_MSG_CONNECT &&
        m[5] <= APN_MSG_ERROR) {
        uint8_t type = m[5];
        uint64_t data = get_be32(m + 16) |
                        (uint64_t)get_be16(m + 8) << 32 |
                        (uint64_t)get_be16(m + 6) << 48;
        uint32_t info = type == APN_MSG_ERROR ? get_be32(m + 20)
                                              : get_be32(m + 12);

        count(core, APN_CNT_RX_MSGS);
        trace_apertnic_rx_msg(dport, type, ep);
        if (core->regs.ep[ep].ctrl & APN_EP_KERNEL_CM) {
            /* The kernel manages this endpoint's connections: it decides. */
            count(core, APN_CNT_OSQ_MSGS);
            trace_apertnic_rx_msg_osq(dport, type, ep);
            osq_post(core, APN_EV_MSG_DATA(type), ep, info, data, APN_VEC_OSQ);
        } else {
            ep_post(core, ep, APN_EV_MSG_DATA(type), info, data);
        }
        return true;
    }
    ep_post_var(core, ep, src_ip, sport, m, ulen);
    return true;
}

/* ---- kernel Ethernet rings (seed 002) ----------------------------------- */

static uint64_t ring_desc_addr(uint32_t lo, uint32_t hi, uint32_t size,
                               uint32_t ptr)
{
    return ((uint64_t)hi << 32 | lo) +
           (uint64_t)(ptr & (size - 1)) * sizeof(struct apn_ring_desc);
}

static void ring_irq(ApnCore *core, uint32_t bit)
{
    if (core->regs.ring_irq & bit) {
        count(core, APN_CNT_IRQS);
        trace_apertnic_irq(APN_VEC_RINGS);
        core->ops->notify(core->opaque, APN_VEC_RINGS);
    }
}

/*
 * A frame for the kernel: DMA it into the buffer of the descriptor at
 * RX_HEAD, write back its length and DONE (ERROR if it did not fit), and
 * advance RX_HEAD. The network is held back while no buffer is posted
 * (apn_core_can_receive), so only our own looped-back frames can find the
 * ring full: they are dropped.
 */
static void ring_rx(ApnCore *core, const uint8_t *frame, size_t len)
{
    ApnCoreRegs *r = &core->regs;
    uint64_t d;
    uint8_t desc[16], wb[4];
    uint16_t flags = APN_DESC_DONE, out_len = 0;
    uint64_t addr;
    uint16_t size;

    if (r->rx_head == r->rx_tail) {
        rx_drop(core, APN_CNT_RX_DROP_RING, 0);
        trace_apertnic_ring_rx_full(len);
        return;
    }
    d = ring_desc_addr(r->rx_ring_lo, r->rx_ring_hi, r->rx_ring_size,
                       r->rx_head);
    if (core->ops->dma_read(core->opaque, d, desc, sizeof(desc))) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: RX descriptor at 0x%"
                      PRIx64 " is not readable; frame dropped\n", d);
        osq_post(core, APN_EV_DEVICE_ERROR, 0, APN_ERR_DMA, d, APN_VEC_OSQ);
        rx_drop(core, APN_CNT_RX_DROP_DMA, 0);
        return;
    }
    addr = get_le64(desc);
    size = get_le16(desc + 8);
    if (len > size) {
        flags |= APN_DESC_ERROR;
        out_len = len > 0xffff ? 0xffff : len;
        rx_drop(core, APN_CNT_RX_DROP_RING, 0);
    } else if (core->ops->dma_write(core->opaque, addr, frame, len)) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: RX buffer at 0x%" PRIx64
                      " is not writable; frame dropped\n", addr);
        flags |= APN_DESC_ERROR;
        rx_drop(core, APN_CNT_RX_DROP_DMA, 0);
    } else {
        out_len = len;
        count(core, APN_CNT_RX_RING_FRAMES);
    }
    put_le16(wb, out_len);
    put_le16(wb + 2, flags);
    if (core->ops->dma_write(core->opaque, d + 8, wb, sizeof(wb))) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: RX descriptor at 0x%"
                      PRIx64 " is not writable\n", d);
    }
    trace_apertnic_ring_rx(r->rx_head, len, flags);
    r->rx_head++;
    ring_irq(core, APN_RING_IRQ_RX);
}

/*
 * The TX_TAIL doorbell: send every posted frame, in order, at once. A
 * frame outside [14, MTU + 14] bytes, or whose buffer cannot be read, is
 * not sent and its descriptor gets ERROR. Frames go to the wire, our own
 * MAC included (no loopback: the kernel does not send to itself).
 */
static void ring_tx(ApnCore *core)
{
    ApnCoreRegs *r = &core->regs;
    uint8_t *f = core->frame;
    unsigned done = 0;

    while (r->tx_ring_size && r->tx_head != r->tx_tail) {
        uint64_t d = ring_desc_addr(r->tx_ring_lo, r->tx_ring_hi,
                                    r->tx_ring_size, r->tx_head);
        uint16_t flags = APN_DESC_DONE;
        uint8_t desc[16], wb[2];
        uint64_t addr;
        uint16_t len;

        if (core->ops->dma_read(core->opaque, d, desc, sizeof(desc))) {
            qemu_log_mask(LOG_GUEST_ERROR, "apertnic: TX descriptor at 0x%"
                          PRIx64 " is not readable; TX ring stalled\n", d);
            osq_post(core, APN_EV_DEVICE_ERROR, 0, APN_ERR_DMA, d,
                     APN_VEC_OSQ);
            break;
        }
        addr = get_le64(desc);
        len = get_le16(desc + 8);
        if (len < APN_ETH_HLEN || len > core->cfg.mtu + APN_ETH_HLEN) {
            qemu_log_mask(LOG_GUEST_ERROR, "apertnic: TX descriptor %u: "
                          "frame of %u bytes is not in [14, %u]\n",
                          r->tx_head, len, core->cfg.mtu + APN_ETH_HLEN);
            flags |= APN_DESC_ERROR;
            count(core, APN_CNT_TX_DROP_RING);
        } else if (core->ops->dma_read(core->opaque, addr, f, len)) {
            qemu_log_mask(LOG_GUEST_ERROR, "apertnic: TX buffer at 0x%"
                          PRIx64 " is not readable; frame dropped\n", addr);
            flags |= APN_DESC_ERROR;
            count(core, APN_CNT_TX_DROP_DMA);
        } else {
            size_t n = len;

            if (n < APN_MIN_ETH_FRAME) {
                memset(f + n, 0, APN_MIN_ETH_FRAME - n);
                n = APN_MIN_ETH_FRAME;
            }
            count(core, APN_CNT_TX_RING_FRAMES);
            transmit(core, f, n, false);
        }
        put_le16(wb, flags);
        if (core->ops->dma_write(core->opaque,
                                 d + offsetof(struct apn_ring_desc, flags),
                                 wb, sizeof(wb))) {
            qemu_log_mask(LOG_GUEST_ERROR, "apertnic: TX descriptor at 0x%"
                          PRIx64 " is not writable\n", d);
        }
        trace_apertnic_ring_tx(r->tx_head, len, flags);
        r->tx_head++;
        done++;
    }
    if (done) {
        ring_irq(core, APN_RING_IRQ_TX);
    }
}

static void rx_ci(ApnCore *core, const uint8_t *frame, size_t len)
{
    const uint8_t *ci = frame + APN_ETH_HLEN;
    size_t ci_avail, pos;
    unsigned nseg;

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
        uint16_t seg_len = get_be16(seg + 2);

        rx_segment(core, frame + 6, get_be16(ci + 2), seg,
                   seg + APN_SEG_HDR_LEN);
        pos += APN_SEG_HDR_LEN + APN_SEG_PAD(seg_len);
    }
}

/*
 * Every received frame, from the network or looped back: count, filter by
 * destination MAC, classify. CI frames (while enabled) go to the apertures;
 * UDP/IPv4 datagrams for a bound port (while enabled) to the endpoint;
 * with the RX ring on, everything else (other EtherTypes, other IPv4,
 * datagrams to unbound ports, multicast) goes to the kernel's ring.
 */
static void rx_frame(ApnCore *core, const uint8_t *frame, size_t len)
{
    static const uint8_t broadcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    bool ring = core->regs.rx_ring_size != 0;
    uint16_t ethertype;

    count(core, APN_CNT_RX_FRAMES);
    core->regs.counters[APN_CNT_RX_BYTES] += len;

    if (len < APN_ETH_HLEN) {
        rx_drop(core, APN_CNT_RX_DROP_MALFORMED, 0);
        return;
    }
    if (memcmp(frame, core->cfg.mac, 6) && memcmp(frame, broadcast, 6)) {
        if (ring && (frame[0] & 1)) {
            ring_rx(core, frame, len);      /* multicast: the kernel's */
            return;
        }
        rx_drop(core, APN_CNT_RX_FILTERED, 0);
        return;
    }
    ethertype = get_be16(frame + 12);
    if (ethertype == APN_ETHERTYPE) {
        if (!core_enabled(core)) {
            rx_drop(core, APN_CNT_RX_DROP_DISABLED, 0);
            return;
        }
        rx_ci(core, frame, len);
        return;
    }
    if (ethertype == 0x0800 && core_enabled(core) &&
        rx_ip(core, frame, len, ring)) {
        return;
    }
    if (ring) {
        ring_rx(core, frame, len);
        return;
    }
    rx_drop(core, ethertype == 0x0800 ? APN_CNT_RX_DROP_DISABLED
                                      : APN_CNT_RX_DROP_NOT_CI, 0);
}

bool apn_core_can_receive(ApnCore *core)
{
    /* Only an enabled RX ring with no buffer posted holds the network back. */
    return !core->regs.rx_ring_size || core->regs.rx_head != core->regs.rx_tail;
}

bool apn_core_receive(ApnCore *core, const uint8_t *frame, size_t len)
{
    if (!apn_core_can_receive(core)) {
        return false;
    }
    rx_frame(core, frame, len);
    return true;
}

/* ---- DMA channel (seeds 000/001) ---------------------------------------- */

typedef struct ApnBudget {
    uint32_t reqs;             /* requests that may still start */
    uint32_t bytes;            /* PUT bytes that may still be sent */
    bool more;                 /* stopped by the budget: work is left */
} ApnBudget;

static uint64_t rq_base(const ApnEndpoint *p)
{
    return (uint64_t)p->rq_hi << 32 | p->rq_lo;
}

static uint64_t cq_base(const ApnEndpoint *p)
{
    return (uint64_t)p->cq_hi << 32 | p->cq_lo;
}

static inline bool dma_on(const ApnEndpoint *p)
{
    return p->rq_size && p->cq_size;
}

static inline ApnDmaSlot *dma_slot(ApnEndpoint *p, uint32_t pos)
{
    return &p->dma[pos & (APN_DMA_INFLIGHT - 1)];
}

static void kick(ApnCore *core)
{
    if (core->bh_pending || !core->ops->schedule) {
        return;
    }
    core->bh_pending = true;
    core->ops->schedule(core->opaque);
}

/*
 * Drop endpoint `ep`'s DMA work without completing it: the reads of its
 * GETs (and, with `loads`, of its loads) are forgotten, so late answers are
 * rx_drop_read; requests started or posted are abandoned.
 */
static void dma_abort(ApnCore *core, uint32_t ep, bool loads)
{
    ApnEndpoint *p = &core->regs.ep[ep];

    for (unsigned i = 0; i < APN_MAX_READS; i++) {
        ApnRead *r = &core->reads[i];

        if (r->ep == ep && (r->kind == APN_READ_GET ||
                            (loads && r->kind == APN_READ_LOAD))) {
            r->kind = APN_READ_FREE;
        }
    }
    memset(p->dma, 0, sizeof(p->dma));
    p->rq_next = p->rq_tail = p->rq_head;
    trace_apertnic_dma_abort(ep);
    read_timer_update(core);
}

/*
 * Retire, in order, the requests at RQ_HEAD that are done: write each
 * completion at CQ_WRPTR (room was reserved when it started), advance and
 * mirror both pointers, wake an armed endpoint.
 */
static void dma_retire(ApnCore *core, uint32_t ep)
{
    ApnEndpoint *p = &core->regs.ep[ep];
    uint8_t ev[16], word[4];
    bool any = false;

    while (p->rq_head != p->rq_next) {
        ApnDmaSlot *s = dma_slot(p, p->rq_head);

        if (s->state != APN_DMA_DONE ||
            p->cq_wrptr - p->cq_rdptr >= p->cq_size) {
            break;
        }
        encode_event(ev, s->opcode == APN_REQ_GET ? APN_EV_GET_DONE
                                                  : APN_EV_PUT_DONE,
                     ep, s->status, s->cookie | (uint64_t)s->bytes << 32);
        if (core->ops->dma_write(core->opaque, cq_base(p) +
                                 sizeof(struct apn_queue_ctrl) +
                                 (uint64_t)(p->cq_wrptr & (p->cq_size - 1)) *
                                 sizeof(struct apn_event), ev, sizeof(ev))) {
            qemu_log_mask(LOG_GUEST_ERROR, "apertnic: completion queue of "
                          "endpoint %u at 0x%" PRIx64 " is not writable; "
                          "completion lost\n", ep, cq_base(p));
        } else {
            p->cq_wrptr++;
            put_le32(word, p->cq_wrptr);
            core->ops->dma_write(core->opaque, cq_base(p) +
                                 offsetof(struct apn_queue_ctrl, wrptr),
                                 word, 4);
        }
        count(core, APN_CNT_DMA_REQS);
        if (s->status) {
            count(core, APN_CNT_DMA_ERRORS);
        }
        trace_apertnic_dma_done(ep, p->rq_head, s->status, s->bytes);
        s->state = APN_DMA_FREE;
        p->rq_head++;
        put_le32(word, p->rq_head);
        core->ops->dma_write(core->opaque, rq_base(p) +
                             offsetof(struct apn_queue_ctrl, rdptr), word, 4);
        any = true;
    }
    if (any) {
        ep_wake(core, ep);
    }
}

static void dma_finish(ApnDmaSlot *s, uint32_t status, uint32_t bytes)
{
    s->state = APN_DMA_DONE;
    s->status = status;
    s->bytes = bytes;
    s->read = -1;
}

/* A GET's read is over (read_finish): complete and retire what can be. */
static void dma_get_done(ApnCore *core, uint32_t ep, uint32_t pos,
                         uint32_t status, uint32_t bytes)
{
    ApnEndpoint *p;
    ApnDmaSlot *s;

    if (ep >= core->cfg.num_endpoints) {
        return;
    }
    p = &core->regs.ep[ep];
    s = dma_slot(p, pos);
    if (pos - p->rq_head >= p->rq_next - p->rq_head ||
        s->state != APN_DMA_BUSY || s->opcode != APN_REQ_GET) {
        return;     /* abandoned meanwhile */
    }
    dma_finish(s, status, bytes);
    dma_retire(core, ep);
    if (p->rq_next != p->rq_tail) {
        kick(core);         /* room for one more in flight */
    }
}

/*
 * Both apertures of a request: VALID data apertures of `ep`, the ranges
 * inside their extents. Returns 0 or the status (a counter id).
 */
static uint32_t dma_check(ApnCore *core, uint32_t ep, const ApnDmaSlot *s,
                          ApnCachedEntry *oe, ApnCachedEntry *le)
{
    if (!own_data_entry(core, true, s->out_index, ep, oe)) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: DMA request "
                      "names outgoing aperture %u, not its own valid data "
                      "aperture\n", ep, s->out_index);
        return APN_CNT_TX_DROP_INVALID;
    }
    if (!own_data_entry(core, false, s->in_index, ep, le)) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: DMA request "
                      "names incoming aperture %u, not its own valid data "
                      "aperture\n", ep, s->in_index);
        return APN_CNT_TX_DROP_INVALID;
    }
    if ((uint64_t)s->remote_offset + s->len > oe->size ||
        (uint64_t)s->local_offset + s->len > le->size) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: DMA request "
                      "of 0x%x bytes is past an aperture (remote 0x%x of "
                      "0x%x, local 0x%x of 0x%x)\n", ep, s->len,
                      s->remote_offset, oe->size, s->local_offset, le->size);
        return APN_CNT_TX_DROP_BOUNDS;
    }
    return 0;
}

/*
 * Send more of a PUT: segments of at most one MTU read from the local
 * aperture's memory, through the outgoing aperture (sequence numbers as for
 * stores), packed like stores. Each segment re-checks the apertures, so an
 * aperture torn down part way stops the PUT. Returns true when it is done
 * (sent, or failed), false when the byte budget ran out.
 */
static bool dma_put_continue(ApnCore *core, uint32_t ep, ApnDmaSlot *s,
                             ApnBudget *b)
{
    ApnCachedEntry oe, le;
    uint8_t mac[6], flags;
    uint32_t status, chunk, seq;
    bool routed;

    /* Stores issued before the doorbell leave first. */
    burst_close(core);
    while (s->progress < s->len) {
        if (!b->bytes) {
            return false;
        }
        chunk = min_u32(s->len - s->progress, max_burst(core));
        status = dma_check(core, ep, s, &oe, &le);
        if (!status && !core_enabled(core)) {
            status = APN_CNT_TX_DROP_DISABLED;
        }
        if (!status) {
            host_mac(core, oe.dest_host, mac, &routed);
            if (!routed) {
                qemu_log_mask(LOG_GUEST_ERROR, "apertnic: outgoing aperture "
                              "%u names host %u, which has no route; PUT "
                              "stopped\n", s->out_index, oe.dest_host);
                status = APN_CNT_TX_DROP_NO_ROUTE;
            }
        }
        if (!status && !rx_read(core, &le, s->local_offset + s->progress,
                                core->dma_buf, chunk)) {
            qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: DMA from "
                          "incoming aperture %u failed; PUT stopped\n", ep,
                          s->in_index);
            status = APN_CNT_TX_DROP_DMA;
        }
        if (status) {
            count(core, status);
            frame_send(core);
            dma_finish(s, status, s->progress);
            return true;
        }
        seq = 0;
        flags = 0;
        if (oe.flags & APN_ENTRY_SEQ) {
            seq = next_seq(core, s->out_index, oe.seq);
            flags |= APN_SEG_F_SEQ;
        }
        pack_segment(core, oe.dest_host, mac, APN_SEG_WRITE, flags,
                     oe.dest_in_index, oe.nonce, seq,
                     s->remote_offset + s->progress, s->out_index,
                     core->dma_buf, chunk);
        s->progress += chunk;
        b->bytes -= min_u32(chunk, b->bytes);
    }
    /* The PUT is complete when its data has left. */
    frame_send(core);
    dma_finish(s, 0, s->len);
    return true;
}

/* Give a started GET its read; false if all APN_MAX_READS are in use. */
static bool dma_get_begin(ApnCore *core, uint32_t ep, uint32_t pos)
{
    ApnDmaSlot *s = dma_slot(&core->regs.ep[ep], pos);
    ApnRead *r = read_alloc(core);

    if (!r) {
        core->read_waiters = true;
        trace_apertnic_dma_wait(ep, pos);
        return false;
    }
    r->kind = APN_READ_GET;
    r->ep = ep;
    r->out_index = s->out_index;
    r->in_index = s->in_index;
    r->remote_offset = s->remote_offset;
    r->land_offset = s->local_offset;
    r->len = s->len;
    r->rq_pos = pos;
    s->read = r - core->reads;
    read_req_send(core, r);     /* may finish it at once */
    return true;
}

/*
 * Peek at the request at rq_next and start it: a bad one is done at once
 * with its status; a PUT is sent by dma_pump; a GET asks for its data.
 */
static void dma_start(ApnCore *core, uint32_t ep)
{
    ApnEndpoint *p = &core->regs.ep[ep];
    uint32_t pos = p->rq_next;
    ApnDmaSlot *s = dma_slot(p, pos);
    uint64_t addr = rq_base(p) + sizeof(struct apn_queue_ctrl) +
                    (uint64_t)(pos & (p->rq_size - 1)) *
                    sizeof(struct apn_dma_req);
    uint8_t raw[sizeof(struct apn_dma_req)];
    ApnCachedEntry oe, le;
    uint32_t status;

    memset(s, 0, sizeof(*s));
    s->state = APN_DMA_BUSY;
    s->read = -1;
    p->rq_next++;
    if (core->ops->dma_read(core->opaque, addr, raw, sizeof(raw))) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: request at "
                      "0x%" PRIx64 " is not readable\n", ep, addr);
        count(core, APN_CNT_TX_DROP_DMA);
        dma_finish(s, APN_CNT_TX_DROP_DMA, 0);
        return;
    }
    s->opcode = raw[offsetof(struct apn_dma_req, opcode)];
    s->out_index = get_le32(raw + offsetof(struct apn_dma_req, out_index));
    s->in_index = get_le32(raw + offsetof(struct apn_dma_req,
                                          local_in_index));
    s->len = get_le32(raw + offsetof(struct apn_dma_req, len));
    s->remote_offset = get_le32(raw + offsetof(struct apn_dma_req,
                                               remote_offset));
    s->local_offset = get_le32(raw + offsetof(struct apn_dma_req,
                                              local_offset));
    s->cookie = get_le32(raw + offsetof(struct apn_dma_req, cookie));
    trace_apertnic_dma_start(ep, pos, s->opcode, s->len, s->cookie);

    if ((s->opcode != APN_REQ_PUT && s->opcode != APN_REQ_GET) ||
        raw[offsetof(struct apn_dma_req, flags)] || s->len > APN_DMA_MAX_LEN) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: request %u "
                      "(opcode %u, flags 0x%x, len 0x%x) is malformed\n", ep,
                      pos, s->opcode, raw[1], s->len);
        status = APN_CNT_DMA_BAD_REQS;
    } else if (!core_enabled(core)) {
        status = APN_CNT_TX_DROP_DISABLED;
    } else {
        status = dma_check(core, ep, s, &oe, &le);
    }
    if (status) {
        count(core, status);
        dma_finish(s, status, 0);
        return;
    }
    if (!s->len) {
        dma_finish(s, 0, 0);
        return;
    }
    if (s->opcode == APN_REQ_GET) {
        dma_get_begin(core, ep, pos);
    }
}

/*
 * Work endpoint `ep`'s channel within budget `b`: retire what is done,
 * advance the newest request (a PUT being sent, a GET waiting for a read),
 * and start requests while there are some posted, fewer than
 * APN_DMA_INFLIGHT in flight, and room in the completion queue for every
 * started request's completion.
 */
static void dma_pump(ApnCore *core, uint32_t ep, ApnBudget *b)
{
    ApnEndpoint *p = &core->regs.ep[ep];

    if (!ep_valid(core, ep) || !dma_on(p)) {
        return;
    }
    /* GETs whose chunk has landed: ask for the next */
    for (unsigned i = 0; i < APN_MAX_READS; i++) {
        ApnRead *r = &core->reads[i];

        if (r->kind == APN_READ_GET && r->ep == ep && r->want_next) {
            read_req_send(core, r);
        }
    }
    for (;;) {
        dma_retire(core, ep);
        if (p->rq_next != p->rq_head) {
            uint32_t last = p->rq_next - 1;
            ApnDmaSlot *s = dma_slot(p, last);

            if (s->state == APN_DMA_BUSY && s->opcode == APN_REQ_PUT) {
                if (!dma_put_continue(core, ep, s, b)) {
                    b->more = true;
                    return;
                }
                continue;
            }
            if (s->state == APN_DMA_BUSY && s->opcode == APN_REQ_GET &&
                s->read < 0) {
                if (!dma_get_begin(core, ep, last)) {
                    return;     /* read_finish will kick */
                }
                continue;
            }
        }
        if (p->rq_next == p->rq_tail ||
            p->rq_next - p->rq_head >= APN_DMA_INFLIGHT ||
            (p->cq_wrptr - p->cq_rdptr) + (p->rq_next - p->rq_head) >=
            p->cq_size) {
            return;
        }
        if (!b->reqs) {
            b->more = true;
            return;
        }
        b->reqs--;
        dma_start(core, ep);
    }
}

/* A doorbell or CQ_RDPTR write: work the channel now, the rest in the bh. */
static void dma_pump_now(ApnCore *core, uint32_t ep)
{
    ApnBudget b = { APN_DMA_BUDGET_REQS, APN_DMA_BUDGET_BYTES, false };

    dma_pump(core, ep, &b);
    if (b.more) {
        kick(core);
    }
}

void apn_core_bh(ApnCore *core)
{
    ApnBudget b = { APN_DMA_BUDGET_REQS, APN_DMA_BUDGET_BYTES, false };
    uint32_t n = core->cfg.num_endpoints;

    core->bh_pending = false;
    core->read_waiters = false;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t ep = (core->bh_next_ep + k) % n;

        dma_pump(core, ep, &b);
        if (b.more) {
            core->bh_next_ep = ep;  /* it goes first next time */
            kick(core);
            return;
        }
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

/* ---- connection messages and commands ------------------------------------------ */

/*
 * Send a connection message (struct apn_msg in a UDP/IPv4 datagram) from
 * endpoint `ep`'s port to <dest_host:dest_port>. Returns an APN_CMD_*.
 */
static uint32_t msg_send(ApnCore *core, uint32_t ep, const ApnCmdRegs *c)
{
    ApnCoreRegs *r = &core->regs;
    uint16_t sport = r->ep[ep].port;
    uint8_t *f = core->frame;
    uint8_t *ip = f + APN_ETH_HLEN;
    uint8_t *udp = ip + APN_IPV4_HLEN;
    uint8_t *m = udp + APN_UDP_HLEN;
    uint16_t ulen = APN_UDP_HLEN + APN_MSG_LEN;
    uint8_t mac[6];
    uint32_t dst_ip, sum;
    uint16_t csum;
    bool routed;

    if (!sport) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u has no port "
                      "to send a message from\n", ep);
        return APN_CMD_EINVAL;
    }
    if (c->msg_type < APN_MSG_CONNECT || c->msg_type > APN_MSG_ERROR ||
        !c->msg_dest_port || c->msg_dest_port > 0xffff) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: message type "
                      "%u to port %u is not valid\n", ep, c->msg_type,
                      c->msg_dest_port);
        return APN_CMD_EINVAL;
    }
    if (!core_enabled(core)) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: message while "
                      "CTRL.ENABLE is clear\n", ep);
        return APN_CMD_EDISABLED;
    }
    dst_ip = c->msg_dest_host < APN_HOST_MAC_ENTRIES ?
             r->host_ip[c->msg_dest_host] : 0;
    host_mac(core, c->msg_dest_host < APN_HOST_MAC_ENTRIES ?
             c->msg_dest_host : APN_HOST_MAC_ENTRIES, mac, &routed);
    if (!dst_ip || !routed || !r->ip_addr) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: no IPv4 "
                      "route to host %u\n", ep, c->msg_dest_host);
        return APN_CMD_ENOROUTE;
    }

    /* Stores issued before the message leave before it. */
    tx_flush(core);

    memcpy(f, mac, 6);
    memcpy(f + 6, core->cfg.mac, 6);
    put_be16(f + 12, 0x0800);

    ip[0] = 0x45;
    ip[1] = 0;
    put_be16(ip + 2, APN_IPV4_HLEN + ulen);
    put_be16(ip + 4, 0);            /* id: atomic datagram (RFC 6864) */
    put_be16(ip + 6, 0x4000);       /* DF */
    ip[8] = 64;
    ip[9] = 17;
    put_be16(ip + 10, 0);
    put_be32(ip + 12, r->ip_addr);
    put_be32(ip + 16, dst_ip);
    put_be16(ip + 10, csum_fold(csum_add(0, ip, APN_IPV4_HLEN)));

    put_be16(udp, sport);
    put_be16(udp + 2, (uint16_t)c->msg_dest_port);
    put_be16(udp + 4, ulen);
    put_be16(udp + 6, 0);

    put_be32(m, APN_MSG_MAGIC);
    m[4] = APN_WIRE_VERSION;
    m[5] = (uint8_t)c->msg_type;
    put_be16(m + 6, sport);
    put_be16(m + 8, (uint16_t)r->host_id);
    put_be16(m + 10, 0);
    put_be32(m + 12, c->msg_in_index);
    put_be32(m + 16, c->msg_nonce);
    put_be32(m + 20, c->msg_info);

    sum = csum_add(0, ip + 12, 8) + 17 + ulen;
    csum = csum_fold(csum_add(sum, udp, ulen));
    put_be16(udp + 6, csum ? csum : 0xffff);

    count(core, APN_CNT_TX_MSGS);
    trace_apertnic_tx_msg(ep, c->msg_dest_host, c->msg_dest_port,
                          c->msg_type);
    transmit(core, f, APN_ETH_HLEN + APN_IPV4_HLEN + ulen,
             c->msg_dest_host == core->regs.host_id);
    return APN_CMD_OK;
}

/*
 * Read table entry `index` from guest memory (not the cache: the command
 * changes memory, which is the truth) and check that `ep` owns it.
 */
static uint32_t cmd_entry(ApnCore *core, bool out, uint32_t index,
                          uint32_t ep, uint8_t raw[APN_TABLE_ENTRY_SIZE],
                          uint64_t *addr)
{
    uint32_t n = out ? core->regs.out_table_count : core->regs.in_table_count;

    if (index >= n) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: %s aperture "
                      "%u is outside the table\n", ep,
                      out ? "outgoing" : "incoming", index);
        return APN_CMD_ENOENT;
    }
    *addr = (out ? out_table_base(core) : in_table_base(core)) +
            (uint64_t)index * APN_TABLE_ENTRY_SIZE;
    if (core->ops->dma_read(core->opaque, *addr, raw, APN_TABLE_ENTRY_SIZE)) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: cannot read %s table "
                      "entry %u at 0x%" PRIx64 "\n",
                      out ? "outgoing" : "incoming", index, *addr);
        return APN_CMD_EIO;
    }
    if (!(get_le32(raw) & APN_ENTRY_VALID) ||
        get_le16(raw + offsetof(struct apn_out_entry, endpoint)) != ep) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: %s aperture "
                      "%u is not valid or not its own\n", ep,
                      out ? "outgoing" : "incoming", index);
        return APN_CMD_ENOENT;
    }
    return APN_CMD_OK;
}

/* OUT_COMMIT: the user-programmable fields of an outgoing entry (seed 004). */
static uint32_t cmd_out_commit(ApnCore *core, uint32_t ep, const ApnCmdRegs *c)
{
    uint8_t raw[APN_TABLE_ENTRY_SIZE], f[10];
    uint64_t addr;
    uint32_t st = cmd_entry(core, true, c->out_index, ep, raw, &addr);

    if (st) {
        return st;
    }
    if (c->out_dest_host > 0xffff) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: host 0x%x "
                      "does not fit 16 bits\n", ep, c->out_dest_host);
        return APN_CMD_EINVAL;
    }
    /* Stores gathered under the old destination go there. */
    if (core->burst.active && core->burst.out_index == c->out_index) {
        burst_close(core);
    }
    put_le16(f, (uint16_t)c->out_dest_host);
    put_le32(f + 2, c->out_dest_in_index);
    put_le32(f + 6, c->out_nonce);
    if (core->ops->dma_write(core->opaque,
                             addr + offsetof(struct apn_out_entry, dest_host),
                             f, sizeof(f))) {
        return APN_CMD_EIO;
    }
    cache_invalidate(core, APN_INVAL_OUT | c->out_index);
    return APN_CMD_OK;
}

/* IN_COMMIT: nonce and narrowing of an incoming entry. */
static uint32_t cmd_in_commit(ApnCore *core, uint32_t ep, const ApnCmdRegs *c)
{
    uint8_t raw[APN_TABLE_ENTRY_SIZE], w[8];
    uint64_t addr;
    uint32_t size;
    uint32_t st = cmd_entry(core, false, c->in_index, ep, raw, &addr);

    if (st) {
        return st;
    }
    size = get_le32(raw + offsetof(struct apn_in_entry, size));
    if (c->in_narrow_len ?
        (c->in_narrow_start >= size ||
         c->in_narrow_len > size - c->in_narrow_start) :
        c->in_narrow_start != 0) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: narrowing "
                      "[0x%x, +0x%x) is not inside incoming aperture %u "
                      "(0x%x bytes)\n", ep, c->in_narrow_start,
                      c->in_narrow_len, c->in_index, size);
        return APN_CMD_EINVAL;
    }
    put_le32(w, c->in_nonce);
    if (core->ops->dma_write(core->opaque,
                             addr + offsetof(struct apn_in_entry, nonce),
                             w, 4)) {
        return APN_CMD_EIO;
    }
    put_le32(w, c->in_narrow_start);
    put_le32(w + 4, c->in_narrow_len);
    if (core->ops->dma_write(core->opaque,
                             addr + offsetof(struct apn_in_entry,
                                             narrow_start), w, 8)) {
        return APN_CMD_EIO;
    }
    cache_invalidate(core, c->in_index);
    return APN_CMD_OK;
}

/*
 * Run a command for endpoint `ep`: from its user page (`priv` false: only a
 * valid, trusted endpoint may) or from the privileged block.
 */
static void cmd_run(ApnCore *core, uint32_t ep, ApnCmdRegs *c, bool priv,
                    uint32_t ureg)
{
    const char *name = ureg == APN_UREG_OUT_COMMIT ? "out_commit" :
                       ureg == APN_UREG_IN_COMMIT ? "in_commit" : "msg_send";
    uint32_t ctrl = core->regs.ep[ep].ctrl;
    uint32_t st;

    if (!priv && (ctrl & (APN_EP_VALID | APN_EP_TRUSTED)) !=
        (APN_EP_VALID | APN_EP_TRUSTED)) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u is not valid "
                      "and trusted: %s refused\n", ep, name);
        count(core, APN_CNT_CMD_REFUSED);
        st = APN_CMD_EPERM;
    } else if (ureg == APN_UREG_OUT_COMMIT) {
        st = cmd_out_commit(core, ep, c);
    } else if (ureg == APN_UREG_IN_COMMIT) {
        st = cmd_in_commit(core, ep, c);
    } else {
        st = msg_send(core, ep, c);
    }
    c->status = st;
    trace_apertnic_cmd(ep, priv, name, st);
}

/* Command registers, at the same offsets in a user page and the block. */
static uint32_t *cmd_reg(ApnCmdRegs *c, uint32_t off)
{
    switch (off) {
    case APN_UREG_CMD_STATUS:        return &c->status;
    case APN_UREG_OUT_INDEX:         return &c->out_index;
    case APN_UREG_OUT_DEST_HOST:     return &c->out_dest_host;
    case APN_UREG_OUT_DEST_IN_INDEX: return &c->out_dest_in_index;
    case APN_UREG_OUT_NONCE:         return &c->out_nonce;
    case APN_UREG_IN_INDEX:          return &c->in_index;
    case APN_UREG_IN_NONCE:          return &c->in_nonce;
    case APN_UREG_IN_NARROW_START:   return &c->in_narrow_start;
    case APN_UREG_IN_NARROW_LEN:     return &c->in_narrow_len;
    case APN_UREG_MSG_DEST_HOST:     return &c->msg_dest_host;
    case APN_UREG_MSG_DEST_PORT:     return &c->msg_dest_port;
    case APN_UREG_MSG_TYPE:          return &c->msg_type;
    case APN_UREG_MSG_IN_INDEX:      return &c->msg_in_index;
    case APN_UREG_MSG_NONCE:         return &c->msg_nonce;
    case APN_UREG_MSG_INFO:          return &c->msg_info;
    }
    return NULL;
}

static bool is_cmd_trigger(uint32_t off)
{
    return off == APN_UREG_OUT_COMMIT || off == APN_UREG_IN_COMMIT ||
           off == APN_UREG_MSG_SEND;
}

static bool cmd_reg_read(ApnCmdRegs *c, uint32_t off, uint32_t *val)
{
    uint32_t *reg = cmd_reg(c, off);

    if (reg) {
        *val = *reg;
        return true;
    }
    if (is_cmd_trigger(off) || off == APN_UREG_OUT_CLOSE) {
        *val = 0;       /* write-only */
        return true;
    }
    return false;
}

/* False for an offset that is not a writable command register. */
static bool cmd_reg_write(ApnCore *core, uint32_t ep, ApnCmdRegs *c,
                          bool priv, uint32_t off, uint32_t val)
{
    uint32_t *reg = cmd_reg(c, off);

    if (is_cmd_trigger(off)) {
        cmd_run(core, ep, c, priv, off);
        return true;
    }
    if (off == APN_UREG_OUT_CLOSE) {
        /* Any trust level: the aperture's destination is fixed already. */
        if (!priv && !ep_valid(core, ep)) {
            qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u is not "
                          "valid: out_close refused\n", ep);
            c->status = APN_CMD_EPERM;
        } else {
            c->status = out_close(core, val, ep);
        }
        trace_apertnic_cmd(ep, priv, "out_close", c->status);
        return true;
    }
    if (!reg || off == APN_UREG_CMD_STATUS) {
        return false;
    }
    *reg = val;
    return true;
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

/* Per-endpoint OS registers (APN_EP_REG). */
static bool ep_reg_addr(ApnCore *core, uint32_t addr, uint32_t *ep,
                        uint32_t *r)
{
    if (addr < APN_EP_REGS_BASE ||
        addr >= APN_EP_REG(core->cfg.num_endpoints, 0)) {
        return false;
    }
    *ep = (addr - APN_EP_REGS_BASE) / APN_EP_REGS_SIZE;
    *r = (addr - APN_EP_REGS_BASE) % APN_EP_REGS_SIZE;
    return true;
}

static uint32_t ep_reg_read(ApnCore *core, uint32_t ep, uint32_t r)
{
    ApnEndpoint *p = &core->regs.ep[ep];

    switch (r) {
    case APN_EPR_CTRL:      return p->ctrl;
    case APN_EPR_PORT:      return p->port;
    case APN_EPR_EVQ_LO:    return p->evq_lo;
    case APN_EPR_EVQ_HI:    return p->evq_hi;
    case APN_EPR_EVQ_SIZE:  return p->evq_size;
    case APN_EPR_VARQ_LO:   return p->varq_lo;
    case APN_EPR_VARQ_HI:   return p->varq_hi;
    case APN_EPR_VARQ_SIZE: return p->varq_size;
    case APN_EPR_RQ_LO:     return p->rq_lo;
    case APN_EPR_RQ_HI:     return p->rq_hi;
    case APN_EPR_RQ_SIZE:   return p->rq_size;
    case APN_EPR_CQ_LO:     return p->cq_lo;
    case APN_EPR_CQ_HI:     return p->cq_hi;
    case APN_EPR_CQ_SIZE:   return p->cq_size;
    }
    qemu_log_mask(LOG_GUEST_ERROR, "apertnic: read of reserved endpoint "
                  "register 0x%x of endpoint %u\n", r, ep);
    return 0;
}

static void ep_ctrl_write(ApnCore *core, uint32_t ep, uint32_t val)
{
    ApnEndpoint *p = &core->regs.ep[ep];
    bool was = p->ctrl & APN_EP_VALID;

    if (val & ~APN_EP_CTRL_BITS) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: CTRL bits "
                      "0x%x are reserved\n", ep, val & ~APN_EP_CTRL_BITS);
    }
    p->ctrl = val & APN_EP_CTRL_BITS;
    if (was && !(p->ctrl & APN_EP_VALID)) {
        /* Torn down: its memory may go; no more DMA for it. */
        dma_abort(core, ep, true);
    }
    if (p->port && was && !(p->ctrl & APN_EP_VALID) &&
        core->port_map[p->port] == ep + 1) {
        core->port_map[p->port] = 0;
    }
    if (p->port && !was && (p->ctrl & APN_EP_VALID)) {
        if (port_owner(core, p->port) >= 0) {
            qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: port %u "
                          "is bound to endpoint %d; binding cleared\n", ep,
                          p->port, port_owner(core, p->port));
            p->port = 0;
        } else {
            core->port_map[p->port] = ep + 1;
        }
    }
    trace_apertnic_ep_ctrl(ep, p->ctrl);
}

static void ep_port_write(ApnCore *core, uint32_t ep, uint32_t val)
{
    ApnEndpoint *p = &core->regs.ep[ep];
    int32_t owner = val <= 0xffff ? port_owner(core, val) : -1;

    if (val > 0xffff || (owner >= 0 && owner != (int32_t)ep)) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: port %u is "
                      "not a port or is bound to another endpoint; "
                      "ignored\n", ep, val);
        return;
    }
    if (p->port && core->port_map[p->port] == ep + 1) {
        core->port_map[p->port] = 0;
    }
    p->port = val;
    if (val && (p->ctrl & APN_EP_VALID)) {
        core->port_map[val] = ep + 1;
    }
    trace_apertnic_ep_port(ep, val);
}

static void ep_reg_write(ApnCore *core, uint32_t ep, uint32_t r, uint32_t val)
{
    ApnEndpoint *p = &core->regs.ep[ep];

    switch (r) {
    case APN_EPR_CTRL:
        ep_ctrl_write(core, ep, val);
        return;
    case APN_EPR_PORT:
        ep_port_write(core, ep, val);
        return;
    case APN_EPR_EVQ_LO:
    case APN_EPR_VARQ_LO:
    case APN_EPR_RQ_LO:
    case APN_EPR_CQ_LO:
        if (val & 63) {
            qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: queue "
                          "address 0x%x is not 64-byte aligned; ignored\n",
                          ep, val);
            return;
        }
        *(r == APN_EPR_EVQ_LO ? &p->evq_lo :
          r == APN_EPR_VARQ_LO ? &p->varq_lo :
          r == APN_EPR_RQ_LO ? &p->rq_lo : &p->cq_lo) = val;
        return;
    case APN_EPR_RQ_HI:
        p->rq_hi = val;
        return;
    case APN_EPR_CQ_HI:
        p->cq_hi = val;
        return;
    case APN_EPR_RQ_SIZE:
    case APN_EPR_CQ_SIZE: {
        uint32_t max = r == APN_EPR_RQ_SIZE ? 4096 : 1u << 16;

        if (val && (!is_pow2(val) || val < 2 || val > max)) {
            qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: %s queue "
                          "size %u is not a power of two in [2, %u]; "
                          "ignored\n", ep,
                          r == APN_EPR_RQ_SIZE ? "request" : "completion",
                          val, max);
            return;
        }
        /* (Re)programming either queue abandons the channel's work. */
        dma_abort(core, ep, false);
        *(r == APN_EPR_RQ_SIZE ? &p->rq_size : &p->cq_size) = val;
        p->rq_head = p->rq_next = p->rq_tail = 0;
        p->cq_wrptr = p->cq_rdptr = 0;
        trace_apertnic_dma_queue(ep, r == APN_EPR_CQ_SIZE,
                                 r == APN_EPR_RQ_SIZE ? rq_base(p) : cq_base(p),
                                 val);
        return;
    }
    case APN_EPR_EVQ_HI:
        p->evq_hi = val;
        return;
    case APN_EPR_VARQ_HI:
        p->varq_hi = val;
        return;
    case APN_EPR_EVQ_SIZE:
        if (val && (!is_pow2(val) || val < 2 || val > (1u << 16))) {
            qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: event "
                          "queue size %u is not a power of two in [2, 2^16]; "
                          "ignored\n", ep, val);
            return;
        }
        /* (Re)programming a queue starts it empty. */
        p->evq_size = val;
        p->evq_wrptr = p->evq_rdptr = 0;
        p->evq_lost = 0;
        p->evq_overflowing = false;
        trace_apertnic_ep_queue(ep, false, evq_base(p), val);
        return;
    case APN_EPR_VARQ_SIZE:
        if (val && (!is_pow2(val) || val < 64 || val > (1u << 24))) {
            qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: "
                          "variable-length queue size %u is not a power of "
                          "two in [64, 2^24]; ignored\n", ep, val);
            return;
        }
        p->varq_size = val;
        p->varq_wrptr = p->varq_rdptr = 0;
        p->varq_lost = 0;
        p->varq_overflowing = false;
        trace_apertnic_ep_queue(ep, true, varq_base(p), val);
        return;
    }
    qemu_log_mask(LOG_GUEST_ERROR, "apertnic: write of 0x%x to reserved "
                  "endpoint register 0x%x of endpoint %u ignored\n", val, r,
                  ep);
}

/* User page `ep` (APN_UREG_*): its queue pointers, ARM and commands. */
static uint32_t user_read(ApnCore *core, uint32_t ep, uint32_t off)
{
    ApnEndpoint *p = &core->regs.ep[ep];
    uint32_t val;

    switch (off) {
    case APN_UREG_FENCE:
    case APN_UREG_ARM:
        return 0;
    case APN_UREG_EVQ_RDPTR:  return p->evq_rdptr;
    case APN_UREG_EVQ_WRPTR:  return p->evq_wrptr;
    case APN_UREG_VARQ_RDPTR: return p->varq_rdptr;
    case APN_UREG_VARQ_WRPTR: return p->varq_wrptr;
    case APN_UREG_RQ_TAIL:    return p->rq_tail;
    case APN_UREG_RQ_HEAD:    return p->rq_head;
    case APN_UREG_CQ_RDPTR:   return p->cq_rdptr;
    case APN_UREG_CQ_WRPTR:   return p->cq_wrptr;
    case APN_UREG_READ_LANDING: return p->read_landing;
    }
    if (cmd_reg_read(&p->cmd, off, &val)) {
        return val;
    }
    qemu_log_mask(LOG_GUEST_ERROR, "apertnic: read of unknown user page "
                  "register 0x%x of endpoint %u\n", off, ep);
    return 0;
}

static void user_write(ApnCore *core, uint32_t ep, uint32_t off, uint32_t val)
{
    ApnEndpoint *p = &core->regs.ep[ep];

    switch (off) {
    case APN_UREG_FENCE:
        tx_flush(core);
        return;
    case APN_UREG_EVQ_RDPTR:
        if (val - p->evq_rdptr > p->evq_wrptr - p->evq_rdptr) {
            qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: event "
                          "read pointer %u is outside [%u, %u]; ignored\n",
                          ep, val, p->evq_rdptr, p->evq_wrptr);
            return;
        }
        if (val != p->evq_rdptr) {
            p->evq_overflowing = false;     /* space freed: episode over */
        }
        p->evq_rdptr = val;
        return;
    case APN_UREG_VARQ_RDPTR:
        if (val - p->varq_rdptr > p->varq_wrptr - p->varq_rdptr ||
            (val & 7)) {
            qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: byte "
                          "read pointer %u is outside [%u, %u] or not a "
                          "multiple of 8; ignored\n", ep, val,
                          p->varq_rdptr, p->varq_wrptr);
            return;
        }
        if (val != p->varq_rdptr) {
            p->varq_overflowing = false;
        }
        p->varq_rdptr = val;
        return;
    case APN_UREG_ARM:
        ep_arm(core, ep, val);
        return;
    case APN_UREG_RQ_TAIL:
        if (!ep_valid(core, ep) || !dma_on(p)) {
            qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: RQ_TAIL "
                          "written with no valid endpoint or no request and "
                          "completion queues; ignored\n", ep);
            return;
        }
        if (val - p->rq_head > p->rq_size ||
            val - p->rq_head < p->rq_next - p->rq_head) {
            qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: RQ_TAIL "
                          "%u is outside [%u, %u]; ignored\n", ep, val,
                          p->rq_next, p->rq_head + p->rq_size);
            return;
        }
        p->rq_tail = val;
        trace_apertnic_dma_doorbell(ep, val);
        dma_pump_now(core, ep);
        return;
    case APN_UREG_CQ_RDPTR:
        if (val - p->cq_rdptr > p->cq_wrptr - p->cq_rdptr) {
            qemu_log_mask(LOG_GUEST_ERROR, "apertnic: endpoint %u: CQ_RDPTR "
                          "%u is outside [%u, %u]; ignored\n", ep, val,
                          p->cq_rdptr, p->cq_wrptr);
            return;
        }
        p->cq_rdptr = val;
        dma_pump_now(core, ep);     /* room for more completions */
        return;
    case APN_UREG_READ_LANDING:
        p->read_landing = val;
        return;
    }
    if (cmd_reg_write(core, ep, &p->cmd, false, off, val)) {
        return;
    }
    qemu_log_mask(LOG_GUEST_ERROR, "apertnic: write of 0x%x to %s user page "
                  "register 0x%x of endpoint %u ignored\n", val,
                  off == APN_UREG_CMD_STATUS || off == APN_UREG_EVQ_WRPTR ||
                  off == APN_UREG_VARQ_WRPTR || off == APN_UREG_RQ_HEAD ||
                  off == APN_UREG_CQ_WRPTR ? "read-only" : "unknown",
                  off, ep);
}

/* The privileged command block: APN_UREG_CMD_* offsets from 0x100. */
static bool cmd_block_addr(uint32_t addr, uint32_t *off)
{
    if (addr < APN_REG_CMD_BLOCK || addr >= APN_REG_CMD_BLOCK + 0x80) {
        return false;
    }
    *off = addr - APN_REG_CMD_BLOCK;
    return true;
}

static uint32_t reg_read32(ApnCore *core, uint32_t addr)
{
    ApnCoreRegs *r = &core->regs;
    uint32_t ep, off, val;

    switch (addr) {
    case APN_REG_MAGIC:          return APN_MAGIC;
    case APN_REG_VERSION:        return APN_SPEC_VERSION;
    case APN_REG_CAPS:           return APN_CAP_CACHE | APN_CAP_GATHER |
                                        APN_CAP_RINGS | APN_CAP_READ |
                                        APN_CAP_DMA;
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
    case APN_REG_OUT_CLOSE:
    case APN_REG_EV_POST_TYPE:
        return 0;
    case APN_REG_EV_POST_EP:      return r->ev_post_ep;
    case APN_REG_EV_POST_INFO:    return r->ev_post_info;
    case APN_REG_EV_POST_DATA_LO: return r->ev_post_data_lo;
    case APN_REG_EV_POST_DATA_HI: return r->ev_post_data_hi;
    case APN_REG_IP_ADDR:        return r->ip_addr;
    case APN_REG_CMD_EP:         return r->cmd_ep;
    case APN_REG_RX_RING_LO:     return r->rx_ring_lo;
    case APN_REG_RX_RING_HI:     return r->rx_ring_hi;
    case APN_REG_RX_RING_SIZE:   return r->rx_ring_size;
    case APN_REG_RX_TAIL:        return r->rx_tail;
    case APN_REG_RX_HEAD:        return r->rx_head;
    case APN_REG_TX_RING_LO:     return r->tx_ring_lo;
    case APN_REG_TX_RING_HI:     return r->tx_ring_hi;
    case APN_REG_TX_RING_SIZE:   return r->tx_ring_size;
    case APN_REG_TX_TAIL:        return r->tx_tail;
    case APN_REG_TX_HEAD:        return r->tx_head;
    case APN_REG_RING_IRQ:       return r->ring_irq;
    }
    if (cmd_block_addr(addr, &off) && cmd_reg_read(&r->cmd, off, &val)) {
        return val;
    }
    if (addr >= APN_REG_HOST_IP_BASE &&
        addr < APN_REG_HOST_IP_BASE + 4 * APN_HOST_MAC_ENTRIES) {
        return r->host_ip[(addr - APN_REG_HOST_IP_BASE) / 4];
    }
    if (ep_reg_addr(core, addr, &ep, &off)) {
        return ep_reg_read(core, ep, off);
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
    if (addr >= APN_USER_PAGES_BASE &&
        addr < APN_USER_PAGE(core->cfg.num_endpoints)) {
        return user_read(core, (addr - APN_USER_PAGES_BASE) /
                         APN_USER_PAGE_SIZE,
                         addr & (APN_USER_PAGE_SIZE - 1));
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
    tx_flush(core);
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

/*
 * APN_REG_EV_POST_TYPE: the OS adds an event to an endpoint's event queue,
 * through the same path (and rules) as the device's own events.
 */
static void ev_post(ApnCore *core, uint32_t val)
{
    ApnCoreRegs *r = &core->regs;
    uint32_t ep = r->ev_post_ep;
    uint8_t type = val & 0xff;
    uint8_t flags = (val >> 8) & 0xff;

    if (val >> 16) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: EV_POST_TYPE bits 0x%x are "
                      "reserved\n", val & ~0xffffu);
    }
    if (!ep_valid(core, ep) || !r->ep[ep].evq_size) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: event post to endpoint %u, "
                      "which is not valid or has no event queue; ignored\n",
                      ep);
        count(core, APN_CNT_CMD_REFUSED);
        trace_apertnic_ev_post(ep, type, flags, r->ev_post_info, false);
        return;
    }
    count(core, APN_CNT_EV_POSTS);
    trace_apertnic_ev_post(ep, type, flags, r->ev_post_info, true);
    ep_post_flags(core, ep, type, flags | APN_EV_F_POSTED, r->ev_post_info,
                  (uint64_t)r->ev_post_data_hi << 32 | r->ev_post_data_lo);
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

/* The network may deliver again (apn_core_can_receive turned true). */
static void rx_ready(ApnCore *core)
{
    if (apn_core_can_receive(core) && core->ops->rx_ready) {
        core->ops->rx_ready(core->opaque);
    }
}

static void ring_size_write(ApnCore *core, bool rx, uint32_t val)
{
    ApnCoreRegs *r = &core->regs;

    if (val && (!is_pow2(val) || val < 2 || val > 4096)) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: %s ring size %u is not a "
                      "power of two in [2, 4096]; ignored\n",
                      rx ? "RX" : "TX", val);
        return;
    }
    /* (Re)programming a ring starts it empty. */
    if (rx) {
        r->rx_ring_size = val;
        r->rx_head = r->rx_tail = 0;
        trace_apertnic_ring_reg("rx", (uint64_t)r->rx_ring_hi << 32 |
                                r->rx_ring_lo, val);
        rx_ready(core);
    } else {
        r->tx_ring_size = val;
        r->tx_head = r->tx_tail = 0;
        trace_apertnic_ring_reg("tx", (uint64_t)r->tx_ring_hi << 32 |
                                r->tx_ring_lo, val);
    }
}

static void ring_tail_write(ApnCore *core, bool rx, uint32_t val)
{
    ApnCoreRegs *r = &core->regs;
    uint32_t size = rx ? r->rx_ring_size : r->tx_ring_size;
    uint32_t head = rx ? r->rx_head : r->tx_head;

    if (!size || val - head > size) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: %s_TAIL %u: the ring is off "
                      "or the value is outside [%u, %u]; ignored\n",
                      rx ? "RX" : "TX", val, head, head + size);
        return;
    }
    if (rx) {
        r->rx_tail = val;
        rx_ready(core);
    } else {
        r->tx_tail = val;
        ring_tx(core);
    }
}

static void ctrl_write(ApnCore *core, uint32_t val)
{
    if (val & APN_CTRL_RESET) {
        apn_core_reset(core);
        rx_ready(core);
        return;
    }
    if (val & ~APN_CTRL_ENABLE) {
        qemu_log_mask(LOG_GUEST_ERROR, "apertnic: CTRL bits 0x%x are "
                      "reserved\n", val & ~APN_CTRL_ENABLE);
    }
    if (!(val & APN_CTRL_ENABLE)) {
        tx_flush(core);
    }
    core->regs.ctrl = val & APN_CTRL_ENABLE;
    trace_apertnic_ctrl(core->regs.ctrl);
}

static void reg_write32(ApnCore *core, uint32_t addr, uint32_t val)
{
    ApnCoreRegs *r = &core->regs;
    uint32_t ep, off;

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
        tx_flush(core);
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
        tx_flush(core);
        return;
    case APN_REG_OUT_CLOSE:
        out_close(core, val, -1);
        return;
    case APN_REG_EV_POST_EP:
        r->ev_post_ep = val;
        return;
    case APN_REG_EV_POST_INFO:
        r->ev_post_info = val;
        return;
    case APN_REG_EV_POST_DATA_LO:
        r->ev_post_data_lo = val;
        return;
    case APN_REG_EV_POST_DATA_HI:
        r->ev_post_data_hi = val;
        return;
    case APN_REG_EV_POST_TYPE:
        ev_post(core, val);
        return;
    case APN_REG_IP_ADDR:
        r->ip_addr = val;
        trace_apertnic_ip_addr(val);
        return;
    case APN_REG_RX_RING_LO:
    case APN_REG_TX_RING_LO:
        if (val & 63) {
            qemu_log_mask(LOG_GUEST_ERROR, "apertnic: ring address 0x%x is "
                          "not 64-byte aligned; ignored\n", val);
            return;
        }
        *(addr == APN_REG_RX_RING_LO ? &r->rx_ring_lo : &r->tx_ring_lo) = val;
        return;
    case APN_REG_RX_RING_HI:
        r->rx_ring_hi = val;
        return;
    case APN_REG_TX_RING_HI:
        r->tx_ring_hi = val;
        return;
    case APN_REG_RX_RING_SIZE:
    case APN_REG_TX_RING_SIZE:
        ring_size_write(core, addr == APN_REG_RX_RING_SIZE, val);
        return;
    case APN_REG_RX_TAIL:
    case APN_REG_TX_TAIL:
        ring_tail_write(core, addr == APN_REG_RX_TAIL, val);
        return;
    case APN_REG_RING_IRQ:
        if (val & ~(APN_RING_IRQ_RX | APN_RING_IRQ_TX)) {
            qemu_log_mask(LOG_GUEST_ERROR, "apertnic: RING_IRQ bits 0x%x are "
                          "reserved\n", val & ~(APN_RING_IRQ_RX |
                                                APN_RING_IRQ_TX));
        }
        r->ring_irq = val & (APN_RING_IRQ_RX | APN_RING_IRQ_TX);
        return;
    case APN_REG_CMD_EP:
        if (val >= core->cfg.num_endpoints) {
            qemu_log_mask(LOG_GUEST_ERROR, "apertnic: CMD_EP %u: the device "
                          "has %u endpoints; ignored\n", val,
                          core->cfg.num_endpoints);
            return;
        }
        r->cmd_ep = val;
        trace_apertnic_cmd_ep(val);
        return;
    }
    if (cmd_block_addr(addr, &off) &&
        cmd_reg_write(core, r->cmd_ep, &r->cmd, true, off, val)) {
        return;
    }
    if (addr >= APN_REG_HOST_IP_BASE &&
        addr < APN_REG_HOST_IP_BASE + 4 * APN_HOST_MAC_ENTRIES) {
        r->host_ip[(addr - APN_REG_HOST_IP_BASE) / 4] = val;
        trace_apertnic_host_ip((addr - APN_REG_HOST_IP_BASE) / 4, val);
        return;
    }
    if (ep_reg_addr(core, addr, &ep, &off)) {
        ep_reg_write(core, ep, off, val);
        return;
    }
    if (addr >= APN_REG_HOST_MAC_BASE &&
        addr < APN_REG_HOST_MAC_BASE + 8 * APN_HOST_MAC_ENTRIES) {
        uint64_t *e = &r->host_mac[(addr - APN_REG_HOST_MAC_BASE) / 8];

        tx_flush(core);
        if (addr & 4) {
            *e = (*e & 0xffffffffull) | (uint64_t)val << 32;
        } else {
            *e = (*e & ~0xffffffffull) | val;
        }
        *e &= APN_HOST_MAC_MASK | APN_HOST_VALID;
        trace_apertnic_host_mac((addr - APN_REG_HOST_MAC_BASE) / 8, *e);
        return;
    }
    if (addr >= APN_USER_PAGES_BASE &&
        addr < APN_USER_PAGE(core->cfg.num_endpoints)) {
        user_write(core, (addr - APN_USER_PAGES_BASE) / APN_USER_PAGE_SIZE,
                   addr & (APN_USER_PAGE_SIZE - 1), val);
        return;
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
        tx_flush(core);
        *e = val & (APN_HOST_MAC_MASK | APN_HOST_VALID);
        trace_apertnic_host_mac((addr - APN_REG_HOST_MAC_BASE) / 8, *e);
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
    if (cfg->num_endpoints < 1 || cfg->num_endpoints > APN_MAX_ENDPOINTS) {
        *why = "endpoints must be 1 to 512";
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
    core->cache.hash_shift = 32 - ctz32_portable(buckets);
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
    if (core->read_timer_armed && core->ops->read_timer_cancel) {
        core->ops->read_timer_cancel(core->opaque);
    }
    core->read_timer_armed = false;
    memset(core->reads, 0, sizeof(core->reads));
    core->read_waiters = false;
    core->burst.active = false;
    core->pend.active = false;
    memset(&core->regs, 0, sizeof(core->regs));
    core->regs.status = status;
    memset(core->port_map, 0, sizeof(core->port_map));
    cache_clear(&core->cache);
}

/* A pending frame from the migration stream: is it one we could build? */
static bool pend_valid(ApnCore *core)
{
    ApnTxFrame *p = &core->pend;
    uint32_t pos = 0;
    unsigned n = 0;

    if (!p->nseg || p->len > frame_room(core)) {
        return false;
    }
    while (pos < p->len) {
        if (p->len - pos < APN_SEG_HDR_LEN) {
            return false;
        }
        pos += APN_SEG_HDR_LEN + APN_SEG_PAD(get_be16(p->data + pos + 2));
        n++;
    }
    return pos == p->len && n == p->nseg;
}

static bool ring_size_ok(uint32_t size)
{
    return !size || (is_pow2(size) && size >= 2 && size <= 4096);
}

static void post_load_rings(ApnCore *core)
{
    ApnCoreRegs *r = &core->regs;

    r->rx_ring_lo &= ~63u;
    r->tx_ring_lo &= ~63u;
    r->ring_irq &= APN_RING_IRQ_RX | APN_RING_IRQ_TX;
    if (!ring_size_ok(r->rx_ring_size) ||
        r->rx_tail - r->rx_head > r->rx_ring_size) {
        r->rx_ring_size = r->rx_head = r->rx_tail = 0;
    }
    if (!ring_size_ok(r->tx_ring_size) ||
        r->tx_tail - r->tx_head > r->tx_ring_size) {
        r->tx_ring_size = r->tx_head = r->tx_tail = 0;
    }
}

/* One endpoint's channel from the stream: consistent, or abandoned. */
static void post_load_dma(ApnCore *core, uint32_t ep)
{
    ApnEndpoint *p = &core->regs.ep[ep];
    uint32_t inflight = p->rq_next - p->rq_head;
    bool ok;

    p->rq_lo &= ~63u;
    p->cq_lo &= ~63u;
    if (!ring_size_ok(p->rq_size)) {
        p->rq_size = 0;
    }
    if (p->cq_size && (!is_pow2(p->cq_size) || p->cq_size < 2 ||
                       p->cq_size > (1u << 16))) {
        p->cq_size = 0;
    }
    ok = dma_on(p) && inflight <= APN_DMA_INFLIGHT &&
         inflight <= p->rq_tail - p->rq_head &&
         p->rq_tail - p->rq_head <= p->rq_size &&
         p->cq_wrptr - p->cq_rdptr <= p->cq_size &&
         (p->cq_wrptr - p->cq_rdptr) + inflight <= p->cq_size;
    for (uint32_t k = 0; ok && k < APN_DMA_INFLIGHT; k++) {
        ApnDmaSlot *s = &p->dma[k];
        bool used = (k - p->rq_head) % APN_DMA_INFLIGHT < inflight;

        if (!used) {
            ok = s->state == APN_DMA_FREE;
            continue;
        }
        ok = (s->state == APN_DMA_BUSY || s->state == APN_DMA_DONE) &&
             s->len <= APN_DMA_MAX_LEN && s->progress <= s->len &&
             (s->state == APN_DMA_DONE ||
              s->opcode == APN_REQ_PUT || s->opcode == APN_REQ_GET) &&
             s->read >= -1 && s->read < APN_MAX_READS;
        if (ok && s->state == APN_DMA_BUSY && s->opcode == APN_REQ_GET &&
            s->read >= 0) {
            ApnRead *r = &core->reads[s->read];

            ok = r->kind == APN_READ_GET && r->ep == ep &&
                 r->rq_pos == p->rq_head + (k - p->rq_head) %
                              APN_DMA_INFLIGHT;
        }
    }
    if (!ok) {
        p->rq_head = p->rq_next = p->rq_tail = 0;
        p->cq_wrptr = p->cq_rdptr = 0;
        memset(p->dma, 0, sizeof(p->dma));
        for (unsigned i = 0; i < APN_MAX_READS; i++) {
            if (core->reads[i].kind == APN_READ_GET &&
                core->reads[i].ep == ep) {
                core->reads[i].kind = APN_READ_FREE;
            }
        }
    }
}

/* The outstanding reads from the stream: a bad one is forgotten. */
static void post_load_reads(ApnCore *core)
{
    core->read_gen &= 0xffffff;
    for (unsigned i = 0; i < APN_MAX_READS; i++) {
        ApnRead *r = &core->reads[i];
        bool ok;

        if (r->kind == APN_READ_FREE) {
            continue;
        }
        ok = (r->kind == APN_READ_LOAD || r->kind == APN_READ_GET) &&
             ep_valid(core, r->ep) &&
             (r->tag & ((1u << APN_READ_TAG_SHIFT) - 1)) == i &&
             r->done <= r->asked && r->asked <= r->len &&
             r->len <= APN_DMA_MAX_LEN && r->len &&
             r->asked - r->done <= APN_READ_MAX_LEN;
        if (ok && r->kind == APN_READ_GET) {
            ApnEndpoint *p = &core->regs.ep[r->ep];
            ApnDmaSlot *s = dma_slot(p, r->rq_pos);

            ok = r->rq_pos - p->rq_head < p->rq_next - p->rq_head &&
                 s->state == APN_DMA_BUSY && s->opcode == APN_REQ_GET &&
                 s->read == (int32_t)i;
        }
        if (!ok) {
            if (r->kind == APN_READ_GET && r->ep < core->cfg.num_endpoints) {
                /* its request fails rather than hang */
                ApnEndpoint *p = &core->regs.ep[r->ep];
                ApnDmaSlot *s = dma_slot(p, r->rq_pos);

                if (r->rq_pos - p->rq_head < p->rq_next - p->rq_head &&
                    s->state == APN_DMA_BUSY && s->read == (int32_t)i) {
                    dma_finish(s, APN_CNT_READ_TIMEOUTS, 0);
                }
            }
            r->kind = APN_READ_FREE;
        }
    }
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
    if (r->cmd_ep >= core->cfg.num_endpoints) {
        r->cmd_ep = 0;
    }
    for (uint32_t i = 0; i < APN_MAX_ENDPOINTS; i++) {
        ApnEndpoint *p = &r->ep[i];

        if (i >= core->cfg.num_endpoints) {
            memset(p, 0, sizeof(*p));
            continue;
        }
        p->ctrl &= APN_EP_CTRL_BITS;
        if (p->port > 0xffff) {
            p->port = 0;
        }
        p->evq_lo &= ~63u;
        p->varq_lo &= ~63u;
        if (p->evq_size && (!is_pow2(p->evq_size) || p->evq_size < 2 ||
                            p->evq_size > (1u << 16))) {
            p->evq_size = 0;
        }
        if (p->varq_size && (!is_pow2(p->varq_size) || p->varq_size < 64 ||
                             p->varq_size > (1u << 24))) {
            p->varq_size = 0;
        }
        p->varq_wrptr &= ~7u;
        p->varq_rdptr &= ~7u;
        post_load_dma(core, i);
    }
    post_load_rings(core);
    post_load_reads(core);
    port_map_rebuild(core);
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
        }
    }
    if (core->pend.active && !pend_valid(core)) {
        core->pend.active = false;
    }
    tx_timer_note_store(core);
    /* Resume DMA-channel work and read timeouts. */
    core->bh_pending = false;
    core->read_timer_armed = false;
    core->read_waiters = true;
    read_timer_update(core);
    kick(core);
}
