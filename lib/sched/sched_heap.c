/* SPDX-License-Identifier: MIT */
/* The scheduler's timer queue: a slab of event slots and a 4-ary min-heap. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/alloc_int.h"
#include "core/compiler_int.h"
#include "sched/sched_heap_int.h"

_Static_assert(sizeof(void *) == 8, "event handles pack index and generation in a pointer");
_Static_assert(sizeof(struct shmq__hent) * SHMQ__HEAP_ARITY == SHMQ__CACHELINE,
	       "a node's children fill one cache line");

/* The heap array is offset so that ent[1], ent[5], ent[9] ... (each node's
 * first child) start a cache line: a sift-down reads one line per level. */
#define HEAP_SKEW (SHMQ__CACHELINE - sizeof(struct shmq__hent))
#define HUGE_PAGE ((uintptr_t)2 << 20)

/* Ask for transparent huge pages over the 2 MiB pages inside [p, p + size):
 * random cancels in a large heap otherwise pay a TLB miss per access.  Only
 * advice: the result is ignored. */
static void heap_advise(void *p, size_t size)
{
	uintptr_t a = SHMQ__ALIGN_UP((uintptr_t)p, HUGE_PAGE);
	uintptr_t e = ((uintptr_t)p + size) & ~(HUGE_PAGE - 1);

	if (e > a)
		madvise((void *)a, e - a, MADV_HUGEPAGE);
}

void shmq__heap_init(struct shmq__heap *h)
{
	memset(h, 0, sizeof(*h));
}

void shmq__heap_fini(struct shmq__heap *h)
{
	if (h->ent_mem)
		shmq__free(h->ent_mem, h->ent_mem_size);
	if (h->slots)
		shmq__free(h->slots, (size_t)h->slots_cap * sizeof(*h->slots));
	if (h->hot)
		shmq__free(h->hot, (size_t)h->hot_cap * sizeof(*h->hot));
	memset(h, 0, sizeof(*h));
}

static int heap_grow_ent(struct shmq__heap *h, size_t need)
{
	size_t cap = h->cap ? h->cap : 64;
	size_t size;
	void *mem;
	uintptr_t a;
	struct shmq__hent *ent;

	while (cap < need)
		cap *= 2;
	if (cap > UINT32_MAX - 1)
		return -ENOMEM;
	size = cap * sizeof(*ent) + 2 * SHMQ__CACHELINE;
	mem = shmq__malloc(size);
	if (!mem)
		return -ENOMEM;
	a = SHMQ__ALIGN_UP((uintptr_t)mem, SHMQ__CACHELINE) + HEAP_SKEW;
	ent = (struct shmq__hent *)a;
	heap_advise(mem, size);
	if (h->n)
		memcpy(ent, h->ent, (size_t)h->n * sizeof(*ent));
	if (h->ent_mem)
		shmq__free(h->ent_mem, h->ent_mem_size);
	h->ent = ent;
	h->ent_mem = mem;
	h->ent_mem_size = size;
	h->cap = (uint32_t)cap;
	return 0;
}

/* Both per-slot arrays grow to cap entries; each keeps its own capacity so a
 * failure halfway leaves every size known (sized deallocation). */
static int heap_grow_slots(struct shmq__heap *h, size_t need)
{
	size_t cap = h->slots_cap ? h->slots_cap : 64;

	while (cap < need)
		cap *= 2;
	if (cap > UINT32_MAX - 1)
		return -ENOMEM;
	if (h->hot_cap < cap) {
		struct shmq__slot_hot *hot =
			shmq__realloc(h->hot, (size_t)h->hot_cap * sizeof(*hot), cap * sizeof(*hot));

		if (!hot)
			return -ENOMEM;
		heap_advise(hot, cap * sizeof(*hot));
		h->hot = hot;
		h->hot_cap = (uint32_t)cap;
	}
	if (h->slots_cap < cap) {
		struct shmq__slot *sl =
			shmq__realloc(h->slots, (size_t)h->slots_cap * sizeof(*sl), cap * sizeof(*sl));

		if (!sl)
			return -ENOMEM;
		heap_advise(sl, cap * sizeof(*sl));
		h->slots = sl;
		h->slots_cap = (uint32_t)cap;
	}
	return 0;
}

int shmq__heap_reserve(struct shmq__heap *h, size_t more)
{
	size_t need = (size_t)h->n + more;
	size_t need_slots = need + h->retired; /* retired slots stay in the slab */
	int rc;

	if (need_slots > UINT32_MAX - 1)
		return -ENOMEM;
	if (need > h->cap && (rc = heap_grow_ent(h, need)) < 0)
		return rc;
	if (need_slots > h->slots_cap && (rc = heap_grow_slots(h, need_slots)) < 0)
		return rc;
	return 0;
}

