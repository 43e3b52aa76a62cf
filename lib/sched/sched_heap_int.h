/* SPDX-License-Identifier: MIT */
/*
 * Private: the scheduler's timer queue.
 *
 * Events live in a slab of slots addressed by index (freed slots are reused
 * last-in first-out); a 4-ary min-heap of 16-byte entries (deadline,
 * priority, slot) orders them, a node's four children filling one cache
 * line.  Each slot stores its entry's position in the heap, so cancel
 * removes an event in O(log n) without searching.  Order is Python's sched order: deadline,
 * then priority (lower first), then entry sequence (a 64-bit counter kept in
 * the slot and only consulted on a full tie).
 *
 * A handle names a slot and the slot's generation, packed in one word:
 * bits 0..31 = slot index + 1 (never 0), bits 32..63 = generation (odd).  A
 * slot's generation is bumped when it is allocated and when it is freed, so a
 * handle to an event that ran or was cancelled no longer matches.  A slot
 * whose generation wraps (after 2^31 reuses: freed slots are reused LIFO, so
 * a loop of enter + cancel reaches it in minutes) is retired instead of
 * freed, so a stale handle never matches again, for the scheduler's life.
 *
 * The per-slot state is split: 8 hot bytes (heap position, generation) that
 * cancel and every sift touch, and the cold rest (sequence, action,
 * period) that only enter, run and full ties touch, so that at 10^6 pending
 * events the hot arrays stay small.  Large arrays ask for transparent huge
 * pages (fewer TLB misses on random cancels).
 *
 * Not thread safe: the scheduler's mutex guards every call.
 */
#ifndef SHMQ__SCHED_HEAP_H
#define SHMQ__SCHED_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <shmq/sched.h>

#define SHMQ__HEAP_ARITY 4

/* What cancel and every heap move touch, 8 bytes per event (hot). */
struct shmq__slot_hot {
	uint32_t heap_pos; /* position in the heap; when free: the next free slot + 1 */
	uint32_t gen;      /* odd while in use; bumped on alloc and on free */
};

/* What enter writes and run reads (cold). */
struct shmq__slot {
	uint64_t seq;      /* entry order, the last tie breaker */
	shmq_action_fn fn;
	void *arg;
	int64_t period;    /* 0: one shot; > 0: periodic, deadline = base + k * period */
	int64_t base;      /* periodic: the first deadline */
	uint64_t k;        /* periodic: index of the current deadline on the grid */
};

struct shmq__hent {
	int64_t when;
	int32_t prio;
	uint32_t slot;
};

struct shmq__heap {
	struct shmq__hent *ent; /* ent[0] is the head; children of i: 4i+1 .. 4i+4 */
	void *ent_mem;          /* the allocation ent points into (aligned so children share a line) */
	size_t ent_mem_size;
	uint32_t n, cap;
	struct shmq__slot_hot *hot; /* per slot, by index */
	struct shmq__slot *slots;   /* per slot, by index */
	uint32_t nslots;        /* slots ever used (slab high-water mark) */
	uint32_t slots_cap;
	uint32_t free_head;     /* first free slot + 1, 0 if none */
	uint32_t retired;       /* slots whose generation wrapped: never reused */
	uint32_t hot_cap;       /* entries of hot (>= slots_cap once both grew) */
	uint64_t next_seq;
};

void shmq__heap_init(struct shmq__heap *h);
void shmq__heap_fini(struct shmq__heap *h);

/* Make room so that n more events can be pushed without allocating. */
int shmq__heap_reserve(struct shmq__heap *h, size_t more);

/* Insert an event; *handle receives its packed handle.  -ENOMEM. */
int shmq__heap_push(struct shmq__heap *h, int64_t when, int prio, shmq_action_fn fn, void *arg,
		    int64_t period, uint64_t *handle);

/* The slot index a handle names if it is still pending, else UINT32_MAX. */
uint32_t shmq__heap_lookup(const struct shmq__heap *h, uint64_t handle);

/* Remove the pending event in slot idx and free the slot. */
void shmq__heap_cancel(struct shmq__heap *h, uint32_t idx);

/* The head's entry, or NULL when empty. */
static inline const struct shmq__hent *shmq__heap_head(const struct shmq__heap *h)
{
	return h->n ? &h->ent[0] : NULL;
}

/* The head's entry order (h not empty): pushes and periodic re-arms after a
 * moment have a sequence at or above next_seq as it was then. */
static inline uint64_t shmq__heap_head_seq(const struct shmq__heap *h)
{
	return h->slots[h->ent[0].slot].seq;
}

/*
 * Take the head event out.  A one-shot event's slot is freed (its handle goes
 * stale at once); a periodic event is put back at its next grid deadline after
 * now (missed deadlines are skipped, never run in a burst) and keeps its handle.
 * *fn, *arg, *when receive the event that is due.
 */
void shmq__heap_pop(struct shmq__heap *h, int64_t now, shmq_action_fn *fn, void **arg,
		    int64_t *when);

/* Fill out[0 .. min(n, max)) with the pending events in run order; returns n. */
size_t shmq__heap_snapshot(struct shmq__heap *h, struct shmq_event_info *out, size_t max);

/* Compare two entries in run order (< 0: a runs first). */
int shmq__heap_cmp(const struct shmq__heap *h, const struct shmq__hent *a,
		   const struct shmq__hent *b);

#endif
