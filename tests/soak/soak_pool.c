/* SPDX-License-Identifier: MIT */
/*
 * Soak: SOAK_TASKS (default 10^6) pool tasks through a pool of 4 workers,
 * in maps of BATCH elements, every result checked.  Prints throughput and
 * the resident set of the caller and of every worker at start (after one
 * warm-up batch), middle and end; fails if any grew by more than
 * SOAK_RSS_SLACK_KIB or any result is wrong.  Run by `make check-long`.
 *
 * usage: soak_pool [TASKS]
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include <shmq.h>

#include "soak.h"

#define WORKERS 4
#define BATCH   10000

static uint64_t soak_value(uint64_t x)
{
	x ^= x >> 31;
	x *= 0x7fb5d329728ea185ull;
	return x ^ (x >> 27);
}

static int soak_task(const void *in, void *out)
{
	*(uint64_t *)out = soak_value(*(const uint64_t *)in);
	return 0;
}
SHMQ_TASK(soak_task);

struct rss_sample {
	long self;
	long worker[WORKERS];
};

static void sample(shmq_pool *p, struct rss_sample *s)
{
	s->self = soak_rss_kib(0);
	for (unsigned i = 0; i < WORKERS; i++) {
		struct shmq_pool_worker_stats st;

		s->worker[i] = shmq_pool_worker_stats(p, i, &st) == 0 ? soak_rss_kib(st.pid) : -1;
	}
}

static void print_sample(const char *when, const struct rss_sample *s)
{
	printf("soak pool: rss %-6s caller %ld KiB, workers", when, s->self);
	for (unsigned i = 0; i < WORKERS; i++)
		printf(" %ld", s->worker[i]);
	printf(" KiB\n");
}

static int grew(const struct rss_sample *a, const struct rss_sample *b)
{
	int bad = b->self - a->self > SOAK_RSS_SLACK_KIB;

	for (unsigned i = 0; i < WORKERS; i++)
		bad |= b->worker[i] - a->worker[i] > SOAK_RSS_SLACK_KIB;
	return bad;
}

static int run_batch(shmq_pool *p, uint64_t *in, uint64_t *out, uint64_t base)
{
	int rc;

	for (unsigned i = 0; i < BATCH; i++)
		in[i] = base + i;
	rc = shmq_pool_map(p, "soak_task", in, sizeof(*in), out, sizeof(*out), BATCH, SHMQ_FOREVER);
	if (rc)
		return rc;
	for (unsigned i = 0; i < BATCH; i++)
		if (out[i] != soak_value(in[i]))
			return -EBADMSG;
	return 0;
}

int main(int argc, char **argv)
{
	struct shmq_region_opts ro = { .size = (size_t)64 << 20 };
	struct shmq_pool_opts po = { .workers = WORKERS };
	struct rss_sample s0, s1, s2;
	uint64_t tasks, batches, *in, *out;
	shmq_region *r;
	shmq_pool *p;
	double t0, t1;
	int rc = 0;

	shmq_dispatch(argc, argv);
	tasks = argc > 1 ? strtoull(argv[1], NULL, 0) : 1000000;
	batches = (tasks + BATCH - 1) / BATCH;
	in = calloc(BATCH, sizeof(*in));
	out = calloc(BATCH, sizeof(*out));
	if (!in || !out || shmq_region_create(NULL, &ro, &r) || shmq_pool_create(r, &po, &p)) {
		fprintf(stderr, "soak pool: setup failed\n");
		return 99;
	}
	rc = run_batch(p, in, out, 0); /* warm-up: arena, workers' pages */
	sample(p, &s0);
	t0 = soak_now();
	for (uint64_t b = 0; rc == 0 && b < batches; b++) {
		rc = run_batch(p, in, out, (b + 1) * BATCH);
		if (b == batches / 2)
			sample(p, &s1);
	}
	t1 = soak_now();
	sample(p, &s2);
	printf("soak pool: %llu tasks in %.2f s, %.0f tasks/s, %u workers, maps of %u\n",
	       (unsigned long long)(batches * BATCH), t1 - t0, (double)(batches * BATCH) / (t1 - t0),
	       WORKERS, BATCH);
	print_sample("start", &s0);
	print_sample("middle", &s1);
	print_sample("end", &s2);
	if (rc)
		fprintf(stderr, "soak pool: map failed: %s\n", shmq_strerror(rc));
	if (grew(&s0, &s1) || grew(&s0, &s2)) {
		fprintf(stderr, "soak pool: resident set grew by more than %ld KiB\n",
			SOAK_RSS_SLACK_KIB);
		rc = rc ? rc : -ENOMEM;
	}
	shmq_pool_close(p);
	shmq_pool_join(p, SHMQ_FOREVER);
	shmq_pool_free(p);
	shmq_region_close(r);
	free(in);
	free(out);
	printf("soak pool: %s\n", rc ? "FAILED" : "passed");
	return rc ? 1 : 0;
}
