/* SPDX-License-Identifier: MIT */
/*
 * Object fuzz targets (fuzz_lock.c, fuzz_barrier.c, fuzz_deque.c, ...): a
 * valid region image holding the objects of one module, built once per input
 * by the target's build callback; the input's patches (patch.h format) land
 * inside the objects' bytes (offsets taken modulo the span of the named
 * objects), so libFuzzer spends its time on ring indices, lengths and words
 * rather than on the region header that fuzz_region covers.
 *
 * FUZZ_EXPECT(rc, ...) aborts - a crash libFuzzer reports - when a reader
 * returns anything but the listed codes: a refusal must be -EBADMSG or the
 * call's documented error.
 */
#ifndef SHMQ_FUZZ_OBJIMAGE_H
#define SHMQ_FUZZ_OBJIMAGE_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <shmq.h>

#include "patch.h"
#include "core/region_int.h"

#define FUZZ_IMAGE_SIZE ((size_t)256 << 10)

static inline int fuzz_in(int rc, const int *ok, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (rc == ok[i])
			return 1;
	return 0;
}

#define FUZZ_EXPECT(rc, ...)                                                             \
	do {                                                                             \
		const int fuzz_ok_[] = { __VA_ARGS__ };                                  \
		int fuzz_rc_ = (int)(rc);                                                \
		if (!fuzz_in(fuzz_rc_, fuzz_ok_, sizeof(fuzz_ok_) / sizeof(fuzz_ok_[0]))) { \
			fprintf(stderr, "%s:%d: unexpected %d (%s)\n", __FILE__, __LINE__, \
				fuzz_rc_, shmq_strerror(fuzz_rc_));                      \
			abort();                                                         \
		}                                                                        \
	} while (0)

/* The span [lo, hi) of the objects named in names (type each), in r. */
static inline void fuzz_span(shmq_region *r, const char *const *names, const uint32_t *types,
			     size_t n, uint64_t *lo, uint64_t *hi)
{
	*lo = UINT64_MAX;
	*hi = 0;
	for (size_t i = 0; i < n; i++) {
		void *mem;
		uint64_t size, off;

		if (shmq__obj_find(r, names[i], types[i], &mem, &size))
			continue;
		off = shmq__region_off(r, mem);
		if (off < *lo)
			*lo = off;
		if (off + size > *hi)
			*hi = off + size;
	}
}

/* Build the image with build(r), then patch inside the named objects' span;
 * returns the fd (or -1). */
static inline int fuzz_object_image(int (*build)(shmq_region *r), const char *const *names,
				    const uint32_t *types, size_t n, const uint8_t *data,
				    size_t size)
{
	shmq_region *r;
	uint64_t lo, hi;
	int fd;

	if (shmq_region_create(NULL, &(struct shmq_region_opts){ .size = FUZZ_IMAGE_SIZE }, &r))
		return -1;
	if (build(r)) {
		shmq_region_close(r);
		return -1;
	}
	fuzz_span(r, names, types, n, &lo, &hi);
	fd = fcntl(shmq__region_fd(r), F_DUPFD_CLOEXEC, 0);
	shmq_region_close(r);
	if (fd >= 0 && lo < hi)
		fuzz_apply_patches_span(fd, lo, hi - lo, data, size);
	return fd;
}

/* One fuzz input on an object image: build and patch it as above, map it as
 * a region, hand that to read, unmap.  Returns 0 (libFuzzer's "go on"). */
static inline int fuzz_object_run(int (*build)(shmq_region *r), const char *const *names,
				  const uint32_t *types, size_t n, const uint8_t *data, size_t size,
				  void (*read)(shmq_region *r))
{
	shmq_region *r;
	int fd = fuzz_object_image(build, names, types, n, data, size);

	if (fd < 0)
		return 0;
	if (shmq__region_from_fd(fd, NULL, &r) == 0) {
		read(r);
		shmq_region_close(r);
	}
	close(fd);
	return 0;
}

#endif
