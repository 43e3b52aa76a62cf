/* SPDX-License-Identifier: MIT */
/*
 * Barriers (seed 12-3): Python's threading.Barrier across processes.
 *
 * The whole state is one futex word (count, BROKEN, RESET, generation; see
 * sync/lock_int.h).  An arrival is a CAS that bumps the count; the last arrival's
 * CAS instead starts the next generation (count 0, flags clear) and wakes
 * every sleeper with one FUTEX_WAKE, or none when nobody sleeps (core/wait_int.h's
 * sleeper count).  Waiters spin, then sleep, until the generation moves or
 * BROKEN appears.  A timeout sets BROKEN (-ETIMEDOUT to that waiter, -EPIPE
 * to everybody else), abort sets it too, and reset starts a new generation
 * with RESET set so the waiters it cut short know they did not pass.
 *
 * Protocol BARRIER_WORD: every change of the word is an RMW, so all of them
 * form one release sequence.  An arrival's acq_rel CAS (shmq_barrier_wait)
 * releases what the party did before arriving; the seq_cst RMW that moves
 * the generation or sets a flag (the last arrival in shmq_barrier_wait,
 * shmq_barrier_abort, shmq_barrier_reset, barrier_time_out) reads the
 * latest arrival and so acquires every one of them; a waiter's acquire load
 * that sees the moved word (barrier_spin, barrier_await, barrier_time_out)
 * acquires all of it in turn.
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
#include "sync/lock_int.h"
#include "core/region_int.h"
#include "core/wait_int.h"

#define GEN_MASK (~(SHMQ__BARRIER_GEN_ONE - 1u))

struct shmq_barrier {
	struct shmq__barrier_shm *s;
	uint32_t parties; /* checked copy of s->parties */
};

static inline uint32_t barrier_gen(uint32_t w)
{
	return w & GEN_MASK;
}

static inline uint32_t barrier_count(uint32_t w)
{
	return w & SHMQ__BARRIER_COUNT_MASK;
}

/* The word that starts the generation after w's (wraps modulo 2^14). */
static inline uint32_t barrier_next_gen(uint32_t w)
{
	return barrier_gen(w) + SHMQ__BARRIER_GEN_ONE;
}

/* ---- placement and named barriers ---------------------------------------- */

SHMQ_API size_t shmq_barrier_footprint(void)
{
	return sizeof(struct shmq__barrier_shm);
}

SHMQ_API int shmq_barrier_init(void *mem, unsigned parties)
{
	struct shmq__barrier_shm *s = mem;

	if (!mem || ((uintptr_t)mem & 7u) || parties == 0 ||
	    parties > SHMQ__BARRIER_MAX_PARTIES)
		return -EINVAL;
	memset(s, 0, sizeof(*s));
	s->parties = parties;
	/* Publishes parties and the zeroed word: pairs with the load_acquire
	 * of magic in barrier_attach_checked. */
	shmq__store_release(&s->magic, SHMQ__BARRIER_MAGIC);
	return 0;
}

