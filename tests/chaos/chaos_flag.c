/* SPDX-License-Identifier: MIT */
/*
 * Chaos: a flag whose setter or one of whose waiters dies at a random
 * instruction.
 *
 * Each round clears the flag and forks a setter and WAITERS waiters.  The
 * setter sleeps a random moment, then toggles the flag (set, clear, ...)
 * a random number of times and leaves it set; the waiters wait once each
 * (timeout WAIT_MS).  The victim is one of them: a victim setter toggles
 * until it is killed (so it may die inside set or clear, with the flag
 * either way), a victim waiter waits again and again until it is killed
 * (inside a spin, a futex sleep, or the return path).  Invariants:
 *  - no lost wake: every surviving waiter's wait returns 0, whether it saw
 *    the flag set or only its epoch move (a set then a clear), and within
 *    LATE_MS of the set that left the flag set (not at its own deadline);
 *  - after a dead setter, every survivor returns within LATE_MS, also when
 *    it died between its CAS and its wake (then the parent's set finds the
 *    flag set and wakes nobody: the waiters' sleep slices release them);
 *  - a dead waiter (its sleeper count possibly left raised) changes
 *    nothing for the others; afterwards the flag still works: clear, a
 *    try-wait fails, set, a try-wait succeeds.
 * The parent's set after a live setter finds the flag set already and
 * wakes nobody, so it cannot hide a wake the setter lost.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"

#include "chaos.h"

#define WAITERS  3
#define PARTIES  (WAITERS + 1) /* index WAITERS is the setter */
#define WAIT_MS  5000
#define TOGGLES  16
/* "Promptly" on a loaded 2-core box with a sibling under ptrace; a lost
 * wake shows as WAIT_MS (the deadline's last look then finds the flag set). */
#define LATE_MS  2000

enum { FW_OK = 0, FW_OPEN = 10, FW_WAIT = 11, FW_SET = 12 };

struct flag_state {
	int32_t rc[PARTIES];     /* each waiter's wait */
	uint32_t waited[PARTIES];
	int64_t woke_ns[PARTIES]; /* when each waiter's wait returned */
	int64_t set_ns;          /* when the set that left the flag set was made */
	uint32_t toggles;        /* sets made by the setter */
	uint64_t seed;           /* the setter's timing */
};

struct flag_ctx {
	struct chaos c;
	char name[96];
	shmq_region *r;
	shmq_flag *f;
	struct flag_state *s;
	unsigned victim;
};

static int setter(struct flag_ctx *x, shmq_flag *f, bool victim)
{
	uint64_t rnd = x->s->seed;
	unsigned n = 1 + (unsigned)(rnd % TOGGLES);

	chaos_sleep((int64_t)((rnd >> 8) % (3 * CHAOS_MS)));
	for (unsigned i = 0; victim || i < n; i++) {
		if (shmq_flag_set(f))
			return FW_SET;
		__atomic_add_fetch(&x->s->toggles, 1, __ATOMIC_RELAXED);
		if (!victim && i + 1 == n) {
			x->s->set_ns = chaos_now();
			break; /* leave it set */
		}
		if ((rnd >> (16 + i % 32)) & 1)
			chaos_sleep(50000); /* let waiters fall asleep sometimes */
		if (shmq_flag_clear(f))
			return FW_SET;
	}
	return FW_OK;
}

static int waiter(struct flag_ctx *x, shmq_flag *f, unsigned idx, bool victim)
{
	do {
		int rc = shmq_flag_wait(f, WAIT_MS * CHAOS_MS);

		x->s->woke_ns[idx] = chaos_now();
		x->s->rc[idx] = rc;
		__atomic_add_fetch(&x->s->waited[idx], 1, __ATOMIC_RELAXED);
		if (rc)
			return FW_WAIT;
	} while (victim);
	return FW_OK;
}

static int party(void *arg, unsigned idx)
{
	struct flag_ctx *x = arg;
	shmq_region *r;
	shmq_flag *f;
	int rc;

	if (shmq_region_open(x->name, &r))
		return FW_OPEN;
	if (shmq_flag_open(r, "f", &f))
		return FW_OPEN;
	if (idx == WAITERS)
		rc = setter(x, f, idx == x->victim);
	else
		rc = waiter(x, f, idx, idx == x->victim);
	shmq_flag_close(f);
	shmq_region_close(r);
	return rc;
}

