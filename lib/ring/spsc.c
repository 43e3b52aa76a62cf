/* SPDX-License-Identifier: MIT */
/* Layer 2: the SPSC byte ring's slow paths: geometry, attach, refreshing the
 * other side's index, pads and corruption, waiting and waking. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include <shmq.h>

#include "core/atomic_int.h"
#include "core/compiler_int.h"
#include "ring/spsc_int.h"
#include "core/wait_int.h"

/* Spins between sched_yield() calls and cheap checks inside the spin phase. */
#define SPIN_CHECK_EVERY 256u

/* The consumer's wake flag, cons_armed (see "Fenced publishers" in
 * ring/spsc_int.h); prod_armed uses ARMED only. */
#define ARMED      1u /* a sleeper is owed a wake */
#define FENCED     2u /* publishers that see the word take it with an RMW */
#define VERIFIED   4u /* a membarrier ran after FENCED was set */
#define IDLE_ONE   8u /* bits 3..: publications since the last wake that found
		       * FENCED but nobody armed */
#define IDLE_MASK  (~(ARMED | FENCED | VERIFIED))
#define IDLE_MAX   64u /* ... after which the publisher drops FENCED */

static bool capacity_ok(uint64_t cap)
{
	return SHMQ__IS_POW2(cap) && cap >= SHMQ__SPSC_CAP_MIN && cap <= SHMQ__SPSC_CAP_MAX;
}

size_t shmq__spsc_footprint(uint64_t capacity)
{
	if (!capacity_ok(capacity))
		return 0;
	return sizeof(struct shmq__spsc) + (size_t)SHMQ__SPSC_DESC_BYTES(capacity) + (size_t)capacity;
}

int shmq__spsc_init(void *mem, size_t size, uint64_t capacity)
{
	struct shmq__spsc *r = mem;

	if (!mem || (uintptr_t)mem % SHMQ__CACHELINE || !capacity_ok(capacity) ||
	    size < shmq__spsc_footprint(capacity))
		return -EINVAL;
	/* the descriptors too: a slot's first record must not find its
	 * sequence number there (ring/spsc_int.h) */
	memset(r, 0, sizeof(*r) + (size_t)SHMQ__SPSC_DESC_BYTES(capacity));
	r->magic = SHMQ__SPSC_MAGIC;
	r->version = SHMQ__SPSC_VERSION;
	r->capacity = capacity;
	return 0;
}

/* Check the control block: the capacity on success, or a negative errno. */
static int64_t ring_check(void *mem, size_t size)
{
	struct shmq__spsc *r = mem;
	uint64_t cap;

	if (!mem || (uintptr_t)mem % SHMQ__CACHELINE)
		return -EINVAL;
	if (size < sizeof(*r))
		return -EBADMSG;
	/* relaxed: the control block was published by whatever made mem
	 * reachable (the region directory's release store); line 0 is immutable */
	if (shmq__load_relaxed(&r->magic) != SHMQ__SPSC_MAGIC)
		return -EBADMSG;
	if (shmq__load_relaxed(&r->version) != SHMQ__SPSC_VERSION)
		return -EPROTO;
	cap = shmq__load_relaxed(&r->capacity);
	if (!capacity_ok(cap) || size < shmq__spsc_footprint(cap))
		return -EBADMSG;
	return (int64_t)cap;
}

/* Does this CPU execute PREFETCHW (CPUID 0x80000001, ECX bit 8: AMD's
 * 3DNowPrefetch, Intel's PRFCHW from Broadwell on)?  Asked at every attach:
 * one CPUID, on the slow path. */
static bool cpu_has_prefetchw(void)
{
#if defined(__x86_64__) || defined(__i386__)
	unsigned int a, b, c, d;

	return __get_cpuid(0x80000001u, &a, &b, &c, &d) && (c & (1u << 8));
#else
	return false;
#endif
}

int shmq__spsc_prod_attach(struct shmq__spsc_prod *p, void *mem, size_t size)
{
	int64_t cap = ring_check(mem, size);
	int rc;

	if (cap < 0)
		return (int)cap;
	memset(p, 0, sizeof(*p));
	p->ring = mem;
	p->cap = (uint64_t)cap;
	p->desc = (uint64_t *)p->ring->area;
	p->data = p->ring->area + SHMQ__SPSC_DESC_BYTES(p->cap);
	p->mask = p->cap - 1;
	p->dmask = SHMQ__SPSC_NDESC(p->cap) - 1;
	p->max_msg = shmq__spsc_max_msg(p->cap);
	p->strong = shmq__remote_fence_register() != 0;
	p->prefetchw = cpu_has_prefetchw();
	rc = shmq__spsc_prod_sync(p);
	if (rc)
		return rc;
	/* pairs with the consumer's release store of head in cons_store */
	p->head_cache = shmq__load_acquire(&p->ring->head);
	if ((p->head_cache & 7u) || p->tail - p->head_cache > p->cap)
		return -EBADMSG;
	return 0;
}

