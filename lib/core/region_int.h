/* SPDX-License-Identifier: MIT */
/*
 * Private: layer 3, regions.
 *
 * A region is one shared mapping laid out as
 *
 *   [header page]  immutable header (magic, layout version, sizes, offsets,
 *                  checksum) on line 0; mutable control words on later lines
 *   [proc table]   SHMQ__PTAB_SLOTS slots: who is attached (pid + start time)
 *   [directory]    named, typed objects: name -> (type, offset, size)
 *   [heap]         cache-line aligned blocks handed out by a bump allocator
 *
 * Everything inside is addressed by offset from the region base, never by
 * pointer, so any process can map it anywhere.  Nothing read from it is
 * trusted: the accessors below range-check offsets and lengths.
 *
 * The bytes are in core/region_layout_int.h; the code in core/region.c
 * (mapping, header, attach, heap), core/ptab.c (process table, liveness) and
 * core/objdir.c (directory).  This header is what the rest of the library uses.
 */
#ifndef SHMQ__REGION_H
#define SHMQ__REGION_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <shmq/common.h>
#include <shmq/region.h>

#include "core/fork_int.h"    /* shmq__foreign */
#include "core/objkind_int.h" /* enum shmq__obj_type: the kinds of named objects */

#define SHMQ__PTAB_SLOTS 1024u /* attached processes at once */

/*
 * Owner ids name one attachment of one process to one region: nonzero,
 * below 2^31, they encode the process-table slot and that slot's generation,
 * so a slot reused by a later process yields a different id.
 */
#define SHMQ__ID_SLOT_BITS 10u
#define SHMQ__ID_GEN_BITS  21u
#define SHMQ__ID_MAX       ((1u << 31) - 1)

static inline uint32_t shmq__id_slot(uint32_t id)
{
	return (id & ((1u << SHMQ__ID_SLOT_BITS) - 1));
}

/* The process-private handle.  Fields are read-only after open. */
struct shmq_region {
	uint8_t *base;     /* the mapping */
	size_t size;       /* bytes mapped; equals the header's size */
	int fd;            /* the shm or memfd descriptor, kept open (O_CLOEXEC) */
	uint32_t self_id;  /* this attachment's owner id */
	pid_t pid;         /* the pid that attached (a forked child must re-attach) */
	uint32_t pidns;    /* its pid namespace (shmq__pidns_self), 0 unknown */
	/* Geometry, copied from the header once it was verified; never re-read. */
	uint64_t ptab_off;
	uint64_t dir_off;
	uint64_t heap_off;
	uint32_t ptab_slots;
	uint32_t dir_entries;
	bool reserve_on_alloc; /* SHMQ_REGION_NOPREFAULT: give heap blocks pages as handed out */
	char name[SHMQ_NAME_MAX + 2]; /* "/name", or "" when anonymous */
};

/* This attachment's owner id (nonzero). */
static inline uint32_t shmq__region_self(const shmq_region *r)
{
	return r->self_id;
}

/* Was handle r inherited across fork()?  It then names the parent's
 * attachment (its owner id), and every call that would act for it, in the
 * region or by handing it to a new process, refuses it with -EBADF: the
 * child opens the region again.  Observers (no pid) and NULL never are. */
static inline bool shmq__region_forked(const shmq_region *r)
{
	return r && r->pid && shmq__foreign(r->pid);
}

/* Could an attachment of this region carry id?  0, or -EBADMSG for an id
 * none can (zero, too large, a slot past the process table, generation 0).
 * Pure arithmetic on the private geometry: no load from the region, no
 * system call, so a claim word naming such an id is refused the first time
 * it is read, before anyone waits behind it. */
static inline int shmq__region_id_valid(const shmq_region *r, uint32_t id)
{
	if (id == 0 || id > SHMQ__ID_MAX || shmq__id_slot(id) >= r->ptab_slots ||
	    (id >> SHMQ__ID_SLOT_BITS) == 0)
		return -EBADMSG;
	return 0;
}

