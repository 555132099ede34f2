// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests for libapertnic and the tools' helpers that need no device: the
 * aperture copy helper's store pattern (on ordinary memory), the event queue and
 * variable-length queue consumers and the user-page commands (on ordinary memory
 * standing in for the mapped queues and user page), parameter checks that fail
 * before any system call, error paths on files that are not apertnic devices,
 * APN-READY, MAC and IPv4 parsing, and the counter name table.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Record every store apn_io_write() makes, then perform it. */
struct io_store {
	uintptr_t addr;
	unsigned width;
};
static struct io_store io_trace[8192];
static unsigned io_ntrace;

static void io_record(const volatile void *p, unsigned width)
{
	ck_assert_uint_lt(io_ntrace, sizeof(io_trace) / sizeof(io_trace[0]));
	io_trace[io_ntrace].addr = (uintptr_t)p;
	io_trace[io_ntrace].width = width;
	io_ntrace++;
}

#define APN_IO_STORE8(p, v)  (io_record((p), 1), *(volatile uint8_t *)(p) = (v))
#define APN_IO_STORE32(p, v) (io_record((p), 4), *(volatile uint32_t *)(p) = (v))
#define APN_IO_STORE64(p, v) (io_record((p), 8), *(volatile uint64_t *)(p) = (v))
#include "../src/apn_io.h"

#include "apertnic_hw.h"      /* before the public header: see there */
#include <apertnic/apertnic.h>
#include "apertnic.h"         /* uapi: APN_QUEUE_DATA_OFFSET */
#include "apn_tool.h"
#include "pub_consts.h"

#define FILL 0xa5

/* An 8-byte aligned aperture of `size` bytes with guard bytes on both sides. */
struct fake_mem {
	_Alignas(64) unsigned char guard_lo[64];
	unsigned char ap[4096];
	unsigned char guard_hi[64];
};
static struct fake_mem mem;

static void mem_reset(void)
{
	memset(&mem, FILL, sizeof(mem));
	io_ntrace = 0;
}

static void check_guards(void)
{
	unsigned i;

	for (i = 0; i < sizeof(mem.guard_lo); i++) {
		ck_assert_uint_eq(mem.guard_lo[i], FILL);
		ck_assert_uint_eq(mem.guard_hi[i], FILL);
	}
}

/*
 * The stores cover exactly [base + off, base + off + len), in increasing address
 * order, each starting where the previous ended, each naturally aligned and the
 * widest of 8/4/1 that alignment and the remaining length allow.
 */
static void check_trace(const unsigned char *start, size_t len)
{
	uintptr_t a = (uintptr_t)start;
	size_t rem = len;
	unsigned i;

	/* plain comparisons: ck_assert_*() per store is slow in the forked runner */
	for (i = 0; i < io_ntrace; i++) {
		unsigned want = (a % 8 == 0 && rem >= 8) ? 8 : (a % 4 == 0 && rem >= 4) ? 4 : 1;

		if (io_trace[i].addr != a || io_trace[i].width != want || rem < want)
			ck_abort_msg("len %zu: store %u is %u bytes at %#lx, expected %u at %#lx",
				     len, i, io_trace[i].width, (unsigned long)io_trace[i].addr,
				     want, (unsigned long)a);
		a += want;
		rem -= want;
	}
	if (rem)
		ck_abort_msg("len %zu: %zu bytes not stored", len, rem);
}

START_TEST(io_write_pattern)
{
	/* every offset and length in a 64-byte aperture, src aligned and not */
	unsigned char src[80];
	size_t off, len, mis, i;

	for (i = 0; i < sizeof(src); i++)
		src[i] = (unsigned char)(i * 7 + 1);
	for (mis = 0; mis < 8; mis++)
		for (off = 0; off <= 64; off++)
			for (len = 0; off + len <= 64; len++) {
				mem_reset();
				ck_assert_int_eq(apn_io_write(mem.ap, 64, off, src + mis, len), 0);
				for (i = 0; i < 128; i++) {
					unsigned want = i >= off && i < off + len ?
						src[mis + i - off] : FILL;

					if (mem.ap[i] != want)
						ck_abort_msg("off %zu len %zu mis %zu: byte %zu",
							     off, len, mis, i);
				}
				for (i = 0; i < sizeof(mem.guard_lo); i++)
					if (mem.guard_lo[i] != FILL)
						ck_abort_msg("off %zu len %zu: store below", off, len);
				check_trace(mem.ap + off, len);
			}
}
END_TEST

START_TEST(io_write_large)
{
	unsigned char src[4096];
	size_t i;

	for (i = 0; i < sizeof(src); i++)
		src[i] = (unsigned char)(i ^ (i >> 8));
	mem_reset();
	ck_assert_int_eq(apn_io_write(mem.ap, 4096, 0, src, 4096), 0);
	ck_assert_mem_eq(mem.ap, src, 4096);
	ck_assert_uint_eq(io_ntrace, 512);
	check_trace(mem.ap, 4096);

	mem_reset();
	ck_assert_int_eq(apn_io_write(mem.ap, 4096, 3, src + 1, 4093), 0);
	ck_assert_mem_eq(mem.ap + 3, src + 1, 4093);
	ck_assert_uint_eq(mem.ap[0], FILL);
	check_guards();
	check_trace(mem.ap + 3, 4093);
}
END_TEST

START_TEST(io_write_bounds)
{
	static const struct { size_t off, len; } bad[] = {
		{ 0, 65 }, { 64, 1 }, { 65, 0 }, { 63, 2 }, { 60, 8 },
		{ 8, SIZE_MAX }, { SIZE_MAX, 1 }, { SIZE_MAX, 0 }, { 1, SIZE_MAX - 0 },
	};
	unsigned char src[128] = { 0 };
	unsigned i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mem_reset();
		ck_assert_int_eq(apn_io_write(mem.ap, 64, bad[i].off, src, bad[i].len), -EINVAL);
		ck_assert_uint_eq(io_ntrace, 0);
		ck_assert_uint_eq(mem.ap[0], FILL);
	}
	mem_reset();
	ck_assert_int_eq(apn_io_write(mem.ap, 64, 64, src, 0), 0);
	ck_assert_int_eq(apn_io_write(mem.ap, 64, 60, src, 4), 0);
	ck_assert_uint_eq(io_ntrace, 1);
	ck_assert_int_eq(apn_io_write(mem.ap, 0, 0, src, 0), 0);
	ck_assert_int_eq(apn_io_write(mem.ap, 0, 0, src, 1), -EINVAL);
}
END_TEST

