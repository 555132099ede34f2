/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Test hooks of tests/fake_dev.c (the stand-in for /dev/apertnicN): what the
 * unit tests do in place of a peer for kernel connection management. Include
 * after the uapi header.
 */
#ifndef APN_FAKE_DEV_H
#define APN_FAKE_DEV_H

#include <stdint.h>

/*
 * Holds a CONNECT from <host:port> offering in_index for the endpoint of fd (a
 * file of /fake/apertnic0), as the kernel would after one arrived: the next
 * APN_IOC_ACCEPT may take it. Returns 0, -EBADF (not a fake file), -ENOSPC.
 */
int fake_dev_hold_connect(int fd, uint16_t host, uint16_t port, uint32_t in_index);

/* APN_IOC_CONNECT calls on fd that passed the checks; the last one in *last. */
unsigned fake_dev_kconnects(int fd, struct apn_conn_connect *last);

#endif /* APN_FAKE_DEV_H */
