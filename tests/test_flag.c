/* SPDX-License-Identifier: MIT */
/* Flags (Python's Event): set wakes every waiter across threads and
 * processes, a set flag is waited on without a system call, set/clear races
 * lose no wake-up, timeouts, every errno, corrupt words. */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "testutil.h"

#include "core/region_int.h"
#include "core/wait_int.h"
#include "sync/flag_int.h"

#define SMALL ((size_t)256 << 10)
#define MS    ((int64_t)1000000)

struct fixture {
	char name[96];
	shmq_region *r;
	shmq_flag *f;
	struct shmq__flag_shm *s;
	struct tu_kids kids; /* see testutil.h */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct shmq_region_opts o = { .size = SMALL };
	void *mem;

	if (!f)
		return -1;
	tu_name(f->name, sizeof(f->name), "flag");
	if (shmq_region_create(f->name, &o, &f->r) || shmq_flag_create(f->r, "f", &f->f) ||
	    shmq__obj_find(f->r, "f", SHMQ__OBJ_FLAG, &mem, NULL))
		return -1;
	f->s = mem;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	tu_kids_reap(&f->kids);
	shmq_flag_close(f->f);
	shmq_region_close(f->r);
	shmq_region_unlink(f->name);
	free(f);
	return 0;
}

static pid_t track_kid(struct fixture *f, pid_t pid)
{
	return tu_kids_track(&f->kids, pid);
}

/* Wait (a bounded while) until n waiters sleep on the flag's futex. */
static void await_sleepers(struct fixture *f, uint32_t n)
{
	int64_t end = shmq_now_ns() + 10000 * MS;

	while (__atomic_load_n(&f->s->sleepers, __ATOMIC_SEQ_CST) < n) {
		assert_true(shmq_now_ns() < end);
		usleep(1000);
	}
	usleep(2000); /* from counted to inside futex_wait */
}

/* ---- basics and errors -------------------------------------------------- */

