/* SPDX-License-Identifier: MIT */
/* Layer 2: the MPMC slot ring.  The protocol is described in ring/mpmc_int.h. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "core/atomic_int.h"
#include "core/compiler_int.h"
#include "core/wait_int.h"
#include "ring/mpmc_int.h"

/* The state: the 2 low bits of ctl and the hold bit (bit 32), read as one
 * masked value so that a state test stays one AND and one compare. */
#define HOLD_SHIFT 32u
#define ST_EMPTY UINT64_C(0)
#define ST_WRITING UINT64_C(1)
#define ST_FULL UINT64_C(2)
#define ST_READING UINT64_C(3)
#define ST_HOLD (UINT64_C(1) << HOLD_SHIFT)
#define ST_RETURNED (ST_FULL | ST_HOLD)
#define ST_HELD (ST_READING | ST_HOLD)
#define ST_MASK (UINT64_C(3) | ST_HOLD)

#define LAP_BITS 30u
#define LAP_MASK ((1u << LAP_BITS) - 1)
#define OWNER_SHIFT 33u
/* A call that loops this often without progress checks the index invariant,
 * so overwritten indices end in -EBADMSG instead of a long walk. */
#define CHECK_EVERY 64u

/*
 * Helping an index on past a slot someone else claimed is what lets a call
 * pass claimers that have not moved the index yet.  In a valid ring those
 * are claims between the index and the other index (at most capacity + 2
 * positions), each by a claimer that has not yet advanced past it: one call
 * cannot move an index itself that many times without finding a slot to
 * claim, short of losing every race to claimers that keep coming.  A ring
 * whose laps were overwritten can offer "claimed" slots without end, and
 * producers and consumers helping both indices on in step keep the index
 * invariant true while they walk.  A call that moved the index itself more
 * than capacity + HELP_SLACK times gives -EBADMSG.
 */
#define HELP_SLACK 4096u

/* ---- ctl words ---- */

static inline uint64_t ctl_make(uint32_t lap, uint64_t st, uint32_t owner)
{
	return (uint64_t)owner << OWNER_SHIFT | (uint64_t)(lap & LAP_MASK) << 2 | st;
}

static inline uint64_t ctl_state(uint64_t w)
{
	return w & ST_MASK;
}

static inline uint32_t ctl_lap(uint64_t w)
{
	return (uint32_t)(w >> 2) & LAP_MASK;
}

static inline uint32_t ctl_owner(uint64_t w)
{
	return (uint32_t)(w >> OWNER_SHIFT);
}

/* Signed difference a - b of two 30-bit laps (see the wraparound argument in ring/mpmc_int.h). */
static inline int32_t lap_diff(uint32_t a, uint32_t b)
{
	return (int32_t)((a - b) << (32 - LAP_BITS)) >> (32 - LAP_BITS);
}

/* The first of the span positions behind head h that may be HELD or
 * RETURNED (Redelivery, ring/mpmc_int.h).  Modulo 2^64 for a power-of-two
 * capacity, where slot and lap go on across the wrap (indices set near
 * 2^64): a position before a queue's first one names a lap its slot does
 * not hold, so the scans skip it.  Otherwise from 0 below span, as p % cap
 * and p / cap jump at the wrap (Positions). */
static inline uint64_t window_start(const struct shmq__mpmc *m, uint64_t h, uint64_t span)
{
	return m->pow2 || h > span ? h - span : 0;
}

/* ---- claim words (Protocol PUT_CLAIM, ring/mpmc_int.h) ---- */

#define CLAIM_SET UINT64_C(1)

static inline uint64_t claim_make(uint32_t lap, uint32_t owner)
{
	return (uint64_t)owner << 32 | (uint64_t)(lap & LAP_MASK) << 2 | CLAIM_SET;
}

static inline uint32_t claim_owner(uint64_t c)
{
	return (uint32_t)(c >> 32);
}

/* Does claim word c claim lap? */
static inline bool claim_is(uint64_t c, uint32_t lap)
{
	return (c & 3u) == CLAIM_SET && ctl_lap(c) == (lap & LAP_MASK);
}

/* May a producer that found ctl EMPTY(lap) claim lap over c?  A word of an
 * older lap (or 0: the slot was never claimed); not one of lap itself
 * (taken) or of a later lap (our view of the slot is stale). */
static inline bool claim_free_for(uint64_t c, uint32_t lap)
{
	return c == 0 || ((c & 3u) == CLAIM_SET && lap_diff(ctl_lap(c), lap) < 0);
}

/*
 * Position pos is in slot pos % capacity during lap pos / capacity (ring/mpmc_int.h,
 * Positions): a shift and a mask when the capacity is a power of two (pow2),
 * a division otherwise.  The hot paths (claims, publish, release) take pow2
 * as a compile-time constant: each is inlined once per kind, and the entry
 * points pick the instance on the handle's flag, once per call (a branch
 * that always goes the same way for a handle).  So the power-of-two instance
 * is the shift-and-mask code alone.  Everything else passes the flag.
 */
static SHMQ__ALWAYS_INLINE uint32_t lap_of_k(const struct shmq__mpmc *m, uint64_t pos, bool pow2)
{
	if (pow2)
		return (uint32_t)(pos >> m->cap_log2) & LAP_MASK;
	return (uint32_t)(pos / m->capacity) & LAP_MASK;
}

/* The slot of a position: always inside the ring, whatever pos holds,
 * because mask, capacity and slot_size are the handle's verified copies. */
static SHMQ__ALWAYS_INLINE struct shmq__mpmc_slot *slot_at_k(const struct shmq__mpmc *m,
							     uint64_t pos, bool pow2)
{
	uint64_t i = pow2 ? pos & m->mask : pos % m->capacity;

	return (struct shmq__mpmc_slot *)(m->slots + i * m->slot_size);
}

/* The claim word of a position's slot: inside the array, as slot_at_k. */
static SHMQ__ALWAYS_INLINE uint64_t *claim_at_k(const struct shmq__mpmc *m, uint64_t pos, bool pow2)
{
	return &m->claims[pow2 ? pos & m->mask : pos % m->capacity];
}

static inline uint64_t *claim_at(const struct shmq__mpmc *m, uint64_t pos)
{
	return claim_at_k(m, pos, m->pow2);
}

/* Does pos's claim word claim lap?  *owner: the producer it names.  The
 * cold paths' one look at the word, each after its look at ctl (EMPTY of
 * lap there: claimed, not published); seq_cst, as those looks, and it
 * pairs with the claim CAS in put_claim. */
static bool claim_word_names(const struct shmq__mpmc *m, uint64_t pos, uint32_t lap,
			     uint32_t *owner)
{
	uint64_t c = shmq__load_seq_cst(claim_at(m, pos));

	*owner = claim_owner(c);
	return claim_is(c, lap);
}

static inline uint32_t lap_of(const struct shmq__mpmc *m, uint64_t pos)
{
	return lap_of_k(m, pos, m->pow2);
}

static inline struct shmq__mpmc_slot *slot_at(const struct shmq__mpmc *m, uint64_t pos)
{
	return slot_at_k(m, pos, m->pow2);
}

/* ---- geometry ---- */

