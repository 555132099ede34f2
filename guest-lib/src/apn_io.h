/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Internal: copying into device memory (an outgoing aperture) with explicit
 * volatile stores in increasing address order. Kept apart from the device code so
 * the unit tests can run it on ordinary memory and, by defining the APN_IO_STORE*
 * hooks before including this file, record every store it makes.
 */
#ifndef APN_IO_H
#define APN_IO_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef APN_IO_STORE64
#define APN_IO_HOOKED 1  /* the includer records stores: keep them one by one */
#endif
#ifndef APN_IO_STORE8
#define APN_IO_STORE8(p, v)  (*(volatile uint8_t *)(p) = (v))
#endif
#ifndef APN_IO_STORE32
#define APN_IO_STORE32(p, v) (*(volatile uint32_t *)(p) = (v))
#endif
#ifndef APN_IO_STORE64
#define APN_IO_STORE64(p, v) (*(volatile uint64_t *)(p) = (v))
#endif

/*
 * Copies len bytes from src to base + off, where base is `size` bytes long.
 * Head: bytes until 4-byte aligned, then one 32-bit store if that reaches 8-byte
 * alignment; body: 64-bit stores (one `rep movsq` on x86-64); tail: one 32-bit
 * store, then bytes. Every store is naturally aligned (base must be 8-byte
 * aligned for that to hold) and each starts where the previous one ended. src
 * may be unaligned.
 * Returns 0, or -EINVAL (and stores nothing) if [off, off + len) exceeds size.
 */
static inline int apn_io_write(void *base, size_t size, size_t off,
			       const void *src, size_t len)
{
	const unsigned char *s = (const unsigned char *)src;
	unsigned char *d;

	if (off > size || len > size - off)
		return -EINVAL;
	d = (unsigned char *)base + off;

	while (len && ((uintptr_t)d & 3)) {
		APN_IO_STORE8(d, *s);
		d++, s++, len--;
	}
	if (len >= 4 && ((uintptr_t)d & 7)) {
		uint32_t v;

		memcpy(&v, s, 4);
		APN_IO_STORE32(d, v);
		d += 4, s += 4, len -= 4;
	}
#if defined(__x86_64__) && !defined(APN_IO_HOOKED)
	/*
	 * The body as one `rep movsq`: the same naturally aligned 64-bit stores in
	 * increasing address order (the ABI keeps DF clear). Under QEMU's TCG a
	 * string instruction ends its translation block, and only the last
	 * instruction of a block may touch device memory directly: a plain store
	 * anywhere else is rewound and run again alone (cpu_io_recompile), which
	 * was about a third of the emulated CPU's time per aperture store.
	 */
	if (len >= 8) {
		size_t words = len / 8;

		__asm__ __volatile__("rep movsq"
				     : "+D"(d), "+S"(s), "+c"(words)
				     :
				     : "memory");
		len &= 7;
	}
#else
	while (len >= 8) {
		uint64_t v;

		memcpy(&v, s, 8);
		APN_IO_STORE64(d, v);
		d += 8, s += 8, len -= 8;
	}
#endif
	if (len >= 4) {
		uint32_t v;

		memcpy(&v, s, 4);
		APN_IO_STORE32(d, v);
		d += 4, s += 4, len -= 4;
	}
	while (len) {
		APN_IO_STORE8(d, *s);
		d++, s++, len--;
	}
	return 0;
}

#endif /* APN_IO_H */
