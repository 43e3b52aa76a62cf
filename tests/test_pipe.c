/* SPDX-License-Identifier: MIT */
/* Pipes: every error path of the API, 10^6 checksummed messages across two
 * processes, zero copy and bulk calls (and long bulk calls publishing as
 * they go), end of file on close, -EPIPE soon after the peer is SIGKILLed,
 * oversize messages that lose nothing, the placement API and corrupted
 * rings. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "proc_spy.h"
#include "testutil.h"

#include "core/hash_int.h"
#include "core/region_int.h"
#include "ring/spsc_int.h"

#define RSIZE ((size_t)4 << 20)

#ifdef SHMQ_SANITIZED
#define STRESS_MSGS 200000u
#else
#define STRESS_MSGS 1000000u
#endif

static int setup(void **state)
{
	return tu_region_setup(state, "pipe", RSIZE);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Message content: a function of the message's sequence number. */
static void fill(uint8_t *b, size_t n, uint64_t seq)
{
	uint64_t s = seq * 0x9e3779b97f4a7c15ull + 1;
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		rnd(&s);
		memcpy(b + i, &s, 8);
	}
	rnd(&s);
	memcpy(b + i, &s, n - i);
}

/* A forked child's region: it attaches by name itself. */
static shmq_region *child_region(const char *name)
{
	shmq_region *r;

	if (shmq_region_open(name, &r))
		_exit(90);
	return r;
}

/* In a forked child: attach the region and open end 1 of pipe name. */
static shmq_pipe *child_end1(const char *region, const char *name, shmq_region **r)
{
	shmq_pipe *p;

	*r = child_region(region);
	if (shmq_pipe_open(*r, name, 1, &p))
		_exit(91);
	return p;
}

static int64_t ms(int64_t n)
{
	return n * 1000000;
}

/* ---- bulk calls publish as they go ---- */

#define HB_LEN  1024u /* payload bytes: 1024-byte records */
#define HB_RECS 40u   /* 41,280 bytes: past half of a 64 KiB ring, within it */

/* n bytes of readable and writable memory that end where a PROT_NONE page
 * starts: the first access past them faults. */
static uint8_t *before_guard(size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), len = (n + pg - 1) / pg * pg;
	uint8_t *m = mmap(NULL, len + pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED || mprotect(m + len, pg, PROT_NONE))
		return NULL;
	return m + len - n;
}

/* Did the child end with the fault, not with one of its own exit codes (0,
 * 90-94)? */
static bool faulted(int status)
{
	return status != 0 && (status < 90 || status > 94);
}

/* Fork a child that opens end 1 of pipe name as a second holder and dies in
 * the middle of a bulk call of HB_RECS messages of HB_LEN bytes: a send
 * (send) of messages filled with their index, or a receive, whose copy of
 * the last message, from or to a guard page, faults.  Its exit status.  The
 * fault kills it (cmocka's handler would fail the test and run the rest of
 * the suite in the child) and leaves no core file. */
static int child_dies_in_bulk(const struct tu_region *f, const char *name, bool send)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_pipe *p = child_end1(f->name, name, &r);
		uint8_t *mem = before_guard((HB_RECS - 1) * HB_LEN);
		struct iovec v[HB_RECS];
		size_t lens[HB_RECS];

		if (!mem)
			_exit(93);
		setrlimit(RLIMIT_CORE, &(struct rlimit){ 0, 0 });
		signal(SIGSEGV, SIG_DFL);
		signal(SIGBUS, SIG_DFL);
		if (send) {
			for (unsigned i = 0; i < HB_RECS; i++) {
				v[i].iov_base = mem + (size_t)i * HB_LEN; /* the last: the guard page */
				v[i].iov_len = HB_LEN;
				if (i < HB_RECS - 1)
					fill(v[i].iov_base, HB_LEN, i);
			}
			shmq_pipe_send_bulk(p, v, HB_RECS, SHMQ_NOWAIT);
		} else {
			shmq_pipe_recv_bulk(p, mem, HB_RECS * HB_LEN, lens, HB_RECS, SHMQ_NOWAIT);
		}
		_exit(94); /* not reached: the last copy faults */
	}
	return tu_wait_child(pid);
}

/*
 * A bulk send of more than half the ring publishes what it has copied each
 * time half the ring's bytes have gone in, not only at the end of the call:
 * the receiver can start on a long batch, and a sender that dies in the
 * middle of one (here: a fault copying its last message) leaves what it
 * published.  The child, a second holder of end 1, faults on its 40th
 * message; end 0 then finds the first 32 (the first half ring) intact, and a
 * send by end 1's other holder goes after them.
 */
static void test_bulk_send_publishes_as_it_goes(void **state)
{
	struct tu_region *f = *state;
	struct shmq_pipe_opts o = { .capacity = 64 << 10 };
	shmq_pipe *a, *b;
	uint8_t buf[HB_LEN];
	unsigned got = 0;
	ssize_t n;

	assert_int_equal(shmq_pipe_create(f->r, "hb", &o, &a, &b), 0);
	assert_true(faulted(child_dies_in_bulk(f, "hb", true)));
	while ((n = shmq_pipe_recv(a, buf, sizeof(buf), SHMQ_NOWAIT)) >= 0) {
		uint8_t want[HB_LEN];

		assert_int_equal(n, HB_LEN);
		fill(want, HB_LEN, got);
		assert_memory_equal(buf, want, HB_LEN);
		got++;
	}
	assert_int_equal(n, -EAGAIN); /* end 1 is still held, by b */
	/* 32 records make half the ring: published before the 33rd */
	assert_int_equal(got, 32);
	assert_int_equal(shmq_pipe_send(b, "after", 5, 0), 0);
	assert_int_equal(shmq_pipe_recv(a, buf, sizeof(buf), 0), 5);
	assert_memory_equal(buf, "after", 5);
	shmq_pipe_close(a);
	shmq_pipe_close(b);
}

/* The same for a bulk receive: a receiver that dies in the middle of a long
 * batch (a fault copying into its buffer) has handed the first half ring's
 * records back, and the next receiver of its end starts after them. */
static void test_bulk_recv_publishes_as_it_goes(void **state)
{
	struct tu_region *f = *state;
	struct shmq_pipe_opts o = { .capacity = 64 << 10 };
	shmq_pipe *a, *b;
	uint8_t buf[HB_LEN], want[HB_LEN];

	assert_int_equal(shmq_pipe_create(f->r, "hr", &o, &a, &b), 0);
	for (unsigned i = 0; i < HB_RECS; i++) {
		fill(buf, HB_LEN, i);
		assert_int_equal(shmq_pipe_send(a, buf, HB_LEN, SHMQ_NOWAIT), 0);
	}
	assert_true(faulted(child_dies_in_bulk(f, "hr", false)));
	/* b, the other holder of end 1, goes on after the published head */
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), SHMQ_NOWAIT), HB_LEN);
	fill(want, HB_LEN, 32);
	assert_memory_equal(buf, want, HB_LEN);
	shmq_pipe_close(a);
	shmq_pipe_close(b);
}

/* ---- API error paths ---- */

static void test_create_open_errors(void **state)
{
	struct tu_region *f = *state;
	struct shmq_pipe_opts big = { .capacity = ((size_t)1 << 31) + 1 };
	struct shmq_pipe_opts huge = { .capacity = (size_t)1 << 20 };
	shmq_pipe *a, *b, *c, *d, *e;
	void *blob;

	assert_int_equal(shmq_pipe_create(NULL, "p", NULL, &a, &b), -EINVAL);
	assert_int_equal(shmq_pipe_create(f->r, "p", NULL, NULL, &b), -EINVAL);
	assert_int_equal(shmq_pipe_create(f->r, "bad/name", NULL, &a, &b), -EINVAL);
	assert_int_equal(shmq_pipe_create(f->r, "p", &big, &a, &b), -EINVAL);
	assert_int_equal(shmq_pipe_create(f->r, "h1", &huge, &d, &e), 0); /* 2 MiB of 4 */
	assert_int_equal(shmq_pipe_create(f->r, "h2", &huge, &a, &b), -ENOSPC);
	shmq_pipe_close(d);
	shmq_pipe_close(e);
	assert_int_equal(shmq_pipe_open(f->r, "p", 0, &c), -ENOENT);
	assert_int_equal(shmq_pipe_create(f->r, "p", NULL, &a, &b), 0);
	assert_int_equal(shmq_pipe_capacity(a), SHMQ_PIPE_CAPACITY);
	assert_int_equal(shmq_pipe_max_msg(a), SHMQ_PIPE_CAPACITY / 2 - 8);
	assert_int_equal(shmq_pipe_create(f->r, "p", NULL, &a, &b), -EEXIST);
	assert_int_equal(shmq_pipe_open(f->r, "p", 2, &c), -EINVAL);
	assert_int_equal(shmq_pipe_open(f->r, "p", -1, &c), -EINVAL);
	assert_int_equal(shmq_pipe_open(NULL, "p", 0, &c), -EINVAL);
	assert_int_equal(shmq__obj_create(f->r, "blob", SHMQ__OBJ_BLOB, 64, NULL, NULL, &blob), 0);
	assert_int_equal(shmq_pipe_open(f->r, "blob", 0, &c), -EINVAL);
	assert_int_equal(shmq_pipe_open(f->r, "p", 1, &c), 0);
	shmq_pipe_close(c);
	assert_int_equal(shmq_pipe_send(NULL, "x", 1, 0), -EINVAL);
	assert_int_equal(shmq_pipe_send(a, NULL, 1, 0), -EINVAL);
	assert_int_equal(shmq_pipe_recv(NULL, NULL, 0, 0), -EINVAL);
	assert_int_equal(shmq_pipe_recv(b, NULL, 4, 0), -EINVAL);
	assert_int_equal(shmq_pipe_commit(a, 0, 0), -EINVAL); /* no reservation */
	assert_int_equal(shmq_pipe_consume(b), -EINVAL);      /* no peek */
	shmq_pipe_close(a);
	shmq_pipe_close(b);
	shmq_pipe_close(NULL);
}

