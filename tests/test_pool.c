/* SPDX-License-Identifier: MIT */
/* Pools: map in order (copied and in place), async handles, uneven costs
 * balanced by stealing, fork-join fib through subtasks, task errors, a
 * worker SIGKILLed mid-map, terminate, close/join, nothing left behind, an
 * idle worker that stops spinning when work only comes now and then, and
 * looks for work once per idle period then; a small job runs without the
 * arena. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proc_spy.h"
#include "testutil.h"

#include "core/atomic_int.h"
#include "core/objkind_int.h"
#include "core/region_int.h"
#include "pool/pool_int.h"
#include "pool/pool_layout_int.h"

#define NWORKERS 2
#define REGION_SIZE ((size_t)64 << 20)

/*
 * poll(2), counted while polls_counting is set.  Defined here, it takes libc's
 * place for the library too: how a test sees whether the creator's looks for
 * dead workers make a system call.  Only the test's own thread counts; other
 * threads of some tests call it too, so both words are atomics (relaxed: no
 * data is published through them).
 */
static uint32_t polls_counting, polls_seen;

int poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
	struct timespec ts, *tp = NULL;

	if (shmq__load_relaxed(&polls_counting))
		shmq__fetch_add_relaxed(&polls_seen, 1u);
	if (timeout_ms >= 0) {
		ts.tv_sec = timeout_ms / 1000;
		ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
		tp = &ts;
	}
	return (int)syscall(SYS_ppoll, fds, n, tp, NULL, (size_t)(_NSIG / 8));
}

static void polls_count(bool on)
{
	if (on)
		shmq__store_relaxed(&polls_seen, 0u);
	shmq__store_relaxed(&polls_counting, on ? 1u : 0u);
}

/* waitid(2), counted the same way: the creator asks it whether a worker
 * lives when that worker's pin keeps a job from being released. */
static uint32_t waitids_counting, waitids_seen;

int waitid(idtype_t type, id_t id, siginfo_t *si, int options)
{
	if (shmq__load_relaxed(&waitids_counting))
		shmq__fetch_add_relaxed(&waitids_seen, 1u);
	return (int)syscall(SYS_waitid, type, id, si, options, NULL);
}

static void waitids_count(bool on)
{
	if (on)
		shmq__store_relaxed(&waitids_seen, 0u);
	shmq__store_relaxed(&waitids_counting, on ? 1u : 0u);
}

/* ---- tasks ---- */

static int triple(const void *in, void *out)
{
	*(int64_t *)out = *(const int64_t *)in * 3 + 1;
	return 0;
}
SHMQ_TASK(triple);

/* out: the CPU the task started on */
static int where(const void *in, void *out)
{
	(void)in;
	*(int32_t *)out = sched_getcpu();
	return 0;
}
SHMQ_TASK(where);

/* Two different tasks under one name: refused by name, never picked by
 * registration order (core/registry_int.h).  twin_a goes in twice, a no-op
 * the second time, as does once_task, which stays usable. */
static struct shmq_task twin_a = { "twin_task", triple, NULL };
static struct shmq_task twin_b = { "twin_task", triple, NULL };
static struct shmq_task once_task = { "once_task", triple, NULL };

__attribute__((constructor)) static void twins_register(void)
{
	shmq_task_register(&twin_a);
	shmq_task_register(&twin_a);
	shmq_task_register(&twin_b);
	shmq_task_register(&once_task);
	shmq_task_register(&once_task);
}

/* The worker side of the twins: what a spawn of the ambiguous name says. */
static int twin_spawner(const void *in, void *out)
{
	struct shmq_pool_group g = SHMQ_POOL_GROUP_INIT;
	int64_t v = 1, res = 0;

	(void)in;
	*(int *)out = shmq_pool_spawn(&g, "twin_task", &v, sizeof(v), &res, sizeof(res));
	return shmq_pool_sync(&g);
}
SHMQ_TASK(twin_spawner);

/* Busy work the optimiser cannot drop. */
static uint64_t burn(uint64_t iters, uint64_t x)
{
	for (uint64_t i = 0; i < iters; i++)
		x = x * 6364136223846793005ull + 1442695040888963407ull;
	return x;
}

struct uneven_out {
	uint64_t v;
	int32_t worker;
	int32_t pad;
};

#define LIGHT 2000u
#define HEAVY (LIGHT * 1000u)

static bool is_heavy(uint32_t i)
{
	return i % 100 == 37; /* 1% of the tasks */
}

static int uneven(const void *in, void *out)
{
	uint32_t i = *(const uint32_t *)in;
	struct uneven_out *o = out;

	o->v = burn(is_heavy(i) ? HEAVY : LIGHT, i);
	o->worker = shmq_pool_self();
	return 0;
}
SHMQ_TASK(uneven);

static int fib(const void *in, void *out)
{
	int n = *(const int *)in, n1 = n - 1, n2 = n - 2, a = 0, b = 0, rc;
	struct shmq_pool_group g = SHMQ_POOL_GROUP_INIT;

	if (n < 2) {
		*(int *)out = n;
		return 0;
	}
	rc = shmq_pool_spawn(&g, "fib", &n1, sizeof(n1), &a, sizeof(a));
	if (rc)
		return rc;
	rc = fib(&n2, &b);
	if (rc)
		return rc;
	rc = shmq_pool_sync(&g);
	*(int *)out = a + b;
	return rc;
}
SHMQ_TASK(fib);

static int fib_serial(int n)
{
	return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2);
}

/* Fails with -EDOM on every element whose value ends in 537 (mod 1000). */
static int picky(const void *in, void *out)
{
	int64_t v = *(const int64_t *)in;

	*(int64_t *)out = v + 1;
	return v % 1000 == 537 ? -EDOM : 0;
}
SHMQ_TASK(picky);

/* A subtask that fails, and a parent that reports it through sync. */
static int sub_fail(const void *in, void *out)
{
	(void)out;
	return *(const int *)in == 3 ? -ERANGE : 0;
}
SHMQ_TASK(sub_fail);

static int sub_parent(const void *in, void *out)
{
	struct shmq_pool_group g = SHMQ_POOL_GROUP_INIT;
	int v[8], rc;

	(void)in;
	for (int i = 0; i < 8; i++) {
		v[i] = i;
		rc = shmq_pool_spawn(&g, "sub_fail", &v[i], sizeof(int), NULL, 0);
		if (rc)
			return rc;
	}
	rc = shmq_pool_sync(&g);
	*(int *)out = rc;
	/* misuse is refused */
	if (shmq_pool_spawn(&g, "no_such_task", &v[0], sizeof(int), NULL, 0) != -ENOENT)
		return -EPROTO;
	if (shmq_pool_spawn(&g, "sub_fail", v, SHMQ_POOL_SPAWN_MAX + 1, NULL, 0) != -EMSGSIZE)
		return -EPROTO;
	return 0;
}
SHMQ_TASK(sub_parent);

/* A status that is no negative errno: 7, or -5000 (below -4095). */
static int odd_status(const void *in, void *out)
{
	int64_t v = *(const int64_t *)in;

	*(int64_t *)out = v;
	return v == 3 ? 7 : v == 5 ? -5000 : 0;
}
SHMQ_TASK(odd_status);

/* Spawns odd_status on its input and reports what sync returned. */
static int odd_parent(const void *in, void *out)
{
	struct shmq_pool_group g = SHMQ_POOL_GROUP_INIT;
	int64_t sub_out;
	int rc = shmq_pool_spawn(&g, "odd_status", in, sizeof(int64_t), &sub_out, sizeof(sub_out));

	if (rc)
		return rc;
	*(int64_t *)out = shmq_pool_sync(&g);
	return 0;
}
SHMQ_TASK(odd_parent);

/* Copies the first 8 bytes of its input to its output. */
static int head8(const void *in, void *out)
{
	memcpy(out, in, 8);
	return 0;
}
SHMQ_TASK(head8);

/* Tasks of names of 63 and 64 characters: the registry keeps the first. */
static int task_name_of_sixty_three_characters_xxxxxxxxxxxxxxxxxxxxxxxxxxx(const void *in, void *out)
{
	*(int64_t *)out = *(const int64_t *)in + 63;
	return 0;
}
SHMQ_TASK(task_name_of_sixty_three_characters_xxxxxxxxxxxxxxxxxxxxxxxxxxx);
static int task_name_of_sixty_four_characters_xxxxxxxxxxxxxxxxxxxxxxxxxxxxx(const void *in, void *out)
{
	*(int64_t *)out = *(const int64_t *)in + 64;
	return 0;
}
SHMQ_TASK(task_name_of_sixty_four_characters_xxxxxxxxxxxxxxxxxxxxxxxxxxxxx);

/* What spawn, sync and self said where no task runs: in another thread of
 * the worker's process, and in a child the task made with fork(). */
struct off_task {
	int spawn, sync, self;
};

static void off_task_try(struct off_task *o)
{
	struct shmq_pool_group g = SHMQ_POOL_GROUP_INIT;
	int v = 10, res = 0;

	o->spawn = shmq_pool_spawn(&g, "fib", &v, sizeof(v), &res, sizeof(res));
	o->sync = shmq_pool_sync(&g);
	o->self = shmq_pool_self();
}

static void *off_task_thread(void *arg)
{
	off_task_try(arg);
	return NULL;
}

/* out: two struct off_task, the thread's then the child's */
static int off_task_spawner(const void *in, void *out)
{
	struct off_task *o = out;
	pthread_t t;
	int fds[2];
	pid_t pid;

	(void)in;
	if (pthread_create(&t, NULL, off_task_thread, &o[0]) || pthread_join(t, NULL))
		return -EAGAIN;
	if (pipe(fds))
		return -errno;
	pid = fork();
	if (pid == 0) {
		off_task_try(&o[1]);
		_exit(write(fds[1], &o[1], sizeof(o[1])) == (ssize_t)sizeof(o[1]) ? 0 : 1);
	}
	close(fds[1]);
	if (pid < 0 || read(fds[0], &o[1], sizeof(o[1])) != (ssize_t)sizeof(o[1]))
		o[1].spawn = INT_MIN;
	close(fds[0]);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	return 0;
}
SHMQ_TASK(off_task_spawner);

/* out: the element's value doubled, and for element 1 how the child the
 * task forked ended: a child that returns from the task instead of calling
 * _exit() (it writes -777 first) must not go on as the worker. */
struct fork_ret {
	int64_t v;
	int child_status;
};

static int fork_returner(const void *in, void *out)
{
	int64_t v = *(const int64_t *)in;
	struct fork_ret *o = out;
	pid_t pid;

	o->child_status = -1;
	if (v == 1) {
		pid = fork();
		if (pid == 0) {
			o->v = -777;
			return 0; /* the misuse: back into the worker's loop */
		}
		if (pid < 0 || waitpid(pid, &o->child_status, 0) != pid)
			return -ECHILD;
	}
	o->v = v * 2;
	return 0;
}
SHMQ_TASK(fork_returner);

/* Slow elements: ~0.2 ms each, for kills and terminate mid-map. */
static int slow(const void *in, void *out)
{
	int64_t v = *(const int64_t *)in;
	int64_t t0 = shmq_now_ns();

	while (shmq_now_ns() - t0 < 200000)
		;
	*(int64_t *)out = v * 7;
	return 0;
}
SHMQ_TASK(slow);

/* Napping elements: they take wall time without taking a CPU from the
 * 2-core machine, so a job that must still be running when the test looks
 * can be made long without slowing anything else down. */
static int nap_for(const void *in, void *out, long ns)
{
	tu_sleep_ns(ns);
	*(int64_t *)out = *(const int64_t *)in * 7;
	return 0;
}

static int nap_1ms(const void *in, void *out)
{
	return nap_for(in, out, 1000000);
}
SHMQ_TASK(nap_1ms);

/* Gated elements: those from GATE_FROM up wait (60 s at most) for the gate
 * file named by GATE_ENV to exist.  A job of them stays unfinished for
 * exactly as long as the test keeps the gate shut, however slowly anything
 * runs (a nap of fixed length would end on its own on a slow enough box). */
#define GATE_ENV "SHMQ_TEST_POOL_GATE"
#define GATE_FROM 100

static int gated(const void *in, void *out)
{
	const char *gate = getenv(GATE_ENV);
	int64_t v = *(const int64_t *)in;

	for (int t = 0; t < 60000 && v >= GATE_FROM && gate && access(gate, F_OK); t++)
		usleep(1000);
	*(int64_t *)out = v * 7;
	return 0;
}
SHMQ_TASK(gated);

/* gated, telling it started: out (in the region, used in place) turns -1 */
static int gated_marked(const void *in, void *out)
{
	/* release: pairs with the acquire load in test_join_nowait_during_join */
	__atomic_store_n((int64_t *)out, -1, __ATOMIC_RELEASE);
	return gated(in, out);
}
SHMQ_TASK(gated_marked);

/* ---- helpers ---- */

