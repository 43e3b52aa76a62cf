/* SPDX-License-Identifier: MIT */
/* Barriers: generations across processes with distinct indices, timeout,
 * abort, reset, dead parties (killed mid-wait or between generations) and
 * parties that leave cleanly, threads, placement, corruption. */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include "testutil.h"
#include "proc_spy.h"

#include "core/atomic_int.h"
#include "sync/lock_int.h"
#include "core/region_int.h"

#define SMALL ((size_t)1 << 20)
#define MS    ((int64_t)1000000)

static int setup(void **state)
{
	return tu_region_setup(state, "barrier", SMALL);
}

/* In a forked child: our own attachment and barrier handle. */
static shmq_barrier *child_barrier(const char *name, shmq_region **r)
{
	shmq_barrier *b;

	*r = tu_child_region(name);
	if (shmq_barrier_open(*r, "b", &b))
		_exit(91);
	return b;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000 * 1000 };

	nanosleep(&ts, NULL);
}

static void test_create_args(void **state)
{
	struct tu_region *f = *state;
	shmq_barrier *b, *b2;
	void *mem;

	assert_int_equal(shmq_barrier_create(f->r, "b", 0, &b), -EINVAL);
	assert_int_equal(shmq_barrier_create(f->r, "b", 65536, &b), -EINVAL);
	assert_int_equal(shmq_barrier_create(f->r, "b", 3, &b), 0);
	assert_int_equal(shmq_barrier_create(f->r, "b", 3, &b2), -EEXIST);
	assert_int_equal(shmq_barrier_open(f->r, "b", &b2), 0);
	assert_int_equal(shmq_barrier_parties(b2), 3);
	assert_int_equal(shmq_barrier_n_waiting(b2), 0);
	assert_false(shmq_barrier_broken(b2));
	shmq_barrier_close(b2);
	assert_int_equal(shmq_barrier_open(f->r, "nope", &b2), -ENOENT);
	assert_int_equal(shmq__obj_create(f->r, "blob", SHMQ__OBJ_BLOB, 64, NULL, NULL, &mem), 0);
	assert_int_equal(shmq_barrier_open(f->r, "blob", &b2), -EINVAL);
	shmq_barrier_close(b);
	shmq_barrier_close(NULL);
}

/* ---- generations across processes -------------------------------------- */

#define PARTIES 5
#define GENS    1000

struct gen_log {
	uint32_t arrived[GENS];          /* parties that arrived in each generation */
	uint8_t idx[GENS][PARTIES];      /* each party's index per generation */
};

static int gen_party(shmq_barrier *b, struct gen_log *log, int party)
{
	for (int g = 0; g < GENS; g++) {
		int rc;

		shmq__fetch_add_seq_cst(&log->arrived[g], 1);
		rc = shmq_barrier_wait(b, 20000 * MS);
		if (rc < 0 || rc >= PARTIES)
			return 1;
		/* every party arrived before anyone passed */
		if (shmq__load_seq_cst(&log->arrived[g]) != PARTIES)
			return 2;
		log->idx[g][party] = (uint8_t)rc;
	}
	return 0;
}

static void test_generations_processes(void **state)
{
	struct tu_region *f = *state;
	shmq_barrier *b;
	struct gen_log *log;
	pid_t pids[PARTIES - 1];

	assert_int_equal(shmq_barrier_create(f->r, "b", PARTIES, &b), 0);
	assert_int_equal(shmq__obj_create(f->r, "log", SHMQ__OBJ_BLOB, sizeof(*log), NULL, NULL,
					  (void **)&log), 0);
	for (int p = 1; p < PARTIES; p++) {
		pids[p - 1] = fork();
		assert_true(pids[p - 1] >= 0);
		if (pids[p - 1] == 0) {
			shmq_region *r;
			shmq_barrier *cb = child_barrier(f->name, &r);
			struct gen_log *cl;

			if (shmq__obj_find(r, "log", SHMQ__OBJ_BLOB, (void **)&cl, NULL))
				_exit(92);
			_exit(gen_party(cb, cl, p));
		}
	}
	assert_int_equal(gen_party(b, log, 0), 0);
	for (int p = 1; p < PARTIES; p++)
		assert_int_equal(tu_wait_child(pids[p - 1]), 0);
	for (int g = 0; g < GENS; g++) {
		unsigned seen = 0;

		for (int p = 0; p < PARTIES; p++)
			seen |= 1u << log->idx[g][p];
		assert_int_equal(seen, (1u << PARTIES) - 1); /* a permutation of 0..4 */
	}
	shmq_barrier_close(b);
}

/* ---- threads (TSan checks the barrier's happens-before) ----------------- */

#define TPARTIES 4
#define TGENS    2000

struct tshared {
	shmq_barrier *b;
	uint64_t slots[TPARTIES]; /* plain: written before a wait, read after it */
	int rc[TPARTIES];
};

