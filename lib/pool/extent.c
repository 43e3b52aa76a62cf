/* SPDX-License-Identifier: MIT */
/* Layer 5: the free-extent list of the pool's arena (see pool/extent_int.h). */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "core/alloc_int.h"
#include "core/compiler_int.h"
#include "pool/extent_int.h"

#define EXTENT_ALIGN ((uint64_t)SHMQ__CACHELINE)

/* size rounded up to a whole line, or 0 if it is 0 or cannot be */
static uint64_t extent_round(uint64_t size)
{
	if (size == 0 || size > UINT64_MAX - (EXTENT_ALIGN - 1))
		return 0;
	return SHMQ__ALIGN_UP(size, EXTENT_ALIGN);
}

static void extent_remove(struct shmq__extents *a, size_t i)
{
	memmove(&a->v[i], &a->v[i + 1], (a->n - i - 1) * sizeof(*a->v));
	a->n--;
}

int shmq__extent_alloc(struct shmq__extents *a, uint64_t size, uint64_t *off)
{
	size = extent_round(size);
	if (size == 0)
		return -EINVAL;
	for (size_t i = 0; i < a->n; i++) {
		if (a->v[i].size < size)
			continue;
		*off = a->v[i].off;
		a->v[i].off += size;
		a->v[i].size -= size;
		if (a->v[i].size == 0)
			extent_remove(a, i);
		return 0;
	}
	return -ENOSPC;
}

int shmq__extent_free(struct shmq__extents *a, uint64_t off, uint64_t size)
{
	size_t i = 0;

	size = extent_round(size);
	if (size == 0 || off > UINT64_MAX - size)
		return -EINVAL;
	while (i < a->n && a->v[i].off < off)
		i++;
	/* i: the first extent at or after off; i - 1 the one before */
	if ((i > 0 && a->v[i - 1].off + a->v[i - 1].size > off) ||
	    (i < a->n && off + size > a->v[i].off))
		return -EINVAL;
	if (i > 0 && a->v[i - 1].off + a->v[i - 1].size == off) {
		a->v[i - 1].size += size;
		if (i < a->n && off + size == a->v[i].off) {
			a->v[i - 1].size += a->v[i].size;
			extent_remove(a, i);
		}
		return 0;
	}
	if (i < a->n && off + size == a->v[i].off) {
		a->v[i].off = off;
		a->v[i].size += size;
		return 0;
	}
	if (a->n == a->cap) {
		size_t nc = a->cap ? a->cap * 2 : 16;
		struct shmq__extent *nv = shmq__realloc(a->v, a->cap * sizeof(*a->v),
							nc * sizeof(*a->v));

		if (!nv)
			return -ENOMEM; /* the space is lost, nothing else */
		a->v = nv;
		a->cap = nc;
	}
	memmove(&a->v[i + 1], &a->v[i], (a->n - i) * sizeof(*a->v));
	a->v[i].off = off;
	a->v[i].size = size;
	a->n++;
	return 0;
}

uint64_t shmq__extent_largest(const struct shmq__extents *a)
{
	uint64_t best = 0;

	for (size_t i = 0; i < a->n; i++)
		if (a->v[i].size > best)
			best = a->v[i].size;
	return best;
}

void shmq__extent_fini(struct shmq__extents *a)
{
	shmq__free(a->v, a->cap * sizeof(*a->v));
	a->v = NULL;
	a->n = a->cap = 0;
}
