/* SPDX-License-Identifier: MIT */
/*
 * Locks (seed 12-2): a three-state futex mutex whose "locked" state is the
 * holder's owner id, so that a waiter that has slept a slice can ask the
 * region's process table whether the holder still lives.  Layout and word
 * protocol: sync/lock_int.h.
 *
 * Acquire:  CAS 0 -> self.  On failure: spin LOCK_SPIN polls while the word is
 *           held without waiters (0 by default, see there), then
 *           set CONTENDED and futex-wait in slices; a slice that ends with the
 *           same holder triggers a liveness check, and a dead holder's word is
 *           CASed to self: -EOWNERDEAD, lock held.  A waiter that got the lock
 *           after sleeping takes it as self|CONTENDED, since others may sleep.
 * Release:  exchange the word with 0; futex-wake one only if CONTENDED was set.
 *
 * The kernel's robust-futex list cannot serve: there is one per thread and
 * glibc owns it.  Slices cost the healthy path nothing: only a waiter that
 * slept a full slice without being woken checks liveness.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <shmq.h>

#include "core/alloc_int.h"
#include "core/atomic_int.h"
#include "core/compiler_int.h"
#include "core/fork_int.h"
#include "sync/lock_int.h"
#include "core/region_int.h"
#include "core/wait_int.h"

/* How long a waiter sleeps before it checks the holder's liveness. */
#define LOCK_SLICE_NS (10 * 1000 * 1000)
/* Bounded spin before sleeping, in polls of the word (each with a pause).
 * 0: measured with shmq-bench lock on an idle 2-core machine, two processes
 * contending reach 50 M acquisitions/s without spinning but 21-27 M with 32
 * to 512 polls: a spinner takes the lock over more often, and every hand-off
 * moves the line between cores.  Kept as a knob for other machines. */
#define LOCK_SPIN 0u

struct shmq_lock {
	struct shmq__lock_shm *s; /* the shared lock */
	shmq_region *r;           /* owner ids and liveness */
	uint32_t self;            /* our owner id: the word's "locked by us" value */
	uint64_t tag_hi;          /* self << 32: the owner-id half of our tags */
	/* SHMQ_NOWAIT: when this handle last read /proc for a holder that
	 * kill(2) still finds (relaxed: threads sharing the handle may race;
	 * the worst is one check early or late) */
	int64_t nowait_checked;
	pid_t pid; /* the process that made the handle (core/fork_int.h) */
};

/* The calling thread's identity without a system call or thread-local
 * state of ours: the thread pointer, which the ELF TLS ABI keeps in a
 * register (x86-64: %fs:0 holds the TCB's own address, which is also glibc's
 * pthread_t; AArch64: TPIDR_EL0); pthread_self() elsewhere. */
static inline uintptr_t lock_thread_self(void)
{
#if defined(__x86_64__)
	uintptr_t tp;

	__asm__("mov %%fs:0, %0" : "=r"(tp));
	return tp;
#elif defined(__aarch64__)
	uintptr_t tp;

	__asm__("mrs %0, tpidr_el0" : "=r"(tp));
	return tp;
#else
	return (uintptr_t)pthread_self();
#endif
}

/* The calling thread's key: bits 6..37 of the thread pointer (the thread's
 * control block, 64-byte aligned): distinct for any two live threads of one
 * process unless their control blocks lie a multiple of 256 GiB apart.
 * Threads of different processes may share a key (a forked child's first
 * thread has its parent's). */
static inline uint32_t lock_key(void)
{
	return (uint32_t)(lock_thread_self() >> 6);
}

/* The calling thread's tag: owner id above, its key below. */
static inline uint64_t lock_tag(const shmq_lock *l)
{
	return l->tag_hi | lock_key();
}

static inline uint32_t lock_owner(uint32_t word)
{
	return word & SHMQ__LOCK_ID_MASK;
}

/* We own the word now: record which thread holds it. */
static inline void lock_set_tag(shmq_lock *l)
{
	/* relaxed: read only by the EDEADLK / EPERM checks, which compare whole tags;
	 * the release clears it before the word's release store. */
	shmq__store_relaxed(&l->s->tag, lock_tag(l));
}

/* ---- placement ---------------------------------------------------------- */

SHMQ_API size_t shmq_lock_footprint(void)
{
	return sizeof(struct shmq__lock_shm);
}

SHMQ_API int shmq_lock_init(void *mem)
{
	struct shmq__lock_shm *s = mem;

	if (!mem || ((uintptr_t)mem & 7u))
		return -EINVAL;
	memset(s, 0, sizeof(*s));
	/* Publishes the zeroed word and tag: an attacher that sees the magic
	 * (pairs with the load_acquire in lock_attach_checked) sees them too. */
	shmq__store_release(&s->magic, SHMQ__LOCK_MAGIC);
	return 0;
}

