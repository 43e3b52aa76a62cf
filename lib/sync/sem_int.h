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
 * undo[]: with SHMQ_SEM_UNDO, one entry per process (owner id, the
 * process's attachment to the region) counting the units it acquired and
 * has not released.  A process updates only its own entry; a waiter that
 * slept a slice asks the process table about every entry that holds units,
 * and gives a dead owner's units back (exchange held -> 0 first, so two
 * such waiters never both give them back, then owner -> 0, freeing the
 * entry).  An acquire takes the unit before counting it and a release
 * uncounts before giving back, so a process killed between the two steps
 * loses that one unit rather than ever granting one twice.
 */
#ifndef SHMQ__SEM_INT_H
#define SHMQ__SEM_INT_H

#include <stddef.h>
#include <stdint.h>

#include "core/compiler_int.h"

#define SHMQ__SEM_MAGIC      0x53454d41u /* "SEMA" */
#define SHMQ__SEM_VERSION    1u
#define SHMQ__SEM_VALUE_MAX  0x7fffffffu
#define SHMQ__SEM_UNDO_SLOTS 128u        /* processes holding units at once */

struct shmq__sem_undo {
	uint32_t owner; /* owner id of the process, 0: free */
	uint32_t held;  /* units it acquired and has not released */
};

struct shmq__sem_shm {
	/* line 0: the semaphore itself, and what attach reads once */
	uint32_t word;     /* futex word: the value */
	uint32_t sleepers; /* waiters inside futex_wait */
	uint32_t magic;    /* SHMQ__SEM_MAGIC once initialised; read-only after */
	uint32_t version;  /* SHMQ__SEM_VERSION; read-only after init */
	uint32_t max;      /* 1..SHMQ__SEM_VALUE_MAX; read-only after init */
	uint32_t flags;    /* SHMQ_SEM_UNDO or 0; read-only after init */
	uint8_t pad0[SHMQ__CACHELINE - 24];
	/* line 1: statistics, written only next to a futex system call, and
	 * the units given back for dead processes */
	uint64_t waits;    /* futex waits entered by acquirers */
	uint64_t wakes;    /* futex wakes issued by releasers */
	uint64_t undone;   /* units given back for processes that died */
	uint8_t pad1[SHMQ__CACHELINE - 24];
	/* lines 2..: SHMQ_SEM_UNDO entries */
	struct shmq__sem_undo undo[SHMQ__SEM_UNDO_SLOTS];
};
_Static_assert(offsetof(struct shmq__sem_shm, word) == 0, "word first");
SHMQ__LINE_ALIGNED_FIELD(struct shmq__sem_shm, waits);
SHMQ__LINE_ALIGNED_FIELD(struct shmq__sem_shm, undo);
_Static_assert(sizeof(struct shmq__sem_shm) % SHMQ__CACHELINE == 0, "whole lines");

#endif /* SHMQ__SEM_INT_H */
