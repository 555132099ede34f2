// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * apn-abi-test: end-to-end test of the apertnic driver's character device ABI
 * (guest-driver/uapi/apertnic.h), talking to the driver directly, not through
 * libapertnic. Needs one guest with two apertnic NICs wired to each other
 * (/dev/apertnic0 and /dev/apertnic1; scripts/testbed --nics 2), run as root.
 *
 * What it pins:
 *   - GET_INFO (ABI version, endpoint ~0 until CREATE_ENDPOINT, IPv4 address,
 *     port, trust), SET_HOST_ID with an IPv4 address, SET_ROUTE with one
 *     (host > 255: EINVAL);
 *   - CREATE_ENDPOINT: sizes validated (EINVAL), defaults reported, ports from
 *     the ephemeral range when 0, EADDRINUSE for a port taken on the same NIC
 *     (not on the other), a port freed by close, trust granted to root;
 *   - the event queue and variable-length queue mmap()s: accepted with their
 *     page-rounded length (or a part), refused past it, at their end, before
 *     CREATE_ENDPOINT and MAP_PRIVATE; the event queue starts empty;
 *   - poll(): EPOLLERR without an endpoint, not readable while empty, readable
 *     after an armed endpoint's event (a connection message NIC 0 sends to NIC 1,
 *     through the interrupt path), not readable once the event is consumed;
 *     EPOLLHUP after unbind;
 *   - user-page commands refused (APN_CMD_EPERM) for an untrusted endpoint;
 *   - kernel connection management (untrusted endpoints): a CLOSE message is
 *     posted by the kernel (APN_EV_F_POSTED), an ALIVE answered by it
 *     (ALIVEACK); APN_IOC_CONNECT/ACCEPT's errnos (EINVAL without an endpoint,
 *     on a trusted one, reserved fields or unknown flags; ENOENT for another
 *     file's apertures; EBUSY for an aimed aperture or one being connected
 *     elsewhere; EAGAIN with no CONNECT held), and one connection set up by
 *     the two kernels (CONNECT posted once despite a retry, ACCEPT aims the
 *     connector's aperture and is posted there); a repeated CONNECT for an
 *     accepted connection gets its ACCEPT again with the nonce first offered,
 *     and none once the acceptor has replaced that aperture by a new one at
 *     the same index; with CONNECTs pending to two ports of one host, the
 *     ACCEPT from the second port aims the second CONNECT's aperture;
 *   - bytes stored through an outgoing aperture of NIC 0 and fenced through the
 *     user page arrive, exactly and only there, in the memory NIC 1's incoming
 *     aperture is pinned on;
 *   - every expected errno: EBADFD (no endpoint yet), EBUSY (second endpoint,
 *     DEREG_MR while an aperture uses it), EINVAL (unaligned MR, bad aperture
 *     sizes, bad index, route host), ENOENT (unknown MR, another file's
 *     apertures, double DEREG_MR), ENOSPC (outgoing table full), ENOTTY
 *     (unknown ioctl), ENODEV (after the device is unbound), and as a non-root
 *     user EPERM (SET_ROUTE, a TRUSTED endpoint) and ENOMEM when pinning or an
 *     endpoint's queues exceed RLIMIT_MEMLOCK;
 *   - mmap refusals with EINVAL: user page before an endpoint or longer than a
 *     page, an aperture mapping too long, at another slot, through another file,
 *     at an unknown offset, or MAP_PRIVATE;
 *   - SIGBUS on touching an outgoing aperture's mapping after DESTROY_OUT_APERTURE
 *     and after the device is unbound, and on touching an event queue mapping
 *     after the device is unbound;
 *   - closing the file frees its endpoint and its outgoing slots.
 * It unbinds NIC 0 from the driver near the end (writes its PCI address to
 * /sys/bus/pci/drivers/apertnic/unbind); reloading the module binds it again.
 *
 * Output is TAP-like: "ok N - what" or "not ok N - what" per check, "# ..." for
 * diagnostics, then "1..N" and "APN-ABI passed=N failed=M". Exit status 0 only if
 * every check passed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "apertnic.h"
#include "apertnic_hw.h"

#define NOBODY 65534
#define PAGE 4096
#define PAGE_ALIGN(n) (((n) + PAGE - 1) & ~(size_t)(PAGE - 1))
/* what CREATE_ENDPOINT's default sizes map to */
#define EVQ_LEN  PAGE_ALIGN(APN_QUEUE_DATA_OFFSET + 16 * APN_EVQ_DEFAULT_EVENTS)
#define VARQ_LEN PAGE_ALIGN(APN_QUEUE_DATA_OFFSET + APN_VARQ_DEFAULT_BYTES)
#define IP_NIC0  0x0a000001u   /* 10.0.0.1 */
#define IP_NIC1  0x0a000002u

static int passed, failed;

static void diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

/* One check: prints "ok N - what" or "not ok N - what"; returns ok. */
static bool check(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d - ", ok ? "" : "not ", passed + failed + 1);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (ok)
		passed++;
	else
		failed++;
	return ok;
}

/* CALL must return 0. */
#define EXPECT_OK(what, call)                                                         \
	do {                                                                           \
		errno = 0;                                                             \
		long r_ = (call);                                                      \
		int e_ = errno;                                                        \
		if (!check(r_ == 0, "%s", what))                                       \
			diag("%s returned %ld, errno %d (%s)", #call, r_, e_, strerror(e_)); \
	} while (0)

/* CALL must return -1 with errno ERR exactly. */
#define EXPECT_ERR(err, what, call)                                                   \
	do {                                                                           \
		errno = 0;                                                             \
		long r_ = (call);                                                      \
		int e_ = errno;                                                        \
		if (!check(r_ == -1 && e_ == (err), "%s: %s", what, #err))             \
			diag("%s returned %ld, errno %d (%s); want -1, errno %d (%s)",  \
			     #call, r_, e_, strerror(e_), (err), strerror(err));       \
	} while (0)

/* mmap() must fail with EINVAL; a mapping it makes anyway is undone. */
static void expect_mmap_einval(const char *what, size_t len, int flags, int fd, off_t off)
{
	void *p;
	int e;

	errno = 0;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, fd, off);
	e = errno;
	if (!check(p == MAP_FAILED && e == EINVAL, "mmap refused, %s: EINVAL", what))
		diag("mmap(len %#zx, offset %#llx) returned %p, errno %d (%s)", len,
		     (unsigned long long)off, p, e, strerror(e));
	if (p != MAP_FAILED)
		munmap(p, len);
}

/* poll() on fd for `ms`: the revents, or -1 with errno if poll failed. */
static int poll_events(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int r = poll(&pfd, 1, ms);

	return r < 0 ? -1 : pfd.revents;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

/* A number from a sysfs file, or -1. */
static long sysfs_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static uint32_t ureg_read(const uint8_t *up, unsigned int off)
{
	return *(const volatile uint32_t *)(up + off);
}

static void ureg_write(uint8_t *up, unsigned int off, uint32_t v)
{
	*(volatile uint32_t *)(up + off) = v;
}

/*
 * Touches *p in a child process. Returns the signal that killed the child, 0 if
 * the store completed, -1 if the child could not run.
 */
static int touch_in_child(void *p)
{
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		*(volatile uint64_t *)p = 1;
		_exit(0);
	}
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	if (WIFSIGNALED(st))
		return WTERMSIG(st);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* What the unprivileged child saw: return values and errnos of its calls. */
struct nonroot_result {
	int drop_err;            /* 0, or errno of the failed privilege drop */
	uid_t uid;               /* real uid after the drop */
	int route_r, route_errno;
	int big_r, big_errno;
	int small_r, small_errno;
	int trusted_r, trusted_errno;     /* CREATE_ENDPOINT TRUSTED on a new file */
	int bigq_r, bigq_errno;           /* default queues: over RLIMIT_MEMLOCK */
	int smallq_r, smallq_errno;       /* smallest queues: within it */
	int aimed_r, aimed_errno;         /* untrusted: an out aperture with a destination */
	int unaimed_r, unaimed_errno;     /* untrusted: an unaimed one */
	int nonce_r, nonce_errno;         /* untrusted: an in aperture with its own nonce */
};

#define MEMLOCK_LIMIT 65536      /* RLIMIT_MEMLOCK of the unprivileged child */

/* In a child: drop to nobody with a 64 KiB RLIMIT_MEMLOCK and try fd's ioctls. */
static void nonroot_child(int fd, int out)
{
	struct nonroot_result res = { 0 };
	struct rlimit rl = { MEMLOCK_LIMIT, MEMLOCK_LIMIT };
	struct apn_route rt = { .host = 5 };
	struct apn_mr_reg mr = { 0 };
	struct apn_endpoint_create ep = { 0 };
	void *buf;
	int nfd;

	res.route_r = res.big_r = res.small_r = INT_MIN;
	res.trusted_r = res.bigq_r = res.smallq_r = INT_MIN;
	res.aimed_r = res.unaimed_r = res.nonce_r = INT_MIN;
	if (setrlimit(RLIMIT_MEMLOCK, &rl) || setgroups(0, NULL) ||
	    setresgid(NOBODY, NOBODY, NOBODY) || setresuid(NOBODY, NOBODY, NOBODY)) {
		res.drop_err = errno ? errno : EPERM;
		goto out;
	}
	res.uid = getuid();

	errno = 0;
	res.route_r = ioctl(fd, APN_IOC_SET_ROUTE, &rt);
	res.route_errno = errno;

	buf = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		res.drop_err = errno;
		goto out;
	}
	mr.addr = (uintptr_t)buf;
	mr.len = 1 << 20;
	errno = 0;
	res.big_r = ioctl(fd, APN_IOC_REG_MR, &mr);
	res.big_errno = errno;

	mr.len = 16384;
	errno = 0;
	res.small_r = ioctl(fd, APN_IOC_REG_MR, &mr);
	res.small_errno = errno;

	nfd = open("/dev/apertnic1", O_RDWR);
	ep.flags = APN_ENDPOINT_TRUSTED;
	errno = 0;
	res.trusted_r = ioctl(nfd, APN_IOC_CREATE_ENDPOINT, &ep);
	res.trusted_errno = errno;
	/* 5 + 17 pages of queues on top of the 4 pinned above: over 16 pages */
	ep.flags = 0;
	errno = 0;
	res.bigq_r = ioctl(nfd, APN_IOC_CREATE_ENDPOINT, &ep);
	res.bigq_errno = errno;
	ep.evq_size = APN_EVQ_MIN_EVENTS;
	ep.varq_size = APN_VARQ_MIN_BYTES;
	errno = 0;
	res.smallq_r = ioctl(nfd, APN_IOC_CREATE_ENDPOINT, &ep);
	res.smallq_errno = errno;
	if (res.smallq_r == 0) {
		/* untrusted, no CAP_NET_ADMIN: no user-programmable bits */
		struct apn_out_aperture_create oc = { .dest_host = 2, .dest_in_index = 1,
						      .nonce = 0x1234, .size = 4096 };
		struct apn_in_aperture_create ic = { .flags = APN_IN_APERTURE_NONCE_GIVEN,
						     .size = 4096, .nonce = 0x1234 };
		struct apn_mr_reg nmr = { .addr = (uintptr_t)buf + 65536, .len = 4096 };

		errno = 0;
		res.aimed_r = ioctl(nfd, APN_IOC_CREATE_OUT_APERTURE, &oc);
		res.aimed_errno = errno;
		memset(&oc, 0, sizeof(oc));
		oc.size = 4096;
		errno = 0;
		res.unaimed_r = ioctl(nfd, APN_IOC_CREATE_OUT_APERTURE, &oc);
		res.unaimed_errno = errno;
		errno = 0;
		res.nonce_r = ioctl(nfd, APN_IOC_REG_MR, &nmr);
		if (res.nonce_r == 0) {
			ic.mr_id = nmr.mr_id;
			res.nonce_r = ioctl(nfd, APN_IOC_CREATE_IN_APERTURE, &ic);
		}
		res.nonce_errno = errno;
	}
	close(nfd);
out:
	if (write(out, &res, sizeof(res)) != sizeof(res))
		_exit(2);
	_exit(0);
}

static void nonroot_checks(int fd)
{
	struct nonroot_result res;
	int pfd[2], st = 0;
	bool got = false;
	pid_t pid;

	if (pipe(pfd) == 0) {
		pid = fork();
		if (pid == 0) {
			close(pfd[0]);
			nonroot_child(fd, pfd[1]);
		}
		close(pfd[1]);
		if (pid > 0) {
			got = read(pfd[0], &res, sizeof(res)) == sizeof(res);
			waitpid(pid, &st, 0);
		}
		close(pfd[0]);
	}
	if (!check(got && WIFEXITED(st) && WEXITSTATUS(st) == 0 && res.drop_err == 0 &&
		   res.uid == NOBODY, "drop to uid %d with RLIMIT_MEMLOCK %d in a child",
		   NOBODY, MEMLOCK_LIMIT)) {
		diag("child status %#x, result %s, drop errno %d (%s)", st,
		     got ? "read" : "missing", got ? res.drop_err : 0,
		     strerror(got ? res.drop_err : 0));
		if (!got)
			memset(&res, 0, sizeof(res));
	}
	if (!check(res.route_r == -1 && res.route_errno == EPERM, "SET_ROUTE as non-root: EPERM"))
		diag("ioctl returned %d, errno %d (%s)", res.route_r, res.route_errno,
		     strerror(res.route_errno));
	if (!check(res.big_r == -1 && res.big_errno == ENOMEM,
		   "REG_MR of 1 MiB over a 64 KiB RLIMIT_MEMLOCK as non-root: ENOMEM"))
		diag("ioctl returned %d, errno %d (%s)", res.big_r, res.big_errno,
		     strerror(res.big_errno));
	if (!check(res.small_r == 0, "REG_MR of 16 KiB within RLIMIT_MEMLOCK as non-root"))
		diag("ioctl returned %d, errno %d (%s)", res.small_r, res.small_errno,
		     strerror(res.small_errno));
	if (!check(res.trusted_r == -1 && res.trusted_errno == EPERM,
		   "CREATE_ENDPOINT TRUSTED as non-root (trust_users=0): EPERM"))
		diag("ioctl returned %d, errno %d (%s)", res.trusted_r, res.trusted_errno,
		     strerror(res.trusted_errno));
	if (!check(res.bigq_r == -1 && res.bigq_errno == ENOMEM,
		   "CREATE_ENDPOINT with 88 KiB of queues over a 64 KiB RLIMIT_MEMLOCK: ENOMEM"))
		diag("ioctl returned %d, errno %d (%s)", res.bigq_r, res.bigq_errno,
		     strerror(res.bigq_errno));
	if (!check(res.smallq_r == 0, "CREATE_ENDPOINT with the smallest queues as non-root"))
		diag("ioctl returned %d, errno %d (%s)", res.smallq_r, res.smallq_errno,
		     strerror(res.smallq_errno));
	if (!check(res.aimed_r == -1 && res.aimed_errno == EPERM,
		   "untrusted non-root: CREATE_OUT_APERTURE with a destination and nonce: EPERM"))
		diag("ioctl returned %d, errno %d (%s)", res.aimed_r, res.aimed_errno,
		     strerror(res.aimed_errno));
	if (!check(res.unaimed_r == 0, "untrusted non-root: an unaimed CREATE_OUT_APERTURE works"))
		diag("ioctl returned %d, errno %d (%s)", res.unaimed_r, res.unaimed_errno,
		     strerror(res.unaimed_errno));
	if (!check(res.nonce_r == -1 && res.nonce_errno == EPERM,
		   "untrusted non-root: CREATE_IN_APERTURE with NONCE_GIVEN: EPERM"))
		diag("ioctl returned %d, errno %d (%s)", res.nonce_r, res.nonce_errno,
		     strerror(res.nonce_errno));
}

/* CREATE_ENDPOINT's argument checks, ports and trust; leaves no endpoint behind. */
static void endpoint_create_checks(void)
{
	static const struct {
		const char *what;
		struct apn_endpoint_create c;
	} bad[] = {
		{ "evq_size 1", { .evq_size = 1 } },
		{ "evq_size 3", { .evq_size = 3 } },
		{ "evq_size 131072", { .evq_size = 131072 } },
		{ "varq_size 2048", { .varq_size = 2048 } },
		{ "varq_size 5000", { .varq_size = 5000 } },
		{ "varq_size 2^25", { .varq_size = 1u << 25 } },
		{ "unknown flag", { .flags = 2 } },
		{ "reserved nonzero", { .reserved = { 0, 1 } } },
	};
	struct apn_endpoint_create a = { 0 }, b = { 0 }, c = { 0 };
	struct apn_info info = { 0 };
	int fa, fb, fc, fd, i, ev;
	void *p;

	fa = open("/dev/apertnic0", O_RDWR);
	fb = open("/dev/apertnic0", O_RDWR);
	fc = open("/dev/apertnic1", O_RDWR);
	fd = open("/dev/apertnic0", O_RDWR);
	for (i = 0; i < (int)(sizeof(bad) / sizeof(bad[0])); i++) {
		c = bad[i].c;
		EXPECT_ERR(EINVAL, bad[i].what, ioctl(fa, APN_IOC_CREATE_ENDPOINT, &c));
	}
	ev = poll_events(fa, 0);
	if (!check(ev == POLLERR, "poll() without an endpoint: POLLERR"))
		diag("revents %#x", ev);
	expect_mmap_einval("EVQ before CREATE_ENDPOINT", PAGE, MAP_SHARED, fa, APN_MMAP_EVQ);
	expect_mmap_einval("VARQ before CREATE_ENDPOINT", PAGE, MAP_SHARED, fa, APN_MMAP_VARQ);

	/* port 0: the driver picks from the ephemeral range, round robin */
	EXPECT_OK("CREATE_ENDPOINT port 0", ioctl(fa, APN_IOC_CREATE_ENDPOINT, &a));
	EXPECT_OK("CREATE_ENDPOINT port 0 again", ioctl(fb, APN_IOC_CREATE_ENDPOINT, &b));
	if (!check(a.port >= APN_PORT_EPHEMERAL_MIN && b.port >= APN_PORT_EPHEMERAL_MIN &&
		   a.port != b.port, "ports chosen from %u-%u, distinct", APN_PORT_EPHEMERAL_MIN,
		   APN_PORT_EPHEMERAL_MAX))
		diag("ports %u %u", a.port, b.port);
	if (!check(a.evq_size == APN_EVQ_DEFAULT_EVENTS && a.varq_size == APN_VARQ_DEFAULT_BYTES,
		   "default queue sizes reported"))
		diag("evq %u varq %u", a.evq_size, a.varq_size);
	EXPECT_OK("GET_INFO after CREATE_ENDPOINT", ioctl(fa, APN_IOC_GET_INFO, &info));
	if (!check(info.port == a.port && info.ep_flags == 0, "GET_INFO: port, untrusted"))
		diag("port %u flags %#x", info.port, info.ep_flags);

	/* ports are per NIC; close frees them */
	c = (struct apn_endpoint_create){ .port = 77 };
	EXPECT_ERR(EADDRINUSE, "port 77 taken on NIC 1", ioctl(fc, APN_IOC_CREATE_ENDPOINT, &c));
	c = (struct apn_endpoint_create){ .port = 77 };
	EXPECT_OK("port 77 free on NIC 0", ioctl(fd, APN_IOC_CREATE_ENDPOINT, &c));
	/* closing one endpoint leaves another file's queue mappings alone */
	p = mmap(NULL, EVQ_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fa, APN_MMAP_EVQ);
	close(fd);
	i = p == MAP_FAILED ? -1 : touch_in_child(p);
	if (!check(i == 0, "another file's EVQ mapping survives a close"))
		diag("mmap %p, child: %d", p, i);
	if (p != MAP_FAILED)
		munmap(p, EVQ_LEN);
	fd = open("/dev/apertnic0", O_RDWR);
	c = (struct apn_endpoint_create){ .port = b.port };
	EXPECT_ERR(EADDRINUSE, "a chosen port is taken too", ioctl(fd, APN_IOC_CREATE_ENDPOINT, &c));
	close(fb);
	EXPECT_OK("a port is free again after close", ioctl(fd, APN_IOC_CREATE_ENDPOINT, &c));

	/* trust as root, smallest queues, mapped exactly */
	c = (struct apn_endpoint_create){ .flags = APN_ENDPOINT_TRUSTED,
					  .evq_size = APN_EVQ_MIN_EVENTS,
					  .varq_size = APN_VARQ_MIN_BYTES };
	EXPECT_OK("CREATE_ENDPOINT TRUSTED as root, smallest queues",
		  ioctl(fc, APN_IOC_CREATE_ENDPOINT, &c));
	memset(&info, 0, sizeof(info));
	EXPECT_OK("GET_INFO of the trusted endpoint", ioctl(fc, APN_IOC_GET_INFO, &info));
	if (!check(info.ep_flags == APN_ENDPOINT_TRUSTED && info.port == c.port &&
		   c.evq_size == APN_EVQ_MIN_EVENTS && c.varq_size == APN_VARQ_MIN_BYTES,
		   "GET_INFO: trusted, port; sizes echoed"))
		diag("flags %#x port %u/%u sizes %u %u", info.ep_flags, info.port, c.port,
		     c.evq_size, c.varq_size);
	p = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fc, APN_MMAP_EVQ);
	if (!check(p != MAP_FAILED, "mmap a 2-event EVQ: one page"))
		diag("errno %d (%s)", errno, strerror(errno));
	else
		munmap(p, PAGE);
	expect_mmap_einval("2-event EVQ, two pages", 2 * PAGE, MAP_SHARED, fc, APN_MMAP_EVQ);
	p = mmap(NULL, 2 * PAGE, PROT_READ, MAP_SHARED, fc, APN_MMAP_VARQ);
	if (!check(p != MAP_FAILED, "mmap a 4 KiB VARQ: two pages (control block + data)"))
		diag("errno %d (%s)", errno, strerror(errno));
	else
		munmap(p, 2 * PAGE);
	expect_mmap_einval("4 KiB VARQ, three pages", 3 * PAGE, MAP_SHARED, fc, APN_MMAP_VARQ);
	close(fa);
	close(fc);
	close(fd);
}

/* The PCI address of /dev/apertnicN's device ("0000:00:01.0"), or NULL. */
static char *pci_address(int n)
{
	static char link[PATH_MAX];
	char path[64];
	ssize_t len;
	char *slash;

	snprintf(path, sizeof(path), "/sys/class/misc/apertnic%d/device", n);
	len = readlink(path, link, sizeof(link) - 1);
	if (len <= 0)
		return NULL;
	link[len] = 0;
	slash = strrchr(link, '/');
	return slash ? slash + 1 : link;
}

static int unbind(const char *address)
{
	int fd = open("/sys/bus/pci/drivers/apertnic/unbind", O_WRONLY);
	ssize_t len = (ssize_t)strlen(address);
	int ok;

	if (fd < 0)
		return -1;
	ok = write(fd, address, len) == len;
	close(fd);
	return ok ? 0 : -1;
}

/*
 * A trusted endpoint on NIC 0 sends CLOSE to NIC 1's untrusted endpoint (port
 * 77, file fd1); that endpoint is armed and sleeps in poll(), so only the
 * interrupt path can end the wait: the device hands the message to NIC 1's
 * driver (kernel connection management), whose worker posts it onto the
 * endpoint's queue, which wakes it. Then ALIVE: NIC 1's kernel answers it
 * with ALIVEACK and posts nothing.
 */
static void event_checks(int fd1)
{
	struct apn_endpoint_create tc = { .flags = APN_ENDPOINT_TRUSTED };
	const struct apn_queue_ctrl *ctrl, *ctrlt;
	const struct apn_event *ev;
	uint8_t *up1, *evq1, *upt, *evqt;
	uint32_t rdt;
	long no_port = sysfs_long("/sys/class/misc/apertnic1/device/no_port_events");
	uint32_t rd, st;
	int ft, r, wst;
	long t0, t1;
	pid_t pid;

	ft = open("/dev/apertnic0", O_RDWR);
	EXPECT_OK("CREATE_ENDPOINT TRUSTED on NIC 0", ioctl(ft, APN_IOC_CREATE_ENDPOINT, &tc));
	upt = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, ft, APN_MMAP_USER_PAGE);
	up1 = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd1, APN_MMAP_USER_PAGE);
	evq1 = mmap(NULL, EVQ_LEN, PROT_READ, MAP_SHARED, fd1, APN_MMAP_EVQ);
	evqt = mmap(NULL, EVQ_LEN, PROT_READ, MAP_SHARED, ft, APN_MMAP_EVQ);
	if (!check(upt != MAP_FAILED && up1 != MAP_FAILED && evq1 != MAP_FAILED &&
		   evqt != MAP_FAILED,
		   "mmap the sender's user page and EVQ, the receiver's user page and EVQ")) {
		diag("%p %p %p %p errno %d", upt, up1, evq1, evqt, errno);
		close(ft);
		return;
	}
	ctrl = (const struct apn_queue_ctrl *)evq1;
	ctrlt = (const struct apn_queue_ctrl *)evqt;
	rd = ureg_read(up1, APN_UREG_EVQ_RDPTR);
	ureg_write(up1, APN_UREG_ARM, 1);

	ureg_write(upt, APN_UREG_MSG_DEST_HOST, 2);
	ureg_write(upt, APN_UREG_MSG_DEST_PORT, 77);
	ureg_write(upt, APN_UREG_MSG_TYPE, APN_MSG_CLOSE);
	ureg_write(upt, APN_UREG_MSG_IN_INDEX, 5);
	ureg_write(upt, APN_UREG_MSG_NONCE, 0x1234abcd);
	ureg_write(upt, APN_UREG_MSG_INFO, 0);
	/*
	 * Sent by a child 300 ms from now, so that this process is asleep in
	 * poll() when the event lands: only the interrupt can wake it.
	 */
	pid = fork();
	if (pid == 0) {
		usleep(300000);
		ureg_write(upt, APN_UREG_MSG_SEND, 1);
		_exit(ureg_read(upt, APN_UREG_CMD_STATUS) == APN_CMD_OK ? 0 : 1);
	}
	t0 = now_ms();
	r = poll_events(fd1, 5000);
	t1 = now_ms();
	st = ~0u;
	if (pid > 0 && waitpid(pid, &wst, 0) == pid && WIFEXITED(wst))
		st = WEXITSTATUS(wst);
	if (!check(st == 0, "trusted endpoint sends CLOSE to host 2 port 77 (in a child)"))
		diag("child status %u", st);
	if (!check((r == (POLLIN | POLLRDNORM) || r == POLLIN) && t1 - t0 >= 250,
		   "poll() asleep on the armed untrusted receiver is woken by the kernel's post"))
		diag("revents %#x (errno %d) after %ld ms", r, errno, t1 - t0);
	if (!check(ctrl->wrptr - rd == 1, "exactly one event in the receiver's EVQ"))
		diag("wrptr %u rdptr %u", ctrl->wrptr, rd);
	ev = (const struct apn_event *)(evq1 + APN_QUEUE_DATA_OFFSET) +
	     (rd & (APN_EVQ_DEFAULT_EVENTS - 1));
	if (!check(ev->type == APN_EV_CLOSE && ev->flags == APN_EV_F_POSTED && ev->info == 5 &&
		   ev->data == (0x1234abcdull | 1ull << 32 | (uint64_t)tc.port << 48),
		   "the event: CLOSE posted by the kernel (APN_EV_F_POSTED), in-index 5, nonce, from host 1 and the sender's port %u",
		   tc.port))
		diag("type %u endpoint %u info %u data %#llx", ev->type, ev->endpoint, ev->info,
		     (unsigned long long)ev->data);
	ureg_write(up1, APN_UREG_EVQ_RDPTR, rd + 1);
	r = poll_events(fd1, 0);
	if (!check(r == 0, "poll(): not readable once the event is consumed"))
		diag("revents %#x", r);

	/* ALIVE to the untrusted endpoint: its kernel answers, the sender hears ALIVEACK */
	rdt = ureg_read(upt, APN_UREG_EVQ_RDPTR);
	ureg_write(upt, APN_UREG_ARM, 1);
	ureg_write(upt, APN_UREG_MSG_TYPE, APN_MSG_ALIVE);
	ureg_write(upt, APN_UREG_MSG_SEND, 1);
	r = poll_events(ft, 5000);
	ev = (const struct apn_event *)(evqt + APN_QUEUE_DATA_OFFSET) +
	     (rdt & (APN_EVQ_DEFAULT_EVENTS - 1));
	if (!check(r > 0 && ctrlt->wrptr - rdt == 1 && ev->type == APN_EV_ALIVEACK &&
		   ev->info == 5 && (uint32_t)ev->data == 0x1234abcd &&
		   (uint16_t)(ev->data >> 32) == 2 && (uint16_t)(ev->data >> 48) == 77,
		   "ALIVE to an untrusted endpoint: its kernel answers ALIVEACK from host 2 port 77"))
		diag("revents %#x, %u events, type %u info %u data %#llx", r, ctrlt->wrptr - rdt,
		     ev->type, ev->info, (unsigned long long)ev->data);
	if (!check(ctrl->wrptr == rd + 1, "... and posts nothing to the untrusted endpoint"))
		diag("wrptr %u, expected %u", ctrl->wrptr, rd + 1);
	ureg_write(upt, APN_UREG_MSG_TYPE, APN_MSG_CLOSE);

	/* nobody on port 9: the receiving NIC tells its driver, and nothing else */
	ureg_write(upt, APN_UREG_MSG_DEST_PORT, 9);
	ureg_write(upt, APN_UREG_MSG_SEND, 1);
	r = poll_events(fd1, 200);
	if (!check(r == 0 && ctrl->wrptr == rd + 1, "ALIVE to an unbound port reaches no endpoint"))
		diag("revents %#x wrptr %u", r, ctrl->wrptr);
	if (!check(no_port >= 0 &&
		   sysfs_long("/sys/class/misc/apertnic1/device/no_port_events") == no_port + 1,
		   "the receiving driver counts it in sysfs no_port_events"))
		diag("before %ld after %ld", no_port,
		     sysfs_long("/sys/class/misc/apertnic1/device/no_port_events"));
	munmap(upt, PAGE);
	munmap(up1, PAGE);
	munmap(evq1, EVQ_LEN);
	munmap(evqt, EVQ_LEN);
	close(ft);
}

/* Arms the endpoint and waits up to 5 s for its queue to pass `rd`; the event at rd. */
static const struct apn_event *next_event(int fd, uint8_t *up, const uint8_t *evq, uint32_t rd)
{
	const struct apn_queue_ctrl *ctrl = (const struct apn_queue_ctrl *)evq;
	long until = now_ms() + 5000;

	while (ctrl->wrptr == rd && now_ms() < until) {
		ureg_write(up, APN_UREG_ARM, 1);
		poll_events(fd, 500);
	}
	if (ctrl->wrptr == rd)
		return NULL;
	return (const struct apn_event *)(evq + APN_QUEUE_DATA_OFFSET) +
	       (rd & (APN_EVQ_DEFAULT_EVENTS - 1));
}

/*
 * Kernel connection management (APN_IOC_CONNECT/ACCEPT): the errno rules, then
 * one connection between NIC 0's untrusted endpoint (fd0) and NIC 1's (fd1,
 * port 77, incoming aperture in1) set up by the two kernels: CONNECT posted at
 * NIC 1, ACCEPT taken there, ACCEPT posted at NIC 0 with its aperture aimed.
 */
static void kcm_checks(int fd0, int fd1, uint32_t in1)
{
	struct apn_endpoint_create tc = { .flags = APN_ENDPOINT_TRUSTED };
	struct apn_in_aperture_create evin = { .flags = APN_IN_APERTURE_EVENT, .size = 4096 };
	struct apn_out_aperture_create o0 = { .size = 4096 }, o1 = { .size = 4096 };
	struct apn_out_aperture_create aimed = { .size = 4096, .dest_host = 2, .nonce = 1 };
	struct apn_out_aperture_destroy dout = { 0 };
	struct apn_in_aperture_destroy din = { 0 };
	struct apn_in_aperture_create tin = evin, xin = evin;
	struct apn_out_aperture_create tout = { .size = 4096 };
	struct apn_endpoint_create xc = { 0 };
	struct apn_conn_connect cc = { 0 };
	struct apn_conn_accept ca = { 0 };
	struct apn_info info = { 0 };
	const struct apn_event *ev;
	uint8_t *up0, *up1, *evq0, *evq1;
	uint32_t rd0, rd1;
	int fn, ft, fx;

	EXPECT_OK("GET_INFO", ioctl(fd0, APN_IOC_GET_INFO, &info));
	if (!check(info.caps & APN_INFO_CAP_KERNEL_CM, "GET_INFO caps: APN_INFO_CAP_KERNEL_CM"))
		diag("caps %#x", info.caps);
	EXPECT_OK("CREATE_IN_APERTURE (event) on NIC 0 for CONNECT",
		  ioctl(fd0, APN_IOC_CREATE_IN_APERTURE, &evin));
	EXPECT_OK("CREATE_OUT_APERTURE unaimed on NIC 0",
		  ioctl(fd0, APN_IOC_CREATE_OUT_APERTURE, &o0));
	EXPECT_OK("CREATE_OUT_APERTURE unaimed on NIC 1",
		  ioctl(fd1, APN_IOC_CREATE_OUT_APERTURE, &o1));
	EXPECT_OK("CREATE_OUT_APERTURE aimed on NIC 0",
		  ioctl(fd0, APN_IOC_CREATE_OUT_APERTURE, &aimed));

	/* the errno rules; "another file's" apertures on the same NIC */
	fn = open("/dev/apertnic0", O_RDWR);
	ft = open("/dev/apertnic0", O_RDWR);
	fx = open("/dev/apertnic1", O_RDWR);
	cc.dest_host = 2;
	cc.dest_port = 77;
	cc.in_index = evin.in_index;
	cc.out_index = o0.out_index;
	EXPECT_ERR(EINVAL, "CONNECT without an endpoint", ioctl(fn, APN_IOC_CONNECT, &cc));
	EXPECT_OK("CREATE_ENDPOINT TRUSTED for CONNECT/ACCEPT",
		  ioctl(ft, APN_IOC_CREATE_ENDPOINT, &tc));
	EXPECT_OK("an incoming and an outgoing aperture of the trusted endpoint",
		  ioctl(ft, APN_IOC_CREATE_IN_APERTURE, &tin) ||
		  ioctl(ft, APN_IOC_CREATE_OUT_APERTURE, &tout));
	EXPECT_OK("another untrusted endpoint on NIC 1, with an incoming aperture",
		  ioctl(fx, APN_IOC_CREATE_ENDPOINT, &xc) ||
		  ioctl(fx, APN_IOC_CREATE_IN_APERTURE, &xin));
	EXPECT_ERR(EINVAL, "CONNECT on a trusted endpoint", ioctl(ft, APN_IOC_CONNECT, &cc));
	EXPECT_ERR(EINVAL, "ACCEPT on a trusted endpoint", ioctl(ft, APN_IOC_ACCEPT, &ca));
	cc.reserved = 1;
	EXPECT_ERR(EINVAL, "CONNECT with reserved set", ioctl(fd0, APN_IOC_CONNECT, &cc));
	cc.reserved = 0;
	cc.in_index = tin.in_index;
	EXPECT_ERR(ENOENT, "CONNECT offering another file's incoming aperture",
		   ioctl(fd0, APN_IOC_CONNECT, &cc));
	cc.in_index = evin.in_index;
	cc.out_index = tout.out_index;
	EXPECT_ERR(ENOENT, "CONNECT through another file's outgoing aperture",
		   ioctl(fd0, APN_IOC_CONNECT, &cc));
	cc.out_index = 1u << 30;
	EXPECT_ERR(ENOENT, "CONNECT through outgoing index 2^30", ioctl(fd0, APN_IOC_CONNECT, &cc));
	cc.out_index = aimed.out_index;
	EXPECT_ERR(EBUSY, "CONNECT through an aimed outgoing aperture",
		   ioctl(fd0, APN_IOC_CONNECT, &cc));
	ca.in_index = in1;
	ca.out_index = o1.out_index;
	EXPECT_ERR(EAGAIN, "ACCEPT with no CONNECT held", ioctl(fd1, APN_IOC_ACCEPT, &ca));
	ca.flags = 2;
	EXPECT_ERR(EINVAL, "ACCEPT with an unknown flag", ioctl(fd1, APN_IOC_ACCEPT, &ca));
	ca.flags = 0;
	ca.reserved[2] = 1;
	EXPECT_ERR(EINVAL, "ACCEPT with reserved set", ioctl(fd1, APN_IOC_ACCEPT, &ca));
	ca.reserved[2] = 0;
	ca.in_index = xin.in_index;
	EXPECT_ERR(ENOENT, "ACCEPT offering another file's incoming aperture",
		   ioctl(fd1, APN_IOC_ACCEPT, &ca));
	close(fn);
	close(ft);
	close(fx);

	/* one connection through both kernels */
	up0 = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd0, APN_MMAP_USER_PAGE);
	up1 = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd1, APN_MMAP_USER_PAGE);
	evq0 = mmap(NULL, EVQ_LEN, PROT_READ, MAP_SHARED, fd0, APN_MMAP_EVQ);
	evq1 = mmap(NULL, EVQ_LEN, PROT_READ, MAP_SHARED, fd1, APN_MMAP_EVQ);
	if (!check(up0 != MAP_FAILED && up1 != MAP_FAILED && evq0 != MAP_FAILED &&
		   evq1 != MAP_FAILED, "mmap both untrusted endpoints' user pages and EVQs")) {
		diag("errno %d (%s)", errno, strerror(errno));
		return;
	}
	rd0 = ureg_read(up0, APN_UREG_EVQ_RDPTR);
	rd1 = ureg_read(up1, APN_UREG_EVQ_RDPTR);
	cc.out_index = o0.out_index;
	EXPECT_OK("CONNECT from NIC 0 to host 2 port 77", ioctl(fd0, APN_IOC_CONNECT, &cc));
	EXPECT_OK("CONNECT again (a retry)", ioctl(fd0, APN_IOC_CONNECT, &cc));
	cc.dest_port = 78;
	EXPECT_ERR(EBUSY, "CONNECT elsewhere through an aperture being connected",
		   ioctl(fd0, APN_IOC_CONNECT, &cc));
	cc.dest_port = 77;
	ev = next_event(fd1, up1, evq1, rd1);
	if (!check(ev && ev->type == APN_EV_CONNECT && ev->flags == APN_EV_F_POSTED &&
		   ev->info == evin.in_index && (uint32_t)ev->data == evin.nonce &&
		   (uint16_t)(ev->data >> 32) == 1,
		   "NIC 1's kernel posts the CONNECT (APN_EV_F_POSTED), in-index and nonce of NIC 0's aperture"))
		diag("event %p type %u flags %u info %u data %#llx", (const void *)ev,
		     ev ? ev->type : 0, ev ? ev->flags : 0, ev ? ev->info : 0,
		     ev ? (unsigned long long)ev->data : 0ull);
	if (ev)
		ureg_write(up1, APN_UREG_EVQ_RDPTR, ++rd1);
	/* the retry's CONNECT is held once: no second event */
	if (!check(next_event(fd1, up1, evq1, rd1) == NULL, "a repeated CONNECT is not posted twice"))
		diag("wrptr %u rd %u", ((const struct apn_queue_ctrl *)evq1)->wrptr, rd1);
	ca.in_index = in1;
	ca.out_index = o1.out_index;
	ca.flags = APN_ACCEPT_PEER;
	ca.peer_host = 1;
	ca.peer_port = 9999;
	EXPECT_ERR(EAGAIN, "ACCEPT of a peer that sent no CONNECT", ioctl(fd1, APN_IOC_ACCEPT, &ca));
	ca.flags = 0;
	EXPECT_OK("ACCEPT the oldest CONNECT on NIC 1", ioctl(fd1, APN_IOC_ACCEPT, &ca));
	if (!check(ca.peer_host == 1 && ca.peer_in_index == evin.in_index && ca.peer_port == info.port,
		   "ACCEPT reports the connector: host 1, its port, its aperture"))
		diag("host %u port %u in %u (want port %u in %u)", ca.peer_host, ca.peer_port,
		     ca.peer_in_index, info.port, evin.in_index);
	ev = next_event(fd0, up0, evq0, rd0);
	if (!check(ev && ev->type == APN_EV_ACCEPT && ev->flags == APN_EV_F_POSTED &&
		   ev->info == in1 && (uint16_t)(ev->data >> 32) == 2 &&
		   (uint16_t)(ev->data >> 48) == 77,
		   "NIC 0's kernel aims the aperture and posts the ACCEPT from host 2 port 77"))
		diag("event %p type %u flags %u info %u data %#llx", (const void *)ev,
		     ev ? ev->type : 0, ev ? ev->flags : 0, ev ? ev->info : 0,
		     ev ? (unsigned long long)ev->data : 0ull);
	EXPECT_ERR(EBUSY, "CONNECT through the aperture the ACCEPT aimed",
		   ioctl(fd0, APN_IOC_CONNECT, &cc));
	EXPECT_ERR(EBUSY, "ACCEPT again through the aperture it aimed",
		   ioctl(fd1, APN_IOC_ACCEPT, &ca));

	munmap(up0, PAGE);
	munmap(up1, PAGE);
	munmap(evq0, EVQ_LEN);
	munmap(evq1, EVQ_LEN);
	dout.out_index = o0.out_index;
	EXPECT_OK("DESTROY_OUT_APERTURE of the connected aperture",
		  ioctl(fd0, APN_IOC_DESTROY_OUT_APERTURE, &dout));
	dout.out_index = aimed.out_index;
	ioctl(fd0, APN_IOC_DESTROY_OUT_APERTURE, &dout);
	dout.out_index = o1.out_index;
	ioctl(fd1, APN_IOC_DESTROY_OUT_APERTURE, &dout);
	din.in_index = evin.in_index;
	ioctl(fd0, APN_IOC_DESTROY_IN_APERTURE, &din);
}

