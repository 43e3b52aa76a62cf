/* SPDX-License-Identifier: MIT */
/* Fuzz target: a condition's waiter count, arrival counter and waiter
 * slots (owner ids, ticket bits, sleeper counts, arrivals) corrupted, then
 * open, notify, notify_all, and a non-blocking and a short timed wait
 * under its (intact) lock.  A forged slot must be refused (-EBADMSG) or
 * skipped, never hand a ticket to nobody in a loop. */
#include "config.h"

#include <errno.h>

#include "fuzz.h"
#include "objimage.h"

static const char *const names[] = { "c" };
static const uint32_t types[] = { SHMQ__OBJ_COND };

static int build(shmq_region *r)
{
	shmq_cond *c;
	shmq_lock *l;
	int rc = shmq_lock_create(r, "l", &l);

	if (rc || (rc = shmq_cond_create(r, "c", &c)))
		return rc;
	/* a wait that timed out: the arrival counter and a slot's arrival
	 * are not zero */
	if ((rc = shmq_lock_acquire(l, SHMQ_NOWAIT)) == 0) {
		rc = shmq_cond_wait(c, l, SHMQ_NOWAIT) == -EAGAIN ? 0 : -EPROTO;
		shmq_lock_release(l);
	}
	shmq_cond_close(c);
	shmq_lock_close(l);
	return rc;
}

static void read_cond(shmq_region *r)
{
	shmq_cond *c;
	shmq_lock *l;
	int rc = shmq_cond_open(r, "c", &c);

	FUZZ_EXPECT(rc, 0, -EBADMSG, -EPROTO); /* -EPROTO: another layout version */
	if (rc)
		return;
	if (shmq_lock_open(r, "l", &l)) {
		shmq_cond_close(c);
		return;
	}
	rc = shmq_cond_notify(c, 1);
	if (rc < 0)
		FUZZ_EXPECT(rc, -EBADMSG);
	rc = shmq_cond_notify_all(c);
	if (rc < 0)
		FUZZ_EXPECT(rc, -EBADMSG);
	FUZZ_EXPECT(shmq_lock_acquire(l, SHMQ_NOWAIT), 0);
	FUZZ_EXPECT(shmq_cond_wait(c, l, SHMQ_NOWAIT), 0, -EAGAIN, -EBADMSG, -ENOSPC);
	FUZZ_EXPECT(shmq_cond_wait(c, l, 100000), 0, -ETIMEDOUT, -EBADMSG, -ENOSPC);
	/* whatever the wait said, we hold the lock again */
	FUZZ_EXPECT(shmq_lock_release(l), 0);
	/* a wait without the lock is refused and leaves no slot behind */
	FUZZ_EXPECT(shmq_cond_wait(c, l, SHMQ_NOWAIT), -EPERM, -EBADMSG, -ENOSPC);
	shmq_lock_close(l);
	shmq_cond_close(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_object_run(build, names, types, 1, data, size, read_cond);
}
