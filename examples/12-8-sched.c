/* SPDX-License-Identifier: MIT */
/*
 * Recipe 12-8: schedule events.
 *
 * Python:  my_sched = sched.scheduler()
 *          my_sched.enter(10, 1, print_time); my_sched.run()
 *
 * Events run in time order, then by priority (lower first), then in the
 * order they were entered.  run(true) waits in io_uring for each deadline.
 * (The delays here are milliseconds so the example finishes quickly.)
 */
#include <stdio.h>

#include <shmq.h>

#define MS 1000000LL

static int64_t t0;
static char order[8];
static int fired;

static void print_time(void *arg)
{
	const char *tag = arg;

	order[fired++] = tag[0];
	printf("event %s at +%lld ms\n", tag, (long long)((shmq_now_ns() - t0) / MS));
}

int main(void)
{
	shmq_sched *s;
	shmq_event *ev_c;
	int rc;

	rc = shmq_sched_create(NULL, &s);
	if (rc) {
		fprintf(stderr, "sched_create: %s\n", shmq_strerror(rc));
		return 1;
	}
	t0 = shmq_now_ns();
	/* Same absolute time: priority decides.  (Two enter() calls with the
	 * same delay get slightly different times, as in Python.) */
	shmq_sched_enterabs(s, t0 + 20 * MS, 2, print_time, "b (20 ms, priority 2)", NULL);
	shmq_sched_enterabs(s, t0 + 20 * MS, 1, print_time, "a (20 ms, priority 1)", NULL);
	shmq_sched_enter(s, 40 * MS, 1, print_time, "c (40 ms, cancelled)", &ev_c);
	/* absolute as well: a relative 10 ms counted from now could land after
	 * t0 + 20 ms if this process is preempted here, and the order would change */
	shmq_sched_enterabs(s, t0 + 10 * MS, 1, print_time, "d (10 ms)", NULL);
	shmq_sched_cancel(s, ev_c);
	shmq_sched_run(s, true);
	printf("order: %.*s; empty: %s\n", fired, order, shmq_sched_empty(s) ? "yes" : "no");
	shmq_sched_destroy(s);
	return !(fired == 3 && order[0] == 'd' && order[1] == 'a' && order[2] == 'b');
}
