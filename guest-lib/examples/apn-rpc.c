// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * apn-rpc: a tiny request/response service over a message queue. The server
 * answers "add" requests; the client makes one call, or COUNT calls with random
 * operands whose answers it checks, and reports their latency. Requests and
 * responses are fixed little-endian records; the queue's read pointer travels
 * back with each response, so a call costs two messages and nothing more.
 *
 *   B$ apn-rpc -L 5000
 *   A$ apn-rpc -C 2:5000 add 2 40          -> APN-RPC add 2 40 = 42
 *   A$ apn-rpc -C 2:5000 -n 1000           -> APN-RPC calls=1000 ok=1000 ...
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apn_example.h"

#define PROG        "apn-rpc"
#define OP_ADD      1
#define CHECK_EVERY 1024

struct rpc_req {
	uint32_t op;                   /* OP_ADD */
	uint32_t id;                   /* echoed in the response */
	int64_t a, b;
};

struct rpc_resp {
	uint32_t id;
	int32_t status;                /* 0, or -EOPNOTSUPP for an unknown op */
	int64_t result;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " -L PORT [-t TIMEOUT_S] [-d DEV]\n"
		"       " PROG " -C HOST:PORT [-t TIMEOUT_S] [-d DEV] add A B\n"
		"       " PROG " -C HOST:PORT [-t TIMEOUT_S] [-d DEV] -n COUNT\n"
		"  -L PORT       serve: listen on UDP PORT (prints APN-READY host=H port=P),\n"
		"                answer until the client closes (APN-RPC-SERVER served=N)\n"
		"  -C HOST:PORT  call the server at cluster host HOST, PORT\n"
		"  add A B       one call: prints 'APN-RPC add A B = SUM' (A, B signed 64-bit)\n"
		"  -n COUNT      COUNT calls with random operands, each answer checked:\n"
		"                prints APN-RPC calls= ok= errors= median_us= p99_us= syscalls= ...\n"
		"  -t TIMEOUT    seconds to connect and to wait for one answer (default 30)\n"
		"  -d DEV        device (default " APN_DEFAULT_DEVICE ")\n"
		"Exit: 0 ok, 1 error or wrong answer, 2 usage.\n");
}

