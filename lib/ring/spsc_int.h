/* SPDX-License-Identifier: MIT */
/*
 * Private: layer 2, the SPSC byte ring.
 *
 * One producer and one consumer (threads or processes) pass variable-size
 * records through a ring of `capacity` bytes (a power of two) placed in
 * memory the caller provides:
 *
 *   size_t sz = shmq__spsc_footprint(cap);      // control block + data
 *   shmq__spsc_init(mem, sz, cap);               // once, before anyone attaches
 *   shmq__spsc_prod_attach(&tx, mem, sz);        // in the producing process
 *   shmq__spsc_cons_attach(&rx, mem, sz);        // in the consuming process
 *
 * Records and descriptors.  A record is its payload alone, padded to 8 bytes
 * and to at least 16 (SHMQ__SPSC_REC), in the data area; its length lives
 * apart, in a descriptor: one 64-bit word per record in an array of
 * capacity/16 words before the data area, record number n in word
 * n % (capacity/16).  The word holds the length (with SHMQ__SPSC_WRAP) in its
 * low half and a sequence number, (uint32)(n + 1), in its high half, which
 * publishes the record: the consumer polls the descriptor of the record it
 * reads next, in place of the tail.  So a 64-byte message takes one line of
 * data, where an in-band header made it 72 bytes straddling two lines that
 * both crossed between the cores twice while the receiver kept right
 * behind, and a message costs the receiver a descriptor line (shared by 8
 * records) and its own lines, not the tail's line as well (layout version 5;
 * 4 had 8-byte headers in the data area).  A descriptor's slot was last
 * written for record n - capacity/16, whose sequence number differs, so a
 * stale word never passes for a new one.  Records take at least 16 bytes, so
 * the bytes in use bound the records in flight to capacity/16: the room the
 * indices show is the only room to check, and the slot of the next record
 * is free whenever its bytes are.
 *
 * A record is never split across the end of the data area: when it would
 * be, the producer skips to offset 0 and sets SHMQ__SPSC_WRAP in its
 * descriptor, and the consumer skips with it.  So the largest payload that
 * always fits is capacity/2 (shmq__spsc_max_msg keeps version 4's capacity/2
 * - 8): whatever the write offset, one of "here to the end" or "0 to here"
 * holds capacity/2 bytes.
 *
 * Indices.  head and tail are free-running 64-bit byte counters; the offset
 * of a position is pos & (capacity - 1).  They never wrap in practice
 * (2^64 bytes is 584 years at 1 TB/s), so tail - head is the bytes in use and
 * every comparison is plain unsigned arithmetic.  tail is written only by
 * the producer, head only by the consumer, each on its own cache line, with
 * the record count beside it (tail_n, head_n) for views that attach or
 * re-sync.  The consumer reads tail only to wake a producer and for
 * statistics; the producer reads head when its cache says the ring is full.
 *
 * Private views.  Each side works through a process-private view
 * (struct shmq__spsc_prod / _cons) that holds the validated geometry, its
 * own working indices and a cache of the other side's head (producer).
 * Nothing read from the ring is trusted: a tail/head pair more than capacity
 * apart, a misaligned index, a length larger than the largest record or one
 * that crosses the end of the data area, a wrap flag at offset 0, give
 * -EBADMSG; every access stays inside the data area and the descriptor
 * array whatever the shared words hold.  A forged descriptor can make the
 * consumer read bytes the producer has not written, as any writer of the
 * region can write the payload itself; it cannot make it read outside.
 *
 * Publication.  A commit writes its record's descriptor with the sequence
 * number of the slot's previous record (so not yet published) and advances
 * the producer's private indices; shmq__spsc_prod_publish stamps every
 * committed descriptor with its own sequence number (a release store each),
 * then stores the tail, so callers batch by committing several records
 * before publishing.  The consumer side is symmetric (consume, then
 * cons_publish).
 *
 * Wake-ups without a fence on the fast path.  (For the consumer's side, "the
 * index" a publisher stores below is the descriptor that publishes the
 * record; the producer's side waits on the head.)  A side that finds nothing to
 * do may sleep on a futex word (data_word for the consumer, space_word for
 * the producer) after counting itself in the matching sleeper count and
 * arming the matching wake flag (cons_armed / prod_armed).  The other side,
 * after publishing with a release store, reads the flag with a relaxed load
 * and makes a system call only when it is set.
 * Store-then-load needs a full fence on both sides to be a correct Dekker
 * pair; the publishing side gets its half asymmetrically: every attaching
 * process registers for membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED),
 * and a sleeper, between arming and re-checking the ring, runs
 * membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED), which executes a full barrier
 * on every CPU running a registered process.  Where the kernel refuses
 * registration the view sets `strong` and publishes with seq_cst instead;
 * where a sleeper's membarrier fails it caps its sleep at a short slice.
 *
 * Fenced publishers.  A membarrier sends an IPI to every CPU running a
 * registered process (in a round trip, the peer's, just woken) and waits for
 * them all: two per sleeping round trip made it dearer than pipe(2)'s.  So a
 * consumer runs it only on the first of a run of sleeps.  cons_armed holds bits: ARMED (a sleeper is owed
 * a wake), FENCED, VERIFIED, and above them a count (ring/spsc.c).  The
 * consumer arms with a seq_cst fetch_or of ARMED|FENCED; when the old value
 * lacked FENCED or VERIFIED it runs the membarrier, then sets VERIFIED.  A
 * publisher whose relaxed load of the word sees it non-zero takes ARMED back
 * with a seq_cst fetch_and: an RMW on the consumer's own flag word, so
 * coherence orders it against the consumer's fetch_or (if before, that
 * fetch_or reads it and the consumer's re-check sees the descriptor published
 * before it; if after, it sees ARMED and wakes).  A publisher whose load
 * found the word 0 read it before the FENCED that VERIFIED vouches for, so
 * before the membarrier that followed: its store of the descriptor was visible
 * when that membarrier returned.  Only a publisher clears FENCED (with
 * VERIFIED), after IDLE_MAX publications in a row found the consumer awake
 * (each one a slow-path RMW), and keeps an ARMED set meanwhile; the
 * consumer's next fetch_or then finds it gone and runs the membarrier again.
 * The producer's own sleeps (prod_armed) run it every time: they come at
 * most twice per ring's worth of messages.
 *
 * One wake per sleep.  The waker takes the flag back with an exchange and
 * only the one that finds it set bumps the word and calls futex_wake, so
 * every send after the first wake no longer makes another system call while
 * the woken side has not yet run (a "wake storm").  Every sleeper read the
 * word before it armed, so one bump wakes all of them; a sleeper that armed
 * and then found its condition true without sleeping leaves the flag set
 * (clearing it could disarm another sleeper): at most one spare wake.
 *
 * Hysteresis.  A sleeping producer is not woken for every freed record:
 * the consumer wakes it once at least half the ring (or the room the
 * producer said it needs, prod_need, when that is more) is free, so a
 * stalled producer is woken a couple of times per ring's worth of messages.
 * A sleeping consumer is woken by the first publication (a single message
 * must not wait for more).  Both flags and prod_need are hints: a garbage
 * value costs at most a spare wake or a sleep until the caller's slice ends.
 *
 * Watchers.  A scheduler watch or a waitset watching the consumer side
 * (core/watch_int.h) counts itself in cons_watchers and is woken by every
 * publication while it is there; one watching the producer side counts in
 * prod_watchers and is woken when half the ring is free (its "writable").
 * Neither arms a flag.  Between counting itself in and its readiness check
 * a consumer-side watcher runs shmq__spsc_watch_fence: it sets FENCED in
 * cons_armed with a seq_cst fetch_or and runs the membarrier only when the
 * old value lacked FENCED or VERIFIED, as a sleeper does (a waitset counts
 * in for every wait: a membarrier each time cost it 9-11 us a wake-up when
 * the publisher's CPU was busy).  A publisher that finds FENCED makes its
 * RMW on cons_armed and then reads cons_watchers: if the watcher's fetch_or
 * came first, the RMW reads it and so sees the count; if after, the
 * watcher's check sees the descriptor.  A publication that finds a watcher
 * counted in is not idle, and the publisher drops FENCED only after reading
 * cons_watchers 0 and with a seq_cst RMW: one that reads a fetch_or made
 * since synchronises with it, so this publisher's later relaxed loads see
 * that watcher's count.  A producer-side watcher runs shmq__remote_fence()
 * (core/wait_int.h) every time: prod_armed has no FENCED.
 */
