/* SPDX-License-Identifier: MIT */
/*
 * Layer 5: the pool's worker process: its loop, the idle wait, stealing (the
 * steal window), fork-join frames (spawn, sync, the frames a thief runs) and
 * its entry.  The chunks it claims run in job.c.  The protocols it takes part
 * in are described in pool/pool_layout_int.h.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <shmq.h>

#include "core/alloc_int.h"
#include "core/atomic_int.h"
#include "core/compiler_int.h"
#include "core/fork_int.h"
#include "core/region_int.h"
#include "core/wait_int.h"
#include "ring/deque_int.h"
#include "pool/job_int.h"
#include "pool/pool_layout_int.h"
#include "pool/task_int.h"
#include "pool/worker_int.h"

#define IDLE_SPIN_NS     (50 * 1000)          /* steal attempts before sleeping, at most */
#define IDLE_SPIN_MIN_NS (1000)               /* below this, no timed spin at all */
#define IDLE_SLICE_NS    (50 * 1000 * 1000)   /* idle sleep; then check the creator */
#define FRAME_NAP_NS     (200 * 1000)         /* a sync's sleep between help attempts */
#define FRAME_CHECK_NS   (20 * 1000 * 1000)   /* a sync checks its thief this often */
#define HELP_DEPTH_MAX   64u                  /* nested task runs while syncing */

/* The worker this process is, while it runs the pool's loop on its main
 * thread.  The one piece of process-wide state besides the registries:
 * tasks have no context argument, so spawn and sync find their worker here
 * (worker_here). */
static struct worker *pool_current;

/* The worker whose task the calling thread runs, or NULL.  Another thread
 * of the worker's process (a task may start threads) gets NULL: the deque
 * and the frame stack have one owner, the thread that runs the tasks.  So
 * does a child that a task made with fork(): it inherited pool_current, but
 * the deque and the frames are its parent's. */
static struct worker *worker_here(bool any_thread)
{
	/* relaxed: written by the worker's thread before its first task (so
	 * before any thread a task starts) and after its last */
	struct worker *w = shmq__load_relaxed(&pool_current);

	if (!w || shmq__foreign(w->pid))
		return NULL;
	return any_thread || pthread_equal(w->thread, pthread_self()) ? w : NULL;
}

static uint64_t rng_next(struct worker *w)
{
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return w->rng;
}

/* memcpy for the small argument copies of spawn: the common sizes get a
 * constant-size copy the compiler inlines. */
static inline void arg_copy(void *dst, const void *src, size_t n)
{
	if (n == 4)
		memcpy(dst, src, 4);
	else if (n == 8)
		memcpy(dst, src, 8);
	else if (n)
		memcpy(dst, src, n);
}

static uint32_t frame_in_span(uint32_t in_size)
{
	return SHMQ__ALIGN_UP(in_size, 16u);
}

/*
 * The steal window: every access of ours to another slot's area (its deque,
 * the claim of one of its frames) happens while our steal_seq is odd.  The
 * creator retires a dead worker's area after publishing its replacement's
 * gen and recycles it only once each worker's steal_seq is even or has moved
 * since (area_reusable): a window opened after the gen store sees the new gen
 * (Dekker: our seq_cst increment then seq_cst load of gen, its seq_cst store
 * of gen then seq_cst load of steal_seq).
 */
static void steal_window_open(struct worker *w)
{
	w->steal_seq++;
	/* STEAL_WINDOW, seq_cst: Dekker with worker_area_retire (see above) */
	shmq__exchange_seq_cst(&w->slot->steal_seq, w->steal_seq);
	w->in_window = true;
}

static void steal_window_close(struct worker *w)
{
	if (!w->in_window)
		return;
	w->in_window = false;
	w->steal_seq++;
	/* release: our last access to the victim's area before the even
	 * value; pairs with area_reusable's acquire load of it (Protocol
	 * STEAL_WINDOW) */
	shmq__store_release(&w->slot->steal_seq, w->steal_seq);
}

/*
 * Placement (Protocol PLACE).  The kernel queues a woken worker on an idle
 * CPU when its wake-up placement finds one, but not always.  Traces on a
 * 2-CPU VM: a caller that woke both workers while it still ran on CPU X had
 * them both queued on Y, and a worker woken by its peer was queued on the
 * peer's CPU, each time beside a CPU left idle.  The load balancer moved one
 * of the two after 0.7-1 ms, now and then after 3 ms: a map of 10 ms lost a
 * tenth to a third of a CPU.  Three parts undo that:
 *  - the creator wakes one worker for a job (shmq__pool_inject), which
 *    wakes the next as it splits the range, from a CPU of its own;
 *  - a worker that woke a peer yields (worker_woke_peer), so that a peer
 *    queued behind it runs now rather than after its time slice;
 *  - each awake worker publishes its CPU before each word, and one that was
 *    asleep checks first: an awake peer on its own CPU, and it narrows its
 *    affinity to its allowed CPUs less those its awake peers publish (the
 *    kernel moves it at once), then restores the mask it had.  Nothing
 *    moves when no CPU would be left.
 */

