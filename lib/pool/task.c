/* SPDX-License-Identifier: MIT */
/* Layer 5: the pool's task registry (see pool/task_int.h). */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <shmq.h>

#include "core/alloc_int.h"
#include "core/atomic_int.h"
#include "pool/task_int.h"

static pthread_mutex_t task_mu = PTHREAD_MUTEX_INITIALIZER;
static struct shmq_task *task_head;
static uint32_t task_version; /* bumped under task_mu; read relaxed as a hint */

static uint32_t name_hash(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h | 1u;
}

static struct shmq_task *task_find_locked(const char *name)
{
	for (struct shmq_task *t = task_head; t; t = t->next)
		if (strcmp(t->name, name) == 0)
			return t;
	return NULL;
}

SHMQ_API void shmq_task_register(struct shmq_task *t)
{
	if (!t || !t->name || !t->fn || strlen(t->name) > SHMQ_OBJ_NAME_MAX)
		return;
	pthread_mutex_lock(&task_mu);
	if (!task_find_locked(t->name)) {
		t->next = task_head;
		task_head = t;
		/* a hint, read relaxed by shmq__pool_task_lookup: rebuilt under task_mu */
		shmq__store_relaxed(&task_version, task_version + 1);
	}
	pthread_mutex_unlock(&task_mu);
}

static int task_cmp(const void *a, const void *b)
{
	return strcmp((*(struct shmq_task *const *)a)->name, (*(struct shmq_task *const *)b)->name);
}

void shmq__pool_task_table_free(struct task_table *tt)
{
	shmq__free(tt->v, tt->n * sizeof(*tt->v));
	shmq__free(tt->hash, tt->n * sizeof(*tt->hash));
	memset(tt, 0, sizeof(*tt));
}

int shmq__pool_task_table_build(struct task_table *tt)
{
	struct task_table nt = { 0 };
	uint32_t i = 0;

	pthread_mutex_lock(&task_mu);
	for (struct shmq_task *t = task_head; t; t = t->next)
		nt.n++;
	nt.version = task_version;
	nt.v = shmq__malloc((nt.n ? nt.n : 1) * sizeof(*nt.v));
	nt.hash = shmq__malloc((nt.n ? nt.n : 1) * sizeof(*nt.hash));
	if (!nt.v || !nt.hash) {
		pthread_mutex_unlock(&task_mu);
		shmq__free(nt.v, (nt.n ? nt.n : 1) * sizeof(*nt.v));
		shmq__free(nt.hash, (nt.n ? nt.n : 1) * sizeof(*nt.hash));
		return -ENOMEM;
	}
	for (struct shmq_task *t = task_head; t; t = t->next)
		nt.v[i++] = t;
	pthread_mutex_unlock(&task_mu);
	qsort(nt.v, nt.n, sizeof(*nt.v), task_cmp);
	for (i = 0; i < nt.n; i++)
		nt.hash[i] = name_hash(nt.v[i]->name);
	if (tt->v) {
		shmq__free(tt->v, (tt->n ? tt->n : 1) * sizeof(*tt->v));
		shmq__free(tt->hash, (tt->n ? tt->n : 1) * sizeof(*tt->hash));
	}
	*tt = nt;
	return 0;
}

int shmq__pool_task_lookup(struct task_table *tt, const char *name)
{
	uint32_t lo, hi;

	if (!name)
		return -EINVAL;
	for (int pass = 0; pass < 2; pass++) {
		/* relaxed: a hint that the registry grew; the rebuild locks */
		if ((!tt->v || tt->version != shmq__load_relaxed(&task_version)) &&
		    shmq__pool_task_table_build(tt))
			return -ENOMEM;
		lo = 0;
		hi = tt->n;
		while (lo < hi) {
			uint32_t mid = lo + (hi - lo) / 2;
			int c = strcmp(tt->v[mid]->name, name);

			if (c == 0)
				return (int)mid;
			if (c < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		tt->version = UINT32_MAX; /* force one rebuild before giving up */
	}
	return -ENOENT;
}

