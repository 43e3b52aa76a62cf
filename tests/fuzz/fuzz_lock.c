/* SPDX-License-Identifier: MIT */
/* Fuzz target: lock words (holder id, contended bit, tag, magic) corrupted,
 * then open, locked, try-acquire, timed acquire and release over them. */
#include "config.h"

#include <errno.h>

#include "fuzz.h"
#include "objimage.h"

static const char *const names[] = { "held", "free" };
static const uint32_t types[] = { SHMQ__OBJ_LOCK, SHMQ__OBJ_LOCK };

/* "held" is left held by the image's maker, who is gone: a dead holder. */
static int build(shmq_region *r)
{
	shmq_lock *a, *b;
	int rc = shmq_lock_create(r, "held", &a);

	if (rc || (rc = shmq_lock_create(r, "free", &b)))
		return rc;
	rc = shmq_lock_acquire(a, SHMQ_NOWAIT);
	shmq_lock_close(a);
	shmq_lock_close(b);
	return rc;
}

static void release_if_held(shmq_lock *l, int rc)
{
	if (rc == 0 || rc == -EOWNERDEAD)
		FUZZ_EXPECT(shmq_lock_release(l), 0, -EBADMSG);
}

static void readers(shmq_region *r, const char *name)
{
	shmq_lock *l;
	int rc = shmq_lock_open(r, name, &l);

	FUZZ_EXPECT(rc, 0, -EBADMSG);
	if (rc)
		return;
	(void)shmq_lock_locked(l);
	rc = shmq_lock_acquire(l, SHMQ_NOWAIT);
	FUZZ_EXPECT(rc, 0, -EAGAIN, -EOWNERDEAD, -EBADMSG, -EDEADLK);
	if (rc == 0 || rc == -EOWNERDEAD)
		FUZZ_EXPECT(shmq_lock_acquire(l, SHMQ_NOWAIT), -EDEADLK, -EBADMSG);
	release_if_held(l, rc);
	FUZZ_EXPECT(shmq_lock_release(l), -EPERM, -EBADMSG);
	rc = shmq_lock_acquire(l, 100000); /* 0.1 ms: a live-looking holder times out */
	FUZZ_EXPECT(rc, 0, -ETIMEDOUT, -EOWNERDEAD, -EBADMSG, -EDEADLK);
	release_if_held(l, rc);
	shmq_lock_close(l);
}

static void read_both(shmq_region *r)
{
	readers(r, "held");
	readers(r, "free");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_object_run(build, names, types, 2, data, size, read_both);
}
