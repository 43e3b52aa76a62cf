/* SPDX-License-Identifier: MIT */
/*
 * Recipe 12-4: create a process.
 *
 * Python:  proc1 = multiprocessing.Process(target=adder, args=(2, 2))
 *          proc1.start(); proc1.join()
 *
 * The listing throws adder's result away.  Here the child is started with
 * posix_spawn (SHMQ_ENTRY registers adder; shmq_dispatch runs it in the
 * child), gets its arguments as bytes, and sends the sum back through a
 * queue in the region the two processes share.
 */
#include <stdio.h>

#include <shmq.h>

struct args {
	int a, b;
};

static int adder(shmq_region *r, const void *arg, size_t len)
{
	const struct args *in = arg;
	shmq_queue *q;
	int sum;

	if (len != sizeof(*in) || shmq_queue_open(r, "results", &q))
		return 1;
	sum = in->a + in->b;
	if (shmq_queue_put(q, &sum, sizeof(sum), SHMQ_FOREVER))
		return 1;
	shmq_queue_close(q);
	return 0;
}
SHMQ_ENTRY(adder);

int main(int argc, char **argv)
{
	struct args in = { 2, 2 };
	shmq_region *r;
	shmq_queue *q;
	shmq_proc *p;
	int sum = 0, rc;
	ssize_t n;

	shmq_dispatch(argc, argv);
	rc = shmq_region_create(NULL, NULL, &r);
	if (!rc)
		rc = shmq_queue_create(r, "results", NULL, &q);
	if (!rc)
		rc = shmq_proc_spawn(r, "adder", &in, sizeof(in), NULL, &p);
	if (rc) {
		fprintf(stderr, "setup: %s\n", shmq_strerror(rc));
		return 1;
	}
	n = shmq_queue_get(q, &sum, sizeof(sum), 10 * 1000000000LL);
	rc = shmq_proc_join(p, SHMQ_FOREVER);
	printf("adder(%d, %d) = %d; child pid %d exited with %d\n", in.a, in.b, n == sizeof(sum) ? sum : -1,
	       (int)shmq_proc_pid(p), shmq_proc_exitcode(p));
	shmq_proc_close(p);
	shmq_queue_close(q);
	shmq_region_close(r);
	return rc || n != sizeof(sum) || sum != 4;
}
