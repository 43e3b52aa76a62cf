/* SPDX-License-Identifier: MIT */
/*
 * Queues (seed 12-5): bounded MPMC message queues across processes.
 *
 * A queue holds up to `capacity` messages of up to `max_msg` bytes each, in
 * a ring of fixed-size slots in shared memory.  Any number of producer and
 * consumer threads and processes may use it at once, each through its own
 * handle or sharing one handle between threads.  Messages from one producer
 * thread are delivered in the order it put them; no message is lost or
 * delivered twice.
 *
 * Crashes: a process killed inside a put or a get never stalls the others.
 * (A get that must survive its consumer's death is the two-phase
 * shmq_queue_get_begin / _commit below.)
 * Its half-done slot is found by the next waiter behind it (within one sleep
 * slice, about 15 ms) and skipped (a put that never returned: nothing lost)
 * or released (a get that had claimed a message: that one message is lost
 * with the process that took it; shmq_queue_stats counts both).
 *
 *     shmq_queue *q;
 *     shmq_queue_create(r, "jobs", &(struct shmq_queue_opts){ .capacity = 4096 }, &q);
 *     shmq_queue_put(q, "hello", 5, SHMQ_FOREVER);          // in a producer
 *     ssize_t n = shmq_queue_get(q, buf, sizeof buf, SHMQ_FOREVER);  // in a consumer
 */
#ifndef SHMQ_QUEUE_H
#define SHMQ_QUEUE_H

#include <sys/uio.h>

#include <shmq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHMQ_QUEUE_DEFAULT_CAPACITY 1024u
#define SHMQ_QUEUE_DEFAULT_MAX_MSG  256u
#define SHMQ_QUEUE_MAX_CAPACITY     (1u << 24) /* messages */
#define SHMQ_QUEUE_MAX_MSG          (1u << 24) /* bytes */

/* Create flags (struct shmq_queue_opts.flags). */
#define SHMQ_QUEUE_JOINABLE 0x2u /* task_done and join (below) */

struct shmq_queue_opts {
	uint32_t capacity; /* messages, exactly (1 .. SHMQ_QUEUE_MAX_CAPACITY); 0 means 1024 */
	uint32_t max_msg;  /* bytes per message; 0 means 256 */
	unsigned flags;    /* 0.2: SHMQ_QUEUE_JOINABLE; other bits: -EINVAL */
};

/* Create the queue `name` in region r and open a handle to it.  Any thread.
 * Errors: -EINVAL (name, capacity or max_msg above the maxima), -EEXIST,
 * -ENOSPC (region full), -ENOMEM, -EBADMSG. */
SHMQ_API int shmq_queue_create(shmq_region *r, const char *name, const struct shmq_queue_opts *o,
			       shmq_queue **out);

/* Open a handle to an existing queue.  Errors: -ENOENT, -EINVAL (not a
 * queue), -EBADMSG (its control block is inconsistent), -EPROTO, -ENOMEM.
 * A process created by fork() opens its own handle (in its own attachment
 * of the region): handles name their process as the owner of its claims. */
SHMQ_API int shmq_queue_open(shmq_region *r, const char *name, shmq_queue **out);

/* Put one message of len bytes (0 allowed).  Blocks while the queue is full:
 * spins briefly, then sleeps; timeout_ns is SHMQ_NOWAIT, SHMQ_FOREVER or a
 * relative limit.  Any number of threads and processes at once.  A message
 * longer than max_msg (0.2) is carried through the region's heap and takes
 * one slot like any other.  The heap keeps the blocks it made for such
 * messages and reuses them for later ones; it does not give them back to
 * the region, so a region that carried large messages of many sizes may
 * have less room left for other objects than its free space suggests.
 * 0, or -EAGAIN (full, SHMQ_NOWAIT), -ETIMEDOUT, -ENOSPC (the region cannot
 * hold a message longer than max_msg), -EMSGSIZE (len beyond 2^40 bytes),
 * -EPIPE (shut down), -EINVAL (NULL msg with len > 0), -EBADMSG. */
SHMQ_API int shmq_queue_put(shmq_queue *q, const void *msg, size_t len, int64_t timeout_ns);

