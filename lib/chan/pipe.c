/* SPDX-License-Identifier: MIT */
/*
 * Layer 4: pipes, a duplex channel of two SPSC rings in one named object.
 *
 * Object layout (offsets from the object's start, all inside it):
 *
 *   line 0     immutable: magic, version, capacity, creator id
 *   line 1     end 0's holders     line 2   end 1's holders
 *   ring 0     what end 0 sends (shmq__spsc control block + data)
 *   ring 1     what end 1 sends
 *
 * Holders.  Each end records who holds it: up to SHMQ_PIPE_HOLDERS slots of
 * (owner id << 32 | handles that owner has open), an `opened` word that
 * every shmq_pipe_open of the end bumps, and a sticky `gone` flag.  An end is gone
 * when it was opened and no slot is left (every handle closed), or when
 * every slot's owner has died (a waiter reaps dead owners after a sleep
 * slice), or, never opened, when its creator has died.  The creator's own
 * handles from shmq_pipe_create are ordinary slots; the first send or
 * receive through one marks its end opened too.  So an end the creator only
 * hands on (nobody has sent or received on it, nobody opened it) counts as
 * held by the creator even after the creator closed its handle, while an end
 * the creator used is gone once its handles are closed, as any other.
 *
 * Deciding gone.  `opened` is 0 until the first open, then counts the opens
 * (never 0 again, never OPENED_GONE), and is OPENED_GONE once a check has
 * judged the end gone.  An opener takes its slot, then bumps `opened`; a
 * check reads `opened`, scans the slots and, finding nobody, decides by one
 * CAS of `opened` from the value it read to OPENED_GONE, then sets `gone`
 * for the fast paths.  An opener whose slot the scan missed bumped `opened`
 * either before that CAS (which then fails: the end is held) or after it
 * (the bump finds OPENED_GONE and the open backs out with -EPIPE): never an
 * open that succeeds on an end judged gone.  (Libraries before the count
 * store 1 and read nonzero as opened; they keep their old race, no worse.)
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <shmq.h>

#include "core/alloc_int.h"
#include "core/atomic_int.h"
#include "core/compiler_int.h"
#include "core/fork_int.h"
#include "core/introspect_int.h"
#include "core/region_int.h"
#include "ring/spsc_int.h"
#include "core/wait_int.h"
#include "core/watch_int.h"

#define PIPE_MAGIC   0x45504950u /* "PIPE" */
#define PIPE_VERSION 5u /* 5: spsc rings of layout 5 (descriptors); 4: of layout 4
			 * (stamps); 3: producer claims (tx_claim); 2: spsc rings
			 * of layout 3 */
/* Owner id of holders of a placed pipe (no process table): always alive. */
#define ANON_ID      UINT32_MAX
/* `opened` of an end a check judged gone ("Deciding gone"). */
#define OPENED_GONE  UINT32_MAX
/* An opener's bump of `opened` gives up after this many lost CASes in a
 * row: other opens never take so many, garbage that keeps moving it may. */
#define OPENED_TRIES 4096u
/* A sleeper checks the peer's liveness at least this often. */
#define SLICE_NS     ((int64_t)10 * 1000 * 1000)

struct pipe_end {
	uint64_t slot[SHMQ_PIPE_HOLDERS]; /* owner id << 32 | handle count; 0: free */
	uint32_t opened;                  /* opens counted; OPENED_GONE: judged gone */
	uint32_t gone;                    /* 1 once every holder closed or died; sticky */
};
_Static_assert(sizeof(struct pipe_end) == SHMQ__CACHELINE, "one line per end");

/*
 * Producer claims.  A send that answers a receive (a request / response)
 * writes at its handle's private tail and does not load the ring's shared
 * one: the consumer read that line last, and loading it back put a
 * cross-core transfer on every such send (`shmq-bench -q -n 3 pipe -- rt`,
 * awake round trip at a cache-line round trip of 440-452 ns: 850-870 ns
 * loading it, 747-761 ns without).  The private tail is the truth only while
 * no other handle of this end has sent since, so each ring has a claim
 * counter on line 0.  A handle that starts a send-side call on the slow path
 * (tx_begin) reloads the shared tail and, when the counter does not hold the
 * value it left there, takes a new one with a fetch_add; the fast path goes
 * ahead only while the counter still holds its value.  Handles of one end
 * take turns under the caller's own synchronisation (one producer at a
 * time), which orders one handle's claim and publications before the next
 * one's loads.  The counter is a hint: a garbage value costs one slow-path
 * call.
 *
 * Pacing.  A send that follows a send (streaming) still loads the shared
 * tail, and checks it against the private one.  With layout 4 the consumer
 * read that line, and the load held the producer back until the consumer's
 * last look at it had been answered, which doubled the streaming rate
 * (64-byte messages, one per call, 6.9-9.5 M msg/s without it against
 * 12.0-13.7 with it, a two-process driver).  With layout 5 the consumer
 * polls descriptors and reads the tail only to wake a producer, so the line
 * stays the producer's and the load costs nothing; it is kept as the check
 * that no other handle of this end has sent.
 *
 * Receiving.  A receive polls the descriptor of the record it reads next
 * (ring/spsc_int.h), never the tail: a 64-byte message's record is one line
 * of data, which the copy loads once the descriptor has come.
 */
struct pipe_shared {
	/* line 0: written by init, read-only afterwards but for tx_claim,
	 * written only when another handle takes over a ring's sending */
	uint32_t magic;
	uint32_t version;
	uint64_t capacity;
	uint32_t creator_id;
	uint32_t pad0;
	uint64_t tx_claim[2];            /* per ring: see "Producer claims" */
	uint8_t pad1[24];
	/* lines 1, 2 */
	struct pipe_end end[2];
	/* the two rings follow */
};
SHMQ__LINE_ALIGNED_FIELD(struct pipe_shared, end);
_Static_assert(sizeof(struct pipe_shared) % SHMQ__CACHELINE == 0, "rings start a line");
/* the kind table's floor (core/objkind_int.h; core cannot see the struct) */
_Static_assert(SHMQ__OBJ_MIN_PIPE == sizeof(struct pipe_shared), "pipe floor");
_Static_assert(SHMQ__OBJ_ALIGN_PIPE == SHMQ__CACHELINE, "pipe floor: shared_check's alignment");

