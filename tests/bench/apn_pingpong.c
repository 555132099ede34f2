// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * apn_pingpong: round-trip latency of apertnic's user-level path: aperture
 * stores out, polled memory in; no system call and no interrupt per message.
 * A minimal stand-in for the library's apn-pingpong example, built on
 * libapertnic's public API (tests/bench/apn_conn.h sets the connection up).
 *
 *   apn_pingpong -s [-P PORT] [-t SECS]
 *       server: a trusted endpoint on PORT; sleeps until a CONNECT, then echoes
 *       every message of that client (polling) until its last one, and waits for
 *       the next client. Exits after SECS (default 3600) or when a client asks.
 *   apn_pingpong -c HOST [-P PORT] [-z SIZES] [-n ROUNDS] [-w WARMUP] [-l LABEL]
 *                [-t SECS] [-q]
 *       client of the server on cluster host HOST: for each size (8..4096 bytes,
 *       default 8,64,256,1024,4096) WARMUP (100) then ROUNDS (1000) round trips;
 *       prints per size the line udp_pingpong prints (path=LABEL, default apn):
 *         BENCH lat path= size= n= median_us= p99_us= min_us= lost=
 *               syscalls_per_rt= ctxsw_per_rt= irqs_per_rt=
 *       syscalls_per_rt is what the measured loop makes: none (it is loads and
 *       stores); irqs count /proc/interrupts lines containing "apertnic" or "apn".
 *       -q stops the server at the end.
 *
 * A message of n bytes: n bytes stored at offset 0 of the peer's 8 KiB aperture,
 * then one 64-bit word at offset 8 KiB - 8 (session << 48 | n << 32 | seq; a
 * separate segment of the same frame, written after the data), then a fence.
 * The receiver polls that word in its own memory. A round trip not back within
 * 1 s counts as lost and is sent again under a new sequence number.
 */
#define _GNU_SOURCE
#include <signal.h>

#include "apn_conn.h"

/* The device's interrupt lines: apertnicN (events) and apnN (its net_device's rings). */
#define APN_IRQS "apertnic|apn"

#define PROG      "apn_pingpong"
#define APERTURE  8192
#define FLAG_OFF  (APERTURE - 8)
#define MAX_MSG   4096
#define SIZE_BYE  0
#define SIZE_QUIT 0xffff

static void usage(void)
{
	fprintf(stderr,
		"usage: apn_pingpong -s [-P PORT] [-t SECS]\n"
		"       apn_pingpong -c HOST [-P PORT] [-z SIZES] [-n ROUNDS] [-w WARMUP] [-l LABEL]\n"
		"                    [-t SECS] [-q]\n"
		"  -s          server (echo)\n"
		"  -c HOST     client of the server on apertnic cluster host HOST\n"
		"  -P PORT     the server endpoint's UDP port (default 5001)\n"
		"  -z SIZES    comma-separated sizes, 8..%d bytes (default 8,64,256,1024,4096)\n"
		"  -n ROUNDS   measured round trips per size (default 1000)\n"
		"  -w WARMUP   unmeasured round trips first (default 100)\n"
		"  -l LABEL    path= field of the output (default apn)\n"
		"  -t SECS     whole-run limit (default 3600 server, 600 client)\n"
		"  -q          stop the server at the end\n"
		"Needs CAP_NET_ADMIN (trusted endpoints) and IPv4 routes between the hosts\n"
		"(apnctl host-id / route) for the CONNECT/ACCEPT exchange.\n", MAX_MSG);
	exit(2);
}

static void send_msg(struct apn_conn *c, const void *data, size_t n, uint64_t flag)
{
	if (n)
		apn_out_aperture_write(&c->oa, 0, data, n);
	apn_conn_store64(c, FLAG_OFF, flag);
	apn_out_aperture_fence(&c->oa);
}

