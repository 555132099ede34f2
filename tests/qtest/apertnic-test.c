/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qtest for the apertnic device: PCI identity and sizing, registers, the
 * receive path and its checks, store gathering and transmit, loopback, the
 * mapping cache, the OS event queue and MSI-X, and QOM counters.
 *
 * Frames go in and out through a SOCK_DGRAM socketpair on a dgram netdev:
 * one raw Ethernet frame (no FCS) per datagram. The table, entry and wire
 * formats come from apertnic_hw.h; frames are built and parsed here, by
 * hand, so the test checks the device against the header, not against
 * itself.
 */
#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "qemu/crc32c.h"
#include "qemu/units.h"
#include "libqtest.h"
#include "libqos/pci-pc.h"
#include "libqos/malloc-pc.h"
#include "hw/pci/pci_regs.h"
#include "qobject/qdict.h"
#include "qobject/qnum.h"
#include "../../hw/net/apertnic/apertnic_hw.h"

#define DEV_MAC_STR     "52:54:00:a5:00:01"
static const uint8_t dev_mac[6] = { 0x52, 0x54, 0x00, 0xa5, 0x00, 0x01 };
static const uint8_t peer_mac[6] = { 0x52, 0x54, 0x00, 0xa5, 0x00, 0x02 };
static const uint8_t other_mac[6] = { 0x52, 0x54, 0x00, 0xa5, 0x00, 0x03 };

#define SELF_HOST       0x21    /* the device's HOST_ID */
#define PEER_HOST       0x42    /* the test's end of the wire */
#define N_IN            16      /* incoming table entries programmed */
#define N_OUT           16      /* outgoing table entries programmed */
#define TIMEOUT_US      (5 * G_USEC_PER_SEC)
#define FRAME_MAX       (APN_ETH_HLEN + 9000 + 64)
#define DEFAULT_MTU     1500

static const char *const cnt_name[APN_CNT__COUNT] = {
#define C(id, name) [APN_CNT_##id] = name,
    APN_COUNTER_LIST(C)
#undef C
};

/* ---- harness ------------------------------------------------------------- */

typedef struct Apn {
    QTestState *qts;
    QPCIBus *bus;
    QPCIDevice *dev;
    QPCIBar bar0, bar2;
    uint64_t bar0_size, bar2_size;
    QGuestAllocator alloc;
    int sock;                   /* the test's end of the socketpair */
    uint64_t in_table, out_table;
} Apn;

/*
 * Start QEMU with the device at 04.0 on a socketpair netdev. Unless
 * @incoming, enable the device and map BAR0 and BAR2.
 */
static Apn *apn_start_full(const char *props, bool incoming)
{
    Apn *a = g_new0(Apn, 1);
    int sv[2];

    g_assert_cmpint(socketpair(PF_UNIX, SOCK_DGRAM, 0, sv), ==, 0);
    qemu_set_cloexec(sv[0]);            /* other QEMUs must not hold it */
    a->qts = qtest_initf("-M q35 -nodefaults -m 256 %s"
                         "-netdev dgram,id=hs0,local.type=fd,local.str=%d "
                         "-device apertnic,addr=04.0,id=apn0,netdev=hs0,"
                         "mac=" DEV_MAC_STR "%s",
                         incoming ? "-incoming defer " : "",
                         sv[1], props ? props : "");
    close(sv[1]);
    a->sock = sv[0];
    if (incoming) {
        return a;
    }
    pc_alloc_init(&a->alloc, a->qts, ALLOC_NO_FLAGS);
    a->bus = qpci_new_pc(a->qts, &a->alloc);
    a->dev = qpci_device_find(a->bus, QPCI_DEVFN(4, 0));
    g_assert_nonnull(a->dev);
    qpci_device_enable(a->dev);
    a->bar0 = qpci_iomap(a->dev, APN_BAR_REGS, &a->bar0_size);
    a->bar2 = qpci_iomap(a->dev, APN_BAR_APERTURES, &a->bar2_size);
    return a;
}

static Apn *apn_start(const char *props)
{
    return apn_start_full(props, false);
}

static void apn_stop(Apn *a)
{
    g_free(a->dev);
    qpci_free_pc(a->bus);
    alloc_destroy(&a->alloc);
    qtest_quit(a->qts);
    close(a->sock);
    g_free(a);
}

static uint32_t rd(Apn *a, uint32_t reg)
{
    return qpci_io_readl(a->dev, a->bar0, reg);
}

static void wr(Apn *a, uint32_t reg, uint32_t val)
{
    qpci_io_writel(a->dev, a->bar0, reg, val);
}

static uint64_t cnt(Apn *a, int id)
{
    return qpci_io_readq(a->dev, a->bar0, APN_COUNTER_OFFSET(id));
}

static void cnt_snap(Apn *a, uint64_t *c)
{
    for (int i = 0; i < APN_CNT__COUNT; i++) {
        c[i] = cnt(a, i);
    }
}

/* Every counter that counts a frame, segment or store not acted on */
static bool is_drop_counter(int id)
{
    return g_str_has_prefix(cnt_name[id], "tx_drop_") ||
           g_str_has_prefix(cnt_name[id], "rx_drop_") ||
           !strcmp(cnt_name[id], "rx_filtered");
}

/*
 * Assert which drop/filter counters moved since @before, and by how much:
 * @expect is e.g. "rx_drop_nonce+1", or "" for none.
 */
static void assert_drops(Apn *a, const uint64_t *before, const char *expect)
{
    g_autoptr(GString) moved = g_string_new("");

    for (int i = 0; i < APN_CNT__COUNT; i++) {
        uint64_t now;

        if (!is_drop_counter(i)) {
            continue;
        }
        now = cnt(a, i);
        if (now != before[i]) {
            g_string_append_printf(moved, "%s%s+%" PRIu64,
                                   moved->len ? " " : "", cnt_name[i],
                                   now - before[i]);
        }
    }
    g_assert_cmpstr(moved->str, ==, expect);
}

static uint64_t delta(Apn *a, const uint64_t *before, int id)
{
    return cnt(a, id) - before[id];
}

/* Guest memory from the allocator, filled with @fill. */
static uint64_t gmem(Apn *a, size_t size, uint8_t fill)
{
    uint64_t addr = guest_alloc(&a->alloc, size);

    g_assert(addr);
    qtest_memset(a->qts, addr, fill, size);
    return addr;
}

static void assert_mem(Apn *a, uint64_t addr, const void *expect, size_t len)
{
    g_autofree uint8_t *buf = g_malloc(len);

    qtest_memread(a->qts, addr, buf, len);
    g_assert_cmpmem(buf, len, expect, len);
}

static void set_route(Apn *a, uint16_t host, const uint8_t mac[6])
{
    uint64_t v = APN_HOST_VALID;

    for (int i = 0; i < 6; i++) {
        v |= (uint64_t)mac[i] << (8 * i);
    }
    qpci_io_writeq(a->dev, a->bar0, APN_REG_HOST_MAC_BASE + 8 * host, v);
}

/* Tables, host id, a route to the peer, then CTRL.ENABLE, as a driver. */
static void apn_tables(Apn *a)
{
    a->in_table = gmem(a, N_IN * APN_TABLE_ENTRY_SIZE, 0);
    a->out_table = gmem(a, N_OUT * APN_TABLE_ENTRY_SIZE, 0);
    wr(a, APN_REG_IN_TABLE_LO, (uint32_t)a->in_table);
    wr(a, APN_REG_IN_TABLE_HI, a->in_table >> 32);
    wr(a, APN_REG_IN_TABLE_COUNT, N_IN);
    wr(a, APN_REG_OUT_TABLE_LO, (uint32_t)a->out_table);
    wr(a, APN_REG_OUT_TABLE_HI, a->out_table >> 32);
    wr(a, APN_REG_OUT_TABLE_COUNT, N_OUT);
    wr(a, APN_REG_HOST_ID, SELF_HOST);
    set_route(a, PEER_HOST, peer_mac);
}

static void apn_enable(Apn *a)
{
    wr(a, APN_REG_CTRL, APN_CTRL_ENABLE);
    g_assert_cmphex(rd(a, APN_REG_CTRL), ==, APN_CTRL_ENABLE);
}

static Apn *apn_up(const char *props)
{
    Apn *a = apn_start(props);

    apn_tables(a);
    apn_enable(a);
    return a;
}

/* ---- table entries (little-endian in guest memory) ----------------------- */

static void put_in_entry(Apn *a, uint32_t idx, const struct apn_in_entry *e)
{
    struct apn_in_entry le = *e;

    le.flags = cpu_to_le32(e->flags);
    le.endpoint = cpu_to_le16(e->endpoint);
    le.src_host = cpu_to_le16(e->src_host);
    le.src_host_mask = cpu_to_le16(e->src_host_mask);
    le.nonce = cpu_to_le32(e->nonce);
    le.seq = cpu_to_le32(e->seq);
    le.base = cpu_to_le64(e->base);
    le.size = cpu_to_le32(e->size);
    le.first_byte = cpu_to_le32(e->first_byte);
    le.narrow_start = cpu_to_le32(e->narrow_start);
    le.narrow_len = cpu_to_le32(e->narrow_len);
    qtest_memwrite(a->qts, a->in_table + idx * APN_TABLE_ENTRY_SIZE,
                   &le, sizeof(le));
}

static void put_out_entry(Apn *a, uint32_t idx, const struct apn_out_entry *e)
{
    struct apn_out_entry le = *e;

    le.flags = cpu_to_le32(e->flags);
    le.endpoint = cpu_to_le16(e->endpoint);
    le.dest_host = cpu_to_le16(e->dest_host);
    le.dest_in_index = cpu_to_le32(e->dest_in_index);
    le.nonce = cpu_to_le32(e->nonce);
    le.size = cpu_to_le32(e->size);
    le.seq = cpu_to_le32(e->seq);
    qtest_memwrite(a->qts, a->out_table + idx * APN_TABLE_ENTRY_SIZE,
                   &le, sizeof(le));
}

static struct apn_in_entry in_contig(uint64_t base, uint32_t size,
                                     uint32_t nonce)
{
    return (struct apn_in_entry) {
        .flags = APN_ENTRY_VALID | APN_IN_CONTIG,
        .base = base,
        .size = size,
        .nonce = nonce,
    };
}

static struct apn_out_entry out_entry(uint16_t dest_host, uint32_t in_index,
                                      uint32_t nonce, uint32_t size)
{
    return (struct apn_out_entry) {
        .flags = APN_ENTRY_VALID,
        .dest_host = dest_host,
        .dest_in_index = in_index,
        .nonce = nonce,
        .size = size,
    };
}

static uint32_t in_entry_seq(Apn *a, uint32_t idx)
{
    return qtest_readl(a->qts, a->in_table + idx * APN_TABLE_ENTRY_SIZE +
                       offsetof(struct apn_in_entry, seq));
}

static uint32_t out_entry_seq(Apn *a, uint32_t idx)
{
    return qtest_readl(a->qts, a->out_table + idx * APN_TABLE_ENTRY_SIZE +
                       offsetof(struct apn_out_entry, seq));
}

static uint32_t be32(const void *p)
{
    return ldl_be_p(p);
}

/* ---- wire format --------------------------------------------------------- */

/* Standard CRC-32C; QEMU's crc32c() takes a raw seed and inverts the result */
static uint32_t crc32c_std(const void *buf, size_t len)
{
    return crc32c(0xffffffff, buf, len);
}

typedef struct Seg {
    uint8_t type, flags;
    uint32_t in_index, nonce, seq, offset, out_index;
    const uint8_t *data;
    uint16_t len;
} Seg;

typedef struct Frame {
    uint8_t dst[6], src[6];
    uint16_t ethertype;
    uint8_t version;
    uint8_t nseg;               /* the header's count */
    uint16_t src_host, dst_host;
    unsigned n;                 /* segments encoded */
    Seg seg[4];
} Frame;

/* A frame from the peer to the device with one WRITE segment. */
static void frame_init(Frame *f, uint32_t in_index, uint32_t nonce,
                       uint32_t offset, const void *data, uint16_t len)
{
    memset(f, 0, sizeof(*f));
    memcpy(f->dst, dev_mac, 6);
    memcpy(f->src, peer_mac, 6);
    f->ethertype = APN_ETHERTYPE;
    f->version = APN_WIRE_VERSION;
    f->nseg = f->n = 1;
    f->src_host = PEER_HOST;
    f->dst_host = SELF_HOST;
    f->seg[0] = (Seg) {
        .type = APN_SEG_WRITE,
        .in_index = in_index,
        .nonce = nonce,
        .offset = offset,
        .data = data,
        .len = len,
    };
}

/* Encode into @buf (FRAME_MAX bytes); returns the length, padded to 60. */
static size_t frame_encode(const Frame *f, uint8_t *buf)
{
    uint8_t *ci = buf + APN_ETH_HLEN;
    size_t pos = APN_FRAME_HDR_LEN, len;

    memset(buf, 0, FRAME_MAX);
    memcpy(buf, f->dst, 6);
    memcpy(buf + 6, f->src, 6);
    stw_be_p(buf + 12, f->ethertype);
    ci[0] = f->version;
    ci[1] = f->nseg;
    stw_be_p(ci + 2, f->src_host);
    stw_be_p(ci + 4, f->dst_host);
    for (unsigned i = 0; i < f->n; i++) {
        const Seg *s = &f->seg[i];
        uint8_t *p = ci + pos;

        p[0] = s->type;
        p[1] = s->flags;
        stw_be_p(p + 2, s->len);
        stl_be_p(p + 4, s->in_index);
        stl_be_p(p + 8, s->nonce);
        stl_be_p(p + 12, s->seq);
        stl_be_p(p + 16, s->offset);
        stl_be_p(p + 20, s->out_index);
        memcpy(p + APN_SEG_HDR_LEN, s->data, s->len);
        pos += APN_SEG_HDR_LEN + APN_SEG_PAD(s->len);
    }
    stl_be_p(ci + pos, crc32c_std(ci, pos));
    len = APN_ETH_HLEN + pos + APN_CRC_LEN;
    return MAX(len, APN_MIN_ETH_FRAME);
}

/* Send one frame to the device and wait until it has been processed. */
static void inject(Apn *a, const uint8_t *frame, size_t len)
{
    uint64_t before = cnt(a, APN_CNT_RX_FRAMES);
    gint64 deadline = g_get_monotonic_time() + TIMEOUT_US;

    g_assert_cmpint(send(a->sock, frame, len, 0), ==, len);
    while (cnt(a, APN_CNT_RX_FRAMES) == before) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(50);
    }
    g_assert_cmpuint(cnt(a, APN_CNT_RX_FRAMES), ==, before + 1);
}

static void inject_frame(Apn *a, const Frame *f)
{
    uint8_t buf[FRAME_MAX];

    inject(a, buf, frame_encode(f, buf));
}

static void inject_write(Apn *a, uint32_t in_index, uint32_t nonce,
                         uint32_t offset, const void *data, uint16_t len)
{
    Frame f;

    frame_init(&f, in_index, nonce, offset, data, len);
    inject_frame(a, &f);
}

/* Receive the next frame the device sent; fails after TIMEOUT_US. */
static size_t recv_frame(Apn *a, uint8_t *buf)
{
    GPollFD pfd = { .fd = a->sock, .events = G_IO_IN };
    ssize_t n;

    g_assert_cmpint(g_poll(&pfd, 1, TIMEOUT_US / 1000), ==, 1);
    n = recv(a->sock, buf, FRAME_MAX, 0);
    g_assert_cmpint(n, >, 0);
    return n;
}

/*
 * The device hands a frame to the netdev inside the MMIO or timer callback
 * and the dgram netdev sends it at once, so once a qtest command has been
 * answered, anything sent is already queued on our socket.
 */
static void assert_no_frame(Apn *a)
{
    uint8_t buf[FRAME_MAX];
    ssize_t n;

    rd(a, APN_REG_MAGIC);
    n = recv(a->sock, buf, sizeof(buf), MSG_DONTWAIT);
    g_assert_cmpint(n, ==, -1);
    g_assert(errno == EAGAIN || errno == EWOULDBLOCK);
}

typedef struct TxExpect {
    const uint8_t *dst;
    uint16_t dst_host;
    uint8_t seg_flags;
    uint32_t in_index, nonce, seq, offset, out_index;
    const uint8_t *payload;
    uint16_t len;
} TxExpect;

/* Check every byte of a single-segment CI frame the device sent. */
static void check_tx_frame(const uint8_t *f, size_t n, const TxExpect *x)
{
    const uint8_t *ci = f + APN_ETH_HLEN;
    const uint8_t *seg = ci + APN_FRAME_HDR_LEN;
    size_t ci_len = APN_FRAME_HDR_LEN + APN_SEG_HDR_LEN + APN_SEG_PAD(x->len);
    size_t end = APN_ETH_HLEN + ci_len + APN_CRC_LEN;

    g_assert_cmpuint(n, ==, MAX(end, APN_MIN_ETH_FRAME));
    g_assert_cmpmem(f, 6, x->dst, 6);
    g_assert_cmpmem(f + 6, 6, dev_mac, 6);
    g_assert_cmphex(lduw_be_p(f + 12), ==, APN_ETHERTYPE);

    g_assert_cmpuint(ci[0], ==, APN_WIRE_VERSION);
    g_assert_cmpuint(ci[1], ==, 1);
    g_assert_cmphex(lduw_be_p(ci + 2), ==, SELF_HOST);
    g_assert_cmphex(lduw_be_p(ci + 4), ==, x->dst_host);
    g_assert_cmphex(lduw_be_p(ci + 6), ==, 0);

    g_assert_cmpuint(seg[0], ==, APN_SEG_WRITE);
    g_assert_cmphex(seg[1], ==, x->seg_flags);
    g_assert_cmpuint(lduw_be_p(seg + 2), ==, x->len);
    g_assert_cmpuint(be32(seg + 4), ==, x->in_index);
    g_assert_cmphex(be32(seg + 8), ==, x->nonce);
    g_assert_cmpuint(be32(seg + 12), ==, x->seq);
    g_assert_cmphex(be32(seg + 16), ==, x->offset);
    g_assert_cmpuint(be32(seg + 20), ==, x->out_index);
    g_assert_cmpmem(seg + APN_SEG_HDR_LEN, x->len, x->payload, x->len);
    for (size_t i = APN_SEG_HDR_LEN + x->len;
         i < APN_SEG_HDR_LEN + APN_SEG_PAD(x->len); i++) {
        g_assert_cmphex(seg[i], ==, 0);
    }
    g_assert_cmphex(be32(ci + ci_len), ==, crc32c_std(ci, ci_len));
    for (size_t i = end; i < n; i++) {
        g_assert_cmphex(f[i], ==, 0);
    }
}

static void recv_check(Apn *a, const TxExpect *x)
{
    uint8_t buf[FRAME_MAX];
    size_t n = recv_frame(a, buf);

    check_tx_frame(buf, n, x);
}

typedef struct SegExpect {
    uint8_t type, flags;
    uint32_t in_index, nonce, seq, offset, out_index;
    const uint8_t *payload;
    uint16_t len;
} SegExpect;

static SegExpect seg_expect(uint32_t out_index, uint32_t in_index,
                            uint32_t nonce, uint32_t offset,
                            const uint8_t *payload, uint16_t len)
{
    return (SegExpect) {
        .type = APN_SEG_WRITE, .in_index = in_index, .nonce = nonce,
        .offset = offset, .out_index = out_index, .payload = payload,
        .len = len,
    };
}

/* Check every byte of a (packed) CI frame the device sent. */
static void check_tx_segs(const uint8_t *f, size_t n, const uint8_t *dst,
                          uint16_t dst_host, const SegExpect *x,
                          unsigned nseg)
{
    const uint8_t *ci = f + APN_ETH_HLEN;
    size_t pos = APN_FRAME_HDR_LEN, end;

    g_assert_cmpmem(f, 6, dst, 6);
    g_assert_cmpmem(f + 6, 6, dev_mac, 6);
    g_assert_cmphex(lduw_be_p(f + 12), ==, APN_ETHERTYPE);
    g_assert_cmpuint(ci[0], ==, APN_WIRE_VERSION);
    g_assert_cmpuint(ci[1], ==, nseg);
    g_assert_cmphex(lduw_be_p(ci + 2), ==, SELF_HOST);
    g_assert_cmphex(lduw_be_p(ci + 4), ==, dst_host);
    g_assert_cmphex(lduw_be_p(ci + 6), ==, 0);
    for (unsigned i = 0; i < nseg; i++) {
        const uint8_t *seg = ci + pos;

        g_assert_cmpuint(APN_ETH_HLEN + pos + APN_SEG_HDR_LEN, <=, n);
        g_assert_cmpuint(seg[0], ==, x[i].type);
        g_assert_cmphex(seg[1], ==, x[i].flags);
        g_assert_cmpuint(lduw_be_p(seg + 2), ==, x[i].len);
        g_assert_cmpuint(be32(seg + 4), ==, x[i].in_index);
        g_assert_cmphex(be32(seg + 8), ==, x[i].nonce);
        g_assert_cmpuint(be32(seg + 12), ==, x[i].seq);
        g_assert_cmphex(be32(seg + 16), ==, x[i].offset);
        g_assert_cmpuint(be32(seg + 20), ==, x[i].out_index);
        g_assert_cmpmem(seg + APN_SEG_HDR_LEN, x[i].len, x[i].payload,
                        x[i].len);
        for (size_t k = APN_SEG_HDR_LEN + x[i].len;
             k < APN_SEG_HDR_LEN + APN_SEG_PAD(x[i].len); k++) {
            g_assert_cmphex(seg[k], ==, 0);
        }
        pos += APN_SEG_HDR_LEN + APN_SEG_PAD(x[i].len);
    }
    end = APN_ETH_HLEN + pos + APN_CRC_LEN;
    g_assert_cmpuint(n, ==, MAX(end, APN_MIN_ETH_FRAME));
    g_assert_cmphex(be32(ci + pos), ==, crc32c_std(ci, pos));
    for (size_t i = end; i < n; i++) {
        g_assert_cmphex(f[i], ==, 0);
    }
}

static void recv_check_segs(Apn *a, const uint8_t *dst, uint16_t dst_host,
                            const SegExpect *x, unsigned nseg)
{
    uint8_t buf[FRAME_MAX];
    size_t n = recv_frame(a, buf);

    check_tx_segs(buf, n, dst, dst_host, x, nseg);
}

/* The APN_SEG_ERROR frame the device sends back for a refused segment. */
static void recv_seg_error(Apn *a, uint32_t in_index, uint32_t out_index,
                           int reason)
{
    SegExpect x = {
        .type = APN_SEG_ERROR, .in_index = in_index, .offset = reason,
        .out_index = out_index,
    };

    recv_check_segs(a, peer_mac, PEER_HOST, &x, 1);
}

/* Outgoing slot @slot at byte @off of BAR2. */
static uint64_t slot_addr(Apn *a, uint32_t slot, uint32_t off)
{
    return a->bar2.addr + ((uint64_t)slot << 16) + off;
}

static void fence(Apn *a, unsigned ep)
{
    wr(a, APN_USER_PAGE(ep) + APN_UREG_FENCE, 0);
}

/* ---- probe --------------------------------------------------------------- */

static void test_probe(void)
{
    Apn *a = apn_start(NULL);
    QPCIDevice *d = a->dev;
    uint64_t size;
    uint32_t bar2;
    uint8_t cap;

    g_assert_cmphex(qpci_config_readw(d, PCI_VENDOR_ID), ==,
                    APN_PCI_VENDOR_ID);
    g_assert_cmphex(qpci_config_readw(d, PCI_DEVICE_ID), ==,
                    APN_PCI_DEVICE_ID);
    g_assert_cmphex(qpci_config_readb(d, PCI_REVISION_ID), ==,
                    APN_PCI_REVISION);
    g_assert_cmphex(qpci_config_readw(d, PCI_CLASS_DEVICE), ==,
                    APN_PCI_CLASS);

    /* 64 user pages: 0x10000 + 64 * 0x1000 rounds up to 512 KiB */
    g_assert_cmphex(a->bar0_size, ==, 0x80000);
    g_assert_cmphex(qpci_config_readl(d, PCI_BASE_ADDRESS_0) &
                    ~PCI_BASE_ADDRESS_MEM_MASK, ==, 0);
    /* 256 slots of 64 KiB, 64-bit prefetchable */
    g_assert_cmphex(a->bar2_size, ==, 16 * MiB);
    bar2 = qpci_config_readl(d, PCI_BASE_ADDRESS_2);
    g_assert_cmphex(bar2 & PCI_BASE_ADDRESS_MEM_TYPE_MASK, ==,
                    PCI_BASE_ADDRESS_MEM_TYPE_64);
    g_assert_true(bar2 & PCI_BASE_ADDRESS_MEM_PREFETCH);
    qpci_iomap(d, APN_BAR_MSIX, &size);
    g_assert_cmphex(size, >=, 0x1000);

    cap = qpci_find_capability(d, PCI_CAP_ID_MSIX, 0);
    g_assert_cmphex(cap, !=, 0);
    g_assert_cmpuint(qpci_config_readl(d, cap + PCI_MSIX_TABLE) &
                     PCI_MSIX_FLAGS_BIRMASK, ==, APN_BAR_MSIX);
    g_assert_cmpuint(qpci_msix_table_size(d), ==, APN_NUM_VECTORS);
    g_assert_cmphex(qpci_find_capability(d, PCI_CAP_ID_EXP, 0), !=, 0);
    /* MSI-X only: no INTx pin, no MSI capability */
    g_assert_cmpuint(qpci_config_readb(d, PCI_INTERRUPT_PIN), ==, 0);
    g_assert_cmphex(qpci_find_capability(d, PCI_CAP_ID_MSI, 0), ==, 0);

    g_assert_cmphex(rd(a, APN_REG_MAGIC), ==, APN_MAGIC);
    g_assert_cmphex(rd(a, APN_REG_VERSION), ==, APN_SPEC_VERSION);
    g_assert_cmphex(rd(a, APN_REG_CAPS), ==, APN_CAP_CACHE | APN_CAP_GATHER |
                    APN_CAP_RINGS | APN_CAP_READ | APN_CAP_DMA);
    g_assert_cmphex(rd(a, APN_REG_STATUS), ==, APN_STATUS_LINK_UP);
    g_assert_cmphex(rd(a, APN_REG_CTRL), ==, 0);
    g_assert_cmphex(rd(a, APN_REG_HOST_ID), ==, 0);
    g_assert_cmphex(rd(a, APN_REG_MAC_LO), ==, 0xa5005452);
    g_assert_cmphex(rd(a, APN_REG_MAC_HI), ==, 0x0100);
    g_assert_cmpuint(rd(a, APN_REG_MTU), ==, DEFAULT_MTU);
    g_assert_cmpuint(rd(a, APN_REG_NUM_ENDPOINTS), ==, 64);
    g_assert_cmpuint(rd(a, APN_REG_NUM_OUT), ==, 256);
    g_assert_cmpuint(rd(a, APN_REG_OUT_SLOT_SHIFT), ==, 16);
    g_assert_cmpuint(rd(a, APN_REG_MAX_IN), ==, 65536);
    g_assert_cmpuint(rd(a, APN_REG_CACHE_ENTRIES), ==, 64);
    g_assert_cmpuint(rd(a, APN_REG_NUM_VECTORS), ==, APN_NUM_VECTORS);

    /* sizing registers are read-only */
    wr(a, APN_REG_NUM_OUT, 1);
    wr(a, APN_REG_MTU, 9000);
    wr(a, APN_REG_MAC_LO, 0);
    g_assert_cmpuint(rd(a, APN_REG_NUM_OUT), ==, 256);
    g_assert_cmpuint(rd(a, APN_REG_MTU), ==, DEFAULT_MTU);
    g_assert_cmphex(rd(a, APN_REG_MAC_LO), ==, 0xa5005452);
    g_assert_cmphex(rd(a, APN_REG_MAGIC), ==, APN_MAGIC);
    apn_stop(a);
}

/* The sizing properties set the BARs and the read-only registers. */
static void test_probe_properties(void)
{
    Apn *a = apn_start(",endpoints=4,out-apertures=8,out-slot-shift=12,"
                       "max-in-apertures=100,cache-entries=7,mtu=9000");

    g_assert_cmphex(a->bar0_size, ==, 0x20000);    /* 0x14000 rounded up */
    g_assert_cmphex(a->bar2_size, ==, 8 << 12);
    g_assert_cmpuint(rd(a, APN_REG_NUM_ENDPOINTS), ==, 4);
    g_assert_cmpuint(rd(a, APN_REG_NUM_OUT), ==, 8);
    g_assert_cmpuint(rd(a, APN_REG_OUT_SLOT_SHIFT), ==, 12);
    g_assert_cmpuint(rd(a, APN_REG_MAX_IN), ==, 100);
    g_assert_cmpuint(rd(a, APN_REG_CACHE_ENTRIES), ==, 7);
    g_assert_cmpuint(rd(a, APN_REG_MTU), ==, 9000);
    apn_stop(a);
}

/* ---- receive ------------------------------------------------------------- */

static void test_rx_write_contig(void)
{
    Apn *a = apn_up(NULL);
    uint64_t buf = gmem(a, 0x2000, 0xaa);
    uint8_t expect[0x2000], payload[37];
    uint64_t before[APN_CNT__COUNT];

    for (int i = 0; i < sizeof(payload); i++) {
        payload[i] = 0x40 + i;
    }
    /* entry 2: the second page of buf, 4 KiB */
    put_in_entry(a, 2, &(struct apn_in_entry) {
        .flags = APN_ENTRY_VALID | APN_IN_CONTIG,
        .base = buf + 0x1000, .size = 0x1000, .nonce = 0x12345678,
    });
    cnt_snap(a, before);
    inject_write(a, 2, 0x12345678, 100, payload, sizeof(payload));

    memset(expect, 0xaa, sizeof(expect));
    memcpy(expect + 0x1000 + 100, payload, sizeof(payload));
    assert_mem(a, buf, expect, sizeof(expect));
    g_assert_cmpuint(delta(a, before, APN_CNT_RX_FRAMES), ==, 1);
    g_assert_cmpuint(delta(a, before, APN_CNT_RX_SEGMENTS), ==, 1);
    g_assert_cmpuint(delta(a, before, APN_CNT_RX_BYTES), ==,
                     APN_ETH_HLEN + APN_FRAME_HDR_LEN + APN_SEG_HDR_LEN +
                     APN_SEG_PAD(sizeof(payload)) + APN_CRC_LEN);
    assert_drops(a, before, "");

    /* the last bytes of the extent are writable */
    inject_write(a, 2, 0x12345678, 0x1000 - 3, payload, 3);
    memcpy(expect + 0x2000 - 3, payload, 3);
    assert_mem(a, buf, expect, sizeof(expect));
    assert_drops(a, before, "");
    apn_stop(a);
}

/*
 * A page-list aperture: two pages listed in reverse order, the aperture
 * starting at first_byte 0x100; a write crossing the aperture's page
 * boundary is split between the two pages the list names.
 */
static void test_rx_write_page_list(void)
{
    Apn *a = apn_up(NULL);
    uint64_t pages = gmem(a, 0x2000, 0x55);
    uint64_t list = gmem(a, 0x1000, 0);
    uint64_t page_a = pages, page_b = pages + 0x1000;
    uint8_t expect[0x2000], payload[64], small[5] = { 1, 2, 3, 4, 5 };
    uint64_t before[APN_CNT__COUNT];

    for (int i = 0; i < sizeof(payload); i++) {
        payload[i] = 0x80 + i;
    }
    qtest_writeq(a->qts, list, page_b);
    qtest_writeq(a->qts, list + 8, page_a);
    put_in_entry(a, 5, &(struct apn_in_entry) {
        .flags = APN_ENTRY_VALID,
        .base = list, .size = 0x1000, .first_byte = 0x100, .nonce = 7,
    });
    cnt_snap(a, before);

    /* aperture offset 0 is byte 0x100 of the first listed page */
    inject_write(a, 5, 7, 0, small, sizeof(small));
    /* offsets 0xef0..0xf2f are bytes 0xff0..0x102f of the region */
    inject_write(a, 5, 7, 0xef0, payload, sizeof(payload));

    memset(expect, 0x55, sizeof(expect));
    memcpy(expect + 0x1000 + 0x100, small, sizeof(small));
    memcpy(expect + 0x1000 + 0xff0, payload, 16);
    memcpy(expect, payload + 16, 48);
    assert_mem(a, pages, expect, sizeof(expect));
    g_assert_cmpuint(delta(a, before, APN_CNT_RX_SEGMENTS), ==, 2);
    assert_drops(a, before, "");
    apn_stop(a);
}

/* Segments are checked one by one: a bad one does not stop the others. */
static void test_rx_multi_segment(void)
{
    Apn *a = apn_up(NULL);
    uint64_t buf = gmem(a, 0x1000, 0);
    static const uint8_t p0[6] = { 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5 };
    static const uint8_t p1[9] = { 0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5,
                                   0xb6, 0xb7, 0xb8 };
    uint8_t expect[0x1000];
    uint64_t before[APN_CNT__COUNT];
    Frame f;

    put_in_entry(a, 0, &(struct apn_in_entry) {
        .flags = APN_ENTRY_VALID | APN_IN_CONTIG,
        .base = buf, .size = 0x800, .nonce = 10,
    });
    put_in_entry(a, 1, &(struct apn_in_entry) {
        .flags = APN_ENTRY_VALID | APN_IN_CONTIG,
        .base = buf + 0x800, .size = 0x800, .nonce = 11,
    });
    frame_init(&f, 0, 10, 0x10, p0, sizeof(p0));
    f.seg[1] = (Seg) { .type = APN_SEG_WRITE, .in_index = 1, .nonce = 11,
                       .offset = 0x20, .data = p1, .len = sizeof(p1) };
    f.seg[2] = (Seg) { .type = APN_SEG_WRITE, .in_index = 1, .nonce = 12,
                       .offset = 0x40, .data = p1, .len = sizeof(p1) };
    f.seg[3] = (Seg) { .type = APN_SEG_WRITE, .in_index = 0, .nonce = 10,
                       .offset = 0x30, .data = p1, .len = 3 };
    f.nseg = f.n = 4;
    cnt_snap(a, before);
    inject_frame(a, &f);

    memset(expect, 0, sizeof(expect));
    memcpy(expect + 0x10, p0, sizeof(p0));
    memcpy(expect + 0x800 + 0x20, p1, sizeof(p1));
    memcpy(expect + 0x30, p1, 3);
    assert_mem(a, buf, expect, sizeof(expect));
    g_assert_cmpuint(delta(a, before, APN_CNT_RX_FRAMES), ==, 1);
    g_assert_cmpuint(delta(a, before, APN_CNT_RX_SEGMENTS), ==, 4);
    assert_drops(a, before, "rx_drop_nonce+1");
    apn_stop(a);
}

/*
 * Drop tests: entry 3 is a 4 KiB contiguous aperture over a page filled
 * with 0xaa, nonce 0xabcd0003. Each frame must leave the page untouched and
 * move exactly its own counter.
 */
#define DROP_IDX        3
#define DROP_NONCE      0xabcd0003
#define DROP_SIZE       0x1000

typedef struct DropFixture {
    Apn *a;
    uint64_t buf;
    uint8_t fill[DROP_SIZE];
    uint64_t before[APN_CNT__COUNT];
} DropFixture;

static const uint8_t drop_payload[16] = {
    0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7,
    0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf,
};

static void drop_setup(DropFixture *x, struct apn_in_entry *e)
{
    x->a = apn_up(NULL);
    x->buf = gmem(x->a, DROP_SIZE, 0xaa);
    memset(x->fill, 0xaa, sizeof(x->fill));
    if (e) {
        e->base = x->buf;
        put_in_entry(x->a, DROP_IDX, e);
    } else {
        struct apn_in_entry d = in_contig(x->buf, DROP_SIZE, DROP_NONCE);
        put_in_entry(x->a, DROP_IDX, &d);
    }
}

/* Inject @f; assert the aperture is untouched and only @counter moved. */
static void drop_expect(DropFixture *x, const Frame *f, const char *counter)
{
    g_autofree char *expect = g_strdup_printf("%s+1", counter);

    cnt_snap(x->a, x->before);
    inject_frame(x->a, f);
    assert_mem(x->a, x->buf, x->fill, DROP_SIZE);
    assert_drops(x->a, x->before, expect);
}

/* Inject @f; assert its segment is delivered, and nothing else written. */
static void drop_accept(DropFixture *x, const Frame *f)
{
    cnt_snap(x->a, x->before);
    inject_frame(x->a, f);
    memcpy(x->fill + f->seg[0].offset, f->seg[0].data, f->seg[0].len);
    assert_mem(x->a, x->buf, x->fill, DROP_SIZE);
    assert_drops(x->a, x->before, "");
}

static void drop_frame(Frame *f, uint32_t offset, uint16_t len)
{
    frame_init(f, DROP_IDX, DROP_NONCE, offset, drop_payload, len);
}

static void test_rx_drop_nonce(void)
{
    DropFixture x;
    Frame f;

    drop_setup(&x, NULL);
    drop_frame(&f, 0, 16);
    f.seg[0].nonce = DROP_NONCE + 1;
    drop_expect(&x, &f, "rx_drop_nonce");
    f.seg[0].nonce = 0;
    drop_expect(&x, &f, "rx_drop_nonce");
    apn_stop(x.a);
}

static void test_rx_drop_bounds(void)
{
    DropFixture x;
    Frame f;

    drop_setup(&x, NULL);
    drop_frame(&f, DROP_SIZE - 8, 16);              /* straddles the end */
    drop_expect(&x, &f, "rx_drop_bounds");
    drop_frame(&f, DROP_SIZE, 1);                   /* just past the end */
    drop_expect(&x, &f, "rx_drop_bounds");
    drop_frame(&f, 0xfffffff8, 16);                 /* offset + len wraps */
    drop_expect(&x, &f, "rx_drop_bounds");
    drop_frame(&f, DROP_SIZE - 16, 16);             /* ends at the end */
    drop_accept(&x, &f);
    apn_stop(x.a);
}