struct shmq_pipe {
	struct shmq__spsc_prod tx; /* ring `end` */
	struct shmq__spsc_cons rx; /* ring 1 - end */
	struct pipe_shared *sh;
	struct pipe_end *mine;
	struct pipe_end *peer;
	shmq_region *r;            /* NULL for a placed pipe */
	uint32_t self_id;
	uint32_t creator_id;       /* read once at open */
	int end;
	bool unused;               /* from shmq_pipe_create, not yet sent or received on */
	bool more;                 /* committed with SHMQ_PIPE_MORE, not yet published */
	bool reserved;             /* a reservation is open */
	bool peeked;               /* a peek is open */
	size_t resv_len;
	uint64_t claim;            /* the tx_claim value this handle left (0: none) */
	bool last_rx;              /* the last call that moved a message received one */
	int64_t spin;              /* see shmq__spsc_wait.spin */
	int64_t next_check_ns;     /* next deep liveness check of a non-waiting caller */
	uint32_t misses;           /* non-waiting calls that found nothing to do */
	pid_t pid;                 /* the process that made the handle (core/fork_int.h) */
};

/* ---- geometry ---- */

static uint64_t capacity_of(const struct shmq_pipe_opts *o)
{
	uint64_t c = o && o->capacity ? o->capacity : SHMQ_PIPE_CAPACITY;

	if (c > SHMQ__SPSC_CAP_MAX)
		return 0;
	if (c < SHMQ__SPSC_CAP_MIN)
		c = SHMQ__SPSC_CAP_MIN;
	if (!SHMQ__IS_POW2(c))
		c = (uint64_t)1 << (64 - __builtin_clzll(c));
	return c;
}

static size_t ring_off(uint64_t cap, int d)
{
	return sizeof(struct pipe_shared) + (size_t)d * shmq__spsc_footprint(cap);
}

static size_t footprint_of(uint64_t cap)
{
	return cap ? ring_off(cap, 2) : 0;
}

size_t shmq_pipe_footprint(const struct shmq_pipe_opts *o)
{
	return footprint_of(capacity_of(o));
}

static uint64_t slot_pack(uint32_t id, uint32_t count);

/* Lay a pipe out in mem.  held: the creator's two handles (shmq_pipe_create)
 * are counted in a slot of each end here, before the object is published:
 * counted afterwards, an end another process opened and closed in between
 * was judged gone, and the create's handle on it failed with -EPIPE. */
static int pipe_format(void *mem, size_t size, uint64_t cap, uint32_t creator, bool held)
{
	struct pipe_shared *sh = mem;
	int rc;

	if (!cap || size < footprint_of(cap) || !mem || (uintptr_t)mem % SHMQ__CACHELINE)
		return -EINVAL;
	memset(sh, 0, sizeof(*sh));
	sh->magic = PIPE_MAGIC;
	sh->version = PIPE_VERSION;
	sh->capacity = cap;
	sh->creator_id = creator;
	for (int d = 0; d < 2; d++) {
		/* plain: published with the object (the directory's release) */
		sh->end[d].slot[0] = held ? slot_pack(creator, 1) : 0;
		rc = shmq__spsc_init((uint8_t *)mem + ring_off(cap, d),
				     shmq__spsc_footprint(cap), cap);
		if (rc)
			return rc;
	}
	return 0;
}

int shmq_pipe_init(void *mem, size_t size, const struct shmq_pipe_opts *o)
{
	return pipe_format(mem, size, capacity_of(o), ANON_ID, false);
}

/* ---- holders ---- */

static uint64_t slot_pack(uint32_t id, uint32_t count)
{
	return count ? (uint64_t)id << 32 | count : 0;
}

/* Count one more handle of owner id on end e: 0 or -ENOSPC. */
static int holder_add(struct pipe_end *e, uint32_t id)
{
	for (;;) {
		int fresh = -1, i;
		uint64_t v = 0;

		for (i = 0; i < SHMQ_PIPE_HOLDERS; i++) {
			v = shmq__load_seq_cst(&e->slot[i]);
			if (v && (uint32_t)(v >> 32) == id)
				break;
			if (!v && fresh < 0)
				fresh = i;
		}
		if (i < SHMQ_PIPE_HOLDERS) {
			if ((uint32_t)v == UINT32_MAX)
				return -ENOSPC;
			if (shmq__cas_seq_cst(&e->slot[i], &v, v + 1))
				return 0;
			continue;
		}
		if (fresh < 0)
			return -ENOSPC;
		v = 0;
		if (shmq__cas_seq_cst(&e->slot[fresh], &v, slot_pack(id, 1)))
			return 0;
	}
}

/* Count one handle of owner id less: 0, or -ENOENT (no such holder). */
static int holder_remove(struct pipe_end *e, uint32_t id)
{
	for (int i = 0; i < SHMQ_PIPE_HOLDERS; i++) {
		uint64_t v = shmq__load_seq_cst(&e->slot[i]);

		while (v && (uint32_t)(v >> 32) == id) {
			if (shmq__cas_seq_cst(&e->slot[i], &v, slot_pack(id, (uint32_t)v - 1)))
				return 0;
		}
	}
	return -ENOENT;
}

/* 1 alive, 0 dead, or -EBADMSG for an id that cannot be valid. */
static int owner_alive(const shmq_pipe *p, uint32_t id)
{
	if (!p->r)
		return 1;
	if (id == ANON_ID)
		return -EBADMSG;
	return shmq__region_id_alive(p->r, id);
}

static void wake_everyone(shmq_pipe *p)
{
	shmq__spsc_wake_sleepers(p->tx.ring);
	shmq__spsc_wake_sleepers(p->rx.ring);
}

/* Count an open of end e, whose slot the caller holds ("Deciding gone"):
 * true, or false when a check judged the end gone first. */
static bool opened_bump(struct pipe_end *e)
{
	/* seq_cst, the load and the CAS: after our slot's CAS, before a
	 * check's load of `opened` and its scan, or after its CAS */
	uint32_t o = shmq__load_seq_cst(&e->opened);

	for (uint32_t i = 0; i < OPENED_TRIES; i++) {
		uint32_t n = o + 1 == OPENED_GONE ? 1u : o + 1;

		if (o == OPENED_GONE)
			return false;
		if (shmq__cas_seq_cst(&e->opened, &o, n))
			return true;
	}
	return true; /* garbage keeps moving it: open as before the count */
}

