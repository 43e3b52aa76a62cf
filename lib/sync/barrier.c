/* SPDX-License-Identifier: MIT */
/*
 * Barriers (seed 12-3): Python's threading.Barrier across processes.
 *
 * The whole state is one futex word (count, BROKEN, RESET, generation; see
 * sync/lock_int.h).  An arrival is a CAS that bumps the count; the last arrival's
 * CAS instead starts the next generation (count 0, flags clear) and wakes
 * every sleeper with one FUTEX_WAKE, or none when nobody sleeps (core/wait_int.h's
 * sleeper count).  Waiters spin, then sleep, until the generation moves or
 * BROKEN appears.  A timeout sets BROKEN (-ETIMEDOUT to that waiter, -EPIPE
 * to everybody else), abort sets it too, and reset starts a new generation
 * with RESET set so the waiters it cut short know they did not pass.
 *
 * Dead parties (named barriers, layout 2; see sync/lock_int.h): the first
 * wait through a handle counts its process in the party table, the handle's
 * close uncounts it.  Waiters sleep in slices; after a whole slice one of
 * them (the first whose slice ends: sync/spin_int.h, shmq__sync_scan_due)
 * asks the process table about every other party, and a dead one breaks the
 * generation (BROKEN, as a timeout does: -EPIPE for everybody) and is
 * cleared from the table.  Reset clears the dead too.
 *
 * Protocol BARRIER_WORD: every change of the word is an RMW, so all of them
 * form one release sequence.  An arrival's acq_rel CAS (shmq_barrier_wait)
 * releases what the party did before arriving; the seq_cst RMW that moves
 * the generation or sets a flag (the last arrival in shmq_barrier_wait,
 * shmq_barrier_abort, shmq_barrier_reset, barrier_time_out) reads the
 * latest arrival and so acquires every one of them; a waiter's acquire load
 * that sees the moved word (barrier_spin, barrier_await, barrier_time_out)
 * acquires all of it in turn.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include <shmq.h>

#include "core/alloc_int.h"
#include "core/atomic_int.h"
#include "core/compiler_int.h"
#include "core/fork_int.h"
#include "sync/lock_int.h"
#include "core/region_int.h"
#include "core/wait_int.h"
#include "sync/spin_int.h"

#define GEN_MASK (~(SHMQ__BARRIER_GEN_ONE - 1u))
#define CUT_VALID 0x8000u /* a slot of cut holds a generation (sync/lock_int.h) */
#define CUT_SLOTS 4u

/* How long a waiter sleeps before it checks the parties' liveness. */
#define BARRIER_SLICE_NS (10 * 1000 * 1000)
#define BARRIER_NO_SLOT  UINT32_MAX

struct shmq_barrier {
	struct shmq__barrier_shm *s;
	uint64_t *party;  /* the party table (nslots entries), NULL when placed */
	shmq_region *r;   /* owner ids and liveness; NULL when placed */
	uint32_t parties; /* checked copy of s->parties */
	pid_t pid;        /* the process that made the handle (core/fork_int.h) */
	uint32_t nslots;  /* checked copy of s->nslots */
	uint32_t self;    /* our owner id */
	/* our party entry once this handle has waited, BARRIER_NO_SLOT before
	 * (CAS on first wait: threads sharing the handle race to set it once) */
	uint32_t slot;
};

static inline uint32_t barrier_gen(uint32_t w)
{
	return w & GEN_MASK;
}

static inline uint32_t barrier_count(uint32_t w)
{
	return w & SHMQ__BARRIER_COUNT_MASK;
}

/* The word that starts the generation after w's (wraps modulo 2^14). */
static inline uint32_t barrier_next_gen(uint32_t w)
{
	return barrier_gen(w) + SHMQ__BARRIER_GEN_ONE;
}

/* Protocol BARRIER_CUT (sync/lock_int.h): the slot of cut for generation
 * field gen, and the value that says a reset cut it short. */
static inline unsigned cut_shift(uint32_t gen)
{
	return ((gen >> SHMQ__BARRIER_GEN_SHIFT) % CUT_SLOTS) * 16u;
}

