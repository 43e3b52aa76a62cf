/* SPDX-License-Identifier: MIT */
/*
 * Object introspection for tools: the describer dispatch and the fact list.
 * See core/introspect_int.h for the rules a describer follows.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <shmq.h>

#include "core/atomic_int.h"
#include "core/introspect_int.h"
#include "sync/lock_int.h"
#include "ring/mpmc_int.h"
#include "core/region_int.h"

/* ---- facts ---- */

static struct shmq__stat_kv *stat_add(struct shmq__obj_stat *st, const char *key, uint32_t kind)
{
	struct shmq__stat_kv *kv;

	if (st->n >= SHMQ__STAT_KEYS)
		return NULL;
	kv = &st->kv[st->n++];
	memset(kv, 0, sizeof(*kv));
	snprintf(kv->key, sizeof(kv->key), "%s", key);
	kv->kind = kind;
	return kv;
}

void shmq__stat_u64(struct shmq__obj_stat *st, const char *key, uint64_t v)
{
	struct shmq__stat_kv *kv = stat_add(st, key, SHMQ__STAT_U64);

	if (kv)
		kv->u = v;
}

void shmq__stat_i64(struct shmq__obj_stat *st, const char *key, int64_t v)
{
	struct shmq__stat_kv *kv = stat_add(st, key, SHMQ__STAT_I64);

	if (kv)
		kv->i = v;
}

void shmq__stat_bool(struct shmq__obj_stat *st, const char *key, bool v)
{
	struct shmq__stat_kv *kv = stat_add(st, key, SHMQ__STAT_BOOL);

	if (kv)
		kv->u = v;
}

void shmq__stat_str(struct shmq__obj_stat *st, const char *key, const char *v)
{
	struct shmq__stat_kv *kv = stat_add(st, key, SHMQ__STAT_STR);

	if (kv)
		snprintf(kv->s, sizeof(kv->s), "%s", v);
}

const struct shmq__stat_kv *shmq__stat_get(const struct shmq__obj_stat *st, const char *key)
{
	for (unsigned i = 0; i < st->n && i < SHMQ__STAT_KEYS; i++)
		if (strcmp(st->kv[i].key, key) == 0)
			return &st->kv[i];
	return NULL;
}

void shmq__stat_owner(struct shmq__obj_stat *st, shmq_region *r, const char *prefix, uint32_t id)
{
	struct shmq__ptab_entry e;
	char key[SHMQ__STAT_KEY_MAX];
	int alive;

	if (id == 0)
		return;
	alive = shmq__region_id_alive(r, id);
	if (alive < 0) {
		st->status = -EBADMSG;
		snprintf(key, sizeof(key), "%s_id", prefix);
		shmq__stat_u64(st, key, id);
		return;
	}
	snprintf(key, sizeof(key), "%s_pid", prefix);
	if (shmq__region_ptab_get(r, shmq__id_slot(id), &e) == 0 &&
	    e.gen == id >> SHMQ__ID_SLOT_BITS)
		shmq__stat_i64(st, key, (int64_t)e.pid);
	else
		shmq__stat_i64(st, key, 0); /* the slot was since released or reused */
	snprintf(key, sizeof(key), "%s_alive", prefix);
	shmq__stat_bool(st, key, alive == 1);
}

/* ---- describers, one per type; module owners add theirs to the table ---- */

typedef void (*obj_describe_fn)(shmq_region *r, const void *mem, uint64_t size,
				struct shmq__obj_stat *st);

/* Lock (sync/lock_int.h): held or free, the holder and whether it is alive, and
 * whether waiters may be asleep.  A snapshot: the word may change right after. */
static void describe_lock(shmq_region *r, const void *mem, uint64_t size, struct shmq__obj_stat *st)
{
	const struct shmq__lock_shm *l = mem;

	if (size < sizeof(*l) || shmq__load_relaxed(&l->magic) != SHMQ__LOCK_MAGIC) {
		st->status = -EBADMSG; /* a snapshot: relaxed loads, no ordering needed */
		return;
	}
	uint32_t w = shmq__load_relaxed(&l->word); /* a snapshot */
	shmq__stat_bool(st, "held", w != 0);
	shmq__stat_bool(st, "contended", (w & SHMQ__LOCK_CONTENDED) != 0);
	shmq__stat_owner(st, r, "holder", w & SHMQ__LOCK_ID_MASK);
	shmq__stat_u64(st, "waits", shmq__load_relaxed(&l->waits)); /* counters: a snapshot */
	shmq__stat_u64(st, "wakes", shmq__load_relaxed(&l->wakes));
}

/* Barrier (sync/lock_int.h): parties, arrivals in this generation, generation,
 * broken, sleepers. */
static void describe_barrier(shmq_region *r, const void *mem, uint64_t size,
			     struct shmq__obj_stat *st)
{
	const struct shmq__barrier_shm *b = mem;

