/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Out-of-QEMU support for the apertnic core: the counting qemu_log_mask()
 * and the printer behind the generated trace stubs.
 */
#include "qemu/osdep.h"
#include "qemu/log.h"

unsigned qemu_log_guest_errors;
unsigned qemu_log_unimp;
unsigned qemu_log_other;

/* Set from APN_TEST_TRACE before main(); read by the generated trace_*(). */
int apn_test_trace;

static int apn_test_log = -1;

static void __attribute__((constructor)) apn_stub_init(void)
{
    apn_test_trace = getenv("APN_TEST_TRACE") != NULL;
    apn_test_log = getenv("APN_TEST_LOG") != NULL;
}

void qemu_log_counts_reset(void)
{
    qemu_log_guest_errors = 0;
    qemu_log_unimp = 0;
    qemu_log_other = 0;
}

void qemu_log_mask(int mask, const char *fmt, ...)
{
    va_list ap;

    if (mask & LOG_GUEST_ERROR) {
        qemu_log_guest_errors++;
    }
    if (mask & LOG_UNIMP) {
        qemu_log_unimp++;
    }
    if (!(mask & (LOG_GUEST_ERROR | LOG_UNIMP))) {
        qemu_log_other++;
    }
    if (apn_test_log > 0) {
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    }
}

void apn_trace_printf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

void apn_trace_printf(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}