struct targ {
	struct tshared *sh;
	int me;
};

static void *tparty(void *p)
{
	struct targ *a = p;
	struct tshared *sh = a->sh;

	for (uint64_t g = 1; g <= TGENS; g++) {
		sh->slots[a->me] = g;
		if (shmq_barrier_wait(sh->b, 20000 * MS) < 0) {
			sh->rc[a->me] = 1;
			return NULL;
		}
		for (int i = 0; i < TPARTIES; i++)
			if (sh->slots[i] != g) {
				sh->rc[a->me] = 2;
				return NULL;
			}
		/* nobody writes the next generation's value before all read */
		if (shmq_barrier_wait(sh->b, 20000 * MS) < 0) {
			sh->rc[a->me] = 3;
			return NULL;
		}
	}
	return NULL;
}

static void test_generations_threads(void **state)
{
	struct tu_region *f = *state;
	struct tshared sh = { 0 };
	struct targ a[TPARTIES];
	pthread_t th[TPARTIES];

	assert_int_equal(shmq_barrier_create(f->r, "b", TPARTIES, &sh.b), 0);
	for (int i = 0; i < TPARTIES; i++) {
		a[i] = (struct targ){ .sh = &sh, .me = i };
		assert_int_equal(pthread_create(&th[i], NULL, tparty, &a[i]), 0);
	}
	for (int i = 0; i < TPARTIES; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(sh.rc[i], 0);
	}
	shmq_barrier_close(sh.b);
}

/* ---- timeout, abort, reset ---------------------------------------------- */

static void test_timeout_breaks(void **state)
{
	struct tu_region *f = *state;
	shmq_barrier *b;
	int64_t t0, el;
	pid_t pid;

	assert_int_equal(shmq_barrier_create(f->r, "b", 3, &b), 0);
	/* NOWAIT that would block: no arrival, nothing broken */
	assert_int_equal(shmq_barrier_wait(b, SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(shmq_barrier_n_waiting(b), 0);
	assert_false(shmq_barrier_broken(b));
	/* a child waits without limit; our timeout breaks the barrier and the
	 * child gets -EPIPE long before any timeout of its own */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_barrier *cb = child_barrier(f->name, &r);

		_exit(shmq_barrier_wait(cb, 10000 * MS) == -EPIPE ? 0 : 1);
	}
	while (shmq_barrier_n_waiting(b) != 1)
		sleep_ms(1);
	t0 = shmq_now_ns();
	assert_int_equal(shmq_barrier_wait(b, 30 * MS), -ETIMEDOUT);
	el = shmq_now_ns() - t0;
	assert_true(el >= 30 * MS); /* never early */
	assert_int_equal(tu_wait_child(pid), 0);
	assert_true(shmq_barrier_broken(b));
	/* later waits: -EPIPE at once, whatever the timeout */
	assert_int_equal(shmq_barrier_wait(b, SHMQ_FOREVER), -EPIPE);
	assert_int_equal(shmq_barrier_wait(b, SHMQ_NOWAIT), -EPIPE);
	assert_int_equal(shmq_barrier_n_waiting(b), 0);
	/* reset: usable again */
	assert_int_equal(shmq_barrier_reset(b), 0);
	assert_false(shmq_barrier_broken(b));
	{
		pid_t kids[2];
		int idx, seen;

		for (int i = 0; i < 2; i++) {
			kids[i] = fork();
			assert_true(kids[i] >= 0);
			if (kids[i] == 0) {
				shmq_region *r;
				shmq_barrier *cb = child_barrier(f->name, &r);

				_exit(10 + shmq_barrier_wait(cb, 10000 * MS));
			}
		}
		idx = shmq_barrier_wait(b, 10000 * MS);
		assert_true(idx >= 0 && idx < 3);
		seen = 1 << idx;
		for (int i = 0; i < 2; i++) {
			int c = tu_wait_child(kids[i]) - 10;

			assert_true(c >= 0 && c < 3);
			seen |= 1 << c;
		}
		assert_int_equal(seen, 7);
	}
	assert_false(shmq_barrier_broken(b));
	shmq_barrier_close(b);
}

/* Timeouts of several lengths are honoured: never early, at most 10% + 2 ms
 * late beyond the OS's own lateness (retried: the machine may be busy). */
static void test_timeout_accuracy(void **state)
{
	static const int64_t ts[] = { 1 * MS, 5 * MS, 20 * MS };
	struct tu_region *f = *state;
	shmq_barrier *b;

	assert_int_equal(shmq_barrier_create(f->r, "b", 2, &b), 0);
	for (unsigned i = 0; i < SHMQ__ARRAY_SIZE(ts); i++) {
		bool ok = false;

		for (int attempt = 0; attempt < 5 && !ok; attempt++) {
			int64_t t0 = shmq_now_ns(), el, slack = ts[i] + ts[i] / 10 + 2 * MS;

			assert_int_equal(shmq_barrier_wait(b, ts[i]), -ETIMEDOUT);
			el = shmq_now_ns() - t0;
			assert_true(el >= ts[i]); /* never early */
			ok = el <= slack || el <= slack + tu_os_lateness(ts[i]);
			assert_int_equal(shmq_barrier_reset(b), 0);
		}
		assert_true(ok);
	}
	shmq_barrier_close(b);
}

static void test_abort(void **state)
{
	struct tu_region *f = *state;
	shmq_barrier *b;
	pid_t pid;

	assert_int_equal(shmq_barrier_create(f->r, "b", 2, &b), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_barrier *cb = child_barrier(f->name, &r);

		_exit(shmq_barrier_wait(cb, 10000 * MS) == -EPIPE ? 0 : 1);
	}
	while (shmq_barrier_n_waiting(b) != 1)
		sleep_ms(1);
	assert_int_equal(shmq_barrier_abort(b), 0);
	assert_int_equal(tu_wait_child(pid), 0);
	assert_true(shmq_barrier_broken(b));
	assert_int_equal(shmq_barrier_wait(b, SHMQ_FOREVER), -EPIPE);
	assert_int_equal(shmq_barrier_reset(b), 0);
	/* after the reset, two parties pass with indices 0 and 1 */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_barrier *cb = child_barrier(f->name, &r);

		_exit(10 + shmq_barrier_wait(cb, 10000 * MS));
	}
	{
		int rc = shmq_barrier_wait(b, 10000 * MS);
		int crc = tu_wait_child(pid) - 10;

		assert_true(rc >= 0 && crc >= 0);
		assert_int_equal(rc + crc, 1);
	}
	shmq_barrier_close(b);
}

