/* SPDX-License-Identifier: MIT */
/*
 * Layer 5: the task registry of the pool (process-private, in every process
 * of one program), a registry of core/registry_int.h and bound by its rules:
 * a second struct under a task's name makes the name ambiguous, and every
 * lookup of it fails with -EEXIST.  SHMQ_TASK registers a task at load time;
 * a job or frame names its task by index and hash into a name-sorted
 * snapshot, which is the same in every process of one program, and by name
 * as a fallback.
 */
#ifndef SHMQ_POOL_TASK_INT_H
#define SHMQ_POOL_TASK_INT_H

#include <stdint.h>
#include <string.h>

#include <shmq.h>

#include "core/registry_int.h"

/* (Re)take snapshot tt of the task registry: 0 or -ENOMEM (tt unchanged). */
int shmq__pool_task_table_build(struct shmq__registry_snap *tt);
void shmq__pool_task_table_free(struct shmq__registry_snap *tt);

/* Index of name in tt (retaken when the registry grew), -ENOENT, or -EEXIST
 * when two tasks share the name; -EINVAL for NULL, -ENOMEM. */
int shmq__pool_task_lookup(struct shmq__registry_snap *tt, const char *name);
/* 0 when name is one registered task; -ENOENT, -EEXIST (two under it). */
int shmq__pool_task_known(const char *name);

/* The function and the hash of the task at index idx, which a lookup of tt
 * returned. */
static inline shmq_task_fn task_fn(const struct shmq__registry_snap *tt, int idx)
{
	return ((const struct shmq_task *)tt->v[idx].item)->fn;
}

static inline uint32_t task_hash(const struct shmq__registry_snap *tt, int idx)
{
	return tt->v[idx].hash;
}

/* The function for a (shared, untrusted) index and hash, or NULL, also when
 * the index names one of an ambiguous name's tasks (then the caller's lookup
 * by name says -EEXIST).  Inline: the chunk and steal paths call it per chunk
 * and per stolen subtask; the neighbours' hashes spare the name compares. */
static inline shmq_task_fn task_by_index(const struct shmq__registry_snap *tt, uint32_t idx,
					 uint32_t hash)
{
	const struct shmq__registry_ent *e;

	if (idx >= tt->n || tt->v[idx].hash != hash)
		return NULL;
	e = &tt->v[idx];
	if ((idx > 0 && e[-1].hash == hash && strcmp(e[-1].name, e->name) == 0) ||
	    (idx + 1 < tt->n && e[1].hash == hash && strcmp(e[1].name, e->name) == 0))
		return NULL;
	return ((const struct shmq_task *)e->item)->fn;
}

#endif /* SHMQ_POOL_TASK_INT_H */
