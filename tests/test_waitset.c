/* SPDX-License-Identifier: MIT */
/*
 * Waitsets: every kind of entry (queue, pipe, process, async result, plain
 * descriptor) turns ready and is reported with its cookie; timeouts; the
 * descriptor is readable exactly when a wait would not block (poll, epoll);
 * remove; 64 queues of which one turns ready; a dead claimer does not hide a
 * message; bad input; a set inherited across fork().  Each on both backends:
 * io_uring and the epoll fallback (SHMQ_WAITSET_BACKEND=fallback).
 */
#include "config.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "testutil.h"
#include "inject.h"

#include "core/region_int.h"
#include "core/wait_int.h"
#include "core/watch_int.h"
#include "ring/mpmc_int.h"
#include "ring/spsc_int.h"

#define MS 1000000LL
#define SEC 1000000000LL
#define REGION_SIZE ((size_t)64 << 20)

static int setup_backend(void **state, const char *backend)
{
	if (backend)
		setenv("SHMQ_WAITSET_BACKEND", backend, 1);
	else
		unsetenv("SHMQ_WAITSET_BACKEND");
	return tu_region_setup(state, "ws", REGION_SIZE);
}

static int setup_uring(void **state)
{
	return setup_backend(state, NULL);
}

static int setup_fallback(void **state)
{
	return setup_backend(state, "fallback");
}

static shmq_region *R(void **state)
{
	return ((struct tu_region *)*state)->r;
}

/* Which kernel object the set's descriptor is. */
static bool fd_is(int fd, const char *what)
{
	char path[64], link[128];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return false;
	link[n] = 0;
	return strstr(link, what) != NULL;
}

static shmq_waitset *mk(void)
{
	shmq_waitset *w;
	const char *env = getenv("SHMQ_WAITSET_BACKEND");

	assert_int_equal(shmq_waitset_create(&w), 0);
	/* the backend the suite asked for is the one in use */
	assert_true(fd_is(shmq_waitset_fd(w), env ? "eventpoll" : "io_uring"));
	return w;
}

/* Is the set's descriptor readable within ms? */
static bool fd_readable(shmq_waitset *w, int ms)
{
	struct pollfd p = { .fd = shmq_waitset_fd(w), .events = POLLIN };
	int n;

	/* io_uring completes through task work on the thread that waits on
	 * the set: its arrival may interrupt a poll there (EINTR), as a
	 * signal would; the loop retries, as every event loop does */
	while ((n = poll(&p, 1, ms)) < 0 && errno == EINTR)
		;
	return n == 1 && (p.revents & POLLIN);
}

static int epoll_wait_retry(int ep, struct epoll_event *ev, int ms)
{
	int n;

	while ((n = epoll_wait(ep, ev, 1, ms)) < 0 && errno == EINTR)
		;
	return n;
}

static shmq_queue *mkq(void **state, const char *name, uint32_t cap)
{
	shmq_queue *q;

	assert_int_equal(shmq_queue_create(R(state), name,
					   &(struct shmq_queue_opts){ cap, 16, 0 }, &q), 0);
	return q;
}

/* ---- threads cancelled inside a wait ---- */

/* A thread cancelled (deferred) in a wait: the wait is no cancellation point
 * on either backend, so it reports (here: times out) and the cancel acts
 * after it; the set then reports a put at once.  Old code (fallback): the
 * cancel acted in the epoll_wait of the wait's reap - the same reap whose
 * eventfd read, were a cancel to land there, drops the rest of a batch of
 * one-shot completions taken from epoll but never reaped. */
struct cancelled_ws {
	shmq_waitset *w;
	int rc;
};

static void *cancelled_ws_main(void *arg)
{
	struct cancelled_ws *c = arg;
	struct shmq_ready rd;

	pthread_cancel(pthread_self()); /* deferred: pending in the wait */
	c->rc = shmq_waitset_wait(c->w, &rd, 1, 100 * MS);
	pthread_testcancel();
	return NULL;
}

static void test_wait_cancelled(void **state)
{
	shmq_waitset *w = mk();
	shmq_queue *q = mkq(state, "q.cancel", 2);
	struct cancelled_ws c = { w, 1 };
	struct shmq_ready rd;
	pthread_t th;
	void *ret;
	int cookie;

	assert_int_equal(shmq_waitset_add_queue(w, q, SHMQ_READABLE, &cookie), 0);
	assert_int_equal(pthread_create(&th, NULL, cancelled_ws_main, &c), 0);
	assert_int_equal(pthread_join(th, &ret), 0);
	assert_ptr_equal(ret, PTHREAD_CANCELED);
	assert_int_equal(c.rc, -ETIMEDOUT);
	assert_int_equal(shmq_queue_put(q, "a", 1, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_waitset_wait(w, &rd, 1, 2 * SEC), 1);
	assert_ptr_equal(rd.cookie, &cookie);
	shmq_waitset_free(w);
	shmq_queue_close(q);
}

/* ---- readiness of each kind ---- */

static void test_queue(void **state)
{
	shmq_waitset *w = mk();
	shmq_queue *q = mkq(state, "q.one", 2);
	struct shmq_ready rd[4];
	struct shmq_queue_stats st;
	int cookie_r, cookie_w;
	char buf[16];

	assert_int_equal(shmq_waitset_add_queue(w, q, SHMQ_READABLE, &cookie_r), 0);
	/* the entry counts in the getters' sleepers: every put wakes it */
	assert_int_equal(shmq_queue_stats(q, &st), 0);
	assert_int_equal(st.sleeping_getters, 1);
	assert_int_equal(shmq_waitset_wait(w, rd, 4, SHMQ_NOWAIT), -ETIMEDOUT);
	assert_false(fd_readable(w, 0));
	assert_int_equal(shmq_queue_put(q, "a", 1, SHMQ_NOWAIT), 0);
	assert_true(fd_readable(w, 2000));
	assert_int_equal(shmq_waitset_wait(w, rd, 4, SHMQ_NOWAIT), 1);
	assert_ptr_equal(rd[0].cookie, &cookie_r);
	assert_int_equal(rd[0].events, SHMQ_READABLE);
	/* level-triggered: still there, still ready, and the fd says so */
	assert_true(fd_readable(w, 0));
	assert_int_equal(shmq_waitset_wait(w, rd, 4, SHMQ_NOWAIT), 1);
	/* reported, not waited on again yet: its producers make no wake */
	assert_int_equal(shmq_queue_stats(q, &st), 0);
	assert_int_equal(st.sleeping_getters, 0);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), 1);
	assert_int_equal(shmq_waitset_wait(w, rd, 4, SHMQ_NOWAIT), -ETIMEDOUT);
	assert_false(fd_readable(w, 0));

	/* the sending side: room now, none when full, room again after a get */
	assert_int_equal(shmq_waitset_add_queue(w, q, SHMQ_WRITABLE, &cookie_w), 0);
	assert_true(fd_readable(w, 0));
	assert_int_equal(shmq_waitset_wait(w, rd, 4, SHMQ_NOWAIT), 1);
	assert_ptr_equal(rd[0].cookie, &cookie_w);
	assert_int_equal(rd[0].events, SHMQ_WRITABLE);
	assert_int_equal(shmq_waitset_remove(w, &cookie_r), 0);
	assert_int_equal(shmq_queue_put(q, "b", 1, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_queue_put(q, "c", 1, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_waitset_wait(w, rd, 4, SHMQ_NOWAIT), -ETIMEDOUT);
	assert_false(fd_readable(w, 0));
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), 1);
	assert_true(fd_readable(w, 2000));
	assert_int_equal(shmq_waitset_wait(w, rd, 4, SHMQ_NOWAIT), 1);
	assert_ptr_equal(rd[0].cookie, &cookie_w);
	shmq_waitset_free(w);
	/* a freed set leaves no sleeper behind */
	assert_int_equal(shmq_queue_stats(q, &st), 0);
	assert_int_equal(st.sleeping_getters, 0);
	assert_int_equal(st.sleeping_putters, 0);
	shmq_queue_close(q);
}

