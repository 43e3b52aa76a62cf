/* SPDX-License-Identifier: MIT */
/*
 * Layer 4: large queue messages, carried in chunks of the region's heap
 * that belong to the queue.  The layout and Protocol QLARGE (who owns a
 * block when, who frees it, what the sweep may take) are in
 * chan/queue_int.h.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <shmq.h>

#include "core/atomic_int.h"
#include "core/compiler_int.h"
#include "core/introspect_int.h"
#include "core/region_int.h"
#include "core/wait_int.h"
#include "chan/queue_int.h"
#include "ring/mpmc_int.h"

#define LINE ((uint64_t)SHMQ__CACHELINE)
#define HDR ((uint64_t)sizeof(struct shmq__qlarge_chunk))
#define BHDR ((uint64_t)sizeof(struct shmq__qlarge_block))
#define LOCK_NS ((int64_t)2 * 1000 * 1000 * 1000) /* the sweep's wait for a chunk lock */
#define DESC_LEN ((uint32_t)sizeof(struct shmq__qlarge_desc))

_Static_assert(SHMQ__QLARGE_LOCK_BYTES % SHMQ__CACHELINE == 0, "chunk header lines");
_Static_assert(sizeof(struct shmq__qlarge_desc) + SHMQ__MPMC_SLOT_HDR <= SHMQ__CACHELINE,
	       "a descriptor fits the smallest slot");

/* ---- st words ---- */

static inline uint64_t st_make(uint32_t owner, uint32_t gen, unsigned state)
{
	return (uint64_t)owner << 32 | (uint64_t)(gen & 0x3fffffffu) << 2 | state;
}

static inline unsigned st_state(uint64_t st)
{
	return (unsigned)(st & 3u);
}

static inline uint32_t st_gen(uint64_t st)
{
	return (uint32_t)(st >> 2) & 0x3fffffffu;
}

static inline uint32_t st_owner(uint64_t st)
{
	return (uint32_t)(st >> 32);
}

/* ---- chunks ---- */

/* Is size a chunk's size that the chunk at region offset off may have:
 * room for its header and a block, whole lines, inside the region? */
static bool chunk_size_ok(shmq_region *r, uint64_t off, uint64_t size)
{
	return size >= HDR + BHDR && size % LINE == 0 && shmq__region_ptr(r, off, size);
}

/* The checked chunk at region offset off of the queue whose ring is at
 * qoff, or NULL; *size gets the size that was checked. */
static struct shmq__qlarge_chunk *chunk_at(shmq_region *r, uint64_t off, uint64_t qoff,
					   uint64_t *size_out)
{
	struct shmq__qlarge_chunk *c = off % LINE ? NULL : shmq__region_ptr(r, off, HDR);
	uint64_t size;

	if (!c)
		return NULL;
	/* relaxed: written before the chunk's link, which our load of the
	 * link acquired (Protocol QLARGE, chunk_link); a grow under the
	 * chunk's lock may change it since, and lock holders read it again
	 * (chunk_end): here it is checked against the region alone */
	size = shmq__load_relaxed(&c->size);
	if (shmq__load_relaxed(&c->magic) != SHMQ__QLARGE_CHUNK_MAGIC ||
	    !chunk_size_ok(r, off, size) ||
	    shmq__load_relaxed(&c->queue) != qoff) /* relaxed: as size above */
		return NULL;
	*size_out = size;
	return c;
}

/* The size of locked chunk c, re-read under its lock (a chunk grows under
 * it, chunk_grow) and checked as chunk_at checks it; 0 when it fails. */
static uint64_t chunk_end(shmq_region *r, struct shmq__qlarge_chunk *c)
{
	/* relaxed: changes only under the chunk's lock, which we hold */
	uint64_t size = shmq__load_relaxed(&c->size);

	return chunk_size_ok(r, shmq__region_off(r, c), size) ? size : 0;
}

/* The chunk after c (or the first one, c NULL); NULL at the end, *bad set
 * for a link that names no chunk of ours. */
