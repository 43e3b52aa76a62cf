/* SPDX-License-Identifier: MIT */
/*
 * Private: the shared layout of a condition (Python's Condition, used with
 * a shmq_lock), a layer 2 primitive.
 *
 * Every waiter registers in a slot of its own before it releases the lock,
 * and sleeps on that slot's word, so a notify wakes exactly the waiters it
 * chose and no release-then-sleep window can lose one:
 *
 *   word 0                      free
 *   word id                     WAITING: a waiter of the process whose
 *                               owner id is id (nonzero, below 2^31)
 *   word id | SHMQ__COND_SIGNAL SIGNALED: a notify handed it a ticket
 *
 * The waiter claims a slot (CAS 0 -> id), releases the lock and sleeps
 * while the word is still id.  A notifier picks the oldest WAITING slot
 * (arrival), checks its owner lives, and CASes id -> id | SIGNAL before it
 * wakes that slot's sleeper (core/wait_int.h protocol on the slot's own
 * sleeper count: no system call for a waiter still spinning).  The woken
 * waiter frees the slot (store 0).  A waiter whose time runs out CASes
 * id -> 0; if that fails the ticket arrived first and it counts as woken.
 *
 * Threads of one process share the owner id; a thread knows its slot by
 * index, and any waiter of the process that sits in the slot is a fit
 * receiver for a ticket meant for it (all of them are alive).  Dead waiters:
 * a notify never hands a ticket to a slot whose owner it finds dead (it
 * frees the slot instead), and after each whole slice one sleeping waiter
 * (shmq__sync_scan_due, sync/spin_int.h) frees the
 * slots of dead owners and passes any ticket it finds there on to a live
 * waiter, so a ticket given to a process that died before it could use it
 * is not lost either.
 *
 * nwaiters counts claimed slots, so a notify with nobody waiting reads one
 * word.  It is a hint: a process killed between counting itself and
 * claiming a slot leaves it one too high, which costs a notify a scan.
 */
#ifndef SHMQ__COND_INT_H
#define SHMQ__COND_INT_H

#include <stddef.h>
#include <stdint.h>

#include "core/compiler_int.h"

#define SHMQ__COND_MAGIC   0x434f4e44u /* "COND" */
#define SHMQ__COND_VERSION 1u
#define SHMQ__COND_SIGNAL  0x80000000u
#define SHMQ__COND_ID_MASK 0x7fffffffu
#define SHMQ__COND_SLOTS   128u        /* waiters at once */

struct shmq__cond_slot {
	uint32_t word;     /* futex word; see above */
	uint32_t sleepers; /* the waiter, while inside futex_wait */
	uint32_t arrival;  /* when it registered (cond arrivals), for FIFO order */
	uint32_t pad;
};

struct shmq__cond_shm {
	/* line 0: what attach reads once, and the counters every wait bumps */
	uint32_t magic;    /* SHMQ__COND_MAGIC once initialised; read-only after */
	uint32_t version;  /* SHMQ__COND_VERSION; read-only after init */
	uint32_t nwaiters; /* claimed slots (a hint, see above) */
	uint32_t arrivals; /* free running registration counter */
	uint8_t pad0[SHMQ__CACHELINE - 16];
	/* line 1: statistics, written only next to a system call */
	uint64_t waits;    /* futex waits entered by waiters */
	uint64_t wakes;    /* futex wakes issued by notifiers */
	uint64_t reclaimed; /* slots of dead waiters freed (their tickets passed on) */
	uint64_t scan_at;  /* when the next look for dead waiters is due (sync/spin_int.h,
			    * shmq__sync_scan_due); 0 in conditions of older 0.2 builds */
	uint8_t pad1[SHMQ__CACHELINE - 32];
	/* lines 2..: the waiters */
	struct shmq__cond_slot slot[SHMQ__COND_SLOTS];
};
SHMQ__LINE_ALIGNED_FIELD(struct shmq__cond_shm, waits);
SHMQ__LINE_ALIGNED_FIELD(struct shmq__cond_shm, slot);
_Static_assert(sizeof(struct shmq__cond_shm) % SHMQ__CACHELINE == 0, "whole lines");

#endif /* SHMQ__COND_INT_H */
