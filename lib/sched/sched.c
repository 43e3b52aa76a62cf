/* SPDX-License-Identifier: MIT */
/*
 * The scheduler (seed 12-8): Python's sched.scheduler as an event loop.
 *
 * Event handles: a shmq_event * is not a pointer to memory; it packs the
 * event's slot index and the slot's generation (see sched/sched_heap_int.h).  The
 * scheduler owns all event storage.  A handle is valid from enter until the
 * event runs (one-shot) or is cancelled; after that every call given it
 * returns -ENOENT, and the handle never names a later event that reuses the
 * slot.  Handles are meaningless after shmq_sched_destroy.
 *
 * The loop (shmq_sched_run) runs in the caller's thread: it runs every due
 * event and ready watch without the mutex held, then stages the timer for
 * the head of the heap and the idle watches, and sleeps in one kernel call
 * (io_uring_enter, or epoll_wait in the fallback).  Another thread that
 * enters an event earlier than the one the loop sleeps for writes an eventfd
 * the loop also waits on.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <shmq.h>

#include "core/alloc_int.h"
#include "core/atomic_int.h"
#include "core/cancel_int.h"
#include "core/compiler_int.h"
#include "core/fd_int.h"
#include "core/fork_int.h"
#include "core/wait_int.h"
#include "sched/sched_int.h"

#define SPIN_DEFAULT_NS 200000 /* precision mode: at most 200 us of spinning per deadline */
#define SPIN_FLOOR_NS   10000  /* ... and at least 10 us of margin */
#define SPIN_SLICE_NS   2000   /* ... looking at the heap and the watches every 2 us */
/* Armed queue/pipe watches are re-checked this often even if their word does
 * not change: a peer that died cannot announce it (pipe: readable once the
 * peer is gone). */
#define WATCH_SLICE_NS  (100 * 1000000LL)
/* A blocking run that only runs due events looks at its watches at least
 * this often (loop_watch_turn): a watch is never starved by events. */
#define WATCH_TURN_NS   (10 * 1000000LL)

static inline shmq_event *handle_to_event(uint64_t h)
{
	return (shmq_event *)(uintptr_t)h;
}

static inline uint64_t event_to_handle(const shmq_event *ev)
{
	return (uint64_t)(uintptr_t)ev;
}

