/* SPDX-License-Identifier: MIT */
/*
 * Scheduler (seed 12-8): Python sched's own cases, a large enter/cancel
 * workload checked against a sorted model, periodic events on their grid,
 * stop, watches on processes (and queues and pipes), each on every backend:
 * io_uring, io_uring as on kernels without the futex/waitid ops, and the
 * timerfd + epoll fallback.
 */
#include "config.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif

#include "testutil.h"
#include "inject.h"

#define MS 1000000LL
#define SEC 1000000000LL

struct cfg {
	const char *name;    /* expected shmq_sched_backend() */
	unsigned backend;
	unsigned flags;
};

static const struct cfg CFG_URING = { "io_uring", SHMQ_SCHED_IO_URING, 0 };
static const struct cfg CFG_URING_OLD = { "io_uring", SHMQ_SCHED_IO_URING,
					  SHMQ_SCHED_NO_FUTEX_OP | SHMQ_SCHED_NO_WAITID };
static const struct cfg CFG_FALLBACK = { "fallback", SHMQ_SCHED_FALLBACK, 0 };
static const struct cfg CFG_PRECISE = { "io_uring", SHMQ_SCHED_IO_URING, SHMQ_SCHED_PRECISE };

/* A scheduler of the test's configuration with an io_uring of ring_entries
 * submission entries (0: the default). */
static shmq_sched *mk_ring(void **state, unsigned ring_entries)
{
	const struct cfg *c = *state;
	struct shmq_sched_opts o = { .backend = c->backend, .flags = c->flags,
				     .ring_entries = ring_entries };
	shmq_sched *s = NULL;
	int rc = shmq_sched_create(&o, &s);

	if (rc == -EPERM || rc == -ENOSYS) {
		/* io_uring refused on this host: the fallback is what runs here */
		skip();
	}
	assert_int_equal(rc, 0);
	assert_string_equal(shmq_sched_backend(s), c->name);
	return s;
}

static shmq_sched *mk(void **state)
{
	return mk_ring(state, 0);
}

/* ---- a log of which actions ran, in order ---- */

#define LOG_MAX 64
struct log {
	int n;
	int v[LOG_MAX];
	int64_t t[LOG_MAX];
};

struct tag {
	struct log *log;
	int v;
	int64_t when; /* scheduled deadline, to check "never early" */
};

static void act_log(void *arg)
{
	struct tag *t = arg;
	int64_t now = shmq_now_ns();

	assert_true(t->log->n < LOG_MAX);
	assert_true(now >= t->when);
	t->log->t[t->log->n] = now;
	t->log->v[t->log->n++] = t->v;
}

static void log_expect(const struct log *l, const int *v, int n)
{
	assert_int_equal(l->n, n);
	for (int i = 0; i < n; i++)
		assert_int_equal(l->v[i], v[i]);
}

/* Python: test_enter / test_enterabs: deadlines order the run. */
static void test_order_by_time(void **state)
{
	shmq_sched *s = mk(state);
	struct log l = { 0 };
	struct tag t[5];
	int64_t base = shmq_now_ns() + 5 * MS;
	const int delays[5] = { 5, 1, 4, 2, 3 };
	const int want[5] = { 1, 2, 3, 4, 5 };

	for (int i = 0; i < 5; i++) {
		t[i] = (struct tag){ &l, delays[i], base + delays[i] * MS };
		assert_int_equal(shmq_sched_enterabs(s, t[i].when, 0, act_log, &t[i], NULL), 0);
	}
	assert_false(shmq_sched_empty(s));
	assert_int_equal(shmq_sched_run(s, true), 0);
	log_expect(&l, want, 5);
	assert_true(shmq_sched_empty(s));
	shmq_sched_destroy(s);
}

/* shmq_sched(3): a delay of 0 or less, or a time past, is due at once and
 * runs in order of its time: a negative delay before one due now, the most
 * negative (saturated) first of all. */
static void test_past_due(void **state)
{
	shmq_sched *s = mk(state);
	struct log l = { 0 };
	struct tag t[4];
	const int want[4] = { 1, 2, 3, 4 };

	for (int i = 0; i < 4; i++)
		t[i] = (struct tag){ &l, i + 1, INT64_MIN };
	assert_int_equal(shmq_sched_enter(s, 0, 0, act_log, &t[3], NULL), 0);
	assert_int_equal(shmq_sched_enter(s, -1000 * MS, 0, act_log, &t[2], NULL), 0);
	assert_int_equal(shmq_sched_enterabs(s, 1, 0, act_log, &t[1], NULL), 0);
	assert_int_equal(shmq_sched_enter(s, INT64_MIN, 0, act_log, &t[0], NULL), 0);
	assert_int_equal(shmq_sched_run(s, false), -1);
	log_expect(&l, want, 4);
	shmq_sched_destroy(s);
}

