/* SPDX-License-Identifier: MIT */
/*
 * The SPSC ring's sleeping consumer and its publisher: how many
 * membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) calls a sleep costs (see
 * "Fenced publishers" in ring/spsc_int.h), counted by tests/syscall_spy.h.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>

#include "testutil.h"

#include "core/atomic_int.h"
#include "core/wait_int.h"
#include "ring/spsc_int.h"

#include "spsc_ring.h"
#include "syscall_spy.h"

static uint64_t cons_waits(struct ring *t)
{
	return shmq__load_seq_cst(&t->p.ring->cons_waits);
}

/* Receive one 8-byte message, sleeping at once (no spin) while the ring is empty. */
static int recv_asleep(struct ring *t, uint64_t *m)
{
	struct shmq__spsc_wait w = { .deadline = 0, .slice_ns = 10000000,
				     .spin = SHMQ__SPSC_NOSPIN };
	ssize_t n;

	w.deadline = shmq_now_ns() + 20 * SHMQ__NS_PER_SEC;
	while ((n = shmq__spsc_recv(&t->c, m, sizeof(*m))) == -EAGAIN) {
		int rc = shmq__spsc_wait_readable(&t->c, &w);

		if (rc)
			return rc;
	}
	return n == (ssize_t)sizeof(*m) ? 0 : -EPROTO;
}

#define RT_N 200

struct pingpong {
	struct ring ping, pong;
};

static void *echo(void *arg)
{
	struct pingpong *pp = arg;

	for (uint64_t i = 0; i < RT_N; i++) {
		uint64_t m;

		if (recv_asleep(&pp->ping, &m) || m != i)
			return (void *)1;
		m = ~m;
		if (shmq__spsc_send(&pp->pong.p, &m, sizeof(m)))
			return (void *)2;
	}
	return NULL;
}

/* A ping-pong whose both sides sleep for every message (spin 0, as the
 * bench's "asleep round trip"): each consumer runs the membarrier on its
 * first sleep only; afterwards its publisher stays fenced, since it finds
 * the consumer armed on every publication.  Before, every sleep ran one
 * (an IPI to every CPU running a registered process): 2 per round trip. */
static void test_asleep_round_trips_one_membarrier(void **state)
{
	struct pingpong pp;
	pthread_t th;
	unsigned long f0;
	uint64_t waits;
	void *ret;

	(void)state;
	if (shmq__remote_fence_register())
		skip(); /* no membarrier: publishers are strong, nothing to count */
	ring_new(&pp.ping, 4096);
	ring_new(&pp.pong, 4096);
	f0 = spy_fence_count();
	assert_int_equal(pthread_create(&th, NULL, echo, &pp), 0);
	for (uint64_t i = 0; i < RT_N; i++) {
		uint64_t m = i;

		assert_int_equal(shmq__spsc_send(&pp.ping.p, &m, sizeof(m)), 0);
		assert_int_equal(recv_asleep(&pp.pong, &m), 0);
		assert_true(m == ~i);
	}
	assert_int_equal(pthread_join(th, &ret), 0);
	assert_null(ret);
	waits = cons_waits(&pp.ping) + cons_waits(&pp.pong);
	/* each side sleeps on nearly every message: generous lower bound */
	assert_true(waits >= RT_N / 4);
	/* one per ring's first sleep; a spare one each if a wake raced */
	assert_true(spy_fence_count() - f0 <= 4);
	ring_free(&pp.ping);
	ring_free(&pp.pong);
}

/* One timed-out sleep of the consumer (it arms, sleeps 1 ms, wakes). */
static void sleep_out(struct ring *t)
{
	struct shmq__spsc_wait w = { .deadline = 0, .slice_ns = 0, .spin = SHMQ__SPSC_NOSPIN };

	w.deadline = shmq_now_ns() + 1000000;
	assert_int_equal(shmq__spsc_wait_readable(&t->c, &w), -ETIMEDOUT);
}