static struct shmq__qlarge_chunk *chunk_next(struct shmq__mpmc *m, shmq_region *r,
					     struct shmq__qlarge_chunk *c, bool *bad)
{
	uint64_t qoff = shmq__region_off(r, m->sh);
	/* acquire: pairs with the link CAS in chunk_link (the chunk's layout) */
	uint64_t off = shmq__load_acquire(c ? &c->next : &m->sh->large);
	struct shmq__qlarge_chunk *n;
	uint64_t size;

	if (off == 0)
		return NULL;
	n = chunk_at(r, off, qoff, &size);
	if (!n)
		*bad = true;
	return n;
}

/* How many chunks a walk may visit: a region holds fewer chunks than this,
 * so a longer chain is a cycle someone wrote. */
static uint64_t chunk_bound(shmq_region *r)
{
	return r->size / (HDR + BHDR) + 1;
}

/* Lay a chunk out and link it at the end of the chain (Protocol QLARGE,
 * Chunks).  A kill between the region's alloc and the link leaks the
 * chunk, the one leak left (see queue_int.h). */
static int chunk_link(struct shmq__mpmc *m, shmq_region *r, uint64_t size,
		      struct shmq__qlarge_chunk **out)
{
	struct shmq__qlarge_chunk *c, *last = NULL;
	struct shmq__qlarge_block *b;
	uint64_t off, n = 0, zero;
	bool bad = false;
	void *mem;
	int rc;

	rc = shmq__region_alloc(r, size, &mem);
	if (rc)
		return rc;
	c = mem;
	rc = shmq_lock_init(c->lock);
	if (rc)
		return rc;
	c->magic = SHMQ__QLARGE_CHUNK_MAGIC;
	c->size = size;
	c->queue = shmq__region_off(r, m->sh);
	b = (struct shmq__qlarge_block *)((uint8_t *)c + HDR);
	b->size = size - HDR;
	b->pos = SHMQ__QLARGE_POS_NONE;
	off = shmq__region_off(r, c);
	for (;;) {
		struct shmq__qlarge_chunk *nx = chunk_next(m, r, last, &bad);

		if (bad || ++n > chunk_bound(r))
			return -EBADMSG;
		if (nx) {
			last = nx;
			continue;
		}
		zero = 0;
		/* release: publishes the layout above (pairs with chunk_next's acquire) */
		if (shmq__cas_release(last ? &last->next : &m->sh->large, &zero, off))
			break;
	}
	*out = c;
	return 0;
}

/* How a put polls a chunk lock that another producer holds when it has no
 * time to wait (SHMQ_NOWAIT, or its deadline passed): a live holder carves
 * one block, a short section; one that stays (stopped, preempted) is a put
 * that would block.  A poll is a load and a pause, no system call; the
 * clock (the vDSO's) cuts the polls short after LOCK_POLL_NS, whatever a
 * pause costs on this CPU. */
#define LOCK_POLLS 16384u
#define LOCK_POLL_NS ((int64_t)50 * 1000)
#define LOCK_POLL_CLOCK 64u /* polls between looks at the clock */

/* c's lock without waiting: the polls above, then one try that also takes
 * a dead holder's lock over (shmq_lock_acquire's SHMQ_NOWAIT).  -ETIMEDOUT
 * when a live holder keeps it. */
static int chunk_lock_poll(shmq_lock *l)
{
	int64_t until = 0;
	int rc;

	for (uint32_t i = 0; i < LOCK_POLLS; i++) {
		if (!shmq_lock_locked(l)) {
			rc = shmq_lock_acquire(l, SHMQ_NOWAIT);
			if (rc != -EAGAIN)
				return rc;
		}
		if (i % LOCK_POLL_CLOCK == 0) {
			int64_t now = shmq_now_ns();

			if (i == 0)
				until = now + LOCK_POLL_NS;
			else if (now >= until)
				break;
		}
		shmq__cpu_relax();
	}
	rc = shmq_lock_acquire(l, SHMQ_NOWAIT);
	return rc == -EAGAIN ? -ETIMEDOUT : rc;
}

