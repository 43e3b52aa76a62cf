/* SPDX-License-Identifier: MIT */
/*
 * An SPSC ring on the heap with both views attached, for the ring suites
 * (include after testutil.h and ring/spsc_int.h).
 */
#ifndef SPSC_RING_H
#define SPSC_RING_H

#include <stdlib.h>

struct ring {
	void *mem;
	size_t size;
	struct shmq__spsc_prod p;
	struct shmq__spsc_cons c;
};

/* A ring in a heap block of exactly its footprint, so that ASan flags any
 * access past the data area. */
static inline void ring_new(struct ring *t, uint64_t cap)
{
	t->size = shmq__spsc_footprint(cap);
	assert_true(t->size > 0);
	t->mem = aligned_alloc(64, t->size);
	assert_non_null(t->mem);
	assert_int_equal(shmq__spsc_init(t->mem, t->size, cap), 0);
	assert_int_equal(shmq__spsc_prod_attach(&t->p, t->mem, t->size), 0);
	assert_int_equal(shmq__spsc_cons_attach(&t->c, t->mem, t->size), 0);
}

static inline void ring_free(struct ring *t)
{
	free(t->mem);
}

#endif /* SPSC_RING_H */
