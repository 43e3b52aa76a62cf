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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deadline),
		cmocka_unit_test(test_futex_timeout_honoured),
		cmocka_unit_test(test_wait_word_woken),
		cmocka_unit_test(test_wait_word_slice_and_timeout),
		cmocka_unit_test(test_wake_without_sleepers_is_free),
	};

	return cmocka_run_group_tests_name("wait", tests, NULL, NULL);
}
