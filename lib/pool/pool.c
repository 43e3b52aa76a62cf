/* SPDX-License-Identifier: MIT */
/*
 * Layer 5: the work-stealing pool of worker processes (seed 12-6).
 *
 * Shared layout (one block in the region, addressed by offsets):
 *
 *   struct pool_hdr     immutable geometry; state; the idle futex; the
 *                       pending-injection bitmask
 *   struct pool_job[SHMQ_POOL_MAX_JOBS]
 *                       one per map / apply in flight: task, the element
 *                       arrays (offsets), chunk geometry, the chunk-state
 *                       array (offset), the injection word, counters
 *   struct pool_slot[nworkers]
 *                       per worker: the area (deque + frames) of its current
 *                       generation, its owner id, its claim pin, statistics
 *   arena               element arrays and chunk states of jobs, handed out
 *                       by a private allocator of the creating process
 *   worker areas        per worker generation: a Chase-Lev deque and a stack
 *                       of fork-join frames; a replacement worker gets
 *                       another area, so late writes of orphaned subtasks
 *                       never land in memory still in use.  The dead
 *                       worker's area is retired and recycled for a later
 *                       replacement once no live worker can touch it any
 *                       more (area_reusable), so any number of deaths needs
 *                       a bounded number of areas.
 *
 * Words on the deques (64 bits):
 *   RANGE  kind 1 | job (8) | lo (27) | hi (27): chunks [lo, hi) of a job;
 *          a worker splits it in halves, pushing the upper one, until one
 *          chunk is left, which it claims and runs.
 *   SUB    kind 2 | frame offset / 64 (32) | tag (30): a spawned subtask.
 *
 * Chunks are claimed, run and completed through their state word:
 * PENDING (0) -> the claiming worker's owner id -> DONE; only the claimer
 * writes the chunk's result slots, so a stale or duplicated RANGE word (after
 * a worker died) never runs a chunk twice at once, and a chunk is counted
 * once.  The creator resets chunks held by a dead worker to PENDING and
 * re-injects the whole range.
 *
 * Frames are claimed by tag: PENDING(tag) -> RUNNING(owner id) -> DONE(tag).
 * The spawning worker that takes its own word back runs the subtask in
 * place; a thief claims it by CAS, so a word that outlived its frame (the tag
 * no longer matches) is dropped.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <shmq.h>

#include "core/alloc_int.h"
#include "core/atomic_int.h"
#include "core/compiler_int.h"
#include "ring/deque_int.h"
#include "core/introspect_int.h"
#include "pool/pool_int.h"
#include "core/region_int.h"
#include "core/wait_int.h"

#define POOL_MAGIC   0x4c4f4f50u /* "POOL" */
#define POOL_VERSION 2u

#define POOL_DEQUE_CAP 4096u
#define POOL_FRAMES    1024u
#define POOL_FRAME_DATA SHMQ_POOL_SPAWN_MAX

#define POOL_RUNNING   0u
#define POOL_CLOSING   1u
#define POOL_EXIT      2u
#define POOL_TERMINATE 3u

#define JOB_FREE     0u
#define JOB_ACTIVE   1u
#define JOB_RETIRING 2u

#define JOB_RUNNING  0u
#define JOB_DONE     1u
#define JOB_CANCELED 2u

#define CHUNK_PENDING 0u
#define CHUNK_DONE    UINT32_MAX

#define WORD_RANGE 1ull
#define WORD_SUB   2ull
#define RANGE_BITS 27
#define RANGE_MAX  ((1ull << RANGE_BITS) - 1)
#define TAG_BITS   30
#define TAG_MASK   ((1u << TAG_BITS) - 1)

#define IDLE_SPIN_NS     (50 * 1000)          /* steal attempts before sleeping */
#define IDLE_SLICE_NS    (50 * 1000 * 1000)   /* idle sleep; then check the creator */
#define WAIT_SLICE_NS    (20 * 1000 * 1000)   /* callers: supervise this often */
#define SUPERVISE_EVERY_NS (WAIT_SLICE_NS / 2) /* at most this often outside waits */
#define CALLER_SPIN_NS   1000                 /* callers: spin before sleeping */
#define FRAME_NAP_NS     (200 * 1000)         /* a sync's sleep between help attempts */
#define FRAME_CHECK_NS   (20 * 1000 * 1000)   /* a sync checks its thief this often */
#define HELP_DEPTH_MAX   64u                  /* nested task runs while syncing */
#define CHUNK_TRIES      3u                   /* deaths a chunk survives */
#define START_TRIES      3u                   /* failed worker starts in a row */
#define POOL_NAME_TRIES  4096u                /* pools of one creator in a region */

/* ---- shared structures ---- */

struct pool_job {
	/* lines 0-2: written by the creator while the job is not ACTIVE */
	uint32_t state;     /* JOB_FREE, JOB_ACTIVE, JOB_RETIRING */
	uint32_t canceled;  /* set once by the creator while ACTIVE */
	uint32_t task_idx;
	uint32_t task_hash;
	uint64_t in_off, in_size;
	uint64_t out_off, out_size;
	uint64_t chunks_off; /* uint32_t[nchunks] */
	uint64_t n, chunksize, nchunks;
	char task[SHMQ_OBJ_NAME_MAX + 1];
	uint8_t pad1[3 * SHMQ__CACHELINE - 144];
	/* line 3: written by workers */
	uint64_t inject;      /* a RANGE word waiting for a worker, or 0 */
	uint64_t done_chunks;
	uint64_t err;         /* (index << 32) | (uint32_t)status, lowest index; UINT64_MAX: none */
	uint32_t done;        /* JOB_RUNNING, JOB_DONE, JOB_CANCELED: the creator waits on it */
	uint32_t done_sleepers;
	uint8_t pad2[SHMQ__CACHELINE - 32];
};
SHMQ__LINE_ALIGNED_FIELD(struct pool_job, inject);
_Static_assert(sizeof(struct pool_job) % SHMQ__CACHELINE == 0, "pool_job: whole lines");

struct pool_slot {
	/* line 0: written by the creator */
	uint32_t gen;       /* bumped (release) after area_off changed */
	uint32_t restarts;
	uint64_t area_off;  /* the deque, then the frames */
	int32_t pid;
	uint32_t want;      /* set by thieves that found the deque empty */
	uint8_t pad0[SHMQ__CACHELINE - 24];
	/* line 1: written by the worker */
	uint32_t id;        /* the worker's owner id in the region */
	uint32_t claim;     /* job + 1 while it claims a chunk or counts one done */
	uint64_t tasks;
	uint64_t steals;
	uint32_t steal_seq; /* odd while it may touch another slot's area (the
			     * steal window); free-running, wraps harmlessly:
			     * only compared for equality */
	uint8_t pad1[SHMQ__CACHELINE - 28];
};
SHMQ__LINE_ALIGNED_FIELD(struct pool_slot, id);
_Static_assert(sizeof(struct pool_slot) == 2 * SHMQ__CACHELINE, "pool_slot: two lines");

struct pool_hdr {
	/* line 0: immutable after create */
	uint32_t magic;
	uint32_t version;
	uint32_t nworkers;
	uint32_t njobs;
	uint32_t deque_cap;
	uint32_t frames;
	uint32_t creator_id;
	uint32_t pad0;
	uint64_t arena_off, arena_size;
	uint8_t pad0b[SHMQ__CACHELINE - 48];
	/* line 1: the pool's state, written by the creator */
	uint32_t state;
	uint8_t pad1[SHMQ__CACHELINE - 4];
	/* line 2: the idle workers' futex */
	uint32_t work_seq;
	uint32_t idle_sleepers;
	uint32_t wake_pending; /* a weak wake was sent and no sleeper has woken since */
	uint8_t pad2[SHMQ__CACHELINE - 12];
	/* line 3: jobs whose injection word may be set */
	uint64_t pending[SHMQ_POOL_MAX_JOBS / 64];
	uint8_t pad3[SHMQ__CACHELINE - 8 * (SHMQ_POOL_MAX_JOBS / 64)];
	struct pool_job jobs[SHMQ_POOL_MAX_JOBS];
	struct pool_slot slots[];
};
SHMQ__LINE_ALIGNED_FIELD(struct pool_hdr, state);
SHMQ__LINE_ALIGNED_FIELD(struct pool_hdr, work_seq);
SHMQ__LINE_ALIGNED_FIELD(struct pool_hdr, pending);
SHMQ__LINE_ALIGNED_FIELD(struct pool_hdr, jobs);
SHMQ__LINE_ALIGNED_FIELD(struct pool_hdr, slots);

/* A fork-join frame: a spawned subtask, its input and, once run by a thief,
 * its output. */
struct pool_frame {
	uint32_t state;     /* PENDING(tag), RUNNING(id), DONE(tag) */
	uint32_t sleepers;  /* the spawner sleeping on state */
	int32_t status;     /* written by the thief before DONE */
	uint32_t task_idx;
	uint32_t task_hash;
	uint16_t in_size;
	uint16_t out_size;
	uint8_t pad[8];
	uint8_t data[POOL_FRAME_DATA]; /* input, then output at ALIGN_UP(in_size, 16) */
};
_Static_assert(sizeof(struct pool_frame) == 2 * SHMQ__CACHELINE, "pool_frame: two lines");

static inline uint32_t frame_pending(uint32_t tag) { return tag << 2; }
static inline uint32_t frame_done(uint32_t tag) { return (tag << 2) | 2u; }
static inline uint32_t frame_running(uint32_t id) { return (id << 1) | 1u; }

static inline uint64_t word_range(unsigned job, uint64_t lo, uint64_t hi)
{
	return (WORD_RANGE << 62) | ((uint64_t)job << 54) | (lo << RANGE_BITS) | hi;
}

static inline uint64_t word_sub(uint64_t off, uint32_t tag)
{
	return (WORD_SUB << 62) | ((off / SHMQ__CACHELINE) << TAG_BITS) | tag;
}

static size_t pool_hdr_size(unsigned nworkers)
{
	return sizeof(struct pool_hdr) + (size_t)nworkers * sizeof(struct pool_slot);
}

static size_t pool_area_size(void)
{
	return shmq__deque_footprint(POOL_DEQUE_CAP) +
	       (size_t)POOL_FRAMES * sizeof(struct pool_frame);
}

/* ---- the task registry ---- */

static pthread_mutex_t task_mu = PTHREAD_MUTEX_INITIALIZER;
static struct shmq_task *task_head;
static uint32_t task_version; /* bumped under task_mu; read relaxed as a hint */

/* A process-private, name-sorted snapshot: the index of a task is the same in
 * every process of one program. */
struct task_table {
	uint32_t version;
	uint32_t n;
	struct shmq_task **v;
	uint32_t *hash;
};

static uint32_t name_hash(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h | 1u;
}

static struct shmq_task *task_find_locked(const char *name)
{
	for (struct shmq_task *t = task_head; t; t = t->next)
		if (strcmp(t->name, name) == 0)
			return t;
	return NULL;
}

SHMQ_API void shmq_task_register(struct shmq_task *t)
{
	if (!t || !t->name || !t->fn || strlen(t->name) > SHMQ_OBJ_NAME_MAX)
		return;
	pthread_mutex_lock(&task_mu);
	if (!task_find_locked(t->name)) {
		t->next = task_head;
		task_head = t;
		shmq__store_relaxed(&task_version, task_version + 1); /* a hint: rebuilt under task_mu */
	}
	pthread_mutex_unlock(&task_mu);
}

static int task_cmp(const void *a, const void *b)
{
	return strcmp((*(struct shmq_task *const *)a)->name, (*(struct shmq_task *const *)b)->name);
}