struct later {
	shmq_queue *q;
	int64_t delay;
};

static void *put_later(void *arg)
{
	struct later *l = arg;

	tu_sleep_ns(l->delay);
	assert_int_equal(shmq_queue_put(l->q, "x", 1, SHMQ_NOWAIT), 0);
	return NULL;
}

/* A blocked wait is woken by a put from another thread; a timeout times out. */
static void test_block_and_timeout(void **state)
{
	shmq_waitset *w = mk();
	shmq_queue *q = mkq(state, "q.block", 4);
	struct later l = { q, 30 * MS };
	struct shmq_ready rd[1];
	pthread_t t;
	int64_t t0;
	int c;

	assert_int_equal(shmq_waitset_add_queue(w, q, SHMQ_READABLE, &c), 0);
	t0 = shmq_now_ns();
	assert_int_equal(shmq_waitset_wait(w, rd, 1, 20 * MS), -ETIMEDOUT);
	assert_true(shmq_now_ns() - t0 >= 20 * MS);
	assert_int_equal(pthread_create(&t, NULL, put_later, &l), 0);
	assert_int_equal(shmq_waitset_wait(w, rd, 1, 10 * SEC), 1);
	assert_ptr_equal(rd[0].cookie, &c);
	pthread_join(t, NULL);
	shmq_waitset_free(w);
	shmq_queue_close(q);
}

static void test_pipe(void **state)
{
	shmq_waitset *w = mk();
	shmq_pipe *a, *b;
	struct shmq_ready rd[4];
	char buf[64];
	int cr, cw;
	int n = 0;

	assert_int_equal(shmq_pipe_create(R(state), "p.one", &(struct shmq_pipe_opts){ 256 }, &a, &b), 0);
	assert_int_equal(shmq_waitset_add_pipe(w, b, SHMQ_READABLE, &cr), 0);
	assert_int_equal(shmq_waitset_wait(w, rd, 4, SHMQ_NOWAIT), -ETIMEDOUT);
	assert_int_equal(shmq_pipe_send(a, "hi", 2, SHMQ_NOWAIT), 0);
	assert_true(fd_readable(w, 2000));
	assert_int_equal(shmq_waitset_wait(w, rd, 4, SHMQ_NOWAIT), 1);
	assert_ptr_equal(rd[0].cookie, &cr);
	assert_int_equal(rd[0].events, SHMQ_READABLE);
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), SHMQ_NOWAIT), 2);
	assert_int_equal(shmq_waitset_wait(w, rd, 4, SHMQ_NOWAIT), -ETIMEDOUT);

	/* writable: half the ring free; not once it is full; again after a recv */
	assert_int_equal(shmq_waitset_add_pipe(w, a, SHMQ_WRITABLE, &cw), 0);
	assert_int_equal(shmq_waitset_wait(w, rd, 4, SHMQ_NOWAIT), 1);
	assert_ptr_equal(rd[0].cookie, &cw);
	assert_int_equal(rd[0].events, SHMQ_WRITABLE);
	memset(buf, 'z', sizeof(buf));
	while (shmq_pipe_send(a, buf, 40, SHMQ_NOWAIT) == 0)
		n++;
	assert_true(n >= 3);
	assert_int_equal(shmq_waitset_wait(w, rd, 4, SHMQ_NOWAIT), 1); /* b is readable */
	assert_ptr_equal(rd[0].cookie, &cr);
	assert_int_equal(shmq_waitset_remove(w, &cr), 0);
	assert_int_equal(shmq_waitset_wait(w, rd, 4, SHMQ_NOWAIT), -ETIMEDOUT);
	while (n--)
		assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), SHMQ_NOWAIT), 40);
	assert_int_equal(shmq_waitset_wait(w, rd, 4, 2 * SEC), 1);
	assert_ptr_equal(rd[0].cookie, &cw);

	/* the peer goes: the receiving end turns readable (recv says -EPIPE) */
	assert_int_equal(shmq_waitset_remove(w, &cw), 0);
	assert_int_equal(shmq_waitset_add_pipe(w, b, SHMQ_READABLE, &cr), 0);
	assert_int_equal(shmq_waitset_wait(w, rd, 4, SHMQ_NOWAIT), -ETIMEDOUT);
	shmq_pipe_close(a);
	assert_int_equal(shmq_waitset_wait(w, rd, 4, 5 * SEC), 1);
	assert_ptr_equal(rd[0].cookie, &cr);
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), SHMQ_NOWAIT), -EPIPE);
	shmq_waitset_free(w);
	shmq_pipe_close(b);
}

/* A gate: a task or child waits (at most 10 s) for the file at path, which
 * the test makes when it has looked: alive until then, however slow the
 * machine. */
static void gate_wait(const char *path)
{
	for (int i = 0; i < 10000 && access(path, F_OK) != 0; i++)
		tu_sleep_ns(MS);
}

static void gate_open(const char *path)
{
	int fd = open(path, O_CREAT | O_WRONLY, 0600);

	assert_true(fd >= 0);
	close(fd);
}

/* Waits at the gate its argument names, then exits 7. */
static int child_gate(shmq_region *r, const void *arg, size_t len)
{
	(void)r;
	if (len == 0 || memchr(arg, 0, len) == NULL)
		return 2;
	gate_wait(arg);
	return 7;
}
SHMQ_ENTRY(child_gate);

