/* SPDX-License-Identifier: MIT */
/* Issue 16, item 1: queue messages longer than max_msg, carried through
 * the region's heap (chan/queue_int.h, Protocol QLARGE): byte-exact round
 * trips, get_alloc, the too-small buffer, -ENOSPC that changes nothing,
 * two-phase gets of large messages and their redelivery after a consumer's
 * death, a producer killed mid-put, FIFO per producer across sizes, and a
 * heap that returns to where it was. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "testutil.h"

#include <shmq/introspect.h>

#include "chan/queue_int.h"
#include "core/introspect_int.h"
#include "core/objkind_int.h"
#include "core/region_int.h"
#include "ring/mpmc_int.h"

static int setup(void **state)
{
	return tu_region_setup(state, "qlarge", (size_t)32 << 20);
}

/* Message bytes that say which message and which byte they are. */
static void fill(uint8_t *p, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed * 131u + i * 7u + (i >> 8));
}

static void check_bytes(const uint8_t *p, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != (uint8_t)(seed * 131u + i * 7u + (i >> 8)))
			fail_msg("byte %zu of message %u", i, seed);
}

static void put_msg(shmq_queue *q, size_t len, uint32_t seed)
{
	uint8_t *m = malloc(len ? len : 1);

	assert_non_null(m);
	fill(m, len, seed);
	assert_int_equal(shmq_queue_put(q, m, len, SHMQ_NOWAIT), 0);
	free(m);
}

static uint64_t region_used(shmq_region *r)
{
	struct shmq_region_info info;

	assert_int_equal(shmq_region_info(r, &info), 0);
	return info.used;
}

static shmq_queue *make(struct tu_region *f, const char *name, uint32_t cap, uint32_t max_msg)
{
	shmq_queue *q;

	assert_int_equal(shmq_queue_create(f->r, name, &(struct shmq_queue_opts){ cap, max_msg, 0 }, &q),
			 0);
	return q;
}

/* The ring of a handle: the tests reach the sweep through the private API. */
struct qpeek {
	struct shmq__mpmc ring;
};

static int64_t sweep(shmq_queue *q, shmq_region *r)
{
	return shmq__qlarge_sweep(&((struct qpeek *)(void *)q)->ring, r);
}

/* ---- round trips ---- */

static void test_300_over_256(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q = make(f, "l.300", 8, 256);
	uint8_t buf[512];

	put_msg(q, 300, 1);
	assert_int_equal(shmq_queue_len(q), 1);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), 300);
	check_bytes(buf, 300, 1);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(sweep(q, f->r), 0);
	shmq_queue_close(q);
}

static void test_sizes_exact(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q = make(f, "l.exact", 4, 64);
	size_t sizes[] = { 65, 4096, (size_t)64 << 10, (size_t)4 << 20 };
	uint8_t *buf = malloc((size_t)4 << 20);

	assert_non_null(buf);
	for (size_t i = 0; i < 4; i++) {
		void *m = NULL;

		put_msg(q, sizes[i], (uint32_t)i);
		assert_int_equal(shmq_queue_get(q, buf, (size_t)4 << 20, SHMQ_NOWAIT),
				 (ssize_t)sizes[i]);
		check_bytes(buf, sizes[i], (uint32_t)i);
		put_msg(q, sizes[i], (uint32_t)i + 10);
		assert_int_equal(shmq_queue_get_alloc(q, &m, SHMQ_NOWAIT), (ssize_t)sizes[i]);
		check_bytes(m, sizes[i], (uint32_t)i + 10);
		free(m);
	}
	assert_int_equal(sweep(q, f->r), 0);
	free(buf);
	shmq_queue_close(q);
}

static void test_get_alloc(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q = make(f, "l.alloc", 8, 128);
	void *m = NULL;

	assert_int_equal(shmq_queue_get_alloc(NULL, &m, SHMQ_NOWAIT), -EINVAL);
	assert_int_equal(shmq_queue_get_alloc(q, NULL, SHMQ_NOWAIT), -EINVAL);
	assert_int_equal(shmq_queue_get_alloc(q, &m, SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(shmq_queue_get_alloc(q, &m, 1000000), -ETIMEDOUT);
	put_msg(q, 0, 0);
	put_msg(q, 100, 1);
	put_msg(q, 100000, 2);
	put_msg(q, 128, 3);
	assert_int_equal(shmq_queue_get_alloc(q, &m, SHMQ_NOWAIT), 0);
	assert_non_null(m);
	free(m);
	assert_int_equal(shmq_queue_get_alloc(q, &m, SHMQ_NOWAIT), 100);
	check_bytes(m, 100, 1);
	free(m);
	assert_int_equal(shmq_queue_get_alloc(q, &m, SHMQ_NOWAIT), 100000);
	check_bytes(m, 100000, 2);
	free(m);
	assert_int_equal(shmq_queue_get_alloc(q, &m, SHMQ_NOWAIT), 128);
	check_bytes(m, 128, 3);
	free(m);
	shmq_queue_shutdown(q);
	assert_int_equal(shmq_queue_get_alloc(q, &m, SHMQ_NOWAIT), -EPIPE);
	shmq_queue_close(q);
}

/* A buffer too small for a large message: -EMSGSIZE and it stays, for
 * get, get_bulk; a big enough one takes it. */
static void test_small_buffer_keeps(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q = make(f, "l.small", 8, 64);
	uint8_t buf[2000];
	size_t lens[2];
	struct iovec iov[2] = { { buf, 999 }, { buf + 1000, 1000 } };

	put_msg(q, 1000, 7);
	put_msg(q, 10, 8);
	assert_int_equal(shmq_queue_get(q, buf, 999, SHMQ_NOWAIT), -EMSGSIZE);
	assert_int_equal(shmq_queue_get(q, buf, 64, SHMQ_NOWAIT), -EMSGSIZE);
	assert_int_equal(shmq_queue_get_bulk(q, iov, lens, 2, SHMQ_NOWAIT), -EMSGSIZE);
	assert_int_equal(shmq_queue_len(q), 2);
	iov[0].iov_len = 1000;
	assert_int_equal(shmq_queue_get_bulk(q, iov, lens, 2, SHMQ_NOWAIT), 1);
	assert_int_equal(lens[0], 1000);
	check_bytes(buf, 1000, 7);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), 10);
	check_bytes(buf, 10, 8);
	/* bulk puts stay slot-sized */
	iov[0].iov_len = 65;
	assert_int_equal(shmq_queue_put_bulk(q, iov, 1, SHMQ_NOWAIT), -EMSGSIZE);
	assert_int_equal(sweep(q, f->r), 0);
	shmq_queue_close(q);
}

