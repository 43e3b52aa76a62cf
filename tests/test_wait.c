/* SPDX-License-Identifier: MIT */
/* The wait layer: deadlines, futex wait/wake, the adaptive wait and its
 * sleeper-count protocol. */
#include "config.h"

#include <errno.h>
#include <pthread.h>

#include "testutil.h"

#include "core/atomic_int.h"
#include "core/wait_int.h"

static void test_deadline(void **state)
{
	int64_t now = shmq_now_ns();
	int64_t d, r;

	(void)state;
	assert_int_equal(shmq__deadline(SHMQ_FOREVER), SHMQ__NO_DEADLINE);
	d = shmq__deadline(SHMQ_NOWAIT);
	assert_true(d >= now && d <= shmq_now_ns());
	assert_int_equal(shmq__remaining(d - 1), 0);
	d = shmq__deadline(INT64_MAX);
	assert_int_equal(d, SHMQ__NO_DEADLINE);
	/* 1 s from the moment of the call, wherever the scheduler parks us:
	 * bracketed by clock reads before and after, not by a guessed lag */
	now = shmq_now_ns();
	d = shmq__deadline(1000000000);
	assert_true(d >= now + 1000000000 && d <= shmq_now_ns() + 1000000000);
	now = shmq_now_ns();
	r = shmq__remaining(d);
	assert_true(r <= d - now);
	now = shmq_now_ns();
	assert_true(r >= (d > now ? d - now : 0));
}

static void test_futex_timeout_honoured(void **state)
{
	uint32_t word = 7;

	(void)state;
	for (int ms = 1; ms <= 20; ms += 19) {
		int64_t t0 = shmq_now_ns();
		int64_t deadline = t0 + (int64_t)ms * 1000000;
		int rc = shmq__futex_wait(&word, 7, deadline);
		int64_t t1 = shmq_now_ns();

		assert_int_equal(rc, -ETIMEDOUT);
		assert_true(t1 >= deadline); /* never early */
	}
	/* value mismatch returns at once */
	assert_int_equal(shmq__futex_wait(&word, 8, SHMQ__NO_DEADLINE), 0);
	/* a deadline in the past */
	assert_int_equal(shmq__futex_wait(&word, 7, shmq_now_ns() - 1), -ETIMEDOUT);
}

struct waker {
	uint32_t word;
	uint32_t sleepers;
	int64_t delay_ns;
};

static void *waker_main(void *arg)
{
	struct waker *w = arg;
	struct timespec ts = { 0, (long)w->delay_ns };

	nanosleep(&ts, NULL);
	shmq__store_seq_cst(&w->word, 1);
	shmq__wake_word(&w->word, &w->sleepers, INT32_MAX);
	return NULL;
}

static void test_wait_word_woken(void **state)
{
	struct waker w = { .word = 0, .sleepers = 0, .delay_ns = 30 * 1000 * 1000 };
	pthread_t t;
	int rc;

	(void)state;
	assert_int_equal(pthread_create(&t, NULL, waker_main, &w), 0);
	do {
		rc = shmq__wait_word(&w.word, 0, &w.sleepers, shmq__deadline(5000000000), 0);
	} while (rc == 0 && shmq__load_acquire(&w.word) == 0);
	assert_int_equal(rc, 0);
	assert_int_equal(shmq__load_acquire(&w.word), 1);
	pthread_join(t, NULL);
	assert_int_equal(shmq__load_seq_cst(&w.sleepers), 0);
}

static void test_wait_word_slice_and_timeout(void **state)
{
	uint32_t word = 3, sleepers = 0;
	int64_t t0 = shmq_now_ns();
	int rc;

	(void)state;
	/* a deadline far beyond the slice (10 s: a preempted caller cannot
	 * reach it first) */
	rc = shmq__wait_word(&word, 3, &sleepers, shmq__deadline(10000000000), 5 * 1000 * 1000);
	assert_int_equal(rc, -EINTR); /* the slice ended first */
	assert_true(shmq_now_ns() - t0 >= 5 * 1000 * 1000);
	rc = shmq__wait_word(&word, 3, &sleepers, shmq__deadline(10 * 1000 * 1000), 0);
	assert_int_equal(rc, -ETIMEDOUT);
	assert_int_equal(sleepers, 0);
	/* changed already: returns at once */
	assert_int_equal(shmq__wait_word(&word, 4, &sleepers, SHMQ__NO_DEADLINE, 0), 0);
}