static void test_proc(void **state)
{
	shmq_waitset *w = mk();
	struct shmq_ready rd[2];
	char path[128];
	shmq_proc *p;
	int c;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/shmq-ws-proc-%d", (int)getpid());
	unlink(path);
	assert_int_equal(shmq_proc_spawn(NULL, "child_gate", path, strlen(path) + 1, NULL, &p), 0);
	assert_int_equal(shmq_waitset_add_proc(w, p, &c), 0);
	assert_int_equal(shmq_waitset_wait(w, rd, 2, SHMQ_NOWAIT), -ETIMEDOUT);
	assert_false(fd_readable(w, 0));
	gate_open(path);
	assert_true(fd_readable(w, 10000));
	assert_int_equal(shmq_waitset_wait(w, rd, 2, 10 * SEC), 1);
	assert_ptr_equal(rd[0].cookie, &c);
	assert_int_equal(rd[0].events, SHMQ_READABLE);
	/* not reaped by the set: the status is the joiner's */
	assert_int_equal(shmq_proc_join(p, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_proc_exitcode(p), 7);
	/* and it stays ready (exited) after the join */
	assert_int_equal(shmq_waitset_wait(w, rd, 2, SHMQ_NOWAIT), 1);
	assert_int_equal(shmq_waitset_remove(w, &c), 0);
	shmq_waitset_free(w);
	shmq_proc_close(p);
	unlink(path);
}

/* A task that waits at the gate its input names. */
static int gate_file(const void *in, void *out)
{
	gate_wait(in);
	*(int64_t *)out = 42;
	return 0;
}
SHMQ_TASK(gate_file);

static void test_async(void **state)
{
	shmq_waitset *w = mk();
	struct shmq_pool_opts o = { .workers = 1 };
	struct shmq_ready rd[2];
	char path[128];
	int64_t out = 0;
	shmq_async *a;
	shmq_pool *p;
	int c;

	snprintf(path, sizeof(path), "/tmp/shmq-ws-gate-%d", (int)getpid());
	unlink(path);
	assert_int_equal(shmq_pool_create(R(state), &o, &p), 0);
	assert_int_equal(shmq_pool_apply_async(p, "gate_file", path, strlen(path) + 1, &out,
					       sizeof(out), &a), 0);
	assert_int_equal(shmq_waitset_add_async(w, a, &c), 0);
	assert_int_equal(shmq_waitset_wait(w, rd, 2, SHMQ_NOWAIT), -ETIMEDOUT);
	gate_open(path);
	assert_int_equal(shmq_waitset_wait(w, rd, 2, 10 * SEC), 1);
	assert_ptr_equal(rd[0].cookie, &c);
	assert_int_equal(shmq_async_get(a, SHMQ_NOWAIT), 0);
	assert_int_equal(out, 42);
	assert_int_equal(shmq_waitset_remove(w, &c), 0);
	shmq_async_free(a);
	unlink(path);
	assert_int_equal(shmq_pool_close(p), 0);
	assert_int_equal(shmq_pool_join(p, 10 * SEC), 0);
	shmq_pool_free(p);
	shmq_waitset_free(w);
}

static void test_fd(void **state)
{
	shmq_waitset *w = mk();
	struct shmq_ready rd[2];
	int fds[2], cr, cw;
	char ch;

	(void)state;
	assert_int_equal(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
	assert_int_equal(shmq_waitset_add_fd(w, fds[0], SHMQ_READABLE, &cr), 0);
	assert_int_equal(shmq_waitset_wait(w, rd, 2, SHMQ_NOWAIT), -ETIMEDOUT);
	assert_false(fd_readable(w, 0));
	assert_int_equal(write(fds[1], "!", 1), 1);
	assert_true(fd_readable(w, 2000));
	assert_int_equal(shmq_waitset_wait(w, rd, 2, SHMQ_NOWAIT), 1);
	assert_ptr_equal(rd[0].cookie, &cr);
	assert_int_equal(rd[0].events, SHMQ_READABLE);
	assert_int_equal(read(fds[0], &ch, 1), 1);
	assert_int_equal(shmq_waitset_wait(w, rd, 2, SHMQ_NOWAIT), -ETIMEDOUT);
	assert_int_equal(shmq_waitset_add_fd(w, fds[1], SHMQ_WRITABLE, &cw), 0);
	assert_int_equal(shmq_waitset_wait(w, rd, 2, SHMQ_NOWAIT), 1);
	assert_ptr_equal(rd[0].cookie, &cw);
	assert_int_equal(rd[0].events, SHMQ_WRITABLE);
	shmq_waitset_free(w);
	close(fds[0]);
	close(fds[1]);
}

/* A descriptor the kernel refuses to watch (the epoll fallback refuses the
 * set's own descriptor: an epoll set cannot hold itself) is refused by the
 * add, which leaves the set as it was: the cookie stays free and the other
 * entries are still reported. */
static void test_fd_refused(void **state)
{
	shmq_waitset *w = mk();
	struct shmq_ready rd[2];
	int fds[2], cp, cs, rc;
	char ch;

	(void)state;
	assert_int_equal(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
	assert_int_equal(shmq_waitset_add_fd(w, fds[0], SHMQ_READABLE, &cp), 0);
	rc = shmq_waitset_add_fd(w, shmq_waitset_fd(w), SHMQ_READABLE, &cs);
	if (rc < 0) {
		assert_int_not_equal(rc, -EEXIST);
		assert_int_equal(shmq_waitset_remove(w, &cs), -ENOENT);
	} else {
		assert_int_equal(shmq_waitset_remove(w, &cs), 0);
	}
	assert_int_equal(shmq_waitset_wait(w, rd, 2, SHMQ_NOWAIT), -ETIMEDOUT);
	assert_false(fd_readable(w, 0));
	assert_int_equal(write(fds[1], "!", 1), 1);
	assert_true(fd_readable(w, 2000));
	assert_int_equal(shmq_waitset_wait(w, rd, 2, SHMQ_NOWAIT), 1);
	assert_ptr_equal(rd[0].cookie, &cp);
	assert_int_equal(read(fds[0], &ch, 1), 1);
	assert_int_equal(shmq_waitset_wait(w, rd, 2, SHMQ_NOWAIT), -ETIMEDOUT);
	shmq_waitset_free(w);
	close(fds[0]);
	close(fds[1]);
}

/* The same refusals while the set is readable (an entry is ready): the
 * fallback used to skip the epoll registration of a descriptor that was
 * ready at the add, so the add said 0 and the refusal came from every later
 * wait instead (-EINVAL for the set's own descriptor, -ELOOP for two sets
 * that hold each other), which then reported nothing that was ready.  Now
 * an add is refused or taken, and a wait reports what is ready. */
static bool rd_has(const struct shmq_ready *rd, int n, const void *cookie)
{
	for (int i = 0; i < n; i++)
		if (rd[i].cookie == cookie)
			return true;
	return false;
}

static void test_fd_refused_while_ready(void **state)
{
	shmq_waitset *w = mk(), *w2 = mk();
	struct shmq_ready rd[4];
	int fds[2], cp, cs, ca, cb, rc_s, rc_a, rc_b, n;
	char ch;

	(void)state;
	assert_int_equal(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
	assert_int_equal(write(fds[1], "!", 1), 1);
	assert_int_equal(shmq_waitset_add_fd(w, fds[0], SHMQ_READABLE, &cp), 0);
	assert_true(fd_readable(w, 2000));
	/* its own descriptor, readable now */
	rc_s = shmq_waitset_add_fd(w, shmq_waitset_fd(w), SHMQ_READABLE, &cs);
	if (rc_s < 0) {
		assert_int_not_equal(rc_s, -EEXIST);
		assert_int_equal(shmq_waitset_remove(w, &cs), -ENOENT);
	}
	/* w in w2 (w readable now), then w2 in w: a loop the kernel may refuse */
	rc_a = shmq_waitset_add_fd(w2, shmq_waitset_fd(w), SHMQ_READABLE, &ca);
	assert_true(rc_a == 0 || (rc_a < 0 && rc_a != -EEXIST));
	rc_b = shmq_waitset_add_fd(w, shmq_waitset_fd(w2), SHMQ_READABLE, &cb);
	assert_true(rc_b == 0 || (rc_b < 0 && rc_b != -EEXIST));
	for (int round = 0; round < 3; round++) {
		n = shmq_waitset_wait(w, rd, 4, SHMQ_NOWAIT);
		assert_true(n >= 1);
		assert_true(rd_has(rd, n, &cp));
		n = shmq_waitset_wait(w2, rd, 4, SHMQ_NOWAIT);
		assert_true(n >= 1 || n == -ETIMEDOUT);
	}
	if (rc_s == 0)
		assert_int_equal(shmq_waitset_remove(w, &cs), 0);
	if (rc_b == 0)
		assert_int_equal(shmq_waitset_remove(w, &cb), 0);
	if (rc_a == 0)
		assert_int_equal(shmq_waitset_remove(w2, &ca), 0);
	assert_int_equal(read(fds[0], &ch, 1), 1);
	assert_int_equal(shmq_waitset_wait(w, rd, 4, SHMQ_NOWAIT), -ETIMEDOUT);
	assert_int_equal(shmq_waitset_wait(w2, rd, 4, SHMQ_NOWAIT), -ETIMEDOUT);
	shmq_waitset_free(w2);
	shmq_waitset_free(w);
	close(fds[0]);
	close(fds[1]);
}

/* ---- the descriptor in someone else's loop ---- */

static void test_epoll(void **state)
{
	shmq_waitset *w = mk();
	shmq_queue *q = mkq(state, "q.epoll", 4);
	struct later l = { q, 30 * MS };
	struct epoll_event ev = { .events = EPOLLIN }, got;
	struct shmq_ready rd[1];
	pthread_t t;
	char buf[16];
	int ep, c;

	assert_int_equal(shmq_waitset_add_queue(w, q, SHMQ_READABLE, &c), 0);
	ep = epoll_create1(EPOLL_CLOEXEC);
	assert_true(ep >= 0);
	assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, shmq_waitset_fd(w), &ev), 0);
	assert_int_equal(epoll_wait(ep, &got, 1, 0), 0);
	for (int round = 0; round < 3; round++) {
		assert_int_equal(pthread_create(&t, NULL, put_later, &l), 0);
		assert_int_equal(epoll_wait_retry(ep, &got, 10000), 1);
		/* stays readable until the set reported it */
		assert_int_equal(epoll_wait(ep, &got, 1, 0), 1);
		assert_int_equal(shmq_waitset_wait(w, rd, 1, SHMQ_NOWAIT), 1);
		assert_ptr_equal(rd[0].cookie, &c);
		pthread_join(t, NULL);
		assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), 1);
		assert_int_equal(shmq_waitset_wait(w, rd, 1, SHMQ_NOWAIT), -ETIMEDOUT);
		assert_int_equal(epoll_wait(ep, &got, 1, 0), 0);
	}
	close(ep);
	shmq_waitset_free(w);
	shmq_queue_close(q);
}

