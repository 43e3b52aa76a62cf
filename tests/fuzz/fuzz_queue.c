/* SPDX-License-Identifier: MIT */
/* Fuzz target: an MPMC queue's control block (head, tail, capacity, max_msg,
 * shutdown, sleeper words, the redelivery count, the large-message chunk
 * link) and slots (sequence/claim words with their claimer ids and hold
 * bits, lengths, payloads, large slots' descriptors) corrupted,
 * then open, len, stats, two-phase gets (begin, commit, abort), get, put,
 * shutdown and draining gets over it. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "ring/mpmc_int.h"
#include "objimage.h"

static const char *const names[] = { "q" };
static const uint32_t types[] = { SHMQ__OBJ_QUEUE };

/* Messages queued, some taken, and two claims left by the image's maker
 * (gone once the image is reopened): a half-done put and a half-done get.
 * The claims go through the handle's ring, the first member of the queue
 * handle (lib/queue.c). */
static int build(shmq_region *r)
{
	struct shmq__mpmc_block blk;
	struct shmq__mpmc *m;
	shmq_queue *q;
	char buf[32] = "0123456789abcdefghijklmnopqrstu";
	uint64_t pos;
	uint32_t len;
	int rc = shmq_queue_create(r, "q", &(struct shmq_queue_opts){ .capacity = 8, .max_msg = 32 },
				   &q);

	if (rc)
		return rc;
	for (unsigned i = 0; i < 6; i++)
		shmq_queue_put(q, buf, i * 5, SHMQ_NOWAIT);
	/* two large slots (chan/queue_int.h, Protocol QLARGE): descriptors
	 * {len, off, st} naming blocks in a chunk of the heap */
	{
		static char big[300];

		shmq_queue_put(q, big, 100, SHMQ_NOWAIT);
		shmq_queue_put(q, big, sizeof(big), SHMQ_NOWAIT);
	}
	for (unsigned i = 0; i < 2; i++)
		shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT);
	/* two-phase gets: one given back (RETURNED, redo counts it), one
	 * left held by the maker (given back once the image is reopened) */
	{
		const void *msg;
		uint64_t p1, p2;

		if (shmq_queue_get_begin(q, &msg, &p1, SHMQ_NOWAIT) >= 0 &&
		    shmq_queue_get_begin(q, &msg, &p2, SHMQ_NOWAIT) >= 0)
			shmq_queue_get_abort(q, p1);
	}
	m = (struct shmq__mpmc *)q;
	shmq__mpmc_get_claim(m, sizeof(buf), &pos, &len, &blk);
	shmq__mpmc_put_claim(m, &pos, &blk);
	shmq_queue_close(q);
	return 0;
}

static void readers(shmq_region *r)
{
	struct shmq_queue_stats st;
	shmq_queue *q;
	char buf[64];
	int rc = shmq_queue_open(r, "q", &q);
	ssize_t n;

	FUZZ_EXPECT(rc, 0, -EBADMSG, -EPROTO);
	if (rc)
		return;
	(void)shmq_queue_len(q);
	FUZZ_EXPECT(shmq_queue_stats(q, &st), 0, -EBADMSG);
	/* two-phase gets over the corrupted control state: a length never
	 * above the handle's max_msg (or, for a large one, the region's
	 * size), every byte of it readable in place */
	for (unsigned i = 0; i < 4; i++) {
		const void *msg;
		uint64_t pos;

		n = shmq_queue_get_begin(q, &msg, &pos, i % 2 ? 100000 : SHMQ_NOWAIT);
		if (n < 0) {
			FUZZ_EXPECT(n, -EAGAIN, -ETIMEDOUT, -EPIPE, -EBADMSG);
			continue;
		}
		if ((size_t)n > st.max_msg && (size_t)n > FUZZ_IMAGE_SIZE)
			abort();
		for (size_t k = 0; k < (size_t)n; k++)
			buf[k % sizeof(buf)] ^= ((const volatile char *)msg)[k];
		if (i == 1)
			FUZZ_EXPECT(shmq_queue_get_abort(q, pos), 0);
		else
			FUZZ_EXPECT(shmq_queue_get_commit(q, pos), 0);
		FUZZ_EXPECT(shmq_queue_get_commit(q, pos), -EINVAL);
	}
	FUZZ_EXPECT(shmq_queue_get_commit(q, UINT64_MAX), -EINVAL);
	for (unsigned i = 0; i < 4; i++) {
		n = shmq_queue_get(q, buf, i == 3 ? 4 : sizeof(buf), i % 2 ? 100000 : SHMQ_NOWAIT);
		if (n < 0)
			FUZZ_EXPECT(n, -EAGAIN, -ETIMEDOUT, -EMSGSIZE, -EPIPE, -EBADMSG);
		else if ((size_t)n > sizeof(buf))
			abort();
	}
	{
		void *a = NULL;

		n = shmq_queue_get_alloc(q, &a, SHMQ_NOWAIT);
		if (n < 0)
			FUZZ_EXPECT(n, -EAGAIN, -EPIPE, -EBADMSG, -ENOMEM);
		else if ((size_t)n > FUZZ_IMAGE_SIZE)
			abort();
		free(a);
	}
	FUZZ_EXPECT(shmq_queue_put(q, buf, 7, SHMQ_NOWAIT), 0, -EAGAIN, -EPIPE, -EBADMSG);
	FUZZ_EXPECT(shmq_queue_put(q, buf, 9, 100000), 0, -ETIMEDOUT, -EPIPE, -EBADMSG);
	/* longer than max_msg: through the heap, whose chunk link may be garbage */
	FUZZ_EXPECT(shmq_queue_put(q, buf, 64, SHMQ_NOWAIT), 0, -EAGAIN, -ENOSPC, -EPIPE, -EBADMSG);
	FUZZ_EXPECT(shmq_queue_shutdown(q), 0, -EBADMSG);
	FUZZ_EXPECT(shmq_queue_put(q, buf, 1, SHMQ_NOWAIT), -EPIPE, -EBADMSG);
	for (unsigned i = 0; i < 12; i++) {
		n = shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT);
		if (n < 0)
			FUZZ_EXPECT(n, -EAGAIN, -EMSGSIZE, -EPIPE, -EBADMSG);
		if (n == -EPIPE || n == -EBADMSG)
			break;
	}
	(void)shmq_queue_len(q);
	shmq_queue_close(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_object_run(build, names, types, 1, data, size, readers);
}