/* reset while a party waits: that party gets -EPIPE, then the barrier works. */
static void test_reset_while_waiting(void **state)
{
	struct tu_region *f = *state;
	shmq_barrier *b;
	pid_t pid;

	assert_int_equal(shmq_barrier_create(f->r, "b", 2, &b), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_barrier *cb = child_barrier(f->name, &r);

		if (shmq_barrier_wait(cb, 10000 * MS) != -EPIPE)
			_exit(1);
		/* then meet the parent in the next generation */
		_exit(shmq_barrier_wait(cb, 10000 * MS) >= 0 ? 0 : 2);
	}
	while (shmq_barrier_n_waiting(b) != 1)
		sleep_ms(1);
	assert_int_equal(shmq_barrier_reset(b), 0);
	assert_false(shmq_barrier_broken(b));
	assert_true(shmq_barrier_wait(b, 10000 * MS) >= 0);
	assert_int_equal(tu_wait_child(pid), 0);
	shmq_barrier_close(b);
}

struct tparty {
	shmq_barrier *b;
	int rc;
};

static void *thread_party(void *p)
{
	struct tparty *t = p;

	t->rc = shmq_barrier_wait(t->b, 10000 * MS);
	return NULL;
}

/* A generation of a 2-party barrier b passed by the caller and a thread of
 * its own: both pass, with different arrival indices. */
static void pass_with_thread(shmq_barrier *b)
{
	struct tparty t = { .b = b, .rc = -1000 };
	pthread_t th;
	int rc;

	assert_int_equal(pthread_create(&th, NULL, thread_party, &t), 0);
	rc = shmq_barrier_wait(b, 10000 * MS);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_true(rc >= 0 && t.rc >= 0 && rc != t.rc);
}

/* A waiter that reset cut short, stopped until the next generation has
 * completed with another party in its place (RESET is gone from the word
 * by then): it still gets -EPIPE, never a pass it did not make.  Again
 * after abort + reset. */
static void test_reset_cut_short_waiter_late(void **state)
{
	struct tu_region *f = *state;
	shmq_barrier *b;

	assert_int_equal(shmq_barrier_create(f->r, "b", 2, &b), 0);
	for (int round = 0; round < 2; round++) {
		struct tparty t = { .b = b };
		pthread_t th;
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0) {
			shmq_region *r;
			shmq_barrier *cb = child_barrier(f->name, &r);

			_exit(shmq_barrier_wait(cb, 20000 * MS) == -EPIPE ? 0 : 1);
		}
		while (shmq_barrier_n_waiting(b) != 1)
			sleep_ms(1);
		sleep_ms(20); /* most likely asleep; stopped anywhere will do */
		assert_int_equal(kill(pid, SIGSTOP), 0);
		if (round == 1)
			assert_int_equal(shmq_barrier_abort(b), 0);
		assert_int_equal(shmq_barrier_reset(b), 0);
		/* the next generation: this thread and another take the two places */
		assert_int_equal(pthread_create(&th, NULL, thread_party, &t), 0);
		assert_true(shmq_barrier_wait(b, 10000 * MS) >= 0);
		assert_int_equal(pthread_join(th, NULL), 0);
		assert_true(t.rc >= 0);
		assert_int_equal(kill(pid, SIGCONT), 0);
		assert_int_equal(tu_wait_child(pid), 0);
	}
	shmq_barrier_close(b);
}

