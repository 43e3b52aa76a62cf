/* SPDX-License-Identifier: MIT */
/* Processes (seed 12-4): posix_spawn'ed children that share the parent's region. */
#ifndef SHMQ_PROC_H
#define SHMQ_PROC_H

#include <stdint.h>

#include <shmq/common.h>
#include <shmq/run.h> /* SHMQ_STDIN, SHMQ_STDOUT, SHMQ_STDERR, struct shmq_run_result */

#ifdef __cplusplus
extern "C" {
#endif

typedef int (*shmq_entry_fn)(shmq_region *r, const void *arg, size_t len);

/*
 * One registered entry; SHMQ_ENTRY fills it in at file scope.
 *
 * shmq_entry_register adds e (which must live as long as the program, or as
 * its module: see below) to the process-wide registry that shmq_proc_spawn
 * and shmq_dispatch look names up in.  Safe from any thread and from
 * constructors; registering the same struct again is a no-op.  A struct
 * whose fn is NULL is taken out if it is in (SHMQ_ENTRY's destructor does
 * this, so that a module unloaded by dlclose leaves nothing behind).  Two different structs under
 * one name are a programming error that registration order never resolves:
 * the name becomes ambiguous, shmq_proc_spawn refuses it with -EEXIST and a
 * child told to run it exits with SHMQ_EXIT_NOENTRY.  The registry is the
 * library's only global mutable state.
 */
struct shmq_entry {
	const char *name;
	shmq_entry_fn fn;
	struct shmq_entry *next; /* owned by the library */
};
SHMQ_API void shmq_entry_register(struct shmq_entry *e);

/* Register func under its own name, at file scope; withdrawn when the program
 * or module that holds it is unloaded (exit, dlclose). */
#define SHMQ_ENTRY(func)                                                       \
	static struct shmq_entry shmq__entry_##func = { #func, func, 0 };      \
	__attribute__((constructor)) static void shmq__entry_ctor_##func(void) \
	{                                                                      \
		shmq_entry_register(&shmq__entry_##func);                      \
	}                                                                      \
	__attribute__((destructor)) static void shmq__entry_dtor_##func(void)  \
	{                                                                      \
		shmq__entry_##func.fn = 0;                                     \
		shmq_entry_register(&shmq__entry_##func);                      \
	}                                                                      \
	struct shmq__entry_semicolon_##func

/*
 * shmq_dispatch - run a registered entry when this process is a spawned child.
 *
 * Call it first in main(), before creating threads.  In a process started by
 * shmq_proc_spawn (argv[1] is the reserved marker "--shmq-entry=NAME"), it
 * maps the parent's region (shmq_region_inherit; r is NULL when the parent
 * passed none), reads the argument bytes, runs the entry, closes the region
 * and calls exit() with the entry's return value (as for any exit status, only
 * its low 8 bits reach the parent).  If the entry is not registered in this
 * program it exits with SHMQ_EXIT_NOENTRY; if the region or the argument
 * cannot be received, with SHMQ_EXIT_SETUP.  In any other process it returns
 * 0 at once without side effects.  A spawned child whose program reaches
 * shmq_proc_spawn, shmq_proc_exec, shmq_run or shmq_pool_create before
 * shmq_dispatch starts nothing: that call ends it with SHMQ_EXIT_NODISPATCH.
 */
SHMQ_API int shmq_dispatch(int argc, char **argv);

/* Exit statuses of a spawned child that could not run its entry. */
#define SHMQ_EXIT_NOENTRY 122 /* the entry is not registered in the child */
#define SHMQ_EXIT_SETUP   123 /* the region or the argument could not be received */
#define SHMQ_EXIT_NODISPATCH 124 /* the program reached a process-starting call
				    before shmq_dispatch (it does not call it first) */

/* Values of shmq_proc_opts.stdin_fd / stdout_fd / stderr_fd. */
#define SHMQ_PROC_INHERIT 0   /* the child shares the caller's stream (default) */
#define SHMQ_PROC_DEVNULL (-1) /* the child's stream is /dev/null */

/* shmq_proc_opts.flags */
#define SHMQ_PROC_NEWPGRP 0x1u /* the child leads a new process group */

/*
 * Options of shmq_proc_spawn and shmq_proc_exec.  NULL or all-zero means:
 * the caller's environment and working directory, the caller's stdin, stdout
 * and stderr, the caller's process group.
 *
 * A stream field > 0 names a descriptor of the caller that becomes the
 * child's stream (dup2 in the child; the caller's descriptor is untouched).
 * Because 0 means "inherit", the caller's own descriptor 0 cannot be given as
 * the child's stdout or stderr; pass a dup of it.
 *
 * pipes (SHMQ_STDIN | SHMQ_STDOUT | SHMQ_STDERR) connects those streams of
 * the child to new descriptors of the caller (Python's subprocess.PIPE), read
 * with shmq_proc_fd or shmq_proc_communicate.  A piped stream's *_fd field
 * must be SHMQ_PROC_INHERIT (0), else -EINVAL.
 *
 * Whatever the options, the child receives only descriptors 0-2, the region
 * (and, for spawn, the argument); every other descriptor is closed in the
 * child, even those the caller opened without O_CLOEXEC.  Signals the caller
 * blocks are unblocked in the child.  Signals the caller ignores stay ignored
 * (as across exec(2): nohup's SIGHUP, say), except SIGPIPE and SIGXFSZ (as
 * Python's subprocess resets them) and SIGCHLD, which start at their defaults.
 */
struct shmq_proc_opts {
	char *const *envp;  /* NULL: the caller's environ */
	const char *cwd;    /* NULL: the caller's working directory */
	int stdin_fd;       /* SHMQ_PROC_INHERIT, SHMQ_PROC_DEVNULL, or a descriptor > 0 */
	int stdout_fd;
	int stderr_fd;
	unsigned flags;     /* SHMQ_PROC_* */
	/* 0.2: pipes takes the first of the 0.1 reserved words, so the struct
	 * keeps its size and a 0.1 caller's zeroed field means "no pipes". */
	unsigned pipes;     /* SHMQ_STDIN | SHMQ_STDOUT | SHMQ_STDERR */
	uint32_t reserved0; /* must be zero */
	uint64_t reserved[3]; /* must be zero */
};

/*
 * shmq_proc_spawn - run the registered entry in a new process.
 *
 * Re-executes the running program (/proc/self/exe) with posix_spawn; the
 * child's shmq_dispatch runs entry(r', arg', len) where r' is the child's own
 * mapping of r (r may be NULL: the entry gets NULL) and arg' a copy of the
 * len argument bytes (handed over in a memfd; any size).  The child enters
 * r's process table when it maps r.  The entry must be registered in this
 * program too (checked here: -ENOENT before anything is spawned).
 *
 * Thread safe: any thread may spawn at any time; descriptors the library
 * opens are O_CLOEXEC, so concurrent spawns never leak them into each other.
 * The caller must not reap children behind the library's back (SIGCHLD set
 * to SIG_IGN, or waitpid(-1, ...) in another thread).
 *
 * Errors: -EINVAL (arguments, options), -ENOENT (entry not registered, or
 * /proc not mounted), -EBADF (r was inherited across fork(): the child opens
 * the region again), -ENOMEM, -EMFILE, -EAGAIN (process limit), -EFBIG (len
 * above the process's RLIMIT_FSIZE, which the argument's memfd is held to),
 * or the error posix_spawn reported.
 */
SHMQ_API int shmq_proc_spawn(shmq_region *r, const char *entry, const void *arg, size_t len,
			     const struct shmq_proc_opts *o, shmq_proc **out);

/*
 * shmq_proc_exec - run another program, which may reach r.
 *
 * argv[0] is searched in PATH (the caller's) when it holds no '/'.  When r is
 * not NULL the program finds the region with shmq_region_inherit (the
 * descriptor arrives as fd 3, named by SHMQ_REGION_FD in its environment).
 * Same options, thread safety and errors as shmq_proc_spawn; -ENOENT and
 * -EACCES when the program cannot be executed (no child is left behind),
 * -ENOEXEC (not a format the kernel runs), -E2BIG (argv and the
 * environment too long), and execve(2)'s other errors (-ENOTDIR, -ELOOP,
 * -ETXTBSY, ...) as they are.
 */
SHMQ_API int shmq_proc_exec(shmq_region *r, char *const argv[], const struct shmq_proc_opts *o,
			    shmq_proc **out);

/*
 * Lifecycle.  Exits are observed through a pidfd: no polling, no SIGCHLD
 * handler, no pid-reuse race.  One handle is used by one thread at a time.
 *
 * shmq_proc_join waits until the process has exited and reaps it: 0, or
 * -ETIMEDOUT (-EAGAIN for SHMQ_NOWAIT) while it still runs; may be retried.
 * shmq_proc_is_alive: true until the process has exited (reaps it then).
 * shmq_proc_exitcode: >= 0 exit status, -signal when a signal ended it,
 * -EAGAIN while it runs.  -ECHILD from these when someone else reaped it.
 * Signal numbers are errno numbers too (-SIGSEGV is -EAGAIN, -SIGUSR1
 * -ECHILD, -SIGKILL -EBADF): after shmq_proc_join returned 0, exitcode
 * returns the status or -signal only, whatever the value.
 * shmq_proc_kill sends sig (0 < sig < NSIG) unless the process has already
 * exited, which is not an error (0; like Python's Popen.send_signal).
 * shmq_proc_pid: the child's pid (still reported after it was reaped).
 */
SHMQ_API int shmq_proc_join(shmq_proc *p, int64_t timeout_ns);
SHMQ_API bool shmq_proc_is_alive(shmq_proc *p);
SHMQ_API int shmq_proc_exitcode(shmq_proc *p);
SHMQ_API int shmq_proc_kill(shmq_proc *p, int sig);
SHMQ_API pid_t shmq_proc_pid(const shmq_proc *p);

/*
 * Pipes (Python's Popen.stdin / .stdout / .stderr and Popen.communicate).
 *
 * shmq_proc_fd: the caller's end of the child's stream 0, 1 or 2 piped by
 * opts.pipes (O_CLOEXEC, blocking; the caller may poll it, read it, set it
 * non-blocking); -EBADF when that stream is not piped or was closed by
 * communicate, -EINVAL for another stream.  The descriptor belongs to p: do
 * not close it; shmq_proc_close and shmq_proc_communicate do.  Stdin is an
 * AF_UNIX stream socket, not a pipe (as for shmq_run): write() to it works
 * as to a pipe, and communicate feeds it with MSG_NOSIGNAL.
 *
 * shmq_proc_communicate writes in_len bytes of in to the child's stdin, then
 * closes it (EOF), collects stdout and stderr into res (res->out / res->err,
 * NULL for a stream not piped; free with shmq_run_result_free), and waits
 * for the exit (res->status: the exit code, or -signal; the child is reaped,
 * as by shmq_proc_join).  All at once, on io_uring or poll(2) as shmq_run
 * does: no amount of output on both streams can deadlock.  A child that stops
 * reading its stdin makes the rest be dropped (never SIGPIPE here).  The
 * call ends when the child has exited and the piped outputs reached EOF.
 * timeout_ns > 0: at the deadline the child is killed with SIGKILL - its
 * whole process group when it leads one (SHMQ_PROC_NEWPGRP: grandchildren
 * that hold the pipes die too) - and reaped, and the call returns -ETIMEDOUT
 * with res holding what was read; SHMQ_FOREVER: no limit; SHMQ_NOWAIT, and
 * any negative but SHMQ_FOREVER, is -EINVAL (communicate always waits).  Every piped descriptor of p is closed
 * when it returns (shmq_proc_fd is then -EBADF).  Returns 0, -ETIMEDOUT,
 * -EINVAL (in_len > 0 without a piped stdin, in NULL with in_len, p NULL),
 * -ECHILD (already reaped by someone else), -ENOMEM; res is empty on any
 * error but -ETIMEDOUT.  One thread per handle.
 */
SHMQ_API int shmq_proc_fd(shmq_proc *p, int stream);
SHMQ_API int shmq_proc_communicate(shmq_proc *p, const void *in, size_t in_len,
				   struct shmq_run_result *res, int64_t timeout_ns);

/*
 * shmq_proc_close - release the handle; never leaves a zombie behind.
 *
 * A process that has exited is reaped.  A process that still runs is killed
 * (SIGKILL) and reaped: without a reaper thread or a SIGCHLD handler (which a
 * library must not install) a detached child would stay a zombie once it
 * exits, and nobody could observe its end any more.  To let a child finish,
 * join it before closing.  Its piped descriptors are closed.  NULL is a no-op.
 */
SHMQ_API void shmq_proc_close(shmq_proc *p);

#ifdef __cplusplus
}
#endif
#endif /* SHMQ_PROC_H */