static void test_wake_without_sleepers_is_free(void **state)
{
	uint32_t word = 0, sleepers = 0;

	(void)state;
	/* No sleeper registered: the waker must not even call futex (no way to
	 * observe a syscall here, but it must not fail or block either). */
	shmq__wake_word(&word, &sleepers, 1);
	assert_int_equal(shmq__futex_wake(&word, 1), 0);
}

/* ---- a big SHMQ_SPIN (read once per process: in a child run for it) ---- */

#define BIG_SPIN_ENV "SHMQ_TEST_BIG_SPIN"
#define BIG_SPIN_CALLS 4
#define BIG_SPIN_BOUND_NS ((int64_t)250 * 1000 * 1000)

static uint32_t big_spin_word;

/* Each kind of wait, BIG_SPIN_CALLS times with a 1 ms timeout: together
 * well under BIG_SPIN_BOUND_NS, where spinning out SHMQ_SPIN=10000000
 * before the first sleep took ~280 ms a call here.  0, or the failing
 * first failing kind's number (the times on stdout). */
static int big_spin_main(void)
{
	const int64_t ms = 1000 * 1000;
	shmq_region *r;
	shmq_flag *f;
	shmq_sem *s;
	shmq_cond *c;
	shmq_lock *l;
	shmq_queue *q;
	shmq_waitset *w;
	struct shmq_ready rd;
	int bad = 0;

	if (shmq_region_create(NULL, &(struct shmq_region_opts){ .size = 8 << 20 }, &r) ||
	    shmq_flag_create(r, "f", &f) || shmq_sem_create(r, "s", 0, NULL, &s) ||
	    shmq_cond_create(r, "c", &c) || shmq_lock_create(r, "l", &l) ||
	    shmq_queue_create(r, "q", NULL, &q) || shmq_waitset_create(&w) ||
	    shmq_waitset_add_queue(w, q, SHMQ_READABLE, q) || shmq_lock_acquire(l, 0))
		return 99;
	for (int kind = 1; kind <= 5; kind++) {
		int64_t t0 = shmq_now_ns(), took;

		for (int i = 0; i < BIG_SPIN_CALLS; i++) {
			int rc = kind == 1 ? shmq__wait_word(&big_spin_word, 0, NULL,
							     shmq__deadline(ms), 0)
				 : kind == 2 ? shmq_flag_wait(f, ms)
				 : kind == 3 ? shmq_sem_acquire(s, ms)
				 : kind == 4 ? shmq_cond_wait(c, l, ms)
					     : shmq_waitset_wait(w, &rd, 1, ms);

			if (rc != -ETIMEDOUT)
				return 50 + kind;
		}
		took = shmq_now_ns() - t0;
		printf("kind %d: %d waits of 1 ms took %lld ms\n", kind, BIG_SPIN_CALLS,
		       (long long)(took / ms));
		if (took >= BIG_SPIN_BOUND_NS && !bad)
			bad = kind;
	}
	shmq_waitset_free(w);
	shmq_queue_close(q);
	shmq_lock_release(l);
	shmq_lock_close(l);
	shmq_cond_close(c);
	shmq_sem_close(s);
	shmq_flag_close(f);
	shmq_region_close(r);
	return bad;
}

/* SHMQ_SPIN is a spin budget, not a time: a big one must not stretch a
 * short timeout.  Old code spun the whole budget before it looked at the
 * deadline in shmq__wait_word, flag, sem and cond waits and waitsets: a
 * 1 ms timeout took ~280 ms (exit code 1: every kind failed). */
static void test_big_spin_keeps_timeouts(void **state)
{
	char *argv[] = { "/proc/self/exe", NULL };
	char *envp[] = { "SHMQ_SPIN=10000000", BIG_SPIN_ENV "=1", NULL };
	struct shmq_run_opts o = { .capture = SHMQ_STDOUT, .envp = envp };
	struct shmq_run_result res;

	(void)state;
	assert_int_equal(shmq_run(argv, &o, &res), 0);
	if (res.status)
		print_message("%s", res.out ? res.out : "");
	assert_int_equal(res.status, 0);
	shmq_run_result_free(&res);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deadline),
		cmocka_unit_test(test_futex_timeout_honoured),
		cmocka_unit_test(test_wait_word_woken),
		cmocka_unit_test(test_wait_word_slice_and_timeout),
		cmocka_unit_test(test_wake_without_sleepers_is_free),
		cmocka_unit_test(test_big_spin_keeps_timeouts),
	};

	if (getenv(BIG_SPIN_ENV))
		return big_spin_main();

	return cmocka_run_group_tests_name("wait", tests, NULL, NULL);
}
