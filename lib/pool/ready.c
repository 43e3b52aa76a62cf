/* SPDX-License-Identifier: MIT */
/*
 * An async result's readiness word (pool/ready_int.h).
 */
#include "config.h"

#include <errno.h>

#include "core/fork_int.h"
#include "pool/creator_int.h"
#include "pool/ready_int.h"

int shmq__async_watch(shmq_async *a, struct shmq__watch *w)
{
	struct pool_job *job;

	if (!a || !w || !a->p)
		return -EINVAL; /* !a->p: its pool was freed, no word to watch */
	if (shmq__foreign(a->p->pid))
		return -EBADF; /* inherited across fork(): the parent's job */
	job = pool_job(a->p, a->job);
	w->word = &job->done;
	w->sleepers = &job->done_sleepers;
	w->enter = NULL; /* job->done is stored seq_cst: no fence to supply */
	w->fence = NULL;
	return 0;
}