/* Take c's lock by deadline (SHMQ__NO_DEADLINE: no limit), the whole
 * call's: a holder stopped, by a debugger or a signal, delays the put as a
 * full ring would, and the chunks a put walks share one bound.  A deadline
 * already passed (SHMQ_NOWAIT's) still gets the lock of a short section. */
static int chunk_lock(shmq_region *r, struct shmq__qlarge_chunk *c, int64_t deadline,
		      shmq_lock **l)
{
	int64_t left = shmq__remaining(deadline);
	int rc = shmq_lock_attach(r, c->lock, l);

	if (rc)
		return rc;
	if (deadline == SHMQ__NO_DEADLINE)
		rc = shmq_lock_acquire(*l, SHMQ_FOREVER);
	else if (left > 0)
		rc = shmq_lock_acquire(*l, left);
	else
		rc = chunk_lock_poll(*l);
	/* a holder killed mid-way left the tiling whole (queue_int.h, Chunks) */
	if (rc == 0 || rc == -EOWNERDEAD)
		return 0;
	shmq_lock_close(*l);
	return rc;
}

static void chunk_unlock(shmq_lock *l)
{
	shmq_lock_release(l);
	shmq_lock_close(l);
}

/* ---- blocks ---- */

struct walk {
	struct shmq__mpmc *m;
	shmq_region *r;
	uint8_t *base;    /* the chunk */
	uint64_t end;     /* its size */
	bool sweep;
};

/* The header at chunk offset off, its size checked to tile the chunk. */
static struct shmq__qlarge_block *block_at(const struct walk *w, uint64_t off, uint64_t *size)
{
	struct shmq__qlarge_block *b = (struct shmq__qlarge_block *)(w->base + off);
	/* relaxed: sizes change only under the chunk lock, which we hold */
	uint64_t s = shmq__load_relaxed(&b->size);

	if (s < BHDR || s % LINE || s > w->end - off)
		return NULL;
	*size = s;
	return b;
}

/* Is the ring's slot of pos still carrying it?  A pos no slot can carry
 * (ahead of tail) reads as carried: the block stays, the safe side. */
static bool pos_live(struct shmq__mpmc *m, uint64_t pos)
{
	return shmq__mpmc_slot_live(m, pos);
}

/* The sweep's decision on a taken block (Protocol QLARGE): true when it
 * freed it. */
static bool block_reclaim(const struct walk *w, struct shmq__qlarge_block *b, uint64_t st)
{
	uint32_t owner = st_owner(st);
	/* acquire: pairs with the producer's release of pos (Protocol QLARGE) */
	uint64_t pos = shmq__load_acquire(&b->pos);

	if (st_state(st) == SHMQ__QLARGE_BUSY && pos == SHMQ__QLARGE_POS_NONE) {
		if (shmq__region_id_alive(w->r, owner) != 0)
			return false;
		/* seq_cst: re-read after the owner was seen dead */
		if (shmq__load_seq_cst(&b->pos) != SHMQ__QLARGE_POS_NONE)
			return false;
		/* POS_NONE is also position 2^64 - 1 (indices a writer set
		 * near 2^64): a block that position's slot may carry stays */
		if (pos_live(w->m, SHMQ__QLARGE_POS_NONE))
			return false;
	} else if (st_state(st) == SHMQ__QLARGE_DYING) {
		if (shmq__region_id_alive(w->r, owner) != 0 || pos_live(w->m, pos))
			return false;
	} else if (st_state(st) != SHMQ__QLARGE_BUSY || pos_live(w->m, pos)) {
		return false;
	}
	/* seq_cst: from the exact st read (Protocol QLARGE; never twice) */
	return shmq__cas_seq_cst(&b->st, &st, st_make(0, st_gen(st), SHMQ__QLARGE_FREE));
}

/* The st of the block at off, freed by the sweep if it may be. */
static uint64_t block_state(const struct walk *w, struct shmq__qlarge_block *b)
{
	/* acquire: pairs with alloc's release of BUSY and the frees' CASes
	 * (Protocol QLARGE) */
	uint64_t st = shmq__load_acquire(&b->st);

	if (st_state(st) != SHMQ__QLARGE_FREE && w->sweep && block_reclaim(w, b, st))
		return st_make(0, st_gen(st), SHMQ__QLARGE_FREE);
	return st;
}

