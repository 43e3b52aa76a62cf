/* SPDX-License-Identifier: MIT */
/* Threads: start, is_alive, join with a timeout (retryable) and the result,
 * close with and without a join.  Meant to run under TSan too. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include "testutil.h"

#include "core/atomic_int.h"

#define MS ((int64_t)1000000)

static void *return_arg(void *p)
{
	return p;
}

/* Runs until *gate becomes nonzero, then returns gate + 1. */
static void *wait_gate(void *p)
{
	uint32_t *gate = p;
	struct timespec ts = { 0, 200 * 1000 };

	/* pairs with the store_release of *gate in the test */
	while (!shmq__load_acquire(gate))
		nanosleep(&ts, NULL);
	return gate + 1;
}

static void test_start_join(void **state)
{
	shmq_thread *t;
	void *ret = NULL;
	int x;

	(void)state;
	assert_int_equal(shmq_thread_start(NULL, NULL, &t), -EINVAL);
	assert_int_equal(shmq_thread_start(return_arg, &x, &t), 0);
	assert_int_equal(shmq_thread_join(t, SHMQ_FOREVER, &ret), 0);
	assert_ptr_equal(ret, &x);
	assert_false(shmq_thread_is_alive(t));
	/* a second join returns the same result at once */
	ret = NULL;
	assert_int_equal(shmq_thread_join(t, SHMQ_NOWAIT, &ret), 0);
	assert_ptr_equal(ret, &x);
	assert_int_equal(shmq_thread_join(t, SHMQ_NOWAIT, NULL), 0);
	shmq_thread_close(t);
}

static void test_join_timeout_retry(void **state)
{
	uint32_t gate[2] = { 0, 0 };
	shmq_thread *t;
	void *ret = NULL;
	int64_t t0, el;

	(void)state;
	assert_int_equal(shmq_thread_start(wait_gate, gate, &t), 0);
	assert_true(shmq_thread_is_alive(t));
	assert_int_equal(shmq_thread_join(t, SHMQ_NOWAIT, &ret), -EAGAIN);
	for (int i = 0; i < 3; i++) {
		int64_t to = (i + 1) * 10 * MS;

		t0 = shmq_now_ns();
		assert_int_equal(shmq_thread_join(t, to, &ret), -ETIMEDOUT);
		el = shmq_now_ns() - t0;
		assert_true(el >= to); /* never early */
		assert_true(shmq_thread_is_alive(t));
	}
	assert_null(ret);
	shmq__store_release(&gate[0], 1); /* pairs with the load_acquire in wait_gate */
	assert_int_equal(shmq_thread_join(t, 5000 * MS, &ret), 0);
	assert_ptr_equal(ret, &gate[1]);
	assert_false(shmq_thread_is_alive(t));
	shmq_thread_close(t);
}

/* Many threads, each joined from the main thread in reverse order. */
static void test_many(void **state)
{
	enum { N = 16 };
	shmq_thread *t[N];
	uintptr_t vals[N];

	(void)state;
	for (int i = 0; i < N; i++) {
		vals[i] = (uintptr_t)i * 3 + 1;
		assert_int_equal(shmq_thread_start(return_arg, (void *)vals[i], &t[i]), 0);
	}
	for (int i = N - 1; i >= 0; i--) {
		void *ret;

		assert_int_equal(shmq_thread_join(t[i], SHMQ_FOREVER, &ret), 0);
		assert_int_equal((uintptr_t)ret, vals[i]);
		shmq_thread_close(t[i]);
	}
}

/* Closing a thread that was never joined detaches it; the record is freed
 * by whichever side finishes last (ASan / LSan check this). */
static void test_close_unjoined(void **state)
{
	/* static: the detached thread may look at it after we return */
	static uint32_t gate[2];
	shmq_thread *t;
	struct timespec ts = { 0, 20 * 1000 * 1000 };

	(void)state;
	assert_int_equal(shmq_thread_start(wait_gate, gate, &t), 0);
	shmq_thread_close(t); /* still running */
	shmq__store_release(&gate[0], 1); /* pairs with the load_acquire in wait_gate */
	nanosleep(&ts, NULL); /* let it finish (only for LSan's sake) */
	assert_int_equal(shmq_thread_start(return_arg, NULL, &t), 0);
	nanosleep(&ts, NULL);
	shmq_thread_close(t); /* already finished, never joined */
	nanosleep(&ts, NULL);
}

/* A join from another thread than the starter times out the same way. */
struct joiner {
	shmq_thread *t;
	int rc;
	void *ret;
};

static void *join_from_thread(void *p)
{
	struct joiner *j = p;

	j->rc = shmq_thread_join(j->t, 20 * MS, &j->ret);
	return NULL;
}

