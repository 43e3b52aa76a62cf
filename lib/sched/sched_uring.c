/* SPDX-License-Identifier: MIT */
/*
 * The scheduler's io_uring backend.
 *
 * One ring waits for everything at once:
 *  - the heap's head: one IORING_OP_TIMEOUT with IORING_TIMEOUT_ABS on
 *    CLOCK_MONOTONIC, moved with IORING_TIMEOUT_UPDATE only when the head's
 *    deadline changes (a new TIMEOUT after the old one fired);
 *  - the wake eventfd: an IORING_OP_READ that completes when another thread
 *    kicks the loop;
 *  - queue and pipe readiness words and process exits, with the readiness
 *    mechanism the scheduler shares with waitsets (sched/ready_int.h).
 * Staged SQEs go in with the wait, in one io_uring_enter per iteration.
 *
 * user_data: a watch pointer (8-aligned, low bits 0), or a tag in the low 3
 * bits with the timer's generation above them, so a completion of a timer
 * that was since replaced is recognised and ignored.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <liburing.h>

#include <shmq.h>

#include "core/alloc_int.h"
#include "core/fd_int.h"
#include "core/time_int.h"
#include "sched/ready_int.h"
#include "sched/sched_int.h"

#define UD_TIMER  1u /* | gen << 3: the head's timeout */
#define UD_WAKE   2u /* the eventfd read */
#define UD_IGNORE 3u /* cancels and removes: their result needs no action */
#define UD_UPDATE 4u /* | gen << 3: a timeout update */
#define UD_TAG(ud) ((ud) & 7u)
#define UD_GEN(ud) ((ud) >> 3)

struct uring_be {
	struct io_uring ring;
	struct shmq__ready_caps caps;
	bool wake_armed;
	bool timer_armed;
	bool no_update;     /* the kernel refused IORING_TIMEOUT_UPDATE: remove + add */
	int64_t timer_at;
	uint64_t timer_gen;
	uint64_t wake_buf;
	struct __kernel_timespec ts_add, ts_upd;
};

static struct uring_be *be_of(shmq_sched *s)
{
	return s->be;
}

static int uring_init(shmq_sched *s, const struct shmq_sched_opts *o)
{
	unsigned entries = o && o->ring_entries ? o->ring_entries : 64;
	struct uring_be *b = shmq__calloc(1, sizeof(*b));
	int rc;

	if (!b)
		return -ENOMEM;
	rc = io_uring_queue_init(entries, &b->ring, 0);
	if (rc < 0) {
		shmq__free(b, sizeof(*b));
		return rc;
	}
	/* never at 0-2 (core/fd_int.h) */
	if (shmq__fd_lift(&b->ring.ring_fd))
		b->ring.enter_ring_fd = b->ring.ring_fd;
	/* a ring that cannot be entered must show here, where SHMQ_SCHED_AUTO
	 * still takes the fallback, not in every run() */
	if ((rc = shmq__ready_ring_try(&b->ring)) < 0) {
		io_uring_queue_exit(&b->ring);
		shmq__free(b, sizeof(*b));
		return rc;
	}
	shmq__ready_probe(&b->ring, &b->caps);
	if (!b->caps.has_futex)
		s->flags |= SHMQ_SCHED_NO_FUTEX_OP; /* words wait on the helper thread */
	s->be = b;
	return 0;
}

static void uring_fini(shmq_sched *s)
{
	struct uring_be *b = be_of(s);

	io_uring_queue_exit(&b->ring);
	shmq__free(b, sizeof(*b));
	s->be = NULL;
}

/* An SQE; when the submission queue is full, submit what is staged first
 * (a few tries: a kernel that keeps refusing, e.g. with its completion queue
 * overflowing, gets NULL and the caller reports -EAGAIN). */