/* -ENOSPC only when the region cannot hold it, and nothing changes. */
static void test_enospc(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q = make(f, "l.nospc", 8, 64);
	size_t big = (size_t)64 << 20;
	uint8_t *m = calloc(1, big);
	uint64_t used;

	assert_non_null(m);
	put_msg(q, 1000, 1); /* the first chunk */
	used = region_used(f->r);
	assert_int_equal(shmq_queue_put(q, m, big, SHMQ_NOWAIT), -ENOSPC);
	assert_int_equal(shmq_queue_put(q, m, big, 1000000), -ENOSPC);
	assert_int_equal(region_used(f->r), used);
	assert_int_equal(shmq_queue_len(q), 1);
	free(m);
	assert_int_equal(shmq_queue_get_alloc(q, (void **)&m, SHMQ_NOWAIT), 1000);
	check_bytes(m, 1000, 1);
	free(m);
	assert_int_equal(sweep(q, f->r), 0);
	shmq_queue_close(q);
}

/* Placed on plain memory with pid owners there is no heap: -EMSGSIZE. */
static void test_no_region(void **state)
{
	struct shmq_queue_opts o = { 4, 64, 0 };
	size_t size = shmq_queue_footprint(&o);
	void *mem = aligned_alloc(64, size);
	shmq_queue *q;
	uint8_t m[65] = { 0 };

	(void)state;
	assert_non_null(mem);
	assert_int_equal(shmq_queue_init(mem, size, &o, SHMQ_QUEUE_PID_OWNERS), 0);
	assert_int_equal(shmq_queue_attach(NULL, mem, size, &q), 0);
	assert_int_equal(shmq_queue_put(q, m, sizeof(m), SHMQ_NOWAIT), -EMSGSIZE);
	assert_int_equal(shmq_queue_put(q, m, 64, SHMQ_NOWAIT), 0);
	shmq_queue_close(q);
	free(mem);
}

/* ---- two-phase ---- */

static void test_begin_large(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q = make(f, "l.begin", 8, 64);
	const void *msg;
	uint64_t pos, pos2;

	put_msg(q, 70000, 3);
	put_msg(q, 5, 4);
	assert_int_equal(shmq_queue_get_begin(q, &msg, &pos, SHMQ_NOWAIT), 70000);
	check_bytes(msg, 70000, 3);
	assert_int_equal(shmq_queue_get_abort(q, pos), 0);
	assert_int_equal(shmq_queue_get_begin(q, &msg, &pos2, SHMQ_NOWAIT), 70000);
	assert_int_equal(pos2, pos);
	check_bytes(msg, 70000, 3);
	assert_true(sweep(q, f->r) > 70000);
	assert_int_equal(shmq_queue_get_commit(q, pos), 0);
	assert_int_equal(shmq_queue_get_commit(q, pos), -EINVAL);
	assert_int_equal(sweep(q, f->r), 0);
	assert_int_equal(shmq_queue_get_begin(q, &msg, &pos, SHMQ_NOWAIT), 5);
	check_bytes(msg, 5, 4);
	assert_int_equal(shmq_queue_get_commit(q, pos), 0);
	shmq_queue_close(q);
}

/* A consumer killed holding a begun large message: it comes again, same
 * position, same bytes; after the commit the heap is empty. */
static void test_dead_holder_large(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q = make(f, "l.dead", 8, 64);
	const void *msg;
	uint64_t pos;
	char c;
	int pfd[2];
	pid_t pid;

	put_msg(q, 200000, 9);
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *cr = tu_child_region(f->name);
		shmq_queue *cq;

		if (shmq_queue_open(cr, "l.dead", &cq))
			_exit(1);
		if (shmq_queue_get_begin(cq, &msg, &pos, SHMQ_NOWAIT) != 200000 || pos != 0)
			_exit(2);
		if (write(pfd[1], "k", 1) != 1)
			_exit(3);
		pause();
		_exit(4);
	}
	assert_int_equal(read(pfd[0], &c, 1), 1);
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	close(pfd[0]);
	close(pfd[1]);
	/* the sweep keeps a block its slot still carries */
	assert_true(sweep(q, f->r) > 200000);
	assert_int_equal(shmq_queue_get_begin(q, &msg, &pos, SHMQ_NOWAIT), 200000);
	assert_int_equal(pos, 0);
	check_bytes(msg, 200000, 9);
	assert_int_equal(shmq_queue_get_commit(q, pos), 0);
	assert_int_equal(sweep(q, f->r), 0);
	shmq_queue_close(q);
}

/* A producer blocked on a full queue behind the slots of a dead two-phase
 * holder is one of the waiters that notice it (chan/queue.c, Dead
 * claimers): the holder's messages go back although no get_begin runs,
 * and a consumer that uses plain get only takes them again, in order,
 * which makes the room the producer waits for. */
