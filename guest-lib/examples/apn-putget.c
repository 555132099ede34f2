// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * apn-putget: one-sided transfers with the DMA queues (seeds 000/001). The server
 * exposes a region of its memory through incoming apertures; the client PUTs a
 * buffer into it and GETs it back, posting requests into its request queue and
 * reaping completions, with no system call in either loop.
 *
 *   B$ apn-putget -L 5000
 *   A$ apn-putget -C 2:5000 -b 1048576
 *
 * The handshake and the control messages (which apertures, checksum, invert) go
 * over a message queue. An outgoing aperture reaches at most the device's slot size
 * (apn_device_info().out_slot_size), so the region is cut into pieces of that size,
 * one incoming aperture each at the server, one outgoing aperture each at the
 * client; each piece moves in requests of -c CHUNK bytes, at most -q DEPTH of them
 * outstanding. The client checks that the server's checksum of what the PUTs wrote
 * equals its own, then has the server invert every byte and checks that the GETs
 * bring back exactly that.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "apn_example.h"

#define PROG       "apn-putget"
#define MQ_SIZE    8192
#define MAX_PIECES 400           /* in one region message */
#define OP_REGION  1
#define OP_SUM     2
#define OP_INVERT  3
#define OP_ERROR   0xff

struct pg {
	struct apn_ex_conn c;
	unsigned char *region;         /* the memory the DMA reaches */
	size_t bytes, piece, chunk;
	uint32_t npieces, nreqs;
	struct apn_mr mr;
	struct apn_in_aperture *ias;   /* server: one per piece; client: one, whole */
	struct apn_out_aperture *oas;  /* client: one per piece */
	uint32_t made;                 /* apertures created (per piece) */
	int local_ia;                  /* client: ias[0] created */
};

static uint32_t fnv(const unsigned char *p, size_t n)
{
	uint32_t h = 2166136261u;

	while (n--)
		h = (h ^ *p++) * 16777619u;
	return h;
}

/* A control message: waits for it without system calls. Its length, or -errno. */
static int ctl_recv(struct pg *p, uint32_t *msg, size_t max)
{
	return apn_ex_recv(&p->c, msg, max);
}

static int ctl_send(struct pg *p, const uint32_t *msg, size_t words)
{
	return apn_ex_send(&p->c, msg, words * 4);
}

/* Client: a request of `words` in msg, and the server's answer in its place. */
static int ctl_call(struct pg *p, uint32_t *msg, size_t words, size_t max)
{
	int r = ctl_send(p, msg, words);

	return r ? r : ctl_recv(p, msg, max);
}

static int region_alloc(struct pg *p, size_t bytes)
{
	p->bytes = bytes;
	p->region = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p->region == MAP_FAILED) {
		p->region = NULL;
		return -ENOMEM;
	}
	madvise(p->region, bytes, MADV_DONTFORK);
	memset(p->region, 0, bytes);
	return apn_mr_reg(&p->mr, &p->c.ep, p->region, bytes);
}

static void region_free(struct pg *p)
{
	uint32_t i;

	for (i = 0; i < p->made; i++) {
		if (p->oas)
			apn_out_aperture_destroy(&p->oas[i]);
		else
			apn_in_aperture_destroy(&p->ias[i]);
	}
	if (p->local_ia)
		apn_in_aperture_destroy(&p->ias[0]);
	if (p->region) {
		apn_mr_dereg(&p->mr);
		munmap(p->region, p->bytes);
	}
	free(p->ias);
	free(p->oas);
}

/* ---- server ------------------------------------------------------------------------ */

/* Exposes a region of bytes in pieces: fills msg with their apertures. */
static int expose(struct pg *p, uint32_t bytes, uint32_t piece, uint32_t *msg)
{
	uint32_t i;
	int r;

	if (!bytes || !piece || bytes % piece || bytes / piece > MAX_PIECES || piece < 64 ||
	    (piece & (piece - 1)) || bytes > (16u << 20))
		return -EINVAL;
	r = region_alloc(p, bytes);
	if (r)
		return r;
	p->npieces = bytes / piece;
	p->piece = piece;
	p->ias = calloc(p->npieces, sizeof(*p->ias));
	if (!p->ias)
		return -ENOMEM;
	for (i = 0; i < p->npieces; i++, p->made++) {
		r = apn_in_aperture_create(&p->ias[i], &p->c.ep, &p->mr, (uint64_t)i * piece,
					   piece, 0, 0);
		if (r)
			return r;
		msg[2 + 2 * i] = htole32(p->ias[i].in_index);
		msg[3 + 2 * i] = htole32(p->ias[i].nonce);
	}
	msg[0] = htole32(OP_REGION);
	msg[1] = htole32(p->npieces);
	return 0;
}

