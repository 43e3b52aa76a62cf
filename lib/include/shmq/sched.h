/* SPDX-License-Identifier: MIT */
/* Scheduler (seed 12-8): timed events and an event loop on io_uring. */
#ifndef SHMQ_SCHED_H
#define SHMQ_SCHED_H

#include <shmq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*shmq_action_fn)(void *arg);

struct shmq_event_info {
	int64_t when_ns;
	int priority;
	shmq_action_fn fn;
	void *arg;
};
struct shmq_sched_opts;  /* options: see below; NULL means defaults */

SHMQ_API int shmq_sched_create(const struct shmq_sched_opts *o, shmq_sched **out);
SHMQ_API int shmq_sched_enter(shmq_sched *s, int64_t delay_ns, int priority, shmq_action_fn fn,
			      void *arg, shmq_event **ev);
SHMQ_API int shmq_sched_enterabs(shmq_sched *s, int64_t when_ns, int priority, shmq_action_fn fn,
				 void *arg, shmq_event **ev);
/* -ENOENT if it ran or was cancelled. */
SHMQ_API int shmq_sched_cancel(shmq_sched *s, shmq_event *ev);
SHMQ_API bool shmq_sched_empty(shmq_sched *s);
SHMQ_API size_t shmq_sched_queue(shmq_sched *s, struct shmq_event_info *out, size_t max);
/* Non-blocking: ns until the next event, or -1 if none. */
SHMQ_API int64_t shmq_sched_run(shmq_sched *s, bool blocking);
SHMQ_API int shmq_sched_watch_queue(shmq_sched *s, shmq_queue *q, shmq_action_fn fn, void *arg);
SHMQ_API int shmq_sched_watch_pipe(shmq_sched *s, shmq_pipe *p, shmq_action_fn fn, void *arg);
SHMQ_API int shmq_sched_watch_proc(shmq_sched *s, shmq_proc *p, shmq_action_fn fn, void *arg);
SHMQ_API int shmq_sched_stop(shmq_sched *s);
SHMQ_API void shmq_sched_destroy(shmq_sched *s);

#ifdef __cplusplus
}
#endif
#endif /* SHMQ_SCHED_H */
