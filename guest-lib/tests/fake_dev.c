// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A stand-in for /dev/apertnicN so the tools can run end to end on the build
 * machine: linked into test builds of the tools with
 *   -Wl,--wrap=open,--wrap=open64,--wrap=ioctl,--wrap=mmap,--wrap=mmap64
 * it intercepts the library's calls on the path "/fake/apertnic0". (meson
 * compiles with -D_FILE_OFFSET_BITS=64, under which glibc's headers turn open()
 * and mmap() into open64() and mmap64(): both names are wrapped.)
 *
 * "Device memory" is a directory ($APN_FAKE_DIR): creating an incoming aperture
 * replaces the registered pages with a shared file (in_<index>, MAP_FIXED) and
 * records its nonce; an outgoing aperture whose nonce and size fit maps that same
 * file, so stores arrive as they are made. Otherwise (wrong nonce, aperture larger
 * than the remote extent, unknown index) it maps scratch memory: the stores are
 * dropped, as the remote NIC would drop them, and the drop is counted in
 * drops_nonce / drops_bounds / drops_index. Single host: dest_host is ignored.
 * Not a model of the device (no frames, no gathering, no fences).
 *
 * Kernel connection management (APN_IOC_CONNECT/ACCEPT) follows the driver's
 * errno rules for the arguments (EINVAL for trusted endpoints, no endpoint or
 * reserved fields; EAGAIN with no CONNECT held) but sends nothing: the unit tests
 * hold CONNECTs and look at the last APN_IOC_CONNECT through fake_dev.h. Indices
 * are not checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apertnic.h"      /* uapi */
#include "apertnic_hw.h"
#include "fake_dev.h"

#define FAKE_PATH "/fake/apertnic0"
#define MAX_FD    1024
#define MAX_OBJ   64

int __real_open(const char *path, int flags, ...);
int __real_ioctl(int fd, unsigned long req, ...);
void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);

struct fake_mr { uint64_t addr, len; };
struct fake_out { int target; uint32_t in_index; uint32_t size; };
struct fake_held { uint16_t host, port; uint32_t in_index; };

static struct fake_file {
	int is_fake;
	int endpoint;              /* -1 before CREATE_ENDPOINT */
	uint64_t evq_bytes, varq_bytes;  /* queue sizes; mapped as empty (zeroed) memory */
	struct fake_mr mr[MAX_OBJ];
	unsigned nmr;
	struct fake_out out[MAX_OBJ];
	unsigned nout;
	int trusted;
	struct apn_conn_connect kconnect;  /* the last APN_IOC_CONNECT */
	unsigned nkconnect;
	struct fake_held held[APN_ACCEPT_BACKLOG];  /* CONNECTs "the kernel" holds */
	unsigned nheld;
} files[MAX_FD];

static const char *fake_dir(void)
{
	const char *d = getenv("APN_FAKE_DIR");

	return d ? d : "/tmp/apn-fake";
}

static void dir_path(char *buf, size_t n, const char *name, unsigned idx)
{
	snprintf(buf, n, "%s/%s_%u", fake_dir(), name, idx);
}

static int read_u32(const char *name, unsigned idx, uint32_t *v)
{
	char p[512];
	FILE *f;
	int ok;

	dir_path(p, sizeof(p), name, idx);
	f = fopen(p, "r");
	if (!f)
		return -1;
	ok = fscanf(f, "%u", v) == 1;
	fclose(f);
	return ok ? 0 : -1;
}

static void write_u32(const char *name, unsigned idx, uint32_t v)
{
	char p[512];
	FILE *f;

	dir_path(p, sizeof(p), name, idx);
	f = fopen(p, "w");
	if (f) {
		fprintf(f, "%u\n", v);
		fclose(f);
	}
}

static void count(const char *what)
{
	uint32_t v = 0;

	read_u32(what, 0, &v);
	write_u32(what, 0, v + 1);
}

int __wrap_open(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;
	int fd;

	va_start(ap, flags);
	mode = va_arg(ap, mode_t);
	va_end(ap);
	if (strcmp(path, FAKE_PATH))
		return __real_open(path, flags, mode);
	fd = __real_open("/dev/null", O_RDWR | (flags & O_CLOEXEC));
	if (fd >= 0 && fd < MAX_FD) {
		memset(&files[fd], 0, sizeof(files[fd]));
		files[fd].is_fake = 1;
		files[fd].endpoint = -1;
	}
	return fd;
}

static int fail(int e)
{
	errno = e;
	return -1;
}

