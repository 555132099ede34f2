/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Receive-path fuzzer for the apertnic core: arbitrary bytes are handed to
 * apn_core_receive() of a NIC with a few valid incoming apertures (contiguous,
 * page list, sequenced and narrowed, source-checked, invalid, unreachable).
 *
 * Oracle: besides ASan/UBSan, every DMA write must land inside an aperture's
 * memory, the sequenced entry's seq field or the OS queue; anything else
 * aborts.
 *
 * Built with -fsanitize=fuzzer (meson compile -C build/host fuzz_rx_libfuzzer)
 * this is a libFuzzer target. Built without, main() replays files:
 *
 *   fuzz_rx [-s] [-m N] FILE...   replay each file, then N deterministic
 *                                 mutations of it; -s: each file as given
 *                                 must be delivered with no drop
 *   fuzz_rx -g DIR                write the seed corpus into DIR
 */
#include "qemu/osdep.h"
#include "apertnic_core.h"
#include "fake.h"

#define FZ_MEM          (1u << 20)
#define FZ_OSQ          0x1000u
#define FZ_OSQ_EVENTS   16u
#define FZ_IN_TABLE     0x2000u
#define FZ_IN_COUNT     8u
#define FZ_PAGE_LIST    0x3000u
#define FZ_BUF          0x10000u
#define FZ_PAGE0        0x20000u
#define FZ_PAGE1        0x30000u
#define FZ_PAGE2        0x28000u
#define FZ_HOST         7
#define FZ_SRC_HOST     3

static const uint8_t fz_mac[6] = { 0x52, 0x54, 0x00, 0xf0, 0x00, 0x07 };
static const uint8_t fz_src_mac[6] = { 0x52, 0x54, 0x00, 0xf0, 0x00, 0x03 };

/* The incoming apertures: index, and what the fuzzer may write. */
enum {
    AP_CONTIG,          /* 4 KiB at FZ_BUF */
    AP_PAGES,           /* 8 KiB through a 3-page list, first_byte 0x800 */
    AP_SEQ,             /* sequenced, narrowed, source host checked */
    AP_SRC_MAC,         /* source MAC checked */
    AP_INVALID,
    AP_UNREACHABLE,     /* page list outside guest memory */
};

static const uint32_t fz_nonce[] = {
    0x11111111, 0x22222222, 0x33333333, 0x44444444, 0x55555555, 0x66666666,
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
    { FZ_OSQ, 64 + 16 * FZ_OSQ_EVENTS },                /* DMA error events */
};

static ApnCore *fz_core;
static Fake fz_fake;
static uint8_t fz_tables[0x2000];  /* pristine FZ_IN_TABLE .. FZ_PAGE_LIST+4K */

static void st_le16(uint8_t *p, uint16_t v)
{
    p[0] = v;
    p[1] = v >> 8;
}

static void st_le32(uint8_t *p, uint32_t v)
{
    st_le16(p, v);
    st_le16(p + 2, v >> 16);
}

static void st_le64(uint8_t *p, uint64_t v)
{
    st_le32(p, v);
    st_le32(p + 4, v >> 32);
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
            " outside every aperture\n", len, addr);
    abort();
}

static void fz_put_in(uint32_t idx, uint32_t flags, uint64_t base,
                      uint32_t size, uint32_t first_byte)
{
    uint8_t *p = fz_fake.mem + FZ_IN_TABLE + idx * APN_TABLE_ENTRY_SIZE;

    memset(p, 0, APN_TABLE_ENTRY_SIZE);
    st_le32(p + offsetof(struct apn_in_entry, flags), flags);
    st_le32(p + offsetof(struct apn_in_entry, nonce), fz_nonce[idx]);
    st_le64(p + offsetof(struct apn_in_entry, base), base);
    st_le32(p + offsetof(struct apn_in_entry, size), size);
    st_le32(p + offsetof(struct apn_in_entry, first_byte), first_byte);
}