static void test_capacity_rounding(void **state)
{
	struct tu_region *f = *state;
	struct shmq_pipe_opts o = { .capacity = 3000 };
	struct shmq_pipe_opts tiny = { .capacity = 1 };
	shmq_pipe *a, *b;

	assert_int_equal(shmq_pipe_create(f->r, "r1", &o, &a, &b), 0);
	assert_int_equal(shmq_pipe_capacity(a), 4096);
	shmq_pipe_close(a);
	shmq_pipe_close(b);
	assert_int_equal(shmq_pipe_create(f->r, "r2", &tiny, &a, &b), 0);
	assert_int_equal(shmq_pipe_capacity(b), 64);
	assert_int_equal(shmq_pipe_max_msg(b), 24);
	shmq_pipe_close(a);
	shmq_pipe_close(b);
}

/* A receive blocked on a live peer looks at it once a 10 ms slice.  The
 * first look finds it alive by /proc, as recorded; the others ask a pidfd
 * (core/ptab.c): no /proc read.  The build before read /proc/PID/stat at
 * each look, 28-30 times in the 300 ms below, some 100 µs of CPU each.
 * The peer killed then, left a zombie: the pidfd says so at the next look. */
static void test_blocked_wait_asks_no_proc(void **state)
{
	struct tu_region *f = *state;
	shmq_pipe *a, *b;
	char buf[64], c = 0;
	int sync[2], st;
	unsigned long opens;
	int64_t t0;
	pid_t pid;

	assert_int_equal(shmq_pipe_create(f->r, "w", NULL, &a, &b), 0);
	assert_int_equal(pipe(sync), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;

		/* gone with the test, also when an assertion ends it early; and
		 * not holding its output open meanwhile */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() == 1)
			_exit(4);
		if (dup2(open("/dev/null", O_WRONLY | O_CLOEXEC), 1) < 0 || dup2(1, 2) < 0)
			_exit(5);
		close(sync[0]);
		(void)child_end1(f->name, "w", &r);
		if (write(sync[1], &c, 1) != 1)
			_exit(3);
		for (;;)
			pause();
	}
	close(sync[1]);
	assert_int_equal(read(sync[0], &c, 1), 1);
	close(sync[0]);
	shmq_pipe_close(b); /* the child holds end 1 */
	opens = spy_proc_stat_count();
	assert_int_equal(shmq_pipe_recv(a, buf, sizeof(buf), ms(300)), -ETIMEDOUT);
	opens = spy_proc_stat_count() - opens;
	assert_in_range(opens, 0, 3);
	assert_int_equal(kill(pid, SIGKILL), 0);
	t0 = shmq_now_ns();
	assert_int_equal(shmq_pipe_recv(a, buf, sizeof(buf), ms(5000)), -EPIPE);
	assert_true(shmq_now_ns() - t0 < 1000 * 1000 * 1000ll);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st));
	shmq_pipe_close(a);
}

/* A thread cancelled (deferred) while it waits in recv or send: the waits
 * are no cancellation points (futex waits, and the peer's liveness looks
 * between them), so each times out as asked and the cancel acts after it.
 * Old code: the cancel acted in the open of /proc/PID/stat that the look at
 * the peer makes once a sleep slice ends (a cancel landing between that
 * open and its close leaked the descriptor). */
struct cancelled_wait {
	shmq_pipe *p;
	bool send;
	ssize_t rc;
};

static void *cancelled_wait_main(void *arg)
{
	struct cancelled_wait *c = arg;
	char buf[64] = { 0 };

	pthread_cancel(pthread_self()); /* deferred: pending in the wait */
	c->rc = c->send ? shmq_pipe_send(c->p, buf, 50, ms(500))
			: shmq_pipe_recv(c->p, buf, sizeof(buf), ms(500));
	pthread_testcancel();
	return NULL;
}

static void test_wait_cancelled(void **state)
{
	struct tu_region *f = *state;
	struct shmq_pipe_opts o = { .capacity = 256 };
	shmq_pipe *a, *b;
	char buf[64] = { 0 };

	assert_int_equal(shmq_pipe_create(f->r, "t", &o, &a, &b), 0);
	while (shmq_pipe_send(a, buf, 50, SHMQ_NOWAIT) == 0)
		;
	for (int i = 0; i < 2; i++) {
		/* a's recv: b sent nothing; a's send: its direction is full */
		struct cancelled_wait c = { a, i == 1, 1 };
		pthread_t th;
		void *ret;

		assert_int_equal(pthread_create(&th, NULL, cancelled_wait_main, &c), 0);
		assert_int_equal(pthread_join(th, &ret), 0);
		assert_ptr_equal(ret, PTHREAD_CANCELED);
		assert_int_equal(c.rc, -ETIMEDOUT);
	}
	/* the pipe is whole: the queued messages come out, in both directions */
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), ms(1000)), 50);
	assert_int_equal(shmq_pipe_send(b, buf, 10, ms(1000)), 0);
	assert_int_equal(shmq_pipe_recv(a, buf, sizeof(buf), ms(1000)), 10);
	shmq_pipe_close(a);
	shmq_pipe_close(b);
}

static void test_nowait_and_timeouts(void **state)
{
	struct tu_region *f = *state;
	struct shmq_pipe_opts o = { .capacity = 256 };
	shmq_pipe *a, *b;
	char buf[128] = { 0 };
	int64_t t0, dt;
	int n = 0;

	assert_int_equal(shmq_pipe_create(f->r, "t", &o, &a, &b), 0);
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), SHMQ_NOWAIT), -EAGAIN);
	t0 = shmq_now_ns();
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), ms(40)), -ETIMEDOUT);
	dt = shmq_now_ns() - t0;
	assert_true(dt >= ms(40));
	assert_true(dt <= ms(40) + ms(2000)); /* bounded, loosely: the box is shared */
	while (shmq_pipe_send(a, buf, 50, SHMQ_NOWAIT) == 0)
		n++;
	assert_int_equal(n, 4); /* 4 x 64 bytes */
	assert_int_equal(shmq_pipe_send(a, buf, 50, SHMQ_NOWAIT), -EAGAIN);
	t0 = shmq_now_ns();
	assert_int_equal(shmq_pipe_send(a, buf, 50, ms(30)), -ETIMEDOUT);
	assert_true(shmq_now_ns() - t0 >= ms(30));
	/* the other direction is independent */
	assert_int_equal(shmq_pipe_send(b, "back", 4, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_pipe_recv(a, buf, sizeof(buf), SHMQ_NOWAIT), 4);
	assert_memory_equal(buf, "back", 4);
	shmq_pipe_close(a);
	shmq_pipe_close(b);
}

/* Oversize messages: -EMSGSIZE, and nothing else is lost or reordered. */
static void test_msgsize_loses_nothing(void **state)
{
	struct tu_region *f = *state;
	struct shmq_pipe_opts o = { .capacity = 1024 };
	shmq_pipe *a, *b;
	uint8_t big[2048], buf[600];
	const void *m;
	size_t len;

	assert_int_equal(shmq_pipe_create(f->r, "m", &o, &a, &b), 0);
	fill(big, sizeof(big), 1);
	assert_int_equal(shmq_pipe_send(a, big, 100, 0), 0);
	assert_int_equal(shmq_pipe_send(a, big, 505, 0), -EMSGSIZE);
	assert_int_equal(shmq_pipe_send(a, big, 2048, SHMQ_FOREVER), -EMSGSIZE);
	assert_int_equal(shmq_pipe_reserve(a, 1000, (void **)&m, 0), -EMSGSIZE);
	assert_int_equal(shmq_pipe_send(a, big + 1, 504, 0), 0);
	/* cap too small: the message stays queued, whole */
	assert_int_equal(shmq_pipe_recv(b, buf, 99, 0), -EMSGSIZE);
	assert_int_equal(shmq_pipe_recv(b, buf, 0, 0), -EMSGSIZE);
	assert_int_equal(shmq_pipe_peek(b, &m, &len, 0), 0);
	assert_int_equal(len, 100);
	assert_int_equal(shmq_pipe_recv(b, buf, 100, 0), 100);
	assert_memory_equal(buf, big, 100);
	assert_int_equal(shmq_pipe_recv(b, buf, 503, 0), -EMSGSIZE);
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), 0), 504);
	assert_memory_equal(buf, big + 1, 504);
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), 0), -EAGAIN);
	shmq_pipe_close(a);
	shmq_pipe_close(b);
}

/* send_bulk takes what send takes: a NULL base with a length is -EINVAL
 * (not a read through NULL), and then no message of the batch is sent. */
static void test_bulk_null_base(void **state)
{
	struct tu_region *f = *state;
	shmq_pipe *a, *b;
	char buf[16];
	size_t lens[4];
	struct iovec bad[2] = { { "ok", 2 }, { NULL, 4 } };
	struct iovec empty[2] = { { "ok", 2 }, { NULL, 0 } };

	assert_int_equal(shmq_pipe_create(f->r, "bn", NULL, &a, &b), 0);
	assert_int_equal(shmq_pipe_send(a, NULL, 4, 0), -EINVAL);
	assert_int_equal(shmq_pipe_send_bulk(a, bad, 2, 0), -EINVAL);
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), 0), -EAGAIN);
	assert_int_equal(shmq_pipe_send_bulk(a, empty, 2, 0), 2);
	assert_int_equal(shmq_pipe_recv_bulk(b, buf, sizeof(buf), lens, 4, 0), 2);
	assert_int_equal(lens[0], 2);
	assert_int_equal(lens[1], 0);
	shmq_pipe_close(a);
	shmq_pipe_close(b);
}

