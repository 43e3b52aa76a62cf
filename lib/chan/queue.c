/* SPDX-License-Identifier: MIT */
/*
 * Layer 4: queues, named MPMC rings with blocking, shutdown and recovery.
 *
 * Sleeping.  Consumers sleep on data_word, producers on space_word (both in
 * the ring's control block); the handshake is the same for both sides
 * (producers: space_word, space_sleepers, writable, a freed slot).
 *
 * Protocol WAKE_PENDING: one sleep costs at most one wake system call.  Bit 0
 * of the word W is "a wake is pending": set by the waker that makes the
 * futex_wake call, cleared by the sleepers.  Every change of W is a seq_cst
 * CAS or RMW; W only grows (set: +1 from even, clear: +1 from odd, a
 * wake-all: +2), so no value comes back (no ABA).  S is the sleeper count.
 *
 *   sleeper:  v = W; if v odd: CAS(W, v, v + 1), v += 1     (arm: clear)
 *             S += 1;  fence (F)
 *             if !readable() (seq_cst loads): futex_wait(W, v)
 *             S -= 1;  if W odd: CAS(W, W, W + 1)            (count out: clear)
 *             then try the get again
 *   waker:    publish (release);  look at F;  if S == 0: done
 *             w = W;  if w odd: done (a wake is in flight)
 *             CAS(W, w, w + 1);  futex_wake(W, 1)
 *
 * The publish is the store of FULL (a freed slot: EMPTY) that ends a claim,
 * a release store with no fence on the fast path; the side's fence word F
 * (data_fence, space_fence) and the sleeper's fence make it one half of a
 * Dekker pair with S by Protocol FENCED (core/wait_int.h): the sleeper runs
 * a membarrier on the first of a run of sleeps, and wakers make an RMW on F
 * while the side is FENCED.  A handle whose process the kernel refused
 * membarrier registration publishes with seq_cst instead.
 *
 * No lost wake-up.  Take a publish X and a sleeper that checks readable()
 * after its S += 1 and its fence.  By Protocol FENCED either that check
 * sees X (the sleeper does not sleep), or the waker's load of S, after X,
 * sees S != 0.  If
 * the waker then finds W even, it moves W from even to odd and wakes: the
 * sleeper read v (even) before its S += 1, so W != v and its futex_wait fails
 * at once or is woken, by the kernel's own compare (or the kernel woke
 * another sleeper instead: see the chain below).  If the waker finds W odd
 * at w, some waker Q set it and calls futex_wake after its CAS; sleepers
 * only sleep on even values, so every sleeper counted in S either entered
 * its futex_wait before Q's CAS (Q's wake finds at least one such sleeper
 * in the kernel) or finds W != v and returns at once.  Whoever returns
 * clears the bit by moving W on from w, a CAS that follows our load of w;
 * it counted itself in and fenced before, so by Protocol FENCED its next
 * readable() or get sees X, as the check above did.  Clearing never loses a
 * wake (it only lets the next waker call the kernel again), so any sleeper
 * may clear at any time: at its arm (a bit whose wake found nobody, or whose
 * waker died between its CAS and its futex_wake, costs the next sleeper
 * nothing, and a sleeper already asleep at most its slice), and at its
 * count-out, before it tries again.
 *
 * One wake per message, passed on.  A woken consumer that finds nothing
 * (another took the message first) goes back to sleep; the consumer that
 * took it passes the wake on (chain_wake, in after_get) if more is readable
 * and someone still sleeps; it cleared the bit when it counted itself out, so
 * its pass is not swallowed by its own wake.  The same holds for producers.
 *
 * Producers wake with hysteresis: a freed slot wakes space sleepers only
 * when the ring is at most half full after it (space_low), so a sleeping
 * producer is woken about twice per ring's worth of gets instead of once per
 * get.  Never asleep while the ring is empty: the get that leaves it at most
 * half full, or any later one, comes after the producer's failed check (its
 * slot at tail was still taken), so it sees S != 0 and wakes.
 *
 * Watchers (the scheduler's and a waitset's, core/watch_int.h) count in
 * data_watchers / space_watchers and never clear the bit: while any is
 * counted, every waker moves W on by 2 (the bit untouched) and wakes all, the
 * Protocol SLEEPERS of core/wait_int.h.  So do recoveries and shutdown.
 *
 * Dead claimers.  Sleeps last at most SLICE_NS; when one ends with the
 * waiter still blocked, the claim blocking it is checked for a dead owner
 * and recovered (shmq__mpmc_recover).  SHMQ_NOWAIT callers remember in
 * their handle which claim blocked them since when, and check it once it
 * has blocked them for a slice.  A get blocked at an EMPTY slot may be
 * blocked by a put's claim, which lives in the slot's claim word
 * (ring/mpmc_int.h, Protocol PUT_CLAIM): that word is looked up only at
 * the end of a slice, never on the first look, so that a consumer polling
 * right behind a producer never reads the producers' line.  A blocked get also audits the window
 * behind head once a slice per handle (audit; ring/mpmc_int.h, Redelivery
 * and Dead holders): a given-back message whose redo count was lost, and a
 * dead holder's slot, block nothing at head, so no claim would lead there.
 * get_begin runs the same audit once a slice per handle (begin_audit), so
 * a queue whose gets never block finds them too.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <shmq.h>

#include "core/alloc_int.h"
#include "core/atomic_int.h"
#include "core/compiler_int.h"
#include "core/fork_int.h"
#include "core/introspect_int.h"
#include "chan/queue_int.h"
#include "ring/mpmc_int.h"
#include "core/region_int.h"
#include "core/wait_int.h"
#include "core/watch_int.h"

#define SLICE_NS ((int64_t)15 * 1000 * 1000) /* liveness checks while blocked */
#define SPIN_YIELD_EVERY 128u

struct shmq_queue {
	struct shmq__mpmc ring;
	shmq_region *r; /* owner ids and their liveness; NULL: pid owners */
	/* SHMQ_NOWAIT stall memory: which claim blocked us since when.
	 * Relaxed atomics: threads sharing the handle may race; the worst a
	 * torn triple causes is one liveness check early or late. */
	uint64_t stuck_pos;
	uint64_t stuck_ctl;
	int64_t stuck_since;
	pid_t pid; /* the process that made the handle (core/fork_int.h) */
	/* Messages taken through this handle, a change token for the
	 * scheduler's watches (shmq__queue_progress).  Private on purpose: the
	 * shared head can be moved by anyone, also by garbage.  Relaxed load
	 * and store, no read-modify-write: threads sharing the handle may lose
	 * an increment, never the change itself. */
	uint64_t taken;
	/* When the next audit (a blocked get's or a get_begin's) is due, and
	 * where it goes on: 0 in a new handle, so its first one looks at once.
	 * Relaxed, handle-local like the stall memory above. */
	int64_t audit_at;
	uint64_t audit_from;
	/* get_begins through this handle: every BEGIN_CLOCK_EVERY-th reads the
	 * clock to see whether an audit is due.  As audit_at. */
	uint32_t begins;
	/* SHMQ_QUEUE_JOINABLE: the join table (chan/queue_join.c); sh NULL otherwise */
	struct shmq__join join;
};

/* Which way a blocking call waits. */
enum dir { DIR_GET, DIR_PUT };

/* ---- owners ---- */

static int region_alive(void *ctx, uint32_t id, bool quick)
{
	return quick ? shmq__region_id_listed(ctx, id) : shmq__region_id_alive(ctx, id);
}

/* The kernel never hands out a pid above PID_MAX_LIMIT (2^22). */
#define PID_LIMIT (UINT32_C(1) << 22)

static int pid_alive(void *ctx, uint32_t id, bool quick)
{
	(void)ctx;
	if (id == 0 || id > PID_LIMIT)
		return -EBADMSG;
	return quick ? 1 : shmq__pid_alive((pid_t)id, 0);
}

/* ---- geometry and handles ---- */

/* The create flags a queue may carry (struct shmq_queue_opts, ring flags). */
#define QUEUE_FLAGS SHMQ_QUEUE_JOINABLE

static int opts_geometry(const struct shmq_queue_opts *o, uint32_t *cap, uint32_t *max_msg)
{
	uint32_t c = o && o->capacity ? o->capacity : SHMQ_QUEUE_DEFAULT_CAPACITY;
	uint32_t m = o && o->max_msg ? o->max_msg : SHMQ_QUEUE_DEFAULT_MAX_MSG;

	if (c > SHMQ_QUEUE_MAX_CAPACITY || m > SHMQ_QUEUE_MAX_MSG || (o && o->flags & ~QUEUE_FLAGS))
		return -EINVAL;
	*cap = c; /* exactly: the ring has c slots (ring/mpmc_int.h, Positions) */
	*max_msg = m;
	return 0;
}

/* The join table of a SHMQ_QUEUE_JOINABLE queue follows the ring; flags
 * this library does not know are a newer layout (-EPROTO). */
static int join_open(shmq_queue *q, shmq_region *r, void *mem, uint64_t size)
{
	uint64_t ring = shmq__mpmc_footprint(q->ring.capacity, q->ring.max_msg);

	if (q->ring.flags & ~QUEUE_FLAGS)
		return -EPROTO;
	if (!(q->ring.flags & SHMQ_QUEUE_JOINABLE))
		return 0;
	return shmq__join_attach(&q->join, (uint8_t *)mem + ring, size - ring, r);
}