static void fz_reg(uint32_t addr, uint32_t val)
{
    apn_core_reg_write(fz_core, addr, val, 4);
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

    fz_put_in(AP_CONTIG, APN_ENTRY_VALID | APN_IN_CONTIG, FZ_BUF, 0x1000, 0);
    fz_put_in(AP_PAGES, APN_ENTRY_VALID, FZ_PAGE_LIST, 0x2000, 0x800);
    st_le64(fz_fake.mem + FZ_PAGE_LIST, FZ_PAGE0);
    st_le64(fz_fake.mem + FZ_PAGE_LIST + 8, FZ_PAGE1);
    st_le64(fz_fake.mem + FZ_PAGE_LIST + 16, FZ_PAGE2);
    fz_put_in(AP_SEQ, APN_ENTRY_VALID | APN_IN_CONTIG | APN_ENTRY_SEQ |
              APN_IN_CHECK_SRC_HOST, FZ_BUF + 0x1000, 0x1000, 0);
    p = fz_fake.mem + FZ_IN_TABLE + AP_SEQ * APN_TABLE_ENTRY_SIZE;
    st_le16(p + offsetof(struct apn_in_entry, src_host), FZ_SRC_HOST);
    st_le16(p + offsetof(struct apn_in_entry, src_host_mask), 0xffff);
    st_le32(p + offsetof(struct apn_in_entry, narrow_start), 0x100);
    st_le32(p + offsetof(struct apn_in_entry, narrow_len), 0x200);
    fz_put_in(AP_SRC_MAC, APN_ENTRY_VALID | APN_IN_CONTIG |
              APN_IN_CHECK_SRC_MAC, FZ_BUF + 0x2000, 0x1000, 0);
    p = fz_fake.mem + FZ_IN_TABLE + AP_SRC_MAC * APN_TABLE_ENTRY_SIZE;
    memcpy(p + offsetof(struct apn_in_entry, src_mac), fz_src_mac, 6);
    fz_put_in(AP_INVALID, APN_IN_CONTIG, FZ_BUF, 0x1000, 0);
    fz_put_in(AP_UNREACHABLE, APN_ENTRY_VALID, FZ_MEM + 0x1000, 0x1000, 0);
    memcpy(fz_tables, fz_fake.mem + FZ_IN_TABLE, sizeof(fz_tables));

    fz_reg(APN_REG_IN_TABLE_LO, FZ_IN_TABLE);
    fz_reg(APN_REG_IN_TABLE_COUNT, FZ_IN_COUNT);
    fz_reg(APN_REG_HOST_ID, FZ_HOST);
    fz_reg(APN_REG_OSQ_BASE_LO, FZ_OSQ);
    fz_reg(APN_REG_CTRL, APN_CTRL_ENABLE);
    fz_fake.on_write = fz_check_write;
}

/* Run one input from the same starting state. */
static void fz_one(const uint8_t *data, size_t len)
{
    if (!fz_core) {
        fz_setup();
    }
    memcpy(fz_fake.mem + FZ_IN_TABLE, fz_tables, sizeof(fz_tables));
    fz_reg(APN_REG_TABLE_INVAL, APN_INVAL_ALL_INDEX);
    fz_reg(APN_REG_OSQ_SIZE, FZ_OSQ_EVENTS);     /* empties the queue */
    apn_core_receive(fz_core, data, len);
    if (fz_fake.nframes) {
        /* The receive path never transmits. */
        abort();
    }
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Each input is received as given and again with its CRC made right. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy;

    fz_one(data, size);
    copy = malloc(size ? size : 1);
    if (!copy) {
        abort();
    }
    memcpy(copy, data, size);
    if (fz_fix_crc(copy, size)) {
        fz_one(copy, size);
    }
    free(copy);
    return 0;
}

#ifndef APN_LIBFUZZER

/* ---- seed corpus --------------------------------------------------------------- */

static void st_be16(uint8_t *p, uint16_t v)
{
    p[0] = v >> 8;
    p[1] = v;
}

static void st_be32(uint8_t *p, uint32_t v)
{
    st_be16(p, v >> 16);
    st_be16(p + 2, v);
}

