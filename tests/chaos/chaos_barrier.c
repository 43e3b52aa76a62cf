/* SPDX-License-Identifier: MIT */
/*
 * Chaos: a barrier party killed at a random instruction, mid-wait.
 *
 * Each round forks PARTIES processes that pass the barrier generation after
 * generation, each wait with a timeout of WAIT_MS.  One of them, the victim,
 * is stopped at a random instruction and SIGKILLed.  Invariants:
 *  - within a generation the arrival indices are distinct (never two alike);
 *  - every survivor's last wait fails with -ETIMEDOUT or -EPIPE, at least one
 *    of them with -ETIMEDOUT (someone's timeout is what breaks it), and no
 *    failing wait takes longer than its timeout plus a scheduling margin;
 *  - the barrier reads as broken; after shmq_barrier_reset a fresh set of
 *    parties passes REUSE_GENS generations with distinct indices.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"

#include "chaos.h"

#define PARTIES    3
#define WAIT_MS    100
#define MAX_GENS   4096
#define REUSE_GENS 20
/* A failing wait may end this much after its timeout on a loaded 2-core box
 * with a sibling under ptrace (the assertion is "bounded", not "fast"). */
#define LATE_MS    2000

enum { B_OK = 0, B_OPEN = 10, B_DUP = 11, B_ERR = 12, B_LATE = 13 };

struct barrier_state {
	uint32_t mask[MAX_GENS];    /* arrival indices seen per generation */
	int32_t last_rc[PARTIES];   /* each party's failing wait */
	int64_t late_ns[PARTIES];   /* ... and how late it was past its timeout */
	uint32_t gens[PARTIES];     /* generations passed */
};

struct barrier_ctx {
	struct chaos c;
	char name[96];
	shmq_region *r;
	shmq_barrier *b;
	struct barrier_state *s;
	unsigned victim;
	bool reuse;                 /* the after-reset pass: must never fail */
};

/* Record the arrival index of generation gen; false on a duplicate. */
static bool note_index(struct barrier_state *s, unsigned gen, int idx)
{
	uint32_t bit = 1u << idx;

	if (gen >= MAX_GENS)
		return true;
	return (__atomic_fetch_or(&s->mask[gen], bit, __ATOMIC_SEQ_CST) & bit) == 0;
}

static int party_loop(struct barrier_ctx *x, shmq_barrier *b, unsigned idx)
{
	struct barrier_state *s = x->s;
	unsigned limit = x->reuse ? REUSE_GENS : UINT32_MAX;
	int64_t timeout = x->reuse ? 10000 * CHAOS_MS : WAIT_MS * CHAOS_MS;

	for (unsigned gen = 0; gen < limit; gen++) {
		int64_t t0 = chaos_now();
		int rc = shmq_barrier_wait(b, timeout);

		if (rc < 0) {
			int64_t late = chaos_now() - t0 - timeout;

			s->last_rc[idx] = rc;
			s->late_ns[idx] = late;
			if (x->reuse || (rc != -ETIMEDOUT && rc != -EPIPE))
				return B_ERR;
			return late > LATE_MS * CHAOS_MS ? B_LATE : B_OK;
		}
		if (rc >= PARTIES || !note_index(s, gen, rc))
			return B_DUP;
		s->gens[idx] = gen + 1;
	}
	return B_OK;
}

static int party(void *arg, unsigned idx)
{
	struct barrier_ctx *x = arg;
	shmq_region *r;
	shmq_barrier *b;
	int rc;

	if (shmq_region_open(x->name, &r))
		return B_OPEN;
	if (shmq_barrier_open(r, "b", &b))
		return B_OPEN;
	rc = party_loop(x, b, idx);
	shmq_barrier_close(b);
	shmq_region_close(r);
	return rc;
}

static void reset_state(struct barrier_state *s)
{
	memset(s, 0, sizeof(*s));
}

static void fork_all(struct barrier_ctx *x, pid_t *pid, bool with_victim)
{
	for (unsigned i = 0; i < PARTIES; i++) {
		pid[i] = chaos_fork(&x->c, party, x, i, with_victim && i == x->victim);
		assert_true(pid[i] > 0);
	}
}

