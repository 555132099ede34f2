/* SPDX-License-Identifier: GPL-2.0-or-later WITH Linux-syscall-note */
/*
 * apertnic character device ABI: /dev/apertnicN, one endpoint per open file.
 *
 * Everything a process creates hangs off its file: closing it (or dying) destroys
 * the endpoint's apertures on the device, unpins its memory and unmaps its pages.
 * Every ioctl returns 0 or -1 with errno set; sizes and indices are checked.
 * Reserved fields and flag bits not defined here must be 0 (EINVAL otherwise).
 */
#ifndef _UAPI_APERTNIC_H
#define _UAPI_APERTNIC_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define APN_ABI_VERSION 1

/* APN_IOC_GET_INFO: the device, and this file's endpoint (~0 before CREATE_ENDPOINT) */
struct apn_info {
	__u32 abi_version;       /* APN_ABI_VERSION */
	__u32 spec_version;      /* APN_SPEC_VERSION of the device */
	__u8  mac[6];
	__u16 host_id;           /* this NIC's cluster address */
	__u32 mtu;
	__u32 num_out;           /* outgoing aperture slots on the device */
	__u32 out_slot_size;     /* bytes per slot in the aperture window */
	__u32 max_in;            /* incoming apertures the driver can create */
	__u32 num_endpoints;
	__u32 endpoint;          /* this file's endpoint, or ~0 */
	__u32 reserved[6];
};

/* APN_IOC_CREATE_ENDPOINT: bind this file to a new endpoint on `port` (0: any) */
struct apn_endpoint_create {
	__u16 port;              /* in: wanted port, 0 = let the driver choose */
	__u16 reserved;
	__u32 endpoint;          /* out: endpoint index (selects the user page) */
};

/* APN_IOC_REG_MR: pin [addr, addr + len), page aligned, for the device's use */
struct apn_mr_reg {
	__u64 addr;              /* in: page-aligned user address */
	__u64 len;               /* in: bytes, multiple of the page size */
	__u32 flags;             /* in: 0 */
	__u32 mr_id;             /* out */
};

/* APN_IOC_DEREG_MR: unpin; fails with EBUSY while an aperture uses it */
struct apn_mr_dereg {
	__u32 mr_id;
	__u32 reserved;
};

/* APN_IOC_CREATE_IN_APERTURE: an incoming aperture onto registered memory */
struct apn_in_aperture_create {
	__u32 mr_id;             /* in */
	__u32 flags;             /* in: APN_IN_APERTURE_* */
	__u64 mr_offset;         /* in: start within the registration */
	__u64 size;              /* in: bytes, power of two, >= 64 */
	__u16 src_host;          /* in: with APN_IN_APERTURE_CHECK_SRC_HOST */
	__u16 src_host_mask;
	__u32 nonce;             /* out: random unless APN_IN_APERTURE_NONCE_GIVEN */
	__u32 in_index;          /* out: what the peer names in its frames */
	__u32 reserved;
};
#define APN_IN_APERTURE_CHECK_SRC_HOST (1u << 0)
#define APN_IN_APERTURE_NONCE_GIVEN    (1u << 1)

/* APN_IOC_DESTROY_IN_APERTURE */
struct apn_in_aperture_destroy {
	__u32 in_index;
	__u32 reserved;
};

/* APN_IOC_CREATE_OUT_APERTURE: a slot in the aperture window aimed at a peer */
struct apn_out_aperture_create {
	__u16 dest_host;         /* in: remote NIC's cluster address */
	__u16 reserved;
	__u32 dest_in_index;     /* in: remote incoming aperture */
	__u32 nonce;             /* in: remote aperture's nonce */
	__u32 size;              /* in: bytes, power of two, <= out_slot_size */
	__u32 flags;             /* in: 0 */
	__u32 out_index;         /* out */
	__u64 mmap_offset;       /* out: pass to mmap() to map the aperture */
};

/*
 * APN_IOC_DESTROY_OUT_APERTURE: also revokes the file's mappings of the slot;
 * touching them afterwards raises SIGBUS (munmap them first).
 */
struct apn_out_aperture_destroy {
	__u32 out_index;
	__u32 reserved;
};

/* APN_IOC_SET_HOST_ID (CAP_NET_ADMIN): this NIC's cluster address */
struct apn_host_id {
	__u16 host_id;
	__u16 reserved[3];
};

/* APN_IOC_SET_ROUTE (CAP_NET_ADMIN): cluster address -> MAC, or clear it */
struct apn_route {
	__u16 host;
	__u8  mac[6];
	__u32 flags;             /* APN_ROUTE_CLEAR removes the route */
	__u32 reserved;
};
#define APN_ROUTE_CLEAR (1u << 0)

/* APN_IOC_GET_COUNTERS: device counters, in the order of APN_COUNTER_LIST */
#define APN_IOC_COUNTERS_MAX 64
struct apn_counters {
	__u32 count;             /* out: valid entries in value[] */
	__u32 reserved;
	__u64 value[APN_IOC_COUNTERS_MAX];
};

#define APN_IOC_MAGIC 0xa7
#define APN_IOC_GET_INFO             _IOR(APN_IOC_MAGIC, 0x00, struct apn_info)
#define APN_IOC_CREATE_ENDPOINT      _IOWR(APN_IOC_MAGIC, 0x01, struct apn_endpoint_create)
#define APN_IOC_REG_MR               _IOWR(APN_IOC_MAGIC, 0x02, struct apn_mr_reg)
#define APN_IOC_DEREG_MR             _IOW(APN_IOC_MAGIC, 0x03, struct apn_mr_dereg)
#define APN_IOC_CREATE_IN_APERTURE   _IOWR(APN_IOC_MAGIC, 0x04, struct apn_in_aperture_create)
#define APN_IOC_DESTROY_IN_APERTURE  _IOW(APN_IOC_MAGIC, 0x05, struct apn_in_aperture_destroy)
#define APN_IOC_CREATE_OUT_APERTURE  _IOWR(APN_IOC_MAGIC, 0x06, struct apn_out_aperture_create)
#define APN_IOC_DESTROY_OUT_APERTURE _IOW(APN_IOC_MAGIC, 0x07, struct apn_out_aperture_destroy)
#define APN_IOC_SET_HOST_ID          _IOW(APN_IOC_MAGIC, 0x08, struct apn_host_id)
#define APN_IOC_SET_ROUTE            _IOW(APN_IOC_MAGIC, 0x09, struct apn_route)
#define APN_IOC_GET_COUNTERS         _IOR(APN_IOC_MAGIC, 0x0a, struct apn_counters)

/*
 * mmap() offsets. The user page of this file's endpoint is at offset 0 (one
 * page); an outgoing aperture at the mmap_offset its create call returned. Any
 * other offset, a length past the object, or a MAP_PRIVATE mapping fails with
 * EINVAL.
 */
#define APN_MMAP_USER_PAGE      0x0ull
#define APN_MMAP_OUT_BASE       (1ull << 32)

#endif /* _UAPI_APERTNIC_H */
