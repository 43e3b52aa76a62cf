/* SPDX-License-Identifier: MIT */
/*
 * Layer 3, regions: the object directory.  Named, typed objects: a table of
 * dir_entries entries (core/region_layout_int.h) scanned up to a high-water
 * mark, written only under the directory lock, each entry published by a
 * release store of READY after its object was built, so that finds and walks
 * (which take no lock) never see an object half made.  The space comes from
 * the region's heap (shmq__region_alloc in core/region.c).
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <shmq.h>

#include "core/atomic_int.h"
#include "core/compiler_int.h"
#include "core/fork_int.h"
#include "core/region_int.h"
#include "core/region_layout_int.h"
#include "core/wait_int.h"

#define DIRLOCK_SLICE_NS (10 * 1000 * 1000)
/* A holder keeps the directory for microseconds (a lookup, a claim, a bump
 * allocation and an object's init); one that keeps it this long is not a
 * holder but a corrupt or forged lock word. */
#define DIRLOCK_HOLD_MAX_NS ((int64_t)2 * 1000 * 1000 * 1000)
/* All the holds one call waits through: behind even a thousand creators a
 * waiter waits well under a second; a word that keeps changing for this long
 * is rewritten by a process that forges it. */
#define DIRLOCK_WAIT_MAX_NS ((int64_t)10 * 1000 * 1000 * 1000)

static struct shmq__region_ctl *ctl_of(const shmq_region *r)
{
	return shmq__region_ctl_at(r->base);
}

static struct shmq__dir_entry *entry_of(const shmq_region *r, unsigned i)
{
	return (struct shmq__dir_entry *)(r->base + r->dir_off) + i;
}

static uint32_t name_hash(const char *name)
{
	uint64_t h = shmq__fnv1a64(name, strlen(name));

	return (uint32_t)(h ^ (h >> 32));
}

const char *shmq__obj_type_name(uint32_t type)
{
	static const char *const names[SHMQ__OBJ_TYPE_MAX] = {
		[SHMQ__OBJ_NONE] = "none", SHMQ__OBJ_KINDS(SHMQ__OBJ_NAME_INIT) /* core/objkind_int.h */
	};

	return type < SHMQ__OBJ_TYPE_MAX ? names[type] : "unknown";
}

/* ---- directory lock: a futex word owned by a thread id (so two threads of
 * one process exclude each other like any two processes), stolen once that
 * thread is gone (its process died inside the directory).  Beside it the
 * holder's record (ctl->dir_holder: tid << 32 | owner id) names the
 * attachment the thread belongs to, so that a dead holder's tid, reused by
 * a live thread of any process, does not keep the lock ---- */

/* We hold the lock as tid: record who we are. */
static void dir_hold(shmq_region *r, uint32_t tid)
{
	/* relaxed: read by waiters after an acquire load of the word that shows
	 * this hold (dir_record); it carries the tid it belongs to */
	shmq__store_relaxed(&ctl_of(r)->dir_holder, (uint64_t)tid << 32 | shmq__region_self(r));
}

/* The holder record of word cur into *h: false when the word has moved on
 * from cur (look again). */
static bool dir_record(shmq_region *r, uint32_t cur, uint64_t *h)
{
	struct shmq__region_ctl *ctl = ctl_of(r);

	/* acquire: pairs with the seq_cst exchange in dir_unlock before the
	 * hold that wrote cur (the hold's CAS continues its release sequence),
	 * so the record read below is that unlock's clear or newer */
	if (shmq__load_acquire(&ctl->dir_lock) != cur)
		return false;
	/* relaxed: ordered by the acquire above; checked against cur */
	*h = shmq__load_relaxed(&ctl->dir_holder);
	return true;
}

/* The hold of thread cur has ended without an unlock: its process died (or
 * the thread ended) inside the directory.  The record decides when it is
 * cur's: the attachment it names must be alive (pid and start time, so a tid
 * reused by another process does not pass for the holder) and the thread
 * too; mine (cur is the caller's own tid): a hold of this process is the
 * caller's own (nested: not dead), one of another is dead, since the tid
 * is ours now.  Without a record for cur (a holder killed between its CAS
 * and dir_hold, or an older library, which writes none) the tid alone
 * decides, and a reused one keeps the hold for DIRLOCK_HOLD_MAX_NS. */
