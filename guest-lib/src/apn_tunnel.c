// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libapertnic: the kernel's IP traffic tunneled through this process (seed 002),
 * on top of APN_IOC_TUNNEL_* and the two rings the driver maps
 * (guest-driver/uapi/apertnic.h). The driver owns the to-user head and the
 * to-kernel tail, we own the other two; each side publishes its counter with a
 * release store after the slots it covers, and reads the other's with an acquire
 * load.
 */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>

#include "apertnic.h"        /* guest-driver/uapi: the tunnel ABI */
#include "apertnic_hw.h"
#include <apertnic/apertnic.h>
#include "apn_priv.h"

_Static_assert(APN_TUNNEL_F_WIRE == APN_TUN_F_WIRE, "wire flag");
_Static_assert(APN_DEVICE_CAP_TUNNEL == APN_INFO_CAP_TUNNEL, "tunnel capability bit");
_Static_assert(sizeof(struct apn_tun_ring) == 64 && sizeof(struct apn_tun_slot) == 8,
	       "tunnel ring layout");

#define TUN_ETH_HLEN 14

static struct apn_tun_ring *ring_of(void *map)
{
	return (struct apn_tun_ring *)map;
}

static struct apn_tun_slot *slot_of(const struct apn_tunnel *t, void *map, uint32_t counter)
{
	return (struct apn_tun_slot *)((char *)map + sizeof(struct apn_tun_ring) +
				       (size_t)(counter & (t->slots - 1)) * t->slot_bytes);
}

