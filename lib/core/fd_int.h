/* SPDX-License-Identifier: MIT */
/*
 * Private: descriptors the library keeps are never 0, 1 or 2.
 *
 * A host that closed its standard streams (a daemon that did not reopen
 * them on /dev/null) gets the lowest free numbers back from open(2): a
 * region's file at 1 would take the host's next printf into the region's
 * header, a pipe to a child at 0 would feed the host's reads.  (SQLite
 * refuses those numbers for its database files for the same reason.)
 */
#ifndef SHMQ__FD_INT_H
#define SHMQ__FD_INT_H

#include <errno.h>
#include <fcntl.h>
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

#endif /* SHMQ__FD_INT_H */
