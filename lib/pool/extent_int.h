/* SPDX-License-Identifier: MIT */
/*
 * Layer 5: the free-extent list, the pool creator's allocator for job memory
 * in the pool's arena (element copies and chunk-state arrays, see
 * pool/pool_layout_int.h).  A leaf: process-private memory only, nothing
 * shared, no locks; the caller serializes (the pool's mutex).
 *
 * Free space is a list of extents sorted by offset, never two adjacent ones
 * (freeing coalesces with both neighbours).  Sizes are rounded up to whole
 * cache lines, so every block handed out starts a line when the arena does.
 * Allocation is first fit.
 *
 *     struct shmq__extents a = { 0 };
 *     shmq__extent_free(&a, arena_off, arena_size);   // seed the arena
 *     if (shmq__extent_alloc(&a, need, &off) == 0)
 *             ...; shmq__extent_free(&a, off, need);
 *     shmq__extent_fini(&a);
 */
#ifndef SHMQ_POOL_EXTENT_INT_H
#define SHMQ_POOL_EXTENT_INT_H

#include <stddef.h>
#include <stdint.h>

struct shmq__extent {
	uint64_t off, size;
};

struct shmq__extents {
	struct shmq__extent *v; /* free extents, sorted by offset, coalesced */
	size_t n, cap;
};

/* The first free extent of at least size (rounded up to a cache line):
 * *off is its start.  -EINVAL for size 0 or one that cannot be rounded up,
 * -ENOSPC when no extent is large enough; either changes nothing. */
int shmq__extent_alloc(struct shmq__extents *a, uint64_t size, uint64_t *off);

/* Give [off, off + size) back (size rounded up as by alloc), coalescing with
 * its neighbours.  -EINVAL for size 0, a range that wraps, or one that
 * overlaps free space (a double free): nothing changes.  -ENOMEM when the
 * list cannot grow: the space is lost, nothing else. */
int shmq__extent_free(struct shmq__extents *a, uint64_t off, uint64_t size);

/* The size of the largest free extent, 0 if none. */
uint64_t shmq__extent_largest(const struct shmq__extents *a);

/* Free the list itself; a is empty afterwards. */
void shmq__extent_fini(struct shmq__extents *a);

#endif /* SHMQ_POOL_EXTENT_INT_H */
