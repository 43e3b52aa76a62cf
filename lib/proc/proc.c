/* SPDX-License-Identifier: MIT */
/*
 * Processes (seed 12-4): the entry registry, shmq_dispatch, and children
 * started with posix_spawn whose lifecycle is followed through a pidfd.
 *
 * How a child receives what it needs, without temporary files:
 *   fd 3  the region's descriptor (dup2 in the child clears FD_CLOEXEC), named
 *         by SHMQ_REGION_FD=3[:/name] in the child's environment
 *   fd 4  for shmq_proc_spawn with len > 0: a memfd holding the argument bytes
 *   argv  "/proc/self/exe" re-executed as {argv0, "--shmq-entry=NAME",
 *         ["--shmq-arg=4"]}
 * Every other descriptor is closed in the child: 3 and 4 when the library
 * passes nothing there, the rest by closefrom(5) after the dup2s.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <shmq.h>

#include "core/alloc_int.h"
#include "core/atomic_int.h"
#include "core/cancel_int.h"
#include "core/fd_int.h"
#include "core/fork_int.h"
#include "proc/proc_int.h"
#include "core/region_int.h"
#include "core/registry_int.h"
#include "core/time_int.h"
#include "core/wait_int.h"
#include "core/watch_int.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define ENTRY_FLAG     "--shmq-entry="
#define ARG_FLAG       "--shmq-arg="
#define ENTRY_NAME_MAX 255

#define PROC_PIPES (SHMQ_STDIN | SHMQ_STDOUT | SHMQ_STDERR)

struct shmq_proc {
	pid_t pid;
	pid_t owner; /* the process that made the handle (core/fork_int.h) */
	int pidfd;
	int status;  /* valid once reaped */
	bool reaped;
	bool pgroup; /* leads its own process group (SHMQ_PROC_NEWPGRP) */
	int fd[3];   /* our ends of the piped stdin, stdout, stderr, or -1 */
};

/* The opts.pipes bit of child stream t. */
static unsigned pipe_bit(int t)
{
	static const unsigned bits[3] = { SHMQ_STDIN, SHMQ_STDOUT, SHMQ_STDERR };

	return bits[t];
}

/* ---- the entry registry (core/registry_int.h has the rules) ---- */

static const char *entry_name(const void *e)
{
	return ((const struct shmq_entry *)e)->name;
}

static void *entry_next(const void *e)
{
	return ((const struct shmq_entry *)e)->next;
}

static void entry_set_next(void *e, void *next)
{
	((struct shmq_entry *)e)->next = next;
}

static const struct shmq__registry_ops entry_ops = { entry_name, entry_next, entry_set_next };
static struct shmq__registry entries = SHMQ__REGISTRY_INIT(&entry_ops);

__attribute__((constructor)) static void entries_init(void)
{
	shmq__registry_hold_across_fork(&entries);
}

SHMQ_API void shmq_entry_register(struct shmq_entry *e)
{
	if (!e || !e->name)
		return;
	if (!e->fn) { /* withdrawn: SHMQ_ENTRY's destructor, its module unloading */
		(void)shmq__registry_remove(&entries, e);
		return;
	}
	/* -EEXIST (a second struct under e's name) is reported by every lookup
	 * of that name: a void call has no one to tell now */
	(void)shmq__registry_add(&entries, e);
}

int shmq__entry_find(const char *name, const struct shmq_entry **out)
{
	void *e;
	int rc = shmq__registry_find(&entries, name, &e);

	if (rc == 0)
		*out = e;
	return rc;
}

/* ---- small system helpers ---- */

static int sys_pidfd_open(pid_t pid)
{
	/* never at 0-2 (core/fd_int.h) */
	return shmq__fd_high((int)syscall(SYS_pidfd_open, pid, 0));
}

