/* SPDX-License-Identifier: MIT */
/*
 * Running programs (seed 12-7): Python's subprocess.run.
 *
 * The child is started with posix_spawn; its stdout and stderr are pipes (1 MiB
 * each where the pipe limit allows), its stdin a socket (so that writing to a
 * child that stopped reading fails with EPIPE under MSG_NOSIGNAL instead of
 * raising SIGPIPE in the caller).  One event loop then feeds stdin, drains
 * both outputs into growing buffers and waits for the exit, all at once, so
 * no amount of output on either stream can deadlock.
 *
 * The loop runs on io_uring (READ, SEND, and WAITID where the kernel has it,
 * else POLL_ADD on the child's pidfd); where io_uring is refused (seccomp,
 * kernel.io_uring_disabled) or SHMQ_RUN_BACKEND=poll is set, on poll(2).  Both
 * backends only produce events; one state machine (run_on_*) consumes them.
 * A run with nothing to capture or feed waits on poll(2) too: its one event
 * is the exit, and a ring's setup would cost more than the wait.
 *
 * The exit is observed with WNOWAIT: the child stays a zombie, and so keeps its
 * pid and process-group id reserved, until run_finish reaps it.  A timeout
 * therefore can SIGKILL the whole group without ever hitting a reused id.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <shmq.h>

#include "core/alloc_int.h"
#include "core/cancel_int.h"
#include "core/fd_int.h"
#include "proc/proc_int.h"
#include "core/time_int.h"
#include "core/wait_int.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
/* IORING_OP_WAITID (Linux 6.7) is newer than the liburing headers we build
 * against: its number in the kernel's enum io_uring_op. */
#define RUN_OP_WAITID 50

#define RUN_CHUNK   ((size_t)64 << 10) /* least free space offered to a read */
#define RUN_FIRST   ((size_t)64 << 10) /* first buffer size */
#define RUN_PIPE_SZ (1 << 20)
#define RUN_SEND_MAX ((size_t)1 << 20)
#define RUN_DRAIN_MAX 16               /* reads of leftovers after a kill */
#define RUN_BIG     ((size_t)1 << 20)  /* larger buffers are page mappings (mremap) */
#define RUN_AHEAD   ((size_t)4 << 20)  /* prefault this far ahead of the data */

enum { TAG_OUT = 0, TAG_ERR = 1, TAG_IN = 2, TAG_EXIT = 3, TAG_CANCEL = 4, TAG_TIMER = 5 };

struct run_buf {
	int fd;        /* parent's read end, -1 when closed or not captured */
	char *p;
	size_t len, cap;
	size_t ready;  /* big: [0, ready) is populated, page aligned */
	bool big;      /* p is a page mapping (shmq__pages_*), not a heap block */
	bool busy;     /* a read is in flight (io_uring) */
};

struct run {
	struct run_buf s[2];    /* stdout, stderr */
	int in_fd;              /* parent's end of the stdin socket, or -1 */
	const char *in_p;
	size_t in_left;
	bool in_busy;
	pid_t pid;
	int pidfd;
	bool pgroup;            /* the child leads its own process group */
	bool exited, exit_busy, reaped;
	int status;
	bool stopping;          /* killed (timeout or error): stop at the exit */
	bool group_killed;      /* ... the whole group: the status is -SIGKILL */
	bool cancelled;         /* io_uring: cancels submitted */
	int err;                /* first internal error */
	int64_t deadline;
	int timer_fd;           /* poll(2): a timer at the deadline; -1 none yet, -2 refused */
	siginfo_t si;           /* IORING_OP_WAITID writes here */
	bool uring, use_waitid;
	bool lost;              /* reaped behind our back: no status (run_on_lost) */
	struct io_uring ring;
};

/* ---- the state machine: events in, state out ---- */

static void fd_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Move b's bytes into a fresh block of size bytes (a page mapping when big). */
static int buf_move(struct run_buf *b, size_t size, bool big)
{
	char *np = big ? shmq__pages_alloc(size) : shmq__malloc(size);

	if (!np)
		return -ENOMEM;
	if (b->len)
		memcpy(np, b->p, b->len);
	if (b->big)
		shmq__pages_free(b->p, b->cap);
	else
		shmq__free(b->p, b->cap);
	b->p = np;
	b->cap = size;
	b->big = big;
	b->ready = b->len & ~(RUN_CHUNK - 1); /* what memcpy touched, page aligned */
	return 0;
}

