/* SPDX-License-Identifier: MIT */
/*
 * The queue's sleepers and its publishers' release stores (chan/queue.c,
 * Protocol WAKE_PENDING; core/wait_int.h, Asymmetric fences): a sleeper
 * runs membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) after it counted itself
 * in and before its re-check and its futex wait (on the first of a run of
 * sleeps: Protocol FENCED), and where the kernel refuses membarrier it
 * sleeps short slices.  tests/syscall_spy.h counts
 * and refuses the calls.  Every blocking call here sleeps at once
 * (SHMQ_SPIN=0, set before the library reads it).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "testutil.h"

#include "core/atomic_int.h"
#include "core/objkind_int.h"
#include "core/region_int.h"
#include "core/time_int.h"
#include "core/wait_int.h"
#include "ring/mpmc_int.h"

#include "syscall_spy.h"

static int setup(void **state)
{
	return tu_region_setup(state, "qwake", (size_t)1 << 20);
}

static int teardown(void **state)
{
	return tu_region_teardown(state);
}

static struct shmq__mpmc_shared *ring_of(struct tu_region *f, const char *name)
{
	uint64_t size;
	void *mem;

	assert_int_equal(shmq__obj_find(f->r, name, SHMQ__OBJ_QUEUE, &mem, &size), 0);
	return mem;
}

/* What the first fence saw: the sleeper already counted in, no futex wait
 * of this sleep entered yet. */
static struct shmq__mpmc_shared *watched;
static uint32_t seen_sleepers = UINT32_MAX;
static uint64_t seen_waits = UINT64_MAX;

static void at_fence(void)
{
	if (__atomic_load_n(&seen_sleepers, __ATOMIC_SEQ_CST) != UINT32_MAX)
		return;
	__atomic_store_n(&seen_waits, __atomic_load_n(&watched->get_waits, __ATOMIC_SEQ_CST),
			 __ATOMIC_SEQ_CST);
	__atomic_store_n(&seen_sleepers, __atomic_load_n(&watched->data_sleepers, __ATOMIC_SEQ_CST),
			 __ATOMIC_SEQ_CST);
}

struct getter {
	shmq_queue *q;
	int64_t timeout;
	ssize_t rc;
	char buf[16];
};

static void *get_thread(void *arg)
{
	struct getter *g = arg;

	g->rc = shmq_queue_get(g->q, g->buf, sizeof(g->buf), g->timeout);
	return NULL;
}

/* Wait (bounded) until the ring's getters entered n futex waits. */
static void await_waits(struct shmq__mpmc_shared *sh, uint64_t n)
{
	int64_t give_up = shmq_now_ns() + 10 * SHMQ__NS_PER_SEC;

	while (__atomic_load_n(&sh->get_waits, __ATOMIC_SEQ_CST) < n) {
		assert_true(shmq_now_ns() < give_up);
		usleep(200);
	}
}

/* A getter that sleeps fences first: once, after counting itself in and
 * before its futex wait, so a publisher's release store and relaxed look
 * at the sleepers cannot both miss it.  Its put then wakes it. */
