/* SPDX-License-Identifier: MIT */
/*
 * A work queue whose worker can crash mid-task without losing the task.
 *
 * Python (roughly): a multiprocessing.JoinableQueue whose get() is undone
 * when the worker dies before task_done().
 *
 * A worker takes a task with shmq_queue_get_begin (the task stays in the
 * queue's slot, held by the worker), does it, and only then frees it with
 * shmq_queue_get_commit.  If the worker dies in between, the task is handed
 * out again, with the same position, to the next worker that asks.  Here
 * the first worker crashes (SIGKILL, no cleanup at all) in the middle of its
 * third task; a second worker finds that task first and finishes the rest.
 * A task done twice is possible (a crash after the work, before the
 * commit): the work records results by the task's position, so doing it
 * again is harmless.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <shmq.h>

#define TASKS 10

struct results {
	uint32_t done[TASKS]; /* times each task was done */
};

static int worker(shmq_region *r, const void *arg, size_t len)
{
	int crash_at = -1, n = 0;
	struct results *res;
	size_t size;
	shmq_queue *q;

	if (len == sizeof(crash_at))
		memcpy(&crash_at, arg, sizeof(crash_at));
	if (shmq_queue_open(r, "tasks", &q) || shmq_region_find(r, "results", (void **)&res, &size))
		return 1;
	for (;;) {
		const void *msg;
		uint64_t pos;
		uint32_t task;
		ssize_t got = shmq_queue_get_begin(q, &msg, &pos, SHMQ_NOWAIT);

		if (got == -EAGAIN)
			break; /* all taken */
		if (got != (ssize_t)sizeof(task))
			return 1;
		memcpy(&task, msg, sizeof(task));
		if (task >= TASKS)
			return 1;
		if (n++ == crash_at)
			raise(SIGKILL); /* mid-task: the task is begun, not committed */
		__atomic_fetch_add(&res->done[task], 1, __ATOMIC_SEQ_CST); /* the work */
		if (shmq_queue_get_commit(q, pos))
			return 1;
	}
	shmq_queue_close(q);
	return 0;
}
SHMQ_ENTRY(worker);

static int run_worker(shmq_region *r, int crash_at)
{
	shmq_proc *p;
	int rc = shmq_proc_spawn(r, "worker", &crash_at, sizeof(crash_at), NULL, &p);

	if (rc)
		return rc;
	rc = shmq_proc_join(p, 30 * (int64_t)1000000000);
	if (!rc)
		rc = shmq_proc_exitcode(p);
	shmq_proc_close(p);
	return rc;
}

int main(int argc, char **argv)
{
	struct results *res;
	shmq_region *r;
	shmq_queue *q;
	int rc, crashed, ok = 1;

	shmq_dispatch(argc, argv);
	rc = shmq_region_create(NULL, NULL, &r);
	if (!rc)
		rc = shmq_queue_create(r, "tasks", NULL, &q);
	if (!rc)
		rc = shmq_region_alloc(r, "results", sizeof(*res), (void **)&res);
	for (uint32_t t = 0; !rc && t < TASKS; t++)
		rc = shmq_queue_put(q, &t, sizeof(t), SHMQ_NOWAIT);
	if (rc) {
		fprintf(stderr, "setup: %s\n", shmq_strerror(rc));
		return 1;
	}
	crashed = run_worker(r, 2);
	printf("worker 1 ended with %d (-%d: killed mid-task)\n", crashed, SIGKILL);
	rc = run_worker(r, -1);
	printf("worker 2 ended with %d\n", rc);
	for (int t = 0; t < TASKS; t++) {
		printf("task %d done %u time(s)\n", t, res->done[t]);
		ok &= res->done[t] == 1;
	}
	ok &= crashed == -SIGKILL && rc == 0 && shmq_queue_len(q) == 0;
	shmq_queue_close(q);
	shmq_region_close(r);
	puts(ok ? "every task done once, none lost" : "WRONG");
	return ok ? 0 : 1;
}