/* A child that waits on "b" once, reports on the pipe (*pfd, the read
 * end), then waits to be killed, or with leave closes cleanly and exits. */
static pid_t fork_party(struct tu_region *f, bool leave, int *pfd)
{
	int fds[2];
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_barrier *cb = child_barrier(f->name, &r);

		close(fds[0]);
		if (shmq_barrier_wait(cb, 10000 * MS) < 0)
			_exit(1);
		if (write(fds[1], "x", 1) != 1)
			_exit(2);
		if (leave) {
			shmq_barrier_close(cb);
			shmq_region_close(r);
			_exit(0);
		}
		pause();
		_exit(0);
	}
	close(fds[1]);
	*pfd = fds[0];
	return pid;
}

/* The generation field counts modulo 2^14 (sync/lock_int.h). */
#define GEN_PERIOD 16384

struct gen_runner {
	shmq_barrier *b;
	int n, rc;
};

static void *gens_run(void *p)
{
	struct gen_runner *g = p;

	for (int i = 0; i < g->n && g->rc >= 0; i++)
		g->rc = shmq_barrier_wait(g->b, 10000 * MS);
	return NULL;
}

/* A party stopped asleep (a debugger, job control, a long preemption) while
 * its generation completes and the field comes round to the same value,
 * because other threads went on passing generations without it (a barrier
 * of fewer parties than threads).  When it runs again its generation has
 * passed: its index, at once, and nobody else's generation broken.  Found by
 * an audit: it compared the generation field alone, found its own again,
 * slept on to its timeout, then broke the barrier (-ETIMEDOUT to it, -EPIPE
 * to everybody after); with SHMQ_FOREVER it waited for good.  The count tells
 * the new generation from its own: it never falls within one. */
