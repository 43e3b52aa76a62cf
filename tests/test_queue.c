/* SPDX-License-Identifier: MIT */
/* Queues: every error path of API.md, blocking and timeouts, shutdown, bulk
 * and placement calls, 4 producer + 4 consumer processes, and crash rounds
 * that SIGKILL producers and consumers mid-traffic. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <time.h>

#include "testutil.h"

#include "core/atomic_int.h"
#include "ring/mpmc_int.h"
#include "core/region_int.h"
#include "core/watch_int.h"

#ifdef SHMQ_SANITIZED
#define SCALE 5
#else
#define SCALE 1
#endif

static int setup(void **state)
{
	return tu_region_setup(state, "queue", (size_t)16 << 20);
}

/* A child's own attachment: open the region by name, then the queue. */
static shmq_queue *child_open(const char *region, const char *queue, shmq_region **r)
{
	shmq_queue *q;

	if (shmq_region_open(region, r))
		_exit(90);
	if (shmq_queue_open(*r, queue, &q))
		_exit(91);
	return q;
}

static void test_create_open_errors(void **state)
{
	struct tu_region *f = *state;
	struct shmq_queue_stats st;
	shmq_queue *q, *q2;
	void *blob;

	assert_int_equal(shmq_queue_create(f->r, "q.defaults", NULL, &q), 0);
	assert_int_equal(shmq_queue_stats(q, &st), 0);
	assert_int_equal(st.capacity, SHMQ_QUEUE_DEFAULT_CAPACITY);
	assert_int_equal(st.max_msg, SHMQ_QUEUE_DEFAULT_MAX_MSG);
	assert_int_equal(st.len, 0);
	assert_false(st.shut_down);
	assert_int_equal(shmq_queue_create(f->r, "q.defaults", NULL, &q2), -EEXIST);
	assert_int_equal(shmq_queue_open(f->r, "q.defaults", &q2), 0);
	shmq_queue_close(q2);
	shmq_queue_close(q);

	/* zeroed opts mean the defaults; any other capacity is kept exactly */
	assert_int_equal(shmq_queue_create(f->r, "q.zero", &(struct shmq_queue_opts){ 0, 0, 0 }, &q), 0);
	assert_int_equal(shmq_queue_stats(q, &st), 0);
	assert_int_equal(st.capacity, 1024);
	shmq_queue_close(q);
	assert_int_equal(shmq_queue_create(f->r, "q.exact", &(struct shmq_queue_opts){ 1000, 7, 0 }, &q), 0);
	assert_int_equal(shmq_queue_stats(q, &st), 0);
	assert_int_equal(st.capacity, 1000);
	assert_int_equal(st.max_msg, 7);
	shmq_queue_close(q);
	assert_int_equal(shmq_queue_open(f->r, "q.exact", &q), 0);
	assert_int_equal(shmq_queue_stats(q, &st), 0);
	assert_int_equal(st.capacity, 1000);
	shmq_queue_close(q);

	/* huge geometry, bad names, missing objects, wrong types, NULL */
	assert_int_equal(shmq_queue_create(f->r, "q.big", &(struct shmq_queue_opts){ UINT32_MAX, 8, 0 }, &q), -EINVAL);
	assert_int_equal(shmq_queue_create(f->r, "q.big", &(struct shmq_queue_opts){ 8, UINT32_MAX, 0 }, &q), -EINVAL);
	/* a full region: about 8.5 MB each in a 16 MiB region */
	assert_int_equal(shmq_queue_create(f->r, "q.large", &(struct shmq_queue_opts){ 2048, 4096, 0 }, &q), 0);
	shmq_queue_close(q);
	assert_int_equal(shmq_queue_create(f->r, "q.toolarge",
					   &(struct shmq_queue_opts){ 2048, 4096, 0 }, &q), -ENOSPC);
	assert_int_equal(shmq_queue_create(f->r, "bad/name", NULL, &q), -EINVAL);
	assert_int_equal(shmq_queue_create(f->r, "", NULL, &q), -EINVAL);
	assert_int_equal(shmq_queue_create(NULL, "x", NULL, &q), -EINVAL);
	assert_int_equal(shmq_queue_open(f->r, "q.missing", &q), -ENOENT);
	assert_int_equal(shmq__obj_create(f->r, "q.blob", SHMQ__OBJ_BLOB, 64, NULL, NULL, &blob), 0);
	assert_int_equal(shmq_queue_open(f->r, "q.blob", &q), -EINVAL);
	assert_int_equal(shmq_queue_open(NULL, "q.defaults", &q), -EINVAL);
	assert_int_equal(shmq_queue_put(NULL, "x", 1, 0), -EINVAL);
	assert_int_equal(shmq_queue_get(NULL, blob, 1, 0), -EINVAL);
	assert_int_equal(shmq_queue_shutdown(NULL), -EINVAL);
	assert_int_equal(shmq_queue_len(NULL), 0);
	shmq_queue_close(NULL);
}

