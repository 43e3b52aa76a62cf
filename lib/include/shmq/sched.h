/* SPDX-License-Identifier: MIT */
/* Scheduler (seed 12-8): timed events and an event loop on io_uring. */
#ifndef SHMQ_SCHED_H
#define SHMQ_SCHED_H

#include <shmq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*shmq_action_fn)(void *arg);

/* A pending event, as shmq_sched_queue and shmq_sched_event_info show it. */
struct shmq_event_info {
	int64_t when_ns;   /* absolute deadline, shmq_now_ns() clock */
	int priority;      /* lower runs first among equal times */
	shmq_action_fn fn;
	void *arg;
};

/*
 * Options for shmq_sched_create().  A NULL or zeroed struct means the
 * defaults; fields may be added at the end in later versions (reserved[]
 * must be zero).
 */
enum shmq_sched_backend_kind {
	SHMQ_SCHED_AUTO = 0,     /* io_uring; the fallback if io_uring is refused.  The
				    environment variable SHMQ_SCHED_BACKEND=fallback|io_uring
				    overrides AUTO (only AUTO). */
	SHMQ_SCHED_IO_URING = 1, /* io_uring or fail (-ENOSYS, -EPERM, ... from io_uring_setup,
				    or from io_uring_enter on the new ring) */
	SHMQ_SCHED_FALLBACK = 2, /* timerfd + epoll (+ the watch helper thread) */
};
#define SHMQ_SCHED_PRECISE     (1u << 0) /* wake early and spin to each deadline */
#define SHMQ_SCHED_NO_FUTEX_OP (1u << 1) /* io_uring: watch queues and pipes through the
					    helper thread, as on kernels without
					    IORING_OP_FUTEX_WAIT (< 6.7) */
#define SHMQ_SCHED_NO_WAITID   (1u << 2) /* io_uring: watch processes with a pidfd poll,
					    as on kernels without IORING_OP_WAITID (< 6.7) */
struct shmq_sched_opts {
	unsigned backend;      /* enum shmq_sched_backend_kind */
	unsigned flags;        /* SHMQ_SCHED_* flags above */
	unsigned ring_entries; /* io_uring submission queue size; 0: 64 */
	unsigned reserved0;
	int64_t spin_ns;       /* SHMQ_SCHED_PRECISE: the most a wake-up is moved ahead of a
				  deadline to be spun away (the loop adapts below it to the
				  lateness it observes); 0: 200 us */
	uint64_t reserved[4];
};

/*
 * Concurrency contract (every call below): one mutex guards a scheduler.
 * enter / enterabs / enter_periodic / cancel / empty / queue / event_info /
 * stop / watch_* / unwatch may be called from any thread at any time,
 * including from actions while run() runs.  run() runs in the calling
 * thread, one at a time per scheduler (-EBUSY for a second, or from an
 * action).  Actions run on run()'s thread without the mutex held.  destroy()
 * only when no thread is inside any call on s.  A scheduler is private to
 * its process (it watches shared objects; it is not itself shared): in a
 * child made by fork() the calls given the parent's return -EBADF (empty()
 * true, queue() 0, destroy() leaves it alone), without taking its mutex.
 * An action may fork(); a child that returns from it (instead of _exit())
 * gets -EBADF from its run() at once, which touched nothing of the parent's.
 */

/*
 * shmq_sched_create - a scheduler (Python's sched.scheduler) with its own
 * io_uring (or, where io_uring is refused, a timerfd + epoll fallback; see
 * struct shmq_sched_opts and shmq_sched_backend()).
 * 0, -EINVAL (opts), -ENOMEM, -EMFILE, or what io_uring_setup returned for
 * SHMQ_SCHED_IO_URING.
 */
SHMQ_API int shmq_sched_create(const struct shmq_sched_opts *o, shmq_sched **out);

/*
 * shmq_sched_enter / shmq_sched_enterabs - schedule fn(arg) delay_ns from
 * now / at when_ns (absolute, shmq_now_ns() clock; a time in the past runs at
 * the next run()).  Events run in order of time, then priority (lower
 * first), then entry order.  Two enter() calls with the same delay get
 * slightly different times (as in Python); use enterabs for exact ties.
 * An earlier event entered while run() sleeps wakes it at once.
 *
 * *ev (ev may be NULL) receives a handle.  Handles are not pointers to
 * memory: the scheduler owns every event, and a handle carries a generation,
 * so a handle to an event that ran or was cancelled is recognised as stale
 * (-ENOENT) for the scheduler's life and never names a later event.
 * 0, -EINVAL (fn NULL), -ENOMEM.
 */
SHMQ_API int shmq_sched_enter(shmq_sched *s, int64_t delay_ns, int priority, shmq_action_fn fn,
			      void *arg, shmq_event **ev);
SHMQ_API int shmq_sched_enterabs(shmq_sched *s, int64_t when_ns, int priority, shmq_action_fn fn,
				 void *arg, shmq_event **ev);

/*
 * shmq_sched_cancel - remove a pending event, in O(log n).  0, or -ENOENT if
 * it ran (one-shot) or was cancelled already; -EINVAL for NULL.
 */
SHMQ_API int shmq_sched_cancel(shmq_sched *s, shmq_event *ev);

/* shmq_sched_empty - true when no event is pending (watches do not count). */
SHMQ_API bool shmq_sched_empty(shmq_sched *s);

