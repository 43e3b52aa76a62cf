/* SPDX-License-Identifier: MIT */
/*
 * Private: an async result's readiness word, for waitsets (lib/embed).  The
 * job's `done` word leaves JOB_RUNNING with a seq_cst CAS followed by a wake
 * of done_sleepers (job_finish, shmq_pool_terminate, the supervisor), so a
 * watcher counted in done_sleepers follows the protocol of core/watch_int.h;
 * whether the result is ready is shmq_async_ready (which also supervises a
 * pool whose worker died, so a watcher's liveness re-check calls it).
 */
#ifndef SHMQ__POOL_READY_INT_H
#define SHMQ__POOL_READY_INT_H

#include <shmq.h>

#include "core/watch_int.h"

/* a's job's done word and its sleeper count.  0, or -EINVAL for NULL. */
int shmq__async_watch(shmq_async *a, struct shmq__watch *w);

#endif