/* The object's bytes: the ring, and the join table when joinable. */
static uint64_t queue_footprint(uint32_t cap, uint32_t max_msg, unsigned flags)
{
	uint64_t ring = shmq__mpmc_footprint(cap, max_msg);

	return ring && (flags & SHMQ_QUEUE_JOINABLE) ? ring + shmq__join_footprint() : ring;
}

/* Lay out what follows the ring (after shmq__mpmc_init). */
static void queue_extras_init(void *mem, uint32_t cap, uint32_t max_msg, unsigned flags)
{
	shmq__mpmc_set_flags(mem, flags);
	if (flags & SHMQ_QUEUE_JOINABLE)
		shmq__join_init((uint8_t *)mem + shmq__mpmc_footprint(cap, max_msg));
}

int shmq__queue_join_parts(shmq_queue *q, struct shmq__mpmc **m, struct shmq__join **j)
{
	if (!q || !q->join.sh)
		return -EINVAL;
	if (shmq__foreign(q->pid))
		return -EBADF;
	*m = &q->ring;
	*j = &q->join;
	return 0;
}

/* h: a zeroed handle, made before its object by a create, or NULL to make
 * it here; the caller's to free unless this succeeds. */
static int handle_open(shmq_region *r, void *mem, uint64_t size, shmq_queue *h,
		       shmq_queue **out)
{
	shmq_queue *q = h ? h : shmq__calloc(1, sizeof(*q));
	uint32_t kind = r ? SHMQ__MPMC_OWNER_REGION : SHMQ__MPMC_OWNER_PID;
	uint32_t self = r ? shmq__region_self(r) : (uint32_t)getpid();
	int rc;

	if (!q)
		return -ENOMEM;
	rc = shmq__mpmc_attach(&q->ring, mem, size, kind, self, r ? region_alive : pid_alive, r);
	if (rc == 0)
		rc = join_open(q, r, mem, size);
	if (rc) {
		if (!h)
			shmq__free(q, sizeof(*q));
		return rc;
	}
	q->r = r;
	q->pid = shmq__self_pid();
	*out = q;
	return 0;
}

struct geom {
	uint32_t cap;
	uint32_t max_msg;
	unsigned flags;
};

/* The queue's incarnation: 64 random bits fixed when it is laid out, so
 * that positions of a queue deleted and made again under the same name do
 * not repeat its ids (chan/queue_int.h).  Never 0 (0 reads "unknown"). */
static int incarnation_set(void *mem)
{
	struct shmq__mpmc_shared *sh = mem;
	uint64_t v = 0;

	while (v == 0) {
		ssize_t n = getrandom(&v, sizeof(v), 0);

		if (n < 0 && errno != EINTR)
			return -errno;
		if (n >= 0 && n != (ssize_t)sizeof(v))
			v = 0;
	}
	/* relaxed: not attached by anyone yet; published with the ring (see
	 * shmq__mpmc_init: the directory's READY release or the caller's) */
	shmq__store_relaxed(&sh->incarnation, v);
	return 0;
}

static int queue_obj_init(void *mem, uint64_t size, void *arg)
{
	const struct geom *g = arg;
	int rc = shmq__mpmc_init(mem, size, g->cap, g->max_msg, SHMQ__MPMC_OWNER_REGION);

	if (rc == 0)
		queue_extras_init(mem, g->cap, g->max_msg, g->flags);
	return rc ? rc : incarnation_set(mem);
}

int shmq_queue_create(shmq_region *r, const char *name, const struct shmq_queue_opts *o,
		      shmq_queue **out)
{
	struct geom g;
	shmq_queue *q;
	void *mem;
	int rc;

	if (!r || !out)
		return -EINVAL;
	rc = opts_geometry(o, &g.cap, &g.max_msg);
	if (rc)
		return rc;
	g.flags = o ? o->flags : 0;
	/* the handle first: a create that fails leaves no object behind */
	q = shmq__calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	rc = shmq__obj_create(r, name, SHMQ__OBJ_QUEUE, queue_footprint(g.cap, g.max_msg, g.flags),
			      queue_obj_init, &g, &mem);
	if (!rc)
		rc = handle_open(r, mem, queue_footprint(g.cap, g.max_msg, g.flags), q, out);
	if (rc)
		shmq__free(q, sizeof(*q));
	return rc;
}

int shmq_queue_open(shmq_region *r, const char *name, shmq_queue **out)
{
	uint64_t size;
	void *mem;
	int rc;

	if (!r || !out)
		return -EINVAL;
	rc = shmq__obj_open(r, name, SHMQ__OBJ_QUEUE, &mem, &size);
	if (rc)
		return rc;
	return handle_open(r, mem, size, NULL, out);
}

/* The kind table's floor is the ring's control block (core cannot see it). */
_Static_assert(SHMQ__OBJ_MIN_QUEUE == sizeof(struct shmq__mpmc_shared), "queue floor");
_Static_assert(SHMQ__OBJ_ALIGN_QUEUE == SHMQ__CACHELINE, "queue floor: mpmc_attach's alignment");

void shmq_queue_close(shmq_queue *q)
{
	if (q)
		shmq__free(q, sizeof(*q));
}

size_t shmq_queue_footprint(const struct shmq_queue_opts *o)
{
	uint32_t cap, max_msg;

	if (opts_geometry(o, &cap, &max_msg))
		return 0;
	return (size_t)queue_footprint(cap, max_msg, o ? o->flags : 0);
}

int shmq_queue_init(void *mem, size_t size, const struct shmq_queue_opts *o, unsigned flags)
{
	uint32_t cap, max_msg;
	int rc;

	unsigned qflags = o ? o->flags : 0;

	if (flags & ~SHMQ_QUEUE_PID_OWNERS)
		return -EINVAL;
	rc = opts_geometry(o, &cap, &max_msg);
	if (rc)
		return rc;
	/* the join table is kept per region attachment: not with pid owners */
	if ((flags & SHMQ_QUEUE_PID_OWNERS) && (qflags & SHMQ_QUEUE_JOINABLE))
		return -EINVAL;
	if (!mem || size < queue_footprint(cap, max_msg, qflags))
		return -EINVAL;
	rc = shmq__mpmc_init(mem, size, cap, max_msg,
			     (flags & SHMQ_QUEUE_PID_OWNERS) ? SHMQ__MPMC_OWNER_PID
							     : SHMQ__MPMC_OWNER_REGION);
	if (rc == 0)
		queue_extras_init(mem, cap, max_msg, qflags);
	return rc ? rc : incarnation_set(mem);
}

int shmq_queue_attach(shmq_region *r, void *mem, size_t size, shmq_queue **out)
{
	/* the caller's own arguments: misaligned or too small to hold even the
	 * control block is a bad call, not corrupt memory */
	if (!mem || !out || (uintptr_t)mem % SHMQ__CACHELINE ||
	    size < sizeof(struct shmq__mpmc_shared))
		return -EINVAL;
	/* a region handle inherited across fork() names the parent's
	 * attachment: our claims would carry the parent's owner id, and a
	 * dead child's claims would look alive (as shmq_lock_attach) */
	if (shmq__region_forked(r))
		return -EBADF;
	return handle_open(r, mem, size, NULL, out);
}

/* ---- wakers ---- */

#define WAKE_PENDING 1u   /* bit 0 of a sleep word (Protocol WAKE_PENDING) */
#define WORD_BUMP 2u      /* a change of the word that leaves the bit alone */
#define CAS_TRIES 64u     /* each lost CAS means the word moved on */

/* One side's sleep word, sleeper and watcher counts, fence word (Protocol
 * FENCED, core/wait_int.h) and wake counter. */
struct side {
	uint32_t *word;
	uint32_t *sleepers;
	uint32_t *watchers;
	uint32_t *fence;
	uint64_t *wakes;
};

static struct side side_of(struct shmq__mpmc *m, enum dir dir)
{
	struct shmq__mpmc_shared *sh = m->sh;

	if (dir == DIR_GET)
		return (struct side){ &sh->data_word, &sh->data_sleepers, &sh->data_watchers,
				      &sh->data_fence, &sh->get_wakes };
	return (struct side){ &sh->space_word, &sh->space_sleepers, &sh->space_watchers,
			      &sh->space_fence, &sh->put_wakes };
}

/* Clear the wake-pending bit of *word if it is set (Protocol WAKE_PENDING):
 * returns the word's value, even unless CAS_TRIES CASes were lost to other
 * changes (then the next sleeper's arm or a slice clears it). */
static uint32_t pending_clear(uint32_t *word)
{
	uint32_t w = shmq__load_seq_cst(word); /* seq_cst: Protocol WAKE_PENDING */

	for (unsigned i = 0; (w & WAKE_PENDING) && i < CAS_TRIES; i++)
		if (shmq__cas_seq_cst(word, &w, w + 1))
			return w + 1;
	return w;
}

/* Move the word on and wake every sleeper and watcher (recoveries, dead
 * holders' messages given back, shutdown): force skips the counts. */