/* Is an awake peer on CPU c?  Then move off every CPU an awake peer is on:
 * true if we moved. */
static bool worker_place(struct worker *w, int c)
{
	cpu_set_t mask, away;
	bool shared = false;

	for (unsigned i = 0; i < w->nworkers && !shared; i++)
		/* PLACE, relaxed: a hint, stored relaxed by the peer's
		 * worker_cpu_publish */
		shared = i != w->self && shmq__load_relaxed(&w->h->slots[i].cpu) == (uint32_t)c + 1;
	if (!shared || sched_getaffinity(0, sizeof(mask), &mask) != 0 || !CPU_ISSET(c, &mask))
		return false;
	away = mask;
	CPU_CLR(c, &away);
	for (unsigned i = 0; i < w->nworkers; i++) {
		/* PLACE, relaxed: as above; bounded before use as a CPU number */
		uint32_t v = i == w->self ? 0 : shmq__load_relaxed(&w->h->slots[i].cpu);

		if (v != 0 && v <= CPU_SETSIZE)
			CPU_CLR(v - 1, &away);
	}
	if (CPU_COUNT(&away) == 0 || sched_setaffinity(0, sizeof(away), &away) != 0)
		return false;
	(void)sched_setaffinity(0, sizeof(mask), &mask);
	return true;
}

/* Before each word: publish our CPU; the first word after an idle sleep
 * (cpu 0) first checks where we were woken. */
static void worker_cpu_publish(struct worker *w)
{
	int c = sched_getcpu();
	uint32_t v;

	if (w->cpu == 0 && w->nworkers > 1 && c >= 0 && c < CPU_SETSIZE && worker_place(w, c))
		c = sched_getcpu(); /* moved */
	if (c < 0 || c >= CPU_SETSIZE)
		return;
	v = (uint32_t)c + 1;
	if (v != w->cpu) {
		w->cpu = v;
		/* PLACE, relaxed: a hint, loaded relaxed by peers' worker_place */
		shmq__store_relaxed(&w->slot->cpu, v);
	}
}

static void worker_cpu_unpublish(struct worker *w)
{
	if (w->cpu) {
		w->cpu = 0;
		/* PLACE, relaxed: a hint, loaded relaxed by peers' worker_place */
		shmq__store_relaxed(&w->slot->cpu, 0);
	}
}

/* A subtask taken from another worker's deque (or found orphaned). */
static void sub_run_stolen(struct worker *w, uint64_t word)
{
	uint64_t off = ((word >> TAG_BITS) & 0xffffffffull) * SHMQ__CACHELINE;
	uint32_t tag = (uint32_t)(word & TAG_MASK);
	struct pool_frame *f = shmq__region_ptr(w->r, off, sizeof(*f));
	uint32_t exp = frame_pending(tag);
	uint8_t out[POOL_FRAME_DATA];
	uint32_t in_size, out_size, span;
	shmq_task_fn fn;
	int st;

	if (!f) {
		steal_window_close(w);
		return; /* a corrupt word: nothing to run */
	}
	/* pairs with frame_wait's CAS of the same PENDING state, so that one
	 * of us runs the frame, and acquires the spawner's frame contents
	 * (shmq_pool_spawn's stores, also published by its shmq__deque_push,
	 * whose release our steal acquired) (Protocol FRAME) */
	if (!shmq__cas_acq_rel(&f->state, &exp, frame_running(w->id))) {
		steal_window_close(w);
		return; /* run by its spawner already, or a stale word */
	}
	/* from here our RUNNING(id) in the frame keeps its area from being
	 * recycled (area_reusable) until we store DONE */
	steal_window_close(w);
	/* FRAME, relaxed: ordered after the spawner's stores by the claim above */
	in_size = shmq__load_relaxed(&f->in_size);
	out_size = shmq__load_relaxed(&f->out_size);
	span = frame_in_span(in_size);
	fn = task_by_index(&w->tt, shmq__load_relaxed(&f->task_idx),
			   shmq__load_relaxed(&f->task_hash));
	if (span + out_size > POOL_FRAME_DATA)
		st = -EBADMSG;
	else if (!fn)
		st = -ENOENT;
	else {
		memset(out, 0, out_size);
		st = task_exec(w, fn, in_size ? f->data : NULL, out_size ? out : NULL);
		memcpy(f->data + span, out, out_size);
	}
	/* relaxed: published by the seq_cst exchange to DONE below (Protocol FRAME) */
	shmq__store_relaxed(&f->status, st);
	/* FRAME, seq_cst: the wake protocol of core/wait_int.h with the
	 * spawner's sleepers (frame_wait) */
	shmq__exchange_seq_cst(&f->state, frame_done(tag));
	shmq__wake_word(&f->state, &f->sleepers, 1);
}

