// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * apn-abi-test: end-to-end test of the apertnic driver's character device ABI
 * (guest-driver/uapi/apertnic.h), talking to the driver directly, not through
 * libapertnic. Needs one guest with two apertnic NICs wired to each other
 * (/dev/apertnic0 and /dev/apertnic1; scripts/testbed --nics 2), run as root.
 *
 * What it pins:
 *   - GET_INFO (ABI version, endpoint ~0 until CREATE_ENDPOINT), SET_HOST_ID,
 *     SET_ROUTE (host > 255: EINVAL);
 *   - bytes stored through an outgoing aperture of NIC 0 and fenced through the
 *     user page arrive, exactly and only there, in the memory NIC 1's incoming
 *     aperture is pinned on;
 *   - every expected errno: EBADFD (no endpoint yet), EBUSY (second endpoint,
 *     DEREG_MR while an aperture uses it), EINVAL (unaligned MR, bad aperture
 *     sizes, bad index, route host), ENOENT (unknown MR, another file's
 *     apertures, double DEREG_MR), ENOSPC (outgoing table full), ENOTTY
 *     (unknown ioctl), ENODEV (after the device is unbound), and as a non-root
 *     user EPERM (SET_ROUTE) and ENOMEM when pinning exceeds RLIMIT_MEMLOCK;
 *   - mmap refusals with EINVAL: user page before an endpoint or longer than a
 *     page, an aperture mapping too long, at another slot, through another file,
 *     at an unknown offset, or MAP_PRIVATE;
 *   - SIGBUS on touching an outgoing aperture's mapping after DESTROY_OUT_APERTURE
 *     and after the device is unbound;
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
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apertnic.h"
#include "apertnic_hw.h"

#define NOBODY 65534

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
};

#define MEMLOCK_LIMIT 65536      /* RLIMIT_MEMLOCK of the unprivileged child */

/* In a child: drop to nobody with a 64 KiB RLIMIT_MEMLOCK and try fd's ioctls. */
static void nonroot_child(int fd, int out)
{
	struct nonroot_result res = { 0 };
	struct rlimit rl = { MEMLOCK_LIMIT, MEMLOCK_LIMIT };
	struct apn_route rt = { .host = 5 };
	struct apn_mr_reg mr = { 0 };
	void *buf;

	res.route_r = res.big_r = res.small_r = INT_MIN;
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
	uint8_t *ap, *up;
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
	EXPECT_OK("SET_HOST_ID 1 on NIC 0", ioctl(fd0, APN_IOC_SET_HOST_ID, &hid));
	hid.host_id = 2;
	EXPECT_OK("SET_HOST_ID 2 on NIC 1", ioctl(fd1, APN_IOC_SET_HOST_ID, &hid));
	rt.host = 2;
	memcpy(rt.mac, i1.mac, 6);
	EXPECT_OK("SET_ROUTE host 2 -> NIC 1 on NIC 0", ioctl(fd0, APN_IOC_SET_ROUTE, &rt));
	rt.host = 1;
	memcpy(rt.mac, i0.mac, 6);
	EXPECT_OK("SET_ROUTE host 1 -> NIC 0 on NIC 1", ioctl(fd1, APN_IOC_SET_ROUTE, &rt));
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
	if (!check(i1.endpoint == ep.endpoint, "GET_INFO reports the file's endpoint"))
		diag("info endpoint %u, created %u", i1.endpoint, ep.endpoint);

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
	if (!check(addr0 && unbind(addr0) == 0, "unbind NIC 0 (%s) from the driver",
		   addr0 ? addr0 : "address unknown"))
		diag("errno %d (%s)", errno, strerror(errno));
	EXPECT_ERR(ENODEV, "GET_INFO after unbind", ioctl(fd0, APN_IOC_GET_INFO, &i0));
	i = touch_in_child(ap);
	if (!check(i == SIGBUS, "touching the mapping after unbind: SIGBUS"))
		diag("child: %d", i);
	munmap(ap, 4096);
	close(fd0);
	close(fd1);
	return finish();
}
