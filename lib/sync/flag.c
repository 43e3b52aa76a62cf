/* SPDX-License-Identifier: MIT */
/*
 * Flags: Python's threading.Event across processes.  Layout and word
 * protocol: sync/flag_int.h.
 *
 * Set:   CAS clear -> set with the epoch bumped (seq_cst), then wake every
 *        sleeper through the core/wait_int.h sleeper count: no system call
 *        when nobody sleeps.  Setting a set flag changes nothing.
 * Clear: CAS the SET bit off; the epoch stays, so a waiter that slept
 *        through a set and a clear still sees the word move on.
 * Wait:  a set word returns at once; otherwise spin, then sleep on the word
 *        until its epoch moves (or it is set), or the deadline passes.
 * No owner, so no liveness check: nobody holds a flag.  But a setter can
 * die between its CAS and its wake, leaving the flag set and its sleepers
 * asleep (a later set of the set flag changes nothing): waiters sleep in
 * slices of SHMQ__SYNC_SLICE_NS and look at the word after each, so they return
 * within a slice of such a death, even with SHMQ_FOREVER.
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
#include "sync/flag_int.h"
#include "sync/spin_int.h"

struct shmq_flag {
	struct shmq__flag_shm *s; /* the shared flag */
	const shmq_region *r;     /* owner ids and liveness (listed sleepers) */
	uint32_t self;            /* our owner id */
	pid_t pid;                /* the process that made the handle (core/fork_int.h) */
};

static int flag_obj_init(void *mem, uint64_t size, void *arg)
{
	struct shmq__flag_shm *s = mem;

	(void)size;
	(void)arg;
	memset(s, 0, sizeof(*s));
	s->version = SHMQ__FLAG_VERSION;
	/* Publishes the zeroed word and the version: pairs with the
	 * load_acquire of magic in flag_attach. */
	shmq__store_release(&s->magic, SHMQ__FLAG_MAGIC);
	return 0;
}

/* f: the handle, made before its object by a create, or NULL to make it
 * here; the caller's to free unless this succeeds. */
static int flag_attach(shmq_region *r, void *mem, uint64_t size, shmq_flag *f,
		       shmq_flag **out)
{
	struct shmq__flag_shm *s = mem;

	if (size < sizeof(*s) || ((uintptr_t)mem % SHMQ__CACHELINE))
		return -EBADMSG;
	/* pairs with the store_release of magic in flag_obj_init */
	if (shmq__load_acquire(&s->magic) != SHMQ__FLAG_MAGIC)
		return -EBADMSG;
	if (shmq__load_relaxed(&s->version) != SHMQ__FLAG_VERSION) /* immutable since init */
		return -EPROTO;
	if (!f && !(f = shmq__malloc(sizeof(*f))))
		return -ENOMEM;
	f->s = s;
	f->r = r;
	f->self = shmq__region_self(r);
	f->pid = shmq__self_pid();
	*out = f;
	return 0;
}

SHMQ_API int shmq_flag_create(shmq_region *r, const char *name, shmq_flag **out)
{
	shmq_flag *f;
	void *mem;
	int rc;

	if (!r || !name || !out)
		return -EINVAL;
	/* the handle first: a create that fails leaves no object behind */
	f = shmq__malloc(sizeof(*f));
	if (!f)
		return -ENOMEM;
	rc = shmq__obj_create(r, name, SHMQ__OBJ_FLAG, sizeof(struct shmq__flag_shm),
			      flag_obj_init, NULL, &mem);
	if (!rc)
		rc = flag_attach(r, mem, sizeof(struct shmq__flag_shm), f, out);
	if (rc)
		shmq__free(f, sizeof(*f));
	return rc;
}

SHMQ_API int shmq_flag_open(shmq_region *r, const char *name, shmq_flag **out)
{
	void *mem;
	uint64_t size;
	int rc;

	if (!r || !name || !out)
		return -EINVAL;
	rc = shmq__obj_find(r, name, SHMQ__OBJ_FLAG, &mem, &size);
	if (rc)
		return rc;
	return flag_attach(r, mem, size, NULL, out);
}

SHMQ_API void shmq_flag_close(shmq_flag *f)
{
	if (f)
		shmq__free(f, sizeof(*f));
}

SHMQ_API bool shmq_flag_is_set(const shmq_flag *f)
{
	uint32_t w;

	if (!f)
		return false;
	/* pairs with the seq_cst CAS in shmq_flag_set: a caller that sees
	 * the flag set sees what the setter did before setting it */
	w = shmq__load_acquire(&f->s->word);
	return !(w & SHMQ__FLAG_BAD) && (w & SHMQ__FLAG_SET);
}

