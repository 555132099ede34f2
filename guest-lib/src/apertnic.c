// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libapertnic: devices, endpoints, memory registrations and apertures on top of
 * the /dev/apertnicN ioctl ABI (guest-driver/uapi/apertnic.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "apertnic.h"        /* guest-driver/uapi: the kernel ABI */
#include "apertnic_hw.h"     /* hw/net/apertnic: counters, user page registers */
#include <apertnic/apertnic.h>
#include "apn_io.h"

#define APN_EXPORT __attribute__((visibility("default")))

_Static_assert(APN_CNT__COUNT <= APN_IOC_COUNTERS_MAX, "counters fit the ioctl");
_Static_assert(APN_UREG_FENCE + 4 <= APN_USER_PAGE_SIZE, "fence on the user page");

static int neg_errno(void)
{
	return errno ? -errno : -EIO;
}

static int xioctl(int fd, unsigned long req, void *arg)
{
	int r;

	do
		r = ioctl(fd, req, arg);
	while (r < 0 && errno == EINTR);
	return r < 0 ? neg_errno() : 0;
}

static int is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

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

/* ---- Device ----------------------------------------------------------------------- */

static int open_dev(const char *path)
{
	int fd;

	do
		fd = open(path, O_RDWR | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	return fd < 0 ? neg_errno() : fd;
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
	r = xioctl(fd, APN_IOC_GET_INFO, &info);
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
	int r = close(dev->fd) < 0 ? neg_errno() : 0;

	dev->fd = -1;
	return r;
}

APN_EXPORT int apn_device_info(struct apn_device *dev, struct apn_device_info *info)
{
	struct apn_info ki;
	int r;

	memset(&ki, 0, sizeof(ki));
	r = xioctl(dev->fd, APN_IOC_GET_INFO, &ki);
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
	return 0;
}

APN_EXPORT int apn_device_counters(struct apn_device *dev, uint64_t *values, unsigned max)
{
	struct apn_counters c;
	unsigned n;
	int r;

	memset(&c, 0, sizeof(c));
	r = xioctl(dev->fd, APN_IOC_GET_COUNTERS, &c);
	if (r)
		return r;
	n = c.count < APN_IOC_COUNTERS_MAX ? c.count : APN_IOC_COUNTERS_MAX;
	if (n > max)
		n = max;
	memcpy(values, c.value, n * sizeof(values[0]));
	return (int)n;
}

APN_EXPORT int apn_device_set_host_id(struct apn_device *dev, uint16_t host_id)
{
	struct apn_host_id h;

	memset(&h, 0, sizeof(h));
	h.host_id = host_id;
	return xioctl(dev->fd, APN_IOC_SET_HOST_ID, &h);
}

APN_EXPORT int apn_device_set_route(struct apn_device *dev, uint16_t host,
				    const uint8_t mac[6])
{
	struct apn_route rt;

	memset(&rt, 0, sizeof(rt));
	rt.host = host;
	if (mac)
		memcpy(rt.mac, mac, 6);
	else
		rt.flags = APN_ROUTE_CLEAR;
	return xioctl(dev->fd, APN_IOC_SET_ROUTE, &rt);
}

/* ---- Endpoint --------------------------------------------------------------------- */

APN_EXPORT int apn_endpoint_create(struct apn_endpoint *ep, struct apn_device *dev,
				   uint16_t port)
{
	struct apn_endpoint_create req;
	struct apn_info info;
	void *page;
	int fd, r;

	fd = open_dev(dev->path);
	if (fd < 0)
		return fd;
	memset(&req, 0, sizeof(req));
	req.port = port;
	r = xioctl(fd, APN_IOC_CREATE_ENDPOINT, &req);
	if (r)
		goto fail;
	memset(&info, 0, sizeof(info));
	r = xioctl(fd, APN_IOC_GET_INFO, &info);
	if (r)
		goto fail;
	page = mmap(NULL, APN_USER_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		    APN_MMAP_USER_PAGE);
	if (page == MAP_FAILED) {
		r = neg_errno();
		goto fail;
	}
	ep->fd = fd;
	ep->index = req.endpoint;
	ep->port = port;
	ep->user_page = page;
	ep->fence_reg = (volatile uint32_t *)((char *)page + APN_UREG_FENCE);
	ep->out_slot_size = info.out_slot_size;
	ep->dev = dev;
	return 0;
fail:
	close(fd);
	return r;
}

APN_EXPORT int apn_endpoint_destroy(struct apn_endpoint *ep)
{
	int r = 0;

	if (munmap(ep->user_page, APN_USER_PAGE_SIZE) < 0)
		r = neg_errno();
	if (close(ep->fd) < 0 && !r)
		r = neg_errno();
	ep->fd = -1;
	ep->user_page = NULL;
	ep->fence_reg = NULL;
	return r;
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
	r = xioctl(ep->fd, APN_IOC_REG_MR, &req);
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
	return xioctl(mr->ep->fd, APN_IOC_DEREG_MR, &req);
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
	if (!is_pow2(size) || size < 64 || size > UINT32_MAX)
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
	r = xioctl(ep->fd, APN_IOC_CREATE_IN_APERTURE, &req);
	if (r)
		return r;
	ia->in_index = req.in_index;
	ia->nonce = req.nonce;
	ia->offset = offset;
	ia->size = size;
	ia->mr = mr;
	ia->ep = ep;
	return 0;
}

APN_EXPORT int apn_in_aperture_destroy(struct apn_in_aperture *ia)
{
	struct apn_in_aperture_destroy req;

	memset(&req, 0, sizeof(req));
	req.in_index = ia->in_index;
	return xioctl(ia->ep->fd, APN_IOC_DESTROY_IN_APERTURE, &req);
}

/* ---- Outgoing apertures ----------------------------------------------------------- */

static int destroy_out_slot(int fd, uint32_t out_index)
{
	struct apn_out_aperture_destroy req;

	memset(&req, 0, sizeof(req));
	req.out_index = out_index;
	return xioctl(fd, APN_IOC_DESTROY_OUT_APERTURE, &req);
}

APN_EXPORT int apn_out_aperture_create(struct apn_out_aperture *oa, struct apn_endpoint *ep,
				       uint16_t dest_host, uint32_t dest_in_index,
				       uint32_t nonce, size_t size)
{
	struct apn_out_aperture_create req;
	void *p;
	int r;

	if (!is_pow2(size) || size > UINT32_MAX ||
	    (ep->out_slot_size && size > ep->out_slot_size))
		return -EINVAL;
	memset(&req, 0, sizeof(req));
	req.dest_host = dest_host;
	req.dest_in_index = dest_in_index;
	req.nonce = nonce;
	req.size = (uint32_t)size;
	r = xioctl(ep->fd, APN_IOC_CREATE_OUT_APERTURE, &req);
	if (r)
		return r;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, ep->fd,
		 (off_t)req.mmap_offset);
	if (p == MAP_FAILED) {
		r = neg_errno();
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
	return 0;
}

APN_EXPORT int apn_out_aperture_destroy(struct apn_out_aperture *oa)
{
	int r = 0, r2;

	if (oa->ptr && munmap(oa->ptr, oa->size) < 0)
		r = neg_errno();
	oa->ptr = NULL;
	r2 = destroy_out_slot(oa->ep->fd, oa->out_index);
	return r ? r : r2;
}

APN_EXPORT int apn_out_aperture_write(struct apn_out_aperture *oa, size_t off,
				      const void *src, size_t len)
{
	return apn_io_write(oa->ptr, oa->size, off, src, len);
}
