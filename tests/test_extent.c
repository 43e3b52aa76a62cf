/* SPDX-License-Identifier: MIT */
/* The pool's free-extent list (lib/pool/extent.c), alone: first-fit
 * allocation rounded to cache lines, coalescing frees on either side and on
 * both, exhaustion, bad input that changes nothing, fragmentation, and a
 * seeded random run checked against a line-by-line model after every step. */
#include "config.h"

#include <errno.h>

#include "testutil.h"

#include "pool/extent_int.h"

#define LINE 64u

/* ---- helpers ---- */

/* The list's invariants: sorted, non-empty, no overlap and no two adjacent
 * extents (every free coalesced).  Returns the free bytes. */
static uint64_t check_list(const struct shmq__extents *a)
{
	uint64_t total = 0;

	assert_true(a->n <= a->cap);
	for (size_t i = 0; i < a->n; i++) {
		assert_true(a->v[i].size > 0);
		assert_int_equal(a->v[i].off % LINE, 0);
		assert_int_equal(a->v[i].size % LINE, 0);
		if (i > 0)
			/* strictly after the previous end: neither overlapping nor adjacent */
			assert_true(a->v[i - 1].off + a->v[i - 1].size < a->v[i].off);
		total += a->v[i].size;
	}
	return total;
}

static void expect_extent(const struct shmq__extents *a, size_t i, uint64_t off, uint64_t size)
{
	assert_true(i < a->n);
	assert_int_equal(a->v[i].off, off);
	assert_int_equal(a->v[i].size, size);
}

static void seed(struct shmq__extents *a, uint64_t off, uint64_t size)
{
	memset(a, 0, sizeof(*a));
	assert_int_equal(shmq__extent_free(a, off, size), 0);
	assert_int_equal(a->n, 1);
}

/* ---- tests ---- */

static void test_alloc_rounds_first_fit(void **state)
{
	struct shmq__extents a;
	uint64_t off;

	(void)state;
	seed(&a, 0x1000, 4096);
	assert_int_equal(shmq__extent_alloc(&a, 1, &off), 0);
	assert_int_equal(off, 0x1000);
	assert_int_equal(shmq__extent_alloc(&a, 100, &off), 0); /* two lines */
	assert_int_equal(off, 0x1040);
	assert_int_equal(shmq__extent_alloc(&a, LINE, &off), 0);
	assert_int_equal(off, 0x10c0);
	expect_extent(&a, 0, 0x1100, 4096 - 4 * LINE);
	assert_int_equal(check_list(&a), 4096 - 4 * LINE);
	shmq__extent_fini(&a);
	assert_null(a.v);
	assert_int_equal(a.n, 0);
}

/* Three neighbours A B C: freeing A and C leaves two holes, freeing B then
 * joins everything into one extent again. */
static void test_free_coalesces_both_sides(void **state)
{
	struct shmq__extents a;
	uint64_t xa, xb, xc;

	(void)state;
	seed(&a, 0, 1024);
	assert_int_equal(shmq__extent_alloc(&a, LINE, &xa), 0);
	assert_int_equal(shmq__extent_alloc(&a, LINE, &xb), 0);
	assert_int_equal(shmq__extent_alloc(&a, LINE, &xc), 0);
	assert_int_equal(shmq__extent_free(&a, xa, LINE), 0);
	assert_int_equal(a.n, 2); /* [0,64) and the tail: B sits between */
	assert_int_equal(shmq__extent_free(&a, xc, LINE), 0); /* joins the tail */
	assert_int_equal(a.n, 2);
	expect_extent(&a, 0, 0, LINE);
	expect_extent(&a, 1, 2 * LINE, 1024 - 2 * LINE);
	assert_int_equal(shmq__extent_free(&a, xb, LINE), 0); /* joins both */
	assert_int_equal(a.n, 1);
	expect_extent(&a, 0, 0, 1024);
	assert_int_equal(check_list(&a), 1024);
	shmq__extent_fini(&a);
}