static int fake_ioctl(struct fake_file *f, unsigned long req, void *arg)
{
	static unsigned next_endpoint;
	char p[512];

	switch (req) {
	case APN_IOC_GET_INFO: {
		struct apn_info *i = arg;
		const char *h = getenv("APN_FAKE_HOST");

		memset(i, 0, sizeof(*i));
		i->abi_version = APN_ABI_VERSION;
		i->spec_version = APN_SPEC_VERSION;
		memcpy(i->mac, "\x52\x54\x00\x12\x34\x56", 6);
		i->host_id = h ? (uint16_t)atoi(h) : 1;
		i->mtu = 1500;
		i->num_out = 64;
		i->out_slot_size = 65536;
		i->max_in = MAX_OBJ;
		i->num_endpoints = 16;
		i->endpoint = f->endpoint < 0 ? ~0u : (uint32_t)f->endpoint;
		return 0;
	}
	case APN_IOC_CREATE_ENDPOINT: {
		struct apn_endpoint_create *c = arg;

		if (f->endpoint >= 0)
			return fail(EBUSY);
		if (c->flags & ~APN_ENDPOINT_TRUSTED)
			return fail(EINVAL);
		f->endpoint = (int)next_endpoint++;
		f->trusted = !!(c->flags & APN_ENDPOINT_TRUSTED);
		c->endpoint = (uint32_t)f->endpoint;
		if (!c->port)
			c->port = (uint16_t)(APN_PORT_EPHEMERAL_MIN + c->endpoint);
		if (!c->evq_size)
			c->evq_size = APN_EVQ_DEFAULT_EVENTS;
		if (!c->varq_size)
			c->varq_size = APN_VARQ_DEFAULT_BYTES;
		f->evq_bytes = APN_QUEUE_DATA_OFFSET + (uint64_t)c->evq_size * 16;
		f->varq_bytes = APN_QUEUE_DATA_OFFSET + (uint64_t)c->varq_size;
		return 0;
	}
	case APN_IOC_REG_MR: {
		struct apn_mr_reg *m = arg;

		if (f->endpoint < 0)
			return fail(EINVAL);
		if ((m->addr | m->len) & (APN_PAGE_SIZE - 1) || !m->len || f->nmr == MAX_OBJ)
			return fail(EINVAL);
		f->mr[f->nmr].addr = m->addr;
		f->mr[f->nmr].len = m->len;
		m->mr_id = f->nmr++;
		return 0;
	}
	case APN_IOC_DEREG_MR:
	case APN_IOC_DESTROY_IN_APERTURE:
	case APN_IOC_DESTROY_OUT_APERTURE:
		return 0;
	case APN_IOC_CREATE_IN_APERTURE: {
		struct apn_in_aperture_create *c = arg;
		struct fake_mr *m;
		uint64_t start, maplen;
		unsigned idx;
		void *r;
		int fd;

		if (c->mr_id >= f->nmr || c->size < 64 || (c->size & (c->size - 1)))
			return fail(EINVAL);
		m = &f->mr[c->mr_id];
		if (c->mr_offset > m->len || c->size > m->len - c->mr_offset ||
		    (c->mr_offset & (APN_PAGE_SIZE - 1)))
			return fail(EINVAL);
		for (idx = 0; idx < MAX_OBJ; idx++) {
			uint32_t dummy;

			if (read_u32("nonce", idx, &dummy))
				break;
		}
		if (idx == MAX_OBJ)
			return fail(ENOSPC);
		start = m->addr + c->mr_offset;
		maplen = (c->size + APN_PAGE_SIZE - 1) & ~(uint64_t)(APN_PAGE_SIZE - 1);
		dir_path(p, sizeof(p), "in", idx);
		fd = __real_open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || ftruncate(fd, (off_t)maplen))
			return fail(EIO);
		/* the device would DMA into these pages: share them through the file */
		r = __real_mmap((void *)(uintptr_t)start, maplen, PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_FIXED, fd, 0);
		close(fd);
		if (r == MAP_FAILED)
			return fail(EIO);
		if (!(c->flags & APN_IN_APERTURE_NONCE_GIVEN))
			c->nonce = (uint32_t)random() ^ (uint32_t)getpid() << 8;
		c->in_index = idx;
		write_u32("size", idx, (uint32_t)c->size);
		write_u32("nonce", idx, c->nonce);
		return 0;
	}
	case APN_IOC_CREATE_OUT_APERTURE: {
		struct apn_out_aperture_create *c = arg;
		struct fake_out *o;
		uint32_t nonce, size;

		if (f->endpoint < 0 || f->nout == MAX_OBJ ||
		    !c->size || (c->size & (c->size - 1)) || c->size > 65536)
			return fail(EINVAL);
		o = &f->out[f->nout];
		o->size = c->size;
		o->in_index = c->dest_in_index;
		o->target = 0;
		if (read_u32("nonce", c->dest_in_index, &nonce) ||
		    read_u32("size", c->dest_in_index, &size))
			count("drops_index");
		else if (nonce != c->nonce)
			count("drops_nonce");
		else if (c->size > size)
			count("drops_bounds");
		else
			o->target = 1;
		c->out_index = f->nout;
		c->mmap_offset = APN_MMAP_OUT_BASE + (uint64_t)f->nout * 65536;
		f->nout++;
		return 0;
	}
	case APN_IOC_SET_HOST_ID:
	case APN_IOC_SET_ROUTE:
		return 0;
	case APN_IOC_CONNECT: {
		struct apn_conn_connect *c = arg;

		if (c->reserved || f->endpoint < 0 || f->trusted)
			return fail(EINVAL);
		f->kconnect = *c;
		f->nkconnect++;
		return 0;
	}
	case APN_IOC_ACCEPT: {
		struct apn_conn_accept *a = arg;
		unsigned i;

		if ((a->flags & ~APN_ACCEPT_PEER) || a->reserved[0] || a->reserved[1] ||
		    a->reserved[2] || f->endpoint < 0 || f->trusted)
			return fail(EINVAL);
		for (i = 0; i < f->nheld; i++)
			if (!(a->flags & APN_ACCEPT_PEER) ||
			    (f->held[i].host == a->peer_host && f->held[i].port == a->peer_port))
				break;
		if (i == f->nheld)
			return fail(EAGAIN);
		a->peer_host = f->held[i].host;
		a->peer_port = f->held[i].port;
		a->peer_in_index = f->held[i].in_index;
		memmove(&f->held[i], &f->held[i + 1], (f->nheld - i - 1) * sizeof(f->held[0]));
		f->nheld--;
		return 0;
	}
	case APN_IOC_GET_COUNTERS: {
		struct apn_counters *c = arg;
		unsigned i;

		memset(c, 0, sizeof(*c));
		c->count = APN_CNT__COUNT;
		for (i = 0; i < APN_CNT__COUNT; i++)
			c->value[i] = 1000 + i;
		return 0;
	}
	}
	return fail(ENOTTY);
}