/* l: the handle, made before its object by a create, or NULL to make it
 * here; the caller's to free unless this succeeds. */
static int lock_attach_checked(shmq_region *r, struct shmq__lock_shm *s, shmq_lock *l,
			       shmq_lock **out)
{
	/* pairs with the store_release of magic in shmq_lock_init */
	if (shmq__load_acquire(&s->magic) != SHMQ__LOCK_MAGIC)
		return -EBADMSG;
	if (!l && !(l = shmq__malloc(sizeof(*l))))
		return -ENOMEM;
	l->s = s;
	l->r = r;
	l->pid = shmq__self_pid();
	l->self = shmq__region_self(r);
	l->tag_hi = (uint64_t)l->self << 32;
	l->nowait_checked = INT64_MIN / 2; /* the first NOWAIT may check at once */
	*out = l;
	return 0;
}

SHMQ_API int shmq_lock_attach(shmq_region *r, void *mem, shmq_lock **out)
{
	if (!r || !mem || !out || ((uintptr_t)mem & 7u))
		return -EINVAL;
	/* a region handle inherited across fork() names the parent's
	 * attachment: a lock taken through it would carry the parent's owner
	 * id (as core/objdir.c refuses named objects) */
	if (shmq__region_forked(r))
		return -EBADF;
	return lock_attach_checked(r, mem, NULL, out);
}

/* ---- named locks -------------------------------------------------------- */

static int lock_obj_init(void *mem, uint64_t size, void *arg)
{
	(void)size;
	(void)arg;
	return shmq_lock_init(mem);
}

SHMQ_API int shmq_lock_create(shmq_region *r, const char *name, shmq_lock **out)
{
	shmq_lock *l;
	void *mem;
	int rc;

	if (!r || !name || !out)
		return -EINVAL;
	/* the handle first: a create that fails leaves no object behind */
	l = shmq__malloc(sizeof(*l));
	if (!l)
		return -ENOMEM;
	rc = shmq__obj_create(r, name, SHMQ__OBJ_LOCK, sizeof(struct shmq__lock_shm),
			      lock_obj_init, NULL, &mem);
	if (!rc)
		rc = lock_attach_checked(r, mem, l, out);
	if (rc)
		shmq__free(l, sizeof(*l));
	return rc;
}

SHMQ_API int shmq_lock_open(shmq_region *r, const char *name, shmq_lock **out)
{
	void *mem;
	int rc;

	if (!r || !name || !out)
		return -EINVAL;
	/* size and alignment against the kind table (core/objkind_int.h) */
	rc = shmq__obj_open(r, name, SHMQ__OBJ_LOCK, &mem, NULL);
	if (rc)
		return rc;
	return lock_attach_checked(r, mem, NULL, out);
}

SHMQ_API void shmq_lock_close(shmq_lock *l)
{
	if (l)
		shmq__free(l, sizeof(*l));
}

SHMQ_API bool shmq_lock_locked(shmq_lock *l)
{
	/* relaxed: a snapshot; nothing is read through it. */
	return l && shmq__load_relaxed(&l->s->word) != 0;
}

/* ---- acquire ------------------------------------------------------------ */

/* Try to take a free word as val (self, or self|CONTENDED); when it is
 * not free, *seen is what the same RMW found there. */
static inline bool lock_take_seen(shmq_lock *l, uint32_t val, uint32_t *seen)
{
	*seen = 0;
	/* pairs with the exchange_release in shmq_lock_release */
	if (!shmq__cas_acquire(&l->s->word, seen, val))
		return false;
	lock_set_tag(l);
	return true;
}

static inline bool lock_try_take(shmq_lock *l, uint32_t val)
{
	uint32_t seen;

	return lock_take_seen(l, val, &seen);
}

/* The holder has not moved for a whole slice: is it dead?  Takes the lock
 * over when it is.  1: taken (-EOWNERDEAD for the caller), 0: the holder
 * lives or the word moved on, -EBADMSG: the word names no valid owner. */
static int lock_check_holder(shmq_lock *l, uint32_t seen)
{
	uint32_t owner = lock_owner(seen);
	int alive;

	if (owner == l->self)
		return 0; /* another thread of ours holds it */
	alive = shmq__region_id_alive(l->r, owner);
	if (alive != 0)
		return alive < 0 ? alive : 0;
	/* Keep CONTENDED: others may sleep behind the dead holder.  Pairs
	 * with the exchange_release in shmq_lock_release of the last holder
	 * that did release; the dead one published nothing. */
	if (!shmq__cas_acquire(&l->s->word, &seen, l->self | SHMQ__LOCK_CONTENDED))
		return 0; /* somebody else moved first; look again */
	lock_set_tag(l);
	return 1;
}