static int sys_pidfd_send_signal(int pidfd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

static void close_keep_errno(int fd)
{
	int saved = errno;

	if (fd >= 0)
		close(fd);
	errno = saved;
}

/* A CLOEXEC copy of fd numbered >= SHMQ__CHILD_FIRST_FREE, so the dup2s into
 * the child's fixed numbers never clobber a source still to be copied. */
static int fd_lift(int fd, int *tmp)
{
	if (fd >= SHMQ__CHILD_FIRST_FREE)
		return fd;
	*tmp = fcntl(fd, F_DUPFD_CLOEXEC, SHMQ__CHILD_FIRST_FREE);
	if (*tmp >= 0)
		return *tmp;
	/* EINVAL: the floor is at or above RLIMIT_NOFILE; no descriptor is
	 * left for us either way */
	return errno == EINVAL ? -EMFILE : -errno;
}

/* ---- building the child's environment ---- */

static bool env_is(const char *s, const char *name)
{
	size_t n = strlen(name);

	return strncmp(s, name, n) == 0 && s[n] == '=';
}

/* What only the library puts in a child's environment, never the caller's. */
static bool env_is_private(const char *s)
{
	return env_is(s, SHMQ__REGION_ENV) || env_is(s, SHMQ__ENTRY_ENV);
}

void shmq__env_free(struct shmq__env *env)
{
	if (env->vec)
		shmq__free(env->vec, env->cap * sizeof(char *));
	env->vec = NULL;
}

int shmq__env_build(struct shmq__env *env, char *const *base, const char *const extra[2])
{
	size_t n = 0, k = 0;

	if (!base)
		base = environ;
	while (base && base[n])
		n++;
	env->cap = n + 3;
	env->vec = shmq__malloc(env->cap * sizeof(char *));
	if (!env->vec)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (!env_is_private(base[i]))
			env->vec[k++] = base[i];
	for (int i = 0; i < 2; i++)
		if (extra[i])
			env->vec[k++] = (char *)extra[i];
	env->vec[k] = NULL;
	return 0;
}

/* ---- options ---- */

static int opts_check(const struct shmq_proc_opts *o)
{
	if (!o)
		return 0;
	if ((o->flags & ~SHMQ_PROC_NEWPGRP) || (o->pipes & ~PROC_PIPES) || o->reserved0)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(o->reserved) / sizeof(o->reserved[0]); i++)
		if (o->reserved[i])
			return -EINVAL;
	if (o->stdin_fd < SHMQ_PROC_DEVNULL || o->stdout_fd < SHMQ_PROC_DEVNULL ||
	    o->stderr_fd < SHMQ_PROC_DEVNULL)
		return -EINVAL;
	if (((o->pipes & SHMQ_STDIN) && o->stdin_fd) || ((o->pipes & SHMQ_STDOUT) && o->stdout_fd) ||
	    ((o->pipes & SHMQ_STDERR) && o->stderr_fd))
		return -EINVAL; /* a stream is piped or redirected, not both */
	/* a descriptor given must be open: the child's dup2 of a closed one
	 * would fail as if the process were out of descriptors */
	if ((o->stdin_fd > 0 && fcntl(o->stdin_fd, F_GETFD) < 0) ||
	    (o->stdout_fd > 0 && fcntl(o->stdout_fd, F_GETFD) < 0) ||
	    (o->stderr_fd > 0 && fcntl(o->stderr_fd, F_GETFD) < 0))
		return -EINVAL;
	return 0;
}

/* ---- posix_spawn plumbing shared with run.c ---- */

void shmq__spawn_init(struct shmq__spawn *s)
{
	memset(s, 0, sizeof(*s));
	for (int i = 0; i < SHMQ__SPAWN_FDS; i++) {
		s->src[i] = -1;
		s->tmp[i] = -1;
	}
	s->pgroup = -1;
}

void shmq__spawn_fini(struct shmq__spawn *s)
{
	for (int i = 0; i < SHMQ__SPAWN_FDS; i++)
		close_keep_errno(s->tmp[i]);
	shmq__env_free(&s->env);
}

