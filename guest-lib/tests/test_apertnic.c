// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests for libapertnic and the tools' helpers that need no device: the
 * aperture copy helper's store pattern (on ordinary memory), parameter checks
 * that fail before any system call, error paths on files that are not apertnic
 * devices, APN-READY and MAC parsing, and the counter name table.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Record every store apn_io_write() makes, then perform it. */
struct io_store {
	uintptr_t addr;
	unsigned width;
};
static struct io_store io_trace[8192];
static unsigned io_ntrace;

static void io_record(const volatile void *p, unsigned width)
{
	ck_assert_uint_lt(io_ntrace, sizeof(io_trace) / sizeof(io_trace[0]));
	io_trace[io_ntrace].addr = (uintptr_t)p;
	io_trace[io_ntrace].width = width;
	io_ntrace++;
}

#define APN_IO_STORE8(p, v)  (io_record((p), 1), *(volatile uint8_t *)(p) = (v))
#define APN_IO_STORE32(p, v) (io_record((p), 4), *(volatile uint32_t *)(p) = (v))
#define APN_IO_STORE64(p, v) (io_record((p), 8), *(volatile uint64_t *)(p) = (v))
#include "../src/apn_io.h"

#include <apertnic/apertnic.h>
#include "apertnic_hw.h"
#include "apn_tool.h"

#define FILL 0xa5

/* An 8-byte aligned aperture of `size` bytes with guard bytes on both sides. */
struct fake_mem {
	_Alignas(64) unsigned char guard_lo[64];
	unsigned char ap[4096];
	unsigned char guard_hi[64];
};
static struct fake_mem mem;

static void mem_reset(void)
{
	memset(&mem, FILL, sizeof(mem));
	io_ntrace = 0;
}

static void check_guards(void)
{
	unsigned i;

	for (i = 0; i < sizeof(mem.guard_lo); i++) {
		ck_assert_uint_eq(mem.guard_lo[i], FILL);
		ck_assert_uint_eq(mem.guard_hi[i], FILL);
	}
}

/*
 * The stores cover exactly [base + off, base + off + len), in increasing address
 * order, each starting where the previous ended, each naturally aligned and the
 * widest of 8/4/1 that alignment and the remaining length allow.
 */
static void check_trace(const unsigned char *start, size_t len)
{
	uintptr_t a = (uintptr_t)start;
	size_t rem = len;
	unsigned i;

	/* plain comparisons: ck_assert_*() per store is slow in the forked runner */
	for (i = 0; i < io_ntrace; i++) {
		unsigned want = (a % 8 == 0 && rem >= 8) ? 8 : (a % 4 == 0 && rem >= 4) ? 4 : 1;

		if (io_trace[i].addr != a || io_trace[i].width != want || rem < want)
			ck_abort_msg("len %zu: store %u is %u bytes at %#lx, expected %u at %#lx",
				     len, i, io_trace[i].width, (unsigned long)io_trace[i].addr,
				     want, (unsigned long)a);
		a += want;
		rem -= want;
	}
	if (rem)
		ck_abort_msg("len %zu: %zu bytes not stored", len, rem);
}

START_TEST(io_write_pattern)
{
	/* every offset and length in a 64-byte aperture, src aligned and not */
	unsigned char src[80];
	size_t off, len, mis, i;

	for (i = 0; i < sizeof(src); i++)
		src[i] = (unsigned char)(i * 7 + 1);
	for (mis = 0; mis < 8; mis++)
		for (off = 0; off <= 64; off++)
			for (len = 0; off + len <= 64; len++) {
				mem_reset();
				ck_assert_int_eq(apn_io_write(mem.ap, 64, off, src + mis, len), 0);
				for (i = 0; i < 128; i++) {
					unsigned want = i >= off && i < off + len ?
						src[mis + i - off] : FILL;

					if (mem.ap[i] != want)
						ck_abort_msg("off %zu len %zu mis %zu: byte %zu",
							     off, len, mis, i);
				}
				for (i = 0; i < sizeof(mem.guard_lo); i++)
					if (mem.guard_lo[i] != FILL)
						ck_abort_msg("off %zu len %zu: store below", off, len);
				check_trace(mem.ap + off, len);
			}
}
END_TEST

