// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * apn-lib-test: libapertnic against the real device in one guest, through the
 * NIC's loopback (traffic to its own host id): what needs no second machine.
 *
 *   overflow     an endpoint with a 4-event queue gets 20 ALIVE messages while
 *                nobody polls: apn_evq_poll() must report APN_EV_OVERFLOW (16
 *                lost) first, then the 4 that fit, never lose them silently
 *   closed-port  apn_endpoint_dial() to a port nobody binds: -ETIMEDOUT, on time
 *   event        event frames: stores through an outgoing event aperture arrive as
 *                APN_EV_EVENT (offset, value) at an incoming event aperture; one past
 *                its end is refused (APN_EV_TX_ERROR rx_drop_bounds at the sender)
 *   read         remote reads: loads through an outgoing aperture land the peer's
 *                bytes in the read-landing aperture (APN_EV_READ_DONE); without a
 *                landing aperture the load fails (READ_DONE, tx_drop_read)
 *
 * usage: apn-lib-test [-d DEV] TEST...   Prints "APN-LIBTEST <test> ok ..." or
 * "APN-LIBTEST <test> FAIL: why" ("skip: why" when the device lacks a feature);
 * exit status 0 only if no test failed. Run as root (trusted endpoints, routes
 * set up by the scenario: apn_routes_ip).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apertnic_hw.h"      /* counter ids; before the public header */
#include <apertnic/apertnic.h>

static const char *dev_path;

