/* SPDX-License-Identifier: MIT */
/* Processes (seed 12-4): posix_spawn'ed children that share the parent's region. */
#ifndef SHMQ_PROC_H
#define SHMQ_PROC_H

#include <shmq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int (*shmq_entry_fn)(shmq_region *r, const void *arg, size_t len);

/* One registered entry; SHMQ_ENTRY fills it in at file scope. */
struct shmq_entry {
	const char *name;
	shmq_entry_fn fn;
	struct shmq_entry *next; /* owned by the library */
};
SHMQ_API void shmq_entry_register(struct shmq_entry *e);

/* Register fn under its own name, at file scope. */
#define SHMQ_ENTRY(fn)                                                              \
	static struct shmq_entry shmq__entry_##fn = { #fn, fn, 0 };                  \
	__attribute__((constructor)) static void shmq__entry_ctor_##fn(void)         \
	{                                                                            \
		shmq_entry_register(&shmq__entry_##fn);                              \
	}                                                                            \
	struct shmq__entry_semicolon_##fn

/* First line of main(): in a child spawned by shmq_proc_spawn, runs the entry
 * and exits with its return value; returns 0 at once in any other process. */
SHMQ_API int shmq_dispatch(int argc, char **argv);

struct shmq_proc_opts;  /* options: see below; NULL means defaults */

SHMQ_API int shmq_proc_spawn(shmq_region *r, const char *entry, const void *arg, size_t len,
			     const struct shmq_proc_opts *o, shmq_proc **out);
SHMQ_API int shmq_proc_exec(shmq_region *r, char *const argv[], const struct shmq_proc_opts *o,
			    shmq_proc **out);
SHMQ_API int shmq_proc_join(shmq_proc *p, int64_t timeout_ns);
SHMQ_API bool shmq_proc_is_alive(shmq_proc *p);
/* >= 0 exit status, -signal, -EAGAIN while running. */
SHMQ_API int shmq_proc_exitcode(shmq_proc *p);
SHMQ_API int shmq_proc_kill(shmq_proc *p, int sig);
SHMQ_API pid_t shmq_proc_pid(const shmq_proc *p);
SHMQ_API void shmq_proc_close(shmq_proc *p);

#ifdef __cplusplus
}
#endif
#endif /* SHMQ_PROC_H */
