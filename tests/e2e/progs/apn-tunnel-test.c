// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * apn-tunnel-test: the driver's user-space tunnel ABI (seed 002) on apn0 of a
 * guest whose apn0 is up as 10.99.0.K/24, through the raw ioctls and mmaps:
 * argument checks and errnos, the ring layout, frames from the kernel's stack
 * in order with flow control (a full to-user ring stops the queue, KICK
 * restarts it, nothing is lost), POLLIN, a frame handed to the stack (a UDP
 * datagram a local socket receives), a frame to the wire, every fallback cause
 * with its counter, and bad values written by the process (each detaches);
 * a frame that fits its slot but not apn0 is dropped and counted instead; a
 * full to-user ring the process kicks but does not drain for longer than
 * apn0's TX watchdog is not reported as a TX timeout.
 * Prints "APN-TUNTEST <check> ok|FAIL ..." per check and a last line
 * "APN-TUNTEST passed=N failed=M". Needs root.
 * Usage: apn-tunnel-test PEER (the other guest's host number, for addresses)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "apertnic.h"           /* guest-driver/uapi */

#define DEV      "/dev/apertnic0"
#define SYSFS    "/sys/class/net/apn0/device/tunnel/"
#define ETH_TEST 0x88b5         /* IEEE local experimental EtherType */
#define UDP_PORT 7777

static int passed, failed;

static void check(int ok, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void check(int ok, const char *name, const char *fmt, ...)
{
	va_list ap;

	if (ok) {
		printf("APN-TUNTEST %s ok\n", name);
		passed++;
		return;
	}
	printf("APN-TUNTEST %s FAIL ", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	failed++;
}

static int xioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) ? -errno : 0;
}

static long long stat_of(const char *name)
{
	char path[128], buf[128];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), SYSFS "%s", name);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fgets(buf, sizeof(buf), f))
		v = strncmp(buf, "attached", 8) == 0 ? 1 : strncmp(buf, "direct", 6) == 0 ? 0 :
		    atoll(buf);
	fclose(f);
	return v;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Waits (up to 5 s, looking every 10 ms) until stat `name` reaches want. */
static long long wait_stat(const char *name, long long want)
{
	long long v = stat_of(name);
	int i;

	for (i = 0; i < 500 && v < want; i++) {
		sleep_ms(10);
		v = stat_of(name);
	}
	return v;
}

/* A file with an endpoint: the tunnel's owner. */
static int open_endpoint(void)
{
	struct apn_endpoint_create req;
	int fd = open(DEV, O_RDWR);

	if (fd < 0)
		return -errno;
	memset(&req, 0, sizeof(req));
	if (xioctl(fd, APN_IOC_CREATE_ENDPOINT, &req)) {
		close(fd);
		return -1;
	}
	return fd;
}

struct tun {
	int fd;
	uint32_t slots, slot_bytes;
	size_t len;
	struct apn_tun_ring *tu, *tk;
};

static int attach(struct tun *t, int fd, uint32_t slots, uint32_t watchdog_ms)
{
	struct apn_tunnel_attach req;
	int r;

	memset(&req, 0, sizeof(req));
	req.slots = slots;
	req.watchdog_ms = watchdog_ms;
	r = xioctl(fd, APN_IOC_TUNNEL_ATTACH, &req);
	if (r)
		return r;
	t->fd = fd;
	t->slots = req.slots;
	t->slot_bytes = req.slot_bytes;
	t->len = sizeof(struct apn_tun_ring) + (size_t)req.slots * req.slot_bytes;
	t->tu = mmap(NULL, t->len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, APN_MMAP_TUN_TO_USER);
	t->tk = mmap(NULL, t->len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		     APN_MMAP_TUN_TO_KERNEL);
	if (t->tu == MAP_FAILED || t->tk == MAP_FAILED)
		return -ENOMEM;
	return 0;
}

static void unmap(struct tun *t)
{
	munmap(t->tu, t->len);
	munmap(t->tk, t->len);
}

static struct apn_tun_slot *slot(struct tun *t, struct apn_tun_ring *r, uint32_t n)
{
	return (void *)((char *)(r + 1) + (size_t)(n & (t->slots - 1)) * t->slot_bytes);
}