static void test_basics(void **state)
{
	struct fixture *f = *state;
	uint64_t waits;
	int64_t t0;

	assert_false(shmq_flag_is_set(f->f));
	assert_int_equal(shmq_flag_wait(f->f, SHMQ_NOWAIT), -EAGAIN);
	t0 = shmq_now_ns();
	assert_int_equal(shmq_flag_wait(f->f, 20 * MS), -ETIMEDOUT);
	assert_true(shmq_now_ns() - t0 >= 20 * MS);
	/* slept in slices, or (a loaded machine) spun much of it away */
	waits = f->s->waits;
	assert_int_equal(shmq_flag_set(f->f), 0);
	assert_true(shmq_flag_is_set(f->f));
	assert_int_equal(shmq_flag_set(f->f), 0); /* idempotent */
	assert_int_equal(shmq_flag_wait(f->f, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_flag_wait(f->f, SHMQ_FOREVER), 0);
	assert_int_equal(shmq_flag_clear(f->f), 0);
	assert_int_equal(shmq_flag_clear(f->f), 0);
	assert_false(shmq_flag_is_set(f->f));
	assert_int_equal(shmq_flag_wait(f->f, SHMQ_NOWAIT), -EAGAIN);
	/* only the timed wait slept; the sets found nobody asleep: no wake
	 * call, and waiting on the set flag made no system call */
	assert_int_equal(f->s->waits, waits);
	assert_int_equal(f->s->wakes, 0);
}

static void test_errors(void **state)
{
	struct fixture *f = *state;
	shmq_flag *g;
	shmq_lock *l;

	assert_int_equal(shmq_flag_create(NULL, "x", &g), -EINVAL);
	assert_int_equal(shmq_flag_create(f->r, NULL, &g), -EINVAL);
	assert_int_equal(shmq_flag_create(f->r, "x", NULL), -EINVAL);
	assert_int_equal(shmq_flag_create(f->r, "bad/name", &g), -EINVAL);
	assert_int_equal(shmq_flag_create(f->r, "f", &g), -EEXIST);
	assert_int_equal(shmq_flag_open(f->r, "nope", &g), -ENOENT);
	assert_int_equal(shmq_flag_open(NULL, "f", &g), -EINVAL);
	assert_int_equal(shmq_lock_create(f->r, "l", &l), 0);
	assert_int_equal(shmq_flag_open(f->r, "l", &g), -EINVAL);
	shmq_lock_close(l);
	assert_int_equal(shmq_flag_set(NULL), -EINVAL);
	assert_int_equal(shmq_flag_clear(NULL), -EINVAL);
	assert_int_equal(shmq_flag_wait(NULL, 0), -EINVAL);
	assert_false(shmq_flag_is_set(NULL));
	shmq_flag_close(NULL);
	assert_int_equal(shmq_flag_open(f->r, "f", &g), 0);
	assert_int_equal(shmq_flag_set(g), 0);
	assert_true(shmq_flag_is_set(f->f)); /* one flag, two handles */
	shmq_flag_close(g);
}

static void test_corrupt(void **state)
{
	struct fixture *f = *state;
	shmq_flag *g;

	f->s->word = SHMQ__FLAG_BAD;
	assert_int_equal(shmq_flag_set(f->f), -EBADMSG);
	assert_int_equal(shmq_flag_clear(f->f), -EBADMSG);
	assert_int_equal(shmq_flag_wait(f->f, 10 * MS), -EBADMSG);
	assert_false(shmq_flag_is_set(f->f));
	f->s->word = 0;
	f->s->version = SHMQ__FLAG_VERSION + 1;
	assert_int_equal(shmq_flag_open(f->r, "f", &g), -EPROTO);
	f->s->version = SHMQ__FLAG_VERSION;
	f->s->magic ^= 1;
	assert_int_equal(shmq_flag_open(f->r, "f", &g), -EBADMSG);
	f->s->magic ^= 1;
	assert_int_equal(shmq_flag_open(f->r, "f", &g), 0);
	shmq_flag_close(g);
}

/* A waiter asleep when the word turns corrupt gives -EBADMSG, not a hang. */
static void *corrupt_waiter(void *p)
{
	struct fixture *f = p;

	return (void *)(intptr_t)shmq_flag_wait(f->f, 10000 * MS);
}

static void test_corrupt_while_waiting(void **state)
{
	struct fixture *f = *state;
	pthread_t th;
	void *rc;

	assert_int_equal(pthread_create(&th, NULL, corrupt_waiter, f), 0);
	await_sleepers(f, 1);
	__atomic_store_n(&f->s->word, SHMQ__FLAG_BAD, __ATOMIC_SEQ_CST);
	shmq__futex_wake(&f->s->word, 1);
	assert_int_equal(pthread_join(th, &rc), 0);
	assert_int_equal((intptr_t)rc, -EBADMSG);
}

/* A setter killed between its CAS and its wake leaves the flag set and its
 * sleepers asleep; a set of the set flag wakes nobody.  They must still
 * return promptly (here the CAS is made by hand and never followed by a
 * wake), not at their deadline, nor never with SHMQ_FOREVER. */
struct dead_setter_waiter {
	struct fixture *f;
	int64_t timeout;
	int rc;
};

static void *dead_setter_waiter(void *p)
{
	struct dead_setter_waiter *w = p;

	w->rc = shmq_flag_wait(w->f->f, w->timeout);
	return NULL;
}

static void test_setter_died_before_wake(void **state)
{
	struct fixture *f = *state;
	int64_t timeouts[2] = { 10000 * MS, SHMQ_FOREVER };

	for (int k = 0; k < 2; k++) {
		struct dead_setter_waiter w = { .f = f, .timeout = timeouts[k], .rc = 1 };
		struct timespec ts;
		pthread_t th;
		uint32_t word;

		assert_int_equal(shmq_flag_clear(f->f), 0);
		assert_int_equal(pthread_create(&th, NULL, dead_setter_waiter, &w), 0);
		await_sleepers(f, 1);
		/* shmq_flag_set's CAS, and no wake: the setter died there */
		word = __atomic_load_n(&f->s->word, __ATOMIC_SEQ_CST);
		__atomic_store_n(&f->s->word, (word + SHMQ__FLAG_EPOCH) | SHMQ__FLAG_SET,
				 __ATOMIC_SEQ_CST);
		assert_int_equal(shmq_flag_set(f->f), 0); /* set already: no wake */
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 2; /* "promptly" (a slice is 10 ms) */
		if (pthread_timedjoin_np(th, NULL, &ts) != 0) {
			shmq__futex_wake(&f->s->word, 1); /* release it, then fail */
			pthread_join(th, NULL);
			fail_msg("a waiter slept on through a dead setter's set");
		}
		assert_int_equal(w.rc, 0);
	}
}

/* A waiter killed asleep never takes its sleeper count back.  Old code: every
 * set after it made a futex-wake system call for nobody (10 set/clear pairs,
 * 10 wakes, sleepers stuck at 1).  Now the first set whose wake woke nobody
 * takes the dead sleeper's listed entry out with its count: at most one
 * wake, and a live waiter after it is still woken. */
static void *live_waiter(void *p)
{
	struct fixture *f = p;

	return (void *)(intptr_t)shmq_flag_wait(f->f, 10000 * MS);
}

static void test_dead_sleeper_costs_one_wake(void **state)
{
	struct fixture *f = *state;
	uint64_t wakes;
	pthread_t th;
	void *rc;
	pid_t pid;

	pid = track_kid(f, fork());
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_flag *g;

		alarm(60);
		if (shmq_region_open(f->name, &r) || shmq_flag_open(r, "f", &g))
			_exit(90);
		_exit(shmq_flag_wait(g, SHMQ_FOREVER) ? 91 : 92);
	}
	await_sleepers(f, 1);
	tu_kill_listed_sleeper(pid, &f->s->sleepers, f->s->sleeper_ids);
	assert_int_equal(__atomic_load_n(&f->s->sleepers, __ATOMIC_SEQ_CST), 1); /* its count stays */
	wakes = f->s->wakes;
	for (int i = 0; i < 10; i++) {
		assert_int_equal(shmq_flag_set(f->f), 0);
		assert_int_equal(shmq_flag_clear(f->f), 0);
	}
	assert_true(f->s->wakes - wakes <= 1);
	assert_int_equal(__atomic_load_n(&f->s->sleepers, __ATOMIC_SEQ_CST), 0);
	/* a live waiter still counts, and is woken */
	assert_int_equal(pthread_create(&th, NULL, live_waiter, f), 0);
	await_sleepers(f, 1);
	assert_int_equal(shmq_flag_set(f->f), 0);
	assert_int_equal(pthread_join(th, &rc), 0);
	assert_int_equal((intptr_t)rc, 0);
}

