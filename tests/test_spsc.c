/* SPDX-License-Identifier: MIT */
/* The raw SPSC byte ring: geometry, records across the wrap, zero copy, bulk
 * calls, waiting, two threads, and corrupted indices and lengths (-EBADMSG,
 * never an access outside the ring: run under ASan). */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/uio.h>

#include "testutil.h"

#include "ring/spsc_int.h"
#include "core/wait_int.h"

#include "spsc_ring.h"


static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void fill(uint8_t *b, size_t n, uint64_t seq)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(seq * 131 + i * 7 + (i >> 8));
}

static int check(const uint8_t *b, size_t n, uint64_t seq)
{
	for (size_t i = 0; i < n; i++)
		if (b[i] != (uint8_t)(seq * 131 + i * 7 + (i >> 8)))
			return -1;
	return 0;
}

static void test_geometry(void **state)
{
	struct ring t;
	void *mem = aligned_alloc(64, 4096);

	(void)state;
	assert_int_equal(shmq__spsc_footprint(0), 0);
	assert_int_equal(shmq__spsc_footprint(100), 0);
	assert_int_equal(shmq__spsc_footprint(32), 0);
	assert_int_equal(shmq__spsc_footprint((uint64_t)1 << 32), 0);
	assert_int_equal(shmq__spsc_footprint(1024), sizeof(struct shmq__spsc) + 512 + 1024);
	assert_int_equal(shmq__spsc_footprint(64), sizeof(struct shmq__spsc) + 64 + 64);
	assert_int_equal(shmq__spsc_init(mem, 4096, 100), -EINVAL);
	assert_int_equal(shmq__spsc_init(mem, 1024, 1024), -EINVAL); /* too small */
	assert_int_equal(shmq__spsc_init((uint8_t *)mem + 8, 2048, 1024), -EINVAL);
	assert_int_equal(shmq__spsc_init(mem, 4096, 1024), 0);
	assert_int_equal(shmq__spsc_prod_attach(&t.p, mem, 1024), -EBADMSG); /* size < footprint */
	((struct shmq__spsc *)mem)->version = 99;
	assert_int_equal(shmq__spsc_cons_attach(&t.c, mem, 4096), -EPROTO);
	((struct shmq__spsc *)mem)->version = SHMQ__SPSC_VERSION;
	((struct shmq__spsc *)mem)->magic = 1;
	assert_int_equal(shmq__spsc_cons_attach(&t.c, mem, 4096), -EBADMSG);
	((struct shmq__spsc *)mem)->magic = SHMQ__SPSC_MAGIC;
	((struct shmq__spsc *)mem)->capacity = 96;
	assert_int_equal(shmq__spsc_prod_attach(&t.p, mem, 4096), -EBADMSG);
	((struct shmq__spsc *)mem)->capacity = 8192; /* larger than the block */
	assert_int_equal(shmq__spsc_prod_attach(&t.p, mem, 4096), -EBADMSG);
	free(mem);
	assert_int_equal(shmq__spsc_max_msg(1024), 504);
}

static void test_fifo_sizes(void **state)
{
	struct ring t;
	uint8_t buf[600];
	ssize_t n;

	(void)state;
	ring_new(&t, 1024);
	assert_int_equal(shmq__spsc_recv(&t.c, buf, sizeof(buf)), -EAGAIN);
	fill(buf, 504, 1);
	assert_int_equal(shmq__spsc_send(&t.p, buf, 505), -EMSGSIZE);
	assert_int_equal(shmq__spsc_send(&t.p, buf, 0), 0);
	assert_int_equal(shmq__spsc_send(&t.p, buf, 504), 0);
	fill(buf, 5, 2);
	assert_int_equal(shmq__spsc_send(&t.p, buf, 5), 0);
	assert_int_equal(shmq__spsc_recv(&t.c, buf, sizeof(buf)), 0);
	n = shmq__spsc_recv(&t.c, buf, 10);
	assert_int_equal(n, -EMSGSIZE); /* stays queued */
	n = shmq__spsc_recv(&t.c, buf, sizeof(buf));
	assert_int_equal(n, 504);
	assert_int_equal(check(buf, 504, 1), 0);
	assert_int_equal(shmq__spsc_recv(&t.c, buf, sizeof(buf)), 5);
	assert_int_equal(check(buf, 5, 2), 0);
	assert_int_equal(shmq__spsc_recv(&t.c, buf, sizeof(buf)), -EAGAIN);
	ring_free(&t);
}

