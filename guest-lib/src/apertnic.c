// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libapertnic: devices, endpoints, memory registrations and apertures on top of
 * the /dev/apertnicN ioctl ABI (guest-driver/uapi/apertnic.h); event queues and
 * trusted-endpoint commands on top of the mapped queues and user page
 * (hw/net/apertnic/apertnic_hw.h).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "apertnic.h"        /* guest-driver/uapi: the kernel ABI */
#include "apertnic_hw.h"     /* hw/net/apertnic: first, see the public header */
#include <apertnic/apertnic.h>
#include "apn_io.h"
#include "apn_priv.h"

_Static_assert(APN_CNT__COUNT <= APN_IOC_COUNTERS_MAX, "counters fit the ioctl");
_Static_assert(APN_UREG_FENCE + 4 <= APN_USER_PAGE_SIZE, "fence on the user page");
_Static_assert(APN_QUEUE_DATA_OFFSET == sizeof(struct apn_queue_ctrl), "queue layout");
_Static_assert(APN_ENDPOINT_F_TRUSTED == APN_ENDPOINT_TRUSTED, "trusted flag");
_Static_assert(sizeof(struct apn_var_hdr) == 8, "record header");
_Static_assert(APN_DEVICE_CAP_DMA == APN_INFO_CAP_DMA && APN_DEVICE_CAP_READ == APN_INFO_CAP_READ &&
	       APN_DEVICE_CAP_EVENT_AP == APN_INFO_CAP_EVENT_AP &&
	       APN_DEVICE_CAP_KERNEL_CM == APN_INFO_CAP_KERNEL_CM, "capability bits");
_Static_assert(APN_DMA_PUT == APN_REQ_PUT && APN_DMA_GET == APN_REQ_GET, "DMA opcodes");

/* ---- Library ---------------------------------------------------------------------- */

APN_EXPORT const char *apn_version(void)
{
	return APN_VERSION_STRING;
}

#define APN_COUNTER_NAME(id, name) [APN_CNT_##id] = name,
static const char *const counter_names[APN_CNT__COUNT] = {
	APN_COUNTER_LIST(APN_COUNTER_NAME)
};
#undef APN_COUNTER_NAME

APN_EXPORT unsigned apn_counter_count(void)
{
	return APN_CNT__COUNT;
}

APN_EXPORT const char *apn_counter_name(unsigned id)
{
	return id < APN_CNT__COUNT ? counter_names[id] : NULL;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

APN_EXPORT int apn_mac_parse(const char *s, uint8_t mac[6])
{
	uint8_t m[6];
	int i;

	if (!s)
		return -EINVAL;
	for (i = 0; i < 6; i++) {
		int hi = hexval(s[0]), lo = hi < 0 ? -1 : hexval(s[1]);

		if (lo < 0)
			return -EINVAL;
		m[i] = (uint8_t)(hi << 4 | lo);
		s += 2;
		if (*s != (i < 5 ? ':' : '\0'))
			return -EINVAL;
		s++;
	}
	memcpy(mac, m, 6);
	return 0;
}

APN_EXPORT char *apn_mac_format(const uint8_t mac[6], char buf[18])
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x",
		 mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
	return buf;
}

APN_EXPORT int apn_ipv4_parse(const char *s, uint32_t *ip)
{
	uint32_t v = 0;
	int i;

	if (!s)
		return -EINVAL;
	for (i = 0; i < 4; i++) {
		unsigned n = 0, digits = 0;

		while (*s >= '0' && *s <= '9' && digits < 4) {
			n = n * 10 + (unsigned)(*s++ - '0');
			digits++;
		}
		/* 1-3 digits, <= 255, no leading zero ("010" could mean octal elsewhere) */
		if (!digits || digits > 3 || n > 255 || (digits > 1 && s[-(int)digits] == '0'))
			return -EINVAL;
		v = v << 8 | n;
		if (*s != (i < 3 ? '.' : '\0'))
			return -EINVAL;
		s++;
	}
	*ip = v;
	return 0;
}

