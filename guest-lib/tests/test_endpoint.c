// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests for libapertnic's DMA channel (request queue, completion queue),
 * remote-read and event-frame calls, orderly close, and the connection helpers
 * (apn_endpoint_dial/listen, trusted and through the kernel), on an endpoint
 * whose user page and queues are plain memory: the test plays the device by
 * writing the queues' mirrors and posting events. Untrusted endpoints' ioctls
 * go to tests/fake_dev.c (linked with --wrap), which plays the kernel.
 */
#include <check.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "apertnic_hw.h"      /* before the public header */
#include <apertnic/apertnic.h>
#include "apertnic.h"         /* uapi: APN_QUEUE_DATA_OFFSET */
#include "fake_dev.h"

#define RQ_MAX  16
#define CQ_MAX  16
#define EVQ_SZ  16
#define SENTINEL 0x5a5a5a5au

static _Alignas(4096) unsigned char upage[APN_USER_PAGE_SIZE];
static struct {
	_Alignas(64) struct apn_queue_ctrl ctrl;
	struct apn_dma_req req[RQ_MAX];
} frq;
static struct {
	_Alignas(64) struct apn_queue_ctrl ctrl;
	struct apn_event ev[CQ_MAX];
} fcq;
static struct {
	_Alignas(64) struct apn_queue_ctrl ctrl;
	struct apn_event ev[EVQ_SZ];
} fevq;
static struct {
	_Alignas(64) struct apn_queue_ctrl ctrl;
	unsigned char data[4096];
} fvarq;
static _Alignas(4096) unsigned char local_mem[8192], remote_mem[4096];

static struct apn_endpoint ep, other_ep;
static struct apn_mr mr;
static struct apn_in_aperture ia, ia_event;
static struct apn_out_aperture oa, oa_event;

static uint32_t up_reg(unsigned off)
{
	uint32_t v;

	memcpy(&v, upage + off, 4);
	return le32toh(v);
}

static void up_set(unsigned off, uint32_t v)
{
	v = htole32(v);
	memcpy(upage + off, &v, 4);
}

/* An endpoint (index 7) with a DMA channel of rq requests and cq completions. */
static void setup(uint32_t rq, uint32_t cq)
{
	memset(upage, 0, sizeof(upage));
	memset(&frq, 0, sizeof(frq));
	memset(&fcq, 0, sizeof(fcq));
	memset(&fevq, 0, sizeof(fevq));
	memset(&fvarq, 0, sizeof(fvarq));
	memset(&ep, 0, sizeof(ep));
	memset(&other_ep, 0, sizeof(other_ep));
	ep.fd = -1;
	ep.index = 7;
	ep.flags = APN_ENDPOINT_F_TRUSTED;
	ep.user_page = upage;
	ep.fence_reg = (volatile uint32_t *)(upage + APN_UREG_FENCE);
	ep.arm_reg = (volatile uint32_t *)(upage + APN_UREG_ARM);
	ep.evq.base = &fevq;
	ep.evq.size = EVQ_SZ;
	ep.evq.rdptr_reg = (volatile uint32_t *)(upage + APN_UREG_EVQ_RDPTR);
	ep.varq.base = &fvarq;
	ep.varq.size = sizeof(fvarq.data);
	ep.varq.rdptr_reg = (volatile uint32_t *)(upage + APN_UREG_VARQ_RDPTR);
	if (rq) {
		ep.dma.rq = &frq;
		ep.dma.rq_size = rq;
		ep.dma.tail_reg = (volatile uint32_t *)(upage + APN_UREG_RQ_TAIL);
		ep.dma.cq.base = &fcq;
		ep.dma.cq.size = cq;
		ep.dma.cq.rdptr_reg = (volatile uint32_t *)(upage + APN_UREG_CQ_RDPTR);
	}
	up_set(APN_UREG_RQ_TAIL, SENTINEL);
	up_set(APN_UREG_CQ_RDPTR, SENTINEL);

	memset(&mr, 0, sizeof(mr));
	mr.addr = local_mem;
	mr.len = sizeof(local_mem);
	mr.ep = &ep;
	memset(&ia, 0, sizeof(ia));
	ia.in_index = 12;
	ia.nonce = 0x1111;
	ia.size = 8192;
	ia.mr = &mr;
	ia.ep = &ep;
	ia_event = ia;
	ia_event.in_index = 13;
	ia_event.mr = NULL;
	memset(&oa, 0, sizeof(oa));
	oa.ptr = remote_mem;
	oa.size = 4096;
	oa.out_index = 5;
	oa.fence_reg = ep.fence_reg;
	oa.ep = &ep;
	oa_event = oa;
	oa_event.out_index = 6;
	oa_event.flags = APN_OA_F_EVENT;
}

/* The device retires requests up to `head` (its mirror in the control block). */
static void dev_retire(uint32_t head)
{
	frq.ctrl.rdptr = htole32(head);
}