static void test_dead_holder_blocks_put(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q = make(f, "l.dput", 4, 64);
	struct shmq__mpmc *ring = &((struct qpeek *)(void *)q)->ring;
	uint8_t *buf = malloc(300);
	char c;
	int pfd[2];
	pid_t pid;

	assert_non_null(buf);
	for (uint32_t i = 0; i < 4; i++)
		put_msg(q, 200 + i, 20 + i); /* large: max_msg is 64 */
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *cr = tu_child_region(f->name);
		shmq_queue *cq;
		const void *msg;
		uint64_t pos;

		if (shmq_queue_open(cr, "l.dput", &cq))
			_exit(1);
		for (uint64_t i = 0; i < 2; i++)
			if (shmq_queue_get_begin(cq, &msg, &pos, SHMQ_NOWAIT) != (ssize_t)(200 + i) ||
			    pos != i)
				_exit(2);
		if (write(pfd[1], "k", 1) != 1)
			_exit(3);
		pause();
		_exit(4);
	}
	assert_int_equal(read(pfd[0], &c, 1), 1);
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	close(pfd[0]);
	close(pfd[1]);
	/* plain gets take what was not held; the ring stays full: its next
	 * slot for a put is the dead holder's first */
	for (uint32_t i = 2; i < 4; i++) {
		assert_int_equal(shmq_queue_get(q, buf, 300, SHMQ_NOWAIT), 200 + i);
		check_bytes(buf, 200 + i, 20 + i);
	}
	fill(buf, 250, 30);
	/* the put waits past a liveness slice: it gives both held messages
	 * back (nothing else waits), then still finds no room */
	assert_int_equal(shmq_queue_put(q, buf, 250, (int64_t)500 * 1000 * 1000), -ETIMEDOUT);
	assert_int_equal(__atomic_load_n(&ring->sh->returned, __ATOMIC_SEQ_CST), 2);
	/* plain get hands them out again, oldest first, which frees the room */
	for (uint32_t i = 0; i < 2; i++) {
		assert_int_equal(shmq_queue_get(q, buf, 300, SHMQ_NOWAIT), 200 + i);
		check_bytes(buf, 200 + i, 20 + i);
	}
	fill(buf, 250, 30);
	assert_int_equal(shmq_queue_put(q, buf, 250, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_queue_get(q, buf, 300, SHMQ_NOWAIT), 250);
	check_bytes(buf, 250, 30);
	assert_int_equal(sweep(q, f->r), 0);
	free(buf);
	shmq_queue_close(q);
}

/* A producer killed while it waits for a slot, its message already in the
 * heap: the message was never put, and the sweep takes its block back. */
static void test_dead_producer(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q = make(f, "l.prod", 1, 64);
	uint8_t buf[64];
	pid_t pid;

	put_msg(q, 10, 1); /* full */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *cr = tu_child_region(f->name);
		shmq_queue *cq;

		if (shmq_queue_open(cr, "l.prod", &cq))
			_exit(1);
		uint8_t *m = calloc(1, 50000);

		if (!m)
			_exit(2);
		shmq_queue_put(cq, m, 50000, (int64_t)60 * 1000000000); /* blocks */
		_exit(3);
	}
	/* the child's block shows once it is allocated */
	for (int i = 0; i < 2000 && sweep(q, f->r) == 0; i++)
		usleep(1000);
	assert_true(sweep(q, f->r) > 0);
	kill(pid, SIGKILL);
	tu_wait_child(pid);
	assert_int_equal(sweep(q, f->r), 0);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), 10);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), -EAGAIN);
	shmq_queue_close(q);
}

/* Positions near 2^64, as a writer of the region can set them (the slots'
 * laps made to agree): a large message carried by position 2^64 - 1, whose
 * number is also the block's "no position yet" (SHMQ__QLARGE_POS_NONE),
 * outlives its producer.  Before, the sweep took the block of a producer
 * that had exited for one that died before its claim and freed it under
 * the slot that still carried it: the get then found the block FREE and
 * failed with -EBADMSG, the message lost. */
static void test_pos_max(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q = make(f, "l.posmax", 4, 64);
	struct shmq__mpmc *ring = &((struct qpeek *)(void *)q)->ring;
	const uint64_t start = UINT64_MAX - 1;
	uint8_t buf[512];
	pid_t pid;

	for (uint64_t p = start; p != start + 4; p++) { /* EMPTY of each position's lap */
		struct shmq__mpmc_slot *s = (struct shmq__mpmc_slot *)(ring->slots + (p % 4) * ring->slot_size);

		s->ctl = ((p / 4) & ((1u << 30) - 1)) << 2;
	}
	ring->sh->head = ring->sh->tail = start;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *cr = tu_child_region(f->name);
		shmq_queue *cq;
		uint8_t m[300];

		if (shmq_queue_open(cr, "l.posmax", &cq))
			_exit(1);
		for (uint32_t i = 0; i < 3; i++) { /* positions 2^64 - 2, 2^64 - 1, 0 */
			fill(m, 200 + i, 40 + i);
			if (shmq_queue_put(cq, m, 200 + i, SHMQ_NOWAIT))
				_exit(2);
		}
		shmq_queue_close(cq);
		shmq_region_close(cr); /* our owner id is gone */
		_exit(0);
	}
	assert_int_equal(tu_wait_child(pid), 0);
	/* all three blocks stay */
	assert_true(sweep(q, f->r) >= 3 * (200 + (int64_t)sizeof(struct shmq__qlarge_block)));
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), 200);
	check_bytes(buf, 200, 40);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), 201);
	check_bytes(buf, 201, 41);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), 202);
	check_bytes(buf, 202, 42);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(sweep(q, f->r), 0);
	shmq_queue_close(q);
}