	if (size < sizeof(*b) || shmq__load_relaxed(&b->magic) != SHMQ__BARRIER_MAGIC) {
		st->status = -EBADMSG; /* a snapshot: relaxed loads throughout */
		return;
	}
	uint32_t parties = shmq__load_relaxed(&b->parties); /* read-only after init */
	uint32_t w = shmq__load_relaxed(&b->word);          /* a snapshot */
	uint32_t count = w & SHMQ__BARRIER_COUNT_MASK;
	if (parties == 0 || parties > SHMQ__BARRIER_MAX_PARTIES || count >= parties)
		st->status = -EBADMSG;
	shmq__stat_u64(st, "parties", parties);
	shmq__stat_u64(st, "waiting", count);
	shmq__stat_u64(st, "generation", w >> SHMQ__BARRIER_GEN_SHIFT);
	shmq__stat_bool(st, "broken", (w & SHMQ__BARRIER_BROKEN) != 0);
	shmq__stat_u64(st, "sleepers", shmq__load_relaxed(&b->sleepers)); /* a snapshot */
	shmq__stat_u64(st, "waits", shmq__load_relaxed(&b->waits));
	shmq__stat_u64(st, "wakes", shmq__load_relaxed(&b->wakes));
}

/* Queue (ring/mpmc_int.h: the object is the ring's control block and slots): depth
 * and capacity in messages, positions as message counters, sleepers on both
 * sides, shutdown, and the claims of dead processes skipped or dropped. */
static void describe_queue(shmq_region *r, const void *mem, uint64_t size, struct shmq__obj_stat *st)
{
	const struct shmq__mpmc_shared *q = mem;

	(void)r;
	/* a snapshot: every load below is relaxed, nothing is ordered against it */
	uint32_t version = size < sizeof(*q) ? 0 : shmq__load_relaxed(&q->version);
	if (size < sizeof(*q) || shmq__load_relaxed(&q->magic) != SHMQ__MPMC_MAGIC ||
	    (version != SHMQ__MPMC_VERSION && version != SHMQ__MPMC_VERSION_POW2)) {
		st->status = -EBADMSG;
		return;
	}
	/* the exact capacity (any value in 1 .. CAP_MAX; a power of two at version 2) */
	uint32_t cap = shmq__load_relaxed(&q->capacity);
	if (cap == 0 || cap > SHMQ__MPMC_CAP_MAX ||
	    (version == SHMQ__MPMC_VERSION_POW2 && !SHMQ__IS_POW2(cap)) ||
	    shmq__load_relaxed(&q->footprint) > size)
		st->status = -EBADMSG;
	uint64_t head = shmq__load_relaxed(&q->head), tail = shmq__load_relaxed(&q->tail);
	int64_t used = (int64_t)(tail - head);
	/* each index may lag its slots by one (ring/mpmc_int.h): -2 <= used <= cap + 2 */
	if (used < -2 || used > (int64_t)cap + 2)
		st->status = -EBADMSG;
	uint32_t getters = shmq__load_relaxed(&q->data_sleepers);
	uint32_t putters = shmq__load_relaxed(&q->space_sleepers);
	shmq__stat_u64(st, "depth", used < 0 ? 0 : used > (int64_t)cap ? cap : (uint64_t)used);
	shmq__stat_u64(st, "capacity", cap);
	shmq__stat_str(st, "unit", "msgs");
	shmq__stat_u64(st, "max_msg", shmq__load_relaxed(&q->max_msg));
	shmq__stat_u64(st, "msgs_in", tail);
	shmq__stat_u64(st, "msgs_out", head);
	shmq__stat_u64(st, "sleepers", (uint64_t)getters + putters);
	shmq__stat_u64(st, "getters_asleep", getters);
	shmq__stat_u64(st, "putters_asleep", putters);
	shmq__stat_bool(st, "shutdown", shmq__load_relaxed(&q->shut) != 0);
	shmq__stat_u64(st, "skipped", shmq__load_relaxed(&q->skipped));
	shmq__stat_u64(st, "dropped", shmq__load_relaxed(&q->dropped));
	uint64_t gw = shmq__load_relaxed(&q->get_waits), pw = shmq__load_relaxed(&q->put_waits);
	uint64_t gk = shmq__load_relaxed(&q->get_wakes), pk = shmq__load_relaxed(&q->put_wakes);
	shmq__stat_u64(st, "waits", shmq__stat_sum(gw, pw));
	shmq__stat_u64(st, "wakes", shmq__stat_sum(gk, pk));
	shmq__stat_u64(st, "getter_waits", gw);
	shmq__stat_u64(st, "putter_waits", pw);
	shmq__stat_u64(st, "getter_wakes", gk);
	shmq__stat_u64(st, "putter_wakes", pk);
}

static const obj_describe_fn obj_describers[SHMQ__OBJ_TYPE_MAX] = {
	[SHMQ__OBJ_NONE] = NULL,
	[SHMQ__OBJ_LOCK] = describe_lock,
	[SHMQ__OBJ_BARRIER] = describe_barrier,
	[SHMQ__OBJ_PIPE] = shmq__pipe_describe,
	[SHMQ__OBJ_QUEUE] = describe_queue,
	[SHMQ__OBJ_POOL] = shmq__pool_describe,
	[SHMQ__OBJ_BLOB] = NULL, /* raw bytes: nothing but its size */
};

int shmq__obj_describe(shmq_region *r, uint32_t type, const void *mem, uint64_t size,
		       struct shmq__obj_stat *st)
{
	if (!r || !st || (!mem && size))
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	st->type = type;
	if (type == SHMQ__OBJ_NONE || type >= SHMQ__OBJ_TYPE_MAX || !mem) {
		st->status = -EBADMSG;
		return 0;
	}
	shmq__stat_u64(st, "bytes", size);
	if (obj_describers[type])
		obj_describers[type](r, mem, size, st);
	return 0;
}
