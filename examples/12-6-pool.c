/* SPDX-License-Identifier: MIT */
/*
 * Recipe 12-6: create a pool of workers.
 *
 * Python:  pool1 = multiprocessing.Pool(processes=4)
 *          pool1.map(adder, range(10))          # blocks
 *          results = pool1.map_async(adder, range(10)); results.wait()
 *
 * The pool's workers are processes; each owns a deque in the region and
 * idle ones steal.  map writes out[i] = adder(in[i]) in order.
 */
#include <stdio.h>

#include <shmq.h>

#define N 10

static int adder(const void *in, void *out)
{
	const int *a = in;

	*(int *)out = *a + *a;
	return 0;
}
SHMQ_TASK(adder);

static void print_list(const int *v, size_t n)
{
	printf("[");
	for (size_t i = 0; i < n; i++)
		printf("%s%d", i ? ", " : "", v[i]);
	printf("]\n");
}

int main(int argc, char **argv)
{
	int in[N], out[N], out2[N];
	shmq_region *r;
	shmq_pool *pool;
	shmq_async *a;
	int rc;

	shmq_dispatch(argc, argv);
	for (int i = 0; i < N; i++)
		in[i] = i;
	rc = shmq_region_create(NULL, NULL, &r);
	if (!rc)
		rc = shmq_pool_create(r, &(struct shmq_pool_opts){ .workers = 4 }, &pool);
	if (!rc)
		rc = shmq_pool_map(pool, "adder", in, sizeof(int), out, sizeof(int), N, SHMQ_FOREVER);
	if (rc) {
		fprintf(stderr, "map: %s\n", shmq_strerror(rc));
		return 1;
	}
	printf("map:       ");
	print_list(out, N);
	rc = shmq_pool_map_async(pool, "adder", in, sizeof(int), out2, sizeof(int), N, &a);
	if (!rc)
		rc = shmq_async_wait(a, SHMQ_FOREVER);
	if (!rc)
		rc = shmq_async_get(a, SHMQ_NOWAIT);
	if (rc) {
		fprintf(stderr, "map_async: %s\n", shmq_strerror(rc));
		return 1;
	}
	shmq_async_free(a);
	printf("map_async: ");
	print_list(out2, N);
	shmq_pool_close(pool);
	rc = shmq_pool_join(pool, SHMQ_FOREVER);
	shmq_pool_free(pool);
	shmq_region_close(r);
	for (int i = 0; i < N; i++)
		rc |= out[i] != 2 * i || out2[i] != 2 * i;
	return rc != 0;
}
