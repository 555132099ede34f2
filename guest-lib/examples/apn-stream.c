// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * apn-stream: one-way message rate over a message queue, with every message
 * checked at the receiver and nothing lost: when the receiver's ring is full the
 * sender waits (apn_mq_send() returns -EAGAIN), it never drops.
 *
 *   B$ apn-stream -L 5000
 *   A$ apn-stream -C 2:5000 -n 100000 -S 16-1024
 *
 * The sender's first message tells the receiver the count, the sizes and the seed
 * from which both compute every message's length and bytes; both print the count,
 * the bytes and a checksum (FNV-1a over every length and payload), which must agree.
 * -K N makes either side kill itself (SIGKILL) after N messages, to see what the
 * survivor reports: stores toward a dead peer come back as APN_EV_TX_ERROR and the
 * queue fails with ECONNRESET (a receiver that hears nothing for -i seconds probes
 * the sender with apn_mq_flush() to find out).
 */
#include <endian.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apn_example.h"

#define PROG        "apn-stream"
#define HELLO_MAGIC 0x534e5041u    /* "APNS" */
#define CHECK_EVERY 4096           /* spins between looks at events and the clock */

struct hello {
	uint32_t magic;
	uint32_t count;
	uint32_t seed;
	uint32_t min, max;             /* payload sizes */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " -L PORT [-K N] [-i IDLE_S] [-s APERTURE] [-t TIMEOUT_S] [-d DEV]\n"
		"       " PROG " -C HOST:PORT [-n COUNT] [-S MIN[-MAX]] [-r SEED] [-b BATCH] [-K N]\n"
		"                  [-i IDLE_S] [-s APERTURE] [-t TIMEOUT_S] [-d DEV]\n"
		"  -L PORT       receive: listen on UDP PORT (prints APN-READY host=H port=P)\n"
		"  -C HOST:PORT  send to the receiver at cluster host HOST, PORT\n"
		"  -n COUNT      messages (default 10000)\n"
		"  -S MIN[-MAX]  payload bytes, fixed or uniformly mixed (default 64)\n"
		"  -r SEED       seed of the sizes and contents (default 1)\n"
		"  -b BATCH      publish the write pointer once per BATCH messages\n"
		"                (apn_mq_write + apn_mq_flush; default 1: apn_mq_send)\n"
		"  -K N          kill this process (SIGKILL) after N messages: a crash\n"
		"  -i IDLE       seconds without progress before probing the peer (default 2)\n"
		"  -s APERTURE   bytes per aperture, power of two 4096..65536 (default 65536);\n"
		"                both sides must agree\n"
		"  -t TIMEOUT    seconds to connect, and without progress before giving up\n"
		"                (default 30)\n"
		"  -d DEV        device (default " APN_DEFAULT_DEVICE ")\n"
		"Sender prints APN-STREAM-SENT messages= bytes= checksum= eagain= secs= msgs_per_s=\n"
		"syscalls= ...; receiver APN-STREAM-RECEIVED messages= bytes= checksum= bad= lost= ...\n"
		"On failure either prints APN-STREAM-ERROR error=E messages=N.\n"
		"Exit: 0 ok (receiver: all messages, all intact), 1 error, 2 usage.\n");
}

