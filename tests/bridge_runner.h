/* SPDX-License-Identifier: MIT */
/*
 * A bridge run on a thread of the test process, for the bridge suites
 * (include after cmocka.h and <shmq/bridge.h>):
 *
 *   struct runner ru = { 0 };
 *   shmq_bridge_create(r, "jobs", &opts, &ru.b);
 *   runner_run(&ru);                 // shmq_bridge_run on a new thread
 *   ...
 *   assert_true(runner_end(&ru));    // stop, join (10 s at most), free
 *   assert_int_equal(ru.rc, 0);      // what run returned
 */
#ifndef BRIDGE_RUNNER_H
#define BRIDGE_RUNNER_H

#include <pthread.h>
#include <stdbool.h>
#include <time.h>

struct runner {
	shmq_bridge *b;
	pthread_t t;
	int rc;
	bool running;
};

static inline void *runner_thread(void *arg)
{
	struct runner *ru = arg;

	ru->rc = shmq_bridge_run(ru->b);
	return NULL;
}

static inline void runner_run(struct runner *ru)
{
	assert_int_equal(pthread_create(&ru->t, NULL, runner_thread, ru), 0);
	ru->running = true;
}

/* Stop and free; false when run did not return within 10 s (the bridge is
 * then leaked: freeing it under a running thread would crash).  A runner
 * without a bridge is ended already. */
static inline bool runner_end(struct runner *ru)
{
	struct timespec ts;

	if (!ru->b)
		return true;
	if (ru->running) {
		shmq_bridge_stop(ru->b, 2000000000ll);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 10;
		if (pthread_timedjoin_np(ru->t, NULL, &ts) != 0)
			return false;
		ru->running = false;
	}
	shmq_bridge_free(ru->b);
	ru->b = NULL;
	return true;
}

#endif /* BRIDGE_RUNNER_H */
