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
 * apn_endpoint_arm(), apn_out_aperture_close() and the trusted-endpoint commands
 * (apn_out_aperture_connect(), apn_in_aperture_set_nonce(), apn_in_aperture_narrow(),
 * apn_endpoint_send_msg()...)
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
	uint32_t caps;           /* APN_DEVICE_CAP_*: what the driver and device support */
};

/* struct apn_device_info caps */
#define APN_DEVICE_CAP_DMA       (1u << 0)  /* DMA queues: apn_dma_put()/apn_dma_get() */
#define APN_DEVICE_CAP_READ      (1u << 1)  /* remote reads: apn_out_aperture_read() */
#define APN_DEVICE_CAP_EVENT_AP  (1u << 2)  /* event apertures: apn_out_aperture_event() */
#define APN_DEVICE_CAP_KERNEL_CM (1u << 3)  /* kernel connection management: untrusted
					     * endpoints dial and listen
					     * (apn_endpoint_kconnect/kaccept()) */

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

/*
 * Connection messages from peers: decode with apn_event_msg(). An untrusted
 * endpoint receives them only after the kernel acted on them, posted with
 * APN_EV_F_POSTED (see apn_endpoint_kconnect()).
 */
#define APN_EV_CONNECT             16
#define APN_EV_ACCEPT              17
/*
 * A peer closed: its CLOSE message, or, with APN_EV_F_APERTURE, a CLOSE segment
 * through the outgoing aperture aimed at one of ours: apn_out_aperture_close(), or
 * the peer's process exited or died (its kernel closes every aperture it had aimed).
 * With APN_EV_F_APERTURE: info = our incoming aperture it named, data = that
 * aperture's nonce | peer's host << 32 (no port); not for apn_event_msg().
 */
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
/* A remote read was answered (or failed): info = bytes landed, data = landing
 * offset | status << 32 (status 0, or the counter id of the reason). */
#define APN_EV_READ_DONE           26
/* Completion queue (apn_cq_poll()): info = status (0 or a counter id),
 * data = cookie | bytes << 32. */
#define APN_EV_PUT_DONE            27
#define APN_EV_GET_DONE            28
/* Made by the library (see apn_evq_poll()): events or datagrams were lost. */
#define APN_EV_OVERFLOW            5

/* struct apn_event flags of the events above */
#define APN_EV_F_POSTED            (1u << 0)  /* posted by the kernel (kernel connection
					     * management), not by the device */
