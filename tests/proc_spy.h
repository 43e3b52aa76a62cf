/* SPDX-License-Identifier: MIT */
/*
 * For the tests of the liveness scans of waiters (sync/spin_int.h,
 * shmq__sync_scan_due) and of the liveness looks themselves (core/ptab.c):
 * open(2) interposed to count the reads of another process's
 * /proc/<pid>/stat that this process makes (each liveness check of a
 * process by /proc is one).  With SPY_PROC_LOG_ENV naming a file, each such
 * open also appends the opener's pid there, a line: the environment goes to
 * the processes this one spawns running the same binary (pool workers), so
 * a test sees their reads too (spy_proc_log_count).  Include once, in the
 * test's one source file.
 */
#ifndef SHMQ_TEST_PROC_SPY_H
#define SHMQ_TEST_PROC_SPY_H

#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define SPY_PROC_LOG_ENV "SHMQ_TEST_PROC_SPY_LOG"

static unsigned long spy_proc_stat_opens; /* opens of /proc/<pid>/stat, pid not ours */

/* Append our pid, a line, to the file log names. */
static void spy_proc_log(int (*real)(const char *, int, ...), const char *log)
{
	int fd = real(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	char line[24];
	int len = snprintf(line, sizeof(line), "%d\n", (int)getpid());

	if (fd < 0)
		return;
	if (write(fd, line, (size_t)len) != len)
		_exit(98);
	close(fd);
}

int open(const char *path, int flags, ...)
{
	static int (*real)(const char *, int, ...);
	const char *log = NULL;
	mode_t mode = 0;
	size_t n = strlen(path);

	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;

		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	if (n > 11 && strncmp(path, "/proc/", 6) == 0 && strcmp(path + n - 5, "/stat") == 0 &&
	    strncmp(path, "/proc/self/", 11) != 0) {
		__atomic_fetch_add(&spy_proc_stat_opens, 1, __ATOMIC_SEQ_CST);
		log = getenv(SPY_PROC_LOG_ENV);
	}
	if (!__atomic_load_n(&real, __ATOMIC_ACQUIRE))
		__atomic_store_n(&real, (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open"),
				 __ATOMIC_RELEASE);
	if (log)
		spy_proc_log(real, log);
	return real(path, flags, mode);
}

static inline unsigned long spy_proc_stat_count(void)
{
	return __atomic_load_n(&spy_proc_stat_opens, __ATOMIC_SEQ_CST);
}

/* The lines of a SPY_PROC_LOG_ENV file that name one of pids[0..n). */
static inline unsigned spy_proc_log_count(const char *log, const pid_t *pids, unsigned n)
{
	FILE *f = fopen(log, "re");
	unsigned count = 0;
	int pid;

	if (!f)
		return 0;
	while (fscanf(f, "%d", &pid) == 1)
		for (unsigned i = 0; i < n; i++)
			count += pid == pids[i];
	fclose(f);
	return count;
}

#endif /* SHMQ_TEST_PROC_SPY_H */