static void wake_all(struct shmq__mpmc *m, enum dir dir, bool force)
{
	struct side s = side_of(m, dir);

	shmq__fetch_add_seq_cst(s.word, WORD_BUMP); /* a sleeper that read the old value will not sleep */
	/* seq_cst: the Dekker loads of the counts (Protocol WAKE_PENDING) */
	if (!force && shmq__load_seq_cst(s.sleepers) == 0 && shmq__load_seq_cst(s.watchers) == 0)
		return;
	shmq__count_event(s.wakes);
	shmq__futex_wake(s.word, INT32_MAX);
}

/* wake's system-call part, out of the fast path: watchers counted (wake
 * everyone), or sleepers: set the bit unless it is set (Protocol
 * WAKE_PENDING) and wake one. */
SHMQ__COLD static void wake_call(struct shmq__mpmc *m, enum dir dir, bool watchers)
{
	struct side s = side_of(m, dir);
	uint32_t w;

	if (watchers) {
		wake_all(m, dir, true);
		return;
	}
	w = shmq__load_seq_cst(s.word); /* seq_cst: Protocol WAKE_PENDING */
	for (unsigned i = 0; !(w & WAKE_PENDING); i++) {
		if (i == CAS_TRIES) { /* the word keeps moving: wake the old way */
			wake_all(m, dir, true);
			return;
		}
		if (shmq__cas_seq_cst(s.word, &w, w + 1)) {
			shmq__count_event(s.wakes);
			shmq__futex_wake(s.word, 1);
			return;
		}
	}
}

/* After a change of one side's condition (a release store and a compiler
 * barrier, or an RMW): wake a sleeper unless nobody sleeps or a wake is in
 * flight already (Protocol WAKE_PENDING); with watchers counted, wake
 * everyone.  At most one system call, counted in the side's wakes; when
 * nobody sleeps, three loads of one line (and an RMW on it while the side
 * is FENCED). */
/* The waker's look at a side after its change: Protocol FENCED's publisher
 * half, then the counts.  false when nobody sleeps or watches (a FENCED
 * side may be dropped then); else true with the watcher count in
 * *watchers. */
static inline bool side_look(const struct side *s, uint32_t *watchers)
{
	uint32_t f = 0;
	bool fenced = shmq__fence_word_publish(s->fence, &f);

	/* seq_cst: the Dekker loads of the counts (Protocol WAKE_PENDING), after
	 * the RMW on the fence word when FENCED; otherwise the sleepers'
	 * membarrier orders them (core/wait_int.h, Protocol FENCED) */
	*watchers = shmq__load_seq_cst(s->watchers);
	if (*watchers == 0 && shmq__load_seq_cst(s->sleepers) == 0) {
		if (fenced)
			shmq__fence_word_idle(s->fence, f);
		return false;
	}
	return true;
}

static inline void wake(struct shmq__mpmc *m, enum dir dir)
{
	struct side s = side_of(m, dir);
	uint32_t watchers;

	if (side_look(&s, &watchers))
		wake_call(m, dir, watchers != 0);
}

static void wake_getters(struct shmq__mpmc *m)
{
	wake(m, DIR_GET);
}

/* Hysteresis for sleeping producers: the ring is at most half full (seq_cst
 * loads, after the caller's release of a slot and its look at the counts;
 * a stale tail only makes it look emptier). */
SHMQ__COLD static bool space_low(struct shmq__mpmc *m)
{
	uint64_t h = shmq__load_seq_cst(&m->sh->head);
	uint64_t t = shmq__load_seq_cst(&m->sh->tail);
	int64_t used = (int64_t)(t - h);

	return used <= 0 || (uint64_t)used * 2 <= m->capacity;
}

/* After slots were freed: wake a sleeping producer once the ring is at
 * most half full (watchers of SHMQ_WRITABLE at every freed slot). */
static inline void wake_putters(struct shmq__mpmc *m)
{
	struct side s = side_of(m, DIR_PUT);
	uint32_t watchers;

	if (side_look(&s, &watchers) && (watchers != 0 || space_low(m)))
		wake_call(m, DIR_PUT, watchers != 0);
}

/* A getter that took a message passes a wake on if more is readable while
 * someone sleeps (their wake may have gone to a getter that found nothing). */
static void after_get(struct shmq__mpmc *m)
{
	wake_putters(m);
	/* seq_cst: Protocol WAKE_PENDING (chain_wake) */
	if (shmq__load_seq_cst(&m->sh->data_sleepers) != 0 && shmq__mpmc_readable(m))
		wake_getters(m);
}

static void after_put(struct shmq__mpmc *m)
{
	wake_getters(m);
	/* seq_cst: Protocol WAKE_PENDING (chain_wake) */
	if (shmq__load_seq_cst(&m->sh->space_sleepers) != 0 && shmq__mpmc_writable(m))
		wake(m, DIR_PUT);
}

/* ---- blocking ---- */

static bool block_is_claim(const struct shmq__mpmc_block *blk)
{
	unsigned st = (unsigned)(blk->ctl & 3u);

	/* WRITING, READING or HELD: has a live-or-dead owner; or RETURNED
	 * (the hold bit, ctl bit 32), which shmq__mpmc_recover may recount
	 * (ring/mpmc_int.h, Redelivery) */
	return st == 1u || st == 3u || (blk->ctl >> 32 & 1u);
}

/* Check the claimer named by blk (quick: see shmq__mpmc_recover).  After a
 * recovery both sides may proceed: 1, and everyone is woken; 0 nothing done;
 * -EBADMSG for an impossible owner. */
static int recover(shmq_queue *q, const struct shmq__mpmc_block *blk, bool quick)
{
	int rc = shmq__mpmc_recover(&q->ring, blk, quick);

	/* a dead holder of a two-phase get (HELD: READING with the hold bit)
	 * likely held more than the slot that blocked us: give all its
	 * messages back now, so they go out before newer ones */
	if (rc == 1 && (blk->ctl & 3u) == 3u && (blk->ctl >> 32 & 1u)) {
		int more = shmq__mpmc_reap_held(&q->ring);

		if (more < 0)
			return more;
	}
	if (rc == 1) {
		wake_all(&q->ring, DIR_GET, false);
		wake_all(&q->ring, DIR_PUT, false);
	}
	return rc;
}

/* A blocked attempt: the first time a claim blocks us (blk differs from
 * *seen), look at its owner at once, without a system call.  An impossible
 * owner is corruption the first time it is read (-EBADMSG), and an owner the
 * process table no longer lists is recovered now rather than after a slice;
 * only a listed owner's liveness waits for the slice (recover, quick false). */
static int first_look(shmq_queue *q, const struct shmq__mpmc_block *blk,
		      struct shmq__mpmc_block *seen)
{
	if (blk->pos == seen->pos && blk->ctl == seen->ctl)
		return 0;
	*seen = *blk;
	return block_is_claim(blk) ? recover(q, blk, true) : 0;
}

/* A get blocked at an EMPTY slot of head's lap: it may be a put's claim not
 * yet published, which lives in the slot's claim word (ring/mpmc_int.h,
 * Protocol PUT_CLAIM) and which only shmq__mpmc_recover looks up, so that a
 * poll of an empty queue reads no line of the producers'. */
static bool block_maybe_claim(const struct shmq__mpmc_block *blk)
{
	return (blk->ctl & (3u | UINT64_C(1) << 32)) == 0; /* EMPTY */
}

/* A SHMQ_NOWAIT caller blocked by blk: the first look at a new claim, then
 * the full check once it has blocked this handle for a slice (an EMPTY slot
 * gets only the full check).  1 when a claim was recovered (the caller tries
 * once more), 0, or -EBADMSG. */
static int nowait_stall(shmq_queue *q, const struct shmq__mpmc_block *blk)
{
	bool claim = block_is_claim(blk);
	int64_t now;

	if (!claim && !block_maybe_claim(blk))
		return 0;
	now = shmq_now_ns();
	/* relaxed: handle-local memory, see struct shmq_queue */
	if (shmq__load_relaxed(&q->stuck_pos) != blk->pos ||
	    shmq__load_relaxed(&q->stuck_ctl) != blk->ctl) {
		shmq__store_relaxed(&q->stuck_pos, blk->pos);
		shmq__store_relaxed(&q->stuck_ctl, blk->ctl);
		shmq__store_relaxed(&q->stuck_since, now);
		return claim ? recover(q, blk, true) : 0;
	}
	/* relaxed: handle-local memory, as above */
	if (now - shmq__load_relaxed(&q->stuck_since) < SLICE_NS)
		return 0;
	shmq__store_relaxed(&q->stuck_since, now);
	return recover(q, blk, false);
}

/* Once a slice per handle (and at once in a new one), look behind head for
 * what no get finds at head and nothing else would find until a producer
 * laps it (ring/mpmc_int.h, Redelivery and Dead holders): a given-back
 * message whose redo count was lost, a dead holder's message.  1 when one
 * was made takable (the getters are woken; the caller tries again), 0, or
 * -EBADMSG. */
