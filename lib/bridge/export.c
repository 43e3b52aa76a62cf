/* SPDX-License-Identifier: MIT */
/*
 * Compiled into libshmq, not libshmq-bridge: what the bridge needs from the
 * queue beyond the public API, exported through the version node
 * LIBSHMQ_PRIVATE (lib/libshmq.map) for libshmq-bridge only, with no ABI
 * promise.  libshmq is built with -fvisibility=hidden, and the version
 * script cannot export a hidden symbol such as chan's shmq__queue_ident;
 * this forwarder carries default visibility instead.  It goes once
 * chan/queue_int.h declares shmq__queue_ident SHMQ_API.
 */
#include "config.h"

#include "bridge/export_int.h"

SHMQ_API int shmq__bridge_queue_ident(const shmq_queue *q, struct shmq__queue_ident *id)
{
	return shmq__queue_ident(q, id);
}

SHMQ_API int shmq__bridge_queue_put_noted(shmq_queue *q, const void *msg, size_t len,
					  int64_t timeout_ns,
					  void (*note)(void *arg, uint64_t pos), void *arg)
{
	return shmq__queue_put_noted(q, msg, len, timeout_ns, note, arg);
}

SHMQ_API int shmq__bridge_queue_put_fate(shmq_queue *q, uint64_t pos)
{
	return shmq__queue_put_fate(q, pos);
}