static void test_full_and_wrap(void **state)
{
	struct ring t;
	uint8_t buf[512];
	uint64_t s = 88172645463325252ull, sent = 0, got = 0;
	int full = 0;

	(void)state;
	ring_new(&t, 1024);
	/* random sizes: the producer runs ahead until full, then the consumer
	 * drains a random amount, many times around the ring */
	for (int round = 0; round < 20000; round++) {
		for (;;) {
			uint64_t saved = s;
			size_t len = rnd(&s) % 505;

			fill(buf, len, sent);
			int rc = shmq__spsc_send(&t.p, buf, len);

			if (rc == -EAGAIN) {
				s = saved; /* retry the same length later */
				full++;
				break;
			}
			assert_int_equal(rc, 0);
			sent++;
			if (rnd(&s) % 4 == 0)
				break;
		}
		for (unsigned k = (unsigned)(rnd(&s) % 6); k > 0; k--) {
			ssize_t n = shmq__spsc_recv(&t.c, buf, sizeof(buf));

			if (n == -EAGAIN)
				break;
			assert_true(n >= 0);
			assert_int_equal(check(buf, (size_t)n, got), 0);
			got++;
		}
	}
	for (;;) {
		ssize_t n = shmq__spsc_recv(&t.c, buf, sizeof(buf));

		if (n == -EAGAIN)
			break;
		assert_true(n >= 0);
		assert_int_equal(check(buf, (size_t)n, got), 0);
		got++;
	}
	assert_int_equal(got, sent);
	assert_true(full > 0);
	assert_true(t.p.tail > 20 * 1024); /* wrapped many times */
	ring_free(&t);
}

static void test_largest_fits_anywhere(void **state)
{
	struct ring t;
	uint8_t buf[504];

	(void)state;
	ring_new(&t, 1024);
	/* whatever the offset, a max_msg record fits once the ring is empty */
	for (size_t off = 0; off < 2 * 128; off++) {
		/* 8 + 512 bytes a round: the offset visits every multiple of 8 */
		assert_int_equal(shmq__spsc_send(&t.p, buf, 0), 0);
		assert_int_equal(shmq__spsc_recv(&t.c, buf, sizeof(buf)), 0);
		fill(buf, 504, off);
		assert_int_equal(shmq__spsc_send(&t.p, buf, 504), 0);
		assert_int_equal(shmq__spsc_recv(&t.c, buf, sizeof(buf)), 504);
		assert_int_equal(check(buf, 504, off), 0);
	}
	ring_free(&t);
}

static void test_zero_copy(void **state)
{
	struct ring t;
	void *w = NULL;
	const void *r;
	size_t len;

	(void)state;
	ring_new(&t, 256);
	assert_int_equal(shmq__spsc_reserve(&t.p, 100, &w), 0);
	fill(w, 60, 9);
	shmq__spsc_commit(&t.p, 60); /* shorter than reserved */
	assert_int_equal(shmq__spsc_peek(&t.c, &r, &len), -EAGAIN); /* not published */
	shmq__spsc_prod_publish(&t.p);
	assert_int_equal(shmq__spsc_peek(&t.c, &r, &len), 0);
	assert_int_equal(len, 60);
	assert_int_equal(check(r, 60, 9), 0);
	/* peek again without consuming: same record */
	assert_int_equal(shmq__spsc_peek(&t.c, &r, &len), 0);
	assert_int_equal(len, 60);
	shmq__spsc_consume(&t.c);
	assert_int_equal(shmq__spsc_peek(&t.c, &r, &len), -EAGAIN);
	/* the ring points into its own data area */
	assert_true((uint8_t *)r >= t.c.data && (uint8_t *)r + 60 <= t.c.data + 256);
	ring_free(&t);
}

