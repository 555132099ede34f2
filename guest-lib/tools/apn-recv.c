// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * apn-recv: expose a buffer through an incoming aperture, print where it is
 * (APN-READY), wait until a sender's "done" word at offset SIZE-4 turns nonzero and
 * print what arrived (APN-RECEIVED).
 *
 * With -L PORT it is the listening side of a connection set up at user level
 * (seed 004): a trusted endpoint on PORT waits (asleep, woken by the device's
 * interrupt) for a CONNECT, aims its outgoing aperture at the connector's
 * incoming aperture through the user page, answers ACCEPT with its own, receives
 * one message and sends one back; with -R it also serves a reconnect, first
 * sending one store with the connector's stale nonce (which must be dropped).
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <apertnic/apertnic.h>
#include "apn_tool.h"

#define STALE_WORD 0xdeadbeefu

static void usage(FILE *f)
{
	fprintf(f,
		"usage: apn-recv [-d DEV] [-s SIZE] [-n NONCE] [-t TIMEOUT_S] [-l LEN]\n"
		"       apn-recv [-d DEV] -L PORT -m REPLY [-R REPLY2] [-s SIZE] [-t TIMEOUT_S] [-l LEN]\n"
		"  -d DEV      device (default " APN_DEFAULT_DEVICE ")\n"
		"  -s SIZE     incoming aperture bytes, power of two >= 64 (default 4096)\n"
		"  -n NONCE    use this nonce (default: random, chosen by the driver)\n"
		"  -t TIMEOUT  seconds to wait for the data (default 30, 0 = forever)\n"
		"  -l LEN      expected message length; the done word must equal it\n"
		"Prints 'APN-READY host=H in_index=I nonce=0xN', waits until the 32-bit\n"
		"little-endian word at SIZE-4 is nonzero, prints\n"
		"'APN-RECEIVED len=L hex=... text=...' and exits 0 (1 on error/timeout).\n"
		"\n"
		"  -L PORT     listen: a trusted endpoint on UDP PORT (needs CAP_NET_ADMIN or\n"
		"              trust_users=1) prints 'APN-READY host=H port=P in_index=I\n"
		"              nonce=0xN', sleeps until a CONNECT arrives, aims its outgoing\n"
		"              aperture at the connector's incoming one and answers ACCEPT\n"
		"              ('APN-ACCEPTED ...'), prints the message the connector stores\n"
		"              (APN-RECEIVED) and stores REPLY back (APN-SENT)\n"
		"  -m REPLY    the reply stored into the connector's aperture (as apn-send)\n"
		"  -R REPLY2   then wait for a reconnect (a CONNECT with a new nonce), store one\n"
		"              word with the old nonce first (APN-STALE-SENT; the connector's\n"
		"              NIC must drop it), accept, store REPLY2 and wait up to 5 s for\n"
		"              the device's report of the refusal (APN-TX-ERROR reason=...)\n");
}

static int bad_usage(const char *msg, const char *arg)
{
	if (msg)
		fprintf(stderr, "apn-recv: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
	usage(stderr);
	return 2;
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "apn-recv: %s: %s\n", what, strerror(-err));
	return 1;
}

/* ---- -L: the listening side of a user-level connection ------------------------- */

struct listener {
	struct apn_endpoint *ep;
	struct apn_in_aperture *ia;
	struct apn_out_aperture *oa;
	unsigned char *buf;
	uint32_t size;
	double deadline;
	struct apn_msg_info peer;  /* the CONNECT we accepted last */
	int have_peer;
};

/* Aims our outgoing aperture at the connector's incoming one, then says ACCEPT. */
static int accept_peer(struct listener *l, const struct apn_msg_info *m)
{
	int r = apn_out_aperture_connect(l->oa, m->src_host, m->in_index, m->nonce);

	if (r)
		return fail("aim outgoing aperture (user-page command)", r);
	r = apn_endpoint_accept(l->ep, m, l->ia);
	if (r)
		return fail("send ACCEPT", r);
	l->peer = *m;
	l->have_peer = 1;
	printf("APN-ACCEPTED host=%u port=%u in_index=%u nonce=0x%08x\n", m->src_host,
	       m->src_port, m->in_index, m->nonce);
	fflush(stdout);
	return 0;
}

/* A repeated CONNECT (our ACCEPT was lost): answer it again. */
static int same_connect(const struct listener *l, const struct apn_msg_info *m)
{
	return l->have_peer && m->src_host == l->peer.src_host && m->src_port == l->peer.src_port &&
	       m->in_index == l->peer.in_index && m->nonce == l->peer.nonce;
}

/*
 * Sleeps until a CONNECT that is not a repeat of the accepted one arrives and
 * returns it in *m (0), or 1 on timeout or error. Repeats are answered again.
 */
