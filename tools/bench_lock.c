/* SPDX-License-Identifier: MIT */
/*
 * shmq-bench lock / barrier: libshmq's futex lock and barrier beside glibc's
 * pthread_mutex_t / pthread_barrier_t with PTHREAD_PROCESS_SHARED, on the
 * same work, in the same run.
 *
 * lock
 *   uncontended   one process, acquire + release in a loop (ns per pair)
 *   contended     two processes pinned to two cores, each acquiring,
 *                 bumping a plain shared counter and releasing in a loop;
 *                 acquisitions per second over both (the counter is checked)
 *   Both also beside a robust pthread_mutex_t (PTHREAD_MUTEX_ROBUST): the
 *   peer that, like shmq_lock, hands a dead holder's lock to the next
 *   taker with EOWNERDEAD; the plain one leaves its waiters hung.
 * barrier
 *   close         two processes pinned to two cores meet at the barrier in a
 *                 tight loop: rounds per second
 *   apart         the same, but side 1 works 100 us (busy) before each
 *                 arrival, so side 0 always waits long enough to sleep;
 *                 measured in 4 alternating chunks (drift on a shared
 *                 machine then hits both alike)
 * Both wait without a timeout (SHMQ_FOREVER), as pthread_barrier_wait does.
 *
 * libshmq's objects live in a named region that each process attaches to by
 * itself (its own owner id); glibc's in a MAP_SHARED anonymous mapping made
 * before the fork.  Each process starts its loop at a shared start gate; the
 * elapsed time runs from the gate to the later of the two ends.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <shmq.h>

#include "core/atomic_int.h"
#include "core/compiler_int.h"

#include "bench.h"

#define SECOND 1e9
#define APART_WORK_NS 100000
#define APART_CHUNKS 4

/* Everything both processes see: glibc's objects, the gate, the counter. */
struct lk_shared {
	pthread_mutex_t mtx SHMQ__ALIGNED(SHMQ__CACHELINE);
	pthread_mutex_t rmtx SHMQ__ALIGNED(SHMQ__CACHELINE); /* robust */
	pthread_barrier_t bar SHMQ__ALIGNED(SHMQ__CACHELINE);
	uint64_t counter SHMQ__ALIGNED(SHMQ__CACHELINE); /* bumped under the lock */
	uint32_t gate SHMQ__ALIGNED(SHMQ__CACHELINE);    /* sides that reached the start */
	int64_t start_ns;
	int64_t end_ns[2];
	uint64_t iters;  /* loop length per side */
	int64_t work_ns; /* side 1's work before each barrier arrival */
	int use_shmq;    /* 1: libshmq's object, 0: glibc's */
	int robust;      /* glibc's: the robust mutex */
};
SHMQ__LINE_ALIGNED_FIELD(struct lk_shared, counter);

/* Process-private context; after the fork side 1 opens its own handles. */
struct lk_ctx {
	struct lk_shared *sh;
	char region[64];
	shmq_region *r;   /* side 0's */
	shmq_lock *l;     /* side 0's */
	shmq_barrier *b;  /* side 0's */
};

/* ---- common ---- */

static int lk_region_create(struct lk_ctx *c)
{
	struct shmq_region_opts o = { .size = (size_t)1 << 20 };
	int rc;

	snprintf(c->region, sizeof(c->region), "/shmq-bench-lock-%d", (int)getpid());
	shmq_region_unlink(c->region);
	rc = shmq_region_create(c->region, &o, &c->r);
	if (!rc)
		rc = shmq_lock_create(c->r, "lock", &c->l);
	if (!rc)
		rc = shmq_barrier_create(c->r, "barrier", 2, &c->b);
	return rc;
}

static void lk_region_destroy(struct lk_ctx *c)
{
	shmq_barrier_close(c->b);
	shmq_lock_close(c->l);
	shmq_region_close(c->r);
	shmq_region_unlink(c->region);
}