/* ---- waking ------------------------------------------------------------- */

#define WAITERS 6

struct waiter {
	struct fixture *f;
	int rc;
	int64_t done;
};

static void *thread_waiter(void *p)
{
	struct waiter *w = p;

	w->rc = shmq_flag_wait(w->f->f, 10000 * MS);
	w->done = shmq_now_ns();
	return NULL;
}

/* Every waiter wakes, even when the flag is cleared right after the set. */
static void run_threads(struct fixture *f, bool clear_at_once)
{
	pthread_t th[WAITERS];
	struct waiter w[WAITERS];
	int64_t t0;

	for (int i = 0; i < WAITERS; i++) {
		w[i] = (struct waiter){ .f = f, .rc = 1 };
		assert_int_equal(pthread_create(&th[i], NULL, thread_waiter, &w[i]), 0);
	}
	await_sleepers(f, WAITERS);
	t0 = shmq_now_ns();
	assert_int_equal(shmq_flag_set(f->f), 0);
	if (clear_at_once)
		assert_int_equal(shmq_flag_clear(f->f), 0);
	for (int i = 0; i < WAITERS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(w[i].rc, 0);
		assert_true(w[i].done - t0 < 2000 * MS);
	}
	assert_int_equal(f->s->wakes, 1); /* one wake for all of them */
}

static void test_wake_threads(void **state)
{
	run_threads(*state, false);
}

static void test_set_clear_race(void **state)
{
	struct fixture *f = *state;

	run_threads(f, true);
	assert_false(shmq_flag_is_set(f->f));
	/* and a later waiter waits for the next set */
	assert_int_equal(shmq_flag_wait(f->f, 10 * MS), -ETIMEDOUT);
}

/* Children in other processes wait; one set releases them all, even when
 * the flag is cleared again before any of them runs. */