static struct io_uring_sqe *uring_sqe(struct uring_be *b)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);

	for (int tries = 0; !sqe && tries < 8; tries++) {
		int rc = io_uring_submit(&b->ring);

		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
			return NULL;
		sqe = io_uring_get_sqe(&b->ring);
	}
	return sqe;
}

static int uring_timer_remove(struct uring_be *b)
{
	struct io_uring_sqe *sqe = uring_sqe(b);

	if (!sqe)
		return -EAGAIN;
	io_uring_prep_timeout_remove(sqe, (b->timer_gen << 3) | UD_TIMER, 0);
	io_uring_sqe_set_data64(sqe, UD_IGNORE);
	b->timer_armed = false;
	b->timer_gen++;
	return 0;
}

static int uring_timer_update(struct uring_be *b, int64_t target)
{
	struct io_uring_sqe *sqe = uring_sqe(b);

	if (!sqe)
		return -EAGAIN;
	b->ts_upd = shmq__ns_to_kernel_timespec(target);
	io_uring_prep_timeout_update(sqe, &b->ts_upd, (b->timer_gen << 3) | UD_TIMER,
				     IORING_TIMEOUT_ABS);
	io_uring_sqe_set_data64(sqe, (b->timer_gen << 3) | UD_UPDATE);
	b->timer_at = target;
	return 0;
}

static int uring_timer_add(struct uring_be *b, int64_t target)
{
	struct io_uring_sqe *sqe = uring_sqe(b);

	if (!sqe)
		return -EAGAIN;
	b->timer_gen++;
	b->ts_add = shmq__ns_to_kernel_timespec(target);
	io_uring_prep_timeout(sqe, &b->ts_add, 0, IORING_TIMEOUT_ABS);
	io_uring_sqe_set_data64(sqe, (b->timer_gen << 3) | UD_TIMER);
	b->timer_armed = true;
	b->timer_at = target;
	return 0;
}

static int uring_arm_timer(shmq_sched *s, int64_t target)
{
	struct uring_be *b = be_of(s);
	int rc;

	if (target == SHMQ__SCHED_NEVER)
		return b->timer_armed ? uring_timer_remove(b) : 0;
	if (b->timer_armed && b->timer_at == target)
		return 0;
	if (b->timer_armed && !b->no_update)
		return uring_timer_update(b, target);
	if (b->timer_armed && (rc = uring_timer_remove(b)) < 0)
		return rc;
	return uring_timer_add(b, target);
}

static int uring_arm_word(shmq_sched *s, struct shmq__sched_watch *w)
{
	struct uring_be *b = be_of(s);
	struct io_uring_sqe *sqe;

	if (!b->caps.has_futex)
		return -EOPNOTSUPP;
	if (!(sqe = uring_sqe(b)))
		return -EAGAIN;
	shmq__ready_prep_word(sqe, w->w.word, w->expected);
	io_uring_sqe_set_data(sqe, w);
	w->op_pending = true;
	return 0;
}

static int uring_arm_proc(shmq_sched *s, struct shmq__sched_watch *w)
{
	struct uring_be *b = be_of(s);
	struct io_uring_sqe *sqe = uring_sqe(b);

	if (!sqe)
		return -EAGAIN;
	shmq__ready_prep_exit(sqe, w->pidfd, &w->info,
			      b->caps.has_waitid && !(s->flags & SHMQ_SCHED_NO_WAITID));
	io_uring_sqe_set_data(sqe, w);
	w->state = SHMQ__WS_ARMED;
	w->op_pending = true;
	return 0;
}

static int uring_disarm(shmq_sched *s, struct shmq__sched_watch *w)
{
	struct uring_be *b = be_of(s);
	struct io_uring_sqe *sqe = uring_sqe(b);

	if (!sqe)
		return -EAGAIN;
	io_uring_prep_cancel(sqe, w, 0);
	io_uring_sqe_set_data64(sqe, UD_IGNORE);
	return 0; /* the cancelled operation's own completion frees w */
}

