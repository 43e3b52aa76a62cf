/* SPDX-License-Identifier: MIT */
/*
 * Handles inherited through a bare fork() (libshmq(3)): every call through
 * one returns -EBADF and changes nothing that the parent's handle owns;
 * closing one frees only the child's copy.  A child that wants the objects
 * opens the region and the objects again.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

struct fixture {
	char name[96];
	shmq_region *r;
};

static int setup(void **state)
{
	static struct fixture f;

	tu_name(f.name, sizeof(f.name), "fork");
	if (shmq_region_create(f.name, &(struct shmq_region_opts){ .size = 1u << 20 }, &f.r))
		return -1;
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	shmq_region_close(f->r);
	shmq_region_unlink(f->name);
	return 0;
}

/* Run body in a child made by fork(); its exit status is what it returns
 * (0: every expectation held; otherwise the number of the first that failed). */
static int in_child(int (*body)(void *), void *arg)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(body(arg));
	return tu_wait_child(pid);
}

#define EXPECT(n, cond) do { if (!(cond)) return (n); } while (0)

static shmq_lock *g_lock;

static int lock_child(void *arg)
{
	struct fixture *f = arg;
	shmq_region *r;
	shmq_lock *own;

	EXPECT(1, shmq_lock_release(g_lock) == -EBADF); /* was: 0, releasing the parent's hold */
	EXPECT(2, shmq_lock_acquire(g_lock, SHMQ_NOWAIT) == -EBADF);
	EXPECT(3, shmq_lock_locked(g_lock));
	shmq_lock_close(g_lock);
	/* its own handles work, and see the parent's hold */
	EXPECT(4, shmq_region_open(f->name, &r) == 0);
	EXPECT(5, shmq_lock_open(r, "lock", &own) == 0);
	EXPECT(6, shmq_lock_acquire(own, SHMQ_NOWAIT) == -EAGAIN);
	shmq_lock_close(own);
	shmq_region_close(r);
	return 0;
}

static void test_lock(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(shmq_lock_create(f->r, "lock", &g_lock), 0);
	assert_int_equal(shmq_lock_acquire(g_lock, SHMQ_NOWAIT), 0);
	assert_int_equal(in_child(lock_child, f), 0);
	assert_true(shmq_lock_locked(g_lock));
	assert_int_equal(shmq_lock_release(g_lock), 0);
	shmq_lock_close(g_lock);
}

static shmq_queue *g_queue;

static int queue_child(void *arg)
{
	char buf[8];

	(void)arg;
	EXPECT(1, shmq_queue_get(g_queue, buf, sizeof(buf), SHMQ_NOWAIT) == -EBADF);
	EXPECT(2, shmq_queue_put(g_queue, "y", 1, SHMQ_NOWAIT) == -EBADF);
	EXPECT(3, shmq_queue_put_bulk(g_queue, &(struct iovec){ "y", 1 }, 1, SHMQ_NOWAIT) == -EBADF);
	EXPECT(4, shmq_queue_get_bulk(g_queue, &(struct iovec){ buf, sizeof(buf) }, &(size_t){ 0 }, 1,
				      SHMQ_NOWAIT) == -EBADF);
	EXPECT(5, shmq_queue_shutdown(g_queue) == -EBADF);
	shmq_queue_close(g_queue);
	return 0;
}

