/* SPDX-License-Identifier: MIT */
/*
 * shmq-bench sync: libshmq's flag, condition and semaphore beside glibc's
 * process-shared equivalents (PTHREAD_PROCESS_SHARED mutex and condition
 * variable, sem_t with pshared 1, all in a MAP_SHARED mapping), on the same
 * work, in the same run.
 *
 * uncontended (one process, ns per operation or pair)
 *   flag set+clear     vs an Event made the way Python makes one: a flag
 *                      under a pshared mutex, set broadcasting a pshared
 *                      condition (lock, set, broadcast, unlock; lock,
 *                      clear, unlock)
 *   flag wait on set   vs that Event's wait (lock, check, unlock)
 *   flag is_set        no baseline (glibc has no Event)
 *   sem acquire+release   vs sem_wait + sem_post
 *   cond notify, nobody waiting   vs pthread_cond_signal
 * ping-pong (two processes pinned to two cores, round trips per second)
 *   cond      a turn word under the lock: each side waits on the condition
 *             for its turn, hands the turn over and notifies (shmq_cond +
 *             shmq_lock vs pthread_cond + pthread_mutex, both pshared)
 *   sem       two semaphores at 0: side 0 releases A and acquires B, side 1
 *             the reverse (shmq_sem vs sem_t)
 *   "awake":  both sides go straight back to waiting, so a waiter may spin
 *   "asleep": the answering side works APART_WORK_NS (busy, it keeps its
 *             core) before it answers, so the other always waits long enough
 *             to sleep on its futex; measured in APART_CHUNKS alternating
 *             chunks (drift on a shared machine then hits both alike)
 *
 * The harness repeats the whole subcommand (--runs, default 5) and reports
 * medians; each run measures both sides, alternated.  On the last run a note
 * on stderr gives, per figure, the spread of the per-run ratios.
 *
 * libshmq waits take a 10 s timeout (a stuck run fails, -ETIMEDOUT, rather
 * than hang); glibc's waits have none, as its callers usually write them.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <shmq.h>

#include "core/atomic_int.h"
#include "core/compiler_int.h"

#include "bench.h"

#define SECOND        1e9
#define WAIT_NS       (10 * (int64_t)1000000000)
#define APART_WORK_NS 100000
#define APART_CHUNKS  4
#define SPREAD_MAX    8  /* figures whose ratio spread is noted */
#define SPREAD_RUNS   64 /* runs remembered per figure */

/* Everything both processes see: glibc's objects, the turn, the gate. */
struct sy_shared {
	pthread_mutex_t mtx SHMQ__ALIGNED(SHMQ__CACHELINE);
	pthread_cond_t cv SHMQ__ALIGNED(SHMQ__CACHELINE);
	sem_t sa SHMQ__ALIGNED(SHMQ__CACHELINE);
	sem_t sb SHMQ__ALIGNED(SHMQ__CACHELINE);
	uint32_t turn SHMQ__ALIGNED(SHMQ__CACHELINE); /* whose move: under the lock */
	uint32_t ev_flag;                             /* the glibc Event's flag */
	uint32_t gate SHMQ__ALIGNED(SHMQ__CACHELINE); /* sides that reached the start */
	int64_t start_ns;
	int64_t end_ns[2];
	uint64_t iters;  /* round trips */
	int64_t work_ns; /* side 1's work before each answer */
	int use_shmq;    /* 1: libshmq's objects, 0: glibc's */
	int kind;        /* SY_COND or SY_SEM */
};

enum { SY_COND, SY_SEM };

/* Process-private context; after the fork side 1 opens its own handles. */
struct sy_ctx {
	struct sy_shared *sh;
	char region[64];
	shmq_region *r;
	shmq_lock *l;
	shmq_cond *c;
	shmq_flag *f;
	shmq_sem *s;      /* uncontended: value 1 */
	shmq_sem *pa, *pb; /* ping-pong: value 0 */
};

/* Per-run ratios of each figure, for the spread note (the harness calls
 * bench_sync once per run in one process). */
static struct {
	const char *name;
	double ratio[SPREAD_RUNS];
	int n;
} sy_spread[SPREAD_MAX];

