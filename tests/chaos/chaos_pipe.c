/* SPDX-License-Identifier: MIT */
/*
 * Chaos: one end of a pipe killed at a random instruction mid-traffic.
 *
 * Each round creates a fresh pipe (a closed end stays closed) with a small
 * ring, forks a producer holding end 0 and a consumer holding end 1, and
 * kills one of them at a random instruction.
 *  - Producer killed: the consumer receives a gapless, duplicate-free prefix
 *    of the sequence (every message checksummed), including every message
 *    whose send had returned, and then -EPIPE, within a bound of the kill
 *    (never -ETIMEDOUT).
 *  - Consumer killed: the producer's send returns -EPIPE within a bound (it
 *    fills the ring, then must notice the dead reader).
 * The producer and consumer alternate as victims at random.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"

#include "chaos.h"
#include "core/hash_int.h"

#define CAPACITY 1024
#define MAX_PAY  200
#define OP_NS    (10000 * CHAOS_MS)
/* -EPIPE must come this soon after the death (the library promises about
 * 20 ms for a waiting peer; the rest is margin for a loaded box). */
#define PROMPT_NS (3000 * CHAOS_MS)

enum { P_OK = 0, P_OPEN = 10, P_SEND = 11, P_RECV = 12, P_GAP = 13, P_SUM = 14 };

struct pipe_state {
	uint64_t committed;  /* sends that returned 0 */
	uint64_t received;   /* messages the consumer received */
	int64_t epipe_at;    /* when the survivor saw -EPIPE */
	uint32_t opened;     /* ends opened by the children */
	int32_t last_error[2];
	char pipe_name[32];
};

struct pipe_ctx {
	struct chaos c;
	char name[96];
	shmq_region *r;
	struct pipe_state *s;
	unsigned victim; /* 0 producer, 1 consumer */
};

static size_t msg_fill(uint8_t *buf, uint64_t seq)
{
	size_t len = 16 + seq % (MAX_PAY - 16 + 1);
	uint64_t h;

	memcpy(buf, &seq, 8);
	for (size_t i = 16; i < len; i++)
		buf[i] = (uint8_t)(seq * 13 + i);
	h = shmq__fnv1a64_step(SHMQ__FNV64_OFFSET ^ seq, buf + 16, len - 16);
	memcpy(buf + 8, &h, 8);
	return len;
}

static bool msg_ok(const uint8_t *buf, ssize_t n, uint64_t seq)
{
	uint8_t want[MAX_PAY];

	return n >= 16 && (size_t)n == msg_fill(want, seq) && memcmp(buf, want, (size_t)n) == 0;
}

static shmq_pipe *open_end(struct pipe_ctx *x, shmq_region **r, int end)
{
	shmq_pipe *p;

	if (shmq_region_open(x->name, r))
		return NULL;
	if (shmq_pipe_open(*r, x->s->pipe_name, end, &p))
		return NULL;
	__atomic_add_fetch(&x->s->opened, 1, __ATOMIC_SEQ_CST);
	return p;
}

static int producer(struct pipe_ctx *x, shmq_pipe *p)
{
	uint8_t buf[MAX_PAY];

	for (uint64_t seq = 0;; seq++) {
		int rc = shmq_pipe_send(p, buf, msg_fill(buf, seq), OP_NS);

		if (rc == -EPIPE && x->victim == 1) {
			x->s->epipe_at = chaos_now();
			return P_OK;
		}
		if (rc) {
			x->s->last_error[0] = rc;
			return P_SEND;
		}
		__atomic_store_n(&x->s->committed, seq + 1, __ATOMIC_SEQ_CST);
	}
}

static int consumer(struct pipe_ctx *x, shmq_pipe *p)
{
	uint8_t buf[MAX_PAY];

	for (uint64_t seq = 0;; seq++) {
		ssize_t n = shmq_pipe_recv(p, buf, sizeof(buf), OP_NS);

		if (n == -EPIPE && x->victim == 0) {
			x->s->epipe_at = chaos_now();
			return P_OK;
		}
		if (n < 0) {
			x->s->last_error[1] = (int32_t)n;
			return P_RECV;
		}
		if (!msg_ok(buf, n, seq))
			return P_GAP;
		__atomic_store_n(&x->s->received, seq + 1, __ATOMIC_SEQ_CST);
	}
}