static int uring_wait(shmq_sched *s, bool block)
{
	struct uring_be *b = be_of(s);
	int rc;

	if (!b->wake_armed) {
		struct io_uring_sqe *sqe = uring_sqe(b);

		if (!sqe)
			return -EAGAIN;
		io_uring_prep_read(sqe, s->wake_fd, &b->wake_buf, sizeof(b->wake_buf), 0);
		io_uring_sqe_set_data64(sqe, UD_WAKE);
		b->wake_armed = true;
	}
	if (block)
		rc = io_uring_submit_and_wait(&b->ring, 1);
	else
		rc = io_uring_submit_and_get_events(&b->ring);
	if (rc == -EINTR || rc == -EAGAIN || rc == -EBUSY || rc == -ETIME)
		rc = 0;
	return rc < 0 ? rc : 0;
}

static void uring_reap_watch(shmq_sched *s, struct shmq__sched_watch *w, int res)
{
	struct uring_be *b = be_of(s);

	w->op_pending = false;
	w->recheck_sent = false;
	if (w->dead)
		return;
	if (w->kind == SHMQ__WATCH_PROC) {
		if (res == -EINVAL && b->caps.has_waitid && !(s->flags & SHMQ_SCHED_NO_WAITID)) {
			b->caps.has_waitid = false; /* WNOWAIT refused: poll the pidfd */
			w->state = SHMQ__WS_IDLE;
			return;
		}
		w->state = SHMQ__WS_READY;
		return;
	}
	if (res == -EINVAL || res == -EOPNOTSUPP)
		b->caps.has_futex = false; /* the helper thread takes over */
	w->state = SHMQ__WS_IDLE; /* re-check readable, then wait again */
}

static void uring_reap_one(shmq_sched *s, uint64_t ud, int res)
{
	struct uring_be *b = be_of(s);

	switch (UD_TAG(ud)) {
	case 0:
		uring_reap_watch(s, (struct shmq__sched_watch *)(uintptr_t)ud, res);
		break;
	case UD_TIMER:
		if (UD_GEN(ud) == b->timer_gen && b->timer_armed) {
			b->timer_armed = false;
			s->timer_fired = res == -ETIME;
		}
		break;
	case UD_WAKE:
		b->wake_armed = false;
		break;
	case UD_UPDATE:
		if (res < 0 && UD_GEN(ud) == b->timer_gen && b->timer_armed) {
			/* -ENOENT: it had fired already; -EINVAL: no update op */
			b->no_update |= res == -EINVAL;
			b->timer_armed = false;
			b->timer_gen++;
		}
		break;
	default:
		break;
	}
}

/* Consume what the completion queue holds; the count. */
static unsigned uring_reap_cq(shmq_sched *s)
{
	struct uring_be *b = be_of(s);
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&b->ring, head, cqe) {
		uring_reap_one(s, cqe->user_data, cqe->res);
		n++;
	}
	io_uring_cq_advance(&b->ring, n);
	return n;
}

/*
 * Consume every completion, also those that did not fit the completion
 * queue: the kernel keeps them in its overflow list (IORING_FEAT_NODROP)
 * and moves them in only when it is entered, so a watch whose completion
 * waits there would not be seen ready by this iteration (a non-blocking
 * run would skip it).  Bounded: each operation in flight completes once.
 */
static void uring_reap(shmq_sched *s)
{
	struct uring_be *b = be_of(s);

	uring_reap_cq(s);
	while (io_uring_cq_has_overflow(&b->ring) && io_uring_get_events(&b->ring) >= 0 &&
	       uring_reap_cq(s) > 0)
		;
}

const struct shmq__sched_ops shmq__sched_uring_ops = {
	.name = "io_uring",
	.init = uring_init,
	.fini = uring_fini,
	.arm_timer = uring_arm_timer,
	.arm_word = uring_arm_word,
	.arm_proc = uring_arm_proc,
	.disarm = uring_disarm,
	.wait = uring_wait,
	.reap = uring_reap,
};
