/* SPDX-License-Identifier: MIT */
/*
 * Conditions: Python's threading.Condition across processes, on a
 * shmq_lock.  Layout and slot protocol: sync/cond_int.h.
 *
 * Wait:   count ourselves, claim a slot (CAS 0 -> self), release the lock
 *         (which is also the check that we held it: -EPERM), then spin and
 *         sleep on the slot's word in slices until it carries a ticket or
 *         the deadline passes; free the slot, take the lock again.  The slot
 *         is ours before the lock is released, so a notify made under the
 *         lock after our release finds us: nothing is lost in between.
 * Notify: pick the oldest WAITING slot, check its owner lives (/proc, so a
 *         killed waiter not yet reaped counts as dead: its slot is freed
 *         and the next one picked), hand it a ticket (CAS), wake it if it
 *         sleeps.
 * After a whole slice one sleeping waiter (the first whose slice ends:
 * sync/spin_int.h, shmq__sync_scan_due) frees the slots of dead waiters and
 * passes on the tickets it finds there.
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
#include "sync/cond_int.h"
#include "sync/spin_int.h"

#define COND_NO_SLOT  UINT32_MAX

struct shmq_cond {
	struct shmq__cond_shm *s; /* the shared condition */
	shmq_region *r;           /* owner ids and liveness */
	uint32_t self;            /* our owner id: the WAITING value of our slots */
	pid_t pid;                /* the process that made the handle (core/fork_int.h) */
};

/* ---- create and open ------------------------------------------------------ */

static int cond_obj_init(void *mem, uint64_t size, void *arg)
{
	struct shmq__cond_shm *s = mem;

	(void)size;
	(void)arg;
	memset(s, 0, sizeof(*s));
	s->version = SHMQ__COND_VERSION;
	/* Publishes the free slots and the version: pairs with the
	 * load_acquire of magic in cond_attach. */
	shmq__store_release(&s->magic, SHMQ__COND_MAGIC);
	return 0;
}

/* c: the handle, made before its object by a create, or NULL to make it
 * here; the caller's to free unless this succeeds. */
static int cond_attach(shmq_region *r, void *mem, uint64_t size, shmq_cond *c, shmq_cond **out)
{
	struct shmq__cond_shm *s = mem;

	if (size < sizeof(*s) || ((uintptr_t)mem % SHMQ__CACHELINE))
		return -EBADMSG;
	/* pairs with the store_release of magic in cond_obj_init */
	if (shmq__load_acquire(&s->magic) != SHMQ__COND_MAGIC)
		return -EBADMSG;
	if (shmq__load_relaxed(&s->version) != SHMQ__COND_VERSION) /* immutable since init */
		return -EPROTO;
	if (!c && !(c = shmq__malloc(sizeof(*c))))
		return -ENOMEM;
	c->s = s;
	c->r = r;
	c->self = shmq__region_self(r);
	c->pid = shmq__self_pid();
	*out = c;
	return 0;
}

SHMQ_API int shmq_cond_create(shmq_region *r, const char *name, shmq_cond **out)
{
	shmq_cond *c;
	void *mem;
	int rc;

	if (!r || !name || !out)
		return -EINVAL;
	/* the handle first: a create that fails leaves no object behind */
	c = shmq__malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	rc = shmq__obj_create(r, name, SHMQ__OBJ_COND, sizeof(struct shmq__cond_shm),
			      cond_obj_init, NULL, &mem);
	if (!rc)
		rc = cond_attach(r, mem, sizeof(struct shmq__cond_shm), c, out);
	if (rc)
		shmq__free(c, sizeof(*c));
	return rc;
}

SHMQ_API int shmq_cond_open(shmq_region *r, const char *name, shmq_cond **out)
{
	void *mem;
	uint64_t size;
	int rc;

	if (!r || !name || !out)
		return -EINVAL;
	rc = shmq__obj_find(r, name, SHMQ__OBJ_COND, &mem, &size);
	if (rc)
		return rc;
	return cond_attach(r, mem, size, NULL, out);
}