/* Python: test_priority: at one time, lower priority first, then entry order. */
static void test_ties(void **state)
{
	shmq_sched *s = mk(state);
	struct log l = { 0 };
	struct tag t[8];
	int64_t when = shmq_now_ns() + 2 * MS;
	/* (priority, value): value = expected position */
	const int prio[8] = { 3, 1, 2, 1, 3, 2, 1, 0 };
	const int val[8] = { 7, 2, 5, 3, 8, 6, 4, 1 };
	const int want[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

	for (int i = 0; i < 8; i++) {
		t[i] = (struct tag){ &l, val[i], when };
		assert_int_equal(shmq_sched_enterabs(s, when, prio[i], act_log, &t[i], NULL), 0);
	}
	assert_int_equal(shmq_sched_run(s, true), 0);
	log_expect(&l, want, 8);
	shmq_sched_destroy(s);
}

/* Python: test_cancel; a handle that ran or was cancelled gives -ENOENT. */
static void test_cancel(void **state)
{
	shmq_sched *s = mk(state);
	struct log l = { 0 };
	struct tag t[5];
	shmq_event *ev[5];
	int64_t now = shmq_now_ns();
	const int want[3] = { 1, 3, 4 };

	for (int i = 0; i < 5; i++) {
		t[i] = (struct tag){ &l, i, now + (i + 1) * MS };
		assert_int_equal(shmq_sched_enterabs(s, t[i].when, 0, act_log, &t[i], &ev[i]), 0);
	}
	assert_int_equal(shmq_sched_cancel(s, ev[0]), 0);
	assert_int_equal(shmq_sched_cancel(s, ev[2]), 0);
	assert_int_equal(shmq_sched_cancel(s, ev[0]), -ENOENT);
	assert_int_equal(shmq_sched_cancel(s, ev[2]), -ENOENT);
	assert_int_equal(shmq_sched_run(s, true), 0);
	log_expect(&l, want, 3);
	for (int i = 0; i < 5; i++)
		assert_int_equal(shmq_sched_cancel(s, ev[i]), -ENOENT);
	/* a slot reused by a new event: the old handle still names nothing */
	{
		shmq_event *nev;

		assert_int_equal(shmq_sched_enter(s, SEC, 0, act_log, &t[0], &nev), 0);
		assert_int_equal(shmq_sched_cancel(s, ev[4]), -ENOENT);
		assert_int_equal(shmq_sched_cancel(s, ev[0]), -ENOENT);
		assert_int_equal(shmq_sched_cancel(s, nev), 0);
	}
	assert_int_equal(shmq_sched_cancel(s, NULL), -EINVAL);
	shmq_sched_destroy(s);
}

/* Python: test_run_non_blocking: runs what is due, returns the delay. */
static void test_nonblocking(void **state)
{
	shmq_sched *s = mk(state);
	struct log l = { 0 };
	struct tag t[3];
	int64_t now = shmq_now_ns(), d;
	const int want[2] = { 0, 1 };

	assert_int_equal(shmq_sched_run(s, false), -1);
	t[0] = (struct tag){ &l, 0, now - MS };
	t[1] = (struct tag){ &l, 1, now };
	t[2] = (struct tag){ &l, 2, now + 10 * SEC };
	for (int i = 0; i < 3; i++)
		assert_int_equal(shmq_sched_enterabs(s, t[i].when, 0, act_log, &t[i], NULL), 0);
	d = shmq_sched_run(s, false);
	/* the delay to t[2] as seen inside run: between what it is after run
	 * and what it was before (not "more than 5 s": a slow box may take
	 * that long) */
	assert_true(d >= t[2].when - shmq_now_ns() && d <= t[2].when - now);
	log_expect(&l, want, 2);
	assert_false(shmq_sched_empty(s));
	shmq_sched_destroy(s);
}

/*
 * A non-blocking run returns even when what it runs keeps work due: an
 * action that enters itself again with no delay, a periodic event whose
 * period is shorter than its action, a watch whose action makes its pipe
 * readable again.  Each runs once per call; the next call runs it again.
 * (Each action stops the run after 1000 rounds, so a run that would loop
 * for ever fails here instead of hanging.)
 */
struct busy {
	shmq_sched *s;
	shmq_pipe *tx, *rx;
	int n;
};

static void busy_count(struct busy *b)
{
	if (++b->n == 1000)
		assert_int_equal(shmq_sched_stop(b->s), 0);
}

static void act_enter_again(void *arg)
{
	struct busy *b = arg;

	busy_count(b);
	assert_int_equal(shmq_sched_enter(b->s, 0, 0, act_enter_again, b, NULL), 0);
}

static void act_outlast_period(void *arg)
{
	struct busy *b = arg;
	int64_t end = shmq_now_ns() + 20000; /* 20 us: 20000 periods */

	busy_count(b);
	while (shmq_now_ns() < end)
		;
}

static void act_refill(void *arg)
{
	struct busy *b = arg;
	char c;

	busy_count(b);
	while (shmq_pipe_recv(b->rx, &c, 1, SHMQ_NOWAIT) == 1)
		;
	assert_int_equal(shmq_pipe_send(b->tx, "x", 1, SHMQ_NOWAIT), 0);
}

static void test_nonblocking_reentered(void **state)
{
	shmq_sched *s = mk(state);
	struct busy b = { .s = s };

	assert_int_equal(shmq_sched_enter(s, 0, 0, act_enter_again, &b, NULL), 0);
	assert_true(shmq_sched_run(s, false) >= 0);
	assert_int_equal(b.n, 1);
	assert_true(shmq_sched_run(s, false) >= 0);
	assert_int_equal(b.n, 2);
	shmq_sched_destroy(s);
}

static void test_nonblocking_short_period(void **state)
{
	shmq_sched *s = mk(state);
	struct busy b = { .s = s };
	shmq_event *ev;

	assert_int_equal(shmq_sched_enter_periodic(s, shmq_now_ns(), 1, 0, act_outlast_period, &b,
						   &ev), 0);
	assert_true(shmq_sched_run(s, false) >= 0);
	assert_int_equal(b.n, 1);
	assert_int_equal(shmq_sched_cancel(s, ev), 0);
	shmq_sched_destroy(s);
}

static void test_nonblocking_refilled_watch(void **state)
{
	shmq_sched *s = mk(state);
	struct busy b = { .s = s };
	shmq_region *r;

	assert_int_equal(shmq_region_create(NULL, &(struct shmq_region_opts){ .size = 1 << 20 }, &r),
			 0);
	assert_int_equal(shmq_pipe_create(r, "p", NULL, &b.tx, &b.rx), 0);
	assert_int_equal(shmq_sched_watch_pipe(s, b.rx, act_refill, &b), 0);
	assert_int_equal(shmq_pipe_send(b.tx, "x", 1, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_sched_run(s, false), 0); /* ready again: call again */
	assert_int_equal(b.n, 1);
	assert_int_equal(shmq_sched_run(s, false), 0);
	assert_int_equal(b.n, 2);
	assert_int_equal(shmq_sched_unwatch(s, b.rx), 0);
	shmq_sched_destroy(s);
	shmq_pipe_close(b.tx);
	shmq_pipe_close(b.rx);
	shmq_region_close(r);
}

/* Python: test_enter_concurrent (from an action): an action enters events. */
struct reenter {
	shmq_sched *s;
	struct log *log;
	struct tag child[2];
};

static void act_reenter(void *arg)
{
	struct reenter *r = arg;
	int64_t now = shmq_now_ns();

	r->log->v[r->log->n++] = 0;
	r->child[0] = (struct tag){ r->log, 2, now + 2 * MS };
	r->child[1] = (struct tag){ r->log, 1, now + 1 * MS };
	assert_int_equal(shmq_sched_enterabs(r->s, r->child[0].when, 0, act_log, &r->child[0], NULL), 0);
	assert_int_equal(shmq_sched_enterabs(r->s, r->child[1].when, 0, act_log, &r->child[1], NULL), 0);
	/* the loop is busy: a nested run is refused */
	assert_int_equal(shmq_sched_run(r->s, false), -EBUSY);
}

static void test_enter_from_action(void **state)
{
	shmq_sched *s = mk(state);
	struct log l = { 0 };
	struct reenter r = { s, &l, { { 0 } } };
	const int want[3] = { 0, 1, 2 };

	assert_int_equal(shmq_sched_enter(s, MS, 0, act_reenter, &r, NULL), 0);
	assert_int_equal(shmq_sched_run(s, true), 0);
	log_expect(&l, want, 3);
	shmq_sched_destroy(s);
}

/* ---- another thread while run sleeps ---- */

struct other {
	shmq_sched *s;
	struct log *log;
	struct tag tag;
	shmq_event *far;   /* the event the loop sleeps for */
	int64_t delay;     /* how long the thread lets the loop sleep first */
	int mode;          /* 0: enter an earlier event; 1: cancel far; 2: stop */
};

static void act_cancel_far(void *arg)
{
	struct other *o = arg;

	act_log(&o->tag);
	assert_int_equal(shmq_sched_cancel(o->s, o->far), 0);
}

static void *other_main(void *arg)
{
	struct other *o = arg;
	struct timespec ts = { 0, (long)o->delay };

	nanosleep(&ts, NULL);
	if (o->mode == 0) {
		o->tag = (struct tag){ o->log, 7, shmq_now_ns() + MS };
		if (shmq_sched_enterabs(o->s, o->tag.when, 0, act_cancel_far, o, NULL) != 0)
			return (void *)1;
	} else if (o->mode == 1) {
		if (shmq_sched_cancel(o->s, o->far) != 0)
			return (void *)1;
	} else {
		if (shmq_sched_stop(o->s) != 0)
			return (void *)1;
	}
	return NULL;
}

static int g_far_ran;

static void far_never(void *arg)
{
	(void)arg;
	g_far_ran++;
}

/* Python: test_enter_concurrent: an earlier event entered from another
 * thread wakes the sleeping loop at once (not at the far deadline). */
static void test_enter_from_thread(void **state)
{
	shmq_sched *s = mk(state);
	struct log l = { 0 };
	struct other o = { s, &l, { 0 }, NULL, 50 * MS, 0 };
	pthread_t th;
	int64_t t0 = shmq_now_ns();
	void *ret;
	const int want[1] = { 7 };

	g_far_ran = 0;
	assert_int_equal(shmq_sched_enter(s, 20 * SEC, 0, far_never, NULL, &o.far), 0);
	assert_int_equal(pthread_create(&th, NULL, other_main, &o), 0);
	assert_int_equal(shmq_sched_run(s, true), 0);
	assert_int_equal(pthread_join(th, &ret), 0);
	assert_null(ret);
	assert_int_equal(g_far_ran, 0);
	log_expect(&l, want, 1);
	assert_true(shmq_now_ns() - t0 < 10 * SEC);
	shmq_sched_destroy(s);
}

/* Python: test_cancel_concurrent: another thread cancels while run sleeps. */
static void test_cancel_from_thread(void **state)
{
	shmq_sched *s = mk(state);
	struct log l = { 0 };
	struct other o = { s, &l, { 0 }, NULL, 20 * MS, 1 };
	struct tag late = { &l, 1, 0 };
	pthread_t th;
	void *ret;
	const int want[1] = { 1 };
	int64_t t0 = shmq_now_ns();

	/* far is far enough that the thread cancels it however late it runs:
	 * before late (the loop then sleeps for late) or after (the loop is
	 * asleep for far, and the cancel leaves nothing to wait for) */
	g_far_ran = 0;
	assert_int_equal(shmq_sched_enter(s, 20 * SEC, 0, far_never, NULL, &o.far), 0);
	late.when = shmq_now_ns() + 200 * MS;
	assert_int_equal(shmq_sched_enterabs(s, late.when, 0, act_log, &late, NULL), 0);
	assert_int_equal(pthread_create(&th, NULL, other_main, &o), 0);
	assert_int_equal(shmq_sched_run(s, true), 0);
	assert_int_equal(pthread_join(th, &ret), 0);
	assert_null(ret);
	assert_int_equal(g_far_ran, 0);
	log_expect(&l, want, 1);
	assert_true(shmq_now_ns() - t0 < 10 * SEC);
	shmq_sched_destroy(s);
}

/* Issue 14 item 8: another thread cancels the only pending event while the
 * loop sleeps for it (an hour away).  The scheduler is empty at once, and the
 * loop, with nothing left to wait for, returns without being told to stop.
 * The thread stops the loop itself after 5 s so that a loop still asleep
 * fails the test instead of hanging it. */
struct lone {
	shmq_sched *s;
	shmq_event *ev;    /* cancelled, or if NULL: */
	const void *obj;   /* unwatched */
	int cancel_rc;
	bool empty_after;  /* shmq_sched_empty right after the cancel */
	bool stop_needed;  /* run did not return by itself within 5 s */
	uint32_t returned; /* set by the test thread when run returned */
};

static void *lone_main(void *arg)
{
	struct lone *o = arg;
	struct timespec ts = { 0, 50 * MS };

	nanosleep(&ts, NULL); /* let the loop fall asleep (not required for the checks) */
	o->cancel_rc = o->ev ? shmq_sched_cancel(o->s, o->ev) : shmq_sched_unwatch(o->s, o->obj);
	o->empty_after = shmq_sched_empty(o->s);
	for (int i = 0; i < 5000 && !__atomic_load_n(&o->returned, __ATOMIC_SEQ_CST); i++)
		usleep(1000);
	if (!__atomic_load_n(&o->returned, __ATOMIC_SEQ_CST)) {
		o->stop_needed = true;
		shmq_sched_stop(o->s);
	}
	return NULL;
}

static void test_cancel_only_event_from_thread(void **state)
{
	shmq_sched *s = mk(state);
	struct lone o = { .s = s };
	pthread_t th;

	g_far_ran = 0;
	assert_int_equal(shmq_sched_enter(s, 3600 * SEC, 0, far_never, NULL, &o.ev), 0);
	assert_false(shmq_sched_empty(s));
	assert_int_equal(pthread_create(&th, NULL, lone_main, &o), 0);
	assert_int_equal(shmq_sched_run(s, true), 0);
	__atomic_store_n(&o.returned, 1, __ATOMIC_SEQ_CST);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(o.cancel_rc, 0);
	assert_true(o.empty_after);
	assert_false(o.stop_needed);
	assert_int_equal(g_far_ran, 0);
	assert_true(shmq_sched_empty(s));
	shmq_sched_destroy(s);
}

/* stop from another thread wakes a sleeping run; the events stay queued */
static void test_stop_from_thread(void **state)
{
	shmq_sched *s = mk(state);
	struct log l = { 0 };
	struct other o = { s, &l, { 0 }, NULL, 30 * MS, 2 };
	pthread_t th;
	void *ret;
	int64_t t0 = shmq_now_ns();

	g_far_ran = 0;
	assert_int_equal(shmq_sched_enter(s, 20 * SEC, 0, far_never, NULL, &o.far), 0);
	assert_int_equal(pthread_create(&th, NULL, other_main, &o), 0);
	assert_int_equal(shmq_sched_run(s, true), 0);
	assert_int_equal(pthread_join(th, &ret), 0);
	assert_null(ret);
	assert_int_equal(g_far_ran, 0);
	assert_true(shmq_now_ns() - t0 < 10 * SEC);
	assert_false(shmq_sched_empty(s));
	assert_int_equal(shmq_sched_cancel(s, o.far), 0);
	shmq_sched_destroy(s);
}

/* ---- threads cancelled, or ended by an action, inside the scheduler ---- */

struct runner {
	shmq_sched *s;
	pid_t tid;  /* set before the run */
	int64_t rc;
};

static void *runner_main(void *arg)
{
	struct runner *r = arg;

	__atomic_store_n(&r->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_SEQ_CST);
	r->rc = shmq_sched_run(r->s, true);
	pthread_testcancel();
	return NULL;
}

/* Until thread tid sleeps ('S' in /proc; the run's only sleep here is its
 * wait), at most 10 s; false if it never did. */
static bool await_sleeping(pid_t tid)
{
	char path[64], buf[256];

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	for (int64_t end = shmq_now_ns() + 10 * SEC; shmq_now_ns() < end; sched_yield()) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
		char *p;

		if (fd >= 0)
			close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		p = strrchr(buf, ')');
		if (p && p[1] == ' ' && p[2] == 'S')
			return true;
	}
	return false;
}

static void act_exit_thread(void *arg)
{
	pthread_exit(arg);
}

/* An action that ends its thread (pthread_exit) ends the run with it: another
 * thread runs the scheduler next.  Old code: `running` stayed set, and every
 * later run returned -EBUSY. */
static void test_action_exits_thread(void **state)
{
	shmq_sched *s = mk(state);
	struct runner r = { .s = s };
	struct log l = { 0 };
	struct tag t = { &l, 1, 0 };
	const int want[1] = { 1 };
	pthread_t th;
	void *ret;

	assert_int_equal(shmq_sched_enter(s, 0, 0, act_exit_thread, &r, NULL), 0);
	assert_int_equal(pthread_create(&th, NULL, runner_main, &r), 0);
	assert_int_equal(pthread_join(th, &ret), 0);
	assert_ptr_equal(ret, &r);
	t.when = shmq_now_ns();
	assert_int_equal(shmq_sched_enter(s, 0, 0, act_log, &t, NULL), 0);
	assert_int_equal(shmq_sched_run(s, true), 0);
	log_expect(&l, want, 1);
	shmq_sched_destroy(s);
}

/* A thread cancelled (deferred) while its run sleeps: the run is no
 * cancellation point, so a stop ends it and the cancel acts after; the
 * scheduler runs again in another thread.  Old code (fallback): cancelled in
 * epoll_wait with `running` set, every later run returned -EBUSY. */
static void test_run_cancelled(void **state)
{
	shmq_sched *s = mk(state);
	struct runner r = { .s = s };
	struct log l = { 0 };
	struct tag t = { &l, 1, 0 };
	const int want[1] = { 1 };
	shmq_event *far;
	pthread_t th;
	void *ret;

	g_far_ran = 0;
	assert_int_equal(shmq_sched_enter(s, 20 * SEC, 0, far_never, NULL, &far), 0);
	assert_int_equal(pthread_create(&th, NULL, runner_main, &r), 0);
	while (!__atomic_load_n(&r.tid, __ATOMIC_SEQ_CST))
		sched_yield();
	assert_true(await_sleeping(r.tid)); /* else the stop could come first */
	assert_int_equal(pthread_cancel(th), 0);
	assert_int_equal(shmq_sched_stop(s), 0);
	assert_int_equal(pthread_join(th, &ret), 0);
	assert_ptr_equal(ret, PTHREAD_CANCELED);
	t.when = shmq_now_ns();
	assert_int_equal(shmq_sched_enter(s, 0, 0, act_log, &t, NULL), 0);
	assert_true(shmq_sched_run(s, false) > 0); /* ran t; far is 20 s away */
	log_expect(&l, want, 1);
	assert_int_equal(shmq_sched_cancel(s, far), 0);
	assert_int_equal(g_far_ran, 0);
	shmq_sched_destroy(s);
}

struct canceller {
	shmq_sched *s;
	int rc;
};

static void act_stop_run(void *arg)
{
	shmq_sched_stop(arg);
}

static void *cancelled_enter_main(void *arg)
{
	struct canceller *c = arg;

	pthread_cancel(pthread_self()); /* deferred: pending at the enter */
	c->rc = shmq_sched_enter(c->s, 0, 0, act_stop_run, c->s, NULL);
	pthread_testcancel();
	return NULL;
}

/* A thread with a cancel pending enters an event while the run sleeps for a
 * later one: the enter still wakes the run, which runs the new event at once.
 * Old code: cancelled in the wake-up's eventfd write after marking the wake
 * sent, the run slept on for its far event, and no later enter woke it. */
static void test_enter_cancelled(void **state)
{
	shmq_sched *s = mk(state);
	struct runner r = { .s = s };
	struct canceller c = { s, 1 };
	shmq_event *far;
	struct timespec ts;
	pthread_t th, ct;
	void *ret;

	g_far_ran = 0;
	assert_int_equal(shmq_sched_enter(s, 20 * SEC, 0, far_never, NULL, &far), 0);
	assert_int_equal(pthread_create(&th, NULL, runner_main, &r), 0);
	while (!__atomic_load_n(&r.tid, __ATOMIC_SEQ_CST))
		sched_yield();
	assert_true(await_sleeping(r.tid));
	assert_int_equal(pthread_create(&ct, NULL, cancelled_enter_main, &c), 0);
	assert_int_equal(pthread_join(ct, &ret), 0);
	assert_ptr_equal(ret, PTHREAD_CANCELED);
	/* the run returns promptly, not when far is due */
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	assert_int_equal(pthread_timedjoin_np(th, NULL, &ts), 0);
	assert_int_equal(r.rc, 0);
	assert_int_equal(c.rc, 0);
	assert_int_equal(g_far_ran, 0);
	assert_int_equal(shmq_sched_cancel(s, far), 0);
	shmq_sched_destroy(s);
}

/* stop from an action: run returns after it; the rest runs on the next run */
struct stopper {
	shmq_sched *s;
	struct tag tag;
};

static void act_stop(void *arg)
{
	struct stopper *st = arg;

	act_log(&st->tag);
	assert_int_equal(shmq_sched_stop(st->s), 0);
}

static void test_stop_from_action(void **state)
{
	shmq_sched *s = mk(state);
	struct log l = { 0 };
	int64_t now = shmq_now_ns();
	struct stopper st = { s, { &l, 1, now + MS } };
	struct tag t2 = { &l, 2, now + 2 * MS };
	const int want1[1] = { 1 }, want2[2] = { 1, 2 };

	assert_int_equal(shmq_sched_enterabs(s, st.tag.when, 0, act_stop, &st, NULL), 0);
	assert_int_equal(shmq_sched_enterabs(s, t2.when, 0, act_log, &t2, NULL), 0);
	assert_int_equal(shmq_sched_run(s, true), 0);
	log_expect(&l, want1, 1);
	assert_false(shmq_sched_empty(s));
	assert_int_equal(shmq_sched_run(s, true), 0);
	log_expect(&l, want2, 2);
	shmq_sched_destroy(s);
}

/* queue(): a snapshot in run order */
static void noop(void *arg)
{
	(void)arg;
}

static void test_queue_snapshot(void **state)
{
	shmq_sched *s = mk(state);
	struct shmq_event_info info[8];
	int64_t base = shmq_now_ns() + 10 * SEC;
	int args[6];
	const int order_when[6] = { 3, 1, 2, 1, 1, 0 };
	const int order_prio[6] = { 0, 2, 0, 1, 1, 0 };
	/* expected run order by index: when 0: #5; when 1: prio1 #3, prio1 #4, prio2 #1; when 2: #2; when 3: #0 */
	const int want[6] = { 5, 3, 4, 1, 2, 0 };

	for (int i = 0; i < 6; i++) {
		args[i] = i;
		assert_int_equal(shmq_sched_enterabs(s, base + order_when[i] * MS, order_prio[i], noop,
						     &args[i], NULL), 0);
	}
	assert_int_equal(shmq_sched_queue(s, NULL, 0), 6);
	assert_int_equal(shmq_sched_queue(s, info, 8), 6);
	for (int i = 0; i < 6; i++) {
		assert_ptr_equal(info[i].arg, &args[want[i]]);
		assert_int_equal(info[i].when_ns, base + order_when[want[i]] * MS);
		assert_int_equal(info[i].priority, order_prio[want[i]]);
		assert_ptr_equal(info[i].fn, noop);
	}
	assert_int_equal(shmq_sched_queue(s, info, 2), 6);
	assert_ptr_equal(info[1].arg, &args[3]);
	shmq_sched_destroy(s);
}

/* ---- 200000 events entered and cancelled, against a sorted model ---- */

#define BIG 200000
struct big_ev {
	int64_t when;
	int prio;
	uint32_t seq;
	bool cancelled;
	shmq_event *h;
};
static struct big_ev *g_big;
static uint32_t *g_ran;
static uint32_t g_nran;

static void act_big(void *arg)
{
	g_ran[g_nran++] = (uint32_t)(uintptr_t)arg;
}

static int big_cmp(const void *a, const void *b)
{
	const struct big_ev *x = &g_big[*(const uint32_t *)a], *y = &g_big[*(const uint32_t *)b];

	if (x->when != y->when)
		return x->when < y->when ? -1 : 1;
	if (x->prio != y->prio)
		return x->prio < y->prio ? -1 : 1;
	return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

static uint64_t rng_next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void test_many(void **state)
{
	shmq_sched *s = mk(state);
	uint64_t rng = 0x9e3779b97f4a7c15ull;
	uint32_t *want, nwant = 0;
	int64_t now = shmq_now_ns();

	g_big = calloc(BIG, sizeof(*g_big));
	g_ran = calloc(BIG, sizeof(*g_ran));
	want = calloc(BIG, sizeof(*want));
	assert_non_null(g_big);
	assert_non_null(g_ran);
	assert_non_null(want);
	g_nran = 0;
	/* deadlines in the past (so run(false) runs them all at once), with
	 * many ties in time and priority */
	for (uint32_t i = 0; i < BIG; i++) {
		g_big[i].when = now - SEC + (int64_t)(rng_next(&rng) % 5000);
		g_big[i].prio = (int)(rng_next(&rng) % 4) - 2;
		g_big[i].seq = i;
		assert_int_equal(shmq_sched_enterabs(s, g_big[i].when, g_big[i].prio, act_big,
						     (void *)(uintptr_t)i, &g_big[i].h), 0);
		/* interleave cancels of earlier events */
		if (i > 10 && rng_next(&rng) % 3 == 0) {
			uint32_t j = (uint32_t)(rng_next(&rng) % i);

			assert_int_equal(shmq_sched_cancel(s, g_big[j].h),
					 g_big[j].cancelled ? -ENOENT : 0);
			g_big[j].cancelled = true;
		}
	}
	/* then cancel every other remaining one in random order */
	for (uint32_t k = 0; k < BIG / 2; k++) {
		uint32_t j = (uint32_t)(rng_next(&rng) % BIG);

		assert_int_equal(shmq_sched_cancel(s, g_big[j].h), g_big[j].cancelled ? -ENOENT : 0);
		g_big[j].cancelled = true;
	}
	for (uint32_t i = 0; i < BIG; i++)
		if (!g_big[i].cancelled)
			want[nwant++] = i;
	qsort(want, nwant, sizeof(*want), big_cmp);
	assert_int_equal(shmq_sched_queue(s, NULL, 0), nwant);
	{
		struct shmq_event_info info[16];

		shmq_sched_queue(s, info, 16);
		for (int i = 0; i < 16 && (uint32_t)i < nwant; i++)
			assert_int_equal((uintptr_t)info[i].arg, want[i]);
	}
	assert_int_equal(shmq_sched_run(s, false), -1);
	assert_int_equal(g_nran, nwant);
	for (uint32_t i = 0; i < nwant; i++)
		assert_int_equal(g_ran[i], want[i]);
	for (uint32_t i = 0; i < BIG; i += 97)
		assert_int_equal(shmq_sched_cancel(s, g_big[i].h), -ENOENT);
	assert_true(shmq_sched_empty(s));
	free(want);
	free(g_ran);
	free(g_big);
	shmq_sched_destroy(s);
}

/* ---- periodic: after 1000 periods still on the grid, never early ---- */

#define PERIOD (1 * MS)
#define PERIODS 1000
struct periodic {
	shmq_sched *s;
	shmq_event *ev;
	int64_t first;
	int64_t due;      /* the deadline this firing is for */
	int fires;
	int early;
	int offgrid;
};

static void act_periodic(void *arg)
{
	struct periodic *p = arg;
	struct shmq_event_info info;
	int64_t now = shmq_now_ns();

	p->fires++;
	if (now < p->due)
		p->early++;
	assert_int_equal(shmq_sched_event_info(p->s, p->ev, &info), 0);
	/* the next deadline is already on the grid, after this one */
	if ((info.when_ns - p->first) % PERIOD != 0 || info.when_ns <= p->due)
		p->offgrid++;
	p->due = info.when_ns;
	if (info.when_ns >= p->first + (int64_t)PERIODS * PERIOD)
		assert_int_equal(shmq_sched_cancel(p->s, p->ev), 0);
}

static void test_periodic(void **state)
{
	shmq_sched *s = mk(state);
	struct periodic p = { .s = s };
	struct shmq_event_info info;

	p.first = shmq_now_ns() + 5 * MS;
	p.due = p.first;
	assert_int_equal(shmq_sched_enter_periodic(s, p.first, 0, 0, act_periodic, &p, NULL), -EINVAL);
	assert_int_equal(shmq_sched_enter_periodic(s, p.first, PERIOD, 0, act_periodic, &p, &p.ev), 0);
	assert_int_equal(shmq_sched_run(s, true), 0);
	assert_int_equal(p.early, 0);
	assert_int_equal(p.offgrid, 0);
	assert_true(p.fires >= 1);
	assert_true(p.fires <= PERIODS);
	/* the last deadline is the first grid point at or past the end; a
	 * loaded machine may skip missed periods, never leave the grid */
	assert_true(p.due >= p.first + (int64_t)PERIODS * PERIOD);
	assert_int_equal((p.due - p.first) % PERIOD, 0);
	assert_int_equal(shmq_sched_event_info(s, p.ev, &info), -ENOENT);
	assert_int_equal(shmq_sched_cancel(s, p.ev), -ENOENT);
	shmq_sched_destroy(s);
}

/* A periodic event whose grid began long ago (first_ns far in the past, as
 * far as INT64_MIN) runs now, then at the next grid point after now: it
 * stays pending (once, its distance from the start overflowed int64_t and
 * it was dropped as if its grid had ended). */
static int periodic_far_runs;

static void act_count_periodic(void *arg)
{
	(void)arg;
	periodic_far_runs++;
}

static void test_periodic_far_past(void **state)
{
	const int64_t firsts[3] = { INT64_MIN, INT64_MIN + 12345, -(INT64_MAX / 2) };

	for (int i = 0; i < 3; i++) {
		shmq_sched *s = mk(state);
		struct shmq_event_info info;
		shmq_event *ev;
		int64_t before = shmq_now_ns(), d;

		periodic_far_runs = 0;
		assert_int_equal(shmq_sched_enter_periodic(s, firsts[i], 10 * MS, 0,
							   act_count_periodic, NULL, &ev), 0);
		d = shmq_sched_run(s, false);
		assert_int_equal(periodic_far_runs, 1);
		assert_true(d >= 0 && d <= 10 * MS);
		assert_int_equal(shmq_sched_event_info(s, ev, &info), 0);
		assert_true(info.when_ns > before);
		/* on the grid: first + k * period (the difference fits in uint64_t) */
		assert_int_equal(((uint64_t)info.when_ns - (uint64_t)firsts[i]) % (uint64_t)(10 * MS), 0);
		assert_false(shmq_sched_empty(s));
		assert_int_equal(shmq_sched_cancel(s, ev), 0);
		shmq_sched_destroy(s);
	}
}

/* timers honoured: never early, and not absurdly late */
static void test_timing(void **state)
{
	shmq_sched *s = mk(state);
	struct log l = { 0 };
	struct tag t[20];
	int64_t base = shmq_now_ns() + 2 * MS;

	for (int i = 0; i < 20; i++) {
		t[i] = (struct tag){ &l, i, base + i * 2 * MS };
		assert_int_equal(shmq_sched_enterabs(s, t[i].when, 0, act_log, &t[i], NULL), 0);
	}
	assert_int_equal(shmq_sched_run(s, true), 0);
	assert_int_equal(l.n, 20);
	for (int i = 0; i < 20; i++) {
		assert_true(l.t[i] >= t[l.v[i]].when);          /* never early */
		assert_true(l.t[i] - t[l.v[i]].when < 2 * SEC); /* loose: a shared box */
	}
	shmq_sched_destroy(s);
}

/* ---- backend selection ---- */

static void test_backend_select(void **state)
{
	struct shmq_sched_opts o = { .backend = SHMQ_SCHED_FALLBACK };
	struct shmq_sched_opts bad = { .reserved = { 1 } };
	shmq_sched *s;

	(void)state;
	assert_int_equal(shmq_sched_create(&o, &s), 0);
	assert_string_equal(shmq_sched_backend(s), "fallback");
	shmq_sched_destroy(s);
	assert_int_equal(setenv("SHMQ_SCHED_BACKEND", "fallback", 1), 0);
	assert_int_equal(shmq_sched_create(NULL, &s), 0);
	assert_string_equal(shmq_sched_backend(s), "fallback");
	shmq_sched_destroy(s);
	assert_int_equal(unsetenv("SHMQ_SCHED_BACKEND"), 0);
	assert_int_equal(shmq_sched_create(NULL, &s), 0);
	/* io_uring unless this host refuses it */
	assert_true(strcmp(shmq_sched_backend(s), "io_uring") == 0 ||
		    strcmp(shmq_sched_backend(s), "fallback") == 0);
	shmq_sched_destroy(s);
	assert_int_equal(shmq_sched_create(&bad, &s), -EINVAL);
	assert_int_equal(shmq_sched_create(NULL, NULL), -EINVAL);
}

static void act_count(void *arg)
{
	(*(int *)arg)++;
}

#ifndef SHMQ_SANITIZED /* (clang defines no __SANITIZE_THREAD__) */
/* The size of this process's address space, from /proc/self/statm. */
static size_t vm_size(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	size_t pages = 0;

	if (f) {
		if (fscanf(f, "%zu", &pages) != 1)
			pages = 0;
		fclose(f);
	}
	return pages * (size_t)sysconf(_SC_PAGESIZE);
}
#endif

/* Run fn in a child process: its exit status must be 0; 77 skips the test
 * (for tests that change the process: limits, seccomp filters, mappings). */
static void in_child(int (*fn)(void))
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn());
	st = tu_wait_child(pid);
	if (st == 77)
		skip();
	assert_int_equal(st, 0);
}

