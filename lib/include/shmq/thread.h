/* SPDX-License-Identifier: MIT */
/* Threads (seed 12-1): Python threading.Thread. */
#ifndef SHMQ_THREAD_H
#define SHMQ_THREAD_H

#include <shmq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

SHMQ_API int shmq_thread_start(void *(*fn)(void *), void *arg, shmq_thread **out);
SHMQ_API bool shmq_thread_is_alive(shmq_thread *t);
/* May be retried after -ETIMEDOUT.  ret may be NULL. */
SHMQ_API int shmq_thread_join(shmq_thread *t, int64_t timeout_ns, void **ret);
/* After a successful join. */
SHMQ_API void shmq_thread_close(shmq_thread *t);

#ifdef __cplusplus
}
#endif
#endif /* SHMQ_THREAD_H */