int shmq__spsc_cons_attach(struct shmq__spsc_cons *c, void *mem, size_t size)
{
	int64_t cap = ring_check(mem, size);

	if (cap < 0)
		return (int)cap;
	memset(c, 0, sizeof(*c));
	c->ring = mem;
	c->cap = (uint64_t)cap;
	c->desc = (const uint64_t *)c->ring->area;
	c->data = c->ring->area + SHMQ__SPSC_DESC_BYTES(c->cap);
	c->mask = c->cap - 1;
	c->dmask = SHMQ__SPSC_NDESC(c->cap) - 1;
	c->max_msg = shmq__spsc_max_msg(c->cap);
	c->strong = shmq__remote_fence_register() != 0;
	c->head = 1; /* never an index (misaligned): the sync below checks */
	return shmq__spsc_cons_sync(c);
}

/*
 * After prod_sync read the shared tail and count: go past every record
 * whose descriptor is published beyond them, as the consumer will.  A view
 * that publishes descriptors before the tail (every send does, a bulk send
 * a batch of them) and dies or is killed in between leaves the tail behind
 * records the consumer may already have read; a view that started from it
 * would write over them at positions the consumer has left, and frame its
 * records where the consumer does not look.  At most one lap of
 * descriptors, each checked as the consumer checks it: 0, or -EBADMSG.
 */
int shmq__spsc_prod_recover(struct shmq__spsc_prod *p)
{
	for (uint64_t i = 0; i <= p->dmask; i++) {
		/* pairs with the release store of the descriptor in
		 * shmq__spsc_put or shmq__spsc_prod_publish_one by the view
		 * that published it */
		uint64_t d = shmq__load_acquire(&p->desc[p->n & p->dmask]), off, span;
		uint32_t len;

		if (!shmq__spsc_desc_is(d, p->n))
			break;
		if (!shmq__spsc_locate_at(p->cap, p->max_msg, p->tail, d, &off, &len, &span))
			return -EBADMSG;
		p->tail += span;
		p->n++;
	}
	p->pub_n = p->n;
	/* relaxed: only compared; the consumer's published count is never more
	 * than a lap of descriptors behind ours, whatever its age */
	if (p->n - shmq__load_relaxed(&p->ring->head_n) > p->dmask + 1)
		return -EBADMSG;
	return 0;
}

/* For cons_sync, the consumer's own indices head and n as read from the
 * ring: -EBADMSG when the producer's are more than a lap away from them
 * either way (a descriptor lap, a data-area lap).  Honest ones are not: the
 * tail and its count are stored after the descriptors they cover, so they
 * may trail what the consumer took, by at most the lap one producer can
 * write past them. */
int shmq__spsc_cons_check(const struct shmq__spsc_cons *c, uint64_t head, uint64_t n)
{
	/* relaxed, both: only compared, hints (ring/spsc_int.h, "Indices") */
	uint64_t tail = shmq__load_relaxed(&c->ring->tail);
	uint64_t tn = shmq__load_relaxed(&c->ring->tail_n);

	if (tail - head > c->cap && head - tail > c->cap)
		return -EBADMSG;
	if (tn - n > c->dmask + 1 && n - tn > c->dmask + 1)
		return -EBADMSG;
	return 0;
}

/* ---- the other side's index ---- */

int shmq__spsc_prod_refresh(struct shmq__spsc_prod *p, uint64_t need)
{
	/* pairs with the consumer's release store of head in cons_publish:
	 * its reads of the bytes it freed happen before we overwrite them */
	uint64_t head = shmq__load_acquire(&p->ring->head);
	uint64_t used = p->tail - head;

	if ((head & 7u) || used > p->cap)
		return -EBADMSG;
	p->head_cache = head;
	return used > p->cap - need ? -EAGAIN : 0;
}

int shmq__spsc_readable(struct shmq__spsc_cons *c)
{
	/* pairs with the producer's release store of the descriptor in
	 * shmq__spsc_put or shmq__spsc_prod_publish_one */
	uint64_t d = shmq__load_acquire(&c->desc[c->n & c->dmask]), off, span;
	uint32_t len;

	if (!shmq__spsc_desc_is(d, c->n))
		return 0;
	return shmq__spsc_locate(c, d, &off, &len, &span) ? 1 : -EBADMSG;
}