/* Give the child fd `target` as a copy of the caller's `fd`. */
int shmq__spawn_fd(struct shmq__spawn *s, int target, int fd)
{
	int rc;

	if (target < 0 || target >= SHMQ__SPAWN_FDS || fd < 0)
		return -EINVAL;
	rc = fd_lift(fd, &s->tmp[target]);
	if (rc < 0)
		return rc;
	s->src[target] = rc;
	return 0;
}

/* What the child's descriptor target becomes.  0-2 are inherited unless
 * replaced; the library's own numbers (3, 4) hold what it passes or nothing:
 * a caller's descriptor that happens to sit there without O_CLOEXEC is no
 * business of the child's, and closefrom(SHMQ__CHILD_FIRST_FREE) spares it. */
static int stream_action(posix_spawn_file_actions_t *fa, int target, int src, bool devnull)
{
	if (devnull)
		return posix_spawn_file_actions_addopen(fa, target, "/dev/null",
							target ? O_WRONLY : O_RDONLY, 0);
	if (src >= 0)
		return posix_spawn_file_actions_adddup2(fa, src, target);
	if (target > 2)
		return posix_spawn_file_actions_addclose(fa, target); /* EBADF is ignored */
	return 0;
}

static int actions_build(posix_spawn_file_actions_t *fa, const struct shmq__spawn *s)
{
	int rc = 0;

	for (int t = 0; t < SHMQ__SPAWN_FDS && !rc; t++)
		rc = stream_action(fa, t, s->src[t], t < 3 && s->devnull[t]);
	if (!rc && s->cwd)
		rc = posix_spawn_file_actions_addchdir_np(fa, s->cwd);
	if (!rc)
		rc = posix_spawn_file_actions_addclosefrom_np(fa, SHMQ__CHILD_FIRST_FREE);
	return rc;
}

/* The child starts with no signal blocked.  What the host ignores stays
 * ignored, as exec(2) and Python's subprocess leave it (nohup's SIGHUP, a
 * background job's SIGINT and SIGQUIT), except three signals: SIGPIPE and
 * SIGXFSZ (as Python's restore_signals), and SIGCHLD, which ignored makes
 * the kernel reap the child's own children, so that its shmq_proc_join and
 * shmq_run would fail with -ECHILD.  Handlers are reset by exec anyway. */
static int attr_build(posix_spawnattr_t *at, const struct shmq__spawn *s)
{
	sigset_t none, dfl;
	short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
	int rc;

	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	sigaddset(&dfl, SIGXFSZ);
	sigaddset(&dfl, SIGCHLD);
	if (s->pgroup >= 0)
		flags |= POSIX_SPAWN_SETPGROUP;
	rc = posix_spawnattr_setsigmask(at, &none);
	if (!rc)
		rc = posix_spawnattr_setsigdefault(at, &dfl);
	if (!rc && s->pgroup >= 0)
		rc = posix_spawnattr_setpgroup(at, s->pgroup);
	if (!rc)
		rc = posix_spawnattr_setflags(at, flags);
	return rc;
}

int shmq__spawn_run(struct shmq__spawn *s, const char *path, char *const argv[], pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	int rc;

	rc = posix_spawn_file_actions_init(&fa);
	if (rc)
		return -rc;
	rc = posix_spawnattr_init(&at);
	if (rc) {
		posix_spawn_file_actions_destroy(&fa);
		return -rc;
	}
	rc = actions_build(&fa, s);
	if (!rc)
		rc = attr_build(&at, s);
	if (!rc)
		rc = (s->search ? posix_spawnp : posix_spawn)(pid, path, &fa, &at, argv,
							      s->env.vec);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	/* Every descriptor we name is open or one of the child's fixed numbers:
	 * EBADF (from adding an action, or from the child's dup2) means a number
	 * at or above RLIMIT_NOFILE, i.e. the process is out of descriptors. */
	return rc == EBADF ? -EMFILE : -rc;
}

/* ---- handles ---- */

