/* SPDX-License-Identifier: MIT */
/*
 * Waitsets: wait-any over queues, pipes, processes, async results and plain
 * descriptors, with one kernel object that is readable whenever a wait would
 * not block (shmq_waitset_fd), through the readiness mechanism the
 * scheduler's watches use (sched/ready_int.h).
 *
 * An entry watches up to two futex words (a queue's or pipe's data and space
 * words, an async's done word) and up to one descriptor (a process's pidfd, a
 * plain fd).  It counts in a word's sleepers only while a kernel wait on the
 * word is armed (from before its check of the condition until the wait's
 * completion is consumed), so a publish then changes the word and wakes
 * (core/watch_int.h); an entry that was reported ready and not looked at
 * again costs its producers nothing, as does a queue nobody watches.
 *
 * Every wait (and only a wait: nothing runs behind the caller's back)
 *   1. consumes what completed,
 *   2. looks at each entry: per word, load the word, then check the
 *      condition; ready entries are reported, the others get a futex wait on
 *      the loaded value (a publish after the load ends it at once), their
 *      descriptor a one-shot poll or WAITID,
 *   3. if it reports anything, posts a no-op completion, so the descriptor
 *      stays readable while the next wait would not block (level-triggered:
 *      the next wait looks again and reports what is still ready),
 *   4. submits, and sleeps in the kernel only when nothing was ready.
 * So the descriptor is readable exactly when a completion is pending: a word
 * changed, a descriptor fired, something was left ready, or the liveness
 * slice ended (below).
 *
 * Dead peers cannot announce themselves: an entry whose side is blocked by a
 * claim of another process (a queue slot mid-put or mid-get, or a
 * two-phase get open behind a queue's head), a pipe end (the peer may die)
 * or an async result (a worker may die) arms a timer of one slice, and when
 * it ends the next look asks the process table (a dead claimer's slot is
 * cleared, a dead holder's message is given back, a dead pipe peer makes
 * the end ready, a dead worker's job is supervised).
 *
 * Backends: io_uring (FUTEX_WAIT, WAITID or POLL_ADD, TIMEOUT, NOP; the
 * descriptor is the ring's), or, where io_uring or its futex op is refused
 * or SHMQ_WAITSET_BACKEND=fallback, an epoll set (the descriptor) holding an
 * eventfd, a timerfd and the descriptors, with the helper thread waiting on
 * the words and writing the eventfd.
 *
 * Threads: a set is used by one thread at a time (the caller's lock if not).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <liburing.h>

#include <shmq.h>

#include "core/alloc_int.h"
#include "core/atomic_int.h"
#include "core/cancel_int.h"
#include "core/fd_int.h"
#include "core/fork_int.h"
#include "core/time_int.h"
#include "core/wait_int.h"
#include "core/watch_int.h"
#include "sched/ready_int.h"
#include "pool/ready_int.h"

#define WS_SLICE_NS   (100 * 1000000LL) /* liveness looks, as the blocking calls' slices */
#define WS_RING_SIZE  256u
#define WS_EVENTS_MAX 64
/* The spin before a sleep looks at no more words than this per round: a
 * bigger set sleeps at once (its round would cost more than a wake-up). */
#define WS_SPIN_WORDS 16u
#define WS_SPIN_YIELD_EVERY 256u /* as core/wait.c: on 2 cores the waker may need ours */

/* io_uring user_data: an op pointer (8-aligned), or a tag in the low bits. */
#define UD_NOP    1u
#define UD_TIMER  2u
#define UD_IGNORE 3u

enum ws_kind { K_QUEUE, K_PIPE, K_PROC, K_ASYNC, K_FD };

struct ws_entry;

/* One kernel wait of an entry: op[0] and op[1] its words, op[2] its fd. */
struct ws_op {
	struct ws_entry *e;
	bool pending;  /* a ring operation (or epoll registration) refers to it */
	bool armed;    /* waiting (in the ring, the helper or epoll) */
	bool cancel_sent; /* removed: the operation's cancel is in the ring */
};

struct ws_entry {
	struct ws_entry *next;
	enum ws_kind kind;
	void *cookie;
	void *obj;
	unsigned events;      /* asked for */
	bool dead;            /* removed: freed once no operation refers to it */
	bool slow;            /* a liveness slice is due while it is not ready */
	bool reported;        /* filled in by the current pass (ws_pass, entries_rotate) */
	unsigned nwords;
	struct shmq__watch word[2];
	unsigned word_ev[2];  /* SHMQ_READABLE / SHMQ_WRITABLE */
	uint32_t expected[2];
	bool counted[2];      /* we are in word[i]'s sleepers */
	struct ws_op op[3];
	int fd;               /* pidfd or the caller's fd, -1 none */
	bool fd_registered;   /* fallback: in the epoll set */
	siginfo_t info;       /* IORING_OP_WAITID writes here */
};

