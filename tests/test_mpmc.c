/* SPDX-License-Identifier: MIT */
/* The raw MPMC slot ring: geometry checks, FIFO across many laps, claims and
 * their recovery, corrupted control words, and a threaded MPMC stress. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "testutil.h"

#include "core/atomic_int.h"
#include "ring/mpmc_int.h"

/* A fake process table: ids 1..63, alive unless marked dead. */
static _Atomic uint64_t dead_ids;

static int fake_alive(void *ctx, uint32_t id, bool quick)
{
	(void)ctx;
	(void)quick; /* a test's dead ids are dead at any look */
	if (id == 0 || id >= 64)
		return -EBADMSG;
	return (atomic_load(&dead_ids) >> id) & 1 ? 0 : 1;
}

struct ring {
	void *mem;
	uint64_t size;
};

static struct ring ring_new(uint32_t cap, uint32_t max_msg)
{
	struct ring r;

	r.size = shmq__mpmc_footprint(cap, max_msg);
	assert_true(r.size > 0);
	r.mem = mmap(NULL, r.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(r.mem != MAP_FAILED);
	assert_int_equal(shmq__mpmc_init(r.mem, r.size, cap, max_msg, SHMQ__MPMC_OWNER_PID), 0);
	return r;
}

static void ring_free(struct ring *r)
{
	munmap(r->mem, r->size);
}

static void handle(struct shmq__mpmc *m, struct ring *r, uint32_t self)
{
	assert_int_equal(shmq__mpmc_attach(m, r->mem, r->size, SHMQ__MPMC_OWNER_PID, self,
					   fake_alive, NULL), 0);
}

static void test_geometry(void **state)
{
	struct shmq__mpmc_shared *sh;
	struct shmq__mpmc m;
	struct ring r;
	char buf[64] __attribute__((aligned(64)));

	(void)state;
	/* any capacity from 1: exactly that many slots, then their claim
	 * words (8 bytes a slot, rounded up to a line) */
	assert_int_equal(shmq__mpmc_footprint(3, 8), sizeof(struct shmq__mpmc_shared) + 3 * 64 + 64);
	assert_int_equal(shmq__mpmc_footprint(1, 8), sizeof(struct shmq__mpmc_shared) + 64 + 64);
	assert_int_equal(shmq__mpmc_footprint(9, 8), sizeof(struct shmq__mpmc_shared) + 9 * 64 + 128);
	assert_int_equal(shmq__mpmc_footprint(SHMQ__MPMC_CAP_MAX - 1, 8),
			 sizeof(struct shmq__mpmc_shared) + (uint64_t)(SHMQ__MPMC_CAP_MAX - 1) * 64 +
				 (uint64_t)SHMQ__MPMC_CAP_MAX * 8);
	assert_int_equal(shmq__mpmc_footprint(SHMQ__MPMC_CAP_MAX + 1, 8), 0);
	assert_int_equal(shmq__mpmc_footprint(0, 8), 0);
	assert_int_equal(shmq__mpmc_footprint(SHMQ__MPMC_CAP_MAX * 2u, 8), 0);
	assert_int_equal(shmq__mpmc_footprint(4, SHMQ__MPMC_MSG_MAX + 1), 0);
	assert_int_equal(shmq__mpmc_footprint(4, 48), sizeof(struct shmq__mpmc_shared) + 4 * 64 + 64);
	assert_int_equal(shmq__mpmc_footprint(4, 49), sizeof(struct shmq__mpmc_shared) + 4 * 128 + 64);
	assert_int_equal(shmq__mpmc_init(buf, sizeof(buf), 4, 8, SHMQ__MPMC_OWNER_PID), -EINVAL);
	r = ring_new(8, 100);
	assert_int_equal(shmq__mpmc_init(r.mem, r.size, 8, 100, 7), -EINVAL);
	/* attach: wrong owner kind, bad self, short size */
	assert_int_equal(shmq__mpmc_attach(&m, r.mem, r.size, SHMQ__MPMC_OWNER_REGION, 1,
					   fake_alive, NULL), -EINVAL);
	assert_int_equal(shmq__mpmc_attach(&m, r.mem, r.size, SHMQ__MPMC_OWNER_PID, 0,
					   fake_alive, NULL), -EINVAL);
	assert_int_equal(shmq__mpmc_attach(&m, r.mem, r.size - 64, SHMQ__MPMC_OWNER_PID, 1,
					   fake_alive, NULL), -EBADMSG);
	handle(&m, &r, 1);
	assert_int_equal(m.capacity, 8);
	assert_int_equal(m.max_msg, 100);
	/* every geometry field overwritten in turn */
	sh = r.mem;
	sh->magic ^= 1;
	assert_int_equal(shmq__mpmc_attach(&m, r.mem, r.size, SHMQ__MPMC_OWNER_PID, 1, fake_alive, NULL), -EBADMSG);
	sh->magic ^= 1;
	/* every capacity is written as version 4 (the hold bit) */
	assert_int_equal(sh->version, SHMQ__MPMC_VERSION);
	sh->version = 99;
	assert_int_equal(shmq__mpmc_attach(&m, r.mem, r.size, SHMQ__MPMC_OWNER_PID, 1, fake_alive, NULL), -EPROTO);
	sh->version = SHMQ__MPMC_VERSION_POW2 - 1;
	assert_int_equal(shmq__mpmc_attach(&m, r.mem, r.size, SHMQ__MPMC_OWNER_PID, 1, fake_alive, NULL), -EPROTO);
	/* ... and the 31-bit laps of versions 2 and 3 are refused, not misread */
	sh->version = 3;
	assert_int_equal(shmq__mpmc_attach(&m, r.mem, r.size, SHMQ__MPMC_OWNER_PID, 1, fake_alive, NULL), -EPROTO);
	sh->version = SHMQ__MPMC_VERSION;
	handle(&m, &r, 1);
	assert_true(m.pow2);
	sh->capacity = 7; /* footprint no longer matches */
	assert_int_equal(shmq__mpmc_attach(&m, r.mem, r.size, SHMQ__MPMC_OWNER_PID, 1, fake_alive, NULL), -EBADMSG);
	sh->capacity = 0;
	assert_int_equal(shmq__mpmc_attach(&m, r.mem, r.size, SHMQ__MPMC_OWNER_PID, 1, fake_alive, NULL), -EBADMSG);
	sh->capacity = 1u << 20; /* a valid power of two that does not fit */
	assert_int_equal(shmq__mpmc_attach(&m, r.mem, r.size, SHMQ__MPMC_OWNER_PID, 1, fake_alive, NULL), -EBADMSG);
	sh->capacity = 8;
	sh->slot_size = 64;
	assert_int_equal(shmq__mpmc_attach(&m, r.mem, r.size, SHMQ__MPMC_OWNER_PID, 1, fake_alive, NULL), -EBADMSG);
	sh->slot_size = 128;
	sh->max_msg = 4000; /* slot_size no longer matches */
	assert_int_equal(shmq__mpmc_attach(&m, r.mem, r.size, SHMQ__MPMC_OWNER_PID, 1, fake_alive, NULL), -EBADMSG);
	sh->max_msg = 100;
	sh->footprint += 64;
	assert_int_equal(shmq__mpmc_attach(&m, r.mem, r.size, SHMQ__MPMC_OWNER_PID, 1, fake_alive, NULL), -EBADMSG);
	sh->footprint -= 64;
	handle(&m, &r, 1);
	ring_free(&r);

	/* a capacity that is not a power of two: divided positions */
	r = ring_new(6, 100);
	sh = r.mem;
	assert_int_equal(sh->version, SHMQ__MPMC_VERSION);
	assert_int_equal(sh->capacity, 6);
	handle(&m, &r, 1);
	assert_int_equal(m.capacity, 6);
	assert_false(m.pow2);
	sh->version = SHMQ__MPMC_VERSION + 1;
	assert_int_equal(shmq__mpmc_attach(&m, r.mem, r.size, SHMQ__MPMC_OWNER_PID, 1, fake_alive, NULL), -EPROTO);
	sh->version = SHMQ__MPMC_VERSION;
	/* a smaller capacity with a footprint to match is a ring of its own
	 * (inside the memory); a larger one does not fit */
	sh->capacity = 5;
	sh->footprint -= 128;
	handle(&m, &r, 1);
	assert_int_equal(m.capacity, 5);
	sh->capacity = 7;
	sh->footprint += 256;
	assert_int_equal(shmq__mpmc_attach(&m, r.mem, r.size, SHMQ__MPMC_OWNER_PID, 1, fake_alive, NULL), -EBADMSG);
	sh->capacity = 6;
	sh->footprint -= 128;
	handle(&m, &r, 1);
	ring_free(&r);
}

/* Random fills and drains over many laps: exactly cap messages fit, FIFO. */
static void fifo_many_laps(uint32_t cap, uint64_t msgs)
{
	struct shmq__mpmc m;
	struct shmq__mpmc_block blk;
	struct ring r = ring_new(cap, 32);
	char in[32], out[32];
	uint64_t next_in = 0, next_out = 0;

	handle(&m, &r, 1);
	assert_int_equal(shmq__mpmc_try_get(&m, out, sizeof(out), &blk), -EAGAIN);
	while (next_out < msgs) {
		/* fill a random amount, then drain a random amount */
		int k = rand() % (int)(cap + 2);

		for (int i = 0; i < k; i++) {
			size_t len = next_in % 33;
			int rc;

			memset(in, (int)(next_in & 0xff), sizeof(in));
			rc = shmq__mpmc_try_put(&m, in, len, &blk);
			if (next_in - next_out == cap) {
				assert_int_equal(rc, -EAGAIN);
				break;
			}
			assert_int_equal(rc, 0);
			next_in++;
		}
		assert_int_equal(shmq__mpmc_len(&m), next_in - next_out);
		k = rand() % (int)(cap + 2);
		for (int i = 0; i < k; i++) {
			ssize_t n = shmq__mpmc_try_get(&m, out, sizeof(out), &blk);

			if (next_out == next_in) {
				assert_int_equal(n, -EAGAIN);
				break;
			}
			assert_int_equal(n, (ssize_t)(next_out % 33));
			for (ssize_t j = 0; j < n; j++)
				assert_int_equal((unsigned char)out[j], next_out & 0xff);
			next_out++;
		}
	}
	assert_int_equal(shmq__mpmc_check(&m), 0);
	assert_int_equal(((struct shmq__mpmc_shared *)r.mem)->tail, next_in);
	assert_int_equal(((struct shmq__mpmc_shared *)r.mem)->head, next_out);
	ring_free(&r);
}

static void test_fifo_many_laps(void **state)
{
	(void)state;
	fifo_many_laps(4, 100000);
	fifo_many_laps(1, 20000);
	fifo_many_laps(3, 50000);
	fifo_many_laps(5, 50000);
	fifo_many_laps(7, 50000);
}

static void test_sizes(void **state)
{
	struct shmq__mpmc m;
	struct shmq__mpmc_block blk;
	struct ring r = ring_new(2, 16);
	char buf[17] = "0123456789abcdef";

	(void)state;
	handle(&m, &r, 1);
	assert_int_equal(shmq__mpmc_try_put(&m, buf, 17, &blk), -EMSGSIZE);
	assert_int_equal(shmq__mpmc_try_put(&m, buf, 16, &blk), 0);
	assert_int_equal(shmq__mpmc_try_put(&m, buf, 0, &blk), 0);
	/* a buffer too small: -EMSGSIZE and the message stays */
	assert_int_equal(shmq__mpmc_try_get(&m, buf, 15, &blk), -EMSGSIZE);
	assert_int_equal(shmq__mpmc_len(&m), 2);
	assert_int_equal(shmq__mpmc_try_get(&m, buf, 16, &blk), 16);
	assert_int_equal(shmq__mpmc_try_get(&m, NULL, 0, &blk), 0);
	assert_int_equal(shmq__mpmc_try_get(&m, buf, 16, &blk), -EAGAIN);
	ring_free(&r);
}

/* hold_commit frees a small held slot in one call; a large one it leaves
 * HELD (-E2BIG, for the layer above to free its block first), and a
 * position that is not our hold it refuses (-EINVAL). */
static void test_hold_commit(void **state)
{
	struct shmq__mpmc m, other;
	struct shmq__mpmc_block blk;
	struct ring r = ring_new(4, 32);
	uint64_t pos, pos2, real = 100000;
	uint32_t len;
	char buf[32] = "small";

	(void)state;
	handle(&m, &r, 1);
	handle(&other, &r, 2);
	/* a large slot: its descriptor's first u64 is the real length */
	assert_int_equal(shmq__mpmc_put_claim(&m, &pos, &blk), 0);
	memcpy(shmq__mpmc_slot_data(&m, pos), &real, sizeof(real));
	shmq__mpmc_put_publish(&m, pos, SHMQ__MPMC_LEN_LARGE | 24u, true);
	assert_int_equal(shmq__mpmc_try_put(&m, buf, 5, &blk), 0);

	assert_int_equal(shmq__mpmc_hold_claim(&m, &pos, &len, &blk), 0);
	assert_true(len & SHMQ__MPMC_LEN_LARGE);
	assert_int_equal(shmq__mpmc_hold_commit(&other, pos), -EINVAL);
	assert_int_equal(shmq__mpmc_hold_commit(&m, pos), -E2BIG);
	assert_int_equal(shmq__mpmc_hold_commit(&m, pos), -E2BIG); /* still held */
	assert_int_equal(shmq__mpmc_hold_end(&m, pos, true), 0);
	assert_int_equal(shmq__mpmc_hold_commit(&m, pos), -EINVAL);

	assert_int_equal(shmq__mpmc_hold_claim(&m, &pos2, &len, &blk), 0);
	assert_int_equal(len, 5);
	assert_int_equal(shmq__mpmc_hold_commit(&other, pos2), -EINVAL);
	assert_int_equal(shmq__mpmc_hold_commit(&m, pos2), 0);
	assert_int_equal(shmq__mpmc_hold_commit(&m, pos2), -EINVAL);
	/* both slots were freed: the ring takes capacity messages again */
	for (int i = 0; i < 4; i++)
		assert_int_equal(shmq__mpmc_try_put(&m, buf, 5, &blk), 0);
	assert_int_equal(shmq__mpmc_try_put(&m, buf, 5, &blk), -EAGAIN);
	ring_free(&r);
}

static void test_shutdown(void **state)
{
	struct shmq__mpmc p, c;
	struct shmq__mpmc_block blk;
	struct ring r = ring_new(4, 8);
	uint64_t pos;
	char buf[8];

	(void)state;
	handle(&p, &r, 1);
	handle(&c, &r, 2);
	assert_int_equal(shmq__mpmc_try_put(&p, "a", 1, &blk), 0);
	/* a claim made before the shutdown is still published */
	assert_int_equal(shmq__mpmc_put_claim(&p, &pos, &blk), 0);
	shmq__mpmc_shutdown(&c);
	assert_int_equal(shmq__mpmc_try_put(&p, "b", 1, &blk), -EPIPE);
	assert_int_equal(shmq__mpmc_try_get(&c, buf, 8, &blk), 1);
	assert_int_equal(shmq__mpmc_try_get(&c, buf, 8, &blk), -EAGAIN); /* claim in flight */
	memcpy(shmq__mpmc_slot_data(&p, pos), "c", 1);
	shmq__mpmc_put_publish(&p, pos, 1, true);
	assert_int_equal(shmq__mpmc_try_get(&c, buf, 8, &blk), 1);
	assert_int_equal(buf[0], 'c');
	assert_int_equal(shmq__mpmc_try_get(&c, buf, 8, &blk), -EPIPE);
	assert_true(shmq__mpmc_readable(&c));
	ring_free(&r);
}

/* A producer dies between its claim and its publish: the consumer behind it
 * skips the slot once the owner is seen dead, and nothing else is lost. */
static void test_recover_dead_producer(void **state)
{
	struct shmq__mpmc dead, p, c;
	struct shmq__mpmc_block blk;
	struct ring r = ring_new(4, 8);
	uint64_t pos;
	char buf[8];

	(void)state;
	atomic_store(&dead_ids, 0);
	handle(&dead, &r, 5);
	handle(&p, &r, 6);
	handle(&c, &r, 7);
	assert_int_equal(shmq__mpmc_try_put(&p, "1", 1, &blk), 0);
	assert_int_equal(shmq__mpmc_put_claim(&dead, &pos, &blk), 0); /* never published */
	assert_int_equal(shmq__mpmc_try_put(&p, "2", 1, &blk), 0);
	assert_int_equal(shmq__mpmc_try_get(&c, buf, 8, &blk), 1);
	assert_int_equal(shmq__mpmc_try_get(&c, buf, 8, &blk), -EAGAIN);
	assert_int_equal(blk.pos, pos);
	assert_int_equal(shmq__mpmc_recover(&c, &blk, false), 0); /* owner still alive */
	assert_int_equal(shmq__mpmc_try_get(&c, buf, 8, &blk), -EAGAIN);
	atomic_store(&dead_ids, 1u << 5);
	assert_int_equal(shmq__mpmc_recover(&c, &blk, false), 1);
	assert_int_equal(shmq__mpmc_recover(&c, &blk, false), 0); /* already done */
	assert_int_equal(shmq__mpmc_try_get(&c, buf, 8, &blk), 1);
	assert_int_equal(buf[0], '2');
	assert_int_equal(((struct shmq__mpmc_shared *)r.mem)->skipped, 1);
	/* the ring keeps working over many laps afterwards */
	for (int i = 0; i < 100; i++) {
		assert_int_equal(shmq__mpmc_try_put(&p, "x", 1, &blk), 0);
		assert_int_equal(shmq__mpmc_try_get(&c, buf, 8, &blk), 1);
	}
	assert_int_equal(shmq__mpmc_check(&c), 0);
	atomic_store(&dead_ids, 0);
	ring_free(&r);
}

/* Protocol PUT_CLAIM (layout 7): a put's claim names its producer in the
 * slot's claim word and leaves the slot's ctl, the line a consumer right
 * behind the producer polls, as it was until the publication (layout 6
 * wrote WRITING there, so the producer took that line from the consumer
 * to claim and again to publish).  The cold looks still see the claim. */
/* shmq__mpmc_held_behind, as a watcher's handle (w) sees the holds another
 * handle (c) opens and ends: its looks after a look that found none scan
 * only the positions head passed since, and must still see every hold. */
static void test_held_behind(void **state)
{
	struct shmq__mpmc p, c, w;
	struct shmq__mpmc_block blk;
	struct ring r = ring_new(8, 8);
	uint64_t pos, pos2;
	uint32_t len;
	char buf[8];

	(void)state;
	atomic_store(&dead_ids, 0);
	handle(&p, &r, 6);
	handle(&c, &r, 7);
	handle(&w, &r, 8);
	assert_false(shmq__mpmc_held_behind(&w)); /* empty */
	for (int round = 0; round < 40; round++) {
		/* plain gets, then a look that finds nothing */
		for (int i = 0; i < round % 5; i++) {
			assert_int_equal(shmq__mpmc_try_put(&p, "m", 1, &blk), 0);
			assert_int_equal(shmq__mpmc_try_get(&c, buf, 8, &blk), 1);
		}
		assert_false(shmq__mpmc_held_behind(&w));
		/* a plain get after that look, then a hold: seen */
		assert_int_equal(shmq__mpmc_try_put(&p, "a", 1, &blk), 0);
		assert_int_equal(shmq__mpmc_try_put(&p, "b", 1, &blk), 0);
		assert_int_equal(shmq__mpmc_try_get(&c, buf, 8, &blk), 1);
		assert_int_equal(shmq__mpmc_hold_claim(&c, &pos, &len, &blk), 0);
		assert_true(shmq__mpmc_held_behind(&w));
		assert_true(shmq__mpmc_held_behind(&w)); /* and again */
		/* given back (RETURNED): still open */
		assert_int_equal(shmq__mpmc_hold_end(&c, pos, false), 0);
		assert_true(shmq__mpmc_held_behind(&w));
		/* taken again and committed: none */
		assert_int_equal(shmq__mpmc_hold_claim(&c, &pos2, &len, &blk), 0);
		assert_int_equal(pos2, pos);
		assert_true(shmq__mpmc_held_behind(&w));
		assert_int_equal(shmq__mpmc_hold_end(&c, pos2, true), 0);
		assert_false(shmq__mpmc_held_behind(&w));
	}
	ring_free(&r);
}

static void test_claim_off_slot_line(void **state)
{
	struct shmq__mpmc p, c;
	struct shmq__mpmc_block blk;
	struct ring r = ring_new(4, 8);
	struct shmq__mpmc_slot *s0 =
		(struct shmq__mpmc_slot *)((uint8_t *)r.mem + sizeof(struct shmq__mpmc_shared));
	uint64_t pos, before;
	char buf[8];

	(void)state;
	atomic_store(&dead_ids, 0);
	handle(&p, &r, 6);
	handle(&c, &r, 7);
	for (int lap = 0; lap < 3; lap++) {
		for (int i = 0; i < 4; i++) {
			before = ((struct shmq__mpmc_slot *)((uint8_t *)s0 + i * 64))->ctl;
			assert_int_equal(shmq__mpmc_put_claim(&p, &pos, &blk), 0);
			assert_int_equal(pos, (uint64_t)(lap * 4 + i));
			assert_int_equal(((struct shmq__mpmc_slot *)((uint8_t *)s0 + i * 64))->ctl,
					 before);
			memcpy(shmq__mpmc_slot_data(&p, pos), "z", 1);
			/* not readable yet; the looks that name claimers see it */
			assert_int_equal(shmq__mpmc_try_get(&c, buf, 8, &blk), -EAGAIN);
			assert_false(shmq__mpmc_readable(&c));
			shmq__mpmc_block_at(&c, false, &blk);
			assert_int_equal(blk.pos, pos);
			assert_int_equal(blk.ctl >> 33, 6); /* WRITING by producer 6 */
			assert_int_equal(blk.ctl & 3u, 1);
			assert_int_equal(shmq__mpmc_recover(&c, &blk, false), 0); /* alive */
			assert_int_equal(shmq__mpmc_put_fate(&c, pos), -EAGAIN);
			assert_true(shmq__mpmc_slot_live(&c, pos));
			shmq__mpmc_put_publish(&p, pos, 1, true);
			assert_int_equal(shmq__mpmc_put_fate(&c, pos), 1);
			assert_int_equal(shmq__mpmc_try_get(&c, buf, 8, &blk), 1);
			assert_int_equal(buf[0], 'z');
			assert_false(shmq__mpmc_slot_live(&c, pos));
		}
	}
	ring_free(&r);
}

/* shmq__mpmc_put_fate: a put's position says published or not through
 * every state of its slot's lap and the EMPTY that ends it (consumed, or
 * skipped after its producer died), -ESTALE once
 * the next lap is claimed, -EBADMSG for a position never claimed or an
 * impossible owner; never an access outside the ring for any position. */
static void test_put_fate(void **state)
{
	struct shmq__mpmc dead, p, c;
	struct shmq__mpmc_block blk;
	struct ring r = ring_new(4, 8);
	struct shmq__mpmc_shared *sh = r.mem;
	uint64_t a, b, pos;
	uint32_t len;
	char buf[8];

	(void)state;
	atomic_store(&dead_ids, 0);
	handle(&dead, &r, 5);
	handle(&p, &r, 6);
	handle(&c, &r, 7);
	assert_int_equal(shmq__mpmc_put_fate(&c, 0), -EBADMSG); /* never claimed */
	assert_int_equal(shmq__mpmc_put_claim(&p, &a, &blk), 0);
	assert_int_equal(shmq__mpmc_put_fate(&c, a), -EAGAIN);    /* live producer */
	assert_int_equal(shmq__mpmc_put_fate(&p, a), -EAGAIN);    /* ourselves */
	shmq__mpmc_put_publish(&p, a, 1, true);
	assert_int_equal(shmq__mpmc_put_fate(&c, a), 1);          /* FULL */
	assert_int_equal(shmq__mpmc_put_claim(&dead, &b, &blk), 0);
	assert_int_equal(shmq__mpmc_put_fate(&c, b), -EAGAIN);
	atomic_store(&dead_ids, 1u << 5);
	assert_int_equal(shmq__mpmc_put_fate(&c, b), 0);          /* WRITING, dead */
	assert_int_equal(shmq__mpmc_hold_claim(&c, &pos, &len, &blk), 0);
	assert_int_equal(pos, a);
	assert_int_equal(shmq__mpmc_put_fate(&p, a), 1);          /* HELD */
	assert_int_equal(shmq__mpmc_hold_end(&c, a, true), 0);
	assert_int_equal(shmq__mpmc_put_fate(&p, a), 1);          /* consumed */
	assert_int_equal(shmq__mpmc_try_get(&c, buf, 8, &blk), -EAGAIN);
	assert_int_equal(shmq__mpmc_recover(&c, &blk, false), 1);
	assert_int_equal(shmq__mpmc_put_fate(&p, b), 0);          /* skipped */
	assert_int_equal(shmq__mpmc_put_fate(&p, a), 1);
	/* positions 2 and 3, then a + 4: a's slot's next lap claimed, its witness gone */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(shmq__mpmc_try_put(&p, "x", 1, &blk), 0);
		assert_int_equal(shmq__mpmc_try_get(&c, buf, 8, &blk), 1);
	}
	assert_int_equal(shmq__mpmc_put_fate(&c, a), 1);          /* still EMPTY(a's lap + 1) */
	assert_int_equal(shmq__mpmc_try_put(&p, "x", 1, &blk), 0); /* a + 4 */
	assert_int_equal(shmq__mpmc_put_fate(&c, a), -ESTALE);
	assert_int_equal(shmq__mpmc_put_fate(&c, a + 4), 1);
	assert_int_equal(shmq__mpmc_put_fate(&c, a + 8), -EBADMSG); /* a lap ahead */
	assert_int_equal(shmq__mpmc_try_get(&c, buf, 8, &blk), 1);
	/* garbage control words: an answer, never outside the ring */
	for (int i = 0; i < 2000; i++) {
		int rc;

		for (unsigned k = 0; k < 4; k++)
			((struct shmq__mpmc_slot *)((char *)r.mem + sizeof(*sh) + k * 64))->ctl =
				((uint64_t)rand() << 33) ^ (uint64_t)rand();
		rc = shmq__mpmc_put_fate(&c, ((uint64_t)rand() << 33) ^ (uint64_t)rand());
		assert_true(rc == 0 || rc == 1 || rc == -EAGAIN || rc == -ESTALE || rc == -EBADMSG);
	}
	atomic_store(&dead_ids, 0);
	ring_free(&r);
}