/* Shut or open the gate of the gated task (the workers inherited GATE_ENV). */
static void gate_set(bool opened)
{
	const char *gate = getenv(GATE_ENV);
	int fd;

	assert_non_null(gate);
	if (!opened) {
		assert_true(unlink(gate) == 0 || errno == ENOENT);
		return;
	}
	fd = open(gate, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
}

static shmq_region *region_new(void)
{
	struct shmq_region_opts o = { .size = REGION_SIZE };
	shmq_region *r;

	assert_int_equal(shmq_region_create(NULL, &o, &r), 0);
	return r;
}

static shmq_pool *pool_new(shmq_region *r, unsigned workers, size_t chunksize)
{
	struct shmq_pool_opts o = { .workers = workers, .chunksize = chunksize };
	shmq_pool *p;

	assert_int_equal(shmq_pool_create(r, &o, &p), 0);
	assert_int_equal(shmq_pool_workers(p), workers);
	return p;
}

/* Close, join and free; afterwards this process has no child left.  No
 * worker was replaced unless the test killed one (a worker that crashed, say
 * on a sanitizer report, would otherwise go unnoticed). */
static void pool_done_killed(shmq_pool *p, pid_t *pids, unsigned n, uint32_t killed)
{
	struct shmq_pool_worker_stats s;
	uint32_t restarts = 0;
	int st;

	for (unsigned i = 0; i < shmq_pool_workers(p); i++) {
		assert_int_equal(shmq_pool_worker_stats(p, i, &s), 0);
		restarts += s.restarts;
	}
	assert_int_equal(restarts, killed);

	assert_int_equal(shmq_pool_close(p), 0);
	assert_int_equal(shmq_pool_join(p, 10 * 1000000000ll), 0);
	shmq_pool_free(p);
	assert_int_equal(waitpid(-1, &st, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	for (unsigned i = 0; pids && i < n; i++)
		assert_int_equal(kill(pids[i], 0), -1);
}

static void pool_done(shmq_pool *p, pid_t *pids, unsigned n)
{
	pool_done_killed(p, pids, n, 0);
}

/* Wait until every worker process has attached (a fresh pool's workers
 * start at their own pace; a test about balance must not race that). */
static void pool_wait_started(shmq_pool *p)
{
	struct shmq_pool_worker_stats s;

	for (unsigned i = 0; i < shmq_pool_workers(p); i++) {
		for (int t = 0; t < 30000; t++) {
			assert_int_equal(shmq_pool_worker_stats(p, i, &s), 0);
			if (s.started)
				break;
			usleep(1000);
		}
		assert_true(s.started);
	}
}

static uint64_t tasks_done(shmq_pool *p)
{
	struct shmq_pool_worker_stats s;
	uint64_t n = 0;

	for (unsigned i = 0; i < shmq_pool_workers(p); i++) {
		assert_int_equal(shmq_pool_worker_stats(p, i, &s), 0);
		n += s.tasks;
	}
	return n;
}

/* Wait (30 s at most) until the workers have run more than before tasks:
 * a job submitted since is under way. */
static void wait_under_way(shmq_pool *p, uint64_t before)
{
	for (int t = 0; t < 30000; t++) {
		if (tasks_done(p) > before)
			return;
		usleep(1000);
	}
	fail_msg("the job never got under way");
}

static void pids_of(shmq_pool *p, pid_t *pids)
{
	struct shmq_pool_worker_stats s;

	for (unsigned i = 0; i < shmq_pool_workers(p); i++) {
		assert_int_equal(shmq_pool_worker_stats(p, i, &s), 0);
		pids[i] = s.pid;
		assert_true(s.pid > 0);
	}
}

/* ---- tests ---- */

#define BIG 1000000u

static void test_map_million_in_order(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, NWORKERS, 0);
	int64_t *in = malloc(BIG * sizeof(int64_t)), *out = malloc(BIG * sizeof(int64_t));
	pid_t pids[NWORKERS];

	(void)state;
	assert_non_null(in);
	assert_non_null(out);
	pids_of(p, pids);
	for (uint32_t i = 0; i < BIG; i++) {
		in[i] = i;
		out[i] = -1;
	}
	assert_int_equal(shmq_pool_map(p, "triple", in, sizeof(int64_t), out, sizeof(int64_t),
				       BIG, SHMQ_FOREVER), 0);
	for (uint32_t i = 0; i < BIG; i++)
		if (out[i] != (int64_t)i * 3 + 1)
			fail_msg("out[%u] = %lld", i, (long long)out[i]);
	/* the same with chunks of 1000 and an empty map */
	memset(out, 0, BIG * sizeof(int64_t));
	assert_int_equal(shmq_pool_map(p, "triple", in, sizeof(int64_t), out, sizeof(int64_t),
				       BIG / 10, SHMQ_FOREVER), 0);
	assert_int_equal(out[BIG / 10 - 1], (int64_t)(BIG / 10 - 1) * 3 + 1);
	assert_int_equal(out[BIG / 10], 0);
	assert_int_equal(shmq_pool_map(p, "triple", in, sizeof(int64_t), out, sizeof(int64_t), 0,
				       SHMQ_FOREVER), 0);
	assert_int_equal(shmq_pool_map(p, "no_such_task", in, sizeof(int64_t), out,
				       sizeof(int64_t), 10, SHMQ_FOREVER), -ENOENT);
	pool_done(p, pids, NWORKERS);
	free(in);
	free(out);
	shmq_region_close(r);
}

/* A chunksize near SIZE_MAX is one chunk of everything.  The creator
 * computed the chunk count as (n + cs - 1) / cs, which wrapped to 0: the
 * workers refuse a job of no chunks, so map, imap and map_async waited for
 * ever (here: to their timeouts) and wrote nothing. */
static void test_huge_chunksize(void **state)
{
	static const size_t sizes[] = { SIZE_MAX, SIZE_MAX - 1, SIZE_MAX / 2 + 2 };
	shmq_region *r = region_new();
	int64_t in[10], out[10], v;
	shmq_async *a;
	shmq_iter *it;
	shmq_pool *p;

	(void)state;
	for (int i = 0; i < 10; i++)
		in[i] = i;
	for (unsigned k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		struct shmq_pool_opts o = { .workers = NWORKERS, .chunksize = sizes[k] };

		assert_int_equal(shmq_pool_create(r, &o, &p), 0);
		memset(out, 0, sizeof(out));
		assert_int_equal(shmq_pool_map(p, "triple", in, sizeof(in[0]), out, sizeof(out[0]),
					       10, 10 * 1000000000ll), 0);
		for (int i = 0; i < 10; i++)
			assert_int_equal(out[i], 3 * i + 1);
		memset(out, 0, sizeof(out));
		assert_int_equal(shmq_pool_map_async(p, "triple", in, sizeof(in[0]), out,
						     sizeof(out[0]), 10, &a), 0);
		assert_int_equal(shmq_async_get(a, 10 * 1000000000ll), 0);
		shmq_async_free(a);
		assert_int_equal(out[9], 28);
		assert_int_equal(shmq_pool_imap(p, "triple", in, sizeof(in[0]), sizeof(v), 10,
						SHMQ_UNORDERED, &it), 0);
		for (int i = 0; i < 10; i++)
			assert_true(shmq_iter_next(it, &v, 10 * 1000000000ll) >= 0);
		assert_int_equal(shmq_iter_next(it, &v, SHMQ_NOWAIT), -EPIPE);
		shmq_iter_free(it);
		pool_done(p, NULL, 0);
	}
	shmq_region_close(r);
}

static void test_map_in_place_and_batches(void **state)
{
	shmq_region *r = region_new();
	struct shmq_pool_opts o = { .workers = NWORKERS, .chunksize = 777, .arena = 256 << 10 };
	shmq_pool *p;
	int64_t *in, *out, *big_in, *big_out;
	const size_t n = 50000, nb = 200000; /* nb: 3.2 MB of copies, 256 KiB of arena */

	(void)state;
	assert_int_equal(shmq_pool_create(r, &o, &p), 0);
	assert_int_equal(shmq_region_alloc(r, "in", n * sizeof(int64_t), (void **)&in), 0);
	assert_int_equal(shmq_region_alloc(r, "out", n * sizeof(int64_t), (void **)&out), 0);
	for (size_t i = 0; i < n; i++)
		in[i] = (int64_t)i - 100;
	/* in place: the arena (256 KiB) could not even hold the copies */
	assert_int_equal(shmq_pool_map(p, "triple", in, sizeof(int64_t), out, sizeof(int64_t), n,
				       SHMQ_FOREVER), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(out[i], ((int64_t)i - 100) * 3 + 1);
	/* too big for the arena: map runs in batches, async refuses */
	big_in = malloc(nb * sizeof(int64_t));
	big_out = malloc(nb * sizeof(int64_t));
	assert_non_null(big_in);
	assert_non_null(big_out);
	for (size_t i = 0; i < nb; i++)
		big_in[i] = (int64_t)i;
	assert_int_equal(shmq_pool_map(p, "triple", big_in, sizeof(int64_t), big_out,
				       sizeof(int64_t), nb, SHMQ_FOREVER), 0);
	for (size_t i = 0; i < nb; i++)
		assert_int_equal(big_out[i], (int64_t)i * 3 + 1);
	{
		shmq_async *a;

		assert_int_equal(shmq_pool_map_async(p, "triple", big_in, sizeof(int64_t), big_out,
						     sizeof(int64_t), nb, &a), -ENOSPC);
	}
	free(big_in);
	free(big_out);
	pool_done(p, NULL, 0);
	shmq_region_close(r);
}

#define NASYNC 100

static void test_async(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, NWORKERS, 0);
	shmq_async *a[NASYNC], *m;
	int64_t in[NASYNC], out[NASYNC], min[1000], mout[1000], gin[2];
	int rc;

	(void)state;
	for (int i = 0; i < NASYNC; i++) {
		in[i] = i;
		out[i] = 0;
		assert_int_equal(shmq_pool_apply_async(p, "triple", &in[i], sizeof(int64_t), &out[i],
						       sizeof(int64_t), &a[i]), 0);
	}
	for (int i = 0; i < 1000; i++)
		min[i] = 2 * i;
	assert_int_equal(shmq_pool_map_async(p, "triple", min, sizeof(int64_t), mout,
					     sizeof(int64_t), 1000, &m), 0);
	/* results reach out when a handle completes */
	for (int i = NASYNC - 1; i >= 0; i--) {
		assert_int_equal(shmq_async_get(a[i], SHMQ_FOREVER), 0);
		assert_true(shmq_async_ready(a[i]));
		assert_int_equal(out[i], 3 * i + 1);
		shmq_async_free(a[i]);
	}
	while (!shmq_async_ready(m))
		usleep(100);
	assert_int_equal(shmq_async_wait(m, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_async_get(m, SHMQ_NOWAIT), 0);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(mout[i], 6 * i + 1);
	shmq_async_free(m);
	/* a timeout on a job that cannot finish (2 elements behind the shut
	 * gate), then freeing it unfinished */
	for (int i = 0; i < 2; i++)
		gin[i] = GATE_FROM + i;
	gate_set(false);
	assert_int_equal(shmq_pool_map_async(p, "gated", gin, sizeof(int64_t), mout,
					     sizeof(int64_t), 2, &m), 0);
	rc = shmq_async_wait(m, 1000000);
	assert_int_equal(rc, -ETIMEDOUT);
	assert_int_equal(shmq_async_wait(m, SHMQ_NOWAIT), -EAGAIN);
	assert_false(shmq_async_ready(m));
	shmq_async_free(m);
	gate_set(true); /* the freed job's elements end; the workers are free again */
	/* the pool still works, and close refuses new work */
	assert_int_equal(shmq_pool_map(p, "triple", min, sizeof(int64_t), mout, sizeof(int64_t),
				       10, SHMQ_FOREVER), 0);
	assert_int_equal(mout[9], 6 * 9 + 1);
	/* SHMQ_NOWAIT: a map would wait, so it submits nothing and says -EAGAIN */
	mout[0] = -1;
	assert_int_equal(shmq_pool_map(p, "triple", min, sizeof(int64_t), mout, sizeof(int64_t),
				       10, SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(mout[0], -1);
	assert_int_equal(shmq_pool_map(p, "triple", min, sizeof(int64_t), mout, sizeof(int64_t),
				       0, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_pool_join(p, SHMQ_NOWAIT), -EINVAL); /* not closed */
	/* closed with work outstanding (behind the shut gate): a NOWAIT join
	 * would block */
	gate_set(false);
	assert_int_equal(shmq_pool_map_async(p, "gated", gin, sizeof(int64_t), mout,
					     sizeof(int64_t), 2, &m), 0);
	assert_int_equal(shmq_pool_close(p), 0);
	assert_int_equal(shmq_pool_join(p, SHMQ_NOWAIT), -EAGAIN);
	gate_set(true);
	assert_int_equal(shmq_async_get(m, SHMQ_FOREVER), 0);
	assert_int_equal(mout[1], 7 * gin[1]);
	shmq_async_free(m);
	assert_int_equal(shmq_pool_apply_async(p, "triple", &in[0], sizeof(int64_t), &out[0],
					       sizeof(int64_t), &m), -EPIPE);
	pool_done(p, NULL, 0);
	shmq_region_close(r);
}

/* A handle freed twice in a row (a misuse) is left alone the second time:
 * it is the pool's kept handle, and freeing it again used to hand the same
 * memory to the allocator while the pool still kept it, so the next two
 * submissions got one handle between them. */
/* A map that would be refused is refused with SHMQ_NOWAIT too, and with no
 * elements: a closed or terminated pool says -EPIPE, an unknown task
 * -ENOENT, not the -EAGAIN ("try again") of a map that would have to wait,
 * which a caller retrying on -EAGAIN would retry for ever. */
static void test_nowait_map_refused(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, 2, 0);
	int64_t in[4] = { 1, 2, 3, 4 }, out[4];

	(void)state;
	assert_int_equal(shmq_pool_map(p, "no-such-task", in, sizeof(int64_t), out,
				       sizeof(int64_t), 4, SHMQ_NOWAIT), -ENOENT);
	assert_int_equal(shmq_pool_map(p, "triple", in, sizeof(int64_t), out, sizeof(int64_t),
				       4, SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(shmq_pool_close(p), 0);
	assert_int_equal(shmq_pool_map(p, "triple", in, sizeof(int64_t), out, sizeof(int64_t),
				       4, SHMQ_NOWAIT), -EPIPE);
	assert_int_equal(shmq_pool_map(p, "triple", in, sizeof(int64_t), out, sizeof(int64_t),
				       0, SHMQ_FOREVER), -EPIPE);
	assert_int_equal(shmq_pool_map(p, "triple", in, sizeof(int64_t), out, sizeof(int64_t),
				       4, 1000000), -EPIPE);
	assert_int_equal(shmq_pool_terminate(p), 0);
	assert_int_equal(shmq_pool_map(p, "triple", in, sizeof(int64_t), out, sizeof(int64_t),
				       4, SHMQ_NOWAIT), -EPIPE);
	assert_int_equal(shmq_pool_join(p, SHMQ_FOREVER), 0);
	shmq_pool_free(p);
	shmq_region_close(r);
}

/* Async handles may outlive their pool (only iterators are documented to
 * go first): after shmq_pool_free a completed one keeps its result, one the
 * joined pool had completed delivers it, one cancelled says -ECANCELED, and
 * every free is only the handle's.  Freeing one after its pool used to
 * read the freed pool (a crash, or a lock of freed memory). */
static void test_async_outlives_pool(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, 2, 0);
	int64_t in[4] = { 1, 2, 3, 4 }, out[4] = { 0 }, gin[2] = { GATE_FROM, GATE_FROM + 1 };
	int64_t gout[2] = { -1, -1 }, o;
	shmq_async *done, *joined, *pending;
	shmq_waitset *w;
	shmq_iter *it;

	(void)state;
	assert_int_equal(shmq_pool_apply_async(p, "triple", &in[0], sizeof(int64_t), &out[0],
					       sizeof(int64_t), &done), 0);
	assert_int_equal(shmq_async_wait(done, SHMQ_FOREVER), 0);
	assert_int_equal(shmq_pool_map_async(p, "triple", in, sizeof(int64_t), out,
					     sizeof(int64_t), 4, &joined), 0);
	assert_int_equal(shmq_pool_close(p), 0);
	assert_int_equal(shmq_pool_join(p, SHMQ_FOREVER), 0);
	shmq_pool_free(p);
	assert_true(shmq_async_ready(done));
	assert_int_equal(shmq_async_get(done, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_async_get(joined, SHMQ_FOREVER), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(out[i], 3 * in[i] + 1);
	assert_int_equal(shmq_waitset_create(&w), 0);
	assert_int_equal(shmq_waitset_add_async(w, done, &o), -EINVAL); /* no word left */
	shmq_waitset_free(w);
	shmq_async_free(done);
	shmq_async_free(joined);

	/* a job still running when the pool is freed (terminated) */
	p = pool_new(r, 2, 0);
	gate_set(false);
	assert_int_equal(shmq_pool_map_async(p, "gated", gin, sizeof(int64_t), gout,
					     sizeof(int64_t), 2, &pending), 0);
	assert_int_equal(shmq_pool_imap(p, "gated", gin, sizeof(int64_t), sizeof(int64_t), 2, 0,
					&it), 0);
	shmq_pool_free(p);
	gate_set(true);
	assert_false(shmq_async_wait(pending, SHMQ_NOWAIT) == 0);
	assert_int_equal(shmq_async_get(pending, SHMQ_FOREVER), -ECANCELED);
	assert_int_equal(gout[0], -1);
	assert_int_equal(shmq_iter_next(it, &o, SHMQ_NOWAIT), -ECANCELED); /* a misuse, no crash */
	shmq_async_free(pending);
	shmq_iter_free(it);
	shmq_region_close(r);
}

static void test_async_double_free(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, NWORKERS, 0);
	shmq_async *a, *b, *c;
	int64_t in[2] = { 5, 7 }, out[2] = { 0, 0 };

	(void)state;
	assert_int_equal(shmq_pool_apply_async(p, "triple", &in[0], sizeof(int64_t), &out[0],
					       sizeof(int64_t), &a), 0);
	assert_int_equal(shmq_async_get(a, SHMQ_FOREVER), 0);
	shmq_async_free(a);
	shmq_async_free(a);
	out[0] = 0;
	assert_int_equal(shmq_pool_apply_async(p, "triple", &in[0], sizeof(int64_t), &out[0],
					       sizeof(int64_t), &b), 0);
	assert_int_equal(shmq_pool_apply_async(p, "triple", &in[1], sizeof(int64_t), &out[1],
					       sizeof(int64_t), &c), 0);
	assert_ptr_not_equal(b, c);
	assert_int_equal(shmq_async_get(b, SHMQ_FOREVER), 0);
	assert_int_equal(shmq_async_get(c, SHMQ_FOREVER), 0);
	assert_int_equal(out[0], 3 * 5 + 1);
	assert_int_equal(out[1], 3 * 7 + 1);
	shmq_async_free(b);
	shmq_async_free(c);
	pool_done(p, NULL, 0);
	shmq_region_close(r);
}

/* A server's worker thread, cancelled (deferred) while it closes and joins
 * the pool: the join is no cancellation point, so it joins the workers, and
 * the cancel acts after it.  Another thread then uses the pool at once.  Old
 * code: the pending cancel acted in the waitid that worker_join makes with
 * p->mu held, and every later call on the pool (here a join with
 * SHMQ_NOWAIT) waited for that mutex for ever. */
struct cancelled_join {
	shmq_pool *p;
	int rc;
};

static void *cancelled_join_main(void *arg)
{
	struct cancelled_join *c = arg;

	pthread_cancel(pthread_self()); /* deferred: pending in the join */
	shmq_pool_close(c->p);
	c->rc = shmq_pool_join(c->p, SHMQ_FOREVER);
	pthread_testcancel();
	return NULL;
}

static void *nowait_join_main(void *arg)
{
	struct cancelled_join *c = arg;

	c->rc = shmq_pool_join(c->p, SHMQ_NOWAIT);
	return NULL;
}

static void test_join_cancelled(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, NWORKERS, 0);
	struct cancelled_join c = { p, 1 }, d = { p, 1 };
	struct timespec ts;
	pthread_t th;
	void *ret;

	(void)state;
	assert_int_equal(pthread_create(&th, NULL, cancelled_join_main, &c), 0);
	assert_int_equal(pthread_join(th, &ret), 0);
	assert_ptr_equal(ret, PTHREAD_CANCELED);
	assert_int_equal(c.rc, 0);
	assert_int_equal(pthread_create(&th, NULL, nowait_join_main, &d), 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	assert_int_equal(pthread_timedjoin_np(th, NULL, &ts), 0);
	assert_int_equal(d.rc, 0);
	shmq_pool_free(p);
	shmq_region_close(r);
}

#define UNEVEN_N 20000u

static void test_uneven_balanced_by_stealing(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, NWORKERS, 0); /* automatic chunks */
	uint32_t *in = malloc(UNEVEN_N * sizeof(uint32_t));
	struct uneven_out *out = calloc(UNEVEN_N, sizeof(*out));
	unsigned heavy_by[NWORKERS] = { 0 }, light_by[NWORKERS] = { 0 };
	struct shmq_pool_worker_stats s0[NWORKERS], s1[NWORKERS];
	uint64_t steals = 0;

	(void)state;
	assert_non_null(in);
	assert_non_null(out);
	for (unsigned w = 0; w < NWORKERS; w++)
		assert_int_equal(shmq_pool_worker_stats(p, w, &s0[w]), 0);
	for (uint32_t i = 0; i < UNEVEN_N; i++)
		in[i] = i;
	/* Automatic chunks: 8 of 2500 elements, uneven since the heavy ones
	 * cluster in no chunk; then chunks of 50, where stealing must spread
	 * the heavy elements. */
	assert_int_equal(shmq_pool_map(p, "uneven", in, sizeof(uint32_t), out, sizeof(*out),
				       UNEVEN_N, SHMQ_FOREVER), 0);
	for (uint32_t i = 0; i < UNEVEN_N; i++) {
		assert_int_equal(out[i].v, burn(is_heavy(i) ? HEAVY : LIGHT, i));
		assert_true(out[i].worker >= 0 && out[i].worker < NWORKERS);
	}
	shmq_pool_free(p);
	p = pool_new(r, NWORKERS, 50);
	pool_wait_started(p);
	for (unsigned w = 0; w < NWORKERS; w++)
		assert_int_equal(shmq_pool_worker_stats(p, w, &s0[w]), 0);
	assert_int_equal(shmq_pool_map(p, "uneven", in, sizeof(uint32_t), out, sizeof(*out),
				       UNEVEN_N, SHMQ_FOREVER), 0);
	for (uint32_t i = 0; i < UNEVEN_N; i++) {
		assert_int_equal(out[i].v, burn(is_heavy(i) ? HEAVY : LIGHT, i));
		if (is_heavy(i))
			heavy_by[out[i].worker]++;
		else
			light_by[out[i].worker]++;
	}
	for (unsigned w = 0; w < NWORKERS; w++) {
		assert_int_equal(shmq_pool_worker_stats(p, w, &s1[w]), 0);
		print_message("worker %u: %llu tasks (%u heavy, %u light), %llu steals\n", w,
			      (unsigned long long)(s1[w].tasks - s0[w].tasks), heavy_by[w],
			      light_by[w], (unsigned long long)s1[w].steals);
		/* every worker ran some of it, heavy elements included */
		assert_int_equal(s1[w].tasks - s0[w].tasks, heavy_by[w] + light_by[w]);
		assert_true(heavy_by[w] > 0);
		assert_true(light_by[w] > 0);
		steals += s1[w].steals;
	}
	assert_true(steals > 0); /* the injected range went to one worker first */
	pool_done(p, NULL, 0);
	free(in);
	free(out);
	shmq_region_close(r);
}

static void test_fib_subtasks(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, NWORKERS, 0);
	int n = 27, res = 0, ns[6] = { 0, 1, 2, 10, 20, 25 }, outs[6];
	shmq_async *a;
	struct shmq_pool_group g = SHMQ_POOL_GROUP_INIT;
	struct shmq_pool_worker_stats s;
	uint64_t tasks = 0;

	(void)state;
	assert_int_equal(shmq_pool_apply_async(p, "fib", &n, sizeof(n), &res, sizeof(res), &a), 0);
	assert_int_equal(shmq_async_get(a, SHMQ_FOREVER), 0);
	shmq_async_free(a);
	assert_int_equal(res, fib_serial(27));
	assert_int_equal(res, 196418);
	for (unsigned w = 0; w < NWORKERS; w++) {
		assert_int_equal(shmq_pool_worker_stats(p, w, &s), 0);
		tasks += s.tasks;
	}
	/* every call of fib ran as a task (one per spawn, plus the root) */
	assert_true(tasks >= 196418);
	/* several at once, through map */
	assert_int_equal(shmq_pool_map(p, "fib", ns, sizeof(int), outs, sizeof(int), 6,
				       SHMQ_FOREVER), 0);
	for (int i = 0; i < 6; i++)
		assert_int_equal(outs[i], fib_serial(ns[i]));
	/* subtask errors reach sync; misuse is refused inside the task */
	res = 0;
	assert_int_equal(shmq_pool_apply_async(p, "sub_parent", &n, sizeof(n), &res, sizeof(res),
					       &a), 0);
	assert_int_equal(shmq_async_get(a, SHMQ_FOREVER), 0);
	assert_int_equal(res, -ERANGE);
	shmq_async_free(a);
	/* outside a worker: refused */
	assert_int_equal(shmq_pool_spawn(&g, "fib", &n, sizeof(n), &res, sizeof(res)), -EPERM);
	assert_int_equal(shmq_pool_sync(&g), -EPERM);
	assert_int_equal(shmq_pool_self(), -EPERM);
	pool_done(p, NULL, 0);
	shmq_region_close(r);
}

/* Spawn and sync belong to the thread that runs the task: from another
 * thread of the worker's process they would push on the worker's deque and
 * move its frame stack at the same time as the task (found: lost and wrong
 * results, a map failing with -EOWNERDEAD), and from a child the task made
 * with fork() they would drive the parent's deque from a second process.
 * Both are refused with -EPERM; self still names the worker in the other
 * thread, and no worker in the child. */
static void test_spawn_off_task_refused(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, 1, 0);
	struct off_task o[2];
	int in = 0;

	(void)state;
	memset(o, 0x55, sizeof(o));
	assert_int_equal(shmq_pool_map(p, "off_task_spawner", &in, sizeof(in), o, sizeof(o), 1,
				       SHMQ_FOREVER), 0);
	assert_int_equal(o[0].spawn, -EPERM);
	assert_int_equal(o[0].sync, -EPERM);
	assert_int_equal(o[0].self, 0);
	assert_int_equal(o[1].spawn, -EPERM);
	assert_int_equal(o[1].sync, -EPERM);
	assert_int_equal(o[1].self, -EPERM);
	/* the worker's own spawns still work after them */
	in = 20;
	assert_int_equal(shmq_pool_map(p, "fib", &in, sizeof(in), o, sizeof(int), 1, SHMQ_FOREVER), 0);
	assert_int_equal(o[0].spawn, fib_serial(20));
	pool_done(p, NULL, 0);
	shmq_region_close(r);
}

/* A child that a task made with fork() and that returned from the task
 * (instead of _exit()) came back into the worker's loop as a second copy of
 * the worker: it completed the parent's chunk with its own result (found:
 * -777 delivered for element 1, the parent's 2 lost) and went on taking
 * work until the pool closed.  It now ends at once, touching nothing of the
 * pool's, and the parent's result is the element's. */
static void test_forked_task_child_returns(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, 1, 1);
	int64_t in[4] = { 0, 1, 2, 3 };
	struct fork_ret out[4];

	(void)state;
	memset(out, 0, sizeof(out));
	assert_int_equal(shmq_pool_map(p, "fork_returner", in, sizeof(in[0]), out, sizeof(out[0]),
				       4, SHMQ_FOREVER), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(out[i].v, in[i] * 2);
	assert_true(WIFEXITED(out[1].child_status));
	assert_int_equal(WEXITSTATUS(out[1].child_status), POOL_EXIT_FORKED);
	pool_done(p, NULL, 0);
	shmq_region_close(r);
}

/* shmq_pool(3): the largest element.  An element copied through the arena
 * must fit it whole (in_size and out_size each rounded up to 64 bytes, with
 * the job's chunk word): a larger one is -ENOSPC from map, map_async and
 * imap, and nothing is written.  Arrays larger than the arena go in batches;
 * an element that lies in the region is used in place, whatever its size. */
static void test_largest_element(void **state)
{
	const size_t arena = (size_t)1 << 20, big = (size_t)2 << 20;
	struct shmq_pool_opts o = { .workers = 1, .arena = arena };
	shmq_region *r = region_new();
	char *in = calloc(1, big), *inr;
	int64_t out[4] = { -1, -1, -1, -1 };
	shmq_pool *p;
	shmq_async *a;
	shmq_iter *it;

	(void)state;
	assert_non_null(in);
	assert_int_equal(shmq_pool_create(r, &o, &p), 0);
	memcpy(in, "12345678", 8);
	assert_int_equal(shmq_pool_map(p, "head8", in, big, out, 8, 1, SHMQ_FOREVER), -ENOSPC);
	assert_int_equal(out[0], -1);
	assert_int_equal(shmq_pool_map(p, "head8", in, arena, out, 8, 1, SHMQ_FOREVER), -ENOSPC);
	assert_int_equal(shmq_pool_map(p, "head8", in, 8, in, big, 1, SHMQ_FOREVER), -ENOSPC);
	assert_int_equal(shmq_pool_map_async(p, "head8", in, big, out, 8, 1, &a), -ENOSPC);
	assert_int_equal(shmq_pool_imap(p, "head8", in, big, 8, 1, 0, &it), -ENOSPC);
	/* half the arena fits; four such elements go in batches */
	assert_int_equal(shmq_pool_map(p, "head8", in, arena / 2, out, 8, 1, SHMQ_FOREVER), 0);
	assert_memory_equal(&out[0], "12345678", 8);
	assert_int_equal(shmq_pool_map(p, "head8", in, arena / 4, out, 8, 4, SHMQ_FOREVER), 0);
	/* in the region: in place, larger than the arena */
	assert_int_equal(shmq_region_alloc(r, "big_in", big, (void **)&inr), 0);
	memcpy(inr, "abcdefgh", 8);
	out[0] = -1;
	assert_int_equal(shmq_pool_map(p, "head8", inr, big, out, 8, 1, SHMQ_FOREVER), 0);
	assert_memory_equal(&out[0], "abcdefgh", 8);
	pool_done(p, NULL, 0);
	free(in);
	shmq_region_close(r);
}

/* shmq_pool(3): a task name longer than 63 characters is not registered
 * (SHMQ_TASK of a function with such a name too): submitting it is -ENOENT,
 * and nothing is written. */
static void test_long_task_name(void **state)
{
	const char *n63 = "task_name_of_sixty_three_characters_xxxxxxxxxxxxxxxxxxxxxxxxxxx";
	const char *n64 = "task_name_of_sixty_four_characters_xxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, 1, 1);
	int64_t in = 1, out = -1;
	shmq_async *a = NULL;

	(void)state;
	assert_int_equal(strlen(n63), SHMQ_OBJ_NAME_MAX);
	assert_int_equal(strlen(n64), SHMQ_OBJ_NAME_MAX + 1);
	assert_int_equal(shmq_pool_map(p, n63, &in, sizeof(in), &out, sizeof(out), 1, SHMQ_FOREVER),
			 0);
	assert_int_equal(out, 64);
	out = -1;
	assert_int_equal(shmq_pool_map(p, n64, &in, sizeof(in), &out, sizeof(out), 1, SHMQ_FOREVER),
			 -ENOENT);
	assert_int_equal(shmq_pool_apply_async(p, n64, &in, sizeof(in), &out, sizeof(out), &a),
			 -ENOENT);
	assert_null(a);
	assert_int_equal(out, -1);
	pool_done(p, NULL, 0);
	shmq_region_close(r);
}

/* shmq_pool(3): map, async_get and iter_next give a task's status that is
 * no negative errno (-4095 to -1) as -EPROTO; sync gives it as it is. */
static void test_status_not_errno(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, NWORKERS, 1);
	int64_t in[8], out[8];
	shmq_async *a;
	shmq_iter *it;
	ssize_t got;

	(void)state;
	for (int i = 0; i < 8; i++)
		in[i] = i;
	assert_int_equal(shmq_pool_map(p, "odd_status", in, sizeof(int64_t), out, sizeof(int64_t),
				       8, SHMQ_FOREVER), -EPROTO);
	for (int i = 0; i < 8; i++)
		assert_int_equal(out[i], i);
	assert_int_equal(shmq_pool_map(p, "odd_status", &in[5], sizeof(int64_t), out,
				       sizeof(int64_t), 1, SHMQ_FOREVER), -EPROTO);
	assert_int_equal(shmq_pool_apply_async(p, "odd_status", &in[3], sizeof(int64_t), out,
					       sizeof(int64_t), &a), 0);
	assert_int_equal(shmq_async_get(a, SHMQ_FOREVER), -EPROTO);
	shmq_async_free(a);
	assert_int_equal(shmq_pool_imap(p, "odd_status", in, sizeof(int64_t), sizeof(int64_t), 8, 0,
					&it), 0);
	for (int i = 0; i < 8; i++) {
		got = shmq_iter_next(it, out, SHMQ_FOREVER);
		assert_int_equal(got, i == 3 || i == 5 ? -EPROTO : i);
	}
	assert_int_equal(shmq_iter_next(it, out, SHMQ_FOREVER), -EPIPE);
	shmq_iter_free(it);
	/* sync returns the subtask's value itself */
	assert_int_equal(shmq_pool_map(p, "odd_parent", &in[3], sizeof(int64_t), out,
				       sizeof(int64_t), 1, SHMQ_FOREVER), 0);
	assert_int_equal(out[0], 7);
	assert_int_equal(shmq_pool_map(p, "odd_parent", &in[5], sizeof(int64_t), out,
				       sizeof(int64_t), 1, SHMQ_FOREVER), 0);
	assert_int_equal(out[0], -5000);
	pool_done(p, NULL, 0);
	shmq_region_close(r);
}

static void test_task_errors(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, NWORKERS, 100);
	const size_t n = 10000;
	int64_t *in = malloc(n * sizeof(int64_t)), *out = malloc(n * sizeof(int64_t));
	shmq_async *a;

	(void)state;
	for (size_t i = 0; i < n; i++) {
		in[i] = (int64_t)i;
		out[i] = 0;
	}
	/* the first error (lowest index) is returned; the other results are written */
	assert_int_equal(shmq_pool_map(p, "picky", in, sizeof(int64_t), out, sizeof(int64_t), n,
				       SHMQ_FOREVER), -EDOM);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(out[i], (int64_t)i + 1);
	assert_int_equal(shmq_pool_apply_async(p, "picky", &in[1537], sizeof(int64_t), &out[0],
					       sizeof(int64_t), &a), 0);
	assert_int_equal(shmq_async_wait(a, SHMQ_FOREVER), 0);
	assert_int_equal(shmq_async_get(a, SHMQ_FOREVER), -EDOM);
	shmq_async_free(a);
	assert_int_equal(shmq_pool_apply_async(p, "picky", &in[1538], sizeof(int64_t), &out[0],
					       sizeof(int64_t), &a), 0);
	assert_int_equal(shmq_async_get(a, SHMQ_FOREVER), 0);
	shmq_async_free(a);
	assert_int_equal(shmq_pool_apply_async(p, "nope", &in[0], sizeof(int64_t), &out[0],
					       sizeof(int64_t), &a), -ENOENT);
	assert_int_equal(shmq_pool_map(p, "triple", NULL, sizeof(int64_t), out, sizeof(int64_t), 5,
				       SHMQ_FOREVER), -EINVAL);
	pool_done(p, NULL, 0);
	free(in);
	free(out);
	shmq_region_close(r);
}

static void test_twin_task_names(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, NWORKERS, 100);
	int64_t in[10], out[10];
	shmq_async *a = NULL;
	int spawned = 0;

	(void)state;
	for (int i = 0; i < 10; i++) {
		in[i] = i;
		out[i] = -1;
	}
	/* an ambiguous name: every submission fails, nothing runs */
	assert_int_equal(shmq_pool_map(p, "twin_task", in, sizeof(int64_t), out, sizeof(int64_t),
				       10, SHMQ_FOREVER), -EEXIST);
	assert_int_equal(shmq_pool_map(p, "twin_task", in, sizeof(int64_t), out, sizeof(int64_t),
				       0, SHMQ_FOREVER), -EEXIST);
	assert_int_equal(shmq_pool_apply_async(p, "twin_task", &in[0], sizeof(int64_t), &out[0],
					       sizeof(int64_t), &a), -EEXIST);
	assert_null(a);
	for (int i = 0; i < 10; i++)
		assert_int_equal(out[i], -1);
	/* and so does a spawn of it inside a worker */
	spawned = 1;
	assert_int_equal(shmq_pool_apply_async(p, "twin_spawner", NULL, 0, &spawned,
					       sizeof(spawned), &a), 0);
	assert_int_equal(shmq_async_get(a, SHMQ_FOREVER), 0);
	assert_int_equal(spawned, -EEXIST);
	shmq_async_free(a);
	/* the same struct registered twice is one task */
	assert_int_equal(shmq_pool_map(p, "once_task", in, sizeof(int64_t), out, sizeof(int64_t),
				       10, SHMQ_FOREVER), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(out[i], in[i] * 3 + 1);
	pool_done(p, NULL, 0);
	shmq_region_close(r);
}

#define KILL_N 6000u /* ~0.6 s of work per worker */
#define NAP_N 2000u  /* GATE_FROM of them before the gate */

static void pool_wait_replaced(shmq_pool *p, uint32_t restarts);

static void test_worker_killed_mid_map(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, NWORKERS, 20);
	int64_t *in = malloc(NAP_N * sizeof(int64_t)), *out = malloc(NAP_N * sizeof(int64_t));
	struct shmq_pool_worker_stats s;
	pid_t pids[NWORKERS], victim;
	uint64_t before;
	shmq_async *a;

	(void)state;
	for (size_t i = 0; i < NAP_N; i++) {
		in[i] = (int64_t)i;
		out[i] = -1;
	}
	pool_wait_started(p); /* the victim too: it takes a chunk as soon as the map comes */
	pids_of(p, pids);
	before = tasks_done(p);
	/* the elements from GATE_FROM on wait behind the shut gate: the map
	 * is surely unfinished when the victim dies, however long the
	 * kill takes to come */
	gate_set(false);
	assert_int_equal(shmq_pool_map_async(p, "gated", in, sizeof(int64_t), out,
					     sizeof(int64_t), NAP_N, &a), 0);
	wait_under_way(p, before);
	victim = pids[1];
	assert_int_equal(kill(victim, SIGKILL), 0);
	assert_false(shmq_async_ready(a));
	gate_set(true);
	assert_int_equal(shmq_async_get(a, 60 * 1000000000ll), 0);
	shmq_async_free(a);
	for (size_t i = 0; i < NAP_N; i++)
		if (out[i] != (int64_t)i * 7)
			fail_msg("out[%zu] = %lld", i, (long long)out[i]);
	/* the survivor may finish the map before the creator's next look at
	 * the workers (at most one per 10 ms): the replacement is awaited
	 * (30 s at most), not assumed done by the get */
	pool_wait_replaced(p, 1);
	assert_int_equal(shmq_pool_worker_stats(p, 1, &s), 0);
	assert_int_equal(s.restarts, 1);
	assert_true(s.pid != victim);
	pids[1] = s.pid;
	/* the replacement works */
	assert_int_equal(shmq_pool_map(p, "triple", in, sizeof(int64_t), out, sizeof(int64_t),
				       1000, SHMQ_FOREVER), 0);
	assert_int_equal(out[999], 999 * 3 + 1);
	pool_done_killed(p, pids, NWORKERS, 1);
	free(in);
	free(out);
	shmq_region_close(r);
}

/* Wait until slot count of restarts is restarts and every slot's process has
 * attached.  Replacement is the creator's job, done in its pool calls: a
 * wait for an unfinished job is such a call. */
static void pool_wait_replaced(shmq_pool *p, uint32_t restarts)
{
	struct shmq_pool_worker_stats s;
	int64_t in = 1, out = 0;
	shmq_async *a;

	for (int t = 0; t < 6000; t++) {
		uint32_t sum = 0;
		bool started = true;

		for (unsigned i = 0; i < shmq_pool_workers(p); i++) {
			assert_int_equal(shmq_pool_worker_stats(p, i, &s), 0);
			sum += s.restarts;
			started &= s.started != 0;
		}
		if (sum == restarts && started)
			return;
		assert_int_equal(shmq_pool_apply_async(p, "slow", &in, sizeof(in), &out, sizeof(out),
						       &a), 0);
		(void)shmq_async_wait(a, SHMQ_NOWAIT); /* supervises while not done */
		assert_int_equal(shmq_async_get(a, SHMQ_FOREVER), 0);
		shmq_async_free(a);
		usleep(5000);
	}
	fail_msg("workers not replaced within 30 s");
}

#define ROUNDS_N 200u
#define KILL_ROUNDS 40u

/* Round after round a worker is SIGKILLed mid-map: every result is right, and
 * the region does not fill up with the dead workers' areas (4 MiB: without
 * recycling, about 20 deaths exhaust it and the pool fails with -ENOSPC). */
static void test_kill_rounds_bounded(void **state)
{
	struct shmq_region_opts ro = { .size = (size_t)4 << 20 };
	struct shmq_pool_opts po = { .workers = NWORKERS, .chunksize = 4, .arena = 256 << 10 };
	struct shmq_region_info info;
	int64_t in[ROUNDS_N], out[ROUNDS_N];
	uint64_t used_early = 0;
	shmq_region *r;
	shmq_pool *p;
	pid_t pids[NWORKERS];

	(void)state;
	assert_int_equal(shmq_region_create(NULL, &ro, &r), 0);
	assert_int_equal(shmq_pool_create(r, &po, &p), 0);
	for (unsigned k = 0; k < KILL_ROUNDS; k++) {
		shmq_async *a;

		for (unsigned i = 0; i < ROUNDS_N; i++) {
			in[i] = (int64_t)(k * ROUNDS_N + i);
			out[i] = -1;
		}
		pool_wait_replaced(p, k);
		pids_of(p, pids);
		assert_int_equal(shmq_pool_map_async(p, "slow", in, sizeof(int64_t), out,
						     sizeof(int64_t), ROUNDS_N, &a), 0);
		usleep((k * 7919u) % 10000u); /* somewhere in the first 10 ms */
		assert_int_equal(kill(pids[k % NWORKERS], SIGKILL), 0);
		assert_int_equal(shmq_async_get(a, 60 * 1000000000ll), 0);
		shmq_async_free(a);
		for (unsigned i = 0; i < ROUNDS_N; i++)
			if (out[i] != in[i] * 7)
				fail_msg("round %u: out[%u] = %lld", k, i, (long long)out[i]);
		assert_int_equal(shmq_region_info(r, &info), 0);
		if (k == 4)
			used_early = info.used;
	}
	pool_wait_replaced(p, KILL_ROUNDS);
	assert_int_equal(shmq_region_info(r, &info), 0);
	print_message("region used: %llu bytes after 5 deaths, %llu after %u\n",
		      (unsigned long long)used_early, (unsigned long long)info.used, KILL_ROUNDS);
	/* a few areas at most may still wait for recycling */
	assert_true(info.used - used_early <= (1u << 20));
	pool_done_killed(p, NULL, 0, KILL_ROUNDS);
	shmq_region_close(r);
}

/* ---- a chunk whose workers keep dying ---- */

static int mark_secret(const void *in, void *out)
{
	(void)in;
	*(uint64_t *)out = 0x5ec2e75ec2e7ull;
	return 0;
}
SHMQ_TASK(mark_secret);

/* Element 0 kills every worker that runs it. */
static int die_on_zero(const void *in, void *out)
{
	int64_t x = *(const int64_t *)in;

	if (x == 0)
		raise(SIGKILL);
	*(uint64_t *)out = (uint64_t)x;
	return 0;
}
SHMQ_TASK(die_on_zero);

/* A chunk that failed for good (its workers died, -EOWNERDEAD) leaves its
 * elements' out zeroed, not holding what an earlier job left in the
 * arena's staging area; the other results are written. */
static void test_dead_chunk_no_stale_results(void **state)
{
	int64_t in[4] = { 0, 1, 2, 3 };
	uint64_t out[4];
	shmq_region *r;
	shmq_pool *p;

	(void)state;
	r = region_new();
	p = pool_new(r, NWORKERS, 1);
	assert_int_equal(shmq_pool_map(p, "mark_secret", in, sizeof(int64_t), out, sizeof(uint64_t), 4,
				       20 * 1000000000ll), 0);
	assert_true(out[0] == 0x5ec2e75ec2e7ull);
	memset(out, 0xff, sizeof(out));
	assert_int_equal(shmq_pool_map(p, "die_on_zero", in, sizeof(int64_t), out, sizeof(uint64_t),
				       4, 20 * 1000000000ll), -EOWNERDEAD);
	assert_true(out[0] == 0);
	for (int i = 1; i < 4; i++)
		assert_true(out[i] == (uint64_t)i);
	shmq_pool_terminate(p);
	shmq_pool_free(p);
	shmq_region_close(r);
}

/* ---- a worker killed between marking a chunk DONE and counting it ---- */

#define FAULT_ENV "SHMQ_TEST_POOL_FAULT"

/* In a worker started with env set (a flag file's path): the first worker
 * of all to get to point want (the one that creates the flag file) dies
 * there. */
static void fault_die_first(enum shmq__pool_fault_point point, enum shmq__pool_fault_point want,
			    const char *env)
{
	const char *flag = getenv(env);
	int fd;

	if (point != want || !flag)
		return;
	fd = open(flag, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	close(fd);
	raise(SIGKILL);
}

/* ---- a worker held between completing a job's count and finishing it ---- */

#define HOLD_ENV "SHMQ_TEST_POOL_HOLD"

/* In a worker started with HOLD_ENV set (a path prefix): the first worker
 * of all to make the count that completes a job (it creates PREFIX.held)
 * stays there until PREFIX.go exists, or 600 ms at most, then goes on to
 * finish the job. */
static void fault_hold_once(enum shmq__pool_fault_point point)
{
	const char *base = getenv(HOLD_ENV);
	char path[128];
	int fd;

	if (point != SHMQ__POOL_FAULT_JOB_COUNTED || !base)
		return;
	snprintf(path, sizeof(path), "%s.held", base);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	close(fd);
	snprintf(path, sizeof(path), "%s.go", base);
	for (int t = 0; t < 600 && access(path, F_OK); t++)
		usleep(1000);
}

/* ---- a worker stopped between completing a job's count and finishing it ---- */

#define STOP_ENV "SHMQ_TEST_POOL_STOP"

/* In a worker started with STOP_ENV set (a path prefix): the first worker
 * of all to make the count that completes a job writes its pid to
 * PREFIX.held and stops itself (SIGSTOP), as a debugger or job control
 * stops a process: pinned on the job until the test continues it. */
static void fault_stop_once(enum shmq__pool_fault_point point)
{
	const char *base = getenv(STOP_ENV);
	char path[128], held[128], pid[32];
	int fd, n;

	if (point != SHMQ__POOL_FAULT_JOB_COUNTED || !base)
		return;
	snprintf(path, sizeof(path), "%s.tmp", base);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	n = snprintf(pid, sizeof(pid), "%d", (int)getpid());
	if (write(fd, pid, (size_t)n) != n)
		_exit(99);
	close(fd);
	snprintf(held, sizeof(held), "%s.held", base); /* published whole */
	if (link(path, held))
		_exit(99);
	raise(SIGSTOP);
}

/* ---- a worker killed between its unpin and its wake of the caller ---- */

/* the first worker to drop its pin on a job it marked DONE dies before it
 * wakes the job's sleepers (fault_die_first) */
#define UNPIN_ENV "SHMQ_TEST_POOL_DIE_UNPINNED"

static void fault_hook(enum shmq__pool_fault_point point)
{
	fault_die_first(point, SHMQ__POOL_FAULT_CHUNK_MARKED, FAULT_ENV);
	fault_die_first(point, SHMQ__POOL_FAULT_JOB_UNPINNED, UNPIN_ENV);
	fault_hold_once(point);
	fault_stop_once(point);
}

__attribute__((constructor)) static void fault_install(void)
{
	if (getenv(FAULT_ENV) || getenv(HOLD_ENV) || getenv(STOP_ENV) || getenv(UNPIN_ENV))
		shmq__pool_fault = fault_hook;
}

/* Element 0 kills the first worker that runs it (the one that creates the
 * file DIE_ENV names); it runs again on another, which returns 7 * x. */
#define DIE_ENV "SHMQ_TEST_POOL_DIE_ONCE"

static int die_once_on_zero(const void *in, void *out)
{
	const char *flag = getenv(DIE_ENV);
	int64_t x = *(const int64_t *)in;
	int fd;

	if (x == 0 && flag && (fd = open(flag, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) >= 0) {
		close(fd);
		raise(SIGKILL);
	}
	*(int64_t *)out = x * 7;
	return 0;
}
SHMQ_TASK(die_once_on_zero);

/* The chunk is DONE, its count is lost with the worker: the creator must
 * finish the job from the chunk states, not wait for a count that never
 * comes. */
static void test_killed_between_done_and_count(void **state)
{
	char flag[96];
	int64_t in[64], out[64];
	shmq_region *r;
	shmq_pool *p;

	(void)state;
	snprintf(flag, sizeof(flag), "/tmp/shmq-test-pool-fault-%d", (int)getpid());
	unlink(flag);
	assert_int_equal(setenv(FAULT_ENV, flag, 1), 0);
	r = region_new();
	p = pool_new(r, NWORKERS, 1);
	for (int i = 0; i < 64; i++) {
		in[i] = i;
		out[i] = -1;
	}
	assert_int_equal(shmq_pool_map(p, "triple", in, sizeof(int64_t), out, sizeof(int64_t), 64,
				       20 * 1000000000ll), 0);
	for (int i = 0; i < 64; i++)
		assert_int_equal(out[i], 3 * i + 1);
	assert_int_equal(access(flag, F_OK), 0); /* the fault did fire */
	unsetenv(FAULT_ENV);
	pool_wait_replaced(p, 1);
	pool_done_killed(p, NULL, 0, 1);
	unlink(flag); /* not before: a replacement started with the hook stays armed */
	shmq_region_close(r);
}

/* The worker that completes a job wakes its caller after dropping its pin
 * (Protocol CHUNK_PIN), so a worker can die with the job DONE and its caller
 * asleep, never woken.  The caller sleeps a slice at a time (WAIT_SLICE_NS):
 * it finds the job done at the end of the slice, collects the result, and
 * the dead worker is replaced.  With a caller that slept until its deadline,
 * the get below returned -ETIMEDOUT. */
static void test_killed_between_unpin_and_wake(void **state)
{
	char flag[96];
	int64_t in = 5, out = 0, t0;
	shmq_async *a;
	shmq_region *r;
	shmq_pool *p;

	(void)state;
	snprintf(flag, sizeof(flag), "/tmp/shmq-test-pool-unpinned-%d", (int)getpid());
	unlink(flag);
	assert_int_equal(setenv(UNPIN_ENV, flag, 1), 0);
	r = region_new();
	p = pool_new(r, NWORKERS, 0);
	pool_wait_started(p);
	t0 = shmq_now_ns();
	/* a millisecond's nap: the caller is asleep when the worker dies */
	assert_int_equal(shmq_pool_apply_async(p, "nap_1ms", &in, sizeof(in), &out, sizeof(out), &a),
			 0);
	assert_int_equal(shmq_async_get(a, 5 * 1000000000ll), 0);
	assert_true(shmq_now_ns() - t0 < 5 * 1000000000ll);
	shmq_async_free(a);
	assert_int_equal(out, 35);
	assert_int_equal(access(flag, F_OK), 0); /* the fault did fire */
	unsetenv(UNPIN_ENV);
	pool_wait_replaced(p, 1);
	pool_done_killed(p, NULL, 0, 1);
	unlink(flag); /* not before: a replacement started with the hook stays armed */
	shmq_region_close(r);
}

/* A job that lost a worker is finished by the creator from its chunk states
 * (jobs_settle) when its count stands still, also while the worker that made
 * the last count has not finished it yet.  That worker then finished
 * whatever job had taken the slot meanwhile: found by an audit, a worker
 * held (by the test seam) between unpinning the job and its finish, the
 * next job in the slot, two elements behind a shut gate, was reported done
 * with none of its elements run.  The finish is made under the pin now, so
 * the slot is not reused before it. */
static void test_late_finish_spares_next_job(void **state)
{
	char die[96], hold[96], go[112], held[112];
	int64_t in[8], out[8], gin[2], gout[2];
	shmq_async *a;
	shmq_region *r;
	shmq_pool *p;

	(void)state;
	snprintf(die, sizeof(die), "/tmp/shmq-test-pool-die-%d", (int)getpid());
	snprintf(hold, sizeof(hold), "/tmp/shmq-test-pool-hold-%d", (int)getpid());
	snprintf(go, sizeof(go), "%s.go", hold);
	snprintf(held, sizeof(held), "%s.held", hold);
	unlink(die);
	unlink(go);
	unlink(held);
	assert_int_equal(setenv(DIE_ENV, die, 1), 0);
	assert_int_equal(setenv(HOLD_ENV, hold, 1), 0);
	r = region_new();
	p = pool_new(r, NWORKERS, 1);
	for (int i = 0; i < 8; i++) {
		in[i] = i;
		out[i] = -1;
	}
	/* a worker dies under the job (it is settled by the creator), and the
	 * worker that completes its count is held before it finishes it */
	assert_int_equal(shmq_pool_map(p, "die_once_on_zero", in, sizeof(int64_t), out,
				       sizeof(int64_t), 8, 20 * 1000000000ll), 0);
	for (int i = 0; i < 8; i++)
		assert_int_equal(out[i], 7 * i);
	assert_int_equal(access(die, F_OK), 0);  /* a worker did die */
	assert_int_equal(access(held, F_OK), 0); /* and one was held */
	/* the next job takes the slot; it cannot end while the gate is shut */
	gin[0] = GATE_FROM;
	gin[1] = GATE_FROM + 1;
	gout[0] = gout[1] = -1;
	gate_set(false);
	assert_int_equal(shmq_pool_map_async(p, "gated", gin, sizeof(int64_t), gout,
					     sizeof(int64_t), 2, &a), 0);
	close(open(go, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)); /* the held worker goes on */
	assert_int_equal(shmq_async_wait(a, 1000 * 1000000ll), -ETIMEDOUT);
	gate_set(true);
	assert_int_equal(shmq_async_get(a, 20 * 1000000000ll), 0);
	assert_int_equal(gout[0], 7 * GATE_FROM);
	assert_int_equal(gout[1], 7 * (GATE_FROM + 1));
	shmq_async_free(a);
	unsetenv(DIE_ENV);
	unsetenv(HOLD_ENV);
	pool_done_killed(p, NULL, 0, 1);
	unlink(die);
	unlink(go);
	unlink(held);
	shmq_region_close(r);
}

/* The state letter of /proc/PID/stat (field 3), or 0. */
static char proc_state(pid_t pid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

struct stopped_worker {
	const char *held; /* the file the stopped worker names itself in */
	int64_t stall_ns; /* how long it stays stopped */
	pid_t pid;
};

/* Wait for the worker to stop itself (fault_stop_once), keep it stopped
 * stall_ns, then continue it. */
static void *stopped_worker_main(void *arg)
{
	struct stopped_worker *sw = arg;
	char buf[32] = { 0 };
	int64_t until;
	int fd = -1;

	for (int t = 0; t < 30000 && (fd = open(sw->held, O_RDONLY | O_CLOEXEC)) < 0; t++)
		usleep(1000);
	if (fd < 0)
		return NULL;
	if (read(fd, buf, sizeof(buf) - 1) > 0)
		sw->pid = (pid_t)atoi(buf);
	close(fd);
	if (sw->pid <= 0)
		return NULL;
	for (int t = 0; t < 30000 && proc_state(sw->pid) != 'T'; t++)
		usleep(1000);
	until = shmq_now_ns() + sw->stall_ns;
	while (shmq_now_ns() < until)
		usleep(10000);
	kill(sw->pid, SIGCONT);
	return NULL;
}

/* The worker that completes a job's count is stopped (a debugger, job
 * control) before it finishes the job and unpins it, longer than the 2 s
 * after which a pin on a running worker counts as forged, while the creator
 * finishes the job itself (a worker died under it: jobs_settle).  Found by
 * an audit: the creator's wait for the pin took the stopped worker's real
 * pin for a forged one, and the map failed with -EBADMSG (its results all
 * there) and lost its job slot for the pool's life.  A stopped worker's
 * pin is its own: the map waits for it, and returns the results. */
static void test_stopped_worker_pin_not_forged(void **state)
{
	char die[96], stop[96], tmp[112], held[112];
	struct stopped_worker sw = { held, 2500 * 1000000ll, 0 };
	int64_t in[8], out[8];
	shmq_region *r;
	shmq_pool *p;
	pthread_t th;

	(void)state;
	alarm(120);
	snprintf(die, sizeof(die), "/tmp/shmq-test-pool-die-%d", (int)getpid());
	snprintf(stop, sizeof(stop), "/tmp/shmq-test-pool-stop-%d", (int)getpid());
	snprintf(tmp, sizeof(tmp), "%s.tmp", stop);
	snprintf(held, sizeof(held), "%s.held", stop);
	unlink(die);
	unlink(tmp);
	unlink(held);
	assert_int_equal(setenv(DIE_ENV, die, 1), 0);
	assert_int_equal(setenv(STOP_ENV, stop, 1), 0);
	r = region_new();
	p = pool_new(r, NWORKERS, 1);
	for (int i = 0; i < 8; i++) {
		in[i] = i;
		out[i] = -1;
	}
	assert_int_equal(pthread_create(&th, NULL, stopped_worker_main, &sw), 0);
	assert_int_equal(shmq_pool_map(p, "die_once_on_zero", in, sizeof(int64_t), out,
				       sizeof(int64_t), 8, 20 * 1000000000ll), 0);
	pthread_join(th, NULL);
	for (int i = 0; i < 8; i++)
		assert_int_equal(out[i], 7 * i);
	assert_int_equal(access(die, F_OK), 0); /* a worker did die */
	assert_true(sw.pid > 0);                /* and one was stopped */
	unsetenv(DIE_ENV);
	unsetenv(STOP_ENV);
	pool_done_killed(p, NULL, 0, 1);
	unlink(die);
	unlink(tmp);
	unlink(held);
	alarm(0);
	shmq_region_close(r);
}

/* Until pid (a worker, our child) has exited; it stays unreaped (WNOWAIT):
 * the pool reaps it. */
static void wait_exited(pid_t pid)
{
	siginfo_t si;

	for (int t = 0; t < 10000; t++) {
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
		    si.si_pid == pid)
			return;
		usleep(1000);
	}
	fail_msg("worker %d did not exit", (int)pid);
}

/* A worker that dies while the pool is idle is replaced by the creator's next
 * submission, before the work lands (pool.h: replacement happens in the
 * creator's calls, at most once per 10 ms); meanwhile the stats show it. */
static void test_idle_death_replaced_at_submit(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, NWORKERS, 0);
	struct shmq_pool_worker_stats s;
	int64_t in[100], out[100];
	pid_t pids[NWORKERS];
	shmq_async *a;

	(void)state;
	pool_wait_started(p);
	pids_of(p, pids);
	assert_int_equal(kill(pids[0], SIGKILL), 0);
	wait_exited(pids[0]);
	usleep(30 * 1000); /* past the 10 ms between two looks */
	assert_int_equal(shmq_pool_worker_stats(p, 0, &s), 0);
	assert_int_equal(s.restarts, 0); /* reading does not replace */
	for (int i = 0; i < 100; i++)
		in[i] = i;
	assert_int_equal(shmq_pool_map_async(p, "triple", in, sizeof(int64_t), out,
					     sizeof(int64_t), 100, &a), 0);
	assert_int_equal(shmq_pool_worker_stats(p, 0, &s), 0);
	assert_int_equal(s.restarts, 1); /* replaced by the submission itself */
	assert_true(s.pid != pids[0] && s.pid > 0);
	pids[0] = s.pid;
	assert_int_equal(shmq_async_get(a, 60 * 1000000000ll), 0);
	shmq_async_free(a);
	for (int i = 0; i < 100; i++)
		assert_int_equal(out[i], 3 * i + 1);
	pool_done_killed(p, pids, NWORKERS, 1);
	shmq_region_close(r);
}

/* n submissions of one task 12 ms apart (each makes a look), stopping early
 * once slot's worker was replaced: how many were made. */
static int spaced_until_replaced(shmq_pool *p, unsigned slot, int n)
{
	struct shmq_pool_worker_stats s;
	int k;

	for (k = 0; k < n; k++) {
		int64_t in = k, out = 0;
		shmq_async *a;

		assert_int_equal(shmq_pool_worker_stats(p, slot, &s), 0);
		if (s.restarts)
			break;
		usleep(12 * 1000);
		assert_int_equal(shmq_pool_apply_async(p, "triple", &in, sizeof(in), &out,
						       sizeof(out), &a), 0);
		assert_int_equal(shmq_async_get(a, 10 * 1000000000ll), 0);
		shmq_async_free(a);
		assert_int_equal(out, 3 * in + 1);
	}
	return k;
}

/* A replacement the system refuses for want of a resource (here every
 * descriptor: RLIMIT_NOFILE at 3, so the spawn's memfd cannot be made)
 * leaves the slot empty while the live worker runs the work; once
 * descriptors are back the next look replaces it.  The build before broke
 * the pool for good with -EMFILE at the first refusal. */
static void test_refused_replacement_retried(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, NWORKERS, 0);
	struct shmq_pool_worker_stats s;
	struct rlimit old, none;
	int rc[3], got[3];
	pid_t pids[NWORKERS];

	(void)state;
	pool_wait_started(p);
	pids_of(p, pids);
	assert_int_equal(kill(pids[0], SIGKILL), 0);
	wait_exited(pids[0]);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	none = old;
	none.rlim_cur = 3;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &none), 0);
	/* three submissions, each after the 10 ms between two looks: three
	 * refused replacements; nothing asserted before the limit is back */
	for (int k = 0; k < 3; k++) {
		int64_t in = k, out = -1;
		shmq_async *a;

		usleep(12 * 1000);
		rc[k] = shmq_pool_apply_async(p, "triple", &in, sizeof(in), &out, sizeof(out), &a);
		if (rc[k] == 0) {
			rc[k] = shmq_async_get(a, 10 * 1000000000ll);
			shmq_async_free(a);
		}
		got[k] = (int)out;
	}
	assert_int_equal(shmq_pool_worker_stats(p, 0, &s), 0);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	assert_int_equal(s.restarts, 0); /* refused, not replaced */
	assert_int_equal(s.pid, 0); /* no process in the slot */
	for (int k = 0; k < 3; k++) {
		assert_int_equal(rc[k], 0);
		assert_int_equal(got[k], 3 * k + 1);
	}
	spaced_until_replaced(p, 0, 100);
	assert_int_equal(shmq_pool_worker_stats(p, 0, &s), 0);
	assert_int_equal(s.restarts, 1);
	assert_true(s.pid > 0 && s.pid != pids[0]);
	pids[0] = s.pid;
	pool_done_killed(p, pids, NWORKERS, 1);
	shmq_region_close(r);
}