/* Take ownership of a just-spawned, not yet waited-for child.  It cannot have
 * been reaped (we are its parent and have not waited), so its pid still names
 * it when pidfd_open runs. */
static int proc_adopt(pid_t pid, bool pgroup, int parent[3], shmq_proc **out)
{
	shmq_proc *p = shmq__calloc(1, sizeof(*p));
	int rc;

	if (!p) {
		rc = -ENOMEM;
		goto fail;
	}
	p->pid = pid;
	p->owner = shmq__self_pid();
	p->pgroup = pgroup;
	p->pidfd = sys_pidfd_open(pid);
	if (p->pidfd < 0) {
		rc = -errno;
		goto fail;
	}
	for (int t = 0; t < 3; t++) {
		p->fd[t] = parent[t];
		parent[t] = -1;
	}
	*out = p;
	return 0;
fail:
	/* Nothing can follow this child: do not leave it running or a zombie. */
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (p)
		shmq__free(p, sizeof(*p));
	return rc;
}

static void opts_apply(struct shmq__spawn *s, const struct shmq_proc_opts *o)
{
	if (!o)
		return;
	s->cwd = o->cwd;
	if (o->flags & SHMQ_PROC_NEWPGRP)
		s->pgroup = 0;
}

/* The child's streams: redirected, /dev/null, or piped (our end in parent[t],
 * the child's in child[t], both to be closed by the caller unless taken). */
static int opts_streams(struct shmq__spawn *s, const struct shmq_proc_opts *o, int parent[3],
			int child[3])
{
	const int fds[3] = { o ? o->stdin_fd : 0, o ? o->stdout_fd : 0, o ? o->stderr_fd : 0 };
	int rc = 0;

	for (int t = 0; t < 3 && !rc; t++) {
		if (o && (o->pipes & pipe_bit(t)))
			rc = shmq__stream_open(s, t, &parent[t], &child[t]);
		else if (fds[t] == SHMQ_PROC_DEVNULL)
			s->devnull[t] = true;
		else if (fds[t] > 0 && fds[t] != t)
			rc = shmq__spawn_fd(s, t, fds[t]);
	}
	return rc;
}

/* The common path of spawn and exec: region, streams, environment, spawn,
 * adopt.  mark: the child's SHMQ_SPAWNED_ENTRY=NAME (spawn), or NULL (exec). */
static int proc_start(shmq_region *r, const char *path, char *const argv[], const char *mark,
		      const struct shmq_proc_opts *o, struct shmq__spawn *s, shmq_proc **out)
{
	char envbuf[sizeof(SHMQ__REGION_ENV) + 16 + SHMQ_NAME_MAX + 2];
	const char *extra[2] = { NULL, mark };
	bool search = !mark && strchr(path, '/') == NULL;
	int parent[3] = { -1, -1, -1 }, child[3] = { -1, -1, -1 };
	pid_t pid;
	int rc;

	s->search = search;
	opts_apply(s, o);
	rc = opts_streams(s, o, parent, child);
	if (!rc && r) {
		snprintf(envbuf, sizeof(envbuf), "%s=%d%s%s", SHMQ__REGION_ENV,
			 SHMQ__CHILD_REGION_FD, r->name[0] ? ":" : "", r->name);
		rc = shmq__spawn_fd(s, SHMQ__CHILD_REGION_FD, shmq__region_fd(r));
		extra[0] = envbuf;
	}
	if (!rc)
		rc = shmq__env_build(&s->env, o ? o->envp : NULL, extra);
	if (!rc)
		rc = shmq__spawn_run(s, path, argv, &pid);
	for (int t = 0; t < 3; t++)
		close_keep_errno(child[t]); /* the child has its copies: EOF follows its exit */
	if (!rc)
		rc = proc_adopt(pid, s->pgroup == 0, parent, out);
	for (int t = 0; t < 3; t++)
		close_keep_errno(parent[t]); /* taken by the handle unless it failed */
	return rc;
}

