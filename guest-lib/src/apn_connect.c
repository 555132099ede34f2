// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libapertnic: seed 004's connection setup with retries and time limits, on top of
 * the connection messages (apn_endpoint_connect/accept) and apn_out_aperture_connect().
 */
#include <errno.h>
#include <stddef.h>

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

	for (;;) {
		int64_t next = apn__now_ms() + retry;

		r = apn_endpoint_connect(ep, host, port, ia);
		if (r)
			return r;
		if (deadline >= 0 && next > deadline)
			next = deadline;
		while ((r = next_event(ep, next, &ev)) == 1) {
			if (apn_event_msg(&ev, &m) || m.src_host != host ||
			    (m.type != APN_MSG_ACCEPT && m.type != APN_MSG_ERROR)) {
				pass_on(other, arg, &ev);
				continue;
			}
			if (peer)
				*peer = m;
			if (m.type == APN_MSG_ERROR)
				return -ECONNREFUSED;
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

	while ((r = next_event(ep, deadline, &ev)) == 1) {
		if (ev.type != APN_EV_CONNECT || apn_event_msg(&ev, &m)) {
			pass_on(other, arg, &ev);
			continue;
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
