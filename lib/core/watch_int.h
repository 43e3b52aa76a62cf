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
};

/* For the receiving side of q / of this end of p. */
int shmq__queue_watch(shmq_queue *q, struct shmq__watch *w);
bool shmq__queue_readable(shmq_queue *q); /* a get would not block (data, or shut down) */
int shmq__pipe_watch(shmq_pipe *p, struct shmq__watch *w);
bool shmq__pipe_readable(shmq_pipe *p);   /* a recv would not block (data, or peer gone) */

/* A token that changes whenever a message is taken through q / through p's
 * receiving side (private to the handle: shared indices can be moved by
 * garbage): a watcher compares it around an action to learn whether the
 * action took anything through the watched handle (the value means nothing
 * else). */
uint64_t shmq__queue_progress(shmq_queue *q);
uint64_t shmq__pipe_progress(shmq_pipe *p);

/* The pidfd of a spawned process (owned by p), or a negative errno. */
int shmq__proc_pidfd(shmq_proc *p);

#endif