#ifndef SHMQ__SPSC_H
#define SHMQ__SPSC_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "core/atomic_int.h"
#include "core/compiler_int.h"
#include "core/wait_int.h"

#define SHMQ__SPSC_MAGIC   0x43535053u /* "SPSC" */
#define SHMQ__SPSC_VERSION 5u /* 3: wake flags, prod_need, cons_watchers; 4: stamps;
			       * 5: descriptors, no in-band header */
#define SHMQ__SPSC_HDR     8u          /* version 4's record header: max_msg keeps it */
#define SHMQ__SPSC_WRAP    (1u << 31)  /* in a descriptor: the record starts at offset 0 */
#define SHMQ__SPSC_LEN     (SHMQ__SPSC_WRAP - 1u)
#define SHMQ__SPSC_CAP_MIN ((uint64_t)64)
#define SHMQ__SPSC_CAP_MAX ((uint64_t)1 << 31)

/* Bytes a record with a payload of len bytes occupies (len < 2^32): at
 * least 16, so that records in flight never outnumber descriptors. */
#define SHMQ__SPSC_REC(len) ((uint64_t)(len) <= 16u ? (uint64_t)16 : \
			     ((uint64_t)(len) + 7u) & ~(uint64_t)7u)

/* Descriptors of a ring of cap bytes, and the bytes they take (whole
 * lines, so that the data area starts on one). */
#define SHMQ__SPSC_NDESC(cap) ((cap) / 16u)
#define SHMQ__SPSC_DESC_BYTES(cap) ((cap) / 2u < 64u ? (uint64_t)64 : (uint64_t)(cap) / 2u)

/* A descriptor: record number n's sequence number over its length word. */
static inline uint64_t shmq__spsc_desc(uint64_t n, uint32_t lenw)
{
	return ((uint64_t)(uint32_t)(n + 1) << 32) | lenw;
}

static inline bool shmq__spsc_desc_is(uint64_t d, uint64_t n)
{
	return (uint32_t)(d >> 32) == (uint32_t)(n + 1);
}

/* Copy n bytes between non-overlapping buffers.  Messages are mostly small:
 * below 64 bytes two overlapping fixed-size moves (inlined, no call) do it;
 * larger ones go to memcpy. */
static inline void shmq__copy(void *dst, const void *src, size_t n)
{
	uint8_t *d = dst;
	const uint8_t *s = src;

	if (n > 64) {
		memcpy(d, s, n);
	} else if (n >= 32) {
		memcpy(d, s, 32);
		memcpy(d + n - 32, s + n - 32, 32);
	} else if (n >= 16) {
		memcpy(d, s, 16);
		memcpy(d + n - 16, s + n - 16, 16);
	} else if (n >= 8) {
		memcpy(d, s, 8);
		memcpy(d + n - 8, s + n - 8, 8);
	} else if (n >= 4) {
		memcpy(d, s, 4);
		memcpy(d + n - 4, s + n - 4, 4);
	} else if (n) {
		d[0] = s[0];
		d[n / 2] = s[n / 2];
		d[n - 1] = s[n - 1];
	}
}

