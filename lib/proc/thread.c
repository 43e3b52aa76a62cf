/* SPDX-License-Identifier: MIT */
/*
 * Threads (seed 12-1): Python's threading.Thread on top of pthreads, with a
 * join that takes a timeout.
 *
 * The thread runs a trampoline that stores fn's result, then sets a "done"
 * word and wakes any joiner.  A join waits on that word with a deadline (so
 * it can time out and be retried), then calls pthread_join, which returns at
 * once because the thread is past its last step.  The record is shared by
 * the handle and the thread, each holding one reference: whichever lets go
 * last frees it, so closing an unjoined thread is safe too.
 *
 * A handle names a pthread of the process that started it.  A child of
 * fork() inherits a copy of the record but none of the threads, whose stacks
 * its libc has taken back: through such a copy join is -EBADF (it would wait
 * for ever, or pthread_join a thread the child never had), is_alive false,
 * and close frees only the copy (core/fork_int.h).
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>

#include <shmq.h>

#include "core/alloc_int.h"
#include "core/atomic_int.h"
#include "core/fork_int.h"
#include "core/wait_int.h"

struct shmq_thread {
	pthread_t th;
	pid_t owner;    /* the process that started it (core/fork_int.h) */
	void *(*fn)(void *);
	void *arg;
	void *ret;      /* fn's result; written before done */
	uint32_t done;  /* 0 while fn runs, 1 once ret is stored */
	uint32_t refs;  /* handle + running thread */
	bool joined;    /* pthread_join succeeded (handle side only) */
};

static void thread_unref(shmq_thread *t)
{
	/* pairs with the other holder's fetch_sub in thread_unref: the last
	 * one out sees every write the other made */
	if (shmq__fetch_sub_acq_rel(&t->refs, 1) == 1)
		shmq__free(t, sizeof(*t));
}

static void *thread_trampoline(void *p)
{
	shmq_thread *t = p;
	void *ret = t->fn(t->arg);

	t->ret = ret;
	/* pairs with the load_acquire of done in shmq_thread_join / is_alive */
	shmq__store_release(&t->done, 1);
	shmq__futex_wake(&t->done, INT_MAX);
	thread_unref(t);
	return ret;
}

SHMQ_API int shmq_thread_start(void *(*fn)(void *), void *arg, shmq_thread **out)
{
	shmq_thread *t;
	int rc;

	if (!fn || !out)
		return -EINVAL;
	t = shmq__calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->owner = shmq__self_pid();
	t->fn = fn;
	t->arg = arg;
	t->refs = 2; /* published to the thread by pthread_create */
	rc = pthread_create(&t->th, NULL, thread_trampoline, t);
	if (rc) {
		shmq__free(t, sizeof(*t));
		return rc == EAGAIN ? -EAGAIN : -rc;
	}
	*out = t;
	return 0;
}

SHMQ_API bool shmq_thread_is_alive(shmq_thread *t)
{
	if (!t || shmq__foreign(t->owner))
		return false; /* the thread is the parent's: none runs here */
	/* pairs with the store_release of done in thread_trampoline */
	return shmq__load_acquire(&t->done) == 0;
}

SHMQ_API int shmq_thread_join(shmq_thread *t, int64_t timeout_ns, void **ret)
{
	int64_t deadline;
	int rc;

	if (!t)
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__timeout_bad(timeout_ns)))
		return -EINVAL;
	if (shmq__foreign(t->owner))
		return -EBADF; /* inherited across fork(): not a thread of ours */
	if (!t->joined) {
		/* a thread not yet joined keeps its id: this is the thread
		 * itself, which would wait for its own end */
		if (pthread_equal(t->th, pthread_self()))
			return -EDEADLK;
		deadline = shmq__deadline(timeout_ns);
		/* pairs with the store_release of done in thread_trampoline */
		while (shmq__load_acquire(&t->done) == 0) {
			if (timeout_ns == SHMQ_NOWAIT)
				return -EAGAIN;
			rc = shmq__futex_wait(&t->done, 0, deadline);
			if (rc == -ETIMEDOUT)
				return -ETIMEDOUT;
		}
		/* The thread has stored its result; it is at most a few
		 * instructions from exiting, so this does not block long. */
		rc = pthread_join(t->th, NULL);
		if (rc)
			return -rc;
		t->joined = true;
	}
	if (ret)
		*ret = t->ret;
	return 0;
}

SHMQ_API void shmq_thread_close(shmq_thread *t)
{
	if (!t)
		return;
	if (shmq__foreign(t->owner)) {
		/* the child's copy: no thread here holds the other reference */
		shmq__free(t, sizeof(*t));
		return;
	}
	if (!t->joined)
		pthread_detach(t->th); /* nobody will join it: let it go */
	thread_unref(t);
}