static void test_zero_copy_and_bulk(void **state)
{
	struct tu_region *f = *state;
	shmq_pipe *a, *b;
	void *w;
	const void *m;
	size_t len, lens[16];
	uint8_t src[16][40], dst[16 * 40];
	struct iovec v[16];

	assert_int_equal(shmq_pipe_create(f->r, "z", NULL, &a, &b), 0);
	assert_int_equal(shmq_pipe_reserve(a, 4096, &w, 0), 0);
	fill(w, 3000, 7);
	assert_int_equal(shmq_pipe_commit(a, 4097, 0), -EINVAL);
	assert_int_equal(shmq_pipe_commit(a, 3000, 8), -EINVAL);
	assert_int_equal(shmq_pipe_commit(a, 3000, SHMQ_PIPE_MORE), 0);
	assert_int_equal(shmq_pipe_commit(a, 3000, 0), -EINVAL); /* already committed */
	assert_int_equal(shmq_pipe_peek(b, &m, &len, 0), -EAGAIN); /* not published */
	assert_int_equal(shmq_pipe_flush(a), 0);
	assert_int_equal(shmq_pipe_peek(b, &m, &len, 0), 0);
	assert_int_equal(len, 3000);
	assert_int_equal(shmq__fnv1a64(m, len), shmq__fnv1a64(w, 3000));
	assert_int_equal(shmq_pipe_consume(b), 0);
	assert_int_equal(shmq_pipe_consume(b), -EINVAL);

	for (int i = 0; i < 16; i++) {
		fill(src[i], (size_t)i * 2, (uint64_t)i);
		v[i].iov_base = src[i];
		v[i].iov_len = (size_t)i * 2;
	}
	assert_int_equal(shmq_pipe_send_bulk(a, v, 16, 0), 16);
	assert_int_equal(shmq_pipe_send_bulk(a, v, 0, 0), 0);
	assert_int_equal(shmq_pipe_recv_bulk(b, dst, sizeof(dst), lens, 10, 0), 10);
	for (size_t i = 0, off = 0; i < 10; off += lens[i], i++) {
		assert_int_equal(lens[i], i * 2);
		assert_memory_equal(dst + off, src[i], lens[i]);
	}
	assert_int_equal(shmq_pipe_recv_bulk(b, dst, 20, lens, 16, 0), 0 + 1); /* 20 fits, 22 not */
	assert_int_equal(lens[0], 20);
	assert_int_equal(shmq_pipe_recv_bulk(b, dst, 10, lens, 16, 0), -EMSGSIZE);
	assert_int_equal(shmq_pipe_recv_bulk(b, dst, sizeof(dst), lens, 16, 0), 5);
	assert_int_equal(lens[4], 30);
	assert_int_equal(shmq_pipe_recv_bulk(b, dst, sizeof(dst), lens, 16, 0), -EAGAIN);
	/* commit's flags may be left out: the two-argument form publishes */
	assert_int_equal(shmq_pipe_reserve(a, 4, &w, 0), 0);
	memcpy(w, "duo!", 4);
	assert_int_equal(shmq_pipe_commit(a, 4), 0);
	assert_int_equal(shmq_pipe_recv(b, dst, sizeof(dst), 0), 4);
	assert_memory_equal(dst, "duo!", 4);
	/* MORE records are published by close */
	assert_int_equal(shmq_pipe_reserve(a, 8, &w, 0), 0);
	memcpy(w, "12345678", 8);
	assert_int_equal(shmq_pipe_commit(a, 8, SHMQ_PIPE_MORE), 0);
	shmq_pipe_close(a);
	assert_int_equal(shmq_pipe_recv(b, dst, sizeof(dst), 0), 8);
	assert_memory_equal(dst, "12345678", 8);
	shmq_pipe_close(b);
}

/* ---- across processes ---- */

#define STRESS_MAX 2048u

/* The size of message i: 0..STRESS_MAX at random, every 1000th the largest
 * the pipe carries. */
static size_t stress_len(uint64_t i, uint64_t *s, size_t max_msg)
{
	size_t len = rnd(s) % (STRESS_MAX + 1);

	return i % 1000 == 999 ? max_msg : len;
}

/* The child sends STRESS_MSGS messages of random sizes 0..max through end 1
 * with every sending call; the parent receives with every receiving call
 * and checks each length and checksum; then the child's close gives EOF. */
static int stress_child(const char *name)
{
	shmq_region *r = child_region(name);
	shmq_pipe *p;
	static uint8_t buf[SHMQ_PIPE_CAPACITY], m[4][SHMQ_PIPE_CAPACITY / 2];
	uint64_t s = 42;
	size_t max;

	if (shmq_pipe_open(r, "s", 1, &p))
		return 91;
	max = shmq_pipe_max_msg(p);
	for (uint64_t i = 0; i < STRESS_MSGS;) {
		size_t len = stress_len(i, &s, max);
		int how = (int)(i % 7);
		int rc;

		if (how == 0) {
			void *w;

			rc = shmq_pipe_reserve(p, len, &w, SHMQ_FOREVER);
			if (rc)
				return 92;
			fill(w, len, i);
			rc = shmq_pipe_commit(p, len, i % 2 ? SHMQ_PIPE_MORE : 0);
			i++;
		} else if (how == 1) {
			struct iovec v[4];
			size_t k = 0;
			ssize_t n;

			v[0].iov_len = len;
			for (k = 1; k < 4 && i + k < STRESS_MSGS; k++)
				v[k].iov_len = stress_len(i + k, &s, max);
			for (size_t j = 0; j < k; j++) {
				fill(m[j], v[j].iov_len, i + j);
				v[j].iov_base = m[j];
			}
			n = shmq_pipe_send_bulk(p, v, k, SHMQ_FOREVER);
			if (n <= 0)
				return 93;
			/* re-send the rest one by one, in order */
			for (size_t j = (size_t)n; j < k; j++)
				if (shmq_pipe_send(p, m[j], v[j].iov_len, SHMQ_FOREVER))
					return 94;
			i += k;
			rc = 0;
		} else {
			fill(buf, len, i);
			rc = shmq_pipe_send(p, buf, len, SHMQ_FOREVER);
			if (rc == 0 && i % 1000 == 0) /* oversize in between: lose nothing */
				rc = shmq_pipe_send(p, buf, max + 1, SHMQ_FOREVER) == -EMSGSIZE ? 0 : 95;
			i++;
		}
		if (rc)
			return 96;
	}
	shmq_pipe_close(p);
	shmq_region_close(r);
	return 0;
}

static void test_stress_two_processes(void **state)
{
	struct tu_region *f = *state;
	struct shmq_pipe_opts o = { .capacity = SHMQ_PIPE_CAPACITY };
	shmq_pipe *a, *b;
	static uint8_t buf[SHMQ_PIPE_CAPACITY], want[SHMQ_PIPE_CAPACITY];
	uint64_t s = 42, i = 0;
	size_t max, lens[8];
	pid_t pid;

	assert_int_equal(shmq_pipe_create(f->r, "s", &o, &a, &b), 0);
	max = shmq_pipe_max_msg(a);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(stress_child(f->name));
	shmq_pipe_close(b); /* the child holds end 1 */
	while (i < STRESS_MSGS) {
		int how = (int)(i % 5);
		ssize_t n;

		if (how == 0) {
			const void *m;
			size_t len;

			assert_int_equal(shmq_pipe_peek(a, &m, &len, SHMQ_FOREVER), 0);
			assert_int_equal(len, stress_len(i, &s, max));
			fill(want, len, i);
			assert_int_equal(shmq__fnv1a64(m, len), shmq__fnv1a64(want, len));
			assert_int_equal(shmq_pipe_consume(a), 0);
			i++;
		} else if (how == 1) {
			size_t off = 0;

			n = shmq_pipe_recv_bulk(a, buf, sizeof(buf), lens, 8, SHMQ_FOREVER);
			assert_true(n > 0);
			for (ssize_t j = 0; j < n; j++) {
				assert_int_equal(lens[j], stress_len(i, &s, max));
				fill(want, lens[j], i);
				assert_int_equal(shmq__fnv1a64(buf + off, lens[j]),
						 shmq__fnv1a64(want, lens[j]));
				off += lens[j];
				i++;
			}
		} else {
			size_t len = stress_len(i, &s, max);

			n = shmq_pipe_recv(a, buf, sizeof(buf), i % 3 ? SHMQ_FOREVER : ms(5000));
			assert_int_equal(n, (ssize_t)len);
			fill(want, len, i);
			assert_int_equal(shmq__fnv1a64(buf, len), shmq__fnv1a64(want, len));
			i++;
		}
	}
	/* everything arrived; the child's close is end of file */
	assert_int_equal(shmq_pipe_recv(a, buf, sizeof(buf), SHMQ_FOREVER), -EPIPE);
	assert_int_equal(shmq_pipe_recv(a, buf, sizeof(buf), SHMQ_NOWAIT), -EPIPE);
	assert_int_equal(shmq_pipe_send(a, buf, 1, SHMQ_FOREVER), -EPIPE);
	assert_int_equal(tu_wait_child(pid), 0);
	shmq_pipe_close(a);
}

