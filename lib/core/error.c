/* SPDX-License-Identifier: MIT */
/* Error names, the library clock and version. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <time.h>

#include <shmq.h>

#include "core/time_int.h"

SHMQ_API const char *shmq_strerror(int err)
{
	if (err < 0)
		err = err == INT_MIN ? INT_MAX : -err; /* -INT_MIN overflows: no errno there */
	switch (err) {
	case 0:         return "success";
	case EAGAIN:    return "would block (resource temporarily unavailable)";
	case ETIMEDOUT: return "timed out";
	case EPIPE:     return "peer closed, object shut down or broken";
	case EOWNERDEAD: return "previous owner died; state may be inconsistent";
	case EINVAL:    return "invalid argument";
	case ENOMEM:    return "out of memory";
	case ENOSPC:    return "no space left in region or ring";
	case EMSGSIZE:  return "message too large for ring or buffer";
	case EBADMSG:   return "corrupted shared memory";
	case EEXIST:    return "already exists";
	case ENOENT:    return "no such region, object, entry or program";
	case EPROTO:    return "layout version mismatch";
	case EDEADLK:   return "would deadlock (lock held, or thread joining itself)";
	case EPERM:     return "operation not permitted (lock not held by the caller)";
	case ECANCELED: return "cancelled";
	case EACCES:    return "permission denied";
	case EBADF:     return "bad descriptor or closed handle";
	case ESRCH:     return "no such process";
	case ECHILD:    return "no child to wait for";
	case ENOSYS:    return "not supported by this kernel";
	case EBUSY:     return "busy";
	case ENAMETOOLONG: return "name too long";
	case EOVERFLOW: return "value too large";
	/* what system calls return through the library unchanged */
	case EMFILE:    return "too many open descriptors in this process (RLIMIT_NOFILE)";
	case ENFILE:    return "too many open files in the system";
	case ELOOP:     return "symbolic link where a region or program was expected";
	case ENOTDIR:   return "a path component is not a directory";
	case EISDIR:    return "is a directory";
	case EROFS:     return "read-only file system";
	case EDQUOT:    return "disk quota exceeded";
	case EFBIG:     return "file too large";
	case ENODEV:    return "no such device (file system cannot be mapped)";
	case ENXIO:     return "no such device or address";
	case E2BIG:     return "argument list too long";
	case ENOEXEC:   return "not an executable program";
	case ETXTBSY:   return "program file busy (open for writing)";
	case EINTR:     return "interrupted by a signal";
	case EIO:       return "input/output error";
	case EFAULT:    return "bad address";
	case EOPNOTSUPP: return "operation not supported";
	case EAFNOSUPPORT: return "address family not supported";
	case ECONNRESET: return "connection reset by peer";
	case ECONNREFUSED: return "connection refused (no server at that address)";
	case ENOTCONN:  return "not connected (the server is unreachable)";
	case ESTALE:    return "stale handle (the object was replaced)";
	case ETIME:     return "timer expired";
	default:        return "unknown error";
	}
}

SHMQ_API int64_t shmq_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return shmq__timespec_to_ns(&ts);
}

SHMQ_API const char *shmq_version(void)
{
	return PACKAGE_VERSION;
}