/* Is any slot of e held?  deep: also by a live process (dead owners are
 * reaped).  1 held, 0 not, or -EBADMSG. */
static int slots_held(shmq_pipe *p, struct pipe_end *e, bool deep)
{
	int held = 0;

	for (int i = 0; i < SHMQ_PIPE_HOLDERS; i++) {
		uint64_t v = shmq__load_seq_cst(&e->slot[i]);
		int alive;

		if (!v)
			continue;
		if (!deep) {
			/* no system call, but an impossible holder is refused at once */
			if (p->r && shmq__region_id_valid(p->r, (uint32_t)(v >> 32)))
				return -EBADMSG;
			held = 1;
			continue;
		}
		alive = owner_alive(p, (uint32_t)(v >> 32));
		if (alive < 0)
			return alive;
		if (alive)
			held = 1;
		else /* reap it; a failed CAS means it changed: leave it */
			shmq__cas_seq_cst(&e->slot[i], &v, 0);
	}
	return held;
}

/*
 * Is end e gone?  1 gone, 0 held, or -EBADMSG.  The cheap check (deep false)
 * makes no system call; the deep one also asks the process table whether the
 * holders (or, for a never-opened end, the creator) are still alive.  The
 * caller that finds the end gone marks it (sticky) and wakes every sleeper.
 */
static int end_check(shmq_pipe *p, struct pipe_end *e, bool deep)
{
	uint32_t opened;
	int held;

	/* seq_cst: pairs with the seq_cst store of gone below, made after the
	 * last holder's final publication; and a sleeper's re-check here, after
	 * it counted itself in, is the Dekker partner of wake_everyone's loads
	 * of the sleeper counts */
	if (shmq__load_seq_cst(&e->gone))
		return 1;
	/* seq_cst: `opened` before the holders.  Whoever bumps it (handle_new,
	 * first_use) holds a slot from before its bump until it closes, so
	 * an end seen opened here and then held by nobody was given up by
	 * every handle.  Read after the holders, it could come from an opener
	 * whose slot the scan had passed before it was taken: an end opened
	 * that very moment judged gone, for good. */
	opened = shmq__load_seq_cst(&e->opened);
	if (opened != OPENED_GONE) { /* else judged gone by a check that may have died since */
		held = slots_held(p, e, deep);
		if (held)
			return held < 0 ? held : 0;
		if (!opened) {
			if (!deep)
				return 0;
			held = owner_alive(p, p->creator_id);
			if (held)
				return held < 0 ? held : 0;
		}
		/* seq_cst: the decision ("Deciding gone"): an opener whose slot
		 * the scan missed bumped `opened` since we read it (the CAS
		 * fails: it holds the end) or will find OPENED_GONE */
		if (!shmq__cas_seq_cst(&e->opened, &opened, OPENED_GONE) &&
		    opened != OPENED_GONE)
			return 0;
	}
	shmq__store_seq_cst(&e->gone, 1u);
	wake_everyone(p);
	return 1;
}

/* Wait-loop check: -EPIPE once the peer is gone. */
static int peer_check(void *arg, bool deep)
{
	shmq_pipe *p = arg;
	int rc = end_check(p, p->peer, deep);

	return rc == 1 ? -EPIPE : rc;
}

/* For callers that do not wait: a deep check at most every SLICE_NS. */
static bool deep_check_due(shmq_pipe *p)
{
	int64_t now = shmq_now_ns();

	if (now < p->next_check_ns)
		return false;
	p->next_check_ns = now + SLICE_NS;
	return true;
}

/* nowait_check's every-call part, inline for the receive fast path: true
 * (the miss counted) when the answer is 0 without looking further; false
 * (nothing counted) when the peer is gone or this is a 64th miss. */
static inline bool nowait_quiet(shmq_pipe *p)
{
	/* pairs with end_check's seq_cst store of gone */
	if (shmq__load_acquire(&p->peer->gone) || (p->misses + 1) % 64 == 0)
		return false;
	p->misses++;
	return true;
}

/* A non-waiting call found nothing to do: -EPIPE if the peer is gone, else 0.
 * Polling loops call this back to back, so only the sticky flag is read
 * every time; the holders every 64th miss, the clock and the process table
 * (paced by deep_check_due) only then. */
static int nowait_check(shmq_pipe *p)
{
	if (nowait_quiet(p))
		return 0;
	/* pairs with end_check's seq_cst store of gone */
	if (shmq__load_acquire(&p->peer->gone))
		return -EPIPE;
	p->misses++;
	return peer_check(p, deep_check_due(p));
}

/* ---- handles ---- */

/* Check the shared header: its capacity, or a negative errno. */
static int64_t shared_check(void *mem, size_t size)
{
	struct pipe_shared *sh = mem;
	uint64_t cap;

	if (!mem || (uintptr_t)mem % SHMQ__CACHELINE)
		return -EINVAL;
	if (size < sizeof(*sh))
		return -EBADMSG;
	/* relaxed: line 0 is immutable once the object is published */
	if (shmq__load_relaxed(&sh->magic) != PIPE_MAGIC)
		return -EBADMSG;
	if (shmq__load_relaxed(&sh->version) != PIPE_VERSION)
		return -EPROTO;
	cap = shmq__load_relaxed(&sh->capacity);
	if (!SHMQ__IS_POW2(cap) || cap < SHMQ__SPSC_CAP_MIN || cap > SHMQ__SPSC_CAP_MAX ||
	    size < footprint_of(cap))
		return -EBADMSG;
	return (int64_t)cap;
}

/* Build a handle for end `end` of the pipe at mem and count it as a holder;
 * `open` also marks the end opened (shmq_pipe_open / attach).  h: a zeroed
 * handle, made before its object by a create, whose holder slot the create
 * counted already (pipe_format), or NULL to make it here; the caller's to
 * free unless this succeeds. */
