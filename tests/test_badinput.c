/* SPDX-License-Identifier: MIT */
/*
 * Bad input everywhere: every public call with NULL handles and outputs
 * where a check is possible, zero and huge sizes, unterminated and overlong
 * names, closed and shut-down objects.  Each must return its documented
 * error (never crash), and the object involved must still work afterwards.
 *
 * Unterminated names are placed against a PROT_NONE guard page: a call that
 * reads a name past its documented maximum length faults.
 */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <sys/mman.h>

#include "testutil.h"

#define MS ((int64_t)1000000)

struct fixture {
	char name[96];
	shmq_region *r;
	uint8_t *guard_map; /* two pages: data, then PROT_NONE */
	size_t page;
};

static int setup_size(void **state, size_t size)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	tu_name(f->name, sizeof(f->name), "bad");
	if (shmq_region_create(f->name, &(struct shmq_region_opts){ .size = size }, &f->r))
		return -1;
	f->page = (size_t)sysconf(_SC_PAGESIZE);
	f->guard_map = mmap(NULL, 2 * f->page, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (f->guard_map == MAP_FAILED || mprotect(f->guard_map + f->page, f->page, PROT_NONE))
		return -1;
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_size(state, (size_t)1 << 20);
}

/* room for one object of every kind and a pool */
static int setup_big(void **state)
{
	return setup_size(state, (size_t)16 << 20);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	munmap(f->guard_map, 2 * f->page);
	shmq_region_close(f->r);
	shmq_region_unlink(f->name);
	free(f);
	return 0;
}

/* n valid name characters ending exactly at the guard page: no NUL. */
static const char *unterminated(struct fixture *f, size_t n)
{
	char *p = (char *)f->guard_map + f->page - n;

	memset(p, 'a', n);
	return p;
}

/* A NUL-terminated name of n characters. */
static const char *long_name(char *buf, size_t n)
{
	memset(buf, 'b', n);
	buf[n] = 0;
	return buf;
}

/* ---- regions ---- */

static void test_region(void **state)
{
	struct fixture *f = *state;
	char buf[512];
	shmq_region *r = NULL;
	void *mem;
	size_t size;

	assert_int_equal(shmq_region_create(f->name, NULL, NULL), -EINVAL);
	assert_int_equal(shmq_region_open(NULL, &r), -EINVAL);
	assert_int_equal(shmq_region_open(f->name, NULL), -EINVAL);
	assert_int_equal(shmq_region_unlink(NULL), -EINVAL);
	assert_int_equal(shmq_region_create(f->name, NULL, &r), -EEXIST);
	/* names: empty, bad characters, overlong, unterminated */
	assert_int_equal(shmq_region_create("", NULL, &r), -EINVAL);
	assert_int_equal(shmq_region_create("/", NULL, &r), -EINVAL);
	assert_int_equal(shmq_region_create("/a/b", NULL, &r), -EINVAL);
	assert_int_equal(shmq_region_create("sp ace", NULL, &r), -EINVAL);
	assert_int_equal(shmq_region_create(long_name(buf, SHMQ_NAME_MAX + 1), NULL, &r), -EINVAL);
	assert_int_equal(shmq_region_open(long_name(buf, 400), &r), -EINVAL);
	assert_int_equal(shmq_region_create(unterminated(f, SHMQ_NAME_MAX + 1), NULL, &r), -EINVAL);
	assert_int_equal(shmq_region_open(unterminated(f, SHMQ_NAME_MAX + 1), &r), -EINVAL);
	assert_int_equal(shmq_region_unlink(unterminated(f, SHMQ_NAME_MAX + 1)), -EINVAL);
	assert_int_equal(shmq_region_open("/shmq-test-bad-never-created", &r), -ENOENT);
	/* sizes: below the minimum, huge */
	assert_int_equal(shmq_region_create(NULL, &(struct shmq_region_opts){ .size = 1 }, &r),
			 -EINVAL);
	{
		int rc = shmq_region_create(NULL, &(struct shmq_region_opts){ .size = SIZE_MAX }, &r);

		assert_true(rc == -EINVAL || rc == -ENOMEM);
	}
	assert_int_equal(shmq_region_create(NULL, &(struct shmq_region_opts){ .flags = 0x80000000u },
					    &r),
			 -EINVAL);
	/* raw memory */
	assert_int_equal(shmq_region_alloc(f->r, "z", 0, &mem), -EINVAL);
	{
		int rc = shmq_region_alloc(f->r, "huge", SIZE_MAX, &mem);

		assert_true(rc == -ENOSPC || rc == -EINVAL);
	}
	assert_int_equal(shmq_region_alloc(f->r, "big", (size_t)1 << 30, &mem), -ENOSPC);
	assert_int_equal(shmq_region_alloc(f->r, long_name(buf, SHMQ_OBJ_NAME_MAX + 1), 8, &mem),
			 -EINVAL);
	assert_int_equal(shmq_region_alloc(f->r, unterminated(f, SHMQ_OBJ_NAME_MAX + 1), 8, &mem),
			 -EINVAL);
	assert_int_equal(shmq_region_find(f->r, unterminated(f, SHMQ_OBJ_NAME_MAX + 1), &mem,
					  &size),
			 -EINVAL);
	assert_int_equal(shmq_region_alloc(f->r, "", 8, &mem), -EINVAL);
	assert_int_equal(shmq_region_find(f->r, "nothing", &mem, &size), -ENOENT);
	shmq_region_close(NULL);
	/* still usable */
	assert_int_equal(shmq_region_alloc(f->r, "ok", 8, &mem), 0);
	assert_int_equal(shmq_region_find(f->r, "ok", &mem, &size), 0);
	assert_true(size >= 8);
}

/* ---- locks ---- */

