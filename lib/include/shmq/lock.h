/* SPDX-License-Identifier: MIT */
/* Locks (seed 12-2): futex based, process shared, dead holders detected. */
#ifndef SHMQ_LOCK_H
#define SHMQ_LOCK_H

#include <shmq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Create a named lock in r (-EEXIST if the name is taken, -ENOSPC if full). */
SHMQ_API int shmq_lock_create(shmq_region *r, const char *name, shmq_lock **out);
/* Open a named lock (-ENOENT; -EINVAL if the object is not a lock). */
SHMQ_API int shmq_lock_open(shmq_region *r, const char *name, shmq_lock **out);
/* Acquire.  SHMQ_NOWAIT: -EAGAIN when held.  -ETIMEDOUT after timeout_ns.
 * -EOWNERDEAD: the holder died holding it; the caller now holds the lock.
 * -EDEADLK: the calling thread holds it already. */
SHMQ_API int shmq_lock_acquire(shmq_lock *l, int64_t timeout_ns);
/* Release.  -EPERM when the calling thread does not hold it. */
SHMQ_API int shmq_lock_release(shmq_lock *l);
SHMQ_API void shmq_lock_close(shmq_lock *l);

#ifdef __cplusplus
}
#endif
#endif /* SHMQ_LOCK_H */