int shmq__spsc_writable(struct shmq__spsc_prod *p, size_t len)
{
	uint64_t need;
	int rc;

	if (len > p->max_msg)
		return -EMSGSIZE;
	need = shmq__spsc_need(p, SHMQ__SPSC_REC(len));
	if (p->tail - p->head_cache <= p->cap - need)
		return 1;
	rc = shmq__spsc_prod_refresh(p, need);
	return rc == -EAGAIN ? 0 : rc < 0 ? rc : 1;
}

/* ---- waking ---- */

/* Bump word and wake everyone asleep on it (one system call, counted). */
static void wake_word(uint32_t *word, uint64_t *wakes)
{
	/* seq_cst: a sleeper that loaded word before this sees it change in
	 * futex_wait; one that loads it after sees our index (core/wait_int.h) */
	shmq__fetch_add_seq_cst(word, 1);
	shmq__count_event(wakes);
	shmq__futex_wake(word, INT32_MAX);
}

/* A publisher that found cons_armed or cons_watchers non-zero: true when a
 * consumer armed the flag (the wake is taken) or a watcher is counted in;
 * else count a publication that found FENCED and nobody to wake, and drop
 * FENCED after IDLE_MAX of them in a row. */
static bool take_cons_wake(struct shmq__spsc *r)
{
	uint32_t *flag = &r->cons_armed;
	/* seq_cst: takes the flag back, so that only the first publication
	 * after a consumer armed it makes a system call; Dekker partner of the
	 * sleeper's seq_cst fetch_or of cons_armed in sleep_once and of a
	 * watcher's in shmq__spsc_watch_fence.  Being an RMW it is also the
	 * fence that FENCED asks of every publisher that sees it */
	uint32_t v = shmq__fetch_and_seq_cst(flag, ~ARMED);
	/* relaxed: after the RMW above, which read any watcher's fetch_or of
	 * FENCED that came before it, and so sees that watcher's count; one
	 * that came after sees our index ("Watchers" in ring/spsc_int.h) */
	bool watched = shmq__load_relaxed(&r->cons_watchers) != 0;

	if ((v & ARMED) || watched) {
		if (v & IDLE_MASK) /* relaxed: a hint on our own word, the RMW above ordered us */
			shmq__fetch_and_relaxed(flag, ~IDLE_MASK);
		return true;
	}
	if (!(v & FENCED)) {
		/* relaxed: stray bits (a count that raced a close's exchange, a
		 * VERIFIED set after we dropped FENCED): clear them, or every
		 * publication would come here */
		if (v)
			shmq__fetch_and_relaxed(flag, ARMED);
		return false;
	}
	/* relaxed: a count on the word the RMW above ordered; a consumer that
	 * armed since read our fetch_and and so sees our index: no wake due */
	v = shmq__fetch_add_relaxed(flag, IDLE_ONE) + IDLE_ONE;
	if (!(v & ARMED) && (v & IDLE_MASK) / IDLE_ONE >= IDLE_MAX)
		/* seq_cst: drops FENCED, VERIFIED and the count and keeps an ARMED
		 * set meanwhile: the consumer's next fetch_or finds them gone and
		 * runs the membarrier again; our own next loads see ARMED.  The
		 * acquire half: a watcher's fetch_or made since our load of
		 * cons_watchers is read here, and our next loads see its count */
		shmq__fetch_and_seq_cst(flag, ARMED);
	return false;
}

void shmq__spsc_wake_consumer(struct shmq__spsc *r)
{
	if (take_cons_wake(r))
		wake_word(&r->data_word, &r->cons_wakes);
}

/* The consumer side's fence ("Fenced publishers" in ring/spsc_int.h), after
 * the seq_cst fetch_or that set FENCED in cons_armed returned old: the
 * membarrier unless a run of sleeps or watches already verified one, then
 * VERIFIED.  0, or the membarrier's negative errno. */
static int cons_fence(uint32_t *armed, uint32_t old)
{
	int rc;

	if ((old & (FENCED | VERIFIED)) == (FENCED | VERIFIED))
		return 0;
	rc = shmq__remote_fence();
	if (rc == 0) /* seq_cst: as the fetch_or; FENCED was set before the membarrier */
		shmq__fetch_or_seq_cst(armed, VERIFIED);
	return rc;
}

