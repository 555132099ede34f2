/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libapertnic: user-level access to the apertnic aperture-mapped NIC.
 *
 * Objects and their lifetime
 *   struct apn_device        an open /dev/apertnicN: queries and administration
 *   struct apn_endpoint      its own open file of the device, bound to one device
 *                            endpoint and UDP port; owns everything below, the user
 *                            page and the endpoint's two queues (events, datagrams)
 *   struct apn_mr            pinned ("registered") memory of this process
 *   struct apn_in_aperture   a window onto registered memory that one peer may write
 *   struct apn_out_aperture  a mapped slot of the device's aperture window aimed at a
 *                            peer's incoming aperture: stores into it become frames
 *
 * All handles are allocated by the caller (on the stack, embedded, static...); the
 * library never allocates. Calls return 0 (or a count >= 0) on success and a
 * negative errno on failure; they never set errno as their result. Destroy objects
 * in the reverse order of creation. Destroying an endpoint (or the process exiting)
 * releases on the device everything created through it, but the caller's handles of
 * its children then become invalid and must not be used (their mappings are gone).
 *
 * Hot path: apn_out_aperture_ptr(), apn_out_aperture_write(), apn_out_aperture_fence(),
 * apn_endpoint_fence(), apn_evq_poll(), apn_evq_pending(), apn_varq_read(),
 * apn_endpoint_arm() and the trusted-endpoint commands (apn_out_aperture_connect(),
 * apn_in_aperture_set_nonce(), apn_in_aperture_narrow(), apn_endpoint_send_msg()...)
 * make no system calls and do not allocate: they are loads and stores to the
 * endpoint's mapped queues and user page. Only apn_endpoint_wait() sleeps in poll(2).
 *
 * Thread safety: create/destroy calls on distinct handles may run concurrently.
 * An endpoint's event queue has one consumer: serialise apn_evq_poll(),
 * apn_varq_read() and apn_endpoint_wait() on one endpoint. The commands share the
 * user page's argument registers: serialise them per endpoint too.
 * Stores through different outgoing apertures may come from different threads, but
 * the device gathers only stores that are contiguous with the previous store to the
 * same aperture; interleaving threads on one aperture produces more, smaller frames.
 *
 * In-tree code that also includes apertnic_hw.h must include it first: both define
 * struct apn_event and the APN_EV_* / APN_MSG_* numbers (identically).
 */
#ifndef APERTNIC_APERTNIC_H
#define APERTNIC_APERTNIC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define APN_VERSION_MAJOR  0
#define APN_VERSION_MINOR  1
#define APN_VERSION_PATCH  0
#define APN_VERSION_STRING "0.1.0"

#define APN_DEFAULT_DEVICE "/dev/apertnic0"
#define APN_PATH_MAX       256   /* including the terminating NUL */

/* ---- Library -------------------------------------------------------------------- */

/* Returns the library's version, "MAJOR.MINOR.PATCH" (static storage, never NULL). */
const char *apn_version(void);

/* Number of device counters this library knows (ids 0 .. apn_counter_count() - 1). */
unsigned apn_counter_count(void);

/*
 * Returns the name of counter `id` ("tx_frames", "rx_drop_nonce", ...; the order
 * and names of APN_COUNTER_LIST in apertnic_hw.h), or NULL if id is out of range.
 */
const char *apn_counter_name(unsigned id);

/*
 * Parses a MAC address written as six two-digit hex bytes separated by ':'
 * ("aa:bb:cc:dd:ee:ff", either case) into mac[0..5].
 * Returns 0, or -EINVAL if `s` is not exactly in that form (mac then unchanged).
 */
int apn_mac_parse(const char *s, uint8_t mac[6]);

/* Writes "aa:bb:cc:dd:ee:ff" and a NUL into buf (at least 18 bytes). Returns buf. */
char *apn_mac_format(const uint8_t mac[6], char buf[18]);

/*
 * IPv4 addresses are uint32_t in host order, a.b.c.d = 0xaabbccdd.
 * apn_ipv4_parse() accepts exactly four decimal numbers 0-255 separated by '.'
 * (no leading zeros beyond "0", no blanks). Returns 0, or -EINVAL (ip unchanged).
 */