int fake_dev_hold_connect(int fd, uint16_t host, uint16_t port, uint32_t in_index)
{
	struct fake_file *f;

	if (fd < 0 || fd >= MAX_FD || !files[fd].is_fake)
		return -EBADF;
	f = &files[fd];
	if (f->nheld == APN_ACCEPT_BACKLOG)
		return -ENOSPC;
	f->held[f->nheld].host = host;
	f->held[f->nheld].port = port;
	f->held[f->nheld].in_index = in_index;
	f->nheld++;
	return 0;
}

unsigned fake_dev_kconnects(int fd, struct apn_conn_connect *last)
{
	if (fd < 0 || fd >= MAX_FD || !files[fd].is_fake)
		return 0;
	if (last)
		*last = files[fd].kconnect;
	return files[fd].nkconnect;
}

int __wrap_ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (fd >= 0 && fd < MAX_FD && files[fd].is_fake)
		return fake_ioctl(&files[fd], req, arg);
	return __real_ioctl(fd, req, arg);
}

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	struct fake_file *f;
	struct fake_out *o;
	uint64_t slot;
	char p[512];
	void *r;
	int tfd;

	if (fd < 0 || fd >= MAX_FD || !files[fd].is_fake)
		return __real_mmap(addr, len, prot, flags, fd, off);
	f = &files[fd];
	if ((uint64_t)off == APN_MMAP_USER_PAGE) {
		if (f->endpoint < 0 || len > APN_USER_PAGE_SIZE)
			return errno = EINVAL, MAP_FAILED;
		return __real_mmap(addr, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	}
	if ((uint64_t)off == APN_MMAP_EVQ || (uint64_t)off == APN_MMAP_VARQ) {
		uint64_t max = (uint64_t)off == APN_MMAP_EVQ ? f->evq_bytes : f->varq_bytes;

		max = (max + APN_PAGE_SIZE - 1) & ~(uint64_t)(APN_PAGE_SIZE - 1);
		if (f->endpoint < 0 || len > max)
			return errno = EINVAL, MAP_FAILED;
		/* an endpoint queue nothing ever writes: always empty */
		return __real_mmap(addr, len, prot, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	}
	slot = ((uint64_t)off - APN_MMAP_OUT_BASE) / 65536;
	if ((uint64_t)off < APN_MMAP_OUT_BASE || slot >= f->nout || len > f->out[slot].size)
		return errno = EINVAL, MAP_FAILED;
	o = &f->out[slot];
	if (!o->target)   /* dropped at the "remote NIC" */
		return __real_mmap(addr, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	dir_path(p, sizeof(p), "in", o->in_index);
	tfd = __real_open(p, O_RDWR);
	if (tfd < 0)
		return MAP_FAILED;
	r = __real_mmap(addr, len, prot, MAP_SHARED, tfd, 0);
	close(tfd);
	return r;
}

int __wrap_open64(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = va_arg(ap, mode_t);
	va_end(ap);
	return __wrap_open(path, flags, mode);
}

void *__wrap_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return __wrap_mmap(addr, len, prot, flags, fd, off);
}
