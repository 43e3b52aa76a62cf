/* SPDX-License-Identifier: MIT */
/*
 * Watchers of pipes and queues and their publishers ("Watchers" in
 * ring/spsc_int.h): a waitset counts itself in the pipe's watchers for
 * every wait, and runs membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) only on
 * the first of a run of them, as the pipe's own sleepers do; a scheduler
 * watch counts itself in only while it waits, so a sender whose watcher is
 * busy makes no system call.  Counted by tests/syscall_spy.h.  Every
 * blocking call here sleeps at once (SHMQ_SPIN=0, set before the library
 * reads it).
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

struct drain {
	shmq_pipe *a, *b; /* a pipe's ends, or */
	shmq_queue *q;    /* a queue */
	unsigned fires, got;
	unsigned long wakes; /* futex wakes made by the sends of the first action */
	bool peek_only; /* take nothing */
	bool send_once; /* the first action sends (one message; not peek_only: 100) */
};

static int d_send(struct drain *d, const char *m)
{
	return d->q ? shmq_queue_put(d->q, m, 1, SHMQ_NOWAIT) : shmq_pipe_send(d->a, m, 1, SHMQ_NOWAIT);
}

static void act_drain(void *arg)
{
	struct drain *d = arg;
	char c;

	d->fires++;
	if (!d->peek_only && d->send_once) {
		unsigned long w0 = spy_wake_count();

		d->send_once = false;
		for (int i = 0; i < 100; i++)
			assert_int_equal(d_send(d, "y"), 0);
		d->wakes = spy_wake_count() - w0;
	}
	if (d->peek_only) {
		if (d->send_once) {
			d->send_once = false;
			assert_int_equal(d_send(d, "s"), 0);
		}
		return;
	}
	while ((d->q ? shmq_queue_get(d->q, &c, 1, SHMQ_NOWAIT)
		     : shmq_pipe_recv(d->b, &c, 1, SHMQ_NOWAIT)) == 1)
		d->got++;
}

/* A scheduler watching a pipe's receiving end, or a queue, is woken by the
 * send that finds it waiting; while its action runs it is not counted in,
 * and sends then make no wake system call (before: one each, 379-437 ns a
 * send+recv pair against 11 unwatched, `shmq-bench sched`).  The action
 * finds what they sent. */
static void test_sched_watch_busy_no_wakes(void **state)
{
	struct tu_region *f = *state;

	for (int queue = 0; queue < 2; queue++) {
		struct drain d = { .send_once = true };
		unsigned long w0;
		shmq_sched *s;

		if (queue)
			assert_int_equal(shmq_queue_create(f->r, "swq", NULL, &d.q), 0);
		else
			assert_int_equal(shmq_pipe_create(f->r, "sw", NULL, &d.a, &d.b), 0);
		assert_int_equal(shmq_sched_create(NULL, &s), 0);
		assert_int_equal(queue ? shmq_sched_watch_queue(s, d.q, act_drain, &d)
				       : shmq_sched_watch_pipe(s, d.b, act_drain, &d), 0);
		assert_true(shmq_sched_run(s, false) == -1); /* armed; nothing to run */
		assert_int_equal(d.fires, 0);
		w0 = spy_wake_count();
		assert_int_equal(d_send(&d, "x"), 0);
		assert_int_equal(spy_wake_count() - w0, 1);
		assert_true(shmq_sched_run(s, false) == -1);
		assert_int_equal(d.fires, 1);
		assert_int_equal(d.wakes, 0);
		assert_int_equal(d.got, 101);
		shmq_sched_destroy(s);
		shmq_queue_close(d.q);
		shmq_pipe_close(d.a);
		shmq_pipe_close(d.b);
	}
}

/* An action that takes nothing (it only peeks) leaves the watch stalled:
 * not run again until something more is published.  A send made while the
 * action ran, when the watch was not counted in and so moved no word, runs
 * it again (counted in now); then it stalls. */
static void test_sched_watch_stall_sees_sends(void **state)
{
	struct tu_region *f = *state;
	struct drain d = { .peek_only = true, .send_once = true };
	shmq_sched *s;

	assert_int_equal(shmq_pipe_create(f->r, "st", NULL, &d.a, &d.b), 0);
	assert_int_equal(shmq_sched_create(NULL, &s), 0);
	assert_int_equal(shmq_sched_watch_pipe(s, d.b, act_drain, &d), 0);
	assert_int_equal(shmq_pipe_send(d.a, "x", 1, SHMQ_NOWAIT), 0);
	/* the first action sent one more meanwhile, which runs it again, in
	 * the next run (a non-blocking run runs a watch's action at most once,
	 * and returns 0 while one is ready) */
	assert_true(shmq_sched_run(s, false) == 0);
	assert_int_equal(d.fires, 1);
	assert_true(shmq_sched_run(s, false) == -1);
	assert_int_equal(d.fires, 2);
	assert_true(shmq_sched_run(s, false) == -1);
	assert_true(shmq_sched_run(s, false) == -1);
	assert_int_equal(d.fires, 2); /* stalled: nothing new */
	assert_int_equal(shmq_pipe_send(d.a, "z", 1, SHMQ_NOWAIT), 0);
	assert_true(shmq_sched_run(s, false) == -1);
	assert_int_equal(d.fires, 3);
	shmq_sched_destroy(s);
	shmq_pipe_close(d.a);
	shmq_pipe_close(d.b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_waitset_pipe_fences_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sched_watch_busy_no_wakes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sched_watch_stall_sees_sends, setup, teardown),
	};

	if (setenv("SHMQ_SPIN", "0", 1))
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