/* Merge the free blocks after the free block b (size *size) into it. */
static int block_merge(const struct walk *w, uint64_t off, struct shmq__qlarge_block *b,
		       uint64_t *size)
{
	while (off + *size < w->end) {
		uint64_t ns;
		struct shmq__qlarge_block *n = block_at(w, off + *size, &ns);

		if (!n)
			return -EBADMSG;
		if (st_state(block_state(w, n)) != SHMQ__QLARGE_FREE)
			break;
		*size += ns;
		/* relaxed: one store keeps the tiling whole; read under the lock */
		shmq__store_relaxed(&b->size, *size);
	}
	return 0;
}

/* Take need bytes from the free block b at off (size bytes) for self. */
static void block_take(const struct walk *w, uint64_t off, struct shmq__qlarge_block *b,
		       uint64_t size, uint64_t need, uint64_t len, uint64_t st)
{
	if (size - need >= 2 * BHDR) {
		struct shmq__qlarge_block *t = (struct shmq__qlarge_block *)(w->base + off + need);

		/* relaxed: under the lock; the tail's header is inside b until
		 * the store of b's size below (queue_int.h, Chunks) */
		shmq__store_relaxed(&t->st, st_make(0, 0, SHMQ__QLARGE_FREE));
		shmq__store_relaxed(&t->pos, SHMQ__QLARGE_POS_NONE); /* relaxed: as above */
		shmq__store_relaxed(&t->size, size - need); /* relaxed: as above */
		shmq__store_relaxed(&b->size, need); /* relaxed: as above */
	}
	/* relaxed: published by the release of st below */
	shmq__store_relaxed(&b->pos, SHMQ__QLARGE_POS_NONE);
	shmq__store_relaxed(&b->len, len); /* relaxed: as above */
	/* release: pairs with the loads of st in block_state and block_check
	 * (Protocol QLARGE) */
	shmq__store_release(&b->st, st_make(w->m->self, st_gen(st) + 1, SHMQ__QLARGE_BUSY));
}

/* First fit in one locked chunk: the chunk offset of a block of need
 * bytes now BUSY for us, 0 when none fits, -EBADMSG for a broken tiling. */
static int64_t chunk_fit(const struct walk *w, uint64_t need, uint64_t len)
{
	uint64_t off = HDR, size;

	while (off < w->end) {
		struct shmq__qlarge_block *b = block_at(w, off, &size);
		uint64_t st;

		if (!b)
			return -EBADMSG;
		st = block_state(w, b);
		if (st_state(st) == SHMQ__QLARGE_FREE) {
			if (block_merge(w, off, b, &size))
				return -EBADMSG;
			if (size >= need) {
				block_take(w, off, b, size, need, len, st);
				return (int64_t)off;
			}
		}
		off += size;
	}
	return 0;
}

/* Try each chunk in turn (sweeping them when sweep): the region offset of
 * our new block, 0 when none fits, or an error. */
static int64_t chain_fit(struct shmq__mpmc *m, shmq_region *r, uint64_t need, uint64_t len,
			 bool sweep, int64_t deadline)
{
	struct shmq__qlarge_chunk *c = NULL;
	bool bad = false;
	uint64_t n = 0;

	while ((c = chunk_next(m, r, c, &bad)) != NULL) {
		struct walk w = { m, r, (uint8_t *)c, 0, sweep };
		shmq_lock *l;
		int64_t off;
		int rc;

		if (++n > chunk_bound(r))
			return -EBADMSG;
		rc = chunk_lock(r, c, deadline, &l);
		if (rc)
			return rc;
		w.end = chunk_end(r, c);
		off = w.end ? chunk_fit(&w, need, len) : -EBADMSG;
		chunk_unlock(l);
		if (off < 0)
			return off;
		if (off > 0)
			return (int64_t)shmq__region_off(r, c) + off;
	}
	return bad ? -EBADMSG : 0;
}

