/* SPDX-License-Identifier: MIT */
/*
 * Test helper for tests/test_tools.sh: makes regions in the states the
 * `shmq` tool must report.
 *
 * Each region holds two blobs ("table", "counters"), two locks ("mutex",
 * held by the creator until it detaches, or forever if it dies, and "spare"),
 * two barriers ("gate", 3 parties, and "broken", 2 parties, aborted), two
 * queues ("jobs" with 3 messages, "done" shut down) and a pipe ("chan", one
 * 100-byte message from end 0 to end 1).
 *
 *   tools_mkregion plain NAME          a region with objects; creator detaches
 *   tools_mkregion hold NAME SECONDS   the same, creator stays attached and
 *                                      prints "ready" once it is built
 *   tools_mkregion die NAME            creator dies (SIGKILL) while attached
 *   tools_mkregion corrupt NAME        header checksum broken after creation
 *   tools_mkregion baddir NAME         one directory entry's offset corrupted
 *   tools_mkregion foreign NAME        a /dev/shm file without libshmq's header
 *   tools_mkregion pool NAME SECONDS   a region with two pools: one of two
 *                                      workers that ran 100 tasks, now runs 2
 *                                      of 8 long tasks, and whose worker 1 was
 *                                      then SIGKILLed (not replaced: the
 *                                      creator makes no pool call); and one
 *                                      closed and joined.  Prints "ready",
 *                                      holds until SIGTERM or SECONDS, then
 *                                      terminates the pool.
 *   tools_mkregion bridge NAME         bridge checkpoints as libshmq-bridge
 *                                      leaves them (no server needed):
 *                                      "bridge.jobs" (IN, running, cursors
 *                                      set), "bridge.out" (OUT, version 1),
 *                                      "bridge.bad" (an impossible
 *                                      direction), "plainblob" (128 zero
 *                                      bytes, no checkpoint)
 *   tools_mkregion sleepy NAME         a lock, a barrier, a queue and a pipe whose
 *                                      callers each slept on the futex and were
 *                                      woken (shmq stat shows waits and wakes),
 *                                      and a lock "idle" used without contention
 *
 * Exit 0 on success (except die, killed by design), 1 on failure.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <shmq.h>

#include "bridge/bridge_int.h"
#include "core/introspect_int.h"
#include "core/region_int.h"

#define REGION_SIZE (256u << 10)

static shmq_lock *lock, *spare;
static shmq_barrier *gate, *broken;
static shmq_queue *jobs, *done;
static shmq_pipe *chan0, *chan1;

/* A queue "jobs" (capacity 8) holding 3 messages, a queue "done" (capacity
 * 5, not a power of two) shut down, and a pipe "chan" with one 100-byte
 * message in flight from end 0 to end 1. */
static int make_rings(shmq_region *r)
{
	struct shmq_queue_opts qo = { .capacity = 8, .max_msg = 64 };
	struct shmq_queue_opts qo5 = { .capacity = 5, .max_msg = 64 };
	char msg[100] = "hello";
	int rc = shmq_queue_create(r, "jobs", &qo, &jobs);

	for (int i = 0; i < 3 && !rc; i++)
		rc = shmq_queue_put(jobs, msg, 16, SHMQ_NOWAIT);
	if (!rc)
		rc = shmq_queue_create(r, "done", &qo5, &done);
	if (!rc)
		rc = shmq_queue_shutdown(done);
	if (!rc)
		rc = shmq_pipe_create(r, "chan", NULL, &chan0, &chan1);
	if (!rc)
		rc = shmq_pipe_send(chan0, msg, sizeof(msg), SHMQ_NOWAIT);
	return rc;
}

static void close_rings(void)
{
	shmq_queue_close(jobs);
	shmq_queue_close(done);
	shmq_pipe_close(chan0);
	shmq_pipe_close(chan1);
}

