/* SPDX-License-Identifier: MIT */
/*
 * Semaphores: Python's Semaphore and BoundedSemaphore across processes,
 * with System V's SEM_UNDO as an option.  Layout and word protocol:
 * sync/sem_int.h.
 *
 * Acquire: CAS v -> v - 1 while v > 0; otherwise spin, then sleep on the
 *          word while it is 0, in slices.  With SHMQ_SEM_UNDO a waiter
 *          looks for processes that died holding units, and gives their
 *          units back, after a whole slice asleep and at most once per
 *          slice of its handle's waiting however short each sleep (units
 *          passed around fast wake it often).  Each process
 *          counts the units it holds in an entry of the undo table, which
 *          it gives back as soon as it holds none.
 * Release: CAS v -> v + n (refused past max), then wake up to n sleepers,
 *          with no system call when nobody sleeps.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include <shmq.h>

#include "core/alloc_int.h"
#include "core/atomic_int.h"
#include "core/compiler_int.h"
#include "core/fork_int.h"
#include "core/region_int.h"
#include "core/wait_int.h"
#include "sync/sem_int.h"
#include "sync/spin_int.h"

#define SEM_NO_SLOT  UINT32_MAX

struct shmq_sem {
	struct shmq__sem_shm *s; /* the shared semaphore */
	shmq_region *r;          /* owner ids and liveness */
	uint32_t self;           /* our owner id */
	uint32_t max;            /* checked copy of s->max */
	bool undo;               /* checked copy of SHMQ_SEM_UNDO */
	/* the undo entry we last used, SEM_NO_SLOT before the first acquire:
	 * a hint, checked against the entry before use (relaxed: threads
	 * sharing the handle may race to set it; any entry serves) */
	uint32_t slot;
	pid_t pid;               /* the process that made the handle (core/fork_int.h) */
};

/* ---- create and open ------------------------------------------------------ */

struct sem_init_arg {
	uint32_t value, max, flags;
};

static int sem_obj_init(void *mem, uint64_t size, void *arg)
{
	struct shmq__sem_shm *s = mem;
	const struct sem_init_arg *a = arg;

	(void)size;
	memset(s, 0, sizeof(*s));
	s->word = a->value;
	s->max = a->max;
	s->flags = a->flags;
	s->version = SHMQ__SEM_VERSION;
	/* Publishes the value, max, flags and the empty undo table: pairs
	 * with the load_acquire of magic in sem_attach. */
	shmq__store_release(&s->magic, SHMQ__SEM_MAGIC);
	return 0;
}

/* h: the handle, made before its object by a create, or NULL to make it
 * here; the caller's to free unless this succeeds. */
static int sem_attach(shmq_region *r, void *mem, uint64_t size, shmq_sem *h, shmq_sem **out)
{
	struct shmq__sem_shm *s = mem;
	uint32_t max, flags;

	if (size < sizeof(*s) || ((uintptr_t)mem % SHMQ__CACHELINE))
		return -EBADMSG;
	/* pairs with the store_release of magic in sem_obj_init */
	if (shmq__load_acquire(&s->magic) != SHMQ__SEM_MAGIC)
		return -EBADMSG;
	/* relaxed: the three below are immutable since sem_obj_init, whose
	 * store_release of magic the load_acquire above read */
	if (shmq__load_relaxed(&s->version) != SHMQ__SEM_VERSION)
		return -EPROTO;
	max = shmq__load_relaxed(&s->max);
	flags = shmq__load_relaxed(&s->flags);
	if (max == 0 || max > SHMQ__SEM_VALUE_MAX || (flags & ~SHMQ_SEM_UNDO))
		return -EBADMSG;
	if (!h && !(h = shmq__malloc(sizeof(*h))))
		return -ENOMEM;
	h->s = s;
	h->r = r;
	h->self = shmq__region_self(r);
	h->pid = shmq__self_pid();
	h->max = max;
	h->undo = (flags & SHMQ_SEM_UNDO) != 0;
	h->slot = SEM_NO_SLOT;
	*out = h;
	return 0;
}