static int audit(shmq_queue *q)
{
	int64_t now = shmq_now_ns();
	uint64_t from;
	int rc;

	/* relaxed: handle-local memory (struct shmq_queue) */
	if (now < shmq__load_relaxed(&q->audit_at))
		return 0;
	shmq__store_relaxed(&q->audit_at, now + SLICE_NS);
	from = shmq__load_relaxed(&q->audit_from); /* relaxed: as above */
	rc = shmq__mpmc_audit(&q->ring, &from);
	shmq__store_relaxed(&q->audit_from, from); /* relaxed: as above */
	if (rc > 0)
		wake_all(&q->ring, DIR_GET, false);
	return rc;
}

/* Sleep on one side's word for at most a slice.  0: woken or the condition
 * holds (retry), -EINTR: the slice ended, -ETIMEDOUT, or a futex error. */
static int sleep_once(struct shmq__mpmc *m, enum dir dir, int64_t deadline)
{
	struct side s = side_of(m, dir);
	int64_t now = shmq_now_ns();
	int64_t until = deadline;
	uint32_t v;
	int rc;

	if (deadline != SHMQ__NO_DEADLINE && deadline <= now)
		return -ETIMEDOUT;
	if (deadline == SHMQ__NO_DEADLINE || deadline - now > SLICE_NS)
		until = now + SLICE_NS;
	/* arm: sleep only on an even word (Protocol WAKE_PENDING); a bit we
	 * could not clear means the word is moving: try again instead */
	v = pending_clear(s.word);
	if (v & WAKE_PENDING)
		return 0;
	shmq__fetch_add_seq_cst(s.sleepers, 1);
	/* the publishers' half of the Dekker pair is a release store and a
	 * compiler barrier (core/wait_int.h, Protocol FENCED); without the
	 * fence a publication may be missed: sleep a short slice at most */
	if (shmq__fence_word_enter(s.fence) != 0 && until - now > SHMQ__UNFENCED_SLICE_NS)
		until = now + SHMQ__UNFENCED_SLICE_NS;
	if (dir == DIR_GET ? shmq__mpmc_readable(m) : shmq__mpmc_writable(m)) {
		rc = 0;
	} else {
		shmq__count_event(dir == DIR_GET ? &m->sh->get_waits : &m->sh->put_waits);
		rc = shmq__futex_wait(s.word, v, until);
	}
	shmq__fetch_sub_seq_cst(s.sleepers, 1);
	pending_clear(s.word); /* count out: later wakers may call again */
	if (rc == -ETIMEDOUT && until != deadline)
		return -EINTR;
	return rc;
}

/* One attempt of the blocked operation: 0/length on success, -EAGAIN to
 * keep waiting (blk updated), other errors final. */
struct attempt {
	ssize_t (*fn)(shmq_queue *q, void *arg, struct shmq__mpmc_block *blk);
	void *arg;
	enum dir dir;
	bool no_spin; /* sleep at once (shmq__queue_get_begin_idle) */
};

/* How many audits make one look at the whole window behind head (capacity
 * + 2 positions, SHMQ__MPMC_AUDIT_SPAN per audit), and one more: head may
 * move on while we look. */
static uint64_t window_audits(const shmq_queue *q)
{
	return ((uint64_t)q->ring.capacity + 2) / SHMQ__MPMC_AUDIT_SPAN + 2;
}

/* A get found the queue shut down and drained: -EPIPE, which a consumer
 * takes for the end and never asks again.  The audit's slice (above) is
 * for blocked gets, which look again; so before that -EPIPE, look behind
 * head at once, the whole window: a dead holder's message (given back
 * here) and a given-back one whose redo count was lost are still to go out
 * (ring/mpmc_int.h, Redelivery and Dead holders).  The attempt's result:
 * -EPIPE still when nothing came back (or someone else took it first). */
SHMQ__COLD static ssize_t drained(shmq_queue *q, const struct attempt *a,
				  struct shmq__mpmc_block *blk)
{
	uint64_t from = 0, n = window_audits(q);
	int found = 0;

	do {
		int rc = shmq__mpmc_audit(&q->ring, &from);

		if (rc < 0)
			return rc;
		found |= rc;
	} while (from != 0 && --n != 0);
	if (!found)
		return -EPIPE;
	wake_all(&q->ring, DIR_GET, false);
	return a->fn(q, a->arg, blk);
}

/* One attempt of a get or put, with the last look before a get's -EPIPE. */
static ssize_t attempt_run(shmq_queue *q, const struct attempt *a, struct shmq__mpmc_block *blk)
{
	ssize_t rc = a->fn(q, a->arg, blk);

	if (SHMQ__UNLIKELY(rc == -EPIPE) && a->dir == DIR_GET)
		rc = drained(q, a, blk);
	return rc;
}

static ssize_t spin_phase(shmq_queue *q, const struct attempt *a, struct shmq__mpmc_block *blk,
			  struct shmq__mpmc_block *seen, int64_t deadline)
{
	uint32_t budget = shmq__spin_budget();
	ssize_t rc = -EAGAIN;

	for (uint32_t i = 0; i < budget && rc == -EAGAIN; i++) {
		if ((i + 1) % SPIN_YIELD_EVERY == 0) {
			if (deadline != SHMQ__NO_DEADLINE && shmq_now_ns() >= deadline)
				break;
			sched_yield(); /* on 2 cores the peer may need our CPU */
		} else {
			shmq__cpu_relax();
		}
		rc = attempt_run(q, a, blk);
		if (rc == -EAGAIN) {
			int src = first_look(q, blk, seen);

			if (src < 0)
				return src;
		}
	}
	return rc;
}

/* The slow path of every blocking call, after a first attempt gave -EAGAIN. */
static ssize_t wait_loop(shmq_queue *q, const struct attempt *a, int64_t timeout_ns,
			 struct shmq__mpmc_block *blk)
{
	struct shmq__mpmc_block seen = { 0, 0 }; /* ctl 0 (EMPTY lap 0) is no claim */
	int64_t deadline;
	ssize_t rc;
	int src;

	if (timeout_ns == SHMQ_NOWAIT) {
		src = nowait_stall(q, blk);
		if (src == 0 && a->dir == DIR_GET)
			src = audit(q);
		if (src < 0)
			return src;
		return src ? attempt_run(q, a, blk) : -EAGAIN;
	}
	src = first_look(q, blk, &seen);
	if (src == 0 && a->dir == DIR_GET)
		src = audit(q); /* a found one is taken in the spin phase */
	if (src < 0)
		return src;
	deadline = shmq__deadline(timeout_ns);
	rc = a->no_spin ? -EAGAIN : spin_phase(q, a, blk, &seen, deadline);
	while (rc == -EAGAIN) {
		src = sleep_once(&q->ring, a->dir, deadline);
		if (src == -EINTR) {
			src = recover(q, blk, false);
			if (src == 0 && a->dir == DIR_GET)
				src = audit(q);
			/* indices that no ring can have (a tail far past head
			 * over an empty slot) block nobody's attempt with
			 * -EBADMSG: say so within a slice, not never */
			if (src == 0)
				src = shmq__mpmc_check(&q->ring);
		}
		if (src < 0 && src != -ETIMEDOUT)
			return src;
		rc = attempt_run(q, a, blk);
		if (rc != -EAGAIN)
			break;
		if (src == -ETIMEDOUT)
			return -ETIMEDOUT;
		src = first_look(q, blk, &seen);
		if (src < 0)
			return src;
	}
	return rc;
}

/* ---- put and get ---- */

struct put_args {
	const void *msg;
	size_t len;
};

static ssize_t put_attempt(shmq_queue *q, void *arg, struct shmq__mpmc_block *blk)
{
	struct put_args *p = arg;

	return shmq__mpmc_try_put(&q->ring, p->msg, p->len, blk);
}

struct large_put_args {
	const void *msg;
	size_t len;
	int64_t deadline; /* the whole put's, heap and ring */
	uint64_t off; /* the block, kept across attempts (chan/queue_int.h) */
	void (*note)(void *arg, uint64_t pos); /* shmq__queue_put_noted's, or NULL */
	void *note_arg;
};

static ssize_t large_put_attempt(shmq_queue *q, void *arg, struct shmq__mpmc_block *blk)
{
	struct large_put_args *p = arg;

	return shmq__qlarge_put(&q->ring, q->r, p->msg, p->len, p->deadline, &p->off, blk,
				p->note, p->note_arg);
}

/* What is left of the timeout that gave deadline (SHMQ_NOWAIT stays so). */
static int64_t timeout_left(int64_t timeout_ns, int64_t deadline)
{
	int64_t now;

	if (timeout_ns == SHMQ_NOWAIT || deadline == SHMQ__NO_DEADLINE)
		return timeout_ns;
	now = shmq_now_ns();
	return deadline > now ? deadline - now : 1;
}

/* A message longer than max_msg: its bytes go to the queue's heap first
 * (-ENOSPC when the region cannot hold them), then a slot is claimed in
 * order as for any put, so FIFO per producer holds across sizes.  One
 * deadline bounds both waits, a chunk's lock and the slot. */
