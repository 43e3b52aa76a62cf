/* SPDX-License-Identifier: MIT */
/* Fuzz target: a Chase-Lev deque's top, bottom, magic, capacity and slots
 * corrupted, then attach, size, steal, take and push over it: no access
 * outside the deque's bytes, every refusal -EBADMSG. */
#include "config.h"

#include <errno.h>

#include "ring/deque_int.h"
#include "fuzz.h"
#include "objimage.h"

#define CAP 16

static const char *const names[] = { "dq" };
static const uint32_t types[] = { SHMQ__OBJ_BLOB };

/* A deque that has wrapped once and holds a few items. */
static int build(shmq_region *r)
{
	struct shmq__deque d;
	size_t sz = shmq__deque_footprint(CAP);
	uint64_t item;
	void *mem;
	int rc = shmq__obj_create(r, "dq", SHMQ__OBJ_BLOB, sz, NULL, NULL, &mem);

	if (rc || (rc = shmq__deque_init(mem, CAP)) || (rc = shmq__deque_attach(&d, mem, sz)))
		return rc;
	for (unsigned i = 0; i < CAP + 5; i++) {
		shmq__deque_push(&d, i);
		if (i % 2)
			shmq__deque_steal(&d, &item);
	}
	return 0;
}

static void readers(void *mem, uint64_t size)
{
	struct shmq__deque d;
	uint64_t item;
	int rc = shmq__deque_attach(&d, mem, size);

	FUZZ_EXPECT(rc, 0, -EBADMSG);
	if (rc)
		return;
	(void)shmq__deque_size(&d);
	for (unsigned i = 0; i < 3; i++)
		FUZZ_EXPECT(shmq__deque_steal(&d, &item), 0, -EAGAIN, -EBUSY, -EBADMSG);
	FUZZ_EXPECT(shmq__deque_take(&d, &item), 0, -EAGAIN, -EBADMSG);
	FUZZ_EXPECT(shmq__deque_push(&d, 7), 0, -ENOSPC, -EBADMSG);
	for (unsigned i = 0; i < CAP + 2; i++) {
		rc = shmq__deque_take(&d, &item);
		FUZZ_EXPECT(rc, 0, -EAGAIN, -EBADMSG);
		if (rc)
			break;
	}
	(void)shmq__deque_size(&d);
}

static void read_dq(shmq_region *r)
{
	void *mem;
	uint64_t osize;

	if (shmq__obj_find(r, "dq", SHMQ__OBJ_BLOB, &mem, &osize) == 0)
		readers(mem, osize);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_object_run(build, names, types, 1, data, size, read_dq);
}
