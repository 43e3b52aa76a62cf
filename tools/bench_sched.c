/* SPDX-License-Identifier: MIT */
/*
 * shmq-bench sched: the scheduler's timer queue and its wake-up precision.
 *
 *  - enter+cancel: with N events pending (N = 10^3 .. 10^6, deadlines spread
 *    over an hour, so none runs), one enter of a new random deadline plus one
 *    cancel of a random pending event, repeated; reported in ns per
 *    operation (the pair's time / 2).  Baseline: the kernel's own timer
 *    bookkeeping, a timerfd_settime arm plus a disarm, per operation.
 *  - timer lateness: T timers 2 ms apart (T = 1000; 50 with --quick), each
 *    run's lateness = the time its action starts - its deadline.  The same
 *    deadlines on a bare io_uring (one IORING_OP_TIMEOUT with
 *    IORING_TIMEOUT_ABS at a time, waited for with io_uring_wait_cqe) and on a
 *    bare timerfd (TFD_TIMER_ABSTIME + read) in the same run: the scheduler's
 *    default mode is read against the bare io_uring timer, its precision mode
 *    too (target p99 <= 10 us), and the fallback backend against the timerfd.
 *  - a watched object's publisher: send+recv pairs on a pipe (put+get pairs
 *    on a queue) made inside the action of a scheduler watching its
 *    receiving side, in one process, against the same pairs unwatched: what
 *    a watcher busy in its action costs the publisher (a pipe's watch is
 *    not counted in then; a queue's is, and each put wakes it).
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include <shmq.h>

#include "bench.h"

#define MS 1000000LL
#define SEC 1000000000LL
#define GAP (2 * MS)

static uint64_t xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void noop(void *arg)
{
	(void)arg;
}

/* ---- enter + cancel at N pending ---- */

static int ec_fill(shmq_sched *s, shmq_event **ev, size_t n, int64_t base, uint64_t *rng)
{
	for (size_t i = 0; i < n; i++) {
		int64_t when = base + (int64_t)(xorshift(rng) % (3600 * SEC));
		int rc = shmq_sched_enterabs(s, when, 0, noop, NULL, &ev[i]);

		if (rc < 0)
			return rc;
	}
	return 0;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/*
 * ns per operation over ops (enter, cancel) pairs with n pending, timed in
 * chunks of EC_CHUNK pairs; the figure is the median chunk (on a shared box
 * a chunk that was preempted says nothing about the data structure).
 */
#define EC_CHUNK 2000
static int ec_measure(size_t n, uint64_t ops, double *ns_per_op)
{
	struct shmq_sched_opts o = { .backend = SHMQ_SCHED_AUTO };
	size_t nchunks = ops / EC_CHUNK ? ops / EC_CHUNK : 1;
	shmq_event **ev = calloc(n, sizeof(*ev));
	int64_t *chunk = calloc(nchunks, sizeof(*chunk));
	uint64_t rng = 0x2545f4914f6cdd1dull ^ n;
	int64_t base = shmq_now_ns() + 3600 * SEC;
	shmq_sched *s;
	size_t next;
	int rc = -ENOMEM;

	if (!ev || !chunk)
		goto out;
	if ((rc = shmq_sched_create(&o, &s)) < 0)
		goto out;
	if ((rc = ec_fill(s, ev, n, base, &rng)) < 0)
		goto out_s;
	next = (size_t)(xorshift(&rng) % n);
	for (size_t c = 0; c < nchunks; c++) {
		int64_t t0 = bench_now_ns();

		for (uint64_t i = 0; i < EC_CHUNK; i++) {
			size_t victim = next;
			int64_t when = base + (int64_t)(xorshift(&rng) % (3600 * SEC));
			shmq_event *nev;

			/* the harness's own handle array: fetch the next one early */
			next = (size_t)(xorshift(&rng) % n);
			__builtin_prefetch(&ev[next], 1);

			if ((rc = shmq_sched_enterabs(s, when, 0, noop, NULL, &nev)) < 0 ||
			    (rc = shmq_sched_cancel(s, ev[victim])) < 0)
				goto out_s;
			ev[victim] = nev;
		}
		chunk[c] = bench_now_ns() - t0;
	}
	qsort(chunk, nchunks, sizeof(*chunk), cmp_i64);
	*ns_per_op = (double)chunk[nchunks / 2] / (2.0 * EC_CHUNK);
out_s:
	shmq_sched_destroy(s);
out:
	free(chunk);
	free(ev);
	return rc;
}

/* the kernel's timer: arm + disarm of a timerfd, ns per operation */
static int ec_timerfd(uint64_t ops, double *ns_per_op)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	struct itimerspec on = { .it_value = { .tv_sec = 3600 } }, off = { 0 };
	int64_t t0;

	if (fd < 0)
		return -errno;
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < ops; i++) {
		on.it_value.tv_nsec = (long)(i % 1000000);
		if (timerfd_settime(fd, 0, &on, NULL) < 0 || timerfd_settime(fd, 0, &off, NULL) < 0) {
			close(fd);
			return -errno;
		}
	}
	*ns_per_op = (double)(bench_now_ns() - t0) / (double)(2 * ops);
	close(fd);
	return 0;
}