/* A producer dies with the ring full behind its claim: a producer waiting a
 * lap later recovers it too. */
static void test_recover_dead_producer_full(void **state)
{
	struct shmq__mpmc dead, p, c;
	struct shmq__mpmc_block blk;
	struct ring r = ring_new(2, 8);
	uint64_t pos;
	char buf[8];

	(void)state;
	atomic_store(&dead_ids, 0);
	handle(&dead, &r, 5);
	handle(&p, &r, 6);
	handle(&c, &r, 7);
	assert_int_equal(shmq__mpmc_put_claim(&dead, &pos, &blk), 0);
	assert_int_equal(shmq__mpmc_try_put(&p, "a", 1, &blk), 0);
	assert_int_equal(shmq__mpmc_try_put(&p, "b", 1, &blk), -EAGAIN);
	atomic_store(&dead_ids, 1u << 5);
	assert_int_equal(shmq__mpmc_recover(&p, &blk, false), 1);
	assert_int_equal(shmq__mpmc_try_put(&p, "b", 1, &blk), 0);
	/* head still names the skipped position: consumers pass it */
	assert_int_equal(shmq__mpmc_try_get(&c, buf, 8, &blk), 1);
	assert_int_equal(buf[0], 'a');
	assert_int_equal(shmq__mpmc_try_get(&c, buf, 8, &blk), 1);
	assert_int_equal(buf[0], 'b');
	assert_int_equal(shmq__mpmc_try_get(&c, buf, 8, &blk), -EAGAIN);
	atomic_store(&dead_ids, 0);
	ring_free(&r);
}