static void test_lock(void **state)
{
	struct fixture *f = *state;
	char buf[128];
	shmq_lock *l, *x = NULL;
	shmq_barrier *b;
	uint8_t raw[192] __attribute__((aligned(64))) = { 0 };

	assert_int_equal(shmq_lock_create(f->r, "l", &l), 0);
	assert_int_equal(shmq_lock_create(NULL, "x", &x), -EINVAL);
	assert_int_equal(shmq_lock_create(f->r, NULL, &x), -EINVAL);
	assert_int_equal(shmq_lock_create(f->r, "x", NULL), -EINVAL);
	assert_int_equal(shmq_lock_create(f->r, "l", &x), -EEXIST);
	assert_int_equal(shmq_lock_create(f->r, long_name(buf, SHMQ_OBJ_NAME_MAX + 1), &x), -EINVAL);
	assert_int_equal(shmq_lock_create(f->r, unterminated(f, SHMQ_OBJ_NAME_MAX + 1), &x),
			 -EINVAL);
	assert_int_equal(shmq_lock_open(f->r, unterminated(f, SHMQ_OBJ_NAME_MAX + 1), &x), -EINVAL);
	assert_int_equal(shmq_lock_open(f->r, "missing", &x), -ENOENT);
	assert_int_equal(shmq_lock_open(NULL, "l", &x), -EINVAL);
	assert_int_equal(shmq_lock_open(f->r, "l", NULL), -EINVAL);
	assert_int_equal(shmq_barrier_create(f->r, "lb", 2, &b), 0);
	assert_int_equal(shmq_lock_open(f->r, "lb", &x), -EINVAL); /* another type */
	shmq_barrier_close(b);
	assert_int_equal(shmq_lock_acquire(NULL, SHMQ_NOWAIT), -EINVAL);
	assert_int_equal(shmq_lock_release(NULL), -EINVAL);
	assert_false(shmq_lock_locked(NULL));
	shmq_lock_close(NULL);
	/* placement */
	assert_int_equal(shmq_lock_init(NULL), -EINVAL);
	assert_int_equal(shmq_lock_init(raw + 1), -EINVAL);
	assert_int_equal(shmq_lock_attach(f->r, NULL, &x), -EINVAL);
	assert_int_equal(shmq_lock_attach(f->r, raw + 1, &x), -EINVAL);
	assert_int_equal(shmq_lock_attach(f->r, raw, &x), -EBADMSG); /* never initialised */
	/* misuse of a good lock leaves it usable */
	assert_int_equal(shmq_lock_release(l), -EPERM);
	assert_int_equal(shmq_lock_acquire(l, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_lock_acquire(l, SHMQ_NOWAIT), -EDEADLK);
	assert_int_equal(shmq_lock_acquire(l, MS), -EDEADLK);
	assert_int_equal(shmq_lock_release(l), 0);
	assert_int_equal(shmq_lock_release(l), -EPERM);
	assert_int_equal(shmq_lock_acquire(l, -5), -EINVAL); /* only -1 is SHMQ_FOREVER */
	assert_false(shmq_lock_locked(l));
	shmq_lock_close(l);
}

/* ---- barriers ---- */

static void test_barrier(void **state)
{
	struct fixture *f = *state;
	shmq_barrier *b, *x = NULL;
	uint8_t raw[192] __attribute__((aligned(64))) = { 0 };

	assert_int_equal(shmq_barrier_create(f->r, "b0", 0, &x), -EINVAL);
	assert_int_equal(shmq_barrier_create(f->r, "b1", 65536, &x), -EINVAL);
	assert_int_equal(shmq_barrier_create(f->r, "b2", UINT_MAX, &x), -EINVAL);
	assert_int_equal(shmq_barrier_create(NULL, "b3", 2, &x), -EINVAL);
	assert_int_equal(shmq_barrier_create(f->r, NULL, 2, &x), -EINVAL);
	assert_int_equal(shmq_barrier_create(f->r, "b4", 2, NULL), -EINVAL);
	assert_int_equal(shmq_barrier_create(f->r, unterminated(f, SHMQ_OBJ_NAME_MAX + 1), 2, &x),
			 -EINVAL);
	assert_int_equal(shmq_barrier_open(f->r, "b0", &x), -ENOENT);
	assert_int_equal(shmq_barrier_wait(NULL, SHMQ_NOWAIT), -EINVAL);
	assert_int_equal(shmq_barrier_parties(NULL), 0);
	assert_int_equal(shmq_barrier_n_waiting(NULL), 0);
	assert_false(shmq_barrier_broken(NULL));
	assert_int_equal(shmq_barrier_abort(NULL), -EINVAL);
	assert_int_equal(shmq_barrier_reset(NULL), -EINVAL);
	shmq_barrier_close(NULL);
	assert_int_equal(shmq_barrier_init(NULL, 2), -EINVAL);
	assert_int_equal(shmq_barrier_init(raw, 0), -EINVAL);
	assert_int_equal(shmq_barrier_init(raw + 4, 2), -EINVAL);
	assert_int_equal(shmq_barrier_attach(NULL, &x), -EINVAL);
	assert_int_equal(shmq_barrier_attach(raw, &x), -EBADMSG);
	/* a broken barrier: -EPIPE until reset, then it works */
	assert_int_equal(shmq_barrier_create(f->r, "b", 2, &b), 0);
	assert_int_equal(shmq_barrier_wait(b, SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(shmq_barrier_wait(b, MS), -ETIMEDOUT);
	assert_int_equal(shmq_barrier_wait(b, MS), -EPIPE);
	assert_int_equal(shmq_barrier_abort(b), 0);
	assert_int_equal(shmq_barrier_wait(b, SHMQ_NOWAIT), -EPIPE);
	assert_int_equal(shmq_barrier_reset(b), 0);
	assert_int_equal(shmq_barrier_wait(b, SHMQ_NOWAIT), -EAGAIN);
	shmq_barrier_close(b);
	assert_int_equal(shmq_barrier_create(f->r, "one", 1, &b), 0);
	assert_int_equal(shmq_barrier_wait(b, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_barrier_wait(b, SHMQ_FOREVER), 0);
	shmq_barrier_close(b);
}

/* ---- queues ---- */

static void test_queue(void **state)
{
	struct fixture *f = *state;
	char buf[512], big[600] = { 0 };
	shmq_queue *q, *x = NULL;
	struct shmq_queue_stats st;

	assert_int_equal(shmq_queue_create(NULL, "x", NULL, &x), -EINVAL);
	assert_int_equal(shmq_queue_create(f->r, NULL, NULL, &x), -EINVAL);
	assert_int_equal(shmq_queue_create(f->r, "x", NULL, NULL), -EINVAL);
	assert_int_equal(shmq_queue_create(f->r, unterminated(f, SHMQ_OBJ_NAME_MAX + 1), NULL, &x),
			 -EINVAL);
	assert_int_equal(shmq_queue_create(f->r, "x",
					   &(struct shmq_queue_opts){ .capacity = UINT32_MAX }, &x),
			 -EINVAL);
	assert_int_equal(shmq_queue_create(f->r, "x",
					   &(struct shmq_queue_opts){ .capacity = SHMQ_QUEUE_MAX_CAPACITY + 1 },
					   &x),
			 -EINVAL);
	assert_int_equal(shmq_queue_create(f->r, "x",
					   &(struct shmq_queue_opts){ .max_msg = UINT32_MAX }, &x),
			 -EINVAL);
	{ /* fits the limits but not this 1 MiB region */
		int rc = shmq_queue_create(f->r, "x",
					   &(struct shmq_queue_opts){ .capacity = 1u << 20,
								      .max_msg = 1024 },
					   &x);

		assert_true(rc == -ENOSPC || rc == -EINVAL);
	}
	assert_int_equal(shmq_queue_open(f->r, "x", &x), -ENOENT);
	assert_int_equal(shmq_queue_open(f->r, unterminated(f, SHMQ_OBJ_NAME_MAX + 1), &x), -EINVAL);
	assert_int_equal(shmq_queue_create(f->r, "q",
					   &(struct shmq_queue_opts){ .capacity = 4, .max_msg = 512 },
					   &q),
			 0);
	assert_int_equal(shmq_queue_put(NULL, "a", 1, SHMQ_NOWAIT), -EINVAL);
	assert_int_equal(shmq_queue_get(NULL, buf, sizeof(buf), SHMQ_NOWAIT), -EINVAL);
	assert_int_equal(shmq_queue_shutdown(NULL), -EINVAL);
	assert_int_equal(shmq_queue_stats(NULL, &st), -EINVAL);
	assert_int_equal(shmq_queue_len(NULL), 0);
	shmq_queue_close(NULL);
	assert_int_equal(shmq_queue_put(q, NULL, 4, SHMQ_NOWAIT), -EINVAL);
	/* longer than max_msg: through the region's heap (issue 16) */
	{
		void *a = NULL;

		assert_int_equal(shmq_queue_put(q, big, sizeof(big), SHMQ_NOWAIT), 0);
		assert_int_equal(shmq_queue_get_alloc(q, &a, SHMQ_NOWAIT), (ssize_t)sizeof(big));
		free(a);
	}
	assert_int_equal(shmq_queue_put(q, big, SIZE_MAX, SHMQ_NOWAIT), -EMSGSIZE);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), MS), -ETIMEDOUT);
	/* too small a buffer: the message stays queued */
	assert_int_equal(shmq_queue_put(q, "hello", 5, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_queue_get(q, buf, 2, SHMQ_NOWAIT), -EMSGSIZE);
	assert_int_equal(shmq_queue_get(q, NULL, 0, SHMQ_NOWAIT), -EMSGSIZE);
	assert_int_equal(shmq_queue_len(q), 1);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), 5);
	/* full */
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(shmq_queue_put(q, "", 0, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_queue_put(q, "", 0, SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(shmq_queue_put(q, "", 0, MS), -ETIMEDOUT);
	/* shut down: puts refused, gets drain then -EPIPE, shutdown idempotent */
	assert_int_equal(shmq_queue_shutdown(q), 0);
	assert_int_equal(shmq_queue_shutdown(q), 0);
	assert_int_equal(shmq_queue_put(q, "", 0, SHMQ_NOWAIT), -EPIPE);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), -EPIPE);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_FOREVER), -EPIPE);
	assert_int_equal(shmq_queue_stats(q, &st), 0);
	assert_true(st.shut_down);
	shmq_queue_close(q);
	/* placement */
	assert_int_equal(shmq_queue_footprint(&(struct shmq_queue_opts){ .max_msg = UINT32_MAX }), 0);
	assert_int_equal(shmq_queue_footprint(
				 &(struct shmq_queue_opts){ .capacity = SHMQ_QUEUE_MAX_CAPACITY + 1 }), 0);
	/* the capacity is kept exactly: one slot more is one slot larger
	 * (where the claim words of both fill the same lines) */
	assert_int_equal(shmq_queue_footprint(&(struct shmq_queue_opts){ .capacity = 1023 }) -
				 shmq_queue_footprint(&(struct shmq_queue_opts){ .capacity = 1022 }),
			 shmq_queue_footprint(&(struct shmq_queue_opts){ .capacity = 2 }) -
				 shmq_queue_footprint(&(struct shmq_queue_opts){ .capacity = 1 }));
	assert_int_equal(shmq_queue_init(NULL, 4096, NULL, 0), -EINVAL);
	assert_int_equal(shmq_queue_attach(f->r, NULL, 4096, &x), -EINVAL);
	{
		static uint8_t qm[4096] __attribute__((aligned(64)));

		assert_int_equal(shmq_queue_attach(f->r, qm + 8, 4000, &x), -EINVAL);
		assert_int_equal(shmq_queue_attach(f->r, qm, 64, &x), -EINVAL);
	}
}

