/* SPDX-License-Identifier: MIT */
/* Flags (Python's threading.Event) across processes. */
#ifndef SHMQ_FLAG_H
#define SHMQ_FLAG_H

#include <stdbool.h>

#include <shmq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shmq_flag shmq_flag;

/*
 * A flag is Python's threading.Event across processes: a futex word that is
 * set or clear.  shmq_flag_set wakes every waiter; waiting on a set flag
 * returns at once without a system call, and setting a flag nobody waits on
 * makes none either.  A waiter that was waiting when the flag was set returns
 * 0 even if the flag was cleared again before it ran.
 *
 * Handles are process-private: every process opens its own.  One handle may
 * be used by any number of threads of its process at once; close it only
 * when none uses it.  The region must stay open while the handle is in use.
 */

/* Create a named flag in r, clear (-EEXIST, -ENOSPC, -EINVAL for a bad name). */
SHMQ_API int shmq_flag_create(shmq_region *r, const char *name, shmq_flag **out);
/* Open a named flag (-ENOENT; -EINVAL if the object is not a flag; -EBADMSG
 * if it is corrupt; -EPROTO for another layout version). */
SHMQ_API int shmq_flag_open(shmq_region *r, const char *name, shmq_flag **out);
/* Set the flag and wake every waiter.  -EBADMSG: the word is corrupt. */
SHMQ_API int shmq_flag_set(shmq_flag *f);
/* Clear the flag.  -EBADMSG: the word is corrupt. */
SHMQ_API int shmq_flag_clear(shmq_flag *f);
/* Is the flag set right now (a snapshot)?  false for NULL or a corrupt word. */
SHMQ_API bool shmq_flag_is_set(const shmq_flag *f);
/* Wait until the flag is set: 0 once it is (at once if it is now),
 * -EAGAIN (SHMQ_NOWAIT) or -ETIMEDOUT when it stayed clear, -EBADMSG for a
 * corrupt word. */
SHMQ_API int shmq_flag_wait(shmq_flag *f, int64_t timeout_ns);
/* Free the handle.  Never changes the flag; NULL is a no-op. */
SHMQ_API void shmq_flag_close(shmq_flag *f);

#ifdef __cplusplus
}
#endif
#endif /* SHMQ_FLAG_H */
