/* SPDX-License-Identifier: MIT */
/*
 * Private: layer 4, what a lossless bridge (or a test) needs to know of a
 * queue beyond the public API: its identity and its cursors.
 *
 * Message ids.  A message's position (shmq_queue_get_begin) is unique
 * within one queue object's life: positions are free-running 64-bit
 * counters that start at 0 and move by one per put (ring/mpmc_int.h,
 * Positions), so they never wrap in practice.  A queue deleted and made
 * again under the same name starts at 0 again; what tells the two apart is
 * the incarnation, 64 random bits (getrandom, never 0) written when the
 * queue is laid out.  So
 *
 *     region uuid (shmq_region_uuid) . queue name . incarnation . position
 *
 * names one message for ever, and names it again when it is redelivered
 * (abort, or a dead holder: the same position).
 *
 * Cursors.  put is the next position a producer will claim (messages put so
 * far, counting puts whose producer died mid-way and were skipped), get the
 * next one a consumer will take at head; get <= put + 2 (each index may lag
 * its slots by one).  Positions below get that are not committed are held
 * or given back; redo says how many given-back ones may be waiting (a hint).
 */
#ifndef SHMQ__QUEUE_INT_H
#define SHMQ__QUEUE_INT_H

#include <stdint.h>

#include <shmq.h>
#include <sys/types.h>

#include "ring/mpmc_int.h"

struct shmq__queue_ident {
	uint64_t incarnation; /* 64 random bits fixed when the queue was made */
	uint64_t put;         /* next position for a put (shared tail) */
	uint64_t get;         /* next position taken at head (shared head) */
	uint64_t redo;        /* given-back messages that may wait (a hint) */
};

/* A snapshot of q's identity and cursors.  0, -EINVAL, or -EBADMSG when the
 * cursors break the ring's invariant (the snapshot is filled in anyway).
 * Any thread. */
int shmq__queue_ident(const shmq_queue *q, struct shmq__queue_ident *id);

/* shmq_queue_put, calling note(arg, position) once the message's slot is
 * claimed and before the message is published: whatever note stores (it
 * must be short and must not fail) is visible to the consumer that takes
 * the message.  A caller killed inside note leaves a skipped position,
 * never a message without its note.  For libshmq-bridge (loops). */
int shmq__queue_put_noted(shmq_queue *q, const void *msg, size_t len, int64_t timeout_ns,
			  void (*note)(void *arg, uint64_t pos), void *arg);

/* Was the put that noted pos (shmq__queue_put_noted, perhaps by a process
 * killed since) published?  shmq__mpmc_put_fate's answers (ring/mpmc_int.h):
 * 1 yes (maybe consumed since), 0 never, -EAGAIN its live producer is still
 * at it, -ESTALE undecidable (the slot moved on a lap), -EBADMSG; -EINVAL,
 * -EBADF as any call.  For libshmq-bridge (exactly-once IN). */
int shmq__queue_put_fate(shmq_queue *q, uint64_t pos);

/* shmq_queue_get_begin that sleeps at once when the queue is empty, with no
 * spin phase: for a mover in the background (libshmq-bridge's OUT side),
 * whose spinning would take the CPU from the producers, the server and the
 * consumers it serves. */
ssize_t shmq__queue_get_begin_idle(shmq_queue *q, const void **msg, uint64_t *pos,
				   int64_t timeout_ns);