/* The device writes a completion, then its write-pointer mirror. */
static void dev_complete(uint8_t type, uint32_t status, uint32_t cookie, uint32_t bytes)
{
	uint32_t wr = le32toh(fcq.ctrl.wrptr);
	struct apn_event *e = &fcq.ev[wr & (ep.dma.cq.size - 1)];

	e->type = type;
	e->flags = 0;
	e->endpoint = htole16(7);
	e->info = htole32(status);
	e->data = htole64(cookie | (uint64_t)bytes << 32);
	fcq.ctrl.wrptr = htole32(wr + 1);
}

static void dev_event_flags(uint8_t type, uint8_t flags, uint32_t info, uint64_t data)
{
	uint32_t wr = fevq.ctrl.wrptr;
	struct apn_event *e = &fevq.ev[wr & (EVQ_SZ - 1)];

	e->type = type;
	e->flags = flags;
	e->endpoint = 7;
	e->info = info;
	e->data = data;
	fevq.ctrl.wrptr = wr + 1;
}

static void dev_event(uint8_t type, uint32_t info, uint64_t data)
{
	dev_event_flags(type, 0, info, data);
}

START_TEST(dma_post_and_doorbell)
{
	const struct apn_dma_req *r = &frq.req[0];

	setup(4, 8);
	ck_assert_uint_eq(apn_dma_outstanding(&ep), 0);
	ck_assert_int_eq(apn_dma_post(&ep, APN_DMA_PUT, &oa, 64, &ia, 128, 1000, 0xc0ffee), 0);
	ck_assert_uint_eq(r->opcode, APN_REQ_PUT);
	ck_assert_uint_eq(r->flags, 0);
	ck_assert_uint_eq(le32toh(r->out_index), 5);
	ck_assert_uint_eq(le32toh(r->local_in_index), 12);
	ck_assert_uint_eq(le32toh(r->len), 1000);
	ck_assert_uint_eq(le32toh(r->remote_offset), 64);
	ck_assert_uint_eq(le32toh(r->local_offset), 128);
	ck_assert_uint_eq(le32toh(r->cookie), 0xc0ffee);
	/* not visible to the device until the doorbell */
	ck_assert_uint_eq(up_reg(APN_UREG_RQ_TAIL), SENTINEL);
	ck_assert_int_eq(apn_dma_post(&ep, APN_DMA_GET, &oa, 0, &ia, 0, 4096, 2), 0);
	ck_assert_uint_eq(frq.req[1].opcode, APN_REQ_GET);
	ck_assert_int_eq(apn_dma_doorbell(&ep), 2);
	ck_assert_uint_eq(up_reg(APN_UREG_RQ_TAIL), 2);
	/* nothing new: no store */
	up_set(APN_UREG_RQ_TAIL, SENTINEL);
	ck_assert_int_eq(apn_dma_doorbell(&ep), 0);
	ck_assert_uint_eq(up_reg(APN_UREG_RQ_TAIL), SENTINEL);
	/* put/get ring at once */
	ck_assert_int_eq(apn_dma_get(&ep, &oa, 8, &ia, 16, 24, 3), 0);
	ck_assert_uint_eq(up_reg(APN_UREG_RQ_TAIL), 3);
	ck_assert_int_eq(apn_dma_put(&ep, &oa, 0, &ia, 8192 - 4096, 4096, 4), 0);
	ck_assert_uint_eq(up_reg(APN_UREG_RQ_TAIL), 4);
	ck_assert_uint_eq(apn_dma_outstanding(&ep), 4);
	/* zero-length requests are legal */
	dev_retire(4);
	dev_complete(APN_EV_PUT_DONE, 0, 1, 1000);
	ck_assert_int_eq(apn_cq_poll(&ep, (struct apn_event[1]){ { 0 } }, 1), 1);
	ck_assert_int_eq(apn_dma_post(&ep, APN_DMA_PUT, &oa, 4096, &ia, 8192, 0, 5), 0);
}
END_TEST

