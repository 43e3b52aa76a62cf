/* SPDX-License-Identifier: MIT */
/* Soak helpers: clocks and resident-set samples for `make check-long`. */
#ifndef SHMQ_SOAK_H
#define SHMQ_SOAK_H

#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

/* VmRSS of pid in KiB (0 for self), or -1. */
static inline long soak_rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/status");
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static inline double soak_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* RSS must not grow by more than this between the sample after warm-up and
 * the later ones: a leak of even a few bytes per message or task over 10^6+
 * operations exceeds it, allocator noise does not. */
#define SOAK_RSS_SLACK_KIB 8192L

#endif
