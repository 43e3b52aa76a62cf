/* SPDX-License-Identifier: MIT */
/*
 * Layer 5: submitting work to the pool and waiting for it, the creator's
 * side: map, map_async and apply_async place a job's arrays in the arena
 * (pool/extent_int.h) or use them in place, publish the job (Protocols
 * JOB_PUBLISH and INJECT of pool/pool_layout_int.h) and wait for its end
 * (Protocol JOB_DONE), copying results back.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <shmq.h>

#include "core/alloc_int.h"
#include "core/atomic_int.h"
#include "core/cancel_int.h"
#include "core/compiler_int.h"
#include "core/fork_int.h"
#include "core/region_int.h"
#include "core/wait_int.h"
#include "pool/creator_int.h"
#include "pool/extent_int.h"
#include "pool/job_int.h"
#include "pool/pool_layout_int.h"
#include "pool/task_int.h"

/* What a batch of shmq_pool_map found when it was refused for want of
 * room (room_wait). */
struct map_room {
	bool slots_full;   /* every job slot was taken (-EAGAIN) */
	uint64_t released; /* p->released when the arena had no room (-ENOSPC) */
};

struct submit {
	const char *task;
	const void *in;
	size_t in_size;
	void *out;
	size_t out_size;
	size_t n;
	bool statuses; /* imap: keep every element's status */
	struct map_room *room; /* a map's batch: told why it was refused; NULL
				* for an async submission */
};

/* In-place offset of [p, p + bytes) if it lies in the region's heap. */
static bool in_region(shmq_region *r, const void *ptr, uint64_t bytes, uint64_t *off)
{
	const uint8_t *b = ptr;

	if (!ptr || bytes == 0 || b < r->base || b >= r->base + r->size)
		return false;
	*off = shmq__region_off(r, ptr);
	return shmq__region_ptr(r, *off, bytes) != NULL;
}

/* ceil(n / d) for n >= 1, d >= 1, without the wrap of (n + d - 1) / d: a
 * chunksize near UINT64_MAX made that 0 chunks, a job no worker takes. */
static uint64_t div_up(uint64_t n, uint64_t d)
{
	return (n - 1) / d + 1;
}

/* The chunk size of a job of n >= 1 elements. */
static uint64_t chunksize_for(const shmq_pool *p, uint64_t n)
{
	uint64_t cs = p->chunksize;

	if (cs == 0)
		cs = div_up(n, 4ull * p->nworkers);
	if (div_up(n, cs) > RANGE_MAX)
		cs = div_up(n, RANGE_MAX);
	return cs;
}

static int job_slot_get(shmq_pool *p, unsigned *j)
{
	for (unsigned i = 0; i < SHMQ_POOL_MAX_JOBS; i++) {
		if (!p->jobs[i].used) {
			*j = i;
			return 0;
		}
	}
	return -EAGAIN;
}

/* Does the job fit its inline block (struct pool_job): one chunk, no
 * statuses, and the copies it needs within POOL_INLINE?  Then its chunk
 * word and copies go there, and it takes no arena block. */
static bool job_fits_inline(const struct submit *s, uint64_t nchunks, uint64_t in_copy,
			    uint64_t out_copy)
{
	return nchunks == 1 && !s->statuses && in_copy <= POOL_INLINE && out_copy <= POOL_INLINE &&
	       POOL_INLINE_IN + SHMQ__ALIGN_UP(in_copy, 16u) + out_copy <= POOL_INLINE;
}

/* Add b bytes rounded up to whole lines to *need: false when the sum would
 * pass 2^64 (in and out may each be just below 2^63 bytes, submit_check),
 * which no arena holds. */
static bool need_add(uint64_t *need, uint64_t b)
{
	const uint64_t line = SHMQ__CACHELINE;

	if (b > UINT64_MAX - line || SHMQ__ALIGN_UP(b, line) > UINT64_MAX - *need)
		return false;
	*need += SHMQ__ALIGN_UP(b, line);
	return true;
}

