/* SPDX-License-Identifier: MIT */
/* Regions: named (shm_open) or anonymous (memfd) shared memory holding named objects.
 * Each attached process is entered in the region's process table, by which
 * waiters tell a dead peer from a live one.  A process of another pid
 * namespace (containers sharing /dev/shm) counts as alive: its death is not
 * seen from outside its namespace, and waiters on what it held time out. */
#ifndef SHMQ_REGION_H
#define SHMQ_REGION_H

#include <shmq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Skip pre-faulting the mapping (useful for very large, sparsely used regions). */
#define SHMQ_REGION_NOPREFAULT 0x1u
/* shmq_region_open_flags: attach to a region file owned by another user, or
 * one that group or others may write (a region shared on purpose). */
#define SHMQ_REGION_SHARED     0x2u

#define SHMQ_REGION_DEFAULT_SIZE ((size_t)64 << 20)
#define SHMQ_REGION_MIN_SIZE     ((size_t)64 << 10)
#define SHMQ_NAME_MAX            200  /* region names, without the leading '/' */
#define SHMQ_OBJ_NAME_MAX        63   /* object names inside a region */

struct shmq_region_opts {
	size_t size;      /* bytes; 0 means SHMQ_REGION_DEFAULT_SIZE (64 MiB); from
			   * SHMQ_REGION_MIN_SIZE to 1 TiB, rounded up to 4 KiB */
	mode_t mode;      /* 0 means 0600 */
	unsigned flags;   /* SHMQ_REGION_* */
};

/* Create a region, exclusively (-EEXIST if the name exists).  name is "/app"
 * or "app": at most 200 characters of [A-Za-z0-9._-], not dots alone (".",
 * "..": path components); NULL creates an anonymous
 * (memfd) region that only processes spawned by shmq_proc_* can reach.
 * Errors: -EINVAL (name, size, flags), -EEXIST, -ENOMEM, -EACCES, -ENOSPC,
 * -EMFILE / -ENFILE (no file descriptor left for the region's file). */
SHMQ_API int shmq_region_create(const char *name, const struct shmq_region_opts *o,
				shmq_region **out);

/* Open an existing region: checks magic and header checksum (-EBADMSG), layout
 * version (-EPROTO), and the size against the file (-EBADMSG).  -ENOENT if missing.
 * -EPERM when the file is owned by another user or group or others may write
 * it (someone else may have made the name first): see shmq_region_open_flags.
 * -EACCES (the file's mode), -EMFILE / -ENFILE (no file descriptor left),
 * -ENOMEM; -ELOOP for a symbolic link, -EBADMSG for a directory or FIFO. */
SHMQ_API int shmq_region_open(const char *name, shmq_region **out);

/* shmq_region_open with flags: 0, or SHMQ_REGION_SHARED to accept a region
 * file of another user or one group or others may write.  -EINVAL for
 * other flags. */
SHMQ_API int shmq_region_open_flags(const char *name, unsigned flags, shmq_region **out);

/* In a process started by shmq_proc_spawn or shmq_proc_exec: map the parent's
 * region (named or anonymous).  -ENOENT when this process was not given one. */
SHMQ_API int shmq_region_inherit(shmq_region **out);

/* Unmap and leave the process table.  Never destroys shared state. NULL is a no-op.
 * Close the handles made through r first (objects, pools, bridges): each
 * uses r's mapping and owner id until it is closed, so using or closing
 * one after r is closed touches memory that is no longer mapped. */
SHMQ_API void shmq_region_close(shmq_region *r);

/* Remove the name; mappings that exist stay valid.  -ENOENT, -EINVAL,
 * -EACCES (the file is another user's: /dev/shm is sticky), -EISDIR. */
SHMQ_API int shmq_region_unlink(const char *name);

/* Named raw memory in a region for the caller's own shared data (a counter,
 * a table): size bytes, zero-filled, 64-byte aligned, at the same offset in
 * every process (the address may differ: store offsets, not pointers, in it).
 * Any thread or process may call these at any time.  The memory is never
 * freed.  It is found, zero-filled, the moment alloc makes it, before its
 * maker has written anything in it, and the maker may die before it does:
 * make all zeros a valid state, or let whoever finds it finish it (a CAS
 * from 0 of what every user would write alike), never wait for the maker.
 * Errors: -EINVAL (name: 1..63 of [A-Za-z0-9._-], not dots alone;
 * size 0), -EEXIST,
 * -ENOSPC; find: -ENOENT, -EINVAL (the name is another kind of object);
 * both: -EBADF (r was inherited across fork(): the child opens the region
 * again), -EBADMSG. */
SHMQ_API int shmq_region_alloc(shmq_region *r, const char *name, size_t size, void **mem);
/* find: *size (size may be NULL) is the size made, rounded up to 64. */
SHMQ_API int shmq_region_find(shmq_region *r, const char *name, void **mem, size_t *size);

/* The region's identity: 16 random bytes (getrandom) fixed when the region
 * was created, the same in every process and across opens, different for
 * every create (also of the same name).  0, -EINVAL, or -EBADMSG when the
 * stored uuid fails its check.  Any thread. */
SHMQ_API int shmq_region_uuid(const shmq_region *r, uint8_t uuid[16]);

/* Read-only facts about a region. */
struct shmq_region_info {
	size_t size;          /* bytes mapped */
	size_t used;          /* bytes handed out by the allocator, header included */
	unsigned objects;     /* named objects in the directory */
	unsigned max_objects; /* directory capacity */
	unsigned procs;       /* attached process-table slots in use (alive or not) */
	unsigned max_procs;   /* process-table capacity */
	uint32_t version;     /* layout version */
	char name[SHMQ_NAME_MAX + 2]; /* "/name", or "" for anonymous regions */
};
SHMQ_API int shmq_region_info(const shmq_region *r, struct shmq_region_info *info);

#ifdef __cplusplus
}
#endif
#endif /* SHMQ_REGION_H */
