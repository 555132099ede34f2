// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * tcp_stream: bulk bandwidth of one TCP connection through the kernel's
 * sockets (the baseline for apertnic's put).
 *
 *   tcp_stream -s [-p PORT] [-t SECS]
 *       receiver: per connection reads until EOF, then answers one line
 *       "RESULT bytes=B syscalls=S ctxsw=C irqs=I" (what it received and
 *       spent) and closes. Exits after SECS (default 3600) or on a connection
 *       whose first bytes are "QUIT\n".
 *   tcp_stream -c HOST [-p PORT] [-b BYTES] [-T SECS] [-i IRQ_MATCH] [-l LABEL]
 *              [-t LIMIT] [-q]
 *       sender: writes BYTES-byte buffers (default 65536) for SECS seconds
 *       (default 3), shuts its side down, waits for the receiver's RESULT and
 *       prints
 *         BENCH bw path=LABEL secs=T bytes=B mbytes_per_s=M
 *               tx_syscalls_per_mb= tx_irqs_per_mb= rx_syscalls_per_mb=
 *               rx_ctxsw_per_mb= rx_irqs_per_mb=
 *       secs runs from the first write to the receiver's RESULT (all bytes
 *       delivered); irqs on /proc/interrupts lines containing IRQ_MATCH
 *       (default virtio). -q stops the receiver afterwards.
 * Bounded: SIGALRM after LIMIT seconds (default SECS + 117 sender, 3600 receiver).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include "bench_util.h"

#define MAX_BUF (1 << 20)

static void usage(void)
{
	fprintf(stderr,
		"usage: tcp_stream -s [-p PORT] [-t SECS]\n"
		"       tcp_stream -c HOST [-p PORT] [-b BYTES] [-T SECS] [-i IRQ_MATCH] [-l LABEL]\n"
		"                  [-t LIMIT] [-q]\n"
		"  -s            receiver\n"
		"  -c HOST       sender to the receiver at IPv4 address HOST\n"
		"  -p PORT       TCP port (default 7004)\n"
		"  -b BYTES      bytes per write(2), 1..%d (default 65536)\n"
		"  -T SECS       sending time (default 3)\n"
		"  -i IRQ_MATCH  interrupts counted on /proc/interrupts lines containing this\n"
		"                (default virtio)\n"
		"  -l LABEL      path= field of the output (default tcp)\n"
		"  -t LIMIT      whole-run limit in seconds\n"
		"  -q            stop the receiver afterwards\n", MAX_BUF);
	exit(2);
}

static void __attribute__((noreturn)) receiver(long port, const char *irq)
{
	static char buf[MAX_BUF];
	int lfd = bench_listen(SOCK_STREAM, port);

	printf("BENCH tcp_stream receiver port=%ld\n", port);
	fflush(stdout);
	for (;;) {
		unsigned long long bytes = 0, syscalls = 0;
		struct bench_cost cost;
		char line[160];
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0) {
			if (errno == EINTR)
				continue;
			bench_die("accept");
		}
		bench_cost_start(&cost, irq);
		for (;;) {
			ssize_t n;

			syscalls++;
			n = read(fd, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			if (!bytes && n >= 5 && !memcmp(buf, "QUIT\n", 5))
				exit(0);
			bytes += n;
		}
		bench_cost_end(&cost, irq);
		snprintf(line, sizeof(line), "RESULT bytes=%llu syscalls=%llu ctxsw=%llu irqs=%llu\n",
			 bytes, syscalls, cost.ctxsw, cost.irqs);
		bench_write_all(fd, line, strlen(line));
		close(fd);
	}
}

static int write_size(const struct bench_args *a, void *ctx, int opt, const char *arg)
{
	bench_opt_long(a, opt, arg, "BYTES", 1, MAX_BUF, ctx);
	return 0;
}

int main(int argc, char **argv)
{
	static char buf[MAX_BUF];
	struct bench_args a = {
		.prog = "tcp_stream", .usage = usage, .port = 7004, .window = 3, .label = "tcp",
		.irq = "virtio",
	};
	long bsize = 65536;
	int fd;
	struct sockaddr_in peer;
	unsigned long long sent = 0, syscalls = 0, bytes, rsys, rctx, rirq;
	struct bench_cost cost;
	char line[160];
	size_t got = 0;
	uint64_t t0, end;
	double secs, mb;

	bench_parse_args(&a, argc, argv, "scpTiltq", "b:", write_size, &bsize);
	signal(SIGPIPE, SIG_IGN);
	bench_time_limit(&a, a.window + 117);
	if (a.server)
		receiver(a.port, a.irq);

	if (bench_ipv4(a.host, a.port, &peer))
		usage();
	fd = bench_dial(SOCK_STREAM, &peer, NULL);
	bench_calibrate();
	memset(buf, 0x5a, sizeof(buf));
	bench_cost_start(&cost, a.irq);
	t0 = bench_tsc();
	end = t0 + bench_ticks(a.window * 1e6);
	do {
		syscalls++;
		if (bench_write_all(fd, buf, bsize))
			bench_die("write");
		sent += bsize;
	} while (bench_tsc() < end);
	syscalls++;
	if (shutdown(fd, SHUT_WR))
		bench_die("shutdown");
	for (;;) {
		ssize_t n;

		syscalls++;
		n = read(fd, line + got, sizeof(line) - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += n;
		if (memchr(line, '\n', got) || got == sizeof(line) - 1)
			break;
	}
	secs = bench_us(bench_tsc() - t0) / 1e6;
	bench_cost_end(&cost, a.irq);
	line[got] = 0;
	if (sscanf(line, "RESULT bytes=%llu syscalls=%llu ctxsw=%llu irqs=%llu",
		   &bytes, &rsys, &rctx, &rirq) != 4) {
		fprintf(stderr, "tcp_stream: no RESULT from the receiver\n");
		return 1;
	}
	if (bytes != sent)
		fprintf(stderr, "tcp_stream: sent %llu bytes, receiver got %llu\n", sent, bytes);
	mb = bytes / 1e6 ? bytes / 1e6 : 1;
	printf("BENCH bw path=%s secs=%.3f bytes=%llu mbytes_per_s=%.2f write_bytes=%ld "
	       "tx_syscalls_per_mb=%.2f tx_ctxsw_per_mb=%.2f tx_irqs_per_mb=%.2f "
	       "rx_syscalls_per_mb=%.2f rx_ctxsw_per_mb=%.2f rx_irqs_per_mb=%.2f\n",
	       a.label, secs, bytes, bytes / 1e6 / secs, bsize,
	       syscalls / mb, cost.ctxsw / mb, cost.irqs / mb, rsys / mb, rctx / mb, rirq / mb);
	fflush(stdout);
	close(fd);
	if (a.quit) {
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd >= 0 && !connect(fd, (struct sockaddr *)&peer, sizeof(peer)))
			bench_write_all(fd, "QUIT\n", 5);
	}
	return 0;
}