static void test_bulk(void **state)
{
	struct ring t;
	uint8_t src[40][24], dst[40 * 24];
	struct iovec v[40];
	size_t lens[40], total = 0;
	ssize_t n, got = 0;

	(void)state;
	ring_new(&t, 512);
	for (int i = 0; i < 40; i++) {
		fill(src[i], (size_t)i % 24, (uint64_t)i);
		v[i].iov_base = src[i];
		v[i].iov_len = (size_t)i % 24;
	}
	n = shmq__spsc_send_bulk(&t.p, v, 40);
	assert_true(n > 0 && n < 40); /* 512 bytes hold only some */
	/* lengths 0, 1, 2 fit in 5 bytes; 3 more do not and stay queued */
	assert_int_equal(shmq__spsc_recv_bulk(&t.c, dst, 5, lens, 40), 3);
	assert_int_equal(lens[2], 2);
	assert_int_equal(check(dst + 1, 2, 2), 0);
	while (got + 3 < n) {
		ssize_t k;
		size_t off = 0;

		k = shmq__spsc_recv_bulk(&t.c, dst, sizeof(dst), lens, 40);
		assert_true(k > 0);
		for (ssize_t i = 0; i < k; i++) {
			assert_int_equal(lens[i], (size_t)(got + 3 + i) % 24);
			assert_int_equal(check(dst + off, lens[i], (uint64_t)(got + 3 + i)), 0);
			off += lens[i];
		}
		got += k;
	}
	total = (size_t)got + 3;
	assert_int_equal(total, (size_t)n);
	assert_int_equal(shmq__spsc_recv_bulk(&t.c, dst, sizeof(dst), lens, 40), -EAGAIN);
	assert_int_equal(shmq__spsc_send_bulk(&t.p, v, 0), 0);
	ring_free(&t);
}

/* Receive k messages of 72 bytes with one bulk call and check them as
 * numbers first, first + 1, ... */
static void bulk_expect(struct ring *t, size_t k, uint64_t first)
{
	uint8_t dst[32 * 72];
	size_t lens[32];

	assert_true(k <= 32);
	assert_int_equal(shmq__spsc_recv_bulk(&t->c, dst, sizeof(dst), lens, 32), (ssize_t)k);
	for (size_t i = 0; i < k; i++) {
		assert_int_equal(lens[i], 72);
		assert_int_equal(check(dst + i * 72, 72, first + i), 0);
	}
}

/* A bulk call whose batch meets a skip to offset 0, a stale cache of the other index, a
 * record too large or a corrupt length part way through: the records before
 * it go (and are right), the rest is handled as the one-record calls do. */
