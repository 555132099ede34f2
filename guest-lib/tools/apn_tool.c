// SPDX-License-Identifier: GPL-2.0-or-later
/* Helpers shared by the apertnic tools. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apn_tool.h"

int apn_tool_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || *s < '0' || *s > '9')   /* no sign, no blanks */
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (*end)
		return -EINVAL;
	if (errno == ERANGE || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int apn_tool_parse_u32(const char *s, uint32_t max, uint32_t *out)
{
	uint64_t v;
	int r = apn_tool_parse_u64(s, max, &v);

	if (!r)
		*out = (uint32_t)v;
	return r;
}

int apn_ready_parse(const char *line, struct apn_ready *out)
{
	const char *p = line ? strstr(line, APN_READY_TAG) : NULL;
	uint64_t host = 0, idx = 0, nonce = 0;
	unsigned seen = 0;

	if (!p)
		return -EINVAL;
	p += strlen(APN_READY_TAG);
	if (*p && *p != ' ' && *p != '\t')
		return -EINVAL;
	for (;;) {
		char tok[64];
		const char *eq;
		uint64_t *dst, max;
		unsigned bit;
		size_t n;

		p += strspn(p, " \t\r\n");
		if (!*p)
			break;
		n = strcspn(p, " \t\r\n");
		if (n >= sizeof(tok))
			return -EINVAL;
		memcpy(tok, p, n);
		tok[n] = '\0';
		p += n;
		eq = strchr(tok, '=');
		if (!eq)
			return -EINVAL;
		if (!strncmp(tok, "host=", 5))
			dst = &host, max = UINT16_MAX, bit = 1;
		else if (!strncmp(tok, "in_index=", 9))
			dst = &idx, max = UINT32_MAX, bit = 2;
		else if (!strncmp(tok, "nonce=", 6))
			dst = &nonce, max = UINT32_MAX, bit = 4;
		else
			continue;
		if ((seen & bit) || apn_tool_parse_u64(eq + 1, max, dst))
			return -EINVAL;
		seen |= bit;
	}
	if (seen != 7)
		return -EINVAL;
	out->host = (uint16_t)host;
	out->in_index = (uint32_t)idx;
	out->nonce = (uint32_t)nonce;
	return 0;
}

int apn_ready_format(char *buf, size_t size, const struct apn_ready *r)
{
	return snprintf(buf, size, APN_READY_TAG " host=%u in_index=%u nonce=0x%08x",
			(unsigned)r->host, (unsigned)r->in_index, (unsigned)r->nonce);
}

void apn_tool_hex(char *out, const void *data, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *d = data;
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[2 * len] = '\0';
}

void apn_tool_text(char *out, const void *data, size_t len)
{
	const unsigned char *d = data;
	size_t i;

	for (i = 0; i < len; i++)
		out[i] = d[i] >= 0x20 && d[i] < 0x7f ? (char)d[i] : '.';
	out[len] = '\0';
}