static bool dir_holder_dead(shmq_region *r, uint32_t cur, bool mine)
{
	uint64_t h;
	uint32_t id;

	if (!dir_record(r, cur, &h))
		return false; /* moved on: look again */
	id = (uint32_t)h;
	if ((uint32_t)(h >> 32) != cur || shmq__region_id_valid(r, id))
		return !mine && !shmq__pid_alive((pid_t)cur, 0);
	if (mine)
		return shmq__region_id_ours(r, id) == 0;
	/* a holder of another pid namespace: its tid names nobody here */
	if (shmq__region_id_foreign(r, id) == 1)
		return false;
	return shmq__region_id_alive(r, id) != 1 || !shmq__pid_alive((pid_t)cur, 0);
}

/* Word cur, our own tid, is a hold of this thread: the record names cur
 * and an attachment of this process (a nested directory call).  Without
 * such a record the word is no hold of ours: it was forged, or names a
 * thread of another pid namespace that shares the region. */
static bool dir_nested(shmq_region *r, uint32_t cur)
{
	uint64_t h;

	return dir_record(r, cur, &h) && (uint32_t)(h >> 32) == cur &&
	       shmq__region_id_ours(r, (uint32_t)h) == 1;
}

static int dir_lock(shmq_region *r)
{
	struct shmq__region_ctl *ctl = ctl_of(r);
	uint32_t self = (uint32_t)gettid();
	int64_t now = shmq_now_ns();
	int64_t give_up = now + DIRLOCK_HOLD_MAX_NS;
	int64_t deadline = now + DIRLOCK_WAIT_MAX_NS;

	for (;;) {
		uint32_t cur = 0;
		int rc;

		/* acquire: pairs with the seq_cst exchange in dir_unlock */
		if (shmq__cas_acquire(&ctl->dir_lock, &cur, self))
			break;
		/* a deadline for the whole call, not only for one hold: a word
		 * that keeps moving does not hold us for ever */
		if (shmq_now_ns() >= deadline)
			return -EBADMSG;
		if (cur == self && dir_nested(r, cur))
			return -EDEADLK; /* this thread nested a directory call (a bug) */
		if (cur == self && dir_holder_dead(r, cur, true)) {
			/* our tid, a dead holder's before us: let its hold go
			 * (only if it is still there) and try again.
			 * release: pairs with the cas_acquire above of the
			 * next taker, as dir_unlock's exchange does */
			shmq__cas_release(&ctl->dir_lock, &cur, 0);
			continue;
		}
		/* our tid without a hold of ours recorded (a forged word, or
		 * a thread of another pid namespace): wait as for any holder */
		rc = shmq__wait_word(&ctl->dir_lock, cur, &ctl->dir_sleepers,
				     give_up < deadline ? give_up : deadline, DIRLOCK_SLICE_NS);
		if (rc == 0) {
			/* the word moved: a new hold, which gets its own bound */
			give_up = shmq_now_ns() + DIRLOCK_HOLD_MAX_NS;
		} else if ((rc == -EINTR || rc == -ETIMEDOUT) && dir_holder_dead(r, cur, false)) {
			/* the holder died inside the directory: take over.
			 * acquire: pairs with the seq_cst exchange in
			 * dir_unlock of the holder before the dead one; the
			 * dead one's own stores are all done once it is gone,
			 * and dir_claim reuses the entry it left BUILDING */
			if (shmq__cas_acquire(&ctl->dir_lock, &cur, self))
				break;
			give_up = shmq_now_ns() + DIRLOCK_HOLD_MAX_NS; /* another took over */
		} else if (rc == -ETIMEDOUT) {
			/* nobody holds it that long, nor hands it on that long:
			 * a forged or corrupt word */
			return -EBADMSG;
		} else if (rc != -EINTR) {
			return rc;
		}
	}
	dir_hold(r, self);
	return 0;
}

static void dir_unlock(shmq_region *r)
{
	struct shmq__region_ctl *ctl = ctl_of(r);

	/* relaxed: published by the seq_cst exchange below; pairs with the
	 * load_acquire of the word in dir_holder_dead */
	shmq__store_relaxed(&ctl->dir_holder, 0);
	shmq__exchange_seq_cst(&ctl->dir_lock, 0);
	shmq__wake_word(&ctl->dir_lock, &ctl->dir_sleepers, 1);
}

/* ---- directory ---- */