/* narrow_start/len restrict writes to [0x100, 0x200) inside the extent */
static void test_rx_drop_narrowed(void)
{
    struct apn_in_entry e = in_contig(0, DROP_SIZE, DROP_NONCE);
    DropFixture x;
    Frame f;

    e.narrow_start = 0x100;
    e.narrow_len = 0x100;
    drop_setup(&x, &e);
    drop_frame(&f, 0x80, 16);                       /* below the range */
    drop_expect(&x, &f, "rx_drop_bounds");
    drop_frame(&f, 0xf8, 16);                       /* straddles start */
    drop_expect(&x, &f, "rx_drop_bounds");
    drop_frame(&f, 0x1f8, 16);                      /* straddles end */
    drop_expect(&x, &f, "rx_drop_bounds");
    drop_frame(&f, 0x800, 16);                      /* above the range */
    drop_expect(&x, &f, "rx_drop_bounds");
    drop_frame(&f, 0x100, 16);                      /* first bytes */
    drop_accept(&x, &f);
    drop_frame(&f, 0x1f0, 16);                      /* last bytes */
    drop_accept(&x, &f);
    apn_stop(x.a);
}

/* A narrowing that reaches past the extent, or wraps, never widens it. */
static void test_rx_drop_narrowed_outside(void)
{
    struct apn_in_entry e = in_contig(0, DROP_SIZE / 2, DROP_NONCE);
    DropFixture x;
    Frame f;

    e.narrow_start = DROP_SIZE / 4;
    e.narrow_len = DROP_SIZE;
    drop_setup(&x, &e);
    drop_frame(&f, DROP_SIZE / 2, 16);              /* past the extent */
    drop_expect(&x, &f, "rx_drop_bounds");
    drop_frame(&f, DROP_SIZE - 16, 16);
    drop_expect(&x, &f, "rx_drop_bounds");

    e.narrow_start = 0xfffffff0;
    e.narrow_len = 0x20;                            /* wraps to 0x10 */
    put_in_entry(x.a, DROP_IDX, &e);
    wr(x.a, APN_REG_TABLE_INVAL, DROP_IDX);
    drop_frame(&f, 0, 16);
    drop_expect(&x, &f, "rx_drop_bounds");
    apn_stop(x.a);
}

static void test_rx_drop_invalid(void)
{
    struct apn_in_entry e = in_contig(0, DROP_SIZE, DROP_NONCE);
    DropFixture x;
    Frame f;

    e.flags &= ~APN_ENTRY_VALID;
    drop_setup(&x, &e);
    drop_frame(&f, 0, 16);
    drop_expect(&x, &f, "rx_drop_invalid");
    /* an all-zero entry inside the table is invalid too */
    frame_init(&f, DROP_IDX + 1, 0, 0, drop_payload, 16);
    drop_expect(&x, &f, "rx_drop_invalid");
    /* so is a valid entry that is not a data aperture */
    e.flags = APN_ENTRY_VALID | APN_IN_CONTIG |
              APN_ENTRY_TYPE_EVENT << APN_ENTRY_TYPE_SHIFT;
    put_in_entry(x.a, DROP_IDX, &e);
    wr(x.a, APN_REG_TABLE_INVAL, DROP_IDX);
    drop_frame(&f, 0, 16);
    drop_expect(&x, &f, "rx_drop_invalid");
    apn_stop(x.a);
}

static void test_rx_drop_index(void)
{
    DropFixture x;
    Frame f;

    drop_setup(&x, NULL);
    frame_init(&f, N_IN, DROP_NONCE, 0, drop_payload, 16);
    drop_expect(&x, &f, "rx_drop_index");
    frame_init(&f, 0xffffffff, DROP_NONCE, 0, drop_payload, 16);
    drop_expect(&x, &f, "rx_drop_index");
    /* shrinking the table puts the entry out of reach */
    wr(x.a, APN_REG_CTRL, 0);
    wr(x.a, APN_REG_IN_TABLE_COUNT, DROP_IDX);
    apn_enable(x.a);
    drop_frame(&f, 0, 16);
    drop_expect(&x, &f, "rx_drop_index");
    apn_stop(x.a);
}

static void test_rx_drop_crc(void)
{
    DropFixture x;
    uint8_t buf[FRAME_MAX];
    size_t len;
    Frame f;

    drop_setup(&x, NULL);
    drop_frame(&f, 0, 16);
    len = frame_encode(&f, buf);

    /* a flipped payload bit */
    buf[APN_ETH_HLEN + APN_FRAME_HDR_LEN + APN_SEG_HDR_LEN] ^= 1;
    cnt_snap(x.a, x.before);
    inject(x.a, buf, len);
    assert_mem(x.a, x.buf, x.fill, DROP_SIZE);
    assert_drops(x.a, x.before, "rx_drop_crc+1");

    /* a flipped CRC bit */
    len = frame_encode(&f, buf);
    buf[APN_ETH_HLEN + APN_FRAME_HDR_LEN + APN_SEG_HDR_LEN + 16] ^= 0x80;
    cnt_snap(x.a, x.before);
    inject(x.a, buf, len);
    assert_mem(x.a, x.buf, x.fill, DROP_SIZE);
    assert_drops(x.a, x.before, "rx_drop_crc+1");
    apn_stop(x.a);
}

static void test_rx_drop_malformed(void)
{
    static const size_t cuts[] = {
        APN_ETH_HLEN - 1,                               /* short Ethernet */
        APN_ETH_HLEN + APN_FRAME_HDR_LEN,               /* no CRC */
        APN_ETH_HLEN + APN_FRAME_HDR_LEN + 20,          /* half a header */
        APN_ETH_HLEN + APN_FRAME_HDR_LEN + APN_SEG_HDR_LEN + 8, /* payload */
        APN_ETH_HLEN + APN_FRAME_HDR_LEN + APN_SEG_HDR_LEN + 16, /* no CRC */
    };
    DropFixture x;
    uint8_t buf[FRAME_MAX];
    Frame f;

    drop_setup(&x, NULL);
    drop_frame(&f, 0, 16);
    for (int i = 0; i < ARRAY_SIZE(cuts); i++) {
        frame_encode(&f, buf);
        cnt_snap(x.a, x.before);
        inject(x.a, buf, cuts[i]);
        assert_mem(x.a, x.buf, x.fill, DROP_SIZE);
        assert_drops(x.a, x.before, "rx_drop_malformed+1");
    }

    drop_frame(&f, 0, 16);
    f.version = APN_WIRE_VERSION + 1;               /* valid CRC */
    drop_expect(&x, &f, "rx_drop_malformed");
    drop_frame(&f, 0, 16);
    f.nseg = 0;
    drop_expect(&x, &f, "rx_drop_malformed");
    drop_frame(&f, 0, 16);
    f.nseg = 2;                                     /* one is missing */
    drop_expect(&x, &f, "rx_drop_malformed");
    drop_frame(&f, 0, 16);
    f.seg[0].type = 0x7f;                           /* unknown segment */
    drop_expect(&x, &f, "rx_drop_malformed");
    apn_stop(x.a);
}

static void test_rx_drop_filtered(void)
{
    DropFixture x;
    Frame f;

    drop_setup(&x, NULL);
    drop_frame(&f, 0, 16);
    memcpy(f.dst, other_mac, 6);
    drop_expect(&x, &f, "rx_filtered");
    drop_frame(&f, 0, 16);
    f.dst_host = SELF_HOST + 1;
    drop_expect(&x, &f, "rx_filtered");
    /* broadcast is accepted */
    drop_frame(&f, 0, 16);
    memset(f.dst, 0xff, 6);
    drop_accept(&x, &f);
    apn_stop(x.a);
}

static void test_rx_drop_not_ci(void)
{
    DropFixture x;
    Frame f;

    drop_setup(&x, NULL);
    drop_frame(&f, 0, 16);
    f.ethertype = 0x86dd;                           /* IPv6 */
    drop_expect(&x, &f, "rx_drop_not_ci");
    /* IPv4 is for connection messages: a CI frame in it is a bad packet */
    f.ethertype = 0x0800;
    drop_expect(&x, &f, "rx_drop_bad_ip");
    drop_frame(&f, 0, 16);
    f.ethertype = APN_ETHERTYPE + 1;
    drop_expect(&x, &f, "rx_drop_not_ci");
    apn_stop(x.a);
}

static void test_rx_drop_disabled(void)
{
    DropFixture x;
    Frame f;

    drop_setup(&x, NULL);
    wr(x.a, APN_REG_CTRL, 0);
    drop_frame(&f, 0, 16);
    drop_expect(&x, &f, "rx_drop_disabled");
    apn_enable(x.a);
    drop_accept(&x, &f);
    apn_stop(x.a);
}

/* src_host 0x0200 with mask 0xff00: any 0x02xx sender is accepted */
static void test_rx_drop_src_host(void)
{
    struct apn_in_entry e = in_contig(0, DROP_SIZE, DROP_NONCE);
    DropFixture x;
    Frame f;

    e.flags |= APN_IN_CHECK_SRC_HOST;
    e.src_host = 0x0200;
    e.src_host_mask = 0xff00;
    drop_setup(&x, &e);
    drop_frame(&f, 0, 16);
    f.src_host = 0x0302;
    drop_expect(&x, &f, "rx_drop_src_host");
    f.src_host = 0x0002;
    drop_expect(&x, &f, "rx_drop_src_host");
    f.src_host = 0x02ff;
    drop_accept(&x, &f);
    drop_frame(&f, 0x40, 16);
    f.src_host = 0x0200;
    drop_accept(&x, &f);
    apn_stop(x.a);
}

static void test_rx_drop_src_mac(void)
{
    struct apn_in_entry e = in_contig(0, DROP_SIZE, DROP_NONCE);
    DropFixture x;
    Frame f;

    e.flags |= APN_IN_CHECK_SRC_MAC;
    memcpy(e.src_mac, peer_mac, 6);
    drop_setup(&x, &e);
    drop_frame(&f, 0, 16);
    memcpy(f.src, other_mac, 6);
    drop_expect(&x, &f, "rx_drop_src_mac");
    memcpy(f.src, peer_mac, 6);
    drop_accept(&x, &f);
    apn_stop(x.a);
}

/*
 * APN_ENTRY_SEQ: only the expected sequence number is accepted, and the
 * entry's seq in memory is written back incremented.
 */
static void test_rx_seq(void)
{
    struct apn_in_entry e = in_contig(0, DROP_SIZE, DROP_NONCE);
    DropFixture x;
    Frame f;

    e.flags |= APN_ENTRY_SEQ;
    e.seq = 5;
    drop_setup(&x, &e);

    drop_frame(&f, 0, 16);
    f.seg[0].flags = APN_SEG_F_SEQ;
    f.seg[0].seq = 5;
    drop_accept(&x, &f);
    g_assert_cmpuint(in_entry_seq(x.a, DROP_IDX), ==, 6);

    drop_frame(&f, 0x20, 16);                       /* a replay */
    f.seg[0].flags = APN_SEG_F_SEQ;
    f.seg[0].seq = 5;
    drop_expect(&x, &f, "rx_drop_seq");
    f.seg[0].seq = 7;                               /* a gap */
    drop_expect(&x, &f, "rx_drop_seq");
    f.seg[0].flags = 0;                             /* no sequence number */
    f.seg[0].seq = 6;
    drop_expect(&x, &f, "rx_drop_seq");
    g_assert_cmpuint(in_entry_seq(x.a, DROP_IDX), ==, 6);

    f.seg[0].flags = APN_SEG_F_SEQ;
    drop_accept(&x, &f);
    g_assert_cmpuint(in_entry_seq(x.a, DROP_IDX), ==, 7);
    apn_stop(x.a);
}

/* With Bus Master off the device must not write guest memory. */
static void test_rx_drop_dma(void)
{
    DropFixture x;
    uint16_t cmd;
    Frame f;

    drop_setup(&x, NULL);
    drop_frame(&f, 0, 16);
    drop_accept(&x, &f);                            /* entry now cached */
    cmd = qpci_config_readw(x.a->dev, PCI_COMMAND);
    qpci_config_writew(x.a->dev, PCI_COMMAND, cmd & ~PCI_COMMAND_MASTER);
    drop_frame(&f, 0x100, 16);
    drop_expect(&x, &f, "rx_drop_dma");
    qpci_config_writew(x.a->dev, PCI_COMMAND, cmd);
    drop_accept(&x, &f);
    apn_stop(x.a);
}

/* A page list naming a page that is not memory: rx_drop_dma. */
static void test_rx_drop_dma_page(void)
{
    Apn *a = apn_up(NULL);
    uint64_t page = gmem(a, 0x1000, 0x55);
    uint64_t list = gmem(a, 0x1000, 0);
    uint64_t before[APN_CNT__COUNT];
    uint8_t b[8] = { 0 };

    qtest_writeq(a->qts, list, page);
    qtest_writeq(a->qts, list + 8, 0x1000000000ull);    /* 64 GiB */
    put_in_entry(a, 0, &(struct apn_in_entry) {
        .flags = APN_ENTRY_VALID, .base = list, .size = 0x2000, .nonce = 1,
    });
    cnt_snap(a, before);
    inject_write(a, 0, 1, 0x1000, b, sizeof(b));
    assert_drops(a, before, "rx_drop_dma+1");
    cnt_snap(a, before);
    inject_write(a, 0, 1, 0xffc, b, sizeof(b));         /* part way */
    assert_drops(a, before, "rx_drop_dma+1");
    cnt_snap(a, before);
    inject_write(a, 0, 1, 0xff8, b, sizeof(b));         /* all in page 0 */
    assert_drops(a, before, "");
    apn_stop(a);
}

/* An incoming entry the device cannot read counts as rx_drop_index. */
static void test_rx_drop_unreadable(void)
{
    DropFixture x;
    Frame f;

    drop_setup(&x, NULL);
    wr(x.a, APN_REG_CTRL, 0);
    wr(x.a, APN_REG_IN_TABLE_LO, 0);
    wr(x.a, APN_REG_IN_TABLE_HI, 0x10);             /* 64 GiB: nothing */
    apn_enable(x.a);
    drop_frame(&f, 0, 16);
    drop_expect(&x, &f, "rx_drop_index");
    apn_stop(x.a);
}

/* ---- transmit ------------------------------------------------------------ */

#define TX_SLOT         3
#define TX_IN_INDEX     42
#define TX_NONCE        0xdeadbeef

static Apn *tx_up(const char *props)
{
    Apn *a = apn_up(props);
    struct apn_out_entry e = out_entry(PEER_HOST, TX_IN_INDEX, TX_NONCE,
                                       0x1000);

    put_out_entry(a, TX_SLOT, &e);
    return a;
}

static TxExpect tx_expect(uint32_t offset, const uint8_t *payload,
                          uint16_t len)
{
    return (TxExpect) {
        .dst = peer_mac, .dst_host = PEER_HOST,
        .in_index = TX_IN_INDEX, .nonce = TX_NONCE,
        .offset = offset, .out_index = TX_SLOT,
        .payload = payload, .len = len,
    };
}

/* Contiguous stores become one segment, sent on a fence. */
static void test_tx_store(void)
{
    Apn *a = tx_up(NULL);
    static const uint8_t data[16] = {
        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
        0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,
    };
    uint64_t before[APN_CNT__COUNT];
    uint8_t buf[FRAME_MAX];
    TxExpect x = tx_expect(0x40, data, sizeof(data));
    size_t n;

    cnt_snap(a, before);
    /* three stores, 4 + 4 + 8 bytes: one segment */
    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0x40), 0x44332211);
    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0x44), 0x88776655);
    qtest_writeq(a->qts, slot_addr(a, TX_SLOT, 0x48), 0x100f0e0d0c0b0a09ull);
    assert_no_frame(a);                             /* still gathering */
    fence(a, 0);
    n = recv_frame(a, buf);
    check_tx_frame(buf, n, &x);
    assert_no_frame(a);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_STORES), ==, 3);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_FRAMES), ==, 1);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_SEGMENTS), ==, 1);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_BYTES), ==, n);
    assert_drops(a, before, "");

    /* APN_REG_FLUSH sends too; a fence with nothing gathered sends nothing */
    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0x800), 0x44332211);
    wr(a, APN_REG_FLUSH, 0);
    x = tx_expect(0x800, data, 4);
    recv_check(a, &x);
    fence(a, 0);
    wr(a, APN_REG_FLUSH, 0);
    assert_no_frame(a);
    apn_stop(a);
}

/* A one-byte store: the frame is padded with zeros to 60 bytes. */
static void test_tx_pad(void)
{
    Apn *a = tx_up(NULL);
    uint8_t b = 0x5a;
    TxExpect x = tx_expect(0xfff, &b, 1);

    qtest_writeb(a->qts, slot_addr(a, TX_SLOT, 0xfff), b);
    fence(a, 0);
    recv_check(a, &x);                  /* length and zero padding */
    apn_stop(a);
}

/* Stores of every width, contiguous, gather into one segment in order. */
static void test_tx_gather(void)
{
    Apn *a = tx_up(NULL);
    uint8_t data[24];
    TxExpect x = tx_expect(0x100, data, sizeof(data));

    for (int i = 0; i < sizeof(data); i++) {
        data[i] = 0xc0 + i;
    }
    qtest_writeb(a->qts, slot_addr(a, TX_SLOT, 0x100), ldub_p(data));
    qtest_writeb(a->qts, slot_addr(a, TX_SLOT, 0x101), ldub_p(data + 1));
    qtest_writew(a->qts, slot_addr(a, TX_SLOT, 0x102), lduw_le_p(data + 2));
    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0x104), ldl_le_p(data + 4));
    qtest_writeq(a->qts, slot_addr(a, TX_SLOT, 0x108), ldq_le_p(data + 8));
    qtest_writeq(a->qts, slot_addr(a, TX_SLOT, 0x110), ldq_le_p(data + 16));
    fence(a, 5);                        /* any endpoint's fence */
    recv_check(a, &x);
    assert_no_frame(a);
    apn_stop(a);
}

/*
 * A store not contiguous with the burst, or to another aperture, closes the
 * burst: segments leave in store order. Bursts to one host are packed into
 * one frame (FIG 12 step 6), sent on a fence.
 */
static void test_tx_split(void)
{
    Apn *a = tx_up(NULL);
    struct apn_out_entry e = out_entry(PEER_HOST, 9, 0x99, 0x1000);
    static const uint8_t d[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    SegExpect s[4] = {
        seg_expect(TX_SLOT, TX_IN_INDEX, TX_NONCE, 0x10, d, 4),
        seg_expect(TX_SLOT, TX_IN_INDEX, TX_NONCE, 0x20, d, 8),
        seg_expect(TX_SLOT + 1, 9, 0x99, 0x28, d, 4),
        /* going backwards is not contiguous either */
        seg_expect(TX_SLOT + 1, 9, 0x99, 0x24, d + 4, 4),
    };
    TxExpect x;

    put_out_entry(a, TX_SLOT + 1, &e);
    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0x10), ldl_le_p(d));
    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0x20), ldl_le_p(d));
    assert_no_frame(a);
    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0x24), ldl_le_p(d + 4));
    qtest_writel(a->qts, slot_addr(a, TX_SLOT + 1, 0x28), ldl_le_p(d));
    qtest_writel(a->qts, slot_addr(a, TX_SLOT + 1, 0x24), ldl_le_p(d + 4));
    assert_no_frame(a);
    fence(a, 0);
    recv_check_segs(a, peer_mac, PEER_HOST, s, 4);
    assert_no_frame(a);

    /* a read from the window does not pass the stores before it */
    x = (TxExpect) {
        .dst = peer_mac, .dst_host = PEER_HOST, .in_index = 9,
        .nonce = 0x99, .offset = 0x24, .out_index = TX_SLOT + 1,
        .payload = d + 4, .len = 4,
    };
    qtest_writel(a->qts, slot_addr(a, TX_SLOT + 1, 0x24), ldl_le_p(d + 4));
    qtest_readl(a->qts, slot_addr(a, TX_SLOT + 1, 0x800));
    recv_check(a, &x);
    apn_stop(a);
}

/* A burst longer than one frame holds goes out in MTU-sized frames. */
static void test_tx_mtu(void)
{
    Apn *a = tx_up(NULL);
    uint8_t data[2048], buf[FRAME_MAX];
    uint32_t got = 0;
    int frames = 0;

    for (int i = 0; i < sizeof(data); i++) {
        data[i] = i * 7 + (i >> 8);
    }
    for (int i = 0; i < sizeof(data); i += 8) {
        qtest_writeq(a->qts, slot_addr(a, TX_SLOT, i), ldq_le_p(data + i));
    }
    fence(a, 0);
    while (got < sizeof(data)) {
        size_t n = recv_frame(a, buf);
        uint16_t len = lduw_be_p(buf + APN_ETH_HLEN + APN_FRAME_HDR_LEN + 2);
        TxExpect x = tx_expect(got, data + got, len);

        g_assert_cmpuint(n, <=, APN_ETH_HLEN + DEFAULT_MTU);
        g_assert_cmpuint(len, >, 0);
        g_assert_cmpuint(got + len, <=, sizeof(data));
        check_tx_frame(buf, n, &x);
        got += len;
        frames++;
    }
    /* 1464 payload bytes fill a 1500-byte frame: two frames */
    g_assert_cmpint(frames, ==, 2);
    assert_no_frame(a);
    apn_stop(a);
}

/*
 * Without a fence a burst goes out once no store has arrived for
 * x-flush-delay-ns (an idle timer, restarted by every store).
 */
static void test_tx_timer(void)
{
    Apn *a = tx_up(",x-flush-delay-ns=100000");
    static const uint8_t d[8] = { 9, 8, 7, 6, 5, 4, 3, 2 };
    TxExpect x = tx_expect(0x200, d, 4);

    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0x200), ldl_le_p(d));
    qtest_clock_step(a->qts, 50000);
    assert_no_frame(a);
    qtest_clock_step(a->qts, 60000);
    recv_check(a, &x);
    qtest_clock_step(a->qts, 1000000);
    assert_no_frame(a);

    /* each store restarts the wait */
    x = tx_expect(0x200, d, 8);
    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0x200), ldl_le_p(d));
    qtest_clock_step(a->qts, 60000);
    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0x204), ldl_le_p(d + 4));
    qtest_clock_step(a->qts, 60000);
    assert_no_frame(a);
    qtest_clock_step(a->qts, 50000);
    recv_check(a, &x);
    apn_stop(a);
}

/* The default idle time is 50 us. */
static void test_tx_timer_default(void)
{
    Apn *a = tx_up(NULL);
    static const uint8_t d[4] = { 9, 8, 7, 6 };
    TxExpect x = tx_expect(0x200, d, 4);

    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0x200), ldl_le_p(d));
    qtest_clock_step(a->qts, 49000);
    assert_no_frame(a);
    qtest_clock_step(a->qts, 2000);
    recv_check(a, &x);
    apn_stop(a);
}

/*
 * TABLE_INVAL, HOST_ID, a route and clearing CTRL.ENABLE each send the
 * gathered burst first, under the state it was gathered with.
 */
static void test_tx_flush_triggers(void)
{
    Apn *a = tx_up(NULL);
    static const uint8_t d[4] = { 0x31, 0x32, 0x33, 0x34 };
    TxExpect x = tx_expect(0, d, 4);

    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0), ldl_le_p(d));
    wr(a, APN_REG_TABLE_INVAL, APN_INVAL_OUT | TX_SLOT);
    recv_check(a, &x);

    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0), ldl_le_p(d));
    wr(a, APN_REG_HOST_ID, SELF_HOST);              /* same value */
    recv_check(a, &x);

    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0), ldl_le_p(d));
    set_route(a, PEER_HOST + 1, other_mac);         /* another route */
    recv_check(a, &x);

    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0), ldl_le_p(d));
    set_route(a, PEER_HOST, other_mac);             /* re-routed after */
    recv_check(a, &x);
    x.dst = other_mac;

    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0), ldl_le_p(d));
    wr(a, APN_REG_CTRL, 0);
    recv_check(a, &x);
    assert_no_frame(a);
    apn_stop(a);
}

/* APN_ENTRY_SEQ on an outgoing entry: numbered frames, seq written back. */
static void test_tx_seq(void)
{
    Apn *a = tx_up(NULL);
    struct apn_out_entry e = out_entry(PEER_HOST, TX_IN_INDEX, TX_NONCE,
                                       0x1000);
    static const uint8_t d[4] = { 1, 2, 3, 4 };
    TxExpect x = tx_expect(0, d, 4);

    e.flags |= APN_ENTRY_SEQ;
    e.seq = 10;
    put_out_entry(a, TX_SLOT, &e);
    x.seg_flags = APN_SEG_F_SEQ;

    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0), ldl_le_p(d));
    fence(a, 0);
    x.seq = 10;
    recv_check(a, &x);
    g_assert_cmpuint(out_entry_seq(a, TX_SLOT), ==, 11);

    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0), ldl_le_p(d));
    fence(a, 0);
    x.seq = 11;
    recv_check(a, &x);
    g_assert_cmpuint(out_entry_seq(a, TX_SLOT), ==, 12);
    apn_stop(a);
}

static void tx_drop_expect(Apn *a, uint32_t slot, uint32_t off,
                           const char *expect)
{
    uint64_t before[APN_CNT__COUNT];

    cnt_snap(a, before);
    qtest_writel(a->qts, slot_addr(a, slot, off), 0x01020304);
    fence(a, 0);
    assert_no_frame(a);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_STORES), ==, 1);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_FRAMES), ==, 0);
    assert_drops(a, before, expect);
}

static void test_tx_drop_invalid(void)
{
    Apn *a = tx_up(NULL);
    struct apn_out_entry e = out_entry(PEER_HOST, 1, 1, 0x1000);

    tx_drop_expect(a, TX_SLOT + 1, 0, "tx_drop_invalid+1");   /* zeroed */
    tx_drop_expect(a, N_OUT, 0, "tx_drop_invalid+1");         /* > count */
    tx_drop_expect(a, 255, 0xfffc, "tx_drop_invalid+1");
    e.flags = 0;
    put_out_entry(a, TX_SLOT + 2, &e);
    tx_drop_expect(a, TX_SLOT + 2, 0, "tx_drop_invalid+1");
    apn_stop(a);
}

/* A window larger than the slots: stores past the last slot */
static void test_tx_drop_no_slot(void)
{
    Apn *a = apn_start(",out-apertures=3");

    g_assert_cmphex(a->bar2_size, ==, 4 << 16);
    apn_tables(a);
    wr(a, APN_REG_OUT_TABLE_COUNT, 3);
    apn_enable(a);
    tx_drop_expect(a, 3, 0, "tx_drop_invalid+1");
    apn_stop(a);
}

static void test_tx_drop_bounds(void)
{
    Apn *a = tx_up(NULL);
    struct apn_out_entry e = out_entry(PEER_HOST, TX_IN_INDEX, TX_NONCE,
                                       0x100);
    static const uint8_t d[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    uint64_t before[APN_CNT__COUNT];
    TxExpect x = tx_expect(0xf8, d, 8);

    put_out_entry(a, TX_SLOT, &e);
    tx_drop_expect(a, TX_SLOT, 0x100, "tx_drop_bounds+1");
    tx_drop_expect(a, TX_SLOT, 0xfff0, "tx_drop_bounds+1");

    /* a burst that runs past the size keeps what fitted */
    cnt_snap(a, before);
    qtest_writeq(a->qts, slot_addr(a, TX_SLOT, 0xf8), ldq_le_p(d));
    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0x100), 0);
    fence(a, 0);
    recv_check(a, &x);
    assert_no_frame(a);
    assert_drops(a, before, "tx_drop_bounds+1");
    apn_stop(a);
}

static void test_tx_drop_no_route(void)
{
    Apn *a = tx_up(NULL);
    struct apn_out_entry e = out_entry(0x63, TX_IN_INDEX, TX_NONCE, 0x1000);

    put_out_entry(a, TX_SLOT + 1, &e);
    tx_drop_expect(a, TX_SLOT + 1, 0, "tx_drop_no_route+1");
    /* a route without APN_HOST_VALID is no route */
    qpci_io_writeq(a->dev, a->bar0, APN_REG_HOST_MAC_BASE + 8 * 0x63,
                   0x0000020000a55452ull);
    tx_drop_expect(a, TX_SLOT + 1, 0, "tx_drop_no_route+1");
    /* nor is a host beyond the host table */
    e.dest_host = APN_HOST_MAC_ENTRIES;
    put_out_entry(a, TX_SLOT + 2, &e);
    tx_drop_expect(a, TX_SLOT + 2, 0, "tx_drop_no_route+1");
    apn_stop(a);
}

/* An outgoing entry the device cannot read counts as tx_drop_invalid. */
static void test_tx_drop_unreadable(void)
{
    Apn *a = tx_up(NULL);

    wr(a, APN_REG_CTRL, 0);
    wr(a, APN_REG_OUT_TABLE_HI, 0x10);              /* 64 GiB: nothing */
    apn_enable(a);
    tx_drop_expect(a, TX_SLOT, 0, "tx_drop_invalid+1");
    apn_stop(a);
}

static void test_tx_drop_disabled(void)
{
    Apn *a = tx_up(NULL);

    wr(a, APN_REG_CTRL, 0);
    tx_drop_expect(a, TX_SLOT, 0, "tx_drop_disabled+1");
    apn_stop(a);
}

/*
 * A store to an aperture whose dest_host is our own HOST_ID (routed to our
 * own MAC) lands in our incoming aperture and never reaches the wire.
 */
static void test_loopback(void)
{
    Apn *a = apn_up(NULL);
    struct apn_out_entry o = out_entry(SELF_HOST, 6, 0x600d, 0x1000);
    uint64_t buf = gmem(a, 0x1000, 0xee);
    struct apn_in_entry i = in_contig(buf, 0x1000, 0x600d);
    uint64_t before[APN_CNT__COUNT];
    uint8_t expect[0x1000];

    set_route(a, SELF_HOST, dev_mac);
    put_out_entry(a, 1, &o);
    put_in_entry(a, 6, &i);
    cnt_snap(a, before);
    qtest_writeq(a->qts, slot_addr(a, 1, 0x300), 0x8877665544332211ull);
    fence(a, 0);
    assert_no_frame(a);

    memset(expect, 0xee, sizeof(expect));
    stq_le_p(expect + 0x300, 0x8877665544332211ull);
    assert_mem(a, buf, expect, sizeof(expect));
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_FRAMES), ==, 1);
    g_assert_cmpuint(delta(a, before, APN_CNT_RX_FRAMES), ==, 1);
    g_assert_cmpuint(delta(a, before, APN_CNT_RX_SEGMENTS), ==, 1);
    assert_drops(a, before, "");
    apn_stop(a);
}

/* ---- mapping cache ------------------------------------------------------- */

static void assert_cache(Apn *a, const uint64_t *before, uint64_t hits,
                         uint64_t misses, uint64_t evictions)
{
    g_assert_cmpuint(delta(a, before, APN_CNT_CACHE_HITS), ==, hits);
    g_assert_cmpuint(delta(a, before, APN_CNT_CACHE_MISSES), ==, misses);
    g_assert_cmpuint(delta(a, before, APN_CNT_CACHE_EVICTIONS), ==,
                     evictions);
}

/* Four cache entries, five apertures: misses, hits and LRU eviction. */
static void test_cache_lru(void)
{
    Apn *a = apn_up(",cache-entries=4");
    uint64_t buf = gmem(a, 0x1000, 0);
    uint64_t before[APN_CNT__COUNT];
    uint8_t b = 0x77;

    for (int i = 0; i < 5; i++) {
        struct apn_in_entry e = in_contig(buf + i * 0x100, 0x100, 100 + i);
        put_in_entry(a, i, &e);
    }
    cnt_snap(a, before);
    for (int i = 0; i < 4; i++) {
        inject_write(a, i, 100 + i, 0, &b, 1);
    }
    assert_cache(a, before, 0, 4, 0);

    cnt_snap(a, before);
    inject_write(a, 0, 100, 1, &b, 1);
    inject_write(a, 0, 100, 2, &b, 1);
    assert_cache(a, before, 2, 0, 0);

    /* 4 is new: evicts the least recently used, 1 (0 was just used) */
    cnt_snap(a, before);
    inject_write(a, 4, 104, 0, &b, 1);
    assert_cache(a, before, 0, 1, 1);
    cnt_snap(a, before);
    inject_write(a, 0, 100, 3, &b, 1);
    inject_write(a, 4, 104, 1, &b, 1);
    assert_cache(a, before, 2, 0, 0);
    cnt_snap(a, before);
    inject_write(a, 1, 101, 1, &b, 1);
    assert_cache(a, before, 0, 1, 1);
    assert_drops(a, before, "");

    /* cached now: 1, 4, 0, 3; an invalidated entry's slot is reused first */
    wr(a, APN_REG_TABLE_INVAL, 4);
    cnt_snap(a, before);
    inject_write(a, 2, 102, 1, &b, 1);
    assert_cache(a, before, 0, 1, 0);
    inject_write(a, 1, 101, 2, &b, 1);
    inject_write(a, 0, 100, 4, &b, 1);
    inject_write(a, 3, 103, 4, &b, 1);
    assert_cache(a, before, 3, 1, 0);
    apn_stop(a);
}

/*
 * Entries are cached like a TLB: a change in memory is not seen until the
 * OS writes TABLE_INVAL for that table and index (or all of them).
 */
static void test_cache_inval(void)
{
    Apn *a = tx_up(NULL);
    uint64_t buf = gmem(a, 0x1000, 0);
    struct apn_in_entry e = in_contig(buf, 0x1000, 1111);
    struct apn_out_entry o = out_entry(PEER_HOST, TX_IN_INDEX + 1, TX_NONCE,
                                       0x1000);
    uint64_t before[APN_CNT__COUNT];
    static const uint8_t d[4] = { 1, 2, 3, 4 };
    uint8_t b = 0x99;
    TxExpect x = tx_expect(0, d, 4);

    put_in_entry(a, 0, &e);
    put_in_entry(a, 1, &e);
    cnt_snap(a, before);
    inject_write(a, 0, 1111, 0, &b, 1);
    inject_write(a, 1, 1111, 1, &b, 1);
    assert_drops(a, before, "");

    /* new nonce in memory: the cached copy still rules */
    e.nonce = 2222;
    put_in_entry(a, 0, &e);
    put_in_entry(a, 1, &e);
    cnt_snap(a, before);
    inject_write(a, 0, 2222, 0, &b, 1);
    assert_drops(a, before, "rx_drop_nonce+1");
    recv_seg_error(a, 0, 0, APN_CNT_RX_DROP_NONCE);
    cnt_snap(a, before);
    inject_write(a, 0, 1111, 0, &b, 1);
    assert_drops(a, before, "");

    /* invalidating the outgoing entry 0 does not touch incoming entry 0 */
    wr(a, APN_REG_TABLE_INVAL, APN_INVAL_OUT | 0);
    cnt_snap(a, before);
    inject_write(a, 0, 1111, 0, &b, 1);
    assert_drops(a, before, "");

    wr(a, APN_REG_TABLE_INVAL, 0);
    cnt_snap(a, before);
    inject_write(a, 0, 1111, 0, &b, 1);
    assert_drops(a, before, "rx_drop_nonce+1");
    recv_seg_error(a, 0, 0, APN_CNT_RX_DROP_NONCE);
    cnt_snap(a, before);
    inject_write(a, 0, 2222, 0, &b, 1);
    assert_drops(a, before, "");
    /* entry 1 was not invalidated */
    cnt_snap(a, before);
    inject_write(a, 1, 1111, 0, &b, 1);
    assert_drops(a, before, "");
    wr(a, APN_REG_TABLE_INVAL, APN_INVAL_ALL_INDEX);
    cnt_snap(a, before);
    inject_write(a, 1, 2222, 0, &b, 1);
    assert_drops(a, before, "");

    /* the same for an outgoing entry */
    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0), ldl_le_p(d));
    fence(a, 0);
    recv_check(a, &x);
    put_out_entry(a, TX_SLOT, &o);
    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0), ldl_le_p(d));
    fence(a, 0);
    recv_check(a, &x);
    wr(a, APN_REG_TABLE_INVAL, TX_SLOT);            /* incoming table */
    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0), ldl_le_p(d));
    fence(a, 0);
    recv_check(a, &x);
    wr(a, APN_REG_TABLE_INVAL, APN_INVAL_OUT | TX_SLOT);
    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0), ldl_le_p(d));
    fence(a, 0);
    x.in_index = TX_IN_INDEX + 1;
    recv_check(a, &x);

    o.dest_in_index = TX_IN_INDEX + 2;
    put_out_entry(a, TX_SLOT, &o);
    wr(a, APN_REG_TABLE_INVAL, APN_INVAL_ALL_INDEX);    /* incoming only */
    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0), ldl_le_p(d));
    fence(a, 0);
    recv_check(a, &x);
    wr(a, APN_REG_TABLE_INVAL, APN_INVAL_OUT | APN_INVAL_ALL_INDEX);
    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0), ldl_le_p(d));
    fence(a, 0);
    x.in_index = TX_IN_INDEX + 2;
    recv_check(a, &x);
    apn_stop(a);
}

/* ---- OS queue and MSI-X -------------------------------------------------- */

#define OSQ_SIZE        8
#define OSQ_BYTES       (sizeof(struct apn_queue_ctrl) + \
                         OSQ_SIZE * sizeof(struct apn_event))

static uint64_t osq_up(Apn *a)
{
    /* one page: the queue, then a guard area that must stay 0x5c */
    uint64_t q = gmem(a, 0x1000, 0x5c);

    qtest_memset(a->qts, q, 0, OSQ_BYTES);
    wr(a, APN_REG_OSQ_BASE_LO, (uint32_t)q);
    wr(a, APN_REG_OSQ_BASE_HI, q >> 32);
    wr(a, APN_REG_OSQ_SIZE, OSQ_SIZE);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_SIZE), ==, OSQ_SIZE);
    return q;
}

static uint32_t osq_mirror(Apn *a, uint64_t q, size_t field)
{
    return qtest_readl(a->qts, q + field);
}

static void check_event(Apn *a, uint64_t q, uint32_t slot, uint8_t type,
                        uint32_t info)
{
    uint8_t ev[16];

    qtest_memread(a->qts, q + sizeof(struct apn_queue_ctrl) + 16 * slot,
                  ev, sizeof(ev));
    g_assert_cmpuint(ev[0], ==, type);
    g_assert_cmpuint(ev[1], ==, 0);
    g_assert_cmpuint(lduw_le_p(ev + 2), ==, 0);
    g_assert_cmpuint(ldl_le_p(ev + 4), ==, info);
    g_assert_cmpuint(ldq_le_p(ev + 8), ==, 0);
}

static void msix_program(Apn *a, int vec, uint64_t addr, uint32_t data)
{
    QPCIDevice *d = a->dev;
    uint64_t off = d->msix_table_off + vec * PCI_MSIX_ENTRY_SIZE;

    qpci_io_writel(d, d->msix_table_bar, off + PCI_MSIX_ENTRY_LOWER_ADDR,
                   (uint32_t)addr);
    qpci_io_writel(d, d->msix_table_bar, off + PCI_MSIX_ENTRY_UPPER_ADDR,
                   addr >> 32);
    qpci_io_writel(d, d->msix_table_bar, off + PCI_MSIX_ENTRY_DATA, data);
}