static void test_generation_wraps_while_stopped(void **state)
{
	struct tu_region *f = *state;
	struct gen_runner g;
	shmq_barrier *b;
	pthread_t th;
	int64_t t0;
	pid_t pid;

	assert_int_equal(shmq_barrier_create(f->r, "b", 2, &b), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_barrier *cb = child_barrier(f->name, &r);

		/* index 0: it arrives first; long enough to pass on a loaded
		 * machine, short enough that old code fails the test soon */
		_exit(shmq_barrier_wait(cb, 3000 * MS) == 0 ? 0 : 1);
	}
	while (shmq_barrier_n_waiting(b) != 1)
		sleep_ms(1);
	sleep_ms(20); /* most likely asleep; stopped anywhere will do */
	assert_int_equal(kill(pid, SIGSTOP), 0);
	assert_int_equal(shmq_barrier_wait(b, 10000 * MS), 1); /* its generation passes */
	/* GEN_PERIOD - 1 more, by this thread and another */
	g = (struct gen_runner){ .b = b, .n = GEN_PERIOD - 1 };
	assert_int_equal(pthread_create(&th, NULL, gens_run, &g), 0);
	for (int i = 0; i < GEN_PERIOD - 1; i++)
		assert_true(shmq_barrier_wait(b, 10000 * MS) >= 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_true(g.rc >= 0);
	t0 = shmq_now_ns();
	assert_int_equal(kill(pid, SIGCONT), 0);
	assert_int_equal(tu_wait_child(pid), 0);
	print_message("stopped party: passed %.1f ms after it ran again\n",
		      (double)(shmq_now_ns() - t0) / MS);
	assert_false(shmq_barrier_broken(b));
	pass_with_thread(b);
	shmq_barrier_close(b);
}

/* A party killed while it waits: the others of its generation get -EPIPE
 * within a slice or so of the death, not at their own timeout; reset then
 * gives a barrier that works for the live parties. */
static void test_party_killed(void **state)
{
	struct tu_region *f = *state;
	shmq_barrier *b;
	pid_t victim;
	int64_t killed, el;
	int rc;

	assert_int_equal(shmq_barrier_create(f->r, "b", 3, &b), 0);
	victim = fork();
	assert_true(victim >= 0);
	if (victim == 0) {
		shmq_region *r;
		shmq_barrier *cb = child_barrier(f->name, &r);

		shmq_barrier_wait(cb, SHMQ_FOREVER);
		_exit(0);
	}
	while (shmq_barrier_n_waiting(b) != 1)
		sleep_ms(1);
	killed = shmq_now_ns();
	kill(victim, SIGKILL);
	rc = shmq_barrier_wait(b, 10000 * MS);
	el = shmq_now_ns() - killed;
	print_message("dead party: -EPIPE %.1f ms after the kill\n", (double)el / MS);
	assert_int_equal(rc, -EPIPE);
	assert_true(el < 2000 * MS);
	assert_int_equal(tu_wait_child(victim), 128 + SIGKILL);
	assert_true(shmq_barrier_broken(b));
	assert_int_equal(shmq_barrier_reset(b), 0);
	assert_false(shmq_barrier_broken(b));
	{
		struct tparty t[2] = { { .b = b, .rc = -1000 }, { .b = b, .rc = -1000 } };
		pthread_t th[2];

		for (int i = 0; i < 2; i++)
			assert_int_equal(pthread_create(&th[i], NULL, thread_party, &t[i]), 0);
		rc = shmq_barrier_wait(b, 10000 * MS);
		for (int i = 0; i < 2; i++) {
			assert_int_equal(pthread_join(th[i], NULL), 0);
			assert_true(t[i].rc >= 0);
		}
		assert_true(rc >= 0);
	}
	shmq_barrier_close(b);
}

/* A party killed asleep never took its sleeper count back: old code kept it
 * for good, and every generation's end after it made a futex-wake system
 * call for nobody.  The wake that ends its generation (it had arrived)
 * finds nobody asleep and takes its listed entry out, with its count; the
 * parties after it pass as before. */
static void test_party_killed_asleep_uncounted(void **state)
{
	struct tu_region *f = *state;
	struct shmq__barrier_shm *s;
	shmq_barrier *b;
	void *mem;
	pid_t victim;

	assert_int_equal(shmq_barrier_create(f->r, "b", 2, &b), 0);
	assert_int_equal(shmq__obj_find(f->r, "b", SHMQ__OBJ_BARRIER, &mem, NULL), 0);
	s = mem;
	victim = fork();
	assert_true(victim >= 0);
	if (victim == 0) {
		shmq_region *r;
		shmq_barrier *cb = child_barrier(f->name, &r);

		shmq_barrier_wait(cb, SHMQ_FOREVER);
		_exit(0);
	}
	while (__atomic_load_n(&s->sleepers, __ATOMIC_SEQ_CST) < 1)
		sleep_ms(1);
	tu_kill_listed_sleeper(victim, &s->sleepers, s->sleeper_ids);
	/* it had arrived: our arrival ends the generation, and its wake finds
	 * nobody asleep */
	assert_true(shmq_barrier_wait(b, 10000 * MS) >= 0);
	assert_int_equal(__atomic_load_n(&s->sleepers, __ATOMIC_SEQ_CST), 0);
	pass_with_thread(b);
	shmq_barrier_close(b);
}

/* A party that dies between generations (not waiting) still breaks the
 * next one; after reset, the live parties pass again. */
static void test_party_dead_between(void **state)
{
	struct tu_region *f = *state;
	shmq_barrier *b;
	int64_t t0, el;
	pid_t pid;
	int fd, rc;
	char c;

	assert_int_equal(shmq_barrier_create(f->r, "b", 2, &b), 0);
	pid = fork_party(f, false, &fd);
	assert_true(shmq_barrier_wait(b, 10000 * MS) >= 0); /* with the child */
	assert_int_equal(read(fd, &c, 1), 1);
	close(fd);
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	t0 = shmq_now_ns();
	rc = shmq_barrier_wait(b, 10000 * MS);
	el = shmq_now_ns() - t0;
	print_message("party dead before the generation: -EPIPE after %.1f ms\n",
		      (double)el / MS);
	assert_int_equal(rc, -EPIPE);
	assert_true(el < 2000 * MS);
	assert_int_equal(shmq_barrier_reset(b), 0);
	pass_with_thread(b);
	shmq_barrier_close(b);
}

/* Waiters that sleep whole slices look for dead parties, a /proc read per
 * other party: one waiter a slice does it for all of them.  Before, every
 * waiter did, so n idle waiters of n processes made n^2 reads a slice (64
 * kept one of 2 cores busy).  Here IDLE_WAITERS threads of this process wait
 * for a party that never comes, with IDLE_KIDS other live parties: the
 * reads this process makes are bounded by one scan of the kids per slice of
 * the time they waited, not one per waiter. */
#define IDLE_WAITERS 8
#define IDLE_KIDS    4
#define IDLE_SLICE   (10 * MS) /* BARRIER_SLICE_NS */

static void *idle_party(void *p)
{
	struct tparty *t = p;

	t->rc = shmq_barrier_wait(t->b, 300 * MS);
	return NULL;
}

static void test_idle_waiters_share_scans(void **state)
{
	struct tu_region *f = *state;
	struct tparty t[IDLE_WAITERS];
	pthread_t th[IDLE_WAITERS];
	pid_t kid[IDLE_KIDS];
	unsigned long reads;
	int64_t t0, el;
	shmq_barrier *b;
	int fd[IDLE_KIDS];
	char c;

	assert_int_equal(shmq_barrier_create(f->r, "b", IDLE_WAITERS + 1, &b), 0);
	/* a first generation makes the kids parties: they pass it with threads
	 * of ours, then stay alive without waiting */
	for (int i = 0; i < IDLE_KIDS; i++)
		kid[i] = fork_party(f, false, &fd[i]);
	for (int i = 0; i < IDLE_WAITERS + 1 - IDLE_KIDS; i++) {
		t[i] = (struct tparty){ .b = b, .rc = -1000 };
		assert_int_equal(pthread_create(&th[i], NULL, thread_party, &t[i]), 0);
	}
	for (int i = 0; i < IDLE_WAITERS + 1 - IDLE_KIDS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_true(t[i].rc >= 0);
	}
	for (int i = 0; i < IDLE_KIDS; i++) {
		assert_int_equal(read(fd[i], &c, 1), 1);
		close(fd[i]);
	}
	reads = spy_proc_stat_count();
	t0 = shmq_now_ns();
	for (int i = 0; i < IDLE_WAITERS; i++) {
		t[i] = (struct tparty){ .b = b, .rc = -1000 };
		assert_int_equal(pthread_create(&th[i], NULL, idle_party, &t[i]), 0);
	}
	for (int i = 0; i < IDLE_WAITERS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_true(t[i].rc == -ETIMEDOUT || t[i].rc == -EPIPE);
	}
	el = shmq_now_ns() - t0;
	reads = spy_proc_stat_count() - reads;
	print_message("%d idle waiters, %d other parties: %lu /proc reads in %.1f ms\n",
		      IDLE_WAITERS, IDLE_KIDS, reads, (double)el / MS);
	/* scans at least a slice apart, each reading every kid once */
	assert_true(reads <= (unsigned long)IDLE_KIDS * (unsigned long)(el / IDLE_SLICE + 2));
	for (int i = 0; i < IDLE_KIDS; i++) {
		kill(kid[i], SIGKILL);
		assert_int_equal(tu_wait_child(kid[i]), 128 + SIGKILL);
	}
	shmq_barrier_close(b);
}

/* A party that closes its handle after its last wait and exits breaks
 * nothing: the next generation waits for real arrivals (and times out as
 * usual when none come). */
static void test_party_leaves_cleanly(void **state)
{
	struct tu_region *f = *state;
	struct tparty t;
	shmq_barrier *b;
	pthread_t th;
	pid_t pid;
	int fd, rc;
	char c;

	assert_int_equal(shmq_barrier_create(f->r, "b", 2, &b), 0);
	pid = fork_party(f, true, &fd);
	assert_true(shmq_barrier_wait(b, 10000 * MS) >= 0);
	assert_int_equal(read(fd, &c, 1), 1);
	close(fd);
	assert_int_equal(tu_wait_child(pid), 0);
	/* nobody else arrives for 150 ms (15 slices): no -EPIPE meanwhile */
	assert_int_equal(shmq_barrier_wait(b, 150 * MS), -ETIMEDOUT);
	assert_int_equal(shmq_barrier_reset(b), 0);
	t = (struct tparty){ .b = b, .rc = -1000 };
	assert_int_equal(pthread_create(&th, NULL, thread_party, &t), 0);
	rc = shmq_barrier_wait(b, 10000 * MS);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_true(rc >= 0 && t.rc >= 0);
	shmq_barrier_close(b);
}

static void test_one_party_and_nowait(void **state)
{
	struct tu_region *f = *state;
	shmq_barrier *b;

	assert_int_equal(shmq_barrier_create(f->r, "b", 1, &b), 0);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(shmq_barrier_wait(b, SHMQ_NOWAIT), 0);
		assert_int_equal(shmq_barrier_wait(b, SHMQ_FOREVER), 0);
	}
	shmq_barrier_close(b);
}