/* A ring of 4096 bytes, or the test skipped where publishers need no fence
 * (no membarrier): the membarrier count to compare with. */
static unsigned long fenced_ring(struct ring *t)
{
	if (shmq__remote_fence_register())
		skip();
	ring_new(t, 4096);
	return spy_fence_count();
}

/* 200 publications, each received before the next (the ring never fills):
 * more than IDLE_MAX (ring/spsc.c) in a row. */
static void pump(struct ring *t)
{
	uint64_t m = 7;

	for (int i = 0; i < 200; i++) {
		assert_int_equal(shmq__spsc_send(&t->p, &m, sizeof(m)), 0);
		assert_int_equal(shmq__spsc_recv(&t->c, &m, sizeof(m)), (ssize_t)sizeof(m));
	}
}

/* Publishers stay fenced only while the consumer keeps sleeping: after a
 * run of publications that found it awake they drop the mode (the flag word
 * goes back to 0, so the send fast path no longer takes the slow path), and
 * the consumer's next sleep runs the membarrier again. */
static void test_fenced_mode_dropped_when_awake(void **state)
{
	struct ring t;
	unsigned long f0;

	(void)state;
	f0 = fenced_ring(&t);
	sleep_out(&t);
	assert_int_equal(spy_fence_count() - f0, 1);
	/* still fenced: the second sleep needs no membarrier */
	sleep_out(&t);
	assert_int_equal(spy_fence_count() - f0, 1);
	assert_true(shmq__load_seq_cst(&t.p.ring->cons_armed) != 0);
	/* the first send takes the wake the timed-out sleeper left armed, the
	 * next ones find it awake; a receive keeps the ring from filling */
	pump(&t);
	assert_int_equal(shmq__load_seq_cst(&t.p.ring->cons_armed), 0);
	sleep_out(&t);
	assert_int_equal(spy_fence_count() - f0, 2);
	ring_free(&t);
}

/* A consumer-side watcher ("Watchers" in ring/spsc_int.h) fences the way a
 * sleeper does: its first entry runs the membarrier and leaves cons_armed
 * FENCED, and the next entries run none.  Publications that find it counted
 * in are not idle, so FENCED stays however many pass; once it left, a run
 * of publications drops the mode and the next entry fences again.  Before,
 * every entry ran one (a waitset counts in for every wait). */
static void test_watcher_fences_once(void **state)
{
	struct ring t;
	unsigned long f0;

	(void)state;
	f0 = fenced_ring(&t);
	shmq__fetch_add_seq_cst(&t.p.ring->cons_watchers, 1);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(shmq__spsc_watch_fence(&t.p.ring->cons_armed), 0);
		assert_int_equal(spy_fence_count() - f0, 1);
	}
	/* the watcher stays counted in: no publication is idle */
	pump(&t);
	assert_true(shmq__load_seq_cst(&t.p.ring->cons_armed) & 2u); /* FENCED */
	assert_int_equal(shmq__spsc_watch_fence(&t.p.ring->cons_armed), 0);
	assert_int_equal(spy_fence_count() - f0, 1);
	/* it left: the publications that follow drop the mode */
	shmq__fetch_sub_seq_cst(&t.p.ring->cons_watchers, 1);
	pump(&t);
	assert_int_equal(shmq__load_seq_cst(&t.p.ring->cons_armed), 0);
	shmq__fetch_add_seq_cst(&t.p.ring->cons_watchers, 1);
	assert_int_equal(shmq__spsc_watch_fence(&t.p.ring->cons_armed), 0);
	assert_int_equal(spy_fence_count() - f0, 2);
	shmq__fetch_sub_seq_cst(&t.p.ring->cons_watchers, 1);
	ring_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_asleep_round_trips_one_membarrier),
		cmocka_unit_test(test_fenced_mode_dropped_when_awake),
		cmocka_unit_test(test_watcher_fences_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