static void task_table_free(struct task_table *tt)
{
	shmq__free(tt->v, tt->n * sizeof(*tt->v));
	shmq__free(tt->hash, tt->n * sizeof(*tt->hash));
	memset(tt, 0, sizeof(*tt));
}

static int task_table_build(struct task_table *tt)
{
	struct task_table nt = { 0 };
	uint32_t i = 0;

	pthread_mutex_lock(&task_mu);
	for (struct shmq_task *t = task_head; t; t = t->next)
		nt.n++;
	nt.version = task_version;
	nt.v = shmq__malloc((nt.n ? nt.n : 1) * sizeof(*nt.v));
	nt.hash = shmq__malloc((nt.n ? nt.n : 1) * sizeof(*nt.hash));
	if (!nt.v || !nt.hash) {
		pthread_mutex_unlock(&task_mu);
		shmq__free(nt.v, (nt.n ? nt.n : 1) * sizeof(*nt.v));
		shmq__free(nt.hash, (nt.n ? nt.n : 1) * sizeof(*nt.hash));
		return -ENOMEM;
	}
	for (struct shmq_task *t = task_head; t; t = t->next)
		nt.v[i++] = t;
	pthread_mutex_unlock(&task_mu);
	qsort(nt.v, nt.n, sizeof(*nt.v), task_cmp);
	for (i = 0; i < nt.n; i++)
		nt.hash[i] = name_hash(nt.v[i]->name);
	if (tt->v) {
		shmq__free(tt->v, (tt->n ? tt->n : 1) * sizeof(*tt->v));
		shmq__free(tt->hash, (tt->n ? tt->n : 1) * sizeof(*tt->hash));
	}
	*tt = nt;
	return 0;
}

