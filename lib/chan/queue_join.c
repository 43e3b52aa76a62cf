/* SPDX-License-Identifier: MIT */
/*
 * Layer 4: joinable queues (Python's JoinableQueue): task_done and join.
 * The protocol is described in chan/queue_int.h (Joinable queues).
 *
 * Sleeping.  Joiners sleep on the table's word, whose bit 0 says that a
 * wake is wanted (the ring's WAKE_PENDING, chan/queue.c), with task_done as
 * the waker:
 *
 *   joiner:     sleepers += 1;  v = word |= 1 (seq_cst);  if still
 *               unfinished (seq_cst loads): futex_wait(word, v);
 *               sleepers -= 1
 *   task_done:  count -= 1 (seq_cst);  if sleepers != 0 and word (seq_cst)
 *               has bit 0: CAS word to (word + 1) (bit 0 clear, the value
 *               bumped); if that CAS was ours: futex_wake(word, all)
 *
 * Either the joiner's reads see the decrement, or its fetch_or precedes
 * task_done's loads, which then find bit 0 set, unless another task_done
 * cleared it first: that one bumped the word and woke, so the joiner's
 * futex_wait fails or wakes either way.  A task_done with nobody joining
 * makes no system call, and neither does one after a joiner killed in its
 * sleep: its sleeper count stays, but the bit it set is spent by one wake.
 * Deaths wake nobody: a joiner's sleep lasts at most a slice, then it looks
 * again, judging the owners of the counts it finds with the full liveness
 * check.  (Mixed library versions: a task_done from before the bit wakes
 * on the count alone, so it still wakes these joiners; a joiner from
 * before it sets no bit, and a task_done here leaves it to its slice.)
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <shmq.h>

#include "chan/queue_int.h"
#include "core/atomic_int.h"
#include "core/introspect_int.h"
#include "core/region_int.h"
#include "core/wait_int.h"
#include "ring/mpmc_int.h"

#define SLICE_NS ((int64_t)15 * 1000 * 1000) /* liveness looks while joining */
#define JOIN_SPIN 64u                         /* looks before the first sleep */

#define ENT_ID(w) ((uint32_t)((w) >> 32))
#define ENT_COUNT(w) ((uint32_t)(w))
#define ENT_MAKE(id, n) ((uint64_t)(id) << 32 | (uint32_t)(n))

void shmq__join_init(void *mem)
{
	struct shmq__join_shared *sh = mem;

	/* plain stores: nobody attached yet; published with the queue (the
	 * directory's READY release, or the caller's own for a placed queue) */
	memset(sh, 0, sizeof(*sh));
	sh->magic = SHMQ__JOIN_MAGIC;
	sh->entries = SHMQ__JOIN_ENTRIES;
}

int shmq__join_attach(struct shmq__join *j, void *mem, uint64_t avail, shmq_region *r)
{
	struct shmq__join_shared *sh = mem;

	if (!r)
		return -EINVAL;
	if (avail < sizeof(*sh) || (uintptr_t)mem % 64)
		return -EBADMSG;
	/* relaxed: written before the queue was published (shmq__join_init) */
	if (shmq__load_relaxed(&sh->magic) != SHMQ__JOIN_MAGIC ||
	    shmq__load_relaxed(&sh->entries) != SHMQ__JOIN_ENTRIES)
		return -EBADMSG;
	j->sh = sh;
	j->r = r;
	j->self = shmq__region_self(r);
	return 0;
}

/* Is w a possible entry for slot k?  An id is 0 (never used: count 0) or
 * one an attachment of slot k can carry. */
static bool ent_valid(const struct shmq__join *j, unsigned k, uint64_t w)
{
	uint32_t id = ENT_ID(w);

	if (id == 0)
		return ENT_COUNT(w) == 0;
	return shmq__region_id_valid(j->r, id) == 0 && shmq__id_slot(id) == k;
}

static uint64_t *own_entry(const struct shmq__join *j)
{
	/* the slot of our own id: below the table's size (region_id_valid
	 * bounds it by the private ptab_slots, at most SHMQ__PTAB_SLOTS) */
	return &j->sh->ent[shmq__id_slot(j->self)];
}

int shmq__join_can_take(const struct shmq__join *j)
{
	/* relaxed: a pre-check; shmq__join_take's CAS decides */
	uint64_t w = shmq__load_relaxed(own_entry(j));

	if (!ent_valid(j, shmq__id_slot(j->self), w))
		return -EBADMSG;
	if (ENT_ID(w) == j->self && ENT_COUNT(w) == UINT32_MAX)
		return -EOVERFLOW;
	return 0;
}

