// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * apn-pingpong: round-trip latency between two processes on two hosts, with no
 * system call in the measured loop.
 *
 *   B$ apn-pingpong -L 5000                 echo server (prints APN-READY)
 *   A$ apn-pingpong -C 2:5000 -n 1000 -S 64
 *
 * The connection is set up at user level (CONNECT/ACCEPT, apn_endpoint_dial() and
 * apn_endpoint_listen()); then each ping is
 *   -m mq   apn_mq_send() of S bytes and apn_mq_recv() of the echo (message queue);
 *   -m raw  S bytes stored through the outgoing aperture at offset 64, then a
 *           sequence number and the length at offset 0, a fence, and a poll of our
 *           own memory for the echo's sequence number (the peer does the same back).
 * The client prints the latency distribution and what the loop cost in system calls
 * (a perf counter on the sys_enter tracepoint: 0 by construction) and context
 * switches.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apn_example.h"

#define PROG         "apn-pingpong"
#define RAW_DATA     64u          /* raw mode: payload offset; sequence, length at 0 */
#define RAW_STOP     0xffffffffu  /* raw mode: the client's last sequence word */
#define CHECK_EVERY  1024         /* spins between looks at events and the clock */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " -L PORT [-m mq|raw] [-s APERTURE] [-t TIMEOUT_S] [-d DEV]\n"
		"       " PROG " -C HOST:PORT [-m mq|raw] [-n COUNT] [-S BYTES] [-w WARMUP]\n"
		"                    [-s APERTURE] [-t TIMEOUT_S] [-d DEV]\n"
		"  -L PORT       echo server: listen on UDP PORT (prints APN-READY host=H port=P)\n"
		"  -C HOST:PORT  client: connect to the server at cluster host HOST, PORT\n"
		"  -m MODE       mq (message queue, default) or raw (aperture stores and a\n"
		"                polled sequence word); both sides must agree\n"
		"  -n COUNT      measured round trips (default 1000)\n"
		"  -S BYTES      payload per message (default 64)\n"
		"  -w WARMUP     round trips before measuring (default 100)\n"
		"  -s APERTURE   bytes per aperture, power of two 4096..65536 (default 8192);\n"
		"                both sides must agree\n"
		"  -t TIMEOUT    seconds to connect and to wait for any one reply (default 30)\n"
		"  -d DEV        device (default " APN_DEFAULT_DEVICE ")\n"
		"Client prints: APN-PINGPONG mode=M count=N size=S min_us= median_us= p99_us=\n"
		"max_us= syscalls= vol_ctxsw= invol_ctxsw= (syscalls: made inside the loop).\n"
		"Both sides need trusted endpoints (root, or the driver's trust_users=1).\n"
		"Exit: 0 ok, 1 error or timeout, 2 usage.\n");
}