/* A consumer dies between its claim and its release (and, the worst case,
 * before it moved head on): a producer a lap later releases the slot; the
 * dead consumer's one message is the only one lost. */
static void test_recover_dead_consumer(void **state)
{
	struct shmq__mpmc dead, p, c;
	struct shmq__mpmc_block blk;
	struct ring r = ring_new(2, 8);
	struct shmq__mpmc_shared *sh = r.mem;
	uint64_t pos;
	uint32_t len;
	char buf[8];

	(void)state;
	atomic_store(&dead_ids, 0);
	handle(&dead, &r, 5);
	handle(&p, &r, 6);
	handle(&c, &r, 7);
	assert_int_equal(shmq__mpmc_try_put(&p, "a", 1, &blk), 0);
	assert_int_equal(shmq__mpmc_try_put(&p, "b", 1, &blk), 0);
	assert_int_equal(shmq__mpmc_get_claim(&dead, 8, &pos, &len, &blk), 0);
	sh->head = pos; /* as if it died before moving head */
	assert_int_equal(shmq__mpmc_try_put(&p, "c", 1, &blk), -EAGAIN);
	assert_int_equal(shmq__mpmc_recover(&p, &blk, false), 0); /* alive */
	atomic_store(&dead_ids, 1u << 5);
	assert_int_equal(shmq__mpmc_recover(&p, &blk, false), 1);
	assert_int_equal(sh->dropped, 1);
	assert_int_equal(shmq__mpmc_try_put(&p, "c", 1, &blk), 0);
	assert_int_equal(shmq__mpmc_try_get(&c, buf, 8, &blk), 1);
	assert_int_equal(buf[0], 'b');
	assert_int_equal(shmq__mpmc_try_get(&c, buf, 8, &blk), 1);
	assert_int_equal(buf[0], 'c');
	assert_int_equal(shmq__mpmc_try_get(&c, buf, 8, &blk), -EAGAIN);
	atomic_store(&dead_ids, 0);
	ring_free(&r);
}

