/* SPDX-License-Identifier: MIT */
/*
 * Private: a registry of named functions, the library's one kind of global
 * mutable state (DESIGN.md).  proc's entries (SHMQ_ENTRY) and the pool's
 * tasks (SHMQ_TASK) are two registries of this kind and follow its rules:
 *
 *  - an item is a caller-owned struct that lives as long as the program and
 *    is chained through a next field of its own: registering allocates
 *    nothing, so it works from a constructor and cannot fail for memory;
 *  - registering the same struct again is a no-op;
 *  - two different structs under one name are a programming error, caught
 *    deterministically: both stay registered, the name is ambiguous, and
 *    every lookup of it fails with -EEXIST, whatever order the constructors
 *    ran in.  Picking the first or the last silently would make the function
 *    that runs depend on link order.
 *
 * Any thread, constructors included.  Adding and looking up take the
 * registry's mutex; lookups are rare (a spawn, a pool's table rebuild), and
 * the version lets a cache notice growth without the lock.  fork() holds the
 * mutex (shmq__registry_hold_across_fork), so a child of a process whose
 * other threads use the registry gets it unlocked and whole.
 */
#ifndef SHMQ__REGISTRY_H
#define SHMQ__REGISTRY_H

#include <pthread.h>
#include <stdint.h>

/* How the registry reaches an item's name and next field. */
struct shmq__registry_ops {
	const char *(*name)(const void *item);
	void *(*next)(const void *item);
	void (*set_next)(void *item, void *next);
};

struct shmq__registry {
	pthread_mutex_t mu;
	void *head;        /* newest first; under mu */
	uint32_t version;  /* bumped under mu by every add and remove; read without it as a hint */
	const struct shmq__registry_ops *ops;
	struct shmq__registry *fork_next; /* the registries fork() holds */
};

#define SHMQ__REGISTRY_INIT(o) { PTHREAD_MUTEX_INITIALIZER, NULL, 0, (o), NULL }

/* Hold reg's mutex across every fork() of the process (pthread_atfork): a
 * child must never get a copy that a thread it does not have left locked
 * (its first register, spawn or pool call would wait for ever) or a list
 * caught in the middle of an add.  Once per registry, from a constructor. */
void shmq__registry_hold_across_fork(struct shmq__registry *reg);

/* Add item.  0 (also when item is in already), -EEXIST when another item has
 * its name (item is added all the same: the name is ambiguous from now on),
 * -EINVAL for NULL or an empty name. */
int shmq__registry_add(struct shmq__registry *reg, void *item);

/* Take item out (a module that registered it is being unloaded).  0, or
 * -ENOENT when it is not in.  Bumps the version, so that snapshots naming it
 * are retaken before their next search. */
int shmq__registry_remove(struct shmq__registry *reg, void *item);

/* The one item named name in *out: 0, -ENOENT when there is none, -EEXIST
 * when two or more share the name, -EINVAL for a NULL name. */
int shmq__registry_find(struct shmq__registry *reg, const char *name, void **out);

/* A number that changes whenever an item is added (a hint: compare it with
 * a snapshot's version to know when to take a new one). */
uint32_t shmq__registry_version(struct shmq__registry *reg);

/*
 * A process-private snapshot sorted by name, so an item's index is the same
 * in every process of one program and can travel through shared memory with
 * its hash as a check.
 */
struct shmq__registry_ent {
	const char *name;
	void *item;
	uint32_t hash;     /* shmq__hash_fold32(FNV-1a 64 of name) | 1: never 0 */
};

struct shmq__registry_snap {
	uint32_t version;  /* the registry's version when taken */
	uint32_t n;
	struct shmq__registry_ent *v; /* by name; an ambiguous name's are adjacent */
};

/* Replace *s with a fresh snapshot (s zeroed or a previous one).  0, or
 * -ENOMEM with *s unchanged. */
int shmq__registry_snap_take(struct shmq__registry *reg, struct shmq__registry_snap *s);

/* Index of name in s, -ENOENT, or -EEXIST when the name is ambiguous. */
int shmq__registry_snap_find(const struct shmq__registry_snap *s, const char *name);

void shmq__registry_snap_free(struct shmq__registry_snap *s);

#endif /* SHMQ__REGISTRY_H */