static int make(const char *name, shmq_region **out)
{
	struct shmq_region_opts o = { .size = REGION_SIZE };
	void *mem;
	int rc = shmq_region_create(name, &o, out);

	if (rc) {
		fprintf(stderr, "tools_mkregion: create %s: %s\n", name, shmq_strerror(rc));
		return rc;
	}
	rc = shmq_region_alloc(*out, "table", 4096, &mem);
	if (!rc)
		rc = shmq_region_alloc(*out, "counters", 64, &mem);
	if (!rc)
		rc = shmq_lock_create(*out, "mutex", &lock);
	if (!rc)
		rc = shmq_lock_create(*out, "spare", &spare);
	/* "mutex" stays held by this process: released by close, or never
	 * when it dies; "spare" stays free. */
	if (!rc)
		rc = shmq_lock_acquire(lock, SHMQ_NOWAIT);
	if (!rc)
		rc = shmq_barrier_create(*out, "gate", 3, &gate);
	if (!rc)
		rc = shmq_barrier_create(*out, "broken", 2, &broken);
	if (!rc)
		rc = shmq_barrier_abort(broken);
	if (!rc)
		rc = make_rings(*out);
	if (rc) {
		fprintf(stderr, "tools_mkregion: alloc: %s\n", shmq_strerror(rc));
		shmq_region_close(*out);
	}
	return rc;
}

/* ---- pool mode ---- */

static int mk_inc(const void *in, void *out)
{
	*(int64_t *)out = *(const int64_t *)in + 1;
	return 0;
}
SHMQ_TASK(mk_inc);

/* Marks its output (in the region, so the creator sees it at once), then
 * sleeps until its creator is gone (or 900 s): a task that stays running. */
static int mk_nap(const void *in, void *out)
{
	pid_t parent = getppid();

	(void)in;
	__atomic_store_n((int64_t *)out, 1, __ATOMIC_RELEASE); /* pairs with naps_running */
	for (int i = 0; i < 9000 && getppid() == parent; i++)
		usleep(100 * 1000);
	return 0;
}
SHMQ_TASK(mk_nap);

static unsigned naps_running(const int64_t *naps, unsigned n)
{
	unsigned k = 0;

	for (unsigned i = 0; i < n; i++)
		k += __atomic_load_n(&naps[i], __ATOMIC_ACQUIRE) != 0; /* pairs with mk_nap */
	return k;
}

static int pool_started(shmq_pool *p)
{
	struct shmq_pool_worker_stats s;

	for (unsigned i = 0; i < shmq_pool_workers(p); i++) {
		int t = 0;

		while (shmq_pool_worker_stats(p, i, &s) == 0 && !s.started && t++ < 30000)
			usleep(1000);
		if (!s.started)
			return -ETIMEDOUT;
	}
	return 0;
}

/* Until pid (our child) has exited, left unreaped for the pool. */
static int exited(pid_t pid)
{
	siginfo_t si;

	for (int t = 0; t < 30000; t++) {
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
		    si.si_pid == pid)
			return 0;
		usleep(1000);
	}
	return -ETIMEDOUT;
}

static int pool_mode(const char *name, unsigned seconds)
{
	struct shmq_region_opts ro = { .size = 4u << 20 };
	struct shmq_pool_opts po = { .workers = 2, .chunksize = 1, .arena = 64 << 10 };
	struct shmq_pool_opts po2 = { .workers = 1, .arena = 64 << 10 };
	struct shmq_pool_worker_stats s;
	struct timespec ts = { .tv_sec = seconds };
	int64_t in[100], out[100], *naps;
	shmq_region *r;
	shmq_pool *p, *closed;
	shmq_async *a = NULL;
	sigset_t term;
	int rc;

	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, NULL);
	rc = shmq_region_create(name, &ro, &r);
	if (rc)
		return rc;
	rc = shmq_pool_create(r, &po2, &closed);
	if (!rc) {
		shmq_pool_close(closed);
		rc = shmq_pool_join(closed, 30 * 1000000000ll);
		shmq_pool_free(closed);
	}
	if (!rc)
		rc = shmq_pool_create(r, &po, &p);
	if (rc)
		return rc;
	for (int i = 0; i < 100; i++)
		in[i] = i;
	rc = pool_started(p);
	if (!rc)
		rc = shmq_pool_map(p, "mk_inc", in, sizeof(int64_t), out, sizeof(int64_t), 100,
				   30 * 1000000000ll);
	if (!rc)
		rc = shmq_region_alloc(r, "naps", 8 * sizeof(int64_t), (void **)&naps);
	if (!rc)
		rc = shmq_pool_map_async(p, "mk_nap", in, sizeof(int64_t), naps, sizeof(int64_t),
					 8, &a);
	for (int t = 0; !rc && naps_running(naps, 8) < 2; t++)
		rc = t < 30000 ? usleep(1000) : -ETIMEDOUT;
	if (!rc)
		rc = shmq_pool_worker_stats(p, 1, &s);
	if (!rc)
		rc = kill(s.pid, SIGKILL) ? -errno : exited(s.pid);
	if (!rc) {
		printf("ready\n");
		fflush(stdout);
		sigtimedwait(&term, NULL, &ts);
	}
	shmq_pool_terminate(p);
	shmq_async_free(a);
	shmq_pool_free(p);
	shmq_region_close(r);
	return rc;
}