static void test_put_get_errors(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q;
	char buf[64];

	assert_int_equal(shmq_queue_create(f->r, "q.basic", &(struct shmq_queue_opts){ 4, 16, 0 }, &q), 0);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(shmq_queue_put(q, NULL, 1, SHMQ_NOWAIT), -EINVAL);
	assert_int_equal(shmq_queue_get(q, NULL, 1, SHMQ_NOWAIT), -EINVAL);
	/* longer than max_msg goes through the heap; longer than any region is refused */
	assert_int_equal(shmq_queue_put(q, buf, (size_t)1 << 41, SHMQ_NOWAIT), -EMSGSIZE);
	assert_int_equal(shmq_queue_put(q, "hello", 5, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_queue_put(q, NULL, 0, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_queue_put(q, "0123456789abcdef", 16, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_queue_put(q, "x", 1, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_queue_len(q), 4);
	assert_int_equal(shmq_queue_put(q, "y", 1, SHMQ_NOWAIT), -EAGAIN);
	/* cap too small: -EMSGSIZE, and the message stays queued */
	assert_int_equal(shmq_queue_get(q, buf, 4, SHMQ_NOWAIT), -EMSGSIZE);
	assert_int_equal(shmq_queue_len(q), 4);
	assert_int_equal(shmq_queue_get(q, buf, 5, SHMQ_NOWAIT), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(shmq_queue_get(q, NULL, 0, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_queue_get(q, buf, 15, 1000000), -EMSGSIZE);
	assert_int_equal(shmq_queue_get(q, buf, 16, SHMQ_NOWAIT), 16);
	assert_memory_equal(buf, "0123456789abcdef", 16);
	assert_int_equal(shmq_queue_get(q, buf, 16, SHMQ_FOREVER), 1);
	assert_int_equal(shmq_queue_len(q), 0);
	shmq_queue_close(q);
}

/* ---- exact capacity: a queue of capacity N holds N messages, no more ---- */

struct exact {
	shmq_queue *q;
	uint32_t cap;
	uint64_t in, out; /* messages put and got so far: their sequence numbers */
	uint32_t rng;
};

static uint32_t exact_rand(struct exact *e)
{
	e->rng = e->rng * 1103515245u + 12345u;
	return e->rng >> 8;
}

static size_t exact_msg(char *buf, uint64_t seq)
{
	size_t len = 8 + (size_t)(seq % 9);

	memcpy(buf, &seq, 8);
	memset(buf + 8, (int)(seq & 0xff), len - 8);
	return len;
}

/* One NOWAIT put: 0 while fewer than cap are queued, then -EAGAIN. */
static bool exact_put(struct exact *e)
{
	char buf[16];
	size_t len = exact_msg(buf, e->in);
	int rc = shmq_queue_put(e->q, buf, len, SHMQ_NOWAIT);

	if (e->in - e->out == e->cap) {
		assert_int_equal(rc, -EAGAIN);
		return false;
	}
	assert_int_equal(rc, 0);
	e->in++;
	return true;
}

/* One NOWAIT get: the oldest message, or -EAGAIN when none is queued. */
static bool exact_get(struct exact *e)
{
	char buf[16], want[16];
	ssize_t n = shmq_queue_get(e->q, buf, sizeof(buf), SHMQ_NOWAIT);
	size_t len;

	if (e->in == e->out) {
		assert_int_equal(n, -EAGAIN);
		return false;
	}
	len = exact_msg(want, e->out);
	assert_int_equal(n, (ssize_t)len);
	assert_memory_equal(buf, want, len);
	e->out++;
	return true;
}

/* From wherever the ring stands: exactly cap - queued puts fit, then the
 * next one is refused and len says cap. */
static void exact_fill(struct exact *e)
{
	uint64_t room = e->cap - (e->in - e->out), put = 0;

	while (exact_put(e))
		put++;
	assert_int_equal(put, room);
	assert_int_equal(shmq_queue_len(e->q), e->cap);
}

static void exact_drain(struct exact *e)
{
	uint64_t queued = e->in - e->out, got = 0;

	while (exact_get(e))
		got++;
	assert_int_equal(got, queued);
	assert_int_equal(shmq_queue_len(e->q), 0);
}

static void exact_capacity(struct tu_region *f, uint32_t cap)
{
	struct shmq_queue_opts o = { cap, 16, 0 };
	struct shmq_queue_stats st;
	struct exact e = { .cap = cap, .rng = cap };
	struct iovec *iov;
	char name[32], buf[16];

	snprintf(name, sizeof(name), "q.cap.%u", cap);
	/* exactly cap slots of 64 bytes, after the 7-line control block,
	 * then their claim words, 8 bytes each in whole lines */
	assert_int_equal(shmq_queue_footprint(&o), 7 * 64 + (size_t)cap * 64 + (cap + 7) / 8 * 64);
	assert_int_equal(shmq_queue_create(f->r, name, &o, &e.q), 0);
	assert_int_equal(shmq_queue_stats(e.q, &st), 0);
	assert_int_equal(st.capacity, cap);

	/* fill from empty, refused at cap (also by a put that may wait), FIFO out */
	exact_fill(&e);
	assert_int_equal(e.in, cap);
	assert_int_equal(shmq_queue_put(e.q, "x", 1, 1000000), -ETIMEDOUT);
	assert_int_equal(shmq_queue_stats(e.q, &st), 0);
	assert_int_equal(st.len, cap);
	exact_drain(&e);

	/* many laps at every offset: random runs of puts and gets over at
	 * least 10 * cap + 3 messages, and a fill to exactly cap now and then */
	while (e.in < 10 * (uint64_t)cap + 3) {
		uint32_t k = exact_rand(&e) % (cap + 2);

		for (uint32_t i = 0; i < k && exact_put(&e); i++)
			;
		if (exact_rand(&e) % 4 == 0)
			exact_fill(&e);
		k = exact_rand(&e) % (cap + 2);
		for (uint32_t i = 0; i < k && exact_get(&e); i++)
			;
		if (exact_rand(&e) % 8 == 0)
			exact_drain(&e);
	}
	exact_fill(&e);
	exact_drain(&e);

	/* a bulk put of more than fits puts exactly what fits */
	iov = calloc(cap + 2, sizeof(*iov));
	assert_non_null(iov);
	memset(buf, 'b', sizeof(buf));
	for (uint32_t i = 0; i < cap + 2; i++)
		iov[i] = (struct iovec){ buf, 8 };
	assert_int_equal(shmq_queue_put_bulk(e.q, iov, cap + 2, SHMQ_NOWAIT), (ssize_t)cap);
	assert_int_equal(shmq_queue_put_bulk(e.q, iov, 1, SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(shmq_queue_len(e.q), cap);
	for (uint32_t i = 0; i < cap; i++)
		assert_int_equal(shmq_queue_get(e.q, buf, sizeof(buf), SHMQ_NOWAIT), 8);
	assert_int_equal(shmq_queue_get(e.q, buf, sizeof(buf), SHMQ_NOWAIT), -EAGAIN);
	free(iov);
	shmq_queue_close(e.q);
}

static void test_exact_capacity(void **state)
{
	static const uint32_t caps[] = { 1, 2, 3, 5, 7, 10, 100, 1000, 1024, 1025 };

	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		exact_capacity(*state, caps[i]);
}

/* Timeouts are honoured: never early, not much late. */
static void test_timeouts(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q;
	char buf[8];

	assert_int_equal(shmq_queue_create(f->r, "q.timeout", &(struct shmq_queue_opts){ 1, 8, 0 }, &q), 0);
	for (int64_t ms = 1; ms <= 50; ms *= 7) {
		int64_t t0 = shmq_now_ns(), el;

		assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), ms * 1000000), -ETIMEDOUT);
		el = shmq_now_ns() - t0;
		assert_true(el >= ms * 1000000);
		assert_true(el <= ms * 1000000 + 2000000000); /* bounded, loosely: a shared 2-core box */
	}
	assert_int_equal(shmq_queue_put(q, "a", 1, SHMQ_NOWAIT), 0);
	{
		int64_t t0 = shmq_now_ns();

		assert_int_equal(shmq_queue_put(q, "b", 1, 20000000), -ETIMEDOUT);
		assert_true(shmq_now_ns() - t0 >= 20000000);
	}
	shmq_queue_close(q);
}

/* A consumer asleep in another process is woken by a put, and a producer
 * asleep on a full queue by a get. */
static void wait_for_sleeper(shmq_queue *q, bool getter)
{
	struct shmq_queue_stats st;

	for (int i = 0; i < 5000; i++) {
		assert_int_equal(shmq_queue_stats(q, &st), 0);
		if (getter ? st.sleeping_getters : st.sleeping_putters)
			return;
		usleep(1000);
	}
	fail_msg("the child never went to sleep");
}

static void test_blocking_wakeups(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *there, *back;
	char buf[8];
	pid_t pid;

	assert_int_equal(shmq_queue_create(f->r, "q.there", &(struct shmq_queue_opts){ 1, 8, 0 }, &there), 0);
	assert_int_equal(shmq_queue_create(f->r, "q.back", &(struct shmq_queue_opts){ 1, 8, 0 }, &back), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_queue *cthere = child_open(f->name, "q.there", &r);
		shmq_queue *cback;

		if (shmq_queue_open(r, "q.back", &cback))
			_exit(9);
		if (shmq_queue_get(cthere, buf, sizeof(buf), 10000000000) != 4 || memcmp(buf, "ping", 4))
			_exit(1);
		if (shmq_queue_put(cback, "pon1", 4, 10000000000)) /* empty: at once */
			_exit(2);
		if (shmq_queue_put(cback, "pon2", 4, 10000000000)) /* full: sleeps until a get */
			_exit(3);
		_exit(0);
	}
	wait_for_sleeper(there, true);
	assert_int_equal(shmq_queue_put(there, "ping", 4, SHMQ_FOREVER), 0);
	wait_for_sleeper(back, false);
	assert_int_equal(shmq_queue_get(back, buf, sizeof(buf), 10000000000), 4);
	assert_memory_equal(buf, "pon1", 4);
	assert_int_equal(shmq_queue_get(back, buf, sizeof(buf), 10000000000), 4);
	assert_memory_equal(buf, "pon2", 4);
	assert_int_equal(tu_wait_child(pid), 0);
	shmq_queue_close(there);
	shmq_queue_close(back);
}

/* The ring's control block behind a handle (its first member is the ring,
 * lib/chan/queue.c), for the sleep and wake counters of shmq stat. */
static struct shmq__mpmc_shared *ring_of(shmq_queue *q)
{
	return ((struct shmq__mpmc *)q)->sh;
}

/* Wake storms (issue 15): a bursty producer into a queue whose consumer
 * sleeps between bursts.  Each put made a wake system call until the woken
 * consumer had counted itself out (~42 per sleep); now one sleep costs at
 * most one wake (Protocol WAKE_PENDING).  A sleep_once that found the queue
 * readable at its re-check may still cost a wake without a wait (the Dekker
 * race): the slack. */
#define BURSTS 20
#define BURST 1000

static void test_wakes_bursty(void **state)
{
	struct tu_region *f = *state;
	struct shmq__mpmc_shared *sh;
	uint64_t waits, wakes;
	shmq_queue *q;
	char buf[64] = { 0 };
	pid_t pid;

	assert_int_equal(shmq_queue_create(f->r, "q.burst", &(struct shmq_queue_opts){ 1024, 64, 0 }, &q), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_queue *c = child_open(f->name, "q.burst", &r);

		for (unsigned i = 0; i < BURSTS * BURST; i++) {
			uint32_t v;

			if (shmq_queue_get(c, buf, sizeof(buf), 10000000000) != sizeof(buf))
				_exit(1);
			memcpy(&v, buf, sizeof(v));
			if (v != i)
				_exit(2);
		}
		_exit(0);
	}
	sh = ring_of(q);
	for (unsigned b = 0; b < BURSTS; b++) {
		/* the consumer took the last burst and sleeps again (drained
		 * first: the sleeper of the last burst may not have counted
		 * itself out yet).  Counted asleep is not enough: a sleeper
		 * that finds the first put at its re-check never waits; so
		 * until its wait for this burst is counted. */
		for (int i = 0; i < 5000 && shmq_queue_len(q) != 0; i++)
			usleep(1000);
		assert_int_equal(shmq_queue_len(q), 0);
		wait_for_sleeper(q, true);
		for (int i = 0; i < 5000 && __atomic_load_n(&sh->get_waits, __ATOMIC_RELAXED) <= b; i++)
			usleep(1000);
		for (unsigned i = 0; i < BURST; i++) {
			uint32_t v = b * BURST + i;

			memcpy(buf, &v, sizeof(v));
			assert_int_equal(shmq_queue_put(q, buf, sizeof(buf), 10000000000), 0);
		}
	}
	assert_int_equal(tu_wait_child(pid), 0);
	waits = sh->get_waits;
	wakes = sh->get_wakes;
	print_message("bursty: %llu getter waits, %llu getter wakes\n", (unsigned long long)waits,
		      (unsigned long long)wakes);
	assert_true(waits >= BURSTS);
	assert_true(wakes <= waits + waits / 4 + 2);
	assert_int_equal(sh->put_wakes, 0); /* the ring never filled: no producer slept */
	shmq_queue_close(q);
}

/* A fast producer against a slow consumer: the producer sleeps on a full
 * ring, and is woken when the ring is half empty again (hysteresis), not at
 * every freed slot: about 2 wakes per ring's worth of messages (at least
 * capacity / 2 - 2 gets lie between two wakes; the indices may lag). */
#define SLOW_CAP 32
#define SLOW_RINGS 16

static void test_wakes_slow_consumer(void **state)
{
	struct tu_region *f = *state;
	struct shmq__mpmc_shared *sh;
	uint64_t waits, wakes;
	shmq_queue *q;
	char buf[64] = { 0 };
	pid_t pid;

	assert_int_equal(shmq_queue_create(f->r, "q.slow", &(struct shmq_queue_opts){ SLOW_CAP, 64, 0 }, &q), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_queue *c = child_open(f->name, "q.slow", &r);

		for (unsigned i = 0; i < SLOW_CAP * SLOW_RINGS; i++) {
			if (shmq_queue_get(c, buf, sizeof(buf), 10000000000) != sizeof(buf))
				_exit(1);
			usleep(300); /* slower than the producer's spin: it sleeps */
		}
		_exit(0);
	}
	for (unsigned i = 0; i < SLOW_CAP * SLOW_RINGS; i++)
		assert_int_equal(shmq_queue_put(q, buf, sizeof(buf), 10000000000), 0);
	assert_int_equal(tu_wait_child(pid), 0);
	sh = ring_of(q);
	waits = sh->put_waits;
	wakes = sh->put_wakes;
	print_message("slow consumer: %llu putter waits, %llu putter wakes for %u rings\n",
		      (unsigned long long)waits, (unsigned long long)wakes, SLOW_RINGS);
	assert_true(wakes <= 3 * SLOW_RINGS + 2);
	assert_true(wakes <= waits + waits / 4 + 2);
	shmq_queue_close(q);
}

static void test_shutdown(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q, *full;
	char buf[8];
	pid_t getter, putter;

	assert_int_equal(shmq_queue_create(f->r, "q.shut", &(struct shmq_queue_opts){ 4, 8, 0 }, &q), 0);
	assert_int_equal(shmq_queue_create(f->r, "q.shutfull", &(struct shmq_queue_opts){ 1, 8, 0 }, &full), 0);
	assert_int_equal(shmq_queue_put(full, "z", 1, SHMQ_NOWAIT), 0);
	getter = fork();
	assert_true(getter >= 0);
	if (getter == 0) { /* blocked in get on an empty queue: wakes with -EPIPE */
		shmq_region *r;
		shmq_queue *cq = child_open(f->name, "q.shut", &r);

		_exit(shmq_queue_get(cq, buf, sizeof(buf), 10000000000) == -EPIPE ? 0 : 1);
	}
	putter = fork();
	assert_true(putter >= 0);
	if (putter == 0) { /* blocked in put on a full queue: wakes with -EPIPE */
		shmq_region *r;
		shmq_queue *cq = child_open(f->name, "q.shutfull", &r);

		_exit(shmq_queue_put(cq, "y", 1, 10000000000) == -EPIPE ? 0 : 1);
	}
	/* both asleep before the shutdown, however slowly they were scheduled:
	 * what is tested is the wake-up of a blocked call */
	wait_for_sleeper(q, true);
	wait_for_sleeper(full, false);
	assert_int_equal(shmq_queue_shutdown(q), 0);
	assert_int_equal(shmq_queue_shutdown(full), 0);
	assert_int_equal(tu_wait_child(getter), 0);
	assert_int_equal(tu_wait_child(putter), 0);
	/* puts refused; gets drain, then -EPIPE; shutdown is idempotent */
	assert_int_equal(shmq_queue_put(q, "a", 1, SHMQ_FOREVER), -EPIPE);
	assert_int_equal(shmq_queue_get(full, buf, sizeof(buf), SHMQ_FOREVER), 1);
	assert_int_equal(shmq_queue_get(full, buf, sizeof(buf), SHMQ_FOREVER), -EPIPE);
	assert_int_equal(shmq_queue_get(full, buf, sizeof(buf), SHMQ_NOWAIT), -EPIPE);
	assert_int_equal(shmq_queue_shutdown(full), 0);
	assert_true(shmq__queue_readable(full));
	shmq_queue_close(q);
	shmq_queue_close(full);
}

/* A child that opens queue name, claims a slot for a put and is killed
 * there, before its publication. */
static void kill_inside_put(struct tu_region *f, const char *name)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_queue *cq = child_open(f->name, name, &r);
		struct shmq__mpmc_block blk;
		uint64_t pos;

		if (shmq__mpmc_put_claim((struct shmq__mpmc *)cq, &pos, &blk))
			_exit(1);
		raise(SIGKILL);
	}
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
}

/* A queue of 4 whose slot 0 a killed producer claimed (kill_inside_put) and
 * whose slot 1 holds "behind"; its control block. */
static struct shmq__mpmc_shared *behind_dead_put(struct tu_region *f, const char *name,
						 shmq_queue **q)
{
	uint64_t size;
	void *mem;

	assert_int_equal(shmq_queue_create(f->r, name, &(struct shmq_queue_opts){ 4, 8, 0 }, q), 0);
	assert_int_equal(shmq__obj_find(f->r, name, SHMQ__OBJ_QUEUE, &mem, &size), 0);
	kill_inside_put(f, name); /* slot 0 */
	assert_int_equal(shmq_queue_put(*q, "behind", 6, SHMQ_NOWAIT), 0); /* slot 1 */
	return mem;
}

/* A producer killed inside put, and a consumer that only polls with
 * SHMQ_NOWAIT: the claim (in the slot's claim word, ring/mpmc_int.h Protocol
 * PUT_CLAIM; the slot itself still reads EMPTY) is found dead within about
 * a slice of polls and skipped, and the message behind it arrives. */
static void test_nowait_dead_producer(void **state)
{
	struct tu_region *f = *state;
	struct shmq__mpmc_shared *sh;
	shmq_queue *q;
	char buf[8];
	ssize_t n = -EAGAIN;
	int64_t t0;

	sh = behind_dead_put(f, "q.nwdead", &q);
	t0 = shmq_now_ns();
	while (n == -EAGAIN && shmq_now_ns() - t0 < 5000000000) {
		n = shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT);
		if (n == -EAGAIN)
			usleep(100);
	}
	assert_int_equal(n, 6);
	assert_memory_equal(buf, "behind", 6);
	assert_int_equal(sh->skipped, 1);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), -EAGAIN);
	shmq_queue_close(q);
}

