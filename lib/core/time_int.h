/* SPDX-License-Identifier: MIT */
/*
 * Private: nanoseconds, the library's one unit of time (shmq_now_ns, every
 * deadline and timeout), as the timespec the system calls take.
 */
#ifndef SHMQ__TIME_H
#define SHMQ__TIME_H

#include <stdint.h>
#include <time.h>
#include <linux/time_types.h>

#define SHMQ__NS_PER_SEC INT64_C(1000000000)

/* ns as a timespec; a negative ns is 0 (a time already passed). */
static inline struct timespec shmq__ns_to_timespec(int64_t ns)
{
	if (ns < 0)
		ns = 0;
	return (struct timespec){ .tv_sec = (time_t)(ns / SHMQ__NS_PER_SEC),
				  .tv_nsec = (long)(ns % SHMQ__NS_PER_SEC) };
}

/* The same for io_uring's and the futex's 64-bit __kernel_timespec. */
static inline struct __kernel_timespec shmq__ns_to_kernel_timespec(int64_t ns)
{
	struct timespec t = shmq__ns_to_timespec(ns);

	return (struct __kernel_timespec){ .tv_sec = t.tv_sec, .tv_nsec = t.tv_nsec };
}

/* A timespec as ns. */
static inline int64_t shmq__timespec_to_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * SHMQ__NS_PER_SEC + ts->tv_nsec;
}

#endif /* SHMQ__TIME_H */