static int barrier_attach_checked(struct shmq__barrier_shm *s, shmq_barrier **out)
{
	shmq_barrier *b;
	uint32_t parties;

	/* pairs with the store_release of magic in shmq_barrier_init */
	if (shmq__load_acquire(&s->magic) != SHMQ__BARRIER_MAGIC)
		return -EBADMSG;
	parties = shmq__load_relaxed(&s->parties); /* immutable since init */
	if (parties == 0 || parties > SHMQ__BARRIER_MAX_PARTIES)
		return -EBADMSG;
	b = shmq__malloc(sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->s = s;
	b->parties = parties;
	*out = b;
	return 0;
}

SHMQ_API int shmq_barrier_attach(void *mem, shmq_barrier **out)
{
	if (!mem || !out || ((uintptr_t)mem & 7u))
		return -EINVAL;
	return barrier_attach_checked(mem, out);
}

static int barrier_obj_init(void *mem, uint64_t size, void *arg)
{
	(void)size;
	return shmq_barrier_init(mem, *(const unsigned *)arg);
}

SHMQ_API int shmq_barrier_create(shmq_region *r, const char *name, unsigned parties,
				 shmq_barrier **out)
{
	void *mem;
	int rc;

	if (!r || !name || !out || parties == 0 || parties > SHMQ__BARRIER_MAX_PARTIES)
		return -EINVAL;
	rc = shmq__obj_create(r, name, SHMQ__OBJ_BARRIER, sizeof(struct shmq__barrier_shm),
			      barrier_obj_init, &parties, &mem);
	if (rc)
		return rc;
	return barrier_attach_checked(mem, out);
}

SHMQ_API int shmq_barrier_open(shmq_region *r, const char *name, shmq_barrier **out)
{
	void *mem;
	uint64_t size;
	int rc;

	if (!r || !name || !out)
		return -EINVAL;
	rc = shmq__obj_find(r, name, SHMQ__OBJ_BARRIER, &mem, &size);
	if (rc)
		return rc;
	if (size < sizeof(struct shmq__barrier_shm) || ((uintptr_t)mem & 7u))
		return -EBADMSG;
	return barrier_attach_checked(mem, out);
}

SHMQ_API void shmq_barrier_close(shmq_barrier *b)
{
	if (b)
		shmq__free(b, sizeof(*b));
}

SHMQ_API unsigned shmq_barrier_parties(const shmq_barrier *b)
{
	if (!b)
		return 0;
	return b->parties;
}

SHMQ_API unsigned shmq_barrier_n_waiting(const shmq_barrier *b)
{
	uint32_t w;

	if (!b)
		return 0;
	w = shmq__load_relaxed(&b->s->word); /* relaxed: a snapshot */

	if (w & SHMQ__BARRIER_BROKEN)
		return 0;
	return barrier_count(w) < b->parties ? barrier_count(w) : 0;
}

SHMQ_API bool shmq_barrier_broken(const shmq_barrier *b)
{
	if (!b)
		return false;
	return (shmq__load_relaxed(&b->s->word) & SHMQ__BARRIER_BROKEN) != 0; /* relaxed: a snapshot */
}

/* ---- state changes that release everybody -------------------------------- */

/* After a seq_cst change of the word: wake every sleeper, if any. */
static void barrier_wake_all(shmq_barrier *b)
{
	shmq__wake_word_counted(&b->s->word, &b->s->sleepers, INT_MAX, &b->s->wakes);
}

SHMQ_API int shmq_barrier_abort(shmq_barrier *b)
{
	if (!b)
		return -EINVAL;
	/* seq_cst: the core/wait_int.h protocol orders it before the sleeper count load */
	shmq__fetch_or_seq_cst(&b->s->word, SHMQ__BARRIER_BROKEN);
	barrier_wake_all(b);
	return 0;
}

SHMQ_API int shmq_barrier_reset(shmq_barrier *b)
{
	uint32_t w;

	if (!b)
		return -EINVAL;
	w = shmq__load_relaxed(&b->s->word); /* relaxed: the CAS below re-reads it */
	while (!shmq__cas_seq_cst(&b->s->word, &w, barrier_next_gen(w) | SHMQ__BARRIER_RESET))
		;
	barrier_wake_all(b);
	return 0;
}

/* ---- wait ------------------------------------------------------------------ */

/* The generation g we arrived in has moved on to the one in w. */
static int barrier_outcome(uint32_t w, uint32_t g, int idx)
{
	if (barrier_gen(w) == g + SHMQ__BARRIER_GEN_ONE && (w & SHMQ__BARRIER_RESET))
		return -EPIPE; /* reset cut our generation short */
	return idx;
}

/* Our deadline passed in generation g: break the barrier, unless the
 * generation completed or broke first. */
static int barrier_time_out(shmq_barrier *b, uint32_t g, int idx)
{
	/* pairs with the completer's seq_cst CAS (Protocol BARRIER_WORD): a
	 * pass we lost the race to still counts */
	uint32_t w = shmq__load_acquire(&b->s->word);

	for (;;) {
		if (barrier_gen(w) != g)
			return barrier_outcome(w, g, idx);
		if (w & SHMQ__BARRIER_BROKEN)
			return -EPIPE;
		if (shmq__cas_seq_cst(&b->s->word, &w, w | SHMQ__BARRIER_BROKEN))
			break;
	}
	barrier_wake_all(b);
	return -ETIMEDOUT;
}

/*
 * The spin phase: parties of a tight loop arrive within a microsecond or two
 * of each other, so poll the word for up to BARRIER_SPIN_NS before sleeping,
 * and never yield the CPU meanwhile (on a busy machine a yield hands it to
 * somebody else's process for a whole time slice).  Returns the word once it
 * moved, or cur when the spin ran out.  SHMQ_SPIN=0 disables it.
 */
#define BARRIER_SPIN_NS 20000
#define BARRIER_SPIN_CLOCK_EVERY 32u

static uint32_t barrier_spin(const shmq_barrier *b, uint32_t cur)
{
	int64_t until = 0;

	if (shmq__spin_budget() == 0)
		return cur;
	for (uint32_t i = 1;; i++) {
		/* pairs with the RMW that moved the word (Protocol BARRIER_WORD) */
		uint32_t w = shmq__load_acquire(&b->s->word);

		if (w != cur)
			return w;
		if (i % BARRIER_SPIN_CLOCK_EVERY == 0) {
			int64_t now = shmq_now_ns();

			if (!until)
				until = now + BARRIER_SPIN_NS;
			else if (now >= until)
				return cur;
		}
		shmq__cpu_relax();
	}
}

/* Arrived as index idx with the word now cur: wait for the generation to end. */
static int barrier_await(shmq_barrier *b, uint32_t cur, int idx, int64_t deadline)
{
	uint32_t g = barrier_gen(cur);
	bool spun = false;

	for (;;) {
		int rc;

		if (barrier_gen(cur) != g)
			return barrier_outcome(cur, g, idx);
		if (cur & SHMQ__BARRIER_BROKEN)
			return -EPIPE;
		if (barrier_count(cur) >= b->parties)
			return -EBADMSG;
		if (!spun) {
			uint32_t w = barrier_spin(b, cur);

			spun = true;
			if (w != cur) {
				cur = w;
				continue;
			}
		}
		rc = shmq__sleep_word_counted(&b->s->word, cur, &b->s->sleepers, deadline, 0,
					      &b->s->waits);
		if (rc == -ETIMEDOUT)
			return barrier_time_out(b, g, idx);
		/* pairs with the RMW that completed, broke or reset the generation
		 * (Protocol BARRIER_WORD): everything the other parties did before
		 * arriving is visible once we return */
		cur = shmq__load_acquire(&b->s->word);
	}
}

SHMQ_API int shmq_barrier_wait(shmq_barrier *b, int64_t timeout_ns)
{
	int64_t deadline;
	uint32_t w, c;

	if (!b)
		return -EINVAL;
	deadline = shmq__deadline(timeout_ns);
	/* relaxed: the CASes below re-read it */
	w = shmq__load_relaxed(&b->s->word);
	for (;;) {
		if (w & SHMQ__BARRIER_BROKEN)
			return -EPIPE;
		c = barrier_count(w);
		if (c >= b->parties)
			return -EBADMSG;
		if (c + 1 == b->parties) {
			/* The last arrival: start the next generation.  seq_cst for
			 * the core/wait_int.h protocol (then the sleeper count load); it
			 * also acquires every arrival's release and releases to
			 * every waiter's acquire of the new word. */
			if (shmq__cas_seq_cst(&b->s->word, &w, barrier_next_gen(w))) {
				barrier_wake_all(b);
				return (int)c;
			}
			continue;
		}
		if (timeout_ns == SHMQ_NOWAIT)
			return -EAGAIN; /* would block: do not arrive */
		/* pairs with the last arrival's CAS (Protocol BARRIER_WORD): releases
		 * what we did before arriving to it (its CAS reads this value or a
		 * later one in the word's RMW chain) */
		if (shmq__cas_acq_rel(&b->s->word, &w, w + 1))
			break;
	}
	return barrier_await(b, w + 1, (int)c, deadline);
}
