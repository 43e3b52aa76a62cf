/* SPDX-License-Identifier: MIT */
/*
 * Private: readiness hooks the scheduler uses to wait on queues, pipes and
 * processes inside one io_uring (IORING_OP_FUTEX_WAIT / WAITID / POLL_ADD).
 *
 * Protocol for queues and pipes: the object owns a 32-bit "data" futex word
 * that producers change (seq_cst RMW) whenever they publish while
 * *sleepers != 0, followed by a wake (see core/wait_int.h).  A watcher:
 *   1. v = load_acquire(word)
 *   2. if readable(obj): fire
 *   3. else: sleepers += 1, FUTEX_WAIT(word, v), sleepers -= 1 when it completes
 */
#ifndef SHMQ__WATCH_H
#define SHMQ__WATCH_H

#include <stdbool.h>
#include <stdint.h>

#include <shmq.h>

struct shmq__watch {
	uint32_t *word;     /* the futex word to wait on (in shared memory) */
	uint32_t *sleepers; /* the count a waiter registers in before sleeping */
	/* Publishers that read *sleepers without a fence (rings: the pipe's,
	 * ring/spsc_int.h, and the queue's) need the watcher's half of the
	 * Dekker pair after it joined *sleepers and before its readiness
	 * check: enter(fence), shmq__watch_fence below.  The queue's is
	 * shmq__fence_word_enter (Protocol FENCED, core/wait_int.h; fence
	 * NULL: a membarrier every time), the pipe consumer side's
	 * shmq__spsc_watch_fence ("Watchers" in ring/spsc_int.h).  NULL: the
	 * publishers need none. */
	int (*enter)(uint32_t *fence);
	uint32_t *fence;
};

/* The watcher's fence, after it joined *w->sleepers and before its check:
 * 0, or a negative errno when the kernel refused the membarrier (no fence:
 * the watcher bounds its wait by SHMQ__UNFENCED_SLICE_NS). */
static inline int shmq__watch_fence(const struct shmq__watch *w)
{
	return w->enter ? w->enter(w->fence) : 0;
}

/* For the receiving side of q / of this end of p. */
int shmq__queue_watch(shmq_queue *q, struct shmq__watch *w);
bool shmq__queue_readable(shmq_queue *q); /* a get would not block (data, or shut down) */
int shmq__pipe_watch(shmq_pipe *p, struct shmq__watch *w);
bool shmq__pipe_readable(shmq_pipe *p);   /* a recv would not block (data, or peer gone) */

/* The sending side of q / of this end of p, for watchers of SHMQ_WRITABLE. */
int shmq__queue_watch_space(shmq_queue *q, struct shmq__watch *w);
bool shmq__queue_writable(shmq_queue *q); /* a put would not block (room, or shut down) */
int shmq__pipe_watch_space(shmq_pipe *p, struct shmq__watch *w);
bool shmq__pipe_writable(shmq_pipe *p);   /* half the ring free, or the peer gone */

/* The liveness look of a watcher that found q's get side (space: put side)
 * blocked: a claim of a dead process that blocks it is cleared (and everyone
 * woken); on the get side, a two-phase get open behind head counts as such
 * a claim, and a dead holder's message is given back.  deep false: no
 * system call, only an owner surely gone is cleared (every look); deep
 * true: the full check (at most once a slice).  Returns SHMQ__SETTLE_NONE
 * (no claim blocks it), SHMQ__SETTLE_CLAIM (a live claim, or an open
 * two-phase get: look again next slice) or SHMQ__SETTLE_BAD (an impossible
 * claimer: the call would fail with -EBADMSG, so the side counts as
 * ready). */
enum { SHMQ__SETTLE_NONE, SHMQ__SETTLE_CLAIM, SHMQ__SETTLE_BAD };
int shmq__queue_settle(shmq_queue *q, bool space, bool deep);
/* The same for p: a deep check of the peer's liveness (a dead peer's end is
 * marked gone and every sleeper woken, so both sides turn ready). */
void shmq__pipe_settle(shmq_pipe *p);

/* A token that changes whenever a message is taken through q / through p's
 * receiving side (private to the handle: shared indices can be moved by
 * garbage): a watcher compares it around an action to learn whether the
 * action took anything through the watched handle (the value means nothing
 * else). */
uint64_t shmq__queue_progress(shmq_queue *q);
uint64_t shmq__pipe_progress(shmq_pipe *p);

/* The pidfd of a spawned process (owned by p), or a negative errno. */
int shmq__proc_pidfd(shmq_proc *p);

/* Sleep until pidfd turns readable (its process exited) or deadline
 * (SHMQ__NO_DEADLINE: no bound): 0, -ETIMEDOUT, or another -errno. */
int shmq__pidfd_wait(int pidfd, int64_t deadline);

#endif
