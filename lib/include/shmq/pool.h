/* SPDX-License-Identifier: MIT */
/* Pools (seed 12-6): a work-stealing pool of worker processes. */
#ifndef SHMQ_POOL_H
#define SHMQ_POOL_H

#include <shmq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Pools (seed 12-6): Python's multiprocessing.Pool over shared memory.
 *
 *     static int square(const void *in, void *out)
 *     { *(int *)out = *(const int *)in * *(const int *)in; return 0; }
 *     SHMQ_TASK(square);
 *
 *     int main(int argc, char **argv)
 *     {
 *             shmq_dispatch(argc, argv);      // first: workers run in here
 *             ...
 *             shmq_pool_create(r, NULL, &p);  // one worker per online CPU
 *             shmq_pool_map(p, "square", in, sizeof(int), out, sizeof(int), n,
 *                           SHMQ_FOREVER);
 *             shmq_pool_close(p); shmq_pool_join(p, SHMQ_FOREVER); shmq_pool_free(p);
 *     }
 *
 * Workers are processes started with shmq_proc_spawn (the program must call
 * shmq_dispatch first in main); each owns a Chase-Lev deque in the region.
 * Work from outside the pool arrives through per-job injection words; idle
 * workers steal from random victims, spin briefly, then sleep on a futex.
 * Tasks are found by name in the registry SHMQ_TASK fills, in every process.
 *
 * A worker that dies is replaced by the creating process, which runs no
 * thread of the pool's own: replacement happens inside its pool calls.  Each
 * submission (map, map_async, apply_async) and each wait (shmq_async_wait,
 * _get, _ready, map, join) looks for dead workers, at most once per 10 ms,
 * and starts their replacements; a caller blocked in a wait looks at least
 * every 20 ms, so a worker that dies while the creator waits is replaced
 * within about 20 ms plus the start of a process.  Between the creator's
 * calls a dead worker stays dead (shmq_pool_worker_stats only reads: its pid
 * and restarts stay as they were): the live workers go on with the work, and
 * chunks the dead one had claimed wait for the creator's next call - no
 * result can be waited for without one, so nothing hangs.  The chunks it was
 * running run again and each result slot is written by exactly one completed
 * run.  A chunk whose worker dies three times fails with -EOWNERDEAD.  A
 * replacement the system refuses for want of a resource that may come back
 * (-EAGAIN: processes, -ENOMEM, -EMFILE, -ENFILE) is tried again at each
 * later look while the live workers go on; after 50 refusals in a row for
 * one worker the pool is broken, and every later submission and wait
 * returns that error.
 * However many workers die, the pool's space in the region stays bounded: a
 * dead worker's deque and frames are recycled once no live worker can still
 * touch them.
 *
 * Each pool is a named object of its region's directory, "pool.ID.N" (ID the
 * creator's owner id in the region), so `shmq stat` shows its workers (pid,
 * alive, tasks, steals, replacements, words queued), its jobs and tasks
 * queued or running, and whether it is closed.
 */

/* A task may fork(); its child must end with _exit() (or exec).  A child
 * that returns from the task (or the initializer) is no worker: it exits at
 * once with status 6, touching nothing of the pool's. */
typedef int (*shmq_task_fn)(const void *in, void *out);

/* One registered task; SHMQ_TASK fills it in at file scope.
 * shmq_task_register adds t (which must live as long as the program, or as
 * its module) to the process-wide registry.  Safe from constructors and any
 * thread; registering the same struct twice is a no-op; a struct whose fn is
 * NULL is taken out if it is in (SHMQ_TASK's destructor does this, so that a
 * module unloaded by dlclose leaves nothing behind).  Two different structs
 * under one name are a programming error that registration order never
 * resolves: the name
 * becomes ambiguous and every submission of it fails with -EEXIST (the rule
 * of shmq_entry_register). */
struct shmq_task {
	const char *name;
	shmq_task_fn fn;
	struct shmq_task *next; /* owned by the library */
};
SHMQ_API void shmq_task_register(struct shmq_task *t);

/* Register func as a pool task under its own name, at file scope; withdrawn
 * when the program or module that holds it is unloaded (exit, dlclose). */
