/* SPDX-License-Identifier: MIT */
/* The kind table (core/objkind_int.h): shmq__obj_open enforces each row's
 * floor, the names come from it, every _open keeps its errno values for an
 * object below its kind's floor, and the tools' introspection interface
 * reports its version and walks what the table describes. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"

#include <shmq/introspect.h>

#include "core/objkind_int.h"
#include "core/region_int.h"

#define SMALL ((size_t)256 << 10)

struct kind_row {
	uint32_t type;
	const char *name;
	uint64_t min, align;
};

static const struct kind_row kinds[] = {
#define ROW_(K, name, id, min, align, fn) { SHMQ__OBJ_##K, name, (min), (align) },
	SHMQ__OBJ_KINDS(ROW_)
#undef ROW_
};

static shmq_region *region_new(char *name, size_t n, const char *tag)
{
	struct shmq_region_opts o = { .size = SMALL };
	shmq_region *r;

	tu_name(name, n, tag);
	assert_int_equal(shmq_region_create(name, &o, &r), 0);
	return r;
}

static void region_done(shmq_region *r, const char *name)
{
	shmq_region_close(r);
	assert_int_equal(shmq_region_unlink(name), 0);
}

/* Every row: an object of exactly min_size opens, one line less is -EBADMSG,
 * another kind's open is -EINVAL, a missing name -ENOENT. */
static void test_floor_per_kind(void **state)
{
	char name[96], obj[32];
	shmq_region *r = region_new(name, sizeof(name), "floor");
	uint64_t size;
	void *mem;

	(void)state;
	for (size_t i = 0; i < SHMQ__ARRAY_SIZE(kinds); i++) {
		const struct kind_row *k = &kinds[i];
		uint32_t other = k->type == SHMQ__OBJ_BLOB ? SHMQ__OBJ_LOCK : SHMQ__OBJ_BLOB;

		snprintf(obj, sizeof(obj), "at.%s", k->name);
		assert_int_equal(shmq__obj_create(r, obj, k->type, k->min, NULL, NULL, &mem), 0);
		mem = NULL;
		size = 0;
		assert_int_equal(shmq__obj_open(r, obj, k->type, &mem, &size), 0);
		assert_non_null(mem);
		assert_int_equal(size, SHMQ__ALIGN_UP(k->min, (uint64_t)SHMQ__CACHELINE));
		assert_int_equal((uintptr_t)mem % k->align, 0);
		assert_int_equal(shmq__obj_open(r, obj, other, &mem, NULL), -EINVAL);
		/* the directory keeps whole lines, so a kind whose floor is one
		 * line cannot be undercut through it */
		if (k->min > SHMQ__CACHELINE) {
			snprintf(obj, sizeof(obj), "below.%s", k->name);
			assert_int_equal(shmq__obj_create(r, obj, k->type, k->min - SHMQ__CACHELINE, NULL,
							  NULL, &mem), 0);
			assert_int_equal(shmq__obj_open(r, obj, k->type, &mem, &size), -EBADMSG);
		}
		assert_int_equal(shmq__obj_open(r, "nobody", k->type, &mem, NULL), -ENOENT);
		assert_string_equal(shmq__obj_type_name(k->type), k->name);
		assert_string_equal(shmq__introspect_type_name(k->type), k->name);
	}
	assert_int_equal(shmq__obj_open(r, "at.lock", SHMQ__OBJ_NONE, &mem, NULL), -EINVAL);
	assert_int_equal(shmq__obj_open(r, "at.lock", SHMQ__OBJ_TYPE_MAX, &mem, NULL), -EINVAL);
	assert_int_equal(shmq__obj_open(r, "at.lock", SHMQ__OBJ_LOCK, NULL, NULL), -EINVAL);
	assert_int_equal(shmq__obj_open(NULL, "at.lock", SHMQ__OBJ_LOCK, &mem, NULL), -EINVAL);
	assert_int_equal(shmq__obj_open(r, "a/b", SHMQ__OBJ_LOCK, &mem, NULL), -EINVAL);
	assert_string_equal(shmq__obj_type_name(SHMQ__OBJ_NONE), "none");
	assert_string_equal(shmq__obj_type_name(SHMQ__OBJ_TYPE_MAX), "unknown");
	region_done(r, name);
}