static int handle_new(shmq_region *r, void *mem, size_t size, int end, bool open,
		      shmq_pipe *h, shmq_pipe **out)
{
	int64_t cap = shared_check(mem, size);
	shmq_pipe *p;
	int rc;

	if (cap < 0)
		return (int)cap;
	p = h ? h : shmq__calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->sh = mem;
	p->r = r;
	p->pid = shmq__self_pid();
	p->end = end;
	p->self_id = r ? shmq__region_self(r) : ANON_ID;
	p->creator_id = shmq__load_relaxed(&p->sh->creator_id); /* relaxed: immutable line 0 */
	p->mine = &p->sh->end[end];
	p->peer = &p->sh->end[1 - end];
	rc = shmq__spsc_prod_attach(&p->tx, (uint8_t *)mem + ring_off((uint64_t)cap, end),
				    shmq__spsc_footprint((uint64_t)cap));
	if (!rc)
		rc = shmq__spsc_cons_attach(&p->rx, (uint8_t *)mem + ring_off((uint64_t)cap, 1 - end),
					    shmq__spsc_footprint((uint64_t)cap));
	if (!rc && shmq__load_acquire(&p->mine->gone)) /* pairs with end_check's store */
		rc = -EPIPE;
	if (!rc && !h)
		rc = holder_add(p->mine, p->self_id);
	if (rc == -ENOSPC && r) {
		/* every slot taken: some may be held by processes that died
		 * (only a waiter's deep check reaps them otherwise).  Reap them
		 * and try once more; if every holder died, the end is gone. */
		int gone = end_check(p, p->mine, true);

		rc = gone < 0 ? gone : gone ? -EPIPE : holder_add(p->mine, p->self_id);
	}
	p->unused = !open;
	if (!rc && open) {
		/* a check that judged the end gone after our look at `gone`
		 * above, its scan before our slot: we back out ("Deciding
		 * gone").  seq_cst: and `gone` once more, for a check by a
		 * library before the count */
		if (!opened_bump(p->mine) || shmq__load_seq_cst(&p->mine->gone)) {
			holder_remove(p->mine, p->self_id);
			rc = -EPIPE;
		}
	}
	if (rc) {
		if (!h)
			shmq__free(p, sizeof(*p));
		return rc;
	}
	*out = p;
	return 0;
}

struct create_arg {
	uint64_t cap;
	uint32_t creator;
};

static int create_init(void *mem, uint64_t size, void *arg)
{
	const struct create_arg *a = arg;

	return pipe_format(mem, (size_t)size, a->cap, a->creator, true);
}

int shmq_pipe_create(shmq_region *r, const char *name, const struct shmq_pipe_opts *o,
		     shmq_pipe **end0, shmq_pipe **end1)
{
	struct create_arg a;
	shmq_pipe *h0, *h1;
	void *mem;
	int rc;

	if (!r || !end0 || !end1)
		return -EINVAL;
	a.cap = capacity_of(o);
	a.creator = shmq__region_self(r);
	if (!a.cap)
		return -EINVAL;
	/* the handles first: a create that fails leaves no object behind */
	h0 = shmq__calloc(1, sizeof(*h0));
	h1 = shmq__calloc(1, sizeof(*h1));
	rc = h0 && h1 ? 0 : -ENOMEM;
	if (!rc)
		rc = shmq__obj_create(r, name, SHMQ__OBJ_PIPE, footprint_of(a.cap), create_init, &a,
				      &mem);
	if (rc) {
		shmq__free(h0, sizeof(*h0));
		shmq__free(h1, sizeof(*h1));
		return rc;
	}
	/* create_init counted both handles as holders (pipe_format): a
	 * handle that cannot be made (the object overwritten meanwhile)
	 * gives its count back */
	rc = handle_new(r, mem, footprint_of(a.cap), 0, false, h0, end0);
	if (rc) {
		holder_remove(&((struct pipe_shared *)mem)->end[0], a.creator);
		holder_remove(&((struct pipe_shared *)mem)->end[1], a.creator);
		shmq__free(h0, sizeof(*h0));
		shmq__free(h1, sizeof(*h1));
		return rc;
	}
	rc = handle_new(r, mem, footprint_of(a.cap), 1, false, h1, end1);
	if (rc) {
		holder_remove(&((struct pipe_shared *)mem)->end[1], a.creator);
		shmq__free(h1, sizeof(*h1));
		shmq_pipe_close(*end0);
		*end0 = NULL;
	}
	return rc;
}

int shmq_pipe_open(shmq_region *r, const char *name, int end, shmq_pipe **out)
{
	uint64_t size;
	void *mem;
	int rc;

	if (!r || !out || (end != 0 && end != 1))
		return -EINVAL;
	rc = shmq__obj_open(r, name, SHMQ__OBJ_PIPE, &mem, &size);
	if (rc)
		return rc;
	return handle_new(r, mem, (size_t)size, end, true, NULL, out);
}

int shmq_pipe_attach(void *mem, size_t size, int end, shmq_pipe **out)
{
	if (!out || (end != 0 && end != 1))
		return -EINVAL;
	return handle_new(NULL, mem, size, end, true, NULL, out);
}

void shmq_pipe_close(shmq_pipe *p)
{
	if (!p)
		return;
	if (shmq__foreign(p->pid)) { /* the parent's copy: its holds are the parent's */
		shmq__free(p, sizeof(*p));
		return;
	}
	if (p->more)
		shmq__spsc_prod_publish(&p->tx);
	holder_remove(p->mine, p->self_id);
	end_check(p, p->mine, false); /* marks it gone if that was the last handle */
	shmq__free(p, sizeof(*p));
}

size_t shmq_pipe_max_msg(const shmq_pipe *p)
{
	return p ? (size_t)p->tx.max_msg : 0;
}

size_t shmq_pipe_capacity(const shmq_pipe *p)
{
	return p ? (size_t)p->tx.cap : 0;
}

int shmq_pipe_set_spin(shmq_pipe *p, long spins)
{
	if (!p)
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__foreign(p->pid)))
		return -EBADF;
	p->spin = spins < 0 ? 0 : spins == 0 ? SHMQ__SPSC_NOSPIN : (int64_t)spins;
	return 0;
}

/* The first send or receive through a handle from shmq_pipe_create: its end
 * is in use, no longer a placeholder for a process that will open it. */
static SHMQ__COLD void first_use(shmq_pipe *p)
{
	p->unused = false;
	/* as handle_new's (our slot is held: nobody judges the end gone
	 * meanwhile) */
	(void)opened_bump(p->mine);
}

/* ---- sending ---- */

