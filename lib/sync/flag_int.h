/* SPDX-License-Identifier: MIT */
/*
 * Private: the shared layout of a flag (Python's Event), a layer 2 primitive.
 *
 * word: bit 0 SET; bits 1..30 the epoch, the number of clear -> set moves
 * modulo 2^30; bit 31 is never set by us (a word with it set is corrupt:
 * -EBADMSG).  A waiter that saw the word w clear is released by any word
 * whose epoch differs from w's, set or not: a set followed at once by a
 * clear still moved the epoch, so no clear/set race loses a wake-up.  The
 * epoch wraps after 2^30 sets: a waiter could only miss a wake-up if exactly
 * that many set/clear pairs ran while it slept, which the futex's own check
 * of the word makes impossible in practice (every set wakes it first).
 *
 * sleepers: waiters inside futex_wait (core/wait_int.h protocol), so a set
 * with nobody asleep makes no system call; sleeper_ids lists them, so that
 * a set whose wake woke nobody takes back the counts of dead ones.
 */
#ifndef SHMQ__FLAG_INT_H
#define SHMQ__FLAG_INT_H

#include <stddef.h>
#include <stdint.h>

#include "core/compiler_int.h"
#include "core/wait_int.h"

#define SHMQ__FLAG_MAGIC   0x464c4147u /* "FLAG" */
#define SHMQ__FLAG_VERSION 1u
#define SHMQ__FLAG_SET     0x1u
#define SHMQ__FLAG_EPOCH   0x2u        /* one step of the epoch */
#define SHMQ__FLAG_BAD     0x80000000u /* never written by us */

struct shmq__flag_shm {
	/* line 0: the flag itself */
	uint32_t word;     /* futex word; see above */
	uint32_t sleepers; /* waiters inside futex_wait */
	uint32_t magic;    /* SHMQ__FLAG_MAGIC once initialised; read-only after */
	uint32_t version;  /* SHMQ__FLAG_VERSION; read-only after init */
	/* owner ids of sleepers ("Listed sleepers", core/wait_int.h); zero in
	 * flags of older 0.2 builds, whose sleepers count in sleepers alone */
	uint32_t sleeper_ids[SHMQ__SLEEPER_LIST];
	uint8_t pad0[SHMQ__CACHELINE - 16 - 4 * SHMQ__SLEEPER_LIST];
	/* line 1: statistics, written only next to a futex system call */
	uint64_t waits; /* futex waits entered by waiters */
	uint64_t wakes; /* futex wakes issued by setters */
	uint8_t pad1[SHMQ__CACHELINE - 16];
};
_Static_assert(sizeof(struct shmq__flag_shm) == 2 * SHMQ__CACHELINE, "flag is two lines");
_Static_assert(offsetof(struct shmq__flag_shm, word) == 0, "word first");
SHMQ__LINE_ALIGNED_FIELD(struct shmq__flag_shm, waits);

#endif /* SHMQ__FLAG_INT_H */