SHMQ_API int shmq_sem_create(shmq_region *r, const char *name, unsigned value,
			     const struct shmq_sem_opts *o, shmq_sem **out)
{
	struct sem_init_arg a = { .value = value, .max = SHMQ__SEM_VALUE_MAX };
	shmq_sem *h;
	void *mem;
	int rc;

	if (!r || !name || !out)
		return -EINVAL;
	if (o && o->max)
		a.max = o->max;
	if (o)
		a.flags = o->flags;
	if (a.max > SHMQ__SEM_VALUE_MAX || value > a.max || (a.flags & ~SHMQ_SEM_UNDO))
		return -EINVAL;
	/* the handle first: a create that fails leaves no object behind */
	h = shmq__malloc(sizeof(*h));
	if (!h)
		return -ENOMEM;
	rc = shmq__obj_create(r, name, SHMQ__OBJ_SEM, sizeof(struct shmq__sem_shm), sem_obj_init,
			      &a, &mem);
	if (!rc)
		rc = sem_attach(r, mem, sizeof(struct shmq__sem_shm), h, out);
	if (rc)
		shmq__free(h, sizeof(*h));
	return rc;
}

SHMQ_API int shmq_sem_open(shmq_region *r, const char *name, shmq_sem **out)
{
	void *mem;
	uint64_t size;
	int rc;

	if (!r || !name || !out)
		return -EINVAL;
	rc = shmq__obj_find(r, name, SHMQ__OBJ_SEM, &mem, &size);
	if (rc)
		return rc;
	return sem_attach(r, mem, size, NULL, out);
}

SHMQ_API void shmq_sem_close(shmq_sem *h)
{
	if (h)
		shmq__free(h, sizeof(*h));
}

SHMQ_API unsigned shmq_sem_value(const shmq_sem *h)
{
	if (!h)
		return 0;
	/* relaxed: a snapshot, stale the moment it returns; the caller gets
	 * a number, no synchronisation with any release */
	return shmq__load_relaxed(&h->s->word);
}

/* ---- the undo table (Protocol SEM_UNDO, sync/sem_int.h) ---------------- */

static inline uint64_t sem_undo_load(const shmq_sem *h, uint32_t i)
{
	/* relaxed: a look that the CAS acting on it re-checks; entries order
	 * nothing (Protocol SEM_UNDO) */
	return shmq__load_relaxed(&h->s->undo[i].pair);
}

/* Can entry p take our count: ours, or free? */
static inline bool sem_undo_fits(const shmq_sem *h, uint64_t p)
{
	return p == 0 || shmq__sem_undo_owner(p) == h->self;
}

/* An entry for our count: the one we last used when it is still ours or
 * free, else one of ours, else a free one; SEM_NO_SLOT when every entry
 * names another process.  A look only: the caller's CAS decides. */
static uint32_t sem_undo_find(shmq_sem *h)
{
	/* relaxed: a handle-local hint (see struct shmq_sem), checked below */
	uint32_t i = shmq__load_relaxed(&h->slot), free_i = SEM_NO_SLOT;

	if (i < SHMQ__SEM_UNDO_SLOTS && sem_undo_fits(h, sem_undo_load(h, i)))
		return i;
	for (i = 0; i < SHMQ__SEM_UNDO_SLOTS; i++) {
		uint64_t p = sem_undo_load(h, i);

		if (p != 0 && shmq__sem_undo_owner(p) == h->self)
			break;
		if (p == 0 && free_i == SEM_NO_SLOT)
			free_i = i;
	}
	if (i == SHMQ__SEM_UNDO_SLOTS)
		i = free_i;
	if (i != SEM_NO_SLOT)
		shmq__store_relaxed(&h->slot, i); /* relaxed: a handle-local hint */
	return i;
}

/* Count n units we took, in an entry of ours or a free one we claim (ours
 * is given back whenever its count drops to 0, maybe by another thread of
 * ours since we looked).  0, -ENOSPC: every entry names another process,
 * or -EBADMSG: the entries kept changing under SHMQ__SYNC_CAS_MAX CASes. */
static int sem_undo_add(shmq_sem *h, uint32_t n)
{
	uint32_t lost = 0;

	for (;;) {
		uint32_t i = sem_undo_find(h);
		uint64_t p;

		if (i == SEM_NO_SLOT)
			return -ENOSPC;
		p = sem_undo_load(h, i);
		while (sem_undo_fits(h, p)) {
			uint32_t c = shmq__sem_undo_held(p);

			c = c > UINT32_MAX - n ? UINT32_MAX : c + n;
			/* relaxed: Protocol SEM_UNDO; the units were ordered by
			 * the value word's cas_acquire in sem_try_take */
			if (shmq__cas_relaxed(&h->s->undo[i].pair, &p,
					      shmq__sem_undo_pair(h->self, c)))
				return 0;
			if (shmq__sync_cas_lost(&lost, SHMQ_FOREVER, SHMQ__NO_DEADLINE))
				return -EBADMSG;
		}
		/* claimed by another process since we looked: look again */
		if (shmq__sync_cas_lost(&lost, SHMQ_FOREVER, SHMQ__NO_DEADLINE))
			return -EBADMSG;
	}
}

