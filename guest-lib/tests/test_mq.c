// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests for libapertnic's message queues (apn_mq_*) on plain memory: two
 * halves wired to each other's memory, directly or through "wire" buffers that
 * are delivered to the receiver only when the test says so (a slow link, pointer
 * updates that lag). Full and empty rings, wrap, lazy read-pointer publication,
 * close, a broken peer, failure events.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "apertnic_hw.h"      /* before the public header */
#include <apertnic/apertnic.h>

#define SZ   1024              /* aperture size: ring capacity SZ - 64 */
#define CAP  (SZ - APN_MQ_CTRL_SIZE)
#define MAXM (CAP / 2 - APN_MQ_HDR_SIZE)

static _Alignas(64) unsigned char mem_a[SZ], mem_b[SZ];   /* each side's own memory */
static _Alignas(64) unsigned char wire_a[SZ], wire_b[SZ]; /* in flight toward a / b */
static volatile uint32_t fence_a, fence_b;
static struct apn_mq qa, qb;

/* a and b wired directly: a store is seen at once */
static void pair_direct(void)
{
	memset(mem_a, 0x5a, sizeof(mem_a));
	memset(mem_b, 0x5a, sizeof(mem_b));
	ck_assert_int_eq(apn_mq_init_mem(&qa, mem_a, SZ, mem_b, SZ, &fence_a), 0);
	ck_assert_int_eq(apn_mq_init_mem(&qb, mem_b, SZ, mem_a, SZ, &fence_b), 0);
}

/* a and b wired through wire_b / wire_a: nothing arrives until delivered */
static void pair_wired(void)
{
	memset(mem_a, 0x5a, sizeof(mem_a));
	memset(mem_b, 0x5a, sizeof(mem_b));
	ck_assert_int_eq(apn_mq_init_mem(&qa, mem_a, SZ, wire_b, SZ, &fence_a), 0);
	ck_assert_int_eq(apn_mq_init_mem(&qb, mem_b, SZ, wire_a, SZ, &fence_b), 0);
	memcpy(wire_a, mem_a, SZ);
	memcpy(wire_b, mem_b, SZ);
}

/* What a link that keeps order does: the records first, then the control block. */
static void deliver_ring(unsigned char *to, const unsigned char *wire)
{
	memcpy(to + APN_MQ_CTRL_SIZE, wire + APN_MQ_CTRL_SIZE, CAP);
}

static void deliver_ctrl(unsigned char *to, const unsigned char *wire)
{
	memcpy(to, wire, APN_MQ_CTRL_SIZE);
}

static void deliver(unsigned char *to, const unsigned char *wire)
{
	deliver_ring(to, wire);
	deliver_ctrl(to, wire);
}

static uint32_t ctrl_word(const unsigned char *mem, unsigned off)
{
	uint32_t v;

	memcpy(&v, mem + off, 4);
	return v;
}

static void set_ctrl_word(unsigned char *mem, unsigned off, uint32_t v)
{
	memcpy(mem + off, &v, 4);
}

/* Message k's payload byte j, and its length under a seeded generator. */
static unsigned char pat(uint32_t k, uint32_t j)
{
	return (unsigned char)(k * 131u + j * 7u + (k >> 8));
}

static void make_msg(unsigned char *buf, uint32_t k, uint32_t len)
{
	uint32_t j;

	for (j = 0; j < len; j++)
		buf[j] = pat(k, j);
}

static void check_msg(const unsigned char *buf, uint32_t k, uint32_t len)
{
	uint32_t j;

	for (j = 0; j < len; j++)
		ck_assert_msg(buf[j] == pat(k, j), "message %u byte %u: %#x, expected %#x",
			      k, j, buf[j], pat(k, j));
}

static uint32_t rnd_state;

static uint32_t rnd(void)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return rnd_state >> 8;
}

static uint32_t rec(uint32_t len)
{
	return APN_MQ_HDR_SIZE + ((len + 7) & ~7u);
}

