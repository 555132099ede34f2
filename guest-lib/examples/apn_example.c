// SPDX-License-Identifier: GPL-2.0-or-later
/* What the example programs share; see apn_example.h. */
#include <errno.h>
#include <fcntl.h>
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

int apn_ex_open(struct apn_ex_conn *c, const char *prog, const char *dev, uint16_t port,
		uint32_t size)
{
	struct apn_endpoint_attr attr = { .port = port };

	return apn_ex_open_attr(c, prog, dev, &attr, size);
}

int apn_ex_open_attr(struct apn_ex_conn *c, const char *prog, const char *dev,
		     const struct apn_endpoint_attr *want, uint32_t size)
{
	struct apn_endpoint_attr attr = *want;
	long pg = sysconf(_SC_PAGESIZE);
	int r;

	memset(c, 0, sizeof(*c));
	c->prog = prog;
	c->listening = attr.port != 0;
	attr.flags |= APN_ENDPOINT_F_TRUSTED;
	r = apn_device_open(&c->dev, dev);
	if (r)
		return apn_ex_fail(c, dev ? dev : APN_DEFAULT_DEVICE, r);
	c->open = 1;
	r = apn_endpoint_create(&c->ep, &c->dev, &attr);
	if (r) {
		apn_ex_fail(c, r == -EPERM ? "trusted endpoint (needs CAP_NET_ADMIN or the driver's trust_users=1)" :
			    r == -EADDRINUSE ? "port in use" :
			    r == -EOPNOTSUPP ? "DMA queues (the device has none)" : "create endpoint", r);
		goto fail;
	}
	c->open = 2;
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
	default:
		return apn_ex_fail(c, "connect", r);
	}
	printf("APN-CONNECTED host=%u port=%u in_index=%u nonce=0x%08x\n", c->peer.src_host,
	       c->peer.src_port, c->peer.in_index, c->peer.nonce);
	fflush(stdout);
	return 0;
}

int apn_ex_events(struct apn_ex_conn *c)
{
	struct apn_event ev[8];
	int n, i;

	while ((n = apn_evq_poll(&c->ep, ev, 8)) > 0) {
		for (i = 0; i < n; i++) {
			struct apn_msg_info m;

			if (ev[i].type == APN_EV_CONNECT && c->listening && !apn_event_msg(&ev[i], &m) &&
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

int apn_ex_parse_u32(const char *s, uint32_t max, uint32_t *out)
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

int apn_ex_parse_hostport(const char *s, uint16_t *host, uint16_t *port)
{
	const char *colon = s ? strchr(s, ':') : NULL;
	uint32_t h, p;
	char hs[16];

	if (!colon || (size_t)(colon - s) >= sizeof(hs))
		return -EINVAL;
	memcpy(hs, s, (size_t)(colon - s));
	hs[colon - s] = '\0';
	if (apn_ex_parse_u32(hs, 65535, &h) || apn_ex_parse_u32(colon + 1, 65535, &p) || !p)
		return -EINVAL;
	*host = (uint16_t)h;
	*port = (uint16_t)p;
	return 0;
}