/* Index of name in tt (rebuilt when the registry grew), or -ENOENT. */
static int task_lookup(struct task_table *tt, const char *name)
{
	uint32_t lo, hi;

	if (!name)
		return -EINVAL;
	for (int pass = 0; pass < 2; pass++) {
		/* relaxed: a hint that the registry grew; the rebuild locks */
		if ((!tt->v || tt->version != shmq__load_relaxed(&task_version)) &&
		    task_table_build(tt))
			return -ENOMEM;
		lo = 0;
		hi = tt->n;
		while (lo < hi) {
			uint32_t mid = lo + (hi - lo) / 2;
			int c = strcmp(tt->v[mid]->name, name);

			if (c == 0)
				return (int)mid;
			if (c < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		tt->version = UINT32_MAX; /* force one rebuild before giving up */
	}
	return -ENOENT;
}

/* The function for a (shared, untrusted) index and hash, or NULL. */
static shmq_task_fn task_by_index(const struct task_table *tt, uint32_t idx, uint32_t hash)
{
	if (idx >= tt->n || tt->hash[idx] != hash)
		return NULL;
	return tt->v[idx]->fn;
}

/* ---- the worker process ---- */

struct victim {
	uint32_t gen;  /* the slot generation the view belongs to; 0: none */
	struct shmq__deque dq;
};

struct frame_priv {
	void *out;
	shmq_task_fn fn;
	uint32_t tag;
	uint32_t in_size;
};

struct worker {
	shmq_region *r;
	struct pool_hdr *h;
	struct pool_slot *slot;
	unsigned self, nworkers;
	uint32_t id;
	struct shmq__deque dq;
	struct pool_frame *frames;
	uint64_t frames_off;
	unsigned sp;       /* frames in use */
	unsigned pub;      /* frames below pub were pushed on the deque; the
			    * others are private: no thief can see them */
	unsigned depth;    /* nested task runs */
	uint32_t tag;
	uint64_t rng;
	uint64_t tasks, steals;
	struct victim *victims;
	struct task_table tt;
	const char *cache_name; /* spawn's one-entry name cache */
	int cache_idx;
	uint32_t cache_ver; /* tt.version the cache belongs to */
	shmq_task_fn cache_fn;
	/* per frame, private: where the result goes and how to run it */
	struct frame_priv *fp;
	/* the steal window (cold: idle and stealing paths only) */
	uint32_t steal_seq; /* our copy of slot->steal_seq */
	bool in_window;     /* steal_seq is odd */
};

/* The worker this process is, while it runs the pool's loop (pool workers
 * are single-threaded processes).  The one piece of process-wide state
 * besides the registries: tasks have no context argument, so spawn and sync
 * find their worker here. */
static struct worker *pool_current;

void (*shmq__pool_fault)(enum shmq__pool_fault_point point);

static uint64_t rng_next(struct worker *w)
{
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return w->rng;
}

/* Wake one idle worker if any sleeps.  strong: the caller's publication and
 * our load of the sleeper count are ordered (a seq_cst RMW on the futex word
 * first); weak (the spawn fast path): a relaxed peek that may miss a worker
 * going to sleep at this instant, which then wakes at its slice. */
static void idle_wake(struct pool_hdr *h, bool strong, int n)
{
	if (strong) {
		shmq__fetch_add_seq_cst(&h->work_seq, 1);
		if (shmq__load_seq_cst(&h->idle_sleepers) == 0)
			return;
	} else {
		/* relaxed peeks, hints only (see above); one wake in flight at a
		 * time, so a spawning worker does not make a system call per
		 * spawn while the woken worker waits to be scheduled */
		if (shmq__load_relaxed(&h->idle_sleepers) == 0 ||
		    shmq__load_relaxed(&h->wake_pending) ||
		    shmq__exchange_acq_rel(&h->wake_pending, 1))
			return;
		shmq__fetch_add_seq_cst(&h->work_seq, 1);
	}
	shmq__futex_wake(&h->work_seq, n);
}

/* Publish the private task count (statistics only: relaxed).  Done when a
 * chunk ends, every 256 tasks and before idling, not per task. */
static void worker_count_flush(struct worker *w)
{
	shmq__store_relaxed(&w->slot->tasks, w->tasks);
}

static inline void worker_count_task(struct worker *w)
{
	if ((++w->tasks & 255) == 0)
		worker_count_flush(w);
}

static int frames_sync(struct worker *w, unsigned base);

/* Run one task with an implicit sync of whatever it left unsynced. */
static inline __attribute__((always_inline)) int task_exec(struct worker *w, shmq_task_fn fn, const void *in, void *out)
{
	unsigned base = w->sp;
	int st, e;

	w->depth++;
	st = fn(in, out);
	if (SHMQ__UNLIKELY(w->sp > base)) {
		e = frames_sync(w, base);
		if (!st)
			st = e;
	}
	w->depth--;
	worker_count_task(w);
	return st;
}

/* A checked view of a job's arrays. */
struct job_view {
	shmq_task_fn fn;
	uint8_t *in, *out;
	uint32_t *chunks;
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

/* relaxed loads: the fields are stable while the job is ACTIVE, published by
 * the creator's seq_cst store of state that the caller loaded */
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
	v->fn = task_by_index(&w->tt, shmq__load_relaxed(&job->task_idx),
			      shmq__load_relaxed(&job->task_hash));
	if (!v->fn) { /* another registry order: fall back to the name */
		int idx;

		for (unsigned i = 0; i < sizeof(name); i++)
			name[i] = (char)shmq__load_relaxed(&job->task[i]);
		name[sizeof(name) - 1] = 0;
		idx = task_lookup(&w->tt, name);
		v->fn = idx >= 0 ? w->tt.v[idx]->fn : NULL;
	}
	return 0;
}

/* Record status for element i if it is the lowest failing index so far. */
static void job_err_record(struct pool_job *job, uint64_t i, int status)
{
	uint64_t idx = i > UINT32_MAX ? UINT32_MAX : i;
	uint64_t want = (idx << 32) | (uint32_t)status;
	uint64_t cur = shmq__load_relaxed(&job->err); /* the CAS re-validates */

	while (want < cur && !shmq__cas_acq_rel(&job->err, &cur, want))
		;
}

/* Count one chunk done; true for the one that completes the job. */
static bool job_chunk_count(struct pool_job *job, uint64_t nchunks)
{
	/* acq_rel: a release sequence over every chunk's completion, so the
	 * creator's acquire of done sees every result */
	return shmq__fetch_add_acq_rel(&job->done_chunks, 1) + 1 == nchunks;
}

static void job_finish(struct pool_job *job)
{
	uint32_t running = JOB_RUNNING;

	if (shmq__cas_seq_cst(&job->done, &running, JOB_DONE))
		shmq__wake_word(&job->done, &job->done_sleepers, INT_MAX);
}

static void job_chunk_done(struct pool_job *job, uint64_t nchunks)
{
	if (job_chunk_count(job, nchunks))
		job_finish(job);
}

/* Claim chunk c of job j: the pin (slot->claim) keeps the creator from
 * retiring the job between our check of its state and our CAS. */
static bool chunk_claim(struct worker *w, unsigned j, uint64_t c, struct job_view *v)
{
	struct pool_job *job = &w->h->jobs[j];
	uint32_t exp = CHUNK_PENDING;
	bool ok = false;

	/* seq_cst pin and check: Dekker with job_retire's store of state and
	 * load of claim */
	shmq__store_seq_cst(&w->slot->claim, j + 1);
	if (shmq__load_seq_cst(&job->state) == JOB_ACTIVE && !shmq__load_seq_cst(&job->canceled) &&
	    job_view(w, job, v) == 0 && c < v->nchunks)
		ok = shmq__cas_acq_rel(&v->chunks[c], &exp, w->id);
	/* pairs with job_retire's seq_cst load of claim */
	shmq__store_release(&w->slot->claim, 0);
	return ok;
}

static void chunk_run(struct worker *w, unsigned j, uint64_t c)
{
	struct pool_job *job = &w->h->jobs[j];
	struct job_view v;
	uint64_t lo, hi;
	uint32_t exp;
	bool last = false;

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
	}
	worker_count_flush(w);
	exp = w->id;
	/* Pinned from the DONE mark to its count: the creator may finish a job
	 * whose chunks are all DONE by itself (jobs_settle), and its unpin then
	 * waits for the count to land before the job slot can be reused.
	 * seq_cst: as chunk_claim's pin. */
	shmq__store_seq_cst(&w->slot->claim, j + 1);
	/* release: our results before the chunk counts as done (pairs with
	 * the creator's acquire of done through job_chunk_count, or of the
	 * chunk state in jobs_settle) */
	if (shmq__cas_acq_rel(&v.chunks[c], &exp, CHUNK_DONE)) {
		if (SHMQ__UNLIKELY(shmq__pool_fault != NULL))
			shmq__pool_fault(SHMQ__POOL_FAULT_CHUNK_MARKED);
		last = job_chunk_count(job, v.nchunks);
	}
	/* pairs with job_unpin's seq_cst load of claim */
	shmq__store_release(&w->slot->claim, 0);
	if (last)
		job_finish(job);
}

static void range_run(struct worker *w, unsigned j, uint64_t lo, uint64_t hi)
{
	struct pool_job *job = &w->h->jobs[j];
	/* relaxed: a clamp only; chunk_claim re-checks under the pin */
	uint64_t nchunks = shmq__load_relaxed(&job->nchunks);

	if (hi > nchunks)
		hi = nchunks;
	while (lo < hi && hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (shmq__deque_push(&w->dq, word_range(j, mid, hi)) != 0) {
			for (uint64_t c = mid; c < hi; c++)
				chunk_run(w, j, c);
		} else {
			idle_wake(w->h, true, 1);
		}
		hi = mid;
	}
	if (lo < hi)
		chunk_run(w, j, lo);
}

/* memcpy for the small argument copies of spawn: the common sizes get a
 * constant-size copy the compiler inlines. */
static inline void arg_copy(void *dst, const void *src, size_t n)
{
	if (n == 4)
		memcpy(dst, src, 4);
	else if (n == 8)
		memcpy(dst, src, 8);
	else if (n)
		memcpy(dst, src, n);
}

static uint32_t frame_in_span(uint32_t in_size)
{
	return SHMQ__ALIGN_UP(in_size, 16u);
}

/*
 * The steal window: every access of ours to another slot's area (its deque,
 * the claim of one of its frames) happens while our steal_seq is odd.  The
 * creator retires a dead worker's area after publishing its replacement's
 * gen and recycles it only once each worker's steal_seq is even or has moved
 * since (area_reusable): a window opened after the gen store sees the new gen
 * (Dekker: our seq_cst increment then seq_cst load of gen, its seq_cst store
 * of gen then seq_cst load of steal_seq).
 */
static void steal_window_open(struct worker *w)
{
	w->steal_seq++;
	/* seq_cst: Dekker with area_retire (see above) */
	shmq__exchange_seq_cst(&w->slot->steal_seq, w->steal_seq);
	w->in_window = true;
}

static void steal_window_close(struct worker *w)
{
	if (!w->in_window)
		return;
	w->in_window = false;
	w->steal_seq++;
	/* release: our last access to the victim's area before the creator's
	 * acquire load of steal_seq in area_reusable */
	shmq__store_release(&w->slot->steal_seq, w->steal_seq);
}

/* A subtask taken from another worker's deque (or found orphaned). */
static void sub_run_stolen(struct worker *w, uint64_t word)
{
	uint64_t off = ((word >> TAG_BITS) & 0xffffffffull) * SHMQ__CACHELINE;
	uint32_t tag = (uint32_t)(word & TAG_MASK);
	struct pool_frame *f = shmq__region_ptr(w->r, off, sizeof(*f));
	uint32_t exp = frame_pending(tag);
	uint8_t out[POOL_FRAME_DATA];
	uint32_t in_size, out_size, span;
	shmq_task_fn fn;
	int st;

	if (!f) {
		steal_window_close(w);
		return; /* a corrupt word: nothing to run */
	}
	/* acquire: the spawner's frame contents (also published by its push) */
	if (!shmq__cas_acq_rel(&f->state, &exp, frame_running(w->id))) {
		steal_window_close(w);
		return; /* run by its spawner already, or a stale word */
	}
	/* from here our RUNNING(id) in the frame keeps its area from being
	 * recycled (area_reusable) until we store DONE */
	steal_window_close(w);
	in_size = shmq__load_relaxed(&f->in_size);
	out_size = shmq__load_relaxed(&f->out_size);
	span = frame_in_span(in_size);
	fn = task_by_index(&w->tt, shmq__load_relaxed(&f->task_idx),
			   shmq__load_relaxed(&f->task_hash));
	if (span + out_size > POOL_FRAME_DATA)
		st = -EBADMSG;
	else if (!fn)
		st = -ENOENT;
	else {
		memset(out, 0, out_size);
		st = task_exec(w, fn, in_size ? f->data : NULL, out_size ? out : NULL);
		memcpy(f->data + span, out, out_size);
	}
	shmq__store_relaxed(&f->status, st); /* published by the exchange below */
	/* seq_cst: the wake protocol of core/wait_int.h with the spawner's sleepers */
	shmq__exchange_seq_cst(&f->state, frame_done(tag));
	shmq__wake_word(&f->state, &f->sleepers, 1);
}

static void word_run(struct worker *w, uint64_t word)
{
	switch (word >> 62) {
	case WORD_RANGE: {
		unsigned j = (unsigned)((word >> 54) & 0xff);
		uint64_t lo = (word >> RANGE_BITS) & RANGE_MAX, hi = word & RANGE_MAX;

		range_run(w, j, lo, hi);
		break;
	}
	case WORD_SUB:
		sub_run_stolen(w, word);
		break;
	default:
		break; /* a corrupt word */
	}
}

/* The view of victim v's current deque, re-attached when its slot got a new
 * generation; NULL while it has none.  Inside the steal window only. */
static struct shmq__deque *victim_deque(struct worker *w, unsigned v)
{
	struct pool_slot *s = &w->h->slots[v];
	struct victim *vi = &w->victims[v];
	/* seq_cst: the steal window's Dekker with area_retire; also pairs with
	 * the creator's seq_cst store of gen after area_off (acquire) */
	uint32_t gen = shmq__load_seq_cst(&s->gen);
	void *mem;

	if (SHMQ__LIKELY(gen == vi->gen && gen != 0))
		return &vi->dq;
	mem = shmq__region_ptr(w->r, shmq__load_relaxed(&s->area_off), pool_area_size());
	vi->gen = 0;
	if (!mem || shmq__deque_attach(&vi->dq, mem, shmq__deque_footprint(POOL_DEQUE_CAP)))
		return NULL;
	vi->gen = gen;
	return &vi->dq;
}

static bool inject_take(struct worker *w, uint64_t *word)
{
	struct pool_hdr *h = w->h;

	for (unsigned k = 0; k < SHMQ_POOL_MAX_JOBS / 64; k++) {
		/* pairs with the creator's seq_cst fetch_or after storing inject */
		uint64_t m = shmq__load_acquire(&h->pending[k]);

		while (m) {
			unsigned b = (unsigned)__builtin_ctzll(m);
			struct pool_job *job = &h->jobs[k * 64 + b];

			m &= m - 1;
			/* clear first: a word injected after this is seen
			 * either by our exchange or by the next scan */
			shmq__fetch_and_acq_rel(&h->pending[k], ~(1ull << b));
			*word = shmq__exchange_acq_rel(&job->inject, 0);
			if (*word)
				return true;
		}
	}
	return false;
}

static bool steal_any(struct worker *w, uint64_t *word)
{
	unsigned n = w->nworkers, start;

	if (n < 2)
		return false;
	start = (unsigned)(rng_next(w) % n);
	steal_window_open(w);
	for (unsigned i = 0; i < n; i++) {
		unsigned v = (start + i) % n;
		struct shmq__deque *dq;
		int rc;

		if (v == w->self || !(dq = victim_deque(w, v)))
			continue;
		do
			rc = shmq__deque_steal(dq, word);
		while (rc == -EBUSY);
		if (rc == 0) {
			w->steals++;
			shmq__store_relaxed(&w->slot->steals, w->steals); /* statistics only */
			/* a SUB word still points into the victim's area:
			 * sub_run_stolen closes the window after its claim */
			if ((*word >> 62) != WORD_SUB)
				steal_window_close(w);
			return true;
		}
		/* ask the victim to publish its private frames; relaxed: a
		 * hint it reads at its next spawn or sync */
		if (rc == -EAGAIN && !shmq__load_relaxed(&w->h->slots[v].want))
			shmq__store_relaxed(&w->h->slots[v].want, 1);
	}
	steal_window_close(w);
	return false;
}

static bool work_find(struct worker *w, uint64_t *word)
{
	return inject_take(w, word) || steal_any(w, word);
}

static bool worker_should_exit(struct worker *w)
{
	/* pairs with the creator's seq_cst store of state */
	return shmq__load_acquire(&w->h->state) >= POOL_EXIT;
}

/* Idle: steal for a while, then sleep on the idle futex.  1 with a word, 0
 * to look again, -1 to exit. */
static int worker_idle(struct worker *w, uint64_t *word)
{
	struct pool_hdr *h = w->h;
	int64_t until = shmq_now_ns() + IDLE_SPIN_NS;
	uint32_t seq;
	int rc = 0;
	bool found;

	worker_count_flush(w);

	for (unsigned i = 1;; i++) {
		if (work_find(w, word))
			return 1;
		if (worker_should_exit(w))
			return -1;
		if (i % 32 == 0) {
			if (shmq_now_ns() > until)
				break;
			sched_yield(); /* 2 cores shared: let the owner run */
		} else {
			shmq__cpu_relax();
		}
	}
	seq = shmq__load_seq_cst(&h->work_seq);
	shmq__fetch_add_seq_cst(&h->idle_sleepers, 1);
	/* a weak wake still marked pending went to another worker (or to
	 * nobody): let the next spawn wake us */
	shmq__store_release(&h->wake_pending, 0); /* pairs with idle_wake's exchange */
	/* after registering: a push we missed is seen here, or its pusher
	 * saw us (strong wakes) */
	found = work_find(w, word);
	if (!found && !worker_should_exit(w))
		rc = shmq__futex_wait(&h->work_seq, seq, shmq_now_ns() + IDLE_SLICE_NS);
	shmq__fetch_sub_seq_cst(&h->idle_sleepers, 1);
	shmq__store_release(&h->wake_pending, 0); /* pairs with idle_wake's exchange */
	if (found)
		return 1;
	if (rc == -ETIMEDOUT && shmq__region_id_alive(w->r, shmq__load_relaxed(&h->creator_id)) != 1)
		return -1; /* the pool's creator is gone: nobody will use us */
	return 0;
}

static void worker_loop(struct worker *w)
{
	uint64_t word = 0;

	for (;;) {
		int rc;

		if (shmq__deque_take(&w->dq, &word) == 0) {
			word_run(w, word);
			continue;
		}
		if (worker_should_exit(w))
			return;
		rc = worker_idle(w, &word);
		if (rc < 0)
			return;
		if (rc > 0)
			word_run(w, word);
	}
}

/* ---- fork-join ---- */

/* Wait for frame k, stolen from us; help meanwhile. */
static int frame_wait(struct worker *w, unsigned k)
{
	struct pool_frame *f = &w->frames[k];
	uint32_t tag = w->fp[k].tag;
	int64_t check_at = shmq_now_ns() + FRAME_CHECK_NS;
	unsigned idle = 0;
	uint64_t word = 0;

	for (;;) {
		/* pairs with the thief's seq_cst exchange to DONE */
		uint32_t s = shmq__load_acquire(&f->state);

		if (s == frame_done(tag)) {
			uint32_t out_size = shmq__load_relaxed(&f->out_size);

			if (out_size)
				memcpy(w->fp[k].out, f->data + frame_in_span(shmq__load_relaxed(&f->in_size)),
				       out_size);
			return shmq__load_relaxed(&f->status); /* ordered by the acquire above */
		}
		if (s == frame_pending(tag)) {
			/* a thief took the word but has not claimed the frame:
			 * claim it ourselves (its CAS will then fail) */
			if (shmq__cas_acq_rel(&f->state, &s, frame_running(w->id)))
				return task_exec(w, w->fp[k].fn, f->data, w->fp[k].out);
			continue;
		}
		if (!(s & 1u) || shmq__region_id_valid(w->r, s >> 1))
			return -EBADMSG; /* no state we write, or a thief no region has */
		if (w->depth < HELP_DEPTH_MAX && work_find(w, &word)) {
			word_run(w, word);
			idle = 0;
			continue;
		}
		if (++idle < 64) {
			shmq__cpu_relax();
			continue;
		}
		shmq__wait_word(&f->state, s, &f->sleepers, shmq_now_ns() + FRAME_NAP_NS, 0);
		if (shmq_now_ns() >= check_at) {
			check_at = shmq_now_ns() + FRAME_CHECK_NS;
			if (shmq__region_id_alive(w->r, s >> 1) == 0 &&
			    shmq__cas_acq_rel(&f->state, &s, frame_running(w->id)))
				return task_exec(w, w->fp[k].fn, f->data, w->fp[k].out);
		}
	}
}

static inline __attribute__((always_inline)) int frame_join(struct worker *w, unsigned k)
{
	uint64_t want = word_sub(w->frames_off + (uint64_t)k * sizeof(struct pool_frame), w->fp[k].tag);
	uint64_t word = 0;

	while (shmq__deque_take(&w->dq, &word) == 0) {
		if (SHMQ__LIKELY(word == want))
			return task_exec(w, w->fp[k].fn, w->frames[k].data, w->fp[k].out);
		word_run(w, word); /* not ours (cannot happen unless corrupted): run it */
	}
	return frame_wait(w, k);
}

/* Run private frame k (never pushed: no thief can have it) in place.  It is
 * popped first, so that spawns inside it may reuse its slot; its input is
 * copied out of the slot for that reason. */
static inline __attribute__((always_inline)) int frame_run_private(struct worker *w, unsigned k)
{
	struct frame_priv fp = w->fp[k];
	uint8_t in[POOL_FRAME_DATA];

	arg_copy(in, w->frames[k].data, fp.in_size);
	w->sp = k;
	return task_exec(w, fp.fn, fp.in_size ? in : NULL, fp.out);
}

static void frames_publish(struct worker *w);

static int frames_sync(struct worker *w, unsigned base)
{
	int err = 0;

	while (w->sp > base) {
		unsigned k = w->sp - 1;
		int st;

		if (k >= w->pub && shmq__load_relaxed(&w->slot->want)) /* a hint */
			frames_publish(w); /* a thief waits: let it take the older ones */
		if (k >= w->pub) {
			st = frame_run_private(w, k);
		} else {
			st = frame_join(w, k);
			w->sp = k;
			w->pub = k;
		}
		if (st)
			err = st; /* the last one kept is the earliest spawn's */
	}
	return err;
}

/* Push the private frames, oldest first, so that thieves can take them.  A
 * frame that does not fit the deque stays private (it runs at its sync). */
static void frames_publish(struct worker *w)
{
	while (w->pub < w->sp) {
		unsigned k = w->pub;
		uint64_t off = w->frames_off + (uint64_t)k * sizeof(struct pool_frame);

		if (shmq__deque_push(&w->dq, word_sub(off, w->fp[k].tag)))
			break;
		w->pub = k + 1;
	}
	if (shmq__load_relaxed(&w->slot->want)) /* a hint, see steal_any */
		shmq__store_relaxed(&w->slot->want, 0);
	idle_wake(w->h, false, 1);
}

static int spawn_lookup(struct worker *w, const char *task)
{
	if (SHMQ__LIKELY(task == w->cache_name && w->cache_ver == w->tt.version))
		return w->cache_idx;
	w->cache_idx = task_lookup(&w->tt, task);
	w->cache_name = w->cache_idx >= 0 ? task : NULL;
	w->cache_fn = w->cache_idx >= 0 ? w->tt.v[w->cache_idx]->fn : NULL;
	w->cache_ver = w->tt.version;
	return w->cache_idx;
}

static int spawn_now(struct worker *w, struct shmq_pool_group *g, shmq_task_fn fn,
		     const void *in, void *out)
{
	int st = task_exec(w, fn, in, out);

	if (st && !g->err)
		g->err = st;
	return 0;
}

SHMQ_API int shmq_pool_spawn(struct shmq_pool_group *g, const char *task, const void *in,
			     size_t in_size, void *out, size_t out_size)
{
	struct worker *w = pool_current;
	struct pool_frame *f;
	shmq_task_fn fn;
	unsigned k;
	int idx;

	if (!w || w->depth == 0)
		return -EPERM;
	if (!g || (in_size && !in) || (out_size && !out))
		return -EINVAL;
	if (in_size > POOL_FRAME_DATA || frame_in_span((uint32_t)in_size) + out_size > POOL_FRAME_DATA)
		return -EMSGSIZE;
	idx = spawn_lookup(w, task);
	if (idx < 0)
		return idx;
	fn = w->cache_fn;
	if (g->n == 0)
		g->base = w->sp;
	else if (g->base + g->n != w->sp)
		return -EINVAL;
	k = w->sp;
	if (k >= POOL_FRAMES)
		return spawn_now(w, g, fn, in, out);
	f = &w->frames[k];
	w->tag = (w->tag + 1) & TAG_MASK;
	w->fp[k].tag = w->tag;
	w->fp[k].out = out;
	w->fp[k].fn = fn;
	w->fp[k].in_size = (uint32_t)in_size;
	/* relaxed: published with the frame by the push's release store */
	shmq__store_relaxed(&f->task_idx, (uint32_t)idx);
	shmq__store_relaxed(&f->task_hash, w->tt.hash[idx]);
	shmq__store_relaxed(&f->in_size, (uint16_t)in_size);
	shmq__store_relaxed(&f->out_size, (uint16_t)out_size);
	arg_copy(f->data, in, in_size);
	/* published with the frame by the push's release store */
	shmq__store_relaxed(&f->state, frame_pending(w->tag));
	w->sp = k + 1;
	g->n++;
	/* The frame stays private (no atomic operation at its sync) unless a
	 * thief asked for work or our deque is empty: then every private
	 * frame is pushed, so there is always something to steal. */
	if (shmq__load_relaxed(&w->slot->want) || shmq__deque_maybe_empty(&w->dq))
		frames_publish(w);
	return 0;
}

SHMQ_API int shmq_pool_sync(struct shmq_pool_group *g)
{
	struct worker *w = pool_current;
	int err, e;

	if (!w || w->depth == 0)
		return -EPERM;
	if (!g)
		return -EINVAL;
	if (g->n && g->base + g->n != w->sp)
		return -EINVAL;
	/* the common case of one private subtask: run it here */
	if (g->n == 1 && g->base >= w->pub && !g->err &&
	    !shmq__load_relaxed(&w->slot->want)) { /* a hint, see steal_any */
		g->n = 0;
		return frame_run_private(w, g->base);
	}
	err = g->n ? frames_sync(w, g->base) : 0;
	e = g->err ? g->err : err;
	g->n = 0;
	g->err = 0;
	return e;
}

SHMQ_API int shmq_pool_self(void)
{
	return pool_current ? (int)pool_current->self : -EPERM;
}

/* ---- the worker's entry ---- */

struct worker_arg {
	uint64_t pool_off;
	uint32_t slot;
	uint32_t gen;
};

static void worker_fini(struct worker *w)
{
	shmq__free(w->victims, w->nworkers * sizeof(*w->victims));
	shmq__free(w->fp, POOL_FRAMES * sizeof(*w->fp));
	task_table_free(&w->tt);
}

static int worker_init(struct worker *w, shmq_region *r, const struct worker_arg *a)
{
	struct pool_hdr *h = shmq__region_ptr(r, a->pool_off, sizeof(*h));
	uint8_t *area;

	if (!h || shmq__load_relaxed(&h->magic) != POOL_MAGIC ||
	    shmq__load_relaxed(&h->version) != POOL_VERSION)
		return -EBADMSG;
	w->nworkers = shmq__load_relaxed(&h->nworkers);
	if (w->nworkers == 0 || w->nworkers > SHMQ_POOL_MAX_WORKERS || a->slot >= w->nworkers ||
	    !shmq__region_ptr(r, a->pool_off, pool_hdr_size(w->nworkers)))
		return -EBADMSG;
	w->r = r;
	w->h = h;
	w->self = a->slot;
	w->slot = &h->slots[a->slot];
	/* pairs with the creator's release store of gen */
	if (shmq__load_acquire(&w->slot->gen) != a->gen)
		return -ESTALE;
	w->frames_off = shmq__load_relaxed(&w->slot->area_off) + shmq__deque_footprint(POOL_DEQUE_CAP);
	area = shmq__region_ptr(r, shmq__load_relaxed(&w->slot->area_off), pool_area_size());
	if (!area || shmq__deque_attach(&w->dq, area, shmq__deque_footprint(POOL_DEQUE_CAP)))
		return -EBADMSG;
	w->frames = (struct pool_frame *)(area + shmq__deque_footprint(POOL_DEQUE_CAP));
	w->victims = shmq__calloc(w->nworkers, sizeof(*w->victims));
	w->fp = shmq__calloc(POOL_FRAMES, sizeof(*w->fp));
	if (!w->victims || !w->fp || task_table_build(&w->tt))
		return -ENOMEM;
	w->id = shmq__region_self(r);
	w->rng = ((uint64_t)getpid() << 32) ^ (uint64_t)shmq_now_ns() ^ 0x9e3779b97f4a7c15ull;
	w->tag = (uint32_t)(rng_next(w) & TAG_MASK);
	w->cache_idx = -ENOENT;
	w->tasks = shmq__load_relaxed(&w->slot->tasks);   /* counted per slot */
	w->steals = shmq__load_relaxed(&w->slot->steals);
	/* even: the creator evened it before starting us (worker_start) */
	w->steal_seq = shmq__load_relaxed(&w->slot->steal_seq);
	/* pairs with the creator's acquire load of id (liveness, recovery) */
	shmq__store_release(&w->slot->id, w->id);
	return 0;
}

static int pool_worker_main(shmq_region *r, const void *arg, size_t len)
{
	struct worker w;
	struct worker_arg a;
	int rc;

	if (!r || !arg || len != sizeof(a))
		return 2;
	memcpy(&a, arg, sizeof(a));
	memset(&w, 0, sizeof(w));
	rc = worker_init(&w, r, &a);
	if (rc == 0) {
		pool_current = &w;
		worker_loop(&w);
		pool_current = NULL;
	}
	worker_fini(&w);
	return rc == 0 || rc == -ESTALE ? 0 : 3;
}

static struct shmq_entry pool_worker_entry = { "shmq.pool.worker", pool_worker_main, NULL };

__attribute__((constructor)) static void pool_worker_register(void)
{
	shmq_entry_register(&pool_worker_entry);
}

/* ---- the creator's side: the arena ---- */

struct extent {
	uint64_t off, size;
};

struct arena {
	struct extent *v; /* free extents, sorted by offset, coalesced */
	size_t n, cap;
};

static int arena_alloc(struct arena *a, uint64_t size, uint64_t *off)
{
	size = SHMQ__ALIGN_UP(size, (uint64_t)SHMQ__CACHELINE);
	for (size_t i = 0; i < a->n; i++) {
		if (a->v[i].size < size)
			continue;
		*off = a->v[i].off;
		a->v[i].off += size;
		a->v[i].size -= size;
		if (a->v[i].size == 0) {
			memmove(&a->v[i], &a->v[i + 1], (a->n - i - 1) * sizeof(*a->v));
			a->n--;
		}
		return 0;
	}
	return -ENOSPC;
}

static int arena_free(struct arena *a, uint64_t off, uint64_t size)
{
	size_t i = 0;

	size = SHMQ__ALIGN_UP(size, (uint64_t)SHMQ__CACHELINE);
	while (i < a->n && a->v[i].off < off)
		i++;
	if (i > 0 && a->v[i - 1].off + a->v[i - 1].size == off) {
		a->v[i - 1].size += size;
		if (i < a->n && off + size == a->v[i].off) {
			a->v[i - 1].size += a->v[i].size;
			memmove(&a->v[i], &a->v[i + 1], (a->n - i - 1) * sizeof(*a->v));
			a->n--;
		}
		return 0;
	}
	if (i < a->n && off + size == a->v[i].off) {
		a->v[i].off = off;
		a->v[i].size += size;
		return 0;
	}
	if (a->n == a->cap) {
		size_t nc = a->cap ? a->cap * 2 : 16;
		struct extent *nv = shmq__realloc(a->v, a->cap * sizeof(*a->v), nc * sizeof(*a->v));

		if (!nv)
			return -ENOMEM; /* the space is lost, nothing else */
		a->v = nv;
		a->cap = nc;
	}
	memmove(&a->v[i + 1], &a->v[i], (a->n - i) * sizeof(*a->v));
	a->v[i].off = off;
	a->v[i].size = size;
	a->n++;
	return 0;
}

/* ---- the creator's side: the pool handle ---- */

struct job_priv {
	bool used;
	bool zombie;       /* its async was freed before completion */
	uint64_t alloc_off, alloc_size;
	uint8_t *tries;    /* per chunk: deaths survived (allocated on the first) */
	uint64_t ntries;
	bool orphaned;     /* a worker died while it ran: see jobs_settle */
	uint64_t last_done; /* done_chunks at the last settle look */
};

/* A dead worker's area, waiting until no live worker can touch it. */
struct retired_area {
	uint64_t off;
	uint32_t *seq; /* each slot's steal_seq right after the retirement */
};

struct shmq_pool {
	shmq_region *r;
	struct pool_hdr *h;
	uint64_t h_off;
	unsigned nworkers;
	size_t chunksize;
	pthread_mutex_t mu;
	shmq_proc **procs;
	uint32_t *start_fails;
	int broken;          /* a worker cannot be started: the error */
	struct arena arena;
	struct task_table tt;
	struct job_priv jobs[SHMQ_POOL_MAX_JOBS];
	int64_t last_supervise;
	struct retired_area *retired;
	size_t nretired, cap_retired;
};

struct shmq_async {
	shmq_pool *p;
	unsigned job;
	void *out;
	uint64_t out_bytes;
	uint8_t *out_src;   /* the arena copy to copy back, or NULL */
	bool finished;
	int wait_rc;        /* 0, or -ECANCELED / the pool's error */
	int status;
};

static struct pool_job *pool_job(shmq_pool *p, unsigned j)
{
	return &p->h->jobs[j];
}

static bool id_is_live_worker(shmq_pool *p, uint32_t id)
{
	for (unsigned i = 0; i < p->nworkers; i++)
		/* pairs with the worker's release store of id */
		if (shmq__load_acquire(&p->h->slots[i].id) == id)
			return p->procs[i] && shmq_proc_is_alive(p->procs[i]);
	return false;
}

static int worker_area_new(shmq_pool *p, uint64_t *off)
{
	void *mem;
	int rc = shmq__region_alloc(p->r, pool_area_size(), &mem);

	if (rc)
		return rc;
	rc = shmq__deque_init(mem, POOL_DEQUE_CAP);
	if (rc)
		return rc;
	*off = shmq__region_off(p->r, mem);
	return 0;
}

/* Can retired area ra be handed to a new worker?  Only when no live worker
 * can still touch it: none is in a steal window that was open when the area
 * was retired (a window opened later sees the new gen, see
 * steal_window_open), and no live worker runs one of its frames (a thief
 * holds RUNNING(id) until it stores DONE).  A thief stuck in a long subtask
 * keeps the area retired; the next replacement then takes another. */
static bool area_reusable(shmq_pool *p, const struct retired_area *ra)
{
	const struct pool_frame *f;

	for (unsigned j = 0; j < p->nworkers; j++) {
		/* pairs with steal_window_close's release store */
		uint32_t now = shmq__load_acquire(&p->h->slots[j].steal_seq);

		if ((ra->seq[j] & 1u) && now == ra->seq[j])
			return false;
	}
	f = shmq__region_ptr(p->r, ra->off + shmq__deque_footprint(POOL_DEQUE_CAP),
			     (uint64_t)POOL_FRAMES * sizeof(*f));
	if (!f)
		return false;
	for (unsigned k = 0; k < POOL_FRAMES; k++) {
		/* pairs with sub_run_stolen's claim CAS and its exchange to DONE */
		uint32_t st = shmq__load_acquire(&f[k].state);

		if ((st & 1u) && id_is_live_worker(p, st >> 1))
			return false;
	}
	return true;
}

/* An area for a new worker: a recycled one if one is free again, else new. */
static int worker_area_get(shmq_pool *p, uint64_t *off)
{
	for (size_t i = 0; i < p->nretired; i++) {
		struct retired_area *ra = &p->retired[i];
		void *mem;

		if (!area_reusable(p, ra))
			continue;
		mem = shmq__region_ptr(p->r, ra->off, pool_area_size());
		if (!mem)
			continue;
		/* nobody else touches it any more (area_reusable): format it
		 * as a new area; published to the new worker by its spawn and
		 * to thieves by the seq_cst store of gen */
		memset(mem, 0, pool_area_size());
		if (shmq__deque_init(mem, POOL_DEQUE_CAP))
			continue;
		*off = ra->off;
		shmq__free(ra->seq, p->nworkers * sizeof(*ra->seq));
		p->retired[i] = p->retired[--p->nretired];
		return 0;
	}
	return worker_area_new(p, off);
}

/* Retire area off of a dead worker, after its slot's new gen was stored.
 * Without memory for the bookkeeping the area is only lost, nothing else. */
static void worker_area_retire(shmq_pool *p, uint64_t off)
{
	struct retired_area *ra;

	if (p->nretired == p->cap_retired) {
		size_t nc = p->cap_retired ? p->cap_retired * 2 : 8;
		struct retired_area *nv = shmq__realloc(p->retired,
							p->cap_retired * sizeof(*nv),
							nc * sizeof(*nv));

		if (!nv)
			return;
		p->retired = nv;
		p->cap_retired = nc;
	}
	ra = &p->retired[p->nretired];
	ra->off = off;
	ra->seq = shmq__malloc(p->nworkers * sizeof(*ra->seq));
	if (!ra->seq)
		return;
	for (unsigned j = 0; j < p->nworkers; j++)
		/* seq_cst: Dekker with steal_window_open, after our store of gen */
		ra->seq[j] = shmq__load_seq_cst(&p->h->slots[j].steal_seq);
	p->nretired++;
}

static void worker_areas_free(shmq_pool *p)
{
	for (size_t i = 0; i < p->nretired; i++)
		shmq__free(p->retired[i].seq, p->nworkers * sizeof(*p->retired[i].seq));
	shmq__free(p->retired, p->cap_retired * sizeof(*p->retired));
	p->retired = NULL;
	p->nretired = p->cap_retired = 0;
}

/* Give slot i another area (when fresh: the old one is retired) and a new
 * process.  The slot's previous process, if any, has exited. */
static int worker_start(shmq_pool *p, unsigned i, bool fresh)
{
	struct pool_slot *s = &p->h->slots[i];
	uint64_t old = shmq__load_relaxed(&s->area_off); /* only we write it */
	uint32_t seq = shmq__load_relaxed(&s->steal_seq); /* its writer has exited */
	struct worker_arg a;
	uint64_t off;
	int rc;

	if (fresh) {
		rc = worker_area_get(p, &off);
		if (rc)
			return rc;
		shmq__store_relaxed(&s->area_off, off); /* published by the gen store */
	}
	shmq__store_relaxed(&s->id, 0);    /* the new worker stores its own */
	shmq__store_relaxed(&s->claim, 0); /* a dead worker's pin means nothing */
	/* a worker that died in its steal window: close it for it (released
	 * by the gen store; area_reusable sees that it moved) */
	if (seq & 1u)
		shmq__store_relaxed(&s->steal_seq, seq + 1);
	a.pool_off = p->h_off;
	a.slot = i;
	a.gen = shmq__load_relaxed(&s->gen) + 1; /* only we write gen */
	if (a.gen == 0)
		a.gen = 1;
	/* seq_cst: pairs with the loads of gen in victim_deque (the steal
	 * window's Dekker, see steal_window_open) and worker_init (acquire) */
	shmq__store_seq_cst(&s->gen, a.gen);
	if (fresh)
		worker_area_retire(p, old);
	rc = shmq_proc_spawn(p->r, pool_worker_entry.name, &a, sizeof(a), NULL, &p->procs[i]);
	if (rc) {
		p->procs[i] = NULL;
		return rc;
	}
	shmq__store_relaxed(&s->pid, shmq_proc_pid(p->procs[i])); /* statistics */
	return 0;
}

static void inject(shmq_pool *p, unsigned j, uint64_t nchunks)
{
	struct pool_hdr *h = p->h;

	/* release: the job's fields before a worker's exchange of inject */
	shmq__store_release(&h->jobs[j].inject, word_range(j, 0, nchunks));
	shmq__fetch_or_seq_cst(&h->pending[j / 64], 1ull << (j % 64));
	idle_wake(h, true, nchunks > 1 ? INT_MAX : 1);
}

/* After worker dead_id died: its chunks run again (or fail after
 * CHUNK_TRIES deaths), and every active job's range is injected anew, which
 * also covers the RANGE words lost with its deque. */
static void jobs_recover(shmq_pool *p, uint32_t dead_id)
{
	for (unsigned j = 0; j < SHMQ_POOL_MAX_JOBS; j++) {
		struct pool_job *job = pool_job(p, j);
		struct job_priv *jp = &p->jobs[j];
		uint64_t nchunks = shmq__load_relaxed(&job->nchunks); /* we wrote it */
		uint32_t *chunks;

		if (!jp->used || shmq__load_acquire(&job->done) != JOB_RUNNING)
			continue;
		chunks = shmq__region_ptr(p->r, shmq__load_relaxed(&job->chunks_off), nchunks * 4);
		if (!chunks)
			continue;
		for (uint64_t c = 0; dead_id && c < nchunks; c++) {
			uint32_t s = dead_id;

			if (shmq__load_acquire(&chunks[c]) != dead_id)
				continue;
			if (!jp->tries) {
				jp->tries = shmq__calloc(nchunks, 1);
				jp->ntries = jp->tries ? nchunks : 0;
			}
			if (jp->tries && ++jp->tries[c] >= CHUNK_TRIES) {
				if (shmq__cas_acq_rel(&chunks[c], &s, CHUNK_DONE)) {
					job_err_record(job, c * shmq__load_relaxed(&job->chunksize),
						       -EOWNERDEAD);
					job_chunk_done(job, nchunks);
				}
			} else {
				shmq__cas_acq_rel(&chunks[c], &s, CHUNK_PENDING);
			}
		}
		if (dead_id)
			jp->orphaned = true;
		jp->last_done = UINT64_MAX; /* the next settle looks */
		if (shmq__load_acquire(&job->done) == JOB_RUNNING && !shmq__load_relaxed(&job->canceled))
			inject(p, j, nchunks);
	}
}

/* A worker that dies between marking a chunk DONE and counting it
 * (chunk_run) leaves a job whose count stops one short: every chunk DONE,
 * and nobody left to finish the job.  For jobs that lost a worker, the
 * creator looks at the chunk states itself whenever the count stood still
 * since its last look, and finishes a job whose chunks are all DONE. */
static void jobs_settle(shmq_pool *p)
{
	for (unsigned j = 0; j < SHMQ_POOL_MAX_JOBS; j++) {
		struct pool_job *job = pool_job(p, j);
		struct job_priv *jp = &p->jobs[j];
		uint64_t nchunks = shmq__load_relaxed(&job->nchunks); /* we wrote it */
		uint32_t running = JOB_RUNNING;
		uint64_t counted;
		uint32_t *chunks;
		uint64_t c;

		if (!jp->used || !jp->orphaned || shmq__load_acquire(&job->done) != JOB_RUNNING)
			continue;
		/* relaxed: a progress hint; the chunk states below decide */
		counted = shmq__load_relaxed(&job->done_chunks);
		if (counted != jp->last_done) {
			jp->last_done = counted; /* still moving: look next time */
			continue;
		}
		chunks = shmq__region_ptr(p->r, shmq__load_relaxed(&job->chunks_off), nchunks * 4);
		if (!chunks)
			continue;
		/* acquire: pairs with chunk_run's acq_rel CAS to DONE, after
		 * which that chunk's results are visible to us */
		for (c = 0; c < nchunks && shmq__load_acquire(&chunks[c]) == CHUNK_DONE; c++)
			;
		if (c < nchunks)
			continue;
		/* seq_cst: as job_chunk_done's CAS (its sleepers' Dekker) */
		if (shmq__cas_seq_cst(&job->done, &running, JOB_DONE))
			shmq__wake_word(&job->done, &job->done_sleepers, INT_MAX);
	}
}

/* Replace dead workers.  Called with p->mu held. */
static void pool_supervise(shmq_pool *p)
{
	uint32_t st = shmq__load_relaxed(&p->h->state); /* only we write it */

	p->last_supervise = shmq_now_ns();
	if (st >= POOL_EXIT)
		return;
	for (unsigned i = 0; i < p->nworkers; i++) {
		struct pool_slot *s = &p->h->slots[i];
		uint32_t dead_id;
		int rc;

		if (p->procs[i] && shmq_proc_is_alive(p->procs[i]))
			continue;
		/* pairs with the worker's release store of id */
		dead_id = shmq__load_acquire(&s->id);
		if (p->procs[i]) {
			shmq_proc_close(p->procs[i]);
			p->procs[i] = NULL;
		}
		p->start_fails[i] = dead_id ? 0 : p->start_fails[i] + 1;
		if (p->start_fails[i] >= START_TRIES) {
			p->broken = -ECHILD; /* workers die before they start */
			continue;
		}
		rc = worker_start(p, i, true);
		if (rc && !p->broken)
			p->broken = rc;
		if (rc == 0)
			shmq__store_relaxed(&s->restarts, shmq__load_relaxed(&s->restarts) + 1);
		jobs_recover(p, dead_id);
	}
	jobs_settle(p);
}

static void pool_supervise_maybe(shmq_pool *p)
{
	pthread_mutex_lock(&p->mu);
	if (shmq_now_ns() - p->last_supervise >= SUPERVISE_EVERY_NS)
		pool_supervise(p);
	pthread_mutex_unlock(&p->mu);
}

/* Make sure no worker is between its check of job j and a chunk CAS, then
 * let j be reused.  Called with p->mu held. */
static void job_unpin(shmq_pool *p, unsigned j)
{
	struct pool_job *job = pool_job(p, j);

	/* seq_cst: Dekker with chunk_claim's store of claim and load of state */
	shmq__store_seq_cst(&job->state, JOB_RETIRING);
	for (unsigned i = 0; i < p->nworkers; i++) {
		while (shmq__load_seq_cst(&p->h->slots[i].claim) == j + 1) {
			if (!p->procs[i] || !shmq_proc_is_alive(p->procs[i]))
				break;
			sched_yield();
		}
	}
}

static void job_release(shmq_pool *p, unsigned j)
{
	struct job_priv *jp = &p->jobs[j];

	shmq__exchange_acq_rel(&pool_job(p, j)->inject, 0);
	shmq__store_release(&pool_job(p, j)->state, JOB_FREE); /* nothing pairs: workers ignore FREE */
	if (jp->alloc_size)
		arena_free(&p->arena, jp->alloc_off, jp->alloc_size);
	shmq__free(jp->tries, jp->ntries);
	memset(jp, 0, sizeof(*jp));
}

/* A cancelled job whose async was freed: reusable once no live worker runs
 * one of its chunks. */
static bool zombie_reap(shmq_pool *p, unsigned j)
{
	struct pool_job *job = pool_job(p, j);
	uint64_t nchunks = shmq__load_relaxed(&job->nchunks);
	uint32_t *chunks = shmq__region_ptr(p->r, shmq__load_relaxed(&job->chunks_off), nchunks * 4);

	job_unpin(p, j);
	if (shmq__load_acquire(&job->done) == JOB_RUNNING && chunks) {
		for (uint64_t c = 0; c < nchunks; c++) {
			uint32_t s = shmq__load_acquire(&chunks[c]); /* pairs with the claim CAS */

			if (s != CHUNK_PENDING && s != CHUNK_DONE && id_is_live_worker(p, s))
				return false;
		}
	}
	job_release(p, j);
	return true;
}

static void zombies_reap(shmq_pool *p)
{
	for (unsigned j = 0; j < SHMQ_POOL_MAX_JOBS; j++)
		if (p->jobs[j].used && p->jobs[j].zombie)
			zombie_reap(p, j);
}

static unsigned online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1u : n > (long)SHMQ_POOL_MAX_WORKERS ? SHMQ_POOL_MAX_WORKERS : (unsigned)n;
}

