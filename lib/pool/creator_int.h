/* SPDX-License-Identifier: MIT */
/*
 * Layer 5: the creator's side of the pool, shared by supervise.c (worker
 * areas and starts, recovery, settle, zombie jobs), submit.c (submission and
 * completion) and pool.c (the lifecycle): the handle, its private per-job
 * bookkeeping, and the calls between those files.  Everything here is
 * process-private; the shared layout is pool/pool_layout_int.h.
 */
#ifndef SHMQ_POOL_CREATOR_INT_H
#define SHMQ_POOL_CREATOR_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <shmq.h>

#include "core/atomic_int.h"
#include "pool/extent_int.h"
#include "pool/pool_layout_int.h"
#include "core/fork_int.h"
#include "pool/task_int.h"

#define WAIT_SLICE_NS    (20 * 1000 * 1000)   /* callers: supervise this often */
#define SUPERVISE_EVERY_NS (WAIT_SLICE_NS / 2) /* at most this often outside waits */
#define CALLER_SPIN_NS   1000                 /* callers: spin before sleeping */
#define CHUNK_TRIES      3u                   /* deaths a chunk survives */
#define START_TRIES      3u                   /* failed worker starts in a row */
#define SPAWN_TRIES      50u                  /* replacements refused for want of a resource, in a row */
#define POOL_NAME_TRIES  4096u                /* pools of one creator in a region */
#define CLAIM_RELAX      32u                  /* unpin: pauses before the first system call */
#define CLAIM_SPIN       64u                  /* unpin: yields before it looks at the clock */
#define CLAIM_STUCK_NS   (2ll * 1000 * 1000 * 1000) /* unpin: a running worker's pin this old is forged */

struct job_priv {
	bool used;
	bool zombie;       /* its async was freed before completion */
	uint64_t alloc_off, alloc_size;
	/* the job's geometry as we submitted it: the region's copy is
	 * writable by anyone attached, so the creator never reads it back */
	uint64_t chunks_off, nchunks, chunksize;
	uint64_t status_off; /* int32_t per element (imap), or 0 */
	uint64_t n_elems;
	/* the results' staging area in the arena (0: none, out is written in
	 * place), out_size bytes per element */
	uint64_t out_stage;
	uint64_t out_size;
	bool lost;         /* a pin never cleared: the slot is never reused */
	bool blocking;     /* a batch of shmq_pool_map, whose caller waits for it
			    * and gives its arena block back itself */
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
	pid_t pid; /* the process that made the handle (core/fork_int.h) */
	struct pool_hdr *h;
	uint64_t h_off;
	unsigned nworkers;
	size_t chunksize;
	pthread_mutex_t mu;
	struct shmq_async *spare; /* the last handle freed, kept for the next job (mu) */
	struct shmq_async *live;  /* the handles given out and not freed (mu) */
	shmq_proc **procs;
	uint64_t *area_off;  /* per slot: its area, never read back from the region */
	uint32_t *start_fails; /* per slot: workers in a row that died before they started */
	uint32_t *spawn_fails; /* per slot: replacements in a row the system refused */
	int broken;          /* a worker cannot be started: the error (written
			      * under mu, through pool_broken_set) */
	uint32_t state;      /* POOL_*, the truth (mu): h->state is the workers'
			      * copy, and anyone attached can write it */
	char init[SHMQ_OBJ_NAME_MAX + 1]; /* opts.initializer, or "" */
	uint64_t max_tasks;  /* opts.max_tasks_per_worker */
	bool init_failed;    /* a worker's initializer failed: no more restarts */
	struct shmq__extents arena; /* free space of the arena (pool/extent_int.h) */
	uint64_t arena_off, arena_size; /* the arena itself (0 until it is made) */
	/* r's uuid (0 if unreadable) and our owner id in r, read at create:
	 * what the pool leaves is kept under them (pool.c, pool_leftover),
	 * also when r was closed before the pool is freed */
	bool uuid_ok;
	uint8_t uuid[16];
	uint32_t owner;
	struct shmq__registry_snap tt;
	struct job_priv jobs[SHMQ_POOL_MAX_JOBS];
	unsigned nzombies;   /* jobs[] with zombie set: submit skips the scan at 0 */
	unsigned norphaned;  /* jobs[] with orphaned set: jobs_settle skips the scan at 0 */
	uint64_t released;   /* jobs given back (job_release): arena space may
			      * be free again (mu) */
	uint32_t looks;      /* looks for dead workers (workers_all_running) */
	unsigned late_looks; /* of them, full looks that found a worker gone
			      * whose words said running (pool/pool_int.h) */
	bool no_life;        /* a life lock could not be set up: looks poll */
	int64_t last_supervise;
	struct retired_area *retired;
	size_t nretired, cap_retired;
};