/* End of file: what was sent before close is drained first. */
static void test_eof_on_close(void **state)
{
	struct tu_region *f = *state;
	shmq_pipe *a, *b, *c;
	void *w;
	char buf[16];
	pid_t pid;

	assert_int_equal(shmq_pipe_create(f->r, "e", NULL, &a, &b), 0);
	/* never opened since creation: held by the creator, even after it
	 * closes its own handle */
	shmq_pipe_close(b);
	assert_int_equal(shmq_pipe_recv(a, buf, sizeof(buf), SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(shmq_pipe_recv(a, buf, sizeof(buf), ms(30)), -ETIMEDOUT);
	assert_int_equal(shmq_pipe_send(a, "x", 1, SHMQ_NOWAIT), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_pipe *p = child_end1(f->name, "e", &r);
		char m[16];
		int ok;

		ok = shmq_pipe_recv(p, m, sizeof(m), SHMQ_FOREVER) == 1 && m[0] == 'x' &&
		     shmq_pipe_send(p, "one", 3, SHMQ_FOREVER) == 0 &&
		     shmq_pipe_send(p, "two", 3, SHMQ_FOREVER) == 0;
		shmq_pipe_close(p);
		shmq_region_close(r);
		_exit(ok ? 0 : 92);
	}
	assert_int_equal(tu_wait_child(pid), 0);
	assert_int_equal(shmq_pipe_recv(a, buf, sizeof(buf), SHMQ_FOREVER), 3);
	assert_memory_equal(buf, "one", 3);
	assert_int_equal(shmq_pipe_recv(a, buf, sizeof(buf), SHMQ_NOWAIT), 3);
	assert_memory_equal(buf, "two", 3);
	assert_int_equal(shmq_pipe_recv(a, buf, sizeof(buf), SHMQ_FOREVER), -EPIPE);
	assert_int_equal(shmq_pipe_send(a, "y", 1, SHMQ_NOWAIT), -EPIPE);
	assert_int_equal(shmq_pipe_reserve(a, 1, &w, SHMQ_NOWAIT), -EPIPE);
	/* a closed end stays closed */
	assert_int_equal(shmq_pipe_open(f->r, "e", 1, &c), -EPIPE);
	shmq_pipe_close(a);
}

/* The end the creator itself used: once it closes its handle, the peer in
 * another process drains what was sent, then gets -EPIPE both ways (as with
 * Python's Pipe: the parent writes and closes, the child reads to EOF). */
static void test_eof_creator_used_end(void **state)
{
	struct tu_region *f = *state;
	shmq_pipe *a, *b;
	int sync[2];
	char c;
	pid_t pid;

	assert_int_equal(shmq_pipe_create(f->r, "u", NULL, &a, &b), 0);
	assert_int_equal(pipe(sync), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_pipe *p = child_end1(f->name, "u", &r);
		char m[16];
		ssize_t n;
		int got = 0;

		if (write(sync[1], "o", 1) != 1)
			_exit(92);
		while ((n = shmq_pipe_recv(p, m, sizeof(m), 10 * ms(1000))) == 1 && m[0] == 'a' + got)
			got++;
		if (n != -EPIPE || got != 5)
			_exit(93);
		_exit(shmq_pipe_send(p, "z", 1, SHMQ_NOWAIT) == -EPIPE ? 0 : 94);
	}
	shmq_pipe_close(b); /* handed on: the child opened end 1 (or will) */
	assert_int_equal(read(sync[0], &c, 1), 1);
	for (int i = 0; i < 5; i++)
		assert_int_equal(shmq_pipe_send(a, (char[]){ (char)('a' + i) }, 1, SHMQ_FOREVER), 0);
	shmq_pipe_close(a);
	assert_int_equal(tu_wait_child(pid), 0);
	close(sync[0]);
	close(sync[1]);
}

/* Both ends used by threads of the creating process: closing one is EOF for
 * the other. */
static void test_eof_creator_threads(void **state)
{
	struct tu_region *f = *state;
	shmq_pipe *a, *b;
	char buf[16];

	assert_int_equal(shmq_pipe_create(f->r, "t", NULL, &a, &b), 0);
	assert_int_equal(shmq_pipe_send(b, "last", 4, SHMQ_NOWAIT), 0);
	shmq_pipe_close(b);
	assert_int_equal(shmq_pipe_recv(a, buf, sizeof(buf), SHMQ_NOWAIT), 4);
	assert_memory_equal(buf, "last", 4);
	assert_int_equal(shmq_pipe_recv(a, buf, sizeof(buf), ms(2000)), -EPIPE);
	assert_int_equal(shmq_pipe_send(a, "x", 1, SHMQ_NOWAIT), -EPIPE);
	shmq_pipe_close(a);
	/* an end used for receiving only counts as used too */
	assert_int_equal(shmq_pipe_create(f->r, "t2", NULL, &a, &b), 0);
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), SHMQ_NOWAIT), -EAGAIN);
	shmq_pipe_close(b);
	assert_int_equal(shmq_pipe_send(a, "x", 1, SHMQ_NOWAIT), -EPIPE);
	shmq_pipe_close(a);
}

/* Several handles of one end: EOF only once the last one closes. */
static void test_eof_needs_every_handle(void **state)
{
	struct tu_region *f = *state;
	shmq_pipe *a, *b, *b2;
	char buf[16];

	assert_int_equal(shmq_pipe_create(f->r, "h", NULL, &a, &b), 0);
	assert_int_equal(shmq_pipe_open(f->r, "h", 1, &b2), 0);
	shmq_pipe_close(b2);
	assert_int_equal(shmq_pipe_recv(a, buf, sizeof(buf), SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(shmq_pipe_send(a, "m", 1, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_pipe_send(b, "n", 1, SHMQ_NOWAIT), 0);
	shmq_pipe_close(b);
	assert_int_equal(shmq_pipe_recv(a, buf, sizeof(buf), SHMQ_NOWAIT), 1);
	assert_int_equal(buf[0], 'n');
	assert_int_equal(shmq_pipe_recv(a, buf, sizeof(buf), SHMQ_NOWAIT), -EPIPE);
	shmq_pipe_close(a);
}

/* Expect message "<tag><i>" next on p, with NOWAIT. */
static void expect_msg(shmq_pipe *p, char tag, int i)
{
	char want[16], buf[16];
	int n = snprintf(want, sizeof(want), "%c%d", tag, i);

	assert_int_equal(shmq_pipe_recv(p, buf, sizeof(buf), SHMQ_NOWAIT), n);
	assert_memory_equal(buf, want, (size_t)n);
}

/* Send "<tag><i>" on p: one call, a bulk call or reserve / commit (how). */
static void send_msg(shmq_pipe *p, char tag, int i, int how)
{
	char m[16];
	int n = snprintf(m, sizeof(m), "%c%d", tag, i);
	struct iovec v = { m, (size_t)n };
	void *buf;

	if (how == 0) {
		assert_int_equal(shmq_pipe_send(p, m, (size_t)n, SHMQ_NOWAIT), 0);
	} else if (how == 1) {
		assert_int_equal(shmq_pipe_send_bulk(p, &v, 1, SHMQ_NOWAIT), 1);
	} else {
		assert_int_equal(shmq_pipe_reserve(p, (size_t)n, &buf, SHMQ_NOWAIT), 0);
		memcpy(buf, m, (size_t)n);
		assert_int_equal(shmq_pipe_commit(p, (size_t)n, 0), 0);
	}
}

/* Handles of one end take turns sending (each send ordered after the other
 * handle's), some of the sends answering a receive: every message arrives
 * once, in order, whether the turns are taken in one process, by a holder in
 * another process that comes and goes, or with the rings' claim words
 * scribbled over.  A send fast path that wrote at its handle's private tail
 * without knowing whether another handle has sent since fails this. */
static void test_holders_take_turns(void **state)
{
	struct tu_region *f = *state;
	struct shmq_pipe_opts o = { .capacity = 256 }; /* a lap every 16 messages */
	shmq_pipe *a, *b, *b2, *s;
	uint8_t *mem;
	uint64_t size, *claim;
	int i;
	pid_t pid;

	assert_int_equal(shmq_pipe_create(f->r, "turns", &o, &a, &b), 0);
	assert_int_equal(shmq_pipe_open(f->r, "turns", 1, &b2), 0);
	for (i = 0; i < 300; i++) { /* many laps, pads and all */
		s = i % 2 ? b2 : b;
		if (i % 4) { /* s answers a */
			send_msg(a, 'r', i, 0);
			expect_msg(s, 'r', i);
		}
		send_msg(s, 't', i, i % 7 == 3 ? 1 : i % 11 == 5 ? 2 : 0);
		if (i % 3 == 2)
			send_msg(s, 'u', i, 0);
		expect_msg(a, 't', i);
		if (i % 3 == 2)
			expect_msg(a, 'u', i);
	}
	shmq_pipe_close(b2);
	/* a holder in another process comes, sends, and goes */
	send_msg(b, 'p', 0, 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_pipe *c = child_end1(f->name, "turns", &r);
		int ok = shmq_pipe_send(c, "p1", 2, SHMQ_NOWAIT) == 0 &&
			 shmq_pipe_send(c, "p2", 2, SHMQ_NOWAIT) == 0;

		shmq_pipe_close(c);
		_exit(ok ? 0 : 92);
	}
	assert_int_equal(tu_wait_child(pid), 0);
	send_msg(a, 'q', 0, 0);
	expect_msg(b, 'q', 0);
	send_msg(b, 'p', 3, 0); /* an answer */
	for (i = 0; i < 4; i++)
		expect_msg(a, 'p', i);
	/* the claim words are hints: garbage costs a slow path, nothing else */
	assert_int_equal(shmq__obj_find(f->r, "turns", SHMQ__OBJ_PIPE, (void **)&mem, &size), 0);
	claim = (uint64_t *)(mem + 24); /* line 0: tx_claim[2] */
	for (i = 0; i < 40; i++) {
		claim[i % 2] = i % 3 ? UINT64_MAX : (uint64_t)i * 0x9e3779b97f4a7c15ull;
		send_msg(b, 'g', i, 0);
		send_msg(a, 'h', i, 0);
		expect_msg(a, 'g', i);
		expect_msg(b, 'h', i);
	}
	assert_int_equal(shmq_pipe_recv(a, (char[4]){ 0 }, 4, SHMQ_NOWAIT), -EAGAIN);
	shmq_pipe_close(a);
	shmq_pipe_close(b);
}

/* A sleeper is woken by a send from another process. */
static void test_blocking_wakeup(void **state)
{
	struct tu_region *f = *state;
	shmq_pipe *a, *b;
	struct shmq__spsc *ring1;
	uint8_t *mem;
	char buf[16];
	pid_t pid;

	assert_int_equal(shmq_pipe_create(f->r, "w", NULL, &a, &b), 0);
	assert_int_equal(shmq__obj_find(f->r, "w", SHMQ__OBJ_PIPE, (void **)&mem, NULL), 0);
	/* ring 1: end 1 -> end 0, the ring the parent sleeps on (its mapping
	 * is the child's too) */
	ring1 = (struct shmq__spsc *)(mem + 192 + shmq__spsc_footprint(shmq_pipe_capacity(a)));
	assert_int_equal(ring1->magic, SHMQ__SPSC_MAGIC);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_pipe *p = child_end1(f->name, "w", &r);
		char m[16];
		int ok = 1;

		for (int k = 0; k < 20 && ok; k++) {
			/* a round that sleeps at once: send only once the parent
			 * is seen asleep (10 s at most), however slowly it got
			 * there; a polling round: whenever */
			int64_t until = shmq_now_ns() + ms(10000);

			while (k % 2 && !__atomic_load_n(&ring1->cons_sleepers, __ATOMIC_SEQ_CST) &&
			       (ok = shmq_now_ns() < until))
				usleep(200);
			if (k % 2 == 0)
				usleep(3000);
			ok = ok && shmq_pipe_send(p, "ping", 4, SHMQ_FOREVER) == 0 &&
			     shmq_pipe_recv(p, m, sizeof(m), SHMQ_FOREVER) == 4;
		}
		shmq_pipe_close(p);
		_exit(ok ? 0 : 92);
	}
	shmq_pipe_close(b);
	assert_int_equal(shmq_pipe_set_spin(NULL, 0), -EINVAL);
	for (int k = 0; k < 20; k++) {
		/* half the rounds sleep at once, half poll first */
		assert_int_equal(shmq_pipe_set_spin(a, k % 2 ? 0 : -1), 0);
		assert_int_equal(shmq_pipe_recv(a, buf, sizeof(buf), SHMQ_FOREVER), 4);
		assert_int_equal(shmq_pipe_send(a, "pong", 4, SHMQ_FOREVER), 0);
	}
	assert_int_equal(shmq_pipe_recv(a, buf, sizeof(buf), SHMQ_FOREVER), -EPIPE);
	assert_int_equal(tu_wait_child(pid), 0);
	shmq_pipe_close(a);
}

/* In a forked child: once the counter at waits has moved past before (our
 * parent has entered a futex wait: it is blocked in its call), or at once
 * when waits is NULL, SIGKILL victim and note when in *killed_at.  Exits 0,
 * or 1 when the parent was not seen asleep within 10 s (victim is killed all
 * the same, so that the call ends). */
static pid_t fork_killer(const uint64_t *waits, uint64_t before, pid_t victim, int64_t *killed_at)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		int64_t until = shmq_now_ns() + ms(10000);
		bool asleep = !waits;

		while (!asleep && !(asleep = __atomic_load_n(waits, __ATOMIC_SEQ_CST) != before) &&
		       shmq_now_ns() < until)
			usleep(1000);
		__atomic_store_n(killed_at, shmq_now_ns(), __ATOMIC_SEQ_CST);
		kill(victim, SIGKILL);
		_exit(asleep ? 0 : 1);
	}
	return pid;
}

