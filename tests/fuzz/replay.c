/* SPDX-License-Identifier: MIT */
/*
 * Runs a fuzz target without libFuzzer, as part of `make check`: every file
 * of its stored corpus, then a fixed, seeded series of random patch inputs
 * aimed at the first pages of the image (header, control block, process
 * table, directory).  Under ASan/UBSan any out-of-bounds access fails it.
 *
 * usage: replay [CORPUS_DIR] [ROUNDS] [SEED]
 */
#include "config.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#ifndef FUZZ_REPLAY_ROUNDS
#define FUZZ_REPLAY_ROUNDS 3000
#endif

static int replay_dir(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char path[4096];
		uint8_t buf[1 << 16];
		size_t len;
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		f = fopen(path, "rb");
		if (!f)
			continue;
		len = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		LLVMFuzzerTestOneInput(buf, len);
		n++;
	}
	closedir(d);
	return n;
}

static uint64_t rng_next(uint64_t *s)
{
	/* splitmix64 */
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static size_t random_input(uint8_t *buf, uint64_t *s)
{
	size_t n = 0;
	unsigned patches = 1 + rng_next(s) % 4;

	for (unsigned p = 0; p < patches; p++) {
		/* bias towards the metadata pages; sometimes anywhere */
		uint32_t span = (rng_next(s) % 4) ? 48 * 1024 : UINT32_MAX;
		uint32_t off = (uint32_t)(rng_next(s) % span);
		uint8_t len = (uint8_t)(1 + rng_next(s) % 16);

		if (rng_next(s) % 3 == 0) /* align to a field */
			off &= ~7u;
		memcpy(buf + n, &off, 4);
		buf[n + 4] = len;
		n += 5;
		for (unsigned i = 0; i < len; i++)
			buf[n++] = (uint8_t)rng_next(s);
	}
	return n;
}

int main(int argc, char **argv)
{
#ifdef FUZZ_CORPUS_DIR
	const char *dir = argc > 1 ? argv[1] : FUZZ_CORPUS_DIR;
#else
	const char *dir = argc > 1 ? argv[1] : NULL;
#endif
	long rounds = argc > 2 ? atol(argv[2]) : FUZZ_REPLAY_ROUNDS;
	uint64_t seed = argc > 3 ? strtoull(argv[3], NULL, 0) : 0x5eed;
	uint8_t buf[4 * (5 + 16)];
	int files = dir ? replay_dir(dir) : 0;

	for (long i = 0; i < rounds; i++) {
		size_t n = random_input(buf, &seed);

		LLVMFuzzerTestOneInput(buf, n);
	}
	printf("replayed %d corpus files and %ld seeded random inputs\n", files, rounds);
	return 0;
}
