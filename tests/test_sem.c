/* SPDX-License-Identifier: MIT */
/* Semaphores (Python's Semaphore, BoundedSemaphore): counting across
 * threads and processes, timeouts, -EOVERFLOW past max, every errno,
 * SHMQ_SEM_UNDO giving a killed holder's units back, corrupt words. */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "testutil.h"
#include "proc_spy.h"

#include "core/region_int.h"
#include "sync/sem_int.h"

#define SMALL ((size_t)1 << 20)
#define MS    ((int64_t)1000000)

struct fixture {
	char name[96];
	shmq_region *r;
	struct tu_kids kids; /* see testutil.h */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct shmq_region_opts o = { .size = SMALL };

	if (!f)
		return -1;
	tu_name(f->name, sizeof(f->name), "sem");
	if (shmq_region_create(f->name, &o, &f->r))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	tu_kids_reap(&f->kids);
	shmq_region_close(f->r);
	shmq_region_unlink(f->name);
	free(f);
	return 0;
}

static pid_t track_kid(struct fixture *f, pid_t pid)
{
	return tu_kids_track(&f->kids, pid);
}

static struct shmq__sem_shm *sem_shm(struct fixture *f, const char *name)
{
	void *mem;

	assert_int_equal(shmq__obj_find(f->r, name, SHMQ__OBJ_SEM, &mem, NULL), 0);
	return mem;
}

static void await_sleepers(struct shmq__sem_shm *s, uint32_t n)
{
	int64_t end = shmq_now_ns() + 10000 * MS;

	while (__atomic_load_n(&s->sleepers, __ATOMIC_SEQ_CST) < n) {
		assert_true(shmq_now_ns() < end);
		usleep(1000);
	}
	usleep(2000); /* from counted to inside futex_wait */
}

/* In a forked child: the region and the semaphore by name. */
static shmq_sem *child_sem(struct fixture *f, const char *name, shmq_region **r)
{
	shmq_sem *s;

	alarm(60);
	if (shmq_region_open(f->name, r) || shmq_sem_open(*r, name, &s))
		_exit(90);
	return s;
}

/* ---- basics and errors -------------------------------------------------- */

