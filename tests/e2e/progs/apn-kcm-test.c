// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * apn-kcm-test: kernel connection management (untrusted endpoints) and the CLOSE
 * a peer is sent, between two guests, through libapertnic. Both sides use
 * endpoints created without APN_ENDPOINT_F_TRUSTED, so every connection message
 * goes through the kernel (APN_IOC_CONNECT/ACCEPT, events posted with
 * APN_EV_F_POSTED).
 *
 *   listen PORT REPLY1 REPLY2   (guest B) checks that the user page's commands
 *       are refused (APN-KCM-UNTRUSTED ok), listens on PORT, prints the message
 *       the connector stores (APN-RECEIVED), stores REPLY1 back; listens again
 *       for the reconnect, stores one word through the first connection's
 *       aperture (stale nonce: must be dropped at the connector,
 *       APN-STALE-SENT), then REPLY2 through the new one; then waits for the
 *       connector's orderly close (APN-KCM-CLOSE flags= in_index= host=)
 *   dial HOST PORT MSG          (guest A, once B is ready) dials, stores MSG, prints the reply (APN-RECEIVED); replaces its incoming
 *       aperture (new nonce) and outgoing aperture and dials again (APN-KCM-RENONCE),
 *       prints REPLY2 and the stale store's drop (APN-RX-DROP); closes with
 *       apn_out_aperture_close() (APN-KCM-CLOSED)
 *   crash-dial HOST PORT        dials, stores a message, then dies by SIGKILL
 *       without closing anything: its kernel must close for it
 *   close-wait PORT             listens, prints the message, then waits for the
 *       dead connector's CLOSE (APN-KCM-PEER-CLOSE flags= in_index= host=)
 *
 * Messages land in the receiver's incoming aperture: payload at offset 8, then its
 * length at offset 0 (stored last, after a fence). Prints "APN-KCM-FAIL: why" and
 * exits 1 on any failure. Needs the routes (apn_routes_ip).
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apertnic_hw.h"      /* counter ids; before the public header */
#include <apertnic/apertnic.h>

#define AP_SIZE    4096
#define WAIT_S     120         /* bounds every wait: a hung peer fails the test */

struct side {
	struct apn_device dev;
	struct apn_endpoint ep;
	struct apn_mr mr;
	struct apn_in_aperture ia;
	struct apn_out_aperture oa;
	unsigned char *mem;
	uint16_t host;
};

