/* SPDX-License-Identifier: MIT */
/*
 * The floor of each object kind, from the kind table (core/objkind_int.h),
 * and the one find + check every _open goes through.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>

#include "core/objkind_int.h"
#include "core/region_int.h"

struct obj_floor {
	uint64_t min_size;
	uint64_t align;
};

static const struct obj_floor obj_floors[SHMQ__OBJ_TYPE_MAX] = {
#define FLOOR_(K, name, id, min, align, fn) [id] = { (min), (align) },
	SHMQ__OBJ_KINDS(FLOOR_)
#undef FLOOR_
};

int shmq__obj_open(shmq_region *r, const char *name, uint32_t type, void **mem_out,
		   uint64_t *size_out)
{
	uint64_t size;
	void *mem;
	int rc;

	if (!mem_out || type == SHMQ__OBJ_NONE || type >= SHMQ__OBJ_TYPE_MAX)
		return -EINVAL;
	rc = shmq__obj_find(r, name, type, &mem, &size);
	if (rc)
		return rc;
	/* the directory checked that the object lies inside the region; whether
	 * it can hold a whole control block of its kind is checked here, before
	 * any _open reads a word of it */
	if (size < obj_floors[type].min_size || (uintptr_t)mem % obj_floors[type].align)
		return -EBADMSG;
	*mem_out = mem;
	if (size_out)
		*size_out = size;
	return 0;
}
