/* SPDX-License-Identifier: MIT */
/*
 * Threads (seed 12-1): Python's threading.Thread on top of pthreads, with a
 * join that takes a timeout.
 *
 * The thread runs a trampoline that, once fn returns, sets a "done" word and
 * wakes any joiner.  A thread that fn ends another way (pthread_exit, a
 * cancellation) never comes back to the trampoline: for those a
 * thread-specific value, set to the record while fn runs, has a destructor
 * that does the same.  (Not a cleanup handler: in C, glibc's unwinds by
 * longjmp, which AddressSanitizer takes for a jump off the thread's stack
 * and aborts on.)  A join waits on that word with a deadline (so
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
	void *ret;      /* the thread's exit value: from pthread_join */
	uint32_t done;  /* 0 while fn runs, 1 once it returned or ended the thread */
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

static void thread_finish(void *p)
{
	shmq_thread *t = p;

	/* pairs with the load_acquire of done in shmq_thread_join / is_alive */
	shmq__store_release(&t->done, 1);
	shmq__futex_wake(&t->done, INT_MAX);
	thread_unref(t);
}

/* The key whose destructor finishes a thread that fn ended itself or that
 * was cancelled: made once per process, never deleted (a thread of ours may
 * run while the library is in use). */
static pthread_key_t finish_key;
static int finish_key_rc;
static pthread_once_t finish_key_once = PTHREAD_ONCE_INIT;

static void finish_key_make(void)
{
	finish_key_rc = pthread_key_create(&finish_key, thread_finish);
}

static void *thread_trampoline(void *p)
{
	shmq_thread *t = p;
	bool armed;
	void *ret;

	/* shmq_thread_start made the key.  Setting it fails only for want of
	 * memory for glibc's second-level block of values: fn runs all the
	 * same, and only a pthread_exit or cancellation of it goes unseen */
	armed = pthread_setspecific(finish_key, t) == 0;
	ret = t->fn(t->arg);
	/* fn returned: finish here, after disarming the destructor (a value
	 * of NULL is never passed to it) */
	if (armed)
		pthread_setspecific(finish_key, NULL);
	thread_finish(t);
	return ret;
}

SHMQ_API int shmq_thread_start(void *(*fn)(void *), void *arg, shmq_thread **out)
{
	shmq_thread *t;
	int rc;

	if (!fn || !out)
		return -EINVAL;
	rc = pthread_once(&finish_key_once, finish_key_make);
	if (rc || finish_key_rc)
		return -EAGAIN; /* out of thread-specific keys (PTHREAD_KEYS_MAX) */
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
		/* The thread is finished: it is at most a few instructions
		 * (or the rest of its thread-specific destructors) from
		 * exiting, so this does not block long. */
		rc = pthread_join(t->th, &t->ret);
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