/* The free bytes at the end of the locked chunk of w (free blocks there
 * merged first), or -EBADMSG for a broken tiling. */
static int64_t chunk_tail_free(const struct walk *w)
{
	uint64_t off = HDR, size, tail = 0;

	while (off < w->end) {
		struct shmq__qlarge_block *b = block_at(w, off, &size);

		if (!b)
			return -EBADMSG;
		tail = 0;
		if (st_state(block_state(w, b)) == SHMQ__QLARGE_FREE) {
			if (block_merge(w, off, b, &size))
				return -EBADMSG;
			tail = size;
		}
		off += size;
	}
	return (int64_t)tail;
}

/* Grow the last chunk by what a block of need bytes lacks at its end (at
 * least a chunk's minimum, when the region has it), when the chunk ends at
 * the heap's top: a new chunk beside it could never give its free space to
 * a block that spans both, so sizes that grow, or a burst of messages,
 * would split the queue's space into chunks none of which holds a message
 * the space would hold in total.  The region offset of our new block, 0
 * when the last chunk cannot grow (something else lies after it), or an
 * error.  Under the chunk's lock; the new tail block's header is written
 * before the size that takes it into the tiling (queue_int.h, Chunks). */
static int64_t chunk_grow(struct shmq__mpmc *m, shmq_region *r, uint64_t need, uint64_t len,
			  int64_t deadline)
{
	struct shmq__qlarge_chunk *c = NULL, *nx;
	struct shmq__qlarge_block *t;
	struct walk w = { m, r, NULL, 0, false };
	uint64_t n = 0, extra;
	bool bad = false;
	shmq_lock *l;
	int64_t tail, off;
	int rc;

	while ((nx = chunk_next(m, r, c, &bad)) != NULL) {
		if (++n > chunk_bound(r))
			return -EBADMSG;
		c = nx;
	}
	if (bad)
		return -EBADMSG;
	if (!c)
		return 0;
	rc = chunk_lock(r, c, deadline, &l);
	if (rc)
		return rc;
	w.base = (uint8_t *)c;
	w.end = chunk_end(r, c);
	tail = w.end ? chunk_tail_free(&w) : -EBADMSG;
	if (tail < 0 || (uint64_t)tail >= need) { /* freed meanwhile: take it */
		off = tail < 0 ? tail : chunk_fit(&w, need, len);
		goto out;
	}
	extra = need - (uint64_t)tail;
	rc = -ENOSPC;
	if (extra < SHMQ__QLARGE_CHUNK_MIN)
		rc = shmq__region_extend(r, shmq__region_off(r, c) + w.end, SHMQ__QLARGE_CHUNK_MIN);
	if (rc == -ENOSPC)
		rc = shmq__region_extend(r, shmq__region_off(r, c) + w.end, extra);
	else if (rc == 0)
		extra = SHMQ__QLARGE_CHUNK_MIN;
	if (rc) {
		off = rc == -EAGAIN || rc == -ENOSPC ? 0 : rc;
		goto out;
	}
	t = (struct shmq__qlarge_block *)(w.base + w.end);
	/* relaxed: beyond the tiling until the store of the chunk's size
	 * below, which lock holders read under the lock (queue_int.h, Chunks) */
	shmq__store_relaxed(&t->st, st_make(0, 0, SHMQ__QLARGE_FREE));
	shmq__store_relaxed(&t->pos, SHMQ__QLARGE_POS_NONE); /* relaxed: as above */
	shmq__store_relaxed(&t->size, extra); /* relaxed: as above */
	w.end += extra;
	/* relaxed: read under the lock, whose release publishes it; chunk_at
	 * and the tools' snapshot check it against the region alone */
	shmq__store_relaxed(&c->size, w.end);
	off = chunk_fit(&w, need, len);
out:
	chunk_unlock(l);
	return off > 0 ? (int64_t)shmq__region_off(r, c) + off : off;
}

/* A block for len bytes, BUSY for us: its region offset, or -ENOSPC when
 * neither the chunks (swept) nor the region can hold it; -ETIMEDOUT when
 * a chunk's lock stays held past deadline, the one for all chunks. */