static int put_large(shmq_queue *q, const void *msg, size_t len, int64_t timeout_ns,
		     void (*note)(void *arg, uint64_t pos), void *note_arg)
{
	struct shmq__mpmc_block blk;
	int64_t deadline = shmq__deadline(timeout_ns);
	struct large_put_args p = { msg, len, deadline, 0, note, note_arg };
	struct attempt a = { large_put_attempt, &p, DIR_PUT, false };
	ssize_t rc = large_put_attempt(q, &p, &blk);

	/* a chunk's lock kept by a live holder (blk untouched): a put that
	 * does not wait would have blocked */
	if (rc == -ETIMEDOUT && timeout_ns == SHMQ_NOWAIT)
		rc = -EAGAIN;
	else if (rc == -EAGAIN)
		rc = wait_loop(q, &a, timeout_left(timeout_ns, deadline), &blk);
	if (rc && p.off)
		shmq__qlarge_drop(&q->ring, q->r, p.off);
	return (int)rc;
}

/* The slow part of a put, out of the fast path: rc is what the first try
 * said (-EAGAIN: wait; -EMSGSIZE: a large message). */
SHMQ__COLD static int put_slow(shmq_queue *q, const void *msg, size_t len, int64_t timeout_ns,
			       struct shmq__mpmc_block *blk, int rc)
{
	struct put_args p = { msg, len };
	struct attempt a = { put_attempt, &p, DIR_PUT, false };

	if (rc == -EMSGSIZE && len <= SHMQ__QUEUE_LARGE_MAX)
		return put_large(q, msg, len, timeout_ns, NULL, NULL);
	if (rc != -EAGAIN)
		return rc;
	return (int)wait_loop(q, &a, timeout_ns, blk);
}

int shmq_queue_put(shmq_queue *q, const void *msg, size_t len, int64_t timeout_ns)
{
	struct shmq__mpmc_block blk;
	int rc;

	if (SHMQ__UNLIKELY(!q || (!msg && len)))
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__timeout_bad(timeout_ns)))
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__foreign(q->pid)))
		return -EBADF;
	rc = shmq__mpmc_try_put(&q->ring, msg, len, &blk);
	if (SHMQ__UNLIKELY(rc < 0))
		rc = put_slow(q, msg, len, timeout_ns, &blk, rc);
	if (SHMQ__LIKELY(rc == 0))
		after_put(&q->ring);
	return rc;
}

/* A put that tells the caller its position before the message is published
 * (chan/queue_int.h, shmq__queue_put_noted). */
struct put_note_args {
	const void *msg;
	size_t len;
	void (*note)(void *arg, uint64_t pos);
	void *arg;
};

static ssize_t put_note_attempt(shmq_queue *q, void *arg, struct shmq__mpmc_block *blk)
{
	struct put_note_args *p = arg;
	uint64_t pos;
	int rc = shmq__mpmc_put_claim(&q->ring, &pos, blk);

	if (rc)
		return rc;
	p->note(p->arg, pos);
	shmq__mpmc_slot_fill(shmq__mpmc_slot_data(&q->ring, pos), p->msg, p->len);
	/* order_sc: after_put's sleeper check follows; the release store
	 * makes what note stored visible to whoever claims the message */
	shmq__mpmc_put_publish(&q->ring, pos, (uint32_t)p->len, true);
	return 0;
}

int shmq__queue_put_noted(shmq_queue *q, const void *msg, size_t len, int64_t timeout_ns,
			  void (*note)(void *arg, uint64_t pos), void *arg)
{
	struct shmq__mpmc_block blk;
	struct put_note_args p = { msg, len, note, arg };
	struct attempt a = { put_note_attempt, &p, DIR_PUT, false };
	ssize_t rc;

	if (!q || (!msg && len) || !note)
		return -EINVAL;
	if (shmq__foreign(q->pid))
		return -EBADF;
	if (len > q->ring.max_msg) { /* through the queue's heap, noted the same way */
		if (len > SHMQ__QUEUE_LARGE_MAX)
			return -EMSGSIZE;
		rc = put_large(q, msg, len, timeout_ns, note, arg);
		if (rc == 0)
			after_put(&q->ring);
		return (int)rc;
	}
	rc = put_note_attempt(q, &p, &blk);
	if (rc == -EAGAIN)
		rc = wait_loop(q, &a, timeout_ns, &blk);
	if (rc == 0)
		after_put(&q->ring);
	return (int)rc;
}

struct get_args {
	void *buf;
	size_t cap;
};

/* A get through the large-message path (any slot, large or not).  In a
 * joinable queue the message is counted as taken before the claim and the
 * count taken back when nothing was taken: a count ahead of its message
 * makes join wait, never return early (chan/queue_int.h, What is
 * unfinished). */
static ssize_t large_get(shmq_queue *q, void *buf, size_t cap, uint64_t *need,
			 struct shmq__mpmc_block *blk)
{
	ssize_t rc;

	if (!q->join.sh)
		return shmq__qlarge_get(&q->ring, q->r, buf, cap, need, blk);
	rc = shmq__join_can_take(&q->join);
	if (rc)
		return rc;
	shmq__join_take(&q->join, 1);
	rc = shmq__qlarge_get(&q->ring, q->r, buf, cap, need, blk);
	if (rc < 0)
		shmq__join_untake(&q->join, 1);
	return rc;
}

static ssize_t get_attempt(shmq_queue *q, void *arg, struct shmq__mpmc_block *blk)
{
	struct get_args *g = arg;
	ssize_t rc = shmq__mpmc_try_get(&q->ring, g->buf, g->cap, blk);

	/* a large message at head (chan/queue_int.h, Protocol QLARGE) */
	if (SHMQ__UNLIKELY(rc == -E2BIG))
		rc = large_get(q, g->buf, g->cap, NULL, blk);
	return rc;
}

/* The slow part of a get, out of the fast path: rc is what the first try
 * said (-EAGAIN: wait; -E2BIG: a large message at head). */
SHMQ__COLD static ssize_t get_slow(shmq_queue *q, void *buf, size_t cap, int64_t timeout_ns,
				   struct shmq__mpmc_block *blk, ssize_t rc)
{
	struct get_args g = { buf, cap };
	struct attempt a = { get_attempt, &g, DIR_GET, false };

	if (rc == -E2BIG)
		rc = large_get(q, buf, cap, NULL, blk);
	if (rc == -EPIPE)
		rc = drained(q, &a, blk);
	if (rc != -EAGAIN)
		return rc;
	return wait_loop(q, &a, timeout_ns, blk);
}

/* A get from a joinable queue: the message is counted as taken between
 * its claim and its slot's release (chan/queue_int.h, What is unfinished). */
static ssize_t get_join_attempt(shmq_queue *q, void *arg, struct shmq__mpmc_block *blk)
{
	struct get_args *g = arg;
	uint64_t pos;
	uint32_t len;
	int rc = shmq__join_can_take(&q->join);

	if (rc == 0)
		rc = shmq__mpmc_get_claim(&q->ring, g->cap, &pos, &len, blk);
	if (rc == -E2BIG) /* a large message at head (Protocol QLARGE) */
		return large_get(q, g->buf, g->cap, NULL, blk);
	if (rc)
		return rc;
	shmq__join_take(&q->join, 1);
	if (len)
		memcpy(g->buf, shmq__mpmc_slot_data(&q->ring, pos), len);
	shmq__mpmc_get_release(&q->ring, pos, true);
	return (ssize_t)len;
}

SHMQ__COLD static ssize_t get_joinable(shmq_queue *q, void *buf, size_t cap, int64_t timeout_ns)
{
	struct shmq__mpmc_block blk;
	struct get_args g = { buf, cap };
	struct attempt a = { get_join_attempt, &g, DIR_GET, false };
	ssize_t rc = attempt_run(q, &a, &blk);

	if (rc == -EAGAIN)
		rc = wait_loop(q, &a, timeout_ns, &blk);
	return rc;
}

ssize_t shmq_queue_get(shmq_queue *q, void *buf, size_t cap, int64_t timeout_ns)
{
	struct shmq__mpmc_block blk;
	ssize_t rc;

	if (SHMQ__UNLIKELY(!q || (!buf && cap)))
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__timeout_bad(timeout_ns)))
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__foreign(q->pid)))
		return -EBADF;
	if (SHMQ__UNLIKELY(q->join.sh != NULL)) {
		rc = get_joinable(q, buf, cap, timeout_ns);
	} else {
		rc = shmq__mpmc_try_get(&q->ring, buf, cap, &blk);
		if (SHMQ__UNLIKELY(rc < 0))
			rc = get_slow(q, buf, cap, timeout_ns, &blk, rc);
	}
	if (SHMQ__LIKELY(rc >= 0)) {
		after_get(&q->ring);
		/* relaxed: a token for watchers on this thread (see struct shmq_queue) */
		shmq__store_relaxed(&q->taken, shmq__load_relaxed(&q->taken) + 1);
	}
	return rc;
}

struct alloc_args {
	void *buf;
	size_t cap;
	uint64_t need; /* after -EMSGSIZE: the length that did not fit */
};

static ssize_t alloc_attempt(shmq_queue *q, void *arg, struct shmq__mpmc_block *blk)
{
	struct alloc_args *g = arg;

	return large_get(q, g->buf, g->cap, &g->need, blk);
}

/* How often get_alloc grows its buffer before it gives up: each retry means
 * that the message it sized was taken by someone else meanwhile. */