START_TEST(io_write_large)
{
	unsigned char src[4096];
	size_t i;

	for (i = 0; i < sizeof(src); i++)
		src[i] = (unsigned char)(i ^ (i >> 8));
	mem_reset();
	ck_assert_int_eq(apn_io_write(mem.ap, 4096, 0, src, 4096), 0);
	ck_assert_mem_eq(mem.ap, src, 4096);
	ck_assert_uint_eq(io_ntrace, 512);
	check_trace(mem.ap, 4096);

	mem_reset();
	ck_assert_int_eq(apn_io_write(mem.ap, 4096, 3, src + 1, 4093), 0);
	ck_assert_mem_eq(mem.ap + 3, src + 1, 4093);
	ck_assert_uint_eq(mem.ap[0], FILL);
	check_guards();
	check_trace(mem.ap + 3, 4093);
}
END_TEST

START_TEST(io_write_bounds)
{
	static const struct { size_t off, len; } bad[] = {
		{ 0, 65 }, { 64, 1 }, { 65, 0 }, { 63, 2 }, { 60, 8 },
		{ 8, SIZE_MAX }, { SIZE_MAX, 1 }, { SIZE_MAX, 0 }, { 1, SIZE_MAX - 0 },
	};
	unsigned char src[128] = { 0 };
	unsigned i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mem_reset();
		ck_assert_int_eq(apn_io_write(mem.ap, 64, bad[i].off, src, bad[i].len), -EINVAL);
		ck_assert_uint_eq(io_ntrace, 0);
		ck_assert_uint_eq(mem.ap[0], FILL);
	}
	mem_reset();
	ck_assert_int_eq(apn_io_write(mem.ap, 64, 64, src, 0), 0);
	ck_assert_int_eq(apn_io_write(mem.ap, 64, 60, src, 4), 0);
	ck_assert_uint_eq(io_ntrace, 1);
	ck_assert_int_eq(apn_io_write(mem.ap, 0, 0, src, 0), 0);
	ck_assert_int_eq(apn_io_write(mem.ap, 0, 0, src, 1), -EINVAL);
}
END_TEST

/* The library's own apn_out_aperture_write() and fences, on ordinary memory. */
START_TEST(out_aperture_on_memory)
{
	volatile uint32_t fence = 0xffffffffu;
	struct apn_out_aperture oa;
	struct apn_endpoint ep;
	uint32_t done = 5, got;

	mem_reset();
	memset(&oa, 0, sizeof(oa));
	oa.ptr = mem.ap;
	oa.size = 4096;
	oa.fence_reg = &fence;
	ck_assert_ptr_eq(apn_out_aperture_ptr(&oa), mem.ap);
	ck_assert_int_eq(apn_out_aperture_write(&oa, 0, "hello", 5), 0);
	ck_assert_int_eq(apn_out_aperture_write(&oa, 4092, &done, 4), 0);
	ck_assert_mem_eq(mem.ap, "hello", 5);
	memcpy(&got, mem.ap + 4092, 4);
	ck_assert_uint_eq(got, 5);
	ck_assert_int_eq(apn_out_aperture_write(&oa, 4093, &done, 4), -EINVAL);
	ck_assert_int_eq(apn_out_aperture_write(&oa, 4097, &done, 0), -EINVAL);
	ck_assert_int_eq(apn_out_aperture_write(&oa, 4096, &done, 0), 0);
	memcpy(&got, mem.ap + 4092, 4);
	ck_assert_uint_eq(got, 5);
	check_guards();

	apn_out_aperture_fence(&oa);
	ck_assert_uint_eq(fence, 0);

	fence = 0xffffffffu;
	memset(&ep, 0, sizeof(ep));
	ep.fence_reg = &fence;
	apn_endpoint_fence(&ep);
	ck_assert_uint_eq(fence, 0);
}
END_TEST

/* ---- parameter checks that must fail before any system call ---------------------- */