/* The look for dead workers each submission makes (at most every 10 ms)
 * asks the kernel nothing while every worker runs: each worker's life lock
 * says so (Protocol LIFE).  With one poll(2) per look (the build before),
 * this counts 10. */
static void test_look_makes_no_system_call(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, NWORKERS, 0);
	pid_t pids[NWORKERS];
	uint32_t polls;

	(void)state;
	pool_wait_started(p);
	pids_of(p, pids);
	polls_count(true);
	assert_int_equal(spaced_until_replaced(p, 0, 10), 10); /* 12 ms apart: each looks */
	polls = shmq__load_relaxed(&polls_seen);
	polls_count(false);
	assert_int_equal(polls, 0);
	pool_done(p, pids, NWORKERS);
	shmq_region_close(r);
}

/* A caller asleep for its job is woken once the worker has dropped its pin
 * on the job (Protocol CHUNK_PIN), so it collects the result without a look
 * at whether that worker lives and without yielding the CPU back to it.  The
 * build before woke it first: a caller that then ran before the worker's
 * unpin (on the worker's CPU, it preempts the waker) spun in job_unpin with
 * a waitid(2) and a sched_yield per look - 15 to 18 waitid calls in 40
 * round trips here, none with this build. */
static void test_woken_caller_finds_no_pin(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, NWORKERS, 0);
	pid_t pids[NWORKERS];
	uint32_t waitids;

	(void)state;
	pool_wait_started(p);
	pids_of(p, pids);
	waitids_count(true);
	for (int k = 0; k < 40; k++) {
		int64_t in = k, out = 0;
		shmq_async *a;

		usleep(3 * 1000); /* the workers go to sleep: the caller will too */
		assert_int_equal(shmq_pool_apply_async(p, "triple", &in, sizeof(in), &out,
						       sizeof(out), &a), 0);
		assert_int_equal(shmq_async_get(a, 10 * 1000000000ll), 0);
		shmq_async_free(a);
		assert_int_equal(out, 3 * in + 1);
	}
	waitids = shmq__load_relaxed(&waitids_seen);
	waitids_count(false);
	/* 0 unless a caller's wait ran out of its slice and it then met the
	 * worker preempted between its mark and its unpin: allow two */
	assert_in_range(waitids, 0, 2);
	pool_done(p, pids, NWORKERS);
	shmq_region_close(r);
}