struct pool_init_arg {
	shmq_pool *p;
	const struct shmq_pool_opts *o;
};

/* Build the pool's shared state in mem, its directory object, before the
 * directory publishes it (shmq__obj_create). */
static int pool_obj_init(void *mem, uint64_t size, void *arg)
{
	const struct pool_init_arg *ia = arg;
	shmq_pool *p = ia->p;
	struct shmq_region_info info;
	struct pool_hdr *h = mem;
	uint64_t arena;
	int rc;

	if (size < pool_hdr_size(p->nworkers))
		return -EINVAL;
	p->h = h;
	p->h_off = shmq__region_off(p->r, mem);
	for (unsigned i = 0; i < p->nworkers; i++) {
		rc = worker_area_new(p, &h->slots[i].area_off);
		if (rc)
			return rc;
	}
	rc = shmq_region_info(p->r, &info);
	if (rc)
		return rc;
	arena = ia->o && ia->o->arena ? ia->o->arena : (info.size - info.used) / 2;
	arena = arena / SHMQ__CACHELINE * SHMQ__CACHELINE;
	if (arena < SHMQ__CACHELINE)
		return -ENOSPC;
	rc = shmq__region_alloc(p->r, arena, &mem);
	if (rc)
		return rc;
	h->arena_off = shmq__region_off(p->r, mem);
	h->arena_size = arena;
	rc = arena_free(&p->arena, h->arena_off, arena);
	if (rc)
		return rc;
	h->magic = POOL_MAGIC;
	h->version = POOL_VERSION;
	h->nworkers = p->nworkers;
	h->njobs = SHMQ_POOL_MAX_JOBS;
	h->deque_cap = POOL_DEQUE_CAP;
	h->frames = POOL_FRAMES;
	h->creator_id = shmq__region_self(p->r);
	for (unsigned j = 0; j < SHMQ_POOL_MAX_JOBS; j++)
		h->jobs[j].err = UINT64_MAX;
	/* all of it reaches the workers through their spawn, and readers
	 * (shmq__pool_describe) through the directory's release store */
	return 0;
}