static void test_bulk_mid_batch(void **state)
{
	struct ring t;
	uint8_t src[32][72];
	struct iovec v[32];

	(void)state;
	for (int i = 0; i < 32; i++) {
		v[i].iov_base = src[i];
		v[i].iov_len = 72;
	}
	ring_new(&t, 1024); /* 14 records of 72 bytes, 16 spare */
	/* 14 fit by the attach-time head; the 15th does not */
	for (int i = 0; i < 32; i++)
		fill(src[i], 72, (uint64_t)i);
	assert_int_equal(shmq__spsc_send_bulk(&t.p, v, 32), 14);
	assert_int_equal(t.p.tail, 14 * 72);
	bulk_expect(&t, 14, 0);
	/* the producer's cached head is stale (0): the first record needs a
	 * skip and a refresh, the other 9 go on in the same call */
	for (int i = 0; i < 10; i++)
		fill(src[i], 72, (uint64_t)(100 + i));
	assert_int_equal(shmq__spsc_send_bulk(&t.p, v, 10), 10);
	assert_int_equal(t.p.head_cache, 14 * 72);
	assert_int_equal(t.p.tail, 1024 + 10 * 72);
	/* the consumer reads across the skip in one call */
	bulk_expect(&t, 10, 100);
	/* a skip in the middle of a batch: 4 fit before the end (at 720 ..
	 * 936), the 5th does not (1008 + 72 > 1024), the rest follow from 0 */
	for (int i = 0; i < 6; i++)
		fill(src[i], 72, (uint64_t)(200 + i));
	assert_int_equal(shmq__spsc_send_bulk(&t.p, v, 6), 6);
	assert_int_equal(t.p.tail & t.p.mask, 2 * 72);
	bulk_expect(&t, 6, 200);
	/* a batch read in two parts */
	for (int i = 0; i < 4; i++)
		fill(src[i], 72, (uint64_t)(300 + i));
	assert_int_equal(shmq__spsc_send_bulk(&t.p, v, 2), 2);
	assert_int_equal(shmq__spsc_recv(&t.c, src[31], 72), 72); /* */
	assert_int_equal(check(src[31], 72, 300), 0);
	assert_int_equal(shmq__spsc_send_bulk(&t.p, v + 2, 2), 2);
	bulk_expect(&t, 3, 301);
	/* a record too large stops the batch where it is */
	for (int i = 0; i < 4; i++)
		fill(src[i], 72, (uint64_t)(400 + i));
	v[2].iov_len = t.p.max_msg + 1;
	assert_int_equal(shmq__spsc_send_bulk(&t.p, v, 4), 2);
	assert_int_equal(shmq__spsc_send_bulk(&t.p, v + 2, 2), -EMSGSIZE);
	v[2].iov_len = 72;
	bulk_expect(&t, 2, 400);
	/* a corrupt length in the middle: the records before it, then -EBADMSG */
	for (int i = 0; i < 4; i++)
		fill(src[i], 72, (uint64_t)(500 + i));
	assert_int_equal(shmq__spsc_send_bulk(&t.p, v, 4), 4);
	/* relaxed enough: this test is the only thread */
	((uint64_t *)t.c.desc)[(t.c.n + 2) & t.c.dmask] = shmq__spsc_desc(t.c.n + 2, 1000);
	bulk_expect(&t, 2, 500);
	assert_int_equal(shmq__spsc_recv_bulk(&t.c, src[31], 72, (size_t[1]){ 0 }, 1), -EBADMSG);
	ring_free(&t);
}

/* Bulk calls against a model: batches of 1..40 records of random lengths
 * (mostly small, some up to max_msg), received by batches of 1..40 into
 * buffers of random size, over many laps of a 1 KiB ring: every record
 * comes out once, in order, whole, with its length; a send takes a prefix
 * of its batch, and none only when the first does not fit (-EAGAIN); a
 * receive takes a prefix of what is queued, and none only when nothing is
 * (-EAGAIN) or the first is larger than the buffer (-EMSGSIZE).  The
 * batches meet the end of the data area, the producer's stale cache of the
 * head and the half ring at which a long call publishes, at every record
 * position. */