/* The peer is SIGKILLed.  how 0: killed first; a recv drains what it sent,
 * then gets -EPIPE.  how 1: killed while we are blocked in recv; how 2:
 * while we are blocked in send (a full ring): -EPIPE.  Each promptly: 2 s
 * (the suite's bound on a loaded, sanitized run), far inside the call's own
 * 10 s timeout, so -EPIPE means the death was noticed, not waited out. */
static void kill_peer_case(struct tu_region *f, const char *name, int how)
{
	struct shmq_pipe_opts o = { .capacity = 256 };
	shmq_pipe *a, *b;
	char buf[64] = { 0 };
	int sync[2];
	int64_t *killed_at, dt;
	uint8_t *mem;
	struct shmq__spsc *ring;
	uint64_t *waits;
	pid_t pid, killer;

	killed_at = mmap(NULL, sizeof(*killed_at), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			 -1, 0);
	assert_true(killed_at != MAP_FAILED);
	assert_int_equal(shmq_pipe_create(f->r, name, &o, &a, &b), 0);
	assert_int_equal(shmq__obj_find(f->r, name, SHMQ__OBJ_PIPE, (void **)&mem, NULL), 0);
	/* end 0 (a) produces into ring 0 and consumes from ring 1 */
	ring = (struct shmq__spsc *)(mem + 192 +
				     (how == 2 ? 0 : shmq__spsc_footprint(shmq_pipe_capacity(a))));
	assert_int_equal(ring->magic, SHMQ__SPSC_MAGIC);
	waits = how == 2 ? &ring->prod_waits : &ring->cons_waits;
	assert_int_equal(pipe(sync), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_pipe *p = child_end1(f->name, name, &r);

		if (how != 1 && shmq_pipe_send(p, "last", 4, SHMQ_FOREVER))
			_exit(92);
		if (write(sync[1], "k", 1) != 1)
			_exit(93);
		for (;;)
			pause();
	}
	shmq_pipe_close(b);
	assert_int_equal(read(sync[0], buf, 1), 1);
	if (how == 2)
		while (shmq_pipe_send(a, buf, 40, SHMQ_NOWAIT) == 0)
			;
	killer = fork_killer(how == 0 ? NULL : waits, *waits, pid, killed_at);
	if (how == 0)
		assert_int_equal(tu_wait_child(killer), 0); /* killed before we look */
	if (how == 2) {
		assert_int_equal(shmq_pipe_send(a, buf, 40, ms(10000)), -EPIPE);
	} else {
		if (how == 0) {
			assert_int_equal(shmq_pipe_recv(a, buf, sizeof(buf), ms(10000)), 4);
			assert_memory_equal(buf, "last", 4);
		}
		assert_int_equal(shmq_pipe_recv(a, buf, sizeof(buf), ms(10000)), -EPIPE);
	}
	dt = shmq_now_ns() - __atomic_load_n(killed_at, __ATOMIC_SEQ_CST);
	print_message("-EPIPE %.1f ms after the kill\n", (double)dt / ms(1));
	assert_true(dt < ms(2000));
	if (how != 0)
		assert_int_equal(tu_wait_child(killer), 0); /* the kill found us blocked */
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	close(sync[0]);
	close(sync[1]);
	shmq_pipe_close(a);
	munmap(killed_at, sizeof(*killed_at));
}

static void test_sigkill_recv(void **state)
{
	kill_peer_case(*state, "k1", 0);
	kill_peer_case(*state, "k1b", 1);
}

static void test_sigkill_send(void **state)
{
	kill_peer_case(*state, "k2", 2);
}

/* Holders that died free their slots for later openers: after more than
 * SHMQ_PIPE_HOLDERS processes have opened end 1 one after another and been
 * killed, while the creator keeps its handle of end 1 (so the end is never
 * gone), a new process can still open it (not -ENOSPC). */
static void test_dead_holders_make_room(void **state)
{
	struct tu_region *f = *state;
	shmq_pipe *a, *b;
	char buf[8];

	assert_int_equal(shmq_pipe_create(f->r, "dh", NULL, &a, &b), 0);
	for (int i = 0; i < 2 * SHMQ_PIPE_HOLDERS; i++) {
		int sync[2];
		pid_t pid;

		assert_int_equal(pipe(sync), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			shmq_region *r = child_region(f->name);
			shmq_pipe *p;
			char c = shmq_pipe_open(r, "dh", 1, &p) == 0 ? 'y' : 'n';

			if (write(sync[1], &c, 1) != 1)
				_exit(92);
			for (;;)
				pause();
		}
		assert_int_equal(read(sync[0], buf, 1), 1);
		kill(pid, SIGKILL);
		assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
		close(sync[0]);
		close(sync[1]);
		assert_int_equal(buf[0], 'y');
	}
	/* end 1 is still held (by b): nothing gone */
	assert_int_equal(shmq_pipe_send(a, "x", 1, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), SHMQ_NOWAIT), 1);
	shmq_pipe_close(a);
	shmq_pipe_close(b);
}

/* A non-waiting caller also learns of the death (deep checks are paced). */
static void test_sigkill_nowait(void **state)
{
	struct tu_region *f = *state;
	shmq_pipe *a, *b;
	char buf[8];
	int sync[2];
	int64_t t0;
	pid_t pid;
	int rc;

	assert_int_equal(shmq_pipe_create(f->r, "k3", NULL, &a, &b), 0);
	assert_int_equal(pipe(sync), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;

		child_end1(f->name, "k3", &r); /* holds end 1 until killed */
		if (write(sync[1], "k", 1) != 1)
			_exit(92);
		for (;;)
			pause();
	}
	shmq_pipe_close(b);
	assert_int_equal(read(sync[0], buf, 1), 1);
	assert_int_equal(shmq_pipe_recv(a, buf, sizeof(buf), SHMQ_NOWAIT), -EAGAIN);
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	t0 = shmq_now_ns();
	while ((rc = (int)shmq_pipe_recv(a, buf, sizeof(buf), SHMQ_NOWAIT)) == -EAGAIN)
		assert_true(shmq_now_ns() - t0 < ms(2000)); /* found at all: a spinner may be preempted */
	assert_int_equal(rc, -EPIPE);
	assert_int_equal(shmq_pipe_send(a, buf, 1, SHMQ_NOWAIT), -EPIPE);
	close(sync[0]);
	close(sync[1]);
	shmq_pipe_close(a);
}

/* ---- placement ---- */

static void test_placement(void **state)
{
	struct shmq_pipe_opts o = { .capacity = 512 };
	size_t size = shmq_pipe_footprint(&o);
	void *mem;
	shmq_pipe *a;
	char buf[16];
	pid_t pid;

	(void)state;
	assert_true(size > 1024);
	assert_int_equal(shmq_pipe_footprint(&(struct shmq_pipe_opts){ .capacity = (size_t)1 << 40 }), 0);
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(mem != MAP_FAILED);
	assert_int_equal(shmq_pipe_init(mem, size - 64, &o), -EINVAL);
	assert_int_equal(shmq_pipe_init(mem, size, &o), 0);
	assert_int_equal(shmq_pipe_attach(mem, size, 3, &a), -EINVAL);
	assert_int_equal(shmq_pipe_attach(mem, size - 64, 0, &a), -EBADMSG);
	assert_int_equal(shmq_pipe_attach(mem, size, 0, &a), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_pipe *p;
		char m[16];
		int ok = shmq_pipe_attach(mem, size, 1, &p) == 0 &&
			 shmq_pipe_recv(p, m, sizeof(m), SHMQ_FOREVER) == 2 &&
			 shmq_pipe_send(p, m, 2, SHMQ_FOREVER) == 0;

		shmq_pipe_close(p);
		_exit(ok ? 0 : 91);
	}
	assert_int_equal(shmq_pipe_send(a, "hi", 2, SHMQ_FOREVER), 0);
	assert_int_equal(shmq_pipe_recv(a, buf, sizeof(buf), SHMQ_FOREVER), 2);
	assert_memory_equal(buf, "hi", 2);
	assert_int_equal(shmq_pipe_recv(a, buf, sizeof(buf), SHMQ_FOREVER), -EPIPE);
	assert_int_equal(tu_wait_child(pid), 0);
	shmq_pipe_close(a);
	munmap(mem, size);
}