/* Resize b to size bytes (>= len), as a page mapping exactly when size > RUN_BIG:
 * large buffers grow by mremap, without copying or touching a page twice. */
static int buf_resize(struct run_buf *b, size_t size)
{
	bool big = size > RUN_BIG;
	char *np;

	if (big != b->big || !b->p)
		return buf_move(b, size, big);
	np = big ? shmq__pages_realloc(b->p, b->cap, size) : shmq__realloc(b->p, b->cap, size);
	if (!np)
		return -ENOMEM;
	b->p = np;
	b->cap = size;
	return 0;
}

/* Big buffers: populate the pages the next reads will fill, RUN_AHEAD at a
 * time, so the kernel does not take a fault per page inside each read. */
static void buf_prefault(struct run_buf *b)
{
	size_t n;

	if (!b->big || b->ready >= b->len + RUN_AHEAD / 2 || b->ready >= b->cap)
		return;
	n = b->cap - b->ready < RUN_AHEAD ? b->cap - b->ready : RUN_AHEAD;
	shmq__pages_prefault(b->p + b->ready, n);
	b->ready += n;
}

static int buf_reserve(struct run_buf *b)
{
	int rc = 0;

	if (b->cap - b->len < RUN_CHUNK)
		rc = buf_resize(b, b->cap ? b->cap * 2 : RUN_FIRST);
	if (!rc)
		buf_prefault(b);
	return rc;
}

static void buf_free(struct run_buf *b)
{
	if (b->big)
		shmq__pages_free(b->p, b->cap);
	else
		shmq__free(b->p, b->cap);
	b->p = NULL;
	b->cap = 0;
}

/* A read of stream i returned n bytes (0: EOF) or -errno. */
static void run_on_read(struct run *R, int i, ssize_t n)
{
	struct run_buf *b = &R->s[i];

	if (n > 0)
		b->len += (size_t)n;
	else if (n == 0 || (n != -EAGAIN && n != -EINTR && n != -ECANCELED))
		fd_close(&b->fd); /* EOF, or an error that ends the stream like one */
}

/* A send to stdin took n bytes, or failed with -errno. */
static void run_on_send(struct run *R, ssize_t n)
{
	if (n > 0) {
		R->in_p += n;
		R->in_left -= (size_t)n;
	} else if (n != -EAGAIN && n != -EINTR && n != -ECANCELED) {
		R->in_left = 0; /* the child stopped reading (EPIPE): drop the rest */
	}
	if (R->in_left == 0)
		fd_close(&R->in_fd); /* EOF for the child */
}

static void run_on_exit(struct run *R, const siginfo_t *si)
{
	R->exited = true;
	/* a leader that exited by itself just before the group kill: the group
	 * was killed all the same (run_stop) */
	R->status = R->group_killed ? -SIGKILL : shmq__status_from_siginfo(si);
}

/*
 * The child was reaped behind our back (SIGCHLD set to SIG_IGN, or a
 * waitpid(-1) elsewhere: the documented misuse): its exit status is lost and
 * its pidfd stays readable for good.  Stop with -ECHILD, as shmq_proc_join
 * says it.  Nothing is killed by its pid, which may name another process
 * now (run_stop's group kill is not made from here).
 */
static void run_on_lost(struct run *R)
{
	R->exited = true;
	R->reaped = true;
	R->lost = true;
	if (!R->err)
		R->err = -ECHILD;
	R->stopping = true;
	R->deadline = SHMQ__NO_DEADLINE;
}

/*
 * Kill the child (and its group) and stop at its exit; keep what was read.
 * The group is killed even when the child has exited: we are stopping
 * because something still holds the pipes open (or the loop failed), and
 * that is a descendant in its group.  The exited leader is a zombie we have
 * not reaped (WNOWAIT), so its id still names this group and no other; the
 * status then says the group was killed, as it does for a leader killed
 * alive.
 */
static void run_stop(struct run *R, int err)
{
	if (!R->err)
		R->err = err;
	if (R->stopping)
		return;
	R->stopping = true;
	R->deadline = SHMQ__NO_DEADLINE;
	if (R->pgroup) {
		kill(-R->pid, SIGKILL);
		R->group_killed = true;
		if (R->exited)
			R->status = -SIGKILL;
	} else if (!R->exited) {
		syscall(SYS_pidfd_send_signal, R->pidfd, SIGKILL, NULL, 0);
	}
}

