/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the example programs share: a message-queue connection set up with the
 * library's user-level CONNECT/ACCEPT (the programs need only the peer's
 * HOST:PORT), event handling without system calls, a cycle counter for timing and
 * a count of the system calls a loop made.
 */
#ifndef APN_EXAMPLE_H
#define APN_EXAMPLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <apertnic/apertnic.h>

/* One side of a connection: endpoint, memory, apertures, the queue on them. */
struct apn_ex_conn {
	const char *prog;              /* for messages */
	struct apn_device dev;
	struct apn_endpoint ep;
	unsigned char *buf;            /* our registered memory: the incoming aperture */
	size_t buf_len;
	struct apn_mr mr;
	struct apn_in_aperture ia;
	struct apn_out_aperture oa;
	struct apn_msg_info peer;      /* its CONNECT or ACCEPT */
	struct apn_mq mq;
	int listening;
	int open;                      /* what apn_ex_close() must undo: 1 .. 6 */
	unsigned events;               /* events apn_ex_events() saw */
};

/* apn_ex_events() prints this many events, then one "APN-EVENTS more not shown" */
#define APN_EX_LOG_EVENTS 8

/*
 * Opens `dev` (NULL: default), creates a trusted endpoint on `port` (0: any, for a
 * connector), registers `size` bytes (a power of two, >= one page) and makes an
 * incoming aperture of it, an outgoing aperture of the same size (aimed later) and
 * the message queue on both. Prints the reason and returns 1 on failure, else 0.
 */
int apn_ex_open(struct apn_ex_conn *c, const char *prog, const char *dev, uint16_t port,
		uint32_t size);

/* The same with more endpoint attributes (port, queue sizes; trusted is added). */
int apn_ex_open_attr(struct apn_ex_conn *c, const char *prog, const char *dev,
		     const struct apn_endpoint_attr *attr, uint32_t size);

/* Releases everything apn_ex_open() made (close the queue first: apn_mq_close()). */
void apn_ex_close(struct apn_ex_conn *c);

/*
 * apn_endpoint_listen() / apn_endpoint_dial() with messages: "APN-READY host=H port=P"
 * before listening, "APN-ACCEPTED ..." / "APN-CONNECTED ..." after. timeout_s 0:
 * forever. Return 0, or 1 after printing why.
 */
int apn_ex_accept(struct apn_ex_conn *c, unsigned timeout_s);
int apn_ex_connect(struct apn_ex_conn *c, uint16_t host, uint16_t port, unsigned timeout_s);

/*
 * Takes the endpoint's events without a system call: answers a repeated CONNECT of
 * our peer, hands failures to apn_mq_handle_event() and prints them (APN-TX-ERROR
 * ..., APN-OVERFLOW ...). Returns 0, or the queue's error (-ECONNRESET).
 */
int apn_ex_events(struct apn_ex_conn *c);

/* Prints "<prog>: <what>: <strerror>" for a negative errno; returns 1. */
int apn_ex_fail(const struct apn_ex_conn *c, const char *what, int err);

/* ---- timing without system calls ------------------------------------------------ */

/* Nanoseconds from clock_gettime(): apn_ex_cycles() where there is no RDTSC. */
uint64_t apn_ex_cycles_slow(void);

/* The CPU's cycle counter (x86 RDTSC; clock_gettime() elsewhere). */
static inline uint64_t apn_ex_cycles(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return __builtin_ia32_rdtsc();
#else
	return apn_ex_cycles_slow();
#endif
}

/* Cycles per microsecond, measured against CLOCK_MONOTONIC over ~100 ms (syscalls). */
double apn_ex_cycles_per_us(void);

/* ---- counting system calls ---------------------------------------------------------- */

/*
 * Counts this process's system calls between start and stop with a perf counter on
 * the raw_syscalls:sys_enter tracepoint (needs tracefs mounted at /sys/kernel/tracing
 * or debugfs at /sys/kernel/debug, and perf permission), less the one the stop makes
 * itself; and its context switches (getrusage). start and stop are system calls
 * themselves: call them outside the loop being measured.
 */
struct apn_ex_sysc {
	int fd;                        /* -1: no syscall counter (why in `why`) */
	uint64_t overhead;
	long nvcsw, nivcsw;            /* at start */
	const char *why;
	/* results of stop */
	long long syscalls;            /* -1 when not counted */
	long vol_ctxsw, invol_ctxsw;
};

void apn_ex_sysc_open(struct apn_ex_sysc *s);
void apn_ex_sysc_start(struct apn_ex_sysc *s);
void apn_ex_sysc_stop(struct apn_ex_sysc *s);
void apn_ex_sysc_close(struct apn_ex_sysc *s);
/* " syscalls=N vol_ctxsw=N invol_ctxsw=N" (syscalls=n/a when not counted) */
void apn_ex_sysc_print(FILE *f, const struct apn_ex_sysc *s);

/* ---- statistics ------------------------------------------------------------------------ */

/* Sorts v[0..n) and returns the q-quantile (0 <= q <= 1, nearest rank). */
uint64_t apn_ex_quantile(uint64_t *v, size_t n, double q);

/* Parses "HOST:PORT" (as the tools do). Returns 0 or -EINVAL. */
int apn_ex_parse_hostport(const char *s, uint16_t *host, uint16_t *port);

/* Parses an unsigned decimal (or 0x hex) number <= max. Returns 0 or -EINVAL. */
int apn_ex_parse_u32(const char *s, uint32_t max, uint32_t *out);

#endif /* APN_EXAMPLE_H */
