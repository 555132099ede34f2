// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests for libapertnic's kernel traffic tunnel (apn_tunnel_*) on plain
 * memory: the two rings as the driver lays them out, with the test playing the
 * driver (producing into the to-user ring, consuming the to-kernel ring). Empty
 * and full rings, wrap, zero-copy and copying receive, argument checks, and the
 * values a broken driver (or a scribbling thread) could leave.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "apertnic.h"         /* uapi: the ring layout */
#include "apertnic_hw.h"      /* before the public header */
#include <apertnic/apertnic.h>

#define SLOTS      16
#define SLOT_BYTES 2048
#define RING_BYTES (sizeof(struct apn_tun_ring) + SLOTS * SLOT_BYTES)

static _Alignas(4096) unsigned char to_user[RING_BYTES], to_kernel[RING_BYTES];
static struct apn_tunnel t;

static struct apn_tun_ring *ring(unsigned char *r)
{
	return (struct apn_tun_ring *)r;
}

static struct apn_tun_slot *slot(unsigned char *r, uint32_t n)
{
	return (struct apn_tun_slot *)(r + sizeof(struct apn_tun_ring) +
				       (n & (SLOTS - 1)) * SLOT_BYTES);
}

/* What apn_tunnel_attach() sets up, minus the system calls. */
static void setup(void)
{
	memset(to_user, 0, sizeof(to_user));
	memset(to_kernel, 0, sizeof(to_kernel));
	memset(&t, 0, sizeof(t));
	t.fd = -1;
	t.to_user = to_user;
	t.to_kernel = to_kernel;
	t.map_len = RING_BYTES;
	t.slots = SLOTS;
	t.slot_bytes = SLOT_BYTES;
	t.max_frame = SLOT_BYTES - sizeof(struct apn_tun_slot);
	t.watchdog_ms = 1000;
}

/* The driver's side: a frame of len bytes, every byte = its number + seed. */
static void kernel_sends(uint32_t len, uint8_t seed)
{
	struct apn_tun_ring *r = ring(to_user);
	struct apn_tun_slot *s = slot(to_user, r->head);
	uint32_t i;

	for (i = 0; i < len; i++)
		((uint8_t *)(s + 1))[i] = (uint8_t)(i + seed);
	s->len = (uint16_t)len;
	s->flags = 0;
	r->head++;
}

static void frame_fill(uint8_t *f, uint32_t len, uint8_t seed)
{
	uint32_t i;

	for (i = 0; i < len; i++)
		f[i] = (uint8_t)(i + seed);
}

static int frame_check(const uint8_t *f, uint32_t len, uint8_t seed)
{
	uint32_t i;

	for (i = 0; i < len; i++)
		if (f[i] != (uint8_t)(i + seed))
			return 0;
	return 1;
}

START_TEST(tun_recv_empty_and_order)
{
	uint8_t buf[2048];
	const void *f;
	int i;

	setup();
	ck_assert_int_eq(apn_tunnel_pending(&t), 0);
	ck_assert_int_eq(apn_tunnel_peek(&t, &f), -EAGAIN);
	ck_assert_int_eq(apn_tunnel_recv(&t, buf, sizeof(buf)), -EAGAIN);
	ck_assert_int_eq(apn_tunnel_consume(&t), -EAGAIN);
	/* three rounds around the ring: order, lengths, bytes, and tail published */
	for (i = 0; i < 3 * SLOTS; i++) {
		kernel_sends(60 + (uint32_t)i, (uint8_t)i);
		ck_assert_int_eq(apn_tunnel_pending(&t), 1);
		if (i & 1) {
			ck_assert_int_eq(apn_tunnel_recv(&t, buf, sizeof(buf)), 60 + i);
			ck_assert(frame_check(buf, 60 + (uint32_t)i, (uint8_t)i));
		} else {
			ck_assert_int_eq(apn_tunnel_peek(&t, &f), 60 + i);
			ck_assert(frame_check(f, 60 + (uint32_t)i, (uint8_t)i));
			/* zero copy: the frame is in the ring itself */
			ck_assert_ptr_eq(f, slot(to_user, (uint32_t)i) + 1);
			ck_assert_int_eq(apn_tunnel_consume(&t), 0);
		}
		ck_assert_uint_eq(ring(to_user)->tail, (uint32_t)i + 1);
	}
	ck_assert_int_eq(apn_tunnel_pending(&t), 0);
}
END_TEST

START_TEST(tun_recv_short_buffer)
{
	uint8_t buf[100];

	setup();
	kernel_sends(200, 7);
	ck_assert_int_eq(apn_tunnel_recv(&t, buf, sizeof(buf)), -EMSGSIZE);
	/* left in the ring */
	ck_assert_int_eq(apn_tunnel_pending(&t), 1);
	ck_assert_uint_eq(ring(to_user)->tail, 0);
}
END_TEST