static inline uint64_t cut_value(uint32_t gen)
{
	return (gen >> SHMQ__BARRIER_GEN_SHIFT) | CUT_VALID;
}

/* CASes on cut before barrier_note_cut gives up: only the few who move one
 * generation on write it, so losing this many means garbage keeps moving it
 * (a waiter cut short may then miss the record: nothing spins on it). */
#define CUT_TRIES 64u

/* Before a CAS that moves the generation on from w: if w says a reset
 * ended the generation before it, record that one as cut short (true
 * whether or not the caller's CAS then wins). */
static void barrier_note_cut(shmq_barrier *b, uint32_t w)
{
	uint32_t g = barrier_gen(w) - SHMQ__BARRIER_GEN_ONE;
	uint64_t v, n;

	if (!(w & SHMQ__BARRIER_RESET))
		return;
	/* acquire: pairs with the seq_cst CAS of cut in barrier_note_cut of
	 * whoever recorded it already (Protocol BARRIER_CUT), so our CAS of
	 * the word passes the record on */
	v = shmq__load_acquire(&b->s->cut);
	for (unsigned i = 0; i < CUT_TRIES; i++) {
		n = (v & ~((uint64_t)0xffffu << cut_shift(g))) | cut_value(g) << cut_shift(g);
		/* seq_cst: before the caller's CAS of the word, which a waiter's
		 * acquire of a later word reads (or a later RMW of it) */
		if (n == v || shmq__cas_seq_cst(&b->s->cut, &v, n))
			return;
	}
}

/* ---- placement and named barriers ---------------------------------------- */

SHMQ_API size_t shmq_barrier_footprint(void)
{
	return sizeof(struct shmq__barrier_shm);
}

/* Format a barrier at mem with nslots party entries after it (zeroed by
 * the caller, the region's allocator). */
static void barrier_format(struct shmq__barrier_shm *s, unsigned parties, uint32_t nslots)
{
	memset(s, 0, sizeof(*s));
	s->parties = parties;
	s->nslots = nslots;
	/* Publishes parties, nslots and the zeroed word: pairs with the
	 * load_acquire of magic in barrier_attach_checked. */
	shmq__store_release(&s->magic, SHMQ__BARRIER_MAGIC);
}

SHMQ_API int shmq_barrier_init(void *mem, unsigned parties)
{
	if (!mem || ((uintptr_t)mem & 7u) || parties == 0 ||
	    parties > SHMQ__BARRIER_MAX_PARTIES)
		return -EINVAL;
	barrier_format(mem, parties, 0);
	return 0;
}

/* Party entries of a named barrier: twice the parties (processes come and
 * go), at least a line's worth, at most SHMQ__BARRIER_SLOTS_MAX. */
static uint32_t barrier_nslots(unsigned parties)
{
	uint32_t n = parties * 2u;

	if (n < 8)
		n = 8;
	return n > SHMQ__BARRIER_SLOTS_MAX ? SHMQ__BARRIER_SLOTS_MAX : n;
}

/* r and size: the region and the object's size for a named barrier; NULL
 * and 0 for a placed one (its party table, if any, is ignored).  b: the
 * handle, made before its object by a create, or NULL to make it here; the
 * caller's to free unless this succeeds. */
