/* SPDX-License-Identifier: MIT */
/* The scheduler's watches on libshmq objects (the hooks are in watch.h). */
#include "config.h"

#include <errno.h>

#include <shmq.h>

#include "sched_int.h"
#include "watch.h"

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