/* Uncount up to n units from entry i if it is ours, giving the entry back
 * when its count reaches 0.  Returns how many it uncounted. */
static uint32_t sem_undo_sub_at(shmq_sem *h, uint32_t i, uint32_t n)
{
	uint64_t p = sem_undo_load(h, i);
	uint32_t lost = 0;

	while (p != 0 && shmq__sem_undo_owner(p) == h->self) {
		uint32_t c = shmq__sem_undo_held(p), k = c < n ? c : n;
		uint64_t next = c > k ? shmq__sem_undo_pair(h->self, c - k) : 0;

		/* relaxed: Protocol SEM_UNDO; the units go back afterwards by
		 * the value word's seq_cst CAS in shmq_sem_release */
		if (shmq__cas_relaxed(&h->s->undo[i].pair, &p, next))
			return k;
		if (shmq__sync_cas_lost(&lost, SHMQ_FOREVER, SHMQ__NO_DEADLINE))
			break; /* garbage keeps moving it: uncount nothing here */
	}
	return 0;
}

/* Uncount up to n units of ours before they are given back (Protocol
 * SEM_UNDO): from the entry we last used, then from any other of ours.
 * Units released beyond those we acquired were never counted.  Returns how
 * many were uncounted. */
static uint32_t sem_undo_sub(shmq_sem *h, uint32_t n)
{
	/* relaxed: a handle-local hint (see struct shmq_sem) */
	uint32_t hint = shmq__load_relaxed(&h->slot), done = 0;

	if (hint < SHMQ__SEM_UNDO_SLOTS)
		done = sem_undo_sub_at(h, hint, n);
	for (uint32_t i = 0; i < SHMQ__SEM_UNDO_SLOTS && done < n; i++)
		if (i != hint)
			done += sem_undo_sub_at(h, i, n - done);
	return done;
}

/* After a seq_cst change of the value: wake up to n sleepers, if any
 * (Protocol SLEEPERS; listed, so a wake for nobody takes dead ones out). */
static void sem_wake(shmq_sem *h, uint32_t n)
{
	shmq__sync_wake_listed(h->r, &h->s->word, &h->s->sleepers, h->s->sleeper_ids,
			       (int)(n > INT_MAX ? INT_MAX : n), &h->s->wakes);
}

/* Give n units back to the value, capped at max (units of a dead process
 * can never make the value pass max), and wake that many sleepers. */
static void sem_give(shmq_sem *h, uint32_t n)
{
	/* relaxed: a first guess, re-validated by the seq_cst CAS below */
	uint32_t w = shmq__load_relaxed(&h->s->word);
	uint32_t next, lost = 0;

	do {
		next = w >= h->max || n > h->max - w ? h->max : w + n;
		/* seq_cst: core/wait_int.h protocol, then the sleeper count */
		if (next == w || shmq__cas_seq_cst(&h->s->word, &w, next))
			break;
	} while (!shmq__sync_cas_lost(&lost, SHMQ_FOREVER, SHMQ__NO_DEADLINE));
	/* (garbage kept moving the value: the units are lost with it) */
	if (next != w)
		sem_wake(h, n);
}

/* Look for entries of dead processes: give their units back (at most max
 * per entry; sem_give clamps the value at max too) and free the entries.
 * full: the full liveness check (a system call or two per entry that holds
 * units); otherwise only the process table's listing (a load).  Returns
 * the units given back (saturated at INT_MAX), or -EBADMSG for an owner id
 * no attachment can carry. */
static int sem_reclaim(shmq_sem *h, bool full)
{
	struct shmq__sem_undo *u = h->s->undo;
	int given = 0;

	for (uint32_t i = 0; i < SHMQ__SEM_UNDO_SLOTS; i++) {
		uint64_t p = sem_undo_load(h, i);
		uint32_t o = shmq__sem_undo_owner(p), held;
		int alive;

		if (o == 0 || o == h->self || o == SHMQ__SEM_UNDO_RECLAIMING)
			continue;
		alive = full ? shmq__region_id_alive(h->r, o) : shmq__region_id_listed(h->r, o);
		if (alive < 0)
			return alive;
		if (alive)
			continue;
		/* Free the entry and take its count in one CAS from exactly the
		 * word we judged: a dead owner changes it no more, so the CAS
		 * fails only when another reclaimer freed it first, whoever
		 * claimed it since.  relaxed: Protocol SEM_UNDO; the units go
		 * back by sem_give's seq_cst CAS on the value */
		if (!shmq__cas_relaxed(&u[i].pair, &p, 0))
			continue;
		/* A count above max is no corruption: a consumer that acquires
		 * units others release counts every one (Protocol SEM_UNDO).
		 * Like System V, what comes back is clamped: never past max. */
		held = shmq__sem_undo_held(p);
		if (held > h->max)
			held = h->max;
		if (held) {
			/* relaxed: a statistic for shmq__sem_describe */
			shmq__fetch_add_relaxed(&h->s->undone, held);
			sem_give(h, held);
			given = given > INT_MAX - (int)held ? INT_MAX : given + (int)held;
		}
	}
	return given;
}

