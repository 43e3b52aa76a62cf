/* SPDX-License-Identifier: MIT */
/* Barriers (seed 12-3): Python threading.Barrier across processes. */
#ifndef SHMQ_BARRIER_H
#define SHMQ_BARRIER_H

#include <shmq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A barrier is Python's threading.Barrier across processes: parties callers
 * meet in shmq_barrier_wait, each generation releases them all at once, and
 * the barrier is reused for the next generation.
 *
 * Waiters spin briefly (so parties arriving close together never enter the
 * kernel), then sleep on a futex; the last arrival wakes all sleepers with one
 * system call, and none when nobody sleeps.
 *
 * Handles are process-private: every process opens its own.  A handle may be
 * used by any number of threads of its process at once; close it only when
 * none uses it.  At most parties callers may wait in one generation; more
 * concurrent callers than parties is supported the way Python supports it
 * (the extra ones wait for the next generation).
 *
 * A process that has waited on a named barrier is one of its parties until
 * it closes the handles it waited through.  When a party dies, the waiters
 * of the current generation get -EPIPE (the barrier breaks, as on a
 * timeout) within a sleep slice or two, about 10 ms each; reset forgets the
 * dead.  A placed barrier (no region) cannot tell: there a party that dies
 * before arriving is indistinguishable from a late one.  See shmq_barrier(3).
 */

/* Create a named barrier for parties callers (1..65535, else -EINVAL;
 * -EEXIST, -ENOSPC as for every object). */
SHMQ_API int shmq_barrier_create(shmq_region *r, const char *name, unsigned parties,
				 shmq_barrier **out);
/* Open a named barrier (-ENOENT; -EINVAL if the object is not a barrier;
 * -EBADMSG if it is corrupt; -EPROTO for another layout). */
SHMQ_API int shmq_barrier_open(shmq_region *r, const char *name, shmq_barrier **out);
/* Wait until parties callers have called it in this generation.
 * >= 0: the caller's arrival index in [0, parties), distinct within a
 * generation (the first to arrive gets 0, the one that releases the others
 * parties - 1).
 * -ETIMEDOUT to the waiter that timed out (the barrier is then broken);
 * -EPIPE to every other waiter, now and later, until shmq_barrier_reset;
 * also -EPIPE after shmq_barrier_abort, and to the waiters of a generation
 * that shmq_barrier_reset cut short.
 * SHMQ_NOWAIT passes only when the caller is the last party to arrive;
 * otherwise it returns -EAGAIN without arriving or breaking anything.
 * -EBADMSG: the barrier's word is corrupt. */
SHMQ_API int shmq_barrier_wait(shmq_barrier *b, int64_t timeout_ns);
/* Break the barrier: current and future waiters get -EPIPE until reset.
 * Any process, any time. */
SHMQ_API int shmq_barrier_abort(shmq_barrier *b);
/* Return the barrier to its empty state, starting a new generation; the
 * waiters of the generation it cuts short get -EPIPE. */
SHMQ_API int shmq_barrier_reset(shmq_barrier *b);
/* Python's Barrier.parties (0 for a NULL handle). */
SHMQ_API unsigned shmq_barrier_parties(const shmq_barrier *b);
/* Python's Barrier.n_waiting: parties waiting in the current generation
 * (a snapshot; 0 when broken, or for a NULL handle). */
SHMQ_API unsigned shmq_barrier_n_waiting(const shmq_barrier *b);
/* Python's Barrier.broken (a snapshot; false for a NULL handle). */
SHMQ_API bool shmq_barrier_broken(const shmq_barrier *b);
/* Free the handle; never changes the barrier.  NULL is a no-op. */
SHMQ_API void shmq_barrier_close(shmq_barrier *b);

/*
 * Placement: a barrier in memory the caller provides (shared, 8-byte
 * aligned, 64 recommended, shmq_barrier_footprint() bytes).  Initialise it
 * once with shmq_barrier_init before anyone attaches; each process then
 * attaches its own handle.  Position independent.
 */
SHMQ_API size_t shmq_barrier_footprint(void);
/* -EINVAL for NULL, misaligned mem or parties outside 1..65535.  Not safe
 * against concurrent users of mem. */
SHMQ_API int shmq_barrier_init(void *mem, unsigned parties);
/* -EINVAL (NULL, misaligned), -EBADMSG (no initialised barrier at mem),
 * -EPROTO (a barrier of another layout), -ENOMEM. */
SHMQ_API int shmq_barrier_attach(void *mem, shmq_barrier **out);

#ifdef __cplusplus
}
#endif
#endif /* SHMQ_BARRIER_H */