/* The shared control block; the descriptors and the data area follow it. */
struct shmq__spsc {
	/* line 0: magic, version and capacity are written by init and read
	 * only by attach (views keep copies); the statistics for `shmq stat`
	 * are bumped only right before a futex system call (core/wait_int.h,
	 * shmq__count_event).  No send or receive that neither sleeps nor
	 * wakes anybody touches this line.  Free running. */
	uint32_t magic;
	uint32_t version;
	uint64_t capacity;
	uint64_t cons_waits; /* futex waits entered by the consumer (data_word) */
	uint64_t prod_waits; /* futex waits entered by the producer (space_word) */
	uint64_t cons_wakes; /* futex wakes issued on data_word */
	uint64_t prod_wakes; /* futex wakes issued on space_word */
	uint8_t pad0[16];
	/* line 1: the producer's published tail and record count */
	uint64_t tail;
	uint64_t tail_n;
	uint8_t pad1[48];
	/* line 2: the consumer's published head and record count */
	uint64_t head;
	uint64_t head_n;
	uint8_t pad2[48];
	/* line 3: the consumer's sleep: producers bump data_word to wake it */
	uint32_t data_word;
	uint32_t cons_sleepers;  /* consumers asleep (statistics, closing) */
	uint32_t cons_armed;     /* bit 0: a consumer sleeps and is owed a wake;
				  * others: "Fenced publishers" above */
	uint32_t cons_watchers;  /* scheduler watches: woken on every publication */
	uint8_t pad3[48];
	/* line 4: the producer's sleep: consumers bump space_word to wake it */
	uint32_t space_word;
	uint32_t prod_sleepers;
	uint32_t prod_armed;     /* 1: a producer sleeps and is owed a wake */
	uint32_t prod_need;      /* bytes of room it waits for (a hint) */
	uint32_t prod_watchers;  /* watches of SHMQ_WRITABLE: woken at half empty */
	uint8_t pad4[44];
	/* line 5 on: SHMQ__SPSC_DESC_BYTES(capacity) of descriptors, then
	 * capacity bytes of records */
	uint8_t area[];
};
_Static_assert(offsetof(struct shmq__spsc, pad0) + 16 == SHMQ__CACHELINE, "spsc line 0");
SHMQ__LINE_ALIGNED_FIELD(struct shmq__spsc, tail);
SHMQ__LINE_ALIGNED_FIELD(struct shmq__spsc, head);
SHMQ__LINE_ALIGNED_FIELD(struct shmq__spsc, data_word);
SHMQ__LINE_ALIGNED_FIELD(struct shmq__spsc, space_word);
SHMQ__LINE_ALIGNED_FIELD(struct shmq__spsc, area);

/* The producer's private view.  One view per producing thread; a ring has
 * one producer at a time. */
struct shmq__spsc_prod {
	struct shmq__spsc *ring;
	uint8_t *data;
	uint64_t *desc;
	uint64_t cap;        /* validated at attach, never re-read */
	uint64_t mask;
	uint64_t dmask;      /* descriptors - 1 */
	uint64_t max_msg;
	uint64_t tail;       /* working tail: committed, maybe not yet published */
	uint64_t n;          /* working record count: committed */
	uint64_t pub_n;      /* records whose descriptors are published */
	uint64_t head_cache; /* the last head seen */
	uint32_t wrap;       /* SHMQ__SPSC_WRAP: the reserved record starts at 0 */
	bool strong;         /* no membarrier: publish with seq_cst */
	bool prefetchw;      /* the CPU has PREFETCHW (shmq__spsc_prefetch_room) */
};

/* The consumer's private view.  One consumer at a time. */
struct shmq__spsc_cons {
	struct shmq__spsc *ring;
	uint8_t *data;
	const uint64_t *desc;
	uint64_t cap;
	uint64_t mask;
	uint64_t dmask;
	uint64_t max_msg;
	uint64_t head;       /* working head: consumed, maybe not yet published */
	uint64_t n;          /* working record count: consumed */
	uint64_t peeked;     /* bytes the last peek covers (a skip + record), 0: none */
	bool strong;
};

/* Geometry. */
size_t shmq__spsc_footprint(uint64_t capacity);      /* 0 for an invalid capacity */
static inline uint64_t shmq__spsc_max_msg(uint64_t capacity)
{
	return capacity / 2 - SHMQ__SPSC_HDR;
}

/* Format mem (size bytes, 64-byte aligned) as an empty ring: 0, or -EINVAL
 * for a capacity that is not a power of two in [64, 2^31] or a size below
 * the footprint.  Not concurrent with anything on the same memory. */
int shmq__spsc_init(void *mem, size_t size, uint64_t capacity);

/* Check the control block and fill a view; each process attaches its own.
 * Also registers the process for the membarrier protocol (view->strong when
 * refused).  -EBADMSG for a corrupt control block, -EPROTO for another
 * layout version. */
int shmq__spsc_prod_attach(struct shmq__spsc_prod *p, void *mem, size_t size);
int shmq__spsc_cons_attach(struct shmq__spsc_cons *c, void *mem, size_t size);

/* Re-read this side's own indices from shared memory (another view of the
 * same side may have moved them while this one was idle); the producer goes
 * past the records whose descriptors are published beyond them
 * (shmq__spsc_prod_recover).  -EBADMSG if misaligned, or further from the
 * other side's than a lap (the descriptors polled would never come). */
int shmq__spsc_prod_recover(struct shmq__spsc_prod *p);

static inline int shmq__spsc_prod_sync(struct shmq__spsc_prod *p)
{
	/* relaxed, both: only this side writes them; views of one side take
	 * turns under the caller's own synchronisation */
	p->tail = shmq__load_relaxed(&p->ring->tail);
	p->n = p->pub_n = shmq__load_relaxed(&p->ring->tail_n);
	p->wrap = 0;
	if (SHMQ__UNLIKELY(p->tail & 7u))
		return -EBADMSG;
	return shmq__spsc_prod_recover(p);
}