static void word_run(struct worker *w, uint64_t word)
{
	worker_cpu_publish(w);
	switch (word >> 62) {
	case WORD_RANGE: {
		unsigned j = (unsigned)((word >> 54) & 0xff);
		uint64_t lo = (word >> RANGE_BITS) & RANGE_MAX, hi = word & RANGE_MAX;

		range_run(w, j, lo, hi);
		break;
	}
	case WORD_SUB:
		sub_run_stolen(w, word);
		break;
	default:
		break; /* a corrupt word */
	}
}

/* The view of victim v's current deque, re-attached when its slot got a new
 * generation; NULL while it has none.  Inside the steal window only. */
static struct shmq__deque *victim_deque(struct worker *w, unsigned v)
{
	struct pool_slot *s = &w->h->slots[v];
	struct victim *vi = &w->victims[v];
	/* STEAL_WINDOW, seq_cst: the Dekker with worker_area_retire; also
	 * pairs with shmq__pool_worker_start's seq_cst store of gen after
	 * area_off (acquire) */
	uint32_t gen = shmq__load_seq_cst(&s->gen);
	void *mem;

	if (SHMQ__LIKELY(gen == vi->gen && gen != 0))
		return &vi->dq;
	/* relaxed: ordered by the load of gen above (worker_start stores area_off,
	 * then gen) */
	mem = shmq__region_ptr(w->r, shmq__load_relaxed(&s->area_off), pool_area_size());
	vi->gen = 0;
	if (!mem || shmq__deque_attach(&vi->dq, mem, shmq__deque_footprint(POOL_DEQUE_CAP)))
		return NULL;
	vi->gen = gen;
	return &vi->dq;
}

static bool inject_take(struct worker *w, uint64_t *word)
{
	struct pool_hdr *h = w->h;

	for (unsigned k = 0; k < SHMQ_POOL_MAX_JOBS / 64; k++) {
		/* INJECT: pairs with shmq__pool_inject's seq_cst fetch_or, after
		 * its release store of the word */
		uint64_t m = shmq__load_acquire(&h->pending[k]);

		while (m) {
			unsigned b = (unsigned)__builtin_ctzll(m);
			struct pool_job *job = &h->jobs[k * 64 + b];

			m &= m - 1;
			/* clear first, ordered before the exchange: pairs with
			 * shmq__pool_inject's seq_cst fetch_or, so a word
			 * injected after this is seen either by our exchange or
			 * by the next scan (Protocol INJECT) */
			shmq__fetch_and_acq_rel(&h->pending[k], ~(1ull << b));
			/* INJECT, acquire: pairs with shmq__pool_inject's
			 * release store of the word, after the job's fields */
			*word = shmq__exchange_acq_rel(&job->inject, 0);
			if (*word)
				return true;
		}
	}
	return false;
}

static bool steal_any(struct worker *w, uint64_t *word)
{
	unsigned n = w->nworkers, start;

	if (n < 2)
		return false;
	start = (unsigned)(rng_next(w) % n);
	steal_window_open(w);
	for (unsigned i = 0; i < n; i++) {
		unsigned v = (start + i) % n;
		struct shmq__deque *dq;
		int rc;

		if (v == w->self || !(dq = victim_deque(w, v)))
			continue;
		do
			rc = shmq__deque_steal(dq, word);
		while (rc == -EBUSY);
		if (rc == 0) {
			w->steals++;
			/* relaxed: statistics only, read relaxed by
			 * shmq_pool_worker_stats and shmq__pool_describe */
			shmq__store_relaxed(&w->slot->steals, w->steals);
			/* a SUB word still points into the victim's area:
			 * sub_run_stolen closes the window after its claim */
			if ((*word >> 62) != WORD_SUB)
				steal_window_close(w);
			return true;
		}
		/* ask the victim to publish its private frames; relaxed: a
		 * hint it reads (relaxed) at its next spawn or sync */
		if (rc == -EAGAIN && !shmq__load_relaxed(&w->h->slots[v].want))
			shmq__store_relaxed(&w->h->slots[v].want, 1);
	}
	steal_window_close(w);
	return false;
}

static bool work_find(struct worker *w, uint64_t *word)
{
	return inject_take(w, word) || steal_any(w, word);
}