/* ---- the first open of an end, racing the peer's checks ---- */

/* The race tests meet a persistent thread once per round.  They run at most
 * RACE_BUDGET_NS of rounds: a loaded machine runs fewer (the races show in
 * quiet runs, and a correct library passes either way).  Every wait gives the
 * CPU away after a few polls: the two threads may share a core with the rest
 * of a loaded machine, and a handshake spun out a whole time slice made the
 * rounds a thousand times dearer. */
#define RACE_BUDGET_NS ((int64_t)4 * SHMQ__NS_PER_SEC)
#define RACE_QUIT UINT_MAX /* go: the main thread is done */

/* Wait until *word >= want: true, or false at the deadline. */
static bool race_wait(const unsigned *word, unsigned want, int64_t deadline)
{
	for (unsigned spins = 1; __atomic_load_n(word, __ATOMIC_SEQ_CST) < want; spins++) {
		if (spins % 64 == 0) {
			if (shmq_now_ns() > deadline)
				return false;
			sched_yield();
		}
	}
	return true;
}

/* The opener thread's wait for round: true to go on, false to end. */
static bool race_go(const unsigned *go, unsigned round, int64_t deadline)
{
	return race_wait(go, round, deadline) && __atomic_load_n(go, __ATOMIC_SEQ_CST) != RACE_QUIT;
}

#ifdef SHMQ_SANITIZED
#define OPEN_RACES 20000u
#else
#define OPEN_RACES 60000u /* the old code failed about 2 rounds in 20000 */
#endif

struct open_race {
	void *mem;
	size_t size;
	unsigned go;    /* the round the opener is to open end 1 in */
	unsigned done;  /* the last round it opened in */
	int rc;         /* its attach's result in that round */
	shmq_pipe *end1;
};