static void test_counting(void **state)
{
	struct fixture *f = *state;
	struct shmq__sem_shm *sh;
	uint64_t waits;
	shmq_sem *s;
	int64_t t0;

	assert_int_equal(shmq_sem_create(f->r, "s", 2, NULL, &s), 0);
	sh = sem_shm(f, "s");
	assert_int_equal(shmq_sem_value(s), 2);
	assert_int_equal(shmq_sem_acquire(s, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_sem_acquire(s, SHMQ_FOREVER), 0);
	assert_int_equal(shmq_sem_value(s), 0);
	assert_int_equal(shmq_sem_acquire(s, SHMQ_NOWAIT), -EAGAIN);
	t0 = shmq_now_ns();
	assert_int_equal(shmq_sem_acquire(s, 20 * MS), -ETIMEDOUT);
	assert_true(shmq_now_ns() - t0 >= 20 * MS);
	/* slept in slices, or (a loaded machine) spun much of it away */
	waits = sh->waits;
	assert_int_equal(shmq_sem_release(s, 3), 0); /* unbounded: past the start */
	assert_int_equal(shmq_sem_value(s), 3);
	assert_int_equal(shmq_sem_release(s, 0), -EINVAL);
	assert_int_equal(shmq_sem_release(s, SHMQ__SEM_VALUE_MAX), -EOVERFLOW);
	assert_int_equal(shmq_sem_value(s), 3);
	/* nobody slept when released: no wake call, no more waits */
	assert_int_equal(sh->waits, waits);
	assert_int_equal(sh->wakes, 0);
	shmq_sem_close(s);
}

static void test_bounded(void **state)
{
	struct fixture *f = *state;
	struct shmq_sem_opts o = { .max = 2 };
	shmq_sem *s;

	assert_int_equal(shmq_sem_create(f->r, "b", 1, &o, &s), 0);
	assert_int_equal(shmq_sem_release(s, 1), 0);
	assert_int_equal(shmq_sem_release(s, 1), -EOVERFLOW);
	assert_int_equal(shmq_sem_value(s), 2);
	assert_int_equal(shmq_sem_acquire(s, 0), 0);
	assert_int_equal(shmq_sem_release(s, 2), -EOVERFLOW); /* all or nothing */
	assert_int_equal(shmq_sem_value(s), 1);
	assert_int_equal(shmq_sem_release(s, 1), 0);
	shmq_sem_close(s);
}

static void test_errors(void **state)
{
	struct fixture *f = *state;
	struct shmq_sem_opts o = { .max = 3 };
	shmq_sem *s;
	shmq_flag *fl;

	assert_int_equal(shmq_sem_create(NULL, "x", 0, NULL, &s), -EINVAL);
	assert_int_equal(shmq_sem_create(f->r, NULL, 0, NULL, &s), -EINVAL);
	assert_int_equal(shmq_sem_create(f->r, "x", 0, NULL, NULL), -EINVAL);
	assert_int_equal(shmq_sem_create(f->r, "x", 4, &o, &s), -EINVAL); /* value > max */
	o.max = SHMQ__SEM_VALUE_MAX + 1u;
	assert_int_equal(shmq_sem_create(f->r, "x", 0, &o, &s), -EINVAL);
	o = (struct shmq_sem_opts){ .flags = 0x10 };
	assert_int_equal(shmq_sem_create(f->r, "x", 0, &o, &s), -EINVAL);
	assert_int_equal(shmq_sem_create(f->r, "x", SHMQ__SEM_VALUE_MAX + 1u, NULL, &s), -EINVAL);
	assert_int_equal(shmq_sem_create(f->r, "bad/", 0, NULL, &s), -EINVAL);
	assert_int_equal(shmq_sem_create(f->r, "x", 0, NULL, &s), 0);
	shmq_sem_close(s);
	assert_int_equal(shmq_sem_create(f->r, "x", 0, NULL, &s), -EEXIST);
	assert_int_equal(shmq_sem_open(f->r, "nope", &s), -ENOENT);
	assert_int_equal(shmq_flag_create(f->r, "fl", &fl), 0);
	assert_int_equal(shmq_sem_open(f->r, "fl", &s), -EINVAL);
	shmq_flag_close(fl);
	assert_int_equal(shmq_sem_open(NULL, "x", &s), -EINVAL);
	assert_int_equal(shmq_sem_acquire(NULL, 0), -EINVAL);
	assert_int_equal(shmq_sem_release(NULL, 1), -EINVAL);
	assert_int_equal(shmq_sem_value(NULL), 0);
	shmq_sem_close(NULL);
}

static void test_corrupt(void **state)
{
	struct fixture *f = *state;
	struct shmq_sem_opts o = { .max = 4, .flags = SHMQ_SEM_UNDO };
	struct shmq__sem_shm *sh;
	shmq_sem *s, *t;

	assert_int_equal(shmq_sem_create(f->r, "c", 0, &o, &s), 0);
	sh = sem_shm(f, "c");
	sh->word = 5; /* above max */
	assert_int_equal(shmq_sem_acquire(s, SHMQ_NOWAIT), -EBADMSG);
	assert_int_equal(shmq_sem_acquire(s, 10 * MS), -EBADMSG);
	assert_int_equal(shmq_sem_release(s, 1), -EBADMSG);
	sh->word = 0;
	/* an undo entry naming an owner no attachment can carry: refused at
	 * the first look, before any sleep */
	sh->undo[7].owner = 5; /* generation 0 */
	sh->undo[7].held = 1;
	assert_int_equal(shmq_sem_acquire(s, 10000 * MS), -EBADMSG);
	assert_int_equal(sh->waits, 0);
	sh->undo[7].owner = 0;
	sh->undo[7].held = 0;
	sh->max = 0;
	assert_int_equal(shmq_sem_open(f->r, "c", &t), -EBADMSG);
	sh->max = 4;
	sh->flags = 0x10;
	assert_int_equal(shmq_sem_open(f->r, "c", &t), -EBADMSG);
	sh->flags = SHMQ_SEM_UNDO;
	sh->version++;
	assert_int_equal(shmq_sem_open(f->r, "c", &t), -EPROTO);
	sh->version--;
	sh->magic ^= 1;
	assert_int_equal(shmq_sem_open(f->r, "c", &t), -EBADMSG);
	sh->magic ^= 1;
	assert_int_equal(shmq_sem_open(f->r, "c", &t), 0);
	assert_int_equal(shmq_sem_release(t, 1), 0);
	assert_int_equal(shmq_sem_acquire(s, 0), 0);
	shmq_sem_close(t);
	shmq_sem_close(s);
}

/* ---- threads and processes ----------------------------------------------- */

#define THREADS 6
#define ROUNDS  2000

struct worker {
	shmq_sem *s;
	int *inside, *peak;
	int fails;
};

static void *sem_worker(void *p)
{
	struct worker *w = p;

	for (int i = 0; i < ROUNDS; i++) {
		int now;

		if (shmq_sem_acquire(w->s, 10000 * MS)) {
			w->fails++;
			continue;
		}
		now = __atomic_add_fetch(w->inside, 1, __ATOMIC_SEQ_CST);
		for (int peak = __atomic_load_n(w->peak, __ATOMIC_SEQ_CST); now > peak;)
			if (__atomic_compare_exchange_n(w->peak, &peak, now, false,
							__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
				break;
		if ((i & 15) == 0)
			sched_yield();
		__atomic_sub_fetch(w->inside, 1, __ATOMIC_SEQ_CST);
		if (shmq_sem_release(w->s, 1))
			w->fails++;
	}
	return NULL;
}

/* At most value holders at once, and every unit comes back. */
static void test_threads(void **state)
{
	struct fixture *f = *state;
	struct shmq_sem_opts o = { .max = 2 };
	pthread_t th[THREADS];
	struct worker w[THREADS];
	int inside = 0, peak = 0;
	shmq_sem *s;

	assert_int_equal(shmq_sem_create(f->r, "t", 2, &o, &s), 0);
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ .s = s, .inside = &inside, .peak = &peak };
		assert_int_equal(pthread_create(&th[i], NULL, sem_worker, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(w[i].fails, 0);
	}
	assert_true(peak >= 1 && peak <= 2);
	assert_int_equal(shmq_sem_value(s), 2);
	shmq_sem_close(s);
}

#define PROCS 4
#define INCS  3000

/* A binary semaphore as a mutex across processes: no increment is lost. */
static void test_processes(void **state)
{
	struct fixture *f = *state;
	struct shmq_sem_opts o = { .max = 1, .flags = SHMQ_SEM_UNDO };
	uint64_t *counter;
	pid_t pids[PROCS];
	shmq_sem *s;

	assert_int_equal(shmq_sem_create(f->r, "p", 1, &o, &s), 0);
	assert_int_equal(shmq__obj_create(f->r, "counter", SHMQ__OBJ_BLOB, 64, NULL, NULL,
					  (void **)&counter), 0);
	for (int p = 0; p < PROCS; p++) {
		pids[p] = track_kid(f, fork());
		assert_true(pids[p] >= 0);
		if (pids[p] == 0) {
			shmq_region *r;
			shmq_sem *cs = child_sem(f, "p", &r);
			uint64_t *c;

			if (shmq__obj_find(r, "counter", SHMQ__OBJ_BLOB, (void **)&c, NULL))
				_exit(92);
			for (int i = 0; i < INCS; i++) {
				uint64_t v;

				if (shmq_sem_acquire(cs, 10000 * MS))
					_exit(93);
				v = *c;
				if ((i & 63) == 0)
					sched_yield();
				*c = v + 1;
				if (shmq_sem_release(cs, 1))
					_exit(94);
			}
			_exit(0);
		}
	}
	for (int p = 0; p < PROCS; p++)
		assert_int_equal(tu_wait_child(pids[p]), 0);
	assert_int_equal(*counter, (uint64_t)PROCS * INCS);
	assert_int_equal(shmq_sem_value(s), 1);
	shmq_sem_close(s);
}

static void *acquirer(void *p)
{
	return (void *)(intptr_t)shmq_sem_acquire(p, 10000 * MS);
}

/* A sleeping acquirer is woken by a release, with one wake call. */
static void test_wake_on_release(void **state)
{
	struct fixture *f = *state;
	struct shmq__sem_shm *sh;
	pthread_t th;
	shmq_sem *s;
	void *rc;

	assert_int_equal(shmq_sem_create(f->r, "w", 0, NULL, &s), 0);
	sh = sem_shm(f, "w");
	assert_int_equal(pthread_create(&th, NULL, acquirer, s), 0);
	await_sleepers(sh, 1);
	assert_int_equal(shmq_sem_release(s, 1), 0);
	assert_int_equal(pthread_join(th, &rc), 0);
	assert_int_equal((intptr_t)rc, 0);
	assert_int_equal(shmq_sem_value(s), 0);
	assert_int_equal(sh->wakes, 1);
	shmq_sem_close(s);
}

/* An acquirer killed asleep never takes its sleeper count back.  Old code:
 * every release after it made a futex-wake system call for nobody (10
 * release/acquire pairs, 10 wakes, sleepers stuck at 1).  Now the first
 * release whose wake woke nobody takes the dead sleeper's listed entry out
 * with its count: at most one wake, and a live sleeper after it is still
 * woken. */
static void test_dead_sleeper_costs_one_wake(void **state)
{
	struct fixture *f = *state;
	struct shmq__sem_shm *sh;
	uint64_t wakes;
	pthread_t th;
	shmq_sem *s;
	void *rc;
	pid_t pid;

	assert_int_equal(shmq_sem_create(f->r, "d", 0, NULL, &s), 0);
	sh = sem_shm(f, "d");
	pid = track_kid(f, fork());
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;

		_exit(shmq_sem_acquire(child_sem(f, "d", &r), SHMQ_FOREVER) ? 91 : 92);
	}
	await_sleepers(sh, 1);
	tu_kill_listed_sleeper(pid, &sh->sleepers, sh->sleeper_ids);
	assert_int_equal(__atomic_load_n(&sh->sleepers, __ATOMIC_SEQ_CST), 1); /* its count stays */
	wakes = sh->wakes;
	for (int i = 0; i < 10; i++) {
		assert_int_equal(shmq_sem_release(s, 1), 0);
		assert_int_equal(shmq_sem_acquire(s, SHMQ_NOWAIT), 0);
	}
	assert_true(sh->wakes - wakes <= 1);
	assert_int_equal(__atomic_load_n(&sh->sleepers, __ATOMIC_SEQ_CST), 0);
	/* a live sleeper still counts, and is woken */
	assert_int_equal(pthread_create(&th, NULL, acquirer, s), 0);
	await_sleepers(sh, 1);
	assert_int_equal(shmq_sem_release(s, 1), 0);
	assert_int_equal(pthread_join(th, &rc), 0);
	assert_int_equal((intptr_t)rc, 0);
	shmq_sem_close(s);
}

/* A releaser killed between its CAS and its wake leaves a unit and a
 * sleeper: the sleeper must take it promptly, not at its deadline (here
 * the CAS is made by hand, never followed by a wake). */
static void *acquirer_10s(void *p)
{
	return (void *)(intptr_t)shmq_sem_acquire(p, 10000 * MS);
}

static void test_releaser_died_before_wake(void **state)
{
	struct fixture *f = *state;
	struct shmq__sem_shm *sh;
	struct timespec ts;
	pthread_t th;
	shmq_sem *s;
	void *rc;

	assert_int_equal(shmq_sem_create(f->r, "d", 0, NULL, &s), 0);
	sh = sem_shm(f, "d");
	assert_int_equal(pthread_create(&th, NULL, acquirer_10s, s), 0);
	await_sleepers(sh, 1);
	__atomic_add_fetch(&sh->word, 1, __ATOMIC_SEQ_CST); /* the release's CAS */
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 2; /* "promptly" (a slice is 10 ms) */
	if (pthread_timedjoin_np(th, &rc, &ts) != 0) {
		assert_int_equal(pthread_join(th, &rc), 0);
		fail_msg("an acquirer slept on through a dead releaser's unit");
	}
	assert_int_equal((intptr_t)rc, 0);
	assert_int_equal(shmq_sem_value(s), 0);
	shmq_sem_close(s);
}

/* ---- SHMQ_SEM_UNDO ---------------------------------------------------------- */

/* In a holder child: report on the pipe, then wait to be killed. */
static __attribute__((noreturn)) void holder_ready(int fds[2])
{
	if (write(fds[1], "x", 1) != 1)
		_exit(95);
	pause();
	_exit(0);
}

/* In the parent: until the holder child has reported. */
static void holder_await(int fds[2])
{
	char c;

	close(fds[1]);
	assert_int_equal(read(fds[0], &c, 1), 1);
	close(fds[0]);
}

/* A child that acquires `take` units, releases `give` of them, reports on
 * the pipe and waits to be killed. */
static pid_t fork_holder(struct fixture *f, const char *name, int take, int give)
{
	int fds[2];
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = track_kid(f, fork());
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_sem *s = child_sem(f, name, &r);

		close(fds[0]);
		for (int i = 0; i < take; i++)
			if (shmq_sem_acquire(s, 10000 * MS))
				_exit(93);
		if (give && shmq_sem_release(s, (unsigned)give))
			_exit(94);
		holder_ready(fds);
	}
	holder_await(fds);
	return pid;
}

struct killer {
	pid_t victim;
	int64_t killed_at;
};

static void *kill_later(void *p)
{
	struct killer *k = p;
	struct timespec ts = { 0, 50 * 1000 * 1000 };

	nanosleep(&ts, NULL);
	k->killed_at = shmq_now_ns();
	kill(k->victim, SIGKILL);
	return NULL;
}

/* A waiter already asleep gets a killed holder's units back. */
static void test_undo_while_waiting(void **state)
{
	struct fixture *f = *state;
	struct shmq_sem_opts o = { .max = 2, .flags = SHMQ_SEM_UNDO };
	struct shmq__sem_shm *sh;
	struct killer k;
	pthread_t th;
	shmq_sem *s;
	int64_t got;

	assert_int_equal(shmq_sem_create(f->r, "u", 2, &o, &s), 0);
	sh = sem_shm(f, "u");
	k.victim = fork_holder(f, "u", 2, 0);
	assert_int_equal(shmq_sem_value(s), 0);
	assert_int_equal(pthread_create(&th, NULL, kill_later, &k), 0);
	assert_int_equal(shmq_sem_acquire(s, 10000 * MS), 0);
	got = shmq_now_ns();
	assert_int_equal(pthread_join(th, NULL), 0);
	print_message("SHMQ_SEM_UNDO: units back %.1f ms after the kill\n",
		      (double)(got - k.killed_at) / MS);
	assert_true(got - k.killed_at < 2000 * MS);
	assert_int_equal(tu_wait_child(k.victim), 128 + SIGKILL);
	/* both units came back: we took one, one is left; its entry is free */
	assert_int_equal(shmq_sem_value(s), 1);
	assert_int_equal(sh->undone, 2);
	assert_int_equal(shmq_sem_release(s, 1), 0);
	assert_int_equal(shmq_sem_value(s), 2);
	shmq_sem_close(s);
}

/* SHMQ_SEM_UNDO waiters look for dead holders, a /proc read per holding
 * process: one caller a slice does it for all of them.  Before, every
 * waiter looked after each of its quiet slices, so n waiters beside n
 * holders made n^2 reads a slice (64 and 64 kept both of 2 cores busy).
 * Here IDLE_WAITERS threads wait beside IDLE_KIDS live holders: the reads
 * this process makes are bounded by one look at the kids per slice of the
 * time they waited, plus the last look each waiter makes at its timeout. */
#define IDLE_WAITERS 8
#define IDLE_KIDS    4
#define IDLE_SLICE   (10 * MS) /* SHMQ__SYNC_SLICE_NS */

static void *idle_acquire(void *p)
{
	return (void *)(intptr_t)shmq_sem_acquire(p, 300 * MS);
}

static void test_undo_idle_waiters_share_looks(void **state)
{
	struct fixture *f = *state;
	struct shmq_sem_opts o = { .flags = SHMQ_SEM_UNDO };
	pthread_t th[IDLE_WAITERS];
	pid_t kid[IDLE_KIDS];
	unsigned long reads;
	int64_t t0, el;
	shmq_sem *s;
	void *rc;

	assert_int_equal(shmq_sem_create(f->r, "u", IDLE_KIDS, &o, &s), 0);
	for (int i = 0; i < IDLE_KIDS; i++)
		kid[i] = fork_holder(f, "u", 1, 0);
	assert_int_equal(shmq_sem_value(s), 0);
	reads = spy_proc_stat_count();
	t0 = shmq_now_ns();
	for (int i = 0; i < IDLE_WAITERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, idle_acquire, s), 0);
	for (int i = 0; i < IDLE_WAITERS; i++) {
		assert_int_equal(pthread_join(th[i], &rc), 0);
		assert_int_equal((intptr_t)rc, -ETIMEDOUT);
	}
	el = shmq_now_ns() - t0;
	reads = spy_proc_stat_count() - reads;
	print_message("%d idle waiters, %d holders: %lu /proc reads in %.1f ms\n",
		      IDLE_WAITERS, IDLE_KIDS, reads, (double)el / MS);
	/* looks at least a slice apart, and one per waiter at its timeout,
	 * each reading every kid once */
	assert_true(reads <= (unsigned long)IDLE_KIDS *
				     (unsigned long)(el / IDLE_SLICE + 2 + IDLE_WAITERS));
	for (int i = 0; i < IDLE_KIDS; i++) {
		kill(kid[i], SIGKILL);
		assert_int_equal(tu_wait_child(kid[i]), 128 + SIGKILL);
	}
	/* the dead holders' units come back */
	for (int i = 0; i < IDLE_KIDS; i++)
		assert_int_equal(shmq_sem_acquire(s, 10000 * MS), 0);
	assert_int_equal(shmq_sem_release(s, IDLE_KIDS), 0);
	assert_int_equal(shmq_sem_value(s), IDLE_KIDS);
	shmq_sem_close(s);
}