int apn_ipv4_parse(const char *s, uint32_t *ip);

/* Writes "a.b.c.d" and a NUL into buf (at least 16 bytes). Returns buf. */
char *apn_ipv4_format(uint32_t ip, char buf[16]);

/* ---- Device ----------------------------------------------------------------------- */

struct apn_device {
	int fd;
	char path[APN_PATH_MAX];
};

/* Device and library facts; a snapshot taken by apn_device_info(). */
struct apn_device_info {
	uint32_t abi_version;    /* driver ABI (ioctl interface) version */
	uint32_t spec_version;   /* device spec version: major << 16 | minor */
	uint8_t  mac[6];
	uint16_t host_id;        /* this NIC's cluster address */
	uint32_t mtu;            /* largest Ethernet payload the device sends */
	uint32_t num_out;        /* outgoing aperture slots on the device */
	uint32_t out_slot_size;  /* largest outgoing aperture, bytes */
	uint32_t max_in;         /* incoming apertures the driver can create */
	uint32_t num_endpoints;
	uint32_t ip;             /* this NIC's IPv4 address (host order), 0 = none */
};

/*
 * Opens the device at `path` (NULL: APN_DEFAULT_DEVICE) for queries and
 * administration, and checks that the driver speaks this library's ABI.
 * Returns 0, or
 *   -ENAMETOOLONG  path does not fit APN_PATH_MAX,
 *   -EPROTONOSUPPORT the driver's ABI version is not the one compiled in,
 *   -ENOTTY        the file is not an apertnic device,
 *   or open(2)'s error (-ENOENT, -EACCES, ...).
 */
int apn_device_open(struct apn_device *dev, const char *path);

/* Closes the device. Endpoints created from it stay usable. Returns 0 or -errno. */
int apn_device_close(struct apn_device *dev);

/* Fills *info with the device's current facts. Returns 0 or -errno from the driver. */
int apn_device_info(struct apn_device *dev, struct apn_device_info *info);

/*
 * Reads the device counters into values[0 .. n-1] in counter-id order (see
 * apn_counter_name()), n = min(counters the device reports, max).
 * Returns n >= 0, or -errno from the driver.
 */
int apn_device_counters(struct apn_device *dev, uint64_t *values, unsigned max);

/*
 * Administration (CAP_NET_ADMIN). Sets this NIC's cluster address and, unless ip
 * is 0, its IPv4 address (the source address of its connection messages).
 * Returns 0, -EPERM without the capability, or another -errno from the driver.
 */
int apn_device_set_host_id(struct apn_device *dev, uint16_t host_id, uint32_t ip);

/*
 * Administration (CAP_NET_ADMIN). Routes cluster address `host` to Ethernet
 * address `mac` (aperture frames) and IPv4 address `ip` (connection messages;
 * 0: none, messages to the host then fail with -EHOSTUNREACH); mac NULL removes
 * both. Returns 0, -EPERM without the capability, or another -errno from the
 * driver (a host the device's table cannot hold: -EINVAL).
 */
int apn_device_set_route(struct apn_device *dev, uint16_t host, const uint8_t mac[6],
			 uint32_t ip);

/* ---- Events ----------------------------------------------------------------------- */

#ifndef APERTNIC_HW_H
/*
 * One event, 16 bytes (the device's format; apn_evq_poll() hands them over in host
 * byte order). What info and data mean depends on type.
 */
struct apn_event {
	uint8_t  type;           /* APN_EV_* */
	uint8_t  flags;
	uint16_t endpoint;
	uint32_t info;
	uint64_t data;
};

/* Connection messages from peers: decode with apn_event_msg(). */
#define APN_EV_CONNECT             16
#define APN_EV_ACCEPT              17
#define APN_EV_CLOSE               18
#define APN_EV_ALIVE               19
#define APN_EV_ALIVEACK            20
#define APN_EV_ERROR_MSG           21
/* An event frame from a peer's aperture: info = offset, data = payload. */
#define APN_EV_EVENT               22
/* A datagram on the variable-length queue: read it with apn_varq_read(). */
#define APN_EV_VAR                 23
/* A segment for one of our incoming apertures was dropped: info = counter id,
 * data = in-index | source host << 32. */