static int64_t block_alloc(struct shmq__mpmc *m, shmq_region *r, size_t len, int64_t deadline)
{
	struct shmq__qlarge_chunk *c;
	uint64_t need, size;
	int64_t off;
	int rc;

	if (len > r->size)
		return -ENOSPC;
	need = SHMQ__ALIGN_UP((uint64_t)len + BHDR, LINE);
	for (int sweep = 0; sweep < 2; sweep++) {
		off = chain_fit(m, r, need, len, sweep, deadline);
		if (off != 0)
			return off;
	}
	off = chunk_grow(m, r, need, len, deadline);
	if (off != 0)
		return off;
	size = need + HDR > SHMQ__QLARGE_CHUNK_MIN ? need + HDR : SHMQ__QLARGE_CHUNK_MIN;
	rc = chunk_link(m, r, size, &c);
	if (rc == -ENOSPC && size > need + HDR)
		rc = chunk_link(m, r, need + HDR, &c);
	if (rc)
		return rc;
	/* ours is the last chunk; others may take it first: look again */
	off = chain_fit(m, r, need, len, false, deadline);
	return off ? off : -ENOSPC;
}

static struct shmq__qlarge_block *block_of(shmq_region *r, uint64_t off)
{
	return off % LINE ? NULL : shmq__region_ptr(r, off, BHDR);
}

/* ---- put ---- */

void shmq__qlarge_drop(struct shmq__mpmc *m, shmq_region *r, uint64_t off)
{
	struct shmq__qlarge_block *b = block_of(r, off);
	uint64_t st;

	if (!b)
		return;
	/* relaxed: our own BUSY, which nobody else frees while pos is unset */
	st = shmq__load_relaxed(&b->st);
	if (st_owner(st) == m->self && st_state(st) == SHMQ__QLARGE_BUSY)
		/* seq_cst: a free (Protocol QLARGE) */
		shmq__cas_seq_cst(&b->st, &st, st_make(0, st_gen(st), SHMQ__QLARGE_FREE));
}

int shmq__qlarge_put(struct shmq__mpmc *m, shmq_region *r, const void *msg, size_t len,
		     int64_t deadline, uint64_t *off, struct shmq__mpmc_block *blk,
		     void (*note)(void *arg, uint64_t pos), void *note_arg)
{
	struct shmq__qlarge_desc *d;
	struct shmq__qlarge_block *b;
	uint64_t pos;
	int rc;

	if (!r)
		return -EMSGSIZE; /* a placed queue without a region has no heap */
	if (*off == 0) {
		int64_t o = block_alloc(m, r, len, deadline);

		if (o < 0)
			return (int)o;
		*off = (uint64_t)o;
		memcpy((uint8_t *)block_of(r, *off) + BHDR, msg, len);
	}
	rc = shmq__mpmc_put_claim(m, &pos, blk);
	if (rc)
		return rc;
	if (note) /* shmq__queue_put_noted: before the message is visible */
		note(note_arg, pos);
	b = block_of(r, *off);
	/* release: from here the slot owns the block (pairs with the sweep's
	 * acquire of pos in block_reclaim, Protocol QLARGE) */
	shmq__store_release(&b->pos, pos);
	d = shmq__mpmc_slot_data(m, pos);
	/* relaxed: published by the slot's FULL (the ring's put_publish) */
	shmq__store_relaxed(&d->len, (uint64_t)len);
	shmq__store_relaxed(&d->off, *off); /* relaxed: as above */
	shmq__store_relaxed(&d->st, shmq__load_relaxed(&b->st)); /* relaxed: as above; our own st */
	shmq__mpmc_put_publish(m, pos, SHMQ__MPMC_LEN_LARGE | DESC_LEN, true);
	return 0;
}

/* ---- get ---- */

/* Check the descriptor of the large slot at pos (claimed by us) against
 * the block it names: the block, or NULL (-EBADMSG).  *d gets a private
 * copy of the descriptor. */
