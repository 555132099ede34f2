/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libapertnic: user-level access to the apertnic aperture-mapped NIC.
 *
 * Objects and their lifetime
 *   struct apn_device        an open /dev/apertnicN: queries and administration
 *   struct apn_endpoint      its own open file of the device, bound to one device
 *                            endpoint; owns everything below and the user page
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
 * Hot path: apn_out_aperture_ptr(), apn_out_aperture_write(), apn_out_aperture_fence()
 * and apn_endpoint_fence() make no system calls and do not allocate.
 *
 * Thread safety: create/destroy calls on distinct handles may run concurrently.
 * Stores through different outgoing apertures may come from different threads, but
 * the device gathers only stores that are contiguous with the previous store to the
 * same aperture; interleaving threads on one aperture produces more, smaller frames.
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
 * Administration (CAP_NET_ADMIN). Sets this NIC's cluster address.
 * Returns 0, -EPERM without the capability, or another -errno from the driver.
 */
int apn_device_set_host_id(struct apn_device *dev, uint16_t host_id);

/*
 * Administration (CAP_NET_ADMIN). Routes cluster address `host` to Ethernet
 * address `mac`; mac NULL removes the route.
 * Returns 0, -EPERM without the capability, or another -errno from the driver
 * (a host the device's table cannot hold: -EINVAL).
 */
int apn_device_set_route(struct apn_device *dev, uint16_t host, const uint8_t mac[6]);

/* ---- Endpoint --------------------------------------------------------------------- */

struct apn_endpoint {
	int fd;                        /* this endpoint's own open file of the device */
	uint32_t index;                /* device endpoint (selects the user page) */
	uint16_t port;                 /* port asked for at creation (0: any) */
	void *user_page;               /* mapped user page */
	volatile uint32_t *fence_reg;  /* APN_UREG_FENCE on the user page */
	uint32_t out_slot_size;        /* largest outgoing aperture */
	struct apn_device *dev;
};

/*
 * Creates an endpoint on dev's device: opens the device path again (one endpoint
 * per open file), binds the file to a new endpoint on `port` (0: the driver
 * chooses) and maps the endpoint's user page.
 * Returns 0, or -errno: open(2)'s or mmap(2)'s error, or the driver's (a port
 * already in use or no free endpoint; the exact codes are the driver's).
 */
int apn_endpoint_create(struct apn_endpoint *ep, struct apn_device *dev, uint16_t port);

/*
 * Unmaps the user page and closes the endpoint's file, which releases every memory
 * registration and aperture made through it. Returns 0 or -errno.
 */
int apn_endpoint_destroy(struct apn_endpoint *ep);

/* The endpoint's file descriptor (for poll(2) in later versions). */
static inline int apn_endpoint_fd(const struct apn_endpoint *ep)
{
	return ep->fd;
}

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
