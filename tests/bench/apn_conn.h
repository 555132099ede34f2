/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A user-level apertnic connection for the benchmark tools, with libapertnic's
 * public API only (the same steps as apn-send -C / apn-recv -L): a trusted
 * endpoint, registered memory behind an incoming aperture, and an outgoing
 * aperture aimed by the CONNECT/ACCEPT exchange (seed 004) through the user page.
 * Set-up sleeps in apn_endpoint_wait(); the data path after it is stores and
 * polled memory only.
 */
#ifndef APN_CONN_H
#define APN_CONN_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include <apertnic/apertnic.h>

#include "bench_util.h"

struct apn_conn {
	struct apn_device dev;
	struct apn_endpoint ep;
	struct apn_mr mr;
	struct apn_in_aperture ia;
	struct apn_out_aperture oa;
	unsigned char *buf;       /* our memory the peer writes (the incoming aperture) */
	size_t map_len, in_size, out_size;
	struct apn_msg_info peer; /* the last CONNECT accepted, or the ACCEPT */
	int have_peer;
};

static inline int apn_conn_fail(const char *prog, const char *what, int err)
{
	fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(err < 0 ? -err : err));
	return -1;
}

/*
 * Opens the device, a trusted endpoint on `port` (0: any), in_size bytes of
 * registered memory behind one incoming aperture, and an outgoing aperture of
 * out_size bytes aimed nowhere yet. Sizes are powers of two >= 4096.
 */
