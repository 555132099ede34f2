// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * apn-send: store a message into a remote incoming aperture through an outgoing
 * aperture, then a 32-bit "done" word (the length) at offset SIZE-4.
 *
 * With -C HOST:PORT it is the connecting side of a connection set up at user
 * level (seed 004): a trusted endpoint offers its own incoming aperture in a
 * CONNECT to HOST:PORT, sleeps until the ACCEPT (woken by the device's
 * interrupt), aims its outgoing aperture at the acceptor's incoming aperture
 * through the user page, stores the message and prints the reply the acceptor
 * stores back. -R then reconnects with a new nonce on its incoming aperture and
 * prints the second reply (the acceptor's store with the old nonce is dropped).
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

static void usage(FILE *f)
{
	fprintf(f,
		"usage: apn-send [-d DEV] -h HOST -i IN_INDEX -n NONCE [-s SIZE] [-b] [-o] MESSAGE\n"
		"       apn-send [-d DEV] -r [-s SIZE] [-b] [-o] MESSAGE\n"
		"       apn-send [-d DEV] -C HOST:PORT [-R] [-s SIZE] [-t TIMEOUT_S] MESSAGE\n"
		"  -d DEV       device (default " APN_DEFAULT_DEVICE ")\n"
		"  -h HOST      destination cluster host address\n"
		"  -i IN_INDEX  destination incoming aperture\n"
		"  -n NONCE     its nonce\n"
		"  -r           read HOST, IN_INDEX and NONCE from an\n"
		"               'APN-READY host=H in_index=I nonce=N' line on stdin\n"
		"               (-h/-i/-n, if also given, override it)\n"
		"  -s SIZE      aperture bytes, power of two >= 64 (default 4096); the\n"
		"               receiver's SIZE must match\n"
		"  -b           first send one store with NONCE+1 (receiver drops: rx_drop_nonce)\n"
		"  -o           first send one store at offset SIZE through a 2*SIZE aperture\n"
		"               (receiver drops: rx_drop_bounds)\n"
		"Stores MESSAGE at offset 0, fences, stores its length as a 32-bit\n"
		"little-endian word at SIZE-4, fences and prints 'APN-SENT len=N'.\n"
		"\n"
		"  -C HOST:PORT connect: a trusted endpoint (needs CAP_NET_ADMIN or\n"
		"               trust_users=1) sends CONNECT with its incoming aperture to\n"
		"               HOST:PORT (again every second), sleeps until ACCEPT, aims its\n"
		"               outgoing aperture at the acceptor's ('APN-CONNECTED ...'),\n"
		"               stores MESSAGE as above and prints the reply stored back\n"
		"               into its own aperture (APN-RECEIVED)\n"
		"  -R           then give the incoming aperture a new nonce\n"
		"               ('APN-RENONCE old=0x.. new=0x..'), connect again and print\n"
		"               the second reply\n"
		"  -t TIMEOUT   seconds for the whole exchange with -C (default 30)\n");
}

static int bad_usage(const char *msg, const char *arg)
{
	if (msg)
		fprintf(stderr, "apn-send: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
	usage(stderr);
	return 2;
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "apn-send: %s: %s\n", what, strerror(-err));
	return 1;
}

static int read_ready(struct apn_ready *rd)
{
	char line[1024];

	while (fgets(line, sizeof(line), stdin)) {
		if (!strstr(line, APN_READY_TAG))
			continue;
		if (apn_ready_parse(line, rd)) {
			fprintf(stderr, "apn-send: malformed line on stdin: %s", line);
			return -1;
		}
		return 0;
	}
	fprintf(stderr, "apn-send: no " APN_READY_TAG " line on stdin\n");
	return -1;
}

/* ---- -C: the connecting side of a user-level connection ------------------------ */

/*
 * CONNECT (repeated every second: datagrams may be lost) until an ACCEPT from
 * `host` arrives, then aims oa at the aperture it offers. Returns 0 or 1.
 */
static int handshake(struct apn_endpoint *ep, struct apn_in_aperture *ia,
		     struct apn_out_aperture *oa, uint16_t host, uint16_t port, double deadline)
{
	struct apn_msg_info m;
	struct apn_event ev;
	int r;

	for (;;) {
		double next = apn_tool_now() + 1;

		r = apn_endpoint_connect(ep, host, port, ia);
		if (r)
			return fail(r == -EHOSTUNREACH ? "send CONNECT (no MAC/IPv4 route to the host?)"
				    : "send CONNECT", r);
		for (;;) {
			r = apn_tool_next_event(ep, next < deadline ? next : deadline, &ev);
			if (r < 0)
				return fail("wait for events", r);
			if (!r)
				break;
			if (ev.type == APN_EV_ERROR_MSG && !apn_event_msg(&ev, &m)) {
				fprintf(stderr, "apn-send: host %u port %u refused: error %u\n",
					m.src_host, m.src_port, m.info);
				return 1;
			}
			if (ev.type != APN_EV_ACCEPT || apn_event_msg(&ev, &m) || m.src_host != host) {
				apn_tool_log_event("apn-send", &ev);
				continue;
			}
			r = apn_out_aperture_connect(oa, m.src_host, m.in_index, m.nonce);
			if (r)
				return fail("aim outgoing aperture (user-page command)", r);
			printf(APN_CONNECTED_TAG " host=%u port=%u in_index=%u nonce=0x%08x\n",
			       m.src_host, m.src_port, m.in_index, m.nonce);
			fflush(stdout);
			return 0;
		}
		if (apn_tool_now() >= deadline) {
			fprintf(stderr, "apn-send: no ACCEPT from %u:%u\n", host, port);
			return 1;
		}
	}
}

/* Waits for the reply's done word in our own aperture and prints it. Returns 0 or 1. */
static int receive_reply(const unsigned char *buf, uint32_t size, double deadline)
{
	double left = deadline - apn_tool_now();
	uint32_t done = left > 0 ? apn_tool_wait_word((const uint32_t *)(buf + size - 4), left) : 0;

	if (!done) {
		fprintf(stderr, "apn-send: timed out waiting for the reply\n");
		return 1;
	}
	return apn_tool_print_received(stdout, "apn-send", buf, done, size, 0);
}

static int connect_mode(struct apn_device *dev, uint16_t host, uint16_t port, uint32_t size,
			uint32_t timeout, int reconnect, const char *msg)
{
	double deadline = apn_tool_now() + (timeout ? timeout : 1e9);
	uint32_t done = htole32((uint32_t)strlen(msg)), old;
	size_t len = strlen(msg);
	struct apn_tool_conn c;
	int r, ret = 1;

	if (apn_tool_conn_open(&c, "apn-send", dev, 0, size))
		return 1;
	if (handshake(&c.ep, &c.ia, &c.oa, host, port, deadline))
		goto out_conn;
	r = apn_out_aperture_write(&c.oa, 0, msg, len);
	if (!r) {
		apn_out_aperture_fence(&c.oa);
		r = apn_out_aperture_write(&c.oa, size - 4, &done, sizeof(done));
	}
	if (r) {
		fail("store message", r);
		goto out_conn;
	}
	apn_out_aperture_fence(&c.oa);
	printf(APN_SENT_TAG " len=%zu\n", len);
	fflush(stdout);
	if (receive_reply(c.buf, size, deadline))
		goto out_conn;

	if (reconnect) {
		/* Nothing is in flight: the acceptor waits for our next CONNECT. */
		memset(c.buf, 0, size);
		old = c.ia.nonce;
		r = apn_in_aperture_set_nonce(&c.ia, old ^ 0x5a5a5a5au);
		if (r) {
			fail("set a new nonce (user-page command)", r);
			goto out_conn;
		}
		printf("APN-RENONCE old=0x%08x new=0x%08x\n", old, c.ia.nonce);
		fflush(stdout);
		if (handshake(&c.ep, &c.ia, &c.oa, host, port, deadline) ||
		    receive_reply(c.buf, size, deadline))
			goto out_conn;
	}
	ret = 0;

out_conn:
	apn_tool_conn_close(&c);
	return ret;
}

/* One deliberately rejected 32-bit store through its own outgoing aperture. */
static int send_bad(struct apn_endpoint *ep, const char *what, uint16_t host,
		    uint32_t in_index, uint32_t nonce, size_t size, size_t off,
		    struct apn_out_aperture *oa)
{
	uint32_t poison = htole32(0xdeadbeef);
	char msg[96];
	int r;

	r = apn_out_aperture_create(oa, ep, host, in_index, nonce, size);
	if (r) {
		snprintf(msg, sizeof(msg), "create outgoing aperture for %s", what);
		return fail(msg, r);
	}
	r = apn_out_aperture_write(oa, off, &poison, sizeof(poison));
	if (r) {
		snprintf(msg, sizeof(msg), "store for %s", what);
		apn_out_aperture_destroy(oa);
		return fail(msg, r);
	}
	apn_out_aperture_fence(oa);
	return 0;
}

int main(int argc, char **argv)
{
	const char *path = NULL, *msg;
	uint32_t host = 0, idx = 0, nonce = 0, size = 4096, timeout = 30;
	int have_h = 0, have_i = 0, have_n = 0, from_stdin = 0, bad_nonce = 0, oob = 0;
	int reconnect = 0, have_t = 0;
	uint16_t c_host = 0, c_port = 0;
	const char *connect_to = NULL;
	struct apn_out_aperture oa, oa_nonce, oa_oob;
	int have_nonce_oa = 0, have_oob_oa = 0;
	struct apn_device dev;
	struct apn_endpoint ep;
	uint32_t done;
	size_t len;
	int opt, r, ret = 1;

	while ((opt = getopt(argc, argv, "d:h:i:n:s:rboC:Rt:")) != -1) {
		switch (opt) {
		case 'd':
			path = optarg;
			break;
		case 'h':
			if (apn_tool_parse_u32(optarg, UINT16_MAX, &host))
				return bad_usage("bad host (0-65535)", optarg);
			have_h = 1;
			break;
		case 'i':
			if (apn_tool_parse_u32(optarg, UINT32_MAX, &idx))
				return bad_usage("bad in_index", optarg);
			have_i = 1;
			break;
		case 'n':
			if (apn_tool_parse_u32(optarg, UINT32_MAX, &nonce))
				return bad_usage("bad nonce", optarg);
			have_n = 1;
			break;
		case 's':
			if (apn_tool_parse_u32(optarg, 1u << 30, &size) || size < 64 ||
			    (size & (size - 1)))
				return bad_usage("bad size (power of two, 64 .. 1 GiB)", optarg);
			break;
		case 'r':
			from_stdin = 1;
			break;
		case 'b':
			bad_nonce = 1;
			break;
		case 'o':
			oob = 1;
			break;
		case 'C':
			if (apn_tool_parse_hostport(optarg, &c_host, &c_port))
				return bad_usage("bad HOST:PORT", optarg);
			connect_to = optarg;
			break;
		case 'R':
			reconnect = 1;
			break;
		case 't':
			if (apn_tool_parse_u32(optarg, 1000000, &timeout))
				return bad_usage("bad timeout", optarg);
			have_t = 1;
			break;
		default:
			return bad_usage(NULL, NULL);
		}
	}
	if (optind + 1 != argc)
		return bad_usage(optind < argc ? "one MESSAGE argument expected"
				 : "missing MESSAGE", NULL);
	msg = argv[optind];
	len = strlen(msg);
	if (!len)
		return bad_usage("empty MESSAGE (the done word would be 0)", NULL);
	if (len > size - 4)
		return bad_usage("MESSAGE does not fit SIZE - 4 bytes", NULL);
	if (connect_to && (from_stdin || have_h || have_i || have_n || bad_nonce || oob))
		return bad_usage("-C takes none of -h -i -n -r -b -o", NULL);
	if (!connect_to && (reconnect || have_t))
		return bad_usage("-R and -t need -C", NULL);
	if (connect_to) {
		r = apn_device_open(&dev, path);
		if (r)
			return fail(path ? path : APN_DEFAULT_DEVICE, r);
		ret = connect_mode(&dev, c_host, c_port, size, timeout, reconnect, msg);
		apn_device_close(&dev);
		return ret;
	}
	if (!from_stdin && !(have_h && have_i && have_n))
		return bad_usage("need -h, -i and -n, or -r", NULL);
	if (from_stdin) {
		struct apn_ready rd;

		if (read_ready(&rd))
			return 1;
		if (!have_h)
			host = rd.host;
		if (!have_i)
			idx = rd.in_index;
		if (!have_n)
			nonce = rd.nonce;
	}

	r = apn_device_open(&dev, path);
	if (r)
		return fail(path ? path : APN_DEFAULT_DEVICE, r);
	r = apn_endpoint_create(&ep, &dev, NULL);
	if (r) {
		fail("create endpoint", r);
		goto out_dev;
	}

	if (bad_nonce) {
		if (send_bad(&ep, "bad nonce (-b)", (uint16_t)host, idx, nonce + 1, size,
			     size - 4, &oa_nonce))
			goto out_bad;
		have_nonce_oa = 1;
	}
	if (oob) {
		if (send_bad(&ep, "out-of-bounds store (-o)", (uint16_t)host, idx, nonce,
			     (size_t)size * 2, size, &oa_oob))
			goto out_bad;
		have_oob_oa = 1;
	}

	r = apn_out_aperture_create(&oa, &ep, (uint16_t)host, idx, nonce, size);
	if (r) {
		fail("create outgoing aperture", r);
		goto out_bad;
	}
	r = apn_out_aperture_write(&oa, 0, msg, len);
	if (r) {
		fail("store message", r);
		goto out_oa;
	}
	apn_out_aperture_fence(&oa);
	done = htole32((uint32_t)len);
	r = apn_out_aperture_write(&oa, size - 4, &done, sizeof(done));
	if (r) {
		fail("store done word", r);
		goto out_oa;
	}
	apn_out_aperture_fence(&oa);
	printf(APN_SENT_TAG " len=%zu\n", len);
	fflush(stdout);
	ret = 0;

out_oa:
	r = apn_out_aperture_destroy(&oa);
	if (r) {
		fail("destroy outgoing aperture", r);
		ret = 1;
	}
out_bad:
	if (have_oob_oa)
		apn_out_aperture_destroy(&oa_oob);
	if (have_nonce_oa)
		apn_out_aperture_destroy(&oa_nonce);
	apn_endpoint_destroy(&ep);
out_dev:
	apn_device_close(&dev);
	return ret;
}
