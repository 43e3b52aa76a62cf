/* SPDX-License-Identifier: MIT */
/*
 * Private: the one barrier header.  Every access to a word that another
 * thread or process may touch at the same time goes through these helpers,
 * each naming its C11 memory order.  No volatile, no bare loads.
 *
 * They work on plain integer objects (the shared structs are position
 * independent byte layouts, not _Atomic types) through the __atomic builtins,
 * which both GCC and Clang implement with C11 semantics and which
 * ThreadSanitizer understands.
 *
 * Every use weaker than seq_cst carries a one-line comment at the call site
 * naming the operation it pairs with.
 */
#ifndef SHMQ__ATOMIC_H
#define SHMQ__ATOMIC_H

#include <stdbool.h>
#include <stdint.h>

#define shmq__load_relaxed(p)      __atomic_load_n((p), __ATOMIC_RELAXED)
#define shmq__load_acquire(p)      __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define shmq__load_seq_cst(p)      __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define shmq__store_relaxed(p, v)  __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define shmq__store_release(p, v)  __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define shmq__store_seq_cst(p, v)  __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)

#define shmq__fetch_add_relaxed(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
#define shmq__fetch_add_acq_rel(p, v) __atomic_fetch_add((p), (v), __ATOMIC_ACQ_REL)
#define shmq__fetch_add_release(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELEASE)
#define shmq__fetch_add_seq_cst(p, v) __atomic_fetch_add((p), (v), __ATOMIC_SEQ_CST)
#define shmq__fetch_sub_release(p, v) __atomic_fetch_sub((p), (v), __ATOMIC_RELEASE)
#define shmq__fetch_sub_acq_rel(p, v) __atomic_fetch_sub((p), (v), __ATOMIC_ACQ_REL)
#define shmq__fetch_sub_seq_cst(p, v) __atomic_fetch_sub((p), (v), __ATOMIC_SEQ_CST)
#define shmq__fetch_or_acq_rel(p, v)  __atomic_fetch_or((p), (v), __ATOMIC_ACQ_REL)
#define shmq__fetch_or_seq_cst(p, v)  __atomic_fetch_or((p), (v), __ATOMIC_SEQ_CST)
#define shmq__fetch_and_acq_rel(p, v) __atomic_fetch_and((p), (v), __ATOMIC_ACQ_REL)
#define shmq__fetch_and_relaxed(p, v) __atomic_fetch_and((p), (v), __ATOMIC_RELAXED)
#define shmq__fetch_and_seq_cst(p, v) __atomic_fetch_and((p), (v), __ATOMIC_SEQ_CST)

#define shmq__exchange_acquire(p, v) __atomic_exchange_n((p), (v), __ATOMIC_ACQUIRE)
#define shmq__exchange_release(p, v) __atomic_exchange_n((p), (v), __ATOMIC_RELEASE)
#define shmq__exchange_acq_rel(p, v) __atomic_exchange_n((p), (v), __ATOMIC_ACQ_REL)
#define shmq__exchange_seq_cst(p, v) __atomic_exchange_n((p), (v), __ATOMIC_SEQ_CST)

/* Compare-and-swap; on failure *expected is updated with the current value.
 * The failure order is relaxed except where named otherwise. */
#define shmq__cas_acquire(p, expected, desired)                                    \
	__atomic_compare_exchange_n((p), (expected), (desired), false,             \
				    __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)
#define shmq__cas_release(p, expected, desired)                                    \
	__atomic_compare_exchange_n((p), (expected), (desired), false,             \
				    __ATOMIC_RELEASE, __ATOMIC_RELAXED)
#define shmq__cas_acq_rel(p, expected, desired)                                    \
	__atomic_compare_exchange_n((p), (expected), (desired), false,             \
				    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)
#define shmq__cas_relaxed(p, expected, desired)                                    \
	__atomic_compare_exchange_n((p), (expected), (desired), false,             \
				    __ATOMIC_RELAXED, __ATOMIC_RELAXED)
#define shmq__cas_seq_cst(p, expected, desired)                                    \
	__atomic_compare_exchange_n((p), (expected), (desired), false,             \
				    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)
#define shmq__cas_weak_acq_rel(p, expected, desired)                               \
	__atomic_compare_exchange_n((p), (expected), (desired), true,              \
				    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)

#define shmq__fence_acquire() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define shmq__fence_release() __atomic_thread_fence(__ATOMIC_RELEASE)
#define shmq__fence_seq_cst() __atomic_thread_fence(__ATOMIC_SEQ_CST)

/* A polite pause inside a bounded spin loop. */
static inline void shmq__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

#endif /* SHMQ__ATOMIC_H */