/* Phase 1: while the word is held without sleepers, poll it a bounded while;
 * take it if it frees up.  true: taken. */
static bool lock_spin(shmq_lock *l)
{
	for (uint32_t i = LOCK_SPIN; i > 0; i--) {
		/* relaxed: the CAS in lock_try_take is the acquire; this only polls */
		uint32_t c = shmq__load_relaxed(&l->s->word);

		if (c == 0) {
			if (lock_try_take(l, l->self))
				return true;
		} else if (c & SHMQ__LOCK_CONTENDED) {
			return false; /* others sleep already: queue behind them */
		}
		shmq__cpu_relax();
	}
	return false;
}

/* Make sure the held word c carries CONTENDED before we sleep on it.
 * Returns the value to sleep on, or 0 when the word changed under us. */
static uint32_t lock_mark_contended(shmq_lock *l, uint32_t c)
{
	if (c & SHMQ__LOCK_CONTENDED)
		return c;
	/* relaxed: the releaser's exchange reads this bit; both are RMWs on the word,
	 * so one of them sees the other. */
	if (!shmq__cas_relaxed(&l->s->word, &c, c | SHMQ__LOCK_CONTENDED))
		return 0;
	return c | SHMQ__LOCK_CONTENDED;
}

/* One sleep of at most a slice on the held word c (with CONTENDED set).
 * 1: the lock was taken from a dead holder; 0: look again; < 0: error. */
static int lock_sleep(shmq_lock *l, uint32_t c, int64_t deadline)
{
	int64_t until = shmq_now_ns() + LOCK_SLICE_NS;
	int rc;

	if (deadline < until)
		until = deadline;
	shmq__count_event(&l->s->waits);
	rc = shmq__futex_wait(&l->s->word, c, until);
	if (rc != -ETIMEDOUT)
		return 0; /* woken, or the word had moved, or a spurious return */
	/* relaxed: a whole slice (or the rest of the timeout) without a wake-up. */
	if (shmq__load_relaxed(&l->s->word) != c)
		return 0; /* it moved: no need to suspect the holder */
	return lock_check_holder(l, c);
}

/* The first sight of holder owner: an impossible id is corruption now
 * (-EBADMSG), and a holder the process table no longer lists is surely dead,
 * so its lock is taken over now (1) rather than after a slice.  0: it may
 * live; the slices decide.  One load, no system call. */
static int lock_first_look(shmq_lock *l, uint32_t c)
{
	int listed = shmq__region_id_listed(l->r, lock_owner(c));

	if (listed != 0)
		return listed < 0 ? listed : 0;
	return lock_check_holder(l, c);
}

/* Phase 2: sleep in slices until the lock is ours or the deadline passes. */
static int lock_wait(shmq_lock *l, int64_t deadline)
{
	uint32_t looked = 0; /* the holder we took the first look at */

	for (;;) {
		uint32_t c;
		int rc;

		/* Straight to the CAS, without a load first: the holder loses its
		 * line once per look instead of twice (a load, then the CAS), and
		 * a free word is ours at once.  Taken as contended: others may
		 * sleep, so our release wakes one. */
		if (lock_take_seen(l, l->self | SHMQ__LOCK_CONTENDED, &c))
			return 0;
		if (lock_owner(c) == 0)
			return -EBADMSG; /* CONTENDED with no owner: never written by us */
		if (lock_owner(c) != looked && lock_owner(c) != l->self) {
			looked = lock_owner(c);
			rc = lock_first_look(l, c);
			if (rc)
				return rc > 0 ? -EOWNERDEAD : rc;
		}
		if (deadline != SHMQ__NO_DEADLINE && shmq_now_ns() >= deadline)
			return -ETIMEDOUT;
		c = lock_mark_contended(l, c);
		if (!c)
			continue;
		rc = lock_sleep(l, c, deadline);
		if (rc)
			return rc > 0 ? -EOWNERDEAD : rc;
	}
}

/* SHMQ_NOWAIT found the lock held: never blocks, but a dead holder's lock is
 * taken over (-EOWNERDEAD) as it would be by a waiter.  A holder kill(2) no
 * longer finds is known dead at once; one that it finds (alive, or an
 * unreaped zombie) gets the /proc check at most once per slice per handle,
 * so a try-lock loop against a live holder stays cheap. */