/* ---- pipes ---- */

static void test_pipe(void **state)
{
	struct fixture *f = *state;
	char buf[256];
	shmq_pipe *a, *b, *x = NULL;
	const void *msg;
	size_t len;
	void *slot;

	assert_int_equal(shmq_pipe_create(NULL, "x", NULL, &a, &b), -EINVAL);
	assert_int_equal(shmq_pipe_create(f->r, NULL, NULL, &a, &b), -EINVAL);
	assert_int_equal(shmq_pipe_create(f->r, "x", NULL, NULL, &b), -EINVAL);
	assert_int_equal(shmq_pipe_create(f->r, "x", NULL, &a, NULL), -EINVAL);
	assert_int_equal(shmq_pipe_create(f->r, unterminated(f, SHMQ_OBJ_NAME_MAX + 1), NULL, &a,
					  &b),
			 -EINVAL);
	assert_int_equal(shmq_pipe_create(f->r, "x",
					  &(struct shmq_pipe_opts){ .capacity = SIZE_MAX }, &a, &b),
			 -EINVAL);
	assert_int_equal(shmq_pipe_open(f->r, "x", 0, &x), -ENOENT);
	assert_int_equal(shmq_pipe_create(f->r, "p", &(struct shmq_pipe_opts){ .capacity = 256 },
					  &a, &b),
			 0);
	assert_int_equal(shmq_pipe_open(f->r, "p", 2, &x), -EINVAL);
	assert_int_equal(shmq_pipe_open(f->r, "p", -1, &x), -EINVAL);
	assert_int_equal(shmq_pipe_open(f->r, "p", 0, NULL), -EINVAL);
	assert_int_equal(shmq_pipe_send(NULL, "a", 1, SHMQ_NOWAIT), -EINVAL);
	assert_int_equal(shmq_pipe_recv(NULL, buf, sizeof(buf), SHMQ_NOWAIT), -EINVAL);
	assert_int_equal(shmq_pipe_peek(NULL, &msg, &len, SHMQ_NOWAIT), -EINVAL);
	assert_int_equal(shmq_pipe_consume(NULL), -EINVAL);
	assert_int_equal(shmq_pipe_reserve(NULL, 4, &slot, SHMQ_NOWAIT), -EINVAL);
	assert_int_equal(shmq_pipe_commit(NULL, 4, 0), -EINVAL);
	shmq_pipe_close(NULL);
	/* sizes */
	assert_int_equal(shmq_pipe_send(a, NULL, 4, SHMQ_NOWAIT), -EINVAL);
	assert_int_equal(shmq_pipe_send(a, buf, shmq_pipe_max_msg(a) + 1, SHMQ_NOWAIT), -EMSGSIZE);
	assert_int_equal(shmq_pipe_send(a, buf, SIZE_MAX, SHMQ_NOWAIT), -EMSGSIZE);
	assert_int_equal(shmq_pipe_reserve(a, SIZE_MAX, &slot, SHMQ_NOWAIT), -EMSGSIZE);
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), MS), -ETIMEDOUT);
	assert_int_equal(shmq_pipe_consume(b), -EINVAL); /* nothing peeked */
	assert_int_equal(shmq_pipe_commit(a, 4, 0), -EINVAL); /* nothing reserved */
	assert_int_equal(shmq_pipe_send(a, "hello", 5, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_pipe_recv(b, buf, 2, SHMQ_NOWAIT), -EMSGSIZE); /* stays queued */
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), SHMQ_NOWAIT), 5);
	assert_int_equal(shmq_pipe_send(a, "", 0, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_pipe_recv(b, NULL, 0, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_pipe_reserve(a, 8, &slot, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_pipe_commit(a, 9, 0), -EINVAL); /* longer than reserved */
	assert_int_equal(shmq_pipe_commit(a, 8, 0x100), -EINVAL); /* unknown flag */
	memcpy(slot, "reserved", 8);
	assert_int_equal(shmq_pipe_commit(a, 8, 0), 0);
	assert_int_equal(shmq_pipe_peek(b, &msg, &len, SHMQ_NOWAIT), 0);
	assert_int_equal(len, 8);
	assert_memory_equal(msg, "reserved", 8);
	assert_int_equal(shmq_pipe_consume(b), 0);
	/* a closed end (opened, then every handle closed: an end never opened
	 * counts as held by its live creator): the peer drains, then -EPIPE both
	 * ways, even with SHMQ_FOREVER; reopening is refused */
	assert_int_equal(shmq_pipe_open(f->r, "p", 0, &x), 0);
	assert_int_equal(shmq_pipe_send(a, "last", 4, SHMQ_NOWAIT), 0);
	shmq_pipe_close(a);
	shmq_pipe_close(x);
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), SHMQ_NOWAIT), 4);
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), SHMQ_NOWAIT), -EPIPE);
	assert_int_equal(shmq_pipe_recv(b, buf, sizeof(buf), SHMQ_FOREVER), -EPIPE);
	assert_int_equal(shmq_pipe_send(b, "x", 1, SHMQ_FOREVER), -EPIPE);
	assert_int_equal(shmq_pipe_open(f->r, "p", 0, &x), -EPIPE);
	shmq_pipe_close(b);
	/* placement */
	assert_int_equal(shmq_pipe_footprint(&(struct shmq_pipe_opts){ .capacity = SIZE_MAX }), 0);
	assert_int_equal(shmq_pipe_init(NULL, 4096, NULL), -EINVAL);
	assert_int_equal(shmq_pipe_attach(NULL, 4096, 0, &x), -EINVAL);
}

