/* SPDX-License-Identifier: MIT */
/*
 * Compiled into libshmq, not libshmq-bridge: what the bridge needs from the
 * queue beyond the public API, exported through the version node
 * LIBSHMQ_PRIVATE (lib/libshmq.map) for libshmq-bridge only, with no ABI
 * promise.  libshmq is built with -fvisibility=hidden, and the version
 * script cannot export a hidden symbol such as chan's shmq__queue_ident;
 * this forwarder carries default visibility instead.  It goes once
 * chan/queue_int.h declares shmq__queue_ident SHMQ_API.  Also here, for
 * the same reason (libshmq must know it, and only this layer sees the
 * layout): the describer of a bridge's checkpoint for `shmq stat`.
 */
#include "config.h"

#include <errno.h>

#include <shmq/bridge.h>

#include "bridge/bridge_int.h"
#include "bridge/export_int.h"
#include "core/atomic_int.h"
#include "core/introspect_int.h"

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

SHMQ_API ssize_t shmq__bridge_queue_get_begin_idle(shmq_queue *q, const void **msg,
						   uint64_t *pos, int64_t timeout_ns)
{
	return shmq__queue_get_begin_idle(q, msg, pos, timeout_ns);
}

/*
 * A bridge's checkpoint (bridge/bridge_int.h) is a blob of the region: the
 * blob describer (core/introspect.c) hands every blob here, and one that
 * starts with SHMQ__BRIDGE_MAGIC and is large enough is described as a
 * checkpoint (`shmq stat`): bridge (in / out), version, state, read and
 * acked (IN: the last stream sequence put; OUT: the last position acked),
 * pending and in_doubt (IN), looped (OUT), rewinds, holder_pid (the last
 * holder's pid as it stored it; the lock "<name>.hold" says whether it
 * lives).  Read only, relaxed loads (snap64: a snapshot); every word untrusted: an
 * impossible direction or state sets -EBADMSG and is shown as read, never
 * used; a version this library does not know is named and not read further.
 */
/* relaxed: a snapshot for a tool, read alone; no ordering with anything */
static uint64_t snap64(const uint64_t *w)
{
	return shmq__load_relaxed(w);
}

/* relaxed: as snap64 */
static uint32_t snap32(const uint32_t *w)
{
	return shmq__load_relaxed(w);
}

bool shmq__bridge_blob_describe(shmq_region *r, const void *mem, uint64_t size,
				struct shmq__obj_stat *st)
{
	static const char *const states[] = { "idle", "running", "blocked", "offline", "stopped" };
	const struct shmq__bridge_shared *sh = mem;
	uint32_t version, dir, state;

	(void)r;
	if (!mem || size < SHMQ__BRIDGE_OBJ_SIZE ||
	    snap32(&sh->magic) != SHMQ__BRIDGE_MAGIC)
		return false;
	dir = snap32(&sh->dir);
	version = snap32(&sh->version);
	shmq__stat_str(st, "bridge", dir == SHMQ_BRIDGE_IN ? "in" :
				     dir == SHMQ_BRIDGE_OUT ? "out" : "?");
	shmq__stat_u64(st, "version", version);
	if (dir != SHMQ_BRIDGE_IN && dir != SHMQ_BRIDGE_OUT) {
		st->status = -EBADMSG;
		shmq__stat_u64(st, "dir", dir);
		return true;
	}
	if (version != SHMQ__BRIDGE_VERSION_1 && version != SHMQ__BRIDGE_VERSION) {
		if (version > SHMQ__BRIDGE_VERSION)
			return true; /* a newer library's: its words are not ours to read */
		st->status = -EBADMSG;
		return true;
	}
	state = snap32(&sh->state);
	if (state < sizeof(states) / sizeof(states[0])) {
		shmq__stat_str(st, "state", states[state]);
	} else {
		st->status = -EBADMSG;
		shmq__stat_u64(st, "state_word", state);
	}
	shmq__stat_u64(st, "read", snap64(&sh->read));
	shmq__stat_u64(st, "acked", snap64(&sh->applied));
	if (dir == SHMQ_BRIDGE_IN) {
		shmq__stat_u64(st, "pending", snap64(&sh->pending));
		shmq__stat_u64(st, "in_doubt", snap64(&sh->in_doubt));
	} else {
		shmq__stat_u64(st, "looped", snap64(&sh->looped));
	}
	shmq__stat_u64(st, "rewinds", snap64(&sh->rewinds));
	shmq__stat_i64(st, "holder_pid", (int64_t)snap32(&sh->holder_pid));
	return true;
}
