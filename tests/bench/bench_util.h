/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Helpers shared by the benchmark tools (tests/bench/, one .c file each): time without
 * system calls, what a process and its guest spent (/proc), statistics, the
 * command line, the run's time limit and socket set-up. Header only: every tool
 * is one static executable (floor.c is built on the host by a plain gcc call).
 *
 * Timing: inside a measured loop the tools read the TSC (rdtsc is not a system
 * call; under TCG QEMU returns the host's TSC) and convert with a rate measured
 * against CLOCK_MONOTONIC around the loop, so the loop itself makes no system
 * call it does not count. (A TCG guest's clocksource may not be the TSC, and
 * then clock_gettime() would be a real system call.)
 *
 * Per-message costs: the tools count the system calls they make in the loop
 * themselves, read voluntary_ctxt_switches from /proc/self/status and sum the
 * /proc/interrupts lines of the NIC under test (those whose name contains a
 * given string: "virtio" for virtio-net, "apertnic" for apertnic) before and
 * after the loop.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- time ---------------------------------------------------------------------- */

static inline uint64_t bench_tsc(void)
{
#if defined(__x86_64__) || defined(__i386__)
	uint32_t lo, hi;

	__asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
#else
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
}

static inline double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* TSC ticks per microsecond, measured over ~20 ms (once per process). */
static double bench_tsc_per_us;

static inline void bench_calibrate(void)
{
	double t0 = bench_now(), t1;
	uint64_t c0 = bench_tsc(), c1;
	struct timespec d = { 0, 20000000 };

	nanosleep(&d, NULL);
	t1 = bench_now();
	c1 = bench_tsc();
	bench_tsc_per_us = (double)(c1 - c0) / ((t1 - t0) * 1e6);
	if (bench_tsc_per_us <= 0)
		bench_tsc_per_us = 1000;
}

static inline double bench_us(uint64_t ticks)
{
	return (double)ticks / bench_tsc_per_us;
}

static inline uint64_t bench_ticks(double us)
{
	return (uint64_t)(us * bench_tsc_per_us);
}

/* ---- what the process and the guest spent ------------------------------------------ */

/* voluntary_ctxt_switches of this process (0 if unreadable). */
static inline unsigned long long bench_ctxsw(void)
{
	char line[256];
	unsigned long long v = 0;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "voluntary_ctxt_switches: %llu", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* Does text contain one of the '|'-separated alternatives of match? */
static inline int bench_match(const char *text, const char *match)
{
	while (*match) {
		const char *bar = strchr(match, '|');
		size_t len = bar ? (size_t)(bar - match) : strlen(match);

		if (len && memmem(text, strlen(text), match, len))
			return 1;
		if (!bar)
			break;
		match = bar + 1;
	}
	return 0;
}

/*
 * Sum of the per-CPU counts of every /proc/interrupts line whose description
 * (the text after the counts) contains `match` (or one of its '|'-separated
 * alternatives, e.g. "apertnic|apn"); all numbered IRQ lines if match is NULL
 * or empty.
 */
static inline unsigned long long bench_irqs(const char *match)
{
	char line[1024];
	unsigned long long sum = 0;
	int ncpu = 0;
	FILE *f = fopen("/proc/interrupts", "r");

	if (!f)
		return 0;
	if (fgets(line, sizeof(line), f))
		for (char *p = strtok(line, " \t\n"); p; p = strtok(NULL, " \t\n"))
			ncpu++;
	while (fgets(line, sizeof(line), f)) {
		char *p = line, *end;
		unsigned long long here = 0;

		while (*p == ' ')
			p++;
		if (*p < '0' || *p > '9')
			continue; /* NMI, LOC, ...: not a device's */
		p = strchr(p, ':');
		if (!p)
			continue;
		p++;
		for (int c = 0; c < ncpu; c++) {
			unsigned long long v = strtoull(p, &end, 10);

			if (end == p)
				break;
			here += v;
			p = end;
		}
		if (!match || !*match || bench_match(p, match))
			sum += here;
	}
	fclose(f);
	return sum;
}

struct bench_cost {
	unsigned long long ctxsw, irqs;
};

static inline void bench_cost_start(struct bench_cost *c, const char *irq_match)
{
	c->irqs = bench_irqs(irq_match);
	c->ctxsw = bench_ctxsw();
}

/* Turns *c into the differences since bench_cost_start(). */
static inline void bench_cost_end(struct bench_cost *c, const char *irq_match)
{
	c->ctxsw = bench_ctxsw() - c->ctxsw;
	c->irqs = bench_irqs(irq_match) - c->irqs;
}

/* ---- statistics ------------------------------------------------------------------- */

static int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Sorts v[0..n-1] and returns its q-quantile (nearest rank), n > 0. */
static inline double bench_quantile(double *v, size_t n, double q)
{
	size_t k;

	qsort(v, n, sizeof(*v), bench_cmp_double);
	k = (size_t)(q * (double)n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

/* ---- options ---------------------------------------------------------------------- */

/* Parses a whole decimal number in [min, max]; returns 0 or -1. */
static inline int bench_parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Parses "a,b,c" sizes in [min, max] into v (at most cap); returns the count or -1. */
static inline int bench_parse_sizes(const char *s, long min, long max, long *v, int cap)
{
	char buf[512], *save = NULL;
	int n = 0;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	for (char *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		if (n == cap || bench_parse_long(p, min, max, &v[n]))
			return -1;
		n++;
	}
	return n ? n : -1;
}

/* ---- the command line ------------------------------------------------------------- */

#define BENCH_MAX_SIZES 32

/*
 * The options the tools share, parsed by bench_parse_args(). A tool presets its
 * defaults and limits here, names the shared options it takes by their letters
 * and parses its own in a callback:
 *   -s           server (receiver)           -c HOST     client of HOST
 *   -p, -P PORT  port, 1..65535              -t SECS     whole-run limit, 1..86400
 *   -T SECS      measuring window, 1..3600   -n, -r N    rounds, 1..10000000
 *   -w N         warm-up rounds, 0..10000000 -z SIZES    comma-separated sizes
 *   -l LABEL     path= field of the output   -i MATCH    /proc/interrupts lines
 *   -q           stop the server at the end  -h          the usage
 */
struct bench_args {
	const char *prog;
	void (*usage)(void);           /* prints the usage and exits 2 */
	long size_min, size_max;       /* each -z size */
	int positional;                /* arguments after the options are the tool's */
	/* what the command line says; the tool's defaults until it does */
	int server, quit;
	const char *host, *label, *irq;
	long port, limit, window, rounds, warmup;
	long sizes[BENCH_MAX_SIZES];
	int nsizes;
};

/* A tool's own option: 0, or -1 if arg is bad (or exit through bench_opt_long()). */
typedef int bench_own_fn(const struct bench_args *a, void *ctx, int opt, const char *arg);

/* For messages from bench_die() and the time limit; set by bench_parse_args(). */
static const char *bench_prog = "bench";

/* "PROG: bad -X WHAT: ARG" (opt 0: an argument, "bad WHAT: ARG"), then the usage (exits 2). */
static inline void bench_bad_option(const struct bench_args *a, int opt, const char *what,
				    const char *arg)
{
	if (opt)
		fprintf(stderr, "%s: bad -%c%s%s: %s\n", a->prog, opt, what ? " " : "",
			what ? what : "", arg);
	else
		fprintf(stderr, "%s: bad %s: %s\n", a->prog, what ? what : "argument", arg);
	a->usage();
	exit(2);        /* in case usage() returns */
}

static inline void bench_opt_long(const struct bench_args *a, int opt, const char *arg,
				  const char *what, long min, long max, long *out)
{
	char why[96];

	if (bench_parse_long(arg, min, max, out)) {
		snprintf(why, sizeof(why), "%s (%ld..%ld)", what, min, max);
		bench_bad_option(a, opt, why, arg);
	}
}

/*
 * Parses argv: the shared options named in `common` (letters), and the tool's own
 * (`own`, a getopt string; NULL: none) through own_fn(ctx, letter, optarg). Prints
 * the usage and exits 2 on anything wrong, including arguments after the options
 * (unless a->positional) and, when the tool takes -s, not exactly one of -s and
 * -c HOST. Returns the index of the first argument after the options.
 */
static inline int bench_parse_args(struct bench_args *a, int argc, char **argv,
				   const char *common, const char *own, bench_own_fn *own_fn,
				   void *ctx)
{
	static const char with_arg[] = "cpPtTnrwzli";
	char optstring[64];
	size_t n = 0;
	int opt;

	bench_prog = a->prog;
	for (const char *c = common; *c && n + 3 < sizeof(optstring); c++) {
		optstring[n++] = *c;
		if (strchr(with_arg, *c))
			optstring[n++] = ':';
	}
	optstring[n++] = 'h';
	optstring[n] = '\0';
	if (own && n + strlen(own) < sizeof(optstring))
		strcat(optstring, own);
	while ((opt = getopt(argc, argv, optstring)) != -1) {
		if (own && opt != ':' && opt != '?' && strchr(own, opt)) {
			if (own_fn(a, ctx, opt, optarg))
				bench_bad_option(a, opt, NULL, optarg ? optarg : "");
			continue;
		}
		switch (opt) {
		case 's':
			a->server = 1;
			break;
		case 'c':
			a->host = optarg;
			break;
		case 'p':
		case 'P':
			bench_opt_long(a, opt, optarg, "PORT", 1, 65535, &a->port);
			break;
		case 't':
			bench_opt_long(a, opt, optarg, "SECS", 1, 86400, &a->limit);
			break;
		case 'T':
			bench_opt_long(a, opt, optarg, "SECS", 1, 3600, &a->window);
			break;
		case 'n':
		case 'r':
			bench_opt_long(a, opt, optarg, "ROUNDS", 1, 10000000, &a->rounds);
			break;
		case 'w':
			bench_opt_long(a, opt, optarg, "WARMUP", 0, 10000000, &a->warmup);
			break;
		case 'z':
			a->nsizes = bench_parse_sizes(optarg, a->size_min, a->size_max, a->sizes,
						      BENCH_MAX_SIZES);
			if (a->nsizes < 0) {
				char why[96];

				snprintf(why, sizeof(why), "SIZES (up to %d of %ld..%ld, comma-separated)",
					 BENCH_MAX_SIZES, a->size_min, a->size_max);
				bench_bad_option(a, opt, why, optarg);
			}
			break;
		case 'l':
			a->label = optarg;
			break;
		case 'i':
			a->irq = optarg;
			break;
		case 'q':
			a->quit = 1;
			break;
		default:        /* -h, or getopt has said what is wrong */
			a->usage();
			exit(2);
		}
	}
	if (optind != argc && !a->positional) {
		fprintf(stderr, "%s: unexpected argument: %s\n", a->prog, argv[optind]);
		a->usage();
		exit(2);
	}
	if (strchr(common, 's') && a->server == !!a->host) {
		fprintf(stderr, "%s: need exactly one of -s and -c HOST\n", a->prog);
		a->usage();
		exit(2);
	}
	return optind;
}

/* ---- the run ---------------------------------------------------------------------- */

/* what the SIGALRM handler writes, made before (it may only write and exit) */
static char bench_limit_msg[96];
static size_t bench_limit_len;

static void bench_on_alarm(int sig)
{
	(void)sig;
	if (write(2, bench_limit_msg, bench_limit_len) < 0) {
		/* nothing left to do */
	}
	_exit(3);
}

/*
 * Bounds the whole run: SIGALRM (exit 3, "PROG: time limit reached") after -t
 * SECS, or by default 3600 s for a server and client_s for a client.
 */
static inline void bench_time_limit(const struct bench_args *a, long client_s)
{
	snprintf(bench_limit_msg, sizeof(bench_limit_msg), "%s: time limit reached\n", a->prog);
	bench_limit_len = strlen(bench_limit_msg);
	signal(SIGALRM, bench_on_alarm);
	alarm((unsigned)(a->limit ? a->limit : a->server ? 3600 : client_s));
}

/* "PROG: WHAT: strerror(errno)", exit 1. */
static inline void __attribute__((noreturn)) bench_die(const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", bench_prog, what, strerror(errno));
	exit(1);
}

/* Writes all len bytes (again after EINTR and short writes); 0 or -1. */
static inline int bench_write_all(int fd, const void *buf, size_t len)
{
	const char *s = buf;

	while (len) {
		ssize_t w = write(fd, s, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		s += w;
		len -= (size_t)w;
	}
	return 0;
}

/* ---- sockets ------------------------------------------------------------------------ */

/* IPv4 address HOST and port into *sa; 0, or -1 after saying it is not one. */
static inline int bench_ipv4(const char *host, long port, struct sockaddr_in *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &sa->sin_addr) == 1)
		return 0;
	fprintf(stderr, "%s: bad IPv4 address %s\n", bench_prog, host);
	return -1;
}

/*
 * Server side: a socket of `type` (SOCK_DGRAM or SOCK_STREAM) bound to PORT on
 * any address; a stream socket reuses the address and listens. Dies on failure.
 */
static inline int bench_listen(int type, long port)
{
	struct sockaddr_in me = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int one = 1, fd = socket(AF_INET, type, 0);

	if (fd < 0)
		bench_die("socket");
	if (type == SOCK_STREAM)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&me, sizeof(me)))
		bench_die("bind");
	if (type == SOCK_STREAM && listen(fd, 4))
		bench_die("listen");
	return fd;
}

/* Client side: a socket of `type` connected to *to; dies ("connect WHAT") on failure. */
static inline int bench_dial(int type, const struct sockaddr_in *to, const char *what)
{
	char why[64];
	int fd = socket(AF_INET, type, 0);

	if (fd < 0)
		bench_die("socket");
	if (connect(fd, (const struct sockaddr *)to, sizeof(*to))) {
		snprintf(why, sizeof(why), "connect%s%s", what ? " " : "", what ? what : "");
		bench_die(why);
	}
	return fd;
}

#endif /* BENCH_UTIL_H */