static int wait_connect(struct listener *l, struct apn_msg_info *m)
{
	struct apn_event ev;
	int r;

	for (;;) {
		r = apn_tool_next_event(l->ep, l->deadline, &ev);
		if (r < 0)
			return fail("wait for events", r);
		if (!r) {
			fprintf(stderr, "apn-recv: timed out waiting for CONNECT\n");
			return 1;
		}
		if (ev.type != APN_EV_CONNECT || apn_event_msg(&ev, m)) {
			apn_tool_log_event("apn-recv", &ev);
			continue;
		}
		if (!same_connect(l, m))
			return 0;
		if (accept_peer(l, m))
			return 1;
	}
}

/*
 * Waits for the connector's done word, answering repeated CONNECTs meanwhile.
 * Returns the word, 0 on timeout.
 */
static uint32_t wait_message(struct listener *l)
{
	const uint32_t *word = (const uint32_t *)(l->buf + l->size - 4);
	struct apn_msg_info m;
	struct apn_event ev;

	for (;;) {
		uint32_t v = apn_tool_wait_word(word, 0.01);

		if (v)
			return v;
		while (apn_evq_poll(l->ep, &ev, 1) == 1) {
			if (ev.type == APN_EV_CONNECT && !apn_event_msg(&ev, &m) &&
			    same_connect(l, &m))
				accept_peer(l, &m);
			else
				apn_tool_log_event("apn-recv", &ev);
		}
		if (apn_tool_now() >= l->deadline)
			return 0;
	}
}

/* Prints events until an APN_EV_TX_ERROR has been seen or `secs` pass. */
static void wait_tx_error(struct listener *l, double secs)
{
	double deadline = apn_tool_now() + secs;
	struct apn_event ev;

	if (deadline > l->deadline)
		deadline = l->deadline;
	while (apn_tool_next_event(l->ep, deadline, &ev) == 1) {
		apn_tool_log_event("apn-recv", &ev);
		if (ev.type == APN_EV_TX_ERROR)
			return;
	}
	fprintf(stderr, "apn-recv: no report of the refused stale store\n");
}

/* Stores msg at 0 and its length at SIZE-4 through our outgoing aperture, fenced. */
static int store_message(struct listener *l, const char *msg)
{
	uint32_t len = (uint32_t)strlen(msg), done = htole32(len);
	int r;

	r = apn_out_aperture_write(l->oa, 0, msg, len);
	if (!r) {
		apn_out_aperture_fence(l->oa);
		r = apn_out_aperture_write(l->oa, l->size - 4, &done, 4);
	}
	if (r)
		return fail("store reply", r);
	apn_out_aperture_fence(l->oa);
	printf(APN_SENT_TAG " len=%u\n", len);
	fflush(stdout);
	return 0;
}

static int listen_mode(struct apn_device *dev, const struct apn_device_info *info,
		       uint16_t port, uint32_t size, uint32_t want, uint32_t timeout,
		       const char *reply, const char *reply2)
{
	uint32_t done, stale = htole32(STALE_WORD);
	struct apn_tool_conn c;
	struct apn_msg_info m;
	struct listener l;
	int r, ret = 1;

	if (apn_tool_conn_open(&c, "apn-recv", dev, port, size))
		return 1;
	memset(&l, 0, sizeof(l));
	l.buf = c.buf;
	l.ep = &c.ep;
	l.ia = &c.ia;
	l.oa = &c.oa;
	l.size = size;
	l.deadline = timeout ? apn_tool_now() + timeout : 1e300;

	printf(APN_READY_TAG " host=%u port=%u in_index=%u nonce=0x%08x\n", info->host_id,
	       apn_endpoint_port(&c.ep), c.ia.in_index, c.ia.nonce);
	fflush(stdout);

	if (wait_connect(&l, &m) || accept_peer(&l, &m))
		goto out_conn;
	done = wait_message(&l);
	if (!done) {
		fprintf(stderr, "apn-recv: timed out waiting for the connector's message\n");
		goto out_conn;
	}
	if (apn_tool_print_received(stdout, "apn-recv", l.buf, done, size, want) ||
	    store_message(&l, reply))
		goto out_conn;

	if (reply2) {
		if (wait_connect(&l, &m))
			goto out_conn;
		/* Still aimed with the old nonce: the connector's NIC must drop this. */
		r = apn_out_aperture_write(&c.oa, size - 4, &stale, 4);
		if (r) {
			fail("store with the stale nonce", r);
			goto out_conn;
		}
		apn_out_aperture_fence(&c.oa);
		printf("APN-STALE-SENT nonce=0x%08x\n", c.oa.nonce);
		fflush(stdout);
		if (accept_peer(&l, &m) || store_message(&l, reply2))
			goto out_conn;
		/*
		 * The connector's NIC refused the stale store and said so: the
		 * device reports it to us as APN_EV_TX_ERROR (printed as
		 * APN-TX-ERROR). Give it a few seconds to arrive.
		 */
		wait_tx_error(&l, 5);
	}
	ret = 0;

out_conn:
	apn_tool_conn_close(&c);
	return ret;
}

