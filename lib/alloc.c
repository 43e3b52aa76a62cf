/* SPDX-License-Identifier: MIT */
/* The one allocator for process-private memory.  jemalloc's sized API when
 * configured --with-jemalloc; libc otherwise. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"

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
