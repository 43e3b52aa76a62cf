/* SPDX-License-Identifier: MIT */
/*
 * Recipe 12-5: communicate between processes with a pipe.
 *
 * Python:  parent_end, child_end = multiprocessing.Pipe()
 *          child: pipe_end.send(['hello', 'world']); pipe_end.close()
 *          parent: print(parent_end.recv())
 *
 * A pipe is duplex: two SPSC rings, one per direction.  The child opens end
 * 1 by name, sends each word as one message and closes; the parent receives
 * until -EPIPE, which it gets once every handle of end 1 is closed (or every
 * process holding one has died) and everything sent has been read.
 */
#include <stdio.h>
#include <string.h>

#include <shmq.h>

static int func(shmq_region *r, const void *arg, size_t len)
{
	static const char *const words[] = { "hello", "world" };
	shmq_pipe *end;
	char ack[8];

	(void)arg;
	(void)len;
	if (shmq_pipe_open(r, "p", 1, &end))
		return 1;
	for (size_t i = 0; i < 2; i++)
		if (shmq_pipe_send(end, words[i], strlen(words[i]), SHMQ_FOREVER))
			return 1;
	/* duplex: the parent answers on the same pipe */
	if (shmq_pipe_recv(end, ack, sizeof(ack), 10 * 1000000000LL) != 2 || memcmp(ack, "ok", 2))
		return 1;
	shmq_pipe_close(end);
	return 0;
}
SHMQ_ENTRY(func);

int main(int argc, char **argv)
{
	shmq_region *r;
	shmq_pipe *parent_end, *child_end;
	shmq_proc *p;
	char buf[64];
	ssize_t n;
	int rc, words = 0;

	shmq_dispatch(argc, argv);
	rc = shmq_region_create(NULL, NULL, &r);
	if (!rc)
		rc = shmq_pipe_create(r, "p", NULL, &parent_end, &child_end);
	if (!rc)
		rc = shmq_proc_spawn(r, "func", NULL, 0, NULL, &p);
	if (rc) {
		fprintf(stderr, "setup: %s\n", shmq_strerror(rc));
		return 1;
	}
	/* End 1 is the child's: drop the creator's handle at once.  Nobody has
	 * used it yet, so it counts as held until the child opens it; then it
	 * is closed when the child closes it (or dies). */
	shmq_pipe_close(child_end);
	printf("[");
	while ((n = shmq_pipe_recv(parent_end, buf, sizeof(buf) - 1, 10 * 1000000000LL)) >= 0) {
		buf[n] = '\0';
		printf("%s'%s'", words++ ? ", " : "", buf);
		if (words == 2)
			shmq_pipe_send(parent_end, "ok", 2, SHMQ_FOREVER);
	}
	printf("]\n");
	printf("then: %s\n", shmq_strerror((int)n));
	shmq_proc_join(p, SHMQ_FOREVER);
	rc = shmq_proc_exitcode(p);
	shmq_proc_close(p);
	shmq_pipe_close(parent_end);
	shmq_region_close(r);
	return rc != 0 || words != 2 || n != -EPIPE;
}
