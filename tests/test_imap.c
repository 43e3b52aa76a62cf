/* SPDX-License-Identifier: MIT */
/* Pools that stream: imap in order and unordered, results before a slow
 * element finishes (gated on a file, not on sleeps), an iterator freed
 * midway, per-element errors; the pool's initializer (once per worker, its
 * failure) and max_tasks_per_worker (workers replaced, results right, and
 * noticed at the creator's next look). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>

#include "testutil.h"

#include "pool/pool_int.h"

#define REGION_SIZE ((size_t)64 << 20)
#define GATE_ENV  "SHMQ_TEST_IMAP_GATE"
#define GATE_FROM 1000
#define SEC       1000000000LL

/* ---- tasks (run in the workers) ---- */

static int sq(const void *in, void *out)
{
	int64_t v = *(const int64_t *)in;

	*(int64_t *)out = v * v + 1;
	return 0;
}
SHMQ_TASK(sq);

/* Waits for the gate file while v >= GATE_FROM (at most 60 s): an element
 * that stays unfinished exactly as long as the test keeps the gate shut. */
static int gated_sq(const void *in, void *out)
{
	const char *gate = getenv(GATE_ENV);
	int64_t v = *(const int64_t *)in;

	for (int t = 0; t < 60000 && v >= GATE_FROM && gate && access(gate, F_OK); t++)
		usleep(1000);
	*(int64_t *)out = v * v + 1;
	return 0;
}
SHMQ_TASK(gated_sq);

static int odd_fails(const void *in, void *out)
{
	int64_t v = *(const int64_t *)in;

	*(int64_t *)out = v;
	return v % 2 ? -EDOM : 0;
}
SHMQ_TASK(odd_fails);

/* The initializer and what a task sees of it in its worker. */
static int init_runs;

static int init_count(const void *in, void *out)
{
	(void)in;
	(void)out;
	init_runs++;
	return 0;
}
SHMQ_TASK(init_count);

static int init_fails(const void *in, void *out)
{
	(void)in;
	(void)out;
	return -EL2HLT;
}
SHMQ_TASK(init_fails);

struct who {
	int64_t v;
	int32_t pid;
	int32_t init_runs;
};

static int whoami(const void *in, void *out)
{
	struct who *w = out;

	w->v = *(const int64_t *)in * 3;
	w->pid = (int32_t)getpid();
	w->init_runs = init_runs;
	return 0;
}
SHMQ_TASK(whoami);

/* ---- helpers ---- */

