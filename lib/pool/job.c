/* SPDX-License-Identifier: MIT */
/*
 * Layer 5: the pool's chunk protocol, worker side: claim a chunk of a job
 * under the pin, run its elements, mark it DONE and count it (Protocols
 * CHUNK_PIN, CHUNK_STATE and JOB_DONE of pool/pool_layout_int.h); and the
 * idle workers' wake both sides use (Protocol IDLE_WAKE).
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include <shmq.h>

#include "core/atomic_int.h"
#include "core/compiler_int.h"
#include "core/region_int.h"
#include "core/wait_int.h"
#include "pool/job_int.h"
#include "pool/pool_int.h"
#include "pool/pool_layout_int.h"
#include "pool/task_int.h"
#include "pool/worker_int.h"

/* the test seam of pool/pool_int.h: NULL unless a reliability test sets it */
void (*shmq__pool_fault)(enum shmq__pool_fault_point point);

int shmq__pool_idle_wake(struct pool_hdr *h, bool strong, int n)
{
	if (strong) {
		shmq__fetch_add_seq_cst(&h->work_seq, 1);
		if (shmq__load_seq_cst(&h->idle_sleepers) == 0)
			return 0;
	} else {
		/* IDLE_WAKE: relaxed peeks, hints only (see above); one wake in
		 * flight at a time, so a spawning worker does not make a system
		 * call per spawn while the woken worker waits to be scheduled;
		 * the exchange pairs with worker_idle's release stores of 0 */
		if (shmq__load_relaxed(&h->idle_sleepers) == 0 ||
		    shmq__load_relaxed(&h->wake_pending) ||
		    shmq__exchange_acq_rel(&h->wake_pending, 1))
			return 0;
		shmq__fetch_add_seq_cst(&h->work_seq, 1);
	}
	if (n == 1) {
		/* relaxed: pairs with worker_idle's store and CAS of the hint;
		 * any value only picks a bit, a wrong one costs the second
		 * call below (Protocol IDLE_WAKE) */
		uint32_t last = shmq__load_relaxed(&h->last_sleeper);

		if (last != 0) {
			int rc = shmq__futex_wake_bits(&h->work_seq, 1, worker_wake_bit(last - 1));

			if (rc > 0)
				return rc;
		}
	}
	return shmq__futex_wake(&h->work_seq, n);
}

/* A checked view of a job's arrays. */
struct job_view {
	shmq_task_fn fn;
	uint8_t *in, *out;
	uint32_t *chunks;
	int32_t *status;  /* per element (imap), or NULL */
	uint64_t in_size, out_size, n, chunksize, nchunks;
};

static bool span_ok(uint64_t n, uint64_t size, uint64_t *bytes)
{
	if (size && n > UINT64_MAX / size)
		return false;
	*bytes = n * size;
	return true;
}

static void *span_ptr(shmq_region *r, uint64_t off, uint64_t bytes)
{
	if (bytes == 0)
		return NULL;
	return shmq__region_ptr(r, off, bytes);
}

/* JOB_PUBLISH, relaxed loads: the fields are stable while the job is ACTIVE,
 * published by job_submit's seq_cst store of state that the caller loaded */
static int job_view(struct worker *w, struct pool_job *job, struct job_view *v)
{
	uint64_t in_b, out_b, ch_b;
	char name[SHMQ_OBJ_NAME_MAX + 1];

	v->in_size = shmq__load_relaxed(&job->in_size);
	v->out_size = shmq__load_relaxed(&job->out_size);
	v->n = shmq__load_relaxed(&job->n);
	v->chunksize = shmq__load_relaxed(&job->chunksize);
	v->nchunks = shmq__load_relaxed(&job->nchunks);
	if (v->chunksize == 0 || v->nchunks == 0 || v->nchunks > RANGE_MAX ||
	    (v->n - 1) / v->chunksize + 1 != v->nchunks || v->n == 0)
		return -EBADMSG;
	if (!span_ok(v->n, v->in_size, &in_b) || !span_ok(v->n, v->out_size, &out_b) ||
	    !span_ok(v->nchunks, 4, &ch_b))
		return -EBADMSG;
	v->in = span_ptr(w->r, shmq__load_relaxed(&job->in_off), in_b);
	v->out = span_ptr(w->r, shmq__load_relaxed(&job->out_off), out_b);
	v->chunks = span_ptr(w->r, shmq__load_relaxed(&job->chunks_off), ch_b);
	if ((in_b && !v->in) || (out_b && !v->out) || !v->chunks ||
	    ((uintptr_t)v->chunks & 3u))
		return -EBADMSG;
	v->status = NULL;
	if (shmq__load_relaxed(&job->status_off)) {
		uint64_t st_b;

		if (!span_ok(v->n, 4, &st_b))
			return -EBADMSG;
		v->status = span_ptr(w->r, shmq__load_relaxed(&job->status_off), st_b);
		if (!v->status || ((uintptr_t)v->status & 3u))
			return -EBADMSG;
	}
	v->fn = task_by_index(&w->tt, shmq__load_relaxed(&job->task_idx),
			      shmq__load_relaxed(&job->task_hash));
	if (!v->fn) { /* another registry order: fall back to the name */
		int idx;

		for (unsigned i = 0; i < sizeof(name); i++)
			name[i] = (char)shmq__load_relaxed(&job->task[i]);
		name[sizeof(name) - 1] = 0;
		idx = shmq__pool_task_lookup(&w->tt, name);
		v->fn = idx >= 0 ? task_fn(&w->tt, idx) : NULL;
	}
	return 0;
}

