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

#define APN_ABI_VERSION 3

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
	__u32 ip;                /* this NIC's IPv4 address (host order), 0 = none */
	__u16 port;              /* this file's endpoint's UDP port, 0 before CREATE_ENDPOINT */
	__u16 ep_flags;          /* APN_ENDPOINT_TRUSTED if it was granted */
	__u32 caps;              /* APN_INFO_CAP_*: what the driver and the device support */
	__u32 reserved[3];
};

/* apn_info.caps */
#define APN_INFO_CAP_DMA        (1u << 0)  /* DMA request/completion queues (rq_size) */
#define APN_INFO_CAP_READ       (1u << 1)  /* remote reads: loads through outgoing apertures */
#define APN_INFO_CAP_EVENT_AP   (1u << 2)  /* event apertures (APN_*_APERTURE_EVENT flags) */
#define APN_INFO_CAP_KERNEL_CM  (1u << 3)  /* APN_IOC_CONNECT/ACCEPT for untrusted endpoints */
#define APN_INFO_CAP_TUNNEL     (1u << 4)  /* APN_IOC_TUNNEL_* (seed 002) */

/*
 * APN_IOC_CREATE_ENDPOINT: bind this file to a new endpoint on UDP `port`, with
 * its two out-of-band queues (seed 004's dual event queues): a fixed-size event
 * queue and a variable-length queue, both mmap()able (APN_MMAP_EVQ/VARQ).
 *
 * A trusted endpoint sets up connections at user level through its user page
 * (programs its apertures' nonce and destination, sends CONNECT/ACCEPT...); an
 * untrusted one gets no user-programmable bits. Trust needs CAP_NET_ADMIN, or the
 * module parameter trust_users=1; asking for it without either fails with EPERM.
 *
 * Port 0 picks a free port from APN_PORT_EPHEMERAL_MIN..MAX (round robin, so a
 * port just released is not handed out again at once); a port another endpoint
 * of the same NIC holds fails with EADDRINUSE. Ports are per NIC.
 *
 * With rq_size (0: none), the endpoint also gets a DMA channel (seeds 000/001):
 * a request queue the process fills with struct apn_dma_req (PUT/GET between
 * its own apertures) and rings through its user page (APN_UREG_RQ_TAIL), and a
 * completion queue of cq_size (0: rq_size; nonzero only with rq_size)
 * APN_EV_PUT_DONE/GET_DONE events, both mmap()able (APN_MMAP_RQ read-write,
 * APN_MMAP_CQ). Both are empty at creation (every pointer 0); an armed endpoint
 * is woken, and poll() reports EPOLLIN, for completions as for events. Needs
 * APN_INFO_CAP_DMA.
 *
 * The queues are physically contiguous kernel memory, zeroed, charged to the
 * caller's RLIMIT_MEMLOCK (unless CAP_IPC_LOCK) like registered memory: ENOMEM
 * when over the limit or when so much contiguous memory cannot be found.
 * Errors: EINVAL (unknown flags, nonzero reserved, a size out of range or not a
 * power of two, cq_size without rq_size), EPERM, EADDRINUSE, EBUSY (this file
 * has an endpoint already), ENOSPC (no free endpoint), ENOMEM, EOPNOTSUPP
 * (rq_size on a device without DMA queues), ENODEV.
 */
struct apn_endpoint_create {
	__u16 port;              /* in: wanted port, 0 = let the driver choose; out: port */
	__u16 flags;             /* in: APN_ENDPOINT_TRUSTED */
	__u32 endpoint;          /* out: endpoint index (selects the user page) */
	__u32 evq_size;          /* in: events, power of two in [2, 65536], 0 = 1024; out */
	__u32 varq_size;         /* in: bytes, power of two in [4096, 2^24], 0 = 65536; out */
	__u32 rq_size;           /* in: DMA requests, power of two in [2, 4096]; out */
	__u32 cq_size;           /* in: completions, power of two in [2, 65536]; out */
	__u32 reserved[2];
};
#define APN_ENDPOINT_TRUSTED (1u << 0)