static int fail(const char *fmt, ...)
{
	va_list ap;

	printf("APN-KCM-FAIL: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return 1;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static const char *reason(uint32_t id)
{
	const char *s = apn_counter_name(id);

	return s ? s : "?";
}

/* Prints what a side learns about its traffic; others go unprinted. */
static void note_event(const struct apn_event *ev)
{
	switch (ev->type) {
	case APN_EV_RX_DROP:
		printf("APN-RX-DROP reason=%s in_index=%u host=%u\n", reason(ev->info),
		       (unsigned)(uint32_t)ev->data, (unsigned)(uint16_t)(ev->data >> 32));
		break;
	case APN_EV_TX_ERROR:
		printf("APN-TX-ERROR reason=%s out_index=%u\n", reason(ev->info),
		       (unsigned)(uint32_t)ev->data);
		break;
	default:
		printf("APN-KCM-EVENT type=%u flags=%#x info=%u data=%#llx\n", ev->type, ev->flags,
		       ev->info, (unsigned long long)ev->data);
		break;
	}
	fflush(stdout);
}

static void other_event(void *arg, const struct apn_event *ev)
{
	(void)arg;
	note_event(ev);
}

/* An untrusted endpoint on port (0: any), 8 KiB registered, a 4 KiB incoming aperture
 * over its start and an unaimed 4 KiB outgoing aperture. */
static int side_open(struct side *s, uint16_t port)
{
	struct apn_endpoint_attr attr = { .port = port };
	struct apn_device_info info;
	int r;

	memset(s, 0, sizeof(*s));
	r = apn_device_open(&s->dev, NULL);
	if (r)
		return fail("open the device: %s", strerror(-r));
	r = apn_device_info(&s->dev, &info);
	if (r)
		return fail("device info: %s", strerror(-r));
	s->host = info.host_id;
	if (!(info.caps & APN_DEVICE_CAP_KERNEL_CM))
		return fail("the driver has no kernel connection management (caps %#x)",
			    info.caps);
	r = apn_endpoint_create(&s->ep, &s->dev, &attr);
	if (r)
		return fail("untrusted endpoint on port %u: %s", port, strerror(-r));
	if (s->ep.flags & APN_ENDPOINT_F_TRUSTED)
		return fail("the endpoint is trusted");
	s->mem = aligned_alloc(4096, 2 * AP_SIZE);
	if (!s->mem)
		return fail("out of memory");
	memset(s->mem, 0, 2 * AP_SIZE);
	r = apn_mr_reg(&s->mr, &s->ep, s->mem, 2 * AP_SIZE);
	if (!r)
		r = apn_in_aperture_create(&s->ia, &s->ep, &s->mr, 0, AP_SIZE, 0, 0);
	if (!r)
		r = apn_out_aperture_create(&s->oa, &s->ep, 0, 0, 0, AP_SIZE);
	if (r)
		return fail("memory and apertures: %s", strerror(-r));
	return 0;
}

/* Stores payload at offset 8, then its length at 0: the receiver sees it whole. */
static int store_msg(struct apn_out_aperture *oa, const char *msg)
{
	uint32_t len = (uint32_t)strlen(msg);
	int r = apn_out_aperture_write(oa, 8, msg, len);

	apn_out_aperture_fence(oa);
	if (!r)
		r = apn_out_aperture_write(oa, 0, &len, 4);
	apn_out_aperture_fence(oa);
	return r;
}

/* Waits for a message in our incoming aperture, prints it, clears the length. */
static int recv_msg(struct side *s)
{
	volatile uint32_t *lenp = (volatile uint32_t *)s->mem;
	unsigned i, waited;
	uint32_t len;

	for (waited = 0; !*lenp && waited < WAIT_S * 100; waited++)
		sleep_ms(10);
	len = *lenp;
	if (!len || len > AP_SIZE - 8)
		return fail("no message in our aperture (length word %u)", len);
	printf("APN-RECEIVED len=%u hex=", len);
	for (i = 0; i < len; i++)
		printf("%02x", s->mem[8 + i]);
	printf(" text=%.*s\n", (int)len, (const char *)s->mem + 8);
	fflush(stdout);
	*lenp = 0;
	return 0;
}

/* Takes events until one of `type` with all of `flags`: 0 with *ev, or 1 (failed). */
static int wait_event(struct side *s, uint8_t type, uint8_t flags, struct apn_event *ev)
{
	time_t until = time(NULL) + WAIT_S;
	int r;

	while (time(NULL) < until) {
		r = apn_endpoint_wait(&s->ep, 1000);
		if (r < 0)
			return fail("wait: %s", strerror(-r));
		while (apn_evq_poll(&s->ep, ev, 1) == 1) {
			if (ev->type == type && (ev->flags & flags) == flags)
				return 0;
			note_event(ev);
		}
	}
	return fail("no event %u (flags %#x) within %d s", type, flags, WAIT_S);
}

/* Events already queued, printed (the stale store's drop arrives before REPLY2). */
static void drain_events(struct side *s)
{
	struct apn_event ev;

	while (apn_evq_poll(&s->ep, &ev, 1) == 1)
		note_event(&ev);
}

static int do_dial(struct side *s, uint16_t host, uint16_t port, const char *what)
{
	struct apn_msg_info peer;
	int r = apn_endpoint_dial(&s->ep, host, port, &s->ia, &s->oa, WAIT_S * 1000, &peer,
				  other_event, NULL);

	if (r)
		return fail("%s to %u:%u: %s", what, host, port, strerror(-r));
	printf("APN-KCM-CONNECTED host=%u port=%u in_index=%u oa_dest=%u/%u\n", peer.src_host,
	       peer.src_port, peer.in_index, s->oa.dest_host, s->oa.dest_in_index);
	fflush(stdout);
	return 0;
}

static int do_listen(struct side *s, struct apn_out_aperture *oa, struct apn_msg_info *peer)
{
	int r = apn_endpoint_listen(&s->ep, &s->ia, oa, WAIT_S * 1000, peer, other_event, NULL);

	if (r)
		return fail("listen: %s", strerror(-r));
	printf("APN-KCM-ACCEPTED host=%u port=%u in_index=%u\n", peer->src_host, peer->src_port,
	       peer->in_index);
	fflush(stdout);
	return 0;
}

static void print_ready(struct side *s)
{
	printf("APN-READY host=%u port=%u\n", s->host, apn_endpoint_port(&s->ep));
	fflush(stdout);
}

static int test_listen(uint16_t port, const char *reply1, const char *reply2)
{
	struct apn_out_aperture oa2;
	struct apn_msg_info peer;
	struct apn_event ev;
	uint32_t stale = 0x5741;
	struct side s;
	int r1, r2;

	if (side_open(&s, port))
		return 1;
	/* untrusted: the user page cannot aim an aperture or send a message */
	r1 = apn_out_aperture_connect(&s.oa, 1, 0, 1);
	r2 = apn_endpoint_send_msg(&s.ep, 1, 5000, APN_MSG_ALIVE, 0, 0, 0);
	if (r1 != -EPERM || r2 != -EPERM)
		return fail("untrusted endpoint: OUT_COMMIT %d, MSG_SEND %d, expected -EPERM",
			    r1, r2);
	printf("APN-KCM-UNTRUSTED ok\n");
	print_ready(&s);
	if (do_listen(&s, &s.oa, &peer) || recv_msg(&s) || store_msg(&s.oa, reply1))
		return 1;

	/* the reconnect: a new CONNECT (new aperture nonce), answered on a new aperture */
	if (apn_out_aperture_create(&oa2, &s.ep, 0, 0, 0, AP_SIZE))
		return fail("second outgoing aperture");
	if (do_listen(&s, &oa2, &peer))
		return 1;
	if (apn_out_aperture_write(&s.oa, 0, &stale, 4))
		return fail("stale store");
	apn_out_aperture_fence(&s.oa);
	printf("APN-STALE-SENT in_index=%u nonce=0x%08x\n", s.oa.dest_in_index, s.oa.nonce);
	fflush(stdout);
	if (store_msg(&oa2, reply2))
		return 1;

	/* the connector closes: APN_EV_CLOSE from the CLOSE segment, naming our aperture */
	if (wait_event(&s, APN_EV_CLOSE, APN_EV_F_APERTURE, &ev))
		return 1;
	printf("APN-KCM-CLOSE flags=%#x in_index=%u host=%u ours=%u\n", ev.flags, ev.info,
	       (unsigned)(uint16_t)(ev.data >> 32), s.ia.in_index);
	drain_events(&s);
	return 0;
}

static int test_dial(uint16_t host, uint16_t port, const char *msg)
{
	uint32_t old_index, old_nonce;
	struct side s;
	int r;

	if (side_open(&s, 0))
		return 1;
	if (do_dial(&s, host, port, "dial") || store_msg(&s.oa, msg) || recv_msg(&s))
		return 1;

	/* reconnect with a new nonce: the old incoming aperture and connection go */
	old_index = s.ia.in_index;
	old_nonce = s.ia.nonce;
	r = apn_out_aperture_destroy(&s.oa);
	if (!r)
		r = apn_in_aperture_destroy(&s.ia);
	memset(s.mem, 0, AP_SIZE);
	if (!r)
		r = apn_in_aperture_create(&s.ia, &s.ep, &s.mr, 0, AP_SIZE, 0, 0);
	if (!r)
		r = apn_out_aperture_create(&s.oa, &s.ep, 0, 0, 0, AP_SIZE);
	if (r)
		return fail("new apertures: %s", strerror(-r));
	printf("APN-KCM-RENONCE old_in_index=%u old_nonce=0x%08x in_index=%u nonce=0x%08x\n",
	       old_index, old_nonce, s.ia.in_index, s.ia.nonce);
	fflush(stdout);
	if (do_dial(&s, host, port, "redial") || recv_msg(&s))
		return 1;
	drain_events(&s);

	r = apn_out_aperture_close(&s.oa);
	printf("APN-KCM-CLOSED rc=%d\n", r);
	fflush(stdout);
	if (r)
		return fail("apn_out_aperture_close: %s", strerror(-r));
	/* destroyed after its close, so exiting sends no second CLOSE */
	r = apn_out_aperture_destroy(&s.oa);
	if (r)
		return fail("destroy after close: %s", strerror(-r));
	return 0;
}

static int test_crash_dial(uint16_t host, uint16_t port)
{
	struct side s;

	if (side_open(&s, 0))
		return 1;
	if (do_dial(&s, host, port, "dial") || store_msg(&s.oa, "last words"))
		return 1;
	printf("APN-KCM-CRASH\n");
	fflush(stdout);
	raise(SIGKILL);
	return 1;
}

static int test_close_wait(uint16_t port)
{
	struct apn_msg_info peer;
	struct apn_event ev;
	struct side s;

	if (side_open(&s, port))
		return 1;
	print_ready(&s);
	if (do_listen(&s, &s.oa, &peer) || recv_msg(&s))
		return 1;
	if (wait_event(&s, APN_EV_CLOSE, APN_EV_F_APERTURE, &ev))
		return 1;
	printf("APN-KCM-PEER-CLOSE flags=%#x in_index=%u host=%u ours=%u\n", ev.flags, ev.info,
	       (unsigned)(uint16_t)(ev.data >> 32), s.ia.in_index);
	fflush(stdout);
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: apn-kcm-test listen PORT REPLY1 REPLY2\n"
		"       apn-kcm-test dial HOST PORT MSG\n"
		"       apn-kcm-test crash-dial HOST PORT\n"
		"       apn-kcm-test close-wait PORT\n");
	return 2;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 5 && !strcmp(argv[1], "listen"))
		return test_listen((uint16_t)atoi(argv[2]), argv[3], argv[4]);
	if (argc == 5 && !strcmp(argv[1], "dial"))
		return test_dial((uint16_t)atoi(argv[2]), (uint16_t)atoi(argv[3]), argv[4]);
	if (argc == 4 && !strcmp(argv[1], "crash-dial"))
		return test_crash_dial((uint16_t)atoi(argv[2]), (uint16_t)atoi(argv[3]));
	if (argc == 3 && !strcmp(argv[1], "close-wait"))
		return test_close_wait((uint16_t)atoi(argv[2]));
	return usage();
}
