/* SPDX-License-Identifier: MIT */
/*
 * Test helper for tests/test_tools.sh: makes regions in the states the
 * `shmq` tool must report.
 *
 * Each region holds two blobs ("table", "counters"), two locks ("mutex",
 * held by the creator until it detaches, or forever if it dies, and "spare"),
 * two barriers ("gate", 3 parties, and "broken", 2 parties, aborted), two
 * queues ("jobs" with 3 messages, "done" shut down) and a pipe ("chan", one
 * 100-byte message from end 0 to end 1).
 *
 *   tools_mkregion plain NAME          a region with objects; creator detaches
 *   tools_mkregion hold NAME SECONDS   the same, creator stays attached and
 *                                      prints "ready" once it is built
 *   tools_mkregion die NAME            creator dies (SIGKILL) while attached
 *   tools_mkregion corrupt NAME        header checksum broken after creation
 *   tools_mkregion baddir NAME         one directory entry's offset corrupted
 *   tools_mkregion foreign NAME        a /dev/shm file without libshmq's header
 *
 * Exit 0 on success (except die, killed by design), 1 on failure.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <shmq.h>

#define REGION_SIZE (256u << 10)

static shmq_lock *lock, *spare;
static shmq_barrier *gate, *broken;
static shmq_queue *jobs, *done;
static shmq_pipe *chan0, *chan1;

/* A queue "jobs" (capacity 8) holding 3 messages, a queue "done" shut down,
 * and a pipe "chan" with one 100-byte message in flight from end 0 to end 1. */
static int make_rings(shmq_region *r)
{
	struct shmq_queue_opts qo = { .capacity = 8, .max_msg = 64 };
	char msg[100] = "hello";
	int rc = shmq_queue_create(r, "jobs", &qo, &jobs);

	for (int i = 0; i < 3 && !rc; i++)
		rc = shmq_queue_put(jobs, msg, 16, SHMQ_NOWAIT);
	if (!rc)
		rc = shmq_queue_create(r, "done", &qo, &done);
	if (!rc)
		rc = shmq_queue_shutdown(done);
	if (!rc)
		rc = shmq_pipe_create(r, "chan", NULL, &chan0, &chan1);
	if (!rc)
		rc = shmq_pipe_send(chan0, msg, sizeof(msg), SHMQ_NOWAIT);
	return rc;
}

static void close_rings(void)
{
	shmq_queue_close(jobs);
	shmq_queue_close(done);
	shmq_pipe_close(chan0);
	shmq_pipe_close(chan1);
}

static int make(const char *name, shmq_region **out)
{
	struct shmq_region_opts o = { .size = REGION_SIZE };
	void *mem;
	int rc = shmq_region_create(name, &o, out);

	if (rc) {
		fprintf(stderr, "tools_mkregion: create %s: %s\n", name, shmq_strerror(rc));
		return rc;
	}
	rc = shmq_region_alloc(*out, "table", 4096, &mem);
	if (!rc)
		rc = shmq_region_alloc(*out, "counters", 64, &mem);
	if (!rc)
		rc = shmq_lock_create(*out, "mutex", &lock);
	if (!rc)
		rc = shmq_lock_create(*out, "spare", &spare);
	/* "mutex" stays held by this process: released by close, or never
	 * when it dies; "spare" stays free. */
	if (!rc)
		rc = shmq_lock_acquire(lock, SHMQ_NOWAIT);
	if (!rc)
		rc = shmq_barrier_create(*out, "gate", 3, &gate);
	if (!rc)
		rc = shmq_barrier_create(*out, "broken", 2, &broken);
	if (!rc)
		rc = shmq_barrier_abort(broken);
	if (!rc)
		rc = make_rings(*out);
	if (rc) {
		fprintf(stderr, "tools_mkregion: alloc: %s\n", shmq_strerror(rc));
		shmq_region_close(*out);
	}
	return rc;
}

/* Overwrite len bytes at off of the region's file. */
static int poke(const char *name, off_t off, const void *bytes, size_t len)
{
	int fd = shm_open(name, O_RDWR, 0);

	if (fd < 0)
		return -errno;
	ssize_t n = pwrite(fd, bytes, len, off);
	close(fd);
	return n == (ssize_t)len ? 0 : -EIO;
}

static int peek32(const char *name, off_t off, uint32_t *v)
{
	int fd = shm_open(name, O_RDONLY, 0);

	if (fd < 0)
		return -errno;
	ssize_t n = pread(fd, v, sizeof(*v), off);
	close(fd);
	return n == (ssize_t)sizeof(*v) ? 0 : -EIO;
}

/*
 * The layout facts the corruptions below rely on (lib/region.c): the header
 * is line 0 with dir_off, a uint32, at byte 32; a directory entry starts with
 * state, type (uint32 each) and then off (uint64) at byte 8.  Should the
 * layout move, the test that uses them fails loudly rather than passing.
 */
#define HDR_DIR_OFF_AT 32
#define ENTRY_OFF_AT   8

static int corrupt_header(const char *name)
{
	uint8_t b = 0xa5;

	return poke(name, 20, &b, 1); /* inside the size field: checksum fails */
}

static int corrupt_dir(const char *name)
{
	uint32_t dir_off;
	uint64_t bad = 12345; /* not cache-line aligned: entry_check refuses it */
	int rc = peek32(name, HDR_DIR_OFF_AT, &dir_off);

	if (rc)
		return rc;
	return poke(name, (off_t)dir_off + ENTRY_OFF_AT, &bad, sizeof(bad));
}

static int foreign(const char *name)
{
	char buf[8192];
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);

	if (fd < 0)
		return -errno;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 7 + 1);
	ssize_t n = write(fd, buf, sizeof(buf));
	close(fd);
	return n == (ssize_t)sizeof(buf) ? 0 : -EIO;
}

int main(int argc, char **argv)
{
	shmq_region *r;
	int rc;

	if (argc < 3)
		return 1;
	const char *what = argv[1], *name = argv[2];
	if (strcmp(what, "foreign") == 0)
		return foreign(name) ? 1 : 0;
	if (make(name, &r))
		return 1;
	if (strcmp(what, "hold") == 0 && argc == 4) {
		printf("ready\n");
		fflush(stdout);
		sleep((unsigned)atoi(argv[3]));
		close_rings();
		shmq_lock_release(lock);
		shmq_region_close(r);
		return 0;
	}
	if (strcmp(what, "die") == 0)
		raise(SIGKILL);
	close_rings();
	shmq_lock_release(lock);
	shmq_lock_close(lock);
	shmq_lock_close(spare);
	shmq_barrier_close(gate);
	shmq_barrier_close(broken);
	shmq_region_close(r);
	if (strcmp(what, "plain") == 0)
		return 0;
	if (strcmp(what, "corrupt") == 0)
		rc = corrupt_header(name);
	else if (strcmp(what, "baddir") == 0)
		rc = corrupt_dir(name);
	else
		rc = -EINVAL;
	if (rc)
		fprintf(stderr, "tools_mkregion %s %s: %s\n", what, name, shmq_strerror(rc));
	return rc ? 1 : 0;
}