#define APN_EV_RX_DROP             24
/* The remote NIC refused our segment: info = its counter id,
 * data = out-index | remote in-index << 32. */
#define APN_EV_TX_ERROR            25
/* Made by the library (see apn_evq_poll()): events or datagrams were lost. */
#define APN_EV_OVERFLOW            5

/* Connection message types (apn_endpoint_send_msg()) */
#define APN_MSG_CONNECT            1
#define APN_MSG_ACCEPT             2
#define APN_MSG_CLOSE              3
#define APN_MSG_ALIVE              4
#define APN_MSG_ALIVEACK           5
#define APN_MSG_ERROR              6
#endif

/* APN_EV_OVERFLOW flags: which queue lost entries */
#define APN_EVF_OVERFLOW_VARQ      (1u << 0)  /* the variable-length queue (else events) */

/* A connection message event, decoded. */
struct apn_msg_info {
	uint8_t  type;           /* APN_MSG_* */
	uint16_t src_host;       /* sender's cluster address */
	uint16_t src_port;       /* sender's port: reply there */
	uint32_t in_index;       /* sender's incoming aperture (CONNECT, ACCEPT) */
	uint32_t nonce;          /* its nonce */
	uint32_t info;           /* ERROR: the reason; otherwise the in-index again */
};

/*
 * Decodes a connection message event (APN_EV_CONNECT .. APN_EV_ERROR_MSG) into *m.
 * Returns 0, or -EINVAL if ev is some other event (m unchanged).
 */
int apn_event_msg(const struct apn_event *ev, struct apn_msg_info *m);

/* ---- Endpoint --------------------------------------------------------------------- */

/* struct apn_endpoint_attr flags */
#define APN_ENDPOINT_F_TRUSTED  (1u << 0)  /* may set up connections itself (see below) */

/*
 * Endpoint attributes. Zero-initialise, then set what you need: every zero field
 * takes its default (NULL attributes = all defaults).
 */
struct apn_endpoint_attr {
	uint16_t port;           /* UDP port; 0: the driver picks a free one in 49152-65535 */
	uint32_t flags;          /* APN_ENDPOINT_F_TRUSTED */
	uint32_t evq_size;       /* events, power of two in [2, 65536]; 0: 1024 */
	uint32_t varq_size;      /* bytes, power of two in [4096, 2^24]; 0: 65536 */
};

/* One of an endpoint's mapped queues, and the consumer's place in it. */
struct apn_queue {
	const void *base;              /* control block, entries at +64 (read-only mapping) */
	size_t map_len;
	uint32_t size;                 /* events (EVQ) or bytes (VARQ), power of two */
	uint32_t rdptr;                /* consumed so far, free running */
	uint32_t overflows_seen;       /* overflows already reported as APN_EV_OVERFLOW */
	volatile uint32_t *rdptr_reg;  /* where the device learns rdptr (user page) */
};

struct apn_endpoint {
	int fd;                        /* this endpoint's own open file of the device */
	uint32_t index;                /* device endpoint (selects the user page) */
	uint16_t port;                 /* bound UDP port */
	uint32_t flags;                /* APN_ENDPOINT_F_TRUSTED if granted */
	void *user_page;               /* mapped user page */
	volatile uint32_t *fence_reg;  /* APN_UREG_FENCE on the user page */
	volatile uint32_t *arm_reg;    /* APN_UREG_ARM on the user page */
	uint32_t out_slot_size;        /* largest outgoing aperture */
	struct apn_queue evq;          /* fixed-size event queue */
	struct apn_queue varq;         /* variable-length (datagram) queue */
	struct apn_device *dev;
};