SHMQ_API void shmq_cond_close(shmq_cond *c)
{
	if (c)
		shmq__free(c, sizeof(*c));
}

/* ---- notify ------------------------------------------------------------- */

/* A slot was given up (freed by its waiter or for a dead one). */
static inline void cond_uncount(shmq_cond *c)
{
	/* seq_cst, as the count's increment in cond_register and its load in
	 * cond_notify_n: a hint (see sync/cond_int.h) */
	shmq__fetch_sub_seq_cst(&c->s->nwaiters, 1);
}

/* Free slot i, which holds w and whose owner is dead.  true: freed by us. */
static bool cond_free_dead(shmq_cond *c, uint32_t i, uint32_t w)
{
	/* release: pairs with the cas_acquire of the next claimer (cond_claim) */
	if (!shmq__cas_release(&c->s->slot[i].word, &w, 0))
		return false;
	cond_uncount(c);
	shmq__fetch_add_relaxed(&c->s->reclaimed, 1); /* statistics only */
	return true;
}

/* The oldest WAITING slot, or COND_NO_SLOT; -EBADMSG in *err for a slot
 * naming an impossible owner. */
static uint32_t cond_oldest(shmq_cond *c, int *err)
{
	uint32_t best = COND_NO_SLOT, best_arrival = 0;

	for (uint32_t i = 0; i < SHMQ__COND_SLOTS; i++) {
		/* relaxed: only a candidate; cond_pick re-validates the word
		 * with its seq_cst CAS before handing a ticket */
		uint32_t w = shmq__load_relaxed(&c->s->slot[i].word);
		uint32_t a;

		if (w == 0 || (w & SHMQ__COND_SIGNAL))
			continue;
		if (shmq__region_id_valid(c->r, w)) {
			*err = -EBADMSG;
			return COND_NO_SLOT;
		}
		/* relaxed: written by the waiter after its claim; a stale one
		 * only changes the order of the pick, never who may be picked */
		a = shmq__load_relaxed(&c->s->slot[i].arrival);
		if (best == COND_NO_SLOT || (int32_t)(a - best_arrival) < 0) {
			best = i;
			best_arrival = a;
		}
	}
	return best;
}

/* Hand one ticket to the oldest live waiter.  1: handed, 0: no live
 * waiter, -EBADMSG (also when the slots keep changing under us: every
 * retry below is a slot that moved, SHMQ__SYNC_CAS_MAX in a row is
 * garbage). */
static int cond_pick(shmq_cond *c)
{
	uint32_t lost = 0;

	for (bool first = true;; first = false) {
		int err = 0, alive;
		uint32_t i, w;

		if (!first && shmq__sync_cas_lost(&lost, SHMQ_FOREVER, SHMQ__NO_DEADLINE))
			return -EBADMSG;
		i = cond_oldest(c, &err);
		if (i == COND_NO_SLOT)
			return err;
		/* relaxed: re-validated by the seq_cst CAS below (or the
		 * cas_release in cond_free_dead) */
		w = shmq__load_relaxed(&c->s->slot[i].word);
		if (w == 0 || (w & SHMQ__COND_SIGNAL))
			continue; /* gone meanwhile */
		/* The full check (/proc) for another process's waiter, not
		 * kill(2) alone: a waiter killed but not yet reaped is a
		 * zombie that kill(2) still finds, and a ticket handed to it
		 * would be spent (notify counting it as woken) and later
		 * passed on to a waiter that arrived after this notify. */
		alive = w == c->self ? 1 : shmq__region_id_alive(c->r, w);
		if (alive < 0)
			return alive;
		if (!alive) {
			cond_free_dead(c, i, w);
			continue;
		}
		/* seq_cst: the core/wait_int.h protocol orders it before the
		 * load of the slot's sleeper count; it releases what we did
		 * before notifying to the waiter's acquire of its word */
		if (!shmq__cas_seq_cst(&c->s->slot[i].word, &w, w | SHMQ__COND_SIGNAL))
			continue;
		shmq__wake_word_counted(&c->s->slot[i].word, &c->s->slot[i].sleepers, 1,
					&c->s->wakes);
		return 1;
	}
}