static void msix_mask(Apn *a, int vec, bool masked)
{
    QPCIDevice *d = a->dev;
    uint64_t off = d->msix_table_off + vec * PCI_MSIX_ENTRY_SIZE;

    qpci_io_writel(d, d->msix_table_bar, off + PCI_MSIX_ENTRY_VECTOR_CTRL,
                   masked ? PCI_MSIX_ENTRY_CTRL_MASKBIT : 0);
}

/* IRQ_TEST posts APN_EV_TEST (info = vector) and raises that vector. */
static void test_osq_irq_test(void)
{
    Apn *a = apn_start(NULL);
    uint64_t q = osq_up(a);
    uint64_t msi = gmem(a, 0x1000, 0);
    uint64_t before[APN_CNT__COUNT];

    qpci_msix_enable(a->dev);
    msix_program(a, 0, msi, 0x4000);
    msix_program(a, 1, msi + 4, 0x4001);
    g_assert_true(qpci_msix_masked(a->dev, 0));

    /* masked: the event is posted and the vector left pending */
    cnt_snap(a, before);
    wr(a, APN_REG_IRQ_TEST, APN_VEC_OSQ);
    check_event(a, q, 0, APN_EV_TEST, APN_VEC_OSQ);
    g_assert_cmpuint(osq_mirror(a, q, offsetof(struct apn_queue_ctrl,
                                               wrptr)), ==, 1);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 1);
    g_assert_true(qpci_msix_pending(a->dev, 0));
    g_assert_false(qpci_msix_pending(a->dev, 1));
    g_assert_cmpuint(qtest_readl(a->qts, msi), ==, 0);
    g_assert_cmpuint(delta(a, before, APN_CNT_OSQ_EVENTS), ==, 1);
    g_assert_cmpuint(delta(a, before, APN_CNT_IRQS), ==, 1);

    /* unmasking delivers the pending message */
    msix_mask(a, 0, false);
    g_assert_cmphex(qtest_readl(a->qts, msi), ==, 0x4000);
    g_assert_false(qpci_msix_pending(a->dev, 0));

    /* unmasked: delivered at once */
    qtest_writel(a->qts, msi, 0);
    wr(a, APN_REG_IRQ_TEST, APN_VEC_OSQ);
    g_assert_cmphex(qtest_readl(a->qts, msi), ==, 0x4000);
    check_event(a, q, 1, APN_EV_TEST, APN_VEC_OSQ);

    /* vector 1 */
    wr(a, APN_REG_IRQ_TEST, 1);
    check_event(a, q, 2, APN_EV_TEST, 1);
    g_assert_true(qpci_msix_pending(a->dev, 1));
    g_assert_false(qpci_msix_pending(a->dev, 0));
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 3);
    g_assert_cmpuint(osq_mirror(a, q, offsetof(struct apn_queue_ctrl,
                                               wrptr)), ==, 3);

    /* a vector the device does not have: nothing */
    cnt_snap(a, before);
    wr(a, APN_REG_IRQ_TEST, APN_NUM_VECTORS);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 3);
    g_assert_cmpuint(delta(a, before, APN_CNT_OSQ_EVENTS), ==, 0);
    g_assert_cmpuint(delta(a, before, APN_CNT_IRQS), ==, 0);
    apn_stop(a);
}

/* A full queue is never overwritten; the loss is counted. */
static void test_osq_overflow(void)
{
    Apn *a = apn_start(NULL);
    uint64_t q = osq_up(a);
    uint64_t before[APN_CNT__COUNT];
    uint8_t full[0x1000], now[0x1000];

    for (int i = 0; i < OSQ_SIZE; i++) {
        wr(a, APN_REG_IRQ_TEST, i & 1);
    }
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, OSQ_SIZE);
    qtest_memread(a->qts, q, full, sizeof(full));

    cnt_snap(a, before);
    wr(a, APN_REG_IRQ_TEST, 0);
    wr(a, APN_REG_IRQ_TEST, 1);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, OSQ_SIZE);
    g_assert_cmpuint(delta(a, before, APN_CNT_OSQ_OVERFLOWS), ==, 2);
    g_assert_cmpuint(delta(a, before, APN_CNT_OSQ_EVENTS), ==, 0);
    g_assert_cmpuint(delta(a, before, APN_CNT_IRQS), ==, 2);
    qtest_memread(a->qts, q, now, sizeof(now));
    /* only the control block's overflow count changed */
    g_assert_cmpuint(ldl_le_p(now + offsetof(struct apn_queue_ctrl,
                                             overflows)), ==, 2);
    stl_le_p(now + offsetof(struct apn_queue_ctrl, overflows),
             ldl_le_p(full + offsetof(struct apn_queue_ctrl, overflows)));
    g_assert_cmpmem(now, sizeof(now), full, sizeof(full));

    /* consuming two events makes room for exactly two */
    wr(a, APN_REG_OSQ_RDPTR, 2);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_RDPTR), ==, 2);
    wr(a, APN_REG_IRQ_TEST, 1);
    wr(a, APN_REG_IRQ_TEST, 1);
    check_event(a, q, 0, APN_EV_TEST, 1);
    check_event(a, q, 1, APN_EV_TEST, 1);
    check_event(a, q, 2, APN_EV_TEST, 0);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, OSQ_SIZE + 2);
    g_assert_cmpuint(osq_mirror(a, q, offsetof(struct apn_queue_ctrl,
                                               wrptr)), ==, OSQ_SIZE + 2);
    cnt_snap(a, before);
    wr(a, APN_REG_IRQ_TEST, 0);
    g_assert_cmpuint(delta(a, before, APN_CNT_OSQ_OVERFLOWS), ==, 1);
    check_event(a, q, 2, APN_EV_TEST, 0);
    apn_stop(a);
}

static void check_event_data(Apn *a, uint64_t q, uint32_t slot, uint8_t type,
                             uint32_t info, uint64_t data)
{
    uint8_t ev[16];

    qtest_memread(a->qts, q + sizeof(struct apn_queue_ctrl) + 16 * slot,
                  ev, sizeof(ev));
    g_assert_cmpuint(ev[0], ==, type);
    g_assert_cmpuint(ldl_le_p(ev + 4), ==, info);
    g_assert_cmphex(ldq_le_p(ev + 8), ==, data);
}

/* A table entry the device cannot read is reported on the OS queue. */
static void test_osq_device_error(void)
{
    Apn *a = apn_start(NULL);
    uint64_t q = osq_up(a);
    const uint64_t nowhere = 0x1000000000ull;      /* 64 GiB: no memory */
    uint8_t b = 0;

    apn_tables(a);
    wr(a, APN_REG_IN_TABLE_LO, (uint32_t)nowhere);
    wr(a, APN_REG_IN_TABLE_HI, nowhere >> 32);
    wr(a, APN_REG_OUT_TABLE_LO, (uint32_t)nowhere);
    wr(a, APN_REG_OUT_TABLE_HI, nowhere >> 32);
    apn_enable(a);

    inject_write(a, 5, 0, 0, &b, 1);
    recv_seg_error(a, 5, 0, APN_CNT_RX_DROP_INDEX);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 1);
    check_event_data(a, q, 0, APN_EV_DEVICE_ERROR, APN_ERR_DMA,
                     nowhere + 5 * APN_TABLE_ENTRY_SIZE);
    qtest_writel(a->qts, slot_addr(a, 7, 0), 0);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 2);
    check_event_data(a, q, 1, APN_EV_DEVICE_ERROR, APN_ERR_DMA,
                     nowhere + 7 * APN_TABLE_ENTRY_SIZE);
    fence(a, 0);
    assert_no_frame(a);
    apn_stop(a);
}

static void set_link(Apn *a, bool up)
{
    qtest_qmp_assert_success(a->qts, "{ 'execute': 'set_link', 'arguments':"
                             " { 'name': 'apn0', 'up': %i } }", up);
}

/* Link changes show in STATUS and, while enabled, as APN_EV_LINK events. */
static void test_osq_link(void)
{
    Apn *a = apn_up(NULL);
    uint64_t q = osq_up(a);

    set_link(a, false);
    g_assert_cmphex(rd(a, APN_REG_STATUS), ==, 0);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 1);
    check_event(a, q, 0, APN_EV_LINK, 0);
    set_link(a, true);
    g_assert_cmphex(rd(a, APN_REG_STATUS), ==, APN_STATUS_LINK_UP);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 2);
    check_event(a, q, 1, APN_EV_LINK, APN_STATUS_LINK_UP);

    wr(a, APN_REG_CTRL, 0);
    set_link(a, false);
    g_assert_cmphex(rd(a, APN_REG_STATUS), ==, 0);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 2);
    apn_stop(a);
}

/* RDPTR may not pass WRPTR nor go backwards. */
static void test_osq_rdptr(void)
{
    Apn *a = apn_start(NULL);

    osq_up(a);
    for (int i = 0; i < 3; i++) {
        wr(a, APN_REG_IRQ_TEST, 0);
    }
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 3);
    wr(a, APN_REG_OSQ_RDPTR, 4);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_RDPTR), ==, 0);
    wr(a, APN_REG_OSQ_RDPTR, 0xffffffff);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_RDPTR), ==, 0);
    wr(a, APN_REG_OSQ_RDPTR, 2);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_RDPTR), ==, 2);
    wr(a, APN_REG_OSQ_RDPTR, 1);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_RDPTR), ==, 2);
    wr(a, APN_REG_OSQ_RDPTR, 3);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_RDPTR), ==, 3);

    /* (re)programming the size starts the queue empty */
    wr(a, APN_REG_IRQ_TEST, 0);
    wr(a, APN_REG_OSQ_SIZE, OSQ_SIZE);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 0);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_RDPTR), ==, 0);
    apn_stop(a);
}

/* ---- registers ----------------------------------------------------------- */

/* Out-of-range values are ignored; the register keeps its value. */
static void test_registers_ignored(void)
{
    static const uint32_t bad_osq_size[] = { 1, 6, 24, 1u << 21 };
    Apn *a = apn_start(",max-in-apertures=100");
    uint32_t in_lo;

    wr(a, APN_REG_OSQ_SIZE, 16);
    for (int i = 0; i < ARRAY_SIZE(bad_osq_size); i++) {
        wr(a, APN_REG_OSQ_SIZE, bad_osq_size[i]);
        g_assert_cmpuint(rd(a, APN_REG_OSQ_SIZE), ==, 16);
    }
    wr(a, APN_REG_OSQ_SIZE, 0);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_SIZE), ==, 0);
    wr(a, APN_REG_OSQ_BASE_LO, 0x10020);                /* not 64-aligned */
    g_assert_cmphex(rd(a, APN_REG_OSQ_BASE_LO), ==, 0);

    wr(a, APN_REG_IN_TABLE_COUNT, 100);
    g_assert_cmpuint(rd(a, APN_REG_IN_TABLE_COUNT), ==, 100);
    wr(a, APN_REG_IN_TABLE_COUNT, 101);
    g_assert_cmpuint(rd(a, APN_REG_IN_TABLE_COUNT), ==, 100);
    wr(a, APN_REG_OUT_TABLE_COUNT, 256);
    wr(a, APN_REG_OUT_TABLE_COUNT, 257);
    g_assert_cmpuint(rd(a, APN_REG_OUT_TABLE_COUNT), ==, 256);
    wr(a, APN_REG_IN_TABLE_LO, 0x10020);                /* not 64-aligned */
    g_assert_cmphex(rd(a, APN_REG_IN_TABLE_LO), ==, 0);
    wr(a, APN_REG_OUT_TABLE_LO, 0x10001);
    g_assert_cmphex(rd(a, APN_REG_OUT_TABLE_LO), ==, 0);

    wr(a, APN_REG_HOST_ID, 0xffff);
    g_assert_cmphex(rd(a, APN_REG_HOST_ID), ==, 0xffff);
    wr(a, APN_REG_HOST_ID, 0x10000);
    g_assert_cmphex(rd(a, APN_REG_HOST_ID), ==, 0xffff);

    /* reserved CTRL bits read as zero */
    wr(a, APN_REG_CTRL, 0x7ffffffe);
    g_assert_cmphex(rd(a, APN_REG_CTRL), ==, 0);

    /* table bases and sizes are locked while enabled */
    apn_tables(a);
    in_lo = rd(a, APN_REG_IN_TABLE_LO);
    apn_enable(a);
    wr(a, APN_REG_IN_TABLE_LO, in_lo + 0x1000);
    wr(a, APN_REG_IN_TABLE_HI, 1);
    wr(a, APN_REG_IN_TABLE_COUNT, 1);
    wr(a, APN_REG_OUT_TABLE_LO, in_lo + 0x1000);
    wr(a, APN_REG_OUT_TABLE_HI, 1);
    wr(a, APN_REG_OUT_TABLE_COUNT, 1);
    g_assert_cmphex(rd(a, APN_REG_IN_TABLE_LO), ==, in_lo);
    g_assert_cmphex(rd(a, APN_REG_IN_TABLE_HI), ==, a->in_table >> 32);
    g_assert_cmpuint(rd(a, APN_REG_IN_TABLE_COUNT), ==, N_IN);
    g_assert_cmphex(rd(a, APN_REG_OUT_TABLE_LO), ==, (uint32_t)a->out_table);
    g_assert_cmphex(rd(a, APN_REG_OUT_TABLE_HI), ==, a->out_table >> 32);
    g_assert_cmpuint(rd(a, APN_REG_OUT_TABLE_COUNT), ==, N_OUT);
    wr(a, APN_REG_CTRL, 0);
    wr(a, APN_REG_IN_TABLE_COUNT, 1);
    g_assert_cmpuint(rd(a, APN_REG_IN_TABLE_COUNT), ==, 1);
    apn_stop(a);
}

/* Host table: 64-bit or two 32-bit writes; only MAC and VALID are kept. */
static void test_registers_host_table(void)
{
    Apn *a = apn_start(NULL);
    uint32_t e5 = APN_REG_HOST_MAC_BASE + 8 * 5;
    uint32_t last = APN_REG_HOST_MAC_BASE + 8 * (APN_HOST_MAC_ENTRIES - 1);

    qpci_io_writeq(a->dev, a->bar0, e5, 0xffffffffffffffffull);
    g_assert_cmphex(qpci_io_readq(a->dev, a->bar0, e5), ==,
                    APN_HOST_VALID | APN_HOST_MAC_MASK);
    wr(a, e5, 0x44332211);
    wr(a, e5 + 4, 0x7fff6655);
    g_assert_cmphex(qpci_io_readq(a->dev, a->bar0, e5), ==,
                    0x0000665544332211ull);
    qpci_io_writeq(a->dev, a->bar0, last, APN_HOST_VALID | 0x0102030405ull);
    g_assert_cmphex(rd(a, last), ==, 0x02030405);
    g_assert_cmphex(rd(a, last + 4), ==, 0x80000001);
    g_assert_cmphex(rd(a, APN_REG_HOST_MAC_BASE + 8 * 4), ==, 0);
    apn_stop(a);
}

/* Counters are read-only, by 32- or 64-bit writes. */
static void test_registers_counters_ro(void)
{
    Apn *a = apn_start(NULL);
    uint32_t off = APN_COUNTER_OFFSET(APN_CNT_TX_STORES);

    qtest_writel(a->qts, a->bar2.addr, 1);              /* disabled */
    qtest_writel(a->qts, a->bar2.addr, 1);
    g_assert_cmpuint(cnt(a, APN_CNT_TX_STORES), ==, 2);
    g_assert_cmpuint(cnt(a, APN_CNT_TX_DROP_DISABLED), ==, 2);
    wr(a, off, 0);
    wr(a, off + 4, 1);
    qpci_io_writeq(a->dev, a->bar0, off, 0);
    qpci_io_writeq(a->dev, a->bar0,
                   APN_COUNTER_OFFSET(APN_CNT_TX_DROP_DISABLED), 77);
    g_assert_cmpuint(cnt(a, APN_CNT_TX_STORES), ==, 2);
    g_assert_cmpuint(rd(a, off), ==, 2);
    g_assert_cmpuint(rd(a, off + 4), ==, 0);
    g_assert_cmpuint(cnt(a, APN_CNT_TX_DROP_DISABLED), ==, 2);
    /* ids past the last counter read as zero */
    g_assert_cmpuint(qpci_io_readq(a->dev, a->bar0,
                                   APN_COUNTER_OFFSET(APN_CNT__COUNT)), ==, 0);
    apn_stop(a);
}

/* CTRL.RESET: every register, the host table and the counters cleared. */
static void test_registers_reset(void)
{
    Apn *a = tx_up(NULL);
    static const uint32_t regs[] = {
        APN_REG_CTRL, APN_REG_HOST_ID, APN_REG_IN_TABLE_LO,
        APN_REG_IN_TABLE_HI, APN_REG_IN_TABLE_COUNT, APN_REG_OUT_TABLE_LO,
        APN_REG_OUT_TABLE_HI, APN_REG_OUT_TABLE_COUNT, APN_REG_OSQ_BASE_LO,
        APN_REG_OSQ_BASE_HI, APN_REG_OSQ_SIZE, APN_REG_OSQ_WRPTR,
        APN_REG_OSQ_RDPTR,
    };
    uint8_t b = 1;

    osq_up(a);
    wr(a, APN_REG_IRQ_TEST, 0);
    wr(a, APN_REG_OSQ_RDPTR, 1);
    inject_write(a, 0, 0, 0, &b, 1);                 /* entry 0 is zeroed */
    recv_seg_error(a, 0, 0, APN_CNT_RX_DROP_INVALID);
    /* a gathered burst is discarded by the reset */
    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0), 0x12345678);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_RDPTR), ==, 1);
    g_assert_cmpuint(cnt(a, APN_CNT_RX_FRAMES), ==, 1);

    wr(a, APN_REG_CTRL, APN_CTRL_RESET);
    for (int i = 0; i < ARRAY_SIZE(regs); i++) {
        g_assert_cmphex(rd(a, regs[i]), ==, 0);
    }
    for (int i = 0; i < APN_HOST_MAC_ENTRIES; i += 51) {
        g_assert_cmphex(qpci_io_readq(a->dev, a->bar0,
                                      APN_REG_HOST_MAC_BASE + 8 * i), ==, 0);
    }
    g_assert_cmphex(qpci_io_readq(a->dev, a->bar0,
                                  APN_REG_HOST_MAC_BASE + 8 * PEER_HOST),
                    ==, 0);
    for (int i = 0; i < APN_CNT__COUNT; i++) {
        g_assert_cmpuint(cnt(a, i), ==, 0);
    }
    g_assert_cmphex(rd(a, APN_REG_STATUS), ==, APN_STATUS_LINK_UP);
    g_assert_cmphex(rd(a, APN_REG_MAGIC), ==, APN_MAGIC);
    qtest_clock_step(a->qts, 10 * 1000 * 1000);
    assert_no_frame(a);
    apn_stop(a);
}

/* A PCI (system) reset resets the device as CTRL.RESET does. */
static void test_registers_pci_reset(void)
{
    Apn *a = tx_up(NULL);
    uint8_t b = 1;

    inject_write(a, 0, 0, 0, &b, 1);
    recv_seg_error(a, 0, 0, APN_CNT_RX_DROP_INVALID);
    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0), 0x12345678);
    g_assert_cmpuint(cnt(a, APN_CNT_TX_STORES), ==, 1);

    qtest_qmp_assert_success(a->qts, "{ 'execute': 'system_reset' }");
    qtest_qmp_eventwait(a->qts, "RESET");
    qpci_device_enable(a->dev);
    a->bar0 = qpci_iomap(a->dev, APN_BAR_REGS, NULL);
    a->bar2 = qpci_iomap(a->dev, APN_BAR_APERTURES, NULL);

    g_assert_cmphex(rd(a, APN_REG_CTRL), ==, 0);
    g_assert_cmphex(rd(a, APN_REG_HOST_ID), ==, 0);
    g_assert_cmphex(rd(a, APN_REG_IN_TABLE_COUNT), ==, 0);
    g_assert_cmphex(rd(a, APN_REG_OUT_TABLE_COUNT), ==, 0);
    g_assert_cmphex(qpci_io_readq(a->dev, a->bar0,
                                  APN_REG_HOST_MAC_BASE + 8 * PEER_HOST),
                    ==, 0);
    for (int i = 0; i < APN_CNT__COUNT; i++) {
        g_assert_cmpuint(cnt(a, i), ==, 0);
    }
    g_assert_cmphex(rd(a, APN_REG_STATUS), ==, APN_STATUS_LINK_UP);
    qtest_clock_step(a->qts, 10 * 1000 * 1000);
    assert_no_frame(a);
    apn_stop(a);
}

/* qom-get <device> counters: every counter, by name, as BAR0 reads it. */
static void test_registers_qom_counters(void)
{
    Apn *a = tx_up(NULL);
    uint8_t buf[FRAME_MAX], b = 0;
    QDict *resp, *ret;
    Frame f;

    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0), 1);
    fence(a, 0);
    recv_frame(a, buf);
    frame_init(&f, 0, 0, 0, &b, 1);
    f.ethertype = 0x86dd;
    inject_frame(a, &f);
    inject_frame(a, &f);

    resp = qtest_qmp(a->qts, "{ 'execute': 'qom-get', 'arguments': "
                     "{ 'path': '/machine/peripheral/apn0', "
                     "'property': 'counters' } }");
    g_assert(qdict_haskey(resp, "return"));
    ret = qdict_get_qdict(resp, "return");
    g_assert_cmpuint(qdict_size(ret), ==, APN_CNT__COUNT);
    for (int i = 0; i < APN_CNT__COUNT; i++) {
        QNum *v = qobject_to(QNum, qdict_get(ret, cnt_name[i]));
        uint64_t u;

        g_assert_nonnull(v);
        g_assert_true(qnum_get_try_uint(v, &u));
        g_assert_cmpuint(u, ==, cnt(a, i));
    }
    g_assert_cmpuint(qdict_get_int(ret, "tx_frames"), ==, 1);
    g_assert_cmpuint(qdict_get_int(ret, "rx_drop_not_ci"), ==, 2);
    qobject_unref(resp);
    apn_stop(a);
}

/* ---- endpoints and their queues ------------------------------------------ */

#define EVQ_SIZE        4

static uint32_t ureg(uint32_t ep, uint32_t off)
{
    return APN_USER_PAGE(ep) + off;
}

static uint32_t epr(uint32_t ep, uint32_t r)
{
    return APN_EP_REG(ep, r);
}

/*
 * Program endpoint @ep: a @size-event queue (0: none) in a page of its own
 * whose tail stays 0x5c, @port, and @ctrl. Returns the queue's address.
 */
static uint64_t ep_up(Apn *a, uint32_t ep, uint32_t ctrl, uint16_t port,
                      uint32_t size)
{
    uint64_t q = gmem(a, 0x1000, 0x5c);

    qtest_memset(a->qts, q, 0, sizeof(struct apn_queue_ctrl) + 16 * size);
    wr(a, epr(ep, APN_EPR_EVQ_LO), (uint32_t)q);
    wr(a, epr(ep, APN_EPR_EVQ_HI), q >> 32);
    wr(a, epr(ep, APN_EPR_EVQ_SIZE), size);
    wr(a, epr(ep, APN_EPR_CTRL), ctrl);
    wr(a, epr(ep, APN_EPR_PORT), port);
    g_assert_cmpuint(rd(a, epr(ep, APN_EPR_EVQ_SIZE)), ==, size);
    g_assert_cmphex(rd(a, epr(ep, APN_EPR_CTRL)), ==, ctrl);
    g_assert_cmpuint(rd(a, epr(ep, APN_EPR_PORT)), ==, port);
    return q;
}

/* Event @slot of the queue at @q, every field. */
static void check_evf(Apn *a, uint64_t q, uint32_t slot, uint8_t type,
                      uint8_t flags, uint16_t ep, uint32_t info,
                      uint64_t data)
{
    uint8_t ev[16];

    qtest_memread(a->qts, q + sizeof(struct apn_queue_ctrl) + 16 * slot,
                  ev, sizeof(ev));
    g_assert_cmpuint(ev[0], ==, type);
    g_assert_cmphex(ev[1], ==, flags);
    g_assert_cmpuint(lduw_le_p(ev + 2), ==, ep);
    g_assert_cmphex(ldl_le_p(ev + 4), ==, info);
    g_assert_cmphex(ldq_le_p(ev + 8), ==, data);
}

/* The same, for an event with no flags (the device's own). */
static void check_ev(Apn *a, uint64_t q, uint32_t slot, uint8_t type,
                     uint16_t ep, uint32_t info, uint64_t data)
{
    check_evf(a, q, slot, type, 0, ep, info, data);
}

static uint32_t qctrl(Apn *a, uint64_t q, size_t field)
{
    return qtest_readl(a->qts, q + field);
}

#define Q_WRPTR         offsetof(struct apn_queue_ctrl, wrptr)
#define Q_OVERFLOWS     offsetof(struct apn_queue_ctrl, overflows)

/* An incoming event aperture owned by @ep. */
static void put_in_event(Apn *a, uint32_t idx, uint16_t ep, uint32_t nonce,
                         uint32_t size)
{
    put_in_entry(a, idx, &(struct apn_in_entry) {
        .flags = APN_ENTRY_VALID |
                 APN_ENTRY_TYPE_EVENT << APN_ENTRY_TYPE_SHIFT,
        .endpoint = ep, .nonce = nonce, .size = size,
    });
}

/* A frame from the peer with one EVENT segment. */
static void inject_event(Apn *a, uint32_t in_index, uint32_t nonce,
                         uint32_t offset, const void *data, uint16_t len)
{
    Frame f;

    frame_init(&f, in_index, nonce, offset, data, len);
    f.seg[0].type = APN_SEG_EVENT;
    inject_frame(a, &f);
}

/* The endpoint registers: ranges, port binding rules, reset. */
static void test_ep_registers(void)
{
    Apn *a = apn_start(",endpoints=4");

    g_assert_cmpuint(rd(a, APN_REG_NUM_ENDPOINTS), ==, 4);
    wr(a, epr(0, APN_EPR_CTRL), 0xffffffff);
    g_assert_cmphex(rd(a, epr(0, APN_EPR_CTRL)), ==,
                    APN_EP_VALID | APN_EP_TRUSTED | APN_EP_KERNEL_CM);

    /* queue placement and sizes */
    wr(a, epr(0, APN_EPR_EVQ_LO), 0x10040);
    wr(a, epr(0, APN_EPR_EVQ_LO), 0x10020);             /* not 64-aligned */
    wr(a, epr(0, APN_EPR_EVQ_HI), 7);
    g_assert_cmphex(rd(a, epr(0, APN_EPR_EVQ_LO)), ==, 0x10040);
    g_assert_cmphex(rd(a, epr(0, APN_EPR_EVQ_HI)), ==, 7);
    wr(a, epr(0, APN_EPR_EVQ_SIZE), 1u << 16);
    g_assert_cmpuint(rd(a, epr(0, APN_EPR_EVQ_SIZE)), ==, 1u << 16);
    wr(a, epr(0, APN_EPR_EVQ_SIZE), 2);
    for (uint32_t bad = 1; bad; bad = bad == 1 ? 3 : bad == 3 ? 1u << 17 : 0) {
        wr(a, epr(0, APN_EPR_EVQ_SIZE), bad);
        g_assert_cmpuint(rd(a, epr(0, APN_EPR_EVQ_SIZE)), ==, 2);
    }
    wr(a, epr(0, APN_EPR_VARQ_LO), 0x20000);
    wr(a, epr(0, APN_EPR_VARQ_LO), 0x20001);
    wr(a, epr(0, APN_EPR_VARQ_HI), 1);
    g_assert_cmphex(rd(a, epr(0, APN_EPR_VARQ_LO)), ==, 0x20000);
    g_assert_cmphex(rd(a, epr(0, APN_EPR_VARQ_HI)), ==, 1);
    wr(a, epr(0, APN_EPR_VARQ_SIZE), 64);
    wr(a, epr(0, APN_EPR_VARQ_SIZE), 32);
    wr(a, epr(0, APN_EPR_VARQ_SIZE), 96);
    wr(a, epr(0, APN_EPR_VARQ_SIZE), 1u << 25);
    g_assert_cmpuint(rd(a, epr(0, APN_EPR_VARQ_SIZE)), ==, 64);
    wr(a, epr(0, APN_EPR_VARQ_SIZE), 1u << 24);
    g_assert_cmpuint(rd(a, epr(0, APN_EPR_VARQ_SIZE)), ==, 1u << 24);
    /* reserved registers of a block, and endpoints the device lacks */
    wr(a, epr(0, 0x20), 5);
    g_assert_cmphex(rd(a, epr(0, 0x20)), ==, 0);
    wr(a, epr(4, APN_EPR_CTRL), APN_EP_VALID);
    g_assert_cmphex(rd(a, epr(4, APN_EPR_CTRL)), ==, 0);
    wr(a, ureg(4, APN_UREG_OUT_INDEX), 5);
    g_assert_cmphex(rd(a, ureg(4, APN_UREG_OUT_INDEX)), ==, 0);

    /* a port is bound to one valid endpoint at a time */
    wr(a, epr(0, APN_EPR_PORT), 5000);
    wr(a, epr(1, APN_EPR_CTRL), APN_EP_VALID);
    wr(a, epr(1, APN_EPR_PORT), 5000);
    g_assert_cmpuint(rd(a, epr(1, APN_EPR_PORT)), ==, 0);
    wr(a, epr(1, APN_EPR_PORT), 0x10000);
    g_assert_cmpuint(rd(a, epr(1, APN_EPR_PORT)), ==, 0);
    wr(a, epr(1, APN_EPR_PORT), 5001);
    g_assert_cmpuint(rd(a, epr(1, APN_EPR_PORT)), ==, 5001);
    wr(a, epr(0, APN_EPR_PORT), 5000);                  /* rebinding: ok */
    g_assert_cmpuint(rd(a, epr(0, APN_EPR_PORT)), ==, 5000);
    /* an invalid endpoint's port is free ... */
    wr(a, epr(0, APN_EPR_CTRL), 0);
    wr(a, epr(1, APN_EPR_PORT), 5000);
    g_assert_cmpuint(rd(a, epr(1, APN_EPR_PORT)), ==, 5000);
    /* ... and it loses the binding if it becomes valid again */
    g_assert_cmpuint(rd(a, epr(0, APN_EPR_PORT)), ==, 5000);
    wr(a, epr(0, APN_EPR_CTRL), APN_EP_VALID);
    g_assert_cmpuint(rd(a, epr(0, APN_EPR_PORT)), ==, 0);
    g_assert_cmpuint(rd(a, epr(1, APN_EPR_PORT)), ==, 5000);
    /* port 5001 was released by the rebinding */
    wr(a, epr(2, APN_EPR_CTRL), APN_EP_VALID);
    wr(a, epr(2, APN_EPR_PORT), 5001);
    g_assert_cmpuint(rd(a, epr(2, APN_EPR_PORT)), ==, 5001);

    wr(a, APN_REG_CTRL, APN_CTRL_RESET);
    for (uint32_t r = 0; r < 0x20; r += 4) {
        g_assert_cmphex(rd(a, epr(0, r)), ==, 0);
        g_assert_cmphex(rd(a, epr(1, r)), ==, 0);
    }
    apn_stop(a);
}

/* 512 endpoints: the largest device; the last endpoint works. */
static void test_ep_max(void)
{
    Apn *a = apn_up(",endpoints=512");
    uint32_t ep = APN_MAX_ENDPOINTS - 1;
    uint64_t q;
    uint8_t b = 0x42;

    g_assert_cmpuint(rd(a, APN_REG_NUM_ENDPOINTS), ==, APN_MAX_ENDPOINTS);
    g_assert_cmphex(a->bar0_size, ==, 4 * MiB);
    q = ep_up(a, ep, APN_EP_VALID, 0, EVQ_SIZE);
    put_in_event(a, 1, ep, 5, 0x100);
    inject_event(a, 1, 5, 0x10, &b, 1);
    g_assert_cmpuint(rd(a, ureg(ep, APN_UREG_EVQ_WRPTR)), ==, 1);
    check_ev(a, q, 0, APN_EV_EVENT, ep, 0x10, 0x42);
    apn_stop(a);
}

/*
 * FIG 8/13: events at wrptr & (size - 1), the wrptr mirror, EVQ_WRPTR; a
 * full queue is never overwritten: the loss is counted, and the OS told
 * once per overflow episode.
 */
static void test_ep_evq(void)
{
    Apn *a = apn_up(NULL);
    uint64_t osq = osq_up(a);
    uint64_t q = ep_up(a, 2, APN_EP_VALID, 0, EVQ_SIZE);
    uint64_t before[APN_CNT__COUNT];
    uint8_t full[0x1000], now[0x1000];

    put_in_event(a, 1, 2, 5, 0x100);
    cnt_snap(a, before);
    for (uint8_t i = 0; i < EVQ_SIZE; i++) {
        inject_event(a, 1, 5, i, &i, 1);
        g_assert_cmpuint(qctrl(a, q, Q_WRPTR), ==, i + 1);
    }
    for (uint8_t i = 0; i < EVQ_SIZE; i++) {
        check_ev(a, q, i, APN_EV_EVENT, 2, i, i);
    }
    g_assert_cmpuint(rd(a, ureg(2, APN_UREG_EVQ_WRPTR)), ==, EVQ_SIZE);
    g_assert_cmpuint(delta(a, before, APN_CNT_EVQ_EVENTS), ==, EVQ_SIZE);
    /* unarmed: nothing on the OS queue */
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 0);
    g_assert_cmpuint(delta(a, before, APN_CNT_IRQS), ==, 0);

    /* full: two events lost, one OVERFLOW (info = lost so far) */
    qtest_memread(a->qts, q, full, sizeof(full));
    inject_event(a, 1, 5, 8, "x", 1);
    inject_event(a, 1, 5, 9, "y", 1);
    g_assert_cmpuint(delta(a, before, APN_CNT_EVQ_OVERFLOWS), ==, 2);
    g_assert_cmpuint(delta(a, before, APN_CNT_EVQ_EVENTS), ==, EVQ_SIZE);
    assert_drops(a, before, "");
    qtest_memread(a->qts, q, now, sizeof(now));
    g_assert_cmpuint(ldl_le_p(now + Q_OVERFLOWS), ==, 2);
    stl_le_p(now + Q_OVERFLOWS, 0);
    g_assert_cmpmem(now, sizeof(now), full, sizeof(full));
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 1);
    check_ev(a, osq, 0, APN_EV_OVERFLOW, 2, 1, 0);

    /* the read pointer may not pass the write pointer nor go back */
    wr(a, ureg(2, APN_UREG_EVQ_RDPTR), EVQ_SIZE + 1);
    g_assert_cmpuint(rd(a, ureg(2, APN_UREG_EVQ_RDPTR)), ==, 0);
    wr(a, ureg(2, APN_UREG_EVQ_RDPTR), 2);
    g_assert_cmpuint(rd(a, ureg(2, APN_UREG_EVQ_RDPTR)), ==, 2);
    wr(a, ureg(2, APN_UREG_EVQ_RDPTR), 1);
    g_assert_cmpuint(rd(a, ureg(2, APN_UREG_EVQ_RDPTR)), ==, 2);
    wr(a, ureg(2, APN_UREG_EVQ_WRPTR), 0);              /* read only */
    g_assert_cmpuint(rd(a, ureg(2, APN_UREG_EVQ_WRPTR)), ==, EVQ_SIZE);

    /* room for two: the queue wraps; then a new episode, a new OVERFLOW */
    inject_event(a, 1, 5, 0x20, "a", 1);
    inject_event(a, 1, 5, 0x21, "b", 1);
    check_ev(a, q, 0, APN_EV_EVENT, 2, 0x20, 'a');
    check_ev(a, q, 1, APN_EV_EVENT, 2, 0x21, 'b');
    check_ev(a, q, 2, APN_EV_EVENT, 2, 2, 2);
    g_assert_cmpuint(qctrl(a, q, Q_WRPTR), ==, EVQ_SIZE + 2);
    inject_event(a, 1, 5, 0x22, "c", 1);
    g_assert_cmpuint(qctrl(a, q, Q_OVERFLOWS), ==, 3);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 2);
    check_ev(a, osq, 1, APN_EV_OVERFLOW, 2, 3, 0);
    g_assert_cmpuint(delta(a, before, APN_CNT_EVQ_OVERFLOWS), ==, 3);

    /* reprogramming the size starts the queue empty */
    wr(a, epr(2, APN_EPR_EVQ_SIZE), EVQ_SIZE);
    g_assert_cmpuint(rd(a, ureg(2, APN_UREG_EVQ_WRPTR)), ==, 0);
    g_assert_cmpuint(rd(a, ureg(2, APN_UREG_EVQ_RDPTR)), ==, 0);

    /* no events for an endpoint that is not valid, or has no queue */
    wr(a, epr(2, APN_EPR_CTRL), 0);
    cnt_snap(a, before);
    inject_event(a, 1, 5, 0, "d", 1);
    recv_seg_error(a, 1, 0, APN_CNT_RX_DROP_INVALID);
    g_assert_cmpuint(rd(a, ureg(2, APN_UREG_EVQ_WRPTR)), ==, 0);
    wr(a, epr(2, APN_EPR_CTRL), APN_EP_VALID);
    wr(a, epr(2, APN_EPR_EVQ_SIZE), 0);
    inject_event(a, 1, 5, 0, "d", 1);
    recv_seg_error(a, 1, 0, APN_CNT_RX_DROP_INVALID);
    g_assert_cmpuint(delta(a, before, APN_CNT_EVQ_EVENTS), ==, 0);
    g_assert_cmpuint(delta(a, before, APN_CNT_EVQ_OVERFLOWS), ==, 0);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 2);
    apn_stop(a);
}

/*
 * ARM: one-shot. An armed endpoint's next event posts APN_EV_OOB_DATA on
 * the OS queue (raising vector 0); unarmed, an event raises nothing; ARM
 * with events pending fires at once.
 */
