/* SPDX-License-Identifier: MIT */
/*
 * Waitsets: wait on many queues, pipes, processes, async results and file
 * descriptors at once (Python's multiprocessing.connection.wait), or hand
 * the set's descriptor to another event loop (epoll, poll, libuv, io_uring).
 */
#ifndef SHMQ_WAITSET_H
#define SHMQ_WAITSET_H

#include <stddef.h>

#include <shmq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shmq_waitset shmq_waitset;

#define SHMQ_READABLE 0x1u /* a get / recv would not block (or the object is done for) */
/* A queue's put would not block (or it is shut down); at least half of a
 * pipe's ring is free (or the peer is gone): a pipe's sender is woken once
 * per half ring, not for every record its peer takes. */
#define SHMQ_WRITABLE 0x2u

/* What shmq_waitset_wait reports: an entry's cookie and the events ready. */
struct shmq_ready {
	void *cookie;
	unsigned events;
};

/* A new, empty set.  The environment variable SHMQ_WAITSET_BACKEND=fallback
 * picks the epoll backend (with a helper thread for queue and pipe words)
 * that is otherwise used only where io_uring or its futex op is refused.
 * 0, -EINVAL (out NULL), -ENOMEM, -EMFILE / -ENFILE (no file descriptor
 * left for the ring, or the epoll set, eventfd and timerfd). */
SHMQ_API int shmq_waitset_create(shmq_waitset **out);
/* Watch an object; cookie (non-NULL, unique in the set) names the entry.
 * The object must stay open until it is removed or the set freed.
 * -EINVAL bad arguments, -EEXIST cookie taken, -ENOSPC no room (the fallback
 * backend waits on at most 127 queue, pipe and async words), -EBADF a set
 * made by another process (inherited across fork()); add_fd: -EBADF fd not
 * open, or what the fallback's epoll_ctl refused it with.  A refused add
 * leaves the set as it was. */
SHMQ_API int shmq_waitset_add_queue(shmq_waitset *w, shmq_queue *q, unsigned events,
				    void *cookie);
SHMQ_API int shmq_waitset_add_pipe(shmq_waitset *w, shmq_pipe *p, unsigned events,
				   void *cookie);
SHMQ_API int shmq_waitset_add_proc(shmq_waitset *w, shmq_proc *p, void *cookie); /* ready once exited */
SHMQ_API int shmq_waitset_add_async(shmq_waitset *w, shmq_async *a, void *cookie); /* ready once done */
SHMQ_API int shmq_waitset_add_fd(shmq_waitset *w, int fd, unsigned events, void *cookie);
/* Stop watching the entry named cookie: 0, -ENOENT, or -EINVAL (NULL, which
 * names no entry). */
SHMQ_API int shmq_waitset_remove(shmq_waitset *w, void *cookie);
/* Wait until at least one entry is ready, or timeout_ns (SHMQ_NOWAIT,
 * SHMQ_FOREVER or > 0); fill up to max entries of out.  Level-triggered:
 * an entry stays ready until its condition goes; when more are ready than
 * max, the next wait reports those left out first (none starves).  Returns
 * how many entries it filled (>= 1), -ETIMEDOUT, or -errno (-EAGAIN: the
 * fallback's helper thread could not be started; the next wait tries again). */
SHMQ_API int shmq_waitset_wait(shmq_waitset *w, struct shmq_ready *out, size_t max,
			       int64_t timeout_ns);
/* A descriptor that is readable whenever shmq_waitset_wait would not block,
 * and stays readable until wait has reported what is ready.  Owned by the
 * set; poll it, do not read it.  With the io_uring backend it is the ring's
 * descriptor, and a completion of the set's waits runs as io_uring task work
 * in the thread that last waited on the set: an epoll_wait of that thread
 * may then return -1 with EINTR (no signal was sent; call it again, as event
 * loops do for EINTR anyway; see shmq_waitset(3)). */
SHMQ_API int shmq_waitset_fd(shmq_waitset *w);
SHMQ_API void shmq_waitset_free(shmq_waitset *w);

#ifdef __cplusplus
}
#endif

#endif /* SHMQ_WAITSET_H */