/* The library's own apn_out_aperture_write() and fences, on ordinary memory. */
START_TEST(out_aperture_on_memory)
{
	volatile uint32_t fence = 0xffffffffu;
	struct apn_out_aperture oa;
	struct apn_endpoint ep;
	uint32_t done = 5, got;

	mem_reset();
	memset(&oa, 0, sizeof(oa));
	oa.ptr = mem.ap;
	oa.size = 4096;
	oa.fence_reg = &fence;
	ck_assert_ptr_eq(apn_out_aperture_ptr(&oa), mem.ap);
	ck_assert_int_eq(apn_out_aperture_write(&oa, 0, "hello", 5), 0);
	ck_assert_int_eq(apn_out_aperture_write(&oa, 4092, &done, 4), 0);
	ck_assert_mem_eq(mem.ap, "hello", 5);
	memcpy(&got, mem.ap + 4092, 4);
	ck_assert_uint_eq(got, 5);
	ck_assert_int_eq(apn_out_aperture_write(&oa, 4093, &done, 4), -EINVAL);
	ck_assert_int_eq(apn_out_aperture_write(&oa, 4097, &done, 0), -EINVAL);
	ck_assert_int_eq(apn_out_aperture_write(&oa, 4096, &done, 0), 0);
	memcpy(&got, mem.ap + 4092, 4);
	ck_assert_uint_eq(got, 5);
	check_guards();

	apn_out_aperture_fence(&oa);
	ck_assert_uint_eq(fence, 0);

	fence = 0xffffffffu;
	memset(&ep, 0, sizeof(ep));
	ep.fence_reg = &fence;
	apn_endpoint_fence(&ep);
	ck_assert_uint_eq(fence, 0);
}
END_TEST


/* ---- event queue and variable-length queue, on ordinary memory -------------------- */

#define EVQ_SIZE  8
#define VARQ_SIZE 128
#define RDPTR_UNTOUCHED 0xdeadbeefu

/* What the driver maps: a control block, then the entries. */
static struct {
	_Alignas(64) struct apn_queue_ctrl ctrl;
	struct apn_event ev[EVQ_SIZE];
} fevq;
static struct {
	_Alignas(64) struct apn_queue_ctrl ctrl;
	unsigned char data[VARQ_SIZE];
} fvarq;
/* The user page registers the consumer writes (plain memory here). */
static volatile uint32_t evq_rdptr_reg, varq_rdptr_reg, arm_reg, fence_reg_mem;
static struct apn_endpoint qep;

/* An endpoint whose queues both start at free-running position `start`. */
static void queues_reset(uint32_t start)
{
	memset(&fevq, 0, sizeof(fevq));
	memset(&fvarq, 0, sizeof(fvarq));
	memset(&qep, 0, sizeof(qep));
	fevq.ctrl.wrptr = start;
	fvarq.ctrl.wrptr = start;
	qep.fd = -1;
	qep.index = 7;
	qep.evq.base = &fevq;
	qep.evq.size = EVQ_SIZE;
	qep.evq.rdptr = start;
	qep.evq.rdptr_reg = &evq_rdptr_reg;
	qep.varq.base = &fvarq;
	qep.varq.size = VARQ_SIZE;
	qep.varq.rdptr = start;
	qep.varq.rdptr_reg = &varq_rdptr_reg;
	qep.arm_reg = &arm_reg;
	qep.fence_reg = &fence_reg_mem;
	evq_rdptr_reg = varq_rdptr_reg = arm_reg = RDPTR_UNTOUCHED;
}

/* The device's side: an event at wrptr, then the mirror. */
static void dev_post(uint8_t type, uint32_t info, uint64_t data)
{
	struct apn_event *e = &fevq.ev[fevq.ctrl.wrptr & (EVQ_SIZE - 1)];

	e->type = type;
	e->flags = 0;
	e->endpoint = 7;
	e->info = info;
	e->data = data;
	fevq.ctrl.wrptr++;
}

static void expect_event(const struct apn_event *e, uint8_t type, uint32_t info, uint64_t data)
{
	ck_assert_uint_eq(e->type, type);
	ck_assert_uint_eq(e->info, info);
	ck_assert_uint_eq(e->data, data);
	ck_assert_uint_eq(e->endpoint, 7);
}

START_TEST(evq_poll_basic)
{
	struct apn_event ev[16];

	queues_reset(0);
	ck_assert_int_eq(apn_evq_pending(&qep), 0);
	ck_assert_int_eq(apn_evq_poll(&qep, ev, 16), 0);
	/* nothing consumed: the register is not touched */
	ck_assert_uint_eq(evq_rdptr_reg, RDPTR_UNTOUCHED);

	dev_post(APN_EV_EVENT, 1, 100);
	dev_post(APN_EV_EVENT, 2, 200);
	dev_post(APN_EV_CONNECT, 3, 300);
	ck_assert_int_eq(apn_evq_pending(&qep), 3);
	ck_assert_int_eq(apn_evq_poll(&qep, ev, 16), 3);
	expect_event(&ev[0], APN_EV_EVENT, 1, 100);
	expect_event(&ev[1], APN_EV_EVENT, 2, 200);
	expect_event(&ev[2], APN_EV_CONNECT, 3, 300);
	ck_assert_uint_eq(evq_rdptr_reg, 3);
	ck_assert_uint_eq(qep.evq.rdptr, 3);
	ck_assert_int_eq(apn_evq_pending(&qep), 0);
	ck_assert_int_eq(apn_evq_poll(&qep, ev, 16), 0);

	/* argument checks */
	ck_assert_int_eq(apn_evq_poll(&qep, ev, 0), 0);
	ck_assert_int_eq(apn_evq_poll(&qep, ev, -1), -EINVAL);
	ck_assert_int_eq(apn_evq_poll(&qep, NULL, 1), -EINVAL);
	ck_assert_int_eq(apn_evq_poll(&qep, NULL, 0), 0);
}
END_TEST

START_TEST(evq_poll_max)
{
	struct apn_event ev[16];
	int i;

	queues_reset(0);
	for (i = 0; i < 5; i++)
		dev_post(APN_EV_EVENT, (uint32_t)i, 0);
	ck_assert_int_eq(apn_evq_poll(&qep, ev, 2), 2);
	ck_assert_uint_eq(ev[0].info, 0);
	ck_assert_uint_eq(ev[1].info, 1);
	ck_assert_uint_eq(evq_rdptr_reg, 2);
	ck_assert_int_eq(apn_evq_pending(&qep), 3);
	ck_assert_int_eq(apn_evq_poll(&qep, ev, 1), 1);
	ck_assert_uint_eq(ev[0].info, 2);
	ck_assert_uint_eq(evq_rdptr_reg, 3);
	ck_assert_int_eq(apn_evq_poll(&qep, ev, 16), 2);
	ck_assert_uint_eq(ev[0].info, 3);
	ck_assert_uint_eq(ev[1].info, 4);
	ck_assert_uint_eq(evq_rdptr_reg, 5);

	/* a full queue is fine; more than a queue ahead is not */
	for (i = 0; i < EVQ_SIZE; i++)
		dev_post(APN_EV_EVENT, (uint32_t)(100 + i), 0);
	ck_assert_int_eq(apn_evq_pending(&qep), EVQ_SIZE);
	ck_assert_int_eq(apn_evq_poll(&qep, ev, 16), EVQ_SIZE);
	ck_assert_uint_eq(ev[EVQ_SIZE - 1].info, 100 + EVQ_SIZE - 1);
	fevq.ctrl.wrptr += EVQ_SIZE + 1;
	ck_assert_int_eq(apn_evq_pending(&qep), -EIO);
	ck_assert_int_eq(apn_evq_poll(&qep, ev, 16), -EIO);
}
END_TEST