/* Claim chunk c of job j (Protocol CHUNK_PIN): the pin (slot->claim) keeps the creator from
 * retiring the job between our check of its state and our CAS. */
static bool chunk_claim(struct worker *w, unsigned j, uint64_t c, struct job_view *v)
{
	struct pool_job *job = &w->h->jobs[j];
	uint32_t exp = CHUNK_PENDING;
	bool ok = false;

	/* CHUNK_PIN, seq_cst pin and check: Dekker with job_unpin's store of
	 * state and load of claim */
	shmq__store_seq_cst(&w->slot->claim, j + 1);
	if (shmq__load_seq_cst(&job->state) == JOB_ACTIVE && !shmq__load_seq_cst(&job->canceled) &&
	    job_view(w, job, v) == 0 && c < v->nchunks)
		/* pairs with jobs_recover's CAS of a dead claimer's chunk back
		 * to PENDING (Protocol CHUNK_STATE) */
		ok = shmq__cas_acq_rel(&v->chunks[c], &exp, w->id);
	/* CHUNK_PIN: pairs with job_unpin's seq_cst load of claim */
	shmq__store_release(&w->slot->claim, 0);
	return ok;
}

void shmq__pool_chunk_run(struct worker *w, unsigned j, uint64_t c)
{
	struct pool_job *job = &w->h->jobs[j];
	struct job_view v;
	uint64_t lo, hi;
	uint32_t exp;
	bool last = false, marked = false;

	if (!chunk_claim(w, j, c, &v))
		return;
	lo = c * v.chunksize;
	hi = lo + v.chunksize < v.n ? lo + v.chunksize : v.n;
	for (uint64_t i = lo; i < hi; i++) {
		int st = v.fn ? task_exec(w, v.fn, v.in ? v.in + i * v.in_size : NULL,
					  v.out ? v.out + i * v.out_size : NULL)
			      : -ENOENT;

		if (SHMQ__UNLIKELY(st))
			job_err_record(job, i, st);
		/* CHUNK_WAKE, relaxed: released by our CAS of the chunk to DONE
		 * below, as the results are (Protocol CHUNK_STATE) */
		if (v.status)
			shmq__store_relaxed(&v.status[i], (int32_t)st);
	}
	worker_count_flush(w);
	exp = w->id;
	/* Pinned from the DONE mark to its count and, for the last count, to
	 * the job's DONE mark: the creator may finish a job whose chunks are
	 * all DONE by itself (jobs_settle), and its unpin then waits for the
	 * count and the mark to land before the job slot can be reused.  A mark
	 * made after the unpin could land on the slot's next job, reported
	 * done before any of its chunks ran.  The wake of the creator comes
	 * after the unpin: woken first, on our CPU it would preempt us, find
	 * the pin and have to yield back to us before it could collect.
	 * CHUNK_PIN, seq_cst: as chunk_claim's pin. */
	shmq__store_seq_cst(&w->slot->claim, j + 1);
	/* CHUNK_STATE, release: our results before the chunk counts as done
	 * (pairs with the creator's acquire of done through job_chunk_count,
	 * or of the chunk state in jobs_settle) */
	if (shmq__cas_acq_rel(&v.chunks[c], &exp, CHUNK_DONE)) {
		if (SHMQ__UNLIKELY(shmq__pool_fault != NULL))
			shmq__pool_fault(SHMQ__POOL_FAULT_CHUNK_MARKED);
		last = job_chunk_count(job, v.nchunks);
	}
	if (last) {
		if (SHMQ__UNLIKELY(shmq__pool_fault != NULL))
			shmq__pool_fault(SHMQ__POOL_FAULT_JOB_COUNTED);
		marked = job_finish_mark(job);
	}
	/* CHUNK_PIN: pairs with job_unpin's seq_cst load of claim */
	shmq__store_release(&w->slot->claim, 0);
	if (marked) {
		if (SHMQ__UNLIKELY(shmq__pool_fault != NULL))
			shmq__pool_fault(SHMQ__POOL_FAULT_JOB_UNPINNED);
		job_finish_wake(job);
	}
}