static int bad_usage(const char *msg, const char *arg)
{
	if (msg)
		fprintf(stderr, PROG ": %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
	usage(stderr);
	return 2;
}

static int parse_i64(const char *s, int64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoll(s, &end, 0);
	return !*s || *end || errno ? -EINVAL : 0;
}

struct rpc {
	struct apn_ex_conn c;
	double cpu_us;
	uint64_t timeout_cycles;
	unsigned timeout_s;
};

/* Receives exactly `len` bytes of one message, without system calls. 0 or -errno. */
static int recv_rec(struct rpc *p, void *rec, size_t len)
{
	uint64_t start = 0;
	unsigned spins = 0;
	int r;

	while ((r = apn_mq_recv(&p->c.mq, rec, len)) == -EAGAIN) {
		if (!spins++)
			start = apn_ex_cycles();
		if (spins % CHECK_EVERY)
			continue;
		r = apn_ex_events(&p->c);
		if (r)
			return r;
		if (p->timeout_cycles && apn_ex_cycles() - start > p->timeout_cycles)
			return -ETIMEDOUT;
	}
	if (r >= 0 && (size_t)r != len)
		return -EBADMSG;
	return r < 0 ? r : 0;
}

static int send_rec(struct rpc *p, const void *rec, size_t len)
{
	int r;

	/* requests and responses alternate: the ring is never full for long */
	while ((r = apn_mq_send(&p->c.mq, rec, len)) == -EAGAIN)
		if ((r = apn_ex_events(&p->c)))
			break;
	return r;
}

static int serve(struct rpc *p)
{
	struct apn_ex_sysc sc;
	uint64_t served = 0;
	int r;

	if (apn_ex_accept(&p->c, p->timeout_s))
		return 1;
	p->timeout_cycles = 0;         /* a client may think as long as it likes */
	apn_ex_sysc_open(&sc);
	apn_ex_sysc_start(&sc);
	for (;;) {
		struct rpc_req q;
		struct rpc_resp a;

		r = recv_rec(p, &q, sizeof(q));
		if (r)
			break;
		memset(&a, 0, sizeof(a));
		a.id = q.id;
		if (le32toh(q.op) == OP_ADD)
			/* in unsigned arithmetic: wraps instead of overflowing */
			a.result = (int64_t)htole64(le64toh((uint64_t)q.a) + le64toh((uint64_t)q.b));
		else
			a.status = (int32_t)htole32((uint32_t)-EOPNOTSUPP);
		r = send_rec(p, &a, sizeof(a));
		if (r)
			break;
		served++;
	}
	apn_ex_sysc_stop(&sc);
	apn_ex_sysc_close(&sc);
	printf("APN-RPC-SERVER served=%llu", (unsigned long long)served);
	apn_ex_sysc_print(stdout, &sc);
	printf("\n");
	fflush(stdout);
	if (r == -EPIPE)
		return 0;          /* the client closed */
	return apn_ex_fail(&p->c, r == -ECONNRESET ? "client gone" :
			   r == -EBADMSG ? "malformed request" : "serve", r);
}

/* One call: 0 with *sum, or -errno (-EPROTO: an answer to another call). */
static int call_add(struct rpc *p, uint32_t id, int64_t a, int64_t b, int64_t *sum)
{
	struct rpc_req q = {
		.op = htole32(OP_ADD), .id = htole32(id),
		.a = (int64_t)htole64((uint64_t)a), .b = (int64_t)htole64((uint64_t)b),
	};
	struct rpc_resp resp;
	int r = send_rec(p, &q, sizeof(q));

	if (!r)
		r = recv_rec(p, &resp, sizeof(resp));
	if (r)
		return r;
	if (le32toh(resp.id) != id)
		return -EPROTO;
	if (resp.status)
		return (int32_t)le32toh((uint32_t)resp.status);
	*sum = (int64_t)le64toh((uint64_t)resp.result);
	return 0;
}

static int call_failed(struct rpc *p, int r)
{
	if (r == -ETIMEDOUT)
		fprintf(stderr, PROG ": no answer within %u s\n", p->timeout_s);
	else
		apn_ex_fail(&p->c, r == -ECONNRESET || r == -EPIPE ? "server gone" :
			    r == -EPROTO ? "answer to another call" : "call", r);
	return 1;
}

static int one_call(struct rpc *p, int64_t a, int64_t b)
{
	int64_t sum = 0;
	int r = call_add(p, 1, a, b, &sum);

	if (r)
		return call_failed(p, r);
	apn_mq_close(&p->c.mq);
	printf("APN-RPC add %lld %lld = %lld\n", (long long)a, (long long)b, (long long)sum);
	fflush(stdout);
	return 0;
}

static int many_calls(struct rpc *p, uint32_t count)
{
	uint64_t *lat = calloc(count, sizeof(*lat));
	uint32_t i, ok = 0, wrong = 0, x = 12345;
	struct apn_ex_sysc sc;
	int r = 0;

	if (!lat)
		return apn_ex_fail(&p->c, "malloc", -ENOMEM);
	apn_ex_sysc_open(&sc);
	apn_ex_sysc_start(&sc);
	for (i = 0; i < count; i++) {
		int64_t a, b, sum = 0;
		uint64_t t0;

		x = x * 1103515245u + 12345u;
		a = (int64_t)(x >> 4) - (1 << 26);
		x = x * 1103515245u + 12345u;
		b = (int64_t)x * 3 - 5000000000LL;
		t0 = apn_ex_cycles();
		r = call_add(p, i + 1, a, b, &sum);
		lat[i] = apn_ex_cycles() - t0;
		if (r)
			break;
		if (sum == a + b)
			ok++;
		else
			wrong++;
	}
	apn_ex_sysc_stop(&sc);
	apn_ex_sysc_close(&sc);
	if (r) {
		free(lat);
		return call_failed(p, r);
	}
	apn_mq_close(&p->c.mq);
	printf("APN-RPC calls=%u ok=%u errors=%u median_us=%.2f p99_us=%.2f", count, ok, wrong,
	       (double)apn_ex_quantile(lat, count, 0.5) / p->cpu_us,
	       (double)apn_ex_quantile(lat, count, 0.99) / p->cpu_us);
	apn_ex_sysc_print(stdout, &sc);
	printf("\n");
	fflush(stdout);
	free(lat);
	return wrong ? 1 : 0;
}

int main(int argc, char **argv)
{
	uint32_t port = 0, timeout = 30, count = 0;
	int opt, have_c = 0, have_l = 0, ret;
	uint16_t c_host = 0, c_port = 0;
	const char *dev = NULL;
	int64_t a = 0, b = 0;
	struct rpc p;

	while ((opt = getopt(argc, argv, "L:C:n:t:d:")) != -1) {
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
			if (apn_ex_parse_u32(optarg, 100000000, &count) || !count)
				return bad_usage("bad COUNT", optarg);
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
	if (have_l == have_c)
		return bad_usage("need exactly one of -L PORT and -C HOST:PORT", NULL);
	if (have_l && (optind != argc || count))
		return bad_usage("-L takes no call", NULL);
	if (have_c) {
		if (count && optind != argc)
			return bad_usage("either -n COUNT or 'add A B'", NULL);
		if (!count && (argc - optind != 3 || strcmp(argv[optind], "add")))
			return bad_usage("a call is 'add A B' (the only operation)", NULL);
		if (!count && (parse_i64(argv[optind + 1], &a) || parse_i64(argv[optind + 2], &b)))
			return bad_usage("A and B are signed 64-bit integers", NULL);
	}
	memset(&p, 0, sizeof(p));
	if (apn_ex_open(&p.c, PROG, dev, (uint16_t)port, 4096))
		return 1;
	p.timeout_s = timeout;
	p.cpu_us = apn_ex_cycles_per_us();
	p.timeout_cycles = (uint64_t)(p.cpu_us * 1e6 * timeout);
	if (have_l)
		ret = serve(&p);
	else if (apn_ex_connect(&p.c, c_host, c_port, timeout))
		ret = 1;
	else
		ret = count ? many_calls(&p, count) : one_call(&p, a, b);
	apn_ex_close(&p.c);
	return ret;
}
