/* SPDX-License-Identifier: MIT */
/* Helpers shared by the cmocka suites. */
#ifndef SHMQ_TESTUTIL_H
#define SHMQ_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <shmq.h>

/* A region name unique to this process and call site. */
static inline const char *tu_name(char *buf, size_t n, const char *tag)
{
	static unsigned seq;

	snprintf(buf, n, "/shmq-test-%s-%d-%u", tag, (int)getpid(), seq++);
	return buf;
}

/* Wait for a forked child and return its exit status (or 128 + signal). */
static inline int tu_wait_child(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

#endif
