/* SPDX-License-Identifier: MIT */
/* Issue 16: the region's identity (shmq_region_uuid) and the queue's
 * two-phase get (get_begin / get_commit / get_abort): every errno, the
 * position order of redeliveries, and consumers SIGKILLed while holding
 * begun messages. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "testutil.h"

#include <shmq/introspect.h>

#include "chan/queue_int.h"
#include "core/introspect_int.h"
#include "core/objkind_int.h"
#include "core/region_int.h"
#include "core/region_layout_int.h"
#include "ring/mpmc_int.h"

/* Put n messages "m<i>" (i from first). */
static void put_n(shmq_queue *q, int first, int n)
{
	for (int i = first; i < first + n; i++) {
		char m[16];
		int len = snprintf(m, sizeof(m), "m%d", i);

		assert_int_equal(shmq_queue_put(q, m, (size_t)len, SHMQ_NOWAIT), 0);
	}
}

/* Begin one and check it is message "m<want>" at position want_pos. */
static void begin_is(shmq_queue *q, int want, uint64_t want_pos)
{
	char m[16];
	const void *msg;
	uint64_t pos = ~(uint64_t)0;
	int len = snprintf(m, sizeof(m), "m%d", want);

	assert_int_equal(shmq_queue_get_begin(q, &msg, &pos, SHMQ_NOWAIT), len);
	assert_memory_equal(msg, m, (size_t)len);
	assert_int_equal(pos, want_pos);
}

static int setup(void **state)
{
	return tu_region_setup(state, "queue2", (size_t)16 << 20);
}

/* ---- shmq_region_uuid ---- */

static void test_uuid(void **state)
{
	struct tu_region *f = *state;
	uint8_t a[16], b[16], c[16], zero[16] = { 0 };
	struct shmq_region_opts o = { .size = (size_t)1 << 20 };
	char name[96];
	shmq_region *r, *r2;
	int pfd[2];
	pid_t pid;

	assert_int_equal(shmq_region_uuid(NULL, a), -EINVAL);
	assert_int_equal(shmq_region_uuid(f->r, NULL), -EINVAL);
	assert_int_equal(shmq_region_uuid(f->r, a), 0);
	assert_memory_not_equal(a, zero, 16);
	/* the same across opens */
	assert_int_equal(shmq_region_open(f->name, &r), 0);
	assert_int_equal(shmq_region_uuid(r, b), 0);
	assert_memory_equal(a, b, 16);
	shmq_region_close(r);
	/* the same in another process */
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *cr = tu_child_region(f->name);
		uint8_t u[16];

		if (shmq_region_uuid(cr, u) || write(pfd[1], u, 16) != 16)
			_exit(1);
		_exit(0);
	}
	assert_int_equal(read(pfd[0], c, 16), 16);
	assert_int_equal(tu_wait_child(pid), 0);
	close(pfd[0]);
	close(pfd[1]);
	assert_memory_equal(a, c, 16);
	/* distinct for every create, also of the same name */
	tu_name(name, sizeof(name), "uuid");
	assert_int_equal(shmq_region_create(name, &o, &r), 0);
	assert_int_equal(shmq_region_uuid(r, b), 0);
	assert_memory_not_equal(a, b, 16);
	shmq_region_close(r);
	assert_int_equal(shmq_region_unlink(name), 0);
	assert_int_equal(shmq_region_create(name, &o, &r), 0);
	assert_int_equal(shmq_region_uuid(r, c), 0);
	assert_memory_not_equal(b, c, 16);
	/* anonymous regions have one too */
	assert_int_equal(shmq_region_create(NULL, &o, &r2), 0);
	assert_int_equal(shmq_region_uuid(r2, b), 0);
	assert_memory_not_equal(b, c, 16);
	shmq_region_close(r2);
	/* an overwritten uuid fails its check: -EBADMSG, at open too */
	{
		struct shmq__region_ident *id = shmq__region_ident_at(r->base);

		id->uuid[3] ^= 1;
		assert_int_equal(shmq_region_uuid(r, b), -EBADMSG);
		assert_int_equal(shmq_region_open(name, &r2), -EBADMSG);
		id->uuid[3] ^= 1;
		assert_int_equal(shmq_region_uuid(r, b), 0);
		assert_memory_equal(b, c, 16);
	}
	shmq_region_close(r);
	shmq_region_unlink(name);
}

/* A version-1 region (no identity) is refused, never read as one. */
static void test_uuid_old_layout(void **state)
{
	struct shmq_region_opts o = { .size = (size_t)1 << 20 };
	char name[96], path[128];
	shmq_region *r;
	uint32_t v = 1;
	int fd;

	(void)state;
	tu_name(name, sizeof(name), "uuidv1");
	assert_int_equal(shmq_region_create(name, &o, &r), 0);
	shmq_region_close(r);
	snprintf(path, sizeof(path), "/dev/shm%s", name);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, &v, 4, 8), 4);
	assert_int_equal(shmq_region_open(name, &r), -EPROTO);
	close(fd);
	shmq_region_unlink(name);
}

/* ---- two-phase get ---- */