/* An idle worker looks whether the pool's creator still runs at the end of
 * each idle slice (50 ms): its parent is the creator, so getppid(2) and the
 * region's process table say so without /proc.  The build before read
 * /proc/PID/stat at each look, some 100 µs of CPU: 14-16 reads by the two
 * workers of an idle pool in 400 ms.  That look with the pidfds of
 * core/ptab.c still reads it twice per worker, at its first look. */
static void test_idle_worker_reads_no_proc(void **state)
{
	char log[96];
	pid_t pids[NWORKERS];
	unsigned before;
	shmq_region *r;
	shmq_pool *p;

	(void)state;
	snprintf(log, sizeof(log), "/tmp/shmq-test-pool-proclog-%d", (int)getpid());
	unlink(log);
	assert_int_equal(setenv(SPY_PROC_LOG_ENV, log, 1), 0);
	r = region_new();
	p = pool_new(r, NWORKERS, 0);
	pool_wait_started(p);
	pids_of(p, pids);
	before = spy_proc_log_count(log, pids, NWORKERS); /* a worker's start reads its own */
	usleep(400 * 1000); /* some eight idle slices each */
	unsetenv(SPY_PROC_LOG_ENV);
	assert_int_equal(spy_proc_log_count(log, pids, NWORKERS) - before, 0);
	for (unsigned i = 0; i < NWORKERS; i++)
		assert_int_equal(kill(pids[i], 0), 0); /* and they run on */
	pool_done(p, pids, NWORKERS);
	unlink(log);
	shmq_region_close(r);
}