/* The pool's header is a directory object named "pool.ID.N" (ID: our owner
 * id, N: the first number free), so that tools can find and describe it. */
static int pool_shared_init(shmq_pool *p, const struct shmq_pool_opts *o)
{
	struct pool_init_arg ia = { p, o };
	char name[SHMQ_OBJ_NAME_MAX + 1];
	int rc = -EEXIST;

	for (unsigned n = 0; rc == -EEXIST && n < POOL_NAME_TRIES; n++) {
		snprintf(name, sizeof(name), "pool.%u.%u", shmq__region_self(p->r), n);
		rc = shmq__obj_create(p->r, name, SHMQ__OBJ_POOL, pool_hdr_size(p->nworkers),
				      pool_obj_init, &ia, NULL);
	}
	return rc;
}

static void pool_handle_free(shmq_pool *p)
{
	for (unsigned j = 0; j < SHMQ_POOL_MAX_JOBS; j++)
		shmq__free(p->jobs[j].tries, p->jobs[j].ntries);
	shmq__free(p->arena.v, p->arena.cap * sizeof(*p->arena.v));
	worker_areas_free(p);
	task_table_free(&p->tt);
	shmq__free(p->procs, p->nworkers * sizeof(*p->procs));
	shmq__free(p->start_fails, p->nworkers * sizeof(*p->start_fails));
	pthread_mutex_destroy(&p->mu);
	shmq__free(p, sizeof(*p));
}

