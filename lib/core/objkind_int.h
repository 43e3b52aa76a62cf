/* SPDX-License-Identifier: MIT */
/*
 * Private: the kinds of named objects, in one table.
 *
 * SHMQ__OBJ_KINDS is the only list of object kinds.  Everything per kind is
 * generated from it: the type ids (enum shmq__obj_type), their names
 * (shmq__obj_type_name, what `shmq stat` prints), the floor shmq__obj_open
 * checks before any _open reads an object (minimum size, alignment), and the
 * describer prototypes and dispatch (core/introspect_int.h, core/introspect.c).
 * Adding a kind is one line here plus its describer, defined by its module.
 *
 * X(KIND, name, id, min_size, align, describer)
 *   KIND       the enum constant is SHMQ__OBJ_KIND
 *   name       what tools print for it
 *   id         stored in the directory entries of live regions: never
 *              renumber or reuse one; ids are dense and in table order (checked
 *              below), so a new kind takes the next id at the end
 *   min_size   no valid object of the kind is smaller; the module that owns the
 *              layout asserts its struct against SHMQ__OBJ_MIN_KIND, since core
 *              may not see the struct
 *   align      a power of two the object's address is a multiple of
 *   describer  void describer(shmq_region *, const void *mem, uint64_t size,
 *              struct shmq__obj_stat *), defined in the kind's own module
 *              (core/introspect_int.h states the rules)
 *
 * The pool has no _open: its row's floor is the header's first line, the
 * describer checks the rest.  A condition's and a semaphore's floor are their
 * two header lines; their tables follow, checked by their _open and describer.  A blob is raw bytes (shmq_region_alloc).
 */
#ifndef SHMQ__OBJKIND_H
#define SHMQ__OBJKIND_H

#include <stdint.h>

#include <shmq/region.h>

#include "core/compiler_int.h"

#define SHMQ__OBJ_KINDS(X)                                                                      \
	X(LOCK,    "lock",    1,  2 * SHMQ__CACHELINE, 8,               shmq__lock_describe)    \
	X(BARRIER, "barrier", 2,  2 * SHMQ__CACHELINE, 8,               shmq__barrier_describe) \
	X(PIPE,    "pipe",    3,  3 * SHMQ__CACHELINE, SHMQ__CACHELINE, shmq__pipe_describe)    \
	X(QUEUE,   "queue",   4,  7 * SHMQ__CACHELINE, SHMQ__CACHELINE, shmq__queue_describe)   \
	X(POOL,    "pool",    5,  SHMQ__CACHELINE,     SHMQ__CACHELINE, shmq__pool_describe)    \
	X(BLOB,    "blob",    6,  1,                   SHMQ__CACHELINE, shmq__blob_describe)    \
	X(FLAG,    "flag",    7,  2 * SHMQ__CACHELINE, 8,               shmq__flag_describe)    \
	X(COND,    "cond",    8,  2 * SHMQ__CACHELINE, 8,               shmq__cond_describe)    \
	X(SEM,     "sem",     9,  2 * SHMQ__CACHELINE, 8,               shmq__sem_describe)

/* Types of named objects.  Each type's _open refuses the others (-EINVAL). */
enum shmq__obj_type {
	SHMQ__OBJ_NONE = 0,
#define SHMQ__OBJ_ENUM_(K, name, id, min, align, fn) SHMQ__OBJ_##K = (id),
	SHMQ__OBJ_KINDS(SHMQ__OBJ_ENUM_)
#undef SHMQ__OBJ_ENUM_
	SHMQ__OBJ_TYPE_MAX
};

/* SHMQ__OBJ_MIN_KIND and SHMQ__OBJ_ALIGN_KIND, for the owners' asserts. */
enum {
#define SHMQ__OBJ_FLOOR_(K, name, id, min, align, fn)                                               \
	SHMQ__OBJ_MIN_##K = (min), SHMQ__OBJ_ALIGN_##K = (align),
	SHMQ__OBJ_KINDS(SHMQ__OBJ_FLOOR_)
#undef SHMQ__OBJ_FLOOR_
};

/* Each kind's position in the table, to check the ids against. */
enum shmq__obj_seq_ {
	SHMQ__OBJ_SEQ_NONE_ = 0,
#define SHMQ__OBJ_SEQ_(K, name, id, min, align, fn) SHMQ__OBJ_SEQ_##K,
	SHMQ__OBJ_KINDS(SHMQ__OBJ_SEQ_)
#undef SHMQ__OBJ_SEQ_
};

#define SHMQ__OBJ_CHECK_(K, name, id, min, align, fn)                                               \
	_Static_assert(SHMQ__OBJ_SEQ_##K == (id), "object ids: dense, in table order");            \
	_Static_assert((min) > 0 && (align) > 0 && ((align) & ((align) - 1)) == 0,                 \
		       "object floor: a size, and a power-of-two alignment");
SHMQ__OBJ_KINDS(SHMQ__OBJ_CHECK_)
#undef SHMQ__OBJ_CHECK_

/* A designated initialiser [id] = name, for tables indexed by type. */
#define SHMQ__OBJ_NAME_INIT(K, name, id, min, align, fn) [id] = name,

/* The kind's name, "none" for 0, "unknown" past the table. */
const char *shmq__obj_type_name(uint32_t type);

/*
 * Find the object called name of kind type and check it against the kind's
 * floor from the table, for the _open calls: *mem_out and *size_out (may be
 * NULL) describe an object at least min_size bytes long at an address that is
 * a multiple of align.  Errors: -EINVAL (argument, name, another kind),
 * -ENOENT, -EBADMSG (a corrupt entry, or an object below its kind's floor).
 * Any thread; reads the directory only.
 */
int shmq__obj_open(shmq_region *r, const char *name, uint32_t type, void **mem_out,
		   uint64_t *size_out);

#endif /* SHMQ__OBJKIND_H */