static int serve(struct pg *p)
{
	uint32_t msg[2 + 2 * MAX_PIECES];
	uint32_t served = 0;
	int r;

	for (;;) {
		uint32_t op, reply[2];

		r = ctl_recv(p, msg, sizeof(msg));
		if (r < 0)
			break;
		op = r >= 4 ? le32toh(msg[0]) : 0;
		if (op == OP_REGION && r == 12 && !p->region) {
			r = expose(p, le32toh(msg[1]), le32toh(msg[2]), msg);
			if (r) {
				apn_ex_fail(&p->c, "expose the region", r);
				reply[0] = htole32(OP_ERROR);
				reply[1] = htole32((uint32_t)-r);
				r = ctl_send(p, reply, 2);
			} else {
				printf("APN-PUTGET-SERVER region bytes=%zu pieces=%u\n", p->bytes,
				       p->npieces);
				fflush(stdout);
				r = ctl_send(p, msg, 2 + 2 * (size_t)p->npieces);
			}
		} else if (op == OP_SUM && p->region) {
			reply[0] = htole32(OP_SUM);
			reply[1] = htole32(fnv(p->region, p->bytes));
			r = ctl_send(p, reply, 2);
		} else if (op == OP_INVERT && p->region) {
			size_t i;

			for (i = 0; i < p->bytes; i++)
				p->region[i] ^= 0xff;
			reply[0] = htole32(OP_INVERT);
			r = ctl_send(p, reply, 1);
		} else {
			r = -EBADMSG;
		}
		if (r)
			break;
		served++;
	}
	printf("APN-PUTGET-SERVER requests=%u\n", served);
	fflush(stdout);
	if (r == -EPIPE)
		return 0;
	return apn_ex_fail(&p->c, r == -ETIMEDOUT ? "no request in time" : "serve", r);
}

/* ---- client ------------------------------------------------------------------------ */

/*
 * Posts one request per chunk (PUT or GET; request i moves bytes [i * chunk, +chunk)
 * through the outgoing aperture of its piece) and reaps every completion, without
 * system calls: posting waits (-EAGAIN) while the queues are full. Counts the
 * completions with a non-zero status or the wrong byte count in *errors and keeps
 * the first few in bad[].
 */
static int transfer(struct pg *p, int op, uint32_t *done, uint32_t *errors,
		    struct apn_event *bad, unsigned nbad)
{
	uint32_t posted = 0, per_piece = (uint32_t)(p->piece / p->chunk);
	uint64_t start = apn_ex_cycles();
	unsigned spins = 0;
	struct apn_event ev[16];
	int r, n, i;

	*done = *errors = 0;
	while (*done < p->nreqs) {
		while (posted < p->nreqs) {
			r = apn_dma_post(&p->c.ep, op, &p->oas[posted / per_piece],
					 (posted % per_piece) * (uint32_t)p->chunk, &p->ias[0],
					 posted * (uint32_t)p->chunk, (uint32_t)p->chunk, posted);
			if (r == -EAGAIN)
				break;
			if (r)
				return r;
			posted++;
		}
		apn_dma_doorbell(&p->c.ep);
		n = apn_cq_poll(&p->c.ep, ev, 16);
		if (n < 0)
			return n;
		for (i = 0; i < n; i++) {
			uint8_t want = op == APN_DMA_PUT ? APN_EV_PUT_DONE : APN_EV_GET_DONE;

			/* in order, one each, all bytes */
			if (ev[i].type != want || ev[i].info || apn_cq_cookie(&ev[i]) != *done ||
			    apn_cq_bytes(&ev[i]) != p->chunk) {
				if (*errors < nbad)
					bad[*errors] = ev[i];
				++*errors;
			}
			++*done;
		}
		if (n) {
			start = apn_ex_cycles();
			continue;
		}
		if (++spins % APN_EX_CHECK_EVERY)
			continue;
		r = apn_ex_events(&p->c);
		if (r)
			return r;
		if (apn_ex_cycles() - start > p->c.timeout_cycles)
			return -ETIMEDOUT;
	}
	return 0;
}

static void fill(unsigned char *buf, size_t n)
{
	uint32_t s = 0x12345678;
	size_t i;

	for (i = 0; i < n; i++) {
		s = s * 1103515245u + 12345u;
		buf[i] = (unsigned char)(s >> 16);
	}
}