/*
 * Creates an endpoint on dev's device: opens the device path again (one endpoint
 * per open file), binds the file to a new endpoint and UDP port with the given
 * attributes (NULL: defaults), and maps its user page, event queue and
 * variable-length queue. ep->port tells the port bound.
 *
 * Trusted endpoints (APN_ENDPOINT_F_TRUSTED) program their own apertures'
 * destinations, nonces and narrowing, and send connection messages, all through
 * the user page without system calls (seed 004's user-programmable bits). They
 * need CAP_NET_ADMIN or the driver's trust_users=1 parameter.
 *
 * The queues are charged to RLIMIT_MEMLOCK, like registered memory.
 * Returns 0, or -errno:
 *   -EINVAL      unknown flags, or a size out of range or not a power of two
 *                (checked before any system call),
 *   -EPERM       trust asked for without the privilege,
 *   -EADDRINUSE  the port is bound by another endpoint of this NIC,
 *   -ENOSPC      no free endpoint on the device,
 *   -ENOMEM      RLIMIT_MEMLOCK exceeded, or no contiguous memory for the queues,
 *   or open(2)'s / mmap(2)'s error.
 */
int apn_endpoint_create(struct apn_endpoint *ep, struct apn_device *dev,
			const struct apn_endpoint_attr *attr);

/*
 * Unmaps the user page and the queues and closes the endpoint's file, which
 * releases its port and every memory registration and aperture made through it.
 * Returns 0 or -errno.
 */
int apn_endpoint_destroy(struct apn_endpoint *ep);

/*
 * The endpoint's file descriptor, for poll(2)/epoll: readable (POLLIN) while its
 * event queue holds events, POLLHUP once the device is gone. It only wakes a
 * sleeper if the endpoint was armed (apn_endpoint_arm()); apn_endpoint_wait() does
 * both. Do not read, write or ioctl it yourself.
 */
static inline int apn_endpoint_fd(const struct apn_endpoint *ep)
{
	return ep->fd;
}

/* The UDP port the endpoint is bound to (peers send connection messages there). */
static inline uint16_t apn_endpoint_port(const struct apn_endpoint *ep)
{
	return ep->port;
}

/*
 * Copies up to max events from the endpoint's event queue into evs[], oldest
 * first, and gives their slots back to the device: no system call, one 32-bit
 * store to the user page per call that consumed events (none when the queue is
 * empty). Returns the number copied (0 .. max), or
 *   -EINVAL  max < 0, or evs NULL with max > 0,
 *   -EIO     the device's write pointer is more than a queue ahead of ours (a
 *            broken device or a corrupted endpoint structure).
 *
 * Overflow is never silent: when the device had to drop events (queue full) or
 * datagrams (variable-length queue full) since the last call, the first event
 * returned is APN_EV_OVERFLOW, made by the library, with info = entries lost on
 * that queue in all, data = lost since the previous report, flags =
 * APN_EVF_OVERFLOW_VARQ for the variable-length queue (one event per queue).
 * Size queues for the worst case (like RIO) to never see one.
 */
int apn_evq_poll(struct apn_endpoint *ep, struct apn_event *evs, int max);

/*
 * Events waiting in the queue (no system call, no MMIO), plus 1 per queue with an
 * unreported overflow: what apn_evq_poll() would return with max unbounded.
 * Returns that count >= 0, or -EIO as apn_evq_poll().
 */
int apn_evq_pending(const struct apn_endpoint *ep);

/* Events the device dropped from the event queue because it was full, in all. */
uint32_t apn_evq_overflows(const struct apn_endpoint *ep);

/* Datagrams the device dropped from the variable-length queue (full), in all. */
uint32_t apn_varq_overflows(const struct apn_endpoint *ep);

/*
 * Asks the device for one interrupt at the next event, or at once if events are
 * already pending: one store to the user page, no system call. One-shot: arm again
 * after each wake-up. Returns 0.
 */
int apn_endpoint_arm(struct apn_endpoint *ep);

