/* SPDX-License-Identifier: MIT */
/*
 * Pipes (seed 12-5): a duplex channel of two SPSC byte rings.
 *
 * End 0 sends on ring 0 and receives from ring 1; end 1 the other way round.
 * Messages are delivered whole and in order, 0 to shmq_pipe_max_msg() bytes.
 *
 * Copying use:
 *
 *     shmq_pipe *a, *b;
 *     shmq_pipe_create(r, "chan", NULL, &a, &b);      // creator holds both ends
 *     shmq_pipe_send(a, "ping", 4, SHMQ_FOREVER);
 *     char buf[64];
 *     ssize_t n = shmq_pipe_recv(b, buf, sizeof(buf), SHMQ_FOREVER);
 *
 * Zero copy: write in place between reserve and commit, read in place
 * between peek and consume.  Each start call must be followed by its finish
 * call on the same handle before any other call on that direction:
 *
 *     void *slot;
 *     if (shmq_pipe_reserve(a, 4096, &slot, SHMQ_FOREVER) == 0) {
 *             fill(slot, 4096);
 *             shmq_pipe_commit(a, 4096, 0);          // or fewer bytes
 *     }
 *     const void *msg;
 *     size_t len;
 *     if (shmq_pipe_peek(b, &msg, &len, SHMQ_FOREVER) == 0) {
 *             use(msg, len);                          // valid until consume
 *             shmq_pipe_consume(b);
 *     }
 *
 * Concurrency contract (every call below): a handle belongs to one thread at
 * a time.  Each end may be open in several handles and processes, but at most
 * one of them sends and at most one receives at any moment (each direction
 * is single-producer, single-consumer); handles of one end that take turns
 * must order their turns themselves (a lock, a message).  The two ends are
 * fully concurrent with each other.  A handle is not usable in a forked
 * child: the handle's calls that return an errno give -EBADF there (so do
 * create and open with a region handle inherited that way); the child
 * opens its own.
 *
 * End of file: once every handle of an end is closed, or every process that
 * held one has died (noticed within about 20 ms by a peer that waits), the
 * peer's recv returns what was already sent and then -EPIPE, and its send
 * returns -EPIPE.  An end nobody has opened since creation, and nobody has
 * sent or received on, counts as held by its creator (who may close the
 * handle of the end it hands to a child before the child opens it).  A
 * closed end stays closed: opening it again gives -EPIPE.  An open racing
 * the close of the end's last handle either gives -EPIPE or holds the end.
 */
#ifndef SHMQ_PIPE_H
#define SHMQ_PIPE_H

#include <sys/uio.h>

#include <shmq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

struct shmq_pipe_opts {
	size_t capacity; /* bytes per direction, rounded up to a power of two in
			    [64, 2^31]; 0 means the default, SHMQ_PIPE_CAPACITY */
};

/* The default: 64 KiB per direction, 128 KiB per pipe (memory per pipe is
 * 2 x capacity).  Bulk throughput (32 x 64-byte messages per call, two
 * pinned processes) on the reference machine (2 vCPUs, 2 MiB L2 each)
 * measured flat from 64 KiB to 4 MiB rings where its cores are far apart
 * (59-70 M msg/s at every size), and where they are closer grew with the
 * ring, from a median of 89 M msg/s at 64 KiB to 130-138 M at 2-4 MiB (see
 * tools/PERFORMANCE.md, "Bulk calls"): 32 times the memory per pipe for
 * that is not a default.  64 KiB holds
 * 910 records of 64 bytes and allows messages up to 32 KiB - 8; raise
 * shmq_pipe_opts.capacity for larger messages or burstier producers. */
#define SHMQ_PIPE_CAPACITY ((size_t)64 << 10)

/* Create the pipe `name` in r and open both ends in this process.
 * -EINVAL (name, capacity), -EEXIST, -ENOSPC, -ENOMEM. */
SHMQ_API int shmq_pipe_create(shmq_region *r, const char *name, const struct shmq_pipe_opts *o,
			      shmq_pipe **end0, shmq_pipe **end1);
/* Open one end (0 or 1) of an existing pipe.  -ENOENT, -EINVAL (end, or not a
 * pipe), -EPIPE (the end was already closed for good), -ENOSPC (more than
 * SHMQ_PIPE_HOLDERS live processes hold the end; the slots of holders that
 * died are taken back), -EBADMSG, -EPROTO. */
SHMQ_API int shmq_pipe_open(shmq_region *r, const char *name, int end, shmq_pipe **out);

/* Send len bytes (len may be 0).  0; -EAGAIN (SHMQ_NOWAIT and full);
 * -ETIMEDOUT; -EPIPE (the peer end is gone); -EMSGSIZE (len > max_msg);
 * -EBADMSG (corrupt ring); -EINVAL.  A system call is made only when the
 * receiver sleeps. */