/* The creator of a pool dies (without a word to its workers): each idle
 * worker sees it at the end of its slice and exits.  The workers become
 * this process's children (a subreaper), so their exits are waited for. */
static void test_creator_death_ends_idle_workers(void **state)
{
	pid_t pids[NWORKERS], c;
	int fds[2], st, gone = 0;
	int64_t until;

	(void)state;
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	c = fork();
	assert_true(c >= 0);
	if (c == 0) {
		struct shmq_region_opts ro = { .size = REGION_SIZE };
		struct shmq_pool_opts o = { .workers = NWORKERS };
		struct shmq_pool_worker_stats s;
		shmq_region *r;
		shmq_pool *p;

		close(fds[0]);
		if (shmq_region_create(NULL, &ro, &r) || shmq_pool_create(r, &o, &p))
			_exit(2);
		for (unsigned i = 0; i < NWORKERS; i++) {
			for (int t = 0; t < 30000; t++) {
				if (shmq_pool_worker_stats(p, i, &s))
					_exit(3);
				if (s.started)
					break;
				usleep(1000);
			}
			if (!s.started)
				_exit(4);
			pids[i] = s.pid;
		}
		if (write(fds[1], pids, sizeof(pids)) != (ssize_t)sizeof(pids))
			_exit(5);
		raise(SIGKILL); /* nothing closed, nothing freed */
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], pids, sizeof(pids)), (ssize_t)sizeof(pids));
	close(fds[0]);
	assert_int_equal(waitpid(c, &st, 0), c);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	until = shmq_now_ns() + 5 * 1000000000ll;
	while (gone < NWORKERS && shmq_now_ns() < until) {
		for (unsigned i = 0; i < NWORKERS; i++)
			if (pids[i] > 0 && waitpid(pids[i], &st, WNOHANG) == pids[i]) {
				pids[i] = 0;
				gone++;
			}
		usleep(2000);
	}
	for (unsigned i = 0; i < NWORKERS; i++)
		if (pids[i] > 0) { /* still there: do not leave it behind */
			kill(pids[i], SIGKILL);
			waitpid(pids[i], &st, 0);
		}
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
	assert_int_equal(gone, NWORKERS);
}

/* 10 s of napping per worker: terminate cancels it whenever it comes */
#define TERM_N 20000u

struct map_thread {
	shmq_pool *p;
	int64_t *in, *out;
	int rc;
	int64_t ended;
};

static void *map_thread_main(void *arg)
{
	struct map_thread *m = arg;

	m->rc = shmq_pool_map(m->p, "nap_1ms", m->in, sizeof(int64_t), m->out, sizeof(int64_t),
			      TERM_N, SHMQ_FOREVER);
	m->ended = shmq_now_ns();
	return NULL;
}

static void test_terminate(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, NWORKERS, 0);
	struct map_thread m = { 0 };
	pid_t pids[NWORKERS];
	pthread_t th;
	shmq_async *a;
	int64_t t0, st;
	int64_t in0 = 1, out0;
	uint64_t before;

	(void)state;
	pids_of(p, pids);
	m.p = p;
	m.in = calloc(TERM_N, sizeof(int64_t));
	m.out = calloc(TERM_N, sizeof(int64_t));
	assert_int_equal(shmq_pool_apply_async(p, "slow", &in0, sizeof(in0), &out0, sizeof(out0),
					       &a), 0);
	assert_int_equal(shmq_async_wait(a, SHMQ_FOREVER), 0);
	shmq_async_free(a);
	before = tasks_done(p);
	assert_int_equal(pthread_create(&th, NULL, map_thread_main, &m), 0);
	wait_under_way(p, before); /* the map was submitted: terminate cancels it */
	t0 = shmq_now_ns();
	assert_int_equal(shmq_pool_terminate(p), 0);
	pthread_join(th, NULL);
	assert_int_equal(m.rc, -ECANCELED);
	st = m.ended - t0;
	print_message("map returned %.2f ms after terminate\n", st / 1e6);
	assert_true(st < 2000000000ll); /* promptly (generous on a loaded box) */
	/* the workers are gone; the pool refuses new work */
	for (unsigned i = 0; i < NWORKERS; i++)
		assert_int_equal(kill(pids[i], 0), -1);
	assert_int_equal(shmq_pool_apply_async(p, "slow", &in0, sizeof(in0), &out0, sizeof(out0),
					       &a), -EPIPE);
	assert_int_equal(shmq_pool_join(p, SHMQ_FOREVER), 0);
	shmq_pool_free(p);
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	free(m.in);
	free(m.out);
	shmq_region_close(r);
}

/* A pool that does not fit its region is refused with -ENOSPC before it
 * takes any of it: the region has no free, so a create that allocated its
 * worker areas one by one until the region ran out kept all it took, and
 * no pool (nor anything else) fit afterwards. */
static void test_create_too_big_takes_nothing(void **state)
{
	struct shmq_region_opts ro = { .size = (size_t)4 << 20 };
	struct shmq_pool_opts many = { .workers = SHMQ_POOL_MAX_WORKERS };
	struct shmq_pool_opts big_arena = { .workers = 1, .arena = (size_t)8 << 20 };
	struct shmq_pool_opts tiny_arena = { .workers = 1, .arena = SHMQ__CACHELINE - 1 };
	struct shmq_region_info before, after;
	int64_t in[4] = { 1, 2, 3, 4 }, out[4] = { 0 };
	shmq_region *r;
	shmq_pool *p;

	(void)state;
	assert_int_equal(shmq_region_create(NULL, &ro, &r), 0);
	assert_int_equal(shmq_region_info(r, &before), 0);
	assert_int_equal(shmq_pool_create(r, &many, &p), -ENOSPC);
	assert_int_equal(shmq_pool_create(r, &big_arena, &p), -ENOSPC);
	assert_int_equal(shmq_pool_create(r, &tiny_arena, &p), -ENOSPC);
	assert_int_equal(shmq_region_info(r, &after), 0);
	assert_int_equal(after.used, before.used);
	/* the region is whole: a pool that fits is made and works */
	p = pool_new(r, 1, 0);
	assert_int_equal(shmq_pool_map(p, "triple", in, sizeof(in[0]), out, sizeof(out[0]), 4,
				       10 * 1000000000ll), 0);
	assert_int_equal(out[3], 13);
	pool_done(p, NULL, 0);
	shmq_region_close(r);
}

/* A create refused for want of a resource (here descriptors: a worker's
 * spawn) takes none of its region for good.  The region has no free: the
 * refused create kept its header, its worker areas and half of the free
 * space (the arena), so each retry while the limit held took half of what
 * was left, and the region showed a stale pool for each.  Now the next
 * create takes over what the refused one made. */
static void test_create_refused_retried_takes_nothing(void **state)
{
	struct shmq_region_opts ro = { .size = (size_t)4 << 20 };
	struct shmq_pool_opts o = { .workers = 2 };
	struct shmq_region_info before, info;
	int64_t in[4] = { 1, 2, 3, 4 }, out[4] = { 0 };
	struct rlimit old, low;
	uint64_t used = 0;
	shmq_region *r;
	shmq_pool *p;
	int fd, rc;

	(void)state;
	assert_int_equal(shmq_region_create(NULL, &ro, &r), 0);
	assert_int_equal(shmq_region_info(r, &before), 0);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	close(fd);
	low = old;
	low.rlim_cur = (rlim_t)fd; /* the lowest free number: no descriptor opens */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
		rc = shmq_pool_create(r, &o, &p);
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
		assert_int_equal(rc, -EMFILE);
		assert_int_equal(shmq_region_info(r, &info), 0);
		assert_int_equal(info.objects, before.objects + 1);
		if (i == 0)
			used = info.used;
		assert_int_equal(info.used, used);
	}
	/* the limit lifted: the pool is made in what the refused ones took */
	p = pool_new(r, 2, 0);
	assert_int_equal(shmq_region_info(r, &info), 0);
	assert_int_equal(info.used, used);
	assert_int_equal(info.objects, before.objects + 1);
	assert_int_equal(shmq_pool_map(p, "triple", in, sizeof(in[0]), out, sizeof(out[0]), 4,
				       10 * 1000000000ll), 0);
	assert_int_equal(out[3], 13);
	pool_done(p, NULL, 0);
	shmq_region_close(r);
}

/* Pools made and freed one after another in one region: each used to take
 * a new header, new worker areas and half of the free space, so a 64 MiB
 * region refused the eighth.  A freed pool's memory goes to the next. */
static void test_create_free_cycles_reuse(void **state)
{
	shmq_region *r = region_new();
	int64_t in[4] = { 1, 2, 3, 4 }, out[4] = { 0 };
	struct shmq_region_info info;
	uint64_t used = 0;

	(void)state;
	for (int i = 0; i < 20; i++) {
		shmq_pool *p = pool_new(r, 2, 0);

		out[3] = 0;
		assert_int_equal(shmq_pool_map(p, "triple", in, sizeof(in[0]), out, sizeof(out[0]),
					       4, 10 * 1000000000ll), 0);
		assert_int_equal(out[3], 13);
		if (i % 2)
			pool_done(p, NULL, 0);
		else
			shmq_pool_free(p); /* terminates */
		assert_int_equal(shmq_region_info(r, &info), 0);
		if (i == 0)
			used = info.used;
		assert_int_equal(info.used, used);
	}
	shmq_region_close(r);
}

#define CANNOT 77 /* the child could not set the scene up: skip */

/* In a child, in a mount namespace of its own with an 8 MiB tmpfs on
 * /dev/shm: a pool create in a lazily reserved region whose file system has
 * room for the pool's header and deques but not its arena. */
static int full_shm_child(void)
{
	struct shmq_region_opts ro = { .size = (size_t)8 << 20, .flags = SHMQ_REGION_NOPREFAULT };
	struct shmq_pool_opts o = { .workers = 2 };
	struct shmq_region_info before, info;
	int64_t in[2] = { 1, 2 }, out[2] = { 0 };
	shmq_region *r;
	shmq_pool *p;
	int fd, rc;

	alarm(60);
	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=8m"))
		return CANNOT;
	if (shmq_region_create("/full", &ro, &r) || shmq_region_info(r, &before))
		return 1;
	fd = open("/dev/shm/filler", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || posix_fallocate(fd, 0, ((off_t)8 << 20) - ((off_t)512 << 10)))
		return CANNOT;
	rc = shmq_pool_create(r, &o, &p);
	if (rc != -ENOSPC)
		return 2;
	if (shmq_region_info(r, &info) || info.used != before.used || info.objects != before.objects)
		return 3; /* the refused pool took some of the region */
	if (ftruncate(fd, 0))
		return CANNOT;
	if (shmq_pool_create(r, &o, &p))
		return 4;
	if (shmq_pool_map(p, "triple", in, sizeof(in[0]), out, sizeof(out[0]), 2,
			  10 * 1000000000ll) || out[1] != 7)
		return 5;
	shmq_pool_free(p);
	shmq_region_close(r);
	return 0;
}