static void test_begin_errors(void **state)
{
	struct tu_region *f = *state;
	const void *msg;
	uint64_t pos;
	shmq_queue *q;

	assert_int_equal(shmq_queue_create(f->r, "b.errors", &(struct shmq_queue_opts){ 4, 16, 0 }, &q), 0);
	assert_int_equal(shmq_queue_get_begin(NULL, &msg, &pos, SHMQ_NOWAIT), -EINVAL);
	assert_int_equal(shmq_queue_get_begin(q, NULL, &pos, SHMQ_NOWAIT), -EINVAL);
	assert_int_equal(shmq_queue_get_begin(q, &msg, NULL, SHMQ_NOWAIT), -EINVAL);
	assert_int_equal(shmq_queue_get_begin(q, &msg, &pos, SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(shmq_queue_get_begin(q, &msg, &pos, 1000000), -ETIMEDOUT);
	assert_int_equal(shmq_queue_get_commit(NULL, 0), -EINVAL);
	assert_int_equal(shmq_queue_get_abort(NULL, 0), -EINVAL);
	/* never begun: nothing taken yet, or positions far off */
	assert_int_equal(shmq_queue_get_commit(q, 0), -EINVAL);
	assert_int_equal(shmq_queue_get_abort(q, 0), -EINVAL);
	put_n(q, 0, 3);
	assert_int_equal(shmq_queue_get_commit(q, 0), -EINVAL); /* queued, not begun */
	assert_int_equal(shmq_queue_get_commit(q, UINT64_MAX), -EINVAL);
	begin_is(q, 0, 0);
	assert_int_equal(shmq_queue_get_commit(q, 4), -EINVAL);  /* same slot, next lap */
	assert_int_equal(shmq_queue_get_commit(q, 1), -EINVAL);  /* queued */
	/* a plain get takes the next one, which then is not ours to end */
	{
		char buf[16];

		assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), 2);
		assert_memory_equal(buf, "m1", 2);
		assert_int_equal(shmq_queue_get_commit(q, 1), -EINVAL);
	}
	assert_int_equal(shmq_queue_len(q), 1);
	assert_int_equal(shmq_queue_get_commit(q, 0), 0);
	assert_int_equal(shmq_queue_get_commit(q, 0), -EINVAL); /* committed already */
	assert_int_equal(shmq_queue_get_abort(q, 0), -EINVAL);
	begin_is(q, 2, 2);
	assert_int_equal(shmq_queue_get_abort(q, 2), 0);
	assert_int_equal(shmq_queue_get_abort(q, 2), -EINVAL); /* given back already */
	assert_int_equal(shmq_queue_get_commit(q, 2), -EINVAL);
	begin_is(q, 2, 2); /* the same message, the same position */
	assert_int_equal(shmq_queue_get_commit(q, 2), 0);
	assert_int_equal(shmq_queue_get_begin(q, &msg, &pos, SHMQ_NOWAIT), -EAGAIN);
	/* after shutdown and drain: -EPIPE */
	assert_int_equal(shmq_queue_shutdown(q), 0);
	assert_int_equal(shmq_queue_get_begin(q, &msg, &pos, SHMQ_NOWAIT), -EPIPE);
	shmq_queue_close(q);
}

/* Positions count every message of the queue's life, across laps. */
static void test_positions_unique(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q;

	assert_int_equal(shmq_queue_create(f->r, "b.laps", &(struct shmq_queue_opts){ 3, 16, 0 }, &q), 0);
	for (int i = 0; i < 40; i++) {
		put_n(q, i, 1);
		begin_is(q, i, (uint64_t)i);
		assert_int_equal(shmq_queue_get_commit(q, (uint64_t)i), 0);
	}
	shmq_queue_close(q);
}

/* A window of begun messages, ended out of order; held slots stop puts;
 * an abort of all in flight gives the same sequence again, before newer
 * messages, and a plain get also takes given-back messages first. */
static void test_window_abort_order(void **state)
{
	struct tu_region *f = *state;
	struct shmq_queue_stats st;
	char buf[16];
	shmq_queue *q;

	assert_int_equal(shmq_queue_create(f->r, "b.window", &(struct shmq_queue_opts){ 5, 16, 0 }, &q), 0);
	put_n(q, 0, 5);
	for (int i = 0; i < 5; i++)
		begin_is(q, i, (uint64_t)i);
	assert_int_equal(shmq_queue_put(q, "x", 1, SHMQ_NOWAIT), -EAGAIN); /* all held */
	assert_int_equal(shmq_queue_get_commit(q, 0), 0); /* out of order: 1..4 still held */
	put_n(q, 5, 1);                                    /* slot 0 is free */
	/* the next put's slot (1) is held: held slots keep what they hold */
	assert_int_equal(shmq_queue_put(q, "x", 1, SHMQ_NOWAIT), -EAGAIN);
	/* give back 4, 2, 3, 1 in this order: they come back as 1, 2, 3, 4 */
	assert_int_equal(shmq_queue_get_abort(q, 4), 0);
	assert_int_equal(shmq_queue_get_abort(q, 2), 0);
	assert_int_equal(shmq_queue_get_abort(q, 3), 0);
	assert_int_equal(shmq_queue_get_abort(q, 1), 0);
	begin_is(q, 1, 1);
	begin_is(q, 2, 2);
	begin_is(q, 3, 3);
	begin_is(q, 4, 4);
	begin_is(q, 5, 5); /* then the newer one */
	/* again, all in flight at once */
	for (uint64_t p = 0; p < 6; p++)
		assert_int_equal(shmq_queue_get_abort(q, p), p == 0 ? -EINVAL : 0);
	begin_is(q, 1, 1);
	begin_is(q, 2, 2);
	/* plain gets take the given-back ones first too, and free them */
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), 2);
	assert_memory_equal(buf, "m3", 2);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), 2);
	assert_memory_equal(buf, "m4", 2);
	begin_is(q, 5, 5);
	assert_int_equal(shmq_queue_get_begin(q, &(const void *){ NULL }, &(uint64_t){ 0 },
					      SHMQ_NOWAIT), -EAGAIN);
	for (uint64_t p = 0; p < 6; p++)
		assert_int_equal(shmq_queue_get_commit(q, p), p == 1 || p == 2 || p == 5 ? 0 : -EINVAL);
	assert_int_equal(shmq_queue_stats(q, &st), 0);
	assert_int_equal(st.len, 0);
	put_n(q, 6, 5); /* every slot free again */
	shmq_queue_close(q);
}