/* Threads of one process sharing one handle, racing a shutdown: the
 * producers put until -EPIPE, the consumers get until -EPIPE. */
struct shut_race {
	shmq_queue *q;
	uint32_t put;   /* puts that returned 0 */
	uint32_t got;   /* gets that returned a message */
};

static void *shut_race_put(void *arg)
{
	struct shut_race *sr = arg;

	while (shmq_queue_put(sr->q, "m", 1, SHMQ_FOREVER) == 0)
		shmq__fetch_add_relaxed(&sr->put, 1u); /* relaxed: read after the joins */
	return NULL;
}

static void *shut_race_get(void *arg)
{
	struct shut_race *sr = arg;
	char buf[8];

	while (shmq_queue_get(sr->q, buf, sizeof(buf), SHMQ_FOREVER) == 1)
		shmq__fetch_add_relaxed(&sr->got, 1u); /* relaxed: read after the joins */
	return NULL;
}

/* A put that claimed its slot after the last consumer had found the queue
 * shut down and drained withdraws the claim and moves the tail past it;
 * nobody gets from that queue again, so the put moves the head past it too:
 * once every call has returned, shmq_queue_len() is 0, not the count of
 * such withdrawn claims (before the fix: 1 or 2 in some of the rounds,
 * for good). */
#define SHUT_RACE_THREADS 4
static void test_shutdown_racing_puts_len(void **state)
{
	struct tu_region *f = *state;
	int64_t t0 = shmq_now_ns();
	unsigned rounds = 0;

	while (rounds < 20 || (shmq_now_ns() - t0 < 1000000000 && rounds < 2000)) {
		struct shut_race sr = { 0 };
		pthread_t p[SHUT_RACE_THREADS], g[SHUT_RACE_THREADS];
		char name[32];

		snprintf(name, sizeof(name), "q.shutrace%u", rounds++);
		assert_int_equal(shmq_queue_create(f->r, name, &(struct shmq_queue_opts){ 4, 8, 0 },
						   &sr.q), 0);
		for (int i = 0; i < SHUT_RACE_THREADS; i++) {
			assert_int_equal(pthread_create(&g[i], NULL, shut_race_get, &sr), 0);
			assert_int_equal(pthread_create(&p[i], NULL, shut_race_put, &sr), 0);
		}
		while (shmq__load_relaxed(&sr.got) < 16) /* relaxed: a progress hint */
			sched_yield();
		assert_int_equal(shmq_queue_shutdown(sr.q), 0);
		for (int i = 0; i < SHUT_RACE_THREADS; i++) {
			assert_int_equal(pthread_join(p[i], NULL), 0);
			assert_int_equal(pthread_join(g[i], NULL), 0);
		}
		assert_int_equal(sr.got, sr.put); /* nothing lost, nothing twice */
		assert_int_equal(shmq_queue_len(sr.q), 0);
		shmq_queue_close(sr.q);
	}
	print_message("shutdown race: %u rounds\n", rounds);
}