/*
 * Joinable queues (SHMQ_QUEUE_JOINABLE, chan/queue_join.c).  The queue's
 * object is the ring (ring/mpmc_int.h) followed by this join table; the
 * ring's flags say it is there (ring version 5).
 *
 * What is unfinished.  A message put and not yet task_done is in one of
 * these places, and passes from one to the next so that the next holds it
 * before the last lets it go:
 *   1. in the ring ahead of head (tail - head > 0), being written or queued;
 *   2. in a slot behind head: READING (a plain get copying it out; the
 *      getter counts it before it frees the slot), HELD or RETURNED (a
 *      two-phase get, counted at its commit, before the slot is freed);
 *   3. counted in the entry of the process that took it (ent[], below),
 *      until a task_done takes one off.
 * join reads them in this order (seq_cst), so a message moving on while it
 * reads is seen at least once.  join returns 0 when all three are empty,
 * -EOWNERDEAD when only counts of dead processes remain (and READING slots
 * of dead getters, whose messages died with them).
 *
 * Entries.  One 64-bit word per process-table slot: owner id << 32 |
 * outstanding (taken, not yet task_done).  A process uses the entry of its
 * slot (shmq__id_slot of its owner id); an entry naming another id belongs
 * to an earlier attachment of that slot, which is gone (the slot was
 * reused): its count moves to orphaned (added there first, then the entry
 * is taken over by CAS, so a death in between counts it twice, never not
 * at all).  task_done takes one off the caller's own entry, else off any
 * entry that has one (another process's task, done here), else off
 * orphaned; else -EINVAL.  An id that no attachment can carry, or one
 * filed under another slot, is corrupt memory: -EBADMSG.
 */
#include "core/region_int.h"

struct shmq__mpmc;

#define SHMQ__JOIN_MAGIC 0x4e494f4au /* "JOIN" */
#define SHMQ__JOIN_ENTRIES SHMQ__PTAB_SLOTS

struct shmq__join_shared {
	/* line 0: written by task_done and by takers of reused entries */
	uint32_t magic;
	uint32_t entries;   /* SHMQ__JOIN_ENTRIES; attach checks it */
	uint64_t orphaned;  /* outstanding of gone attachments (see Entries) */
	uint64_t done;      /* task_done calls (statistics) */
	uint8_t pad0[40];
	/* line 1: joiners sleep here; task_done bumps word when sleepers != 0 */
	uint32_t word;
	uint32_t sleepers;
	uint64_t waits;     /* futex waits entered by joiners (statistics) */
	uint64_t wakes;     /* futex wakes issued by task_done (statistics) */
	uint8_t pad1[40];
	uint64_t ent[SHMQ__JOIN_ENTRIES]; /* owner id << 32 | outstanding */
};
_Static_assert(sizeof(struct shmq__join_shared) % 64 == 0, "join table: whole lines");

/* The process-private side: the table and who we are. */
struct shmq__join {
	struct shmq__join_shared *sh; /* NULL: the queue is not joinable */
	shmq_region *r;
	uint32_t self; /* our owner id */
};

/* Bytes of the join table. */
static inline uint64_t shmq__join_footprint(void)
{
	return sizeof(struct shmq__join_shared);
}

/* Lay the table out in mem (64-byte aligned), before anyone attaches. */
void shmq__join_init(void *mem);

/* Verify the table at mem (avail bytes) and fill j.  -EBADMSG, or -EINVAL
 * when r is NULL (a joinable queue needs region owner ids). */
int shmq__join_attach(struct shmq__join *j, void *mem, uint64_t avail, shmq_region *r);

/* Before a take: can our entry count one more?  0, -EBADMSG (our entry is
 * corrupt), -EOVERFLOW (2^32 - 1 outstanding).  Changes nothing. */
int shmq__join_can_take(const struct shmq__join *j);

/* Count n messages taken by us (between the claim and the slot's release,
 * see What is unfinished); shmq__join_untake takes back a count whose
 * claim failed (two-phase commit).  Any thread. */
void shmq__join_take(struct shmq__join *j, uint32_t n);
void shmq__join_untake(struct shmq__join *j, uint32_t n);

/* The queue's ring and join side, for queue_join.c: 0, -EINVAL (NULL, or
 * not joinable), -EBADF (a handle from before fork). */
int shmq__queue_join_parts(shmq_queue *q, struct shmq__mpmc **m, struct shmq__join **j);

/* shmq stat: join_outstanding, join_dead, join_done (relaxed snapshot). */
struct shmq__obj_stat;
void shmq__join_describe(shmq_region *r, const void *mem, uint64_t size,
			 struct shmq__obj_stat *st);

