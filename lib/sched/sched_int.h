/* SPDX-License-Identifier: MIT */
/*
 * Private: the scheduler's state and the interface between its loop
 * (sched.c) and its two backends (sched_uring.c, sched_poll.c).
 *
 * Threads: every field of struct shmq_sched is guarded by mu.  The kernel
 * objects (the ring, the epoll set, the timerfd) are touched only by the
 * thread inside shmq_sched_run (at most one: `running`), in three steps per
 * loop iteration:
 *   arm_*   under mu: stage the timer and the watches (SQEs, timerfd, epoll);
 *   wait    without mu: one kernel call that submits and sleeps;
 *   reap    under mu: consume completions, mark watches ready.
 * Other threads (and actions) only change the heap and the watch list under
 * mu, and write wake_fd when the loop sleeps past what they changed.
 */
#ifndef SHMQ__SCHED_INT_H
#define SHMQ__SCHED_INT_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "sched/sched_heap_int.h"
#include "core/watch_int.h"
#include "sched/ready_int.h"

#define SHMQ__SCHED_NEVER INT64_MAX

enum shmq__watch_kind { SHMQ__WATCH_WORD, SHMQ__WATCH_PROC };
enum shmq__watch_state {
	SHMQ__WS_IDLE,  /* to be checked and armed by the next iteration */
	SHMQ__WS_ARMED, /* waiting in the kernel (or the helper thread) */
	SHMQ__WS_READY, /* its action is due */
};

struct shmq__sched_watch {
	struct shmq__sched_watch *next;
	enum shmq__watch_kind kind;
	enum shmq__watch_state state;
	bool dead;       /* unwatched: freed once no kernel operation refers to it */
	bool op_pending; /* a ring operation (or epoll registration) refers to it */
	bool cancel_sent;  /* dead: its operation's cancel is staged */
	bool recheck_sent; /* live: cancelled by the liveness re-check */
	const void *obj;
	shmq_action_fn fn;
	void *arg;
	/* SHMQ__WATCH_WORD: a queue's or pipe's readiness word */
	struct shmq__watch w;
	bool (*readable)(const void *obj);
	/* The liveness re-check's deep look (NULL: none): clears what a dead
	 * process left blocking obj (a queue's claim, a pipe's peer end);
	 * true when obj counts as ready whatever readable says (corrupt). */
	bool (*settle)(const void *obj);
	uint64_t (*progress)(const void *obj);
	uint32_t expected;
	/* In w.sleepers from its arming until its action runs, so publishers
	 * wake it only while it waits (a busy watcher costs them no system
	 * call), and through an action that follows one that took nothing. */
	bool counted;
	/* Its last action took nothing (progress unchanged) and the word was
	 * stall_word before it: not ready again until the word moves or the
	 * next liveness re-check, so an object that stays readable without
	 * yielding anything (corrupted, drained after shutdown, an action that
	 * only peeks) cannot spin the loop.  The word moves only while the
	 * watch is counted in: an action run counted out that takes nothing
	 * (a publish during it moved no word) sets took_nothing instead, and
	 * the next runs counted in, so it takes two in a row to stall. */
	bool stalled;
	bool took_nothing;
	uint32_t stall_word;
	/* The non-blocking run (its pass number) that last ran the action:
	 * one run(false) runs a watch's action at most once. */
	uint64_t fired_pass;
	/* SHMQ__WATCH_PROC */
	int pidfd;
	siginfo_t info; /* IORING_OP_WAITID writes here */
};

struct shmq__sched_ops {
	const char *name;
	int (*init)(shmq_sched *s, const struct shmq_sched_opts *o);
	void (*fini)(shmq_sched *s);
	/* Stage the timer at target (SHMQ__SCHED_NEVER: none).  Under mu. */
	int (*arm_timer)(shmq_sched *s, int64_t target);
	/* Stage a futex wait of w->w.word == w->expected (NULL: no native way,
	 * the helper thread waits instead).  Under mu. */
	int (*arm_word)(shmq_sched *s, struct shmq__sched_watch *w);
	/* Stage the wait for w->pidfd's process to exit.  Under mu. */
	int (*arm_proc)(shmq_sched *s, struct shmq__sched_watch *w);
	/* Drop w's pending operation (w is dead, or its liveness re-check found
	 * it readable).  Returns 1 when it is already gone, 0 when a completion
	 * will say so, -EAGAIN when the kernel could not take the cancel now
	 * (nothing was staged: the caller asks again later). */
	int (*disarm)(shmq_sched *s, struct shmq__sched_watch *w);
	/* Submit what is staged and, if block, sleep until something completes.
	 * Without mu.  0 or -errno (EINTR is reported as 0). */
	int (*wait)(shmq_sched *s, bool block);
	/* Consume what completed.  Under mu. */
	void (*reap)(shmq_sched *s);
};

extern const struct shmq__sched_ops shmq__sched_uring_ops;
extern const struct shmq__sched_ops shmq__sched_poll_ops;

struct shmq_sched {
	pthread_mutex_t mu;
	pid_t pid;            /* the process that made it (core/fork_int.h) */
	struct shmq__heap heap;
	const struct shmq__sched_ops *ops;
	void *be;             /* the backend's state */
	unsigned flags;       /* SHMQ_SCHED_* */
	int wake_fd;          /* eventfd: wakes a loop that sleeps */
	bool running;         /* a thread is inside shmq_sched_run */
	int run_cancel;       /* its cancelability, restored around each action */
	bool waiting;         /* ... and sleeps (or is about to) in ops->wait */
	bool wake_sent;       /* wake_fd was written during this wait */
	bool stop_req;        /* shmq_sched_stop was called: the current/next run returns */
	bool timer_fired;     /* reap saw the timer expire (precision mode's estimate) */
	bool watches_dirty;   /* the helper's set of words must be republished */
	int64_t wait_head;    /* the head's deadline when the loop went to sleep */
	int64_t timer_target; /* where the timer was armed for this wait */
	int64_t word_check_at; /* next liveness re-check of armed word watches */
	uint64_t pass;        /* non-blocking runs so far (struct shmq__sched_watch.fired_pass) */
	unsigned armed_words;  /* word watches waiting (kernel or helper) */
	/* precision mode: wake-up lateness estimates (see loop_learn) and bound */
	int64_t lat_mean;
	int64_t lat_dev;
	int64_t spin_max;
	struct shmq__sched_watch *watches;
	unsigned nwatches;    /* live (not dead) watches */
	struct shmq__ready_helper *helper; /* sched/ready_int.h */
};

/* Generic watches (sched.c), used by the queue/pipe/proc wrappers. */
int shmq__sched_watch_word(shmq_sched *s, const void *obj, const struct shmq__watch *w,
			   bool (*readable)(const void *obj), uint64_t (*progress)(const void *obj),
			   shmq_action_fn fn, void *arg);
/* The same with the re-check's deep look (struct shmq__sched_watch). */
int shmq__sched_watch_word_settled(shmq_sched *s, const void *obj, const struct shmq__watch *w,
				   bool (*readable)(const void *obj),
				   uint64_t (*progress)(const void *obj),
				   bool (*settle)(const void *obj), shmq_action_fn fn, void *arg);
int shmq__sched_watch_fd(shmq_sched *s, const void *obj, int pidfd, shmq_action_fn fn,
			 void *arg);

/* Write the eventfd (from any thread). */
void shmq__sched_kick(shmq_sched *s);

#endif
