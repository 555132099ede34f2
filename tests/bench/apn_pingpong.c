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
#define MAX_SIZES 32
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

static void on_alarm(int sig)
{
	static const char msg[] = PROG ": time limit reached\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0) {
		/* nothing left to do */
	}
	_exit(3);
}

static void send_msg(struct apn_conn *c, const void *data, size_t n, uint64_t flag)
{
	if (n)
		apn_out_aperture_write(&c->oa, 0, data, n);
	apn_conn_store64(c, FLAG_OFF, flag);
	apn_out_aperture_fence(&c->oa);
}

static void prepare(void *arg, uint16_t session)
{
	struct apn_conn *c = arg;

	(void)session;
	memset(c->buf, 0, c->map_len);
}

static int server(uint16_t port)
{
	struct apn_conn c;

	if (apn_conn_open(&c, PROG, port, APERTURE, APERTURE))
		return 1;
	printf("BENCH apn_pingpong server port=%u in_index=%u\n", apn_endpoint_port(&c.ep),
	       c.ia.in_index);
	fflush(stdout);
	for (;;) {
		long s = apn_conn_accept(&c, PROG, bench_now() + 3600, prepare, &c);
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
	long sizes[MAX_SIZES] = { 8, 64, 256, 1024, 4096 }, port = 5001, host = -1;
	long rounds = 1000, warmup = 100, secs = 0;
	int nsizes = 5, is_server = 0, quit = 0, opt;
	const char *label = "apn";
	struct apn_conn c;
	uint64_t seq = 0, sess, timeout;
	double *t;

	while ((opt = getopt(argc, argv, "sc:P:z:n:w:l:t:qh")) != -1) {
		switch (opt) {
		case 's':
			is_server = 1;
			break;
		case 'c':
			if (bench_parse_long(optarg, 0, 65535, &host))
				usage();
			break;
		case 'P':
			if (bench_parse_long(optarg, 1, 65535, &port))
				usage();
			break;
		case 'z':
			nsizes = bench_parse_sizes(optarg, 8, MAX_MSG, sizes, MAX_SIZES);
			if (nsizes < 0)
				usage();
			break;
		case 'n':
			if (bench_parse_long(optarg, 1, 10000000, &rounds))
				usage();
			break;
		case 'w':
			if (bench_parse_long(optarg, 0, 10000000, &warmup))
				usage();
			break;
		case 'l':
			label = optarg;
			break;
		case 't':
			if (bench_parse_long(optarg, 1, 86400, &secs))
				usage();
			break;
		case 'q':
			quit = 1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || is_server == (host >= 0))
		usage();
	signal(SIGALRM, on_alarm);
	alarm(secs ? secs : is_server ? 3600 : 600);
	if (is_server)
		return server((uint16_t)port);

	t = calloc(rounds, sizeof(*t));
	if (!t)
		return apn_conn_fail(PROG, "calloc", ENOMEM), 1;
	if (apn_conn_open(&c, PROG, 0, APERTURE, APERTURE) ||
	    apn_conn_dial(&c, PROG, (uint16_t)host, (uint16_t)port, 30))
		return 1;
	sess = (uint64_t)(uint16_t)c.ia.nonce << 48;
	bench_calibrate();
	timeout = bench_ticks(1e6);
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (unsigned char)i;

	for (int s = 0; s < nsizes; s++) {
		size_t size = sizes[s];
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
			       label, size, rounds, med, p99, t[0], lost, 0.0,
			       (double)cost.ctxsw / rounds, (double)cost.irqs / rounds);
			fflush(stdout);
		}
	}
	send_msg(&c, NULL, 0, sess | (uint64_t)(quit ? SIZE_QUIT : SIZE_BYE) << 32 | (uint32_t)++seq);
	apn_conn_close(&c);
	free(t);
	return 0;
}