int shmq__spsc_cons_check(const struct shmq__spsc_cons *c, uint64_t head, uint64_t n);

static inline int shmq__spsc_cons_sync(struct shmq__spsc_cons *c)
{
	/* relaxed, both: only this side writes them (see prod_sync) */
	uint64_t head = shmq__load_relaxed(&c->ring->head);
	uint64_t n = shmq__load_relaxed(&c->ring->head_n);

	int rc;

	c->peeked = 0;
	if (SHMQ__LIKELY((head == c->head) & (n == c->n)))
		return 0; /* what this view published or checked last */
	if (SHMQ__UNLIKELY(head & 7u))
		return -EBADMSG;
	rc = shmq__spsc_cons_check(c, head, n);
	if (SHMQ__UNLIKELY(rc))
		return rc; /* the view keeps what it had: the next sync checks again */
	c->head = head;
	c->n = n;
	return 0;
}

/* ---- slow paths (spsc.c) ---- */
int shmq__spsc_prod_refresh(struct shmq__spsc_prod *p, uint64_t need);
void shmq__spsc_wake_consumer(struct shmq__spsc *r);
/* A consumer-side watcher's fence after it joined cons_watchers ("Watchers"
 * above; armed is the ring's cons_armed): 0, or the membarrier's negative
 * errno. */
int shmq__spsc_watch_fence(uint32_t *armed);
void shmq__spsc_wake_producer(struct shmq__spsc_cons *c);
/* Wake a sleeping producer as soon as the room it waits for is free, without
 * the half-empty mark: for a consumer about to block itself (on the other
 * ring of a duplex pipe), so that two sides blocked on each other do not
 * wait out a sleep slice. */
void shmq__spsc_wake_producer_now(struct shmq__spsc_cons *c);

/* ---- producer ---- */

/* Bytes a record of rec bytes needs at the view's tail: rec, and the skip
 * to offset 0 when it does not fit before the end (< cap: rec <= cap/2). */
static inline uint64_t shmq__spsc_need(const struct shmq__spsc_prod *p, uint64_t rec)
{
	uint64_t room = p->cap - (p->tail & p->mask);

	return rec <= room ? rec : rec + room;
}

/*
 * Reserve room for a record of len payload bytes and point *buf at its
 * payload, to be written in place and then committed.  At offset 0 when the
 * record would cross the end of the data area (the commit skips there).
 * 0; -EMSGSIZE (len > max_msg); -EAGAIN (not enough free space now);
 * -EBADMSG (the indices are corrupt).  Producer only.
 */
static inline int shmq__spsc_reserve(struct shmq__spsc_prod *p, size_t len, void **buf)
{
	uint64_t rec, need;

	if (SHMQ__UNLIKELY(len > p->max_msg))
		return -EMSGSIZE;
	rec = SHMQ__SPSC_REC(len);
	need = shmq__spsc_need(p, rec);
	if (SHMQ__UNLIKELY(p->tail - p->head_cache > p->cap - need)) {
		int rc = shmq__spsc_prod_refresh(p, need);

		if (rc)
			return rc;
	}
	/* the skip is the commit's: a reservation given up leaves no trace */
	p->wrap = need != rec ? SHMQ__SPSC_WRAP : 0;
	*buf = p->data + (p->wrap ? 0 : p->tail & p->mask);
	return 0;
}

/* The reserved record's start: past the skip to offset 0, if any. */
static SHMQ__ALWAYS_INLINE void shmq__spsc_skip(struct shmq__spsc_prod *p)
{
	if (SHMQ__UNLIKELY(p->wrap))
		p->tail += p->cap - (p->tail & p->mask);
}

/* Commit the reserved record with its final length (<= the reserved one):
 * its descriptor with the slot's previous sequence number, not yet
 * published (see shmq__spsc_prod_publish). */
static inline void shmq__spsc_commit(struct shmq__spsc_prod *p, size_t len)
{
	uint64_t n = p->n;

	/* relaxed: nobody takes it for published (the sequence number is the
	 * slot's previous record's); prod_publish stores it again with a
	 * release */
	shmq__store_relaxed(&p->desc[n & p->dmask],
			    shmq__spsc_desc(n - (p->dmask + 1), (uint32_t)len | p->wrap));
	shmq__spsc_skip(p);
	p->wrap = 0;
	p->n = n + 1;
	p->tail += SHMQ__SPSC_REC(len);
}

/* Commit and publish the reserved record's descriptor at once, when no
 * committed record waits for its publication (p->pub_n == p->n); the tail
 * still waits for prod_publish. */
static SHMQ__ALWAYS_INLINE void shmq__spsc_put(struct shmq__spsc_prod *p, size_t len)
{
	uint64_t n = p->n, d = shmq__spsc_desc(n, (uint32_t)len | p->wrap);

	if (SHMQ__UNLIKELY(p->strong)) /* a Dekker pair's store ("Wake-ups") */
		shmq__store_seq_cst(&p->desc[n & p->dmask], d);
	else /* pairs with the consumer's load_acquire of the descriptor in
	      * shmq__spsc_peek: the record's bytes are written */
		shmq__store_release(&p->desc[n & p->dmask], d);
	shmq__spsc_skip(p);
	p->wrap = 0;
	p->n = p->pub_n = n + 1;
	p->tail += SHMQ__SPSC_REC(len);
}

/* Stamp the committed descriptors with their sequence numbers, the last
 * first, then store the tail: the part of a publication before the wake-up
 * check. */
