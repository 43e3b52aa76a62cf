/* SPDX-License-Identifier: MIT */
/*
 * Private: layer 2, the work-stealing deque (Chase-Lev, fixed capacity).
 *
 * One owner pushes and takes at the bottom (LIFO); any number of thieves, in
 * any process, steal at the top (FIFO).  Items are 64-bit words; the deque
 * holds no pointers, so it works at any mapping address.  The memory orders
 * follow Le, Pop, Cohen and Zappa Nardelli, "Correct and Efficient
 * Work-Stealing for Weak Memory Models" (PPoPP 2013), for the fixed-size
 * array (no resize), with one change for ThreadSanitizer, which ignores
 * standalone fences: the paper's "relaxed store of bottom; seq_cst fence;
 * relaxed load of top" in take becomes a seq_cst store of bottom and a seq_cst
 * load of top, and the thief's "acquire load of top; seq_cst fence; acquire
 * load of bottom" becomes two seq_cst loads.  Both give the store->load order
 * the fence gave (all four accesses are in the single total order S), and on
 * x86-64 compile to the same xchg + plain loads.
 *
 * Placement:
 *
 *     size_t sz = shmq__deque_footprint(1024);
 *     void *mem = <sz bytes, 64-byte aligned, in shared memory>;
 *     shmq__deque_init(mem, 1024);               // once, by the creator
 *     struct shmq__deque d;
 *     shmq__deque_attach(&d, mem, sz);           // in every process using it
 *     shmq__deque_push(&d, word);                // owner only
 *     shmq__deque_take(&d, &word);               // owner only
 *     shmq__deque_steal(&d, &word);              // anyone
 *
 * The capacity is read from shared memory once, in attach, and checked
 * against the size the caller vouches for; operations mask slot indices with
 * the private copy, so a corrupted header can never send them out of bounds.
 * The free-running 64-bit indices top and bottom are re-checked on every
 * read: bottom - top must lie in [-1, capacity], else -EBADMSG.
 *
 * Wraparound: top and bottom count pushes and steals since init, as
 * uint64_t; at 10^10 operations a second they wrap after 58 years.  They
 * are only ever compared through their difference, taken as int64_t, so
 * indices that a writer set near 2^64 work across the wrap as anywhere else.
 */
#ifndef SHMQ__DEQUE_H
#define SHMQ__DEQUE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/atomic_int.h"
#include "core/compiler_int.h"

#define SHMQ__DEQUE_MAGIC 0x44455155u /* "DEQU" */
#define SHMQ__DEQUE_MAX_CAP (1u << 24)

/* The shared control block; the slot array follows it. */
struct shmq__deque_ctl {
	/* line 0: the thieves' word (CAS), read by the owner */
	uint64_t top;
	uint8_t pad0[SHMQ__CACHELINE - 8];
	/* line 1: the owner's word, read by thieves */
	uint64_t bottom;
	uint8_t pad1[SHMQ__CACHELINE - 8];
	/* line 2: immutable after init */
	uint32_t magic;
	uint32_t capacity; /* power of two */
	uint8_t pad2[SHMQ__CACHELINE - 8];
	uint64_t slots[]; /* capacity words */
};
SHMQ__LINE_ALIGNED_FIELD(struct shmq__deque_ctl, top);
SHMQ__LINE_ALIGNED_FIELD(struct shmq__deque_ctl, bottom);
SHMQ__LINE_ALIGNED_FIELD(struct shmq__deque_ctl, magic);
SHMQ__LINE_ALIGNED_FIELD(struct shmq__deque_ctl, slots);

/* A process-private view of one deque.  Cheap to copy; no teardown. */
struct shmq__deque {
	struct shmq__deque_ctl *ctl;
	uint64_t mask; /* capacity - 1, private: never re-read from shared memory */
};

/* Bytes a deque of capacity items needs (capacity: a power of two in
 * [2, SHMQ__DEQUE_MAX_CAP]); 0 for an invalid capacity. */
size_t shmq__deque_footprint(uint32_t capacity);

/* Format mem (footprint bytes, 64-byte aligned) as an empty deque.  Once,
 * before any other process can see mem.  -EINVAL on a bad capacity. */
int shmq__deque_init(void *mem, uint32_t capacity);

/* Check the deque at mem (which the caller knows to span size bytes) and fill
 * in a private view.  -EBADMSG on a bad magic or a capacity that does not fit. */
int shmq__deque_attach(struct shmq__deque *d, void *mem, size_t size);

/* Items in the deque right now (a snapshot; may be stale at once).
 * -EBADMSG when the indices are corrupt.  Anyone may call. */
int64_t shmq__deque_size(const struct shmq__deque *d);

/* The cold path: reported when an index read from shared memory is absurd. */
int shmq__deque_corrupt(void);

/* A hint for the owner: true when the deque looks empty (relaxed loads;
 * thieves may be changing it).  Owner only. */