static void pool_kill_all(shmq_pool *p)
{
	for (unsigned i = 0; i < p->nworkers; i++) {
		if (!p->procs[i])
			continue;
		shmq_proc_kill(p->procs[i], SIGKILL);
		shmq_proc_join(p->procs[i], SHMQ_FOREVER);
		shmq_proc_close(p->procs[i]);
		p->procs[i] = NULL;
	}
}

SHMQ_API int shmq_pool_create(shmq_region *r, const struct shmq_pool_opts *o, shmq_pool **out)
{
	shmq_pool *p;
	int rc = 0;

	if (!r || !out)
		return -EINVAL;
	if (o && (o->reserved[0] || o->reserved[1] || o->reserved[2] || o->reserved[3] ||
		  o->workers > SHMQ_POOL_MAX_WORKERS))
		return -EINVAL;
	p = shmq__calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->r = r;
	p->nworkers = o && o->workers ? o->workers : online_cpus();
	p->chunksize = o ? o->chunksize : 0;
	pthread_mutex_init(&p->mu, NULL);
	p->procs = shmq__calloc(p->nworkers, sizeof(*p->procs));
	p->start_fails = shmq__calloc(p->nworkers, sizeof(*p->start_fails));
	if (!p->procs || !p->start_fails) {
		pool_handle_free(p);
		return -ENOMEM;
	}
	rc = pool_shared_init(p, o);
	for (unsigned i = 0; rc == 0 && i < p->nworkers; i++)
		rc = worker_start(p, i, false);
	if (rc) {
		if (p->h)
			shmq__store_seq_cst(&p->h->state, POOL_TERMINATE);
		pool_kill_all(p);
		pool_handle_free(p);
		return rc;
	}
	p->last_supervise = shmq_now_ns();
	*out = p;
	return 0;
}

SHMQ_API unsigned shmq_pool_workers(const shmq_pool *p)
{
	return p ? p->nworkers : 0;
}

SHMQ_API int shmq_pool_worker_stats(shmq_pool *p, unsigned i, struct shmq_pool_worker_stats *s)
{
	struct pool_slot *sl;

	if (!p || !s || i >= p->nworkers)
		return -EINVAL;
	sl = &p->h->slots[i];
	memset(s, 0, sizeof(*s));
	s->pid = shmq__load_relaxed(&sl->pid);     /* statistics: no ordering needed */
	s->tasks = shmq__load_relaxed(&sl->tasks);
	s->steals = shmq__load_relaxed(&sl->steals);
	s->restarts = shmq__load_relaxed(&sl->restarts);
	s->started = shmq__load_relaxed(&sl->id) != 0;
	return 0;
}

/* ---- submitting ---- */