static bool worker_should_exit(struct worker *w)
{
	/* POOL_STATE: pairs with the creator's seq_cst stores of state
	 * (pool_join, shmq_pool_terminate) */
	return shmq__load_acquire(&w->h->state) >= POOL_EXIT;
}

/*
 * The idle spin adapts, as an adaptive mutex's does: one that found work
 * doubles the next (up to IDLE_SPIN_NS: stealing in a busy fork-join or map),
 * one that found none halves it, below IDLE_SPIN_MIN_NS to nothing: only the
 * look made after registering as a sleeper, for a pool that only gets work
 * now and then.
 * There a spin never pays: the next job comes with a futex wake anyway, and
 * on 2 shared cores the spinning worker takes CPU from the caller it has just
 * woken and from everyone else (IDLE_SPIN_NS of steal attempts and some ten
 * sched_yield calls per idle period).  Work that woke us counts as found
 * when it came within IDLE_SPIN_NS of our going to sleep (tasks back to back:
 * the spin grows again), and not otherwise; so does work found by the look
 * after registering.
 */
#define IDLE_SPIN_PROBES 32u

static void idle_spin_found(struct worker *w)
{
	w->spin_ns = w->spin_ns < IDLE_SPIN_MIN_NS ? IDLE_SPIN_MIN_NS : 2 * w->spin_ns;
	if (w->spin_ns > IDLE_SPIN_NS)
		w->spin_ns = IDLE_SPIN_NS;
}

static void idle_spin_missed(struct worker *w)
{
	w->spin_ns /= 2;
	if (w->spin_ns < IDLE_SPIN_MIN_NS)
		w->spin_ns = 0;
}

/* Does the pool's creator still run, attached to the region?  Asked at the
 * end of each idle slice.  The region's process table says whether its id
 * is attached, and whether the process it names lives: a read of /proc at
 * the first look (some 100 µs of CPU here), a pidfd's fstat and poll after
 * it (core/ptab.c).  The creator spawned us, though: while getppid(2) still
 * names it, it runs - a process's children go to a reaper the moment it
 * exits - and the table's word alone says whether it is still attached,
 * with no /proc read at all and no descriptor the program could close.  A
 * parent that is not the creator (never, unless it died before we looked)
 * leaves the whole question to the table. */
static bool worker_creator_alive(struct worker *w)
{
	/* relaxed: creator_id is immutable after create, published by our spawn */
	uint32_t id = shmq__load_relaxed(&w->h->creator_id);

	if (w->parent > 0 && getppid() == w->parent)
		return shmq__region_id_listed(w->r, id) == 1;
	return shmq__region_id_alive(w->r, id) == 1;
}

/* Idle: steal for a while, then sleep on the idle futex.  1 with a word, 0
 * to look again, -1 to exit. */
static int worker_idle(struct worker *w, uint64_t *word)
{
	struct pool_hdr *h = w->h;
	int64_t until = w->spin_ns ? shmq_now_ns() + w->spin_ns : 0, slept;
	uint32_t seq, last;
	int rc = 0;
	bool found;

	worker_count_flush(w);

	/* No spin at all once it has shrunk to nothing: the look after we
	 * registered below is the one that counts, and each look of a spin is
	 * a steal window on every victim - after the task of a round trip, on
	 * the CPU its caller may be waiting for. */
	for (unsigned i = 1; w->spin_ns; i++) {
		if (work_find(w, word)) {
			idle_spin_found(w);
			return 1;
		}
		if (worker_should_exit(w))
			return -1;
		if (i % IDLE_SPIN_PROBES == 0) {
			if (shmq_now_ns() >= until)
				break;
			sched_yield(); /* 2 cores shared: let the owner run */
		} else {
			shmq__cpu_relax();
		}
	}
	idle_spin_missed(w);
	worker_cpu_unpublish(w);
	seq = shmq__load_seq_cst(&h->work_seq);
	shmq__fetch_add_seq_cst(&h->idle_sleepers, 1);
	/* relaxed: a hint for shmq__pool_idle_wake's load, which it only uses
	 * to pick a futex bit (Protocol IDLE_WAKE) */
	shmq__store_relaxed(&h->last_sleeper, w->self + 1);
	/* a weak wake still marked pending went to another worker (or to
	 * nobody): let the next spawn wake us */
	shmq__store_release(&h->wake_pending, 0); /* IDLE_WAKE: pairs with shmq__pool_idle_wake's exchange */
	/* after registering: a push we missed is seen here, or its pusher
	 * saw us (strong wakes) */
	found = work_find(w, word);
	slept = shmq_now_ns();
	if (!found && !worker_should_exit(w))
		rc = shmq__futex_wait_bits(&h->work_seq, seq, slept + IDLE_SLICE_NS,
					   worker_wake_bit(w->self));
	shmq__fetch_sub_seq_cst(&h->idle_sleepers, 1);
	/* relaxed: the hint again, for the same load; a sleeper that named
	 * itself since keeps its name */
	last = w->self + 1;
	(void)shmq__cas_relaxed(&h->last_sleeper, &last, 0);
	shmq__store_release(&h->wake_pending, 0); /* IDLE_WAKE: pairs with shmq__pool_idle_wake's exchange */
	if (found) {
		/* work within our look: as a spin would have found it */
		idle_spin_found(w);
		return 1;
	}
	/* woken with work: a longer spin would have caught it if it came
	 * within IDLE_SPIN_NS (work back to back: grow again) */
	if (rc == 0 && !worker_should_exit(w) && work_find(w, word)) {
		if (shmq_now_ns() - slept < IDLE_SPIN_NS)
			idle_spin_found(w);
		return 1;
	}
	if (rc == -ETIMEDOUT && !worker_creator_alive(w))
		return -1; /* the pool's creator is gone: nobody will use us */
	return 0;
}

