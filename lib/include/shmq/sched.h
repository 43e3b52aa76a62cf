/* SPDX-License-Identifier: MIT */
/* Scheduler (seed 12-8): timed events and an event loop on io_uring. */
#ifndef SHMQ_SCHED_H
#define SHMQ_SCHED_H

#include <shmq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*shmq_action_fn)(void *arg);

struct shmq_event_info {
	int64_t when_ns;
	int priority;
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
	SHMQ_SCHED_IO_URING = 1, /* io_uring or fail (-ENOSYS, -EPERM, ... from io_uring_setup) */
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

SHMQ_API int shmq_sched_create(const struct shmq_sched_opts *o, shmq_sched **out);
SHMQ_API int shmq_sched_enter(shmq_sched *s, int64_t delay_ns, int priority, shmq_action_fn fn,
			      void *arg, shmq_event **ev);
SHMQ_API int shmq_sched_enterabs(shmq_sched *s, int64_t when_ns, int priority, shmq_action_fn fn,
				 void *arg, shmq_event **ev);
/* -ENOENT if it ran or was cancelled. */
SHMQ_API int shmq_sched_cancel(shmq_sched *s, shmq_event *ev);
SHMQ_API bool shmq_sched_empty(shmq_sched *s);
SHMQ_API size_t shmq_sched_queue(shmq_sched *s, struct shmq_event_info *out, size_t max);
/* Non-blocking: ns until the next event, or -1 if none. */
SHMQ_API int64_t shmq_sched_run(shmq_sched *s, bool blocking);
SHMQ_API int shmq_sched_watch_queue(shmq_sched *s, shmq_queue *q, shmq_action_fn fn, void *arg);
SHMQ_API int shmq_sched_watch_pipe(shmq_sched *s, shmq_pipe *p, shmq_action_fn fn, void *arg);
SHMQ_API int shmq_sched_watch_proc(shmq_sched *s, shmq_proc *p, shmq_action_fn fn, void *arg);
SHMQ_API int shmq_sched_stop(shmq_sched *s);
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