#define GET_ALLOC_TRIES 64

/* The longest copy a get of q can make: a slot's max_msg, or a large
 * message, which lives in the region (block_check holds its copy to the
 * region's size).  Private state: a length a slot claims sizes no buffer
 * past it, so a hostile one costs a failed claim, not gigabytes. */
static size_t get_alloc_room(const shmq_queue *q)
{
	size_t room = q->r ? q->r->size : 0;

	return room > q->ring.max_msg ? room : q->ring.max_msg;
}

ssize_t shmq_queue_get_alloc(shmq_queue *q, void **msg, int64_t timeout_ns)
{
	struct alloc_args g = { NULL, 0, 0 };
	struct attempt a = { alloc_attempt, &g, DIR_GET, false };
	int64_t deadline;
	size_t room;

	if (!q || !msg)
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__timeout_bad(timeout_ns)))
		return -EINVAL;
	if (shmq__foreign(q->pid))
		return -EBADF;
	deadline = shmq__deadline(timeout_ns);
	room = get_alloc_room(q);
	g.cap = q->ring.max_msg ? q->ring.max_msg : 1;
	for (int i = 0; i < GET_ALLOC_TRIES; i++) {
		struct shmq__mpmc_block blk;
		ssize_t rc;

		/* the caller's to free(): libc, not shmq__malloc.  cap lets the
		 * claim of a message that length happen; no copy passes room */
		g.buf = malloc(g.cap < room ? g.cap : room);
		if (!g.buf)
			return -ENOMEM;
		rc = attempt_run(q, &a, &blk);
		if (rc == -EAGAIN)
			rc = wait_loop(q, &a, timeout_left(timeout_ns, deadline), &blk);
		if (rc >= 0) {
			after_get(&q->ring);
			/* relaxed: as in shmq_queue_get */
			shmq__store_relaxed(&q->taken, shmq__load_relaxed(&q->taken) + 1);
			*msg = g.buf;
			return rc;
		}
		free(g.buf);
		if (rc != -EMSGSIZE)
			return rc;
		if (g.need > SHMQ__QUEUE_LARGE_MAX)
			return -EBADMSG;
		if (g.need > g.cap) /* else the one that did not fit went meanwhile */
			g.cap = (size_t)g.need;
	}
	return -EAGAIN;
}

/* ---- two-phase get ---- */

struct begin_args {
	uint64_t pos;
	uint32_t len;
};

static ssize_t begin_attempt(shmq_queue *q, void *arg, struct shmq__mpmc_block *blk)
{
	struct begin_args *b = arg;
	int rc = shmq__mpmc_hold_claim(&q->ring, &b->pos, &b->len, blk);

	return rc ? rc : (ssize_t)b->len;
}

/* begin_audit's clock and audit, out of the fast path. */
SHMQ__COLD static int begin_audit_slow(shmq_queue *q)
{
	int rc = audit(q);

	return rc < 0 ? rc : 0; /* a found one is taken by this begin's claim */
}

/* A get_begin reads the clock every this many calls through its handle. */
#define BEGIN_CLOCK_EVERY 32u

/* Before a begin takes anything: the audit, once a slice per handle (and
 * at once in a new one), so that a queue whose gets never block still
 * gives a dead holder's messages out again (ring/mpmc_int.h, Dead
 * holders).  The clock is read every BEGIN_CLOCK_EVERY-th begin only: a
 * plain counter in the handle, no shared write.  0 or -EBADMSG. */
static inline int begin_audit(shmq_queue *q)
{
	/* relaxed: handle-local memory (struct shmq_queue) */
	uint32_t n = shmq__load_relaxed(&q->begins);

	shmq__store_relaxed(&q->begins, n + 1); /* relaxed: as above */
	if (SHMQ__LIKELY(n % BEGIN_CLOCK_EVERY != 0))
		return 0;
	return begin_audit_slow(q);
}

/* The slow part of a begin, out of the fast path: rc is what the first
 * claim said; -EAGAIN waits.  0 with b filled, or the error. */
SHMQ__COLD static int begin_slow(shmq_queue *q, struct begin_args *b, int64_t timeout_ns,
				 struct shmq__mpmc_block *blk, int rc, bool no_spin)
{
	struct attempt a = { begin_attempt, b, DIR_GET, no_spin };
	ssize_t n = -EAGAIN;

	if (rc == -EPIPE)
		n = drained(q, &a, blk);
	else if (rc != -EAGAIN)
		return rc;
	if (n == -EAGAIN)
		n = wait_loop(q, &a, timeout_ns, blk);
	return n < 0 ? (int)n : 0;
}

/* A large slot held: its message in place, or -EBADMSG for a broken
 * descriptor (its slot is freed). */
SHMQ__COLD static ssize_t begin_large(shmq_queue *q, uint64_t pos, const void **msg)
{
	ssize_t rc = shmq__qlarge_view(&q->ring, q->r, pos, msg);

	if (rc < 0)
		shmq__mpmc_hold_end(&q->ring, pos, true);
	return rc;
}

static ssize_t get_begin(shmq_queue *q, const void **msg, uint64_t *pos, int64_t timeout_ns,
			 bool no_spin)
{
	struct shmq__mpmc_block blk;
	struct begin_args b;
	ssize_t rc;
	int crc;

	if (SHMQ__UNLIKELY(!q || !msg || !pos))
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__timeout_bad(timeout_ns)))
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__foreign(q->pid)))
		return -EBADF;
	crc = begin_audit(q);
	if (SHMQ__UNLIKELY(crc))
		return crc;
	crc = shmq__mpmc_hold_claim(&q->ring, &b.pos, &b.len, &blk);
	if (SHMQ__UNLIKELY(crc))
		crc = begin_slow(q, &b, timeout_ns, &blk, crc, no_spin);
	if (SHMQ__UNLIKELY(crc))
		return crc;
	rc = (ssize_t)b.len;
	*msg = shmq__mpmc_slot_data(&q->ring, b.pos);
	if (SHMQ__UNLIKELY(b.len & SHMQ__MPMC_LEN_LARGE)) {
		rc = begin_large(q, b.pos, msg);
		if (rc < 0) /* a broken descriptor went with its slot */
			return rc;
	}
	*pos = b.pos;
	/* the slot stays taken: no putter to wake; pass a getter's wake on
	 * (seq_cst: Protocol WAKE_PENDING, chain_wake) */
	if (shmq__load_seq_cst(&q->ring.sh->data_sleepers) != 0 && shmq__mpmc_readable(&q->ring))
		wake_getters(&q->ring);
	/* relaxed: as in shmq_queue_get */
	shmq__store_relaxed(&q->taken, shmq__load_relaxed(&q->taken) + 1);
	return rc;
}

ssize_t shmq_queue_get_begin(shmq_queue *q, const void **msg, uint64_t *pos, int64_t timeout_ns)
{
	return get_begin(q, msg, pos, timeout_ns, false);
}

ssize_t shmq__queue_get_begin_idle(shmq_queue *q, const void **msg, uint64_t *pos,
				   int64_t timeout_ns)
{
	return get_begin(q, msg, pos, timeout_ns, true);
}

/* Free a held slot: a small one in the ring alone, in one call; a large
 * one (the ring says -E2BIG) with its block (Protocol QLARGE).  A queue
 * without a region has no large slots: a len that says so is freed as a
 * small one, as before. */
static inline int commit_slot(shmq_queue *q, uint64_t pos)
{
	int rc = shmq__mpmc_hold_commit(&q->ring, pos);

	if (SHMQ__UNLIKELY(rc == -E2BIG))
		return q->r ? shmq__qlarge_commit(&q->ring, q->r, pos)
			    : shmq__mpmc_hold_end(&q->ring, pos, true);
	return rc;
}

/* A commit in a joinable queue: the message is counted as taken before
 * its slot is freed (chan/queue_int.h, What is unfinished). */
SHMQ__COLD static int commit_joinable(shmq_queue *q, uint64_t pos)
{
	int rc = shmq__join_can_take(&q->join);

	if (rc)
		return rc;
	shmq__join_take(&q->join, 1);
	rc = commit_slot(q, pos);
	if (rc == 0)
		wake_putters(&q->ring);
	else
		shmq__join_untake(&q->join, 1);
	return rc;
}

int shmq_queue_get_commit(shmq_queue *q, uint64_t pos)
{
	int rc;

	if (SHMQ__UNLIKELY(!q))
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__foreign(q->pid)))
		return -EBADF;
	if (SHMQ__UNLIKELY(q->join.sh != NULL))
		return commit_joinable(q, pos);
	rc = commit_slot(q, pos);
	if (rc == 0)
		wake_putters(&q->ring);
	return rc;
}

int shmq_queue_get_abort(shmq_queue *q, uint64_t pos)
{
	int rc;

	if (!q)
		return -EINVAL;
	if (shmq__foreign(q->pid))
		return -EBADF;
	rc = shmq__mpmc_hold_end(&q->ring, pos, false);
	if (rc == 0)
		wake_getters(&q->ring);
	return rc;
}

