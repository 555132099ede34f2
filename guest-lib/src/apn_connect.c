// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libapertnic: seed 004's connection setup with retries and time limits. Trusted
 * endpoints do it themselves, on top of the connection messages
 * (apn_endpoint_connect/accept) and apn_out_aperture_connect(); untrusted ones ask
 * the kernel (apn_endpoint_kconnect/kaccept), which aims their outgoing apertures
 * and posts what it did onto their event queues.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "apertnic.h"        /* guest-driver/uapi: APN_IOC_CONNECT/ACCEPT */
#include "apertnic_hw.h"
#include <apertnic/apertnic.h>
#include "apn_priv.h"

#define RETRY_FIRST_MS 200
#define RETRY_MAX_MS   1000

/* Milliseconds left until deadline (-1: none), never below 0. */
static int left_ms(int64_t deadline)
{
	int64_t rest;

	if (deadline < 0)
		return -1;
	rest = deadline - apn__now_ms();
	if (rest <= 0)
		return 0;
	return rest > 0x7fffffff ? 0x7fffffff : (int)rest;
}

/*
 * Takes the next event, sleeping until `until` (apn__now_ms() time, -1: forever).
 * Returns 1 with *ev, 0 when the time is up, or -errno.
 */
static int next_event(struct apn_endpoint *ep, int64_t until, struct apn_event *ev)
{
	for (;;) {
		int r = apn_evq_poll(ep, ev, 1);

		if (r)
			return r;
		r = left_ms(until);
		if (!r)
			return 0;
		r = apn_endpoint_wait(ep, r);
		if (r < 0)
			return r;
		if (!r && !left_ms(until))
			return 0;
	}
}

static void pass_on(apn_event_fn *other, void *arg, const struct apn_event *ev)
{
	if (other)
		other(arg, ev);
}

static int trusted(const struct apn_endpoint *ep)
{
	return !!(ep->flags & APN_ENDPOINT_F_TRUSTED);
}

APN_EXPORT int apn_endpoint_kconnect(struct apn_endpoint *ep, uint16_t host, uint16_t port,
				     const struct apn_in_aperture *ia,
				     const struct apn_out_aperture *oa)
{
	struct apn_conn_connect req;

	memset(&req, 0, sizeof(req));
	req.dest_host = host;
	req.dest_port = port;
	req.in_index = ia->in_index;
	req.out_index = oa->out_index;
	return apn__ioctl(ep->fd, APN_IOC_CONNECT, &req);
}

APN_EXPORT int apn_endpoint_kaccept(struct apn_endpoint *ep, const struct apn_msg_info *req,
				    const struct apn_in_aperture *ia, struct apn_out_aperture *oa,
				    struct apn_msg_info *peer)
{
	struct apn_conn_accept a;
	int same, r;

	memset(&a, 0, sizeof(a));
	a.in_index = ia->in_index;
	a.out_index = oa->out_index;
	if (req) {
		a.flags = APN_ACCEPT_PEER;
		a.peer_host = req->src_host;
		a.peer_port = req->src_port;
	}
	r = apn__ioctl(ep->fd, APN_IOC_ACCEPT, &a);
	if (r)
		return r;
	/* the kernel took the oldest CONNECT from that peer: usually req itself */
	same = req && req->in_index == a.peer_in_index;
	oa->dest_host = a.peer_host;
	oa->dest_in_index = a.peer_in_index;
	oa->nonce = same ? req->nonce : 0;
	if (peer) {
		if (same) {
			*peer = *req;
		} else {
			memset(peer, 0, sizeof(*peer));
			peer->type = APN_MSG_CONNECT;
			peer->src_host = a.peer_host;
			peer->src_port = a.peer_port;
			peer->in_index = a.peer_in_index;
			peer->info = a.peer_in_index;
		}
	}
	return 0;
}

/* A connection message the kernel posted (untrusted endpoints get no others). */
static int posted_msg(const struct apn_event *ev, struct apn_msg_info *m)
{
	if (!(ev->flags & APN_EV_F_POSTED))
		return -EINVAL;
	return apn_event_msg(ev, m);
}

APN_EXPORT int apn_endpoint_dial(struct apn_endpoint *ep, uint16_t host, uint16_t port,
				 const struct apn_in_aperture *ia, struct apn_out_aperture *oa,
				 int timeout_ms, struct apn_msg_info *peer, apn_event_fn *other,
				 void *arg)
{
	int64_t deadline = timeout_ms < 0 ? -1 : apn__now_ms() + timeout_ms;
	int retry = RETRY_FIRST_MS;
	struct apn_msg_info m;
	struct apn_event ev;
	int r;

	/* the kernel aims an untrusted endpoint's aperture: it needs one */
	if (!trusted(ep) && !oa)
		return -EINVAL;
	for (;;) {
		int64_t next = apn__now_ms() + retry;

		/* again with the same arguments: a retry, for the kernel too */
		r = trusted(ep) ? apn_endpoint_connect(ep, host, port, ia) :
				  apn_endpoint_kconnect(ep, host, port, ia, oa);
		if (r)
			return r;
		if (deadline >= 0 && next > deadline)
			next = deadline;
		while ((r = next_event(ep, next, &ev)) == 1) {
			if ((trusted(ep) ? apn_event_msg(&ev, &m) : posted_msg(&ev, &m)) ||
			    m.src_host != host ||
			    (m.type != APN_MSG_ACCEPT && m.type != APN_MSG_ERROR)) {
				pass_on(other, arg, &ev);
				continue;
			}
			if (peer)
				*peer = m;
			if (m.type == APN_MSG_ERROR)
				return -ECONNREFUSED;
			if (!trusted(ep)) {
				/* already aimed by the kernel: record where */
				oa->dest_host = m.src_host;
				oa->dest_in_index = m.in_index;
				oa->nonce = m.nonce;
				return 0;
			}
			return oa ? apn_out_aperture_connect(oa, m.src_host, m.in_index, m.nonce) : 0;
		}
		if (r < 0)
			return r;
		if (!left_ms(deadline))
			return -ETIMEDOUT;
		retry = retry * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : retry * 2;
	}
}

APN_EXPORT int apn_endpoint_listen(struct apn_endpoint *ep, const struct apn_in_aperture *ia,
				   struct apn_out_aperture *oa, int timeout_ms,
				   struct apn_msg_info *peer, apn_event_fn *other, void *arg)
{
	int64_t deadline = timeout_ms < 0 ? -1 : apn__now_ms() + timeout_ms;
	struct apn_msg_info m;
	struct apn_event ev;
	int r;

	if (!trusted(ep) && !oa)
		return -EINVAL;
	while ((r = next_event(ep, deadline, &ev)) == 1) {
		if (ev.type != APN_EV_CONNECT ||
		    (trusted(ep) ? apn_event_msg(&ev, &m) : posted_msg(&ev, &m))) {
			pass_on(other, arg, &ev);
			continue;
		}
		if (!trusted(ep)) {
			/* the kernel holds the CONNECT: aims oa, then answers ACCEPT */
			r = apn_endpoint_kaccept(ep, &m, ia, oa, peer);
			if (r == -EAGAIN)
				continue;       /* taken by another apn_endpoint_kaccept() */
			return r;
		}
		/* aimed before ACCEPT: the connector may expect our stores right after it */
		if (oa) {
			r = apn_out_aperture_connect(oa, m.src_host, m.in_index, m.nonce);
			if (r)
				return r;
		}
		r = apn_endpoint_accept(ep, &m, ia);
		if (r)
			return r;
		if (peer)
			*peer = m;
		return 0;
	}
	return r < 0 ? r : -ETIMEDOUT;
}