/* Overwritten control words, lengths and indices give -EBADMSG and never
 * an access outside the ring (run under ASan). */
static void test_corruption(void **state)
{
	struct shmq__mpmc p, c;
	struct shmq__mpmc_block blk;
	struct ring r = ring_new(4, 8);
	struct shmq__mpmc_shared *sh = r.mem;
	struct shmq__mpmc_slot *s0 = (void *)((char *)r.mem + sizeof(*sh));
	char buf[8];

	(void)state;
	handle(&p, &r, 1);
	handle(&c, &r, 2);
	/* a length beyond max_msg */
	assert_int_equal(shmq__mpmc_try_put(&p, "a", 1, &blk), 0);
	s0->len = 0xfffffff0u;
	assert_int_equal(shmq__mpmc_try_get(&c, buf, 8, &blk), -EBADMSG);
	s0->len = 1;
	assert_int_equal(shmq__mpmc_try_get(&c, buf, 8, &blk), 1);
	/* indices far apart */
	sh->tail = sh->head + 1000;
	assert_int_equal(shmq__mpmc_try_put(&p, "a", 1, &blk), -EBADMSG);
	assert_int_equal(shmq__mpmc_check(&c), -EBADMSG);
	sh->tail = sh->head - 1000;
	assert_int_equal(shmq__mpmc_try_put(&p, "a", 1, &blk), -EBADMSG);
	sh->tail = sh->head = UINT64_MAX - 2; /* consistent indices, laps disagree with the slots */
	{
		int rc = shmq__mpmc_try_put(&p, "a", 1, &blk);

		assert_true(rc == 0 || rc == -EBADMSG);
	}
	/* garbage indices of every magnitude never read outside the ring */
	for (int i = 0; i < 2000; i++) {
		sh->head = ((uint64_t)rand() << 33) ^ (uint64_t)rand();
		sh->tail = ((uint64_t)rand() << 33) ^ (uint64_t)rand();
		for (unsigned k = 0; k < 4; k++)
			((struct shmq__mpmc_slot *)((char *)s0 + k * 64))->ctl =
				((uint64_t)rand() << 33) ^ (uint64_t)rand();
		(void)shmq__mpmc_try_put(&p, "a", 1, &blk);
		(void)shmq__mpmc_try_get(&c, buf, 8, &blk);
		(void)shmq__mpmc_len(&c);
		if (blk.ctl >> 33) {
			int rc = shmq__mpmc_recover(&c, &blk, false);
			assert_true(rc == 0 || rc == 1 || rc == -EBADMSG);
		}
	}
	/* an impossible lap at a consistent head */
	memset((char *)r.mem + sizeof(*sh), 0, r.size - sizeof(*sh));
	sh->head = sh->tail = 4 * 10; /* lap 10, slots still at lap 0 */
	assert_int_equal(shmq__mpmc_try_get(&c, buf, 8, &blk), -EBADMSG);
	assert_int_equal(shmq__mpmc_try_put(&p, "a", 1, &blk), -EBADMSG);
	/* a claim naming an impossible owner */
	sh->head = sh->tail = 0;
	s0->ctl = 1; /* WRITING, lap 0, owner 0 */
	assert_int_equal(shmq__mpmc_try_get(&c, buf, 8, &blk), -EAGAIN);
	assert_int_equal(shmq__mpmc_recover(&c, &blk, false), -EBADMSG);
	s0->ctl = 1 | (uint64_t)99 << 33; /* owner 99: the fake table says impossible */
	assert_int_equal(shmq__mpmc_try_get(&c, buf, 8, &blk), -EAGAIN);
	assert_int_equal(shmq__mpmc_recover(&c, &blk, false), -EBADMSG);
	ring_free(&r);
}

