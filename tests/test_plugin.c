/* SPDX-License-Identifier: MIT */
/*
 * The library in a program that loads modules: a module (tests/plugin_mod.c,
 * a shared object) registers a task and an entry with SHMQ_TASK and
 * SHMQ_ENTRY, and is unloaded with dlclose.  The registry must not keep
 * pointers into the unmapped module: later pools and spawns work, and the
 * module's names are unknown again.  Linked against the shared libshmq,
 * which the module shares.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>

#include "testutil.h"

#ifndef PLUGIN_MOD
#error "PLUGIN_MOD: the path of the module, from Makefile.am"
#endif

static int twice(const void *in, void *out)
{
	*(int *)out = 2 * *(const int *)in;
	return 0;
}
SHMQ_TASK(twice);

static int nothing(shmq_region *r, const void *arg, size_t len)
{
	(void)r;
	(void)arg;
	(void)len;
	return 0;
}
SHMQ_ENTRY(nothing);

/* Load the module, check that it ran, unload it. */
static void module_load_unload(void)
{
	void *h = dlopen(PLUGIN_MOD, RTLD_NOW | RTLD_LOCAL);
	int (*hello)(void);

	if (!h)
		print_message("dlopen %s: %s\n", PLUGIN_MOD, dlerror());
	assert_non_null(h);
	hello = (int (*)(void))(uintptr_t)dlsym(h, "plugin_mod_hello");
	assert_non_null(hello);
	assert_int_equal(hello(), 42);
	assert_int_equal(dlclose(h), 0);
}

static void test_pool_after_unload(void **state)
{
	struct shmq_pool_opts o = { .workers = 1 };
	int in[4] = { 1, 2, 3, 4 }, out[4] = { 0 };
	shmq_region *r;
	shmq_pool *p;

	(void)state;
	module_load_unload();
	assert_int_equal(shmq_region_create(NULL, &(struct shmq_region_opts){ .size = 4u << 20 }, &r), 0);
	assert_int_equal(shmq_pool_create(r, &o, &p), 0);
	assert_int_equal(shmq_pool_map(p, "twice", in, sizeof(*in), out, sizeof(*out), 4, SHMQ_FOREVER), 0);
	assert_int_equal(out[3], 8);
	assert_int_equal(shmq_pool_map(p, "plug_task", in, sizeof(*in), out, sizeof(*out), 4, SHMQ_FOREVER),
			 -ENOENT);
	assert_int_equal(shmq_pool_close(p), 0);
	assert_int_equal(shmq_pool_join(p, SHMQ_FOREVER), 0);
	shmq_pool_free(p);
	shmq_region_close(r);
}

static void test_spawn_after_unload(void **state)
{
	shmq_region *r;
	shmq_proc *p;

	(void)state;
	module_load_unload();
	assert_int_equal(shmq_region_create(NULL, &(struct shmq_region_opts){ .size = 1u << 20 }, &r), 0);
	assert_int_equal(shmq_proc_spawn(r, "plug_entry", NULL, 0, NULL, &p), -ENOENT);
	assert_int_equal(shmq_proc_spawn(r, "nothing", NULL, 0, NULL, &p), 0);
	assert_int_equal(shmq_proc_join(p, SHMQ_FOREVER), 0);
	assert_int_equal(shmq_proc_exitcode(p), 0);
	shmq_proc_close(p);
	shmq_region_close(r);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool_after_unload),
		cmocka_unit_test(test_spawn_after_unload),
	};

	if (shmq_dispatch(argc, argv)) /* the pool's workers and the spawned child */
		return 99;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