/* An untrusted endpoint's user page and event queue, and how far it has read. */
struct kcm_ep {
	int fd;
	uint8_t *up, *evq;
	uint32_t rd;
};

/* Maps fd's user page and EVQ and consumes the events already there. */
static bool kcm_ep_map(struct kcm_ep *e, int fd)
{
	e->fd = fd;
	e->up = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, APN_MMAP_USER_PAGE);
	e->evq = mmap(NULL, EVQ_LEN, PROT_READ, MAP_SHARED, fd, APN_MMAP_EVQ);
	if (e->up == MAP_FAILED || e->evq == MAP_FAILED)
		return false;
	e->rd = ((const struct apn_queue_ctrl *)e->evq)->wrptr;
	ureg_write(e->up, APN_UREG_EVQ_RDPTR, e->rd);
	return true;
}

static void kcm_ep_unmap(struct kcm_ep *e)
{
	if (e->up != MAP_FAILED)
		munmap(e->up, PAGE);
	if (e->evq != MAP_FAILED)
		munmap(e->evq, EVQ_LEN);
}

/* The endpoint's next event (waiting up to 5 s), consumed; a zeroed one if none came. */
static struct apn_event kcm_ep_next(struct kcm_ep *e)
{
	const struct apn_event *ev = next_event(e->fd, e->up, e->evq, e->rd);
	struct apn_event copy = { 0 };