struct shmq_waitset {
	pid_t pid;            /* the process that made it (core/fork_int.h) */
	bool fallback;
	bool fd_given;        /* shmq_waitset_fd was called: keep it level-triggered */
	bool left_ready;      /* before that: a look reported something */
	struct ws_entry *entries;
	unsigned nentries;
	unsigned nwords;      /* words of live entries (the helper's bound) */
	int64_t next_deep;    /* next liveness look with system calls */
	/* io_uring */
	struct io_uring ring;
	struct shmq__ready_caps caps;
	bool nop_pending;
	bool timer_pending;
	struct __kernel_timespec ts_slice, ts_wait;
	/* fallback */
	int epfd, evfd, tfd;
	bool kick_pending;
	bool helper_dirty;
	struct shmq__ready_helper *helper;
};

/* ---- backends ---- */

static struct io_uring_sqe *ws_sqe(shmq_waitset *w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);

	/* a full submission queue: submit what is staged (a few tries) */
	for (int tries = 0; !sqe && tries < 8; tries++) {
		int rc = io_uring_submit(&w->ring);

		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
			return NULL;
		sqe = io_uring_get_sqe(&w->ring);
	}
	return sqe;
}

static int epoll_set(int epfd, int op, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };

	return epoll_ctl(epfd, op, fd, &ev) < 0 ? -errno : 0;
}