static void test_free_coalesces_one_side(void **state)
{
	struct shmq__extents a;
	uint64_t x[4];

	(void)state;
	seed(&a, 0, 4 * LINE);
	for (int i = 0; i < 4; i++)
		assert_int_equal(shmq__extent_alloc(&a, LINE, &x[i]), 0);
	assert_int_equal(a.n, 0);
	assert_int_equal(shmq__extent_free(&a, x[1], LINE), 0);
	assert_int_equal(shmq__extent_free(&a, x[2], LINE), 0); /* after x[1]: grows it */
	assert_int_equal(a.n, 1);
	expect_extent(&a, 0, LINE, 2 * LINE);
	assert_int_equal(shmq__extent_free(&a, x[0], LINE), 0); /* before it: moves its start */
	assert_int_equal(a.n, 1);
	expect_extent(&a, 0, 0, 3 * LINE);
	assert_int_equal(shmq__extent_free(&a, x[3], LINE), 0);
	expect_extent(&a, 0, 0, 4 * LINE);
	shmq__extent_fini(&a);
}

static void test_exhaustion(void **state)
{
	struct shmq__extents a;
	uint64_t off, off2 = 0xdead;

	(void)state;
	seed(&a, 0x40, 4 * LINE);
	assert_int_equal(shmq__extent_alloc(&a, 5 * LINE, &off2), -ENOSPC); /* larger than all */
	assert_int_equal(off2, 0xdead);
	assert_int_equal(shmq__extent_alloc(&a, 4 * LINE, &off), 0); /* exactly all */
	assert_int_equal(off, 0x40);
	assert_int_equal(a.n, 0);
	assert_int_equal(shmq__extent_largest(&a), 0);
	assert_int_equal(shmq__extent_alloc(&a, 1, &off2), -ENOSPC);
	assert_int_equal(off2, 0xdead);
	assert_int_equal(shmq__extent_free(&a, off, 4 * LINE), 0);
	expect_extent(&a, 0, 0x40, 4 * LINE);
	shmq__extent_fini(&a);
}

/* Every refusal is -EINVAL and leaves the list as it was. */
static void test_bad_input(void **state)
{
	struct shmq__extents a;
	struct shmq__extent before[4];
	uint64_t off = 0xdead, x;

	(void)state;
	seed(&a, 0, 1024);
	assert_int_equal(shmq__extent_alloc(&a, 2 * LINE, &x), 0);  /* [0,128) used */
	assert_int_equal(shmq__extent_alloc(&a, 2 * LINE, &x), 0);  /* [128,256) used */
	assert_int_equal(shmq__extent_free(&a, 0, 2 * LINE), 0);    /* [0,128) free */
	assert_int_equal(a.n, 2);
	memcpy(before, a.v, a.n * sizeof(*a.v));

	assert_int_equal(shmq__extent_alloc(&a, 0, &off), -EINVAL);
	assert_int_equal(shmq__extent_alloc(&a, UINT64_MAX, &off), -EINVAL); /* cannot round */
	assert_int_equal(shmq__extent_alloc(&a, UINT64_MAX - LINE + 2, &off), -EINVAL);
	assert_int_equal(off, 0xdead);
	assert_int_equal(shmq__extent_free(&a, 128, 0), -EINVAL);
	assert_int_equal(shmq__extent_free(&a, UINT64_MAX - LINE + 1, 2 * LINE), -EINVAL); /* wraps */
	assert_int_equal(shmq__extent_free(&a, 0, LINE), -EINVAL);          /* double free */
	assert_int_equal(shmq__extent_free(&a, LINE, 2 * LINE), -EINVAL);   /* overlaps the one before */
	assert_int_equal(shmq__extent_free(&a, 192, 2 * LINE), -EINVAL);    /* overlaps the one after */
	assert_int_equal(shmq__extent_free(&a, 0, 1024), -EINVAL);          /* covers free space */
	assert_int_equal(shmq__extent_free(&a, 512, LINE), -EINVAL);        /* inside the tail */
	assert_int_equal(a.n, 2);
	assert_memory_equal(a.v, before, a.n * sizeof(*a.v));
	assert_int_equal(shmq__extent_free(&a, 128, 2 * LINE), 0); /* the real one */
	expect_extent(&a, 0, 0, 1024);
	shmq__extent_fini(&a);
}

