/* SPDX-License-Identifier: MIT */
/*
 * A module for tests/test_plugin: a task and an entry registered with the
 * macros, in a shared object that the test loads with dlopen and unloads.
 */
#include <shmq.h>

static int plug_task(const void *in, void *out)
{
	*(int *)out = *(const int *)in + 1;
	return 0;
}
SHMQ_TASK(plug_task);

static int plug_entry(shmq_region *r, const void *arg, size_t len)
{
	(void)r;
	(void)arg;
	(void)len;
	return 0;
}
SHMQ_ENTRY(plug_entry);

int plugin_mod_hello(void);
int plugin_mod_hello(void)
{
	return 42;
}