static bool run_idle(const struct run *R)
{
	return !R->s[0].busy && !R->s[1].busy && !R->in_busy && !R->exit_busy;
}

static bool run_done(const struct run *R)
{
	if (R->stopping)
		return R->exited && run_idle(R);
	return R->exited && R->s[0].fd < 0 && R->s[1].fd < 0 && R->in_fd < 0;
}

/* Stream i wants a read now: open, idle, not stopping, with room. */
static bool run_wants_read(struct run *R, int i)
{
	struct run_buf *b = &R->s[i];
	int rc;

	if (b->fd < 0 || b->busy || R->stopping)
		return false;
	rc = buf_reserve(b);
	if (rc) {
		run_stop(R, rc);
		return false;
	}
	return true;
}

static unsigned run_read_len(const struct run_buf *b)
{
	size_t n = b->cap - b->len;

	return n < ((size_t)1 << 30) ? (unsigned)n : 1u << 30;
}

static bool run_wants_send(const struct run *R)
{
	return R->in_fd >= 0 && !R->in_busy && !R->stopping && R->in_left;
}

static size_t run_send_len(const struct run *R)
{
	return R->in_left < RUN_SEND_MAX ? R->in_left : RUN_SEND_MAX;
}

/* ---- backend 1: io_uring ---- */

static struct io_uring_sqe *uring_sqe(struct run *R, uint64_t tag)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&R->ring);

	if (!sqe) {
		io_uring_submit(&R->ring);
		sqe = io_uring_get_sqe(&R->ring);
	}
	if (sqe)
		io_uring_sqe_set_data64(sqe, tag);
	return sqe;
}

static void uring_prep_waitid(struct io_uring_sqe *sqe, int pidfd, siginfo_t *si)
{
	/* What liburing >= 2.5's io_uring_prep_waitid writes. */
	io_uring_prep_rw(RUN_OP_WAITID, sqe, pidfd, NULL, P_PIDFD, 0);
	sqe->file_index = WEXITED | WNOWAIT; /* waitid options */
	sqe->addr2 = (uint64_t)(uintptr_t)si;
}

static void uring_arm_exit(struct run *R)
{
	struct io_uring_sqe *sqe;

	if (R->exited || R->exit_busy || !(sqe = uring_sqe(R, TAG_EXIT)))
		return;
	if (R->use_waitid)
		uring_prep_waitid(sqe, R->pidfd, &R->si);
	else
		io_uring_prep_poll_add(sqe, R->pidfd, POLLIN);
	R->exit_busy = true;
}

static void uring_cancel(struct run *R)
{
	static const uint64_t tags[] = { TAG_OUT, TAG_ERR, TAG_IN };
	const bool busy[] = { R->s[0].busy, R->s[1].busy, R->in_busy };
	struct io_uring_sqe *sqe;

	if (R->cancelled || !R->exited)
		return;
	R->cancelled = true;
	for (int i = 0; i < 3; i++)
		if (busy[i] && (sqe = uring_sqe(R, TAG_CANCEL)))
			io_uring_prep_cancel64(sqe, tags[i], 0);
}

static void uring_arm(struct run *R)
{
	struct io_uring_sqe *sqe;

	for (int i = 0; i < 2; i++) {
		struct run_buf *b = &R->s[i];

		if (!run_wants_read(R, i) || !(sqe = uring_sqe(R, (uint64_t)i)))
			continue;
		io_uring_prep_read(sqe, b->fd, b->p + b->len, run_read_len(b), -1);
		b->busy = true;
	}
	if (run_wants_send(R) && (sqe = uring_sqe(R, TAG_IN))) {
		io_uring_prep_send(sqe, R->in_fd, R->in_p, run_send_len(R), MSG_NOSIGNAL);
		R->in_busy = true;
	}
	uring_arm_exit(R);
	if (R->stopping)
		uring_cancel(R);
}

/* The exit watch completed with res. */
static void uring_on_exit(struct run *R, int res)
{
	siginfo_t si;

	R->exit_busy = false;
	if (R->use_waitid) {
		if (res == 0)
			run_on_exit(R, &R->si);
		else if (res == -ECHILD)
			run_on_lost(R);
		else if (res == -EINVAL)
			R->use_waitid = false; /* refused after all: watch the pidfd instead */
		else if (res != -EINTR)
			run_stop(R, res);
		return;
	}
	memset(&si, 0, sizeof(si));
	if (res <= 0)
		return;
	if (waitid((idtype_t)P_PIDFD, (id_t)R->pidfd, &si, WEXITED | WNOHANG | WNOWAIT) == 0) {
		if (si.si_pid)
			run_on_exit(R, &si);
	} else if (errno == ECHILD) {
		run_on_lost(R);
	}
}

