/* SPDX-License-Identifier: MIT */
/* Fuzz target: a flag's word (set bit, epoch, the never-written top bit),
 * its sleeper count and header corrupted, then open, is_set, a
 * non-blocking and a short timed wait, set, clear and set again over it. */
#include "config.h"

#include <errno.h>

#include "fuzz.h"
#include "objimage.h"

static const char *const names[] = { "clear", "set" };
static const uint32_t types[] = { SHMQ__OBJ_FLAG, SHMQ__OBJ_FLAG };

static int build(shmq_region *r)
{
	shmq_flag *a, *b;
	int rc = shmq_flag_create(r, "clear", &a);

	if (rc || (rc = shmq_flag_create(r, "set", &b)))
		return rc;
	/* set, cleared and set again: the epoch has moved */
	rc = shmq_flag_set(b) || shmq_flag_clear(b) || shmq_flag_set(b);
	shmq_flag_close(a);
	shmq_flag_close(b);
	return rc;
}

static void readers(shmq_region *r, const char *name)
{
	shmq_flag *f;
	int rc = shmq_flag_open(r, name, &f);

	FUZZ_EXPECT(rc, 0, -EBADMSG, -EPROTO); /* -EPROTO: another layout version */
	if (rc)
		return;
	(void)shmq_flag_is_set(f);
	FUZZ_EXPECT(shmq_flag_wait(f, SHMQ_NOWAIT), 0, -EAGAIN, -EBADMSG);
	FUZZ_EXPECT(shmq_flag_wait(f, 100000), 0, -ETIMEDOUT, -EBADMSG);
	FUZZ_EXPECT(shmq_flag_clear(f), 0, -EBADMSG);
	rc = shmq_flag_set(f);
	FUZZ_EXPECT(rc, 0, -EBADMSG);
	if (rc == 0) {
		/* a flag we could set reads as set and is waited on at once */
		if (!shmq_flag_is_set(f))
			abort();
		FUZZ_EXPECT(shmq_flag_wait(f, SHMQ_NOWAIT), 0);
	}
	FUZZ_EXPECT(shmq_flag_clear(f), 0, -EBADMSG);
	shmq_flag_close(f);
}

static void read_both(shmq_region *r)
{
	readers(r, "clear");
	readers(r, "set");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_object_run(build, names, types, 2, data, size, read_both);
}