/* A slot is reused only once the device's head mirror has passed it. */
START_TEST(dma_rq_full)
{
	int i;

	setup(4, 16);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(apn_dma_post(&ep, APN_DMA_PUT, &oa, 0, &ia, 0, 8,
					      (uint32_t)i), 0);
	ck_assert_int_eq(apn_dma_post(&ep, APN_DMA_PUT, &oa, 0, &ia, 0, 8, 4), -EAGAIN);
	ck_assert_int_eq(apn_dma_doorbell(&ep), 4);
	dev_retire(1);                                    /* one slot free */
	ck_assert_int_eq(apn_dma_post(&ep, APN_DMA_PUT, &oa, 0, &ia, 0, 8, 4), 0);
	ck_assert_uint_eq(le32toh(frq.req[0].cookie), 4); /* slot 0 again */
	ck_assert_uint_eq(le32toh(frq.req[1].cookie), 1); /* not retired: untouched */
	ck_assert_int_eq(apn_dma_post(&ep, APN_DMA_PUT, &oa, 0, &ia, 0, 8, 5), -EAGAIN);
	dev_retire(3);
	ck_assert_int_eq(apn_dma_post(&ep, APN_DMA_PUT, &oa, 0, &ia, 0, 8, 5), 0);
	ck_assert_int_eq(apn_dma_post(&ep, APN_DMA_PUT, &oa, 0, &ia, 0, 8, 6), 0);
	ck_assert_int_eq(apn_dma_post(&ep, APN_DMA_PUT, &oa, 0, &ia, 0, 8, 7), -EAGAIN);
	ck_assert_uint_eq(apn_dma_outstanding(&ep), 7);
	/* a mirror more than a queue behind is a broken device */
	dev_retire(0xfffffff0u);
	ck_assert_int_eq(apn_dma_post(&ep, APN_DMA_PUT, &oa, 0, &ia, 0, 8, 7), -EIO);
}
END_TEST

/* Outstanding requests are charged against the completion queue. */
START_TEST(dma_cq_charge)
{
	struct apn_event ev[8];
	int i;

	setup(8, 4);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(apn_dma_put(&ep, &oa, 0, &ia, 0, 100, (uint32_t)i), 0);
	dev_retire(4);                                    /* the RQ has room ... */
	ck_assert_int_eq(apn_dma_put(&ep, &oa, 0, &ia, 0, 100, 4), -EAGAIN);  /* ... the CQ not */
	dev_complete(APN_EV_PUT_DONE, 0, 0, 100);
	dev_complete(APN_EV_PUT_DONE, APN_CNT_TX_DROP_BOUNDS, 1, 0);
	ck_assert_int_eq(apn_cq_pending(&ep), 2);
	/* completions waiting still count until they are reaped */
	ck_assert_int_eq(apn_dma_put(&ep, &oa, 0, &ia, 0, 100, 4), -EAGAIN);
	ck_assert_int_eq(apn_cq_poll(&ep, ev, 8), 2);
	ck_assert_uint_eq(ev[0].type, APN_EV_PUT_DONE);
	ck_assert_uint_eq(ev[0].info, 0);
	ck_assert_uint_eq(apn_cq_cookie(&ev[0]), 0);
	ck_assert_uint_eq(apn_cq_bytes(&ev[0]), 100);
	ck_assert_uint_eq(ev[0].endpoint, 7);
	ck_assert_uint_eq(ev[1].info, APN_CNT_TX_DROP_BOUNDS);
	ck_assert_uint_eq(apn_cq_cookie(&ev[1]), 1);
	ck_assert_uint_eq(apn_cq_bytes(&ev[1]), 0);
	ck_assert_uint_eq(up_reg(APN_UREG_CQ_RDPTR), 2);
	ck_assert_uint_eq(apn_dma_outstanding(&ep), 2);
	ck_assert_int_eq(apn_dma_put(&ep, &oa, 0, &ia, 0, 100, 4), 0);
	ck_assert_int_eq(apn_dma_put(&ep, &oa, 0, &ia, 0, 100, 5), 0);
	ck_assert_int_eq(apn_dma_put(&ep, &oa, 0, &ia, 0, 100, 6), -EAGAIN);
}
END_TEST

START_TEST(dma_cq_poll)
{
	struct apn_event ev[CQ_MAX];
	uint32_t k, seen = 0;
	int round, n;

	setup(4, 4);
	ck_assert_int_eq(apn_cq_poll(&ep, ev, 4), 0);
	ck_assert_uint_eq(up_reg(APN_UREG_CQ_RDPTR), SENTINEL);     /* nothing taken */
	ck_assert_int_eq(apn_cq_poll(&ep, ev, -1), -EINVAL);
	ck_assert_int_eq(apn_cq_poll(&ep, NULL, 1), -EINVAL);
	ck_assert_int_eq(apn_cq_poll(&ep, NULL, 0), 0);
	/* around the ring several times, in pieces */
	for (round = 0; round < 10; round++) {
		for (k = 0; k < 3; k++)
			dev_complete(k & 1 ? APN_EV_GET_DONE : APN_EV_PUT_DONE, 0,
				     seen + k, 10 * (seen + k));
		n = apn_cq_poll(&ep, ev, 2);
		ck_assert_int_eq(n, 2);
		n += apn_cq_poll(&ep, ev + 2, 4);
		ck_assert_int_eq(n, 3);
		for (k = 0; k < 3; k++) {
			ck_assert_uint_eq(apn_cq_cookie(&ev[k]), seen + k);
			ck_assert_uint_eq(apn_cq_bytes(&ev[k]), 10 * (seen + k));
		}
		seen += 3;
		ck_assert_uint_eq(up_reg(APN_UREG_CQ_RDPTR), seen);
	}
	/* a pointer more than a queue ahead */
	fcq.ctrl.wrptr = htole32(seen + 5);
	ck_assert_int_eq(apn_cq_poll(&ep, ev, 4), -EIO);
	ck_assert_int_eq(apn_cq_pending(&ep), -EIO);
}
END_TEST

