/* SPDX-License-Identifier: MIT */
/*
 * Chaos: a lock whose holder dies at a random instruction.
 *
 * Each round forks WORKERS processes that take the lock and, inside the
 * critical section, increment a shared counter, then (after a little work)
 * their own count.  One of them, the victim, loops until it is killed;
 * the others do ITERS sections each.  Invariants checked every round:
 *  - every survivor finishes, within its timeouts, with no unexpected error;
 *  - a victim killed inside the section surfaces as exactly one -EOWNERDEAD
 *    (to a survivor or to the parent's check), never more than one a round;
 *  - the repairer finds the counter ahead of the counts by 0 or 1, never
 *    more (more would mean two holders at once), and repairs it;
 *  - afterwards the counter equals the sum of the per-worker counts, and
 *    the lock still works (acquire, EDEADLK, release, try-acquire).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#include "chaos.h"

#define WORKERS 3
#define ITERS   300
#define SECTION_WORK 64

/* Exit codes of a worker. */
enum { LW_OK = 0, LW_OPEN = 10, LW_ACQUIRE = 11, LW_RELEASE = 12, LW_REPAIR = 13 };

struct lock_state {
	uint64_t counter;
	uint64_t count[WORKERS];
	uint32_t inside[WORKERS];   /* set after acquire, cleared before release */
	uint32_t ownerdead;         /* -EOWNERDEAD seen this round */
	uint32_t bad_repair;        /* a repair found counter - sum outside {0, 1} */
	uint32_t repairs_fixed;     /* repairs that found counter = sum + 1 */
	int32_t last_error;
};

struct lock_ctx {
	struct chaos c;
	char name[96];
	shmq_region *r;
	shmq_lock *l;
	struct lock_state *s;
	unsigned victim;
};

static uint64_t sum_counts(const struct lock_state *s)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < WORKERS; i++)
		sum += __atomic_load_n(&s->count[i], __ATOMIC_RELAXED);
	return sum;
}

/* The holder after a dead one: the counter is at most one ahead. */
static void repair(struct lock_state *s)
{
	uint64_t sum = sum_counts(s);
	uint64_t ctr = __atomic_load_n(&s->counter, __ATOMIC_RELAXED);

	__atomic_add_fetch(&s->ownerdead, 1, __ATOMIC_SEQ_CST);
	if (ctr != sum && ctr != sum + 1)
		__atomic_add_fetch(&s->bad_repair, 1, __ATOMIC_SEQ_CST);
	if (ctr == sum + 1)
		__atomic_add_fetch(&s->repairs_fixed, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&s->counter, sum, __ATOMIC_RELAXED);
}

/* One critical section: counter first, own count last, work between. */
static int section(shmq_lock *l, struct lock_state *s, unsigned idx)
{
	uint64_t x = 0;
	int rc = shmq_lock_acquire(l, 5000 * CHAOS_MS);

	if (rc == -EOWNERDEAD)
		repair(s);
	else if (rc != 0) {
		s->last_error = rc;
		return LW_ACQUIRE;
	}
	__atomic_store_n(&s->inside[idx], 1, __ATOMIC_RELAXED);
	__atomic_store_n(&s->counter, __atomic_load_n(&s->counter, __ATOMIC_RELAXED) + 1,
			 __ATOMIC_RELAXED);
	for (unsigned k = 0; k < SECTION_WORK; k++)
		__atomic_store_n(&x, x * 31 + k, __ATOMIC_RELAXED);
	__atomic_store_n(&s->count[idx], __atomic_load_n(&s->count[idx], __ATOMIC_RELAXED) + 1,
			 __ATOMIC_RELAXED);
	__atomic_store_n(&s->inside[idx], 0, __ATOMIC_RELAXED);
	rc = shmq_lock_release(l);
	if (rc != 0) {
		s->last_error = rc;
		return LW_RELEASE;
	}
	return LW_OK;
}

