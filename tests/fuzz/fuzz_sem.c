/* SPDX-License-Identifier: MIT */
/* Fuzz target: a semaphore's value, max, flags, sleeper count and undo
 * table (owner ids, held counts) corrupted, then open, value, a
 * non-blocking and a short timed acquire, release and an over-release over
 * it.  The undo table is where a forged owner or count would make a
 * reclaim give back units that never existed. */
#include "config.h"

#include <errno.h>

#include "fuzz.h"
#include "objimage.h"

static const char *const names[] = { "plain", "undo" };
static const uint32_t types[] = { SHMQ__OBJ_SEM, SHMQ__OBJ_SEM };

static int build(shmq_region *r)
{
	struct shmq_sem_opts bounded = { .max = 4, .flags = SHMQ_SEM_UNDO };
	shmq_sem *a, *b;
	int rc = shmq_sem_create(r, "plain", 1, NULL, &a);

	if (rc || (rc = shmq_sem_create(r, "undo", 2, &bounded, &b)))
		return rc;
	/* an undo entry of ours holds a unit, so the table is not all zero */
	rc = shmq_sem_acquire(b, SHMQ_NOWAIT);
	shmq_sem_close(a);
	shmq_sem_close(b);
	return rc;
}

static void readers(shmq_region *r, const char *name)
{
	shmq_sem *s;
	int rc = shmq_sem_open(r, name, &s);

	FUZZ_EXPECT(rc, 0, -EBADMSG, -EPROTO); /* -EPROTO: another layout version */
	if (rc)
		return;
	(void)shmq_sem_value(s);
	rc = shmq_sem_acquire(s, SHMQ_NOWAIT);
	FUZZ_EXPECT(rc, 0, -EAGAIN, -EBADMSG, -ENOSPC);
	if (rc == 0)
		FUZZ_EXPECT(shmq_sem_release(s, 1), 0, -EOVERFLOW, -EBADMSG);
	rc = shmq_sem_acquire(s, 100000);
	FUZZ_EXPECT(rc, 0, -ETIMEDOUT, -EBADMSG, -ENOSPC);
	FUZZ_EXPECT(shmq_sem_release(s, 1), 0, -EOVERFLOW, -EBADMSG);
	FUZZ_EXPECT(shmq_sem_release(s, 0x7fffffffu), 0, -EOVERFLOW, -EBADMSG);
	shmq_sem_close(s);
}

static void read_both(shmq_region *r)
{
	readers(r, "plain");
	readers(r, "undo");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_object_run(build, names, types, 2, data, size, read_both);
}