START_TEST(dma_params)
{
	struct apn_out_aperture oa_other = oa;
	struct apn_in_aperture ia_other = ia;
	struct apn_event ev;

	setup(4, 4);
	oa_other.ep = &other_ep;
	ia_other.ep = &other_ep;
	ck_assert_int_eq(apn_dma_post(&ep, 0, &oa, 0, &ia, 0, 8, 0), -EINVAL);
	ck_assert_int_eq(apn_dma_post(&ep, 3, &oa, 0, &ia, 0, 8, 0), -EINVAL);
	ck_assert_int_eq(apn_dma_post(&ep, APN_DMA_PUT, NULL, 0, &ia, 0, 8, 0), -EINVAL);
	ck_assert_int_eq(apn_dma_post(&ep, APN_DMA_PUT, &oa, 0, NULL, 0, 8, 0), -EINVAL);
	ck_assert_int_eq(apn_dma_post(&ep, APN_DMA_PUT, &oa, 0, &ia, 0, APN_DMA_MAX_LEN + 1, 0),
			 -EINVAL);
	ck_assert_int_eq(apn_dma_post(&ep, APN_DMA_PUT, &oa, 4090, &ia, 0, 8, 0), -EINVAL);
	ck_assert_int_eq(apn_dma_post(&ep, APN_DMA_PUT, &oa, 4097, &ia, 0, 0, 0), -EINVAL);
	ck_assert_int_eq(apn_dma_post(&ep, APN_DMA_GET, &oa, 0, &ia, 8190, 8, 0), -EINVAL);
	ck_assert_int_eq(apn_dma_post(&ep, APN_DMA_GET, &oa, 0, &ia, 0xffffffffu, 2, 0), -EINVAL);
	ck_assert_int_eq(apn_dma_post(&ep, APN_DMA_PUT, &oa_other, 0, &ia, 0, 8, 0), -EINVAL);
	ck_assert_int_eq(apn_dma_post(&ep, APN_DMA_PUT, &oa, 0, &ia_other, 0, 8, 0), -EINVAL);
	ck_assert_int_eq(apn_dma_post(&ep, APN_DMA_PUT, &oa_event, 0, &ia, 0, 8, 0), -EINVAL);
	ck_assert_int_eq(apn_dma_post(&ep, APN_DMA_PUT, &oa, 0, &ia_event, 0, 8, 0), -EINVAL);
	ck_assert_uint_eq(apn_dma_outstanding(&ep), 0);   /* none of them went in */
	ck_assert_int_eq(apn_dma_doorbell(&ep), 0);

	/* an endpoint without DMA queues */
	setup(0, 0);
	ck_assert_int_eq(apn_dma_post(&ep, APN_DMA_PUT, &oa, 0, &ia, 0, 8, 0), -EOPNOTSUPP);
	ck_assert_int_eq(apn_dma_put(&ep, &oa, 0, &ia, 0, 8, 0), -EOPNOTSUPP);
	ck_assert_int_eq(apn_dma_doorbell(&ep), -EOPNOTSUPP);
	ck_assert_int_eq(apn_cq_poll(&ep, &ev, 1), -EOPNOTSUPP);
	ck_assert_int_eq(apn_cq_pending(&ep), 0);
	ck_assert_uint_eq(apn_dma_outstanding(&ep), 0);
	ck_assert_uint_eq(up_reg(APN_UREG_RQ_TAIL), SENTINEL);
}
END_TEST

/* Completions wake apn_endpoint_wait() as events do. */
START_TEST(dma_wait)
{
	setup(4, 4);
	ck_assert_int_eq(apn_endpoint_wait(&ep, 0), 0);
	dev_complete(APN_EV_GET_DONE, 0, 9, 1);
	ck_assert_int_eq(apn_endpoint_wait(&ep, 0), 1);
	ck_assert_int_eq(apn_endpoint_wait(&ep, -1), 1);
	dev_event(APN_EV_EVENT, 0, 0);
	ck_assert_int_eq(apn_endpoint_wait(&ep, 0), 2);
	ck_assert_int_eq(apn_evq_pending(&ep), 1);        /* counted apart */
	ck_assert_int_eq(apn_cq_pending(&ep), 1);
}
END_TEST