	if (ev) {
		copy = *ev;
		ureg_write(e->up, APN_UREG_EVQ_RDPTR, ++e->rd);
	}
	return copy;
}

/* ev is a connection message the kernel posted: type, the sender's aperture, nonce, host, port. */
static bool kcm_msg_is(const struct apn_event *ev, uint8_t type, uint32_t in_index,
		       uint32_t nonce, uint16_t host, uint16_t port)
{
	return ev->type == type && ev->flags == APN_EV_F_POSTED && ev->info == in_index &&
	       ev->data == (nonce | (uint64_t)host << 32 | (uint64_t)port << 48);
}

static void kcm_diag_event(const char *who, const struct apn_event *ev)
{
	diag("%s: type %u flags %u info %u nonce %#x host %u port %u", who, ev->type, ev->flags,
	     ev->info, (uint32_t)ev->data, (uint16_t)(ev->data >> 32),
	     (uint16_t)(ev->data >> 48));
}

/*
 * A repeated CONNECT for a connection NIC 1's kernel has accepted gets its
 * ACCEPT again, with the nonce first offered, while that incoming aperture
 * lives. Once the acceptor has destroyed it and created a new one at the same
 * index (another nonce, never offered to that peer), the replay gets no ACCEPT
 * at all: the next ACCEPT NIC 0 sees is the one for a later, new CONNECT.
 * fd0 is NIC 0's untrusted endpoint, fd1 NIC 1's on port 77.
 */