int shmq__heap_cmp(const struct shmq__heap *h, const struct shmq__hent *a,
		   const struct shmq__hent *b)
{
	if (a->when != b->when)
		return a->when < b->when ? -1 : 1;
	if (a->prio != b->prio)
		return a->prio < b->prio ? -1 : 1;
	if (h->slots[a->slot].seq != h->slots[b->slot].seq)
		return h->slots[a->slot].seq < h->slots[b->slot].seq ? -1 : 1;
	return 0;
}

/* a strictly before b; the sequence (a second cache miss) only on a full tie. */
static inline bool hent_less(const struct shmq__heap *h, const struct shmq__hent *a,
			     const struct shmq__hent *b)
{
	if (SHMQ__LIKELY(a->when != b->when))
		return a->when < b->when;
	return shmq__heap_cmp(h, a, b) < 0;
}

static inline void heap_place(struct shmq__heap *h, uint32_t pos, const struct shmq__hent *e)
{
	h->ent[pos] = *e;
	h->hot[e->slot].heap_pos = pos;
}

static void heap_sift_up(struct shmq__heap *h, uint32_t pos, struct shmq__hent e)
{
	while (pos > 0) {
		uint32_t parent = (pos - 1) / SHMQ__HEAP_ARITY;

		if (!hent_less(h, &e, &h->ent[parent]))
			break;
		heap_place(h, pos, &h->ent[parent]);
		pos = parent;
	}
	heap_place(h, pos, &e);
}

static uint32_t heap_min_child(const struct shmq__heap *h, uint32_t first)
{
	uint32_t end = first + SHMQ__HEAP_ARITY, best = first;

	if (end > h->n)
		end = h->n;
	for (uint32_t j = first + 1; j < end; j++)
		if (hent_less(h, &h->ent[j], &h->ent[best]))
			best = j;
	return best;
}

static void heap_sift_down(struct shmq__heap *h, uint32_t pos, struct shmq__hent e)
{
	for (;;) {
		uint64_t first = (uint64_t)pos * SHMQ__HEAP_ARITY + 1;
		uint32_t best;

		if (first >= h->n)
			break;
		best = heap_min_child(h, (uint32_t)first);
		if (!hent_less(h, &h->ent[best], &e))
			break;
		heap_place(h, pos, &h->ent[best]);
		pos = best;
	}
	heap_place(h, pos, &e);
}

/* Put e at pos (a hole) and restore the heap order in whichever direction. */
static void heap_fix(struct shmq__heap *h, uint32_t pos, struct shmq__hent e)
{
	if (pos > 0 && hent_less(h, &e, &h->ent[(pos - 1) / SHMQ__HEAP_ARITY]))
		heap_sift_up(h, pos, e);
	else
		heap_sift_down(h, pos, e);
}

static void heap_remove_at(struct shmq__heap *h, uint32_t pos)
{
	uint32_t last = --h->n;

	if (pos != last)
		heap_fix(h, pos, h->ent[last]);
}

static uint32_t slot_alloc(struct shmq__heap *h)
{
	uint32_t idx;

	if (h->free_head) {
		idx = h->free_head - 1;
		h->free_head = h->hot[idx].heap_pos;
	} else {
		idx = h->nslots++;
		h->hot[idx].gen = 0;
	}
	h->hot[idx].gen++; /* odd: in use */
	return idx;
}

static void slot_free(struct shmq__heap *h, uint32_t idx)
{
	h->hot[idx].gen++; /* even: free; stale handles no longer match */
	if (SHMQ__UNLIKELY(h->hot[idx].gen == 0)) {
		/* the generation wrapped: its next life would be generation 1
		 * again, as the slot's first handle.  Retire the slot (never
		 * reused; gen 0 matches no handle) */
		h->retired++;
		return;
	}
	h->hot[idx].heap_pos = h->free_head;
	h->free_head = idx + 1;
	/* the next enter reuses this slot (LIFO) and writes its cold part:
	 * start fetching it now, while the caller's other misses are pending */
	__builtin_prefetch(&h->slots[idx], 1);
}

int shmq__heap_push(struct shmq__heap *h, int64_t when, int prio, shmq_action_fn fn, void *arg,
		    int64_t period, uint64_t *handle)
{
	struct shmq__hent e;
	struct shmq__slot *s;
	uint32_t idx;
	int rc;

	if (SHMQ__UNLIKELY(h->n >= h->cap) && (rc = heap_grow_ent(h, (size_t)h->n + 1)) < 0)
		return rc;
	if (SHMQ__UNLIKELY(!h->free_head && h->nslots >= h->slots_cap) &&
	    (rc = heap_grow_slots(h, (size_t)h->nslots + 1)) < 0)
		return rc;
	idx = slot_alloc(h);
	s = &h->slots[idx];
	s->seq = h->next_seq++;
	s->fn = fn;
	s->arg = arg;
	s->period = period;
	s->base = when;
	s->k = 0;
	e.when = when;
	e.prio = prio;
	e.slot = idx;
	heap_sift_up(h, h->n++, e);
	*handle = ((uint64_t)h->hot[idx].gen << 32) | (idx + 1);
	return 0;
}