static int fail(const char *test, const char *fmt, ...)
{
	va_list ap;

	printf("APN-LIBTEST %s FAIL: ", test);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return 1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* Opens the device and a trusted endpoint with an event queue of evq_size. */
static int open_ep(const char *test, struct apn_device *dev, struct apn_endpoint *ep,
		   uint32_t evq_size, struct apn_device_info *info)
{
	struct apn_endpoint_attr attr = { .flags = APN_ENDPOINT_F_TRUSTED, .evq_size = evq_size };
	int r = apn_device_open(dev, dev_path);

	if (r)
		return fail(test, "open %s: %s", dev_path ? dev_path : APN_DEFAULT_DEVICE,
			    strerror(-r));
	r = apn_endpoint_create(ep, dev, &attr);
	if (!r && info)
		r = apn_device_info(dev, info);
	if (r) {
		apn_device_close(dev);
		return fail(test, "endpoint: %s", strerror(-r));
	}
	return 0;
}

/* ---- overflow ------------------------------------------------------------------ */

#define FLOOD 20
#define SMALL_EVQ 4

static int test_overflow(void)
{
	struct apn_device dev;
	struct apn_endpoint x, y;
	struct apn_device_info info;
	struct apn_event ev[32];
	double until;
	int r, n, i, ret = 1;

	if (open_ep("overflow", &dev, &x, SMALL_EVQ, &info))
		return 1;
	r = apn_endpoint_create(&y, &dev, &(struct apn_endpoint_attr){
		.flags = APN_ENDPOINT_F_TRUSTED });
	if (r) {
		fail("overflow", "second endpoint: %s", strerror(-r));
		goto out_x;
	}
	for (i = 0; i < FLOOD; i++) {
		r = apn_endpoint_send_msg(&y, info.host_id, apn_endpoint_port(&x), APN_MSG_ALIVE,
					  0, (uint32_t)i, 0);
		if (r) {
			fail("overflow", "ALIVE %d to our own port %u: %s", i, apn_endpoint_port(&x),
			     strerror(-r));
			goto out;
		}
	}
	/* nobody polls x meanwhile: its queue fills, the rest is lost */
	until = now_s() + 5;
	while (apn_evq_overflows(&x) < FLOOD - SMALL_EVQ && now_s() < until)
		sleep_ms(10);
	r = apn_evq_pending(&x);
	if (r != SMALL_EVQ + 1) {
		fail("overflow", "%d pending, expected %d events and 1 overflow report", r,
		     SMALL_EVQ);
		goto out;
	}
	n = apn_evq_poll(&x, ev, 32);
	if (n != SMALL_EVQ + 1) {
		fail("overflow", "apn_evq_poll() returned %d, expected %d", n, SMALL_EVQ + 1);
		goto out;
	}
	if (ev[0].type != APN_EV_OVERFLOW || ev[0].info != FLOOD - SMALL_EVQ ||
	    ev[0].data != FLOOD - SMALL_EVQ || ev[0].flags) {
		fail("overflow", "first event type %u info %u data %llu flags %u, expected "
		     "APN_EV_OVERFLOW lost %d", ev[0].type, ev[0].info,
		     (unsigned long long)ev[0].data, ev[0].flags, FLOOD - SMALL_EVQ);
		goto out;
	}
	printf("APN-OVERFLOW queue=events lost=%u\n", ev[0].info);
	for (i = 1; i < n; i++) {
		struct apn_msg_info m;

		/* the first ones in, in order: nonce i */
		if (ev[i].type != APN_EV_ALIVE || apn_event_msg(&ev[i], &m) ||
		    m.nonce != (uint32_t)(i - 1) || m.src_port != apn_endpoint_port(&y)) {
			fail("overflow", "event %d: type %u nonce %u, expected ALIVE %d", i,
			     ev[i].type, m.nonce, i - 1);
			goto out;
		}
	}
	if (apn_evq_poll(&x, ev, 32) != 0 || apn_evq_overflows(&x) != FLOOD - SMALL_EVQ) {
		fail("overflow", "reported twice, or counted wrong");
		goto out;
	}
	/* drained: the queue works again, without another report */
	apn_endpoint_send_msg(&y, info.host_id, apn_endpoint_port(&x), APN_MSG_ALIVE, 0, 99, 0);
	r = apn_endpoint_wait(&x, 5000);
	n = apn_evq_poll(&x, ev, 32);
	if (r != 1 || n != 1 || ev[0].type != APN_EV_ALIVE) {
		fail("overflow", "after draining: wait %d, poll %d (type %u)", r, n, ev[0].type);
		goto out;
	}
	printf("APN-LIBTEST overflow ok lost=%d delivered=%d\n", FLOOD - SMALL_EVQ, SMALL_EVQ);
	ret = 0;
out:
	apn_endpoint_destroy(&y);
out_x:
	apn_endpoint_destroy(&x);
	apn_device_close(&dev);
	fflush(stdout);
	return ret;
}

/* ---- closed-port -------------------------------------------------------------------- */

static int test_closed_port(void)
{
	struct apn_device dev;
	struct apn_endpoint ep;
	struct apn_device_info info;
	struct apn_in_aperture ia;
	struct apn_mr mr;
	void *buf;
	double t0, took;
	int r, ret = 1;

	if (open_ep("closed-port", &dev, &ep, 0, &info))
		return 1;
	if (posix_memalign(&buf, 4096, 4096)) {
		fail("closed-port", "memory");
		goto out_ep;
	}
	r = apn_mr_reg(&mr, &ep, buf, 4096);
	if (!r) {
		r = apn_in_aperture_create(&ia, &ep, &mr, 0, 4096, 0, 0);
		if (r)
			apn_mr_dereg(&mr);
	}
	if (r) {
		fail("closed-port", "aperture: %s", strerror(-r));
		goto out_buf;
	}
	t0 = now_s();
	/* port 1 of our own host: nobody binds it in the test guest */
	r = apn_endpoint_dial(&ep, info.host_id, 1, &ia, NULL, 1500, NULL, NULL, NULL);
	took = now_s() - t0;
	if (r != -ETIMEDOUT)
		fail("closed-port", "dial returned %d (%s), expected -ETIMEDOUT", r, strerror(-r));
	else if (took < 1.4 || took > 4)
		fail("closed-port", "timed out after %.2f s, expected 1.5", took);
	else {
		printf("APN-LIBTEST closed-port ok error=ETIMEDOUT secs=%.2f\n", took);
		ret = 0;
	}
	apn_in_aperture_destroy(&ia);
	apn_mr_dereg(&mr);
out_buf:
	free(buf);
out_ep:
	apn_endpoint_destroy(&ep);
	apn_device_close(&dev);
	fflush(stdout);
	return ret;
}

/* ---- event ------------------------------------------------------------------------------ */

/* Takes events until one of `type` (others: RX_DROP / TX_ERROR are noted). 1, 0 on timeout. */
static int wait_event(struct apn_endpoint *ep, uint8_t type, struct apn_event *out, int ms)
{
	double until = now_s() + ms / 1000.0;

	while (now_s() < until) {
		struct apn_event ev;
		int r = apn_evq_poll(ep, &ev, 1);

		if (r < 0)
			return r;
		if (r == 1 && ev.type == type) {
			*out = ev;
			return 1;
		}
		if (r == 1)
			printf("# event type %u info %u data %#llx\n", ev.type, ev.info,
			       (unsigned long long)ev.data);
		else
			apn_endpoint_wait(ep, 50);
	}
	return 0;
}

static int test_event(void)
{
	static const struct { size_t off; uint64_t v; } sent[] = {
		{ 0, 0x1122334455667788ull }, { 8, 42 }, { 4088, 7 },
	};
	struct apn_device dev;
	struct apn_endpoint x, y;
	struct apn_device_info info;
	struct apn_in_aperture ia;
	struct apn_out_aperture oa;
	struct apn_event ev;
	unsigned i;
	int r, ret = 1;

	if (open_ep("event", &dev, &x, 0, &info))
		return 1;
	if (!(info.caps & APN_DEVICE_CAP_EVENT_AP)) {
		printf("APN-LIBTEST event skip: no event apertures\n");
		apn_endpoint_destroy(&x);
		apn_device_close(&dev);
		return 0;
	}
	r = apn_endpoint_create(&y, &dev, &(struct apn_endpoint_attr){
		.flags = APN_ENDPOINT_F_TRUSTED });
	if (r) {
		fail("event", "second endpoint: %s", strerror(-r));
		goto out_x;
	}
	r = apn_in_aperture_create_event(&ia, &x, 4096, 0, 0);
	if (r) {
		fail("event", "incoming event aperture: %s", strerror(-r));
		goto out_y;
	}
	/* twice its size: the last store lands past the end of ia */
	r = apn_out_aperture_create_event(&oa, &y, info.host_id, ia.in_index, ia.nonce, 8192);
	if (r) {
		fail("event", "outgoing event aperture: %s", strerror(-r));
		goto out_ia;
	}
	for (i = 0; i < 3; i++)
		r |= apn_out_aperture_event(&oa, sent[i].off, sent[i].v);
	r |= apn_out_aperture_event(&oa, 4096, 99);
	if (r || apn_out_aperture_event(&oa, 4, 1) != -EINVAL ||
	    apn_out_aperture_write(&oa, 0, "x", 1) != 0) {
		fail("event", "apn_out_aperture_event() arguments");
		goto out_oa;
	}
	apn_out_aperture_fence(&oa);
	for (i = 0; i < 3; i++) {
		if (wait_event(&x, APN_EV_EVENT, &ev, 5000) != 1) {
			fail("event", "event %u did not arrive", i);
			goto out_oa;
		}
		if (ev.info != sent[i].off || ev.data != sent[i].v) {
			fail("event", "event %u: offset %u value %#llx, expected %zu %#llx", i,
			     ev.info, (unsigned long long)ev.data, sent[i].off,
			     (unsigned long long)sent[i].v);
			goto out_oa;
		}
	}
	if (wait_event(&y, APN_EV_TX_ERROR, &ev, 5000) != 1 ||
	    ev.info != APN_CNT_RX_DROP_BOUNDS || (uint32_t)ev.data != oa.out_index) {
		fail("event", "the store past the end was not refused as rx_drop_bounds");
		goto out_oa;
	}
	printf("APN-LIBTEST event ok events=3 refused=rx_drop_bounds\n");
	ret = 0;
out_oa:
	apn_out_aperture_destroy(&oa);
out_ia:
	apn_in_aperture_destroy(&ia);
out_y:
	apn_endpoint_destroy(&y);
out_x:
	apn_endpoint_destroy(&x);
	apn_device_close(&dev);
	fflush(stdout);
	return ret;
}

/* ---- read -------------------------------------------------------------------------------- */

static int test_read(void)
{
	static const struct { size_t off, size; } loads[] = { { 16, 8 }, { 100, 4 }, { 4094, 2 } };
	struct apn_device dev;
	struct apn_endpoint x, y;
	struct apn_device_info info;
	struct apn_in_aperture src, land;
	struct apn_out_aperture oa;
	struct apn_mr xmr, ymr;
	unsigned char *xbuf = NULL, *ybuf = NULL;
	struct apn_event ev;
	unsigned i;
	int r, ret = 1;

	if (open_ep("read", &dev, &x, 0, &info))
		return 1;
	if (!(info.caps & APN_DEVICE_CAP_READ)) {
		printf("APN-LIBTEST read skip: no remote reads\n");
		apn_endpoint_destroy(&x);
		apn_device_close(&dev);
		return 0;
	}
	r = apn_endpoint_create(&y, &dev, &(struct apn_endpoint_attr){
		.flags = APN_ENDPOINT_F_TRUSTED });
	if (r) {
		fail("read", "second endpoint: %s", strerror(-r));
		goto out_x;
	}
	if (posix_memalign((void **)&xbuf, 4096, 4096) || posix_memalign((void **)&ybuf, 4096, 4096)) {
		fail("read", "memory");
		goto out_y;
	}
	for (i = 0; i < 4096; i++)
		xbuf[i] = (unsigned char)(i * 13 + 5);
	memset(ybuf, 0, 4096);
	if ((r = apn_mr_reg(&xmr, &x, xbuf, 4096)) != 0) {
		fail("read", "register: %s", strerror(-r));
		goto out_y;
	}
	if ((r = apn_mr_reg(&ymr, &y, ybuf, 4096)) != 0) {
		fail("read", "register: %s", strerror(-r));
		goto out_xmr;
	}
	if ((r = apn_in_aperture_create(&src, &x, &xmr, 0, 4096, 0, 0)) != 0) {
		fail("read", "source aperture: %s", strerror(-r));
		goto out_ymr;
	}
	if ((r = apn_in_aperture_create(&land, &y, &ymr, 0, 4096, 0, 0)) != 0) {
		fail("read", "landing aperture: %s", strerror(-r));
		goto out_src;
	}
	if ((r = apn_out_aperture_create(&oa, &y, info.host_id, src.in_index, src.nonce, 4096))) {
		fail("read", "outgoing aperture: %s", strerror(-r));
		goto out_land;
	}
	/* no landing aperture yet: the load fails, and says so */
	apn_endpoint_set_read_landing(&y, NULL);
	apn_out_aperture_read(&oa, 0, 8);
	if (wait_event(&y, APN_EV_READ_DONE, &ev, 5000) != 1 || ev.info ||
	    ev.data >> 32 != APN_CNT_TX_DROP_READ) {
		fail("read", "a load without a landing aperture did not fail with tx_drop_read");
		goto out_oa;
	}
	if ((r = apn_endpoint_set_read_landing(&y, &land)) != 0) {
		fail("read", "set landing: %s", strerror(-r));
		goto out_oa;
	}
	for (i = 0; i < 3; i++) {
		if (apn_out_aperture_read(&oa, loads[i].off, loads[i].size)) {
			fail("read", "load %u refused", i);
			goto out_oa;
		}
	}
	for (i = 0; i < 3; i++) {
		if (wait_event(&y, APN_EV_READ_DONE, &ev, 5000) != 1) {
			fail("read", "no APN_EV_READ_DONE for load %u", i);
			goto out_oa;
		}
		if (ev.info != loads[i].size || (uint32_t)ev.data != loads[i].off || ev.data >> 32) {
			fail("read", "load %u: %u bytes at %u status %u", i, ev.info,
			     (uint32_t)ev.data, (uint32_t)(ev.data >> 32));
			goto out_oa;
		}
		if (memcmp(ybuf + loads[i].off, xbuf + loads[i].off, loads[i].size)) {
			fail("read", "load %u: the landed bytes differ", i);
			goto out_oa;
		}
	}
	for (i = 0; i < 16; i++)
		if (ybuf[i]) {
			fail("read", "bytes landed where nothing was read");
			goto out_oa;
		}
	printf("APN-LIBTEST read ok loads=3 bytes=14 no-landing=tx_drop_read\n");
	ret = 0;
out_oa:
	apn_endpoint_set_read_landing(&y, NULL);
	apn_out_aperture_destroy(&oa);
out_land:
	apn_in_aperture_destroy(&land);
out_src:
	apn_in_aperture_destroy(&src);
out_ymr:
	apn_mr_dereg(&ymr);
out_xmr:
	apn_mr_dereg(&xmr);
out_y:
	free(xbuf);
	free(ybuf);
	apn_endpoint_destroy(&y);
out_x:
	apn_endpoint_destroy(&x);
	apn_device_close(&dev);
	fflush(stdout);
	return ret;
}

/* ------------------------------------------------------------------------------------ */

static const struct {
	const char *name;
	int (*run)(void);
} tests[] = {
	{ "overflow", test_overflow },
	{ "closed-port", test_closed_port },
	{ "event", test_event },
	{ "read", test_read },
};

static void usage(FILE *f)
{
	unsigned i;

	fprintf(f, "usage: apn-lib-test [-d DEV] TEST...\ntests:");
	for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
		fprintf(f, " %s", tests[i].name);
	fprintf(f, "\n");
}

int main(int argc, char **argv)
{
	int opt, failed = 0, a;

	while ((opt = getopt(argc, argv, "d:")) != -1) {
		if (opt != 'd') {
			usage(stderr);
			return 2;
		}
		dev_path = optarg;
	}
	if (optind == argc) {
		usage(stderr);
		return 2;
	}
	for (a = optind; a < argc; a++) {
		unsigned i;

		for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
			if (!strcmp(argv[a], tests[i].name))
				break;
		if (i == sizeof(tests) / sizeof(tests[0])) {
			fprintf(stderr, "apn-lib-test: no test '%s'\n", argv[a]);
			usage(stderr);
			return 2;
		}
		failed += tests[i].run();
	}
	return failed ? 1 : 0;
}
