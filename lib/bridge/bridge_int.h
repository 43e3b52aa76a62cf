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
 * Checkpoint protocol (IN), per message of stream sequence s:
 *   pending = s; put; applied = s; pending = 0      (seq_cst stores)
 * A holder killed anywhere leaves either pending == 0 (applied is exact) or
 * pending == applied + 1: that one message is in doubt (killed between the
 * put's publication and the store of applied, or before the put published).
 * The next holder puts it again and counts it (in_doubt): never lost, at
 * most one duplicate per kill, and only inside a window of a few
 * instructions.  Sequences are free-running 64-bit stream sequences.
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
#define SHMQ__BRIDGE_VERSION 1u
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
	uint64_t in_doubt;   /* messages put again after a kill inside the window */
	uint64_t rewinds;    /* consumer re-creations */
	uint32_t holder_pid; /* the holder's pid, for shmq stat (untrusted) */
	uint32_t pad0;
	/* line 1 */
	uint64_t out_incarnation; /* OUT: incarnation with an acked publish, 0: none */
	uint64_t looped;          /* OUT: messages an IN bridge brought, not published (Loops) */
	uint8_t pad1[48];         /* reserved, zero */
};
_Static_assert(sizeof(struct shmq__bridge_shared) == SHMQ__BRIDGE_OBJ_SIZE, "bridge object");

/*
 * Loops.  A bridge never re-publishes what a bridge of the same region
 * brought in.  Per queue (and incarnation) one object
 * "bridge.loop.<incarnation hex>.<queue>": a header and one mark word per
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
