/* SPDX-License-Identifier: MIT */
/*
 * The shmq-bench harness's arithmetic, which every reported figure goes
 * through: the log-linear histogram (bucket mapping, quantiles, merging), the
 * median over runs and the ratio's direction.  No timing is asserted.
 */
#include "config.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "bench.h"
#include "bench_int.h"

/* Every bucket's lowest value maps back to it, bucket edges are increasing,
 * and each bucket is narrower than 1/32 of its values. */
static void test_hist_index_roundtrip(void **state)
{
	(void)state;
	uint64_t prev = 0;

	for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
		uint64_t lo = bench_hist_bucket_low(i);
		assert_int_equal(bench_hist_index(lo), i);
		if (i > 0) {
			assert_true(lo > prev);
			assert_int_equal(bench_hist_index(lo - 1), i - 1);
		}
		prev = lo;
	}
	assert_int_equal(bench_hist_index(UINT64_MAX), BENCH_HIST_BUCKETS - 1);
	for (uint64_t v = 0; v < 100000; v += 7) {
		uint64_t lo = bench_hist_bucket_low(bench_hist_index(v));
		assert_true(lo <= v);
		assert_true((double)(v - lo) <= (double)v / BENCH_HIST_SUB);
	}
}

/* Quantiles of a known distribution: 1..100000 once each. */
static void test_hist_quantiles(void **state)
{
	(void)state;
	struct bench_hist *h = bench_hist_new();

	assert_non_null(h);
	assert_int_equal(bench_hist_quantile(h, 0.5), 0); /* empty */
	for (uint64_t v = 1; v <= 100000; v++)
		bench_hist_record(h, v);
	assert_int_equal(h->count, 100000);
	assert_int_equal(h->min, 1);
	assert_int_equal(h->max, 100000);
	assert_true(fabs(bench_hist_mean(h) - 50000.5) < 1e-6);
	const double qs[] = { 0.5, 0.9, 0.99, 0.999 };
	for (unsigned i = 0; i < 4; i++) {
		double exact = qs[i] * 100000, got = (double)bench_hist_quantile(h, qs[i]);
		assert_true(got >= exact);                      /* upper edge: never under */
		assert_true(got <= exact * (1 + 1.0 / BENCH_HIST_SUB) + 1);
	}
	assert_int_equal(bench_hist_quantile(h, 1.0), 100000);
	assert_int_equal(bench_hist_quantile(h, 0.0), 1);
	bench_hist_free(h);
}

/* Small values are exact; a single sample is every quantile. */
static void test_hist_exact_small(void **state)
{
	(void)state;
	struct bench_hist h;

	bench_hist_init(&h);
	bench_hist_record(&h, 17);
	assert_int_equal(bench_hist_quantile(&h, 0.5), 17);
	assert_int_equal(bench_hist_quantile(&h, 0.999), 17);
	bench_hist_record(&h, 3);
	assert_int_equal(bench_hist_quantile(&h, 0.5), 3);
	assert_int_equal(bench_hist_quantile(&h, 1.0), 17);
}

/* Merging two halves equals recording everything in one; a histogram filled
 * by a forked child in shared memory merges like a local one. */
static void test_hist_merge_across_processes(void **state)
{
	(void)state;
	struct bench_hist *shared = bench_shared_alloc(sizeof(*shared));
	struct bench_hist *all = bench_hist_new(), *mine = bench_hist_new();

	assert_non_null(shared);
	assert_non_null(all);
	assert_non_null(mine);
	bench_hist_init(shared);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (uint64_t v = 1000; v < 200000; v += 3)
			bench_hist_record(shared, v);
		_exit(0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	for (uint64_t v = 1; v < 5000; v += 2)
		bench_hist_record(mine, v);
	for (uint64_t v = 1000; v < 200000; v += 3)
		bench_hist_record(all, v);
	for (uint64_t v = 1; v < 5000; v += 2)
		bench_hist_record(all, v);
	bench_hist_merge(mine, shared);
	assert_memory_equal(mine, all, sizeof(*all));
	bench_hist_free(all);
	bench_hist_free(mine);
	bench_shared_free(shared, sizeof(*shared));
}

static void test_median(void **state)
{
	(void)state;
	const double odd[] = { 5, 1, 4, 2, 3 };
	const double even[] = { 4, 1, 3, 2 };
	const double holes[] = { NAN, 7, NAN };

	assert_true(bench_median(odd, 5, 1) == 3);
	assert_true(bench_median(even, 4, 1) == 2.5);
	assert_true(bench_median(holes, 3, 1) == 7);
	assert_true(isnan(bench_median(holes, 1, 1)));
	/* strided: the first value of each BENCH_NVAL group */
	double v[3 * BENCH_NVAL] = { 0 };
	v[0] = 10;
	v[BENCH_NVAL] = 30;
	v[2 * BENCH_NVAL] = 20;
	assert_true(bench_median(v, 3, BENCH_NVAL) == 20);
}

/* A sweep point's spread: the median and range of its finite values. */
static void test_spread(void **state)
{
	(void)state;
	const double v[] = { 2.5, NAN, 1.5, 2.0 };
	const double none[] = { NAN, NAN };
	struct bench_spread s = bench_spread(v, 4);

	assert_true(s.median == 2.0 && s.lo == 1.5 && s.hi == 2.5);
	s = bench_spread(v, 1);
	assert_true(s.median == 2.5 && s.lo == 2.5 && s.hi == 2.5);
	s = bench_spread(none, 2);
	assert_true(isnan(s.median) && isnan(s.lo) && isnan(s.hi));
}

/* The ratio says how many times better libshmq is, whichever way is better,
 * and agrees with the medians printed beside it (not the median of per-run
 * ratios, which may disagree with them). */
static void test_ratio_direction(void **state)
{
	(void)state;
	double s[3 * BENCH_NVAL] = { 0 }, o[3 * BENCH_NVAL] = { 0 };
	struct bench_result r = { .base_name = "pipe(2)", .n = 3, .shmq = s, .base = o };
	const double sv[] = { 10, 20, 40 }, ov[] = { 5, 5, 5 };

	for (int i = 0; i < 3; i++) {
		s[i * BENCH_NVAL] = sv[i];
		o[i * BENCH_NVAL] = ov[i];
	}
	r.higher_is_better = true; /* throughput: 2x, 4x, 8x */
	assert_true(fabs(bench_ratio(&r, 0) - 4) < 1e-9);
	r.higher_is_better = false; /* latency: 0.5, 0.25, 0.125 */
	assert_true(fabs(bench_ratio(&r, 0) - 0.25) < 1e-9);
	/* per-run ratios 2, 2, 20 (median 2); medians 20 and 5: 4 */
	const double sv2[] = { 10, 40, 20 }, ov2[] = { 5, 20, 1 };
	for (int i = 0; i < 3; i++) {
		s[i * BENCH_NVAL] = sv2[i];
		o[i * BENCH_NVAL] = ov2[i];
	}
	r.higher_is_better = true;
	assert_true(fabs(bench_ratio(&r, 0) - 4) < 1e-9);
	assert_true(isnan(bench_ratio_of(1, 0, true)));
	r.base_name = NULL;
	assert_true(isnan(bench_ratio(&r, 0)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hist_index_roundtrip),
		cmocka_unit_test(test_hist_quantiles),
		cmocka_unit_test(test_hist_exact_small),
		cmocka_unit_test(test_hist_merge_across_processes),
		cmocka_unit_test(test_median),
		cmocka_unit_test(test_spread),
		cmocka_unit_test(test_ratio_direction),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