/* A blocked begin wakes for an abort in another process. */
static void test_abort_wakes(void **state)
{
	struct tu_region *f = *state;
	const void *msg;
	uint64_t pos;
	shmq_queue *q;
	int pfd[2];
	pid_t pid;

	assert_int_equal(shmq_queue_create(f->r, "b.wake", &(struct shmq_queue_opts){ 4, 16, 0 }, &q), 0);
	put_n(q, 0, 1);
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *cr = tu_child_region(f->name);
		shmq_queue *cq;

		if (shmq_queue_open(cr, "b.wake", &cq) ||
		    shmq_queue_get_begin(cq, &msg, &pos, SHMQ_NOWAIT) != 2 || pos != 0 ||
		    write(pfd[1], "b", 1) != 1)
			_exit(1);
		tu_sleep_ns(50 * 1000 * 1000);
		_exit(shmq_queue_get_abort(cq, pos) ? 2 : 0);
	}
	assert_int_equal(read(pfd[0], &(char){ 0 }, 1), 1); /* the child holds it now */
	close(pfd[0]);
	close(pfd[1]);
	/* in flight in the child: not ours to end, and nothing to take */
	assert_int_equal(shmq_queue_get_commit(q, 0), -EINVAL);
	assert_int_equal(shmq_queue_get_abort(q, 0), -EINVAL);
	assert_int_equal(shmq_queue_get_begin(q, &msg, &pos, 5000000000), 2);
	assert_int_equal(pos, 0);
	assert_int_equal(tu_wait_child(pid), 0);
	assert_int_equal(shmq_queue_get_commit(q, 0), 0);
	shmq_queue_close(q);
}

/* sched_yield calls of this process: libshmq, linked in statically,
 * reaches this definition (the executable's comes first). */
static unsigned long yields;

int sched_yield(void)
{
	__atomic_add_fetch(&yields, 1, __ATOMIC_RELAXED); /* relaxed: a count read alone */
	return (int)syscall(SYS_sched_yield);
}

static unsigned long yields_now(void)
{
	return __atomic_load_n(&yields, __ATOMIC_RELAXED); /* relaxed: as above */
}

/* The bridge's begin (shmq__queue_get_begin_idle) sleeps at once on an
 * empty queue: no spin phase, so no sched_yield, where the public begin
 * spins first; it still wakes for a put, and times out. */
static void test_begin_idle(void **state)
{
	struct tu_region *f = *state;
	const void *msg;
	uint64_t pos;
	unsigned long y0;
	shmq_queue *q;
	pid_t pid;

	assert_int_equal(shmq_queue_create(f->r, "b.idle", &(struct shmq_queue_opts){ 4, 16, 0 }, &q), 0);
	assert_int_equal(shmq__queue_get_begin_idle(NULL, &msg, &pos, 0), -EINVAL);
	/* the counter works: the public begin spins (and yields) first,
	 * unless SHMQ_SPIN set a budget of its own */
	y0 = yields_now();
	/* 200 ms: it yields before the deadline, however late it got going */
	assert_int_equal(shmq_queue_get_begin(q, &msg, &pos, 200 * 1000 * 1000), -ETIMEDOUT);
	if (!getenv("SHMQ_SPIN"))
		assert_true(yields_now() > y0);
	y0 = yields_now();
	assert_int_equal(shmq__queue_get_begin_idle(q, &msg, &pos, 20 * 1000 * 1000), -ETIMEDOUT);
	assert_int_equal(yields_now(), y0);
	assert_int_equal(shmq__queue_get_begin_idle(q, &msg, &pos, SHMQ_NOWAIT), -EAGAIN);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *cr = tu_child_region(f->name);
		shmq_queue *cq;

		tu_sleep_ns(20 * 1000 * 1000);
		_exit(shmq_queue_open(cr, "b.idle", &cq) || shmq_queue_put(cq, "m7", 2, SHMQ_NOWAIT));
	}
	y0 = yields_now();
	assert_int_equal(shmq__queue_get_begin_idle(q, &msg, &pos, 5000000000), 2);
	assert_int_equal(yields_now(), y0);
	assert_memory_equal(msg, "m7", 2);
	assert_int_equal(pos, 0);
	assert_int_equal(tu_wait_child(pid), 0);
	assert_int_equal(shmq_queue_get_commit(q, pos), 0);
	shmq_queue_close(q);
}

/* A consumer of queue name, forked, begins n messages (2 bytes each, at
 * positions first, first + 1, ...), commits those whose bit is set in
 * commit, and is SIGKILLed holding the rest. */
