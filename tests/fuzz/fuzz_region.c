/* SPDX-License-Identifier: MIT */
/* Fuzz target: a region image with a corrupted header, control block,
 * process table or directory, fed to open, find, walk, info and alloc. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include <shmq.h>

#include "fuzz.h"
#include "patch.h"
#include "core/region_int.h"

#define IMAGE_SIZE SHMQ_REGION_MIN_SIZE

static const char *const names[] = { "alpha", "beta", "gamma", "delta" };

/* A valid image with a few objects, as a fresh memfd. */
static int image_make(void)
{
	shmq_region *r;
	void *mem;
	int fd;

	if (shmq_region_create(NULL, &(struct shmq_region_opts){ .size = IMAGE_SIZE }, &r))
		return -1;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		shmq__obj_create(r, names[i], SHMQ__OBJ_BLOB, 64 * (i + 1), NULL, NULL, &mem);
	fd = fcntl(shmq__region_fd(r), F_DUPFD_CLOEXEC, 0);
	shmq_region_close(r);
	return fd;
}

static int visit(const char *name, uint32_t type, void *mem, uint64_t size, void *arg)
{
	volatile uint8_t sink;

	(void)name;
	(void)type;
	(void)arg;
	if (mem && size) /* touch both ends of what the directory claims */
		sink = ((uint8_t *)mem)[0] + ((uint8_t *)mem)[size - 1];
	(void)sink;
	return 0;
}

static void readers(shmq_region *r)
{
	struct shmq_region_info info;
	void *mem;
	uint64_t size;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (shmq__obj_find(r, names[i], SHMQ__OBJ_BLOB, &mem, &size) == 0)
			visit(names[i], SHMQ__OBJ_BLOB, mem, size, NULL);
	}
	shmq__obj_walk(r, visit, NULL);
	shmq_region_info(r, &info);
	for (unsigned slot = 0; slot < 4; slot++) {
		struct shmq__ptab_entry e;

		shmq__region_ptab_get(r, slot, &e);
		shmq__region_id_alive(r, slot | 1u << SHMQ__ID_SLOT_BITS);
	}
	if (shmq__obj_create(r, "new", SHMQ__OBJ_BLOB, 128, NULL, NULL, &mem) == 0)
		((uint8_t *)mem)[127] = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	shmq_region *r;
	int fd = image_make();

	if (fd < 0)
		return 0;
	fuzz_apply_patches(fd, IMAGE_SIZE, data, size);
	if (shmq__region_from_fd(fd, NULL, &r) == 0) {
		readers(r);
		shmq_region_close(r);
	}
	close(fd);
	return 0;
}