/* max_tasks_per_worker: done after that many tasks.  Checked between words,
 * with no task running and every group synced; RANGE words left on our deque
 * are injected again by the creator when it replaces us (jobs_recover), as
 * for any worker that exits. */
static bool worker_retire_due(const struct worker *w)
{
	return w->tasks_quota && w->tasks >= w->tasks_quota;
}

static void worker_loop(struct worker *w)
{
	uint64_t word = 0;

	for (;;) {
		int rc;

		if (SHMQ__UNLIKELY(worker_retire_due(w))) {
			worker_count_flush(w);
			return;
		}
		if (shmq__deque_take(&w->dq, &word) == 0) {
			word_run(w, word);
			continue;
		}
		if (worker_should_exit(w))
			return;
		rc = worker_idle(w, &word);
		if (rc < 0)
			return;
		if (rc > 0)
			word_run(w, word);
	}
}

/* ---- fork-join ---- */

/* Is id the owner id of one of the pool's slots? */
static bool id_is_slot_owner(struct worker *w, uint32_t id)
{
	for (unsigned i = 0; i < w->nworkers; i++)
		/* pairs with worker_init's release store of id */
		if (shmq__load_acquire(&w->h->slots[i].id) == id)
			return true;
	return false;
}

/* Wait for frame k, stolen from us; help meanwhile. */
static int frame_wait(struct worker *w, unsigned k)
{
	struct pool_frame *f = &w->frames[k];
	uint32_t tag = w->fp[k].tag;
	int64_t check_at = shmq_now_ns() + FRAME_CHECK_NS;
	unsigned idle = 0;
	uint64_t word = 0;

	for (;;) {
		/* FRAME: pairs with sub_run_stolen's seq_cst exchange to DONE */
		uint32_t s = shmq__load_acquire(&f->state);

		if (s == frame_done(tag)) {
			const struct frame_priv *fp = &w->fp[k];

			/* The sizes we spawned with decide the copy; the
			 * frame's, which anyone with the region can write, must
			 * only agree.  relaxed: ordered by the acquire above. */
			if (shmq__load_relaxed(&f->in_size) != fp->in_size ||
			    shmq__load_relaxed(&f->out_size) != fp->out_size)
				return -EBADMSG;
			if (fp->out_size)
				memcpy(fp->out, f->data + frame_in_span(fp->in_size), fp->out_size);
			return shmq__load_relaxed(&f->status); /* ordered by the acquire above */
		}
		if (s == frame_pending(tag)) {
			/* a thief took the word but has not claimed the frame:
			 * claim it ourselves; pairs with sub_run_stolen's CAS of
			 * the same PENDING state, which then fails (Protocol
			 * FRAME) */
			if (shmq__cas_acq_rel(&f->state, &s, frame_running(w->id)))
				return task_exec(w, w->fp[k].fn, f->data, w->fp[k].out);
			continue;
		}
		if (!(s & 1u) || shmq__region_id_valid(w->r, s >> 1))
			return -EBADMSG; /* no state we write, or a thief no region has */
		if (w->depth < HELP_DEPTH_MAX && work_find(w, &word)) {
			word_run(w, word);
			idle = 0;
			continue;
		}
		if (++idle < 64) {
			shmq__cpu_relax();
			continue;
		}
		shmq__wait_word(&f->state, s, &f->sleepers, shmq_now_ns() + FRAME_NAP_NS, 0);
		if (shmq_now_ns() >= check_at) {
			check_at = shmq_now_ns() + FRAME_CHECK_NS;
			/* the dead thief's claim, taken over: pairs with its
			 * claim CAS in sub_run_stolen (Protocol FRAME) */
			if (shmq__region_id_alive(w->r, s >> 1) == 0 &&
			    shmq__cas_acq_rel(&f->state, &s, frame_running(w->id)))
				return task_exec(w, w->fp[k].fn, f->data, w->fp[k].out);
			/* a live process that is none of the pool's workers
			 * would never store DONE: a forged claim (re-checked
			 * alive after the scan, so that a thief that died and
			 * was replaced meanwhile is taken over next time) */
			if (!id_is_slot_owner(w, s >> 1) && shmq__region_id_alive(w->r, s >> 1) == 1)
				return -EBADMSG;
		}
	}
}

