/* SPDX-License-Identifier: MIT */
/*
 * Layer 5: the work-stealing pool of worker processes (seed 12-6): its
 * lifecycle on the creator's side - create (the shared block, its workers),
 * close, join, terminate, free - and the statistics calls.
 *
 * The pool is split by owner:
 *   pool_layout_int.h  the shared layout and its protocols: read it first
 *   task.c             the task registry (every process)
 *   job.c, worker.c    the worker process: the chunk protocol; its loop,
 *                      stealing, fork-join frames
 *   supervise.c        the creator: worker areas and starts, recovery
 *   submit.c           the creator: map / map_async / apply_async, waits
 *   extent.c           the creator: the arena's free-extent list
 *   describe.c         the shmq tool's describer
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <shmq.h>

#include "core/alloc_int.h"
#include "core/atomic_int.h"
#include "core/cancel_int.h"
#include "core/compiler_int.h"
#include "core/fork_int.h"
#include "core/introspect_int.h"
#include "core/region_int.h"
#include "core/time_int.h"
#include "core/wait_int.h"
#include "core/watch_int.h"
#include "pool/creator_int.h"
#include "pool/extent_int.h"
#include "pool/job_int.h"
#include "pool/pool_int.h"
#include "pool/pool_layout_int.h"
#include "pool/task_int.h"

static unsigned online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1u : n > (long)SHMQ_POOL_MAX_WORKERS ? SHMQ_POOL_MAX_WORKERS : (unsigned)n;
}

struct pool_init_arg {
	shmq_pool *p;
	const struct shmq_pool_opts *o;
};

/* Fill header h (zeroed, its slots' area_off set) around the arena at
 * [arena_off, + arena). */
static int pool_hdr_fill(shmq_pool *p, struct pool_hdr *h, uint64_t arena_off, uint64_t arena)
{
	int rc = shmq__extent_free(&p->arena, arena_off, arena);

	if (rc)
		return rc;
	p->arena_off = h->arena_off = arena_off;
	p->arena_size = h->arena_size = arena;
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
	 * (shmq__pool_describe) through the directory's release store (a
	 * leftover taken over: through the spawn alone, see pool_leftover) */
	return 0;
}

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
		rc = shmq__pool_worker_area_new(p, &p->area_off[i]);
		if (rc)
			return rc;
		h->slots[i].area_off = p->area_off[i];
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
	return pool_hdr_fill(p, h, shmq__region_off(p->r, mem), arena);
}

/* Does the whole of what pool_obj_init allocates fit r's free space, and
 * (reserved now) its file system's?  The region has no free: a create that
 * ran out half way would keep what it had taken (a pool too big for its
 * region used to swallow all of it), so it is refused before the first
 * allocation.  Another allocator may still take the
 * space meanwhile; then only what was allocated before it is lost. */
static int pool_space_check(shmq_pool *p, const struct shmq_pool_opts *o)
{
	const uint64_t line = SHMQ__CACHELINE;
	struct shmq_region_info info;
	uint64_t start, room, need;
	int rc = shmq_region_info(p->r, &info);

	if (rc)
		return rc;
	start = SHMQ__ALIGN_UP(info.used, line);
	room = start < info.size ? info.size - start : 0;
	need = SHMQ__ALIGN_UP((uint64_t)pool_hdr_size(p->nworkers), line) +
	       (uint64_t)p->nworkers * SHMQ__ALIGN_UP((uint64_t)pool_area_size(), line);
	if (need > room)
		return -ENOSPC;
	room -= need;
	if (o && o->arena) { /* the arena, in whole lines, at least one */
		if (o->arena < line || o->arena / line * line > room)
			return -ENOSPC;
		need += o->arena / line * line;
	} else { /* the default: half of what is left */
		if (room / 2 < line)
			return -ENOSPC;
		need += room / 2;
	}
	/* the file system's room too, for a region that reserves its pages
	 * as it hands them out (SHMQ_REGION_NOPREFAULT) */
	return shmq__region_reserve_ahead(p->r, need);
}

/*
 * What a freed pool left, or a create that failed after making its shared
 * state (a worker the system refused to start: descriptors, processes,
 * memory).  Its workers are reaped, but the region has no free: its
 * header, worker areas and arena (by default half the free space) stay
 * taken, and the header stays in the directory.  They are kept here, in
 * the creating process, and the next create through the same attachment
 * takes them over: a create retried once the limit is lifted finds the
 * region as it was, and pools made and freed in turn take the space of one.
 * Process-private: the offsets are ours, never read back from the region.
 */