/* Validate a published entry; fill in its checked memory. */
static int entry_check(const shmq_region *r, const struct shmq__dir_entry *e, uint32_t *type,
		       void **mem, uint64_t *size)
{
	/* relaxed: written before the store_release of READY in
	 * shmq__obj_create, and ordered after it by the caller's load_acquire
	 * of state (dir_lookup, shmq__obj_walk); a READY entry never changes */
	uint64_t off = shmq__load_relaxed(&e->off);
	uint64_t len = shmq__load_relaxed(&e->size);
	uint32_t t = shmq__load_relaxed(&e->type);

	if (t == SHMQ__OBJ_NONE || t >= SHMQ__OBJ_TYPE_MAX || off % SHMQ__CACHELINE)
		return -EBADMSG;
	*mem = shmq__region_ptr(r, off, len);
	if (!*mem || len == 0)
		return -EBADMSG;
	*type = t;
	*size = len;
	return 0;
}

/* Copy an entry's name out, refusing one without a terminator. */
static int entry_name(const struct shmq__dir_entry *e, char out[SHMQ_OBJ_NAME_MAX + 1])
{
	memcpy(out, e->name, SHMQ_OBJ_NAME_MAX + 1);
	if (memchr(out, '\0', SHMQ_OBJ_NAME_MAX + 1) == NULL)
		return -EBADMSG;
	return 0;
}

static uint32_t dir_hwm(const shmq_region *r)
{
	/* pairs with the release store of dir_hwm in dir_claim */
	uint32_t hwm = shmq__load_acquire(&ctl_of(r)->dir_hwm);

	return hwm > r->dir_entries ? r->dir_entries : hwm;
}

/* Scan for a READY entry named name.  Returns its index, -ENOENT, or -EBADMSG. */
static int dir_lookup(const shmq_region *r, const char *name, uint32_t hash)
{
	uint32_t hwm = dir_hwm(r);
	char buf[SHMQ_OBJ_NAME_MAX + 1];

	for (uint32_t i = 0; i < hwm; i++) {
		struct shmq__dir_entry *e = entry_of(r, i);

		/* pairs with the release store of READY in shmq__obj_create */
		if (shmq__load_acquire(&e->state) != SHMQ__DIR_READY)
			continue;
		if (shmq__load_relaxed(&e->name_hash) != hash) /* ordered by the state load */
			continue;
		if (entry_name(e, buf))
			return -EBADMSG;
		if (strcmp(buf, name) == 0)
			return (int)i;
	}
	return -ENOENT;
}

int shmq__obj_find(shmq_region *r, const char *name, uint32_t type, void **mem_out,
		   uint64_t *size_out)
{
	uint32_t t;
	void *mem;
	uint64_t size;
	int i, rc;

	/* a region handle inherited across fork() names the parent's
	 * attachment (its owner id): refuse it (observers have no pid) */
	if (shmq__region_forked(r))
		return -EBADF;
	if (!r || !mem_out)
		return -EINVAL;
	rc = shmq__obj_name_check(name);
	if (rc)
		return rc;
	i = dir_lookup(r, name, name_hash(name));
	if (i < 0)
		return i;
	rc = entry_check(r, entry_of(r, (unsigned)i), &t, &mem, &size);
	if (rc)
		return rc;
	if (t != type)
		return -EINVAL;
	*mem_out = mem;
	if (size_out)
		*size_out = size;
	return 0;
}

/* Under the directory lock: a free entry (BUILDING ones belong to creators
 * that died holding the lock), or -ENOSPC. */
static int dir_claim(shmq_region *r, uint32_t *idx)
{
	struct shmq__region_ctl *ctl = ctl_of(r);
	uint32_t hwm = dir_hwm(r);

	for (uint32_t i = 0; i < hwm; i++) {
		/* relaxed: every store of state is made under the directory
		 * lock, which we hold (dir_lock's cas_acquire) */
		uint32_t s = shmq__load_relaxed(&entry_of(r, i)->state);

		if (s == SHMQ__DIR_FREE || s == SHMQ__DIR_BUILDING) {
			*idx = i;
			return 0;
		}
		if (s != SHMQ__DIR_READY)
			return -EBADMSG;
	}
	if (hwm >= r->dir_entries)
		return -ENOSPC;
	*idx = hwm;
	/* release: readers that see the new hwm see the entry's FREE state;
	 * pairs with the load_acquire in dir_hwm */
	shmq__store_release(&ctl->dir_hwm, hwm + 1);
	return 0;
}