SHMQ_API int shmq_flag_set(shmq_flag *f)
{
	uint32_t w, next, lost = 0;

	if (!f)
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__foreign(f->pid)))
		return -EBADF;
	/* relaxed: a first guess, re-validated by the seq_cst CAS below; an
	 * early return on a set word orders nothing (a set flag stays set
	 * until a clear, and its setter woke everybody) */
	w = shmq__load_relaxed(&f->s->word);
	for (;;) {
		if (w & SHMQ__FLAG_BAD)
			return -EBADMSG;
		if (w & SHMQ__FLAG_SET)
			return 0; /* set already: its setter woke everybody */
		next = ((w + SHMQ__FLAG_EPOCH) & ~SHMQ__FLAG_BAD) | SHMQ__FLAG_SET;
		/* seq_cst: the core/wait_int.h protocol orders it before the
		 * sleeper count load; it also releases what we did before
		 * setting to every waiter's acquire of the word */
		if (shmq__cas_seq_cst(&f->s->word, &w, next))
			break;
		/* lost to a clear (a set returns above): only so many in a row */
		if (shmq__sync_cas_lost(&lost, SHMQ_FOREVER, SHMQ__NO_DEADLINE))
			return -EBADMSG;
	}
	shmq__sync_wake_listed(f->r, &f->s->word, &f->s->sleepers, f->s->sleeper_ids, INT_MAX,
			       &f->s->wakes);
	return 0;
}

SHMQ_API int shmq_flag_clear(shmq_flag *f)
{
	uint32_t w, lost = 0;

	if (!f)
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__foreign(f->pid)))
		return -EBADF;
	/* relaxed: a first guess, re-validated by the CAS below; clearing a
	 * clear flag publishes nothing */
	w = shmq__load_relaxed(&f->s->word);
	for (;;) {
		if (w & SHMQ__FLAG_BAD)
			return -EBADMSG;
		if (!(w & SHMQ__FLAG_SET))
			return 0;
		/* relaxed: a clear publishes nothing and wakes nobody; the
		 * next set's seq_cst CAS reads this value in the word's RMW
		 * chain */
		if (shmq__cas_relaxed(&f->s->word, &w, w & ~SHMQ__FLAG_SET))
			return 0;
		/* lost to a clear and a set since (a clear returns above):
		 * only so many in a row */
		if (shmq__sync_cas_lost(&lost, SHMQ_FOREVER, SHMQ__NO_DEADLINE))
			return -EBADMSG;
	}
}

static SHMQ__COLD int flag_wait_slow(shmq_flag *f, uint32_t w, int64_t timeout_ns)
{
	int64_t deadline;
	uint32_t epoch = w & ~SHMQ__FLAG_SET;

	if (timeout_ns == SHMQ_NOWAIT)
		return -EAGAIN;
	deadline = shmq__deadline(timeout_ns);
	for (bool spin = true;; spin = false) {
		int rc = shmq__sync_wait_listed(&f->s->word, w, &f->s->sleepers,
						f->s->sleeper_ids, f->self, deadline,
						SHMQ__SYNC_SLICE_NS, &f->s->waits, spin);

		if (rc && rc != -EINTR) {
			/* one last look: a set that raced the deadline counts;
			 * pairs with the seq_cst CAS in shmq_flag_set */
			w = shmq__load_acquire(&f->s->word);
			if (!(w & SHMQ__FLAG_BAD) && ((w & SHMQ__FLAG_SET) ||
						      (w & ~SHMQ__FLAG_SET) != epoch))
				return 0;
			return rc;
		}
		/* pairs with the seq_cst CAS in shmq_flag_set */
		w = shmq__load_acquire(&f->s->word);
		if (w & SHMQ__FLAG_BAD)
			return -EBADMSG;
		if ((w & SHMQ__FLAG_SET) || (w & ~SHMQ__FLAG_SET) != epoch)
			return 0; /* set now, or set and cleared while we slept */
	}
}

SHMQ_API int shmq_flag_wait(shmq_flag *f, int64_t timeout_ns)
{
	uint32_t w;

	if (SHMQ__UNLIKELY(!f))
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__timeout_bad(timeout_ns)))
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__foreign(f->pid)))
		return -EBADF;
	/* pairs with the seq_cst CAS in shmq_flag_set */
	w = shmq__load_acquire(&f->s->word);
	if (SHMQ__UNLIKELY(w & SHMQ__FLAG_BAD))
		return -EBADMSG;
	if (SHMQ__LIKELY(w & SHMQ__FLAG_SET))
		return 0;
	return flag_wait_slow(f, w, timeout_ns);
}