/* Lay out the job's block, inline ([chunk word][in copy][out copy]) or in
 * the arena ([in copy][out copy][chunk states][statuses]). */
static int job_place(shmq_pool *p, unsigned j, const struct submit *s, uint64_t nchunks,
		     struct shmq_async *a)
{
	struct pool_job *job = pool_job(p, j);
	struct job_priv *jp = &p->jobs[j];
	uint64_t in_b = (uint64_t)s->n * s->in_size, out_b = (uint64_t)s->n * s->out_size;
	uint64_t in_off = 0, out_off = 0, need = 0, base, chunks, align = 16;
	bool in_inplace = in_b == 0 || in_region(p->r, s->in, in_b, &in_off);
	bool out_inplace = out_b == 0 || in_region(p->r, s->out, out_b, &out_off);
	int rc;

	jp->alloc_size = 0;
	if (job_fits_inline(s, nchunks, in_inplace ? 0 : in_b, out_inplace ? 0 : out_b)) {
		chunks = shmq__region_off(p->r, job->inl);
		base = chunks + POOL_INLINE_IN;
	} else {
		if ((!in_inplace && !need_add(&need, in_b)) ||
		    (!out_inplace && !need_add(&need, out_b)) || !need_add(&need, nchunks * 4) ||
		    (s->statuses && (s->n > UINT64_MAX / 4 || !need_add(&need, (uint64_t)s->n * 4))))
			return -ENOSPC;
		rc = shmq__extent_alloc(&p->arena, need, &base);
		if (rc)
			return rc;
		jp->alloc_off = base;
		jp->alloc_size = need;
		align = SHMQ__CACHELINE;
		chunks = base + (in_inplace ? 0 : SHMQ__ALIGN_UP(in_b, (uint64_t)SHMQ__CACHELINE)) +
			 (out_inplace ? 0 : SHMQ__ALIGN_UP(out_b, (uint64_t)SHMQ__CACHELINE));
	}
	if (!in_inplace) {
		in_off = base;
		memcpy(p->r->base + in_off, s->in, in_b);
		base += SHMQ__ALIGN_UP(in_b, align);
	}
	if (!out_inplace) {
		out_off = base;
		a->out_src = p->r->base + out_off;
	}
	/* no worker touches this memory: the job is not ACTIVE (job_unpin) */
	memset(p->r->base + chunks, 0, nchunks * 4);
	jp->chunks_off = chunks;
	jp->nchunks = nchunks;
	jp->n_elems = s->n;
	jp->status_off = 0;
	jp->out_stage = out_inplace ? 0 : out_off;
	jp->out_size = s->out_size;
	if (s->statuses) {
		jp->status_off = chunks + SHMQ__ALIGN_UP(nchunks * 4, (uint64_t)SHMQ__CACHELINE);
		a->st_src = (const int32_t *)(p->r->base + jp->status_off);
	}
	/* JOB_PUBLISH, relaxed: published by job_submit's seq_cst store of state */
	shmq__store_relaxed(&job->in_off, in_off);
	shmq__store_relaxed(&job->out_off, out_off);
	shmq__store_relaxed(&job->chunks_off, chunks);
	shmq__store_relaxed(&job->status_off, jp->status_off);
	return 0;
}

/* A zeroed handle, linked into p->live: the one the last shmq_async_free
 * kept, if any (p->mu held), so that a round of apply_async + get + free
 * reaches no allocator. */
static struct shmq_async *async_alloc(shmq_pool *p)
{
	struct shmq_async *a = p->spare;

	if (!a)
		a = shmq__calloc(1, sizeof(*a));
	else
		memset(a, 0, sizeof(*a));
	if (!a)
		return NULL;
	p->spare = NULL;
	a->live_next = p->live;
	if (p->live)
		p->live->live_prev = a;
	p->live = a;
	return a;
}

