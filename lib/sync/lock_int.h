/* SPDX-License-Identifier: MIT */
/*
 * Private: the shared layout of a lock and of a barrier (layer 2 primitives).
 *
 * Both are position independent (no pointers inside) and take two cache
 * lines each, so a lock can be embedded anywhere, and they are reached through the
 * placement API (shmq_X_footprint / shmq_X_init / shmq_X_attach) or by name
 * from a region.  Nothing read from them is trusted: an impossible word gives
 * -EBADMSG.
 */
#ifndef SHMQ__LOCK_IMPL_H
#define SHMQ__LOCK_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "core/compiler_int.h"
#include "core/wait_int.h"

/* ---- lock ---------------------------------------------------------------
 *
 * word: 0 when free; otherwise the holder's owner id (shmq__region_self(),
 * nonzero, below 2^31) with SHMQ__LOCK_CONTENDED set once any waiter may be
 * asleep on the futex.  This is the three-state mutex of Drepper's "Futexes
 * are tricky" (0 / locked / locked-and-contended) with "locked" spelled as
 * the holder's owner id, so a waiter knows whose liveness to check.
 *
 * tag: the holder's thread identity, (owner id << 32) | thread key, written
 * by the holder after it takes the word and cleared before it releases it.
 * Only the EDEADLK / EPERM checks read it; its owner-id half keeps a stale
 * tag left by a dead process from matching any live thread.  EDEADLK also
 * matches our thread key under another owner id of our own process (another
 * region open: the process table lists it with our pid and start time).
 *
 * waits, wakes: statistics for `shmq stat` (core/wait_int.h, shmq__count_event): the
 * futex waits acquirers entered and the futex wakes releasers issued.  They
 * have line 1 to themselves, so the uncontended acquire and release, which
 * write line 0 only, never touch them.
 */
#define SHMQ__LOCK_MAGIC     0x4c4f434bu /* "LOCK" */
#define SHMQ__LOCK_CONTENDED 0x80000000u
#define SHMQ__LOCK_ID_MASK   0x7fffffffu

struct shmq__lock_shm {
	/* line 0: the lock itself */
	uint32_t word;  /* futex word; see above */
	uint32_t magic; /* SHMQ__LOCK_MAGIC once initialised; read-only after */
	uint64_t tag;   /* holder's thread tag, 0 when free */
	uint8_t pad0[SHMQ__CACHELINE - 16];
	/* line 1: statistics, written only next to a futex system call */
	uint64_t waits; /* futex waits entered by acquirers */
	uint64_t wakes; /* futex wakes issued by releasers */
	uint8_t pad1[SHMQ__CACHELINE - 16];
};
_Static_assert(sizeof(struct shmq__lock_shm) == 2 * SHMQ__CACHELINE, "lock is two lines");
_Static_assert(offsetof(struct shmq__lock_shm, word) == 0, "word first");
SHMQ__LINE_ALIGNED_FIELD(struct shmq__lock_shm, waits);

/* ---- barrier ------------------------------------------------------------
 *
 * One 32-bit futex word holds the whole state, so an arrival is one CAS and
 * completing a generation is one CAS plus one wake of everybody:
 *
 *   bits  0..15  count: parties arrived in the current generation (< parties)
 *   bit   16     BROKEN: a waiter timed out, or abort was called
 *   bit   17     RESET: the generation before this one ended by reset
 *   bits 18..31  generation, free running modulo 2^14
 *
 * A waiter of generation g is released when the generation field moves on;
 * it passed unless the word it sees is generation g + 1 with RESET set, or
 * a later one and the cut record says g.  RESET describes only the one
 * generation before the current one, and after a reset other threads or
 * processes may complete generation g + 1 before a waiter cut short runs
 * again (Protocol BARRIER_CUT: `cut` keeps the last generations that resets
 * cut short, 16 bits each, g | CUT_VALID at slot g % 4; whoever moves the
 * generation on from a word with RESET set records the one before it,
 * before its CAS, so a waiter that sees a later word sees the record).  The
 * generation wraps after 16384 completions, which other threads can pass
 * while a waiter does not run (a barrier of fewer parties than threads); a
 * waiter that finds its own generation field again knows it came round by
 * a count below the one it last saw (counts never fall within one
 * generation).  It could only misread a field that came round to a count
 * as high as the one it saw (then the end of that generation releases it,
 * late, or its deadline breaks that one), or, for a cut one, four more
 * resets that cut generations of its slot meanwhile.
 */