static void fd_drain(int fd)
{
	uint64_t v;

	while (read(fd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
}

static void fd_kick(int fd)
{
	uint64_t one = 1;

	/* fails only if the counter would overflow, which leaves it readable */
	while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

static uint32_t poll_mask(unsigned events)
{
	return (events & SHMQ_READABLE ? POLLIN : 0) | (events & SHMQ_WRITABLE ? POLLOUT : 0);
}

/* Join / leave word i's sleepers (the Protocol SLEEPERS of core/wait_int.h). */
static void word_count(struct ws_entry *e, unsigned i)
{
	if (e->counted[i])
		return;
	shmq__fetch_add_seq_cst(e->word[i].sleepers, 1);
	e->counted[i] = true;
	/* A publisher that reads the count without a fence (a ring's)
	 * gets its half of the Dekker pair from this one, before the check;
	 * without it, a missed publish is found by the slow look's tick. */
	if (shmq__watch_fence(&e->word[i]) != 0)
		e->slow = true;
}

static void word_uncount(struct ws_entry *e, unsigned i)
{
	if (!e->counted[i])
		return;
	shmq__fetch_sub_seq_cst(e->word[i].sleepers, 1);
	e->counted[i] = false;
}

static int arm_word(shmq_waitset *w, struct ws_entry *e, unsigned i)
{
	struct io_uring_sqe *sqe;

	if (w->fallback) {
		w->helper_dirty = true; /* published to the helper before the sleep */
		e->op[i].armed = true;
		return 0;
	}
	if (e->op[i].pending)
		return 0; /* its wait is in the kernel still: it ends on a change */
	if (!(sqe = ws_sqe(w)))
		return -EAGAIN;
	shmq__ready_prep_word(sqe, e->word[i].word, e->expected[i]);
	io_uring_sqe_set_data(sqe, &e->op[i]);
	e->op[i].pending = true;
	e->op[i].armed = true;
	return 0;
}

static int arm_fd(shmq_waitset *w, struct ws_entry *e)
{
	struct ws_op *op = &e->op[2];
	uint32_t mask = e->kind == K_PROC ? POLLIN : poll_mask(e->events);
	struct io_uring_sqe *sqe;
	int rc;

	if (op->pending)
		return 0;
	if (w->fallback) {
		rc = epoll_set(w->epfd, e->fd_registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, e->fd,
			       mask | EPOLLONESHOT, (uint64_t)(uintptr_t)op);
		if (rc < 0)
			return rc;
		e->fd_registered = true;
	} else {
		if (!(sqe = ws_sqe(w)))
			return -EAGAIN;
		if (e->kind == K_PROC)
			shmq__ready_prep_exit(sqe, e->fd, &e->info, w->caps.has_waitid);
		else
			io_uring_prep_poll_add(sqe, e->fd, mask);
		io_uring_sqe_set_data(sqe, op);
	}
	op->pending = true;
	op->armed = true;
	return 0;
}

/* Make the descriptor readable (something is left ready).  Until someone
 * asked for the descriptor nobody can poll it: remember, and post when it
 * is asked for (shmq_waitset_fd). */
static int post_ready(shmq_waitset *w)
{
	struct io_uring_sqe *sqe;

	if (!w->fd_given) {
		w->left_ready = true;
		return 0;
	}
	if (w->fallback) {
		if (!w->kick_pending)
			fd_kick(w->evfd);
		w->kick_pending = true;
		return 0;
	}
	if (w->nop_pending)
		return 0;
	if (!(sqe = ws_sqe(w)))
		return -EAGAIN;
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data64(sqe, UD_NOP);
	w->nop_pending = true;
	return 0;
}

/* Arm the liveness slice. */
static int arm_slice(shmq_waitset *w)
{
	struct io_uring_sqe *sqe;

	if (w->timer_pending)
		return 0;
	if (w->fallback) {
		struct itimerspec its = { .it_value = shmq__ns_to_timespec(WS_SLICE_NS) };

		if (timerfd_settime(w->tfd, 0, &its, NULL) < 0)
			return -errno;
	} else {
		if (!(sqe = ws_sqe(w)))
			return -EAGAIN;
		w->ts_slice = shmq__ns_to_kernel_timespec(WS_SLICE_NS);
		io_uring_prep_timeout(sqe, &w->ts_slice, 0, 0);
		io_uring_sqe_set_data64(sqe, UD_TIMER);
	}
	w->timer_pending = true;
	return 0;
}

static bool entry_busy(const struct ws_entry *e)
{
	return e->op[0].pending || e->op[1].pending || e->op[2].pending;
}

/* Drop an entry's kernel waits (it was removed). */
static void disarm(shmq_waitset *w, struct ws_entry *e)
{
	if (w->fallback) {
		if (e->fd_registered)
			epoll_ctl(w->epfd, EPOLL_CTL_DEL, e->fd, NULL);
		e->fd_registered = false;
		e->op[2].pending = false;
		for (unsigned i = 0; i < e->nwords; i++)
			e->op[i].armed = false;
		w->helper_dirty = true;
		return;
	}
	for (unsigned i = 0; i < 3; i++) {
		struct io_uring_sqe *sqe;

		if (!e->op[i].pending || e->op[i].cancel_sent)
			continue;
		if (!(sqe = ws_sqe(w)))
			return; /* the kernel takes none now: entries_sweep asks again */
		io_uring_prep_cancel(sqe, &e->op[i], 0);
		io_uring_sqe_set_data64(sqe, UD_IGNORE);
		e->op[i].cancel_sent = true;
	}
}

static void reap_op(struct ws_op *op)
{
	unsigned i = (unsigned)(op - op->e->op);

	op->pending = false;
	op->armed = false;
	op->cancel_sent = false;
	if (i < op->e->nwords)
		word_uncount(op->e, i); /* its wait is over: producers stop waking */
}

/* Consume the ring's completions.  true when one of them woke for something
 * other than a removed entry (a live entry's wait, the slice, the no-op):
 * the descriptor was readable for it. */
static bool reap_uring(shmq_waitset *w)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	bool live = false;

	io_uring_for_each_cqe(&w->ring, head, cqe) {
		uint64_t ud = cqe->user_data;

		if (ud == UD_NOP) {
			w->nop_pending = false;
			live = true;
		} else if (ud == UD_TIMER) {
			w->timer_pending = false;
			live = true;
		} else if (ud != UD_IGNORE && ud) {
			struct ws_op *op = (struct ws_op *)(uintptr_t)ud;

			live |= !op->e->dead;
			reap_op(op);
		}
		n++;
	}
	io_uring_cq_advance(&w->ring, n);
	return live;
}

static void reap_events(shmq_waitset *w, const struct epoll_event *ev, int n)
{
	for (int i = 0; i < n; i++) {
		uint64_t d = ev[i].data.u64;

		if (d == UD_NOP) {
			fd_drain(w->evfd);
			w->kick_pending = false;
			if (w->helper && shmq__ready_helper_fired(w->helper)) {
				for (struct ws_entry *e = w->entries; e; e = e->next) {
					for (unsigned k = 0; k < e->nwords; k++) {
						e->op[k].armed = false;
						word_uncount(e, k);
					}
				}
				w->helper_dirty = true;
			}
		} else if (d == UD_TIMER) {
			fd_drain(w->tfd);
			w->timer_pending = false;
		} else {
			reap_op((struct ws_op *)(uintptr_t)d); /* one-shot: spent */
		}
	}
}

/* Consume what completed, without sleeping. */
static void reap(shmq_waitset *w)
{
	if (w->fallback) {
		struct epoll_event ev[WS_EVENTS_MAX];
		int n;

		do {
			n = epoll_wait(w->epfd, ev, WS_EVENTS_MAX, 0);
			if (n > 0)
				reap_events(w, ev, n);
		} while (n == WS_EVENTS_MAX);
		return;
	}
	reap_uring(w);
}

/* Hand the helper the armed words.  Fallback only. */
static int helper_sync(shmq_waitset *w)
{
	struct shmq__ready_word v[SHMQ__READY_HELPER_MAX];
	unsigned n = 0;
	int rc;

	if (!w->helper_dirty)
		return 0;
	for (struct ws_entry *e = w->entries; e; e = e->next) {
		for (unsigned i = 0; !e->dead && i < e->nwords; i++) {
			if (!e->op[i].armed)
				continue;
			if (n == SHMQ__READY_HELPER_MAX)
				return -ENOSPC; /* add refuses more words than this */
			v[n].word = e->word[i].word;
			v[n].expected = e->expected[i];
			n++;
		}
	}
	if (!w->helper && n) {
		if ((rc = shmq__ready_helper_start(w->evfd, &w->helper)) < 0)
			return rc;
	}
	if (w->helper && (rc = shmq__ready_helper_set(w->helper, v, n)) < 0)
		return rc;
	w->helper_dirty = false;
	return 0;
}

/* Submit what is staged; sleep until something completes or until deadline
 * (no sleep when block is false).  0 or -errno. */
static int submit_wait(shmq_waitset *w, bool block, int64_t deadline)
{
	int64_t left = block ? shmq__remaining(deadline) : 0;
	int rc;

	if (w->fallback) {
		struct epoll_event ev[WS_EVENTS_MAX];
		int ms, n;

		if ((rc = helper_sync(w)) < 0)
			return rc;
		if (!block)
			return 0;
		/* round up: a wait that returns early only loops once more */
		ms = left == INT64_MAX || left > 3600000000000LL ? 3600000 :
		     (int)((left + 999999) / 1000000);
		n = epoll_wait(w->epfd, ev, WS_EVENTS_MAX, ms);
		if (n < 0)
			return errno == EINTR ? 0 : -errno;
		reap_events(w, ev, n);
		return 0;
	}
	if (!block) {
		rc = io_uring_submit(&w->ring);
	} else {
		struct io_uring_cqe *cqe;

		if (left > 3600000000000LL)
			left = 3600000000000LL; /* an hour: the loop waits again */
		w->ts_wait = shmq__ns_to_kernel_timespec(left);
		rc = io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &w->ts_wait, NULL);
	}
	if (rc == -EINTR || rc == -EAGAIN || rc == -EBUSY || rc == -ETIME)
		rc = 0;
	return rc < 0 ? rc : 0;
}

/* ---- conditions ---- */

static bool fd_ready(int fd, uint32_t mask, unsigned *ev)
{
	struct pollfd pfd = { .fd = fd, .events = (short)mask };

	if (poll(&pfd, 1, 0) <= 0)
		return false;
	if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL))
		pfd.revents |= (short)mask; /* the call reports it */
	*ev = (pfd.revents & POLLIN ? SHMQ_READABLE : 0) | (pfd.revents & POLLOUT ? SHMQ_WRITABLE : 0);
	return *ev != 0;
}