/* ---- placement, corruption ------------------------------------------------ */

static void test_placement_and_corruption(void **state)
{
	struct tu_region *f = *state;
	uint8_t *mem;
	struct shmq__barrier_shm *s;
	shmq_barrier *b;
	size_t fp = shmq_barrier_footprint();

	assert_true(fp % 64 == 0);
	assert_int_equal(shmq__obj_create(f->r, "placed", SHMQ__OBJ_BLOB, fp, NULL, NULL,
					  (void **)&mem), 0);
	assert_int_equal(shmq_barrier_attach(mem, &b), -EBADMSG);
	assert_int_equal(shmq_barrier_init(mem, 0), -EINVAL);
	assert_int_equal(shmq_barrier_init(mem + 2, 2), -EINVAL);
	assert_int_equal(shmq_barrier_init(mem, 1), 0);
	assert_int_equal(shmq_barrier_attach(mem, &b), 0);
	assert_int_equal(shmq_barrier_wait(b, SHMQ_NOWAIT), 0);
	s = (struct shmq__barrier_shm *)mem;
	/* a count at or above parties */
	s->word = 7;
	assert_int_equal(shmq_barrier_wait(b, SHMQ_NOWAIT), -EBADMSG);
	assert_int_equal(shmq_barrier_reset(b), 0);
	assert_int_equal(shmq_barrier_wait(b, SHMQ_NOWAIT), 0);
	shmq_barrier_close(b);
	/* parties out of range, wrong magic */
	s->parties = 0;
	assert_int_equal(shmq_barrier_attach(mem, &b), -EBADMSG);
	s->parties = 70000;
	assert_int_equal(shmq_barrier_attach(mem, &b), -EBADMSG);
	s->parties = 2;
	s->magic ^= 0x100; /* not "BAR" */
	assert_int_equal(shmq_barrier_attach(mem, &b), -EBADMSG);
	s->magic ^= 0x100;
	/* ours at another layout: 0.1's "BARR", or a later tag */
	s->magic = 0x42415252u;
	assert_int_equal(shmq_barrier_attach(mem, &b), -EPROTO);
	s->magic = SHMQ__BARRIER_MAGIC + 1;
	assert_int_equal(shmq_barrier_attach(mem, &b), -EPROTO);
}

