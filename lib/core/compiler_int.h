/* SPDX-License-Identifier: MIT */
/* Private: compiler helpers. */
#ifndef SHMQ__COMPILER_H
#define SHMQ__COMPILER_H

#include <stddef.h>

#define SHMQ__CACHELINE 64
#define SHMQ__ALIGNED(n) __attribute__((aligned(n)))
#define SHMQ__LIKELY(x) __builtin_expect(!!(x), 1)
#define SHMQ__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define SHMQ__COLD __attribute__((cold, noinline))
/* A hot entry point that starts on a cache line.  The pipe's polled round
 * trip moved by 13-17% with where the link happened to put shmq_pipe_send
 * and shmq_pipe_recv (in 16-byte steps, repeating every 64 bytes); started
 * on a line, both stay at the fast end (tests/check-align.sh). */
#define SHMQ__LINE_START __attribute__((aligned(SHMQ__CACHELINE)))
#define SHMQ__ALWAYS_INLINE inline __attribute__((always_inline))
#define SHMQ__UNUSED __attribute__((unused))
#define SHMQ__ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define SHMQ__ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((__typeof__(x))(a) - 1))
#define SHMQ__IS_POW2(x) ((x) != 0 && ((x) & ((x) - 1)) == 0)

/* Compile-time layout checks for structs that live in shared memory. */
#define SHMQ__LINE_ALIGNED_FIELD(type, field)                                          \
	_Static_assert(offsetof(type, field) % SHMQ__CACHELINE == 0,                   \
		       #type "." #field " must start a cache line")

#endif
