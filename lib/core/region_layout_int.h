/* SPDX-License-Identifier: MIT */
/*
 * Private: layer 3, regions: the bytes of a region, as every process sees
 * them.  The only header that says where anything lies in the mapping; the
 * code that reads and writes each part is in core/region.c (header, control
 * words, heap), core/ptab.c (process table) and core/objdir.c (directory).
 * Any change to what is here is a change of SHMQ__REGION_VERSION.
 *
 * Layout (all offsets from the base):
 *
 *   0      struct shmq__region_hdr  immutable after creation, checksummed
 *   64     struct shmq__region_ctl  mutable: heap top, directory lock and holder, counts
 *   128    struct shmq__region_ident immutable: the region's uuid (version 2)
 *   4096   proc table               ptab_slots x struct shmq__ptab_slot (32 bytes)
 *   ...    directory                dir_entries x struct shmq__dir_entry (128 bytes)
 *   heap   page aligned; blocks of 64-byte multiples, never freed
 *
 * Included by those three files (and by tests that forge images); it
 * includes no private header, so nothing below it can form a circle.
 */
#ifndef SHMQ__REGION_LAYOUT_H
#define SHMQ__REGION_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include <shmq/region.h> /* SHMQ_OBJ_NAME_MAX */

#define SHMQ__REGION_MAGIC   UINT64_C(0x31474552514d4853) /* "SHMQREG1" little endian */
/* Layout versions.  1: no identity.  2: line 2 holds struct
 * shmq__region_ident.  Line 0 kept its shape, so a version-1 library reads
 * the version and refuses a version-2 region (-EPROTO) instead of running
 * one whose uuid it would not keep; this library refuses version 1 alike
 * (a region without a uuid cannot give message ids that never repeat). */
#define SHMQ__REGION_VERSION 2u
#define SHMQ__REGION_IDENT_OFF 128u
#define SHMQ__REGION_PAGE    4096u
#define SHMQ__REGION_PTAB_OFF SHMQ__REGION_PAGE /* the header page, then the proc table */
#define SHMQ__REGION_MAX_SIZE ((uint64_t)1 << 40)
#define SHMQ__DIR_ENTRY_SIZE 128u
#define SHMQ__DIR_MIN        64u
#define SHMQ__DIR_MAX        4096u
#define SHMQ__DIR_BYTES_PER_ENTRY 8192u /* one directory entry per 8 KiB of region */

/* Immutable header, line 0.  checksum covers every byte before it.  A
 * creator writes it last, so an all-zero magic means "being created". */
struct shmq__region_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t hdr_size;    /* bytes before the proc table */
	uint64_t size;        /* bytes of the whole region */
	uint32_t ptab_off;
	uint32_t ptab_slots;
	uint32_t dir_off;
	uint32_t dir_entries;
	uint64_t heap_off;
	uint32_t flags;
	uint32_t reserved;
	uint64_t checksum;    /* FNV-1a 64 of the bytes above */
};
_Static_assert(sizeof(struct shmq__region_hdr) == 64, "header is one line");

/* Mutable control words, line 1. */
struct shmq__region_ctl {
	uint64_t heap_top;    /* next free heap offset; CAS-advanced */
	uint32_t dir_lock;    /* thread id (gettid) of the holder, 0 when free */
	uint32_t dir_sleepers;
	uint32_t dir_hwm;     /* directory entries ever used: finds scan [0, hwm) */
	uint32_t dir_count;   /* published objects */
	/* The holder's record: its thread id << 32 | its owner id, written just
	 * after it took dir_lock and cleared before it lets go, so that a tid
	 * reused after its holder died does not keep the lock (core/objdir.c).
	 * Was padding (zero): a region of an older library reads as "no
	 * record", which leaves the tid alone to judge, as that library did. */
	uint64_t dir_holder;
	uint32_t pad[8];
};
_Static_assert(offsetof(struct shmq__region_ctl, dir_holder) == 24, "dir_holder where pad was");
_Static_assert(sizeof(struct shmq__region_ctl) == 64, "control block is one line");

/* Identity, line 2: 16 random bytes (getrandom) written by the creator
 * before the header, never changed after.  check is shmq__fnv1a64 of the
 * uuid, so a uuid overwritten later is seen (-EBADMSG), not handed out. */
struct shmq__region_ident {
	uint8_t uuid[16];
	uint64_t check;
	uint8_t pad[40];
};
_Static_assert(sizeof(struct shmq__region_ident) == 64, "identity is one line");
_Static_assert(SHMQ__REGION_IDENT_OFF >= 64 + 64, "identity after header and control lines");

/*
 * Process-table slot.  word = pid << 32 | gen << 1 | used.  gen counts
 * claims of the slot (SHMQ__ID_GEN_BITS bits, never 0 once claimed), so an
 * owner id (slot | gen << SHMQ__ID_SLOT_BITS) names one attachment and goes
 * stale when the slot is reclaimed.  starttime (field 22 of /proc/PID/stat)
 * guards against pid reuse.  pidns = ns << 32 | gen: the claimer's pid
 * namespace (the low 32 bits of its inode; 0 unknown) for the claim gen
 * names; an older library leaves it 0, and a record of another gen is
 * stale.  A creator claims slot 0 of its fresh file before it writes the
 * header.  A free word (used 0) that carries a pid is a claim under way by
 * that process, which holds the slot while it clears the start time of the
 * last owner (core/ptab.c); every reader takes it for free, as before.
 */
struct shmq__ptab_slot {
	uint64_t word;
	uint64_t starttime;
	uint64_t attached_ns;
	uint64_t pidns;
};
_Static_assert(sizeof(struct shmq__ptab_slot) == 32, "ptab slot size");

enum { SHMQ__DIR_FREE = 0, SHMQ__DIR_BUILDING = 1, SHMQ__DIR_READY = 2 };

struct shmq__dir_entry {
	uint32_t state;       /* SHMQ__DIR_*; READY published with release */
	uint32_t type;
	uint64_t off;
	uint64_t size;
	uint32_t creator_id;
	uint32_t name_hash;   /* shmq__fnv1a64 of the name, folded to 32 bits */
	char name[SHMQ_OBJ_NAME_MAX + 1];
	uint8_t pad[32];
};
_Static_assert(sizeof(struct shmq__dir_entry) == SHMQ__DIR_ENTRY_SIZE, "directory entry size");

static inline struct shmq__region_hdr *shmq__region_hdr_at(uint8_t *base)
{
	return (struct shmq__region_hdr *)base;
}

static inline struct shmq__region_ctl *shmq__region_ctl_at(uint8_t *base)
{
	return (struct shmq__region_ctl *)(base + sizeof(struct shmq__region_hdr));
}

static inline struct shmq__region_ident *shmq__region_ident_at(uint8_t *base)
{
	return (struct shmq__region_ident *)(base + SHMQ__REGION_IDENT_OFF);
}

/* The hash of the header checksum and of directory names. */
static inline uint64_t shmq__fnv1a64(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

#endif /* SHMQ__REGION_LAYOUT_H */
