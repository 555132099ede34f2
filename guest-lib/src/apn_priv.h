/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Internal to libapertnic: helpers shared by its source files. Include after
 * apertnic.h (uapi), apertnic_hw.h and <apertnic/apertnic.h>.
 */
#ifndef APN_PRIV_H
#define APN_PRIV_H

#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <sys/ioctl.h>

#define APN_EXPORT __attribute__((visibility("default")))

static inline int apn__neg_errno(void)
{
	return errno ? -errno : -EIO;
}

static inline int apn__ioctl(int fd, unsigned long req, void *arg)
{
	int r;

	do
		r = ioctl(fd, req, arg);
	while (r < 0 && errno == EINTR);
	return r < 0 ? apn__neg_errno() : 0;
}

static inline int apn__is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* The user page is little-endian device memory: one volatile 32-bit access each. */
static inline volatile uint32_t *apn__ureg(void *page, unsigned off)
{
	return (volatile uint32_t *)((char *)page + off);
}

static inline void apn__ureg_write(void *page, unsigned off, uint32_t v)
{
	*apn__ureg(page, off) = htole32(v);
}

static inline uint32_t apn__ureg_read(void *page, unsigned off)
{
	return le32toh(*apn__ureg(page, off));
}

/* Milliseconds on CLOCK_MONOTONIC (apertnic.c). */
int64_t apn__now_ms(void);

#endif /* APN_PRIV_H */