/* The last arriver killed between its RMW (the generation ends) and its
 * wake: a placed barrier has no party table, yet its sleeper must return
 * promptly, not at its deadline (the RMW is made here by hand). */
static void *placed_waiter(void *p)
{
	return (void *)(intptr_t)shmq_barrier_wait(p, 10000 * MS);
}

static void test_last_arriver_died_before_wake(void **state)
{
	struct tu_region *f = *state;
	struct shmq__barrier_shm *s;
	struct timespec ts;
	shmq_barrier *b;
	pthread_t th;
	uint8_t *mem;
	uint32_t w;
	void *rc;
	int64_t end;

	assert_int_equal(shmq__obj_create(f->r, "placed2", SHMQ__OBJ_BLOB, shmq_barrier_footprint(),
					  NULL, NULL, (void **)&mem), 0);
	assert_int_equal(shmq_barrier_init(mem, 2), 0);
	assert_int_equal(shmq_barrier_attach(mem, &b), 0);
	s = (struct shmq__barrier_shm *)mem;
	assert_int_equal(pthread_create(&th, NULL, placed_waiter, b), 0);
	end = shmq_now_ns() + 10000 * MS;
	while (__atomic_load_n(&s->sleepers, __ATOMIC_SEQ_CST) < 1 && shmq_now_ns() < end)
		usleep(1000);
	usleep(2000); /* from counted to inside futex_wait */
	/* the second arrival's RMW: the generation ends, count back to 0 */
	w = __atomic_load_n(&s->word, __ATOMIC_SEQ_CST);
	assert_int_equal(w & SHMQ__BARRIER_COUNT_MASK, 1);
	__atomic_store_n(&s->word, (w & ~(SHMQ__BARRIER_GEN_ONE - 1u)) + SHMQ__BARRIER_GEN_ONE,
			 __ATOMIC_SEQ_CST);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 2; /* "promptly" (a slice is 10 ms) */
	if (pthread_timedjoin_np(th, &rc, &ts) != 0) {
		assert_int_equal(pthread_join(th, &rc), 0);
		fail_msg("a waiter slept on through the end of its generation");
	}
	assert_int_equal((intptr_t)rc, 0); /* the first arrival's index */
	shmq_barrier_close(b);
}

/* A named barrier's party table: an entry naming an impossible owner is
 * -EBADMSG for a waiter that checks it; a size too small for nslots is
 * refused at open. */
static void test_party_table_corrupt(void **state)
{
	struct tu_region *f = *state;
	struct shmq__barrier_shm *s;
	shmq_barrier *b, *b2;
	uint64_t *party;
	void *mem;

	assert_int_equal(shmq_barrier_create(f->r, "b", 2, &b), 0);
	assert_int_equal(shmq__obj_find(f->r, "b", SHMQ__OBJ_BARRIER, &mem, NULL), 0);
	s = mem;
	party = (uint64_t *)(s + 1);
	party[s->nslots - 1] = (uint64_t)5 << 32 | 1; /* owner id 5: generation 0 */
	assert_int_equal(shmq_barrier_wait(b, 10000 * MS), -EBADMSG);
	party[s->nslots - 1] = 0;
	s->nslots = SHMQ__BARRIER_SLOTS_MAX + 1;
	assert_int_equal(shmq_barrier_open(f->r, "b", &b2), -EBADMSG);
	s->nslots = 1000; /* inside the limit, beyond the object */
	assert_int_equal(shmq_barrier_open(f->r, "b", &b2), -EBADMSG);
	s->nslots = 8;
	/* parties rewritten: the table (8 entries, for 2) says otherwise; a
	 * handle that believed 40 would hand out indices up to 39 */
	s->parties = 40;
	assert_int_equal(shmq_barrier_open(f->r, "b", &b2), -EBADMSG);
	s->parties = 2;
	assert_int_equal(shmq_barrier_open(f->r, "b", &b2), 0);
	assert_int_equal(shmq_barrier_parties(b2), 2);
	shmq_barrier_close(b2);
	shmq_barrier_close(b);
}