/* A pool refused for want of room in /dev/shm (a region made with
 * SHMQ_REGION_NOPREFAULT reserves its pages as it hands them out) takes
 * none of the region: the header and the deques it had allocated before the
 * arena's reservation failed stayed taken for good. */
static void test_create_on_full_shm_takes_nothing(void **state)
{
	pid_t pid;
	int rc;

	(void)state;
	if (geteuid() != 0)
		skip(); /* needs a mount namespace */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(full_shm_child());
	rc = tu_wait_child(pid);
	if (rc == CANNOT)
		skip();
	assert_int_equal(rc, 0);
}

static void test_free_running_pool(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, 3, 0);
	pid_t pids[3];

	(void)state;
	pids_of(p, pids);
	shmq_pool_free(p); /* terminates */
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(kill(pids[i], 0), -1);
	shmq_region_close(r);
}

/* ---- hostile memory: region words the pool must not trust ---- */

/* The live header of the pool of region r (its only pool). */
static struct pool_hdr *pool_hdr_of(shmq_region *r)
{
	char name[SHMQ_OBJ_NAME_MAX + 1];
	uint64_t size;
	void *mem;

	snprintf(name, sizeof(name), "pool.%u.0", shmq__region_self(r));
	assert_int_equal(shmq__obj_find(r, name, SHMQ__OBJ_POOL, &mem, &size), 0);
	assert_true(size >= sizeof(struct pool_hdr));
	return mem;
}

/* A live worker's life lock forged to "not held", then to "owner died",
 * and the other's leaving word forged to garbage: the looks fall back to
 * polling the pidfds, which find them running, so neither is taken for
 * dead, and every task still runs. */
static void test_hostile_life_word_live(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, NWORKERS, 0);
	struct pool_hdr *h = pool_hdr_of(r);
	pid_t pids[NWORKERS];
	uint32_t polls;

	(void)state;
	pool_wait_started(p);
	pids_of(p, pids);
	polls_count(true);
	__atomic_store_n(&h->slots[0].life.word, 0u, __ATOMIC_SEQ_CST);
	assert_int_equal(spaced_until_replaced(p, 0, 5), 5);
	__atomic_store_n(&h->slots[0].life.word, FUTEX_OWNER_DIED, __ATOMIC_SEQ_CST);
	assert_int_equal(spaced_until_replaced(p, 0, 5), 5);
	__atomic_store_n(&h->slots[1].leaving, 0xdeadbeefu, __ATOMIC_SEQ_CST);
	assert_int_equal(spaced_until_replaced(p, 1, 5), 5);
	polls = shmq__load_relaxed(&polls_seen);
	polls_count(false);
	assert_true(polls >= 12); /* a poll per look, not a replacement */
	pool_done(p, pids, NWORKERS); /* no restarts */
	shmq_region_close(r);
}

/* A slot's pid word forged (any process attached to the region can write
 * it) to name another process: worker_stats still reports the worker's own
 * pid, which the creator knows privately.  It used to hand the forged word
 * out, and a caller that kills a worker by its reported pid (as these tests
 * do) would have signalled init. */
static void test_hostile_stats_pid(void **state)
{
	struct shmq_pool_worker_stats s;
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, NWORKERS, 0);
	struct pool_hdr *h = pool_hdr_of(r);
	pid_t pids[NWORKERS];

	(void)state;
	pool_wait_started(p);
	pids_of(p, pids);
	__atomic_store_n(&h->slots[0].pid, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&h->slots[1].pid, -5, __ATOMIC_SEQ_CST);
	for (unsigned i = 0; i < NWORKERS; i++) {
		assert_int_equal(shmq_pool_worker_stats(p, i, &s), 0);
		assert_int_equal(s.pid, pids[i]);
	}
	pool_done(p, pids, NWORKERS);
	shmq_region_close(r);
}

/* The pool's state word forged (any process attached to the region can
 * write it): the creator goes by its own record.  It used to read the word
 * back, so a forged CLOSING or EXIT made every submission say -EPIPE on a
 * pool nobody closed, and a forged RUNNING made the join of a closed pool
 * say -EINVAL; the word is put back for the workers, and those that left
 * because of it are replaced. */
static void test_hostile_pool_state(void **state)
{
	static const uint32_t forged[] = { POOL_CLOSING, POOL_EXIT, POOL_TERMINATE, 77 };
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, NWORKERS, 0);
	struct pool_hdr *h = pool_hdr_of(r);
	int64_t in[50], out[50];

	(void)state;
	for (int i = 0; i < 50; i++)
		in[i] = i;
	for (unsigned k = 0; k < sizeof(forged) / sizeof(forged[0]); k++) {
		__atomic_store_n(&h->state, forged[k], __ATOMIC_SEQ_CST);
		memset(out, 0, sizeof(out));
		assert_int_equal(shmq_pool_map(p, "triple", in, sizeof(in[0]), out, sizeof(out[0]),
					       50, 30 * 1000000000ll), 0);
		for (int i = 0; i < 50; i++)
			assert_int_equal(out[i], 3 * i + 1);
	}
	assert_int_equal(shmq_pool_close(p), 0);
	__atomic_store_n(&h->state, POOL_RUNNING, __ATOMIC_SEQ_CST);
	assert_int_equal(shmq_pool_join(p, 30 * 1000000000ll), 0);
	shmq_pool_free(p);
	shmq_region_close(r);
}

/* A dead worker's life lock forged back to "held by its pid": the looks
 * believe it, but every LIFE_FULL_EVERY-th look polls the pidfds, so the
 * replacement comes late but comes; meanwhile the live worker runs every
 * task. */
static void test_hostile_life_word_dead(void **state)
{
	struct shmq_pool_worker_stats s;
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, NWORKERS, 0);
	struct pool_hdr *h = pool_hdr_of(r);
	pid_t pids[NWORKERS];
	int made;

	(void)state;
	pool_wait_started(p);
	pids_of(p, pids);
	assert_int_equal(kill(pids[1], SIGKILL), 0);
	wait_exited(pids[1]);
	/* the kernel marked it at the death */
	assert_int_equal(__atomic_load_n(&h->slots[1].life.word, __ATOMIC_SEQ_CST) &
			 (FUTEX_TID_MASK | FUTEX_OWNER_DIED), FUTEX_OWNER_DIED);
	__atomic_store_n(&h->slots[1].life.word, (uint32_t)pids[1], __ATOMIC_SEQ_CST);
	made = spaced_until_replaced(p, 1, LIFE_FULL_EVERY + 8);
	printf("replaced after %d spaced submissions\n", made);
	assert_true(made >= 1 && made <= (int)LIFE_FULL_EVERY + 1);
	assert_int_equal(shmq_pool_worker_stats(p, 1, &s), 0);
	assert_int_equal(s.restarts, 1);
	pids[1] = s.pid;
	pool_done_killed(p, pids, NWORKERS, 1);
	shmq_region_close(r);
}

/* The one job slot in use (ACTIVE), waited for (30 s at most). */
static unsigned job_active(struct pool_hdr *h)
{
	for (int t = 0; t < 30000; t++) {
		for (unsigned j = 0; j < SHMQ_POOL_MAX_JOBS; j++)
			if (__atomic_load_n(&h->jobs[j].state, __ATOMIC_SEQ_CST) == JOB_ACTIVE)
				return j;
		usleep(1000);
	}
	fail_msg("no active job");
	return 0;
}

struct forge_in {
	int parent;   /* the spawner's worker */
	int64_t v;
};

/* A subtask that, run by a thief (its input is then the frame in the
 * region), forges its frame's out_size as a hostile peer would: the spawner
 * must not copy 0xffff bytes into its 8-byte result on its stack. */
static int forge_sub(const void *in, void *out)
{
	const struct forge_in *fi = in;

	tu_sleep_ns(2000000); /* time for the idle worker to steal the others */
	if (shmq_pool_self() != fi->parent) {
		struct pool_frame *f = (struct pool_frame *)((uint8_t *)in -
							     offsetof(struct pool_frame, data));

		__atomic_store_n(&f->out_size, (uint16_t)0xffff, __ATOMIC_RELAXED);
	}
	*(int64_t *)out = fi->v * 2;
	return 0;
}
SHMQ_TASK(forge_sub);

static int forge_parent(const void *in, void *out)
{
	struct shmq_pool_group g = SHMQ_POOL_GROUP_INIT;
	struct forge_in fi[8];
	int64_t res[8];
	int rc;

	(void)in;
	for (int i = 0; i < 8; i++) {
		fi[i].parent = shmq_pool_self();
		fi[i].v = i;
		rc = shmq_pool_spawn(&g, "forge_sub", &fi[i], sizeof(fi[i]), &res[i], sizeof(res[i]));
		if (rc)
			return rc;
	}
	rc = shmq_pool_sync(&g);
	*(int64_t *)out = rc;
	return rc;
}
SHMQ_TASK(forge_parent);

/* A stolen subtask's result is copied by the size the spawner passed; a
 * frame whose size disagrees fails the sync with -EBADMSG (before the fix:
 * a stack overflow in the spawner, which crashed it). */
static void test_hostile_frame_out_size(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, NWORKERS, 0);
	int64_t in = 0, out = 0;
	int rc = 0;

	(void)state;
	pool_wait_started(p);
	/* nothing stolen in a round: the map succeeds; retry until a thief ran one */
	for (int t = 0; t < 500 && rc == 0; t++)
		rc = shmq_pool_map(p, "forge_parent", &in, sizeof(in), &out, sizeof(out), 1,
				   60 * 1000000000ll);
	assert_int_equal(rc, -EBADMSG);
	assert_int_equal(out, -EBADMSG);
	pool_done(p, NULL, 0); /* no worker died */
	shmq_region_close(r);
}

/* A job's error word forged while it runs: async_get returns -EPROTO, not
 * the word's status half as it is (before the fix: 77, and -100000), which
 * no task returned and no caller expects of a negative-errno API. */
static void test_hostile_err_word(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, 1, 10);
	struct pool_hdr *h = pool_hdr_of(r);
	int64_t in[GATE_FROM + 10], out[GATE_FROM + 10];
	const uint32_t forged[] = { 77, (uint32_t)-100000, (uint32_t)-EIO };
	const int want[] = { -EPROTO, -EPROTO, -EIO };
	struct pool_job *job;
	shmq_async *a;

	(void)state;
	for (int i = 0; i < GATE_FROM + 10; i++)
		in[i] = i;
	for (int k = 0; k < 3; k++) {
		gate_set(false);
		assert_int_equal(shmq_pool_map_async(p, "gated", in, sizeof(int64_t), out,
						     sizeof(int64_t), GATE_FROM + 10, &a), 0);
		job = &h->jobs[job_active(h)];
		__atomic_store_n(&job->err, forged[k], __ATOMIC_RELAXED); /* element 0 */
		gate_set(true);
		assert_int_equal(shmq_async_get(a, 30 * 1000000000ll), want[k]);
		shmq_async_free(a);
	}
	shmq_pool_close(p);
	assert_int_equal(shmq_pool_join(p, SHMQ_FOREVER), 0);
	shmq_pool_free(p);
	shmq_region_close(r);
}

/* A job's nchunks forged to 2^62 + 1 (times 4 it wraps to 4, so the chunk
 * array "fits") while a worker dies: the creator's recovery walks the chunk
 * count it submitted, not the region's (before the fix: it read past the
 * region and the creator crashed). */
static void test_hostile_nchunks_recover(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, 1, 10);
	struct pool_hdr *h = pool_hdr_of(r);
	struct shmq_pool_worker_stats s;
	int64_t *in = malloc(200 * sizeof(int64_t)), *out = malloc(200 * sizeof(int64_t));
	struct pool_job *job;
	uint32_t *chunks;
	shmq_async *a;
	pid_t pid;
	int rc, t;

	(void)state;
	for (int i = 0; i < 200; i++)
		in[i] = i;
	pids_of(p, &pid);
	gate_set(false);
	assert_int_equal(shmq_pool_map_async(p, "gated", in, sizeof(int64_t), out, sizeof(int64_t),
					     200, &a), 0);
	job = &h->jobs[job_active(h)];
	chunks = (uint32_t *)(r->base + __atomic_load_n(&job->chunks_off, __ATOMIC_RELAXED));
	/* chunk 10 (elements 100..) waits at the gate: the worker is in it */
	for (t = 0; t < 30000 && !__atomic_load_n(&chunks[GATE_FROM / 10], __ATOMIC_ACQUIRE); t++)
		usleep(1000);
	assert_true(t < 30000);
	__atomic_store_n(&job->nchunks, (1ull << 62) + 1, __ATOMIC_RELAXED);
	assert_int_equal(kill(pid, SIGKILL), 0);
	/* each wait supervises: the dead worker is replaced, its job recovered */
	for (t = 0; t < 1500; t++) {
		rc = shmq_async_wait(a, 20000000);
		assert_int_equal(rc, -ETIMEDOUT);
		assert_int_equal(shmq_pool_worker_stats(p, 0, &s), 0);
		if (s.restarts == 1)
			break;
	}
	assert_int_equal(s.restarts, 1);
	__atomic_store_n(&job->nchunks, 20, __ATOMIC_RELAXED);
	gate_set(true);
	/* the replacement may have dropped the job's words while they were
	 * forged: end it either way */
	assert_int_equal(shmq_pool_terminate(p), 0);
	rc = shmq_async_wait(a, 10 * 1000000000ll);
	assert_true(rc == 0 || rc == -ECANCELED);
	shmq_async_free(a);
	assert_int_equal(shmq_pool_join(p, SHMQ_FOREVER), 0);
	shmq_pool_free(p);
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	free(in);
	free(out);
	shmq_region_close(r);
}

struct claim_forger {
	shmq_region *r;
	struct pool_hdr *h;
	unsigned job;
	unsigned forged; /* the slot whose claim it forged */
};

/* Once the job's only chunk is claimed, forge the claim of the other
 * worker (which never pins this job) and open the gate. */
static void *claim_forger_main(void *arg)
{
	struct claim_forger *cf = arg;
	struct pool_hdr *h = cf->h;
	unsigned j = job_active(h);
	uint32_t *chunks = (uint32_t *)(cf->r->base +
					__atomic_load_n(&h->jobs[j].chunks_off, __ATOMIC_RELAXED));
	uint32_t runner = 0;

	for (int t = 0; t < 30000 && !(runner = __atomic_load_n(&chunks[0], __ATOMIC_ACQUIRE)); t++)
		usleep(1000);
	cf->job = j;
	cf->forged = __atomic_load_n(&h->slots[0].id, __ATOMIC_ACQUIRE) == runner ? 1 : 0;
	__atomic_store_n(&h->slots[cf->forged].claim, j + 1, __ATOMIC_SEQ_CST);
	gate_set(true);
	return NULL;
}

/* A worker's claim word forged to a job's number: the map still returns by
 * its timeout, and a wait without one ends with -EBADMSG once the pin
 * outlasts any real one (before the fix: an endless sched_yield loop; the
 * alarm ends the test then). */
static void test_hostile_claim(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, NWORKERS, 0);
	struct claim_forger cf = { r, pool_hdr_of(r), 0, 0 };
	int64_t in = GATE_FROM, out = 0, t0, took;
	struct pool_job *job;
	pthread_t th;
	shmq_async *a;
	unsigned j;

	(void)state;
	alarm(120);
	pool_wait_started(p);
	gate_set(false);
	assert_int_equal(pthread_create(&th, NULL, claim_forger_main, &cf), 0);
	t0 = shmq_now_ns();
	assert_int_equal(shmq_pool_map(p, "gated", &in, sizeof(in), &out, sizeof(out), 1,
				       2 * 1000000000ll), -ETIMEDOUT);
	took = shmq_now_ns() - t0;
	pthread_join(th, NULL);
	print_message("map with a forged claim returned after %.2f ms\n", took / 1e6);
	assert_true(took < 2 * 1000000000ll + 5 * 1000000000ll); /* its timeout, generously */
	__atomic_store_n(&cf.h->slots[cf.forged].claim, 0, __ATOMIC_SEQ_CST);

	/* no timeout: the forged pin is taken for corruption */
	assert_int_equal(shmq_pool_map_async(p, "triple", &in, sizeof(in), &out, sizeof(out), 1,
					     &a), 0);
	j = job_active(cf.h);
	job = &cf.h->jobs[j];
	for (int t = 0; t < 30000 && __atomic_load_n(&job->done, __ATOMIC_ACQUIRE) == JOB_RUNNING; t++)
		usleep(1000);
	assert_int_equal(__atomic_load_n(&job->done, __ATOMIC_ACQUIRE), JOB_DONE);
	/* the job is done: no worker pins it any more but the forged one */
	__atomic_store_n(&cf.h->slots[0].claim, j + 1, __ATOMIC_SEQ_CST);
	t0 = shmq_now_ns();
	assert_int_equal(shmq_async_wait(a, SHMQ_FOREVER), -EBADMSG);
	took = shmq_now_ns() - t0;
	assert_true(took < 60 * 1000000000ll);
	__atomic_store_n(&cf.h->slots[0].claim, 0, __ATOMIC_SEQ_CST);
	shmq_async_free(a);
	/* the pool still works (the lost job slot is never reused) */
	assert_int_equal(shmq_pool_map(p, "triple", &in, sizeof(in), &out, sizeof(out), 1,
				       SHMQ_FOREVER), 0);
	assert_int_equal(out, GATE_FROM * 3 + 1);
	pool_done(p, NULL, 0);
	alarm(0);
	shmq_region_close(r);
}

/* ---- a program that forgot shmq_dispatch() ---- */

#define FORGOT_ENV "SHMQ_TEST_POOL_FORGOT"

/* main() of a program that does not call shmq_dispatch(): its pool's
 * workers (the same program, FORGOT_ENV inherited) start nothing and exit
 * with SHMQ_EXIT_NODISPATCH.  Prints the map's result and the restarts. */