/* Pointers run free: slots wrap every EVQ_SIZE, the counters at 2^32. */
START_TEST(evq_poll_wrap)
{
	struct apn_event ev[4];
	uint32_t next = 0, start = 0xfffffffbu;
	int round, n, i;

	queues_reset(start);
	for (round = 0; round < 10; round++) {
		for (i = 0; i < 5; i++)
			dev_post(APN_EV_EVENT, start + next + (uint32_t)i, round);
		for (i = 0; i < 5; i += n) {
			int j;

			n = apn_evq_poll(&qep, ev, 4);
			ck_assert_int_gt(n, 0);
			for (j = 0; j < n; j++) {
				ck_assert_uint_eq(ev[j].info, start + next);
				ck_assert_uint_eq(ev[j].data, (uint64_t)round);
				next++;
			}
			ck_assert_uint_eq(evq_rdptr_reg, start + next);
		}
		ck_assert_int_eq(apn_evq_poll(&qep, ev, 4), 0);
	}
	ck_assert_uint_eq(next, 50);
	ck_assert_uint_eq(qep.evq.rdptr, start + 50); /* wrapped past 2^32 */
}
END_TEST

START_TEST(evq_overflow_reported)
{
	struct apn_event ev[16];

	queues_reset(0);
	ck_assert_uint_eq(apn_evq_overflows(&qep), 0);
	dev_post(APN_EV_EVENT, 1, 0);
	fevq.ctrl.overflows = 3;               /* the device lost three events */
	ck_assert_uint_eq(apn_evq_overflows(&qep), 3);
	ck_assert_int_eq(apn_evq_pending(&qep), 2);
	ck_assert_int_eq(apn_evq_poll(&qep, ev, 16), 2);
	expect_event(&ev[0], APN_EV_OVERFLOW, 3, 3);
	ck_assert_uint_eq(ev[0].flags, 0);
	expect_event(&ev[1], APN_EV_EVENT, 1, 0);
	/* reported once */
	ck_assert_int_eq(apn_evq_pending(&qep), 0);
	ck_assert_int_eq(apn_evq_poll(&qep, ev, 16), 0);

	/* more losses: total and the increment; with max 1 the events wait */
	fevq.ctrl.overflows = 5;
	dev_post(APN_EV_EVENT, 2, 0);
	ck_assert_int_eq(apn_evq_poll(&qep, ev, 1), 1);
	expect_event(&ev[0], APN_EV_OVERFLOW, 5, 2);
	ck_assert_int_eq(apn_evq_poll(&qep, ev, 1), 1);
	expect_event(&ev[0], APN_EV_EVENT, 2, 0);
	ck_assert_uint_eq(apn_evq_overflows(&qep), 5);

	/* the variable-length queue's losses, flagged as such */
	fvarq.ctrl.overflows = 1;
	ck_assert_uint_eq(apn_varq_overflows(&qep), 1);
	ck_assert_int_eq(apn_evq_pending(&qep), 1);
	ck_assert_int_eq(apn_evq_poll(&qep, ev, 16), 1);
	expect_event(&ev[0], APN_EV_OVERFLOW, 1, 1);
	ck_assert_uint_eq(ev[0].flags, APN_EVF_OVERFLOW_VARQ);

	/* both at once, with an event behind them */
	fevq.ctrl.overflows = 6;
	fvarq.ctrl.overflows = 4;
	dev_post(APN_EV_EVENT, 3, 0);
	ck_assert_int_eq(apn_evq_poll(&qep, ev, 16), 3);
	expect_event(&ev[0], APN_EV_OVERFLOW, 6, 1);
	expect_event(&ev[1], APN_EV_OVERFLOW, 4, 3);
	ck_assert_uint_eq(ev[1].flags, APN_EVF_OVERFLOW_VARQ);
	expect_event(&ev[2], APN_EV_EVENT, 3, 0);
}
END_TEST

START_TEST(evq_arm_and_wait)
{
	queues_reset(0);
	ck_assert_int_eq(apn_endpoint_arm(&qep), 0);
	ck_assert_uint_eq(arm_reg, 1);

	/* pending: no arming, no sleeping */
	dev_post(APN_EV_EVENT, 1, 0);
	arm_reg = 0;
	ck_assert_int_eq(apn_endpoint_wait(&qep, -1), 1);
	ck_assert_uint_eq(arm_reg, 0);

	/* empty, timeout 0: arms and looks again, never sleeps */
	queues_reset(0);
	ck_assert_int_eq(apn_endpoint_wait(&qep, 0), 0);
	ck_assert_uint_eq(arm_reg, 1);

	/* empty, short timeout (fd -1: poll(2) just sleeps) */
	ck_assert_int_eq(apn_endpoint_wait(&qep, 20), 0);

	/* an unreported overflow counts as something to poll for */
	fevq.ctrl.overflows = 1;
	ck_assert_int_eq(apn_endpoint_wait(&qep, 0), 1);
}
END_TEST

/* The device's side of the variable-length queue: header, payload padded to 8. */
static struct apn_event dev_post_var(const void *payload, uint32_t len, uint32_t src_ip,
				     uint16_t src_port)
{
	struct apn_var_hdr hdr = { len, src_ip };
	uint32_t pos = fvarq.ctrl.wrptr, i;
	struct apn_event ev;

	for (i = 0; i < 8; i++)
		fvarq.data[(pos + i) & (VARQ_SIZE - 1)] = ((unsigned char *)&hdr)[i];
	for (i = 0; i < len; i++)
		fvarq.data[(pos + 8 + i) & (VARQ_SIZE - 1)] = ((const unsigned char *)payload)[i];
	fvarq.ctrl.wrptr = pos + 8 + ((len + 7) & ~7u);
	memset(&ev, 0, sizeof(ev));
	ev.type = APN_EV_VAR;
	ev.endpoint = 7;
	ev.info = len;
	ev.data = pos | (uint64_t)src_port << 32;
	return ev;
}