/*
 * Waits up to timeout_ms milliseconds (-1: forever, 0: just look) until the
 * endpoint has something for apn_evq_poll(). Does not consume anything.
 *
 * It checks the queue, arms, checks again, and only then sleeps in poll(2); after
 * a wake-up it checks again. The second check is the drain-then-arm race: an event
 * that lands after the first check but before ARM raises no later interrupt for
 * this arming, yet must not be slept through. (The device also fires at once when
 * ARM finds events pending, and the driver's poll() looks at the queue itself, so
 * raw poll(2) users are safe too if they arm after draining.) A wake-up may find
 * nothing (another thread took it): the wait goes on for the remaining time.
 *
 * One loss does not wake a sleeper: datagrams dropped because the variable-length
 * queue is full of records whose APN_EV_VAR events were taken but which were never
 * read or dropped, while the event queue is empty. The next apn_evq_poll() reports
 * them; read or drop (apn_varq_read(ep, ev, NULL, 0)) each record as you take its
 * event and it cannot happen.
 *
 * Returns what apn_evq_pending() counts (> 0), 0 on timeout, -EINTR if a signal
 * arrived, -ENODEV if the device went away, or poll(2)'s -errno.
 */
int apn_endpoint_wait(struct apn_endpoint *ep, int timeout_ms);

/*
 * Reads the datagram an APN_EV_VAR event announced from the variable-length queue
 * into buf (up to len bytes; the record may wrap around the end of the queue) and
 * gives its space, and that of every earlier record, back to the device. No system
 * call. With buf NULL the datagram is dropped unread. Records are consumed in
 * order: read (or drop) them in the order of their events.
 * Returns the datagram's length (ev->info), or
 *   -EINVAL    ev is not an APN_EV_VAR event,
 *   -ENOENT    its record is no longer (or not) in the queue: already consumed,
 *   -EMSGSIZE  len is smaller than the datagram (nothing consumed: retry with a
 *              larger buffer, or NULL to drop it),
 *   -EIO       the record does not match its event (a broken device).
 */
int apn_varq_read(struct apn_endpoint *ep, const struct apn_event *ev, void *buf, size_t len);

/*
 * apn_varq_read() that also reports the sender: its IPv4 address (host order) and
 * UDP port, where not NULL.
 */
int apn_varq_recv(struct apn_endpoint *ep, const struct apn_event *ev, void *buf, size_t len,
		  uint32_t *src_ip, uint16_t *src_port);

/*
 * Trusted endpoints: sends a connection message of `type` (APN_MSG_*) from this
 * endpoint's port to <dest_host, dest_port>, carrying in_index, nonce and info
 * (ERROR: the reason; otherwise 0 by convention). The peer's endpoint on that port
 * receives it as an event (APN_EV_CONNECT ...) with our host and port to reply to.
 * Datagrams are unreliable: retry CONNECT until ACCEPT arrives.
 * No system call: the arguments and the send go through the user page.
 * Returns 0, or
 *   -EINVAL        type is not an APN_MSG_* value (checked first), or the device
 *                  refused an argument (port 0),
 *   -EPERM         the endpoint is not trusted,
 *   -EHOSTUNREACH  no route (MAC and IPv4) to dest_host,
 *   -ENETDOWN      the NIC is disabled,
 *   -EIO           any other device failure.
 */
int apn_endpoint_send_msg(struct apn_endpoint *ep, uint16_t dest_host, uint16_t dest_port,
			  uint8_t type, uint32_t in_index, uint32_t nonce, uint32_t info);

/*
 * Convenience for the two messages that offer an aperture: CONNECT offers ia to
 * <dest_host, dest_port>; ACCEPT answers the CONNECT `req` (decoded with
 * apn_event_msg()) with ia. Same returns as apn_endpoint_send_msg().
 */
struct apn_in_aperture;
int apn_endpoint_connect(struct apn_endpoint *ep, uint16_t dest_host, uint16_t dest_port,
			 const struct apn_in_aperture *ia);
int apn_endpoint_accept(struct apn_endpoint *ep, const struct apn_msg_info *req,
			const struct apn_in_aperture *ia);

/* Orders all earlier stores, then writes the fence register. */
static inline void apn__fence(volatile uint32_t *reg)
{
#if defined(__x86_64__) || defined(__i386__)
	/* drain write-combining buffers: aperture stores reach the device first */
	__asm__ __volatile__("sfence" ::: "memory");
#else
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
	*reg = 0;
}

