// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * apn-recv: expose a buffer through an incoming aperture, print where it is
 * (APN-READY), wait until a sender's "done" word at offset SIZE-4 turns nonzero and
 * print what arrived (APN-RECEIVED).
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <apertnic/apertnic.h>
#include "apn_tool.h"

#define SPINS_PER_SLEEP 64

static void usage(FILE *f)
{
	fprintf(f,
		"usage: apn-recv [-d DEV] [-s SIZE] [-n NONCE] [-t TIMEOUT_S] [-l LEN]\n"
		"  -d DEV      device (default " APN_DEFAULT_DEVICE ")\n"
		"  -s SIZE     incoming aperture bytes, power of two >= 64 (default 4096)\n"
		"  -n NONCE    use this nonce (default: random, chosen by the driver)\n"
		"  -t TIMEOUT  seconds to wait for the data (default 30, 0 = forever)\n"
		"  -l LEN      expected message length; the done word must equal it\n"
		"Prints 'APN-READY host=H in_index=I nonce=0xN', waits until the 32-bit\n"
		"little-endian word at SIZE-4 is nonzero, prints\n"
		"'APN-RECEIVED len=L hex=... text=...' and exits 0 (1 on error/timeout).\n");
}

static int bad_usage(const char *msg, const char *arg)
{
	if (msg)
		fprintf(stderr, "apn-recv: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
	usage(stderr);
	return 2;
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "apn-recv: %s: %s\n", what, strerror(-err));
	return 1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__asm__ __volatile__("pause" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

/* Returns the done word once nonzero, or 0 after timeout_s (0: never). */
static uint32_t wait_done(const uint32_t *word, double timeout_s)
{
	const struct timespec ms = { 0, 1000000 };
	double deadline = now_s() + timeout_s;

	for (;;) {
		int i;

		for (i = 0; i < SPINS_PER_SLEEP; i++) {
			/* acquire: the data DMA'd before the done word is visible after it */
			uint32_t v = __atomic_load_n(word, __ATOMIC_ACQUIRE);

			if (v)
				return v;
			cpu_relax();
		}
		nanosleep(&ms, NULL);
		if (timeout_s > 0 && now_s() >= deadline)
			return __atomic_load_n(word, __ATOMIC_ACQUIRE);
	}
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	uint32_t size = 4096, nonce = 0, len = 0, timeout = 30, flags = 0;
	struct apn_device dev;
	struct apn_device_info info;
	struct apn_endpoint ep;
	struct apn_mr mr;
	struct apn_in_aperture ia;
	struct apn_ready ready;
	size_t maplen;
	long pg = sysconf(_SC_PAGESIZE);
	unsigned char *buf;
	char line[128];
	uint32_t done;
	int opt, r, ret = 1;

	while ((opt = getopt(argc, argv, "d:s:n:t:l:")) != -1) {
		switch (opt) {
		case 'd':
			path = optarg;
			break;
		case 's':
			if (apn_tool_parse_u32(optarg, 1u << 30, &size) || size < 64 ||
			    (size & (size - 1)))
				return bad_usage("bad size (power of two, 64 .. 1 GiB)", optarg);
			break;
		case 'n':
			if (apn_tool_parse_u32(optarg, UINT32_MAX, &nonce))
				return bad_usage("bad nonce", optarg);
			flags |= APN_IA_F_NONCE;
			break;
		case 't':
			if (apn_tool_parse_u32(optarg, 1000000, &timeout))
				return bad_usage("bad timeout", optarg);
			break;
		case 'l':
			if (apn_tool_parse_u32(optarg, UINT32_MAX, &len) || !len)
				return bad_usage("bad length", optarg);
			break;
		default:
			return bad_usage(NULL, NULL);
		}
	}
	if (optind != argc)
		return bad_usage("unexpected argument", argv[optind]);
	if (len > size - 4)
		return bad_usage("length does not fit SIZE - 4", NULL);

	r = apn_device_open(&dev, path);
	if (r)
		return fail(path ? path : APN_DEFAULT_DEVICE, r);
	r = apn_device_info(&dev, &info);
	if (r) {
		fail("device info", r);
		goto out_dev;
	}
	r = apn_endpoint_create(&ep, &dev, 0);
	if (r) {
		fail("create endpoint", r);
		goto out_dev;
	}

	if (pg <= 0)
		pg = 4096;
	maplen = ((size_t)size + (size_t)pg - 1) & ~((size_t)pg - 1);
	buf = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		fail("mmap buffer", -errno);
		goto out_ep;
	}
	madvise(buf, maplen, MADV_DONTFORK);   /* advice only; keep going if refused */
	memset(buf, 0, maplen);
	r = apn_mr_reg(&mr, &ep, buf, maplen);
	if (r) {
		fail(r == -ENOMEM || r == -EPERM ?
		     "register memory (check ulimit -l / RLIMIT_MEMLOCK)" : "register memory", r);
		goto out_buf;
	}
	r = apn_in_aperture_create(&ia, &ep, &mr, 0, size, flags, nonce);
	if (r) {
		fail("create incoming aperture", r);
		goto out_mr;
	}

	ready.host = info.host_id;
	ready.in_index = ia.in_index;
	ready.nonce = ia.nonce;
	apn_ready_format(line, sizeof(line), &ready);
	printf("%s\n", line);
	fflush(stdout);

	done = wait_done((const uint32_t *)(buf + size - 4), timeout);
	done = le32toh(done);
	if (!done) {
		fprintf(stderr, "apn-recv: timed out after %u s waiting for data\n", timeout);
		goto out_ia;
	}
	{
		uint32_t n = done <= size - 4 ? done : size - 4;
		char *hex = malloc(2 * (size_t)n + 1), *text = malloc((size_t)n + 1);

		if (!hex || !text) {
			fprintf(stderr, "apn-recv: out of memory\n");
			free(hex);
			free(text);
			goto out_ia;
		}
		apn_tool_hex(hex, buf, n);
		apn_tool_text(text, buf, n);
		printf(APN_RECEIVED_TAG " len=%u hex=%s text=%s\n", done, hex, text);
		fflush(stdout);
		free(hex);
		free(text);
	}
	if (done > size - 4)
		fprintf(stderr, "apn-recv: done word %u exceeds SIZE - 4 = %u\n", done, size - 4);
	else if (len && done != len)
		fprintf(stderr, "apn-recv: expected %u bytes, done word says %u\n", len, done);
	else
		ret = 0;

out_ia:
	r = apn_in_aperture_destroy(&ia);
	if (r) {
		fail("destroy incoming aperture", r);
		ret = 1;
	}
out_mr:
	r = apn_mr_dereg(&mr);
	if (r) {
		fail("deregister memory", r);
		ret = 1;
	}
out_buf:
	munmap(buf, maplen);
out_ep:
	apn_endpoint_destroy(&ep);
out_dev:
	apn_device_close(&dev);
	return ret;
}