struct pool_leftover {
	struct pool_leftover *next;
	uint8_t uuid[16];
	uint32_t owner; /* shmq__region_self() of the attachment */
	pid_t pid;
	uint64_t h_off, arena_off, arena_size;
	unsigned nworkers;
	uint64_t area_off[]; /* nworkers */
};

/* At most this many are kept, the newest.  Nothing tells this process
 * when a leftover's region is gone for good, so a server that made a region
 * with a pool for every job grew by one record a job; dropping the oldest
 * only leaves its space taken in its region, as a region's space always is
 * once used. */
#define POOL_LEFTOVERS_MAX 32u

static pthread_mutex_t leftovers_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pool_leftover *leftovers; /* newest first */
static unsigned nleftovers;             /* on the list (leftovers_mu) */

static size_t leftover_size(unsigned nworkers)
{
	return sizeof(struct pool_leftover) + (size_t)nworkers * sizeof(uint64_t);
}

/* Keep what pool p made, its workers reaped (a failed create, a free).
 * Without memory for the record it is only lost. */
static void pool_leftover_keep(shmq_pool *p)
{
	struct pool_leftover *lo;

	if (!p->arena_size || !p->uuid_ok)
		return; /* its shared state was never made, or no key for it */
	lo = shmq__malloc(leftover_size(p->nworkers));
	if (!lo)
		return;
	memcpy(lo->uuid, p->uuid, sizeof(lo->uuid));
	lo->owner = p->owner;
	lo->pid = p->pid;
	lo->h_off = p->h_off;
	lo->arena_off = p->arena_off;
	lo->arena_size = p->arena_size;
	lo->nworkers = p->nworkers;
	memcpy(lo->area_off, p->area_off, p->nworkers * sizeof(uint64_t));
	pthread_mutex_lock(&leftovers_mu);
	lo->next = leftovers;
	leftovers = lo;
	if (++nleftovers > POOL_LEFTOVERS_MAX) { /* drop the oldest */
		struct pool_leftover **pp = &leftovers;

		while ((*pp)->next)
			pp = &(*pp)->next;
		lo = *pp;
		*pp = NULL;
		nleftovers--;
	} else {
		lo = NULL;
	}
	pthread_mutex_unlock(&leftovers_mu);
	if (lo)
		shmq__free(lo, leftover_size(lo->nworkers));
}

/* fork() holds the list's lock, so that a child never inherits it taken by
 * a thread it does not have: its first create would wait for good. */
static void leftovers_fork_prepare(void)
{
	pthread_mutex_lock(&leftovers_mu);
}

/* In the parent and in the child alike: the forking thread locked it. */
static void leftovers_fork_done(void)
{
	pthread_mutex_unlock(&leftovers_mu);
}

__attribute__((constructor)) static void leftovers_fork_init(void)
{
	/* fails only with ENOMEM: a fork may then catch the list locked, as
	 * before these handlers */
	(void)pthread_atfork(leftovers_fork_prepare, leftovers_fork_done, leftovers_fork_done);
}

void shmq__pool_leftovers_hold(bool on)
{
	if (on)
		pthread_mutex_lock(&leftovers_mu);
	else
		pthread_mutex_unlock(&leftovers_mu);
}

unsigned shmq__pool_leftovers(void)
{
	unsigned n;

	pthread_mutex_lock(&leftovers_mu);
	n = nleftovers;
	pthread_mutex_unlock(&leftovers_mu);
	return n;
}

/* Take a leftover of p's attachment with p's workers and an arena of at
 * least the size asked for out of the list, or NULL. */
static struct pool_leftover *pool_leftover_take(shmq_pool *p, uint64_t arena)
{
	struct pool_leftover **pp, *lo = NULL;

	if (!p->uuid_ok)
		return NULL;
	pthread_mutex_lock(&leftovers_mu);
	for (pp = &leftovers; *pp; pp = &(*pp)->next) {
		lo = *pp;
		if (lo->pid == p->pid && lo->owner == p->owner &&
		    !memcmp(lo->uuid, p->uuid, sizeof(p->uuid)) && lo->nworkers == p->nworkers &&
		    lo->arena_size >= arena) {
			*pp = lo->next;
			nleftovers--;
			break;
		}
		lo = NULL;
	}
	pthread_mutex_unlock(&leftovers_mu);
	return lo;
}