/*
 * Sends every store gathered on this endpoint's outgoing apertures now, in order,
 * instead of waiting for a full frame or the device's timer. One 32-bit store to
 * the user page; no system call. Does not wait for the data to arrive.
 */
static inline void apn_endpoint_fence(struct apn_endpoint *ep)
{
	apn__fence(ep->fence_reg);
}

/* ---- Registered memory ------------------------------------------------------------ */

struct apn_mr {
	void *addr;
	size_t len;
	uint32_t id;
	struct apn_endpoint *ep;
};

/*
 * Registers (pins) [addr, addr + len) so the device may write it.
 *
 * addr and len must be multiples of the page size (sysconf(_SC_PAGESIZE)) and len
 * nonzero, because the device reaches memory through a list of whole pages: use
 * mmap(2), posix_memalign(3) or aligned_alloc(3). Otherwise -EINVAL.
 *
 * Pinned pages count against RLIMIT_MEMLOCK (ulimit -l) unless the process has
 * CAP_IPC_LOCK: exceeding it fails with -ENOMEM (or -EPERM), which is usually the
 * limit, not a shortage of memory. Raise the limit or register less.
 *
 * fork(2) marks private pages copy-on-write; the first write in the parent then
 * moves it to a new page while the device keeps writing the old, pinned one. A
 * process that forks should madvise(addr, len, MADV_DONTFORK) the region before
 * registering it (the child then does not see the region at all).
 *
 * Register once and reuse: registration is a system call that pins every page.
 * Returns 0, or -EINVAL, -ENOMEM, -EPERM, -EFAULT (unmapped addresses), or another
 * -errno from the driver.
 */
int apn_mr_reg(struct apn_mr *mr, struct apn_endpoint *ep, void *addr, size_t len);

/*
 * Unpins the registration. Returns 0, -EBUSY while an incoming aperture still uses
 * it, or another -errno from the driver.
 */
int apn_mr_dereg(struct apn_mr *mr);

/* ---- Incoming apertures ----------------------------------------------------------- */

/* apn_in_aperture_create() flags */
#define APN_IA_F_NONCE  (1u << 0)  /* use the caller's nonce instead of a random one */

struct apn_in_aperture {
	uint32_t in_index;       /* what the peer names (with our host id and nonce) */
	uint32_t nonce;          /* frames must carry this */
	uint64_t offset;         /* start within the registration */
	uint64_t size;
	uint32_t narrow_start;   /* accepted range [narrow_start, + narrow_len); */
	uint32_t narrow_len;     /* len 0: the whole aperture */
	struct apn_mr *mr;
	struct apn_endpoint *ep;
};

/*
 * Creates an incoming aperture over [offset, offset + size) of registration mr.
 * size must be a power of two >= 64 and the range inside the registration.
 * With APN_IA_F_NONCE in flags, frames must carry `nonce`; otherwise the driver
 * picks a random nonce. On success ia->in_index and ia->nonce tell the peer what to
 * aim its outgoing aperture at (with this device's host id).
 * Returns 0, -EINVAL (size, range or unknown flags; checked before any system
 * call), or -errno from the driver (for example a full incoming table).
 */
int apn_in_aperture_create(struct apn_in_aperture *ia, struct apn_endpoint *ep,
			   struct apn_mr *mr, uint64_t offset, uint64_t size,
			   uint32_t flags, uint32_t nonce);

/*
 * Invalidates the aperture; once this returns the device no longer writes its
 * memory. Returns 0 or -errno from the driver.
 */
int apn_in_aperture_destroy(struct apn_in_aperture *ia);

/*
 * Trusted endpoints: replaces the aperture's nonce. Frames still carrying the old
 * one are dropped from then on (rx_drop_nonce), which is how a reconnect shuts out
 * a stale peer. No system call. Returns 0, or -EPERM (endpoint not trusted),
 * -ENOENT (not this endpoint's aperture), -EIO (device failure).
 */
int apn_in_aperture_set_nonce(struct apn_in_aperture *ia, uint32_t nonce);