static inline __attribute__((always_inline)) int frame_join(struct worker *w, unsigned k)
{
	uint64_t want = word_sub(w->frames_off + (uint64_t)k * sizeof(struct pool_frame), w->fp[k].tag);
	uint64_t word = 0;

	while (shmq__deque_take(&w->dq, &word) == 0) {
		if (SHMQ__LIKELY(word == want))
			return task_exec(w, w->fp[k].fn, w->frames[k].data, w->fp[k].out);
		word_run(w, word); /* not ours (cannot happen unless corrupted): run it */
	}
	return frame_wait(w, k);
}

/* Run private frame k (never pushed: no thief can have it) in place.  It is
 * popped first, so that spawns inside it may reuse its slot; its input is
 * copied out of the slot for that reason. */
static inline __attribute__((always_inline)) int frame_run_private(struct worker *w, unsigned k)
{
	struct frame_priv fp = w->fp[k];
	uint8_t in[POOL_FRAME_DATA];

	arg_copy(in, w->frames[k].data, fp.in_size);
	w->sp = k;
	return task_exec(w, fp.fn, fp.in_size ? in : NULL, fp.out);
}

static void frames_publish(struct worker *w);

int shmq__pool_frames_sync(struct worker *w, unsigned base)
{
	int err = 0;

	while (w->sp > base) {
		unsigned k = w->sp - 1;
		int st;

		/* a thief waits: let it take the older ones.  relaxed: a
		 * hint, see steal_any */
		if (k >= w->pub && shmq__load_relaxed(&w->slot->want))
			frames_publish(w);
		if (k >= w->pub) {
			st = frame_run_private(w, k);
		} else {
			st = frame_join(w, k);
			w->sp = k;
			w->pub = k;
		}
		if (st)
			err = st; /* the last one kept is the earliest spawn's */
	}
	return err;
}

/* Push the private frames, oldest first, so that thieves can take them.  A
 * frame that does not fit the deque stays private (it runs at its sync). */
static void frames_publish(struct worker *w)
{
	while (w->pub < w->sp) {
		unsigned k = w->pub;
		uint64_t off = w->frames_off + (uint64_t)k * sizeof(struct pool_frame);

		if (shmq__deque_push(&w->dq, word_sub(off, w->fp[k].tag)))
			break;
		w->pub = k + 1;
	}
	/* relaxed: a hint, see steal_any; a thief's later ask may be lost
	 * here, it asks again at its next failed steal */
	if (shmq__load_relaxed(&w->slot->want))
		shmq__store_relaxed(&w->slot->want, 0);
	if (shmq__pool_idle_wake(w->h, false, 1) > 0)
		worker_woke_peer();
}

static int spawn_lookup(struct worker *w, const char *task)
{
	if (SHMQ__LIKELY(task == w->cache_name && w->cache_ver == w->tt.version))
		return w->cache_idx;
	w->cache_idx = shmq__pool_task_lookup(&w->tt, task);
	w->cache_name = w->cache_idx >= 0 ? task : NULL;
	w->cache_fn = w->cache_idx >= 0 ? task_fn(&w->tt, w->cache_idx) : NULL;
	w->cache_ver = w->tt.version;
	return w->cache_idx;
}

static int spawn_now(struct worker *w, struct shmq_pool_group *g, shmq_task_fn fn,
		     const void *in, void *out)
{
	int st = task_exec(w, fn, in, out);

	if (st && !g->err)
		g->err = st;
	return 0;
}

