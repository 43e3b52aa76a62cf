/* SPDX-License-Identifier: MIT */
/* Locks: mutual exclusion across processes and threads, try-acquire,
 * timeouts, dead holders, EDEADLK / EPERM, placement, corrupt words. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>

#include "testutil.h"

#include "sync/lock_int.h"
#include "core/region_int.h"

#define SMALL ((size_t)256 << 10)
#define MS    ((int64_t)1000000)
#define LOCK_SLICE_MS 10 /* lock.c's LOCK_SLICE_NS: a waiter checks the holder after each */

struct fixture {
	char name[96];
	shmq_region *r;
	shmq_lock *l;
	pid_t kids[16]; /* children to reap (or kill) in teardown */
	int nkids;
	int fds[16];    /* holders' release pipes still open */
	int nfds;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct shmq_region_opts o = { .size = SMALL };

	if (!f)
		return -1;
	tu_name(f->name, sizeof(f->name), "lock");
	if (shmq_region_create(f->name, &o, &f->r) || shmq_lock_create(f->r, "l", &f->l))
		return -1;
	*state = f;
	return 0;
}

/* Remember a child so that teardown never leaves it behind, even when an
 * assertion cut the test short. */
static pid_t track_kid(struct fixture *f, pid_t pid)
{
	if (pid > 0 && f->nkids < (int)SHMQ__ARRAY_SIZE(f->kids))
		f->kids[f->nkids++] = pid;
	return pid;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < f->nfds; i++)
		if (f->fds[i] >= 0)
			close(f->fds[i]);
	for (int i = 0; i < f->nkids; i++) {
		/* Only a child not yet reaped is killed: its pid cannot have been
		 * reused by anybody else. */
		if (waitpid(f->kids[i], NULL, WNOHANG) == 0) {
			kill(f->kids[i], SIGKILL);
			waitpid(f->kids[i], NULL, 0);
		}
	}
	shmq_lock_close(f->l);
	shmq_region_close(f->r);
	shmq_region_unlink(f->name);
	free(f);
	return 0;
}

/* In a forked child: attach to the region by name (our own owner id). */
static shmq_lock *child_lock(const char *name, shmq_region **r)
{
	shmq_lock *l;

	*r = tu_child_region(name);
	if (shmq_lock_open(*r, "l", &l))
		_exit(91);
	return l;
}

static struct shmq__lock_shm *lock_shm(shmq_region *r)
{
	void *mem;

	assert_int_equal(shmq__obj_find(r, "l", SHMQ__OBJ_LOCK, &mem, NULL), 0);
	return mem;
}

/* ---- mutual exclusion --------------------------------------------------- */

#define PROCS 8
#define INCS  10000

/* A deliberately non-atomic read-modify-write with a gap between the read
 * and the write, so that any overlap of two holders loses increments. */
static void counter_bump(uint64_t *c, unsigned i)
{
	uint64_t v = *c;

	if ((i & 63) == 0)
		sched_yield();
	__asm__ __volatile__("" ::: "memory");
	*c = v + 1;
}

static void test_counter_processes(void **state)
{
	struct fixture *f = *state;
	uint64_t *counter;
	pid_t pids[PROCS];

	assert_int_equal(shmq__obj_create(f->r, "counter", SHMQ__OBJ_BLOB, 64, NULL, NULL,
					  (void **)&counter), 0);
	for (int p = 0; p < PROCS; p++) {
		pids[p] = track_kid(f, fork());
		assert_true(pids[p] >= 0);
		if (pids[p] == 0) {
			shmq_region *r;
			shmq_lock *l = child_lock(f->name, &r);
			uint64_t *c;

			if (shmq__obj_find(r, "counter", SHMQ__OBJ_BLOB, (void **)&c, NULL))
				_exit(92);
			for (unsigned i = 0; i < INCS; i++) {
				if (shmq_lock_acquire(l, SHMQ_FOREVER))
					_exit(93);
				counter_bump(c, i);
				if (shmq_lock_release(l))
					_exit(94);
			}
			shmq_lock_close(l);
			shmq_region_close(r);
			_exit(0);
		}
	}
	for (int p = 0; p < PROCS; p++)
		assert_int_equal(tu_wait_child(pids[p]), 0);
	assert_int_equal(*counter, (uint64_t)PROCS * INCS);
	assert_false(shmq_lock_locked(f->l));
}

#define THREADS 4
#define THREAD_INCS 20000

struct thread_arg {
	shmq_lock *l;
	uint64_t *counter;
	int rc;
};