/* ---- chunk locks and the put's one deadline ---- */

/* The chunks of q's heap, in chain order, at most max: how many. */
static int chunks_of(shmq_queue *q, shmq_region *r, struct shmq__qlarge_chunk **c, int max)
{
	struct shmq__mpmc *m = &((struct qpeek *)(void *)q)->ring;
	uint64_t off = __atomic_load_n(&m->sh->large, __ATOMIC_SEQ_CST);
	int n = 0;

	while (off && n < max) {
		c[n] = shmq__region_ptr(r, off, sizeof(**c));
		assert_non_null(c[n]);
		off = __atomic_load_n(&c[n]->next, __ATOMIC_SEQ_CST);
		n++;
	}
	return n;
}

#define HOLD_CHUNKS 12

/* Another producer's thread that holds the locks of chunks and lets them
 * go one at a time, HOLD_NS apart (or all at once on stop). */
struct holder {
	shmq_region *r;
	struct shmq__qlarge_chunk *c[HOLD_CHUNKS];
	int n;
	int64_t hold_ns;
	int held; /* set once every lock is held */
	int stop;
};

static void *holder_main(void *arg)
{
	struct holder *h = arg;
	shmq_lock *l[HOLD_CHUNKS];

	for (int i = 0; i < h->n; i++) {
		if (shmq_lock_attach(h->r, h->c[i]->lock, &l[i]) ||
		    shmq_lock_acquire(l[i], SHMQ_FOREVER))
			return (void *)1;
	}
	__atomic_store_n(&h->held, 1, __ATOMIC_SEQ_CST);
	for (int i = 0; i < h->n; i++) {
		int64_t until = shmq_now_ns() + h->hold_ns;

		while (!__atomic_load_n(&h->stop, __ATOMIC_SEQ_CST) && shmq_now_ns() < until)
			tu_sleep_ns(1000 * 1000);
		shmq_lock_release(l[i]);
		shmq_lock_close(l[i]);
	}
	return NULL;
}

/* A put's timeout bounds the whole call: a large put on a full queue
 * whose chunk locks another producer takes in turn, each for a while
 * shorter than the timeout, returns -ETIMEDOUT once, near its timeout,
 * not after a timeout per chunk and another for the slot. */
static void test_put_one_deadline(void **state)
{
	struct tu_region own, *f = &own;
	void *st = NULL;
	struct holder h = { 0 };
	shmq_queue *q;
	pthread_t t;
	uint8_t *buf;
	int64_t t0, took;
	void *ret;

	(void)state;
	assert_int_equal(tu_region_setup(&st, "qlarge-dl", (size_t)24 << 20), 0);
	own = *(struct tu_region *)st;
	q = make(f, "l.deadline", HOLD_CHUNKS, 64);
	/* a message of 1 MiB fills a chunk of its own: HOLD_CHUNKS chunks, and
	 * the ring is full.  A block of the region after each chunk keeps the
	 * next message from growing it (chunk_grow) */
	for (uint32_t i = 0; i < HOLD_CHUNKS; i++) {
		char name[16];
		void *mem;

		put_msg(q, (size_t)1 << 20, i);
		snprintf(name, sizeof(name), "l.after%u", i);
		assert_int_equal(shmq_region_alloc(f->r, name, 64, &mem), 0);
	}
	h.r = f->r;
	h.n = chunks_of(q, f->r, h.c, HOLD_CHUNKS);
	assert_int_equal(h.n, HOLD_CHUNKS);
	h.hold_ns = 50 * 1000 * 1000;
	assert_int_equal(pthread_create(&t, NULL, holder_main, &h), 0);
	for (int i = 0; i < 100000 && !__atomic_load_n(&h.held, __ATOMIC_SEQ_CST); i++)
		tu_sleep_ns(100 * 1000);
	assert_true(__atomic_load_n(&h.held, __ATOMIC_SEQ_CST));
	buf = calloc(1, 1000);
	assert_non_null(buf);
	t0 = shmq_now_ns();
	assert_int_equal(shmq_queue_put(q, buf, 1000, 100 * 1000 * 1000), -ETIMEDOUT);
	took = shmq_now_ns() - t0;
	__atomic_store_n(&h.stop, 1, __ATOMIC_SEQ_CST);
	assert_int_equal(pthread_join(t, &ret), 0);
	assert_null(ret);
	assert_true(took >= 100 * 1000 * 1000);
	/* the old reuse of the timeout per step: a chunk at a time, then the
	 * slot, 700 ms and more */
	if (took >= 600 * 1000 * 1000)
		fail_msg("-ETIMEDOUT after %lld ms for a timeout of 100 ms", (long long)(took / 1000000));
	/* nothing taken from the heap was left behind, nothing was put */
	assert_int_equal(shmq_queue_len(q), HOLD_CHUNKS);
	assert_int_equal(sweep(q, f->r), (int64_t)HOLD_CHUNKS * (((1 << 20) + 64 + 63) / 64 * 64));
	free(buf);
	shmq_queue_close(q);
	assert_int_equal(tu_region_teardown(&st), 0);
}

/* A thread that takes the lock of chunk c on request and lets it go a
 * 10 microseconds after the put it waits for began: another producer's
 * short section (Protocol QLARGE, Chunks). */
struct brief {
	shmq_region *r;
	struct shmq__qlarge_chunk *c;
	cpu_set_t cpu; /* its own, not the put's: a poll helps a holder that runs */
	int phase; /* 1: take it, 2: held, 3: the put began, 4: let go, 5: end */
	int64_t put_at;   /* when the put began, set before 3 */
	int64_t let_go_at; /* when it let go, set before 4 */
};