/* ---- threads, processes, subprocesses ---- */

static void *ret7(void *arg)
{
	(void)arg;
	return (void *)7;
}

static void test_thread(void **state)
{
	shmq_thread *t = NULL;
	void *ret = NULL;

	(void)state;
	assert_int_equal(shmq_thread_start(NULL, NULL, &t), -EINVAL);
	assert_int_equal(shmq_thread_start(ret7, NULL, NULL), -EINVAL);
	assert_int_equal(shmq_thread_join(NULL, SHMQ_NOWAIT, &ret), -EINVAL);
	assert_false(shmq_thread_is_alive(NULL));
	shmq_thread_close(NULL);
	assert_int_equal(shmq_thread_start(ret7, NULL, &t), 0);
	assert_int_equal(shmq_thread_join(t, 10000 * MS, &ret), 0);
	assert_ptr_equal(ret, (void *)7);
	shmq_thread_close(t);
}

static void test_proc(void **state)
{
	struct fixture *f = *state;
	char *const missing[] = { "/nonexistent/shmq-no-such-program", NULL };
	char *const empty[] = { NULL };
	shmq_proc *p = NULL;

	assert_int_equal(shmq_proc_spawn(f->r, "no_such_entry", NULL, 0, NULL, &p), -ENOENT);
	assert_int_equal(shmq_proc_spawn(f->r, NULL, NULL, 0, NULL, &p), -EINVAL);
	assert_int_equal(shmq_proc_spawn(f->r, "no_such_entry", NULL, 0, NULL, NULL), -EINVAL);
	assert_int_equal(shmq_proc_spawn(f->r, "no_such_entry", NULL, 16, NULL, &p), -EINVAL);
	assert_int_equal(shmq_proc_exec(f->r, NULL, NULL, &p), -EINVAL);
	assert_int_equal(shmq_proc_exec(f->r, empty, NULL, &p), -EINVAL);
	assert_int_equal(shmq_proc_exec(f->r, missing, NULL, &p), -ENOENT);
	assert_int_equal(shmq_proc_join(NULL, SHMQ_NOWAIT), -EINVAL);
	assert_false(shmq_proc_is_alive(NULL));
	assert_int_equal(shmq_proc_exitcode(NULL), -EINVAL);
	assert_int_equal(shmq_proc_kill(NULL, SIGKILL), -EINVAL);
	shmq_proc_close(NULL);
}

static void test_run(void **state)
{
	char *const missing[] = { "/nonexistent/shmq-no-such-program", NULL };
	char *const empty[] = { NULL };
	char *const ok[] = { "/bin/true", NULL };
	struct shmq_run_result res;

	(void)state;
	memset(&res, 0, sizeof(res));
	assert_int_equal(shmq_run(NULL, NULL, &res), -EINVAL);
	assert_int_equal(shmq_run(empty, NULL, &res), -EINVAL);
	assert_int_equal(shmq_run(ok, NULL, NULL), -EINVAL);
	assert_int_equal(shmq_run(missing, NULL, &res), -ENOENT);
	shmq_run_result_free(&res);
	shmq_run_result_free(NULL);
	assert_int_equal(shmq_run(ok, NULL, &res), 0);
	assert_int_equal(res.status, 0);
	shmq_run_result_free(&res);
}

/* ---- scheduler ---- */

static void noop(void *arg)
{
	(void)arg;
}

static void test_sched(void **state)
{
	shmq_sched *s = NULL;
	shmq_event *ev = NULL;

	(void)state;
	assert_int_equal(shmq_sched_create(NULL, NULL), -EINVAL);
	assert_int_equal(shmq_sched_create(NULL, &s), 0);
	assert_int_equal(shmq_sched_enter(NULL, 0, 0, noop, NULL, &ev), -EINVAL);
	assert_int_equal(shmq_sched_enter(s, 0, 0, NULL, NULL, &ev), -EINVAL);
	assert_int_equal(shmq_sched_cancel(s, NULL), -EINVAL);
	assert_int_equal(shmq_sched_cancel(NULL, NULL), -EINVAL);
	assert_int_equal(shmq_sched_watch_proc(s, NULL, noop, NULL), -EINVAL);
	assert_int_equal(shmq_sched_stop(NULL), -EINVAL);
	assert_int_equal(shmq_sched_queue(s, NULL, 0), 0);
	shmq_sched_destroy(NULL);
	/* still usable: an event in the past runs, a cancelled one is gone */
	assert_int_equal(shmq_sched_enter(s, 0, 0, noop, NULL, &ev), 0);
	assert_int_equal(shmq_sched_cancel(s, ev), 0);
	assert_int_equal(shmq_sched_enter(s, -1000, 0, noop, NULL, NULL), 0);
	assert_false(shmq_sched_empty(s));
	assert_int_equal(shmq_sched_run(s, false), -1);
	assert_true(shmq_sched_empty(s));
	shmq_sched_destroy(s);
}

/* ---- pools ---- */

static int twice(const void *in, void *out)
{
	*(uint32_t *)out = *(const uint32_t *)in * 2;
	return 0;
}
SHMQ_TASK(twice);

