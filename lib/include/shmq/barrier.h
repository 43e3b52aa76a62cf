/* SPDX-License-Identifier: MIT */
/* Barriers (seed 12-3): Python threading.Barrier across processes. */
#ifndef SHMQ_BARRIER_H
#define SHMQ_BARRIER_H

#include <shmq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

SHMQ_API int shmq_barrier_create(shmq_region *r, const char *name, unsigned parties,
				 shmq_barrier **out);
SHMQ_API int shmq_barrier_open(shmq_region *r, const char *name, shmq_barrier **out);
/* >= 0: the caller's arrival index in [0, parties).  -ETIMEDOUT to the waiter
 * that timed out (the barrier is then broken); -EPIPE to every other waiter,
 * now and later, until shmq_barrier_reset. */
SHMQ_API int shmq_barrier_wait(shmq_barrier *b, int64_t timeout_ns);
SHMQ_API int shmq_barrier_abort(shmq_barrier *b);
SHMQ_API int shmq_barrier_reset(shmq_barrier *b);
SHMQ_API void shmq_barrier_close(shmq_barrier *b);

#ifdef __cplusplus
}
#endif
#endif /* SHMQ_BARRIER_H */