static int barrier_attach_checked(shmq_region *r, struct shmq__barrier_shm *s, uint64_t size,
				  shmq_barrier *b, shmq_barrier **out)
{
	uint32_t magic, parties, nslots;

	/* pairs with the store_release of magic in barrier_format */
	magic = shmq__load_acquire(&s->magic);
	if ((magic & ~SHMQ__BARRIER_TAG_MASK) != SHMQ__BARRIER_MAGIC_ANY)
		return -EBADMSG;
	if (magic != SHMQ__BARRIER_MAGIC)
		return -EPROTO; /* ours, at another layout */
	/* relaxed: immutable since barrier_format, whose store_release of
	 * magic the load_acquire above read */
	parties = shmq__load_relaxed(&s->parties);
	nslots = shmq__load_relaxed(&s->nslots);
	if (parties == 0 || parties > SHMQ__BARRIER_MAX_PARTIES)
		return -EBADMSG;
	/* a named barrier's table was sized from its parties: a parties word
	 * that disagrees with it was rewritten (from 1..4, which share the
	 * smallest table, no rewrite shows) */
	if (r && (nslots > SHMQ__BARRIER_SLOTS_MAX || nslots != barrier_nslots(parties) ||
		  size < sizeof(*s) + (uint64_t)nslots * sizeof(uint64_t)))
		return -EBADMSG;
	if (!b && !(b = shmq__malloc(sizeof(*b))))
		return -ENOMEM;
	b->s = s;
	b->r = r;
	b->party = r && nslots ? (uint64_t *)(s + 1) : NULL;
	b->parties = parties;
	b->pid = shmq__self_pid();
	b->nslots = r ? nslots : 0;
	b->self = r ? shmq__region_self(r) : 0;
	b->slot = BARRIER_NO_SLOT;
	*out = b;
	return 0;
}

SHMQ_API int shmq_barrier_attach(void *mem, shmq_barrier **out)
{
	if (!mem || !out || ((uintptr_t)mem & 7u))
		return -EINVAL;
	return barrier_attach_checked(NULL, mem, 0, NULL, out);
}

static int barrier_obj_init(void *mem, uint64_t size, void *arg)
{
	unsigned parties = *(const unsigned *)arg;

	(void)size;
	barrier_format(mem, parties, barrier_nslots(parties));
	return 0;
}

SHMQ_API int shmq_barrier_create(shmq_region *r, const char *name, unsigned parties,
				 shmq_barrier **out)
{
	shmq_barrier *b;
	uint64_t size;
	void *mem;
	int rc;

	if (!r || !name || !out || parties == 0 || parties > SHMQ__BARRIER_MAX_PARTIES)
		return -EINVAL;
	/* the handle first: a create that fails leaves no object behind */
	b = shmq__malloc(sizeof(*b));
	if (!b)
		return -ENOMEM;
	size = sizeof(struct shmq__barrier_shm) + barrier_nslots(parties) * sizeof(uint64_t);
	rc = shmq__obj_create(r, name, SHMQ__OBJ_BARRIER, size, barrier_obj_init, &parties, &mem);
	if (!rc)
		rc = barrier_attach_checked(r, mem, size, b, out);
	if (rc)
		shmq__free(b, sizeof(*b));
	return rc;
}

SHMQ_API int shmq_barrier_open(shmq_region *r, const char *name, shmq_barrier **out)
{
	uint64_t size;
	void *mem;
	int rc;

	if (!r || !name || !out)
		return -EINVAL;
	/* size and alignment against the kind table (core/objkind_int.h) */
	rc = shmq__obj_open(r, name, SHMQ__OBJ_BARRIER, &mem, &size);
	if (rc)
		return rc;
	return barrier_attach_checked(r, mem, size, NULL, out);
}

/* ---- parties --------------------------------------------------------------- */

static inline uint32_t party_id(uint64_t e)
{
	return (uint32_t)(e >> 32);
}

/* One handle fewer in our entry i, which is cleared with the last.  Gives
 * up when garbage keeps moving the entry (it then counts us once more). */
static void barrier_uncount(shmq_barrier *b, uint32_t i)
{
	uint64_t e = shmq__load_seq_cst(&b->party[i]);
	uint32_t lost = 0;

	/* seq_cst, as every change of the table */
	while (party_id(e) == b->self &&
	       !shmq__cas_seq_cst(&b->party[i], &e, (uint32_t)e > 1 ? e - 1 : 0))
		if (shmq__sync_cas_lost(&lost, SHMQ_FOREVER, SHMQ__NO_DEADLINE))
			return;
}

/* This handle waits for the first time: count it in our process's entry
 * (claimed on the process's first handle).  A full table leaves the
 * process untracked: its death then breaks nothing, as in 0.1. */