static inline bool shmq__deque_maybe_empty(const struct shmq__deque *d)
{
	/* relaxed: a heuristic, nothing is read through it */
	return (int64_t)(shmq__load_relaxed(&d->ctl->bottom) - shmq__load_relaxed(&d->ctl->top)) <= 0;
}

/*
 * Push item at the bottom.  Owner only (one thread of one process).
 * 0, -ENOSPC when full, -EBADMSG when the indices are corrupt.
 */
static inline int shmq__deque_push(struct shmq__deque *d, uint64_t item)
{
	struct shmq__deque_ctl *c = d->ctl;
	uint64_t b = shmq__load_relaxed(&c->bottom); /* relaxed: only the owner writes bottom */
	/* pairs with the thieves' CAS of top in shmq__deque_steal: a slot is
	 * reused only after the steal that emptied it has read it */
	uint64_t t = shmq__load_acquire(&c->top);
	int64_t n = (int64_t)(b - t);

	if (SHMQ__UNLIKELY(n < 0 || n > (int64_t)d->mask + 1))
		return shmq__deque_corrupt();
	if (SHMQ__UNLIKELY(n == (int64_t)d->mask + 1))
		return -ENOSPC;
	shmq__store_relaxed(&c->slots[b & d->mask], item); /* relaxed: published by the release below */
	/* pairs with the seq_cst load of bottom in shmq__deque_steal: the item
	 * is visible to a thief that sees the new bottom */
	shmq__store_release(&c->bottom, b + 1);
	return 0;
}

/*
 * Take the most recently pushed item.  Owner only.
 * 0 with *item set, -EAGAIN when empty (or the last item went to a thief),
 * -EBADMSG when the indices are corrupt.
 */
static inline int shmq__deque_take(struct shmq__deque *d, uint64_t *item)
{
	struct shmq__deque_ctl *c = d->ctl;
	/* relaxed: only the owner writes bottom.  b - 1 may wrap: bottom 0
	 * with top 2^64 - 1 is one item, and an empty deque at 0 reads as
	 * n == -1 below, as anywhere else (see Wraparound) */
	uint64_t b = shmq__load_relaxed(&c->bottom) - 1;
	uint64_t t;
	int64_t n;
	int rc = 0;

	/* seq_cst store then seq_cst load: the paper's fence between them */
	shmq__store_seq_cst(&c->bottom, b);
	t = shmq__load_seq_cst(&c->top);
	n = (int64_t)(b - t);
	if (SHMQ__UNLIKELY(n < -1 || n >= (int64_t)d->mask + 1)) {
		shmq__store_relaxed(&c->bottom, b + 1); /* relaxed: owner only, as we found it */
		return shmq__deque_corrupt();
	}
	if (n < 0) { /* empty */
		shmq__store_relaxed(&c->bottom, b + 1); /* relaxed: only the owner writes bottom */
		return -EAGAIN;
	}
	*item = shmq__load_relaxed(&c->slots[b & d->mask]); /* relaxed: the owner wrote it */
	if (n == 0) { /* the last item: race the thieves for it */
		if (!shmq__cas_seq_cst(&c->top, &t, t + 1))
			rc = -EAGAIN;
		shmq__store_relaxed(&c->bottom, b + 1); /* relaxed: only the owner writes bottom */
	}
	return rc;
}

/*
 * Steal the oldest item.  Any thread of any process.
 * 0 with *item set; -EAGAIN when empty; -EBUSY when another thief or the
 * owner won the race for that item (retry if you like); -EBADMSG when the
 * indices are corrupt.
 */
static inline int shmq__deque_steal(struct shmq__deque *d, uint64_t *item)
{
	struct shmq__deque_ctl *c = d->ctl;
	uint64_t t = shmq__load_seq_cst(&c->top);
	/* seq_cst: pairs with take's seq_cst store of bottom (the paper's
	 * fence pair) and with push's release store of bottom */
	uint64_t b = shmq__load_seq_cst(&c->bottom);
	int64_t n = (int64_t)(b - t);
	uint64_t v;

	if (n <= 0) {
		if (SHMQ__UNLIKELY(n < -1))
			return shmq__deque_corrupt();
		return -EAGAIN;
	}
	if (SHMQ__UNLIKELY(n > (int64_t)d->mask + 1)) {
		/* legal only if top moved since we read it (our t is stale) */
		if (shmq__load_seq_cst(&c->top) == t)
			return shmq__deque_corrupt();
		return -EBUSY;
	}
	/* relaxed: ordered after the seq_cst load of bottom */
	v = shmq__load_relaxed(&c->slots[t & d->mask]);
	if (!shmq__cas_seq_cst(&c->top, &t, t + 1))
		return -EBUSY;
	*item = v;
	return 0;
}

#endif /* SHMQ__DEQUE_H */
