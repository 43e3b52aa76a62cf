/* SPDX-License-Identifier: MIT */
/*
 * Layer 5: imap, a map whose results are taken one by one as they complete,
 * the creator's side.  It is one map job (submit.c) that also keeps each
 * element's status (pool_job.status_off); no second mechanism: a chunk's
 * results are ready when its chunk word is DONE (Protocol CHUNK_STATE), and
 * the iterator sleeps until a chunk is counted (Protocol CHUNK_WAKE of
 * pool/pool_layout_int.h).  Until the job completes results are read from
 * its arena block; from then on from the private copies async_finish made
 * (the job slot and its block may then belong to another job).
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <shmq.h>

#include "core/alloc_int.h"
#include "core/atomic_int.h"
#include "core/cancel_int.h"
#include "core/fork_int.h"
#include "core/region_int.h"
#include "core/wait_int.h"
#include "pool/creator_int.h"
#include "pool/pool_layout_int.h"

struct shmq_iter {
	shmq_pool *p;
	shmq_async *a;     /* NULL for a map of no elements */
	uint8_t *out;      /* n * out_size: async_finish's copy of the results */
	int32_t *st;       /* n: its copy of the statuses */
	size_t n, out_size;
	uint64_t cs, nchunks;
	bool unordered;
	size_t given;      /* results returned */
	/* ordered: the next index is given.  unordered: chunks in the order
	 * they were seen DONE; the elements of order[head] from pos on are
	 * next */
	uint64_t *order;
	uint8_t *queued;   /* per chunk: in order[] */
	uint64_t norder, head, pos;
	uint64_t seen_done; /* done_chunks at the last scan */
};

static void iter_release(shmq_iter *it)
{
	if (it->out)
		shmq__free(it->out, it->n * it->out_size);
	if (it->st)
		shmq__free(it->st, it->n * sizeof(*it->st));
	if (it->order)
		shmq__free(it->order, it->nchunks * sizeof(*it->order));
	if (it->queued)
		shmq__free(it->queued, it->nchunks);
	shmq__free(it, sizeof(*it));
}

static int iter_alloc(shmq_iter *it)
{
	if (it->n && it->out_size) {
		it->out = shmq__malloc(it->n * it->out_size);
		if (!it->out)
			return -ENOMEM;
	}
	it->st = it->n ? shmq__calloc(it->n, sizeof(*it->st)) : NULL;
	if (it->n && !it->st)
		return -ENOMEM;
	return 0;
}

/* The chunk geometry the job got (submit.c chose it; the private copy). */
static int iter_geometry(shmq_iter *it)
{
	const struct job_priv *jp = &it->p->jobs[it->a->job];

	it->cs = jp->chunksize;
	it->nchunks = jp->nchunks;
	if (!it->unordered)
		return 0;
	it->order = shmq__calloc(it->nchunks, sizeof(*it->order));
	it->queued = shmq__calloc(it->nchunks, 1);
	return it->order && it->queued ? 0 : -ENOMEM;
}

static int pool_imap(shmq_pool *p, const char *task, const void *in, size_t in_size,
		     size_t out_size, size_t n, unsigned flags, shmq_iter **out)
{
	shmq_iter *it;
	int rc;

	if (!p || !task || !out || (flags & ~SHMQ_UNORDERED) || (in_size && n && !in))
		return -EINVAL;
	if (out_size && n > SIZE_MAX / 2 / out_size)
		return -EINVAL;
	if (shmq__foreign(p->pid))
		return -EBADF; /* inherited across fork(): the parent's pool */
	it = shmq__calloc(1, sizeof(*it));
	if (!it)
		return -ENOMEM;
	it->p = p;
	it->n = n;
	it->out_size = out_size;
	it->unordered = flags & SHMQ_UNORDERED;
	rc = iter_alloc(it);
	if (!rc)
		rc = shmq__pool_submit_statuses(p, task, in, in_size, it->out, out_size, n,
						it->st, &it->a);
	if (!rc && n) {
		pthread_mutex_lock(&p->mu);
		rc = iter_geometry(it);
		pthread_mutex_unlock(&p->mu);
	}
	if (rc) {
		shmq_async_free(it->a);
		iter_release(it);
		return rc;
	}
	*out = it;
	return 0;
}

/* No cancellation point (core/cancel_int.h). */
SHMQ_API int shmq_pool_imap(shmq_pool *p, const char *task, const void *in, size_t in_size,
			    size_t out_size, size_t n, unsigned flags, shmq_iter **out)
{
	int cs = shmq__cancel_off();
	int rc = pool_imap(p, task, in, in_size, out_size, n, flags, out);

	shmq__cancel_restore(cs);
	return rc;
}

/* Is chunk c complete?  With p->mu held and the job not finished. */
static bool chunk_done(shmq_iter *it, uint64_t c)
{
	const struct job_priv *jp = &it->p->jobs[it->a->job];
	uint32_t *chunks = shmq__region_ptr(it->p->r, jp->chunks_off, jp->nchunks * 4);

	/* CHUNK_STATE, acquire: pairs with shmq__pool_chunk_run's acq_rel CAS
	 * to DONE, which released the chunk's results and statuses */
	return chunks && shmq__load_acquire(&chunks[c]) == CHUNK_DONE;
}

/* Hand out element i: its result into out, its status as the return. */
static ssize_t iter_give(shmq_iter *it, size_t i, void *out)
{
	shmq_async *a = it->a;
	int32_t st;

	if (a->finished) {
		if (it->out_size)
			memcpy(out, it->out + i * it->out_size, it->out_size);
		st = it->st[i];
	} else {
		if (it->out_size)
			memcpy(out, a->out_src + i * it->out_size, it->out_size);
		/* CHUNK_WAKE, relaxed: ordered by chunk_done's acquire */
		st = shmq__load_relaxed(&a->st_src[i]);
	}
	it->given++;
	if (st == 0)
		return (ssize_t)i;
	return shmq__pool_status(st);
}