static uint32_t slot_size_for(uint32_t max_msg)
{
	return (uint32_t)SHMQ__ALIGN_UP((uint64_t)max_msg + SHMQ__MPMC_SLOT_HDR,
					(uint64_t)SHMQ__CACHELINE);
}

/* Where the claim words start: after the slots. */
static uint64_t claims_offset(uint32_t capacity, uint32_t max_msg)
{
	return sizeof(struct shmq__mpmc_shared) + (uint64_t)capacity * slot_size_for(max_msg);
}

uint64_t shmq__mpmc_footprint(uint32_t capacity, uint32_t max_msg)
{
	if (capacity == 0 || capacity > SHMQ__MPMC_CAP_MAX || max_msg > SHMQ__MPMC_MSG_MAX)
		return 0;
	return claims_offset(capacity, max_msg) +
	       SHMQ__ALIGN_UP((uint64_t)capacity * sizeof(uint64_t), (uint64_t)SHMQ__CACHELINE);
}

static bool owner_kind_valid(uint32_t kind)
{
	return kind == SHMQ__MPMC_OWNER_REGION || kind == SHMQ__MPMC_OWNER_PID;
}

int shmq__mpmc_init(void *mem, uint64_t size, uint32_t capacity, uint32_t max_msg,
		    uint32_t owner_kind)
{
	struct shmq__mpmc_shared *sh = mem;
	uint64_t need = shmq__mpmc_footprint(capacity, max_msg);

	if (!mem || need == 0 || size < need || !owner_kind_valid(owner_kind) ||
	    ((uintptr_t)mem % SHMQ__CACHELINE) != 0)
		return -EINVAL;
	/* Nobody is attached yet: plain stores; whoever attaches later learns
	 * of this memory through a release (the region directory's READY
	 * store, or the caller's own publication of a placed ring). */
	memset(mem, 0, need); /* every slot starts EMPTY(0), owner 0, claim word 0 */
	sh->magic = SHMQ__MPMC_MAGIC;
	sh->version = SHMQ__MPMC_VERSION;
	sh->capacity = capacity;
	sh->max_msg = max_msg;
	sh->slot_size = slot_size_for(max_msg);
	sh->owner_kind = owner_kind;
	sh->footprint = need;
	return 0;
}

void shmq__mpmc_set_flags(void *mem, uint32_t flags)
{
	struct shmq__mpmc_shared *sh = mem;

	/* relaxed: nobody attached yet; published with the ring (see init) */
	shmq__store_relaxed(&sh->flags, flags);
}

static uint32_t log2_u32(uint32_t v)
{
	return (uint32_t)__builtin_ctz(v);
}

int shmq__mpmc_attach(struct shmq__mpmc *m, void *mem, uint64_t size, uint32_t owner_kind,
		      uint32_t self, shmq__mpmc_alive_fn alive, void *alive_ctx)
{
	struct shmq__mpmc_shared *sh = mem;
	uint32_t cap, max_msg, slot_size, kind, version;
	uint64_t footprint;

	if (!m || !mem || !alive || self == 0 || self >= (1u << 31))
		return -EINVAL;
	if (size < sizeof(*sh) || ((uintptr_t)mem % SHMQ__CACHELINE) != 0)
		return -EBADMSG;
	/* relaxed: the geometry was published before mem reached us (see init) */
	if (shmq__load_relaxed(&sh->magic) != SHMQ__MPMC_MAGIC)
		return -EBADMSG;
	version = shmq__load_relaxed(&sh->version);
	if (version != SHMQ__MPMC_VERSION)
		return -EPROTO;
	cap = shmq__load_relaxed(&sh->capacity);
	max_msg = shmq__load_relaxed(&sh->max_msg);
	slot_size = shmq__load_relaxed(&sh->slot_size);
	kind = shmq__load_relaxed(&sh->owner_kind);
	footprint = shmq__load_relaxed(&sh->footprint);
	if (shmq__mpmc_footprint(cap, max_msg) == 0 || slot_size != slot_size_for(max_msg) ||
	    footprint != shmq__mpmc_footprint(cap, max_msg) || footprint > size ||
	    !owner_kind_valid(kind))
		return -EBADMSG;
	if (kind != owner_kind)
		return -EINVAL;
	m->sh = sh;
	m->slots = (uint8_t *)mem + sizeof(*sh);
	m->claims = (uint64_t *)(void *)((uint8_t *)mem + claims_offset(cap, max_msg));
	m->capacity = cap;
	m->pow2 = SHMQ__IS_POW2(cap);
	m->cap_log2 = m->pow2 ? log2_u32(cap) : 0;
	m->mask = (uint64_t)cap - 1;
	m->slot_size = slot_size;
	m->max_msg = max_msg;
	m->self = self;
	/* relaxed: written before publication, as the geometry */
	m->flags = shmq__load_relaxed(&sh->flags);
	m->strong = shmq__remote_fence_register() != 0;
	m->alive = alive;
	m->alive_ctx = alive_ctx;
	m->held_scan = 0; /* held_behind's first look scans the whole span */
	return 0;
}

/* ---- index helpers ---- */

int shmq__mpmc_check(const struct shmq__mpmc *m)
{
	/* seq_cst: three reads in one total order, head read before and after
	 * the tail.  Indices only move forward, so the head of the instant the
	 * tail was read, H, lies in [h, h2], and the invariant -2 <= t - H <=
	 * cap + 2 gives t - h >= -2 and t - h2 <= cap + 2 whether or not head
	 * moved meanwhile.  (Giving no verdict while head moved let two callers
	 * that helped a corrupted head on, each moving it under the other's
	 * check, loop forever.) */
	uint64_t h = shmq__load_seq_cst(&m->sh->head);
	uint64_t t = shmq__load_seq_cst(&m->sh->tail);
	uint64_t h2 = shmq__load_seq_cst(&m->sh->head);

	if ((int64_t)(h2 - h) < 0)
		return -EBADMSG; /* an index went back: no CAS of ours does that */
	if ((int64_t)(t - h) < -2 || (int64_t)(t - h2) > (int64_t)m->capacity + 2)
		return -EBADMSG;
	return 0;
}

/* Move an index from pos to pos + 1 unless someone did; returns its value now.
 * An index is a hint: every decision is made by a CAS on a slot's ctl.  But
 * an index may only pass a slot that was claimed, so its release publishes
 * that claim and its acquire (here and in index_load) lets a reader of the
 * index see the claim: "states no current index can meet" then really are
 * impossible, on any memory model.  Free on x86 (a locked op, plain loads). */
static inline uint64_t index_advance(uint64_t *idx, uint64_t pos)
{
	uint64_t expect = pos;

	if (shmq__cas_acq_rel(idx, &expect, pos + 1)) /* pairs with index_load */
		return pos + 1;
	return expect;
}

/* pairs with the release in index_advance */
static inline uint64_t index_load(const uint64_t *idx)
{
	return shmq__load_acquire(idx);
}

/* ---- put ---- */

/* After put_abort: the consumers that found the queue shut down and drained
 * before our claim have returned -EPIPE and never come again, so none may
 * move head past the withdrawn slot, and the length (tail - head) would
 * count it for good.  Help head on as get_claim does, past the slots a get
 * passes (withdrawn claims, ours and other producers', and slots taken by
 * a consumer that has not moved head yet), at most a ring's worth; stop
 * at anything a get may still take or wait for. */