/* Take the oldest message into buf (cap bytes) and return its length.
 * Blocks while the queue is empty.  -EMSGSIZE when cap is too small for the
 * next message, which stays queued.  -EPIPE once shut down and drained.
 * -EAGAIN, -ETIMEDOUT, -EINVAL, -EBADMSG as for put.  Any thread or process. */
SHMQ_API ssize_t shmq_queue_get(shmq_queue *q, void *buf, size_t cap, int64_t timeout_ns);

/* Take the oldest message, of any length, into a buffer from malloc(3)
 * that *msg receives and the caller frees with free(3); returns the
 * length (an empty message still gets a buffer).  Blocks as
 * shmq_queue_get; -ENOMEM (the message stays queued), -EAGAIN, -ETIMEDOUT,
 * -EPIPE, -EINVAL, -EBADMSG, -EBADF as there.  Any thread or process. */
SHMQ_API ssize_t shmq_queue_get_alloc(shmq_queue *q, void **msg, int64_t timeout_ns);

/* No more puts (they return -EPIPE, blocked ones wake and return it); gets
 * drain what is queued, then return -EPIPE.  Idempotent; any process. */
SHMQ_API int shmq_queue_shutdown(shmq_queue *q);

/* Messages queued now (a snapshot; 0 for NULL). */
SHMQ_API size_t shmq_queue_len(const shmq_queue *q);

/* Close the handle; the queue stays for others.  NULL is a no-op.  Not while
 * another thread uses the same handle. */
SHMQ_API void shmq_queue_close(shmq_queue *q);

/* ---- bulk calls ---- */

/* Put up to n messages (msgs[i].iov_base, msgs[i].iov_len), in order, and
 * return how many were put: at least 1 unless an error is returned, fewer
 * than n when the queue filled up (the call blocks only for the first).
 * Messages of one call stay in order relative to each other and to the
 * caller's other puts.  -EMSGSIZE if any len > max_msg (none put: the
 * bulk calls move slot-sized messages only; put the longer ones one by one). */
SHMQ_API ssize_t shmq_queue_put_bulk(shmq_queue *q, const struct iovec *msgs, size_t n,
				     int64_t timeout_ns);

/* Get up to n messages: message i into bufs[i] (iov_len is its capacity),
 * its length into lens[i].  Returns how many, at least 1 unless an error is
 * returned (blocks only for the first).  A message too long for its buffer
 * stops the batch there and stays queued (-EMSGSIZE if it is the first). */
SHMQ_API ssize_t shmq_queue_get_bulk(shmq_queue *q, const struct iovec *bufs, size_t *lens,
				     size_t n, int64_t timeout_ns);

/* ---- placement: a queue in memory the caller provides ---- */

/* Claims are owned by plain pids instead of region owner ids (for memory
 * shared without a region; a recycled pid can hide a dead claimer). */
#define SHMQ_QUEUE_PID_OWNERS 0x1u

/* Bytes a queue with options o needs (0 for invalid options). */
SHMQ_API size_t shmq_queue_footprint(const struct shmq_queue_opts *o);

/* Lay a queue out in mem (64-byte aligned, size >= footprint), once, before
 * anyone attaches.  flags: 0 (owners are region owner ids; every attacher
 * passes a region) or SHMQ_QUEUE_PID_OWNERS.  -EINVAL. */
SHMQ_API int shmq_queue_init(void *mem, size_t size, const struct shmq_queue_opts *o,
			     unsigned flags);

/* Open a handle to a queue laid out in mem (mapped by this process).  r
 * supplies the owner ids, or is NULL for a SHMQ_QUEUE_PID_OWNERS queue.
 * -EINVAL (mem misaligned or size below the control block; r does not match
 * the queue's owner kind), -EBADF (r was inherited across fork()), -EBADMSG,
 * -EPROTO, -ENOMEM. */
SHMQ_API int shmq_queue_attach(shmq_region *r, void *mem, size_t size, shmq_queue **out);

/* ---- two-phase get: at least once across a consumer's death ---- */

