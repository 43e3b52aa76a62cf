/* SPDX-License-Identifier: MIT */
/*
 * Recipe 12-2: use a lock.
 *
 * Python (corrected: the listing calls threading.thread, which does not
 * exist, and shadows the builtin sum):
 *     total = 0
 *     lock = threading.Lock()
 *     def adder():
 *         global total
 *         with lock:
 *             total += 1
 *
 * Here the adders are separate processes and the counter lives in a shared
 * region, so the lock works across processes.  Without it the plain
 * read-modify-write below would lose increments.
 */
#include <stdio.h>

#include <shmq.h>

#define WORKERS 4
#define ROUNDS  10000

static int adder(shmq_region *r, const void *arg, size_t len)
{
	shmq_lock *lock;
	long *total;
	int rc;

	(void)arg;
	(void)len;
	if (shmq_lock_open(r, "lock", &lock) || shmq_region_find(r, "total", (void **)&total, NULL))
		return 1;
	for (int i = 0; i < ROUNDS; i++) {
		rc = shmq_lock_acquire(lock, SHMQ_FOREVER);
		if (rc < 0 && rc != -EOWNERDEAD)
			return 1;
		*total = *total + 1; /* a plain, unprotected read-modify-write */
		shmq_lock_release(lock);
	}
	shmq_lock_close(lock);
	return 0;
}
SHMQ_ENTRY(adder);

int main(int argc, char **argv)
{
	shmq_region *r;
	shmq_lock *lock;
	shmq_proc *p[WORKERS];
	long *total;
	int rc, failed = 0;

	shmq_dispatch(argc, argv);
	rc = shmq_region_create(NULL, NULL, &r);
	if (!rc)
		rc = shmq_lock_create(r, "lock", &lock);
	if (!rc)
		rc = shmq_region_alloc(r, "total", sizeof(*total), (void **)&total);
	for (int i = 0; !rc && i < WORKERS; i++)
		rc = shmq_proc_spawn(r, "adder", NULL, 0, NULL, &p[i]);
	if (rc) {
		fprintf(stderr, "setup: %s\n", shmq_strerror(rc));
		return 1;
	}
	for (int i = 0; i < WORKERS; i++) {
		shmq_proc_join(p[i], SHMQ_FOREVER);
		failed |= shmq_proc_exitcode(p[i]) != 0;
		shmq_proc_close(p[i]);
	}
	long sum = *total; /* read before the region (and the counter in it) goes away */

	printf("total = %ld (%d processes x %d increments)\n", sum, WORKERS, ROUNDS);
	shmq_lock_close(lock);
	shmq_region_close(r);
	return failed || sum != WORKERS * ROUNDS;
}