/* Keep a handle for async_alloc, or free it (p->mu held). */
static void async_release(shmq_pool *p, struct shmq_async *a)
{
	if (a->live_prev)
		a->live_prev->live_next = a->live_next;
	else
		p->live = a->live_next;
	if (a->live_next)
		a->live_next->live_prev = a->live_prev;
	a->live_prev = a->live_next = NULL;
	if (!p->spare)
		p->spare = a;
	else
		shmq__free(a, sizeof(*a));
}

static int job_submit(shmq_pool *p, const struct submit *s, shmq_async **out)
{
	struct shmq_async *a;
	struct pool_job *job;
	uint64_t cs, nchunks;
	size_t len;
	unsigned j;
	int idx, rc;

	if (p->state != POOL_RUNNING)
		return -EPIPE;
	if (p->broken)
		return p->broken;
	idx = shmq__pool_task_lookup(&p->tt, s->task);
	if (idx < 0)
		return idx;
	if (p->nzombies)
		shmq__pool_zombies_reap(p, shmq_now_ns()); /* a look, no wait */
	rc = job_slot_get(p, &j);
	if (rc) {
		if (s->room)
			s->room->slots_full = true;
		return rc;
	}
	a = async_alloc(p);
	if (!a)
		return -ENOMEM;
	cs = chunksize_for(p, s->n);
	nchunks = div_up(s->n, cs);
	rc = job_place(p, j, s, nchunks, a);
	if (rc) {
		if (rc == -ENOSPC && s->room)
			s->room->released = p->released;
		async_release(p, a);
		return rc;
	}
	p->jobs[j].used = true;
	p->jobs[j].blocking = s->room != NULL;
	p->jobs[j].chunksize = cs;
	job = pool_job(p, j);
	/* JOB_PUBLISH, relaxed: published by the seq_cst store of state below,
	 * which chunk_claim loads (seq_cst) before job_view reads these */
	shmq__store_relaxed(&job->task_idx, (uint32_t)idx);
	shmq__store_relaxed(&job->task_hash, task_hash(&p->tt, idx));
	len = strlen(s->task);
	for (unsigned i = 0; i < sizeof(job->task); i++)
		shmq__store_relaxed(&job->task[i], i < len ? s->task[i] : 0);
	shmq__store_relaxed(&job->in_size, s->in_size);
	shmq__store_relaxed(&job->out_size, s->out_size);
	shmq__store_relaxed(&job->n, s->n);
	shmq__store_relaxed(&job->chunksize, cs);
	shmq__store_relaxed(&job->nchunks, nchunks);
	shmq__store_relaxed(&job->canceled, 0);
	shmq__store_relaxed(&job->done_chunks, 0);
	shmq__store_relaxed(&job->err, UINT64_MAX);
	shmq__store_relaxed(&job->done, JOB_RUNNING);
	/* JOB_PUBLISH, seq_cst: publishes the job to chunk_claim's seq_cst load */
	shmq__store_seq_cst(&job->state, JOB_ACTIVE);
	a->woke = shmq__pool_inject(p, j, nchunks);
	/* Workers that died since our last look are replaced by this call
	 * (pool.h: replacement happens in the creator's calls), but after the
	 * job is out: the pass (a waitid per worker) then overlaps the woken
	 * worker's way onto a CPU instead of delaying it.  A worker found dead
	 * here had no chunk of this job; jobs_recover injects the job again
	 * anyway, and a chunk runs once (Protocol CHUNK_STATE). */
	if (shmq_now_ns() - p->last_supervise >= SUPERVISE_EVERY_NS)
		shmq__pool_supervise(p);
	a->p = p;
	a->job = j;
	a->out = s->out;
	a->out_bytes = (uint64_t)s->n * s->out_size;
	a->n = s->n;
	*out = a;
	return 0;
}