static void test_pool(void **state)
{
	struct fixture *f = *state;
	shmq_pool *p = NULL;
	shmq_async *a = NULL;
	uint32_t in[4] = { 1, 2, 3, 4 }, out[4] = { 0 };

	assert_int_equal(shmq_pool_create(NULL, NULL, &p), -EINVAL);
	assert_int_equal(shmq_pool_create(f->r, NULL, NULL), -EINVAL);
	assert_int_equal(shmq_pool_create(f->r, &(struct shmq_pool_opts){ .workers = 100000 }, &p),
			 -EINVAL);
	assert_int_equal(shmq_pool_create(f->r, &(struct shmq_pool_opts){ .workers = 1 }, &p), 0);
	assert_int_equal(shmq_pool_map(NULL, "twice", in, 4, out, 4, 4, SHMQ_FOREVER), -EINVAL);
	assert_int_equal(shmq_pool_map(p, NULL, in, 4, out, 4, 4, SHMQ_FOREVER), -EINVAL);
	assert_int_equal(shmq_pool_map(p, "no_such_task", in, 4, out, 4, 4, 10000 * MS), -ENOENT);
	assert_int_equal(shmq_pool_map(p, "twice", NULL, 4, out, 4, 4, 10000 * MS), -EINVAL);
	assert_int_equal(shmq_pool_map(p, "twice", in, 4, NULL, 4, 4, 10000 * MS), -EINVAL);
	assert_int_equal(shmq_pool_map(p, "twice", in, 4, out, 4, SIZE_MAX, 10000 * MS), -EINVAL);
	assert_int_equal(shmq_pool_map(p, "twice", in, SIZE_MAX, out, 4, 4, 10000 * MS), -EINVAL);
	assert_int_equal(shmq_pool_map(p, "twice", in, 4, out, 4, 0, 10000 * MS), 0);
	assert_int_equal(shmq_pool_map_async(p, "twice", in, 4, out, 4, 4, NULL), -EINVAL);
	assert_int_equal(shmq_async_wait(NULL, SHMQ_NOWAIT), -EINVAL);
	assert_int_equal(shmq_async_get(NULL, SHMQ_NOWAIT), -EINVAL);
	assert_false(shmq_async_ready(NULL));
	shmq_async_free(NULL);
	/* still usable */
	assert_int_equal(shmq_pool_map(p, "twice", in, 4, out, 4, 4, 10000 * MS), 0);
	assert_int_equal(out[3], 8);
	assert_int_equal(shmq_pool_apply_async(p, "twice", in, 4, out, 4, &a), 0);
	assert_int_equal(shmq_async_get(a, 10000 * MS), 0);
	shmq_async_free(a);
	/* closed: no new work */
	assert_int_equal(shmq_pool_close(p), 0);
	assert_int_equal(shmq_pool_map(p, "twice", in, 4, out, 4, 4, 10000 * MS), -EPIPE);
	assert_int_equal(shmq_pool_apply_async(p, "twice", in, 4, out, 4, &a), -EPIPE);
	assert_int_equal(shmq_pool_join(p, 10000 * MS), 0);
	assert_int_equal(shmq_pool_join(NULL, SHMQ_NOWAIT), -EINVAL);
	assert_int_equal(shmq_pool_close(NULL), -EINVAL);
	assert_int_equal(shmq_pool_terminate(NULL), -EINVAL);
	shmq_pool_free(p);
	shmq_pool_free(NULL);
}

/* ---- timeouts: a negative other than SHMQ_FOREVER is -EINVAL ---- */

static int exit_zero(shmq_region *r, const void *arg, size_t len)
{
	(void)r;
	(void)arg;
	(void)len;
	return 0;
}
SHMQ_ENTRY(exit_zero);

static void *seven(void *arg)
{
	(void)arg;
	return (void *)7;
}

struct notifier {
	shmq_cond *c;
	uint32_t stop;
};

/* Keeps notifying c, so that a pre-fix cond_wait that took -2 as "forever"
 * comes back (and the test reports it) instead of hanging. */
static void *notify_loop(void *arg)
{
	struct notifier *n = arg;

	while (!__atomic_load_n(&n->stop, __ATOMIC_SEQ_CST)) {
		shmq_cond_notify_all(n->c);
		usleep(1000);
	}
	return NULL;
}

static unsigned bad_timeout_fails;

