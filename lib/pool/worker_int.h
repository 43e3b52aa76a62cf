/* SPDX-License-Identifier: MIT */
/*
 * Layer 5: the worker process of the pool, shared by worker.c (its loop,
 * stealing, fork-join frames) and job.c (the chunk protocol it runs).  The
 * hot steps that cross the two files are inline here: a task's run with its
 * implicit sync (task_exec) and the split of a RANGE word (range_run).
 */
#ifndef SHMQ_POOL_WORKER_INT_H
#define SHMQ_POOL_WORKER_INT_H

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#include <shmq.h>

#include "core/atomic_int.h"
#include "core/compiler_int.h"
#include "core/fork_int.h"
#include "core/region_int.h"
#include "ring/deque_int.h"
#include "pool/job_int.h"
#include "pool/pool_layout_int.h"
#include "pool/task_int.h"

struct victim {
	uint32_t gen;  /* the slot generation the view belongs to; 0: none */
	struct shmq__deque dq;
};

struct frame_priv {
	void *out;
	shmq_task_fn fn;
	uint32_t tag;
	uint32_t in_size;
	uint32_t out_size;
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
	uint64_t tasks_quota; /* retire once tasks reaches it (max_tasks_per_worker); 0: never */
	struct victim *victims;
	struct shmq__registry_snap tt;
	const char *cache_name; /* spawn's one-entry name cache */
	int cache_idx;
	uint32_t cache_ver; /* tt.version the cache belongs to */
	shmq_task_fn cache_fn;
	/* per frame, private: where the result goes and how to run it */
	struct frame_priv *fp;
	/* the steal window (cold: idle and stealing paths only) */
	uint32_t steal_seq; /* our copy of slot->steal_seq */
	bool in_window;     /* steal_seq is odd */
	int64_t spin_ns;    /* the next idle spin's length, adapted (worker_idle) */
	uint32_t cpu;       /* our copy of slot->cpu (Protocol PLACE) */
	/* who runs the tasks: spawn and sync only from them (worker_here) */
	pid_t pid;
	pthread_t thread;
	pid_t parent;      /* the creator, our parent; 0: not our parent (worker_creator_alive) */
};

/* Sync frames above base (worker.c): 0 or the earliest spawn's error. */
int shmq__pool_frames_sync(struct worker *w, unsigned base);

/* Claim, run and complete chunk c of job j (job.c, Protocols CHUNK_PIN and
 * CHUNK_STATE). */
void shmq__pool_chunk_run(struct worker *w, unsigned j, uint64_t c);

/* Publish the private task count (relaxed: statistics only, read relaxed by
 * shmq_pool_worker_stats and shmq__pool_describe).  Done when a chunk ends,
 * every 256 tasks and before idling, not per task. */
static inline void worker_count_flush(struct worker *w)
{
	shmq__store_relaxed(&w->slot->tasks, w->tasks);
}

static inline void worker_count_task(struct worker *w)
{
	if ((++w->tasks & 255) == 0)
		worker_count_flush(w);
}

/* Called when a task or the initializer returns.  A child that it made
 * with fork() and that returned instead of calling _exit() is no worker:
 * the deque, the frames and the chunk are its parent's, which runs on.  It
 * ends here, touching nothing of the pool's, as the worker's entry would
 * end it (shmq_dispatch). */
static inline void worker_forked_check(const struct worker *w)
{
	if (SHMQ__UNLIKELY(shmq__foreign(w->pid)))
		_exit(POOL_EXIT_FORKED);
}

/* Run one task with an implicit sync of whatever it left unsynced. */
static inline __attribute__((always_inline)) int task_exec(struct worker *w, shmq_task_fn fn, const void *in, void *out)
{
	unsigned base = w->sp;
	int st, e;

	w->depth++;
	st = fn(in, out);
	worker_forked_check(w);
	if (SHMQ__UNLIKELY(w->sp > base)) {
		e = shmq__pool_frames_sync(w, base);
		if (!st)
			st = e;
	}
	w->depth--;
	worker_count_task(w);
	return st;
}

/* We woke a peer from its idle sleep.  The kernel may have queued it behind
 * us, on our CPU (Protocol PLACE, worker.c): yield, so that it runs now,
 * finds us on its CPU and moves, rather than after our time slice.  With
 * nobody else queued here the yield returns at once. */
static inline void worker_woke_peer(void)
{
	sched_yield();
}

/* Run chunks [lo, hi) of job j: split in halves, pushing the upper one for
 * thieves, until one chunk is left, which we run. */
static inline void range_run(struct worker *w, unsigned j, uint64_t lo, uint64_t hi)
{
	struct pool_job *job = &w->h->jobs[j];
	/* relaxed: a clamp only; chunk_claim re-checks under the pin (CHUNK_PIN) */
	uint64_t nchunks = shmq__load_relaxed(&job->nchunks);

	if (hi > nchunks)
		hi = nchunks;
	while (lo < hi && hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (shmq__deque_push(&w->dq, word_range(j, mid, hi)) != 0) {
			for (uint64_t c = mid; c < hi; c++)
				shmq__pool_chunk_run(w, j, c);
		} else if (shmq__pool_idle_wake(w->h, true, 1) > 0) {
			worker_woke_peer();
		}
		hi = mid;
	}
	if (lo < hi)
		shmq__pool_chunk_run(w, j, lo);
}

#endif /* SHMQ_POOL_WORKER_INT_H */