/* Word i's condition.  deep: the liveness look with system calls. */
static bool word_ready(struct ws_entry *e, unsigned i, bool deep)
{
	bool space = e->word_ev[i] == SHMQ_WRITABLE;
	int st;

	switch (e->kind) {
	case K_QUEUE:
		if (space ? shmq__queue_writable(e->obj) : shmq__queue_readable(e->obj))
			return true;
		st = shmq__queue_settle(e->obj, space, deep);
		if (st == SHMQ__SETTLE_BAD)
			return true;
		e->slow |= st == SHMQ__SETTLE_CLAIM;
		return space ? shmq__queue_writable(e->obj) : shmq__queue_readable(e->obj);
	case K_PIPE:
		if (deep)
			shmq__pipe_settle(e->obj);
		e->slow = true; /* the peer may die unannounced */
		return space ? shmq__pipe_writable(e->obj) : shmq__pipe_readable(e->obj);
	case K_ASYNC:
		e->slow = true; /* a worker may die: shmq_async_ready supervises */
		return shmq_async_ready(e->obj);
	default:
		return false;
	}
}

/* Look at e: its ready events, or 0 after arming its waits.  probe: a look
 * before the spin, which neither joins the sleepers nor arms (no sleep
 * follows it; waits armed before stay as they are). */
static int entry_look(shmq_waitset *w, struct ws_entry *e, bool deep, bool probe,
		      unsigned *ready)
{
	unsigned ev = 0;
	int rc;

	e->slow = false;
	for (unsigned i = 0; i < e->nwords; i++) {
		/* In the sleepers before the check (Protocol SLEEPERS): a publish
		 * the check misses sees us and changes the word, so the wait
		 * armed on the value loaded here ends at once. */
		if (!probe)
			word_count(e, i);
		/* seq_cst: the load before the check (core/watch_int.h) */
		e->expected[i] = shmq__load_seq_cst(e->word[i].word);
		if (word_ready(e, i, deep))
			ev |= e->word_ev[i];
	}
	if (e->fd >= 0) {
		unsigned fev = 0;

		if (fd_ready(e->fd, e->kind == K_PROC ? POLLIN : poll_mask(e->events), &fev))
			ev |= e->kind == K_PROC ? SHMQ_READABLE : fev & e->events;
	}
	*ready = ev;
	if (ev) {
		/* Reported: leave the sleepers, so its producers wake nobody
		 * until the next look counts it in again.  A wait still pending
		 * in the ring is harmless: it ends on a publish made while we
		 * count, or with a change of the word, or by its cancel. */
		for (unsigned i = 0; i < e->nwords; i++) {
			if (w->fallback && e->op[i].armed) {
				e->op[i].armed = false; /* out of the helper's next set */
				w->helper_dirty = true;
			}
			word_uncount(e, i);
		}
		return 0;
	}
	if (probe)
		return 0;
	for (unsigned i = 0; i < e->nwords; i++)
		if ((rc = arm_word(w, e, i)) < 0)
			return rc;
	if (e->fd >= 0 && (rc = arm_fd(w, e)) < 0)
		return rc;
	return 0;
}