#define BM_Q 4096
static void test_bulk_model(void **state)
{
	struct ring t;
	static uint8_t src[40][504], dst[40 * 504];
	static uint32_t qlen[BM_Q]; /* the model: lengths of records sent, by number */
	uint64_t s = 0x2545f4914f6cdd1dull, sent = 0, got = 0, bytes = 0;
	struct iovec v[40];
	size_t lens[40];

	(void)state;
	ring_new(&t, 1024);
	assert_int_equal(t.p.max_msg, 504);
	for (int it = 0; it < 20000; it++) {
		size_t k = 1 + rnd(&s) % 40, cap;
		ssize_t n;

		for (size_t i = 0; i < k; i++) {
			uint64_t r = rnd(&s) % 10;
			size_t len = r < 6 ? rnd(&s) % 81 : r < 9 ? 81 + rnd(&s) % 220 : rnd(&s) % 505;

			fill(src[i], len, sent + i);
			v[i].iov_base = src[i];
			v[i].iov_len = len;
		}
		n = shmq__spsc_send_bulk(&t.p, v, k);
		if (n == -EAGAIN) {
			/* the first does not fit in what is free: a record of
			 * len takes at most its rounded length and a skip */
			assert_true(sent - got > 0);
		} else {
			assert_true(n > 0 && (size_t)n <= k);
			for (ssize_t i = 0; i < n; i++)
				qlen[(sent + (uint64_t)i) % BM_Q] = (uint32_t)v[i].iov_len;
			sent += (uint64_t)n;
		}
		assert_true(sent - got <= t.c.dmask + 1);
		if (rnd(&s) % 4 == 0)
			continue; /* let the ring fill now and then */
		k = 1 + rnd(&s) % 40;
		cap = rnd(&s) % 3 ? sizeof(dst) : rnd(&s) % 1200;
		n = shmq__spsc_recv_bulk(&t.c, dst, cap, lens, k);
		if (n == -EAGAIN) {
			assert_true(sent == got);
			continue;
		}
		if (n == -EMSGSIZE) {
			assert_true(sent > got && qlen[got % BM_Q] > cap);
			continue;
		}
		assert_true(n > 0 && (size_t)n <= k && (uint64_t)n <= sent - got);
		bytes = 0;
		for (ssize_t i = 0; i < n; i++, got++) {
			assert_int_equal(lens[i], qlen[got % BM_Q]);
			assert_int_equal(check(dst + bytes, lens[i], got), 0);
			bytes += lens[i];
		}
		assert_true(bytes <= cap);
		/* a prefix: it stopped at k, at what is queued, or at a record
		 * that does not fit in what is left of the buffer */
		assert_true((size_t)n == k || got == sent || bytes + qlen[got % BM_Q] > cap);
	}
	/* drain */
	while (got < sent) {
		ssize_t n = shmq__spsc_recv_bulk(&t.c, dst, sizeof(dst), lens, 40);
		size_t off = 0;

		assert_true(n > 0);
		for (ssize_t i = 0; i < n; i++, got++) {
			assert_int_equal(lens[i], qlen[got % BM_Q]);
			assert_int_equal(check(dst + off, lens[i], got), 0);
			off += lens[i];
		}
	}
	assert_int_equal(shmq__spsc_recv_bulk(&t.c, dst, sizeof(dst), lens, 40), -EAGAIN);
	assert_true(sent > 40000); /* many laps: the ring holds at most 64 */
	ring_free(&t);
}

/* ---- corruption ---- */

static void expect_consumer_bad(struct ring *t)
{
	uint8_t buf[600];
	const void *m;
	size_t len;

	assert_int_equal(shmq__spsc_peek(&t->c, &m, &len), -EBADMSG);
	assert_int_equal(shmq__spsc_recv(&t->c, buf, sizeof(buf)), -EBADMSG);
}

/* The tail only counts: the consumer reads descriptors, so a corrupt tail
 * publishes nothing; the producer's own re-sync checks it. */
static void test_corrupt_tail(void **state)
{
	struct ring t;
	uint8_t buf[16] = { 0 };
	const void *m;
	size_t len;

	(void)state;
	ring_new(&t, 1024);
	t.c.ring->tail = 4096; /* more than capacity ahead */
	t.c.ring->tail_n = 77;
	assert_int_equal(shmq__spsc_peek(&t.c, &m, &len), -EAGAIN);
	assert_int_equal(shmq__spsc_readable(&t.c), 0);
	/* the producer's own tail, re-read by sync */
	t.c.ring->tail_n = 0;
	t.p.ring->tail = 5;
	assert_int_equal(shmq__spsc_prod_sync(&t.p), -EBADMSG);
	t.p.ring->tail = 8192;
	assert_int_equal(shmq__spsc_prod_sync(&t.p), 0);
	assert_int_equal(shmq__spsc_send(&t.p, buf, 8), -EBADMSG); /* 8192 - head > cap */
	ring_free(&t);
}

static void test_corrupt_head(void **state)
{
	struct ring t;
	uint8_t buf[16] = { 0 };

	(void)state;
	ring_new(&t, 256);
	while (shmq__spsc_send(&t.p, buf, 8) == 0)
		;
	t.p.ring->head = t.p.tail + 64; /* ahead of tail */
	assert_int_equal(shmq__spsc_send(&t.p, buf, 8), -EBADMSG);
	t.p.ring->head = 3;
	assert_int_equal(shmq__spsc_send(&t.p, buf, 8), -EBADMSG);
	assert_int_equal(shmq__spsc_cons_sync(&t.c), -EBADMSG);
	ring_free(&t);
}

/* The record counts beside the indices: one more than a lap of
 * descriptors away from the other side's would have a side poll, or
 * write, descriptors the other never reaches (an empty-looking ring, lost
 * messages).  Sync says -EBADMSG; a lap exactly is a full ring. */
