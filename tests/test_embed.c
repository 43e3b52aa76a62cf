/* SPDX-License-Identifier: MIT */
/*
 * The library embedded in a host program that calls it from its own
 * constructors (a C++ global object, a plugin's init) and is linked
 * statically: the linker runs the program's constructors before the
 * archive's, so the library must work before its own constructors have run.
 * This suite links libshmq.a (TEST_LINKFLAGS), and its constructor below is
 * the host's.  It never spawns: the constructor runs once, in this process.
 */
#include "config.h"

#include <errno.h>
#include <unistd.h>

#include "testutil.h"

static struct {
	int region_rc, lock_rc, queue_rc, thread_rc;
	shmq_region *r;
	shmq_lock *l;
	shmq_queue *q;
	shmq_thread *t;
} early = { -1, -1, -1, -1, NULL, NULL, NULL, NULL };

static void *early_thread(void *arg)
{
	return arg;
}

__attribute__((constructor)) static void host_ctor(void)
{
	early.region_rc = shmq_region_create(NULL, &(struct shmq_region_opts){ .size = 1u << 20 },
					     &early.r);
	if (early.region_rc)
		return;
	early.lock_rc = shmq_lock_create(early.r, "lock", &early.l);
	early.queue_rc = shmq_queue_create(early.r, "queue", NULL, &early.q);
	early.thread_rc = shmq_thread_start(early_thread, &early, &early.t);
}

/* Handles made before main work in main. */
static void test_ctor_handles(void **state)
{
	char buf[16];
	void *ret = NULL;

	(void)state;
	assert_int_equal(early.region_rc, 0);
	assert_int_equal(early.lock_rc, 0);
	assert_int_equal(early.queue_rc, 0);
	assert_int_equal(early.thread_rc, 0);
	assert_int_equal(shmq_lock_acquire(early.l, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_lock_release(early.l), 0);
	assert_int_equal(shmq_queue_put(early.q, "early", 5, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_queue_get(early.q, buf, sizeof(buf), SHMQ_NOWAIT), 5);
	assert_memory_equal(buf, "early", 5);
	assert_int_equal(shmq_thread_join(early.t, SHMQ_FOREVER, &ret), 0);
	assert_ptr_equal(ret, &early);
	shmq_thread_close(early.t);
	early.t = NULL;
}

/* In a child of fork(), the handles made before main still name the
 * parent (-EBADF), and the child's own work: the fork handler is in place
 * even though the library's first call came before its constructor. */
static int fork_child_body(void)
{
	shmq_region *r;
	shmq_lock *l;

	if (shmq_lock_acquire(early.l, SHMQ_NOWAIT) != -EBADF)
		return 1;
	if (shmq_region_create(NULL, &(struct shmq_region_opts){ .size = 1u << 20 }, &r))
		return 2;
	if (shmq_lock_create(r, "lock", &l) || shmq_lock_acquire(l, SHMQ_NOWAIT))
		return 3;
	shmq_lock_close(l);
	shmq_region_close(r);
	return 0;
}

static void test_ctor_handles_after_fork(void **state)
{
	pid_t pid;

	(void)state;
	assert_int_equal(early.lock_rc, 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fork_child_body());
	assert_int_equal(tu_wait_child(pid), 0);
	assert_int_equal(shmq_lock_acquire(early.l, SHMQ_NOWAIT), 0);
	assert_int_equal(shmq_lock_release(early.l), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ctor_handles),
		cmocka_unit_test(test_ctor_handles_after_fork),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);

	if (early.t) {
		void *ret;

		(void)shmq_thread_join(early.t, SHMQ_FOREVER, &ret);
		shmq_thread_close(early.t);
	}
	if (early.q)
		shmq_queue_close(early.q);
	if (early.l)
		shmq_lock_close(early.l);
	if (early.r)
		shmq_region_close(early.r);
	return rc;
}