static int participant(void *arg, unsigned idx)
{
	struct pipe_ctx *x = arg;
	shmq_region *r;
	shmq_pipe *p = open_end(x, &r, (int)idx);
	int rc;

	if (!p)
		return P_OPEN;
	rc = idx == 0 ? producer(x, p) : consumer(x, p);
	shmq_pipe_close(p);
	shmq_region_close(r);
	return rc;
}

static void run_round(struct pipe_ctx *x, unsigned long *producer_victims, int64_t *worst)
{
	struct shmq_pipe_opts o = { .capacity = CAPACITY };
	shmq_pipe *e0, *e1;
	pid_t pid[2];
	int64_t killed_at, deadline = chaos_now() + OP_NS;
	unsigned survivor;
	int st = 0, code;

	void *mem;

	/* a region per round: a closed end stays closed, and pipes are never freed */
	chaos_region_name(x->name, sizeof(x->name), "pipe");
	assert_int_equal(shmq_region_create(x->name, &(struct shmq_region_opts){ .size = (size_t)256 << 10 },
					    &x->r),
			 0);
	assert_int_equal(shmq_region_alloc(x->r, "state", sizeof(struct pipe_state), &mem), 0);
	x->s = mem;
	snprintf(x->s->pipe_name, sizeof(x->s->pipe_name), "p%u", x->c.rounds_done);
	assert_int_equal(shmq_pipe_create(x->r, x->s->pipe_name, &o, &e0, &e1), 0);
	x->victim = (unsigned)chaos_rand(&x->c, 2);
	survivor = 1 - x->victim;
	*producer_victims += x->victim == 0;
	for (unsigned i = 0; i < 2; i++) {
		pid[i] = chaos_fork(&x->c, participant, x, i, i == x->victim);
		assert_true(pid[i] > 0);
	}
	/* the ends count as ours until the children have opened them */
	while (__atomic_load_n(&x->s->opened, __ATOMIC_SEQ_CST) < 2 && chaos_now() < deadline)
		chaos_sleep(CHAOS_MS / 4);
	shmq_pipe_close(e0);
	shmq_pipe_close(e1);
	if (!chaos_strike(&x->c, pid[x->victim], (int64_t)chaos_rand(&x->c, 10 * CHAOS_MS), &st)) {
		fprintf(stderr, "victim exited by itself: %d (last errors %d %d)\n", st,
			x->s->last_error[0], x->s->last_error[1]);
		fail();
	}
	killed_at = chaos_now();
	code = chaos_reap(pid[survivor], 60000 * CHAOS_MS);
	if (code != 0)
		fprintf(stderr, "round %u: survivor %u exit %d (last errors %d %d)\n",
			x->c.rounds_done, survivor, code, x->s->last_error[0], x->s->last_error[1]);
	assert_int_equal(code, 0);
	assert_true(x->s->epipe_at > 0);
	assert_true(x->s->epipe_at - killed_at < PROMPT_NS);
	if (x->s->epipe_at - killed_at > *worst)
		*worst = x->s->epipe_at - killed_at;
	if (x->victim == 0) /* every committed message, at most one in flight beyond */
		assert_true(x->s->received >= x->s->committed &&
			    x->s->received <= x->s->committed + 1);
	else
		assert_true(x->s->received <= x->s->committed);
	shmq_region_close(x->r);
	shmq_region_unlink(x->name);
}

static void chaos_pipe(void **state)
{
	struct pipe_ctx x;
	unsigned long producer_victims = 0;
	int64_t worst = 0;

	(void)state;
	memset(&x, 0, sizeof(x));
	chaos_init(&x.c, "pipe", 60);
	while (chaos_next_round(&x.c)) {
		run_round(&x, &producer_victims, &worst);
		x.c.rounds_done++;
	}
	chaos_report(&x.c);
	printf("chaos pipe: %lu producer and %lu consumer victims; every survivor got -EPIPE, the "
	       "last %.1f ms after the kill at worst; received a gapless checksummed prefix\n",
	       producer_victims, x.c.rounds_done - producer_victims, (double)worst / 1e6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(chaos_pipe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