START_TEST(varq_read_basic)
{
	struct apn_event e1, e2, bad;
	unsigned char buf[64];
	uint32_t ip = 0;
	uint16_t port = 0;

	queues_reset(0);
	e1 = dev_post_var("hello", 5, 0x0a000002, 4242);
	e2 = dev_post_var("0123456789abcdef", 16, 0x0a000003, 7);
	ck_assert_uint_eq(fvarq.ctrl.wrptr, 16 + 24);

	/* too small a buffer: nothing consumed */
	ck_assert_int_eq(apn_varq_read(&qep, &e1, buf, 4), -EMSGSIZE);
	ck_assert_uint_eq(varq_rdptr_reg, RDPTR_UNTOUCHED);
	memset(buf, 0, sizeof(buf));
	ck_assert_int_eq(apn_varq_recv(&qep, &e1, buf, sizeof(buf), &ip, &port), 5);
	ck_assert_mem_eq(buf, "hello", 5);
	ck_assert_uint_eq(buf[5], 0);
	ck_assert_uint_eq(ip, 0x0a000002);
	ck_assert_uint_eq(port, 4242);
	ck_assert_uint_eq(varq_rdptr_reg, 16);
	/* read twice: gone */
	ck_assert_int_eq(apn_varq_read(&qep, &e1, buf, sizeof(buf)), -ENOENT);

	ck_assert_int_eq(apn_varq_read(&qep, &e2, buf, 16), 16);
	ck_assert_mem_eq(buf, "0123456789abcdef", 16);
	ck_assert_uint_eq(varq_rdptr_reg, 40);

	/* not a VAR event; a record not written yet */
	bad = e2;
	bad.type = APN_EV_EVENT;
	ck_assert_int_eq(apn_varq_read(&qep, &bad, buf, sizeof(buf)), -EINVAL);
	ck_assert_int_eq(apn_varq_read(&qep, NULL, buf, sizeof(buf)), -EINVAL);
	bad = e2;
	bad.data = 40;
	ck_assert_int_eq(apn_varq_read(&qep, &bad, buf, sizeof(buf)), -ENOENT);

	/* header disagrees with the event */
	e1 = dev_post_var("abc", 3, 1, 1);
	bad = e1;
	bad.info = 2;
	ck_assert_int_eq(apn_varq_read(&qep, &bad, buf, sizeof(buf)), -EIO);
	/* larger than the queue could hold */
	bad.info = VARQ_SIZE;
	ck_assert_int_eq(apn_varq_read(&qep, &bad, buf, sizeof(buf)), -EIO);
	/* drop unread */
	ck_assert_int_eq(apn_varq_read(&qep, &e1, NULL, 0), 3);
	ck_assert_uint_eq(varq_rdptr_reg, 40 + 8 + 8);
}
END_TEST

/* Records wrap around the queue's end, and positions around 2^32. */
START_TEST(varq_read_wrap)
{
	unsigned char msg[64], buf[64];
	uint32_t start = 0xffffffa0u, i, len;
	struct apn_event e;
	int round;

	queues_reset(start);
	for (round = 0; round < 40; round++) {
		len = (uint32_t)(round * 7) % 57 + 1;
		for (i = 0; i < len; i++)
			msg[i] = (unsigned char)(round + i * 3);
		e = dev_post_var(msg, len, (uint32_t)round, (uint16_t)round);
		memset(buf, 0, sizeof(buf));
		ck_assert_int_eq(apn_varq_read(&qep, &e, buf, len), (int)len);
		ck_assert_mem_eq(buf, msg, len);
		ck_assert_uint_eq(varq_rdptr_reg, fvarq.ctrl.wrptr);
	}
	/* it went round the 128-byte queue many times and past 2^32 */
	ck_assert_uint_lt(qep.varq.rdptr, start);

	/* reading a later record releases the earlier ones too */
	e = dev_post_var("first", 5, 0, 0);
	{
		struct apn_event e2 = dev_post_var("second", 6, 0, 0);

		ck_assert_int_eq(apn_varq_read(&qep, &e2, buf, sizeof(buf)), 6);
		ck_assert_mem_eq(buf, "second", 6);
		ck_assert_int_eq(apn_varq_read(&qep, &e, buf, sizeof(buf)), -ENOENT);
	}
}
END_TEST

/* ---- user-page commands, on ordinary memory --------------------------------------- */

static _Alignas(4096) unsigned char upage[4096];

static uint32_t up_reg(unsigned off)
{
	uint32_t v;

	memcpy(&v, upage + off, 4);
	return v;
}

static void up_set(unsigned off, uint32_t v)
{
	memcpy(upage + off, &v, 4);
}

#define UNTOUCHED 0x5a5a5a5au

static void upage_reset(uint32_t status)
{
	unsigned off;

	for (off = 0; off < sizeof(upage); off += 4)
		up_set(off, UNTOUCHED);
	up_set(APN_UREG_CMD_STATUS, status);
}

START_TEST(cmd_out_connect)
{
	static const struct { uint32_t st; int err; } map[] = {
		{ APN_CMD_EPERM, -EPERM }, { APN_CMD_ENOENT, -ENOENT },
		{ APN_CMD_EINVAL, -EINVAL }, { APN_CMD_ENOROUTE, -EHOSTUNREACH },
		{ APN_CMD_EIO, -EIO }, { APN_CMD_EDISABLED, -ENETDOWN }, { 99, -EIO },
	};
	struct apn_out_aperture oa;
	struct apn_endpoint ep;
	unsigned i;

	memset(&ep, 0, sizeof(ep));
	ep.user_page = upage;
	memset(&oa, 0, sizeof(oa));
	oa.ep = &ep;
	oa.out_index = 5;
	oa.fence_reg = (volatile uint32_t *)(upage + APN_UREG_FENCE);

	upage_reset(APN_CMD_OK);
	ck_assert_int_eq(apn_out_aperture_connect(&oa, 3, 17, 0xabcd1234), 0);
	ck_assert_uint_eq(up_reg(APN_UREG_FENCE), 0);      /* old stores sent first */
	ck_assert_uint_eq(up_reg(APN_UREG_OUT_INDEX), 5);
	ck_assert_uint_eq(up_reg(APN_UREG_OUT_DEST_HOST), 3);
	ck_assert_uint_eq(up_reg(APN_UREG_OUT_DEST_IN_INDEX), 17);
	ck_assert_uint_eq(up_reg(APN_UREG_OUT_NONCE), 0xabcd1234);
	ck_assert_uint_eq(up_reg(APN_UREG_OUT_COMMIT), 1);
	ck_assert_uint_eq(oa.dest_host, 3);
	ck_assert_uint_eq(oa.dest_in_index, 17);
	ck_assert_uint_eq(oa.nonce, 0xabcd1234);

	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		upage_reset(map[i].st);
		ck_assert_int_eq(apn_out_aperture_connect(&oa, 9, 9, 9), map[i].err);
		ck_assert_uint_eq(oa.dest_host, 3);        /* unchanged on failure */
		ck_assert_uint_eq(oa.nonce, 0xabcd1234);
	}
}
END_TEST