static void *brief_main(void *arg)
{
	struct brief *b = arg;
	shmq_lock *l;
	int p;

	if (pthread_setaffinity_np(pthread_self(), sizeof(b->cpu), &b->cpu) ||
	    shmq_lock_attach(b->r, b->c->lock, &l)) {
		__atomic_store_n(&b->phase, -1, __ATOMIC_SEQ_CST);
		return (void *)1;
	}
	while ((p = __atomic_load_n(&b->phase, __ATOMIC_SEQ_CST)) != 5) {
		if (p != 1) {
			sched_yield();
			continue;
		}
		if (shmq_lock_acquire(l, SHMQ_FOREVER)) {
			__atomic_store_n(&b->phase, -1, __ATOMIC_SEQ_CST);
			return (void *)2;
		}
		__atomic_store_n(&b->phase, 2, __ATOMIC_SEQ_CST);
		while (__atomic_load_n(&b->phase, __ATOMIC_SEQ_CST) != 3)
			; /* no yield: the put's poll is short */
		for (int64_t until = shmq_now_ns() + 10 * 1000; shmq_now_ns() < until;)
			;
		shmq_lock_release(l);
		__atomic_store_n(&b->let_go_at, shmq_now_ns(), __ATOMIC_SEQ_CST);
		__atomic_store_n(&b->phase, 4, __ATOMIC_SEQ_CST);
	}
	shmq_lock_close(l);
	return NULL;
}

/* SHMQ_NOWAIT says -EAGAIN where the put would block: a queue with room
 * whose chunk another producer carves for 10 microseconds, on another
 * CPU, is not such a place.  Most tries must go in.  A holder held off the
 * CPU (it let go more than the put's 50 us of polls after the put began) is
 * a put that would block: such a try does not count, and a machine too
 * loaded for 10 tries that count skips the test.  The two threads get a
 * CPU each: a holder that waits for the putter's CPU is a put that would
 * block too. */
#define BRIEF_HELD_MAX_NS ((int64_t)50 * 1000)
static void test_nowait_short_section(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q;
	struct brief b = { 0 };
	uint8_t buf[1000];
	int ok = 0, again = 0, tries = 40, counted = 0, first = -1, second = -1;
	cpu_set_t all, mine;
	pthread_t t;
	void *ret;

	assert_int_equal(sched_getaffinity(0, sizeof(all), &all), 0);
	for (int i = 0; i < CPU_SETSIZE && second < 0; i++)
		if (CPU_ISSET(i, &all))
			*(first < 0 ? &first : &second) = i;
	if (second < 0)
		skip(); /* one CPU: every held lock is a put that would block */
	CPU_ZERO(&mine);
	CPU_SET(first, &mine);
	CPU_ZERO(&b.cpu);
	CPU_SET(second, &b.cpu);
	assert_int_equal(sched_setaffinity(0, sizeof(mine), &mine), 0);
	q = make(f, "l.brief", 8, 64);
	put_msg(q, sizeof(buf), 0); /* the chunk */
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), (ssize_t)sizeof(buf));
	b.r = f->r;
	assert_int_equal(chunks_of(q, f->r, &b.c, 1), 1);
	assert_int_equal(pthread_create(&t, NULL, brief_main, &b), 0);
	for (int i = 0; i < 10 * tries && counted < tries; i++) {
		bool held_off;
		int rc, p;

		fill(buf, sizeof(buf), (uint32_t)i);
		__atomic_store_n(&b.phase, 1, __ATOMIC_SEQ_CST);
		while ((p = __atomic_load_n(&b.phase, __ATOMIC_SEQ_CST)) != 2) {
			if (p < 0)
				fail_msg("the holder thread failed");
			sched_yield();
		}
		__atomic_store_n(&b.put_at, shmq_now_ns(), __ATOMIC_SEQ_CST);
		__atomic_store_n(&b.phase, 3, __ATOMIC_SEQ_CST);
		rc = shmq_queue_put(q, buf, sizeof(buf), SHMQ_NOWAIT);
		while (__atomic_load_n(&b.phase, __ATOMIC_SEQ_CST) != 4)
			sched_yield();
		held_off = __atomic_load_n(&b.let_go_at, __ATOMIC_SEQ_CST) -
				   __atomic_load_n(&b.put_at, __ATOMIC_SEQ_CST) > BRIEF_HELD_MAX_NS;
		counted += !held_off;
		if (rc == 0) {
			ok += !held_off;
			memset(buf, 0, sizeof(buf));
			assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT),
					 (ssize_t)sizeof(buf));
			check_bytes(buf, sizeof(buf), (uint32_t)i);
		} else {
			assert_int_equal(rc, -EAGAIN);
			again += !held_off;
		}
	}
	__atomic_store_n(&b.phase, 5, __ATOMIC_SEQ_CST);
	assert_int_equal(pthread_join(t, &ret), 0);
	assert_null(ret);
	assert_int_equal(sched_setaffinity(0, sizeof(all), &all), 0);
	assert_int_equal(shmq_queue_len(q), 0);
	assert_int_equal(sweep(q, f->r), 0);
	shmq_queue_close(q);
	if (counted < 10)
		skip(); /* the holder was held off nearly every time */
	if (ok < counted / 2)
		fail_msg("%d of %d SHMQ_NOWAIT puts said -EAGAIN behind a short section", again, counted);
}

/* A producer that stays in its section (stopped): SHMQ_NOWAIT says
 * -EAGAIN soon and takes nothing; a timed put says -ETIMEDOUT, not
 * earlier than its timeout.  A holder that dies there: the next put,
 * SHMQ_NOWAIT too, takes the lock over and goes in. */
