/* SPDX-License-Identifier: MIT */
/*
 * The counter table in the region: creating and opening it, the striped
 * locks placed beside it, and the one critical section (increment) with its
 * undo record, which the next holder replays after -EOWNERDEAD.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "server.h"

/* Lock waits are bounded: a holder that stalls (not died: dead holders
 * are reported at once) costs one request an error, never a hang. */
#define SRV_LOCK_TIMEOUT (5 * SRV_S)

static int ctx_locks(struct srv_ctx *c)
{
	size_t fp = shmq_lock_footprint(), size;
	char *mem;
	int rc;

	rc = shmq_region_find(c->r, SRV_LOCKS, (void **)&mem, &size);
	if (rc)
		return rc;
	if (size < SRV_STRIPES * fp)
		return -EBADMSG;
	for (unsigned s = 0; s < SRV_STRIPES; s++) {
		rc = shmq_lock_attach(c->r, mem + s * fp, &c->lock[s]);
		if (rc)
			return rc;
	}
	return 0;
}

int srv_ctx_create(shmq_region *r, struct srv_ctx *c, unsigned workers)
{
	struct shmq_queue_opts qo = { .capacity = 4096, .max_msg = SRV_LOG_MAX };
	size_t fp = shmq_lock_footprint();
	shmq_barrier *b;
	char *locks;
	int rc;

	memset(c, 0, sizeof(*c));
	c->r = r;
	c->who = "master";
	rc = shmq_region_alloc(r, SRV_TABLE, sizeof(*c->sh), (void **)&c->sh);
	if (rc)
		return rc;
	c->sh->magic = SRV_MAGIC;
	c->sh->version = SRV_VERSION;
	c->sh->stripes = SRV_STRIPES;
	c->sh->slots = SRV_SLOTS;
	rc = shmq_region_alloc(r, SRV_LOCKS, SRV_STRIPES * fp, (void **)&locks);
	for (unsigned s = 0; !rc && s < SRV_STRIPES; s++)
		rc = shmq_lock_init(locks + s * fp);
	if (!rc)
		rc = ctx_locks(c);
	if (!rc)
		rc = shmq_queue_create(r, SRV_QUEUE, &qo, &c->q);
	if (!rc) {
		rc = shmq_barrier_create(r, SRV_READY, workers + 1, &b);
		shmq_barrier_close(rc ? NULL : b);
	}
	return rc;
}

int srv_ctx_open(shmq_region *r, struct srv_ctx *c)
{
	size_t size;
	int rc;

	memset(c, 0, sizeof(*c));
	c->r = r;
	rc = shmq_region_find(r, SRV_TABLE, (void **)&c->sh, &size);
	if (rc)
		return rc;
	if (size < sizeof(*c->sh) || c->sh->magic != SRV_MAGIC || c->sh->version != SRV_VERSION ||
	    c->sh->stripes != SRV_STRIPES || c->sh->slots != SRV_SLOTS)
		return -EPROTO;
	rc = ctx_locks(c);
	if (!rc)
		rc = shmq_queue_open(r, SRV_QUEUE, &c->q);
	return rc;
}

void srv_ctx_close(struct srv_ctx *c)
{
	for (unsigned s = 0; s < SRV_STRIPES; s++)
		shmq_lock_close(c->lock[s]);
	shmq_queue_close(c->q);
	memset(c, 0, sizeof(*c));
}

int srv_key_check(const char *key, size_t len)
{
	if (len == 0 || len > SRV_KEY_MAX)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		char ch = key[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '.' || ch == '_' || ch == ':' || ch == '-'))
			return -EINVAL;
	}
	return 0;
}

static uint64_t key_hash(const char *key, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)key[i]) * 0x100000001b3ull;
	return h;
}

unsigned srv_key_stripe(const char *key, size_t len)
{
	return key_hash(key, len) % SRV_STRIPES;
}

/*
 * Undo what a dead holder left half done.  The journal fields are read with
 * acquire: they pair with the release store that retired the previous
 * record and with the fence that published this one (see srv_incr_locked);
 * the dead process can no longer write, so what is there is final.
 */