/* Pick up the ring's tail (another handle of this end may have moved it) and
 * hold a claim on the ring ("Producer claims"): 0, or -EBADMSG for a corrupt
 * tail, which leaves the handle without a claim.  A handle whose claim still
 * holds, and whose tail is the ring's, skips the sync and its look at the
 * descriptors past the tail (which the consumer polls). */
static int tx_claim(shmq_pipe *p)
{
	uint64_t *word = &p->sh->tx_claim[p->end];
	int rc;

	/* relaxed, all three: handles of an end take turns under the caller's
	 * own synchronisation ("Producer claims"); the counter publishes
	 * nothing, and the tail is this side's own */
	if (p->claim && shmq__load_relaxed(word) == p->claim &&
	    shmq__load_relaxed(&p->tx.ring->tail) == p->tx.tail)
		return 0; /* no other handle sent since: our view is the ring's */
	rc = shmq__spsc_prod_sync(&p->tx);
	if (SHMQ__UNLIKELY(rc)) {
		p->claim = 0;
		return rc;
	}
	/* relaxed, both: as above */
	if (!p->claim || shmq__load_relaxed(word) != p->claim) {
		do
			p->claim = shmq__fetch_add_relaxed(word, 1) + 1;
		while (!p->claim);
	}
	return 0;
}

/* Start of every send-side call: -EPIPE if the peer is gone; otherwise pick
 * up the ring's tail and claim the ring (tx_claim). */
static inline int tx_begin(shmq_pipe *p)
{
	if (SHMQ__UNLIKELY(p->unused))
		first_use(p);
	p->reserved = false;
	p->last_rx = false;
	/* pairs with end_check's seq_cst store of gone */
	if (SHMQ__UNLIKELY(shmq__load_acquire(&p->peer->gone)))
		return -EPIPE;
	if (p->more)
		return 0;
	return tx_claim(p);
}

/* Wait until len bytes fit: 0, -EAGAIN (timeout 0), -ETIMEDOUT, -EPIPE, ... */
static SHMQ__COLD int tx_wait(shmq_pipe *p, size_t len, int64_t timeout_ns)
{
	struct shmq__spsc_wait w = { 0, SLICE_NS, peer_check, p, p->spin };
	int rc;

	if (p->more) { /* the consumer must see them to make room */
		shmq__spsc_prod_publish(&p->tx);
		p->more = false;
	}
	if (timeout_ns == SHMQ_NOWAIT) {
		rc = nowait_check(p);
		return rc ? rc : -EAGAIN;
	}
	/* we may sleep: a peer asleep sending to us gets whatever room we
	 * freed below the half-empty mark (it may be waiting for us) */
	shmq__spsc_wake_producer_now(&p->rx);
	w.deadline = shmq__deadline(timeout_ns);
	return shmq__spsc_wait_writable(&p->tx, len, &w);
}

static int tx_reserve(shmq_pipe *p, size_t len, void **buf, int64_t timeout_ns)
{
	int rc = tx_begin(p);

	if (SHMQ__UNLIKELY(rc))
		return rc;
	for (;;) {
		rc = shmq__spsc_reserve(&p->tx, len, buf);
		if (SHMQ__LIKELY(rc != -EAGAIN))
			return rc;
		rc = tx_wait(p, len, timeout_ns);
		if (rc)
			return rc;
	}
}

static SHMQ__COLD int send_slow(shmq_pipe *p, const void *msg, size_t len, int64_t timeout_ns)
{
	void *buf;
	int rc;

	if (SHMQ__UNLIKELY(shmq__foreign(p->pid)))
		return -EBADF;
	rc = tx_reserve(p, len, &buf, timeout_ns);
	if (SHMQ__UNLIKELY(rc))
		return rc;
	shmq__copy(buf, msg, len);
	shmq__spsc_commit(&p->tx, len); /* after any held back (SHMQ_PIPE_MORE) */
	shmq__spsc_prod_publish(&p->tx);
	p->more = false;
	return 0;
}

/* The fast paths' tails, out of line so that the fast paths themselves
 * make no call but tail calls and keep no frame. */
static SHMQ__COLD int tx_wake(shmq_pipe *p)
{
	shmq__spsc_wake_consumer(p->tx.ring);
	return 0;
}

static SHMQ__COLD ssize_t rx_wake(shmq_pipe *p, size_t n)
{
	shmq__spsc_wake_producer(&p->rx);
	return (ssize_t)n;
}

/* A record over 64 bytes that passed the fast path's checks at tail. */
static __attribute__((noinline)) int send_big(shmq_pipe *p, const void *msg, size_t len, uint64_t tail)
{
	struct shmq__spsc_prod *tx = &p->tx;

	memcpy(tx->data + (tail & tx->mask), msg, len);
	tx->tail = tail + SHMQ__SPSC_REC(len);
	tx->n++;
	if (shmq__spsc_prod_publish_one(tx, (uint32_t)len))
		shmq__spsc_wake_consumer(tx->ring);
	return 0;
}

/*
 * The fast path: a handle in use with nothing reserved or held back (so no
 * committed record waits for its descriptor), a view that publishes without
 * seq_cst, a peer that is not gone, and room for the record before the end
 * of the data area by the cached head, and a claim on the ring ("Producer
 * claims").  A reply loads no line the consumer writes or reads ("Pacing");
 * every send stores only the record, its descriptor, and the private and
 * published indices.  Everything else (waiting, a skip to offset 0, the
 * first send, errors) is send_slow's, which starts from scratch: the fast
 * path changed nothing when it gives up.
 */