static void test_ep_arm(void)
{
    Apn *a = apn_up(NULL);
    uint64_t osq = osq_up(a);
    uint64_t q = ep_up(a, 3, APN_EP_VALID, 0, EVQ_SIZE);
    uint64_t msi = gmem(a, 0x1000, 0);
    uint64_t before[APN_CNT__COUNT];

    qpci_msix_enable(a->dev);
    msix_program(a, 0, msi, 0x4000);
    msix_mask(a, 0, false);
    put_in_event(a, 1, 3, 5, 0x100);
    cnt_snap(a, before);

    /* not armed: the event is queued, the OS hears nothing */
    inject_event(a, 1, 5, 0, "a", 1);
    check_ev(a, q, 0, APN_EV_EVENT, 3, 0, 'a');
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 0);
    g_assert_cmpuint(delta(a, before, APN_CNT_IRQS), ==, 0);
    g_assert_cmphex(qtest_readl(a->qts, msi), ==, 0);
    g_assert_false(qpci_msix_pending(a->dev, 0));

    /* ARM while an event is pending: OOB_DATA at once, and disarmed */
    wr(a, ureg(3, APN_UREG_ARM), 1);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 1);
    check_ev(a, osq, 0, APN_EV_OOB_DATA, 3, 0, 0);
    g_assert_cmphex(qtest_readl(a->qts, msi), ==, 0x4000);
    g_assert_cmpuint(delta(a, before, APN_CNT_IRQS), ==, 1);
    qtest_writel(a->qts, msi, 0);
    inject_event(a, 1, 5, 1, "b", 1);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 1);
    g_assert_cmphex(qtest_readl(a->qts, msi), ==, 0);

    /* drained, then armed: nothing until the next event, which fires */
    wr(a, ureg(3, APN_UREG_EVQ_RDPTR), 2);
    wr(a, ureg(3, APN_UREG_ARM), 1);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 1);
    g_assert_cmphex(qtest_readl(a->qts, msi), ==, 0);
    inject_event(a, 1, 5, 2, "c", 1);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 2);
    check_ev(a, osq, 1, APN_EV_OOB_DATA, 3, 0, 0);
    g_assert_cmphex(qtest_readl(a->qts, msi), ==, 0x4000);
    qtest_writel(a->qts, msi, 0);
    /* one-shot */
    inject_event(a, 1, 5, 3, "d", 1);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 2);

    /* ARM 0 disarms */
    wr(a, ureg(3, APN_UREG_EVQ_RDPTR), 4);
    wr(a, ureg(3, APN_UREG_ARM), 1);
    wr(a, ureg(3, APN_UREG_ARM), 0);
    inject_event(a, 1, 5, 4, "e", 1);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 2);
    g_assert_cmphex(qtest_readl(a->qts, msi), ==, 0);
    g_assert_cmpuint(delta(a, before, APN_CNT_IRQS), ==, 2);
    g_assert_cmpuint(delta(a, before, APN_CNT_EVQ_EVENTS), ==, 5);
    apn_stop(a);
}

/* ---- commands ------------------------------------------------------------ */

#define CMD_EP          2
#define CMD_SLOT        5
#define CMD_IN          6

static uint32_t out_word(Apn *a, uint32_t idx, size_t off)
{
    return qtest_readl(a->qts, a->out_table + idx * APN_TABLE_ENTRY_SIZE +
                       off);
}

/*
 * OUT_COMMIT writes the user-programmable fields (dest host, in-index,
 * nonce) of an aperture the endpoint owns; the next store uses them. A
 * burst gathered before goes to the old destination.
 */
static void test_cmd_out_commit(void)
{
    Apn *a = tx_up(NULL);
    struct apn_out_entry o = out_entry(PEER_HOST, 1, 0x11, 0x800);
    uint8_t before_e[APN_TABLE_ENTRY_SIZE], after_e[APN_TABLE_ENTRY_SIZE];
    static const uint8_t d[4] = { 0xd1, 0xd2, 0xd3, 0xd4 };
    SegExpect s[2] = {
        seg_expect(CMD_SLOT, 1, 0x11, 0x40, d, 4),
        seg_expect(CMD_SLOT, 77, 0xc0ffee, 0x44, d, 4),
    };
    uint64_t addr = a->out_table + CMD_SLOT * APN_TABLE_ENTRY_SIZE;
    uint32_t u = APN_USER_PAGE(CMD_EP);

    o.endpoint = CMD_EP;
    o.flags |= APN_ENTRY_SEQ;
    o.seq = 3;
    o.reserved[0] = 0xaaaaaaaa;
    put_out_entry(a, CMD_SLOT, &o);
    ep_up(a, CMD_EP, APN_EP_VALID | APN_EP_TRUSTED, 0, 0);
    qtest_memread(a->qts, addr, before_e, sizeof(before_e));

    qtest_writel(a->qts, slot_addr(a, CMD_SLOT, 0x40), ldl_le_p(d));
    wr(a, u + APN_UREG_OUT_INDEX, CMD_SLOT);
    wr(a, u + APN_UREG_OUT_DEST_HOST, PEER_HOST);
    wr(a, u + APN_UREG_OUT_DEST_IN_INDEX, 77);
    wr(a, u + APN_UREG_OUT_NONCE, 0xc0ffee);
    g_assert_cmpuint(rd(a, u + APN_UREG_OUT_DEST_IN_INDEX), ==, 77);
    wr(a, u + APN_UREG_OUT_COMMIT, 1);
    g_assert_cmpuint(rd(a, u + APN_UREG_CMD_STATUS), ==, APN_CMD_OK);

    /* only dest_host, dest_in_index and nonce changed (seq: one burst) */
    qtest_memread(a->qts, addr, after_e, sizeof(after_e));
    g_assert_cmpuint(lduw_le_p(after_e + 6), ==, PEER_HOST);
    g_assert_cmpuint(ldl_le_p(after_e + 8), ==, 77);
    g_assert_cmphex(ldl_le_p(after_e + 12), ==, 0xc0ffee);
    g_assert_cmpuint(ldl_le_p(after_e + 20), ==, 4);
    memcpy(before_e + 6, after_e + 6, 10);
    stl_le_p(before_e + 20, 4);
    g_assert_cmpmem(after_e, sizeof(after_e), before_e, sizeof(before_e));

    qtest_writel(a->qts, slot_addr(a, CMD_SLOT, 0x44), ldl_le_p(d));
    fence(a, 0);
    s[0].flags = s[1].flags = APN_SEG_F_SEQ;
    s[0].seq = 3;
    s[1].seq = 4;
    recv_check_segs(a, peer_mac, PEER_HOST, s, 2);
    assert_no_frame(a);
    apn_stop(a);
}

/* Who may commit what: EPERM, ENOENT, EINVAL; nothing changes on failure. */
static void test_cmd_refused(void)
{
    Apn *a = tx_up(NULL);
    struct apn_out_entry o = out_entry(PEER_HOST, 1, 0x11, 0x800);
    uint64_t before[APN_CNT__COUNT];
    uint32_t u = APN_USER_PAGE(CMD_EP);
    struct {
        uint32_t ctrl, index, host, reg;
        uint32_t status;
    } cases[] = {
        { 0, CMD_SLOT, 1, APN_UREG_OUT_COMMIT, APN_CMD_EPERM },
        { APN_EP_TRUSTED, CMD_SLOT, 1, APN_UREG_OUT_COMMIT, APN_CMD_EPERM },
        { APN_EP_VALID, CMD_SLOT, 1, APN_UREG_OUT_COMMIT, APN_CMD_EPERM },
        { APN_EP_VALID, CMD_IN, 1, APN_UREG_IN_COMMIT, APN_CMD_EPERM },
        { APN_EP_VALID, 0, 1, APN_UREG_MSG_SEND, APN_CMD_EPERM },
        /* trusted from here */
        { 3, TX_SLOT, 1, APN_UREG_OUT_COMMIT, APN_CMD_ENOENT }, /* not its */
        { 3, CMD_SLOT + 1, 1, APN_UREG_OUT_COMMIT, APN_CMD_ENOENT },
        { 3, N_OUT, 1, APN_UREG_OUT_COMMIT, APN_CMD_ENOENT },
        { 3, 0xffffffff, 1, APN_UREG_OUT_COMMIT, APN_CMD_ENOENT },
        { 3, CMD_SLOT, 0x10000, APN_UREG_OUT_COMMIT, APN_CMD_EINVAL },
        { 3, CMD_IN + 1, 1, APN_UREG_IN_COMMIT, APN_CMD_ENOENT },
        { 3, N_IN, 1, APN_UREG_IN_COMMIT, APN_CMD_ENOENT },
    };

    o.endpoint = CMD_EP;
    put_out_entry(a, CMD_SLOT, &o);
    o.flags = 0;                                    /* owned, not valid */
    put_out_entry(a, CMD_SLOT + 1, &o);
    put_in_entry(a, CMD_IN, &(struct apn_in_entry) {
        .flags = APN_ENTRY_VALID | APN_IN_CONTIG, .endpoint = CMD_EP,
        .base = 0x100000, .size = 0x1000,
    });
    put_in_entry(a, CMD_IN + 1, &(struct apn_in_entry) {
        .flags = APN_ENTRY_VALID | APN_IN_CONTIG, .endpoint = CMD_EP + 1,
        .base = 0x100000, .size = 0x1000,
    });

    for (int i = 0; i < ARRAY_SIZE(cases); i++) {
        g_autofree uint8_t *out0 = g_malloc(N_OUT * APN_TABLE_ENTRY_SIZE);
        g_autofree uint8_t *out1 = g_malloc(N_OUT * APN_TABLE_ENTRY_SIZE);
        g_autofree uint8_t *in0 = g_malloc(N_IN * APN_TABLE_ENTRY_SIZE);
        g_autofree uint8_t *in1 = g_malloc(N_IN * APN_TABLE_ENTRY_SIZE);

        qtest_memread(a->qts, a->out_table, out0, N_OUT * 64);
        qtest_memread(a->qts, a->in_table, in0, N_IN * 64);
        wr(a, epr(CMD_EP, APN_EPR_CTRL), cases[i].ctrl);
        wr(a, epr(CMD_EP, APN_EPR_PORT), 4000);
        wr(a, u + APN_UREG_OUT_INDEX, cases[i].index);
        wr(a, u + APN_UREG_IN_INDEX, cases[i].index);
        wr(a, u + APN_UREG_OUT_DEST_HOST, cases[i].host);
        wr(a, u + APN_UREG_OUT_NONCE, 0x5555);
        wr(a, u + APN_UREG_IN_NONCE, 0x5555);
        cnt_snap(a, before);
        wr(a, u + cases[i].reg, 1);
        g_assert_cmpuint(rd(a, u + APN_UREG_CMD_STATUS), ==,
                         cases[i].status);
        g_assert_cmpuint(delta(a, before, APN_CNT_CMD_REFUSED), ==,
                         cases[i].status == APN_CMD_EPERM);
        qtest_memread(a->qts, a->out_table, out1, N_OUT * 64);
        qtest_memread(a->qts, a->in_table, in1, N_IN * 64);
        g_assert_cmpmem(out1, N_OUT * 64, out0, N_OUT * 64);
        g_assert_cmpmem(in1, N_IN * 64, in0, N_IN * 64);
        assert_no_frame(a);
    }
    apn_stop(a);
}

/*
 * IN_COMMIT writes nonce and narrowing; base, size, owner and source checks
 * are the OS's and do not change. The cached copy follows at once.
 */
static void test_cmd_in_commit(void)
{
    Apn *a = apn_up(NULL);
    uint64_t buf = gmem(a, 0x1000, 0);
    struct apn_in_entry e = in_contig(buf, 0x1000, 0x1111);
    uint8_t before_e[APN_TABLE_ENTRY_SIZE], after_e[APN_TABLE_ENTRY_SIZE];
    uint64_t addr = a->in_table + CMD_IN * APN_TABLE_ENTRY_SIZE;
    uint64_t before[APN_CNT__COUNT];
    uint32_t u = APN_USER_PAGE(CMD_EP);
    uint8_t b = 0x77;
    static const uint32_t bad[][2] = {
        { 0x1000, 1 }, { 0xfff, 2 }, { 0, 0x1001 }, { 0xffffffff, 2 },
        { 8, 0 },
    };

    e.endpoint = CMD_EP;
    e.flags |= APN_IN_CHECK_SRC_HOST;
    e.src_host = PEER_HOST;
    e.src_host_mask = 0xffff;
    put_in_entry(a, CMD_IN, &e);
    ep_up(a, CMD_EP, APN_EP_VALID | APN_EP_TRUSTED, 0, 0);
    inject_write(a, CMD_IN, 0x1111, 0, &b, 1);      /* cached */
    qtest_memread(a->qts, addr, before_e, sizeof(before_e));

    for (int i = 0; i < ARRAY_SIZE(bad); i++) {
        wr(a, u + APN_UREG_IN_INDEX, CMD_IN);
        wr(a, u + APN_UREG_IN_NARROW_START, bad[i][0]);
        wr(a, u + APN_UREG_IN_NARROW_LEN, bad[i][1]);
        wr(a, u + APN_UREG_IN_COMMIT, 1);
        g_assert_cmpuint(rd(a, u + APN_UREG_CMD_STATUS), ==, APN_CMD_EINVAL);
    }
    qtest_memread(a->qts, addr, after_e, sizeof(after_e));
    g_assert_cmpmem(after_e, sizeof(after_e), before_e, sizeof(before_e));

    wr(a, u + APN_UREG_IN_NONCE, 0x2222);
    wr(a, u + APN_UREG_IN_NARROW_START, 0x100);
    wr(a, u + APN_UREG_IN_NARROW_LEN, 0xf00);       /* to the end */
    wr(a, u + APN_UREG_IN_COMMIT, 1);
    g_assert_cmpuint(rd(a, u + APN_UREG_CMD_STATUS), ==, APN_CMD_OK);
    qtest_memread(a->qts, addr, after_e, sizeof(after_e));
    g_assert_cmphex(ldl_le_p(after_e + 16), ==, 0x2222);
    g_assert_cmphex(ldl_le_p(after_e + 40), ==, 0x100);
    g_assert_cmphex(ldl_le_p(after_e + 44), ==, 0xf00);
    memcpy(before_e + 16, after_e + 16, 4);
    memcpy(before_e + 40, after_e + 40, 8);
    g_assert_cmpmem(after_e, sizeof(after_e), before_e, sizeof(before_e));

    /* the device uses the new nonce and range at once */
    cnt_snap(a, before);
    inject_write(a, CMD_IN, 0x1111, 0x100, &b, 1);
    assert_drops(a, before, "rx_drop_nonce+1");
    recv_seg_error(a, CMD_IN, 0, APN_CNT_RX_DROP_NONCE);
    cnt_snap(a, before);
    inject_write(a, CMD_IN, 0x2222, 0xff, &b, 1);
    assert_drops(a, before, "rx_drop_bounds+1");
    recv_seg_error(a, CMD_IN, 0, APN_CNT_RX_DROP_BOUNDS);
    cnt_snap(a, before);
    inject_write(a, CMD_IN, 0x2222, 0x100, &b, 1);
    assert_drops(a, before, "");
    g_assert_cmpuint(qtest_readb(a->qts, buf + 0x100), ==, 0x77);

    /* narrow_len 0 is the whole extent again */
    wr(a, u + APN_UREG_IN_NARROW_START, 0);
    wr(a, u + APN_UREG_IN_NARROW_LEN, 0);
    wr(a, u + APN_UREG_IN_COMMIT, 1);
    g_assert_cmpuint(rd(a, u + APN_UREG_CMD_STATUS), ==, APN_CMD_OK);
    cnt_snap(a, before);
    inject_write(a, CMD_IN, 0x2222, 0, &b, 1);
    assert_drops(a, before, "");
    apn_stop(a);
}

/*
 * The privileged command block (BAR0 0x100) acts for CMD_EP whatever its
 * trust level: kernel connection management for untrusted endpoints.
 */
static void test_cmd_privileged(void)
{
    Apn *a = tx_up(",endpoints=8");
    struct apn_out_entry o = out_entry(PEER_HOST, 1, 0x11, 0x800);
    uint32_t blk = APN_REG_CMD_BLOCK;
    uint32_t u = APN_USER_PAGE(CMD_EP);

    o.endpoint = CMD_EP;
    put_out_entry(a, CMD_SLOT, &o);
    ep_up(a, CMD_EP, APN_EP_VALID, 0, 0);           /* untrusted */
    wr(a, u + APN_UREG_OUT_INDEX, CMD_SLOT);
    wr(a, u + APN_UREG_OUT_COMMIT, 1);
    g_assert_cmpuint(rd(a, u + APN_UREG_CMD_STATUS), ==, APN_CMD_EPERM);

    wr(a, APN_REG_CMD_EP, 8);                       /* no such endpoint */
    g_assert_cmpuint(rd(a, APN_REG_CMD_EP), ==, 0);
    wr(a, APN_REG_CMD_EP, CMD_EP);
    g_assert_cmpuint(rd(a, APN_REG_CMD_EP), ==, CMD_EP);
    wr(a, blk + APN_UREG_OUT_INDEX, CMD_SLOT);
    wr(a, blk + APN_UREG_OUT_DEST_HOST, PEER_HOST);
    wr(a, blk + APN_UREG_OUT_DEST_IN_INDEX, 99);
    wr(a, blk + APN_UREG_OUT_NONCE, 0x9999);
    g_assert_cmpuint(rd(a, blk + APN_UREG_OUT_DEST_IN_INDEX), ==, 99);
    wr(a, blk + APN_UREG_OUT_COMMIT, 1);
    g_assert_cmpuint(rd(a, blk + APN_UREG_CMD_STATUS), ==, APN_CMD_OK);
    /* the user page's status is its own */
    g_assert_cmpuint(rd(a, u + APN_UREG_CMD_STATUS), ==, APN_CMD_EPERM);
    g_assert_cmpuint(out_word(a, CMD_SLOT, 8), ==, 99);
    g_assert_cmphex(out_word(a, CMD_SLOT, 12), ==, 0x9999);

    /* still only for the endpoint's own apertures */
    wr(a, APN_REG_CMD_EP, CMD_EP + 1);
    wr(a, blk + APN_UREG_OUT_COMMIT, 1);
    g_assert_cmpuint(rd(a, blk + APN_UREG_CMD_STATUS), ==, APN_CMD_ENOENT);
    apn_stop(a);
}

/* ---- refused segments: APN_EV_RX_DROP, APN_SEG_ERROR, APN_EV_TX_ERROR ---- */

/*
 * A refused WRITE segment is reported to the aperture's endpoint and, as an
 * APN_SEG_ERROR frame, to the sender; frame-level drops (CRC, malformed,
 * filtered) are not answered, nor is an ERROR segment.
 */
static void test_rx_error_reply(void)
{
    Apn *a = apn_up(NULL);
    uint64_t buf = gmem(a, 0x1000, 0);
    struct apn_in_entry e = in_contig(buf, 0x100, 0xabc);
    uint64_t q = ep_up(a, 1, APN_EP_VALID, 0, EVQ_SIZE);
    uint64_t before[APN_CNT__COUNT];
    uint8_t frame[FRAME_MAX];
    uint8_t d[8] = { 0 };
    size_t len;
    Frame f;

    e.endpoint = 1;
    put_in_entry(a, 2, &e);
    cnt_snap(a, before);

    /* a bad nonce: RX_DROP to endpoint 1, SEG_ERROR to the sender */
    frame_init(&f, 2, 0xabd, 0, d, 8);
    f.seg[0].out_index = 9;
    inject_frame(a, &f);
    recv_seg_error(a, 2, 9, APN_CNT_RX_DROP_NONCE);
    check_ev(a, q, 0, APN_EV_RX_DROP, 1, APN_CNT_RX_DROP_NONCE,
             2 | (uint64_t)PEER_HOST << 32);
    /* out of bounds, one of two segments of a frame */
    frame_init(&f, 2, 0xabc, 0xfc, d, 8);
    f.seg[0].out_index = 10;
    f.seg[1] = (Seg) { .type = APN_SEG_WRITE, .in_index = 2, .nonce = 0xabc,
                       .offset = 0x10, .data = d, .len = 8,
                       .out_index = 10 };
    f.nseg = f.n = 2;
    inject_frame(a, &f);
    recv_seg_error(a, 2, 10, APN_CNT_RX_DROP_BOUNDS);
    check_ev(a, q, 1, APN_EV_RX_DROP, 1, APN_CNT_RX_DROP_BOUNDS,
             2 | (uint64_t)PEER_HOST << 32);
    /* no entry: the sender hears, no endpoint does */
    frame_init(&f, N_IN + 3, 0, 0, d, 8);
    f.seg[0].out_index = 11;
    inject_frame(a, &f);
    recv_seg_error(a, N_IN + 3, 11, APN_CNT_RX_DROP_INDEX);
    frame_init(&f, 4, 0, 0, d, 8);                  /* zeroed: invalid */
    inject_frame(a, &f);
    recv_seg_error(a, 4, 0, APN_CNT_RX_DROP_INVALID);
    g_assert_cmpuint(rd(a, ureg(1, APN_UREG_EVQ_WRPTR)), ==, 2);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_ERROR_MSGS), ==, 4);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_FRAMES), ==, 4);
    assert_drops(a, before, "rx_drop_index+1 rx_drop_invalid+1 "
                 "rx_drop_nonce+1 rx_drop_bounds+1");

    /* not answered: CRC, malformed, filtered, unknown segment, ERROR */
    cnt_snap(a, before);
    frame_init(&f, 2, 0xabd, 0, d, 8);
    len = frame_encode(&f, frame);
    frame[APN_ETH_HLEN + APN_FRAME_HDR_LEN + APN_SEG_HDR_LEN] ^= 1;
    inject(a, frame, len);
    inject(a, frame, APN_ETH_HLEN + APN_FRAME_HDR_LEN + 4);
    f.dst_host = SELF_HOST + 1;
    inject_frame(a, &f);
    frame_init(&f, 2, 0xabd, 0, d, 8);
    f.seg[0].type = 0x7f;
    inject_frame(a, &f);
    frame_init(&f, 2, 0xabd, 0, NULL, 0);
    f.seg[0].type = APN_SEG_ERROR;
    inject_frame(a, &f);
    assert_no_frame(a);
    assert_drops(a, before, "rx_filtered+1 rx_drop_malformed+2 "
                 "rx_drop_crc+1");
    g_assert_cmpuint(delta(a, before, APN_CNT_RX_ERROR_MSGS), ==, 1);
    g_assert_cmpuint(rd(a, ureg(1, APN_UREG_EVQ_WRPTR)), ==, 2);
    apn_stop(a);
}

/*
 * An APN_SEG_ERROR from the peer about our outgoing aperture 4 becomes
 * APN_EV_TX_ERROR on the aperture's endpoint, if it matches where the
 * aperture sends.
 */
static void test_rx_error_msg(void)
{
    Apn *a = apn_up(NULL);
    struct apn_out_entry o = out_entry(PEER_HOST, 42, 1, 0x1000);
    uint64_t q = ep_up(a, 1, APN_EP_VALID, 0, EVQ_SIZE);
    uint64_t before[APN_CNT__COUNT];
    Frame f;

    o.endpoint = 1;
    put_out_entry(a, 4, &o);
    cnt_snap(a, before);
    frame_init(&f, 42, 0, APN_CNT_RX_DROP_SEQ, NULL, 0);
    f.seg[0].type = APN_SEG_ERROR;
    f.seg[0].out_index = 4;
    inject_frame(a, &f);
    check_ev(a, q, 0, APN_EV_TX_ERROR, 1, APN_CNT_RX_DROP_SEQ,
             4 | (uint64_t)42 << 32);
    /* stale: another in-index, another host, another aperture */
    f.seg[0].in_index = 43;
    inject_frame(a, &f);
    f.seg[0].in_index = 42;
    f.src_host = PEER_HOST + 1;
    inject_frame(a, &f);
    f.src_host = PEER_HOST;
    f.seg[0].out_index = 5;
    inject_frame(a, &f);
    /* an ERROR with a payload is malformed */
    f.seg[0].out_index = 4;
    f.seg[0].data = (const uint8_t *)"xxxx";
    f.seg[0].len = 4;
    inject_frame(a, &f);
    g_assert_cmpuint(rd(a, ureg(1, APN_UREG_EVQ_WRPTR)), ==, 1);
    g_assert_cmpuint(delta(a, before, APN_CNT_RX_ERROR_MSGS), ==, 4);
    assert_drops(a, before, "rx_drop_malformed+1");
    assert_no_frame(a);
    apn_stop(a);
}

/*
 * Loopback end to end: a store with a stale nonce to our own host is
 * refused by our receive side (RX_DROP on the receiving endpoint) and the
 * SEG_ERROR comes back to the sending endpoint (TX_ERROR); nothing on the
 * wire.
 */
static void test_rx_error_loopback(void)
{
    Apn *a = apn_up(NULL);
    struct apn_out_entry o = out_entry(SELF_HOST, 6, 0xbad, 0x1000);
    uint64_t buf = gmem(a, 0x1000, 0);
    struct apn_in_entry e = in_contig(buf, 0x1000, 0x600d);
    uint64_t qs = ep_up(a, 1, APN_EP_VALID, 0, EVQ_SIZE);
    uint64_t qr = ep_up(a, 2, APN_EP_VALID, 0, EVQ_SIZE);
    uint64_t before[APN_CNT__COUNT];

    o.endpoint = 1;
    e.endpoint = 2;
    put_out_entry(a, 3, &o);
    put_in_entry(a, 6, &e);
    cnt_snap(a, before);
    qtest_writel(a->qts, slot_addr(a, 3, 0x10), 0x12345678);
    fence(a, 0);
    assert_no_frame(a);
    check_ev(a, qr, 0, APN_EV_RX_DROP, 2, APN_CNT_RX_DROP_NONCE,
             6 | (uint64_t)SELF_HOST << 32);
    check_ev(a, qs, 0, APN_EV_TX_ERROR, 1, APN_CNT_RX_DROP_NONCE,
             3 | (uint64_t)6 << 32);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_FRAMES), ==, 2);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_ERROR_MSGS), ==, 1);
    g_assert_cmpuint(delta(a, before, APN_CNT_RX_ERROR_MSGS), ==, 1);
    assert_drops(a, before, "rx_drop_nonce+1");
    apn_stop(a);
}

/* ---- event frames -------------------------------------------------------- */

/*
 * An outgoing event aperture: every store is one APN_SEG_EVENT segment,
 * never gathered, in store order with the data bursts around it.
 */
static void test_event_tx(void)
{
    Apn *a = tx_up(NULL);
    struct apn_out_entry o = out_entry(PEER_HOST, 12, 0xe7e7, 0x100);
    static const uint8_t d[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    uint64_t before[APN_CNT__COUNT];
    SegExpect s[6] = {
        seg_expect(TX_SLOT, TX_IN_INDEX, TX_NONCE, 0x10, d, 4),
        seg_expect(5, 12, 0xe7e7, 0x20, d, 1),
        seg_expect(5, 12, 0xe7e7, 0x22, d, 2),
        seg_expect(5, 12, 0xe7e7, 0x24, d, 4),
        seg_expect(5, 12, 0xe7e7, 0xf8, d, 8),
        seg_expect(TX_SLOT, TX_IN_INDEX, TX_NONCE, 0x14, d, 4),
    };

    o.flags |= APN_ENTRY_TYPE_EVENT << APN_ENTRY_TYPE_SHIFT;
    put_out_entry(a, 5, &o);
    for (int i = 1; i < 5; i++) {
        s[i].type = APN_SEG_EVENT;
    }
    cnt_snap(a, before);
    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0x10), ldl_le_p(d));
    /* (QEMU splits an unaligned store: each store here is aligned) */
    qtest_writeb(a->qts, slot_addr(a, 5, 0x20), d[0]);
    qtest_writew(a->qts, slot_addr(a, 5, 0x22), lduw_le_p(d));
    qtest_writel(a->qts, slot_addr(a, 5, 0x24), ldl_le_p(d));
    qtest_writeq(a->qts, slot_addr(a, 5, 0xf8), ldq_le_p(d));
    qtest_writeq(a->qts, slot_addr(a, 5, 0x100), ldq_le_p(d)); /* bounds */
    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0x14), ldl_le_p(d));
    assert_no_frame(a);
    fence(a, 0);
    recv_check_segs(a, peer_mac, PEER_HOST, s, 6);
    assert_no_frame(a);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_SEGMENTS), ==, 6);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_FRAMES), ==, 1);
    assert_drops(a, before, "tx_drop_bounds+1");

    /* with sequence numbers, each event is numbered */
    o.flags |= APN_ENTRY_SEQ;
    o.seq = 7;
    put_out_entry(a, 5, &o);
    wr(a, APN_REG_TABLE_INVAL, APN_INVAL_OUT | 5);
    qtest_writeb(a->qts, slot_addr(a, 5, 0), d[0]);
    qtest_writeb(a->qts, slot_addr(a, 5, 1), d[0]);
    fence(a, 0);
    s[1].flags = s[2].flags = APN_SEG_F_SEQ;
    s[1].seq = 7;
    s[2].seq = 8;
    s[1].offset = 0;
    s[2].offset = 1;
    s[2].len = 1;
    recv_check_segs(a, peer_mac, PEER_HOST, s + 1, 2);
    g_assert_cmpuint(out_entry_seq(a, 5), ==, 9);
    apn_stop(a);
}

/* Inject @f (one segment); only counter @id moves, the sender is told. */
static void drop_expect_ev(Apn *a, const Frame *f, int id)
{
    g_autofree char *expect = g_strdup_printf("%s+1", cnt_name[id]);
    uint64_t before[APN_CNT__COUNT];
    SegExpect x = {
        .type = APN_SEG_ERROR, .in_index = f->seg[0].in_index,
        .offset = id, .out_index = f->seg[0].out_index,
    };

    cnt_snap(a, before);
    inject_frame(a, f);
    assert_drops(a, before, expect);
    recv_check_segs(a, f->src, f->src_host, &x, 1);
}

/*
 * An incoming event aperture: a segment checked like a write becomes one
 * APN_EV_EVENT (info = offset, data = payload, zero-extended) on the
 * aperture's endpoint. WRITE to an event aperture and EVENT to a data
 * aperture are rx_drop_invalid.
 */
static void test_event_rx(void)
{
    Apn *a = apn_up(NULL);
    uint64_t q = ep_up(a, 7, APN_EP_VALID, 0, 8);
    uint64_t buf = gmem(a, 0x1000, 0x33);
    struct apn_in_entry data_e = in_contig(buf, 0x1000, 5);
    struct apn_in_entry ev_e = {
        .flags = APN_ENTRY_VALID | APN_ENTRY_SEQ |
                 APN_ENTRY_TYPE_EVENT << APN_ENTRY_TYPE_SHIFT |
                 APN_IN_CHECK_SRC_HOST,
        .endpoint = 7, .nonce = 5, .size = 0x40, .seq = 100,
        .src_host = PEER_HOST, .src_host_mask = 0xffff,
    };
    static const uint8_t d[9] = { 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                  0x88, 0x99 };
    uint64_t before[APN_CNT__COUNT];
    uint8_t fill[0x1000];
    Frame f;

    put_in_entry(a, 1, &ev_e);
    put_in_entry(a, 2, &data_e);
    cnt_snap(a, before);
    frame_init(&f, 1, 5, 0x3f, d, 3);
    f.seg[0].type = APN_SEG_EVENT;
    f.seg[0].flags = APN_SEG_F_SEQ;
    f.seg[0].seq = 100;
    f.seg[1] = f.seg[0];
    f.seg[1].seq = 101;
    f.seg[1].offset = 0;
    f.seg[1].len = 8;
    f.nseg = f.n = 2;
    inject_frame(a, &f);
    check_ev(a, q, 0, APN_EV_EVENT, 7, 0x3f, 0x332211);
    check_ev(a, q, 1, APN_EV_EVENT, 7, 0, 0x8877665544332211ull);
    g_assert_cmpuint(in_entry_seq(a, 1), ==, 102);
    assert_drops(a, before, "");

    /* each check of a write applies */
    f.nseg = f.n = 1;
    f.seg[0].seq = 102;
    f.seg[0].offset = 0x40;                         /* offset >= size */
    drop_expect_ev(a, &f, APN_CNT_RX_DROP_BOUNDS);
    f.seg[0].offset = 0;
    f.seg[0].nonce = 6;
    drop_expect_ev(a, &f, APN_CNT_RX_DROP_NONCE);
    f.seg[0].nonce = 5;
    f.seg[0].seq = 101;
    drop_expect_ev(a, &f, APN_CNT_RX_DROP_SEQ);
    f.seg[0].seq = 102;
    f.src_host = PEER_HOST + 1;
    drop_expect_ev(a, &f, APN_CNT_RX_DROP_SRC_HOST);
    f.src_host = PEER_HOST;
    f.seg[0].type = APN_SEG_WRITE;                  /* to an event aperture */
    drop_expect_ev(a, &f, APN_CNT_RX_DROP_INVALID);
    f.seg[0].type = APN_SEG_EVENT;
    f.seg[0].in_index = 2;                          /* to a data aperture */
    f.seg[0].nonce = 5;
    drop_expect_ev(a, &f, APN_CNT_RX_DROP_INVALID);
    memset(fill, 0x33, sizeof(fill));
    assert_mem(a, buf, fill, sizeof(fill));
    /* 0 or more than 8 bytes is not an event */
    f.seg[0].in_index = 1;
    f.seg[0].len = 9;
    cnt_snap(a, before);
    inject_frame(a, &f);
    f.seg[0].len = 0;
    inject_frame(a, &f);
    assert_drops(a, before, "rx_drop_malformed+2");
    assert_no_frame(a);
    /* the drops above posted RX_DROP events on endpoint 7 */
    g_assert_cmpuint(rd(a, ureg(7, APN_UREG_EVQ_WRPTR)), ==, 7);
    check_ev(a, q, 2, APN_EV_RX_DROP, 7, APN_CNT_RX_DROP_BOUNDS,
             1 | (uint64_t)PEER_HOST << 32);
    check_ev(a, q, 6, APN_EV_RX_DROP, 7, APN_CNT_RX_DROP_INVALID,
             1 | (uint64_t)PEER_HOST << 32);

    /* the good one still has its number */
    f.seg[0].len = 2;
    cnt_snap(a, before);
    inject_frame(a, &f);
    assert_drops(a, before, "");
    check_ev(a, q, 7, APN_EV_EVENT, 7, 0, 0x2211);
    apn_stop(a);
}

/* Event frames to ourselves: the store posts the event locally. */
static void test_event_loopback(void)
{
    Apn *a = apn_up(NULL);
    struct apn_out_entry o = out_entry(SELF_HOST, 9, 0x99, 0x100);
    uint64_t q = ep_up(a, 0, APN_EP_VALID, 0, EVQ_SIZE);

    o.flags |= APN_ENTRY_TYPE_EVENT << APN_ENTRY_TYPE_SHIFT;
    put_out_entry(a, 2, &o);
    put_in_event(a, 9, 0, 0x99, 0x100);
    qtest_writel(a->qts, slot_addr(a, 2, 0x80), 0xcafef00d);
    fence(a, 0);
    assert_no_frame(a);
    check_ev(a, q, 0, APN_EV_EVENT, 0, 0x80, 0xcafef00d);
    apn_stop(a);
}

/* ---- connection messages (UDP/IPv4) -------------------------------------- */

#define SELF_IP         0x0a000021u     /* 10.0.0.33 */
#define PEER_IP         0x0a000042u     /* 10.0.0.66 */
#define EP_PORT         4000
#define PEER_PORT       5555

typedef struct Udp {
    const uint8_t *dst_mac;
    uint32_t src_ip, dst_ip;
    uint16_t sport, dport;
    uint8_t vihl, proto;
    uint16_t frag;
    int16_t tot_adjust;         /* added to the IPv4 total length */
    int16_t ulen_adjust;        /* added to the UDP length */
    bool bad_csum, bad_ucsum, no_ucsum;
    const uint8_t *payload;
    uint16_t len;
} Udp;

static Udp udp_init(uint16_t dport, const void *payload, uint16_t len)
{
    return (Udp) {
        .dst_mac = dev_mac, .src_ip = PEER_IP, .dst_ip = SELF_IP,
        .sport = PEER_PORT, .dport = dport, .vihl = 0x45, .proto = 17,
        .payload = payload, .len = len,
    };
}

static uint16_t inet_csum(uint32_t sum, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i + 1 < len; i += 2) {
        sum += lduw_be_p(p + i);
    }
    if (len & 1) {
        sum += p[len - 1] << 8;
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return ~sum;
}

static uint16_t udp_csum(const uint8_t *ip, const uint8_t *udp, uint16_t ulen)
{
    uint32_t sum = lduw_be_p(ip + 12) + lduw_be_p(ip + 14) +
                   lduw_be_p(ip + 16) + lduw_be_p(ip + 18) + 17 + ulen;

    return inet_csum(sum, udp, ulen);
}

static size_t udp_encode(const Udp *u, uint8_t *buf)
{
    size_t ihl = (u->vihl & 0xf) * 4;
    uint8_t *ip = buf + APN_ETH_HLEN, *udp = ip + ihl;
    uint16_t ulen = APN_UDP_HLEN + u->len;
    uint16_t c;

    memset(buf, 0, FRAME_MAX);
    memcpy(buf, u->dst_mac, 6);
    memcpy(buf + 6, peer_mac, 6);
    stw_be_p(buf + 12, 0x0800);
    ip[0] = u->vihl;
    stw_be_p(ip + 2, ihl + ulen + u->tot_adjust);
    stw_be_p(ip + 6, u->frag);
    ip[8] = 64;
    ip[9] = u->proto;
    stl_be_p(ip + 12, u->src_ip);
    stl_be_p(ip + 16, u->dst_ip);
    stw_be_p(ip + 10, inet_csum(0, ip, ihl) ^ u->bad_csum);
    stw_be_p(udp, u->sport);
    stw_be_p(udp + 2, u->dport);
    stw_be_p(udp + 4, ulen + u->ulen_adjust);
    memcpy(udp + APN_UDP_HLEN, u->payload, u->len);
    c = udp_csum(ip, udp, ulen);
    stw_be_p(udp + 6, u->no_ucsum ? 0 : (c ? c : 0xffff) ^ u->bad_ucsum);
    return MAX(APN_ETH_HLEN + ihl + ulen, APN_MIN_ETH_FRAME);
}

static void inject_udp(Apn *a, const Udp *u)
{
    uint8_t buf[FRAME_MAX];

    inject(a, buf, udp_encode(u, buf));
}

static void msg_encode(uint8_t m[APN_MSG_LEN], uint8_t type, uint16_t port,
                       uint16_t src_host, uint32_t in_index, uint32_t nonce,
                       uint32_t info)
{
    memset(m, 0, APN_MSG_LEN);
    stl_be_p(m, APN_MSG_MAGIC);
    m[4] = APN_WIRE_VERSION;
    m[5] = type;
    stw_be_p(m + 6, port);
    stw_be_p(m + 8, src_host);
    stl_be_p(m + 12, in_index);
    stl_be_p(m + 16, nonce);
    stl_be_p(m + 20, info);
}

