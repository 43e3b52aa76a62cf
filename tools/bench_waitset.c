/* SPDX-License-Identifier: MIT */
/*
 * shmq-bench waitset: the wake-up round trip through a waitset beside the
 * one of a blocking shmq_queue_get.
 *
 * Two processes ping-pong one message through two queues ("ping", "pong").
 * Side 0 puts ping and takes pong with a blocking get, in every variant;
 * side 1 waits for ping
 *   - base:   in shmq_queue_get (SHMQ_FOREVER),
 *   - ws1:    in shmq_waitset_wait on a set of 1 queue,
 *   - ws64:   in shmq_waitset_wait on a set of 64 queues (ping is one of them),
 *   - epoll:  in epoll_wait on shmq_waitset_fd of the 1-queue set, then
 *             shmq_waitset_wait(SHMQ_NOWAIT),
 * then takes ping (SHMQ_NOWAIT after a waitset) and puts pong.  The figure
 * is the median round trip in ns, the baseline the blocking get's.
 *
 * The same through one pipe: side 0 sends ping on end 0 and takes pong
 * with a blocking recv; side 1 waits for ping on end 1
 *   - pbase:  in shmq_pipe_recv (SHMQ_FOREVER),
 *   - pws1:   in shmq_waitset_wait on a set of that pipe,
 * then answers on end 1; the baseline is the blocking recv's.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <shmq.h>

#include "bench.h"

#define WB_QUEUES 65 /* ping, pong and 63 more for the set of 64 */
#define WB_TIMEOUT (10 * 1000000000LL)

enum wb_kind { WB_BASE, WB_WS1, WB_WS64, WB_EPOLL, WB_PBASE, WB_PWS1 };

struct wb_run {
	enum wb_kind kind;
	uint64_t iters;
	char region[64];
	shmq_pipe *h0;           /* pipe kinds: end 0, the creator's (side 0 runs in it) */
	struct bench_hist *hist; /* side 0's round trips (shared memory) */
};

static int wb_open(const struct wb_run *run, shmq_region **r, shmq_queue *q[WB_QUEUES])
{
	char name[32];
	int rc = shmq_region_open(run->region, r);

	for (int i = 0; !rc && i < WB_QUEUES; i++) {
		snprintf(name, sizeof(name), "q.%d", i);
		rc = shmq_queue_open(*r, name, &q[i]);
	}
	return rc;
}

static void wb_close(shmq_region *r, shmq_queue *q[WB_QUEUES])
{
	for (int i = 0; i < WB_QUEUES; i++)
		shmq_queue_close(q[i]);
	shmq_region_close(r);
}

/* Side 1: wait for ping (q[0]) the run's way, answer on pong (q[1]). */
static int wb_answer(const struct wb_run *run, shmq_queue *q[WB_QUEUES])
{
	unsigned nq = run->kind == WB_WS64 ? WB_QUEUES - 1 : 1;
	struct shmq_ready rd[WB_QUEUES];
	shmq_waitset *w = NULL;
	int ep = -1, rc = 0;
	uint64_t v;

	if (run->kind != WB_BASE) {
		if ((rc = shmq_waitset_create(&w)) < 0)
			return rc;
		/* q[1] (pong) is side 0's: the set of 64 holds q[0] and q[2..64] */
		for (unsigned i = 0; !rc && i < WB_QUEUES; i++) {
			if (i == 1 || (i > 1 && nq == 1))
				continue;
			rc = shmq_waitset_add_queue(w, q[i], SHMQ_READABLE, (void *)(uintptr_t)(i + 1));
		}
	}
	if (!rc && run->kind == WB_EPOLL) {
		struct epoll_event ev = { .events = EPOLLIN };

		ep = epoll_create1(EPOLL_CLOEXEC);
		if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, shmq_waitset_fd(w), &ev) < 0)
			rc = -errno;
	}
	for (uint64_t i = 0; !rc && i < run->iters; i++) {
		ssize_t n;

		if (run->kind == WB_BASE) {
			n = shmq_queue_get(q[0], &v, sizeof(v), WB_TIMEOUT);
		} else {
			for (;;) {
				int k;

				if (run->kind == WB_EPOLL) {
					struct epoll_event ev;

					k = epoll_wait(ep, &ev, 1, (int)(WB_TIMEOUT / 1000000));
					if (k < 0 && errno == EINTR)
						continue; /* io_uring task work */
					if (k <= 0) {
						rc = -ETIMEDOUT;
						break;
					}
					k = shmq_waitset_wait(w, rd, WB_QUEUES, SHMQ_NOWAIT);
				} else {
					k = shmq_waitset_wait(w, rd, WB_QUEUES, WB_TIMEOUT);
				}
				if (k > 0)
					break;
				if (k != -ETIMEDOUT || run->kind != WB_EPOLL) {
					rc = k;
					break;
				}
			}
			if (rc)
				break;
			n = shmq_queue_get(q[0], &v, sizeof(v), SHMQ_NOWAIT);
		}
		if (n != sizeof(v))
			rc = n < 0 ? (int)n : -EBADMSG;
		else
			rc = shmq_queue_put(q[1], &v, sizeof(v), WB_TIMEOUT);
	}
	if (ep >= 0)
		close(ep);
	shmq_waitset_free(w);
	return rc;
}