void shmq__sched_kick(shmq_sched *s)
{
	uint64_t one = 1;
	int cs;

	/* An eventfd write only fails if the counter would overflow, which
	 * leaves it readable anyway: the loop wakes either way.  Not a
	 * cancellation point (core/cancel_int.h): wake_sent is set already,
	 * and a caller cancelled here would leave the loop asleep past every
	 * later entry. */
	cs = shmq__cancel_off();
	while (write(s->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
	shmq__cancel_restore(cs);
}

/* Under mu: wake the loop if it sleeps past when (SHMQ__SCHED_NEVER: always). */
static bool sched_need_kick(shmq_sched *s, int64_t when)
{
	if (!s->waiting || s->wake_sent)
		return false;
	if (when != SHMQ__SCHED_NEVER && when >= s->wait_head)
		return false;
	s->wake_sent = true;
	return true;
}

/*
 * Under mu, after a cancel or an unwatch: wake a loop that sleeps for what is
 * gone.  Its timer is armed for the old head (wait_head) and, with nothing
 * queued, only its watches can end the sleep: if the head now runs later or
 * nothing is left, the loop must re-arm for the new head or return, not
 * sleep out a deadline (or a process) that no longer concerns it.
 */
static bool sched_need_kick_gone(shmq_sched *s)
{
	const struct shmq__hent *head = shmq__heap_head(&s->heap);

	if (!s->waiting || s->wake_sent)
		return false;
	if (head && head->when <= s->wait_head)
		return false; /* the head it sleeps for (or an earlier one) is still there */
	if (!head && s->wait_head == SHMQ__SCHED_NEVER && s->nwatches)
		return false; /* it slept for watches only, and some are left */
	s->wake_sent = true;
	return true;
}

/* ---- creation ---- */

static const struct shmq__sched_ops *sched_pick(const struct shmq_sched_opts *o, bool *strict)
{
	const char *env;

	*strict = true;
	if (o && o->backend == SHMQ_SCHED_FALLBACK)
		return &shmq__sched_poll_ops;
	if (o && o->backend == SHMQ_SCHED_IO_URING)
		return &shmq__sched_uring_ops;
	env = getenv("SHMQ_SCHED_BACKEND");
	if (env && strcasecmp(env, "fallback") == 0)
		return &shmq__sched_poll_ops;
	*strict = env && strcasecmp(env, "io_uring") == 0;
	return &shmq__sched_uring_ops;
}

static int sched_opts_check(const struct shmq_sched_opts *o)
{
	if (!o)
		return 0;
	if (o->backend > SHMQ_SCHED_FALLBACK || o->spin_ns < 0 || o->reserved0)
		return -EINVAL;
	if (o->flags & ~(SHMQ_SCHED_PRECISE | SHMQ_SCHED_NO_FUTEX_OP | SHMQ_SCHED_NO_WAITID))
		return -EINVAL;
	for (size_t i = 0; i < SHMQ__ARRAY_SIZE(o->reserved); i++)
		if (o->reserved[i])
			return -EINVAL;
	return 0;
}

static int sched_backend_init(shmq_sched *s, const struct shmq_sched_opts *o)
{
	bool strict;
	int rc;

	s->ops = sched_pick(o, &strict);
	rc = s->ops->init(s, o);
	if (rc < 0 && !strict && s->ops == &shmq__sched_uring_ops) {
		s->ops = &shmq__sched_poll_ops;
		rc = s->ops->init(s, o);
	}
	return rc;
}

SHMQ_API int shmq_sched_create(const struct shmq_sched_opts *o, shmq_sched **out)
{
	shmq_sched *s;
	int rc;

	if (!out)
		return -EINVAL;
	if ((rc = sched_opts_check(o)) < 0)
		return rc;
	s = shmq__calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->pid = shmq__self_pid();
	shmq__heap_init(&s->heap);
	s->flags = o ? o->flags : 0;
	s->spin_max = o && o->spin_ns ? o->spin_ns : SPIN_DEFAULT_NS;
	s->lat_mean = 50000; /* a first guess; loop_learn corrects it */
	s->lat_dev = 10000;
	s->wake_fd = shmq__fd_high(eventfd(0, EFD_CLOEXEC)); /* never at 0-2 (core/fd_int.h) */
	if (s->wake_fd < 0) {
		rc = -errno;
		goto fail_free;
	}
	if ((rc = -pthread_mutex_init(&s->mu, NULL)) < 0)
		goto fail_fd;
	if ((rc = sched_backend_init(s, o)) < 0)
		goto fail_mu;
	*out = s;
	return 0;
fail_mu:
	pthread_mutex_destroy(&s->mu);
fail_fd:
	close(s->wake_fd);
fail_free:
	shmq__free(s, sizeof(*s));
	return rc;
}

SHMQ_API const char *shmq_sched_backend(shmq_sched *s)
{
	return s ? s->ops->name : "none";
}

/* ---- watches: list management ---- */

/* Word watches wait on the helper thread, not in the kernel (the fallback,
 * or io_uring without IORING_OP_FUTEX_WAIT).  Under mu. */
static bool sched_words_on_helper(const shmq_sched *s)
{
	return !s->ops->arm_word || (s->flags & SHMQ_SCHED_NO_FUTEX_OP);
}

/* Hand the helper thread (sched/ready_int.h) the armed word watches it
 * waits on in the loop's stead.  Under mu.  It takes SHMQ__READY_HELPER_MAX,
 * as many as watch_add lets in while words wait on it; more are armed only
 * when io_uring's futex op failed at run time, and those wait for the
 * liveness re-check (WATCH_SLICE_NS) instead. */
static void sched_helper_sync(shmq_sched *s)
{
	struct shmq__ready_word v[SHMQ__READY_HELPER_MAX];
	unsigned n = 0;

	for (struct shmq__sched_watch *w = s->watches; w; w = w->next) {
		if (w->dead || w->kind != SHMQ__WATCH_WORD || w->state != SHMQ__WS_ARMED ||
		    w->op_pending)
			continue;
		if (n == SHMQ__READY_HELPER_MAX)
			break;
		v[n].word = w->w.word;
		v[n].expected = w->expected;
		n++;
	}
	(void)shmq__ready_helper_set(s->helper, v, n); /* n is within bounds */
	s->watches_dirty = false;
}

static void watch_free(struct shmq__sched_watch *w)
{
	shmq__free(w, sizeof(*w));
}

/* Join w's word's sleepers (the Protocol of core/watch_int.h): from now on
 * every publish changes the word and wakes.  Publishers that read the count
 * without a fence (pipes' and queues' rings) get their half of the Dekker
 * pair here; a refusal leaves those publishers on seq_cst (their
 * registration failed too). */
static void watch_count(struct shmq__sched_watch *w)
{
	if (w->counted)
		return;
	shmq__fetch_add_seq_cst(w->w.sleepers, 1);
	w->counted = true;
	(void)shmq__watch_fence(&w->w);
}

static void watch_uncount(struct shmq__sched_watch *w)
{
	if (!w->counted)
		return;
	shmq__fetch_sub_seq_cst(w->w.sleepers, 1);
	w->counted = false;
}

/* Mark w unwatched; its memory goes when no kernel operation refers to it. */
static void watch_kill(shmq_sched *s, struct shmq__sched_watch *w)
{
	w->dead = true;
	s->nwatches--;
	if (w->kind == SHMQ__WATCH_WORD) {
		watch_uncount(w);
		if (w->state == SHMQ__WS_ARMED && !w->op_pending)
			s->watches_dirty = true;
	}
}

static int watch_add(shmq_sched *s, struct shmq__sched_watch *w)
{
	unsigned words = 0;
	bool kick;

	pthread_mutex_lock(&s->mu);
	for (struct shmq__sched_watch *x = s->watches; x; x = x->next) {
		if (!x->dead && x->obj == w->obj) {
			pthread_mutex_unlock(&s->mu);
			return -EEXIST;
		}
		words += !x->dead && x->kind == SHMQ__WATCH_WORD;
	}
	if (w->kind == SHMQ__WATCH_WORD && words >= SHMQ__READY_HELPER_MAX &&
	    sched_words_on_helper(s)) {
		pthread_mutex_unlock(&s->mu);
		return -ENOSPC; /* more than the helper's futex_waitv can wait on */
	}
	w->next = s->watches;
	s->watches = w;
	s->nwatches++;
	kick = sched_need_kick(s, SHMQ__SCHED_NEVER);
	pthread_mutex_unlock(&s->mu);
	if (kick)
		shmq__sched_kick(s);
	return 0;
}

int shmq__sched_watch_word(shmq_sched *s, const void *obj, const struct shmq__watch *ww,
			   bool (*readable)(const void *obj), uint64_t (*progress)(const void *obj),
			   shmq_action_fn fn, void *arg)
{
	return shmq__sched_watch_word_settled(s, obj, ww, readable, progress, NULL, fn, arg);
}

int shmq__sched_watch_word_settled(shmq_sched *s, const void *obj, const struct shmq__watch *ww,
				   bool (*readable)(const void *obj),
				   uint64_t (*progress)(const void *obj),
				   bool (*settle)(const void *obj), shmq_action_fn fn, void *arg)
{
	struct shmq__sched_watch *w;
	int rc;

	if (!s || !obj || !fn || !ww || !ww->word || !ww->sleepers)
		return -EINVAL;
	if (shmq__foreign(s->pid))
		return -EBADF; /* inherited across fork(): the parent's ring */
	w = shmq__calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->kind = SHMQ__WATCH_WORD;
	w->obj = obj;
	w->fn = fn;
	w->arg = arg;
	w->w = *ww;
	w->readable = readable;
	w->settle = settle;
	w->progress = progress;
	w->pidfd = -1;
	if ((rc = watch_add(s, w)) < 0)
		watch_free(w);
	return rc;
}

int shmq__sched_watch_fd(shmq_sched *s, const void *obj, int pidfd, shmq_action_fn fn, void *arg)
{
	struct shmq__sched_watch *w;
	int rc;

	if (!s || !obj || !fn || pidfd < 0)
		return -EINVAL;
	if (shmq__foreign(s->pid))
		return -EBADF; /* inherited across fork(): the parent's ring */
	w = shmq__calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->kind = SHMQ__WATCH_PROC;
	w->obj = obj;
	w->fn = fn;
	w->arg = arg;
	w->pidfd = pidfd;
	if ((rc = watch_add(s, w)) < 0)
		watch_free(w);
	return rc;
}

static void watch_unlink(shmq_sched *s, struct shmq__sched_watch *w);

SHMQ_API int shmq_sched_unwatch(shmq_sched *s, const void *obj)
{
	int rc = -ENOENT;
	bool kick;

	if (!s || !obj)
		return -EINVAL;
	if (shmq__foreign(s->pid))
		return -EBADF; /* inherited across fork(): the parent's ring */
	pthread_mutex_lock(&s->mu);
	for (struct shmq__sched_watch *w = s->watches; w; w = w->next) {
		if (!w->dead && w->obj == obj) {
			watch_kill(s, w);
			/* No run holds it (an action's watch outlives its
			 * action there) and no kernel operation refers to it:
			 * free it now, not at a run that may never come. */
			if (!s->running && !w->op_pending)
				watch_unlink(s, w);
			rc = 0;
			break;
		}
	}
	/* The helper must stop waiting on the word before the caller closes
	 * the object. */
	if (rc == 0 && s->watches_dirty && s->helper)
		sched_helper_sync(s);
	kick = rc == 0 && sched_need_kick_gone(s);
	pthread_mutex_unlock(&s->mu);
	if (kick)
		shmq__sched_kick(s);
	return rc;
}

/* ---- events ---- */

static int sched_push(shmq_sched *s, int64_t when, int prio, shmq_action_fn fn, void *arg,
		      int64_t period, shmq_event **ev)
{
	uint64_t h;
	bool kick;
	int rc;

	if (!s || !fn)
		return -EINVAL;
	if (shmq__foreign(s->pid))
		return -EBADF; /* inherited across fork(): the parent's ring */
	pthread_mutex_lock(&s->mu);
	rc = shmq__heap_push(&s->heap, when, prio, fn, arg, period, &h);
	kick = rc == 0 && sched_need_kick(s, when);
	pthread_mutex_unlock(&s->mu);
	if (kick)
		shmq__sched_kick(s);
	if (rc == 0 && ev)
		*ev = handle_to_event(h);
	return rc;
}

SHMQ_API int shmq_sched_enterabs(shmq_sched *s, int64_t when_ns, int priority, shmq_action_fn fn,
				 void *arg, shmq_event **ev)
{
	return sched_push(s, when_ns, priority, fn, arg, 0, ev);
}

SHMQ_API int shmq_sched_enter(shmq_sched *s, int64_t delay_ns, int priority, shmq_action_fn fn,
			      void *arg, shmq_event **ev)
{
	int64_t now = shmq_now_ns(), when;

	if (__builtin_add_overflow(now, delay_ns, &when))
		when = delay_ns > 0 ? INT64_MAX - 1 : INT64_MIN;
	return sched_push(s, when, priority, fn, arg, 0, ev);
}

SHMQ_API int shmq_sched_enter_periodic(shmq_sched *s, int64_t first_ns, int64_t period_ns,
				       int priority, shmq_action_fn fn, void *arg,
				       shmq_event **ev)
{
	if (period_ns <= 0)
		return -EINVAL;
	return sched_push(s, first_ns, priority, fn, arg, period_ns, ev);
}

SHMQ_API int shmq_sched_cancel(shmq_sched *s, shmq_event *ev)
{
	uint32_t idx;
	bool kick;

	if (!s || !ev)
		return -EINVAL;
	if (shmq__foreign(s->pid))
		return -EBADF; /* inherited across fork(): the parent's ring */
	pthread_mutex_lock(&s->mu);
	idx = shmq__heap_lookup(&s->heap, event_to_handle(ev));
	if (idx != UINT32_MAX)
		shmq__heap_cancel(&s->heap, idx);
	kick = idx != UINT32_MAX && sched_need_kick_gone(s);
	pthread_mutex_unlock(&s->mu);
	if (kick)
		shmq__sched_kick(s);
	return idx != UINT32_MAX ? 0 : -ENOENT;
}

SHMQ_API int shmq_sched_event_info(shmq_sched *s, const shmq_event *ev,
				   struct shmq_event_info *out)
{
	uint32_t idx;
	int rc = -ENOENT;

	if (!s || !ev || !out)
		return -EINVAL;
	if (shmq__foreign(s->pid))
		return -EBADF; /* inherited across fork(): its mutex may be a locked copy */
	pthread_mutex_lock(&s->mu);
	idx = shmq__heap_lookup(&s->heap, event_to_handle(ev));
	if (idx != UINT32_MAX) {
		const struct shmq__hent *e = &s->heap.ent[s->heap.hot[idx].heap_pos];

		out->when_ns = e->when;
		out->priority = e->prio;
		out->fn = s->heap.slots[idx].fn;
		out->arg = s->heap.slots[idx].arg;
		rc = 0;
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

SHMQ_API bool shmq_sched_empty(shmq_sched *s)
{
	bool empty;

	if (!s || shmq__foreign(s->pid))
		return true; /* inherited across fork(): nothing runs here */
	pthread_mutex_lock(&s->mu);
	empty = s->heap.n == 0;
	pthread_mutex_unlock(&s->mu);
	return empty;
}

SHMQ_API size_t shmq_sched_queue(shmq_sched *s, struct shmq_event_info *out, size_t max)
{
	size_t n;

	if (!s || shmq__foreign(s->pid))
		return 0; /* inherited across fork(): nothing runs here */
	pthread_mutex_lock(&s->mu);
	n = shmq__heap_snapshot(&s->heap, out, max);
	pthread_mutex_unlock(&s->mu);
	return n;
}

SHMQ_API int shmq_sched_stop(shmq_sched *s)
{
	bool kick;

	if (!s)
		return -EINVAL;
	if (shmq__foreign(s->pid))
		return -EBADF; /* inherited across fork(): the parent's ring */
	pthread_mutex_lock(&s->mu);
	s->stop_req = true;
	kick = sched_need_kick(s, SHMQ__SCHED_NEVER);
	pthread_mutex_unlock(&s->mu);
	if (kick)
		shmq__sched_kick(s);
	return 0;
}

/* ---- the loop ---- */

/* After an action: false in a child that the action made with fork() and
 * that returned from it instead of calling _exit().  The ring (or the epoll
 * set and timerfd) is its parent's, and a thread of the parent may have held
 * mu at the fork: run() returns -EBADF there at once, touching neither. */
static bool loop_action_returned(const shmq_sched *s)
{
	return !shmq__foreign(s->pid);
}

/* An action ended its thread (pthread_exit, or a cancellation it reached):
 * the run ends with it, and another thread may run s. */
static void loop_action_exited(void *arg)
{
	shmq_sched *s = arg;

	pthread_mutex_lock(&s->mu);
	s->running = false;
	pthread_mutex_unlock(&s->mu);
}

/* Call fn(arg) without mu, with the caller's cancelability (the run's own
 * waits are no cancellation points: see shmq_sched_run). */
static void loop_action(shmq_sched *s, shmq_action_fn fn, void *arg)
{
	int cs;

	pthread_cleanup_push(loop_action_exited, s);
	pthread_setcancelstate(s->run_cancel, &cs);
	fn(arg);
	pthread_setcancelstate(cs, NULL);
	pthread_cleanup_pop(0);
}

/* Run the head event (due at or before now) without mu: false as
 * loop_action_returned, without mu. */
static bool loop_run_head(shmq_sched *s, int64_t now)
{
	shmq_action_fn fn;
	void *arg;
	int64_t when;

	shmq__heap_pop(&s->heap, now, &fn, &arg, &when);
	pthread_mutex_unlock(&s->mu);
	loop_action(s, fn, arg);
	if (!loop_action_returned(s))
		return false;
	pthread_mutex_lock(&s->mu);
	return true;
}

/* Unlink and free w (no kernel operation refers to it any more). */
static void watch_unlink(shmq_sched *s, struct shmq__sched_watch *w)
{
	for (struct shmq__sched_watch **pp = &s->watches; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	watch_free(w);
}

/* Fired already in this non-blocking run (pass; 0 while blocking)? */
static bool watch_fired_in(const struct shmq__sched_watch *w, uint64_t pass)
{
	return pass && w->fired_pass == pass;
}

/* A watch ready again after its action ran in this non-blocking run: the
 * next run takes it. */
static bool loop_watch_deferred(const shmq_sched *s, uint64_t pass)
{
	for (const struct shmq__sched_watch *w = s->watches; w; w = w->next)
		if (!w->dead && w->state == SHMQ__WS_READY && watch_fired_in(w, pass))
			return true;
	return false;
}

/* Run the action of one ready watch, if any, but none that ran in this
 * non-blocking run (pass).  A process watch fires once.  1 when one ran, 0
 * when none was ready, -EBADF as loop_action_returned (without mu). */
static int loop_fire_watch(shmq_sched *s, uint64_t pass)
{
	for (struct shmq__sched_watch *w = s->watches; w; w = w->next) {
		shmq_action_fn fn = w->fn;
		void *arg = w->arg;

		bool is_word = w->kind == SHMQ__WATCH_WORD; /* a process watch may be freed below */
		bool out = false; /* the action ran with the watch counted out */
		uint64_t before = 0;
		uint32_t word = 0;

		if (w->dead || w->state != SHMQ__WS_READY || watch_fired_in(w, pass))
			continue;
		if (!is_word) {
			watch_kill(s, w);
			if (!w->op_pending)
				watch_unlink(s, w);
		} else {
			w->state = SHMQ__WS_IDLE;
			w->fired_pass = pass;
			before = w->progress(w->obj);
			/* seq_cst: as every load of a readiness word (core/watch_int.h) */
			word = shmq__load_seq_cst(w->w.word);
			/* busy: publishers need not wake us (but see took_nothing) */
			out = !w->took_nothing;
			if (out)
				watch_uncount(w);
		}
		pthread_mutex_unlock(&s->mu);
		loop_action(s, fn, arg);
		if (!loop_action_returned(s))
			return -EBADF;
		pthread_mutex_lock(&s->mu);
		/* A word watch is freed only by this thread, under mu (in
		 * loop_arm_watches), so w is still here; but an unwatched object
		 * may be closed already: leave it alone. */
		if (is_word && !w->dead) {
			bool nothing = w->progress(w->obj) == before;

			if (nothing && !out) {
				w->stalled = true;
				w->stall_word = word;
			}
			w->took_nothing = nothing;
		}
		return 1;
	}
	return 0;
}

/* An idle word watch: ready now, or armed to wait for the word to change.
 * We are in the word's sleepers (watch_count), so a publish after the load
 * below changes the word and the wait returns at once.  A stalled watch
 * was counted in since its word was read (took_nothing). */
static int watch_arm_word(shmq_sched *s, struct shmq__sched_watch *w)
{
	watch_count(w);
	/* seq_cst: as every load of a readiness word (core/watch_int.h) */
	w->expected = shmq__load_seq_cst(w->w.word);
	if (w->stalled && w->expected != w->stall_word)
		w->stalled = false; /* something was published since */
	if (!w->stalled && w->readable(w->obj)) {
		w->state = SHMQ__WS_READY;
		return 0;
	}
	w->state = SHMQ__WS_ARMED;
	if (s->ops->arm_word && !(s->flags & SHMQ_SCHED_NO_FUTEX_OP)) {
		int rc = s->ops->arm_word(s, w);

		if (rc < 0 && rc != -EOPNOTSUPP)
			w->state = SHMQ__WS_IDLE; /* not waiting: armed again next time */
		if (rc != -EOPNOTSUPP)
			return rc;
		s->flags |= SHMQ_SCHED_NO_FUTEX_OP;
	}
	s->watches_dirty = true;
	return s->helper ? 0 : shmq__ready_helper_start(s->wake_fd, &s->helper);
}

/* The liveness re-check of an armed word watch: readable although its word
 * did not change (a peer died).  Its wait is cancelled (the completion makes
 * it idle) or, with the helper, it is ready at once. */
static void watch_recheck(shmq_sched *s, struct shmq__sched_watch *w)
{
	w->stalled = false; /* a stalled watch gets one more action per re-check */
	if (!(w->settle && w->settle(w->obj)) && !w->readable(w->obj))
		return;
	if (!w->op_pending) {
		w->state = SHMQ__WS_READY;
		s->watches_dirty = true;
	} else if (!w->recheck_sent) {
		/* a cancel the kernel could not take is sent at the next re-check */
		w->recheck_sent = s->ops->disarm(s, w) >= 0;
	}
}

/* A backend's -errno as run() reports it: -EPERM is -1, a non-blocking
 * run's "no event pending", so a call the kernel refuses (a seccomp filter
 * installed after create) is reported as -EACCES. */
static int backend_err(int rc)
{
	return rc == -EPERM ? -EACCES : rc;
}

/* A non-blocking run (or a watch turn) looks at a word watch that waits on
 * the helper thread itself: the helper may not have been scheduled since
 * the word moved, and the run must not miss what is readable now. */
static void watch_look(shmq_sched *s, struct shmq__sched_watch *w)
{
	if (w->stalled || !w->readable(w->obj))
		return;
	w->state = SHMQ__WS_READY;
	s->watches_dirty = true;
}

/* Stage every idle watch; drop dead ones.  Returns the count now ready (not
 * counting those that ran in this non-blocking run, pass), or -errno. */
static int loop_arm_watches(shmq_sched *s, int64_t now, uint64_t pass)
{
	struct shmq__sched_watch **pp = &s->watches;
	bool recheck = now >= s->word_check_at;
	int ready = 0, rc = 0;

	s->armed_words = 0;

	while (*pp) {
		struct shmq__sched_watch *w = *pp;

		if (w->dead) {
			if (w->op_pending && !w->cancel_sent) {
				int d = s->ops->disarm(s, w);

				w->cancel_sent = d >= 0; /* else: sent by the next iteration */
				if (d > 0)
					w->op_pending = false;
			}
			if (!w->op_pending) {
				*pp = w->next;
				watch_free(w);
				continue;
			}
		} else if (w->state == SHMQ__WS_IDLE) {
			rc = w->kind == SHMQ__WATCH_WORD ? watch_arm_word(s, w)
							 : s->ops->arm_proc(s, w);
			if (rc < 0)
				return backend_err(rc);
		} else if (w->state == SHMQ__WS_ARMED && w->kind == SHMQ__WATCH_WORD) {
			if (recheck)
				watch_recheck(s, w);
			else if (pass && !w->op_pending)
				watch_look(s, w);
		}
		ready += !w->dead && w->state == SHMQ__WS_READY && !watch_fired_in(w, pass);
		s->armed_words += !w->dead && w->kind == SHMQ__WATCH_WORD &&
				  w->state == SHMQ__WS_ARMED;
		pp = &w->next;
	}
	if (recheck)
		s->word_check_at = now + WATCH_SLICE_NS;
	if (s->watches_dirty && s->helper)
		sched_helper_sync(s);
	return ready;
}

/* After reap: a helper-observed change makes every helper-armed word idle. */
static void loop_reap(shmq_sched *s)
{
	s->ops->reap(s);
	if (!s->helper || !shmq__ready_helper_fired(s->helper))
		return;
	for (struct shmq__sched_watch *w = s->watches; w; w = w->next)
		if (w->kind == SHMQ__WATCH_WORD && w->state == SHMQ__WS_ARMED && !w->op_pending)
			w->state = SHMQ__WS_IDLE;
	s->watches_dirty = true;
}

/* How far ahead of a deadline precision mode wakes: the usual wake-up
 * lateness plus twice its usual spread, plus 5 us. */
static int64_t loop_margin(const shmq_sched *s)
{
	int64_t m = s->lat_mean + 2 * s->lat_dev + 5000;

	if (m < SPIN_FLOOR_NS)
		m = SPIN_FLOOR_NS;
	return m > s->spin_max ? s->spin_max : m;
}

/*
 * Precision mode: learn how late the kernel wakes us, as moving averages
 * (weight 1/16) of the lateness and of its deviation.  Samples are clamped
 * to spin_max, so a rare preemption of many milliseconds moves the margin
 * only a little and not for long.
 */
static void loop_learn(shmq_sched *s, int64_t woke)
{
	int64_t lat, dev;

	if (!s->timer_fired || s->timer_target == SHMQ__SCHED_NEVER)
		return;
	s->timer_fired = false;
	lat = woke - s->timer_target;
	if (lat < 0)
		lat = 0;
	if (lat > s->spin_max)
		lat = s->spin_max;
	dev = lat > s->lat_mean ? lat - s->lat_mean : s->lat_mean - lat;
	s->lat_mean += (lat - s->lat_mean) / 16;
	s->lat_dev += (dev - s->lat_dev) / 16;
}

/* Spin (without mu) until when, but for SPIN_SLICE_NS at most: the loop
 * then looks again, so a stop, an earlier event or a ready watch that came
 * meanwhile is seen within a slice, not after the whole margin. */
static void loop_spin(shmq_sched *s, int64_t when)
{
	int64_t until = shmq_now_ns() + SPIN_SLICE_NS;

	if (until > when)
		until = when;
	pthread_mutex_unlock(&s->mu);
	while (shmq_now_ns() < until)
		shmq__cpu_relax();
	pthread_mutex_lock(&s->mu);
}

/* One sleep: stage the timer for head (or none), wait, reap. */
static int loop_sleep(shmq_sched *s, const struct shmq__hent *head, bool block)
{
	int64_t target = SHMQ__SCHED_NEVER;
	int rc;

	if (head) {
		target = head->when;
		if (s->flags & SHMQ_SCHED_PRECISE)
			target -= loop_margin(s);
	}
	if (s->armed_words && s->word_check_at < target)
		target = s->word_check_at;
	if (block && (rc = s->ops->arm_timer(s, target)) < 0)
		return backend_err(rc);
	s->timer_target = target;
	s->wait_head = head ? head->when : SHMQ__SCHED_NEVER;
	s->waiting = block;
	s->wake_sent = false;
	pthread_mutex_unlock(&s->mu);
	rc = s->ops->wait(s, block);
	pthread_mutex_lock(&s->mu);
	s->waiting = false;
	if (rc < 0)
		return backend_err(rc);
	loop_reap(s);
	if (s->flags & SHMQ_SCHED_PRECISE)
		loop_learn(s, shmq_now_ns());
	return 0;
}

/*
 * A turn for the watches while due events keep a blocking run from them (an
 * action that outlasts its periodic event's period, events entered faster
 * than they run): stage every watch, collect what the kernel completed
 * without blocking, look again at the watches a completion left idle (a
 * word's wait that ended says nothing until its condition is checked), and
 * run each ready watch's action once.  0 or -errno.
 */
static int loop_watch_turn(shmq_sched *s, int64_t now, const struct shmq__hent *head)
{
	uint64_t pass = ++s->pass; /* each action at most once in this turn */
	int rc = loop_arm_watches(s, now, pass);

	if (rc < 0)
		return rc;
	if ((rc = loop_sleep(s, head, false)) < 0)
		return rc;
	if ((rc = loop_arm_watches(s, now, pass)) < 0)
		return rc;
	while ((rc = loop_fire_watch(s, pass)) > 0)
		;
	return rc;
}

/*
 * The loop, under mu.  Blocking: until stopped (0), or nothing is left to
 * wait for (0), or a backend error (-errno); -EBADF without mu in a child
 * an action forked (loop_action_returned).  Non-blocking: runs what is due
 * and ready, polls the kernel once, and returns the ns until the next event
 * or -1; 0 when one is due or a watch ready already (for the next run to
 * take).  A non-blocking run takes only events
 * entered before it began (a periodic one's re-arm counts as a new entry)
 * and runs each watch's action at most once, so it returns even when its
 * actions keep work due (an action that enters itself again at once, a
 * period shorter than its action, a watch whose action refills its pipe).
 */
static int64_t loop(shmq_sched *s, bool blocking)
{
	bool polled = false;
	uint64_t pass = blocking ? 0 : ++s->pass; /* 64 bits: never wraps to 0 */
	uint64_t seq_end = s->heap.next_seq;
	int64_t turn_at = shmq_now_ns() + WATCH_TURN_NS; /* blocking: see loop_watch_turn */
	int rc;

	for (;;) {
		const struct shmq__hent *head;
		int64_t now;

		if (s->stop_req) {
			s->stop_req = false;
			return 0;
		}
		now = shmq_now_ns();
		head = shmq__heap_head(&s->heap);
		if (head && head->when <= now &&
		    (blocking || shmq__heap_head_seq(&s->heap) < seq_end)) {
			if (blocking && s->watches && now >= turn_at) {
				turn_at = now + WATCH_TURN_NS;
				if ((rc = loop_watch_turn(s, now, head)) < 0)
					return rc;
				continue; /* a watch's action may have stopped the run */
			}
			if (!loop_run_head(s, now))
				return -EBADF;
			continue;
		}
		turn_at = now + WATCH_TURN_NS; /* the watches get their look below */
		if ((rc = loop_fire_watch(s, pass)) < 0)
			return rc;
		if (rc > 0)
			continue;
		if (head && (s->flags & SHMQ_SCHED_PRECISE) && head->when > now &&
		    head->when - now <= loop_margin(s)) {
			loop_spin(s, head->when);
			continue;
		}
		if ((rc = loop_arm_watches(s, now, pass)) < 0)
			return rc;
		if (rc > 0)
			continue;
		if (!blocking) {
			if (!polled && s->watches) {
				/* collect what completed for the watches, once */
				polled = true;
				if ((rc = loop_sleep(s, head, false)) < 0)
					return rc;
				continue;
			}
			if (loop_watch_deferred(s, pass))
				return 0;
			return !head ? -1 : head->when > now ? head->when - now : 0;
		}
		if (!head && !s->nwatches)
			return 0;
		if ((rc = loop_sleep(s, head, true)) < 0)
			return rc;
	}
}

/*
 * Not a cancellation point: a thread cancelled in the loop's wait (the
 * fallback's epoll_wait) or under mu would leave `running` set, or mu held,
 * for good.  Actions run with the caller's cancelability; one that ends the
 * thread ends the run (loop_action_exited).
 */
SHMQ_API int64_t shmq_sched_run(shmq_sched *s, bool blocking)
{
	int64_t rc;
	int cs;

	if (!s)
		return -EINVAL;
	if (shmq__foreign(s->pid))
		return -EBADF; /* inherited across fork(): the parent's ring */
	cs = shmq__cancel_off(); /* core/cancel_int.h */
	pthread_mutex_lock(&s->mu);
	if (s->running) {
		pthread_mutex_unlock(&s->mu);
		shmq__cancel_restore(cs);
		return -EBUSY;
	}
	s->running = true;
	s->run_cancel = cs;
	rc = loop(s, blocking);
	if (!shmq__foreign(s->pid)) {
		s->running = false;
		pthread_mutex_unlock(&s->mu);
	} else {
		rc = -EBADF; /* a child an action forked: see loop_action_returned */
	}
	shmq__cancel_restore(cs);
	return rc;
}

/*
 * Cancel every kernel operation that refers to a watch and wait for their
 * completions, so that no late completion (a WAITID's siginfo) can write into
 * a watch after it is freed.  Each round kicks the wake eventfd first, so
 * the wait always returns.  Bounded: a backend error ends it.
 */
static void sched_drain_ops(shmq_sched *s)
{
	for (int round = 0; round < 1000; round++) {
		bool pending = false;

		for (struct shmq__sched_watch *w = s->watches; w; w = w->next) {
			if (!w->op_pending)
				continue;
			if (!w->cancel_sent) {
				int d = s->ops->disarm(s, w);

				if (d > 0) {
					w->op_pending = false;
					continue;
				}
				w->cancel_sent = d == 0; /* else: sent by the next round */
			}
			pending = true;
		}
		if (!pending)
			return;
		shmq__sched_kick(s);
		if (s->ops->wait(s, true) < 0)
			return;
		s->ops->reap(s);
	}
}

SHMQ_API void shmq_sched_destroy(shmq_sched *s)
{
	struct shmq__sched_watch *w, *next;
	int cs;

	if (!s)
		return;
	/* inherited across fork(): its ring and its operations are the
	 * parent's; cancelling them would cancel the parent's.  The child's
	 * copy goes with the process. */
	if (shmq__foreign(s->pid))
		return;
	/* its waits (the helper's join, the drain's) are no cancellation
	 * points: a thread cancelled there would leak s with mu held
	 * (core/cancel_int.h) */
	cs = shmq__cancel_off();
	pthread_mutex_lock(&s->mu);
	for (w = s->watches; w; w = w->next)
		if (!w->dead)
			watch_kill(s, w);
	if (s->helper) {
		shmq__ready_helper_stop(s->helper);
		s->helper = NULL;
	}
	sched_drain_ops(s);
	pthread_mutex_unlock(&s->mu);
	s->ops->fini(s);
	for (w = s->watches; w; w = next) {
		next = w->next;
		watch_free(w);
	}
	shmq__heap_fini(&s->heap);
	close(s->wake_fd);
	pthread_mutex_destroy(&s->mu);
	shmq__free(s, sizeof(*s));
	shmq__cancel_restore(cs);
}