static int phase(struct pg *p, int op, uint32_t *errors)
{
	struct apn_event bad[4];
	struct apn_ex_sysc sc;
	uint64_t t0, cycles;
	uint32_t done, i;
	int r;

	apn_ex_sysc_open(&sc);
	apn_ex_sysc_start(&sc);
	t0 = apn_ex_cycles();
	r = transfer(p, op, &done, errors, bad, 4);
	cycles = apn_ex_cycles() - t0;
	apn_ex_sysc_stop(&sc);
	apn_ex_sysc_close(&sc);
	if (r)
		return apn_ex_fail(&p->c, r == -ETIMEDOUT ? "completions did not come" :
				   op == APN_DMA_PUT ? "put" : "get", r);
	for (i = 0; i < *errors && i < 4; i++) {
		const char *why = apn_counter_name(bad[i].info);

		fprintf(stderr, PROG ": bad completion: type %u status %s cookie %u bytes %u\n",
			bad[i].type, bad[i].info ? (why ? why : "?") : "0",
			apn_cq_cookie(&bad[i]), apn_cq_bytes(&bad[i]));
	}
	printf("APN-PUTGET %s bytes=%zu requests=%u completions=%u errors=%u MB_per_s=%.2f",
	       op == APN_DMA_PUT ? "put" : "get", p->bytes, p->nreqs, done, *errors,
	       (double)p->bytes * p->c.cpu_us / (double)(cycles ? cycles : 1));
	apn_ex_sysc_print(stdout, &sc);
	printf("\n");
	fflush(stdout);
	return 0;
}

/* Before connecting: cuts the region into pieces an outgoing aperture reaches. */
static int plan(struct pg *p, size_t bytes, size_t chunk)
{
	struct apn_device_info info;
	int r = apn_device_info(&p->c.dev, &info);

	if (r)
		return apn_ex_fail(&p->c, "device info", r);
	if (!(info.caps & APN_DEVICE_CAP_DMA)) {
		fprintf(stderr, PROG ": the device has no DMA queues\n");
		return 1;
	}
	p->piece = bytes < info.out_slot_size ? bytes : info.out_slot_size;
	p->npieces = (uint32_t)(bytes / p->piece);
	p->chunk = chunk < p->piece ? chunk : p->piece;
	p->nreqs = (uint32_t)(bytes / p->chunk);
	if (p->npieces > MAX_PIECES) {
		fprintf(stderr, PROG ": %zu bytes need %u apertures of %zu (at most %u)\n", bytes,
			p->npieces, p->piece, MAX_PIECES);
		return 1;
	}
	return 0;
}

static int client(struct pg *p, size_t bytes)
{
	uint32_t msg[2 + 2 * MAX_PIECES], want_sum, errors = 0, i;
	unsigned char *expect;
	int r, ok;

	r = region_alloc(p, bytes);
	if (r)
		return apn_ex_fail(&p->c, "local region", r);
	p->ias = calloc(1, sizeof(*p->ias));
	p->oas = calloc(p->npieces, sizeof(*p->oas));
	expect = malloc(bytes);
	if (!p->ias || !p->oas || !expect) {
		free(expect);
		return apn_ex_fail(&p->c, "malloc", -ENOMEM);
	}
	r = apn_in_aperture_create(&p->ias[0], &p->c.ep, &p->mr, 0, bytes, 0, 0);
	if (r) {
		free(expect);
		return apn_ex_fail(&p->c, "local incoming aperture", r);
	}
	p->local_ia = 1;
	msg[0] = htole32(OP_REGION);
	msg[1] = htole32((uint32_t)bytes);
	msg[2] = htole32((uint32_t)p->piece);
	r = ctl_call(p, msg, 3, sizeof(msg));
	if (r >= 8 && le32toh(msg[0]) == OP_ERROR)
		r = -(int)le32toh(msg[1]);
	else if (r >= 0 && (r != (int)(8 + 8 * p->npieces) || le32toh(msg[0]) != OP_REGION ||
			    le32toh(msg[1]) != p->npieces))
		r = -EBADMSG;
	if (r < 0) {
		free(expect);
		return apn_ex_fail(&p->c, "server's region", r);
	}
	/* one outgoing aperture per piece of the server's region */
	for (i = 0; i < p->npieces; i++, p->made++) {
		r = apn_out_aperture_create(&p->oas[i], &p->c.ep, p->c.peer.src_host,
					    le32toh(msg[2 + 2 * i]), le32toh(msg[3 + 2 * i]),
					    p->piece);
		if (r) {
			free(expect);
			return apn_ex_fail(&p->c, "outgoing aperture", r);
		}
	}

	/* PUT: our bytes into the server's memory; it checksums what arrived */
	fill(p->region, bytes);
	if (phase(p, APN_DMA_PUT, &errors))
		goto fail;
	want_sum = fnv(p->region, bytes);
	msg[0] = htole32(OP_SUM);
	r = ctl_call(p, msg, 1, sizeof(msg));
	if (r != 8 || le32toh(msg[0]) != OP_SUM) {
		apn_ex_fail(&p->c, "server's checksum", r < 0 ? r : -EBADMSG);
		goto fail;
	}
	ok = !errors && le32toh(msg[1]) == want_sum;
	printf("APN-PUTGET put-check checksum=0x%08x remote_checksum=0x%08x match=%s\n", want_sum,
	       le32toh(msg[1]), ok ? "yes" : "no");
	fflush(stdout);
	if (!ok)
		goto fail;

	/* GET: the server inverts its bytes; we must read back exactly that */
	for (i = 0; i < bytes; i++)
		expect[i] = p->region[i] ^ 0xff;
	msg[0] = htole32(OP_INVERT);
	r = ctl_call(p, msg, 1, sizeof(msg));
	if (r != 4 || le32toh(msg[0]) != OP_INVERT) {
		apn_ex_fail(&p->c, "server's invert", r < 0 ? r : -EBADMSG);
		goto fail;
	}
	memset(p->region, 0, bytes);
	if (phase(p, APN_DMA_GET, &errors))
		goto fail;
	ok = !errors && !memcmp(p->region, expect, bytes);
	printf("APN-PUTGET get-check checksum=0x%08x match=%s\n", fnv(p->region, bytes),
	       ok ? "yes" : "no");
	fflush(stdout);
	free(expect);
	if (!ok)
		return 1;
	apn_mq_close(&p->c.mq);
	return 0;
fail:
	free(expect);
	return 1;
}