START_TEST(mq_init_checks)
{
	static _Alignas(64) unsigned char big[4096];
	struct apn_mq q;

	memset(big, 0x77, sizeof(big));
	ck_assert_int_eq(apn_mq_init_mem(&q, big, 64, mem_b, SZ, NULL), -EINVAL);
	ck_assert_int_eq(apn_mq_init_mem(&q, big, 127, mem_b, SZ, NULL), -EINVAL);
	ck_assert_int_eq(apn_mq_init_mem(&q, big, 3000, mem_b, SZ, NULL), -EINVAL);
	ck_assert_int_eq(apn_mq_init_mem(&q, big, 0, mem_b, SZ, NULL), -EINVAL);
	ck_assert_int_eq(apn_mq_init_mem(&q, big, SZ, mem_b, 100, NULL), -EINVAL);
	ck_assert_int_eq(apn_mq_init_mem(&q, big, (size_t)1 << 31, mem_b, SZ, NULL), -EINVAL);
	ck_assert_int_eq(apn_mq_init_mem(&q, NULL, SZ, mem_b, SZ, NULL), -EINVAL);
	ck_assert_int_eq(apn_mq_init_mem(&q, big, SZ, NULL, SZ, NULL), -EINVAL);
	ck_assert_int_eq(apn_mq_init_mem(&q, big + 4, SZ, mem_b, SZ, NULL), -EINVAL);
	ck_assert_int_eq(apn_mq_init_mem(&q, big, SZ, mem_b + 4, SZ, NULL), -EINVAL);
	ck_assert_uint_eq(big[0], 0x77);                   /* nothing touched */

	ck_assert_int_eq(apn_mq_init_mem(&q, big, sizeof(big), mem_b, SZ, NULL), 0);
	ck_assert_uint_eq(q.rx_cap, sizeof(big) - 64);
	ck_assert_uint_eq(q.tx_cap, CAP);
	ck_assert_uint_eq(apn_mq_max_msg(&q), MAXM);
	ck_assert_uint_eq(q.out_index, 0xffffffffu);
	ck_assert_uint_eq(big[0], 0);                      /* control block zeroed ... */
	ck_assert_uint_eq(big[63], 0);
	ck_assert_uint_eq(big[64], 0x77);                  /* ... the ring left alone */
}
END_TEST

/* apn_mq_init() on apertures: their memory, mapping, indices and fence register. */
START_TEST(mq_init_apertures)
{
	static _Alignas(4096) unsigned char region[8192];
	volatile uint32_t fence = 1;
	struct apn_out_aperture oa;
	struct apn_in_aperture ia;
	struct apn_endpoint ep;
	struct apn_mr mr;
	struct apn_mq q;

	memset(&ep, 0, sizeof(ep));
	memset(&mr, 0, sizeof(mr));
	memset(&ia, 0, sizeof(ia));
	memset(&oa, 0, sizeof(oa));
	mr.addr = region;
	mr.len = sizeof(region);
	mr.ep = &ep;
	ia.mr = &mr;
	ia.ep = &ep;
	ia.offset = 4096;
	ia.size = 4096;
	ia.in_index = 12;
	oa.ptr = mem_b;
	oa.size = SZ;
	oa.out_index = 3;
	oa.fence_reg = &fence;
	oa.ep = &ep;
	memset(region, 0x33, sizeof(region));
	ck_assert_int_eq(apn_mq_init(&q, &ia, &oa), 0);
	ck_assert_ptr_eq(q.rx, region + 4096);
	ck_assert_uint_eq(q.rx_cap, 4096 - 64);
	ck_assert_ptr_eq(q.tx, mem_b);
	ck_assert_uint_eq(q.tx_cap, CAP);
	ck_assert_uint_eq(q.in_index, 12);
	ck_assert_uint_eq(q.out_index, 3);
	ck_assert_uint_eq(region[4096], 0);
	ck_assert_uint_eq(region[4095], 0x33);
	ck_assert_int_eq(apn_mq_send(&q, "x", 1), 0);
	ck_assert_uint_eq(fence, 0);                       /* fenced through oa's register */

	ia.mr = NULL;
	ck_assert_int_eq(apn_mq_init(&q, &ia, &oa), -EINVAL);
	ia.mr = &mr;
	oa.ptr = NULL;
	ck_assert_int_eq(apn_mq_init(&q, &ia, &oa), -EINVAL);
	ck_assert_int_eq(apn_mq_init(&q, NULL, &oa), -EINVAL);
}
END_TEST