SHMQ__LINE_START int shmq_pipe_send(shmq_pipe *p, const void *msg, size_t len, int64_t timeout_ns)
{
	struct shmq__spsc_prod *tx;
	uint64_t tail, off, rec;

	if (SHMQ__UNLIKELY(!p || (!msg && len)))
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__timeout_bad(timeout_ns)))
		return -EINVAL;
	tx = &p->tx;
	rec = SHMQ__SPSC_REC(len);
	if (SHMQ__UNLIKELY(p->unused | p->more | p->reserved | tx->strong) ||
	    SHMQ__UNLIKELY(len > tx->max_msg))
		return send_slow(p, msg, len, timeout_ns);
	/* our private tail, while no other handle of this end has sent since;
	 * a send that follows a send also loads the published one (relaxed,
	 * both loads: see "Producer claims" and "Pacing") */
	tail = tx->tail;
	off = tail & tx->mask;
	if (SHMQ__UNLIKELY((shmq__load_relaxed(&p->sh->tx_claim[p->end]) != p->claim) | !p->claim |
			   (rec > tx->cap - off) | (tail - tx->head_cache > tx->cap - rec)) ||
	    SHMQ__UNLIKELY(!p->last_rx && shmq__load_relaxed(&tx->ring->tail) != tail) ||
	    /* pairs with end_check's seq_cst store of gone */
	    SHMQ__UNLIKELY(shmq__load_acquire(&p->peer->gone)) ||
	    SHMQ__UNLIKELY(shmq__foreign(p->pid)))
		return send_slow(p, msg, len, timeout_ns);
	p->last_rx = false;
	if (SHMQ__UNLIKELY(len > 64))
		return send_big(p, msg, len, tail);
	shmq__copy(tx->data + off, msg, len);
	tx->tail = tail + rec;
	tx->n++;
	if (SHMQ__UNLIKELY(shmq__spsc_prod_publish_one(tx, (uint32_t)len)))
		return tx_wake(p);
	return 0;
}

int shmq_pipe_reserve(shmq_pipe *p, size_t len, void **buf, int64_t timeout_ns)
{
	int rc;

	if (!p || !buf)
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__timeout_bad(timeout_ns)))
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__foreign(p->pid)))
		return -EBADF;
	rc = tx_reserve(p, len, buf, timeout_ns);
	if (rc)
		return rc;
	p->reserved = true;
	p->resv_len = len;
	return 0;
}

int (shmq_pipe_commit)(shmq_pipe *p, size_t len, unsigned flags)
{
	if (!p || !p->reserved || len > p->resv_len || (flags & ~SHMQ_PIPE_MORE))
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__foreign(p->pid)))
		return -EBADF;
	p->reserved = false;
	shmq__spsc_commit(&p->tx, len);
	if (flags & SHMQ_PIPE_MORE) {
		p->more = true;
		return 0;
	}
	shmq__spsc_prod_publish(&p->tx);
	p->more = false;
	return 0;
}

int shmq_pipe_flush(shmq_pipe *p)
{
	if (!p)
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__foreign(p->pid)))
		return -EBADF;
	if (p->more)
		shmq__spsc_prod_publish(&p->tx);
	p->more = false;
	return 0;
}

ssize_t shmq_pipe_send_bulk(shmq_pipe *p, const struct iovec *v, size_t n, int64_t timeout_ns)
{
	ssize_t sent;
	int rc;

	if (!p || (!v && n))
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__timeout_bad(timeout_ns)))
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__foreign(p->pid)))
		return -EBADF;
	if (n == 0)
		return 0;
	/* as send: a NULL base with a length is -EINVAL; checked for the whole
	 * batch first, so a bad entry sends none of it */
	for (const struct iovec *it = v, *end = v + n; it < end; it++)
		if (SHMQ__UNLIKELY(!it->iov_base && it->iov_len))
			return -EINVAL;
	rc = tx_begin(p);
	if (rc)
		return rc;
	for (;;) {
		sent = shmq__spsc_send_bulk(&p->tx, v, n);
		if (sent != -EAGAIN)
			break;
		rc = tx_wait(p, v[0].iov_len, timeout_ns);
		if (rc)
			return rc;
	}
	if (sent > 0)
		p->more = false;
	return sent;
}

/* ---- receiving ---- */

/* Wait until something can be read: 0, or -EPIPE once the peer is gone and
 * the ring is empty, -EAGAIN (timeout 0), -ETIMEDOUT, -EBADMSG. */
static SHMQ__COLD int rx_wait(shmq_pipe *p, int64_t *deadline, int64_t timeout_ns)
{
	struct shmq__spsc_wait w = { 0, SLICE_NS, peer_check, p, p->spin };
	int rc;

	if (timeout_ns == SHMQ_NOWAIT) {
		rc = nowait_check(p);
		if (!rc)
			return -EAGAIN;
	} else {
		if (*deadline == 0)
			*deadline = shmq__deadline(timeout_ns);
		w.deadline = *deadline;
		rc = shmq__spsc_wait_readable(&p->rx, &w);
	}
	if (rc != -EPIPE)
		return rc;
	/* gone: drain what it published before it went */
	rc = shmq__spsc_readable(&p->rx);
	return rc < 0 ? rc : rc ? 0 : -EPIPE;
}

static inline int rx_peek(shmq_pipe *p, const void **msg, size_t *len, int64_t timeout_ns)
{
	int64_t deadline = 0;
	int rc;

	if (SHMQ__UNLIKELY(p->unused))
		first_use(p);
	p->peeked = false;
	rc = shmq__spsc_cons_sync(&p->rx);
	if (SHMQ__UNLIKELY(rc))
		return rc;
	for (;;) {
		rc = shmq__spsc_peek(&p->rx, msg, len);
		if (SHMQ__LIKELY(rc != -EAGAIN))
			break;
		rc = rx_wait(p, &deadline, timeout_ns);
		if (rc)
			return rc;
	}
	p->peeked = rc == 0;
	return rc;
}

static SHMQ__COLD ssize_t recv_slow(shmq_pipe *p, void *buf, size_t cap, int64_t timeout_ns)
{
	const void *msg;
	size_t len;
	int rc;

	if (SHMQ__UNLIKELY(shmq__foreign(p->pid)))
		return -EBADF;
	rc = rx_peek(p, &msg, &len, timeout_ns);
	if (SHMQ__UNLIKELY(rc))
		return rc;
	if (SHMQ__UNLIKELY(len > cap))
		return -EMSGSIZE; /* stays queued */
	shmq__copy(buf, msg, len);
	shmq__spsc_consume(&p->rx);
	p->peeked = false;
	p->last_rx = true;
	return (ssize_t)len;
}

/* A record over 64 bytes that passed the fast path's checks at head. */
static __attribute__((noinline)) ssize_t recv_big(shmq_pipe *p, void *buf, uint64_t off, size_t n,
						  uint64_t span)
{
	struct shmq__spsc_cons *rx = &p->rx;

	memcpy(buf, rx->data + off, n);
	rx->head += span;
	rx->n++;
	p->last_rx = true;
	shmq__spsc_cons_publish(rx);
	return (ssize_t)n;
}