/* A ring of 3 slots (3 does not divide 2^64): indices overwritten near and
 * across 2^64, where p % 3 and p / 3 jump, and garbage of every magnitude,
 * never reach outside the ring and end in -EBADMSG or a plain answer (run
 * under ASan).  Positions never get there by themselves (ring/mpmc_int.h). */
static void test_corruption_odd(void **state)
{
	struct shmq__mpmc p, c;
	struct shmq__mpmc_block blk;
	struct ring r = ring_new(3, 8);
	struct shmq__mpmc_shared *sh = r.mem;
	char buf[8];

	(void)state;
	handle(&p, &r, 1);
	handle(&c, &r, 2);
	assert_false(p.pow2);
	for (uint64_t start = UINT64_MAX - 8; start != 4; start++) {
		memset((char *)r.mem + sizeof(*sh), 0, r.size - sizeof(*sh));
		sh->head = sh->tail = start;
		for (int i = 0; i < 12; i++) {
			int rc = shmq__mpmc_try_put(&p, "a", 1, &blk);
			ssize_t n;

			assert_true(rc == 0 || rc == -EAGAIN || rc == -EBADMSG);
			n = shmq__mpmc_try_get(&c, buf, sizeof(buf), &blk);
			assert_true(n == 1 || n == -EAGAIN || n == -EBADMSG);
			assert_true(shmq__mpmc_len(&c) <= 3);
		}
	}
	for (int i = 0; i < 2000; i++) {
		sh->head = ((uint64_t)rand() << 33) ^ (uint64_t)rand();
		sh->tail = sh->head + (uint64_t)(rand() % 7) - 2;
		for (unsigned k = 0; k < 3; k++)
			((struct shmq__mpmc_slot *)((char *)r.mem + sizeof(*sh) + k * 64))->ctl =
				((uint64_t)rand() << 33) ^ (uint64_t)rand();
		(void)shmq__mpmc_try_put(&p, "a", 1, &blk);
		(void)shmq__mpmc_try_get(&c, buf, sizeof(buf), &blk);
		if (blk.ctl >> 33) {
			int rc = shmq__mpmc_recover(&c, &blk, false);
			assert_true(rc == 0 || rc == 1 || rc == -EBADMSG);
		}
	}
	ring_free(&r);
}