START_TEST(mq_basic)
{
	unsigned char buf[MAXM + 16], big[MAXM + 1];

	pair_direct();
	ck_assert_int_eq(apn_mq_recv(&qb, buf, sizeof(buf)), -EAGAIN);
	fence_a = 1;
	ck_assert_int_eq(apn_mq_send(&qa, "hello", 5), 0);
	ck_assert_uint_eq(fence_a, 0);
	/* the record and the pointer, in b's memory */
	ck_assert_uint_eq(ctrl_word(mem_b, 0), rec(5));
	ck_assert_uint_eq(ctrl_word(mem_b, 64), 5);        /* header: len */
	ck_assert_uint_eq(ctrl_word(mem_b, 68), 0);        /* header: seq */
	ck_assert_int_eq(apn_mq_recv(&qb, buf, sizeof(buf)), 5);
	ck_assert_mem_eq(buf, "hello", 5);
	ck_assert_int_eq(apn_mq_recv(&qb, buf, sizeof(buf)), -EAGAIN);

	/* empty messages, exact-size buffers, too small buffers, dropping */
	ck_assert_int_eq(apn_mq_send(&qa, NULL, 0), 0);
	ck_assert_int_eq(apn_mq_send(&qa, "0123456789", 10), 0);
	ck_assert_int_eq(apn_mq_send(&qa, "drop me", 7), 0);
	ck_assert_int_eq(apn_mq_recv(&qb, buf, 0), 0);
	ck_assert_int_eq(apn_mq_recv(&qb, buf, 9), -EMSGSIZE);
	ck_assert_int_eq(apn_mq_recv(&qb, buf, 10), 10);
	ck_assert_mem_eq(buf, "0123456789", 10);
	ck_assert_int_eq(apn_mq_recv(&qb, NULL, 0), 7);
	ck_assert_int_eq(apn_mq_recv(&qb, buf, sizeof(buf)), -EAGAIN);

	/* the largest message, and one byte more */
	make_msg(big, 1, MAXM);
	ck_assert_int_eq(apn_mq_send(&qa, big, MAXM + 1), -EMSGSIZE);
	ck_assert_int_eq(apn_mq_send(&qa, big, MAXM), 0);
	memset(buf, 0, sizeof(buf));
	ck_assert_int_eq(apn_mq_recv(&qb, buf, sizeof(buf)), MAXM);
	check_msg(buf, 1, MAXM);

	/* the other way */
	ck_assert_int_eq(apn_mq_send(&qb, "pong", 4), 0);
	ck_assert_int_eq(apn_mq_recv(&qa, buf, sizeof(buf)), 4);
	ck_assert_mem_eq(buf, "pong", 4);
}
END_TEST

/* A full ring refuses (-EAGAIN) and stores nothing; nothing is ever lost. */
START_TEST(mq_full)
{
	unsigned char msg[64], buf[64], snap[SZ];
	uint32_t n = 0, m = 0, k;
	int r;

	pair_direct();
	for (;;) {
		make_msg(msg, n, sizeof(msg));
		memcpy(snap, mem_b, SZ);
		r = apn_mq_send(&qa, msg, sizeof(msg));
		if (r == -EAGAIN)
			break;
		ck_assert_int_eq(r, 0);
		n++;
	}
	ck_assert_uint_eq(n, CAP / rec(64));
	ck_assert_mem_eq(snap, mem_b, SZ);                 /* the refused send stored nothing */
	/* the rest of the ring takes empty messages (a header each), exactly */
	while ((r = apn_mq_send(&qa, NULL, 0)) == 0)
		m++;
	ck_assert_int_eq(r, -EAGAIN);
	ck_assert_uint_eq(n * rec(64) + m * rec(0), CAP);
	ck_assert_uint_eq(ctrl_word(mem_b, 0), CAP);       /* full: write pointer at C */

	for (k = 0; k < n; k++) {
		ck_assert_int_eq(apn_mq_recv(&qb, buf, sizeof(buf)), 64);
		check_msg(buf, k, 64);
	}
	for (k = 0; k < m; k++)
		ck_assert_int_eq(apn_mq_recv(&qb, buf, sizeof(buf)), 0);
	ck_assert_int_eq(apn_mq_recv(&qb, buf, sizeof(buf)), -EAGAIN);
	/* drained: what b has not published yet is less than half a ring ... */
	ck_assert_uint_lt((qb.rx_rd - qb.rx_published + 2 * CAP) % (2 * CAP), CAP / 2);
	/* ... so the largest message fits again */
	{
		unsigned char big[MAXM];

		make_msg(big, 7, MAXM);
		ck_assert_int_eq(apn_mq_send(&qa, big, MAXM), 0);
		ck_assert_int_eq(apn_mq_recv(&qb, big, MAXM), MAXM);
		check_msg(big, 7, MAXM);
	}
}
END_TEST