static int wb_side(void *arg, int side)
{
	const struct wb_run *run = arg;
	shmq_queue *q[WB_QUEUES] = { 0 };
	shmq_region *r;
	int rc = wb_open(run, &r, q);

	if (rc)
		return rc;
	if (side == 1) {
		rc = wb_answer(run, q);
	} else {
		for (uint64_t i = 0; !rc && i < run->iters; i++) {
			int64_t t0 = bench_now_ns();
			ssize_t n;

			rc = shmq_queue_put(q[0], &i, sizeof(i), WB_TIMEOUT);
			if (rc)
				break;
			n = shmq_queue_get(q[1], &i, sizeof(i), WB_TIMEOUT);
			if (n != sizeof(i))
				rc = n < 0 ? (int)n : -EBADMSG;
			else if (i >= run->iters / 10) /* after a warm-up */
				bench_hist_record(run->hist, (uint64_t)(bench_now_ns() - t0));
		}
	}
	wb_close(r, q);
	return rc;
}

/* Side 1 of the pipe kinds: wait for ping on end 1 the run's way, answer on it. */
static int wb_pipe_answer(const struct wb_run *run, shmq_pipe *p)
{
	struct shmq_ready rd[1];
	shmq_waitset *w = NULL;
	int rc = 0;
	uint64_t v;

	if (run->kind == WB_PWS1 && ((rc = shmq_waitset_create(&w)) < 0 ||
				     (rc = shmq_waitset_add_pipe(w, p, SHMQ_READABLE, p)) < 0)) {
		shmq_waitset_free(w);
		return rc;
	}
	for (uint64_t i = 0; !rc && i < run->iters; i++) {
		ssize_t n;

		if (run->kind == WB_PWS1) {
			int k = shmq_waitset_wait(w, rd, 1, WB_TIMEOUT);

			if (k <= 0) {
				rc = k ? k : -ETIMEDOUT;
				break;
			}
			n = shmq_pipe_recv(p, &v, sizeof(v), SHMQ_NOWAIT);
		} else {
			n = shmq_pipe_recv(p, &v, sizeof(v), WB_TIMEOUT);
		}
		if (n != sizeof(v))
			rc = n < 0 ? (int)n : -EBADMSG;
		else
			rc = shmq_pipe_send(p, &v, sizeof(v), WB_TIMEOUT);
	}
	shmq_waitset_free(w);
	return rc;
}

