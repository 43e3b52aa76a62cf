/* SPDX-License-Identifier: MIT */
/*
 * Object introspection: the fact list, the describer dispatch generated from
 * the kind table (core/objkind_int.h), and the tools' interface
 * (<shmq/introspect.h>).  No object layout is known here: each describer
 * lives with its object.  See core/introspect_int.h for the rules a describer
 * follows.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <shmq.h>
#include <shmq/introspect.h>

#include "core/alloc_int.h"
#include "core/introspect_int.h"
#include "core/objkind_int.h"
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

/* ---- the describer dispatch ---- */

/* Blob (shmq_region_alloc): raw bytes the library does not interpret, so the
 * "bytes" shmq__obj_describe puts first is all there is to say, unless the
 * blob is one whose layout libshmq knows: a bridge's checkpoint, described
 * by its own module (bridge/export.c, compiled into libshmq). */
void shmq__blob_describe(shmq_region *r, const void *mem, uint64_t size, struct shmq__obj_stat *st)
{
	(void)shmq__bridge_blob_describe(r, mem, size, st);
}

static const shmq__obj_describe_fn obj_describers[SHMQ__OBJ_TYPE_MAX] = {
#define DESCRIBER_(K, name, id, min, align, fn) [id] = fn,
	SHMQ__OBJ_KINDS(DESCRIBER_)
#undef DESCRIBER_
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
	obj_describers[type](r, mem, size, st);
	return 0;
}

/* ---- the tools' interface (<shmq/introspect.h>) ---- */

unsigned shmq__introspect_version(void)
{
	return SHMQ__INTROSPECT_VERSION;
}

int shmq__introspect_observe(const char *name, shmq_region **out)
{
	return shmq__region_observe(name, out);
}

int shmq__introspect_observe_fd(int fd, shmq_region **out)
{
	return shmq__region_observe_fd(fd, out);
}

int shmq__introspect_proc(shmq_region *r, unsigned slot, struct shmq__introspect_proc *out)
{
	struct shmq__ptab_entry e;
	int rc;

	if (!r || !out)
		return -EINVAL;
	rc = shmq__region_ptab_get(r, slot, &e);
	if (rc)
		return rc;
	out->pid = e.pid;
	out->gen = e.gen;
	out->alive = shmq__region_id_alive(r, slot | e.gen << SHMQ__ID_SLOT_BITS) == 1;
	out->attached_ns = e.attached_ns;
	return 0;
}

struct objects_walk {
	shmq_region *r;
	bool describe;
	shmq__introspect_obj_fn fn;
	void *arg;
	struct shmq__obj_stat st; /* one object's facts, reused */
};

static int objects_visit(const char *name, uint32_t type, void *mem, uint64_t size, void *arg)
{
	struct objects_walk *w = arg;
	int rc;

	if (w->describe && mem) {
		rc = shmq__obj_describe(w->r, type, mem, size, &w->st);
		if (rc)
			return rc;
	} else {
		memset(&w->st, 0, sizeof(w->st));
		w->st.type = type;
		if (!mem) /* a corrupt directory entry */
			w->st.status = -EBADMSG;
	}
	return w->fn(name, &w->st, w->arg);
}

int shmq__introspect_objects(shmq_region *r, bool describe, shmq__introspect_obj_fn fn,
			     void *arg)
{
	struct objects_walk *w;
	int rc;

	if (!r || !fn)
		return -EINVAL;
	w = shmq__malloc(sizeof(*w)); /* 7 KiB of facts: off the caller's stack */
	if (!w)
		return -ENOMEM;
	w->r = r;
	w->describe = describe;
	w->fn = fn;
	w->arg = arg;
	rc = shmq__obj_walk(r, objects_visit, w);
	shmq__free(w, sizeof(*w));
	return rc;
}

const char *shmq__introspect_type_name(uint32_t type)
{
	return shmq__obj_type_name(type);
}