static void kcm_replay_checks(int fd0, int fd1)
{
	struct apn_info info = { 0 };
	struct apn_in_aperture_create cin = { .flags = APN_IN_APERTURE_EVENT, .size = 4096 };
	struct apn_in_aperture_create cin2 = cin, ain = cin, ain2 = cin, ain3 = cin;
	struct apn_out_aperture_create oa = { .size = 4096 }, ob = oa, oc = oa, od = oa;
	struct apn_out_aperture_create ox = oa, oy = oa;
	struct apn_conn_connect cc = { .dest_host = 2, .dest_port = 77 };
	struct apn_conn_accept ca = { 0 };
	struct apn_out_aperture_destroy dout = { 0 };
	struct apn_in_aperture_destroy din = { 0 };
	struct kcm_ep e0, e1;
	struct apn_event ev;
	uint16_t port0;

	ioctl(fd0, APN_IOC_GET_INFO, &info);
	port0 = info.port;
	if (!check(kcm_ep_map(&e0, fd0) && kcm_ep_map(&e1, fd1) &&
		   !ioctl(fd0, APN_IOC_CREATE_IN_APERTURE, &cin) &&
		   !ioctl(fd0, APN_IOC_CREATE_IN_APERTURE, &cin2) &&
		   !ioctl(fd0, APN_IOC_CREATE_OUT_APERTURE, &oa) &&
		   !ioctl(fd0, APN_IOC_CREATE_OUT_APERTURE, &ob) &&
		   !ioctl(fd0, APN_IOC_CREATE_OUT_APERTURE, &oc) &&
		   !ioctl(fd0, APN_IOC_CREATE_OUT_APERTURE, &od) &&
		   !ioctl(fd1, APN_IOC_CREATE_IN_APERTURE, &ain) &&
		   !ioctl(fd1, APN_IOC_CREATE_OUT_APERTURE, &ox) &&
		   !ioctl(fd1, APN_IOC_CREATE_OUT_APERTURE, &oy),
		   "replay: mappings and apertures on both untrusted endpoints")) {
		diag("errno %d (%s)", errno, strerror(errno));
		return;
	}

	/* a connection: NIC 0's event aperture cin, NIC 1's aperture ain */
	cc.in_index = cin.in_index;
	cc.out_index = oa.out_index;
	EXPECT_OK("replay: CONNECT from NIC 0 (a new aperture) to host 2 port 77",
		  ioctl(fd0, APN_IOC_CONNECT, &cc));
	ev = kcm_ep_next(&e1);
	if (!check(kcm_msg_is(&ev, APN_EV_CONNECT, cin.in_index, cin.nonce, 1, port0),
		   "replay: the CONNECT is posted at NIC 1"))
		kcm_diag_event("NIC 1", &ev);
	ca.in_index = ain.in_index;
	ca.out_index = ox.out_index;
	EXPECT_OK("replay: ACCEPT it on NIC 1", ioctl(fd1, APN_IOC_ACCEPT, &ca));
	ev = kcm_ep_next(&e0);
	if (!check(kcm_msg_is(&ev, APN_EV_ACCEPT, ain.in_index, ain.nonce, 2, 77),
		   "replay: the ACCEPT (aperture %u, its nonce) is posted at NIC 0", ain.in_index))
		kcm_diag_event("NIC 0", &ev);

	/* the same CONNECT again, as if that ACCEPT was lost: it comes again */
	cc.out_index = ob.out_index;
	EXPECT_OK("replay: the same CONNECT again, through another outgoing aperture",
		  ioctl(fd0, APN_IOC_CONNECT, &cc));
	ev = kcm_ep_next(&e0);
	if (!check(kcm_msg_is(&ev, APN_EV_ACCEPT, ain.in_index, ain.nonce, 2, 77),
		   "replay: NIC 1's kernel says the ACCEPT again, with the nonce it offered"))
		kcm_diag_event("NIC 0", &ev);

	/* the acceptor replaces its aperture: same index, new nonce */
	din.in_index = ain.in_index;
	if (!check(!ioctl(fd1, APN_IOC_CREATE_IN_APERTURE, &ain3) &&
		   !ioctl(fd1, APN_IOC_DESTROY_IN_APERTURE, &din) &&
		   !ioctl(fd1, APN_IOC_CREATE_IN_APERTURE, &ain2) &&
		   ain2.in_index == ain.in_index && ain2.nonce != ain.nonce &&
		   ain3.in_index != ain.in_index,
		   "replay: NIC 1 destroys aperture %u and creates a new one there (another nonce)",
		   ain.in_index))
		diag("errno %d (%s); index %u nonce %#x -> index %u nonce %#x; other index %u",
		     errno, strerror(errno), ain.in_index, ain.nonce, ain2.in_index, ain2.nonce,
		     ain3.in_index);

	/*
	 * The old CONNECT again, then a new one: NIC 1's kernel handles them in
	 * order, so the ACCEPT of the new one comes after any answer to the replay.
	 */
	cc.out_index = oc.out_index;
	EXPECT_OK("replay: the old CONNECT again after the aperture was replaced",
		  ioctl(fd0, APN_IOC_CONNECT, &cc));
	cc.in_index = cin2.in_index;
	cc.out_index = od.out_index;
	EXPECT_OK("replay: then a new CONNECT (another aperture of NIC 0)",
		  ioctl(fd0, APN_IOC_CONNECT, &cc));
	ev = kcm_ep_next(&e1);
	if (!check(kcm_msg_is(&ev, APN_EV_CONNECT, cin2.in_index, cin2.nonce, 1, port0),
		   "replay: NIC 1 posts only the new CONNECT (the replay is not a new one)"))
		kcm_diag_event("NIC 1", &ev);
	ca.in_index = ain3.in_index;
	ca.out_index = oy.out_index;
	EXPECT_OK("replay: ACCEPT the new CONNECT on NIC 1", ioctl(fd1, APN_IOC_ACCEPT, &ca));
	ev = kcm_ep_next(&e0);
	if (!check(kcm_msg_is(&ev, APN_EV_ACCEPT, ain3.in_index, ain3.nonce, 2, 77),
		   "replay: no ACCEPT offers the new aperture %u: NIC 0's next ACCEPT is the new connection's",
		   ain2.in_index))
		kcm_diag_event("NIC 0", &ev);

	dout.out_index = oa.out_index;
	ioctl(fd0, APN_IOC_DESTROY_OUT_APERTURE, &dout);
	dout.out_index = ob.out_index;
	ioctl(fd0, APN_IOC_DESTROY_OUT_APERTURE, &dout);
	dout.out_index = oc.out_index;
	ioctl(fd0, APN_IOC_DESTROY_OUT_APERTURE, &dout);
	dout.out_index = od.out_index;
	ioctl(fd0, APN_IOC_DESTROY_OUT_APERTURE, &dout);
	dout.out_index = ox.out_index;
	ioctl(fd1, APN_IOC_DESTROY_OUT_APERTURE, &dout);
	dout.out_index = oy.out_index;
	ioctl(fd1, APN_IOC_DESTROY_OUT_APERTURE, &dout);
	din.in_index = cin.in_index;
	ioctl(fd0, APN_IOC_DESTROY_IN_APERTURE, &din);
	din.in_index = cin2.in_index;
	ioctl(fd0, APN_IOC_DESTROY_IN_APERTURE, &din);
	din.in_index = ain2.in_index;
	ioctl(fd1, APN_IOC_DESTROY_IN_APERTURE, &din);
	din.in_index = ain3.in_index;
	ioctl(fd1, APN_IOC_DESTROY_IN_APERTURE, &din);
	kcm_ep_unmap(&e0);
	kcm_ep_unmap(&e1);
}