/* ---- the set ---- */

static bool ws_fallback_env(void)
{
	const char *env = getenv("SHMQ_WAITSET_BACKEND");

	return env && strcasecmp(env, "fallback") == 0;
}

static int fallback_init(shmq_waitset *w)
{
	int rc;

	w->fallback = true;
	/* never at 0-2 (core/fd_int.h) */
	w->epfd = shmq__fd_high(epoll_create1(EPOLL_CLOEXEC));
	w->evfd = shmq__fd_high(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
	w->tfd = shmq__fd_high(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
	if (w->epfd < 0 || w->evfd < 0 || w->tfd < 0)
		return -errno;
	if ((rc = epoll_set(w->epfd, EPOLL_CTL_ADD, w->evfd, EPOLLIN, UD_NOP)) < 0 ||
	    (rc = epoll_set(w->epfd, EPOLL_CTL_ADD, w->tfd, EPOLLIN, UD_TIMER)) < 0)
		return rc;
	return 0;
}

static void fds_close(shmq_waitset *w)
{
	if (w->epfd >= 0)
		close(w->epfd);
	if (w->evfd >= 0)
		close(w->evfd);
	if (w->tfd >= 0)
		close(w->tfd);
}

SHMQ_API int shmq_waitset_create(shmq_waitset **out)
{
	shmq_waitset *w;
	int rc;

	if (!out)
		return -EINVAL;
	if (!(w = shmq__calloc(1, sizeof(*w))))
		return -ENOMEM;
	w->pid = shmq__self_pid();
	w->epfd = w->evfd = w->tfd = -1;
	if (!ws_fallback_env() &&
	    io_uring_queue_init(WS_RING_SIZE, &w->ring, 0) == 0) {
		/* never at 0-2 (core/fd_int.h): shmq_waitset_fd hands it out */
		if (shmq__fd_lift(&w->ring.ring_fd))
			w->ring.enter_ring_fd = w->ring.ring_fd;
		shmq__ready_probe(&w->ring, &w->caps);
		/* a ring that cannot be entered (io_uring_enter refused) is as
		 * good as none: the fallback, not a set whose waits all fail */
		if (w->caps.has_futex && shmq__ready_ring_try(&w->ring) == 0) {
			*out = w;
			return 0;
		}
		io_uring_queue_exit(&w->ring); /* no futex op (< 6.7): the fallback */
	}
	if ((rc = fallback_init(w)) < 0) {
		fds_close(w);
		shmq__free(w, sizeof(*w));
		return rc;
	}
	*out = w;
	return 0;
}

static struct ws_entry *entry_find(shmq_waitset *w, void *cookie)
{
	for (struct ws_entry *e = w->entries; e; e = e->next)
		if (!e->dead && e->cookie == cookie)
			return e;
	return NULL;
}

/* After entry_add: look at e once, then hand the kernel what is staged. */
static int ws_settle(shmq_waitset *w, struct ws_entry *e)
{
	unsigned ev;
	int rc;

	if ((rc = entry_look(w, e, false, false, &ev)) < 0 ||
	    (e->slow && !ev && (rc = arm_slice(w)) < 0) ||
	    (ev && (rc = post_ready(w)) < 0))
		goto out;
	/* The fallback registers a descriptor ready now with epoll now too:
	 * one epoll refuses (the set's own, a set that holds this one) is
	 * refused by the add, not by every later wait.  -EPERM is a file
	 * epoll cannot watch (a regular file, a directory), which poll(2)
	 * reports ready always: entry_look never arms it. */
	if (w->fallback && ev && e->fd >= 0 && (rc = arm_fd(w, e)) < 0 && rc != -EPERM)
		goto out;
	if (w->fallback)
		rc = helper_sync(w);
	else if ((rc = io_uring_submit(&w->ring)) >= 0)
		rc = 0;
out:
	/* the entry stays: a failure here is the kernel's, the next wait retries */
	return rc == -EAGAIN || rc == -EINTR || rc == -EBUSY ? 0 : rc;
}

static void entries_sweep(shmq_waitset *w);

/* Take e out of the set (shmq_waitset_remove, a refused add). */
static int entry_drop(shmq_waitset *w, struct ws_entry *e)
{
	e->dead = true;
	w->nentries--;
	w->nwords -= e->nwords;
	disarm(w, e);
	/* the object may be closed after we return: leave its counts now (a
	 * cancelled wait's completion finds nothing to give back) */
	for (unsigned i = 0; i < e->nwords; i++)
		word_uncount(e, i);
	if (w->fallback) {
		/* the helper must stop waiting on the words now.  A sync fails
		 * only to start a helper (-EAGAIN, -ENOMEM), when none runs to
		 * wait on them: e is out either way, the next wait tries again */
		(void)helper_sync(w);
		entries_sweep(w);
		return 0;
	}
	io_uring_submit(&w->ring);
	/* The cancels have completed (or complete later): reap now, so the
	 * entry is freed here and not kept until a wait that may never come.
	 * A completion reaped for a live entry or the slice made the
	 * descriptor readable; a no-op keeps it so until the next wait looks. */
	if (reap_uring(w) && post_ready(w) == 0)
		io_uring_submit(&w->ring);
	entries_sweep(w);
	return 0;
}

static int entry_add(shmq_waitset *w, enum ws_kind kind, void *obj, unsigned events,
		     void *cookie, const struct shmq__watch *words, const unsigned *word_ev,
		     unsigned nwords, int fd)
{
	struct ws_entry *e;
	int rc;

	if (shmq__foreign(w->pid))
		return -EBADF; /* inherited across fork(): the parent's ring */
	if (entry_find(w, cookie))
		return -EEXIST;
	if (w->fallback && w->nwords + nwords > SHMQ__READY_HELPER_MAX)
		return -ENOSPC;
	if (!(e = shmq__calloc(1, sizeof(*e))))
		return -ENOMEM;
	e->kind = kind;
	e->obj = obj;
	e->events = events;
	e->cookie = cookie;
	e->fd = fd;
	e->nwords = nwords;
	for (unsigned i = 0; i < nwords; i++) {
		e->word[i] = words[i];
		e->word_ev[i] = word_ev[i];
	}
	for (unsigned i = 0; i < 3; i++)
		e->op[i].e = e;
	e->next = w->entries;
	w->entries = e;
	w->nentries++;
	w->nwords += nwords;
	/* Look now: a ready entry makes the descriptor readable, another one
	 * gets its kernel waits (the descriptor must not wait for a wait).  A
	 * refusal (epoll's of the descriptor, in the fallback) takes the entry
	 * out again: the set is as it was, and its waits do not retry it. */
	if ((rc = ws_settle(w, e)) < 0)
		(void)entry_drop(w, e);
	return rc;
}

static int events_check(shmq_waitset *w, const void *obj, unsigned events, void *cookie)
{
	if (!w || !obj || !cookie || !events || (events & ~(SHMQ_READABLE | SHMQ_WRITABLE)))
		return -EINVAL;
	return 0;
}

SHMQ_API int shmq_waitset_add_queue(shmq_waitset *w, shmq_queue *q, unsigned events,
				    void *cookie)
{
	struct shmq__watch v[2];
	unsigned ev[2], n = 0;
	int rc;

	if ((rc = events_check(w, q, events, cookie)) < 0)
		return rc;
	if (events & SHMQ_READABLE) {
		if ((rc = shmq__queue_watch(q, &v[n])) < 0)
			return rc;
		ev[n++] = SHMQ_READABLE;
	}
	if (events & SHMQ_WRITABLE) {
		if ((rc = shmq__queue_watch_space(q, &v[n])) < 0)
			return rc;
		ev[n++] = SHMQ_WRITABLE;
	}
	return entry_add(w, K_QUEUE, q, events, cookie, v, ev, n, -1);
}

SHMQ_API int shmq_waitset_add_pipe(shmq_waitset *w, shmq_pipe *p, unsigned events,
				   void *cookie)
{
	struct shmq__watch v[2];
	unsigned ev[2], n = 0;
	int rc;

	if ((rc = events_check(w, p, events, cookie)) < 0)
		return rc;
	if (events & SHMQ_READABLE) {
		if ((rc = shmq__pipe_watch(p, &v[n])) < 0)
			return rc;
		ev[n++] = SHMQ_READABLE;
	}
	if (events & SHMQ_WRITABLE) {
		if ((rc = shmq__pipe_watch_space(p, &v[n])) < 0)
			return rc;
		ev[n++] = SHMQ_WRITABLE;
	}
	return entry_add(w, K_PIPE, p, events, cookie, v, ev, n, -1);
}

SHMQ_API int shmq_waitset_add_proc(shmq_waitset *w, shmq_proc *p, void *cookie)
{
	int pidfd, rc;

	if ((rc = events_check(w, p, SHMQ_READABLE, cookie)) < 0)
		return rc;
	if ((pidfd = shmq__proc_pidfd(p)) < 0)
		return pidfd;
	return entry_add(w, K_PROC, p, SHMQ_READABLE, cookie, NULL, NULL, 0, pidfd);
}

SHMQ_API int shmq_waitset_add_async(shmq_waitset *w, shmq_async *a, void *cookie)
{
	struct shmq__watch v;
	unsigned ev = SHMQ_READABLE;
	int rc;

	if ((rc = events_check(w, a, SHMQ_READABLE, cookie)) < 0)
		return rc;
	if ((rc = shmq__async_watch(a, &v)) < 0)
		return rc;
	return entry_add(w, K_ASYNC, a, SHMQ_READABLE, cookie, &v, &ev, 1, -1);
}

SHMQ_API int shmq_waitset_add_fd(shmq_waitset *w, int fd, unsigned events, void *cookie)
{
	int rc;

	if (fd < 0)
		return -EBADF;
	if ((rc = events_check(w, &fd, events, cookie)) < 0)
		return rc;
	if (fcntl(fd, F_GETFD) < 0)
		return -EBADF;
	return entry_add(w, K_FD, NULL, events, cookie, NULL, NULL, 0, fd);
}

static void entry_free(struct ws_entry *e)
{
	shmq__free(e, sizeof(*e));
}

/* Free the removed entries no kernel operation refers to any more; stage
 * the cancels the kernel could not take when they were removed (the next
 * submission sends them). */
static void entries_sweep(shmq_waitset *w)
{
	for (struct ws_entry **pp = &w->entries; *pp;) {
		struct ws_entry *e = *pp;

		if (e->dead && !entry_busy(e)) {
			*pp = e->next;
			entry_free(e);
			continue;
		}
		if (e->dead)
			disarm(w, e);
		pp = &e->next;
	}
}

SHMQ_API int shmq_waitset_remove(shmq_waitset *w, void *cookie)
{
	struct ws_entry *e;

	if (!w || !cookie)
		return -EINVAL;
	if (shmq__foreign(w->pid))
		return -EBADF;
	if (!(e = entry_find(w, cookie)))
		return -ENOENT;
	return entry_drop(w, e);
}

/* Move the entries the pass reported behind the others, in their order:
 * when more entries are ready than a wait may report, the next wait reports
 * the ones left out first, so none starves behind entries that stay ready
 * (as epoll rotates its ready list). */
static void entries_rotate(shmq_waitset *w)
{
	struct ws_entry *keep = NULL, **kt = &keep, *moved = NULL, **mt = &moved, *next;

	for (struct ws_entry *e = w->entries; e; e = next) {
		next = e->next;
		e->next = NULL;
		if (e->reported) {
			e->reported = false;
			*mt = e;
			mt = &e->next;
		} else {
			*kt = e;
			kt = &e->next;
		}
	}
	*kt = moved;
	w->entries = keep;
}

/* One pass over the entries: fill out, arm the rest (probe: arm nothing).
 * Count or -errno. */
static int ws_pass(shmq_waitset *w, struct shmq_ready *out, size_t max, bool probe, bool *more)
{
	int64_t now = shmq_now_ns();
	bool deep = now >= w->next_deep, slow = false;
	size_t n = 0;
	int rc;

	if (deep)
		w->next_deep = now + WS_SLICE_NS;
	*more = false;
	for (struct ws_entry *e = w->entries; e; e = e->next) {
		unsigned ev;

		if (e->dead)
			continue;
		if ((rc = entry_look(w, e, deep, probe, &ev)) < 0)
			return rc;
		slow |= e->slow && !ev;
		if (!ev)
			continue;
		if (n == max) {
			*more = true;
			continue;
		}
		out[n].cookie = e->cookie;
		out[n].events = ev;
		e->reported = true;
		n++;
	}
	if (n)
		entries_rotate(w);
	if (!probe && slow && (rc = arm_slice(w)) < 0)
		return rc;
	/* level-triggered: what was reported (or left over) may still be ready */
	if ((n || *more) && (rc = post_ready(w)) < 0)
		return rc;
	return (int)n;
}

/* Word k's condition from loads alone (the spin's look).  A queue or pipe
 * bumps its word only for counted sleepers, so look at the ring itself; an
 * async's done word (the only other kind with words) changes when it ends. */
static bool spin_ready(struct ws_entry *e, unsigned k)
{
	bool space = e->word_ev[k] == SHMQ_WRITABLE;

	switch (e->kind) {
	case K_QUEUE:
		return space ? shmq__queue_writable(e->obj) : shmq__queue_readable(e->obj);
	case K_PIPE:
		return space ? shmq__pipe_writable(e->obj) : shmq__pipe_readable(e->obj);
	default:
		/* an async's done word: pairs with job_finish's seq_cst CAS */
		return shmq__load_acquire(e->word[k].word) != e->expected[k];
	}
}

static bool ws_spin_fits(const shmq_waitset *w)
{
	return w->nwords && w->nwords <= WS_SPIN_WORDS && shmq__spin_budget();
}

/*
 * The spin phase of the blocking calls (core/wait_int.h, SHMQ_SPIN) before
 * the first sleep of a wait, after a probe pass that loaded every word and
 * found nothing ready: true once an entry's condition holds (spin_ready), or
 * a completion is in the ring (a descriptor fired).  Loads
 * only, no system call; at most shmq__spin_budget() rounds, and none past
 * the deadline, over at most
 * WS_SPIN_WORDS words (ws_spin_fits), so a bigger set sleeps at once.  As the
 * blocking calls' spin, it is not in the words' sleepers (the probe joined
 * none): a publish meanwhile costs its producer no wake.
 */
static bool ws_spin(shmq_waitset *w, int64_t deadline)
{
	uint32_t budget = shmq__spin_budget();

	for (uint32_t i = 0; i < budget; i++) {
		for (struct ws_entry *e = w->entries; e; e = e->next) {
			for (unsigned k = 0; !e->dead && k < e->nwords; k++) {
				if (spin_ready(e, k))
					return true;
			}
		}
		if (!w->fallback && io_uring_cq_ready(&w->ring))
			return true;
		if ((i + 1) % WS_SPIN_YIELD_EVERY == 0) {
			if (shmq_now_ns() >= deadline) /* a big SHMQ_SPIN keeps short timeouts */
				return false;
			sched_yield();
		} else {
			shmq__cpu_relax();
		}
	}
	return false;
}

static int waitset_wait(shmq_waitset *w, struct shmq_ready *out, size_t max,
			int64_t timeout_ns)
{
	int64_t deadline;
	bool more, spun = false;
	int n, rc;

	if (!w || !out || !max)
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__timeout_bad(timeout_ns)))
		return -EINVAL;
	if (shmq__foreign(w->pid))
		return -EBADF;
	if (max > INT32_MAX)
		max = INT32_MAX;
	deadline = shmq__deadline(timeout_ns);
	for (;;) {
		bool probe = !spun && ws_spin_fits(w) && shmq_now_ns() < deadline;

		reap(w);
		entries_sweep(w);
		if ((n = ws_pass(w, out, max, probe, &more)) != 0) {
			if (n > 0 && (rc = submit_wait(w, false, deadline)) < 0)
				return rc;
			return n;
		}
		if (probe) {
			spun = true; /* once per call: the spin stays bounded */
			(void)ws_spin(w, deadline);
			continue; /* the real look: joins the sleepers, arms */
		}
		if (shmq_now_ns() >= deadline) {
			/* the waits are in the kernel before we say nothing is ready */
			rc = submit_wait(w, false, deadline);
			return rc < 0 ? rc : -ETIMEDOUT;
		}
		if ((rc = submit_wait(w, true, deadline)) < 0)
			return rc;
	}
}

