/* SPDX-License-Identifier: MIT */
/*
 * The registry of named functions (core/registry_int.h): one list per kind,
 * under a mutex, with the same duplicate-name rule for every kind.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc_int.h"
#include "core/atomic_int.h"
#include "core/hash_int.h"
#include "core/registry_int.h"

/* Items named name, counted up to 2; the last one seen in *last.  Under mu. */
static unsigned registry_count_locked(const struct shmq__registry *reg, const char *name,
				      void **last)
{
	unsigned n = 0;

	for (void *it = reg->head; it && n < 2; it = reg->ops->next(it)) {
		if (strcmp(reg->ops->name(it), name) != 0)
			continue;
		n++;
		*last = it;
	}
	return n;
}

static bool registry_has_locked(const struct shmq__registry *reg, const void *item)
{
	for (void *it = reg->head; it; it = reg->ops->next(it))
		if (it == item)
			return true;
	return false;
}

/* The registries fork() holds, chained through fork_next; grown only by
 * constructors, which the loader runs one at a time. */
static struct shmq__registry *fork_held;

static void registry_fork_prepare(void)
{
	for (struct shmq__registry *reg = fork_held; reg; reg = reg->fork_next)
		pthread_mutex_lock(&reg->mu);
}

/* In the parent and in the child alike: the forking thread locked them. */
static void registry_fork_done(void)
{
	for (struct shmq__registry *reg = fork_held; reg; reg = reg->fork_next)
		pthread_mutex_unlock(&reg->mu);
}

void shmq__registry_hold_across_fork(struct shmq__registry *reg)
{
	/* fails only with ENOMEM: a fork may then catch a registry locked, as
	 * before these handlers */
	if (!fork_held)
		(void)pthread_atfork(registry_fork_prepare, registry_fork_done, registry_fork_done);
	reg->fork_next = fork_held;
	fork_held = reg;
}

int shmq__registry_add(struct shmq__registry *reg, void *item)
{
	const char *name = item ? reg->ops->name(item) : NULL;
	void *other = NULL;
	unsigned dup;

	if (!name || !*name)
		return -EINVAL;
	pthread_mutex_lock(&reg->mu);
	if (registry_has_locked(reg, item)) {
		pthread_mutex_unlock(&reg->mu);
		return 0;
	}
	dup = registry_count_locked(reg, name, &other);
	reg->ops->set_next(item, reg->head);
	reg->head = item;
	/* relaxed: a hint for shmq__registry_version's readers; whoever acts
	 * on it takes mu, which orders the list itself */
	shmq__store_relaxed(&reg->version, reg->version + 1);
	pthread_mutex_unlock(&reg->mu);
	return dup ? -EEXIST : 0;
}

int shmq__registry_remove(struct shmq__registry *reg, void *item)
{
	void *prev = NULL;
	int rc = -ENOENT;

	pthread_mutex_lock(&reg->mu);
	for (void *it = reg->head; it; prev = it, it = reg->ops->next(it)) {
		if (it != item)
			continue;
		if (prev)
			reg->ops->set_next(prev, reg->ops->next(it));
		else
			reg->head = reg->ops->next(it);
		reg->ops->set_next(it, NULL);
		/* relaxed: as in shmq__registry_add; a snapshot that still names
		 * item is retaken before it is searched */
		shmq__store_relaxed(&reg->version, reg->version + 1);
		rc = 0;
		break;
	}
	pthread_mutex_unlock(&reg->mu);
	return rc;
}

int shmq__registry_find(struct shmq__registry *reg, const char *name, void **out)
{
	void *it = NULL;
	unsigned n;

	if (!name)
		return -EINVAL;
	pthread_mutex_lock(&reg->mu);
	n = registry_count_locked(reg, name, &it);
	pthread_mutex_unlock(&reg->mu);
	if (n == 0)
		return -ENOENT;
	if (n > 1)
		return -EEXIST;
	*out = it;
	return 0;
}

uint32_t shmq__registry_version(struct shmq__registry *reg)
{
	/* relaxed: pairs with the relaxed bump in shmq__registry_add; only a
	 * hint, shmq__registry_snap_take reads the list under mu */
	return shmq__load_relaxed(&reg->version);
}

static int snap_cmp(const void *a, const void *b)
{
	return strcmp(((const struct shmq__registry_ent *)a)->name,
		      ((const struct shmq__registry_ent *)b)->name);
}

int shmq__registry_snap_take(struct shmq__registry *reg, struct shmq__registry_snap *s)
{
	struct shmq__registry_snap ns = { 0 };
	uint32_t i = 0;

	pthread_mutex_lock(&reg->mu);
	for (void *it = reg->head; it; it = reg->ops->next(it))
		ns.n++;
	ns.version = reg->version;
	ns.v = shmq__malloc((ns.n ? ns.n : 1) * sizeof(*ns.v));
	if (!ns.v) {
		pthread_mutex_unlock(&reg->mu);
		return -ENOMEM;
	}
	for (void *it = reg->head; it; it = reg->ops->next(it))
		ns.v[i++] = (struct shmq__registry_ent){ reg->ops->name(it), it, 0 };
	pthread_mutex_unlock(&reg->mu);
	qsort(ns.v, ns.n, sizeof(*ns.v), snap_cmp);
	for (i = 0; i < ns.n; i++)
		ns.v[i].hash = shmq__hash_fold32(shmq__fnv1a64(ns.v[i].name, strlen(ns.v[i].name))) | 1u;
	shmq__registry_snap_free(s);
	*s = ns;
	return 0;
}

int shmq__registry_snap_find(const struct shmq__registry_snap *s, const char *name)
{
	uint32_t lo = 0, hi = s->n;

	if (!name)
		return -EINVAL;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->v[mid].name, name);

		if (c < 0) {
			lo = mid + 1;
		} else if (c > 0) {
			hi = mid;
		} else { /* an ambiguous name's items are adjacent */
			if ((mid > 0 && strcmp(s->v[mid - 1].name, name) == 0) ||
			    (mid + 1 < s->n && strcmp(s->v[mid + 1].name, name) == 0))
				return -EEXIST;
			return (int)mid;
		}
	}
	return -ENOENT;
}

void shmq__registry_snap_free(struct shmq__registry_snap *s)
{
	if (s->v)
		shmq__free(s->v, (s->n ? s->n : 1) * sizeof(*s->v));
	memset(s, 0, sizeof(*s));
}
