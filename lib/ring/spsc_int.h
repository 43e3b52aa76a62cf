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
 * Records.  Each record is an 8-byte header (uint32 length word, uint32
 * stamp, see "Stamps") followed by the payload, padded to 8 bytes.  The
 * length word is the payload length, with SHMQ__SPSC_STAMPED added to the
 * records that were stamped.  A record is never
 * split across the end of the data area: when it would be, the producer
 * writes a pad header (length SHMQ__SPSC_PAD) that tells the consumer to skip
 * to offset 0.  So the largest payload that always fits is capacity/2 - 8
 * (shmq__spsc_max_msg): whatever the write offset, one of "here to the end"
 * or "0 to here" holds capacity/2 bytes.
 *
 * Indices.  head and tail are free-running 64-bit byte counters; the offset
 * of a position is pos & (capacity - 1).  They never wrap in practice
 * (2^64 bytes is 584 years at 1 TB/s), so tail - head is the bytes in use and
 * every comparison is plain unsigned arithmetic.  tail is written only by
 * the producer, head only by the consumer, each on its own cache line.
 *
 * Private views.  Each side works through a process-private view
 * (struct shmq__spsc_prod / _cons) that holds the validated geometry, its
 * own working index and a cache of the other side's index; it reads the
 * other index from shared memory only when the cache says the ring looks
 * full (producer) or empty (consumer).  Nothing read from the ring is
 * trusted: a tail/head pair more than capacity apart, a misaligned index, a
 * length larger than the largest record or one that crosses the published
 * tail or the end of the data area gives -EBADMSG; every access stays inside
 * the data area whatever the shared words hold.
 *
 * Stamps.  A receiver waiting for an answer polls, in the common case, the
 * header at its head instead of the tail: the header is in the line it
 * reads next anyway, the tail in a line of its own, and polling the tail
 * moves a line more per message (awake round trip, a two-process driver at
 * a cache-line round trip of about 465 ns: 533-611 -> 374-409 ns).  A send
 * that answers a receive (the pipe's fast path with last_rx set) publishes
 * with shmq__spsc_prod_publish_stamped:
 *  - before the tail, it zeroes the stamp half of the header at the end of
 *    its record (the marker), when that is inside the line the record ends
 *    in and free by the cached head, and then says so with
 *    SHMQ__SPSC_STAMPED in its record's length word;
 *  - after the tail, it stores shmq__spsc_stamp(its position) in its
 *    record's stamp half.
 * A consumer trusts a stamp only at the end of a record whose length word
 * had SHMQ__SPSC_STAMPED: there the header is the marker until a stamp is
 * stored.  Anywhere else the bytes of the stamp half may be left from an
 * earlier lap, payload included, and an application that controls its
 * payload could make them look like the stamp the consumer expects; so
 * there the consumer reads the tail, as before.  Where a stamp may be
 * trusted, whatever item is published next (an answer, a send that answers
 * nothing, a bulk send, a flushed batch, a pad) is stamped after the tail,
 * so that a polling answer sees it at once: the producer's view keeps that
 * position (view->marked, the tail after any sync, since another view may
 * have left a marker there) and the publication that covers it stamps it
 * (shmq__spsc_stamp_marked).  Streaming and bulk calls write nothing more
 * than before.  A stamp is a hint, never trusted for more than
 * "published": the record it admits is checked against the ring's
 * geometry as any other.  The tail is stored before the stamp, so a
 * consumer's head never passes it.
 *
 * Publication.  A commit only advances the producer's private tail;
 * shmq__spsc_prod_publish makes everything committed visible at once (one
 * release store), so callers batch by committing several records before
 * publishing.  The consumer side is symmetric (consume, then cons_publish).
 *
 * Wake-ups without a fence on the fast path.  A side that finds nothing to
 * do may sleep on a futex word (data_word for the consumer, space_word for
 * the producer) after counting itself in the matching sleeper count and
 * arming the matching wake flag (cons_armed / prod_armed).  The other side,
 * after publishing with a release store, reads the flag with a relaxed load
 * and makes a system call only when it is set.
 * Store-then-load needs a full fence on both sides to be a correct Dekker
 * pair; the publishing side gets its half asymmetrically: every attaching
 * process registers for membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED),
 * and a sleeper, between arming and re-checking the index, runs
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
 * fetch_or reads it and the consumer's re-check sees the index published
 * before it; if after, it sees ARMED and wakes).  A publisher whose load
 * found the word 0 read it before the FENCED that VERIFIED vouches for, so
 * before the membarrier that followed: its store of the index was visible
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
 * watcher's check sees the index.  A publication that finds a watcher
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
#define SHMQ__SPSC_VERSION 4u /* 3: wake flags, prod_need, cons_watchers; 4: stamps */
#define SHMQ__SPSC_HDR     8u          /* record header bytes */
#define SHMQ__SPSC_PAD     UINT32_MAX  /* header length of a skip-to-start marker */
#define SHMQ__SPSC_STAMPED (1u << 30)   /* in a length word: stamped, marker after ("Stamps") */
#define SHMQ__SPSC_CAP_MIN ((uint64_t)64)
#define SHMQ__SPSC_CAP_MAX ((uint64_t)1 << 31)

