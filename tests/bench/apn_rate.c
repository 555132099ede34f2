// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * apn_rate: one-way message rate of apertnic's user-level path, counting what
 * was delivered: 50-byte messages stored into a ring in the receiver's memory,
 * polled by the receiver, with credits (flow control) written back the same
 * way, so nothing is overwritten unread and nothing is lost unless the NIC
 * loses it. No system call and no interrupt per message.
 *
 *   apn_rate -s [-P PORT] [-t SECS]
 *       receiver: a trusted endpoint on PORT; sleeps until a CONNECT, then
 *       consumes that sender's messages (polling) until its end marker, reports
 *       what it counted and spent into the sender's memory, and waits for the
 *       next sender. Exits after SECS (default 3600) or when a sender asks.
 *   apn_rate -c HOST [-P PORT] [-T SECS] [-f EVERY] [-l LABEL] [-t LIMIT] [-q]
 *       sender to the receiver on cluster host HOST: stores messages as fast as
 *       it can for SECS seconds (default 3), waiting only for credits, and
 *       prints the line udp_rate prints (path=LABEL, default apn):
 *         BENCH rate path= size=50 secs= sent= delivered= loss_pct= sent_per_s=
 *               delivered_per_s= tx_syscalls_per_msg= ... rx_irqs_per_msg=
 *       -f EVERY fences every EVERY messages (default 0: only before waiting
 *       for credits and at the end; the NIC packs contiguous stores into
 *       frames up to its MTU and sends the rest after its short idle timer).
 *       -q stops the receiver afterwards.
 *
 * Ring: 1170 slots of 56 bytes in a 64 KiB aperture. A slot is seven 64-bit
 * stores in increasing address order: message bytes 0-47, then bytes 48-49 with
 * the tag (sequence number, 32 bits, then session, 16 bits) in the same word,
 * stored last. Consecutive slots are contiguous: the NIC gathers them. The
 * receiver gives credits back every 256 messages (a 64-bit store into the
 * sender's 4 KiB aperture).
 */
#define _GNU_SOURCE
#include <signal.h>

#include "apn_conn.h"

/* The device's interrupt lines: apertnicN (events) and apnN (its net_device's rings). */
#define APN_IRQS "apertnic|apn"

#define PROG       "apn_rate"
#define MSG_SIZE   50
#define SLOT       56
#define RING       65536
#define NSLOT      (RING / SLOT)
#define CREDIT_OFF 0
#define RES_OFF    64      /* delivered, irqs, ctxsw */
#define RES_FLAG   96
#define CREDIT_EVERY 256
#define SEQ_END    0u
#define SEQ_QUIT   0xffffffffu

static void usage(void)
{
	fprintf(stderr,
		"usage: apn_rate -s [-P PORT] [-t SECS]\n"
		"       apn_rate -c HOST [-P PORT] [-T SECS] [-f EVERY] [-l LABEL] [-t LIMIT] [-q]\n"
		"  -s          receiver\n"
		"  -c HOST     sender to the receiver on apertnic cluster host HOST\n"
		"  -P PORT     the receiver endpoint's UDP port (default 5002)\n"
		"  -T SECS     sending window (default 3)\n"
		"  -f EVERY    fence every EVERY messages (default 0: only when out of credits)\n"
		"  -l LABEL    path= field of the output (default apn)\n"
		"  -t LIMIT    whole-run limit in seconds (default 3600 receiver, SECS+117 sender)\n"
		"  -q          stop the receiver afterwards\n"
		"Needs CAP_NET_ADMIN (trusted endpoints) and IPv4 routes between the hosts.\n");
	exit(2);
}

static uint64_t tag_word(const unsigned char *msg, uint16_t sess, uint32_t seq)
{
	return (uint64_t)msg[48] | (uint64_t)msg[49] << 8 | (uint64_t)seq << 16 |
	       (uint64_t)sess << 48;
}

/* The end marker of session sess (never 0: a zeroed slot is not one). */
static int is_end(uint64_t w, uint16_t sess)
{
	uint32_t seq = (uint32_t)(w >> 16);

	return (uint16_t)(w >> 48) == sess && (seq == SEQ_END || seq == SEQ_QUIT);
}

static int receiver(long port)
{
	struct apn_conn c;

	if (apn_conn_serve(&c, PROG, "receiver", port, RING, 4096))
		return 1;
	for (;;) {
		long s = apn_conn_accept(&c, PROG, bench_now() + 3600);
		uint64_t delivered = 0, limit;
		uint32_t seq = 1;
		unsigned slot = 0;
		struct bench_cost cost;
		uint16_t sess = (uint16_t)s | 1;

		if (s <= 0)
			break;
		bench_calibrate();
		limit = bench_ticks(5e6);
		bench_cost_start(&cost, APN_IRQS);
		for (;;) {
			size_t off = (size_t)slot * SLOT + 48;
			uint64_t want = (uint64_t)seq << 16 | (uint64_t)sess << 48, w, t0 = bench_tsc();
			unsigned spins = 0;

			/* the next slot holds our sequence number, or the end marker */
			while (((w = apn_conn_load64(&c, off)) & ~0xffffull) != want && !is_end(w, sess)) {
				if (++spins % 4096 == 0 && bench_tsc() - t0 > limit)
					break;
			}
			if ((w & ~0xffffull) == want) {
				delivered++;
				seq++;
				if (++slot == NSLOT)
					slot = 0;
				if (delivered % CREDIT_EVERY == 0) {
					apn_conn_store64(&c, CREDIT_OFF, delivered);
					apn_out_aperture_fence(&c.oa);
				}
				continue;
			}
			if (is_end(w, sess)) {
				bench_cost_end(&cost, APN_IRQS);
				apn_conn_store64(&c, RES_OFF, delivered);
				apn_conn_store64(&c, RES_OFF + 8, cost.irqs);
				apn_conn_store64(&c, RES_OFF + 16, cost.ctxsw);
				apn_out_aperture_fence(&c.oa);
				apn_conn_store64(&c, RES_FLAG, (uint64_t)sess << 48 | 1);
				apn_out_aperture_fence(&c.oa);
				if ((uint32_t)(w >> 16) == SEQ_QUIT) {
					apn_conn_close(&c);
					return 0;
				}
				break;
			}
			fprintf(stderr, PROG ": sender silent for 5 s at message %u: next sender\n", seq);
			break;
		}
	}
	apn_conn_close(&c);
	return 0;
}

/*
 * Stores one 56-byte slot: seven 64-bit words in increasing address order, the
 * tag last, through the library's copy (apn_out_aperture_write()).
 */
static inline void store_slot(struct apn_conn *c, unsigned slot, const uint64_t *words, uint64_t tag)
{
	uint64_t w[SLOT / 8];

	memcpy(w, words, 6 * sizeof(*w));
	w[6] = tag;
	apn_out_aperture_write(&c->oa, (size_t)slot * SLOT, w, sizeof(w));
}

static int fence_every(const struct bench_args *a, void *ctx, int opt, const char *arg)
{
	bench_opt_long(a, opt, arg, "EVERY", 0, 1000000, ctx);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned char msg[MSG_SIZE];
	uint64_t words[6];
	struct bench_args a = {
		.prog = PROG, .usage = usage, .port = 5002, .window = 3, .label = "apn",
	};
	long every = 0;
	struct apn_conn c;
	uint64_t sent = 0, stalls = 0, t0, t1, end, wait_limit;
	unsigned long long delivered, rirqs, rctx;
	struct bench_cost cost;
	unsigned slot = 0;
	uint16_t sess;
	double secs, d;

	bench_parse_args(&a, argc, argv, "scPTltq", "f:", fence_every, &every);
	bench_time_limit(&a, a.window + 117);
	if (a.server)
		return receiver(a.port);

	if (apn_conn_client(&c, &a, 4096, RING))
		return 1;
	sess = (uint16_t)c.ia.nonce | 1;
	for (int i = 0; i < MSG_SIZE; i++)
		msg[i] = (unsigned char)(i + 1);
	memcpy(words, msg, sizeof(words));
	bench_calibrate();
	wait_limit = bench_ticks(5e6);

	bench_cost_start(&cost, APN_IRQS);
	t0 = bench_tsc();
	end = t0 + bench_ticks(a.window * 1e6);
	for (;;) {
		t1 = bench_tsc();
		if (t1 >= end)
			break;
		if (sent - apn_conn_load64(&c, CREDIT_OFF) >= NSLOT) {
			/* out of credits: push what is gathered, wait for the receiver */
			apn_out_aperture_fence(&c.oa);
			stalls++;
			while (sent - apn_conn_load64(&c, CREDIT_OFF) >= NSLOT)
				if (bench_tsc() - t1 > wait_limit)
					goto stuck;
			continue;
		}
		words[0] = sent; /* not read by the receiver; keeps the stores honest */
		store_slot(&c, slot, words, tag_word(msg, sess, (uint32_t)(sent + 1)));
		sent++;
		if (++slot == NSLOT)
			slot = 0;
		if (every && sent % every == 0)
			apn_out_aperture_fence(&c.oa);
	}
	/* the end marker needs a free slot too */
	while (sent - apn_conn_load64(&c, CREDIT_OFF) >= NSLOT) {
		apn_out_aperture_fence(&c.oa);
		if (bench_tsc() - t1 > wait_limit)
			goto stuck;
	}
	store_slot(&c, slot, words, tag_word(msg, sess, a.quit ? SEQ_QUIT : SEQ_END));
	apn_out_aperture_fence(&c.oa);
	bench_cost_end(&cost, APN_IRQS);
	secs = bench_us(t1 - t0) / 1e6;
	t1 = bench_tsc();
	while (apn_conn_load64(&c, RES_FLAG) != ((uint64_t)sess << 48 | 1))
		if (bench_tsc() - t1 > wait_limit) {
			fprintf(stderr, PROG ": no report from the receiver\n");
			return 1;
		}
	delivered = apn_conn_load64(&c, RES_OFF);
	rirqs = apn_conn_load64(&c, RES_OFF + 8);
	rctx = apn_conn_load64(&c, RES_OFF + 16);
	d = delivered ? (double)delivered : 1;
	printf("BENCH rate path=%s size=%d secs=%.3f sent=%llu delivered=%llu loss_pct=%.2f "
	       "sent_per_s=%.0f delivered_per_s=%.0f send_failed=0 credit_stalls=%llu "
	       "tx_syscalls_per_msg=%.3f tx_ctxsw_per_msg=%.4f tx_irqs_per_msg=%.4f "
	       "rx_syscalls_per_msg=%.3f rx_ctxsw_per_msg=%.4f rx_irqs_per_msg=%.4f\n",
	       a.label, MSG_SIZE, secs, (unsigned long long)sent, delivered,
	       sent ? 100.0 * (double)(sent - (delivered < sent ? delivered : sent)) / sent : 0,
	       sent / secs, delivered / secs, (unsigned long long)stalls,
	       0.0, sent ? (double)cost.ctxsw / sent : 0, sent ? (double)cost.irqs / sent : 0,
	       0.0, rctx / d, rirqs / d);
	fflush(stdout);
	apn_conn_close(&c);
	return 0;

stuck:
	fprintf(stderr, PROG ": no credits from the receiver for 5 s after %llu messages "
		"(delivered so far: %llu)\n", (unsigned long long)sent,
		(unsigned long long)apn_conn_load64(&c, CREDIT_OFF));
	apn_conn_close(&c);
	return 1;
}