static SHMQ__ALWAYS_INLINE void shmq__spsc_publish_descs(struct shmq__spsc_prod *p, bool strong)
{
	struct shmq__spsc *r = p->ring;

	/* last first: a consumer polling the first finds the batch whole, and
	 * does not read lines the producer is still writing */
	for (uint64_t k = p->n; k-- != p->pub_n;) {
		uint64_t *d = &p->desc[k & p->dmask];
		/* relaxed: our own commit's store (or garbage a hostile writer
		 * left, which the consumer checks as any length) */
		uint32_t lenw = (uint32_t)shmq__load_relaxed(d);

		if (strong)
			shmq__store_seq_cst(d, shmq__spsc_desc(k, lenw));
		else /* pairs with the consumer's load_acquire of the descriptor
		      * in shmq__spsc_peek: the record's bytes are written */
			shmq__store_release(d, shmq__spsc_desc(k, lenw));
	}
	p->pub_n = p->n;
	/* relaxed, both: the descriptors publish the records; the indices are
	 * for views of this side that re-sync (prod_sync, under the caller's
	 * synchronisation), the consumer's wake-up hysteresis and statistics,
	 * hints all */
	shmq__store_relaxed(&r->tail_n, p->n);
	shmq__store_relaxed(&r->tail, p->tail);
}

/* Make every committed record visible; wake the consumer if it sleeps. */
static inline void shmq__spsc_prod_publish(struct shmq__spsc_prod *p)
{
	struct shmq__spsc *r = p->ring;
	uint32_t due;

	if (SHMQ__UNLIKELY(p->strong)) {
		shmq__spsc_publish_descs(p, true);
		due = shmq__load_seq_cst(&r->cons_armed) | shmq__load_seq_cst(&r->cons_watchers);
	} else {
		shmq__spsc_publish_descs(p, false);
		shmq__signal_fence();
		/* relaxed, both: the sleeper's membarrier supplies the fence (see
		 * top); one line, so the second load costs nothing */
		due = shmq__load_relaxed(&r->cons_armed) | shmq__load_relaxed(&r->cons_watchers);
	}
	if (SHMQ__UNLIKELY(due != 0))
		shmq__spsc_wake_consumer(r);
}

/* For frameless fast paths: publish one record (number n - 1, written with
 * length word lenw since the last publication, not committed) as
 * prod_publish does for a view that is not strong, and say whether the
 * consumer is due a wake (the caller then calls shmq__spsc_wake_consumer,
 * as a tail call). */
static inline bool shmq__spsc_prod_publish_one(struct shmq__spsc_prod *p, uint32_t lenw)
{
	struct shmq__spsc *r = p->ring;
	uint64_t n = p->n - 1;

	/* pairs with the consumer's load_acquire of the descriptor in
	 * shmq__spsc_peek: the record's bytes are written */
	shmq__store_release(&p->desc[n & p->dmask], shmq__spsc_desc(n, lenw));
	p->pub_n = p->n;
	/* relaxed, both: as in publish_descs */
	shmq__store_relaxed(&r->tail_n, p->n);
	shmq__store_relaxed(&r->tail, p->tail);
	shmq__signal_fence();
	/* relaxed, both: the sleeper's membarrier supplies the fence (see top) */
	return (shmq__load_relaxed(&r->cons_armed) | shmq__load_relaxed(&r->cons_watchers)) != 0;
}

/* Copy one record in and publish it.  0, -EMSGSIZE, -EAGAIN, -EBADMSG. */
static inline int shmq__spsc_send(struct shmq__spsc_prod *p, const void *msg, size_t len)
{
	void *buf;
	int rc = shmq__spsc_reserve(p, len, &buf);

	if (SHMQ__UNLIKELY(rc))
		return rc;
	shmq__copy(buf, msg, len);
	if (SHMQ__LIKELY(p->pub_n == p->n))
		shmq__spsc_put(p, len);
	else
		shmq__spsc_commit(p, len);
	shmq__spsc_prod_publish(p);
	return 0;
}

/* Bytes of free room a bulk send asks for ahead of the next call. */
#define SHMQ__SPSC_PREFETCH_MAX 4096u

/*
 * Ask for ownership of the next span bytes of free room (at most
 * SHMQ__SPSC_PREFETCH_MAX, and no further than the cached head allows)
 * before they are written.  The consumer read those lines a lap ago and
 * still holds them: each store to one waits for the other core to give it
 * up, and with the store buffer full of such stores the producer stalls a
 * cross-core round trip every few lines.  Prefetches run in parallel and take
 * no store-buffer entry.  On x86-64 a prefetch for writing is PREFETCHW,
 * which asks for the line exclusive; the compiler emits it only when built
 * for a CPU that has it (-mprfchw) and a read prefetch otherwise, whose line
 * arrives shared so that each store still waits for an upgrade.  So the view
 * records at attach whether this CPU has it (CPUID) and the loop issues it
 * itself (`shmq-bench -q -n 3 pipe -- tput`, six alternated pairs at a
 * cache-line round trip of 447-463 ns: 32 x 8 B 111-132 -> 170-255 M msg/s,
 * 32 x 64 B 57-72 -> 60-81).
 * Free room only: no line the consumer may still be
 * reading is pulled away from it.  A hint: nothing is read or written, so a
 * corrupt index costs at most useless prefetches.
 * Always inlined: GCC takes a function that only loads and prefetches for
 * pure and drops the call, prefetches and all (tests/check-prefetch.sh).
 */
static SHMQ__ALWAYS_INLINE void shmq__spsc_prefetch_room(const struct shmq__spsc_prod *p, uint64_t span)
{
	const uint64_t line = SHMQ__CACHELINE, mask = p->mask;
	const uint8_t *data = p->data;
	uint64_t tail = p->tail, used = tail - p->head_cache, end, limit;

	if (used >= p->cap)
		return;
	if (span > SHMQ__SPSC_PREFETCH_MAX)
		span = SHMQ__SPSC_PREFETCH_MAX;
	/* whole lines of free room only: the one the head is in may still
	 * hold the record the consumer reads */
	limit = (p->head_cache + p->cap) & ~(line - 1);
	if (limit <= tail)
		return;
	end = span < limit - tail ? tail + span : limit;
	/* from the first line not yet written (a partly written one is ours) */
	tail = (tail + line - 1) & ~(line - 1);
#if defined(__x86_64__) || defined(__i386__)
	if (p->prefetchw) {
		for (uint64_t a = tail; a < end; a += line)
			__asm__ volatile("prefetchw %0" : : "m"(data[a & mask]));
		return;
	}
#endif
	for (uint64_t a = tail; a < end; a += line)
		__builtin_prefetch(data + (a & mask), 1);
}

