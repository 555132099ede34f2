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

static void die(const char *what)
{
	fprintf(stderr, "udp_rate: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void on_alarm(int sig)
{
	static const char msg[] = "udp_rate: time limit reached\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0) {
		/* nothing left to do */
	}
	_exit(3);
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

static int write_all(int fd, const char *s)
{
	size_t len = strlen(s);

	while (len) {
		ssize_t w = write(fd, s, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		s += w;
		len -= w;
	}
	return 0;
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
	if (write_all(ctl, "READY\n"))
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
			die("recv");
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
	write_all(ctl, line);
}

static void __attribute__((noreturn)) receiver(int port)
{
	struct sockaddr_in me = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct timeval tv = { .tv_sec = 0, .tv_usec = 100000 };
	int one = 1, lfd, ufd;

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	ufd = socket(AF_INET, SOCK_DGRAM, 0);
	if (lfd < 0 || ufd < 0)
		die("socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&me, sizeof(me)) || bind(ufd, (struct sockaddr *)&me, sizeof(me)))
		die("bind");
	if (listen(lfd, 4))
		die("listen");
	if (setsockopt(ufd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)))
		die("SO_RCVTIMEO");
	bench_calibrate();
	printf("BENCH udp_rate receiver port=%d\n", port);
	fflush(stdout);
	for (;;) {
		int ctl = accept(lfd, NULL, NULL);

		if (ctl < 0) {
			if (errno == EINTR)
				continue;
			die("accept");
		}
		setsockopt(ctl, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		session(ctl, ufd);
		close(ctl);
	}
}

int main(int argc, char **argv)
{
	static char buf[MAX_SIZE];
	const char *ctrl_host = NULL, *data_host = NULL, *label = "udp", *irq = "virtio";
	long port = 7003, size = 50, window = 3, limit = 0;
	int is_server = 0, quit = 0, opt, one = 1, ctl, ufd;
	struct sockaddr_in ctrl = { .sin_family = AF_INET }, data = { .sin_family = AF_INET };
	unsigned long long sent = 0, syscalls = 0, failed = 0, delivered, rsys, rctx, rirq, other;
	double rwin;
	struct bench_cost cost;
	struct hdr h;
	char line[256];
	uint64_t t0, t1, end;

	while ((opt = getopt(argc, argv, "sc:d:p:z:T:i:l:t:qh")) != -1) {
		switch (opt) {
		case 's':
			is_server = 1;
			break;
		case 'c':
			ctrl_host = optarg;
			break;
		case 'd':
			data_host = optarg;
			break;
		case 'p':
			if (bench_parse_long(optarg, 1, 65535, &port))
				usage();
			break;
		case 'z':
			if (bench_parse_long(optarg, 8, MAX_SIZE, &size))
				usage();
			break;
		case 'T':
			if (bench_parse_long(optarg, 1, 3600, &window))
				usage();
			break;
		case 'i':
			irq = optarg;
			break;
		case 'l':
			label = optarg;
			break;
		case 't':
			if (bench_parse_long(optarg, 1, 86400, &limit))
				usage();
			break;
		case 'q':
			quit = 1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || is_server == !!ctrl_host || strchr(irq, ' ') || !*irq)
		usage();
	signal(SIGALRM, on_alarm);
	signal(SIGPIPE, SIG_IGN);
	alarm(limit ? limit : is_server ? 3600 : window + 117);
	if (is_server)
		receiver(port);

	if (!data_host)
		data_host = ctrl_host;
	ctrl.sin_port = data.sin_port = htons(port);
	if (inet_pton(AF_INET, ctrl_host, &ctrl.sin_addr) != 1 ||
	    inet_pton(AF_INET, data_host, &data.sin_addr) != 1) {
		fprintf(stderr, "udp_rate: bad IPv4 address\n");
		usage();
	}
	ctl = socket(AF_INET, SOCK_STREAM, 0);
	ufd = socket(AF_INET, SOCK_DGRAM, 0);
	if (ctl < 0 || ufd < 0)
		die("socket");
	if (connect(ctl, (struct sockaddr *)&ctrl, sizeof(ctrl)))
		die("connect (control)");
	setsockopt(ctl, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(ufd, (struct sockaddr *)&data, sizeof(data)))
		die("connect (data)");
	bench_calibrate();
	srand((unsigned)bench_tsc() ^ (unsigned)getpid());
	h.session = (uint32_t)rand() | 1;
	snprintf(line, sizeof(line), "START session=%u irq=%s\n", h.session, irq);
	if (write_all(ctl, line) || read_line(ctl, line, sizeof(line)) || strcmp(line, "READY"))
		die("control: no READY");
	memset(buf, 0x5a, sizeof(buf));

	bench_cost_start(&cost, irq);
	t0 = bench_tsc();
	end = t0 + bench_ticks(window * 1e6);
	do {
		h.seq = (uint32_t)sent;
		memcpy(buf, &h, sizeof(h));
		syscalls++;
		if (send(ufd, buf, size, 0) == size)
			sent++;
		else if (errno == ENOBUFS || errno == EAGAIN || errno == ECONNREFUSED || errno == EINTR)
			failed++;
		else
			die("send");
	} while ((t1 = bench_tsc()) < end);
	bench_cost_end(&cost, irq);

	snprintf(line, sizeof(line), "END sent=%llu\n", sent);
	if (write_all(ctl, line) || read_line(ctl, line, sizeof(line)) ||
	    sscanf(line, "RESULT delivered=%llu syscalls=%llu ctxsw=%llu irqs=%llu other=%llu window_us=%lf",
		   &delivered, &rsys, &rctx, &rirq, &other, &rwin) != 6)
		die("control: no RESULT");
	{
		double secs = bench_us(t1 - t0) / 1e6, d = delivered ? (double)delivered : 1;

		printf("BENCH rate path=%s size=%ld secs=%.3f sent=%llu delivered=%llu loss_pct=%.2f "
		       "sent_per_s=%.0f delivered_per_s=%.0f send_failed=%llu "
		       "tx_syscalls_per_msg=%.3f tx_ctxsw_per_msg=%.4f tx_irqs_per_msg=%.4f "
		       "rx_syscalls_per_msg=%.3f rx_ctxsw_per_msg=%.4f rx_irqs_per_msg=%.4f\n",
		       label, size, secs, sent, delivered,
		       sent ? 100.0 * (double)(sent - (delivered < sent ? delivered : sent)) / sent : 0,
		       sent / secs, delivered / secs, failed,
		       sent ? (double)syscalls / sent : 0, sent ? (double)cost.ctxsw / sent : 0,
		       sent ? (double)cost.irqs / sent : 0,
		       rsys / d, rctx / d, rirq / d);
		fflush(stdout);
	}
	close(ctl);
	if (quit) {
		ctl = socket(AF_INET, SOCK_STREAM, 0);
		if (ctl >= 0 && !connect(ctl, (struct sockaddr *)&ctrl, sizeof(ctrl)))
			write_all(ctl, "QUIT\n");
	}
	return 0;
}