/* Overwrite len bytes at off of the region's file. */
static int poke(const char *name, off_t off, const void *bytes, size_t len)
{
	int fd = shm_open(name, O_RDWR, 0);

	if (fd < 0)
		return -errno;
	ssize_t n = pwrite(fd, bytes, len, off);
	close(fd);
	return n == (ssize_t)len ? 0 : -EIO;
}

static int peek32(const char *name, off_t off, uint32_t *v)
{
	int fd = shm_open(name, O_RDONLY, 0);

	if (fd < 0)
		return -errno;
	ssize_t n = pread(fd, v, sizeof(*v), off);
	close(fd);
	return n == (ssize_t)sizeof(*v) ? 0 : -EIO;
}

/*
 * The layout facts the corruptions below rely on (lib/region.c): the header
 * is line 0 with dir_off, a uint32, at byte 32; a directory entry starts with
 * state, type (uint32 each) and then off (uint64) at byte 8.  Should the
 * layout move, the test that uses them fails loudly rather than passing.
 */
#define HDR_DIR_OFF_AT 32
#define ENTRY_OFF_AT   8

static int corrupt_header(const char *name)
{
	uint8_t b = 0xa5;

	return poke(name, 20, &b, 1); /* inside the size field: checksum fails */
}

static int corrupt_dir(const char *name)
{
	uint32_t dir_off;
	uint64_t bad = 12345; /* not cache-line aligned: entry_check refuses it */
	int rc = peek32(name, HDR_DIR_OFF_AT, &dir_off);

	if (rc)
		return rc;
	return poke(name, (off_t)dir_off + ENTRY_OFF_AT, &bad, sizeof(bad));
}

static int foreign(const char *name)
{
	char buf[8192];
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);

	if (fd < 0)
		return -errno;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 7 + 1);
	ssize_t n = write(fd, buf, sizeof(buf));
	close(fd);
	return n == (ssize_t)sizeof(buf) ? 0 : -EIO;
}

/* ---- sleepy: each object's caller made to sleep on its futex, then woken ---- */

#define SLEEPY_TIMEOUT ((int64_t)30 * 1000 * 1000 * 1000) /* generous: a loaded machine */
#define SLEEPY_ROUNDS  50

static shmq_region *sr;
static shmq_lock *s_lock, *s_lock2;
static shmq_barrier *s_bar, *s_bar2;
static shmq_queue *s_q, *s_q2;
static shmq_pipe *s_p0, *s_p1;

/* Fact key of object name as `shmq stat` reads it (0 when absent). */
static uint64_t fact(const char *name, uint32_t type, const char *key)
{
	struct shmq__obj_stat st;
	const struct shmq__stat_kv *kv;
	uint64_t size;
	void *mem;

	if (shmq__obj_find(sr, name, type, &mem, &size) ||
	    shmq__obj_describe(sr, type, mem, size, &st))
		return 0;
	kv = shmq__stat_get(&st, key);
	return kv && kv->kind == SHMQ__STAT_U64 ? kv->u : 0;
}

/* The calls that must sleep, each in a thread of its own: 0 or an errno. */
static void *lock_sleeper(void *arg)
{
	intptr_t rc = shmq_lock_acquire(s_lock2, SLEEPY_TIMEOUT); /* main holds it */

	(void)arg;
	if (rc == 0)
		rc = shmq_lock_release(s_lock2);
	return (void *)rc;
}

static void *barrier_sleeper(void *arg)
{
	int rc = shmq_barrier_wait(s_bar2, SLEEPY_TIMEOUT); /* main arrives second */

	(void)arg;
	return (void *)(intptr_t)(rc < 0 ? rc : 0);
}

static void *queue_sleeper(void *arg)
{
	char buf[64];
	ssize_t n = shmq_queue_get(s_q2, buf, sizeof(buf), SLEEPY_TIMEOUT); /* empty */

	(void)arg;
	return (void *)(intptr_t)(n < 0 ? n : 0);
}