SHMQ_API int shmq_pool_spawn(struct shmq_pool_group *g, const char *task, const void *in,
			     size_t in_size, void *out, size_t out_size)
{
	struct worker *w = worker_here(false);
	struct pool_frame *f;
	shmq_task_fn fn;
	unsigned k;
	int idx;

	if (!w || w->depth == 0)
		return -EPERM;
	if (!g || (in_size && !in) || (out_size && !out))
		return -EINVAL;
	if (in_size > POOL_FRAME_DATA || frame_in_span((uint32_t)in_size) + out_size > POOL_FRAME_DATA)
		return -EMSGSIZE;
	idx = spawn_lookup(w, task);
	if (idx < 0)
		return idx;
	fn = w->cache_fn;
	if (g->n == 0)
		g->base = w->sp;
	else if (g->base + g->n != w->sp)
		return -EINVAL;
	k = w->sp;
	if (k >= POOL_FRAMES)
		return spawn_now(w, g, fn, in, out);
	f = &w->frames[k];
	w->tag = (w->tag + 1) & TAG_MASK;
	w->fp[k].tag = w->tag;
	w->fp[k].out = out;
	w->fp[k].fn = fn;
	w->fp[k].in_size = (uint32_t)in_size;
	w->fp[k].out_size = (uint32_t)out_size;
	/* FRAME, relaxed: published with the frame by the push's release
	 * store, which a thief's steal acquires */
	shmq__store_relaxed(&f->task_idx, (uint32_t)idx);
	shmq__store_relaxed(&f->task_hash, task_hash(&w->tt, idx));
	shmq__store_relaxed(&f->in_size, (uint16_t)in_size);
	shmq__store_relaxed(&f->out_size, (uint16_t)out_size);
	arg_copy(f->data, in, in_size);
	/* relaxed: published with the frame by the push's release store
	 * (shmq__deque_push in frames_publish) */
	shmq__store_relaxed(&f->state, frame_pending(w->tag));
	w->sp = k + 1;
	g->n++;
	/* The frame stays private (no atomic operation at its sync) unless a
	 * thief asked for work or our deque is empty: then every private
	 * frame is pushed, so there is always something to steal.
	 * relaxed: want is a hint, see steal_any. */
	if (shmq__load_relaxed(&w->slot->want) ||
	    shmq__deque_maybe_empty(&w->dq))
		frames_publish(w);
	return 0;
}

SHMQ_API int shmq_pool_sync(struct shmq_pool_group *g)
{
	struct worker *w = worker_here(false);
	int err, e;

	if (!w || w->depth == 0)
		return -EPERM;
	if (!g)
		return -EINVAL;
	if (g->n && g->base + g->n != w->sp)
		return -EINVAL;
	/* the common case of one private subtask: run it here.  relaxed:
	 * want is a hint, see steal_any */
	if (g->n == 1 && g->base >= w->pub && !g->err &&
	    !shmq__load_relaxed(&w->slot->want)) {
		g->n = 0;
		return frame_run_private(w, g->base);
	}
	err = g->n ? shmq__pool_frames_sync(w, g->base) : 0;
	e = g->err ? g->err : err;
	g->n = 0;
	g->err = 0;
	return e;
}

SHMQ_API int shmq_pool_self(void)
{
	struct worker *w = worker_here(true);

	return w ? (int)w->self : -EPERM;
}

/* ---- the worker's entry ---- */

static void worker_fini(struct worker *w)
{
	shmq__free(w->victims, w->nworkers * sizeof(*w->victims));
	shmq__free(w->fp, POOL_FRAMES * sizeof(*w->fp));
	shmq__pool_task_table_free(&w->tt);
}

/* Run the initializer task named init (fn(NULL, NULL)): 0 or its status
 * (-ENOENT when this program lacks it). */
static int worker_initializer(struct worker *w, const char *init)
{
	int idx = shmq__pool_task_lookup(&w->tt, init);
	shmq_task_fn fn = idx >= 0 ? task_fn(&w->tt, idx) : NULL;
	int rc;

	if (!fn)
		return idx < 0 ? idx : -ENOENT;
	rc = fn(NULL, NULL);
	worker_forked_check(w);
	return rc;
}