SHMQ__COLD static void put_abort_pass(struct shmq__mpmc *m)
{
	uint64_t pos = index_load(&m->sh->head);

	for (uint32_t n = 0; n <= m->capacity + 1; n++) {
		/* seq_cst: after our seq_cst store of EMPTY in put_abort, so of
		 * two producers withdrawing at once the later sees the other's */
		uint64_t w = shmq__load_seq_cst(&slot_at(m, pos)->ctl);
		int32_t d = lap_diff(ctl_lap(w), lap_of(m, pos));
		uint64_t st = ctl_state(w);

		if (d < 0 || (d == 0 && st != ST_READING && st != ST_HELD && st != ST_RETURNED))
			return;
		pos = index_advance(&m->sh->head, pos);
	}
}

/* We hold the claim of pos (its claim word) but the queue was shut down:
 * end the slot's lap unpublished, so consumers pass it, and let the tail
 * move on. */
SHMQ__COLD static int put_abort(struct shmq__mpmc *m, struct shmq__mpmc_slot *s, uint64_t pos)
{
	/* seq_cst: pairs with a consumer's seq_cst re-check in get's -EPIPE
	 * path.  EMPTY of the next lap naming us: a withdrawn claim, never
	 * published (see shmq__mpmc_put_fate) */
	shmq__store_seq_cst(&s->ctl, ctl_make(lap_of(m, pos) + 1, ST_EMPTY, m->self));
	index_advance(&m->sh->tail, pos);
	put_abort_pass(m);
	return -EPIPE;
}

/* The slot at a tail position still holds the previous lap: the ring is full
 * unless our tail is stale. */
static int put_full(struct shmq__mpmc *m, uint64_t *pos, uint64_t w,
		    struct shmq__mpmc_block *blk)
{
	uint64_t t = index_load(&m->sh->tail);

	if (t != *pos) {
		*pos = t;
		return 1; /* retry */
	}
	blk->pos = t;
	blk->ctl = w;
	return -EAGAIN;
}

/* A state no current tail can meet: a stale view (retry) or overwritten
 * memory.  Stale is the tail, or the slot's ctl w, loaded before the claim
 * word that disagreed with it: EMPTY of the last lap, whose put another
 * producer published, a consumer took and a producer of this lap claimed
 * since (its claim word naming this lap, the tail not yet moved by it).
 * Such a retry is progress of others; n (the caller's loop count) bounds
 * them against a ctl that someone keeps rewriting. */
SHMQ__COLD static int put_impossible(struct shmq__mpmc *m, uint64_t *pos, const uint64_t *ctl,
				     uint64_t w, uint32_t n)
{
	uint64_t t = shmq__load_seq_cst(&m->sh->tail);

	if (t != *pos) {
		*pos = t;
		return 1;
	}
	/* seq_cst: after the claim word's load; a claim we saw was made after
	 * its producer's acquire of a newer ctl, which this load then sees */
	if (n <= m->capacity + HELP_SLACK && shmq__load_seq_cst(ctl) != w)
		return 1;
	return -EBADMSG;
}

/* Is lap of pos's slot claimed by a put (Protocol PUT_CLAIM)?  If so, *w
 * gets the WRITING ctl that names its producer, as a block for
 * shmq__mpmc_recover.  Cold: a full ring whose oldest slot is still being
 * filled. */
SHMQ__COLD static bool put_claimed(struct shmq__mpmc *m, uint64_t pos, uint32_t lap, uint64_t *w)
{
	uint32_t owner;

	if (!claim_word_names(m, pos, lap, &owner))
		return false;
	*w = ctl_make(lap, ST_WRITING, owner);
	return true;
}

static SHMQ__ALWAYS_INLINE int put_claim(struct shmq__mpmc *m, uint64_t *pos_out,
					 struct shmq__mpmc_block *blk, bool pow2)
{
	uint64_t pos = index_load(&m->sh->tail);
	uint32_t helped = 0; /* see HELP_SLACK */

	if (SHMQ__UNLIKELY(shmq__load_relaxed(&m->sh->shut))) /* relaxed: early out; re-checked below */
		return -EPIPE;
	for (uint32_t n = 1;; n++) {
		struct shmq__mpmc_slot *s = slot_at_k(m, pos, pow2);
		uint32_t lap = lap_of_k(m, pos, pow2);
		/* acquire: pairs with the consumer's release of EMPTY(lap) in
		 * get_release, so its reads of the old message are done */
		uint64_t w = shmq__load_acquire(&s->ctl);
		int32_t d = lap_diff(ctl_lap(w), lap);
		int rc;

		if (SHMQ__UNLIKELY(n % CHECK_EVERY == 0) && shmq__mpmc_check(m))
			return -EBADMSG;
		if (d == 0 && ctl_state(w) == ST_EMPTY) {
			uint64_t *cw = claim_at_k(m, pos, pow2);
			/* acquire: pairs with the claim CAS below of whoever
			 * claimed it, so that helping the tail past it
			 * publishes that claim (index_advance) */
			uint64_t c = shmq__load_acquire(cw);

			if (SHMQ__LIKELY(claim_free_for(c, lap))) {
				/* seq_cst: the claim is ordered before our load
				 * of shut below (Dekker with shutdown and a
				 * consumer's -EPIPE, get_empty) */
				if (!shmq__cas_seq_cst(cw, &c, claim_make(lap, m->self)))
					continue;
				if (SHMQ__UNLIKELY(shmq__load_seq_cst(&m->sh->shut)))
					return put_abort(m, s, pos);
				index_advance(&m->sh->tail, pos);
				*pos_out = pos;
				return 0;
			}
			if (!claim_is(c, lap)) { /* a later lap's: stale, or overwritten */
				rc = put_impossible(m, &pos, &s->ctl, w, n);
				if (rc <= 0)
					return rc;
				continue;
			}
			/* claimed at this lap by another producer: help the tail on */
		}
		if (d >= 0) { /* claimed at this lap or later: help the tail on */
			uint64_t next = index_advance(&m->sh->tail, pos);

			if (next == pos + 1 && ++helped > m->capacity + HELP_SLACK)
				return -EBADMSG;
			pos = next;
			continue;
		}
		if (d == -1 && ctl_state(w) != ST_EMPTY)
			rc = put_full(m, &pos, w, blk);
		else if (d == -1 && put_claimed(m, pos, lap - 1, &w))
			rc = put_full(m, &pos, w, blk); /* the last lap's put is not published yet */
		else
			rc = put_impossible(m, &pos, &s->ctl, w, n);
		if (rc <= 0)
			return rc;
	}
}

uint32_t shmq__mpmc_slot_len(struct shmq__mpmc *m, uint64_t pos)
{
	/* relaxed: called by the slot's claimer, whose claim's acquire ordered
	 * the producer's store of len before it */
	return shmq__load_relaxed(&slot_at(m, pos)->len);
}