/* The argument bytes in a memfd (the child preads them; no temp file).
 * -EFBIG when they pass RLIMIT_FSIZE, before a write could raise SIGXFSZ. */
static int arg_memfd(const void *arg, size_t len)
{
	const char *p = arg;
	int fd = shmq__file_size_check(len);

	if (fd)
		return fd;
	fd = shmq__fd_high(memfd_create("shmq-arg", MFD_CLOEXEC)); /* core/fd_int.h */
	if (fd < 0)
		return -errno;
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int rc = n < 0 ? -errno : -EIO;

			close(fd);
			return rc;
		}
		p += n;
		len -= (size_t)n;
	}
	return fd;
}

static int proc_spawn(shmq_region *r, const char *entry, const void *arg, size_t len,
		      const struct shmq_proc_opts *o, shmq_proc **out)
{
	char flag[sizeof(ENTRY_FLAG) + ENTRY_NAME_MAX];
	char mark[sizeof(SHMQ__ENTRY_ENV) + ENTRY_NAME_MAX + 1];
	char argflag[sizeof(ARG_FLAG) + 12];
	char *argv[4];
	const struct shmq_entry *e;
	struct shmq__spawn s;
	int rc, fd = -1;

	if (!entry || !out || (len && !arg) || strlen(entry) > ENTRY_NAME_MAX || !*entry)
		return -EINVAL;
	shmq__proc_guard("shmq_proc_spawn");
	if (shmq__region_forked(r))
		return -EBADF; /* the parent's handle: open the region again */
	rc = opts_check(o);
	if (rc)
		return rc;
	rc = shmq__entry_find(entry, &e);
	if (rc)
		return rc;
	snprintf(flag, sizeof(flag), "%s%s", ENTRY_FLAG, entry);
	snprintf(mark, sizeof(mark), "%s=%s", SHMQ__ENTRY_ENV, entry);
	snprintf(argflag, sizeof(argflag), "%s%d", ARG_FLAG, SHMQ__CHILD_ARG_FD);
	argv[0] = program_invocation_name;
	argv[1] = flag;
	argv[2] = len ? argflag : NULL;
	argv[3] = NULL;
	shmq__spawn_init(&s);
	if (len) {
		fd = arg_memfd(arg, len);
		rc = fd < 0 ? fd : shmq__spawn_fd(&s, SHMQ__CHILD_ARG_FD, fd);
	}
	if (!rc)
		rc = proc_start(r, "/proc/self/exe", argv, mark, o, &s, out);
	close_keep_errno(fd);
	shmq__spawn_fini(&s);
	return rc;
}

/* No cancellation point (core/cancel_int.h). */
SHMQ_API int shmq_proc_spawn(shmq_region *r, const char *entry, const void *arg, size_t len,
			     const struct shmq_proc_opts *o, shmq_proc **out)
{
	int cs = shmq__cancel_off();
	int rc = proc_spawn(r, entry, arg, len, o, out);

	shmq__cancel_restore(cs);
	return rc;
}

static int proc_exec(shmq_region *r, char *const argv[], const struct shmq_proc_opts *o,
		     shmq_proc **out)
{
	struct shmq__spawn s;
	int rc;

	if (!argv || !argv[0] || !*argv[0] || !out)
		return -EINVAL;
	shmq__proc_guard("shmq_proc_exec");
	if (shmq__region_forked(r))
		return -EBADF; /* the parent's handle: open the region again */
	rc = opts_check(o);
	if (rc)
		return rc;
	shmq__spawn_init(&s);
	rc = proc_start(r, argv[0], argv, NULL, o, &s, out);
	shmq__spawn_fini(&s);
	return rc;
}

/* No cancellation point (core/cancel_int.h). */
SHMQ_API int shmq_proc_exec(shmq_region *r, char *const argv[], const struct shmq_proc_opts *o,
			    shmq_proc **out)
{
	int cs = shmq__cancel_off();
	int rc = proc_exec(r, argv, o, out);

	shmq__cancel_restore(cs);
	return rc;
}