static void test_queue(void **state)
{
	struct fixture *f = *state;
	char buf[8];

	assert_int_equal(shmq_queue_create(f->r, "queue", NULL, &g_queue), 0);
	assert_int_equal(shmq_queue_put(g_queue, "x", 1, SHMQ_NOWAIT), 0);
	assert_int_equal(in_child(queue_child, f), 0);
	/* nothing taken, nothing added, not shut down */
	assert_int_equal(shmq_queue_get(g_queue, buf, sizeof(buf), SHMQ_NOWAIT), 1);
	assert_int_equal(buf[0], 'x');
	assert_int_equal(shmq_queue_get(g_queue, buf, sizeof(buf), SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(shmq_queue_put(g_queue, "z", 1, SHMQ_NOWAIT), 0);
	shmq_queue_close(g_queue);
}

static shmq_pipe *g_a, *g_b;

static int pipe_child(void *arg)
{
	char buf[8];
	void *w;

	(void)arg;
	EXPECT(1, shmq_pipe_send(g_a, "y", 1, SHMQ_NOWAIT) == -EBADF);
	EXPECT(2, shmq_pipe_recv(g_b, buf, sizeof(buf), SHMQ_NOWAIT) == -EBADF);
	EXPECT(3, shmq_pipe_reserve(g_a, 1, &w, SHMQ_NOWAIT) == -EBADF);
	EXPECT(4, shmq_pipe_flush(g_a) == -EBADF);
	/* closing the copies must not close the parent's ends */
	shmq_pipe_close(g_a);
	shmq_pipe_close(g_b);
	return 0;
}

static void test_pipe(void **state)
{
	struct fixture *f = *state;
	char buf[8];

	assert_int_equal(shmq_pipe_create(f->r, "pipe", NULL, &g_a, &g_b), 0);
	assert_int_equal(shmq_pipe_send(g_a, "x", 1, SHMQ_NOWAIT), 0);
	assert_int_equal(in_child(pipe_child, f), 0);
	assert_int_equal(shmq_pipe_recv(g_b, buf, sizeof(buf), SHMQ_NOWAIT), 1);
	assert_int_equal(buf[0], 'x');
	assert_int_equal(shmq_pipe_recv(g_b, buf, sizeof(buf), SHMQ_NOWAIT), -EAGAIN); /* not -EPIPE */
	assert_int_equal(shmq_pipe_send(g_b, "z", 1, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_pipe_recv(g_a, buf, sizeof(buf), SHMQ_NOWAIT), 1);
	shmq_pipe_close(g_a);
	shmq_pipe_close(g_b);
}

static shmq_barrier *g_barrier;

static int barrier_child(void *arg)
{
	(void)arg;
	EXPECT(1, shmq_barrier_wait(g_barrier, SHMQ_NOWAIT) == -EBADF);
	EXPECT(2, shmq_barrier_abort(g_barrier) == -EBADF);
	EXPECT(3, shmq_barrier_reset(g_barrier) == -EBADF);
	shmq_barrier_close(g_barrier);
	return 0;
}

static void test_barrier(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(shmq_barrier_create(f->r, "barrier", 2, &g_barrier), 0);
	assert_int_equal(in_child(barrier_child, f), 0);
	assert_false(shmq_barrier_broken(g_barrier));
	assert_int_equal(shmq_barrier_n_waiting(g_barrier), 0);
	shmq_barrier_close(g_barrier);
}

static shmq_flag *g_flag;
static shmq_sem *g_sem;
static shmq_cond *g_cond;
static shmq_lock *g_clock;

static int sync_child(void *arg)
{
	(void)arg;
	EXPECT(1, shmq_flag_set(g_flag) == -EBADF);
	EXPECT(2, shmq_flag_clear(g_flag) == -EBADF);
	EXPECT(3, shmq_flag_wait(g_flag, SHMQ_NOWAIT) == -EBADF);
	EXPECT(4, shmq_sem_acquire(g_sem, SHMQ_NOWAIT) == -EBADF); /* was: took the parent's unit */
	EXPECT(5, shmq_sem_release(g_sem, 1) == -EBADF);
	EXPECT(6, shmq_cond_notify(g_cond, 1) == -EBADF);
	EXPECT(7, shmq_cond_notify_all(g_cond) == -EBADF);
	EXPECT(8, shmq_cond_wait(g_cond, g_clock, SHMQ_NOWAIT) == -EBADF);
	shmq_flag_close(g_flag);
	shmq_sem_close(g_sem);
	shmq_cond_close(g_cond);
	return 0;
}

static void test_flag_sem_cond(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(shmq_flag_create(f->r, "flag", &g_flag), 0);
	assert_int_equal(shmq_sem_create(f->r, "sem", 1, NULL, &g_sem), 0);
	assert_int_equal(shmq_cond_create(f->r, "cond", &g_cond), 0);
	assert_int_equal(shmq_lock_create(f->r, "clock", &g_clock), 0);
	assert_int_equal(in_child(sync_child, f), 0);
	assert_false(shmq_flag_is_set(g_flag));
	assert_int_equal(shmq_sem_value(g_sem), 1);
	assert_int_equal(shmq_sem_acquire(g_sem, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_flag_set(g_flag), 0);
	shmq_flag_close(g_flag);
	shmq_sem_close(g_sem);
	shmq_cond_close(g_cond);
	shmq_lock_close(g_clock);
}

static int fork_square(const void *in, void *out)
{
	int x;

	memcpy(&x, in, sizeof(x));
	x *= x;
	memcpy(out, &x, sizeof(x));
	return 0;
}
SHMQ_TASK(fork_square);

static shmq_sched *g_sched;
static shmq_pool *g_pool;
static shmq_region *g_region;

static void nothing(void *arg)
{
	(void)arg;
}

static void *g_lock_mem; /* a placed lock in g_region */
static void *g_queue_mem; /* a placed queue in g_region */
static size_t g_queue_size;

static int runtime_child(void *arg)
{
	shmq_event *ev;
	shmq_lock *l;
	shmq_queue *q;
	void *mem;
	int in[2] = { 2, 3 }, out[2];

	(void)arg;
	/* the inherited region names the parent's attachment */
	EXPECT(1, shmq_region_alloc(g_region, "blob", 64, &mem) == -EBADF);
	EXPECT(2, shmq_lock_create(g_region, "child-lock", &l) == -EBADF);
	EXPECT(3, shmq_lock_open(g_region, "lock-r", &l) == -EBADF);
	/* a placed lock through it would carry the parent's owner id */
	EXPECT(8, shmq_lock_attach(g_region, g_lock_mem, &l) == -EBADF);
	/* so would a placed queue's claims */
	EXPECT(9, shmq_queue_attach(g_region, g_queue_mem, g_queue_size, &q) == -EBADF);
	/* the inherited scheduler's ring is the parent's */
	EXPECT(4, shmq_sched_enter(g_sched, 0, 0, nothing, NULL, &ev) == -EBADF);
	EXPECT(5, shmq_sched_run(g_sched, false) == -EBADF);
	shmq_sched_destroy(g_sched); /* leaves the parent's ring alone */
	/* the inherited pool's workers are the parent's */
	EXPECT(6, shmq_pool_map(g_pool, "fork_square", in, sizeof(int), out, sizeof(int), 2,
				5000000000) == -EBADF);
	EXPECT(7, shmq_pool_terminate(g_pool) == -EBADF);
	shmq_pool_free(g_pool); /* terminates nothing */
	return 0;
}

static void test_region_sched_pool(void **state)
{
	struct fixture *f = *state;
	shmq_lock *l;
	shmq_event *ev;
	int in[2] = { 2, 3 }, out[2] = { 0, 0 };

	g_region = f->r;
	assert_int_equal(shmq_lock_create(f->r, "lock-r", &l), 0);
	assert_int_equal(shmq_region_alloc(f->r, "lock-placed", shmq_lock_footprint(), &g_lock_mem), 0);
	assert_int_equal(shmq_lock_init(g_lock_mem), 0);
	g_queue_size = shmq_queue_footprint(NULL);
	assert_int_equal(shmq_region_alloc(f->r, "queue-placed", g_queue_size, &g_queue_mem), 0);
	assert_int_equal(shmq_queue_init(g_queue_mem, g_queue_size, NULL, 0), 0);
	assert_int_equal(shmq_sched_create(NULL, &g_sched), 0);
	assert_int_equal(shmq_sched_enter(g_sched, 0, 0, nothing, NULL, &ev), 0);
	assert_int_equal(shmq_pool_create(f->r, &(struct shmq_pool_opts){ .workers = 1 }, &g_pool), 0);
	assert_int_equal(in_child(runtime_child, f), 0);
	/* the parent's objects work as before */
	assert_int_equal(shmq_sched_run(g_sched, false), -1); /* ran the event, none left */
	assert_int_equal(shmq_pool_map(g_pool, "fork_square", in, sizeof(int), out, sizeof(int), 2,
				       10000000000), 0);
	assert_int_equal(out[0], 4);
	assert_int_equal(out[1], 9);
	shmq_pool_free(g_pool);
	shmq_sched_destroy(g_sched);
	shmq_lock_close(l);
}

static shmq_proc *g_proc;

static int proc_child(void *arg)
{
	struct shmq_run_result res;

	(void)arg;
	/* the process is the parent's child: nothing here may wait for,
	 * signal or talk to it */
	EXPECT(1, shmq_proc_join(g_proc, SHMQ_NOWAIT) == -EBADF);
	EXPECT(2, shmq_proc_exitcode(g_proc) == -EBADF);
	EXPECT(3, shmq_proc_kill(g_proc, SIGKILL) == -EBADF);
	EXPECT(4, shmq_proc_fd(g_proc, 0) == -EBADF);
	EXPECT(5, shmq_proc_communicate(g_proc, "x", 1, &res, 1000000000) == -EBADF);
	EXPECT(6, !shmq_proc_is_alive(g_proc));
	shmq_proc_close(g_proc); /* kills nothing */
	return 0;
}

static void test_proc(void **state)
{
	struct fixture *f = *state;
	char *argv[] = { "cat", NULL };
	struct shmq_proc_opts o = { .pipes = SHMQ_STDIN | SHMQ_STDOUT };
	struct shmq_run_result res;

	assert_int_equal(shmq_proc_exec(f->r, argv, &o, &g_proc), 0);
	assert_int_equal(in_child(proc_child, f), 0);
	/* still running, its pipes still open: it echoes what it gets */
	assert_true(shmq_proc_is_alive(g_proc));
	assert_int_equal(shmq_proc_communicate(g_proc, "hi", 2, &res, 10000000000), 0);
	assert_int_equal(res.status, 0);
	assert_int_equal(res.out_len, 2);
	assert_memory_equal(res.out, "hi", 2);
	shmq_run_result_free(&res);
	shmq_proc_close(g_proc);
}

static shmq_thread *g_running, *g_finished;

static void *thread_gate(void *arg)
{
	uint32_t *gate = arg;
	struct timespec ts = { 0, 200 * 1000 };

	/* acquire: pairs with the release store in test_thread */
	while (!__atomic_load_n(gate, __ATOMIC_ACQUIRE))
		nanosleep(&ts, NULL);
	return gate;
}

static int thread_child(void *arg)
{
	void *ret = NULL;

	(void)arg;
	/* neither thread exists in this process: a join of the running one
	 * waited for ever (SHMQ_FOREVER) or to every deadline, and one of the
	 * finished one called pthread_join on a thread the child never had */
	EXPECT(1, shmq_thread_join(g_running, SHMQ_FOREVER, &ret) == -EBADF);
	EXPECT(2, shmq_thread_join(g_running, SHMQ_NOWAIT, &ret) == -EBADF);
	EXPECT(3, shmq_thread_join(g_finished, SHMQ_FOREVER, &ret) == -EBADF);
	EXPECT(4, ret == NULL);
	EXPECT(5, !shmq_thread_is_alive(g_running));
	EXPECT(6, !shmq_thread_is_alive(g_finished));
	shmq_thread_close(g_running); /* the child's copies only */
	shmq_thread_close(g_finished);
	return 0;
}

/* Runs thread_child in a child killed after 2 s if it blocks in a join. */
static int thread_in_child(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(2);
		_exit(thread_child(NULL));
	}
	return tu_wait_child(pid);
}

/* A thread handle names a pthread of the process that started it; through
 * a copy inherited across fork() join is -EBADF and is_alive false. */
static void test_thread(void **state)
{
	uint32_t gate = 0, done = 1;
	void *ret = NULL;

	(void)state;
	assert_int_equal(shmq_thread_start(thread_gate, &gate, &g_running), 0);
	assert_int_equal(shmq_thread_start(thread_gate, &done, &g_finished), 0);
	while (shmq_thread_is_alive(g_finished))
		sched_yield();
	assert_int_equal(thread_in_child(), 0);
	/* the parent's handles are as they were */
	assert_true(shmq_thread_is_alive(g_running));
	assert_int_equal(shmq_thread_join(g_running, SHMQ_NOWAIT, &ret), -EAGAIN);
	/* release: pairs with thread_gate's acquire load */
	__atomic_store_n(&gate, 1, __ATOMIC_RELEASE);
	assert_int_equal(shmq_thread_join(g_running, SHMQ_FOREVER, &ret), 0);
	assert_ptr_equal(ret, &gate);
	assert_int_equal(shmq_thread_join(g_finished, SHMQ_FOREVER, &ret), 0);
	assert_ptr_equal(ret, &done);
	shmq_thread_close(g_running);
	shmq_thread_close(g_finished);
}

/* Each element's input is its gate, a word in the region (used in place):
 * the task runs once the parent opens it (sets it to the element's value
 * plus one), so no chunk completes before the child has done its worst.
 * A gate never opened (a failed test) releases its worker after 30 s. */
static int fork_gated(const void *in, void *out)
{
	const uint32_t *gate = in;
	uint32_t v;

	/* acquire: pairs with the parent's release store in gates_open */
	for (unsigned i = 0; (v = __atomic_load_n(gate, __ATOMIC_ACQUIRE)) == 0; i++) {
		if (i == 300000)
			return -ETIMEDOUT;
		usleep(100);
	}
	v--;
	v *= v;
	memcpy(out, &v, sizeof(v));
	return 0;
}
SHMQ_TASK(fork_gated);

#define GATED_N 8u

static shmq_async *g_async;
static shmq_iter *g_iter;

static void gates_open(uint32_t *gates)
{
	for (uint32_t i = 0; i < GATED_N; i++)
		__atomic_store_n(&gates[i], i + 1, __ATOMIC_RELEASE);
}

/* A map_async and an imap of GATED_N gated elements, their gates closed;
 * two workers, chunks of one, so most chunks have not started at the fork. */
static uint32_t *gated_jobs_start(struct fixture *f, const char *blob, uint32_t *out)
{
	void *mem;

	assert_int_equal(shmq_region_alloc(f->r, blob, GATED_N * 2 * sizeof(uint32_t), &mem), 0);
	memset(mem, 0, GATED_N * 2 * sizeof(uint32_t));
	assert_int_equal(shmq_pool_create(f->r, &(struct shmq_pool_opts){ .workers = 2, .chunksize = 1 },
					  &g_pool), 0);
	assert_int_equal(shmq_pool_map_async(g_pool, "fork_gated", mem, sizeof(uint32_t), out,
					     sizeof(uint32_t), GATED_N, &g_async), 0);
	assert_int_equal(shmq_pool_imap(g_pool, "fork_gated", (uint32_t *)mem + GATED_N,
					sizeof(uint32_t), sizeof(uint32_t), GATED_N, 0, &g_iter), 0);
	return mem;
}

/* The parent's jobs, gates open, complete with every result: the child
 * cancelled nothing.  (Before the fix a child's shmq_async_free set the
 * job's canceled word: the chunks not started were skipped and the wait
 * ran out.) */
static void gated_jobs_finish(uint32_t *gates, uint32_t *out, int child_rc)
{
	uint32_t v;

	/* open first: a failed assertion leaves no worker at a closed gate */
	gates_open(gates);
	gates_open(gates + GATED_N);
	assert_int_equal(child_rc, 0);
	assert_int_equal(shmq_async_wait(g_async, 10000000000), 0);
	assert_int_equal(shmq_async_get(g_async, 0), 0);
	for (uint32_t i = 0; i < GATED_N; i++)
		assert_int_equal(out[i], i * i);
	for (uint32_t i = 0; i < GATED_N; i++) {
		assert_int_equal(shmq_iter_next(g_iter, &v, 10000000000), (ssize_t)i);
		assert_int_equal(v, i * i);
	}
	assert_int_equal(shmq_iter_next(g_iter, &v, SHMQ_NOWAIT), -EPIPE);
	shmq_iter_free(g_iter);
	shmq_async_free(g_async);
	assert_int_equal(shmq_pool_close(g_pool), 0);
	assert_int_equal(shmq_pool_join(g_pool, 10000000000), 0);
	shmq_pool_free(g_pool);
}

static int async_free_child(void *arg)
{
	(void)arg;
	/* only the child's copies: the parent's jobs go on */
	shmq_async_free(g_async);
	shmq_iter_free(g_iter);
	return 0;
}

/* The audit's case: a child that only frees its inherited async and
 * iterator must not cancel the parent's jobs. */
static void test_pool_async_free(void **state)
{
	uint32_t out[GATED_N] = { 0 };
	uint32_t *gates = gated_jobs_start(*state, "gates-free", out);

	gated_jobs_finish(gates, out, in_child(async_free_child, NULL));
}

static int async_calls_child(void *arg)
{
	struct shmq_pool_worker_stats ws;
	shmq_waitset *w;
	uint32_t v;

	(void)arg;
	EXPECT(1, !shmq_async_ready(g_async)); /* would finish the parent's job */
	EXPECT(2, shmq_async_wait(g_async, SHMQ_NOWAIT) == -EBADF);
	EXPECT(3, shmq_async_wait(g_async, 100000000) == -EBADF);
	EXPECT(4, shmq_async_get(g_async, SHMQ_NOWAIT) == -EBADF);
	EXPECT(5, shmq_iter_next(g_iter, &v, SHMQ_NOWAIT) == -EBADF);
	EXPECT(6, shmq_iter_next(g_iter, &v, 100000000) == -EBADF);
	EXPECT(7, shmq_pool_worker_stats(g_pool, 0, &ws) == -EBADF);
	EXPECT(8, shmq_waitset_create(&w) == 0); /* the child's own set */
	EXPECT(9, shmq_waitset_add_async(w, g_async, &w) == -EBADF);
	shmq_waitset_free(w);
	shmq_iter_free(g_iter);
	shmq_async_free(g_async);
	shmq_pool_free(g_pool); /* terminates nothing */
	return 0;
}

/* Every call through an inherited async or iterator is -EBADF and leaves
 * the parent's jobs as they were. */
static void test_pool_async_calls(void **state)
{
	uint32_t out[GATED_N] = { 0 };
	uint32_t *gates = gated_jobs_start(*state, "gates-calls", out);

	gated_jobs_finish(gates, out, in_child(async_calls_child, NULL));
}

/* A thread inside the library's registry of entries or tasks (a register,
 * or the lookup of a spawn or a pool call) while another thread forks: the
 * child's copy of the registry must not stay locked by a thread it does not
 * have.  Before the fix about one fork in twelve here left the child waiting
 * for ever in its first register (as it would in a spawn or a pool call). */
static int registry_entry_fn(shmq_region *r, const void *arg, size_t len)
{
	(void)r;
	(void)arg;
	(void)len;
	return 0;
}

static int registry_task_fn(const void *in, void *out)
{
	(void)in;
	(void)out;
	return 0;
}

static struct shmq_entry registry_entry = { "fork_registry_entry", registry_entry_fn, NULL };
static struct shmq_task registry_task = { "fork_registry_task", registry_task_fn, NULL };

static void *registry_spinner(void *arg)
{
	/* acquire: pairs with the test's release store of stop */
	while (!__atomic_load_n((int *)arg, __ATOMIC_ACQUIRE)) {
		shmq_entry_register(&registry_entry); /* in already: only the lock */
		shmq_task_register(&registry_task);
	}
	return NULL;
}

static int registry_child(void *arg)
{
	(void)arg;
	alarm(10); /* a child that hangs ends as 128 + SIGALRM */
	shmq_entry_register(&registry_entry);
	shmq_task_register(&registry_task);
	return 0;
}

static void test_registry_across_fork(void **state)
{
	pthread_t t;
	int stop = 0, rc = 0;

	(void)state;
	shmq_entry_register(&registry_entry);
	shmq_task_register(&registry_task);
	assert_int_equal(pthread_create(&t, NULL, registry_spinner, &stop), 0);
	for (int i = 0; i < 200 && rc == 0; i++)
		rc = in_child(registry_child, NULL);
	/* release: pairs with registry_spinner's acquire load */
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(rc, 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_region_sched_pool, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pool_async_free, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pool_async_calls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_proc, setup, teardown),
		cmocka_unit_test(test_thread),
		cmocka_unit_test(test_registry_across_fork),
		cmocka_unit_test_setup_teardown(test_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_barrier, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flag_sem_cond, setup, teardown),
	};

	if (shmq_dispatch(argc, argv)) /* the pool's workers are this program */
		return 99;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