/* Check every byte of a connection message the device sent. */
static void check_msg_frame(const uint8_t *f, size_t n, const uint8_t *dst,
                            uint32_t dst_ip, uint16_t sport, uint16_t dport,
                            const uint8_t msg[APN_MSG_LEN])
{
    const uint8_t *ip = f + APN_ETH_HLEN, *udp = ip + APN_IPV4_HLEN;

    g_assert_cmpuint(n, ==, APN_ETH_HLEN + APN_IPV4_HLEN + APN_UDP_HLEN +
                     APN_MSG_LEN);
    g_assert_cmpmem(f, 6, dst, 6);
    g_assert_cmpmem(f + 6, 6, dev_mac, 6);
    g_assert_cmphex(lduw_be_p(f + 12), ==, 0x0800);
    g_assert_cmphex(ip[0], ==, 0x45);
    g_assert_cmpuint(lduw_be_p(ip + 2), ==, APN_IPV4_HLEN + APN_UDP_HLEN +
                     APN_MSG_LEN);
    g_assert_cmphex(lduw_be_p(ip + 6) & 0x3fff, ==, 0);
    g_assert_cmpuint(ip[8], >, 0);
    g_assert_cmpuint(ip[9], ==, 17);
    g_assert_cmphex(inet_csum(0, ip, APN_IPV4_HLEN), ==, 0);
    g_assert_cmphex(ldl_be_p(ip + 12), ==, SELF_IP);
    g_assert_cmphex(ldl_be_p(ip + 16), ==, dst_ip);
    g_assert_cmpuint(lduw_be_p(udp), ==, sport);
    g_assert_cmpuint(lduw_be_p(udp + 2), ==, dport);
    g_assert_cmpuint(lduw_be_p(udp + 4), ==, APN_UDP_HLEN + APN_MSG_LEN);
    if (lduw_be_p(udp + 6)) {
        g_assert_cmphex(udp_csum(ip, udp, APN_UDP_HLEN + APN_MSG_LEN), ==, 0);
    }
    g_assert_cmpmem(udp + APN_UDP_HLEN, APN_MSG_LEN, msg, APN_MSG_LEN);
}

static void msg_regs(Apn *a, uint32_t base, uint32_t host, uint32_t port,
                     uint32_t type, uint32_t in_index, uint32_t nonce,
                     uint32_t info)
{
    wr(a, base + APN_UREG_MSG_DEST_HOST, host);
    wr(a, base + APN_UREG_MSG_DEST_PORT, port);
    wr(a, base + APN_UREG_MSG_TYPE, type);
    wr(a, base + APN_UREG_MSG_IN_INDEX, in_index);
    wr(a, base + APN_UREG_MSG_NONCE, nonce);
    wr(a, base + APN_UREG_MSG_INFO, info);
}

static void msg_expect_status(Apn *a, uint32_t base, uint32_t status)
{
    wr(a, base + APN_UREG_MSG_SEND, 1);
    g_assert_cmpuint(rd(a, base + APN_UREG_CMD_STATUS), ==, status);
}

/*
 * MSG_SEND: a datagram from IP_ADDR:port(ep) to host_ip[dest]:dest_port,
 * Ethernet to the host table's MAC, struct apn_msg as payload; stores
 * gathered before it leave first.
 */
static void test_msg_send(void)
{
    Apn *a = tx_up(",endpoints=8");
    uint32_t u = APN_USER_PAGE(1), blk = APN_REG_CMD_BLOCK;
    uint64_t before[APN_CNT__COUNT];
    uint8_t buf[FRAME_MAX], m[APN_MSG_LEN];
    static const uint8_t d[4] = { 1, 2, 3, 4 };
    TxExpect x = tx_expect(0, d, 4);
    size_t n;

    wr(a, APN_REG_IP_ADDR, SELF_IP);
    wr(a, APN_REG_HOST_IP_BASE + 4 * PEER_HOST, PEER_IP);
    g_assert_cmphex(rd(a, APN_REG_IP_ADDR), ==, SELF_IP);
    g_assert_cmphex(rd(a, APN_REG_HOST_IP_BASE + 4 * PEER_HOST), ==, PEER_IP);
    ep_up(a, 1, APN_EP_VALID | APN_EP_TRUSTED, EP_PORT, 0);
    cnt_snap(a, before);

    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0), ldl_le_p(d));
    msg_regs(a, u, PEER_HOST, 5000, APN_MSG_CONNECT, 7, 0xabc, 0);
    msg_expect_status(a, u, APN_CMD_OK);
    recv_check(a, &x);
    n = recv_frame(a, buf);
    msg_encode(m, APN_MSG_CONNECT, EP_PORT, SELF_HOST, 7, 0xabc, 0);
    check_msg_frame(buf, n, peer_mac, PEER_IP, EP_PORT, 5000, m);
    msg_regs(a, u, PEER_HOST, 5001, APN_MSG_ERROR, 8, 0xdef, 0x55);
    msg_expect_status(a, u, APN_CMD_OK);
    n = recv_frame(a, buf);
    msg_encode(m, APN_MSG_ERROR, EP_PORT, SELF_HOST, 8, 0xdef, 0x55);
    check_msg_frame(buf, n, peer_mac, PEER_IP, EP_PORT, 5001, m);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_MSGS), ==, 2);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_FRAMES), ==, 3);

    /* refused: nothing sent */
    msg_regs(a, u, PEER_HOST, 5000, 0, 7, 0xabc, 0);
    msg_expect_status(a, u, APN_CMD_EINVAL);
    wr(a, u + APN_UREG_MSG_TYPE, APN_MSG_ERROR + 1);
    msg_expect_status(a, u, APN_CMD_EINVAL);
    wr(a, u + APN_UREG_MSG_TYPE, APN_MSG_CLOSE);
    wr(a, u + APN_UREG_MSG_DEST_PORT, 0);
    msg_expect_status(a, u, APN_CMD_EINVAL);
    wr(a, u + APN_UREG_MSG_DEST_PORT, 0x10000);
    msg_expect_status(a, u, APN_CMD_EINVAL);
    wr(a, u + APN_UREG_MSG_DEST_PORT, 5000);
    wr(a, u + APN_UREG_MSG_DEST_HOST, PEER_HOST + 1);   /* no IP */
    msg_expect_status(a, u, APN_CMD_ENOROUTE);
    wr(a, APN_REG_HOST_IP_BASE + 4 * (PEER_HOST + 1), PEER_IP + 1);
    msg_expect_status(a, u, APN_CMD_ENOROUTE);          /* no MAC */
    wr(a, u + APN_UREG_MSG_DEST_HOST, APN_HOST_MAC_ENTRIES);
    msg_expect_status(a, u, APN_CMD_ENOROUTE);
    wr(a, u + APN_UREG_MSG_DEST_HOST, PEER_HOST);
    wr(a, APN_REG_IP_ADDR, 0);
    msg_expect_status(a, u, APN_CMD_ENOROUTE);
    wr(a, APN_REG_IP_ADDR, SELF_IP);
    wr(a, APN_REG_CTRL, 0);
    msg_expect_status(a, u, APN_CMD_EDISABLED);
    apn_enable(a);
    wr(a, epr(1, APN_EPR_PORT), 0);
    msg_expect_status(a, u, APN_CMD_EINVAL);
    wr(a, epr(1, APN_EPR_PORT), EP_PORT);
    wr(a, epr(1, APN_EPR_CTRL), APN_EP_VALID);
    cnt_snap(a, before);
    msg_expect_status(a, u, APN_CMD_EPERM);
    g_assert_cmpuint(delta(a, before, APN_CNT_CMD_REFUSED), ==, 1);
    assert_no_frame(a);

    /* the privileged block sends for an untrusted endpoint, from its port */
    wr(a, APN_REG_CMD_EP, 1);
    msg_regs(a, blk, PEER_HOST, 5002, APN_MSG_ACCEPT, 9, 0x99, 0);
    msg_expect_status(a, blk, APN_CMD_OK);
    n = recv_frame(a, buf);
    msg_encode(m, APN_MSG_ACCEPT, EP_PORT, SELF_HOST, 9, 0x99, 0);
    check_msg_frame(buf, n, peer_mac, PEER_IP, EP_PORT, 5002, m);
    wr(a, APN_REG_CMD_EP, 2);                       /* no port */
    msg_expect_status(a, blk, APN_CMD_EINVAL);
    assert_no_frame(a);
    apn_stop(a);
}

/*
 * A connection message to a bound port becomes an event on its endpoint:
 * info = in-index (ERROR: reason), data = nonce | src_host << 32 |
 * port << 48.
 */
static void test_msg_rx(void)
{
    Apn *a = apn_up(NULL);
    uint64_t osq = osq_up(a);
    uint64_t q = ep_up(a, 1, APN_EP_VALID, EP_PORT, 8);
    uint64_t before[APN_CNT__COUNT];
    uint8_t m[APN_MSG_LEN];
    Udp u;

    wr(a, APN_REG_IP_ADDR, SELF_IP);
    cnt_snap(a, before);
    for (uint8_t t = APN_MSG_CONNECT; t <= APN_MSG_ERROR; t++) {
        msg_encode(m, t, 4100, PEER_HOST, 10 + t, 0x100 + t, 0x50 + t);
        u = udp_init(EP_PORT, m, sizeof(m));
        u.no_ucsum = t == APN_MSG_ALIVE;           /* UDP checksum 0: ok */
        inject_udp(a, &u);
        check_ev(a, q, t - 1, APN_EV_MSG_DATA(t), 1,
                 t == APN_MSG_ERROR ? 0x50 + t : 10 + t,
                 (0x100 + t) | (uint64_t)PEER_HOST << 32 |
                 (uint64_t)4100 << 48);
    }
    g_assert_cmpuint(APN_EV_MSG_DATA(APN_MSG_ERROR), ==, APN_EV_ERROR_MSG);
    /* to the broadcast address */
    msg_encode(m, APN_MSG_CLOSE, 4100, PEER_HOST, 1, 2, 0);
    u = udp_init(EP_PORT, m, sizeof(m));
    u.dst_ip = 0xffffffff;
    u.dst_mac = (const uint8_t *)"\xff\xff\xff\xff\xff\xff";
    inject_udp(a, &u);
    check_ev(a, q, 6, APN_EV_CLOSE, 1, 1, 2 | (uint64_t)PEER_HOST << 32 |
             (uint64_t)4100 << 48);
    g_assert_cmpuint(delta(a, before, APN_CNT_RX_MSGS), ==, 7);
    assert_drops(a, before, "");

    /* bad packets */
    for (int i = 0; i < 11; i++) {
        u = udp_init(EP_PORT, m, sizeof(m));
        u.bad_csum = i == 0;
        u.bad_ucsum = i == 1;
        u.dst_ip = i == 2 ? SELF_IP + 1 : SELF_IP;
        u.vihl = i == 3 ? 0x46 : i == 4 ? 0x65 : 0x45; /* options, IPv6 */
        u.frag = i == 5 ? 0x2000 : i == 6 ? 0x0001 : 0; /* MF, offset */
        u.proto = i == 7 ? 6 : 17;                  /* TCP */
        u.tot_adjust = i == 8 ? 1000 : 0;           /* past the frame */
        u.ulen_adjust = i == 9 ? 1 :                /* past the packet */
                        i == 10 ? -APN_MSG_LEN - 1 : 0; /* < 8 */
        cnt_snap(a, before);
        inject_udp(a, &u);
        assert_drops(a, before, "rx_drop_bad_ip+1");
    }
    wr(a, APN_REG_IP_ADDR, 0);                      /* no address: not ours */
    u = udp_init(EP_PORT, m, sizeof(m));
    cnt_snap(a, before);
    inject_udp(a, &u);
    assert_drops(a, before, "rx_drop_bad_ip+1");
    wr(a, APN_REG_IP_ADDR, SELF_IP);
    wr(a, APN_REG_CTRL, 0);
    cnt_snap(a, before);
    inject_udp(a, &u);
    assert_drops(a, before, "rx_drop_disabled+1");
    apn_enable(a);
    g_assert_cmpuint(rd(a, ureg(1, APN_UREG_EVQ_WRPTR)), ==, 7);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 0);

    /* an unbound port (or one of an endpoint no longer valid): the OS */
    u = udp_init(4999, m, sizeof(m));
    cnt_snap(a, before);
    inject_udp(a, &u);
    assert_drops(a, before, "rx_drop_no_port+1");
    check_ev(a, osq, 0, APN_EV_NO_PORT, 0, 4999,
             (uint64_t)PEER_IP << 16 | PEER_PORT);
    wr(a, epr(1, APN_EPR_CTRL), 0);
    u = udp_init(EP_PORT, m, sizeof(m));
    inject_udp(a, &u);
    check_ev(a, osq, 1, APN_EV_NO_PORT, 0, EP_PORT,
             (uint64_t)PEER_IP << 16 | PEER_PORT);
    g_assert_cmpuint(delta(a, before, APN_CNT_RX_DROP_NO_PORT), ==, 2);
    g_assert_cmpuint(rd(a, ureg(1, APN_UREG_EVQ_WRPTR)), ==, 7);
    assert_no_frame(a);
    apn_stop(a);
}

/*
 * A datagram that is not a connection message goes to the endpoint's
 * variable-length queue: struct apn_var_hdr + payload padded to 8,
 * wrapping at the end, and APN_EV_VAR (info = length, data = byte
 * position | source port << 32). A record with no room is lost whole.
 */
static void test_msg_var(void)
{
    Apn *a = apn_up(NULL);
    uint64_t osq = osq_up(a);
    uint64_t q = ep_up(a, 1, APN_EP_VALID, EP_PORT, 8);
    uint64_t vq = gmem(a, 0x1000, 0x5c);
    uint64_t before[APN_CNT__COUNT];
    uint8_t p20[20], p10[10], m[APN_MSG_LEN], rec[32], mem[0x1000];
    Udp u;

    for (int i = 0; i < sizeof(p20); i++) {
        p20[i] = 0x20 + i;
    }
    for (int i = 0; i < sizeof(p10); i++) {
        p10[i] = 0xa0 + i;
    }
    wr(a, APN_REG_IP_ADDR, SELF_IP);
    qtest_memset(a->qts, vq, 0, 64 + 64);
    wr(a, epr(1, APN_EPR_VARQ_LO), (uint32_t)vq);
    wr(a, epr(1, APN_EPR_VARQ_HI), vq >> 32);
    wr(a, epr(1, APN_EPR_VARQ_SIZE), 64);
    cnt_snap(a, before);

    u = udp_init(EP_PORT, "hello", 5);
    inject_udp(a, &u);
    check_ev(a, q, 0, APN_EV_VAR, 1, 5, 0 | (uint64_t)PEER_PORT << 32);
    u = udp_init(EP_PORT, p20, 20);
    u.sport = 1234;
    inject_udp(a, &u);
    check_ev(a, q, 1, APN_EV_VAR, 1, 20, 16 | (uint64_t)1234 << 32);
    g_assert_cmpuint(rd(a, ureg(1, APN_UREG_VARQ_WRPTR)), ==, 48);
    g_assert_cmpuint(qctrl(a, vq, Q_WRPTR), ==, 48);
    memset(rec, 0, sizeof(rec));
    stl_le_p(rec, 5);
    stl_le_p(rec + 4, PEER_IP);
    memcpy(rec + 8, "hello", 5);
    assert_mem(a, vq + 64, rec, 16);
    memset(rec, 0, sizeof(rec));
    stl_le_p(rec, 20);
    stl_le_p(rec + 4, PEER_IP);
    memcpy(rec + 8, p20, 20);
    assert_mem(a, vq + 64 + 16, rec, 32);

    /* 24 bytes do not fit in 16: lost, counted, the OS told once */
    u = udp_init(EP_PORT, p10, 10);
    inject_udp(a, &u);
    inject_udp(a, &u);
    g_assert_cmpuint(delta(a, before, APN_CNT_EVQ_OVERFLOWS), ==, 2);
    g_assert_cmpuint(qctrl(a, vq, Q_OVERFLOWS), ==, 2);
    g_assert_cmpuint(qctrl(a, q, Q_OVERFLOWS), ==, 0);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 1);
    check_ev(a, osq, 0, APN_EV_OVERFLOW, 1, 1, 0);
    g_assert_cmpuint(rd(a, ureg(1, APN_UREG_VARQ_WRPTR)), ==, 48);

    /* the read pointer: inside [rdptr, wrptr], a multiple of 8 */
    wr(a, ureg(1, APN_UREG_VARQ_RDPTR), 56);
    wr(a, ureg(1, APN_UREG_VARQ_RDPTR), 20);
    g_assert_cmpuint(rd(a, ureg(1, APN_UREG_VARQ_RDPTR)), ==, 0);
    wr(a, ureg(1, APN_UREG_VARQ_RDPTR), 16);
    g_assert_cmpuint(rd(a, ureg(1, APN_UREG_VARQ_RDPTR)), ==, 16);

    /* now it fits, wrapping: 16 bytes at the end, 8 at the start */
    inject_udp(a, &u);
    check_ev(a, q, 2, APN_EV_VAR, 1, 10, 48 | (uint64_t)PEER_PORT << 32);
    g_assert_cmpuint(rd(a, ureg(1, APN_UREG_VARQ_WRPTR)), ==, 72);
    qtest_memread(a->qts, vq, mem, sizeof(mem));
    memset(rec, 0, sizeof(rec));
    stl_le_p(rec, 10);
    stl_le_p(rec + 4, PEER_IP);
    memcpy(rec + 8, p10, 10);
    g_assert_cmpmem(mem + 64 + 48, 16, rec, 16);
    g_assert_cmpmem(mem + 64, 8, rec + 16, 8);
    g_assert_cmpuint(ldl_le_p(mem + Q_WRPTR), ==, 72);
    for (int i = 64 + 64; i < sizeof(mem); i++) {
        g_assert_cmphex(mem[i], ==, 0x5c);
    }
    /* space was freed: a new episode */
    inject_udp(a, &u);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 2);
    check_ev(a, osq, 1, APN_EV_OVERFLOW, 1, 3, 0);

    /* nearly a message is not one */
    msg_encode(m, APN_MSG_CONNECT, 1, 2, 3, 4, 5);
    wr(a, ureg(1, APN_UREG_VARQ_RDPTR), 72);
    u = udp_init(EP_PORT, m, APN_MSG_LEN - 1);
    inject_udp(a, &u);
    check_ev(a, q, 3, APN_EV_VAR, 1, APN_MSG_LEN - 1,
             72 | (uint64_t)PEER_PORT << 32);
    m[4] = APN_WIRE_VERSION + 1;
    wr(a, ureg(1, APN_UREG_VARQ_RDPTR), 72 + 32);
    u = udp_init(EP_PORT, m, APN_MSG_LEN);
    inject_udp(a, &u);
    check_ev(a, q, 4, APN_EV_VAR, 1, APN_MSG_LEN,
             104 | (uint64_t)PEER_PORT << 32);
    g_assert_cmpuint(delta(a, before, APN_CNT_RX_MSGS), ==, 0);
    assert_drops(a, before, "");
    apn_stop(a);
}

/* A message to our own host is looped back to the endpoint on the port. */
static void test_msg_loopback(void)
{
    Apn *a = apn_up(NULL);
    uint64_t q = ep_up(a, 2, APN_EP_VALID, EP_PORT + 1, EVQ_SIZE);
    uint32_t u = APN_USER_PAGE(1);
    uint64_t before[APN_CNT__COUNT];

    ep_up(a, 1, APN_EP_VALID | APN_EP_TRUSTED, EP_PORT, 0);
    wr(a, APN_REG_IP_ADDR, SELF_IP);
    wr(a, APN_REG_HOST_IP_BASE + 4 * SELF_HOST, SELF_IP);
    cnt_snap(a, before);
    msg_regs(a, u, SELF_HOST, EP_PORT + 1, APN_MSG_CONNECT, 3, 0x333, 0);
    msg_expect_status(a, u, APN_CMD_OK);
    assert_no_frame(a);
    check_ev(a, q, 0, APN_EV_CONNECT, 2, 3, 0x333 |
             (uint64_t)SELF_HOST << 32 | (uint64_t)EP_PORT << 48);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_MSGS), ==, 1);
    g_assert_cmpuint(delta(a, before, APN_CNT_RX_MSGS), ==, 1);
    assert_drops(a, before, "");
    apn_stop(a);
}

/* ---- packing ------------------------------------------------------------- */

/*
 * Bursts to one host share a frame until it is full; a burst to another
 * host, a fence or the idle timer sends it.
 */
static void test_tx_pack(void)
{
    Apn *a = tx_up(NULL);
    struct apn_out_entry o = out_entry(PEER_HOST + 1, 8, 0x88, 0x1000);
    static const uint8_t d[4] = { 0xa, 0xb, 0xc, 0xd };
    g_autofree SegExpect *s = g_new0(SegExpect, 60);
    uint64_t before[APN_CNT__COUNT];

    set_route(a, PEER_HOST + 1, other_mac);
    put_out_entry(a, 4, &o);
    cnt_snap(a, before);
    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0), ldl_le_p(d));
    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0x100), ldl_le_p(d));
    assert_no_frame(a);
    qtest_writel(a->qts, slot_addr(a, 4, 0x10), ldl_le_p(d));
    /* the second burst closed, not yet the third: one frame so far */
    s[0] = seg_expect(TX_SLOT, TX_IN_INDEX, TX_NONCE, 0, d, 4);
    s[1] = seg_expect(TX_SLOT, TX_IN_INDEX, TX_NONCE, 0x100, d, 4);
    qtest_writel(a->qts, slot_addr(a, 4, 0x20), ldl_le_p(d));
    recv_check_segs(a, peer_mac, PEER_HOST, s, 2);
    assert_no_frame(a);
    fence(a, 0);
    s[0] = seg_expect(4, 8, 0x88, 0x10, d, 4);
    s[1] = seg_expect(4, 8, 0x88, 0x20, d, 4);
    recv_check_segs(a, other_mac, PEER_HOST + 1, s, 2);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_FRAMES), ==, 2);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_SEGMENTS), ==, 4);

    /* the idle timer sends a packed frame */
    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0), ldl_le_p(d));
    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0x100), ldl_le_p(d));
    qtest_clock_step(a->qts, 40000);
    assert_no_frame(a);
    qtest_clock_step(a->qts, 20000);
    s[0] = seg_expect(TX_SLOT, TX_IN_INDEX, TX_NONCE, 0, d, 4);
    s[1] = seg_expect(TX_SLOT, TX_IN_INDEX, TX_NONCE, 0x100, d, 4);
    recv_check_segs(a, peer_mac, PEER_HOST, s, 2);
    assert_no_frame(a);

    /* a full frame leaves at once: 53 segments of 28 bytes in 1500 */
    for (int i = 0; i < 60; i++) {
        qtest_writel(a->qts, slot_addr(a, TX_SLOT, 8 * i), ldl_le_p(d));
        s[i] = seg_expect(TX_SLOT, TX_IN_INDEX, TX_NONCE, 8 * i, d, 4);
    }
    recv_check_segs(a, peer_mac, PEER_HOST, s, 53);
    assert_no_frame(a);
    fence(a, 0);
    recv_check_segs(a, peer_mac, PEER_HOST, s + 53, 7);
    assert_no_frame(a);
    apn_stop(a);
}

/* At most 255 segments in a frame, however large the MTU. */
static void test_tx_pack_nseg(void)
{
    Apn *a = tx_up(",mtu=9000");
    g_autofree SegExpect *s = g_new0(SegExpect, 300);
    static const uint8_t d[4] = { 0xa, 0xb, 0xc, 0xd };

    for (int i = 0; i < 300; i++) {
        qtest_writel(a->qts, slot_addr(a, TX_SLOT, 8 * i), ldl_le_p(d));
        s[i] = seg_expect(TX_SLOT, TX_IN_INDEX, TX_NONCE, 8 * i, d, 4);
    }
    fence(a, 0);
    recv_check_segs(a, peer_mac, PEER_HOST, s, 255);
    recv_check_segs(a, peer_mac, PEER_HOST, s + 255, 45);
    assert_no_frame(a);
    apn_stop(a);
}

/* ---- migration ----------------------------------------------------------- */

static const char *migrate_status(QTestState *qts, char *buf, size_t size)
{
    QDict *ret = qtest_qmp_assert_success_ref(qts,
                                              "{ 'execute': 'query-migrate' }");

    g_strlcpy(buf, qdict_get_try_str(ret, "status") ?: "", size);
    qobject_unref(ret);
    return buf;
}

static bool vm_running(QTestState *qts)
{
    QDict *ret = qtest_qmp_assert_success_ref(qts,
                                              "{ 'execute': 'query-status' }");
    bool running = qdict_get_bool(ret, "running");

    qobject_unref(ret);
    return running;
}

static void migrate(Apn *src, Apn *dst)
{
    g_autofree char *path = g_strdup_printf("%s/apertnic-test-%d.mig",
                                            g_get_tmp_dir(), getpid());
    g_autofree char *uri = g_strdup_printf("unix:%s", path);
    gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;
    char st[32];

    /* no RARP self-announcements on the destination's wire */
    qtest_qmp_assert_success(dst->qts, "{ 'execute': "
                             "'migrate-set-parameters', 'arguments': "
                             "{ 'announce-rounds': 0 } }");
    qtest_qmp_assert_success(dst->qts, "{ 'execute': 'migrate-incoming',"
                             " 'arguments': { 'uri': %s } }", uri);
    qtest_qmp_assert_success(src->qts, "{ 'execute': 'migrate',"
                             " 'arguments': { 'uri': %s } }", uri);
    while (strcmp(migrate_status(src->qts, st, sizeof(st)), "completed")) {
        g_assert_cmpstr(st, !=, "failed");
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(10 * 1000);
    }
    while (!vm_running(dst->qts)) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(10 * 1000);
    }
    unlink(path);

    /* the destination's PCI config came with the stream: BARs included */
    pc_alloc_init(&dst->alloc, dst->qts, ALLOC_NO_FLAGS);
    dst->bus = qpci_new_pc(dst->qts, &dst->alloc);
    dst->dev = qpci_device_find(dst->bus, QPCI_DEVFN(4, 0));
    g_assert_nonnull(dst->dev);
    dst->bar0 = src->bar0;
    dst->bar2 = src->bar2;
    dst->in_table = src->in_table;
    dst->out_table = src->out_table;
}

/* The next frame already sent to @a's wire, or 0 if there is none. */
static size_t try_recv(Apn *a, uint8_t *buf)
{
    ssize_t n;

    rd(a, APN_REG_MAGIC);
    n = recv(a->sock, buf, FRAME_MAX, MSG_DONTWAIT);
    if (n < 0) {
        g_assert(errno == EAGAIN || errno == EWOULDBLOCK);
        return 0;
    }
    return n;
}

/*
 * Registers, routes and counters migrate; the destination's cache refills
 * from the tables in (migrated) memory. A burst gathered when the migration
 * starts is not lost: it reaches a wire, from the source or the destination,
 * and the destination's next burst carries the next sequence number.
 */
static void test_migration(void)
{
    static const uint32_t regs[] = {
        APN_REG_CTRL, APN_REG_HOST_ID, APN_REG_IN_TABLE_LO,
        APN_REG_IN_TABLE_HI, APN_REG_IN_TABLE_COUNT, APN_REG_OUT_TABLE_LO,
        APN_REG_OUT_TABLE_HI, APN_REG_OUT_TABLE_COUNT, APN_REG_OSQ_BASE_LO,
        APN_REG_OSQ_BASE_HI, APN_REG_OSQ_SIZE, APN_REG_OSQ_WRPTR,
        APN_REG_OSQ_RDPTR, APN_REG_STATUS,
        APN_REG_HOST_MAC_BASE + 8 * PEER_HOST,
        APN_REG_HOST_MAC_BASE + 8 * PEER_HOST + 4,
    };
    static const uint8_t d[4] = { 0xa1, 0xb2, 0xc3, 0xd4 };
    Apn *src = tx_up(NULL);
    Apn *dst = apn_start_full(NULL, true);
    uint64_t buf = gmem(src, 0x1000, 0x33);
    struct apn_in_entry e = in_contig(buf, 0x1000, 77);
    struct apn_out_entry o = out_entry(PEER_HOST, TX_IN_INDEX, TX_NONCE,
                                       0x1000);
    uint8_t expect[0x1000], frame[FRAME_MAX], b = 0x44;
    TxExpect x = tx_expect(0x10, d, 4);
    size_t n;

    osq_up(src);
    wr(src, APN_REG_IRQ_TEST, 0);
    o.flags |= APN_ENTRY_SEQ;
    o.seq = 10;
    put_out_entry(src, TX_SLOT, &o);
    put_in_entry(src, 0, &e);
    inject_write(src, 0, 77, 0, &b, 1);
    /* gathered, not sent: no fence, and no time passes */
    qtest_writel(src->qts, slot_addr(src, TX_SLOT, 0x10), ldl_le_p(d));

    migrate(src, dst);
    for (int i = 0; i < ARRAY_SIZE(regs); i++) {
        g_assert_cmphex(rd(dst, regs[i]), ==, rd(src, regs[i]));
    }
    for (int i = 0; i < APN_CNT__COUNT; i++) {
        if (i != APN_CNT_TX_FRAMES && i != APN_CNT_TX_BYTES &&
            i != APN_CNT_TX_SEGMENTS && i != APN_CNT_CACHE_HITS &&
            i != APN_CNT_CACHE_MISSES) {
            g_assert_cmpuint(cnt(dst, i), ==, cnt(src, i));
        }
    }
    g_assert_cmpuint(cnt(dst, APN_CNT_TX_STORES), ==, 1);
    g_assert_cmpuint(cnt(dst, APN_CNT_RX_FRAMES), ==, 1);

    /* the destination receives into the migrated aperture */
    inject_write(dst, 0, 77, 1, &b, 1);
    memset(expect, 0x33, sizeof(expect));
    expect[0] = expect[1] = 0x44;
    assert_mem(dst, buf, expect, sizeof(expect));

    /* the burst gathered before the migration went out, with seq 10 */
    x.seg_flags = APN_SEG_F_SEQ;
    x.seq = 10;
    qtest_clock_step(dst->qts, 1000 * 1000);
    n = try_recv(src, frame);
    if (!n) {
        n = try_recv(dst, frame);
    }
    g_assert_cmpuint(n, >, 0);
    check_tx_frame(frame, n, &x);
    g_assert_cmpuint(try_recv(src, frame), ==, 0);

    /* the destination's next burst: migrated route, seq 11 */
    x.offset = 0x20;
    x.seq = 11;
    qtest_writel(dst->qts, slot_addr(dst, TX_SLOT, 0x20), ldl_le_p(d));
    fence(dst, 0);
    recv_check(dst, &x);
    assert_no_frame(dst);
    g_assert_cmpuint(out_entry_seq(dst, TX_SLOT), ==, 12);
    apn_stop(dst);
    apn_stop(src);
}

/*
 * Endpoint state migrates: queue pointers, ARM, command registers, the
 * privileged block, IP_ADDR and the host IPv4 table; the port map is
 * rebuilt on the destination; a packed frame not yet sent reaches a wire.
 */
static void test_migration_endpoints(void)
{
    Apn *src = tx_up(NULL);
    Apn *dst = apn_start_full(NULL, true);
    uint64_t osq = osq_up(src);
    uint64_t q = ep_up(src, 1, APN_EP_VALID | APN_EP_TRUSTED, EP_PORT,
                       EVQ_SIZE);
    static const uint8_t d[4] = { 0x61, 0x62, 0x63, 0x64 };
    SegExpect s[2] = {
        seg_expect(TX_SLOT, TX_IN_INDEX, TX_NONCE, 0, d, 4),
        seg_expect(TX_SLOT, TX_IN_INDEX, TX_NONCE, 0x100, d, 4),
    };
    static const uint32_t regs[] = {
        APN_REG_IP_ADDR, APN_REG_HOST_IP_BASE + 4 * PEER_HOST, APN_REG_CMD_EP,
        APN_REG_CMD_BLOCK + APN_UREG_OUT_NONCE,
        APN_REG_CMD_BLOCK + APN_UREG_CMD_STATUS,
        APN_EP_REG(1, APN_EPR_CTRL), APN_EP_REG(1, APN_EPR_PORT),
        APN_EP_REG(1, APN_EPR_EVQ_LO), APN_EP_REG(1, APN_EPR_EVQ_SIZE),
        APN_EP_REG(2, APN_EPR_PORT),
        APN_USER_PAGE(1) + APN_UREG_EVQ_WRPTR,
        APN_USER_PAGE(1) + APN_UREG_EVQ_RDPTR,
        APN_USER_PAGE(1) + APN_UREG_OUT_INDEX,
        APN_USER_PAGE(1) + APN_UREG_CMD_STATUS,
        APN_REG_EV_POST_EP, APN_REG_EV_POST_INFO, APN_REG_EV_POST_DATA_LO,
        APN_REG_EV_POST_DATA_HI,
    };
    struct apn_in_entry e = in_contig(gmem(src, 0x100, 0), 0x100, 0x99);
    uint8_t frame[FRAME_MAX], m[APN_MSG_LEN];
    size_t n;
    Frame f;
    Udp u;

    wr(src, APN_REG_IP_ADDR, SELF_IP);
    wr(src, APN_REG_HOST_IP_BASE + 4 * PEER_HOST, PEER_IP);
    wr(src, APN_REG_CMD_EP, 1);
    wr(src, APN_REG_CMD_BLOCK + APN_UREG_OUT_NONCE, 0x1234);
    wr(src, APN_REG_CMD_BLOCK + APN_UREG_OUT_COMMIT, 1);    /* ENOENT */
    wr(src, APN_EP_REG(2, APN_EPR_PORT), EP_PORT + 2);      /* not valid */
    put_in_event(src, 1, 1, 5, 0x100);
    inject_event(src, 1, 5, 0, "a", 1);
    inject_event(src, 1, 5, 1, "b", 1);
    wr(src, ureg(1, APN_UREG_EVQ_RDPTR), 2);
    wr(src, ureg(1, APN_UREG_ARM), 1);                      /* armed */
    wr(src, ureg(1, APN_UREG_OUT_INDEX), 77);
    wr(src, ureg(1, APN_UREG_OUT_COMMIT), 1);               /* ENOENT */
    wr(src, APN_REG_EV_POST_EP, 1);
    wr(src, APN_REG_EV_POST_INFO, 0x31);
    wr(src, APN_REG_EV_POST_DATA_LO, 0x32);
    wr(src, APN_REG_EV_POST_DATA_HI, 0x33);
    /* a CLOSE for endpoint 2's aperture (no queue): rx_closes only */
    e.endpoint = 2;
    put_in_entry(src, 3, &e);
    frame_init(&f, 3, 0x99, 0, NULL, 0);
    f.seg[0].type = APN_SEG_CLOSE;
    inject_frame(src, &f);
    g_assert_cmpuint(cnt(src, APN_CNT_RX_CLOSES), ==, 1);
    /* one segment packed and a burst gathered, neither sent */
    qtest_writel(src->qts, slot_addr(src, TX_SLOT, 0), ldl_le_p(d));
    qtest_writel(src->qts, slot_addr(src, TX_SLOT, 0x100), ldl_le_p(d));

    migrate(src, dst);
    for (int i = 0; i < ARRAY_SIZE(regs); i++) {
        g_assert_cmphex(rd(dst, regs[i]), ==, rd(src, regs[i]));
    }
    g_assert_cmpuint(rd(dst, ureg(1, APN_UREG_CMD_STATUS)), ==,
                     APN_CMD_ENOENT);
    g_assert_cmpuint(rd(dst, ureg(1, APN_UREG_EVQ_WRPTR)), ==, 2);
    g_assert_cmphex(rd(dst, APN_REG_EV_POST_DATA_HI), ==, 0x33);
    /* the counters appended since version 2 migrate too */
    g_assert_cmpuint(cnt(dst, APN_CNT_RX_CLOSES), ==, 1);

    /* the packed frame: two segments, from one side or the other */
    qtest_clock_step(dst->qts, 1000 * 1000);
    n = try_recv(src, frame);
    if (!n) {
        n = try_recv(dst, frame);
    }
    g_assert_cmpuint(n, >, 0);
    check_tx_segs(frame, n, peer_mac, PEER_HOST, s, 2);
    g_assert_cmpuint(try_recv(src, frame), ==, 0);
    g_assert_cmpuint(try_recv(dst, frame), ==, 0);

    /* port map rebuilt, queue continues, still armed */
    msg_encode(m, APN_MSG_ALIVE, 4100, PEER_HOST, 1, 2, 0);
    u = udp_init(EP_PORT, m, sizeof(m));
    inject_udp(dst, &u);
    check_ev(dst, q, 2, APN_EV_ALIVE, 1, 1, 2 | (uint64_t)PEER_HOST << 32 |
             (uint64_t)4100 << 48);
    g_assert_cmpuint(rd(dst, APN_REG_OSQ_WRPTR), ==, 1);
    check_ev(dst, osq, 0, APN_EV_OOB_DATA, 1, 0, 0);
    /* the invalid endpoint 2 did not take its port */
    u = udp_init(EP_PORT + 2, m, sizeof(m));
    inject_udp(dst, &u);
    check_ev(dst, osq, 1, APN_EV_NO_PORT, 0, EP_PORT + 2,
             (uint64_t)PEER_IP << 16 | PEER_PORT);
    /* messages go out with the migrated addresses */
    msg_regs(dst, APN_USER_PAGE(1), PEER_HOST, 5000, APN_MSG_CLOSE, 3, 4, 0);
    msg_expect_status(dst, APN_USER_PAGE(1), APN_CMD_OK);
    n = recv_frame(dst, frame);
    msg_encode(m, APN_MSG_CLOSE, EP_PORT, SELF_HOST, 3, 4, 0);
    check_msg_frame(frame, n, peer_mac, PEER_IP, EP_PORT, 5000, m);
    /* the staged event posts from the migrated registers */
    wr(dst, APN_REG_EV_POST_TYPE, APN_EV_CLOSE);
    check_evf(dst, q, 3, APN_EV_CLOSE, APN_EV_F_POSTED, 1, 0x31,
              0x3300000032ull);
    apn_stop(dst);
    apn_stop(src);
}

/* ---- kernel Ethernet rings ----------------------------------------------- */

#define RING_BUF        0x800   /* bytes per test buffer */
#define NOMEM           0x1000000000ull /* 64 GiB: not memory */

