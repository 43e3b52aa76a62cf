/* SPDX-License-Identifier: MIT */
/*
 * Private: the spin phase of flag, cond and sem waits.
 *
 * shmq__wait_word spins and sleeps but cannot count the futex waits it
 * enters; these objects keep that count for `shmq stat`, so they spin here
 * with the wait layer's budget (SHMQ_SPIN) and then sleep through
 * shmq__sleep_word_counted.
 */
#ifndef SHMQ__SYNC_SPIN_INT_H
#define SHMQ__SYNC_SPIN_INT_H

#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

#include <shmq.h>

#include "core/atomic_int.h"
#include "core/compiler_int.h"
#include "core/region_int.h"
#include "core/wait_int.h"

/* The sleep slice of flag, cond and sem waiters: after each they look at
 * the word again (and at dead parties), so a waker killed between its
 * change of the word and its wake strands nobody for longer. */
#define SHMQ__SYNC_SLICE_NS ((int64_t)10 * 1000 * 1000)

/* CAS retry loops on a shared word: every lost CAS means the word moved,
 * which other writers decide, and shared memory is never trusted.  Every
 * SHMQ__SYNC_CAS_TRIES losses in a row a loop looks at its caller's
 * deadline; SHMQ__SYNC_CAS_MAX in a row no contender of ours reaches (each
 * loss is another's CAS landing between our load and our CAS): garbage
 * keeps moving the word. */
#define SHMQ__SYNC_CAS_TRIES 64u
#define SHMQ__SYNC_CAS_MAX   4096u

static inline int shmq__sync_cas_check(uint32_t lost, int64_t timeout_ns, int64_t deadline)
{
	if (lost >= SHMQ__SYNC_CAS_MAX)
		return -EBADMSG;
	if (timeout_ns == SHMQ_NOWAIT)
		return -EAGAIN;
	if (deadline != SHMQ__NO_DEADLINE && shmq_now_ns() >= deadline)
		return -ETIMEDOUT;
	return 0;
}

/* One more lost CAS (*lost counts them in a row, from 0): 0 to try again,
 * or the call's errno: -EAGAIN for SHMQ_NOWAIT and -ETIMEDOUT past deadline
 * (looked at every SHMQ__SYNC_CAS_TRIES), -EBADMSG at SHMQ__SYNC_CAS_MAX.
 * A call without a timeout passes SHMQ_FOREVER and SHMQ__NO_DEADLINE.  No
 * clock read before the first SHMQ__SYNC_CAS_TRIES losses. */
static inline int shmq__sync_cas_lost(uint32_t *lost, int64_t timeout_ns, int64_t deadline)
{
	if (SHMQ__LIKELY(++*lost % SHMQ__SYNC_CAS_TRIES != 0))
		return 0;
	return shmq__sync_cas_check(*lost, timeout_ns, deadline);
}

/*
 * The liveness scans that waiters make after each whole slice (the parties
 * of a barrier, the waiters of a condition) cost a /proc read per process
 * they look at: made by every waiter, n waiters of n processes would make
 * n^2 reads a slice (64 idle waiters kept a core of 2 busy).  One scan a
 * slice finds a dead process as soon, so the waiters share it: *at, in the
 * object, holds when the next one is due (shmq_now_ns()), and this returns
 * true to the one caller that moves it on by slice_ns.  A value further
 * ahead than two slices is garbage (a writer stores at most its now +
 * slice) and is taken over at once: a corrupt word costs a scan per slice,
 * never the scans themselves.
 */
static inline bool shmq__sync_scan_due(uint64_t *at, int64_t slice_ns)
{
	int64_t now = shmq_now_ns();
	/* relaxed: a rate limit that orders nothing; the scan reads what it
	 * checks with orders of its own */
	uint64_t a = shmq__load_relaxed(at);

	if ((int64_t)a > now && (int64_t)a - now <= 2 * slice_ns)
		return false;
	/* relaxed: as the load; winning it only elects this caller to scan */
	return shmq__cas_relaxed(at, &a, (uint64_t)(now + slice_ns));
}

/* shmq__wait_word that counts its futex waits in *waits and lists its
 * sleepers by owner id (self) in list ("Listed sleepers", core/wait_int.h):
 * spin first when spin is set (the first wait of a call), then sleep.  Same
 * returns. */
static inline int shmq__sync_wait_listed(const uint32_t *word, uint32_t old,
					 uint32_t *sleepers, uint32_t *list, uint32_t self,
					 int64_t deadline, int64_t slice_ns, uint64_t *waits,
					 bool spin)
{
	if (spin && shmq__spin_word(word, old, deadline))
		return 0;
	return shmq__sleep_word_listed(word, old, sleepers, list, self, deadline, slice_ns,
				       waits);
}

/* shmq__sync_wait_listed for a word whose sleepers are not listed. */
static inline int shmq__sync_wait(const uint32_t *word, uint32_t old, uint32_t *sleepers,
				  int64_t deadline, int64_t slice_ns, uint64_t *waits,
				  bool spin)
{
	return shmq__sync_wait_listed(word, old, sleepers, NULL, 0, deadline, slice_ns, waits,
				      spin);
}

/*
 * The waker's side for listed sleepers: after a seq_cst change of *word,
 * wake up to n sleepers if *sleepers says there are any (counted in *wakes).
 * When that wake woke nobody, the count is stale: take out the entries of
 * listed sleepers whose process died, or that no owner id can be (forged),
 * each with its count ("Listed sleepers", core/wait_int.h), so that the
 * wakes after it make no system call again.  A look at the process table
 * per entry in use, only after such a wake.  The count never goes below 0;
 * a count that keeps moving (other sleepers, or garbage) is given up on
 * after SHMQ__SYNC_CAS_TRIES tries.  r NULL: no liveness, no reaping.
 */
static inline void shmq__sync_wake_listed(const shmq_region *r, const uint32_t *word,
					  uint32_t *sleepers, uint32_t *list, int n,
					  uint64_t *wakes)
{
	if (shmq__wake_word_counted(word, sleepers, n, wakes) != 0 || !r)
		return;
	for (unsigned i = 0; i < SHMQ__SLEEPER_LIST; i++) {
		/* relaxed: a first look, re-validated by the seq_cst CAS */
		uint32_t id = shmq__load_relaxed(&list[i]), c;

		if (!id || shmq__region_id_alive(r, id) == 1 || !shmq__cas_seq_cst(&list[i], &id, 0))
			continue;
		/* relaxed: a first guess, re-validated by the seq_cst CAS */
		c = shmq__load_relaxed(sleepers);
		for (unsigned t = 0; c && t < SHMQ__SYNC_CAS_TRIES; t++)
			if (shmq__cas_seq_cst(sleepers, &c, c - 1))
				break;
	}
}

#endif /* SHMQ__SYNC_SPIN_INT_H */