static void test_chunk_lock_kept_or_dead(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q = make(f, "l.kept", 8, 64);
	struct shmq__qlarge_chunk *c;
	uint8_t buf[1000];
	int64_t t0, took;
	int pfd[2];
	char k;
	pid_t pid;

	put_msg(q, sizeof(buf), 0); /* the chunk */
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), (ssize_t)sizeof(buf));
	assert_int_equal(chunks_of(q, f->r, &c, 1), 1);
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *cr = tu_child_region(f->name);
		shmq_lock *l;

		if (shmq_lock_attach(cr, c->lock, &l) || shmq_lock_acquire(l, SHMQ_NOWAIT))
			_exit(1);
		if (write(pfd[1], "k", 1) != 1)
			_exit(2);
		pause();
		_exit(3);
	}
	assert_int_equal(read(pfd[0], &k, 1), 1);
	fill(buf, sizeof(buf), 7);
	t0 = shmq_now_ns();
	assert_int_equal(shmq_queue_put(q, buf, sizeof(buf), SHMQ_NOWAIT), -EAGAIN);
	took = shmq_now_ns() - t0;
	/* (the lock is held for good: a put that waited for it would not
	 * come back at all; 1 s is for a loaded machine) */
	if (took >= 1000 * 1000 * 1000)
		fail_msg("SHMQ_NOWAIT took %lld ms", (long long)(took / 1000000));
	t0 = shmq_now_ns();
	assert_int_equal(shmq_queue_put(q, buf, sizeof(buf), 30 * 1000 * 1000), -ETIMEDOUT);
	assert_true(shmq_now_ns() - t0 >= 30 * 1000 * 1000);
	assert_int_equal(shmq_queue_len(q), 0);
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	close(pfd[0]);
	close(pfd[1]);
	assert_int_equal(shmq_queue_put(q, buf, sizeof(buf), SHMQ_NOWAIT), 0);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), (ssize_t)sizeof(buf));
	check_bytes(buf, sizeof(buf), 7);
	assert_int_equal(sweep(q, f->r), 0);
	shmq_queue_close(q);
}

/* ---- order and reuse ---- */

/* Two producers put mixed sizes; the consumer sees each one's in order. */
static void test_fifo_mixed(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q = make(f, "l.fifo", 16, 64);
	enum { N = 300 };
	uint32_t next[2] = { 0, 0 };
	pid_t pids[2];

	for (int p = 0; p < 2; p++) {
		pids[p] = fork();
		assert_true(pids[p] >= 0);
		if (pids[p] == 0) {
			shmq_region *cr = tu_child_region(f->name);
			shmq_queue *cq;
			uint8_t *m = malloc(20000);

			if (!m || shmq_queue_open(cr, "l.fifo", &cq))
				_exit(1);
			for (uint32_t i = 0; i < N; i++) {
				size_t len = 8 + (i % 3 == 0 ? 20000 - 8 : i % 3 == 1 ? 50 : 300);

				fill(m, len, i);
				memcpy(m, &p, sizeof(int));
				memcpy(m + 4, &i, sizeof(i));
				if (shmq_queue_put(cq, m, len, (int64_t)10 * 1000000000))
					_exit(2);
			}
			_exit(0);
		}
	}
	for (int n = 0; n < 2 * N; n++) {
		void *m = NULL;
		ssize_t len = shmq_queue_get_alloc(q, &m, (int64_t)10 * 1000000000);
		int p;
		uint32_t i;

		if (len < 8)
			fail_msg("get_alloc: %zd after %u and %u", len, next[0], next[1]);
		memcpy(&p, m, sizeof(int));
		memcpy(&i, (uint8_t *)m + 4, sizeof(i));
		assert_true(p == 0 || p == 1);
		assert_int_equal(i, next[p]);
		assert_int_equal((size_t)len, 8 + (i % 3 == 0 ? 20000 - 8 : i % 3 == 1 ? 50 : 300));
		next[p]++;
		free(m);
	}
	for (int p = 0; p < 2; p++)
		assert_int_equal(tu_wait_child(pids[p]), 0);
	assert_int_equal(sweep(q, f->r), 0);
	shmq_queue_close(q);
}

/* The heap's blocks come back: after the first chunk, 500 round trips of
 * mixed sizes do not move the region's use. */
static void test_heap_reused(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q = make(f, "l.reuse", 8, 64);
	uint64_t used;
	void *m;

	put_msg(q, 100, 0);
	assert_int_equal(shmq_queue_get_alloc(q, &m, SHMQ_NOWAIT), 100);
	free(m);
	used = region_used(f->r);
	for (uint32_t i = 0; i < 500; i++) {
		size_t len = 65 + (i * 7919u) % 150000;

		put_msg(q, len, i);
		if (i % 3 == 0)
			put_msg(q, len / 2 + 65, i + 1);
		assert_int_equal(shmq_queue_get_alloc(q, &m, SHMQ_NOWAIT), (ssize_t)len);
		check_bytes(m, len, i);
		free(m);
		if (i % 3 == 0) {
			assert_int_equal(shmq_queue_get_alloc(q, &m, SHMQ_NOWAIT), (ssize_t)(len / 2 + 65));
			free(m);
		}
	}
	assert_int_equal(region_used(f->r), used);
	assert_int_equal(sweep(q, f->r), 0);
	shmq_queue_close(q);
}

/* A server's large messages grow over its life, or come in a burst and
 * drain: the chunks they made must give their free space back to one
 * message that fits the region's free space in total.  Before, each size
 * that fit no chunk made a chunk of its own beside the others, and a
 * drained queue in a 16 MiB region refused 8 MiB with -ENOSPC forever. */
