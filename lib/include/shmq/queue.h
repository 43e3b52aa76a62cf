/* SPDX-License-Identifier: MIT */
/* Queues (seed 12-5): bounded MPMC message queues across processes. */
#ifndef SHMQ_QUEUE_H
#define SHMQ_QUEUE_H

#include <shmq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

struct shmq_queue_opts {
	uint32_t capacity; /* messages; 0 means the default */
	uint32_t max_msg;  /* bytes per message; 0 means the default */
};
SHMQ_API int shmq_queue_create(shmq_region *r, const char *name, const struct shmq_queue_opts *o,
			       shmq_queue **out);
SHMQ_API int shmq_queue_open(shmq_region *r, const char *name, shmq_queue **out);
SHMQ_API int shmq_queue_put(shmq_queue *q, const void *msg, size_t len, int64_t timeout_ns);
SHMQ_API ssize_t shmq_queue_get(shmq_queue *q, void *buf, size_t cap, int64_t timeout_ns);
/* No more puts; gets drain, then -EPIPE. */
SHMQ_API int shmq_queue_shutdown(shmq_queue *q);
SHMQ_API size_t shmq_queue_len(const shmq_queue *q);
SHMQ_API void shmq_queue_close(shmq_queue *q);

#ifdef __cplusplus
}
#endif
#endif /* SHMQ_QUEUE_H */