/* The fast path: a handle in use with no open peek, a view that publishes
 * without seq_cst, and a published record that fits the ring and buf (the
 * checks of shmq__spsc_peek); anything else is recv_slow's, which starts
 * from scratch (nothing was changed here). */
SHMQ__LINE_START ssize_t shmq_pipe_recv(shmq_pipe *p, void *buf, size_t cap, int64_t timeout_ns)
{
	struct shmq__spsc_cons *rx;
	uint64_t head, n, d, off, span;
	uint32_t len;

	if (SHMQ__UNLIKELY(!p || (!buf && cap)))
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__timeout_bad(timeout_ns)))
		return -EINVAL;
	rx = &p->rx;
	if (SHMQ__UNLIKELY(p->unused | p->peeked | rx->strong))
		return recv_slow(p, buf, cap, timeout_ns);
	/* relaxed, both: only this end writes them (as in shmq__spsc_cons_sync) */
	head = shmq__load_relaxed(&rx->ring->head);
	n = shmq__load_relaxed(&rx->ring->head_n);
	/* pairs with the producer's release store of the descriptor in
	 * shmq__spsc_prod_publish_one or shmq__spsc_put: the record is
	 * written */
	d = shmq__load_acquire(&rx->desc[n & rx->dmask]);
	if (!shmq__spsc_desc_is(d, n)) {
		/* a poll of an empty ring; a gone peer, a 64th miss and a
		 * foreign handle are recv_slow's */
		if (timeout_ns == SHMQ_NOWAIT && !shmq__foreign(p->pid) && nowait_quiet(p))
			return -EAGAIN;
		return recv_slow(p, buf, cap, timeout_ns);
	}
	rx->head = head;
	rx->n = n;
	if (SHMQ__UNLIKELY(head & 7u) ||
	    SHMQ__UNLIKELY(!shmq__spsc_locate(rx, d, &off, &len, &span)) ||
	    SHMQ__UNLIKELY((len > cap) | shmq__foreign(p->pid)))
		return recv_slow(p, buf, cap, timeout_ns); /* too big, or corrupt */
	if (SHMQ__UNLIKELY(len > 64))
		return recv_big(p, buf, off, len, span);
	shmq__copy(buf, rx->data + off, len);
	rx->head = head + span;
	rx->n = n + 1;
	p->last_rx = true;
	if (SHMQ__UNLIKELY(shmq__spsc_cons_publish_weak(rx)))
		return rx_wake(p, len);
	return (ssize_t)len;
}

int shmq_pipe_peek(shmq_pipe *p, const void **msg, size_t *len, int64_t timeout_ns)
{
	if (!p || !msg || !len)
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__timeout_bad(timeout_ns)))
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__foreign(p->pid)))
		return -EBADF;
	return rx_peek(p, msg, len, timeout_ns);
}

int shmq_pipe_consume(shmq_pipe *p)
{
	if (!p || !p->peeked)
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__foreign(p->pid)))
		return -EBADF;
	shmq__spsc_consume(&p->rx);
	p->peeked = false;
	return 0;
}

ssize_t shmq_pipe_recv_bulk(shmq_pipe *p, void *buf, size_t cap, size_t *lens, size_t n,
			    int64_t timeout_ns)
{
	int64_t deadline = 0;
	ssize_t got;
	int rc;

	if (!p || (!buf && cap) || (!lens && n))
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__timeout_bad(timeout_ns)))
		return -EINVAL;
	if (SHMQ__UNLIKELY(shmq__foreign(p->pid)))
		return -EBADF;
	if (n == 0)
		return 0;
	if (SHMQ__UNLIKELY(p->unused))
		first_use(p);
	p->peeked = false;
	rc = shmq__spsc_cons_sync(&p->rx);
	if (rc)
		return rc;
	for (;;) {
		got = shmq__spsc_recv_bulk(&p->rx, buf, cap, lens, n);
		if (got != -EAGAIN)
			return got;
		rc = rx_wait(p, &deadline, timeout_ns);
		if (rc)
			return rc;
	}
}

/* ---- scheduler hooks (core/watch_int.h) ---- */

int shmq__pipe_watch(shmq_pipe *p, struct shmq__watch *w)
{
	if (!p || !w)
		return -EINVAL;
	w->word = &p->rx.ring->data_word;
	/* woken by every publication while counted in (the one-shot
	 * cons_armed is for the ring's own sleepers) */
	w->sleepers = &p->rx.ring->cons_watchers;
	/* the FENCED bits of cons_armed ("Watchers" in ring/spsc_int.h) */
	w->enter = shmq__spsc_watch_fence;
	w->fence = &p->rx.ring->cons_armed;
	return 0;
}

uint64_t shmq__pipe_progress(shmq_pipe *p)
{
	return p ? p->rx.head : 0; /* private: the consuming thread's own counter */
}

bool shmq__pipe_readable(shmq_pipe *p)
{
	uint64_t n, d;

	if (!p)
		return false;
	/* relaxed: our own side's count; the handle's view is left untouched
	 * so that an open peek stays valid */
	n = shmq__load_relaxed(&p->rx.ring->head_n);
	/* pairs with the producer's release store of the descriptor in
	 * shmq__spsc_prod_publish_one or shmq__spsc_put */
	d = shmq__load_acquire(&p->rx.desc[n & p->rx.dmask]);
	if (shmq__spsc_desc_is(d, n))
		return true; /* data, or corruption that recv reports */
	return end_check(p, p->peer, false) != 0;
}

int shmq__pipe_watch_space(shmq_pipe *p, struct shmq__watch *w)
{
	if (!p || !w)
		return -EINVAL;
	w->word = &p->tx.ring->space_word;
	/* the consumer wakes prod_watchers at half empty, the mark of
	 * shmq__pipe_writable (prod_sleepers only with prod_armed) */
	w->sleepers = &p->tx.ring->prod_watchers;
	/* a membarrier every time (prod_armed has no FENCED: ring/spsc_int.h) */
	w->enter = shmq__fence_word_enter;
	w->fence = NULL;
	return 0;
}

bool shmq__pipe_writable(shmq_pipe *p)
{
	uint64_t head, used;

	if (!p)
		return false;
	/* seq_cst: the watcher's re-check after it joined prod_sleepers, the
	 * Dekker partner of the consumer's publish of head before its load of
	 * prod_sleepers */
	head = shmq__load_seq_cst(&p->tx.ring->head);
	used = p->tx.tail - head; /* our own working tail: private, trusted */
	if (used > p->tx.cap)
		return true; /* a corrupt head: the send reports it */
	if (p->tx.cap - used >= p->tx.cap / 2)
		return true;
	return end_check(p, p->peer, false) != 0;
}