static int server(long port)
{
	struct apn_conn c;

	if (apn_conn_serve(&c, PROG, "server", port, APERTURE, APERTURE))
		return 1;
	for (;;) {
		long s = apn_conn_accept(&c, PROG, bench_now() + 3600);
		uint64_t last = 0, limit;

		if (s <= 0)
			break;
		bench_calibrate();
		limit = bench_ticks(5e6);
		for (;;) {
			uint64_t f, t0 = bench_tsc();
			unsigned spins = 0;
			size_t n;

			while ((f = apn_conn_load64(&c, FLAG_OFF)) == last || !f) {
				if (++spins % 4096 == 0 && bench_tsc() - t0 > limit)
					break;
			}
			if (f == last || !f) {
				fprintf(stderr, PROG ": client silent for 5 s: next client\n");
				break;
			}
			last = f;
			if ((uint16_t)(f >> 48) != (uint16_t)s)
				continue; /* a late store from an earlier client */
			n = (f >> 32) & 0xffff;
			if (n == SIZE_QUIT) {
				apn_conn_close(&c);
				return 0;
			}
			if (n == SIZE_BYE)
				break;
			if (n > MAX_MSG)
				continue;
			send_msg(&c, c.buf, n, f);
		}
	}
	apn_conn_close(&c);
	return 0;
}

int main(int argc, char **argv)
{
	static unsigned char msg[MAX_MSG];
	struct bench_args a = {
		.prog = PROG, .usage = usage, .size_min = 8, .size_max = MAX_MSG, .port = 5001,
		.rounds = 1000, .warmup = 100, .label = "apn",
		.sizes = { 8, 64, 256, 1024, 4096 }, .nsizes = 5,
	};
	struct apn_conn c;
	uint64_t seq = 0, sess, timeout;
	long rounds, warmup;
	double *t;

	bench_parse_args(&a, argc, argv, "scPznwltq", NULL, NULL, NULL);
	bench_time_limit(&a, 600);
	if (a.server)
		return server(a.port);

	rounds = a.rounds;
	warmup = a.warmup;
	t = calloc(rounds, sizeof(*t));
	if (!t)
		return apn_conn_fail(PROG, "calloc", ENOMEM), 1;
	if (apn_conn_client(&c, &a, APERTURE, APERTURE))
		return 1;
	sess = (uint64_t)(uint16_t)c.ia.nonce << 48;
	bench_calibrate();
	timeout = bench_ticks(1e6);
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (unsigned char)i;

	for (int s = 0; s < a.nsizes; s++) {
		size_t size = a.sizes[s];
		unsigned long long lost = 0;
		struct bench_cost cost = { 0, 0 };

		for (long i = -warmup; i < rounds; i++) {
			uint64_t t0, f;
			unsigned spins;

			if (i == 0)
				bench_cost_start(&cost, APN_IRQS);
again:
			f = sess | (uint64_t)size << 32 | (uint32_t)++seq;
			t0 = bench_tsc();
			send_msg(&c, msg, size, f);
			spins = 0;
			while (apn_conn_load64(&c, FLAG_OFF) != f) {
				if (++spins % 4096 == 0 && bench_tsc() - t0 > timeout) {
					if (i >= 0)
						lost++;
					goto again;
				}
			}
			if (i >= 0)
				t[i] = bench_us(bench_tsc() - t0);
		}
		bench_cost_end(&cost, APN_IRQS);
		{
			double p99 = bench_quantile(t, rounds, 0.99);
			double med = bench_quantile(t, rounds, 0.5);

			/* The loop above is loads, stores and rdtsc: no system call. */
			printf("BENCH lat path=%s size=%zu n=%ld median_us=%.1f p99_us=%.1f min_us=%.1f "
			       "lost=%llu syscalls_per_rt=%.2f ctxsw_per_rt=%.2f irqs_per_rt=%.2f\n",
			       a.label, size, rounds, med, p99, t[0], lost, 0.0,
			       (double)cost.ctxsw / rounds, (double)cost.irqs / rounds);
			fflush(stdout);
		}
	}
	send_msg(&c, NULL, 0, sess | (uint64_t)(a.quit ? SIZE_QUIT : SIZE_BYE) << 32 | (uint32_t)++seq);
	apn_conn_close(&c);
	free(t);
	return 0;
}