typedef struct SeedSeg {
    uint32_t in_index, offset, seq;
    uint8_t flags;
    uint16_t len;
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
    st_be16(buf + 12, APN_ETHERTYPE);
    ci[0] = APN_WIRE_VERSION;
    ci[1] = nseg;
    st_be16(ci + 2, src_host);
    st_be16(ci + 4, FZ_HOST);
    st_be16(ci + 6, 0);
    for (unsigned i = 0; i < nseg; i++) {
        uint8_t *h = ci + pos;

        h[0] = APN_SEG_WRITE;
        h[1] = segs[i].flags;
        st_be16(h + 2, segs[i].len);
        st_be32(h + 4, segs[i].in_index);
        st_be32(h + 8, fz_nonce[segs[i].in_index]);
        st_be32(h + 12, segs[i].seq);
        st_be32(h + 16, segs[i].offset);
        st_be32(h + 20, 0);
        for (unsigned b = 0; b < APN_SEG_PAD(segs[i].len); b++) {
            h[APN_SEG_HDR_LEN + b] = b < segs[i].len ? (uint8_t)(b * 13 + i)
                                                     : 0;
        }
        pos += APN_SEG_HDR_LEN + APN_SEG_PAD(segs[i].len);
    }
    st_be32(ci + pos, apn_crc32c(0, ci, pos));
    total = APN_ETH_HLEN + pos + APN_CRC_LEN;
    if (total < APN_MIN_ETH_FRAME) {
        memset(buf + total, 0, APN_MIN_ETH_FRAME - total);
        total = APN_MIN_ETH_FRAME;
    }
    return total;
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
        { "contig", fz_src_mac, 9, 1, { { AP_CONTIG, 0x10, 0, 0, 16 } } },
        { "pagelist-cross", fz_src_mac, 9, 1,
          { { AP_PAGES, 0x7f0, 0, 0, 32 } } },
        { "seq-narrow", fz_src_mac, FZ_SRC_HOST, 1,
          { { AP_SEQ, 0x100, 0, APN_SEG_F_SEQ, 8 } } },
        { "src-mac", fz_src_mac, 9, 1, { { AP_SRC_MAC, 0xff8, 0, 0, 8 } } },
        { "multiseg", fz_src_mac, FZ_SRC_HOST, 3,
          { { AP_CONTIG, 0, 0, 0, 5 }, { AP_PAGES, 0x1ffc, 0, 0, 4 },
            { AP_SEQ, 0x2f0, 0, APN_SEG_F_SEQ, 16 } } },
    };
    uint8_t buf[256];

    for (size_t i = 0; i < ARRAY_SIZE(seeds); i++) {
        char path[4096];
        size_t len = seed_frame(buf, seeds[i].src_mac, seeds[i].src_host,
                                seeds[i].seg, seeds[i].nseg);
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s.bin", dir, seeds[i].name);
        f = fopen(path, "wb");
        if (!f || fwrite(buf, 1, len, f) != len || fclose(f)) {
            perror(path);
            return 1;
        }
        printf("%s: %zu bytes\n", path, len);
    }
    return 0;
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

static uint64_t fz_drops(void)
{
    uint64_t sum = fz_core->regs.counters[APN_CNT_RX_FILTERED];

    for (unsigned id = APN_CNT_RX_DROP_DISABLED; id <= APN_CNT_RX_DROP_DMA;
         id++) {
        sum += fz_core->regs.counters[id];
    }
    return sum;
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
                st_be16(buf + at, v[rng() % ARRAY_SIZE(v)]);
            }
            break;
        case 5:                         /* fix up a CRC somewhere */
            if (len > APN_ETH_HLEN + 4) {
                size_t at = APN_ETH_HLEN + rng() % (len - APN_ETH_HLEN - 3);
                st_be32(buf + at, apn_crc32c(0, buf + APN_ETH_HLEN,
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
        uint64_t drops = fz_core ? fz_drops() : 0;
        uint64_t segs;

        if (!fz_core) {
            fz_setup();
            drops = fz_drops();
        }
        segs = fz_core->regs.counters[APN_CNT_RX_SEGMENTS];
        fz_one(copy, size);
        if (strict && (fz_drops() != drops ||
                       fz_core->regs.counters[APN_CNT_RX_SEGMENTS] == segs)) {
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
           PRIu64 " segments delivered or dropped, %" PRIu64 " dropped\n",
           files, mutations, fz_core->regs.counters[APN_CNT_RX_FRAMES],
           fz_core->regs.counters[APN_CNT_RX_SEGMENTS], fz_drops());
    apn_core_cleanup(fz_core);
    free(fz_core);
    fake_destroy(&fz_fake);
    return 0;
}

#endif /* !APN_LIBFUZZER */