/* Make p's shared state in a leftover: true when one was taken over.
 * Nobody else touches its memory (its creator reaped its workers, and
 * only that attachment creates in it); it is formatted anew. */
static bool pool_leftover_adopt(shmq_pool *p, const struct shmq_pool_opts *o)
{
	uint64_t arena = o && o->arena ? o->arena / SHMQ__CACHELINE * SHMQ__CACHELINE : 0;
	struct pool_leftover *lo;
	struct pool_hdr *h;
	bool ok = false;

	if (o && o->arena && arena == 0)
		return false; /* refused by pool_space_check */
	lo = pool_leftover_take(p, arena);
	if (!lo)
		return false;
	h = shmq__region_ptr(p->r, lo->h_off, pool_hdr_size(lo->nworkers));
	if (!h)
		goto out;
	memset(h, 0, pool_hdr_size(lo->nworkers));
	for (unsigned i = 0; i < p->nworkers; i++) {
		if (shmq__pool_worker_area_reset(p, lo->area_off[i]))
			goto out;
		p->area_off[i] = h->slots[i].area_off = lo->area_off[i];
	}
	p->h = h;
	p->h_off = lo->h_off;
	ok = pool_hdr_fill(p, h, lo->arena_off, arena ? arena : lo->arena_size) == 0;
out:
	if (!ok)
		p->h = NULL; /* nothing published: the create allocates anew */
	shmq__free(lo, leftover_size(lo->nworkers));
	return ok;
}

/* The pool's header is a directory object named "pool.ID.N" (ID: our owner
 * id, N: the first number free), so that tools can find and describe it. */
