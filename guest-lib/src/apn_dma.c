// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libapertnic: the DMA channel (request and completion queues, seeds 000/001),
 * remote reads and event frames. Loads and stores to mapped queues, the user page
 * and apertures only: no system call.
 */
#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "apertnic.h"        /* uapi */
#include "apertnic_hw.h"
#include <apertnic/apertnic.h>
#include "apn_priv.h"

_Static_assert(sizeof(struct apn_dma_req) == 32, "request size");

/* ---- completion queue ------------------------------------------------------------------- */

static const struct apn_queue_ctrl *ctrl_of(const void *base)
{
	return (const struct apn_queue_ctrl *)base;
}

static uint32_t cq_wrptr(const struct apn_queue *q)
{
	return le32toh(__atomic_load_n(&ctrl_of(q->base)->wrptr, __ATOMIC_ACQUIRE));
}

APN_EXPORT int apn_cq_pending(const struct apn_endpoint *ep)
{
	const struct apn_queue *q = &ep->dma.cq;
	uint32_t avail;

	if (!ep->dma.rq_size)
		return 0;
	avail = cq_wrptr(q) - q->rdptr;
	return avail > q->size ? -EIO : (int)avail;
}

APN_EXPORT int apn_cq_poll(struct apn_endpoint *ep, struct apn_event *evs, int max)
{
	struct apn_queue *q = &ep->dma.cq;
	const struct apn_event *ring;
	uint32_t avail, i, k;

	if (max < 0 || (max && !evs))
		return -EINVAL;
	if (!ep->dma.rq_size)
		return -EOPNOTSUPP;
	ring = (const struct apn_event *)((const char *)q->base + APN_QUEUE_DATA_OFFSET);
	avail = cq_wrptr(q) - q->rdptr;
	if (avail > q->size)
		return -EIO;
	k = (uint32_t)max < avail ? (uint32_t)max : avail;
	for (i = 0; i < k; i++) {
		const struct apn_event *src = &ring[(q->rdptr + i) & (q->size - 1)];

		evs[i].type = src->type;
		evs[i].flags = src->flags;
		evs[i].endpoint = le16toh(src->endpoint);
		evs[i].info = le32toh(src->info);
		evs[i].data = le64toh(src->data);
	}
	if (k) {
		q->rdptr += k;
		/* our reads of the entries before the store that frees their slots */
		__atomic_thread_fence(__ATOMIC_RELEASE);
		*q->rdptr_reg = htole32(q->rdptr);
	}
	return (int)k;
}

/* ---- request queue ---------------------------------------------------------------------- */

APN_EXPORT uint32_t apn_dma_outstanding(const struct apn_endpoint *ep)
{
	return ep->dma.rq_size ? ep->dma.rq_tail - ep->dma.cq.rdptr : 0;
}

/* Requests the device has retired, from its mirror in the control block. */
static uint32_t rq_head(const struct apn_dma *d)
{
	return le32toh(__atomic_load_n(&ctrl_of(d->rq)->rdptr, __ATOMIC_ACQUIRE));
}

APN_EXPORT int apn_dma_post(struct apn_endpoint *ep, int op, const struct apn_out_aperture *oa,
			    uint32_t remote_off, const struct apn_in_aperture *ia,
			    uint32_t local_off, uint32_t len, uint32_t cookie)
{
	struct apn_dma *d = &ep->dma;
	struct apn_dma_req *slot;

	if (!d->rq_size)
		return -EOPNOTSUPP;
	if ((op != APN_DMA_PUT && op != APN_DMA_GET) || !oa || !ia || len > APN_DMA_MAX_LEN ||
	    oa->ep != ep || ia->ep != ep || (oa->flags & APN_OA_F_EVENT) || !ia->mr ||
	    remote_off > oa->size || len > oa->size - remote_off ||
	    local_off > ia->size || len > ia->size - local_off)
		return -EINVAL;
	/* a slot is ours again only once the device retired it */
	if (d->rq_tail - d->rq_head >= d->rq_size) {
		d->rq_head = rq_head(d);
		if (d->rq_tail - d->rq_head > d->rq_size)
			return -EIO;
		if (d->rq_tail - d->rq_head == d->rq_size)
			return -EAGAIN;
	}
	/* each outstanding request holds a completion slot until it is reaped */
	if (d->rq_tail - d->cq.rdptr >= d->cq.size)
		return -EAGAIN;
	slot = (struct apn_dma_req *)((char *)d->rq + APN_QUEUE_DATA_OFFSET) +
	       (d->rq_tail & (d->rq_size - 1));
	slot->opcode = (uint8_t)op;
	slot->flags = 0;
	slot->reserved = 0;
	slot->out_index = htole32(oa->out_index);
	slot->local_in_index = htole32(ia->in_index);
	slot->len = htole32(len);
	slot->remote_offset = htole32(remote_off);
	slot->local_offset = htole32(local_off);
	slot->cookie = htole32(cookie);
	slot->reserved2 = 0;
	d->rq_tail++;
	return 0;
}

