/* SPDX-License-Identifier: MIT */
/* Locks (seed 12-2): futex based, process shared, dead holders detected. */
#ifndef SHMQ_LOCK_H
#define SHMQ_LOCK_H

#include <shmq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A lock is Python's threading.Lock across processes: a futex word in shared
 * memory, acquired and released without a system call when uncontended.
 * Its holder is recorded as the holder's region owner id (its attachment to
 * the region) and thread, so that
 *   - a holder that dies holding it is found through the region's process
 *     table: the next acquirer gets the lock with -EOWNERDEAD (within one
 *     sleep slice, about 10 ms, of the death, for a waiter already waiting);
 *   - re-acquiring it from the holding thread gives -EDEADLK (through any
 *     handle, also one from another shmq_region_open of the region in the
 *     same process) and releasing it from any other thread gives -EPERM (it
 *     is not a recursive lock, and unlike Python's Lock it must be released
 *     by the thread that holds it, through a handle of the region open it
 *     was acquired through).
 *
 * Handles are process-private: every process (a forked child included)
 * opens its own region and its own lock handle.  One handle may be used by
 * any number of threads of its process at once; close it only when none
 * uses it.  The region must stay open while the handle is in use.
 */

/* Create a named lock in r, free (-EEXIST if the name is taken, -ENOSPC if
 * the region is full, -EINVAL for a bad name). */
SHMQ_API int shmq_lock_create(shmq_region *r, const char *name, shmq_lock **out);
/* Open a named lock (-ENOENT; -EINVAL if the object is not a lock; -EBADMSG
 * if it is corrupt). */
SHMQ_API int shmq_lock_open(shmq_region *r, const char *name, shmq_lock **out);
/* Acquire.  SHMQ_NOWAIT: -EAGAIN when held; a holder found dead (at once
 * when it was reaped, else within a slice of retries) gives -EOWNERDEAD.
 * -ETIMEDOUT after timeout_ns, never earlier.  SHMQ_FOREVER waits without
 * limit, but never behind a dead holder.
 * -EOWNERDEAD: the holder died holding it; the caller now holds the lock and
 * should repair whatever the lock protects before releasing it.
 * -EDEADLK: the calling thread holds it already (through any region open).
 * -EBADMSG: the lock word is corrupt. */
SHMQ_API int shmq_lock_acquire(shmq_lock *l, int64_t timeout_ns);
/* Release.  -EPERM when the calling thread does not hold it. */
SHMQ_API int shmq_lock_release(shmq_lock *l);
/* Python's Lock.locked(): is it held by anybody right now (a snapshot)? */
SHMQ_API bool shmq_lock_locked(shmq_lock *l);
/* Free the handle.  Never changes the lock; NULL is a no-op. */
SHMQ_API void shmq_lock_close(shmq_lock *l);

/*
 * Placement: a lock in memory the caller provides (its own shared mapping,
 * inside a larger struct, ...), outside any region's object directory.
 *
 *   void *mem = ...shared, 8-byte aligned, shmq_lock_footprint() bytes...;
 *   shmq_lock_init(mem);                       (once, before anyone attaches)
 *   shmq_lock_attach(r, mem, &l);              (in every process that uses it)
 *   ... shmq_lock_acquire(l, ...) / shmq_lock_release(l) ...
 *   shmq_lock_close(l);
 *
 * The region r passed to attach only names the caller (its owner id) and
 * provides the process table used to detect dead holders: every process
 * using one placed lock must attach it through the same region.  mem must
 * stay mapped while the handle is used; the layout is position independent,
 * so each process may map it at a different address.
 */
/* Bytes a lock occupies (a multiple of 64: the lock's line, then a line of
 * statistics for the shmq tool; keep them off other data's lines). */
SHMQ_API size_t shmq_lock_footprint(void);
/* Initialise a free lock at mem (8-byte aligned; 64 recommended).  Not safe
 * against concurrent users of mem.  -EINVAL for NULL or misaligned mem. */
SHMQ_API int shmq_lock_init(void *mem);
/* A handle on the lock initialised at mem, acting for r's attachment.
 * -EINVAL (NULL, misaligned), -EBADF (r was inherited across fork()),
 * -EBADMSG (mem holds no initialised lock), -ENOMEM. */
SHMQ_API int shmq_lock_attach(shmq_region *r, void *mem, shmq_lock **out);

#ifdef __cplusplus
}
#endif
#endif /* SHMQ_LOCK_H */