/* The child of test_put_stale_ctl: stopped for the parent's watch, then
 * one put with SHMQ_NOWAIT.  Exit 0: -EAGAIN; 1: -EBADMSG; 2: other. */
static void stale_ctl_child(const char *region, int fd)
{
	shmq_region *r;
	shmq_queue *cq = child_open(region, "q.stalectl", &r);
	struct shmq__mpmc *m = (struct shmq__mpmc *)cq;
	uintptr_t addr = (uintptr_t)&((struct shmq__mpmc_slot *)(void *)m->slots)->ctl;
	int rc;

	if (write(fd, &addr, sizeof(addr)) != (ssize_t)sizeof(addr))
		_exit(90);
	if (ptrace(PTRACE_TRACEME, 0, NULL, NULL))
		_exit(91);
	raise(SIGSTOP);
	rc = shmq_queue_put(cq, "c", 1, SHMQ_NOWAIT);
	_exit(rc == -EAGAIN ? 0 : rc == -EBADMSG ? 1 : 2);
}

/* A producer's view of a slot goes stale between its load of ctl and its
 * look at the claim word: a ring of 2 whose slot 0 a put claimed and has
 * not published, slot 1 full, the tail at 2.  The child loads slot 0's ctl
 * (EMPTY of lap 0: full, the last lap's put unpublished) and is stopped
 * there by a debug register watch; meanwhile that put is published, taken,
 * and slot 0 claimed for lap 1 by another producer that has not moved the
 * tail yet.  The child's claim word look then disagrees with its ctl, and
 * the tail is where it was: a stale view, not corrupted memory, so the put
 * looks again and finds the ring full (-EAGAIN).  Before the fix it said
 * -EBADMSG; threads of one process sharing a queue under load (ThreadSanitizer's
 * pace) hit it in one run of three. */
static void test_put_stale_ctl(void **state)
{
	struct tu_region *f = *state;
	struct shmq__mpmc *m;
	struct shmq__mpmc_block blk;
	unsigned long dr7 = 0;
	uint64_t pos;
	uintptr_t addr;
	shmq_queue *q;
	char buf[8];
	int fds[2], st;
	pid_t pid;

#if !defined(__x86_64__)
	skip(); /* the watch is a debug register */
#endif
	assert_int_equal(shmq_queue_create(f->r, "q.stalectl", &(struct shmq_queue_opts){ 2, 8, 0 },
					   &q), 0);
	m = (struct shmq__mpmc *)q;
	assert_int_equal(shmq__mpmc_put_claim(m, &pos, &blk), 0); /* slot 0, unpublished */
	assert_int_equal(pos, 0);
	assert_int_equal(shmq_queue_put(q, "b", 1, SHMQ_NOWAIT), 0); /* slot 1 */
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		stale_ctl_child(f->name, fds[1]);
	}
	close(fds[1]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFSTOPPED(st)) { /* ptrace refused here */
		close(fds[0]);
		skip();
	}
	assert_int_equal(read(fds[0], &addr, sizeof(addr)), (ssize_t)sizeof(addr));
	close(fds[0]);
	if (!tu_hostile_watch(pid, addr)) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		skip();
	}
	/* the child's first touch of slot 0's ctl: put_claim's load */
	assert_int_equal(ptrace(PTRACE_CONT, pid, NULL, NULL), 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSTOPPED(st) && WSTOPSIG(st) == SIGTRAP);
	/* the put of slot 0 published and taken, slot 0 claimed for lap 1 */
	memcpy(shmq__mpmc_slot_data(m, 0), "a", 1);
	shmq__mpmc_put_publish(m, 0, 1, true);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), 1);
	assert_int_equal(buf[0], 'a');
	shmq__store_seq_cst(&m->claims[0], (uint64_t)m->self << 32 | UINT64_C(1) << 2 | 1u);
	assert_int_equal(ptrace(PTRACE_POKEUSER, pid, offsetof(struct user, u_debugreg[7]),
				(void *)dr7), 0);
	assert_int_equal(ptrace(PTRACE_DETACH, pid, NULL, NULL), 0);
	assert_int_equal(tu_wait_child(pid), 0);
	shmq_queue_close(q);
}

/* Threads of one process sharing one handle with messages of both kinds:
 * slot-sized ones and large ones (through the region's heap), taken by get
 * and get_alloc. */
#define MIXED_THREADS 4
#define MIXED_LARGE 100
struct mixed {
	shmq_queue *q;
	uint32_t next;       /* messages handed out to producers */
	uint32_t total;
	uint8_t seen[40000]; /* per message number: delivered */
	uint32_t got;
	uint32_t bad;
};

static void *mixed_put(void *arg)
{
	struct mixed *mx = arg;
	uint8_t msg[MIXED_LARGE];
	uint32_t k;

	/* relaxed: a ticket counter, nothing is published through it */
	while ((k = shmq__fetch_add_relaxed(&mx->next, 1u)) < mx->total) {
		size_t len = k % 2 ? MIXED_LARGE : 8;

		memset(msg, (int)(k & 0xff), len);
		memcpy(msg, &k, sizeof(k));
		if (shmq_queue_put(mx->q, msg, len, SHMQ_FOREVER))
			shmq__fetch_add_relaxed(&mx->bad, 1u); /* relaxed: read after the joins */
	}
	return NULL;
}

static void mixed_note(struct mixed *mx, const uint8_t *msg, ssize_t n)
{
	uint32_t k;

	memcpy(&k, msg, sizeof(k));
	if (n < 8 || k >= mx->total || (size_t)n != (k % 2 ? MIXED_LARGE : 8u) ||
	    msg[n - 1] != (k & 0xff) || __atomic_exchange_n(&mx->seen[k], 1, __ATOMIC_RELAXED))
		shmq__fetch_add_relaxed(&mx->bad, 1u); /* relaxed: read after the joins */
	shmq__fetch_add_relaxed(&mx->got, 1u);         /* relaxed: as bad */
}