static struct shmq__qlarge_block *block_check(struct shmq__mpmc *m, shmq_region *r, uint64_t pos,
					      struct shmq__qlarge_desc *d)
{
	const struct shmq__qlarge_desc *sd = shmq__mpmc_slot_data(m, pos);
	struct shmq__qlarge_block *b;
	uint64_t size, st;

	if (!r || shmq__mpmc_slot_len(m, pos) != (SHMQ__MPMC_LEN_LARGE | DESC_LEN))
		return NULL;
	/* relaxed: the slot is claimed by us; its FULL's acquire ordered these */
	d->len = shmq__load_relaxed(&sd->len);
	d->off = shmq__load_relaxed(&sd->off); /* relaxed: as above */
	d->st = shmq__load_relaxed(&sd->st); /* relaxed: as above */
	b = block_of(r, d->off);
	if (!b || d->len > r->size)
		return NULL;
	/* acquire: pairs with block_take's release of BUSY (Protocol QLARGE) */
	st = shmq__load_acquire(&b->st);
	/* relaxed: fixed while the block is taken, ordered by the acquire above */
	size = shmq__load_relaxed(&b->size);
	if (size < BHDR + d->len || !shmq__region_ptr(r, d->off, size) ||
	    st_gen(st) != st_gen(d->st) || st_state(d->st) != SHMQ__QLARGE_BUSY ||
	    (st != d->st && st_state(st) != SHMQ__QLARGE_DYING) ||
	    shmq__load_relaxed(&b->len) != d->len || /* relaxed: as size */
	    shmq__load_relaxed(&b->pos) != pos) /* relaxed: as size */
		return NULL;
	return b;
}

ssize_t shmq__qlarge_get(struct shmq__mpmc *m, shmq_region *r, void *buf, size_t cap,
			 uint64_t *need, struct shmq__mpmc_block *blk)
{
	struct shmq__qlarge_desc d;
	struct shmq__qlarge_block *b;
	uint64_t pos;
	uint32_t len;
	int rc;

	rc = shmq__mpmc_get_claim_large(m, cap, &pos, &len, blk);
	if (rc == -EMSGSIZE && need)
		*need = len == UINT32_MAX ? UINT64_MAX : len;
	if (rc)
		return rc;
	if (!(len & SHMQ__MPMC_LEN_LARGE)) { /* head moved on to a small one */
		if (len)
			memcpy(buf, shmq__mpmc_slot_data(m, pos), len);
		shmq__mpmc_get_release(m, pos, true);
		return len;
	}
	b = block_check(m, r, pos, &d);
	if (!b) {
		shmq__mpmc_get_release(m, pos, true); /* a broken descriptor goes */
		return -EBADMSG;
	}
	if (d.len > cap) { /* the ring checked the slot's copy; ours says more */
		shmq__mpmc_get_release(m, pos, true);
		return -EBADMSG;
	}
	memcpy(buf, (uint8_t *)b + BHDR, d.len);
	/* seq_cst: a free while our claim holds the slot (Protocol QLARGE) */
	shmq__cas_seq_cst(&b->st, &d.st, st_make(0, st_gen(d.st), SHMQ__QLARGE_FREE));
	shmq__mpmc_get_release(m, pos, true);
	return (ssize_t)d.len;
}

ssize_t shmq__qlarge_view(struct shmq__mpmc *m, shmq_region *r, uint64_t pos,
			  const void **msg)
{
	struct shmq__qlarge_desc d;
	struct shmq__qlarge_block *b = block_check(m, r, pos, &d);

	if (!b)
		return -EBADMSG;
	*msg = (uint8_t *)b + BHDR;
	return (ssize_t)d.len;
}