/* ---- threaded MPMC stress: per-producer FIFO, no loss, no duplicate ---- */

#define T_PROD 4
#define T_CONS 4
#ifdef SHMQ_SANITIZED
#define T_MSGS 20000
#else
#define T_MSGS 200000
#endif

struct stress {
	struct ring r;
	_Atomic uint32_t done_producers;
	_Atomic uint64_t received;
	uint8_t seen[T_PROD][T_MSGS];
	_Atomic int bad;
};

struct worker {
	struct stress *st;
	uint32_t id;
};

static void *producer_main(void *arg)
{
	struct worker *w = arg;
	struct shmq__mpmc m;
	struct shmq__mpmc_block blk;

	handle(&m, &w->st->r, w->id + 1);
	for (uint32_t i = 0; i < T_MSGS; i++) {
		uint32_t msg[4] = { w->id, i, ~i, 0 };
		int rc;

		while ((rc = shmq__mpmc_try_put(&m, msg, 8 + (i % 9), &blk)) == -EAGAIN &&
		       !atomic_load(&w->st->bad))
			sched_yield();
		if (rc && rc != -EAGAIN) {
			print_error("producer %u: put %d\n", w->id, rc);
			atomic_store(&w->st->bad, 1);
		}
		if (atomic_load(&w->st->bad))
			break;
	}
	atomic_fetch_add(&w->st->done_producers, 1);
	return NULL;
}

