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
#define MAX_SIZES 32

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

static void die(const char *what)
{
	fprintf(stderr, "udp_pingpong: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "udp_pingpong: time limit reached\n";
	if (write(2, msg, sizeof(msg) - 1) < 0) {
		/* nothing left to do */
	}
	_exit(3);
}

static int server(int port)
{
	static char buf[MAX_SIZE];
	struct sockaddr_in me = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	if (fd < 0)
		die("socket");
	if (bind(fd, (struct sockaddr *)&me, sizeof(me)))
		die("bind");
	printf("BENCH udp_pingpong server port=%d\n", port);
	fflush(stdout);
	for (;;) {
		struct sockaddr_in peer;
		socklen_t plen = sizeof(peer);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&peer, &plen);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("recvfrom");
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
	long sizes[MAX_SIZES] = { 8, 64, 256, 1024, 4096 }, port = 7001, rounds = 1000;
	long warmup = 100, secs = 0;
	int nsizes = 5, is_server = 0, quit = 0, opt;
	const char *host = NULL, *label = "udp", *irq_match = "virtio";
	struct sockaddr_in peer = { .sin_family = AF_INET };
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
	double *t;
	uint64_t seq = 0;
	int fd;

	while ((opt = getopt(argc, argv, "sc:p:z:n:w:i:l:t:qh")) != -1) {
		switch (opt) {
		case 's':
			is_server = 1;
			break;
		case 'c':
			host = optarg;
			break;
		case 'p':
			if (bench_parse_long(optarg, 1, 65535, &port))
				usage();
			break;
		case 'z':
			nsizes = bench_parse_sizes(optarg, 8, MAX_SIZE, sizes, MAX_SIZES);
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
		case 'i':
			irq_match = optarg;
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
	if (optind != argc || is_server == !!host)
		usage();
	signal(SIGALRM, on_alarm);
	alarm(secs ? secs : is_server ? 3600 : 600);
	if (is_server)
		return server(port);

	peer.sin_port = htons(port);
	if (inet_pton(AF_INET, host, &peer.sin_addr) != 1) {
		fprintf(stderr, "udp_pingpong: bad IPv4 address %s\n", host);
		usage();
	}
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0)
		die("socket");
	if (connect(fd, (struct sockaddr *)&peer, sizeof(peer)))
		die("connect");
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)))
		die("SO_RCVTIMEO");
	t = calloc(rounds, sizeof(*t));
	if (!t)
		die("calloc");
	bench_calibrate();
	memset(buf, 0x5a, sizeof(buf));

	for (int s = 0; s < nsizes; s++) {
		size_t size = sizes[s];
		unsigned long long syscalls = 0, lost = 0;
		struct bench_cost cost = { 0, 0 };

		for (long i = -warmup; i < rounds; i++) {
			uint64_t t0, t1;
			ssize_t n;

			if (i == 0) {
				syscalls = 0;
				bench_cost_start(&cost, irq_match);
			}
again:
			seq++;
			memcpy(buf, &seq, sizeof(seq));
			t0 = bench_tsc();
			syscalls++;
			if (send(fd, buf, size, 0) != (ssize_t)size)
				die("send");
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
					die("recv");
				if (n == (ssize_t)size && !memcmp(rbuf, &seq, sizeof(seq)))
					break;
				/* a late echo of a datagram given up on: not ours */
			}
			t1 = bench_tsc();
			if (i >= 0)
				t[i] = bench_us(t1 - t0);
		}
		bench_cost_end(&cost, irq_match);
		{
			double p99 = bench_quantile(t, rounds, 0.99);
			double med = bench_quantile(t, rounds, 0.5);

			printf("BENCH lat path=%s size=%zu n=%ld median_us=%.1f p99_us=%.1f min_us=%.1f "
			       "lost=%llu syscalls_per_rt=%.2f ctxsw_per_rt=%.2f irqs_per_rt=%.2f\n",
			       label, size, rounds, med, p99, t[0], lost,
			       (double)syscalls / rounds, (double)cost.ctxsw / rounds,
			       (double)cost.irqs / rounds);
			fflush(stdout);
		}
	}
	if (quit && send(fd, buf, 0, 0) < 0)
		perror("udp_pingpong: send quit");
	free(t);
	return 0;
}