uint32_t shmq__heap_lookup(const struct shmq__heap *h, uint64_t handle)
{
	uint32_t idx = (uint32_t)handle - 1, gen = (uint32_t)(handle >> 32);

	if ((uint32_t)handle == 0 || idx >= h->nslots || !(gen & 1) || h->hot[idx].gen != gen)
		return UINT32_MAX;
	return idx;
}

/*
 * Start the loads a removal at pos will need, so that their cache misses
 * overlap instead of queueing: the parent and the children of pos (the
 * entry that fills the hole moves up or down from there), the hole itself
 * and the heap position of the filling entry, which are rewritten.
 * Always inlined: GCC takes a function that only loads and prefetches for
 * pure, and drops the call (and the prefetches with it) as having no effect.
 */
static SHMQ__ALWAYS_INLINE void heap_prefetch_remove(const struct shmq__heap *h, uint32_t pos)
{
	uint64_t child = (uint64_t)pos * SHMQ__HEAP_ARITY + 1;

	__builtin_prefetch(&h->hot[h->ent[h->n - 1].slot], 1);
	__builtin_prefetch(&h->ent[pos], 1);
	if (pos > 0)
		__builtin_prefetch(&h->ent[(pos - 1) / SHMQ__HEAP_ARITY]);
	if (child < h->n)
		__builtin_prefetch(&h->ent[child]);
}

void shmq__heap_cancel(struct shmq__heap *h, uint32_t idx)
{
	uint32_t pos = h->hot[idx].heap_pos;

	heap_prefetch_remove(h, pos);
	heap_remove_at(h, pos);
	slot_free(h, idx);
}

/* The first grid deadline base + k * period after now, k > cur; false on overflow. */
static bool period_next(const struct shmq__slot *s, int64_t now, uint64_t *k, int64_t *when)
{
	uint64_t next = s->k + 1;
	__int128 w;

	if (now >= s->base) {
		/* in uint64_t: now - base overflows int64_t for a base far in
		 * the past (down to INT64_MIN), never uint64_t */
		uint64_t kmin = ((uint64_t)now - (uint64_t)s->base) / (uint64_t)s->period + 1;

		if (kmin > next)
			next = kmin;
	}
	w = (__int128)s->base + (__int128)next * s->period;
	if (w > INT64_MAX)
		return false;
	*k = next;
	*when = (int64_t)w;
	return true;
}

void shmq__heap_pop(struct shmq__heap *h, int64_t now, shmq_action_fn *fn, void **arg,
		    int64_t *when)
{
	struct shmq__hent e = h->ent[0];
	struct shmq__slot *s = &h->slots[e.slot];

	*fn = s->fn;
	*arg = s->arg;
	*when = e.when;
	if (s->period > 0 && period_next(s, now, &s->k, &e.when)) {
		s->seq = h->next_seq++;
		heap_sift_down(h, 0, e);
		return;
	}
	heap_remove_at(h, 0);
	slot_free(h, e.slot);
}

static void info_fill(const struct shmq__heap *h, const struct shmq__hent *e,
		      struct shmq_event_info *out)
{
	out->when_ns = e->when;
	out->priority = e->prio;
	out->fn = h->slots[e->slot].fn;
	out->arg = h->slots[e->slot].arg;
}

static int hent_cmp_r(const void *a, const void *b, void *h)
{
	return shmq__heap_cmp(h, a, b);
}

/* Without memory for a sorted copy: sort the heap itself, O(n log n) as
 * well (a selection of m least entries would take m passes over n, minutes
 * at 10^6 under the scheduler's mutex).  An array in run order is a valid
 * heap, every parent before its children, so only the positions that the
 * slots record change. */
static void snapshot_in_place(struct shmq__heap *h, struct shmq_event_info *out, size_t m)
{
	qsort_r(h->ent, h->n, sizeof(*h->ent), hent_cmp_r, h);
	for (uint32_t i = 0; i < h->n; i++)
		h->hot[h->ent[i].slot].heap_pos = i;
	for (size_t i = 0; i < m; i++)
		info_fill(h, &h->ent[i], &out[i]);
}

size_t shmq__heap_snapshot(struct shmq__heap *h, struct shmq_event_info *out, size_t max)
{
	size_t n = h->n, m = max < n ? max : n, size = n * sizeof(struct shmq__hent);
	struct shmq__hent *tmp;

	if (!out || m == 0)
		return n;
	tmp = shmq__malloc(size);
	if (!tmp) {
		snapshot_in_place(h, out, m);
		return n;
	}
	memcpy(tmp, h->ent, size);
	qsort_r(tmp, n, sizeof(*tmp), hent_cmp_r, h);
	for (size_t i = 0; i < m; i++)
		info_fill(h, &tmp[i], &out[i]);
	shmq__free(tmp, size);
	return n;
}