static uint32_t ld(uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void st(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* Waits up to 5 s until the to-user head reaches want; returns the head. */
static uint32_t wait_head(struct tun *t, uint32_t want)
{
	uint32_t h = ld(&t->tu->head);
	int i;

	for (i = 0; i < 500 && (int32_t)(h - want) < 0; i++) {
		sleep_ms(10);
		h = ld(&t->tu->head);
	}
	return h;
}

static uint16_t ip_csum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint32_t sum = 0;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)b[i] << 8 | b[i + 1];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* A UDP/IPv4 frame from src to dst:port carrying msg. Returns its length. */
static size_t udp_frame(uint8_t *f, const uint8_t dmac[6], const uint8_t smac[6], uint32_t src,
			uint32_t dst, uint16_t port, const char *msg)
{
	size_t n = strlen(msg), iplen = 20 + 8 + n;
	uint8_t *ip = f + 14, *udp = ip + 20;
	uint16_t c;

	memcpy(f, dmac, 6);
	memcpy(f + 6, smac, 6);
	f[12] = 0x08, f[13] = 0x00;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	ip[2] = (uint8_t)(iplen >> 8), ip[3] = (uint8_t)iplen;
	ip[8] = 64, ip[9] = 17;
	ip[12] = src >> 24, ip[13] = src >> 16, ip[14] = src >> 8, ip[15] = (uint8_t)src;
	ip[16] = dst >> 24, ip[17] = dst >> 16, ip[18] = dst >> 8, ip[19] = (uint8_t)dst;
	c = ip_csum(ip, 20);
	ip[10] = c >> 8, ip[11] = (uint8_t)c;
	udp[0] = 0x9c, udp[1] = 0x40;               /* source port 40000 */
	udp[2] = port >> 8, udp[3] = (uint8_t)port;
	udp[4] = (uint8_t)((8 + n) >> 8), udp[5] = (uint8_t)(8 + n);
	udp[6] = udp[7] = 0;                        /* no checksum (IPv4 allows it) */
	memcpy(udp + 8, msg, n);
	return 14 + iplen;
}

/* Sends `count` test frames (EtherType ETH_TEST, 32-bit sequence from `first`) on apn0. */
static int send_raw(int ps, int ifindex, const uint8_t smac[6], uint32_t first, int count)
{
	struct sockaddr_ll to;
	uint8_t f[60];
	int i;

	memset(&to, 0, sizeof(to));
	to.sll_family = AF_PACKET;
	to.sll_ifindex = ifindex;
	to.sll_halen = 6;
	memset(to.sll_addr, 0xff, 6);
	for (i = 0; i < count; i++) {
		uint32_t seq = first + (uint32_t)i;

		memset(f, 0, sizeof(f));
		memset(f, 0xff, 6);
		memcpy(f + 6, smac, 6);
		f[12] = ETH_TEST >> 8, f[13] = ETH_TEST & 0xff;
		memcpy(f + 14, &seq, 4);
		if (sendto(ps, f, sizeof(f), 0, (struct sockaddr *)&to, sizeof(to)) != sizeof(f))
			return -errno;
	}
	return 0;
}

/*
 * Takes every frame in the to-user ring; counts the test frames and checks their
 * sequence continues from *next. Returns the frames that broke the sequence.
 */
static int drain(struct tun *t, uint32_t *next, int *test_frames)
{
	uint32_t head = ld(&t->tu->head), tail = t->tu->tail;
	int bad = 0;

	for (; tail != head; tail++) {
		struct apn_tun_slot *s = slot(t, t->tu, tail);
		uint8_t *f = (uint8_t *)(s + 1);
		uint32_t seq;

		if (s->len < 18 || f[12] != ETH_TEST >> 8 || f[13] != (ETH_TEST & 0xff))
			continue;       /* the stack's own (ARP, IPv6...) */
		memcpy(&seq, f + 14, 4);
		if (seq != *next)
			bad++;
		*next = seq + 1;
		(*test_frames)++;
	}
	st(&t->tu->tail, tail);
	return bad;
}

/* Puts one frame into the to-kernel ring with the given slot header. */
static void put(struct tun *t, const void *frame, uint16_t len, uint16_t flags)
{
	uint32_t head = t->tk->head;
	struct apn_tun_slot *s = slot(t, t->tk, head);

	s->len = len;
	s->flags = flags;
	s->reserved = 0;
	if (frame)
		memcpy(s + 1, frame, len);
	st(&t->tk->head, head + 1);
}

/* Kernel log lines that say apn0's TX watchdog fired (the stack's and the driver's). */
static int tx_timeout_lines(void)
{
	int size = klogctl(10, NULL, 0), len, n = 0;
	char *buf, *p;

	if (size <= 0)
		return -1;
	buf = malloc((size_t)size + 1);
	if (!buf)
		return -1;
	len = klogctl(3, buf, size);
	if (len < 0) {
		free(buf);
		return -1;
	}
	buf[len] = 0;
	for (p = buf; (p = strstr(p, "NETDEV WATCHDOG")); p++)
		n++;
	for (p = buf; (p = strstr(p, "TX timeout")); p++)
		n++;
	free(buf);
	return n;
}

/* A bad value the process writes: KICK fails with EPROTO and the tunnel is gone. */
static void bad_value(const char *name, int ep_fd, int what)
{
	long long before = stat_of("fallback_error");
	uint8_t frame[64] = { 0 };
	struct tun t;
	int r;

	r = attach(&t, ep_fd, 16, 60000);
	if (r) {
		check(0, name, "attach: %s", strerror(-r));
		return;
	}
	switch (what) {
	case 0:         /* to-kernel head far past the driver's tail */
		st(&t.tk->head, t.tk->head + t.slots + 1);
		break;
	case 1:         /* frame shorter than an Ethernet header */
		put(&t, frame, 5, APN_TUN_F_WIRE);
		break;
	case 2:         /* frame longer than a slot holds */
		put(&t, NULL, (uint16_t)t.slot_bytes, 0);
		break;
	case 3:         /* unknown flag */
		put(&t, frame, 60, 0x8000);
		break;
	default:        /* to-user tail ahead of the driver's head */
		st(&t.tu->tail, t.tu->head + 100);
		break;
	}
	r = xioctl(ep_fd, APN_IOC_TUNNEL_KICK, NULL);
	check(r == -EPROTO && stat_of("state") == 0 && stat_of("fallback_error") == before + 1 &&
	      xioctl(ep_fd, APN_IOC_TUNNEL_KICK, NULL) == -ENOTCONN &&
	      t.tu->slots == t.slots, name,
	      "kick %s, state %lld, fallback_error %lld -> %lld", strerror(-r), stat_of("state"),
	      before, stat_of("fallback_error"));
	unmap(&t);
}

int main(int argc, char **argv)
{
	struct apn_tunnel_attach req;
	struct apn_info info;
	uint8_t peer_mac[6] = { 0x52, 0x54, 0x00, 0xa7, 0x00, 0x00 };
	uint8_t frame[2048];
	uint32_t peer_ip, next, before;
	int fd0, ep, ep2, ps, us, ifindex, r, n, bad, i;
	long long v, v2;
	struct tun t;
	char buf[64];
	void *m;

	if (argc != 2 || atoi(argv[1]) < 1 || atoi(argv[1]) > 255) {
		fprintf(stderr, "usage: apn-tunnel-test PEER\n");
		return 2;
	}
	peer_mac[5] = (uint8_t)atoi(argv[1]);
	peer_ip = 10u << 24 | 99u << 16 | (uint32_t)atoi(argv[1]);
	setvbuf(stdout, NULL, _IOLBF, 0);

	fd0 = open(DEV, O_RDWR);
	ep = open_endpoint();
	ep2 = open_endpoint();
	ifindex = (int)if_nametoindex("apn0");
	ps = socket(AF_PACKET, SOCK_RAW, 0);
	if (fd0 < 0 || ep < 0 || ep2 < 0 || !ifindex || ps < 0) {
		printf("APN-TUNTEST setup FAIL (device, endpoints, apn0 or packet socket)\n");
		return 1;
	}
	memset(&info, 0, sizeof(info));
	r = xioctl(ep, APN_IOC_GET_INFO, &info);
	check(!r && (info.caps & APN_INFO_CAP_TUNNEL), "caps", "caps %#x", info.caps);

	/* ---- argument checks ---- */
	memset(&req, 0, sizeof(req));
	check(xioctl(fd0, APN_IOC_TUNNEL_ATTACH, &req) == -EINVAL, "attach-no-endpoint", "unexpected result");
	req.slots = 24;
	check(xioctl(ep, APN_IOC_TUNNEL_ATTACH, &req) == -EINVAL, "attach-slots-pow2", "unexpected result");
	req.slots = 8;
	check(xioctl(ep, APN_IOC_TUNNEL_ATTACH, &req) == -EINVAL, "attach-slots-min", "unexpected result");
	req.slots = 2048;
	check(xioctl(ep, APN_IOC_TUNNEL_ATTACH, &req) == -EINVAL, "attach-slots-max", "unexpected result");
	req.slots = 0, req.watchdog_ms = 9;
	check(xioctl(ep, APN_IOC_TUNNEL_ATTACH, &req) == -EINVAL, "attach-watchdog-min", "unexpected result");
	req.watchdog_ms = 60001;
	check(xioctl(ep, APN_IOC_TUNNEL_ATTACH, &req) == -EINVAL, "attach-watchdog-max", "unexpected result");
	req.watchdog_ms = 0, req.flags = 1;
	check(xioctl(ep, APN_IOC_TUNNEL_ATTACH, &req) == -EINVAL, "attach-flags", "unexpected result");
	req.flags = 0, req.reserved[3] = 1;
	check(xioctl(ep, APN_IOC_TUNNEL_ATTACH, &req) == -EINVAL, "attach-reserved", "unexpected result");
	check(xioctl(ep, APN_IOC_TUNNEL_KICK, NULL) == -ENOTCONN &&
	      xioctl(ep, APN_IOC_TUNNEL_DETACH, NULL) == -ENOTCONN, "kick-detach-unattached", "unexpected result");
	m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, ep, APN_MMAP_TUN_TO_USER);
	check(m == MAP_FAILED && errno == EINVAL, "mmap-unattached", "unexpected result");

	/* ---- attach, layout ---- */
	r = attach(&t, ep, 16, 60000);
	check(!r && t.slot_bytes >= 8 + info.mtu + 18 && !(t.slot_bytes & (t.slot_bytes - 1)) &&
	      t.tu->slots == 16 && t.tk->slots == 16 && t.tu->slot_bytes == t.slot_bytes &&
	      t.tu->head == t.tu->tail && t.tk->head == 0 && t.tk->tail == 0 &&
	      stat_of("state") == 1, "attach", "%s, slot_bytes %u", strerror(-r), t.slot_bytes);
	if (r) {
		printf("APN-TUNTEST passed=%d failed=%d\n", passed, failed + 1);
		return 1;
	}
	memset(&req, 0, sizeof(req));
	check(xioctl(ep2, APN_IOC_TUNNEL_ATTACH, &req) == -EBUSY, "attach-busy", "unexpected result");
	check(xioctl(ep, APN_IOC_TUNNEL_ATTACH, &req) == -EBUSY, "attach-twice", "unexpected result");
	check(xioctl(ep2, APN_IOC_TUNNEL_KICK, NULL) == -ENOTCONN &&
	      xioctl(ep2, APN_IOC_TUNNEL_DETACH, NULL) == -ENOTCONN, "kick-not-owner", "unexpected result");
	m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, ep2, APN_MMAP_TUN_TO_USER);
	check(m == MAP_FAILED && errno == EINVAL, "mmap-not-owner", "unexpected result");
	m = mmap(NULL, t.len + 4096, PROT_READ, MAP_SHARED, ep, APN_MMAP_TUN_TO_KERNEL);
	check(m == MAP_FAILED && errno == EINVAL, "mmap-too-long", "unexpected result");
	m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, ep, APN_MMAP_TUN_TO_USER);
	check(m == MAP_FAILED && errno == EINVAL, "mmap-private", "unexpected result");

	/* ---- frames from the stack, in order, with flow control ---- */
	{
		struct pollfd p = { .fd = ep, .events = POLLIN };
		int test_frames = 0;
		long long full = stat_of("to_user_full");

		next = 0;
		bad = send_raw(ps, ifindex, info.mac, 0, 40);
		n = poll(&p, 1, 5000);
		check(!bad && n == 1 && (p.revents & POLLIN), "pollin", "send %d, poll %d revents %#x",
		      bad, n, p.revents);
		/* 40 frames, 16 slots: the queue stops, each KICK lets the next batch in. */
		bad = 0;
		for (i = 0; i < 8 && test_frames < 40; i++) {
			before = t.tu->tail;
			wait_head(&t, before + (40 - test_frames < 16 ? 40 - test_frames : 16));
			if (i == 0)
				check(ld(&t.tu->head) - before == 16 && wait_stat("to_user_full", full + 1) > full,
				      "to-user-full", "head %u tail %u to_user_full %lld", ld(&t.tu->head),
				      before, stat_of("to_user_full"));
			bad += drain(&t, &next, &test_frames);
			xioctl(ep, APN_IOC_TUNNEL_KICK, NULL);
		}
		check(test_frames == 40 && !bad && next == 40, "to-user-in-order",
		      "%d test frames, %d out of order, next %u", test_frames, bad, next);
	}

	/*
	 * ---- a full to-user ring, kicked but not drained past apn0's TX watchdog ----
	 * A full ring stops apn0's queue; a process that kicks is alive, so the
	 * stack's TX watchdog (5 s, looked at every 5 s: 12 s covers a look past
	 * it) must not call that a hung transmitter. Nothing is lost meanwhile.
	 */
	{
		long long full = stat_of("to_user_full");
		int test_frames = 0, kick_errors = 0, timeouts = tx_timeout_lines(), timeouts2;
		uint32_t in_ring;

		next = 1000;
		before = t.tu->tail;
		bad = send_raw(ps, ifindex, info.mac, 1000, 20);
		in_ring = wait_head(&t, before + 16) - before;
		v = wait_stat("to_user_full", full + 1);
		for (i = 0; i < 120; i++) {
			if (xioctl(ep, APN_IOC_TUNNEL_KICK, NULL))
				kick_errors++;
			sleep_ms(100);
		}
		timeouts2 = tx_timeout_lines();
		check(!bad && in_ring == 16 && v > full && !kick_errors && timeouts >= 0 &&
		      timeouts2 == timeouts && stat_of("state") == 1, "full-ring-no-tx-timeout",
		      "send %d, %u in the ring, to_user_full %lld -> %lld, %d kicks failed, TX timeout lines %d -> %d, state %lld",
		      bad, in_ring, full, v, kick_errors, timeouts, timeouts2, stat_of("state"));
		bad = 0;
		for (i = 0; i < 8 && test_frames < 20; i++) {
			before = t.tu->tail;
			if (i > 0)
				wait_head(&t, before + (uint32_t)(20 - test_frames));
			bad += drain(&t, &next, &test_frames);
			xioctl(ep, APN_IOC_TUNNEL_KICK, NULL);
		}
		check(test_frames == 20 && !bad && next == 1020, "full-ring-then-drained",
		      "%d test frames, %d out of order, next %u", test_frames, bad, next);
	}

	/* ---- a frame for the stack: a local UDP socket receives it ---- */
	us = socket(AF_INET, SOCK_DGRAM, 0);
	{
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(UDP_PORT),
					 .sin_addr.s_addr = htonl(info.ip) };
		struct timeval tv = { 5, 0 };
		const char *msg = "to the stack through the tunnel";
		size_t len;

		v = stat_of("frames_to_stack");
		r = bind(us, (struct sockaddr *)&a, sizeof(a)) ? -errno : 0;
		setsockopt(us, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		len = udp_frame(frame, info.mac, peer_mac, peer_ip, info.ip, UDP_PORT, msg);
		put(&t, frame, (uint16_t)len, 0);
		r = r ? r : xioctl(ep, APN_IOC_TUNNEL_KICK, NULL);
		n = r ? -1 : (int)recv(us, buf, sizeof(buf) - 1, 0);
		check(n == (int)strlen(msg) && !memcmp(buf, msg, (size_t)n) &&
		      stat_of("frames_to_stack") == v + 1 && t.tk->tail == t.tk->head, "to-stack",
		      "bind/kick %s, recv %d, frames_to_stack %lld -> %lld", strerror(-r), n, v,
		      stat_of("frames_to_stack"));
	}

	/* ---- a frame for the wire ---- */
	v = stat_of("frames_to_wire");
	put(&t, frame, 60, APN_TUN_F_WIRE);
	r = xioctl(ep, APN_IOC_TUNNEL_KICK, NULL);
	check(!r && stat_of("frames_to_wire") == v + 1 && t.tk->tail == t.tk->head, "to-wire",
	      "kick %s, frames_to_wire %lld -> %lld", strerror(-r), v, stat_of("frames_to_wire"));

	/*
	 * ---- a frame that fits its slot but is longer than apn0 takes ----
	 * (MTU + Ethernet header + VLAN tag): dropped and counted, not a bad value:
	 * the tunnel stays attached and the next frame goes out.
	 */
	{
		uint16_t len = (uint16_t)(t.slot_bytes - sizeof(struct apn_tun_slot));
		long long dropped = stat_of("from_user_dropped");
		int r2;

		v = stat_of("frames_to_wire");
		put(&t, NULL, len, APN_TUN_F_WIRE);
		r = xioctl(ep, APN_IOC_TUNNEL_KICK, NULL);
		put(&t, frame, 60, APN_TUN_F_WIRE);
		r2 = xioctl(ep, APN_IOC_TUNNEL_KICK, NULL);
		check(len > info.mtu + 18 && !r && !r2 && stat_of("state") == 1 &&
		      stat_of("from_user_dropped") == dropped + 1 &&
		      stat_of("frames_to_wire") == v + 1 && t.tk->tail == t.tk->head,
		      "frame-over-mtu-dropped",
		      "len %u (mtu %u), kicks %s / %s, state %lld, from_user_dropped %lld -> %lld, frames_to_wire %lld -> %lld",
		      len, info.mtu, strerror(-r), strerror(-r2), stat_of("state"), dropped,
		      stat_of("from_user_dropped"), v, stat_of("frames_to_wire"));
	}

	/* ---- detach; the stale mapping stays readable ---- */
	v = stat_of("fallback_detach");
	r = xioctl(ep, APN_IOC_TUNNEL_DETACH, NULL);
	check(!r && stat_of("state") == 0 && stat_of("fallback_detach") == v + 1 &&
	      t.tu->slots == 16 && xioctl(ep, APN_IOC_TUNNEL_DETACH, NULL) == -ENOTCONN,
	      "detach", "%s", strerror(-r));
	unmap(&t);

	/* ---- bad values ---- */
	bad_value("bad-to-kernel-head", ep, 0);
	bad_value("bad-frame-short", ep, 1);
	bad_value("bad-frame-long", ep, 2);
	bad_value("bad-flags", ep, 3);
	bad_value("bad-to-user-tail", ep, 4);

	/* ---- watchdog: no KICK for 10 ms ---- */
	v = stat_of("fallback_watchdog");
	r = attach(&t, ep, 16, 10);
	v2 = wait_stat("fallback_watchdog", v + 1);
	check(!r && v2 == v + 1 && stat_of("state") == 0 &&
	      xioctl(ep, APN_IOC_TUNNEL_KICK, NULL) == -ENOTCONN, "watchdog",
	      "attach %s, fallback_watchdog %lld -> %lld", strerror(-r), v, v2);
	if (!r)
		unmap(&t);

	/* ---- release with frames waiting: they go out directly ---- */
	v = stat_of("fallback_release");
	v2 = stat_of("fallback_sent");
	r = attach(&t, ep2, 16, 60000);
	if (!r) {
		send_raw(ps, ifindex, info.mac, 100, 3);
		before = wait_head(&t, t.tu->tail + 3);
		unmap(&t);
	}
	close(ep2);
	check(!r && stat_of("state") == 0 && stat_of("fallback_release") == v + 1 &&
	      stat_of("fallback_sent") >= v2 + 3, "release-sends-waiting",
	      "attach %s, fallback_release %lld -> %lld, fallback_sent %lld -> %lld",
	      strerror(-r), v, stat_of("fallback_release"), v2, stat_of("fallback_sent"));

	close(us);
	close(ps);
	close(ep);
	close(fd0);
	printf("APN-TUNTEST passed=%d failed=%d\n", passed, failed);
	return failed ? 1 : 0;
}
