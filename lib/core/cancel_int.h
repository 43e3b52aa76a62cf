/* SPDX-License-Identifier: MIT */
/*
 * Private: calls that are no cancellation points.
 *
 * A call that holds private state across a cancellation point of its own
 * (a pthread mutex, a claimed job, a descriptor, a child it must reap) runs
 * with deferred cancellation disabled, as glibc's own functions that are no
 * cancellation points do (pthreads(7)): a thread cancelled there would leave
 * that state behind for good.  The caller's cancelability comes back on
 * return, and a cancel requested meanwhile acts at its next cancellation
 * point.  Callbacks the library runs for the caller get its cancelability
 * back while they run.
 */
#ifndef SHMQ__CANCEL_INT_H
#define SHMQ__CANCEL_INT_H

#include <pthread.h>

/* Disable cancellation: the state to give shmq__cancel_restore. */
static inline int shmq__cancel_off(void)
{
	int cs;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cs);
	return cs;
}

static inline void shmq__cancel_restore(int cs)
{
	pthread_setcancelstate(cs, NULL);
}

#endif