static void *counter_thread(void *p)
{
	struct thread_arg *a = p;

	for (unsigned i = 0; i < THREAD_INCS; i++) {
		a->rc = shmq_lock_acquire(a->l, SHMQ_FOREVER);
		if (a->rc)
			return NULL;
		counter_bump(a->counter, i);
		a->rc = shmq_lock_release(a->l);
		if (a->rc)
			return NULL;
	}
	return NULL;
}

/* Threads of one process share one handle (and, under TSan, this checks the
 * lock's happens-before edges). */
static void test_counter_threads(void **state)
{
	struct fixture *f = *state;
	pthread_t th[THREADS];
	struct thread_arg a[THREADS];
	uint64_t counter = 0;

	for (int i = 0; i < THREADS; i++) {
		a[i] = (struct thread_arg){ .l = f->l, .counter = &counter };
		assert_int_equal(pthread_create(&th[i], NULL, counter_thread, &a[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(a[i].rc, 0);
	}
	assert_int_equal(counter, (uint64_t)THREADS * THREAD_INCS);
}

/* ---- try-acquire, EDEADLK, EPERM ---------------------------------------- */

static void *try_from_thread(void *p)
{
	shmq_lock *l = p;
	intptr_t rc = shmq_lock_acquire(l, SHMQ_NOWAIT);

	if (rc == -EAGAIN)
		rc = shmq_lock_release(l) == -EPERM ? -EAGAIN : 1000;
	return (void *)rc;
}

static void test_try_acquire(void **state)
{
	struct fixture *f = *state;
	pthread_t th;
	void *ret;
	pid_t pid;

	assert_false(shmq_lock_locked(f->l));
	assert_int_equal(shmq_lock_acquire(f->l, SHMQ_NOWAIT), 0);
	assert_true(shmq_lock_locked(f->l));
	/* another thread of this process: held, and not its to release */
	assert_int_equal(pthread_create(&th, NULL, try_from_thread, f->l), 0);
	assert_int_equal(pthread_join(th, &ret), 0);
	assert_int_equal((intptr_t)ret, -EAGAIN);
	/* another process */
	pid = track_kid(f, fork());
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_lock *l = child_lock(f->name, &r);

		if (shmq_lock_acquire(l, SHMQ_NOWAIT) != -EAGAIN)
			_exit(1);
		if (shmq_lock_release(l) != -EPERM)
			_exit(2);
		_exit(0);
	}
	assert_int_equal(tu_wait_child(pid), 0);
	assert_int_equal(shmq_lock_release(f->l), 0);
	assert_false(shmq_lock_locked(f->l));
	/* free again: the child can take it */
	pid = track_kid(f, fork());
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_lock *l = child_lock(f->name, &r);

		if (shmq_lock_acquire(l, SHMQ_NOWAIT) != 0)
			_exit(1);
		if (shmq_lock_release(l) != 0)
			_exit(2);
		_exit(0);
	}
	assert_int_equal(tu_wait_child(pid), 0);
}

static void test_deadlk_eperm(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(shmq_lock_release(f->l), -EPERM);
	assert_int_equal(shmq_lock_acquire(f->l, SHMQ_FOREVER), 0);
	assert_int_equal(shmq_lock_acquire(f->l, SHMQ_NOWAIT), -EDEADLK);
	assert_int_equal(shmq_lock_acquire(f->l, 10 * MS), -EDEADLK);
	assert_int_equal(shmq_lock_acquire(f->l, SHMQ_FOREVER), -EDEADLK);
	assert_int_equal(shmq_lock_release(f->l), 0);
	assert_int_equal(shmq_lock_release(f->l), -EPERM);
	/* a second handle in the same process acts for the same thread */
	{
		shmq_lock *l2;

		assert_int_equal(shmq_lock_open(f->r, "l", &l2), 0);
		assert_int_equal(shmq_lock_acquire(l2, SHMQ_NOWAIT), 0);
		assert_int_equal(shmq_lock_acquire(f->l, SHMQ_NOWAIT), -EDEADLK);
		assert_int_equal(shmq_lock_release(f->l), 0);
		shmq_lock_close(l2);
	}
}

struct open2_try {
	shmq_lock *l;
	int rc, released;
};

static void *try_open2_from_thread(void *p)
{
	struct open2_try *t = p;

	t->rc = shmq_lock_acquire(t->l, SHMQ_NOWAIT);
	t->released = shmq_lock_release(t->l);
	return NULL;
}

/* A second region open is an owner of its own, but the same process: the
 * thread that holds the lock through one gets -EDEADLK through the other,
 * also waiting (SHMQ_FOREVER), while another thread of the process, and
 * another process, get -EAGAIN.  Found by an audit: -EAGAIN for NOWAIT, and
 * SHMQ_FOREVER slept forever behind its own (live) thread.  Run in a child
 * with an alarm, so a regression fails instead of hanging. */
static void test_deadlk_two_opens(void **state)
{
	struct fixture *f = *state;
	pid_t pid = track_kid(f, fork());

	assert_true(pid >= 0);
	if (pid == 0) {
		struct open2_try t = { .rc = 1, .released = 1 };
		shmq_region *r1, *r2;
		shmq_lock *l1, *l2;
		pthread_t th;

		r1 = tu_child_region(f->name);
		r2 = tu_child_region(f->name);
		if (shmq_lock_open(r1, "l", &l1) || shmq_lock_open(r2, "l", &l2))
			_exit(90);
		alarm(10);
		if (shmq_lock_acquire(l1, SHMQ_NOWAIT))
			_exit(1);
		if (shmq_lock_acquire(l2, SHMQ_NOWAIT) != -EDEADLK)
			_exit(2);
		if (shmq_lock_acquire(l2, 20 * MS) != -EDEADLK)
			_exit(3);
		if (shmq_lock_acquire(l2, SHMQ_FOREVER) != -EDEADLK)
			_exit(4);
		/* shmq_lock(3): the holder releases through its own open only */
		if (shmq_lock_release(l2) != -EPERM || !shmq_lock_locked(l1))
			_exit(10);
		/* another thread of ours: held by somebody else, not its own */
		t.l = l2;
		if (pthread_create(&th, NULL, try_open2_from_thread, &t) ||
		    pthread_join(th, NULL))
			_exit(91);
		if (t.rc != -EAGAIN || t.released != -EPERM)
			_exit(5);
		if (shmq_lock_release(l1))
			_exit(6);
		/* and the other way round */
		if (shmq_lock_acquire(l2, SHMQ_NOWAIT))
			_exit(7);
		if (shmq_lock_acquire(l1, SHMQ_FOREVER) != -EDEADLK)
			_exit(8);
		if (shmq_lock_release(l2))
			_exit(9);
		_exit(0);
	}
	assert_int_equal(tu_wait_child(pid), 0);
	assert_false(shmq_lock_locked(f->l));
	/* the parent's main thread has the child's thread key: a holder that
	 * is another process with our key is no self-deadlock */
	pid = track_kid(f, fork());
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_lock *l = child_lock(f->name, &r);

		if (shmq_lock_acquire(l, SHMQ_NOWAIT))
			_exit(1);
		pause(); /* holds it until killed (or its alarm) */
		_exit(0);
	}
	{
		int64_t end = shmq_now_ns() + 5000 * MS;

		while (!shmq_lock_locked(f->l)) {
			assert_true(shmq_now_ns() < end);
			usleep(1000);
		}
	}
	assert_int_equal(shmq_lock_acquire(f->l, SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(shmq_lock_acquire(f->l, 20 * MS), -ETIMEDOUT);
	/* and its death is still found: taken over, not a self-deadlock */
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	assert_int_equal(shmq_lock_acquire(f->l, SHMQ_FOREVER), -EOWNERDEAD);
	assert_int_equal(shmq_lock_acquire(f->l, SHMQ_NOWAIT), -EDEADLK);
	assert_int_equal(shmq_lock_release(f->l), 0);
}

/* ---- timeouts ----------------------------------------------------------- */

/* Fork a child that holds the lock until the write end of the returned pipe
 * is closed (or it is killed).  Returns its pid. */
static pid_t fork_holder(struct fixture *f, int *release_fd)
{
	int ready[2], go[2];
	char c;
	pid_t pid;

	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(go), 0);
	pid = track_kid(f, fork());
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_lock *l = child_lock(f->name, &r);

		close(ready[0]);
		close(go[1]);
		if (shmq_lock_acquire(l, SHMQ_FOREVER))
			_exit(1);
		if (write(ready[1], "x", 1) != 1)
			_exit(2);
		while (read(go[0], &c, 1) > 0) /* until the parent closes go[1] */
			;
		_exit(shmq_lock_release(l) ? 3 : 0);
	}
	track_kid(f, pid);
	close(ready[1]);
	close(go[0]);
	if (f->nfds < (int)SHMQ__ARRAY_SIZE(f->fds))
		f->fds[f->nfds++] = go[1];
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	*release_fd = go[1];
	return pid;
}