static void gate_set(bool opened)
{
	const char *gate = getenv(GATE_ENV);
	int fd;

	assert_non_null(gate);
	if (!opened) {
		assert_true(unlink(gate) == 0 || errno == ENOENT);
		return;
	}
	fd = open(gate, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
}

static shmq_region *region_new(void)
{
	struct shmq_region_opts o = { .size = REGION_SIZE };
	shmq_region *r;

	assert_int_equal(shmq_region_create(NULL, &o, &r), 0);
	return r;
}

static shmq_pool *pool_new(shmq_region *r, const struct shmq_pool_opts *o)
{
	shmq_pool *p;

	assert_int_equal(shmq_pool_create(r, o, &p), 0);
	return p;
}

static void pool_done(shmq_pool *p, shmq_region *r)
{
	assert_int_equal(shmq_pool_close(p), 0);
	assert_int_equal(shmq_pool_join(p, 30 * SEC), 0);
	shmq_pool_free(p);
	shmq_region_close(r);
	assert_true(tu_no_children());
}

static int64_t *inputs(size_t n)
{
	int64_t *in = malloc(n * sizeof(*in));

	assert_non_null(in);
	for (size_t i = 0; i < n; i++)
		in[i] = (int64_t)i;
	return in;
}

/* ---- imap ---- */

static void test_imap_ordered_and_unordered(void **state)
{
	const struct shmq_pool_opts o = { .workers = 2 };
	const size_t n = 5000;
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, &o);
	int64_t *in = inputs(n), v;
	uint8_t *seen = calloc(n, 1);
	shmq_iter *it;

	(void)state;
	assert_non_null(seen);
	assert_int_equal(shmq_pool_imap(p, "sq", in, sizeof(*in), sizeof(v), n, 0, &it), 0);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(shmq_iter_next(it, &v, 30 * SEC), (ssize_t)i);
		assert_int_equal(v, (int64_t)(i * i + 1));
	}
	assert_int_equal(shmq_iter_next(it, &v, 30 * SEC), -EPIPE);
	assert_int_equal(shmq_iter_next(it, &v, SHMQ_NOWAIT), -EPIPE);
	shmq_iter_free(it);

	assert_int_equal(shmq_pool_imap(p, "sq", in, sizeof(*in), sizeof(v), n, SHMQ_UNORDERED,
					&it), 0);
	for (size_t k = 0; k < n; k++) {
		ssize_t i = shmq_iter_next(it, &v, 30 * SEC);

		assert_true(i >= 0 && (size_t)i < n);
		assert_int_equal(seen[i], 0);
		seen[i] = 1;
		assert_int_equal(v, (int64_t)(i * i + 1));
	}
	assert_int_equal(shmq_iter_next(it, &v, 30 * SEC), -EPIPE);
	shmq_iter_free(it);

	/* no elements: the end at once; bad arguments change nothing */
	assert_int_equal(shmq_pool_imap(p, "sq", NULL, sizeof(*in), sizeof(v), 0, 0, &it), 0);
	assert_int_equal(shmq_iter_next(it, &v, SHMQ_NOWAIT), -EPIPE);
	shmq_iter_free(it);
	assert_int_equal(shmq_pool_imap(p, "sq", in, sizeof(*in), sizeof(v), n, 0x2, &it),
			 -EINVAL);
	assert_int_equal(shmq_pool_imap(p, "no_such_task", in, sizeof(*in), sizeof(v), n, 0, &it),
			 -ENOENT);
	assert_int_equal(shmq_pool_imap(p, "sq", NULL, sizeof(*in), sizeof(v), n, 0, &it),
			 -EINVAL);
	assert_int_equal(shmq_iter_next(NULL, &v, 0), -EINVAL);
	shmq_iter_free(NULL);
	free(seen);
	free(in);
	pool_done(p, r);
}

/* Element `slow` waits for the gate: every other result must arrive while it
 * is shut (unordered), or every one before it (ordered). */
static void early_results(unsigned flags)
{
	const struct shmq_pool_opts o = { .workers = 2, .chunksize = 1 };
	const size_t n = 24, slow = 5;
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, &o);
	int64_t *in = inputs(n), v;
	size_t before = flags & SHMQ_UNORDERED ? n - 1 : slow;
	uint8_t seen[24] = { 0 };
	shmq_iter *it;
	ssize_t i;

	gate_set(false);
	in[slow] = GATE_FROM + (int64_t)slow;
	assert_int_equal(shmq_pool_imap(p, "gated_sq", in, sizeof(*in), sizeof(v), n, flags, &it),
			 0);
	for (size_t k = 0; k < before; k++) {
		i = shmq_iter_next(it, &v, 30 * SEC);
		assert_true(i >= 0 && (size_t)i < n && i != (ssize_t)slow);
		if (!(flags & SHMQ_UNORDERED))
			assert_int_equal(i, (ssize_t)k);
		assert_int_equal(seen[i], 0);
		seen[i] = 1;
		assert_int_equal(v, in[i] * in[i] + 1);
	}
	/* the gate is shut: the slow one cannot be there */
	assert_int_equal(shmq_iter_next(it, &v, SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(shmq_iter_next(it, &v, SEC / 20), -ETIMEDOUT);
	gate_set(true);
	for (size_t k = before; k < n; k++) {
		i = shmq_iter_next(it, &v, 30 * SEC);
		assert_true(i >= 0 && (size_t)i < n);
		assert_int_equal(seen[i], 0);
		seen[i] = 1;
		assert_int_equal(v, in[i] * in[i] + 1);
	}
	assert_int_equal(shmq_iter_next(it, &v, 30 * SEC), -EPIPE);
	shmq_iter_free(it);
	free(in);
	pool_done(p, r);
}

static void test_imap_early_results_unordered(void **state)
{
	(void)state;
	early_results(SHMQ_UNORDERED);
}

static void test_imap_early_results_ordered(void **state)
{
	(void)state;
	early_results(0);
}

static void test_imap_free_midway(void **state)
{
	const struct shmq_pool_opts o = { .workers = 2, .chunksize = 1 };
	const size_t n = 64;
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, &o);
	int64_t *in = inputs(n), *out = calloc(n, sizeof(*out)), v;
	shmq_iter *it;

	(void)state;
	assert_non_null(out);
	gate_set(false);
	in[3] = GATE_FROM + 3;
	assert_int_equal(shmq_pool_imap(p, "gated_sq", in, sizeof(*in), sizeof(v), n, 0, &it), 0);
	for (ssize_t k = 0; k < 3; k++)
		assert_int_equal(shmq_iter_next(it, &v, 30 * SEC), k);
	shmq_iter_free(it); /* element 3 still runs: cancelled, reaped later */
	gate_set(true);
	/* the pool goes on, many times over its job table */
	for (int round = 0; round < 2 * (int)SHMQ_POOL_MAX_JOBS; round++) {
		assert_int_equal(shmq_pool_imap(p, "sq", in, sizeof(*in), sizeof(v), n,
						SHMQ_UNORDERED, &it), 0);
		assert_true(shmq_iter_next(it, &v, 30 * SEC) >= 0);
		shmq_iter_free(it);
	}
	for (size_t i = 0; i < n; i++)
		in[i] = (int64_t)i;
	assert_int_equal(shmq_pool_map(p, "sq", in, sizeof(*in), out, sizeof(*out), n, 30 * SEC),
			 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(out[i], (int64_t)(i * i + 1));
	free(out);
	free(in);
	pool_done(p, r);
}

static void test_imap_errors_per_element(void **state)
{
	const struct shmq_pool_opts o = { .workers = 2, .chunksize = 3 };
	const size_t n = 40;
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, &o);
	int64_t *in = inputs(n), v;
	shmq_iter *it;

	(void)state;
	assert_int_equal(shmq_pool_imap(p, "odd_fails", in, sizeof(*in), sizeof(v), n, 0, &it), 0);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(shmq_iter_next(it, &v, 30 * SEC), i % 2 ? -EDOM : (ssize_t)i);
		assert_int_equal(v, (int64_t)i);
	}
	assert_int_equal(shmq_iter_next(it, &v, 30 * SEC), -EPIPE);
	shmq_iter_free(it);
	free(in);
	pool_done(p, r);
}