#define APN_RQ_MIN_REQS         2
#define APN_RQ_MAX_REQS         4096
#define APN_CQ_MIN_EVENTS       2
#define APN_CQ_MAX_EVENTS       65536

#define APN_EVQ_MIN_EVENTS      2
#define APN_EVQ_MAX_EVENTS      65536
#define APN_EVQ_DEFAULT_EVENTS  1024
#define APN_VARQ_MIN_BYTES      4096
#define APN_VARQ_MAX_BYTES      (1u << 24)
#define APN_VARQ_DEFAULT_BYTES  65536
#define APN_PORT_EPHEMERAL_MIN  49152   /* IANA dynamic ports */
#define APN_PORT_EPHEMERAL_MAX  65535

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

/*
 * APN_IOC_CREATE_IN_APERTURE: an incoming aperture onto registered memory.
 * APN_IN_APERTURE_NONCE_GIVEN needs a trusted endpoint or CAP_NET_ADMIN
 * (EPERM): an untrusted endpoint has no user-programmable bits.
 */
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
/*
 * An event aperture: segments for it (event frames, 1-8 bytes each) become
 * APN_EV_EVENT on this file's endpoint's event queue (info = offset, data = the
 * bytes) instead of memory writes. It has no memory: mr_id and mr_offset must
 * be 0; size (a power of two >= 64) bounds the offsets accepted.
 */
#define APN_IN_APERTURE_EVENT          (1u << 2)

/* APN_IOC_DESTROY_IN_APERTURE */
struct apn_in_aperture_destroy {
	__u32 in_index;
	__u32 reserved;
};

/*
 * APN_IOC_CREATE_OUT_APERTURE: a slot in the aperture window aimed at a peer.
 * A nonzero dest_host, dest_in_index or nonce needs a trusted endpoint or
 * CAP_NET_ADMIN (EPERM); an untrusted endpoint creates it unaimed and lets the
 * kernel aim it (APN_IOC_CONNECT, APN_IOC_ACCEPT).
 */
struct apn_out_aperture_create {
	__u16 dest_host;         /* in: remote NIC's cluster address */
	__u16 reserved;
	__u32 dest_in_index;     /* in: remote incoming aperture */
	__u32 nonce;             /* in: remote aperture's nonce */
	__u32 size;              /* in: bytes, power of two, <= out_slot_size */
	__u32 flags;             /* in: APN_OUT_APERTURE_* */
	__u32 out_index;         /* out */
	__u64 mmap_offset;       /* out: pass to mmap() to map the aperture */
};
/*
 * An event aperture: each store (1, 2, 4 or 8 bytes, naturally aligned) is sent
 * on its own as an event frame, to become one APN_EV_EVENT at the remote event
 * aperture; stores are not gathered and loads are refused.
 */
#define APN_OUT_APERTURE_EVENT  (1u << 0)

/*
 * APN_IOC_DESTROY_OUT_APERTURE: also revokes the file's mappings of the slot;
 * touching them afterwards raises SIGBUS (munmap them first).
 */
struct apn_out_aperture_destroy {
	__u32 out_index;
	__u32 reserved;
};

/*
 * APN_IOC_SET_HOST_ID (CAP_NET_ADMIN): this NIC's cluster address and IPv4
 * address (the source of its connection messages; APN_REG_IP_ADDR).
 */
struct apn_host_id {
	__u16 host_id;
	__u16 reserved;          /* 0 */
	__u32 ip;                /* a.b.c.d = 0xaabbccdd (host order); 0 = leave unchanged */
};

/*
 * APN_IOC_SET_ROUTE (CAP_NET_ADMIN): cluster address -> MAC (for aperture
 * frames) and IPv4 address (for connection messages), or clear both. host must
 * be below 256 (EINVAL).
 */
