/* SPDX-License-Identifier: MIT */
/* The one allocator for process-private memory.  jemalloc's sized API when
 * configured --with-jemalloc; libc otherwise. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/alloc_int.h"

#ifdef SHMQ_USE_JEMALLOC
#include <jemalloc/jemalloc.h>

void *shmq__malloc(size_t size)
{
	return mallocx(size ? size : 1, 0);
}

void *shmq__calloc(size_t n, size_t size)
{
	size_t total;

	if (__builtin_mul_overflow(n, size, &total))
		return NULL;
	return mallocx(total ? total : 1, MALLOCX_ZERO);
}

void *shmq__realloc(void *p, size_t old_size, size_t new_size)
{
	(void)old_size;
	if (!p)
		return shmq__malloc(new_size);
	return rallocx(p, new_size ? new_size : 1, 0);
}

void shmq__free(void *p, size_t size)
{
	if (p)
		sdallocx(p, size ? size : 1, 0);
}
#else
void *shmq__malloc(size_t size)
{
	return malloc(size ? size : 1);
}

void *shmq__calloc(size_t n, size_t size)
{
	return calloc(n ? n : 1, size ? size : 1);
}

void *shmq__realloc(void *p, size_t old_size, size_t new_size)
{
	(void)old_size;
	return realloc(p, new_size ? new_size : 1);
}

void shmq__free(void *p, size_t size)
{
	(void)size;
	free(p);
}
#endif

char *shmq__strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = shmq__malloc(n);

	if (d)
		memcpy(d, s, n);
	return d;
}

void shmq__strfree(char *s)
{
	if (s)
		shmq__free(s, strlen(s) + 1);
}

/* ---- page-granular buffers that grow without copying ---- */

static size_t pages_round(size_t size)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	return (size + pg - 1) & ~(pg - 1);
}

void *shmq__pages_alloc(size_t size)
{
	void *p = mmap(NULL, pages_round(size ? size : 1), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

void *shmq__pages_realloc(void *p, size_t old_size, size_t new_size)
{
	void *np;

	if (!p)
		return shmq__pages_alloc(new_size);
	np = mremap(p, pages_round(old_size ? old_size : 1), pages_round(new_size ? new_size : 1),
		    MREMAP_MAYMOVE);
	return np == MAP_FAILED ? NULL : np;
}

void shmq__pages_free(void *p, size_t size)
{
	if (p)
		munmap(p, pages_round(size ? size : 1));
}

void shmq__pages_prefault(void *p, size_t size)
{
#ifdef MADV_POPULATE_WRITE
	/* Best effort: one call instead of a fault per page; older kernels refuse. */
	madvise(p, pages_round(size), MADV_POPULATE_WRITE);
#else
	(void)p;
	(void)size;
#endif
}