static int bad_usage(const char *msg, const char *arg)
{
	if (msg)
		fprintf(stderr, PROG ": %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
	usage(stderr);
	return 2;
}

struct stream {
	struct apn_ex_conn c;
	struct hello h;
	uint32_t kill_after;           /* 0: never */
	uint32_t batch;
	double cpu_us;
	uint64_t idle_cycles, timeout_cycles;
	unsigned timeout_s;
	/* results */
	uint64_t messages, bytes, eagain, bad;
	uint32_t sum;                  /* FNV-1a */
	struct apn_ex_sysc sc;
	uint64_t cycles;
};

/* Message i: its length, and its bytes. Both ends compute the same. */
static uint32_t msg_len(const struct hello *h, uint32_t i)
{
	uint32_t x = (h->seed ^ 0x9e3779b9u) * 2654435761u + i * 40503u;

	x ^= x >> 15;
	x *= 2246822519u;
	x ^= x >> 13;
	return h->min + x % (h->max - h->min + 1);
}

static void msg_fill(const struct hello *h, uint32_t i, unsigned char *buf, uint32_t len)
{
	uint32_t s = h->seed * 31u + i, j;

	for (j = 0; j < len; j++) {
		s = s * 1103515245u + 12345u;
		buf[j] = (unsigned char)(s >> 16);
	}
}

static uint32_t fnv(uint32_t sum, const void *p, size_t n)
{
	const unsigned char *b = p;

	while (n--)
		sum = (sum ^ *b++) * 16777619u;
	return sum;
}

static uint32_t account(struct stream *st, uint32_t sum, const unsigned char *buf, uint32_t len)
{
	uint32_t l = htole32(len);

	st->messages++;
	st->bytes += len;
	return fnv(fnv(sum, &l, 4), buf, len);
}

static void crash_if(const struct stream *st)
{
	if (st->kill_after && st->messages == st->kill_after) {
		printf("APN-STREAM-CRASH messages=%llu\n", (unsigned long long)st->messages);
		fflush(stdout);
		raise(SIGKILL);
	}
}

static const char *err_name(int err)
{
	switch (err) {
	case -ECONNRESET: return "ECONNRESET";
	case -ETIMEDOUT: return "ETIMEDOUT";
	case -EBADMSG: return "EBADMSG";
	case -EPIPE: return "EPIPE";
	default: return "EIO";
	}
}

static int report_error(struct stream *st, int err)
{
	printf("APN-STREAM-ERROR error=%s messages=%llu\n", err_name(err),
	       (unsigned long long)st->messages);
	fflush(stdout);
	if (err == -ECONNRESET)
		fprintf(stderr, PROG ": the peer is gone (its NIC refused our stores: %s) after %llu messages\n",
			strerror(ECONNRESET), (unsigned long long)st->messages);
	else if (err == -ETIMEDOUT)
		fprintf(stderr, PROG ": no progress for %u s after %llu messages (peer silent)\n",
			st->timeout_s, (unsigned long long)st->messages);
	else
		apn_ex_fail(&st->c, "stream", err);
	return 1;
}

/*
 * The peer made no progress for a while: look at events, probe it after `idle`
 * (a store it must accept), give up after the timeout. 0 to go on, or -errno.
 */
static int stalled(struct stream *st, uint64_t since, int *probed)
{
	uint64_t quiet = apn_ex_cycles() - since;
	int r = apn_ex_events(&st->c);

	if (r)
		return r;
	if (quiet > st->idle_cycles && !*probed) {
		*probed = 1;
		r = apn_mq_flush(&st->c.mq);
		if (r && r != -EPIPE)
			return r;
	}
	return quiet > st->timeout_cycles ? -ETIMEDOUT : 0;
}

static int sender(struct stream *st)
{
	unsigned char *buf = malloc(st->h.max + 1);
	struct hello wire;
	uint64_t t0;
	uint32_t i;
	int r = 0;

	if (!buf)
		return apn_ex_fail(&st->c, "malloc", -ENOMEM);
	wire.magic = htole32(HELLO_MAGIC);
	wire.count = htole32(st->h.count);
	wire.seed = htole32(st->h.seed);
	wire.min = htole32(st->h.min);
	wire.max = htole32(st->h.max);
	st->sum = 2166136261u;
	apn_ex_sysc_open(&st->sc);
	apn_ex_sysc_start(&st->sc);
	t0 = apn_ex_cycles();
	r = apn_mq_send(&st->c.mq, &wire, sizeof(wire));   /* the peer's ring is empty */
	for (i = 0; i < st->h.count && !r; i++) {
		uint32_t len = msg_len(&st->h, i);
		int batched = st->batch > 1 && (i + 1) % st->batch && i + 1 < st->h.count;
		uint64_t since = 0;
		unsigned spins = 0;
		int probed = 0;

		msg_fill(&st->h, i, buf, len);
		while ((r = batched ? apn_mq_write(&st->c.mq, buf, len) :
			    apn_mq_send(&st->c.mq, buf, len)) == -EAGAIN) {
			/* full: the peer has not consumed yet; publish what is batched */
			if (!spins++) {
				st->eagain++;
				since = apn_ex_cycles();
				apn_mq_flush(&st->c.mq);
			}
			if (spins % CHECK_EVERY == 0) {
				r = stalled(st, since, &probed);
				if (r)
					break;
			}
		}
		if (r)
			break;
		st->sum = account(st, st->sum, buf, len);
		if (st->kill_after && st->messages == st->kill_after) {
			apn_mq_flush(&st->c.mq);
			crash_if(st);
		}
	}
	st->cycles = apn_ex_cycles() - t0;
	apn_ex_sysc_stop(&st->sc);
	apn_ex_sysc_close(&st->sc);
	free(buf);
	if (r)
		return report_error(st, r);
	apn_mq_close(&st->c.mq);
	printf("APN-STREAM-SENT messages=%llu bytes=%llu checksum=0x%08x eagain=%llu secs=%.3f msgs_per_s=%.0f",
	       (unsigned long long)st->messages, (unsigned long long)st->bytes, st->sum,
	       (unsigned long long)st->eagain, (double)st->cycles / st->cpu_us / 1e6,
	       (double)st->messages * st->cpu_us * 1e6 / (double)(st->cycles ? st->cycles : 1));
	apn_ex_sysc_print(stdout, &st->sc);
	printf("\n");
	fflush(stdout);
	return 0;
}

/* Receives one message into buf, waiting without system calls. Length or -errno. */
static int next_msg(struct stream *st, unsigned char *buf, uint32_t max)
{
	uint64_t since = 0;
	unsigned spins = 0;
	int probed = 0, r;

	while ((r = apn_mq_recv(&st->c.mq, buf, max)) == -EAGAIN) {
		if (!spins++)
			since = apn_ex_cycles();
		if (spins % CHECK_EVERY == 0) {
			r = stalled(st, since, &probed);
			if (r)
				return r;
		}
	}
	return r;
}

static int receiver(struct stream *st)
{
	uint32_t max = (uint32_t)apn_mq_max_msg(&st->c.mq);
	unsigned char *buf = malloc(max + 1), *want = malloc(max + 1);
	uint64_t t0 = 0;
	struct hello h;
	int r;

	if (!buf || !want) {
		free(buf);
		free(want);
		return apn_ex_fail(&st->c, "malloc", -ENOMEM);
	}
	st->sum = 2166136261u;
	r = next_msg(st, buf, max);
	if (r >= 0 && (r != (int)sizeof(h) || (memcpy(&h, buf, sizeof(h)),
					       le32toh(h.magic) != HELLO_MAGIC)))
		r = -EBADMSG;
	if (r < 0)
		goto out;
	st->h.count = le32toh(h.count);
	st->h.seed = le32toh(h.seed);
	st->h.min = le32toh(h.min);
	st->h.max = le32toh(h.max);
	if (st->h.min > st->h.max || st->h.max > max) {
		r = -EBADMSG;
		goto out;
	}
	apn_ex_sysc_open(&st->sc);
	apn_ex_sysc_start(&st->sc);
	t0 = apn_ex_cycles();
	for (;;) {
		uint32_t i = (uint32_t)st->messages, len;

		r = next_msg(st, buf, max);
		if (r < 0)
			break;
		len = msg_len(&st->h, i);
		if (i >= st->h.count || (uint32_t)r != len) {
			st->bad++;
		} else {
			msg_fill(&st->h, i, want, len);
			if (memcmp(buf, want, len))
				st->bad++;
		}
		st->sum = account(st, st->sum, buf, (uint32_t)r);
		crash_if(st);
	}
	st->cycles = apn_ex_cycles() - t0;
	apn_ex_sysc_stop(&st->sc);
	apn_ex_sysc_close(&st->sc);
out:
	free(buf);
	free(want);
	if (r != -EPIPE)
		return report_error(st, r);
	printf("APN-STREAM-RECEIVED messages=%llu bytes=%llu checksum=0x%08x bad=%llu lost=%lld secs=%.3f msgs_per_s=%.0f",
	       (unsigned long long)st->messages, (unsigned long long)st->bytes, st->sum,
	       (unsigned long long)st->bad, (long long)st->h.count - (long long)st->messages,
	       (double)st->cycles / st->cpu_us / 1e6,
	       (double)st->messages * st->cpu_us * 1e6 / (double)(st->cycles ? st->cycles : 1));
	apn_ex_sysc_print(stdout, &st->sc);
	printf("\n");
	fflush(stdout);
	if (st->bad || st->messages != st->h.count) {
		fprintf(stderr, PROG ": %llu of %u messages received, %llu damaged\n",
			(unsigned long long)st->messages, st->h.count,
			(unsigned long long)st->bad);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	uint32_t port = 0, ap = 65536, timeout = 30, idle = 2, v;
	int opt, have_c = 0, have_l = 0, ret;
	uint16_t c_host = 0, c_port = 0;
	const char *dev = NULL;
	struct stream st;
	char *dash;

	memset(&st, 0, sizeof(st));
	st.h.count = 10000;
	st.h.seed = 1;
	st.h.min = st.h.max = 64;
	st.batch = 1;
	while ((opt = getopt(argc, argv, "L:C:n:S:r:b:K:i:s:t:d:")) != -1) {
		switch (opt) {
		case 'L':
			if (apn_ex_parse_u32(optarg, 65535, &port) || !port)
				return bad_usage("bad PORT (1-65535)", optarg);
			have_l = 1;
			break;
		case 'C':
			if (apn_ex_parse_hostport(optarg, &c_host, &c_port))
				return bad_usage("bad HOST:PORT", optarg);
			have_c = 1;
			break;
		case 'n':
			if (apn_ex_parse_u32(optarg, 0x7fffffff, &st.h.count))
				return bad_usage("bad COUNT", optarg);
			break;
		case 'S':
			dash = strchr(optarg, '-');
			if (dash)
				*dash = '\0';
			if (apn_ex_parse_u32(optarg, 1u << 30, &st.h.min))
				return bad_usage("bad MIN size", optarg);
			st.h.max = st.h.min;
			if (dash && (apn_ex_parse_u32(dash + 1, 1u << 30, &st.h.max) ||
				     st.h.min > st.h.max))
				return bad_usage("bad MAX size (MIN-MAX, MIN <= MAX)", dash + 1);
			break;
		case 'r':
			if (apn_ex_parse_u32(optarg, 0xffffffffu, &st.h.seed))
				return bad_usage("bad SEED", optarg);
			break;
		case 'b':
			if (apn_ex_parse_u32(optarg, 1u << 20, &st.batch) || !st.batch)
				return bad_usage("bad BATCH", optarg);
			break;
		case 'K':
			if (apn_ex_parse_u32(optarg, 0x7fffffff, &st.kill_after) || !st.kill_after)
				return bad_usage("bad N for -K", optarg);
			break;
		case 'i':
			if (apn_ex_parse_u32(optarg, 86400, &idle) || !idle)
				return bad_usage("bad IDLE", optarg);
			break;
		case 's':
			if (apn_ex_parse_u32(optarg, 65536, &ap) || ap < 4096 || (ap & (ap - 1)))
				return bad_usage("bad APERTURE (power of two, 4096..65536)", optarg);
			break;
		case 't':
			if (apn_ex_parse_u32(optarg, 86400, &timeout) || !timeout)
				return bad_usage("bad TIMEOUT (1..86400 s)", optarg);
			break;
		case 'd':
			dev = optarg;
			break;
		default:
			return bad_usage(NULL, NULL);
		}
	}
	if (optind != argc)
		return bad_usage("unexpected argument", argv[optind]);
	if (have_l == have_c)
		return bad_usage("need exactly one of -L PORT and -C HOST:PORT", NULL);
	v = (ap - APN_MQ_CTRL_SIZE) / 2 - APN_MQ_HDR_SIZE;
	if (st.h.max > v) {
		fprintf(stderr, PROG ": MAX %u exceeds the largest message of a %u-byte aperture (%u)\n",
			st.h.max, ap, v);
		return 2;
	}
	if (apn_ex_open(&st.c, PROG, dev, (uint16_t)port, ap))
		return 1;
	st.timeout_s = timeout;
	st.cpu_us = apn_ex_cycles_per_us();
	st.idle_cycles = (uint64_t)(st.cpu_us * 1e6 * idle);
	st.timeout_cycles = (uint64_t)(st.cpu_us * 1e6 * timeout);
	if (have_l)
		ret = apn_ex_accept(&st.c, timeout) ? 1 : receiver(&st);
	else
		ret = apn_ex_connect(&st.c, c_host, c_port, timeout) ? 1 : sender(&st);
	apn_ex_close(&st.c);
	return ret;
}