/* Is the attachment named by id still alive?  1 alive, 0 dead (its process
 * is gone, or the slot was since reused by another process), -EBADMSG for an
 * id that cannot be valid.  Costs a kill(2) and, when the slot is live, a read
 * of /proc/PID/stat: use it on slow paths only (a waiter that slept). */
int shmq__region_id_alive(const shmq_region *r, uint32_t id);

/* The cheapest look: 1 when the process table lists id's attachment (it
 * may be alive: the full check decides), 0 when it does not (detached,
 * dead and cleaned up, or the slot reused: surely dead), -EBADMSG as
 * above.  One load, no system call: for the first sight of a claim. */
int shmq__region_id_listed(const shmq_region *r, uint32_t id);

/* The cheap half of shmq__region_id_alive: 0 when the attachment is surely
 * dead (its slot was reused, or kill(2) finds no such process: exited and
 * reaped), 1 when it may live (the full check decides), -EBADMSG as there.
 * One system call and no /proc read: for paths that cannot afford more. */
int shmq__region_id_maybe_alive(const shmq_region *r, uint32_t id);

/* Is id an attachment of this very process: this one, or another region
 * open of ours?  1 yes, 0 no (another process, or an earlier one that had
 * our pid: its start time differs), -EBADMSG as above.  Two loads of the
 * process table and no system call. */
int shmq__region_id_ours(const shmq_region *r, uint32_t id);

/* Liveness of a plain pid with its recorded start time (0: unknown). */
int shmq__pid_alive(pid_t pid, uint64_t starttime);

/* Is pid held where it stands by something outside it: stopped by a
 * signal or a tracer, or in uninterruptible sleep?  1 yes, 0 no (running or
 * sleeping of its own accord, gone, or /proc does not say).  A /proc read:
 * for a waiter that must tell a process that is slow from one that will
 * never do what it waits for. */
int shmq__pid_stalled(pid_t pid);

/* The caller's pid namespace: the low 32 bits of its inode, 0 when /proc
 * does not say.  Pids recorded by a process of another namespace mean
 * nothing here: such a process is taken as alive. */
uint32_t shmq__pidns_self(void);

/* Is id an attachment of a process in another pid namespace (1), or not (0;
 * also when unknown), or -EBADMSG for an id that cannot be valid. */
int shmq__region_id_foreign(const shmq_region *r, uint32_t id);

/* The start time (clock ticks after boot, /proc/PID/stat field 22) of pid, or 0. */
uint64_t shmq__pid_starttime(pid_t pid);

/* Snapshot of one process-table slot for tools: 0, or -ENOENT for a free slot. */
struct shmq__ptab_entry {
	pid_t pid;
	uint32_t gen;
	uint64_t starttime;
	uint64_t attached_ns; /* shmq_now_ns() when the slot was claimed */
};
int shmq__region_ptab_get(const shmq_region *r, unsigned slot, struct shmq__ptab_entry *e);

/* Map a checked range: a pointer to [off, off + len) inside the region, or NULL
 * when the range does not lie inside the heap. */
void *shmq__region_ptr(const shmq_region *r, uint64_t off, uint64_t len);

/* The offset of p inside the region (p must point into the mapping). */
static inline uint64_t shmq__region_off(const shmq_region *r, const void *p)
{
	return (uint64_t)((const uint8_t *)p - r->base);
}

/*
 * Create a named object of type and size bytes (cache-line aligned, zeroed).
 * init(mem, arg) runs before the object becomes visible to _find, so other
 * processes never see it half-built; a nonzero return from init aborts the
 * creation (its space is not reused) and is returned.
 * Errors: -EINVAL (name), -EEXIST, -ENOSPC (heap or directory full), -EBADMSG.
 */
int shmq__obj_create(shmq_region *r, const char *name, uint32_t type, uint64_t size,
		     int (*init)(void *mem, uint64_t size, void *arg), void *arg,
		     void **mem_out);

/* Find a named object: -ENOENT, -EINVAL (another type), -EBADMSG (its entry is
 * corrupt).  *mem_out and *size_out describe the checked object. */