int shmq__queue_ident(const shmq_queue *q, struct shmq__queue_ident *id)
{
	const struct shmq__mpmc_shared *sh;

	if (!q || !id)
		return -EINVAL;
	sh = q->ring.sh;
	/* relaxed: incarnation is written once before the queue is published */
	id->incarnation = shmq__load_relaxed(&sh->incarnation);
	/* seq_cst: head, tail, head again, as shmq__mpmc_check: a pair that
	 * holds the lag invariant at one instant */
	id->get = shmq__load_seq_cst(&sh->head);
	id->put = shmq__load_seq_cst(&sh->tail);
	/* relaxed: a hint (ring/mpmc_int.h, Redelivery) */
	id->redo = shmq__load_relaxed(&sh->redo);
	return shmq__mpmc_check(&q->ring);
}

int shmq__queue_put_fate(shmq_queue *q, uint64_t pos)
{
	if (!q)
		return -EINVAL;
	if (shmq__foreign(q->pid))
		return -EBADF;
	return shmq__mpmc_put_fate(&q->ring, pos);
}

/* ---- bulk ---- */

struct bulk_put_args {
	const struct iovec *msgs;
	size_t n;
};

/* Claim, fill and publish as many as fit now; one fence and one wake check
 * for the batch. */
static ssize_t put_bulk_attempt(shmq_queue *q, void *arg, struct shmq__mpmc_block *blk)
{
	struct bulk_put_args *b = arg;
	struct shmq__mpmc *m = &q->ring;
	size_t i;
	int rc = 0;

	for (i = 0; i < b->n; i++) {
		uint64_t pos;

		rc = shmq__mpmc_put_claim(m, &pos, blk);
		if (rc)
			break;
		shmq__mpmc_slot_fill(shmq__mpmc_slot_data(m, pos), b->msgs[i].iov_base,
				     b->msgs[i].iov_len);
		shmq__mpmc_put_publish(m, pos, (uint32_t)b->msgs[i].iov_len, false);
	}
	if (i == 0)
		return rc;
	/* orders the release publishes above before after_put's load of
	 * data_sleepers (the Dekker handshake, see the top comment) */
	shmq__mpmc_publish_fence(m);
	return (ssize_t)i;
}

ssize_t shmq_queue_put_bulk(shmq_queue *q, const struct iovec *msgs, size_t n,
			    int64_t timeout_ns)
{
	struct shmq__mpmc_block blk;
	struct bulk_put_args b = { msgs, n };
	struct attempt a = { put_bulk_attempt, &b, DIR_PUT, false };
	ssize_t rc;

	if (!q || (!msgs && n) || n > SSIZE_MAX)
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__timeout_bad(timeout_ns)))
		return -EINVAL;
	if (shmq__foreign(q->pid))
		return -EBADF;
	for (size_t i = 0; i < n; i++) {
		if (msgs[i].iov_len > q->ring.max_msg)
			return -EMSGSIZE;
		if (!msgs[i].iov_base && msgs[i].iov_len)
			return -EINVAL;
	}
	if (n == 0)
		return 0;
	rc = put_bulk_attempt(q, &b, &blk);
	if (rc == -EAGAIN)
		rc = wait_loop(q, &a, timeout_ns, &blk);
	if (rc > 0)
		after_put(&q->ring);
	return rc;
}

struct bulk_get_args {
	const struct iovec *bufs;
	size_t *lens;
	size_t n;
};

static ssize_t get_bulk_attempt(shmq_queue *q, void *arg, struct shmq__mpmc_block *blk)
{
	struct bulk_get_args *b = arg;
	struct shmq__mpmc *m = &q->ring;
	size_t i;
	int rc = 0;

	for (i = 0; i < b->n; i++) {
		uint64_t pos;
		uint32_t len;

		if (q->join.sh)
			rc = shmq__join_can_take(&q->join);
		if (rc == 0)
			rc = shmq__mpmc_get_claim(m, b->bufs[i].iov_len, &pos, &len, blk);
		if (rc == -E2BIG && i == 0) { /* a large one first: alone */
			ssize_t n = large_get(q, b->bufs[0].iov_base, b->bufs[0].iov_len, NULL, blk);

			if (n < 0)
				return n;
			b->lens[0] = (size_t)n;
			return 1;
		}
		if (rc)
			break;
		if (q->join.sh) /* counted before the release (chan/queue_int.h) */
			shmq__join_take(&q->join, 1);
		if (len)
			memcpy(b->bufs[i].iov_base, shmq__mpmc_slot_data(m, pos), len);
		b->lens[i] = len;
		shmq__mpmc_get_release(m, pos, false);
	}
	if (i == 0)
		return rc;
	/* orders the release stores above before after_get's load of
	 * space_sleepers (the Dekker handshake, see the top comment) */
	shmq__mpmc_publish_fence(m);
	return (ssize_t)i;
}

ssize_t shmq_queue_get_bulk(shmq_queue *q, const struct iovec *bufs, size_t *lens, size_t n,
			    int64_t timeout_ns)
{
	struct shmq__mpmc_block blk;
	struct bulk_get_args b = { bufs, lens, n };
	struct attempt a = { get_bulk_attempt, &b, DIR_GET, false };
	ssize_t rc;

	if (!q || ((!bufs || !lens) && n) || n > SSIZE_MAX)
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__timeout_bad(timeout_ns)))
		return -EINVAL;
	if (shmq__foreign(q->pid))
		return -EBADF;
	for (size_t i = 0; i < n; i++)
		if (!bufs[i].iov_base && bufs[i].iov_len)
			return -EINVAL;
	if (n == 0)
		return 0;
	rc = attempt_run(q, &a, &blk);
	if (rc == -EAGAIN)
		rc = wait_loop(q, &a, timeout_ns, &blk);
	if (rc > 0) {
		after_get(&q->ring);
		/* relaxed: as in shmq_queue_get */
		shmq__store_relaxed(&q->taken, shmq__load_relaxed(&q->taken) + (uint64_t)rc);
	}
	return rc;
}

/* ---- shutdown, length, statistics, scheduler hooks ---- */

int shmq_queue_shutdown(shmq_queue *q)
{
	if (!q)
		return -EINVAL;
	if (shmq__foreign(q->pid))
		return -EBADF;
	shmq__mpmc_shutdown(&q->ring);
	/* everyone asleep re-checks and sees shut */
	wake_all(&q->ring, DIR_GET, true);
	wake_all(&q->ring, DIR_PUT, true);
	return 0;
}

size_t shmq_queue_len(const shmq_queue *q)
{
	return q ? shmq__mpmc_len(&q->ring) : 0;
}

int shmq_queue_stats(const shmq_queue *q, struct shmq_queue_stats *st)
{
	const struct shmq__mpmc_shared *sh;

	if (!q || !st)
		return -EINVAL;
	sh = q->ring.sh;
	memset(st, 0, sizeof(*st));
	st->capacity = q->ring.capacity;
	st->max_msg = q->ring.max_msg;
	st->len = shmq__mpmc_len(&q->ring);
	/* relaxed: statistics, no data depends on them */
	st->skipped = shmq__load_relaxed(&sh->skipped);
	st->dropped = shmq__load_relaxed(&sh->dropped);
	st->sleeping_getters = shmq__load_relaxed(&sh->data_sleepers) +
			       shmq__load_relaxed(&sh->data_watchers); /* relaxed: as above */
	st->sleeping_putters = shmq__load_relaxed(&sh->space_sleepers) +
			       shmq__load_relaxed(&sh->space_watchers); /* relaxed: as above */
	st->shut_down = shmq__mpmc_is_shut(&q->ring);
	return 0;
}

int shmq__queue_watch(shmq_queue *q, struct shmq__watch *w)
{
	if (!q || !w)
		return -EINVAL;
	w->word = &q->ring.sh->data_word;
	w->sleepers = &q->ring.sh->data_watchers; /* watchers (Protocol WAKE_PENDING) */
	w->enter = shmq__fence_word_enter; /* publishers store release: Protocol FENCED (core/wait_int.h) */
	w->fence = &q->ring.sh->data_fence;
	return 0;
}

uint64_t shmq__queue_progress(shmq_queue *q)
{
	/* relaxed: a token compared for change only (struct shmq_queue) */
	return q ? shmq__load_relaxed(&q->taken) : 0;
}

bool shmq__queue_readable(shmq_queue *q)
{
	return q && shmq__mpmc_readable(&q->ring);
}

int shmq__queue_watch_space(shmq_queue *q, struct shmq__watch *w)
{
	if (!q || !w)
		return -EINVAL;
	w->word = &q->ring.sh->space_word;
	w->sleepers = &q->ring.sh->space_watchers; /* watchers (Protocol WAKE_PENDING) */
	w->enter = shmq__fence_word_enter; /* as above, for freed slots */
	w->fence = &q->ring.sh->space_fence;
	return 0;
}

bool shmq__queue_writable(shmq_queue *q)
{
	return q && shmq__mpmc_writable(&q->ring);
}

/* A watcher's look at the get side when no claim blocks it at head: a
 * two-phase get open behind head may belong to a process that dies, and
 * nothing wakes a watcher then (no put, no get; ring/mpmc_int.h, Dead
 * holders).  So while one is open the watcher keeps its liveness slice
 * (SHMQ__SETTLE_CLAIM), and its deep look runs the audit, as a blocked
 * get does, which gives a dead holder's message back and wakes the
 * watchers (the side is then readable: SHMQ__SETTLE_NONE). */