/* A bulk call publishes (its tail, or its head) each time this share of the
 * ring's bytes has gone through it since the last publication, and at its
 * end.  A batch of large messages can be as long as the ring: published only
 * at the end, the two sides took turns, each idle while the other copied a
 * ring's worth (32 x 4 KiB in a 64 KiB ring: 1.76-1.87 -> 2.60-2.84 M msg/s,
 * 0.63-0.69x -> 0.98-1.02x ck_ring SPSC one per call, `shmq-bench -q -n 3
 * pipe -- tput`, three alternated pairs; 64 B and 1 KiB batches within their
 * spread).  A quarter measured the same for 4 KiB and 5% lower for 1 KiB
 * (two runs). */
#define SHMQ__SPSC_BULK_PUB(cap) ((cap) / 2)

/* For send_bulk: publish the descriptors of the k records v[0..k) copied
 * since the last publication (records pub_n.., none with a skip), the last
 * first, so that a consumer polling the first finds them all.  strong: as
 * in put.  The view's fields are read once: the stores may alias them. */
static SHMQ__ALWAYS_INLINE void shmq__spsc_put_iov(struct shmq__spsc_prod *p, const struct iovec *v,
						  size_t k)
{
	uint64_t *desc = p->desc, dmask = p->dmask, first = p->pub_n;

	if (SHMQ__UNLIKELY(p->strong)) {
		for (size_t j = k; j-- > 0;) /* a Dekker pair's store ("Wake-ups") */
			shmq__store_seq_cst(&desc[(first + j) & dmask],
					    shmq__spsc_desc(first + j, (uint32_t)v[j].iov_len));
	} else {
		for (size_t j = k; j-- > 0;) /* pairs with the consumer's load_acquire of
					      * the descriptor in shmq__spsc_peek or
					      * shmq__spsc_recv_bulk: the record is written */
			shmq__store_release(&desc[(first + j) & dmask],
					    shmq__spsc_desc(first + j, (uint32_t)v[j].iov_len));
	}
	p->n = p->pub_n = first + k;
}

/* Copy up to n records in and publish them at the end (their descriptors,
 * the last first, then the tail), or each half ring's worth of bytes for a
 * longer batch (SHMQ__SPSC_BULK_PUB).  Returns how many were sent (stops at
 * the first that does not fit now), or a negative errno when none was:
 * -EAGAIN, -EMSGSIZE (v[0] is too large), -EBADMSG.
 *
 * In runs: the inner loop copies records while they fit as they are (at
 * most max_msg, before the end of the data area and the cached head, within
 * what is left of the half ring); shmq__spsc_put_iov then writes their
 * descriptors.  The loop keeps five values live and writes nothing through
 * the view (the copies' char stores may alias it): one loop that also kept
 * the publication's bookkeeping had the compiler spill and reload per record
 * (callgrind, calls of 32 x 64 B through the pipe: 88 instructions a record
 * sent, 62 now; received 69, 54 now; see tools/PERFORMANCE.md, "Bulk
 * calls").  No descriptor is written while copying: a consumer polling
 * the next one would take its line from the producer at each record.  A
 * record that does not fit as it is (a skip to offset 0, more room than
 * the cached head shows, too large, or past the half ring) goes through
 * shmq__spsc_reserve, which handles all of them. */
static inline ssize_t shmq__spsc_send_bulk(struct shmq__spsc_prod *p, const struct iovec *v,
					   size_t n)
{
	const uint64_t cap = p->cap, half = SHMQ__SPSC_BULK_PUB(cap), max = p->max_msg;
	const uint64_t start = p->tail;
	const struct iovec *it = v, *end = v + n;
	uint64_t pub = start;
	int rc = 0;

	if (SHMQ__UNLIKELY(p->pub_n != p->n))
		shmq__spsc_prod_publish(p); /* committed records go first */
	while (it < end) {
		uint64_t tail = p->tail, off = tail & p->mask, taken = tail - p->head_cache, lim;
		const struct iovec *from = it;
		uint8_t *dst = p->data + off;
		void *buf;

		if (SHMQ__UNLIKELY(tail - pub >= half)) {
			shmq__spsc_prod_publish(p);
			pub = tail;
		}
		/* the room before the end of the data area and before the
		 * cached head (none when the indices are corrupt: reserve says
		 * so), and what is left of the half ring */
		if (taken < off)
			taken = off;
		lim = taken <= cap ? cap - taken : 0;
		if (lim > pub + half - tail)
			lim = pub + half - tail;
		for (; it < end; it++) {
			uint64_t len = it->iov_len, rec = SHMQ__SPSC_REC(len);

			/* len first: the REC of a length near 2^64 wraps */
			if ((len > max) | (rec > lim))
				break;
			shmq__copy(dst, it->iov_base, len);
			dst += rec;
			lim -= rec;
		}
		if (SHMQ__LIKELY(it > from)) {
			shmq__spsc_put_iov(p, from, (size_t)(it - from));
			p->tail = tail + (uint64_t)(dst - (p->data + off));
			continue;
		}
		rc = shmq__spsc_reserve(p, it->iov_len, &buf);
		if (SHMQ__UNLIKELY(rc))
			break;
		shmq__copy(buf, it->iov_base, it->iov_len);
		shmq__spsc_put(p, it->iov_len);
		it++;
	}
	if (it == v)
		return rc;
	shmq__spsc_prefetch_room(p, p->tail - start);
	shmq__spsc_prod_publish(p);
	return it - v;
}

