// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * udp_pingpong: round-trip latency of UDP datagrams through the kernel's
 * sockets (the baseline: virtio-net, or apertnic's own net_device apn0).
 *
 *   udp_pingpong -s [-p PORT] [-t SECS]
 *       echo server: sends every datagram back to its sender; exits after SECS
 *       (default 3600) or on a datagram of 0 bytes.
 *   udp_pingpong -c HOST [-p PORT] [-z SIZES] [-n ROUNDS] [-w WARMUP]
 *                [-i IRQ_MATCH] [-l LABEL] [-t SECS] [-q]
 *       client: for each size (bytes, default 8,64,256,1024,4096) sends WARMUP
 *       (default 100) then ROUNDS (default 1000) datagrams one at a time, each
 *       after the previous came back, and prints one line per size:
 *         BENCH lat path=LABEL size=S n=N median_us=M p99_us=P min_us=X
 *               lost=L syscalls_per_rt=C ctxsw_per_rt=V irqs_per_rt=I
 *       (one line; fields separated by blanks). A datagram not back within
 *       200 ms counts as lost and is sent again under a new sequence number.
 *       syscalls: the ones this client made in the measured loop (it counts
 *       them); ctxsw: its voluntary context switches; irqs: the guest's
 *       interrupts on /proc/interrupts lines containing IRQ_MATCH (default
 *       "virtio"). -q sends the server a 0-byte datagram at the end (stops it).
 * Every run is bounded by SECS (default 600 for the client): SIGALRM ends it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "bench_util.h"

#define MAX_SIZE  65000

static void usage(void)
{
	fprintf(stderr,
		"usage: udp_pingpong -s [-p PORT] [-t SECS]\n"
		"       udp_pingpong -c HOST [-p PORT] [-z SIZES] [-n ROUNDS] [-w WARMUP]\n"
		"                    [-i IRQ_MATCH] [-l LABEL] [-t SECS] [-q]\n"
		"  -s            echo server\n"
		"  -c HOST       client of the server at IPv4 address HOST\n"
		"  -p PORT       UDP port (default 7001)\n"
		"  -z SIZES      comma-separated message sizes, 8..%d bytes (default 8,64,256,1024,4096)\n"
		"  -n ROUNDS     measured round trips per size (default 1000)\n"
		"  -w WARMUP     unmeasured round trips first (default 100)\n"
		"  -i IRQ_MATCH  count interrupts on /proc/interrupts lines containing this (default virtio)\n"
		"  -l LABEL      path= field of the output (default udp)\n"
		"  -t SECS       whole-run limit (default 3600 server, 600 client)\n"
		"  -q            stop the server at the end (a 0-byte datagram)\n"
		"Prints per size: BENCH lat path= size= n= median_us= p99_us= min_us= lost=\n"
		"syscalls_per_rt= ctxsw_per_rt= irqs_per_rt=\n", MAX_SIZE);
	exit(2);
}

static int server(long port)
{
	static char buf[MAX_SIZE];
	int fd = bench_listen(SOCK_DGRAM, port);

	printf("BENCH udp_pingpong server port=%ld\n", port);
	fflush(stdout);
	for (;;) {
		struct sockaddr_in peer;
		socklen_t plen = sizeof(peer);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&peer, &plen);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			bench_die("recvfrom");
		}
		if (n == 0)
			return 0;
		if (sendto(fd, buf, n, 0, (struct sockaddr *)&peer, plen) < 0 && errno != EINTR)
			perror("udp_pingpong: sendto");
	}
}

int main(int argc, char **argv)
{
	static char buf[MAX_SIZE], rbuf[MAX_SIZE];
	struct bench_args a = {
		.prog = "udp_pingpong", .usage = usage, .size_min = 8, .size_max = MAX_SIZE,
		.port = 7001, .rounds = 1000, .warmup = 100, .label = "udp", .irq = "virtio",
		.sizes = { 8, 64, 256, 1024, 4096 }, .nsizes = 5,
	};
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
	struct sockaddr_in peer;
	long rounds, warmup;
	double *t;
	uint64_t seq = 0;
	int fd;

	bench_parse_args(&a, argc, argv, "scpznwiltq", NULL, NULL, NULL);
	bench_time_limit(&a, 600);
	if (a.server)
		return server(a.port);

	if (bench_ipv4(a.host, a.port, &peer))
		usage();
	fd = bench_dial(SOCK_DGRAM, &peer, NULL);
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)))
		bench_die("SO_RCVTIMEO");
	rounds = a.rounds;
	warmup = a.warmup;
	t = calloc(rounds, sizeof(*t));
	if (!t)
		bench_die("calloc");
	bench_calibrate();
	memset(buf, 0x5a, sizeof(buf));

	for (int s = 0; s < a.nsizes; s++) {
		size_t size = a.sizes[s];
		unsigned long long syscalls = 0, lost = 0;
		struct bench_cost cost = { 0, 0 };

		for (long i = -warmup; i < rounds; i++) {
			uint64_t t0, t1;
			ssize_t n;

			if (i == 0) {
				syscalls = 0;
				bench_cost_start(&cost, a.irq);
			}
again:
			seq++;
			memcpy(buf, &seq, sizeof(seq));
			t0 = bench_tsc();
			syscalls++;
			if (send(fd, buf, size, 0) != (ssize_t)size)
				bench_die("send");
			for (;;) {
				syscalls++;
				n = recv(fd, rbuf, sizeof(rbuf), 0);
				if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
					if (i >= 0)
						lost++;
					goto again;
				}
				if (n < 0 && errno == EINTR)
					continue;
				if (n < 0)
					bench_die("recv");
				if (n == (ssize_t)size && !memcmp(rbuf, &seq, sizeof(seq)))
					break;
				/* a late echo of a datagram given up on: not ours */
			}
			t1 = bench_tsc();
			if (i >= 0)
				t[i] = bench_us(t1 - t0);
		}
		bench_cost_end(&cost, a.irq);
		{
			double p99 = bench_quantile(t, rounds, 0.99);
			double med = bench_quantile(t, rounds, 0.5);

			printf("BENCH lat path=%s size=%zu n=%ld median_us=%.1f p99_us=%.1f min_us=%.1f "
			       "lost=%llu syscalls_per_rt=%.2f ctxsw_per_rt=%.2f irqs_per_rt=%.2f\n",
			       a.label, size, rounds, med, p99, t[0], lost,
			       (double)syscalls / rounds, (double)cost.ctxsw / rounds,
			       (double)cost.irqs / rounds);
			fflush(stdout);
		}
	}
	if (a.quit && send(fd, buf, 0, 0) < 0)
		perror("udp_pingpong: send quit");
	free(t);
	return 0;
}
