/* SPDX-License-Identifier: MIT */
/* The Chase-Lev deque: single-thread semantics, an owner racing thieves
 * (threads, then processes) with every item taken exactly once, and
 * corrupted indices reported as -EBADMSG. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <sys/mman.h>

#include "testutil.h"

#include "core/atomic_int.h"
#include "ring/deque_int.h"

static void *deque_new(uint32_t cap, struct shmq__deque *d)
{
	size_t sz = shmq__deque_footprint(cap);
	void *mem;

	assert_true(sz > 0);
	mem = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(mem != MAP_FAILED);
	assert_int_equal(shmq__deque_init(mem, cap), 0);
	assert_int_equal(shmq__deque_attach(d, mem, sz), 0);
	return mem;
}

static void deque_free(void *mem, uint32_t cap)
{
	munmap(mem, shmq__deque_footprint(cap));
}

static void test_footprint_and_init(void **state)
{
	struct shmq__deque d;
	uint8_t buf[4096] __attribute__((aligned(64)));

	(void)state;
	assert_int_equal(shmq__deque_footprint(0), 0);
	assert_int_equal(shmq__deque_footprint(3), 0);
	assert_int_equal(shmq__deque_footprint(1u << 25), 0);
	assert_int_equal(shmq__deque_footprint(8), sizeof(struct shmq__deque_ctl) + 64);
	assert_int_equal(shmq__deque_init(buf, 6), -EINVAL);
	assert_int_equal(shmq__deque_init(buf + 8, 8), -EINVAL);
	assert_int_equal(shmq__deque_init(buf, 8), 0);
	assert_int_equal(shmq__deque_attach(&d, buf, shmq__deque_footprint(8) - 1), -EBADMSG);
	assert_int_equal(shmq__deque_attach(&d, buf, shmq__deque_footprint(8)), 0);
	assert_int_equal(shmq__deque_size(&d), 0);
}

static void test_lifo_fifo(void **state)
{
	struct shmq__deque d;
	void *mem = deque_new(8, &d);
	uint64_t v;

	(void)state;
	assert_int_equal(shmq__deque_take(&d, &v), -EAGAIN);
	assert_int_equal(shmq__deque_steal(&d, &v), -EAGAIN);
	for (uint64_t i = 1; i <= 8; i++)
		assert_int_equal(shmq__deque_push(&d, i * 10), 0);
	assert_int_equal(shmq__deque_push(&d, 90), -ENOSPC);
	assert_int_equal(shmq__deque_size(&d), 8);
	/* owner LIFO at the bottom, thieves FIFO at the top */
	assert_int_equal(shmq__deque_take(&d, &v), 0);
	assert_int_equal(v, 80);
	assert_int_equal(shmq__deque_steal(&d, &v), 0);
	assert_int_equal(v, 10);
	assert_int_equal(shmq__deque_steal(&d, &v), 0);
	assert_int_equal(v, 20);
	assert_int_equal(shmq__deque_take(&d, &v), 0);
	assert_int_equal(v, 70);
	/* wrap around the ring many times */
	for (uint64_t round = 0; round < 100; round++) {
		assert_int_equal(shmq__deque_push(&d, 1000 + round), 0);
		assert_int_equal(shmq__deque_push(&d, 2000 + round), 0);
		assert_int_equal(shmq__deque_steal(&d, &v), 0);
		assert_int_equal(shmq__deque_take(&d, &v), 0);
		assert_int_equal(v, 2000 + round);
	}
	assert_int_equal(shmq__deque_size(&d), 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(shmq__deque_take(&d, &v), 0);
	assert_int_equal(shmq__deque_take(&d, &v), -EAGAIN);
	assert_int_equal(shmq__deque_steal(&d, &v), -EAGAIN);
	/* the last item, taken by the owner, leaves a consistent empty deque */
	assert_int_equal(shmq__deque_push(&d, 5), 0);
	assert_int_equal(shmq__deque_take(&d, &v), 0);
	assert_int_equal(v, 5);
	assert_int_equal(shmq__deque_size(&d), 0);
	assert_int_equal(shmq__deque_push(&d, 6), 0);
	assert_int_equal(shmq__deque_steal(&d, &v), 0);
	assert_int_equal(v, 6);
	assert_int_equal(shmq__deque_take(&d, &v), -EAGAIN);
	deque_free(mem, 8);
}

/* ---- owner and thieves as threads ---- */

#define RACE_ITEMS 200000u
#define RACE_THIEVES 3

struct race {
	struct shmq__deque d;
	uint8_t *seen;     /* per item: times taken (atomic increments) */
	uint32_t done;     /* the owner finished */
	uint64_t stolen[RACE_THIEVES];
	uint64_t taken;
	int bad;
};

struct thief_arg {
	struct race *r;
	int idx;
};

static void race_mark(struct race *r, uint64_t v)
{
	if (v >= RACE_ITEMS)
		shmq__store_relaxed(&r->bad, 1); /* read after the joins */
	else
		shmq__fetch_add_relaxed(&r->seen[v], 1); /* read after the joins */
}

