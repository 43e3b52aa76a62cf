/* SPDX-License-Identifier: MIT */
/*
 * libshmq: Python's concurrency toolbox - threads, locks, barriers,
 * processes, pipes, queues, pools, subprocesses and a scheduler - for
 * separate processes on one machine that talk through shared memory.
 *
 * The one header users include.  Conventions for every call:
 *  - int calls return 0 or a negative errno; length calls return ssize_t.
 *  - timeouts are relative int64_t nanoseconds: SHMQ_NOWAIT (0) never
 *    blocks (-EAGAIN where it would), SHMQ_FOREVER (-1) waits without
 *    limit, > 0 waits at most that long (-ETIMEDOUT); any other negative
 *    timeout is -EINVAL, and the call changes nothing.
 *  - nothing read from shared memory is trusted: corruption is -EBADMSG.
 *  - the library never aborts, exits, prints or raises signals for you.
 */
#ifndef SHMQ_H
#define SHMQ_H

#include <shmq/common.h>
#include <shmq/region.h>
#include <shmq/lock.h>
#include <shmq/barrier.h>
#include <shmq/flag.h>
#include <shmq/cond.h>
#include <shmq/sem.h>
#include <shmq/thread.h>
#include <shmq/pipe.h>
#include <shmq/queue.h>
#include <shmq/proc.h>
#include <shmq/run.h>
#include <shmq/pool.h>
#include <shmq/sched.h>
#include <shmq/waitset.h>

#endif /* SHMQ_H */