/* Queue the chunks completed since the last scan.  With p->mu held. */
static void iter_scan(shmq_iter *it)
{
	/* CHUNK_WAKE: the count iter_sleep compares with (seq_cst, as there) */
	it->seen_done = shmq__load_seq_cst(&pool_job(it->p, it->a->job)->done_chunks);
	for (uint64_t c = 0; c < it->nchunks && it->norder < it->nchunks; c++)
		if (!it->queued[c] && (it->a->finished || chunk_done(it, c))) {
			it->queued[c] = 1;
			it->order[it->norder++] = c;
		}
}

/* The next result if one is ready: its index (or status), -EAGAIN if none. */
static ssize_t iter_take(shmq_iter *it, void *out)
{
	shmq_pool *p = it->p;
	ssize_t rc = -EAGAIN;

	pthread_mutex_lock(&p->mu);
	if (!it->unordered) {
		/* CHUNK_WAKE: the count before the chunk's state, as iter_scan
		 * does.  The other way round, a chunk done between the two loads
		 * was in the count but not seen: iter_sleep then slept the whole
		 * slice for it */
		it->seen_done = shmq__load_seq_cst(&pool_job(p, it->a->job)->done_chunks);
		if (it->a->finished || chunk_done(it, it->given / it->cs))
			rc = iter_give(it, it->given, out);
	} else {
		if (it->head == it->norder)
			iter_scan(it);
		if (it->head < it->norder) {
			uint64_t c = it->order[it->head];
			uint64_t lo = c * it->cs, len = it->n - lo < it->cs ? it->n - lo : it->cs;

			rc = iter_give(it, lo + it->pos, out);
			if (++it->pos == len) {
				it->head++;
				it->pos = 0;
			}
		}
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/*
 * Sleep until a chunk is counted, the job ends, or a slice passes (the pool
 * is then supervised, as every wait of the creator does).  Protocol
 * CHUNK_WAKE: chunk_seq before we register, the count after.
 */
static void iter_sleep(shmq_iter *it, int64_t deadline)
{
	struct pool_job *job = pool_job(it->p, it->a->job);
	int64_t now = shmq_now_ns();
	int64_t until = deadline == SHMQ__NO_DEADLINE || deadline - now > WAIT_SLICE_NS ?
			now + WAIT_SLICE_NS : deadline;
	uint32_t seq = shmq__load_seq_cst(&job->chunk_seq);
	int rc = 0;

	shmq__fetch_add_seq_cst(&job->chunk_sleepers, 1);
	/* CHUNK_WAKE, Dekker with job_chunk_count: our increment and this load
	 * are seq_cst, as are its count and its load of the sleepers.  JOB_DONE:
	 * done pairs with job_finish's seq_cst CAS (a job ended by terminate
	 * or settle counts no chunk: its end is seen at the slice) */
	if (shmq__load_seq_cst(&job->done_chunks) == it->seen_done &&
	    shmq__load_acquire(&job->done) == JOB_RUNNING)
		rc = shmq__futex_wait(&job->chunk_seq, seq, until);
	shmq__fetch_sub_seq_cst(&job->chunk_sleepers, 1);
	if (rc == -ETIMEDOUT)
		shmq__pool_supervise_maybe(it->p);
}

static ssize_t iter_next(shmq_iter *it, void *out, int64_t timeout_ns)
{
	int64_t deadline;
	ssize_t rc;

	if (!it || (it->out_size && !out))
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__timeout_bad(timeout_ns)))
		return -EINVAL;
	if (it->a && !it->a->p) /* freed after its pool (a misuse): nothing to give */
		return it->given == it->n ? -EPIPE : -ECANCELED;
	if (shmq__foreign(it->p->pid))
		return -EBADF; /* inherited across fork(): the parent's job */
	if (it->given == it->n)
		return -EPIPE;
	deadline = shmq__deadline(timeout_ns);
	for (;;) {
		if (!it->a->finished)
			(void)shmq__pool_async_check(it->a, shmq_now_ns());
		if (it->a->finished && it->a->wait_rc)
			return it->a->wait_rc; /* -ECANCELED, or a forged pin */
		rc = iter_take(it, out);
		if (rc != -EAGAIN)
			return rc;
		if ((rc = pool_broken(it->p)))
			return rc;
		if (deadline != SHMQ__NO_DEADLINE && shmq_now_ns() >= deadline) {
			shmq__pool_supervise_maybe(it->p);
			return timeout_ns == SHMQ_NOWAIT ? -EAGAIN : -ETIMEDOUT;
		}
		iter_sleep(it, deadline);
	}
}

/* No cancellation point (core/cancel_int.h). */
SHMQ_API ssize_t shmq_iter_next(shmq_iter *it, void *out, int64_t timeout_ns)
{
	int cs = shmq__cancel_off();
	ssize_t rc = iter_next(it, out, timeout_ns);

	shmq__cancel_restore(cs);
	return rc;
}

static void iter_free(shmq_iter *it)
{
	if (!it)
		return;
	/* an incomplete job is cancelled; an iterator inherited across fork()
	 * frees only the child's copies (shmq_async_free checks) */
	shmq_async_free(it->a);
	iter_release(it);
}

/* No cancellation point (core/cancel_int.h). */
SHMQ_API void shmq_iter_free(shmq_iter *it)
{
	int cs = shmq__cancel_off();

	iter_free(it);
	shmq__cancel_restore(cs);
}