static int worker(void *arg, unsigned idx)
{
	struct lock_ctx *x = arg;
	shmq_region *r;
	shmq_lock *l;
	void *mem;
	size_t size;
	int rc = LW_OK;

	if (shmq_region_open(x->name, &r))
		return LW_OPEN;
	if (shmq_lock_open(r, "l", &l) || shmq_region_find(r, "state", &mem, &size))
		return LW_OPEN;
	for (unsigned i = 0; rc == LW_OK && (idx == x->victim || i < ITERS); i++)
		rc = section(l, mem, idx);
	shmq_lock_close(l);
	shmq_region_close(r);
	return rc;
}

/* After the round: take the lock ourselves, repair if needed, check. */
static void check_round(struct lock_ctx *x, bool victim_inside)
{
	struct lock_state *s = x->s;
	int rc = shmq_lock_acquire(x->l, 5000 * CHAOS_MS);

	if (rc == -EOWNERDEAD)
		repair(s);
	else
		assert_int_equal(rc, 0);
	assert_int_equal(shmq_lock_acquire(x->l, SHMQ_NOWAIT), -EDEADLK);
	assert_int_equal(s->bad_repair, 0);
	assert_true(s->ownerdead <= 1);
	if (victim_inside)
		assert_int_equal(s->ownerdead, 1);
	assert_int_equal(s->counter, sum_counts(s));
	assert_int_equal(shmq_lock_release(x->l), 0);
	assert_int_equal(shmq_lock_release(x->l), -EPERM);
	assert_int_equal(shmq_lock_acquire(x->l, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_lock_release(x->l), 0);
}

static void run_round(struct lock_ctx *x, unsigned long *inside_kills, unsigned long *ownerdead)
{
	pid_t pid[WORKERS];
	uint64_t before[WORKERS];
	bool inside = false;

	x->victim = (unsigned)chaos_rand(&x->c, WORKERS);
	int st = 0;

	x->s->ownerdead = 0;
	for (unsigned i = 0; i < WORKERS; i++) {
		x->s->inside[i] = 0;
		before[i] = x->s->count[i];
		pid[i] = chaos_fork(&x->c, worker, x, i, i == x->victim);
		assert_true(pid[i] > 0);
	}
	if (chaos_strike(&x->c, pid[x->victim], (int64_t)chaos_rand(&x->c, 8 * CHAOS_MS), &st)) {
		inside = __atomic_load_n(&x->s->inside[x->victim], __ATOMIC_SEQ_CST) != 0;
		*inside_kills += inside;
	} else {
		fprintf(stderr, "victim exited by itself: status 0x%x (last error %d)\n", st,
			x->s->last_error);
		fail();
	}
	for (unsigned i = 0; i < WORKERS; i++) {
		if (i == x->victim)
			continue;
		int code = chaos_reap(pid[i], 60000 * CHAOS_MS);

		if (code != 0)
			fprintf(stderr, "worker %u: exit %d (last error %d)\n", i, code,
				x->s->last_error);
		assert_int_equal(code, 0);
		assert_int_equal(x->s->count[i] - before[i], ITERS);
	}
	check_round(x, inside);
	*ownerdead += x->s->ownerdead;
}

static void chaos_lock(void **state)
{
	struct lock_ctx x;
	struct shmq_region_opts o = { .size = (size_t)256 << 10 };
	unsigned long inside_kills = 0, ownerdead = 0;
	void *mem;

	(void)state;
	memset(&x, 0, sizeof(x));
	chaos_init(&x.c, "lock", 60);
	chaos_region_name(x.name, sizeof(x.name), "lock");
	assert_int_equal(shmq_region_create(x.name, &o, &x.r), 0);
	assert_int_equal(shmq_lock_create(x.r, "l", &x.l), 0);
	assert_int_equal(shmq_region_alloc(x.r, "state", sizeof(struct lock_state), &mem), 0);
	x.s = mem;
	while (chaos_next_round(&x.c)) {
		run_round(&x, &inside_kills, &ownerdead);
		x.c.rounds_done++;
	}
	chaos_report(&x.c);
	printf("chaos lock: killed inside the section %lu times, -EOWNERDEAD surfaced %lu times, "
	       "counter %llu == sum of counts\n",
	       inside_kills, ownerdead, (unsigned long long)x.s->counter);
	shmq_lock_close(x.l);
	shmq_region_close(x.r);
	shmq_region_unlink(x.name);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(chaos_lock),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
