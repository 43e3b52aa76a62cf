/* SPDX-License-Identifier: MIT */
/* Conditions (Python's Condition) on a shmq_lock: wait releases and takes
 * the lock again, notify(n) wakes n oldest first, notify_all, timeouts,
 * -EPERM, -ENOSPC, -EOWNERDEAD, dead waiters (reaped or zombies) never
 * keep a notify, a producer/consumer across processes, corrupt words. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

#include "testutil.h"
#include "proc_spy.h"

#include "core/region_int.h"
#include "core/wait_int.h"
#include "sync/cond_int.h"

#define SMALL ((size_t)1 << 20)
#define MS    ((int64_t)1000000)

struct fixture {
	char name[96];
	shmq_region *r;
	shmq_cond *c;
	shmq_lock *l;
	struct shmq__cond_shm *s;
	struct tu_kids kids; /* see testutil.h */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct shmq_region_opts o = { .size = SMALL };
	void *mem;

	if (!f)
		return -1;
	tu_name(f->name, sizeof(f->name), "cond");
	if (shmq_region_create(f->name, &o, &f->r) || shmq_cond_create(f->r, "c", &f->c) ||
	    shmq_lock_create(f->r, "l", &f->l) ||
	    shmq__obj_find(f->r, "c", SHMQ__OBJ_COND, &mem, NULL))
		return -1;
	f->s = mem;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	tu_kids_reap(&f->kids);
	shmq_cond_close(f->c);
	shmq_lock_close(f->l);
	shmq_region_close(f->r);
	shmq_region_unlink(f->name);
	free(f);
	return 0;
}

static pid_t track_kid(struct fixture *f, pid_t pid)
{
	return tu_kids_track(&f->kids, pid);
}

/* Slots in state WAITING (or SIGNALED, with signaled set). */
static unsigned count_slots(struct fixture *f, bool signaled)
{
	unsigned n = 0;

	for (unsigned i = 0; i < SHMQ__COND_SLOTS; i++) {
		uint32_t w = __atomic_load_n(&f->s->slot[i].word, __ATOMIC_SEQ_CST);

		if (w && ((w & SHMQ__COND_SIGNAL) != 0) == signaled)
			n++;
	}
	return n;
}

/* Wait (a bounded while) until n waiters are registered. */
static void await_waiters(struct fixture *f, unsigned n)
{
	int64_t end = shmq_now_ns() + 10000 * MS;

	while (count_slots(f, false) < n) {
		assert_true(shmq_now_ns() < end);
		usleep(1000);
	}
	usleep(5000); /* from registered to asleep (not needed, but typical) */
}

/* ---- basics and errors -------------------------------------------------- */

static void *hold_lock(void *p)
{
	struct fixture *f = p;

	return (void *)(intptr_t)shmq_lock_acquire(f->l, 1000 * MS);
}

static void *release_lock(void *p)
{
	struct fixture *f = p;

	return (void *)(intptr_t)shmq_lock_release(f->l);
}

static void test_errors(void **state)
{
	struct fixture *f = *state;
	shmq_cond *d;
	pthread_t th;
	void *rc;

	assert_int_equal(shmq_cond_create(NULL, "x", &d), -EINVAL);
	assert_int_equal(shmq_cond_create(f->r, NULL, &d), -EINVAL);
	assert_int_equal(shmq_cond_create(f->r, "x", NULL), -EINVAL);
	assert_int_equal(shmq_cond_create(f->r, "c", &d), -EEXIST);
	assert_int_equal(shmq_cond_create(f->r, "a b", &d), -EINVAL);
	assert_int_equal(shmq_cond_open(f->r, "nope", &d), -ENOENT);
	assert_int_equal(shmq_cond_open(f->r, "l", &d), -EINVAL); /* a lock */
	assert_int_equal(shmq_cond_wait(NULL, f->l, 0), -EINVAL);
	assert_int_equal(shmq_cond_wait(f->c, NULL, 0), -EINVAL);
	assert_int_equal(shmq_cond_notify(NULL, 1), -EINVAL);
	assert_int_equal(shmq_cond_notify_all(NULL), -EINVAL);
	shmq_cond_close(NULL);
	/* -EPERM: the lock free, or held by another thread; nothing changes */
	assert_int_equal(shmq_cond_wait(f->c, f->l, 10 * MS), -EPERM);
	assert_int_equal(pthread_create(&th, NULL, hold_lock, f), 0);
	assert_int_equal(pthread_join(th, &rc), 0);
	assert_int_equal((intptr_t)rc, 0);
	assert_int_equal(shmq_cond_wait(f->c, f->l, 10 * MS), -EPERM);
	assert_true(shmq_lock_locked(f->l));
	assert_int_equal(count_slots(f, false) + count_slots(f, true), 0);
	assert_int_equal(f->s->nwaiters, 0);
	/* still the other thread's lock (only it can release it) */
	assert_int_equal(shmq_lock_release(f->l), -EPERM);
	assert_int_equal(pthread_create(&th, NULL, release_lock, f), 0);
	assert_int_equal(pthread_join(th, &rc), 0);
	assert_int_equal((intptr_t)rc, 0);
	/* nobody waits: a notify reads one word and wakes nobody */
	assert_int_equal(shmq_cond_notify(f->c, 1), 0);
	assert_int_equal(shmq_cond_notify_all(f->c), 0);
	assert_int_equal(f->s->wakes, 0);
}

