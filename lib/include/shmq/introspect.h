/* SPDX-License-Identifier: MIT */
/*
 * libshmq's introspection interface for its own tools (`shmq ls / stat /
 * watch / rm`): look at a live region without joining it or changing a byte.
 *
 * Not part of the public API (API.md) and not installed; no symbol here is
 * exported from libshmq.so.  The tools link libshmq statically and include
 * this header besides the public ones, never the library's private headers,
 * so the library's layouts can change without touching the tools.  The
 * interface is versioned: a tool checks at start that
 *
 *	shmq__introspect_version() == SHMQ__INTROSPECT_VERSION
 *
 * i.e. that the library it was linked with speaks the interface it was
 * compiled against.  Any change to a declaration or struct below raises
 * SHMQ__INTROSPECT_VERSION.
 *
 * Nothing read from a region is trusted: facts come out range-checked, an
 * impossible value is reported (status -EBADMSG), never used.  A region may
 * be truncated under the reader (SIGBUS): callers that care guard their reads.
 */
#ifndef SHMQ_INTROSPECT_H
#define SHMQ_INTROSPECT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <shmq/region.h>

#define SHMQ__INTROSPECT_VERSION 2u /* 2: shmq__introspect_observe_fd */

/* ---- one object's facts: key / value pairs ----
 *
 * Well-known keys, which `shmq watch` turns into rates and `shmq stat` into its
 * summary column: "depth" and "capacity" (with "unit": "msgs" or "bytes"),
 * "msgs_in" and "msgs_out" (free-running counters), "sleepers", "shutdown",
 * "closed", "broken", "holder_pid", "holder_alive", "parties", "waiting",
 * "generation", "waits" and "wakes" (free-running counters of the futex waits
 * the object's callers entered and of the futex wakes issued for them).  Any
 * other key is printed as is.
 */
#define SHMQ__STAT_KEYS 64
#define SHMQ__STAT_KEY_MAX 24
#define SHMQ__STAT_STR_MAX 64

enum shmq__stat_kind {
	SHMQ__STAT_U64 = 0,
	SHMQ__STAT_I64 = 1,
	SHMQ__STAT_BOOL = 2,
	SHMQ__STAT_STR = 3,
};

struct shmq__stat_kv {
	char key[SHMQ__STAT_KEY_MAX];
	uint32_t kind;      /* enum shmq__stat_kind */
	uint64_t u;         /* U64, BOOL (0 / 1) */
	int64_t i;          /* I64 */
	char s[SHMQ__STAT_STR_MAX]; /* STR */
};

struct shmq__obj_stat {
	uint32_t type;      /* the object's kind: shmq__introspect_type_name() */
	int status;         /* 0, or -EBADMSG: some word was impossible (facts kept) */
	unsigned n;         /* facts in kv[] */
	struct shmq__stat_kv kv[SHMQ__STAT_KEYS];
};

/* One slot of a region's process table. */
struct shmq__introspect_proc {
	pid_t pid;
	uint32_t gen;         /* the slot's generation */
	bool alive;           /* the attachment's process still runs */
	uint64_t attached_ns; /* shmq_now_ns() when it attached; untrusted */
};

/*
 * One object, as shmq__introspect_objects finds it: name and st (st->type its
 * kind; a corrupt directory entry comes with type 0 and status -EBADMSG, name
 * "?" when its name is unreadable).  A nonzero return stops the walk.
 */
typedef int (*shmq__introspect_obj_fn)(const char *name, const struct shmq__obj_stat *st,
				       void *arg);

/* SHMQ__INTROSPECT_VERSION as the library was built. */
unsigned shmq__introspect_version(void);

/*
 * Map the named region read-only without joining its process table; close it
 * with shmq_region_close().  The handle serves the calls below and
 * shmq_region_info() only.  Errors: -ENOENT, -EACCES, -EINVAL (name), -ENOEXEC
 * (not a libshmq region), -EAGAIN (its creator has not written the header
 * yet), -EBADMSG (corrupt header), -EPROTO (another layout version), -ENOMEM.
 */
int shmq__introspect_observe(const char *name, shmq_region **out);

/*
 * The same for an anonymous (memfd) region through a descriptor the caller
 * opened O_RDONLY, e.g. /proc/PID/fd/N: the same checks and errors (and
 * -EBADF), the handle keeps its own duplicate of fd.  Version 2.
 */
int shmq__introspect_observe_fd(int fd, shmq_region **out);

/* Process-table slot `slot`: 0, -ENOENT for a free slot, -EINVAL for one at
 * or past shmq_region_info()'s max_procs. */
int shmq__introspect_proc(shmq_region *r, unsigned slot, struct shmq__introspect_proc *out);

/*
 * Call fn for each object in r's directory.  describe: fill in the facts
 * (otherwise st carries only the type).  Returns fn's nonzero return, else
 * -EBADMSG when some entry was corrupt (reported through fn, the walk goes
 * on), else 0.  Never waits, takes no lock, writes nothing in r.
 */
int shmq__introspect_objects(shmq_region *r, bool describe, shmq__introspect_obj_fn fn,
			     void *arg);

/* A kind's name ("lock", "queue", ...), "unknown" for an id past the table. */
const char *shmq__introspect_type_name(uint32_t type);

/* The fact called key, or NULL. */
const struct shmq__stat_kv *shmq__stat_get(const struct shmq__obj_stat *st, const char *key);

#endif /* SHMQ_INTROSPECT_H */