/* A map of no elements: complete at once, once the task is known. */
static int async_empty(shmq_pool *p, const struct submit *s, shmq_async **out)
{
	struct shmq_async *a;
	int idx;

	if (p->state != POOL_RUNNING)
		return -EPIPE;
	idx = shmq__pool_task_lookup(&p->tt, s->task);
	if (idx < 0)
		return idx;
	a = async_alloc(p);
	if (!a)
		return -ENOMEM;
	a->p = p;
	a->finished = true;
	*out = a;
	return 0;
}

static int submit_check(shmq_pool *p, const struct submit *s)
{
	if (!p || !s->task)
		return -EINVAL;
	if (shmq__foreign(p->pid))
		return -EBADF; /* inherited across fork(): the parent's pool */
	if ((s->in_size && !s->in && s->n) || (s->out_size && !s->out && s->n))
		return -EINVAL;
	if ((s->in_size && s->n > UINT64_MAX / 2 / s->in_size) ||
	    (s->out_size && s->n > UINT64_MAX / 2 / s->out_size))
		return -EINVAL;
	return 0;
}

static int async_submit(shmq_pool *p, const struct submit *s, shmq_async **out)
{
	int rc = submit_check(p, s);

	if (rc)
		return rc;
	if (!out)
		return -EINVAL;
	pthread_mutex_lock(&p->mu);
	if (s->n == 0)
		rc = async_empty(p, s, out);
	else
		rc = job_submit(p, s, out);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

SHMQ_API int shmq_pool_map_async(shmq_pool *p, const char *task, const void *in, size_t in_size,
				 void *out, size_t out_size, size_t n, shmq_async **out_async)
{
	struct submit s = { task, in, in_size, out, out_size, n, false, NULL };
	int cs = shmq__cancel_off(); /* no cancellation point (core/cancel_int.h) */
	int rc = async_submit(p, &s, out_async);

	shmq__cancel_restore(cs);
	return rc;
}

SHMQ_API int shmq_pool_apply_async(shmq_pool *p, const char *task, const void *in, size_t in_size,
				   void *out, size_t out_size, shmq_async **out_async)
{
	struct submit s = { task, in, in_size, out, out_size, 1, false, NULL };
	int cs = shmq__cancel_off(); /* no cancellation point (core/cancel_int.h) */
	int rc = async_submit(p, &s, out_async);

	shmq__cancel_restore(cs);
	return rc;
}

int shmq__pool_submit_statuses(shmq_pool *p, const char *task, const void *in, size_t in_size,
			       void *out, size_t out_size, size_t n, int32_t *st_out,
			       shmq_async **out_async)
{
	struct submit s = { task, in, in_size, out, out_size, n, true, NULL };
	int rc = async_submit(p, &s, out_async);

	if (rc == 0)
		(*out_async)->st_out = st_out;
	return rc;
}

/* ---- completion ---- */

/* Copy the results back, release the job, once no worker is pinned on it:
 * 0, or -ETIMEDOUT when a pin outlasted deadline, -EAGAIN when it is held
 * by a stalled worker (not finished: the next call tries again).  A forged
 * pin (-EBADMSG) finishes the async with that error and keeps the job slot
 * from reuse.  Called with p->mu held. */
static int async_finish(shmq_async *a, uint32_t done, int64_t deadline)
{
	shmq_pool *p = a->p;
	struct pool_job *job = pool_job(p, a->job);
	int rc = shmq__pool_job_unpin(p, a->job, deadline);
	uint64_t err;

	if (rc == -ETIMEDOUT || rc == -EAGAIN)
		return rc;
	a->finished = true;
	if (rc) {
		p->jobs[a->job].lost = true;
		a->wait_rc = rc;
		a->status = rc;
		return 0;
	}
	/* JOB_DONE: ordered after done's acquire anyway; pairs with
	 * job_err_record's CAS */
	err = shmq__load_acquire(&job->err);
	if (done == JOB_DONE) {
		a->wait_rc = 0;
		/* the region's word: a status that is no negative errno (a
		 * task's, or a forged one) is -EPROTO, as in shmq_iter_next */
		a->status = err == UINT64_MAX ? 0 : shmq__pool_status((int32_t)(uint32_t)err);
		if (a->out_src && a->out_bytes)
			memcpy(a->out, a->out_src, a->out_bytes);
		if (a->st_out && a->st_src)
			memcpy(a->st_out, a->st_src, a->n * sizeof(int32_t));
	} else {
		a->wait_rc = -ECANCELED;
		a->status = -ECANCELED;
	}
	shmq__pool_job_release(p, a->job);
	return 0;
}

void shmq__pool_asyncs_orphan(shmq_pool *p)
{
	struct shmq_async *a = p->live, *next;

	for (; a; a = next) {
		/* JOB_DONE: pairs with job_finish's seq_cst CAS of done and
		 * shmq_pool_terminate's */
		uint32_t done = a->finished ? JOB_DONE :
				shmq__load_acquire(&pool_job(p, a->job)->done);

		next = a->live_next;
		/* a job that completed (the pool was joined) delivers its
		 * results now; one cancelled by terminate writes no out */
		if (!a->finished && done != JOB_RUNNING)
			(void)async_finish(a, done, shmq_now_ns());
		if (!a->finished) {
			a->finished = true;
			a->wait_rc = -ECANCELED;
			a->status = -ECANCELED;
		}
		a->p = NULL;
		a->live_prev = a->live_next = NULL;
	}
	p->live = NULL;
}

/* Finished (a->wait_rc says how)?  deadline bounds the wait for a pin. */
bool shmq__pool_async_check(shmq_async *a, int64_t deadline)
{
	/* JOB_DONE: pairs with the last chunk's seq_cst CAS of done (job_finish)
	 * and shmq_pool_terminate's */
	uint32_t done = shmq__load_acquire(&pool_job(a->p, a->job)->done);

	if (done == JOB_RUNNING)
		return false;
	pthread_mutex_lock(&a->p->mu);
	if (!a->finished)
		(void)async_finish(a, done, deadline);
	pthread_mutex_unlock(&a->p->mu);
	return a->finished;
}

/*
 * The creator's wait for a job: a short spin without yielding (a worker that
 * was awake finishes a small job within it), then a futex sleep of at most
 * WAIT_SLICE_NS, with the sleeper count of core/wait_int.h.  Not the generic
 * spin-then-yield of shmq__wait_word: on a 2-core machine a waiter that spins
 * and yields takes the core the worker it waits for needs.
 * 0: done changed; -EINTR: the slice ended; -ETIMEDOUT.
 */
static int job_done_wait(struct pool_job *job, bool spin, int64_t deadline)
{
	int64_t now = shmq_now_ns(), until = now + CALLER_SPIN_NS;
	int rc;

	for (unsigned i = 1; spin; i++) {
		/* JOB_DONE: pairs with job_finish's seq_cst CAS of done */
		if (shmq__load_acquire(&job->done) != JOB_RUNNING)
			return 0;
		if (i % 16 == 0 && (now = shmq_now_ns()) > until)
			break;
		shmq__cpu_relax();
	}
	if (deadline != SHMQ__NO_DEADLINE && deadline <= now)
		return -ETIMEDOUT;
	until = deadline == SHMQ__NO_DEADLINE || deadline - now > WAIT_SLICE_NS ?
		now + WAIT_SLICE_NS : deadline;
	shmq__fetch_add_seq_cst(&job->done_sleepers, 1);
	/* JOB_DONE, Dekker with job_finish: our increment and this load are
	 * seq_cst, as are its CAS of done and its load of the sleepers */
	if (shmq__load_seq_cst(&job->done) != JOB_RUNNING)
		rc = 0;
	else
		rc = shmq__futex_wait(&job->done, JOB_RUNNING, until);
	shmq__fetch_sub_seq_cst(&job->done_sleepers, 1);
	if (rc == -ETIMEDOUT && until != deadline)
		return -EINTR;
	return rc;
}

static int async_wait_until(shmq_async *a, int64_t deadline)
{
	struct pool_job *job;
	int rc;

	if (!a)
		return -EINVAL;
	job = pool_job(a->p, a->job);
	for (;;) {
		/* JOB_DONE: pairs with job_finish's seq_cst CAS of done */
		bool ended = shmq__load_acquire(&job->done) != JOB_RUNNING;

		if (a->finished || shmq__pool_async_check(a, deadline))
			return a->wait_rc;
		if ((rc = pool_broken(a->p)))
			return rc;
		if (deadline != SHMQ__NO_DEADLINE && shmq_now_ns() >= deadline) {
			shmq__pool_supervise_maybe(a->p);
			return -ETIMEDOUT;
		}
		/* the job had ended, yet a stalled worker's pin keeps it from
		 * being finished (shmq__pool_job_unpin): look again in a
		 * while, p->mu free meanwhile */
		if (ended) {
			usleep(1000);
			continue;
		}
		/* a worker we had to wake is still on its way to a CPU, often
		 * ours: spinning would only keep it off.  Once: a later round
		 * follows a slice or a wake, spins are cheap then */
		rc = job_done_wait(job, !a->woke, deadline);
		a->woke = false;
		if (rc == -EINTR)
			shmq__pool_supervise_maybe(a->p);
	}
}

/* Was a made in another process (inherited across fork())?  Its job, its
 * workers and the pool's supervision are the parent's: a call through it
 * would finish, release or cancel the parent's job (core/fork_int.h). */
static bool async_foreign(const shmq_async *a)
{
	return a->p && shmq__foreign(a->p->pid);
}

static int async_wait(shmq_async *a, int64_t timeout_ns)
{
	int rc;

	if (!a)
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__timeout_bad(timeout_ns)))
		return -EINVAL;
	if (async_foreign(a))
		return -EBADF;
	if (!a->p)
		return a->wait_rc; /* its pool was freed: finished then */
	if (timeout_ns == SHMQ_NOWAIT) {
		if (a->finished || shmq__pool_async_check(a, shmq_now_ns()))
			return a->wait_rc;
		shmq__pool_supervise_maybe(a->p);
		rc = pool_broken(a->p);
		return rc ? rc : -EAGAIN;
	}
	rc = async_wait_until(a, shmq__deadline(timeout_ns));
	return rc;
}