/* Many messages of random sizes both ways: records and payloads wrap many times. */
START_TEST(mq_wrap)
{
	static unsigned char buf[MAXM], msg[MAXM];
	uint32_t sent[2] = { 0, 0 }, got[2] = { 0, 0 }, lens[2][4096];
	struct apn_mq *tx[2] = { &qa, &qb }, *rxq[2] = { &qb, &qa };
	int i, d;

	pair_direct();
	rnd_state = 1;
	for (i = 0; i < 40000; i++) {
		d = rnd() & 1;
		if (rnd() % 3) {
			uint32_t len = rnd() % 5 ? rnd() % 80 : rnd() % (MAXM + 1);
			int r;

			make_msg(msg, sent[d], len);
			r = apn_mq_send(tx[d], msg, len);
			if (r == -EAGAIN)
				continue;
			ck_assert_int_eq(r, 0);
			lens[d][sent[d] % 4096] = len;
			sent[d]++;
		} else {
			int r = apn_mq_recv(rxq[d], buf, sizeof(buf));

			if (r == -EAGAIN) {
				ck_assert_uint_eq(got[d], sent[d]);
				continue;
			}
			ck_assert_int_eq(r, (int)lens[d][got[d] % 4096]);
			check_msg(buf, got[d], (uint32_t)r);
			got[d]++;
		}
		ck_assert_uint_le(sent[d] - got[d], CAP / APN_MQ_HDR_SIZE);
	}
	for (d = 0; d < 2; d++) {
		int r;

		while ((r = apn_mq_recv(rxq[d], buf, sizeof(buf))) >= 0) {
			ck_assert_int_eq(r, (int)lens[d][got[d] % 4096]);
			check_msg(buf, got[d], (uint32_t)r);
			got[d]++;
		}
		ck_assert_int_eq(r, -EAGAIN);
		ck_assert_uint_eq(got[d], sent[d]);
		ck_assert_uint_gt(sent[d], 3000);          /* the rings wrapped many times */
	}
}
END_TEST

/*
 * Pointer updates that lag: the receiver sees nothing until the control block
 * arrives (records alone do not count), and the sender stays blocked until the
 * receiver's read pointer arrives; the receiver publishes it once per half ring.
 */
START_TEST(mq_lagging_pointers)
{
	unsigned char msg[100], buf[100];
	uint32_t n = 0, k, pub;
	int r;

	pair_wired();
	for (k = 0; k < 3; k++) {
		make_msg(msg, k, 40);
		ck_assert_int_eq(apn_mq_send(&qa, msg, 40), 0);
	}
	ck_assert_int_eq(apn_mq_recv(&qb, buf, sizeof(buf)), -EAGAIN);
	deliver_ring(mem_b, wire_b);                       /* records without the pointer */
	ck_assert_int_eq(apn_mq_recv(&qb, buf, sizeof(buf)), -EAGAIN);
	deliver_ctrl(mem_b, wire_b);
	for (k = 0; k < 3; k++) {
		ck_assert_int_eq(apn_mq_recv(&qb, buf, sizeof(buf)), 40);
		check_msg(buf, k, 40);
	}
	ck_assert_int_eq(apn_mq_recv(&qb, buf, sizeof(buf)), -EAGAIN);
	/* 3 records, far below half a ring: b has not published its read pointer */
	ck_assert_uint_eq(ctrl_word(wire_a, 4), 0);

	/* fill the ring; b drains as it arrives, but its pointer lags */
	n = 3;
	for (;;) {
		make_msg(msg, n, 100);
		r = apn_mq_send(&qa, msg, 100);
		if (r == -EAGAIN)
			break;
		ck_assert_int_eq(r, 0);
		n++;
	}
	deliver(mem_b, wire_b);
	pub = 0;
	for (k = 3; k < n; k++) {
		uint32_t before = ctrl_word(wire_a, 4);

		ck_assert_int_eq(apn_mq_recv(&qb, buf, sizeof(buf)), 100);
		check_msg(buf, k, 100);
		if (ctrl_word(wire_a, 4) != before) {      /* a publication: half a ring's worth */
			ck_assert_uint_ge((qb.rx_rd - before + 2 * CAP) % (2 * CAP), CAP / 2);
			ck_assert_uint_eq(ctrl_word(wire_a, 4), qb.rx_rd);
			pub++;
		}
	}
	ck_assert_uint_eq(pub, 1);
	/* a does not know yet: still full */
	ck_assert_int_eq(apn_mq_send(&qa, msg, 100), -EAGAIN);
	deliver(mem_a, wire_a);
	ck_assert_int_eq(apn_mq_send(&qa, msg, 100), 0);
	/* b's flush publishes the rest: a sees all of its ring free but that record */
	ck_assert_int_eq(apn_mq_flush(&qb), 0);
	deliver(mem_a, wire_a);
	ck_assert_uint_eq(ctrl_word(mem_a, 4), qb.rx_rd);
}
END_TEST

