/* SPDX-License-Identifier: MIT */
/*
 * The scheduler's watches on libshmq objects, through the hooks of core/watch_int.h:
 * a queue or a pipe end is watched on its readiness futex word, a process
 * on its pidfd.  The loop joins the word's sleepers while the watch waits
 * (from its arming until its action runs: sched/sched.c), so a publisher
 * whose watcher is busy makes no system call.
 */
#include "config.h"

#include <errno.h>

#include <shmq.h>

#include "sched/sched_int.h"
#include "core/watch_int.h"

static bool queue_readable(const void *obj)
{
	return shmq__queue_readable((shmq_queue *)(uintptr_t)obj);
}

static bool pipe_readable(const void *obj)
{
	return shmq__pipe_readable((shmq_pipe *)(uintptr_t)obj);
}

/* The re-checks' deep looks: a dead claimer's slot at the queue's head is
 * cleared (a corrupt one counts as ready: the action's get reports it), a
 * dead peer's end is marked gone (readable then: recv says -EPIPE). */
static bool queue_settle(const void *obj)
{
	return shmq__queue_settle((shmq_queue *)(uintptr_t)obj, false, true) == SHMQ__SETTLE_BAD;
}

static bool pipe_settle(const void *obj)
{
	shmq__pipe_settle((shmq_pipe *)(uintptr_t)obj);
	return false;
}

static uint64_t queue_progress(const void *obj)
{
	return shmq__queue_progress((shmq_queue *)(uintptr_t)obj);
}

static uint64_t pipe_progress(const void *obj)
{
	return shmq__pipe_progress((shmq_pipe *)(uintptr_t)obj);
}

SHMQ_API int shmq_sched_watch_queue(shmq_sched *s, shmq_queue *q, shmq_action_fn fn, void *arg)
{
	struct shmq__watch w;
	int rc;

	if (!s || !q || !fn)
		return -EINVAL;
	if ((rc = shmq__queue_watch(q, &w)) < 0)
		return rc;
	return shmq__sched_watch_word_settled(s, q, &w, queue_readable, queue_progress, queue_settle,
					      fn, arg);
}

SHMQ_API int shmq_sched_watch_pipe(shmq_sched *s, shmq_pipe *p, shmq_action_fn fn, void *arg)
{
	struct shmq__watch w;
	int rc;

	if (!s || !p || !fn)
		return -EINVAL;
	if ((rc = shmq__pipe_watch(p, &w)) < 0)
		return rc;
	return shmq__sched_watch_word_settled(s, p, &w, pipe_readable, pipe_progress, pipe_settle,
					      fn, arg);
}

SHMQ_API int shmq_sched_watch_proc(shmq_sched *s, shmq_proc *p, shmq_action_fn fn, void *arg)
{
	int pidfd;

	if (!s || !p || !fn)
		return -EINVAL;
	pidfd = shmq__proc_pidfd(p);
	if (pidfd < 0)
		return pidfd;
	return shmq__sched_watch_fd(s, p, pidfd, fn, arg);
}