/* ---- lifecycle ---- */

int shmq__status_from_siginfo(const siginfo_t *si)
{
	if (si->si_code == CLD_EXITED)
		return si->si_status;
	return -si->si_status;
}

/* Reap p if it has exited: 0, -EAGAIN while it runs (with WNOHANG), -errno. */
static int proc_reap(shmq_proc *p, int flags)
{
	siginfo_t si;

	if (p->reaped)
		return 0;
	for (;;) {
		memset(&si, 0, sizeof(si));
		if (waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &si, WEXITED | flags) == 0)
			break;
		if (errno != EINTR)
			return -errno;
	}
	if (si.si_pid == 0)
		return -EAGAIN;
	p->status = shmq__status_from_siginfo(&si);
	p->reaped = true;
	return 0;
}

int shmq__pidfd_wait(int pidfd, int64_t deadline)
{
	/* pfd[1]: a timer at the deadline, which a stop of the caller does not
	 * move (shmq__deadline_fd), made at the first timed ppoll; without one
	 * (none could be made), the ppoll's timeout alone bounds the wait.
	 * ppoll ignores fd -1. */
	struct pollfd pfd[2] = { { .fd = pidfd, .events = POLLIN }, { .fd = -1, .events = POLLIN } };
	bool timer_tried = false;
	int rc;

	for (;;) {
		int64_t left = shmq__remaining(deadline);
		struct timespec ts = shmq__ns_to_timespec(left);
		int n;

		if (left == 0) {
			rc = -ETIMEDOUT;
			break;
		}
		if (left != INT64_MAX && !timer_tried) {
			rc = shmq__deadline_fd(deadline);
			pfd[1].fd = rc < 0 ? -1 : rc;
			timer_tried = true;
		}
		n = ppoll(pfd, 2, left == INT64_MAX ? NULL : &ts, NULL);
		if (n > 0 && pfd[0].revents) {
			rc = 0;
			break;
		}
		if (n < 0 && errno != EINTR) {
			rc = -errno;
			break;
		}
	}
	if (pfd[1].fd >= 0)
		close(pfd[1].fd);
	return rc;
}

static int proc_join(shmq_proc *p, int64_t timeout_ns)
{
	int64_t deadline;
	int rc;

	if (!p)
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__timeout_bad(timeout_ns)))
		return -EINVAL;
	if (shmq__foreign(p->owner))
		return -EBADF; /* a copy inherited across fork(): not our child */
	if (timeout_ns < 0)
		return proc_reap(p, 0);
	rc = proc_reap(p, WNOHANG);
	if (rc != -EAGAIN || timeout_ns == SHMQ_NOWAIT)
		return rc;
	deadline = shmq__deadline(timeout_ns);
	for (;;) {
		rc = shmq__pidfd_wait(p->pidfd, deadline);
		if (rc)
			return rc;
		rc = proc_reap(p, WNOHANG);
		if (rc != -EAGAIN)
			return rc;
	}
}

/* No cancellation point (core/cancel_int.h). */
SHMQ_API int shmq_proc_join(shmq_proc *p, int64_t timeout_ns)
{
	int cs = shmq__cancel_off();
	int rc = proc_join(p, timeout_ns);

	shmq__cancel_restore(cs);
	return rc;
}

int shmq__procs_running(shmq_proc *const *procs, unsigned n)
{
	enum { BATCH = 64 };
	struct pollfd pfd[BATCH];

	for (unsigned i = 0; i < n; i += BATCH) {
		unsigned m = n - i < BATCH ? n - i : BATCH;
		int rc;

		for (unsigned k = 0; k < m; k++) {
			if (procs[i + k]->reaped)
				return 0;
			pfd[k] = (struct pollfd){ .fd = procs[i + k]->pidfd, .events = POLLIN };
		}
		do
			rc = poll(pfd, m, 0);
		while (rc < 0 && errno == EINTR);
		if (rc < 0)
			return -errno;
		if (rc > 0)
			return 0;
	}
	return 1;
}