static int bench_enter_cancel(struct bench *b)
{
	static const size_t sizes[] = { 1000, 10000, 100000, 1000000 };
	uint64_t ops = bench_scale(b, 1000000, 40000);
	double base_ns = 0;
	int rc;

	if ((rc = ec_timerfd(ops / 4, &base_ns)) < 0)
		return rc;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		double ns;

		if ((rc = ec_measure(sizes[i], ops, &ns)) < 0)
			return rc;
		char name[64];

		snprintf(name, sizeof(name), "enter+cancel, %zu pending", sizes[i]);
		rc = bench_report(b, name, "ns/op", ns, "timerfd arm+disarm", base_ns, false);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---- lateness ---- */

struct late {
	struct bench_hist *h;
	int64_t when;
};

static void act_late(void *arg)
{
	struct late *l = arg;
	int64_t now = bench_now_ns();

	bench_hist_record(l->h, (uint64_t)(now > l->when ? now - l->when : 0));
}

static int late_sched(const struct shmq_sched_opts *o, unsigned n, struct bench_hist *h)
{
	struct late *l = calloc(n, sizeof(*l));
	int64_t t0, rc;
	shmq_sched *s;

	if (!l)
		return -ENOMEM;
	if ((rc = shmq_sched_create(o, &s)) < 0)
		goto out;
	t0 = shmq_now_ns() + 10 * MS;
	for (unsigned i = 0; i < n && rc == 0; i++) {
		l[i].h = h;
		l[i].when = t0 + (int64_t)i * GAP;
		rc = shmq_sched_enterabs(s, l[i].when, 0, act_late, &l[i], NULL);
	}
	if (rc == 0)
		rc = shmq_sched_run(s, true);
	shmq_sched_destroy(s);
out:
	free(l);
	return (int)rc;
}

static int late_uring(unsigned n, struct bench_hist *h)
{
	struct io_uring ring;
	int64_t t0 = shmq_now_ns() + 10 * MS;
	int rc = io_uring_queue_init(8, &ring, 0);

	if (rc < 0)
		return rc;
	for (unsigned i = 0; i < n; i++) {
		int64_t when = t0 + (int64_t)i * GAP, now;
		struct __kernel_timespec ts = { when / SEC, when % SEC };
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
		struct io_uring_cqe *cqe;

		io_uring_prep_timeout(sqe, &ts, 0, IORING_TIMEOUT_ABS);
		io_uring_submit(&ring);
		do
			rc = io_uring_wait_cqe(&ring, &cqe);
		while (rc == -EINTR);
		if (rc < 0)
			break;
		now = bench_now_ns();
		io_uring_cqe_seen(&ring, cqe);
		bench_hist_record(h, (uint64_t)(now > when ? now - when : 0));
	}
	io_uring_queue_exit(&ring);
	return rc < 0 ? rc : 0;
}

static int late_timerfd(unsigned n, struct bench_hist *h)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	int64_t t0 = shmq_now_ns() + 10 * MS;

	if (fd < 0)
		return -errno;
	for (unsigned i = 0; i < n; i++) {
		int64_t when = t0 + (int64_t)i * GAP, now;
		struct itimerspec its = { .it_value = { when / SEC, when % SEC } };
		uint64_t ticks;

		if (timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL) < 0 ||
		    read(fd, &ticks, sizeof(ticks)) != sizeof(ticks)) {
			close(fd);
			return -errno;
		}
		now = bench_now_ns();
		bench_hist_record(h, (uint64_t)(now > when ? now - when : 0));
	}
	close(fd);
	return 0;
}