/* Let the holder behind go release the lock and exit. */
static void holder_release(struct fixture *f, int go)
{
	for (int i = 0; i < f->nfds; i++)
		if (f->fds[i] == go)
			f->fds[i] = -1;
	close(go);
}

/* One timed acquire against a held lock: true when it was on time (never
 * early, at most 10% + 2 ms late beyond the OS's own lateness). */
static bool timed_once(shmq_lock *l, int64_t t)
{
	int64_t t0 = shmq_now_ns(), el;

	assert_int_equal(shmq_lock_acquire(l, t), -ETIMEDOUT);
	el = shmq_now_ns() - t0;
	assert_true(el >= t); /* never early */
	return el <= t + t / 10 + 2 * MS || el <= t + t / 10 + 2 * MS + tu_os_lateness(t);
}

static void test_timeouts(void **state)
{
	static const int64_t ts[] = { 1 * MS, 5 * MS, 15 * MS, 40 * MS };
	struct fixture *f = *state;
	int go;
	pid_t pid = fork_holder(f, &go);

	for (unsigned i = 0; i < SHMQ__ARRAY_SIZE(ts); i++) {
		/* lateness can come from a busy machine: allow retries */
		bool ok = false;

		for (int attempt = 0; attempt < 5 && !ok; attempt++)
			ok = timed_once(f->l, ts[i]);
		assert_true(ok);
	}
	assert_int_equal(shmq_lock_acquire(f->l, SHMQ_NOWAIT), -EAGAIN);
	holder_release(f, go);
	assert_int_equal(tu_wait_child(pid), 0);
	assert_int_equal(shmq_lock_acquire(f->l, 10 * MS), 0);
	assert_int_equal(shmq_lock_release(f->l), 0);
}

