/* SPDX-License-Identifier: MIT */
/* Layer 2: the Chase-Lev deque's placement and checks (the operations are
 * inline in ring/deque_int.h). */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "ring/deque_int.h"

size_t shmq__deque_footprint(uint32_t capacity)
{
	if (capacity < 2 || capacity > SHMQ__DEQUE_MAX_CAP || !SHMQ__IS_POW2(capacity))
		return 0;
	return sizeof(struct shmq__deque_ctl) + (size_t)capacity * sizeof(uint64_t);
}

int shmq__deque_init(void *mem, uint32_t capacity)
{
	struct shmq__deque_ctl *c = mem;
	size_t sz = shmq__deque_footprint(capacity);

	if (!sz || !mem || ((uintptr_t)mem % SHMQ__CACHELINE) != 0)
		return -EINVAL;
	memset(mem, 0, sz);
	c->magic = SHMQ__DEQUE_MAGIC;
	c->capacity = capacity;
	/* published by whatever publishes mem (e.g. the directory's release
	 * store, or the spawn of the processes that attach it) */
	return 0;
}

int shmq__deque_attach(struct shmq__deque *d, void *mem, size_t size)
{
	struct shmq__deque_ctl *c = mem;
	uint32_t cap;

	if (!mem || size < sizeof(*c) || ((uintptr_t)mem % SHMQ__CACHELINE) != 0)
		return -EBADMSG;
	/* relaxed: immutable after init, which happened-before our attach
	 * (published by whatever published mem); checked, never trusted */
	cap = shmq__load_relaxed(&c->capacity);
	if (shmq__load_relaxed(&c->magic) != SHMQ__DEQUE_MAGIC)
		return -EBADMSG;
	if (shmq__deque_footprint(cap) == 0 || shmq__deque_footprint(cap) > size)
		return -EBADMSG;
	d->ctl = c;
	d->mask = (uint64_t)cap - 1;
	return 0;
}

int64_t shmq__deque_size(const struct shmq__deque *d)
{
	/* seq_cst: a consistent-enough snapshot for statistics and tests */
	uint64_t t = shmq__load_seq_cst(&d->ctl->top);
	uint64_t b = shmq__load_seq_cst(&d->ctl->bottom);
	int64_t n = (int64_t)(b - t);

	if (n < -1 || n > (int64_t)d->mask + 1)
		return shmq__load_seq_cst(&d->ctl->top) == t ? -EBADMSG : 0;
	return n < 0 ? 0 : n;
}

SHMQ__COLD int shmq__deque_corrupt(void)
{
	return -EBADMSG;
}