APN_EXPORT char *apn_ipv4_format(uint32_t ip, char buf[16])
{
	snprintf(buf, 16, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
	return buf;
}

/* ---- Device ----------------------------------------------------------------------- */

static int open_dev(const char *path)
{
	int fd;

	do
		fd = open(path, O_RDWR | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	return fd < 0 ? apn__neg_errno() : fd;
}

APN_EXPORT int apn_device_open(struct apn_device *dev, const char *path)
{
	struct apn_info info;
	size_t n;
	int fd, r;

	if (!path)
		path = APN_DEFAULT_DEVICE;
	n = strlen(path);
	if (n >= sizeof(dev->path))
		return -ENAMETOOLONG;
	fd = open_dev(path);
	if (fd < 0)
		return fd;
	memset(&info, 0, sizeof(info));
	r = apn__ioctl(fd, APN_IOC_GET_INFO, &info);
	if (!r && info.abi_version != APN_ABI_VERSION)
		r = -EPROTONOSUPPORT;
	if (r) {
		close(fd);
		return r;
	}
	dev->fd = fd;
	memcpy(dev->path, path, n + 1);
	return 0;
}

APN_EXPORT int apn_device_close(struct apn_device *dev)
{
	int r = close(dev->fd) < 0 ? apn__neg_errno() : 0;

	dev->fd = -1;
	return r;
}

APN_EXPORT int apn_device_info(struct apn_device *dev, struct apn_device_info *info)
{
	struct apn_info ki;
	int r;

	memset(&ki, 0, sizeof(ki));
	r = apn__ioctl(dev->fd, APN_IOC_GET_INFO, &ki);
	if (r)
		return r;
	memset(info, 0, sizeof(*info));
	info->abi_version = ki.abi_version;
	info->spec_version = ki.spec_version;
	memcpy(info->mac, ki.mac, 6);
	info->host_id = ki.host_id;
	info->mtu = ki.mtu;
	info->num_out = ki.num_out;
	info->out_slot_size = ki.out_slot_size;
	info->max_in = ki.max_in;
	info->num_endpoints = ki.num_endpoints;
	info->ip = ki.ip;
	info->caps = ki.caps;
	return 0;
}

APN_EXPORT int apn_device_counters(struct apn_device *dev, uint64_t *values, unsigned max)
{
	struct apn_counters c;
	unsigned n;
	int r;

	memset(&c, 0, sizeof(c));
	r = apn__ioctl(dev->fd, APN_IOC_GET_COUNTERS, &c);
	if (r)
		return r;
	n = c.count < APN_IOC_COUNTERS_MAX ? c.count : APN_IOC_COUNTERS_MAX;
	if (n > max)
		n = max;
	memcpy(values, c.value, n * sizeof(values[0]));
	return (int)n;
}

APN_EXPORT int apn_device_set_host_id(struct apn_device *dev, uint16_t host_id, uint32_t ip)
{
	struct apn_host_id h;

	memset(&h, 0, sizeof(h));
	h.host_id = host_id;
	h.ip = ip;
	return apn__ioctl(dev->fd, APN_IOC_SET_HOST_ID, &h);
}

APN_EXPORT int apn_device_set_route(struct apn_device *dev, uint16_t host,
				    const uint8_t mac[6], uint32_t ip)
{
	struct apn_route rt;

	memset(&rt, 0, sizeof(rt));
	rt.host = host;
	if (mac) {
		memcpy(rt.mac, mac, 6);
		rt.ip = ip;
	} else {
		rt.flags = APN_ROUTE_CLEAR;
	}
	return apn__ioctl(dev->fd, APN_IOC_SET_ROUTE, &rt);
}

/* ---- User page -------------------------------------------------------------------- */

/*
 * Writes `val` to the command register and reads back how it went. The read
 * cannot pass the write: both go to the same device, uncached, in order.
 */
static int ureg_command_val(void *page, unsigned cmd_reg, uint32_t val)
{
	uint32_t st;

	apn__ureg_write(page, cmd_reg, val);
	st = apn__ureg_read(page, APN_UREG_CMD_STATUS);
	switch (st) {
	case APN_CMD_OK:
		return 0;
	case APN_CMD_EPERM:
		return -EPERM;
	case APN_CMD_ENOENT:
		return -ENOENT;
	case APN_CMD_EINVAL:
		return -EINVAL;
	case APN_CMD_ENOROUTE:
		return -EHOSTUNREACH;
	case APN_CMD_EDISABLED:
		return -ENETDOWN;
	default:                 /* APN_CMD_EIO, or a status this library does not know */
		return -EIO;
	}
}

/* A command whose register value is ignored. */
static int ureg_command(void *page, unsigned cmd_reg)
{
	return ureg_command_val(page, cmd_reg, 1);
}

/* ---- Endpoint --------------------------------------------------------------------- */

static int attr_size_ok(uint32_t v, uint32_t min, uint32_t max)
{
	return !v || (apn__is_pow2(v) && v >= min && v <= max);
}

static size_t page_round(size_t n)
{
	long pg = sysconf(_SC_PAGESIZE);

	if (pg <= 0)
		pg = APN_PAGE_SIZE;
	return (n + (size_t)pg - 1) & ~((size_t)pg - 1);
}

static int map_queue(struct apn_queue *q, int fd, off_t off, size_t bytes, uint32_t size,
		     volatile uint32_t *rdptr_reg)
{
	const struct apn_queue_ctrl *ctrl;
	void *p;

	q->map_len = page_round(bytes);
	/* The device writes, we only read: a read-only mapping keeps strays out. */
	p = mmap(NULL, q->map_len, PROT_READ, MAP_SHARED, fd, off);
	if (p == MAP_FAILED)
		return apn__neg_errno();
	ctrl = p;
	q->base = p;
	q->size = size;
	q->rdptr_reg = rdptr_reg;
	/* The driver started the device's read pointer where it wants us to begin. */
	q->rdptr = le32toh(*rdptr_reg);
	q->overflows_seen = le32toh(__atomic_load_n(&ctrl->overflows, __ATOMIC_ACQUIRE));
	return 0;
}

static void unmap_queue(struct apn_queue *q)
{
	if (q->base)
		munmap((void *)q->base, q->map_len);
	q->base = NULL;
}

/*
 * The DMA channel: the request queue (we write it), the completion queue (we read
 * it). Every pointer starts where the device says (0 after the driver set it up).
 */
static int map_dma(struct apn_dma *d, int fd, void *page, uint32_t rq_size, uint32_t cq_size)
{
	void *p;
	int r;

	d->rq_map_len = page_round(APN_QUEUE_DATA_OFFSET + (size_t)rq_size *
				   sizeof(struct apn_dma_req));
	p = mmap(NULL, d->rq_map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		 (off_t)APN_MMAP_RQ);
	if (p == MAP_FAILED)
		return apn__neg_errno();
	r = map_queue(&d->cq, fd, (off_t)APN_MMAP_CQ,
		      APN_QUEUE_DATA_OFFSET + (size_t)cq_size * sizeof(struct apn_event), cq_size,
		      apn__ureg(page, APN_UREG_CQ_RDPTR));
	if (r) {
		munmap(p, d->rq_map_len);
		return r;
	}
	d->rq = p;
	d->rq_size = rq_size;
	d->tail_reg = apn__ureg(page, APN_UREG_RQ_TAIL);
	d->rq_tail = apn__ureg_read(page, APN_UREG_RQ_TAIL);
	d->rq_rung = d->rq_tail;
	d->rq_head = apn__ureg_read(page, APN_UREG_RQ_HEAD);
	return 0;
}

static void unmap_dma(struct apn_dma *d)
{
	if (d->rq)
		munmap(d->rq, d->rq_map_len);
	d->rq = NULL;
	d->rq_size = 0;
	unmap_queue(&d->cq);
}

APN_EXPORT int apn_endpoint_create(struct apn_endpoint *ep, struct apn_device *dev,
				   const struct apn_endpoint_attr *attr)
{
	static const struct apn_endpoint_attr defaults;
	struct apn_endpoint_create req;
	struct apn_info info;
	struct apn_endpoint e;
	void *page;
	int fd, r;

	if (!attr)
		attr = &defaults;
	if ((attr->flags & ~APN_ENDPOINT_F_TRUSTED) ||
	    !attr_size_ok(attr->evq_size, APN_EVQ_MIN_EVENTS, APN_EVQ_MAX_EVENTS) ||
	    !attr_size_ok(attr->varq_size, APN_VARQ_MIN_BYTES, APN_VARQ_MAX_BYTES) ||
	    !attr_size_ok(attr->rq_size, APN_RQ_MIN_REQS, APN_RQ_MAX_REQS) ||
	    !attr_size_ok(attr->cq_size, APN_CQ_MIN_EVENTS, APN_CQ_MAX_EVENTS) ||
	    (attr->cq_size && !attr->rq_size))
		return -EINVAL;
	fd = open_dev(dev->path);
	if (fd < 0)
		return fd;
	memset(&req, 0, sizeof(req));
	req.port = attr->port;
	req.flags = (uint16_t)attr->flags;
	req.evq_size = attr->evq_size;
	req.varq_size = attr->varq_size;
	req.rq_size = attr->rq_size;
	req.cq_size = attr->cq_size;
	r = apn__ioctl(fd, APN_IOC_CREATE_ENDPOINT, &req);
	if (r)
		goto fail;
	memset(&info, 0, sizeof(info));
	r = apn__ioctl(fd, APN_IOC_GET_INFO, &info);
	if (r)
		goto fail;
	memset(&e, 0, sizeof(e));
	page = mmap(NULL, APN_USER_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		    APN_MMAP_USER_PAGE);
	if (page == MAP_FAILED) {
		r = apn__neg_errno();
		goto fail;
	}
	e.user_page = page;
	r = map_queue(&e.evq, fd, (off_t)APN_MMAP_EVQ,
		      APN_QUEUE_DATA_OFFSET + (size_t)req.evq_size * sizeof(struct apn_event),
		      req.evq_size, apn__ureg(page, APN_UREG_EVQ_RDPTR));
	if (!r)
		r = map_queue(&e.varq, fd, (off_t)APN_MMAP_VARQ,
			      APN_QUEUE_DATA_OFFSET + (size_t)req.varq_size, req.varq_size,
			      apn__ureg(page, APN_UREG_VARQ_RDPTR));
	if (!r && req.rq_size)
		r = map_dma(&e.dma, fd, page, req.rq_size, req.cq_size);
	if (r) {
		unmap_queue(&e.evq);
		unmap_queue(&e.varq);
		munmap(page, APN_USER_PAGE_SIZE);
		goto fail;
	}
	e.fd = fd;
	e.index = req.endpoint;
	e.port = req.port;
	e.flags = req.flags & APN_ENDPOINT_TRUSTED ? APN_ENDPOINT_F_TRUSTED : 0;
	e.fence_reg = apn__ureg(page, APN_UREG_FENCE);
	e.arm_reg = apn__ureg(page, APN_UREG_ARM);
	e.out_slot_size = info.out_slot_size;
	e.dev = dev;
	*ep = e;
	return 0;
fail:
	close(fd);
	return r;
}

APN_EXPORT int apn_endpoint_destroy(struct apn_endpoint *ep)
{
	int r = 0;

	unmap_queue(&ep->evq);
	unmap_queue(&ep->varq);
	unmap_dma(&ep->dma);
	if (munmap(ep->user_page, APN_USER_PAGE_SIZE) < 0)
		r = apn__neg_errno();
	if (close(ep->fd) < 0 && !r)
		r = apn__neg_errno();
	ep->fd = -1;
	ep->user_page = NULL;
	ep->fence_reg = NULL;
	ep->arm_reg = NULL;
	return r;
}

/* ---- Event queue ------------------------------------------------------------------ */

static const struct apn_queue_ctrl *qctrl(const struct apn_queue *q)
{
	return (const struct apn_queue_ctrl *)q->base;
}

static const unsigned char *qdata(const struct apn_queue *q)
{
	return (const unsigned char *)q->base + APN_QUEUE_DATA_OFFSET;
}

/*
 * The device writes entries, then the wrptr mirror: an acquire load of the
 * mirror makes the entries below it visible.
 */
static uint32_t q_wrptr(const struct apn_queue *q)
{
	return le32toh(__atomic_load_n(&qctrl(q)->wrptr, __ATOMIC_ACQUIRE));
}

static uint32_t q_overflows(const struct apn_queue *q)
{
	return le32toh(__atomic_load_n(&qctrl(q)->overflows, __ATOMIC_ACQUIRE));
}

/*
 * Tells the device how far we have read. The release fence keeps our reads of
 * the entries before the store that lets the device overwrite them.
 */
static void q_publish(struct apn_queue *q)
{
	__atomic_thread_fence(__ATOMIC_RELEASE);
	*q->rdptr_reg = htole32(q->rdptr);
}

/* Reports new losses on q as one APN_EV_OVERFLOW event in *ev; returns 1 if it did. */
static int q_overflow_event(struct apn_queue *q, uint16_t endpoint, uint8_t flags,
			    struct apn_event *ev)
{
	uint32_t ov = q_overflows(q);

	if (ov == q->overflows_seen)
		return 0;
	memset(ev, 0, sizeof(*ev));
	ev->type = APN_EV_OVERFLOW;
	ev->flags = flags;
	ev->endpoint = endpoint;
	ev->info = ov;
	ev->data = ov - q->overflows_seen;
	q->overflows_seen = ov;
	return 1;
}

APN_EXPORT int apn_evq_poll(struct apn_endpoint *ep, struct apn_event *evs, int max)
{
	struct apn_queue *q = &ep->evq;
	const struct apn_event *ring = (const struct apn_event *)qdata(q);
	uint32_t avail, i, k, mask = q->size - 1;
	int n = 0;

	if (max < 0 || (max && !evs))
		return -EINVAL;
	if (n < max)
		n += q_overflow_event(q, (uint16_t)ep->index, 0, &evs[n]);
	if (n < max)
		n += q_overflow_event(&ep->varq, (uint16_t)ep->index, APN_EVF_OVERFLOW_VARQ,
				      &evs[n]);
	avail = q_wrptr(q) - q->rdptr;
	if (avail > q->size)
		return -EIO;
	k = (uint32_t)(max - n) < avail ? (uint32_t)(max - n) : avail;
	for (i = 0; i < k; i++) {
		const struct apn_event *src = &ring[(q->rdptr + i) & mask];
		struct apn_event *dst = &evs[n + (int)i];

		dst->type = src->type;
		dst->flags = src->flags;
		dst->endpoint = le16toh(src->endpoint);
		dst->info = le32toh(src->info);
		dst->data = le64toh(src->data);
	}
	if (k) {
		q->rdptr += k;
		q_publish(q);
	}
	return n + (int)k;
}

APN_EXPORT int apn_evq_pending(const struct apn_endpoint *ep)
{
	const struct apn_queue *q = &ep->evq;
	uint32_t avail = q_wrptr(q) - q->rdptr;

	if (avail > q->size)
		return -EIO;
	return (int)avail + (q_overflows(q) != q->overflows_seen) +
	       (q_overflows(&ep->varq) != ep->varq.overflows_seen);
}

APN_EXPORT uint32_t apn_evq_overflows(const struct apn_endpoint *ep)
{
	return q_overflows(&ep->evq);
}

APN_EXPORT uint32_t apn_varq_overflows(const struct apn_endpoint *ep)
{
	return q_overflows(&ep->varq);
}

APN_EXPORT int apn_endpoint_arm(struct apn_endpoint *ep)
{
	/* after the RDPTR store of the last poll: the device compares against it */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	*ep->arm_reg = htole32(1);
	return 0;
}

int64_t apn__now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Events and completions waiting: what apn_endpoint_wait() waits for. */
static int wait_pending(const struct apn_endpoint *ep)
{
	int ev = apn_evq_pending(ep), cq;

	if (ev < 0)
		return ev;
	cq = apn_cq_pending(ep);
	return cq < 0 ? cq : ev + cq;
}

APN_EXPORT int apn_endpoint_wait(struct apn_endpoint *ep, int timeout_ms)
{
	int64_t deadline = timeout_ms > 0 ? apn__now_ms() + timeout_ms : 0;
	struct pollfd pfd;
	int r, left = timeout_ms;

	for (;;) {
		r = wait_pending(ep);
		if (r)
			return r;
		apn_endpoint_arm(ep);
		/* An event may have landed between the look above and ARM: look again. */
		r = wait_pending(ep);
		if (r || !left)
			return r;
		pfd.fd = ep->fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		r = poll(&pfd, 1, left);
		if (r < 0)
			return apn__neg_errno();
		r = wait_pending(ep);
		if (r)
			return r;
		if (pfd.revents & POLLNVAL)
			return -EBADF;
		if (pfd.revents & (POLLERR | POLLHUP))
			return -ENODEV;
		/* Timed out, or woken for events another thread took: wait on. */
		if (timeout_ms > 0) {
			int64_t rest = deadline - apn__now_ms();

			if (rest <= 0)
				return 0;
			left = (int)rest;
		}
	}
}

/* ---- Variable-length queue -------------------------------------------------------- */

/* Copies len bytes from byte position pos of the queue's ring, wrapping at its end. */
static void q_copy_out(const struct apn_queue *q, uint32_t pos, void *dst, size_t len)
{
	size_t off = pos & (q->size - 1), first = q->size - off;

	if (first > len)
		first = len;
	memcpy(dst, qdata(q) + off, first);
	memcpy((unsigned char *)dst + first, qdata(q), len - first);
}

APN_EXPORT int apn_varq_recv(struct apn_endpoint *ep, const struct apn_event *ev, void *buf,
			     size_t len, uint32_t *src_ip, uint16_t *src_port)
{
	struct apn_queue *q = &ep->varq;
	uint32_t pos, n, rec, wr, avail;
	struct apn_var_hdr hdr;

	if (!ev || ev->type != APN_EV_VAR)
		return -EINVAL;
	pos = (uint32_t)ev->data;
	n = ev->info;
	/* header and payload, padded to 8: never more than the whole queue */
	if (n > q->size - sizeof(hdr))
		return -EIO;
	rec = (uint32_t)sizeof(hdr) + ((n + 7u) & ~7u);
	if (rec > q->size)
		return -EIO;
	/* the record must lie in [rdptr, wrptr): not consumed yet, already written */
	wr = q_wrptr(q);
	avail = wr - q->rdptr;
	if (avail > q->size)
		return -EIO;
	if (pos - q->rdptr > avail || rec > avail - (pos - q->rdptr))
		return -ENOENT;
	q_copy_out(q, pos, &hdr, sizeof(hdr));
	if (le32toh(hdr.len) != n)
		return -EIO;
	if (buf && len < n)
		return -EMSGSIZE;
	if (buf)
		q_copy_out(q, pos + (uint32_t)sizeof(hdr), buf, n);
	if (src_ip)
		*src_ip = le32toh(hdr.src_ip);
	if (src_port)
		*src_port = (uint16_t)(ev->data >> 32);
	q->rdptr = pos + rec;
	q_publish(q);
	return (int)n;
}

APN_EXPORT int apn_varq_read(struct apn_endpoint *ep, const struct apn_event *ev, void *buf,
			     size_t len)
{
	return apn_varq_recv(ep, ev, buf, len, NULL, NULL);
}

/* ---- Connection messages ---------------------------------------------------------- */

APN_EXPORT int apn_event_msg(const struct apn_event *ev, struct apn_msg_info *m)
{
	if (!ev || ev->type < APN_EV_CONNECT || ev->type > APN_EV_ERROR_MSG)
		return -EINVAL;
	memset(m, 0, sizeof(*m));
	m->type = (uint8_t)(ev->type - APN_EV_CONNECT + APN_MSG_CONNECT);
	m->nonce = (uint32_t)ev->data;
	m->src_host = (uint16_t)(ev->data >> 32);
	m->src_port = (uint16_t)(ev->data >> 48);
	m->info = ev->info;
	m->in_index = ev->type == APN_EV_ERROR_MSG ? 0 : ev->info;
	return 0;
}

APN_EXPORT int apn_endpoint_send_msg(struct apn_endpoint *ep, uint16_t dest_host,
				     uint16_t dest_port, uint8_t type, uint32_t in_index,
				     uint32_t nonce, uint32_t info)
{
	void *page = ep->user_page;

	if (type < APN_MSG_CONNECT || type > APN_MSG_ERROR)
		return -EINVAL;
	apn__ureg_write(page, APN_UREG_MSG_DEST_HOST, dest_host);
	apn__ureg_write(page, APN_UREG_MSG_DEST_PORT, dest_port);
	apn__ureg_write(page, APN_UREG_MSG_TYPE, type);
	apn__ureg_write(page, APN_UREG_MSG_IN_INDEX, in_index);
	apn__ureg_write(page, APN_UREG_MSG_NONCE, nonce);
	apn__ureg_write(page, APN_UREG_MSG_INFO, info);
	return ureg_command(page, APN_UREG_MSG_SEND);
}

APN_EXPORT int apn_endpoint_connect(struct apn_endpoint *ep, uint16_t dest_host,
				    uint16_t dest_port, const struct apn_in_aperture *ia)
{
	return apn_endpoint_send_msg(ep, dest_host, dest_port, APN_MSG_CONNECT, ia->in_index,
				     ia->nonce, 0);
}

APN_EXPORT int apn_endpoint_accept(struct apn_endpoint *ep, const struct apn_msg_info *req,
				   const struct apn_in_aperture *ia)
{
	return apn_endpoint_send_msg(ep, req->src_host, req->src_port, APN_MSG_ACCEPT,
				     ia->in_index, ia->nonce, 0);
}

/* ---- Registered memory ------------------------------------------------------------ */

APN_EXPORT int apn_mr_reg(struct apn_mr *mr, struct apn_endpoint *ep, void *addr, size_t len)
{
	struct apn_mr_reg req;
	long pg = sysconf(_SC_PAGESIZE);
	int r;

	if (pg <= 0)
		pg = APN_PAGE_SIZE;
	if (!addr || !len || ((uintptr_t)addr | len) & (size_t)(pg - 1))
		return -EINVAL;
	memset(&req, 0, sizeof(req));
	req.addr = (uintptr_t)addr;
	req.len = len;
	r = apn__ioctl(ep->fd, APN_IOC_REG_MR, &req);
	if (r)
		return r;
	mr->addr = addr;
	mr->len = len;
	mr->id = req.mr_id;
	mr->ep = ep;
	return 0;
}

APN_EXPORT int apn_mr_dereg(struct apn_mr *mr)
{
	struct apn_mr_dereg req;

	memset(&req, 0, sizeof(req));
	req.mr_id = mr->id;
	return apn__ioctl(mr->ep->fd, APN_IOC_DEREG_MR, &req);
}

/* ---- Incoming apertures ----------------------------------------------------------- */

APN_EXPORT int apn_in_aperture_create(struct apn_in_aperture *ia, struct apn_endpoint *ep,
				      struct apn_mr *mr, uint64_t offset, uint64_t size,
				      uint32_t flags, uint32_t nonce)
{
	struct apn_in_aperture_create req;
	int r;

	if (flags & ~APN_IA_F_NONCE)
		return -EINVAL;
	if (!apn__is_pow2(size) || size < 64 || size > UINT32_MAX)
		return -EINVAL;
	if (mr->ep != ep || offset > mr->len || size > mr->len - offset)
		return -EINVAL;
	memset(&req, 0, sizeof(req));
	req.mr_id = mr->id;
	req.mr_offset = offset;
	req.size = size;
	if (flags & APN_IA_F_NONCE) {
		req.flags |= APN_IN_APERTURE_NONCE_GIVEN;
		req.nonce = nonce;
	}
	r = apn__ioctl(ep->fd, APN_IOC_CREATE_IN_APERTURE, &req);
	if (r)
		return r;
	ia->in_index = req.in_index;
	ia->nonce = req.nonce;
	ia->offset = offset;
	ia->size = size;
	ia->narrow_start = 0;
	ia->narrow_len = 0;
	ia->mr = mr;
	ia->ep = ep;
	return 0;
}

APN_EXPORT int apn_in_aperture_create_event(struct apn_in_aperture *ia, struct apn_endpoint *ep,
					    uint64_t size, uint32_t flags, uint32_t nonce)
{
	struct apn_in_aperture_create req;
	int r;

	if (flags & ~APN_IA_F_NONCE)
		return -EINVAL;
	if (!apn__is_pow2(size) || size < 64 || size > (1ull << 31))
		return -EINVAL;
	memset(&req, 0, sizeof(req));
	req.flags = APN_IN_APERTURE_EVENT;
	req.size = size;
	if (flags & APN_IA_F_NONCE) {
		req.flags |= APN_IN_APERTURE_NONCE_GIVEN;
		req.nonce = nonce;
	}
	r = apn__ioctl(ep->fd, APN_IOC_CREATE_IN_APERTURE, &req);
	if (r)
		return r;
	memset(ia, 0, sizeof(*ia));
	ia->in_index = req.in_index;
	ia->nonce = req.nonce;
	ia->size = size;
	ia->ep = ep;
	return 0;
}

/* IN_COMMIT writes nonce and narrowing together: always pass all three. */
static int in_commit(struct apn_in_aperture *ia, uint32_t nonce, uint32_t start, uint32_t len)
{
	void *page = ia->ep->user_page;
	int r;

	apn__ureg_write(page, APN_UREG_IN_INDEX, ia->in_index);
	apn__ureg_write(page, APN_UREG_IN_NONCE, nonce);
	apn__ureg_write(page, APN_UREG_IN_NARROW_START, start);
	apn__ureg_write(page, APN_UREG_IN_NARROW_LEN, len);
	r = ureg_command(page, APN_UREG_IN_COMMIT);
	if (!r) {
		ia->nonce = nonce;
		ia->narrow_start = start;
		ia->narrow_len = len;
	}
	return r;
}

APN_EXPORT int apn_in_aperture_set_nonce(struct apn_in_aperture *ia, uint32_t nonce)
{
	return in_commit(ia, nonce, ia->narrow_start, ia->narrow_len);
}

APN_EXPORT int apn_in_aperture_narrow(struct apn_in_aperture *ia, uint32_t start, uint32_t len)
{
	if (len ? start > ia->size || len > ia->size - start : start != 0)
		return -EINVAL;
	return in_commit(ia, ia->nonce, start, len);
}

APN_EXPORT int apn_in_aperture_destroy(struct apn_in_aperture *ia)
{
	struct apn_in_aperture_destroy req;

	memset(&req, 0, sizeof(req));
	req.in_index = ia->in_index;
	return apn__ioctl(ia->ep->fd, APN_IOC_DESTROY_IN_APERTURE, &req);
}

/* ---- Outgoing apertures ----------------------------------------------------------- */

static int destroy_out_slot(int fd, uint32_t out_index)
{
	struct apn_out_aperture_destroy req;

	memset(&req, 0, sizeof(req));
	req.out_index = out_index;
	return apn__ioctl(fd, APN_IOC_DESTROY_OUT_APERTURE, &req);
}

static int out_create(struct apn_out_aperture *oa, struct apn_endpoint *ep, uint16_t dest_host,
		      uint32_t dest_in_index, uint32_t nonce, size_t size, uint32_t flags)
{
	struct apn_out_aperture_create req;
	void *p;
	int r;

	if (!apn__is_pow2(size) || size > UINT32_MAX ||
	    (ep->out_slot_size && size > ep->out_slot_size))
		return -EINVAL;
	memset(&req, 0, sizeof(req));
	req.dest_host = dest_host;
	req.dest_in_index = dest_in_index;
	req.nonce = nonce;
	req.size = (uint32_t)size;
	if (flags & APN_OA_F_EVENT)
		req.flags = APN_OUT_APERTURE_EVENT;
	r = apn__ioctl(ep->fd, APN_IOC_CREATE_OUT_APERTURE, &req);
	if (r)
		return r;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, ep->fd,
		 (off_t)req.mmap_offset);
	if (p == MAP_FAILED) {
		r = apn__neg_errno();
		destroy_out_slot(ep->fd, req.out_index);
		return r;
	}
	oa->ptr = p;
	oa->size = size;
	oa->fence_reg = ep->fence_reg;
	oa->out_index = req.out_index;
	oa->dest_host = dest_host;
	oa->dest_in_index = dest_in_index;
	oa->nonce = nonce;
	oa->mmap_offset = req.mmap_offset;
	oa->ep = ep;
	oa->flags = flags;
	return 0;
}

APN_EXPORT int apn_out_aperture_create(struct apn_out_aperture *oa, struct apn_endpoint *ep,
				       uint16_t dest_host, uint32_t dest_in_index,
				       uint32_t nonce, size_t size)
{
	return out_create(oa, ep, dest_host, dest_in_index, nonce, size, 0);
}

APN_EXPORT int apn_out_aperture_create_event(struct apn_out_aperture *oa,
					     struct apn_endpoint *ep, uint16_t dest_host,
					     uint32_t dest_in_index, uint32_t nonce, size_t size)
{
	return out_create(oa, ep, dest_host, dest_in_index, nonce, size, APN_OA_F_EVENT);
}

APN_EXPORT int apn_out_aperture_destroy(struct apn_out_aperture *oa)
{
	int r = 0, r2;

	if (oa->ptr && munmap(oa->ptr, oa->size) < 0)
		r = apn__neg_errno();
	oa->ptr = NULL;
	r2 = destroy_out_slot(oa->ep->fd, oa->out_index);
	return r ? r : r2;
}

APN_EXPORT int apn_out_aperture_connect(struct apn_out_aperture *oa, uint16_t dest_host,
				       uint32_t dest_in_index, uint32_t nonce)
{
	void *page = oa->ep->user_page;
	int r;

	/* what was gathered for the old destination goes there, not to the new one */
	apn__fence(oa->fence_reg);
	apn__ureg_write(page, APN_UREG_OUT_INDEX, oa->out_index);
	apn__ureg_write(page, APN_UREG_OUT_DEST_HOST, dest_host);
	apn__ureg_write(page, APN_UREG_OUT_DEST_IN_INDEX, dest_in_index);
	apn__ureg_write(page, APN_UREG_OUT_NONCE, nonce);
	r = ureg_command(page, APN_UREG_OUT_COMMIT);
	if (!r) {
		oa->dest_host = dest_host;
		oa->dest_in_index = dest_in_index;
		oa->nonce = nonce;
	}
	return r;
}

APN_EXPORT int apn_out_aperture_close(struct apn_out_aperture *oa)
{
	/* the command register takes the aperture's index, not 1 */
	return ureg_command_val(oa->ep->user_page, APN_UREG_OUT_CLOSE, oa->out_index);
}

APN_EXPORT int apn_out_aperture_write(struct apn_out_aperture *oa, size_t off,
				      const void *src, size_t len)
{
	return apn_io_write(oa->ptr, oa->size, off, src, len);
}