#define APN_EV_F_APERTURE          (1u << 1)  /* APN_EV_CLOSE from a CLOSE segment */

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
	uint32_t rq_size;        /* DMA requests, power of two in [2, 4096]; 0: no DMA queues */
	uint32_t cq_size;        /* completions, power of two in [2, 65536]; 0: rq_size */
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
	struct apn_dma {               /* DMA request and completion queues */
		void *rq;                      /* control block, requests at +64 */
		size_t rq_map_len;
		uint32_t rq_size;              /* requests; 0: no DMA queues */
		uint32_t rq_tail;              /* requests written, free running */
		uint32_t rq_rung;              /* RQ_TAIL as last written (doorbell) */
		uint32_t rq_head;              /* requests retired, as last seen */
		volatile uint32_t *tail_reg;   /* APN_UREG_RQ_TAIL on the user page */
		struct apn_queue cq;           /* completions (read-only mapping) */
	} dma;
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
 * need CAP_NET_ADMIN or the driver's trust_users=1 parameter. Untrusted endpoints
 * leave connection setup to the kernel (apn_endpoint_kconnect()); apn_endpoint_dial()
 * and apn_endpoint_listen() work on both.
 *
 * With attr->rq_size the endpoint also gets DMA queues (seeds 000/001, see "DMA:
 * put and get"): a request queue of rq_size and a completion queue of cq_size.
 *
 * The queues are charged to RLIMIT_MEMLOCK, like registered memory.
 * Returns 0, or -errno:
 *   -EINVAL      unknown flags, or a size out of range or not a power of two, or
 *                cq_size without rq_size (checked before any system call),
 *   -EOPNOTSUPP  rq_size on a device without DMA queues (APN_DEVICE_CAP_DMA),
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
 * Returns that count >= 0, or -EIO as apn_evq_poll(). (Completions are counted
 * apart: apn_cq_pending().)
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
 * endpoint has something for apn_evq_poll() or, with DMA queues, apn_cq_poll().
 * Does not consume anything.
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
 * Returns what apn_evq_pending() and apn_cq_pending() count (> 0), 0 on timeout,
 * -EINTR if a signal arrived, -ENODEV if the device went away, or poll(2)'s -errno.
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
struct apn_out_aperture;
int apn_endpoint_connect(struct apn_endpoint *ep, uint16_t dest_host, uint16_t dest_port,
			 const struct apn_in_aperture *ia);
int apn_endpoint_accept(struct apn_endpoint *ep, const struct apn_msg_info *req,
			const struct apn_in_aperture *ia);

/*
 * Called by apn_endpoint_dial()/apn_endpoint_listen() with each event they take from
 * the queue but do not consume themselves, so that nothing is lost silently.
 */
typedef void apn_event_fn(void *arg, const struct apn_event *ev);

/*
 * Untrusted endpoints (kernel connection management, APN_DEVICE_CAP_KERNEL_CM): the
 * kernel receives their connection messages, answers ALIVE itself, and posts the
 * others onto their event queue once it has acted on them (APN_EV_F_POSTED); it
 * chooses and programs every nonce and destination. One system call per step.
 *
 * apn_endpoint_kconnect() asks the kernel to send CONNECT to <host, port> offering
 * ia, and to aim oa at the acceptor's aperture when the ACCEPT comes back: the
 * endpoint then gets APN_EV_ACCEPT (oa is aimed; decode with apn_event_msg()), or
 * APN_EV_ERROR_MSG if host refused. It does not wait; call it again with the same
 * arguments to retry (datagrams may be lost). oa must not be aimed yet: create it
 * with destination 0, 0, 0. A refused CONNECT, or destroying oa, ends the attempt.
 * Returns 0, or
 *   -EINVAL        the endpoint is trusted (use apn_endpoint_connect()),
 *   -ENOENT        ia or oa is not this endpoint's,
 *   -EBUSY         oa is aimed, or being connected elsewhere,
 *   -EHOSTUNREACH  no route to host, or another -errno from the driver.
 *
 * apn_endpoint_kaccept() takes a CONNECT the kernel holds for the endpoint (one
 * posted as APN_EV_CONNECT): the one from req's host and port if req is not NULL
 * (decoded with apn_event_msg()), else the oldest. The kernel aims oa at the
 * connector's aperture, then answers ACCEPT offering ia. oa's dest_host and
 * dest_in_index are updated (nonce too when req named that CONNECT, else 0: the
 * kernel does not tell it), and *peer (if not NULL) describes the connector.
 * The kernel holds up to 16 CONNECTs per endpoint and answers more with ERROR
 * (reason 105, ENOBUFS); it answers a repeated CONNECT itself.
 * Returns 0, or -EAGAIN (no such CONNECT held), or the errors above.
 */
int apn_endpoint_kconnect(struct apn_endpoint *ep, uint16_t host, uint16_t port,
			  const struct apn_in_aperture *ia, const struct apn_out_aperture *oa);
int apn_endpoint_kaccept(struct apn_endpoint *ep, const struct apn_msg_info *req,
			 const struct apn_in_aperture *ia, struct apn_out_aperture *oa,
			 struct apn_msg_info *peer);

/*
 * The connecting side of seed 004's setup, with retries and a time limit.
 * Trusted endpoints: sends CONNECT offering ia to <host, port> (again after 0.2, 0.4,
 * 0.8 s and then every second: datagrams may be lost), sleeps in apn_endpoint_wait()
 * until the ACCEPT from host arrives, then aims oa (if not NULL) at the aperture it
 * offers with apn_out_aperture_connect() and fills *peer (if not NULL) from it.
 * Untrusted endpoints: the same through the kernel, apn_endpoint_kconnect() with the
 * same retries, until the posted APN_EV_ACCEPT from host (oa, required, is aimed by
 * then; its fields are updated). Other events taken meanwhile go to other(arg, ev)
 * (NULL: dropped).
 * timeout_ms bounds the whole exchange (-1: none).
 * Returns 0, or
 *   -ETIMEDOUT      no ACCEPT in time: nobody listens on that port (its NIC drops the
 *                   CONNECT and tells its OS, APN_EV_NO_PORT), or the host is down,
 *   -ECONNREFUSED   host answered with an ERROR message (*peer filled, info = reason),
 *   -EINTR          a signal interrupted the wait,
 *   -EINVAL         an untrusted endpoint without oa,
 *   or apn_endpoint_send_msg()'s / apn_endpoint_kconnect()'s,
 *   apn_out_aperture_connect()'s or apn_evq_poll()'s error (-EHOSTUNREACH: no route).
 */
int apn_endpoint_dial(struct apn_endpoint *ep, uint16_t host, uint16_t port,
		      const struct apn_in_aperture *ia, struct apn_out_aperture *oa,
		      int timeout_ms, struct apn_msg_info *peer, apn_event_fn *other, void *arg);

/*
 * The listening side. Sleeps until a CONNECT arrives on the endpoint's port, aims oa
 * (if not NULL) at the aperture it offers, answers ACCEPT offering ia and fills
 * *peer (if not NULL). Other events go to other(arg, ev).
 * Trusted endpoints: a CONNECT repeated later by the same peer (our ACCEPT was lost)
 * arrives as an ordinary APN_EV_CONNECT: answer it with apn_endpoint_accept(ep, peer,
 * ia) again. Untrusted endpoints: the CONNECT is the kernel's posted one, taken with
 * apn_endpoint_kaccept() (oa required, created with destination 0, 0, 0); the kernel
 * answers repeats itself.
 * Returns 0, -ETIMEDOUT (no CONNECT within timeout_ms; -1: wait forever), -EINTR,
 * -EINVAL (untrusted without oa), or an error of the calls named (the ACCEPT not
 * sent: -EHOSTUNREACH ...).
 */
int apn_endpoint_listen(struct apn_endpoint *ep, const struct apn_in_aperture *ia,
			struct apn_out_aperture *oa, int timeout_ms, struct apn_msg_info *peer,
			apn_event_fn *other, void *arg);

/* Orders all earlier stores, then writes the fence register. */
static inline void apn__fence(volatile uint32_t *reg)
{
#if defined(__x86_64__)
	/*
	 * sfence drains write-combining buffers: aperture stores reach the device
	 * first. The register store is a one-count `rep stosl`: QEMU's TCG lets
	 * only the last instruction of a translation block touch device memory
	 * without rewinding it, and a string instruction always ends its block.
	 */
	volatile uint32_t *dst = reg;
	unsigned long count = 1;

	__asm__ __volatile__("sfence\n\trep stosl"
			     : "+D"(dst), "+c"(count)
			     : "a"(0)
			     : "memory");
#elif defined(__i386__)
	/* drain write-combining buffers: aperture stores reach the device first */
	__asm__ __volatile__("sfence" ::: "memory");
	*reg = 0;
#else
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	*reg = 0;
#endif
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
 * Creates an incoming event aperture: what a peer stores through its outgoing event
 * aperture aimed at it (apn_out_aperture_event()) arrives as APN_EV_EVENT on this
 * endpoint's event queue (info = offset, data = the value) instead of in memory. It
 * has no memory (ia->mr is NULL: no apn_in_aperture_ptr()); size, a power of two
 * >= 64, bounds the offsets accepted. flags and nonce as apn_in_aperture_create().
 * Destroy it with apn_in_aperture_destroy().
 * Returns 0, -EINVAL (size or flags), or -errno from the driver (-EINVAL from a
 * driver without event apertures: see APN_DEVICE_CAP_EVENT_AP).
 */
int apn_in_aperture_create_event(struct apn_in_aperture *ia, struct apn_endpoint *ep,
				 uint64_t size, uint32_t flags, uint32_t nonce);

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

/*
 * Local address of the aperture's first byte (inside the registered memory). Not for
 * event apertures, which have no memory.
 */
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
	uint32_t flags;                /* APN_OA_F_EVENT for an event aperture */
};

#define APN_OA_F_EVENT  (1u << 0)  /* apn_out_aperture_create_event() made it */

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

/*
 * The same for an outgoing event aperture, aimed at a peer's incoming event aperture
 * (apn_in_aperture_create_event()): each store is sent on its own as an event frame
 * and becomes one APN_EV_EVENT there; use apn_out_aperture_event(). Loads and
 * apn_out_aperture_write() are not for it. oa->flags has APN_OA_F_EVENT.
 * Returns as apn_out_aperture_create() (-EINVAL from a driver without event
 * apertures).
 */
int apn_out_aperture_create_event(struct apn_out_aperture *oa, struct apn_endpoint *ep,
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
 * Orderly close (any endpoint): sends a CLOSE segment through the aperture after the
 * stores gathered on it; the peer's endpoint gets APN_EV_CLOSE with APN_EV_F_APERTURE
 * naming its incoming aperture. The aperture stays aimed and usable; destroy it
 * afterwards. (The kernel does the same for every aimed aperture of a process that
 * exits or dies.) No system call. Returns 0, or -ENOENT (not this endpoint's
 * aperture, or not valid), -EPERM (endpoint not valid), -EHOSTUNREACH (no route to
 * its host), -ENETDOWN (NIC disabled), -EIO (device failure).
 */
int apn_out_aperture_close(struct apn_out_aperture *oa);

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
 * alignment, 64-bit stores for the aligned body (one `rep movsq` on x86-64, which
 * QEMU's TCG runs without rewinding each store), then a 32-bit store and bytes for
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

/*
 * Event apertures: sends `value` as one event frame (a single 8-byte store at offset
 * off, a multiple of 8 below size); the peer's endpoint gets APN_EV_EVENT with info
 * = off and data = value (its NIC refuses it, APN_EV_TX_ERROR, if off is outside its
 * event aperture). Like other stores it leaves at the next fence or the device's
 * timer. No system call. Returns 0, or -EINVAL (not an event aperture, off not a
 * multiple of 8 or not below size; nothing stored).
 */
int apn_out_aperture_event(struct apn_out_aperture *oa, size_t off, uint64_t value);

/*
 * Remote read (seed 004's read request): one load of `size` bytes (1, 2, 4 or 8;
 * off a multiple of size, [off, off + size) inside the aperture) from the aperture
 * makes the device ask the remote NIC for those bytes of the peer's incoming
 * aperture, after the stores gathered before it. The load itself returns nothing
 * useful; the bytes land at the same offset `off` of the endpoint's read-landing
 * aperture (apn_endpoint_set_read_landing()), and APN_EV_READ_DONE on the event
 * queue says when: info = bytes landed, data = off | status << 32 (status 0, or the
 * counter id of the reason it failed: no landing aperture, too many reads at once
 * (the NIC has 64), refused by the remote NIC, timeout). No system call.
 * Returns 0, or -EINVAL (not a data aperture, or a bad size, alignment or range;
 * no load made). Larger reads: apn_dma_get().
 */
int apn_out_aperture_read(struct apn_out_aperture *oa, size_t off, size_t size);

/*
 * Makes ia (one of this endpoint's incoming data apertures) the place where remote
 * reads through this endpoint's outgoing apertures land; NULL: none (loads then fail
 * with APN_EV_READ_DONE). One store to the user page, no system call.
 * Returns 0, or -EINVAL (ia belongs to another endpoint, or is an event aperture).
 */
int apn_endpoint_set_read_landing(struct apn_endpoint *ep, const struct apn_in_aperture *ia);

/* ---- Message queues --------------------------------------------------------------- */
/*
 * A flow-controlled queue of variable-length messages between two processes, made of
 * nothing but apertures and memory (seed 004's shared-memory queue whose pointer
 * updates are written through apertures): each side receives into a ring in its own
 * registered memory, which the peer fills through its outgoing aperture, and sends by
 * storing into the peer's ring through its own outgoing aperture. Both halves of a
 * connection are set up alike; sending and receiving make no system call.
 *
 * Each side's incoming aperture (the memory the peer writes), `size` bytes, a power of
 * two >= 128, little-endian:
 *   [0, 64)     struct apn_mq_ctrl, written by the peer only: its write pointer into
 *               this ring, its read pointer of the ring it receives in, its close flag
 *   [64, size)  the ring, capacity C = size - 64 bytes
 * A record is a struct apn_mq_hdr (payload length, sequence number) and the payload,
 * padded to 8 bytes; a payload may wrap around the end of the ring. Pointers count
 * bytes modulo 2C (they lie in [0, 2C): a full ring differs from an empty one); the
 * ring offset is the pointer modulo C.
 *
 * Flow control, never loss: the sender stores a record only where the peer's published
 * read pointer leaves room, otherwise apn_mq_send() returns -EAGAIN and stores
 * nothing. The receiver publishes its read pointer lazily: when it has consumed half a
 * ring since it last did, and with each apn_mq_flush() (so each apn_mq_send()) of its
 * own, one 8-byte store carrying both pointers. A one-way stream thus costs one pointer
 * store per half ring, a request/response exchange none beyond its messages. It is
 * also why a payload is at most C/2 - 8 bytes (apn_mq_max_msg()): a receiver that has
 * drained its ring has published all but less than C/2, so such a record always fits
 * eventually.
 *
 * Order: records, then the write pointer, then a fence, through one aperture; the
 * device keeps that order, so a receiver that sees the pointer sees the records. Both
 * sides check what the peer wrote (pointers in range, length and sequence number of
 * each record) and fail with -EBADMSG rather than read outside the ring.
 *
 * Failures: a peer that exits (or is killed) loses its apertures; the next stores
 * toward it are refused by its NIC, which comes back as APN_EV_TX_ERROR on our
 * endpoint: pass events to apn_mq_handle_event(), which turns that into -ECONNRESET
 * for this queue. A peer that dies while we only receive is silent (apn_mq_recv() goes
 * on returning -EAGAIN): after a while without progress call apn_mq_flush(), whose
 * store is such a probe. A peer's apn_mq_close() is seen as -EPIPE once its last
 * message has been received.
 *
 * One thread at a time per queue (send and receive share state). Both sides must use
 * apertures of one size: the connection messages do not carry it, and stores past the
 * end of a smaller peer aperture are refused (APN_EV_TX_ERROR, rx_drop_bounds).
 */

#define APN_MQ_CTRL_SIZE  64
#define APN_MQ_HDR_SIZE   8
#define APN_MQ_MIN_SIZE   128
#define APN_MQ_MAX_SIZE   (1u << 30)
#define APN_MQ_FIN        0x216e6966u   /* "fin!": apn_mq_ctrl.fin of a closed peer */

/* The control block at the start of each side's aperture (written by the peer). */
struct apn_mq_ctrl {
	uint32_t wrptr;          /* end of the records the peer wrote into this ring */
	uint32_t rdptr;          /* how far the peer consumed the ring it receives in */
	uint32_t fin;            /* APN_MQ_FIN once the peer closed */
	uint32_t reserved[13];
};

/* A record's header in the ring. */
struct apn_mq_hdr {
	uint32_t len;            /* payload bytes */
	uint32_t seq;            /* the sender's message number, from 0 (wraps) */
};

struct apn_mq {
	/* receiving: our memory, written by the peer */
	unsigned char *rx;             /* control block; the ring follows */
	uint32_t rx_cap;               /* ring bytes */
	uint32_t rx_rd;                /* consumed, in [0, 2 * rx_cap) */
	uint32_t rx_published;         /* read pointer as last stored to the peer */
	uint32_t rx_seq;               /* next sequence number expected */
	/* sending: the peer's memory, through the aperture */
	void *tx;                      /* the peer's control block (device memory) */
	uint32_t tx_cap;
	uint32_t tx_wr;                /* produced, in [0, 2 * tx_cap) */
	uint32_t tx_published;         /* write pointer as last stored to the peer */
	uint32_t tx_seq;
	volatile uint32_t *fence_reg;  /* NULL: no fence (plain memory) */
	uint32_t out_index;            /* our outgoing aperture, ~0 if none */
	uint32_t in_index;             /* our incoming aperture, ~0 if none */
	int closed;                    /* apn_mq_close() was called */
	int error;                     /* sticky: -EBADMSG or -ECONNRESET, else 0 */
};

/*
 * Sets up one side of a queue: receive into incoming aperture ia (our memory, the
 * peer's outgoing aperture aims at it), send through outgoing aperture oa (aimed, now
 * or later with apn_out_aperture_connect(), at the peer's incoming aperture of the
 * same size). Zeroes ia's control block: call it before the peer learns of ia (before
 * apn_endpoint_connect()/apn_endpoint_accept()), since the peer may write at once.
 * Neither aperture is used before the first call that sends or receives.
 * Returns 0, or -EINVAL (a size not a power of two in [APN_MQ_MIN_SIZE,
 * APN_MQ_MAX_SIZE], or an aperture without memory or mapping).
 */
int apn_mq_init(struct apn_mq *mq, const struct apn_in_aperture *ia,
		struct apn_out_aperture *oa);

/*
 * The same on plain pointers: local (our memory, local_size bytes) and remote (what
 * our stores reach, remote_size bytes; written only, with ordered volatile stores),
 * fence_reg written after each publication (NULL: none). Sizes as apn_mq_init(),
 * both pointers 8-byte aligned. For tests and for queues over other transports: two
 * halves whose remote is the other's local form a queue in one process.
 * Returns 0 or -EINVAL.
 */
int apn_mq_init_mem(struct apn_mq *mq, void *local, size_t local_size,
		    void *remote, size_t remote_size, volatile uint32_t *fence_reg);

/* The largest payload apn_mq_send() takes: half the peer's ring less a header. */
static inline size_t apn_mq_max_msg(const struct apn_mq *mq)
{
	return mq->tx_cap / 2 - APN_MQ_HDR_SIZE;
}

/*
 * Sends one message of len bytes (0 allowed): stores the record into the peer's ring,
 * then the write pointer (and our read pointer) into its control block, then fences.
 * No system call. Returns 0, or
 *   -EAGAIN     not enough room in the peer's ring now (flow control: nothing was
 *               stored; retry after the peer consumed, receiving meanwhile),
 *   -EMSGSIZE   len > apn_mq_max_msg(),
 *   -EPIPE      the queue was closed, by us or by the peer,
 *   -EBADMSG    the peer's read pointer is out of range (a broken peer; sticky),
 *   -ECONNRESET the queue failed (apn_mq_handle_event(); sticky).
 */
int apn_mq_send(struct apn_mq *mq, const void *buf, size_t len);

/*
 * apn_mq_send() without publishing: the record is stored but the peer does not see it
 * until apn_mq_flush() (or the next apn_mq_send()). Batches messages into fewer
 * frames. Same returns as apn_mq_send().
 */
int apn_mq_write(struct apn_mq *mq, const void *buf, size_t len);

/*
 * Publishes both pointers now (one 8-byte store into the peer's control block) and
 * fences: makes apn_mq_write()'s records visible, returns our consumption to the
 * peer, and probes a peer that may be gone (see above). No system call.
 * Returns 0, or the sticky error (-EBADMSG, -ECONNRESET); after apn_mq_close(),
 * -EPIPE without storing anything.
 */
int apn_mq_flush(struct apn_mq *mq);

/*
 * Receives the oldest message into buf (up to maxlen bytes; buf NULL drops it unread),
 * and publishes our read pointer when half a ring has been consumed since the last
 * time (a store and a fence). No system call.
 * Returns the message's length (>= 0), or
 *   -EAGAIN     no message (yet),
 *   -EMSGSIZE   maxlen is smaller than the message (nothing consumed: retry with a
 *               larger buffer, or NULL to drop it),
 *   -EPIPE      the peer closed and every message it sent has been received,
 *   -EBADMSG    the peer's write pointer or a record header is inconsistent (a broken
 *               peer or lost frames; sticky),
 *   -ECONNRESET the queue failed (apn_mq_handle_event(); sticky).
 */
int apn_mq_recv(struct apn_mq *mq, void *buf, size_t maxlen);

/*
 * Closes our side: publishes both pointers and APN_MQ_FIN to the peer and fences. The
 * peer receives what we sent, then -EPIPE; our apn_mq_send() returns -EPIPE from now
 * on, apn_mq_recv() still drains what arrived. Closing twice is harmless. The
 * apertures are the caller's to destroy afterwards. Returns 0, or the sticky error
 * (nothing stored then).
 */
int apn_mq_close(struct apn_mq *mq);

/*
 * Looks at an event taken from the endpoint's queue (apn_evq_poll()) for this queue:
 *   APN_EV_TX_ERROR for our outgoing aperture: the peer's NIC refused our stores (the
 *     peer exited, or re-keyed its aperture): the queue fails with -ECONNRESET from
 *     now on; returns -ECONNRESET;
 *   APN_EV_RX_DROP for our incoming aperture: a store toward our ring was refused
 *     (a stale or misdirected peer); our ring is unchanged; returns 1;
 *   anything else: not this queue's; returns 0.
 */
int apn_mq_handle_event(struct apn_mq *mq, const struct apn_event *ev);

/* ---- DMA: put and get (seeds 000/001) --------------------------------------------- */
/*
 * An endpoint created with attr.rq_size has a DMA channel: a request queue the
 * process fills and the device works through, and a completion queue, both mapped,
 * so that posting, ringing and reaping make no system call. A request moves bytes
 * between one of the endpoint's incoming data apertures (local memory) and the
 * memory behind one of its outgoing apertures (remote): PUT sends [local_off, +len)
 * to remote_off, GET reads the remote range into the local one; [remote_off, +len)
 * must lie inside the outgoing aperture and [local_off, +len) inside the incoming
 * one, len <= APN_DMA_MAX_LEN.
 *
 * Requests start and retire in order and each gets exactly one completion, in
 * order, on the completion queue: APN_EV_PUT_DONE or APN_EV_GET_DONE with info =
 * status (0, or the counter id of the reason it failed) and data = cookie | bytes
 * << 32 (bytes sent, or landed). A request's slot is reusable once the device has
 * retired it (its RQ_HEAD mirror passed it). Outstanding requests (posted, their
 * completion not yet taken by apn_cq_poll()) are charged against the completion
 * queue's capacity, as RIO does: the completion queue cannot overflow, and posting
 * fails with -EAGAIN instead.
 */
#define APN_DMA_PUT      1          /* = APN_REQ_PUT */
#define APN_DMA_GET      2          /* = APN_REQ_GET */
#define APN_DMA_MAX_LEN  (1u << 24)

/*
 * Writes one request into the request queue (not yet visible to the device: ring
 * apn_dma_doorbell()). op is APN_DMA_PUT or APN_DMA_GET; cookie comes back in the
 * completion. No system call.
 * Returns 0, or
 *   -EAGAIN      the request queue is full (the device has not retired enough), or
 *                as many requests are outstanding as the completion queue holds:
 *                reap completions (apn_cq_poll()) and retry,
 *   -EINVAL      bad op, len > APN_DMA_MAX_LEN, a range outside its aperture, an
 *                aperture of another endpoint, or not a data aperture,
 *   -EOPNOTSUPP  the endpoint has no DMA queues (created without rq_size),
 *   -EIO         the device's retired-requests mirror is inconsistent (broken).
 */
int apn_dma_post(struct apn_endpoint *ep, int op, const struct apn_out_aperture *oa,
		 uint32_t remote_off, const struct apn_in_aperture *ia, uint32_t local_off,
		 uint32_t len, uint32_t cookie);

/* apn_dma_post() of a PUT, then apn_dma_doorbell(). Same returns. */
int apn_dma_put(struct apn_endpoint *ep, const struct apn_out_aperture *oa,
		uint32_t remote_off, const struct apn_in_aperture *ia, uint32_t local_off,
		uint32_t len, uint32_t cookie);

/* apn_dma_post() of a GET, then apn_dma_doorbell(). Same returns. */
int apn_dma_get(struct apn_endpoint *ep, const struct apn_out_aperture *oa,
		uint32_t remote_off, const struct apn_in_aperture *ia, uint32_t local_off,
		uint32_t len, uint32_t cookie);

/*
 * Hands every request posted since the last doorbell to the device: one store of
 * the tail to the user page (APN_UREG_RQ_TAIL), none if there is nothing new.
 * Requests posted before it are complete in memory first. No system call.
 * Returns the number of requests handed over (>= 0), or -EOPNOTSUPP (no DMA queues).
 */
int apn_dma_doorbell(struct apn_endpoint *ep);

/*
 * Requests posted whose completion apn_cq_poll() has not returned yet (0 without
 * DMA queues). No system call.
 */
uint32_t apn_dma_outstanding(const struct apn_endpoint *ep);

/*
 * Copies up to max completions from the completion queue into evs[], oldest first,
 * and gives their slots back (one store to the user page when any were taken). No
 * system call. Returns the number copied (0 .. max), or -EINVAL (max < 0, or evs NULL
 * with max > 0), -EIO (the device's pointer is more than a queue ahead: broken),
 * -EOPNOTSUPP (no DMA queues).
 */
int apn_cq_poll(struct apn_endpoint *ep, struct apn_event *evs, int max);

/* Completions waiting (no system call); 0 without DMA queues, -EIO as apn_cq_poll(). */
int apn_cq_pending(const struct apn_endpoint *ep);

/* A completion's cookie, and the bytes it moved. */
static inline uint32_t apn_cq_cookie(const struct apn_event *ev)
{
	return (uint32_t)ev->data;
}

static inline uint32_t apn_cq_bytes(const struct apn_event *ev)
{
	return (uint32_t)(ev->data >> 32);
}

/* ---- Kernel traffic tunnel (seed 002) --------------------------------------------- */
/*
 * A process that owns an endpoint may become the path of the kernel's own traffic
 * on the NIC's network interface (apnN): the frames the kernel's stack sends arrive
 * in a ring mapped into the process (apn_tunnel_peek()/apn_tunnel_recv()), and the
 * process hands frames in through a second ring (apn_tunnel_send()), each for the
 * kernel's stack (received on apnN) or, with APN_TUNNEL_F_WIRE, for the network (the
 * driver sends it through the device as the stack would have). Frames from the
 * network for the kernel keep arriving directly. The driver takes its traffic back
 * (direct access: IP keeps working) when the endpoint's file is closed (the process
 * exits or is killed), on apn_tunnel_detach(), on a bad value in the rings, or when
 * the process has not called apn_tunnel_kick() for watchdog_ms: kick at least every
 * watchdog_ms / 3, even when idle. Frames still in the to-user ring then go out
 * directly. Counters: /sys/class/net/apnN/device/tunnel/ and `ethtool -S apnN`.
 *
 * Peek, recv, consume and send make no system call; apn_tunnel_kick() is one ioctl
 * and the driver takes the sent frames only then. One thread per tunnel.
 */
#define APN_DEVICE_CAP_TUNNEL  (1u << 4)  /* struct apn_device_info caps: tunnels */
#define APN_TUNNEL_F_WIRE      (1u << 0)  /* apn_tunnel_send(): to the network */

/* Tunnel attributes; zero fields (or NULL attributes) take the defaults. */
struct apn_tunnel_attr {
	uint32_t slots;          /* frames per ring, power of two in [16, 1024]; 0: 256 */
	uint32_t watchdog_ms;    /* [10, 60000]; 0: 1000 */
};

struct apn_tunnel {
	int fd;                  /* the endpoint's file */
	void *to_user;           /* mapped ring: the kernel's frames */
	void *to_kernel;         /* mapped ring: frames for the kernel */
	size_t map_len;          /* of each */
	uint32_t slots;          /* per ring */
	uint32_t slot_bytes;
	uint32_t max_frame;      /* largest frame either way, Ethernet header included */
	uint32_t watchdog_ms;
	uint32_t rx_tail;        /* to-user frames consumed, free running */
	uint32_t tx_head;        /* to-kernel frames written, free running */
	struct apn_endpoint *ep;
};

/*
 * Attaches ep's process as the tunnel of the NIC's network interface and maps the
 * two rings. One tunnel per NIC; needs CAP_NET_ADMIN. Returns 0, or -errno:
 *   -EINVAL      an attribute out of range,
 *   -EPERM       no CAP_NET_ADMIN,
 *   -EBUSY       the NIC has a tunnel already,
 *   -EOPNOTSUPP  the NIC has no network interface (APN_DEVICE_CAP_TUNNEL unset),
 *   -ENOMEM, or mmap(2)'s error.
 */
int apn_tunnel_attach(struct apn_tunnel *t, struct apn_endpoint *ep,
		      const struct apn_tunnel_attr *attr);

/*
 * Kicks (so the driver takes what was sent), gives the traffic back to the driver and
 * unmaps the rings; the handle is unusable afterwards, whatever it returns. Returns 0,
 * -ENOTCONN if the driver had taken the traffic back already, or another -errno.
 */
int apn_tunnel_detach(struct apn_tunnel *t);

/*
 * Heartbeat and doorbell (one ioctl): the driver takes the frames sent since the last
 * kick, restarts the interface's queue if the to-user ring had filled, and resets its
 * watchdog. A frame for the network that does not fit the device's ring now stays
 * for the next kick (apn_tunnel_send_room() tells). Returns 0, or
 *   -ENOTCONN  the driver has taken the traffic back (watchdog, or detached),
 *   -EPROTO    it did so now: a bad value in the rings (logged by the driver).
 */
int apn_tunnel_kick(struct apn_tunnel *t);

/* Frames from the kernel waiting in the to-user ring (no system call), or -EIO. */
int apn_tunnel_pending(const struct apn_tunnel *t);

/*
 * Zero copy: points *frame at the next frame from the kernel, in the ring (valid
 * until apn_tunnel_consume()). Returns its length (Ethernet header included),
 * -EAGAIN if there is none, -EIO if the ring is inconsistent.
 */
int apn_tunnel_peek(struct apn_tunnel *t, const void **frame);

/* Gives the peeked frame's slot back to the driver. Returns 0 or -EAGAIN (none). */
int apn_tunnel_consume(struct apn_tunnel *t);

/*
 * Copies the next frame from the kernel into buf and consumes it. Returns its length,
 * -EAGAIN (none), -EMSGSIZE (longer than len: left in the ring) or -EIO.
 */
int apn_tunnel_recv(struct apn_tunnel *t, void *buf, size_t len);

/*
 * Puts a frame (Ethernet header included) into the to-kernel ring: for the kernel's
 * stack, or with APN_TUNNEL_F_WIRE for the network. Taken at the next kick. Returns 0,
 * -EAGAIN (the ring is full: kick and retry), -EMSGSIZE (shorter than an Ethernet
 * header or longer than max_frame), -EINVAL (unknown flags) or -EIO.
 */
int apn_tunnel_send(struct apn_tunnel *t, const void *frame, size_t len, unsigned flags);

/* Free slots in the to-kernel ring (no system call), or -EIO. */
int apn_tunnel_send_room(const struct apn_tunnel *t);

/*
 * Sleeps in poll(2) until frames from the kernel wait or timeout_ms passes (-1:
 * forever); it also returns early when the endpoint's event queue has events. Returns
 * the frames waiting (>= 0), -ENODEV (device gone) or another -errno.
 */
int apn_tunnel_wait(struct apn_tunnel *t, int timeout_ms);

/* The endpoint's file descriptor: POLLIN while frames from the kernel wait. */
static inline int apn_tunnel_fd(const struct apn_tunnel *t)
{
	return t->fd;
}

#ifdef __cplusplus
}
#endif

#endif /* APERTNIC_APERTNIC_H */
