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
#include <shmq/run.h>

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

/* The caller's end of a new stream for child descriptor t (0: an AF_UNIX
 * stream socket, so sends can say MSG_NOSIGNAL; 1, 2: a pipe of up to 1 MiB),
 * both ends O_CLOEXEC; the child's end is registered in s and returned in
 * *child_end for the caller to close once the child is spawned.  (run.c) */
int shmq__stream_open(struct shmq__spawn *s, int t, int *parent_end, int *child_end);

/* A spawned child whose streams shmq__run_talk feeds and drains: what
 * shmq_proc_communicate hands to run.c's loop.  fd[] are taken (closed, set
 * to -1) whatever the outcome; pidfd is borrowed.  On return the child is
 * reaped (reaped true, status set) unless it was already. */
struct shmq__talk {
	int fd[3];      /* parent's ends of stdin, stdout, stderr, or -1 */
	pid_t pid;
	int pidfd;
	bool pgroup;    /* the child leads its process group: a kill takes it all */
	bool reaped;    /* in: reaped before (status valid) */
	int status;
};
/* Feed in, collect stdout/stderr into res, wait for the exit, as shmq_run.
 * 0, -ETIMEDOUT (res holds what was read), or -errno (res empty).  (run.c) */
int shmq__run_talk(struct shmq__talk *t, const void *in, size_t in_len,
		   struct shmq_run_result *res, int64_t timeout_ns);

/* Have all of procs[0..n) (none NULL) still not exited?  One poll(2) over
 * their pidfds (a pidfd turns readable when its process exits), where
 * shmq_proc_is_alive makes a waitid each: 1 all running, 0 one has exited or
 * was reaped already, -errno when the poll failed (then ask each). */
int shmq__procs_running(shmq_proc *const *procs, unsigned n);

/* Exit status from a waitid siginfo: the code, or -signal. */
int shmq__status_from_siginfo(const siginfo_t *si);

#endif /* SHMQ__PROC_PRIV_H */