static int lock_try_nowait(shmq_lock *l)
{
	/* relaxed: the CASes in lock_try_take / lock_check_holder are the acquires */
	uint32_t c = shmq__load_relaxed(&l->s->word);
	uint32_t owner = lock_owner(c);
	int64_t now;
	int rc;

	if (c == 0)
		return lock_try_take(l, l->self) ? 0 : -EAGAIN;
	if (owner == 0)
		return -EBADMSG; /* CONTENDED with no owner: never written by us */
	if (owner == l->self)
		return -EAGAIN; /* another thread of ours holds it */
	rc = shmq__region_id_maybe_alive(l->r, owner);
	if (rc < 0)
		return rc;
	if (rc > 0) {
		now = shmq_now_ns();
		/* relaxed: handle-local, see struct shmq_lock */
		if (now - shmq__load_relaxed(&l->nowait_checked) < LOCK_SLICE_NS)
			return -EAGAIN;
		shmq__store_relaxed(&l->nowait_checked, now); /* relaxed: handle-local, see struct */
	}
	rc = lock_check_holder(l, c);
	if (rc)
		return rc > 0 ? -EOWNERDEAD : rc;
	return -EAGAIN;
}

/* Does the calling thread hold the lock already, through this region open
 * or another one of this process (each region open is an owner id of its
 * own, so the tag's owner half alone would miss it, and a waiter would
 * sleep forever behind itself, a holder that lives)? */
static bool lock_held_by_caller(shmq_lock *l)
{
	/* relaxed: only this thread writes a tag with our key under an owner id
	 * of this process, and it cleared it when it last released: a match
	 * means we hold the lock now. */
	uint64_t tag = shmq__load_relaxed(&l->s->tag);
	uint32_t owner = (uint32_t)(tag >> 32);

	if (tag == lock_tag(l))
		return true;
	if ((uint32_t)tag != lock_key() || owner == l->self)
		return false;
	/* Our key under another owner id: one of our region opens, or another
	 * process's thread that has our key.  An impossible id (-EBADMSG) is
	 * no answer: the word decides, as for anybody else's. */
	return shmq__region_id_ours(l->r, owner) == 1;
}

static SHMQ__COLD int lock_acquire_slow(shmq_lock *l, int64_t timeout_ns)
{
	int64_t deadline;
	int rc;

	if (lock_held_by_caller(l))
		return -EDEADLK;
	if (timeout_ns == SHMQ_NOWAIT)
		return lock_try_nowait(l);
	deadline = shmq__deadline(timeout_ns);
	if (lock_spin(l))
		return 0;
	rc = lock_wait(l, deadline);
	if (rc == -ETIMEDOUT) {
		/* The deadline passed: one last look, including at the holder's
		 * liveness, so a short timeout still finds a dead holder. */
		uint32_t c = shmq__load_relaxed(&l->s->word); /* relaxed: polls; CASes acquire */

		if (c == 0 && lock_try_take(l, l->self | SHMQ__LOCK_CONTENDED))
			return 0;
		if (c != 0) {
			rc = lock_check_holder(l, c);
			if (rc)
				return rc > 0 ? -EOWNERDEAD : rc;
		}
		return -ETIMEDOUT;
	}
	return rc;
}

SHMQ_API int shmq_lock_acquire(shmq_lock *l, int64_t timeout_ns)
{
	if (SHMQ__UNLIKELY(!l))
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__timeout_bad(timeout_ns)))
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__foreign(l->pid)))
		return -EBADF;
	if (SHMQ__LIKELY(lock_try_take(l, l->self)))
		return 0;
	return lock_acquire_slow(l, timeout_ns);
}

/* ---- release ------------------------------------------------------------ */

SHMQ_API int shmq_lock_release(shmq_lock *l)
{
	struct shmq__lock_shm *s;
	uint32_t old;

	if (SHMQ__UNLIKELY(!l))
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__foreign(l->pid)))
		return -EBADF;
	s = l->s;
	/* relaxed: our own last write when we hold it (only the holder writes the tag). */
	if (SHMQ__UNLIKELY(shmq__load_relaxed(&s->tag) != lock_tag(l)))
		return -EPERM;
	shmq__store_relaxed(&s->tag, 0); /* relaxed: ordered before the word by its release */
	/* pairs with the cas_acquire of the next taker (lock_try_take) */
	old = shmq__exchange_release(&s->word, 0);
	if (SHMQ__UNLIKELY(old & SHMQ__LOCK_CONTENDED)) {
		shmq__count_event(&s->wakes);
		shmq__futex_wake(&s->word, 1);
	}
	if (SHMQ__UNLIKELY(lock_owner(old) != l->self))
		return -EBADMSG; /* our tag but not our word: it was overwritten */
	return 0;
}