static int wb_pipe_side(void *arg, int side)
{
	const struct wb_run *run = arg;
	shmq_pipe *p = run->h0;
	shmq_region *r = NULL;
	int rc = 0;

	if (side == 1) {
		if ((rc = shmq_region_open(run->region, &r)) < 0)
			return rc;
		if ((rc = shmq_pipe_open(r, "p", 1, &p)) == 0)
			rc = wb_pipe_answer(run, p);
		shmq_pipe_close(p);
		shmq_region_close(r);
		return rc;
	}
	for (uint64_t i = 0; !rc && i < run->iters; i++) {
		int64_t t0 = bench_now_ns();
		ssize_t n;

		rc = shmq_pipe_send(p, &i, sizeof(i), WB_TIMEOUT);
		if (rc)
			break;
		n = shmq_pipe_recv(p, &i, sizeof(i), WB_TIMEOUT);
		if (n != sizeof(i))
			rc = n < 0 ? (int)n : -EBADMSG;
		else if (i >= run->iters / 10) /* after a warm-up */
			bench_hist_record(run->hist, (uint64_t)(bench_now_ns() - t0));
	}
	return rc;
}

static int wb_measure(struct bench *b, enum wb_kind kind, double *p50)
{
	struct shmq_region_opts o = { .size = 16u << 20 };
	struct wb_run run = { .kind = kind, .iters = bench_scale(b, 20000, 2000) };
	char name[32];
	shmq_region *r;
	shmq_queue *q;
	int rc;
	bool pipe = kind == WB_PBASE || kind == WB_PWS1;

	snprintf(run.region, sizeof(run.region), "/shmq-bench-waitset-%d", (int)getpid());
	shmq_region_unlink(run.region);
	if ((rc = shmq_region_create(run.region, &o, &r)) < 0)
		return rc;
	if (pipe) {
		shmq_pipe *end1;

		if ((rc = shmq_pipe_create(r, "p", NULL, &run.h0, &end1)) == 0)
			shmq_pipe_close(end1); /* side 1 opens its own */
	}
	for (int i = 0; !rc && !pipe && i < WB_QUEUES; i++) {
		snprintf(name, sizeof(name), "q.%d", i);
		rc = shmq_queue_create(r, name, &(struct shmq_queue_opts){ .capacity = 16, .max_msg = 8 }, &q);
		if (!rc)
			shmq_queue_close(q);
	}
	if (!pipe)
		shmq_region_close(r); /* a pipe's end 0 keeps it mapped */
	run.hist = bench_shared_alloc(sizeof(*run.hist));
	if (!run.hist)
		rc = -ENOMEM;
	if (!rc) {
		bench_hist_init(run.hist);
		rc = bench_pair_procs(b, pipe ? wb_pipe_side : wb_side, &run);
	}
	shmq_pipe_close(run.h0);
	if (pipe)
		shmq_region_close(r);
	if (!rc)
		*p50 = (double)bench_hist_quantile(run.hist, 0.5);
	if (run.hist)
		bench_shared_free(run.hist, sizeof(*run.hist));
	shmq_region_unlink(run.region);
	return rc;
}

int bench_waitset(struct bench *b)
{
	double base, ws1, ws64, ep, pbase, pws1;
	int rc;

	if ((rc = wb_measure(b, WB_BASE, &base)) < 0 || (rc = wb_measure(b, WB_WS1, &ws1)) < 0 ||
	    (rc = wb_measure(b, WB_WS64, &ws64)) < 0 || (rc = wb_measure(b, WB_EPOLL, &ep)) < 0 ||
	    (rc = wb_measure(b, WB_PBASE, &pbase)) < 0 || (rc = wb_measure(b, WB_PWS1, &pws1)) < 0)
		return rc;
	if ((rc = bench_report(b, "wake via waitset, 1 pipe", "ns", pws1, "blocking pipe_recv",
			       pbase, false)) < 0)
		return rc;
	if ((rc = bench_report(b, "wake via waitset, 1 queue", "ns", ws1,
			       "blocking queue_get", base, false)) < 0 ||
	    (rc = bench_report(b, "wake via waitset, 64 queues", "ns", ws64,
			       "blocking queue_get", base, false)) < 0)
		return rc;
	return bench_report(b, "wake via epoll on waitset fd", "ns", ep, "blocking queue_get", base,
			    false);
}
