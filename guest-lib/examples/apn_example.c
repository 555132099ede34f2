// SPDX-License-Identifier: GPL-2.0-or-later
/* What the example programs share; see apn_example.h. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/perf_event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "apn_example.h"

int apn_ex_fail(const struct apn_ex_conn *c, const char *what, int err)
{
	fprintf(stderr, "%s: %s: %s\n", c->prog, what, strerror(err < 0 ? -err : err));
	return 1;
}

static const char *create_failure(int err, int untrusted)
{
	switch (err) {
	case -EPERM:
		return untrusted ? "create endpoint" :
		       "trusted endpoint (needs CAP_NET_ADMIN or the driver's trust_users=1; or --untrusted)";
	case -EADDRINUSE:
		return "port in use";
	case -EOPNOTSUPP:
		return "DMA queues (the device has none)";
	default:
		return "create endpoint";
	}
}

int apn_ex_open(struct apn_ex_conn *c, const struct apn_ex_args *a,
		const struct apn_endpoint_attr *want, uint32_t size)
{
	struct apn_endpoint_attr attr = { 0 };
	long pg = sysconf(_SC_PAGESIZE);
	int r;

	if (want)
		attr = *want;
	memset(c, 0, sizeof(*c));
	c->prog = a->prog;
	c->listening = a->listening;
	c->untrusted = a->untrusted;
	c->verbose = a->verbose;
	attr.port = a->port;
	if (a->untrusted)
		attr.flags &= ~APN_ENDPOINT_F_TRUSTED;
	else
		attr.flags |= APN_ENDPOINT_F_TRUSTED;
	r = apn_device_open(&c->dev, a->dev);
	if (r)
		return apn_ex_fail(c, a->dev ? a->dev : APN_DEFAULT_DEVICE, r);
	c->open = 1;
	r = apn_endpoint_create(&c->ep, &c->dev, &attr);
	if (r) {
		apn_ex_fail(c, create_failure(r, a->untrusted), r);
		goto fail;
	}
	c->open = 2;
	if (c->verbose)
		fprintf(stderr, "%s: endpoint %u on port %u, %s\n", c->prog, c->ep.index,
			apn_endpoint_port(&c->ep),
			c->ep.flags & APN_ENDPOINT_F_TRUSTED ? "trusted" : "untrusted");
	c->buf_len = size < (uint32_t)pg ? (size_t)pg : size;
	c->buf = mmap(NULL, c->buf_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (c->buf == MAP_FAILED) {
		apn_ex_fail(c, "mmap", -errno);
		goto fail;
	}
	madvise(c->buf, c->buf_len, MADV_DONTFORK);
	c->open = 3;
	r = apn_mr_reg(&c->mr, &c->ep, c->buf, c->buf_len);
	if (r) {
		apn_ex_fail(c, r == -ENOMEM ? "register memory (RLIMIT_MEMLOCK, ulimit -l?)" :
			    "register memory", r);
		goto fail;
	}
	c->open = 4;
	r = apn_in_aperture_create(&c->ia, &c->ep, &c->mr, 0, size, 0, 0);
	if (r) {
		apn_ex_fail(c, "create incoming aperture", r);
		goto fail;
	}
	c->open = 5;
	/* aimed at the peer's aperture by the handshake; nothing is stored before */
	r = apn_out_aperture_create(&c->oa, &c->ep, 0, 0, 0, size);
	if (r) {
		apn_ex_fail(c, "create outgoing aperture", r);
		goto fail;
	}
	c->open = 6;
	/* before the peer learns of our aperture: it may write at once */
	r = apn_mq_init(&c->mq, &c->ia, &c->oa);
	if (r) {
		apn_ex_fail(c, "message queue", r);
		goto fail;
	}
	if (c->verbose)
		fprintf(stderr, "%s: %u-byte apertures, incoming index %u; message queue of %zu-byte messages\n",
			c->prog, size, c->ia.in_index, apn_mq_max_msg(&c->mq));
	c->cpu_us = apn_ex_cycles_per_us();
	c->timeout_s = a->timeout_s;
	c->timeout_cycles = (uint64_t)(c->cpu_us * 1e6 * a->timeout_s);
	return 0;
fail:
	apn_ex_close(c);
	return 1;
}