void shmq__pipe_settle(shmq_pipe *p)
{
	if (p)
		(void)end_check(p, p->peer, true);
}

/* ---- introspection (shmq stat): read only, trusts nothing ---- */

/* Facts about end e: holders (live handles' owners) and gone.  relaxed:
 * every load is a snapshot for a tool; nothing is read through it. */
static void describe_end(shmq_region *r, const struct pipe_end *e, int end,
			 struct shmq__obj_stat *st)
{
	char key[SHMQ__STAT_KEY_MAX];
	uint64_t holders = 0, alive = 0;

	for (int i = 0; i < SHMQ_PIPE_HOLDERS; i++) {
		uint64_t v = shmq__load_relaxed(&e->slot[i]); /* a snapshot */
		uint32_t id = (uint32_t)(v >> 32);
		if (!v)
			continue;
		holders++;
		if (id != ANON_ID && shmq__region_id_alive(r, id) == 1)
			alive++;
	}
	snprintf(key, sizeof(key), "end%d_holders", end);
	shmq__stat_u64(st, key, holders);
	snprintf(key, sizeof(key), "end%d_alive", end);
	shmq__stat_u64(st, key, alive);
	snprintf(key, sizeof(key), "end%d_gone", end);
	shmq__stat_bool(st, key, shmq__load_relaxed(&e->gone) != 0); /* a snapshot */
}

/* What describe_ring adds up over both rings; waits and wakes per end. */
struct ring_tally {
	uint64_t in, out, sleepers;
	uint64_t waits[2]; /* futex waits entered by end e's callers */
	uint64_t wakes[2]; /* futex wakes issued to end e's sleepers */
};

/* Bytes queued in ring d (end d -> end 1 - d), or UINT64_MAX when corrupt;
 * adds its counters and sleepers to t.  relaxed: a snapshot, nothing is
 * ordered against the loads. */
static uint64_t describe_ring(const void *mem, uint64_t cap, int d, struct ring_tally *t)
{
	const struct shmq__spsc *ring = (const void *)((const uint8_t *)mem + ring_off(cap, d));

	if (shmq__load_relaxed(&ring->magic) != SHMQ__SPSC_MAGIC ||
	    shmq__load_relaxed(&ring->capacity) != cap)
		return UINT64_MAX;
	uint64_t head = shmq__load_relaxed(&ring->head), tail = shmq__load_relaxed(&ring->tail);
	t->in += tail;
	t->out += head;
	t->sleepers += (uint64_t)shmq__load_relaxed(&ring->cons_sleepers) +
		       shmq__load_relaxed(&ring->prod_sleepers);
	/* end d produces into ring d, end 1 - d consumes from it; the counters
	 * are untrusted: sums saturate */
	t->waits[d] = shmq__stat_sum(t->waits[d], shmq__load_relaxed(&ring->prod_waits));
	t->wakes[d] = shmq__stat_sum(t->wakes[d], shmq__load_relaxed(&ring->prod_wakes));
	t->waits[1 - d] = shmq__stat_sum(t->waits[1 - d], shmq__load_relaxed(&ring->cons_waits));
	t->wakes[1 - d] = shmq__stat_sum(t->wakes[1 - d], shmq__load_relaxed(&ring->cons_wakes));
	return tail - head <= cap ? tail - head : UINT64_MAX;
}

/* Pipe: depth and capacity in bytes (both directions, and depth_0to1 /
 * depth_1to0), bytes_in and bytes_out, sleepers, waits and wakes (both ends),
 * then per end its holders, the live ones, gone, and its own waits and wakes;
 * closed once either end is gone.  relaxed: a snapshot, every load is
 * checked or only printed; magic, version and capacity are written once by
 * init. */
void shmq__pipe_describe(shmq_region *r, const void *mem, uint64_t size, struct shmq__obj_stat *st)
{
	const struct pipe_shared *sh = mem;
	struct ring_tally t = { 0 };
	uint64_t depth[2];
	char key[SHMQ__STAT_KEY_MAX];

	uint64_t cap = size >= sizeof(*sh) ? shmq__load_relaxed(&sh->capacity) : 0;
	if (size < sizeof(*sh) || shmq__load_relaxed(&sh->magic) != PIPE_MAGIC ||
	    shmq__load_relaxed(&sh->version) != PIPE_VERSION || cap < SHMQ__SPSC_CAP_MIN ||
	    cap > SHMQ__SPSC_CAP_MAX || !SHMQ__IS_POW2(cap) || footprint_of(cap) > size) {
		st->status = -EBADMSG;
		return;
	}
	for (int d = 0; d < 2; d++) {
		depth[d] = describe_ring(mem, cap, d, &t);
		if (depth[d] == UINT64_MAX) {
			st->status = -EBADMSG;
			depth[d] = 0;
		}
	}
	shmq__stat_u64(st, "depth", depth[0] + depth[1]);
	shmq__stat_u64(st, "capacity", 2 * cap);
	shmq__stat_str(st, "unit", "bytes");
	shmq__stat_u64(st, "depth_0to1", depth[0]);
	shmq__stat_u64(st, "depth_1to0", depth[1]);
	shmq__stat_u64(st, "bytes_in", t.in);
	shmq__stat_u64(st, "bytes_out", t.out);
	shmq__stat_u64(st, "sleepers", t.sleepers);
	shmq__stat_u64(st, "waits", shmq__stat_sum(t.waits[0], t.waits[1]));
	shmq__stat_u64(st, "wakes", shmq__stat_sum(t.wakes[0], t.wakes[1]));
	for (int e = 0; e < 2; e++) {
		describe_end(r, &sh->end[e], e, st);
		snprintf(key, sizeof(key), "end%d_waits", e);
		shmq__stat_u64(st, key, t.waits[e]);
		snprintf(key, sizeof(key), "end%d_wakes", e);
		shmq__stat_u64(st, key, t.wakes[e]);
	}
	shmq__stat_bool(st, "closed", shmq__load_relaxed(&sh->end[0].gone) ||
				       shmq__load_relaxed(&sh->end[1].gone));
}