static void holder_killed(struct tu_region *f, const char *name, uint64_t first, unsigned n,
			  unsigned commit)
{
	char c;
	int pfd[2];
	pid_t pid;

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *cr = tu_child_region(f->name);
		shmq_queue *cq;
		const void *msg;
		uint64_t pos;

		if (shmq_queue_open(cr, name, &cq))
			_exit(1);
		for (unsigned i = 0; i < n; i++)
			if (shmq_queue_get_begin(cq, &msg, &pos, SHMQ_NOWAIT) != 2 || pos != first + i)
				_exit(2);
		for (unsigned i = 0; i < n; i++)
			if ((commit >> i & 1) && shmq_queue_get_commit(cq, first + i))
				_exit(3);
		if (write(pfd[1], "k", 1) != 1)
			_exit(4);
		pause(); /* killed here */
		_exit(5);
	}
	assert_int_equal(read(pfd[0], &c, 1), 1);
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	close(pfd[0]);
	close(pfd[1]);
}

/* A consumer SIGKILLed while it holds begun messages: the next consumer
 * gets them again, same positions, before newer ones. */
static void test_dead_holder(void **state)
{
	struct tu_region *f = *state;
	struct shmq_queue_stats st;
	shmq_queue *q, *q2;
	char buf[16];

	assert_int_equal(shmq_queue_create(f->r, "b.dead", &(struct shmq_queue_opts){ 8, 16, 0 }, &q), 0);
	put_n(q, 0, 6);
	holder_killed(f, "b.dead", 0, 4, 1u << 1); /* holding 0, 2 and 3 */
	/* a handle that never began: its first begin looks for dead holders */
	assert_int_equal(shmq_queue_open(f->r, "b.dead", &q2), 0);
	begin_is(q2, 0, 0);
	begin_is(q2, 2, 2);
	begin_is(q2, 3, 3);
	begin_is(q2, 4, 4);
	assert_int_equal(shmq_queue_stats(q2, &st), 0);
	assert_int_equal(st.dropped, 0);
	for (uint64_t p = 0; p < 5; p++)
		assert_int_equal(shmq_queue_get_commit(q2, p), p == 1 ? -EINVAL : 0);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), 2);
	assert_memory_equal(buf, "m5", 2);
	shmq_queue_close(q2);
	shmq_queue_close(q);
}

/* A dead holder whose slot blocks a producer (the ring is full of held
 * messages): the producer's wait gives them back, and a plain get takes
 * them before anything newer. */
static void test_dead_holder_blocks_put(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q;
	char buf[16];
	pid_t pid;

	assert_int_equal(shmq_queue_create(f->r, "b.full", &(struct shmq_queue_opts){ 2, 16, 0 }, &q), 0);
	put_n(q, 0, 2);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *cr = tu_child_region(f->name);
		shmq_queue *cq;
		const void *msg;
		uint64_t pos;

		if (shmq_queue_open(cr, "b.full", &cq))
			_exit(1);
		for (int i = 0; i < 2; i++)
			if (shmq_queue_get_begin(cq, &msg, &pos, SHMQ_NOWAIT) != 2)
				_exit(2);
		raise(SIGKILL);
		_exit(3);
	}
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	/* the put waits behind slot 0 and, after a slice, gives the dead
	 * holder's messages back; they still fill the ring, so the put times
	 * out (no get ran yet: only the producer's look found them) */
	assert_int_equal(shmq_queue_put(q, "new", 3, 100 * 1000 * 1000), -ETIMEDOUT);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), 2);
	assert_memory_equal(buf, "m0", 2);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), 2);
	assert_memory_equal(buf, "m1", 2);
	assert_int_equal(shmq_queue_put(q, "new", 3, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), 3);
	assert_memory_equal(buf, "new", 3);
	shmq_queue_close(q);
}

/* A child that opens name, begins one message (it must be at want_pos),
 * tells us through the pipe and waits to be killed. */
static pid_t hold_one_and_wait(const char *region, const char *name, uint64_t want_pos, int *rfd)
{
	int pfd[2];
	char c;
	pid_t pid;

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shmq_region *cr = tu_child_region(region);
		shmq_queue *cq;
		const void *msg;
		uint64_t pos;

		close(pfd[0]);
		if (shmq_queue_open(cr, name, &cq))
			_exit(1);
		if (shmq_queue_get_begin(cq, &msg, &pos, SHMQ_NOWAIT) < 0 || pos != want_pos)
			_exit(2);
		if (write(pfd[1], "k", 1) != 1)
			_exit(3);
		pause(); /* killed here, holding want_pos */
		_exit(4);
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], &c, 1), 1);
	*rfd = pfd[0];
	return pid;
}

static void kill_holder(pid_t pid, int rfd)
{
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
	close(rfd);
}

/* A drained queue whose only message a dead holder took, and no more puts:
 * nothing at head, no producer to lap the slot.  A blocked getter's audit
 * (a handle that audited just before the death, so not its first look)
 * gives it back within a slice, to a plain get and to a get_begin. */