/* ---- initializer, max_tasks_per_worker ---- */

static void test_initializer_once_per_worker(void **state)
{
	const struct shmq_pool_opts o = { .workers = 2, .chunksize = 1,
					  .initializer = "init_count" };
	const size_t n = 200;
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, &o);
	int64_t *in = inputs(n);
	struct who *out = calloc(n, sizeof(*out));

	(void)state;
	assert_non_null(out);
	assert_int_equal(shmq_pool_map(p, "whoami", in, sizeof(*in), out, sizeof(*out), n,
				       30 * SEC), 0);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(out[i].v, (int64_t)i * 3);
		assert_int_equal(out[i].init_runs, 1);
	}
	free(out);
	free(in);
	pool_done(p, r);
}

static void test_initializer_failure(void **state)
{
	struct shmq_pool_opts o = { .workers = 2, .initializer = "no_such_init" };
	shmq_region *r = region_new();
	int64_t in[4] = { 1, 2, 3, 4 }, out[4];
	shmq_async *a;
	shmq_pool *p;

	(void)state;
	assert_int_equal(shmq_pool_create(r, &o, &p), -ENOENT);
	o.initializer = "";
	assert_int_equal(shmq_pool_create(r, &o, &p), -EINVAL);
	assert_true(tu_no_children());
	o.initializer = "init_fails";
	assert_int_equal(shmq_pool_create(r, &o, &p), 0);
	/* no worker ever starts: the map says why, the next calls too */
	assert_int_equal(shmq_pool_map(p, "sq", in, sizeof(*in), out, sizeof(*out), 4, 30 * SEC),
			 -EL2HLT);
	/* seen at a look after the workers left, not only at the 64th
	 * (LIFE_FULL_EVERY): they said they were leaving (Protocol LIFE) */
	assert_int_equal(shmq__pool_late_looks(p), 0);
	assert_int_equal(shmq_pool_map_async(p, "sq", in, sizeof(*in), out, sizeof(*out), 4, &a),
			 -EL2HLT);
	assert_int_equal(shmq_pool_terminate(p), 0);
	shmq_pool_free(p);
	shmq_region_close(r);
	assert_true(tu_no_children());
}

static int pid_cmp(const void *a, const void *b)
{
	const struct who *x = a, *y = b;

	return (x->pid > y->pid) - (x->pid < y->pid);
}