static int cond_notify_n(shmq_cond *c, unsigned n)
{
	int woken = 0;

	/* seq_cst: a waiter counts itself (seq_cst) before it claims a slot
	 * and releases the lock; a notifier that holds the lock, or came
	 * after the release in any other way, sees the count */
	if (shmq__load_seq_cst(&c->s->nwaiters) == 0)
		return 0;
	/* At most one ticket per slot: as many as can wait at once.  A slot
	 * keeps its ticket until its waiter takes it, so more means waiters
	 * that came after this notify began (none of its business), or
	 * garbage that keeps writing waiters into the slots */
	if (n > SHMQ__COND_SLOTS)
		n = SHMQ__COND_SLOTS;
	while ((unsigned)woken < n) {
		int rc = cond_pick(c);

		if (rc < 0)
			return rc;
		if (rc == 0)
			break;
		woken++;
	}
	return woken;
}

SHMQ_API int shmq_cond_notify(shmq_cond *c, unsigned n)
{
	if (!c)
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__foreign(c->pid)))
		return -EBADF;
	return cond_notify_n(c, n);
}

SHMQ_API int shmq_cond_notify_all(shmq_cond *c)
{
	if (!c)
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__foreign(c->pid)))
		return -EBADF;
	return cond_notify_n(c, UINT_MAX);
}

/* ---- wait --------------------------------------------------------------- */

/* Claim a free slot as self: its index, or COND_NO_SLOT when all are taken. */
static uint32_t cond_claim(shmq_cond *c)
{
	for (uint32_t i = 0; i < SHMQ__COND_SLOTS; i++) {
		uint32_t w = 0;

		/* acquire: pairs with the release that freed the slot (the
		 * previous waiter's store, cond_free_dead), so its old sleeper
		 * count and arrival are settled */
		if (!shmq__cas_acquire(&c->s->slot[i].word, &w, c->self))
			continue;
		/* relaxed: read by notifiers only to order their picks */
		shmq__store_relaxed(&c->s->slot[i].arrival,
				    shmq__fetch_add_relaxed(&c->s->arrivals, 1));
		return i;
	}
	return COND_NO_SLOT;
}

/* A waiter that slept a whole slice: free the slots of dead waiters, and
 * pass on every ticket one of them had been handed.  The full liveness
 * check (kill(2) and /proc) catches unreaped zombies too. */
static int cond_reclaim(shmq_cond *c, uint32_t mine)
{
	unsigned tickets = 0;
	int rc;

	for (uint32_t i = 0; i < SHMQ__COND_SLOTS; i++) {
		/* relaxed: re-validated by the cas_release in cond_free_dead;
		 * a ticket found there is passed on, and orders nothing */
		uint32_t w = shmq__load_relaxed(&c->s->slot[i].word);
		uint32_t o = w & SHMQ__COND_ID_MASK;
		int alive;

		if (i == mine || w == 0 || o == c->self)
			continue;
		alive = shmq__region_id_alive(c->r, o);
		if (alive < 0)
			return alive;
		if (!alive && cond_free_dead(c, i, w) && (w & SHMQ__COND_SIGNAL))
			tickets++;
	}
	rc = tickets ? cond_notify_n(c, tickets) : 0;
	return rc < 0 ? rc : 0;
}

/* Give our slot up without a ticket.  false: a ticket arrived first (the
 * slot is freed all the same, and the ticket is ours). */
static bool cond_withdraw(shmq_cond *c, uint32_t i)
{
	uint32_t w = c->self;

	/* release: pairs with the next claimer's cas_acquire (cond_claim) */
	if (shmq__cas_release(&c->s->slot[i].word, &w, 0)) {
		cond_uncount(c);
		return true;
	}
	/* acquire: pairs with the seq_cst CAS in cond_pick that beat us; then
	 * free the slot (release: pairs with the cas_acquire in cond_claim) */
	(void)shmq__load_acquire(&c->s->slot[i].word);
	shmq__store_release(&c->s->slot[i].word, 0);
	cond_uncount(c);
	return false;
}