static void test_join_timeout_from_threads(void **state)
{
	uint32_t gate[2] = { 0, 0 };
	struct joiner j;
	shmq_thread *t, *jt;

	(void)state;
	assert_int_equal(shmq_thread_start(wait_gate, gate, &t), 0);
	j = (struct joiner){ .t = t };
	assert_int_equal(shmq_thread_start(join_from_thread, &j, &jt), 0);
	assert_int_equal(shmq_thread_join(jt, SHMQ_FOREVER, NULL), 0);
	shmq_thread_close(jt);
	assert_int_equal(j.rc, -ETIMEDOUT);
	shmq__store_release(&gate[0], 1); /* pairs with the load_acquire in wait_gate */
	assert_int_equal(shmq_thread_join(t, SHMQ_FOREVER, NULL), 0);
	shmq_thread_close(t);
}

/* A thread that joins itself: what each join said, once it may look. */
struct self_join {
	shmq_thread *self; /* published by the starter before the gate */
	uint32_t gate;
	int rc_nowait, rc_timed, rc_forever;
};

static void *join_self(void *p)
{
	struct self_join *sj = p;
	struct timespec ts = { 0, 200 * 1000 };

	/* pairs with the store_release of gate in test_join_self */
	while (!shmq__load_acquire(&sj->gate))
		nanosleep(&ts, NULL);
	sj->rc_nowait = shmq_thread_join(sj->self, SHMQ_NOWAIT, NULL);
	sj->rc_timed = shmq_thread_join(sj->self, 20 * MS, NULL);
	/* only once the others said so: before, this one never returned */
	if (sj->rc_timed == -EDEADLK)
		sj->rc_forever = shmq_thread_join(sj->self, SHMQ_FOREVER, NULL);
	return sj;
}

/* A thread joining itself would wait for its own end for ever (with
 * SHMQ_FOREVER) or until every deadline: -EDEADLK, as pthread_join says
 * (Python raises RuntimeError).  The handle stays usable. */
static void test_join_self(void **state)
{
	struct self_join sj = { 0 };
	void *ret = NULL;

	(void)state;
	assert_int_equal(shmq_thread_start(join_self, &sj, &sj.self), 0);
	shmq__store_release(&sj.gate, 1); /* pairs with the load_acquire in join_self */
	assert_int_equal(shmq_thread_join(sj.self, SHMQ_FOREVER, &ret), 0);
	assert_ptr_equal(ret, &sj);
	assert_int_equal(sj.rc_nowait, -EDEADLK);
	assert_int_equal(sj.rc_timed, -EDEADLK);
	assert_int_equal(sj.rc_forever, -EDEADLK);
	shmq_thread_close(sj.self);
}

/* A thread that ends itself with pthread_exit, or that a server cancels
 * (deferred) where it waits: it has finished all the same.  join returns 0
 * with its exit value (the one given to pthread_exit, PTHREAD_CANCELED),
 * and is_alive says false.  Old code: done was set only when fn returned,
 * so is_alive stayed true and every join timed out (SHMQ_FOREVER: hung). */
static void *exits_itself(void *arg)
{
	pthread_exit(arg);
}

struct cancellee {
	pthread_t self;
	uint32_t started;
};

/* No local of this function lives in memory: AddressSanitizer poisons
 * the red zones around such locals on entry and unpoisons them on return,
 * which a cancellation skips, and its own teardown of the thread then
 * trips over the stale poison (google/sanitizers#1399). */
static void *waits_for_cancel(void *arg)
{
	struct cancellee *c = arg;

	c->self = pthread_self();
	__atomic_store_n(&c->started, 1, __ATOMIC_SEQ_CST);
	for (;;)
		pause(); /* a cancellation point, waiting for ever */
	return NULL;
}

static void test_exit_and_cancel(void **state)
{
	struct cancellee c = { 0 };
	shmq_thread *t;
	void *ret = NULL;
	int v = 7;

	(void)state;
	assert_int_equal(shmq_thread_start(exits_itself, &v, &t), 0);
	assert_int_equal(shmq_thread_join(t, 5000000000LL, &ret), 0);
	assert_ptr_equal(ret, &v);
	assert_false(shmq_thread_is_alive(t));
	shmq_thread_close(t);

	assert_int_equal(shmq_thread_start(waits_for_cancel, &c, &t), 0);
	while (!__atomic_load_n(&c.started, __ATOMIC_SEQ_CST))
		sched_yield();
	assert_int_equal(pthread_cancel(c.self), 0);
	assert_int_equal(shmq_thread_join(t, 5000000000LL, &ret), 0);
	assert_ptr_equal(ret, PTHREAD_CANCELED);
	assert_false(shmq_thread_is_alive(t));
	shmq_thread_close(t);
}

int main(void)
{
	alarm(240); /* a hang fails the program instead of stalling the suite */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_start_join),
		cmocka_unit_test(test_join_timeout_retry),
		cmocka_unit_test(test_many),
		cmocka_unit_test(test_close_unjoined),
		cmocka_unit_test(test_join_timeout_from_threads),
		cmocka_unit_test(test_join_self),
		cmocka_unit_test(test_exit_and_cancel),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
