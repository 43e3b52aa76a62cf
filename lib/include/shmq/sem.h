/* SPDX-License-Identifier: MIT */
/* Semaphores (Python's Semaphore and BoundedSemaphore) across processes. */
#ifndef SHMQ_SEM_H
#define SHMQ_SEM_H

#include <shmq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shmq_sem shmq_sem;

/* Options: a NULL or zeroed struct means the defaults. */
struct shmq_sem_opts {
	unsigned max;   /* largest value (BoundedSemaphore); 0: unbounded (2^31 - 1) */
	unsigned flags; /* SHMQ_SEM_UNDO or 0 */
};

/* Units a process acquired and had not released come back when it dies
 * (System V's SEM_UNDO), never past max (a consumer that acquires units
 * others released counts more than max; as System V, the return clamps);
 * a waiter gets them within about a sleep slice (10 ms) of the death. */
#define SHMQ_SEM_UNDO 0x1u

/*
 * A semaphore is Python's threading.Semaphore across processes: a counter
 * in a futex word, acquired (decremented, waiting while it is 0) and
 * released (incremented, waking waiters) without a system call when nobody
 * waits.  With max it is a BoundedSemaphore: a release past max is refused.
 *
 * Handles are process-private: every process opens its own.  One handle may
 * be used by any number of threads of its process at once; close it only
 * when none uses it.  The region must stay open while the handle is in use.
 */

/* Create a named semaphore with value (<= max).  -EINVAL: value above max,
 * max above 2^31 - 1, unknown flags, a bad name; -EEXIST, -ENOSPC. */
SHMQ_API int shmq_sem_create(shmq_region *r, const char *name, unsigned value,
			     const struct shmq_sem_opts *o, shmq_sem **out);
/* Open a named semaphore (-ENOENT; -EINVAL if the object is not a semaphore;
 * -EBADMSG if it is corrupt; -EPROTO for another layout version). */
SHMQ_API int shmq_sem_open(shmq_region *r, const char *name, shmq_sem **out);
/* Take one unit: 0, -EAGAIN (SHMQ_NOWAIT) or -ETIMEDOUT while the value
 * stays 0, -EBADMSG for a corrupt word, -ENOSPC (SHMQ_SEM_UNDO) when 128
 * other live processes hold units already (each region open counts as a
 * process of its own; one that holds no units takes no room). */
SHMQ_API int shmq_sem_acquire(shmq_sem *s, int64_t timeout_ns);
/* Give n units back and wake up to n waiters.  -EINVAL for n == 0,
 * -EOVERFLOW (nothing changed) when the value would pass max, -EBADMSG. */
SHMQ_API int shmq_sem_release(shmq_sem *s, unsigned n);
/* The value right now (a snapshot); 0 for NULL. */
SHMQ_API unsigned shmq_sem_value(const shmq_sem *s);
/* Free the handle.  Never changes the semaphore (units this process holds
 * stay held); NULL is a no-op. */
SHMQ_API void shmq_sem_close(shmq_sem *s);

#ifdef __cplusplus
}
#endif
#endif /* SHMQ_SEM_H */