/*
 * Trusted endpoints: accepts writes only to [start, start + len) of the aperture
 * (len 0 with start 0: all of it again); others are dropped (rx_drop_bounds). No
 * system call. Returns 0, or -EINVAL (range not inside the aperture, or len 0 with
 * start != 0; checked first), -EPERM, -ENOENT, -EIO as above.
 */
int apn_in_aperture_narrow(struct apn_in_aperture *ia, uint32_t start, uint32_t len);

/* Local address of the aperture's first byte (inside the registered memory). */
static inline void *apn_in_aperture_ptr(const struct apn_in_aperture *ia)
{
	return (char *)ia->mr->addr + ia->offset;
}

/* ---- Outgoing apertures ----------------------------------------------------------- */

struct apn_out_aperture {
	void *ptr;                     /* mapped aperture: stores here are sent */
	size_t size;
	volatile uint32_t *fence_reg;  /* the endpoint's fence register */
	uint32_t out_index;
	uint16_t dest_host;
	uint32_t dest_in_index;
	uint32_t nonce;
	uint64_t mmap_offset;
	struct apn_endpoint *ep;
};

/*
 * Creates an outgoing aperture of `size` bytes aimed at incoming aperture
 * dest_in_index (guarded by `nonce`) of cluster host dest_host, and maps it.
 * size must be a power of two no larger than the device's slot size
 * (apn_device_info().out_slot_size). Nothing is sent until the first store.
 * Returns 0, -EINVAL (size, checked before any system call), mmap(2)'s error, or
 * -errno from the driver (for example no free slot).
 */
int apn_out_aperture_create(struct apn_out_aperture *oa, struct apn_endpoint *ep,
			    uint16_t dest_host, uint32_t dest_in_index, uint32_t nonce,
			    size_t size);

/* Unmaps the aperture and releases its slot. Returns 0 or -errno. */
int apn_out_aperture_destroy(struct apn_out_aperture *oa);

/*
 * Trusted endpoints: re-aims the aperture at incoming aperture dest_in_index
 * (guarded by nonce) of host dest_host, typically from a peer's CONNECT or ACCEPT.
 * Stores gathered so far are sent to the old destination first (a fence). No
 * system call. Returns 0, or -EPERM (endpoint not trusted), -ENOENT (not this
 * endpoint's aperture), -EIO (device failure).
 */
int apn_out_aperture_connect(struct apn_out_aperture *oa, uint16_t dest_host,
			     uint32_t dest_in_index, uint32_t nonce);

/*
 * The mapped aperture: a store to ptr + off (off < size) is written by the remote
 * NIC at offset off of the incoming aperture. This is device memory: store through
 * volatile pointers with naturally aligned 1, 2, 4 or 8-byte stores, in increasing
 * address order to let the device gather them into one frame, and do not read it.
 * memcpy(3) may use instructions or orders that defeat this; use
 * apn_out_aperture_write() to copy buffers.
 */
static inline void *apn_out_aperture_ptr(const struct apn_out_aperture *oa)
{
	return oa->ptr;
}

/*
 * Copies len bytes from src to offset `off` of the aperture with volatile stores
 * in increasing address order: single bytes and a 32-bit store up to 8-byte
 * alignment, 64-bit stores for the aligned body, then a 32-bit store and bytes for
 * the tail. No system call; the data leaves when a frame fills, at the device's
 * timer, or at apn_out_aperture_fence().
 * Returns 0 (also for len 0), or -EINVAL if [off, off + len) is not inside the
 * aperture (nothing is stored then).
 */
int apn_out_aperture_write(struct apn_out_aperture *oa, size_t off,
			   const void *src, size_t len);

/*
 * Sends the stores gathered so far (on every outgoing aperture of the same
 * endpoint) now: a 32-bit store to the endpoint's user page after a store
 * barrier. No system call. Delivery order to one peer follows fence order.
 */
static inline void apn_out_aperture_fence(struct apn_out_aperture *oa)
{
	apn__fence(oa->fence_reg);
}

#ifdef __cplusplus
}
#endif

#endif /* APERTNIC_APERTNIC_H */