/* A reply carries the read pointer: request/response costs no extra pointer store. */
START_TEST(mq_piggyback)
{
	unsigned char buf[16];

	pair_direct();
	ck_assert_int_eq(apn_mq_send(&qa, "ping", 4), 0);
	ck_assert_int_eq(apn_mq_recv(&qb, buf, sizeof(buf)), 4);
	ck_assert_uint_eq(ctrl_word(mem_a, 4), 0);         /* lazy: not yet */
	ck_assert_int_eq(apn_mq_send(&qb, "pong", 4), 0);
	ck_assert_uint_eq(ctrl_word(mem_a, 4), rec(4));    /* with the reply's write pointer */
	ck_assert_uint_eq(ctrl_word(mem_a, 0), rec(4));
	ck_assert_uint_eq(qb.rx_published, rec(4));
}
END_TEST

/* Writes batched by apn_mq_write() appear at apn_mq_flush(). */
START_TEST(mq_write_flush)
{
	unsigned char buf[16];

	pair_direct();
	fence_a = 1;
	ck_assert_int_eq(apn_mq_write(&qa, "one", 3), 0);
	ck_assert_int_eq(apn_mq_write(&qa, "two", 3), 0);
	ck_assert_uint_eq(fence_a, 1);
	ck_assert_int_eq(apn_mq_recv(&qb, buf, sizeof(buf)), -EAGAIN);
	ck_assert_int_eq(apn_mq_flush(&qa), 0);
	ck_assert_uint_eq(fence_a, 0);
	ck_assert_int_eq(apn_mq_recv(&qb, buf, sizeof(buf)), 3);
	ck_assert_mem_eq(buf, "one", 3);
	ck_assert_int_eq(apn_mq_recv(&qb, buf, sizeof(buf)), 3);
	ck_assert_mem_eq(buf, "two", 3);
}
END_TEST