/* Sleep in slot i until it carries a ticket (0) or the deadline passes
 * (-ETIMEDOUT); -EBADMSG when the word turns into something no notifier
 * writes.  The slot is free again when it returns. */
static int cond_sleep(shmq_cond *c, uint32_t i, int64_t deadline)
{
	struct shmq__cond_slot *sl = &c->s->slot[i];

	for (bool spin = true;; spin = false) {
		int rc = shmq__sync_wait(&sl->word, c->self, &sl->sleepers, deadline,
					 SHMQ__SYNC_SLICE_NS, &c->s->waits, spin);
		uint32_t w;

		if (rc == -EINTR) {
			/* a whole slice without a ticket: look for lost ones
			 * (one waiter a slice looks, for all of them) */
			if (!shmq__sync_scan_due(&c->s->scan_at, SHMQ__SYNC_SLICE_NS))
				continue;
			rc = cond_reclaim(c, i);
			if (rc < 0) {
				cond_withdraw(c, i);
				return rc;
			}
			continue;
		}
		if (rc == -ETIMEDOUT || (rc && rc != -EINTR))
			return cond_withdraw(c, i) ? (rc == -ETIMEDOUT ? -ETIMEDOUT : rc) : 0;
		/* pairs with the seq_cst CAS in cond_pick */
		w = shmq__load_acquire(&sl->word);
		if (w == c->self)
			continue; /* a spurious return */
		if (w != (c->self | SHMQ__COND_SIGNAL))
			return -EBADMSG; /* not ours any more: leave it alone */
		/* release: pairs with the next claimer's cas_acquire in
		 * cond_claim */
		shmq__store_release(&sl->word, 0);
		cond_uncount(c);
		return 0;
	}
}

/* Claim a slot, or -ENOSPC after freeing those of dead waiters failed to
 * make room. */
static int cond_register(shmq_cond *c, uint32_t *slot)
{
	int rc;

	/* seq_cst: read by notifiers before they scan (cond_notify_n) */
	shmq__fetch_add_seq_cst(&c->s->nwaiters, 1);
	*slot = cond_claim(c);
	if (*slot != COND_NO_SLOT)
		return 0;
	rc = cond_reclaim(c, COND_NO_SLOT);
	if (rc == 0)
		*slot = cond_claim(c);
	if (*slot != COND_NO_SLOT)
		return 0;
	cond_uncount(c);
	return rc ? rc : -ENOSPC;
}

SHMQ_API int shmq_cond_wait(shmq_cond *c, shmq_lock *l, int64_t timeout_ns)
{
	int64_t deadline;
	uint32_t i;
	int rc, lrc;

	if (!c || !l)
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__timeout_bad(timeout_ns)))
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__foreign(c->pid)))
		return -EBADF;
	deadline = shmq__deadline(timeout_ns);
	rc = cond_register(c, &i);
	if (rc)
		return rc;
	/* Our slot is claimed: a notify from now on finds it.  The release is
	 * also the check that the calling thread holds l. */
	rc = shmq_lock_release(l);
	if (rc) {
		if (!cond_withdraw(c, i) && cond_notify_n(c, 1) < 0)
			rc = -EBADMSG; /* the ticket we got by mistake is passed on */
		return rc;
	}
	if (timeout_ns == SHMQ_NOWAIT)
		rc = cond_withdraw(c, i) ? -EAGAIN : 0; /* a notify may have come already */
	else
		rc = cond_sleep(c, i, deadline);
	/* Take l again whatever happened: the caller holds it on return.  It
	 * never waits behind a dead holder (-EOWNERDEAD instead). */
	lrc = shmq_lock_acquire(l, SHMQ_FOREVER);
	return lrc ? lrc : rc;
}
