/* SPDX-License-Identifier: MIT */
/*
 * Private: describing a live object for the `shmq` tool.
 *
 * shmq__obj_describe() turns one directory object (type, checked memory and
 * size, as shmq__obj_walk hands them out) into a list of key/value facts:
 * queue depth and capacity, sleeping waiters, the holder of a lock, a
 * barrier's generation.  Each object kind has one describer, named
 * in the kind table (core/objkind_int.h, which declares it below) and defined
 * in the kind's own module, the only one that knows its layout.
 *
 * Rules for a describer:
 *  - read only: the memory may be mapped PROT_READ (shmq__region_observe), so
 *    never write, never take a lock, never wait, never wake;
 *  - trust nothing: every word may be torn, stale or corrupt; an impossible
 *    value sets st->status = -EBADMSG and is reported as read, never used as
 *    an index or length without a range check;
 *  - loads go through core/atomic_int.h (relaxed is enough: a snapshot, no ordering);
 *  - "bytes" (the object's size) is already there: add what the layout says.
 *
 * Well-known keys, which `shmq watch` turns into rates and `shmq stat` into its
 * summary column: "depth" and "capacity" (with "unit": "msgs" or "bytes"),
 * "msgs_in" and "msgs_out" (free-running counters), "sleepers", "shutdown",
 * "closed", "broken", "holder_pid", "holder_alive", "parties", "waiting",
 * "generation", "waits" and "wakes" (free-running counters of the futex waits
 * the object's callers entered and of the futex wakes issued for them; see
 * shmq__count_event in core/wait_int.h).  Any other key is printed as is.
 */
#ifndef SHMQ__INTROSPECT_H
#define SHMQ__INTROSPECT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/objkind_int.h"
#include "core/region_int.h"

#define SHMQ__STAT_KEYS 64
#define SHMQ__STAT_KEY_MAX 24
#define SHMQ__STAT_STR_MAX 64

enum shmq__stat_kind {
	SHMQ__STAT_U64 = 0,
	SHMQ__STAT_I64 = 1,
	SHMQ__STAT_BOOL = 2,
	SHMQ__STAT_STR = 3,
};

struct shmq__stat_kv {
	char key[SHMQ__STAT_KEY_MAX];
	uint32_t kind;      /* enum shmq__stat_kind */
	uint64_t u;         /* U64, BOOL (0 / 1) */
	int64_t i;          /* I64 */
	char s[SHMQ__STAT_STR_MAX]; /* STR */
};

struct shmq__obj_stat {
	uint32_t type;
	int status;         /* 0, or -EBADMSG: some word was impossible (facts kept) */
	unsigned n;         /* facts in kv[] */
	struct shmq__stat_kv kv[SHMQ__STAT_KEYS];
};

/*
 * Describe one object.  0 (st->status may still be -EBADMSG), -EINVAL for a
 * bad argument.  Any thread or process, at any time, concurrently with the
 * object's users.
 */
int shmq__obj_describe(shmq_region *r, uint32_t type, const void *mem, uint64_t size,
		       struct shmq__obj_stat *st);

/* Append one fact (silently dropped when kv[] is full). */
void shmq__stat_u64(struct shmq__obj_stat *st, const char *key, uint64_t v);
void shmq__stat_i64(struct shmq__obj_stat *st, const char *key, int64_t v);
void shmq__stat_bool(struct shmq__obj_stat *st, const char *key, bool v);
void shmq__stat_str(struct shmq__obj_stat *st, const char *key, const char *v);

/* a + b for counters read from shared memory, saturating: untrusted values
 * may be anything. */
static inline uint64_t shmq__stat_sum(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* The fact called key, or NULL. */
const struct shmq__stat_kv *shmq__stat_get(const struct shmq__obj_stat *st, const char *key);

/* Append "<prefix>_pid" and "<prefix>_alive" for an owner id read from an
 * object (0: nobody; nothing appended).  An id that cannot be valid sets
 * st->status = -EBADMSG. */
void shmq__stat_owner(struct shmq__obj_stat *st, shmq_region *r, const char *prefix, uint32_t id);

/*
 * The describers, one per kind, declared from the kind table; each module
 * defines its own (the lock's in sync/lock.c, the queue's in chan/queue.c, the
 * pool's in pool/pool.c, the blob's in core/introspect.c).  What each one
 * reports is written above its definition, except the pool's:
 *
 * state ("running", "closing", "exited", "terminated"), closed, workers,
 * workers_alive, jobs in flight, tasks_queued and tasks_running (map elements
 * of unclaimed and of claimed chunks), tasks, steals, restarts, sleepers (idle
 * workers), the creator, then per worker i, as many as the fact list holds
 * (workers_listed): wI_pid, wI_alive, wI_tasks, wI_steals, wI_restarts,
 * wI_queued (words on its deque).
 */
typedef void (*shmq__obj_describe_fn)(shmq_region *r, const void *mem, uint64_t size,
				      struct shmq__obj_stat *st);
#define SHMQ__OBJ_DESCRIBER_(K, name, id, min, align, fn)                                           \
	void fn(shmq_region *r, const void *mem, uint64_t size, struct shmq__obj_stat *st);
SHMQ__OBJ_KINDS(SHMQ__OBJ_DESCRIBER_)
#undef SHMQ__OBJ_DESCRIBER_

#endif /* SHMQ__INTROSPECT_H */