static int bad_usage(const char *msg, const char *arg)
{
	if (msg)
		fprintf(stderr, PROG ": %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
	usage(stderr);
	return 2;
}

struct pp {
	struct apn_ex_conn c;
	int raw;
	uint32_t size;                 /* client: payload bytes */
	uint32_t max;                  /* largest payload the mode allows */
	uint32_t seq;                  /* raw: last sequence number seen */
	double cpu_us;                 /* cycles per microsecond */
	uint64_t deadline_cycles;      /* to wait for one message */
};

/* Fills the payload of round trip i. */
static void fill(unsigned char *buf, uint32_t size, uint32_t i)
{
	uint32_t j;

	for (j = 0; j < size; j++)
		buf[j] = (unsigned char)(i * 7u + j);
}

/* raw: the payload, then sequence number and length in one store, then a fence */
static void raw_send(struct pp *p, const unsigned char *buf, uint32_t len, uint32_t seq)
{
	uint32_t w[2] = { htole32(seq), htole32(len) };

	apn_out_aperture_write(&p->c.oa, RAW_DATA, buf, len);
	apn_out_aperture_write(&p->c.oa, 0, w, sizeof(w));
	apn_out_aperture_fence(&p->c.oa);
}

/*
 * Waits without system calls until our memory holds the next message and copies it
 * to buf: returns its length, or -errno. raw: the one numbered `want` (or RAW_STOP:
 * -EPIPE); the length word came with the number, in the same store.
 */
static int wait_msg(struct pp *p, unsigned char *buf, uint32_t want)
{
	const uint64_t *word = (const uint64_t *)p->c.buf;
	uint64_t start = apn_ex_cycles();
	unsigned spins = 0;
	int r;

	for (;;) {
		if (p->raw) {
			uint64_t w = le64toh(__atomic_load_n(word, __ATOMIC_ACQUIRE));
			uint32_t seq = (uint32_t)w, len = (uint32_t)(w >> 32);

			if (seq == RAW_STOP)
				return -EPIPE;
			if (seq == want) {
				if (len > p->max)
					return -EBADMSG;
				p->seq = seq;
				memcpy(buf, p->c.buf + RAW_DATA, len);
				return (int)len;
			}
		} else {
			r = apn_mq_recv(&p->c.mq, buf, p->max);
			if (r != -EAGAIN)
				return r;
		}
		if (++spins % CHECK_EVERY)
			continue;
		r = apn_ex_events(&p->c);
		if (r)
			return r;
		if (apn_ex_cycles() - start > p->deadline_cycles)
			return -ETIMEDOUT;
	}
}

static int send_msg(struct pp *p, const unsigned char *buf, uint32_t len, uint32_t seq)
{
	int r;

	if (p->raw) {
		raw_send(p, buf, len, seq);
		return 0;
	}
	/* the peer echoes each message before we send the next: hardly ever full */
	while ((r = apn_mq_send(&p->c.mq, buf, len)) == -EAGAIN)
		;
	return r;
}

static int server(struct pp *p, unsigned timeout_s)
{
	unsigned char *buf = malloc(p->max + 1);
	struct apn_ex_sysc sc;
	uint64_t echoed = 0;
	int r;

	if (!buf)
		return apn_ex_fail(&p->c, "malloc", -ENOMEM);
	if (apn_ex_accept(&p->c, timeout_s)) {
		free(buf);
		return 1;
	}
	apn_ex_sysc_open(&sc);
	apn_ex_sysc_start(&sc);
	for (;;) {
		r = wait_msg(p, buf, p->seq + 1);
		if (r < 0)
			break;
		r = send_msg(p, buf, (uint32_t)r, p->seq);
		if (r)
			break;
		echoed++;
	}
	apn_ex_sysc_stop(&sc);
	apn_ex_sysc_close(&sc);
	free(buf);
	if (r == -EPIPE)
		r = 0;              /* the client is done */
	printf("APN-PINGPONG-SERVER mode=%s echoed=%llu", p->raw ? "raw" : "mq",
	       (unsigned long long)echoed);
	apn_ex_sysc_print(stdout, &sc);
	printf("\n");
	fflush(stdout);
	if (r == -ETIMEDOUT) {
		fprintf(stderr, PROG ": no message for %u s\n", timeout_s);
		return 1;
	}
	if (r)
		return apn_ex_fail(&p->c, r == -ECONNRESET ? "client gone" : "echo", r);
	return 0;
}

/* Why round trip i failed, on stderr. */
static void report(struct pp *p, int err, uint32_t i, unsigned timeout_s)
{
	if (err == -ETIMEDOUT)
		fprintf(stderr, PROG ": no reply for %u s (round trip %u)\n", timeout_s, i);
	else if (err == -EBADMSG)
		fprintf(stderr, PROG ": round trip %u: the echo differs from what was sent\n", i);
	else if (err == -ECONNRESET || err == -EPIPE)
		fprintf(stderr, PROG ": round trip %u: the server is gone: %s\n", i, strerror(-err));
	else
		apn_ex_fail(&p->c, "round trip", err);
}

/* One round trip; 0 or -errno. */
static int round_trip(struct pp *p, unsigned char *out, unsigned char *in, uint32_t i)
{
	int r = send_msg(p, out, p->size, i + 1);

	if (!r)
		r = wait_msg(p, in, i + 1);
	if (r < 0)
		return r;
	if ((uint32_t)r != p->size || memcmp(in, out, p->size))
		return -EBADMSG;
	return 0;
}

static int client(struct pp *p, uint16_t host, uint16_t port, uint32_t count, uint32_t warmup,
		  unsigned timeout_s)
{
	unsigned char *out = malloc(p->size + 1), *in = malloc(p->size + 1);
	uint64_t *lat = calloc(count ? count : 1, sizeof(*lat));
	struct apn_ex_sysc sc;
	uint32_t i, n = 0;
	int r = 0;

	if (!out || !in || !lat) {
		free(out);
		free(in);
		free(lat);
		return apn_ex_fail(&p->c, "malloc", -ENOMEM);
	}
	if (apn_ex_connect(&p->c, host, port, timeout_s))
		goto fail;
	for (i = 0; i < warmup && !r; i++) {
		fill(out, p->size, i);
		r = round_trip(p, out, in, i);
	}
	if (r) {
		report(p, r, i - 1, timeout_s);
		goto fail;
	}
	apn_ex_sysc_open(&sc);
	apn_ex_sysc_start(&sc);
	/* the measured loop: loads and stores only */
	for (; n < count; n++) {
		uint64_t t0;

		fill(out, p->size, warmup + n);
		t0 = apn_ex_cycles();
		r = round_trip(p, out, in, warmup + n);
		lat[n] = apn_ex_cycles() - t0;
		if (r)
			break;
	}
	apn_ex_sysc_stop(&sc);
	apn_ex_sysc_close(&sc);
	if (r) {
		report(p, r, warmup + n, timeout_s);
		goto fail;
	}
	/* tell the server we are done */
	if (p->raw)
		raw_send(p, out, 0, RAW_STOP);
	else
		apn_mq_close(&p->c.mq);
	printf("APN-PINGPONG mode=%s count=%u size=%u min_us=%.2f median_us=%.2f p99_us=%.2f max_us=%.2f",
	       p->raw ? "raw" : "mq", n, p->size,
	       (double)apn_ex_quantile(lat, n, 0) / p->cpu_us,
	       (double)apn_ex_quantile(lat, n, 0.5) / p->cpu_us,
	       (double)apn_ex_quantile(lat, n, 0.99) / p->cpu_us,
	       (double)apn_ex_quantile(lat, n, 1) / p->cpu_us);
	apn_ex_sysc_print(stdout, &sc);
	printf("\n");
	fflush(stdout);
	free(out);
	free(in);
	free(lat);
	return 0;
fail:
	free(out);
	free(in);
	free(lat);
	return 1;
}

int main(int argc, char **argv)
{
	uint32_t count = 1000, size = 64, warmup = 100, ap = 8192, timeout = 30, port = 0;
	const char *dev = NULL, *mode = "mq";
	uint16_t c_host = 0, c_port = 0;
	int opt, have_c = 0, have_l = 0, ret;
	struct pp p;

	while ((opt = getopt(argc, argv, "L:C:m:n:S:w:s:t:d:")) != -1) {
		switch (opt) {
		case 'L':
			if (apn_ex_parse_u32(optarg, 65535, &port) || !port)
				return bad_usage("bad PORT (1-65535)", optarg);
			have_l = 1;
			break;
		case 'C':
			if (apn_ex_parse_hostport(optarg, &c_host, &c_port))
				return bad_usage("bad HOST:PORT", optarg);
			have_c = 1;
			break;
		case 'm':
			if (strcmp(optarg, "mq") && strcmp(optarg, "raw"))
				return bad_usage("bad mode (mq or raw)", optarg);
			mode = optarg;
			break;
		case 'n':
			if (apn_ex_parse_u32(optarg, 100000000, &count) || !count)
				return bad_usage("bad COUNT", optarg);
			break;
		case 'S':
			if (apn_ex_parse_u32(optarg, 65536, &size))
				return bad_usage("bad BYTES", optarg);
			break;
		case 'w':
			if (apn_ex_parse_u32(optarg, 100000000, &warmup))
				return bad_usage("bad WARMUP", optarg);
			break;
		case 's':
			if (apn_ex_parse_u32(optarg, 65536, &ap) || ap < 4096 || (ap & (ap - 1)))
				return bad_usage("bad APERTURE (power of two, 4096..65536)", optarg);
			break;
		case 't':
			if (apn_ex_parse_u32(optarg, 86400, &timeout) || !timeout)
				return bad_usage("bad TIMEOUT (1..86400 s)", optarg);
			break;
		case 'd':
			dev = optarg;
			break;
		default:
			return bad_usage(NULL, NULL);
		}
	}
	if (optind != argc)
		return bad_usage("unexpected argument", argv[optind]);
	if (have_l == have_c)
		return bad_usage("need exactly one of -L PORT and -C HOST:PORT", NULL);
	memset(&p, 0, sizeof(p));
	p.raw = !strcmp(mode, "raw");
	p.size = size;
	p.max = p.raw ? ap - RAW_DATA : (ap - APN_MQ_CTRL_SIZE) / 2 - APN_MQ_HDR_SIZE;
	if (size > p.max)
		return bad_usage(p.raw ? "BYTES must fit APERTURE - 64" :
				 "BYTES exceeds the largest message ((APERTURE - 64) / 2 - 8)", NULL);
	if (apn_ex_open(&p.c, PROG, dev, (uint16_t)port, ap))
		return 1;
	p.cpu_us = apn_ex_cycles_per_us();
	p.deadline_cycles = (uint64_t)(p.cpu_us * 1e6 * timeout);
	ret = have_l ? server(&p, timeout) : client(&p, c_host, c_port, count, warmup, timeout);
	apn_ex_close(&p.c);
	return ret;
}
