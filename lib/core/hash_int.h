/* SPDX-License-Identifier: MIT */
/*
 * Private: the library's one non-cryptographic hash, FNV-1a 64.  It serves
 * checksums of shared headers and hashes of registered names; it is no
 * defence against a hostile writer, only against accidents.
 */
#ifndef SHMQ__HASH_H
#define SHMQ__HASH_H

#include <stddef.h>
#include <stdint.h>

#define SHMQ__FNV64_OFFSET UINT64_C(0xcbf29ce484222325)
#define SHMQ__FNV64_PRIME  UINT64_C(0x100000001b3)

/* Go on hashing n bytes at p from the state h (SHMQ__FNV64_OFFSET to start). */
static inline uint64_t shmq__fnv1a64_step(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * SHMQ__FNV64_PRIME;
	return h;
}

/* FNV-1a 64 of n bytes at p. */
static inline uint64_t shmq__fnv1a64(const void *p, size_t n)
{
	return shmq__fnv1a64_step(SHMQ__FNV64_OFFSET, p, n);
}

/* A 64-bit hash folded to 32 bits (what a 32-bit shared field keeps). */
static inline uint32_t shmq__hash_fold32(uint64_t h)
{
	return (uint32_t)(h ^ (h >> 32));
}

#endif /* SHMQ__HASH_H */
