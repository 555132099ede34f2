// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * udp_rate: one-way UDP message rate through the kernel's sockets, counting
 * what was delivered, not what was sent.
 *
 *   udp_rate -s [-p PORT] [-t SECS]
 *       receiver: a TCP control socket and a UDP socket, both on PORT (any
 *       address). Per session (one TCP connection from a sender): drains old
 *       datagrams, answers READY, counts the session's datagrams with blocking
 *       recv(2) (one system call per datagram), and after the sender's END
 *       line and 300 ms without datagrams answers with what it counted and
 *       spent. Exits after SECS (default 3600) or on a QUIT line.
 *   udp_rate -c CTRL_HOST [-d DATA_HOST] [-p PORT] [-z SIZE] [-T SECS]
 *            [-i IRQ_MATCH] [-l LABEL] [-t LIMIT] [-q]
 *       sender: sends SIZE-byte datagrams (default 50) to DATA_HOST (default
 *       CTRL_HOST) as fast as send(2) takes them for SECS seconds (default 3),
 *       then prints one line:
 *         BENCH rate path=LABEL size=S secs=T sent=N delivered=D loss_pct=L
 *               sent_per_s=X delivered_per_s=Y
 *               tx_syscalls_per_msg= tx_ctxsw_per_msg= tx_irqs_per_msg=
 *               rx_syscalls_per_msg= rx_ctxsw_per_msg= rx_irqs_per_msg=
 *       tx_* per datagram sent, rx_* per datagram delivered (the receiver's
 *       guest); irqs on /proc/interrupts lines containing IRQ_MATCH (default
 *       virtio). -q stops the receiver afterwards.
 * Bounded: SIGALRM after LIMIT seconds (default 120 sender, 3600 receiver).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "bench_util.h"

#define MAX_SIZE 65000

struct hdr {
	uint32_t session;
	uint32_t seq;
};

static void usage(void)
{
	fprintf(stderr,
		"usage: udp_rate -s [-p PORT] [-t SECS]\n"
		"       udp_rate -c CTRL_HOST [-d DATA_HOST] [-p PORT] [-z SIZE] [-T SECS]\n"
		"                [-i IRQ_MATCH] [-l LABEL] [-t LIMIT] [-q]\n"
		"  -s            receiver (TCP control + UDP data on PORT)\n"
		"  -c CTRL_HOST  sender; control connection to this IPv4 address\n"
		"  -d DATA_HOST  send the datagrams here (default CTRL_HOST)\n"
		"  -p PORT       port (default 7003)\n"
		"  -z SIZE       datagram bytes, 8..%d (default 50)\n"
		"  -T SECS       sending window (default 3)\n"
		"  -i IRQ_MATCH  interrupts counted on /proc/interrupts lines containing this\n"
		"                (default virtio; both guests)\n"
		"  -l LABEL      path= field of the output (default udp)\n"
		"  -t LIMIT      whole-run limit in seconds (default 120 sender, 3600 receiver)\n"
		"  -q            stop the receiver afterwards\n", MAX_SIZE);
	exit(2);
}