/* No cancellation point (core/cancel_int.h). */
SHMQ_API int shmq_async_wait(shmq_async *a, int64_t timeout_ns)
{
	int cs = shmq__cancel_off();
	int rc = async_wait(a, timeout_ns);

	shmq__cancel_restore(cs);
	return rc;
}

static bool async_ready(shmq_async *a)
{
	/* an inherited handle never completes here: its results go to the
	 * parent's out, and finishing it would release the parent's job */
	if (!a || async_foreign(a))
		return false;
	if (!a->p || a->finished || shmq__pool_async_check(a, shmq_now_ns()))
		return true;
	shmq__pool_supervise_maybe(a->p);
	return false;
}

/* No cancellation point (core/cancel_int.h). */
SHMQ_API bool shmq_async_ready(shmq_async *a)
{
	int cs = shmq__cancel_off();
	bool rc = async_ready(a);

	shmq__cancel_restore(cs);
	return rc;
}

SHMQ_API int shmq_async_get(shmq_async *a, int64_t timeout_ns)
{
	int rc = shmq_async_wait(a, timeout_ns);

	return rc ? rc : a->status;
}

static void async_free(shmq_async *a)
{
	shmq_pool *p;

	if (!a)
		return;
	p = a->p;
	if (!p) {
		/* its pool was freed (shmq__pool_asyncs_orphan): only the handle */
		shmq__free(a, sizeof(*a));
		return;
	}
	if (async_foreign(a)) {
		/* the child's copy only: cancelling would cancel the parent's
		 * job.  No p->mu either: a thread of the parent may have held
		 * it at the fork.  The child runs one thread, so spare is read
		 * safely; a handle kept there was freed already */
		if (a != p->spare)
			shmq__free(a, sizeof(*a));
		return;
	}
	pthread_mutex_lock(&p->mu);
	if (a == p->spare) {
		/* freed already and kept for the next submission: a second free
		 * (a misuse) would hand it to the allocator while we keep it */
		pthread_mutex_unlock(&p->mu);
		return;
	}
	if (!a->finished) {
		/* CHUNK_PIN, seq_cst: seen by chunk_claim's check under the pin */
		shmq__store_seq_cst(&pool_job(p, a->job)->canceled, 1);
		p->jobs[a->job].zombie = true;
		p->nzombies++;
		/* a look, no wait: a zombie still pinned is reaped later
		 * (job_submit, pool_join) */
		shmq__pool_zombie_reap(p, a->job, shmq_now_ns());
	}
	async_release(p, a);
	pthread_mutex_unlock(&p->mu);
}

