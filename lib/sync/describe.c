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
#include "sync/cond_int.h"
#include "sync/flag_int.h"
#include "sync/lock_int.h"
#include "sync/sem_int.h"

/* The kind table's floors are these layouts (core cannot see them). */
_Static_assert(SHMQ__OBJ_MIN_LOCK == sizeof(struct shmq__lock_shm), "lock floor");
_Static_assert(SHMQ__OBJ_ALIGN_LOCK == 8, "lock floor: the word's alignment");
_Static_assert(SHMQ__OBJ_MIN_BARRIER == sizeof(struct shmq__barrier_shm), "barrier floor");
_Static_assert(SHMQ__OBJ_ALIGN_BARRIER == 8, "barrier floor: the word's alignment");
_Static_assert(SHMQ__OBJ_MIN_FLAG == sizeof(struct shmq__flag_shm), "flag floor");
_Static_assert(SHMQ__OBJ_MIN_COND <= sizeof(struct shmq__cond_shm), "cond floor: the header");
_Static_assert(SHMQ__OBJ_MIN_SEM <= sizeof(struct shmq__sem_shm), "sem floor: the header");

/* Lock: held or free, the holder and whether it is alive, whether waiters may
 * be asleep, and the futex waits and wakes.  All loads relaxed: a snapshot
 * for `shmq stat` that orders nothing against the lock's users, and whose
 * words may each change right after (core/introspect_int.h). */
void shmq__lock_describe(shmq_region *r, const void *mem, uint64_t size, struct shmq__obj_stat *st)
{
	const struct shmq__lock_shm *l = mem;

	if (size < sizeof(*l) || shmq__load_relaxed(&l->magic) != SHMQ__LOCK_MAGIC) {
		st->status = -EBADMSG;
		return;
	}
	uint32_t w = shmq__load_relaxed(&l->word);
	shmq__stat_bool(st, "held", w != 0);
	shmq__stat_bool(st, "contended", (w & SHMQ__LOCK_CONTENDED) != 0);
	shmq__stat_owner(st, r, "holder", w & SHMQ__LOCK_ID_MASK);
	shmq__stat_u64(st, "waits", shmq__load_relaxed(&l->waits));
	shmq__stat_u64(st, "wakes", shmq__load_relaxed(&l->wakes));
}

/* Barrier: parties, arrivals in this generation, generation, broken,
 * sleepers, the futex waits and wakes, and the generations a dead party
 * broke.  All loads relaxed: a snapshot;
 * count and generation come from one load of the word, so they agree. */
void shmq__barrier_describe(shmq_region *r, const void *mem, uint64_t size,
			    struct shmq__obj_stat *st)
{
	const struct shmq__barrier_shm *b = mem;

	if (size < sizeof(*b) || shmq__load_relaxed(&b->magic) != SHMQ__BARRIER_MAGIC) {
		st->status = -EBADMSG;
		return;
	}
	uint32_t parties = shmq__load_relaxed(&b->parties); /* read-only after init */
	uint32_t w = shmq__load_relaxed(&b->word);
	uint32_t count = w & SHMQ__BARRIER_COUNT_MASK;
	if (parties == 0 || parties > SHMQ__BARRIER_MAX_PARTIES || count >= parties)
		st->status = -EBADMSG;
	shmq__stat_u64(st, "parties", parties);
	shmq__stat_u64(st, "waiting", count);
	shmq__stat_u64(st, "generation", w >> SHMQ__BARRIER_GEN_SHIFT);
	shmq__stat_bool(st, "broken", (w & SHMQ__BARRIER_BROKEN) != 0);
	shmq__stat_u64(st, "sleepers", shmq__load_relaxed(&b->sleepers));
	shmq__stat_u64(st, "waits", shmq__load_relaxed(&b->waits));
	shmq__stat_u64(st, "wakes", shmq__load_relaxed(&b->wakes));
	shmq__stat_u64(st, "broke_dead", shmq__load_relaxed(&b->broke_dead));
}

/* Flag: set or clear, sleepers, and the futex waits and wakes.  All loads
 * relaxed: a snapshot that orders nothing against the flag's users. */
void shmq__flag_describe(shmq_region *r, const void *mem, uint64_t size, struct shmq__obj_stat *st)
{
	const struct shmq__flag_shm *f = mem;

	(void)r;
	if (size < sizeof(*f) || shmq__load_relaxed(&f->magic) != SHMQ__FLAG_MAGIC) {
		st->status = -EBADMSG;
		return;
	}
	shmq__stat_bool(st, "set", (shmq__load_relaxed(&f->word) & SHMQ__FLAG_SET) != 0);
	shmq__stat_u64(st, "sleepers", shmq__load_relaxed(&f->sleepers));
	shmq__stat_u64(st, "waits", shmq__load_relaxed(&f->waits));
	shmq__stat_u64(st, "wakes", shmq__load_relaxed(&f->wakes));
}

/* Condition: waiters registered, futex waits and wakes, dead waiters' slots
 * reclaimed.  All loads relaxed: a snapshot of counters, ordered against
 * nothing. */
void shmq__cond_describe(shmq_region *r, const void *mem, uint64_t size, struct shmq__obj_stat *st)
{
	const struct shmq__cond_shm *c = mem;

	(void)r;
	if (size < sizeof(*c) || shmq__load_relaxed(&c->magic) != SHMQ__COND_MAGIC) {
		st->status = -EBADMSG;
		return;
	}
	shmq__stat_u64(st, "waiters", shmq__load_relaxed(&c->nwaiters));
	shmq__stat_u64(st, "waits", shmq__load_relaxed(&c->waits));
	shmq__stat_u64(st, "wakes", shmq__load_relaxed(&c->wakes));
	shmq__stat_u64(st, "reclaimed", shmq__load_relaxed(&c->reclaimed));
}

/* Semaphore: value and bound, whether units of the dead come back, sleepers,
 * futex waits and wakes, units given back.  All loads relaxed: a snapshot;
 * max and flags are read-only after init, and the value is one load, so the
 * value > max check never trips on a race. */
void shmq__sem_describe(shmq_region *r, const void *mem, uint64_t size, struct shmq__obj_stat *st)
{
	const struct shmq__sem_shm *s = mem;
	uint32_t value, max;

	(void)r;
	if (size < sizeof(*s) || shmq__load_relaxed(&s->magic) != SHMQ__SEM_MAGIC) {
		st->status = -EBADMSG;
		return;
	}
	value = shmq__load_relaxed(&s->word);
	max = shmq__load_relaxed(&s->max); /* read-only after init */
	if (max == 0 || value > max)
		st->status = -EBADMSG;
	shmq__stat_u64(st, "value", value);
	shmq__stat_u64(st, "max", max);
	shmq__stat_bool(st, "undo", (shmq__load_relaxed(&s->flags) & SHMQ_SEM_UNDO) != 0);
	shmq__stat_u64(st, "sleepers", shmq__load_relaxed(&s->sleepers));
	shmq__stat_u64(st, "waits", shmq__load_relaxed(&s->waits));
	shmq__stat_u64(st, "wakes", shmq__load_relaxed(&s->wakes));
	shmq__stat_u64(st, "undone", shmq__load_relaxed(&s->undone));
}