static void test_dead_holder_drained(void **state)
{
	struct tu_region *f = *state;
	const int64_t two_s = (int64_t)2000 * 1000 * 1000;
	struct shmq_queue_stats st;
	const void *msg;
	uint64_t pos = ~(uint64_t)0;
	char buf[16];
	shmq_queue *q;
	pid_t pid;
	int rfd;

	/* a blocking plain get */
	assert_int_equal(shmq_queue_create(f->r, "b.drain", &(struct shmq_queue_opts){ 4, 16, 0 }, &q), 0);
	put_n(q, 0, 1);
	pid = hold_one_and_wait(f->name, "b.drain", 0, &rfd);
	/* the holder lives: this handle's first audit finds nothing to do */
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), -EAGAIN);
	kill_holder(pid, rfd);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), two_s), 2);
	assert_memory_equal(buf, "m0", 2);
	assert_int_equal(shmq_queue_stats(q, &st), 0);
	assert_int_equal(st.dropped, 0);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), -EAGAIN);
	shmq_queue_close(q);

	/* a blocking get_begin: same position again */
	assert_int_equal(shmq_queue_create(f->r, "b.drain2", &(struct shmq_queue_opts){ 4, 16, 0 }, &q), 0);
	put_n(q, 0, 1);
	pid = hold_one_and_wait(f->name, "b.drain2", 0, &rfd);
	assert_int_equal(shmq_queue_get_begin(q, &msg, &pos, SHMQ_NOWAIT), -EAGAIN);
	kill_holder(pid, rfd);
	assert_int_equal(shmq_queue_get_begin(q, &msg, &pos, two_s), 2);
	assert_memory_equal(msg, "m0", 2);
	assert_int_equal(pos, 0);
	assert_int_equal(shmq_queue_get_commit(q, 0), 0);
	shmq_queue_close(q);
}

/* A shut-down queue whose only message a dead holder took: a consumer's
 * drain loop ends at its first -EPIPE, so that -EPIPE must not come while
 * the dead holder's message waits to go out again.  The handles here have
 * audited just before the death (their own look is not due for a slice),
 * and nothing blocks: no blocked getter's slice will find it.  Each kind
 * of get, and get_begin gives the same position. */
static void test_dead_holder_shutdown(void **state)
{
	struct tu_region *f = *state;
	const void *msg;
	uint64_t pos = ~(uint64_t)0;
	char buf[16];
	void *heap = NULL;
	size_t len = 0;
	struct iovec iov = { buf, sizeof(buf) };
	shmq_queue *q;
	pid_t pid;
	int rfd;

	for (int kind = 0; kind < 4; kind++) {
		char name[32];

		snprintf(name, sizeof(name), "b.shut%d", kind);
		assert_int_equal(shmq_queue_create(f->r, name, &(struct shmq_queue_opts){ 4, 16, 0 }, &q), 0);
		put_n(q, 0, 1);
		pid = hold_one_and_wait(f->name, name, 0, &rfd);
		/* the holder lives: this handle's first audit finds nothing */
		assert_int_equal(shmq_queue_get_begin(q, &msg, &pos, SHMQ_NOWAIT), -EAGAIN);
		kill_holder(pid, rfd);
		assert_int_equal(shmq_queue_shutdown(q), 0);
		switch (kind) {
		case 0:
			assert_int_equal(shmq_queue_get_begin(q, &msg, &pos, SHMQ_FOREVER), 2);
			assert_memory_equal(msg, "m0", 2);
			assert_int_equal(pos, 0);
			assert_int_equal(shmq_queue_get_commit(q, 0), 0);
			break;
		case 1:
			assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_FOREVER), 2);
			assert_memory_equal(buf, "m0", 2);
			break;
		case 2:
			assert_int_equal(shmq_queue_get_alloc(q, &heap, SHMQ_FOREVER), 2);
			assert_memory_equal(heap, "m0", 2);
			free(heap);
			break;
		default:
			assert_int_equal(shmq_queue_get_bulk(q, &iov, &len, 1, SHMQ_FOREVER), 1);
			assert_int_equal(len, 2);
			assert_memory_equal(buf, "m0", 2);
			break;
		}
		/* now drained: exactly once */
		assert_int_equal(shmq_queue_get_begin(q, &msg, &pos, SHMQ_FOREVER), -EPIPE);
		assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), -EPIPE);
		shmq_queue_close(q);
	}
}

/* A busy queue: every get_begin finds a message at once, so no get ever
 * blocks, and the producer stays far from lapping the dead holder's slot
 * (fewer puts than the capacity).  get_begin's own audit still gives the
 * message back, same position, within a bound (2 s here; a slice and
 * BEGIN_CLOCK_EVERY begins in the library). */
static void test_dead_holder_busy(void **state)
{
	struct tu_region *f = *state;
	const uint32_t cap = 1000, rounds = 900; /* window cap + 2 <= AUDIT_SPAN */
	const int64_t until = shmq_now_ns() + (int64_t)2000 * 1000 * 1000;
	struct shmq_queue_stats st;
	const void *msg;
	uint64_t pos;
	shmq_queue *q;
	bool again = false;
	uint32_t i;
	pid_t pid;
	int rfd;

	assert_int_equal(shmq_queue_create(f->r, "b.busy", &(struct shmq_queue_opts){ cap, 16, 0 }, &q), 0);
	put_n(q, 0, 4);
	pid = hold_one_and_wait(f->name, "b.busy", 0, &rfd);
	begin_is(q, 1, 1); /* this handle's first audit: the holder lives */
	assert_int_equal(shmq_queue_get_commit(q, 1), 0);
	kill_holder(pid, rfd);
	for (i = 0; i < rounds && !again && shmq_now_ns() < until; i++) {
		char m[16];
		int len = snprintf(m, sizeof(m), "m%u", 4 + i);

		assert_int_equal(shmq_queue_put(q, m, (size_t)len, SHMQ_NOWAIT), 0);
		/* two or more queued: the begin never blocks */
		assert_true(shmq_queue_get_begin(q, &msg, &pos, SHMQ_NOWAIT) > 0);
		if (pos == 0) {
			assert_memory_equal(msg, "m0", 2);
			again = true;
		}
		assert_int_equal(shmq_queue_get_commit(q, pos), 0);
		usleep(1000);
	}
	assert_true(again);
	assert_int_equal(shmq_queue_stats(q, &st), 0);
	assert_int_equal(st.dropped, 0);
	shmq_queue_close(q);
}

