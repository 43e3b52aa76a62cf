/* SPDX-License-Identifier: MIT */
/*
 * Test helper for tests/test_tools.sh: anonymous (memfd) regions for
 * `shmq ls` and `shmq stat PID:FD` to find through /proc.
 *
 *   helper_anon SECONDS
 *
 * Creates an anonymous region (shmq_region_create with no name) holding a
 * queue "work" (capacity 8, 2 messages in it), and beside it three memfds
 * that are not libshmq regions: "other" (another program's memfd), "shmq"
 * full of junk (a foreign file under libshmq's memfd name) and "shmq" with a
 * copy of the region's first 64 KiB (libshmq's header, the wrong size: it
 * must be reported corrupt, never trusted).  Then forks a child that holds
 * the same descriptors (one region, two holders), prints
 *
 *   ready PID REGION_FD FOREIGN_FD CORRUPT_FD OTHER_FD CHILD_PID
 *
 * and holds everything until SIGTERM or SECONDS; then kills and reaps the
 * child.  Exit 0 on success, 1 on failure.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <shmq.h>

#include "core/region_int.h"

#define COPY_SIZE (64u << 10)

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

/* A memfd called name, size bytes of what fill writes. */
static int junk_memfd(const char *name, const void *bytes, size_t size)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	if (fd < 0)
		return -1;
	if (write(fd, bytes, size) != (ssize_t)size) {
		close(fd);
		return -1;
	}
	return fd;
}

int main(int argc, char **argv)
{
	struct shmq_region_opts o = { .size = 256u << 10 };
	struct shmq_queue_opts qo = { .capacity = 8, .max_msg = 32 };
	struct sigaction sa;
	shmq_region *r;
	shmq_queue *q;
	char *buf;
	int rc, foreign, corrupt, other, status;
	unsigned seconds;
	pid_t child;

	if (argc != 2)
		return 1;
	seconds = (unsigned)atoi(argv[1]);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);

	rc = shmq_region_create(NULL, &o, &r);
	if (!rc)
		rc = shmq_queue_create(r, "work", &qo, &q);
	for (int i = 0; i < 2 && !rc; i++)
		rc = shmq_queue_put(q, "job", 3, SHMQ_NOWAIT);
	if (rc) {
		fprintf(stderr, "helper_anon: %s\n", shmq_strerror(rc));
		return 1;
	}
	buf = malloc(COPY_SIZE);
	if (!buf || pread(shmq__region_fd(r), buf, COPY_SIZE, 0) != (ssize_t)COPY_SIZE)
		return 1;
	corrupt = junk_memfd("shmq", buf, COPY_SIZE);
	memset(buf, 'x', COPY_SIZE);
	foreign = junk_memfd("shmq", buf, COPY_SIZE);
	other = junk_memfd("other", buf, COPY_SIZE);
	free(buf);
	if (corrupt < 0 || foreign < 0 || other < 0) {
		perror("helper_anon: memfd");
		return 1;
	}

	child = fork();
	if (child < 0)
		return 1;
	if (child == 0) {
		/* holds the parent's descriptors, attaches to nothing */
		alarm(seconds + 1);
		while (!stop)
			pause();
		_exit(0);
	}
	printf("ready %d %d %d %d %d %d\n", (int)getpid(), shmq__region_fd(r), foreign, corrupt,
	       other, (int)child);
	fflush(stdout);
	for (time_t end = time(NULL) + seconds; !stop && time(NULL) < end;)
		sleep(1);
	kill(child, SIGTERM);
	waitpid(child, &status, 0);
	shmq_queue_close(q);
	shmq_region_close(r);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
