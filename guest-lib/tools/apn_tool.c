// SPDX-License-Identifier: GPL-2.0-or-later
/* Helpers shared by the apertnic tools. */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <apertnic/apertnic.h>
#include "apn_tool.h"

int apn_tool_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || *s < '0' || *s > '9')   /* no sign, no blanks */
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (*end)
		return -EINVAL;
	if (errno == ERANGE || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int apn_tool_parse_u32(const char *s, uint32_t max, uint32_t *out)
{
	uint64_t v;
	int r = apn_tool_parse_u64(s, max, &v);

	if (!r)
		*out = (uint32_t)v;
	return r;
}

int apn_ready_parse(const char *line, struct apn_ready *out)
{
	const char *p = line ? strstr(line, APN_READY_TAG) : NULL;
	uint64_t host = 0, idx = 0, nonce = 0;
	unsigned seen = 0;

	if (!p)
		return -EINVAL;
	p += strlen(APN_READY_TAG);
	if (*p && *p != ' ' && *p != '\t')
		return -EINVAL;
	for (;;) {
		char tok[64];
		const char *eq;
		uint64_t *dst, max;
		unsigned bit;
		size_t n;

		p += strspn(p, " \t\r\n");
		if (!*p)
			break;
		n = strcspn(p, " \t\r\n");
		if (n >= sizeof(tok))
			return -EINVAL;
		memcpy(tok, p, n);
		tok[n] = '\0';
		p += n;
		eq = strchr(tok, '=');
		if (!eq)
			return -EINVAL;
		if (!strncmp(tok, "host=", 5))
			dst = &host, max = UINT16_MAX, bit = 1;
		else if (!strncmp(tok, "in_index=", 9))
			dst = &idx, max = UINT32_MAX, bit = 2;
		else if (!strncmp(tok, "nonce=", 6))
			dst = &nonce, max = UINT32_MAX, bit = 4;
		else
			continue;
		if ((seen & bit) || apn_tool_parse_u64(eq + 1, max, dst))
			return -EINVAL;
		seen |= bit;
	}
	if (seen != 7)
		return -EINVAL;
	out->host = (uint16_t)host;
	out->in_index = (uint32_t)idx;
	out->nonce = (uint32_t)nonce;
	return 0;
}

int apn_ready_format(char *buf, size_t size, const struct apn_ready *r)
{
	return snprintf(buf, size, APN_READY_TAG " host=%u in_index=%u nonce=0x%08x",
			(unsigned)r->host, (unsigned)r->in_index, (unsigned)r->nonce);
}

void apn_tool_hex(char *out, const void *data, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *d = data;
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[2 * len] = '\0';
}

void apn_tool_text(char *out, const void *data, size_t len)
{
	const unsigned char *d = data;
	size_t i;

	for (i = 0; i < len; i++)
		out[i] = d[i] >= 0x20 && d[i] < 0x7f ? (char)d[i] : '.';
	out[len] = '\0';
}

int apn_tool_parse_hostport(const char *s, uint16_t *host, uint16_t *port)
{
	const char *colon = s ? strchr(s, ':') : NULL;
	uint32_t h, p;
	char hs[16];
	int r;

	if (!colon || (size_t)(colon - s) >= sizeof(hs))
		return -EINVAL;
	memcpy(hs, s, (size_t)(colon - s));
	hs[colon - s] = '\0';
	r = apn_tool_parse_u32(hs, UINT16_MAX, &h);
	if (!r)
		r = apn_tool_parse_u32(colon + 1, UINT16_MAX, &p);
	if (!r && !p)
		r = -ERANGE;
	if (r)
		return r;
	*host = (uint16_t)h;
	*port = (uint16_t)p;
	return 0;
}

double apn_tool_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__asm__ __volatile__("pause" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

#define SPINS_PER_SLEEP 64

uint32_t apn_tool_wait_word(const uint32_t *word, double timeout_s)
{
	const struct timespec ms = { 0, 1000000 };
	double deadline = apn_tool_now() + timeout_s;

	for (;;) {
		int i;

		for (i = 0; i < SPINS_PER_SLEEP; i++) {
			/* acquire: the data DMA'd before the done word is visible after it */
			uint32_t v = __atomic_load_n(word, __ATOMIC_ACQUIRE);

			if (v)
				return le32toh(v);
			cpu_relax();
		}
		nanosleep(&ms, NULL);
		if (timeout_s > 0 && apn_tool_now() >= deadline)
			return le32toh(__atomic_load_n(word, __ATOMIC_ACQUIRE));
	}
}

int apn_tool_print_received(FILE *f, const char *prog, const void *buf, uint32_t done,
			    uint32_t size, uint32_t want)
{
	uint32_t n = done <= size - 4 ? done : size - 4;
	char *hex = malloc(2 * (size_t)n + 1), *text = malloc((size_t)n + 1);

	if (!hex || !text) {
		fprintf(stderr, "%s: out of memory\n", prog);
		free(hex);
		free(text);
		return 1;
	}
	apn_tool_hex(hex, buf, n);
	apn_tool_text(text, buf, n);
	fprintf(f, APN_RECEIVED_TAG " len=%u hex=%s text=%s\n", done, hex, text);
	fflush(f);
	free(hex);
	free(text);
	if (done > size - 4) {
		fprintf(stderr, "%s: done word %u exceeds SIZE - 4 = %u\n", prog, done, size - 4);
		return 1;
	}
	if (want && done != want) {
		fprintf(stderr, "%s: expected %u bytes, done word says %u\n", prog, want, done);
		return 1;
	}
	return 0;
}

int apn_tool_next_event(struct apn_endpoint *ep, double deadline, struct apn_event *ev)
{
	for (;;) {
		double left = deadline - apn_tool_now();
		int r = apn_evq_poll(ep, ev, 1);

		if (r)
			return r;
		if (left <= 0)
			return 0;
		r = apn_endpoint_wait(ep, left > 3600 ? 3600000 : (int)(left * 1000) + 1);
		if (r < 0 && r != -EINTR)
			return r;
	}
}

void apn_tool_log_event(const char *prog, const struct apn_event *ev)
{
	const char *reason = apn_counter_name(ev->info);

	switch (ev->type) {
	case APN_EV_RX_DROP:
		printf("APN-RX-DROP reason=%s in_index=%u host=%u\n", reason ? reason : "?",
		       (unsigned)(uint32_t)ev->data, (unsigned)(uint16_t)(ev->data >> 32));
		break;
	case APN_EV_TX_ERROR:
		printf("APN-TX-ERROR reason=%s out_index=%u remote_in_index=%u\n",
		       reason ? reason : "?", (unsigned)(uint32_t)ev->data,
		       (unsigned)(uint32_t)(ev->data >> 32));
		break;
	case APN_EV_OVERFLOW:
		printf("APN-OVERFLOW queue=%s lost=%u\n",
		       ev->flags & APN_EVF_OVERFLOW_VARQ ? "datagrams" : "events", ev->info);
		break;
	default:
		fprintf(stderr, "%s: event type %u info %u data %#llx\n", prog, ev->type,
			ev->info, (unsigned long long)ev->data);
		return;
	}
	fflush(stdout);
}

static int conn_fail(const char *prog, const char *what, int err)
{
	fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(-err));
	return 1;
}

int apn_tool_conn_open(struct apn_tool_conn *c, const char *prog, struct apn_device *dev,
		       uint16_t port, uint32_t size)
{
	struct apn_endpoint_attr attr = { .port = port, .flags = APN_ENDPOINT_F_TRUSTED };
	long pg = sysconf(_SC_PAGESIZE);
	int r;

	if (pg <= 0)
		pg = 4096;
	memset(c, 0, sizeof(*c));
	r = apn_endpoint_create(&c->ep, dev, &attr);
	if (r)
		return conn_fail(prog, r == -EPERM ?
				 "create trusted endpoint (needs CAP_NET_ADMIN or trust_users=1)" :
				 "create trusted endpoint", r);
	c->maplen = ((size_t)size + (size_t)pg - 1) & ~((size_t)pg - 1);
	c->buf = mmap(NULL, c->maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (c->buf == MAP_FAILED) {
		r = conn_fail(prog, "mmap buffer", -errno);
		goto out_ep;
	}
	/* a child must not share the pinned pages copy-on-write */
	madvise(c->buf, c->maplen, MADV_DONTFORK);
	memset(c->buf, 0, c->maplen);
	r = apn_mr_reg(&c->mr, &c->ep, c->buf, c->maplen);
	if (r) {
		r = conn_fail(prog, "register memory", r);
		goto out_buf;
	}
	r = apn_in_aperture_create(&c->ia, &c->ep, &c->mr, 0, size, 0, 0);
	if (r) {
		r = conn_fail(prog, "create incoming aperture", r);
		goto out_mr;
	}
	/* aimed by the handshake: nothing is stored before */
	r = apn_out_aperture_create(&c->oa, &c->ep, 0, 0, 0, size);
	if (r) {
		r = conn_fail(prog, "create outgoing aperture", r);
		goto out_ia;
	}
	return 0;

out_ia:
	apn_in_aperture_destroy(&c->ia);
out_mr:
	apn_mr_dereg(&c->mr);
out_buf:
	munmap(c->buf, c->maplen);
out_ep:
	apn_endpoint_destroy(&c->ep);
	return r;
}

void apn_tool_conn_close(struct apn_tool_conn *c)
{
	apn_out_aperture_destroy(&c->oa);
	apn_in_aperture_destroy(&c->ia);
	apn_mr_dereg(&c->mr);
	munmap(c->buf, c->maplen);
	apn_endpoint_destroy(&c->ep);
}