static void test_timeouts(void **state)
{
	struct fixture *f = *state;
	int64_t t0;

	assert_int_equal(shmq_lock_acquire(f->l, 0), 0);
	assert_int_equal(shmq_cond_wait(f->c, f->l, SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(shmq_lock_acquire(f->l, 0), -EDEADLK); /* held again */
	t0 = shmq_now_ns();
	assert_int_equal(shmq_cond_wait(f->c, f->l, 30 * MS), -ETIMEDOUT);
	assert_true(shmq_now_ns() - t0 >= 30 * MS);
	assert_int_equal(shmq_lock_acquire(f->l, 0), -EDEADLK);
	assert_int_equal(f->s->nwaiters, 0);
	assert_int_equal(count_slots(f, false) + count_slots(f, true), 0);
	assert_int_equal(shmq_lock_release(f->l), 0);
}

/* ---- waking threads ------------------------------------------------------- */

struct waiter {
	struct fixture *f;
	int rc;
	int released; /* the lock released after the wait returned */
	int done;
};

static void *thread_waiter(void *p)
{
	struct waiter *w = p;

	if (shmq_lock_acquire(w->f->l, 10000 * MS)) {
		w->rc = -1000;
	} else {
		w->rc = shmq_cond_wait(w->f->c, w->f->l, 10000 * MS);
		w->released = shmq_lock_release(w->f->l);
	}
	__atomic_store_n(&w->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static int count_done(struct waiter *w, int n)
{
	int d = 0;

	for (int i = 0; i < n; i++)
		d += __atomic_load_n(&w[i].done, __ATOMIC_SEQ_CST);
	return d;
}

static void await_done(struct waiter *w, int n, int want)
{
	int64_t end = shmq_now_ns() + 2000 * MS;

	while (count_done(w, n) < want) {
		assert_true(shmq_now_ns() < end);
		usleep(1000);
	}
}

#define WAITERS 4

/* notify(n) wakes exactly n, oldest first; notify_all the rest. */
static void test_notify_n_fifo(void **state)
{
	struct fixture *f = *state;
	struct waiter w[WAITERS];
	pthread_t th[WAITERS];

	for (int i = 0; i < WAITERS; i++) {
		w[i] = (struct waiter){ .f = f, .rc = 1, .released = 1 };
		assert_int_equal(pthread_create(&th[i], NULL, thread_waiter, &w[i]), 0);
		await_waiters(f, (unsigned)i + 1); /* registered in order */
	}
	assert_int_equal(shmq_lock_acquire(f->l, 1000 * MS), 0);
	assert_int_equal(shmq_cond_notify(f->c, 2), 2);
	assert_int_equal(shmq_lock_release(f->l), 0);
	await_done(w, WAITERS, 2);
	usleep(20000); /* nobody else wakes */
	assert_int_equal(count_done(w, WAITERS), 2);
	assert_true(w[0].done && w[1].done); /* the oldest two */
	assert_int_equal(shmq_cond_notify_all(f->c), 2);
	for (int i = 0; i < WAITERS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(w[i].rc, 0);
		assert_int_equal(w[i].released, 0); /* held on return */
	}
	assert_int_equal(f->s->nwaiters, 0);
	assert_int_equal(shmq_cond_notify(f->c, 5), 0);
}

/* ---- across processes: a producer/consumer with the wait_for pattern ---- */

#define CONSUMERS 3
#define ITEMS     600

struct box {
	uint64_t items;    /* produced, not yet consumed */
	uint64_t consumed; /* by everybody */
	uint64_t done;     /* the producer finished */
};

static int wait_for_items(shmq_cond *c, shmq_lock *l, struct box *b, int64_t timeout_ns)
{
	int64_t end = shmq_now_ns() + timeout_ns;

	while (b->items == 0 && !b->done) {
		int64_t left = end - shmq_now_ns();
		int rc;

		if (left <= 0)
			return -ETIMEDOUT;
		rc = shmq_cond_wait(c, l, left);
		if (rc < 0 && rc != -ETIMEDOUT)
			return rc;
	}
	return 0;
}

static void consumer(struct fixture *f)
{
	shmq_region *r;
	shmq_cond *c;
	shmq_lock *l;
	struct box *b;
	uint64_t mine = 0;

	alarm(60);
	if (shmq_region_open(f->name, &r) || shmq_cond_open(r, "c", &c) ||
	    shmq_lock_open(r, "l", &l) ||
	    shmq__obj_find(r, "box", SHMQ__OBJ_BLOB, (void **)&b, NULL))
		_exit(90);
	for (;;) {
		if (shmq_lock_acquire(l, 10000 * MS))
			_exit(91);
		if (wait_for_items(c, l, b, 10000 * MS))
			_exit(92);
		if (b->items == 0) { /* done and drained */
			shmq_lock_release(l);
			break;
		}
		b->items--;
		b->consumed++;
		mine++;
		if (shmq_lock_release(l))
			_exit(93);
	}
	_exit(0);
}

static void test_producer_consumer(void **state)
{
	struct fixture *f = *state;
	pid_t pids[CONSUMERS];
	struct box *b;

	assert_int_equal(shmq__obj_create(f->r, "box", SHMQ__OBJ_BLOB, sizeof(*b), NULL, NULL,
					  (void **)&b), 0);
	for (int p = 0; p < CONSUMERS; p++) {
		pids[p] = track_kid(f, fork());
		assert_true(pids[p] >= 0);
		if (pids[p] == 0)
			consumer(f);
	}
	for (int i = 0; i < ITEMS; i++) {
		assert_int_equal(shmq_lock_acquire(f->l, 10000 * MS), 0);
		b->items++;
		assert_true(shmq_cond_notify(f->c, 1) >= 0);
		assert_int_equal(shmq_lock_release(f->l), 0);
		if ((i & 7) == 0)
			sched_yield();
	}
	assert_int_equal(shmq_lock_acquire(f->l, 10000 * MS), 0);
	b->done = 1;
	assert_true(shmq_cond_notify_all(f->c) >= 0);
	assert_int_equal(shmq_lock_release(f->l), 0);
	for (int p = 0; p < CONSUMERS; p++)
		assert_int_equal(tu_wait_child(pids[p]), 0);
	assert_int_equal(b->consumed, ITEMS);
	assert_int_equal(b->items, 0);
}

/* ---- death ------------------------------------------------------------- */

/* A child that waits on the condition (holding the lock first). */
static pid_t fork_waiter(struct fixture *f)
{
	pid_t pid = track_kid(f, fork());

	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_cond *c;
		shmq_lock *l;
		int rc;

		alarm(60);
		if (shmq_region_open(f->name, &r) || shmq_cond_open(r, "c", &c) ||
		    shmq_lock_open(r, "l", &l))
			_exit(90);
		if (shmq_lock_acquire(l, 10000 * MS))
			_exit(91);
		rc = shmq_cond_wait(c, l, 10000 * MS);
		shmq_lock_release(l);
		_exit(rc == 0 ? 0 : 92);
	}
	return pid;
}

/* The oldest waiter was killed (and reaped): notify(1) skips it and wakes
 * the live one behind it at once. */
static void test_dead_waiter_skipped(void **state)
{
	struct fixture *f = *state;
	struct waiter w = { .f = f, .rc = 1, .released = 1 };
	pthread_t th;
	unsigned dead;
	pid_t pid;

	pid = fork_waiter(f);
	await_waiters(f, 1);
	for (dead = 0; dead < SHMQ__COND_SLOTS &&
		    !__atomic_load_n(&f->s->slot[dead].word, __ATOMIC_SEQ_CST); dead++)
		;
	assert_true(dead < SHMQ__COND_SLOTS);
	assert_int_equal(pthread_create(&th, NULL, thread_waiter, &w), 0);
	await_waiters(f, 2);
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	assert_int_equal(shmq_cond_notify(f->c, 1), 1);
	/* the notifier itself freed the dead one's slot: no ticket went there */
	assert_int_equal(__atomic_load_n(&f->s->slot[dead].word, __ATOMIC_SEQ_CST), 0);
	await_done(&w, 1, 1);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(w.rc, 0);
	assert_int_equal(f->s->reclaimed, 1); /* the dead one's slot */
	assert_int_equal(f->s->nwaiters, 0);
	assert_int_equal(count_slots(f, false) + count_slots(f, true), 0);
}

/* Waiters that sleep whole slices look for dead waiters, a /proc read per
 * other waiting process: one waiter a slice does it for all of them.
 * Before, every waiter did, so n idle waiters of n processes made n^2 reads
 * a slice (64 kept one of 2 cores busy).  Here IDLE_WAITERS threads of this
 * process wait beside IDLE_KIDS waiting children: the reads this process
 * makes are bounded by one scan of the kids per slice of the time they
 * waited, not one per waiter. */
#define IDLE_WAITERS 8
#define IDLE_KIDS    4
#define IDLE_SLICE   (10 * MS) /* SHMQ__SYNC_SLICE_NS */

static void *idle_waiter(void *p)
{
	struct waiter *w = p;

	if (shmq_lock_acquire(w->f->l, 10000 * MS)) {
		w->rc = -1000;
		return NULL;
	}
	w->rc = shmq_cond_wait(w->f->c, w->f->l, 300 * MS);
	shmq_lock_release(w->f->l);
	return NULL;
}

static void test_idle_waiters_share_scans(void **state)
{
	struct fixture *f = *state;
	struct waiter w[IDLE_WAITERS];
	pthread_t th[IDLE_WAITERS];
	pid_t kid[IDLE_KIDS];
	unsigned long reads;
	int64_t t0, el;

	for (int i = 0; i < IDLE_KIDS; i++)
		kid[i] = fork_waiter(f);
	await_waiters(f, IDLE_KIDS);
	reads = spy_proc_stat_count();
	t0 = shmq_now_ns();
	for (int i = 0; i < IDLE_WAITERS; i++) {
		w[i] = (struct waiter){ .f = f, .rc = 1 };
		assert_int_equal(pthread_create(&th[i], NULL, idle_waiter, &w[i]), 0);
	}
	for (int i = 0; i < IDLE_WAITERS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(w[i].rc, -ETIMEDOUT);
	}
	el = shmq_now_ns() - t0;
	reads = spy_proc_stat_count() - reads;
	print_message("%d idle waiters, %d waiting kids: %lu /proc reads in %.1f ms\n",
		      IDLE_WAITERS, IDLE_KIDS, reads, (double)el / MS);
	/* scans at least a slice apart, each reading every kid once */
	assert_true(reads <= (unsigned long)IDLE_KIDS * (unsigned long)(el / IDLE_SLICE + 2));
	assert_int_equal(shmq_lock_acquire(f->l, 10000 * MS), 0);
	assert_int_equal(shmq_cond_notify_all(f->c), IDLE_KIDS);
	assert_int_equal(shmq_lock_release(f->l), 0);
	for (int i = 0; i < IDLE_KIDS; i++)
		assert_int_equal(tu_wait_child(kid[i]), 0);
}

/* The only waiter was killed and is not reaped yet (a zombie, which
 * kill(2) still finds): notify(1) finds no live waiter and returns 0, and
 * no ticket is left over for a waiter that arrives after it.  Found by an
 * audit: notify returned 1, and the later wait returned 0 at its first
 * slice (the dead slot's ticket passed on) instead of timing out. */
static void test_zombie_waiter_skipped(void **state)
{
	struct fixture *f = *state;
	siginfo_t si = { 0 };
	int64_t t0;
	pid_t pid;

	pid = fork_waiter(f);
	await_waiters(f, 1);
	kill(pid, SIGKILL);
	/* until it has died, but leave it unreaped */
	assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
	assert_int_equal(si.si_pid, pid);
	assert_int_equal(shmq_lock_acquire(f->l, 1000 * MS), 0);
	assert_int_equal(shmq_cond_notify(f->c, 1), 0);
	assert_int_equal(count_slots(f, false) + count_slots(f, true), 0);
	assert_int_equal(f->s->reclaimed, 1); /* the notifier freed its slot */
	t0 = shmq_now_ns();
	assert_int_equal(shmq_cond_wait(f->c, f->l, 60 * MS), -ETIMEDOUT);
	assert_true(shmq_now_ns() - t0 >= 60 * MS);
	assert_int_equal(shmq_lock_release(f->l), 0);
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	assert_int_equal(f->s->nwaiters, 0);
}

/* The chosen waiter dies before it can take its wake-up (stopped, then
 * killed): a live waiter that sleeps finds the lost ticket and wakes. */
static void test_dead_waiter_ticket_passed(void **state)
{
	struct fixture *f = *state;
	struct waiter w = { .f = f, .rc = 1, .released = 1 };
	pthread_t th;
	int64_t killed, woke;
	pid_t pid;

	pid = fork_waiter(f);
	await_waiters(f, 1);
	assert_int_equal(pthread_create(&th, NULL, thread_waiter, &w), 0);
	await_waiters(f, 2);
	kill(pid, SIGSTOP);
	assert_int_equal(shmq_cond_notify(f->c, 1), 1); /* to the (stopped) oldest */
	assert_int_equal(count_slots(f, true), 1);
	usleep(30000);
	assert_false(__atomic_load_n(&w.done, __ATOMIC_SEQ_CST)); /* not ours */
	killed = shmq_now_ns();
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	await_done(&w, 1, 1);
	woke = shmq_now_ns();
	print_message("ticket of a killed waiter passed on %.1f ms after the kill\n",
		      (double)(woke - killed) / MS);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(w.rc, 0);
	assert_int_equal(f->s->nwaiters, 0);
}

/* The lock's holder dies while a notified waiter wants the lock back. */
static void test_lock_holder_dead(void **state)
{
	struct fixture *f = *state;
	struct waiter w = { .f = f, .rc = 1, .released = 1 };
	int fds[2];
	pthread_t th;
	char ch;
	pid_t pid;

	assert_int_equal(pthread_create(&th, NULL, thread_waiter, &w), 0);
	await_waiters(f, 1);
	assert_int_equal(pipe(fds), 0);
	pid = track_kid(f, fork());
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_lock *l;

		alarm(60);
		if (shmq_region_open(f->name, &r) || shmq_lock_open(r, "l", &l) ||
		    shmq_lock_acquire(l, 10000 * MS) || write(fds[1], "x", 1) != 1)
			_exit(90);
		pause();
		_exit(0);
	}
	assert_int_equal(read(fds[0], &ch, 1), 1);
	close(fds[0]);
	close(fds[1]);
	assert_int_equal(shmq_cond_notify(f->c, 1), 1);
	usleep(20000);
	assert_false(__atomic_load_n(&w.done, __ATOMIC_SEQ_CST)); /* blocked on l */
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	await_done(&w, 1, 1);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(w.rc, -EOWNERDEAD);
	assert_int_equal(w.released, 0); /* it held l */
}

/* ---- limits and corruption -------------------------------------------------- */

static void test_full(void **state)
{
	struct fixture *f = *state;
	uint32_t self = shmq__region_self(f->r);

	/* every slot taken by a live waiter (us) */
	for (unsigned i = 0; i < SHMQ__COND_SLOTS; i++)
		f->s->slot[i].word = self;
	f->s->nwaiters = SHMQ__COND_SLOTS;
	assert_int_equal(shmq_lock_acquire(f->l, 0), 0);
	assert_int_equal(shmq_cond_wait(f->c, f->l, 10 * MS), -ENOSPC);
	assert_int_equal(shmq_lock_acquire(f->l, 0), -EDEADLK); /* still held */
	assert_int_equal(f->s->nwaiters, SHMQ__COND_SLOTS);
	assert_int_equal(shmq_lock_release(f->l), 0);
	/* a notify hands them tickets: they are ours, hence alive */
	assert_int_equal(shmq_cond_notify(f->c, 3), 3);
	assert_int_equal(count_slots(f, true), 3);
}

static void test_corrupt(void **state)
{
	struct fixture *f = *state;
	shmq_cond *d;

	/* a slot naming an impossible owner (generation 0) */
	f->s->slot[9].word = 5;
	f->s->nwaiters = 1;
	assert_int_equal(shmq_cond_notify(f->c, 1), -EBADMSG);
	assert_int_equal(shmq_cond_notify_all(f->c), -EBADMSG);
	f->s->slot[9].word = 0;
	f->s->nwaiters = 0;
	f->s->version++;
	assert_int_equal(shmq_cond_open(f->r, "c", &d), -EPROTO);
	f->s->version--;
	f->s->magic ^= 1;
	assert_int_equal(shmq_cond_open(f->r, "c", &d), -EBADMSG);
	f->s->magic ^= 1;
	assert_int_equal(shmq_cond_open(f->r, "c", &d), 0);
	shmq_cond_close(d);
}

/* A waiter whose slot is overwritten while it sleeps returns -EBADMSG
 * (holding the lock), not a hang. */
static void test_corrupt_while_waiting(void **state)
{
	struct fixture *f = *state;
	struct waiter w = { .f = f, .rc = 1, .released = 1 };
	pthread_t th;
	unsigned i;

	assert_int_equal(pthread_create(&th, NULL, thread_waiter, &w), 0);
	await_waiters(f, 1);
	for (i = 0; i < SHMQ__COND_SLOTS &&
		    !__atomic_load_n(&f->s->slot[i].word, __ATOMIC_SEQ_CST); i++)
		;
	assert_true(i < SHMQ__COND_SLOTS);
	__atomic_store_n(&f->s->slot[i].word, 0x12345u, __ATOMIC_SEQ_CST);
	shmq__futex_wake(&f->s->slot[i].word, 1);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(w.rc, -EBADMSG);
	assert_int_equal(w.released, 0);
}

/* A hostile process that writes a live waiter (the notifier's own id: alive
 * without a system call) into a slot each time a notify_all touches it, so
 * that each ticket it hands finds a new waiter there: the notify hands at
 * most one ticket per slot, not one per rewrite for ever. */
struct hostile_call {
	struct fixture *f;
	uint32_t *id; /* shared: the child's owner id, for the tracer */
};

static void *hostile_open(void *p, uint32_t **word)
{
	struct hostile_call *c = p;
	shmq_cond *cc;
	void *mem;

	c->f->r = tu_child_region(c->f->name);
	if (shmq_cond_open(c->f->r, "c", &cc) ||
	    shmq__obj_find(c->f->r, "c", SHMQ__OBJ_COND, &mem, NULL))
		return NULL;
	*word = &((struct shmq__cond_shm *)mem)->slot[0].word;
	c->f->c = cc;
	/* a waiter in slot 0 from the start; the tracer writes it back */
	__atomic_store_n(c->id, shmq__region_self(c->f->r), __ATOMIC_SEQ_CST);
	__atomic_store_n(*word, *c->id, __ATOMIC_SEQ_CST);
	return c;
}

static int hostile_notify_all(void *p)
{
	struct hostile_call *c = p;

	return shmq_cond_notify_all(c->f->c);
}

static void test_notify_all_hostile(void **state)
{
	struct fixture *f = *state;
	struct hostile_call c = { f, NULL };
	int64_t took;
	int rc;

	c.id = mmap(NULL, sizeof(*c.id), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(c.id != MAP_FAILED);
	__atomic_store_n(&f->s->nwaiters, 1, __ATOMIC_SEQ_CST);
	rc = tu_cas_hostile(&f->s->slot[0].word, c.id, 0, hostile_open, hostile_notify_all, &c,
			    20000 * MS, &took);
	munmap(c.id, sizeof(*c.id));
	if (rc == TU_HOSTILE_NO_PTRACE)
		skip();
	print_message("notify_all under hostile writes: %d after %lld ms\n", rc,
		      (long long)(took / MS));
	assert_true(rc >= 1 && rc <= (int)SHMQ__COND_SLOTS);
	__atomic_store_n(&f->s->slot[0].word, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&f->s->nwaiters, 0, __ATOMIC_SEQ_CST);
	assert_int_equal(shmq_cond_notify_all(f->c), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeouts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notify_n_fifo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_producer_consumer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_waiter_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_waiter_ticket_passed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zombie_waiter_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_waiters_share_scans, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_holder_dead, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_while_waiting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notify_all_hostile, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