static int lk_pthread_init(struct lk_shared *sh)
{
	pthread_mutexattr_t ma;
	pthread_barrierattr_t ba;
	int rc;

	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	rc = pthread_mutex_init(&sh->mtx, &ma);
	if (!rc)
		rc = pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
	if (!rc)
		rc = pthread_mutex_init(&sh->rmtx, &ma);
	pthread_mutexattr_destroy(&ma);
	if (rc)
		return -rc;
	pthread_barrierattr_init(&ba);
	pthread_barrierattr_setpshared(&ba, PTHREAD_PROCESS_SHARED);
	rc = pthread_barrier_init(&sh->bar, &ba, 2);
	pthread_barrierattr_destroy(&ba);
	return -rc;
}

/* Both sides arrive; side 0 stamps the start.  Bounded: 10 s. */
static int lk_gate(struct lk_shared *sh, int side)
{
	int64_t give_up = bench_now_ns() + 10 * (int64_t)SECOND;

	shmq__fetch_add_seq_cst(&sh->gate, 1);
	while (shmq__load_seq_cst(&sh->gate) < 2) {
		if (bench_now_ns() > give_up)
			return -ETIMEDOUT;
		sched_yield();
	}
	if (side == 0)
		sh->start_ns = bench_now_ns();
	return 0;
}

static void lk_reset(struct lk_shared *sh, int use_shmq, uint64_t iters, int64_t work_ns)
{
	sh->robust = 0;
	sh->counter = 0;
	sh->gate = 0;
	sh->start_ns = 0;
	sh->end_ns[0] = sh->end_ns[1] = 0;
	sh->iters = iters;
	sh->work_ns = work_ns;
	sh->use_shmq = use_shmq;
}

static double lk_elapsed(const struct lk_shared *sh)
{
	int64_t end = sh->end_ns[0] > sh->end_ns[1] ? sh->end_ns[0] : sh->end_ns[1];

	return (double)(end - sh->start_ns);
}

/* In side 1 (forked): attach to the region ourselves, for our own owner id. */
static int lk_side1_open(struct lk_ctx *c)
{
	int rc;

	c->r = NULL; /* the handles inherited from side 0 are not ours */
	c->l = NULL;
	c->b = NULL;
	rc = shmq_region_open(c->region, &c->r);

	if (!rc)
		rc = shmq_lock_open(c->r, "lock", &c->l);
	if (!rc)
		rc = shmq_barrier_open(c->r, "barrier", &c->b);
	return rc;
}

/* Side 1 closes its handles before it exits: a process that leaves the
 * region with a barrier handle open counts as a dead party, and the next
 * run's waiter that sleeps a slice would break the barrier (-EPIPE). */
static void lk_side1_close(struct lk_ctx *c)
{
	shmq_barrier_close(c->b);
	shmq_lock_close(c->l);
	shmq_region_close(c->r);
}

/* Run loop as side `side`; side 1 of libshmq's runs in handles of its own. */
static int lk_side(struct lk_ctx *c, int side, int (*loop)(struct lk_ctx *c, int side))
{
	int rc;

	if (side != 1 || !c->sh->use_shmq)
		return loop(c, side);
	rc = lk_side1_open(c);
	if (!rc)
		rc = loop(c, side);
	lk_side1_close(c);
	return rc;
}

/* ---- lock ---- */

static double lock_uncontended_shmq(shmq_lock *l, uint64_t n)
{
	int64_t t0 = bench_now_ns();

	for (uint64_t i = 0; i < n; i++) {
		shmq_lock_acquire(l, SHMQ_FOREVER);
		shmq_lock_release(l);
	}
	return (double)(bench_now_ns() - t0) / (double)n;
}

static double lock_uncontended_pthread(pthread_mutex_t *m, uint64_t n)
{
	int64_t t0 = bench_now_ns();

	for (uint64_t i = 0; i < n; i++) {
		pthread_mutex_lock(m);
		pthread_mutex_unlock(m);
	}
	return (double)(bench_now_ns() - t0) / (double)n;
}

