/* SPDX-License-Identifier: MIT */
/*
 * Follow a program's output line by line, with a timeout.
 *
 * Python:  p = subprocess.Popen(cmd, stdout=subprocess.PIPE)
 *          for line in p.stdout: print(line)      # plus a select() timeout
 *          p.wait()
 *
 * The child's stdout is piped (SHMQ_STDOUT); its descriptor, from
 * shmq_proc_fd, is an ordinary one: poll it, read it, hand it to any event
 * loop.  Each complete line is printed as it arrives; the loop stops at EOF
 * or when no line came for a whole second, then the child is reaped (and
 * killed first if it is still running: shmq_proc_close never leaves a
 * zombie).  The example checks that it saw the three lines, in order.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <shmq.h>

#define QUIET_MS 10000 /* give up after this long without output */

/* Print the complete lines at the front of buf; keep the partial one. */
static size_t print_lines(char *buf, size_t len, int *lines)
{
	char *nl, *p = buf;

	while ((nl = memchr(p, '\n', len - (size_t)(p - buf)))) {
		*nl = '\0';
		printf("[tail] %s\n", p);
		if (strncmp(p, "line ", 5) == 0 && p[5] - '0' == *lines + 1)
			(*lines)++;
		p = nl + 1;
	}
	len -= (size_t)(p - buf);
	memmove(buf, p, len);
	return len;
}

/* Read fd until EOF or QUIET_MS of silence: 0 at EOF, -ETIMEDOUT. */
static int follow(int fd, int *lines)
{
	char buf[4096];
	size_t len = 0;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;
		int rc = poll(&pfd, 1, QUIET_MS);

		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return -errno;
		if (rc == 0)
			return -ETIMEDOUT;
		if (len == sizeof(buf))
			len = 0; /* a line longer than buf: drop it */
		n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		len = print_lines(buf, len + (size_t)n, lines);
	}
}

int main(int argc, char **argv)
{
	char *cmd[] = { "sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.1; done", NULL };
	const struct shmq_proc_opts o = { .pipes = SHMQ_STDOUT };
	shmq_proc *p;
	int rc, lines = 0, code;

	shmq_dispatch(argc, argv);
	rc = shmq_proc_exec(NULL, cmd, &o, &p);
	if (rc) {
		fprintf(stderr, "exec: %s\n", shmq_strerror(rc));
		return 1;
	}
	rc = follow(shmq_proc_fd(p, 1), &lines);
	printf("%s after %d lines\n", rc == 0 ? "EOF" : shmq_strerror(rc), lines);
	if (rc == 0)
		rc = shmq_proc_join(p, 5000000000LL); /* EOF: it is exiting */
	code = rc == 0 ? shmq_proc_exitcode(p) : -1;
	shmq_proc_close(p); /* kills and reaps it if it still runs */
	printf("exit status %d\n", code);
	return rc == 0 && code == 0 && lines == 3 ? 0 : 1;
}