static void stripe_repair(struct srv_ctx *c, unsigned s)
{
	struct srv_stripe *st = &c->sh->stripe[s];
	struct srv_slot *sl;
	uint32_t idx;

	if (c->ws)
		atomic_fetch_add_explicit(&c->ws->repairs, 1, memory_order_relaxed); /* statistic */
	if (!atomic_load_explicit(&st->j.active, memory_order_acquire)) {
		fprintf(stderr, "%s: stripe %u: its holder died outside a change; nothing to repair\n",
			c->who, s);
		return;
	}
	idx = atomic_load_explicit(&st->j.slot, memory_order_acquire);
	if (idx >= SRV_SLOTS) {
		/* Never trust the region: a wild index is reported, not followed. */
		fprintf(stderr, "%s: stripe %u: undo record names slot %u; dropped\n", c->who, s, idx);
	} else {
		sl = &st->slots[idx];
		if (atomic_load_explicit(&st->j.was_free, memory_order_acquire)) {
			/* relaxed: under the stripe lock, which orders them for the next holder */
			atomic_store_explicit(&sl->used, 0, memory_order_relaxed);
			atomic_store_explicit(&sl->count, 0, memory_order_relaxed);
			memset(sl->key, 0, sizeof(sl->key));
		} else {
			/* relaxed: under the stripe lock, as above */
			atomic_store_explicit(&sl->count,
					      atomic_load_explicit(&st->j.old_count, memory_order_acquire),
					      memory_order_relaxed);
		}
		fprintf(stderr, "%s: stripe %u: repaired after a dead holder (slot %u back to %s %llu)\n",
			c->who, s, idx, sl->key[0] ? sl->key : "<free>",
			(unsigned long long)atomic_load_explicit(&sl->count, memory_order_relaxed));
	}
	/* release: the repair is complete before the record is retired; pairs
	 * with the acquire load of active by a later repair */
	atomic_store_explicit(&st->j.active, 0, memory_order_release);
}

int srv_stripe_lock(struct srv_ctx *c, unsigned s)
{
	int rc = shmq_lock_acquire(c->lock[s], SRV_LOCK_TIMEOUT);

	if (rc == -EOWNERDEAD) {
		stripe_repair(c, s);
		rc = 0;
	}
	return rc;
}

void srv_stripe_unlock(struct srv_ctx *c, unsigned s)
{
	shmq_lock_release(c->lock[s]);
}

int srv_key_slot(struct srv_ctx *c, unsigned s, const char *key, size_t len, int *found)
{
	struct srv_stripe *st = &c->sh->stripe[s];
	unsigned start = (unsigned)(key_hash(key, len) >> 16) % SRV_SLOTS;

	for (unsigned i = 0; i < SRV_SLOTS; i++) {
		unsigned idx = (start + i) % SRV_SLOTS;
		struct srv_slot *sl = &st->slots[idx];

		/* relaxed: read under the stripe lock, which orders it */
		if (!atomic_load_explicit(&sl->used, memory_order_relaxed)) {
			*found = 0;
			return (int)idx;
		}
		if (memcmp(sl->key, key, len) == 0 && sl->key[len] == '\0') {
			*found = 1;
			return (int)idx;
		}
	}
	return -ENOSPC;
}

int srv_incr_locked(struct srv_ctx *c, unsigned s, const char *key, size_t len, int die,
		    uint64_t *out)
{
	struct srv_stripe *st = &c->sh->stripe[s];
	struct srv_slot *sl;
	uint64_t old;
	int found, idx;

	idx = srv_key_slot(c, s, key, len, &found);
	if (idx < 0)
		return idx;
	sl = &st->slots[idx];
	/* relaxed: under the stripe lock (acquire/release of the lock orders
	 * these for the next holder); the fences below order them for a
	 * repairer after this process died here */
	old = found ? atomic_load_explicit(&sl->count, memory_order_relaxed) : 0;
	atomic_store_explicit(&st->j.slot, (uint32_t)idx, memory_order_relaxed);
	atomic_store_explicit(&st->j.old_count, old, memory_order_relaxed);
	atomic_store_explicit(&st->j.was_free, !found, memory_order_relaxed);
	atomic_store_explicit(&st->j.active, 1, memory_order_relaxed);
	/* The undo record is in memory before the change it undoes. */
	atomic_thread_fence(memory_order_seq_cst);
	if (!found) {
		memcpy(sl->key, key, len);
		sl->key[len] = '\0';
		atomic_store_explicit(&sl->used, 1, memory_order_relaxed); /* as above */
	}
	atomic_store_explicit(&sl->count, old + 1, memory_order_relaxed); /* as above */
	if (die) {
		fprintf(stderr, "%s: CRASH %.*s: dying with stripe %u locked, count %llu unreplied\n",
			c->who, (int)len, key, s, (unsigned long long)(old + 1));
		raise(SIGKILL);
	}
	/* release: the change is complete before the record is retired; pairs
	 * with the acquire load of active in stripe_repair */
	atomic_store_explicit(&st->j.active, 0, memory_order_release);
	*out = old + 1;
	return 0;
}