/*
 * Two APN_IOC_CONNECTs pending from NIC 0's untrusted endpoint to host 2, to
 * ports 77 and 78: the ACCEPT from port 78 aims the second CONNECT's outgoing
 * aperture (stores through it land in port 78's memory), the older one stays
 * pending until the ACCEPT from port 77 aims it.
 */
static void kcm_match_checks(int fd0, int fd1)
{
	struct apn_info info = { 0 };
	struct apn_in_aperture_create c77 = { .flags = APN_IN_APERTURE_EVENT, .size = 4096 };
	struct apn_in_aperture_create c78 = c77, a77 = c77, m78 = { .size = 4096 };
	struct apn_out_aperture_create oe = { .size = 4096 }, of = oe, o77 = oe, o78 = oe;
	struct apn_endpoint_create ep78 = { .port = 78 };
	struct apn_conn_connect cc77 = { .dest_host = 2, .dest_port = 77 };
	struct apn_conn_connect cc78 = { .dest_host = 2, .dest_port = 78 };
	struct apn_conn_accept ca = { 0 };
	struct apn_out_aperture_destroy dout = { 0 };
	struct apn_in_aperture_destroy din = { 0 };
	struct apn_mr_reg mr = { .len = PAGE };
	struct apn_mr_dereg dmr = { 0 };
	struct kcm_ep e0, e1, e78;
	volatile uint8_t *mem = aligned_alloc(PAGE, PAGE);
	struct apn_event ev;
	uint8_t *ap;
	uint16_t port0;
	int f78, i, polls;

	ioctl(fd0, APN_IOC_GET_INFO, &info);
	port0 = info.port;
	f78 = open("/dev/apertnic1", O_RDWR);
	if (mem)
		memset((void *)mem, 0, PAGE);
	mr.addr = (uintptr_t)mem;
	if (!check(mem && f78 >= 0 && !ioctl(f78, APN_IOC_CREATE_ENDPOINT, &ep78) &&
		   !ioctl(f78, APN_IOC_REG_MR, &mr) &&
		   (m78.mr_id = mr.mr_id, !ioctl(f78, APN_IOC_CREATE_IN_APERTURE, &m78)) &&
		   !ioctl(f78, APN_IOC_CREATE_OUT_APERTURE, &o78) &&
		   !ioctl(fd1, APN_IOC_CREATE_IN_APERTURE, &a77) &&
		   !ioctl(fd1, APN_IOC_CREATE_OUT_APERTURE, &o77) &&
		   !ioctl(fd0, APN_IOC_CREATE_IN_APERTURE, &c77) &&
		   !ioctl(fd0, APN_IOC_CREATE_IN_APERTURE, &c78) &&
		   !ioctl(fd0, APN_IOC_CREATE_OUT_APERTURE, &oe) &&
		   !ioctl(fd0, APN_IOC_CREATE_OUT_APERTURE, &of) &&
		   kcm_ep_map(&e0, fd0) && kcm_ep_map(&e1, fd1) && kcm_ep_map(&e78, f78),
		   "match: a second untrusted endpoint on NIC 1 (port 78) with memory; apertures")) {
		diag("errno %d (%s)", errno, strerror(errno));
		if (f78 >= 0)
			close(f78);
		return;
	}

	cc77.in_index = c77.in_index;
	cc77.out_index = oe.out_index;
	cc78.in_index = c78.in_index;
	cc78.out_index = of.out_index;
	EXPECT_OK("match: CONNECT to host 2 port 77", ioctl(fd0, APN_IOC_CONNECT, &cc77));
	EXPECT_OK("match: then CONNECT to host 2 port 78 (another outgoing aperture)",
		  ioctl(fd0, APN_IOC_CONNECT, &cc78));
	ev = kcm_ep_next(&e78);
	if (!check(kcm_msg_is(&ev, APN_EV_CONNECT, c78.in_index, c78.nonce, 1, port0),
		   "match: port 78's kernel posts its CONNECT"))
		kcm_diag_event("port 78", &ev);
	ca.in_index = m78.in_index;
	ca.out_index = o78.out_index;
	EXPECT_OK("match: port 78 ACCEPTs first", ioctl(f78, APN_IOC_ACCEPT, &ca));
	ev = kcm_ep_next(&e0);
	if (!check(kcm_msg_is(&ev, APN_EV_ACCEPT, m78.in_index, m78.nonce, 2, 78),
		   "match: NIC 0 posts the ACCEPT from port 78"))
		kcm_diag_event("NIC 0", &ev);
	/* what a user relies on: stores through the second aperture reach port 78 */
	ap = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd0, of.mmap_offset);
	if (ap != MAP_FAILED) {
		for (i = 0; i < 64; i += 8)
			*(volatile uint64_t *)(ap + i) = 0x0101010101010101ull * (0x78 + i / 8);
		ureg_write(e0.up, APN_UREG_FENCE, 0);
		for (polls = 0; polls < 500 && mem[63] != 0x7f; polls++)
			usleep(10000);
		munmap(ap, 4096);
	}
	for (i = 0; i < 64 && mem[i] == 0x78 + i / 8; i++)
		;
	if (!check(ap != MAP_FAILED && i == 64 && mem[64] == 0,
		   "match: stores through the port-78 CONNECT's aperture land in port 78's memory"))
		diag("mmap %p; byte %d is %#x", (void *)ap, i, i < 64 ? mem[i] : mem[64]);

	/* (a retry to port 78 would have its ACCEPT said again: probed after the stores) */
	EXPECT_ERR(EBUSY, "match: that ACCEPT aimed the CONNECT to port 78's aperture",
		   ioctl(fd0, APN_IOC_CONNECT, &cc78));
	EXPECT_OK("match: the CONNECT to port 77 is still pending (the same again is a retry)",
		  ioctl(fd0, APN_IOC_CONNECT, &cc77));

	/* then port 77 answers the older CONNECT: its aperture is aimed now */
	ev = kcm_ep_next(&e1);
	if (!check(kcm_msg_is(&ev, APN_EV_CONNECT, c77.in_index, c77.nonce, 1, port0),
		   "match: port 77's kernel posts its CONNECT"))
		kcm_diag_event("port 77", &ev);
	ca.in_index = a77.in_index;
	ca.out_index = o77.out_index;
	EXPECT_OK("match: port 77 ACCEPTs", ioctl(fd1, APN_IOC_ACCEPT, &ca));
	ev = kcm_ep_next(&e0);
	if (!check(kcm_msg_is(&ev, APN_EV_ACCEPT, a77.in_index, a77.nonce, 2, 77),
		   "match: NIC 0 posts the ACCEPT from port 77"))
		kcm_diag_event("NIC 0", &ev);
	EXPECT_ERR(EBUSY, "match: that ACCEPT aimed the CONNECT to port 77's aperture",
		   ioctl(fd0, APN_IOC_CONNECT, &cc77));

	dout.out_index = oe.out_index;
	ioctl(fd0, APN_IOC_DESTROY_OUT_APERTURE, &dout);
	dout.out_index = of.out_index;
	ioctl(fd0, APN_IOC_DESTROY_OUT_APERTURE, &dout);
	dout.out_index = o77.out_index;
	ioctl(fd1, APN_IOC_DESTROY_OUT_APERTURE, &dout);
	/* destroyed first: closing a file with an aimed aperture would send CLOSE */
	dout.out_index = o78.out_index;
	ioctl(f78, APN_IOC_DESTROY_OUT_APERTURE, &dout);
	din.in_index = c77.in_index;
	ioctl(fd0, APN_IOC_DESTROY_IN_APERTURE, &din);
	din.in_index = c78.in_index;
	ioctl(fd0, APN_IOC_DESTROY_IN_APERTURE, &din);
	din.in_index = a77.in_index;
	ioctl(fd1, APN_IOC_DESTROY_IN_APERTURE, &din);
	din.in_index = m78.in_index;
	ioctl(f78, APN_IOC_DESTROY_IN_APERTURE, &din);
	dmr.mr_id = mr.mr_id;
	ioctl(f78, APN_IOC_DEREG_MR, &dmr);
	kcm_ep_unmap(&e0);
	kcm_ep_unmap(&e1);
	kcm_ep_unmap(&e78);
	close(f78);
	free((void *)mem);
}