/* The magic is "BAR" and a layout tag: 'R' for the 0.1 layout (no party
 * table), '2' for this one.  A magic of another tag is ours at another
 * layout: -EPROTO.  (0.1 libraries compare the whole magic, so they refuse
 * layout 2 as -EBADMSG.) */
#define SHMQ__BARRIER_MAGIC      0x42415232u /* "BAR2" */
#define SHMQ__BARRIER_MAGIC_ANY  0x42415200u /* "BAR" and any tag */
#define SHMQ__BARRIER_TAG_MASK   0xffu
#define SHMQ__BARRIER_COUNT_MASK 0xffffu
#define SHMQ__BARRIER_BROKEN     0x10000u
#define SHMQ__BARRIER_RESET      0x20000u
#define SHMQ__BARRIER_GEN_SHIFT  18u
#define SHMQ__BARRIER_GEN_ONE    (1u << SHMQ__BARRIER_GEN_SHIFT)
#define SHMQ__BARRIER_MAX_PARTIES SHMQ__BARRIER_COUNT_MASK

/*
 * Parties (layout 2): a named barrier is followed by nslots 64-bit entries,
 * (owner id << 32) | handles: the processes that have waited on it, each
 * with the number of its handles that have.  After each whole slice one
 * sleeping waiter (shmq__sync_scan_due, sync/spin_int.h: scan_at) checks
 * the owners' liveness for all of them; a dead one breaks the generation
 * (BROKEN, as a timeout does) and its entry is cleared, so that reset
 * works afterwards.  The last handle of a process to close clears its
 * entry: a process that leaves cleanly breaks nothing.  Placed barriers
 * (shmq_barrier_init) have no region to name owners: nslots is 0.
 */
#define SHMQ__BARRIER_SLOTS_MAX 1024u

/*
 * Line 0 holds what attach reads once (magic, parties) and the statistics
 * for `shmq stat` (core/wait_int.h, shmq__count_event): the futex waits waiters
 * entered and the futex wakes issued for them.  Arrivals work on line 1 and
 * the handle's copy of parties only, so they never touch line 0.
 */
struct shmq__barrier_shm {
	/* line 0: cold */
	uint32_t magic;    /* SHMQ__BARRIER_MAGIC; read-only after init */
	uint32_t parties;  /* 1..SHMQ__BARRIER_MAX_PARTIES; read-only after init */
	uint64_t waits;    /* futex waits entered by waiters */
	uint64_t wakes;    /* futex wakes issued for them */
	uint32_t nslots;   /* party entries after this struct; read-only after init */
	uint32_t broke_dead; /* generations broken for a dead party (statistics) */
	uint64_t scan_at;  /* when the next scan of the parties is due (sync/spin_int.h,
			    * shmq__sync_scan_due); 0 in barriers of older 0.2 builds */
	uint8_t pad0[SHMQ__CACHELINE - 40];
	/* line 1: the barrier itself */
	uint32_t word;     /* futex word; see above */
	uint32_t sleepers; /* waiters inside futex_wait (core/wait_int.h protocol) */
	uint64_t cut;      /* generations reset cut short (Protocol BARRIER_CUT) */
	/* owner ids of sleepers ("Listed sleepers", core/wait_int.h); zero in
	 * barriers of older 0.2 builds, whose sleepers count in sleepers alone */
	uint32_t sleeper_ids[SHMQ__SLEEPER_LIST];
	uint8_t pad1[SHMQ__CACHELINE - 16 - 4 * SHMQ__SLEEPER_LIST];
};
SHMQ__LINE_ALIGNED_FIELD(struct shmq__barrier_shm, word);
_Static_assert(sizeof(struct shmq__barrier_shm) == 2 * SHMQ__CACHELINE, "barrier is two lines");

#endif /* SHMQ__LOCK_IMPL_H */
