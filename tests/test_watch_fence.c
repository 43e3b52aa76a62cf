/* SPDX-License-Identifier: MIT */
/*
 * A waitset watching a pipe and the pipe's publishers ("Watchers" in
 * ring/spsc_int.h): a waitset counts itself in the pipe's watchers for
 * every wait, and runs membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) only on
 * the first of a run of them, as the pipe's own sleepers do.  Counted by
 * tests/syscall_spy.h.  Every blocking call here sleeps at once
 * (SHMQ_SPIN=0, set before the library reads it).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "testutil.h"

#include "core/wait_int.h"

#include "syscall_spy.h"

static int setup(void **state)
{
	return tu_region_setup(state, "wfence", (size_t)1 << 20);
}

static int teardown(void **state)
{
	return tu_region_teardown(state);
}

/* Send one byte and take it through the waitset: the wait counts in,
 * fences, finds it ready and counts out again. */
static void through_waitset(shmq_pipe *a, shmq_pipe *b, shmq_waitset *w)
{
	struct shmq_ready rd;
	char c;

	assert_int_equal(shmq_pipe_send(a, "x", 1, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_waitset_wait(w, &rd, 1, 10 * SHMQ__NS_PER_SEC), 1);
	assert_ptr_equal(rd.cookie, b);
	assert_int_equal(rd.events, SHMQ_READABLE);
	assert_int_equal(shmq_pipe_recv(b, &c, 1, SHMQ_NOWAIT), 1);
}

struct sender {
	shmq_pipe *a;
	int rc;
};

static void *send_later(void *arg)
{
	struct sender *s = arg;

	usleep(20 * 1000); /* the waitset is (most likely) asleep by now */
	s->rc = shmq_pipe_send(s->a, "y", 1, SHMQ_NOWAIT);
	return NULL;
}

/* Twenty waits that each find a message: one membarrier, at the add's look
 * (before, one each: 9-11 us a wake-up in `shmq-bench waitset` when the
 * publisher's CPU was busy).  A wait that sleeps with the pipe still
 * FENCED runs none and is woken by the send.  After a run of sends and
 * receives with nobody watching the mode is dropped, and the next wait
 * fences again. */
static void test_waitset_pipe_fences_once(void **state)
{
	struct tu_region *f = *state;
	struct sender s = { 0 };
	struct shmq_ready rd;
	shmq_waitset *w;
	shmq_pipe *b;
	unsigned long f0;
	pthread_t th;
	char c;

	if (shmq__remote_fence_register())
		skip(); /* no membarrier here: publishers are strong */
	assert_int_equal(shmq_pipe_create(f->r, "p", NULL, &s.a, &b), 0);
	assert_int_equal(shmq_waitset_create(&w), 0);
	f0 = spy_fence_count();
	/* the add looks at the pipe once, counted in (the first fence) */
	assert_int_equal(shmq_waitset_add_pipe(w, b, SHMQ_READABLE, b), 0);
	for (int i = 0; i < 20; i++)
		through_waitset(s.a, b, w);
	assert_int_equal(spy_fence_count() - f0, 1);

	assert_int_equal(pthread_create(&th, NULL, send_later, &s), 0);
	assert_int_equal(shmq_waitset_wait(w, &rd, 1, 10 * SHMQ__NS_PER_SEC), 1);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(s.rc, 0);
	assert_int_equal(shmq_pipe_recv(b, &c, 1, SHMQ_NOWAIT), 1);
	assert_int_equal(c, 'y');
	assert_int_equal(spy_fence_count() - f0, 1);

	for (int i = 0; i < 200; i++) {
		assert_int_equal(shmq_pipe_send(s.a, "z", 1, SHMQ_NOWAIT), 0);
		assert_int_equal(shmq_pipe_recv(b, &c, 1, SHMQ_NOWAIT), 1);
	}
	through_waitset(s.a, b, w);
	assert_int_equal(spy_fence_count() - f0, 2);
	shmq_waitset_free(w);
	shmq_pipe_close(s.a);
	shmq_pipe_close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_waitset_pipe_fences_once, setup, teardown),
	};

	if (setenv("SHMQ_SPIN", "0", 1))
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