static void test_heap_no_split(void **state)
{
	const size_t mib = (size_t)1 << 20;
	struct shmq_region_opts o = { .size = 16 * mib };
	uint64_t base;
	shmq_region *r;
	shmq_queue *q;
	void *m;

	(void)state;
	assert_int_equal(shmq_region_create(NULL, &o, &r), 0);
	assert_int_equal(shmq_queue_create(r, "l.split", &(struct shmq_queue_opts){ 16, 64, 0 }, &q),
			 0);
	base = region_used(r);
	/* sizes that grow: each fits no chunk made before it */
	for (uint32_t i = 0; i < 4; i++) {
		put_msg(q, (2 + i) * mib, i);
		assert_int_equal(shmq_queue_get_alloc(q, &m, SHMQ_NOWAIT), (ssize_t)((2 + i) * mib));
		check_bytes(m, (2 + i) * mib, i);
		free(m);
	}
	/* a burst of messages in flight at once, then drained */
	for (uint32_t i = 0; i < 8; i++)
		put_msg(q, 900 << 10, 10 + i);
	for (uint32_t i = 0; i < 8; i++) {
		assert_int_equal(shmq_queue_get_alloc(q, &m, SHMQ_NOWAIT), 900 << 10);
		check_bytes(m, 900 << 10, 10 + i);
		free(m);
	}
	/* the queue is empty: one message of 8 MiB, then of all but 1 MiB
	 * of what the region had free, fits again and again */
	for (uint32_t i = 0; i < 4; i++) {
		size_t len = i % 2 ? 16 * mib - base - mib : 8 * mib;

		put_msg(q, len, 20 + i);
		assert_int_equal(shmq_queue_get_alloc(q, &m, SHMQ_NOWAIT), (ssize_t)len);
		check_bytes(m, len, 20 + i);
		free(m);
	}
	assert_int_equal(sweep(q, r), 0);
	shmq_queue_close(q);
	shmq_region_close(r);
}

/* A descriptor that names memory outside the heap or another block:
 * -EBADMSG, never a copy. */
static void test_bad_descriptor(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q = make(f, "l.bad", 4, 64);
	struct shmq__mpmc *m = &((struct qpeek *)(void *)q)->ring;
	struct shmq__qlarge_desc *d;
	const void *msg;
	uint64_t pos;
	uint8_t buf[4096];

	for (int k = 0; k < 4; k++) {
		put_msg(q, 3000, 1);
		d = shmq__mpmc_slot_data(m, (uint64_t)k);
		if (k == 0)
			d->off = 64; /* the header page */
		else if (k == 1)
			d->off += 64; /* inside its block */
		else if (k == 2)
			d->len = (uint64_t)40 << 20;
		else
			d->st ^= 4; /* another generation */
		if (k == 1) {
			assert_int_equal(shmq_queue_get_begin(q, &msg, &pos, SHMQ_NOWAIT), -EBADMSG);
		} else {
			assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT),
					 k == 2 ? -EMSGSIZE : -EBADMSG);
			if (k == 2) {
				void *a = NULL;

				assert_int_equal(shmq_queue_get_alloc(q, &a, SHMQ_NOWAIT), -EBADMSG);
				free(a);
			}
		}
		assert_int_equal(shmq_queue_len(q), 0);
	}
	assert_int_equal(sweep(q, f->r), 0); /* the sweep frees what they named */
	shmq_queue_close(q);
}

/* A large slot whose length says almost 4 GiB (found by fuzz_queue): in a
 * 32 MiB region no copy can be that long, so get_alloc sizes no buffer
 * past the region and says -EBADMSG; it does not ask malloc for the
 * length.  The child runs under an address-space limit far below the
 * length, where such a malloc fails and get_alloc said -ENOMEM; the
 * sanitizer builds reserve terabytes of address space and cannot take the
 * limit, so there only the outcome is checked. */
static void test_get_alloc_hostile_len(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q = make(f, "l.huge", 4, 64);
	struct shmq__mpmc *m = &((struct qpeek *)(void *)q)->ring;
	struct shmq__qlarge_desc *d;
	pid_t pid;

	put_msg(q, 3000, 3);
	d = shmq__mpmc_slot_data(m, 0);
	d->len = 0xf0000000u;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *cr = tu_child_region(f->name);
		shmq_queue *cq;
		void *a = NULL;
		ssize_t n;

		if (shmq_queue_open(cr, "l.huge", &cq))
			_exit(1);
#ifndef SHMQ_SANITIZED
		{
			struct rlimit rl = { (rlim_t)1 << 30, (rlim_t)1 << 30 }; /* 1 GiB */

			if (setrlimit(RLIMIT_AS, &rl))
				_exit(2);
		}
#endif
		n = shmq_queue_get_alloc(cq, &a, SHMQ_NOWAIT);
		free(a);
		_exit(n == -EBADMSG ? 0 : n == -ENOMEM ? 3 : 4);
	}
	assert_int_equal(tu_wait_child(pid), 0);
	assert_int_equal(shmq_queue_len(q), 0); /* the broken descriptor went */
	assert_int_equal(sweep(q, f->r), 0);
	shmq_queue_close(q);
}

/* shmq stat: large messages in flight, count and bytes. */
static void test_describe_large(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q = make(f, "l.stat", 8, 64);
	struct shmq__obj_stat st;
	const struct shmq__stat_kv *kv;
	uint64_t size;
	void *mem;

	assert_int_equal(shmq__obj_find(f->r, "l.stat", SHMQ__OBJ_QUEUE, &mem, &size), 0);
	put_msg(q, 1000, 1);
	put_msg(q, 2000, 2);
	put_msg(q, 10, 3);
	memset(&st, 0, sizeof(st));
	assert_int_equal(shmq__obj_describe(f->r, SHMQ__OBJ_QUEUE, mem, size, &st), 0);
	assert_int_equal(st.status, 0);
	assert_non_null(kv = shmq__stat_get(&st, "large_msgs"));
	assert_int_equal(kv->u, 2);
	assert_non_null(kv = shmq__stat_get(&st, "large_bytes"));
	assert_true(kv->u >= 3000 && kv->u < 3000 + 4 * 64);
	assert_non_null(kv = shmq__stat_get(&st, "large_chunks"));
	assert_int_equal(kv->u, 1);
	shmq_queue_close(q);
}