int shmq__spsc_watch_fence(uint32_t *armed)
{
	/* seq_cst: Dekker partner of the publisher's fetch_and in
	 * take_cons_wake, as the sleeper's fetch_or in sleep_once; no ARMED:
	 * publishers wake a watcher by its count in cons_watchers */
	return cons_fence(armed, shmq__fetch_or_seq_cst(armed, FENCED));
}

/* Wake a sleeping producer once want(need) bytes are free. */
static void wake_producer_if(struct shmq__spsc_cons *c, bool half)
{
	struct shmq__spsc *r = c->ring;
	/* relaxed, both: hints that only delay a wake (see top of
	 * ring/spsc_int.h); the sleeping producer's tail stands still */
	uint64_t used = shmq__load_relaxed(&r->tail) - c->head;
	uint64_t need = shmq__load_relaxed(&r->prod_need);

	if (used <= c->cap) { /* else corrupt: wake it, it reports -EBADMSG */
		uint64_t want = half && need < c->cap / 2 ? c->cap / 2 : need;

		if (want > c->cap)
			want = c->cap;
		if (c->cap - used < want)
			return; /* hysteresis: not yet half empty */
	}
	/* seq_cst: as in wake_consumer, with the producer's store of prod_armed;
	 * relaxed: a watch of the producer side stays counted in while it
	 * waits, the load only decides whether to wake (core/watch_int.h) */
	if (shmq__exchange_seq_cst(&r->prod_armed, 0u) | (shmq__load_relaxed(&r->prod_watchers) != 0))
		wake_word(&r->space_word, &r->prod_wakes);
}

void shmq__spsc_wake_producer(struct shmq__spsc_cons *c)
{
	wake_producer_if(c, true);
}

void shmq__spsc_wake_producer_now(struct shmq__spsc_cons *c)
{
	/* relaxed: the flag is a hint; wake_producer_if takes it with a
	 * seq_cst exchange (pairs with the producer's store in sleep_once) */
	if (shmq__load_relaxed(&c->ring->prod_armed) | shmq__load_relaxed(&c->ring->prod_watchers))
		wake_producer_if(c, false);
}

void shmq__spsc_wake_sleepers(struct shmq__spsc *r)
{
	/* seq_cst loads: Dekker with a sleeper's seq_cst increment and its
	 * seq_cst re-check of the condition (see ring/spsc_int.h) */
	if (shmq__load_seq_cst(&r->cons_sleepers) || shmq__load_seq_cst(&r->cons_watchers)) {
		/* seq_cst: the wake below covers whoever armed it */
		shmq__exchange_seq_cst(&r->cons_armed, 0u);
		wake_word(&r->data_word, &r->cons_wakes);
	}
	if (shmq__load_seq_cst(&r->prod_sleepers) || shmq__load_seq_cst(&r->prod_watchers)) {
		/* seq_cst: as above */
		shmq__exchange_seq_cst(&r->prod_armed, 0u);
		wake_word(&r->space_word, &r->prod_wakes);
	}
}

/* ---- waiting ---- */

/* 1 ready, 0 not yet, or a negative errno. */
typedef int (*ready_fn)(void *view, size_t len);

static int cons_ready(void *view, size_t len)
{
	(void)len;
	return shmq__spsc_readable(view);
}

static int prod_ready(void *view, size_t len)
{
	return shmq__spsc_writable(view, len);
}

struct waiter {
	uint32_t *word;     /* the futex word the other side bumps */
	uint32_t *sleepers; /* where we count ourselves while asleep */
	uint32_t *armed;    /* the flag that makes the other side wake us */
	bool fenced;        /* the consumer: keep publishers fenced (FENCED) */
	uint32_t *need;     /* where a producer says how much room it waits for */
	uint32_t need_bytes;
	uint64_t *waits;    /* statistics: futex waits entered */
	ready_fn ready;
	void *view;
	size_t len;
	const struct shmq__spsc_wait *w;
};

static bool deadline_passed(int64_t deadline)
{
	return deadline != SHMQ__NO_DEADLINE && shmq_now_ns() >= deadline;
}

/* The spin phase: 0 ready, 1 spun out, or a negative errno / check value. */
static int spin(const struct waiter *wt)
{
	int64_t budget = wt->w->spin == 0 ? (int64_t)shmq__spin_budget() : wt->w->spin;
	int rc;

	for (int64_t i = 0; i < budget; i++) {
		rc = wt->ready(wt->view, wt->len);
		if (rc)
			return rc < 0 ? rc : 0;
		if ((i + 1) % SPIN_CHECK_EVERY)
			shmq__cpu_relax();
		else if (wt->w->check && (rc = wt->w->check(wt->w->arg, false)))
			return rc;
		else if (deadline_passed(wt->w->deadline))
			return -ETIMEDOUT;
		else
			sched_yield(); /* on 2 cores the other side may need ours */
	}
	return 1;
}

