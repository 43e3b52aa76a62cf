/* SPDX-License-Identifier: MIT */
/*
 * Private: layer 3, regions: the process table's side of attaching and
 * closing, for core/region.c.  The liveness checks the rest of the library
 * uses (shmq__region_id_alive and friends) are declared in core/region_int.h;
 * the slot's bytes are in core/region_layout_int.h.
 */
#ifndef SHMQ__PTAB_H
#define SHMQ__PTAB_H

#include <stdint.h>

#include "core/region_int.h"

/* Claim a free slot for this process, or reclaim one whose process is gone;
 * sets r->self_id and r->pid.  0 or -ENOSPC.  Called once per attachment,
 * after the geometry was verified and applied to r. */
int shmq__ptab_claim(shmq_region *r);

/* The test seam (not part of the API): shmq__ptab_claim calls it, when set,
 * with the index of the slot it chose from the word it loaded, before it
 * acts on that word: the window in which another claimer may take the slot
 * first.  Tests set it to hold one claimer there; nothing else may. */
extern void (*shmq__ptab_fault)(unsigned slot);

/* Leave the slot claimed by shmq__ptab_claim (nothing when r holds none). */
void shmq__ptab_release(shmq_region *r);

/* Attached processes, for statistics: a relaxed count, no liveness check. */
unsigned shmq__ptab_count(const shmq_region *r);

/*
 * For a file without a header yet (file_size bytes, read through fd with
 * pread: nothing is mapped): what slot 0, which a creator claims in its fresh
 * file before it writes the header, says of that creator.  1 when it may
 * still finish (the file not sized yet, slot 0 claimed by a live process or
 * read mid-update, or slot 0 not claimed yet while someone holds the
 * creator's flock on the file), 0 when it never will (the slot names a dead
 * process, was claimed and left again, or was never claimed and nobody
 * holds the creator's lock), -errno when the file cannot be read.
 *
 * The creator's lock: a creator takes an exclusive flock on its file before it
 * sizes it and keeps it until the header is written (region.c), so a sized
 * file whose slot 0 is unclaimed has a live creator only while that lock is
 * held.  locked: the caller holds an exclusive flock on fd itself (then no
 * creator can hold its lock; a file not sized yet then counts as dead too,
 * as its creator, on taking its lock, finds the file unlinked and retries).
 */
int shmq__ptab_creator_alive(int fd, uint64_t file_size, bool locked);

/* Does someone hold an exclusive flock on fd's file (the creator's lock: a
 * creator between sizing its file and writing the whole header)?  1 held,
 * or when it cannot tell; 0 free.  The caller must not hold one itself. */
int shmq__ptab_creator_locked(int fd);

#endif /* SHMQ__PTAB_H */