static unsigned count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned n = 0;

	ck_assert_ptr_nonnull(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

START_TEST(device_open_errors)
{
	char longpath[APN_PATH_MAX + 8];
	struct apn_device dev;
	unsigned fds = count_fds();

	ck_assert_int_eq(apn_device_open(&dev, "/nonexistent/apertnic0"), -ENOENT);
	/* not an apertnic device: GET_INFO fails, the file is closed again */
	ck_assert_int_eq(apn_device_open(&dev, "/dev/null"), -ENOTTY);
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	ck_assert_int_eq(apn_device_open(&dev, longpath), -ENAMETOOLONG);
	ck_assert_uint_eq(count_fds(), fds);
}
END_TEST

START_TEST(endpoint_create_errors)
{
	struct apn_device dev;
	struct apn_endpoint ep;
	unsigned fds = count_fds();

	memset(&dev, 0, sizeof(dev));
	dev.fd = -1;
	strcpy(dev.path, "/dev/null");
	ck_assert_int_eq(apn_endpoint_create(&ep, &dev, 0), -ENOTTY);
	strcpy(dev.path, "/nonexistent/apertnic0");
	ck_assert_int_eq(apn_endpoint_create(&ep, &dev, 0), -ENOENT);
	ck_assert_uint_eq(count_fds(), fds);
}
END_TEST

START_TEST(mr_reg_alignment)
{
	long pg = sysconf(_SC_PAGESIZE);
	struct apn_endpoint ep;
	struct apn_mr mr;
	char *buf = aligned_alloc((size_t)pg, 2 * (size_t)pg);

	ck_assert_ptr_nonnull(buf);
	memset(&ep, 0, sizeof(ep));
	ep.fd = -1;   /* a system call would fail with -EBADF */
	ck_assert_int_eq(apn_mr_reg(&mr, &ep, buf + 8, (size_t)pg), -EINVAL);
	ck_assert_int_eq(apn_mr_reg(&mr, &ep, buf, (size_t)pg + 1), -EINVAL);
	ck_assert_int_eq(apn_mr_reg(&mr, &ep, buf, 100), -EINVAL);
	ck_assert_int_eq(apn_mr_reg(&mr, &ep, buf, 0), -EINVAL);
	ck_assert_int_eq(apn_mr_reg(&mr, &ep, NULL, (size_t)pg), -EINVAL);
	/* a valid request reaches the (here invalid) file */
	ck_assert_int_eq(apn_mr_reg(&mr, &ep, buf, (size_t)pg), -EBADF);
	free(buf);
}
END_TEST

START_TEST(in_aperture_params)
{
	struct apn_endpoint ep, other;
	struct apn_in_aperture ia;
	struct apn_mr mr;

	memset(&ep, 0, sizeof(ep));
	ep.fd = -1;
	other = ep;
	memset(&mr, 0, sizeof(mr));
	mr.ep = &ep;
	mr.addr = mem.ap;
	mr.len = 8192;
	ck_assert_int_eq(apn_in_aperture_create(&ia, &ep, &mr, 0, 0, 0, 0), -EINVAL);
	ck_assert_int_eq(apn_in_aperture_create(&ia, &ep, &mr, 0, 32, 0, 0), -EINVAL);
	ck_assert_int_eq(apn_in_aperture_create(&ia, &ep, &mr, 0, 96, 0, 0), -EINVAL);
	ck_assert_int_eq(apn_in_aperture_create(&ia, &ep, &mr, 0, 16384, 0, 0), -EINVAL);
	ck_assert_int_eq(apn_in_aperture_create(&ia, &ep, &mr, 4096, 8192, 0, 0), -EINVAL);
	ck_assert_int_eq(apn_in_aperture_create(&ia, &ep, &mr, 8193, 64, 0, 0), -EINVAL);
	ck_assert_int_eq(apn_in_aperture_create(&ia, &ep, &mr, UINT64_MAX, 64, 0, 0), -EINVAL);
	ck_assert_int_eq(apn_in_aperture_create(&ia, &ep, &mr, 0, 64, 1u << 5, 0), -EINVAL);
	ck_assert_int_eq(apn_in_aperture_create(&ia, &other, &mr, 0, 64, 0, 0), -EINVAL);
	ck_assert_int_eq(apn_in_aperture_create(&ia, &ep, &mr, 4096, 4096,
						APN_IA_F_NONCE, 7), -EBADF);
}
END_TEST

START_TEST(out_aperture_params)
{
	struct apn_out_aperture oa;
	struct apn_endpoint ep;

	memset(&ep, 0, sizeof(ep));
	ep.fd = -1;
	ep.out_slot_size = 4096;
	ck_assert_int_eq(apn_out_aperture_create(&oa, &ep, 1, 0, 0, 0), -EINVAL);
	ck_assert_int_eq(apn_out_aperture_create(&oa, &ep, 1, 0, 0, 3000), -EINVAL);
	ck_assert_int_eq(apn_out_aperture_create(&oa, &ep, 1, 0, 0, 8192), -EINVAL);
	ck_assert_int_eq(apn_out_aperture_create(&oa, &ep, 1, 0, 0, 4096), -EBADF);
}
END_TEST

/* ---- APN-READY lines -------------------------------------------------------------- */

START_TEST(ready_parse_good)
{
	struct apn_ready r;
	char buf[128];

	ck_assert_int_eq(apn_ready_parse("APN-READY host=2 in_index=5 nonce=0x1234abcd\n", &r), 0);
	ck_assert_uint_eq(r.host, 2);
	ck_assert_uint_eq(r.in_index, 5);
	ck_assert_uint_eq(r.nonce, 0x1234abcd);

	/* console noise before the tag, other order, CRLF, extra fields, decimal nonce */
	ck_assert_int_eq(apn_ready_parse("[  1.2] guest: APN-READY nonce=17 x=y "
					 "in_index=0 host=65535\r\n", &r), 0);
	ck_assert_uint_eq(r.host, 65535);
	ck_assert_uint_eq(r.in_index, 0);
	ck_assert_uint_eq(r.nonce, 17);

	ck_assert_int_eq(apn_ready_parse("APN-READY host=1 in_index=4294967295 "
					 "nonce=0xffffffff", &r), 0);
	ck_assert_uint_eq(r.in_index, UINT32_MAX);
	ck_assert_uint_eq(r.nonce, UINT32_MAX);

	/* what apn-recv prints parses back */
	r.host = 3, r.in_index = 9, r.nonce = 0xbeef;
	apn_ready_format(buf, sizeof(buf), &r);
	ck_assert_str_eq(buf, "APN-READY host=3 in_index=9 nonce=0x0000beef");
	memset(&r, 0, sizeof(r));
	ck_assert_int_eq(apn_ready_parse(buf, &r), 0);
	ck_assert_uint_eq(r.host, 3);
	ck_assert_uint_eq(r.in_index, 9);
	ck_assert_uint_eq(r.nonce, 0xbeef);
}
END_TEST

START_TEST(ready_parse_bad)
{
	static const char *const bad[] = {
		"",
		"host=1 in_index=2 nonce=3",                     /* no tag */
		"APN-READYhost=1 in_index=2 nonce=3",            /* tag glued to a field */
		"APN-READY host=1 in_index=2",                   /* nonce missing */
		"APN-READY in_index=2 nonce=3",                  /* host missing */
		"APN-READY host=1 nonce=3",                      /* in_index missing */
		"APN-READY host=65536 in_index=2 nonce=3",       /* host out of range */
		"APN-READY host=1 in_index=4294967296 nonce=3",
		"APN-READY host=1 in_index=2 nonce=0x100000000",
		"APN-READY host=-1 in_index=2 nonce=3",
		"APN-READY host=1 in_index=2 nonce=",
		"APN-READY host=1 in_index=2x nonce=3",
		"APN-READY host=1 in_index=2 nonce=0xzz",
		"APN-READY host=1 host=2 in_index=2 nonce=3",    /* repeated */
		"APN-READY host=1 in_index=2 nonce=3 junk",      /* not a field */
		"APN-RECEIVED len=3",
	};
	struct apn_ready r = { 7, 7, 7 };
	unsigned i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(apn_ready_parse(bad[i], &r) == -EINVAL, "accepted: %s", bad[i]);
	ck_assert_int_eq(apn_ready_parse(NULL, &r), -EINVAL);
	ck_assert_uint_eq(r.host, 7);
}
END_TEST

START_TEST(parse_numbers)
{
	uint32_t v;

	ck_assert_int_eq(apn_tool_parse_u32("0x10", UINT32_MAX, &v), 0);
	ck_assert_uint_eq(v, 16);
	ck_assert_int_eq(apn_tool_parse_u32("65535", UINT16_MAX, &v), 0);
	ck_assert_uint_eq(v, 65535);
	ck_assert_int_eq(apn_tool_parse_u32("65536", UINT16_MAX, &v), -ERANGE);
	ck_assert_int_eq(apn_tool_parse_u32("99999999999999999999", UINT32_MAX, &v), -ERANGE);
	ck_assert_int_eq(apn_tool_parse_u32("-1", UINT32_MAX, &v), -EINVAL);
	ck_assert_int_eq(apn_tool_parse_u32(" 1", UINT32_MAX, &v), -EINVAL);
	ck_assert_int_eq(apn_tool_parse_u32("1 ", UINT32_MAX, &v), -EINVAL);
	ck_assert_int_eq(apn_tool_parse_u32("", UINT32_MAX, &v), -EINVAL);
	ck_assert_int_eq(apn_tool_parse_u32("12k", UINT32_MAX, &v), -EINVAL);
}
END_TEST

START_TEST(hex_and_text)
{
	static const unsigned char d[] = { 'h', 'i', 0, 0x7f, 0xff, ' ', '~', '\n' };
	char hex[2 * sizeof(d) + 1], text[sizeof(d) + 1];

	apn_tool_hex(hex, d, sizeof(d));
	ck_assert_str_eq(hex, "6869007fff207e0a");
	apn_tool_text(text, d, sizeof(d));
	ck_assert_str_eq(text, "hi... ~.");
	apn_tool_hex(hex, d, 0);
	ck_assert_str_eq(hex, "");
}
END_TEST

/* ---- MAC addresses ---------------------------------------------------------------- */

START_TEST(mac_parse)
{
	static const char *const bad[] = {
		"", "aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:ff:00", "aa:bb:cc:dd:ee:f",
		"a:bb:cc:dd:ee:ff", "aa-bb-cc-dd-ee-ff", "aa:bb:cc:dd:ee:fg",
		"aabb:cc:dd:ee:ff", "aa:bb:cc:dd:ee:ff ", " aa:bb:cc:dd:ee:ff",
		"aa:bb:cc:dd:ee:ff:", "0xa:bb:cc:dd:ee:ff",
	};
	uint8_t mac[6] = { 1, 2, 3, 4, 5, 6 };
	uint8_t want[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef };
	char buf[18];
	unsigned i;

	ck_assert_int_eq(apn_mac_parse("52:54:00:ab:cd:ef", mac), 0);
	ck_assert_mem_eq(mac, want, 6);
	ck_assert_int_eq(apn_mac_parse("52:54:00:AB:Cd:eF", mac), 0);
	ck_assert_mem_eq(mac, want, 6);
	ck_assert_str_eq(apn_mac_format(mac, buf), "52:54:00:ab:cd:ef");

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(mac, 0x11, 6);
		ck_assert_msg(apn_mac_parse(bad[i], mac) == -EINVAL, "accepted: '%s'", bad[i]);
		ck_assert_uint_eq(mac[5], 0x11);   /* unchanged on error */
	}
	ck_assert_int_eq(apn_mac_parse(NULL, mac), -EINVAL);
}
END_TEST