void shmq__join_take(struct shmq__join *j, uint32_t n)
{
	uint64_t *e = own_entry(j);
	/* seq_cst: the entry and the slot's release are read by a joiner in
	 * the opposite order (chan/queue_int.h, What is unfinished) */
	uint64_t w = shmq__load_seq_cst(e);

	for (;;) {
		uint64_t keep = ENT_ID(w) == j->self ? ENT_COUNT(w) : 0;
		uint64_t c = keep + n > UINT32_MAX ? UINT32_MAX : keep + n;
		uint64_t gone = ENT_ID(w) == j->self ? 0 : ENT_COUNT(w);

		/* a gone attachment's count (or a corrupt entry's, which
		 * can_take refused a moment ago) moves to orphaned first
		 * (seq_cst: before the CAS that hides it) */
		if (gone)
			shmq__fetch_add_seq_cst(&j->sh->orphaned, gone);
		/* seq_cst: counted before the caller frees the slot */
		if (shmq__cas_seq_cst(e, &w, ENT_MAKE(j->self, c)))
			return;
		if (gone) /* seq_cst: undo, the entry changed under us */
			shmq__fetch_sub_seq_cst(&j->sh->orphaned, gone);
	}
}

void shmq__join_untake(struct shmq__join *j, uint32_t n)
{
	uint64_t *e = own_entry(j);
	uint64_t w = shmq__load_seq_cst(e); /* seq_cst: as in shmq__join_take */

	while (ENT_ID(w) == j->self && ENT_COUNT(w) >= n)
		if (shmq__cas_seq_cst(e, &w, ENT_MAKE(j->self, ENT_COUNT(w) - n)))
			return;
}

/* Take one off entry k if it has one: 1 done, 0 none there, -EBADMSG. */
static int ent_done(struct shmq__join *j, unsigned k)
{
	uint64_t *e = &j->sh->ent[k];
	uint64_t w = shmq__load_seq_cst(e); /* seq_cst: as in shmq__join_take */

	for (;;) {
		if (!ent_valid(j, k, w))
			return -EBADMSG;
		if (ENT_COUNT(w) == 0)
			return 0;
		/* seq_cst: before the load of sleepers (see Sleeping) */
		if (shmq__cas_seq_cst(e, &w, w - 1))
			return 1;
	}
}

/* Take one off orphaned if it has one: 1 or 0. */
static int orphan_done(struct shmq__join *j)
{
	uint64_t v = shmq__load_seq_cst(&j->sh->orphaned); /* seq_cst: as ent_done */

	while (v != 0)
		if (shmq__cas_seq_cst(&j->sh->orphaned, &v, v - 1)) /* seq_cst: as ent_done */
			return 1;
	return 0;
}

static int join_done(struct shmq__join *j)
{
	unsigned own = shmq__id_slot(j->self), slots = j->r->ptab_slots;
	int rc = ent_done(j, own);

	for (unsigned k = 0; rc == 0 && k < slots && k < SHMQ__JOIN_ENTRIES; k++)
		if (k != own)
			rc = ent_done(j, k);
	if (rc == 0)
		rc = orphan_done(j);
	return rc == 0 ? -EINVAL : rc < 0 ? rc : 0;
}

int shmq_queue_task_done(shmq_queue *q)
{
	struct shmq__mpmc *m;
	struct shmq__join *j;
	int rc = shmq__queue_join_parts(q, &m, &j);

	if (rc)
		return rc;
	rc = join_done(j);
	if (rc)
		return rc;
	/* relaxed: statistics only */
	shmq__fetch_add_relaxed(&j->sh->done, 1);
	/* seq_cst: the Dekker loads of the sleeper count and the wake bit
	 * (see Sleeping) */
	if (shmq__load_seq_cst(&j->sh->sleepers) != 0) {
		uint32_t w = shmq__load_seq_cst(&j->sh->word);

		/* seq_cst: clears the bit and bumps the value at once; a joiner
		 * that read the old value will not sleep */
		if ((w & 1u) && shmq__cas_seq_cst(&j->sh->word, &w, w + 1)) {
			shmq__count_event(&j->sh->wakes);
			shmq__futex_wake(&j->sh->word, INT32_MAX);
		}
	}
	return 0;
}

