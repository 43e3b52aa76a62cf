/* SPDX-License-Identifier: MIT */
/*
 * The pre-forked counter server's shared layout and the pieces its three
 * kinds of process (master, worker, logger) have in common.
 *
 * One anonymous region holds:
 *   "srv.table"  struct srv_shared: a header, per-worker statistics and the
 *                counter table, split into SRV_STRIPES stripes; each stripe
 *                is an open-addressing hash table of its own with an undo
 *                record (struct srv_journal) for the change in progress;
 *   "srv.locks"  SRV_STRIPES placed shmq locks, one per stripe, laid out
 *                back to back (shmq_lock_footprint() bytes each);
 *   "srv.log"    the access-log queue (one line per message);
 *   "srv.ready"  a barrier the first generation of workers and the master
 *                meet at once every worker listens.
 * Nothing here holds a pointer: every process maps the region at its own
 * address.  Everything read from the region is checked before use.
 */
#ifndef SRV_SERVER_H
#define SRV_SERVER_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include <shmq.h>

#define SRV_MAGIC      0x53525643u /* "SRVC" */
#define SRV_VERSION    1u
#define SRV_STRIPES    16u
#define SRV_SLOTS      256u  /* per stripe: 4096 keys in all */
#define SRV_KEY_MAX    47u   /* key bytes, [A-Za-z0-9._:-] */
#define SRV_MAX_WORKERS 64u
#define SRV_LINE_MAX   128u  /* request line, newline excluded */
#define SRV_LOG_MAX    128u  /* access-log line, newline included */

#define SRV_TABLE "srv.table"
#define SRV_LOCKS "srv.locks"
#define SRV_QUEUE "srv.log"
#define SRV_READY "srv.ready"

#define SRV_MS ((int64_t)1000000)
#define SRV_S  ((int64_t)1000000000)

/* One counter.  key and count change only under the stripe's lock. */
struct srv_slot {
	char key[SRV_KEY_MAX + 1];  /* NUL-terminated once used */
	_Atomic uint64_t count;
	_Atomic uint32_t used;      /* 0 free, 1 holds key */
	uint32_t pad;
};
_Static_assert(sizeof(struct srv_slot) == 64, "a slot is one cache line");

/*
 * The undo record of a stripe: written before the stripe changes, retired
 * once the change is complete, all under the stripe's lock.  A holder that
 * dies in between leaves it active, and the next acquirer (told so by
 * -EOWNERDEAD) puts the slot back as it was: the count it had not yet
 * replied with is handed out again instead of going missing.
 */
struct srv_journal {
	_Atomic uint32_t active;
	_Atomic uint32_t slot;
	_Atomic uint64_t old_count;
	_Atomic uint32_t was_free;
	uint32_t pad[11];
};
_Static_assert(sizeof(struct srv_journal) == 64, "the journal is one cache line");

struct srv_stripe {
	struct srv_journal j;
	struct srv_slot slots[SRV_SLOTS];
};

/* Per-worker statistics, by worker index (a respawned worker continues its
 * predecessor's).  Written by that worker, read by the master: relaxed, they
 * order nothing. */
struct srv_wstat {
	_Atomic uint64_t requests;   /* requests answered */
	_Atomic uint64_t repairs;    /* stripes repaired after a dead holder */
	_Atomic uint64_t log_drops;  /* access-log lines the queue refused */
	_Atomic int32_t pid;
	uint32_t pad[9];
};
_Static_assert(sizeof(struct srv_wstat) == 64, "a worker's statistics are one cache line");

struct srv_shared {
	uint32_t magic, version, stripes, slots; /* written once, before any child starts */
	uint32_t pad0[12];
	_Atomic uint64_t logged;                 /* lines the logger wrote (relaxed: statistic) */
	_Atomic uint64_t log_bad;                /* malformed queue messages it skipped */
	uint64_t pad1[6];
	struct srv_wstat w[SRV_MAX_WORKERS];
	struct srv_stripe stripe[SRV_STRIPES];
};

/* What a process needs to reach the shared state, each in its own mapping. */
struct srv_ctx {
	shmq_region *r;
	struct srv_shared *sh;
	shmq_lock *lock[SRV_STRIPES];
	shmq_queue *q;
	struct srv_wstat *ws;  /* this worker's statistics, or NULL */
	const char *who;       /* for messages: "worker 3", "master" */
};

/* Arguments of the spawned entries (sent as bytes; checked on arrival). */
struct srv_worker_arg {
	uint32_t index;
	uint16_t port;
	uint8_t first;      /* meet the master at the ready barrier */
	uint8_t crash_ok;   /* accept the CRASH command (tests) */
	uint32_t addr;      /* IPv4, network order */
	int32_t master;     /* the master's pid */
};

struct srv_logger_arg {
	int32_t master;
	char path[4096];
};

/* Create (master) or open and check (children) the shared objects. */
int srv_ctx_create(shmq_region *r, struct srv_ctx *c, unsigned workers);
int srv_ctx_open(shmq_region *r, struct srv_ctx *c);
void srv_ctx_close(struct srv_ctx *c);

/* 0 if key is 1..SRV_KEY_MAX characters of [A-Za-z0-9._:-]. */
int srv_key_check(const char *key, size_t len);

/* Take stripe s's lock (bounded wait), repairing the stripe if its last
 * holder died; 0, or a negative errno (the lock is not held then). */
int srv_stripe_lock(struct srv_ctx *c, unsigned s);
void srv_stripe_unlock(struct srv_ctx *c, unsigned s);

/* The stripe a key lives in, and the slot it has in it or would get:
 * >= 0 the slot (*found says which), -ENOSPC when the stripe is full.
 * Call with the stripe's lock held. */
unsigned srv_key_stripe(const char *key, size_t len);
int srv_key_slot(struct srv_ctx *c, unsigned s, const char *key, size_t len, int *found);

/* Increment key's counter (stripe lock held): the new count in *out.  die
 * != 0 (the CRASH command) kills the process halfway, lock held. */
int srv_incr_locked(struct srv_ctx *c, unsigned s, const char *key, size_t len, int die,
		    uint64_t *out);

/* Entries. */
int srv_worker(shmq_region *r, const void *arg, size_t len);
int srv_logger(shmq_region *r, const void *arg, size_t len);

#endif /* SRV_SERVER_H */