int main(int argc, char **argv)
{
	const char *path = NULL, *reply = NULL, *reply2 = NULL;
	uint32_t size = 4096, nonce = 0, len = 0, timeout = 30, flags = 0, port = 0;
	struct apn_device dev;
	struct apn_device_info info;
	struct apn_endpoint ep;
	struct apn_mr mr;
	struct apn_in_aperture ia;
	struct apn_ready ready;
	size_t maplen;
	long pg = sysconf(_SC_PAGESIZE);
	unsigned char *buf;
	char line[128];
	uint32_t done;
	int opt, r, ret = 1;

	while ((opt = getopt(argc, argv, "d:s:n:t:l:L:m:R:")) != -1) {
		switch (opt) {
		case 'd':
			path = optarg;
			break;
		case 's':
			if (apn_tool_parse_u32(optarg, 1u << 30, &size) || size < 64 ||
			    (size & (size - 1)))
				return bad_usage("bad size (power of two, 64 .. 1 GiB)", optarg);
			break;
		case 'n':
			if (apn_tool_parse_u32(optarg, UINT32_MAX, &nonce))
				return bad_usage("bad nonce", optarg);
			flags |= APN_IA_F_NONCE;
			break;
		case 't':
			if (apn_tool_parse_u32(optarg, 1000000, &timeout))
				return bad_usage("bad timeout", optarg);
			break;
		case 'l':
			if (apn_tool_parse_u32(optarg, UINT32_MAX, &len) || !len)
				return bad_usage("bad length", optarg);
			break;
		case 'L':
			if (apn_tool_parse_u32(optarg, UINT16_MAX, &port) || !port)
				return bad_usage("bad port (1-65535)", optarg);
			break;
		case 'm':
			reply = optarg;
			break;
		case 'R':
			reply2 = optarg;
			break;
		default:
			return bad_usage(NULL, NULL);
		}
	}
	if (optind != argc)
		return bad_usage("unexpected argument", argv[optind]);
	if (len > size - 4)
		return bad_usage("length does not fit SIZE - 4", NULL);
	if (!port && (reply || reply2))
		return bad_usage("-m and -R need -L", NULL);
	if (port && (flags || !reply || !*reply || (reply2 && !*reply2)))
		return bad_usage("-L needs a non-empty -m REPLY and takes no -n", NULL);
	if (port && (strlen(reply) > size - 4 || (reply2 && strlen(reply2) > size - 4)))
		return bad_usage("REPLY does not fit SIZE - 4 bytes", NULL);

	r = apn_device_open(&dev, path);
	if (r)
		return fail(path ? path : APN_DEFAULT_DEVICE, r);
	r = apn_device_info(&dev, &info);
	if (r) {
		fail("device info", r);
		goto out_dev;
	}
	if (port) {
		ret = listen_mode(&dev, &info, (uint16_t)port, size, len, timeout, reply, reply2);
		goto out_dev;
	}
	r = apn_endpoint_create(&ep, &dev, NULL);
	if (r) {
		fail("create endpoint", r);
		goto out_dev;
	}

	if (pg <= 0)
		pg = 4096;
	maplen = ((size_t)size + (size_t)pg - 1) & ~((size_t)pg - 1);
	buf = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		fail("mmap buffer", -errno);
		goto out_ep;
	}
	madvise(buf, maplen, MADV_DONTFORK);   /* advice only; keep going if refused */
	memset(buf, 0, maplen);
	r = apn_mr_reg(&mr, &ep, buf, maplen);
	if (r) {
		fail(r == -ENOMEM || r == -EPERM ?
		     "register memory (check ulimit -l / RLIMIT_MEMLOCK)" : "register memory", r);
		goto out_buf;
	}
	r = apn_in_aperture_create(&ia, &ep, &mr, 0, size, flags, nonce);
	if (r) {
		fail("create incoming aperture", r);
		goto out_mr;
	}

	ready.host = info.host_id;
	ready.in_index = ia.in_index;
	ready.nonce = ia.nonce;
	apn_ready_format(line, sizeof(line), &ready);
	printf("%s\n", line);
	fflush(stdout);

	done = apn_tool_wait_word((const uint32_t *)(buf + size - 4), timeout);
	if (!done) {
		fprintf(stderr, "apn-recv: timed out after %u s waiting for data\n", timeout);
		goto out_ia;
	}
	ret = apn_tool_print_received(stdout, "apn-recv", buf, done, size, len);

out_ia:
	r = apn_in_aperture_destroy(&ia);
	if (r) {
		fail("destroy incoming aperture", r);
		ret = 1;
	}
out_mr:
	r = apn_mr_dereg(&mr);
	if (r) {
		fail("deregister memory", r);
		ret = 1;
	}
out_buf:
	munmap(buf, maplen);
out_ep:
	apn_endpoint_destroy(&ep);
out_dev:
	apn_device_close(&dev);
	return ret;
}