struct apn_route {
	__u16 host;
	__u8  mac[6];
	__u32 flags;             /* APN_ROUTE_CLEAR removes the route */
	__u32 ip;                /* host order; 0 = no IPv4 route (messages: EHOSTUNREACH) */
};
#define APN_ROUTE_CLEAR (1u << 0)

/* APN_IOC_GET_COUNTERS: device counters, in the order of APN_COUNTER_LIST */
#define APN_IOC_COUNTERS_MAX 64
struct apn_counters {
	__u32 count;             /* out: valid entries in value[] */
	__u32 reserved;
	__u64 value[APN_IOC_COUNTERS_MAX];
};

/*
 * Kernel connection management (seed 004: "for an untrusted application, kernel
 * connection management would be performed"). An untrusted endpoint's
 * connection messages go to the driver, not to its event queue. The driver
 * answers ALIVE itself and, once it has acted on the others, posts them onto
 * the endpoint's event queue with APN_EV_F_POSTED (same layout as the device's
 * message events), so the application still learns everything without a
 * system call: APN_EV_CONNECT (a CONNECT waits for APN_IOC_ACCEPT), APN_EV_ACCEPT
 * (APN_IOC_CONNECT's outgoing aperture is now aimed at the acceptor),
 * APN_EV_ERROR_MSG, APN_EV_CLOSE, APN_EV_ALIVEACK. The nonces are chosen and
 * programmed by the driver only. Trusted endpoints set up connections
 * themselves: these ioctls fail on them with EINVAL.
 */

/*
 * APN_IOC_CONNECT: send CONNECT to <dest_host:dest_port> offering in_index (an
 * incoming aperture of this file) with its nonce; when the ACCEPT comes back,
 * the driver aims out_index (an outgoing aperture of this file) at the
 * acceptor's aperture and posts APN_EV_ACCEPT; an ERROR is posted as
 * APN_EV_ERROR_MSG. Does not wait: call it again to retry (the acceptor
 * answers a repeated CONNECT again). Errors: EINVAL (trusted endpoint, no
 * endpoint, reserved fields), ENOENT (in_index or out_index not this file's),
 * EBUSY (out_index is aimed or being connected already), EHOSTUNREACH (no route
 * to dest_host), ENETDOWN (the device is disabled), EIO, ENOMEM, ENODEV.
 */
struct apn_conn_connect {
	__u16 dest_host;
	__u16 dest_port;
	__u32 in_index;          /* in: where the peer will write */
	__u32 out_index;         /* in: what the driver aims at the peer's aperture */
	__u32 reserved;
};

/*
 * APN_IOC_ACCEPT: take a CONNECT the driver holds for this endpoint (the oldest,
 * or with APN_ACCEPT_PEER the one from <peer_host:peer_port>), aim out_index at
 * the connector's aperture, and send ACCEPT offering in_index. The driver holds
 * at most APN_ACCEPT_BACKLOG CONNECTs per endpoint, answering more with ERROR;
 * a repeated CONNECT for one it holds or accepted is not held twice (an
 * accepted one gets its ACCEPT again). Errors: EAGAIN (no CONNECT held), and
 * those of APN_IOC_CONNECT.
 */
struct apn_conn_accept {
	__u16 peer_host;         /* in with APN_ACCEPT_PEER; out */
	__u16 peer_port;         /* in with APN_ACCEPT_PEER; out */
	__u32 in_index;          /* in */
	__u32 out_index;         /* in */
	__u32 flags;             /* in: APN_ACCEPT_PEER */
	__u32 peer_in_index;     /* out: the connector's aperture out_index now names */
	__u32 reserved[3];
};
#define APN_ACCEPT_PEER         (1u << 0)
#define APN_ACCEPT_BACKLOG      16