/* A given-back message whose redo count was lost: the shared state an
 * aborting holder SIGKILLed between its mark of RETURNED and its increment
 * of redo leaves, and the state a scan that found nothing leaves when redo
 * went back to the value it read meanwhile (taken, then given back behind
 * the scan: its clear then wiped the new count).  Nothing laps the slot
 * (no more puts), so only a blocked getter can find it: every kind of get
 * still gets it, within a slice, not never. */
static void lost_redo_state(shmq_region *r, const char *name, shmq_queue **q)
{
	struct shmq__mpmc_shared *sh;
	uint64_t size;
	void *mem;

	assert_int_equal(shmq_queue_create(r, name, &(struct shmq_queue_opts){ 4, 16, 0 }, q), 0);
	assert_int_equal(shmq__obj_find(r, name, SHMQ__OBJ_QUEUE, &mem, &size), 0);
	sh = mem;
	put_n(*q, 0, 2);
	begin_is(*q, 0, 0);
	begin_is(*q, 1, 1);
	assert_int_equal(shmq_queue_get_abort(*q, 0), 0);
	assert_int_equal(shmq_queue_get_commit(*q, 1), 0);
	assert_int_equal(__atomic_load_n(&sh->redo, __ATOMIC_SEQ_CST), 1);
	__atomic_store_n(&sh->redo, 0, __ATOMIC_SEQ_CST); /* the count is lost */
}

static void test_lost_redo_count(void **state)
{
	struct tu_region *f = *state;
	const int64_t two_s = (int64_t)2000 * 1000 * 1000;
	const void *msg;
	uint64_t pos = ~(uint64_t)0;
	char buf[16];
	ssize_t n = -EAGAIN;
	int64_t until;
	shmq_queue *q;

	/* a blocking get_begin */
	lost_redo_state(f->r, "b.lost1", &q);
	assert_int_equal(shmq_queue_get_begin(q, &msg, &pos, two_s), 2);
	assert_memory_equal(msg, "m0", 2);
	assert_int_equal(pos, 0);
	assert_int_equal(shmq_queue_get_commit(q, 0), 0);
	assert_int_equal(shmq_queue_get_begin(q, &msg, &pos, SHMQ_NOWAIT), -EAGAIN);
	shmq_queue_close(q);
	/* a blocking plain get */
	lost_redo_state(f->r, "b.lost2", &q);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), two_s), 2);
	assert_memory_equal(buf, "m0", 2);
	shmq_queue_close(q);
	/* a poller: SHMQ_NOWAIT get_begins, up to 2 s (it takes a slice) */
	lost_redo_state(f->r, "b.lost3", &q);
	until = shmq_now_ns() + two_s;
	while (n == -EAGAIN && shmq_now_ns() < until) {
		n = shmq_queue_get_begin(q, &msg, &pos, SHMQ_NOWAIT);
		if (n == -EAGAIN)
			usleep(1000);
	}
	assert_int_equal(n, 2);
	assert_memory_equal(msg, "m0", 2);
	assert_int_equal(pos, 0);
	assert_int_equal(shmq_queue_get_commit(q, 0), 0);
	shmq_queue_close(q);
}

/* The identity a bridge builds message ids from: an incarnation that
 * differs for every queue laid out, also twice in the same memory. */
static void test_incarnation(void **state)
{
	struct tu_region *f = *state;
	struct shmq__queue_ident a, b, c;
	struct shmq_queue_opts o = { 4, 16, 0 };
	size_t size = shmq_queue_footprint(&o);
	void *mem = aligned_alloc(64, size);
	shmq_queue *q, *q2;

	assert_non_null(mem);
	assert_int_equal(shmq_queue_create(f->r, "b.ident", &o, &q), 0);
	assert_int_equal(shmq__queue_ident(NULL, &a), -EINVAL);
	assert_int_equal(shmq__queue_ident(q, &a), 0);
	assert_true(a.incarnation != 0);
	assert_int_equal(a.put, 0);
	assert_int_equal(a.get, 0);
	put_n(q, 0, 3);
	begin_is(q, 0, 0);
	assert_int_equal(shmq_queue_get_abort(q, 0), 0);
	assert_int_equal(shmq__queue_ident(q, &b), 0);
	assert_true(b.incarnation == a.incarnation);
	assert_int_equal(b.put, 3);
	assert_int_equal(b.get, 1);
	assert_int_equal(b.redo, 1);
	assert_int_equal(shmq_queue_open(f->r, "b.ident", &q2), 0);
	assert_int_equal(shmq__queue_ident(q2, &c), 0);
	assert_true(c.incarnation == a.incarnation);
	shmq_queue_close(q2);
	shmq_queue_close(q);
	/* placement: laid out twice in the same memory */
	assert_int_equal(shmq_queue_init(mem, size, &o, 0), 0);
	assert_int_equal(shmq_queue_attach(f->r, mem, size, &q), 0);
	assert_int_equal(shmq__queue_ident(q, &b), 0);
	shmq_queue_close(q);
	assert_int_equal(shmq_queue_init(mem, size, &o, 0), 0);
	assert_int_equal(shmq_queue_attach(f->r, mem, size, &q), 0);
	assert_int_equal(shmq__queue_ident(q, &c), 0);
	shmq_queue_close(q);
	assert_true(b.incarnation != c.incarnation && b.incarnation != a.incarnation);
	free(mem);
}

