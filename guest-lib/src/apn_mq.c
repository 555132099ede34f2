// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libapertnic: message queues over apertures (see "Message queues" in the header).
 * Pure memory logic: the rings are ordinary memory on the receiving side and
 * device memory (written with ordered volatile stores, never read) on the sending
 * side, so the unit tests run it on plain memory.
 */
#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "apertnic_hw.h"
#include <apertnic/apertnic.h>
#include "apn_io.h"
#include "apn_priv.h"

_Static_assert(sizeof(struct apn_mq_ctrl) == APN_MQ_CTRL_SIZE, "mq control block");
_Static_assert(sizeof(struct apn_mq_hdr) == APN_MQ_HDR_SIZE, "mq record header");
_Static_assert(offsetof(struct apn_mq_ctrl, rdptr) == 4 && offsetof(struct apn_mq_ctrl, fin) == 8,
	       "one 8-byte store publishes both pointers, fin follows them");

#define NO_INDEX 0xffffffffu

static int size_ok(size_t size)
{
	return apn__is_pow2(size) && size >= APN_MQ_MIN_SIZE && size <= APN_MQ_MAX_SIZE;
}

APN_EXPORT int apn_mq_init_mem(struct apn_mq *mq, void *local, size_t local_size,
			       void *remote, size_t remote_size, volatile uint32_t *fence_reg)
{
	if (!mq || !local || !remote || !size_ok(local_size) || !size_ok(remote_size) ||
	    ((uintptr_t)local | (uintptr_t)remote) & 7)
		return -EINVAL;
	memset(mq, 0, sizeof(*mq));
	mq->rx = local;
	mq->rx_cap = (uint32_t)local_size - APN_MQ_CTRL_SIZE;
	mq->tx = remote;
	mq->tx_cap = (uint32_t)remote_size - APN_MQ_CTRL_SIZE;
	mq->fence_reg = fence_reg;
	mq->out_index = NO_INDEX;
	mq->in_index = NO_INDEX;
	/* the peer's pointers start at 0: nothing written, nothing consumed */
	memset(local, 0, APN_MQ_CTRL_SIZE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return 0;
}

APN_EXPORT int apn_mq_init(struct apn_mq *mq, const struct apn_in_aperture *ia,
			   struct apn_out_aperture *oa)
{
	int r;

	if (!ia || !oa || !ia->mr || !oa->ptr)
		return -EINVAL;
	r = apn_mq_init_mem(mq, apn_in_aperture_ptr(ia), ia->size, oa->ptr, oa->size,
			    oa->fence_reg);
	if (r)
		return r;
	mq->out_index = oa->out_index;
	mq->in_index = ia->in_index;
	return 0;
}

/* ---- pointer arithmetic modulo 2 * cap ---------------------------------------------- */

static uint32_t ptr_add(uint32_t p, uint32_t n, uint32_t cap)
{
	/* p < 2 cap, n <= cap, 2 cap <= 2^31: no overflow */
	p += n;
	return p >= 2 * cap ? p - 2 * cap : p;
}

/* Bytes from b up to a (a "ahead of" b), modulo 2 cap. */
static uint32_t ptr_dist(uint32_t a, uint32_t b, uint32_t cap)
{
	return a >= b ? a - b : a + 2 * cap - b;
}

static uint32_t ptr_off(uint32_t p, uint32_t cap)
{
	return p >= cap ? p - cap : p;
}

static int ptr_ok(uint32_t p, uint32_t cap)
{
	return p < 2 * cap && !(p & 7);
}

static uint32_t rec_size(uint32_t len)
{
	return APN_MQ_HDR_SIZE + ((len + 7u) & ~7u);
}

/* The peer's words in our control block: an acquire load each (DMA'd by the NIC). */
static uint32_t ctrl_load(const struct apn_mq *mq, size_t off)
{
	return le32toh(__atomic_load_n((const uint32_t *)(mq->rx + off), __ATOMIC_ACQUIRE));
}

/* ---- sending ---------------------------------------------------------------------------- */

static void fence(const struct apn_mq *mq)
{
	if (mq->fence_reg)
		apn__fence(mq->fence_reg);
	else
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* One 8-byte store of both pointers into the peer's control block. */
static void publish(struct apn_mq *mq)
{
	uint32_t w[2] = { htole32(mq->tx_wr), htole32(mq->rx_rd) };

	/* the records before the pointer that reveals them */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	apn_io_write(mq->tx, APN_MQ_CTRL_SIZE, 0, w, sizeof(w));
	mq->tx_published = mq->tx_wr;
	mq->rx_published = mq->rx_rd;
}

static int tx_state(const struct apn_mq *mq)
{
	if (mq->error)
		return mq->error;
	if (mq->closed || ctrl_load(mq, offsetof(struct apn_mq_ctrl, fin)) == APN_MQ_FIN)
		return -EPIPE;
	return 0;
}

APN_EXPORT int apn_mq_write(struct apn_mq *mq, const void *buf, size_t len)
{
	uint32_t rd, used, rec, off, first;
	struct apn_mq_hdr h;
	unsigned char *ring = (unsigned char *)mq->tx + APN_MQ_CTRL_SIZE;
	int r = tx_state(mq);

	if (r)
		return r;
	if (len > apn_mq_max_msg(mq))
		return -EMSGSIZE;
	rd = ctrl_load(mq, offsetof(struct apn_mq_ctrl, rdptr));
	if (!ptr_ok(rd, mq->tx_cap) ||
	    (used = ptr_dist(mq->tx_wr, rd, mq->tx_cap)) > mq->tx_cap)
		return mq->error = -EBADMSG;
	rec = rec_size((uint32_t)len);
	if (mq->tx_cap - used < rec)
		return -EAGAIN;

	off = ptr_off(mq->tx_wr, mq->tx_cap);
	h.len = htole32((uint32_t)len);
	h.seq = htole32(mq->tx_seq);
	/* off and cap are multiples of 8: the header never wraps */
	apn_io_write(ring, mq->tx_cap, off, &h, sizeof(h));
	off += APN_MQ_HDR_SIZE;
	first = mq->tx_cap - off < len ? mq->tx_cap - off : (uint32_t)len;
	apn_io_write(ring, mq->tx_cap, off, buf, first);
	if (first < len)
		apn_io_write(ring, mq->tx_cap, 0, (const unsigned char *)buf + first, len - first);
	mq->tx_wr = ptr_add(mq->tx_wr, rec, mq->tx_cap);
	mq->tx_seq++;
	return 0;
}

APN_EXPORT int apn_mq_flush(struct apn_mq *mq)
{
	if (mq->error)
		return mq->error;
	if (mq->closed)
		return -EPIPE;
	publish(mq);
	fence(mq);
	return 0;
}

APN_EXPORT int apn_mq_send(struct apn_mq *mq, const void *buf, size_t len)
{
	int r = apn_mq_write(mq, buf, len);

	if (r)
		return r;
	publish(mq);
	fence(mq);
	return 0;
}

APN_EXPORT int apn_mq_close(struct apn_mq *mq)
{
	uint32_t fin = htole32(APN_MQ_FIN);

	if (mq->error)
		return mq->error;
	if (mq->closed)
		return 0;
	publish(mq);
	/* contiguous with the pointers: one segment, after them */
	apn_io_write(mq->tx, APN_MQ_CTRL_SIZE, offsetof(struct apn_mq_ctrl, fin), &fin, 4);
	fence(mq);
	mq->closed = 1;
	return 0;
}

/* ---- receiving -------------------------------------------------------------------------- */

/* Copies len bytes from ring offset off, wrapping at the end of the ring. */
static void ring_copy(const struct apn_mq *mq, uint32_t off, void *dst, uint32_t len)
{
	const unsigned char *ring = mq->rx + APN_MQ_CTRL_SIZE;
	uint32_t first = mq->rx_cap - off < len ? mq->rx_cap - off : len;

	memcpy(dst, ring + off, first);
	memcpy((unsigned char *)dst + first, ring, len - first);
}

APN_EXPORT int apn_mq_recv(struct apn_mq *mq, void *buf, size_t maxlen)
{
	uint32_t fin, wr, avail, off, len, rec;
	struct apn_mq_hdr h;

	if (mq->error)
		return mq->error;
	/* fin first: once it is set, the write pointer read after it is final */
	fin = ctrl_load(mq, offsetof(struct apn_mq_ctrl, fin));
	wr = ctrl_load(mq, offsetof(struct apn_mq_ctrl, wrptr));
	if (!ptr_ok(wr, mq->rx_cap) || (avail = ptr_dist(wr, mq->rx_rd, mq->rx_cap)) > mq->rx_cap)
		return mq->error = -EBADMSG;
	if (!avail)
		return fin == APN_MQ_FIN ? -EPIPE : -EAGAIN;
	off = ptr_off(mq->rx_rd, mq->rx_cap);
	ring_copy(mq, off, &h, sizeof(h));
	len = le32toh(h.len);
	/* a record the peer could not have sent, or one we were not told all of */
	if (len > mq->rx_cap / 2 - APN_MQ_HDR_SIZE || (rec = rec_size(len)) > avail ||
	    le32toh(h.seq) != mq->rx_seq)
		return mq->error = -EBADMSG;
	if (buf && maxlen < len)
		return -EMSGSIZE;
	if (buf)
		ring_copy(mq, off + APN_MQ_HDR_SIZE, buf, len);
	mq->rx_rd = ptr_add(mq->rx_rd, rec, mq->rx_cap);
	mq->rx_seq++;
	/* lazily: half a ring since the last publication (ours or piggybacked) */
	if (ptr_dist(mq->rx_rd, mq->rx_published, mq->rx_cap) >= mq->rx_cap / 2 && !mq->closed) {
		uint32_t rd = htole32(mq->rx_rd);

		/* our reads of the record before the store that frees its space */
		__atomic_thread_fence(__ATOMIC_RELEASE);
		apn_io_write(mq->tx, APN_MQ_CTRL_SIZE, offsetof(struct apn_mq_ctrl, rdptr), &rd, 4);
		mq->rx_published = mq->rx_rd;
		fence(mq);
	}
	return (int)len;
}

APN_EXPORT int apn_mq_handle_event(struct apn_mq *mq, const struct apn_event *ev)
{
	if (!ev)
		return 0;
	if (ev->type == APN_EV_TX_ERROR && mq->out_index != NO_INDEX &&
	    (uint32_t)ev->data == mq->out_index) {
		mq->error = -ECONNRESET;
		return -ECONNRESET;
	}
	if (ev->type == APN_EV_RX_DROP && mq->in_index != NO_INDEX &&
	    (uint32_t)ev->data == mq->in_index)
		return 1;
	return 0;
}