static void test_corrupt_counts(void **state)
{
	struct ring t;
	uint8_t buf[16] = { 0 };
	uint64_t nd;

	(void)state;
	ring_new(&t, 256); /* 16 descriptors */
	nd = t.c.dmask + 1;
	while (shmq__spsc_send(&t.p, buf, 8) == 0)
		;
	assert_int_equal(t.p.n, nd); /* 16-byte records: a lap exactly */
	assert_int_equal(shmq__spsc_prod_sync(&t.p), 0);
	assert_int_equal(shmq__spsc_cons_sync(&t.c), 0);
	t.c.ring->head_n = 1u << 20;
	assert_int_equal(shmq__spsc_cons_sync(&t.c), -EBADMSG);
	assert_int_equal(shmq__spsc_prod_sync(&t.p), -EBADMSG);
	t.c.ring->head_n = 0;
	t.p.ring->tail_n = nd + 1;
	/* the consumer's own indices are what it left: it checks them
	 * against the producer's only when they moved */
	assert_int_equal(shmq__spsc_cons_sync(&t.c), 0);
	assert_int_equal(shmq__spsc_prod_sync(&t.p), -EBADMSG);
	t.c.ring->head = 16; /* moved (by another view, say): checked */
	assert_int_equal(shmq__spsc_cons_sync(&t.c), -EBADMSG);
	t.c.ring->head = 0;
	t.c.ring->head_n = 0;
	t.p.ring->tail_n = nd;
	assert_int_equal(shmq__spsc_cons_sync(&t.c), 0);
	assert_int_equal(shmq__spsc_recv(&t.c, buf, sizeof(buf)), 8);
	ring_free(&t);
}

/* A reservation given up (the caller reserves again, or syncs) leaves no
 * trace, also one that would skip to offset 0. */
static void test_reserve_given_up(void **state)
{
	struct ring t;
	uint8_t buf[200];
	void *w;

	(void)state;
	ring_new(&t, 512);
	fill(buf, 200, 1);
	assert_int_equal(shmq__spsc_send(&t.p, buf, 200), 0);
	assert_int_equal(shmq__spsc_recv(&t.c, buf, sizeof(buf)), 200);
	assert_int_equal(shmq__spsc_send(&t.p, buf, 96), 0);
	assert_int_equal(shmq__spsc_recv(&t.c, buf, sizeof(buf)), 96);
	/* at 296: 248 does not fit before the end: a skip */
	assert_int_equal(shmq__spsc_reserve(&t.p, 248, &w), 0);
	assert_ptr_equal(w, t.p.data);
	assert_int_equal(t.p.tail, 296);
	/* given up for a smaller one, which fits where the tail is */
	assert_int_equal(shmq__spsc_reserve(&t.p, 16, &w), 0);
	assert_ptr_equal(w, t.p.data + 296);
	fill(w, 16, 2);
	shmq__spsc_commit(&t.p, 16);
	shmq__spsc_prod_publish(&t.p);
	assert_int_equal(shmq__spsc_recv(&t.c, buf, sizeof(buf)), 16);
	assert_int_equal(check(buf, 16, 2), 0);
	ring_free(&t);
}

/* A published descriptor (its sequence number right) whose length or wrap
 * flag does not fit the ring: -EBADMSG, nothing read outside the data area,
 * and a descriptor with another sequence number publishes nothing. */
