/* SPDX-License-Identifier: MIT */
/*
 * Layer 5: the task registry of the pool (process-private, in every process
 * of one program).  SHMQ_TASK registers a task at load time; a job or frame
 * names its task by index and hash into a name-sorted snapshot, which is the
 * same in every process of one program, and by name as a fallback.
 */
#ifndef SHMQ_POOL_TASK_INT_H
#define SHMQ_POOL_TASK_INT_H

#include <stdint.h>

#include <shmq.h>

/* A process-private, name-sorted snapshot: the index of a task is the same in
 * every process of one program. */
struct task_table {
	uint32_t version;
	uint32_t n;
	struct shmq_task **v;
	uint32_t *hash;
};

/* (Re)build tt from the registry: 0 or -ENOMEM (tt unchanged). */
int shmq__pool_task_table_build(struct task_table *tt);
void shmq__pool_task_table_free(struct task_table *tt);

/* Index of name in tt (rebuilt when the registry grew), or -ENOENT; -EINVAL
 * for NULL, -ENOMEM. */
int shmq__pool_task_lookup(struct task_table *tt, const char *name);

/* The function for a (shared, untrusted) index and hash, or NULL.  Inline:
 * the chunk and steal paths call it per chunk and per stolen subtask. */
static inline shmq_task_fn task_by_index(const struct task_table *tt, uint32_t idx, uint32_t hash)
{
	if (idx >= tt->n || tt->hash[idx] != hash)
		return NULL;
	return tt->v[idx]->fn;
}

#endif /* SHMQ_POOL_TASK_INT_H */