/* shmq stat's facts: open two-phase gets and whose they are. */
static void test_describe_holds(void **state)
{
	struct tu_region *f = *state;
	struct shmq__obj_stat st;
	const struct shmq__stat_kv *kv;
	uint64_t size;
	void *mem;
	shmq_queue *q;

	assert_int_equal(shmq_queue_create(f->r, "b.stat", &(struct shmq_queue_opts){ 4, 16, 0 }, &q), 0);
	assert_int_equal(shmq__obj_find(f->r, "b.stat", SHMQ__OBJ_QUEUE, &mem, &size), 0);
	put_n(q, 0, 4);
	begin_is(q, 0, 0);
	begin_is(q, 1, 1);
	begin_is(q, 2, 2);
	assert_int_equal(shmq_queue_get_abort(q, 1), 0);
	memset(&st, 0, sizeof(st));
	assert_int_equal(shmq__obj_describe(f->r, SHMQ__OBJ_QUEUE, mem, size, &st), 0);
	assert_int_equal(st.status, 0);
	assert_non_null(kv = shmq__stat_get(&st, "held"));
	assert_int_equal(kv->u, 2);
	assert_non_null(kv = shmq__stat_get(&st, "given_back"));
	assert_int_equal(kv->u, 1);
	assert_non_null(kv = shmq__stat_get(&st, "held1_pos"));
	assert_int_equal(kv->u, 2);
	assert_non_null(kv = shmq__stat_get(&st, "held0_pid"));
	assert_int_equal(kv->i, getpid());
	assert_non_null(kv = shmq__stat_get(&st, "held0_alive"));
	assert_int_equal(kv->u, 1);
	shmq_queue_close(q);
}

/* ---- positions across 2^64 ---- */

/* Move queue name's indices to start, as any writer of the region can,
 * with every slot EMPTY at the lap of its position in [start, start +
 * capacity): as if that many messages had gone through it. */
static void queue_at(shmq_region *r, const char *name, uint64_t start)
{
	struct shmq__mpmc_shared *sh;
	uint64_t size;
	void *mem;

	assert_int_equal(shmq__obj_find(r, name, SHMQ__OBJ_QUEUE, &mem, &size), 0);
	sh = mem;
	for (uint64_t p = start; p != start + sh->capacity; p++) {
		struct shmq__mpmc_slot *s = (struct shmq__mpmc_slot *)
			((uint8_t *)mem + sizeof(*sh) + (p % sh->capacity) * sh->slot_size);

		s->ctl = ((p / sh->capacity) & ((1u << 30) - 1)) << 2;
	}
	sh->head = sh->tail = start;
}

/* Two-phase gets at positions that straddle 2^64 (a power-of-two
 * capacity): each is committed or given back by its position.  Before, a
 * position just below 2^64 with head past the wrap was "not held" for
 * commit and abort (-EINVAL): the message stayed held by its live holder,
 * and its slot kept the producers out for good. */
static void test_commit_wrap(void **state)
{
	struct tu_region *f = *state;
	const uint64_t top = UINT64_MAX;
	shmq_queue *q;

	assert_int_equal(shmq_queue_create(f->r, "b.cwrap", &(struct shmq_queue_opts){ 4, 16, 0 }, &q), 0);
	queue_at(f->r, "b.cwrap", top - 1);
	put_n(q, 0, 4); /* positions 2^64 - 2, 2^64 - 1, 0, 1 */
	begin_is(q, 0, top - 1);
	begin_is(q, 1, top);
	begin_is(q, 2, 0);
	begin_is(q, 3, 1);
	assert_int_equal(shmq_queue_get_commit(q, top - 1), 0);
	assert_int_equal(shmq_queue_get_commit(q, top), 0);
	assert_int_equal(shmq_queue_get_commit(q, top), -EINVAL); /* done: no longer held */
	assert_int_equal(shmq_queue_get_abort(q, 0), 0);
	assert_int_equal(shmq_queue_get_commit(q, 1), 0);
	put_n(q, 4, 2); /* into the slots of 2^64 - 2 and 2^64 - 1 */
	begin_is(q, 2, 0); /* given back: first */
	begin_is(q, 4, 2);
	begin_is(q, 5, 3);
	for (uint64_t p = 0; p < 4; p++)
		assert_int_equal(shmq_queue_get_commit(q, p), p == 1 ? -EINVAL : 0);
	put_n(q, 6, 4); /* every slot free again */
	shmq_queue_close(q);
}

/* Begun messages whose positions straddle 2^64 (a power-of-two capacity:
 * slot and lap go on across the wrap), given back while head is past the
 * wrap: they come again first, lowest position first, and shmq stat
 * counts the holds.  Before, the scans of the positions behind head
 * started at 0 once head was below capacity + 2, missing those below
 * 2^64: shmq stat counted one hold of three, and a message given back
 * at 2^64 - 1 came again only after the newer ones. */