static void *pipe_sleeper(void *arg)
{
	char buf[64];
	ssize_t n = shmq_pipe_recv(s_p1, buf, sizeof(buf), SLEEPY_TIMEOUT); /* empty */

	(void)arg;
	return (void *)(intptr_t)(n < 0 ? n : 0);
}

/* The calls that wake them, from the main thread. */
static int lock_waker(void)
{
	return shmq_lock_release(s_lock);
}

static int barrier_waker(void)
{
	int rc = shmq_barrier_wait(s_bar, SLEEPY_TIMEOUT);

	return rc < 0 ? rc : 0;
}

static int queue_waker(void)
{
	return shmq_queue_put(s_q, "wake", 4, SLEEPY_TIMEOUT);
}

static int pipe_waker(void)
{
	return shmq_pipe_send(s_p0, "wake", 4, SLEEPY_TIMEOUT);
}

struct sleepy_case {
	const char *obj;
	uint32_t type;
	const char *waits, *wakes;  /* the sleeper's counters */
	void *(*sleeper)(void *);
	int (*waker)(void);
};

/*
 * One round: start the sleeper, wait until its counter shows it entered
 * futex_wait, then wake it.  A sleeper whose sleep slice (10-15 ms for
 * pipes and queues) ended just then is found awake by the waker, which then
 * has no reason to make a wake call: the round is repeated until a wake was
 * counted.  0, or a negative errno.
 */
static int sleepy_round(const struct sleepy_case *c, bool *woken)
{
	uint64_t waits = fact(c->obj, c->type, c->waits);
	uint64_t wakes = fact(c->obj, c->type, c->wakes);
	int64_t until = shmq_now_ns() + SLEEPY_TIMEOUT;
	pthread_t t;
	void *ret;
	int rc;

	if (c->type == SHMQ__OBJ_LOCK && (rc = shmq_lock_acquire(s_lock, SHMQ_NOWAIT)))
		return rc;
	if ((rc = pthread_create(&t, NULL, c->sleeper, NULL)))
		return -rc;
	while (fact(c->obj, c->type, c->waits) == waits && shmq_now_ns() < until)
		usleep(1000);
	rc = c->waker();
	pthread_join(t, &ret);
	if (!rc)
		rc = (int)(intptr_t)ret;
	if (!rc && fact(c->obj, c->type, c->waits) == waits)
		rc = -ETIMEDOUT; /* never slept */
	*woken = fact(c->obj, c->type, c->wakes) > wakes;
	return rc;
}

static int sleepy_make(const char *name)
{
	struct shmq_region_opts o = { .size = REGION_SIZE };
	struct shmq_queue_opts qo = { .capacity = 4, .max_msg = 64 };
	shmq_lock *idle;
	int rc = shmq_region_create(name, &o, &sr);

	if (!rc)
		rc = shmq_lock_create(sr, "slock", &s_lock);
	if (!rc)
		rc = shmq_lock_open(sr, "slock", &s_lock2);
	if (!rc)
		rc = shmq_barrier_create(sr, "sbar", 2, &s_bar);
	if (!rc)
		rc = shmq_barrier_open(sr, "sbar", &s_bar2);
	if (!rc)
		rc = shmq_queue_create(sr, "squeue", &qo, &s_q);
	if (!rc)
		rc = shmq_queue_open(sr, "squeue", &s_q2);
	if (!rc)
		rc = shmq_pipe_create(sr, "spipe", NULL, &s_p0, &s_p1);
	/* "idle": taken and given back without anybody waiting */
	if (!rc)
		rc = shmq_lock_create(sr, "idle", &idle);
	if (!rc) {
		rc = shmq_lock_acquire(idle, SLEEPY_TIMEOUT);
		if (!rc)
			rc = shmq_lock_release(idle);
		shmq_lock_close(idle);
	}
	return rc;
}