static void uring_dispatch(struct run *R, uint64_t tag, int res)
{
	switch (tag) {
	case TAG_OUT:
	case TAG_ERR:
		R->s[tag].busy = false;
		run_on_read(R, (int)tag, res);
		break;
	case TAG_IN:
		R->in_busy = false;
		run_on_send(R, res);
		break;
	case TAG_EXIT:
		uring_on_exit(R, res);
		break;
	default:
		break; /* TAG_CANCEL: the cancelled operation reports itself */
	}
}

/* Submit what the state wants, wait for at least one completion or the
 * deadline, and feed every completion to the state machine. */
static int uring_step(struct run *R)
{
	struct __kernel_timespec ts, *tsp = NULL;
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0;
	int rc;

	uring_arm(R);
	if (R->deadline != SHMQ__NO_DEADLINE) {
		int64_t left = shmq__remaining(R->deadline);

		if (left == 0)
			return -ETIMEDOUT;
		ts = shmq__ns_to_kernel_timespec(left);
		tsp = &ts;
	}
	rc = io_uring_submit_and_wait_timeout(&R->ring, &cqe, 1, tsp, NULL);
	if (rc == -ETIME)
		return -ETIMEDOUT;
	if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
		return rc;
	io_uring_for_each_cqe(&R->ring, head, cqe) {
		uring_dispatch(R, io_uring_cqe_get_data64(cqe), cqe->res);
		seen++;
	}
	io_uring_cq_advance(&R->ring, seen);
	return 0;
}

static bool uring_forced_off(void)
{
	const char *b = getenv("SHMQ_RUN_BACKEND");

	return b && strcmp(b, "poll") == 0;
}

static int uring_init(struct run *R)
{
	struct io_uring_params p;
	struct io_uring_probe *probe;
	int rc;

	if (uring_forced_off())
		return -ENOSYS;
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	rc = io_uring_queue_init_params(8, &R->ring, &p);
	if (rc == -EINVAL) {
		memset(&p, 0, sizeof(p)); /* a kernel before 6.1 */
		rc = io_uring_queue_init_params(8, &R->ring, &p);
	}
	if (rc)
		return rc;
	if (shmq__fd_lift(&R->ring.ring_fd)) /* never at 0-2 (core/fd_int.h) */
		R->ring.enter_ring_fd = R->ring.ring_fd;
	probe = io_uring_get_probe_ring(&R->ring);
	R->use_waitid = probe && io_uring_opcode_supported(probe, RUN_OP_WAITID);
	if (probe)
		io_uring_free_probe(probe);
	R->uring = true;
	return 0;
}

/* ---- backend 2: poll(2) on the same descriptors ---- */

static void poll_read(struct run *R, int i)
{
	struct run_buf *b = &R->s[i];
	ssize_t n;

	if (!run_wants_read(R, i))
		return;
	n = read(b->fd, b->p + b->len, b->cap - b->len);
	run_on_read(R, i, n < 0 ? -errno : n);
}

static void poll_send(struct run *R)
{
	ssize_t n;

	if (!run_wants_send(R))
		return;
	n = send(R->in_fd, R->in_p, run_send_len(R), MSG_NOSIGNAL | MSG_DONTWAIT);
	run_on_send(R, n < 0 ? -errno : n);
}

static void poll_exit(struct run *R)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	if (waitid((idtype_t)P_PIDFD, (id_t)R->pidfd, &si, WEXITED | WNOHANG | WNOWAIT) == 0) {
		if (si.si_pid)
			run_on_exit(R, &si);
	} else if (errno == ECHILD) {
		run_on_lost(R);
	}
}

