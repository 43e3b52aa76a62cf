/* SPDX-License-Identifier: MIT */
/*
 * Private: the posix_spawn plumbing that proc.c and run.c share, and the
 * entry registry lookup (for the pool's workers).
 *
 * Descriptor numbers in a spawned child: 0-2 stdio, SHMQ__CHILD_REGION_FD the
 * region, SHMQ__CHILD_ARG_FD the argument memfd; everything from
 * SHMQ__CHILD_FIRST_FREE up is closed in the child.
 */
#ifndef SHMQ__PROC_PRIV_H
#define SHMQ__PROC_PRIV_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <shmq/proc.h>

#define SHMQ__CHILD_REGION_FD  3
#define SHMQ__CHILD_ARG_FD     4
#define SHMQ__CHILD_FIRST_FREE 5
#define SHMQ__SPAWN_FDS        SHMQ__CHILD_FIRST_FREE

/* In the environment of a child of shmq_proc_spawn: NAME=<entry>.  It marks a
 * process started for an entry until its shmq_dispatch takes it out. */
#define SHMQ__ENTRY_ENV "SHMQ_SPAWNED_ENTRY"

/* The entry registered under name in *out: 0, -ENOENT when none is, -EEXIST
 * when two are (see core/registry_int.h).  Any thread. */
int shmq__entry_find(const char *name, const struct shmq_entry **out);

/* First thing of every call that starts a process (spawn, exec, run): in a
 * process started for an entry whose program has not called shmq_dispatch
 * (it forgot to call it first in main), say so on stderr and _exit with
 * SHMQ_EXIT_NODISPATCH instead of starting one more copy of the program. */
void shmq__proc_guard(const char *call);

/* A child's environment: base (NULL: environ) without SHMQ_REGION_FD and
 * SHMQ_SPAWNED_ENTRY, plus extra[0..1] ("K=V", each may be NULL).  The
 * strings are borrowed, not copied. */
struct shmq__env {
	char **vec;
	size_t cap;
};
int shmq__env_build(struct shmq__env *env, char *const *base, const char *const extra[2]);
void shmq__env_free(struct shmq__env *env);

/* One posix_spawn call being prepared: which caller descriptor becomes which
 * child descriptor, /dev/null streams, cwd, process group, environment. */
struct shmq__spawn {
	int src[SHMQ__SPAWN_FDS];  /* caller fd copied to child fd i, or -1 */
	int tmp[SHMQ__SPAWN_FDS];  /* CLOEXEC copies made to keep sources >= FIRST_FREE */
	bool devnull[3];
	bool search;               /* posix_spawnp: search PATH */
	const char *cwd;
	pid_t pgroup;              /* -1: caller's group; 0: a new group led by the child */
	struct shmq__env env;
};
void shmq__spawn_init(struct shmq__spawn *s);
void shmq__spawn_fini(struct shmq__spawn *s);
int shmq__spawn_fd(struct shmq__spawn *s, int target, int fd);
/* posix_spawn(p) with s applied (env must be built); 0 or -errno. */
int shmq__spawn_run(struct shmq__spawn *s, const char *path, char *const argv[], pid_t *pid);

/* Exit status from a waitid siginfo: the code, or -signal. */
int shmq__status_from_siginfo(const siginfo_t *si);

#endif /* SHMQ__PROC_PRIV_H */