static int lock_loop(struct lk_ctx *c, int side)
{
	struct lk_shared *sh = c->sh;
	int rc = 0;

	if ((rc = lk_gate(sh, side)))
		return rc;
	for (uint64_t i = 0; i < sh->iters; i++) {
		if (sh->use_shmq) {
			if ((rc = shmq_lock_acquire(c->l, SHMQ_FOREVER)))
				return rc;
			sh->counter++;
			if ((rc = shmq_lock_release(c->l)))
				return rc;
		} else {
			pthread_mutex_t *m = sh->robust ? &sh->rmtx : &sh->mtx;

			if ((rc = pthread_mutex_lock(m)))
				return -rc; /* EOWNERDEAD: nobody dies here */
			sh->counter++;
			pthread_mutex_unlock(m);
		}
	}
	sh->end_ns[side] = bench_now_ns();
	return 0;
}

static int lock_side(void *arg, int side)
{
	return lk_side(arg, side, lock_loop);
}

/* One contended measurement: acquisitions per second over both sides. */
static int lock_contended(const struct bench *b, struct lk_ctx *c, int use_shmq, int robust,
			  uint64_t n, double *rate)
{
	int rc;

	lk_reset(c->sh, use_shmq, n, 0);
	c->sh->robust = robust;
	rc = bench_pair_procs(b, lock_side, c);
	if (rc)
		return rc;
	if (c->sh->counter != 2 * n)
		return -EPROTO; /* the lock let two holders in */
	*rate = (double)(2 * n) / lk_elapsed(c->sh) * SECOND;
	return 0;
}

int bench_lock(struct bench *b)
{
	struct lk_ctx c = { 0 };
	uint64_t n_unc = bench_scale(b, 20000000, 2000000);
	uint64_t n_con = bench_scale(b, 4000000, 400000);
	double shmq_ns, pt_ns, rb_ns, shmq_rate = 0, pt_rate = 0, rb_rate = 0;
	int rc;

	c.sh = bench_shared_alloc(sizeof(*c.sh));
	if (!c.sh)
		return -ENOMEM;
	rc = lk_pthread_init(c.sh);
	if (!rc)
		rc = lk_region_create(&c);
	if (rc)
		goto out;

	/* uncontended: warm both up, then alternate so drift hits both alike */
	lock_uncontended_shmq(c.l, n_unc / 10);
	lock_uncontended_pthread(&c.sh->mtx, n_unc / 10);
	lock_uncontended_pthread(&c.sh->rmtx, n_unc / 10);
	shmq_ns = lock_uncontended_shmq(c.l, n_unc / 2);
	pt_ns = lock_uncontended_pthread(&c.sh->mtx, n_unc / 2);
	rb_ns = lock_uncontended_pthread(&c.sh->rmtx, n_unc / 2);
	shmq_ns = (shmq_ns + lock_uncontended_shmq(c.l, n_unc / 2)) / 2;
	pt_ns = (pt_ns + lock_uncontended_pthread(&c.sh->mtx, n_unc / 2)) / 2;
	rb_ns = (rb_ns + lock_uncontended_pthread(&c.sh->rmtx, n_unc / 2)) / 2;
	rc = bench_report(b, "uncontended acquire+release", "ns", shmq_ns,
			  "pthread_mutex pshared", pt_ns, false);
	if (!rc)
		rc = bench_report(b, "uncontended acquire+release vs robust", "ns", shmq_ns,
				  "pthread_mutex robust pshared", rb_ns, false);
	if (rc)
		goto out;

	rc = lock_contended(b, &c, 1, 0, n_con, &shmq_rate);
	if (!rc)
		rc = lock_contended(b, &c, 0, 0, n_con, &pt_rate);
	if (!rc)
		rc = lock_contended(b, &c, 0, 1, n_con, &rb_rate);
	if (!rc)
		rc = bench_report(b, "2 processes contending", "Macq/s", shmq_rate / 1e6,
				  "pthread_mutex pshared", pt_rate / 1e6, true);
	if (!rc)
		rc = bench_report(b, "2 processes contending vs robust", "Macq/s", shmq_rate / 1e6,
				  "pthread_mutex robust pshared", rb_rate / 1e6, true);
out:
	lk_region_destroy(&c);
	pthread_mutex_destroy(&c.sh->mtx);
	pthread_mutex_destroy(&c.sh->rmtx);
	pthread_barrier_destroy(&c.sh->bar);
	bench_shared_free(c.sh, sizeof(*c.sh));
	return rc;
}