static int poll_step(struct run *R)
{
	struct pollfd pf[5];
	struct timespec ts, *tsp = NULL;
	int tag[5], n = 0, rc;

	for (int i = 0; i < 2; i++)
		if (R->s[i].fd >= 0 && !R->stopping) {
			pf[n] = (struct pollfd){ .fd = R->s[i].fd, .events = POLLIN };
			tag[n++] = i;
		}
	if (run_wants_send(R)) {
		pf[n] = (struct pollfd){ .fd = R->in_fd, .events = POLLOUT };
		tag[n++] = TAG_IN;
	}
	if (!R->exited) {
		pf[n] = (struct pollfd){ .fd = R->pidfd, .events = POLLIN };
		tag[n++] = TAG_EXIT;
	}
	if (R->deadline != SHMQ__NO_DEADLINE) {
		int64_t left = shmq__remaining(R->deadline);

		if (left == 0)
			return -ETIMEDOUT;
		ts = shmq__ns_to_timespec(left);
		tsp = &ts;
		/* the ppoll's timeout ends late by the length of a stop of
		 * the caller, the timer does not (shmq__deadline_fd); made
		 * once, and without one the timeout alone bounds the wait */
		if (R->timer_fd == -1) {
			rc = shmq__deadline_fd(R->deadline);
			R->timer_fd = rc < 0 ? -2 : rc;
		}
		if (R->timer_fd >= 0) {
			pf[n] = (struct pollfd){ .fd = R->timer_fd, .events = POLLIN };
			tag[n++] = TAG_TIMER;
		}
	}
	rc = ppoll(pf, (nfds_t)n, tsp, NULL);
	if (rc < 0)
		return errno == EINTR ? 0 : -errno;
	if (rc == 0)
		return -ETIMEDOUT;
	for (int k = 0; k < n; k++) {
		if (!pf[k].revents)
			continue;
		if (tag[k] == TAG_IN)
			poll_send(R);
		else if (tag[k] == TAG_EXIT)
			poll_exit(R);
		else if (tag[k] != TAG_TIMER) /* the timer: the next step times out */
			poll_read(R, tag[k]);
	}
	return 0;
}

static void set_nonblock(int fd)
{
	int fl = fd >= 0 ? fcntl(fd, F_GETFL) : -1;

	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* ---- setup and teardown ---- */

int shmq__stream_open(struct shmq__spawn *s, int t, int *parent_end, int *child_end)
{
	int fds[2], rc;

	if (t == 0 ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds)
		   : pipe2(fds, O_CLOEXEC))
		return -errno;
	/* ours stays: never at 0-2 (core/fd_int.h); the child's is lifted by
	 * shmq__spawn_fd and closed after the spawn */
	fds[0] = shmq__fd_high(fds[0]);
	if (fds[0] < 0) {
		rc = -errno;
		close(fds[1]);
		return rc;
	}
	if (t)
		fcntl(fds[0], F_SETPIPE_SZ, RUN_PIPE_SZ); /* best effort: the pipe limit may refuse */
	/* the child reads its stdin from fds[1] and writes its outputs to it */
	rc = shmq__spawn_fd(s, t, fds[1]);
	if (rc) {
		close(fds[0]);
		close(fds[1]);
		return rc;
	}
	*parent_end = fds[0];
	*child_end = fds[1];
	return 0;
}

static int run_stdin(struct run *R, struct shmq__spawn *s, const struct shmq_run_opts *o,
		     int *child_end)
{
	int rc = shmq__stream_open(s, 0, &R->in_fd, child_end);

	R->in_p = o->input;
	R->in_left = o->input_len;
	if (!R->in_left)
		fd_close(&R->in_fd);
	return rc;
}

static int run_spawn(struct run *R, char *const argv[], const struct shmq_run_opts *o)
{
	struct shmq__spawn s;
	int child[3] = { -1, -1, -1 }, rc = 0;

	shmq__spawn_init(&s);
	s.cwd = o->cwd;
	s.search = strchr(argv[0], '/') == NULL;
	if (R->pgroup)
		s.pgroup = 0;
	if (o->input)
		rc = run_stdin(R, &s, o, &child[0]);
	for (int t = 1; t <= 2 && !rc; t++)
		if (o->capture & (t == 1 ? SHMQ_STDOUT : SHMQ_STDERR))
			rc = shmq__stream_open(&s, t, &R->s[t - 1].fd, &child[t]);
	if (!rc)
		rc = shmq__env_build(&s.env, o->envp, (const char *const[2]){ NULL, NULL });
	if (!rc)
		rc = shmq__spawn_run(&s, argv[0], argv, &R->pid);
	for (int t = 0; t < 3; t++)
		fd_close(&child[t]);
	shmq__spawn_fini(&s);
	if (rc)
		return rc;
	R->pidfd = shmq__fd_high((int)syscall(SYS_pidfd_open, R->pid, 0)); /* core/fd_int.h */
	if (R->pidfd < 0) {
		rc = -errno;
		kill(R->pid, SIGKILL); /* it is ours and not yet waited for */
		while (waitpid(R->pid, NULL, 0) < 0 && errno == EINTR)
			;
		R->reaped = true;
	}
	return rc;
}