static void desc_put(Apn *a, uint64_t ring, uint32_t slot, uint64_t addr,
                     uint16_t len)
{
    uint8_t d[16] = { 0 };

    stq_le_p(d, addr);
    stw_le_p(d + 8, len);
    qtest_memwrite(a->qts, ring + 16 * slot, d, sizeof(d));
}

static void desc_check(Apn *a, uint64_t ring, uint32_t slot, uint64_t addr,
                       uint16_t len, uint16_t flags)
{
    uint8_t d[16];

    qtest_memread(a->qts, ring + 16 * slot, d, sizeof(d));
    g_assert_cmphex(ldq_le_p(d), ==, addr);
    g_assert_cmpuint(lduw_le_p(d + 8), ==, len);
    g_assert_cmphex(lduw_le_p(d + 10), ==, flags);
    g_assert_cmphex(ldl_le_p(d + 12), ==, 0);
}

/* A ring of @size descriptors (zeroed) and its buffers, programmed. */
static uint64_t ring_up(Apn *a, bool rx, uint32_t size, uint64_t *bufs)
{
    uint64_t ring = gmem(a, 16 * size, 0);

    *bufs = gmem(a, RING_BUF * size, 0xee);
    wr(a, rx ? APN_REG_RX_RING_LO : APN_REG_TX_RING_LO, (uint32_t)ring);
    wr(a, rx ? APN_REG_RX_RING_HI : APN_REG_TX_RING_HI, ring >> 32);
    wr(a, rx ? APN_REG_RX_RING_SIZE : APN_REG_TX_RING_SIZE, size);
    g_assert_cmpuint(rd(a, rx ? APN_REG_RX_RING_SIZE : APN_REG_TX_RING_SIZE),
                     ==, size);
    if (rx) {
        for (uint32_t i = 0; i < size; i++) {
            desc_put(a, ring, i, *bufs + RING_BUF * i, RING_BUF);
        }
    }
    return ring;
}

/* An Ethernet frame of @len bytes: header, then a pattern from @seed. */
static void eth_frame(uint8_t *f, size_t len, const uint8_t *dst,
                      uint16_t ethertype, uint8_t seed)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, peer_mac, 6);
    stw_be_p(f + 12, ethertype);
    for (size_t i = APN_ETH_HLEN; i < len; i++) {
        f[i] = seed + i;
    }
}

static void msix_vectors_up(Apn *a, uint64_t msi)
{
    qpci_msix_enable(a->dev);
    msix_program(a, APN_VEC_OSQ, msi, 0x4000);
    msix_program(a, APN_VEC_RINGS, msi + 4, 0x4001);
}

/* Vector @vec was raised (pending while masked): deliver it to clear it. */
static void assert_vector(Apn *a, uint64_t msi, int vec, bool raised)
{
    g_assert_cmpint(qpci_msix_pending(a->dev, vec), ==, raised);
    if (raised) {
        qtest_writel(a->qts, msi + 4 * vec, 0);
        msix_mask(a, vec, false);
        g_assert_cmphex(qtest_readl(a->qts, msi + 4 * vec), ==, 0x4000 + vec);
        msix_mask(a, vec, true);
        g_assert_false(qpci_msix_pending(a->dev, vec));
    }
}

/*
 * TX ring: the TX_TAIL doorbell sends [TX_HEAD, TX_TAIL) at once, in order;
 * short frames are padded; a length outside [14, MTU + 14] is not sent and
 * gets ERROR; every descriptor gets DONE; TX_HEAD advances; vector 1 is
 * raised once per doorbell with RING_IRQ_TX. CTRL.ENABLE is not needed.
 */
static void test_ring_tx(void)
{
    Apn *a = apn_start(NULL);
    uint64_t msi = gmem(a, 0x1000, 0), bufs, ring;
    uint64_t before[APN_CNT__COUNT];
    uint8_t f[FRAME_MAX], got[FRAME_MAX];
    static const uint16_t lens[] = { 100, 20, 1515, 13, 1514, 14 };
    size_t n;

    msix_vectors_up(a, msi);
    ring = ring_up(a, false, 4, &bufs);
    wr(a, APN_REG_RING_IRQ, APN_RING_IRQ_TX);
    g_assert_cmphex(rd(a, APN_REG_RING_IRQ), ==, APN_RING_IRQ_TX);
    for (int i = 0; i < 4; i++) {
        eth_frame(f, RING_BUF, i ? peer_mac : dev_mac, 0x0806, i);
        qtest_memwrite(a->qts, bufs + RING_BUF * i, f, RING_BUF);
        desc_put(a, ring, i, bufs + RING_BUF * i, lens[i]);
    }
    cnt_snap(a, before);
    wr(a, APN_REG_TX_TAIL, 4);
    g_assert_cmpuint(rd(a, APN_REG_TX_TAIL), ==, 4);
    g_assert_cmpuint(rd(a, APN_REG_TX_HEAD), ==, 4);

    /* 100 bytes to our own MAC: on the wire, not looped back */
    eth_frame(f, 100, dev_mac, 0x0806, 0);
    n = recv_frame(a, got);
    g_assert_cmpmem(got, n, f, 100);
    /* 20 bytes: padded to 60 */
    eth_frame(f, 20, peer_mac, 0x0806, 1);
    memset(f + 20, 0, 40);
    n = recv_frame(a, got);
    g_assert_cmpmem(got, n, f, 60);
    assert_no_frame(a);
    desc_check(a, ring, 0, bufs, 100, APN_DESC_DONE);
    desc_check(a, ring, 1, bufs + RING_BUF, 20, APN_DESC_DONE);
    desc_check(a, ring, 2, bufs + 2 * RING_BUF, 1515,
               APN_DESC_DONE | APN_DESC_ERROR);
    desc_check(a, ring, 3, bufs + 3 * RING_BUF, 13,
               APN_DESC_DONE | APN_DESC_ERROR);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_RING_FRAMES), ==, 2);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_FRAMES), ==, 2);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_BYTES), ==, 160);
    g_assert_cmpuint(delta(a, before, APN_CNT_RX_FRAMES), ==, 0);
    g_assert_cmpuint(delta(a, before, APN_CNT_IRQS), ==, 1);
    assert_drops(a, before, "tx_drop_ring+2");
    assert_vector(a, msi, APN_VEC_RINGS, true);
    g_assert_false(qpci_msix_pending(a->dev, APN_VEC_OSQ));

    /* the ring wraps: slots 0 and 1 again; the largest frame goes */
    for (int i = 0; i < 2; i++) {
        eth_frame(f, RING_BUF, peer_mac, 0x86dd, 0x40 + i);
        qtest_memwrite(a->qts, bufs + RING_BUF * i, f, RING_BUF);
        desc_put(a, ring, i, bufs + RING_BUF * i, lens[4 + i]);
    }
    /* a tail more than the ring ahead, or behind the head: ignored */
    wr(a, APN_REG_TX_TAIL, 9);
    wr(a, APN_REG_TX_TAIL, 3);
    g_assert_cmpuint(rd(a, APN_REG_TX_TAIL), ==, 4);
    assert_no_frame(a);
    wr(a, APN_REG_RING_IRQ, 0);
    wr(a, APN_REG_TX_TAIL, 6);
    for (int i = 0; i < 2; i++) {
        eth_frame(f, RING_BUF, peer_mac, 0x86dd, 0x40 + i);
        if (lens[4 + i] < 60) {
            memset(f + lens[4 + i], 0, 60 - lens[4 + i]);
        }
        n = recv_frame(a, got);
        g_assert_cmpuint(n, ==, MAX(lens[4 + i], 60));
        g_assert_cmpmem(got, n, f, n);
        desc_check(a, ring, i, bufs + RING_BUF * i, lens[4 + i],
                   APN_DESC_DONE);
    }
    g_assert_cmpuint(rd(a, APN_REG_TX_HEAD), ==, 6);
    assert_vector(a, msi, APN_VEC_RINGS, false);

    /* an unreadable buffer: ERROR, tx_drop_dma; the ring goes on */
    desc_put(a, ring, 2, NOMEM, 64);
    desc_put(a, ring, 3, bufs, 64);
    cnt_snap(a, before);
    wr(a, APN_REG_TX_TAIL, 8);
    n = recv_frame(a, got);
    g_assert_cmpuint(n, ==, 64);
    desc_check(a, ring, 2, NOMEM, 64, APN_DESC_DONE | APN_DESC_ERROR);
    desc_check(a, ring, 3, bufs, 64, APN_DESC_DONE);
    assert_drops(a, before, "tx_drop_dma+1");

    /* a new size empties the ring; 0 turns it off */
    wr(a, APN_REG_TX_RING_SIZE, 2);
    g_assert_cmpuint(rd(a, APN_REG_TX_HEAD), ==, 0);
    g_assert_cmpuint(rd(a, APN_REG_TX_TAIL), ==, 0);
    wr(a, APN_REG_TX_RING_SIZE, 0);
    wr(a, APN_REG_TX_TAIL, 1);
    g_assert_cmpuint(rd(a, APN_REG_TX_TAIL), ==, 0);
    assert_no_frame(a);
    apn_stop(a);
}

/*
 * RX ring: with the ring on, what the device does not take itself (other
 * EtherTypes, multicast, IPv4 that is not a good datagram for a bound port,
 * datagrams to unbound ports: no APN_EV_NO_PORT then) goes to the next
 * posted buffer; CI frames and datagrams for bound ports do not. A frame
 * larger than its buffer: ERROR, rx_drop_ring. Vector 1 per frame.
 */
static void test_ring_rx(void)
{
    Apn *a = apn_up(NULL);
    uint64_t osq = osq_up(a);
    uint64_t q = ep_up(a, 1, APN_EP_VALID, EP_PORT, 8);
    uint64_t msi = gmem(a, 0x1000, 0), bufs, ring, ap = gmem(a, 0x1000, 0);
    struct apn_in_entry e = in_contig(ap, 0x100, 0x77);
    static const uint8_t mcast[6] = { 0x33, 0x33, 0, 0, 0, 1 };
    static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    uint64_t before[APN_CNT__COUNT];
    uint8_t f[FRAME_MAX], m[APN_MSG_LEN];
    uint32_t slot = 0;
    size_t n;
    Udp u;

    wr(a, APN_REG_IP_ADDR, SELF_IP);
    put_in_entry(a, 2, &e);
    msix_vectors_up(a, msi);
    ring = ring_up(a, true, 8, &bufs);
    wr(a, APN_REG_RING_IRQ, APN_RING_IRQ_RX);
    wr(a, APN_REG_RX_TAIL, 8);
    g_assert_cmpuint(rd(a, APN_REG_RX_TAIL), ==, 8);
    g_assert_cmpuint(rd(a, APN_REG_RX_HEAD), ==, 0);
    cnt_snap(a, before);

    /* ARP (broadcast), IPv6 (multicast) */
    eth_frame(f, 60, bcast, 0x0806, 1);
    inject(a, f, 60);
    eth_frame(f, 90, mcast, 0x86dd, 2);
    inject(a, f, 90);
    /* a datagram to an unbound port, one with a bad UDP checksum, TCP */
    msg_encode(m, APN_MSG_CONNECT, 4100, PEER_HOST, 1, 2, 0);
    u = udp_init(4999, m, sizeof(m));
    inject_udp(a, &u);
    u = udp_init(EP_PORT, m, sizeof(m));
    u.bad_ucsum = true;
    inject_udp(a, &u);
    u = udp_init(EP_PORT, m, sizeof(m));
    u.proto = 6;
    inject_udp(a, &u);
    g_assert_cmpuint(rd(a, APN_REG_RX_HEAD), ==, 5);
    g_assert_cmpuint(delta(a, before, APN_CNT_RX_RING_FRAMES), ==, 5);
    g_assert_cmpuint(delta(a, before, APN_CNT_IRQS), ==, 5);
    assert_drops(a, before, "");
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 0);     /* no NO_PORT */
    assert_vector(a, msi, APN_VEC_RINGS, true);

    /* what landed: each frame whole, length and DONE written back */
    eth_frame(f, 60, bcast, 0x0806, 1);
    desc_check(a, ring, slot, bufs, 60, APN_DESC_DONE);
    assert_mem(a, bufs, f, 60);
    slot++;
    eth_frame(f, 90, mcast, 0x86dd, 2);
    desc_check(a, ring, slot, bufs + RING_BUF, 90, APN_DESC_DONE);
    assert_mem(a, bufs + RING_BUF, f, 90);
    slot++;
    u = udp_init(4999, m, sizeof(m));
    n = udp_encode(&u, f);
    desc_check(a, ring, slot, bufs + 2 * RING_BUF, n, APN_DESC_DONE);
    assert_mem(a, bufs + 2 * RING_BUF, f, n);

    /* not for the ring: a message to a bound port, a CI write, others */
    cnt_snap(a, before);
    u = udp_init(EP_PORT, m, sizeof(m));
    inject_udp(a, &u);
    check_ev(a, q, 0, APN_EV_CONNECT, 1, 1, 2 | (uint64_t)PEER_HOST << 32 |
             (uint64_t)4100 << 48);
    inject_write(a, 2, 0x77, 0, "ci", 2);
    assert_mem(a, ap, "ci", 2);
    eth_frame(f, 60, other_mac, 0x0806, 3);
    inject(a, f, 60);
    g_assert_cmpuint(rd(a, APN_REG_RX_HEAD), ==, 5);
    assert_drops(a, before, "rx_filtered+1");

    /* too big for its buffer: ERROR, the frame's length, dropped */
    desc_put(a, ring, 5, bufs + 5 * RING_BUF, 64);
    eth_frame(f, 100, dev_mac, 0x0806, 4);
    inject(a, f, 100);
    desc_check(a, ring, 5, bufs + 5 * RING_BUF, 100,
               APN_DESC_DONE | APN_DESC_ERROR);
    g_assert_cmpuint(qtest_readb(a->qts, bufs + 5 * RING_BUF), ==, 0xee);
    assert_drops(a, before, "rx_filtered+1 rx_drop_ring+1");
    /* an unwritable buffer: ERROR, rx_drop_dma */
    desc_put(a, ring, 6, NOMEM, RING_BUF);
    inject(a, f, 100);
    desc_check(a, ring, 6, NOMEM, 0, APN_DESC_DONE | APN_DESC_ERROR);
    assert_drops(a, before, "rx_filtered+1 rx_drop_dma+1 rx_drop_ring+1");
    g_assert_cmpuint(rd(a, APN_REG_RX_HEAD), ==, 7);

    /* CTRL.ENABLE clear: all IPv4 goes to the ring, CI is dropped */
    wr(a, APN_REG_CTRL, 0);
    cnt_snap(a, before);
    inject_udp(a, &u);
    desc_check(a, ring, 7, bufs + 7 * RING_BUF, udp_encode(&u, f),
               APN_DESC_DONE);
    g_assert_cmpuint(rd(a, ureg(1, APN_UREG_EVQ_WRPTR)), ==, 1);
    wr(a, APN_REG_RX_TAIL, 9);
    inject_write(a, 2, 0x77, 0, "xx", 2);
    assert_drops(a, before, "rx_drop_disabled+1");
    g_assert_cmpuint(rd(a, APN_REG_RX_HEAD), ==, 8);

    /* the ring off: as before (no port: the OS hears) */
    apn_enable(a);
    wr(a, APN_REG_RX_RING_SIZE, 0);
    cnt_snap(a, before);
    u = udp_init(4999, m, sizeof(m));
    inject_udp(a, &u);
    eth_frame(f, 60, mcast, 0x0806, 1);
    inject(a, f, 60);
    eth_frame(f, 60, dev_mac, 0x0806, 1);
    inject(a, f, 60);
    assert_drops(a, before, "rx_filtered+1 rx_drop_not_ci+1 "
                 "rx_drop_no_port+1");
    check_ev(a, osq, 0, APN_EV_NO_PORT, 0, 4999,
             (uint64_t)PEER_IP << 16 | PEER_PORT);
    apn_stop(a);
}

/* rx_frames moved to @n (the device took a frame), or time ran out. */
static void wait_rx_frames(Apn *a, uint64_t n)
{
    gint64 deadline = g_get_monotonic_time() + TIMEOUT_US;

    while (cnt(a, APN_CNT_RX_FRAMES) < n) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(50);
    }
    g_assert_cmpuint(cnt(a, APN_CNT_RX_FRAMES), ==, n);
}

/*
 * Back-pressure: with the RX ring on and no buffer posted the device takes
 * no frame at all (CI included); they wait in QEMU, in order, and come in
 * when RX_TAIL posts buffers (or the ring is turned off).
 */
static void test_ring_backpressure(void)
{
    Apn *a = apn_up(NULL);
    uint64_t ap = gmem(a, 0x1000, 0), bufs, ring;
    struct apn_in_entry e = in_contig(ap, 0x100, 0x77);
    uint64_t rx0 = cnt(a, APN_CNT_RX_FRAMES);
    uint8_t f[4][128], ci[FRAME_MAX];
    size_t ci_len;
    Frame fr;

    put_in_entry(a, 2, &e);
    ring = ring_up(a, true, 4, &bufs);
    wr(a, APN_REG_RX_TAIL, 1);
    for (int i = 0; i < 4; i++) {
        eth_frame(f[i], 128, dev_mac, 0x0806, 0x10 * i);
    }
    frame_init(&fr, 2, 0x77, 0, "held", 4);
    ci_len = frame_encode(&fr, ci);
    g_assert_cmpint(send(a->sock, f[0], 128, 0), ==, 128);
    g_assert_cmpint(send(a->sock, f[1], 128, 0), ==, 128);
    g_assert_cmpint(send(a->sock, ci, ci_len, 0), ==, ci_len);
    g_assert_cmpint(send(a->sock, f[2], 128, 0), ==, 128);
    wait_rx_frames(a, rx0 + 1);
    /* full: nothing more is taken, however long we wait */
    for (int i = 0; i < 20; i++) {
        g_usleep(5000);
        g_assert_cmpuint(cnt(a, APN_CNT_RX_FRAMES), ==, rx0 + 1);
    }
    g_assert_false(qtest_readb(a->qts, ap) == 'h');
    g_assert_cmpuint(rd(a, APN_REG_RX_HEAD), ==, 1);

    /* two more buffers: two frames, then it waits again */
    wr(a, APN_REG_RX_TAIL, 3);
    wait_rx_frames(a, rx0 + 4);
    g_assert_cmpuint(rd(a, APN_REG_RX_HEAD), ==, 3);
    assert_mem(a, ap, "held", 4);
    for (int i = 0; i < 3; i++) {
        desc_check(a, ring, i, bufs + RING_BUF * i, 128, APN_DESC_DONE);
        assert_mem(a, bufs + RING_BUF * i, f[i], 128);
    }
    g_assert_cmpuint(cnt(a, APN_CNT_RX_DROP_RING), ==, 0);

    /* full again; turning the ring off lets held frames in (not_ci) */
    g_assert_cmpint(send(a->sock, f[3], 128, 0), ==, 128);
    g_assert_cmpint(send(a->sock, f[3], 128, 0), ==, 128);
    for (int i = 0; i < 20; i++) {
        g_usleep(5000);
        g_assert_cmpuint(cnt(a, APN_CNT_RX_FRAMES), ==, rx0 + 4);
    }
    wr(a, APN_REG_RX_RING_SIZE, 0);
    wait_rx_frames(a, rx0 + 6);
    g_assert_cmpuint(cnt(a, APN_CNT_RX_DROP_NOT_CI), ==, 2);
    apn_stop(a);
}

/* A reset (CTRL.RESET or PCI) lets the frames a full ring held back in. */
static void test_ring_reset(void)
{
    Apn *a = apn_start(NULL);
    uint64_t bufs;
    uint8_t f[128];

    eth_frame(f, 128, dev_mac, 0x0806, 1);
    ring_up(a, true, 2, &bufs);                 /* no buffer posted */
    g_assert_cmpint(send(a->sock, f, 128, 0), ==, 128);
    g_assert_cmpint(send(a->sock, f, 128, 0), ==, 128);
    g_usleep(20000);
    g_assert_cmpuint(cnt(a, APN_CNT_RX_FRAMES), ==, 0);
    wr(a, APN_REG_CTRL, APN_CTRL_RESET);
    wait_rx_frames(a, 2);
    g_assert_cmpuint(cnt(a, APN_CNT_RX_DROP_NOT_CI), ==, 2);

    ring_up(a, true, 2, &bufs);
    g_assert_cmpint(send(a->sock, f, 128, 0), ==, 128);
    g_usleep(20000);
    g_assert_cmpuint(cnt(a, APN_CNT_RX_FRAMES), ==, 2);
    qtest_qmp_assert_success(a->qts, "{ 'execute': 'system_reset' }");
    qtest_qmp_eventwait(a->qts, "RESET");
    qpci_device_enable(a->dev);
    a->bar0 = qpci_iomap(a->dev, APN_BAR_REGS, NULL);
    g_assert_cmpuint(rd(a, APN_REG_RX_RING_SIZE), ==, 0);
    wait_rx_frames(a, 1);
    apn_stop(a);
}

/* Ring registers: sizes, alignment, tails, RING_IRQ, reset. */
static void test_ring_registers(void)
{
    static const uint32_t bad[] = { 1, 3, 6, 8192, 0x80000000u };
    Apn *a = apn_start(NULL);

    for (int rx = 0; rx < 2; rx++) {
        uint32_t lo = rx ? APN_REG_RX_RING_LO : APN_REG_TX_RING_LO;
        uint32_t size = rx ? APN_REG_RX_RING_SIZE : APN_REG_TX_RING_SIZE;
        uint32_t tail = rx ? APN_REG_RX_TAIL : APN_REG_TX_TAIL;
        uint32_t head = rx ? APN_REG_RX_HEAD : APN_REG_TX_HEAD;

        wr(a, lo, 0x10040);
        wr(a, lo, 0x10010);                     /* not 64-byte aligned */
        wr(a, lo + 4, 3);
        g_assert_cmphex(rd(a, lo), ==, 0x10040);
        g_assert_cmphex(rd(a, lo + 4), ==, 3);
        wr(a, tail, 1);                         /* ring off */
        g_assert_cmpuint(rd(a, tail), ==, 0);
        wr(a, size, 4096);
        g_assert_cmpuint(rd(a, size), ==, 4096);
        wr(a, size, 2);
        for (int i = 0; i < ARRAY_SIZE(bad); i++) {
            wr(a, size, bad[i]);
            g_assert_cmpuint(rd(a, size), ==, 2);
        }
        wr(a, head, 1);                         /* read only */
        g_assert_cmpuint(rd(a, head), ==, 0);
        if (rx) {
            wr(a, tail, 2);
            g_assert_cmpuint(rd(a, tail), ==, 2);
            wr(a, tail, 3);
            g_assert_cmpuint(rd(a, tail), ==, 2);
            wr(a, tail, 0xffffffff);
            g_assert_cmpuint(rd(a, tail), ==, 2);
        }
    }
    wr(a, APN_REG_RING_IRQ, 0xff);
    g_assert_cmphex(rd(a, APN_REG_RING_IRQ), ==,
                    APN_RING_IRQ_RX | APN_RING_IRQ_TX);
    wr(a, APN_REG_CTRL, APN_CTRL_RESET);
    for (uint32_t r = APN_REG_RX_RING_LO; r <= APN_REG_RING_IRQ; r += 4) {
        g_assert_cmphex(rd(a, r), ==, 0);
    }
    apn_stop(a);
}

/* ---- remote read --------------------------------------------------------- */

#define RD_EP           1
#define RD_SLOT         3       /* RD_EP's outgoing aperture to the peer */
#define RD_RIN          42      /* ... the peer's incoming aperture */
#define RD_RNONCE       0x5eed
#define RD_LAND         6       /* RD_EP's landing incoming aperture */
#define RD_LNONCE       0x1a4d
#define RD_EVQ          128

typedef struct ReadFix {
    Apn *a;
    uint64_t q;                 /* RD_EP's event queue */
    uint64_t land;              /* the landing aperture's memory */
} ReadFix;

static void read_setup(ReadFix *x, const char *props, uint32_t out_flags)
{
    struct apn_out_entry o = out_entry(PEER_HOST, RD_RIN, RD_RNONCE, 0x1000);
    struct apn_in_entry e;

    x->a = apn_up(props);
    x->q = ep_up(x->a, RD_EP, APN_EP_VALID, 0, RD_EVQ);
    o.endpoint = RD_EP;
    o.flags |= out_flags;
    put_out_entry(x->a, RD_SLOT, &o);
    x->land = gmem(x->a, 0x1000, 0xee);
    e = in_contig(x->land, 0x1000, RD_LNONCE);
    e.endpoint = RD_EP;
    put_in_entry(x->a, RD_LAND, &e);
    wr(x->a, ureg(RD_EP, APN_UREG_READ_LANDING),
       APN_READ_LANDING_VALID | RD_LAND);
    g_assert_cmphex(rd(x->a, ureg(RD_EP, APN_UREG_READ_LANDING)), ==,
                    APN_READ_LANDING_VALID | RD_LAND);
}

typedef struct ReqExpect {
    uint8_t flags;
    uint32_t in_index, nonce, seq, offset, out_index;
    uint32_t read_len, reply_in, reply_nonce, reply_offset;
} ReqExpect;

static ReqExpect rd_expect(uint32_t offset, uint32_t len)
{
    return (ReqExpect) {
        .in_index = RD_RIN, .nonce = RD_RNONCE, .offset = offset,
        .out_index = RD_SLOT, .read_len = len, .reply_in = RD_LAND,
        .reply_nonce = RD_LNONCE, .reply_offset = offset,
    };
}

/* Check a one-segment READ_REQ frame to the peer; returns its tag. */
static uint32_t check_read_req(const uint8_t *f, size_t n, const ReqExpect *x)
{
    const uint8_t *p = f + APN_ETH_HLEN + APN_FRAME_HDR_LEN + APN_SEG_HDR_LEN;
    uint8_t pay[APN_READ_REQ_LEN];
    uint32_t tag;
    SegExpect s = {
        .type = APN_SEG_READ_REQ, .flags = x->flags, .in_index = x->in_index,
        .nonce = x->nonce, .seq = x->seq, .offset = x->offset,
        .out_index = x->out_index, .payload = pay, .len = APN_READ_REQ_LEN,
    };

    g_assert_cmpuint(n, >=, p - f + APN_READ_REQ_LEN);
    tag = be32(p + 16);
    stl_be_p(pay, x->read_len);
    stl_be_p(pay + 4, x->reply_in);
    stl_be_p(pay + 8, x->reply_nonce);
    stl_be_p(pay + 12, x->reply_offset);
    stl_be_p(pay + 16, tag);
    check_tx_segs(f, n, peer_mac, PEER_HOST, &s, 1);
    return tag;
}

static uint32_t recv_read_req(Apn *a, const ReqExpect *x)
{
    uint8_t buf[FRAME_MAX];
    size_t n = recv_frame(a, buf);

    return check_read_req(buf, n, x);
}

/* The peer answers: one READ_RESP segment. */
static void inject_read_resp(Apn *a, uint32_t in_index, uint32_t nonce,
                             uint32_t offset, uint32_t tag, const void *data,
                             uint16_t len)
{
    Frame f;

    frame_init(&f, in_index, nonce, offset, data, len);
    f.seg[0].type = APN_SEG_READ_RESP;
    f.seg[0].out_index = tag;
    inject_frame(a, &f);
}

static uint64_t load(Apn *a, uint32_t slot, uint32_t off, unsigned size)
{
    uint64_t addr = slot_addr(a, slot, off);

    switch (size) {
    case 1:
        return qtest_readb(a->qts, addr);
    case 2:
        return qtest_readw(a->qts, addr);
    case 4:
        return qtest_readl(a->qts, addr);
    default:
        return qtest_readq(a->qts, addr);
    }
}

/*
 * A load from an outgoing data aperture: the gathered stores go first,
 * then a READ_REQ (sequence numbered like a store) for the loaded bytes,
 * landing at the same offset of READ_LANDING; the load reads 0. The
 * peer's READ_RESP lands and APN_EV_READ_DONE (info = bytes, data =
 * offset | status << 32) follows the last byte.
 */
static void test_read_load(void)
{
    ReadFix x;
    static const uint8_t d[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    uint64_t before[APN_CNT__COUNT];
    uint8_t buf[FRAME_MAX], expect[0x1000];
    uint32_t tag, ev = 0, seq = 5;
    ReqExpect r;
    size_t n;

    read_setup(&x, NULL, APN_ENTRY_SEQ);
    qtest_writel(x.a->qts, x.a->out_table + RD_SLOT * APN_TABLE_ENTRY_SIZE +
                 offsetof(struct apn_out_entry, seq), seq);
    memset(expect, 0xee, sizeof(expect));
    cnt_snap(x.a, before);

    /* a store, then a load: one frame, the store first */
    qtest_writel(x.a->qts, slot_addr(x.a, RD_SLOT, 0), ldl_le_p(d));
    g_assert_cmphex(load(x.a, RD_SLOT, 0x20, 4), ==, 0);
    n = recv_frame(x.a, buf);
    {
        const uint8_t *p2 = buf + APN_ETH_HLEN + APN_FRAME_HDR_LEN +
                            2 * APN_SEG_HDR_LEN + 4;
        uint8_t pay[APN_READ_REQ_LEN];
        SegExpect s2[2] = {
            seg_expect(RD_SLOT, RD_RIN, RD_RNONCE, 0, d, 4),
            {
                .type = APN_SEG_READ_REQ, .flags = APN_SEG_F_SEQ,
                .in_index = RD_RIN, .nonce = RD_RNONCE, .seq = seq + 1,
                .offset = 0x20, .out_index = RD_SLOT, .payload = pay,
                .len = APN_READ_REQ_LEN,
            },
        };

        tag = be32(p2 + 16);
        stl_be_p(pay, 4);
        stl_be_p(pay + 4, RD_LAND);
        stl_be_p(pay + 8, RD_LNONCE);
        stl_be_p(pay + 12, 0x20);
        stl_be_p(pay + 16, tag);
        s2[0].flags = APN_SEG_F_SEQ;
        s2[0].seq = seq;
        check_tx_segs(buf, n, peer_mac, PEER_HOST, s2, 2);
        seq += 2;
    }
    assert_no_frame(x.a);
    g_assert_cmpuint(rd(x.a, ureg(RD_EP, APN_UREG_EVQ_WRPTR)), ==, 0);
    inject_read_resp(x.a, RD_LAND, RD_LNONCE, 0x20, tag, d, 4);
    memcpy(expect + 0x20, d, 4);
    assert_mem(x.a, x.land, expect, sizeof(expect));
    check_ev(x.a, x.q, ev++, APN_EV_READ_DONE, RD_EP, 4, 0x20);
    /* answered: a second answer is unexpected */
    inject_read_resp(x.a, RD_LAND, RD_LNONCE, 0x20, tag, d, 4);
    assert_drops(x.a, before, "rx_drop_read+1");

    /* every size; an 8-byte answer in two segments */
    for (unsigned size = 1; size <= 8; size *= 2) {
        uint32_t off = 0x100 * size;

        load(x.a, RD_SLOT, off, size);
        r = rd_expect(off, size);
        r.flags = APN_SEG_F_SEQ;
        r.seq = seq++;
        tag = recv_read_req(x.a, &r);
        if (size == 8) {
            inject_read_resp(x.a, RD_LAND, RD_LNONCE, off, tag, d, 4);
            g_assert_cmpuint(rd(x.a, ureg(RD_EP, APN_UREG_EVQ_WRPTR)), ==,
                             ev);
            inject_read_resp(x.a, RD_LAND, RD_LNONCE, off + 4, tag, d + 4, 4);
        } else {
            inject_read_resp(x.a, RD_LAND, RD_LNONCE, off, tag, d, size);
        }
        memcpy(expect + off, d, size);
        check_ev(x.a, x.q, ev++, APN_EV_READ_DONE, RD_EP, size, off);
    }
    assert_mem(x.a, x.land, expect, sizeof(expect));
    g_assert_cmpuint(delta(x.a, before, APN_CNT_TX_READ_REQS), ==, 5);
    g_assert_cmpuint(delta(x.a, before, APN_CNT_READS_DONE), ==, 5);
    g_assert_cmpuint(out_entry_seq(x.a, RD_SLOT), ==, seq);

    /* answers that match no outstanding read are dropped unwritten */
    load(x.a, RD_SLOT, 0x800, 8);
    r = rd_expect(0x800, 8);
    r.flags = APN_SEG_F_SEQ;
    r.seq = seq++;
    tag = recv_read_req(x.a, &r);
    cnt_snap(x.a, before);
    inject_read_resp(x.a, RD_LAND, RD_LNONCE, 0x800, tag + 1, d, 8);
    inject_read_resp(x.a, RD_LAND, RD_LNONCE, 0x804, tag, d, 4); /* order */
    inject_read_resp(x.a, RD_LAND, RD_LNONCE, 0x800, tag, d, 12); /* more */
    inject_read_resp(x.a, RD_LAND + 1, RD_LNONCE, 0x800, tag, d, 8);
    inject_read_resp(x.a, RD_LAND, RD_LNONCE, 0x800, tag, d, 0);
    {
        Frame f;

        frame_init(&f, RD_LAND, RD_LNONCE, 0x800, d, 8);  /* another host */
        f.seg[0].type = APN_SEG_READ_RESP;
        f.seg[0].out_index = tag;
        f.src_host = PEER_HOST + 1;
        inject_frame(x.a, &f);
    }
    assert_drops(x.a, before, "rx_drop_read+6");
    assert_mem(x.a, x.land, expect, sizeof(expect));
    g_assert_cmpuint(rd(x.a, ureg(RD_EP, APN_UREG_EVQ_WRPTR)), ==, ev);
    /* checked like a write: a bad nonce fails the read; no ERROR back */
    inject_read_resp(x.a, RD_LAND, RD_LNONCE + 1, 0x800, tag, d, 8);
    check_ev(x.a, x.q, ev++, APN_EV_READ_DONE, RD_EP, 0,
             0x800 | (uint64_t)APN_CNT_RX_DROP_NONCE << 32);
    assert_drops(x.a, before, "rx_drop_nonce+1 rx_drop_read+6");
    assert_no_frame(x.a);
    assert_mem(x.a, x.land, expect, sizeof(expect));
    apn_stop(x.a);
}

/*
 * Loads that cannot be sent say so with APN_EV_READ_DONE (status = the
 * reason) and send nothing; an invalid aperture (no endpoint to tell) or
 * a disabled device only counts. At most 64 reads are outstanding. The
 * peer's refusal (ERROR with APN_SEG_F_READ and the tag) and the timeout
 * finish a read too.
 */
static void test_read_refused(void)
{
    ReadFix x;
    struct apn_out_entry o = out_entry(PEER_HOST, RD_RIN, RD_RNONCE, 0x1000);
    struct apn_in_entry e = in_contig(0x100000, 0x1000, 1);
    uint64_t before[APN_CNT__COUNT];
    uint32_t tags[APN_MAX_READS + 1], ev = 0;
    uint32_t u = ureg(RD_EP, APN_UREG_READ_LANDING);
    ReqExpect r;
    Frame f;

    read_setup(&x, NULL, 0);
    cnt_snap(x.a, before);
    /* past the aperture, an event aperture, another endpoint's landing */
    load(x.a, RD_SLOT, 0x1000, 4);
    check_ev(x.a, x.q, ev++, APN_EV_READ_DONE, RD_EP, 0,
             0x1000 | (uint64_t)APN_CNT_TX_DROP_BOUNDS << 32);
    o.endpoint = RD_EP;
    o.flags |= APN_ENTRY_TYPE_EVENT << APN_ENTRY_TYPE_SHIFT;
    put_out_entry(x.a, 4, &o);
    load(x.a, 4, 0, 4);
    check_ev(x.a, x.q, ev++, APN_EV_READ_DONE, RD_EP, 0,
             (uint64_t)APN_CNT_TX_DROP_INVALID << 32);
    e.endpoint = RD_EP + 1;
    put_in_entry(x.a, 7, &e);
    wr(x.a, u, APN_READ_LANDING_VALID | 7);
    load(x.a, RD_SLOT, 0x10, 4);
    check_ev(x.a, x.q, ev++, APN_EV_READ_DONE, RD_EP, 0,
             0x10 | (uint64_t)APN_CNT_TX_DROP_READ << 32);
    /* no landing aperture */
    wr(x.a, u, 7);
    load(x.a, RD_SLOT, 0x10, 4);
    check_ev(x.a, x.q, ev++, APN_EV_READ_DONE, RD_EP, 0,
             0x10 | (uint64_t)APN_CNT_TX_DROP_READ << 32);
    wr(x.a, u, APN_READ_LANDING_VALID | RD_LAND);
    /* no route */
    o = out_entry(PEER_HOST + 1, RD_RIN, RD_RNONCE, 0x1000);
    o.endpoint = RD_EP;
    put_out_entry(x.a, 5, &o);
    load(x.a, 5, 0x18, 2);
    check_ev(x.a, x.q, ev++, APN_EV_READ_DONE, RD_EP, 0,
             0x18 | (uint64_t)APN_CNT_TX_DROP_NO_ROUTE << 32);
    /* not valid: nobody to tell; disabled: nothing */
    load(x.a, 9, 0, 4);
    wr(x.a, APN_REG_CTRL, 0);
    load(x.a, RD_SLOT, 0, 4);
    apn_enable(x.a);
    assert_no_frame(x.a);
    g_assert_cmpuint(rd(x.a, ureg(RD_EP, APN_UREG_EVQ_WRPTR)), ==, ev);
    assert_drops(x.a, before, "tx_drop_disabled+1 tx_drop_invalid+2 "
                 "tx_drop_bounds+1 tx_drop_no_route+1 tx_drop_read+2");

    /* 64 outstanding; the 65th is refused */
    for (int i = 0; i < APN_MAX_READS; i++) {
        load(x.a, RD_SLOT, 8 * i, 8);
        r = rd_expect(8 * i, 8);
        tags[i] = recv_read_req(x.a, &r);
    }
    cnt_snap(x.a, before);
    load(x.a, RD_SLOT, 0x400, 1);
    assert_no_frame(x.a);
    check_ev(x.a, x.q, ev++, APN_EV_READ_DONE, RD_EP, 0,
             0x400 | (uint64_t)APN_CNT_TX_DROP_READ << 32);
    assert_drops(x.a, before, "tx_drop_read+1");
    /* the peer refuses read 0: ERROR, APN_SEG_F_READ, seq = tag */
    frame_init(&f, RD_RIN, 0, APN_CNT_RX_DROP_NONCE, NULL, 0);
    f.seg[0].type = APN_SEG_ERROR;
    f.seg[0].flags = APN_SEG_F_READ;
    f.seg[0].seq = tags[0];
    f.seg[0].out_index = RD_SLOT;
    inject_frame(x.a, &f);
    check_ev(x.a, x.q, ev++, APN_EV_READ_DONE, RD_EP, 0,
             (uint64_t)APN_CNT_RX_DROP_NONCE << 32);
    /* a free entry again */
    load(x.a, RD_SLOT, 0x400, 1);
    r = rd_expect(0x400, 1);
    tags[APN_MAX_READS] = recv_read_req(x.a, &r);
    g_assert_cmpuint(tags[APN_MAX_READS], !=, tags[0]);
    /* a stale refusal, one for another aperture: ignored */
    inject_frame(x.a, &f);
    f.seg[0].seq = tags[1];
    f.seg[0].out_index = RD_SLOT + 1;
    inject_frame(x.a, &f);
    g_assert_cmpuint(rd(x.a, ureg(RD_EP, APN_UREG_EVQ_WRPTR)), ==, ev);
    g_assert_cmpuint(delta(x.a, before, APN_CNT_RX_ERROR_MSGS), ==, 3);

    /* 1 s (the default) without an answer: every read fails, in table order */
    cnt_snap(x.a, before);
    qtest_clock_step(x.a->qts, 500 * 1000 * 1000);
    g_assert_cmpuint(rd(x.a, ureg(RD_EP, APN_UREG_EVQ_WRPTR)), ==, ev);
    qtest_clock_step(x.a->qts, 600 * 1000 * 1000);
    g_assert_cmpuint(rd(x.a, ureg(RD_EP, APN_UREG_EVQ_WRPTR)), ==,
                     ev + APN_MAX_READS);
    g_assert_cmpuint(delta(x.a, before, APN_CNT_READ_TIMEOUTS), ==,
                     APN_MAX_READS);
    check_ev(x.a, x.q, ev, APN_EV_READ_DONE, RD_EP, 0,
             0x400 | (uint64_t)APN_CNT_READ_TIMEOUTS << 32);
    check_ev(x.a, x.q, ev + 1, APN_EV_READ_DONE, RD_EP, 0,
             8 | (uint64_t)APN_CNT_READ_TIMEOUTS << 32);
    /* late answers are dropped */
    inject_read_resp(x.a, RD_LAND, RD_LNONCE, 8, tags[1], "12345678", 8);
    assert_drops(x.a, before, "rx_drop_read+1");
    apn_stop(x.a);
}

/* Check one READ_RESP frame the device sent to the peer. */
static void recv_read_resp(Apn *a, uint32_t in_index, uint32_t nonce,
                           uint32_t offset, uint32_t tag,
                           const uint8_t *data, uint16_t len)
{
    SegExpect s = {
        .type = APN_SEG_READ_RESP, .in_index = in_index, .nonce = nonce,
        .offset = offset, .out_index = tag, .payload = data, .len = len,
    };

    recv_check_segs(a, peer_mac, PEER_HOST, &s, 1);
}

/* A READ_REQ from the peer, for our aperture @in_index. */
static void inject_read_req(Apn *a, uint32_t in_index, uint32_t nonce,
                            uint32_t offset, uint32_t out_index,
                            uint8_t flags, uint32_t seq, uint32_t read_len,
                            uint32_t tag, uint16_t len)
{
    uint8_t p[APN_READ_REQ_LEN + 4];
    Frame f;

    stl_be_p(p, read_len);
    stl_be_p(p + 4, 77);                    /* the peer's landing */
    stl_be_p(p + 8, 0x7777);
    stl_be_p(p + 12, 0x500);
    stl_be_p(p + 16, tag);
    frame_init(&f, in_index, nonce, offset, p, len);
    f.seg[0].type = APN_SEG_READ_REQ;
    f.seg[0].flags = flags;
    f.seg[0].seq = seq;
    f.seg[0].out_index = out_index;
    inject_frame(a, &f);
}

static void recv_read_error(Apn *a, uint32_t in_index, uint32_t out_index,
                            int reason, uint32_t tag)
{
    SegExpect s = {
        .type = APN_SEG_ERROR, .flags = APN_SEG_F_READ, .in_index = in_index,
        .seq = tag, .offset = reason, .out_index = out_index,
    };

    recv_check_segs(a, peer_mac, PEER_HOST, &s, 1);
}

/*
 * The answering side: a READ_REQ is checked like a write of read_len bytes
 * (nonce, sequence, narrowed bounds); the bytes are read from the
 * aperture's memory (through its page list) and go back to the
 * requester's MAC as READ_RESP segments of at most one MTU, in order,
 * addressed with the request's reply fields and tag. A refusal is an
 * ERROR with APN_SEG_F_READ and the tag.
 */
static void test_read_serve(void)
{
    Apn *a = apn_up(NULL);
    uint64_t pages = gmem(a, 0x3000, 0), list = gmem(a, 0x1000, 0);
    uint64_t q = ep_up(a, 1, APN_EP_VALID, 0, 8);
    g_autofree uint8_t *mem = g_malloc(0x3000);
    uint64_t before[APN_CNT__COUNT];
    uint32_t max = (DEFAULT_MTU - APN_FRAME_HDR_LEN - APN_CRC_LEN -
                    APN_SEG_HDR_LEN) & ~3u;

    /* a page list: pages in reverse order, the aperture from byte 0x80 */
    for (int i = 0; i < 3; i++) {
        qtest_writeq(a->qts, list + 8 * i, pages + 0x1000 * (2 - i));
    }
    for (int i = 0; i < 0x3000; i++) {
        mem[i] = i * 7 + (i >> 8);
    }
    for (int i = 0; i < 3; i++) {
        qtest_memwrite(a->qts, pages + 0x1000 * (2 - i), mem + 0x1000 * i,
                       0x1000);
    }
    put_in_entry(a, 2, &(struct apn_in_entry) {
        .flags = APN_ENTRY_VALID | APN_ENTRY_SEQ, .endpoint = 1,
        .base = list, .size = 0x2000, .first_byte = 0x80, .nonce = 9,
        .seq = 100, .narrow_start = 0x100, .narrow_len = 0x1e00,
    });
    cnt_snap(a, before);
    /* 3000 bytes across pages: three segments, one a frame */
    inject_read_req(a, 2, 9, 0x100, 12, APN_SEG_F_SEQ, 100, 3000, 0xabc,
                    APN_READ_REQ_LEN);
    recv_read_resp(a, 77, 0x7777, 0x500, 0xabc, mem + 0x180, max);
    recv_read_resp(a, 77, 0x7777, 0x500 + max, 0xabc, mem + 0x180 + max,
                   max);
    recv_read_resp(a, 77, 0x7777, 0x500 + 2 * max, 0xabc,
                   mem + 0x180 + 2 * max, 3000 - 2 * max);
    assert_no_frame(a);
    g_assert_cmpuint(in_entry_seq(a, 2), ==, 101);
    g_assert_cmpuint(delta(a, before, APN_CNT_RX_READ_REQS), ==, 1);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_FRAMES), ==, 3);
    /* one byte, at the end of the narrowing */
    inject_read_req(a, 2, 9, 0x1eff, 12, APN_SEG_F_SEQ, 101, 1, 0xabd,
                    APN_READ_REQ_LEN);
    recv_read_resp(a, 77, 0x7777, 0x500, 0xabd, mem + 0x1f7f, 1);
    assert_drops(a, before, "");

    /* refusals: nonce, sequence, bounds (narrowing, 0, too much) */
    inject_read_req(a, 2, 8, 0x100, 12, APN_SEG_F_SEQ, 102, 4, 0x1, 20);
    recv_read_error(a, 2, 12, APN_CNT_RX_DROP_NONCE, 0x1);
    inject_read_req(a, 2, 9, 0x100, 12, APN_SEG_F_SEQ, 101, 4, 0x2, 20);
    recv_read_error(a, 2, 12, APN_CNT_RX_DROP_SEQ, 0x2);
    inject_read_req(a, 2, 9, 0x1f00, 12, APN_SEG_F_SEQ, 102, 1, 0x3, 20);
    recv_read_error(a, 2, 12, APN_CNT_RX_DROP_BOUNDS, 0x3);
    inject_read_req(a, 2, 9, 0x100, 12, APN_SEG_F_SEQ, 102, 0, 0x4, 20);
    recv_read_error(a, 2, 12, APN_CNT_RX_DROP_BOUNDS, 0x4);
    inject_read_req(a, 2, 9, 0x100, 12, APN_SEG_F_SEQ, 102,
                    APN_READ_MAX_LEN + 1, 0x5, 20);
    recv_read_error(a, 2, 12, APN_CNT_RX_DROP_BOUNDS, 0x5);
    check_ev(a, q, 0, APN_EV_RX_DROP, 1, APN_CNT_RX_DROP_NONCE,
             2 | (uint64_t)PEER_HOST << 32);
    /* a payload that is not a struct apn_read_req: not answered */
    inject_read_req(a, 2, 9, 0x100, 12, APN_SEG_F_SEQ, 102, 4, 0x6, 16);
    inject_read_req(a, 2, 9, 0x100, 12, APN_SEG_F_SEQ, 102, 4, 0x6, 24);
    assert_no_frame(a);
    g_assert_cmpuint(in_entry_seq(a, 2), ==, 102);
    assert_drops(a, before, "rx_drop_malformed+2 rx_drop_nonce+1 "
                 "rx_drop_seq+1 rx_drop_bounds+3");
    /* the largest read: 65536 bytes in 45 segments */
    put_in_entry(a, 3, &(struct apn_in_entry) {
        .flags = APN_ENTRY_VALID | APN_IN_CONTIG, .base = 0,
        .size = 0x20000, .nonce = 3,
    });
    inject_read_req(a, 3, 3, 0x10000, 12, 0, 0, APN_READ_MAX_LEN, 0x7, 20);
    for (uint32_t pos = 0; pos < APN_READ_MAX_LEN; pos += max) {
        uint8_t buf[FRAME_MAX];
        size_t n = recv_frame(a, buf);
        uint32_t len = MIN(max, APN_READ_MAX_LEN - pos);

        g_assert_cmpuint(n, ==, APN_ETH_HLEN + APN_FRAME_HDR_LEN +
                         APN_SEG_HDR_LEN + len + APN_CRC_LEN);
        g_assert_cmpuint(be32(buf + APN_ETH_HLEN + APN_FRAME_HDR_LEN + 16),
                         ==, 0x500 + pos);
    }
    assert_no_frame(a);
    apn_stop(a);
}