enum { H_URING, H_TIMERFD, H_SCHED, H_PRECISE, H_FALLBACK, H_N };

/* Percentage of the samples of h that are at most ns (whole buckets only). */
static double hist_share_within(const struct bench_hist *h, uint64_t ns)
{
	uint64_t c = 0;

	if (!h->count)
		return 0;
	for (unsigned i = 0; i + 1 < BENCH_HIST_BUCKETS && bench_hist_bucket_low(i + 1) <= ns + 1; i++)
		c += h->bucket[i];
	return 100.0 * (double)c / (double)h->count;
}
#define LATE_ROUND 50 /* timers per mode per round: the modes take turns */

static int late_round(int mode, unsigned n, struct bench_hist *h)
{
	static const struct shmq_sched_opts def = { 0 };
	static const struct shmq_sched_opts precise = { .flags = SHMQ_SCHED_PRECISE };
	static const struct shmq_sched_opts fb = { .backend = SHMQ_SCHED_FALLBACK };

	switch (mode) {
	case H_URING:
		return late_uring(n, h);
	case H_TIMERFD:
		return late_timerfd(n, h);
	case H_SCHED:
		return late_sched(&def, n, h);
	case H_PRECISE:
		return late_sched(&precise, n, h);
	default:
		return late_sched(&fb, n, h);
	}
}

/* The non-spinning modes take turns in rounds of LATE_ROUND timers, so that
 * a change in the machine's load during the run falls on all of them alike. */
static int bench_lateness(struct bench *b)
{
	unsigned n = (unsigned)bench_scale(b, 1000, 50);
	struct bench_hist *h[H_N] = { 0 };
	int rc = -ENOMEM;

	for (int i = 0; i < H_N; i++)
		if (!(h[i] = bench_hist_new()))
			goto out;
	for (unsigned done = 0; done < n; done += LATE_ROUND) {
		unsigned k = n - done < LATE_ROUND ? n - done : LATE_ROUND;

		for (int m = 0; m < H_N; m++)
			if (m != H_PRECISE && (rc = late_round(m, k, h[m])) < 0)
				goto out;
	}
	/* Precision mode spins, and the kernel's scheduler then favours the
	 * other tasks at our next wake-ups for a while: measured last, so it
	 * cannot slow the modes above. */
	if ((rc = late_round(H_PRECISE, n, h[H_PRECISE])) < 0)
		goto out;
	if ((rc = bench_report_latency(b, "timer lateness (sched, io_uring)", h[H_SCHED],
				       "bare io_uring timeout", h[H_URING])) < 0 ||
	    (rc = bench_report_latency(b, "timer lateness (sched, precise)", h[H_PRECISE],
				       "bare io_uring timeout", h[H_URING])) < 0 ||
	    (rc = bench_report_latency(b, "timer lateness (sched, fallback)", h[H_FALLBACK],
				       "bare timerfd", h[H_TIMERFD])) < 0)
		goto out;
	/* the precision target in a form a loaded machine cannot hide: how many
	 * timers ran within 10 us of their deadline */
	rc = bench_report(b, "timers within 10 us (sched, precise)", "%",
			  hist_share_within(h[H_PRECISE], 10000), "bare io_uring timeout",
			  hist_share_within(h[H_URING], 10000), true);
	if (rc < 0)
		goto out;
	rc = 0;
out:
	for (int i = 0; i < H_N; i++)
		if (h[i])
			bench_hist_free(h[i]);
	return rc;
}

/* ---- a watcher busy in its action ---- */

struct wb_pairs {
	shmq_pipe *a, *b;  /* a pipe's two ends, or NULL */
	shmq_queue *q;     /* or a queue */
	shmq_sched *s;
	uint64_t n;
	double ns;         /* per pair */
	int rc;
	bool done;
};