static void test_corrupt_descriptors(void **state)
{
	struct ring t;
	uint8_t buf[64] = { 0 };
	uint64_t *d;

	(void)state;
	ring_new(&t, 1024);
	assert_int_equal(shmq__spsc_send(&t.p, buf, 16), 0);
	d = (uint64_t *)t.c.desc;
	d[0] = shmq__spsc_desc(0, 600); /* larger than max_msg */
	expect_consumer_bad(&t);
	assert_int_equal(shmq__spsc_readable(&t.c), -EBADMSG);
	d[0] = shmq__spsc_desc(0, 0x7ffffff0u);
	expect_consumer_bad(&t);
	d[0] = shmq__spsc_desc(0, 16 | SHMQ__SPSC_WRAP); /* a wrap at offset 0 */
	expect_consumer_bad(&t);
	d[0] = shmq__spsc_desc(1, 16); /* the next record's: not published */
	assert_int_equal(shmq__spsc_recv(&t.c, buf, sizeof(buf)), -EAGAIN);
	assert_int_equal(shmq__spsc_readable(&t.c), 0);
	d[0] = shmq__spsc_desc(0, 16);
	assert_int_equal(shmq__spsc_recv(&t.c, buf, sizeof(buf)), 16);

	/* a record that crosses the end of the data area */
	t.c.ring->head = 1024 - 16;
	t.c.ring->head_n = 5;
	t.p.ring->tail = 1024 - 16;
	assert_int_equal(shmq__spsc_cons_sync(&t.c), 0);
	d[5] = shmq__spsc_desc(5, 400);
	expect_consumer_bad(&t);
	/* with the wrap flag it starts at 0 and fits */
	d[5] = shmq__spsc_desc(5, 400 | SHMQ__SPSC_WRAP);
	assert_int_equal(shmq__spsc_readable(&t.c), 1);
	ring_free(&t);
}

/* Garbage everywhere: every call returns, nothing touches memory outside
 * the ring (ASan), and values stay in range. */
static void test_fuzz(void **state)
{
	struct ring t;
	uint64_t s = 0x9e3779b97f4a7c15ull;
	uint8_t buf[600];

	(void)state;
	ring_new(&t, 512);
	for (int i = 0; i < 20000; i++) {
		uint64_t *d = (uint64_t *)t.c.desc, nd = t.c.dmask + 1;
		uint64_t *w = (uint64_t *)t.c.data;
		const void *m;
		size_t len;
		void *wp;

		switch (rnd(&s) % 8) {
		case 0: t.c.ring->tail = rnd(&s) % 4 == 0 ? rnd(&s) : t.c.head + (rnd(&s) % 600); break;
		case 1: t.c.ring->head = rnd(&s) % 4 == 0 ? rnd(&s) : (rnd(&s) % 2048) & ~7ull; break;
		case 2: w[rnd(&s) % 64] = rnd(&s); break;
		case 3: d[rnd(&s) % nd] = rnd(&s); break;
		case 4: /* a descriptor the consumer takes for published */
			d[t.c.n % nd] = shmq__spsc_desc(t.c.n, (uint32_t)(rnd(&s) % 3 ? rnd(&s) % 600 :
									  rnd(&s)));
			break;
		case 5: t.c.ring->head_n = rnd(&s) % 4 == 0 ? rnd(&s) : t.c.n + rnd(&s) % 8; break;
		default: break;
		}
		if (shmq__spsc_cons_sync(&t.c) == 0) {
			int rc = shmq__spsc_peek(&t.c, &m, &len);

			if (rc == 0) {
				assert_true(len <= t.c.max_msg);
				assert_true((const uint8_t *)m >= t.c.data &&
					    (const uint8_t *)m + len <= t.c.data + t.c.cap);
				memcpy(buf, m, len);
				shmq__spsc_consume(&t.c);
			} else {
				assert_true(rc == -EAGAIN || rc == -EBADMSG);
			}
			(void)shmq__spsc_recv_bulk(&t.c, buf, sizeof(buf), (size_t[4]){ 0 }, 4);
		}
		if (shmq__spsc_prod_sync(&t.p) == 0) {
			int rc = shmq__spsc_reserve(&t.p, rnd(&s) % 300, &wp);

			if (rc == 0) {
				memset(wp, 0xab, 8);
				shmq__spsc_commit(&t.p, 8);
				shmq__spsc_prod_publish(&t.p);
			} else {
				assert_true(rc == -EAGAIN || rc == -EBADMSG || rc == -EMSGSIZE);
			}
		}
	}
	ring_free(&t);
}

/* ---- waiting and two threads ---- */

static int64_t now(void)
{
	return shmq_now_ns();
}