/* In a child: 0 when the checks pass, else the number of the one that failed. */
static int snapshot_nomem_child(void)
{
#ifdef SHMQ_SANITIZED
	return 77; /* the sanitizers' allocators need the address space */
#else
	enum { N = 200000 };
	struct shmq_sched_opts o = { .backend = SHMQ_SCHED_FALLBACK };
	struct shmq_event_info *out = calloc(N, sizeof(*out)), one;
	void *volatile sink;
	struct rlimit rl;
	shmq_sched *s;
	size_t vm;

	if (!out || shmq_sched_create(&o, &s) < 0)
		return 2;
	for (long i = 0; i < N; i++) /* 7919 is prime: a permutation of 0 .. N-1 */
		if (shmq_sched_enterabs(s, SEC + i * 7919 % N, 0, act_count, NULL, NULL) < 0)
			return 3;
	/* no memory left for a sorted copy of the heap */
	if (!(vm = vm_size()))
		return 77;
	rl.rlim_cur = rl.rlim_max = vm + (1 << 20);
	if (setrlimit(RLIMIT_AS, &rl) < 0)
		return 77;
	while ((sink = malloc(4096)) != NULL)
		;
	alarm(60); /* the snapshot is O(n log n): a few ms, not minutes */
	if (shmq_sched_queue(s, out, N) != N)
		return 4;
	for (long i = 0; i < N; i++)
		if (out[i].when_ns != SEC + i)
			return 5;
	/* the heap still runs in order */
	if (shmq_sched_queue(s, &one, 1) != N || one.when_ns != SEC)
		return 6;
	return 0;
#endif
}

