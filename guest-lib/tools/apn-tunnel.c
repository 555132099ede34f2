// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * apn-tunnel: carry the kernel's own traffic on the NIC's network interface
 * through this process (seed 002's user-space tunneled access). It attaches as
 * the interface's tunnel and relays every frame the kernel sends to the network
 * (APN_TUNNEL_F_WIRE): a pure user-level relay, which proves the path and the
 * driver's fallback rules (kill it, stop it: the kernel's traffic goes back to
 * direct access).
 *
 * With --peer HOST:PORT or --listen PORT, two of them on two hosts carry their
 * kernels' frames to each other over a message queue between two apertures
 * (apn_mq): a frame for the peer's MAC goes into the queue, and the peer hands
 * it to its kernel's stack; everything else, and everything once the peer is
 * gone, goes to the wire.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <apertnic/apertnic.h>
#include "apn_tool.h"

#define EXIT_FALLBACK 3
#define MQ_SIZE       65536u   /* each side's incoming aperture (and ring) */
#define HELLO_LEN     6        /* the first message each way: the sender's MAC */

static volatile sig_atomic_t stop_signal;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: apn-tunnel [-d DEV] [-s SLOTS] [-w WATCHDOG_MS] [-p PORT] [-q]\n"
		"                  [--peer HOST:PORT | --listen PORT] [-t TIMEOUT_S]\n"
		"  -d DEV          device (default " APN_DEFAULT_DEVICE ")\n"
		"  -s SLOTS        frames per ring, power of two in 16..1024 (default 256)\n"
		"  -w WATCHDOG_MS  the driver takes the traffic back after this long without\n"
		"                  a kick, 10..60000 (default 1000); kicks every WATCHDOG_MS/3\n"
		"  -p PORT         UDP port of the endpoint that owns the tunnel (default: any)\n"
		"  -q              no per-second statistics on stderr\n"
		"Attaches as the tunnel of the NIC's network interface (needs CAP_NET_ADMIN)\n"
		"and sends every frame the kernel's stack sends to the network through the\n"
		"device. Prints 'APN-TUNNEL-ATTACHED pid=N slots=S slot_bytes=B watchdog_ms=W'.\n"
		"SIGINT/SIGTERM: detaches, prints 'APN-TUNNEL-DETACHED frames=N', exits 0.\n"
		"If the driver takes the traffic back itself (watchdog, bad value), prints\n"
		"'APN-TUNNEL-FALLBACK frames=N error=E' and exits %d; errors exit 1.\n"
		"\n"
		"  --peer HOST:PORT  first connect to the apn-tunnel listening on HOST:PORT\n"
		"  --listen PORT     first wait for one to connect (trusted endpoint on PORT)\n"
		"  -t TIMEOUT_S      give up connecting after this long (default 60)\n"
		"With a peer ('APN-TUNNEL-PEER host=H port=P'), frames for the peer's MAC go\n"
		"to it over a message queue between apertures and it gives them to its\n"
		"kernel's stack; the rest go to the wire, and all of them once the peer is\n"
		"gone ('APN-TUNNEL-PEER-DOWN reason=R'). The last line then also counts\n"
		"to_peer=N from_peer=N.\n",
		EXIT_FALLBACK);
}

static int bad_usage(const char *msg, const char *arg)
{
	if (msg)
		fprintf(stderr, "apn-tunnel: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
	usage(stderr);
	return 2;
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "apn-tunnel: %s: %s\n", what, strerror(-err));
	return 1;
}

static void on_signal(int sig)
{
	stop_signal = sig;
}

/* The connection to a peer apn-tunnel (--peer, --listen). */
struct peer {
	int up;                        /* connected and not gone */
	int have_mac;                  /* its hello arrived */
	uint8_t mac[6];                /* its NIC's: frames for it go through mq */
	struct apn_mr mr;
	struct apn_in_aperture ia;
	struct apn_out_aperture oa;
	struct apn_mq mq;
	void *mem;
	unsigned long long to_peer, from_peer;
	double last_tx;                /* apn_tool_now() of our last store to the peer */
};

struct relay {
	struct apn_tunnel t;
	struct peer *peer;             /* NULL: no peer (mode 1) */
	unsigned long long frames;     /* relayed to the wire */
	unsigned long long kicks;
	int dirty;                     /* frames moved since the last kick */
	double last_kick;              /* apn_tool_now() */
	unsigned char buf[65536];
};

static void peer_down(struct peer *p, const char *reason)
{
	if (!p->up)
		return;
	p->up = 0;
	printf("APN-TUNNEL-PEER-DOWN reason=%s to_peer=%llu from_peer=%llu\n", reason,
	       p->to_peer, p->from_peer);
	fflush(stdout);
}