static int forgot_main(void)
{
	struct shmq_region_opts ro = { .size = (size_t)8 << 20 };
	struct shmq_pool_opts po = { .workers = 1 };
	struct shmq_pool_worker_stats s = { 0 };
	int64_t in = 1, out = 0;
	shmq_region *r;
	shmq_pool *p;
	int rc;

	if (shmq_region_create(NULL, &ro, &r))
		return 92;
	rc = shmq_pool_create(r, &po, &p);
	if (!rc) {
		rc = shmq_pool_map(p, "triple", &in, sizeof(in), &out, sizeof(out), 1,
				   20 * 1000000000ll);
		(void)shmq_pool_worker_stats(p, 0, &s);
		shmq_pool_terminate(p);
		shmq_pool_free(p);
	}
	printf("rc=%d restarts=%u\n", rc, s.restarts);
	fflush(stdout);
	shmq_region_close(r);
	return 0;
}

/* The pool fails with -ECHILD at its worker's first SHMQ_EXIT_NODISPATCH:
 * no restart can help (before: it restarted the worker twice more). */
static void test_nodispatch_breaks_at_once(void **state)
{
	char self[PATH_MAX], env[] = FORGOT_ENV "=1";
	char *argv[] = { self, NULL };
	char *envp[] = { env, NULL };
	struct shmq_run_opts o = { .capture = SHMQ_STDOUT | SHMQ_STDERR, .envp = envp,
				   .timeout_ns = 60 * 1000000000ll };
	struct shmq_run_result res;
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	unsigned restarts = 99;
	int rc = 0;

	(void)state;
	assert_true(len > 0);
	self[len] = '\0';
	assert_int_equal(shmq_run(argv, &o, &res), 0);
	assert_int_equal(res.status, 0);
	assert_non_null(res.out);
	print_message("%s", res.out);
	assert_int_equal(sscanf(res.out, "rc=%d restarts=%u", &rc, &restarts), 2);
	shmq_run_result_free(&res);
	assert_int_equal(rc, -ECHILD);
	assert_int_equal(restarts, 0);
}

/* ---- an idle worker's spin adapts ---- */

/* sched_yield calls of this process: the library's reach this definition
 * (the executable's comes first), in the workers as in the test */
static unsigned long yields;

int sched_yield(void)
{
	__atomic_add_fetch(&yields, 1, __ATOMIC_RELAXED);
	return (int)syscall(SYS_sched_yield);
}

static int yield_count(const void *in, void *out)
{
	(void)in;
	*(uint64_t *)out = __atomic_load_n(&yields, __ATOMIC_RELAXED);
	return 0;
}
SHMQ_TASK(yield_count);

/* Run task (no input) once through apply_async; its output lands in out. */
static void apply_no_input(shmq_pool *p, const char *task, void *out, size_t out_size)
{
	shmq_async *a;

	assert_int_equal(shmq_pool_apply_async(p, task, NULL, 0, out, out_size, &a), 0);
	assert_int_equal(shmq_async_get(a, 10 * 1000000000ll), 0);
	shmq_async_free(a);
}

static uint64_t worker_yields(shmq_pool *p)
{
	uint64_t n = 0;

	apply_no_input(p, "yield_count", &n, sizeof(n));
	return n;
}

/* n tasks 3 ms apart (the workers go idle between them): the yields the
 * last one counted. */
static uint64_t sparse_tasks(shmq_pool *p, int n)
{
	uint64_t y = 0;

	for (int i = 0; i < n; i++) {
		usleep(3000);
		y = worker_yields(p);
	}
	return y;
}

/* Nanoseconds the pool's n workers spent runnable but waiting for a CPU so
 * far (/proc/PID/schedstat's second field), or -1 where the kernel does not
 * say. */
static int64_t workers_held_off_ns(shmq_pool *p, unsigned n)
{
	int64_t sum = 0;

	for (unsigned i = 0; i < n; i++) {
		struct shmq_pool_worker_stats ws;
		unsigned long long run, wait;
		char path[64];
		FILE *f;
		int k;

		assert_int_equal(shmq_pool_worker_stats(p, i, &ws), 0);
		snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)ws.pid);
		f = fopen(path, "r");
		if (!f)
			return -1;
		k = fscanf(f, "%llu %llu", &run, &wait);
		fclose(f);
		if (k != 2)
			return -1;
		sum += (int64_t)wait;
	}
	return sum;
}

/* A window of sparse tasks counts only if the workers waited for a CPU for
 * less than this in all: on a machine busy with other work a worker held off
 * its CPU finds the next task in its look (or its sched_yield hands the CPU
 * to another process for a whole time slice), and its spin grows back, as it
 * should when work keeps arriving while it spins. */
#define HELD_OFF_MAX_NS (2 * 1000000ll)
#define IDLE_WINDOWS    12

/* One task every 3 ms: each comes with a futex wake, so after a few idle
 * spins that found nothing the worker goes to sleep after a bare look, with
 * no sched_yield; a spin of the full length makes some ten per task.  The
 * best of three windows in which the worker was not held off its CPU (up to
 * IDLE_WINDOWS tried; none: skipped); a spin that does not adapt makes some
 * 200 a window, every window. */
static void test_idle_spin_adapts(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, 1, 0);
	uint64_t best = UINT64_MAX;
	int clean = 0;

	(void)state;
	(void)sparse_tasks(p, 12); /* 50 us halves to nothing in 7 */
	for (int w = 0; w < IDLE_WINDOWS && clean < 3 && best > 5; w++) {
		int64_t h0 = workers_held_off_ns(p, 1);
		uint64_t y0 = worker_yields(p), y1 = sparse_tasks(p, 20);
		int64_t h1 = workers_held_off_ns(p, 1);
		bool counts = h0 < 0 || h1 < 0 || h1 - h0 < HELD_OFF_MAX_NS;

		print_message("sched_yield in the worker over 20 sparse tasks: %llu (held off %lld us%s)\n",
			      (unsigned long long)(y1 - y0), (long long)(h1 - h0) / 1000,
			      counts ? "" : ": not counted");
		if (!counts)
			continue;
		clean++;
		if (y1 - y0 < best)
			best = y1 - y0;
	}
	pool_done(p, NULL, 0); /* first: a failure must not leave the workers to later tests */
	shmq_region_close(r);
	if (!clean)
		skip(); /* the worker was held off its CPU in every window */
	assert_true(best <= 5);
}

/* Steal windows the workers of region r's pool opened so far: each look
 * for work of a pool of 2 opens one (worker.c, Protocol STEAL_WINDOW), which
 * adds 2 to the slot's steal_seq. */
static uint64_t steal_windows(shmq_region *r, unsigned nworkers)
{
	struct pool_hdr *h = pool_hdr_of(r);
	uint64_t n = 0;

	for (unsigned i = 0; i < nworkers; i++)
		n += __atomic_load_n(&h->slots[i].steal_seq, __ATOMIC_RELAXED) / 2;
	return n;
}

/* Tasks the pool's worker i ran so far. */
static uint64_t worker_tasks(shmq_pool *p, unsigned i)
{
	struct shmq_pool_worker_stats s;

	assert_int_equal(shmq_pool_worker_stats(p, i, &s), 0);
	return s.tasks;
}

/* Once the spin has shrunk to nothing, a worker's idle period makes one look
 * for work before it sleeps (after registering as a sleeper) and one after
 * its wake, not the IDLE_SPIN_PROBES looks of a bare spin: after the task of
 * a round trip it goes to sleep at once, off the CPU its caller may wait
 * for.  The warm-up lasts until each worker has run 8 tasks, so has had 8
 * idle periods, and 50 us halved to nothing: the wake of one takes the
 * worker that slept last (Protocol IDLE_WAKE), so the other runs tasks only
 * once its idle slice has ended and it sleeps again, after the first; and a
 * worker whose look before sleeping takes the next task leaves the other
 * woken for nothing, with its first spin still whole (20 tasks of warm-up
 * under ThreadSanitizer and load left 213 looks).  A window counts only if
 * the workers were not held off their CPUs (HELD_OFF_MAX_NS; the first of
 * up to IDLE_WINDOWS, none: skipped); a look more now and then stays (a
 * worker held off its CPU for 3 ms finds the next task in its look and spins
 * a microsecond next time), and the bound leaves room for that. */
static void test_idle_looks_bounded(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, 2, 0);
	uint64_t best = UINT64_MAX;
	int warm = 0, clean = 0;
	bool warmed;

	(void)state;
	while (warm < 400 && (worker_tasks(p, 0) < 8 || worker_tasks(p, 1) < 8)) {
		(void)sparse_tasks(p, 1);
		warm++;
	}
	print_message("warm after %d sparse tasks\n", warm);
	warmed = worker_tasks(p, 0) >= 8 && worker_tasks(p, 1) >= 8;
	/* the best window in which no worker was held off its CPU */
	for (int w = 0; w < IDLE_WINDOWS && clean < 1; w++) {
		int64_t h0 = workers_held_off_ns(p, 2);
		uint64_t w0 = steal_windows(r, 2), w1;
		int64_t h1;
		bool counts;

		(void)sparse_tasks(p, 20);
		w1 = steal_windows(r, 2);
		h1 = workers_held_off_ns(p, 2);
		counts = h0 < 0 || h1 < 0 || h1 - h0 < HELD_OFF_MAX_NS;
		print_message("looks for work over 20 sparse tasks: %llu (held off %lld us%s)\n",
			      (unsigned long long)(w1 - w0), (long long)(h1 - h0) / 1000,
			      counts ? "" : ": not counted");
		if (!counts)
			continue;
		clean++;
		if (w1 - w0 < best)
			best = w1 - w0;
	}
	pool_done(p, NULL, 0); /* first: a failure must not leave the workers to later tests */
	shmq_region_close(r);
	assert_true(warmed);
	if (!clean)
		skip(); /* the workers were held off their CPUs in every window */
	assert_true(best <= 20 * 10);
}

/* ---- placement (worker.c, Protocol PLACE) ---- */

/* Wait (at most 10 s) until all n workers sleep on the idle futex. */
static void workers_asleep(struct pool_hdr *h, unsigned n)
{
	for (int t = 0; t < 10000; t++) {
		if (__atomic_load_n(&h->idle_sleepers, __ATOMIC_SEQ_CST) == n)
			return;
		usleep(1000);
	}
	fail_msg("workers not asleep after 10 s");
}

static void pin(pid_t pid, int cpu)
{
	cpu_set_t m;

	CPU_ZERO(&m);
	CPU_SET(cpu, &m);
	assert_int_equal(sched_setaffinity(pid, sizeof(m), &m), 0);
}

/* Two workers last ran on CPU a and sleep; this caller runs on CPU b.  The
 * first woken worker finds its peer published on its own CPU (forged here:
 * the peer sleeps) and moves off it before its first chunk, and gets its
 * affinity back.  Forged CPU numbers out of range are ignored. */
/* Each freed pool leaves a record of its space in this process, for the
 * next create in its region (pool.c, pool_leftover).  A server that makes a
 * region with a pool for every job and closes it after must not grow by one
 * record a job: the records are bounded (32, the newest).  Before, the
 * count grew by one a round: 40 rounds kept 40 and more. */
static void test_leftovers_bounded(void **state)
{
	struct shmq_region_opts ro = { .size = (size_t)4 << 20 };
	struct shmq_pool_opts po = { .workers = 1, .arena = 256 << 10 };
	unsigned before = shmq__pool_leftovers();

	(void)state;
	for (unsigned k = 0; k < 40; k++) {
		int64_t in = k, out = -1;
		shmq_region *r;
		shmq_pool *p;

		assert_int_equal(shmq_region_create(NULL, &ro, &r), 0);
		assert_int_equal(shmq_pool_create(r, &po, &p), 0);
		assert_int_equal(shmq_pool_map(p, "triple", &in, sizeof(in), &out, sizeof(out), 1,
					       60 * 1000000000ll), 0);
		assert_int_equal(out, in * 3 + 1);
		shmq_pool_free(p);
		shmq_region_close(r);
	}
	print_message("pool leftovers kept: %u before, %u after 40 regions\n", before,
		      shmq__pool_leftovers());
	assert_true(shmq__pool_leftovers() <= 32);
	assert_true(shmq__pool_leftovers() >= (before < 32 ? before : 32)); /* the newest stay */
}

static int held_flag; /* 1 while the holder holds the lock, 2 once it gave it back */

/* Detached: a child forked while it runs must not count it as a thread of
 * its own never joined (ThreadSanitizer's thread leak, exit status 66). */
static void *leftovers_holder(void *arg)
{
	(void)arg;
	shmq__pool_leftovers_hold(true);
	__atomic_store_n(&held_flag, 1, __ATOMIC_SEQ_CST);
	usleep(100 * 1000); /* a fork comes meanwhile */
	shmq__pool_leftovers_hold(false);
	__atomic_store_n(&held_flag, 2, __ATOMIC_SEQ_CST);
	return NULL;
}

/* fork() while another thread holds the list of leftovers (a create or a
 * free of that thread, for a moment): the child, which has no such thread,
 * must find the list free, and its first pool works.  Before, the child
 * inherited the lock taken and its pool create waited for good. */
static void test_fork_while_leftovers_held(void **state)
{
	pthread_attr_t at;
	pthread_t t;
	pid_t pid;
	int status = -1;

	(void)state;
	__atomic_store_n(&held_flag, 0, __ATOMIC_SEQ_CST);
	assert_int_equal(pthread_attr_init(&at), 0);
	assert_int_equal(pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED), 0);
	assert_int_equal(pthread_create(&t, &at, leftovers_holder, NULL), 0);
	pthread_attr_destroy(&at);
	while (!__atomic_load_n(&held_flag, __ATOMIC_SEQ_CST))
		usleep(1000);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct shmq_region_opts ro = { .size = (size_t)4 << 20 };
		struct shmq_pool_opts po = { .workers = 1, .arena = 256 << 10 };
		int64_t in = 5, out = -1;
		shmq_region *r;
		shmq_pool *p;

		if (shmq_region_create(NULL, &ro, &r) || shmq_pool_create(r, &po, &p))
			_exit(2);
		if (shmq_pool_map(p, "triple", &in, sizeof(in), &out, sizeof(out), 1,
				  10 * 1000000000ll) || out != 16)
			_exit(3);
		shmq_pool_free(p);
		shmq_region_close(r);
		_exit(0);
	}
	while (__atomic_load_n(&held_flag, __ATOMIC_SEQ_CST) != 2)
		usleep(1000);
	for (int i = 0; i < 2000; i++) { /* 20 s at most */
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		usleep(10 * 1000);
	}
	if (waitpid(pid, &status, WNOHANG) == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		fail_msg("the child's pool create still waits after 20 s");
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_woken_worker_leaves_peers_cpu(void **state)
{
	cpu_set_t all, m;
	shmq_region *r;
	shmq_pool *p;
	struct pool_hdr *h;
	struct shmq_pool_worker_stats ws[2];
	int64_t in[2] = { 0, 0 };
	int32_t out[2];
	int a = -1, b = -1, first, hostile;
	bool restored[2];

	(void)state;
	assert_int_equal(sched_getaffinity(0, sizeof(all), &all), 0);
	for (int c = 0; c < CPU_SETSIZE && b < 0; c++)
		if (CPU_ISSET(c, &all)) {
			if (a < 0)
				a = c;
			else
				b = c;
		}
	if (b < 0)
		skip(); /* one CPU: nowhere to move */
	r = region_new();
	p = pool_new(r, 2, 1);
	h = pool_hdr_of(r);
	pool_wait_started(p); /* past their set-up: pinned now, they stay pinned */
	for (unsigned i = 0; i < 2; i++)
		assert_int_equal(shmq_pool_worker_stats(p, i, &ws[i]), 0);
	/* both workers run on a (a map of 2 chunks) and go to sleep there */
	pin(ws[0].pid, a);
	pin(ws[1].pid, a);
	assert_int_equal(shmq_pool_map(p, "where", in, sizeof(in[0]), out, sizeof(out[0]), 2,
				       10 * 1000000000ll), 0);
	assert_int_equal(out[0], a);
	assert_int_equal(out[1], a);
	workers_asleep(h, 2);
	assert_int_equal(sched_setaffinity(ws[0].pid, sizeof(all), &all), 0);
	assert_int_equal(sched_setaffinity(ws[1].pid, sizeof(all), &all), 0);
	pin(0, b);
	for (unsigned i = 0; i < 2; i++)
		__atomic_store_n(&h->slots[i].cpu, (uint32_t)a + 1, __ATOMIC_RELAXED);
	out[0] = -1;
	/* one chunk: the woken worker runs it at once.  With two it woke its
	 * peer and yielded to it, and while it waited there the idle CPU a
	 * could take it back before its chunk began */
	assert_int_equal(shmq_pool_map(p, "where", in, sizeof(in[0]), out, sizeof(out[0]), 1,
				       10 * 1000000000ll), 0);
	print_message("the chunk started on CPU %d (peers forged on %d)\n", out[0], a);
	first = out[0]; /* run by the woken worker */
	workers_asleep(h, 2);
	for (unsigned i = 0; i < 2; i++) {
		assert_int_equal(sched_getaffinity(ws[i].pid, sizeof(m), &m), 0);
		restored[i] = CPU_EQUAL(&m, &all);
	}
	/* hostile values: ignored, the map runs */
	__atomic_store_n(&h->slots[0].cpu, UINT32_MAX, __ATOMIC_RELAXED);
	__atomic_store_n(&h->slots[1].cpu, (uint32_t)CPU_SETSIZE + 1, __ATOMIC_RELAXED);
	hostile = shmq_pool_map(p, "where", in, sizeof(in[0]), out, sizeof(out[0]), 2,
				10 * 1000000000ll);
	assert_int_equal(sched_setaffinity(0, sizeof(all), &all), 0);
	pool_done(p, NULL, 0); /* first: a failure must not leave the workers to later tests */
	shmq_region_close(r);
	assert_int_not_equal(first, a);
	assert_true(restored[0] && restored[1]);
	assert_int_equal(hostile, 0);
}

/* ---- which sleeper a wake of one takes (Protocol IDLE_WAKE) ---- */

/* out: the pid of the worker that ran it */
static int whoami(const void *in, void *out)
{
	(void)in;
	*(int32_t *)out = (int32_t)getpid();
	return 0;
}
SHMQ_TASK(whoami);

static int32_t run_whoami(shmq_pool *p)
{
	int32_t pid = 0;

	apply_no_input(p, "whoami", &pid, sizeof(pid));
	assert_true(pid > 0);
	return pid;
}

/* With both workers asleep, a job goes to the one that went to sleep last
 * (the one the hint names, read just before the submission), which is the
 * one that ran the job before: a plain futex wake of one takes the one
 * asleep longest, and the two would take turns.  A worker whose 50 ms idle
 * slice ends sleeps again and becomes the last sleeper, so under load the
 * previous runner is not always the last; the hint follows that, hence the
 * two bounds.  Then a forged hint: every job is still taken, by a second
 * wake. */
static void test_wake_takes_last_sleeper(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, 2, 0);
	struct pool_hdr *h = pool_hdr_of(r);
	int32_t prev, pid;
	pid_t pids[2];
	int named = 0, same = 0;

	(void)state;
	pool_wait_started(p);
	pids_of(p, pids);
	workers_asleep(h, 2);
	prev = run_whoami(p);
	for (int i = 0; i < 30; i++) {
		uint32_t last;

		workers_asleep(h, 2);
		/* worker_idle counts itself in, then names itself: the name is
		 * 0 for that moment if the worker cleared its own on waking */
		for (int t = 0; t < 10000; t++) {
			last = __atomic_load_n(&h->last_sleeper, __ATOMIC_RELAXED);
			if (last != 0)
				break;
			usleep(1000);
		}
		assert_true(last == 1 || last == 2);
		pid = run_whoami(p);
		named += pid == pids[last - 1];
		same += pid == prev;
		prev = pid;
	}
	print_message("of 30 jobs, %d ran on the worker named last sleeper, %d on the one "
		      "that ran the job before\n", named, same);
	assert_true(named >= 25);
	assert_true(same >= 10);
	for (int i = 0; i < 10; i++) {
		workers_asleep(h, 2);
		__atomic_store_n(&h->last_sleeper, i % 2 ? UINT32_MAX : 64u + (uint32_t)i,
				 __ATOMIC_RELAXED);
		(void)run_whoami(p);
	}
	pool_done(p, NULL, 0);
	shmq_region_close(r);
}