/*
 * Take the next message without freeing its slot: *msg points at it in
 * place (valid until get_commit or get_abort of *pos), *pos is its
 * position, a 64-bit number never given to another message of this queue
 * (with the queue's incarnation and the region's uuid: an id that is never
 * reused, also after the queue is deleted and made again).  Returns the
 * length, or as shmq_queue_get (-EAGAIN, -ETIMEDOUT, -EPIPE once shut down
 * and drained, -EBADMSG, -EBADF in a child after fork; -EINVAL for NULL
 * arguments).  A caller may hold many begun messages at once (up to the
 * capacity: held slots are not written by producers) and end them in any
 * order.
 *
 * Messages given back (get_abort, or begun by a process that died before
 * its commit) are handed out again before newer ones, lowest position
 * first, with the same position: a consumer that aborts all it holds and
 * begins again sees the same positions in the same order.  A process's
 * death is noticed by the next get_begin that runs its check (at once in a
 * new handle; then every 32nd begin through a handle reads the clock and
 * checks if 15 ms passed since its last check, so a handle that begins
 * seldom may hand out newer messages first for a while), or by a waiter
 * blocked behind the slot (within a sleep slice).  A get of any kind that
 * finds the queue shut down and drained looks for them before it returns
 * -EPIPE: draining a shut-down queue hands them out too.
 *
 * Any thread of any process; positions belong to the process (its region
 * attachment), so any of its threads and handles may end them.
 */
SHMQ_API ssize_t shmq_queue_get_begin(shmq_queue *q, const void **msg, uint64_t *pos,
				      int64_t timeout_ns);

/* Free the slot of a begun message.  0, or -EINVAL (changing nothing) when
 * pos is not held by this process: never begun, ended already, or begun by
 * another process. */
SHMQ_API int shmq_queue_get_commit(shmq_queue *q, uint64_t pos);

/* Give a begun message back: the next get or get_begin hands it out again,
 * before newer messages, with the same position.  0, or -EINVAL as commit. */
SHMQ_API int shmq_queue_get_abort(shmq_queue *q, uint64_t pos);

/* ---- joinable queues (Python's JoinableQueue) ---- */

/*
 * A queue made with SHMQ_QUEUE_JOINABLE counts the messages put and not yet
 * finished.  A message taken by shmq_queue_get (or _get_bulk) or committed
 * after shmq_queue_get_begin is counted as taken by the calling process
 * until somebody calls task_done for it.  A process counts at most
 * 2^32 - 1 of them: past that, get, get_alloc, get_bulk and get_commit
 * return -EOVERFLOW and take nothing (the message stays queued, a begun one
 * stays begun).
 *
 * task_done: one taken message is finished: the caller's own first, else
 * one taken by another process (its task, done here).  0, or -EINVAL (not
 * joinable, NULL, or more task_done than messages taken), -EBADMSG, -EBADF.
 * Makes no system call unless somebody is joining.  Any thread or process.
 */
SHMQ_API int shmq_queue_task_done(shmq_queue *q);

/*
 * Wait until every message put has been taken and task_done: 0.
 * -EOWNERDEAD once all that is unfinished was taken by processes that died
 * (no live process can finish it; found within about 15 ms of the death,
 * or at once by a new call).  -ETIMEDOUT; SHMQ_NOWAIT gives -EAGAIN while
 * unfinished.  -EINVAL (not joinable), -EBADMSG, -EBADF.  Messages still
 * queued, begun (get_begin) or given back keep it waiting.  Any number of
 * joiners in any processes.
 */
SHMQ_API int shmq_queue_join(shmq_queue *q, int64_t timeout_ns);

/* ---- statistics ---- */

struct shmq_queue_stats {
	uint32_t capacity;        /* messages */
	uint32_t max_msg;         /* bytes */
	size_t len;               /* messages queued */
	uint64_t skipped;         /* slots skipped because their producer died mid-put */
	uint64_t dropped;         /* messages lost with a consumer that died mid-get */
	uint32_t sleeping_getters; /* consumers asleep on the futex now */
	uint32_t sleeping_putters; /* producers asleep on the futex now */
	bool shut_down;
};

/* A snapshot (fields read one by one).  0, or -EINVAL. */
SHMQ_API int shmq_queue_stats(const shmq_queue *q, struct shmq_queue_stats *st);

#ifdef __cplusplus
}
#endif
#endif /* SHMQ_QUEUE_H */