int shmq__qlarge_commit(struct shmq__mpmc *m, shmq_region *r, uint64_t pos)
{
	struct shmq__qlarge_desc d;
	struct shmq__qlarge_block *b = NULL;
	uint64_t st, dying = 0;
	int rc;

	/* a hold by us names a slot whose descriptor stays put until the
	 * commit; not ours: hold_end says -EINVAL and changes nothing */
	if (shmq__mpmc_slot_len(m, pos) & SHMQ__MPMC_LEN_LARGE)
		b = block_check(m, r, pos, &d);
	if (b) {
		/* acquire: pairs with block_take's release of BUSY (Protocol QLARGE) */
		st = shmq__load_acquire(&b->st);
		dying = st_make(m->self, st_gen(st), SHMQ__QLARGE_DYING);
		/* seq_cst: Protocol QLARGE, DYING before the slot lets go */
		if (!shmq__cas_seq_cst(&b->st, &st, dying))
			b = NULL;
	}
	rc = shmq__mpmc_hold_end(m, pos, true);
	if (b && rc == 0)
		/* seq_cst: the free after the commit (Protocol QLARGE) */
		shmq__cas_seq_cst(&b->st, &dying, st_make(0, st_gen(dying), SHMQ__QLARGE_FREE));
	else if (b)
		/* not our hold after all: put the block back as it was */
		shmq__cas_seq_cst(&b->st, &dying, st); /* seq_cst: as above */
	return rc;
}

/* ---- sweep and introspection ---- */

int64_t shmq__qlarge_sweep(struct shmq__mpmc *m, shmq_region *r)
{
	struct shmq__qlarge_chunk *c = NULL;
	bool bad = false;
	uint64_t n = 0, taken = 0;

	if (!r)
		return 0;
	while ((c = chunk_next(m, r, c, &bad)) != NULL) {
		struct walk w = { m, r, (uint8_t *)c, 0, true };
		uint64_t off = HDR, size;
		shmq_lock *l;
		int rc;

		if (++n > chunk_bound(r))
			return -EBADMSG;
		rc = chunk_lock(r, c, shmq__deadline(LOCK_NS), &l);
		if (rc)
			return rc;
		w.end = chunk_end(r, c);
		if (!w.end) {
			chunk_unlock(l);
			return -EBADMSG;
		}
		while (off < w.end) {
			struct shmq__qlarge_block *b = block_at(&w, off, &size);

			if (!b) {
				chunk_unlock(l);
				return -EBADMSG;
			}
			if (st_state(block_state(&w, b)) == SHMQ__QLARGE_FREE) {
				if (block_merge(&w, off, b, &size)) {
					chunk_unlock(l);
					return -EBADMSG;
				}
			} else {
				taken += size;
			}
			off += size;
		}
		chunk_unlock(l);
	}
	return bad ? -EBADMSG : (int64_t)taken;
}

/* Read-only: no lock (the tool's handle has no owner id), every size
 * checked as the allocator checks it; relaxed loads, a snapshot. */
void shmq__qlarge_describe(shmq_region *r, const void *ring, struct shmq__obj_stat *st)
{
	const struct shmq__mpmc_shared *sh = ring;
	uint64_t qoff = shmq__region_off(r, ring), chunks = 0, bytes = 0, msgs = 0, held = 0;
	/* relaxed: a snapshot */
	uint64_t off = shmq__load_relaxed(&sh->large);

	while (off && chunks <= chunk_bound(r)) {
		uint64_t end = 0, at = HDR, size;
		/* end: the size chunk_at checked, never read again (a writer
		 * may change the word meanwhile) */
		struct shmq__qlarge_chunk *c = chunk_at(r, off, qoff, &end);

		if (!c) {
			st->status = -EBADMSG;
			break;
		}
		chunks++;
		bytes += end;
		while (at < end) {
			struct shmq__qlarge_block *b = (struct shmq__qlarge_block *)((uint8_t *)c + at);

			size = shmq__load_relaxed(&b->size); /* relaxed: as above */
			if (size < BHDR || size % LINE || size > end - at)
				break; /* mid-split, or broken: the rest is not counted */
			if (st_state(shmq__load_relaxed(&b->st)) != SHMQ__QLARGE_FREE) { /* relaxed: as above */
				msgs++;
				held += size;
			}
			at += size;
		}
		off = shmq__load_relaxed(&c->next); /* relaxed: as above */
	}
	shmq__stat_u64(st, "large_msgs", msgs);
	shmq__stat_u64(st, "large_bytes", held);
	shmq__stat_u64(st, "large_chunks", chunks);
	shmq__stat_u64(st, "large_heap", bytes);
}