bool shmq__mpmc_slot_live(struct shmq__mpmc *m, uint64_t pos)
{
	/* seq_cst: Protocol QLARGE, the sweep's look at the slot after its
	 * look at the block (chan/queue_int.h) */
	uint64_t w = shmq__load_seq_cst(&slot_at(m, pos)->ctl);
	uint32_t lap = lap_of(m, pos), owner;

	if (ctl_lap(w) != lap)
		return false;
	if (ctl_state(w) != ST_EMPTY)
		return true;
	return claim_word_names(m, pos, lap, &owner); /* a put's claim */
}

/* The store that ends a producer's or a consumer's claim: release, pairs
 * with the next claimer's load_acquire (get_claim, put_claim).  order_sc:
 * the caller looks at the sleeper counts next (Dekker, chan/queue.c Protocol
 * WAKE_PENDING): a seq_cst store when the handle is strong, else the
 * compiler barrier that keeps those loads after the store, the sleepers'
 * remote fences doing the CPU's part (core/wait_int.h). */
static SHMQ__ALWAYS_INLINE void publish_ctl(const struct shmq__mpmc *m, uint64_t *ctl, uint64_t w,
					    bool order_sc)
{
	if (order_sc && SHMQ__UNLIKELY(m->strong)) {
		shmq__store_seq_cst(ctl, w); /* seq_cst: Dekker with the sleeper counts */
	} else {
		shmq__store_release(ctl, w);
		if (order_sc)
			shmq__signal_fence();
	}
}

static SHMQ__ALWAYS_INLINE void put_publish(struct shmq__mpmc *m, uint64_t pos, uint32_t len,
					    bool order_sc, bool pow2)
{
	struct shmq__mpmc_slot *s = slot_at_k(m, pos, pow2);
	uint64_t w = ctl_make(lap_of_k(m, pos, pow2), ST_FULL, m->self);

	/* relaxed: published by the store of FULL below; read after a consumer's
	 * acquire of FULL (atomic because a stale consumer may read it while the
	 * next lap's producer writes it; it then fails its CAS and drops it) */
	shmq__store_relaxed(&s->len, len);
	publish_ctl(m, &s->ctl, w, order_sc);
}

int shmq__mpmc_put_claim(struct shmq__mpmc *m, uint64_t *pos, struct shmq__mpmc_block *blk)
{
	if (SHMQ__LIKELY(m->pow2))
		return put_claim(m, pos, blk, true);
	return put_claim(m, pos, blk, false);
}

void shmq__mpmc_put_publish(struct shmq__mpmc *m, uint64_t pos, uint32_t len, bool order_sc)
{
	if (SHMQ__LIKELY(m->pow2))
		put_publish(m, pos, len, order_sc, true);
	else
		put_publish(m, pos, len, order_sc, false);
}

static SHMQ__ALWAYS_INLINE int try_put(struct shmq__mpmc *m, const void *msg, size_t len,
				       struct shmq__mpmc_block *blk, bool pow2)
{
	uint64_t pos = 0; /* set by a successful claim; 0 quiets -Wmaybe-uninitialized */
	int rc;

	rc = put_claim(m, &pos, blk, pow2);
	if (SHMQ__UNLIKELY(rc))
		return rc;
	shmq__mpmc_slot_fill(slot_at_k(m, pos, pow2)->data, msg, len);
	put_publish(m, pos, (uint32_t)len, true, pow2);
	return 0;
}

int shmq__mpmc_try_put(struct shmq__mpmc *m, const void *msg, size_t len,
		       struct shmq__mpmc_block *blk)
{
	if (SHMQ__UNLIKELY(len > m->max_msg))
		return -EMSGSIZE;
	if (SHMQ__LIKELY(m->pow2))
		return try_put(m, msg, len, blk, true);
	return try_put(m, msg, len, blk, false);
}

/* ---- get ---- */

/* Re-read ctl after a read of len (which was acquire, so this load comes
 * after it): did the slot keep the value w the whole time? */
static inline bool ctl_unchanged(struct shmq__mpmc_slot *s, uint64_t w)
{
	return shmq__load_acquire(&s->ctl) == w; /* pairs with the publish of FULL in put_publish */
}

/* A FULL slot's len that is above max_msg or cap (cold): 0 to take it (a
 * large slot for a caller that takes large ones, its real length fits cap),
 * -EMSGSIZE (it stays; *len gets the length the caller would need),
 * -E2BIG (a large slot; the caller takes only slot-sized ones), -EBADMSG.
 * The real length is the first u64 of a large slot's data (the layer above
 * writes it there before the publish of FULL, which orders it before our
 * acquire of ctl; the caller re-checks ctl after this read). */
SHMQ__COLD static int len_refuse(struct shmq__mpmc *m, struct shmq__mpmc_slot *s, uint32_t l,
				 size_t cap, bool large, uint32_t *len)
{
	uint64_t real;

	if (!(l & SHMQ__MPMC_LEN_LARGE)) {
		if (l > m->max_msg)
			return -EBADMSG;
		*len = l;
		return -EMSGSIZE;
	}
	if ((l & ~SHMQ__MPMC_LEN_LARGE) < sizeof(uint64_t) ||
	    (l & ~SHMQ__MPMC_LEN_LARGE) > m->slot_size - SHMQ__MPMC_SLOT_HDR)
		return -EBADMSG;
	if (!large)
		return -E2BIG;
	/* relaxed: a seqlock read, ordered by the acquire of len before it and
	 * validated by the caller's ctl_unchanged after it (both pair with
	 * put_publish's release of FULL); every producer stores this word
	 * atomically (shmq__mpmc_slot_fill, the large put's descriptor), as a
	 * producer of the next lap may while we read */
	real = shmq__load_relaxed((uint64_t *)(void *)s->data);
	if (real > cap) {
		*len = real > UINT32_MAX ? UINT32_MAX : (uint32_t)real;
		return -EMSGSIZE;
	}
	return 0;
}

/* FULL at head: check len, then claim.  0 claimed, 1 retry, <0 error. */
static SHMQ__ALWAYS_INLINE int get_take(struct shmq__mpmc *m, struct shmq__mpmc_slot *s,
					uint64_t pos, uint64_t w, size_t cap, uint32_t *len,
					uint64_t claim, bool large, bool pow2)
{
	/* acquire: orders ctl_unchanged's re-read after this read (the read
	 * side of a seqlock; pairs with the release of ctl in put_publish) */
	uint32_t l = shmq__load_acquire(&s->len);

	if (SHMQ__UNLIKELY(l > m->max_msg || l > cap)) {
		int rc = len_refuse(m, s, l, cap, large, len);

		if (rc)
			return ctl_unchanged(s, w) ? rc : 1;
	}
	/* acq_rel: pairs with the producer's publish of FULL in put_publish
	 * (its data); release is needed by nobody but costs nothing on a
	 * locked op */
	if (!shmq__cas_acq_rel(&s->ctl, &w, ctl_make(lap_of_k(m, pos, pow2), claim, m->self)))
		return 1;
	index_advance(&m->sh->head, pos);
	*len = l;
	return 0;
}

/* Claim a RETURNED slot behind head found by redo_take: as get_take, but
 * head is already past it.  0 claimed, 1 lost it, <0 error. */
