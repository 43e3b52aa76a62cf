/* SPDX-License-Identifier: MIT */
/* Conditions (Python's threading.Condition) across processes, with a shmq_lock. */
#ifndef SHMQ_COND_H
#define SHMQ_COND_H

#include <shmq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shmq_cond shmq_cond;

/*
 * A condition is Python's threading.Condition across processes, used with a
 * shmq_lock: shmq_cond_wait releases the lock and sleeps until a notify (or
 * the timeout), then takes the lock again.  Waiters are woken oldest first.
 * A notify is never spent on a waiter whose process has died (reaped or
 * not yet): it goes to the next live waiter.  Notifying with nobody waiting
 * costs one load; waking a waiter of another process costs a read of its
 * /proc entry, the liveness check.
 *
 * Handles are process-private: every process opens its own.  One handle may
 * be used by any number of threads of its process at once; close it only
 * when none uses it.  The region must stay open while the handle is in use.
 * At most 128 callers wait on one condition at once.
 */

/* Create a named condition in r (-EEXIST, -ENOSPC, -EINVAL for a bad name). */
SHMQ_API int shmq_cond_create(shmq_region *r, const char *name, shmq_cond **out);
/* Open a named condition (-ENOENT; -EINVAL if the object is not a
 * condition; -EBADMSG if it is corrupt; -EPROTO for another layout version). */
SHMQ_API int shmq_cond_open(shmq_region *r, const char *name, shmq_cond **out);
/* Release l (which the calling thread must hold), sleep until notified,
 * take l again.  0: notified; -ETIMEDOUT (SHMQ_NOWAIT: -EAGAIN): not
 * notified in time; both hold l again.  -EOWNERDEAD: l was taken over from
 * a holder that died (l held; repair the state it protects).  Errors that
 * leave l as it was: -EPERM (the calling thread does not hold l), -ENOSPC
 * (128 callers wait already), -EINVAL.  -EBADMSG: a corrupt condition or
 * lock (l held unless the lock itself is corrupt). */
SHMQ_API int shmq_cond_wait(shmq_cond *c, shmq_lock *l, int64_t timeout_ns);
/* Wake up to n live waiters, oldest first.  Returns how many it woke (>= 0),
 * -EINVAL, or -EBADMSG.  The caller need not hold the lock, but a notify
 * that must not be missed is made holding it, after changing the state the
 * waiters test. */
SHMQ_API int shmq_cond_notify(shmq_cond *c, unsigned n);
/* Wake every waiter; returns how many, as shmq_cond_notify. */
SHMQ_API int shmq_cond_notify_all(shmq_cond *c);
/* Free the handle.  Never changes the condition; NULL is a no-op. */
SHMQ_API void shmq_cond_close(shmq_cond *c);

#ifdef __cplusplus
}
#endif
#endif /* SHMQ_COND_H */
