/* SPDX-License-Identifier: MIT */
/*
 * Private: descriptors the library keeps are never 0, 1 or 2.
 *
 * A host that closed its standard streams (a daemon that did not reopen
 * them on /dev/null) gets the lowest free numbers back from open(2): a
 * region's file at 1 would take the host's next printf into the region's
 * header, a pipe to a child at 0 would feed the host's reads.  (SQLite
 * refuses those numbers for its database files for the same reason.)  A
 * daemon that closes or reopens 0-2 only after it set up would close or
 * replace a descriptor of ours there: a waitset's or a scheduler's, whose
 * number it may also have handed to its event loop.
 *
 * A ring of liburing's keeps its descriptor in struct io_uring: after
 * io_uring_queue_init, `if (shmq__fd_lift(&ring.ring_fd)) ring.enter_ring_fd
 * = ring.ring_fd;` (the library registers no ring descriptor, so the two are
 * the same number until then).
 */
#ifndef SHMQ__FD_INT_H
#define SHMQ__FD_INT_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <unistd.h>

/* fd itself when it is -1 or above 2; else a close-on-exec copy at the
 * lowest free number >= 3, fd closed.  -1 with errno set when no number is
 * free (fd closed too), so it wraps an open call: fd = shmq__fd_high(open(...)). */
static inline int shmq__fd_high(int fd)
{
	int nfd, saved;

	if (fd < 0 || fd > 2)
		return fd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	saved = errno;
	close(fd);
	errno = saved;
	return nfd;
}

/* For a descriptor held in a variable another library owns (liburing's
 * ring_fd): move *fd to the lowest free number >= 3, close-on-exec, and say
 * true; false, *fd untouched and still open, when it is above 2 already or
 * no number is free (the ring then works where it is). */
static inline bool shmq__fd_lift(int *fd)
{
	int nfd;

	if (*fd < 0 || *fd > 2)
		return false;
	nfd = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
	if (nfd < 0)
		return false;
	close(*fd);
	*fd = nfd;
	return true;
}

#endif /* SHMQ__FD_INT_H */
