/* SPDX-License-Identifier: MIT */
/* Pipes (seed 12-5): a duplex channel of two SPSC byte rings. */
#ifndef SHMQ_PIPE_H
#define SHMQ_PIPE_H

#include <shmq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

struct shmq_pipe_opts {
	size_t capacity; /* bytes per direction; 0 means the default */
};
SHMQ_API int shmq_pipe_create(shmq_region *r, const char *name, const struct shmq_pipe_opts *o,
			      shmq_pipe **end0, shmq_pipe **end1);
SHMQ_API int shmq_pipe_open(shmq_region *r, const char *name, int end, shmq_pipe **out);
SHMQ_API int shmq_pipe_send(shmq_pipe *p, const void *msg, size_t len, int64_t timeout_ns);
SHMQ_API ssize_t shmq_pipe_recv(shmq_pipe *p, void *buf, size_t cap, int64_t timeout_ns);
SHMQ_API void shmq_pipe_close(shmq_pipe *p);

#ifdef __cplusplus
}
#endif
#endif /* SHMQ_PIPE_H */
