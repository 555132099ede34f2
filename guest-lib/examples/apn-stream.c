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

struct stream {
	struct apn_ex_conn c;
	struct hello h;
	uint32_t kill_after;           /* 0: never */
	uint32_t batch;
	uint64_t idle_cycles;
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
			st->c.timeout_s, (unsigned long long)st->messages);
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
	return quiet > st->c.timeout_cycles ? -ETIMEDOUT : 0;
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
	       (unsigned long long)st->eagain, (double)st->cycles / st->c.cpu_us / 1e6,
	       (double)st->messages * st->c.cpu_us * 1e6 / (double)(st->cycles ? st->cycles : 1));
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
	       (double)st->cycles / st->c.cpu_us / 1e6,
	       (double)st->messages * st->c.cpu_us * 1e6 / (double)(st->cycles ? st->cycles : 1));
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
	uint32_t ap = 65536, idle = 2, largest;
	struct apn_ex_args args;
	struct stream st = {
		.h = { .count = 10000, .seed = 1, .min = 64, .max = 64 },
		.batch = 1,
	};
	const struct apn_ex_opt opts[] = {
		{ .letter = 'n', .arg = "COUNT", .type = APN_EX_NUM, .val = &st.h.count,
		  .max = 0x7fffffff, .help = "messages (default 10000)" },
		{ .letter = 'S', .arg = "MIN[-MAX]", .type = APN_EX_RANGE, .val = &st.h.min,
		  .val_hi = &st.h.max, .max = 1u << 30,
		  .help = "payload bytes, fixed or uniformly mixed (default 64)" },
		{ .letter = 'r', .arg = "SEED", .type = APN_EX_NUM, .val = &st.h.seed,
		  .max = 0xffffffffu, .help = "seed of the sizes and contents (default 1)" },
		{ .letter = 'b', .arg = "BATCH", .type = APN_EX_NUM, .val = &st.batch,
		  .min = 1, .max = 1u << 20,
		  .help = "publish the write pointer once per BATCH messages\n"
			  "(apn_mq_write + apn_mq_flush; default 1: apn_mq_send)" },
		{ .letter = 'K', .arg = "N", .type = APN_EX_NUM, .val = &st.kill_after,
		  .min = 1, .max = 0x7fffffff,
		  .help = "kill this process (SIGKILL) after N messages: a crash" },
		{ .letter = 'i', .arg = "IDLE", .type = APN_EX_NUM, .val = &idle, .min = 1, .max = 86400,
		  .help = "seconds without progress before probing the peer (default 2)" },
		{ .letter = 's', .arg = "APERTURE", .type = APN_EX_POW2, .val = &ap,
		  .min = 4096, .max = 65536,
		  .help = "bytes per aperture, power of two 4096..65536 (default 65536);\n"
			  "both sides must agree" },
		{ 0 },
	};
	const struct apn_ex_cmd cmd = {
		.prog = PROG,
		.synopsis = "-L PORT [-K N] [-i IDLE_S] [-s APERTURE]\n"
			    "-C HOST:PORT [-n COUNT] [-S MIN[-MAX]] [-r SEED] [-b BATCH] [-K N]\n"
			    " [-i IDLE_S] [-s APERTURE]",
		.listen_help = "receive: listen on UDP PORT (prints APN-READY host=H port=P)",
		.connect_help = "send to the receiver at cluster host HOST, PORT",
		.timeout_help = "seconds to connect, and without progress before giving up",
		.opts = opts,
		.epilogue = "Sender prints APN-STREAM-SENT messages= bytes= checksum= eagain= secs= msgs_per_s=\n"
			    "syscalls= ...; receiver APN-STREAM-RECEIVED messages= bytes= checksum= bad= lost= ...\n"
			    "On failure either prints APN-STREAM-ERROR error=E messages=N.\n"
			    "Exit: 0 ok (receiver: all messages, all intact), 1 error, 2 usage.\n",
	};
	int ret;

	ret = apn_ex_parse_args(&cmd, argc, argv, &args);
	if (ret >= 0)
		return ret;
	largest = (ap - APN_MQ_CTRL_SIZE) / 2 - APN_MQ_HDR_SIZE;
	if (st.h.max > largest) {
		fprintf(stderr, PROG ": MAX %u exceeds the largest message of a %u-byte aperture (%u)\n",
			st.h.max, ap, largest);
		return 2;
	}
	if (apn_ex_open(&st.c, &args, NULL, ap))
		return 1;
	st.idle_cycles = (uint64_t)(st.c.cpu_us * 1e6 * idle);
	if (apn_ex_handshake(&st.c, &args))
		ret = 1;
	else
		ret = args.listening ? receiver(&st) : sender(&st);
	apn_ex_close(&st.c);
	return ret;
}