static int get_take_at(struct shmq__mpmc *m, struct shmq__mpmc_slot *s, uint64_t pos,
		       uint64_t w, size_t cap, uint32_t *len, uint64_t claim, bool large)
{
	/* acquire: orders ctl_unchanged's re-read after this read (a seqlock
	 * read, as get_take's; pairs with the release of ctl in put_publish) */
	uint32_t l = shmq__load_acquire(&s->len);

	if (l > m->max_msg || l > cap) {
		int rc = len_refuse(m, s, l, cap, large, len);

		if (rc)
			return ctl_unchanged(s, w) ? rc : 1;
	}
	/* acq_rel: the acquire pairs with the release of RETURNED in
	 * shmq__mpmc_hold_end and shmq__mpmc_recover; release as in get_take */
	if (!shmq__cas_acq_rel(&s->ctl, &w, ctl_make(lap_of(m, pos), claim, m->self)))
		return 1;
	*len = l;
	return 0;
}

/*
 * Redelivery (ring/mpmc_int.h): take the RETURNED slot of lowest position
 * behind head, as claim (READING or HELD).  0 taken, 1 none found (go on at
 * head), -EMSGSIZE (it stays RETURNED), -EBADMSG.  Cold: runs only while
 * redo says a RETURNED slot may exist; costs up to capacity + 2 loads.
 */
SHMQ__COLD static int redo_take(struct shmq__mpmc *m, size_t cap, uint64_t *pos_out,
				uint32_t *len, uint64_t claim, bool large)
{
	/* seq_cst: read before the scan, for the CAS that clears a stale count */
	uint64_t seen = shmq__load_seq_cst(&m->sh->redo);
	uint64_t h = index_load(&m->sh->head);
	uint64_t span = (uint64_t)m->capacity + 2;
	uint64_t p = window_start(m, h, span);

	for (; p != h; p++) {
		struct shmq__mpmc_slot *s = slot_at(m, p);
		/* acquire: pairs with the release of RETURNED in shmq__mpmc_hold_end
		 * and shmq__mpmc_recover (the holder's reads are done, and the
		 * producer's len, published before FULL, reaches us through them) */
		uint64_t w = shmq__load_acquire(&s->ctl);
		int rc;

		if (ctl_state(w) != ST_RETURNED || ctl_lap(w) != lap_of(m, p))
			continue;
		rc = get_take_at(m, s, p, w, cap, len, claim, large);
		if (rc == 1)
			continue; /* someone else took it */
		if (rc == 0) {
			*pos_out = p;
			/* seq_cst: after our claim, see the count's rules */
			shmq__fetch_sub_seq_cst(&m->sh->redo, 1);
		}
		return rc;
	}
	/* none: a count left high by a claimer that died goes back to 0 unless
	 * a slot was returned meanwhile (seq_cst: ordered after the scan) */
	if (seen)
		shmq__cas_seq_cst(&m->sh->redo, &seen, 0);
	return 1;
}

/* Nothing published at pos: -EAGAIN (or -EPIPE once shut down), 1 to retry
 * with a fresher head, -EBADMSG for a state no current head can meet. */
static int get_empty(struct shmq__mpmc *m, uint64_t *pos, uint64_t w, int32_t d,
		     struct shmq__mpmc_block *blk)
{
	struct shmq__mpmc_slot *s = slot_at(m, *pos);
	uint64_t h = index_load(&m->sh->head);

	if (h != *pos) {
		*pos = h;
		return 1;
	}
	/* Only READING, HELD or RETURNED may stay behind from the previous
	 * lap (their consumer moved head already); EMPTY, WRITING or FULL of an
	 * older lap at the current head cannot happen. */
	if (d < -1 || (d == -1 && ctl_state(w) != ST_READING && ctl_state(w) != ST_HELD &&
		       ctl_state(w) != ST_RETURNED))
		return -EBADMSG;
	/* seq_cst pair: shutdown's store of shut, then a producer's claim CAS
	 * (on the claim word) and its load of shut.  If we see shut and then
	 * still no claim, any later claim will see shut and abort.  A put
	 * claimed before the shutdown keeps the get blocked until it is
	 * published, or recovered after its producer's death. */
	if (d != 0 || ctl_state(w) == ST_EMPTY) {
		uint32_t owner;

		if (shmq__load_seq_cst(&m->sh->shut) && shmq__load_seq_cst(&s->ctl) == w &&
		    (d != 0 || !claim_word_names(m, *pos, lap_of(m, *pos), &owner)))
			return -EPIPE;
	}
	blk->pos = *pos;
	blk->ctl = w;
	return -EAGAIN;
}

static SHMQ__ALWAYS_INLINE int get_claim(struct shmq__mpmc *m, size_t cap, uint64_t *pos_out,
					 uint32_t *len, struct shmq__mpmc_block *blk, uint64_t claim,
					 bool large, bool pow2)
{
	uint64_t pos = index_load(&m->sh->head);
	uint32_t helped = 0; /* see HELP_SLACK */

	/* relaxed: a hint on head's line; redo_take's claim CAS decides, and
	 * a thread sees its own aborts' increments (coherence) */
	if (SHMQ__UNLIKELY(shmq__load_relaxed(&m->sh->redo) != 0)) {
		int rc = redo_take(m, cap, pos_out, len, claim, large);

		if (rc <= 0)
			return rc;
		pos = index_load(&m->sh->head);
	}

	for (uint32_t n = 1;; n++) {
		struct shmq__mpmc_slot *s = slot_at_k(m, pos, pow2);
		uint32_t lap = lap_of_k(m, pos, pow2);
		/* acquire: pairs with the producer's publish of FULL in put_publish */
		uint64_t w = shmq__load_acquire(&s->ctl);
		int32_t d = lap_diff(ctl_lap(w), lap);
		uint64_t st = ctl_state(w);
		int rc;

		if (SHMQ__UNLIKELY(n % CHECK_EVERY == 0) && shmq__mpmc_check(m))
			return -EBADMSG;
		if (d == 0 && st == ST_FULL) {
			rc = get_take(m, s, pos, w, cap, len, claim, large, pow2);
			if (rc == 0)
				*pos_out = pos;
			if (rc <= 0)
				return rc;
			continue;
		}
		if (d > 0 || (d == 0 && (st == ST_READING || st == ST_HELD || st == ST_RETURNED))) {
			/* taken (a RETURNED one waits for redo_take): help head on */
			uint64_t next = index_advance(&m->sh->head, pos);

			if (next == pos + 1 && ++helped > m->capacity + HELP_SLACK)
				return -EBADMSG;
			pos = next;
			continue;
		}
		if (d == 0 && st == ST_WRITING) { /* a producer is filling it */
			uint64_t h = index_load(&m->sh->head);

			if (h != pos) {
				pos = h;
				continue;
			}
			blk->pos = pos;
			blk->ctl = w;
			return -EAGAIN;
		}
		rc = get_empty(m, &pos, w, d, blk);
		if (rc <= 0)
			return rc;
	}
}

