// SPDX-License-Identifier: GPL-2.0-or-later
/* apnctl: query and administer an apertnic device. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <apertnic/apertnic.h>
#include "apn_tool.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: apnctl [-d DEV] info\n"
		"       apnctl [-d DEV] counters\n"
		"       apnctl [-d DEV] host-id N [A.B.C.D]\n"
		"       apnctl [-d DEV] route HOST aa:bb:cc:dd:ee:ff [A.B.C.D]\n"
		"       apnctl [-d DEV] route HOST clear\n"
		"  -d DEV  device (default " APN_DEFAULT_DEVICE ")\n"
		"host-id also sets the NIC's IPv4 address (source of its connection\n"
		"messages) when given; route also routes the host's connection messages\n"
		"to the IPv4 address (without one, messages to HOST fail).\n");
}

static int bad_usage(const char *msg, const char *arg)
{
	if (msg)
		fprintf(stderr, "apnctl: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
	usage(stderr);
	return 2;
}

static int fail(const char *what, const char *dev, int err)
{
	fprintf(stderr, "apnctl: %s %s: %s\n", what, dev, strerror(-err));
	return 1;
}

static int cmd_info(struct apn_device *dev)
{
	struct apn_device_info in;
	char mac[18], ip[16];
	int r = apn_device_info(dev, &in);

	if (r)
		return fail("info", dev->path, r);
	printf("device %s\n", dev->path);
	printf("library %s\n", apn_version());
	printf("abi_version %u\n", in.abi_version);
	printf("spec_version %u.%u\n", in.spec_version >> 16, in.spec_version & 0xffff);
	printf("mac %s\n", apn_mac_format(in.mac, mac));
	printf("host_id %u\n", in.host_id);
	printf("ip %s\n", apn_ipv4_format(in.ip, ip));
	printf("mtu %u\n", in.mtu);
	printf("num_out %u\n", in.num_out);
	printf("out_slot_size %u\n", in.out_slot_size);
	printf("max_in %u\n", in.max_in);
	printf("num_endpoints %u\n", in.num_endpoints);
	return 0;
}

static int cmd_counters(struct apn_device *dev)
{
	uint64_t v[256];
	int i, n = apn_device_counters(dev, v, sizeof(v) / sizeof(v[0]));

	if (n < 0)
		return fail("counters", dev->path, n);
	for (i = 0; i < n; i++) {
		const char *name = apn_counter_name((unsigned)i);

		if (name)
			printf("%s %llu\n", name, (unsigned long long)v[i]);
		else
			printf("counter%d %llu\n", i, (unsigned long long)v[i]);
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *path = NULL, *cmd;
	struct apn_device dev;
	int opt, r, ret;

	while ((opt = getopt(argc, argv, "d:")) != -1) {
		switch (opt) {
		case 'd':
			path = optarg;
			break;
		default:
			return bad_usage(NULL, NULL);
		}
	}
	if (optind >= argc)
		return bad_usage("missing command", NULL);
	cmd = argv[optind++];
	argc -= optind;
	argv += optind;

	/* check the arguments before touching the device */
	uint32_t num = 0, ip = 0;
	uint8_t mac[6] = { 0 };
	int clear = 0;

	if (!strcmp(cmd, "info") || !strcmp(cmd, "counters")) {
		if (argc)
			return bad_usage("too many arguments", NULL);
	} else if (!strcmp(cmd, "host-id")) {
		if (argc != 1 && argc != 2)
			return bad_usage("host-id takes N and an optional IPv4 address", NULL);
		if (apn_tool_parse_u32(argv[0], UINT16_MAX, &num))
			return bad_usage("bad host id (0-65535)", argv[0]);
		/* 0.0.0.0 would mean "leave unchanged" to the driver: refuse it */
		if (argc == 2 && (apn_ipv4_parse(argv[1], &ip) || !ip))
			return bad_usage("bad IPv4 address (a.b.c.d, not 0.0.0.0)", argv[1]);
	} else if (!strcmp(cmd, "route")) {
		if (argc != 2 && argc != 3)
			return bad_usage("route takes HOST, MAC and an optional IPv4 address", NULL);
		if (apn_tool_parse_u32(argv[0], UINT16_MAX, &num))
			return bad_usage("bad host (0-65535)", argv[0]);
		if (!strcmp(argv[1], "clear"))
			clear = 1;
		else if (apn_mac_parse(argv[1], mac))
			return bad_usage("bad MAC (aa:bb:cc:dd:ee:ff)", argv[1]);
		if (argc == 3 && (clear || apn_ipv4_parse(argv[2], &ip)))
			return bad_usage(clear ? "clear takes no address" : "bad IPv4 address (a.b.c.d)",
					 argv[2]);
	} else {
		return bad_usage("unknown command", cmd);
	}

	r = apn_device_open(&dev, path);
	if (r)
		return fail("open", path ? path : APN_DEFAULT_DEVICE, r);

	if (!strcmp(cmd, "info")) {
		ret = cmd_info(&dev);
	} else if (!strcmp(cmd, "counters")) {
		ret = cmd_counters(&dev);
	} else if (!strcmp(cmd, "host-id")) {
		r = apn_device_set_host_id(&dev, (uint16_t)num, ip);
		ret = r ? fail("set host id on", dev.path, r) : 0;
	} else {
		r = apn_device_set_route(&dev, (uint16_t)num, clear ? NULL : mac, ip);
		ret = r ? fail("set route on", dev.path, r) : 0;
	}
	apn_device_close(&dev);
	if (fflush(stdout) == EOF) {
		perror("apnctl: stdout");
		ret = 1;
	}
	return ret;
}
