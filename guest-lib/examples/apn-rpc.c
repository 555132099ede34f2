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

#include "apn_example.h"

#define PROG        "apn-rpc"
#define OP_ADD      1

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

static int parse_i64(const char *s, int64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoll(s, &end, 0);
	return !*s || *end || errno ? -EINVAL : 0;
}

/* Receives exactly `len` bytes of one message, without system calls. 0 or -errno. */
static int recv_rec(struct apn_ex_conn *c, void *rec, size_t len)
{
	int r = apn_ex_recv(c, rec, len);

	if (r >= 0 && (size_t)r != len)
		return -EBADMSG;
	return r < 0 ? r : 0;
}

/* requests and responses alternate: the ring is never full for long */
static int send_rec(struct apn_ex_conn *c, const void *rec, size_t len)
{
	return apn_ex_send(c, rec, len);
}

static int serve(struct apn_ex_conn *c)
{
	struct apn_ex_sysc sc;
	uint64_t served = 0;
	int r;

	c->timeout_cycles = 0;       /* a client may think as long as it likes */
	apn_ex_sysc_open(&sc);
	apn_ex_sysc_start(&sc);
	for (;;) {
		struct rpc_req q;
		struct rpc_resp a;

		r = recv_rec(c, &q, sizeof(q));
		if (r)
			break;
		memset(&a, 0, sizeof(a));
		a.id = q.id;
		if (le32toh(q.op) == OP_ADD)
			/* in unsigned arithmetic: wraps instead of overflowing */
			a.result = (int64_t)htole64(le64toh((uint64_t)q.a) + le64toh((uint64_t)q.b));
		else
			a.status = (int32_t)htole32((uint32_t)-EOPNOTSUPP);
		r = send_rec(c, &a, sizeof(a));
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
	return apn_ex_fail(c, r == -ECONNRESET ? "client gone" :
			   r == -EBADMSG ? "malformed request" : "serve", r);
}

/* One call: 0 with *sum, or -errno (-EPROTO: an answer to another call). */
static int call_add(struct apn_ex_conn *c, uint32_t id, int64_t a, int64_t b, int64_t *sum)
{
	struct rpc_req q = {
		.op = htole32(OP_ADD), .id = htole32(id),
		.a = (int64_t)htole64((uint64_t)a), .b = (int64_t)htole64((uint64_t)b),
	};
	struct rpc_resp resp;
	int r = send_rec(c, &q, sizeof(q));

	if (!r)
		r = recv_rec(c, &resp, sizeof(resp));
	if (r)
		return r;
	if (le32toh(resp.id) != id)
		return -EPROTO;
	if (resp.status)
		return (int32_t)le32toh((uint32_t)resp.status);
	*sum = (int64_t)le64toh((uint64_t)resp.result);
	return 0;
}

static int call_failed(struct apn_ex_conn *c, int r)
{
	if (r == -ETIMEDOUT)
		fprintf(stderr, PROG ": no answer within %u s\n", c->timeout_s);
	else
		apn_ex_fail(c, r == -ECONNRESET || r == -EPIPE ? "server gone" :
			    r == -EPROTO ? "answer to another call" : "call", r);
	return 1;
}

static int one_call(struct apn_ex_conn *c, int64_t a, int64_t b)
{
	int64_t sum = 0;
	int r = call_add(c, 1, a, b, &sum);

	if (r)
		return call_failed(c, r);
	apn_mq_close(&c->mq);
	printf("APN-RPC add %lld %lld = %lld\n", (long long)a, (long long)b, (long long)sum);
	fflush(stdout);
	return 0;
}

static int many_calls(struct apn_ex_conn *c, uint32_t count)
{
	uint64_t *lat = calloc(count, sizeof(*lat));
	uint32_t i, ok = 0, wrong = 0, x = 12345;
	struct apn_ex_sysc sc;
	int r = 0;

	if (!lat)
		return apn_ex_fail(c, "malloc", -ENOMEM);
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
		r = call_add(c, i + 1, a, b, &sum);
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
		return call_failed(c, r);
	}
	apn_mq_close(&c->mq);
	printf("APN-RPC calls=%u ok=%u errors=%u median_us=%.2f p99_us=%.2f", count, ok, wrong,
	       (double)apn_ex_quantile(lat, count, 0.5) / c->cpu_us,
	       (double)apn_ex_quantile(lat, count, 0.99) / c->cpu_us);
	apn_ex_sysc_print(stdout, &sc);
	printf("\n");
	fflush(stdout);
	free(lat);
	return wrong ? 1 : 0;
}

int main(int argc, char **argv)
{
	uint32_t count = 0;
	const struct apn_ex_opt opts[] = {
		{ .letter = 'n', .arg = "COUNT", .type = APN_EX_NUM, .val = &count,
		  .min = 1, .max = 100000000,
		  .help = "COUNT calls with random operands, each answer checked:\n"
			  "prints APN-RPC calls= ok= errors= median_us= p99_us= syscalls= ..." },
		{ 0 },
	};
	const struct apn_ex_cmd cmd = {
		.prog = PROG,
		.synopsis = "-L PORT\n"
			    "-C HOST:PORT [COMMON] add A B\n"
			    "-C HOST:PORT -n COUNT",
		.listen_help = "serve: listen on UDP PORT (prints APN-READY host=H port=P),\n"
			       "answer until the client closes (APN-RPC-SERVER served=N)",
		.connect_help = "call the server at cluster host HOST, PORT:\n"
				"add A B   one call: prints 'APN-RPC add A B = SUM' (A, B signed 64-bit)",
		.timeout_help = "seconds to connect and to wait for one answer",
		.opts = opts,
		.flags = APN_EX_F_ARGS,
		.epilogue = "Exit: 0 ok, 1 error or wrong answer, 2 usage.\n",
	};
	struct apn_ex_args args;
	int64_t a = 0, b = 0;
	struct apn_ex_conn c;
	int ret;

	ret = apn_ex_parse_args(&cmd, argc, argv, &args);
	if (ret >= 0)
		return ret;
	if (args.listening && (args.nrest || count))
		return apn_ex_bad_usage(&cmd, "-L takes no call", NULL);
	if (!args.listening) {
		if (count && args.nrest)
			return apn_ex_bad_usage(&cmd, "either -n COUNT or 'add A B'", NULL);
		if (!count && (args.nrest != 3 || strcmp(args.rest[0], "add")))
			return apn_ex_bad_usage(&cmd, "a call is 'add A B' (the only operation)", NULL);
		if (!count && (parse_i64(args.rest[1], &a) || parse_i64(args.rest[2], &b)))
			return apn_ex_bad_usage(&cmd, "A and B are signed 64-bit integers", NULL);
	}
	if (apn_ex_open(&c, &args, NULL, 4096))
		return 1;
	if (apn_ex_handshake(&c, &args))
		ret = 1;
	else if (args.listening)
		ret = serve(&c);
	else
		ret = count ? many_calls(&c, count) : one_call(&c, a, b);
	apn_ex_close(&c);
	return ret;
}
