/* SPDX-License-Identifier: MIT */
/*
 * Private: the shared layout of a semaphore (Python's Semaphore and
 * BoundedSemaphore), a layer 2 primitive.
 *
 * word: the value, 0..max; a word above max (or above SHMQ__SEM_VALUE_MAX)
 * is corrupt: -EBADMSG.  Acquire is a CAS v -> v - 1 with v > 0; release a
 * CAS v -> v + n with v + n <= max, then a wake of up to n sleepers through
 * the core/wait_int.h sleeper count.
 *
 * undo[]: with SHMQ_SEM_UNDO, an entry per process that holds units (owner
 * id, the process's attachment to the region) counting the units it
 * acquired and has not released.
 *
 * Protocol SEM_UNDO: an entry is one 64-bit word, (owner, held), changed
 * only by CAS of the whole word, so a count and its owner change together:
 *   claim    (0, 0) -> (self, n)          by the process, as it counts its
 *                                          first units
 *   count    (self, c) -> (self, c + n)   by the process
 *   uncount  (self, c) -> (self, c - n), or -> (0, 0) when that leaves 0:
 *                                          the owner gives the entry back
 *   reclaim  (dead, c) -> (0, 0)          by a waiter that found the owner
 *                                          dead; it then gives c units back
 * So an owned entry always holds units (held >= 1), and -ENOSPC means that
 * every entry names a live process that holds some.  A process's threads
 * race only with each other on its entry, and a CAS that lost to one of
 * them (a count, or the entry given back) sees the change and retries; a
 * reclaimer's CAS from exactly the (dead, c) it judged fails if another
 * reclaimer freed the entry first, whoever claimed it since.  The units
 * themselves are ordered by the value word, never by an entry: the entry
 * CASes need no order of their own.  Normally a process has one entry; two
 * of its threads claiming at once may make it two, and its count is the sum.
 * An acquire takes the unit before counting it and a release uncounts
 * before giving back, so a process killed between the two steps loses that
 * one unit rather than ever granting one twice.
 *
 * The bytes are those of layout 1's {owner, held} pair (same offsets on
 * either byte order), and an owner giving its entry back writes the free
 * state every other version reads as free: libraries of the earlier
 * protocol (which never gave entries back, and reclaimed through an owner
 * of SHMQ__SEM_UNDO_RECLAIMING) work on the same semaphore.
 */
#ifndef SHMQ__SEM_INT_H
#define SHMQ__SEM_INT_H

#include <stddef.h>
#include <stdint.h>

#include "core/compiler_int.h"
#include "core/wait_int.h"

#define SHMQ__SEM_MAGIC      0x53454d41u /* "SEMA" */
#define SHMQ__SEM_VERSION    1u
#define SHMQ__SEM_VALUE_MAX  0x7fffffffu
#define SHMQ__SEM_UNDO_SLOTS 128u        /* processes holding units at once */

/* Written by an earlier protocol's reclaimer while it gave a dead owner's
 * units back: no owner id (ids are below 2^31).  Skipped: one killed in
 * those few instructions left the entry unusable, never a unit twice. */
#define SHMQ__SEM_UNDO_RECLAIMING 0xffffffffu

struct shmq__sem_undo {
	union {
		struct {
			uint32_t owner; /* owner id of the process, 0: free */
			uint32_t held;  /* units it acquired and has not released;
					 * may pass max (a consumer), saturates at
					 * UINT32_MAX; the reclaim gives back <= max */
		};
		uint64_t pair; /* both: every atomic goes through it (Protocol SEM_UNDO) */
	};
};
_Static_assert(sizeof(struct shmq__sem_undo) == 8 &&
	       offsetof(struct shmq__sem_undo, held) == 4, "undo: layout 1's pair");

/* The pair word of (owner, held), and its halves: the struct's fields on
 * either byte order. */
static inline uint64_t shmq__sem_undo_pair(uint32_t owner, uint32_t held)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return (uint64_t)held << 32 | owner;
#else
	return (uint64_t)owner << 32 | held;
#endif
}

static inline uint32_t shmq__sem_undo_owner(uint64_t pair)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return (uint32_t)pair;
#else
	return (uint32_t)(pair >> 32);
#endif
}

static inline uint32_t shmq__sem_undo_held(uint64_t pair)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return (uint32_t)(pair >> 32);
#else
	return (uint32_t)pair;
#endif
}

struct shmq__sem_shm {
	/* line 0: the semaphore itself, and what attach reads once */
	uint32_t word;     /* futex word: the value */
	uint32_t sleepers; /* waiters inside futex_wait */
	uint32_t magic;    /* SHMQ__SEM_MAGIC once initialised; read-only after */
	uint32_t version;  /* SHMQ__SEM_VERSION; read-only after init */
	uint32_t max;      /* 1..SHMQ__SEM_VALUE_MAX; read-only after init */
	uint32_t flags;    /* SHMQ_SEM_UNDO or 0; read-only after init */
	/* owner ids of sleepers ("Listed sleepers", core/wait_int.h); zero in
	 * semaphores of older 0.2 builds, whose sleepers count in sleepers alone */
	uint32_t sleeper_ids[SHMQ__SLEEPER_LIST];
	uint8_t pad0[SHMQ__CACHELINE - 24 - 4 * SHMQ__SLEEPER_LIST];
	/* line 1: statistics, written only next to a futex system call, and
	 * the units given back for dead processes */
	uint64_t waits;    /* futex waits entered by acquirers */
	uint64_t wakes;    /* futex wakes issued by releasers */
	uint64_t undone;   /* units given back for processes that died */
	uint64_t scan_at;  /* SHMQ_SEM_UNDO: when the next full look for dead holders
			    * is due (sync/spin_int.h, shmq__sync_scan_due); 0 in
			    * semaphores of older 0.2 builds */
	uint8_t pad1[SHMQ__CACHELINE - 32];
	/* lines 2..: SHMQ_SEM_UNDO entries */
	struct shmq__sem_undo undo[SHMQ__SEM_UNDO_SLOTS];
};
_Static_assert(offsetof(struct shmq__sem_shm, word) == 0, "word first");
SHMQ__LINE_ALIGNED_FIELD(struct shmq__sem_shm, waits);
SHMQ__LINE_ALIGNED_FIELD(struct shmq__sem_shm, undo);
_Static_assert(sizeof(struct shmq__sem_shm) % SHMQ__CACHELINE == 0, "whole lines");

#endif /* SHMQ__SEM_INT_H */