/* Bytes a record with a payload of len bytes occupies (len < 2^32). */
#define SHMQ__SPSC_REC(len) (((uint64_t)(len) + SHMQ__SPSC_HDR + 7u) & ~(uint64_t)7u)

/* The stamp of the record at position pos ("Stamps"): never 0, the
 * marker's. */
static inline uint32_t shmq__spsc_stamp(uint64_t pos)
{
	return (uint32_t)(pos >> 3) | 1u;
}

/* The payload length in a length word (a pad's stays over any limit). */
static inline uint32_t shmq__spsc_len(uint32_t word)
{
	return word == SHMQ__SPSC_PAD ? word : word & ~SHMQ__SPSC_STAMPED;
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

/* The shared control block; the data area follows it. */
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
	/* line 1: the producer's published tail */
	uint64_t tail;
	uint8_t pad1[56];
	/* line 2: the consumer's published head */
	uint64_t head;
	uint8_t pad2[56];
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
	/* line 5 on: capacity bytes of records */
	uint8_t data[];
};
_Static_assert(offsetof(struct shmq__spsc, pad0) + 16 == SHMQ__CACHELINE, "spsc line 0");
SHMQ__LINE_ALIGNED_FIELD(struct shmq__spsc, tail);
SHMQ__LINE_ALIGNED_FIELD(struct shmq__spsc, head);
SHMQ__LINE_ALIGNED_FIELD(struct shmq__spsc, data_word);
SHMQ__LINE_ALIGNED_FIELD(struct shmq__spsc, space_word);
SHMQ__LINE_ALIGNED_FIELD(struct shmq__spsc, data);

/* The producer's private view.  One view per producing thread; a ring has
 * one producer at a time. */
struct shmq__spsc_prod {
	struct shmq__spsc *ring;
	uint8_t *data;
	uint64_t cap;        /* validated at attach, never re-read */
	uint64_t mask;
	uint64_t max_msg;
	uint64_t tail;       /* working tail: committed, maybe not yet published */
	uint64_t head_cache; /* the last head seen */
	uint64_t marked;     /* where the item written next gets a stamp at its
				publication, a consumer may trust one there
				("Stamps"); UINT64_MAX: nowhere */
	bool strong;         /* no membarrier: publish with seq_cst */
	bool prefetchw;      /* the CPU has PREFETCHW (shmq__spsc_prefetch_room) */
};