/* No cancellation point (core/cancel_int.h). */
SHMQ_API int shmq_waitset_wait(shmq_waitset *w, struct shmq_ready *out, size_t max,
			       int64_t timeout_ns)
{
	int cs = shmq__cancel_off();
	int rc = waitset_wait(w, out, max, timeout_ns);

	shmq__cancel_restore(cs);
	return rc;
}

SHMQ_API int shmq_waitset_fd(shmq_waitset *w)
{
	if (!w)
		return -EINVAL;
	if (shmq__foreign(w->pid))
		return -EBADF;
	if (!w->fd_given) {
		int rc;

		w->fd_given = true;
		/* what the last look reported may still be ready: the next wait
		 * would not block, so the descriptor must say so */
		if (w->left_ready && (rc = post_ready(w)) < 0)
			return rc;
		if (w->left_ready && (rc = submit_wait(w, false, 0)) < 0)
			return rc;
		w->left_ready = false;
	}
	return w->fallback ? w->epfd : w->ring.ring_fd;
}

/* Cancel the ring's operations that refer to entries and wait (a bounded
 * while) until they completed: a WAITID writes into its entry. */
static void ring_drain(shmq_waitset *w)
{
	int64_t until = shmq_now_ns() + 1000000000LL;

	for (;;) {
		struct io_uring_cqe *cqe;
		bool busy = false;

		for (struct ws_entry *e = w->entries; e; e = e->next) {
			if (!entry_busy(e))
				continue;
			busy = true;
			disarm(w, e);
		}
		if (!busy || shmq_now_ns() >= until)
			return;
		w->ts_wait = shmq__ns_to_kernel_timespec(10 * 1000000LL);
		(void)io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &w->ts_wait, NULL);
		reap_uring(w);
	}
}

static void waitset_free(shmq_waitset *w)
{
	bool own;

	if (!w)
		return;
	own = !shmq__foreign(w->pid);
	for (struct ws_entry *e = w->entries; e; e = e->next) {
		if (e->dead)
			continue;
		e->dead = true;
		/* a forked child's copy leaves the parent's counts alone */
		for (unsigned i = 0; own && i < e->nwords; i++)
			word_uncount(e, i);
	}
	if (w->fallback) {
		if (w->helper && own)
			shmq__ready_helper_stop(w->helper);
		fds_close(w);
	} else {
		if (own)
			ring_drain(w);
		io_uring_queue_exit(&w->ring);
	}
	while (w->entries) {
		struct ws_entry *e = w->entries;

		w->entries = e->next;
		entry_free(e);
	}
	shmq__free(w, sizeof(*w));
}

/* No cancellation point (core/cancel_int.h). */
SHMQ_API void shmq_waitset_free(shmq_waitset *w)
{
	int cs = shmq__cancel_off();

	waitset_free(w);
	shmq__cancel_restore(cs);
}