int shmq__obj_find(shmq_region *r, const char *name, uint32_t type, void **mem_out,
		   uint64_t *size_out);

/* Walk the directory for tools: calls fn for each published object, stops
 * early when fn returns nonzero (returned).  -EBADMSG on a corrupt entry
 * (reported through fn with mem NULL, walk continues). */
typedef int (*shmq__obj_visit_fn)(const char *name, uint32_t type, void *mem, uint64_t size,
				  void *arg);
int shmq__obj_walk(shmq_region *r, shmq__obj_visit_fn fn, void *arg);

/* Allocate raw, unnamed space from the heap (zeroed, cache-line aligned). */
int shmq__region_alloc(shmq_region *r, uint64_t size, void **mem_out);

/* Grow the block that ends at end, when end is the heap's top, by size
 * bytes (rounded up to a cache line), zeroed: the one way a block of the
 * heap gets larger, for an owner whose space must stay in one piece.
 * 0, -EAGAIN (another block lies at end: nothing changed), -EINVAL,
 * -ENOSPC, -EBADF (a handle inherited across fork()), -EBADMSG. */
int shmq__region_extend(shmq_region *r, uint64_t end, uint64_t size);

/* Give the next size bytes of the heap their pages now (a region made with
 * SHMQ_REGION_NOPREFAULT reserves each block as it hands it out): for a
 * caller about to make several allocations that must all be made or none,
 * as the heap has no free.  0, -ENOSPC (the heap or the file system has no
 * room; nothing changed), -EBADMSG. */
int shmq__region_reserve_ahead(shmq_region *r, uint64_t size);

/* 0, or -EFBIG when a file of size bytes would pass the process's
 * RLIMIT_FSIZE: sizing or writing a shm or memfd file past it fails with
 * EFBIG and also raises SIGXFSZ, which by default ends the process.  Asked
 * before a region's file is sized, and by proc for its argument memfd. */
int shmq__file_size_check(uint64_t size);

/* Check a name for objects: 1..SHMQ_OBJ_NAME_MAX chars of [A-Za-z0-9._-]. */
int shmq__obj_name_check(const char *name);

/*
 * For tools (shmq ls / stat): map the named region read-only (PROT_READ, an
 * O_RDONLY descriptor) without joining its process table, so that looking at
 * a region never changes it; close with shmq_region_close().  The handle has
 * no owner id: use it only with the calls that read (obj_walk, ptab_get,
 * region_ptr, region_info, id_alive, obj_describe).
 * Errors: -ENOENT, -EACCES, -EINVAL (name), -ENOEXEC (not a libshmq region:
 * no magic), -EAGAIN (a creator had not written the header by the end of the
 * bounded wait every attach path shares: see region_attach), -EBADMSG
 * (corrupt header, size mismatch, a creator that died before writing the
 * header), -EPROTO (another layout version), -ENOMEM.
 */
int shmq__region_observe(const char *name, shmq_region **out);

/*
 * The same for a descriptor the caller opened, O_RDONLY (an anonymous
 * region's memfd, reached through /proc/PID/fd/N): read-only, no process-table
 * slot, no name; the checks and errors of shmq__region_observe (-EBADF,
 * -EINVAL for a bad fd).  fd stays the caller's: the handle keeps a duplicate.
 */
int shmq__region_observe_fd(int fd, shmq_region **out);

/* For proc: the descriptor to hand to a child, and mapping one received
 * (the attach path and errors of shmq_region_open, mapped lazily). */
int shmq__region_fd(const shmq_region *r);
int shmq__region_from_fd(int fd, const char *name, shmq_region **out);

/* The test seam (not part of the API): region_format calls it, when set,
 * between claiming slot 0 and writing the header, the window a creator
 * that dies leaves a nameless half-made region in.  Tests set it in a
 * child they kill there; nothing else may. */
extern void (*shmq__region_fault)(void);

/* Environment variable through which spawned children find their region:
 * "FD" or "FD:/name". */
#define SHMQ__REGION_ENV "SHMQ_REGION_FD"

#endif /* SHMQ__REGION_H */