/* ---- many ---- */

#define NQ 64

static void test_64_queues(void **state)
{
	shmq_waitset *w = mk();
	shmq_queue *q[NQ];
	int cookie[NQ];
	struct shmq_ready rd[NQ];
	struct later l;
	pthread_t t;
	char name[32];

	for (int i = 0; i < NQ; i++) {
		snprintf(name, sizeof(name), "q.many.%d", i);
		q[i] = mkq(state, name, 4);
		assert_int_equal(shmq_waitset_add_queue(w, q[i], SHMQ_READABLE, &cookie[i]), 0);
	}
	assert_int_equal(shmq_waitset_wait(w, rd, NQ, SHMQ_NOWAIT), -ETIMEDOUT);
	l = (struct later){ q[37], 30 * MS };
	assert_int_equal(pthread_create(&t, NULL, put_later, &l), 0);
	assert_int_equal(shmq_waitset_wait(w, rd, NQ, 10 * SEC), 1);
	assert_ptr_equal(rd[0].cookie, &cookie[37]);
	pthread_join(t, NULL);
	/* more ready than max: reported max at a time, the rest still pending */
	assert_int_equal(shmq_queue_put(q[3], "y", 1, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_queue_put(q[60], "y", 1, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_waitset_wait(w, rd, 1, SHMQ_NOWAIT), 1);
	assert_true(fd_readable(w, 0));
	assert_int_equal(shmq_waitset_wait(w, rd, NQ, SHMQ_NOWAIT), 3);
	shmq_waitset_free(w);
	for (int i = 0; i < NQ; i++)
		shmq_queue_close(q[i]);
}

/* More entries stay ready than a wait may report: each wait reports the
 * ones the last left out first, so none starves (a caller taking one at a
 * time from queues that stay full sees every queue, as epoll rotates). */
static void test_no_starvation(void **state)
{
	shmq_waitset *w = mk();
	shmq_queue *q[3];
	int cookie[3], seen[3] = { 0 };
	struct shmq_ready rd[2];
	char name[32];

	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "q.fair.%d", i);
		q[i] = mkq(state, name, 4);
		assert_int_equal(shmq_queue_put(q[i], "x", 1, SHMQ_NOWAIT), 0);
		assert_int_equal(shmq_waitset_add_queue(w, q[i], SHMQ_READABLE, &cookie[i]), 0);
	}
	for (int round = 0; round < 6; round++) {
		assert_int_equal(shmq_waitset_wait(w, rd, 1, SHMQ_NOWAIT), 1);
		seen[(int *)rd[0].cookie - cookie]++;
	}
	for (int i = 0; i < 3; i++)
		assert_int_equal(seen[i], 2);
	/* two at a time: every wait reports two different ones, all in turn */
	memset(seen, 0, sizeof(seen));
	for (int round = 0; round < 3; round++) {
		assert_int_equal(shmq_waitset_wait(w, rd, 2, SHMQ_NOWAIT), 2);
		assert_ptr_not_equal(rd[0].cookie, rd[1].cookie);
		for (int k = 0; k < 2; k++)
			seen[(int *)rd[k].cookie - cookie]++;
	}
	for (int i = 0; i < 3; i++)
		assert_int_equal(seen[i], 2);
	shmq_waitset_free(w);
	for (int i = 0; i < 3; i++)
		shmq_queue_close(q[i]);
}

/* remove: no longer reported, its sleeper count given back, cookie free again */
static void test_remove(void **state)
{
	shmq_waitset *w = mk();
	shmq_queue *a = mkq(state, "q.rm.a", 4), *b = mkq(state, "q.rm.b", 4);
	struct shmq_queue_stats st;
	struct shmq_ready rd[2];
	int ca, cb;

	assert_int_equal(shmq_waitset_add_queue(w, a, SHMQ_READABLE, &ca), 0);
	assert_int_equal(shmq_waitset_add_queue(w, b, SHMQ_READABLE | SHMQ_WRITABLE, &cb), 0);
	/* a is armed (in its getters' sleepers); b is ready (writable), so
	 * nothing of it is armed and its producers and consumers wake nobody */
	assert_int_equal(shmq_queue_stats(a, &st), 0);
	assert_int_equal(st.sleeping_getters, 1);
	assert_int_equal(shmq_queue_stats(b, &st), 0);
	assert_int_equal(st.sleeping_getters, 0);
	assert_int_equal(st.sleeping_putters, 0);
	assert_int_equal(shmq_waitset_remove(w, &cb), 0);
	assert_int_equal(shmq_waitset_remove(w, &cb), -ENOENT);
	assert_int_equal(shmq_queue_stats(b, &st), 0);
	assert_int_equal(st.sleeping_getters, 0);
	assert_int_equal(st.sleeping_putters, 0);
	assert_int_equal(shmq_queue_put(b, "b", 1, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_waitset_wait(w, rd, 2, SHMQ_NOWAIT), -ETIMEDOUT);
	assert_int_equal(shmq_waitset_add_queue(w, b, SHMQ_READABLE, &cb), 0);
	assert_int_equal(shmq_waitset_wait(w, rd, 2, SHMQ_NOWAIT), 1);
	assert_ptr_equal(rd[0].cookie, &cb);
	assert_int_equal(shmq_waitset_remove(w, &ca), 0);
	assert_int_equal(shmq_waitset_remove(w, &cb), 0);
	assert_int_equal(shmq_waitset_wait(w, rd, 2, SHMQ_NOWAIT), -ETIMEDOUT);
	shmq_waitset_free(w);
	shmq_queue_close(a);
	shmq_queue_close(b);
}

/* A producer that died holding the claim at the head: the message put
 * behind it is reported (the set's liveness look clears the claim) promptly,
 * not never. */
static void test_dead_claimer(void **state)
{
	struct tu_region *f = *state;
	shmq_waitset *w = mk();
	shmq_queue *q = mkq(state, "q.dead", 4);
	struct shmq_ready rd[1];
	char buf[16];
	int64_t t0;
	pid_t pid;
	int c;

	assert_int_equal(shmq_waitset_add_queue(w, q, SHMQ_READABLE, &c), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_queue *cq;
		struct shmq__mpmc_block blk;
		uint64_t pos;

		if (shmq_region_open(f->name, &r) || shmq_queue_open(r, "q.dead", &cq))
			_exit(90);
		/* the ring is the handle's first member */
		if (shmq__mpmc_put_claim((struct shmq__mpmc *)cq, &pos, &blk))
			_exit(1);
		raise(SIGKILL); /* dies holding the claim */
	}
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	assert_int_equal(shmq_queue_put(q, "after", 5, SHMQ_NOWAIT), 0);
	t0 = shmq_now_ns();
	assert_int_equal(shmq_waitset_wait(w, rd, 1, 10 * SEC), 1);
	assert_true(shmq_now_ns() - t0 < 2 * SEC);
	assert_ptr_equal(rd[0].cookie, &c);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), 5);
	assert_int_equal(shmq_waitset_wait(w, rd, 1, SHMQ_NOWAIT), -ETIMEDOUT);
	shmq_waitset_free(w);
	shmq_queue_close(q);
}

