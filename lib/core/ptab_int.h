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

/* Leave the slot claimed by shmq__ptab_claim (nothing when r holds none). */
void shmq__ptab_release(shmq_region *r);

/* Attached processes, for statistics: a relaxed count, no liveness check. */
unsigned shmq__ptab_count(const shmq_region *r);

/*
 * For a file without a header yet (file_size bytes, read through fd with
 * pread: nothing is mapped): what slot 0, which a creator claims in its fresh
 * file before it writes the header, says of that creator.  1 when it may
 * still finish (slot 0 never claimed yet, or claimed by a live process, or
 * read mid-update), 0 when it never will (the slot names a dead process, or
 * was claimed and left again), -errno when the file cannot be read.
 */
int shmq__ptab_creator_alive(int fd, uint64_t file_size);

#endif /* SHMQ__PTAB_H */