static void *thief_main(void *p)
{
	struct thief_arg *a = p;
	struct race *r = a->r;
	uint64_t v = 0, n = 0;
	int rc;

	for (;;) {
		rc = shmq__deque_steal(&r->d, &v);
		if (rc == 0) {
			race_mark(r, v);
			n++;
		} else if (rc == -EAGAIN) {
			/* pairs with the owner's release store of done */
			if (shmq__load_acquire(&r->done) && shmq__deque_size(&r->d) == 0)
				break;
		} else if (rc != -EBUSY) {
			shmq__store_relaxed(&r->bad, 2); /* read after the joins */
			break;
		}
	}
	r->stolen[a->idx] = n;
	return NULL;
}

static void race_owner(struct race *r)
{
	uint64_t v = 0, next = 0, taken = 0;
	unsigned seed = 12345;

	while (next < RACE_ITEMS) {
		unsigned burst = 1 + (rand_r(&seed) % 64);

		for (unsigned i = 0; i < burst && next < RACE_ITEMS; i++) {
			int rc = shmq__deque_push(&r->d, next);

			if (rc == -ENOSPC)
				break;
			assert_int_equal(rc, 0);
			next++;
		}
		for (unsigned i = rand_r(&seed) % 48; i > 0; i--) {
			int rc = shmq__deque_take(&r->d, &v);

			if (rc == -EAGAIN)
				break;
			assert_int_equal(rc, 0);
			race_mark(r, v);
			taken++;
		}
	}
	while (shmq__deque_take(&r->d, &v) == 0) {
		race_mark(r, v);
		taken++;
	}
	r->taken = taken;
	shmq__store_release(&r->done, 1); /* pairs with the thieves' load_acquire */
}

/* Owner and thieves race through RACE_ITEMS items, both indices starting
 * at start. */