/* A consumer that died between get_begin and get_commit: its message goes
 * out again to a get (ring/mpmc_int.h, Dead holders), so the set reports
 * the queue readable again promptly, not never.  The set saw the message
 * before the holder began it (its looks then found nothing held), and
 * nobody puts or gets afterwards: no word changes to wake it. */
static void test_dead_holder(void **state)
{
	struct tu_region *f = *state;
	shmq_waitset *w = mk();
	shmq_queue *q = mkq(state, "q.held", 4);
	struct shmq_ready rd[1];
	const void *msg;
	uint64_t pos;
	int64_t t0;
	int pfd[2];
	pid_t pid;
	char k;
	int c;

	assert_int_equal(shmq_waitset_add_queue(w, q, SHMQ_READABLE, &c), 0);
	assert_int_equal(shmq_queue_put(q, "held", 4, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_waitset_wait(w, rd, 1, 10 * SEC), 1);
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_queue *cq;

		if (shmq_region_open(f->name, &r) || shmq_queue_open(r, "q.held", &cq))
			_exit(90);
		if (shmq_queue_get_begin(cq, &msg, &pos, SHMQ_NOWAIT) != 4)
			_exit(1);
		if (write(pfd[1], "k", 1) != 1)
			_exit(2);
		pause(); /* killed here, holding the message */
		_exit(3);
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], &k, 1), 1);
	close(pfd[0]);
	assert_int_equal(shmq_waitset_wait(w, rd, 1, SHMQ_NOWAIT), -ETIMEDOUT);
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	t0 = shmq_now_ns();
	assert_int_equal(shmq_waitset_wait(w, rd, 1, 10 * SEC), 1);
	assert_true(shmq_now_ns() - t0 < 2 * SEC);
	assert_ptr_equal(rd[0].cookie, &c);
	assert_int_equal(shmq_queue_get_begin(q, &msg, &pos, SHMQ_NOWAIT), 4);
	assert_int_equal(pos, 0);
	assert_int_equal(shmq_queue_get_commit(q, pos), 0);
	assert_int_equal(shmq_waitset_wait(w, rd, 1, SHMQ_NOWAIT), -ETIMEDOUT);
	shmq_waitset_free(w);
	shmq_queue_close(q);
}

/* ---- io_uring refused ---- */

/* In a child: 0 when a set made under the refusal works on the fallback,
 * 77 when no filter can be installed, else the number of the failed check. */
static int refused_child(const char *region, const char *queue, long nr, int err)
{
	struct shmq_ready rd[2];
	shmq_region *r;
	shmq_queue *q;
	shmq_waitset *w;
	int cookie;

	/* handles do not cross fork(): the child's own */
	if (shmq_region_open(region, &r) != 0 || shmq_queue_open(r, queue, &q) != 0)
		return 1;
	if (!refuse_syscall(nr, err))
		return 77;
	if (shmq_waitset_create(&w) != 0)
		return 2;
	if (!fd_is(shmq_waitset_fd(w), "eventpoll"))
		return 3;
	if (shmq_waitset_add_queue(w, q, SHMQ_READABLE, &cookie) != 0)
		return 4;
	if (shmq_waitset_wait(w, rd, 2, SHMQ_NOWAIT) != -ETIMEDOUT)
		return 5;
	if (shmq_queue_put(q, "a", 1, SHMQ_NOWAIT) != 0)
		return 6;
	if (shmq_waitset_wait(w, rd, 2, 5 * SEC) != 1 || rd[0].cookie != &cookie)
		return 7;
	shmq_waitset_free(w);
	shmq_queue_close(q);
	shmq_region_close(r);
	return 0;
}

/* Where io_uring is refused (a seccomp filter on io_uring_setup, or on
 * io_uring_enter alone: the ring is made but cannot be entered), a set
 * takes the epoll fallback and behaves as everywhere else, not an io_uring
 * set whose every add and wait fails. */
static void test_uring_refused(void **state)
{
	const struct { long nr; int err; } cases[] = {
		{ __NR_io_uring_setup, EPERM },
		{ __NR_io_uring_setup, ENOSYS },
		{ __NR_io_uring_enter, EPERM },
		{ __NR_io_uring_enter, ENOSYS },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char name[32];
		shmq_queue *q;
		pid_t pid;
		int st;

		snprintf(name, sizeof(name), "q.refused.%zu", i);
		q = mkq(state, name, 4);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			_exit(refused_child(((struct tu_region *)*state)->name, name, cases[i].nr,
					    cases[i].err));
		st = tu_wait_child(pid);
		if (st == 77)
			skip();
		if (st != 0)
			print_message("refused case %zu: check %d failed\n", i, st);
		assert_int_equal(st, 0);
		shmq_queue_close(q);
	}
}

/* In a child: entries removed while the kernel refuses to take their
 * cancels (the submission queue fills with the first 256, the rest find no
 * room) keep no wait in the kernel once it takes them again: the next wait
 * sends what was refused, and a wake on each queue's word finds nobody. */