/* Released units are not counted twice: a holder that took 2 and gave 1
 * back returns 1 at its death; and without SHMQ_SEM_UNDO none come back. */
static void test_undo_counts(void **state)
{
	struct fixture *f = *state;
	struct shmq_sem_opts o = { .max = 2, .flags = SHMQ_SEM_UNDO };
	shmq_sem *s, *n;
	pid_t pid;

	assert_int_equal(shmq_sem_create(f->r, "u", 2, &o, &s), 0);
	pid = fork_holder(f, "u", 2, 1);
	assert_int_equal(shmq_sem_acquire(s, SHMQ_NOWAIT), 0); /* the one it gave back */
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	assert_int_equal(shmq_sem_acquire(s, 10000 * MS), 0); /* the one it held */
	assert_int_equal(shmq_sem_acquire(s, 30 * MS), -ETIMEDOUT);
	assert_int_equal(shmq_sem_value(s), 0);
	assert_int_equal(shmq_sem_release(s, 2), 0);
	shmq_sem_close(s);

	o.flags = 0;
	assert_int_equal(shmq_sem_create(f->r, "n", 1, &o, &n), 0);
	pid = fork_holder(f, "n", 1, 0);
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	assert_int_equal(shmq_sem_acquire(n, 50 * MS), -ETIMEDOUT);
	shmq_sem_close(n);
}