static void *mixed_get(void *arg)
{
	struct mixed *mx = arg;
	uint8_t buf[MIXED_LARGE];
	ssize_t n;

	for (unsigned i = 0;; i++) {
		void *m = NULL;

		if (i % 2) {
			n = shmq_queue_get_alloc(mx->q, &m, SHMQ_FOREVER);
			if (n >= 0 && n <= MIXED_LARGE)
				memcpy(buf, m, (size_t)n);
			free(m);
		} else {
			n = shmq_queue_get(mx->q, buf, sizeof(buf), SHMQ_FOREVER);
		}
		if (n == -EPIPE)
			return NULL;
		if (n < 0 || n > MIXED_LARGE) {
			shmq__fetch_add_relaxed(&mx->bad, 1u); /* relaxed: read after the joins */
			return NULL;
		}
		mixed_note(mx, buf, n);
	}
}

/* Every message arrives once, whole, whatever its kind.  A consumer whose
 * view of a slot is a lap old reads the first word of a large slot (its
 * real length) before it claims it, and drops it when the slot has moved
 * on; a producer of the next lap writes that word meanwhile.  Under
 * ThreadSanitizer that word was a data race (a plain memcpy against the
 * consumer's atomic load) in about every run before the producers stored it
 * atomically. */
static void test_threads_mixed_sizes(void **state)
{
	struct tu_region *f = *state;
	struct mixed *mx = calloc(1, sizeof(*mx));
	pthread_t p[MIXED_THREADS], g[MIXED_THREADS];

	assert_non_null(mx);
	mx->total = sizeof(mx->seen) / SCALE;
	assert_int_equal(shmq_queue_create(f->r, "q.mixed", &(struct shmq_queue_opts){ 2, 8, 0 },
					   &mx->q), 0);
	for (int i = 0; i < MIXED_THREADS; i++) {
		assert_int_equal(pthread_create(&g[i], NULL, mixed_get, mx), 0);
		assert_int_equal(pthread_create(&p[i], NULL, mixed_put, mx), 0);
	}
	for (int i = 0; i < MIXED_THREADS; i++)
		assert_int_equal(pthread_join(p[i], NULL), 0);
	assert_int_equal(shmq_queue_shutdown(mx->q), 0);
	for (int i = 0; i < MIXED_THREADS; i++)
		assert_int_equal(pthread_join(g[i], NULL), 0);
	assert_int_equal(mx->bad, 0);
	assert_int_equal(mx->got, mx->total);
	assert_int_equal(shmq_queue_len(mx->q), 0);
	shmq_queue_close(mx->q);
	free(mx);
}

/* A producer killed inside put (its claim stays unpublished), then shutdown:
 * consumers sleep behind the claim (they do not spin), skip it once its
 * owner is found dead, drain what was put, and then get -EPIPE. */
static void test_shutdown_dead_producer(void **state)
{
	struct tu_region *f = *state;
	struct shmq__mpmc_shared *sh;
	shmq_queue *q;
	uint64_t waits;
	char buf[8];
	int64_t t0;
	pid_t pid;

	sh = behind_dead_put(f, "q.shutdead", &q);
	assert_int_equal(shmq_queue_shutdown(q), 0);
	waits = sh->get_waits;
	t0 = shmq_now_ns();
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), 10000000000), 6);
	assert_memory_equal(buf, "behind", 6);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), 10000000000), -EPIPE);
	assert_true(shmq_now_ns() - t0 < 2000000000);
	assert_true(sh->get_waits > waits); /* it slept behind the claim, no busy loop */
	assert_int_equal(sh->skipped, 1);
	/* the same claim on a drained queue: SHMQ_FOREVER ends with -EPIPE */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_queue *cq = child_open(f->name, "q.shutdead", &r);
		struct shmq__mpmc *m = (struct shmq__mpmc *)cq;
		uint64_t pos;

		shmq__store_seq_cst(&m->sh->shut, 0u); /* reopen it behind the library's back */
		if (shmq__mpmc_put_claim(m, &pos, &(struct shmq__mpmc_block){ 0, 0 }))
			_exit(1);
		shmq__store_seq_cst(&m->sh->shut, 1u);
		raise(SIGKILL);
	}
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_FOREVER), -EPIPE);
	assert_int_equal(sh->skipped, 2);
	shmq_queue_close(q);
}