/* The frame's destination is the peer's NIC (unicast to its MAC). */
static int for_peer(const struct peer *p, const void *frame)
{
	return p && p->up && p->have_mac && !memcmp(frame, p->mac, 6);
}

/*
 * Moves the kernel's frames to the to-kernel ring, marked for the wire, one copy
 * straight from slot to slot. A full to-kernel ring is kicked (the driver empties
 * it) and retried once; what still does not fit waits for the next round.
 * Returns 0 or the failing kick's -errno.
 */
static int relay_frames(struct relay *rl)
{
	const void *frame;
	int len, r;

	while ((len = apn_tunnel_peek(&rl->t, &frame)) > 0) {
		if (for_peer(rl->peer, frame)) {
			r = apn_mq_send(&rl->peer->mq, frame, (size_t)len);
			if (r == -EAGAIN)
				return 0;       /* the peer's ring is full: next round */
			if (!r) {
				rl->peer->to_peer++;
				rl->peer->last_tx = apn_tool_now();
				apn_tunnel_consume(&rl->t);
				rl->dirty = 1;
				continue;
			}
			peer_down(rl->peer, r == -EPIPE ? "closed" : "send-failed");
		}
		r = apn_tunnel_send(&rl->t, frame, (size_t)len, APN_TUNNEL_F_WIRE);
		if (r == -EAGAIN) {
			r = apn_tunnel_kick(&rl->t);
			rl->kicks++;
			if (r)
				return r;
			r = apn_tunnel_send(&rl->t, frame, (size_t)len, APN_TUNNEL_F_WIRE);
			if (r == -EAGAIN)
				return 0;
		}
		if (r)
			fprintf(stderr, "apn-tunnel: dropping a %d-byte frame: %s\n", len,
				strerror(-r));
		apn_tunnel_consume(&rl->t);
		rl->dirty = 1;
		if (!r)
			rl->frames++;
	}
	return len == -EAGAIN ? 0 : len;
}

/*
 * Takes the endpoint's events (they would keep poll() awake). With a peer, its
 * queue's failures (APN_EV_TX_ERROR: it is gone), its CLOSE and ERROR messages end
 * the connection; anything else is logged.
 */
static void drain_events(struct apn_endpoint *ep, struct peer *p)
{
	struct apn_event evs[16];
	int i, n;

	while ((n = apn_evq_poll(ep, evs, 16)) > 0) {
		for (i = 0; i < n; i++) {
			if (!p || !p->up) {
				apn_tool_log_event("apn-tunnel", &evs[i]);
				continue;
			}
			if (apn_mq_handle_event(&p->mq, &evs[i]) < 0)
				peer_down(p, "tx-error");
			else if (evs[i].type == APN_EV_CLOSE)
				peer_down(p, "close");
			else if (evs[i].type == APN_EV_ERROR_MSG)
				peer_down(p, "error");
			else if (evs[i].type != APN_EV_RX_DROP && evs[i].type != APN_EV_ACCEPT &&
				 evs[i].type != APN_EV_CONNECT)
				apn_tool_log_event("apn-tunnel", &evs[i]);
		}
	}
}

/*
 * Hands what the peer sent to our kernel's stack (its first message is its MAC).
 * A full to-kernel ring is kicked once; what still does not fit waits in the queue.
 * Returns 0 or the failing kick's -errno.
 */
static int from_peer(struct relay *rl)
{
	struct peer *p = rl->peer;
	int n, r;

	while (p->up && apn_tunnel_send_room(&rl->t) > 0) {
		n = apn_mq_recv(&p->mq, rl->buf, sizeof(rl->buf));
		if (n == -EAGAIN)
			return 0;
		if (n < 0) {
			peer_down(p, n == -EPIPE ? "closed" : n == -ECONNRESET ? "tx-error" :
				  "bad-message");
			return 0;
		}
		if (!p->have_mac) {
			if (n == HELLO_LEN) {
				memcpy(p->mac, rl->buf, 6);
				p->have_mac = 1;
			}
			continue;
		}
		r = apn_tunnel_send(&rl->t, rl->buf, (size_t)n, 0);
		if (r)
			fprintf(stderr, "apn-tunnel: dropping a %d-byte frame from the peer: %s\n", n,
				strerror(-r));
		else
			p->from_peer++;
		rl->dirty = 1;
	}
	if (p->up && apn_tunnel_send_room(&rl->t) <= 0) {
		r = apn_tunnel_kick(&rl->t);
		rl->kicks++;
		return r;
	}
	return 0;
}

/*
 * Connects to the peer (dial or listen on a trusted endpoint) over a message queue
 * and sends our MAC first. Returns 0 or an exit status.
 */
