/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * apertnic: byte-order helpers for wire frames (big-endian) and in-memory
 * tables and queues (little-endian), shared by the device core, its unit
 * tests and its fuzzer. Unsigned results throughout (QEMU's ldl_*_p return
 * int), and no dependency beyond <stdint.h>, so the core also builds outside
 * QEMU.
 */
#ifndef HW_NET_APERTNIC_BYTES_H
#define HW_NET_APERTNIC_BYTES_H

#include <stdint.h>

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

static inline void put_le_sized(uint8_t *p, uint64_t v, unsigned size)
{
    switch (size) {
    case 8:
        put_le32(p + 4, v >> 32);
        /* fall through */
    case 4:
        put_le32(p, v);
        break;
    case 2:
        p[1] = v >> 8;
        /* fall through */
    default:
        p[0] = v;
        break;
    }
}

static inline void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = v;
    p[1] = v >> 8;
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
    put_le32(p, (uint32_t)v);
    put_le32(p + 4, (uint32_t)(v >> 32));
}

#endif /* HW_NET_APERTNIC_BYTES_H */
