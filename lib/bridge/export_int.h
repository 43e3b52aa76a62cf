/* SPDX-License-Identifier: MIT */
/*
 * Private: libshmq's exports for libshmq-bridge only (lib/bridge/export.c,
 * version node LIBSHMQ_PRIVATE); no ABI promise.
 */
#ifndef SHMQ__BRIDGE_EXPORT_INT_H
#define SHMQ__BRIDGE_EXPORT_INT_H

#include <shmq.h>

#include "chan/queue_int.h"

/* shmq__queue_ident (chan/queue_int.h): the queue's incarnation and cursors. */
SHMQ_API int shmq__bridge_queue_ident(const shmq_queue *q, struct shmq__queue_ident *id);

/* shmq__queue_put_noted (chan/queue_int.h): a put that notes its position
 * before the message is published. */
SHMQ_API int shmq__bridge_queue_put_noted(shmq_queue *q, const void *msg, size_t len,
					  int64_t timeout_ns,
					  void (*note)(void *arg, uint64_t pos), void *arg);

/* shmq__queue_put_fate (chan/queue_int.h): was a noted put published? */
SHMQ_API int shmq__bridge_queue_put_fate(shmq_queue *q, uint64_t pos);

/* shmq__queue_get_begin_idle (chan/queue_int.h): a begin with no spin. */
SHMQ_API ssize_t shmq__bridge_queue_get_begin_idle(shmq_queue *q, const void **msg,
						   uint64_t *pos, int64_t timeout_ns);

#endif /* SHMQ__BRIDGE_EXPORT_INT_H */