static void test_wake_processes(void **state)
{
	struct fixture *f = *state;
	pid_t pids[4];
	int64_t t0;

	for (int p = 0; p < 4; p++) {
		pids[p] = track_kid(f, fork());
		assert_true(pids[p] >= 0);
		if (pids[p] == 0) {
			shmq_region *r;
			shmq_flag *g;

			alarm(60);
			if (shmq_region_open(f->name, &r) || shmq_flag_open(r, "f", &g))
				_exit(90);
			if (shmq_flag_wait(g, 10000 * MS))
				_exit(91);
			shmq_flag_close(g);
			shmq_region_close(r);
			_exit(0);
		}
	}
	await_sleepers(f, 4);
	/* Stopped, the waiters cannot run between the set and the clear: they
	 * see the flag clear again, and must still know a set happened. */
	for (int p = 0; p < 4; p++)
		assert_int_equal(kill(pids[p], SIGSTOP), 0);
	t0 = shmq_now_ns();
	assert_int_equal(shmq_flag_set(f->f), 0);
	assert_int_equal(shmq_flag_clear(f->f), 0);
	for (int p = 0; p < 4; p++)
		assert_int_equal(kill(pids[p], SIGCONT), 0);
	for (int p = 0; p < 4; p++)
		assert_int_equal(tu_wait_child(pids[p]), 0);
	assert_true(shmq_now_ns() - t0 < 2000 * MS);
}

/* Many quick set/clear pairs against waiters that re-wait: none hangs. */
struct cycler {
	struct fixture *f;
	int rounds;
	int fails;
};

static void *cycle_waiter(void *p)
{
	struct cycler *c = p;

	for (int i = 0; i < c->rounds; i++)
		if (shmq_flag_wait(c->f->f, 10000 * MS))
			c->fails++;
	return NULL;
}

static void test_set_clear_stress(void **state)
{
	struct fixture *f = *state;
	struct cycler c = { .f = f, .rounds = 2000 };
	pthread_t th;
	int64_t end = shmq_now_ns() + 20000 * MS;

	assert_int_equal(pthread_create(&th, NULL, cycle_waiter, &c), 0);
	/* keep pulsing until the waiter has seen every round */
	while (pthread_tryjoin_np(th, NULL) != 0) {
		assert_true(shmq_now_ns() < end);
		assert_int_equal(shmq_flag_set(f->f), 0);
		assert_int_equal(shmq_flag_clear(f->f), 0);
		sched_yield();
	}
	assert_int_equal(c.fails, 0);
}

/* A set or a clear under a hostile process that rewrites the word each time
 * the call touches it (tu_cas_hostile: every CAS loses) gets -EBADMSG
 * within a bounded number of lost CASes, not a spin for ever. */
static void *open_flag(void *p, uint32_t **word)
{
	struct fixture *f = p;
	shmq_flag *g;
	void *mem;

	f->r = tu_child_region(f->name);
	if (shmq_flag_open(f->r, "f", &g) || shmq__obj_find(f->r, "f", SHMQ__OBJ_FLAG, &mem, NULL))
		return NULL;
	*word = &((struct shmq__flag_shm *)mem)->word;
	return g;
}

static int call_set(void *p)
{
	return shmq_flag_set(p);
}

static int call_clear(void *p)
{
	return shmq_flag_clear(p);
}

static void test_set_clear_hostile(void **state)
{
	struct fixture *f = *state;
	static const uint32_t clear = 0, set = SHMQ__FLAG_SET;
	int64_t took;
	int rc;

	/* clear words of many epochs defeat a set's CAS */
	f->s->word = 0;
	rc = tu_cas_hostile(&f->s->word, &clear, SHMQ__FLAG_EPOCH, open_flag, call_set, f,
			    20000 * MS, &took);
	if (rc == TU_HOSTILE_NO_PTRACE)
		skip();
	print_message("set under hostile writes: %d after %lld ms\n", rc, (long long)(took / MS));
	assert_int_equal(rc, -EBADMSG);
	/* set words of many epochs, a clear's */
	f->s->word = SHMQ__FLAG_SET;
	rc = tu_cas_hostile(&f->s->word, &set, SHMQ__FLAG_EPOCH, open_flag, call_clear,
			    f, 20000 * MS, &took);
	print_message("clear under hostile writes: %d after %lld ms\n", rc, (long long)(took / MS));
	assert_int_equal(rc, -EBADMSG);
	/* nothing else changed: a sane word works as before */
	f->s->word = 0;
	assert_int_equal(shmq_flag_set(f->f), 0);
	assert_int_equal(shmq_flag_clear(f->f), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_basics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_while_waiting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_clear_hostile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_setter_died_before_wake, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wake_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_clear_race, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wake_processes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_sleeper_costs_one_wake, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_clear_stress, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