/* A waiter asleep behind a live holder gets the lock once it is released
 * (by a helper process that closes the holder's pipe once the lock's waits
 * counter shows the waiter in a futex wait: 10 s at most, exit 1 then). */
static void test_wake_on_release(void **state)
{
	struct fixture *f = *state;
	int go;
	pid_t pid = fork_holder(f, &go);
	struct shmq__lock_shm *s = lock_shm(f->r);
	uint64_t waits = __atomic_load_n(&s->waits, __ATOMIC_SEQ_CST);
	pid_t helper = track_kid(f, fork());

	assert_true(helper >= 0);
	if (helper == 0) {
		int64_t until = shmq_now_ns() + 10000 * MS;
		bool asleep;

		while (!(asleep = __atomic_load_n(&s->waits, __ATOMIC_SEQ_CST) != waits) &&
		       shmq_now_ns() < until)
			usleep(200);
		close(go);
		_exit(asleep ? 0 : 1);
	}
	holder_release(f, go);
	assert_int_equal(shmq_lock_acquire(f->l, 20000 * MS), 0);
	assert_int_equal(shmq_lock_release(f->l), 0);
	assert_int_equal(tu_wait_child(pid), 0);
	assert_int_equal(tu_wait_child(helper), 0); /* we were asleep when released */
}

/* ---- dead holders ------------------------------------------------------- */

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