/*
 * Large messages (chan/queue_large.c).  A message longer than max_msg
 * travels through a chunk of the region's heap that belongs to the queue;
 * its slot carries a descriptor (struct shmq__qlarge_desc) and len =
 * SHMQ__MPMC_LEN_LARGE | sizeof(desc) (ring/mpmc_int.h, Large slots).
 *
 * Chunks.  Allocated from the region's heap (shmq__region_alloc, the
 * region's one allocator) when no chunk has room, laid out (a placed
 * shmq_lock, the header, one FREE block spanning the rest), then linked
 * with one CAS: on the ring's control block (sh->large) for the first,
 * on the last chunk's next for the others.  When no chunk has room and the
 * last one ends at the region's heap top, it grows instead (under its
 * lock: the new tail block's header, then the chunk's size), so that the
 * queue's space stays one piece a message of any size can use again.
 * Chunks are never unlinked; what returns to the heap of the chunk is
 * each block.  Blocks tile their
 * chunk: a block's size (header included, a multiple of 64) leads to the
 * next header.  Alloc, split, merge and the sweep run under the chunk's
 * lock, and each leaves the tiling whole after every single store (a
 * split writes the tail's header, then shrinks the head; a merge is one
 * store of the size), so a holder killed anywhere leaves a chunk the next
 * holder (it gets -EOWNERDEAD) uses as it is.
 *
 * Protocol QLARGE: ownership of a block, st = owner << 32 | gen << 2 | state.
 *   FREE            in the chunk's free space; only the lock holder takes it
 *   BUSY(p, g)      taken by producer p (alloc, under the lock, gen g + 1
 *                   over the FREE block's g; pos = POS_NONE, len set first,
 *                   then st with a release store)
 *   DYING(c, g)     a two-phase consumer c is committing it
 * A producer fills the block, claims its slot (WRITING), stores the slot's
 * position into pos (release), writes the descriptor {len, off, st} into
 * the slot and publishes the slot FULL: from pos's store on, the slot
 * owns the block for as long as the slot carries that position (its lap,
 * any state but EMPTY: shmq__mpmc_slot_live).  A consumer checks the
 * descriptor against the block (-EBADMSG: never trusted), copies, and
 * frees the block while it still holds the slot: a plain get CASes st
 * from the descriptor's value to FREE, then releases the slot; a commit
 * CASes it to DYING(self), commits the slot, then CASes DYING(self) to
 * FREE (so a consumer killed before its commit leaves the block whole for
 * the redelivery, which accepts BUSY or DYING of the same gen).  A
 * producer that fails after alloc (NOWAIT full, shut down) CASes its own
 * BUSY back to FREE.
 * The sweep (the lock holder, when no block fits: the next large put that
 * finds the chunks short, or shmq__qlarge_sweep) frees a block that nobody
 * will free: BUSY with pos POS_NONE whose producer is dead (pos re-read
 * after the liveness check: a dead process's last stores are visible by
 * then), unless the slot of position 2^64 - 1, which reads as POS_NONE,
 * may carry it (indices set near 2^64); BUSY with pos set, or DYING whose
 * consumer is dead, whose slot no longer carries pos.  Every free is a CAS from the exact st read
 * (owner and gen), so a block freed and taken again meanwhile is never
 * freed twice, and a consumer only frees blocks no sweep may free (its
 * slot is claimed, or its DYING owner is alive).
 * What a kill can still leak: a chunk between shmq__region_alloc and its
 * link, or the bytes a grow took from the heap before the chunk's size took
 * them in (the region's heap cannot take blocks back); the chaos test
 * counts chunks apart from blocks.
 */
/* The longest message a put takes (the largest region). */
#define SHMQ__QUEUE_LARGE_MAX ((uint64_t)1 << 40)
#define SHMQ__QLARGE_CHUNK_MAGIC UINT32_C(0x4b4e4851) /* "QHNK" */
#define SHMQ__QLARGE_CHUNK_MIN   ((uint64_t)1 << 20)
#define SHMQ__QLARGE_POS_NONE    UINT64_MAX
#define SHMQ__QLARGE_LOCK_BYTES  128u /* shmq_lock_footprint() */
enum { SHMQ__QLARGE_FREE = 0, SHMQ__QLARGE_BUSY = 1, SHMQ__QLARGE_DYING = 2 };