/* After a kill: keep what the pipes already hold, without waiting for more. */
static void run_drain(struct run *R)
{
	for (int i = 0; i < 2; i++) {
		struct run_buf *b = &R->s[i];

		set_nonblock(b->fd);
		for (int k = 0; k < RUN_DRAIN_MAX && b->fd >= 0; k++) {
			ssize_t n;

			if (buf_reserve(b))
				break;
			n = read(b->fd, b->p + b->len, b->cap - b->len);
			if (n < 0 && errno == EAGAIN)
				break;
			run_on_read(R, i, n < 0 ? -errno : n);
		}
	}
}

static void run_reap(struct run *R)
{
	siginfo_t si;

	if (R->reaped || R->pid <= 0)
		return;
	if (!R->exited)
		run_stop(R, R->err ? R->err : -EINTR);
	memset(&si, 0, sizeof(si));
	while (waitid((idtype_t)P_PIDFD, (id_t)R->pidfd, &si, WEXITED) < 0) {
		if (errno != EINTR) {
			R->lost = errno == ECHILD;
			break;
		}
	}
	if (!R->exited && si.si_pid)
		run_on_exit(R, &si);
	R->reaped = true;
}

/* Shrink b to exactly len + 1 bytes (a NUL after the output) and hand it
 * over; shmq_run_result_free tells the two kinds of block apart by that size. */
static int buf_take(struct run_buf *b, bool captured, char **out, size_t *out_len)
{
	int rc;

	*out = NULL;
	*out_len = 0;
	if (!captured)
		return 0;
	rc = buf_resize(b, b->len + 1);
	if (rc)
		return rc;
	b->p[b->len] = '\0';
	*out = b->p;
	*out_len = b->len;
	b->p = NULL;
	b->cap = 0;
	b->big = false;
	return 0;
}

static void run_release(struct run *R)
{
	if (R->uring)
		io_uring_queue_exit(&R->ring);
	for (int i = 0; i < 2; i++) {
		fd_close(&R->s[i].fd);
		buf_free(&R->s[i]);
	}
	fd_close(&R->in_fd);
	fd_close(&R->pidfd);
	fd_close(&R->timer_fd);
}

/* Nothing to move and no deadline: the exit is the only event; one blocking
 * waitid observes it and reaps. */
static int run_wait_only(struct run *R)
{
	siginfo_t si;

	if (R->reaped)
		return 0; /* communicate on a child joined before: nothing to wait for */
	memset(&si, 0, sizeof(si));
	while (waitid((idtype_t)P_PIDFD, (id_t)R->pidfd, &si, WEXITED) < 0)
		if (errno != EINTR)
			return -errno; /* run_reap kills and reaps it */
	run_on_exit(R, &si);
	R->reaped = true;
	return 0;
}

static bool run_has_streams(const struct run *R)
{
	return R->s[0].fd >= 0 || R->s[1].fd >= 0 || R->in_fd >= 0;
}

static int run_loop(struct run *R)
{
	int rc;

	if (!run_has_streams(R) && R->deadline == SHMQ__NO_DEADLINE)
		return run_wait_only(R);
	/* With no stream to move, the only event is the exit (and the deadline):
	 * a poll on the pidfd is all a ring would do, minus its setup (~20-100 us
	 * here).  Otherwise io_uring, or poll(2) where it is refused. */
	if (!run_has_streams(R) || uring_init(R)) {
		R->uring = false;
		for (int i = 0; i < 2; i++)
			set_nonblock(R->s[i].fd);
	}
	while (!run_done(R)) {
		rc = R->uring ? uring_step(R) : poll_step(R);
		if (rc == -ETIMEDOUT) {
			run_stop(R, rc); /* no deadline from now on: waits for the exit */
		} else if (rc < 0) {
			run_stop(R, rc); /* the loop itself failed: reap without it */
			break;
		}
	}
	if (R->stopping)
		run_drain(R);
	return R->err;
}