struct submit {
	const char *task;
	const void *in;
	size_t in_size;
	void *out;
	size_t out_size;
	size_t n;
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

static uint64_t chunksize_for(const shmq_pool *p, uint64_t n)
{
	uint64_t cs = p->chunksize;

	if (cs == 0)
		cs = (n + 4ull * p->nworkers - 1) / (4ull * p->nworkers);
	if (cs == 0)
		cs = 1;
	if ((n + cs - 1) / cs > RANGE_MAX)
		cs = (n + RANGE_MAX - 1) / RANGE_MAX;
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

/* Lay out the job's arena block: [in copy][out copy][chunk states]. */
static int job_place(shmq_pool *p, unsigned j, const struct submit *s, uint64_t nchunks,
		     struct shmq_async *a)
{
	struct pool_job *job = pool_job(p, j);
	struct job_priv *jp = &p->jobs[j];
	uint64_t in_b = (uint64_t)s->n * s->in_size, out_b = (uint64_t)s->n * s->out_size;
	uint64_t in_off = 0, out_off = 0, need = 0, base;
	bool in_inplace = in_b == 0 || in_region(p->r, s->in, in_b, &in_off);
	bool out_inplace = out_b == 0 || in_region(p->r, s->out, out_b, &out_off);
	int rc;

	if (!in_inplace)
		need += SHMQ__ALIGN_UP(in_b, (uint64_t)SHMQ__CACHELINE);
	if (!out_inplace)
		need += SHMQ__ALIGN_UP(out_b, (uint64_t)SHMQ__CACHELINE);
	need += SHMQ__ALIGN_UP(nchunks * 4, (uint64_t)SHMQ__CACHELINE);
	rc = arena_alloc(&p->arena, need, &base);
	if (rc)
		return rc;
	jp->alloc_off = base;
	jp->alloc_size = need;
	if (!in_inplace) {
		in_off = base;
		memcpy(p->r->base + in_off, s->in, in_b);
		base += SHMQ__ALIGN_UP(in_b, (uint64_t)SHMQ__CACHELINE);
	}
	if (!out_inplace) {
		out_off = base;
		a->out_src = p->r->base + out_off;
		base += SHMQ__ALIGN_UP(out_b, (uint64_t)SHMQ__CACHELINE);
	}
	/* no worker touches this memory: the job is not ACTIVE (job_unpin) */
	memset(p->r->base + base, 0, nchunks * 4);
	shmq__store_relaxed(&job->in_off, in_off); /* published by the seq_cst store of state */
	shmq__store_relaxed(&job->out_off, out_off);
	shmq__store_relaxed(&job->chunks_off, base);
	return 0;
}

static int job_submit(shmq_pool *p, const struct submit *s, shmq_async **out)
{
	struct shmq_async *a;
	struct pool_job *job;
	uint64_t cs, nchunks;
	unsigned j;
	int idx, rc;

	/* only we write state */
	if (shmq__load_relaxed(&p->h->state) != POOL_RUNNING)
		return -EPIPE;
	/* workers that died since our last call are replaced before new work
	 * arrives (see pool.h: replacement happens in the creator's calls) */
	if (shmq_now_ns() - p->last_supervise >= SUPERVISE_EVERY_NS)
		pool_supervise(p);
	if (p->broken)
		return p->broken;
	idx = task_lookup(&p->tt, s->task);
	if (idx < 0)
		return idx;
	zombies_reap(p);
	rc = job_slot_get(p, &j);
	if (rc)
		return rc;
	a = shmq__calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	cs = chunksize_for(p, s->n);
	nchunks = (s->n + cs - 1) / cs;
	rc = job_place(p, j, s, nchunks, a);
	if (rc) {
		shmq__free(a, sizeof(*a));
		return rc;
	}
	p->jobs[j].used = true;
	job = pool_job(p, j);
	/* relaxed: published by the seq_cst store of state below */
	shmq__store_relaxed(&job->task_idx, (uint32_t)idx);
	shmq__store_relaxed(&job->task_hash, p->tt.hash[idx]);
	for (unsigned i = 0; i < sizeof(job->task); i++)
		shmq__store_relaxed(&job->task[i], i < strlen(s->task) ? s->task[i] : 0);
	shmq__store_relaxed(&job->in_size, s->in_size);
	shmq__store_relaxed(&job->out_size, s->out_size);
	shmq__store_relaxed(&job->n, s->n);
	shmq__store_relaxed(&job->chunksize, cs);
	shmq__store_relaxed(&job->nchunks, nchunks);
	shmq__store_relaxed(&job->canceled, 0);
	shmq__store_relaxed(&job->done_chunks, 0);
	shmq__store_relaxed(&job->err, UINT64_MAX);
	shmq__store_relaxed(&job->done, JOB_RUNNING);
	/* seq_cst: publishes the job to chunk_claim's seq_cst load */
	shmq__store_seq_cst(&job->state, JOB_ACTIVE);
	inject(p, j, nchunks);
	a->p = p;
	a->job = j;
	a->out = s->out;
	a->out_bytes = (uint64_t)s->n * s->out_size;
	*out = a;
	return 0;
}

/* A map of no elements: complete at once, once the task is known. */
static int async_empty(shmq_pool *p, const struct submit *s, shmq_async **out)
{
	struct shmq_async *a;
	int idx;

	if (shmq__load_relaxed(&p->h->state) != POOL_RUNNING) /* only we write it */
		return -EPIPE;
	idx = task_lookup(&p->tt, s->task);
	if (idx < 0)
		return idx;
	a = shmq__calloc(1, sizeof(*a));
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
	struct submit s = { task, in, in_size, out, out_size, n };

	return async_submit(p, &s, out_async);
}

SHMQ_API int shmq_pool_apply_async(shmq_pool *p, const char *task, const void *in, size_t in_size,
				   void *out, size_t out_size, shmq_async **out_async)
{
	struct submit s = { task, in, in_size, out, out_size, 1 };

	return async_submit(p, &s, out_async);
}

/* ---- completion ---- */

/* Copy the results back, release the job.  Called once, with p->mu held. */
static void async_finish(shmq_async *a, uint32_t done)
{
	shmq_pool *p = a->p;
	struct pool_job *job = pool_job(p, a->job);
	uint64_t err = shmq__load_acquire(&job->err); /* ordered after done's acquire anyway */

	if (done == JOB_DONE) {
		a->wait_rc = 0;
		a->status = err == UINT64_MAX ? 0 : (int)(int32_t)(uint32_t)err;
		if (a->out_src && a->out_bytes)
			memcpy(a->out, a->out_src, a->out_bytes);
	} else {
		a->wait_rc = -ECANCELED;
		a->status = -ECANCELED;
	}
	job_unpin(p, a->job);
	job_release(p, a->job);
	a->finished = true;
}

static bool async_check(shmq_async *a)
{
	/* pairs with the last chunk's seq_cst CAS of done (job_chunk_done) and
	 * terminate's store */
	uint32_t done = shmq__load_acquire(&pool_job(a->p, a->job)->done);

	if (done == JOB_RUNNING)
		return false;
	pthread_mutex_lock(&a->p->mu);
	if (!a->finished)
		async_finish(a, done);
	pthread_mutex_unlock(&a->p->mu);
	return true;
}

/*
 * The creator's wait for a job: a short spin without yielding (a worker that
 * was awake finishes a small job within it), then a futex sleep of at most
 * WAIT_SLICE_NS, with the sleeper count of core/wait_int.h.  Not the generic
 * spin-then-yield of shmq__wait_word: on a 2-core machine a waiter that spins
 * and yields takes the core the worker it waits for needs.
 * 0: done changed; -EINTR: the slice ended; -ETIMEDOUT.
 */
static int job_done_wait(struct pool_job *job, int64_t deadline)
{
	int64_t now = shmq_now_ns(), until = now + CALLER_SPIN_NS;
	int rc;

	for (unsigned i = 1;; i++) {
		/* pairs with job_chunk_done's seq_cst CAS of done */
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
	/* Dekker with job_chunk_done: our increment and this load are seq_cst,
	 * as are its CAS of done and its load of the sleepers */
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
		if (a->finished || async_check(a))
			return a->wait_rc;
		if (a->p->broken)
			return a->p->broken;
		if (deadline != SHMQ__NO_DEADLINE && shmq_now_ns() >= deadline) {
			pool_supervise_maybe(a->p);
			return -ETIMEDOUT;
		}
		rc = job_done_wait(job, deadline);
		if (rc == -EINTR)
			pool_supervise_maybe(a->p);
	}
}

SHMQ_API int shmq_async_wait(shmq_async *a, int64_t timeout_ns)
{
	int rc;

	if (!a)
		return -EINVAL;
	if (timeout_ns == SHMQ_NOWAIT) {
		if (a->finished || async_check(a))
			return a->wait_rc;
		pool_supervise_maybe(a->p);
		return a->p->broken ? a->p->broken : -EAGAIN;
	}
	rc = async_wait_until(a, shmq__deadline(timeout_ns));
	return rc;
}

SHMQ_API bool shmq_async_ready(shmq_async *a)
{
	if (!a)
		return false;
	if (a->finished || async_check(a))
		return true;
	pool_supervise_maybe(a->p);
	return false;
}

SHMQ_API int shmq_async_get(shmq_async *a, int64_t timeout_ns)
{
	int rc = shmq_async_wait(a, timeout_ns);

	return rc ? rc : a->status;
}

SHMQ_API void shmq_async_free(shmq_async *a)
{
	shmq_pool *p;

	if (!a)
		return;
	p = a->p;
	pthread_mutex_lock(&p->mu);
	if (!a->finished) {
		/* seq_cst: seen by chunk_claim's check under the pin */
		shmq__store_seq_cst(&pool_job(p, a->job)->canceled, 1);
		p->jobs[a->job].zombie = true;
		zombie_reap(p, a->job);
	}
	pthread_mutex_unlock(&p->mu);
	shmq__free(a, sizeof(*a));
}

/* The largest element count of a batch that fits the arena at once. */
static size_t batch_fit(shmq_pool *p, const struct submit *s)
{
	uint64_t best = 0, per = s->in_size + s->out_size + 4;

	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i < p->arena.n; i++)
		if (p->arena.v[i].size > best)
			best = p->arena.v[i].size;
	pthread_mutex_unlock(&p->mu);
	best = best > 4 * SHMQ__CACHELINE ? best - 4 * SHMQ__CACHELINE : 0;
	return per ? (size_t)(best / per) : s->n;
}

SHMQ_API int shmq_pool_map(shmq_pool *p, const char *task, const void *in, size_t in_size,
			   void *out, size_t out_size, size_t n, int64_t timeout_ns)
{
	struct submit s = { task, in, in_size, out, out_size, n };
	int64_t deadline = shmq__deadline(timeout_ns);
	size_t done = 0, batch = n;
	int first = 0, rc;

	rc = submit_check(p, &s);
	if (rc)
		return rc;
	/* A map of any task waits for it: SHMQ_NOWAIT would block, so it
	 * submits nothing and says so (shmq_pool_map_async is the way not to wait). */
	if (timeout_ns == SHMQ_NOWAIT && n > 0)
		return -EAGAIN;
	while (done < n) {
		struct submit b = s;
		shmq_async *a;

		b.n = n - done < batch ? n - done : batch;
		b.in = in ? (const uint8_t *)in + done * in_size : NULL;
		b.out = out ? (uint8_t *)out + done * out_size : NULL;
		rc = async_submit(p, &b, &a);
		if (rc == -ENOSPC && b.n > 1) {
			size_t fit = batch_fit(p, &b);

			batch = fit && fit < b.n ? fit : b.n / 2;
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
	if (n == 0) {
		pthread_mutex_lock(&p->mu);
		rc = task_lookup(&p->tt, task);
		pthread_mutex_unlock(&p->mu);
		return rc < 0 ? rc : 0;
	}
	return first;
}

/* ---- lifecycle ---- */

SHMQ_API int shmq_pool_close(shmq_pool *p)
{
	if (!p)
		return -EINVAL;
	pthread_mutex_lock(&p->mu);
	if (shmq__load_relaxed(&p->h->state) == POOL_RUNNING) /* only we write it */
		shmq__store_seq_cst(&p->h->state, POOL_CLOSING);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

static bool jobs_all_done(shmq_pool *p)
{
	for (unsigned j = 0; j < SHMQ_POOL_MAX_JOBS; j++)
		/* pairs with job_chunk_done's seq_cst CAS */
		if (p->jobs[j].used && !p->jobs[j].zombie &&
		    shmq__load_acquire(&pool_job(p, j)->done) == JOB_RUNNING)
			return false;
	return true;
}

/* Wait (supervising) until every job that someone may still wait for is done. */
static int join_jobs(shmq_pool *p, int64_t deadline)
{
	for (;;) {
		pthread_mutex_lock(&p->mu);
		if (shmq_now_ns() - p->last_supervise >= WAIT_SLICE_NS)
			pool_supervise(p);
		zombies_reap(p);
		bool all = jobs_all_done(p) || p->broken;
		pthread_mutex_unlock(&p->mu);
		if (all)
			return 0;
		if (deadline != SHMQ__NO_DEADLINE && shmq_now_ns() >= deadline)
			return -ETIMEDOUT;
		usleep(1000);
	}
}

/* Join until deadline: 0, or -ETIMEDOUT once it has passed. */
static int pool_join(shmq_pool *p, int64_t deadline)
{
	uint32_t st = shmq__load_relaxed(&p->h->state); /* only we write it */
	int rc = 0;

	if (st == POOL_RUNNING)
		return -EINVAL;
	if (st == POOL_CLOSING) {
		rc = join_jobs(p, deadline);
		if (rc)
			return rc;
		pthread_mutex_lock(&p->mu);
		shmq__store_seq_cst(&p->h->state, POOL_EXIT);
		idle_wake(p->h, true, INT_MAX);
		pthread_mutex_unlock(&p->mu);
	}
	pthread_mutex_lock(&p->mu);
	for (unsigned i = 0; i < p->nworkers; i++) {
		int64_t left = shmq__remaining(deadline);

		if (!p->procs[i])
			continue;
		rc = shmq_proc_join(p->procs[i], left == INT64_MAX ? SHMQ_FOREVER : left);
		if (rc == -EAGAIN)
			rc = -ETIMEDOUT;
		if (rc && rc != -ECHILD)
			break;
		shmq_proc_close(p->procs[i]);
		p->procs[i] = NULL;
		rc = 0;
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

SHMQ_API int shmq_pool_join(shmq_pool *p, int64_t timeout_ns)
{
	int rc;

	if (!p)
		return -EINVAL;
	rc = pool_join(p, shmq__deadline(timeout_ns));
	/* SHMQ_NOWAIT never blocks; where it would have, it says -EAGAIN */
	return rc == -ETIMEDOUT && timeout_ns == SHMQ_NOWAIT ? -EAGAIN : rc;
}

SHMQ_API int shmq_pool_terminate(shmq_pool *p)
{
	if (!p)
		return -EINVAL;
	pthread_mutex_lock(&p->mu);
	shmq__store_seq_cst(&p->h->state, POOL_TERMINATE);
	idle_wake(p->h, true, INT_MAX);
	pool_kill_all(p);
	for (unsigned j = 0; j < SHMQ_POOL_MAX_JOBS; j++) {
		struct pool_job *job = pool_job(p, j);
		uint32_t running = JOB_RUNNING;

		if (!p->jobs[j].used)
			continue;
		/* seq_cst: the wake protocol of core/wait_int.h with the waiters */
		if (shmq__cas_seq_cst(&job->done, &running, JOB_CANCELED))
			shmq__wake_word(&job->done, &job->done_sleepers, INT_MAX);
	}
	zombies_reap(p);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

SHMQ_API void shmq_pool_free(shmq_pool *p)
{
	bool alive = false;

	if (!p)
		return;
	for (unsigned i = 0; i < p->nworkers; i++)
		alive |= p->procs[i] != NULL;
	if (alive)
		shmq_pool_terminate(p);
	pool_handle_free(p);
}

/* ---- introspection (shmq stat) ---- */

#define DESCRIBE_CHUNK_BUDGET (1u << 20) /* chunk words read per look */
#define DESCRIBE_WORKER_KEYS  6u

struct slot_look {
	int32_t pid;
	uint32_t id, restarts;
	bool alive;
	uint64_t tasks, steals, area_off;
};

static const char *pool_state_name(uint32_t st)
{
	switch (st) {
	case POOL_RUNNING: return "running";
	case POOL_CLOSING: return "closing";
	case POOL_EXIT: return "exited";
	case POOL_TERMINATE: return "terminated";
	default: return "corrupt";
	}
}

/* Is the worker of a slot alive?  Its owner id once it attached, else the
 * pid its creator started (still starting, or dead before attaching). */
static bool look_alive(shmq_region *r, const struct slot_look *l, struct shmq__obj_stat *st)
{
	int alive;

	if (l->id) {
		alive = shmq__region_id_alive(r, l->id);
		if (alive < 0)
			st->status = -EBADMSG;
		return alive == 1;
	}
	return l->pid > 0 && shmq__pid_alive(l->pid, 0) == 1;
}

/* Words waiting on the deque of an area (a snapshot), or -1 if unreadable. */
static int64_t look_queued(shmq_region *r, uint64_t area_off, struct shmq__obj_stat *st)
{
	const struct shmq__deque_ctl *c = shmq__region_ptr(r, area_off, pool_area_size());
	int64_t n;

	if (!c)
		return -1;
	if (shmq__load_relaxed(&c->magic) != SHMQ__DEQUE_MAGIC ||
	    shmq__load_relaxed(&c->capacity) != POOL_DEQUE_CAP) {
		st->status = -EBADMSG;
		return -1;
	}
	n = (int64_t)(shmq__load_relaxed(&c->bottom) - shmq__load_relaxed(&c->top));
	/* read apart, the two may disagree a little: clamp, flag only nonsense */
	if (n < -(int64_t)POOL_DEQUE_CAP || n > 2 * (int64_t)POOL_DEQUE_CAP) {
		st->status = -EBADMSG;
		return -1;
	}
	return n < 0 ? 0 : n > (int64_t)POOL_DEQUE_CAP ? POOL_DEQUE_CAP : n;
}

/* Elements of one active job waiting (chunk not claimed) and running
 * (claimed, not done), from its chunk words; *budget bounds the words read,
 * chunks past it count as waiting. */
static void look_job(shmq_region *r, const struct pool_job *job, uint64_t *queued,
		     uint64_t *running, uint64_t *budget, struct shmq__obj_stat *st)
{
	uint64_t n = shmq__load_relaxed(&job->n), cs = shmq__load_relaxed(&job->chunksize);
	uint64_t nchunks = shmq__load_relaxed(&job->nchunks);
	const uint32_t *chunks;

	if (n == 0 || cs == 0 || nchunks == 0 || nchunks > RANGE_MAX || (n - 1) / cs + 1 != nchunks) {
		st->status = -EBADMSG;
		return;
	}
	chunks = shmq__region_ptr(r, shmq__load_relaxed(&job->chunks_off), nchunks * 4);
	if (!chunks || ((uintptr_t)chunks & 3u)) {
		st->status = -EBADMSG;
		return;
	}
	for (uint64_t c = 0; c < nchunks; c++) {
		uint64_t elems = c + 1 < nchunks ? cs : n - c * cs;
		uint32_t w = CHUNK_PENDING;

		if (*budget) {
			(*budget)--;
			w = shmq__load_relaxed(&chunks[c]);
		}
		if (w == CHUNK_PENDING)
			*queued += elems;
		else if (w != CHUNK_DONE)
			*running += elems;
	}
}

void shmq__pool_describe(shmq_region *r, const void *mem, uint64_t size, struct shmq__obj_stat *st)
{
	const struct pool_hdr *h = mem;
	struct slot_look looks[SHMQ_POOL_MAX_WORKERS];
	uint64_t tasks = 0, steals = 0, restarts = 0, queued = 0, running = 0;
	uint64_t budget = DESCRIBE_CHUNK_BUDGET;
	unsigned nw, alive = 0, jobs = 0, listed;
	uint32_t state;
	char key[SHMQ__STAT_KEY_MAX];

	/* a snapshot: every load is relaxed, nothing is ordered against it;
	 * reads only (the mapping may be read-only), never waits */
	if (size < sizeof(*h) || shmq__load_relaxed(&h->magic) != POOL_MAGIC ||
	    shmq__load_relaxed(&h->version) != POOL_VERSION) {
		st->status = -EBADMSG;
		return;
	}
	nw = shmq__load_relaxed(&h->nworkers);
	if (nw == 0 || nw > SHMQ_POOL_MAX_WORKERS || pool_hdr_size(nw) > size) {
		st->status = -EBADMSG;
		return;
	}
	for (unsigned i = 0; i < nw; i++) {
		const struct pool_slot *s = &h->slots[i];

		looks[i].pid = shmq__load_relaxed(&s->pid);
		looks[i].id = shmq__load_relaxed(&s->id);
		looks[i].restarts = shmq__load_relaxed(&s->restarts);
		looks[i].tasks = shmq__load_relaxed(&s->tasks);
		looks[i].steals = shmq__load_relaxed(&s->steals);
		looks[i].area_off = shmq__load_relaxed(&s->area_off);
		looks[i].alive = look_alive(r, &looks[i], st);
		alive += looks[i].alive;
		tasks += looks[i].tasks;
		steals += looks[i].steals;
		restarts += looks[i].restarts;
	}
	for (unsigned j = 0; j < SHMQ_POOL_MAX_JOBS; j++) {
		const struct pool_job *job = &h->jobs[j];

		if (shmq__load_relaxed(&job->state) != JOB_ACTIVE ||
		    shmq__load_relaxed(&job->done) != JOB_RUNNING ||
		    shmq__load_relaxed(&job->canceled))
			continue;
		jobs++;
		look_job(r, job, &queued, &running, &budget, st);
	}
	state = shmq__load_relaxed(&h->state);
	if (state > POOL_TERMINATE)
		st->status = -EBADMSG;
	shmq__stat_str(st, "state", pool_state_name(state));
	shmq__stat_bool(st, "closed", state != POOL_RUNNING);
	shmq__stat_u64(st, "workers", nw);
	shmq__stat_u64(st, "workers_alive", alive);
	shmq__stat_u64(st, "jobs", jobs);
	shmq__stat_u64(st, "tasks_queued", queued);
	shmq__stat_u64(st, "tasks_running", running);
	shmq__stat_u64(st, "tasks", tasks);
	shmq__stat_u64(st, "steals", steals);
	shmq__stat_u64(st, "restarts", restarts);
	shmq__stat_u64(st, "sleepers", shmq__load_relaxed(&h->idle_sleepers));
	shmq__stat_owner(st, r, "creator", shmq__load_relaxed(&h->creator_id));
	/* per worker, as many as the fact list holds */
	listed = st->n + 1 < SHMQ__STAT_KEYS ? (SHMQ__STAT_KEYS - st->n - 1) / DESCRIBE_WORKER_KEYS : 0;
	listed = listed < nw ? listed : nw;
	shmq__stat_u64(st, "workers_listed", listed);
	for (unsigned i = 0; i < listed; i++) {
		int64_t q = look_queued(r, looks[i].area_off, st);

		snprintf(key, sizeof(key), "w%u_pid", i);
		shmq__stat_i64(st, key, looks[i].pid);
		snprintf(key, sizeof(key), "w%u_alive", i);
		shmq__stat_bool(st, key, looks[i].alive);
		snprintf(key, sizeof(key), "w%u_tasks", i);
		shmq__stat_u64(st, key, looks[i].tasks);
		snprintf(key, sizeof(key), "w%u_steals", i);
		shmq__stat_u64(st, key, looks[i].steals);
		snprintf(key, sizeof(key), "w%u_restarts", i);
		shmq__stat_u64(st, key, looks[i].restarts);
		snprintf(key, sizeof(key), "w%u_queued", i);
		shmq__stat_i64(st, key, q);
	}
}