/* A consumer: units released by another process, acquired with UNDO by one
 * that never releases, pile up in its count past max.  At its death the
 * reclaim gives back at most max (System V clamps too), not -EBADMSG. */
static void test_undo_consumer_clamped(void **state)
{
	struct fixture *f = *state;
	struct shmq_sem_opts o = { .max = 2, .flags = SHMQ_SEM_UNDO };
	struct shmq__sem_shm *sh;
	int fds[2], released = 0;
	shmq_sem *s;
	pid_t pid;

	assert_int_equal(shmq_sem_create(f->r, "u", 2, &o, &s), 0);
	sh = sem_shm(f, "u");
	assert_int_equal(pipe(fds), 0);
	pid = track_kid(f, fork());
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_sem *cs = child_sem(f, "u", &r);

		close(fds[0]);
		for (int i = 0; i < 5; i++)
			if (shmq_sem_acquire(cs, 10000 * MS))
				_exit(93);
		holder_ready(fds);
	}
	/* the producer: 3 more units as the consumer makes room */
	while (released < 3) {
		int rc = shmq_sem_release(s, 1);

		if (rc == 0)
			released++;
		else
			assert_int_equal(rc, -EOVERFLOW);
		usleep(1000);
	}
	holder_await(fds);
	assert_int_equal(shmq_sem_value(s), 0);
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	/* its count of 5 comes back as max (2) units */
	assert_int_equal(shmq_sem_acquire(s, 10000 * MS), 0);
	assert_int_equal(shmq_sem_value(s), 1);
	assert_int_equal(sh->undone, 2);
	assert_int_equal(shmq_sem_release(s, 1), 0);
	assert_int_equal(shmq_sem_release(s, 1), -EOVERFLOW);
	assert_int_equal(shmq_sem_value(s), 2);
	shmq_sem_close(s);
}