struct shmq__qlarge_chunk {
	uint8_t lock[SHMQ__QLARGE_LOCK_BYTES]; /* a placed shmq_lock */
	uint32_t magic;
	uint32_t pad0;
	uint64_t size;  /* bytes of the chunk, this header included */
	uint64_t next;  /* region offset of the next chunk, 0 at the end */
	uint64_t queue; /* region offset of the ring's control block */
	uint8_t pad1[32];
};
_Static_assert(sizeof(struct shmq__qlarge_chunk) == 192, "qlarge chunk header");

struct shmq__qlarge_block {
	uint64_t st;   /* Protocol QLARGE */
	uint64_t size; /* bytes of the block, header included */
	uint64_t pos;  /* the position carrying it, POS_NONE before the claim */
	uint64_t len;  /* message bytes */
	uint8_t pad[32];
};
_Static_assert(sizeof(struct shmq__qlarge_block) == 64, "qlarge block header");

/* A large slot's data.  len first: the ring reads it (Large slots). */
struct shmq__qlarge_desc {
	uint64_t len;
	uint64_t off; /* region offset of the block header */
	uint64_t st;  /* the block's st when it was published */
};

struct shmq__mpmc;
struct shmq__obj_stat;

/* Put msg (len > max_msg) as a large message: the attempt of a blocking
 * put (-EAGAIN with *blk: the ring is full).  *off keeps the block between
 * attempts (0 before the first, which waits for a chunk's lock until
 * deadline, the put's one for the whole call: -ETIMEDOUT, *blk untouched,
 * when a holder keeps it; a deadline already passed, SHMQ_NOWAIT's, polls
 * a short while, then tries once); the caller ends with shmq__qlarge_drop
 * on an error other than -EAGAIN from a later attempt.  -ENOSPC when the
 * region cannot hold it (nothing changed), -EMSGSIZE without a region. */
int shmq__qlarge_put(struct shmq__mpmc *m, shmq_region *r, const void *msg, size_t len,
		     int64_t deadline, uint64_t *off, struct shmq__mpmc_block *blk,
		     void (*note)(void *arg, uint64_t pos), void *note_arg);
void shmq__qlarge_drop(struct shmq__mpmc *m, shmq_region *r, uint64_t off);
/* Take the message at head, large or small, into buf (cap bytes): its
 * length, -EMSGSIZE (it stays; *need, if not NULL, gets its length),
 * -EAGAIN (*blk), -EBADMSG (a descriptor that fails its checks: the slot
 * is released), or a get's other errors. */
ssize_t shmq__qlarge_get(struct shmq__mpmc *m, shmq_region *r, void *buf, size_t cap,
			 uint64_t *need, struct shmq__mpmc_block *blk);
/* The in-place view of a held large slot (get_begin): its bytes and
 * length, or -EBADMSG (the caller commits the slot away). */
ssize_t shmq__qlarge_view(struct shmq__mpmc *m, shmq_region *r, uint64_t pos,
			  const void **msg);
/* Commit a held slot: its block too, when large. */
int shmq__qlarge_commit(struct shmq__mpmc *m, shmq_region *r, uint64_t pos);
/* Free the blocks nobody will free (Protocol QLARGE, the sweep) and merge
 * free neighbours.  The bytes still taken, or -EBADMSG, -ETIMEDOUT. */
int64_t shmq__qlarge_sweep(struct shmq__mpmc *m, shmq_region *r);
/* For shmq stat: blocks taken and their bytes, chunks and their bytes. */
void shmq__qlarge_describe(shmq_region *r, const void *ring, struct shmq__obj_stat *st);

#endif /* SHMQ__QUEUE_INT_H */