START_TEST(read_landing)
{
	struct apn_in_aperture ia_other = ia;

	setup(0, 0);
	ia_other.ep = &other_ep;
	ck_assert_int_eq(apn_endpoint_set_read_landing(&ep, &ia), 0);
	ck_assert_uint_eq(up_reg(APN_UREG_READ_LANDING), APN_READ_LANDING_VALID | 12);
	ck_assert_int_eq(apn_endpoint_set_read_landing(&ep, NULL), 0);
	ck_assert_uint_eq(up_reg(APN_UREG_READ_LANDING), 0);
	up_set(APN_UREG_READ_LANDING, SENTINEL);
	ck_assert_int_eq(apn_endpoint_set_read_landing(&ep, &ia_other), -EINVAL);
	ck_assert_int_eq(apn_endpoint_set_read_landing(&ep, &ia_event), -EINVAL);
	ck_assert_uint_eq(up_reg(APN_UREG_READ_LANDING), SENTINEL);
}
END_TEST

/* Loads on plain memory: only the argument checks can be seen. */
START_TEST(read_params)
{
	setup(0, 0);
	ck_assert_int_eq(apn_out_aperture_read(&oa, 0, 8), 0);
	ck_assert_int_eq(apn_out_aperture_read(&oa, 4088, 8), 0);
	ck_assert_int_eq(apn_out_aperture_read(&oa, 4095, 1), 0);
	ck_assert_int_eq(apn_out_aperture_read(&oa, 6, 2), 0);
	ck_assert_int_eq(apn_out_aperture_read(&oa, 0, 3), -EINVAL);
	ck_assert_int_eq(apn_out_aperture_read(&oa, 0, 16), -EINVAL);
	ck_assert_int_eq(apn_out_aperture_read(&oa, 0, 0), -EINVAL);
	ck_assert_int_eq(apn_out_aperture_read(&oa, 4, 8), -EINVAL);
	ck_assert_int_eq(apn_out_aperture_read(&oa, 4096, 8), -EINVAL);
	ck_assert_int_eq(apn_out_aperture_read(&oa, 4096, 1), -EINVAL);
	ck_assert_int_eq(apn_out_aperture_read(&oa_event, 0, 8), -EINVAL);
}
END_TEST

START_TEST(event_store)
{
	uint64_t v;

	setup(0, 0);
	memset(remote_mem, 0, sizeof(remote_mem));
	ck_assert_int_eq(apn_out_aperture_event(&oa_event, 16, 0x0102030405060708ull), 0);
	memcpy(&v, remote_mem + 16, 8);
	ck_assert_uint_eq(le64toh(v), 0x0102030405060708ull);
	ck_assert_uint_eq(remote_mem[15], 0);
	ck_assert_uint_eq(remote_mem[24], 0);
	ck_assert_int_eq(apn_out_aperture_event(&oa_event, 4088, 1), 0);
	ck_assert_int_eq(apn_out_aperture_event(&oa_event, 4, 1), -EINVAL);
	ck_assert_int_eq(apn_out_aperture_event(&oa_event, 4096, 1), -EINVAL);
	ck_assert_int_eq(apn_out_aperture_event(&oa, 0, 1), -EINVAL);    /* a data aperture */
}
END_TEST

/* ---- dial / listen ------------------------------------------------------------------------ */

static struct apn_event passed[8];
static int npassed;

static void on_other(void *arg, const struct apn_event *ev)
{
	ck_assert_ptr_eq(arg, &npassed);
	ck_assert_int_lt(npassed, 8);
	passed[npassed++] = *ev;
}

/* A connection message event from host:port offering in_index/nonce. */
static void dev_msg(uint8_t type, uint16_t host, uint16_t port, uint32_t in_index,
		    uint32_t nonce)
{
	dev_event(type, in_index, nonce | (uint64_t)host << 32 | (uint64_t)port << 48);
}

START_TEST(dial_accepted)
{
	struct apn_msg_info peer;

	setup(0, 0);
	npassed = 0;
	dev_event(APN_EV_EVENT, 8, 99);                       /* not for dial: passed on */
	dev_msg(APN_EV_ACCEPT, 3, 5000, 40, 0xabc);           /* another host's: passed on */
	dev_msg(APN_EV_ACCEPT, 2, 5000, 41, 0xdef);
	memset(&peer, 0, sizeof(peer));
	ck_assert_int_eq(apn_endpoint_dial(&ep, 2, 5000, &ia, &oa, 2000, &peer, on_other,
					   &npassed), 0);
	/* CONNECT went out offering ia */
	ck_assert_uint_eq(up_reg(APN_UREG_MSG_TYPE), APN_MSG_CONNECT);
	ck_assert_uint_eq(up_reg(APN_UREG_MSG_DEST_HOST), 2);
	ck_assert_uint_eq(up_reg(APN_UREG_MSG_DEST_PORT), 5000);
	ck_assert_uint_eq(up_reg(APN_UREG_MSG_IN_INDEX), 12);
	ck_assert_uint_eq(up_reg(APN_UREG_MSG_NONCE), 0x1111);
	/* oa aimed at what the ACCEPT offered */
	ck_assert_uint_eq(up_reg(APN_UREG_OUT_INDEX), 5);
	ck_assert_uint_eq(up_reg(APN_UREG_OUT_DEST_HOST), 2);
	ck_assert_uint_eq(up_reg(APN_UREG_OUT_DEST_IN_INDEX), 41);
	ck_assert_uint_eq(up_reg(APN_UREG_OUT_NONCE), 0xdef);
	ck_assert_uint_eq(oa.dest_in_index, 41);
	ck_assert_uint_eq(peer.type, APN_MSG_ACCEPT);
	ck_assert_uint_eq(peer.src_host, 2);
	ck_assert_uint_eq(peer.in_index, 41);
	ck_assert_int_eq(npassed, 2);
	ck_assert_uint_eq(passed[0].type, APN_EV_EVENT);
	ck_assert_uint_eq(passed[1].type, APN_EV_ACCEPT);
}
END_TEST