void apn_ex_close(struct apn_ex_conn *c)
{
	switch (c->open) {
	case 6:
		apn_out_aperture_destroy(&c->oa);
		/* fall through */
	case 5:
		apn_in_aperture_destroy(&c->ia);
		/* fall through */
	case 4:
		apn_mr_dereg(&c->mr);
		/* fall through */
	case 3:
		munmap(c->buf, c->buf_len);
		/* fall through */
	case 2:
		apn_endpoint_destroy(&c->ep);
		/* fall through */
	case 1:
		apn_device_close(&c->dev);
	}
	c->open = 0;
}

static void log_event(const char *prog, const struct apn_event *ev)
{
	const char *reason = apn_counter_name(ev->info);

	switch (ev->type) {
	case APN_EV_TX_ERROR:
		printf("APN-TX-ERROR reason=%s out_index=%u remote_in_index=%u\n",
		       reason ? reason : "?", (unsigned)(uint32_t)ev->data,
		       (unsigned)(uint32_t)(ev->data >> 32));
		break;
	case APN_EV_RX_DROP:
		printf("APN-RX-DROP reason=%s in_index=%u host=%u\n", reason ? reason : "?",
		       (unsigned)(uint32_t)ev->data, (unsigned)(uint16_t)(ev->data >> 32));
		break;
	case APN_EV_OVERFLOW:
		printf("APN-OVERFLOW queue=%s lost=%u\n",
		       ev->flags & APN_EVF_OVERFLOW_VARQ ? "datagrams" : "events", ev->info);
		break;
	default:
		fprintf(stderr, "%s: event type %u info %u data %#llx\n", prog, ev->type, ev->info,
			(unsigned long long)ev->data);
		return;
	}
	fflush(stdout);
}

/* During the handshake: what the library does not consume itself. */
static void other_event(void *arg, const struct apn_event *ev)
{
	log_event(arg, ev);
}

int apn_ex_accept(struct apn_ex_conn *c, unsigned timeout_s)
{
	struct apn_device_info info;
	int r;

	r = apn_device_info(&c->dev, &info);
	if (r)
		return apn_ex_fail(c, "device info", r);
	printf("APN-READY host=%u port=%u\n", info.host_id, apn_endpoint_port(&c->ep));
	fflush(stdout);
	r = apn_endpoint_listen(&c->ep, &c->ia, &c->oa, timeout_s ? (int)timeout_s * 1000 : -1,
				&c->peer, other_event, (void *)c->prog);
	if (r == -ETIMEDOUT) {
		fprintf(stderr, "%s: nobody connected within %u s\n", c->prog, timeout_s);
		return 1;
	}
	if (r == -EPERM && c->untrusted)
		return apn_ex_fail(c, "accept (refused to an untrusted endpoint)", r);
	if (r)
		return apn_ex_fail(c, "accept", r);
	printf("APN-ACCEPTED host=%u port=%u in_index=%u nonce=0x%08x\n", c->peer.src_host,
	       c->peer.src_port, c->peer.in_index, c->peer.nonce);
	fflush(stdout);
	return 0;
}

int apn_ex_connect(struct apn_ex_conn *c, uint16_t host, uint16_t port, unsigned timeout_s)
{
	int r = apn_endpoint_dial(&c->ep, host, port, &c->ia, &c->oa,
				  timeout_s ? (int)timeout_s * 1000 : -1, &c->peer, other_event,
				  (void *)c->prog);

	switch (r) {
	case 0:
		break;
	case -ETIMEDOUT:
		fprintf(stderr, "%s: no answer from %u:%u within %u s: %s (nobody listening on that port, or the host is down)\n",
			c->prog, host, port, timeout_s, strerror(ETIMEDOUT));
		printf("APN-CONNECT-FAILED error=ETIMEDOUT host=%u port=%u\n", host, port);
		fflush(stdout);
		return 1;
	case -ECONNREFUSED:
		fprintf(stderr, "%s: %u:%u refused the connection (error %u)\n", c->prog, host, port,
			c->peer.info);
		printf("APN-CONNECT-FAILED error=ECONNREFUSED host=%u port=%u\n", host, port);
		fflush(stdout);
		return 1;
	case -EHOSTUNREACH:
		return apn_ex_fail(c, "connect (no MAC/IPv4 route to that host: apnctl route)", r);
	case -EPERM:
		if (c->untrusted)
			return apn_ex_fail(c, "connect (refused to an untrusted endpoint)", r);
		return apn_ex_fail(c, "connect", r);
	default:
		return apn_ex_fail(c, "connect", r);
	}
	printf("APN-CONNECTED host=%u port=%u in_index=%u nonce=0x%08x\n", c->peer.src_host,
	       c->peer.src_port, c->peer.in_index, c->peer.nonce);
	fflush(stdout);
	return 0;
}