static void test_bulk(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q;
	struct iovec in[6], out[6];
	size_t lens[6];
	char bufs[6][8], small[2];
	const char *words[6] = { "a", "bb", "ccc", "dddd", "eeeee", "ffffff" };

	assert_int_equal(shmq_queue_create(f->r, "q.bulk", &(struct shmq_queue_opts){ 4, 8, 0 }, &q), 0);
	for (int i = 0; i < 6; i++) {
		in[i] = (struct iovec){ (void *)words[i], strlen(words[i]) };
		out[i] = (struct iovec){ bufs[i], sizeof(bufs[i]) };
	}
	assert_int_equal(shmq_queue_put_bulk(q, in, 0, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_queue_put_bulk(q, in, 6, SHMQ_NOWAIT), 4); /* as many as fit */
	assert_int_equal(shmq_queue_put_bulk(q, in + 4, 2, SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(shmq_queue_get_bulk(q, out, lens, 3, SHMQ_NOWAIT), 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(lens[i], i + 1);
		assert_memory_equal(bufs[i], words[i], i + 1);
	}
	assert_int_equal(shmq_queue_put_bulk(q, in + 4, 2, SHMQ_NOWAIT), 2);
	/* a buffer too small stops the batch; the message stays */
	out[1] = (struct iovec){ small, sizeof(small) };
	assert_int_equal(shmq_queue_get_bulk(q, out, lens, 3, SHMQ_NOWAIT), 1);
	assert_memory_equal(bufs[0], "dddd", 4);
	assert_int_equal(shmq_queue_get_bulk(q, out + 1, lens, 1, SHMQ_NOWAIT), -EMSGSIZE);
	out[1] = (struct iovec){ bufs[1], sizeof(bufs[1]) };
	assert_int_equal(shmq_queue_get_bulk(q, out, lens, 6, SHMQ_FOREVER), 2);
	assert_memory_equal(bufs[0], "eeeee", 5);
	assert_memory_equal(bufs[1], "ffffff", 6);
	assert_int_equal(shmq_queue_get_bulk(q, out, lens, 6, 1000000), -ETIMEDOUT);
	/* errors */
	in[0].iov_len = 9;
	assert_int_equal(shmq_queue_put_bulk(q, in, 2, SHMQ_NOWAIT), -EMSGSIZE);
	assert_int_equal(shmq_queue_len(q), 0);
	assert_int_equal(shmq_queue_put_bulk(q, NULL, 2, SHMQ_NOWAIT), -EINVAL);
	assert_int_equal(shmq_queue_get_bulk(q, out, NULL, 2, SHMQ_NOWAIT), -EINVAL);
	shmq_queue_shutdown(q);
	assert_int_equal(shmq_queue_put_bulk(q, in + 1, 1, SHMQ_NOWAIT), -EPIPE);
	assert_int_equal(shmq_queue_get_bulk(q, out, lens, 1, SHMQ_NOWAIT), -EPIPE);
	shmq_queue_close(q);
}

static void test_placement(void **state)
{
	struct tu_region *f = *state;
	struct shmq_queue_opts o = { 8, 32, 0 };
	size_t size = shmq_queue_footprint(&o);
	shmq_queue *a, *b;
	void *mem;
	char buf[32];
	pid_t pid;

	assert_true(size > 0);
	assert_int_equal(shmq_queue_footprint(&(struct shmq_queue_opts){ 8, UINT32_MAX, 0 }), 0);
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(mem != MAP_FAILED);
	assert_int_equal(shmq_queue_init(mem, size - 1, &o, 0), -EINVAL);
	assert_int_equal(shmq_queue_init(mem, size, &o, 0x80), -EINVAL);
	assert_int_equal(shmq_queue_init(mem, size, &o, SHMQ_QUEUE_PID_OWNERS), 0);
	assert_int_equal(shmq_queue_attach(f->r, mem, size, &a), -EINVAL); /* owner kind */
	assert_int_equal(shmq_queue_attach(NULL, mem, size, &a), 0);
	assert_int_equal(shmq_queue_put(a, "placed", 6, SHMQ_NOWAIT), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) { /* a child attaches the inherited mapping itself */
		if (shmq_queue_attach(NULL, mem, size, &b))
			_exit(1);
		_exit(shmq_queue_get(b, buf, sizeof(buf), 10000000000) == 6 ? 0 : 2);
	}
	assert_int_equal(tu_wait_child(pid), 0);
	assert_int_equal(shmq_queue_len(a), 0);
	shmq_queue_close(a);
	assert_int_equal(shmq_queue_init(mem, size, &o, 0), 0);
	assert_int_equal(shmq_queue_attach(NULL, mem, size, &a), -EINVAL);
	assert_int_equal(shmq_queue_attach(f->r, mem, size, &a), 0);
	shmq_queue_close(a);
	munmap(mem, size);
}

/* ---- many processes: per-producer FIFO, no loss, no duplicate ---- */

#define NP 4
#define NC 4
#define PER_PRODUCER (100000 / SCALE)

struct msg_hdr {
	uint32_t producer;
	uint32_t seq;
	uint32_t sum; /* checksum of the filler */
	uint32_t len;
};

static uint32_t filler_byte(uint32_t producer, uint32_t seq, size_t i)
{
	return (producer * 131u + seq * 7u + (uint32_t)i) & 0xffu;
}

static size_t msg_make(char *buf, size_t max, uint32_t producer, uint32_t seq)
{
	struct msg_hdr h = { producer, seq, 0, 0 };
	size_t len = sizeof(h) + (seq * 2654435761u) % (max - sizeof(h) + 1);

	for (size_t i = sizeof(h); i < len; i++) {
		buf[i] = (char)filler_byte(producer, seq, i);
		h.sum += (uint8_t)buf[i];
	}
	h.len = (uint32_t)len;
	memcpy(buf, &h, sizeof(h));
	return len;
}

/* 0 and the header, or -1 for a message that fails its checks. */
static int msg_check(const char *buf, ssize_t n, struct msg_hdr *h)
{
	uint32_t sum = 0;

	if (n < (ssize_t)sizeof(*h))
		return -1;
	memcpy(h, buf, sizeof(*h));
	if (h->len != (uint32_t)n)
		return -1;
	for (ssize_t i = sizeof(*h); i < n; i++) {
		if ((uint8_t)buf[i] != filler_byte(h->producer, h->seq, (size_t)i))
			return -1;
		sum += (uint8_t)buf[i];
	}
	return sum == h->sum ? 0 : -1;
}

struct board {
	_Atomic uint32_t bad;
	_Atomic uint64_t received;
	_Atomic uint8_t seen[NP][PER_PRODUCER];
};

static void mp_producer(const char *region, const char *queue, uint32_t id, uint32_t per)
{
	shmq_region *r;
	shmq_queue *q = child_open(region, queue, &r);
	char buf[128];

	for (uint32_t s = 0; s < per; s++) {
		size_t len = msg_make(buf, sizeof(buf), id, s);

		if (shmq_queue_put(q, buf, len, 30000000000))
			_exit(3);
	}
	_exit(0);
}

static void mp_consumer(const char *region, const char *queue, struct board *b)
{
	shmq_region *r;
	shmq_queue *q = child_open(region, queue, &r);
	int64_t last[NP];
	char buf[128];

	for (int i = 0; i < NP; i++)
		last[i] = -1;
	for (;;) {
		struct msg_hdr h;
		ssize_t n = shmq_queue_get(q, buf, sizeof(buf), 30000000000);

		if (n == -EPIPE)
			_exit(0);
		if (n < 0)
			_exit(4);
		if (msg_check(buf, n, &h) || h.producer >= NP || h.seq >= PER_PRODUCER ||
		    (int64_t)h.seq <= last[h.producer]) {
			atomic_store(&b->bad, 1);
			_exit(5);
		}
		last[h.producer] = h.seq;
		atomic_fetch_add(&b->seen[h.producer][h.seq], 1);
		atomic_fetch_add(&b->received, 1);
	}
}

/* np producer and nc consumer processes, per messages per producer, through
 * a queue of capacity cap: per-producer FIFO, no loss, no duplicate. */
static void processes(struct tu_region *f, const char *queue, uint32_t cap, int np, int nc,
		      uint32_t per)
{
	struct board *b = mmap(NULL, sizeof(*b), PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct shmq_queue_stats st;
	pid_t prod[NP], cons[NC];
	shmq_queue *q;

	assert_true(b != MAP_FAILED);
	assert_true(np <= NP && nc <= NC && per <= PER_PRODUCER);
	assert_int_equal(shmq_queue_create(f->r, queue, &(struct shmq_queue_opts){ cap, 128, 0 }, &q), 0);
	assert_int_equal(shmq_queue_stats(q, &st), 0);
	assert_int_equal(st.capacity, cap);
	for (int i = 0; i < nc; i++) {
		cons[i] = fork();
		assert_true(cons[i] >= 0);
		if (cons[i] == 0)
			mp_consumer(f->name, queue, b);
	}
	for (int i = 0; i < np; i++) {
		prod[i] = fork();
		assert_true(prod[i] >= 0);
		if (prod[i] == 0)
			mp_producer(f->name, queue, (uint32_t)i, per);
	}
	for (int i = 0; i < np; i++)
		assert_int_equal(tu_wait_child(prod[i]), 0);
	assert_int_equal(shmq_queue_shutdown(q), 0);
	for (int i = 0; i < nc; i++)
		assert_int_equal(tu_wait_child(cons[i]), 0);
	assert_int_equal(atomic_load(&b->bad), 0);
	assert_int_equal(atomic_load(&b->received), (uint64_t)np * per);
	for (int p = 0; p < np; p++)
		for (uint32_t s = 0; s < per; s++)
			if (atomic_load(&b->seen[p][s]) != 1)
				fail_msg("producer %d seq %u seen %d times", p, s, b->seen[p][s]);
	shmq_queue_close(q);
	munmap(b, sizeof(*b));
}

static void test_processes_4p4c(void **state)
{
	processes(*state, "q.mp", 64, NP, NC, PER_PRODUCER);
}

/* One producer and one consumer process through a queue of 10 (not a power
 * of two): positions divided, many laps, the consumer often waiting. */
static void test_processes_1p1c_cap10(void **state)
{
	processes(*state, "q.mp10", 10, 1, 1, PER_PRODUCER);
}

/* Several of each through 100 slots. */
static void test_processes_4p4c_cap100(void **state)
{
	processes(*state, "q.mp100", 100, NP, NC, PER_PRODUCER / 4);
}

/* ---- crash rounds ---- */

#define CR_IDS 256          /* producer ids over the whole test */
#define CR_SEQ (1u << 16)   /* messages per producer id at most */
#define CR_PROD 2
#define CR_CONS 2

struct crash_board {
	_Atomic uint32_t bad;
	_Atomic uint32_t stop;  /* producers stop putting */
	_Atomic uint64_t received;
	_Atomic uint32_t next_id; /* producer ids handed out */
	_Atomic uint32_t committed[CR_IDS]; /* puts that returned 0, per producer id */
	_Atomic uint8_t seen[CR_IDS][CR_SEQ];
};

/* Put one id's sequence; false once told to stop or the queue is shut. */
static bool crash_put_sequence(shmq_queue *q, struct crash_board *b, uint32_t id)
{
	char buf[64];

	for (uint32_t s = 0; s < CR_SEQ; s++) {
		size_t len = msg_make(buf, sizeof(buf), id, s);
		int rc;

		if (atomic_load(&b->stop))
			return false;
		do
			rc = shmq_queue_put(q, buf, len, 20000000);
		while (rc == -ETIMEDOUT && !atomic_load(&b->stop));
		if (rc == -ETIMEDOUT || rc == -EPIPE)
			return false;
		if (rc)
			_exit(3);
		atomic_store(&b->committed[id], s + 1);
	}
	return true;
}

/* A producer takes a fresh id whenever it has put a whole sequence, so one
 * that outlives many rounds keeps the traffic going, until the ids run out. */
static void crash_producer(const char *region, struct crash_board *b)
{
	shmq_region *r;
	shmq_queue *q = child_open(region, "q.crash", &r);

	for (;;) {
		uint32_t id = atomic_fetch_add(&b->next_id, 1);

		if (id >= CR_IDS || !crash_put_sequence(q, b, id))
			_exit(0);
	}
}

static void crash_consumer(const char *region, struct crash_board *b)
{
	shmq_region *r;
	shmq_queue *q = child_open(region, "q.crash", &r);
	int64_t *last = calloc(CR_IDS, sizeof(*last));
	char buf[64];

	if (!last)
		_exit(6);
	for (int i = 0; i < CR_IDS; i++)
		last[i] = -1;
	for (;;) {
		struct msg_hdr h;
		ssize_t n = shmq_queue_get(q, buf, sizeof(buf), 60000000000);

		if (n == -EPIPE)
			_exit(0);
		if (n < 0)
			_exit(4);
		if (msg_check(buf, n, &h) || h.producer >= CR_IDS || h.seq >= CR_SEQ ||
		    (int64_t)h.seq <= last[h.producer]) {
			atomic_store(&b->bad, 1);
			_exit(5);
		}
		last[h.producer] = h.seq;
		atomic_fetch_add(&b->seen[h.producer][h.seq], 1);
		atomic_fetch_add(&b->received, 1);
	}
}

static int crash_rounds(void)
{
	const char *s = getenv("SHMQ_CRASH_ROUNDS");
	int n = s ? atoi(s) : 0;

	return n > 0 ? n : 30;
}

static pid_t spawn_producer(const char *region, struct crash_board *b)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		crash_producer(region, b);
	return pid;
}

static pid_t spawn_consumer(const char *region, struct crash_board *b)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		crash_consumer(region, b);
	return pid;
}

static bool ids_left(struct crash_board *b)
{
	return atomic_load(&b->next_id) < CR_IDS;
}

/* Progress within 5 s: survivors never hang behind a killed process.  (Once
 * the ids run out the producers finish, and the rounds end.) */
static void expect_progress(struct crash_board *b)
{
	uint64_t before = atomic_load(&b->received);
	int64_t until = shmq_now_ns() + 5000000000;

	while (atomic_load(&b->received) == before && ids_left(b)) {
		if (shmq_now_ns() > until)
			fail_msg("no progress for 5 s after a kill");
		usleep(200);
	}
}

/* Wait for a child, at most 20 s. */
static int wait_bounded(pid_t pid)
{
	int64_t until = shmq_now_ns() + 20000000000;
	int st;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (shmq_now_ns() > until) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -1;
		}
		usleep(1000);
	}
}