/* The public _open calls on an object below their kind's floor: -EBADMSG, as
 * each documents for a corrupt directory entry, and no handle. */
static void test_public_opens_below_floor(void **state)
{
	char name[96];
	shmq_region *r = region_new(name, sizeof(name), "pubfloor");
	shmq_barrier *b = NULL;
	shmq_queue *q = NULL;
	shmq_pipe *p = NULL;
	shmq_lock *l = NULL;
	void *mem;

	(void)state;
	assert_int_equal(shmq__obj_create(r, "l", SHMQ__OBJ_LOCK, 64, NULL, NULL, &mem), 0);
	assert_int_equal(shmq__obj_create(r, "b", SHMQ__OBJ_BARRIER, 64, NULL, NULL, &mem), 0);
	assert_int_equal(shmq__obj_create(r, "q", SHMQ__OBJ_QUEUE, 64, NULL, NULL, &mem), 0);
	assert_int_equal(shmq__obj_create(r, "p", SHMQ__OBJ_PIPE, 64, NULL, NULL, &mem), 0);
	assert_int_equal(shmq_lock_open(r, "l", &l), -EBADMSG);
	assert_int_equal(shmq_barrier_open(r, "b", &b), -EBADMSG);
	assert_int_equal(shmq_queue_open(r, "q", &q), -EBADMSG);
	assert_int_equal(shmq_pipe_open(r, "p", 0, &p), -EBADMSG);
	assert_null(l);
	assert_null(b);
	assert_null(q);
	assert_null(p);
	/* and the kind check comes first: a lock is not a barrier */
	assert_int_equal(shmq_barrier_open(r, "l", &b), -EINVAL);
	region_done(r, name);
}

struct seen {
	unsigned n, described;
	uint32_t types[8];
};

static int count_obj(const char *name, const struct shmq__obj_stat *st, void *arg)
{
	struct seen *s = arg;

	(void)name;
	if (s->n < SHMQ__ARRAY_SIZE(s->types))
		s->types[s->n] = st->type;
	s->n++;
	s->described += shmq__stat_get(st, "bytes") != NULL;
	return 0;
}

/* The tools' interface: its version, and a walk that describes on request. */
static void test_introspect_interface(void **state)
{
	char name[96];
	shmq_region *r = region_new(name, sizeof(name), "intro"), *ro;
	struct shmq__introspect_proc pr;
	struct seen s = { 0 };
	shmq_lock *l;

	(void)state;
	assert_int_equal(shmq__introspect_version(), SHMQ__INTROSPECT_VERSION);
	assert_int_equal(shmq_lock_create(r, "l", &l), 0);
	assert_int_equal(shmq__introspect_observe(name, &ro), 0);
	assert_int_equal(shmq__introspect_objects(ro, false, count_obj, &s), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.types[0], SHMQ__OBJ_LOCK);
	assert_int_equal(s.described, 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(shmq__introspect_objects(ro, true, count_obj, &s), 0);
	assert_int_equal(s.described, 1);
	assert_int_equal(shmq__introspect_proc(ro, shmq__id_slot(shmq__region_self(r)), &pr), 0);
	assert_int_equal(pr.pid, getpid());
	assert_true(pr.alive);
	assert_int_equal(shmq__introspect_proc(ro, SHMQ__PTAB_SLOTS, &pr), -EINVAL);
	shmq_region_close(ro);
	shmq_lock_close(l);
	region_done(r, name);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_floor_per_kind),
		cmocka_unit_test(test_public_opens_below_floor),
		cmocka_unit_test(test_introspect_interface),
	};

	return cmocka_run_group_tests_name("objkind", tests, NULL, NULL);
}