static int pool_shared_init(shmq_pool *p, const struct shmq_pool_opts *o)
{
	struct pool_init_arg ia = { p, o };
	char name[SHMQ_OBJ_NAME_MAX + 1];
	int rc;

	if (pool_leftover_adopt(p, o))
		return 0;
	rc = pool_space_check(p, o);
	if (rc)
		return rc;
	rc = -EEXIST;
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
	shmq__extent_fini(&p->arena);
	shmq__pool_worker_areas_free(p);
	shmq__pool_task_table_free(&p->tt);
	shmq__free(p->procs, p->nworkers * sizeof(*p->procs));
	shmq__free(p->area_off, p->nworkers * sizeof(*p->area_off));
	shmq__free(p->start_fails, p->nworkers * sizeof(*p->start_fails));
	shmq__free(p->spawn_fails, p->nworkers * sizeof(*p->spawn_fails));
	shmq__free(p->spare, sizeof(*p->spare));
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

static int pool_create(shmq_region *r, const struct shmq_pool_opts *o, shmq_pool **out)
{
	shmq_pool *p;
	int rc = 0;

	if (!r || !out)
		return -EINVAL;
	if (o && (o->reserved[0] || o->reserved[1] || o->workers > SHMQ_POOL_MAX_WORKERS ||
		  (o->initializer && (!*o->initializer ||
				      strlen(o->initializer) > SHMQ_OBJ_NAME_MAX))))
		return -EINVAL;
	rc = o && o->initializer ? shmq__pool_task_known(o->initializer) : 0;
	if (rc)
		return rc;
	p = shmq__calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->r = r;
	p->pid = shmq__self_pid();
	p->uuid_ok = shmq_region_uuid(r, p->uuid) == 0;
	p->owner = shmq__region_self(r);
	p->nworkers = o && o->workers ? o->workers : online_cpus();
	p->chunksize = o ? o->chunksize : 0;
	p->max_tasks = o ? o->max_tasks_per_worker : 0;
	if (o && o->initializer)
		strcpy(p->init, o->initializer); /* length checked above */
	pthread_mutex_init(&p->mu, NULL);
	p->procs = shmq__calloc(p->nworkers, sizeof(*p->procs));
	p->start_fails = shmq__calloc(p->nworkers, sizeof(*p->start_fails));
	p->spawn_fails = shmq__calloc(p->nworkers, sizeof(*p->spawn_fails));
	p->area_off = shmq__calloc(p->nworkers, sizeof(*p->area_off));
	if (!p->procs || !p->start_fails || !p->spawn_fails || !p->area_off) {
		pool_handle_free(p);
		return -ENOMEM;
	}
	rc = pool_shared_init(p, o);
	for (unsigned i = 0; rc == 0 && i < p->nworkers; i++)
		rc = shmq__pool_worker_start(p, i, false);
	if (rc) {
		if (p->h)
			shmq__store_seq_cst(&p->h->state, POOL_TERMINATE);
		pool_kill_all(p);
		pool_leftover_keep(p);
		pool_handle_free(p);
		return rc;
	}
	p->last_supervise = shmq_now_ns();
	*out = p;
	return 0;
}

/* No cancellation point (core/cancel_int.h). */
SHMQ_API int shmq_pool_create(shmq_region *r, const struct shmq_pool_opts *o, shmq_pool **out)
{
	int cs = shmq__cancel_off();
	int rc = pool_create(r, o, out);

	shmq__cancel_restore(cs);
	return rc;
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
	if (shmq__foreign(p->pid))
		return -EBADF; /* inherited across fork(): the parent's workers */
	sl = &p->h->slots[i];
	memset(s, 0, sizeof(*s));
	/* the pid from our own handle, never the slot's word: anyone attached
	 * to the region can write that, and callers signal what we report */
	pthread_mutex_lock(&p->mu);
	s->pid = p->procs[i] ? shmq_proc_pid(p->procs[i]) : 0;
	pthread_mutex_unlock(&p->mu);
	/* statistics: no ordering needed; pairs with the relaxed stores of
	 * shmq__pool_worker_start (restarts), the worker (tasks, steals)
	 * and worker_init's release store of id */
	s->tasks = shmq__load_relaxed(&sl->tasks);
	s->steals = shmq__load_relaxed(&sl->steals);
	s->restarts = shmq__load_relaxed(&sl->restarts);
	s->started = shmq__load_relaxed(&sl->id) != 0;
	return 0;
}

/* ---- lifecycle ---- */

/* Our state becomes st, and the workers' copy in the region with it
 * (seq_cst, as Protocol POOL_STATE says).  With p->mu held. */
static void pool_state_set(shmq_pool *p, uint32_t st)
{
	p->state = st;
	shmq__store_seq_cst(&p->h->state, st);
}

SHMQ_API int shmq_pool_close(shmq_pool *p)
{
	if (!p)
		return -EINVAL;
	if (shmq__foreign(p->pid))
		return -EBADF;
	pthread_mutex_lock(&p->mu);
	if (p->state == POOL_RUNNING)
		pool_state_set(p, POOL_CLOSING);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

static bool jobs_all_done(shmq_pool *p)
{
	for (unsigned j = 0; j < SHMQ_POOL_MAX_JOBS; j++)
		/* JOB_DONE: pairs with job_finish's seq_cst CAS */
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
			shmq__pool_supervise(p);
		shmq__pool_zombies_reap(p, deadline);
		bool all = jobs_all_done(p) || p->broken;
		pthread_mutex_unlock(&p->mu);
		if (all)
			return 0;
		if (deadline != SHMQ__NO_DEADLINE && shmq_now_ns() >= deadline)
			return -ETIMEDOUT;
		usleep(1000);
	}
}

/*
 * Reap worker i once it has exited, waiting until deadline: 0 or
 * -ETIMEDOUT.  p->mu is held only to look and to reap, never while the
 * worker runs (it may finish a long task first): other threads' calls, a
 * join with SHMQ_NOWAIT among them, take p->mu and must not wait for it.
 * The wait is on a copy of the worker's pidfd, as a terminate in another
 * thread may close the handle meanwhile; without a descriptor to spare, a
 * look every millisecond.
 */
static int worker_join(shmq_pool *p, unsigned i, int64_t deadline)
{
	for (;;) {
		int fd = -1, rc = 0;

		pthread_mutex_lock(&p->mu);
		if (p->procs[i]) {
			rc = shmq_proc_join(p->procs[i], SHMQ_NOWAIT);
			if (rc == 0 || rc == -ECHILD) {
				shmq_proc_close(p->procs[i]);
				p->procs[i] = NULL;
				rc = 0;
			} else if (rc == -EAGAIN) {
				fd = shmq__proc_pidfd(p->procs[i]);
				fd = fd < 0 ? fd : fcntl(fd, F_DUPFD_CLOEXEC, 0);
			}
		}
		pthread_mutex_unlock(&p->mu);
		if (rc != -EAGAIN)
			return rc;
		if (fd >= 0) {
			rc = shmq__pidfd_wait(fd, deadline);
			close(fd);
		} else if (shmq__remaining(deadline) == 0) {
			rc = -ETIMEDOUT;
		} else {
			usleep(1000);
			rc = 0;
		}
		if (rc)
			return rc;
	}
}

/* Join until deadline: 0, or -ETIMEDOUT once it has passed. */
static int pool_join(shmq_pool *p, int64_t deadline)
{
	uint32_t st;
	int rc = 0;

	pthread_mutex_lock(&p->mu);
	st = p->state;
	pthread_mutex_unlock(&p->mu);
	if (st == POOL_RUNNING)
		return -EINVAL;
	if (st == POOL_CLOSING) {
		rc = join_jobs(p, deadline);
		if (rc)
			return rc;
		pthread_mutex_lock(&p->mu);
		if (p->state == POOL_CLOSING) /* not terminated meanwhile */
			pool_state_set(p, POOL_EXIT);
		shmq__pool_idle_wake(p->h, true, INT_MAX);
		pthread_mutex_unlock(&p->mu);
	}
	for (unsigned i = 0; i < p->nworkers && !rc; i++)
		rc = worker_join(p, i, deadline);
	return rc;
}

static int pool_join_timed(shmq_pool *p, int64_t timeout_ns)
{
	int rc;

	if (!p)
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__timeout_bad(timeout_ns)))
		return -EINVAL;
	if (shmq__foreign(p->pid))
		return -EBADF;
	rc = pool_join(p, shmq__deadline(timeout_ns));
	/* SHMQ_NOWAIT never blocks; where it would have, it says -EAGAIN */
	return rc == -ETIMEDOUT && timeout_ns == SHMQ_NOWAIT ? -EAGAIN : rc;
}