/* Where the queue's messages are (chan/queue_int.h, What is unfinished):
 * 1 something unfinished that may still be finished, 0 all finished,
 * -EOWNERDEAD only dead processes' takes remain, -EBADMSG.  quick: judge
 * owners without a system call (a listed owner counts as alive). */
static int join_state(struct shmq__mpmc *m, struct shmq__join *j, bool quick)
{
	uint64_t busy = 0, dead = 0;
	unsigned slots = j->r->ptab_slots;
	/* seq_cst: head, tail, head again (as shmq__mpmc_check), before the
	 * slots and the counts */
	uint64_t h = shmq__load_seq_cst(&m->sh->head);
	uint64_t t = shmq__load_seq_cst(&m->sh->tail);
	int rc = shmq__mpmc_check(m);

	if (rc)
		return rc;
	if ((int64_t)(t - h) > 0)
		return 1;
	rc = shmq__mpmc_behind_head(m, h, quick, &busy, &dead);
	if (rc)
		return rc;
	if (busy)
		return 1;
	/* every entry is checked, also after a live one settled the answer */
	for (unsigned k = 0; k < slots && k < SHMQ__JOIN_ENTRIES; k++) {
		uint64_t w = shmq__load_seq_cst(&j->sh->ent[k]); /* seq_cst: after the slots */
		int alive;

		if (!ent_valid(j, k, w))
			return -EBADMSG;
		if (ENT_COUNT(w) == 0 || busy)
			continue;
		if (ENT_ID(w) == j->self)
			alive = 1;
		else
			alive = quick ? shmq__region_id_listed(j->r, ENT_ID(w))
				      : shmq__region_id_alive(j->r, ENT_ID(w));
		if (alive < 0)
			return alive;
		if (alive)
			busy = 1;
		else
			dead += ENT_COUNT(w);
	}
	if (busy)
		return 1;
	dead += shmq__load_seq_cst(&j->sh->orphaned); /* seq_cst: as the entries */
	return dead ? -EOWNERDEAD : 0;
}

/* One sleep of at most a slice: registered first, then the state (see
 * Sleeping).  The state if it is final, else 1 (look again), or -ETIMEDOUT. */
static int join_sleep(struct shmq__mpmc *m, struct shmq__join *j, int64_t deadline, bool quick)
{
	int64_t now = shmq_now_ns();
	int64_t until = deadline - now > SLICE_NS ? now + SLICE_NS : deadline;
	uint32_t v;
	int rc;

	shmq__fetch_add_seq_cst(&j->sh->sleepers, 1); /* seq_cst: see Sleeping */
	/* seq_cst: the wake bit, before the state's loads (see Sleeping) */
	v = shmq__fetch_or_seq_cst(&j->sh->word, 1u) | 1u;
	rc = join_state(m, j, quick);
	if (rc == 1) {
		shmq__count_event(&j->sh->waits);
		rc = shmq__futex_wait(&j->sh->word, v, until);
		rc = rc == 0 || (rc == -ETIMEDOUT && until != deadline) ? 1 : rc;
	}
	shmq__fetch_sub_seq_cst(&j->sh->sleepers, 1); /* seq_cst: see Sleeping */
	return rc;
}

int shmq_queue_join(shmq_queue *q, int64_t timeout_ns)
{
	struct shmq__mpmc *m;
	struct shmq__join *j;
	int64_t deadline, next_full;
	int rc = shmq__queue_join_parts(q, &m, &j);

	if (rc)
		return rc;
	if (SHMQ__UNLIKELY(shmq__timeout_bad(timeout_ns)))
		return -EINVAL;
	/* the full liveness check at once: a take of a dead process found now
	 * is final now */
	rc = join_state(m, j, false);
	if (rc != 1)
		return rc;
	if (timeout_ns == SHMQ_NOWAIT)
		return -EAGAIN;
	deadline = shmq__deadline(timeout_ns);
	for (unsigned i = 0; i < JOIN_SPIN; i++) {
		shmq__cpu_relax();
		rc = join_state(m, j, true);
		if (rc != 1)
			return rc;
	}
	next_full = shmq_now_ns() + SLICE_NS;
	for (;;) {
		/* quick looks, and the full check once a slice (a /proc read
		 * per listed owner that holds a count) */
		bool full = shmq_now_ns() >= next_full;

		if (full)
			next_full = shmq_now_ns() + SLICE_NS;
		rc = join_sleep(m, j, deadline, !full);
		if (rc == -ETIMEDOUT) {
			rc = join_state(m, j, false);
			return rc == 1 ? -ETIMEDOUT : rc;
		}
		if (rc != 1)
			return rc;
	}
}