/* A try-acquire loop gets a dead holder's units within a slice or two. */
static void test_undo_nowait(void **state)
{
	struct fixture *f = *state;
	struct shmq_sem_opts o = { .flags = SHMQ_SEM_UNDO };
	int64_t end;
	shmq_sem *s;
	pid_t pid;
	int rc;

	assert_int_equal(shmq_sem_create(f->r, "u", 1, &o, &s), 0);
	pid = fork_holder(f, "u", 1, 0);
	assert_int_equal(shmq_sem_acquire(s, SHMQ_NOWAIT), -EAGAIN);
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	end = shmq_now_ns() + 2000 * MS;
	while ((rc = shmq_sem_acquire(s, SHMQ_NOWAIT)) == -EAGAIN && shmq_now_ns() < end)
		usleep(1000);
	assert_int_equal(rc, 0);
	shmq_sem_close(s);
}

/* 128 live processes hold entries: the next one gets -ENOSPC, and nothing
 * changes.  (One live child fills every entry with its own id.) */
static void test_undo_full(void **state)
{
	struct fixture *f = *state;
	struct shmq_sem_opts o = { .flags = SHMQ_SEM_UNDO };
	struct shmq__sem_shm *sh;
	shmq_sem *s;
	pid_t pid;

	assert_int_equal(shmq_sem_create(f->r, "u", 3, &o, &s), 0);
	sh = sem_shm(f, "u");
	pid = fork_holder(f, "u", 1, 0);
	for (unsigned i = 1; i < SHMQ__SEM_UNDO_SLOTS; i++)
		sh->undo[i].owner = sh->undo[0].owner; /* the child's id: alive */
	assert_int_equal(shmq_sem_acquire(s, 10000 * MS), -ENOSPC);
	assert_int_equal(shmq_sem_value(s), 2);
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	/* now its entries are dead: freed, and its unit given back */
	assert_int_equal(shmq_sem_acquire(s, 10000 * MS), 0);
	assert_int_equal(shmq_sem_value(s), 2);
	shmq_sem_close(s);
}