/* Not fatal, so that one run lists every call that gets it wrong. */
#define EXPECT_EINVAL(call)                                                            \
	do {                                                                           \
		long long rc_ = (long long)(call);                                     \
		if (rc_ != -EINVAL) {                                                  \
			print_message("timeout %lld: %s gave %lld, not -EINVAL\n",     \
				      (long long)T, #call, rc_);                       \
			bad_timeout_fails++;                                           \
		}                                                                      \
	} while (0)

static void test_bad_timeouts(void **state)
{
	static const int64_t bad[] = { -2, INT64_MIN };
	struct fixture *f = *state;
	shmq_lock *l;
	shmq_barrier *b;
	shmq_flag *fl;
	shmq_cond *c;
	shmq_sem *sm;
	shmq_queue *q, *jq;
	shmq_pipe *p0, *p1;
	shmq_thread *t, *nt;
	shmq_proc *pr;
	shmq_pool *pool;
	shmq_async *a;
	shmq_iter *it;
	shmq_waitset *w;
	struct notifier n = { NULL, 0 };
	struct shmq_ready rd[2];
	struct shmq_run_result res;
	char *const true_argv[] = { "true", NULL };
	uint32_t v = 42, in[4] = { 1, 2, 3, 4 }, out[4] = { 0 }, aout = 0;
	char buf[64];
	size_t lens[1];
	struct iovec iov = { buf, sizeof(buf) }, piov = { &v, sizeof(v) };
	const void *msg;
	void *mem, *ret;
	uint64_t pos;
	size_t len;

	assert_int_equal(shmq_lock_create(f->r, "tl", &l), 0);
	assert_int_equal(shmq_barrier_create(f->r, "tb", 1, &b), 0);
	assert_int_equal(shmq_flag_create(f->r, "tf", &fl), 0);
	assert_int_equal(shmq_flag_set(fl), 0);
	assert_int_equal(shmq_cond_create(f->r, "tc", &c), 0);
	assert_int_equal(shmq_sem_create(f->r, "ts", 1, NULL, &sm), 0);
	assert_int_equal(shmq_queue_create(f->r, "tq", NULL, &q), 0);
	assert_int_equal(shmq_queue_put(q, &v, sizeof(v), SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_queue_create(f->r, "tj", &(struct shmq_queue_opts){
							      .flags = SHMQ_QUEUE_JOINABLE },
					   &jq),
			 0);
	assert_int_equal(shmq_pipe_create(f->r, "tp", NULL, &p0, &p1), 0);
	assert_int_equal(shmq_pipe_send(p0, &v, sizeof(v), SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_thread_start(seven, NULL, &t), 0);
	assert_int_equal(shmq_proc_spawn(f->r, "exit_zero", NULL, 0, NULL, &pr), 0);
	assert_int_equal(shmq_pool_create(f->r, &(struct shmq_pool_opts){ .workers = 1 }, &pool), 0);
	assert_int_equal(shmq_pool_apply_async(pool, "twice", in, 4, &aout, 4, &a), 0);
	assert_int_equal(shmq_pool_imap(pool, "twice", in, 4, 4, 4, 0, &it), 0);
	assert_int_equal(shmq_waitset_create(&w), 0);
	assert_int_equal(shmq_waitset_add_queue(w, q, SHMQ_READABLE, q), 0);
	n.c = c;
	assert_int_equal(shmq_thread_start(notify_loop, &n, &nt), 0);
	assert_int_equal(shmq_lock_acquire(l, SHMQ_NOWAIT), 0); /* for cond_wait */

	bad_timeout_fails = 0;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t T = bad[i];

		EXPECT_EINVAL(shmq_cond_wait(c, l, T));
		EXPECT_EINVAL(shmq_lock_acquire(l, T)); /* held: -EDEADLK before */
		EXPECT_EINVAL(shmq_barrier_wait(b, T));
		EXPECT_EINVAL(shmq_flag_wait(fl, T));
		EXPECT_EINVAL(shmq_sem_acquire(sm, T));
		EXPECT_EINVAL(shmq_queue_put(q, &v, sizeof(v), T));
		EXPECT_EINVAL(shmq_queue_get(q, buf, sizeof(buf), T));
		EXPECT_EINVAL(shmq_queue_get_alloc(q, &mem, T));
		EXPECT_EINVAL(shmq_queue_get_begin(q, &msg, &pos, T));
		EXPECT_EINVAL(shmq_queue_put_bulk(q, &piov, 1, T));
		EXPECT_EINVAL(shmq_queue_get_bulk(q, &iov, lens, 1, T));
		EXPECT_EINVAL(shmq_queue_join(jq, T));
		EXPECT_EINVAL(shmq_pipe_send(p0, &v, sizeof(v), T));
		EXPECT_EINVAL(shmq_pipe_send_bulk(p0, &piov, 1, T));
		EXPECT_EINVAL(shmq_pipe_reserve(p0, sizeof(v), &mem, T));
		EXPECT_EINVAL(shmq_pipe_recv(p1, buf, sizeof(buf), T));
		EXPECT_EINVAL(shmq_pipe_recv_bulk(p1, buf, sizeof(buf), lens, 1, T));
		EXPECT_EINVAL(shmq_pipe_peek(p1, &msg, &len, T));
		EXPECT_EINVAL(shmq_thread_join(t, T, &ret));
		EXPECT_EINVAL(shmq_proc_communicate(pr, NULL, 0, &res, T));
		EXPECT_EINVAL(shmq_proc_join(pr, T));
		EXPECT_EINVAL(shmq_run(true_argv, &(struct shmq_run_opts){ .timeout_ns = T }, &res));
		EXPECT_EINVAL(shmq_pool_map(pool, "twice", in, 4, out, 4, 4, T));
		EXPECT_EINVAL(shmq_async_wait(a, T));
		EXPECT_EINVAL(shmq_async_get(a, T));
		EXPECT_EINVAL(shmq_iter_next(it, &v, T));
		EXPECT_EINVAL(shmq_waitset_wait(w, rd, 2, T));
	}
	__atomic_store_n(&n.stop, 1, __ATOMIC_SEQ_CST);
	assert_int_equal(shmq_thread_join(nt, SHMQ_FOREVER, &ret), 0);
	shmq_thread_close(nt);

	/* nothing changed: every object is as it was */
	assert_true(shmq_lock_locked(l));
	assert_int_equal(shmq_lock_release(l), 0);
	assert_false(shmq_lock_locked(l));
	assert_int_equal(shmq_barrier_n_waiting(b), 0);
	assert_false(shmq_barrier_broken(b));
	assert_true(shmq_flag_is_set(fl));
	assert_int_equal(shmq_sem_value(sm), 1);
	assert_int_equal(shmq_queue_len(q), 1);
	assert_int_equal(shmq_waitset_wait(w, rd, 2, SHMQ_NOWAIT), 1);
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), (ssize_t)sizeof(v));
	assert_int_equal(shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(shmq_pipe_recv(p1, buf, sizeof(buf), SHMQ_NOWAIT), (ssize_t)sizeof(v));
	assert_int_equal(shmq_pipe_recv(p1, buf, sizeof(buf), SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(shmq_thread_join(t, SHMQ_FOREVER, &ret), 0);
	assert_ptr_equal(ret, (void *)7);
	assert_int_equal(shmq_proc_join(pr, SHMQ_FOREVER), 0);
	assert_int_equal(out[0], 0); /* the map did not run */
	assert_int_equal(shmq_async_get(a, SHMQ_FOREVER), 0);
	assert_int_equal(aout, 2);
	for (int k = 0; k < 4; k++)
		assert_int_equal(shmq_iter_next(it, &v, SHMQ_FOREVER), k);
	assert_int_equal(shmq_iter_next(it, &v, SHMQ_FOREVER), -EPIPE);
	assert_int_equal(bad_timeout_fails, 0);

	shmq_iter_free(it);
	shmq_async_free(a);
	assert_int_equal(shmq_pool_close(pool), 0);
	assert_int_equal(shmq_pool_join(pool, -2), -EINVAL);
	assert_int_equal(shmq_pool_join(pool, INT64_MIN), -EINVAL);
	assert_int_equal(shmq_pool_join(pool, SHMQ_FOREVER), 0);
	shmq_pool_free(pool);
	shmq_waitset_free(w);
	shmq_proc_close(pr);
	shmq_thread_close(t);
	shmq_pipe_close(p0);
	shmq_pipe_close(p1);
	shmq_queue_close(jq);
	shmq_queue_close(q);
	shmq_sem_close(sm);
	shmq_cond_close(c);
	shmq_flag_close(fl);
	shmq_barrier_close(b);
	shmq_lock_close(l);
}

/* ---- a create whose handle cannot be allocated ---- */

/* Without a sanitizer and without jemalloc (each brings its own malloc and
 * free, which memory from __libc_malloc must not reach): the calling
 * thread's next malloc or calloc can be made to fail. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define OWN_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
	__has_feature(memory_sanitizer)
#define OWN_MALLOC 1
#endif
#endif
#if !defined(OWN_MALLOC) && !defined(SHMQ_USE_JEMALLOC)
#define FAIL_ALLOC 1
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
static __thread bool fail_alloc, alloc_failed;

void *malloc(size_t n)
{
	if (fail_alloc) {
		fail_alloc = false;
		alloc_failed = true;
		errno = ENOMEM;
		return NULL;
	}
	return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
	if (fail_alloc) {
		fail_alloc = false;
		alloc_failed = true;
		errno = ENOMEM;
		return NULL;
	}
	return __libc_calloc(n, size);
}
#endif

/* A named create that fails for want of private memory (-ENOMEM) leaves no
 * object behind: the name stays free, and the same create succeeds once
 * memory is back.  The region has no free, so an object made before the
 * handle's allocation failed would also keep its space for ever. */
static void test_create_enomem_leaves_nothing(void **state)
{
#ifdef FAIL_ALLOC
	struct fixture *f = *state;
	shmq_region *r = f->r;
	void *h = NULL, *h2 = NULL;
	int rc;

	for (int kind = 0; kind < 5; kind++) {
		static const char *const names[5] = { "oom.lock", "oom.barrier", "oom.flag",
						      "oom.cond", "oom.sem" };
		const char *n = names[kind];

		fail_alloc = true;
		alloc_failed = false;
		switch (kind) {
		case 0: rc = shmq_lock_create(r, n, (shmq_lock **)&h); break;
		case 1: rc = shmq_barrier_create(r, n, 2, (shmq_barrier **)&h); break;
		case 2: rc = shmq_flag_create(r, n, (shmq_flag **)&h); break;
		case 3: rc = shmq_cond_create(r, n, (shmq_cond **)&h); break;
		default: rc = shmq_sem_create(r, n, 1, NULL, (shmq_sem **)&h); break;
		}
		fail_alloc = false;
		if (!alloc_failed) { /* no malloc on the way: nothing to test */
			assert_int_equal(rc, 0);
			continue;
		}
		assert_int_equal(rc, -ENOMEM);
		/* the name is still free: opening finds nothing, creating works */
		switch (kind) {
		case 0:
			assert_int_equal(shmq_lock_open(r, n, (shmq_lock **)&h), -ENOENT);
			assert_int_equal(shmq_lock_create(r, n, (shmq_lock **)&h), 0);
			assert_int_equal(shmq_lock_open(r, n, (shmq_lock **)&h2), 0);
			shmq_lock_close(h2);
			shmq_lock_close(h);
			break;
		case 1:
			assert_int_equal(shmq_barrier_open(r, n, (shmq_barrier **)&h), -ENOENT);
			assert_int_equal(shmq_barrier_create(r, n, 2, (shmq_barrier **)&h), 0);
			shmq_barrier_close(h);
			break;
		case 2:
			assert_int_equal(shmq_flag_open(r, n, (shmq_flag **)&h), -ENOENT);
			assert_int_equal(shmq_flag_create(r, n, (shmq_flag **)&h), 0);
			shmq_flag_close(h);
			break;
		case 3:
			assert_int_equal(shmq_cond_open(r, n, (shmq_cond **)&h), -ENOENT);
			assert_int_equal(shmq_cond_create(r, n, (shmq_cond **)&h), 0);
			shmq_cond_close(h);
			break;
		default:
			assert_int_equal(shmq_sem_open(r, n, (shmq_sem **)&h), -ENOENT);
			assert_int_equal(shmq_sem_create(r, n, 1, NULL, (shmq_sem **)&h), 0);
			shmq_sem_close(h);
			break;
		}
	}
#else
	(void)state;
	skip(); /* a sanitizer's or jemalloc's malloc: no failure to inject */
#endif
}

/* The same for a queue and a pipe (whose create makes two handles). */
static void test_create_enomem_chan(void **state)
{
#ifdef FAIL_ALLOC
	struct fixture *f = *state;
	shmq_region *r = f->r;
	shmq_queue *q, *q2;
	shmq_pipe *p0, *p1, *p2;
	int rc;

	fail_alloc = true;
	alloc_failed = false;
	rc = shmq_queue_create(r, "oom.queue", NULL, &q);
	fail_alloc = false;
	if (alloc_failed) {
		assert_int_equal(rc, -ENOMEM);
		assert_int_equal(shmq_queue_open(r, "oom.queue", &q), -ENOENT);
		assert_int_equal(shmq_queue_create(r, "oom.queue", NULL, &q), 0);
	} else {
		assert_int_equal(rc, 0);
	}
	assert_int_equal(shmq_queue_open(r, "oom.queue", &q2), 0);
	assert_int_equal(shmq_queue_put(q, "x", 1, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_queue_get(q2, (char[8]){ 0 }, 8, SHMQ_NOWAIT), 1);
	shmq_queue_close(q2);
	shmq_queue_close(q);

	fail_alloc = true;
	alloc_failed = false;
	rc = shmq_pipe_create(r, "oom.pipe", NULL, &p0, &p1);
	fail_alloc = false;
	if (alloc_failed) {
		assert_int_equal(rc, -ENOMEM);
		assert_int_equal(shmq_pipe_open(r, "oom.pipe", 1, &p2), -ENOENT);
		assert_int_equal(shmq_pipe_create(r, "oom.pipe", NULL, &p0, &p1), 0);
	} else {
		assert_int_equal(rc, 0);
	}
	assert_int_equal(shmq_pipe_send(p0, "x", 1, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_pipe_recv(p1, (char[8]){ 0 }, 8, SHMQ_NOWAIT), 1);
	shmq_pipe_close(p1);
	shmq_pipe_close(p0);
#else
	(void)state;
	skip(); /* a sanitizer's or jemalloc's malloc: no failure to inject */
#endif
}

/* ---- errors and misc ---- */

/* libshmq(3): a call that fails leaves its output pointers as they were:
 * no handle, no pointer into the region, no position is handed out. */
#define POISON ((void *)(uintptr_t)0x5a5a5a5a)
#define UNTOUCHED(call, var)                                     \
	do {                                                     \
		var = POISON;                                    \
		assert_true((call) < 0);                         \
		assert_ptr_equal((void *)(var), POISON);         \
	} while (0)

static void test_out_untouched_on_failure(void **state)
{
	struct fixture *f = *state;
	char *missing[] = { "/nonexistent/shmq-test-program", NULL };
	shmq_region *r;
	shmq_lock *l;
	shmq_barrier *b;
	shmq_flag *fl;
	shmq_cond *c;
	shmq_sem *s;
	shmq_pipe *p0, *p1;
	shmq_queue *q;
	shmq_thread *t;
	shmq_proc *pr;
	shmq_pool *po;
	shmq_sched *sc;
	shmq_event *ev;
	const void *cm;
	void *m;
	uint64_t pos = 77;
	size_t len = 77;

	UNTOUCHED(shmq_region_create("bad/name", NULL, &r), r);
	UNTOUCHED(shmq_region_create(f->name, NULL, &r), r);
	UNTOUCHED(shmq_region_open("/shmq-test-bad-never-created", &r), r);
	UNTOUCHED(shmq_region_open_flags("/shmq-test-bad-never-created", 0, &r), r);
	UNTOUCHED(shmq_region_alloc(f->r, "", 8, &m), m);
	assert_int_equal(shmq_region_alloc(f->r, "taken", 8, &m), 0);
	UNTOUCHED(shmq_region_alloc(f->r, "taken", 8, &m), m);
	UNTOUCHED(shmq_region_find(f->r, "nothing", &m, NULL), m);
	UNTOUCHED(shmq_lock_create(f->r, "taken", &l), l);
	UNTOUCHED(shmq_lock_open(f->r, "taken", &l), l);
	UNTOUCHED(shmq_barrier_create(f->r, "b", 0, &b), b);
	UNTOUCHED(shmq_barrier_open(f->r, "nothing", &b), b);
	UNTOUCHED(shmq_flag_create(f->r, "taken", &fl), fl);
	UNTOUCHED(shmq_flag_open(f->r, "nothing", &fl), fl);
	UNTOUCHED(shmq_cond_create(f->r, "taken", &c), c);
	UNTOUCHED(shmq_cond_open(f->r, "nothing", &c), c);
	UNTOUCHED(shmq_sem_create(f->r, "taken", 0, NULL, &s), s);
	UNTOUCHED(shmq_sem_open(f->r, "nothing", &s), s);
	p1 = POISON;
	UNTOUCHED(shmq_pipe_create(f->r, "taken", NULL, &p0, &p1), p0);
	assert_ptr_equal((void *)p1, POISON);
	UNTOUCHED(shmq_pipe_open(f->r, "nothing", 0, &p0), p0);
	UNTOUCHED(shmq_queue_create(f->r, "taken", NULL, &q), q);
	UNTOUCHED(shmq_queue_open(f->r, "nothing", &q), q);
	/* the in-place and out-of-place gets of an empty queue, a pipe's calls */
	assert_int_equal(shmq_queue_create(f->r, "q", NULL, &q), 0);
	UNTOUCHED(shmq_queue_get_alloc(q, &m, SHMQ_NOWAIT), m);
	UNTOUCHED(shmq_queue_get_begin(q, &cm, &pos, SHMQ_NOWAIT), cm);
	assert_int_equal(pos, 77);
	shmq_queue_close(q);
	assert_int_equal(shmq_pipe_create(f->r, "p", NULL, &p0, &p1), 0);
	UNTOUCHED(shmq_pipe_reserve(p0, (size_t)1 << 30, &m, SHMQ_NOWAIT), m);
	UNTOUCHED(shmq_pipe_peek(p1, &cm, &len, SHMQ_NOWAIT), cm);
	assert_int_equal(len, 77);
	shmq_pipe_close(p0);
	shmq_pipe_close(p1);
	/* runtime */
	UNTOUCHED(shmq_thread_start(NULL, NULL, &t), t);
	UNTOUCHED(shmq_proc_spawn(f->r, "no_such_entry", NULL, 0, NULL, &pr), pr);
	UNTOUCHED(shmq_proc_exec(f->r, missing, NULL, &pr), pr);
	UNTOUCHED(shmq_pool_create(f->r, &(struct shmq_pool_opts){ .workers = SHMQ_POOL_MAX_WORKERS + 1 },
				   &po),
		  po);
	UNTOUCHED(shmq_sched_create(&(struct shmq_sched_opts){ .spin_ns = -1 }, &sc), sc);
	assert_int_equal(shmq_sched_create(NULL, &sc), 0);
	UNTOUCHED(shmq_sched_enter(sc, 0, 0, NULL, NULL, &ev), ev);
	shmq_sched_destroy(sc);
}

static void test_misc(void **state)
{
	(void)state;
	assert_non_null(shmq_strerror(0));
	assert_non_null(shmq_strerror(-EBADMSG));
	assert_non_null(shmq_strerror(INT_MIN));
	assert_non_null(shmq_strerror(INT_MAX));
	assert_non_null(shmq_version());
	assert_true(shmq_now_ns() > 0);
	assert_int_equal(shmq_region_info(NULL, NULL), -EINVAL);
}

/* ---- issue 14 item 12: every errno the library returns has a name ---- */

/* The errno spelled name (an "Exxx" token of lib/), or 0. */
static int errno_by_name(const char *name)
{
	static const struct { const char *alias; int e; } aliases[] = {
		{ "EWOULDBLOCK", EWOULDBLOCK }, { "EDEADLOCK", EDEADLOCK }, { "ENOTSUP", ENOTSUP },
	};

	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
		if (strcmp(name, aliases[i].alias) == 0)
			return aliases[i].e;
	for (int e = 1; e < 4096; e++) {
		const char *n = strerrorname_np(e);

		if (n && strcmp(n, name) == 0)
			return e;
	}
	return 0;
}

/* Every "-Exxx" in the file (the library's own returns): each must be a real
 * errno with a name of its own in shmq_strerror.  Returns how many. */
static int scan_file(const char *path)
{
	static char buf[1 << 20];
	FILE *f = fopen(path, "r");
	size_t n;
	int found = 0;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	for (char *p = buf; (p = strstr(p, "-E")); p++) {
		char name[32];
		size_t k = 0;
		int e;

		while (k < sizeof(name) - 1 && ((p[1 + k] >= 'A' && p[1 + k] <= 'Z') ||
						(p[1 + k] >= '0' && p[1 + k] <= '9')))
			name[k] = p[1 + k], k++;
		name[k] = '\0';
		if (k < 3 || (p > buf && (isalnum((unsigned char)p[-1]) || p[-1] == '_')))
			continue; /* not a negated errno: -E alone, or part of a word */
		e = errno_by_name(name);
		if (!e)
			continue; /* a macro of ours that starts with E */
		if (strcmp(shmq_strerror(-e), "unknown error") == 0)
			print_message("%s: %s has no name\n", path, name);
		assert_string_not_equal(shmq_strerror(-e), "unknown error");
		found++;
	}
	return found;
}

static int scan_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int found = 0;

	assert_non_null(d);
	while ((de = readdir(d))) {
		char path[PATH_MAX];
		size_t len = strlen(de->d_name);

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (de->d_type == DT_DIR)
			found += scan_dir(path);
		else if (len > 2 && de->d_name[len - 2] == '.' &&
			 (de->d_name[len - 1] == 'c' || de->d_name[len - 1] == 'h'))
			found += scan_file(path);
	}
	closedir(d);
	return found;
}

static void test_strerror_names_all(void **state)
{
	/* What the system calls the library makes return unchanged (-errno):
	 * open/shm_open (a dangling link in /dev/shm: ELOOP), mmap, ftruncate,
	 * fallocate, memfd_create, pipe2, socketpair, eventfd, timerfd, epoll,
	 * pidfd_open, io_uring_setup, posix_spawn (and its chdir), futex. */
	static const int passed_through[] = {
		EMFILE, ENFILE, ELOOP, ENOTDIR, EISDIR, ENAMETOOLONG, EROFS, EDQUOT, EFBIG,
		ENODEV, ENXIO, E2BIG, ENOEXEC, ETXTBSY, EINTR, EIO, EFAULT, EOPNOTSUPP,
		EAFNOSUPPORT, ECONNRESET, ESTALE, EOVERFLOW, EPERM, EACCES, ENOSYS, ESRCH,
		ECHILD, EBADF, ENOMEM, EAGAIN, ENOSPC, EEXIST, ENOENT, EINVAL,
	};
	const char *src = getenv("srcdir"); /* automake's harness sets it */
	char lib[PATH_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof(passed_through) / sizeof(passed_through[0]); i++) {
		if (strcmp(shmq_strerror(-passed_through[i]), "unknown error") == 0)
			print_message("%s has no name\n", strerrorname_np(passed_through[i]));
		assert_string_not_equal(shmq_strerror(-passed_through[i]), "unknown error");
	}
	snprintf(lib, sizeof(lib), "%s/lib", src ? src : ".");
	assert_true(scan_dir(lib) > 100); /* the library's own, found by reading it */
	/* Distinct names: the two the attacker met, and a few neighbours. */
	assert_string_not_equal(shmq_strerror(-EMFILE), shmq_strerror(-ENFILE));
	assert_string_not_equal(shmq_strerror(-ELOOP), shmq_strerror(-ENOENT));
	assert_string_equal(shmq_strerror(-4095), "unknown error");
	{
		/* the attacker's case: a dangling symbolic link in /dev/shm */
		char name[64], path[96];
		shmq_region *r = NULL;
		int rc;

		snprintf(name, sizeof(name), "/shmq-test-dangle-%d", (int)getpid());
		snprintf(path, sizeof(path), "/dev/shm%s", name);
		assert_int_equal(symlink("/nonexistent/shmq-test", path), 0);
		rc = shmq_region_open(name, &r);
		unlink(path);
		assert_true(rc < 0);
		assert_null(r);
		assert_string_not_equal(shmq_strerror(rc), "unknown error");
	}
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_region, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_barrier, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipe, setup, teardown),
		cmocka_unit_test(test_thread),
		cmocka_unit_test_setup_teardown(test_proc, setup, teardown),
		cmocka_unit_test(test_run),
		cmocka_unit_test(test_sched),
		cmocka_unit_test_setup_teardown(test_pool, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_timeouts, setup_big, teardown),
		cmocka_unit_test_setup_teardown(test_create_enomem_leaves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_enomem_chan, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_untouched_on_failure, setup, teardown),
		cmocka_unit_test(test_misc),
		cmocka_unit_test(test_strerror_names_all),
	};

	shmq_dispatch(argc, argv);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