static inline int apn_conn_open(struct apn_conn *c, const char *prog, uint16_t port,
				size_t in_size, size_t out_size)
{
	struct apn_endpoint_attr attr = { .port = port, .flags = APN_ENDPOINT_F_TRUSTED };
	int r;

	memset(c, 0, sizeof(*c));
	c->in_size = in_size;
	c->out_size = out_size;
	c->map_len = in_size;
	r = apn_device_open(&c->dev, NULL);
	if (r)
		return apn_conn_fail(prog, APN_DEFAULT_DEVICE, r);
	r = apn_endpoint_create(&c->ep, &c->dev, &attr);
	if (r)
		return apn_conn_fail(prog, "create trusted endpoint", r);
	c->buf = mmap(NULL, c->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (c->buf == MAP_FAILED)
		return apn_conn_fail(prog, "mmap", errno);
	memset(c->buf, 0, c->map_len);
	r = apn_mr_reg(&c->mr, &c->ep, c->buf, c->map_len);
	if (r)
		return apn_conn_fail(prog, "register memory", r);
	r = apn_in_aperture_create(&c->ia, &c->ep, &c->mr, 0, in_size, 0, 0);
	if (r)
		return apn_conn_fail(prog, "create incoming aperture", r);
	r = apn_out_aperture_create(&c->oa, &c->ep, 0, 0, 0, out_size);
	if (r)
		return apn_conn_fail(prog, "create outgoing aperture", r);
	return 0;
}

static inline void apn_conn_close(struct apn_conn *c)
{
	apn_out_aperture_destroy(&c->oa);
	apn_in_aperture_destroy(&c->ia);
	apn_mr_dereg(&c->mr);
	munmap(c->buf, c->map_len);
	apn_endpoint_destroy(&c->ep);
	apn_device_close(&c->dev);
}

/* The next event, sleeping until `deadline` (bench_now() seconds). 1, 0 or -errno. */
static inline int apn_conn_next_event(struct apn_conn *c, double deadline, struct apn_event *ev)
{
	for (;;) {
		double left = deadline - bench_now();
		int r = apn_evq_poll(&c->ep, ev, 1);

		if (r)
			return r;
		if (left <= 0)
			return 0;
		r = apn_endpoint_wait(&c->ep, left > 3600 ? 3600000 : (int)(left * 1000) + 1);
		if (r < 0 && r != -EINTR)
			return r;
	}
}

/* Client: CONNECT to host:port (again every second) until its ACCEPT; aims oa. */
static inline int apn_conn_dial(struct apn_conn *c, const char *prog, uint16_t host,
				uint16_t port, double timeout_s)
{
	double deadline = bench_now() + timeout_s;
	struct apn_msg_info m;
	struct apn_event ev;
	int r;

	for (;;) {
		double next = bench_now() + 1;

		r = apn_endpoint_connect(&c->ep, host, port, &c->ia);
		if (r)
			return apn_conn_fail(prog, "send CONNECT", r);
		for (;;) {
			r = apn_conn_next_event(c, next < deadline ? next : deadline, &ev);
			if (r < 0)
				return apn_conn_fail(prog, "wait for events", r);
			if (!r)
				break;
			if (ev.type != APN_EV_ACCEPT || apn_event_msg(&ev, &m) || m.src_host != host)
				continue;
			r = apn_out_aperture_connect(&c->oa, m.src_host, m.in_index, m.nonce);
			if (r)
				return apn_conn_fail(prog, "aim outgoing aperture", r);
			c->peer = m;
			c->have_peer = 1;
			return 0;
		}
		if (bench_now() >= deadline) {
			fprintf(stderr, "%s: no ACCEPT from %u:%u\n", prog, host, port);
			return -1;
		}
	}
}

/*
 * Server: sleeps until a CONNECT that is not a repeat of the one accepted last
 * (repeats are dropped: that client is gone), clears our memory of the last
 * session's stores, aims oa at the connector and answers ACCEPT. The session id
 * is the low 16 bits of the connector's nonce. Returns the session id | 0x10000,
 * 0 at the deadline, -1 on error.
 */
static inline long apn_conn_accept(struct apn_conn *c, const char *prog, double deadline)
{
	struct apn_msg_info m;
	struct apn_event ev;
	int r;

	for (;;) {
		r = apn_conn_next_event(c, deadline, &ev);
		if (r < 0)
			return apn_conn_fail(prog, "wait for events", r);
		if (!r)
			return 0;
		if (ev.type != APN_EV_CONNECT || apn_event_msg(&ev, &m))
			continue;
		if (c->have_peer && m.src_host == c->peer.src_host && m.src_port == c->peer.src_port &&
		    m.in_index == c->peer.in_index && m.nonce == c->peer.nonce)
			continue;
		memset(c->buf, 0, c->map_len);
		r = apn_out_aperture_connect(&c->oa, m.src_host, m.in_index, m.nonce);
		if (r)
			return apn_conn_fail(prog, "aim outgoing aperture", r);
		r = apn_endpoint_accept(&c->ep, &m, &c->ia);
		if (r)
			return apn_conn_fail(prog, "send ACCEPT", r);
		c->peer = m;
		c->have_peer = 1;
		return (long)(uint16_t)m.nonce | 0x10000; /* nonzero even for session 0 */
	}
}

/*
 * A tool's server side: apn_conn_open() on PORT, then "BENCH PROG ROLE port=P
 * in_index=I" on stdout. 0, or -1 after saying why.
 */
static inline int apn_conn_serve(struct apn_conn *c, const char *prog, const char *role,
				 long port, size_t in_size, size_t out_size)
{
	if (apn_conn_open(c, prog, (uint16_t)port, in_size, out_size))
		return -1;
	printf("BENCH %s %s port=%u in_index=%u\n", prog, role, apn_endpoint_port(&c->ep),
	       c->ia.in_index);
	fflush(stdout);
	return 0;
}

/*
 * A tool's client side: apn_conn_open() on any port and apn_conn_dial() the server
 * at -c HOST (a cluster host id, 0..65535, else the usage), -P PORT, for 30 s.
 * 0, or -1 after saying why.
 */
static inline int apn_conn_client(struct apn_conn *c, const struct bench_args *a,
				  size_t in_size, size_t out_size)
{
	long host;

	if (bench_parse_long(a->host, 0, 65535, &host))
		bench_bad_option(a, 'c', "HOST (a cluster host id, 0..65535)", a->host);
	if (apn_conn_open(c, a->prog, 0, in_size, out_size))
		return -1;
	return apn_conn_dial(c, a->prog, (uint16_t)host, (uint16_t)a->port, 30);
}

/* Stores one naturally aligned 64-bit word into the outgoing aperture. */
static inline void apn_conn_store64(struct apn_conn *c, size_t off, uint64_t v)
{
	/* the library's copy: one store, made the way TCG runs cheapest */
	apn_out_aperture_write(&c->oa, off, &v, sizeof(v));
}

/* Reads a 64-bit word of our own memory that the peer writes. */
static inline uint64_t apn_conn_load64(const struct apn_conn *c, size_t off)
{
	return *(volatile const uint64_t *)(c->buf + off);
}

#endif /* APN_CONN_H */
