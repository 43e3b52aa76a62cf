/* SPDX-License-Identifier: MIT */
/* Types, constants and helpers shared by every libshmq call family. */
#ifndef SHMQ_COMMON_H
#define SHMQ_COMMON_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHMQ_API __attribute__((visibility("default")))

#define SHMQ_VERSION_MAJOR 0
#define SHMQ_VERSION_MINOR 2
#define SHMQ_VERSION_PATCH 0

/* Timeouts (relative, nanoseconds): SHMQ_NOWAIT, SHMQ_FOREVER or > 0.  Every
 * call that takes a timeout_ns returns -EINVAL for any other negative value,
 * before it changes anything. */
#define SHMQ_NOWAIT  ((int64_t)0)
#define SHMQ_FOREVER ((int64_t)-1)

/* Opaque handles, process-private; the state they name lives in a region. */
typedef struct shmq_region  shmq_region;
typedef struct shmq_lock    shmq_lock;
typedef struct shmq_barrier shmq_barrier;
typedef struct shmq_pipe    shmq_pipe;
typedef struct shmq_queue   shmq_queue;
typedef struct shmq_proc    shmq_proc;
typedef struct shmq_thread  shmq_thread;
typedef struct shmq_pool    shmq_pool;
typedef struct shmq_async   shmq_async;
typedef struct shmq_sched   shmq_sched;
typedef struct shmq_event   shmq_event;

/* A short, static description of a (negative or positive) errno value as
 * libshmq uses it.  Never NULL; thread safe. */
SHMQ_API const char *shmq_strerror(int err);

/* The library's clock: CLOCK_MONOTONIC in nanoseconds. */
SHMQ_API int64_t shmq_now_ns(void);

/* The library's version, "MAJOR.MINOR.PATCH". */
SHMQ_API const char *shmq_version(void);

#ifdef __cplusplus
}
#endif
#endif /* SHMQ_COMMON_H */