static void sy_spread_add(const struct bench *b, const char *name, double ratio)
{
	for (int i = 0; i < SPREAD_MAX; i++) {
		if (bench_run_index(b) == 0 && sy_spread[i].name == name)
			sy_spread[i].n = 0; /* a new subcommand invocation */
		if (!sy_spread[i].name)
			sy_spread[i].name = name;
		if (sy_spread[i].name != name)
			continue;
		if (sy_spread[i].n < SPREAD_RUNS)
			sy_spread[i].ratio[sy_spread[i].n++] = ratio;
		return;
	}
}

static void sy_spread_note(const struct bench *b)
{
	if (bench_run_index(b) != bench_runs(b) - 1)
		return;
	for (int i = 0; i < SPREAD_MAX && sy_spread[i].name; i++) {
		double lo = INFINITY, hi = 0;

		for (int k = 0; k < sy_spread[i].n; k++) {
			lo = fmin(lo, sy_spread[i].ratio[k]);
			hi = fmax(hi, sy_spread[i].ratio[k]);
		}
		if (sy_spread[i].n)
			bench_note(b, "%-36s ratio over %d runs: %.2fx .. %.2fx", sy_spread[i].name,
				   sy_spread[i].n, lo, hi);
	}
}

/* Report one figure and remember its ratio (as the harness defines it). */
static int sy_report(struct bench *b, const char *name, const char *unit, double shmq,
		     const char *base_name, double base, bool higher_is_better)
{
	if (base_name && shmq > 0 && base > 0)
		sy_spread_add(b, name, higher_is_better ? shmq / base : base / shmq);
	return bench_report(b, name, unit, shmq, base_name, base, higher_is_better);
}

/* ---- setup ---------------------------------------------------------------- */

static int sy_region_create(struct sy_ctx *c)
{
	struct shmq_region_opts o = { .size = (size_t)1 << 20 };
	int rc;

	snprintf(c->region, sizeof(c->region), "/shmq-bench-sync-%d", (int)getpid());
	shmq_region_unlink(c->region);
	rc = shmq_region_create(c->region, &o, &c->r);
	if (!rc)
		rc = shmq_lock_create(c->r, "lock", &c->l);
	if (!rc)
		rc = shmq_cond_create(c->r, "cond", &c->c);
	if (!rc)
		rc = shmq_flag_create(c->r, "flag", &c->f);
	if (!rc)
		rc = shmq_sem_create(c->r, "sem", 1, NULL, &c->s);
	if (!rc)
		rc = shmq_sem_create(c->r, "pa", 0, NULL, &c->pa);
	if (!rc)
		rc = shmq_sem_create(c->r, "pb", 0, NULL, &c->pb);
	return rc;
}

static void sy_region_close(struct sy_ctx *c)
{
	shmq_sem_close(c->pb);
	shmq_sem_close(c->pa);
	shmq_sem_close(c->s);
	shmq_flag_close(c->f);
	shmq_cond_close(c->c);
	shmq_lock_close(c->l);
	shmq_region_close(c->r);
}

/* In side 1 (forked): attach to the region ourselves, for our own owner id. */
static int sy_side1_open(struct sy_ctx *c)
{
	int rc;

	/* the handles inherited from side 0 are not ours (none is closed here) */
	c->r = NULL;
	c->l = NULL;
	c->c = NULL;
	c->f = NULL;
	c->s = c->pa = c->pb = NULL;
	rc = shmq_region_open(c->region, &c->r);

	if (!rc)
		rc = shmq_lock_open(c->r, "lock", &c->l);
	if (!rc)
		rc = shmq_cond_open(c->r, "cond", &c->c);
	if (!rc)
		rc = shmq_sem_open(c->r, "pa", &c->pa);
	if (!rc)
		rc = shmq_sem_open(c->r, "pb", &c->pb);
	return rc;
}