/* ---- barrier ---- */

/* Side 1's work before an arrival: a busy wait (it keeps its core). */
static void barrier_work(int64_t ns)
{
	int64_t until;

	if (ns <= 0)
		return;
	until = bench_now_ns() + ns;
	while (bench_now_ns() < until)
		shmq__cpu_relax();
}

static int barrier_loop(struct lk_ctx *c, int side)
{
	struct lk_shared *sh = c->sh;
	int64_t work = side == 1 ? sh->work_ns : 0;
	int rc = 0;

	if ((rc = lk_gate(sh, side)))
		return rc;
	for (uint64_t i = 0; i < sh->iters; i++) {
		barrier_work(work);
		if (sh->use_shmq) {
			rc = shmq_barrier_wait(c->b, SHMQ_FOREVER);
			if (rc < 0)
				return rc;
		} else {
			rc = pthread_barrier_wait(&sh->bar);
			if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD)
				return -rc;
		}
	}
	sh->end_ns[side] = bench_now_ns();
	return 0;
}

static int barrier_side(void *arg, int side)
{
	return lk_side(arg, side, barrier_loop);
}

/* One barrier measurement: rounds per second. */
static int barrier_rounds(const struct bench *b, struct lk_ctx *c, int use_shmq, uint64_t n,
			  int64_t work_ns, double *rate)
{
	int rc;

	lk_reset(c->sh, use_shmq, n, work_ns);
	rc = bench_pair_procs(b, barrier_side, c);
	if (rc)
		return rc;
	*rate = (double)n / lk_elapsed(c->sh) * SECOND;
	return 0;
}

int bench_barrier(struct bench *b)
{
	struct lk_ctx c = { 0 };
	uint64_t n_close = bench_scale(b, 20000, 2000);
	uint64_t n_apart = bench_scale(b, 4000, 400);
	double s_close = 0, p_close = 0, s_apart = 0, p_apart = 0;
	int rc;

	c.sh = bench_shared_alloc(sizeof(*c.sh));
	if (!c.sh)
		return -ENOMEM;
	rc = lk_pthread_init(c.sh);
	if (!rc)
		rc = lk_region_create(&c);
	if (!rc)
		rc = barrier_rounds(b, &c, 1, n_close, 0, &s_close);
	if (!rc)
		rc = barrier_rounds(b, &c, 0, n_close, 0, &p_close);
	if (!rc)
		rc = bench_report(b, "2 processes, close together", "krounds/s", s_close / 1e3,
				  "pthread_barrier pshared", p_close / 1e3, true);
	/* apart: alternate in chunks, since on a shared machine the scheduling
	 * delays that dominate this figure drift within a run */
	for (int k = 0; k < APART_CHUNKS && !rc; k++) {
		double s = 0, p = 0;

		rc = barrier_rounds(b, &c, 1, n_apart / APART_CHUNKS, APART_WORK_NS, &s);
		if (!rc)
			rc = barrier_rounds(b, &c, 0, n_apart / APART_CHUNKS, APART_WORK_NS, &p);
		if (!rc) {
			s_apart += 1 / s; /* seconds per round, summed over chunks */
			p_apart += 1 / p;
		}
	}
	if (!rc)
		rc = bench_report(b, "2 processes, 100 us apart", "krounds/s",
				  APART_CHUNKS / s_apart / 1e3, "pthread_barrier pshared",
				  APART_CHUNKS / p_apart / 1e3, true);
	lk_region_destroy(&c);
	pthread_mutex_destroy(&c.sh->mtx);
	pthread_mutex_destroy(&c.sh->rmtx);
	pthread_barrier_destroy(&c.sh->bar);
	bench_shared_free(c.sh, sizeof(*c.sh));
	return rc;
}
