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

#include "apn_example.h"

#define PROG         "apn-pingpong"
#define RAW_DATA     64u          /* raw mode: payload offset; sequence, length at 0 */
#define RAW_STOP     0xffffffffu  /* raw mode: the client's last sequence word */

struct pp {
	struct apn_ex_conn c;
	uint32_t raw;                  /* -m: 0 mq, 1 raw */
	uint32_t size;                 /* client: payload bytes */
	uint32_t max;                  /* largest payload the mode allows */
	uint32_t seq;                  /* raw: last sequence number seen */
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
		if (++spins % APN_EX_CHECK_EVERY)
			continue;
		r = apn_ex_events(&p->c);
		if (r)
			return r;
		if (apn_ex_cycles() - start > p->c.timeout_cycles)
			return -ETIMEDOUT;
	}
}

static int send_msg(struct pp *p, const unsigned char *buf, uint32_t len, uint32_t seq)
{
	if (p->raw) {
		raw_send(p, buf, len, seq);
		return 0;
	}
	/* the peer echoes each message before we send the next: hardly ever full */
	return apn_ex_send(&p->c, buf, len);
}

static int server(struct pp *p)
{
	unsigned char *buf = malloc(p->max + 1);
	struct apn_ex_sysc sc;
	uint64_t echoed = 0;
	int r;

	if (!buf)
		return apn_ex_fail(&p->c, "malloc", -ENOMEM);
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
		fprintf(stderr, PROG ": no message for %u s\n", p->c.timeout_s);
		return 1;
	}
	if (r)
		return apn_ex_fail(&p->c, r == -ECONNRESET ? "client gone" : "echo", r);
	return 0;
}

/* Why round trip i failed, on stderr. */
static void report(struct pp *p, int err, uint32_t i)
{
	if (err == -ETIMEDOUT)
		fprintf(stderr, PROG ": no reply for %u s (round trip %u)\n", p->c.timeout_s, i);
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

static int client(struct pp *p, uint32_t count, uint32_t warmup)
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
	for (i = 0; i < warmup && !r; i++) {
		fill(out, p->size, i);
		r = round_trip(p, out, in, i);
	}
	if (r) {
		report(p, r, i - 1);
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
		report(p, r, warmup + n);
		goto fail;
	}
	/* tell the server we are done */
	if (p->raw)
		raw_send(p, out, 0, RAW_STOP);
	else
		apn_mq_close(&p->c.mq);
	printf("APN-PINGPONG mode=%s count=%u size=%u min_us=%.2f median_us=%.2f p99_us=%.2f max_us=%.2f",
	       p->raw ? "raw" : "mq", n, p->size,
	       (double)apn_ex_quantile(lat, n, 0) / p->c.cpu_us,
	       (double)apn_ex_quantile(lat, n, 0.5) / p->c.cpu_us,
	       (double)apn_ex_quantile(lat, n, 0.99) / p->c.cpu_us,
	       (double)apn_ex_quantile(lat, n, 1) / p->c.cpu_us);
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
	uint32_t count = 1000, size = 64, warmup = 100, ap = 8192, raw = 0;
	const struct apn_ex_opt opts[] = {
		{ .letter = 'm', .arg = "MODE", .type = APN_EX_WORD, .val = &raw, .words = "mq|raw",
		  .help = "mq (message queue, default) or raw (aperture stores and a\n"
			  "polled sequence word); both sides must agree" },
		{ .letter = 'n', .arg = "COUNT", .type = APN_EX_NUM, .val = &count,
		  .min = 1, .max = 100000000, .help = "measured round trips (default 1000)" },
		{ .letter = 'S', .arg = "BYTES", .type = APN_EX_NUM, .val = &size,
		  .max = 65536, .help = "payload per message (default 64)" },
		{ .letter = 'w', .arg = "WARMUP", .type = APN_EX_NUM, .val = &warmup,
		  .max = 100000000, .help = "round trips before measuring (default 100)" },
		{ .letter = 's', .arg = "APERTURE", .type = APN_EX_POW2, .val = &ap,
		  .min = 4096, .max = 65536,
		  .help = "bytes per aperture, power of two 4096..65536 (default 8192);\n"
			  "both sides must agree" },
		{ 0 },
	};
	const struct apn_ex_cmd cmd = {
		.prog = PROG,
		.synopsis = "-L PORT [-m mq|raw] [-s APERTURE]\n"
			    "-C HOST:PORT [-m mq|raw] [-n COUNT] [-S BYTES] [-w WARMUP]\n"
			    " [-s APERTURE]",
		.listen_help = "echo server: listen on UDP PORT (prints APN-READY host=H port=P)",
		.connect_help = "client: connect to the server at cluster host HOST, PORT",
		.opts = opts,
		.epilogue = "Client prints: APN-PINGPONG mode=M count=N size=S min_us= median_us= p99_us=\n"
			    "max_us= syscalls= vol_ctxsw= invol_ctxsw= (syscalls: made inside the loop).\n"
			    "Exit: 0 ok, 1 error or timeout, 2 usage.\n",
	};
	struct apn_ex_args args;
	struct pp p;
	int ret;

	ret = apn_ex_parse_args(&cmd, argc, argv, &args);
	if (ret >= 0)
		return ret;
	memset(&p, 0, sizeof(p));
	p.raw = raw;
	p.size = size;
	p.max = p.raw ? ap - RAW_DATA : (ap - APN_MQ_CTRL_SIZE) / 2 - APN_MQ_HDR_SIZE;
	if (size > p.max)
		return apn_ex_bad_usage(&cmd, p.raw ? "BYTES must fit APERTURE - 64" :
					"BYTES exceeds the largest message ((APERTURE - 64) / 2 - 8)", NULL);
	if (apn_ex_open(&p.c, &args, NULL, ap))
		return 1;
	if (apn_ex_handshake(&p.c, &args))
		ret = 1;
	else
		ret = args.listening ? server(&p) : client(&p, count, warmup);
	apn_ex_close(&p.c);
	return ret;
}
