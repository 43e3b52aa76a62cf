/* SPDX-License-Identifier: MIT */
/*
 * Private: layer bridge, the checkpoint object a bridge keeps in its region.
 *
 * One object per bridge name (shmq_region_alloc, SHMQ__BRIDGE_OBJ_SIZE
 * bytes), written only by the bridge that holds the region lock
 * "<name>.hold"; read by the next holder (after the lock handed over, which
 * orders it) and by `shmq stat`.  Everything in it is untrusted: magic and
 * version are checked (-EBADMSG), the sequence words decide no copy and no
 * loop bound.
 *
 * Checkpoint protocol (IN), per message of stream sequence s (seq_cst
 * stores, in this order):
 *   pending_pos = 0; pending = s;
 *   put: claim position p, note: pending_pos = p + 1, publish p;
 *   applied = s; pending = 0
 * pos_incarnation, stored at every start before the first put, names the
 * queue incarnation pending_pos belongs to.  A holder killed anywhere
 * leaves either pending != applied + 1 (applied is exact) or pending ==
 * applied + 1 with pending_pos 0 (killed before the note: the put, if it
 * claimed a slot, never published, since the note comes first) or p + 1.
 * For p the next holder asks the queue what became of the claim
 * (shmq__bridge_queue_put_fate, i.e. shmq__mpmc_put_fate): published
 * (even if consumed since) -> applied = s, nothing put again; never
 * published (still WRITING by the dead holder, or skipped by whoever waited
 * behind it) -> s is put again.  The slot is the witness, in the one atomic
 * word that publishes, consumes or skips it, so the answer is exact until the
 * slot's next lap is claimed (other producers putting a whole capacity of
 * messages before the next holder starts) or the queue was made again.
 * Only what stays undecidable - that, a corrupt slot or checkpoint, a
 * producer still alive after a bounded wait - is put again and counted in
 * in_doubt: at least once in those cases, never lost.  Sequences are
 * free-running 64-bit stream sequences.
 *
 * Version 1 (before pending_pos): read and upgraded in place by the next
 * holder; a pending message it left is in doubt as version 1 promised.
 *
 * OUT: out_incarnation is the queue incarnation of which JetStream acked a
 * message, stored with the first ack (before any commit).  A stream whose last
 * message carries another id is "empty of ours" only while it differs from
 * the queue's incarnation now (see out_last in bridge.c).
 */
#ifndef SHMQ__BRIDGE_INT_H
#define SHMQ__BRIDGE_INT_H

#include <stdint.h>

#define SHMQ__BRIDGE_MAGIC   0x42524447u /* "BRDG" */
/* 2: pending_pos and pos_incarnation (IN exactly once); version 1 objects
 * are upgraded by the holder (bridge.c, shared_attach), newer ones refused
 * with -EPROTO */
#define SHMQ__BRIDGE_VERSION 2u
#define SHMQ__BRIDGE_VERSION_1 1u
#define SHMQ__BRIDGE_OBJ_SIZE 128u

struct shmq__bridge_shared {
	/* line 0: identity and the checkpoint, written by the holder */
	uint32_t magic;
	uint32_t version;
	uint32_t dir;        /* SHMQ_BRIDGE_IN or _OUT, fixed at first create */
	uint32_t state;      /* enum shmq_bridge_state, for shmq stat */
	uint64_t applied;    /* IN: last stream sequence put; OUT: last position acked */
	uint64_t pending;    /* IN: stream sequence being put now, 0: none */
	uint64_t read;       /* IN: last stream sequence fetched; OUT: last position read */
	uint64_t in_doubt;   /* IN: messages put again whose fate was undecidable */
	uint64_t rewinds;    /* consumer re-creations */
	uint32_t holder_pid; /* the holder's pid, for shmq stat (untrusted) */
	uint32_t pad0;
	/* line 1 */
	uint64_t out_incarnation; /* OUT: incarnation with an acked publish, 0: none */
	uint64_t looped;          /* OUT: messages an IN bridge brought, not published (Loops) */
	uint64_t pending_pos;     /* IN: queue position of pending's put + 1, 0: not claimed yet */
	uint64_t pos_incarnation; /* IN: the queue incarnation of pending_pos (version 2) */
	uint8_t pad1[32];         /* reserved, zero */
};
_Static_assert(sizeof(struct shmq__bridge_shared) == SHMQ__BRIDGE_OBJ_SIZE, "bridge object");

/*
 * Loops.  A bridge never re-publishes what a bridge of the same region
 * brought in.  Per queue (and incarnation) one object
 * "bridge.loop.<incarnation hex>.<queue>" (for a queue name too long for
 * that, "bridge.loop.<incarnation hex>.h<FNV-1a of the name, hex>"; the
 * random incarnation alone already tells queues apart): a header and one mark word per
 * slot of the ring (slots = the queue's capacity).  An IN bridge puts with
 * shmq__queue_put_noted and, between the claim of position p and its
 * publication, raises mark[p % slots] to p + 1 (marks only grow).  An OUT
 * bridge holding p (two-phase get) commits it without a publish when
 * mark[p % slots] == p + 1.  Exact: the ring cannot claim p + slots before
 * p's slot is freed, by the OUT bridge's commit, so while p is held no other
 * lap writes the word.  Crash-safe: a kill before the mark leaves p
 * unclaimed or skipped, never published unmarked.  Bounded: 8 bytes per
 * slot; a mark is forgotten when its slot's next lap is noted.  Local
 * producers never write marks, so their messages always go out.  A mark is
 * only compared for equality with a position we hold: a corrupt word makes
 * one message go out or stay, never a copy or a loop bound.
 */
#define SHMQ__BRIDGE_LOOP_MAGIC 0x504f4f4cu /* "LOOP" */

struct shmq__bridge_loop {
	uint32_t magic;
	uint32_t slots;     /* checked against the queue's capacity */
	uint8_t pad[56];
	uint64_t mark[];    /* slots words: last noted position + 1, 0: none */
};
_Static_assert(sizeof(struct shmq__bridge_loop) == 64, "loop header");

#endif /* SHMQ__BRIDGE_INT_H */