int apn_ex_handshake(struct apn_ex_conn *c, const struct apn_ex_args *a)
{
	if (c->verbose && !a->listening)
		fprintf(stderr, "%s: connecting to %u:%u (%u s at most)\n", c->prog, a->peer_host,
			a->peer_port, a->timeout_s);
	if (a->listening)
		return apn_ex_accept(c, a->timeout_s);
	return apn_ex_connect(c, a->peer_host, a->peer_port, a->timeout_s);
}

int apn_ex_events(struct apn_ex_conn *c)
{
	struct apn_event ev[8];
	int n, i;

	while ((n = apn_evq_poll(&c->ep, ev, 8)) > 0) {
		for (i = 0; i < n; i++) {
			struct apn_msg_info m;

			/* (untrusted: the kernel answers repeats itself) */
			if (ev[i].type == APN_EV_CONNECT && c->listening && !c->untrusted &&
			    !apn_event_msg(&ev[i], &m) &&
			    m.src_host == c->peer.src_host && m.src_port == c->peer.src_port &&
			    m.in_index == c->peer.in_index && m.nonce == c->peer.nonce) {
				/* our ACCEPT was lost: say it again */
				apn_endpoint_accept(&c->ep, &m, &c->ia);
				continue;
			}
			if (ev[i].type == APN_EV_ACCEPT && !c->listening)
				continue;          /* the answer to a repeated CONNECT */
			apn_mq_handle_event(&c->mq, &ev[i]);
			/* a dead peer refuses every store: report a few, not thousands */
			if (++c->events < APN_EX_LOG_EVENTS)
				log_event(c->prog, &ev[i]);
			else if (c->events == APN_EX_LOG_EVENTS)
				printf("APN-EVENTS more not shown\n");
		}
	}
	if (n < 0)
		return n;
	return c->mq.error == -ECONNRESET ? -ECONNRESET : 0;
}

int apn_ex_recv(struct apn_ex_conn *c, void *buf, size_t max)
{
	uint64_t start = 0;
	unsigned spins = 0;
	int r;

	while ((r = apn_mq_recv(&c->mq, buf, max)) == -EAGAIN) {
		if (!spins++)
			start = apn_ex_cycles();
		if (spins % APN_EX_CHECK_EVERY)
			continue;
		r = apn_ex_events(c);
		if (r)
			return r;
		if (c->timeout_cycles && apn_ex_cycles() - start > c->timeout_cycles)
			return -ETIMEDOUT;
	}
	return r;
}

int apn_ex_send(struct apn_ex_conn *c, const void *buf, size_t len)
{
	int r;

	while ((r = apn_mq_send(&c->mq, buf, len)) == -EAGAIN) {
		r = apn_ex_events(c);
		if (r)
			break;
	}
	return r;
}

/* ---- timing ------------------------------------------------------------------------------ */

static double mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

uint64_t apn_ex_cycles_slow(void)
{
	return (uint64_t)(mono_us() * 1000.0);
}

double apn_ex_cycles_per_us(void)
{
	const struct timespec pause = { 0, 100000000 };
	double t0 = mono_us(), t1;
	uint64_t c0 = apn_ex_cycles(), c1;

	nanosleep(&pause, NULL);
	t1 = mono_us();
	c1 = apn_ex_cycles();
	return t1 > t0 && c1 > c0 ? (double)(c1 - c0) / (t1 - t0) : 1.0;
}

/* ---- system calls ---------------------------------------------------------------------------- */

static long tracepoint_id(void)
{
	static const char *const paths[] = {
		"/sys/kernel/tracing/events/raw_syscalls/sys_enter/id",
		"/sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id",
	};
	unsigned i;

	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		FILE *f = fopen(paths[i], "r");
		long id;

		if (!f)
			continue;
		if (fscanf(f, "%ld", &id) != 1)
			id = -1;
		fclose(f);
		if (id >= 0)
			return id;
	}
	return -1;
}