static void test_owner_dead_while_waiting(void **state)
{
	struct fixture *f = *state;
	struct killer k;
	pthread_t th;
	int go, rc;
	int64_t got;

	k.victim = fork_holder(f, &go);
	assert_int_equal(pthread_create(&th, NULL, kill_later, &k), 0);
	rc = shmq_lock_acquire(f->l, 5000 * MS);
	got = shmq_now_ns();
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(rc, -EOWNERDEAD);
	/* Detected, not timed out: the 5 s bound is far off.  (Typically a few
	 * ms after the kill; 2 s leaves room for a loaded, sanitized run.) */
	print_message("EOWNERDEAD %.1f ms after the kill\n", (double)(got - k.killed_at) / MS);
	assert_true(got - k.killed_at <= 2000 * MS);
	assert_int_equal(tu_wait_child(k.victim), 128 + SIGKILL);
	holder_release(f, go);
	/* held by us now, and it keeps working */
	assert_int_equal(shmq_lock_acquire(f->l, SHMQ_NOWAIT), -EDEADLK);
	assert_int_equal(shmq_lock_release(f->l), 0);
	assert_int_equal(shmq_lock_acquire(f->l, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_lock_release(f->l), 0);
	k.victim = fork_holder(f, &go);
	assert_int_equal(shmq_lock_acquire(f->l, SHMQ_NOWAIT), -EAGAIN);
	holder_release(f, go);
	assert_int_equal(tu_wait_child(k.victim), 0);
	assert_int_equal(shmq_lock_acquire(f->l, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_lock_release(f->l), 0);
}

static void test_owner_dead_before_waiting(void **state)
{
	struct fixture *f = *state;
	int go;
	pid_t pid = fork_holder(f, &go);

	kill(pid, SIGKILL);
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	holder_release(f, go);
	/* a try-acquire never blocks, but takes a reaped holder's lock over */
	assert_int_equal(shmq_lock_acquire(f->l, SHMQ_NOWAIT), -EOWNERDEAD);
	assert_int_equal(shmq_lock_acquire(f->l, SHMQ_NOWAIT), -EDEADLK);
	assert_int_equal(shmq_lock_release(f->l), 0);
	assert_false(shmq_lock_locked(f->l));
	/* a timeout shorter than a slice still finds the dead holder */
	pid = fork_holder(f, &go);
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	holder_release(f, go);
	assert_int_equal(shmq_lock_acquire(f->l, 2 * MS), -EOWNERDEAD);
	assert_int_equal(shmq_lock_release(f->l), 0);
	assert_false(shmq_lock_locked(f->l));
}

/* A holder that is dead but not reaped (a zombie: kill(2) still finds it):
 * try-acquires keep returning -EAGAIN only until the handle's next /proc
 * look, at most a slice away; a live holder's lock is never taken. */
static void test_owner_dead_zombie_nowait(void **state)
{
	struct fixture *f = *state;
	siginfo_t si;
	int64_t t0;
	int go, rc, tries = 0;
	pid_t pid = fork_holder(f, &go);

	for (int i = 0; i < 100; i++) /* live holder: refused, every time */
		assert_int_equal(shmq_lock_acquire(f->l, SHMQ_NOWAIT), -EAGAIN);
	kill(pid, SIGKILL);
	memset(&si, 0, sizeof(si));
	assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0); /* a zombie now */
	t0 = shmq_now_ns();
	while ((rc = shmq_lock_acquire(f->l, SHMQ_NOWAIT)) == -EAGAIN) {
		tries++;
		assert_true(shmq_now_ns() - t0 < 2000 * MS);
		usleep(100);
	}
	print_message("zombie holder found after %d tries, %.1f ms\n", tries,
		      (double)(shmq_now_ns() - t0) / MS);
	assert_int_equal(rc, -EOWNERDEAD);
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	holder_release(f, go);
	assert_int_equal(shmq_lock_release(f->l), 0);
}

struct leader_gone {
	shmq_lock *l;
	int ready, go; /* pipe ends: we hold it; release now */
};

static void *hold_until_go(void *p)
{
	struct leader_gone *g = p;
	char c;

	if (shmq_lock_acquire(g->l, SHMQ_FOREVER))
		_exit(1);
	if (write(g->ready, "x", 1) != 1)
		_exit(2);
	while (read(g->go, &c, 1) > 0) /* until the parent closes its end */
		;
	_exit(shmq_lock_release(g->l) ? 3 : 0);
}

/* The state letter of /proc/PID/stat. */
static char proc_state(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fp = fopen(path, "r");
	if (!fp)
		return '?';
	p = fgets(buf, sizeof(buf), fp) ? strrchr(buf, ')') : NULL;
	fclose(fp);
	return p && p[1] == ' ' ? p[2] : '?';
}

/* A holder whose main thread has returned through pthread_exit(), while
 * another of its threads holds the lock, is alive: /proc shows its pid as
 * a zombie (the thread group leader), but the process runs on.  Found by
 * an audit: such a holder was judged dead and its lock taken over
 * (-EOWNERDEAD) while it still held it. */
static void test_holder_leader_exited(void **state)
{
	struct fixture *f = *state;
	int ready[2], go[2];
	int64_t end;
	pid_t pid;
	char c;

	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(go), 0);
	pid = track_kid(f, fork());
	assert_true(pid >= 0);
	if (pid == 0) {
		static struct leader_gone g;
		shmq_region *r;
		pthread_t th;

		g.l = child_lock(f->name, &r);
		g.ready = ready[1];
		g.go = go[0];
		close(ready[0]);
		close(go[1]);
		if (pthread_create(&th, NULL, hold_until_go, &g))
			_exit(4);
		pthread_exit(NULL); /* the process lives on in hold_until_go */
	}
	close(ready[1]);
	close(go[0]);
	if (f->nfds < (int)SHMQ__ARRAY_SIZE(f->fds))
		f->fds[f->nfds++] = go[1];
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	end = shmq_now_ns() + 10000 * MS;
	while (proc_state(pid) != 'Z') { /* the leader has exited */
		assert_true(shmq_now_ns() < end);
		sched_yield();
	}
	assert_int_equal(shmq_lock_acquire(f->l, SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(shmq_lock_acquire(f->l, 3 * LOCK_SLICE_MS * MS), -ETIMEDOUT);
	assert_int_equal(shmq_lock_acquire(f->l, SHMQ_NOWAIT), -EAGAIN);
	/* it releases the lock it still held, and exits */
	holder_release(f, go[1]);
	assert_int_equal(tu_wait_child(pid), 0);
	assert_int_equal(shmq_lock_acquire(f->l, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_lock_release(f->l), 0);
}

#define NOBODY 65534
#define CANNOT 77 /* the child could not set the scene up: skip */

/* In a child: as another user, under a /proc that hides other users'
 * processes (hidepid=2), try the lock a live holder of ours holds. */
static int hidden_holder_child(const char *name)
{
	shmq_region *r;
	shmq_lock *l;

	alarm(60);
	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2") ||
	    setgid(NOBODY) || setuid(NOBODY))
		return CANNOT;
	if (shmq_region_open_flags(name, SHMQ_REGION_SHARED, &r) || shmq_lock_open(r, "l", &l))
		return 1;
	if (kill(getppid(), 0) == 0 || errno != EPERM)
		return CANNOT; /* the holder must exist for kill(2) yet be out of reach */
	if (shmq_lock_acquire(l, SHMQ_NOWAIT) != -EAGAIN)
		return 2;
	if (shmq_lock_acquire(l, 3 * LOCK_SLICE_MS * MS) != -ETIMEDOUT)
		return 3;
	return 0;
}

/* A live holder that /proc hides (mounted hidepid=2: another user's
 * processes have no entry there) is alive: kill(2) still finds it.  Found
 * by an audit: a process of another user sharing a region
 * (SHMQ_REGION_SHARED) took such a holder for dead and its lock over. */
static void test_holder_hidden_from_proc(void **state)
{
	struct shmq_region_opts o = { .size = SMALL, .mode = 0666 };
	struct fixture *f = *state;
	char name[96];
	shmq_region *r;
	shmq_lock *l;
	pid_t pid;
	int rc, rel;

	if (geteuid() != 0)
		skip(); /* needs another user and a mount namespace */
	tu_name(name, sizeof(name), "lockhide");
	assert_int_equal(shmq_region_create(name, &o, &r), 0);
	assert_int_equal(shmq_lock_create(r, "l", &l), 0);
	assert_int_equal(shmq_lock_acquire(l, SHMQ_NOWAIT), 0);
	pid = track_kid(f, fork());
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(hidden_holder_child(name));
	rc = tu_wait_child(pid);
	rel = shmq_lock_release(l); /* -EPERM if it was taken from us */
	shmq_lock_close(l);
	shmq_region_close(r);
	shmq_region_unlink(name);
	if (rc == CANNOT)
		skip();
	assert_int_equal(rc, 0);
	assert_int_equal(rel, 0);
}

/* In a child: in a pid namespace of its own (and a /proc of it), as its
 * pid 1, take the lock; release it once go reaches EOF. */
static int other_ns_holder(const char *name, int ready, int go)
{
	shmq_region *r;
	shmq_lock *l;
	pid_t pid;
	int st;
	char c;

	alarm(60);
	if (unshare(CLONE_NEWPID | CLONE_NEWNS))
		return CANNOT;
	pid = fork(); /* the first child is the namespace's pid 1 */
	if (pid < 0)
		return CANNOT;
	if (pid == 0) {
		if (getpid() != 1 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
		    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL))
			_exit(CANNOT);
		l = child_lock(name, &r);
		if (shmq_lock_acquire(l, SHMQ_NOWAIT))
			_exit(1);
		if (write(ready, "x", 1) != 1)
			_exit(2);
		while (read(go, &c, 1) > 0) /* until the parent closes go */
			;
		_exit(shmq_lock_release(l) ? 3 : 0);
	}
	close(ready);
	close(go);
	if (waitpid(pid, &st, 0) != pid)
		return 4;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 5;
}

/* A live holder in another pid namespace (containers sharing /dev/shm):
 * its pid names nobody here, or somebody else, so it cannot be judged and
 * counts as alive.  Found by an audit: the holder, pid 1 of its namespace
 * under a /proc of its own, was taken for dead after one slice (our pid 1
 * has another start time) and its lock handed over with -EOWNERDEAD while
 * it still held it. */
static void test_holder_other_pid_namespace(void **state)
{
	struct fixture *f = *state;
	int ready[2], go[2], rc;
	pid_t pid;
	char c;

	if (geteuid() != 0)
		skip(); /* needs a pid and a mount namespace */
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(go), 0);
	pid = track_kid(f, fork());
	assert_true(pid >= 0);
	if (pid == 0) {
		close(ready[0]);
		close(go[1]);
		_exit(other_ns_holder(f->name, ready[1], go[0]));
	}
	close(ready[1]);
	close(go[0]);
	if (f->nfds < (int)SHMQ__ARRAY_SIZE(f->fds))
		f->fds[f->nfds++] = go[1];
	if (read(ready[0], &c, 1) != 1) { /* the holder could not set up */
		close(ready[0]);
		holder_release(f, go[1]);
		rc = tu_wait_child(pid);
		if (rc == CANNOT)
			skip();
		fail_msg("holder exited with %d before it held the lock", rc);
	}
	close(ready[0]);
	assert_int_equal(shmq_lock_acquire(f->l, SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(shmq_lock_acquire(f->l, 5 * LOCK_SLICE_MS * MS), -ETIMEDOUT);
	holder_release(f, go[1]);
	assert_int_equal(tu_wait_child(pid), 0);
	assert_int_equal(shmq_lock_acquire(f->l, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_lock_release(f->l), 0);
}

/* Several waiters behind one dead holder: exactly one gets EOWNERDEAD, the
 * others then get the lock in turn. */
static void test_owner_dead_many_waiters(void **state)
{
	struct fixture *f = *state;
	int go, codes[3] = { 0 };
	pid_t holder = fork_holder(f, &go), w[3];

	for (int i = 0; i < 3; i++) {
		w[i] = track_kid(f, fork());
		assert_true(w[i] >= 0);
		if (w[i] == 0) {
			shmq_region *r;
			shmq_lock *l = child_lock(f->name, &r);
			int rc = shmq_lock_acquire(l, 5000 * MS);

			if (rc != 0 && rc != -EOWNERDEAD)
				_exit(1);
			if (shmq_lock_release(l))
				_exit(2);
			_exit(rc == -EOWNERDEAD ? 10 : 0);
		}
	}
	{
		struct timespec ts = { 0, 30 * 1000 * 1000 };

		nanosleep(&ts, NULL);
	}
	kill(holder, SIGKILL);
	assert_int_equal(tu_wait_child(holder), 128 + SIGKILL);
	holder_release(f, go);
	for (int i = 0; i < 3; i++)
		codes[i] = tu_wait_child(w[i]);
	assert_int_equal((codes[0] == 10) + (codes[1] == 10) + (codes[2] == 10), 1);
	assert_int_equal(codes[0] + codes[1] + codes[2], 10);
	assert_false(shmq_lock_locked(f->l));
}

/* ---- untrusted words, placement ----------------------------------------- */

static void test_corrupt_word(void **state)
{
	struct fixture *f = *state;
	struct shmq__lock_shm *s = lock_shm(f->r);
	shmq_lock *l2;
	uint64_t waits;

	/* CONTENDED with no owner */
	s->word = SHMQ__LOCK_CONTENDED;
	assert_int_equal(shmq_lock_acquire(f->l, 5 * MS), -EBADMSG);
	/* an owner id that no attachment can have (generation 0): refused
	 * the first time it is read, never slept on */
	waits = s->waits;
	s->word = 5;
	assert_int_equal(shmq_lock_acquire(f->l, 2000 * MS), -EBADMSG);
	s->word = 5 | SHMQ__LOCK_CONTENDED;
	assert_int_equal(shmq_lock_acquire(f->l, SHMQ_FOREVER), -EBADMSG);
	assert_int_equal(s->waits, waits);
	/* an owner the process table does not list (slot 1023 was never
	 * attached): surely dead, taken over at first sight */
	s->word = SHMQ__ID_MAX | SHMQ__LOCK_CONTENDED;
	assert_int_equal(shmq_lock_acquire(f->l, SHMQ_FOREVER), -EOWNERDEAD);
	assert_int_equal(s->waits, waits);
	assert_int_equal(shmq_lock_release(f->l), 0);
	/* a slot beyond the process table */
	s->word = SHMQ__PTAB_SLOTS - 1 + (1u << SHMQ__ID_SLOT_BITS);
	{
		struct shmq_region_info info;

		assert_int_equal(shmq_region_info(f->r, &info), 0);
		if (info.max_procs < SHMQ__PTAB_SLOTS)
			assert_int_equal(shmq_lock_acquire(f->l, 15 * MS), -EBADMSG);
	}
	s->word = 0;
	assert_int_equal(shmq_lock_acquire(f->l, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_lock_release(f->l), 0);
	/* a wrong magic */
	s->magic ^= 1;
	assert_int_equal(shmq_lock_open(f->r, "l", &l2), -EBADMSG);
	s->magic ^= 1;
	assert_int_equal(shmq_lock_open(f->r, "l", &l2), 0);
	shmq_lock_close(l2);
	/* not a lock */
	{
		void *mem;

		assert_int_equal(shmq__obj_create(f->r, "blob", SHMQ__OBJ_BLOB, 64, NULL, NULL,
						  &mem), 0);
		assert_int_equal(shmq_lock_open(f->r, "blob", &l2), -EINVAL);
		assert_int_equal(shmq_lock_open(f->r, "nope", &l2), -ENOENT);
		assert_int_equal(shmq_lock_create(f->r, "l", &l2), -EEXIST);
	}
}

static void test_placement(void **state)
{
	struct fixture *f = *state;
	uint8_t *mem;
	shmq_lock *l;
	size_t fp = shmq_lock_footprint();
	int ready[2];
	pid_t pid;

	assert_true(fp >= 8 && fp % 64 == 0);
	assert_int_equal(shmq__obj_create(f->r, "placed", SHMQ__OBJ_BLOB, 2 * fp, NULL, NULL,
					  (void **)&mem), 0);
	assert_int_equal(shmq_lock_init(NULL), -EINVAL);
	assert_int_equal(shmq_lock_init(mem + 1), -EINVAL);
	assert_int_equal(shmq_lock_attach(f->r, mem, &l), -EBADMSG); /* not initialised */
	assert_int_equal(shmq_lock_attach(f->r, mem + 4, &l), -EINVAL);
	assert_int_equal(shmq_lock_init(mem), 0);
	assert_int_equal(shmq_lock_attach(f->r, mem, &l), 0);
	assert_int_equal(shmq_lock_acquire(l, SHMQ_NOWAIT), 0);
	assert_int_equal(pipe(ready), 0);
	pid = track_kid(f, fork());
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		uint8_t *m;
		shmq_lock *cl;

		close(ready[0]);
		if (shmq_region_open(f->name, &r) ||
		    shmq__obj_find(r, "placed", SHMQ__OBJ_BLOB, (void **)&m, NULL) ||
		    shmq_lock_attach(r, m, &cl))
			_exit(1);
		if (shmq_lock_acquire(cl, SHMQ_NOWAIT) != -EAGAIN)
			_exit(2);
		if (write(ready[1], "r", 1) != 1) /* held, seen: now the parent releases */
			_exit(5);
		if (shmq_lock_acquire(cl, 5000 * MS) != 0)
			_exit(3);
		_exit(shmq_lock_release(cl) ? 4 : 0);
	}
	close(ready[1]);
	{
		char c;

		/* EOF (0) if the child failed before the handshake; its code tells why */
		(void)!read(ready[0], &c, 1);
		close(ready[0]);
	}
	assert_int_equal(shmq_lock_release(l), 0);
	assert_int_equal(tu_wait_child(pid), 0);
	shmq_lock_close(l);
	shmq_lock_close(NULL);
}

int main(void)
{
	alarm(240); /* a hang fails the program instead of stalling the suite */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_counter_processes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counter_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_try_acquire, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadlk_eperm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadlk_two_opens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeouts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wake_on_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_owner_dead_while_waiting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_owner_dead_before_waiting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_owner_dead_zombie_nowait, setup, teardown),
		cmocka_unit_test_setup_teardown(test_holder_leader_exited, setup, teardown),
		cmocka_unit_test_setup_teardown(test_holder_hidden_from_proc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_holder_other_pid_namespace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_owner_dead_many_waiters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_word, setup, teardown),
		cmocka_unit_test_setup_teardown(test_placement, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
