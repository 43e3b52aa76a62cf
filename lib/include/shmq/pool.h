/* SPDX-License-Identifier: MIT */
/* Pools (seed 12-6): a work-stealing pool of worker processes. */
#ifndef SHMQ_POOL_H
#define SHMQ_POOL_H

#include <shmq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int (*shmq_task_fn)(const void *in, void *out);

struct shmq_task {
	const char *name;
	shmq_task_fn fn;
	struct shmq_task *next; /* owned by the library */
};
SHMQ_API void shmq_task_register(struct shmq_task *t);

/* Register fn as a pool task under its own name, at file scope. */
#define SHMQ_TASK(fn)                                                               \
	static struct shmq_task shmq__task_##fn = { #fn, fn, 0 };                    \
	__attribute__((constructor)) static void shmq__task_ctor_##fn(void)          \
	{                                                                            \
		shmq_task_register(&shmq__task_##fn);                                \
	}                                                                            \
	struct shmq__task_semicolon_##fn

struct shmq_pool_opts {
	unsigned workers; /* 0: online CPUs */
	size_t chunksize; /* 0: automatic */
};
SHMQ_API int shmq_pool_create(shmq_region *r, const struct shmq_pool_opts *o, shmq_pool **out);
SHMQ_API int shmq_pool_map(shmq_pool *p, const char *task, const void *in, size_t in_size,
			   void *out, size_t out_size, size_t n, int64_t timeout_ns);
SHMQ_API int shmq_pool_map_async(shmq_pool *p, const char *task, const void *in, size_t in_size,
				 void *out, size_t out_size, size_t n, shmq_async **out_async);
SHMQ_API int shmq_pool_apply_async(shmq_pool *p, const char *task, const void *in, size_t in_size,
				   void *out, size_t out_size, shmq_async **out_async);
SHMQ_API int shmq_async_wait(shmq_async *a, int64_t timeout_ns);
SHMQ_API bool shmq_async_ready(shmq_async *a);
SHMQ_API int shmq_async_get(shmq_async *a, int64_t timeout_ns);
SHMQ_API void shmq_async_free(shmq_async *a);
SHMQ_API int shmq_pool_close(shmq_pool *p);
SHMQ_API int shmq_pool_join(shmq_pool *p, int64_t timeout_ns);
SHMQ_API int shmq_pool_terminate(shmq_pool *p);
SHMQ_API void shmq_pool_free(shmq_pool *p);

#ifdef __cplusplus
}
#endif
#endif /* SHMQ_POOL_H */
