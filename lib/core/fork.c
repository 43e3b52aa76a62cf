/* SPDX-License-Identifier: MIT */
/* Layer 1: the cached pid behind shmq__foreign (see core/fork_int.h). */
#include "config.h"

#include <pthread.h>
#include <unistd.h>

#include "core/fork_int.h"

pid_t shmq__cached_pid;

static void fork_child(void)
{
	/* relaxed: the child is single-threaded here; see shmq__self_pid */
	__atomic_store_n(&shmq__cached_pid, getpid(), __ATOMIC_RELAXED);
}

__attribute__((constructor)) static void fork_init(void)
{
	/* relaxed: as in fork_child, before any thread of ours exists */
	__atomic_store_n(&shmq__cached_pid, getpid(), __ATOMIC_RELAXED);
	/* fails only with ENOMEM; children then cannot tell inherited
	 * handles from their own (both look theirs), as before this check */
	pthread_atfork(NULL, NULL, fork_child);
}