static SHMQ__ALWAYS_INLINE void get_release(struct shmq__mpmc *m, uint64_t pos, bool order_sc,
					    bool pow2)
{
	struct shmq__mpmc_slot *s = slot_at_k(m, pos, pow2);
	uint64_t w = ctl_make(lap_of_k(m, pos, pow2) + 1, ST_EMPTY, 0);

	publish_ctl(m, &s->ctl, w, order_sc);
}

int shmq__mpmc_get_claim(struct shmq__mpmc *m, size_t cap, uint64_t *pos, uint32_t *len,
			 struct shmq__mpmc_block *blk)
{
	if (SHMQ__LIKELY(m->pow2))
		return get_claim(m, cap, pos, len, blk, ST_READING, false, true);
	return get_claim(m, cap, pos, len, blk, ST_READING, false, false);
}

int shmq__mpmc_get_claim_large(struct shmq__mpmc *m, size_t cap, uint64_t *pos, uint32_t *len,
			       struct shmq__mpmc_block *blk)
{
	return get_claim(m, cap, pos, len, blk, ST_READING, true, m->pow2);
}

void shmq__mpmc_get_release(struct shmq__mpmc *m, uint64_t pos, bool order_sc)
{
	if (SHMQ__LIKELY(m->pow2))
		get_release(m, pos, order_sc, true);
	else
		get_release(m, pos, order_sc, false);
}

static SHMQ__ALWAYS_INLINE ssize_t try_get(struct shmq__mpmc *m, void *buf, size_t cap,
					   struct shmq__mpmc_block *blk, bool pow2)
{
	uint64_t pos = 0; /* both set by a successful claim; 0 quiets -Wmaybe-uninitialized */
	uint32_t len = 0;
	int rc;

	struct shmq__mpmc_slot *s;
	uint64_t w;

	rc = get_claim(m, cap, &pos, &len, blk, ST_READING, false, pow2);
	if (SHMQ__UNLIKELY(rc))
		return rc;
	/* get_release's store, with the slot and word worked out before the
	 * copy: the handle's fields are not read again after it */
	s = slot_at_k(m, pos, pow2);
	w = ctl_make(lap_of_k(m, pos, pow2) + 1, ST_EMPTY, 0);
	if (len) /* buf may be NULL with cap 0 */
		memcpy(buf, s->data, len);
	publish_ctl(m, &s->ctl, w, true); /* as get_release's order_sc */
	return (ssize_t)len;
}

ssize_t shmq__mpmc_try_get(struct shmq__mpmc *m, void *buf, size_t cap,
			   struct shmq__mpmc_block *blk)
{
	if (SHMQ__LIKELY(m->pow2))
		return try_get(m, buf, cap, blk, true);
	return try_get(m, buf, cap, blk, false);
}

/* ---- two-phase get ---- */

int shmq__mpmc_hold_claim(struct shmq__mpmc *m, uint64_t *pos, uint32_t *len,
			  struct shmq__mpmc_block *blk)
{
	if (SHMQ__LIKELY(m->pow2))
		return get_claim(m, SIZE_MAX, pos, len, blk, ST_HELD, true, true);
	return get_claim(m, SIZE_MAX, pos, len, blk, ST_HELD, true, false);
}

/* small: refuse our hold of a large slot with -E2BIG, changing nothing
 * (the caller frees its block first, see shmq__mpmc_hold_commit). */
static SHMQ__ALWAYS_INLINE int hold_end(struct shmq__mpmc *m, uint64_t pos, bool commit,
					bool small, bool pow2)
{
	/* a held position is behind head, by at most capacity + 2 (see
	 * Redelivery); outside that no slot can hold it, and inside it the
	 * slot's lap names the position exactly */
	uint64_t h = index_load(&m->sh->head);
	struct shmq__mpmc_slot *s;
	uint32_t lap;
	uint64_t w;

	if (h - pos - 1 > (uint64_t)m->capacity + 1) /* h - pos in [1, capacity + 2], modulo 2^64 */
		return -EINVAL;
	s = slot_at_k(m, pos, pow2);
	lap = lap_of_k(m, pos, pow2);
	w = ctl_make(lap, ST_HELD, m->self);
	/* relaxed: our hold's len is ordered by our claim's acquire (pairs
	 * with put_publish's release of FULL); in a slot that is not ours it
	 * may be anything, and the ctl check (or the CAS below) refuses it */
	if (small && (shmq__load_relaxed(&s->len) & SHMQ__MPMC_LEN_LARGE))
		/* relaxed: our own claim CAS wrote the value that matches
		 * (coherence), and nobody else ends our hold */
		return shmq__load_relaxed(&s->ctl) == w ? -E2BIG : -EINVAL;
	/* seq_cst: a commit frees the slot as get_release does (the Dekker
	 * handshake with space_sleepers), a give-back is ordered before the
	 * increment of redo below; both release our reads of the data to the
	 * next owner of the slot (put_claim's and redo_take's acquire) */
	if (!shmq__cas_seq_cst(&s->ctl, &w,
			       commit ? ctl_make(lap + 1, ST_EMPTY, 0) : ctl_make(lap, ST_RETURNED, 0)))
		return -EINVAL; /* not held by us: nothing changed */
	if (!commit) {
		shmq__fetch_add_seq_cst(&m->sh->redo, 1); /* after the mark: see Redelivery */
		/* relaxed: statistics only */
		shmq__fetch_add_relaxed(&m->sh->returned, 1);
	}
	return 0;
}

int shmq__mpmc_hold_end(struct shmq__mpmc *m, uint64_t pos, bool commit)
{
	if (SHMQ__LIKELY(m->pow2))
		return hold_end(m, pos, commit, false, true);
	return hold_end(m, pos, commit, false, false);
}

int shmq__mpmc_hold_commit(struct shmq__mpmc *m, uint64_t pos)
{
	if (SHMQ__LIKELY(m->pow2))
		return hold_end(m, pos, true, true, true);
	return hold_end(m, pos, true, true, false);
}

/* A HELD slot whose owner is dead becomes RETURNED (and redo counts it).
 * 1 done, 0 not (moved on, or someone else did it). */
static int hold_return(struct shmq__mpmc *m, struct shmq__mpmc_slot *s, uint64_t w)
{
	/* seq_cst: a release of the slot to redo_take's acquire, ordered
	 * before the increment of redo and the caller's sleeper checks */
	if (!shmq__cas_seq_cst(&s->ctl, &w, ctl_make(ctl_lap(w), ST_RETURNED, 0)))
		return 0;
	shmq__fetch_add_seq_cst(&m->sh->redo, 1); /* after the mark: see Redelivery */
	/* relaxed: statistics only */
	shmq__fetch_add_relaxed(&m->sh->returned, 1);
	return 1;
}

/* Owners judged during one look: liveness costs a /proc read each. */
#define REAP_CACHE 8

struct reap_cache {
	uint32_t ids[REAP_CACHE];
	int verdict[REAP_CACHE];
	unsigned n;
};

/* Is the holder in w (a HELD slot's word) dead?  1 dead, 0 alive (or
 * ourselves), -EBADMSG for an owner no claimer can have.  The full check,
 * once per owner per look (the first REAP_CACHE owners are remembered). */