/*
 * User-space tunneled access (seed 002). APN_IOC_TUNNEL_ATTACH makes this
 * file's process the path of the kernel's own traffic on apnN: frames the
 * kernel's stack sends go to the to-user ring instead of the device, and the
 * process hands frames in through the to-kernel ring, each marked for the
 * kernel's stack or for the wire (APN_TUN_F_WIRE: the driver sends it through
 * the device as if the stack had). Frames from the network for the kernel
 * still arrive through the device's own RX ring (the device separates them
 * in hardware). One tunnel per NIC (EBUSY). The driver goes back to direct
 * access, and IP keeps working, when the file is closed (the process exited
 * or died), on APN_IOC_TUNNEL_DETACH, or when the process has not called
 * APN_IOC_TUNNEL_KICK for watchdog_ms (the watchdog); frames in the to-user
 * ring are then sent directly. Needs CAP_NET_ADMIN (EPERM) and an endpoint on
 * this file (EINVAL): the tunnel is the process that owns a port. Attach
 * errors: EINVAL (flags, reserved fields, sizes out of range), EPERM, EBUSY
 * (a tunnel is attached already), EOPNOTSUPP (the NIC has no net_device),
 * ENOMEM. KICK and DETACH fail with ENOTCONN once the driver has gone back
 * to direct access (the watchdog expired, or a bad value detached it: the
 * KICK that found one fails with EPROTO); poll() does not report that, so a
 * process learns it from its next KICK, which it makes at least every
 * watchdog_ms anyway. A frame the process hands in that fits its slot but is
 * longer than the interface takes is dropped and counted (from_user_dropped).
 *
 * Each ring (mmap offsets APN_MMAP_TUN_TO_USER / APN_MMAP_TUN_TO_KERNEL,
 * read-write, one struct apn_tun_ring then `slots` slots of slot_bytes each) has
 * free-running counters: the producer advances `head` after filling a slot,
 * the consumer advances `tail` after emptying one; slot = counter & (slots - 1).
 * The kernel keeps its own copy of the counters it owns and checks the ones the
 * process writes (a bad value detaches the tunnel).
 */
struct apn_tunnel_attach {
	__u32 slots;             /* in: per ring, power of two in [16, 1024], 0 = 256; out */
	__u32 watchdog_ms;       /* in: [10, 60000], 0 = 1000; out */
	__u32 slot_bytes;        /* out: bytes per slot (header + largest frame, power of two) */
	__u32 flags;             /* in: 0 */
	__u32 reserved[4];
};

struct apn_tun_ring {
	__u32 head;              /* producer: slots filled */
	__u32 tail;              /* consumer: slots emptied */
	__u32 slots;             /* as attached */
	__u32 slot_bytes;
	__u32 reserved[12];
};

struct apn_tun_slot {
	__u16 len;               /* frame bytes (Ethernet header included) */
	__u16 flags;             /* to-kernel: APN_TUN_F_WIRE; to-user: 0 */
	__u32 reserved;
	/* the frame follows */
};
#define APN_TUN_F_WIRE          (1u << 0)
#define APN_TUN_SLOTS_MIN       16
#define APN_TUN_SLOTS_MAX       1024
#define APN_TUN_SLOTS_DEFAULT   256
#define APN_TUN_WATCHDOG_MIN_MS 10
#define APN_TUN_WATCHDOG_MAX_MS 60000
#define APN_TUN_WATCHDOG_DEFAULT_MS 1000

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
#define APN_IOC_CONNECT              _IOW(APN_IOC_MAGIC, 0x0b, struct apn_conn_connect)
#define APN_IOC_ACCEPT               _IOWR(APN_IOC_MAGIC, 0x0c, struct apn_conn_accept)
#define APN_IOC_TUNNEL_ATTACH        _IOWR(APN_IOC_MAGIC, 0x0d, struct apn_tunnel_attach)
#define APN_IOC_TUNNEL_DETACH        _IO(APN_IOC_MAGIC, 0x0e)
/* heartbeat for the watchdog, and doorbell: the to-kernel ring has frames */
#define APN_IOC_TUNNEL_KICK          _IO(APN_IOC_MAGIC, 0x0f)