/* ---- consumer ---- */

/* Where the record that descriptor d describes starts, for a record at
 * position pos of a ring of cap bytes, its length and the bytes it takes
 * from pos: false when d does not fit the ring (a length over max_msg, a
 * record that would cross the end of the data area, a wrap flag at offset
 * 0).  The consumer's check of what it reads, and the producer's of the
 * descriptors it goes past (shmq__spsc_prod_recover). */
static SHMQ__ALWAYS_INLINE bool shmq__spsc_locate_at(uint64_t cap, uint64_t max_msg, uint64_t pos,
						    uint64_t d, uint64_t *off, uint32_t *len,
						    uint64_t *span)
{
	uint64_t o = pos & (cap - 1), skip = 0, rec;
	uint32_t n = (uint32_t)d & SHMQ__SPSC_LEN;

	if ((uint32_t)d & SHMQ__SPSC_WRAP) {
		if (o == 0)
			return false;
		skip = cap - o;
		o = 0;
	}
	rec = SHMQ__SPSC_REC(n);
	if (n > max_msg || rec > cap - o)
		return false;
	*off = o;
	*len = n;
	*span = skip + rec;
	return true;
}

/* shmq__spsc_locate_at for the consumer's record at its head. */
static SHMQ__ALWAYS_INLINE bool shmq__spsc_locate(const struct shmq__spsc_cons *c, uint64_t d,
						 uint64_t *off, uint32_t *len, uint64_t *span)
{
	return shmq__spsc_locate_at(c->cap, c->max_msg, c->head, d, off, len, span);
}

/*
 * Point *msg / *len at the next record, in place, without consuming it.
 * The pointer stays valid until shmq__spsc_consume.  0; -EAGAIN (empty);
 * -EBADMSG (a descriptor is corrupt).  Consumer only.
 */
static inline int shmq__spsc_peek(struct shmq__spsc_cons *c, const void **msg, size_t *len)
{
	/* pairs with the producer's release store of the descriptor in
	 * shmq__spsc_put, shmq__spsc_publish_descs,
	 * shmq__spsc_prod_publish_one or shmq__spsc_put_iov: the record is
	 * written */
	uint64_t d = shmq__load_acquire(&c->desc[c->n & c->dmask]), off, span;
	uint32_t n;

	if (!shmq__spsc_desc_is(d, c->n))
		return -EAGAIN;
	if (SHMQ__UNLIKELY(!shmq__spsc_locate(c, d, &off, &n, &span)))
		return -EBADMSG;
	*msg = c->data + off;
	*len = n;
	c->peeked = span;
	return 0;
}

/* Consume what the last peek returned (without publishing). */
static inline void shmq__spsc_consume_nopub(struct shmq__spsc_cons *c)
{
	if (c->peeked) {
		c->head += c->peeked;
		c->n++;
		c->peeked = 0;
	}
}

/* Store the consumer's indices: the part of a publication before the
 * wake-up check. */
static SHMQ__ALWAYS_INLINE void shmq__spsc_cons_store(struct shmq__spsc_cons *c, bool strong)
{
	struct shmq__spsc *r = c->ring;

	/* relaxed: for views of this side that re-sync (cons_sync) and for
	 * statistics; ordered for them by the head's store below */
	shmq__store_relaxed(&r->head_n, c->n);
	if (strong)
		shmq__store_seq_cst(&r->head, c->head);
	else /* pairs with the producer's load_acquire of head in prod_refresh:
	      * our reads of the freed bytes happen before it overwrites them */
		shmq__store_release(&r->head, c->head);
}

/* Hand every consumed byte back to the producer; wake it if it sleeps. */
static inline void shmq__spsc_cons_publish(struct shmq__spsc_cons *c)
{
	struct shmq__spsc *r = c->ring;
	uint32_t armed;

	if (SHMQ__UNLIKELY(c->strong)) {
		shmq__spsc_cons_store(c, true);
		armed = shmq__load_seq_cst(&r->prod_armed) | shmq__load_seq_cst(&r->prod_watchers);
	} else {
		shmq__spsc_cons_store(c, false);
		shmq__signal_fence();
		/* relaxed, both: the sleeper's membarrier supplies the fence (see
		 * top); one line, so the second load costs nothing */
		armed = shmq__load_relaxed(&r->prod_armed) | shmq__load_relaxed(&r->prod_watchers);
	}
	if (SHMQ__UNLIKELY(armed != 0))
		shmq__spsc_wake_producer(c);
}

/* For frameless fast paths: publish as cons_publish does for a view that is
 * not strong, and say whether a sleeping producer's flag is set (the caller
 * then calls shmq__spsc_wake_producer, as a tail call). */
static inline bool shmq__spsc_cons_publish_weak(struct shmq__spsc_cons *c)
{
	struct shmq__spsc *r = c->ring;

	shmq__spsc_cons_store(c, false);
	shmq__signal_fence();
	/* relaxed, both: the sleeper's membarrier supplies the fence (see top) */
	return (shmq__load_relaxed(&r->prod_armed) | shmq__load_relaxed(&r->prod_watchers)) != 0;
}

/* Consume what the last peek returned and publish. */
static inline void shmq__spsc_consume(struct shmq__spsc_cons *c)
{
	shmq__spsc_consume_nopub(c);
	shmq__spsc_cons_publish(c);
}

/* Copy the next record out.  Its length, or -EAGAIN, -EBADMSG, or -EMSGSIZE
 * when cap is too small (the record stays queued). */
static inline ssize_t shmq__spsc_recv(struct shmq__spsc_cons *c, void *buf, size_t cap)
{
	const void *msg;
	size_t len;
	int rc = shmq__spsc_peek(c, &msg, &len);

	if (SHMQ__UNLIKELY(rc))
		return rc;
	if (SHMQ__UNLIKELY(len > cap))
		return -EMSGSIZE;
	shmq__copy(buf, msg, len);
	shmq__spsc_consume(c);
	return (ssize_t)len;
}