static void *open_race_opener(void *arg)
{
	struct open_race *o = arg;
	int64_t deadline = shmq_now_ns() + ms(60000);

	for (unsigned round = 1; race_go(&o->go, round, deadline); round++) {
		o->rc = shmq_pipe_attach(o->mem, o->size, 1, &o->end1);
		__atomic_store_n(&o->done, round, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

/* The first open of an end nobody held yet, racing the peer's checks of that
 * end: never judged gone.  An opener counts itself a holder, then marks the
 * end opened.  A check that looked at the holders before the first and at
 * `opened` after the second found an end "opened, and held by nobody": gone,
 * for good, and the peer's next call said -EPIPE (`shmq-bench waitset` failed
 * so, twice in about a hundred runs).  Here a thread opens end 1 of a fresh
 * placed pipe while the main thread polls end 0 with SHMQ_NOWAIT receives
 * (every 64th looks at the peer), OPEN_RACES times.  Against the old
 * end_check, three runs: 12, 7 and 37 rounds of 60000 got -EPIPE. */
static void test_open_races_peer_check(void **state)
{
	struct shmq_pipe_opts opts = { .capacity = 64 };
	struct open_race o = { .size = shmq_pipe_footprint(&opts) };
	unsigned bad = 0, first_bad = 0, open_failed = 0, rounds = 0;
	int64_t stop = shmq_now_ns() + RACE_BUDGET_NS;
	pthread_t t;
	char buf[8];

	(void)state;
	o.mem = mmap(NULL, o.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(o.mem != MAP_FAILED);
	assert_int_equal(pthread_create(&t, NULL, open_race_opener, &o), 0);
	for (unsigned round = 1; round <= OPEN_RACES && shmq_now_ns() < stop; round++) {
		shmq_pipe *end0;
		int64_t deadline = shmq_now_ns() + ms(10000);
		ssize_t n = -EAGAIN;

		assert_int_equal(shmq_pipe_init(o.mem, o.size, &opts), 0);
		assert_int_equal(shmq_pipe_attach(o.mem, o.size, 0, &end0), 0);
		__atomic_store_n(&o.go, round, __ATOMIC_SEQ_CST);
		for (unsigned polls = 1;
		     n == -EAGAIN && __atomic_load_n(&o.done, __ATOMIC_SEQ_CST) < round; polls++) {
			n = shmq_pipe_recv(end0, buf, sizeof(buf), SHMQ_NOWAIT);
			if (polls % 1024 == 0) {
				assert_true(shmq_now_ns() < deadline);
				sched_yield();
			}
		}
		assert_true(race_wait(&o.done, round, deadline));
		rounds++;
		/* and a look at the peer after the open */
		for (int i = 0; i < 64 && n == -EAGAIN; i++)
			n = shmq_pipe_recv(end0, buf, sizeof(buf), SHMQ_NOWAIT);
		if (o.rc != 0)
			open_failed++;
		else if (n != -EAGAIN && !bad++)
			first_bad = round;
		shmq_pipe_close(end0);
		if (o.rc == 0)
			shmq_pipe_close(o.end1);
	}
	__atomic_store_n(&o.go, RACE_QUIT, __ATOMIC_SEQ_CST);
	assert_int_equal(pthread_join(t, NULL), 0);
	munmap(o.mem, o.size);
	if (bad || open_failed)
		print_message("%u of %u rounds judged the opened end gone (first: %u), %u opens failed\n",
			      bad, rounds, first_bad, open_failed);
	assert_int_equal(bad, 0);
	assert_int_equal(open_failed, 0);
}

/* ---- the last close of an end, racing an open of it ---- */

#ifdef SHMQ_SANITIZED
#define CLOSE_RACES 10000u
#else
#define CLOSE_RACES 40000u /* the old code failed 35 to 272 rounds in 40000 */
#endif

/* An open of an end racing the close of its last handle: either the open
 * fails with -EPIPE (the end was gone) or the end is held, never both an
 * open that succeeded and an end judged gone.  The closer judged the end
 * from a scan of the holders and then stored `gone`; an opener that took a
 * slot after that scan and read `gone` before that store kept its handle on
 * an end marked gone for good: the peer's send said -EPIPE while the opener
 * held the end.  Here a thread opens end 1 of a fresh placed pipe while the
 * main thread closes the only other handle of end 1, CLOSE_RACES times; the
 * close comes a spin later each time the open came too late, and sooner
 * each time it came early, so the two keep meeting (the opener is
 * test_open_races_peer_check's).  Against the old end_check, three runs:
 * 96, 8 and 54 rounds of about 15000 went wrong. */
static void test_close_races_open(void **state)
{
	struct shmq_pipe_opts opts = { .capacity = 64 };
	struct open_race o = { .size = shmq_pipe_footprint(&opts) };
	unsigned bad = 0, first_bad = 0, opened = 0;
	int64_t stop = shmq_now_ns() + RACE_BUDGET_NS;
	long delay = 0;
	pthread_t t;

	(void)state;
	o.mem = mmap(NULL, o.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(o.mem != MAP_FAILED);
	assert_int_equal(pthread_create(&t, NULL, open_race_opener, &o), 0);
	for (unsigned round = 1; round <= CLOSE_RACES && shmq_now_ns() < stop; round++) {
		shmq_pipe *end0, *end1;
		int64_t deadline = shmq_now_ns() + ms(10000);
		int rc;

		assert_int_equal(shmq_pipe_init(o.mem, o.size, &opts), 0);
		assert_int_equal(shmq_pipe_attach(o.mem, o.size, 0, &end0), 0);
		assert_int_equal(shmq_pipe_attach(o.mem, o.size, 1, &end1), 0);
		__atomic_store_n(&o.go, round, __ATOMIC_SEQ_CST);
		for (volatile long i = 0; i < delay; i++)
			;
		shmq_pipe_close(end1);
		assert_true(race_wait(&o.done, round, deadline));
		if (o.rc == 0) {
			/* the opener holds end 1: the peer may send to it */
			rc = shmq_pipe_send(end0, "x", 1, SHMQ_NOWAIT);
			if (rc != 0 && !bad++)
				first_bad = round;
			shmq_pipe_close(o.end1);
			opened++;
			delay = delay > 2 ? delay - 2 : 0;
		} else {
			assert_int_equal(o.rc, -EPIPE);
			delay += 2;
		}
		shmq_pipe_close(end0);
	}
	__atomic_store_n(&o.go, RACE_QUIT, __ATOMIC_SEQ_CST);
	assert_int_equal(pthread_join(t, NULL), 0);
	munmap(o.mem, o.size);
	if (bad)
		print_message("%u of %u rounds opened end 1 and found it gone (first: %u)\n",
			      bad, opened, first_bad);
	assert_int_equal(bad, 0);
}

/* ---- a create, racing an open and close of one of its ends ---- */

#ifdef SHMQ_SANITIZED
#define CREATE_RACES 1000u
#else
#define CREATE_RACES 4000u /* the old code failed most rounds */
#endif
#define CREATE_RACES_PER_REGION 250u /* a 4 MiB region holds about 500 pipes */

struct create_race {
	shmq_region *r;
	unsigned go;   /* the round whose pipe the opener is to open */
	unsigned done; /* the last round it finished */
	int rc;        /* its open's result in that round */
};

static void *create_race_opener(void *arg)
{
	struct create_race *c = arg;
	int64_t deadline = shmq_now_ns() + ms(60000);

	for (unsigned round = 1; race_go(&c->go, round, deadline); round++) {
		char name[32];
		shmq_pipe *p;
		unsigned tries = 0;
		int rc;

		snprintf(name, sizeof(name), "race%u", round);
		while ((rc = shmq_pipe_open(c->r, name, (int)(round & 1), &p)) == -ENOENT &&
		       shmq_now_ns() < deadline)
			if (++tries % 64 == 0)
				sched_yield();
		if (rc == 0)
			shmq_pipe_close(p);
		c->rc = rc;
		__atomic_store_n(&c->done, round, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

/* A create whose object another process opens (one end) and closes before
 * the create returns: the create still succeeds, and its end is held by its
 * handle.  The creator counted its own handles after the object was
 * published, so an open and close of an end in between left it opened and
 * held by nobody: gone; the create's handle for it then failed with -EPIPE
 * and the create returned -EPIPE, leaving behind an object of that name.
 * Here a thread opens end 0 or 1 of each new name as soon as it exists and
 * closes it at once, CREATE_RACES times.  Against the old create, 4000
 * rounds three times: 2295, 3091 and 2951 creates failed, and 6, 19 and 22
 * that succeeded handed out an end already gone (the check of the opener's
 * close had scanned the slots before the create counted its handle). */
static void test_create_races_open(void **state)
{
	struct shmq_pipe_opts opts = { .capacity = 64 };
	struct shmq_region_opts ro = { .size = RSIZE };
	struct create_race c = { 0 };
	unsigned bad = 0, first_bad = 0, peer_bad = 0, rounds = 0;
	int64_t stop = shmq_now_ns() + RACE_BUDGET_NS;
	int first_rc = 0;
	pthread_t t;

	(void)state;
	assert_int_equal(shmq_region_create(NULL, &ro, &c.r), 0);
	assert_int_equal(pthread_create(&t, NULL, create_race_opener, &c), 0);
	for (unsigned round = 1; round <= CREATE_RACES && shmq_now_ns() < stop; round++) {
		shmq_pipe *end0 = NULL, *end1 = NULL;
		int64_t deadline = shmq_now_ns() + ms(10000);
		char name[32];
		int rc;

		snprintf(name, sizeof(name), "race%u", round);
		__atomic_store_n(&c.go, round, __ATOMIC_SEQ_CST);
		rc = shmq_pipe_create(c.r, name, &opts, &end0, &end1);
		assert_true(race_wait(&c.done, round, deadline));
		rounds++;
		assert_int_equal(c.rc, 0);
		if (rc != 0 && !bad++) {
			first_bad = round;
			first_rc = rc;
		}
		if (rc == 0) {
			/* the end the opener closed is still held by ours */
			if (shmq_pipe_send(round & 1 ? end0 : end1, "x", 1, SHMQ_NOWAIT) != 0)
				peer_bad++;
			shmq_pipe_close(end0);
			shmq_pipe_close(end1);
		}
		if (round % CREATE_RACES_PER_REGION == 0 && round < CREATE_RACES) {
			/* a fresh region for the next names; the opener waits for go */
			shmq_region_close(c.r);
			assert_int_equal(shmq_region_create(NULL, &ro, &c.r), 0);
		}
	}
	__atomic_store_n(&c.go, RACE_QUIT, __ATOMIC_SEQ_CST);
	assert_int_equal(pthread_join(t, NULL), 0);
	shmq_region_close(c.r);
	if (bad || peer_bad)
		print_message("%u of %u creates failed (first: round %u, %d), %u found an end gone\n",
			      bad, rounds, first_bad, first_rc, peer_bad);
	assert_int_equal(bad, 0);
	assert_int_equal(peer_bad, 0);
}

/* ---- corruption ---- */

/* Poll until *ctr reaches want and *sleepers is nonzero: the peer is asleep
 * in futex_wait (or about to be).  2 s bound. */
static void await_sleeper(const uint64_t *ctr, uint64_t want, const uint32_t *sleepers)
{
	int64_t deadline = shmq_now_ns() + ms(2000);

	while (__atomic_load_n(ctr, __ATOMIC_SEQ_CST) < want ||
	       !__atomic_load_n(sleepers, __ATOMIC_SEQ_CST)) {
		assert_true(shmq_now_ns() < deadline);
		usleep(100);
	}
	usleep(2000); /* let it reach the futex */
}

/* One sleep costs one wake.  The consumer (a child, spin 0) falls asleep on
 * an empty ring and is stopped there; 50 sends while it cannot run make one
 * futex wake, not one per send (the wake storm). */
static void test_one_wake_per_sleep(void **state)
{
	struct tu_region *f = *state;
	struct shmq_pipe_opts o = { .capacity = 1024 };
	shmq_pipe *a, *b;
	struct shmq__spsc *ring0;
	uint8_t *mem;
	uint64_t w0;
	pid_t pid;

	assert_int_equal(shmq_pipe_create(f->r, "w1", &o, &a, &b), 0);
	assert_int_equal(shmq__obj_find(f->r, "w1", SHMQ__OBJ_PIPE, (void **)&mem, NULL), 0);
	ring0 = (struct shmq__spsc *)(mem + 192); /* a -> b */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_pipe *p = child_end1(f->name, "w1", &r);
		uint64_t m;

		shmq_pipe_set_spin(p, 0);
		for (uint64_t i = 0; i < 50; i++)
			if (shmq_pipe_recv(p, &m, sizeof(m), ms(10000)) != 8 || m != i)
				_exit(1);
		_exit(0);
	}
	shmq_pipe_close(b);
	await_sleeper(&ring0->cons_waits, 1, &ring0->cons_sleepers);
	assert_int_equal(kill(pid, SIGSTOP), 0);
	w0 = ring0->cons_wakes;
	for (uint64_t i = 0; i < 50; i++)
		assert_int_equal(shmq_pipe_send(a, &i, sizeof(i), 0), 0);
	assert_int_equal(ring0->cons_wakes - w0, 1);
	assert_int_equal(kill(pid, SIGCONT), 0);
	assert_int_equal(tu_wait_child(pid), 0);
	shmq_pipe_close(a);
}

/* Low-water hysteresis: a producer asleep on a full ring is woken once half
 * the ring is free, not for every freed record; over three rings' worth it
 * is woken a few times. */
static void test_producer_hysteresis(void **state)
{
	struct tu_region *f = *state;
	struct shmq_pipe_opts o = { .capacity = 1024 };
	const uint64_t per_ring = 1024 / 16, total = 3 * per_ring; /* 8-byte messages */
	shmq_pipe *a, *b;
	struct shmq__spsc *ring1;
	uint8_t *mem;
	uint64_t w0, m, i;
	pid_t pid;

	assert_int_equal(shmq_pipe_create(f->r, "w2", &o, &a, &b), 0);
	assert_int_equal(shmq__obj_find(f->r, "w2", SHMQ__OBJ_PIPE, (void **)&mem, NULL), 0);
	ring1 = (struct shmq__spsc *)(mem + 192 + shmq__spsc_footprint(1024)); /* b -> a */
	w0 = ring1->prod_wakes;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_pipe *p = child_end1(f->name, "w2", &r);

		shmq_pipe_set_spin(p, 0);
		for (i = 0; i < total; i++)
			if (shmq_pipe_send(p, &i, sizeof(i), ms(10000)))
				_exit(1);
		_exit(0);
	}
	shmq_pipe_close(b);
	await_sleeper(&ring1->prod_waits, 1, &ring1->prod_sleepers);
	assert_int_equal(kill(pid, SIGSTOP), 0);
	for (i = 0; i < per_ring / 2 - 1; i++) { /* frees 31 of 64 records */
		assert_int_equal(shmq_pipe_recv(a, &m, sizeof(m), 0), 8);
		assert_int_equal(m, i);
	}
	assert_int_equal(ring1->prod_wakes - w0, 0);
	assert_int_equal(shmq_pipe_recv(a, &m, sizeof(m), 0), 8); /* half free */
	assert_int_equal(ring1->prod_wakes - w0, 1);
	for (i++; i < per_ring - 4; i++)
		assert_int_equal(shmq_pipe_recv(a, &m, sizeof(m), 0), 8);
	assert_int_equal(ring1->prod_wakes - w0, 1);
	assert_int_equal(kill(pid, SIGCONT), 0);
	for (; i < total; i++) {
		assert_int_equal(shmq_pipe_recv(a, &m, sizeof(m), ms(10000)), 8);
		assert_int_equal(m, i);
	}
	assert_int_equal(tu_wait_child(pid), 0);
	/* each wake needs a fresh sleep and half a ring freed after it */
	print_message("producer wakes for %llu messages: %llu\n", (unsigned long long)total,
		      (unsigned long long)(ring1->prod_wakes - w0));
	assert_true(ring1->prod_wakes - w0 <= 2 * total / per_ring + 2);
	shmq_pipe_close(a);
}

/* The half-empty mark must not make two sides that block on each other wait
 * out a sleep slice: an end about to sleep in send first wakes a peer asleep
 * sending to it for whatever room it freed. */
static void test_blocked_sender_wakes_peer(void **state)
{
	struct tu_region *f = *state;
	struct shmq_pipe_opts o = { .capacity = 1024 };
	const uint64_t per_ring = 1024 / 16;
	shmq_pipe *a, *b;
	struct shmq__spsc *ring1;
	uint8_t *mem;
	uint64_t w0, m, i;
	pid_t pid;

	assert_int_equal(shmq_pipe_create(f->r, "w3", &o, &a, &b), 0);
	assert_int_equal(shmq__obj_find(f->r, "w3", SHMQ__OBJ_PIPE, (void **)&mem, NULL), 0);
	ring1 = (struct shmq__spsc *)(mem + 192 + shmq__spsc_footprint(1024)); /* b -> a */
	while (shmq_pipe_send(a, &m, sizeof(m), 0) == 0) /* ring 0 full: a's sends block */
		;
	w0 = ring1->prod_wakes;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *r;
		shmq_pipe *p = child_end1(f->name, "w3", &r);

		shmq_pipe_set_spin(p, 0);
		for (i = 0; i <= per_ring; i++) /* the last one waits for room */
			if (shmq_pipe_send(p, &i, sizeof(i), ms(10000)))
				_exit(1);
		_exit(0);
	}
	shmq_pipe_close(b);
	await_sleeper(&ring1->prod_waits, 1, &ring1->prod_sleepers);
	assert_int_equal(kill(pid, SIGSTOP), 0);
	assert_int_equal(shmq_pipe_recv(a, &m, sizeof(m), 0), 8); /* one free: below the mark */
	assert_int_equal(ring1->prod_wakes - w0, 0);
	assert_int_equal(shmq_pipe_send(a, &m, sizeof(m), ms(20)), -ETIMEDOUT);
	assert_int_equal(ring1->prod_wakes - w0, 1);
	assert_int_equal(kill(pid, SIGCONT), 0);
	for (i = 1; i <= per_ring; i++) {
		assert_int_equal(shmq_pipe_recv(a, &m, sizeof(m), ms(10000)), 8);
		assert_int_equal(m, i);
	}
	assert_int_equal(tu_wait_child(pid), 0);
	shmq_pipe_close(a);
}

/* One answer's exchange: b asks (so that its next receive waits for an
 * answer), a takes the question (so that its next send is one). */
static void ask(shmq_pipe *a, shmq_pipe *b)
{
	char q;

	assert_int_equal(shmq_pipe_send(b, "?", 1, 0), 0);
	assert_int_equal(shmq_pipe_recv(a, &q, 1, 0), 1);
}

/*
 * Descriptors (ring/spsc_int.h): a receiver polls the descriptor of the
 * record it reads next.  (1) Whatever a sends next is seen by the first
 * poll: an answer, a send that answers nothing, a bulk send, a batch once
 * flushed (not before).  (2) A slot still holds the descriptor of the
 * record one lap of descriptors before, published and consumed: never
 * taken for the next one.
 */
static void test_descriptors(void **state)
{
	struct tu_region *f = *state;
	struct shmq_pipe_opts o = { .capacity = 1024 };
	shmq_pipe *a, *b;
	struct shmq__spsc *ring0;
	uint8_t *mem, m[512] = { 0 }, buf[512];
	struct iovec v[2] = { { m, 16 }, { m, 16 } };
	void *rb;

	assert_int_equal(shmq_pipe_create(f->r, "st", &o, &a, &b), 0);
	assert_int_equal(shmq__obj_find(f->r, "st", SHMQ__OBJ_PIPE, (void **)&mem, NULL), 0);
	ring0 = (struct shmq__spsc *)(mem + 192); /* a -> b */
	/* (2): 64 descriptors; 200 records one at a time go round them three
	 * times, and each slot's last descriptor is there when b looks again */
	for (uint32_t i = 0; i < 200; i++) {
		const uint64_t *d = (const uint64_t *)ring0->area;

		memcpy(m, &i, sizeof(i));
		assert_int_equal(shmq_pipe_send(a, m, 8 + i % 40, 0), 0);
		assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), 0), 8 + i % 40);
		assert_memory_equal(buf, &i, sizeof(i));
		assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), 0), -EAGAIN);
		if (i >= 64) /* the slot b polls next holds record i + 1 - 64's */
			assert_true(shmq__spsc_desc_is(d[(i + 1) % 64], i + 1 - 64));
	}
	/* (1) */
	ask(a, b);
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), 0), -EAGAIN);
	assert_int_equal(shmq_pipe_send(a, m, 56, 0), 0);
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), 0), 56);
	ask(a, b);
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), 0), -EAGAIN);
	assert_int_equal(shmq_pipe_send(a, m, 16, 0), 0);
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), 0), 16);
	assert_int_equal(shmq_pipe_send(a, m, 40, 0), 0); /* answers nothing */
	ask(a, b);
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), 0), 40);
	assert_int_equal(shmq_pipe_send(a, m, 40, 0), 0); /* an answer */
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), 0), 40);
	assert_int_equal(shmq_pipe_send(b, "?", 1, 0), 0); /* not read by a */
	assert_int_equal(shmq_pipe_send(a, m, 16, 0), 0);
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), 0), 16);
	assert_int_equal(shmq_pipe_recv(a, buf, sizeof(buf), 0), 1);
	assert_int_equal(shmq_pipe_send(a, m, 40, 0), 0); /* an answer */
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), 0), 40);
	ask(a, b);
	assert_int_equal(shmq_pipe_send_bulk(a, v, 2, 0), 2);
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), 0), 16);
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), 0), 16);
	ask(a, b);
	assert_int_equal(shmq_pipe_send(a, m, 40, 0), 0);
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), 0), 40);
	ask(a, b);
	assert_int_equal(shmq_pipe_reserve(a, 24, &rb, 0), 0);
	memset(rb, 'x', 24);
	assert_int_equal(shmq_pipe_commit(a, 24, SHMQ_PIPE_MORE), 0);
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), 0), -EAGAIN);
	assert_int_equal(shmq_pipe_flush(a), 0);
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), 0), 24);
	shmq_pipe_close(a);
	shmq_pipe_close(b);
}