#define NREFUSED 300
static int refused_cancel_child(void **state)
{
	static shmq_queue *q[NREFUSED];
	struct shmq_region_opts ro = { .size = REGION_SIZE };
	struct shmq_ready rd[1];
	shmq_region *r;
	shmq_waitset *w;

	(void)state;
	if (shmq_region_create(NULL, &ro, &r) != 0 || shmq_waitset_create(&w) != 0)
		return 2;
	if (!fd_is(shmq_waitset_fd(w), "io_uring"))
		return 77;
	for (int i = 0; i < NREFUSED; i++) {
		char name[32];

		snprintf(name, sizeof(name), "q.%d", i);
		if (shmq_queue_create(r, name, &(struct shmq_queue_opts){ 2, 16, 0 }, &q[i]) != 0 ||
		    shmq_waitset_add_queue(w, q[i], SHMQ_READABLE, q[i]) != 0)
			return 3;
	}
	__atomic_store_n(&g_inj.on, 1, __ATOMIC_SEQ_CST);
	for (int i = 0; i < NREFUSED; i++)
		if (shmq_waitset_remove(w, q[i]) != 0)
			return 4;
	__atomic_store_n(&g_inj.on, 0, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&g_inj.failed, __ATOMIC_SEQ_CST) == 0)
		return 5; /* nothing was refused: the test tests nothing */
	/* the first submits what the kernel refused, the second reaps it */
	for (int k = 0; k < 2; k++)
		if (shmq_waitset_wait(w, rd, 1, SHMQ_NOWAIT) != -ETIMEDOUT)
			return 6;
	for (int i = 0; i < NREFUSED; i++) {
		struct shmq__watch v;

		if (shmq__queue_watch(q[i], &v) != 0)
			return 7;
		if (shmq__futex_wake(v.word, INT32_MAX) != 0)
			return 8; /* a removed entry's wait still in the kernel */
	}
	shmq_waitset_free(w);
	for (int i = 0; i < NREFUSED; i++)
		shmq_queue_close(q[i]);
	shmq_region_close(r);
	return 0;
}

static void test_remove_refused_cancel(void **state)
{
	inj_run(state, refused_cancel_child);
}

/* ---- errors ---- */

static void test_bad_input(void **state)
{
	shmq_waitset *w = mk();
	shmq_queue *q = mkq(state, "q.bad", 4);
	struct shmq_ready rd[1];
	int c, c2, fds[2];

	assert_int_equal(shmq_waitset_create(NULL), -EINVAL);
	assert_int_equal(shmq_waitset_add_queue(NULL, q, SHMQ_READABLE, &c), -EINVAL);
	assert_int_equal(shmq_waitset_add_queue(w, NULL, SHMQ_READABLE, &c), -EINVAL);
	assert_int_equal(shmq_waitset_add_queue(w, q, SHMQ_READABLE, NULL), -EINVAL);
	assert_int_equal(shmq_waitset_add_queue(w, q, 0, &c), -EINVAL);
	assert_int_equal(shmq_waitset_add_queue(w, q, 4, &c), -EINVAL);
	assert_int_equal(shmq_waitset_add_pipe(w, NULL, SHMQ_READABLE, &c), -EINVAL);
	assert_int_equal(shmq_waitset_add_proc(w, NULL, &c), -EINVAL);
	assert_int_equal(shmq_waitset_add_async(w, NULL, &c), -EINVAL);
	assert_int_equal(shmq_waitset_add_fd(w, -1, SHMQ_READABLE, &c), -EBADF);
	assert_int_equal(pipe(fds), 0);
	close(fds[0]);
	close(fds[1]);
	assert_int_equal(shmq_waitset_add_fd(w, fds[0], SHMQ_READABLE, &c), -EBADF);
	assert_int_equal(shmq_waitset_add_queue(w, q, SHMQ_READABLE, &c), 0);
	assert_int_equal(shmq_waitset_add_queue(w, q, SHMQ_READABLE, &c), -EEXIST);
	assert_int_equal(shmq_waitset_add_fd(w, shmq_waitset_fd(w), SHMQ_READABLE, &c), -EEXIST);
	assert_int_equal(shmq_waitset_remove(w, &c2), -ENOENT);
	assert_int_equal(shmq_waitset_remove(w, NULL), -EINVAL);
	assert_int_equal(shmq_waitset_remove(NULL, &c), -EINVAL);
	assert_int_equal(shmq_waitset_wait(NULL, rd, 1, SHMQ_NOWAIT), -EINVAL);
	assert_int_equal(shmq_waitset_wait(w, NULL, 1, SHMQ_NOWAIT), -EINVAL);
	assert_int_equal(shmq_waitset_wait(w, rd, 0, SHMQ_NOWAIT), -EINVAL);
	assert_int_equal(shmq_waitset_fd(NULL), -EINVAL);
	/* the failures changed nothing: one entry, not ready */
	assert_int_equal(shmq_waitset_wait(w, rd, 1, SHMQ_NOWAIT), -ETIMEDOUT);
	shmq_waitset_free(NULL);
	shmq_waitset_free(w);
	shmq_queue_close(q);
}

/* A set inherited across fork() is the parent's: -EBADF in the child, and
 * freeing it there leaves the parent's set working. */
static void test_forked(void **state)
{
	shmq_waitset *w = mk();
	shmq_queue *q = mkq(state, "q.fork", 4);
	struct shmq_ready rd[1];
	int c, c2;
	pid_t pid;

	assert_int_equal(shmq_waitset_add_queue(w, q, SHMQ_READABLE, &c), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int bad = 0;

		alarm(30);
		bad |= shmq_waitset_wait(w, rd, 1, SHMQ_NOWAIT) != -EBADF;
		bad |= shmq_waitset_add_queue(w, q, SHMQ_WRITABLE, &c2) != -EBADF;
		bad |= shmq_waitset_remove(w, &c) != -EBADF;
		bad |= shmq_waitset_fd(w) != -EBADF;
		shmq_waitset_free(w);
		_exit(bad ? 1 : 0);
	}
	assert_int_equal(tu_wait_child(pid), 0);
	assert_int_equal(shmq_queue_put(q, "p", 1, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_waitset_wait(w, rd, 1, 5 * SEC), 1);
	assert_ptr_equal(rd[0].cookie, &c);
	shmq_waitset_free(w);
	shmq_queue_close(q);
}

/* No thread can be started (RLIMIT_NPROC, in a child that is no root): the
 * fallback's helper for queue words cannot start, which a wait reports as
 * -EAGAIN and an add leaves to the next wait (shmq_waitset(3)).  Removing
 * the entry removes it and says 0 (old code: -EAGAIN from the remove,
 * whose entry was gone all the same: a second remove said -ENOENT). */
static int remove_helper_refused_child(void)
{
	struct rlimit one = { 1, 1 };
	struct shmq_ready rd[1];
	shmq_region *r;
	shmq_queue *q, *q2;
	shmq_waitset *w;
	int c, c2, rc, bad = 0;

	if (getuid() == 0 && (setgid(65534) || setuid(65534)))
		return 77;
	if (shmq_region_create(NULL, &(struct shmq_region_opts){ .size = 1 << 20 }, &r) ||
	    shmq_queue_create(r, "q", &(struct shmq_queue_opts){ 4, 16, 0 }, &q) ||
	    shmq_queue_create(r, "q2", &(struct shmq_queue_opts){ 4, 16, 0 }, &q2) ||
	    shmq_waitset_create(&w))
		return 99;
	if (setrlimit(RLIMIT_NPROC, &one))
		return 77;
	bad |= shmq_waitset_add_queue(w, q, SHMQ_READABLE, &c) != 0;
	bad |= shmq_waitset_add_queue(w, q2, SHMQ_READABLE, &c2) != 0;
	rc = shmq_waitset_wait(w, rd, 1, MS); /* both wait on their words */
	bad |= (rc != -ETIMEDOUT && rc != -EAGAIN) << 1;
	bad |= (shmq_waitset_remove(w, &c) != 0) << 2; /* c2's word stays */
	bad |= (shmq_waitset_remove(w, &c) != -ENOENT) << 3;
	rc = shmq_waitset_wait(w, rd, 1, MS);
	bad |= (rc != -ETIMEDOUT && rc != -EAGAIN) << 4;
	bad |= (shmq_waitset_remove(w, &c2) != 0) << 5;
	bad |= (shmq_waitset_wait(w, rd, 1, MS) != -ETIMEDOUT) << 6;
	shmq_waitset_free(w);
	shmq_queue_close(q2);
	shmq_queue_close(q);
	shmq_region_close(r);
	return bad;
}

static void test_remove_helper_refused(void **state)
{
	pid_t pid;
	int st;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(30);
		_exit(remove_helper_refused_child());
	}
	st = tu_wait_child(pid);
	if (st == 77)
		skip();
	if (st != 0)
		fail_msg("child: failed checks %#x", st);
}