#define SHMQ_TASK(func)                                                        \
	static struct shmq_task shmq__task_##func = { #func, func, 0 };        \
	__attribute__((constructor)) static void shmq__task_ctor_##func(void)  \
	{                                                                      \
		shmq_task_register(&shmq__task_##func);                        \
	}                                                                      \
	__attribute__((destructor)) static void shmq__task_dtor_##func(void)   \
	{                                                                      \
		shmq__task_##func.fn = 0;                                      \
		shmq_task_register(&shmq__task_##func);                        \
	}                                                                      \
	struct shmq__task_semicolon_##func

#define SHMQ_POOL_MAX_WORKERS 256u
#define SHMQ_POOL_MAX_JOBS    256u  /* maps and applies in flight per pool */

/*
 * Options; NULL or all-zero means the defaults.
 *
 * initializer: the name of a SHMQ_TASK each worker process runs once, as
 * fn(NULL, NULL), before it takes its first task (Python's initializer);
 * every replacement runs it too.  Unknown at create: -ENOENT.  A worker
 * whose initializer returns non-zero exits without taking work, is not
 * restarted, and the pool is broken: every later submission and wait
 * (map, map_async, apply_async, shmq_async_wait / _get, shmq_iter_next)
 * returns the initializer's status when it is a negative errno, else
 * -ECHILD.  An initializer runs outside a task: shmq_pool_spawn is -EPERM.
 * max_tasks_per_worker (Python's maxtasksperchild): a worker exits after
 * running that many tasks (map elements and subtasks, counted when it is
 * between chunks, so it may finish the chunk that crossed the count) and is
 * replaced like a dead one, at the creator's next pool call; the chunks it
 * still had queued are handed out again.  0: never.
 */
struct shmq_pool_opts {
	unsigned workers;  /* 0: the number of online CPUs (at most SHMQ_POOL_MAX_WORKERS) */
	size_t chunksize;  /* 0: automatic, as Python's: ceil(n / (4 * workers)) */
	size_t arena;      /* bytes of the region reserved for copies of inputs and
			    * outputs; 0: half of the region's free space at create */
	/* 0.2: the next two take the first two of the 0.1 reserved words (the
	 * struct keeps its size on 64-bit targets; zero keeps 0.1's behaviour) */
	const char *initializer;     /* NULL, or a SHMQ_TASK run once in each worker */
	size_t max_tasks_per_worker; /* 0: no limit; else a worker is replaced after
				      * that many tasks */
	uint64_t reserved[2]; /* must be zero */
};

/*
 * shmq_pool_create - start a pool of worker processes on region r.
 * The pool's shared state (worker deques, job table, arena) is allocated in r
 * and stays there until r is destroyed; once the pool is freed, the next
 * create of this process through the same handle of r with as many workers
 * and an arena no larger takes it over (what the last 32 freed pools of the
 * process left is kept for that).  The handle may be used by several
 * threads of the creating process; only that process may use it.
 * Errors: -EINVAL, -ENOSPC (the pool does not fit r's free space; checked
 * before anything is allocated, so r loses nothing), -ENOMEM, or what
 * shmq_proc_spawn returned (a worker refused: what the create had made in
 * r, the next create of this process through the same handle with as many
 * workers and an arena no larger takes over, so a retry loses nothing).
 */
SHMQ_API int shmq_pool_create(shmq_region *r, const struct shmq_pool_opts *o, shmq_pool **out);

/*
 * shmq_pool_map - out[i] = task(in[i]) for i < n, in order; blocks.
 * in and out are arrays of n elements of in_size and out_size bytes (either
 * size may be 0, its pointer then NULL).  Buffers that lie in the pool's
 * region are used in place; others are copied into the arena (in) and back
 * (out), in batches if they do not fit it at once.  The elements are split in
 * chunks of opts.chunksize.  Each batch takes one of the SHMQ_POOL_MAX_JOBS job
 * slots; with all of them taken (by async handles) map waits for one within
 * its timeout, and so it does for arena room held by other threads' maps.
 * Returns 0, the error of the first failing element (the lowest index; the
 * other results are still written; a status that is no negative errno,
 * -4095 to -1, as -EPROTO), -ENOENT for an unknown task, -ECANCELED when the
 * pool is terminated meanwhile, -ETIMEDOUT, -EPIPE after close, -EOWNERDEAD
 * (see above), -EINVAL, -ENOSPC when one element does not fit the arena:
 * larger than it whole (in_size and out_size each rounded up to 64, plus 64
 * bytes), or its room held by async handles or iterators, which give it
 * back only when they complete.
 * After -ETIMEDOUT or -ECANCELED the elements of the batch that was running
 * are not written (in-place outputs may be, by chunks that were running);
 * a map that ran in batches has written the results of the batches before
 * it.
 */
SHMQ_API int shmq_pool_map(shmq_pool *p, const char *task, const void *in, size_t in_size,
			   void *out, size_t out_size, size_t n, int64_t timeout_ns);

/*
 * shmq_pool_map_async / shmq_pool_apply_async - submit without waiting.
 * apply_async is a map of one element.  The results reach out when the
 * returned handle completes (shmq_async_wait, _get, or a _ready that returns
 * true); in and out must stay valid until then (in may be reused at once if it
 * was copied, i.e. did not lie in the region).  The inputs must fit the arena
 * at once (-ENOSPC), and at most SHMQ_POOL_MAX_JOBS may be in flight (-EAGAIN).
 * Other errors as for map.
 */
SHMQ_API int shmq_pool_map_async(shmq_pool *p, const char *task, const void *in, size_t in_size,
				 void *out, size_t out_size, size_t n, shmq_async **out_async);
SHMQ_API int shmq_pool_apply_async(shmq_pool *p, const char *task, const void *in, size_t in_size,
				   void *out, size_t out_size, shmq_async **out_async);

/*
 * shmq_pool_imap - Python's Pool.imap / imap_unordered: a map whose results
 * are taken one by one as they complete, without waiting for the whole map.
 * Submits task(in[i]) for i < n (in: n elements of in_size bytes, copied
 * into the arena at once, as for map_async: -ENOSPC when they do not fit,
 * -EAGAIN with SHMQ_POOL_MAX_JOBS jobs in flight) and returns an iterator.
 * flags: 0 (results in index order) or SHMQ_UNORDERED (in the order their
 * chunks complete; chunksize 1 gives element by element).
 *
 * shmq_iter_next waits at most timeout_ns for the next result, copies its
 * out_size bytes to out and returns its index (>= 0).  An element whose task
 * returned st != 0 is returned as st (as the pool reports a task's error
 * elsewhere; a positive st as -EPROTO) instead of its index, with out as the
 * task left it; iteration goes on with the next call (ordered: that element's
 * index is the count of calls before it).  -EPIPE once all n were returned;
 * -ETIMEDOUT (-EAGAIN for SHMQ_NOWAIT), after which the call may be repeated;
 * -ECANCELED (pool terminated), -EOWNERDEAD for an element whose workers
 * died CHUNK_TRIES times, or the pool's error (a worker that cannot start).
 * shmq_iter_free releases the iterator; an incomplete map is cancelled
 * (chunks not started are skipped).  NULL is a no-op.  One thread at a time
 * per iterator; the iterator belongs to the pool's creating process and can
 * be added to nothing else.  Free it before the pool.  In a child made by
 * fork() an inherited iterator's next is -EBADF and its free releases only
 * the child's copy (the parent's map goes on).
 */
#define SHMQ_UNORDERED 0x1u
typedef struct shmq_iter shmq_iter;
SHMQ_API int shmq_pool_imap(shmq_pool *p, const char *task, const void *in, size_t in_size,
			    size_t out_size, size_t n, unsigned flags, shmq_iter **out);
SHMQ_API ssize_t shmq_iter_next(shmq_iter *it, void *out, int64_t timeout_ns);
SHMQ_API void shmq_iter_free(shmq_iter *it);

/*
 * The pending result of a map_async / apply_async.  One thread at a time per
 * handle.  wait: 0 once complete (results copied to out), -ETIMEDOUT /
 * -EAGAIN (SHMQ_NOWAIT), -ECANCELED (pool terminated).  ready: completed?
 * get: waits, then the tasks' status: 0 or the first error (lowest index).
 * free: releases the handle; an incomplete job is cancelled (chunks not yet
 * started are skipped) and out is no longer written.  NULL is a no-op.
 * A handle may outlive its pool (though no wait on it may be in progress
 * while the pool is freed): after shmq_pool_free it is complete (the results
 * of a job the pool completed, as after join, are copied to out; else
 * -ECANCELED), a waitset refuses it (-EINVAL), and free releases only the
 * handle.
 * The handle belongs to the pool's creating process: in a child made by
 * fork(), wait and get through an inherited one are -EBADF, ready is false,
 * and free releases only the child's copy (the parent's job goes on).
 */
SHMQ_API int shmq_async_wait(shmq_async *a, int64_t timeout_ns);
SHMQ_API bool shmq_async_ready(shmq_async *a);
SHMQ_API int shmq_async_get(shmq_async *a, int64_t timeout_ns);
SHMQ_API void shmq_async_free(shmq_async *a);

/*
 * Lifecycle, as Python's: close stops new submissions (-EPIPE); join (after
 * close or terminate, else -EINVAL) waits for outstanding jobs, then for the
 * workers to exit, and may be retried after -ETIMEDOUT; terminate kills the
 * workers at once (SIGKILL), completes every pending job with -ECANCELED and
 * reaps them; free terminates a pool still running and releases the handle.
 * After join or terminate no worker process is left.  Free only when no
 * other thread is inside a call on p or on one of its async handles or
 * iterators (a wait among them would read the freed pool): terminate wakes
 * such waits with -ECANCELED; free once they have returned.
 */
SHMQ_API int shmq_pool_close(shmq_pool *p);
SHMQ_API int shmq_pool_join(shmq_pool *p, int64_t timeout_ns);
SHMQ_API int shmq_pool_terminate(shmq_pool *p);
SHMQ_API void shmq_pool_free(shmq_pool *p);

/*
 * Statistics of worker slot i (< shmq_pool_workers(p)): its current pid (the
 * creator's own record, not the region's word, which anyone could forge), the
 * tasks it ran (map elements and subtasks; counted per slot across
 * replacements), the words it stole, how often it was replaced, and whether
 * its current process has started.  Any thread of the creating process
 * (-EBADF in a child made by fork()).  -EINVAL for a bad index.  All but
 * the pid are counters in the region, read as they are: statistics, which
 * a process that writes the region can change, never a decision's input.
 */
struct shmq_pool_worker_stats {
	pid_t pid;
	uint64_t tasks;
	uint64_t steals;
	uint32_t restarts;
	uint32_t started;  /* 1 once the current process has attached to the pool */
};
SHMQ_API unsigned shmq_pool_workers(const shmq_pool *p);
SHMQ_API int shmq_pool_worker_stats(shmq_pool *p, unsigned i, struct shmq_pool_worker_stats *s);

/*
 * Fork-join from inside a task.
 *
 *     static int fib(const void *in, void *out)
 *     {
 *             int n = *(const int *)in, a, b, n1 = n - 1, n2 = n - 2;
 *             struct shmq_pool_group g = SHMQ_POOL_GROUP_INIT;
 *
 *             if (n < 2) { *(int *)out = n; return 0; }
 *             shmq_pool_spawn(&g, "fib", &n1, sizeof(n1), &a, sizeof(a));
 *             fib(&n2, &b);                  // a direct call: fine
 *             int rc = shmq_pool_sync(&g);   // helps other tasks while it waits
 *             *(int *)out = a + b;
 *             return rc;
 *     }
 *
 * shmq_pool_spawn records task(in) -> out on the calling worker's frame stack;
 * it runs on this worker at the sync, or on another worker that steals it;
 * in is copied at once (in_size rounded up to 16, plus out_size, at most
 * SHMQ_POOL_SPAWN_MAX); out is written by the sync and must stay valid until
 * then.  Frames are private (synced without any atomic operation) until an
 * idle worker asks for work or the spawner's deque is empty; they are then
 * pushed on the deque, oldest first, at the spawner's next spawn or sync.  So
 * a subtask becomes stealable at such a point, not in the middle of a long
 * stretch of code without spawn or sync.  When the frame stack (1024) is full
 * the subtask runs at once instead.
 * shmq_pool_sync waits for every subtask spawned into g (since g's first spawn
 * or its last sync), running other tasks meanwhile, copies their results and
 * returns 0 or the first error in spawn order.  Groups must be synced in the
 * reverse order of their first spawns (nested, as calls are); a task that
 * returns with an unsynced group is synced by the pool (its error then
 * becomes the task's, if the task returned 0).  A subtask whose thief dies is
 * run again by the spawning worker.
 * Only on a pool worker, in the thread that runs the task (-EPERM elsewhere,
 * also in another thread the task started or in a child it made with fork():
 * the worker's deque has one owner); one group per nesting level; -ENOENT
 * unknown task, -EMSGSIZE, -EINVAL (misnested group).
 *
 * shmq_pool_self: the index of the worker slot running the caller (any thread
 * of the worker's process), or -EPERM outside a pool worker (a child a task
 * made with fork() is none).
 */
#define SHMQ_POOL_SPAWN_MAX 96u
struct shmq_pool_group {
	uint32_t base; /* private to the pool: the first frame of the group */
	uint32_t n;    /* spawned, not yet synced */
	int err;       /* first error of subtasks that ran at once */
};
#define SHMQ_POOL_GROUP_INIT { 0, 0, 0 }
SHMQ_API int shmq_pool_spawn(struct shmq_pool_group *g, const char *task, const void *in,
			     size_t in_size, void *out, size_t out_size);
SHMQ_API int shmq_pool_sync(struct shmq_pool_group *g);
SHMQ_API int shmq_pool_self(void);

#ifdef __cplusplus
}
#endif
#endif /* SHMQ_POOL_H */