static int holder_dead(struct shmq__mpmc *m, struct reap_cache *c, uint64_t w)
{
	uint32_t owner = ctl_owner(w);
	int alive;

	if (owner == m->self)
		return 0;
	if (owner == 0)
		return -EBADMSG;
	for (unsigned i = 0; i < c->n; i++)
		if (c->ids[i] == owner)
			return !c->verdict[i];
	alive = m->alive(m->alive_ctx, owner, false);
	if (alive < 0)
		return alive;
	if (c->n < REAP_CACHE) {
		c->ids[c->n] = owner;
		c->verdict[c->n++] = alive;
	}
	return !alive;
}

int shmq__mpmc_audit(struct shmq__mpmc *m, uint64_t *from)
{
	struct reap_cache c = { .n = 0 };
	uint64_t h = index_load(&m->sh->head);
	uint64_t lo = window_start(m, h, (uint64_t)m->capacity + 2);
	uint64_t top = h, p;
	int found = 0;

	/* newest first, a span at a time (a young queue's window across 0
	 * holds its positions at the top, see window_start); *from is how
	 * far below head the last audit stopped */
	if (*from && *from < h - lo)
		top = h - *from;
	p = top - lo > SHMQ__MPMC_AUDIT_SPAN ? top - SHMQ__MPMC_AUDIT_SPAN : lo;
	*from = p == lo ? 0 : h - p;
	for (; p != top; p++) {
		struct shmq__mpmc_slot *s = slot_at(m, p);
		/* acquire: pairs with the CAS that marked it RETURNED in
		 * hold_end or hold_return, or HELD in get_take or get_take_at
		 * (nothing is read through it but the owner, in the word) */
		uint64_t w = shmq__load_acquire(&s->ctl);
		uint64_t zero = 0;
		int dead;

		if (ctl_lap(w) != lap_of(m, p))
			continue;
		if (ctl_state(w) == ST_RETURNED) {
			/* seq_cst: after our look at the slot, as the increment
			 * in hold_end; a count that is not 0 sends gets
			 * scanning anyway */
			if (!found && shmq__cas_seq_cst(&m->sh->redo, &zero, 1))
				found = 1;
			continue;
		}
		if (ctl_state(w) != ST_HELD)
			continue;
		dead = holder_dead(m, &c, w);
		if (dead < 0)
			return dead;
		if (dead && hold_return(m, s, w))
			found = 1;
	}
	return found;
}

int shmq__mpmc_reap_held(struct shmq__mpmc *m)
{
	struct reap_cache c = { .n = 0 };
	uint64_t h = index_load(&m->sh->head);
	uint64_t span = (uint64_t)m->capacity + 2;
	uint64_t p = window_start(m, h, span);
	int found = 0;

	for (; p != h; p++) {
		struct shmq__mpmc_slot *s = slot_at(m, p);
		/* acquire: pairs with the claim CAS of HELD in get_take (nothing is
		 * read through it but the owner, which travels in the word) */
		uint64_t w = shmq__load_acquire(&s->ctl);
		int dead;

		if (ctl_state(w) != ST_HELD || ctl_lap(w) != lap_of(m, p))
			continue;
		dead = holder_dead(m, &c, w);
		if (dead < 0)
			return dead;
		if (dead)
			found += hold_return(m, s, w);
	}
	return found;
}

int shmq__mpmc_behind_head(struct shmq__mpmc *m, uint64_t head, bool quick, uint64_t *busy,
			   uint64_t *dead)
{
	uint64_t span = (uint64_t)m->capacity + 2;

	for (uint64_t p = window_start(m, head, span); p != head; p++) {
		/* seq_cst: in the joiner's order, after its read of head and
		 * before its reads of the counts (chan/queue_int.h) */
		uint64_t w = shmq__load_seq_cst(&slot_at(m, p)->ctl);
		uint64_t st = ctl_state(w);
		int alive;

		if (ctl_lap(w) != lap_of(m, p))
			continue;
		if (st == ST_HELD || st == ST_RETURNED) {
			(*busy)++;
			continue;
		}
		if (st != ST_READING)
			continue;
		if (ctl_owner(w) == 0)
			return -EBADMSG;
		alive = ctl_owner(w) == m->self ? 1 : m->alive(m->alive_ctx, ctl_owner(w), quick);
		if (alive < 0)
			return alive;
		if (alive)
			(*busy)++;
		else
			(*dead)++;
	}
	return 0;
}

bool shmq__mpmc_held_behind(struct shmq__mpmc *m)
{
	/* acquire: pairs with index_advance's release, which follows the
	 * claim that set a passed slot's hold bit (see mpmc_int.h) */
	uint64_t h = index_load(&m->sh->head);
	uint64_t span = (uint64_t)m->capacity + 2;
	/* relaxed: the handle's own hint (struct shmq__mpmc) */
	uint64_t last = shmq__load_relaxed(&m->held_scan);
	uint64_t p, from;
	bool held = false;

	if (span > SHMQ__MPMC_AUDIT_SPAN)
		span = SHMQ__MPMC_AUDIT_SPAN;
	p = window_start(m, h, span);
	from = last >> 1;
	if (!(last & 1) && from && from - p - 1 < h - p)
		p = from; /* the last scan found none: only the newly passed, (p, h] */
	for (; p != h; p++) {
		/* relaxed: a watcher's hint; nothing is read through it, and
		 * its liveness look (the audit) reads the slot again */
		uint64_t w = shmq__load_relaxed(&slot_at(m, p)->ctl);

		if ((w & ST_HOLD) && ctl_lap(w) == lap_of(m, p)) {
			held = true;
			break;
		}
	}
	shmq__store_relaxed(&m->held_scan, h << 1 | (held ? 1u : 0u)); /* relaxed: as above */
	return held;
}

/* ---- recovery ---- */

int shmq__mpmc_recover(struct shmq__mpmc *m, const struct shmq__mpmc_block *blk, bool quick)
{
	struct shmq__mpmc_slot *s = slot_at(m, blk->pos);
	uint64_t w = blk->ctl;
	uint64_t st = ctl_state(w);
	uint32_t owner = ctl_owner(w);
	int alive;

	if (st == ST_RETURNED) {
		/* a RETURNED slot blocks us and redo may have lost its count
		 * (a claimer died between mark and increment): count it again,
		 * so gets scan for it; seq_cst as in hold_end */
		uint64_t zero = 0;

		return shmq__cas_seq_cst(&m->sh->redo, &zero, 1) ? 1 : 0;
	}
	if (st == ST_EMPTY || st == ST_WRITING) {
		/* a put's claim: look it up now (Protocol PUT_CLAIM), in ctl
		 * (EMPTY of pos's lap) and the claim word, seq_cst as the
		 * -EPIPE look.  ctl's own WRITING is never written by this
		 * layout; one read from the region is taken as a claim too.
		 * The lap is blk's: a put blocked by the last lap's claim
		 * reports it with its own, later position */
		uint32_t lap = ctl_lap(w);

		w = shmq__load_seq_cst(&s->ctl);
		if (ctl_lap(w) != lap)
			return 0;
		if (ctl_state(w) == ST_EMPTY) {
			if (!claim_word_names(m, blk->pos, lap, &owner))
				return 0; /* not claimed */
		} else if (ctl_state(w) == ST_WRITING) {
			owner = ctl_owner(w);
		} else {
			return 0; /* published since */
		}
		st = ST_WRITING;
	}
	if (st != ST_WRITING && st != ST_READING && st != ST_HELD)
		return 0;
	if (owner == m->self)
		return 0; /* our own process is running */
	if (owner == 0)
		return -EBADMSG;
	alive = m->alive(m->alive_ctx, owner, quick);
	if (alive != 0)
		return alive < 0 ? alive : 0;
	if (st == ST_HELD)
		return hold_return(m, s, w);
	/* seq_cst: a release of the slot like get_release's, and ordered
	 * before the caller's sleeper checks.  A skipped claim leaves EMPTY of
	 * the next lap naming its dead producer, so that shmq__mpmc_put_fate
	 * tells it from a consumed message (EMPTY, owner 0) in the same
	 * atomic step; a dropped one (READING) was published: owner 0 */
	if (!shmq__cas_seq_cst(&s->ctl, &w,
			       ctl_make(ctl_lap(w) + 1, ST_EMPTY, st == ST_WRITING ? owner : 0)))
		return 0; /* it moved on by itself (published: a put's claim
			   * ends only so, its producer being dead) */
	/* relaxed: statistics only */
	shmq__fetch_add_relaxed(st == ST_WRITING ? &m->sh->skipped : &m->sh->dropped, 1);
	return 1;
}

