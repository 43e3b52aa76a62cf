/* SPDX-License-Identifier: MIT */
/* Applying fuzz patches to a memfd image (see fuzz.h). */
#ifndef SHMQ_FUZZ_PATCH_H
#define SHMQ_FUZZ_PATCH_H

#include <stdint.h>
#include <string.h>
#include <unistd.h>

/* Apply the patches in data (each: a 4-byte offset, taken modulo span, a
 * length byte, then that many bytes) at base + offset: with base 0 and the
 * image's size, anywhere in it; objimage.h keeps them inside one object. */
static inline void fuzz_apply_patches_span(int fd, uint64_t base, uint64_t span,
					   const uint8_t *data, size_t size)
{
	while (size >= 5 && span) {
		uint32_t off;
		size_t len;

		memcpy(&off, data, 4);
		len = data[4];
		data += 5;
		size -= 5;
		if (len > size)
			len = size;
		off = (uint32_t)(off % span);
		if (len > span - off)
			len = (size_t)(span - off);
		if (pwrite(fd, data, len, (off_t)(base + off)) < 0)
			return;
		data += len;
		size -= len;
	}
}

/* The same over the whole image. */
static inline void fuzz_apply_patches(int fd, uint64_t image_size, const uint8_t *data, size_t size)
{
	fuzz_apply_patches_span(fd, 0, image_size, data, size);
}

#endif
