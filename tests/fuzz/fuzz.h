/* SPDX-License-Identifier: MIT */
/*
 * Hostile-memory fuzzing: each target builds a valid region image in a
 * memfd, lets the input overwrite parts of it, and runs every reader over
 * the result.  The readers must refuse with -EBADMSG (or another documented
 * error), never crash, read out of bounds or hang.
 *
 * The same targets build two ways:
 *  - `make fuzz`: clang -fsanitize=fuzzer,address,undefined (libFuzzer main);
 *  - `make check`: tests/fuzz/replay.c drives them over the stored corpus
 *    and over a fixed, seeded series of random patches.
 *
 * Input format: a series of patches, each [u32 offset][u8 len][len bytes];
 * offsets are taken modulo the image size.
 */
#ifndef SHMQ_FUZZ_H
#define SHMQ_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
