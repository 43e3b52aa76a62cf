/* SPDX-License-Identifier: MIT */
/*
 * For the tests of the liveness scans of waiters (sync/spin_int.h,
 * shmq__sync_scan_due): open(2) interposed to count the reads of another
 * process's /proc/<pid>/stat that this process makes (each liveness check
 * of a process is one).  Include once, in the test's one source file.
 */
#ifndef SHMQ_TEST_PROC_SPY_H
#define SHMQ_TEST_PROC_SPY_H

#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/types.h>

static unsigned long spy_proc_stat_opens; /* opens of /proc/<pid>/stat, pid not ours */

int open(const char *path, int flags, ...)
{
	static int (*real)(const char *, int, ...);
	mode_t mode = 0;
	size_t n = strlen(path);

	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;

		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	if (n > 11 && strncmp(path, "/proc/", 6) == 0 && strcmp(path + n - 5, "/stat") == 0 &&
	    strncmp(path, "/proc/self/", 11) != 0)
		__atomic_fetch_add(&spy_proc_stat_opens, 1, __ATOMIC_SEQ_CST);
	if (!__atomic_load_n(&real, __ATOMIC_ACQUIRE))
		__atomic_store_n(&real, (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open"),
				 __ATOMIC_RELEASE);
	return real(path, flags, mode);
}

static unsigned long spy_proc_stat_count(void)
{
	return __atomic_load_n(&spy_proc_stat_opens, __ATOMIC_SEQ_CST);
}

#endif /* SHMQ_TEST_PROC_SPY_H */