static int worker_init(struct worker *w, shmq_region *r, const struct worker_arg *a)
{
	struct pool_hdr *h = shmq__region_ptr(r, a->pool_off, sizeof(*h));
	uint64_t area_off;
	uint8_t *area;

	/* relaxed: the geometry is immutable after create, published by our
	 * spawn (pool_obj_init) */
	if (!h || shmq__load_relaxed(&h->magic) != POOL_MAGIC ||
	    shmq__load_relaxed(&h->version) != POOL_VERSION)
		return -EBADMSG;
	w->nworkers = shmq__load_relaxed(&h->nworkers);
	if (w->nworkers == 0 || w->nworkers > SHMQ_POOL_MAX_WORKERS || a->slot >= w->nworkers ||
	    !shmq__region_ptr(r, a->pool_off, pool_hdr_size(w->nworkers)))
		return -EBADMSG;
	w->r = r;
	w->h = h;
	w->self = a->slot;
	w->slot = &h->slots[a->slot];
	/* SLOT_ID: pairs with shmq__pool_worker_start's seq_cst store of gen */
	if (shmq__load_acquire(&w->slot->gen) != a->gen)
		return -ESTALE;
	/* held until we die, so that the kernel marks it then (Protocol
	 * LIFE); a trylock: a forged lock must not block us, and one we
	 * cannot take only costs the creator a poll per look */
	if (pthread_mutex_trylock(&w->slot->life.m) == EOWNERDEAD)
		(void)pthread_mutex_consistent(&w->slot->life.m);
	/* relaxed: ordered by the acquire of gen above; loaded once, so that
	 * the frames we address and the words we push agree */
	area_off = shmq__load_relaxed(&w->slot->area_off);
	w->frames_off = area_off + shmq__deque_footprint(POOL_DEQUE_CAP);
	area = shmq__region_ptr(r, area_off, pool_area_size());
	if (!area || shmq__deque_attach(&w->dq, area, shmq__deque_footprint(POOL_DEQUE_CAP)))
		return -EBADMSG;
	w->frames = (struct pool_frame *)(area + shmq__deque_footprint(POOL_DEQUE_CAP));
	w->victims = shmq__calloc(w->nworkers, sizeof(*w->victims));
	w->fp = shmq__calloc(POOL_FRAMES, sizeof(*w->fp));
	if (!w->victims || !w->fp || shmq__pool_task_table_build(&w->tt))
		return -ENOMEM;
	w->id = shmq__region_self(r);
	w->parent = a->creator_pid > 0 && getppid() == a->creator_pid ? a->creator_pid : 0;
	w->rng = ((uint64_t)getpid() << 32) ^ (uint64_t)shmq_now_ns() ^ 0x9e3779b97f4a7c15ull;
	w->tag = (uint32_t)(rng_next(w) & TAG_MASK);
	w->cache_idx = -ENOENT;
	w->spin_ns = IDLE_SPIN_NS;
	/* relaxed: counted per slot, by its previous workers, which exited
	 * before the creator spawned us */
	w->tasks = shmq__load_relaxed(&w->slot->tasks);
	w->steals = shmq__load_relaxed(&w->slot->steals);
	/* relaxed: even, the creator evened it before it spawned us
	 * (shmq__pool_worker_start) */
	w->steal_seq = shmq__load_relaxed(&w->slot->steal_seq);
	if (a->max_tasks)
		w->tasks_quota = w->tasks + a->max_tasks;
	/* the initializer runs before we count as started: a worker that
	 * fails it never takes work */
	if (a->init[0]) {
		int st = worker_initializer(w, a->init);

		if (st) {
			/* relaxed: the creator reads it after it reaped us
			 * (shmq__pool_supervise), which orders it */
			shmq__store_relaxed(&w->slot->init_status, st);
			return POOL_EXIT_INIT;
		}
	}
	/* SLOT_ID: pairs with the creator's acquire loads of id
	 * (id_is_live_worker, shmq__pool_supervise) */
	shmq__store_release(&w->slot->id, w->id);
	return 0;
}

/* We leave on purpose: say so while the region is still mapped.  The
 * kernel will not mark our life lock at the exit (shmq_dispatch unmaps the
 * region first), and the creator's looks would take us for running until
 * a full look (Protocol LIFE). */
static void worker_leave(struct worker *w)
{
	if (w->slot)
		/* relaxed: Protocol LIFE, a hint; the creator's poll of our
		 * pidfd decides whether we are gone */
		shmq__store_relaxed(&w->slot->leaving, 1u);
}

static int pool_worker_main(shmq_region *r, const void *arg, size_t len)
{
	struct worker w;
	struct worker_arg a;
	int rc;

	if (!r || !arg || len != sizeof(a))
		return 2;
	memcpy(&a, arg, sizeof(a));
	memset(&w, 0, sizeof(w));
	w.pid = shmq__self_pid();
	w.thread = pthread_self();
	a.init[sizeof(a.init) - 1] = '\0';
	rc = worker_init(&w, r, &a);
	if (rc == POOL_EXIT_INIT) {
		worker_leave(&w);
		worker_fini(&w);
		return POOL_EXIT_INIT;
	}
	if (rc == 0) {
		/* relaxed: see worker_here */
		shmq__store_relaxed(&pool_current, &w);
		worker_loop(&w);
		/* relaxed: see worker_here */
		shmq__store_relaxed(&pool_current, (struct worker *)NULL);
	}
	worker_leave(&w);
	worker_fini(&w);
	return rc == 0 || rc == -ESTALE ? 0 : 3;
}

static struct shmq_entry pool_worker_entry = { POOL_WORKER_ENTRY, pool_worker_main, NULL };

__attribute__((constructor)) static void pool_worker_register(void)
{
	shmq_entry_register(&pool_worker_entry);
}

