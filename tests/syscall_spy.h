/* SPDX-License-Identifier: MIT */
/*
 * For the tests of the sleepers' remote fences (core/wait_int.h, Asymmetric
 * fences): syscall(2) interposed (the library reaches futex and membarrier
 * through it) to count membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) calls and
 * futex wakes, to run a hook at each fence (before the call), to refuse membarrier
 * altogether (ENOSYS) as a kernel without it would, and to record how far ahead
 * the longest timed futex sleep was to end.  Include once, in the
 * test's one source file.
 */
#ifndef SHMQ_TEST_SYSCALL_SPY_H
#define SHMQ_TEST_SYSCALL_SPY_H

#include <dlfcn.h>
#include <errno.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>

static unsigned long spy_fences;        /* membarrier(GLOBAL_EXPEDITED) calls */
static unsigned long spy_wakes;         /* futex FUTEX_WAKE / FUTEX_WAKE_BITSET calls */
static void (*spy_fence_hook)(void);     /* run at each, before the call */
static bool spy_refuse_membarrier;       /* every membarrier fails with ENOSYS */
static int64_t spy_sleep_max_ns;         /* longest FUTEX_WAIT_BITSET timeout, from its call */

/* A FUTEX_WAIT_BITSET's absolute CLOCK_MONOTONIC timeout, as ns from now:
 * the longest since spy_sleep_max_ns was last reset is kept there. */
static void spy_note_sleep(const struct timespec *until)
{
	struct timespec now;
	int64_t ahead, max;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ahead = (int64_t)(until->tv_sec - now.tv_sec) * 1000000000 + (until->tv_nsec - now.tv_nsec);
	max = __atomic_load_n(&spy_sleep_max_ns, __ATOMIC_SEQ_CST);
	while (ahead > max &&
	       !__atomic_compare_exchange_n(&spy_sleep_max_ns, &max, ahead, false,
					    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		;
}

long syscall(long nr, ...)
{
	static long (*real)(long, ...);
	void (*hook)(void);
	long a[6];
	va_list ap;

	/* Only futex takes a sixth argument from the library, and on x86-64
	 * a sixth variadic argument is on the caller's stack: reading one the
	 * caller did not pass reads its frame (AddressSanitizer reports a
	 * stack-buffer-underflow).  The first five come from registers. */
	va_start(ap, nr);
	for (int i = 0; i < 6; i++)
		a[i] = i < 5 || nr == SYS_futex ? va_arg(ap, long) : 0;
	va_end(ap);
	if (!__atomic_load_n(&real, __ATOMIC_SEQ_CST))
		__atomic_store_n(&real, (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall"),
				 __ATOMIC_SEQ_CST);
	if (nr == SYS_membarrier && __atomic_load_n(&spy_refuse_membarrier, __ATOMIC_SEQ_CST)) {
		errno = ENOSYS;
		return -1;
	}
	if (nr == SYS_futex && ((a[1] & FUTEX_CMD_MASK) == FUTEX_WAKE ||
				(a[1] & FUTEX_CMD_MASK) == FUTEX_WAKE_BITSET))
		__atomic_add_fetch(&spy_wakes, 1, __ATOMIC_SEQ_CST);
	if (nr == SYS_futex && (a[1] & FUTEX_CMD_MASK) == FUTEX_WAIT_BITSET && a[3])
		spy_note_sleep((const struct timespec *)a[3]);
	if (nr == SYS_membarrier && a[0] == MEMBARRIER_CMD_GLOBAL_EXPEDITED) {
		__atomic_add_fetch(&spy_fences, 1, __ATOMIC_SEQ_CST);
		hook = __atomic_load_n(&spy_fence_hook, __ATOMIC_SEQ_CST);
		if (hook)
			hook();
	}
	return real(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

static inline unsigned long spy_fence_count(void)
{
	return __atomic_load_n(&spy_fences, __ATOMIC_SEQ_CST);
}

static inline unsigned long spy_wake_count(void)
{
	return __atomic_load_n(&spy_wakes, __ATOMIC_SEQ_CST);
}

#endif /* SHMQ_TEST_SYSCALL_SPY_H */