static uint32_t load_acquire(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void store_release(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static void unmap_rings(struct apn_tunnel *t)
{
	if (t->to_user)
		munmap(t->to_user, t->map_len);
	if (t->to_kernel)
		munmap(t->to_kernel, t->map_len);
	t->to_user = NULL;
	t->to_kernel = NULL;
}

static int in_range(uint32_t v, uint32_t min, uint32_t max)
{
	return !v || (v >= min && v <= max);
}

APN_EXPORT int apn_tunnel_attach(struct apn_tunnel *t, struct apn_endpoint *ep,
				 const struct apn_tunnel_attr *attr)
{
	static const struct apn_tunnel_attr defaults;
	struct apn_tunnel_attach req;
	struct apn_tunnel n;
	void *map;
	int r;

	if (!t || !ep)
		return -EINVAL;
	if (!attr)
		attr = &defaults;
	if (!in_range(attr->slots, APN_TUN_SLOTS_MIN, APN_TUN_SLOTS_MAX) ||
	    (attr->slots && !apn__is_pow2(attr->slots)) ||
	    !in_range(attr->watchdog_ms, APN_TUN_WATCHDOG_MIN_MS, APN_TUN_WATCHDOG_MAX_MS))
		return -EINVAL;
	memset(&req, 0, sizeof(req));
	req.slots = attr->slots;
	req.watchdog_ms = attr->watchdog_ms;
	r = apn__ioctl(ep->fd, APN_IOC_TUNNEL_ATTACH, &req);
	if (r)
		return r;

	memset(&n, 0, sizeof(n));
	n.fd = ep->fd;
	n.ep = ep;
	n.slots = req.slots;
	n.slot_bytes = req.slot_bytes;
	n.max_frame = req.slot_bytes - (uint32_t)sizeof(struct apn_tun_slot);
	n.watchdog_ms = req.watchdog_ms;
	n.map_len = sizeof(struct apn_tun_ring) + (size_t)req.slots * req.slot_bytes;
	map = mmap(NULL, n.map_len, PROT_READ | PROT_WRITE, MAP_SHARED, n.fd,
		   (off_t)APN_MMAP_TUN_TO_USER);
	if (map == MAP_FAILED)
		goto fail;
	n.to_user = map;
	map = mmap(NULL, n.map_len, PROT_READ | PROT_WRITE, MAP_SHARED, n.fd,
		   (off_t)APN_MMAP_TUN_TO_KERNEL);
	if (map == MAP_FAILED)
		goto fail;
	n.to_kernel = map;
	/* Where the driver's counters are now: our start. */
	n.rx_tail = load_acquire(&ring_of(n.to_user)->tail);
	n.tx_head = load_acquire(&ring_of(n.to_kernel)->head);
	*t = n;
	return 0;

fail:
	r = apn__neg_errno();
	unmap_rings(&n);
	apn__ioctl(ep->fd, APN_IOC_TUNNEL_DETACH, NULL);
	return r;
}

APN_EXPORT int apn_tunnel_kick(struct apn_tunnel *t)
{
	if (!t || !t->to_user)
		return -EINVAL;
	return apn__ioctl(t->fd, APN_IOC_TUNNEL_KICK, NULL);
}

APN_EXPORT int apn_tunnel_detach(struct apn_tunnel *t)
{
	int r;

	if (!t || !t->to_user)
		return -EINVAL;
	/* What we sent but did not kick yet is the driver's to take first. */
	r = apn__ioctl(t->fd, APN_IOC_TUNNEL_KICK, NULL);
	if (!r)
		r = apn__ioctl(t->fd, APN_IOC_TUNNEL_DETACH, NULL);
	unmap_rings(t);
	return r;
}

APN_EXPORT int apn_tunnel_pending(const struct apn_tunnel *t)
{
	uint32_t head;

	if (!t || !t->to_user)
		return -EINVAL;
	head = load_acquire(&ring_of(t->to_user)->head);
	if (head - t->rx_tail > t->slots)
		return -EIO;
	return (int)(head - t->rx_tail);
}

APN_EXPORT int apn_tunnel_peek(struct apn_tunnel *t, const void **frame)
{
	const struct apn_tun_slot *s;
	int n = apn_tunnel_pending(t);

	if (n <= 0)
		return n ? n : -EAGAIN;
	s = slot_of(t, t->to_user, t->rx_tail);
	if (s->len < TUN_ETH_HLEN || s->len > t->max_frame)
		return -EIO;
	if (frame)
		*frame = s + 1;
	return s->len;
}

APN_EXPORT int apn_tunnel_consume(struct apn_tunnel *t)
{
	int n = apn_tunnel_pending(t);

	if (n <= 0)
		return n ? n : -EAGAIN;
	t->rx_tail++;
	/* Our reads of the slot are done before the driver may refill it. */
	store_release(&ring_of(t->to_user)->tail, t->rx_tail);
	return 0;
}

APN_EXPORT int apn_tunnel_recv(struct apn_tunnel *t, void *buf, size_t len)
{
	const void *frame;
	int n = apn_tunnel_peek(t, &frame);

	if (n < 0)
		return n;
	if ((size_t)n > len)
		return -EMSGSIZE;
	memcpy(buf, frame, (size_t)n);
	apn_tunnel_consume(t);
	return n;
}

APN_EXPORT int apn_tunnel_send(struct apn_tunnel *t, const void *frame, size_t len,
			       unsigned flags)
{
	struct apn_tun_slot *s;
	uint32_t tail;

	if (!t || !t->to_kernel || (!frame && len) || (flags & ~APN_TUNNEL_F_WIRE))
		return -EINVAL;
	if (len < TUN_ETH_HLEN || len > t->max_frame)
		return -EMSGSIZE;
	tail = load_acquire(&ring_of(t->to_kernel)->tail);
	if (t->tx_head - tail > t->slots)
		return -EIO;
	if (t->tx_head - tail == t->slots)
		return -EAGAIN;
	s = slot_of(t, t->to_kernel, t->tx_head);
	s->len = (uint16_t)len;
	s->flags = (uint16_t)flags;
	s->reserved = 0;
	memcpy(s + 1, frame, len);
	t->tx_head++;
	/* The slot is complete before the driver may look at it. */
	store_release(&ring_of(t->to_kernel)->head, t->tx_head);
	return 0;
}

APN_EXPORT int apn_tunnel_send_room(const struct apn_tunnel *t)
{
	uint32_t tail;

	if (!t || !t->to_kernel)
		return -EINVAL;
	tail = load_acquire(&ring_of(t->to_kernel)->tail);
	if (t->tx_head - tail > t->slots)
		return -EIO;
	return (int)(t->slots - (t->tx_head - tail));
}

APN_EXPORT int apn_tunnel_wait(struct apn_tunnel *t, int timeout_ms)
{
	struct pollfd p = { .fd = t ? t->fd : -1, .events = POLLIN };
	int r, n = apn_tunnel_pending(t);

	if (n)
		return n;
	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return apn__neg_errno();
	if (p.revents & (POLLERR | POLLHUP | POLLNVAL))
		return -ENODEV;
	return apn_tunnel_pending(t);
}