struct shmq_async {
	shmq_pool *p;       /* NULL once the pool was freed (shmq__pool_asyncs_orphan) */
	struct shmq_async *live_prev, *live_next; /* in p->live */
	unsigned job;
	void *out;
	uint64_t out_bytes;
	uint64_t n;         /* elements */
	uint8_t *out_src;   /* the arena copy to copy back, or NULL */
	int32_t *st_out;    /* imap: where the per-element statuses go, or NULL */
	const int32_t *st_src; /* ... from the arena */
	bool woke;          /* its submission woke a sleeping worker: no caller spin */
	bool finished;
	int wait_rc;        /* 0, or -ECANCELED / the pool's error */
	int status;
};

/* p->broken for a waiter that does not hold p->mu.  Relaxed: an error code
 * that publishes nothing (whoever acts on more takes mu); pairs with
 * pool_broken_set's relaxed store, which supervision makes under mu. */
static inline int pool_broken(const shmq_pool *p)
{
	return shmq__load_relaxed(&p->broken);
}

/* Set p->broken; with p->mu held.  Relaxed: pairs with pool_broken. */
static inline void pool_broken_set(shmq_pool *p, int err)
{
	shmq__store_relaxed(&p->broken, err);
}

/* A task's status as the creator returns it: 0 or a negative errno
 * (-4095..-1) as it is, anything else (a task's positive status, or a word
 * the region forged) as -EPROTO. */
static inline int shmq__pool_status(int32_t st)
{
	return st <= 0 && st >= -4095 ? st : -EPROTO;
}

/* shmq_pool_free: every handle still given out outlives the pool, finished
 * (with its results if its job had completed, else -ECANCELED) and with no
 * pool (a->p NULL), so that the async calls and shmq_iter_free need nothing
 * of the freed handle.  After join or terminate (no worker left); called
 * with p->mu held. */
void shmq__pool_asyncs_orphan(shmq_pool *p);

static inline struct pool_job *pool_job(shmq_pool *p, unsigned j)
{
	return &p->h->jobs[j];
}

/* supervise.c; called with p->mu held (or before the handle is shared, in
 * create), but for shmq__pool_supervise_maybe, which takes it. */

/* A new worker area (deque and frames) in the region: its offset in *off. */
int shmq__pool_worker_area_new(shmq_pool *p, uint64_t *off);
/* Format the area at off anew (zeroed, an empty deque), for an area no
 * live worker or thief touches any more: 0, or -EBADMSG off out of the
 * region. */
int shmq__pool_worker_area_reset(shmq_pool *p, uint64_t off);
/* Free the bookkeeping of retired areas. */
void shmq__pool_worker_areas_free(shmq_pool *p);
/* Give slot i another area (when fresh: the old one is retired) and a new
 * process.  The slot's previous process, if any, has exited. */
int shmq__pool_worker_start(shmq_pool *p, unsigned i, bool fresh);
/* Publish the whole range of job j to the workers (Protocol INJECT).  True
 * when a worker was asleep and had to be woken (a futex wake was made). */
bool shmq__pool_inject(shmq_pool *p, unsigned j, uint64_t nchunks);
/* Replace dead workers, recover and settle their jobs. */
void shmq__pool_supervise(shmq_pool *p);
/* shmq__pool_supervise if the last one is SUPERVISE_EVERY_NS old; takes p->mu. */
void shmq__pool_supervise_maybe(shmq_pool *p);
/* Wait until no worker is pinned on job j (Protocol CHUNK_PIN): 0;
 * -ETIMEDOUT when deadline passed first; -EAGAIN when the pinning worker is
 * stalled (stopped, traced: its pin is real, look again later); -EBADMSG
 * when a running worker's pin outlasted CLAIM_STUCK_NS (a forged claim:
 * never reuse the slot). */
int shmq__pool_job_unpin(shmq_pool *p, unsigned j, int64_t deadline);
/* Free job slot j and its arena block; after shmq__pool_job_unpin. */
void shmq__pool_job_release(shmq_pool *p, unsigned j);
/* Release cancelled job j once no live worker runs a chunk of it; tried
 * until deadline. */
bool shmq__pool_zombie_reap(shmq_pool *p, unsigned j, int64_t deadline);
void shmq__pool_zombies_reap(shmq_pool *p, int64_t deadline);

/* submit.c, for imap.c: submit a map that keeps each element's status
 * (st_out receives them at completion), and the completion steps. */
int shmq__pool_submit_statuses(shmq_pool *p, const char *task, const void *in, size_t in_size,
			       void *out, size_t out_size, size_t n, int32_t *st_out,
			       shmq_async **out_async);
/* Finished (a->wait_rc says how)?  Never waits longer than deadline. */
bool shmq__pool_async_check(shmq_async *a, int64_t deadline);

#endif /* SHMQ_POOL_CREATOR_INT_H */