static uint64_t sysc_read(const struct apn_ex_sysc *s)
{
	uint64_t v = 0;

	if (read(s->fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
		return 0;
	return v;
}

void apn_ex_sysc_open(struct apn_ex_sysc *s)
{
	struct perf_event_attr attr;
	long id = tracepoint_id();

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->syscalls = -1;
	if (id < 0) {
		s->why = "no raw_syscalls:sys_enter tracepoint (mount tracefs on /sys/kernel/tracing)";
		return;
	}
	memset(&attr, 0, sizeof(attr));
	attr.type = PERF_TYPE_TRACEPOINT;
	attr.size = sizeof(attr);
	attr.config = (uint64_t)id;
	attr.disabled = 1;
	s->fd = (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (s->fd < 0) {
		s->why = "perf_event_open refused (perf_event_paranoid, or no permission)";
		return;
	}
	/* what an empty start/stop counts (the stop's own ioctl) */
	ioctl(s->fd, PERF_EVENT_IOC_RESET, 0);
	ioctl(s->fd, PERF_EVENT_IOC_ENABLE, 0);
	ioctl(s->fd, PERF_EVENT_IOC_DISABLE, 0);
	s->overhead = sysc_read(s);
	/* a counter that counts nothing would say 0 too: it must see three getppid() */
	ioctl(s->fd, PERF_EVENT_IOC_RESET, 0);
	ioctl(s->fd, PERF_EVENT_IOC_ENABLE, 0);
	syscall(SYS_getppid);
	syscall(SYS_getppid);
	syscall(SYS_getppid);
	ioctl(s->fd, PERF_EVENT_IOC_DISABLE, 0);
	if (sysc_read(s) != s->overhead + 3) {
		close(s->fd);
		s->fd = -1;
		s->why = "the sys_enter counter does not count this process's system calls";
	}
}

void apn_ex_sysc_start(struct apn_ex_sysc *s)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	s->nvcsw = ru.ru_nvcsw;
	s->nivcsw = ru.ru_nivcsw;
	if (s->fd >= 0) {
		ioctl(s->fd, PERF_EVENT_IOC_RESET, 0);
		ioctl(s->fd, PERF_EVENT_IOC_ENABLE, 0);
	}
}

void apn_ex_sysc_stop(struct apn_ex_sysc *s)
{
	struct rusage ru;

	if (s->fd >= 0) {
		uint64_t v;

		ioctl(s->fd, PERF_EVENT_IOC_DISABLE, 0);
		v = sysc_read(s);
		s->syscalls = v >= s->overhead ? (long long)(v - s->overhead) : 0;
	}
	getrusage(RUSAGE_SELF, &ru);
	s->vol_ctxsw = ru.ru_nvcsw - s->nvcsw;
	s->invol_ctxsw = ru.ru_nivcsw - s->nivcsw;
}

void apn_ex_sysc_close(struct apn_ex_sysc *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

void apn_ex_sysc_print(FILE *f, const struct apn_ex_sysc *s)
{
	if (s->syscalls >= 0)
		fprintf(f, " syscalls=%lld", s->syscalls);
	else
		fprintf(f, " syscalls=n/a");
	if (s->syscalls < 0 && s->why)
		fprintf(stderr, "system calls not counted: %s\n", s->why);
	fprintf(f, " vol_ctxsw=%ld invol_ctxsw=%ld", s->vol_ctxsw, s->invol_ctxsw);
}

/* ---- small helpers ------------------------------------------------------------------------------ */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

uint64_t apn_ex_quantile(uint64_t *v, size_t n, double q)
{
	size_t i;

	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_u64);
	i = (size_t)(q * (double)n + 0.999999);      /* nearest rank: ceil(q n) */
	if (i > n)
		i = n;
	return v[i ? i - 1 : 0];
}

/* An unsigned decimal (or 0x hex) number <= max. 0 or -EINVAL. */
static int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (*end || errno || v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* "HOST:PORT" (as the tools take it). 0 or -EINVAL. */
static int parse_hostport(const char *s, uint16_t *host, uint16_t *port)
{
	const char *colon = s ? strchr(s, ':') : NULL;
	uint32_t h, p;
	char hs[16];

	if (!colon || (size_t)(colon - s) >= sizeof(hs))
		return -EINVAL;
	memcpy(hs, s, (size_t)(colon - s));
	hs[colon - s] = '\0';
	if (parse_u32(hs, 65535, &h) || parse_u32(colon + 1, 65535, &p) || !p)
		return -EINVAL;
	*host = (uint16_t)h;
	*port = (uint16_t)p;
	return 0;
}

/* ---- the command line ---------------------------------------------------------------------- */

#define HELP_COLUMN   16
#define OPT_UNTRUSTED 0x100        /* --untrusted: no short form */

static const char common_synopsis[] = " [-t TIMEOUT_S] [-d DEV] [--untrusted] [-v]";

/* "  -n COUNT      help", the help's further lines indented as far */
static void print_option(FILE *f, const char *name, const char *arg, const char *help)
{
	int n = fprintf(f, "  %s%s%s", name, arg ? " " : "", arg ? arg : "");

	fprintf(f, "%*s", n < HELP_COLUMN - 1 ? HELP_COLUMN - n : 2, "");
	for (; *help; help++) {
		fputc(*help, f);
		if (*help == '\n')
			fprintf(f, "%*s", HELP_COLUMN, "");
	}
	fputc('\n', f);
}

/*
 * The synopsis: each form on its own line (continuation lines start with a blank),
 * the common options where a form says [COMMON], else at its end.
 */
static void print_synopsis(FILE *f, const char *prog, const char *s)
{
	static const char marker[] = "[COMMON]";
	int width = (int)strlen(prog) + 8;        /* "usage: PROG " */
	int first = 1, placed = 0;

	while (*s) {
		const char *end = strchr(s, '\n');
		size_t len = end ? (size_t)(end - s) : strlen(s);
		const char *mark = memmem(s, len, marker, sizeof(marker) - 1);

		if (*s == ' ')
			fprintf(f, "%*s", width - 1, "");
		else
			fprintf(f, "%s%s ", first ? "usage: " : "       ", prog);
		if (mark) {
			size_t before = (size_t)(mark - s), skip = sizeof(marker) - 1;

			fwrite(s, 1, before, f);
			fputs(common_synopsis + 1, f);
			fwrite(mark + skip, 1, len - before - skip, f);
			placed = 1;
		} else {
			fwrite(s, 1, len, f);
		}
		/* a form ends where the next line does not continue it */
		if (!end || end[1] != ' ') {
			if (!placed)
				fputs(common_synopsis, f);
			placed = 0;
		}
		fputc('\n', f);
		first = 0;
		s += len + (end ? 1 : 0);
	}
}

static void usage(FILE *f, const struct apn_ex_cmd *cmd)
{
	const struct apn_ex_opt *o;
	char def[96];

	print_synopsis(f, cmd->prog, cmd->synopsis);
	print_option(f, "-L", "PORT", cmd->listen_help);
	print_option(f, "-C", "HOST:PORT", cmd->connect_help);
	for (o = cmd->opts; o && o->letter; o++) {
		char name[3] = { '-', o->letter, '\0' };

		print_option(f, name, o->arg, o->help);
	}
	snprintf(def, sizeof(def), "%s (default 30)", cmd->timeout_help ? cmd->timeout_help :
		 "seconds to connect and to wait for any one reply");
	print_option(f, "-t", "TIMEOUT_S", def);
	print_option(f, "-d", "DEV", "device (default " APN_DEFAULT_DEVICE ")");
	print_option(f, "--untrusted", NULL,
		     "an endpoint without APN_ENDPOINT_F_TRUSTED (default: trusted, which\n"
		     "needs CAP_NET_ADMIN or the driver's trust_users=1)");
	print_option(f, "-v, --verbose", NULL, "say what the set-up does, on stderr");
	print_option(f, "-h, --help", NULL, "this text");
	fputs(cmd->epilogue, f);
}

int apn_ex_bad_usage(const struct apn_ex_cmd *cmd, const char *msg, const char *arg)
{
	if (msg)
		fprintf(stderr, "%s: %s%s%s\n", cmd->prog, msg, arg ? ": " : "", arg ? arg : "");
	usage(stderr, cmd);
	return 2;
}

/* Is s exactly one of the '|'-separated words? Its index, or -1. */
static int word_index(const char *words, const char *s)
{
	size_t len = strlen(s);
	int i;

	for (i = 0; *words; i++) {
		const char *bar = strchr(words, '|');
		size_t wlen = bar ? (size_t)(bar - words) : strlen(words);

		if (wlen == len && !strncmp(words, s, len))
			return i;
		if (!bar)
			break;
		words = bar + 1;
	}
	return -1;
}

/* N, or MIN-MAX with MIN <= MAX, both within [lo, hi]. 0 or -EINVAL. */
static int parse_range(const char *s, uint32_t lo, uint32_t hi, uint32_t *min, uint32_t *max)
{
	const char *dash = strchr(s, '-');
	char first[16];

	if (!dash) {
		if (parse_u32(s, hi, min) || *min < lo)
			return -EINVAL;
		*max = *min;
		return 0;
	}
	if ((size_t)(dash - s) >= sizeof(first))
		return -EINVAL;
	memcpy(first, s, (size_t)(dash - s));
	first[dash - s] = '\0';
	if (parse_u32(first, hi, min) || parse_u32(dash + 1, hi, max) || *min < lo || *min > *max)
		return -EINVAL;
	return 0;
}

/* Parses one of the program's own options; 0, or 2 after saying why. */
static int parse_own(const struct apn_ex_cmd *cmd, const struct apn_ex_opt *o, const char *arg)
{
	char why[96];
	uint32_t v;
	int i;

	switch (o->type) {
	case APN_EX_NUM:
		if (!parse_u32(arg, o->max, &v) && v >= o->min) {
			*o->val = v;
			return 0;
		}
		snprintf(why, sizeof(why), "bad %s (%u..%u)", o->arg, o->min, o->max);
		break;
	case APN_EX_POW2:
		if (!parse_u32(arg, o->max, &v) && v >= o->min && !(v & (v - 1))) {
			*o->val = v;
			return 0;
		}
		snprintf(why, sizeof(why), "bad %s (power of two, %u..%u)", o->arg, o->min, o->max);
		break;
	case APN_EX_RANGE:
		if (!parse_range(arg, o->min, o->max, o->val, o->val_hi))
			return 0;
		snprintf(why, sizeof(why), "bad %s (MIN <= MAX, both %u..%u)", o->arg, o->min, o->max);
		break;
	case APN_EX_WORD:
		i = word_index(o->words, arg);
		if (i >= 0) {
			*o->val = (uint32_t)i;
			return 0;
		}
		snprintf(why, sizeof(why), "bad %s (one of %s)", o->arg, o->words);
		break;
	default:
		snprintf(why, sizeof(why), "-%c: unknown option type", o->letter);
		break;
	}
	return apn_ex_bad_usage(cmd, why, arg);
}

int apn_ex_parse_args(const struct apn_ex_cmd *cmd, int argc, char **argv,
		      struct apn_ex_args *a)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "untrusted", no_argument, NULL, OPT_UNTRUSTED },
		{ NULL, 0, NULL, 0 },
	};
	char optstring[64] = "L:C:t:d:vh";
	const struct apn_ex_opt *o;
	int have_l = 0, have_c = 0, opt;
	size_t n = strlen(optstring);
	uint32_t v;

	for (o = cmd->opts; o && o->letter && n + 3 <= sizeof(optstring); o++) {
		optstring[n++] = o->letter;
		optstring[n++] = ':';
		optstring[n] = '\0';
	}
	memset(a, 0, sizeof(*a));
	a->prog = cmd->prog;
	a->timeout_s = 30;
	while ((opt = getopt_long(argc, argv, optstring, longopts, NULL)) != -1) {
		switch (opt) {
		case 'L':
			if (parse_u32(optarg, 65535, &v) || !v)
				return apn_ex_bad_usage(cmd, "bad PORT (1..65535)", optarg);
			a->port = (uint16_t)v;
			have_l = 1;
			break;
		case 'C':
			if (parse_hostport(optarg, &a->peer_host, &a->peer_port))
				return apn_ex_bad_usage(cmd, "bad HOST:PORT", optarg);
			have_c = 1;
			break;
		case 't':
			if (parse_u32(optarg, 86400, &a->timeout_s) || !a->timeout_s)
				return apn_ex_bad_usage(cmd, "bad TIMEOUT (1..86400 s)", optarg);
			break;
		case 'd':
			a->dev = optarg;
			break;
		case 'v':
			a->verbose = 1;
			break;
		case OPT_UNTRUSTED:
			a->untrusted = 1;
			break;
		case 'h':
			usage(stdout, cmd);
			return 0;
		default:
			for (o = cmd->opts; o && o->letter && o->letter != opt; o++)
				;
			/* '?': getopt has said what is wrong */
			if (opt == '?' || !o || !o->letter)
				return apn_ex_bad_usage(cmd, NULL, NULL);
			if (parse_own(cmd, o, optarg))
				return 2;
		}
	}
	if (optind != argc && !(cmd->flags & APN_EX_F_ARGS))
		return apn_ex_bad_usage(cmd, "unexpected argument", argv[optind]);
	if (have_l == have_c)
		return apn_ex_bad_usage(cmd, "need exactly one of -L PORT and -C HOST:PORT", NULL);
	a->listening = have_l;
	if (!have_l)
		a->port = 0;
	a->rest = argv + optind;
	a->nrest = argc - optind;
	return -1;
}
