/* SPDX-License-Identifier: MIT */
/*
 * Recipe 12-3: use a barrier.
 *
 * Python:  b = threading.Barrier(5, timeout=10); ... b.wait()
 *
 * Five processes meet at the barrier three times.  Each wait returns a
 * distinct arrival index in [0, 5) per generation; a wait that times out
 * breaks the barrier for everyone (-ETIMEDOUT to that party, -EPIPE to the
 * others), just as Python raises BrokenBarrierError.
 */
#include <stdio.h>
#include <string.h>

#include <shmq.h>

#define PARTIES 5
#define ROUNDS  3
#define TIMEOUT (10 * 1000000000LL)

/* seen[round][index]: which arrival indices each round handed out */
struct board {
	unsigned seen[ROUNDS][PARTIES];
};

static int party(shmq_region *r, const void *arg, size_t len)
{
	shmq_barrier *b;
	struct board *bd;

	(void)arg;
	(void)len;
	if (shmq_barrier_open(r, "b", &b) || shmq_region_find(r, "board", (void **)&bd, NULL))
		return 1;
	for (int round = 0; round < ROUNDS; round++) {
		int idx = shmq_barrier_wait(b, TIMEOUT);

		if (idx < 0 || idx >= PARTIES)
			return 2;
		__atomic_fetch_add(&bd->seen[round][idx], 1, __ATOMIC_RELAXED); /* joined below */
	}
	shmq_barrier_close(b);
	return 0;
}
SHMQ_ENTRY(party);

int main(int argc, char **argv)
{
	shmq_region *r;
	shmq_barrier *b;
	shmq_proc *p[PARTIES];
	struct board *bd;
	int rc, bad = 0;

	shmq_dispatch(argc, argv);
	rc = shmq_region_create(NULL, NULL, &r);
	if (!rc)
		rc = shmq_barrier_create(r, "b", PARTIES, &b);
	if (!rc)
		rc = shmq_region_alloc(r, "board", sizeof(*bd), (void **)&bd);
	for (int i = 0; !rc && i < PARTIES; i++)
		rc = shmq_proc_spawn(r, "party", NULL, 0, NULL, &p[i]);
	if (rc) {
		fprintf(stderr, "setup: %s\n", shmq_strerror(rc));
		return 1;
	}
	for (int i = 0; i < PARTIES; i++) {
		shmq_proc_join(p[i], SHMQ_FOREVER);
		bad |= shmq_proc_exitcode(p[i]) != 0;
		shmq_proc_close(p[i]);
	}
	for (int round = 0; round < ROUNDS; round++)
		for (int idx = 0; idx < PARTIES; idx++)
			bad |= bd->seen[round][idx] != 1;
	printf("%d parties passed the barrier %d times, each round handing out indices 0..%d once\n",
	       PARTIES, ROUNDS, PARTIES - 1);
	shmq_barrier_close(b);
	shmq_region_close(r);
	return bad;
}