static void test_window_wrap(void **state)
{
	struct tu_region *f = *state;
	const uint64_t top = UINT64_MAX;
	struct shmq__obj_stat st;
	const struct shmq__stat_kv *kv;
	uint64_t size;
	void *mem;
	shmq_queue *q;

	assert_int_equal(shmq_queue_create(f->r, "b.wrap", &(struct shmq_queue_opts){ 4, 16, 0 }, &q), 0);
	queue_at(f->r, "b.wrap", top - 1);
	put_n(q, 0, 4); /* positions 2^64 - 2, 2^64 - 1, 0, 1 */
	begin_is(q, 0, top - 1);
	begin_is(q, 1, top);
	begin_is(q, 2, 0);
	assert_int_equal(shmq__obj_find(f->r, "b.wrap", SHMQ__OBJ_QUEUE, &mem, &size), 0);
	memset(&st, 0, sizeof(st));
	assert_int_equal(shmq__obj_describe(f->r, SHMQ__OBJ_QUEUE, mem, size, &st), 0);
	assert_int_equal(st.status, 0);
	assert_non_null(kv = shmq__stat_get(&st, "held"));
	assert_int_equal(kv->u, 3);
	assert_int_equal(shmq_queue_get_commit(q, top - 1), 0);
	assert_int_equal(shmq_queue_get_abort(q, top), 0);
	assert_int_equal(shmq_queue_get_abort(q, 0), 0);
	assert_int_equal(shmq_queue_get_commit(q, top), -EINVAL); /* given back: not ours */
	begin_is(q, 1, top); /* given back: first, lowest position first */
	begin_is(q, 2, 0);
	begin_is(q, 3, 1);
	assert_int_equal(shmq_queue_get_begin(q, &(const void *){ NULL }, &(uint64_t){ 0 },
					      SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(shmq_queue_get_commit(q, top), 0);
	assert_int_equal(shmq_queue_get_commit(q, 0), 0);
	assert_int_equal(shmq_queue_get_commit(q, 1), 0);
	assert_int_equal(shmq_queue_get_commit(q, 1), -EINVAL);
	put_n(q, 4, 4); /* every slot free again */
	shmq_queue_close(q);
}

/* A holder killed holding positions just below 2^64 once head has passed
 * the wrap: a handle's first begin finds them (the audit's window goes
 * across the wrap) and gives them out again before the newer message.
 * Before, the window started at position 0 and the dead holder's messages
 * came back only once producers lapped their slots. */
static void test_dead_holder_wrap(void **state)
{
	struct tu_region *f = *state;
	const uint64_t top = UINT64_MAX;
	shmq_queue *q, *q2;

	assert_int_equal(shmq_queue_create(f->r, "b.dwrap", &(struct shmq_queue_opts){ 8, 16, 0 }, &q), 0);
	queue_at(f->r, "b.dwrap", top - 1);
	put_n(q, 0, 3); /* positions 2^64 - 2, 2^64 - 1, 0 */
	holder_killed(f, "b.dwrap", top - 1, 2, 0); /* holding 2^64 - 2 and 2^64 - 1 */
	assert_int_equal(shmq_queue_open(f->r, "b.dwrap", &q2), 0);
	begin_is(q2, 0, top - 1);
	begin_is(q2, 1, top);
	begin_is(q2, 2, 0);
	assert_int_equal(shmq_queue_get_commit(q2, top - 1), 0);
	assert_int_equal(shmq_queue_get_commit(q2, top), 0);
	assert_int_equal(shmq_queue_get_commit(q2, 0), 0);
	shmq_queue_close(q2);
	shmq_queue_close(q);
}

/* A young queue with a window larger than one audit (capacity 2048): a
 * holder killed holding position 2 is found by a new handle's first begin,
 * the audit looking at the newest positions first (its window reaches
 * below position 0 there, where nothing can be held). */
static void test_dead_holder_big_ring(void **state)
{
	struct tu_region *f = *state;
	shmq_queue *q, *q2;

	assert_int_equal(shmq_queue_create(f->r, "b.dbig", &(struct shmq_queue_opts){ 2048, 16, 0 }, &q), 0);
	put_n(q, 0, 5);
	holder_killed(f, "b.dbig", 0, 3, 3u); /* holding position 2 */
	assert_int_equal(shmq_queue_open(f->r, "b.dbig", &q2), 0);
	begin_is(q2, 2, 2);
	begin_is(q2, 3, 3);
	for (uint64_t p = 2; p < 4; p++)
		assert_int_equal(shmq_queue_get_commit(q2, p), 0);
	shmq_queue_close(q2);
	shmq_queue_close(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uuid),
		cmocka_unit_test(test_uuid_old_layout),
		cmocka_unit_test(test_begin_errors),
		cmocka_unit_test(test_positions_unique),
		cmocka_unit_test(test_window_abort_order),
		cmocka_unit_test(test_abort_wakes),
		cmocka_unit_test(test_begin_idle),
		cmocka_unit_test(test_dead_holder),
		cmocka_unit_test(test_dead_holder_blocks_put),
		cmocka_unit_test(test_dead_holder_drained),
		cmocka_unit_test(test_dead_holder_shutdown),
		cmocka_unit_test(test_dead_holder_busy),
		cmocka_unit_test(test_lost_redo_count),
		cmocka_unit_test(test_incarnation),
		cmocka_unit_test(test_describe_holds),
		cmocka_unit_test(test_commit_wrap),
		cmocka_unit_test(test_window_wrap),
		cmocka_unit_test(test_dead_holder_wrap),
		cmocka_unit_test(test_dead_holder_big_ring),
	};

	return cmocka_run_group_tests(tests, setup, tu_region_teardown);
}