static int settle_held(shmq_queue *q, bool deep)
{
	int rc = deep ? audit(q) : 0;

	if (rc < 0)
		return SHMQ__SETTLE_BAD;
	if (rc > 0)
		return SHMQ__SETTLE_NONE;
	return shmq__mpmc_held_behind(&q->ring) ? SHMQ__SETTLE_CLAIM : SHMQ__SETTLE_NONE;
}

int shmq__queue_settle(shmq_queue *q, bool space, bool deep)
{
	struct shmq__mpmc_block blk;
	int rc;

	if (!q)
		return SHMQ__SETTLE_NONE;
	shmq__mpmc_block_at(&q->ring, space, &blk);
	if (!block_is_claim(&blk))
		return space ? SHMQ__SETTLE_NONE : settle_held(q, deep);
	rc = recover(q, &blk, !deep);
	if (rc < 0)
		return SHMQ__SETTLE_BAD;
	return rc == 1 ? SHMQ__SETTLE_NONE : SHMQ__SETTLE_CLAIM;
}

/* ---- introspection (shmq stat) ---- */

/* How many holders describe_holds names one by one. */
#define DESCRIBE_HOLDERS 4u

/* Two-phase gets open now: the HELD and RETURNED slots among the capacity
 * + 2 positions behind head (ring/mpmc_int.h, Redelivery): "held" (begun,
 * not ended), "given_back" (waiting to go out again), "redo", "returned"
 * (give-backs ever: aborts and dead holders), and for the first
 * DESCRIBE_HOLDERS held ones heldI_pos, heldI_pid, heldI_alive.  The slot
 * geometry is read back and checked against size first; relaxed loads, a
 * snapshot like the rest. */
static void describe_holds(shmq_region *r, const struct shmq__mpmc_shared *q, uint64_t size,
			   uint32_t cap, uint64_t head, struct shmq__obj_stat *st)
{
	/* relaxed: a snapshot, checked before use; orders nothing */
	uint32_t slot_size = shmq__load_relaxed(&q->slot_size);
	uint64_t span = (uint64_t)cap + 2, held = 0, back = 0;
	const uint8_t *slots = (const uint8_t *)q + sizeof(*q);

	if (cap == 0 || cap > SHMQ__MPMC_CAP_MAX || slot_size < SHMQ__MPMC_SLOT_HDR ||
	    slot_size % SHMQ__CACHELINE || (uint64_t)slot_size * cap > size - sizeof(*q)) {
		st->status = -EBADMSG;
		return;
	}
	/* as the ring's scans (ring/mpmc.c, window_start): across the wrap
	 * for a power-of-two capacity */
	for (uint64_t p = !(cap & (cap - 1)) || head > span ? head - span : 0; p != head; p++) {
		const struct shmq__mpmc_slot *s =
			(const struct shmq__mpmc_slot *)(slots + (p % cap) * slot_size);
		/* relaxed: a snapshot; the slot's data is never read here */
		uint64_t w = shmq__load_relaxed(&s->ctl);
		char key[32];

		/* lap bits 2..31 must name p's lap; the hold bit is bit 32 */
		if (!(w >> 32 & 1u) || ((w >> 2) & ((1u << 30) - 1)) != ((p / cap) & ((1u << 30) - 1)))
			continue;
		if ((w & 3u) == 2u) {
			back++;
			continue;
		}
		if ((w & 3u) != 3u)
			continue;
		if (held < DESCRIBE_HOLDERS) {
			snprintf(key, sizeof(key), "held%u_pos", (unsigned)held);
			shmq__stat_u64(st, key, p);
			snprintf(key, sizeof(key), "held%u", (unsigned)held);
			if (r)
				shmq__stat_owner(st, r, key, (uint32_t)(w >> 33));
		}
		held++;
	}
	shmq__stat_u64(st, "held", held);
	shmq__stat_u64(st, "given_back", back);
	/* relaxed: statistics, no data depends on them */
	shmq__stat_u64(st, "redo", shmq__load_relaxed(&q->redo));
	shmq__stat_u64(st, "returned", shmq__load_relaxed(&q->returned)); /* relaxed: as above */
}

/* A joinable queue's counters (chan/queue_join.c), from the table after
 * the slots; the ring's geometry is read back and checked against size. */
static void describe_join(shmq_region *r, const struct shmq__mpmc_shared *q, uint64_t size,
			  uint32_t cap, struct shmq__obj_stat *st)
{
	/* relaxed: a snapshot, checked before use; orders nothing */
	uint32_t flags = shmq__load_relaxed(&q->flags);
	uint64_t ring = shmq__mpmc_footprint(cap, shmq__load_relaxed(&q->max_msg)); /* relaxed: as above */

	shmq__stat_bool(st, "joinable", (flags & SHMQ_QUEUE_JOINABLE) != 0);
	if (!(flags & SHMQ_QUEUE_JOINABLE))
		return;
	if (ring == 0 || ring > size) {
		st->status = -EBADMSG;
		return;
	}
	shmq__join_describe(r, (const uint8_t *)q + ring, size - ring, st);
}

/* Queue (the object is the mpmc ring's control block and slots): depth
 * and capacity in messages, positions as message counters, sleepers on both
 * sides, shutdown, the claims of dead processes skipped or dropped, and the
 * open two-phase gets with their holders (describe_holds).
 * Every load is relaxed: a snapshot that orders nothing against the queue's
 * users; head and tail are two separate loads, so depth is clamped to
 * 0..capacity. */
void shmq__queue_describe(shmq_region *r, const void *mem, uint64_t size, struct shmq__obj_stat *st)
{
	const struct shmq__mpmc_shared *q = mem;

	uint32_t version = size < sizeof(*q) ? 0 : shmq__load_relaxed(&q->version);
	if (size < sizeof(*q) || shmq__load_relaxed(&q->magic) != SHMQ__MPMC_MAGIC ||
	    version != SHMQ__MPMC_VERSION) {
		st->status = -EBADMSG;
		return;
	}
	/* the exact capacity (any value in 1 .. CAP_MAX) */
	uint32_t cap = shmq__load_relaxed(&q->capacity);
	if (cap == 0 || cap > SHMQ__MPMC_CAP_MAX || shmq__load_relaxed(&q->footprint) > size)
		st->status = -EBADMSG;
	/* seq_cst: head, tail, head again in one order, as shmq__mpmc_check
	 * does: two relaxed loads far apart could see a busy queue's tail run
	 * cap + 3 ahead of an old head and call a healthy queue corrupt */
	uint64_t head = shmq__load_seq_cst(&q->head), tail = shmq__load_seq_cst(&q->tail);
	uint64_t head2 = shmq__load_seq_cst(&q->head);
	int64_t used = (int64_t)(tail - head);
	/* each index may lag its slots by one (ring/mpmc_int.h): -2 <= used <= cap + 2
	 * at the instant of the tail's read, whose head lies in [head, head2] */
	if ((int64_t)(head2 - head) < 0 || used < -2 || (int64_t)(tail - head2) > (int64_t)cap + 2)
		st->status = -EBADMSG;
	uint32_t getters = shmq__load_relaxed(&q->data_sleepers) + shmq__load_relaxed(&q->data_watchers);
	uint32_t putters = shmq__load_relaxed(&q->space_sleepers) + shmq__load_relaxed(&q->space_watchers);
	shmq__stat_u64(st, "depth", used < 0 ? 0 : used > (int64_t)cap ? cap : (uint64_t)used);
	shmq__stat_u64(st, "capacity", cap);
	shmq__stat_str(st, "unit", "msgs");
	shmq__stat_u64(st, "max_msg", shmq__load_relaxed(&q->max_msg));
	shmq__stat_u64(st, "msgs_in", tail);
	shmq__stat_u64(st, "msgs_out", head);
	shmq__stat_u64(st, "sleepers", (uint64_t)getters + putters);
	shmq__stat_u64(st, "getters_asleep", getters);
	shmq__stat_u64(st, "putters_asleep", putters);
	shmq__stat_bool(st, "shutdown", shmq__load_relaxed(&q->shut) != 0);
	shmq__stat_u64(st, "skipped", shmq__load_relaxed(&q->skipped));
	shmq__stat_u64(st, "dropped", shmq__load_relaxed(&q->dropped));
	describe_holds(r, q, size, cap, head2, st);
	describe_join(r, q, size, cap, st);
	if (r)
		shmq__qlarge_describe(r, q, st);
	uint64_t gw = shmq__load_relaxed(&q->get_waits), pw = shmq__load_relaxed(&q->put_waits);
	uint64_t gk = shmq__load_relaxed(&q->get_wakes), pk = shmq__load_relaxed(&q->put_wakes);
	shmq__stat_u64(st, "waits", shmq__stat_sum(gw, pw));
	shmq__stat_u64(st, "wakes", shmq__stat_sum(gk, pk));
	shmq__stat_u64(st, "getter_waits", gw);
	shmq__stat_u64(st, "putter_waits", pw);
	shmq__stat_u64(st, "getter_wakes", gk);
	shmq__stat_u64(st, "putter_wakes", pk);
}
