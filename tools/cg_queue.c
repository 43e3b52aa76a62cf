/* SPDX-License-Identifier: MIT */
/*
 * The queue's hot paths under callgrind: one process, one queue of 1024
 * slots, 64-byte messages; N rounds of put + get, then N rounds of put +
 * get_begin + get_commit.  Run it through tools/callgrind-queue.sh, which
 * toggles collection on each call and prints instructions per call; run
 * alone it only checks that every call succeeds (exit 0).
 *
 *     tools/cg_queue [rounds]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <shmq.h>

int main(int argc, char **argv)
{
	long rounds = argc > 1 ? atol(argv[1]) : 10000;
	struct shmq_region_opts ro = { .size = (size_t)4 << 20 };
	char name[64], msg[64], buf[64];
	shmq_region *r;
	shmq_queue *q;
	const void *in;
	uint64_t pos;

	memset(msg, 'x', sizeof(msg));
	snprintf(name, sizeof(name), "/shmq-cg-%d", (int)getpid());
	if (shmq_region_create(name, &ro, &r))
		return 99;
	shmq_region_unlink(name);
	if (shmq_queue_create(r, "q", &(struct shmq_queue_opts){ .capacity = 1024, .max_msg = 64 }, &q))
		return 99;
	for (long i = 0; i < rounds; i++) {
		if (shmq_queue_put(q, msg, sizeof(msg), SHMQ_NOWAIT) ||
		    shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT) != (ssize_t)sizeof(msg))
			return 1;
	}
	for (long i = 0; i < rounds; i++) {
		if (shmq_queue_put(q, msg, sizeof(msg), SHMQ_NOWAIT) ||
		    shmq_queue_get_begin(q, &in, &pos, SHMQ_NOWAIT) != (ssize_t)sizeof(msg) ||
		    shmq_queue_get_commit(q, pos))
			return 1;
	}
	shmq_queue_close(q);
	shmq_region_close(r);
	return 0;
}