/* Copy up to n records out, packed back to back into buf (cap bytes), their
 * lengths in lens[], and publish once (and once per SHMQ__SPSC_BULK_PUB
 * bytes of a longer batch).  Returns how many (stops at the first
 * that does not fit in what is left of buf, which stays queued), or a
 * negative errno when none was: -EAGAIN, -EMSGSIZE, -EBADMSG.
 *
 * In runs, as send_bulk: the inner loop takes records while they are
 * published and fit as they are (no wrap flag, at most max_msg, before the
 * end of the data area, within what is left of the half ring and of buf),
 * with its indices in registers; the record it stops at goes through
 * shmq__spsc_peek, as a one-record receive's does. */
static inline ssize_t shmq__spsc_recv_bulk(struct shmq__spsc_cons *c, void *buf, size_t cap,
					   size_t *lens, size_t n)
{
	const uint64_t rcap = c->cap, half = SHMQ__SPSC_BULK_PUB(rcap), max = c->max_msg;
	const uint64_t *desc = c->desc, dmask = c->dmask;
	size_t *ln = lens, *lend = lens + n;
	uint8_t *dst = buf;
	size_t left = cap; /* of buf */
	uint64_t pub = c->head;
	int rc = 0;

	c->peeked = 0;
	/* the batch's descriptor lines at once, not one after the other as
	 * the loop reaches them: a hint, masked into the array.  Counted from
	 * 0 to a private bound: c->n came from the ring, and a loop from it
	 * to it + k wraps round 2^64 when it is near it */
	for (uint64_t k = 8 - (c->n & 7u), lim = n < dmask ? n : dmask; k < lim; k += 8)
		__builtin_prefetch(&desc[(c->n + k) & dmask]);
	while (ln < lend) {
		uint64_t head = c->head, rn = c->n, off = head & c->mask, lim;
		const uint8_t *src = c->data + off;
		size_t *from = ln, len;
		const void *msg;

		if (SHMQ__UNLIKELY(head - pub >= half)) {
			shmq__spsc_cons_publish(c);
			pub = head;
		}
		/* the room before the end of the data area, and what is left
		 * of the half ring */
		lim = rcap - off;
		if (lim > pub + half - head)
			lim = pub + half - head;
		for (; ln < lend; ln++, rn++) {
			/* pairs with the producer's release store of the
			 * descriptor in shmq__spsc_put, shmq__spsc_put_iov or
			 * shmq__spsc_prod_publish_one: the record is written */
			uint64_t e = shmq__load_acquire(&desc[rn & dmask]);
			uint64_t l = (uint32_t)e, rec = SHMQ__SPSC_REC(l); /* wrap flag: l > max */

			if (!shmq__spsc_desc_is(e, rn) | (l > max) | (rec > lim) |
			    (l > left))
				break;
			shmq__copy(dst, src, l);
			*ln = l;
			dst += l;
			left -= l;
			src += rec;
			lim -= rec;
		}
		if (SHMQ__LIKELY(ln > from)) {
			c->head = head + (uint64_t)(src - (c->data + off));
			c->n = rn;
			continue;
		}
		/* not yet published, or not as it is: the look of peek, which
		 * checks it as the loop does and locates a skip to offset 0 */
		rc = shmq__spsc_peek(c, &msg, &len);
		if (rc)
			break;
		if (SHMQ__UNLIKELY(len > left)) {
			c->peeked = 0; /* stays queued */
			rc = -EMSGSIZE;
			break;
		}
		shmq__copy(dst, msg, len);
		dst += len;
		left -= len;
		*ln++ = len;
		shmq__spsc_consume_nopub(c);
	}
	if (ln == lens)
		return rc;
	shmq__spsc_cons_publish(c);
	return ln - lens;
}

/* ---- waiting (spsc.c) ---- */

/* A check run while waiting: cheap (deep false) between spins, deep (true)
 * when a sleep slice ended.  Nonzero ends the wait with that value. */
typedef int (*shmq__spsc_check_fn)(void *arg, bool deep);

struct shmq__spsc_wait {
	int64_t deadline;         /* absolute, SHMQ__NO_DEADLINE for none */
	int64_t slice_ns;         /* sleep at most this long between checks */
	shmq__spsc_check_fn check; /* may be NULL */
	void *arg;
	int64_t spin;             /* polls before sleeping: 0 the process default
				     (shmq__spin_budget), SHMQ__SPSC_NOSPIN none */
};

#define SHMQ__SPSC_NOSPIN ((int64_t)-1)

/* Wait until the ring holds something (0), the deadline passes (-ETIMEDOUT),
 * check says stop (its value), or -EBADMSG.  Spins, then sleeps on the futex. */
int shmq__spsc_wait_readable(struct shmq__spsc_cons *c, const struct shmq__spsc_wait *w);

/* Wait until a record of len payload bytes fits (0), or as above. */
int shmq__spsc_wait_writable(struct shmq__spsc_prod *p, size_t len, const struct shmq__spsc_wait *w);

/* Is there something to read / room for len bytes, without waiting?
 * 1 / 0, or -EBADMSG.  Refreshes the view's cache of the other index. */
int shmq__spsc_readable(struct shmq__spsc_cons *c);
int shmq__spsc_writable(struct shmq__spsc_prod *p, size_t len);

/* Wake every sleeper on both words after a state change they must see (such
 * as the peer closing), with a system call only for a word that has
 * sleepers.  The caller made the change with a seq_cst store, and sleepers
 * re-check it with a seq_cst load after counting themselves in (a Dekker
 * pair with the sleeper counts this loads). */
void shmq__spsc_wake_sleepers(struct shmq__spsc *r);

#endif /* SHMQ__SPSC_H */