START_TEST(dial_refused_and_timeout)
{
	struct apn_msg_info peer;

	setup(0, 0);
	dev_msg(APN_EV_ERROR_MSG, 2, 5000, 7, 0);             /* info = reason 7 */
	ck_assert_int_eq(apn_endpoint_dial(&ep, 2, 5000, &ia, &oa, 2000, &peer, NULL, NULL),
			 -ECONNREFUSED);
	ck_assert_uint_eq(peer.type, APN_MSG_ERROR);
	ck_assert_uint_eq(peer.info, 7);

	/* nobody answers: CONNECT, retries, then ETIMEDOUT (fd -1: poll just sleeps) */
	setup(0, 0);
	ck_assert_int_eq(apn_endpoint_dial(&ep, 2, 5000, &ia, &oa, 300, NULL, NULL, NULL),
			 -ETIMEDOUT);
	ck_assert_uint_eq(up_reg(APN_UREG_MSG_TYPE), APN_MSG_CONNECT);
	ck_assert_uint_eq(up_reg(APN_UREG_OUT_COMMIT), 0);    /* oa never aimed */
	ck_assert_int_eq(apn_endpoint_dial(&ep, 2, 5000, &ia, &oa, 0, NULL, NULL, NULL),
			 -ETIMEDOUT);

	/* the device refuses the CONNECT: its error, at once */
	setup(0, 0);
	up_set(APN_UREG_CMD_STATUS, APN_CMD_ENOROUTE);
	ck_assert_int_eq(apn_endpoint_dial(&ep, 9, 5000, &ia, &oa, 2000, NULL, NULL, NULL),
			 -EHOSTUNREACH);
}
END_TEST

START_TEST(listen_accepts)
{
	struct apn_msg_info peer;

	setup(0, 0);
	npassed = 0;
	dev_event(APN_EV_ALIVE, 0, 0);
	dev_msg(APN_EV_CONNECT, 1, 49152, 30, 0x777);
	ck_assert_int_eq(apn_endpoint_listen(&ep, &ia, &oa, 2000, &peer, on_other, &npassed), 0);
	ck_assert_int_eq(npassed, 1);
	ck_assert_uint_eq(passed[0].type, APN_EV_ALIVE);
	/* aimed at the connector, then ACCEPT to its port offering ia */
	ck_assert_uint_eq(up_reg(APN_UREG_OUT_DEST_HOST), 1);
	ck_assert_uint_eq(up_reg(APN_UREG_OUT_DEST_IN_INDEX), 30);
	ck_assert_uint_eq(up_reg(APN_UREG_OUT_NONCE), 0x777);
	ck_assert_uint_eq(up_reg(APN_UREG_MSG_TYPE), APN_MSG_ACCEPT);
	ck_assert_uint_eq(up_reg(APN_UREG_MSG_DEST_HOST), 1);
	ck_assert_uint_eq(up_reg(APN_UREG_MSG_DEST_PORT), 49152);
	ck_assert_uint_eq(up_reg(APN_UREG_MSG_IN_INDEX), 12);
	ck_assert_uint_eq(peer.src_port, 49152);
	ck_assert_uint_eq(peer.in_index, 30);

	setup(0, 0);
	ck_assert_int_eq(apn_endpoint_listen(&ep, &ia, &oa, 100, &peer, NULL, NULL), -ETIMEDOUT);
}
END_TEST

/* ---- orderly close ------------------------------------------------------------------------ */