/*
 * mmap() offsets, all MAP_SHARED (MAP_PRIVATE fails with EINVAL):
 *   APN_MMAP_USER_PAGE  this file's endpoint's user page (one page)
 *   APN_MMAP_EVQ        its event queue: control block + evq_size events,
 *                       PAGE_ALIGN(64 + 16 * evq_size) bytes
 *   APN_MMAP_VARQ       its variable-length queue: control block + varq_size
 *                       bytes, PAGE_ALIGN(64 + varq_size) bytes
 *   APN_MMAP_RQ         its DMA request queue (with rq_size): control block +
 *                       rq_size 32-byte requests, PAGE_ALIGN(64 + 32 * rq_size);
 *                       the one queue the process writes (PROT_WRITE allowed)
 *   APN_MMAP_CQ         its completion queue: control block + cq_size events,
 *                       PAGE_ALIGN(64 + 16 * cq_size) bytes
 *   APN_MMAP_TUN_TO_USER, APN_MMAP_TUN_TO_KERNEL
 *                       the tunnel's rings while attached: struct apn_tun_ring
 *                       + slots * slot_bytes, page aligned (read-write)
 *   mmap_offset         an outgoing aperture, as its create call returned
 * A queue may be mapped in part (from any page offset inside it) but not past
 * its end. Any other offset, a length past the object, or a mapping before
 * CREATE_ENDPOINT fails with EINVAL. Mappings stay valid until the file is
 * closed; if the device goes away they are revoked (SIGBUS on access).
 */
#define APN_MMAP_USER_PAGE      0x0ull
#define APN_MMAP_EVQ            (1ull << 28)
#define APN_MMAP_VARQ           (2ull << 28)
#define APN_MMAP_RQ             (3ull << 28)
#define APN_MMAP_CQ             (4ull << 28)
#define APN_MMAP_TUN_TO_USER    (5ull << 28)
#define APN_MMAP_TUN_TO_KERNEL  (6ull << 28)
#define APN_MMAP_OUT_BASE       (1ull << 32)

/*
 * Queue layout in the mapping (apertnic_hw.h): a struct apn_queue_ctrl whose
 * wrptr (and overflows) the device keeps current, then the entries at
 * APN_QUEUE_DATA_OFFSET: 16-byte struct apn_event for the event queue, records
 * (struct apn_var_hdr + payload padded to 8 bytes, possibly wrapping) for the
 * variable-length queue. Pointers run free (slot = ptr & (size - 1)). The
 * consumer reads up to the wrptr mirror, then reports progress through its user
 * page (APN_UREG_EVQ_RDPTR / APN_UREG_VARQ_RDPTR); no system call is involved.
 * Events the queue has no room for are lost and counted in the control block's
 * overflows (and reported to the driver, which logs them).
 *
 * The DMA request queue runs the other way: the process writes requests at
 * its tail and rings APN_UREG_RQ_TAIL; the device mirrors APN_UREG_RQ_HEAD
 * (requests retired, their slots free again) into the control block's rdptr.
 * The completion queue is an event queue (wrptr mirror, APN_UREG_CQ_RDPTR);
 * the device never overfills it: it starts a request only when there is room
 * for its completion.
 *
 * Blocking: poll()/epoll on the file report EPOLLIN | EPOLLRDNORM while the
 * endpoint's event queue holds events (wrptr mirror != APN_UREG_EVQ_RDPTR), or
 * its completion queue completions (wrptr mirror != APN_UREG_CQ_RDPTR), and
 * EPOLLERR | EPOLLHUP once the device is gone. The device interrupts only when
 * asked: write 1 to APN_UREG_ARM (one-shot) and the next event raises an
 * interrupt that wakes the endpoint's pollers. The drain-then-arm race (an event
 * lands after the consumer found the queue empty but before it armed) is closed
 * by the device, which fires at once when ARM is written while events are
 * pending, and by poll() itself checking the queue. So: drain the queue (and
 * publish RDPTR), arm, poll; after a wake, drain again and re-arm before the
 * next sleep. A wake may find nothing to read (another thread drained it).
 */
#define APN_QUEUE_DATA_OFFSET   64

#endif /* _UAPI_APERTNIC_H */