static void run_init(struct run *R, const struct shmq_run_opts *o)
{
	memset(R, 0, sizeof(*R));
	R->s[0].fd = R->s[1].fd = R->in_fd = R->pidfd = R->timer_fd = -1;
	R->deadline = SHMQ__NO_DEADLINE;
	if (o->timeout_ns > 0)
		R->deadline = shmq__deadline(o->timeout_ns);
}

/* The loop's outcome into res, and everything R holds released.  rc: the
 * loop's; captured[i]: stream i goes into res. */
static int run_finish(struct run *R, int rc, const bool captured[2], struct shmq_run_result *res)
{
	int rc2;

	run_reap(R);
	res->status = R->status;
	rc2 = buf_take(&R->s[0], captured[0], &res->out, &res->out_len);
	if (!rc2)
		rc2 = buf_take(&R->s[1], captured[1], &res->err, &res->err_len);
	run_release(R);
	if (!rc)
		rc = rc2;
	if (rc && rc != -ETIMEDOUT)
		shmq_run_result_free(res);
	return rc;
}

static int run_call(char *const argv[], const struct shmq_run_opts *o,
		    struct shmq_run_result *res)
{
	static const struct shmq_run_opts defaults;
	struct run R;
	int rc;

	if (!res)
		return -EINVAL;
	memset(res, 0, sizeof(*res));
	if (!argv || !argv[0] || !*argv[0])
		return -EINVAL;
	shmq__proc_guard("shmq_run");
	if (!o)
		o = &defaults;
	if ((o->capture & ~(SHMQ_STDOUT | SHMQ_STDERR)) || (o->input_len && !o->input) ||
	    shmq__timeout_bad(o->timeout_ns))
		return -EINVAL;
	run_init(&R, o);
	R.pgroup = o->timeout_ns > 0;
	rc = run_spawn(&R, argv, o);
	if (!rc)
		rc = run_loop(&R);
	return run_finish(&R, rc, (const bool[2]){ o->capture & SHMQ_STDOUT,
						   o->capture & SHMQ_STDERR }, res);
}

/* No cancellation point (core/cancel_int.h). */
SHMQ_API int shmq_run(char *const argv[], const struct shmq_run_opts *o,
		      struct shmq_run_result *res)
{
	int cs = shmq__cancel_off();
	int rc = run_call(argv, o, res);

	shmq__cancel_restore(cs);
	return rc;
}

/*
 * Popen.communicate: the same loop on a child shmq_proc_spawn/exec started
 * with pipes.  Its pidfd stays the handle's (the loop borrows it); its
 * streams are the loop's from here and are closed by run_release.
 */
int shmq__run_talk(struct shmq__talk *t, const void *in, size_t in_len,
		   struct shmq_run_result *res, int64_t timeout_ns)
{
	const struct shmq_run_opts o = { .input = in, .input_len = in_len,
					 .timeout_ns = timeout_ns };
	const bool captured[2] = { t->fd[1] >= 0, t->fd[2] >= 0 };
	struct run R;
	int rc;

	run_init(&R, &o);
	R.pid = t->pid;
	R.pidfd = t->pidfd;
	R.pgroup = t->pgroup && !t->reaped; /* a reaped leader's id names nothing of ours */
	R.in_fd = t->fd[0];
	R.in_p = in;
	R.in_left = in_len;
	R.s[0].fd = t->fd[1];
	R.s[1].fd = t->fd[2];
	for (int i = 0; i < 3; i++)
		t->fd[i] = -1;
	if (!R.in_left)
		fd_close(&R.in_fd); /* EOF for the child at once */
	if (t->reaped) {
		R.exited = R.reaped = true;
		R.status = t->status;
	}
	rc = run_loop(&R);
	run_reap(&R);
	R.pidfd = -1; /* the handle's: run_release must not close it */
	t->reaped = R.reaped && !R.lost; /* lost: join and exitcode say -ECHILD */
	t->status = R.status;
	return run_finish(&R, rc, captured, res);
}

/* Free a block buf_take handed out: its size says which kind it is. */
static void run_block_free(char *p, size_t size)
{
	if (!p)
		return;
	if (size > RUN_BIG)
		shmq__pages_free(p, size);
	else
		shmq__free(p, size);
}

SHMQ_API void shmq_run_result_free(struct shmq_run_result *res)
{
	if (!res)
		return;
	run_block_free(res->out, res->out_len + 1);
	run_block_free(res->err, res->err_len + 1);
	memset(res, 0, sizeof(*res));
}