/* The consumer of a full pipe wakes a set waiting for SHMQ_WRITABLE itself,
 * with a futex wake once half the ring is free, rather than leaving it to
 * the set's slow tick: a receiving thread drains the ring while the set
 * sleeps, and the ring's count of wakes on its space word moves. */
struct drain_arg {
	shmq_pipe *b;
	struct shmq__spsc *ring;
	int n, got;
};

static void *drain_main(void *arg)
{
	struct drain_arg *d = arg;
	char buf[64];
	int64_t end = shmq_now_ns() + 5 * SEC;

	/* wait until the set counts itself in as a watcher of the space and
	 * its thread (the main one) sleeps in the kernel: a drain that ran
	 * while the set still looked would let it see the room itself */
	while (__atomic_load_n(&d->ring->prod_watchers, __ATOMIC_SEQ_CST) == 0 && shmq_now_ns() < end)
		usleep(1000);
	while (!tu_main_sleeps() && shmq_now_ns() < end)
		usleep(1000);
	usleep(2000);
	while (d->got < d->n && shmq_pipe_recv(d->b, buf, sizeof(buf), SHMQ_NOWAIT) == 40)
		d->got++;
	return NULL;
}

static void test_pipe_space_wake(void **state)
{
	shmq_waitset *w = mk();
	shmq_pipe *a, *b;
	struct shmq_ready rd[4];
	struct drain_arg d = { 0 };
	uint8_t *mem;
	uint64_t w0;
	pthread_t th;
	char buf[64];
	int cw;

	assert_int_equal(shmq_pipe_create(R(state), "p.space", &(struct shmq_pipe_opts){ 256 }, &a, &b), 0);
	assert_int_equal(shmq__obj_find(R(state), "p.space", SHMQ__OBJ_PIPE, (void **)&mem, NULL), 0);
	d.ring = (struct shmq__spsc *)(mem + 192); /* a -> b */
	memset(buf, 'z', sizeof(buf));
	while (shmq_pipe_send(a, buf, 40, SHMQ_NOWAIT) == 0)
		d.n++;
	assert_true(d.n >= 3);
	assert_int_equal(shmq_waitset_add_pipe(w, a, SHMQ_WRITABLE, &cw), 0);
	d.b = b;
	w0 = __atomic_load_n(&d.ring->prod_wakes, __ATOMIC_SEQ_CST);
	assert_int_equal(pthread_create(&th, NULL, drain_main, &d), 0);
	assert_int_equal(shmq_waitset_wait(w, rd, 4, 5 * SEC), 1);
	assert_ptr_equal(rd[0].cookie, &cw);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(d.got, d.n);
	assert_true(__atomic_load_n(&d.ring->prod_wakes, __ATOMIC_SEQ_CST) - w0 >= 1);
	shmq_waitset_free(w);
	shmq_pipe_close(a);
	shmq_pipe_close(b);
}

/* ---- combinations of the contract ---- */

/* Popen's pipes in a set (add_fd on shmq_proc_fd) beside the process: the
 * output of both streams, their EOF and the exit are all reported. */
static void test_popen_pipes(void **state)
{
	char *const argv[] = { "/bin/sh", "-c",
			       "read x; echo \"out:$x\"; echo \"err:$x\" >&2; exit 3", NULL };
	struct shmq_proc_opts o = { .pipes = SHMQ_STDIN | SHMQ_STDOUT | SHMQ_STDERR };
	char got[2][64] = { "", "" };
	size_t len[2] = { 0, 0 };
	bool eof[2] = { false, false }, exited = false;
	struct shmq_ready rd[4];
	shmq_waitset *w = mk();
	int c_out, c_err, c_proc, fd[2];
	shmq_proc *p;

	(void)state;
	assert_int_equal(shmq_proc_exec(NULL, argv, &o, &p), 0);
	fd[0] = shmq_proc_fd(p, 1);
	fd[1] = shmq_proc_fd(p, 2);
	assert_true(fd[0] > 2 && fd[1] > 2);
	assert_int_equal(shmq_waitset_add_fd(w, fd[0], SHMQ_READABLE, &c_out), 0);
	assert_int_equal(shmq_waitset_add_fd(w, fd[1], SHMQ_READABLE, &c_err), 0);
	assert_int_equal(shmq_waitset_add_proc(w, p, &c_proc), 0);
	/* the child waits for its input: nothing yet */
	assert_int_equal(shmq_waitset_wait(w, rd, 4, 20 * MS), -ETIMEDOUT);
	assert_int_equal(write(shmq_proc_fd(p, 0), "hi\n", 3), 3);
	while (!eof[0] || !eof[1] || !exited) {
		int n = shmq_waitset_wait(w, rd, 4, 10 * SEC);

		assert_true(n > 0);
		for (int i = 0; i < n; i++) {
			int s = rd[i].cookie == &c_out ? 0 : rd[i].cookie == &c_err ? 1 : -1;
			ssize_t r;

			if (rd[i].cookie == &c_proc) {
				exited = true;
				assert_int_equal(shmq_waitset_remove(w, &c_proc), 0);
				continue;
			}
			assert_true(s >= 0);
			assert_int_equal(rd[i].events, SHMQ_READABLE);
			r = read(fd[s], got[s] + len[s], sizeof(got[s]) - 1 - len[s]);
			assert_true(r >= 0);
			len[s] += (size_t)r;
			if (r == 0) {
				eof[s] = true;
				assert_int_equal(shmq_waitset_remove(w, s ? &c_err : &c_out), 0);
			}
		}
	}
	got[0][len[0]] = got[1][len[1]] = 0;
	assert_string_equal(got[0], "out:hi\n");
	assert_string_equal(got[1], "err:hi\n");
	assert_int_equal(shmq_proc_join(p, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_proc_exitcode(p), 3);
	shmq_waitset_free(w);
	shmq_proc_close(p);
}

/* Asyncs of a pool in a set give as_completed: each is reported when its
 * task ends, in the order they end (not the order they were submitted). */
static void test_as_completed(void **state)
{
	static const int order[3] = { 2, 0, 1 };
	struct shmq_pool_opts o = { .workers = 3 };
	shmq_waitset *w = mk();
	struct shmq_ready rd[4];
	char path[3][128];
	int64_t out[3] = { 0, 0, 0 };
	shmq_async *a[3];
	int cookie[3];
	shmq_pool *p;

	assert_int_equal(shmq_pool_create(R(state), &o, &p), 0);
	for (int i = 0; i < 3; i++) {
		snprintf(path[i], sizeof(path[i]), "/tmp/shmq-ws-ac-%d-%d", (int)getpid(), i);
		unlink(path[i]);
		assert_int_equal(shmq_pool_apply_async(p, "gate_file", path[i],
						       strlen(path[i]) + 1, &out[i],
						       sizeof(out[i]), &a[i]), 0);
		assert_int_equal(shmq_waitset_add_async(w, a[i], &cookie[i]), 0);
	}
	assert_int_equal(shmq_waitset_wait(w, rd, 4, SHMQ_NOWAIT), -ETIMEDOUT);
	for (int k = 0; k < 3; k++) {
		int i = order[k];

		gate_open(path[i]);
		/* the one just released, and only it */
		assert_int_equal(shmq_waitset_wait(w, rd, 4, 10 * SEC), 1);
		assert_ptr_equal(rd[0].cookie, &cookie[i]);
		assert_int_equal(shmq_async_get(a[i], SHMQ_NOWAIT), 0);
		assert_int_equal(out[i], 42);
		assert_int_equal(shmq_waitset_remove(w, &cookie[i]), 0);
		shmq_async_free(a[i]);
		unlink(path[i]);
	}
	assert_int_equal(shmq_waitset_wait(w, rd, 4, SHMQ_NOWAIT), -ETIMEDOUT);
	assert_int_equal(shmq_pool_close(p), 0);
	assert_int_equal(shmq_pool_join(p, 10 * SEC), 0);
	shmq_pool_free(p);
	shmq_waitset_free(w);
}

/* A descriptor asked for after a wait reported something still ready is
 * readable at once (the set keeps it level-triggered from then on). */
static void test_fd_asked_late(void **state)
{
	shmq_queue *q = mkq(state, "q.late", 4);
	struct shmq_ready rd[2];
	shmq_waitset *w;
	char buf[16];
	int c;

	assert_int_equal(shmq_waitset_create(&w), 0);
	assert_int_equal(shmq_queue_put(q, "a", 1, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_waitset_add_queue(w, q, SHMQ_READABLE, &c), 0);
	assert_int_equal(shmq_waitset_wait(w, rd, 2, SHMQ_NOWAIT), 1);
	assert_ptr_equal(rd[0].cookie, &c);
	/* still ready: the descriptor, asked for now, says so */
	assert_true(fd_readable(w, 0));
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), 1);
	assert_int_equal(shmq_waitset_wait(w, rd, 2, SHMQ_NOWAIT), -ETIMEDOUT);
	assert_false(fd_readable(w, 0));
	/* and a put makes it readable again */
	assert_int_equal(shmq_queue_put(q, "b", 1, SHMQ_NOWAIT), 0);
	assert_true(fd_readable(w, 2000));
	assert_int_equal(shmq_waitset_wait(w, rd, 2, SHMQ_NOWAIT), 1);
	shmq_waitset_free(w);
	shmq_queue_close(q);
}