SHMQ_API int shmq_pipe_send(shmq_pipe *p, const void *msg, size_t len, int64_t timeout_ns);
/* Receive the next message into buf: its length; -EAGAIN; -ETIMEDOUT;
 * -EPIPE (the peer end is gone and everything it sent was received);
 * -EMSGSIZE (cap is smaller than the next message, which stays queued: see
 * shmq_pipe_peek for its size); -EBADMSG; -EINVAL. */
SHMQ_API ssize_t shmq_pipe_recv(shmq_pipe *p, void *buf, size_t cap, int64_t timeout_ns);
/* Close the handle (publishing anything committed with SHMQ_PIPE_MORE).
 * NULL is ignored. */
SHMQ_API void shmq_pipe_close(shmq_pipe *p);

/* ---- extras ---- */

/* Processes that may hold one end at once. */
#define SHMQ_PIPE_HOLDERS 7

/* The largest message this pipe carries: capacity / 2 - 8 bytes (a record is
 * never split across the end of the ring, so half of it must hold one). */
SHMQ_API size_t shmq_pipe_max_msg(const shmq_pipe *p);
/* Bytes per direction. */
SHMQ_API size_t shmq_pipe_capacity(const shmq_pipe *p);

/* How long this handle's blocking calls poll before they sleep on the futex:
 * spins iterations, 0 to sleep at once (lowest CPU use), -1 for the process
 * default (SHMQ_SPIN in the environment, else 2000).  0 or -EINVAL. */
SHMQ_API int shmq_pipe_set_spin(shmq_pipe *p, long spins);

/* Zero copy, sending: reserve room for up to len bytes and point *buf at it
 * (in the ring).  Same errors as send.  Then exactly one shmq_pipe_commit. */
SHMQ_API int shmq_pipe_reserve(shmq_pipe *p, size_t len, void **buf, int64_t timeout_ns);

/* Flag for shmq_pipe_commit: do not publish yet (more follows).  Committed
 * messages become visible at the next commit without it, at shmq_pipe_flush,
 * send, send_bulk or close. */
#define SHMQ_PIPE_MORE 1u

/* Finish a reservation with the message's final length (<= the reserved
 * length).  0; -EINVAL (no reservation, len too large, unknown flags).
 * flags may be left out: shmq_pipe_commit(p, len) is shmq_pipe_commit(p,
 * len, 0) (a macro picks the form; the function itself takes three). */
SHMQ_API int shmq_pipe_commit(shmq_pipe *p, size_t len, unsigned flags);
#define SHMQ__PIPE_COMMIT(p, len, flags, ...) shmq_pipe_commit(p, len, flags)
#define shmq_pipe_commit(...) SHMQ__PIPE_COMMIT(__VA_ARGS__, 0u, 0u)
/* Publish everything committed.  0 or -EINVAL. */
SHMQ_API int shmq_pipe_flush(shmq_pipe *p);

/* Zero copy, receiving: point *msg / *len at the next message in the ring.
 * Same errors as recv except -EMSGSIZE.  Then shmq_pipe_consume. */
SHMQ_API int shmq_pipe_peek(shmq_pipe *p, const void **msg, size_t *len, int64_t timeout_ns);
/* Release the message the last peek returned.  0; -EINVAL if there is none. */
SHMQ_API int shmq_pipe_consume(shmq_pipe *p);

/* Send up to n messages with one publication.  Waits (per timeout) only until
 * the first fits, then sends as many as fit without waiting.  Returns how
 * many were sent (>= 1; 0 for n == 0), or the error send would give for v[0];
 * -EINVAL, and nothing sent, when any v[i] has a NULL base and a length. */
SHMQ_API ssize_t shmq_pipe_send_bulk(shmq_pipe *p, const struct iovec *v, size_t n,
				     int64_t timeout_ns);
/* Receive up to n messages, packed back to back into buf (cap bytes), their
 * lengths in lens[0..ret).  Waits (per timeout) only for the first.  Stops
 * before a message that does not fit in what is left of buf (it stays
 * queued).  Returns how many (>= 1; 0 for n == 0), or the error recv would give. */
SHMQ_API ssize_t shmq_pipe_recv_bulk(shmq_pipe *p, void *buf, size_t cap, size_t *lens, size_t n,
				     int64_t timeout_ns);

/*
 * Placement: a pipe in memory the caller provides (any shared mapping), with
 * no region.  shmq_pipe_footprint gives the bytes needed (0 for an invalid
 * capacity); shmq_pipe_init formats mem (64-byte aligned) once, before any
 * attach; shmq_pipe_attach opens one end in the calling process.  Such pipes
 * see handles close but cannot notice a holder that died (there is no
 * process table): every end counts as held until closed.
 */
SHMQ_API size_t shmq_pipe_footprint(const struct shmq_pipe_opts *o);
SHMQ_API int shmq_pipe_init(void *mem, size_t size, const struct shmq_pipe_opts *o);
SHMQ_API int shmq_pipe_attach(void *mem, size_t size, int end, shmq_pipe **out);

#ifdef __cplusplus
}
#endif
#endif /* SHMQ_PIPE_H */
