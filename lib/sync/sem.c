/* SPDX-License-Identifier: MIT */
/*
 * Semaphores: Python's Semaphore and BoundedSemaphore across processes,
 * with System V's SEM_UNDO as an option.  Layout and word protocol:
 * sync/sem_int.h.
 *
 * Acquire: CAS v -> v - 1 while v > 0; otherwise spin, then sleep on the
 *          word while it is 0.  With SHMQ_SEM_UNDO the sleep is cut into
 *          slices: a waiter that slept a whole slice looks for processes that
 *          died holding units and gives their units back.
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
/* An undo entry's owner while a reclaimer gives a dead owner's units back:
 * no owner id (ids are below 2^31), so nobody claims or checks it.  A
 * reclaimer killed in those few instructions leaves the entry unusable
 * (one of SHMQ__SEM_UNDO_SLOTS); never a unit counted twice. */
#define SEM_RECLAIMING UINT32_MAX

struct shmq_sem {
	struct shmq__sem_shm *s; /* the shared semaphore */
	shmq_region *r;          /* owner ids and liveness */
	uint32_t self;           /* our owner id */
	uint32_t max;            /* checked copy of s->max */
	bool undo;               /* checked copy of SHMQ_SEM_UNDO */
	/* our undo entry, SEM_NO_SLOT before the first acquire (relaxed:
	 * threads sharing the handle may race to find it; each finds or
	 * claims a valid entry of ours, and any of them serves) */
	uint32_t slot;
	/* SHMQ_NOWAIT: when this handle last looked for dead holders
	 * (relaxed, handle-local: one look early or late at worst) */
	int64_t nowait_checked;
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

static int sem_attach(shmq_region *r, void *mem, uint64_t size, shmq_sem **out)
{
	struct shmq__sem_shm *s = mem;
	uint32_t max, flags;
	shmq_sem *h;

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
	h = shmq__malloc(sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->s = s;
	h->r = r;
	h->self = shmq__region_self(r);
	h->pid = shmq__self_pid();
	h->max = max;
	h->undo = (flags & SHMQ_SEM_UNDO) != 0;
	h->slot = SEM_NO_SLOT;
	h->nowait_checked = INT64_MIN / 2; /* the first NOWAIT may look at once */
	*out = h;
	return 0;
}

SHMQ_API int shmq_sem_create(shmq_region *r, const char *name, unsigned value,
			     const struct shmq_sem_opts *o, shmq_sem **out)
{
	struct sem_init_arg a = { .value = value, .max = SHMQ__SEM_VALUE_MAX };
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
	rc = shmq__obj_create(r, name, SHMQ__OBJ_SEM, sizeof(struct shmq__sem_shm), sem_obj_init,
			      &a, &mem);
	if (rc)
		return rc;
	return sem_attach(r, mem, sizeof(struct shmq__sem_shm), out);
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
	return sem_attach(r, mem, size, out);
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

/* ---- the undo table ---------------------------------------------------- */

/* Our entry: found, or claimed when claim is set.  SEM_NO_SLOT when we have
 * none (and the table is full of live processes, when claim is set). */
static uint32_t sem_undo_slot(shmq_sem *h, bool claim)
{
	struct shmq__sem_undo *u = h->s->undo;
	/* relaxed: a handle-local hint (see struct shmq_sem), checked below */
	uint32_t i = shmq__load_relaxed(&h->slot);

	/* relaxed: only this process writes an entry that names us (the
	 * cas_acquire below, by this thread or another of ours), and a
	 * reclaimer frees only entries of dead processes, so our own earlier
	 * claim still holds */
	if (i < SHMQ__SEM_UNDO_SLOTS && shmq__load_relaxed(&u[i].owner) == h->self)
		return i;
	for (i = 0; i < SHMQ__SEM_UNDO_SLOTS; i++)
		if (shmq__load_relaxed(&u[i].owner) == h->self) /* relaxed: as above */
			goto found;
	for (i = 0; claim && i < SHMQ__SEM_UNDO_SLOTS; i++) {
		uint32_t free_owner = 0;

		/* acquire: pairs with the cas_release of owner -> 0 in
		 * sem_reclaim, after which its exchange of held is done */
		if (shmq__cas_acquire(&u[i].owner, &free_owner, h->self))
			goto found;
	}
	return SEM_NO_SLOT;
found:
	/* relaxed: a handle-local hint; a reader re-checks the entry's owner */
	shmq__store_relaxed(&h->slot, i);
	return i;
}

/* Give n units back to the value, capped at max (units of a dead process
 * can never make the value pass max), and wake that many sleepers. */
static void sem_give(shmq_sem *h, uint32_t n)
{
	/* relaxed: a first guess, re-validated by the seq_cst CAS below */
	uint32_t w = shmq__load_relaxed(&h->s->word);
	uint32_t next;

	do {
		next = w >= h->max || n > h->max - w ? h->max : w + n;
		/* seq_cst: core/wait_int.h protocol, then the sleeper count */
	} while (next != w && !shmq__cas_seq_cst(&h->s->word, &w, next));
	if (next != w)
		shmq__wake_word_counted(&h->s->word, &h->s->sleepers,
					(int)(n > INT_MAX ? INT_MAX : n), &h->s->wakes);
}

/* Look for entries of dead processes: give their units back and free the
 * entries.  full: the full liveness check (a system call or two per entry
 * that holds units); otherwise only the process table's listing (a load).
 * Returns the units given back, or -EBADMSG for an impossible entry. */
static int sem_reclaim(shmq_sem *h, bool full)
{
	struct shmq__sem_undo *u = h->s->undo;
	int given = 0;

	for (uint32_t i = 0; i < SHMQ__SEM_UNDO_SLOTS; i++) {
		/* relaxed: a candidate; the cas_acquire of owner below decides
		 * who reclaims the entry */
		uint32_t o = shmq__load_relaxed(&u[i].owner);
		uint32_t held;
		int alive;

		if (o == 0 || o == h->self || o == SEM_RECLAIMING)
			continue;
		alive = full ? shmq__region_id_alive(h->r, o) : shmq__region_id_listed(h->r, o);
		if (alive < 0)
			return alive;
		if (alive)
			continue;
		/* Take the entry before its units: between our verdict and now
		 * another reclaimer may have freed it and a live process claimed
		 * it, and swapping held then would take that process's units.
		 * The CAS from the dead owner's id fails in that case.  acquire:
		 * pairs with the cas_release that last freed or passed the entry
		 * (here below, or sem_undo_slot's claim) */
		if (!shmq__cas_acquire(&u[i].owner, &o, SEM_RECLAIMING))
			continue;
		/* acq_rel, though the RMW alone would do: it reads the dead
		 * owner's last count (held's changes are all RMWs), and the
		 * entry is ours (RECLAIMING); the release half is ordered before
		 * the store_release of owner below, which pairs with the next
		 * claimer's cas_acquire in sem_undo_slot */
		held = shmq__exchange_acq_rel(&u[i].held, 0);
		/* release: pairs with the cas_acquire of the next claimer in
		 * sem_undo_slot, which then finds held 0 */
		shmq__store_release(&u[i].owner, 0);
		if (held > h->max)
			return -EBADMSG; /* more than the semaphore ever had */
		if (held) {
			/* relaxed: a statistic for shmq__sem_describe */
			shmq__fetch_add_relaxed(&h->s->undone, held);
			sem_give(h, held);
			given += (int)held;
		}
	}
	return given;
}

/* ---- acquire and release ------------------------------------------------ */

/* Take one unit if there is one: 1 taken, 0 none, -EBADMSG. */
static inline int sem_try_take(shmq_sem *h)
{
	/* relaxed: a first guess, re-validated by the cas_acquire below; a 0
	 * only sends the caller to sleep (futex_wait checks the word again)
	 * or to -EAGAIN */
	uint32_t w = shmq__load_relaxed(&h->s->word);

	for (;;) {
		if (SHMQ__UNLIKELY(w > h->max))
			return -EBADMSG;
		if (w == 0)
			return 0;
		/* acquire: pairs with the releaser's seq_cst CAS (sem_give,
		 * shmq_sem_release): we see what it did before releasing */
		if (shmq__cas_acquire(&h->s->word, &w, w - 1))
			return 1;
	}
}

/* SHMQ_NOWAIT found the value 0: with SHMQ_SEM_UNDO, look for dead holders
 * at most once per slice per handle, so a try-acquire loop stays cheap. */
static int sem_try_nowait(shmq_sem *h)
{
	int64_t now;
	int rc;

	if (!h->undo)
		return -EAGAIN;
	now = shmq_now_ns();
	/* relaxed: a handle-local rate limit (see struct shmq_sem); a race
	 * between threads costs one look early or late */
	if (now - shmq__load_relaxed(&h->nowait_checked) < SHMQ__SYNC_SLICE_NS)
		return -EAGAIN;
	shmq__store_relaxed(&h->nowait_checked, now); /* relaxed: as above */
	rc = sem_reclaim(h, true);
	if (rc < 0)
		return rc;
	rc = sem_try_take(h);
	return rc ? (rc > 0 ? 0 : rc) : -EAGAIN;
}

static SHMQ__COLD int sem_wait(shmq_sem *h, int64_t timeout_ns)
{
	int64_t deadline;
	/* slices with or without undo: a releaser killed between its CAS and
	 * its wake leaves units and sleepers; each slice looks at the count */
	int64_t slice = SHMQ__SYNC_SLICE_NS;
	int rc;

	if (timeout_ns == SHMQ_NOWAIT)
		return sem_try_nowait(h);
	deadline = shmq__deadline(timeout_ns);
	if (h->undo) {
		/* first look, no system call: a holder the table no longer lists */
		rc = sem_reclaim(h, false);
		if (rc < 0)
			return rc;
	}
	for (bool spin = true;; spin = false) {
		rc = sem_try_take(h);
		if (rc)
			return rc > 0 ? 0 : rc;
		rc = shmq__sync_wait(&h->s->word, 0, &h->s->sleepers, deadline, slice,
				     &h->s->waits, spin);
		if (h->undo && (rc == -EINTR || rc == -ETIMEDOUT)) {
			/* a whole slice (or the timeout) without a release */
			int got = sem_reclaim(h, true);

			if (got < 0)
				return got;
		}
		if (rc == -ETIMEDOUT) {
			rc = sem_try_take(h); /* one last look */
			return rc ? (rc > 0 ? 0 : rc) : -ETIMEDOUT;
		}
		if (rc && rc != -EINTR)
			return rc;
	}
}

SHMQ_API int shmq_sem_acquire(shmq_sem *h, int64_t timeout_ns)
{
	uint32_t slot = SEM_NO_SLOT;
	int rc;

	if (SHMQ__UNLIKELY(!h))
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__foreign(h->pid)))
		return -EBADF;
	if (h->undo) {
		slot = sem_undo_slot(h, true);
		if (slot == SEM_NO_SLOT) {
			rc = sem_reclaim(h, true); /* free the entries of the dead */
			if (rc < 0)
				return rc;
			slot = sem_undo_slot(h, true);
			if (slot == SEM_NO_SLOT)
				return -ENOSPC;
		}
	}
	rc = sem_try_take(h);
	if (SHMQ__UNLIKELY(rc <= 0)) {
		if (rc < 0)
			return rc;
		rc = sem_wait(h, timeout_ns);
		if (rc)
			return rc;
	}
	if (slot != SEM_NO_SLOT)
		/* relaxed: only a reclaimer reads it, after our death, through
		 * the exchange_acq_rel in sem_reclaim */
		shmq__fetch_add_relaxed(&h->s->undo[slot].held, 1);
	return 0;
}

/* SHMQ_SEM_UNDO: uncount up to n units of ours before giving them back
 * (see sync/sem_int.h).  Units we release beyond those we acquired were
 * never counted.  Returns how many were uncounted. */
static uint32_t sem_uncount(shmq_sem *h, uint32_t slot, uint32_t n)
{
	uint32_t *held, c;

	if (slot == SEM_NO_SLOT)
		return 0; /* we never acquired through an entry: we hold none */
	held = &h->s->undo[slot].held;
	/* relaxed: as the fetch_add in shmq_sem_acquire; the load is a first
	 * guess the CAS re-reads */
	c = shmq__load_relaxed(held);
	while (c && !shmq__cas_relaxed(held, &c, c > n ? c - n : 0))
		;
	return c > n ? n : c;
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
	uint32_t w, slot = SEM_NO_SLOT, uncounted = 0;
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
	if (h->undo) {
		slot = sem_undo_slot(h, false);
		uncounted = sem_uncount(h, slot, n);
	}
	/* seq_cst: the core/wait_int.h protocol orders it before the sleeper
	 * count load; it releases to the acquirer's cas_acquire */
	while (!shmq__cas_seq_cst(&h->s->word, &w, w + n)) {
		rc = sem_room(h, w, n);
		if (rc) {
			/* another releaser filled it: change nothing after all */
			if (uncounted) /* relaxed: as in shmq_sem_acquire */
				shmq__fetch_add_relaxed(&h->s->undo[slot].held, uncounted);
			return rc;
		}
	}
	/* seq_cst: Protocol SLEEPERS (core/wait_int.h), after the CAS above.
	 * Checked here, inline, so that the common release with nobody
	 * asleep makes no call at all (the uncontended pair is measured
	 * against sem_post, which makes none either). */
	if (shmq__load_seq_cst(&h->s->sleepers))
		shmq__wake_word_counted(&h->s->word, &h->s->sleepers,
					(int)(n > INT_MAX ? INT_MAX : n), &h->s->wakes);
	return 0;
}
