/* SPDX-License-Identifier: MIT */
/*
 * Layer 5: the job protocol steps both sides of the pool take (workers in
 * job.c and worker.c, the creator in supervise.c, submit.c and pool.c): the
 * error record, the count and the finish of a job (Protocol JOB_DONE), and
 * the idle workers' wake (Protocol IDLE_WAKE); see pool/pool_layout_int.h.
 */
#ifndef SHMQ_POOL_JOB_INT_H
#define SHMQ_POOL_JOB_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/atomic_int.h"
#include "core/wait_int.h"
#include "pool/pool_layout_int.h"

/* Wake n idle workers if any sleeps (Protocol IDLE_WAKE).  strong: the
 * caller's publication and our load of the sleeper count are ordered (a
 * seq_cst RMW on the futex word first); weak (the spawn fast path): a relaxed
 * peek that may miss a worker going to sleep at this instant, which then
 * wakes at its slice.  The number of workers the wake call woke: 0 when
 * none slept (or none was woken), a negative errno if the call failed. */
int shmq__pool_idle_wake(struct pool_hdr *h, bool strong, int n);

/* The futex bit worker slot i sleeps on (worker_idle); slots 32 apart share
 * one. */
static inline uint32_t worker_wake_bit(uint32_t i)
{
	return 1u << (i % 32u);
}

/* Record status for element i if it is the lowest failing index so far. */
static inline void job_err_record(struct pool_job *job, uint64_t i, int status)
{
	uint64_t idx = i > UINT32_MAX ? UINT32_MAX : i;
	uint64_t want = (idx << 32) | (uint32_t)status;
	/* relaxed: only a first guess, the CAS below re-validates it */
	uint64_t cur = shmq__load_relaxed(&job->err);

	/* acq_rel: pairs with the other recorders' CASes of err here, and
	 * (released further by job_chunk_count) with async_finish's acquire
	 * load of err after done (Protocol JOB_DONE) */
	while (want < cur && !shmq__cas_acq_rel(&job->err, &cur, want))
		;
}

/* Count one chunk done; true for the one that completes the job. */
static inline bool job_chunk_count(struct pool_job *job, uint64_t nchunks)
{
	/* seq_cst: a release sequence over every chunk's results that the
	 * last one acquires before job_finish publishes done to async_check
	 * (Protocol JOB_DONE), and the Dekker with iter_sleep's sleeper count
	 * (Protocol CHUNK_WAKE) */
	bool last = shmq__fetch_add_seq_cst(&job->done_chunks, 1) + 1 == nchunks;

	if (SHMQ__UNLIKELY(shmq__load_seq_cst(&job->chunk_sleepers) != 0)) {
		shmq__fetch_add_seq_cst(&job->chunk_seq, 1);
		shmq__futex_wake(&job->chunk_seq, INT_MAX);
	}
	return last;
}

/* Mark the job DONE: true for the caller that made the mark, which then
 * owes job_finish_wake. */
static inline bool job_finish_mark(struct pool_job *job)
{
	uint32_t running = JOB_RUNNING;

	/* JOB_DONE, seq_cst: the wake protocol of core/wait_int.h with
	 * job_done_wait's sleepers (job_finish_wake's load of the count) */
	return shmq__cas_seq_cst(&job->done, &running, JOB_DONE);
}

/* Wake the job's sleepers after its mark.  It needs no pin: once the slot
 * is reused, the wake finds the next job's sleepers or none, and a waiter
 * woken for nothing looks at its word and sleeps again. */
static inline void job_finish_wake(struct pool_job *job)
{
	shmq__wake_word(&job->done, &job->done_sleepers, INT_MAX);
}

static inline void job_finish(struct pool_job *job)
{
	if (job_finish_mark(job))
		job_finish_wake(job);
}

static inline void job_chunk_done(struct pool_job *job, uint64_t nchunks)
{
	if (job_chunk_count(job, nchunks))
		job_finish(job);
}

#endif /* SHMQ_POOL_JOB_INT_H */