/* shmq stat: the table after the ring (mem + ring footprint, checked by
 * the caller against size).  Relaxed loads: a snapshot. */
void shmq__join_describe(shmq_region *r, const void *mem, uint64_t size,
			 struct shmq__obj_stat *st)
{
	const struct shmq__join_shared *sh = mem;
	uint64_t out = 0, dead = 0;

	/* relaxed: a snapshot, checked before use; orders nothing */
	if (size < sizeof(*sh) || shmq__load_relaxed(&sh->magic) != SHMQ__JOIN_MAGIC ||
	    shmq__load_relaxed(&sh->entries) != SHMQ__JOIN_ENTRIES) {
		st->status = -EBADMSG;
		return;
	}
	for (unsigned k = 0; k < SHMQ__JOIN_ENTRIES; k++) {
		uint64_t w = shmq__load_relaxed(&sh->ent[k]); /* relaxed: a snapshot */

		if (ENT_COUNT(w) == 0)
			continue;
		out += ENT_COUNT(w);
		if (!r || shmq__region_id_valid(r, ENT_ID(w)) || shmq__id_slot(ENT_ID(w)) != k)
			st->status = -EBADMSG;
		else if (shmq__region_id_alive(r, ENT_ID(w)) == 0)
			dead += ENT_COUNT(w);
	}
	/* relaxed: statistics */
	dead += shmq__load_relaxed(&sh->orphaned);
	out += shmq__load_relaxed(&sh->orphaned); /* relaxed: as above */
	shmq__stat_u64(st, "join_taken", out);
	shmq__stat_u64(st, "join_dead_taken", dead);
	shmq__stat_u64(st, "join_done", shmq__load_relaxed(&sh->done)); /* relaxed: as above */
	shmq__stat_u64(st, "join_waits", shmq__load_relaxed(&sh->waits)); /* relaxed: as above */
	shmq__stat_u64(st, "join_wakes", shmq__load_relaxed(&sh->wakes)); /* relaxed: as above */
}

/*
 * ABI: 0.1 binaries (LIBSHMQ_1) pass the 8-byte struct shmq_queue_opts of
 * 0.1, without flags; reading 12 bytes there would read past their struct.
 * These versions copy what 0.1 had and leave flags 0; binaries built with
 * the 0.2 header bind to the default versions (LIBSHMQ_2, lib/libshmq.map).
 */
struct opts_v1 {
	uint32_t capacity;
	uint32_t max_msg;
};

static const struct shmq_queue_opts *opts_v1(const struct opts_v1 *o, struct shmq_queue_opts *n)
{
	if (!o)
		return NULL;
	*n = (struct shmq_queue_opts){ .capacity = o->capacity, .max_msg = o->max_msg };
	return n;
}

SHMQ_API int shmq__queue_create_v1(shmq_region *r, const char *name, const struct opts_v1 *o,
				   shmq_queue **out);
SHMQ_API size_t shmq__queue_footprint_v1(const struct opts_v1 *o);
SHMQ_API int shmq__queue_init_v1(void *mem, size_t size, const struct opts_v1 *o, unsigned flags);

SHMQ_API int shmq__queue_create_v1(shmq_region *r, const char *name, const struct opts_v1 *o,
				   shmq_queue **out)
{
	struct shmq_queue_opts n;

	return shmq_queue_create(r, name, opts_v1(o, &n), out);
}
__asm__(".symver shmq__queue_create_v1, shmq_queue_create@LIBSHMQ_1");

SHMQ_API size_t shmq__queue_footprint_v1(const struct opts_v1 *o)
{
	struct shmq_queue_opts n;

	return shmq_queue_footprint(opts_v1(o, &n));
}
__asm__(".symver shmq__queue_footprint_v1, shmq_queue_footprint@LIBSHMQ_1");

SHMQ_API int shmq__queue_init_v1(void *mem, size_t size, const struct opts_v1 *o, unsigned flags)
{
	struct shmq_queue_opts n;

	return shmq_queue_init(mem, size, opts_v1(o, &n), flags);
}
__asm__(".symver shmq__queue_init_v1, shmq_queue_init@LIBSHMQ_1");