static int sy_pthread_init(struct sy_shared *sh)
{
	pthread_mutexattr_t ma;
	pthread_condattr_t ca;
	int rc;

	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	rc = pthread_mutex_init(&sh->mtx, &ma);
	pthread_mutexattr_destroy(&ma);
	if (rc)
		return -rc;
	pthread_condattr_init(&ca);
	pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
	rc = pthread_cond_init(&sh->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (rc)
		return -rc;
	if (sem_init(&sh->sa, 1, 0) || sem_init(&sh->sb, 1, 0))
		return -errno;
	return 0;
}

static void sy_pthread_destroy(struct sy_shared *sh)
{
	sem_destroy(&sh->sb);
	sem_destroy(&sh->sa);
	pthread_cond_destroy(&sh->cv);
	pthread_mutex_destroy(&sh->mtx);
}

/* ---- uncontended ---------------------------------------------------------- */

/* One timed loop: ns per iteration of op(c, sh). */
typedef int (*sy_op)(struct sy_ctx *c);

static int sy_time(struct sy_ctx *c, sy_op op, uint64_t n, double *ns)
{
	int64_t t0 = bench_now_ns();

	for (uint64_t i = 0; i < n; i++) {
		int rc = op(c);

		if (SHMQ__UNLIKELY(rc))
			return rc;
	}
	*ns = (double)(bench_now_ns() - t0) / (double)n;
	return 0;
}

static int op_flag_set_clear(struct sy_ctx *c)
{
	int rc = shmq_flag_set(c->f);

	return rc ? rc : shmq_flag_clear(c->f);
}

static int op_event_set_clear(struct sy_ctx *c)
{
	struct sy_shared *sh = c->sh;

	pthread_mutex_lock(&sh->mtx);
	sh->ev_flag = 1;
	pthread_cond_broadcast(&sh->cv);
	pthread_mutex_unlock(&sh->mtx);
	pthread_mutex_lock(&sh->mtx);
	sh->ev_flag = 0;
	pthread_mutex_unlock(&sh->mtx);
	return 0;
}

static int op_flag_wait_set(struct sy_ctx *c)
{
	return shmq_flag_wait(c->f, WAIT_NS);
}

static int op_event_wait_set(struct sy_ctx *c)
{
	struct sy_shared *sh = c->sh;
	int rc = 0;

	pthread_mutex_lock(&sh->mtx);
	while (!sh->ev_flag && !rc)
		rc = pthread_cond_wait(&sh->cv, &sh->mtx);
	pthread_mutex_unlock(&sh->mtx);
	return -rc;
}

static int op_flag_is_set(struct sy_ctx *c)
{
	return shmq_flag_is_set(c->f) ? 0 : -EPROTO;
}

static int op_sem_pair(struct sy_ctx *c)
{
	int rc = shmq_sem_acquire(c->s, WAIT_NS);

	return rc ? rc : shmq_sem_release(c->s, 1);
}

static int op_posix_sem_pair(struct sy_ctx *c)
{
	/* sa holds one unit during the uncontended phase */
	if (sem_wait(&c->sh->sa) || sem_post(&c->sh->sa))
		return -errno;
	return 0;
}

static int op_cond_notify(struct sy_ctx *c)
{
	int rc = shmq_cond_notify(c->c, 1);

	return rc < 0 ? rc : 0;
}

static int op_pthread_signal(struct sy_ctx *c)
{
	return -pthread_cond_signal(&c->sh->cv);
}

/* Warm both, then time them alternately, twice each: ns per op. */
static int sy_pair(struct bench *b, struct sy_ctx *c, const char *name, sy_op mine,
		   const char *base_name, sy_op base, uint64_t n)
{
	double m0, m1, b0 = 0, b1 = 0;
	int rc;

	if ((rc = sy_time(c, mine, n / 10, &m0)) || (base && (rc = sy_time(c, base, n / 10, &b0))))
		return rc;
	if ((rc = sy_time(c, mine, n / 2, &m0)) || (base && (rc = sy_time(c, base, n / 2, &b0))) ||
	    (rc = sy_time(c, mine, n / 2, &m1)) || (base && (rc = sy_time(c, base, n / 2, &b1))))
		return rc;
	return sy_report(b, name, "ns", (m0 + m1) / 2, base_name, (b0 + b1) / 2, false);
}

static int sy_uncontended(struct bench *b, struct sy_ctx *c)
{
	uint64_t n = bench_scale(b, 4000000, 400000);
	int rc;

	rc = sy_pair(b, c, "flag set+clear", op_flag_set_clear, "mutex+cond Event pshared",
		     op_event_set_clear, n / 2);
	if (!rc)
		rc = shmq_flag_set(c->f);
	c->sh->ev_flag = 1;
	if (!rc)
		rc = sy_pair(b, c, "flag wait on a set flag", op_flag_wait_set,
			     "mutex+cond Event pshared", op_event_wait_set, n);
	if (!rc)
		rc = sy_pair(b, c, "flag is_set", op_flag_is_set, NULL, NULL, n);
	if (!rc)
		rc = shmq_flag_clear(c->f);
	c->sh->ev_flag = 0;
	if (!rc && sem_post(&c->sh->sa))
		rc = -errno;
	if (!rc)
		rc = sy_pair(b, c, "sem acquire+release", op_sem_pair, "sem_t pshared",
			     op_posix_sem_pair, n);
	if (!rc && sem_wait(&c->sh->sa)) /* back to 0 for the ping-pong */
		rc = -errno;
	if (!rc)
		rc = sy_pair(b, c, "cond notify, nobody waiting", op_cond_notify,
			     "pthread_cond_signal pshared", op_pthread_signal, n);
	return rc;
}

/* ---- ping-pong ------------------------------------------------------------ */

/* Side 1's work before it answers: a busy wait (it keeps its core). */
static void sy_work(int64_t ns)
{
	int64_t until;

	if (ns <= 0)
		return;
	until = bench_now_ns() + ns;
	while (bench_now_ns() < until)
		shmq__cpu_relax();
}

/* Both sides arrive; side 0 stamps the start.  Bounded: 10 s. */
static int sy_gate(struct sy_shared *sh, int side)
{
	int64_t give_up = bench_now_ns() + WAIT_NS;

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

/* shmq_cond: wait under the lock until the turn is ours, then pass it. */
static int pp_cond_shmq(struct sy_ctx *c, int side, uint64_t n, int64_t work)
{
	struct sy_shared *sh = c->sh;
	int rc = shmq_lock_acquire(c->l, WAIT_NS);

	for (uint64_t i = 0; i < n && !rc; i++) {
		while (sh->turn != (uint32_t)side && !rc)
			rc = shmq_cond_wait(c->c, c->l, WAIT_NS);
		if (rc)
			break;
		sy_work(work);
		sh->turn = !side;
		rc = shmq_cond_notify(c->c, 1);
		rc = rc < 0 ? rc : 0;
	}
	if (!rc)
		rc = shmq_lock_release(c->l);
	return rc;
}

static int pp_cond_pthread(struct sy_ctx *c, int side, uint64_t n, int64_t work)
{
	struct sy_shared *sh = c->sh;
	int rc = -pthread_mutex_lock(&sh->mtx);

	for (uint64_t i = 0; i < n && !rc; i++) {
		while (sh->turn != (uint32_t)side && !rc)
			rc = -pthread_cond_wait(&sh->cv, &sh->mtx);
		if (rc)
			break;
		sy_work(work);
		sh->turn = !side;
		rc = -pthread_cond_signal(&sh->cv);
	}
	pthread_mutex_unlock(&sh->mtx);
	return rc;
}

/* Two semaphores: side 0 releases A, acquires B; side 1 the reverse. */
static int pp_sem_shmq(struct sy_ctx *c, int side, uint64_t n, int64_t work)
{
	shmq_sem *mine = side ? c->pa : c->pb, *other = side ? c->pb : c->pa;
	int rc = 0;

	for (uint64_t i = 0; i < n && !rc; i++) {
		if (side == 0) {
			rc = shmq_sem_release(other, 1);
			if (!rc)
				rc = shmq_sem_acquire(mine, WAIT_NS);
		} else {
			rc = shmq_sem_acquire(mine, WAIT_NS);
			sy_work(work);
			if (!rc)
				rc = shmq_sem_release(other, 1);
		}
	}
	return rc;
}

static int pp_sem_posix(struct sy_ctx *c, int side, uint64_t n, int64_t work)
{
	sem_t *mine = side ? &c->sh->sa : &c->sh->sb, *other = side ? &c->sh->sb : &c->sh->sa;

	for (uint64_t i = 0; i < n; i++) {
		if (side == 0) {
			if (sem_post(other) || sem_wait(mine))
				return -errno;
		} else {
			if (sem_wait(mine))
				return -errno;
			sy_work(work);
			if (sem_post(other))
				return -errno;
		}
	}
	return 0;
}

static int pp_side(void *arg, int side)
{
	struct sy_ctx *c = arg;
	struct sy_shared *sh = c->sh;
	int64_t work = side == 1 ? sh->work_ns : 0;
	int rc = 0;

	if (side == 1 && sh->use_shmq && (rc = sy_side1_open(c)))
		goto out;
	if ((rc = sy_gate(sh, side)))
		goto out;
	if (sh->kind == SY_COND)
		rc = sh->use_shmq ? pp_cond_shmq(c, side, sh->iters, work)
				  : pp_cond_pthread(c, side, sh->iters, work);
	else
		rc = sh->use_shmq ? pp_sem_shmq(c, side, sh->iters, work)
				  : pp_sem_posix(c, side, sh->iters, work);
	sh->end_ns[side] = bench_now_ns();
out:
	/* side 1 closes what it opened before its process exits, as a user's
	 * process should (a barrier would count it as a dead party) */
	if (side == 1 && sh->use_shmq)
		sy_region_close(c);
	return rc;
}

/* One ping-pong measurement: seconds per round trip. */
static int pp_run(const struct bench *b, struct sy_ctx *c, int kind, int use_shmq, uint64_t n,
		  int64_t work_ns, double *sec)
{
	struct sy_shared *sh = c->sh;
	int64_t end;
	int rc;

	sh->turn = 0;
	sh->gate = 0;
	sh->start_ns = 0;
	sh->end_ns[0] = sh->end_ns[1] = 0;
	sh->iters = n;
	sh->work_ns = work_ns;
	sh->use_shmq = use_shmq;
	sh->kind = kind;
	rc = bench_pair_procs(b, pp_side, c);
	if (rc)
		return rc;
	end = sh->end_ns[0] > sh->end_ns[1] ? sh->end_ns[0] : sh->end_ns[1];
	*sec = (double)(end - sh->start_ns) / SECOND / (double)n;
	return 0;
}

/* chunks alternating measurements of each side: round trips per second
 * over the total time of each. */
static int pp_figure(struct bench *b, struct sy_ctx *c, int kind, const char *name,
		     const char *base_name, uint64_t n, int64_t work_ns, int chunks)
{
	double s_sec = 0, p_sec = 0;
	int rc = 0;

	for (int k = 0; k < chunks && !rc; k++) {
		double s = 0, p = 0;

		rc = pp_run(b, c, kind, 1, n / chunks, work_ns, &s);
		if (!rc)
			rc = pp_run(b, c, kind, 0, n / chunks, work_ns, &p);
		s_sec += s;
		p_sec += p;
	}
	if (rc)
		return rc;
	return sy_report(b, name, "krt/s", chunks / s_sec / 1e3, base_name, chunks / p_sec / 1e3,
			 true);
}

static int sy_pingpong(struct bench *b, struct sy_ctx *c)
{
	uint64_t n_awake = bench_scale(b, 40000, 2000);
	uint64_t n_apart = bench_scale(b, 4000, 200);
	int rc;

	rc = pp_figure(b, c, SY_COND, "cond ping-pong, awake", "pthread_cond+mutex pshared",
		       n_awake, 0, 2);
	if (!rc)
		rc = pp_figure(b, c, SY_SEM, "sem ping-pong, awake", "sem_t pshared", n_awake, 0, 2);
	if (!rc)
		rc = pp_figure(b, c, SY_COND, "cond ping-pong, 100 us apart",
			       "pthread_cond+mutex pshared", n_apart, APART_WORK_NS, APART_CHUNKS);
	if (!rc)
		rc = pp_figure(b, c, SY_SEM, "sem ping-pong, 100 us apart", "sem_t pshared",
			       n_apart, APART_WORK_NS, APART_CHUNKS);
	return rc;
}

int bench_sync(struct bench *b)
{
	struct sy_ctx c = { 0 };
	int rc;

	c.sh = bench_shared_alloc(sizeof(*c.sh));
	if (!c.sh)
		return -ENOMEM;
	rc = sy_pthread_init(c.sh);
	if (!rc)
		rc = sy_region_create(&c);
	if (!rc)
		rc = sy_uncontended(b, &c);
	if (!rc)
		rc = sy_pingpong(b, &c);
	if (!rc)
		sy_spread_note(b);
	sy_region_close(&c);
	shmq_region_unlink(c.region);
	sy_pthread_destroy(c.sh);
	bench_shared_free(c.sh, sizeof(*c.sh));
	return rc;
}