/* No cancellation point (core/cancel_int.h). */
SHMQ_API void shmq_async_free(shmq_async *a)
{
	int cs = shmq__cancel_off();

	async_free(a);
	shmq__cancel_restore(cs);
}

/* The largest element count of a batch that fits the arena at once. */
static size_t batch_fit(shmq_pool *p, const struct submit *s)
{
	uint64_t best, per = s->in_size + s->out_size + 4;

	pthread_mutex_lock(&p->mu);
	best = shmq__extent_largest(&p->arena);
	pthread_mutex_unlock(&p->mu);
	best = best > 4 * SHMQ__CACHELINE ? best - 4 * SHMQ__CACHELINE : 0;
	return per ? (size_t)(best / per) : s->n;
}

/* Why a map of task would be refused before anything is submitted: -EPIPE
 * (closed or terminated), the pool's error (broken), -ENOENT / -EEXIST (the
 * task's name), or 0. */
static int map_refusal(shmq_pool *p, const char *task)
{
	int rc = 0;

	pthread_mutex_lock(&p->mu);
	if (p->state != POOL_RUNNING)
		rc = -EPIPE;
	else if (p->broken)
		rc = p->broken;
	else if ((rc = shmq__pool_task_lookup(&p->tt, task)) >= 0)
		rc = 0;
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/* Will the arena get room back without a call on an async handle: is a
 * block held by another thread's map (it waits for its batch and gives the
 * block back) or by a freed handle's job (reaped)?  A block of a live async
 * handle or iterator comes back only when its owner completes it, which a
 * single-threaded caller would never do while we wait.  With p->mu held. */
static bool arena_comes_back(const shmq_pool *p)
{
	for (unsigned j = 0; j < SHMQ_POOL_MAX_JOBS; j++) {
		const struct job_priv *jp = &p->jobs[j];

		if (jp->used && !jp->lost && jp->alloc_size && (jp->blocking || jp->zombie))
			return true;
	}
	return false;
}

/* Room for the batch now?  0: a job slot is free (room->slots_full), or a
 * job gave its arena block back since the refusal; -ENOSPC: none will
 * (arena_comes_back); else wait.  With p->mu held. */
static int room_look(const shmq_pool *p, const struct map_room *room, int wait)
{
	if (!room->slots_full)
		return p->released != room->released ? 0 : arena_comes_back(p) ? wait : -ENOSPC;
	for (unsigned j = 0; j < SHMQ_POOL_MAX_JOBS; j++)
		if (!p->jobs[j].used)
			return 0;
	return wait;
}

/* A map's batch found all SHMQ_POOL_MAX_JOBS job slots taken, or too little
 * of the arena free for one element: wait until there is room (0: submit
 * again), the pool is closed (-EPIPE), terminated (-ECANCELED) or broken
 * (its error), or deadline (-ETIMEDOUT); -ENOSPC when the arena will not
 * get room back by itself (room_look).  Slots and arena blocks come back
 * when their handles finish (other threads' waits and frees) or, for freed
 * jobs, once no worker runs their chunks any more: nothing announces the
 * latter, so this looks every millisecond, reaping such jobs and
 * supervising as every wait does. */
static int room_wait(shmq_pool *p, const struct map_room *room, int64_t deadline)
{
	enum { WAIT = 1 };

	for (;;) {
		int rc = WAIT;
		uint32_t st;

		pthread_mutex_lock(&p->mu);
		st = p->state;
		if (st != POOL_RUNNING)
			rc = st == POOL_TERMINATE ? -ECANCELED : -EPIPE;
		else if (p->broken)
			rc = p->broken;
		if (rc == WAIT && p->nzombies)
			shmq__pool_zombies_reap(p, shmq_now_ns()); /* a look, no wait */
		if (rc == WAIT)
			rc = room_look(p, room, WAIT);
		if (rc == WAIT && shmq_now_ns() - p->last_supervise >= SUPERVISE_EVERY_NS)
			shmq__pool_supervise(p);
		pthread_mutex_unlock(&p->mu);
		if (rc != WAIT)
			return rc;
		if (deadline != SHMQ__NO_DEADLINE && shmq_now_ns() >= deadline)
			return -ETIMEDOUT;
		usleep(1000);
	}
}

static int pool_map(shmq_pool *p, const char *task, const void *in, size_t in_size,
		    void *out, size_t out_size, size_t n, int64_t timeout_ns)
{
	struct submit s = { task, in, in_size, out, out_size, n, false, NULL };
	int64_t deadline = shmq__deadline(timeout_ns);
	size_t done = 0, batch = n;
	int first = 0, rc;

	if (shmq__timeout_bad(timeout_ns))
		return -EINVAL;
	rc = submit_check(p, &s);
	if (rc)
		return rc;
	/* A map of any task waits for it: SHMQ_NOWAIT would block, so it
	 * submits nothing and says so (shmq_pool_map_async is the way not to
	 * wait) - unless the map would be refused anyway: a closed or broken
	 * pool and an unknown task say so instead, as they do with a timeout
	 * (a caller retrying on -EAGAIN would otherwise retry for ever). */
	if (timeout_ns == SHMQ_NOWAIT || n == 0) {
		rc = map_refusal(p, task);
		return rc ? rc : n ? -EAGAIN : 0;
	}
	while (done < n) {
		struct submit b = s;
		struct map_room room = { false, 0 };
		shmq_async *a;

		b.n = n - done < batch ? n - done : batch;
		b.in = in ? (const uint8_t *)in + done * in_size : NULL;
		b.out = out ? (uint8_t *)out + done * out_size : NULL;
		b.room = &room;
		rc = async_submit(p, &b, &a);
		if (rc == -ENOSPC && b.n > 1) {
			size_t fit = batch_fit(p, &b);

			batch = fit && fit < b.n ? fit : b.n / 2;
			continue;
		}
		if ((rc == -EAGAIN && room.slots_full) || rc == -ENOSPC) {
			/* every job slot taken, or no arena room for one
			 * element while other maps hold it: a map waits, as for
			 * the rest of its work (map_async says -EAGAIN and
			 * -ENOSPC) */
			rc = room_wait(p, &room, deadline);
			if (rc)
				return rc;
			if (!room.slots_full)
				batch = n; /* the arena came back: as large again as fits */
			continue;
		}
		if (rc)
			return rc;
		rc = async_wait_until(a, deadline);
		if (rc == 0 && a->status && !first)
			first = a->status;
		shmq_async_free(a);
		if (rc)
			return rc;
		done += b.n;
	}
	return first;
}

/* No cancellation point (core/cancel_int.h). */
SHMQ_API int shmq_pool_map(shmq_pool *p, const char *task, const void *in, size_t in_size,
			   void *out, size_t out_size, size_t n, int64_t timeout_ns)
{
	int cs = shmq__cancel_off();
	int rc = pool_map(p, task, in, in_size, out, out_size, n, timeout_ns);

	shmq__cancel_restore(cs);
	return rc;
}