static void barrier_join(shmq_barrier *b)
{
	uint64_t one = ((uint64_t)b->self << 32) | 1u;
	uint32_t i, none = BARRIER_NO_SLOT, lost = 0;

	for (i = 0; i < b->nslots; i++) {
		uint64_t e = shmq__load_seq_cst(&b->party[i]);

		/* seq_cst, as every change of the table: rare, and read by
		 * other processes' liveness checks */
		while (party_id(e) == b->self && (uint32_t)e != UINT32_MAX) {
			if (shmq__cas_seq_cst(&b->party[i], &e, e + 1))
				goto joined;
			/* garbage keeps moving it: stay untracked */
			if (shmq__sync_cas_lost(&lost, SHMQ_FOREVER, SHMQ__NO_DEADLINE))
				return;
		}
	}
	for (i = 0; i < b->nslots; i++) {
		uint64_t e = 0;

		if (shmq__cas_seq_cst(&b->party[i], &e, one))
			goto joined;
	}
	return;
joined:
	if (!shmq__cas_seq_cst(&b->slot, &none, i)) {
		/* another thread of this handle joined first: give ours back */
		barrier_uncount(b, i);
	}
}

/* Clear entry i, which held e for a dead process (no-op if it changed). */
static void barrier_forget(shmq_barrier *b, uint32_t i, uint64_t e)
{
	shmq__cas_seq_cst(&b->party[i], &e, 0); /* seq_cst, as every change of the table */
}

/* The handle closes: one handle fewer in our entry, which is cleared with
 * the last. */
static void barrier_leave(shmq_barrier *b)
{
	uint32_t i = shmq__load_seq_cst(&b->slot);

	if (i >= b->nslots)
		return;
	barrier_uncount(b, i);
}

SHMQ_API void shmq_barrier_close(shmq_barrier *b)
{
	if (!b)
		return;
	if (b->party && !shmq__foreign(b->pid)) /* an inherited copy's party is the parent's */
		barrier_leave(b);
	shmq__free(b, sizeof(*b));
}

SHMQ_API unsigned shmq_barrier_parties(const shmq_barrier *b)
{
	if (!b)
		return 0;
	return b->parties;
}

SHMQ_API unsigned shmq_barrier_n_waiting(const shmq_barrier *b)
{
	uint32_t w;

	if (!b)
		return 0;
	w = shmq__load_relaxed(&b->s->word); /* relaxed: a snapshot */

	if (w & SHMQ__BARRIER_BROKEN)
		return 0;
	return barrier_count(w) < b->parties ? barrier_count(w) : 0;
}

SHMQ_API bool shmq_barrier_broken(const shmq_barrier *b)
{
	if (!b)
		return false;
	return (shmq__load_relaxed(&b->s->word) & SHMQ__BARRIER_BROKEN) != 0; /* relaxed: a snapshot */
}

/* ---- state changes that release everybody -------------------------------- */

/* After a seq_cst change of the word: wake every sleeper, if any (and, when
 * the wake found nobody though some were counted, take dead ones out). */
static void barrier_wake_all(shmq_barrier *b)
{
	shmq__sync_wake_listed(b->r, &b->s->word, &b->s->sleepers, b->s->sleeper_ids, INT_MAX,
			       &b->s->wakes);
}

SHMQ_API int shmq_barrier_abort(shmq_barrier *b)
{
	if (!b)
		return -EINVAL;
	if (shmq__foreign(b->pid))
		return -EBADF;
	/* seq_cst: the core/wait_int.h protocol orders it before the sleeper count load */
	shmq__fetch_or_seq_cst(&b->s->word, SHMQ__BARRIER_BROKEN);
	barrier_wake_all(b);
	return 0;
}