/* No cancellation point (core/cancel_int.h). */
SHMQ_API int shmq_pool_join(shmq_pool *p, int64_t timeout_ns)
{
	int cs = shmq__cancel_off();
	int rc = pool_join_timed(p, timeout_ns);

	shmq__cancel_restore(cs);
	return rc;
}

static int pool_terminate(shmq_pool *p)
{
	if (!p)
		return -EINVAL;
	if (shmq__foreign(p->pid))
		return -EBADF;
	pthread_mutex_lock(&p->mu);
	pool_state_set(p, POOL_TERMINATE);
	shmq__pool_idle_wake(p->h, true, INT_MAX);
	pool_kill_all(p);
	for (unsigned j = 0; j < SHMQ_POOL_MAX_JOBS; j++) {
		struct pool_job *job = pool_job(p, j);
		uint32_t running = JOB_RUNNING;

		if (!p->jobs[j].used)
			continue;
		/* JOB_DONE, seq_cst: the wake protocol of core/wait_int.h with the
		 * waiters (job_done_wait) */
		if (shmq__cas_seq_cst(&job->done, &running, JOB_CANCELED))
			shmq__wake_word(&job->done, &job->done_sleepers, INT_MAX);
	}
	shmq__pool_zombies_reap(p, shmq_now_ns()); /* no worker is left to pin */
	pthread_mutex_unlock(&p->mu);
	return 0;
}

/* No cancellation point (core/cancel_int.h). */
SHMQ_API int shmq_pool_terminate(shmq_pool *p)
{
	int cs = shmq__cancel_off();
	int rc = pool_terminate(p);

	shmq__cancel_restore(cs);
	return rc;
}

static void pool_free(shmq_pool *p)
{
	bool alive = false;

	if (!p)
		return;
	/* inherited across fork(): the workers and the region's pool state are
	 * the parent's; the child's copy is left to the process's exit */
	if (shmq__foreign(p->pid))
		return;
	for (unsigned i = 0; i < p->nworkers; i++)
		alive |= p->procs[i] != NULL;
	if (alive)
		shmq_pool_terminate(p);
	pthread_mutex_lock(&p->mu);
	shmq__pool_asyncs_orphan(p);
	pthread_mutex_unlock(&p->mu);
	/* no worker is left (joined or terminated) and no handle reads the
	 * arena any more (orphaned): the next create may take it all over */
	pool_leftover_keep(p);
	pool_handle_free(p);
}

/* No cancellation point (core/cancel_int.h). */
SHMQ_API void shmq_pool_free(shmq_pool *p)
{
	int cs = shmq__cancel_off();

	pool_free(p);
	shmq__cancel_restore(cs);
}