/*
 * A load through an aperture to our own host: the request, the answer and
 * READ_DONE all happen inside the load; nothing reaches the wire.
 */
static void test_read_loopback(void)
{
    ReadFix x;
    struct apn_out_entry o = out_entry(SELF_HOST, 7, 0x70, 0x1000);
    uint64_t remote;
    struct apn_in_entry e;
    uint64_t before[APN_CNT__COUNT];
    uint8_t expect[0x1000];

    read_setup(&x, NULL, 0);
    remote = gmem(x.a, 0x1000, 0);
    e = in_contig(remote, 0x1000, 0x70);
    o.endpoint = RD_EP;
    put_out_entry(x.a, 1, &o);
    put_in_entry(x.a, 7, &e);
    qtest_writeq(x.a->qts, remote + 0x40, 0x1122334455667788ull);
    cnt_snap(x.a, before);
    g_assert_cmphex(load(x.a, 1, 0x40, 8), ==, 0);
    assert_no_frame(x.a);
    memset(expect, 0xee, sizeof(expect));
    stq_le_p(expect + 0x40, 0x1122334455667788ull);
    assert_mem(x.a, x.land, expect, sizeof(expect));
    check_ev(x.a, x.q, 0, APN_EV_READ_DONE, RD_EP, 8, 0x40);
    g_assert_cmpuint(delta(x.a, before, APN_CNT_TX_READ_REQS), ==, 1);
    g_assert_cmpuint(delta(x.a, before, APN_CNT_RX_READ_REQS), ==, 1);
    g_assert_cmpuint(delta(x.a, before, APN_CNT_TX_FRAMES), ==, 2);
    assert_drops(x.a, before, "");
    apn_stop(x.a);
}

/* ---- DMA channel --------------------------------------------------------- */

#define DMA_LOCAL       5       /* RD_EP's local incoming aperture */
#define DMA_LNONCE      0x10ca1

typedef struct Chan {
    uint32_t ep;
    uint64_t rq, cq;
    uint32_t rq_size, cq_size;
    uint32_t tail;              /* requests written */
} Chan;

static Chan chan_up(Apn *a, uint32_t ep, uint32_t rq_size, uint32_t cq_size)
{
    Chan c = { .ep = ep, .rq_size = rq_size, .cq_size = cq_size };

    c.rq = gmem(a, sizeof(struct apn_queue_ctrl) + 32 * rq_size, 0);
    c.cq = gmem(a, sizeof(struct apn_queue_ctrl) + 16 * cq_size, 0);
    wr(a, epr(ep, APN_EPR_RQ_LO), (uint32_t)c.rq);
    wr(a, epr(ep, APN_EPR_RQ_HI), c.rq >> 32);
    wr(a, epr(ep, APN_EPR_RQ_SIZE), rq_size);
    wr(a, epr(ep, APN_EPR_CQ_LO), (uint32_t)c.cq);
    wr(a, epr(ep, APN_EPR_CQ_HI), c.cq >> 32);
    wr(a, epr(ep, APN_EPR_CQ_SIZE), cq_size);
    g_assert_cmphex(rd(a, epr(ep, APN_EPR_RQ_LO)), ==, (uint32_t)c.rq);
    g_assert_cmpuint(rd(a, epr(ep, APN_EPR_RQ_SIZE)), ==, rq_size);
    g_assert_cmpuint(rd(a, epr(ep, APN_EPR_CQ_SIZE)), ==, cq_size);
    return c;
}

/* Write request number c->tail (no doorbell). */
static void req_add(Apn *a, Chan *c, uint8_t op, uint32_t out_index,
                    uint32_t in_index, uint32_t len, uint32_t remote_offset,
                    uint32_t local_offset, uint32_t cookie)
{
    uint8_t r[32] = { 0 };

    r[0] = op;
    stl_le_p(r + 4, out_index);
    stl_le_p(r + 8, in_index);
    stl_le_p(r + 12, len);
    stl_le_p(r + 16, remote_offset);
    stl_le_p(r + 20, local_offset);
    stl_le_p(r + 24, cookie);
    qtest_memwrite(a->qts, c->rq + sizeof(struct apn_queue_ctrl) +
                   32 * (c->tail & (c->rq_size - 1)), r, sizeof(r));
    c->tail++;
}

static void doorbell(Apn *a, Chan *c)
{
    wr(a, ureg(c->ep, APN_UREG_RQ_TAIL), c->tail);
}

/* Wait until @n completions were written (the bh may still be working). */
static void wait_cq(Apn *a, Chan *c, uint32_t n)
{
    gint64 deadline = g_get_monotonic_time() + 4 * TIMEOUT_US;

    while (rd(a, ureg(c->ep, APN_UREG_CQ_WRPTR)) < n) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(100);
    }
    g_assert_cmpuint(rd(a, ureg(c->ep, APN_UREG_CQ_WRPTR)), ==, n);
}

static void check_cqe(Apn *a, Chan *c, uint32_t pos, uint8_t type,
                      uint32_t status, uint32_t cookie, uint32_t bytes)
{
    check_ev(a, c->cq, pos & (c->cq_size - 1), type, c->ep, status,
             cookie | (uint64_t)bytes << 32);
}

/* RQ_HEAD, CQ_WRPTR and their mirrors in the control blocks. */
static void check_chan(Apn *a, Chan *c, uint32_t head, uint32_t wrptr)
{
    g_assert_cmpuint(rd(a, ureg(c->ep, APN_UREG_RQ_HEAD)), ==, head);
    g_assert_cmpuint(qctrl(a, c->rq, offsetof(struct apn_queue_ctrl, rdptr)),
                     ==, head);
    g_assert_cmpuint(rd(a, ureg(c->ep, APN_UREG_CQ_WRPTR)), ==, wrptr);
    g_assert_cmpuint(qctrl(a, c->cq, Q_WRPTR), ==, wrptr);
}

/* RD_EP with a channel, aperture RD_SLOT to the peer, local DMA_LOCAL. */
static uint64_t dma_setup(ReadFix *x, Chan *c, const char *props,
                          uint32_t out_flags, uint32_t rq, uint32_t cq)
{
    uint64_t local;
    struct apn_in_entry e;

    read_setup(x, props, out_flags);
    local = gmem(x->a, 0x4000, 0);
    for (int i = 0; i < 0x4000; i += 4) {
        qtest_writel(x->a->qts, local + i, 0x01020304 * (i / 4 + 1));
    }
    e = in_contig(local, 0x4000, DMA_LNONCE);
    e.endpoint = RD_EP;
    put_in_entry(x->a, DMA_LOCAL, &e);
    *c = chan_up(x->a, RD_EP, rq, cq);
    return local;
}

/*
 * PUT: stores gathered before the doorbell go first; each PUT's bytes are
 * read from the local aperture and sent as WRITE segments of at most one
 * MTU through the outgoing aperture (sequence numbers as for stores); it
 * completes (PUT_DONE, status 0, cookie, bytes) once sent, and retires.
 */
static void test_dma_put(void)
{
    ReadFix x;
    Chan c;
    uint64_t local = dma_setup(&x, &c, NULL, APN_ENTRY_SEQ, 4, 4);
    uint32_t max = (DEFAULT_MTU - APN_FRAME_HDR_LEN - APN_CRC_LEN -
                    APN_SEG_HDR_LEN) & ~3u;
    g_autofree uint8_t *mem = g_malloc(0x4000);
    uint64_t before[APN_CNT__COUNT];
    static const uint8_t d[4] = { 9, 8, 7, 6 };
    SegExpect s[2];

    qtest_memread(x.a->qts, local, mem, 0x4000);
    req_add(x.a, &c, APN_REQ_PUT, RD_SLOT, DMA_LOCAL, 100, 0x10, 0x20, 0x11);
    req_add(x.a, &c, APN_REQ_PUT, RD_SLOT, DMA_LOCAL, 3000, 0x300, 0x200,
            0x22);
    cnt_snap(x.a, before);
    qtest_writel(x.a->qts, slot_addr(x.a, RD_SLOT, 0x800), ldl_le_p(d));
    doorbell(x.a, &c);
    /* the store and the first PUT share a frame */
    s[0] = seg_expect(RD_SLOT, RD_RIN, RD_RNONCE, 0x800, d, 4);
    s[1] = seg_expect(RD_SLOT, RD_RIN, RD_RNONCE, 0x10, mem + 0x20, 100);
    s[0].flags = s[1].flags = APN_SEG_F_SEQ;
    s[1].seq = 1;
    recv_check_segs(x.a, peer_mac, PEER_HOST, s, 2);
    for (uint32_t pos = 0, seq = 2; pos < 3000; pos += max, seq++) {
        s[0] = seg_expect(RD_SLOT, RD_RIN, RD_RNONCE, 0x300 + pos,
                          mem + 0x200 + pos, MIN(max, 3000 - pos));
        s[0].flags = APN_SEG_F_SEQ;
        s[0].seq = seq;
        recv_check_segs(x.a, peer_mac, PEER_HOST, s, 1);
    }
    assert_no_frame(x.a);
    check_chan(x.a, &c, 2, 2);
    check_cqe(x.a, &c, 0, APN_EV_PUT_DONE, 0, 0x11, 100);
    check_cqe(x.a, &c, 1, APN_EV_PUT_DONE, 0, 0x22, 3000);
    g_assert_cmpuint(out_entry_seq(x.a, RD_SLOT), ==, 5);
    g_assert_cmpuint(delta(x.a, before, APN_CNT_DMA_REQS), ==, 2);
    g_assert_cmpuint(delta(x.a, before, APN_CNT_TX_SEGMENTS), ==, 5);
    assert_drops(x.a, before, "");
    g_assert_cmpuint(rd(x.a, ureg(RD_EP, APN_UREG_RQ_TAIL)), ==, 2);

    /* a zero-length PUT completes at once; the queue wraps */
    for (int i = 0; i < 3; i++) {
        req_add(x.a, &c, APN_REQ_PUT, RD_SLOT, DMA_LOCAL, 0, 0, 0, 0x30 + i);
    }
    wr(x.a, ureg(RD_EP, APN_UREG_CQ_RDPTR), 2);
    doorbell(x.a, &c);
    check_chan(x.a, &c, 5, 5);
    for (int i = 0; i < 3; i++) {
        check_cqe(x.a, &c, 2 + i, APN_EV_PUT_DONE, 0, 0x30 + i, 0);
    }
    assert_no_frame(x.a);
    apn_stop(x.a);
}

/*
 * GET: a READ_REQ with the local aperture as landing; the request retires
 * when its bytes have landed. GETs overlap; completions come in request
 * order whatever order the answers come in (a PUT behind a GET waits for
 * it). A refused READ_REQ or a timeout fails the GET.
 */
static void test_dma_get(void)
{
    ReadFix x;
    Chan c;
    uint64_t local = dma_setup(&x, &c, NULL, 0, 8, 8);
    uint64_t before[APN_CNT__COUNT];
    static const uint8_t d[16] = "0123456789abcdef";
    uint32_t t1, t2;
    ReqExpect r;
    Frame f;

    req_add(x.a, &c, APN_REQ_GET, RD_SLOT, DMA_LOCAL, 16, 0x100, 0x40, 1);
    req_add(x.a, &c, APN_REQ_GET, RD_SLOT, DMA_LOCAL, 8, 0x200, 0x80, 2);
    req_add(x.a, &c, APN_REQ_PUT, RD_SLOT, DMA_LOCAL, 4, 0x300, 0, 3);
    cnt_snap(x.a, before);
    doorbell(x.a, &c);
    r = rd_expect(0x100, 16);
    r.reply_in = DMA_LOCAL;
    r.reply_nonce = DMA_LNONCE;
    r.reply_offset = 0x40;
    t1 = recv_read_req(x.a, &r);
    r.offset = 0x200;
    r.read_len = 8;
    r.reply_offset = 0x80;
    t2 = recv_read_req(x.a, &r);
    {
        SegExpect s = seg_expect(RD_SLOT, RD_RIN, RD_RNONCE, 0x300, NULL, 4);
        uint8_t p[4];

        qtest_memread(x.a->qts, local, p, 4);
        s.payload = p;
        recv_check_segs(x.a, peer_mac, PEER_HOST, &s, 1);
    }
    assert_no_frame(x.a);
    check_chan(x.a, &c, 0, 0);
    /* the second answered first: nothing retires yet */
    inject_read_resp(x.a, DMA_LOCAL, DMA_LNONCE, 0x80, t2, d, 8);
    assert_mem(x.a, local + 0x80, d, 8);
    check_chan(x.a, &c, 0, 0);
    inject_read_resp(x.a, DMA_LOCAL, DMA_LNONCE, 0x40, t1, d, 10);
    check_chan(x.a, &c, 0, 0);
    inject_read_resp(x.a, DMA_LOCAL, DMA_LNONCE, 0x4a, t1, d + 10, 6);
    assert_mem(x.a, local + 0x40, d, 16);
    check_chan(x.a, &c, 3, 3);
    check_cqe(x.a, &c, 0, APN_EV_GET_DONE, 0, 1, 16);
    check_cqe(x.a, &c, 1, APN_EV_GET_DONE, 0, 2, 8);
    check_cqe(x.a, &c, 2, APN_EV_PUT_DONE, 0, 3, 4);
    g_assert_cmpuint(delta(x.a, before, APN_CNT_DMA_REQS), ==, 3);
    assert_drops(x.a, before, "");

    /* refused by the peer: GET_DONE with its reason */
    req_add(x.a, &c, APN_REQ_GET, RD_SLOT, DMA_LOCAL, 16, 0x100, 0x40, 4);
    doorbell(x.a, &c);
    r = rd_expect(0x100, 16);
    r.reply_in = DMA_LOCAL;
    r.reply_nonce = DMA_LNONCE;
    r.reply_offset = 0x40;
    t1 = recv_read_req(x.a, &r);
    frame_init(&f, RD_RIN, 0, APN_CNT_RX_DROP_BOUNDS, NULL, 0);
    f.seg[0].type = APN_SEG_ERROR;
    f.seg[0].flags = APN_SEG_F_READ;
    f.seg[0].seq = t1;
    f.seg[0].out_index = RD_SLOT;
    inject_frame(x.a, &f);
    check_chan(x.a, &c, 4, 4);
    check_cqe(x.a, &c, 3, APN_EV_GET_DONE, APN_CNT_RX_DROP_BOUNDS, 4, 0);
    /* no answer: fails after the timeout with what had landed */
    req_add(x.a, &c, APN_REQ_GET, RD_SLOT, DMA_LOCAL, 16, 0x100, 0x40, 5);
    doorbell(x.a, &c);
    t1 = recv_read_req(x.a, &r);
    inject_read_resp(x.a, DMA_LOCAL, DMA_LNONCE, 0x40, t1, d, 4);
    /* an answer restarts the wait: not failed just before 1 s after it */
    qtest_clock_step(x.a->qts, 999 * 1000 * 1000);
    check_chan(x.a, &c, 4, 4);
    qtest_clock_step(x.a->qts, 2 * 1000 * 1000);
    check_chan(x.a, &c, 5, 5);
    check_cqe(x.a, &c, 4, APN_EV_GET_DONE, APN_CNT_READ_TIMEOUTS, 5, 4);
    g_assert_cmpuint(cnt(x.a, APN_CNT_DMA_ERRORS), ==, 2);
    apn_stop(x.a);
}

/*
 * Loopback, larger than one READ_REQ (GET: 64 KiB chunks, asked one after
 * another from the bottom half) and than one doorbell's budget (PUT: the
 * rest from the bottom half). Nothing reaches the wire.
 */
static void test_dma_loopback(void)
{
    Apn *a = apn_up(",max-in-apertures=64");
    const uint32_t size = 0x60000, get = 200 * 1024, put = 300 * 1024;
    struct apn_out_entry o = out_entry(SELF_HOST, 7, 0x70, size);
    uint64_t remote = gmem(a, size, 0), local = gmem(a, size, 0);
    struct apn_in_entry er = in_contig(remote, size, 0x70);
    struct apn_in_entry el = in_contig(local, size, 0x80);
    g_autofree uint8_t *m = g_malloc(size);
    g_autofree uint8_t *got = g_malloc(size);
    uint64_t before[APN_CNT__COUNT];
    Chan c;

    ep_up(a, 1, APN_EP_VALID, 0, 8);
    o.endpoint = 1;
    el.endpoint = 1;
    put_out_entry(a, 1, &o);
    put_in_entry(a, 7, &er);
    put_in_entry(a, 8, &el);
    for (uint32_t i = 0; i < size; i++) {
        m[i] = i * 13 + (i >> 10);
    }
    qtest_memwrite(a->qts, remote, m, size);
    c = chan_up(a, 1, 4, 4);
    cnt_snap(a, before);
    req_add(a, &c, APN_REQ_GET, 1, 8, get, 0x100, 0x10, 0x61);
    doorbell(a, &c);
    wait_cq(a, &c, 1);
    check_cqe(a, &c, 0, APN_EV_GET_DONE, 0, 0x61, get);
    qtest_memread(a->qts, local + 0x10, got, get);
    g_assert_cmpmem(got, get, m + 0x100, get);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_READ_REQS), ==,
                     DIV_ROUND_UP(get, APN_READ_MAX_LEN));
    /* PUT it back elsewhere */
    req_add(a, &c, APN_REQ_PUT, 1, 8, put, size - put, 0, 0x62);
    doorbell(a, &c);
    wait_cq(a, &c, 2);
    check_cqe(a, &c, 1, APN_EV_PUT_DONE, 0, 0x62, put);
    qtest_memread(a->qts, remote + size - put, got, put);
    qtest_memread(a->qts, local, m, put);
    g_assert_cmpmem(got, put, m, put);
    check_chan(a, &c, 2, 2);
    assert_no_frame(a);
    assert_drops(a, before, "");
    apn_stop(a);
}

/*
 * A bad request completes with a non-zero status, in its place, never
 * skipped: malformed (opcode, flags, length), apertures that are not the
 * endpoint's valid data apertures, ranges past them. Bad doorbells are
 * ignored.
 */
static void test_dma_bad(void)
{
    ReadFix x;
    Chan c;
    struct apn_out_entry o = out_entry(PEER_HOST, RD_RIN, RD_RNONCE, 0x1000);
    uint64_t before[APN_CNT__COUNT];
    uint8_t r[32];
    static const struct {
        uint8_t op;
        uint32_t out, in, len, roff, loff, status;
    } cases[] = {
        { 7, RD_SLOT, DMA_LOCAL, 4, 0, 0, APN_CNT_DMA_BAD_REQS },
        { APN_REQ_GET, RD_SLOT, DMA_LOCAL, (1u << 24) + 1, 0, 0,
          APN_CNT_DMA_BAD_REQS },
        { APN_REQ_PUT, 4, DMA_LOCAL, 4, 0, 0, APN_CNT_TX_DROP_INVALID },
        { APN_REQ_PUT, N_OUT, DMA_LOCAL, 4, 0, 0, APN_CNT_TX_DROP_INVALID },
        { APN_REQ_GET, RD_SLOT, 9, 4, 0, 0, APN_CNT_TX_DROP_INVALID },
        { APN_REQ_GET, RD_SLOT, N_IN + 1, 4, 0, 0, APN_CNT_TX_DROP_INVALID },
        { APN_REQ_GET, RD_SLOT, DMA_LOCAL, 8, 0xffc, 0,
          APN_CNT_TX_DROP_BOUNDS },
        { APN_REQ_PUT, RD_SLOT, DMA_LOCAL, 8, 0, 0x3ffc,
          APN_CNT_TX_DROP_BOUNDS },
        { APN_REQ_PUT, RD_SLOT, DMA_LOCAL, 0x1001, 0, 0,
          APN_CNT_TX_DROP_BOUNDS },
    };

    dma_setup(&x, &c, NULL, 0, 16, 16);
    o.endpoint = RD_EP + 1;                     /* another's aperture */
    put_out_entry(x.a, 4, &o);
    put_in_entry(x.a, 9, &(struct apn_in_entry) {
        .flags = APN_ENTRY_VALID | APN_IN_CONTIG |
                 APN_ENTRY_TYPE_EVENT << APN_ENTRY_TYPE_SHIFT,
        .endpoint = RD_EP, .size = 0x1000,
    });
    cnt_snap(x.a, before);
    for (int i = 0; i < ARRAY_SIZE(cases); i++) {
        req_add(x.a, &c, cases[i].op, cases[i].out, cases[i].in,
                cases[i].len, cases[i].roff, cases[i].loff, 0x100 + i);
    }
    /* flags must be 0 */
    req_add(x.a, &c, APN_REQ_PUT, RD_SLOT, DMA_LOCAL, 4, 0, 0, 0x1ff);
    qtest_memread(x.a->qts, c.rq + 64 + 32 * (c.tail - 1), r, 32);
    r[1] = 1;
    qtest_memwrite(x.a->qts, c.rq + 64 + 32 * (c.tail - 1), r, 32);
    /* and a good one after them */
    req_add(x.a, &c, APN_REQ_PUT, RD_SLOT, DMA_LOCAL, 4, 0, 0, 0x200);
    doorbell(x.a, &c);
    recv_frame(x.a, (uint8_t[FRAME_MAX]) { 0 });
    assert_no_frame(x.a);
    check_chan(x.a, &c, ARRAY_SIZE(cases) + 2, ARRAY_SIZE(cases) + 2);
    for (int i = 0; i < ARRAY_SIZE(cases); i++) {
        check_cqe(x.a, &c, i, cases[i].op == APN_REQ_GET ? APN_EV_GET_DONE
                                                         : APN_EV_PUT_DONE,
                  cases[i].status, 0x100 + i, 0);
    }
    check_cqe(x.a, &c, ARRAY_SIZE(cases), APN_EV_PUT_DONE,
              APN_CNT_DMA_BAD_REQS, 0x1ff, 0);
    check_cqe(x.a, &c, ARRAY_SIZE(cases) + 1, APN_EV_PUT_DONE, 0, 0x200, 4);
    g_assert_cmpuint(delta(x.a, before, APN_CNT_DMA_ERRORS), ==,
                     ARRAY_SIZE(cases) + 1);
    g_assert_cmpuint(delta(x.a, before, APN_CNT_DMA_BAD_REQS), ==, 3);

    /* doorbells: past the ring, behind RQ_HEAD, no channel, not valid */
    wr(x.a, ureg(RD_EP, APN_UREG_RQ_TAIL), c.tail + 17);
    wr(x.a, ureg(RD_EP, APN_UREG_RQ_TAIL), c.tail - 1);
    g_assert_cmpuint(rd(x.a, ureg(RD_EP, APN_UREG_RQ_TAIL)), ==, c.tail);
    wr(x.a, ureg(RD_EP, APN_UREG_CQ_RDPTR), c.tail + 1);
    g_assert_cmpuint(rd(x.a, ureg(RD_EP, APN_UREG_CQ_RDPTR)), ==, 0);
    wr(x.a, ureg(RD_EP + 1, APN_UREG_RQ_TAIL), 1);
    g_assert_cmpuint(rd(x.a, ureg(RD_EP + 1, APN_UREG_RQ_TAIL)), ==, 0);
    req_add(x.a, &c, APN_REQ_PUT, RD_SLOT, DMA_LOCAL, 4, 0, 0, 0x201);
    wr(x.a, epr(RD_EP, APN_EPR_CTRL), 0);
    doorbell(x.a, &c);
    assert_no_frame(x.a);
    check_chan(x.a, &c, ARRAY_SIZE(cases) + 2, ARRAY_SIZE(cases) + 2);
    /* read only */
    wr(x.a, ureg(RD_EP, APN_UREG_RQ_HEAD), 0);
    wr(x.a, ureg(RD_EP, APN_UREG_CQ_WRPTR), 0);
    check_chan(x.a, &c, ARRAY_SIZE(cases) + 2, ARRAY_SIZE(cases) + 2);
    apn_stop(x.a);
}

/*
 * Flow control: a request starts only when the completion queue has room
 * for its completion (and those of every request started before it), so
 * the CQ never overflows; at most 8 requests are in flight per endpoint.
 */
static void test_dma_flow(void)
{
    ReadFix x;
    Chan c;
    ReqExpect r;
    uint32_t tags[10];

    dma_setup(&x, &c, NULL, 0, 16, 2);
    for (int i = 0; i < 4; i++) {
        req_add(x.a, &c, APN_REQ_PUT, RD_SLOT, DMA_LOCAL, 0, 0, 0, i);
    }
    doorbell(x.a, &c);
    check_chan(x.a, &c, 2, 2);
    wr(x.a, ureg(RD_EP, APN_UREG_CQ_RDPTR), 1);
    check_chan(x.a, &c, 3, 3);
    wr(x.a, ureg(RD_EP, APN_UREG_CQ_RDPTR), 3);
    check_chan(x.a, &c, 4, 4);
    check_cqe(x.a, &c, 3, APN_EV_PUT_DONE, 0, 3, 0);
    assert_no_frame(x.a);

    /* 10 GETs, 8 in flight (CQ of 16): new queues start empty */
    wr(x.a, epr(RD_EP, APN_EPR_CQ_SIZE), 16);
    c.cq_size = 16;
    c.tail = 0;
    qtest_memset(x.a->qts, c.rq, 0, sizeof(struct apn_queue_ctrl));
    qtest_memset(x.a->qts, c.cq, 0, sizeof(struct apn_queue_ctrl));
    check_chan(x.a, &c, 0, 0);
    for (int i = 0; i < 10; i++) {
        req_add(x.a, &c, APN_REQ_GET, RD_SLOT, DMA_LOCAL, 4, 4 * i, 4 * i,
                i);
    }
    doorbell(x.a, &c);
    for (int i = 0; i < 8; i++) {
        r = rd_expect(4 * i, 4);
        r.reply_in = DMA_LOCAL;
        r.reply_nonce = DMA_LNONCE;
        tags[i] = recv_read_req(x.a, &r);
    }
    assert_no_frame(x.a);
    /* an answer retires one; the next starts (from the bottom half) */
    inject_read_resp(x.a, DMA_LOCAL, DMA_LNONCE, 0, tags[0], "abcd", 4);
    r = rd_expect(4 * 8, 4);
    r.reply_in = DMA_LOCAL;
    r.reply_nonce = DMA_LNONCE;
    tags[8] = recv_read_req(x.a, &r);
    assert_no_frame(x.a);
    check_chan(x.a, &c, 1, 1);
    check_cqe(x.a, &c, 0, APN_EV_GET_DONE, 0, 0, 4);
    apn_stop(x.a);
}

/*
 * Completions wake an armed endpoint like events (APN_EV_OOB_DATA); ARM
 * with completions pending fires at once. Clearing VALID abandons the
 * endpoint's work: a late answer is dropped, nothing is completed.
 */
static void test_dma_arm_abort(void)
{
    ReadFix x;
    Chan c;
    uint64_t osq, before[APN_CNT__COUNT];
    ReqExpect r;
    uint32_t tag;

    dma_setup(&x, &c, NULL, 0, 4, 4);
    osq = osq_up(x.a);
    wr(x.a, ureg(RD_EP, APN_UREG_ARM), 1);
    req_add(x.a, &c, APN_REQ_PUT, RD_SLOT, DMA_LOCAL, 0, 0, 0, 1);
    doorbell(x.a, &c);
    check_ev(x.a, osq, 0, APN_EV_OOB_DATA, RD_EP, 0, 0);
    wr(x.a, ureg(RD_EP, APN_UREG_ARM), 1);                 /* pending */
    check_ev(x.a, osq, 1, APN_EV_OOB_DATA, RD_EP, 0, 0);
    wr(x.a, ureg(RD_EP, APN_UREG_CQ_RDPTR), 1);
    wr(x.a, ureg(RD_EP, APN_UREG_ARM), 1);
    g_assert_cmpuint(rd(x.a, APN_REG_OSQ_WRPTR), ==, 2);

    /* a GET in flight, then the endpoint is torn down */
    req_add(x.a, &c, APN_REQ_GET, RD_SLOT, DMA_LOCAL, 4, 0, 0, 2);
    doorbell(x.a, &c);
    r = rd_expect(0, 4);
    r.reply_in = DMA_LOCAL;
    r.reply_nonce = DMA_LNONCE;
    tag = recv_read_req(x.a, &r);
    wr(x.a, epr(RD_EP, APN_EPR_CTRL), 0);
    cnt_snap(x.a, before);
    inject_read_resp(x.a, DMA_LOCAL, DMA_LNONCE, 0, tag, "abcd", 4);
    assert_drops(x.a, before, "rx_drop_read+1");
    check_chan(x.a, &c, 1, 1);
    g_assert_cmpuint(rd(x.a, APN_REG_OSQ_WRPTR), ==, 2);
    /* valid again: the channel goes on from RQ_HEAD (the GET is gone) */
    g_assert_cmpuint(rd(x.a, ureg(RD_EP, APN_UREG_RQ_TAIL)), ==, 1);
    wr(x.a, epr(RD_EP, APN_EPR_CTRL), APN_EP_VALID);
    c.tail = 1;
    req_add(x.a, &c, APN_REQ_PUT, RD_SLOT, DMA_LOCAL, 0, 0, 0, 3);
    doorbell(x.a, &c);
    check_chan(x.a, &c, 2, 2);
    check_cqe(x.a, &c, 1, APN_EV_PUT_DONE, 0, 3, 0);
    /* a new queue size starts both queues empty */
    wr(x.a, epr(RD_EP, APN_EPR_RQ_SIZE), 8);
    c.rq_size = 8;
    qtest_memset(x.a->qts, c.rq, 0, sizeof(struct apn_queue_ctrl));
    qtest_memset(x.a->qts, c.cq, 0, sizeof(struct apn_queue_ctrl));
    check_chan(x.a, &c, 0, 0);
    g_assert_cmpuint(rd(x.a, ureg(RD_EP, APN_UREG_RQ_TAIL)), ==, 0);
    apn_stop(x.a);
}

