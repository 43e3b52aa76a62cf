/* SPDX-License-Identifier: MIT */
/*
 * A program that test_proc and test_run run with shmq_proc_exec / shmq_run.
 *
 *   helper_exec region        inherit the region, answer the parent's "ping"
 *                             in the blob "talk" with "pong <pid>"
 *   helper_exec pipe          inherit the region, open end 1 of the pipe "chan",
 *                             answer each message m with "pong <pid> m" until EOF
 *   helper_exec print         print "cwd=<cwd> var=<$SHMQ_TEST_VAR> region=<env>"
 *   helper_exec fds           print the open descriptors, one per line
 *   helper_exec gen N         write N pattern bytes to stdout and to stderr,
 *                             interleaved in 64 KiB pieces
 *   helper_exec exit N        exit with status N
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <shmq.h>

#include "core/atomic_int.h"
#include "helper_talk.h"
#include "core/region_int.h"

static int do_region(void)
{
	struct talk *t;
	shmq_region *r;
	int rc;

	rc = shmq_region_inherit(&r);
	if (rc)
		return 10;
	rc = shmq__obj_find(r, TALK_NAME, SHMQ__OBJ_BLOB, (void **)&t, NULL);
	if (rc) {
		shmq_region_close(r);
		return 11;
	}
	for (int i = 0; i < 10000 && shmq__load_acquire(&t->state) != TALK_PING; i++)
		usleep(1000); /* the parent wrote ping before spawning: never loops */
	if (shmq__load_acquire(&t->state) != TALK_PING || strcmp(t->msg, "ping")) {
		shmq_region_close(r);
		return 12;
	}
	snprintf(t->msg, sizeof(t->msg), "pong %d", (int)getpid());
	t->self_id = shmq__region_self(r);
	/* pairs with the parent's load_acquire of state in talk_wait */
	shmq__store_release(&t->state, TALK_PONG);
	/* Stay attached until the parent has looked at the process table. */
	for (int i = 0; i < 10000 && shmq__load_acquire(&t->state) != TALK_BYE; i++)
		usleep(1000);
	shmq_region_close(r);
	return 0;
}

static int do_pipe(void)
{
	char in[256], out[300];
	shmq_region *r;
	shmq_pipe *p;
	ssize_t n;
	int rc = 0;

	if (shmq_region_inherit(&r))
		return 50;
	if (shmq_pipe_open(r, "chan", 1, &p)) {
		shmq_region_close(r);
		return 51;
	}
	while ((n = shmq_pipe_recv(p, in, sizeof(in) - 1, 10 * 1000000000LL)) >= 0) {
		in[n] = '\0';
		snprintf(out, sizeof(out), "pong %d %s", (int)getpid(), in);
		if (shmq_pipe_send(p, out, strlen(out), 10 * 1000000000LL)) {
			rc = 52;
			break;
		}
	}
	if (!rc && n != -EPIPE)
		rc = n == -ETIMEDOUT ? 54 : n == -EBADMSG ? 55 : 53; /* the parent closing its end must read as EOF */
	shmq_pipe_close(p);
	shmq_region_close(r);
	return rc;
}

static int do_print(void)
{
	char cwd[4096];
	const char *v = getenv("SHMQ_TEST_VAR");
	const char *reg = getenv("SHMQ_REGION_FD");

	if (!getcwd(cwd, sizeof(cwd)))
		return 20;
	printf("cwd=%s var=%s region=%s\n", cwd, v ? v : "-", reg ? reg : "-");
	return fflush(stdout) ? 21 : 0;
}

static int do_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;

	if (!d)
		return 30;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && atoi(de->d_name) != dirfd(d))
			printf("%s\n", de->d_name);
	closedir(d);
	return fflush(stdout) ? 31 : 0;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int do_gen(const char *arg)
{
	static char buf[65536];
	size_t total = strtoull(arg, NULL, 10), done = 0;

	while (done < total) {
		size_t n = total - done < sizeof(buf) ? total - done : sizeof(buf);

		for (size_t i = 0; i < n; i++)
			buf[i] = (char)helper_pattern(done + i);
		if (write_all(1, buf, n) || write_all(2, buf, n))
			return 40;
		done += n;
	}
	return 0;
}

int main(int argc, char **argv)
{
	shmq_dispatch(argc, argv);
	if (argc < 2)
		return 2;
	if (!strcmp(argv[1], "region"))
		return do_region();
	if (!strcmp(argv[1], "pipe"))
		return do_pipe();
	if (!strcmp(argv[1], "print"))
		return do_print();
	if (!strcmp(argv[1], "fds"))
		return do_fds();
	if (!strcmp(argv[1], "gen") && argc > 2)
		return do_gen(argv[2]);
	if (!strcmp(argv[1], "exit") && argc > 2)
		return atoi(argv[2]);
	return 2;
}