static void crash_verify(struct crash_board *b, uint32_t ids, uint32_t consumer_kills)
{
	uint64_t missing = 0;

	for (uint32_t p = 0; p < ids; p++) {
		uint32_t c = atomic_load(&b->committed[p]);

		for (uint32_t s = 0; s < CR_SEQ; s++) {
			uint8_t n = atomic_load(&b->seen[p][s]);

			if (n > 1)
				fail_msg("producer %u seq %u delivered %u times", p, s, n);
			if (s < c && n == 0)
				missing++;
			if (s > c && n != 0) /* s == c: put in flight when killed */
				fail_msg("producer %u seq %u delivered but never put", p, s);
		}
	}
	/* each killed consumer held at most one message */
	if (missing > consumer_kills)
		fail_msg("%llu committed messages lost, %u consumer kills",
			 (unsigned long long)missing, consumer_kills);
}

static void test_crash_rounds(void **state)
{
	struct tu_region *f = *state;
	struct crash_board *b = mmap(NULL, sizeof(*b), PROT_READ | PROT_WRITE,
				     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct shmq_queue_stats st;
	pid_t prod[CR_PROD], cons[CR_CONS];
	uint32_t consumer_kills = 0, producer_kills = 0, ids;
	int rounds = crash_rounds(), round;
	shmq_queue *q;

	assert_true(b != MAP_FAILED);
	srand((unsigned)getpid());
	assert_int_equal(shmq_queue_create(f->r, "q.crash", &(struct shmq_queue_opts){ 8, 64, 0 }, &q), 0);
	for (int i = 0; i < CR_PROD; i++)
		prod[i] = spawn_producer(f->name, b);
	for (int i = 0; i < CR_CONS; i++)
		cons[i] = spawn_consumer(f->name, b);
	for (round = 0; round < rounds && ids_left(b); round++) {
		struct timespec ts = { 0, (long)(1 + rand() % 20) * 1000000L };
		int victim = rand() % (CR_PROD + CR_CONS);

		nanosleep(&ts, NULL);
		if (victim < CR_PROD) {
			kill(prod[victim], SIGKILL);
			waitpid(prod[victim], NULL, 0);
			prod[victim] = spawn_producer(f->name, b);
			producer_kills++;
		} else {
			victim -= CR_PROD;
			kill(cons[victim], SIGKILL);
			waitpid(cons[victim], NULL, 0);
			cons[victim] = spawn_consumer(f->name, b);
			consumer_kills++;
		}
		expect_progress(b);
	}
	atomic_store(&b->stop, 1);
	for (int i = 0; i < CR_PROD; i++)
		assert_int_equal(wait_bounded(prod[i]), 0);
	assert_int_equal(shmq_queue_shutdown(q), 0);
	for (int i = 0; i < CR_CONS; i++)
		assert_int_equal(wait_bounded(cons[i]), 0);
	assert_int_equal(atomic_load(&b->bad), 0);
	ids = atomic_load(&b->next_id);
	crash_verify(b, ids < CR_IDS ? ids : CR_IDS, consumer_kills);
	assert_int_equal(shmq_queue_stats(q, &st), 0);
	assert_int_equal(st.len, 0);
	if (round < rounds)
		print_message("crash rounds: the %u producer ids ran out after %d of %d rounds\n",
			      CR_IDS, round, rounds);
	print_message("crash rounds: %d, producer kills %u, consumer kills %u, skipped %llu, "
		      "dropped %llu, received %llu, producer ids %u\n", round, producer_kills, consumer_kills,
		      (unsigned long long)st.skipped, (unsigned long long)st.dropped,
		      (unsigned long long)atomic_load(&b->received), ids);
	shmq_queue_close(q);
	munmap(b, sizeof(*b));
}

/* A producer killed while it holds a claim (stopped with SIGSTOP inside
 * nothing: we forge the claim through the raw ring in a child that then
 * dies) is skipped by a consumer blocked behind it, within a few slices. */
static void test_dead_claim_unblocks(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q;
	char buf[8];
	pid_t pid;
	int64_t t0;

	assert_int_equal(shmq_queue_create(f->r, "q.deadclaim", &(struct shmq_queue_opts){ 4, 8, 0 }, &q), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_queue *cq = child_open(f->name, "q.deadclaim", &r);
		struct shmq__mpmc *m = (struct shmq__mpmc *)cq; /* the ring is the handle's first member */
		struct shmq__mpmc_block blk;
		uint64_t pos;

		if (shmq__mpmc_put_claim(m, &pos, &blk))
			_exit(1);
		raise(SIGKILL); /* dies holding the claim */
	}
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	assert_int_equal(shmq_queue_put(q, "after", 5, SHMQ_NOWAIT), 0);
	t0 = shmq_now_ns();
	/* promptly (2 s), far inside the call's own 10 s: skipped, not timed out */
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), 10000000000), 5);
	assert_memory_equal(buf, "after", 5);
	assert_true(shmq_now_ns() - t0 < 2000000000);
	/* the same through SHMQ_NOWAIT polling */
	pid = fork();
	if (pid == 0) {
		shmq_region *r;
		shmq_queue *cq = child_open(f->name, "q.deadclaim", &r);
		uint64_t pos;
		struct shmq__mpmc_block blk;

		if (shmq__mpmc_put_claim((struct shmq__mpmc *)cq, &pos, &blk))
			_exit(1);
		raise(SIGKILL);
	}
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	assert_int_equal(shmq_queue_put(q, "poll", 4, SHMQ_NOWAIT), 0);
	t0 = shmq_now_ns();
	for (;;) {
		ssize_t n = shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT);

		if (n == 4)
			break;
		assert_int_equal(n, -EAGAIN);
		assert_true(shmq_now_ns() - t0 < 2000000000);
		usleep(1000);
	}
	shmq_queue_close(q);
}

