/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Helpers shared by the guest benchmark tools (tests/bench/, one .c file each): time without
 * system calls, what a process and its guest spent (/proc), statistics and
 * option parsing. Header only: every tool is one static executable.
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

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

#endif /* BENCH_UTIL_H */