SHMQ_API bool shmq_proc_is_alive(shmq_proc *p)
{
	return p && !shmq__foreign(p->owner) && proc_reap(p, WNOHANG) == -EAGAIN;
}

SHMQ_API int shmq_proc_exitcode(shmq_proc *p)
{
	int rc;

	if (!p)
		return -EINVAL;
	if (shmq__foreign(p->owner))
		return -EBADF;
	rc = proc_reap(p, WNOHANG);
	return rc ? rc : p->status;
}

SHMQ_API int shmq_proc_kill(shmq_proc *p, int sig)
{
	int rc;

	if (!p || sig <= 0 || sig >= NSIG)
		return -EINVAL;
	if (shmq__foreign(p->owner))
		return -EBADF;
	rc = proc_reap(p, WNOHANG);
	if (rc != -EAGAIN)
		return rc;
	if (sys_pidfd_send_signal(p->pidfd, sig) == 0 || errno == ESRCH)
		return 0;
	return -errno;
}

SHMQ_API pid_t shmq_proc_pid(const shmq_proc *p)
{
	return p ? p->pid : -EINVAL;
}

SHMQ_API int shmq_proc_fd(shmq_proc *p, int stream)
{
	if (!p || stream < 0 || stream > 2)
		return -EINVAL;
	if (shmq__foreign(p->owner))
		return -EBADF;
	return p->fd[stream] >= 0 ? p->fd[stream] : -EBADF;
}

static int proc_communicate(shmq_proc *p, const void *in, size_t in_len,
			    struct shmq_run_result *res, int64_t timeout_ns)
{
	struct shmq__talk t;
	int rc;

	if (!res)
		return -EINVAL;
	memset(res, 0, sizeof(*res));
	if (!p || (in_len && (!in || p->fd[0] < 0)) || timeout_ns == SHMQ_NOWAIT ||
	    shmq__timeout_bad(timeout_ns))
		return -EINVAL;
	if (shmq__foreign(p->owner))
		return -EBADF;
	/* Someone else reaped it (-ECHILD): nothing for the loop to wait for.
	 * An unreaped exit stays unreaped (WNOWAIT): its id keeps naming the
	 * group a timeout may have to kill. */
	if (!p->reaped) {
		siginfo_t si;

		memset(&si, 0, sizeof(si));
		if (waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &si, WEXITED | WNOHANG | WNOWAIT) &&
		    errno != EINTR)
			return -errno;
	}
	t = (struct shmq__talk){ .pid = p->pid, .pidfd = p->pidfd, .pgroup = p->pgroup,
				 .reaped = p->reaped, .status = p->status };
	for (int i = 0; i < 3; i++) {
		t.fd[i] = p->fd[i];
		p->fd[i] = -1;
	}
	rc = shmq__run_talk(&t, in, in_len, res, timeout_ns > 0 ? timeout_ns : 0);
	p->reaped = t.reaped;
	p->status = t.status;
	return rc;
}

/* No cancellation point (core/cancel_int.h). */
SHMQ_API int shmq_proc_communicate(shmq_proc *p, const void *in, size_t in_len,
				   struct shmq_run_result *res, int64_t timeout_ns)
{
	int cs = shmq__cancel_off();
	int rc = proc_communicate(p, in, in_len, res, timeout_ns);

	shmq__cancel_restore(cs);
	return rc;
}

static void proc_close(shmq_proc *p)
{
	if (!p)
		return;
	for (int t = 0; t < 3; t++)
		close_keep_errno(p->fd[t]); /* ours, also in a child of fork() (its copies) */
	if (!shmq__foreign(p->owner) && proc_reap(p, WNOHANG) == -EAGAIN) {
		sys_pidfd_send_signal(p->pidfd, SIGKILL);
		proc_reap(p, 0);
	}
	close(p->pidfd);
	shmq__free(p, sizeof(*p));
}