static void test_sleeper_fences_before_waiting(void **state)
{
	struct tu_region *f = *state;
	struct getter g = { .timeout = 10 * SHMQ__NS_PER_SEC };
	pthread_t th;
	unsigned long f0;

	if (shmq__remote_fence_register())
		skip(); /* no membarrier here: publishers are strong */
	assert_int_equal(shmq_queue_create(f->r, "w", &(struct shmq_queue_opts){ 4, 16, 0 }, &g.q), 0);
	watched = ring_of(f, "w");
	f0 = spy_fence_count();
	__atomic_store_n(&spy_fence_hook, at_fence, __ATOMIC_SEQ_CST);
	assert_int_equal(pthread_create(&th, NULL, get_thread, &g), 0);
	await_waits(watched, 1);
	assert_int_equal(spy_fence_count() - f0, 1);
	assert_int_equal(__atomic_load_n(&seen_sleepers, __ATOMIC_SEQ_CST), 1);
	assert_int_equal(__atomic_load_n(&seen_waits, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(shmq_queue_put(g.q, "wake", 4, SHMQ_NOWAIT), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	__atomic_store_n(&spy_fence_hook, NULL, __ATOMIC_SEQ_CST);
	assert_int_equal(g.rc, 4);
	assert_memory_equal(g.buf, "wake", 4);
	shmq_queue_close(g.q);
}

/* Where the kernel refuses membarrier the handle publishes with seq_cst and
 * a sleeper, having no fence, bounds each sleep by
 * SHMQ__UNFENCED_SLICE_NS (a fenced sleep's slice is 15 ms): no sleep of a
 * 150 ms wait is set to end further ahead, and a put still wakes a
 * sleeping getter. */
static void test_no_membarrier_short_sleeps(void **state)
{
	struct tu_region *f = *state;
	struct getter g = { .timeout = 10 * SHMQ__NS_PER_SEC };
	struct shmq__mpmc_shared *sh;
	char buf[16];
	pthread_t th;
	uint64_t w0;

	__atomic_store_n(&spy_refuse_membarrier, true, __ATOMIC_SEQ_CST);
	assert_int_equal(shmq_queue_create(f->r, "n", &(struct shmq_queue_opts){ 4, 16, 0 }, &g.q), 0);
	sh = ring_of(f, "n");
	w0 = __atomic_load_n(&sh->get_waits, __ATOMIC_SEQ_CST);
	/* (by the timeouts the sleeps were given, not by how many fit in
	 * 150 ms: a loaded machine wakes a sleeper late) */
	__atomic_store_n(&spy_sleep_max_ns, 0, __ATOMIC_SEQ_CST);
	assert_int_equal(shmq_queue_get(g.q, buf, sizeof(buf), 150 * 1000 * 1000), -ETIMEDOUT);
	assert_true(__atomic_load_n(&sh->get_waits, __ATOMIC_SEQ_CST) - w0 >= 1);
	assert_true(__atomic_load_n(&spy_sleep_max_ns, __ATOMIC_SEQ_CST) > 0);
	assert_true(__atomic_load_n(&spy_sleep_max_ns, __ATOMIC_SEQ_CST) <= SHMQ__UNFENCED_SLICE_NS);
	w0 = __atomic_load_n(&sh->get_waits, __ATOMIC_SEQ_CST);
	assert_int_equal(pthread_create(&th, NULL, get_thread, &g), 0);
	await_waits(sh, w0 + 1);
	assert_int_equal(shmq_queue_put(g.q, "wake", 4, SHMQ_NOWAIT), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(g.rc, 4);
	shmq_queue_close(g.q);
	__atomic_store_n(&spy_refuse_membarrier, false, __ATOMIC_SEQ_CST);
}

static uint32_t fence_word(struct shmq__mpmc_shared *sh)
{
	return __atomic_load_n(&sh->data_fence, __ATOMIC_SEQ_CST);
}

/* Protocol FENCED (core/wait_int.h): the first sleep runs the membarrier
 * and leaves the side FENCED, so the next sleeps run none; publications
 * that find nobody asleep drop the mode once SHMQ__FW_IDLE_MAX of them passed,
 * and the next sleep runs it again. */
/* Long enough that each get sleeps (and fences) however late it starts: a
 * get whose deadline passed before it slept returns before any fence. */
#define FENCED_GET_NS (200 * 1000 * 1000)

static void test_fenced_mode(void **state)
{
	struct tu_region *f = *state;
	struct shmq__mpmc_shared *sh;
	char buf[16];
	unsigned long f0;
	shmq_queue *q;

	if (shmq__remote_fence_register())
		skip();
	assert_int_equal(shmq_queue_create(f->r, "m", &(struct shmq_queue_opts){ 4, 16, 0 }, &q), 0);
	sh = ring_of(f, "m");
	f0 = spy_fence_count();
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), FENCED_GET_NS), -ETIMEDOUT);
	assert_int_equal(spy_fence_count() - f0, 1);
	assert_int_equal(fence_word(sh) & (SHMQ__FW_FENCED | SHMQ__FW_VERIFIED),
			 SHMQ__FW_FENCED | SHMQ__FW_VERIFIED);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), FENCED_GET_NS), -ETIMEDOUT);
	assert_int_equal(spy_fence_count() - f0, 1);
	for (unsigned i = 0; i < SHMQ__FW_IDLE_MAX + 1; i++) {
		assert_int_equal(shmq_queue_put(q, "x", 1, SHMQ_NOWAIT), 0);
		assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), 1);
	}
	assert_int_equal(fence_word(sh) & (SHMQ__FW_FENCED | SHMQ__FW_VERIFIED), 0);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), FENCED_GET_NS), -ETIMEDOUT);
	assert_int_equal(spy_fence_count() - f0, 2);
	shmq_queue_close(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sleeper_fences_before_waiting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fenced_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_membarrier_short_sleeps, setup, teardown),
	};

	if (setenv("SHMQ_SPIN", "0", 1))
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
