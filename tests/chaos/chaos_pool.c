/* SPDX-License-Identifier: MIT */
/*
 * Chaos: a pool worker killed at a random instruction in the middle of a map.
 *
 * Each round submits a map of a few hundred to a few thousand elements of
 * uneven cost, then stops a random worker under ptrace at a random
 * instruction and SIGKILLs it.  Invariants: the map still completes within
 * its timeout with status 0 and every result is the task's value for its
 * input (nothing lost, nothing from a half-run chunk); the pool replaces the
 * worker and stays usable round after round, in bounded space (the region's
 * use after any number of rounds stays within a few worker areas of its use
 * after the first rounds: dead workers' areas are recycled); at the end
 * close + join leave no worker behind.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "testutil.h"

#include "chaos.h"

#define WORKERS 2
#define MAX_N   3000
#define EARLY_ROUNDS 10            /* region use measured after these */
#define GROWTH_MAX   (2u << 20)    /* most growth after them (~12 areas) */

static uint64_t mix_value(uint64_t x)
{
	uint64_t v = x ^ 0x9e3779b97f4a7c15ull;
	unsigned iters = (unsigned)(x % 97) * 40;

	for (unsigned i = 0; i < iters; i++)
		v = v * 6364136223846793005ull + 1442695040888963407ull;
	return v;
}

static int chaos_mix(const void *in, void *out)
{
	*(uint64_t *)out = mix_value(*(const uint64_t *)in);
	return 0;
}
SHMQ_TASK(chaos_mix);

static pid_t pick_worker(shmq_pool *p, struct chaos *c)
{
	struct shmq_pool_worker_stats st;
	unsigned i = (unsigned)chaos_rand(c, shmq_pool_workers(p));

	siginfo_t si;

	if (shmq_pool_worker_stats(p, i, &st) != 0 || !st.started || st.pid <= 0)
		return 0;
	/* killed in an earlier round and not replaced yet (the pool replaces
	 * in its calls): striking it again would count a kill of nobody */
	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)st.pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
	    si.si_pid == st.pid)
		return 0;
	return st.pid;
}

static void run_round(struct chaos *c, shmq_pool *p, uint64_t *in, uint64_t *out,
		      unsigned long *restarts_seen)
{
	size_t n = 200 + (size_t)chaos_rand(c, MAX_N - 200);
	uint64_t base = chaos_rand(c, 1u << 30);
	shmq_async *a;
	pid_t victim;

	for (size_t i = 0; i < n; i++) {
		in[i] = base + i;
		out[i] = 0;
	}
	assert_int_equal(shmq_pool_map_async(p, "chaos_mix", in, sizeof(*in), out, sizeof(*out), n,
					     &a),
			 0);
	victim = pick_worker(p, c);
	if (victim > 0 && chaos_strike_foreign(c, victim, (int64_t)chaos_rand(c, 4 * CHAOS_MS)))
		(*restarts_seen)++;
	assert_int_equal(shmq_async_get(a, 60000 * CHAOS_MS), 0);
	shmq_async_free(a);
	for (size_t i = 0; i < n; i++) {
		if (out[i] != mix_value(in[i]))
			fprintf(stderr, "element %zu of %zu: wrong result\n", i, n);
		assert_true(out[i] == mix_value(in[i]));
	}
	/* and a blocking map right after, on the replaced worker */
	assert_int_equal(shmq_pool_map(p, "chaos_mix", in, sizeof(*in), out, sizeof(*out), 16,
				       60000 * CHAOS_MS),
			 0);
	assert_true(out[15] == mix_value(in[15]));
}

static void chaos_pool(void **state)
{
	struct chaos c;
	struct shmq_region_opts ro = { .size = (size_t)32 << 20 };
	struct shmq_pool_opts po = { .workers = WORKERS };
	unsigned long kills = 0;
	unsigned long restarts = 0;
	struct shmq_region_info info;
	uint64_t used_early = 0;
	shmq_region *r;
	shmq_pool *p;
	uint64_t *in = calloc(MAX_N, sizeof(*in));
	uint64_t *out = calloc(MAX_N, sizeof(*out));

	(void)state;
	assert_non_null(in);
	assert_non_null(out);
	chaos_init(&c, "pool", 60);
	assert_int_equal(shmq_region_create(NULL, &ro, &r), 0);
	assert_int_equal(shmq_pool_create(r, &po, &p), 0);
	while (chaos_next_round(&c)) {
		run_round(&c, p, in, out, &kills);
		c.rounds_done++;
		if (c.rounds_done == EARLY_ROUNDS) {
			assert_int_equal(shmq_region_info(r, &info), 0);
			used_early = info.used;
		}
	}
	assert_int_equal(shmq_region_info(r, &info), 0);
	if (used_early) {
		printf("chaos pool: region use %llu bytes after %u rounds, %llu after %u\n",
		       (unsigned long long)used_early, EARLY_ROUNDS, (unsigned long long)info.used,
		       c.rounds_done);
		assert_true(info.used - used_early <= GROWTH_MAX);
	}
	for (unsigned i = 0; i < shmq_pool_workers(p); i++) {
		struct shmq_pool_worker_stats st;

		assert_int_equal(shmq_pool_worker_stats(p, i, &st), 0);
		restarts += st.restarts;
	}
	chaos_report(&c);
	printf("chaos pool: %lu workers killed mid-map, %lu replacements, every result right\n",
	       kills, restarts);
	assert_int_equal(shmq_pool_close(p), 0);
	assert_int_equal(shmq_pool_join(p, 60000 * CHAOS_MS), 0);
	shmq_pool_free(p);
	shmq_region_close(r);
	free(in);
	free(out);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(chaos_pool),
	};

	shmq_dispatch(argc, argv);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