static void *consumer_main(void *arg)
{
	struct worker *w = arg;
	struct shmq__mpmc m;
	struct shmq__mpmc_block blk;
	int64_t last[T_PROD];

	for (int i = 0; i < T_PROD; i++)
		last[i] = -1;
	handle(&m, &w->st->r, w->id + 1 + T_PROD);
	for (;;) {
		uint32_t msg[4] = { 0, 0, 0, 0 };
		ssize_t n = shmq__mpmc_try_get(&m, msg, sizeof(msg), &blk);

		if (n == -EAGAIN) {
			if (atomic_load(&w->st->done_producers) == T_PROD &&
			    shmq__mpmc_len(&m) == 0 && atomic_load(&w->st->received) ==
			    (uint64_t)T_PROD * T_MSGS)
				break;
			sched_yield();
			continue;
		}
		if (n < 8 || msg[0] >= T_PROD || msg[1] >= T_MSGS || (int64_t)msg[1] <= last[msg[0]]) {
			print_error("consumer %u: n=%zd msg %u/%u last %lld\n", w->id, n, msg[0], msg[1],
				    n >= 4 && msg[0] < T_PROD ? (long long)last[msg[0]] : -2LL);
			atomic_store(&w->st->bad, 2);
			break;
		}
		last[msg[0]] = msg[1];
		w->st->seen[msg[0]][msg[1]]++;
		atomic_fetch_add(&w->st->received, 1);
	}
	return NULL;
}

