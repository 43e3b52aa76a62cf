/* SPDX-License-Identifier: MIT */
/* Fuzz target: a pipe's two SPSC rings (head and tail indices, record length
 * words, capacity), holder tables and end states corrupted, then open of
 * both ends, recv, peek/consume, recv_bulk, send, reserve/commit over it. */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "fuzz.h"
#include "objimage.h"

static const char *const names[] = { "p" };
static const uint32_t types[] = { SHMQ__OBJ_PIPE };

/* Close the maker's handles (no leak) but put the pipe's bytes back as they
 * were while open, so that the image's ends are still held (by the maker's
 * attachment, gone once the image is reopened: a dead holder, not a closed
 * end, which open would refuse with -EPIPE before reading anything). */
static int close_keeping_state(shmq_region *r, shmq_pipe *a, shmq_pipe *b)
{
	uint64_t size;
	void *mem, *copy;

	if (shmq__obj_find(r, "p", SHMQ__OBJ_PIPE, &mem, &size) || !(copy = malloc(size)))
		return -1;
	memcpy(copy, mem, size);
	shmq_pipe_close(a);
	shmq_pipe_close(b);
	memcpy(mem, copy, size);
	free(copy);
	return 0;
}

/* Records in both directions, some already consumed, so the indices have
 * moved and wrapped; the maker's handles close with the image. */
static int build(shmq_region *r)
{
	shmq_pipe *a, *b;
	char buf[96] = { 1, 2, 3 };
	int rc = shmq_pipe_create(r, "p", &(struct shmq_pipe_opts){ .capacity = 256 }, &a, &b);

	if (rc)
		return rc;
	for (unsigned i = 0; i < 9; i++) {
		shmq_pipe_send(a, buf, 5 + i * 7, SHMQ_NOWAIT);
		if (i % 3 != 2)
			shmq_pipe_recv(b, buf, sizeof(buf), SHMQ_NOWAIT);
	}
	shmq_pipe_send(b, buf, 40, SHMQ_NOWAIT);
	shmq_pipe_send(b, buf, 0, SHMQ_NOWAIT);
	return close_keeping_state(r, a, b);
}

static void reader_end(shmq_pipe *p)
{
	char buf[128];
	const void *msg;
	size_t len, lens[4];
	void *slot;
	ssize_t n;
	int rc;

	(void)shmq_pipe_max_msg(p);
	(void)shmq_pipe_capacity(p);
	n = shmq_pipe_recv(p, buf, sizeof(buf), SHMQ_NOWAIT);
	if (n < 0)
		FUZZ_EXPECT(n, -EAGAIN, -EPIPE, -EMSGSIZE, -EBADMSG);
	else if ((size_t)n > sizeof(buf))
		abort();
	n = shmq_pipe_recv(p, buf, 4, 100000);
	if (n < 0)
		FUZZ_EXPECT(n, -ETIMEDOUT, -EPIPE, -EMSGSIZE, -EBADMSG);
	rc = shmq_pipe_peek(p, &msg, &len, SHMQ_NOWAIT);
	FUZZ_EXPECT(rc, 0, -EAGAIN, -EPIPE, -EBADMSG);
	if (rc == 0) {
		volatile const char *m = msg;

		if (len)
			(void)(m[0] + m[len - 1]); /* the whole record must be readable */
		FUZZ_EXPECT(shmq_pipe_consume(p), 0, -EBADMSG);
	}
	n = shmq_pipe_recv_bulk(p, buf, sizeof(buf), lens, 4, SHMQ_NOWAIT);
	if (n < 0)
		FUZZ_EXPECT(n, -EAGAIN, -EPIPE, -EMSGSIZE, -EBADMSG);
	else if (n > 4)
		abort();
	FUZZ_EXPECT(shmq_pipe_send(p, buf, 11, SHMQ_NOWAIT), 0, -EAGAIN, -EPIPE, -EBADMSG);
	FUZZ_EXPECT(shmq_pipe_send(p, buf, 3, 100000), 0, -ETIMEDOUT, -EPIPE, -EBADMSG);
	FUZZ_EXPECT(shmq_pipe_send(p, buf, 100000, SHMQ_NOWAIT), -EMSGSIZE, -EPIPE, -EBADMSG);
	rc = shmq_pipe_reserve(p, 20, &slot, SHMQ_NOWAIT);
	FUZZ_EXPECT(rc, 0, -EAGAIN, -EPIPE, -EBADMSG);
	if (rc == 0) {
		memset(slot, 0x5a, 20);
		FUZZ_EXPECT(shmq_pipe_commit(p, 20, 0), 0, -EBADMSG);
	}
}

static void readers(shmq_region *r)
{
	for (int end = 0; end < 2; end++) {
		shmq_pipe *p;
		int rc = shmq_pipe_open(r, "p", end, &p);

		FUZZ_EXPECT(rc, 0, -EBADMSG, -EPROTO, -EPIPE, -ENOSPC);
		if (rc)
			continue;
		reader_end(p);
		shmq_pipe_close(p);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_object_run(build, names, types, 1, data, size, readers);
}