static int peer_connect(struct peer *p, struct apn_device *dev, struct apn_endpoint *ep,
			uint16_t host, uint16_t port, int listening, int timeout_s)
{
	struct apn_device_info info;
	struct apn_msg_info m;
	int r;

	r = apn_device_info(dev, &info);
	if (r)
		return fail("device info", r);
	if (info.out_slot_size < MQ_SIZE) {
		fprintf(stderr, "apn-tunnel: outgoing apertures of %u bytes are too small\n",
			info.out_slot_size);
		return 1;
	}
	p->mem = mmap(NULL, MQ_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p->mem == MAP_FAILED)
		return fail("mmap", -errno);
	r = apn_mr_reg(&p->mr, ep, p->mem, MQ_SIZE);
	if (r)
		return fail("register memory", r);
	r = apn_in_aperture_create(&p->ia, ep, &p->mr, 0, MQ_SIZE, 0, 0);
	if (r)
		return fail("incoming aperture", r);
	r = apn_out_aperture_create(&p->oa, ep, 0, 0, 0, MQ_SIZE);
	if (r)
		return fail("outgoing aperture", r);
	/* before the peer learns of our aperture: it may write at once */
	r = apn_mq_init(&p->mq, &p->ia, &p->oa);
	if (r)
		return fail("message queue", r);
	if (listening) {
		printf("APN-TUNNEL-LISTENING host=%u port=%u\n", info.host_id,
		       apn_endpoint_port(ep));
		fflush(stdout);
		r = apn_endpoint_listen(ep, &p->ia, &p->oa, timeout_s * 1000, &m, NULL, NULL);
	} else {
		r = apn_endpoint_dial(ep, host, port, &p->ia, &p->oa, timeout_s * 1000, &m, NULL,
				      NULL);
	}
	if (r == -ETIMEDOUT) {
		fprintf(stderr, "apn-tunnel: no peer within %d s\n", timeout_s);
		return 1;
	}
	if (r)
		return fail(listening ? "listen" : "connect", r);
	r = apn_mq_send(&p->mq, info.mac, HELLO_LEN);
	if (r)
		return fail("hello", r);
	p->up = 1;
	p->last_tx = apn_tool_now();
	printf("APN-TUNNEL-PEER host=%u port=%u\n", m.src_host, m.src_port);
	fflush(stdout);
	return 0;
}

static void peer_close(struct peer *p)
{
	if (!p->mem || p->mem == MAP_FAILED)
		return;
	if (p->up)
		apn_mq_close(&p->mq);
	if (p->oa.ptr)
		apn_out_aperture_destroy(&p->oa);
	if (p->ia.ep)
		apn_in_aperture_destroy(&p->ia);
	if (p->mr.ep)
		apn_mr_dereg(&p->mr);
	munmap(p->mem, MQ_SIZE);
}