/* A claim whose owner the process table no longer lists (it detached, or
 * its slot was taken by a later process) is recovered the first time a
 * waiter sees it: a SHMQ_NOWAIT get skips it at once, and a blocking get
 * gets the message behind it without a single sleep. */
static void test_unlisted_claimer(void **state)
{
	struct tu_region *f = *state;
	struct shmq__mpmc_shared *sh;
	struct shmq__mpmc_slot *s0;
	shmq_queue *q;
	uint64_t size, waits;
	void *mem;
	char buf[8];

	assert_int_equal(shmq_queue_create(f->r, "q.unlisted", &(struct shmq_queue_opts){ 4, 8, 0 }, &q), 0);
	assert_int_equal(shmq__obj_find(f->r, "q.unlisted", SHMQ__OBJ_QUEUE, &mem, &size), 0);
	sh = mem;
	s0 = (struct shmq__mpmc_slot *)((char *)mem + sizeof(*sh));
	/* as a producer with id 0x7fffffff would leave it: slot 0 WRITING
	 * (lap 0), the tail moved past it */
	s0->ctl = 1 | (uint64_t)0x7fffffffu << 33;
	sh->tail = 1;
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(sh->skipped, 1);
	/* again, with a message queued behind the claim, through a blocking get */
	assert_int_equal(shmq_queue_put(q, "x", 1, SHMQ_NOWAIT), 0); /* slot 1 */
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), 1);
	waits = sh->get_waits;
	s0 = (struct shmq__mpmc_slot *)((char *)s0 + 2 * sh->slot_size); /* slot 2, lap 0 */
	s0->ctl = 1 | (uint64_t)0x7fffffffu << 33;
	sh->tail = 3;
	assert_int_equal(shmq_queue_put(q, "after", 5, SHMQ_NOWAIT), 0); /* slot 3 */
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), 5000000000), 5);
	assert_memory_equal(buf, "after", 5);
	assert_int_equal(sh->skipped, 2);
	assert_int_equal(sh->get_waits, waits);
	shmq_queue_close(q);
}

/* Garbage in the queue's control words gives -EBADMSG, never a crash. */
static void test_corrupted(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q, *q2;
	struct shmq__mpmc_shared *sh;
	struct shmq__mpmc_slot *s0;
	uint64_t size, waits;
	void *mem;
	char buf[16];

	assert_int_equal(shmq_queue_create(f->r, "q.corrupt", &(struct shmq_queue_opts){ 4, 16, 0 }, &q), 0);
	assert_int_equal(shmq__obj_find(f->r, "q.corrupt", SHMQ__OBJ_QUEUE, &mem, &size), 0);
	sh = mem;
	s0 = (struct shmq__mpmc_slot *)((char *)mem + sizeof(*sh));
	assert_int_equal(shmq_queue_put(q, "abc", 3, SHMQ_NOWAIT), 0);
	s0->len = 1000;
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), -EBADMSG);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_FOREVER), -EBADMSG);
	s0->len = 3;
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), 3);
	sh->tail += 1u << 20;
	assert_int_equal(shmq_queue_put(q, "abc", 3, SHMQ_FOREVER), -EBADMSG);
	sh->tail -= 1u << 20;
	/* the same for a getter: the slot at head is empty as it should be,
	 * only the indices are impossible; a blocked get finds out at the end
	 * of a sleep slice (before, it slept until its timeout: forever with
	 * SHMQ_FOREVER) */
	sh->tail += 1000;
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), 2000000000), -EBADMSG);
	sh->tail -= 1000;
	sh->head += 12345; /* lap 3086 at a slot of lap 0: impossible */
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_FOREVER), -EBADMSG);
	sh->head -= 12345;
	/* a claim naming an owner id no attachment can carry (slot 5,
	 * generation 0): corruption the first time it is read, so even
	 * SHMQ_NOWAIT says so, and a blocking get never sleeps on it */
	sh->head = sh->tail = 4; /* slot 0, lap 1 */
	s0->ctl = 1 | (uint64_t)1 << 2 | (uint64_t)5 << 33; /* WRITING lap 1 by id 5 */
	waits = sh->get_waits;
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), -EBADMSG);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_FOREVER), -EBADMSG);
	assert_int_equal(shmq_queue_put(q, "abc", 3, SHMQ_FOREVER), -EBADMSG); /* the tail's slot too */
	assert_int_equal(sh->get_waits, waits);
	/* a claim naming an id the process table does not list (slot 1023
	 * was never attached): its claimer is surely gone, so the claim is
	 * recovered at first sight, and what the recovery leaves (EMPTY of
	 * lap 2 under indices of lap 1) is refused, all without a sleep */
	s0->ctl = 1 | (uint64_t)1 << 2 | (uint64_t)0x7fffffffu << 33; /* WRITING lap 1 */
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), 100000000), -EBADMSG);
	assert_int_equal(sh->get_waits, waits);
	/* geometry: open refuses */
	sh->capacity = 3;
	assert_int_equal(shmq_queue_open(f->r, "q.corrupt", &q2), -EBADMSG);
	sh->capacity = 4;
	sh->magic = 0;
	assert_int_equal(shmq_queue_open(f->r, "q.corrupt", &q2), -EBADMSG);
	shmq_queue_close(q);

	/* a capacity that is not a power of two */
	assert_int_equal(shmq_queue_create(f->r, "q.corrupt5", &(struct shmq_queue_opts){ 5, 16, 0 }, &q), 0);
	assert_int_equal(shmq__obj_find(f->r, "q.corrupt5", SHMQ__OBJ_QUEUE, &mem, &size), 0);
	sh = mem;
	assert_int_equal(sh->version, SHMQ__MPMC_VERSION);
	sh->version = 3; /* 31-bit laps, no hold bit: refused, never misread */
	assert_int_equal(shmq_queue_open(f->r, "q.corrupt5", &q2), -EPROTO);
	sh->version = SHMQ__MPMC_VERSION + 1;
	assert_int_equal(shmq_queue_open(f->r, "q.corrupt5", &q2), -EPROTO);
	sh->version = SHMQ__MPMC_VERSION;
	sh->capacity = 6; /* the footprint no longer matches */
	assert_int_equal(shmq_queue_open(f->r, "q.corrupt5", &q2), -EBADMSG);
	sh->capacity = 0;
	assert_int_equal(shmq_queue_open(f->r, "q.corrupt5", &q2), -EBADMSG);
	sh->capacity = 5;
	/* indices overwritten to just below 2^64, where p % 5 and p / 5 jump:
	 * answers stay among the documented ones, accesses inside the ring */
	sh->head = sh->tail = UINT64_MAX - 1;
	for (int i = 0; i < 8; i++) {
		int rc = shmq_queue_put(q, "abc", 3, SHMQ_NOWAIT);
		ssize_t n = shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT);

		assert_true(rc == 0 || rc == -EAGAIN || rc == -EBADMSG);
		assert_true(n == 3 || n == -EAGAIN || n == -EBADMSG);
		assert_true(shmq_queue_len(q) <= 5);
	}
	shmq_queue_close(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_open_errors),
		cmocka_unit_test(test_put_get_errors),
		cmocka_unit_test(test_timeouts),
		cmocka_unit_test(test_blocking_wakeups),
		cmocka_unit_test(test_wakes_bursty),
		cmocka_unit_test(test_wakes_slow_consumer),
		cmocka_unit_test(test_shutdown),
		cmocka_unit_test(test_shutdown_dead_producer),
		cmocka_unit_test(test_shutdown_racing_puts_len),
		cmocka_unit_test(test_put_stale_ctl),
		cmocka_unit_test(test_threads_mixed_sizes),
		cmocka_unit_test(test_nowait_dead_producer),
		cmocka_unit_test(test_bulk),
		cmocka_unit_test(test_placement),
		cmocka_unit_test(test_exact_capacity),
		cmocka_unit_test(test_processes_4p4c),
		cmocka_unit_test(test_processes_1p1c_cap10),
		cmocka_unit_test(test_processes_4p4c_cap100),
		cmocka_unit_test(test_dead_claim_unblocks),
		cmocka_unit_test(test_unlisted_claimer),
		cmocka_unit_test(test_corrupted),
		cmocka_unit_test(test_crash_rounds),
	};

	return cmocka_run_group_tests(tests, setup, tu_region_teardown);
}
