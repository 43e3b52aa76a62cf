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

#endif /* SHMQ__QUEUE_INT_H */
