/* SPDX-License-Identifier: MIT */
/* Fuzz target: a barrier word (count, broken, reset, generation) and its
 * parties field corrupted, then open, the snapshots, a non-blocking wait,
 * a short timed wait, abort and reset over it. */
#include "config.h"

#include <errno.h>

#include "fuzz.h"
#include "objimage.h"

static const char *const names[] = { "one", "three" };
static const uint32_t types[] = { SHMQ__OBJ_BARRIER, SHMQ__OBJ_BARRIER };

static int build(shmq_region *r)
{
	shmq_barrier *a, *b;
	int rc = shmq_barrier_create(r, "one", 1, &a);

	if (rc || (rc = shmq_barrier_create(r, "three", 3, &b)))
		return rc;
	/* a generation passed, so the counters are not all zero */
	rc = shmq_barrier_wait(a, SHMQ_NOWAIT) < 0;
	shmq_barrier_close(a);
	shmq_barrier_close(b);
	return rc;
}

static void readers(shmq_region *r, const char *name)
{
	shmq_barrier *b;
	int rc = shmq_barrier_open(r, name, &b);

	FUZZ_EXPECT(rc, 0, -EBADMSG, -EPROTO); /* -EPROTO: the magic's layout tag */
	if (rc)
		return;
	(void)shmq_barrier_parties(b);
	(void)shmq_barrier_n_waiting(b);
	(void)shmq_barrier_broken(b);
	rc = shmq_barrier_wait(b, SHMQ_NOWAIT);
	if (rc < 0)
		FUZZ_EXPECT(rc, -EAGAIN, -EPIPE, -EBADMSG);
	rc = shmq_barrier_wait(b, 100000);
	if (rc < 0)
		FUZZ_EXPECT(rc, -ETIMEDOUT, -EPIPE, -EBADMSG);
	FUZZ_EXPECT(shmq_barrier_abort(b), 0, -EBADMSG);
	FUZZ_EXPECT(shmq_barrier_wait(b, SHMQ_NOWAIT), -EPIPE, -EBADMSG);
	FUZZ_EXPECT(shmq_barrier_reset(b), 0, -EBADMSG);
	rc = shmq_barrier_wait(b, SHMQ_NOWAIT);
	if (rc < 0)
		FUZZ_EXPECT(rc, -EAGAIN, -EPIPE, -EBADMSG);
	shmq_barrier_close(b);
}

static void read_both(shmq_region *r)
{
	readers(r, "one");
	readers(r, "three");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_object_run(build, names, types, 2, data, size, read_both);
}