/* ---- acquire and release ------------------------------------------------ */

/* Take one unit if there is one: 1 taken, 0 none, -EBADMSG, or -EAGAIN
 * when SHMQ__SYNC_CAS_TRIES CASes in a row were lost to other changes of
 * the value (sem_wait then looks at the deadline). */
static inline int sem_try_take(shmq_sem *h)
{
	/* relaxed: a first guess, re-validated by the cas_acquire below; a 0
	 * only sends the caller to sleep (futex_wait checks the word again)
	 * or to -EAGAIN */
	uint32_t w = shmq__load_relaxed(&h->s->word);

	for (uint32_t lost = 0; lost < SHMQ__SYNC_CAS_TRIES; lost++) {
		if (SHMQ__UNLIKELY(w > h->max))
			return -EBADMSG;
		if (w == 0)
			return 0;
		/* acquire: pairs with the releaser's seq_cst CAS (sem_give,
		 * shmq_sem_release): we see what it did before releasing */
		if (shmq__cas_acquire(&h->s->word, &w, w - 1))
			return 1;
	}
	return -EAGAIN;
}

/* SHMQ_SEM_UNDO: is the full look for dead holders (a system call or two
 * per entry that holds units) due, and this caller the one to make it?
 * Once per slice for all the semaphore's callers together, whether their
 * waits end in quiet slices, in wake-ups sooner (units passed around faster
 * than a slice), or in SHMQ_NOWAIT: the units it gives back serve every
 * waiter, and n waiters each looking at n holders made n^2 reads a slice. */
static bool sem_look_due(shmq_sem *h)
{
	return shmq__sync_scan_due(&h->s->scan_at, SHMQ__SYNC_SLICE_NS);
}

/* SHMQ_NOWAIT found the value 0: with SHMQ_SEM_UNDO, look for dead holders
 * when the look is due (sem_look_due), so a try-acquire loop stays cheap. */
static int sem_try_nowait(shmq_sem *h)
{
	int rc;

	if (!h->undo || !sem_look_due(h))
		return -EAGAIN;
	rc = sem_reclaim(h, true);
	if (rc < 0)
		return rc;
	rc = sem_try_take(h);
	return rc > 0 ? 0 : rc < 0 ? rc : -EAGAIN; /* -EAGAIN also when it kept losing */
}

static SHMQ__COLD int sem_wait(shmq_sem *h, int64_t timeout_ns)
{
	int64_t deadline;
	/* slices with or without undo: a releaser killed between its CAS and
	 * its wake leaves units and sleepers; each slice looks at the count */
	int64_t slice = SHMQ__SYNC_SLICE_NS;
	uint32_t lost = 0; /* sem_try_take's lost CASes in a row */
	int rc;

	if (timeout_ns == SHMQ_NOWAIT)
		return sem_try_nowait(h);
	deadline = shmq__deadline(timeout_ns);
	if (h->undo) {
		/* first look: the full one when due, else without a system
		 * call (a holder the table no longer lists) */
		rc = sem_reclaim(h, sem_look_due(h));
		if (rc < 0)
			return rc;
	}
	for (bool spin = true;; spin = false) {
		rc = sem_try_take(h);
		if (rc == -EAGAIN) {
			/* the value keeps moving: other takers, or garbage */
			lost += SHMQ__SYNC_CAS_TRIES - 1;
			rc = shmq__sync_cas_lost(&lost, timeout_ns, deadline);
			if (rc)
				return rc;
			continue;
		}
		lost = 0;
		if (rc)
			return rc > 0 ? 0 : rc;
		rc = shmq__sync_wait_listed(&h->s->word, 0, &h->s->sleepers, h->s->sleeper_ids,
					    h->self, deadline, slice, &h->s->waits, spin);
		if (h->undo && (rc == -ETIMEDOUT || sem_look_due(h))) {
			/* the look is due (a slice since the last one by any
			 * caller, however often wake-ups cut the sleeps
			 * short), or our timeout came without a release */
			int got = sem_reclaim(h, true);

			if (got < 0)
				return got;
		}
		if (rc == -ETIMEDOUT) {
			rc = sem_try_take(h); /* one last look */
			return rc > 0 ? 0 : rc < 0 && rc != -EAGAIN ? rc : -ETIMEDOUT;
		}
		if (rc && rc != -EINTR)
			return rc;
	}
}