static void test_corrupt(void **state)
{
	struct tu_region *f = *state;
	struct shmq_pipe_opts o = { .capacity = 1024 };
	shmq_pipe *a, *b, *c;
	uint8_t *mem;
	struct shmq__spsc *ring0;
	uint64_t size;
	char buf[64];
	int rc;

	assert_int_equal(shmq_pipe_create(f->r, "c", &o, &a, &b), 0);
	assert_int_equal(shmq__obj_find(f->r, "c", SHMQ__OBJ_PIPE, (void **)&mem, &size), 0);
	ring0 = (struct shmq__spsc *)(mem + 192);
	assert_int_equal(ring0->magic, SHMQ__SPSC_MAGIC);
	assert_int_equal(shmq_pipe_send(a, "abc", 3, 0), 0);
	ring0->tail = 1u << 20; /* garbage tail: the receiver reads descriptors */
	{
		uint64_t *d0 = (uint64_t *)ring0->area; /* record 0's descriptor */

		*d0 = shmq__spsc_desc(0, 4000); /* garbage length, published */
		assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), 0), -EBADMSG);
		assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), ms(10)), -EBADMSG);
		*d0 = shmq__spsc_desc(0, 3);
	}
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), 0), 3);
	ring0->tail = 16;
	/* a record count far from the other side's: the receiver would poll a
	 * descriptor the sender never writes */
	ring0->head_n = 12345;
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), ms(10)), -EBADMSG);
	/* a poll finds it at its next look at the ring's state (every 64th
	 * of a run of empty ones: "nowait_quiet") */
	for (int i = 0; i < 100 && (rc = (int)shmq_pipe_recv(b, buf, sizeof(buf), 0)) == -EAGAIN; i++)
		;
	assert_int_equal(rc, -EBADMSG);
	ring0->head_n = 1;
	assert_int_equal(shmq_pipe_send(a, "d", 1, 0), 0);
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), 0), 1);
	/* a holder of the peer's end with an id no attachment can carry
	 * (slot 5, generation 0): refused the first time a waiter reads the
	 * holders, before it sleeps */
	{
		uint64_t *holder = (uint64_t *)(mem + 64); /* end 0's first slot: a's */
		uint64_t saved = *holder, waits = ring0->cons_waits; /* b consumes ring 0 */

		*holder = (uint64_t)5 << 32 | 1;
		assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), ms(2000)), -EBADMSG);
		assert_int_equal(ring0->cons_waits, waits);
		*holder = saved;
	}
	ring0->head = 7; /* garbage head, read once the producer's cache runs out */
	while ((rc = shmq_pipe_send(a, "abc", 3, 0)) == 0)
		;
	assert_int_equal(rc, -EBADMSG);
	/* the header */
	((uint32_t *)mem)[1] = 77;
	assert_int_equal(shmq_pipe_open(f->r, "c", 0, &c), -EPROTO);
	((uint32_t *)mem)[1] = 1; /* layout 1 (rings without wake flags): refused */
	assert_int_equal(shmq_pipe_open(f->r, "c", 0, &c), -EPROTO);
	((uint32_t *)mem)[1] = 2; /* layout 2 (no producer claims): refused */
	assert_int_equal(shmq_pipe_open(f->r, "c", 0, &c), -EPROTO);
	((uint32_t *)mem)[1] = 3; /* layout 3 (no stamps): refused */
	assert_int_equal(shmq_pipe_open(f->r, "c", 0, &c), -EPROTO);
	((uint32_t *)mem)[1] = 4; /* layout 4 (in-band headers): refused */
	assert_int_equal(shmq_pipe_open(f->r, "c", 0, &c), -EPROTO);
	((uint32_t *)mem)[1] = 5;
	((uint64_t *)mem)[1] = 12345;
	assert_int_equal(shmq_pipe_open(f->r, "c", 0, &c), -EBADMSG);
	((uint64_t *)mem)[1] = 1024;
	((uint32_t *)mem)[0] = 0;
	assert_int_equal(shmq_pipe_open(f->r, "c", 0, &c), -EBADMSG);
	shmq_pipe_close(a);
	shmq_pipe_close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_open_errors, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_capacity_rounding, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_nowait_and_timeouts, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_wait_cancelled, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_blocked_wait_asks_no_proc, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_msgsize_loses_nothing, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_zero_copy_and_bulk, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_bulk_null_base, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_bulk_send_publishes_as_it_goes, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_bulk_recv_publishes_as_it_goes, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_stress_two_processes, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_eof_on_close, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_eof_creator_used_end, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_eof_creator_threads, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_eof_needs_every_handle, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_holders_take_turns, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_blocking_wakeup, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_sigkill_recv, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_sigkill_send, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_sigkill_nowait, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_dead_holders_make_room, setup, tu_region_teardown),
		cmocka_unit_test(test_placement),
		cmocka_unit_test_setup_teardown(test_descriptors, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_corrupt, setup, tu_region_teardown),
		cmocka_unit_test(test_open_races_peer_check),
		cmocka_unit_test(test_close_races_open),
		cmocka_unit_test(test_create_races_open),
		cmocka_unit_test_setup_teardown(test_one_wake_per_sleep, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_producer_hysteresis, setup, tu_region_teardown),
		cmocka_unit_test_setup_teardown(test_blocked_sender_wakes_peer, setup, tu_region_teardown),
	};

	if (getenv("SHMQ_TEST_FILTER")) /* run only the tests matching this pattern */
		cmocka_set_test_filter(getenv("SHMQ_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