static int finish(void)
{
	printf("1..%d\n", passed + failed);
	printf("APN-ABI passed=%d failed=%d\n", passed, failed);
	return failed ? 1 : 0;
}

int main(void)
{
	struct apn_info i0 = { 0 }, i1 = { 0 };
	struct apn_host_id hid = { 0 };
	struct apn_route rt = { 0 };
	struct apn_endpoint_create ep = { 0 };
	struct apn_mr_reg mr = { 0 };
	struct apn_mr_dereg dmr = { 0 };
	struct apn_in_aperture_create in = { 0 };
	struct apn_in_aperture_destroy din = { 0 };
	struct apn_out_aperture_create out = { 0 };
	struct apn_out_aperture_destroy dout = { 0 };
	struct apn_counters c0 = { 0 }, c1 = { 0 };
	volatile uint8_t *buf, *dst;
	uint8_t *ap, *up, *evq, *varq, *part;
	const char *addr0;
	int fd0, fd1, i, polls;

	setvbuf(stdout, NULL, _IOLBF, 0);

	/* ---- open, info, host ids and routes ---- */
	fd0 = open("/dev/apertnic0", O_RDWR);
	fd1 = open("/dev/apertnic1", O_RDWR);
	if (!check(fd0 >= 0 && fd1 >= 0, "open /dev/apertnic0 and /dev/apertnic1")) {
		diag("fds %d %d, errno %d (%s): two apertnic NICs needed", fd0, fd1, errno,
		     strerror(errno));
		printf("Bail out! no two apertnic devices\n");
		return finish();
	}
	addr0 = pci_address(0); /* read now: unbound devices leave /sys/class/misc */

	EXPECT_OK("GET_INFO on NIC 0", ioctl(fd0, APN_IOC_GET_INFO, &i0));
	EXPECT_OK("GET_INFO on NIC 1", ioctl(fd1, APN_IOC_GET_INFO, &i1));
	diag("nic0 %s: abi %u spec %#x mac %02x:%02x:%02x:%02x:%02x:%02x host %u mtu %u out %u x %u in %u eps %u",
	     addr0 ? addr0 : "?", i0.abi_version, i0.spec_version, i0.mac[0], i0.mac[1], i0.mac[2], i0.mac[3],
	     i0.mac[4], i0.mac[5], i0.host_id, i0.mtu, i0.num_out, i0.out_slot_size, i0.max_in,
	     i0.num_endpoints);
	if (!check(i0.endpoint == ~0u, "GET_INFO before CREATE_ENDPOINT: endpoint ~0"))
		diag("endpoint %#x", i0.endpoint);

	hid.host_id = 1;
	hid.ip = IP_NIC0;
	EXPECT_OK("SET_HOST_ID 1, 10.0.0.1 on NIC 0", ioctl(fd0, APN_IOC_SET_HOST_ID, &hid));
	hid.host_id = 2;
	hid.ip = IP_NIC1;
	EXPECT_OK("SET_HOST_ID 2, 10.0.0.2 on NIC 1", ioctl(fd1, APN_IOC_SET_HOST_ID, &hid));
	hid.ip = 0;
	EXPECT_OK("SET_HOST_ID 2, IPv4 0 (unchanged) on NIC 1", ioctl(fd1, APN_IOC_SET_HOST_ID, &hid));
	hid.reserved = 1;
	EXPECT_ERR(EINVAL, "SET_HOST_ID with reserved set", ioctl(fd1, APN_IOC_SET_HOST_ID, &hid));
	EXPECT_OK("GET_INFO on NIC 1 after SET_HOST_ID", ioctl(fd1, APN_IOC_GET_INFO, &i1));
	if (!check(i1.ip == IP_NIC1 && i1.host_id == 2 && i1.port == 0,
		   "GET_INFO reports host 2, 10.0.0.2, port 0 (no endpoint)"))
		diag("host %u ip %#x port %u", i1.host_id, i1.ip, i1.port);
	rt.host = 2;
	memcpy(rt.mac, i1.mac, 6);
	rt.ip = IP_NIC1;
	EXPECT_OK("SET_ROUTE host 2 -> NIC 1, 10.0.0.2 on NIC 0", ioctl(fd0, APN_IOC_SET_ROUTE, &rt));
	rt.host = 1;
	memcpy(rt.mac, i0.mac, 6);
	rt.ip = IP_NIC0;
	EXPECT_OK("SET_ROUTE host 1 -> NIC 0, 10.0.0.1 on NIC 1", ioctl(fd1, APN_IOC_SET_ROUTE, &rt));
	rt.host = 256;
	EXPECT_ERR(EINVAL, "SET_ROUTE host 256", ioctl(fd1, APN_IOC_SET_ROUTE, &rt));

	/* ---- endpoints ---- */
	expect_mmap_einval("user page before CREATE_ENDPOINT", 4096, MAP_SHARED, fd0,
			   APN_MMAP_USER_PAGE);
	out.size = 4096;
	EXPECT_ERR(EBADFD, "CREATE_OUT_APERTURE before CREATE_ENDPOINT",
		   ioctl(fd0, APN_IOC_CREATE_OUT_APERTURE, &out));
	EXPECT_OK("CREATE_ENDPOINT on NIC 0", ioctl(fd0, APN_IOC_CREATE_ENDPOINT, &ep));
	diag("nic0 endpoint %u", ep.endpoint);
	EXPECT_ERR(EBUSY, "second CREATE_ENDPOINT on one file",
		   ioctl(fd0, APN_IOC_CREATE_ENDPOINT, &ep));
	ep.port = 77;
	EXPECT_OK("CREATE_ENDPOINT port 77 on NIC 1", ioctl(fd1, APN_IOC_CREATE_ENDPOINT, &ep));
	EXPECT_OK("GET_INFO on NIC 1 after CREATE_ENDPOINT", ioctl(fd1, APN_IOC_GET_INFO, &i1));
	if (!check(i1.endpoint == ep.endpoint && ep.port == 77 && i1.port == 77,
		   "GET_INFO reports the file's endpoint and port 77"))
		diag("info endpoint %u port %u, created %u port %u", i1.endpoint, i1.port,
		     ep.endpoint, ep.port);
	endpoint_create_checks();

	/* ---- memory registration and incoming aperture on NIC 1 ---- */
	buf = aligned_alloc(4096, 65536);
	if (!buf) {
		printf("Bail out! out of memory\n");
		return finish();
	}
	memset((void *)buf, 0, 65536);
	mr.addr = (uintptr_t)buf + 1;
	mr.len = 65536;
	EXPECT_ERR(EINVAL, "REG_MR at an unaligned address", ioctl(fd1, APN_IOC_REG_MR, &mr));
	mr.addr = (uintptr_t)buf;
	EXPECT_OK("REG_MR of 64 KiB on NIC 1", ioctl(fd1, APN_IOC_REG_MR, &mr));
	in.mr_id = mr.mr_id;
	in.mr_offset = 4096 + 100;
	in.size = 8192;
	in.flags = APN_IN_APERTURE_CHECK_SRC_HOST;
	in.src_host = 1;
	in.src_host_mask = 0xffff;
	EXPECT_OK("CREATE_IN_APERTURE of 8 KiB at MR offset 4196, source host 1",
		  ioctl(fd1, APN_IOC_CREATE_IN_APERTURE, &in));
	diag("in aperture %u nonce %#x", in.in_index, in.nonce);
	in.size = 100;
	EXPECT_ERR(EINVAL, "CREATE_IN_APERTURE size 100 (not a power of two)",
		   ioctl(fd1, APN_IOC_CREATE_IN_APERTURE, &in));
	in.size = 65536;
	EXPECT_ERR(EINVAL, "CREATE_IN_APERTURE past the end of the MR",
		   ioctl(fd1, APN_IOC_CREATE_IN_APERTURE, &in));
	in.size = 8192;
	in.mr_id = 999;
	EXPECT_ERR(ENOENT, "CREATE_IN_APERTURE on an unknown MR",
		   ioctl(fd1, APN_IOC_CREATE_IN_APERTURE, &in));

	/* ---- outgoing aperture on NIC 0 and its mappings ---- */
	out.dest_host = 2;
	out.dest_in_index = in.in_index;
	out.nonce = in.nonce;
	out.size = 8192;
	EXPECT_OK("CREATE_OUT_APERTURE of 8 KiB on NIC 0 -> host 2",
		  ioctl(fd0, APN_IOC_CREATE_OUT_APERTURE, &out));
	diag("out aperture %u at offset %#llx", out.out_index, (unsigned long long)out.mmap_offset);
	expect_mmap_einval("aperture MAP_PRIVATE", 8192, MAP_PRIVATE, fd0, out.mmap_offset);
	expect_mmap_einval("aperture longer than its size", 12288, MAP_SHARED, fd0,
			   out.mmap_offset);
	expect_mmap_einval("another slot's offset", 4096, MAP_SHARED, fd0,
			   out.mmap_offset + i0.out_slot_size);
	expect_mmap_einval("aperture through another file", 4096, MAP_SHARED, fd1,
			   out.mmap_offset);
	expect_mmap_einval("offset 4096", 4096, MAP_SHARED, fd0, 4096);
	expect_mmap_einval("user page two pages long", 8192, MAP_SHARED, fd0, APN_MMAP_USER_PAGE);
	ap = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd0, out.mmap_offset);
	i = errno;
	up = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd0, APN_MMAP_USER_PAGE);
	if (!check(ap != MAP_FAILED && up != MAP_FAILED, "mmap the aperture and the user page")) {
		diag("aperture %p (errno %d), user page %p (errno %d)", ap, i, up, errno);
		printf("Bail out! cannot map\n");
		return finish();
	}

	/* ---- the endpoint's queues (default sizes) ---- */
	expect_mmap_einval("EVQ MAP_PRIVATE", EVQ_LEN, MAP_PRIVATE, fd0, APN_MMAP_EVQ);
	expect_mmap_einval("EVQ one page longer", EVQ_LEN + PAGE, MAP_SHARED, fd0, APN_MMAP_EVQ);
	expect_mmap_einval("EVQ from its last page, two pages", 2 * PAGE, MAP_SHARED, fd0,
			   APN_MMAP_EVQ + EVQ_LEN - PAGE);
	expect_mmap_einval("EVQ at its end", PAGE, MAP_SHARED, fd0, APN_MMAP_EVQ + EVQ_LEN);
	expect_mmap_einval("VARQ one page longer", VARQ_LEN + PAGE, MAP_SHARED, fd0, APN_MMAP_VARQ);
	expect_mmap_einval("VARQ at its end", PAGE, MAP_SHARED, fd0, APN_MMAP_VARQ + VARQ_LEN);
	evq = mmap(NULL, EVQ_LEN, PROT_READ, MAP_SHARED, fd0, APN_MMAP_EVQ);
	i = errno;
	varq = mmap(NULL, VARQ_LEN, PROT_READ, MAP_SHARED, fd0, APN_MMAP_VARQ);
	if (!check(evq != MAP_FAILED && varq != MAP_FAILED,
		   "mmap EVQ (%zu bytes) and VARQ (%zu bytes) whole", (size_t)EVQ_LEN,
		   (size_t)VARQ_LEN)) {
		diag("EVQ %p (errno %d), VARQ %p (errno %d)", evq, i, varq, errno);
		printf("Bail out! cannot map the queues\n");
		return finish();
	}
	part = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd0, APN_MMAP_EVQ + EVQ_LEN - PAGE);
	if (!check(part != MAP_FAILED, "mmap the EVQ's last page alone"))
		diag("errno %d (%s)", errno, strerror(errno));
	else
		munmap(part, PAGE);
	if (!check(((struct apn_queue_ctrl *)evq)->wrptr == ureg_read(up, APN_UREG_EVQ_RDPTR) &&
		   ((struct apn_queue_ctrl *)varq)->wrptr == ureg_read(up, APN_UREG_VARQ_RDPTR),
		   "queues start empty: wrptr mirrors equal the user page's RDPTRs"))
		diag("evq %u/%u varq %u/%u", ((struct apn_queue_ctrl *)evq)->wrptr,
		     ureg_read(up, APN_UREG_EVQ_RDPTR), ((struct apn_queue_ctrl *)varq)->wrptr,
		     ureg_read(up, APN_UREG_VARQ_RDPTR));
	i = poll_events(fd0, 0);
	if (!check(i == 0, "poll(): an empty queue is not readable"))
		diag("revents %#x", i);
	/* the untrusted endpoint may not use the user page's commands */
	ureg_write(up, APN_UREG_MSG_DEST_HOST, 2);
	ureg_write(up, APN_UREG_MSG_DEST_PORT, 77);
	ureg_write(up, APN_UREG_MSG_TYPE, APN_MSG_ALIVE);
	ureg_write(up, APN_UREG_MSG_SEND, 1);
	i = (int)ureg_read(up, APN_UREG_CMD_STATUS);
	ureg_write(up, APN_UREG_OUT_INDEX, out.out_index);
	ureg_write(up, APN_UREG_OUT_NONCE, 1);
	ureg_write(up, APN_UREG_OUT_COMMIT, 1);
	if (!check(i == APN_CMD_EPERM && ureg_read(up, APN_UREG_CMD_STATUS) == APN_CMD_EPERM,
		   "untrusted endpoint: MSG_SEND and OUT_COMMIT refused (APN_CMD_EPERM)"))
		diag("status %d then %u", i, ureg_read(up, APN_UREG_CMD_STATUS));

	/* ---- data: 64 stores of 8 bytes at aperture offset 200, then a fence ---- */
	for (i = 0; i < 512; i += 8)
		*(volatile uint64_t *)(ap + 200 + i) = 0x0101010101010101ull * (i / 8 + 1);
	*(volatile uint32_t *)(up + APN_UREG_FENCE) = 0;
	dst = buf + 4096 + 100 + 200;
	for (polls = 0; polls < 1000 && dst[511] != 64; polls++)
		usleep(10000);
	if (!check(dst[0] == 1 && dst[511] == 64 && dst[-1] == 0 && dst[512] == 0,
		   "stores through NIC 0's aperture arrive in NIC 1's pinned memory, exactly there"))
		diag("bytes before/first/last/after: %d %d %d %d after %d polls", dst[-1], dst[0],
		     dst[511], dst[512], polls);
	for (i = 0; i < 512; i++)
		if (dst[i] != i / 8 + 1)
			break;
	if (!check(i == 512, "all 512 bytes arrived intact"))
		diag("byte %d is %d, want %d", i, dst[i], i / 8 + 1);
	EXPECT_OK("GET_COUNTERS on NIC 0", ioctl(fd0, APN_IOC_GET_COUNTERS, &c0));
	EXPECT_OK("GET_COUNTERS on NIC 1", ioctl(fd1, APN_IOC_GET_COUNTERS, &c1));
	diag("counters: %u; nic0 tx_frames %llu tx_stores %llu; nic1 rx_frames %llu rx_bytes %llu drops nonce %llu bounds %llu",
	     c0.count, (unsigned long long)c0.value[APN_CNT_TX_FRAMES],
	     (unsigned long long)c0.value[APN_CNT_TX_STORES],
	     (unsigned long long)c1.value[APN_CNT_RX_FRAMES],
	     (unsigned long long)c1.value[APN_CNT_RX_BYTES],
	     (unsigned long long)c1.value[APN_CNT_RX_DROP_NONCE],
	     (unsigned long long)c1.value[APN_CNT_RX_DROP_BOUNDS]);

	/* ---- an event through the interrupt path: NIC 0 -> NIC 1's endpoint ---- */
	event_checks(fd1);

	/* ---- kernel connection management between the two untrusted endpoints ---- */
	kcm_checks(fd0, fd1, in.in_index);
	kcm_replay_checks(fd0, fd1);
	kcm_match_checks(fd0, fd1);

	/* ---- teardown rules ---- */
	dmr.mr_id = mr.mr_id;
	EXPECT_ERR(EBUSY, "DEREG_MR while an incoming aperture uses it",
		   ioctl(fd1, APN_IOC_DEREG_MR, &dmr));
	din.in_index = in.in_index;
	EXPECT_ERR(ENOENT, "DESTROY_IN_APERTURE through another file",
		   ioctl(fd0, APN_IOC_DESTROY_IN_APERTURE, &din));
	EXPECT_OK("DESTROY_IN_APERTURE", ioctl(fd1, APN_IOC_DESTROY_IN_APERTURE, &din));
	EXPECT_OK("DEREG_MR once unused", ioctl(fd1, APN_IOC_DEREG_MR, &dmr));
	EXPECT_ERR(ENOENT, "second DEREG_MR", ioctl(fd1, APN_IOC_DEREG_MR, &dmr));
	din.in_index = 1 << 30;
	EXPECT_ERR(EINVAL, "DESTROY_IN_APERTURE index 2^30",
		   ioctl(fd1, APN_IOC_DESTROY_IN_APERTURE, &din));

	i = touch_in_child(ap);
	if (!check(i == 0, "aperture mapping writable before DESTROY_OUT_APERTURE"))
		diag("child: %d", i);
	dout.out_index = out.out_index;
	EXPECT_ERR(ENOENT, "DESTROY_OUT_APERTURE through another file",
		   ioctl(fd1, APN_IOC_DESTROY_OUT_APERTURE, &dout));
	EXPECT_OK("DESTROY_OUT_APERTURE", ioctl(fd0, APN_IOC_DESTROY_OUT_APERTURE, &dout));
	i = touch_in_child(ap);
	if (!check(i == SIGBUS, "touching the mapping after DESTROY_OUT_APERTURE: SIGBUS"))
		diag("child: %d", i);
	EXPECT_ERR(ENOTTY, "unknown ioctl", ioctl(fd0, _IO(APN_IOC_MAGIC, 0x55)));

	/* ---- the outgoing table fills up ---- */
	for (i = 0; i < 1000; i++) {
		errno = 0;
		if (ioctl(fd0, APN_IOC_CREATE_OUT_APERTURE, &out))
			break;
	}
	if (!check(i == (int)i0.num_out && errno == ENOSPC,
		   "CREATE_OUT_APERTURE fills all %u slots, then ENOSPC", i0.num_out))
		diag("%d created, errno %d (%s)", i, errno, strerror(errno));
	out.size = 3000;
	EXPECT_ERR(EINVAL, "CREATE_OUT_APERTURE size 3000 (not a power of two)",
		   ioctl(fd0, APN_IOC_CREATE_OUT_APERTURE, &out));
	out.size = 1 << 17;
	EXPECT_ERR(EINVAL, "CREATE_OUT_APERTURE larger than a slot",
		   ioctl(fd0, APN_IOC_CREATE_OUT_APERTURE, &out));

	/* ---- unprivileged ---- */
	nonroot_checks(fd1);

	/* ---- close frees the endpoint and the slots ---- */
	munmap(ap, 8192);
	munmap(up, 4096);
	/* every mapping holds the file: the endpoint is only freed once all are gone */
	munmap(evq, EVQ_LEN);
	munmap(varq, VARQ_LEN);
	close(fd0);
	fd0 = open("/dev/apertnic0", O_RDWR);
	ep.port = 0;
	EXPECT_OK("CREATE_ENDPOINT on a reopened NIC 0", ioctl(fd0, APN_IOC_CREATE_ENDPOINT, &ep));
	if (!check(ep.endpoint == 0, "endpoint 0 free again after close"))
		diag("endpoint %u", ep.endpoint);
	out.size = 4096;
	EXPECT_OK("CREATE_OUT_APERTURE after close", ioctl(fd0, APN_IOC_CREATE_OUT_APERTURE, &out));
	if (!check(out.out_index == 0, "slot 0 free again after close"))
		diag("slot %u", out.out_index);

	/* ---- unbind NIC 0 while this file and a mapping are live ---- */
	ap = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd0, out.mmap_offset);
	if (!check(ap != MAP_FAILED, "mmap an aperture to hold across unbind")) {
		diag("errno %d (%s)", errno, strerror(errno));
		printf("Bail out! cannot map\n");
		return finish();
	}
	*(volatile uint64_t *)ap = 1;
	evq = mmap(NULL, EVQ_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd0, APN_MMAP_EVQ);
	if (!check(evq != MAP_FAILED, "mmap an EVQ read-write to hold across unbind"))
		diag("errno %d (%s)", errno, strerror(errno));
	if (!check(addr0 && unbind(addr0) == 0, "unbind NIC 0 (%s) from the driver",
		   addr0 ? addr0 : "address unknown"))
		diag("errno %d (%s)", errno, strerror(errno));
	EXPECT_ERR(ENODEV, "GET_INFO after unbind", ioctl(fd0, APN_IOC_GET_INFO, &i0));
	i = touch_in_child(ap);
	if (!check(i == SIGBUS, "touching the mapping after unbind: SIGBUS"))
		diag("child: %d", i);
	if (evq != MAP_FAILED) {
		i = touch_in_child(evq);
		if (!check(i == SIGBUS, "touching the EVQ mapping after unbind: SIGBUS"))
			diag("child: %d", i);
		munmap(evq, EVQ_LEN);
	}
	i = poll_events(fd0, 0);
	if (!check(i >= 0 && (i & POLLHUP), "poll() after unbind: POLLHUP"))
		diag("revents %#x", i);
	munmap(ap, 4096);
	close(fd0);
	close(fd1);
	return finish();
}