static void threads_mpmc(uint32_t cap)
{
	struct stress *st = calloc(1, sizeof(*st));
	pthread_t th[T_PROD + T_CONS];
	struct worker w[T_PROD + T_CONS];

	assert_non_null(st);
	st->r = ring_new(cap, 16);
	for (int i = 0; i < T_PROD + T_CONS; i++) {
		w[i].st = st;
		w[i].id = (uint32_t)(i < T_PROD ? i : i - T_PROD);
		assert_int_equal(pthread_create(&th[i], NULL, i < T_PROD ? producer_main : consumer_main,
						&w[i]), 0);
	}
	for (int i = 0; i < T_PROD + T_CONS; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(atomic_load(&st->bad), 0);
	for (int p = 0; p < T_PROD; p++)
		for (int i = 0; i < T_MSGS; i++)
			if (st->seen[p][i] != 1)
				fail_msg("producer %d message %d seen %d times", p, i, st->seen[p][i]);
	ring_free(&st->r);
	free(st);
}

static void test_threads_mpmc(void **state)
{
	(void)state;
	threads_mpmc(16);
}

/* The same over a ring that is not a power of two (positions divided). */
static void test_threads_mpmc_odd(void **state)
{
	(void)state;
	threads_mpmc(7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_geometry),
		cmocka_unit_test(test_fifo_many_laps),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_hold_commit),
		cmocka_unit_test(test_shutdown),
		cmocka_unit_test(test_recover_dead_producer),
		cmocka_unit_test(test_recover_dead_producer_full),
		cmocka_unit_test(test_claim_off_slot_line),
		cmocka_unit_test(test_held_behind),
		cmocka_unit_test(test_put_fate),
		cmocka_unit_test(test_recover_dead_consumer),
		cmocka_unit_test(test_corruption),
		cmocka_unit_test(test_corruption_odd),
		cmocka_unit_test(test_threads_mpmc),
		cmocka_unit_test(test_threads_mpmc_odd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