/* Reset, then a full set of fresh parties must pass REUSE_GENS generations. */
static void check_reuse(struct barrier_ctx *x)
{
	pid_t pid[PARTIES];

	assert_int_equal(shmq_barrier_reset(x->b), 0);
	assert_false(shmq_barrier_broken(x->b));
	reset_state(x->s);
	x->reuse = true;
	fork_all(x, pid, false);
	for (unsigned i = 0; i < PARTIES; i++)
		assert_int_equal(chaos_reap(pid[i], 60000 * CHAOS_MS), 0);
	x->reuse = false;
	for (unsigned g = 0; g < REUSE_GENS; g++)
		assert_int_equal(x->s->mask[g], (1u << PARTIES) - 1);
}

static void run_round(struct barrier_ctx *x, int64_t *max_late, unsigned long *timeouts)
{
	pid_t pid[PARTIES];
	unsigned timed_out = 0;
	int st = 0;

	reset_state(x->s);
	x->victim = (unsigned)chaos_rand(&x->c, PARTIES);
	fork_all(x, pid, true);
	bool struck = chaos_strike(&x->c, pid[x->victim], (int64_t)chaos_rand(&x->c, 20 * CHAOS_MS),
				   &st);

	/* On a loaded machine the victim can time out at the barrier (a party
	 * not yet scheduled) and leave before the strike: then it must have
	 * left cleanly, and it counts among the parties below. */
	if (!struck && st != 0) {
		fprintf(stderr, "victim exited by itself: %d\n", st);
		fail();
	}
	/* The victim may itself have timed out (and broken the barrier) before
	 * the strike, or even been killed just after breaking it and before
	 * noting its rc: then every survivor sees -EPIPE and none times out. */
	timed_out += x->s->last_rc[x->victim] == -ETIMEDOUT;
	for (unsigned i = 0; i < PARTIES; i++) {
		if (i == x->victim)
			continue;
		int code = chaos_reap(pid[i], 60000 * CHAOS_MS);

		if (code != 0)
			fprintf(stderr, "party %u: exit %d, last rc %d, %lld ns late\n", i, code,
				x->s->last_rc[i], (long long)x->s->late_ns[i]);
		assert_int_equal(code, 0);
		timed_out += x->s->last_rc[i] == -ETIMEDOUT;
		if (x->s->late_ns[i] > *max_late)
			*max_late = x->s->late_ns[i];
	}
	*timeouts += timed_out;
	assert_true(shmq_barrier_broken(x->b));
	assert_int_equal(shmq_barrier_wait(x->b, SHMQ_NOWAIT), -EPIPE);
	check_reuse(x);
}

static void chaos_barrier(void **state)
{
	struct barrier_ctx x;
	struct shmq_region_opts o = { .size = (size_t)256 << 10 };
	int64_t max_late = 0;
	unsigned long timeouts = 0;
	void *mem;

	(void)state;
	memset(&x, 0, sizeof(x));
	chaos_init(&x.c, "barrier", 50);
	chaos_region_name(x.name, sizeof(x.name), "barrier");
	assert_int_equal(shmq_region_create(x.name, &o, &x.r), 0);
	assert_int_equal(shmq_barrier_create(x.r, "b", PARTIES, &x.b), 0);
	assert_int_equal(shmq_region_alloc(x.r, "state", sizeof(struct barrier_state), &mem), 0);
	x.s = mem;
	while (chaos_next_round(&x.c)) {
		run_round(&x, &max_late, &timeouts);
		x.c.rounds_done++;
	}
	chaos_report(&x.c);
	printf("chaos barrier: %lu survivor timeouts, worst failing wait %.1f ms past its %d ms "
	       "timeout, reset + reuse passed every round\n",
	       timeouts, (double)max_late / 1e6, WAIT_MS);
	shmq_barrier_close(x.b);
	shmq_region_close(x.r);
	shmq_region_unlink(x.name);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(chaos_barrier),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