static void print_end(const struct relay *rl, const char *tag, const char *error)
{
	printf("%s frames=%llu", tag, rl->frames);
	if (error)
		printf(" error=%s", error);
	if (rl->peer)
		printf(" to_peer=%llu from_peer=%llu", rl->peer->to_peer, rl->peer->from_peer);
	printf("\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "peer", required_argument, NULL, 'P' },
		{ "listen", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = NULL;
	struct apn_tunnel_attr attr = { 0 };
	static struct relay rl;
	static struct peer peer;
	uint16_t peer_host = 0, peer_port = 0;
	int mode = 0, timeout_s = 60;
	struct apn_endpoint_attr eattr = { 0 };
	struct apn_device dev;
	struct apn_endpoint ep;
	struct sigaction sa;
	int opt, r, quiet = 0, period_ms, ret = 1;
	double next_stats;
	uint32_t v;

	while ((opt = getopt_long(argc, argv, "d:s:w:p:qt:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			path = optarg;
			break;
		case 's':
			if (apn_tool_parse_u32(optarg, 1024, &v) || v < 16 || (v & (v - 1)))
				return bad_usage("bad slots (power of two, 16 .. 1024)", optarg);
			attr.slots = v;
			break;
		case 'w':
			if (apn_tool_parse_u32(optarg, 60000, &v) || v < 10)
				return bad_usage("bad watchdog (10 .. 60000 ms)", optarg);
			attr.watchdog_ms = v;
			break;
		case 'p':
			if (apn_tool_parse_u32(optarg, 65535, &v) || !v)
				return bad_usage("bad port (1-65535)", optarg);
			eattr.port = (uint16_t)v;
			break;
		case 'q':
			quiet = 1;
			break;
		case 't':
			if (apn_tool_parse_u32(optarg, 86400, &v) || !v)
				return bad_usage("bad timeout (1 .. 86400 s)", optarg);
			timeout_s = (int)v;
			break;
		case 'P':
			if (mode || apn_tool_parse_hostport(optarg, &peer_host, &peer_port))
				return bad_usage("bad or second peer (HOST:PORT)", optarg);
			mode = 'P';
			break;
		case 'L':
			if (mode || apn_tool_parse_u32(optarg, 65535, &v) || !v)
				return bad_usage("bad or second listen port (1-65535)", optarg);
			eattr.port = (uint16_t)v;
			mode = 'L';
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return bad_usage(NULL, NULL);
		}
	}
	if (optind != argc)
		return bad_usage("unexpected argument", argv[optind]);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	r = apn_device_open(&dev, path);
	if (r)
		return fail(path ? path : APN_DEFAULT_DEVICE, r);
	/* A peer connection is set up at user level: a trusted endpoint (root anyway). */
	if (mode)
		eattr.flags = APN_ENDPOINT_F_TRUSTED;
	r = apn_endpoint_create(&ep, &dev, &eattr);
	if (r) {
		ret = fail("endpoint", r);
		goto out_dev;
	}
	if (mode) {
		rl.peer = &peer;
		/* Before attaching: the kernel's traffic goes on directly while we wait. */
		ret = peer_connect(&peer, &dev, &ep, peer_host, peer_port, mode == 'L', timeout_s);
		if (ret)
			goto out_ep;
		ret = 1;
	}
	r = apn_tunnel_attach(&rl.t, &ep, &attr);
	if (r) {
		if (r == -EPERM)
			fprintf(stderr, "apn-tunnel: attaching needs CAP_NET_ADMIN\n");
		else if (r == -EBUSY)
			fprintf(stderr, "apn-tunnel: the NIC has a tunnel already\n");
		else if (r == -EOPNOTSUPP)
			fprintf(stderr, "apn-tunnel: the NIC has no network interface\n");
		ret = fail("attach", r);
		goto out_ep;
	}
	printf("APN-TUNNEL-ATTACHED pid=%d slots=%u slot_bytes=%u watchdog_ms=%u\n",
	       (int)getpid(), rl.t.slots, rl.t.slot_bytes, rl.t.watchdog_ms);
	fflush(stdout);

	/* Kick at least every watchdog_ms / 3, idle or not. */
	period_ms = (int)rl.t.watchdog_ms / 3;
	if (period_ms < 1)
		period_ms = 1;
	next_stats = apn_tool_now() + 1;
	rl.last_kick = apn_tool_now();
	while (!stop_signal) {
		/*
		 * A peer's messages raise no interrupt: while it is up, look every
		 * millisecond or so; probe it (a flush stores) when we have been quiet.
		 */
		r = apn_tunnel_wait(&rl.t, peer.up ? 1 : period_ms);
		if (r < 0 && r != -EINTR) {
			ret = fail("wait", r);
			goto out_detach;
		}
		drain_events(&ep, rl.peer);
		r = 0;
		if (peer.up) {
			r = from_peer(&rl);
			if (peer.up && apn_tool_now() - peer.last_tx > period_ms / 1000.0) {
				if (apn_mq_flush(&peer.mq))
					peer_down(&peer, "tx-error");
				peer.last_tx = apn_tool_now();
			}
		}
		if (!r)
			r = relay_frames(&rl);
		/* Kick for what moved (the driver takes it, restarts a full queue), and as heartbeat. */
		if (!r && (rl.dirty || apn_tool_now() - rl.last_kick >= period_ms / 2000.0)) {
			r = apn_tunnel_kick(&rl.t);
			rl.kicks++;
			rl.dirty = 0;
			rl.last_kick = apn_tool_now();
		}
		if (r == -ENOTCONN || r == -EPROTO) {
			print_end(&rl, "APN-TUNNEL-FALLBACK", r == -EPROTO ? "EPROTO" : "ENOTCONN");
			fprintf(stderr, "apn-tunnel: the driver took the traffic back (%s)\n",
				r == -EPROTO ? "a bad value in the rings" :
				"watchdog expired or detached");
			ret = EXIT_FALLBACK;
			goto out_ep;
		}
		if (r) {
			ret = fail("relay", r);
			goto out_detach;
		}
		if (!quiet && apn_tool_now() >= next_stats) {
			fprintf(stderr, "apn-tunnel: frames=%llu kicks=%llu\n", rl.frames, rl.kicks);
			next_stats = apn_tool_now() + 1;
		}
	}
	ret = 0;
out_detach:
	r = apn_tunnel_detach(&rl.t);
	if (r == -ENOTCONN) {
		print_end(&rl, "APN-TUNNEL-FALLBACK", "ENOTCONN");
		ret = ret ? ret : EXIT_FALLBACK;
	} else if (r) {
		ret = fail("detach", r);
	} else {
		print_end(&rl, "APN-TUNNEL-DETACHED", NULL);
	}
out_ep:
	/* After a fallback the rings stay mapped until here: closing unmaps them. */
	if (rl.t.to_user)
		apn_tunnel_detach(&rl.t);
	peer_close(&peer);
	apn_endpoint_destroy(&ep);
out_dev:
	apn_device_close(&dev);
	return ret;
}