/* Endpoint registers of the channel: alignment, sizes, reset. */
static void test_dma_registers(void)
{
    Apn *a = apn_start(",endpoints=4");
    static const uint32_t bad_rq[] = { 1, 3, 8192 };
    static const uint32_t bad_cq[] = { 1, 6, 1u << 17 };

    wr(a, epr(2, APN_EPR_RQ_LO), 0x10040);
    wr(a, epr(2, APN_EPR_RQ_LO), 0x10020);
    wr(a, epr(2, APN_EPR_CQ_LO), 0x20000);
    wr(a, epr(2, APN_EPR_CQ_LO), 0x20008);
    wr(a, epr(2, APN_EPR_RQ_HI), 1);
    wr(a, epr(2, APN_EPR_CQ_HI), 2);
    g_assert_cmphex(rd(a, epr(2, APN_EPR_RQ_LO)), ==, 0x10040);
    g_assert_cmphex(rd(a, epr(2, APN_EPR_CQ_LO)), ==, 0x20000);
    g_assert_cmphex(rd(a, epr(2, APN_EPR_RQ_HI)), ==, 1);
    g_assert_cmphex(rd(a, epr(2, APN_EPR_CQ_HI)), ==, 2);
    wr(a, epr(2, APN_EPR_RQ_SIZE), 4096);
    wr(a, epr(2, APN_EPR_CQ_SIZE), 1u << 16);
    for (int i = 0; i < 3; i++) {
        wr(a, epr(2, APN_EPR_RQ_SIZE), bad_rq[i]);
        wr(a, epr(2, APN_EPR_CQ_SIZE), bad_cq[i]);
    }
    g_assert_cmpuint(rd(a, epr(2, APN_EPR_RQ_SIZE)), ==, 4096);
    g_assert_cmpuint(rd(a, epr(2, APN_EPR_CQ_SIZE)), ==, 1u << 16);
    wr(a, ureg(2, APN_UREG_READ_LANDING), APN_READ_LANDING_VALID | 5);
    g_assert_cmphex(rd(a, ureg(2, APN_UREG_READ_LANDING)), ==,
                    APN_READ_LANDING_VALID | 5);
    wr(a, epr(2, 0x38), 1);                             /* reserved */
    g_assert_cmphex(rd(a, epr(2, 0x38)), ==, 0);
    wr(a, APN_REG_CTRL, APN_CTRL_RESET);
    for (uint32_t r = APN_EPR_RQ_LO; r <= APN_EPR_CQ_SIZE; r += 4) {
        g_assert_cmphex(rd(a, epr(2, r)), ==, 0);
    }
    g_assert_cmphex(rd(a, ureg(2, APN_UREG_READ_LANDING)), ==, 0);
    apn_stop(a);
}

/*
 * Migration: the rings, the channel with a GET in flight and an
 * outstanding load carry over; the answers reaching the destination
 * complete them there.
 */
static void test_migration_dma(void)
{
    ReadFix x;
    Chan c;
    Apn *dst;
    uint64_t local, bufs, ring;
    uint32_t tg, tl;
    ReqExpect r;

    local = dma_setup(&x, &c, NULL, 0, 4, 4);
    dst = apn_start_full(NULL, true);
    ring = ring_up(x.a, true, 4, &bufs);
    wr(x.a, APN_REG_RX_TAIL, 3);
    wr(x.a, APN_REG_RING_IRQ, APN_RING_IRQ_RX);
    req_add(x.a, &c, APN_REQ_GET, RD_SLOT, DMA_LOCAL, 8, 0x10, 0x20, 0x77);
    doorbell(x.a, &c);
    r = rd_expect(0x10, 8);
    r.reply_in = DMA_LOCAL;
    r.reply_nonce = DMA_LNONCE;
    r.reply_offset = 0x20;
    tg = recv_read_req(x.a, &r);
    load(x.a, RD_SLOT, 0x30, 4);
    r = rd_expect(0x30, 4);
    tl = recv_read_req(x.a, &r);

    migrate(x.a, dst);
    g_assert_cmphex(rd(dst, APN_REG_RX_RING_LO), ==, (uint32_t)ring);
    g_assert_cmpuint(rd(dst, APN_REG_RX_RING_SIZE), ==, 4);
    g_assert_cmpuint(rd(dst, APN_REG_RX_TAIL), ==, 3);
    g_assert_cmphex(rd(dst, APN_REG_RING_IRQ), ==, APN_RING_IRQ_RX);
    g_assert_cmpuint(rd(dst, epr(RD_EP, APN_EPR_RQ_SIZE)), ==, 4);
    g_assert_cmpuint(rd(dst, ureg(RD_EP, APN_UREG_RQ_TAIL)), ==, 1);
    g_assert_cmpuint(rd(dst, ureg(RD_EP, APN_UREG_RQ_HEAD)), ==, 0);
    g_assert_cmphex(rd(dst, ureg(RD_EP, APN_UREG_READ_LANDING)), ==,
                    APN_READ_LANDING_VALID | RD_LAND);
    inject_read_resp(dst, DMA_LOCAL, DMA_LNONCE, 0x20, tg, "migrated", 8);
    assert_mem(dst, local + 0x20, "migrated", 8);
    check_chan(dst, &c, 1, 1);
    check_cqe(dst, &c, 0, APN_EV_GET_DONE, 0, 0x77, 8);
    inject_read_resp(dst, RD_LAND, RD_LNONCE, 0x30, tl, "load", 4);
    check_ev(dst, x.q, 0, APN_EV_READ_DONE, RD_EP, 4, 0x30);
    assert_mem(dst, x.land + 0x30, "load", 4);
    /* the destination's RX ring takes frames */
    {
        uint8_t f[64];

        eth_frame(f, 64, dev_mac, 0x0806, 5);
        inject(dst, f, 64);
        desc_check(dst, ring, 0, bufs, 64, APN_DESC_DONE);
        g_assert_cmpuint(rd(dst, APN_REG_RX_HEAD), ==, 1);
    }
    apn_stop(dst);
    apn_stop(x.a);
}

/* ---- kernel connection management, event post, CLOSE --------------------- */

/*
 * APN_EP_KERNEL_CM: a connection message to the endpoint's port goes to the
 * OS queue (same event, the endpoint's number, vector 0) instead of the
 * endpoint's event queue, and wakes nothing there; other datagrams still go
 * to its variable-length queue. Without the bit, messages land on the
 * endpoint's queue as before.
 */
static void test_msg_kernel_cm(void)
{
    Apn *a = apn_up(NULL);
    uint64_t osq = osq_up(a);
    uint64_t q = ep_up(a, 5, APN_EP_VALID | APN_EP_KERNEL_CM, EP_PORT, 8);
    uint64_t vq = gmem(a, 0x1000, 0);
    uint64_t msi = gmem(a, 0x1000, 0);
    uint64_t before[APN_CNT__COUNT];
    static const uint8_t raw[12] = "not a msg";
    uint8_t m[APN_MSG_LEN];
    Udp u;

    wr(a, APN_REG_IP_ADDR, SELF_IP);
    wr(a, epr(5, APN_EPR_VARQ_LO), (uint32_t)vq);
    wr(a, epr(5, APN_EPR_VARQ_HI), vq >> 32);
    wr(a, epr(5, APN_EPR_VARQ_SIZE), 256);
    msix_vectors_up(a, msi);
    wr(a, ureg(5, APN_UREG_ARM), 1);
    cnt_snap(a, before);

    for (uint8_t t = APN_MSG_CONNECT; t <= APN_MSG_ERROR; t++) {
        msg_encode(m, t, 4100, PEER_HOST, 10 + t, 0x100 + t, 0x50 + t);
        u = udp_init(EP_PORT, m, sizeof(m));
        inject_udp(a, &u);
        check_ev(a, osq, t - 1, APN_EV_MSG_DATA(t), 5,
                 t == APN_MSG_ERROR ? 0x50 + t : 10 + t,
                 (0x100 + t) | (uint64_t)PEER_HOST << 32 |
                 (uint64_t)4100 << 48);
    }
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 6);
    g_assert_cmpuint(rd(a, ureg(5, APN_UREG_EVQ_WRPTR)), ==, 0);
    g_assert_cmpuint(qctrl(a, q, Q_WRPTR), ==, 0);
    g_assert_cmpuint(delta(a, before, APN_CNT_OSQ_MSGS), ==, 6);
    g_assert_cmpuint(delta(a, before, APN_CNT_RX_MSGS), ==, 6);
    g_assert_cmpuint(delta(a, before, APN_CNT_OSQ_EVENTS), ==, 6);
    g_assert_cmpuint(delta(a, before, APN_CNT_EVQ_EVENTS), ==, 0);
    assert_vector(a, msi, APN_VEC_OSQ, true);
    assert_drops(a, before, "");

    /* any other datagram: the variable-length queue, which wakes the ARM */
    u = udp_init(EP_PORT, raw, sizeof(raw));
    inject_udp(a, &u);
    check_ev(a, q, 0, APN_EV_VAR, 5, sizeof(raw),
             (uint64_t)PEER_PORT << 32);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 7);
    check_ev(a, osq, 6, APN_EV_OOB_DATA, 5, 0, 0);
    g_assert_cmpuint(delta(a, before, APN_CNT_OSQ_MSGS), ==, 6);

    /* without the bit: the endpoint's own queue */
    wr(a, epr(5, APN_EPR_CTRL), APN_EP_VALID);
    g_assert_cmphex(rd(a, epr(5, APN_EPR_CTRL)), ==, APN_EP_VALID);
    msg_encode(m, APN_MSG_CONNECT, 4100, PEER_HOST, 1, 2, 0);
    u = udp_init(EP_PORT, m, sizeof(m));
    inject_udp(a, &u);
    check_ev(a, q, 1, APN_EV_CONNECT, 5, 1,
             2 | (uint64_t)PEER_HOST << 32 | (uint64_t)4100 << 48);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 7);
    g_assert_cmpuint(delta(a, before, APN_CNT_OSQ_MSGS), ==, 6);
    g_assert_cmpuint(delta(a, before, APN_CNT_RX_MSGS), ==, 7);
    assert_drops(a, before, "");
    assert_no_frame(a);
    apn_stop(a);
}

/*
 * Event post: the OS adds an event to an endpoint's event queue through the
 * staging registers. It carries APN_EV_F_POSTED besides the flags written,
 * takes its place in order with the device's own events, wakes an armed
 * endpoint and is lost to a full queue like them. A post to an endpoint
 * that cannot take it is refused (cmd_refused). Reset clears the staging
 * registers.
 */
static void test_ev_post(void)
{
    Apn *a = apn_up(",endpoints=8");
    uint64_t osq = osq_up(a);
    uint64_t q = ep_up(a, 2, APN_EP_VALID, 0, EVQ_SIZE);
    uint64_t msi = gmem(a, 0x1000, 0);
    uint64_t before[APN_CNT__COUNT];
    static const uint32_t refused_ep[] = { 8, 0x10002, 3, 4 };
    static const uint32_t staging[] = {
        APN_REG_EV_POST_EP, APN_REG_EV_POST_INFO, APN_REG_EV_POST_DATA_LO,
        APN_REG_EV_POST_DATA_HI,
    };
    uint8_t b = 0x33;

    msix_vectors_up(a, msi);
    put_in_event(a, 1, 2, 5, 0x100);
    ep_up(a, 4, APN_EP_VALID, 0, 0);            /* valid, no event queue */

    /* the staging registers read back; TYPE is write-only */
    wr(a, APN_REG_EV_POST_EP, 2);
    wr(a, APN_REG_EV_POST_INFO, 0x12345678);
    wr(a, APN_REG_EV_POST_DATA_LO, 0x9abcdef0);
    wr(a, APN_REG_EV_POST_DATA_HI, 0x0fedcba9);
    g_assert_cmpuint(rd(a, APN_REG_EV_POST_EP), ==, 2);
    g_assert_cmphex(rd(a, APN_REG_EV_POST_INFO), ==, 0x12345678);
    g_assert_cmphex(rd(a, APN_REG_EV_POST_DATA_LO), ==, 0x9abcdef0);
    g_assert_cmphex(rd(a, APN_REG_EV_POST_DATA_HI), ==, 0x0fedcba9);
    g_assert_cmphex(rd(a, APN_REG_EV_POST_TYPE), ==, 0);

    /* armed and empty: the event lands in slot 0 and wakes the endpoint */
    wr(a, ureg(2, APN_UREG_ARM), 1);
    cnt_snap(a, before);
    wr(a, APN_REG_EV_POST_TYPE, APN_EV_CLOSE | 0x80 << 8);
    check_evf(a, q, 0, APN_EV_CLOSE, 0x80 | APN_EV_F_POSTED, 2, 0x12345678,
              0x0fedcba99abcdef0ull);
    g_assert_cmpuint(qctrl(a, q, Q_WRPTR), ==, 1);
    g_assert_cmpuint(rd(a, ureg(2, APN_UREG_EVQ_WRPTR)), ==, 1);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 1);
    check_ev(a, osq, 0, APN_EV_OOB_DATA, 2, 0, 0);
    assert_vector(a, msi, APN_VEC_OSQ, true);
    g_assert_cmpuint(delta(a, before, APN_CNT_EV_POSTS), ==, 1);
    g_assert_cmpuint(delta(a, before, APN_CNT_EVQ_EVENTS), ==, 1);
    g_assert_cmpuint(delta(a, before, APN_CNT_CMD_REFUSED), ==, 0);
    g_assert_cmphex(rd(a, APN_REG_EV_POST_INFO), ==, 0x12345678);

    /* in order with the device's own events; POSTED is always set */
    inject_event(a, 1, 5, 0x10, &b, 1);
    wr(a, APN_REG_EV_POST_INFO, 7);
    wr(a, APN_REG_EV_POST_DATA_LO, 0);
    wr(a, APN_REG_EV_POST_DATA_HI, 0);
    wr(a, APN_REG_EV_POST_TYPE, APN_EV_ERROR_MSG);
    check_ev(a, q, 1, APN_EV_EVENT, 2, 0x10, 0x33);
    check_evf(a, q, 2, APN_EV_ERROR_MSG, APN_EV_F_POSTED, 2, 7, 0);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 1);      /* one-shot */
    assert_vector(a, msi, APN_VEC_OSQ, false);

    /* a full queue loses the event: counted, OVERFLOW once */
    wr(a, APN_REG_EV_POST_TYPE, APN_EV_ACCEPT);
    g_assert_cmpuint(qctrl(a, q, Q_WRPTR), ==, EVQ_SIZE);
    cnt_snap(a, before);
    wr(a, APN_REG_EV_POST_TYPE, APN_EV_ALIVE);
    g_assert_cmpuint(qctrl(a, q, Q_WRPTR), ==, EVQ_SIZE);
    g_assert_cmpuint(qctrl(a, q, Q_OVERFLOWS), ==, 1);
    check_evf(a, q, 3, APN_EV_ACCEPT, APN_EV_F_POSTED, 2, 7, 0);
    g_assert_cmpuint(delta(a, before, APN_CNT_EVQ_OVERFLOWS), ==, 1);
    g_assert_cmpuint(delta(a, before, APN_CNT_EV_POSTS), ==, 1);
    g_assert_cmpuint(delta(a, before, APN_CNT_EVQ_EVENTS), ==, 0);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 2);
    check_ev(a, osq, 1, APN_EV_OVERFLOW, 2, 1, 0);

    /* refused: no such endpoint, not valid, no event queue */
    wr(a, ureg(2, APN_UREG_EVQ_RDPTR), EVQ_SIZE);
    cnt_snap(a, before);
    for (int i = 0; i < ARRAY_SIZE(refused_ep); i++) {
        wr(a, APN_REG_EV_POST_EP, refused_ep[i]);
        g_assert_cmphex(rd(a, APN_REG_EV_POST_EP), ==, refused_ep[i]);
        wr(a, APN_REG_EV_POST_TYPE, APN_EV_CLOSE);
    }
    g_assert_cmpuint(delta(a, before, APN_CNT_CMD_REFUSED), ==, 4);
    g_assert_cmpuint(delta(a, before, APN_CNT_EV_POSTS), ==, 0);
    g_assert_cmpuint(delta(a, before, APN_CNT_EVQ_EVENTS), ==, 0);
    g_assert_cmpuint(delta(a, before, APN_CNT_EVQ_OVERFLOWS), ==, 0);
    g_assert_cmpuint(qctrl(a, q, Q_WRPTR), ==, EVQ_SIZE);
    g_assert_cmpuint(rd(a, APN_REG_OSQ_WRPTR), ==, 2);
    /* only on the privileged page: the offset means nothing in a user page */
    wr(a, APN_REG_EV_POST_EP, 2);
    wr(a, ureg(2, APN_REG_EV_POST_TYPE), APN_EV_CLOSE);
    g_assert_cmpuint(delta(a, before, APN_CNT_EV_POSTS), ==, 0);
    g_assert_cmpuint(qctrl(a, q, Q_WRPTR), ==, EVQ_SIZE);

    /* device reset clears the staging registers */
    wr(a, APN_REG_CTRL, APN_CTRL_RESET);
    for (int i = 0; i < ARRAY_SIZE(staging); i++) {
        g_assert_cmphex(rd(a, staging[i]), ==, 0);
    }
    apn_stop(a);
}

/* A frame from the peer with one CLOSE segment (len 0, offset 0). */
static void close_frame(Frame *f, uint32_t in_index, uint32_t nonce,
                        uint32_t out_index)
{
    frame_init(f, in_index, nonce, 0, NULL, 0);
    f->seg[0].type = APN_SEG_CLOSE;
    f->seg[0].out_index = out_index;
}

static SegExpect close_expect(uint32_t out_index, uint32_t in_index,
                              uint32_t nonce)
{
    return (SegExpect) {
        .type = APN_SEG_CLOSE, .in_index = in_index, .nonce = nonce,
        .out_index = out_index,
    };
}

static void close_status(Apn *a, uint32_t base, uint32_t index,
                         uint32_t status)
{
    wr(a, base + APN_UREG_OUT_CLOSE, index);
    g_assert_cmpuint(rd(a, base + APN_UREG_CMD_STATUS), ==, status);
}

/*
 * OUT_CLOSE sends one CLOSE segment (len 0, offset 0, no sequence number)
 * to the aperture's destination, after the stores gathered through it: from
 * the user page of the endpoint that owns it (any trust level), or from the
 * privileged page (any owner). The aperture's sequence numbers are not
 * used up.
 */
static void test_close_tx(void)
{
    Apn *a = apn_up(",endpoints=8");
    struct apn_out_entry o = out_entry(PEER_HOST, TX_IN_INDEX, TX_NONCE,
                                       0x1000);
    uint32_t u = APN_USER_PAGE(1), blk = APN_REG_CMD_BLOCK;
    static const uint8_t d[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    uint64_t before[APN_CNT__COUNT];
    SegExpect s[2] = {
        seg_expect(TX_SLOT, TX_IN_INDEX, TX_NONCE, 0x40, d, 8),
        close_expect(TX_SLOT, TX_IN_INDEX, TX_NONCE),
    };
    SegExpect x;

    ep_up(a, 1, APN_EP_VALID, 0, 0);            /* not trusted */
    ep_up(a, 2, APN_EP_VALID, 0, 0);
    o.endpoint = 1;
    o.flags |= APN_ENTRY_SEQ;
    o.seq = 5;
    put_out_entry(a, TX_SLOT, &o);
    cnt_snap(a, before);

    /* what was stored through the aperture goes first, in the same frame */
    qtest_writeq(a->qts, slot_addr(a, TX_SLOT, 0x40), ldq_le_p(d));
    close_status(a, u, TX_SLOT, APN_CMD_OK);
    s[0].flags = APN_SEG_F_SEQ;
    s[0].seq = 5;
    recv_check_segs(a, peer_mac, PEER_HOST, s, 2);
    assert_no_frame(a);
    g_assert_cmpuint(out_entry_seq(a, TX_SLOT), ==, 6);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_CLOSES), ==, 1);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_SEGMENTS), ==, 2);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_FRAMES), ==, 1);
    g_assert_cmphex(rd(a, u + APN_UREG_OUT_CLOSE), ==, 0);     /* WO */

    /* the next store takes the next sequence number */
    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0), ldl_le_p(d));
    fence(a, 1);
    s[0].offset = 0;
    s[0].len = 4;
    s[0].seq = 6;
    recv_check_segs(a, peer_mac, PEER_HOST, s, 1);
    g_assert_cmpuint(out_entry_seq(a, TX_SLOT), ==, 7);

    /* the privileged page closes any endpoint's aperture */
    wr(a, APN_REG_OUT_CLOSE, TX_SLOT);
    recv_check_segs(a, peer_mac, PEER_HOST, s + 1, 1);
    g_assert_cmphex(rd(a, APN_REG_OUT_CLOSE), ==, 0);
    /* and so does the privileged command block, for CMD_EP */
    wr(a, APN_REG_CMD_EP, 1);
    close_status(a, blk, TX_SLOT, APN_CMD_OK);
    recv_check_segs(a, peer_mac, PEER_HOST, s + 1, 1);

    /* an event aperture can be closed too */
    o = out_entry(PEER_HOST, 12, 0xe7e7, 0x100);
    o.flags |= APN_ENTRY_TYPE_EVENT << APN_ENTRY_TYPE_SHIFT;
    o.endpoint = 1;
    put_out_entry(a, 5, &o);
    close_status(a, u, 5, APN_CMD_OK);
    x = close_expect(5, 12, 0xe7e7);
    recv_check_segs(a, peer_mac, PEER_HOST, &x, 1);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_CLOSES), ==, 4);
    assert_drops(a, before, "");

    /* a user page closes only its endpoint's valid apertures */
    o = out_entry(PEER_HOST, 13, 0x1313, 0x1000);
    o.endpoint = 2;
    put_out_entry(a, 7, &o);
    cnt_snap(a, before);
    close_status(a, u, 7, APN_CMD_ENOENT);            /* endpoint 2's */
    close_status(a, u, 8, APN_CMD_ENOENT);            /* zeroed: not valid */
    close_status(a, u, N_OUT, APN_CMD_ENOENT);        /* outside the table */
    close_status(a, u, 0xffffffff, APN_CMD_ENOENT);
    close_status(a, ureg(3, 0), TX_SLOT, APN_CMD_EPERM); /* ep not valid */
    assert_no_frame(a);
    close_status(a, ureg(2, 0), 7, APN_CMD_OK);
    x = close_expect(7, 13, 0x1313);
    recv_check_segs(a, peer_mac, PEER_HOST, &x, 1);
    /* no route; CI traffic disabled */
    o = out_entry(PEER_HOST + 1, 14, 0x1414, 0x1000);
    o.endpoint = 1;
    put_out_entry(a, 9, &o);
    close_status(a, u, 9, APN_CMD_ENOROUTE);
    wr(a, APN_REG_CTRL, 0);
    close_status(a, u, TX_SLOT, APN_CMD_EDISABLED);
    apn_enable(a);
    assert_drops(a, before, "tx_drop_disabled+1 tx_drop_no_route+1");
    g_assert_cmpuint(delta(a, before, APN_CNT_CMD_REFUSED), ==, 0);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_CLOSES), ==, 1);

    /* the privileged register: a bad index is logged and ignored */
    cnt_snap(a, before);
    wr(a, APN_REG_OUT_CLOSE, 8);
    wr(a, APN_REG_OUT_CLOSE, N_OUT);
    g_assert_cmpuint(delta(a, before, APN_CNT_CMD_REFUSED), ==, 2);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_CLOSES), ==, 0);
    assert_no_frame(a);
    g_assert_cmpuint(out_entry_seq(a, TX_SLOT), ==, 7);
    apn_stop(a);
}

/*
 * A CLOSE segment is checked like a write of 0 bytes at offset 0 (index,
 * VALID, nonce, source; neither sequence nor bounds) and becomes
 * APN_EV_CLOSE with APN_EV_F_APERTURE (info = in-index, data = nonce |
 * src_host << 32) on the aperture's endpoint. A refused one is dropped,
 * counted and answered with ERROR like a write; one with a payload is
 * malformed.
 */
static void test_close_rx(void)
{
    Apn *a = apn_up(NULL);
    uint64_t buf = gmem(a, 0x1000, 0x5c);
    uint64_t q = ep_up(a, 3, APN_EP_VALID, 0, 8);
    struct apn_in_entry e = in_contig(buf, 0x100, 0xabc);
    uint64_t before[APN_CNT__COUNT];
    uint8_t untouched[0x100];
    static const uint8_t d[4] = { 1, 2, 3, 4 };
    Frame f;

    memset(untouched, 0x5c, sizeof(untouched));
    e.endpoint = 3;
    e.flags |= APN_ENTRY_SEQ | APN_IN_CHECK_SRC_HOST;
    e.seq = 7;
    e.src_host = PEER_HOST;
    e.src_host_mask = 0xffff;
    e.narrow_start = 0x10;                      /* offset 0 is outside */
    e.narrow_len = 0x20;
    put_in_entry(a, 2, &e);
    put_in_event(a, 4, 3, 0x4444, 0x100);
    cnt_snap(a, before);

    close_frame(&f, 2, 0xabc, 9);
    inject_frame(a, &f);
    check_evf(a, q, 0, APN_EV_CLOSE, APN_EV_F_APERTURE, 3, 2,
              0xabc | (uint64_t)PEER_HOST << 32);
    g_assert_cmpuint(in_entry_seq(a, 2), ==, 7);
    assert_mem(a, buf, untouched, sizeof(untouched));
    /* an event aperture */
    close_frame(&f, 4, 0x4444, 10);
    inject_frame(a, &f);
    check_evf(a, q, 1, APN_EV_CLOSE, APN_EV_F_APERTURE, 3, 4,
              0x4444 | (uint64_t)PEER_HOST << 32);
    g_assert_cmpuint(delta(a, before, APN_CNT_RX_CLOSES), ==, 2);
    g_assert_cmpuint(delta(a, before, APN_CNT_RX_SEGMENTS), ==, 2);
    assert_drops(a, before, "");
    assert_no_frame(a);

    /* refused like a write: ERROR to the sender, RX_DROP to the endpoint */
    cnt_snap(a, before);
    close_frame(&f, 2, 0xabd, 9);
    drop_expect_ev(a, &f, APN_CNT_RX_DROP_NONCE);
    check_ev(a, q, 2, APN_EV_RX_DROP, 3, APN_CNT_RX_DROP_NONCE,
             2 | (uint64_t)PEER_HOST << 32);
    close_frame(&f, 2, 0xabc, 9);
    f.src_host = PEER_HOST + 1;
    drop_expect_ev(a, &f, APN_CNT_RX_DROP_SRC_HOST);
    check_ev(a, q, 3, APN_EV_RX_DROP, 3, APN_CNT_RX_DROP_SRC_HOST,
             2 | (uint64_t)(PEER_HOST + 1) << 32);
    close_frame(&f, 5, 0, 11);                  /* zeroed: not valid */
    drop_expect_ev(a, &f, APN_CNT_RX_DROP_INVALID);
    close_frame(&f, N_IN + 1, 0, 12);
    drop_expect_ev(a, &f, APN_CNT_RX_DROP_INDEX);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_ERROR_MSGS), ==, 4);

    /* a CLOSE with a payload is malformed: dropped, not answered */
    cnt_snap(a, before);
    close_frame(&f, 2, 0xabc, 9);
    f.seg[0].data = d;
    f.seg[0].len = sizeof(d);
    inject_frame(a, &f);
    assert_drops(a, before, "rx_drop_malformed+1");
    assert_no_frame(a);
    g_assert_cmpuint(delta(a, before, APN_CNT_RX_CLOSES), ==, 0);
    g_assert_cmpuint(rd(a, ureg(3, APN_UREG_EVQ_WRPTR)), ==, 4);
    apn_stop(a);
}

/*
 * A CLOSE to ourselves (dest host = HOST_ID) goes through our own receive
 * path after the data stored before it.
 */
static void test_close_loopback(void)
{
    Apn *a = apn_up(NULL);
    uint64_t buf = gmem(a, 0x1000, 0);
    uint64_t q = ep_up(a, 1, APN_EP_VALID, 0, 8);
    struct apn_in_entry e = in_contig(buf, 0x100, 0x77);
    struct apn_out_entry o = out_entry(SELF_HOST, 6, 0x77, 0x100);
    static const uint8_t d[8] = "loopback";
    uint64_t before[APN_CNT__COUNT];

    e.endpoint = 1;
    put_in_entry(a, 6, &e);
    o.endpoint = 1;
    put_out_entry(a, 3, &o);
    cnt_snap(a, before);
    qtest_writeq(a->qts, slot_addr(a, 3, 0x20), ldq_le_p(d));
    close_status(a, APN_USER_PAGE(1), 3, APN_CMD_OK);
    assert_mem(a, buf + 0x20, d, sizeof(d));
    check_evf(a, q, 0, APN_EV_CLOSE, APN_EV_F_APERTURE, 1, 6,
              0x77 | (uint64_t)SELF_HOST << 32);
    g_assert_cmpuint(rd(a, ureg(1, APN_UREG_EVQ_WRPTR)), ==, 1);
    g_assert_cmpuint(delta(a, before, APN_CNT_TX_CLOSES), ==, 1);
    g_assert_cmpuint(delta(a, before, APN_CNT_RX_CLOSES), ==, 1);
    assert_drops(a, before, "");
    assert_no_frame(a);
    apn_stop(a);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    /* the frame builder's CRC is the standard CRC-32C */
    g_assert_cmphex(crc32c_std("123456789", 9), ==, 0xe3069283);

    qtest_add_func("/apertnic/probe", test_probe);
    qtest_add_func("/apertnic/probe/properties", test_probe_properties);
    qtest_add_func("/apertnic/rx/write/contig", test_rx_write_contig);
    qtest_add_func("/apertnic/rx/write/page-list", test_rx_write_page_list);
    qtest_add_func("/apertnic/rx/write/multi-segment", test_rx_multi_segment);
    qtest_add_func("/apertnic/rx/drop/nonce", test_rx_drop_nonce);
    qtest_add_func("/apertnic/rx/drop/bounds", test_rx_drop_bounds);
    qtest_add_func("/apertnic/rx/drop/narrowed", test_rx_drop_narrowed);
    qtest_add_func("/apertnic/rx/drop/invalid", test_rx_drop_invalid);
    qtest_add_func("/apertnic/rx/drop/index", test_rx_drop_index);
    qtest_add_func("/apertnic/rx/drop/crc", test_rx_drop_crc);
    qtest_add_func("/apertnic/rx/drop/malformed", test_rx_drop_malformed);
    qtest_add_func("/apertnic/rx/drop/filtered", test_rx_drop_filtered);
    qtest_add_func("/apertnic/rx/drop/not-ci", test_rx_drop_not_ci);
    qtest_add_func("/apertnic/rx/drop/disabled", test_rx_drop_disabled);
    qtest_add_func("/apertnic/rx/drop/src-host", test_rx_drop_src_host);
    qtest_add_func("/apertnic/rx/drop/src-mac", test_rx_drop_src_mac);
    qtest_add_func("/apertnic/rx/drop/narrowed-outside",
                   test_rx_drop_narrowed_outside);
    qtest_add_func("/apertnic/rx/drop/dma", test_rx_drop_dma);
    qtest_add_func("/apertnic/rx/drop/dma-page", test_rx_drop_dma_page);
    qtest_add_func("/apertnic/rx/drop/unreadable", test_rx_drop_unreadable);
    qtest_add_func("/apertnic/rx/seq", test_rx_seq);
    qtest_add_func("/apertnic/tx/store", test_tx_store);
    qtest_add_func("/apertnic/tx/pad", test_tx_pad);
    qtest_add_func("/apertnic/tx/gather", test_tx_gather);
    qtest_add_func("/apertnic/tx/split", test_tx_split);
    qtest_add_func("/apertnic/tx/mtu", test_tx_mtu);
    qtest_add_func("/apertnic/tx/timer", test_tx_timer);
    qtest_add_func("/apertnic/tx/timer-default", test_tx_timer_default);
    qtest_add_func("/apertnic/tx/flush-triggers", test_tx_flush_triggers);
    qtest_add_func("/apertnic/tx/seq", test_tx_seq);
    qtest_add_func("/apertnic/tx/drop/invalid", test_tx_drop_invalid);
    qtest_add_func("/apertnic/tx/drop/no-slot", test_tx_drop_no_slot);
    qtest_add_func("/apertnic/tx/drop/bounds", test_tx_drop_bounds);
    qtest_add_func("/apertnic/tx/drop/no-route", test_tx_drop_no_route);
    qtest_add_func("/apertnic/tx/drop/unreadable", test_tx_drop_unreadable);
    qtest_add_func("/apertnic/tx/drop/disabled", test_tx_drop_disabled);
    qtest_add_func("/apertnic/loopback", test_loopback);
    qtest_add_func("/apertnic/cache/lru", test_cache_lru);
    qtest_add_func("/apertnic/cache/inval", test_cache_inval);
    qtest_add_func("/apertnic/osq/irq-test", test_osq_irq_test);
    qtest_add_func("/apertnic/osq/overflow", test_osq_overflow);
    qtest_add_func("/apertnic/osq/rdptr", test_osq_rdptr);
    qtest_add_func("/apertnic/osq/device-error", test_osq_device_error);
    qtest_add_func("/apertnic/osq/link", test_osq_link);
    qtest_add_func("/apertnic/registers/ignored", test_registers_ignored);
    qtest_add_func("/apertnic/registers/host-table",
                   test_registers_host_table);
    qtest_add_func("/apertnic/registers/counters-ro",
                   test_registers_counters_ro);
    qtest_add_func("/apertnic/registers/reset", test_registers_reset);
    qtest_add_func("/apertnic/registers/pci-reset", test_registers_pci_reset);
    qtest_add_func("/apertnic/registers/qom-counters",
                   test_registers_qom_counters);
    qtest_add_func("/apertnic/migration", test_migration);
    qtest_add_func("/apertnic/migration/endpoints", test_migration_endpoints);
    qtest_add_func("/apertnic/ep/registers", test_ep_registers);
    qtest_add_func("/apertnic/ep/max", test_ep_max);
    qtest_add_func("/apertnic/ep/evq", test_ep_evq);
    qtest_add_func("/apertnic/ep/arm", test_ep_arm);
    qtest_add_func("/apertnic/cmd/out-commit", test_cmd_out_commit);
    qtest_add_func("/apertnic/cmd/refused", test_cmd_refused);
    qtest_add_func("/apertnic/cmd/in-commit", test_cmd_in_commit);
    qtest_add_func("/apertnic/cmd/privileged", test_cmd_privileged);
    qtest_add_func("/apertnic/rx/error/reply", test_rx_error_reply);
    qtest_add_func("/apertnic/rx/error/msg", test_rx_error_msg);
    qtest_add_func("/apertnic/rx/error/loopback", test_rx_error_loopback);
    qtest_add_func("/apertnic/event/tx", test_event_tx);
    qtest_add_func("/apertnic/event/rx", test_event_rx);
    qtest_add_func("/apertnic/event/loopback", test_event_loopback);
    qtest_add_func("/apertnic/msg/send", test_msg_send);
    qtest_add_func("/apertnic/msg/rx", test_msg_rx);
    qtest_add_func("/apertnic/msg/var", test_msg_var);
    qtest_add_func("/apertnic/msg/loopback", test_msg_loopback);
    qtest_add_func("/apertnic/tx/pack", test_tx_pack);
    qtest_add_func("/apertnic/tx/pack-nseg", test_tx_pack_nseg);
    qtest_add_func("/apertnic/ring/tx", test_ring_tx);
    qtest_add_func("/apertnic/ring/rx", test_ring_rx);
    qtest_add_func("/apertnic/ring/backpressure", test_ring_backpressure);
    qtest_add_func("/apertnic/ring/registers", test_ring_registers);
    qtest_add_func("/apertnic/ring/reset", test_ring_reset);
    qtest_add_func("/apertnic/read/load", test_read_load);
    qtest_add_func("/apertnic/read/refused", test_read_refused);
    qtest_add_func("/apertnic/read/serve", test_read_serve);
    qtest_add_func("/apertnic/read/loopback", test_read_loopback);
    qtest_add_func("/apertnic/dma/put", test_dma_put);
    qtest_add_func("/apertnic/dma/get", test_dma_get);
    qtest_add_func("/apertnic/dma/loopback", test_dma_loopback);
    qtest_add_func("/apertnic/dma/bad", test_dma_bad);
    qtest_add_func("/apertnic/dma/flow", test_dma_flow);
    qtest_add_func("/apertnic/dma/arm-abort", test_dma_arm_abort);
    qtest_add_func("/apertnic/dma/registers", test_dma_registers);
    qtest_add_func("/apertnic/migration/dma", test_migration_dma);
    qtest_add_func("/apertnic/msg/kernel-cm", test_msg_kernel_cm);
    qtest_add_func("/apertnic/ev-post", test_ev_post);
    qtest_add_func("/apertnic/close/tx", test_close_tx);
    qtest_add_func("/apertnic/close/rx", test_close_rx);
    qtest_add_func("/apertnic/close/loopback", test_close_loopback);
    return g_test_run();
}