START_TEST(tun_send_full_and_wrap)
{
	uint8_t frame[1514];
	int i, j;

	setup();
	ck_assert_int_eq(apn_tunnel_send_room(&t), SLOTS);
	for (j = 0; j < 3; j++) {
		for (i = 0; i < SLOTS; i++) {
			frame_fill(frame, 100, (uint8_t)(j * SLOTS + i));
			ck_assert_int_eq(apn_tunnel_send(&t, frame, 100,
							 i & 1 ? APN_TUNNEL_F_WIRE : 0), 0);
		}
		ck_assert_int_eq(apn_tunnel_send_room(&t), 0);
		ck_assert_int_eq(apn_tunnel_send(&t, frame, 100, 0), -EAGAIN);
		ck_assert_uint_eq(ring(to_kernel)->head, (uint32_t)(j + 1) * SLOTS);
		/* the driver takes them all */
		for (i = 0; i < SLOTS; i++) {
			struct apn_tun_slot *s = slot(to_kernel, (uint32_t)(j * SLOTS + i));

			ck_assert_uint_eq(s->len, 100);
			ck_assert_uint_eq(s->flags, i & 1 ? APN_TUN_F_WIRE : 0);
			ck_assert_uint_eq(s->reserved, 0);
			ck_assert(frame_check((uint8_t *)(s + 1), 100, (uint8_t)(j * SLOTS + i)));
		}
		ring(to_kernel)->tail = (uint32_t)(j + 1) * SLOTS;
		ck_assert_int_eq(apn_tunnel_send_room(&t), SLOTS);
	}
}
END_TEST

START_TEST(tun_send_checks)
{
	uint8_t frame[2048] = { 0 };

	setup();
	ck_assert_int_eq(apn_tunnel_send(&t, frame, 13, 0), -EMSGSIZE);
	ck_assert_int_eq(apn_tunnel_send(&t, frame, t.max_frame + 1, 0), -EMSGSIZE);
	ck_assert_int_eq(apn_tunnel_send(&t, frame, t.max_frame, 0), 0);
	ck_assert_int_eq(apn_tunnel_send(&t, frame, 14, 0), 0);
	ck_assert_int_eq(apn_tunnel_send(&t, frame, 60, 0x8000), -EINVAL);
	ck_assert_int_eq(apn_tunnel_send(&t, NULL, 60, 0), -EINVAL);
	ck_assert_int_eq(apn_tunnel_send(NULL, frame, 60, 0), -EINVAL);
	ck_assert_uint_eq(ring(to_kernel)->head, 2);
}
END_TEST

START_TEST(tun_broken_counters)
{
	uint8_t frame[64] = { 0 };
	const void *f;

	setup();
	/* a head more than a ring ahead of what we consumed */
	ring(to_user)->head = SLOTS + 1;
	ck_assert_int_eq(apn_tunnel_pending(&t), -EIO);
	ck_assert_int_eq(apn_tunnel_peek(&t, &f), -EIO);
	ck_assert_int_eq(apn_tunnel_wait(&t, 0), -EIO);
	/* a frame length the driver never writes */
	setup();
	kernel_sends(60, 0);
	slot(to_user, 0)->len = 5;
	ck_assert_int_eq(apn_tunnel_peek(&t, &f), -EIO);
	slot(to_user, 0)->len = (uint16_t)(t.max_frame + 1);
	ck_assert_int_eq(apn_tunnel_peek(&t, &f), -EIO);
	/* a to-kernel tail ahead of our head */
	setup();
	ring(to_kernel)->tail = 5;
	ck_assert_int_eq(apn_tunnel_send(&t, frame, 60, 0), -EIO);
	ck_assert_int_eq(apn_tunnel_send_room(&t), -EIO);
}
END_TEST

START_TEST(tun_unattached)
{
	struct apn_tunnel none;
	const void *f;

	memset(&none, 0, sizeof(none));
	none.fd = -1;
	ck_assert_int_eq(apn_tunnel_pending(&none), -EINVAL);
	ck_assert_int_eq(apn_tunnel_peek(&none, &f), -EINVAL);
	ck_assert_int_eq(apn_tunnel_kick(&none), -EINVAL);
	ck_assert_int_eq(apn_tunnel_detach(&none), -EINVAL);
	ck_assert_int_eq(apn_tunnel_send_room(&none), -EINVAL);
	ck_assert_int_eq(apn_tunnel_attach(&none, NULL, NULL), -EINVAL);
}
END_TEST

/* Attributes are checked before any system call (the endpoint has no file here). */
START_TEST(tun_attach_attr)
{
	static const struct apn_tunnel_attr bad[] = {
		{ .slots = 24 }, { .slots = 8 }, { .slots = 2048 },
		{ .watchdog_ms = 9 }, { .watchdog_ms = 60001 },
	};
	struct apn_endpoint ep;
	unsigned i;

	memset(&ep, 0, sizeof(ep));
	ep.fd = -1;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_int_eq(apn_tunnel_attach(&t, &ep, &bad[i]), -EINVAL);
	/* good attributes reach the (absent) driver */
	ck_assert_int_eq(apn_tunnel_attach(&t, &ep, NULL), -EBADF);
}
END_TEST

static Suite *tunnel_suite(void)
{
	Suite *s = suite_create("tunnel");
	TCase *tc = tcase_create("rings");

	tcase_add_test(tc, tun_recv_empty_and_order);
	tcase_add_test(tc, tun_recv_short_buffer);
	tcase_add_test(tc, tun_send_full_and_wrap);
	tcase_add_test(tc, tun_send_checks);
	tcase_add_test(tc, tun_broken_counters);
	tcase_add_test(tc, tun_unattached);
	tcase_add_test(tc, tun_attach_attr);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(tunnel_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
