/* SPDX-License-Identifier: MIT */
/* Layer 5: the pool's test seam (not part of the API).
 *
 * A worker calls shmq__pool_fault, when set, at the points below, the narrow
 * windows between two shared-memory steps that recovery must cover.  The
 * reliability tests set it, in their worker processes, to a function that
 * kills the process there; nothing else may. */
#ifndef SHMQ_POOL_INT_H
#define SHMQ_POOL_INT_H

#include <stdbool.h>

#include <shmq.h>

enum shmq__pool_fault_point {
	SHMQ__POOL_FAULT_CHUNK_MARKED = 1, /* a chunk marked DONE, not yet counted */
	SHMQ__POOL_FAULT_JOB_COUNTED = 2,  /* the count that completes a job made, the
					    * job not yet finished (job_finish) */
	SHMQ__POOL_FAULT_JOB_UNPINNED = 3, /* the job marked DONE and the pin dropped,
					    * its sleepers not yet woken */
};

extern void (*shmq__pool_fault)(enum shmq__pool_fault_point point);

/* The creator's looks for dead workers that found one gone only because
 * they were full looks (every LIFE_FULL_EVERY-th, a poll of the pidfds):
 * its life lock and leaving word still said "running" (Protocol LIFE).  A
 * worker that exits on purpose, or is killed, should never need one.  Any
 * thread of the creating process. */
unsigned shmq__pool_late_looks(shmq_pool *p);

/* What freed pools left that this process keeps for the next create in
 * their regions (pool.c, pool_leftover): at most 32, the newest. */
unsigned shmq__pool_leftovers(void);

/* Take (on) or give back the lock of that list, as a create or a free of
 * another thread holds it for a moment: for a test of fork() meanwhile. */
void shmq__pool_leftovers_hold(bool on);

#endif /* SHMQ_POOL_INT_H */