/* A hostile process that flips a chunk's size between its true value and
 * a huge one while shmq stat walks the heap: the walk uses the size it
 * checked, never a second read of it.  The first block says it spans a
 * terabyte, which only the huge size admits; a walk bounded by a re-read
 * size steps past the mapping.  Bounded: a few hundred thousand looks or
 * one second, whichever comes first. */
struct size_flip {
	uint64_t *size;
	uint64_t good, bad;
	int started, stop;
};

static void *size_flip_main(void *arg)
{
	struct size_flip *fl = arg;

	__atomic_store_n(&fl->started, 1, __ATOMIC_SEQ_CST);
	while (!__atomic_load_n(&fl->stop, __ATOMIC_RELAXED)) {
		__atomic_store_n(fl->size, fl->bad, __ATOMIC_RELAXED);
		__atomic_store_n(fl->size, fl->good, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void test_describe_chunk_size_flips(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q = make(f, "l.flip", 8, 64);
	struct size_flip fl = { 0 };
	struct shmq__obj_stat st;
	struct shmq__qlarge_chunk *c;
	struct shmq__qlarge_block *b;
	uint64_t size, bsize;
	int64_t until;
	pthread_t t;
	void *mem;

	assert_int_equal(shmq__obj_find(f->r, "l.flip", SHMQ__OBJ_QUEUE, &mem, &size), 0);
	put_msg(q, 1000, 1);
	c = shmq__region_ptr(f->r, ((struct shmq__mpmc_shared *)mem)->large, sizeof(*c));
	assert_non_null(c);
	b = (struct shmq__qlarge_block *)(c + 1);
	bsize = b->size;
	b->size = (uint64_t)1 << 40;
	fl.size = &c->size;
	fl.good = c->size;
	fl.bad = (uint64_t)1 << 41;
	assert_int_equal(pthread_create(&t, NULL, size_flip_main, &fl), 0);
	while (!__atomic_load_n(&fl.started, __ATOMIC_SEQ_CST))
		sched_yield();
	until = shmq_now_ns() + 1000000000;
	for (int i = 0; i < 300000 && shmq_now_ns() < until; i++) {
		assert_int_equal(shmq__obj_describe(f->r, SHMQ__OBJ_QUEUE, mem, size, &st), 0);
		assert_true(st.status == 0 || st.status == -EBADMSG);
	}
	__atomic_store_n(&fl.stop, 1, __ATOMIC_SEQ_CST);
	assert_int_equal(pthread_join(t, NULL), 0);
	c->size = fl.good;
	b->size = bsize;
	shmq_queue_close(q);
}

/* An older library's ring (versions 4, 5 and 6) is refused, never
 * misread: 4 keeps no pending bit and knows no large slots, 5's sleepers
 * run no remote fence, 6's producers claim in ctl (ring/mpmc_int.h). */
static void test_old_layout(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q = make(f, "l.v4", 4, 64), *q2;
	struct shmq__mpmc_shared *sh;
	uint64_t size;
	void *mem;

	assert_int_equal(shmq__obj_find(f->r, "l.v4", SHMQ__OBJ_QUEUE, &mem, &size), 0);
	sh = mem;
	assert_int_equal(sh->version, 7);
	sh->version = SHMQ__MPMC_VERSION_HOLD;
	assert_int_equal(shmq_queue_open(f->r, "l.v4", &q2), -EPROTO);
	sh->version = SHMQ__MPMC_VERSION_PENDING;
	assert_int_equal(shmq_queue_open(f->r, "l.v4", &q2), -EPROTO);
	sh->version = SHMQ__MPMC_VERSION_FENCED;
	assert_int_equal(shmq_queue_open(f->r, "l.v4", &q2), -EPROTO);
	sh->version = SHMQ__MPMC_VERSION;
	assert_int_equal(shmq_queue_open(f->r, "l.v4", &q2), 0);
	shmq_queue_close(q2);
	shmq_queue_close(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_300_over_256),
		cmocka_unit_test(test_sizes_exact),
		cmocka_unit_test(test_get_alloc),
		cmocka_unit_test(test_small_buffer_keeps),
		cmocka_unit_test(test_enospc),
		cmocka_unit_test(test_no_region),
		cmocka_unit_test(test_begin_large),
		cmocka_unit_test(test_dead_holder_large),
		cmocka_unit_test(test_dead_holder_blocks_put),
		cmocka_unit_test(test_dead_producer),
		cmocka_unit_test(test_pos_max),
		cmocka_unit_test(test_put_one_deadline),
		cmocka_unit_test(test_nowait_short_section),
		cmocka_unit_test(test_chunk_lock_kept_or_dead),
		cmocka_unit_test(test_fifo_mixed),
		cmocka_unit_test(test_heap_reused),
		cmocka_unit_test(test_heap_no_split),
		cmocka_unit_test(test_bad_descriptor),
		cmocka_unit_test(test_get_alloc_hostile_len),
		cmocka_unit_test(test_describe_large),
		cmocka_unit_test(test_describe_chunk_size_flips),
		cmocka_unit_test(test_old_layout),
	};

	return cmocka_run_group_tests(tests, setup, tu_region_teardown);
}