/* ---- hostile writes ------------------------------------------------------ */

/* One call made under tu_cas_hostile (testutil.h), in the child. */
struct hostile_call {
	const char *name;
	shmq_barrier *b;
	int64_t timeout; /* wait's; reset when -2 */
};

static void *hostile_open(void *p, uint32_t **word)
{
	struct hostile_call *c = p;
	shmq_region *r;
	void *mem;

	c->b = child_barrier(c->name, &r);
	if (shmq__obj_find(r, "b", SHMQ__OBJ_BARRIER, &mem, NULL))
		return NULL;
	*word = &((struct shmq__barrier_shm *)mem)->word;
	return c;
}

static int hostile_do(void *p)
{
	struct hostile_call *c = p;

	return c->timeout == -2 ? shmq_barrier_reset(c->b) : shmq_barrier_wait(c->b, c->timeout);
}

/* A hostile process that rewrites the word each time a call touches it
 * (a new generation each time: every CAS loses) does not keep a waiter
 * spinning: SHMQ_NOWAIT (as the last arrival) gives -EAGAIN and a 50 ms
 * timeout -ETIMEDOUT within 2 s; SHMQ_FOREVER and reset give -EBADMSG
 * after a bounded number of lost CASes. */
static void test_hostile_word(void **state)
{
	struct tu_region *f = *state;
	struct hostile_call c = { .name = f->name };
	static const uint32_t zero = 0, two = 2;
	struct shmq__barrier_shm *s;
	shmq_barrier *b;
	int64_t took;
	void *mem;
	int rc;

	assert_int_equal(shmq_barrier_create(f->r, "b", 3, &b), 0);
	assert_int_equal(shmq__obj_find(f->r, "b", SHMQ__OBJ_BARRIER, &mem, NULL), 0);
	s = mem;
	/* two arrived: the caller is the last, whose CAS ends the generation */
	c.timeout = SHMQ_NOWAIT;
	__atomic_store_n(&s->word, two, __ATOMIC_SEQ_CST);
	rc = tu_cas_hostile(&s->word, &two, SHMQ__BARRIER_GEN_ONE, hostile_open, hostile_do, &c,
			    20000 * MS, &took);
	if (rc == TU_HOSTILE_NO_PTRACE)
		skip();
	print_message("NOWAIT: %d after %lld ms\n", rc, (long long)(took / MS));
	assert_int_equal(rc, -EAGAIN);
	assert_true(took < 2000 * MS);
	/* none arrived: the caller's CAS arrives */
	c.timeout = 50 * MS;
	__atomic_store_n(&s->word, zero, __ATOMIC_SEQ_CST);
	rc = tu_cas_hostile(&s->word, &zero, SHMQ__BARRIER_GEN_ONE, hostile_open, hostile_do, &c,
			    20000 * MS, &took);
	print_message("50 ms: %d after %lld ms\n", rc, (long long)(took / MS));
	assert_int_equal(rc, -ETIMEDOUT);
	assert_true(took < 2000 * MS);
	c.timeout = SHMQ_FOREVER;
	__atomic_store_n(&s->word, zero, __ATOMIC_SEQ_CST);
	rc = tu_cas_hostile(&s->word, &zero, SHMQ__BARRIER_GEN_ONE, hostile_open, hostile_do, &c,
			    20000 * MS, &took);
	print_message("FOREVER: %d after %lld ms\n", rc, (long long)(took / MS));
	assert_int_equal(rc, -EBADMSG);
	c.timeout = -2;
	__atomic_store_n(&s->word, zero, __ATOMIC_SEQ_CST);
	rc = tu_cas_hostile(&s->word, &zero, SHMQ__BARRIER_GEN_ONE, hostile_open, hostile_do, &c,
			    20000 * MS, &took);
	print_message("reset: %d after %lld ms\n", rc, (long long)(took / MS));
	assert_int_equal(rc, -EBADMSG);
	/* a sane word works as before */
	__atomic_store_n(&s->word, 0, __ATOMIC_SEQ_CST);
	assert_int_equal(shmq_barrier_reset(b), 0);
	assert_int_equal(shmq_barrier_wait(b, SHMQ_NOWAIT), -EAGAIN);
	shmq_barrier_close(b);
}

int main(void)
{
	alarm(240); /* a hang fails the program instead of stalling the suite */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_args, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_generations_processes, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_generations_threads, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_timeout_breaks, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_timeout_accuracy, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_abort, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_reset_while_waiting, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_reset_cut_short_waiter_late, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_generation_wraps_while_stopped, setup,
						tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_party_killed, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_party_killed_asleep_uncounted, setup,
						tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_party_dead_between, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_party_leaves_cleanly, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_idle_waiters_share_scans, setup,
						tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_party_table_corrupt, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_one_party_and_nowait, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_last_arriver_died_before_wake, setup,
						tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_placement_and_corruption, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_hostile_word, setup, tu_region_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