/* Half the space free in one-line holes: no two-line block fits until the
 * holes are joined again. */
static void test_fragmentation(void **state)
{
	enum { N = 64 };
	struct shmq__extents a;
	uint64_t x[N], off;

	(void)state;
	seed(&a, 0, N * LINE);
	for (int i = 0; i < N; i++)
		assert_int_equal(shmq__extent_alloc(&a, LINE, &x[i]), 0);
	for (int i = 0; i < N; i += 2)
		assert_int_equal(shmq__extent_free(&a, x[i], LINE), 0);
	assert_int_equal(a.n, N / 2);
	assert_int_equal(check_list(&a), N / 2 * LINE);
	assert_int_equal(shmq__extent_largest(&a), LINE);
	assert_int_equal(shmq__extent_alloc(&a, 2 * LINE, &off), -ENOSPC);
	for (int i = N - 1; i > 0; i -= 2) /* backwards: each joins two holes */
		assert_int_equal(shmq__extent_free(&a, x[i], LINE), 0);
	assert_int_equal(a.n, 1);
	assert_int_equal(shmq__extent_largest(&a), N * LINE);
	assert_int_equal(shmq__extent_alloc(&a, N * LINE, &off), 0);
	assert_int_equal(off, 0);
	shmq__extent_fini(&a);
}

/* Random allocations and frees, checked after every step against a model
 * that knows, per line, whether it is free; first fit is checked too. */
static void test_random_against_model(void **state)
{
	enum { LINES = 512, SLOTS = 64, STEPS = 20000 };
	struct shmq__extents a;
	struct { uint64_t off, size, lines; } held[SLOTS] = { { 0, 0, 0 } };
	bool freeline[LINES];
	uint64_t rng = 0x9e3779b97f4a7c15ull, base = 0x10000;

	(void)state;
	seed(&a, base, LINES * LINE);
	for (int i = 0; i < LINES; i++)
		freeline[i] = true;
	for (int step = 0; step < STEPS; step++) {
		unsigned k;
		uint64_t off, total = 0, want;

		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		k = (unsigned)(rng % SLOTS);
		if (held[k].size) {
			assert_int_equal(shmq__extent_free(&a, held[k].off, held[k].size), 0);
			for (uint64_t l = 0; l < held[k].lines; l++)
				freeline[(held[k].off - base) / LINE + l] = true;
			held[k].size = 0;
		} else {
			uint64_t lines = 1 + (rng >> 32) % 24, first = UINT64_MAX, run = 0;
			int rc;

			for (uint64_t l = 0; l < LINES && first == UINT64_MAX; l++) {
				run = freeline[l] ? run + 1 : 0;
				if (run == lines)
					first = l + 1 - lines;
			}
			want = lines * LINE - (rng >> 40) % LINE; /* rounds up to lines */
			rc = shmq__extent_alloc(&a, want, &off);
			if (first == UINT64_MAX) {
				assert_int_equal(rc, -ENOSPC);
			} else {
				assert_int_equal(rc, 0);
				assert_int_equal(off, base + first * LINE); /* first fit */
				for (uint64_t l = first; l < first + lines; l++)
					freeline[l] = false;
				held[k].off = off;
				held[k].size = want; /* freed as asked for: rounds alike */
				held[k].lines = lines;
			}
		}
		for (int l = 0; l < LINES; l++)
			total += freeline[l] ? LINE : 0;
		assert_int_equal(check_list(&a), total);
	}
	shmq__extent_fini(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alloc_rounds_first_fit),
		cmocka_unit_test(test_free_coalesces_both_sides),
		cmocka_unit_test(test_free_coalesces_one_side),
		cmocka_unit_test(test_exhaustion),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_fragmentation),
		cmocka_unit_test(test_random_against_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