START_TEST(cmd_in_nonce_narrow)
{
	struct apn_in_aperture ia;
	struct apn_endpoint ep;

	memset(&ep, 0, sizeof(ep));
	ep.user_page = upage;
	memset(&ia, 0, sizeof(ia));
	ia.ep = &ep;
	ia.in_index = 12;
	ia.nonce = 1;
	ia.size = 4096;

	upage_reset(APN_CMD_OK);
	ck_assert_int_eq(apn_in_aperture_narrow(&ia, 256, 512), 0);
	ck_assert_uint_eq(up_reg(APN_UREG_IN_INDEX), 12);
	ck_assert_uint_eq(up_reg(APN_UREG_IN_NONCE), 1);
	ck_assert_uint_eq(up_reg(APN_UREG_IN_NARROW_START), 256);
	ck_assert_uint_eq(up_reg(APN_UREG_IN_NARROW_LEN), 512);
	ck_assert_uint_eq(up_reg(APN_UREG_IN_COMMIT), 1);

	/* a new nonce keeps the narrowing */
	upage_reset(APN_CMD_OK);
	ck_assert_int_eq(apn_in_aperture_set_nonce(&ia, 0x77), 0);
	ck_assert_uint_eq(up_reg(APN_UREG_IN_NONCE), 0x77);
	ck_assert_uint_eq(up_reg(APN_UREG_IN_NARROW_START), 256);
	ck_assert_uint_eq(up_reg(APN_UREG_IN_NARROW_LEN), 512);
	ck_assert_uint_eq(ia.nonce, 0x77);

	/* refused by the device: nothing changes locally */
	upage_reset(APN_CMD_EPERM);
	ck_assert_int_eq(apn_in_aperture_set_nonce(&ia, 0x88), -EPERM);
	ck_assert_uint_eq(ia.nonce, 0x77);

	/* bad ranges never reach the device */
	upage_reset(APN_CMD_OK);
	ck_assert_int_eq(apn_in_aperture_narrow(&ia, 4000, 100), -EINVAL);
	ck_assert_int_eq(apn_in_aperture_narrow(&ia, 4097, 0), -EINVAL);
	ck_assert_int_eq(apn_in_aperture_narrow(&ia, 8, 0), -EINVAL);
	ck_assert_int_eq(apn_in_aperture_narrow(&ia, 0, 4097), -EINVAL);
	ck_assert_uint_eq(up_reg(APN_UREG_IN_COMMIT), UNTOUCHED);
	/* the whole aperture again; the last byte alone */
	ck_assert_int_eq(apn_in_aperture_narrow(&ia, 0, 0), 0);
	ck_assert_uint_eq(up_reg(APN_UREG_IN_NARROW_LEN), 0);
	ck_assert_int_eq(apn_in_aperture_narrow(&ia, 4095, 1), 0);
	ck_assert_uint_eq(ia.narrow_start, 4095);
	ck_assert_uint_eq(ia.narrow_len, 1);
}
END_TEST

START_TEST(cmd_send_msg)
{
	struct apn_in_aperture ia;
	struct apn_msg_info m;
	struct apn_endpoint ep;
	struct apn_event ev;

	memset(&ep, 0, sizeof(ep));
	ep.user_page = upage;
	upage_reset(APN_CMD_OK);
	ck_assert_int_eq(apn_endpoint_send_msg(&ep, 2, 5000, APN_MSG_ERROR, 1, 2, 3), 0);
	ck_assert_uint_eq(up_reg(APN_UREG_MSG_DEST_HOST), 2);
	ck_assert_uint_eq(up_reg(APN_UREG_MSG_DEST_PORT), 5000);
	ck_assert_uint_eq(up_reg(APN_UREG_MSG_TYPE), APN_MSG_ERROR);
	ck_assert_uint_eq(up_reg(APN_UREG_MSG_IN_INDEX), 1);
	ck_assert_uint_eq(up_reg(APN_UREG_MSG_NONCE), 2);
	ck_assert_uint_eq(up_reg(APN_UREG_MSG_INFO), 3);
	ck_assert_uint_eq(up_reg(APN_UREG_MSG_SEND), 1);

	upage_reset(APN_CMD_ENOROUTE);
	ck_assert_int_eq(apn_endpoint_send_msg(&ep, 9, 1, APN_MSG_ALIVE, 0, 0, 0), -EHOSTUNREACH);
	upage_reset(APN_CMD_OK);
	ck_assert_int_eq(apn_endpoint_send_msg(&ep, 9, 1, 0, 0, 0, 0), -EINVAL);
	ck_assert_int_eq(apn_endpoint_send_msg(&ep, 9, 1, 7, 0, 0, 0), -EINVAL);
	ck_assert_uint_eq(up_reg(APN_UREG_MSG_SEND), UNTOUCHED);

	/* CONNECT offers an aperture; the peer decodes it and ACCEPTs back */
	memset(&ia, 0, sizeof(ia));
	ia.in_index = 33;
	ia.nonce = 0xfeedf00d;
	ck_assert_int_eq(apn_endpoint_connect(&ep, 4, 6000, &ia), 0);
	ck_assert_uint_eq(up_reg(APN_UREG_MSG_TYPE), APN_MSG_CONNECT);
	ck_assert_uint_eq(up_reg(APN_UREG_MSG_IN_INDEX), 33);
	ck_assert_uint_eq(up_reg(APN_UREG_MSG_NONCE), 0xfeedf00d);

	memset(&ev, 0, sizeof(ev));
	ev.type = APN_EV_CONNECT;
	ev.info = 33;
	ev.data = 0xfeedf00dull | 1ull << 32 | 49999ull << 48;
	ck_assert_int_eq(apn_event_msg(&ev, &m), 0);
	ck_assert_uint_eq(m.type, APN_MSG_CONNECT);
	ck_assert_uint_eq(m.src_host, 1);
	ck_assert_uint_eq(m.src_port, 49999);
	ck_assert_uint_eq(m.in_index, 33);
	ck_assert_uint_eq(m.nonce, 0xfeedf00d);
	upage_reset(APN_CMD_OK);
	ia.in_index = 44;
	ia.nonce = 0x1234;
	ck_assert_int_eq(apn_endpoint_accept(&ep, &m, &ia), 0);
	ck_assert_uint_eq(up_reg(APN_UREG_MSG_DEST_HOST), 1);
	ck_assert_uint_eq(up_reg(APN_UREG_MSG_DEST_PORT), 49999);
	ck_assert_uint_eq(up_reg(APN_UREG_MSG_TYPE), APN_MSG_ACCEPT);
	ck_assert_uint_eq(up_reg(APN_UREG_MSG_IN_INDEX), 44);
	ck_assert_uint_eq(up_reg(APN_UREG_MSG_NONCE), 0x1234);

	ev.type = APN_EV_ERROR_MSG;
	ev.info = 5;
	ck_assert_int_eq(apn_event_msg(&ev, &m), 0);
	ck_assert_uint_eq(m.type, APN_MSG_ERROR);
	ck_assert_uint_eq(m.info, 5);
	ck_assert_uint_eq(m.in_index, 0);
	ev.type = APN_EV_VAR;
	m.type = 99;
	ck_assert_int_eq(apn_event_msg(&ev, &m), -EINVAL);
	ck_assert_uint_eq(m.type, 99);
	ck_assert_uint_eq(APN_EV_ERROR_MSG - APN_EV_CONNECT, APN_MSG_ERROR - APN_MSG_CONNECT);
}
END_TEST