/* ---- counters and version --------------------------------------------------------- */

START_TEST(counter_names)
{
	unsigned i, j, n = apn_counter_count();

	ck_assert_uint_eq(n, APN_CNT__COUNT);
	for (i = 0; i < n; i++) {
		const char *s = apn_counter_name(i);

		ck_assert_ptr_nonnull(s);
		ck_assert_uint_gt(strlen(s), 0);
		ck_assert_uint_eq(strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_"), strlen(s));
		for (j = 0; j < i; j++)
			ck_assert_str_ne(s, apn_counter_name(j));
	}
	ck_assert_ptr_null(apn_counter_name(n));
	ck_assert_ptr_null(apn_counter_name(~0u));
	ck_assert_str_eq(apn_counter_name(0), "tx_frames");
	ck_assert_str_eq(apn_counter_name(APN_CNT_RX_DROP_NONCE), "rx_drop_nonce");
	ck_assert_str_eq(apn_counter_name(APN_CNT_RX_DROP_BOUNDS), "rx_drop_bounds");
	ck_assert_str_eq(apn_counter_name(APN_CNT_IRQS), "irqs");
	ck_assert_uint_eq(APN_CNT_IRQS, APN_CNT__COUNT - 1);
}
END_TEST

#define STR_(x) #x
#define STR(x) STR_(x)

START_TEST(version)
{
	ck_assert_str_eq(apn_version(), APN_VERSION_STRING);
	ck_assert_str_eq(apn_version(), STR(APN_VERSION_MAJOR) "." STR(APN_VERSION_MINOR)
			 "." STR(APN_VERSION_PATCH));
}
END_TEST

static Suite *apertnic_suite(void)
{
	Suite *s = suite_create("libapertnic");
	TCase *tc;

	tc = tcase_create("copy");
	tcase_add_test(tc, io_write_pattern);
	tcase_add_test(tc, io_write_large);
	tcase_add_test(tc, io_write_bounds);
	tcase_add_test(tc, out_aperture_on_memory);
	suite_add_tcase(s, tc);

	tc = tcase_create("params");
	tcase_add_test(tc, device_open_errors);
	tcase_add_test(tc, endpoint_create_errors);
	tcase_add_test(tc, mr_reg_alignment);
	tcase_add_test(tc, in_aperture_params);
	tcase_add_test(tc, out_aperture_params);
	suite_add_tcase(s, tc);

	tc = tcase_create("parsing");
	tcase_add_test(tc, ready_parse_good);
	tcase_add_test(tc, ready_parse_bad);
	tcase_add_test(tc, parse_numbers);
	tcase_add_test(tc, hex_and_text);
	tcase_add_test(tc, mac_parse);
	suite_add_tcase(s, tc);

	tc = tcase_create("names");
	tcase_add_test(tc, counter_names);
	tcase_add_test(tc, version);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(apertnic_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