/* The consumer's private view.  One consumer at a time. */
struct shmq__spsc_cons {
	struct shmq__spsc *ring;
	uint8_t *data;
	uint64_t cap;
	uint64_t mask;
	uint64_t max_msg;
	uint64_t head;       /* working head: consumed, maybe not yet published */
	uint64_t tail_cache; /* the last tail seen */
	uint64_t peeked;     /* bytes the last peek covers (skipped pads + record), 0: none */
	uint64_t stamp_at;   /* the end of a record seen with SHMQ__SPSC_STAMPED: the one
				position where a stamp is trusted ("Stamps"); positions
				only grow, so an old value is never met again */
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

/* Re-read this side's own index from shared memory (another view of the same
 * side may have moved it while this one was idle).  -EBADMSG if misaligned. */
static inline int shmq__spsc_prod_sync(struct shmq__spsc_prod *p)
{
	/* relaxed: only this side writes tail; views of one side take turns
	 * under the caller's own synchronisation */
	p->tail = shmq__load_relaxed(&p->ring->tail);
	/* another view may have left a marker there ("Stamps") */
	p->marked = p->tail;
	return SHMQ__UNLIKELY(p->tail & 7u) ? -EBADMSG : 0;
}

static inline int shmq__spsc_cons_sync(struct shmq__spsc_cons *c)
{
	/* relaxed: only this side writes head (see prod_sync) */
	c->head = shmq__load_relaxed(&c->ring->head);
	c->peeked = 0;
	return SHMQ__UNLIKELY(c->head & 7u) ? -EBADMSG : 0;
}

/* ---- slow paths (spsc.c) ---- */
int shmq__spsc_prod_refresh(struct shmq__spsc_prod *p, uint64_t need);
int shmq__spsc_peek_slow(struct shmq__spsc_cons *c, const void **msg, size_t *len);
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

/*
 * Reserve room for a record of len payload bytes and point *buf at its
 * payload, to be written in place and then committed.  Writes a pad marker
 * first when the record would cross the end of the data area.
 * 0; -EMSGSIZE (len > max_msg); -EAGAIN (not enough free space now);
 * -EBADMSG (the indices are corrupt).  Producer only.
 */
static inline int shmq__spsc_reserve(struct shmq__spsc_prod *p, size_t len, void **buf)
{
	uint64_t rec, off, room, need;

	if (SHMQ__UNLIKELY(len > p->max_msg))
		return -EMSGSIZE;
	rec = SHMQ__SPSC_REC(len);
	off = p->tail & p->mask;
	room = p->cap - off;
	need = rec <= room ? rec : rec + room; /* < cap: rec <= cap/2 and room < rec */
	if (SHMQ__UNLIKELY(p->tail - p->head_cache > p->cap - need)) {
		int rc = shmq__spsc_prod_refresh(p, need);

		if (rc)
			return rc;
	}
	if (SHMQ__UNLIKELY(rec > room)) {
		/* relaxed: published with the record by the release store of tail */
		shmq__store_relaxed((uint32_t *)(p->data + off), SHMQ__SPSC_PAD);
		p->tail += room;
		off = 0;
	}
	*buf = p->data + off + SHMQ__SPSC_HDR;
	return 0;
}

/* Commit the reserved record with its final length (<= the reserved one).
 * Not yet visible to the consumer: see shmq__spsc_prod_publish. */
static inline void shmq__spsc_commit(struct shmq__spsc_prod *p, size_t len)
{
	/* relaxed: published by the release store of tail in prod_publish */
	shmq__store_relaxed((uint32_t *)(p->data + (p->tail & p->mask)), (uint32_t)len);
	p->tail += SHMQ__SPSC_REC(len);
}

/* After a publication's store of the tail: stamp the item written where a
 * consumer may trust a stamp ("Stamps"). */
static SHMQ__ALWAYS_INLINE void shmq__spsc_stamp_marked(struct shmq__spsc_prod *p)
{
	if (SHMQ__UNLIKELY(p->marked < p->tail)) { /* an item starts there */
		/* pairs with the load_acquire of the stamp in
		 * shmq__spsc_stamped: the item, and the tail past it, are
		 * published */
		shmq__store_release((uint32_t *)(p->data + (p->marked & p->mask)) + 1,
				    shmq__spsc_stamp(p->marked));
		p->marked = UINT64_MAX;
	}
}

/* Make every committed record visible; wake the consumer if it sleeps. */
static inline void shmq__spsc_prod_publish(struct shmq__spsc_prod *p)
{
	struct shmq__spsc *r = p->ring;
	uint32_t due;

	if (SHMQ__UNLIKELY(p->strong)) {
		shmq__store_seq_cst(&r->tail, p->tail);
		shmq__spsc_stamp_marked(p);
		due = shmq__load_seq_cst(&r->cons_armed) | shmq__load_seq_cst(&r->cons_watchers);
	} else {
		/* pairs with the consumer's load_acquire of tail in peek_slow */
		shmq__store_release(&r->tail, p->tail);
		shmq__spsc_stamp_marked(p);
		shmq__signal_fence();
		/* relaxed, both: the sleeper's membarrier supplies the fence (see
		 * top); one line, so the second load costs nothing */
		due = shmq__load_relaxed(&r->cons_armed) | shmq__load_relaxed(&r->cons_watchers);
	}
	if (SHMQ__UNLIKELY(due != 0))
		shmq__spsc_wake_consumer(r);
}

/* For frameless fast paths: publish as prod_publish does for a view that is
 * not strong, and say whether the consumer is due a wake (the caller then
 * calls shmq__spsc_wake_consumer, as a tail call).  Not for an item written
 * at view->marked: publish_stamped. */
static inline bool shmq__spsc_prod_publish_weak(struct shmq__spsc_prod *p)
{
	struct shmq__spsc *r = p->ring;

	/* pairs with the consumer's load_acquire of tail in peek_slow */
	shmq__store_release(&r->tail, p->tail);
	shmq__signal_fence();
	/* relaxed, both: the sleeper's membarrier supplies the fence (see top) */
	return (shmq__load_relaxed(&r->cons_armed) | shmq__load_relaxed(&r->cons_watchers)) != 0;
}

/* Is a record of rec bytes at the view's tail (pos) to be stamped: does the
 * marker at its end fall inside the line it ends in, in free room by the
 * cached head ("Stamps")? */
static inline bool shmq__spsc_stampable(const struct shmq__spsc_prod *p, uint64_t pos, uint64_t rec)
{
	uint64_t end = pos + rec;

	return (end & (SHMQ__CACHELINE - 1)) && end - p->head_cache < p->cap;
}

/* For the frameless fast paths of an answer, or of a record written at
 * view->marked: publish the one record written at pos since the last
 * publication, its length word carrying SHMQ__SPSC_STAMPED when stamped
 * (shmq__spsc_stampable): the marker, the tail, then the record's stamp
 * ("Stamps"); and say, as publish_weak, whether the consumer is due a
 * wake. */
static inline bool shmq__spsc_prod_publish_stamped(struct shmq__spsc_prod *p, uint64_t pos,
						   bool stamped)
{
	struct shmq__spsc *r = p->ring;

	/* relaxed: ordered before the consumer can reach it by the release
	 * store of tail below */
	if (stamped)
		shmq__store_relaxed((uint32_t *)(p->data + (p->tail & p->mask)) + 1, 0u);
	p->marked = stamped ? p->tail : UINT64_MAX;
	/* pairs with the consumer's load_acquire of tail in peek_slow */
	shmq__store_release(&r->tail, p->tail);
	/* pairs with the load_acquire of the stamp in shmq__spsc_stamped:
	 * the record, and the tail past it, are published */
	shmq__store_release((uint32_t *)(p->data + (pos & p->mask)) + 1, shmq__spsc_stamp(pos));
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
	const uint64_t line = SHMQ__CACHELINE;
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
	for (uint64_t a = (tail + line - 1) & ~(line - 1); a < end; a += line) {
#if defined(__x86_64__) || defined(__i386__)
		if (p->prefetchw) {
			__asm__ volatile("prefetchw %0" : : "m"(p->data[a & p->mask]));
			continue;
		}
#endif
		__builtin_prefetch(p->data + (a & p->mask), 1);
	}
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

/* Copy up to n records in and publish them with one store, or with one per
 * half ring's worth of bytes for a longer batch (SHMQ__SPSC_BULK_PUB).
 * Returns how many were sent (stops at the first that does not fit now), or
 * a negative errno when none was: -EAGAIN, -EMSGSIZE (v[0] is too large),
 * -EBADMSG.
 *
 * The loop keeps the working tail and the room the cached head leaves in
 * registers: written through the view, the record copies (char stores that
 * may alias it) would make the compiler store and reload them per record.
 * A record that needs a pad, more room than the cache shows, or is too large
 * goes through shmq__spsc_reserve, which handles all three. */
static inline ssize_t shmq__spsc_send_bulk(struct shmq__spsc_prod *p, const struct iovec *v,
					   size_t n)
{
	uint8_t *data = p->data;
	uint64_t cap = p->cap, mask = p->mask, max = p->max_msg;
	uint64_t tail = p->tail, start = tail, pub = tail, used = tail - p->head_cache;
	uint64_t room = used <= cap ? cap - used : 0; /* else reserve says -EBADMSG */
	size_t i;
	int rc = 0;

	for (i = 0; i < n; i++) {
		size_t len = v[i].iov_len;
		uint64_t rec = SHMQ__SPSC_REC(len), off = tail & mask;
		void *buf;

		if (SHMQ__UNLIKELY(tail - pub >= SHMQ__SPSC_BULK_PUB(cap))) {
			p->tail = pub = tail;
			shmq__spsc_prod_publish(p);
		}
		if (SHMQ__LIKELY((len <= max) & (rec <= cap - off) & (rec <= room))) {
			/* relaxed: published by the release store of tail in prod_publish */
			shmq__store_relaxed((uint32_t *)(data + off), (uint32_t)len);
			shmq__copy(data + off + SHMQ__SPSC_HDR, v[i].iov_base, len);
			tail += rec;
			room -= rec;
			continue;
		}
		p->tail = tail;
		rc = shmq__spsc_reserve(p, len, &buf);
		if (SHMQ__UNLIKELY(rc))
			break;
		shmq__copy(buf, v[i].iov_base, len);
		shmq__spsc_commit(p, len);
		tail = p->tail;
		room = cap - (tail - p->head_cache); /* reserve checked it: <= cap */
	}
	p->tail = tail;
	if (i == 0)
		return rc;
	shmq__spsc_prefetch_room(p, tail - start);
	shmq__spsc_prod_publish(p);
	return (ssize_t)i;
}

/* ---- consumer ---- */

/*
 * Point *msg / *len at the next record, in place, without consuming it.
 * The pointer stays valid until shmq__spsc_consume.  0; -EAGAIN (empty);
 * -EBADMSG (an index or a length is corrupt).  Consumer only.
 */
static inline int shmq__spsc_peek(struct shmq__spsc_cons *c, const void **msg, size_t *len)
{
	uint64_t avail = c->tail_cache - c->head;
	uint64_t off, rec;
	uint32_t n;

	if (SHMQ__UNLIKELY(avail - 1 >= c->cap)) /* empty, or a stale cache */
		return shmq__spsc_peek_slow(c, msg, len);
	off = c->head & c->mask;
	/* relaxed, read once: covered by the load_acquire of tail that
	 * filled tail_cache; the value is checked before any use */
	n = shmq__spsc_len(shmq__load_relaxed((const uint32_t *)(c->data + off)));
	rec = SHMQ__SPSC_REC(n);
	if (SHMQ__UNLIKELY(n > c->max_msg || rec > avail || rec > c->cap - off))
		return shmq__spsc_peek_slow(c, msg, len); /* a pad, or corruption */
	*msg = c->data + off + SHMQ__SPSC_HDR;
	*len = n;
	c->peeked = rec;
	return 0;
}

/* Ask for the line after the one at data offset off: a hint, the address
 * masked into the data area.  An answer's record (a 64-byte message takes
 * 72 bytes) goes on into that line, and its copy would ask for it only once
 * the header, in the first, has come: a second cross-core transfer in a
 * row.  A receiver waiting at a trusted stamp asks for it at every look
 * that finds no stamp, so that the line comes with the stamp, and again
 * once the stamp is seen (chan/pipe.c, "The answer's second line"). */
static SHMQ__ALWAYS_INLINE void shmq__spsc_prefetch_next_line(const struct shmq__spsc_cons *c,
							      uint64_t off)
{
	__builtin_prefetch(c->data + (((off | (SHMQ__CACHELINE - 1)) + 1) & c->mask));
}

/* Where a stamp is trusted ("Stamps"): is the record at head stamped?  Then
 * *w is its length word, for the caller to check like any other. */
static SHMQ__ALWAYS_INLINE bool shmq__spsc_stamped(const struct shmq__spsc_cons *c, uint64_t head,
						  uint32_t *w)
{
	const uint32_t *h = (const uint32_t *)(c->data + (head & c->mask));

	/* pairs with the producer's release store of the stamp in
	 * shmq__spsc_prod_publish_stamped or shmq__spsc_stamp_marked: the
	 * record is published */
	if (shmq__load_acquire(&h[1]) != shmq__spsc_stamp(head))
		return false;
	/* relaxed, read once: covered by the acquire above */
	*w = shmq__load_relaxed(&h[0]);
	return true;
}

/* Consume what the last peek returned (without publishing). */
static inline void shmq__spsc_consume_nopub(struct shmq__spsc_cons *c)
{
	c->head += c->peeked;
	c->peeked = 0;
}

/* Hand every consumed byte back to the producer; wake it if it sleeps. */
static inline void shmq__spsc_cons_publish(struct shmq__spsc_cons *c)
{
	struct shmq__spsc *r = c->ring;
	uint32_t armed;

	if (SHMQ__UNLIKELY(c->strong)) {
		shmq__store_seq_cst(&r->head, c->head);
		armed = shmq__load_seq_cst(&r->prod_armed) | shmq__load_seq_cst(&r->prod_watchers);
	} else {
		/* pairs with the producer's load_acquire of head in prod_refresh:
		 * our reads of the freed bytes happen before it overwrites them */
		shmq__store_release(&r->head, c->head);
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

	/* pairs with the producer's load_acquire of head in prod_refresh:
	 * our reads of the freed bytes happen before it overwrites them */
	shmq__store_release(&r->head, c->head);
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
 * As in send_bulk, the working head and the bytes the cached tail covers
 * stay in registers; a record the fast checks (those of shmq__spsc_peek)
 * refuse, a pad, or an exhausted cache goes through shmq__spsc_peek. */
static inline ssize_t shmq__spsc_recv_bulk(struct shmq__spsc_cons *c, void *buf, size_t cap,
					   size_t *lens, size_t n)
{
	const uint8_t *data = c->data;
	uint8_t *dst = buf;
	uint64_t rcap = c->cap, mask = c->mask, max = c->max_msg;
	uint64_t head = c->head, pub = head, avail = c->tail_cache - head;
	size_t i, used = 0;
	int rc = 0;

	if (avail > rcap) /* a stale cache (or corruption): peek decides */
		avail = 0;
	for (i = 0; i < n; i++) {
		uint64_t off = head & mask, rec;
		const void *msg;
		size_t len;
		uint32_t hl;

		if (SHMQ__UNLIKELY(head - pub >= SHMQ__SPSC_BULK_PUB(rcap))) {
			c->head = pub = head;
			shmq__spsc_cons_publish(c);
		}

		if (SHMQ__LIKELY(avail != 0)) {
			/* relaxed, read once: covered by the load_acquire of tail
			 * that filled tail_cache; checked before any use */
			hl = shmq__spsc_len(shmq__load_relaxed((const uint32_t *)(data + off)));
			rec = SHMQ__SPSC_REC(hl);
			if (SHMQ__LIKELY((hl <= max) & (rec <= avail) & (rec <= rcap - off) &
					 (hl <= cap - used))) {
				shmq__copy(dst + used, data + off + SHMQ__SPSC_HDR, hl);
				used += hl;
				lens[i] = hl;
				head += rec;
				avail -= rec;
				continue;
			}
		}
		c->head = head;
		c->peeked = 0;
		rc = shmq__spsc_peek(c, &msg, &len);
		head = c->head; /* peek may have skipped a pad */
		if (SHMQ__UNLIKELY(rc))
			break;
		if (SHMQ__UNLIKELY(len > cap - used)) {
			rc = -EMSGSIZE;
			break;
		}
		shmq__copy(dst + used, msg, len);
		used += len;
		lens[i] = len;
		shmq__spsc_consume_nopub(c);
		head = c->head;
		avail = c->tail_cache - head; /* peek checked it: <= cap */
	}
	c->head = head;
	c->peeked = 0;
	if (i == 0)
		return rc;
	shmq__spsc_cons_publish(c);
	return (ssize_t)i;
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
	bool stamps;              /* waiting for an answer: look at the stamp
				     where one is trusted ("Stamps") */
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