/* ---- parameter checks that must fail before any system call ---------------------- */

static unsigned count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned n = 0;

	ck_assert_ptr_nonnull(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

START_TEST(device_open_errors)
{
	char longpath[APN_PATH_MAX + 8];
	struct apn_device dev;
	unsigned fds = count_fds();

	ck_assert_int_eq(apn_device_open(&dev, "/nonexistent/apertnic0"), -ENOENT);
	/* not an apertnic device: GET_INFO fails, the file is closed again */
	ck_assert_int_eq(apn_device_open(&dev, "/dev/null"), -ENOTTY);
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	ck_assert_int_eq(apn_device_open(&dev, longpath), -ENAMETOOLONG);
	ck_assert_uint_eq(count_fds(), fds);
}
END_TEST

START_TEST(endpoint_create_errors)
{
	struct apn_device dev;
	struct apn_endpoint ep;
	unsigned fds = count_fds();

	memset(&dev, 0, sizeof(dev));
	dev.fd = -1;
	strcpy(dev.path, "/dev/null");
	ck_assert_int_eq(apn_endpoint_create(&ep, &dev, NULL), -ENOTTY);
	strcpy(dev.path, "/nonexistent/apertnic0");
	ck_assert_int_eq(apn_endpoint_create(&ep, &dev, NULL), -ENOENT);
	ck_assert_uint_eq(count_fds(), fds);
}
END_TEST

START_TEST(endpoint_attr_checks)
{
	static const struct apn_endpoint_attr bad[] = {
		{ .flags = 2 }, { .evq_size = 1 }, { .evq_size = 3 }, { .evq_size = 131072 },
		{ .varq_size = 2048 }, { .varq_size = 5000 }, { .varq_size = 1u << 25 },
	};
	static const struct apn_endpoint_attr good = {
		.port = 5000, .flags = APN_ENDPOINT_F_TRUSTED, .evq_size = 2, .varq_size = 1u << 24,
	};
	struct apn_device dev;
	struct apn_endpoint ep;
	unsigned i;

	memset(&dev, 0, sizeof(dev));
	/* rejected before the (nonexistent) device is opened */
	strcpy(dev.path, "/nonexistent/apertnic0");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_int_eq(apn_endpoint_create(&ep, &dev, &bad[i]), -EINVAL);
	ck_assert_int_eq(apn_endpoint_create(&ep, &dev, &good), -ENOENT);
}
END_TEST

START_TEST(ipv4_parse)
{
	static const char *const bad[] = {
		"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.-4", "1..2.3", "a.b.c.d",
		"01.2.3.4", "1.2.3.4 ", " 1.2.3.4", "1.2.3.4.", "1234.1.1.1", "0x1.2.3.4",
	};
	uint32_t ip = 7;
	char buf[16];
	unsigned i;

	ck_assert_int_eq(apn_ipv4_parse("10.0.0.2", &ip), 0);
	ck_assert_uint_eq(ip, 0x0a000002);
	ck_assert_int_eq(apn_ipv4_parse("255.255.255.255", &ip), 0);
	ck_assert_uint_eq(ip, 0xffffffff);
	ck_assert_int_eq(apn_ipv4_parse("0.0.0.0", &ip), 0);
	ck_assert_uint_eq(ip, 0);
	ck_assert_int_eq(apn_ipv4_parse("192.168.100.1", &ip), 0);
	ck_assert_str_eq(apn_ipv4_format(ip, buf), "192.168.100.1");
	ck_assert_str_eq(apn_ipv4_format(0xffffffff, buf), "255.255.255.255");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ip = 7;
		ck_assert_msg(apn_ipv4_parse(bad[i], &ip) == -EINVAL, "accepted: '%s'", bad[i]);
		ck_assert_uint_eq(ip, 7);
	}
	ck_assert_int_eq(apn_ipv4_parse(NULL, &ip), -EINVAL);
}
END_TEST

START_TEST(mr_reg_alignment)
{
	long pg = sysconf(_SC_PAGESIZE);
	struct apn_endpoint ep;
	struct apn_mr mr;
	char *buf = aligned_alloc((size_t)pg, 2 * (size_t)pg);

	ck_assert_ptr_nonnull(buf);
	memset(&ep, 0, sizeof(ep));
	ep.fd = -1;   /* a system call would fail with -EBADF */
	ck_assert_int_eq(apn_mr_reg(&mr, &ep, buf + 8, (size_t)pg), -EINVAL);
	ck_assert_int_eq(apn_mr_reg(&mr, &ep, buf, (size_t)pg + 1), -EINVAL);
	ck_assert_int_eq(apn_mr_reg(&mr, &ep, buf, 100), -EINVAL);
	ck_assert_int_eq(apn_mr_reg(&mr, &ep, buf, 0), -EINVAL);
	ck_assert_int_eq(apn_mr_reg(&mr, &ep, NULL, (size_t)pg), -EINVAL);
	/* a valid request reaches the (here invalid) file */
	ck_assert_int_eq(apn_mr_reg(&mr, &ep, buf, (size_t)pg), -EBADF);
	free(buf);
}
END_TEST

START_TEST(in_aperture_params)
{
	struct apn_endpoint ep, other;
	struct apn_in_aperture ia;
	struct apn_mr mr;

	memset(&ep, 0, sizeof(ep));
	ep.fd = -1;
	other = ep;
	memset(&mr, 0, sizeof(mr));
	mr.ep = &ep;
	mr.addr = mem.ap;
	mr.len = 8192;
	ck_assert_int_eq(apn_in_aperture_create(&ia, &ep, &mr, 0, 0, 0, 0), -EINVAL);
	ck_assert_int_eq(apn_in_aperture_create(&ia, &ep, &mr, 0, 32, 0, 0), -EINVAL);
	ck_assert_int_eq(apn_in_aperture_create(&ia, &ep, &mr, 0, 96, 0, 0), -EINVAL);
	ck_assert_int_eq(apn_in_aperture_create(&ia, &ep, &mr, 0, 16384, 0, 0), -EINVAL);
	ck_assert_int_eq(apn_in_aperture_create(&ia, &ep, &mr, 4096, 8192, 0, 0), -EINVAL);
	ck_assert_int_eq(apn_in_aperture_create(&ia, &ep, &mr, 8193, 64, 0, 0), -EINVAL);
	ck_assert_int_eq(apn_in_aperture_create(&ia, &ep, &mr, UINT64_MAX, 64, 0, 0), -EINVAL);
	ck_assert_int_eq(apn_in_aperture_create(&ia, &ep, &mr, 0, 64, 1u << 5, 0), -EINVAL);
	ck_assert_int_eq(apn_in_aperture_create(&ia, &other, &mr, 0, 64, 0, 0), -EINVAL);
	ck_assert_int_eq(apn_in_aperture_create(&ia, &ep, &mr, 4096, 4096,
						APN_IA_F_NONCE, 7), -EBADF);
}
END_TEST