/* Entries in use, and the units they count. */
static unsigned undo_entries(struct shmq__sem_shm *sh, uint64_t *held)
{
	unsigned n = 0;

	*held = 0;
	for (unsigned i = 0; i < SHMQ__SEM_UNDO_SLOTS; i++) {
		uint64_t p = __atomic_load_n(&sh->undo[i].pair, __ATOMIC_SEQ_CST);

		if (p) {
			n++;
			*held += shmq__sem_undo_held(p);
		}
	}
	return n;
}

struct short_waiter {
	shmq_sem *s;
	int rc;
	int done; /* atomic: the acquire returned */
};

static void *short_waiter(void *p)
{
	struct short_waiter *w = p;

	w->rc = shmq_sem_acquire(w->s, 10000 * MS);
	__atomic_store_n(&w->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* Units passed around faster than a sleep slice: every wait ends with a
 * wake-up before a whole slice has passed, so a waiter never sleeps a
 * quiet slice.  A dead holder's unit must come back all the same (API.md:
 * a waiter gets them within 100 ms).  Found by an audit: the full look for
 * dead holders ran only after a quiet slice, so under steady traffic a
 * killed process's unit stayed lost and the semaphore ran one unit short. */
static void test_undo_busy_waiters(void **state)
{
	struct fixture *f = *state;
	struct shmq_sem_opts o = { .max = 2, .flags = SHMQ_SEM_UNDO };
	struct shmq__sem_shm *sh;
	int64_t start, end;
	uint64_t held;
	shmq_sem *s;
	pid_t pid;
	int waits = 0;

	assert_int_equal(shmq_sem_create(f->r, "u", 2, &o, &s), 0);
	sh = sem_shm(f, "u");
	pid = fork_holder(f, "u", 1, 0);
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	assert_int_equal(shmq_sem_acquire(s, SHMQ_NOWAIT), 0); /* the live unit */
	start = shmq_now_ns();
	end = start + 2000 * MS;
	/* One waiter at a time; we hand it our unit as soon as it sleeps. */
	while (__atomic_load_n(&sh->undone, __ATOMIC_SEQ_CST) == 0 && shmq_now_ns() < end) {
		struct short_waiter w = { .s = s };
		pthread_t th;

		assert_int_equal(pthread_create(&th, NULL, short_waiter, &w), 0);
		while (!__atomic_load_n(&w.done, __ATOMIC_SEQ_CST) &&
		       __atomic_load_n(&sh->sleepers, __ATOMIC_SEQ_CST) == 0)
			sched_yield();
		if (!__atomic_load_n(&w.done, __ATOMIC_SEQ_CST)) {
			assert_int_equal(shmq_sem_release(s, 1), 0);
			waits++;
		}
		assert_int_equal(pthread_join(th, NULL), 0);
		assert_int_equal(w.rc, 0);
	}
	print_message("dead holder's unit back after %d short waits, %.1f ms\n", waits,
		      (double)(shmq_now_ns() - start) / MS);
	assert_int_equal(sh->undone, 1);
	/* every unit is the value's or counted as ours; none is lost */
	assert_int_equal(undo_entries(sh, &held), 1);
	assert_int_equal(shmq_sem_value(s) + held, 2);
	assert_int_equal(shmq_sem_release(s, (unsigned)held), 0);
	assert_int_equal(shmq_sem_value(s), 2);
	shmq_sem_close(s);
}

#define ATTACH (SHMQ__SEM_UNDO_SLOTS + 2)

/* An entry whose count drops back to 0 is given back by its owner, so
 * -ENOSPC means 128 live processes hold units: more attachments than
 * entries (each region open is an owner of its own) that each acquire and
 * release a unit all get it, and the table ends empty.  Found by an audit:
 * entries were freed only at their owner's death, and the 129th acquire
 * got -ENOSPC with nobody holding a unit. */
static void test_undo_entries_given_back(void **state)
{
	struct fixture *f = *state;
	struct shmq_sem_opts o = { .flags = SHMQ_SEM_UNDO };
	struct shmq__sem_shm *sh;
	shmq_region *r[ATTACH];
	shmq_sem *h[ATTACH], *s;
	uint64_t held;

	assert_int_equal(shmq_sem_create(f->r, "u", 2, &o, &s), 0);
	sh = sem_shm(f, "u");
	for (unsigned i = 0; i < ATTACH; i++) {
		assert_int_equal(shmq_region_open(f->name, &r[i]), 0);
		assert_int_equal(shmq_sem_open(r[i], "u", &h[i]), 0);
		assert_int_equal(shmq_sem_acquire(h[i], SHMQ_NOWAIT), 0);
		assert_int_equal(shmq_sem_release(h[i], 1), 0);
	}
	assert_int_equal(undo_entries(sh, &held), 0);
	assert_int_equal(shmq_sem_value(s), 2);
	/* partly released: the entry stays, with the rest of the count */
	assert_int_equal(shmq_sem_acquire(s, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_sem_acquire(s, SHMQ_NOWAIT), 0);
	assert_int_equal(undo_entries(sh, &held), 1);
	assert_int_equal(held, 2);
	assert_int_equal(shmq_sem_release(s, 1), 0);
	assert_int_equal(undo_entries(sh, &held), 1);
	assert_int_equal(held, 1);
	assert_int_equal(shmq_sem_release(s, 1), 0);
	assert_int_equal(undo_entries(sh, &held), 0);
	/* a release by one that holds none claims nothing */
	assert_int_equal(shmq_sem_acquire(s, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_sem_release(h[0], 1), 0);
	assert_int_equal(undo_entries(sh, &held), 1); /* s's, still counting 1 */
	assert_int_equal(held, 1);
	for (unsigned i = 0; i < ATTACH; i++) {
		shmq_sem_close(h[i]);
		shmq_region_close(r[i]);
	}
	shmq_sem_close(s);
}

#define UNDO_THREADS 4
#define UNDO_ROUNDS  3000
#define UNDO_VALUE   64

struct undo_worker {
	shmq_sem *s;
	unsigned keep; /* units to hold at the end */
	int fails;
};

static void *undo_worker(void *p)
{
	struct undo_worker *w = p;

	for (int i = 0; i < UNDO_ROUNDS; i++) {
		unsigned n = 1 + (unsigned)(i & 1);

		for (unsigned k = 0; k < n; k++)
			if (shmq_sem_acquire(w->s, 10000 * MS))
				w->fails++;
		if ((i & 31) == 0)
			sched_yield();
		if (shmq_sem_release(w->s, n))
			w->fails++;
	}
	for (unsigned k = 0; k < w->keep; k++)
		if (shmq_sem_acquire(w->s, 10000 * MS))
			w->fails++;
	return NULL;
}

/* Threads of one process count, uncount, give back and claim entries at
 * once (two through a shared handle, two through handles of their own, of
 * one attachment): no count is lost or doubled, so the units the process
 * holds at its death come back, exactly. */
static void test_undo_threads_exact(void **state)
{
	struct fixture *f = *state;
	struct shmq_sem_opts o = { .flags = SHMQ_SEM_UNDO };
	struct shmq__sem_shm *sh;
	unsigned kept = 0;
	int fds[2];
	uint64_t held;
	shmq_sem *s;
	pid_t pid;

	assert_int_equal(shmq_sem_create(f->r, "u", UNDO_VALUE, &o, &s), 0);
	sh = sem_shm(f, "u");
	for (unsigned t = 0; t < UNDO_THREADS; t++)
		kept += t + 1;
	assert_int_equal(pipe(fds), 0);
	pid = track_kid(f, fork());
	assert_true(pid >= 0);
	if (pid == 0) {
		struct undo_worker w[UNDO_THREADS];
		pthread_t th[UNDO_THREADS];
		shmq_region *r;
		shmq_sem *cs = child_sem(f, "u", &r);

		close(fds[0]);
		for (unsigned t = 0; t < UNDO_THREADS; t++) {
			w[t] = (struct undo_worker){ .s = cs, .keep = t + 1 };
			if (t >= 2 && shmq_sem_open(r, "u", &w[t].s))
				_exit(91);
			if (pthread_create(&th[t], NULL, undo_worker, &w[t]))
				_exit(92);
		}
		for (unsigned t = 0; t < UNDO_THREADS; t++)
			if (pthread_join(th[t], NULL) || w[t].fails)
				_exit(93);
		holder_ready(fds);
	}
	holder_await(fds);
	assert_int_equal(shmq_sem_value(s), UNDO_VALUE - kept);
	assert_true(undo_entries(sh, &held) >= 1);
	assert_int_equal(held, kept);
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	/* every unit, the dead child's included once they come back */
	for (unsigned i = 0; i < UNDO_VALUE; i++)
		assert_int_equal(shmq_sem_acquire(s, 10000 * MS), 0);
	assert_int_equal(sh->undone, kept);
	assert_int_equal(shmq_sem_acquire(s, 20 * MS), -ETIMEDOUT);
	assert_int_equal(shmq_sem_release(s, UNDO_VALUE), 0);
	assert_int_equal(undo_entries(sh, &held), 0);
	assert_int_equal(shmq_sem_value(s), UNDO_VALUE);
	shmq_sem_close(s);
}

/* ---- hostile writes ------------------------------------------------------ */

/* One call made under tu_cas_hostile (testutil.h), in the child. */
struct hostile_call {
	struct fixture *f;
	shmq_sem *s;
	int64_t timeout; /* acquire's; release when -2 */
};

static void *hostile_open(void *p, uint32_t **word)
{
	struct hostile_call *c = p;
	shmq_region *r;
	void *mem;

	c->s = child_sem(c->f, "s", &r);
	if (shmq__obj_find(r, "s", SHMQ__OBJ_SEM, &mem, NULL))
		return NULL;
	*word = &((struct shmq__sem_shm *)mem)->word;
	return c;
}

static int hostile_do(void *p)
{
	struct hostile_call *c = p;

	return c->timeout == -2 ? shmq_sem_release(c->s, 1) : shmq_sem_acquire(c->s, c->timeout);
}

/* A hostile process that rewrites the value each time a call touches it
 * (values 1..251 under max: every CAS loses) does not keep an acquire or a
 * release spinning: SHMQ_NOWAIT gives -EAGAIN and a 50 ms timeout
 * -ETIMEDOUT within 2 s; SHMQ_FOREVER and release give -EBADMSG after a
 * bounded number of lost CASes. */
static void test_hostile_value(void **state)
{
	struct fixture *f = *state;
	struct shmq_sem_opts o = { .max = 1000 };
	struct hostile_call c = { .f = f };
	static const uint32_t one = 1;
	struct shmq__sem_shm *sh;
	int64_t took;
	shmq_sem *s;
	int rc;

	assert_int_equal(shmq_sem_create(f->r, "s", 1, &o, &s), 0);
	sh = sem_shm(f, "s");
	c.timeout = SHMQ_NOWAIT;
	__atomic_store_n(&sh->word, one, __ATOMIC_SEQ_CST);
	rc = tu_cas_hostile(&sh->word, &one, 1, hostile_open, hostile_do, &c, 20000 * MS, &took);
	if (rc == TU_HOSTILE_NO_PTRACE)
		skip();
	print_message("NOWAIT: %d after %lld ms\n", rc, (long long)(took / MS));
	assert_int_equal(rc, -EAGAIN);
	assert_true(took < 2000 * MS);
	c.timeout = 50 * MS;
	__atomic_store_n(&sh->word, one, __ATOMIC_SEQ_CST);
	rc = tu_cas_hostile(&sh->word, &one, 1, hostile_open, hostile_do, &c, 20000 * MS, &took);
	print_message("50 ms: %d after %lld ms\n", rc, (long long)(took / MS));
	assert_int_equal(rc, -ETIMEDOUT);
	assert_true(took < 2000 * MS);
	c.timeout = SHMQ_FOREVER;
	__atomic_store_n(&sh->word, one, __ATOMIC_SEQ_CST);
	rc = tu_cas_hostile(&sh->word, &one, 1, hostile_open, hostile_do, &c, 20000 * MS, &took);
	print_message("FOREVER: %d after %lld ms\n", rc, (long long)(took / MS));
	assert_int_equal(rc, -EBADMSG);
	c.timeout = -2;
	__atomic_store_n(&sh->word, one, __ATOMIC_SEQ_CST);
	rc = tu_cas_hostile(&sh->word, &one, 1, hostile_open, hostile_do, &c, 20000 * MS, &took);
	print_message("release: %d after %lld ms\n", rc, (long long)(took / MS));
	assert_int_equal(rc, -EBADMSG);
	/* a sane value works as before */
	__atomic_store_n(&sh->word, 1, __ATOMIC_SEQ_CST);
	assert_int_equal(shmq_sem_acquire(s, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_sem_release(s, 1), 0);
	assert_int_equal(shmq_sem_value(s), 1);
	shmq_sem_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_counting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_value, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_processes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wake_on_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_releaser_died_before_wake, setup, teardown),
		cmocka_unit_test_setup_teardown(test_undo_while_waiting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_undo_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_undo_consumer_clamped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_undo_busy_waiters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_undo_nowait, setup, teardown),
		cmocka_unit_test_setup_teardown(test_undo_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_undo_idle_waiters_share_looks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_undo_entries_given_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_undo_threads_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_sleeper_costs_one_wake, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
