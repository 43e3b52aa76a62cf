/* SPDX-License-Identifier: MIT */
/*
 * The scheduler's fallback backend, for hosts that refuse io_uring: a
 * timerfd (TFD_TIMER_ABSTIME on CLOCK_MONOTONIC) for the heap's head, re-set
 * only when the head's deadline changes, the wake eventfd and each watched
 * process's pidfd in one epoll set.  Queue and pipe words are waited on by
 * the helper thread (sched/ready_helper.c), which writes the wake eventfd.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <shmq.h>

#include "core/alloc_int.h"
#include "core/fd_int.h"
#include "core/time_int.h"
#include "sched/sched_int.h"

#define POLL_MAX_EVENTS 32
#define TAG_TIMER 1u
#define TAG_WAKE  2u

struct poll_be {
	int epfd;
	int tfd;
	bool timer_armed;
	int64_t timer_at;
	int nev;
	struct epoll_event ev[POLL_MAX_EVENTS];
};

static struct poll_be *be_of(shmq_sched *s)
{
	return s->be;
}

static int poll_add(int epfd, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static int poll_init(shmq_sched *s, const struct shmq_sched_opts *o)
{
	struct poll_be *b = shmq__calloc(1, sizeof(*b));
	int rc;

	if (!b)
		return -ENOMEM;
	b->tfd = -1;
	/* never at 0-2 (core/fd_int.h) */
	b->epfd = shmq__fd_high(epoll_create1(EPOLL_CLOEXEC));
	if (b->epfd < 0)
		goto fail;
	b->tfd = shmq__fd_high(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
	if (b->tfd < 0)
		goto fail;
	if ((rc = poll_add(b->epfd, b->tfd, EPOLLIN, TAG_TIMER)) < 0 ||
	    (rc = poll_add(b->epfd, s->wake_fd, EPOLLIN, TAG_WAKE)) < 0) {
		errno = -rc;
		goto fail;
	}
	s->be = b;
	return 0;
fail:
	rc = -errno;
	if (b->tfd >= 0)
		close(b->tfd);
	if (b->epfd >= 0)
		close(b->epfd);
	shmq__free(b, sizeof(*b));
	return rc;
}

static void poll_fini(shmq_sched *s)
{
	struct poll_be *b = be_of(s);

	close(b->tfd);
	close(b->epfd);
	shmq__free(b, sizeof(*b));
	s->be = NULL;
}

static int poll_arm_timer(shmq_sched *s, int64_t target)
{
	struct poll_be *b = be_of(s);
	struct itimerspec its;

	if (target == SHMQ__SCHED_NEVER ? !b->timer_armed
					: b->timer_armed && b->timer_at == target)
		return 0;
	memset(&its, 0, sizeof(its));
	if (target != SHMQ__SCHED_NEVER) {
		int64_t t = target > 0 ? target : 1; /* all zero would disarm */

		its.it_value = shmq__ns_to_timespec(t);
	}
	if (timerfd_settime(b->tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		return -errno;
	b->timer_armed = target != SHMQ__SCHED_NEVER;
	b->timer_at = target;
	return 0;
}

static int poll_arm_proc(shmq_sched *s, struct shmq__sched_watch *w)
{
	struct poll_be *b = be_of(s);
	int rc = poll_add(b->epfd, w->pidfd, EPOLLIN | EPOLLONESHOT, (uint64_t)(uintptr_t)w);

	if (rc < 0)
		return rc;
	w->state = SHMQ__WS_ARMED;
	w->op_pending = true;
	return 0;
}

static int poll_disarm(shmq_sched *s, struct shmq__sched_watch *w)
{
	struct poll_be *b = be_of(s);

	epoll_ctl(b->epfd, EPOLL_CTL_DEL, w->pidfd, NULL);
	return 1;
}

static int poll_wait(shmq_sched *s, bool block)
{
	struct poll_be *b = be_of(s);
	int n = epoll_wait(b->epfd, b->ev, POLL_MAX_EVENTS, block ? -1 : 0);

	if (n < 0) {
		b->nev = 0;
		return errno == EINTR ? 0 : -errno;
	}
	b->nev = n;
	return 0;
}

static void fd_drain(int fd)
{
	uint64_t v;

	while (read(fd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
}

static void poll_reap(shmq_sched *s)
{
	struct poll_be *b = be_of(s);

	for (int i = 0; i < b->nev; i++) {
		uint64_t d = b->ev[i].data.u64;

		if (d == TAG_TIMER) {
			fd_drain(b->tfd);
			if (b->timer_armed) {
				b->timer_armed = false;
				s->timer_fired = true;
			}
		} else if (d == TAG_WAKE) {
			fd_drain(s->wake_fd);
		} else {
			struct shmq__sched_watch *w = (struct shmq__sched_watch *)(uintptr_t)d;

			/* one-shot: the registration is spent, drop it */
			epoll_ctl(b->epfd, EPOLL_CTL_DEL, w->pidfd, NULL);
			w->op_pending = false;
			if (!w->dead)
				w->state = SHMQ__WS_READY;
		}
	}
	b->nev = 0;
}

const struct shmq__sched_ops shmq__sched_poll_ops = {
	.name = "fallback",
	.init = poll_init,
	.fini = poll_fini,
	.arm_timer = poll_arm_timer,
	.arm_word = NULL,
	.arm_proc = poll_arm_proc,
	.disarm = poll_disarm,
	.wait = poll_wait,
	.reap = poll_reap,
};