static void test_max_tasks_per_worker(void **state)
{
	const struct shmq_pool_opts o = { .workers = 2, .chunksize = 1, .max_tasks_per_worker = 5,
					  .initializer = "init_count" };
	const size_t n = 120;
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, &o);
	int64_t *in = inputs(n), v;
	struct who *out = calloc(n, sizeof(*out));
	struct shmq_pool_worker_stats st;
	size_t pids = 0, run = 0;
	uint32_t restarts = 0;
	shmq_iter *it;

	(void)state;
	assert_non_null(out);
	assert_int_equal(shmq_pool_map(p, "whoami", in, sizeof(*in), out, sizeof(*out), n,
				       60 * SEC), 0);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(out[i].v, (int64_t)i * 3);
		assert_int_equal(out[i].init_runs, 1); /* each replacement ran it once */
	}
	/* chunks of one: no process ran more than 5 tasks, so at least n / 5
	 * processes ran them */
	qsort(out, n, sizeof(*out), pid_cmp);
	for (size_t i = 0; i < n; i++) {
		run = i && out[i].pid == out[i - 1].pid ? run + 1 : 1;
		pids += run == 1;
		assert_true(run <= 5);
	}
	assert_true(pids >= n / 5);
	for (unsigned i = 0; i < shmq_pool_workers(p); i++) {
		assert_int_equal(shmq_pool_worker_stats(p, i, &st), 0);
		restarts += st.restarts;
	}
	assert_true(restarts >= n / 5 - 2);
	/* imap across the replacements too */
	assert_int_equal(shmq_pool_imap(p, "sq", in, sizeof(*in), sizeof(v), n, 0, &it), 0);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(shmq_iter_next(it, &v, 60 * SEC), (ssize_t)i);
		assert_int_equal(v, (int64_t)(i * i + 1));
	}
	shmq_iter_free(it);
	free(out);
	free(in);
	pool_done(p, r);
}

/* A worker that retires is "replaced like a dead one" (pool.h): at the
 * creator's next look, within a wait's 20 ms slice.  It exits through
 * shmq_dispatch, which unmaps the region first, so the kernel cannot mark
 * its life lock; until the worker announced its leaving (Protocol LIFE) only
 * every LIFE_FULL_EVERY-th look found it, 64 slices or 1.28 s per
 * replacement (2.6 s for this map).  Counted, not timed: no look may find
 * a worker gone whose words said it ran. */
static void test_max_tasks_replaced_at_next_look(void **state)
{
	const struct shmq_pool_opts o = { .workers = 2, .chunksize = 1,
					  .max_tasks_per_worker = 1 };
	const size_t n = 6;
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, &o);
	int64_t *in = inputs(n), out[6];
	struct shmq_pool_worker_stats st;
	uint32_t restarts = 0;

	(void)state;
	assert_int_equal(shmq_pool_map(p, "sq", in, sizeof(*in), out, sizeof(*out), n, 60 * SEC),
			 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(out[i], (int64_t)(i * i + 1));
	/* one task per process: the map needed n - 2 replacements */
	for (unsigned i = 0; i < shmq_pool_workers(p); i++) {
		assert_int_equal(shmq_pool_worker_stats(p, i, &st), 0);
		restarts += st.restarts;
	}
	assert_true(restarts >= n - 2);
	assert_int_equal(shmq__pool_late_looks(p), 0);
	free(in);
	pool_done(p, r);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_imap_ordered_and_unordered),
		cmocka_unit_test(test_imap_early_results_unordered),
		cmocka_unit_test(test_imap_early_results_ordered),
		cmocka_unit_test(test_imap_free_midway),
		cmocka_unit_test(test_imap_errors_per_element),
		cmocka_unit_test(test_initializer_once_per_worker),
		cmocka_unit_test(test_initializer_failure),
		cmocka_unit_test(test_max_tasks_per_worker),
		cmocka_unit_test(test_max_tasks_replaced_at_next_look),
	};
	char gate[96];
	int rc;

	shmq_dispatch(argc, argv);
	/* before any pool: every worker, replacements too, inherits it */
	snprintf(gate, sizeof(gate), "/tmp/shmq-test-imap-gate-%d", (int)getpid());
	setenv(GATE_ENV, gate, 1);
	rc = cmocka_run_group_tests_name("imap", tests, NULL, NULL);
	unlink(gate);
	return rc;
}