/* What a broken peer writes is refused, not followed out of the ring. */
START_TEST(mq_bad_peer)
{
	unsigned char buf[MAXM];

	/* write pointer: odd, past 2C, more than a ring ahead */
	pair_direct();
	set_ctrl_word(mem_b, 0, 3);
	ck_assert_int_eq(apn_mq_recv(&qb, buf, sizeof(buf)), -EBADMSG);
	set_ctrl_word(mem_b, 0, 0);
	ck_assert_int_eq(apn_mq_recv(&qb, buf, sizeof(buf)), -EBADMSG);   /* sticky */
	pair_direct();
	set_ctrl_word(mem_b, 0, 2 * CAP);
	ck_assert_int_eq(apn_mq_recv(&qb, buf, sizeof(buf)), -EBADMSG);
	pair_direct();
	qb.rx_rd = 2 * CAP - 8;                            /* wr 8 is 16 ahead: fine ... */
	qb.rx_published = qb.rx_rd;
	set_ctrl_word(mem_b, 0, CAP + 16);                 /* ... CAP + 24 ahead is not */
	ck_assert_int_eq(apn_mq_recv(&qb, buf, sizeof(buf)), -EBADMSG);

	/* a header whose length is impossible, longer than the pointer says, or out of order */
	pair_direct();
	ck_assert_int_eq(apn_mq_send(&qa, "abcdefgh", 8), 0);
	set_ctrl_word(mem_b, 64, MAXM + 1);
	ck_assert_int_eq(apn_mq_recv(&qb, buf, sizeof(buf)), -EBADMSG);
	pair_direct();
	ck_assert_int_eq(apn_mq_send(&qa, "abcdefgh", 8), 0);
	set_ctrl_word(mem_b, 64, 9);                       /* 24 bytes, 16 published */
	ck_assert_int_eq(apn_mq_recv(&qb, buf, sizeof(buf)), -EBADMSG);
	pair_direct();
	ck_assert_int_eq(apn_mq_send(&qa, "abcdefgh", 8), 0);
	set_ctrl_word(mem_b, 68, 1);                       /* sequence 1 where 0 is due */
	ck_assert_int_eq(apn_mq_recv(&qb, buf, sizeof(buf)), -EBADMSG);
	ck_assert_int_eq(apn_mq_send(&qb, "x", 1), -EBADMSG);  /* the queue is dead */

	/* the peer's read pointer: out of range, or ahead of what we wrote */
	pair_direct();
	set_ctrl_word(mem_a, 4, 12);
	ck_assert_int_eq(apn_mq_send(&qa, "x", 1), -EBADMSG);
	pair_direct();
	ck_assert_int_eq(apn_mq_send(&qa, "x", 1), 0);
	set_ctrl_word(mem_a, 4, 24);                       /* consumed more than was written */
	ck_assert_int_eq(apn_mq_send(&qa, "x", 1), -EBADMSG);
	ck_assert_int_eq(apn_mq_flush(&qa), -EBADMSG);
}
END_TEST

START_TEST(mq_close)
{
	unsigned char buf[16];

	pair_direct();
	ck_assert_int_eq(apn_mq_send(&qa, "last", 4), 0);
	ck_assert_int_eq(apn_mq_write(&qa, "words", 5), 0);    /* published by the close */
	fence_a = 1;
	ck_assert_int_eq(apn_mq_close(&qa), 0);
	ck_assert_uint_eq(fence_a, 0);
	ck_assert_uint_eq(ctrl_word(mem_b, 8), APN_MQ_FIN);
	ck_assert_int_eq(apn_mq_close(&qa), 0);
	ck_assert_int_eq(apn_mq_send(&qa, "more", 4), -EPIPE);
	ck_assert_int_eq(apn_mq_flush(&qa), -EPIPE);
	/* b gets everything, then EPIPE; it cannot send to a closed peer */
	ck_assert_int_eq(apn_mq_send(&qb, "hi", 2), -EPIPE);
	ck_assert_int_eq(apn_mq_recv(&qb, buf, sizeof(buf)), 4);
	ck_assert_int_eq(apn_mq_recv(&qb, buf, sizeof(buf)), 5);
	ck_assert_mem_eq(buf, "words", 5);
	ck_assert_int_eq(apn_mq_recv(&qb, buf, sizeof(buf)), -EPIPE);
	ck_assert_int_eq(apn_mq_recv(&qb, buf, sizeof(buf)), -EPIPE);

	/* a closed side still drains what arrived */
	pair_direct();
	ck_assert_int_eq(apn_mq_send(&qb, "late", 4), 0);
	ck_assert_int_eq(apn_mq_close(&qa), 0);
	ck_assert_int_eq(apn_mq_recv(&qa, buf, sizeof(buf)), 4);
	ck_assert_int_eq(apn_mq_recv(&qa, buf, sizeof(buf)), -EAGAIN);
}
END_TEST