START_TEST(out_close_command)
{
	setup(0, 0);
	ep.flags = 0;                                          /* any trust level */
	ck_assert_int_eq(apn_out_aperture_close(&oa), 0);
	/* one store: the aperture's index into the command register */
	ck_assert_uint_eq(up_reg(APN_UREG_OUT_CLOSE), 5);
	ck_assert_uint_eq(up_reg(APN_UREG_OUT_INDEX), 0);
	ck_assert_uint_eq(up_reg(APN_UREG_FENCE), 0);
	up_set(APN_UREG_CMD_STATUS, APN_CMD_ENOENT);
	ck_assert_int_eq(apn_out_aperture_close(&oa), -ENOENT);
	up_set(APN_UREG_CMD_STATUS, APN_CMD_ENOROUTE);
	ck_assert_int_eq(apn_out_aperture_close(&oa), -EHOSTUNREACH);
	up_set(APN_UREG_CMD_STATUS, APN_CMD_EPERM);
	ck_assert_int_eq(apn_out_aperture_close(&oa), -EPERM);
}
END_TEST

/* ---- kernel connection management (untrusted endpoints) ----------------------------------- */

/* setup(), then an untrusted endpoint whose file is fake_dev's. Returns the fd. */
static int setup_untrusted(void)
{
	struct apn_endpoint_create c;
	int fd;

	setup(0, 0);
	fd = open("/fake/apertnic0", O_RDWR);
	ck_assert_int_ge(fd, 0);
	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(ioctl(fd, APN_IOC_CREATE_ENDPOINT, &c), 0);
	ep.fd = fd;
	ep.flags = 0;
	return fd;
}

START_TEST(kernel_dial_accepted)
{
	struct apn_conn_connect last;
	struct apn_msg_info peer;
	int fd = setup_untrusted();

	npassed = 0;
	/* the device's own ACCEPT is not the kernel's word that oa is aimed */
	dev_msg(APN_EV_ACCEPT, 2, 5000, 40, 0xabc);
	dev_event_flags(APN_EV_ACCEPT, APN_EV_F_POSTED, 41, 0xdef | 2ull << 32 | 5000ull << 48);
	memset(&peer, 0, sizeof(peer));
	ck_assert_int_eq(apn_endpoint_dial(&ep, 2, 5000, &ia, &oa, 2000, &peer, on_other,
					   &npassed), 0);
	/* one APN_IOC_CONNECT naming ia and oa, nothing through the user page */
	ck_assert_uint_eq(fake_dev_kconnects(fd, &last), 1);
	ck_assert_uint_eq(last.dest_host, 2);
	ck_assert_uint_eq(last.dest_port, 5000);
	ck_assert_uint_eq(last.in_index, 12);
	ck_assert_uint_eq(last.out_index, 5);
	ck_assert_uint_eq(up_reg(APN_UREG_MSG_TYPE), 0);
	ck_assert_uint_eq(up_reg(APN_UREG_OUT_DEST_IN_INDEX), 0);
	/* oa records where the kernel aimed it */
	ck_assert_uint_eq(oa.dest_host, 2);
	ck_assert_uint_eq(oa.dest_in_index, 41);
	ck_assert_uint_eq(oa.nonce, 0xdef);
	ck_assert_uint_eq(peer.type, APN_MSG_ACCEPT);
	ck_assert_uint_eq(peer.in_index, 41);
	ck_assert_int_eq(npassed, 1);
	ck_assert_uint_eq(passed[0].flags, 0);
	close(fd);
}
END_TEST

START_TEST(kernel_dial_refused_retried)
{
	struct apn_msg_info peer;
	int fd = setup_untrusted();

	ck_assert_int_eq(apn_endpoint_dial(&ep, 2, 5000, &ia, NULL, 2000, NULL, NULL, NULL),
			 -EINVAL);                             /* the kernel needs oa */
	ck_assert_uint_eq(fake_dev_kconnects(fd, NULL), 0);
	dev_event_flags(APN_EV_ERROR_MSG, APN_EV_F_POSTED, 7, 2ull << 32 | 5000ull << 48);
	ck_assert_int_eq(apn_endpoint_dial(&ep, 2, 5000, &ia, &oa, 2000, &peer, NULL, NULL),
			 -ECONNREFUSED);
	ck_assert_uint_eq(peer.info, 7);
	/* nobody answers: the same CONNECT again after 0.2 s (and 0.4 s), then ETIMEDOUT */
	ck_assert_int_eq(apn_endpoint_dial(&ep, 2, 5000, &ia, &oa, 500, NULL, NULL, NULL),
			 -ETIMEDOUT);
	ck_assert_uint_ge(fake_dev_kconnects(fd, NULL), 1 + 2);
	close(fd);
}
END_TEST