/* SHMQ_SEM_UNDO, before an acquire: is there an entry for our count (ours
 * or a free one)?  When there is none, the entries of dead processes are
 * freed first.  0, -ENOSPC, -EBADMSG. */
static int sem_undo_room(shmq_sem *h)
{
	int rc;

	if (SHMQ__LIKELY(sem_undo_find(h) != SEM_NO_SLOT))
		return 0;
	rc = sem_reclaim(h, true);
	if (rc < 0)
		return rc;
	return sem_undo_find(h) != SEM_NO_SLOT ? 0 : -ENOSPC;
}

/* SHMQ_SEM_UNDO: count the unit an acquire took.  Other processes may have
 * claimed the last entries while we waited: then free those of the dead,
 * and failing that give the unit back (-ENOSPC, nothing changed). */
static int sem_undo_count_taken(shmq_sem *h)
{
	int rc;

	if (SHMQ__LIKELY(sem_undo_add(h, 1) == 0))
		return 0;
	rc = sem_reclaim(h, true);
	if (rc >= 0)
		rc = sem_undo_add(h, 1);
	if (rc)
		sem_give(h, 1);
	return rc;
}

SHMQ_API int shmq_sem_acquire(shmq_sem *h, int64_t timeout_ns)
{
	int rc;

	if (SHMQ__UNLIKELY(!h))
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__timeout_bad(timeout_ns)))
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__foreign(h->pid)))
		return -EBADF;
	if (h->undo) {
		rc = sem_undo_room(h);
		if (rc)
			return rc;
	}
	rc = sem_try_take(h);
	if (SHMQ__UNLIKELY(rc <= 0)) {
		if (rc < 0 && rc != -EAGAIN)
			return rc;
		rc = sem_wait(h, timeout_ns); /* none, or lost too many CASes */
		if (rc)
			return rc;
	}
	return h->undo ? sem_undo_count_taken(h) : 0;
}

/* The value can take n more units: 0, -EOVERFLOW, -EBADMSG. */
static inline int sem_room(const shmq_sem *h, uint32_t w, uint32_t n)
{
	if (SHMQ__UNLIKELY(w > h->max))
		return -EBADMSG;
	return n > h->max - w ? -EOVERFLOW : 0;
}

SHMQ_API int shmq_sem_release(shmq_sem *h, unsigned n)
{
	uint32_t w, uncounted = 0, lost = 0;
	int rc;

	if (SHMQ__UNLIKELY(!h || n == 0))
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__foreign(h->pid)))
		return -EBADF;
	/* relaxed: a first guess, re-validated by the seq_cst CAS below */
	w = shmq__load_relaxed(&h->s->word);
	rc = sem_room(h, w, n);
	if (rc)
		return rc;
	if (h->undo)
		uncounted = sem_undo_sub(h, n);
	/* seq_cst: the core/wait_int.h protocol orders it before the sleeper
	 * count load; it releases to the acquirer's cas_acquire */
	while (!shmq__cas_seq_cst(&h->s->word, &w, w + n)) {
		rc = sem_room(h, w, n);
		if (!rc && shmq__sync_cas_lost(&lost, SHMQ_FOREVER, SHMQ__NO_DEADLINE))
			rc = -EBADMSG; /* garbage keeps moving the value */
		if (rc) {
			/* another releaser filled it: change nothing after
			 * all.  Should every entry have been claimed since we
			 * gave ours back, the units stay uncounted: lost if we
			 * die, never given back twice */
			if (uncounted)
				(void)sem_undo_add(h, uncounted);
			return rc;
		}
	}
	/* seq_cst: Protocol SLEEPERS (core/wait_int.h), after the CAS above.
	 * Checked here, inline, so that the common release with nobody
	 * asleep makes no call at all (the uncontended pair is measured
	 * against sem_post, which makes none either). */
	if (shmq__load_seq_cst(&h->s->sleepers))
		sem_wake(h, n);
	return 0;
}