START_TEST(mq_events)
{
	struct apn_event ev;
	unsigned char buf[8];

	pair_direct();
	memset(&ev, 0, sizeof(ev));
	ev.type = APN_EV_TX_ERROR;
	ev.data = 3;
	ck_assert_int_eq(apn_mq_handle_event(&qa, &ev), 0);    /* memory queue: no apertures */
	qa.out_index = 3;
	qa.in_index = 9;
	ev.data = 4 | (uint64_t)9 << 32;
	ck_assert_int_eq(apn_mq_handle_event(&qa, &ev), 0);    /* another aperture's */
	ev.type = APN_EV_RX_DROP;
	ev.data = 9 | (uint64_t)2 << 32;
	ck_assert_int_eq(apn_mq_handle_event(&qa, &ev), 1);    /* ours, harmless */
	ck_assert_int_eq(apn_mq_send(&qa, "ok", 2), 0);
	ev.type = APN_EV_EVENT;
	ev.data = 3;
	ck_assert_int_eq(apn_mq_handle_event(&qa, &ev), 0);
	ck_assert_int_eq(apn_mq_handle_event(&qa, NULL), 0);
	ev.type = APN_EV_TX_ERROR;
	ev.info = APN_CNT_RX_DROP_INVALID;
	ev.data = 3 | (uint64_t)17 << 32;
	ck_assert_int_eq(apn_mq_handle_event(&qa, &ev), -ECONNRESET);
	ck_assert_int_eq(apn_mq_send(&qa, "x", 1), -ECONNRESET);
	ck_assert_int_eq(apn_mq_recv(&qa, buf, sizeof(buf)), -ECONNRESET);
	ck_assert_int_eq(apn_mq_flush(&qa), -ECONNRESET);
	ck_assert_int_eq(apn_mq_close(&qa), -ECONNRESET);
}
END_TEST

/*
 * Random traffic both ways over wires delivered at random moments (some steps
 * deliver only the records): content exact, nothing lost, nothing duplicated.
 */
START_TEST(mq_random_lag)
{
	static unsigned char buf[MAXM], msg[MAXM];
	uint32_t sent[2] = { 0, 0 }, got[2] = { 0, 0 }, lens[2][4096];
	struct apn_mq *tx[2] = { &qa, &qb }, *rxq[2] = { &qb, &qa };
	unsigned char *to[2] = { mem_b, mem_a }, *wire[2] = { wire_b, wire_a };
	int i, d, r;

	pair_wired();
	rnd_state = (uint32_t)_i + 7;
	for (i = 0; i < 30000; i++) {
		uint32_t op = rnd() % 10;

		d = rnd() & 1;
		if (op < 5) {
			uint32_t len = rnd() % (op ? 64 : MAXM + 1);

			make_msg(msg, sent[d], len);
			r = apn_mq_send(tx[d], msg, len);
			if (r == -EAGAIN)
				continue;
			ck_assert_int_eq(r, 0);
			lens[d][sent[d] % 4096] = len;
			sent[d]++;
		} else if (op < 8) {
			r = apn_mq_recv(rxq[d], buf, sizeof(buf));
			if (r == -EAGAIN)
				continue;
			ck_assert_int_eq(r, (int)lens[d][got[d] % 4096]);
			check_msg(buf, got[d], (uint32_t)r);
			got[d]++;
		} else if (op == 8) {
			deliver(to[d], wire[d]);
		} else {
			deliver_ring(to[d], wire[d]);
		}
	}
	/* settle: flush both ways, deliver, drain */
	for (i = 0; i < 4; i++) {
		for (d = 0; d < 2; d++) {
			ck_assert_int_eq(apn_mq_flush(tx[d]), 0);
			deliver(to[d], wire[d]);
			while ((r = apn_mq_recv(rxq[d], buf, sizeof(buf))) >= 0) {
				ck_assert_int_eq(r, (int)lens[d][got[d] % 4096]);
				check_msg(buf, got[d], (uint32_t)r);
				got[d]++;
			}
			ck_assert_int_eq(r, -EAGAIN);
		}
	}
	for (d = 0; d < 2; d++) {
		ck_assert_uint_eq(got[d], sent[d]);
		ck_assert_uint_gt(sent[d], 1000);
	}
}
END_TEST

static Suite *mq_suite(void)
{
	Suite *s = suite_create("apn_mq");
	TCase *tc = tcase_create("mq");

	tcase_add_test(tc, mq_init_checks);
	tcase_add_test(tc, mq_init_apertures);
	tcase_add_test(tc, mq_basic);
	tcase_add_test(tc, mq_full);
	tcase_add_test(tc, mq_wrap);
	tcase_add_test(tc, mq_lagging_pointers);
	tcase_add_test(tc, mq_piggyback);
	tcase_add_test(tc, mq_write_flush);
	tcase_add_test(tc, mq_bad_peer);
	tcase_add_test(tc, mq_close);
	tcase_add_test(tc, mq_events);
	tcase_add_loop_test(tc, mq_random_lag, 0, 4);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(mq_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
