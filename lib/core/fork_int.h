/* SPDX-License-Identifier: MIT */
/*
 * Private: which process a handle belongs to.
 *
 * Handles are private to the process that opened them (libshmq(3)).  A
 * child made by a bare fork() inherits copies that still name the parent:
 * its owner ids, its holder slots, its io_uring.  Used from the child they
 * would act as the parent (release the parent's lock, send on the parent's
 * end of a pipe), so every call through such a handle refuses with -EBADF
 * and changes nothing; *_close only frees the child's private copy.
 *
 * The check must cost next to nothing on hot paths, and getpid() is a
 * system call: the library caches the pid, refreshed in every child of
 * fork() by a pthread_atfork() handler.  (A child made by a raw clone(2) or
 * _Fork() runs no atfork handler; it is not supported.)  Handles record
 * shmq__self_pid() when they are made.
 */
#ifndef SHMQ__FORK_INT_H
#define SHMQ__FORK_INT_H

#include <stdbool.h>
#include <sys/types.h>

#include "core/compiler_int.h"

extern pid_t shmq__cached_pid;

/* Fill the cache (and register the atfork handler, once): by our
 * constructor, or by the first call when the host program's own
 * constructors reach the library first (a static link runs the program's
 * constructors before the archive's).  Returns the pid. */
pid_t shmq__self_pid_init(void);

/* The calling process's pid, without a system call. */
static inline pid_t shmq__self_pid(void)
{
	/* relaxed: written by shmq__self_pid_init in this process (or, in a
	 * child of fork(), by the atfork handler before the child runs
	 * anything else); each process only ever reads its own writes */
	pid_t pid = __atomic_load_n(&shmq__cached_pid, __ATOMIC_RELAXED);

	return SHMQ__LIKELY(pid != 0) ? pid : shmq__self_pid_init();
}

/* Was a handle recorded as opened by pid made in another process? */
static inline bool shmq__foreign(pid_t pid)
{
	return SHMQ__UNLIKELY(pid != shmq__self_pid());
}

#endif
