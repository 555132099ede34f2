/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Helpers shared by the apertnic tools (and unit-tested in tests/). */
#ifndef APN_TOOL_H
#define APN_TOOL_H

#include <stddef.h>
#include <stdint.h>

/* What apn-recv prints and apn-send -r reads: the receiver's address. */
struct apn_ready {
	uint16_t host;
	uint32_t in_index;
	uint32_t nonce;
};

#define APN_READY_TAG    "APN-READY"
#define APN_RECEIVED_TAG "APN-RECEIVED"
#define APN_SENT_TAG     "APN-SENT"

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

#endif /* APN_TOOL_H */
