/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Stand-in for QEMU's qemu/log.h. qemu_log_mask() counts its calls per mask
 * bit so tests can assert that a guest error was (or was not) logged; it
 * prints only when the environment variable APN_TEST_LOG is set.
 */
#ifndef APN_STUB_QEMU_LOG_H
#define APN_STUB_QEMU_LOG_H

#include "qemu/osdep.h"

/* Same values as QEMU's include/qemu/log.h. */
#define LOG_GUEST_ERROR     (1 << 11)
#define LOG_UNIMP           (1 << 10)

/* Calls of qemu_log_mask() by mask, since the last qemu_log_counts_reset(). */
extern unsigned qemu_log_guest_errors;
extern unsigned qemu_log_unimp;
extern unsigned qemu_log_other;

void qemu_log_mask(int mask, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
void qemu_log_counts_reset(void);

#endif /* APN_STUB_QEMU_LOG_H */