/*
 * shmq_sched_queue - a snapshot of the pending events in run order: fills
 * out[0 .. min(n, max)) and returns n, the number pending (out may be NULL
 * with max 0 to count).  O(n log n).
 */
SHMQ_API size_t shmq_sched_queue(shmq_sched *s, struct shmq_event_info *out, size_t max);

/*
 * shmq_sched_run - run events as they fall due, and watch actions as their
 * objects become ready, on the calling thread.
 *
 * blocking: sleeps in the kernel between them (one io_uring_enter per
 * iteration) and returns 0 when no event and no watch is left, or after
 * shmq_sched_stop; while due events keep it busy (an action that outlasts
 * its period) it still looks at the watches every 10 ms, so none starves.  Non-blocking: runs what is due and ready now, checks the
 * watches once, and returns the ns until the next event (>= 0), or -1 when
 * none is pending.  It runs only events entered before it began (a periodic
 * event's next firing counts as entered when it is re-armed) and each
 * watch's action at most once, so it returns even when its actions keep
 * work due; it returns 0 when such an event or watch is due already (call
 * it again).  Other negative values are errors: -EBUSY (run already
 * running), or a kernel error from the backend (-errno, never -1: a refused
 * call, -EPERM, is reported as -EACCES).
 */
SHMQ_API int64_t shmq_sched_run(shmq_sched *s, bool blocking);

/*
 * shmq_sched_watch_queue / _pipe / _proc - run fn(arg) from run() when a
 * queue has a message (or is shut down), when a pipe end has a message (or
 * its peer is gone), or once when a process has exited (the watch then ends
 * by itself; the exit status is left for shmq_proc_join).
 *
 * Queue and pipe watches are level-triggered: after each action run()
 * checks again and runs it again while the object stays readable, so the
 * action should drain it (get/recv with SHMQ_NOWAIT until -EAGAIN) or
 * unwatch.  They wait as IORING_OP_FUTEX_WAIT on the object's readiness word
 * (a helper thread where the kernel lacks it, and in the fallback), and are
 * also re-checked every 100 ms: a peer that died cannot announce it.
 * Processes wait as IORING_OP_WAITID (WNOWAIT) or a pidfd poll.
 *
 * One watch per object: -EEXIST.  The object must stay open until
 * unwatched (or, for a process, until its watch fired).  0, -EINVAL,
 * -ENOMEM, -EEXIST, -ENOSPC (queue and pipe watches that wait on the helper
 * thread: the fallback, or io_uring without IORING_OP_FUTEX_WAIT; at most
 * 127 of them).
 */
SHMQ_API int shmq_sched_watch_queue(shmq_sched *s, shmq_queue *q, shmq_action_fn fn, void *arg);
SHMQ_API int shmq_sched_watch_pipe(shmq_sched *s, shmq_pipe *p, shmq_action_fn fn, void *arg);
SHMQ_API int shmq_sched_watch_proc(shmq_sched *s, shmq_proc *p, shmq_action_fn fn, void *arg);

/*
 * shmq_sched_stop - make the run() in progress return (0) as soon as the
 * action it is running (if any) returns; pending events and watches stay.  A
 * stop while no run() is in progress makes the next run() return at once.
 */
SHMQ_API int shmq_sched_stop(shmq_sched *s);

/* shmq_sched_destroy - free s, its pending events and watches (no action
 * runs).  Every handle of s becomes meaningless. */
SHMQ_API void shmq_sched_destroy(shmq_sched *s);

/* ---- extras ---- */

/*
 * shmq_sched_enter_periodic - an event that runs at first_ns, first_ns +
 * period_ns, first_ns + 2 * period_ns, ... (absolute CLOCK_MONOTONIC ns).
 * Every deadline is computed from first_ns, never from the last firing, so
 * the event does not drift.  A deadline the loop could not meet (it was still
 * busy when the next one came) is skipped, not run in a burst: the event runs
 * next at the first grid point after the late firing.  The handle stays valid
 * across firings until the event is cancelled (from anywhere, including its
 * own action).  0, -EINVAL (period_ns <= 0, fn NULL), -ENOMEM.
 * Concurrency: as shmq_sched_enter.
 */
SHMQ_API int shmq_sched_enter_periodic(shmq_sched *s, int64_t first_ns, int64_t period_ns,
				       int priority, shmq_action_fn fn, void *arg, shmq_event **ev);

/*
 * shmq_sched_event_info - what a pending event will do and when (for a
 * periodic event: its next deadline, already advanced while its action runs).
 * 0, or -ENOENT when the event ran or was cancelled.  Any thread.
 */
SHMQ_API int shmq_sched_event_info(shmq_sched *s, const shmq_event *ev,
				   struct shmq_event_info *out);

/*
 * shmq_sched_unwatch - stop watching obj (a shmq_queue *, shmq_pipe * or
 * shmq_proc * given to a watch call).  After it returns the watch's action
 * is not called again (unless it is running right now on the loop's thread).
 * Call it before closing a watched object.  0, or -ENOENT.  Any thread, and
 * from actions.
 */
SHMQ_API int shmq_sched_unwatch(shmq_sched *s, const void *obj);

/* The backend in use: "io_uring" or "fallback".  Static string; any thread. */
SHMQ_API const char *shmq_sched_backend(shmq_sched *s);

#ifdef __cplusplus
}
#endif
#endif /* SHMQ_SCHED_H */
