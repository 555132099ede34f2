/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the example programs share: one command-line parser (the common options,
 * and each program's own from a table), a message-queue connection set up with
 * the library's CONNECT/ACCEPT (the programs need only the peer's HOST:PORT),
 * event handling without system calls, a cycle counter for timing and a count of
 * the system calls a loop made.
 */
#ifndef APN_EXAMPLE_H
#define APN_EXAMPLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <apertnic/apertnic.h>

/* ---- the command line ------------------------------------------------------------ */

/*
 * What every example's command line has, parsed by apn_ex_parse_args():
 *   -L PORT | -C HOST:PORT   listen on PORT, or connect to HOST:PORT (exactly one)
 *   -t TIMEOUT_S             seconds (default 30; 1..86400)
 *   -d DEV                   device (default APN_DEFAULT_DEVICE)
 *   --untrusted              an endpoint without APN_ENDPOINT_F_TRUSTED
 *   -v, --verbose            say what the set-up does (stderr)
 *   -h, --help               usage on stdout, exit 0
 */
struct apn_ex_args {
	const char *prog;              /* for messages */
	const char *dev;               /* NULL: the default device */
	int listening;                 /* -L (else -C) */
	uint16_t port;                 /* -L PORT; 0 with -C: any */
	uint16_t peer_host, peer_port; /* -C HOST:PORT */
	uint32_t timeout_s;
	int untrusted;
	int verbose;
	char **rest;                   /* arguments after the options (APN_EX_F_ARGS) */
	int nrest;
};

/* What a program's own option parses into. */
enum apn_ex_opt_type {
	APN_EX_NUM,                    /* a number in [min, max] into *val */
	APN_EX_POW2,                   /* a power of two in [min, max] into *val */
	APN_EX_RANGE,                  /* N or MIN-MAX within [min, max]: *val, *val_hi */
	APN_EX_WORD,                   /* one of `words` ("mq|raw"): its index into *val */
};

/* One option of a program's own; a table of them ends with letter 0. */
struct apn_ex_opt {
	char letter;
	const char *arg;               /* its argument's name in messages: "COUNT" */
	enum apn_ex_opt_type type;
	uint32_t *val, *val_hi;
	uint32_t min, max;
	const char *words;             /* APN_EX_WORD */
	const char *help;              /* usage text; '\n' continues on an indented line */
};

/* A program's command line: its own options and the text of its usage. */
struct apn_ex_cmd {
	const char *prog;
	const char *synopsis;          /* forms after "usage: PROG ", '\n' between; a line
					* starting with a blank continues a form; the
					* common options go to a form's "[COMMON]" or end */
	const char *listen_help;       /* what -L PORT does */
	const char *connect_help;      /* what -C HOST:PORT does */
	const char *timeout_help;      /* what -t bounds (NULL: connecting and each reply) */
	const struct apn_ex_opt *opts; /* NULL: none */
	unsigned flags;                /* APN_EX_F_* */
	const char *epilogue;          /* output and exit codes, at the end of the usage */
};

#define APN_EX_F_ARGS  (1u << 0)       /* arguments after the options are the program's */

/*
 * Parses argv into *a (and the program's own options into their variables, which
 * hold their defaults). Returns -1 to go on, else the exit status: 0 after --help,
 * 2 after printing why the command line is wrong and the usage.
 */
int apn_ex_parse_args(const struct apn_ex_cmd *cmd, int argc, char **argv,
		      struct apn_ex_args *a);

/* Prints "PROG: MSG[: ARG]" and the usage on stderr; returns 2 (the exit status). */
int apn_ex_bad_usage(const struct apn_ex_cmd *cmd, const char *msg, const char *arg);

/* ---- the connection ------------------------------------------------------------ */

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
	int untrusted, verbose;
	int open;                      /* what apn_ex_close() must undo: 1 .. 6 */
	unsigned events;               /* events apn_ex_events() saw */
	double cpu_us;                 /* cycles per microsecond */
	unsigned timeout_s;            /* -t */
	uint64_t timeout_cycles;       /* the same in cycles; 0: wait forever */
};

/* spins of a waiting loop between looks at events and the clock */
#define APN_EX_CHECK_EVERY 1024

/* apn_ex_events() prints this many events, then one "APN-EVENTS more not shown" */
#define APN_EX_LOG_EVENTS 8

/*
 * Opens a's device, creates an endpoint on a's -L port (-C: any port), trusted
 * unless --untrusted, with attr's other attributes (NULL: defaults), registers
 * `size` bytes (a power of two, >= one page) and makes an incoming aperture of
 * it, an outgoing aperture of the same size (aimed later) and the message queue
 * on both; measures cpu_us and sets the timeout from -t. Prints the reason and
 * returns 1 on failure, else 0.
 */
int apn_ex_open(struct apn_ex_conn *c, const struct apn_ex_args *a,
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

/* The one a asks for: apn_ex_accept() after -L, apn_ex_connect() after -C, within -t. */
int apn_ex_handshake(struct apn_ex_conn *c, const struct apn_ex_args *a);

/*
 * Waits without system calls for the next message of the queue (looking at events
 * now and then) and copies it to buf: its length, or -errno (-ETIMEDOUT after
 * c->timeout_cycles without one).
 */
int apn_ex_recv(struct apn_ex_conn *c, void *buf, size_t max);

/* apn_mq_send(), waiting while the peer's ring is full. 0 or -errno. */
int apn_ex_send(struct apn_ex_conn *c, const void *buf, size_t len);

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

#endif /* APN_EXAMPLE_H */