APN_EXPORT int apn_dma_doorbell(struct apn_endpoint *ep)
{
	struct apn_dma *d = &ep->dma;
	uint32_t n;

	if (!d->rq_size)
		return -EOPNOTSUPP;
	n = d->rq_tail - d->rq_rung;
	if (!n)
		return 0;
	/* the requests in memory before the tail that hands them over */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	*d->tail_reg = htole32(d->rq_tail);
	d->rq_rung = d->rq_tail;
	return (int)n;
}

APN_EXPORT int apn_dma_put(struct apn_endpoint *ep, const struct apn_out_aperture *oa,
			   uint32_t remote_off, const struct apn_in_aperture *ia,
			   uint32_t local_off, uint32_t len, uint32_t cookie)
{
	int r = apn_dma_post(ep, APN_DMA_PUT, oa, remote_off, ia, local_off, len, cookie);

	if (!r)
		apn_dma_doorbell(ep);
	return r;
}

APN_EXPORT int apn_dma_get(struct apn_endpoint *ep, const struct apn_out_aperture *oa,
			   uint32_t remote_off, const struct apn_in_aperture *ia,
			   uint32_t local_off, uint32_t len, uint32_t cookie)
{
	int r = apn_dma_post(ep, APN_DMA_GET, oa, remote_off, ia, local_off, len, cookie);

	if (!r)
		apn_dma_doorbell(ep);
	return r;
}

/* ---- remote reads and event frames ------------------------------------------------------ */

APN_EXPORT int apn_endpoint_set_read_landing(struct apn_endpoint *ep,
					     const struct apn_in_aperture *ia)
{
	uint32_t v = 0;

	if (ia) {
		if (ia->ep != ep || !ia->mr || ia->in_index > APN_READ_LANDING_INDEX)
			return -EINVAL;
		v = APN_READ_LANDING_VALID | ia->in_index;
	}
	apn__ureg_write(ep->user_page, APN_UREG_READ_LANDING, v);
	return 0;
}

APN_EXPORT int apn_out_aperture_read(struct apn_out_aperture *oa, size_t off, size_t size)
{
	const volatile char *p;

	if ((oa->flags & APN_OA_F_EVENT) || (size != 1 && size != 2 && size != 4 && size != 8) ||
	    (off & (size - 1)) || off > oa->size || size > oa->size - off)
		return -EINVAL;
	p = (const volatile char *)oa->ptr + off;
	/* the load is the request; what it returns means nothing */
	switch (size) {
	case 1:
		(void)*(const volatile uint8_t *)p;
		break;
	case 2:
		(void)*(const volatile uint16_t *)p;
		break;
	case 4:
		(void)*(const volatile uint32_t *)p;
		break;
	default:
		(void)*(const volatile uint64_t *)p;
		break;
	}
	return 0;
}

APN_EXPORT int apn_out_aperture_event(struct apn_out_aperture *oa, size_t off, uint64_t value)
{
	if (!(oa->flags & APN_OA_F_EVENT) || (off & 7) || off >= oa->size)
		return -EINVAL;
	*(volatile uint64_t *)((char *)oa->ptr + off) = htole64(value);
	return 0;
}
