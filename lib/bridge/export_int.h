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

#endif /* SHMQ__BRIDGE_EXPORT_INT_H */
