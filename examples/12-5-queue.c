/* SPDX-License-Identifier: MIT */
/*
 * Recipe 12-5: communicate between processes with a queue.
 *
 * Python:  my_queue = multiprocessing.Queue()
 *          child: queue1.put(['hello', 'world'])
 *          parent: print(my_queue.get())
 *
 * A queue is MPMC: any number of processes may put and get.  Three children
 * each put their words; the parent shuts the queue down once they are done
 * and drains it: a get on an empty, shut-down queue returns -EPIPE.
 */
#include <stdio.h>
#include <string.h>

#include <shmq.h>

#define CHILDREN 3

static int func(shmq_region *r, const void *arg, size_t len)
{
	shmq_queue *q;
	char msg[64];
	int id;

	if (len != sizeof(id) || shmq_queue_open(r, "q", &q))
		return 1;
	memcpy(&id, arg, sizeof(id));
	snprintf(msg, sizeof(msg), "['hello', 'world'] from child %d", id);
	if (shmq_queue_put(q, msg, strlen(msg), SHMQ_FOREVER))
		return 1;
	shmq_queue_close(q);
	return 0;
}
SHMQ_ENTRY(func);

int main(int argc, char **argv)
{
	shmq_region *r;
	shmq_queue *q;
	shmq_proc *p[CHILDREN];
	char buf[64];
	ssize_t n;
	int rc, got = 0;

	shmq_dispatch(argc, argv);
	rc = shmq_region_create(NULL, NULL, &r);
	if (!rc)
		rc = shmq_queue_create(r, "q", NULL, &q);
	for (int i = 0; !rc && i < CHILDREN; i++)
		rc = shmq_proc_spawn(r, "func", &i, sizeof(i), NULL, &p[i]);
	if (rc) {
		fprintf(stderr, "setup: %s\n", shmq_strerror(rc));
		return 1;
	}
	for (int i = 0; i < CHILDREN; i++) {
		shmq_proc_join(p[i], SHMQ_FOREVER);
		shmq_proc_close(p[i]);
	}
	shmq_queue_shutdown(q);
	while ((n = shmq_queue_get(q, buf, sizeof(buf) - 1, SHMQ_FOREVER)) >= 0) {
		buf[n] = '\0';
		got++;
	}
	printf("received %d messages, the last: %s; then: %s\n", got, buf, shmq_strerror((int)n));
	shmq_queue_close(q);
	shmq_region_close(r);
	return got != CHILDREN || n != -EPIPE;
}
