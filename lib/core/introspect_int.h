/* SPDX-License-Identifier: MIT */
/*
 * Private: describing a live object for the `shmq` tool.
 *
 * shmq__obj_describe() turns one directory object (type, checked memory and
 * size, as shmq__obj_walk hands them out) into a list of key/value facts
 * (struct shmq__obj_stat, <shmq/introspect.h>, which also lists the
 * well-known keys): queue depth and capacity, sleeping waiters, the holder of
 * a lock, a barrier's generation.  Each object kind has one describer, named
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
 * The waits / wakes counters come from shmq__count_event (core/wait_int.h).
 */
#ifndef SHMQ__INTROSPECT_H
#define SHMQ__INTROSPECT_H

#include <stdbool.h>
#include <stdint.h>

#include <shmq/introspect.h>

#include "core/objkind_int.h"
#include "core/region_int.h"

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

/* Blobs with a layout of their own, recognised by the blob describer: a
 * libshmq-bridge checkpoint (defined in bridge/export.c, which libshmq
 * compiles; it checks the checkpoint's magic and size and says false for
 * any other blob, adding nothing). */
bool shmq__bridge_blob_describe(shmq_region *r, const void *mem, uint64_t size,
				struct shmq__obj_stat *st);

#endif /* SHMQ__INTROSPECT_H */