SHMQ_API int shmq_barrier_reset(shmq_barrier *b)
{
	uint32_t w, lost = 0;

	if (!b)
		return -EINVAL;
	if (shmq__foreign(b->pid))
		return -EBADF;
	/* parties that died are forgotten, so the new generation can pass */
	for (uint32_t i = 0; i < b->nslots; i++) {
		uint64_t e = shmq__load_seq_cst(&b->party[i]);

		if (party_id(e) && party_id(e) != b->self &&
		    shmq__region_id_alive(b->r, party_id(e)) == 0)
			barrier_forget(b, i, e);
	}
	w = shmq__load_relaxed(&b->s->word); /* relaxed: the CAS below re-reads it */
	for (;;) {
		barrier_note_cut(b, w);
		if (shmq__cas_seq_cst(&b->s->word, &w, barrier_next_gen(w) | SHMQ__BARRIER_RESET))
			break;
		/* lost to arrivals and other resets: only so many in a row */
		if (shmq__sync_cas_lost(&lost, SHMQ_FOREVER, SHMQ__NO_DEADLINE))
			return -EBADMSG;
	}
	barrier_wake_all(b);
	return 0;
}

/* ---- wait ------------------------------------------------------------------ */

/* The generation g we arrived in has ended by w (barrier_gen_ended), which
 * the caller loaded with acquire: -EPIPE if a reset cut g short. */
static int barrier_outcome(shmq_barrier *b, uint32_t w, uint32_t g, int idx)
{
	uint64_t cut;

	if (barrier_gen(w) == g + SHMQ__BARRIER_GEN_ONE)
		return (w & SHMQ__BARRIER_RESET) ? -EPIPE : idx;
	/* moved on further: Protocol BARRIER_CUT.  relaxed: the record was
	 * made before the CAS of the word that our acquire of w read, or of
	 * one before it in the word's RMW chain (Protocol BARRIER_WORD) */
	cut = shmq__load_relaxed(&b->s->cut);
	if (((cut >> cut_shift(g)) & 0xffffu) == cut_value(g))
		return -EPIPE;
	return idx;
}

/* Has generation g, of which we last saw count seen, ended by word w?  Its
 * field moved on, or it came round again (it counts modulo 2^14: other
 * threads may pass that many generations while we do not run) and says so
 * by a count below the one we saw: within one generation the count never
 * falls (arrivals add, BROKEN keeps it, only a new generation clears it).
 * A field that came round to a count as high as ours is not told apart:
 * its end, or our deadline, tells. */
static bool barrier_gen_ended(uint32_t w, uint32_t g, uint32_t seen)
{
	return barrier_gen(w) != g || barrier_count(w) < seen;
}

/* Our deadline passed in generation g (count seen, as barrier_gen_ended):
 * break the barrier, unless the generation completed or broke first.
 * Garbage that keeps moving the word gets -ETIMEDOUT after
 * SHMQ__SYNC_CAS_TRIES lost CASes, unbroken. */
static int barrier_time_out(shmq_barrier *b, uint32_t g, uint32_t seen, int idx)
{
	/* pairs with the completer's seq_cst CAS (Protocol BARRIER_WORD): a
	 * pass we lost the race to still counts */
	uint32_t w = shmq__load_acquire(&b->s->word);
	uint32_t lost = 0;

	for (;;) {
		if (barrier_gen_ended(w, g, seen))
			return barrier_outcome(b, w, g, idx);
		if (w & SHMQ__BARRIER_BROKEN)
			return -EPIPE;
		if (shmq__cas_seq_cst(&b->s->word, &w, w | SHMQ__BARRIER_BROKEN))
			break;
		/* lost to arrivals of g (or garbage); our deadline is past */
		if (++lost == SHMQ__SYNC_CAS_TRIES)
			return -ETIMEDOUT;
	}
	barrier_wake_all(b);
	return -ETIMEDOUT;
}

/* Entry i (holding e) names a dead party while we wait in generation g:
 * break g (as a timeout does) and forget the party.  -EPIPE: g is broken;
 * 0: g ended first (the caller looks at the word again). */