/*
 * One seq_cst look at pos's slot, at most one liveness check, no loop: a
 * corrupt ctl gives one of the answers or -EBADMSG, nothing else.  The
 * witness of a publication is the slot itself, so it lasts until the slot's
 * next lap is claimed (-ESTALE after that).
 */
int shmq__mpmc_put_fate(struct shmq__mpmc *m, uint64_t pos)
{
	/* seq_cst: after the caller's look at its own record of pos (the
	 * bridge's checkpoint); reads the publish (a release store) and the
	 * CASes that end the slot's lap */
	uint64_t w = shmq__load_seq_cst(&slot_at(m, pos)->ctl);
	uint32_t lap = lap_of(m, pos);
	int32_t d = lap_diff(ctl_lap(w), lap);
	uint64_t st = ctl_state(w);
	uint32_t owner = ctl_owner(w);
	int alive;

	if (d == 0 && st == ST_EMPTY) {
		/* claimed, not published (Protocol PUT_CLAIM)?  seq_cst: after
		 * the look at ctl; a claim word of another lap means the slot
		 * moved on since that look, so look at ctl once more */
		if (claim_word_names(m, pos, lap, &owner)) {
			st = ST_WRITING;
		} else {
			w = shmq__load_seq_cst(&slot_at(m, pos)->ctl); /* seq_cst: as above */
			d = lap_diff(ctl_lap(w), lap);
			st = ctl_state(w);
			owner = ctl_owner(w);
			if (d == 0 && st == ST_EMPTY)
				return -EBADMSG; /* pos was never claimed */
		}
	}
	if (d == 1 && st == ST_EMPTY)
		return owner == 0 ? 1 : 0; /* consumed, or skipped / withdrawn */
	if (d >= 1)
		return -ESTALE; /* the next lap was claimed: the witness is gone */
	if (d < 0 || st == ST_EMPTY)
		return -EBADMSG; /* pos was never claimed: not a claimed position */
	if (st != ST_WRITING)
		return 1; /* FULL, READING, HELD or RETURNED of pos's lap */
	if (owner == 0)
		return -EBADMSG;
	if (owner == m->self)
		return -EAGAIN; /* a thread of ours is filling it */
	alive = m->alive(m->alive_ctx, owner, false);
	if (alive < 0)
		return alive;
	return alive ? -EAGAIN : 0; /* a dead producer never publishes */
}

/* ---- sleeper checks, length, shutdown ---- */

bool shmq__mpmc_readable(struct shmq__mpmc *m)
{
	/* seq_cst loads: see the Dekker note in ring/mpmc_int.h's declaration */
	uint64_t h = shmq__load_seq_cst(&m->sh->head);
	uint64_t w = shmq__load_seq_cst(&slot_at(m, h)->ctl);
	int32_t d = lap_diff(ctl_lap(w), lap_of(m, h));

	/* A put claimed at head blocks a get also after shutdown (it was
	 * claimed before the shutdown, so it may still publish): its publish
	 * wakes sleepers, and if its producer died, the sleeper's slice ends
	 * and recovers it.  Saying "readable" here made such a waiter spin. */
	if (d == 0 && ctl_state(w) == ST_WRITING)
		return false;
	if (shmq__load_seq_cst(&m->sh->shut) || shmq__load_seq_cst(&m->sh->redo)) {
		uint32_t owner;

		/* a put's claim at head (Protocol PUT_CLAIM) blocks as WRITING did */
		return !(d == 0 && ctl_state(w) == ST_EMPTY &&
			 claim_word_names(m, h, lap_of(m, h), &owner));
	}
	if (d > 0 || (d == 0 && ctl_state(w) != ST_EMPTY))
		return true;
	return false;
}

bool shmq__mpmc_writable(struct shmq__mpmc *m)
{
	uint64_t t = shmq__load_seq_cst(&m->sh->tail);
	uint64_t w = shmq__load_seq_cst(&slot_at(m, t)->ctl);
	int32_t d = lap_diff(ctl_lap(w), lap_of(m, t));

	if (shmq__load_seq_cst(&m->sh->shut))
		return true;
	return d >= 0; /* EMPTY now, or claimed (the tail lags) */
}

void shmq__mpmc_block_at(struct shmq__mpmc *m, bool tail, struct shmq__mpmc_block *blk)
{
	/* seq_cst: as the sleeper re-checks above (a watcher's look) */
	blk->pos = shmq__load_seq_cst(tail ? &m->sh->tail : &m->sh->head);
	blk->ctl = shmq__load_seq_cst(&slot_at(m, blk->pos)->ctl);
	if (!tail && ctl_state(blk->ctl) == ST_EMPTY && ctl_lap(blk->ctl) == lap_of(m, blk->pos)) {
		/* a put claimed at head (Protocol PUT_CLAIM): name its
		 * producer as ctl's WRITING did */
		uint32_t owner;

		if (claim_word_names(m, blk->pos, lap_of(m, blk->pos), &owner))
			blk->ctl = ctl_make(ctl_lap(blk->ctl), ST_WRITING, owner);
	}
}

size_t shmq__mpmc_len(const struct shmq__mpmc *m)
{
	/* an advisory count: any recent values will do */
	uint64_t h = index_load(&m->sh->head);
	uint64_t t = index_load(&m->sh->tail);
	int64_t d = (int64_t)(t - h);

	if (d <= 0)
		return 0;
	return d > (int64_t)m->capacity ? m->capacity : (size_t)d;
}

int shmq__mpmc_shutdown(struct shmq__mpmc *m)
{
	/* seq_cst: the Dekker pair with put_claim's load of shut after its claim */
	shmq__store_seq_cst(&m->sh->shut, 1u);
	return 0;
}

bool shmq__mpmc_is_shut(const struct shmq__mpmc *m)
{
	return shmq__load_seq_cst(&m->sh->shut) != 0;
}