START_TEST(out_aperture_params)
{
	struct apn_out_aperture oa;
	struct apn_endpoint ep;

	memset(&ep, 0, sizeof(ep));
	ep.fd = -1;
	ep.out_slot_size = 4096;
	ck_assert_int_eq(apn_out_aperture_create(&oa, &ep, 1, 0, 0, 0), -EINVAL);
	ck_assert_int_eq(apn_out_aperture_create(&oa, &ep, 1, 0, 0, 3000), -EINVAL);
	ck_assert_int_eq(apn_out_aperture_create(&oa, &ep, 1, 0, 0, 8192), -EINVAL);
	ck_assert_int_eq(apn_out_aperture_create(&oa, &ep, 1, 0, 0, 4096), -EBADF);
}
END_TEST

/* ---- APN-READY lines -------------------------------------------------------------- */

START_TEST(ready_parse_good)
{
	struct apn_ready r;
	char buf[128];

	ck_assert_int_eq(apn_ready_parse("APN-READY host=2 in_index=5 nonce=0x1234abcd\n", &r), 0);
	ck_assert_uint_eq(r.host, 2);
	ck_assert_uint_eq(r.in_index, 5);
	ck_assert_uint_eq(r.nonce, 0x1234abcd);

	/* console noise before the tag, other order, CRLF, extra fields, decimal nonce */
	ck_assert_int_eq(apn_ready_parse("[  1.2] guest: APN-READY nonce=17 x=y "
					 "in_index=0 host=65535\r\n", &r), 0);
	ck_assert_uint_eq(r.host, 65535);
	ck_assert_uint_eq(r.in_index, 0);
	ck_assert_uint_eq(r.nonce, 17);

	ck_assert_int_eq(apn_ready_parse("APN-READY host=1 in_index=4294967295 "
					 "nonce=0xffffffff", &r), 0);
	ck_assert_uint_eq(r.in_index, UINT32_MAX);
	ck_assert_uint_eq(r.nonce, UINT32_MAX);

	/* what apn-recv prints parses back */
	r.host = 3, r.in_index = 9, r.nonce = 0xbeef;
	apn_ready_format(buf, sizeof(buf), &r);
	ck_assert_str_eq(buf, "APN-READY host=3 in_index=9 nonce=0x0000beef");
	memset(&r, 0, sizeof(r));
	ck_assert_int_eq(apn_ready_parse(buf, &r), 0);
	ck_assert_uint_eq(r.host, 3);
	ck_assert_uint_eq(r.in_index, 9);
	ck_assert_uint_eq(r.nonce, 0xbeef);
}
END_TEST

START_TEST(ready_parse_bad)
{
	static const char *const bad[] = {
		"",
		"host=1 in_index=2 nonce=3",                     /* no tag */
		"APN-READYhost=1 in_index=2 nonce=3",            /* tag glued to a field */
		"APN-READY host=1 in_index=2",                   /* nonce missing */
		"APN-READY in_index=2 nonce=3",                  /* host missing */
		"APN-READY host=1 nonce=3",                      /* in_index missing */
		"APN-READY host=65536 in_index=2 nonce=3",       /* host out of range */
		"APN-READY host=1 in_index=4294967296 nonce=3",
		"APN-READY host=1 in_index=2 nonce=0x100000000",
		"APN-READY host=-1 in_index=2 nonce=3",
		"APN-READY host=1 in_index=2 nonce=",
		"APN-READY host=1 in_index=2x nonce=3",
		"APN-READY host=1 in_index=2 nonce=0xzz",
		"APN-READY host=1 host=2 in_index=2 nonce=3",    /* repeated */
		"APN-READY host=1 in_index=2 nonce=3 junk",      /* not a field */
		"APN-RECEIVED len=3",
	};
	struct apn_ready r = { 7, 7, 7 };
	unsigned i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(apn_ready_parse(bad[i], &r) == -EINVAL, "accepted: %s", bad[i]);
	ck_assert_int_eq(apn_ready_parse(NULL, &r), -EINVAL);
	ck_assert_uint_eq(r.host, 7);
}
END_TEST

START_TEST(parse_numbers)
{
	uint32_t v;

	ck_assert_int_eq(apn_tool_parse_u32("0x10", UINT32_MAX, &v), 0);
	ck_assert_uint_eq(v, 16);
	ck_assert_int_eq(apn_tool_parse_u32("65535", UINT16_MAX, &v), 0);
	ck_assert_uint_eq(v, 65535);
	ck_assert_int_eq(apn_tool_parse_u32("65536", UINT16_MAX, &v), -ERANGE);
	ck_assert_int_eq(apn_tool_parse_u32("99999999999999999999", UINT32_MAX, &v), -ERANGE);
	ck_assert_int_eq(apn_tool_parse_u32("-1", UINT32_MAX, &v), -EINVAL);
	ck_assert_int_eq(apn_tool_parse_u32(" 1", UINT32_MAX, &v), -EINVAL);
	ck_assert_int_eq(apn_tool_parse_u32("1 ", UINT32_MAX, &v), -EINVAL);
	ck_assert_int_eq(apn_tool_parse_u32("", UINT32_MAX, &v), -EINVAL);
	ck_assert_int_eq(apn_tool_parse_u32("12k", UINT32_MAX, &v), -EINVAL);
}
END_TEST

START_TEST(parse_hostport)
{
	static const char *const bad[] = {
		"", "1", ":1", "1:", "1:0", "1:65536", "65536:1", "a:1", "1:1x", "1 :1", "1:-1",
		"12345678901234567:1",
	};
	uint16_t h = 7, p = 7;
	unsigned i;

	ck_assert_int_eq(apn_tool_parse_hostport("2:5000", &h, &p), 0);
	ck_assert_uint_eq(h, 2);
	ck_assert_uint_eq(p, 5000);
	ck_assert_int_eq(apn_tool_parse_hostport("0x10:65535", &h, &p), 0);
	ck_assert_uint_eq(h, 16);
	ck_assert_uint_eq(p, 65535);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		h = p = 7;
		ck_assert_msg(apn_tool_parse_hostport(bad[i], &h, &p) < 0, "accepted: '%s'", bad[i]);
		ck_assert_uint_eq(h, 7);
		ck_assert_uint_eq(p, 7);
	}
	ck_assert_int_lt(apn_tool_parse_hostport(NULL, &h, &p), 0);
}
END_TEST

