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
