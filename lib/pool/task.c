/* SPDX-License-Identifier: MIT */
/* Layer 5: the pool's task registry (see pool/task_int.h; the rules are
 * core/registry_int.h's). */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <shmq.h>

#include "core/registry_int.h"
#include "pool/task_int.h"

static const char *task_name(const void *t)
{
	return ((const struct shmq_task *)t)->name;
}

static void *task_next(const void *t)
{
	return ((const struct shmq_task *)t)->next;
}

static void task_set_next(void *t, void *next)
{
	((struct shmq_task *)t)->next = next;
}

static const struct shmq__registry_ops task_ops = { task_name, task_next, task_set_next };
static struct shmq__registry task_registry = SHMQ__REGISTRY_INIT(&task_ops);

__attribute__((constructor)) static void task_registry_init(void)
{
	shmq__registry_hold_across_fork(&task_registry);
}

SHMQ_API void shmq_task_register(struct shmq_task *t)
{
	if (!t || !t->name)
		return;
	if (!t->fn) { /* withdrawn: SHMQ_TASK's destructor, its module unloading */
		(void)shmq__registry_remove(&task_registry, t);
		return;
	}
	if (strlen(t->name) > SHMQ_OBJ_NAME_MAX)
		return;
	/* -EEXIST (a second struct under t's name) is reported by every lookup
	 * of that name: a void call has no one to tell now */
	(void)shmq__registry_add(&task_registry, t);
}

void shmq__pool_task_table_free(struct shmq__registry_snap *tt)
{
	shmq__registry_snap_free(tt);
}

int shmq__pool_task_table_build(struct shmq__registry_snap *tt)
{
	return shmq__registry_snap_take(&task_registry, tt);
}

int shmq__pool_task_lookup(struct shmq__registry_snap *tt, const char *name)
{
	int idx = -ENOENT;

	if (!name)
		return -EINVAL;
	for (int pass = 0; pass < 2; pass++) {
		if ((!tt->v || tt->version != shmq__registry_version(&task_registry)) &&
		    shmq__registry_snap_take(&task_registry, tt))
			return -ENOMEM;
		idx = shmq__registry_snap_find(tt, name);
		if (idx != -ENOENT)
			return idx;
		tt->version = UINT32_MAX; /* force one retake before giving up */
	}
	return idx;
}

int shmq__pool_task_known(const char *name)
{
	void *t;

	return shmq__registry_find(&task_registry, name, &t);
}