/* shmq_sched_queue when there is no memory for its sorted copy: the same
 * snapshot, in O(n log n) (a child under RLIMIT_AS; SIGALRM if it hangs). */
static void test_queue_snapshot_nomem(void **state)
{
	(void)state;
	in_child(snapshot_nomem_child);
}

/* ---- watches ---- */

/* Sleeps 50 ms, or the int64_t ns given as its argument, then exits 7. */
static int child_sleep(shmq_region *r, const void *arg, size_t len)
{
	int64_t ns = 50 * MS;
	struct timespec ts;

	(void)r;
	if (len == sizeof(ns))
		memcpy(&ns, arg, sizeof(ns));
	ts = (struct timespec){ ns / SEC, ns % SEC };
	nanosleep(&ts, NULL);
	return 7;
}
SHMQ_ENTRY(child_sleep);

struct procw {
	shmq_proc *p;
	int fired;
	int exitcode_at_fire;
};

static void act_proc(void *arg)
{
	struct procw *w = arg;

	w->fired++;
	w->exitcode_at_fire = shmq_proc_exitcode(w->p);
}

/* a watched child's exit fires the action once; run then has nothing left */
static void test_watch_proc(void **state)
{
	shmq_sched *s = mk(state);
	struct procw w = { 0 };
	struct log l = { 0 };
	struct tag far = { &l, 1, 0 };

	assert_int_equal(shmq_proc_spawn(NULL, "child_sleep", NULL, 0, NULL, &w.p), 0);
	assert_int_equal(shmq_sched_watch_proc(s, w.p, act_proc, &w), 0);
	assert_int_equal(shmq_sched_watch_proc(s, w.p, act_proc, &w), -EEXIST);
	assert_int_equal(shmq_sched_run(s, true), 0);
	assert_int_equal(w.fired, 1);
	assert_int_equal(w.exitcode_at_fire, 7);
	assert_int_equal(shmq_sched_unwatch(s, w.p), -ENOENT);
	assert_int_equal(shmq_proc_join(w.p, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_proc_exitcode(w.p), 7);
	shmq_proc_close(w.p);

	/* unwatched before it exits: never fires; timers still run */
	assert_int_equal(shmq_proc_spawn(NULL, "child_sleep", NULL, 0, NULL, &w.p), 0);
	w.fired = 0;
	assert_int_equal(shmq_sched_watch_proc(s, w.p, act_proc, &w), 0);
	far.when = shmq_now_ns() + 150 * MS;
	assert_int_equal(shmq_sched_enterabs(s, far.when, 0, act_log, &far, NULL), 0);
	assert_int_equal(shmq_sched_unwatch(s, w.p), 0);
	assert_int_equal(shmq_sched_run(s, true), 0);
	assert_int_equal(w.fired, 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(shmq_proc_join(w.p, 10 * SEC), 0);
	shmq_proc_close(w.p);
	shmq_sched_destroy(s);
}

/* destroy with a watch armed in the kernel: its operation is cancelled and
 * drained first (no hang, no late write into freed memory) */
static void test_destroy_armed(void **state)
{
	shmq_sched *s = mk(state);
	struct procw w = { 0 };
	/* a child that lives until killed (60 s at most): the watch cannot
	 * fire however late run(false) gets to arm it */
	int64_t linger = 60 * SEC;

	assert_int_equal(shmq_proc_spawn(NULL, "child_sleep", &linger, sizeof(linger), NULL, &w.p), 0);
	assert_int_equal(shmq_sched_watch_proc(s, w.p, act_proc, &w), 0);
	assert_int_equal(shmq_sched_run(s, false), -1); /* arms the watch */
	shmq_sched_destroy(s);
	assert_int_equal(w.fired, 0);
	assert_int_equal(shmq_proc_kill(w.p, SIGKILL), 0);
	assert_int_equal(shmq_proc_join(w.p, 10 * SEC), 0);
	assert_int_equal(shmq_proc_exitcode(w.p), -SIGKILL);
	shmq_proc_close(w.p);
}

/* ---- the generic word watch (what queue and pipe watches are built on) ---- */

#include "chan/queue_int.h"
#include "sched/sched_int.h"
#include "core/wait_int.h"

static bool never_readable(const void *obj)
{
	(void)obj;
	return false;
}

static uint64_t no_progress(const void *obj)
{
	(void)obj;
	return 0;
}

/* In a child: 0 when the checks pass, else the number of the one that failed. */
static int refused_child(void)
{
	struct shmq_sched_opts strict = { .backend = SHMQ_SCHED_IO_URING };
	uint32_t word = 0, sleepers = 0;
	struct shmq__watch w = { .word = &word, .sleepers = &sleepers };
	shmq_sched *before, *s;
	int ran = 0;

	if (shmq_sched_create(&strict, &before) < 0)
		return 77; /* no io_uring here at all */
	/* a watch: a non-blocking run enters the kernel to collect for it */
	if (shmq__sched_watch_word(before, &w, &w, never_readable, no_progress, act_count, &ran) < 0)
		return 2;
	if (!refuse_syscall(__NR_io_uring_enter, EPERM))
		return 77;
	/* the ring is made, but it cannot be entered: AUTO takes the fallback */
	if (shmq_sched_create(NULL, &s) < 0 || strcmp(shmq_sched_backend(s), "fallback") != 0)
		return 3;
	if (shmq_sched_enter(s, 1 * MS, 0, act_count, &ran, NULL) < 0 ||
	    shmq_sched_run(s, true) != 0 || ran != 1)
		return 4;
	shmq_sched_destroy(s);
	if (shmq_sched_create(&strict, &s) != -EPERM)
		return 5;
	/* a ring refused after it was made: an error, never -1 ("nothing
	 * pending" for a non-blocking run) */
	if (shmq_sched_run(before, false) != -EACCES)
		return 6;
	/* an event far ahead: the blocking run must wait in the kernel, which
	 * refuses, and the event is neither run nor lost (one due before the
	 * run began would run first, on a slow machine, before the refusal) */
	if (shmq_sched_enter(before, 60 * SEC, 0, act_count, &ran, NULL) < 0 ||
	    shmq_sched_run(before, true) != -EACCES || ran != 1)
		return 7;
	if (shmq_sched_empty(before))
		return 8;
	return 0;
}

static void test_backend_refused(void **state)
{
	(void)state;
	in_child(refused_child);
}

/* Precision mode spins up to its margin before a deadline; the margin
 * follows the wake-up lateness it learns (here: as if it had learnt 5 s).
 * An earlier event entered from another thread during the spin runs at its
 * own time, not after the spin. */
struct spin_probe {
	shmq_sched *s;
	int64_t ran_at;
};

static void act_spin_early(void *arg)
{
	struct spin_probe *p = arg;

	p->ran_at = shmq_now_ns();
	assert_int_equal(shmq_sched_stop(p->s), 0);
}

static void *spin_enter_main(void *arg)
{
	struct spin_probe *p = arg;
	struct timespec ts = { 0, 100 * MS };

	nanosleep(&ts, NULL);
	assert_int_equal(shmq_sched_enter(p->s, 0, 0, act_spin_early, p, NULL), 0);
	return NULL;
}

static void test_precise_spin_sees_new_head(void **state)
{
	struct shmq_sched_opts o = { .backend = SHMQ_SCHED_FALLBACK, .flags = SHMQ_SCHED_PRECISE,
				     .spin_ns = 10 * SEC };
	struct spin_probe p = { 0 };
	int64_t late;
	pthread_t th;
	int ran = 0;

	(void)state;
	assert_int_equal(shmq_sched_create(&o, &p.s), 0);
	pthread_mutex_lock(&p.s->mu);
	p.s->lat_mean = 5 * SEC; /* the margin: the loop spins from 5 s ahead */
	pthread_mutex_unlock(&p.s->mu);
	late = shmq_now_ns() + 3 * SEC;
	assert_int_equal(shmq_sched_enterabs(p.s, late, 0, act_count, &ran, NULL), 0);
	assert_int_equal(pthread_create(&th, NULL, spin_enter_main, &p), 0);
	assert_int_equal(shmq_sched_run(p.s, true), 0); /* stopped by act_spin_early */
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_true(p.ran_at != 0);
	assert_true(p.ran_at < late);
	assert_int_equal(ran, 0);
	shmq_sched_destroy(p.s);
}

/* In a child made by fork() while another thread of the parent held the
 * scheduler's mutex (it is copied locked): every call refuses the
 * parent's scheduler instead of waiting for the copy's mutex, which nobody
 * will ever release.  SIGALRM if one waits. */
static int fork_locked_child(shmq_sched *s, shmq_event *ev)
{
	struct shmq_event_info info;

	alarm(10);
	if (shmq_sched_event_info(s, ev, &info) != -EBADF)
		return 2;
	if (shmq_sched_queue(s, &info, 1) != 0)
		return 3;
	if (!shmq_sched_empty(s))
		return 4;
	if (shmq_sched_enter(s, 0, 0, act_count, NULL, NULL) != -EBADF ||
	    shmq_sched_cancel(s, ev) != -EBADF || shmq_sched_run(s, false) != -EBADF ||
	    shmq_sched_stop(s) != -EBADF || shmq_sched_unwatch(s, s) != -EBADF)
		return 5;
	shmq_sched_destroy(s); /* the parent's: left alone */
	return 0;
}

static void test_fork_mutex_held(void **state)
{
	shmq_sched *s = mk(state);
	shmq_event *ev;
	pid_t pid;
	int st, ran = 0;

	assert_int_equal(shmq_sched_enter(s, 0, 0, act_count, &ran, &ev), 0);
	pthread_mutex_lock(&s->mu); /* as the run() thread does around its bookkeeping */
	pid = fork();
	if (pid == 0)
		_exit(fork_locked_child(s, ev));
	pthread_mutex_unlock(&s->mu);
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(shmq_sched_run(s, false), -1); /* the parent's is intact */
	assert_int_equal(ran, 1);
	shmq_sched_destroy(s);
}

/* The helper thread where futex_waitv is refused rather than missing: a
 * seccomp profile's EPERM (older container runtimes' default) must send it
 * to polling the words, as ENOSYS does, not round a loop of refused calls.
 * In a child: 0, or the number of the check that failed. */
static void act_stop_sched(void *arg)
{
	shmq_sched_stop(arg);
}

static int waitv_refused_child(void)
{
	struct shmq_sched_opts o = { .backend = SHMQ_SCHED_FALLBACK };
	uint32_t word = 0, sleepers = 0;
	struct shmq__watch w = { .word = &word, .sleepers = &sleepers };
	struct rusage r0, r1;
	int64_t cpu_us;
	shmq_sched *s;

	if (!refuse_syscall(SYS_futex_waitv, EPERM))
		return 77;
	if (shmq_sched_create(&o, &s) < 0 ||
	    shmq__sched_watch_word(s, &w, &w, never_readable, no_progress, act_count, NULL) < 0 ||
	    shmq_sched_enter(s, 500 * MS, 0, act_stop_sched, s, NULL) < 0)
		return 2;
	getrusage(RUSAGE_SELF, &r0);
	if (shmq_sched_run(s, true) != 0)
		return 3;
	getrusage(RUSAGE_SELF, &r1);
	cpu_us = (r1.ru_utime.tv_sec - r0.ru_utime.tv_sec + r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) *
			 1000000LL +
		 (r1.ru_utime.tv_usec - r0.ru_utime.tv_usec + r1.ru_stime.tv_usec - r0.ru_stime.tv_usec);
	/* polling every 1 ms costs a few ms of CPU in 500 ms; a loop of
	 * refused calls takes all the CPU it gets */
	if (cpu_us > 150000)
		return 4;
	shmq_sched_destroy(s);
	return 0;
}

static void test_helper_waitv_refused(void **state)
{
	(void)state;
	in_child(waitv_refused_child);
}

/* Actions that fork() and whose child returns from the action instead of
 * calling _exit(): the child's run() must end there with -EBADF, not go on
 * with its copy of the loop, whose io_uring (or epoll set and timerfd) it
 * shares with the parent.  Before, the child ran the parent's later events
 * as well (fallback), or the parent's run failed with -EAGAIN (io_uring). */
struct fork_act {
	pid_t parent;
	pid_t child[2];
	int *ticks;         /* shared with the children: [0] the parent's, [1] theirs */
	shmq_queue *q;
};

static void fork_act_child(struct fork_act *f, int i)
{
	pid_t pid = fork();

	if (pid == 0)
		alarm(10); /* a child that goes on in the loop must not outlive the test */
	else
		f->child[i] = pid;
	/* the child returns into run() too */
}

static void act_fork_event(void *arg)
{
	fork_act_child(arg, 0);
}

static void act_fork_watch(void *arg)
{
	struct fork_act *f = arg;
	char m[8];

	while (shmq_queue_get(f->q, m, sizeof(m), SHMQ_NOWAIT) >= 0)
		;
	fork_act_child(f, 1);
}

static void act_fork_tick(void *arg)
{
	struct fork_act *f = arg;

	__atomic_add_fetch(&f->ticks[getpid() == f->parent ? 0 : 1], 1, __ATOMIC_SEQ_CST);
}

static void test_fork_in_action(void **state)
{
	shmq_sched *s = mk(state);
	struct fork_act f = { .parent = getpid() };
	shmq_region *r;
	int64_t rc;
	int st;

	f.ticks = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(f.ticks != MAP_FAILED);
	assert_int_equal(shmq_region_create(NULL, &(struct shmq_region_opts){ .size = 1 << 20 }, &r),
			 0);
	assert_int_equal(shmq_queue_create(r, "q", NULL, &f.q), 0);
	assert_int_equal(shmq_queue_put(f.q, "x", 1, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_sched_watch_queue(s, f.q, act_fork_watch, &f), 0);
	assert_int_equal(shmq_sched_enter(s, 0, 0, act_fork_event, &f, NULL), 0);
	for (int i = 1; i <= 10; i++)
		assert_int_equal(shmq_sched_enter(s, i * 10 * MS, 0, act_fork_tick, &f, NULL), 0);
	assert_int_equal(shmq_sched_enter(s, 150 * MS, 0, act_stop_sched, s, NULL), 0);
	rc = shmq_sched_run(s, true);
	if (getpid() != f.parent)
		_exit(rc == -EBADF ? 0 : 1);
	assert_int_equal(rc, 0);
	for (int i = 0; i < 2; i++) {
		assert_true(f.child[i] > 0);
		assert_int_equal(waitpid(f.child[i], &st, 0), f.child[i]);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	assert_int_equal(f.ticks[0], 10);
	assert_int_equal(f.ticks[1], 0);
	assert_int_equal(shmq_sched_unwatch(s, f.q), 0);
	shmq_sched_destroy(s);
	shmq_queue_close(f.q);
	shmq_region_close(r);
	munmap(f.ticks, 4096);
}

/* Where futex_waitv is refused the helper thread reads the watched words
 * itself: once unwatch returns, the caller may unmap the word, and the
 * helper must not read it again (before: it could still be reading a set it
 * had copied, and died of SIGSEGV in a correct program).  The window is made
 * wide at will: the fillers' pages are dropped from the page tables, so the
 * helper's reads of them fault one by one (far apart: one fault maps no
 * other), and the word it reads last (w, watched first) is unwatched and
 * unmapped once /proc/self/pagemap shows that the helper has started on the
 * fillers.  In a child: 0, 77 (cannot
 * refuse the call or read pagemap), or the number of the failed check. */
#define UNMAP_FILLERS 120
#define UNMAP_ROUNDS 200
#define UNMAP_STRIDE 32 /* pages: wider than the kernel's fault-around (64 KiB) */

static bool page_present(int pagemap, const void *p)
{
	uint64_t e;
	long pg = sysconf(_SC_PAGESIZE);

	if (pread(pagemap, &e, sizeof(e), (off_t)((uintptr_t)p / (uintptr_t)pg * sizeof(e))) !=
	    (ssize_t)sizeof(e))
		return false;
	return e >> 63; /* bit 63: present */
}

static int unwatch_unmap_child(void)
{
	struct shmq_sched_opts o = { .backend = SHMQ_SCHED_FALLBACK };
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	struct shmq__watch fw[UNMAP_FILLERS] = { 0 }, ww = { 0 };
	shmq_sched *s;
	uint8_t *fill;
	int pagemap;

	if ((pagemap = open("/proc/self/pagemap", O_RDONLY)) < 0)
		return 77;
	fill = mmap(NULL, UNMAP_FILLERS * UNMAP_STRIDE * pg, PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (fill == MAP_FAILED)
		return 2;
	for (unsigned i = 0; i < UNMAP_FILLERS; i++) {
		fw[i].word = (uint32_t *)(void *)(fill + i * UNMAP_STRIDE * pg);
		fw[i].sleepers = fw[i].word + 1;
	}
	if (!refuse_syscall(SYS_futex_waitv, EPERM))
		return 77;
	if (shmq_sched_create(&o, &s) < 0)
		return 3;
	for (int round = 0; round < UNMAP_ROUNDS; round++) {
		uint32_t *wp = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
				    -1, 0);
		int64_t until;

		if (wp == MAP_FAILED)
			return 4;
		ww.word = wp;
		ww.sleepers = wp + 1;
		/* w first: the helper's set lists the newest first, w last */
		if (shmq__sched_watch_word(s, &ww, &ww, never_readable, no_progress, act_count,
					   NULL) < 0)
			return 5;
		for (unsigned i = 0; i < UNMAP_FILLERS; i++)
			if (shmq__sched_watch_word(s, &fw[i], &fw[i], never_readable, no_progress,
						   act_count, NULL) < 0)
				return 6;
		if (shmq_sched_run(s, false) < -1) /* arms them: the helper's set */
			return 7;
		/* The helper re-reads its set every 1 ms: wait (bounded) until
		 * it faults the first filler in, then take w away under it. */
		if (madvise(fill, UNMAP_FILLERS * UNMAP_STRIDE * pg, MADV_DONTNEED) < 0)
			return 8;
		until = shmq_now_ns() + 2 * SEC;
		while (!page_present(pagemap, fw[UNMAP_FILLERS - 1].word) && shmq_now_ns() < until)
			;
		if (shmq_sched_unwatch(s, &ww) != 0)
			return 9;
		/* the memory is gone (PROT_NONE in its place: not reused) */
		if (mmap(wp, pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) !=
		    (void *)wp)
			return 10;
		for (unsigned i = 0; i < UNMAP_FILLERS; i++)
			if (shmq_sched_unwatch(s, &fw[i]) != 0)
				return 11;
		if (shmq_sched_run(s, false) < -1) /* frees the unwatched */
			return 12;
		munmap(wp, pg);
	}
	shmq_sched_destroy(s);
	munmap(fill, UNMAP_FILLERS * UNMAP_STRIDE * pg);
	close(pagemap);
	return 0;
}

static void test_helper_unwatch_unmap(void **state)
{
	(void)state;
	in_child(unwatch_unmap_child); /* before: 128 + SIGSEGV */
}

struct wordobj {
	uint32_t word;     /* the readiness futex word */
	uint32_t sleepers;
	uint32_t data;     /* items published and not yet taken */
	uint32_t taken;
	uint32_t produced;
	uint32_t total;
	shmq_sched *s;
	shmq_event *watchdog;
};

static bool word_readable(const void *obj)
{
	const struct wordobj *o = obj;

	return __atomic_load_n(&o->data, __ATOMIC_SEQ_CST) != 0;
}

static uint64_t word_progress(const void *obj)
{
	const struct wordobj *o = obj;

	return o->taken; /* written by the actions, on the loop's thread */
}

static void act_word(void *arg)
{
	struct wordobj *o = arg;

	__atomic_fetch_sub(&o->data, 1, __ATOMIC_SEQ_CST);
	if (++o->taken == o->total) {
		assert_int_equal(shmq_sched_unwatch(o->s, o), 0);
		assert_int_equal(shmq_sched_cancel(o->s, o->watchdog), 0);
	}
}

/* ends a run that would otherwise hang on a broken watch */
static void act_watchdog(void *arg)
{
	struct wordobj *o = arg;

	shmq_sched_unwatch(o->s, o);
	shmq_sched_stop(o->s);
}

/* the producer side of the core/watch_int.h protocol */
static void *word_producer(void *arg)
{
	struct wordobj *o = arg;
	struct timespec ts = { 0, 3 * MS };

	for (uint32_t i = 0; i < o->total; i++) {
		nanosleep(&ts, NULL);
		__atomic_fetch_add(&o->data, 1, __ATOMIC_SEQ_CST);
		__atomic_fetch_add(&o->produced, 1, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&o->sleepers, __ATOMIC_SEQ_CST)) {
			__atomic_fetch_add(&o->word, 1, __ATOMIC_SEQ_CST);
			shmq__futex_wake(&o->word, INT32_MAX);
		}
	}
	return NULL;
}

/* A handle stays stale for the scheduler's life, however often its slot is
 * reused: a slot whose generation would wrap (2^31 reuses: enter + cancel
 * on one slot, about 200 s of a tight loop) is retired, so the handle of its
 * first event never names a later one.  The reuses are skipped here by
 * moving the slot's generation to the last free value before the wrap. */
static void test_cancel_stale_after_wrap(void **state)
{
	shmq_sched *s = mk(state);
	shmq_event *first, *last, *later;
	int ran = 0;
	uint32_t idx;

	assert_int_equal(shmq_sched_enter(s, 60 * SEC, 0, act_count, &ran, &first), 0);
	assert_int_equal(shmq_sched_cancel(s, first), 0);
	idx = (uint32_t)(uintptr_t)first - 1;
	assert_true(idx < s->heap.nslots);
	s->heap.hot[idx].gen = UINT32_MAX - 1; /* free, 2^31 - 1 reuses later */
	assert_int_equal(shmq_sched_enter(s, 60 * SEC, 0, act_count, &ran, &last), 0);
	assert_int_equal((uint32_t)(uintptr_t)last - 1, idx); /* the slot's last life */
	assert_int_equal(shmq_sched_cancel(s, last), 0);
	assert_int_equal(shmq_sched_enter(s, 60 * SEC, 0, act_count, &ran, &later), 0);
	assert_int_equal(shmq_sched_cancel(s, first), -ENOENT);
	assert_int_equal(shmq_sched_cancel(s, last), -ENOENT);
	assert_int_equal(shmq_sched_queue(s, NULL, 0), 1); /* later still pending */
	assert_int_equal(shmq_sched_cancel(s, later), 0);
	assert_true(shmq_sched_empty(s));
	assert_int_equal(ran, 0);
	shmq_sched_destroy(s);
}

/* a word watch fires for each publish from another thread while the loop
 * sleeps; unwatch from its action ends the run */
static void test_watch_word(void **state)
{
	shmq_sched *s = mk(state);
	struct wordobj o = { .total = 20, .s = s };
	struct shmq__watch w = { .word = &o.word, .sleepers = &o.sleepers };
	pthread_t th;

	assert_int_equal(shmq__sched_watch_word(s, &o, &w, word_readable, word_progress, act_word, &o), 0);
	assert_int_equal(shmq__sched_watch_word(s, &o, &w, word_readable, word_progress, act_word, &o),
			 -EEXIST);
	assert_int_equal(o.sleepers, 0); /* counted in when the loop arms it */
	assert_int_equal(shmq_sched_enter(s, 20 * SEC, 0, act_watchdog, &o, &o.watchdog), 0);
	assert_int_equal(pthread_create(&th, NULL, word_producer, &o), 0);
	assert_int_equal(shmq_sched_run(s, true), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(o.taken, 20);
	assert_int_equal(o.data, 0);
	assert_int_equal(o.sleepers, 0);
	shmq_sched_destroy(s);
}

/* a readiness change nobody announces (a peer that died cannot bump the
 * word): the loop's periodic re-check of armed watches still fires it */
struct silent {
	uint32_t word, sleepers, ready;
	int fired;
	shmq_sched *s;
	shmq_event *watchdog;
};

static bool silent_readable(const void *obj)
{
	const struct silent *o = obj;

	return __atomic_load_n(&o->ready, __ATOMIC_SEQ_CST) != 0;
}

static uint64_t silent_progress(const void *obj)
{
	const struct silent *o = obj;

	return (uint64_t)o->fired;
}

static void act_silent(void *arg)
{
	struct silent *o = arg;

	o->fired++;
	assert_int_equal(shmq_sched_unwatch(o->s, o), 0);
	assert_int_equal(shmq_sched_cancel(o->s, o->watchdog), 0);
}

static void act_silent_nb(void *arg)
{
	struct silent *o = arg;

	o->fired++;
	assert_int_equal(shmq_sched_unwatch(o->s, o), 0);
}

static void act_silent_watchdog(void *arg)
{
	struct silent *o = arg;

	shmq_sched_unwatch(o->s, o);
}

static void *silent_main(void *arg)
{
	struct silent *o = arg;
	struct timespec ts = { 0, 20 * MS };

	nanosleep(&ts, NULL);
	__atomic_store_n(&o->ready, 1, __ATOMIC_SEQ_CST); /* and no wake */
	return NULL;
}

static void test_watch_unannounced(void **state)
{
	shmq_sched *s = mk(state);
	struct silent o = { .s = s };
	struct shmq__watch w = { .word = &o.word, .sleepers = &o.sleepers };
	pthread_t th;

	assert_int_equal(shmq__sched_watch_word(s, &o, &w, silent_readable, silent_progress, act_silent, &o),
			 0);
	assert_int_equal(shmq_sched_enter(s, 10 * SEC, 0, act_silent_watchdog, &o, &o.watchdog), 0);
	assert_int_equal(pthread_create(&th, NULL, silent_main, &o), 0);
	assert_int_equal(shmq_sched_run(s, true), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(o.fired, 1);
	assert_int_equal(o.word, 0);
	shmq_sched_destroy(s);
}

/* more watches than the ring has submission entries (64): all armed, all fire */
#define NW 100
struct manyw {
	struct silent o[NW];
	int fired;
	shmq_sched *s;
	shmq_event *watchdog;
};
static struct manyw g_mw;

static void act_manyw(void *arg)
{
	struct silent *o = arg;

	o->fired++;
	assert_int_equal(shmq_sched_unwatch(o->s, o), 0);
	if (++g_mw.fired == NW)
		assert_int_equal(shmq_sched_cancel(g_mw.s, g_mw.watchdog), 0);
}

static void act_manyw_watchdog(void *arg)
{
	(void)arg;
	for (int i = 0; i < NW; i++)
		shmq_sched_unwatch(g_mw.s, &g_mw.o[i]);
}

static void *manyw_main(void *arg)
{
	struct timespec ts = { 0, 30 * MS };

	(void)arg;
	nanosleep(&ts, NULL);
	for (int i = NW - 1; i >= 0; i--) {
		struct silent *o = &g_mw.o[i];

		__atomic_store_n(&o->ready, 1, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&o->sleepers, __ATOMIC_SEQ_CST)) {
			__atomic_fetch_add(&o->word, 1, __ATOMIC_SEQ_CST);
			shmq__futex_wake(&o->word, INT32_MAX);
		}
	}
	return NULL;
}

static void test_watch_many(void **state)
{
	shmq_sched *s = mk(state);
	pthread_t th;

	memset(&g_mw, 0, sizeof(g_mw));
	g_mw.s = s;
	for (int i = 0; i < NW; i++) {
		struct shmq__watch w = { .word = &g_mw.o[i].word, .sleepers = &g_mw.o[i].sleepers };

		g_mw.o[i].s = s;
		assert_int_equal(shmq__sched_watch_word(s, &g_mw.o[i], &w, silent_readable, silent_progress,
							act_manyw, &g_mw.o[i]), 0);
	}
	assert_int_equal(shmq_sched_enter(s, 20 * SEC, 0, act_manyw_watchdog, NULL, &g_mw.watchdog), 0);
	assert_true(shmq_sched_run(s, false) > 0); /* arms them all, before the producer */
	assert_int_equal(pthread_create(&th, NULL, manyw_main, NULL), 0);
	assert_int_equal(shmq_sched_run(s, true), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(g_mw.fired, NW);
	for (int i = 0; i < NW; i++) {
		assert_int_equal(g_mw.o[i].fired, 1);
		assert_int_equal(g_mw.o[i].sleepers, 0);
	}
	shmq_sched_destroy(s);
}

/* A non-blocking run runs every watch that is ready, also when more of
 * their completions came at once than the ring's completion queue holds: the
 * kernel keeps the rest in its overflow list (IORING_FEAT_NODROP), and they
 * are as ready as the others.  100 watches on a ring of 8 entries (16
 * completions); on the helper thread (at most 127 words) the same. */
#define NOV 100
static void act_ov(void *arg)
{
	struct silent *o = arg;

	o->fired++;
	__atomic_store_n(&o->ready, 0, __ATOMIC_SEQ_CST); /* drained */
}

static void test_nonblocking_cq_overflow(void **state)
{
	shmq_sched *s = mk_ring(state, 8);
	static struct silent o[NOV];

	memset(o, 0, sizeof(o));
	for (int i = 0; i < NOV; i++) {
		struct shmq__watch w = { .word = &o[i].word, .sleepers = &o[i].sleepers };

		assert_int_equal(shmq__sched_watch_word(s, &o[i], &w, silent_readable, silent_progress,
							act_ov, &o[i]), 0);
	}
	assert_int_equal(shmq_sched_run(s, false), -1); /* arms them all */
	for (int i = 0; i < NOV; i++) {
		/* a publish, as manyw_main: every wait completes at once */
		__atomic_store_n(&o[i].ready, 1, __ATOMIC_SEQ_CST);
		assert_int_equal(__atomic_load_n(&o[i].sleepers, __ATOMIC_SEQ_CST), 1);
		__atomic_fetch_add(&o[i].word, 1, __ATOMIC_SEQ_CST);
		shmq__futex_wake(&o[i].word, INT32_MAX);
	}
	assert_int_equal(shmq_sched_run(s, false), -1);
	for (int i = 0; i < NOV; i++)
		assert_int_equal(o[i].fired, 1);
	shmq_sched_destroy(s);
}

/* ---- the kernel refusing a submission for a moment ---- */

/* In a child: a word watch whose arming found the submission queue full
 * while the kernel refused to take it is armed again by the next run: after
 * it, a publish to each watch's word wakes a wait in the kernel (a watch
 * left marked as waiting, with nothing in the kernel, saw a publish only at
 * the next liveness re-check, up to 100 ms later). */
#define NSQ 6
static int sqe_refused_arm_child(void **state)
{
	struct silent o[NSQ] = { 0 };
	shmq_sched *s;
	struct shmq_sched_opts opts = { .backend = SHMQ_SCHED_IO_URING, .ring_entries = 4 };

	(void)state;
	if (shmq_sched_create(&opts, &s) < 0)
		return 77;
	for (int i = 0; i < NSQ; i++) {
		struct shmq__watch w = { .word = &o[i].word, .sleepers = &o[i].sleepers };

		if (shmq__sched_watch_word(s, &o[i], &w, silent_readable, silent_progress,
					   act_silent_nb, &o[i]) < 0)
			return 2;
	}
	/* six waits on a queue of four: the backend submits to make room */
	__atomic_store_n(&g_inj.on, 1, __ATOMIC_SEQ_CST);
	(void)shmq_sched_run(s, false); /* -EAGAIN: the kernel's, for now */
	__atomic_store_n(&g_inj.on, 0, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&g_inj.failed, __ATOMIC_SEQ_CST) == 0)
		return 3; /* the queue never filled: the test tests nothing */
	if (shmq_sched_run(s, false) != -1)
		return 4;
	for (int i = 0; i < NSQ; i++) {
		__atomic_fetch_add(&o[i].word, 1, __ATOMIC_SEQ_CST);
		if (shmq__futex_wake(&o[i].word, INT32_MAX) != 1)
			return 10 + i;
	}
	shmq_sched_destroy(s);
	return 0;
}

static void test_sqe_refused_arm(void **state)
{
	inj_run(state, sqe_refused_arm_child);
}

/* In a child: a liveness re-check that finds an armed watch readable with
 * no publish (a dead peer's) cancels its wait; a cancel the kernel did not
 * take (submission queue full, submission refused) is sent again, so the
 * watch fires at the next re-check instead of never. */
static int sqe_refused_recheck_child(void **state)
{
	struct silent b = { 0 }, a = { 0 };
	int a_fired = 0;
	struct shmq__watch wb = { .word = &b.word, .sleepers = &b.sleepers };
	struct shmq__watch wa = { .word = &a.word, .sleepers = &a.sleepers };
	struct shmq_sched_opts opts = { .backend = SHMQ_SCHED_IO_URING, .ring_entries = 1 };
	struct timespec slice = { 0, 110 * MS }; /* > WATCH_SLICE_NS: a re-check is due */
	shmq_sched *s;

	(void)state;
	if (shmq_sched_create(&opts, &s) < 0)
		return 77;
	b.s = s;
	if (shmq__sched_watch_word(s, &b, &wb, silent_readable, silent_progress, act_silent, &b) < 0)
		return 2;
	if (shmq_sched_run(s, false) != -1) /* b waits in the kernel */
		return 3;
	__atomic_store_n(&b.ready, 1, __ATOMIC_SEQ_CST); /* and no publish */
	while (nanosleep(&slice, &slice) < 0 && errno == EINTR)
		;
	/* a new watch, first in the list: its wait fills the queue of one
	 * before the re-check's cancel of b's needs room */
	if (shmq__sched_watch_word(s, &a, &wa, never_readable, no_progress, act_count,
				   &a_fired) < 0)
		return 4;
	__atomic_store_n(&g_inj.on, 1, __ATOMIC_SEQ_CST);
	(void)shmq_sched_run(s, false); /* -EAGAIN: the kernel's, for now */
	__atomic_store_n(&g_inj.on, 0, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&g_inj.failed, __ATOMIC_SEQ_CST) == 0)
		return 5;
	if (shmq_sched_enter(s, 5 * SEC, 0, act_silent_watchdog, &b, &b.watchdog) < 0 ||
	    shmq_sched_unwatch(s, &a) < 0)
		return 6;
	if (shmq_sched_run(s, true) != 0)
		return 7;
	if (b.fired != 1) /* the watchdog ended the run */
		return 8;
	shmq_sched_destroy(s);
	return 0;
}

static void test_sqe_refused_recheck(void **state)
{
	inj_run(state, sqe_refused_recheck_child);
}

/* A non-blocking run looks at the watches that wait on the helper thread
 * itself: what is readable now runs now, whether or not the helper has been
 * scheduled since the change (here: one it never sees, no word moved). */
static void test_nonblocking_helper_unseen(void **state)
{
	shmq_sched *s = mk(state);
	struct silent o = { .s = s };
	struct shmq__watch w = { .word = &o.word, .sleepers = &o.sleepers };

	assert_int_equal(shmq__sched_watch_word(s, &o, &w, silent_readable, silent_progress, act_silent_nb,
						&o), 0);
	assert_int_equal(shmq_sched_run(s, false), -1); /* armed: on the helper */
	__atomic_store_n(&o.ready, 1, __ATOMIC_SEQ_CST);
	assert_int_equal(shmq_sched_run(s, false), -1);
	assert_int_equal(o.fired, 1);
	shmq_sched_destroy(s);
}

/* The helper thread (the fallback, and io_uring without IORING_OP_FUTEX_WAIT)
 * waits on at most SHMQ__READY_HELPER_MAX words: a queue or pipe watch past
 * that is refused when it is made (-ENOSPC), and run() never fails for it;
 * every accepted watch works.  With the kernel's futex op there is no bound. */
#define NHW (SHMQ__READY_HELPER_MAX + 1)
static struct {
	struct silent o[NHW];
	int fired, want;
	shmq_event *watchdog;
} g_hw;

static void act_hw(void *arg)
{
	struct silent *o = arg;

	o->fired++;
	assert_int_equal(shmq_sched_unwatch(o->s, o), 0);
	if (++g_hw.fired == g_hw.want)
		assert_int_equal(shmq_sched_cancel(o->s, g_hw.watchdog), 0);
}

static void act_hw_watchdog(void *arg)
{
	shmq_sched *s = arg;

	for (int i = 0; i < NHW; i++)
		shmq_sched_unwatch(s, &g_hw.o[i]);
}

static int hw_watch(shmq_sched *s, int i)
{
	struct shmq__watch w = { .word = &g_hw.o[i].word, .sleepers = &g_hw.o[i].sleepers };

	g_hw.o[i].s = s;
	return shmq__sched_watch_word(s, &g_hw.o[i], &w, silent_readable, silent_progress, act_hw,
				      &g_hw.o[i]);
}

static void test_watch_helper_limit(void **state)
{
	const struct cfg *c = *state;
	bool helper = c->backend == SHMQ_SCHED_FALLBACK || (c->flags & SHMQ_SCHED_NO_FUTEX_OP);
	shmq_sched *s = mk(state);
	int rc;

	memset(&g_hw, 0, sizeof(g_hw));
	for (int i = 0; i < NHW - 1; i++)
		assert_int_equal(hw_watch(s, i), 0);
	rc = hw_watch(s, NHW - 1);
	if (helper || rc == -ENOSPC) { /* -ENOSPC: a kernel without the futex op */
		assert_int_equal(rc, -ENOSPC);
		/* the bound counts live watches: one gone makes room for one */
		assert_int_equal(shmq_sched_unwatch(s, &g_hw.o[0]), 0);
		assert_int_equal(hw_watch(s, NHW - 1), 0);
		assert_int_equal(hw_watch(s, 0), -ENOSPC);
		g_hw.want = NHW - 1;
	} else {
		assert_int_equal(rc, 0);
		g_hw.want = NHW;
	}
	assert_int_equal(shmq_sched_enter(s, 20 * SEC, 0, act_hw_watchdog, s, &g_hw.watchdog), 0);
	assert_true(shmq_sched_run(s, false) > 0); /* arms them all: no error */
	for (int i = 0; i < NHW; i++) {
		struct silent *o = &g_hw.o[i];

		__atomic_store_n(&o->ready, 1, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&o->sleepers, __ATOMIC_SEQ_CST)) {
			__atomic_fetch_add(&o->word, 1, __ATOMIC_SEQ_CST);
			shmq__futex_wake(&o->word, INT32_MAX);
		}
	}
	assert_int_equal(shmq_sched_run(s, true), 0);
	assert_int_equal(g_hw.fired, g_hw.want);
	for (int i = 0; i < NHW; i++)
		assert_int_equal(g_hw.o[i].sleepers, 0);
	shmq_sched_destroy(s);
}

/* An object that stays readable while its action takes nothing (a queue
 * corrupted under it, or drained after a shutdown, an action that only
 * peeks): the level-triggered watch must not spin the loop.  A non-blocking
 * run runs the action once and returns; a blocking run runs it again only
 * at the liveness re-checks (every 100 ms), or when the word moves. */
struct stuck {
	uint32_t word, sleepers;
	unsigned fired;
	shmq_sched *s;
};

static bool stuck_readable(const void *obj)
{
	(void)obj;
	return true;
}

static uint64_t stuck_progress(const void *obj)
{
	(void)obj;
	return 0; /* nothing is ever taken */
}

static void act_stuck(void *arg)
{
	struct stuck *o = arg;

	o->fired++;
}

static void act_stuck_stop(void *arg)
{
	struct stuck *o = arg;

	shmq_sched_unwatch(o->s, o);
}

static void test_watch_stuck_readable(void **state)
{
	shmq_sched *s = mk(state);
	struct stuck o = { .s = s };
	struct shmq__watch w = { .word = &o.word, .sleepers = &o.sleepers };
	shmq_event *ev;

	assert_int_equal(shmq__sched_watch_word(s, &o, &w, stuck_readable, stuck_progress, act_stuck, &o), 0);
	alarm(10); /* a loop that spins ends the suite (SIGALRM) instead of hanging it */
	/* once counted out, once more counted in (the first may have missed
	 * a publish: no word moved for it), then stalled; a non-blocking run
	 * runs a watch's action at most once, and says (0) that it is ready */
	assert_int_equal(shmq_sched_run(s, false), 0);
	assert_int_equal(o.fired, 1);
	/* the first run set the next liveness re-check 100 ms ahead, which
	 * would make the watch fire again: none in the next two runs, however
	 * slow the machine */
	pthread_mutex_lock(&s->mu);
	s->word_check_at = INT64_MAX;
	pthread_mutex_unlock(&s->mu);
	assert_int_equal(shmq_sched_run(s, false), -1);
	alarm(0);
	assert_int_equal(o.fired, 2);
	assert_int_equal(shmq_sched_run(s, false), -1);
	assert_int_equal(o.fired, 2);
	pthread_mutex_lock(&s->mu);
	s->word_check_at = 0;
	pthread_mutex_unlock(&s->mu);
	/* blocking, for 0.5 s: at most one action per re-check (5), not millions */
	assert_int_equal(shmq_sched_enter(s, 500 * MS, 0, act_stuck_stop, &o, &ev), 0);
	assert_int_equal(shmq_sched_run(s, true), 0);
	assert_true(o.fired >= 1);
	assert_true(o.fired <= 20);
	shmq_sched_destroy(s);
}

/* ---- queue and pipe watches, fed by another process ---- */

#define XMSGS 10

static int child_putter(shmq_region *r, const void *arg, size_t len)
{
	struct timespec ts = { 0, 5 * MS };
	shmq_queue *q;

	(void)arg;
	(void)len;
	if (shmq_queue_open(r, "sched.q", &q))
		return 1;
	for (int i = 0; i < XMSGS; i++) {
		nanosleep(&ts, NULL);
		if (shmq_queue_put(q, &i, sizeof(i), 5 * SEC))
			return 2;
	}
	shmq_queue_close(q);
	return 0;
}
SHMQ_ENTRY(child_putter);

static void die_now(void *arg, uint64_t pos)
{
	(void)arg;
	(void)pos;
	raise(SIGKILL);
}

/* Dies holding a put's claim at the head of "sched.q" (before its publication). */
static int child_claim_die(shmq_region *r, const void *arg, size_t len)
{
	shmq_queue *q;
	int v = -1;

	(void)arg;
	(void)len;
	if (shmq_queue_open(r, "sched.q", &q))
		return 1;
	shmq__queue_put_noted(q, &v, sizeof(v), 5 * SEC, die_now, NULL);
	return 2;
}
SHMQ_ENTRY(child_claim_die);

/* Begins the message waiting in "sched.q" (two-phase) and dies holding it. */
static int child_hold_die(shmq_region *r, const void *arg, size_t len)
{
	shmq_queue *q;
	const void *msg;
	uint64_t pos;

	(void)arg;
	(void)len;
	if (shmq_queue_open(r, "sched.q", &q))
		return 1;
	if (shmq_queue_get_begin(q, &msg, &pos, SHMQ_NOWAIT) < 0)
		return 2;
	pause(); /* killed here, holding it */
	return 3;
}
SHMQ_ENTRY(child_hold_die);

static int child_sender(shmq_region *r, const void *arg, size_t len)
{
	struct timespec ts = { 0, 5 * MS };
	shmq_pipe *p;

	(void)arg;
	(void)len;
	if (shmq_pipe_open(r, "sched.p", 1, &p))
		return 1;
	for (int i = 0; i < XMSGS; i++) {
		nanosleep(&ts, NULL);
		if (shmq_pipe_send(p, &i, sizeof(i), 5 * SEC))
			return 2;
	}
	shmq_pipe_close(p); /* the watcher then sees the end gone (-EPIPE) */
	return 0;
}
SHMQ_ENTRY(child_sender);

/* As child_sender, but it dies instead of closing: nothing announces it. */
static int child_sender_killed(shmq_region *r, const void *arg, size_t len)
{
	shmq_pipe *p;

	(void)arg;
	(void)len;
	if (shmq_pipe_open(r, "sched.p", 1, &p))
		return 1;
	for (int i = 0; i < XMSGS; i++)
		if (shmq_pipe_send(p, &i, sizeof(i), 5 * SEC))
			return 2;
	raise(SIGKILL);
	return 3;
}
SHMQ_ENTRY(child_sender_killed);

struct xwatch {
	shmq_sched *s;
	shmq_queue *q;
	shmq_pipe *p;
	shmq_event *watchdog;
	int got[XMSGS];
	int n;
	int fires;
	int epipe;
	int bad;
};

static void act_queue(void *arg)
{
	struct xwatch *x = arg;
	int v;

	x->fires++;
	while (shmq_queue_get(x->q, &v, sizeof(v), SHMQ_NOWAIT) == (ssize_t)sizeof(v)) {
		if (x->n >= XMSGS || v != x->n)
			x->bad++;
		else
			x->got[x->n++] = v;
	}
	if (x->n == XMSGS) {
		assert_int_equal(shmq_sched_unwatch(x->s, x->q), 0);
		assert_int_equal(shmq_sched_cancel(x->s, x->watchdog), 0);
	}
}

static void act_pipe(void *arg)
{
	struct xwatch *x = arg;
	ssize_t r;
	int v;

	x->fires++;
	while ((r = shmq_pipe_recv(x->p, &v, sizeof(v), SHMQ_NOWAIT)) == (ssize_t)sizeof(v)) {
		if (x->n >= XMSGS || v != x->n)
			x->bad++;
		else
			x->got[x->n++] = v;
	}
	if (r == -EPIPE) {
		x->epipe++;
		assert_int_equal(shmq_sched_unwatch(x->s, x->p), 0);
		assert_int_equal(shmq_sched_cancel(x->s, x->watchdog), 0);
	} else if (r != -EAGAIN) {
		x->bad++;
	}
}

/* Takes the one message 0, then ends the run. */
static void act_queue_one(void *arg)
{
	struct xwatch *x = arg;
	int v;

	x->fires++;
	if (shmq_queue_get(x->q, &v, sizeof(v), SHMQ_NOWAIT) != (ssize_t)sizeof(v))
		return;
	if (v != 0)
		x->bad++;
	x->n++;
	assert_int_equal(shmq_sched_unwatch(x->s, x->q), 0);
	assert_int_equal(shmq_sched_cancel(x->s, x->watchdog), 0);
}

/* As act_queue_one, through a two-phase get (whose handle looks for dead
 * holders itself only every 32nd begin, so the watch has to). */
static void act_queue_begin_one(void *arg)
{
	struct xwatch *x = arg;
	const void *msg;
	uint64_t pos;
	int v;

	x->fires++;
	if (shmq_queue_get_begin(x->q, &msg, &pos, SHMQ_NOWAIT) != (ssize_t)sizeof(v))
		return;
	memcpy(&v, msg, sizeof(v));
	if (v != 0 || pos != 0)
		x->bad++;
	assert_int_equal(shmq_queue_get_commit(x->q, pos), 0);
	x->n++;
	assert_int_equal(shmq_sched_unwatch(x->s, x->q), 0);
	assert_int_equal(shmq_sched_cancel(x->s, x->watchdog), 0);
}

static void act_xwatchdog(void *arg)
{
	struct xwatch *x = arg;

	shmq_sched_unwatch(x->s, x->q ? (void *)x->q : (void *)x->p);
}

static shmq_region *anon_region(void)
{
	struct shmq_region_opts o = { .size = 1 << 20 };
	shmq_region *r = NULL;

	assert_int_equal(shmq_region_create(NULL, &o, &r), 0);
	return r;
}

static void act_unexpected(void *arg)
{
	(*(int *)arg)++;
}

/* Issue 14 item 8, its kind: another thread unwatches the only watch (a
 * process that lives on) while the loop sleeps on it with no event queued:
 * the loop has nothing left to wait for and returns (it used to sleep on
 * until the process exited: a minute here).  A queue's watch is re-checked
 * every 100 ms anyway; a process watch has no such slice. */
static void test_unwatch_only_watch_from_thread(void **state)
{
	shmq_sched *s = mk(state);
	int64_t linger = 60 * SEC;
	struct lone o = { .s = s };
	int fired = 0;
	shmq_proc *p;
	pthread_t th;

	assert_int_equal(shmq_proc_spawn(NULL, "child_sleep", &linger, sizeof(linger), NULL, &p),
			 0);
	assert_int_equal(shmq_sched_watch_proc(s, p, act_unexpected, &fired), 0);
	o.obj = p;
	assert_int_equal(pthread_create(&th, NULL, lone_main, &o), 0);
	assert_int_equal(shmq_sched_run(s, true), 0);
	__atomic_store_n(&o.returned, 1, __ATOMIC_SEQ_CST);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(o.cancel_rc, 0);
	assert_false(o.stop_needed);
	assert_int_equal(fired, 0);
	shmq_sched_destroy(s);
	shmq_proc_close(p);
}

/* the watch fires on puts made by another process while the loop sleeps */
static void test_watch_queue(void **state)
{
	shmq_sched *s = mk(state);
	shmq_region *r = anon_region();
	struct xwatch x = { .s = s };
	shmq_proc *child;

	assert_int_equal(shmq_queue_create(r, "sched.q", NULL, &x.q), 0);
	assert_int_equal(shmq_sched_watch_queue(s, x.q, act_queue, &x), 0);
	assert_int_equal(shmq_sched_enter(s, 20 * SEC, 0, act_xwatchdog, &x, &x.watchdog), 0);
	assert_int_equal(shmq_proc_spawn(r, "child_putter", NULL, 0, NULL, &child), 0);
	assert_int_equal(shmq_sched_run(s, true), 0);
	assert_int_equal(shmq_proc_join(child, 10 * SEC), 0);
	assert_int_equal(shmq_proc_exitcode(child), 0);
	assert_int_equal(x.n, XMSGS);
	assert_int_equal(x.bad, 0);
	assert_true(x.fires >= 1);
	shmq_proc_close(child);
	shmq_queue_close(x.q);
	shmq_region_close(r);
	shmq_sched_destroy(s);
}

/* A pipe watch fed by the spawned entry, which sends XMSGS messages and
 * then leaves with exit status status: the action runs for each message,
 * then once more when the peer's end is gone (recv: -EPIPE). */
static void watch_pipe_from(void **state, const char *entry, int status)
{
	shmq_sched *s = mk(state);
	shmq_region *r = anon_region();
	struct xwatch x = { .s = s };
	shmq_pipe *end1;
	shmq_proc *child;

	assert_int_equal(shmq_pipe_create(r, "sched.p", NULL, &x.p, &end1), 0);
	assert_int_equal(shmq_sched_watch_pipe(s, x.p, act_pipe, &x), 0);
	assert_int_equal(shmq_sched_enter(s, 20 * SEC, 0, act_xwatchdog, &x, &x.watchdog), 0);
	assert_int_equal(shmq_proc_spawn(r, entry, NULL, 0, NULL, &child), 0);
	shmq_pipe_close(end1); /* the child holds end 1 now */
	assert_int_equal(shmq_sched_run(s, true), 0);
	assert_int_equal(shmq_proc_join(child, 10 * SEC), 0);
	assert_int_equal(shmq_proc_exitcode(child), status);
	assert_int_equal(x.n, XMSGS);
	assert_int_equal(x.bad, 0);
	assert_int_equal(x.epipe, 1);
	shmq_proc_close(child);
	shmq_pipe_close(x.p);
	shmq_region_close(r);
	shmq_sched_destroy(s);
}

/* the peer closes its end */
static void test_watch_pipe(void **state)
{
	watch_pipe_from(state, "child_sender", 0);
}

/* A put's claimer died at the queue's head, and a message waits behind its
 * slot: the watch's liveness re-check clears the dead claim, so the action
 * runs and gets the message; before, it never ran (only the watchdog ended
 * the run). */
static void test_watch_queue_dead_claimer(void **state)
{
	shmq_sched *s = mk(state);
	shmq_region *r = anon_region();
	struct xwatch x = { .s = s };
	shmq_proc *child;
	int v = 0;

	assert_int_equal(shmq_queue_create(r, "sched.q", NULL, &x.q), 0);
	assert_int_equal(shmq_proc_spawn(r, "child_claim_die", NULL, 0, NULL, &child), 0);
	assert_int_equal(shmq_proc_join(child, 10 * SEC), 0);
	assert_int_equal(shmq_proc_exitcode(child), -SIGKILL);
	assert_int_equal(shmq_queue_put(x.q, &v, sizeof(v), SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_sched_watch_queue(s, x.q, act_queue_one, &x), 0);
	assert_int_equal(shmq_sched_enter(s, 10 * SEC, 0, act_xwatchdog, &x, &x.watchdog), 0);
	assert_int_equal(shmq_sched_run(s, true), 0);
	assert_int_equal(x.n, 1);
	assert_int_equal(x.bad, 0);
	shmq_proc_close(child);
	shmq_queue_close(x.q);
	shmq_region_close(r);
	shmq_sched_destroy(s);
}

/* The queue's only message is begun (get_begin) by a live process when
 * the watch starts, and the process dies before its commit: a get would
 * have it again (ring/mpmc_int.h, Dead holders), and nothing else happens
 * on the queue.  The watch's liveness re-check gives it back, so the
 * action runs and gets it; before, the action never ran (only the
 * watchdog ended the run). */
static void test_watch_queue_dead_holder(void **state)
{
	shmq_sched *s = mk(state);
	shmq_region *r = anon_region();
	struct xwatch x = { .s = s };
	shmq_proc *child;
	const void *msg;
	uint64_t pos;
	int v = 0;

	assert_int_equal(shmq_queue_create(r, "sched.q", NULL, &x.q), 0);
	assert_int_equal(shmq_queue_put(x.q, &v, sizeof(v), SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_proc_spawn(r, "child_hold_die", NULL, 0, NULL, &child), 0);
	while (shmq_queue_len(x.q) != 0) /* the child's begin moves head on */
		assert_int_equal(shmq_proc_join(child, MS), -ETIMEDOUT);
	/* the handle's first look for dead holders: this one lives */
	assert_int_equal(shmq_queue_get_begin(x.q, &msg, &pos, SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(shmq_sched_watch_queue(s, x.q, act_queue_begin_one, &x), 0);
	assert_int_equal(shmq_sched_enter(s, 10 * SEC, 0, act_xwatchdog, &x, &x.watchdog), 0);
	assert_true(shmq_sched_run(s, false) > 0); /* the holder lives: nothing to do */
	assert_int_equal(x.n, 0);
	assert_int_equal(shmq_proc_kill(child, SIGKILL), 0);
	assert_int_equal(shmq_proc_join(child, 10 * SEC), 0);
	assert_int_equal(shmq_proc_exitcode(child), -SIGKILL);
	assert_int_equal(shmq_sched_run(s, true), 0);
	assert_int_equal(x.n, 1);
	assert_int_equal(x.bad, 0);
	shmq_proc_close(child);
	shmq_queue_close(x.q);
	shmq_region_close(r);
	shmq_sched_destroy(s);
}

/* The peer dies unannounced after its messages: the watch's liveness
 * re-check (every 100 ms) finds the end gone, so the action runs and its
 * recv says -EPIPE; before, it never ran again (only the watchdog ended
 * the run). */
static void test_watch_pipe_peer_killed(void **state)
{
	watch_pipe_from(state, "child_sender_killed", -SIGKILL);
}

/* A blocking run whose due events never let up (a periodic action that
 * outlasts its 1 ms period) still runs the watches' actions, a readable
 * pipe's and an exited process's, within a turn of the events.  Before,
 * neither ever ran: only the watchdog event ended the run. */
struct starve {
	shmq_sched *s;
	shmq_pipe *rx;
	struct procw pw;
	int pipe_fired;
	long ticks;
	bool watchdog;
};

static void starve_check_done(struct starve *x)
{
	if (x->pipe_fired && x->pw.fired)
		assert_int_equal(shmq_sched_stop(x->s), 0);
}

static void act_busy_tick(void *arg)
{
	struct starve *x = arg;
	int64_t end = shmq_now_ns() + 2 * MS;

	x->ticks++;
	while (shmq_now_ns() < end)
		;
}

static void act_starve_pipe(void *arg)
{
	struct starve *x = arg;
	char b[8];

	x->pipe_fired++;
	while (shmq_pipe_recv(x->rx, b, sizeof(b), SHMQ_NOWAIT) >= 0)
		;
	starve_check_done(x);
}

static void act_starve_proc(void *arg)
{
	struct starve *x = arg;

	act_proc(&x->pw);
	starve_check_done(x);
}

static void act_starve_watchdog(void *arg)
{
	struct starve *x = arg;

	x->watchdog = true;
	assert_int_equal(shmq_sched_stop(x->s), 0);
}

static void test_watch_not_starved(void **state)
{
	shmq_sched *s = mk(state);
	shmq_region *r = anon_region();
	struct starve x = { .s = s };
	shmq_pipe *tx;

	assert_int_equal(shmq_pipe_create(r, "sched.starve", NULL, &tx, &x.rx), 0);
	assert_int_equal(shmq_sched_watch_pipe(s, x.rx, act_starve_pipe, &x), 0);
	assert_int_equal(shmq_proc_spawn(NULL, "child_sleep", NULL, 0, NULL, &x.pw.p), 0);
	assert_int_equal(shmq_sched_watch_proc(s, x.pw.p, act_starve_proc, &x), 0);
	assert_int_equal(shmq_sched_enter_periodic(s, shmq_now_ns(), 1 * MS, 0, act_busy_tick, &x,
						   NULL), 0);
	assert_int_equal(shmq_sched_enter(s, 10 * SEC, -1, act_starve_watchdog, &x, NULL), 0);
	assert_int_equal(shmq_pipe_send(tx, "x", 1, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_sched_run(s, true), 0);
	assert_false(x.watchdog);
	assert_true(x.pipe_fired >= 1);
	assert_int_equal(x.pw.fired, 1);
	assert_int_equal(x.pw.exitcode_at_fire, 7);
	assert_true(x.ticks > 0);
	assert_int_equal(shmq_proc_join(x.pw.p, 10 * SEC), 0);
	shmq_sched_destroy(s); /* first: the pipe's watch is still on */
	shmq_proc_close(x.pw.p);
	shmq_pipe_close(tx);
	shmq_pipe_close(x.rx);
	shmq_region_close(r);
}

/* While due events keep a blocking run busy, each watch turn runs the
 * actions of the watches that turned ready since the last: a turn that
 * collects a queue watch's completion runs its action in the same turn,
 * not one turn (10 ms of events) later.  The busy event takes longer than
 * a turn's interval, so a turn follows each of its runs; the put in its
 * third run must be taken before its fourth. */
struct turn {
	shmq_sched *s;
	shmq_queue *q;
	shmq_event *busy;
	int ticks;
	int fired_at; /* ticks when the watch's action ran */
};

static void act_turn_busy(void *arg)
{
	struct turn *x = arg;
	struct timespec ts = { 0, 11 * MS }; /* > WATCH_TURN_NS */

	if (++x->ticks == 3)
		assert_int_equal(shmq_queue_put(x->q, "m", 1, SHMQ_NOWAIT), 0);
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	if (x->ticks == 100) /* a watch that never fires must not hang the test */
		assert_int_equal(shmq_sched_stop(x->s), 0);
}

static void act_turn_watch(void *arg)
{
	struct turn *x = arg;
	char b[16];

	while (shmq_queue_get(x->q, b, sizeof(b), SHMQ_NOWAIT) >= 0)
		;
	x->fired_at = x->ticks;
	assert_int_equal(shmq_sched_cancel(x->s, x->busy), 0);
	assert_int_equal(shmq_sched_unwatch(x->s, x->q), 0);
}

static void test_watch_turn_same_turn(void **state)
{
	shmq_sched *s = mk(state);
	shmq_region *r = anon_region();
	struct turn x = { .s = s };

	assert_int_equal(shmq_queue_create(r, "sched.turn", NULL, &x.q), 0);
	assert_int_equal(shmq_sched_watch_queue(s, x.q, act_turn_watch, &x), 0);
	assert_int_equal(shmq_sched_enter_periodic(s, shmq_now_ns(), 1, 0, act_turn_busy, &x,
						   &x.busy), 0);
	assert_int_equal(shmq_sched_run(s, true), 0);
	assert_int_equal(x.fired_at, 3);
	shmq_sched_destroy(s);
	shmq_queue_close(x.q);
	shmq_region_close(r);
}

/* Watches and unwatches with no run between them keep nothing: a watch no
 * kernel operation refers to is freed by unwatch, not kept for a run that
 * may never come (each watch's lookup walked them all, too). */
static void test_unwatch_no_run_bounded(void **state)
{
	shmq_sched *s = mk(state);
	shmq_region *r = anon_region();
	shmq_queue *q;
	size_t before;
	int n = 0;

	assert_int_equal(shmq_queue_create(r, "q", NULL, &q), 0);
	/* once, so what the first watch allocates for good is counted before */
	assert_int_equal(shmq_sched_watch_queue(s, q, act_count, &n), 0);
	assert_int_equal(shmq_sched_unwatch(s, q), 0);
	before = tu_heap_used();
	for (int i = 0; i < 20000; i++) {
		assert_int_equal(shmq_sched_watch_queue(s, q, act_count, &n), 0);
		assert_int_equal(shmq_sched_unwatch(s, q), 0);
	}
	/* 20000 watches kept would be megabytes */
	assert_true(tu_heap_used() <= before + 64 * 1024);
	/* the one watch left works */
	assert_int_equal(shmq_sched_watch_queue(s, q, act_count, &n), 0);
	assert_int_equal(shmq_queue_put(q, "a", 1, SHMQ_NOWAIT), 0);
	(void)shmq_sched_run(s, false);
	assert_int_equal(n, 1);
	assert_int_equal(shmq_sched_unwatch(s, q), 0);
	shmq_sched_destroy(s);
	shmq_queue_close(q);
	shmq_region_close(r);
}

#define ON(f, c, tag) { #f "/" tag, f, NULL, NULL, (void *)&c }
#define BOTH(f) ON(f, CFG_URING, "io_uring"), ON(f, CFG_FALLBACK, "fallback")
#define ALL(f) BOTH(f), ON(f, CFG_URING_OLD, "io_uring-old-kernel")

/* A daemon that closed stdin, stdout and stderr: the scheduler keeps none of
 * its descriptors at 0-2 (core/fd_int.h), where the daemon's printf, or its
 * reopening of 0-2 on /dev/null once it has set up, would reach them.  Old
 * code: the eventfd at 0 and the ring at 1 (io_uring); the eventfd, the
 * epoll and the timerfd at 0, 1 and 2 (the fallback). */
static void test_closed_stdio(void **state)
{
	const struct cfg *c = *state;
	struct shmq_sched_opts o = { .backend = c->backend, .flags = c->flags };
	struct log l = { 0 };
	struct tag t = { &l, 1, 0 };
	shmq_sched *s = NULL;
	int saved[3], rc, taken = -1, entered = -1;
	int64_t ran = -1;

	tu_stdio_close(saved); /* nothing may assert until tu_stdio_restore */
	rc = shmq_sched_create(&o, &s);
	if (rc == 0) {
		taken = tu_stdio_taken();
		t.when = shmq_now_ns() + 1 * MS;
		entered = shmq_sched_enterabs(s, t.when, 0, act_log, &t, NULL);
		ran = shmq_sched_run(s, true);
		shmq_sched_destroy(s);
	}
	tu_stdio_restore(saved);
	if (rc == -EPERM || rc == -ENOSYS)
		skip(); /* io_uring refused on this host */
	assert_int_equal(rc, 0);
	assert_int_equal(taken, 0);
	assert_int_equal(entered, 0);
	assert_int_equal(ran, 0);
	assert_int_equal(l.n, 1);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		BOTH(test_closed_stdio),
		ALL(test_order_by_time),
		ALL(test_ties),
		ALL(test_past_due),
		ALL(test_cancel),
		ALL(test_nonblocking),
		ALL(test_nonblocking_reentered),
		ALL(test_nonblocking_short_period),
		ALL(test_nonblocking_refilled_watch),
		ALL(test_enter_from_action),
		ALL(test_enter_from_thread),
		ALL(test_cancel_from_thread),
		ALL(test_cancel_only_event_from_thread),
		ALL(test_stop_from_thread),
		ALL(test_stop_from_action),
		ALL(test_action_exits_thread),
		ALL(test_run_cancelled),
		ALL(test_enter_cancelled),
		BOTH(test_fork_mutex_held),
		ALL(test_fork_in_action),
		BOTH(test_queue_snapshot),
		cmocka_unit_test(test_queue_snapshot_nomem),
		BOTH(test_many),
		BOTH(test_periodic),
		ON(test_periodic, CFG_PRECISE, "precise"),
		BOTH(test_periodic_far_past),
		BOTH(test_timing),
		cmocka_unit_test(test_precise_spin_sees_new_head),
		ON(test_timing, CFG_PRECISE, "precise"),
		cmocka_unit_test(test_backend_select),
		cmocka_unit_test(test_backend_refused),
		cmocka_unit_test(test_helper_waitv_refused),
		cmocka_unit_test(test_helper_unwatch_unmap),
		ALL(test_watch_proc),
		ALL(test_unwatch_no_run_bounded),
		ALL(test_destroy_armed),
		ALL(test_watch_word),
		ALL(test_watch_unannounced),
		ALL(test_watch_many),
		ALL(test_nonblocking_cq_overflow),
		cmocka_unit_test(test_sqe_refused_arm),
		cmocka_unit_test(test_sqe_refused_recheck),
		ON(test_nonblocking_helper_unseen, CFG_FALLBACK, "fallback"),
		ON(test_nonblocking_helper_unseen, CFG_URING_OLD, "io_uring-old-kernel"),
		BOTH(test_cancel_stale_after_wrap),
		ALL(test_watch_helper_limit),
		ALL(test_watch_stuck_readable),
		ALL(test_watch_queue),
		ALL(test_watch_pipe),
		ALL(test_watch_pipe_peer_killed),
		ALL(test_watch_queue_dead_claimer),
		ALL(test_watch_queue_dead_holder),
		ALL(test_watch_not_starved),
		ALL(test_watch_turn_same_turn),
		ALL(test_unwatch_only_watch_from_thread),
	};

	shmq_dispatch(argc, argv);
	unsetenv("SHMQ_SCHED_BACKEND");
	if (getenv("SHMQ_TEST_FILTER"))
		cmocka_set_test_filter(getenv("SHMQ_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