static void wb_run_pairs(struct wb_pairs *w)
{
	char m[64] = { 0 };
	int64_t t0 = 0;

	/* the first tenth warms the ring's pages up, untimed */
	for (uint64_t i = 0; i < w->n + w->n / 10 && !w->rc; i++) {
		if (i == w->n / 10)
			t0 = bench_now_ns();
		if (w->q) {
			if ((w->rc = shmq_queue_put(w->q, m, sizeof(m), SHMQ_NOWAIT)) == 0 &&
			    shmq_queue_get(w->q, m, sizeof(m), SHMQ_NOWAIT) != (ssize_t)sizeof(m))
				w->rc = -EPROTO;
		} else {
			if ((w->rc = shmq_pipe_send(w->a, m, sizeof(m), SHMQ_NOWAIT)) == 0 &&
			    shmq_pipe_recv(w->b, m, sizeof(m), SHMQ_NOWAIT) != (ssize_t)sizeof(m))
				w->rc = -EPROTO;
		}
	}
	w->ns = (double)(bench_now_ns() - t0) / (double)w->n;
}

/* The action: take the message that made it ready, then the pairs. */
static void wb_act(void *arg)
{
	struct wb_pairs *w = arg;
	char m[64];

	if (w->done)
		return;
	w->done = true;
	if (w->q)
		(void)shmq_queue_get(w->q, m, sizeof(m), SHMQ_NOWAIT);
	else
		(void)shmq_pipe_recv(w->b, m, sizeof(m), SHMQ_NOWAIT);
	wb_run_pairs(w);
	(void)shmq_sched_unwatch(w->s, w->q ? (void *)w->q : (void *)w->b);
}

/* One measurement: pairs unwatched (watched false) or inside the action. */
static int wb_measure(struct bench *b, shmq_region *r, bool queue, bool watched, double *ns)
{
	static unsigned seq; /* a new object each time: names stay taken */
	struct wb_pairs w = { .n = bench_scale(b, 200000, 20000) };
	char m[64] = { 0 }, name[32];
	int rc;

	snprintf(name, sizeof(name), "bw.%u", seq++);
	rc = queue ? shmq_queue_create(r, name, &(struct shmq_queue_opts){ .max_msg = 64 }, &w.q)
		   : shmq_pipe_create(r, name, NULL, &w.a, &w.b);
	if (rc)
		return rc;
	if (!watched) {
		wb_run_pairs(&w);
	} else if ((rc = shmq_sched_create(NULL, &w.s)) == 0) {
		rc = queue ? shmq_sched_watch_queue(w.s, w.q, wb_act, &w)
			   : shmq_sched_watch_pipe(w.s, w.b, wb_act, &w);
		if (!rc)
			(void)shmq_sched_run(w.s, false); /* armed */
		if (!rc)
			rc = queue ? shmq_queue_put(w.q, m, sizeof(m), SHMQ_NOWAIT)
				   : shmq_pipe_send(w.a, m, sizeof(m), SHMQ_NOWAIT);
		if (!rc)
			(void)shmq_sched_run(w.s, false); /* runs the action */
		if (!rc && !w.done)
			rc = -EPROTO;
		shmq_sched_destroy(w.s);
	}
	shmq_queue_close(w.q);
	shmq_pipe_close(w.a);
	shmq_pipe_close(w.b);
	*ns = w.ns;
	return rc ? rc : w.rc;
}

static int bench_watch(struct bench *b)
{
	struct shmq_region_opts o = { .size = 8u << 20 };
	double base, in_act;
	shmq_region *r;
	int rc = shmq_region_create(NULL, &o, &r);

	if (rc)
		return rc;
	for (int queue = 0; !rc && queue < 2; queue++) {
		if ((rc = wb_measure(b, r, queue, false, &base)) < 0 ||
		    (rc = wb_measure(b, r, queue, true, &in_act)) < 0)
			break;
		rc = bench_report(b, queue ? "queue put+get inside a watch's action, 64B"
					   : "pipe send+recv inside a watch's action, 64B",
				  "ns", in_act, "the same pairs unwatched", base, false);
	}
	shmq_region_close(r);
	return rc;
}

int bench_sched(struct bench *b)
{
	int rc;

	if ((rc = bench_enter_cancel(b)) < 0 || (rc = bench_watch(b)) < 0)
		return rc;
	return bench_lateness(b);
}