START_TEST(kernel_listen_accepts)
{
	struct apn_msg_info peer;
	int fd = setup_untrusted();

	npassed = 0;
	ck_assert_int_eq(fake_dev_hold_connect(fd, 1, 49152, 30), 0);
	dev_msg(APN_EV_CONNECT, 1, 49152, 30, 0x777);          /* not posted: passed on */
	dev_event_flags(APN_EV_CONNECT, APN_EV_F_POSTED, 30, 0x777 | 1ull << 32 |
			49152ull << 48);
	ck_assert_int_eq(apn_endpoint_listen(&ep, &ia, &oa, 2000, &peer, on_other, &npassed), 0);
	ck_assert_int_eq(npassed, 1);
	/* the kernel aimed oa and answered: nothing through the user page */
	ck_assert_uint_eq(up_reg(APN_UREG_MSG_TYPE), 0);
	ck_assert_uint_eq(up_reg(APN_UREG_OUT_DEST_IN_INDEX), 0);
	ck_assert_uint_eq(oa.dest_host, 1);
	ck_assert_uint_eq(oa.dest_in_index, 30);
	ck_assert_uint_eq(oa.nonce, 0x777);
	ck_assert_uint_eq(peer.src_host, 1);
	ck_assert_uint_eq(peer.src_port, 49152);
	ck_assert_uint_eq(peer.in_index, 30);

	/* a posted CONNECT the kernel no longer holds (taken elsewhere): keep waiting */
	dev_event_flags(APN_EV_CONNECT, APN_EV_F_POSTED, 31, 1ull << 32 | 49153ull << 48);
	ck_assert_int_eq(apn_endpoint_listen(&ep, &ia, &oa, 200, &peer, NULL, NULL),
			 -ETIMEDOUT);
	ck_assert_int_eq(apn_endpoint_listen(&ep, &ia, NULL, 200, &peer, NULL, NULL), -EINVAL);
	close(fd);
}
END_TEST

START_TEST(kernel_calls)
{
	struct apn_msg_info req, peer;
	int fd = setup_untrusted(), tfd;
	struct apn_endpoint_create c;

	/* nothing held: EAGAIN; then the oldest, or the named peer's */
	ck_assert_int_eq(apn_endpoint_kaccept(&ep, NULL, &ia, &oa, &peer), -EAGAIN);
	ck_assert_int_eq(fake_dev_hold_connect(fd, 3, 100, 50), 0);
	ck_assert_int_eq(fake_dev_hold_connect(fd, 4, 200, 60), 0);
	memset(&req, 0, sizeof(req));
	req.src_host = 4;
	req.src_port = 200;
	req.in_index = 60;
	req.nonce = 0x99;
	ck_assert_int_eq(apn_endpoint_kaccept(&ep, &req, &ia, &oa, &peer), 0);
	ck_assert_uint_eq(peer.src_host, 4);
	ck_assert_uint_eq(oa.nonce, 0x99);
	ck_assert_int_eq(apn_endpoint_kaccept(&ep, NULL, &ia, &oa, &peer), 0);
	ck_assert_uint_eq(peer.src_host, 3);
	ck_assert_uint_eq(peer.src_port, 100);
	ck_assert_uint_eq(peer.in_index, 50);
	ck_assert_uint_eq(oa.dest_in_index, 50);
	ck_assert_uint_eq(oa.nonce, 0);                        /* the kernel did not say */
	ck_assert_int_eq(apn_endpoint_kconnect(&ep, 9, 7, &ia, &oa), 0);

	/* a trusted endpoint: EINVAL, it connects itself */
	tfd = open("/fake/apertnic0", O_RDWR);
	ck_assert_int_ge(tfd, 0);
	memset(&c, 0, sizeof(c));
	c.flags = APN_ENDPOINT_TRUSTED;
	ck_assert_int_eq(ioctl(tfd, APN_IOC_CREATE_ENDPOINT, &c), 0);
	ep.fd = tfd;
	ck_assert_int_eq(apn_endpoint_kconnect(&ep, 9, 7, &ia, &oa), -EINVAL);
	ck_assert_int_eq(apn_endpoint_kaccept(&ep, NULL, &ia, &oa, NULL), -EINVAL);
	close(tfd);
	close(fd);
}
END_TEST

static Suite *endpoint_suite(void)
{
	Suite *s = suite_create("endpoint");
	TCase *tc = tcase_create("dma");

	tcase_add_test(tc, dma_post_and_doorbell);
	tcase_add_test(tc, dma_rq_full);
	tcase_add_test(tc, dma_cq_charge);
	tcase_add_test(tc, dma_cq_poll);
	tcase_add_test(tc, dma_params);
	tcase_add_test(tc, dma_wait);
	suite_add_tcase(s, tc);

	tc = tcase_create("read-event");
	tcase_add_test(tc, read_landing);
	tcase_add_test(tc, read_params);
	tcase_add_test(tc, event_store);
	suite_add_tcase(s, tc);

	tc = tcase_create("connect");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, dial_accepted);
	tcase_add_test(tc, dial_refused_and_timeout);
	tcase_add_test(tc, listen_accepts);
	tcase_add_test(tc, out_close_command);
	tcase_add_test(tc, kernel_dial_accepted);
	tcase_add_test(tc, kernel_dial_refused_retried);
	tcase_add_test(tc, kernel_listen_accepts);
	tcase_add_test(tc, kernel_calls);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(endpoint_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