struct nowait_join {
	shmq_pool *p;
	struct pool_hdr *h;
	int rc;
};

/* Once the main thread sleeps in its join's wait for the workers: a join
 * with SHMQ_NOWAIT, then the gate opened (the main thread's join ends). */
static void *nowait_joiner(void *arg)
{
	struct nowait_join *nj = arg;

	/* relaxed: only the creator writes state; a look, nothing published */
	while (shmq__load_relaxed(&nj->h->state) != POOL_EXIT || !tu_main_sleeps())
		usleep(1000);
	nj->rc = shmq_pool_join(nj->p, SHMQ_NOWAIT);
	gate_set(true);
	return NULL;
}

/* While one thread's join waits for a worker that finishes a long task (of a
 * freed job), another thread's SHMQ_NOWAIT join says -EAGAIN at once.  It
 * used to wait for the workers' exit too: the first join held the pool's
 * mutex while it waited, and every call that takes it waited with it. */
static void test_join_nowait_during_join(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, 1, 0);
	struct nowait_join nj = { p, pool_hdr_of(r), 1 };
	int64_t *io;
	shmq_async *a;
	shmq_thread *t;

	(void)state;
	assert_int_equal(shmq_region_alloc(r, "io", 2 * sizeof(int64_t), (void **)&io), 0);
	io[0] = GATE_FROM;
	gate_set(false);
	assert_int_equal(shmq_pool_apply_async(p, "gated_marked", &io[0], sizeof(int64_t), &io[1],
					       sizeof(int64_t), &a), 0);
	/* acquire: pairs with gated_marked's release store */
	while (__atomic_load_n(&io[1], __ATOMIC_ACQUIRE) != -1)
		usleep(1000);
	shmq_async_free(a); /* its task runs on, behind the gate */
	assert_int_equal(shmq_pool_close(p), 0);
	assert_int_equal(shmq_thread_start(nowait_joiner, &nj, &t), 0);
	assert_int_equal(shmq_pool_join(p, SHMQ_FOREVER), 0);
	assert_int_equal(shmq_thread_join(t, SHMQ_FOREVER, NULL), 0);
	shmq_thread_close(t);
	assert_int_equal(nj.rc, -EAGAIN);
	shmq_pool_free(p);
	shmq_region_close(r);
}

struct slot_freer {
	shmq_async *a[SHMQ_POOL_MAX_JOBS];
	int64_t out[SHMQ_POOL_MAX_JOBS];
	int bad;
};

/* Once the main thread sleeps (in its map's wait for a job slot): finish
 * and free every handle that holds one. */
static void *slot_freer(void *arg)
{
	struct slot_freer *sf = arg;

	while (!tu_main_sleeps())
		usleep(1000);
	for (unsigned j = 0; j < SHMQ_POOL_MAX_JOBS; j++) {
		if (shmq_async_get(sf->a[j], SHMQ_FOREVER) || sf->out[j] != 3 * (int64_t)j + 1)
			sf->bad++;
		shmq_async_free(sf->a[j]);
	}
	return NULL;
}

/* With every job slot taken by map_async / apply_async handles, a map waits
 * for a slot within its timeout, as for the rest of its work; it used to
 * return -EAGAIN at once whatever its timeout (only the async calls
 * document -EAGAIN for a full table). */
static void test_map_waits_for_job_slot(void **state)
{
	static struct slot_freer sf;
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, NWORKERS, 0);
	int64_t in[4] = { 1, 2, 3, 4 }, out[4] = { 0 }, v;
	shmq_thread *t;
	int rc;

	(void)state;
	memset(&sf, 0, sizeof(sf));
	for (unsigned j = 0; j < SHMQ_POOL_MAX_JOBS; j++) {
		v = j;
		assert_int_equal(shmq_pool_apply_async(p, "triple", &v, sizeof(v), &sf.out[j],
						       sizeof(sf.out[j]), &sf.a[j]), 0);
	}
	assert_int_equal(shmq_pool_apply_async(p, "triple", &v, sizeof(v), &v, sizeof(v),
					       &(shmq_async *){ NULL }), -EAGAIN);
	assert_int_equal(shmq_thread_start(slot_freer, &sf, &t), 0);
	rc = shmq_pool_map(p, "triple", in, sizeof(in[0]), out, sizeof(out[0]), 4, SHMQ_FOREVER);
	assert_int_equal(shmq_thread_join(t, SHMQ_FOREVER, NULL), 0); /* before any assert */
	shmq_thread_close(t);
	assert_int_equal(rc, 0);
	assert_int_equal(sf.bad, 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(out[i], 3 * in[i] + 1);
	pool_done(p, NULL, 0);
	shmq_region_close(r);
}

/* A map of another thread that holds most of the arena (its gated batch). */
struct arena_holder {
	shmq_pool *p;
	int64_t in[48], out[48];
	int rc;
};

static void *arena_holder(void *arg)
{
	struct arena_holder *ah = arg;

	ah->rc = shmq_pool_map(ah->p, "gated", ah->in, sizeof(ah->in[0]), ah->out,
			       sizeof(ah->out[0]), 48, 60 * 1000000000ll);
	return NULL;
}

/* Once the main thread sleeps (in its map's wait for arena space): open
 * the gate, so that the holder's batch ends and gives its block back. */
static void *gate_opener(void *arg)
{
	(void)arg;
	while (!tu_main_sleeps())
		usleep(1000);
	gate_set(true);
	return NULL;
}

/* Two threads map at once: one map's batch holds the arena, and the other's
 * element (too large for a job's inline block) does not fit what is left.
 * The second map waits for the first to give the arena back, within its
 * timeout, as it waits for a job slot; it used to return -ENOSPC at once,
 * an error shmq_pool_map does not have for an element that fits the arena.
 * An element larger than the arena, or one that finds the arena held by an
 * async handle (given back only when its owner completes it), still gets
 * -ENOSPC at once: waiting could never end in a single thread. */
static void test_maps_share_the_arena(void **state)
{
	static struct arena_holder ah;
	struct shmq_pool_opts o = { .workers = NWORKERS, .arena = 16 * SHMQ__CACHELINE };
	int64_t in[2][16] = { { 5 }, { 6 } }, out[2][16] = { { 0 } };
	uint8_t big[32 * SHMQ__CACHELINE] = { 1 };
	shmq_region *r = region_new();
	shmq_thread *th, *to;
	shmq_async *a;
	shmq_pool *p;
	int rc;

	(void)state;
	assert_int_equal(shmq_pool_create(r, &o, &p), 0);
	memset(&ah, 0, sizeof(ah));
	ah.p = p;
	for (int i = 0; i < 48; i++)
		ah.in[i] = GATE_FROM + i;
	gate_set(false);
	/* the holder's batch (48 elements copied in and out, 13 of the 16
	 * lines) waits at the gate; ours needs 5 lines */
	assert_int_equal(shmq_thread_start(arena_holder, &ah, &th), 0);
	(void)job_active(pool_hdr_of(r));
	assert_int_equal(shmq_thread_start(gate_opener, NULL, &to), 0);
	rc = shmq_pool_map(p, "triple", in, sizeof(in[0]), out, sizeof(out[0]), 2,
			   30 * 1000000000ll);
	assert_int_equal(shmq_thread_join(to, SHMQ_FOREVER, NULL), 0); /* before any assert */
	shmq_thread_close(to);
	assert_int_equal(shmq_thread_join(th, SHMQ_FOREVER, NULL), 0);
	shmq_thread_close(th);
	assert_int_equal(rc, 0);
	assert_int_equal(out[0][0], 16);
	assert_int_equal(out[1][0], 19);
	assert_int_equal(ah.rc, 0);
	for (int i = 0; i < 48; i++)
		assert_int_equal(ah.out[i], 7 * ah.in[i]);
	/* larger than the arena: refused at once */
	assert_int_equal(shmq_pool_map(p, "triple", big, sizeof(big), NULL, 0, 1, SHMQ_FOREVER),
			 -ENOSPC);
	/* the arena held by an async handle: refused at once too */
	gate_set(false);
	assert_int_equal(shmq_pool_map_async(p, "gated", ah.in, sizeof(ah.in[0]), ah.out,
					     sizeof(ah.out[0]), 48, &a), 0);
	assert_int_equal(shmq_pool_map(p, "triple", in, sizeof(in[0]), out, sizeof(out[0]), 2,
				       SHMQ_FOREVER), -ENOSPC);
	gate_set(true);
	assert_int_equal(shmq_async_get(a, 60 * 1000000000ll), 0);
	shmq_async_free(a);
	pool_done(p, NULL, 0);
	shmq_region_close(r);
}

/* ---- a job's inline block ---- */

/* A job of one chunk whose copies fit its inline block (an apply_async of
 * small arguments) takes no arena block (pool/pool_layout_int.h): it runs
 * with an arena of one line, too small for any arena block, again and again;
 * so does a map, whose batches come down to one element.  Jobs that need an
 * arena block are still refused with -ENOSPC, and change nothing. */
static void test_inline_job_no_arena(void **state)
{
	struct shmq_pool_opts o = { .workers = 1, .arena = SHMQ__CACHELINE };
	shmq_region *r = region_new();
	int64_t in[3] = { 1, 2, 3 }, out[3] = { 0 }, v, res;
	uint8_t big[4 * SHMQ__CACHELINE] = { 5 }; /* more than an inline block */
	shmq_async *a;
	shmq_pool *p;

	(void)state;
	assert_int_equal(shmq_pool_create(r, &o, &p), 0);
	for (v = 0; v < 8; v++) {
		res = -1;
		assert_int_equal(shmq_pool_apply_async(p, "triple", &v, sizeof(v), &res,
						       sizeof(res), &a), 0);
		assert_int_equal(shmq_async_get(a, 10 * 1000000000ll), 0);
		shmq_async_free(a);
		assert_int_equal(res, 3 * v + 1);
	}
	assert_int_equal(shmq_pool_map(p, "triple", in, sizeof(in[0]), out, sizeof(out[0]), 3,
				       10 * 1000000000ll), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(out[i], 3 * in[i] + 1);
	/* two chunks; an input larger than the block: arena blocks */
	res = -1;
	assert_int_equal(shmq_pool_map_async(p, "triple", in, sizeof(in[0]), out, sizeof(out[0]),
					     2, &a), -ENOSPC);
	assert_int_equal(shmq_pool_apply_async(p, "triple", big, sizeof(big), &res, sizeof(res),
					       &a), -ENOSPC);
	assert_int_equal(res, -1);
	/* and the pool still works */
	v = 9;
	assert_int_equal(shmq_pool_apply_async(p, "triple", &v, sizeof(v), &res, sizeof(res), &a), 0);
	assert_int_equal(shmq_async_get(a, 10 * 1000000000ll), 0);
	shmq_async_free(a);
	assert_int_equal(res, 28);
	pool_done(p, NULL, 0);
	shmq_region_close(r);
}

/* A job whose copies add up past 2^64 bytes does not fit the arena: each
 * of in and out may be just below 2^63 bytes (n times its element size
 * does not overflow), but the two rounded up to whole lines wrapped to a
 * few bytes, the arena handed out a small block and the input's copy
 * read and wrote 2^63 bytes. */
static void test_copies_past_2_64_refused(void **state)
{
	shmq_region *r = region_new();
	shmq_pool *p = pool_new(r, 1, 0);
	int64_t in[3] = { 1, 2, 3 }, out[3] = { 0 };
	uint8_t b[8] = { 0 };
	shmq_async *a = NULL;

	(void)state;
	assert_int_equal(shmq_pool_map_async(p, "triple", b, 1, b, 1, SIZE_MAX / 2, &a), -ENOSPC);
	assert_int_equal(shmq_pool_map_async(p, "triple", b, 1, b, 2, SIZE_MAX / 4, &a), -ENOSPC);
	assert_null(a);
	/* and the pool still works */
	assert_int_equal(shmq_pool_map(p, "triple", in, sizeof(in[0]), out, sizeof(out[0]), 3,
				       10 * 1000000000ll), 0);
	assert_int_equal(out[2], 10);
	pool_done(p, NULL, 0);
	shmq_region_close(r);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_map_million_in_order),
		cmocka_unit_test(test_map_in_place_and_batches),
		cmocka_unit_test(test_huge_chunksize),
		cmocka_unit_test(test_async),
		cmocka_unit_test(test_async_double_free),
		cmocka_unit_test(test_join_cancelled),
		cmocka_unit_test(test_nowait_map_refused),
		cmocka_unit_test(test_async_outlives_pool),
		cmocka_unit_test(test_uneven_balanced_by_stealing),
		cmocka_unit_test(test_fib_subtasks),
		cmocka_unit_test(test_spawn_off_task_refused),
		cmocka_unit_test(test_forked_task_child_returns),
		cmocka_unit_test(test_task_errors),
		cmocka_unit_test(test_status_not_errno),
		cmocka_unit_test(test_largest_element),
		cmocka_unit_test(test_long_task_name),
		cmocka_unit_test(test_twin_task_names),
		cmocka_unit_test(test_worker_killed_mid_map),
		cmocka_unit_test(test_kill_rounds_bounded),
		cmocka_unit_test(test_killed_between_done_and_count),
		cmocka_unit_test(test_late_finish_spares_next_job),
		cmocka_unit_test(test_stopped_worker_pin_not_forged),
		cmocka_unit_test(test_dead_chunk_no_stale_results),
		cmocka_unit_test(test_idle_death_replaced_at_submit),
		cmocka_unit_test(test_refused_replacement_retried),
		cmocka_unit_test(test_look_makes_no_system_call),
		cmocka_unit_test(test_woken_caller_finds_no_pin),
		cmocka_unit_test(test_killed_between_unpin_and_wake),
		cmocka_unit_test(test_idle_worker_reads_no_proc),
		cmocka_unit_test(test_creator_death_ends_idle_workers),
		cmocka_unit_test(test_hostile_life_word_live),
		cmocka_unit_test(test_hostile_life_word_dead),
		cmocka_unit_test(test_hostile_stats_pid),
		cmocka_unit_test(test_hostile_pool_state),
		cmocka_unit_test(test_terminate),
		cmocka_unit_test(test_free_running_pool),
		cmocka_unit_test(test_create_too_big_takes_nothing),
		cmocka_unit_test(test_create_refused_retried_takes_nothing),
		cmocka_unit_test(test_create_free_cycles_reuse),
		cmocka_unit_test(test_create_on_full_shm_takes_nothing),
		cmocka_unit_test(test_join_nowait_during_join),
		cmocka_unit_test(test_map_waits_for_job_slot),
		cmocka_unit_test(test_maps_share_the_arena),
		cmocka_unit_test(test_hostile_frame_out_size),
		cmocka_unit_test(test_hostile_err_word),
		cmocka_unit_test(test_hostile_nchunks_recover),
		cmocka_unit_test(test_hostile_claim),
		cmocka_unit_test(test_nodispatch_breaks_at_once),
		cmocka_unit_test(test_idle_spin_adapts),
		cmocka_unit_test(test_idle_looks_bounded),
		cmocka_unit_test(test_inline_job_no_arena),
		cmocka_unit_test(test_copies_past_2_64_refused),
		cmocka_unit_test(test_woken_worker_leaves_peers_cpu),
		cmocka_unit_test(test_leftovers_bounded),
		cmocka_unit_test(test_fork_while_leftovers_held),
		cmocka_unit_test(test_wake_takes_last_sleeper),
	};

	char gate[96];
	int rc;

	if (getenv(FORGOT_ENV))
		return forgot_main(); /* the program of test_nodispatch_breaks_at_once */
	shmq_dispatch(argc, argv);
	if (getenv("SHMQ_TEST_FILTER")) /* run only the tests matching this pattern */
		cmocka_set_test_filter(getenv("SHMQ_TEST_FILTER"));
	/* before any pool: every worker, replacements too, inherits it */
	snprintf(gate, sizeof(gate), "/tmp/shmq-test-pool-gate-%d", (int)getpid());
	setenv(GATE_ENV, gate, 1);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	unlink(gate);
	return rc;
}