static int barrier_break_dead(shmq_barrier *b, uint32_t g, uint32_t i, uint64_t e)
{
	/* pairs with the completer's seq_cst CAS (Protocol BARRIER_WORD): a
	 * pass we lost the race to still counts */
	uint32_t w = shmq__load_acquire(&b->s->word);
	uint32_t lost = 0;

	for (;;) {
		if (barrier_gen(w) != g)
			return 0; /* the party had arrived: g completed; the next one will see it */
		if (w & SHMQ__BARRIER_BROKEN)
			break;
		/* seq_cst: the core/wait_int.h protocol, then the sleeper count */
		if (shmq__cas_seq_cst(&b->s->word, &w, w | SHMQ__BARRIER_BROKEN)) {
			/* relaxed: a statistic, read only by shmq stat (sync/describe.c) */
			shmq__fetch_add_relaxed(&b->s->broke_dead, 1);
			barrier_wake_all(b);
			break;
		}
		/* lost to arrivals of g: only so many in a row */
		if (shmq__sync_cas_lost(&lost, SHMQ_FOREVER, SHMQ__NO_DEADLINE))
			return -EBADMSG;
	}
	barrier_forget(b, i, e);
	return -EPIPE;
}

/* A waiter of generation g slept a whole slice: is any party dead?  Costs
 * a kill(2) and a /proc read per other process.  0: all live (or g ended),
 * -EPIPE: a dead one broke g, -EBADMSG: an entry names no possible owner. */
static int barrier_check_parties(shmq_barrier *b, uint32_t g)
{
	for (uint32_t i = 0; i < b->nslots; i++) {
		uint64_t e = shmq__load_seq_cst(&b->party[i]);
		uint32_t id = party_id(e);
		int alive;

		if (id == 0 || id == b->self)
			continue;
		alive = shmq__region_id_alive(b->r, id);
		if (alive < 0)
			return alive;
		if (!alive)
			return barrier_break_dead(b, g, i, e);
	}
	return 0;
}

/*
 * The spin phase: parties of a tight loop arrive within a microsecond or two
 * of each other, so poll the word for up to BARRIER_SPIN_NS before sleeping,
 * and never yield the CPU meanwhile (on a busy machine a yield hands it to
 * somebody else's process for a whole time slice).  Returns the word once it
 * moved, or cur when the spin ran out.  SHMQ_SPIN=0 disables it.
 */
#define BARRIER_SPIN_NS 20000
#define BARRIER_SPIN_CLOCK_EVERY 32u

static uint32_t barrier_spin(const shmq_barrier *b, uint32_t cur)
{
	int64_t until = 0;

	if (shmq__spin_budget() == 0)
		return cur;
	for (uint32_t i = 1;; i++) {
		/* pairs with the RMW that moved the word (Protocol BARRIER_WORD) */
		uint32_t w = shmq__load_acquire(&b->s->word);

		if (w != cur)
			return w;
		if (i % BARRIER_SPIN_CLOCK_EVERY == 0) {
			int64_t now = shmq_now_ns();

			if (!until)
				until = now + BARRIER_SPIN_NS;
			else if (now >= until)
				return cur;
		}
		shmq__cpu_relax();
	}
}

/* Arrived as index idx with the word now cur: wait for the generation to end. */
static int barrier_await(shmq_barrier *b, uint32_t cur, int idx, int64_t deadline)
{
	uint32_t g = barrier_gen(cur), seen = barrier_count(cur);
	bool spun = false;

	for (;;) {
		int rc;

		if (barrier_gen_ended(cur, g, seen))
			return barrier_outcome(b, cur, g, idx);
		seen = barrier_count(cur);
		if (cur & SHMQ__BARRIER_BROKEN)
			return -EPIPE;
		if (barrier_count(cur) >= b->parties)
			return -EBADMSG;
		if (!spun) {
			uint32_t w = barrier_spin(b, cur);

			spun = true;
			if (w != cur) {
				cur = w;
				continue;
			}
		}
		/* in slices also when placed (no party table): the last
		 * arriver killed between its RMW and its wake leaves the
		 * generation ended and us asleep; each slice looks at the word */
		rc = shmq__sleep_word_listed(&b->s->word, cur, &b->s->sleepers,
					     b->s->sleeper_ids, b->r ? b->self : 0, deadline,
					     BARRIER_SLICE_NS, &b->s->waits);
		if (rc == -ETIMEDOUT)
			return barrier_time_out(b, g, seen, idx);
		if (rc == -EINTR && b->party &&
		    shmq__sync_scan_due(&b->s->scan_at, BARRIER_SLICE_NS)) {
			/* a whole slice without news: is a party dead?  (One
			 * waiter a slice looks, for all of them.) */
			rc = barrier_check_parties(b, g);
			if (rc)
				return rc;
		}
		/* pairs with the RMW that completed, broke or reset the generation
		 * (Protocol BARRIER_WORD): everything the other parties did before
		 * arriving is visible once we return */
		cur = shmq__load_acquire(&b->s->word);
	}
}