/* No cancellation point (core/cancel_int.h). */
SHMQ_API void shmq_proc_close(shmq_proc *p)
{
	int cs = shmq__cancel_off();

	proc_close(p);
	shmq__cancel_restore(cs);
}

int shmq__proc_pidfd(shmq_proc *p)
{
	if (!p)
		return -EINVAL;
	if (shmq__foreign(p->owner))
		return -EBADF;
	return p->pidfd;
}

/* ---- the child's side ---- */

/* Set by shmq_dispatch in a child it runs an entry in, before the entry runs
 * and (as dispatch must come first in main) before any other thread exists:
 * the entry's threads see it through pthread_create, no atomic needed. */
static bool dispatched;

void shmq__proc_guard(const char *call)
{
	static const char tail[] = "() before shmq_dispatch(): call shmq_dispatch(argc, argv) "
				   "first in main() (see shmq_proc(3))\n";
	const char *entry;
	char msg[512];
	int n;

	if (dispatched || !(entry = getenv(SHMQ__ENTRY_ENV)))
		return;
	n = snprintf(msg, sizeof(msg), "libshmq: process %d, started for entry %.255s, calls %s%s",
		     (int)getpid(), entry, call, tail);
	if (n > 0)
		(void)!write(STDERR_FILENO, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
	_exit(SHMQ_EXIT_NODISPATCH);
}

/* Read the argument memfd (fd) into a private buffer. */
static int arg_load(int fd, void **buf, size_t *len)
{
	struct stat st;
	size_t done = 0;
	char *p;

	if (fstat(fd, &st) || st.st_size <= 0)
		return -EINVAL;
	p = shmq__malloc((size_t)st.st_size);
	if (!p)
		return -ENOMEM;
	while (done < (size_t)st.st_size) {
		ssize_t n = pread(fd, p + done, (size_t)st.st_size - done, (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			shmq__free(p, (size_t)st.st_size);
			return -EIO;
		}
		done += (size_t)n;
	}
	*buf = p;
	*len = done;
	return 0;
}

/* Parse "--shmq-arg=N" (argv[2]) and load the bytes from fd N. */
static int dispatch_arg(int argc, char **argv, void **buf, size_t *len)
{
	char *end;
	long fd;
	int rc;

	*buf = NULL;
	*len = 0;
	if (argc < 3 || !argv[2] || strncmp(argv[2], ARG_FLAG, sizeof(ARG_FLAG) - 1))
		return 0;
	fd = strtol(argv[2] + sizeof(ARG_FLAG) - 1, &end, 10);
	if (*end || fd < 0 || fd > INT_MAX)
		return -EINVAL;
	rc = arg_load((int)fd, buf, len);
	close((int)fd);
	return rc;
}

static int dispatch_child(int argc, char **argv)
{
	const struct shmq_entry *e;
	shmq_region *r = NULL;
	void *arg;
	size_t len;
	int ret;

	/* From here this process is the entry's: it may start processes, and
	 * what it starts by other means than ours is no entry's child. */
	dispatched = true;
	unsetenv(SHMQ__ENTRY_ENV);
	if (shmq__entry_find(argv[1] + sizeof(ENTRY_FLAG) - 1, &e))
		return SHMQ_EXIT_NOENTRY;
	if (dispatch_arg(argc, argv, &arg, &len))
		return SHMQ_EXIT_SETUP;
	if (getenv(SHMQ__REGION_ENV) && shmq_region_inherit(&r)) {
		shmq__free(arg, len);
		return SHMQ_EXIT_SETUP;
	}
	ret = e->fn(r, arg, len);
	shmq_region_close(r);
	shmq__free(arg, len);
	return ret;
}

SHMQ_API int shmq_dispatch(int argc, char **argv)
{
	if (argc < 2 || !argv || !argv[1] ||
	    strncmp(argv[1], ENTRY_FLAG, sizeof(ENTRY_FLAG) - 1) != 0)
		return 0;
	exit(dispatch_child(argc, argv));
}