START_TEST(hex_and_text)
{
	static const unsigned char d[] = { 'h', 'i', 0, 0x7f, 0xff, ' ', '~', '\n' };
	char hex[2 * sizeof(d) + 1], text[sizeof(d) + 1];

	apn_tool_hex(hex, d, sizeof(d));
	ck_assert_str_eq(hex, "6869007fff207e0a");
	apn_tool_text(text, d, sizeof(d));
	ck_assert_str_eq(text, "hi... ~.");
	apn_tool_hex(hex, d, 0);
	ck_assert_str_eq(hex, "");
}
END_TEST

/* ---- MAC addresses ---------------------------------------------------------------- */

START_TEST(mac_parse)
{
	static const char *const bad[] = {
		"", "aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:ff:00", "aa:bb:cc:dd:ee:f",
		"a:bb:cc:dd:ee:ff", "aa-bb-cc-dd-ee-ff", "aa:bb:cc:dd:ee:fg",
		"aabb:cc:dd:ee:ff", "aa:bb:cc:dd:ee:ff ", " aa:bb:cc:dd:ee:ff",
		"aa:bb:cc:dd:ee:ff:", "0xa:bb:cc:dd:ee:ff",
	};
	uint8_t mac[6] = { 1, 2, 3, 4, 5, 6 };
	uint8_t want[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef };
	char buf[18];
	unsigned i;

	ck_assert_int_eq(apn_mac_parse("52:54:00:ab:cd:ef", mac), 0);
	ck_assert_mem_eq(mac, want, 6);
	ck_assert_int_eq(apn_mac_parse("52:54:00:AB:Cd:eF", mac), 0);
	ck_assert_mem_eq(mac, want, 6);
	ck_assert_str_eq(apn_mac_format(mac, buf), "52:54:00:ab:cd:ef");

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(mac, 0x11, 6);
		ck_assert_msg(apn_mac_parse(bad[i], mac) == -EINVAL, "accepted: '%s'", bad[i]);
		ck_assert_uint_eq(mac[5], 0x11);   /* unchanged on error */
	}
	ck_assert_int_eq(apn_mac_parse(NULL, mac), -EINVAL);
}
END_TEST

/* ---- counters and version --------------------------------------------------------- */

START_TEST(counter_names)
{
	unsigned i, j, n = apn_counter_count();

	ck_assert_uint_eq(n, APN_CNT__COUNT);
	for (i = 0; i < n; i++) {
		const char *s = apn_counter_name(i);

		ck_assert_ptr_nonnull(s);
		ck_assert_uint_gt(strlen(s), 0);
		ck_assert_uint_eq(strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_"), strlen(s));
		for (j = 0; j < i; j++)
			ck_assert_str_ne(s, apn_counter_name(j));
	}
	ck_assert_ptr_null(apn_counter_name(n));
	ck_assert_ptr_null(apn_counter_name(~0u));
	ck_assert_str_eq(apn_counter_name(0), "tx_frames");
	ck_assert_str_eq(apn_counter_name(APN_CNT_RX_DROP_NONCE), "rx_drop_nonce");
	ck_assert_str_eq(apn_counter_name(APN_CNT_RX_DROP_BOUNDS), "rx_drop_bounds");
	ck_assert_str_eq(apn_counter_name(APN_CNT_IRQS), "irqs");
	/* ids are stable, counters only ever appended */
	ck_assert_uint_eq(APN_CNT_IRQS, 30);
	ck_assert_uint_ge(APN_CNT__COUNT, 31);
}
END_TEST

/* The public header's event and message numbers are the device's (tests/pub_consts.c). */
START_TEST(public_constants)
{
	static const unsigned hw[] = { APN_SHARED_CONSTS };
	unsigned i;

	ck_assert_uint_eq(apn_pub_consts_count, sizeof(hw) / sizeof(hw[0]));
	for (i = 0; i < apn_pub_consts_count; i++)
		ck_assert_msg(apn_pub_consts[i] == hw[i], "constant %u: public %u, device %u", i,
			      apn_pub_consts[i], hw[i]);
}
END_TEST

#define STR_(x) #x
#define STR(x) STR_(x)

START_TEST(version)
{
	ck_assert_str_eq(apn_version(), APN_VERSION_STRING);
	ck_assert_str_eq(apn_version(), STR(APN_VERSION_MAJOR) "." STR(APN_VERSION_MINOR)
			 "." STR(APN_VERSION_PATCH));
}
END_TEST

static Suite *apertnic_suite(void)
{
	Suite *s = suite_create("libapertnic");
	TCase *tc;

	tc = tcase_create("copy");
	tcase_add_test(tc, io_write_pattern);
	tcase_add_test(tc, io_write_large);
	tcase_add_test(tc, io_write_bounds);
	tcase_add_test(tc, out_aperture_on_memory);
	suite_add_tcase(s, tc);

	tc = tcase_create("queues");
	tcase_add_test(tc, evq_poll_basic);
	tcase_add_test(tc, evq_poll_max);
	tcase_add_test(tc, evq_poll_wrap);
	tcase_add_test(tc, evq_overflow_reported);
	tcase_add_test(tc, evq_arm_and_wait);
	tcase_add_test(tc, varq_read_basic);
	tcase_add_test(tc, varq_read_wrap);
	suite_add_tcase(s, tc);

	tc = tcase_create("commands");
	tcase_add_test(tc, cmd_out_connect);
	tcase_add_test(tc, cmd_in_nonce_narrow);
	tcase_add_test(tc, cmd_send_msg);
	suite_add_tcase(s, tc);

	tc = tcase_create("params");
	tcase_add_test(tc, device_open_errors);
	tcase_add_test(tc, endpoint_create_errors);
	tcase_add_test(tc, endpoint_attr_checks);
	tcase_add_test(tc, mr_reg_alignment);
	tcase_add_test(tc, in_aperture_params);
	tcase_add_test(tc, out_aperture_params);
	suite_add_tcase(s, tc);

	tc = tcase_create("parsing");
	tcase_add_test(tc, ready_parse_good);
	tcase_add_test(tc, ready_parse_bad);
	tcase_add_test(tc, parse_numbers);
	tcase_add_test(tc, parse_hostport);
	tcase_add_test(tc, hex_and_text);
	tcase_add_test(tc, mac_parse);
	tcase_add_test(tc, ipv4_parse);
	suite_add_tcase(s, tc);

	tc = tcase_create("names");
	tcase_add_test(tc, counter_names);
	tcase_add_test(tc, public_constants);
	tcase_add_test(tc, version);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(apertnic_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
