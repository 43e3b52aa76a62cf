/* SPDX-License-Identifier: MIT */
/* Running programs (seed 12-7): Python subprocess.run. */
#ifndef SHMQ_RUN_H
#define SHMQ_RUN_H

#include <shmq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHMQ_STDOUT 0x1u
#define SHMQ_STDERR 0x2u
#define SHMQ_STDIN  0x4u /* shmq_proc_opts.pipes only */

/*
 * Options of shmq_run; NULL or all-zero: nothing fed, nothing captured, no
 * time limit, the caller's working directory and environment.
 *
 * input     NULL: the child shares the caller's stdin.  Otherwise the child's
 *           stdin delivers these input_len bytes (possibly 0), then EOF.  It
 *           is a socket, not a pipe: a child that stops reading makes the
 *           rest be dropped (EPIPE without SIGPIPE), never a signal here.
 * capture   streams collected into the result; the others are the caller's.
 * timeout   > 0: at the deadline the child's whole process group is killed
 *           (SIGKILL; the child then leads a group of its own, so grand-
 *           children that hold the pipes die too), it is reaped, and the call
 *           returns -ETIMEDOUT with what was read so far.  A child in its own
 *           group that reads a terminal stdin gets SIGTTIN: give input.
 * envp      NULL: the caller's environ.  SHMQ_REGION_FD is always removed
 *           (no region reaches a program run this way).
 * The child starts with no blocked signal; a signal the caller ignores stays
 * ignored, but for SIGPIPE, SIGXFSZ and SIGCHLD, which start at their defaults.
 */
struct shmq_run_opts {
	const void *input;
	size_t input_len;
	unsigned capture;   /* SHMQ_STDOUT | SHMQ_STDERR */
	int64_t timeout_ns; /* 0 or SHMQ_FOREVER: no limit; other negatives: -EINVAL */
	const char *cwd;
	char *const *envp;
};

/* out / err: the captured bytes, NUL-terminated (the NUL is not counted in
 * the length); NULL for a stream not captured.  Free with shmq_run_result_free
 * only (large outputs are page mappings, not malloc blocks). */
struct shmq_run_result {
	int status; /* exit code, or -signal */
	char *out;
	size_t out_len;
	char *err;
	size_t err_len;
};

/*
 * shmq_run - run argv (argv[0] searched in PATH when it holds no '/'), feed
 * input, capture output, wait for the exit: Python's subprocess.run.
 *
 * Any amount of output on both streams at once, without deadlock: one
 * io_uring loop feeds stdin, drains stdout and stderr and waits for the exit
 * (IORING_OP_WAITID, or a poll of the child's pidfd); where io_uring is refused
 * (seccomp, kernel.io_uring_disabled) or SHMQ_RUN_BACKEND=poll, the same loop
 * runs on poll(2).  Like Python, a normal run ends when the child has exited
 * and both captured streams reached EOF: without a timeout, a grandchild
 * that keeps them open keeps the call waiting.
 *
 * Returns 0 when the child ran and exited (res->status: its exit code, or
 * -signal), -ETIMEDOUT (res filled: output so far, status -SIGKILL),
 * -ENOENT / -EACCES when the program cannot be executed (or -ENOEXEC: not
 * a format the kernel runs; -E2BIG: argv and the environment too long;
 * execve(2)'s other errors, such as -ENOTDIR or -ELOOP, as they are),
 * -EINVAL, -ENOMEM, -EMFILE.  On any error but -ETIMEDOUT, res is empty.  Either way
 * shmq_run_result_free(res) is safe.  No descriptor, child or zombie is left
 * behind; every descriptor the call opens is O_CLOEXEC.
 *
 * Thread safe: any number of threads may run programs at once.  The caller
 * must not reap children behind the library's back (SIGCHLD = SIG_IGN, or
 * waitpid(-1, ...) in another thread); a child reaped so has no status to
 * report, and the call returns -ECHILD (res empty) once it has noticed.
 */
SHMQ_API int shmq_run(char *const argv[], const struct shmq_run_opts *o, struct shmq_run_result *res);

/* Free what shmq_run put in res and zero it.  NULL or an empty res: no-op. */
SHMQ_API void shmq_run_result_free(struct shmq_run_result *res);

#ifdef __cplusplus
}
#endif
#endif /* SHMQ_RUN_H */