static void race_threads(uint64_t start)
{
	struct race r;
	struct thief_arg args[RACE_THIEVES];
	pthread_t th[RACE_THIEVES];
	struct shmq__deque_ctl *c;
	void *mem;
	uint64_t total;

	memset(&r, 0, sizeof(r));
	mem = deque_new(64, &r.d); /* small: the ring wraps and fills often */
	c = mem;
	c->top = c->bottom = start; /* before any thread looks */
	r.seen = calloc(RACE_ITEMS, 1);
	assert_non_null(r.seen);
	for (int i = 0; i < RACE_THIEVES; i++) {
		args[i].r = &r;
		args[i].idx = i;
		assert_int_equal(pthread_create(&th[i], NULL, thief_main, &args[i]), 0);
	}
	race_owner(&r);
	for (int i = 0; i < RACE_THIEVES; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(r.bad, 0);
	total = r.taken;
	for (int i = 0; i < RACE_THIEVES; i++)
		total += r.stolen[i];
	assert_int_equal(total, RACE_ITEMS);
	for (uint64_t i = 0; i < RACE_ITEMS; i++)
		if (r.seen[i] != 1)
			fail_msg("item %llu taken %u times", (unsigned long long)i, r.seen[i]);
	free(r.seen);
	deque_free(mem, 64);
}

static void test_race_threads(void **state)
{
	(void)state;
	race_threads(0);
}

/* Indices that a writer put just below 2^64 (a consistent, empty deque):
 * the race goes on across the wrap, every item taken once (a take that
 * finds bottom 0 with items below it is test_wrap's case). */
static void test_race_threads_wrap(void **state)
{
	(void)state;
	race_threads(UINT64_MAX - RACE_ITEMS / 2);
}

/* ---- a thief in another process ---- */

#define XP_ITEMS 50000u

static void test_race_process(void **state)
{
	struct shmq__deque d;
	void *mem = deque_new(128, &d);
	uint8_t *seen = mmap(NULL, XP_ITEMS + 64, PROT_READ | PROT_WRITE,
			     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uint32_t *done = (uint32_t *)(seen + XP_ITEMS);
	uint64_t v = 0, next = 0;
	pid_t pid;

	(void)state;
	assert_true(seen != MAP_FAILED);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int bad = 0;

		for (;;) {
			int rc = shmq__deque_steal(&d, &v);

			if (rc == 0) {
				if (v >= XP_ITEMS)
					bad = 1;
				else
					shmq__fetch_add_relaxed(&seen[v], 1); /* read after wait() */
			} else if (rc == -EAGAIN) {
				/* pairs with the parent's release store of done */
				if (shmq__load_acquire(done) && shmq__deque_size(&d) == 0)
					break;
			} else if (rc != -EBUSY) {
				bad = 1;
				break;
			}
		}
		_exit(bad);
	}
	while (next < XP_ITEMS) {
		if (shmq__deque_push(&d, next) == 0)
			next++;
		if (next % 3 == 0 && shmq__deque_take(&d, &v) == 0)
			shmq__fetch_add_relaxed(&seen[v], 1); /* read after wait() */
	}
	while (shmq__deque_take(&d, &v) == 0)
		shmq__fetch_add_relaxed(&seen[v], 1); /* read after wait() */
	shmq__store_release(done, 1); /* pairs with the child's load_acquire */
	assert_int_equal(tu_wait_child(pid), 0);
	for (uint64_t i = 0; i < XP_ITEMS; i++)
		if (seen[i] != 1)
			fail_msg("item %llu taken %u times", (unsigned long long)i, seen[i]);
	munmap(seen, XP_ITEMS + 64);
	deque_free(mem, 128);
}

/* ---- corruption ---- */

/* Indices just below 2^64, set as a writer could: push, take and steal
 * go on across the wrap as anywhere else (the indices are free running;
 * only their difference counts). */
static void test_wrap(void **state)
{
	struct shmq__deque d;
	void *mem = deque_new(8, &d);
	struct shmq__deque_ctl *c = mem;
	uint64_t v;

	(void)state;
	c->top = c->bottom = UINT64_MAX - 1;
	assert_int_equal(shmq__deque_take(&d, &v), -EAGAIN);
	for (uint64_t i = 1; i <= 4; i++)
		assert_int_equal(shmq__deque_push(&d, i), 0);
	assert_int_equal(c->bottom, 2); /* wrapped */
	assert_int_equal(shmq__deque_size(&d), 4);
	assert_int_equal(shmq__deque_take(&d, &v), 0);
	assert_int_equal(v, 4);
	assert_int_equal(shmq__deque_take(&d, &v), 0);
	assert_int_equal(v, 3);
	assert_int_equal(c->bottom, 0);
	/* bottom 0, two items below it: the owner takes the last of them */
	assert_int_equal(shmq__deque_take(&d, &v), 0);
	assert_int_equal(v, 2);
	assert_int_equal(shmq__deque_steal(&d, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(shmq__deque_take(&d, &v), -EAGAIN);
	assert_int_equal(shmq__deque_steal(&d, &v), -EAGAIN);
	assert_int_equal(shmq__deque_size(&d), 0);
	/* the last item across the wrap, raced for by the owner's take */
	c->top = c->bottom = UINT64_MAX;
	assert_int_equal(shmq__deque_push(&d, 9), 0);
	assert_int_equal(c->bottom, 0);
	assert_int_equal(shmq__deque_take(&d, &v), 0);
	assert_int_equal(v, 9);
	assert_int_equal(c->top, 0);
	assert_int_equal(c->bottom, 0);
	assert_int_equal(shmq__deque_take(&d, &v), -EAGAIN);
	deque_free(mem, 8);
}

static void test_corrupt_indices(void **state)
{
	struct shmq__deque d;
	void *mem = deque_new(16, &d);
	struct shmq__deque_ctl *c = mem;
	uint64_t v;

	(void)state;
	for (int i = 0; i < 4; i++)
		assert_int_equal(shmq__deque_push(&d, (uint64_t)i), 0);
	/* bottom far past top: more items than the capacity */
	c->bottom = c->top + 17;
	assert_int_equal(shmq__deque_push(&d, 1), -EBADMSG);
	assert_int_equal(shmq__deque_take(&d, &v), -EBADMSG);
	assert_int_equal(shmq__deque_steal(&d, &v), -EBADMSG);
	assert_int_equal(shmq__deque_size(&d), -EBADMSG);
	/* top past bottom */
	c->top = 100;
	c->bottom = 50;
	assert_int_equal(shmq__deque_push(&d, 1), -EBADMSG);
	assert_int_equal(shmq__deque_take(&d, &v), -EBADMSG);
	assert_int_equal(shmq__deque_steal(&d, &v), -EBADMSG);
	c->bottom = 0;
	assert_int_equal(shmq__deque_take(&d, &v), -EBADMSG);
	/* a huge difference that wraps the signed range */
	c->top = 0;
	c->bottom = UINT64_MAX / 2 + 7;
	assert_int_equal(shmq__deque_push(&d, 1), -EBADMSG);
	assert_int_equal(shmq__deque_take(&d, &v), -EBADMSG);
	assert_int_equal(shmq__deque_steal(&d, &v), -EBADMSG);
	/* back to sane values: usable again */
	c->top = 1000;
	c->bottom = 1000;
	assert_int_equal(shmq__deque_push(&d, 77), 0);
	assert_int_equal(shmq__deque_steal(&d, &v), 0);
	assert_int_equal(v, 77);
	/* a corrupt header is refused at attach; the private view keeps its mask */
	c->capacity = 1u << 20;
	assert_int_equal(shmq__deque_attach(&d, mem, shmq__deque_footprint(16)), -EBADMSG);
	assert_int_equal(shmq__deque_push(&d, 78), 0); /* still masked with 15 */
	c->capacity = 16;
	c->magic = 0;
	assert_int_equal(shmq__deque_attach(&d, mem, shmq__deque_footprint(16)), -EBADMSG);
	deque_free(mem, 16);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_footprint_and_init),
		cmocka_unit_test(test_lifo_fifo),
		cmocka_unit_test(test_corrupt_indices),
		cmocka_unit_test(test_race_process),
		cmocka_unit_test(test_race_threads),
		cmocka_unit_test(test_wrap),
		cmocka_unit_test(test_race_threads_wrap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