int main(int argc, char **argv)
{
	uint32_t bytes = 1u << 20, depth = 4, chunk = 16384;
	const struct apn_ex_opt opts[] = {
		{ .letter = 'b', .arg = "BYTES", .type = APN_EX_POW2, .val = &bytes,
		  .min = 4096, .max = 16u << 20,
		  .help = "region size, power of two, 4096 .. 16 MiB (default 1048576)" },
		{ .letter = 'c', .arg = "CHUNK", .type = APN_EX_POW2, .val = &chunk,
		  .min = 64, .max = 16u << 20,
		  .help = "bytes per request, power of two 64 .. 16 MiB (default 16384;\n"
			  "at most a piece, the device's outgoing slot size)" },
		{ .letter = 'q', .arg = "DEPTH", .type = APN_EX_POW2, .val = &depth,
		  .min = 2, .max = 4096,
		  .help = "request and completion queue depth: requests outstanding,\n"
			  "power of two 2 .. 4096 (default 4)" },
		{ 0 },
	};
	const struct apn_ex_cmd cmd = {
		.prog = PROG,
		.synopsis = "-L PORT\n"
			    "-C HOST:PORT [-b BYTES] [-c CHUNK] [-q DEPTH]",
		.listen_help = "serve: listen on UDP PORT (prints APN-READY host=H port=P) and\n"
			       "expose a region of the size the client asks for",
		.connect_help = "PUT BYTES into the server's region, GET them back, check both",
		.timeout_help = "seconds to connect and for each phase",
		.opts = opts,
		.epilogue = "Client prints APN-PUTGET put|get bytes= requests= completions= errors= match=yes|no\n"
			    "MB_per_s= syscalls= ... Needs a device with DMA queues.\n"
			    "Exit: 0 ok, 1 error or mismatch, 2 usage.\n",
	};
	struct apn_endpoint_attr attr = { 0 };
	struct apn_ex_args args;
	struct pg p;
	int ret;

	ret = apn_ex_parse_args(&cmd, argc, argv, &args);
	if (ret >= 0)
		return ret;
	memset(&p, 0, sizeof(p));
	if (!args.listening)
		attr.rq_size = depth;       /* the completion queue as deep */
	if (apn_ex_open(&p.c, &args, &attr, MQ_SIZE))
		return 1;
	ret = args.listening ? 0 : plan(&p, bytes, chunk);
	if (!ret)
		ret = apn_ex_handshake(&p.c, &args);
	if (!ret)
		ret = args.listening ? serve(&p) : client(&p, bytes);
	region_free(&p);
	apn_ex_close(&p.c);
	return ret;
}
