/* SPDX-License-Identifier: MIT */
/* Layer 1: the cached pid behind shmq__foreign (see core/fork_int.h). */
#include "config.h"

#include <pthread.h>
#include <unistd.h>

#include "core/fork_int.h"

pid_t shmq__cached_pid;

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void fork_child(void)
{
	/* relaxed: the child is single-threaded here; see shmq__self_pid */
	__atomic_store_n(&shmq__cached_pid, getpid(), __ATOMIC_RELAXED);
}

static void fork_register(void)
{
	/* fails only with ENOMEM; children then cannot tell inherited
	 * handles from their own (both look theirs), as before this check */
	pthread_atfork(NULL, NULL, fork_child);
}

pid_t shmq__self_pid_init(void)
{
	pid_t pid = getpid();

	pthread_once(&fork_once, fork_register);
	/* relaxed: every thread of this process stores the same value; the
	 * loads are in shmq__self_pid */
	__atomic_store_n(&shmq__cached_pid, pid, __ATOMIC_RELAXED);
	return pid;
}

__attribute__((constructor)) static void fork_init(void)
{
	(void)shmq__self_pid_init();
}