/* Adds and removes with no wait between them keep what the set holds
 * bounded: a removed entry is freed once its cancelled kernel waits are
 * reaped, not kept until the next wait (which might never come), and the
 * descriptor says nothing is ready when nothing is. */
static void test_remove_no_wait_bounded(void **state)
{
	shmq_queue *q = mkq(state, "q.rmloop", 4);
	shmq_waitset *w = mk();
	struct shmq_ready rd[2];
	size_t before;
	int c;

	/* once, so what the first add allocates for good is counted before */
	assert_int_equal(shmq_waitset_add_queue(w, q, SHMQ_READABLE, &c), 0);
	assert_int_equal(shmq_waitset_remove(w, &c), 0);
	before = tu_heap_used();
	for (int i = 0; i < 20000; i++) {
		/* the queue is empty: the entry is armed in the kernel */
		assert_int_equal(shmq_waitset_add_queue(w, q, SHMQ_READABLE, &c), 0);
		assert_int_equal(shmq_waitset_remove(w, &c), 0);
	}
	/* 20000 entries kept would be megabytes */
	assert_true(tu_heap_used() <= before + 64 * 1024);
	assert_false(fd_readable(w, 0));
	assert_int_equal(shmq_waitset_add_queue(w, q, SHMQ_READABLE, &c), 0);
	assert_false(fd_readable(w, 0));
	assert_int_equal(shmq_queue_put(q, "a", 1, SHMQ_NOWAIT), 0);
	assert_true(fd_readable(w, 2000));
	assert_int_equal(shmq_waitset_wait(w, rd, 2, SHMQ_NOWAIT), 1);
	assert_ptr_equal(rd[0].cookie, &c);
	shmq_waitset_free(w);
	shmq_queue_close(q);
}

/* A daemon that closed stdin, stdout and stderr: the set keeps none of its
 * descriptors at 0-2 (core/fd_int.h), where the daemon's printf, or its
 * reopening of 0-2 on /dev/null once it has set up, would reach them; its
 * event loop may hold the set's descriptor's number.  Old code: the ring at
 * 0 (io_uring); the epoll, the eventfd and the timerfd at 0, 1 and 2 (the
 * fallback), where the host's 8-byte write to 1 went into the eventfd. */
static void test_closed_stdio(void **state)
{
	shmq_queue *q = mkq(state, "q.stdio", 4);
	struct shmq_ready rd[2];
	shmq_waitset *w = NULL;
	int saved[3], rc, taken = -1, fd = -1, add = -1, idle = 1, put = -1, got = -1;
	int c;

	tu_stdio_close(saved); /* nothing may assert until tu_stdio_restore */
	rc = shmq_waitset_create(&w);
	if (rc == 0) {
		taken = tu_stdio_taken();
		fd = shmq_waitset_fd(w);
		for (int i = 0; i < 3; i++)
			(void)!write(i, "host log", 8); /* the host's printf */
		add = shmq_waitset_add_queue(w, q, SHMQ_READABLE, &c);
		idle = shmq_waitset_wait(w, rd, 2, 1 * MS);
		put = shmq_queue_put(q, "a", 1, SHMQ_NOWAIT);
		got = shmq_waitset_wait(w, rd, 2, 10 * SEC);
		shmq_waitset_free(w);
	}
	tu_stdio_restore(saved);
	assert_int_equal(rc, 0);
	assert_int_equal(taken, 0);
	assert_true(fd > 2);
	assert_int_equal(add, 0);
	assert_int_equal(idle, -ETIMEDOUT);
	assert_int_equal(put, 0);
	assert_int_equal(got, 1);
	assert_ptr_equal(rd[0].cookie, &c);
	shmq_queue_close(q);
}

#define BOTH(fn)                                                                         \
	cmocka_unit_test_setup_teardown(fn, setup_uring, tu_region_teardown),            \
	cmocka_unit_test_setup_teardown(fn, setup_fallback, tu_region_teardown)

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		BOTH(test_queue),
		BOTH(test_wait_cancelled),
		BOTH(test_block_and_timeout),
		BOTH(test_pipe),
		BOTH(test_pipe_space_wake),
		BOTH(test_proc),
		BOTH(test_async),
		BOTH(test_fd),
		BOTH(test_fd_refused),
		BOTH(test_fd_refused_while_ready),
		BOTH(test_remove_helper_refused),
		BOTH(test_epoll),
		BOTH(test_64_queues),
		BOTH(test_no_starvation),
		BOTH(test_remove),
		BOTH(test_dead_claimer),
		BOTH(test_dead_holder),
		cmocka_unit_test_setup_teardown(test_uring_refused, setup_uring, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_remove_refused_cancel, setup_uring,
						tu_region_teardown),
		BOTH(test_bad_input),
		BOTH(test_forked),
		BOTH(test_popen_pipes),
		BOTH(test_as_completed),
		BOTH(test_fd_asked_late),
		BOTH(test_remove_no_wait_bounded),
		BOTH(test_closed_stdio),
	};

	shmq_dispatch(argc, argv);
	if (getenv("SHMQ_TEST_FILTER"))
		cmocka_set_test_filter(getenv("SHMQ_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
