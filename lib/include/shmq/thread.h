/* SPDX-License-Identifier: MIT */
/* Threads (seed 12-1): Python threading.Thread. */
#ifndef SHMQ_THREAD_H
#define SHMQ_THREAD_H

#include <shmq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A thread is Python's threading.Thread for a C function: start runs
 * fn(arg) on a new pthread; join waits for it with a timeout and hands back
 * its return value.  A handle is used by one thread at a time (join, close),
 * while is_alive may be called from any thread until close.  A handle
 * inherited across fork() names a thread of the parent: join is -EBADF,
 * is_alive false, close frees only the child's copy.
 */

/* Start fn(arg) on a new thread.  -EINVAL (fn or out NULL), -EAGAIN (the
 * system's thread limit), -ENOMEM. */
SHMQ_API int shmq_thread_start(void *(*fn)(void *), void *arg, shmq_thread **out);
/* true until fn has returned (Python's Thread.is_alive). */
SHMQ_API bool shmq_thread_is_alive(shmq_thread *t);
/* Wait for fn to return and store its result in *ret (ret may be NULL).
 * SHMQ_NOWAIT: -EAGAIN while it runs; -ETIMEDOUT after timeout_ns, never
 * earlier; may be retried after either.  Once it succeeded, further joins
 * return 0 and the same result at once.  -EDEADLK when t is the calling
 * thread. */
SHMQ_API int shmq_thread_join(shmq_thread *t, int64_t timeout_ns, void **ret);
/* Free the handle.  Normally after a successful join; closing a thread that
 * was not joined detaches it (it runs on and cleans up after itself). */
SHMQ_API void shmq_thread_close(shmq_thread *t);

#ifdef __cplusplus
}
#endif
#endif /* SHMQ_THREAD_H */