/* When one sleep should end: the deadline or the end of the slice. */
static int64_t sleep_until(const struct shmq__spsc_wait *w, int64_t slice)
{
	int64_t now = shmq_now_ns();

	if (slice > 0 && (w->deadline == SHMQ__NO_DEADLINE || w->deadline - now > slice))
		return now + slice;
	return w->deadline;
}

/* Sleep once: 0 ready, 1 slept (woken, or the slice ended), or a negative
 * errno / check value. */
static int sleep_once(const struct waiter *wt)
{
	int64_t slice = wt->w->slice_ns;
	uint32_t v;
	int rc, frc = 0, fence;

	/* pairs with the seq_cst bump in wake_*: a bump after this load makes
	 * futex_wait return at once */
	v = shmq__load_acquire(wt->word);
	shmq__fetch_add_seq_cst(wt->sleepers, 1);
	if (wt->need) /* relaxed: a hint, ordered before the flag by its seq_cst store */
		shmq__store_relaxed(wt->need, wt->need_bytes);
	if (!wt->fenced) {
		/* seq_cst: Dekker partner of the waker's exchange in
		 * wake_producer (with the membarrier below for its publishing store) */
		shmq__store_seq_cst(wt->armed, ARMED);
		fence = shmq__remote_fence();
	} else {
		/* seq_cst: Dekker partner of the waker's fetch_and in
		 * take_cons_wake; see "Fenced publishers" in ring/spsc_int.h */
		fence = cons_fence(wt->armed, shmq__fetch_or_seq_cst(wt->armed, ARMED | FENCED));
	}
	if (fence != 0 && (slice <= 0 || slice > SHMQ__UNFENCED_SLICE_NS))
		slice = SHMQ__UNFENCED_SLICE_NS;
	rc = wt->ready(wt->view, wt->len);
	if (rc == 0 && wt->w->check)
		rc = wt->w->check(wt->w->arg, false);
	if (rc == 0) {
		shmq__count_event(wt->waits);
		frc = shmq__futex_wait(wt->word, v, sleep_until(wt->w, slice));
	}
	shmq__fetch_sub_seq_cst(wt->sleepers, 1);
	if (rc > 0)
		return 0;
	if (rc < 0)
		return rc;
	if (frc == -ETIMEDOUT) {
		if (deadline_passed(wt->w->deadline)) {
			rc = wt->ready(wt->view, wt->len);
			return rc ? (rc < 0 ? rc : 0) : -ETIMEDOUT;
		}
		if (wt->w->check && (rc = wt->w->check(wt->w->arg, true)))
			return rc;
	} else if (frc < 0) {
		return frc;
	}
	return 1;
}

static int wait_for(const struct waiter *wt)
{
	int rc = spin(wt);

	while (rc == 1) {
		rc = wt->ready(wt->view, wt->len);
		if (rc)
			return rc < 0 ? rc : 0;
		rc = sleep_once(wt);
	}
	return rc;
}

int shmq__spsc_wait_readable(struct shmq__spsc_cons *c, const struct shmq__spsc_wait *w)
{
	struct waiter wt = {
		.word = &c->ring->data_word, .sleepers = &c->ring->cons_sleepers,
		.armed = &c->ring->cons_armed, .fenced = true, .need = NULL, .need_bytes = 0,
		.waits = &c->ring->cons_waits, .ready = cons_ready, .view = c, .len = 0, .w = w,
	};

	return wait_for(&wt);
}

int shmq__spsc_wait_writable(struct shmq__spsc_prod *p, size_t len,
			     const struct shmq__spsc_wait *w)
{
	struct waiter wt = {
		.word = &p->ring->space_word, .sleepers = &p->ring->prod_sleepers,
		.armed = &p->ring->prod_armed, .need = &p->ring->prod_need,
		.waits = &p->ring->prod_waits, .ready = prod_ready, .view = p, .len = len, .w = w,
	};
	if (len > p->max_msg)
		return -EMSGSIZE;
	/* < cap <= 2^31 */
	wt.need_bytes = (uint32_t)shmq__spsc_need(p, SHMQ__SPSC_REC(len));
	return wait_for(&wt);
}
