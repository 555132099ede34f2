/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Minimal stand-in for QEMU's qemu/osdep.h, enough to build the apertnic
 * device core (hw/net/apertnic/apertnic_core.c) as a host program for unit
 * tests and fuzzing. Only standard headers: the core must not grow a
 * dependency on the rest of QEMU.
 */
#ifndef APN_STUB_QEMU_OSDEP_H
#define APN_STUB_QEMU_OSDEP_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef likely
#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(x) (sizeof(x) / sizeof((x)[0]))
#endif

#ifndef G_GNUC_PRINTF
#define G_GNUC_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#endif

#endif /* APN_STUB_QEMU_OSDEP_H */