/* Reads one line (up to cap-1 chars, without the newline) from fd. 0 or -1. */
static int read_line(int fd, char *buf, size_t cap)
{
	size_t n = 0;

	while (n + 1 < cap) {
		ssize_t r = read(fd, buf + n, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = 0;
	return 0;
}

static int write_line(int fd, const char *s)
{
	return bench_write_all(fd, s, strlen(s));
}

static void session(int ctl, int ufd)
{
	static char buf[MAX_SIZE];
	char line[256], irq[64] = "virtio";
	unsigned sess;
	unsigned long long delivered = 0, syscalls = 0, other = 0;
	struct bench_cost cost;
	int ended = 0, started = 0;
	uint64_t t_first = 0, t_last = 0;

	if (read_line(ctl, line, sizeof(line)))
		return;
	if (!strcmp(line, "QUIT"))
		exit(0);
	if (sscanf(line, "START session=%u irq=%63s", &sess, irq) < 1) {
		fprintf(stderr, "udp_rate: bad control line '%s'\n", line);
		return;
	}
	while (recv(ufd, buf, sizeof(buf), MSG_DONTWAIT) >= 0)
		;
	bench_cost_start(&cost, irq);
	if (write_line(ctl, "READY\n"))
		return;
	for (;;) {
		ssize_t n;

		syscalls++;
		n = recv(ufd, buf, sizeof(buf), 0);
		if (n >= (ssize_t)sizeof(struct hdr)) {
			struct hdr h;

			memcpy(&h, buf, sizeof(h));
			if (h.session == sess) {
				delivered++;
				t_last = bench_tsc();
				if (!started) {
					started = 1;
					t_first = t_last;
				}
			} else {
				other++;
			}
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			bench_die("recv");
		/* 100 ms without datagrams: has the sender said END? */
		if (!ended) {
			n = recv(ctl, line, sizeof(line) - 1, MSG_DONTWAIT);
			if (n == 0)
				return;
			if (n > 0) {
				line[n] = 0;
				if (strncmp(line, "END", 3)) {
					fprintf(stderr, "udp_rate: bad control line '%s'\n", line);
					return;
				}
				ended = 1; /* then one more quiet period */
			}
		} else {
			break;
		}
	}
	bench_cost_end(&cost, irq);
	snprintf(line, sizeof(line),
		 "RESULT delivered=%llu syscalls=%llu ctxsw=%llu irqs=%llu other=%llu window_us=%.0f\n",
		 delivered, syscalls, cost.ctxsw, cost.irqs, other,
		 bench_us(t_last - t_first));
	write_line(ctl, line);
}

static void __attribute__((noreturn)) receiver(long port)
{
	struct timeval tv = { .tv_sec = 0, .tv_usec = 100000 };
	int one = 1, lfd = bench_listen(SOCK_STREAM, port), ufd = bench_listen(SOCK_DGRAM, port);

	if (setsockopt(ufd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)))
		bench_die("SO_RCVTIMEO");
	bench_calibrate();
	printf("BENCH udp_rate receiver port=%ld\n", port);
	fflush(stdout);
	for (;;) {
		int ctl = accept(lfd, NULL, NULL);

		if (ctl < 0) {
			if (errno == EINTR)
				continue;
			bench_die("accept");
		}
		setsockopt(ctl, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		session(ctl, ufd);
		close(ctl);
	}
}

struct sender_opts {
	const char *data_host;         /* -d */
	long size;                     /* -z */
};

static int sender_opt(const struct bench_args *a, void *ctx, int opt, const char *arg)
{
	struct sender_opts *o = ctx;

	if (opt == 'd')
		o->data_host = arg;
	else
		bench_opt_long(a, opt, arg, "SIZE", 8, MAX_SIZE, &o->size);
	return 0;
}

int main(int argc, char **argv)
{
	static char buf[MAX_SIZE];
	struct bench_args a = {
		.prog = "udp_rate", .usage = usage, .port = 7003, .window = 3, .label = "udp",
		.irq = "virtio",
	};
	struct sender_opts o = { .size = 50 };
	int one = 1, ctl, ufd;
	struct sockaddr_in ctrl, data;
	unsigned long long sent = 0, syscalls = 0, failed = 0, delivered, rsys, rctx, rirq, other;
	double rwin;
	struct bench_cost cost;
	struct hdr h;
	char line[256];
	uint64_t t0, t1, end;

	bench_parse_args(&a, argc, argv, "scpTiltq", "d:z:", sender_opt, &o);
	if (strchr(a.irq, ' ') || !*a.irq)
		usage();
	signal(SIGPIPE, SIG_IGN);
	bench_time_limit(&a, a.window + 117);
	if (a.server)
		receiver(a.port);

	if (bench_ipv4(a.host, a.port, &ctrl) ||
	    bench_ipv4(o.data_host ? o.data_host : a.host, a.port, &data))
		usage();
	ctl = bench_dial(SOCK_STREAM, &ctrl, "(control)");
	setsockopt(ctl, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ufd = bench_dial(SOCK_DGRAM, &data, "(data)");
	bench_calibrate();
	srand((unsigned)bench_tsc() ^ (unsigned)getpid());
	h.session = (uint32_t)rand() | 1;
	snprintf(line, sizeof(line), "START session=%u irq=%s\n", h.session, a.irq);
	if (write_line(ctl, line) || read_line(ctl, line, sizeof(line)) || strcmp(line, "READY"))
		bench_die("control: no READY");
	memset(buf, 0x5a, sizeof(buf));

	bench_cost_start(&cost, a.irq);
	t0 = bench_tsc();
	end = t0 + bench_ticks(a.window * 1e6);
	do {
		h.seq = (uint32_t)sent;
		memcpy(buf, &h, sizeof(h));
		syscalls++;
		if (send(ufd, buf, o.size, 0) == o.size)
			sent++;
		else if (errno == ENOBUFS || errno == EAGAIN || errno == ECONNREFUSED || errno == EINTR)
			failed++;
		else
			bench_die("send");
	} while ((t1 = bench_tsc()) < end);
	bench_cost_end(&cost, a.irq);

	snprintf(line, sizeof(line), "END sent=%llu\n", sent);
	if (write_line(ctl, line) || read_line(ctl, line, sizeof(line)) ||
	    sscanf(line, "RESULT delivered=%llu syscalls=%llu ctxsw=%llu irqs=%llu other=%llu window_us=%lf",
		   &delivered, &rsys, &rctx, &rirq, &other, &rwin) != 6)
		bench_die("control: no RESULT");
	{
		double secs = bench_us(t1 - t0) / 1e6, d = delivered ? (double)delivered : 1;

		printf("BENCH rate path=%s size=%ld secs=%.3f sent=%llu delivered=%llu loss_pct=%.2f "
		       "sent_per_s=%.0f delivered_per_s=%.0f send_failed=%llu "
		       "tx_syscalls_per_msg=%.3f tx_ctxsw_per_msg=%.4f tx_irqs_per_msg=%.4f "
		       "rx_syscalls_per_msg=%.3f rx_ctxsw_per_msg=%.4f rx_irqs_per_msg=%.4f\n",
		       a.label, o.size, secs, sent, delivered,
		       sent ? 100.0 * (double)(sent - (delivered < sent ? delivered : sent)) / sent : 0,
		       sent / secs, delivered / secs, failed,
		       sent ? (double)syscalls / sent : 0, sent ? (double)cost.ctxsw / sent : 0,
		       sent ? (double)cost.irqs / sent : 0,
		       rsys / d, rctx / d, rirq / d);
		fflush(stdout);
	}
	close(ctl);
	if (a.quit) {
		ctl = socket(AF_INET, SOCK_STREAM, 0);
		if (ctl >= 0 && !connect(ctl, (struct sockaddr *)&ctrl, sizeof(ctrl)))
			write_line(ctl, "QUIT\n");
	}
	return 0;
}