int shmq__obj_create(shmq_region *r, const char *name, uint32_t type, uint64_t size,
		     int (*init)(void *mem, uint64_t size, void *arg), void *arg,
		     void **mem_out)
{
	uint32_t hash, idx;
	struct shmq__dir_entry *e;
	void *mem = NULL;
	int rc;

	/* a region handle inherited across fork() names the parent's
	 * attachment (its owner id): refuse it (observers have no pid) */
	if (shmq__region_forked(r))
		return -EBADF;
	if (!r || type == SHMQ__OBJ_NONE || type >= SHMQ__OBJ_TYPE_MAX || size == 0)
		return -EINVAL;
	rc = shmq__obj_name_check(name);
	if (rc)
		return rc;
	hash = name_hash(name);
	rc = dir_lock(r);
	if (rc)
		return rc;
	rc = dir_lookup(r, name, hash);
	if (rc >= 0 || rc != -ENOENT) {
		rc = rc >= 0 ? -EEXIST : rc;
		goto out;
	}
	rc = dir_claim(r, &idx);
	if (rc)
		goto out;
	rc = shmq__region_alloc(r, size, &mem);
	if (rc)
		goto out;
	e = entry_of(r, idx);
	/* relaxed: the entry is published by the release store of READY below */
	shmq__store_relaxed(&e->state, (uint32_t)SHMQ__DIR_BUILDING);
	shmq__store_relaxed(&e->type, type);
	shmq__store_relaxed(&e->off, shmq__region_off(r, mem));
	shmq__store_relaxed(&e->size, SHMQ__ALIGN_UP(size, (uint64_t)SHMQ__CACHELINE));
	shmq__store_relaxed(&e->creator_id, r->self_id);
	shmq__store_relaxed(&e->name_hash, hash);
	memset(e->name, 0, sizeof(e->name));
	strcpy(e->name, name);
	rc = init ? init(mem, size, arg) : 0;
	if (rc) {
		shmq__store_relaxed(&e->state, (uint32_t)SHMQ__DIR_FREE); /* never published */
		goto out;
	}
	/* pairs with the load_acquire of state in dir_lookup and shmq__obj_walk */
	shmq__store_release(&e->state, (uint32_t)SHMQ__DIR_READY);
	shmq__fetch_add_relaxed(&ctl_of(r)->dir_count, 1); /* a statistic for tools */
	if (mem_out)
		*mem_out = mem;
out:
	dir_unlock(r);
	return rc;
}

int shmq__obj_walk(shmq_region *r, shmq__obj_visit_fn fn, void *arg)
{
	uint32_t hwm = dir_hwm(r);
	char buf[SHMQ_OBJ_NAME_MAX + 1];
	int bad = 0;

	for (uint32_t i = 0; i < hwm; i++) {
		struct shmq__dir_entry *e = entry_of(r, i);
		uint32_t type;
		uint64_t size;
		void *mem;
		int rc;

		/* pairs with the release store of READY in shmq__obj_create */
		if (shmq__load_acquire(&e->state) != SHMQ__DIR_READY)
			continue;
		if (entry_name(e, buf) || entry_check(r, e, &type, &mem, &size)) {
			bad = -EBADMSG;
			if (entry_name(e, buf))
				strcpy(buf, "?");
			rc = fn(buf, SHMQ__OBJ_NONE, NULL, 0, arg);
		} else {
			rc = fn(buf, type, mem, size, arg);
		}
		if (rc)
			return rc;
	}
	return bad;
}

SHMQ_API int shmq_region_alloc(shmq_region *r, const char *name, size_t size, void **mem)
{
	if (!r || !mem || size == 0)
		return -EINVAL;
	return shmq__obj_create(r, name, SHMQ__OBJ_BLOB, size, NULL, NULL, mem);
}

SHMQ_API int shmq_region_find(shmq_region *r, const char *name, void **mem, size_t *size)
{
	uint64_t sz;
	int rc;

	if (!r || !mem)
		return -EINVAL;
	rc = shmq__obj_find(r, name, SHMQ__OBJ_BLOB, mem, &sz);
	if (!rc && size)
		*size = (size_t)sz;
	return rc;
}