static void check_reuse(struct flag_ctx *x)
{
	assert_int_equal(shmq_flag_clear(x->f), 0);
	assert_false(shmq_flag_is_set(x->f));
	assert_int_equal(shmq_flag_wait(x->f, SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(shmq_flag_set(x->f), 0);
	assert_true(shmq_flag_is_set(x->f));
	assert_int_equal(shmq_flag_wait(x->f, SHMQ_NOWAIT), 0);
}

static void run_round(struct flag_ctx *x, unsigned long *setter_kills)
{
	pid_t pid[PARTIES];
	int st = 0;

	assert_int_equal(shmq_flag_clear(x->f), 0);
	memset(x->s, 0, sizeof(*x->s));
	x->s->seed = chaos_rand(&x->c, UINT64_MAX);
	x->victim = (unsigned)chaos_rand(&x->c, PARTIES);
	for (unsigned i = 0; i < PARTIES; i++) {
		pid[i] = chaos_fork(&x->c, party, x, i, i == x->victim);
		assert_true(pid[i] > 0);
	}
	if (!chaos_strike(&x->c, pid[x->victim], (int64_t)chaos_rand(&x->c, 10 * CHAOS_MS), &st)) {
		fprintf(stderr, "victim %u exited by itself: status 0x%x\n", x->victim, st);
		fail();
	}
	if (x->victim == WAITERS) {
		/* the setter died, the flag either way: one set releases all */
		*setter_kills += 1;
		x->s->set_ns = chaos_now();
		assert_int_equal(shmq_flag_set(x->f), 0);
	} else {
		/* a live setter leaves the flag set: wait for it, then our
		 * set is a no-op that wakes nobody */
		assert_int_equal(chaos_reap(pid[WAITERS], 60000 * CHAOS_MS), 0);
		assert_true(shmq_flag_is_set(x->f));
		assert_int_equal(shmq_flag_set(x->f), 0);
	}
	for (unsigned i = 0; i < WAITERS; i++) {
		if (i == x->victim)
			continue;
		int code = chaos_reap(pid[i], 60000 * CHAOS_MS);

		if (code != 0)
			fprintf(stderr, "waiter %u: exit %d, rc %d (setter made %u sets)\n", i, code,
				x->s->rc[i], x->s->toggles);
		assert_int_equal(code, 0);
		assert_int_equal(x->s->rc[i], 0);
		assert_int_equal(x->s->waited[i], 1);
		/* woken by the set, not by its own deadline's last look */
		if (x->s->woke_ns[i] - x->s->set_ns > LATE_MS * CHAOS_MS)
			fprintf(stderr, "waiter %u: woke %.1f ms after the set\n", i,
				(double)(x->s->woke_ns[i] - x->s->set_ns) / 1e6);
		assert_true(x->s->woke_ns[i] - x->s->set_ns <= LATE_MS * CHAOS_MS);
	}
	check_reuse(x);
}

static void chaos_flag(void **state)
{
	struct flag_ctx x;
	struct shmq_region_opts o = { .size = (size_t)256 << 10 };
	unsigned long setter_kills = 0;
	void *mem;

	(void)state;
	memset(&x, 0, sizeof(x));
	chaos_init(&x.c, "flag", 60);
	chaos_region_name(x.name, sizeof(x.name), "flag");
	assert_int_equal(shmq_region_create(x.name, &o, &x.r), 0);
	assert_int_equal(shmq_flag_create(x.r, "f", &x.f), 0);
	assert_int_equal(shmq_region_alloc(x.r, "state", sizeof(struct flag_state), &mem), 0);
	x.s = mem;
	while (chaos_next_round(&x.c)) {
		run_round(&x, &setter_kills);
		x.c.rounds_done++;
	}
	chaos_report(&x.c);
	printf("chaos flag: setter killed %lu times, waiters %lu times; every surviving waiter "
	       "woken, no lost wake\n",
	       setter_kills, (unsigned long)x.c.rounds_done - setter_kills);
	shmq_flag_close(x.f);
	shmq_region_close(x.r);
	shmq_region_unlink(x.name);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(chaos_flag),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