static int sleepy(const char *name)
{
	static const struct sleepy_case cases[] = {
		{ "slock", SHMQ__OBJ_LOCK, "waits", "wakes", lock_sleeper, lock_waker },
		{ "sbar", SHMQ__OBJ_BARRIER, "waits", "wakes", barrier_sleeper, barrier_waker },
		{ "squeue", SHMQ__OBJ_QUEUE, "getter_waits", "getter_wakes", queue_sleeper,
		  queue_waker },
		{ "spipe", SHMQ__OBJ_PIPE, "end1_waits", "end1_wakes", pipe_sleeper, pipe_waker },
	};
	int rc = sleepy_make(name);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]) && !rc; i++) {
		bool woken = false;

		for (int round = 0; round < SLEEPY_ROUNDS && !rc && !woken; round++)
			rc = sleepy_round(&cases[i], &woken);
		if (!rc && !woken)
			rc = -EAGAIN;
		if (rc)
			fprintf(stderr, "tools_mkregion sleepy: %s: %s\n", cases[i].obj,
				shmq_strerror(rc));
	}
	shmq_lock_close(s_lock);
	shmq_lock_close(s_lock2);
	shmq_barrier_close(s_bar);
	shmq_barrier_close(s_bar2);
	shmq_queue_close(s_q);
	shmq_queue_close(s_q2);
	shmq_pipe_close(s_p0);
	shmq_pipe_close(s_p1);
	if (sr)
		shmq_region_close(sr);
	return rc;
}

static int bridge_blob(shmq_region *r, const char *name, const struct shmq__bridge_shared *cp)
{
	void *mem;
	int rc = shmq_region_alloc(r, name, SHMQ__BRIDGE_OBJ_SIZE, &mem);

	if (rc == 0)
		memcpy(mem, cp, sizeof(*cp)); /* nobody else maps the region yet */
	return rc;
}

static int bridge_mode(const char *name)
{
	struct shmq_region_opts ro = { .size = REGION_SIZE };
	struct shmq__bridge_shared in = {
		.magic = SHMQ__BRIDGE_MAGIC, .version = SHMQ__BRIDGE_VERSION, .dir = 2 /* IN */,
		.state = 1 /* running */, .applied = 41, .pending = 42, .read = 45,
		.in_doubt = 2, .rewinds = 3, .holder_pid = 4242,
	};
	struct shmq__bridge_shared out = {
		.magic = SHMQ__BRIDGE_MAGIC, .version = 1, .dir = 1 /* OUT */, .state = 4,
		.applied = 7, .read = 9, .looped = 5, .holder_pid = 77,
	};
	struct shmq__bridge_shared bad = in;
	shmq_region *r;
	int rc = shmq_region_create(name, &ro, &r);

	if (rc)
		return rc;
	bad.dir = 9;
	rc = bridge_blob(r, "bridge.jobs", &in);
	if (!rc)
		rc = bridge_blob(r, "bridge.out", &out);
	if (!rc)
		rc = bridge_blob(r, "bridge.bad", &bad);
	if (!rc)
		rc = bridge_blob(r, "plainblob", &(struct shmq__bridge_shared){ 0 });
	shmq_region_close(r);
	return rc;
}

int main(int argc, char **argv)
{
	shmq_region *r;
	int rc;

	shmq_dispatch(argc, argv); /* pool workers run in here */
	if (argc < 3)
		return 1;
	const char *what = argv[1], *name = argv[2];
	if (strcmp(what, "foreign") == 0)
		return foreign(name) ? 1 : 0;
	if (strcmp(what, "pool") == 0 && argc == 4) {
		rc = pool_mode(name, (unsigned)atoi(argv[3]));
		if (rc)
			fprintf(stderr, "tools_mkregion pool %s: %s\n", name, shmq_strerror(rc));
		return rc ? 1 : 0;
	}
	if (strcmp(what, "sleepy") == 0)
		return sleepy(name) ? 1 : 0;
	if (strcmp(what, "bridge") == 0)
		return bridge_mode(name) ? 1 : 0;
	if (make(name, &r))
		return 1;
	if (strcmp(what, "hold") == 0 && argc == 4) {
		printf("ready\n");
		fflush(stdout);
		sleep((unsigned)atoi(argv[3]));
		close_rings();
		shmq_lock_release(lock);
		shmq_region_close(r);
		return 0;
	}
	if (strcmp(what, "die") == 0)
		raise(SIGKILL);
	close_rings();
	shmq_lock_release(lock);
	shmq_lock_close(lock);
	shmq_lock_close(spare);
	shmq_barrier_close(gate);
	shmq_barrier_close(broken);
	shmq_region_close(r);
	if (strcmp(what, "plain") == 0)
		return 0;
	if (strcmp(what, "corrupt") == 0)
		rc = corrupt_header(name);
	else if (strcmp(what, "baddir") == 0)
		rc = corrupt_dir(name);
	else
		rc = -EINVAL;
	if (rc)
		fprintf(stderr, "tools_mkregion %s %s: %s\n", what, name, shmq_strerror(rc));
	return rc ? 1 : 0;
}
