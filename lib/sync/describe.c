/* SPDX-License-Identifier: MIT */
/*
 * `shmq stat` for the sync objects: the describers of the lock and the
 * barrier (named in core/objkind_int.h's kind table; rules in
 * core/introspect_int.h), next to the layouts they read (sync/lock_int.h).
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>

#include <shmq.h>

#include "core/atomic_int.h"
#include "core/introspect_int.h"
#include "core/objkind_int.h"
#include "sync/lock_int.h"

/* The kind table's floors are these layouts (core cannot see them). */
_Static_assert(SHMQ__OBJ_MIN_LOCK == sizeof(struct shmq__lock_shm), "lock floor");
_Static_assert(SHMQ__OBJ_ALIGN_LOCK == 8, "lock floor: the word's alignment");
_Static_assert(SHMQ__OBJ_MIN_BARRIER == sizeof(struct shmq__barrier_shm), "barrier floor");
_Static_assert(SHMQ__OBJ_ALIGN_BARRIER == 8, "barrier floor: the word's alignment");

/* Lock: held or free, the holder and whether it is alive, whether waiters may
 * be asleep, and the futex waits and wakes.  A snapshot: the word may change
 * right after. */
void shmq__lock_describe(shmq_region *r, const void *mem, uint64_t size, struct shmq__obj_stat *st)
{
	const struct shmq__lock_shm *l = mem;

	if (size < sizeof(*l) || shmq__load_relaxed(&l->magic) != SHMQ__LOCK_MAGIC) {
		st->status = -EBADMSG; /* a snapshot: relaxed loads, no ordering needed */
		return;
	}
	uint32_t w = shmq__load_relaxed(&l->word); /* a snapshot */
	shmq__stat_bool(st, "held", w != 0);
	shmq__stat_bool(st, "contended", (w & SHMQ__LOCK_CONTENDED) != 0);
	shmq__stat_owner(st, r, "holder", w & SHMQ__LOCK_ID_MASK);
	shmq__stat_u64(st, "waits", shmq__load_relaxed(&l->waits)); /* counters: a snapshot */
	shmq__stat_u64(st, "wakes", shmq__load_relaxed(&l->wakes));
}

/* Barrier: parties, arrivals in this generation, generation, broken,
 * sleepers, and the futex waits and wakes. */
void shmq__barrier_describe(shmq_region *r, const void *mem, uint64_t size,
			    struct shmq__obj_stat *st)
{
	const struct shmq__barrier_shm *b = mem;

	if (size < sizeof(*b) || shmq__load_relaxed(&b->magic) != SHMQ__BARRIER_MAGIC) {
		st->status = -EBADMSG; /* a snapshot: relaxed loads throughout */
		return;
	}
	uint32_t parties = shmq__load_relaxed(&b->parties); /* read-only after init */
	uint32_t w = shmq__load_relaxed(&b->word);          /* a snapshot */
	uint32_t count = w & SHMQ__BARRIER_COUNT_MASK;
	if (parties == 0 || parties > SHMQ__BARRIER_MAX_PARTIES || count >= parties)
		st->status = -EBADMSG;
	shmq__stat_u64(st, "parties", parties);
	shmq__stat_u64(st, "waiting", count);
	shmq__stat_u64(st, "generation", w >> SHMQ__BARRIER_GEN_SHIFT);
	shmq__stat_bool(st, "broken", (w & SHMQ__BARRIER_BROKEN) != 0);
	shmq__stat_u64(st, "sleepers", shmq__load_relaxed(&b->sleepers)); /* a snapshot */
	shmq__stat_u64(st, "waits", shmq__load_relaxed(&b->waits));
	shmq__stat_u64(st, "wakes", shmq__load_relaxed(&b->wakes));
}