/* shmq_barrier_wait kept losing its arrival's CAS (the word last seen: w)
 * until err: a timeout breaks the barrier as a waiter's does (-ETIMEDOUT),
 * unless garbage keeps moving the word under SHMQ__SYNC_CAS_TRIES more
 * CASes (a fetch_or would not do: where it returns the old word, as here
 * under ThreadSanitizer, it is a CAS loop without a bound); -EAGAIN and
 * -EBADMSG change nothing. */
static SHMQ__COLD int barrier_lost_out(shmq_barrier *b, uint32_t w, int err)
{
	if (err != -ETIMEDOUT)
		return err;
	for (uint32_t i = 0; i < SHMQ__SYNC_CAS_TRIES && !(w & SHMQ__BARRIER_BROKEN); i++) {
		/* seq_cst: the core/wait_int.h protocol, then the sleeper count */
		if (shmq__cas_seq_cst(&b->s->word, &w, w | SHMQ__BARRIER_BROKEN)) {
			barrier_wake_all(b);
			break;
		}
	}
	return err;
}

SHMQ_API int shmq_barrier_wait(shmq_barrier *b, int64_t timeout_ns)
{
	int64_t deadline;
	uint32_t w, c, lost = 0;
	int rc;

	if (!b)
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__timeout_bad(timeout_ns)))
		return -EINVAL;
	if (shmq__foreign(b->pid))
		return -EBADF;
	/* relaxed: our own handle's field, set once by barrier_join (seq_cst) */
	if (b->party && shmq__load_relaxed(&b->slot) == BARRIER_NO_SLOT)
		barrier_join(b); /* from now on we are one of its parties */
	deadline = shmq__deadline(timeout_ns);
	/* relaxed: the CASes below re-read it */
	w = shmq__load_relaxed(&b->s->word);
	for (;;) {
		if (w & SHMQ__BARRIER_BROKEN)
			return -EPIPE;
		c = barrier_count(w);
		if (c >= b->parties)
			return -EBADMSG;
		if (c + 1 == b->parties) {
			/* The last arrival: start the next generation.  seq_cst for
			 * the core/wait_int.h protocol (then the sleeper count load); it
			 * also acquires every arrival's release and releases to
			 * every waiter's acquire of the new word. */
			barrier_note_cut(b, w);
			if (shmq__cas_seq_cst(&b->s->word, &w, barrier_next_gen(w))) {
				barrier_wake_all(b);
				return (int)c;
			}
		} else {
			if (timeout_ns == SHMQ_NOWAIT)
				return -EAGAIN; /* would block: do not arrive */
			/* pairs with the last arrival's CAS (Protocol BARRIER_WORD):
			 * releases what we did before arriving to it (its CAS
			 * reads this value or a later one in the word's RMW chain) */
			if (shmq__cas_acq_rel(&b->s->word, &w, w + 1))
				break;
		}
		/* lost to other arrivals (or garbage): only so many in a row */
		rc = shmq__sync_cas_lost(&lost, timeout_ns, deadline);
		if (rc)
			return barrier_lost_out(b, w, rc);
	}
	return barrier_await(b, w + 1, (int)c, deadline);
}
