/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Helpers shared by the apertnic tools (and unit-tested in tests/). */
#ifndef APN_TOOL_H
#define APN_TOOL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <apertnic/apertnic.h>

/* What apn-recv prints and apn-send -r reads: the receiver's address. */
struct apn_ready {
	uint16_t host;
	uint32_t in_index;
	uint32_t nonce;
};

#define APN_READY_TAG    "APN-READY"
#define APN_RECEIVED_TAG "APN-RECEIVED"
#define APN_SENT_TAG     "APN-SENT"
#define APN_CONNECTED_TAG "APN-CONNECTED"

/*
 * Parses an unsigned number (decimal, 0x-hex or 0-octal, as strtoul base 0) that
 * must be <= max and make up all of s. Returns 0 or -EINVAL / -ERANGE.
 */
int apn_tool_parse_u64(const char *s, uint64_t max, uint64_t *out);
int apn_tool_parse_u32(const char *s, uint32_t max, uint32_t *out);

/*
 * Finds "APN-READY" in line and parses the fields host=, in_index= and nonce=
 * after it (any order, separated by blanks; other fields ignored; a trailing
 * newline allowed). Returns 0, or -EINVAL if the tag or a field is missing,
 * repeated or malformed, or a value is out of range.
 */
int apn_ready_parse(const char *line, struct apn_ready *out);

/* Formats the APN-READY line (no newline) into buf; returns snprintf's result. */
int apn_ready_format(char *buf, size_t size, const struct apn_ready *r);

/* Writes 2 * len lowercase hex digits and a NUL to out. */
void apn_tool_hex(char *out, const void *data, size_t len);

/* Writes len characters (printable ASCII kept, others '.') and a NUL to out. */
void apn_tool_text(char *out, const void *data, size_t len);

/*
 * Parses "HOST:PORT" (host 0-65535, port 1-65535, numbers as apn_tool_parse_u32).
 * Returns 0, or -EINVAL / -ERANGE (outputs unchanged).
 */
int apn_tool_parse_hostport(const char *s, uint16_t *host, uint16_t *port);

/* Seconds on CLOCK_MONOTONIC. */
double apn_tool_now(void);

/*
 * Waits until the 32-bit little-endian word at `word` (memory a peer writes
 * through an aperture) is nonzero, or timeout_s seconds pass (0: forever);
 * spins a little, then sleeps 1 ms between looks. Returns the word (host order),
 * 0 on timeout.
 */
uint32_t apn_tool_wait_word(const uint32_t *word, double timeout_s);

/*
 * Prints "APN-RECEIVED len=DONE hex=... text=..." for the first min(done, size - 4)
 * bytes of buf to f. Returns 0 if done fits size - 4 and equals want (want 0:
 * any), else 1 with the reason on stderr (prefixed by prog).
 */
int apn_tool_print_received(FILE *f, const char *prog, const void *buf, uint32_t done,
			    uint32_t size, uint32_t want);

/*
 * Reports an event a tool did not expect: drops and errors the device reports
 * to the endpoint, and overflows, as lines on stdout a test can check
 *   APN-RX-DROP reason=<counter> in_index=I host=H
 *   APN-TX-ERROR reason=<counter> out_index=O remote_in_index=I
 *   APN-OVERFLOW queue=events|datagrams lost=N
 * anything else on stderr, prefixed by prog.
 */
void apn_tool_log_event(const char *prog, const struct apn_event *ev);

/*
 * Takes the endpoint's next event, sleeping in apn_endpoint_wait() (the
 * interrupt path) until one arrives or `deadline` (apn_tool_now() seconds)
 * passes. Returns 1 with *ev filled, 0 at the deadline, or -errno.
 */
int apn_tool_next_event(struct apn_endpoint *ep, double deadline, struct apn_event *ev);

/*
 * What a connecting tool holds: a trusted endpoint on `port` (0: any), `size`
 * bytes of zeroed registered memory behind an incoming aperture, and an unaimed
 * outgoing aperture of the same size (the handshake aims it).
 */
struct apn_tool_conn {
	struct apn_endpoint ep;
	unsigned char *buf;
	size_t maplen;
	struct apn_mr mr;
	struct apn_in_aperture ia;
	struct apn_out_aperture oa;
};

/* Returns 0, or 1 after printing "PROG: what failed: why" (nothing is left open). */
int apn_tool_conn_open(struct apn_tool_conn *c, const char *prog, struct apn_device *dev,
		       uint16_t port, uint32_t size);
void apn_tool_conn_close(struct apn_tool_conn *c);

#endif /* APN_TOOL_H */
