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
    g_assert_cmphex(rd(a, APN_REG_CAPS), ==, APN_CAP_CACHE | APN_CAP_GATHER);
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
    f.ethertype = 0x0800;
    drop_expect(&x, &f, "rx_drop_not_ci");
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
 * A store not contiguous with the burst, or to another aperture, sends the
 * burst first: frames leave in store order, without waiting for a fence.
 */
static void test_tx_split(void)
{
    Apn *a = tx_up(NULL);
    struct apn_out_entry e = out_entry(PEER_HOST, 9, 0x99, 0x1000);
    static const uint8_t d[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    TxExpect x;

    put_out_entry(a, TX_SLOT + 1, &e);
    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0x10), ldl_le_p(d));
    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0x20), ldl_le_p(d));
    x = tx_expect(0x10, d, 4);
    recv_check(a, &x);
    assert_no_frame(a);

    qtest_writel(a->qts, slot_addr(a, TX_SLOT, 0x24), ldl_le_p(d + 4));
    qtest_writel(a->qts, slot_addr(a, TX_SLOT + 1, 0x28), ldl_le_p(d));
    x = tx_expect(0x20, d, 8);
    recv_check(a, &x);
    assert_no_frame(a);

    /* going backwards is not contiguous either */
    qtest_writel(a->qts, slot_addr(a, TX_SLOT + 1, 0x24), ldl_le_p(d + 4));
    x = (TxExpect) {
        .dst = peer_mac, .dst_host = PEER_HOST, .in_index = 9,
        .nonce = 0x99, .offset = 0x28, .out_index = TX_SLOT + 1,
        .payload = d, .len = 4,
    };
    recv_check(a, &x);
    fence(a, 0);
    x.offset = 0x24;
    x.payload = d + 4;
    recv_check(a, &x);
    assert_no_frame(a);

    /* a read from the window does not pass the stores before it */
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
    inject_write(a, 0, 0, 0, &b, 1);
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
    return g_test_run();
}