static void test_wait_timeout(void **state)
{
	struct ring t;
	struct shmq__spsc_wait w = { .deadline = 0, .slice_ns = 10000000 };
	uint8_t buf[64] = { 0 };
	int64_t t0;

	(void)state;
	ring_new(&t, 256);
	t0 = now();
	w.deadline = t0 + 50000000;
	assert_int_equal(shmq__spsc_wait_readable(&t.c, &w), -ETIMEDOUT);
	assert_true(now() - t0 >= 50000000);
	assert_true(now() - t0 < 50000000 + 2000000000); /* bounded, loosely: a shared 2-core box */
	while (shmq__spsc_send(&t.p, buf, 40) == 0)
		;
	t0 = now();
	w.deadline = t0 + 30000000;
	assert_int_equal(shmq__spsc_wait_writable(&t.p, 40, &w), -ETIMEDOUT);
	assert_true(now() - t0 >= 30000000);
	assert_int_equal(shmq__spsc_wait_writable(&t.p, 1000, &w), -EMSGSIZE);
	ring_free(&t);
}

static int stop_check(void *arg, bool deep)
{
	int *calls = arg;

	(*calls)++;
	return deep ? -EPIPE : 0;
}

static void test_wait_check(void **state)
{
	struct ring t;
	int calls = 0;
	struct shmq__spsc_wait w = { .deadline = SHMQ__NO_DEADLINE, .slice_ns = 5000000,
				     .check = stop_check, .arg = &calls };

	(void)state;
	ring_new(&t, 256);
	/* a deep check comes once the first slice ends, and stops the wait */
	assert_int_equal(shmq__spsc_wait_readable(&t.c, &w), -EPIPE);
	assert_true(calls >= 2);
	ring_free(&t);
}

#define MT_MSGS 200000

static void *producer(void *arg)
{
	struct ring *t = arg;
	struct shmq__spsc_wait w = { .deadline = SHMQ__NO_DEADLINE, .slice_ns = 10000000 };
	uint8_t buf[300];
	uint64_t s = 12345;

	for (uint64_t i = 0; i < MT_MSGS; i++) {
		size_t len = rnd(&s) % 300;
		int rc;

		fill(buf, len, i);
		while ((rc = shmq__spsc_send(&t->p, buf, len)) == -EAGAIN)
			if (shmq__spsc_wait_writable(&t->p, len, &w))
				return (void *)1;
		if (rc)
			return (void *)2;
		if (i % 50000 == 0) /* let the consumer fall asleep now and then */
			usleep(2000);
	}
	return NULL;
}

static void test_two_threads(void **state)
{
	struct ring t;
	struct shmq__spsc_wait w = { .deadline = SHMQ__NO_DEADLINE, .slice_ns = 10000000 };
	pthread_t th;
	uint8_t buf[300];
	uint64_t s = 12345;
	void *ret;

	(void)state;
	ring_new(&t, 2048);
	assert_int_equal(pthread_create(&th, NULL, producer, &t), 0);
	for (uint64_t i = 0; i < MT_MSGS; i++) {
		size_t len = rnd(&s) % 300;
		ssize_t n;

		while ((n = shmq__spsc_recv(&t.c, buf, sizeof(buf))) == -EAGAIN)
			assert_int_equal(shmq__spsc_wait_readable(&t.c, &w), 0);
		assert_int_equal(n, (ssize_t)len);
		assert_int_equal(check(buf, len, i), 0);
	}
	assert_int_equal(pthread_join(th, &ret), 0);
	assert_null(ret);
	ring_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_geometry),
		cmocka_unit_test(test_fifo_sizes),
		cmocka_unit_test(test_full_and_wrap),
		cmocka_unit_test(test_largest_fits_anywhere),
		cmocka_unit_test(test_zero_copy),
		cmocka_unit_test(test_bulk),
		cmocka_unit_test(test_bulk_mid_batch),
		cmocka_unit_test(test_bulk_model),
		cmocka_unit_test(test_corrupt_tail),
		cmocka_unit_test(test_corrupt_head),
		cmocka_unit_test(test_corrupt_counts),
		cmocka_unit_test(test_reserve_given_up),
		cmocka_unit_test(test_corrupt_descriptors),
		cmocka_unit_test(test_fuzz),
		cmocka_unit_test(test_wait_timeout),
		cmocka_unit_test(test_wait_check),
		cmocka_unit_test(test_two_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
