/* SPDX-License-Identifier: MIT */
/*
 * Recipe 12-1: create a thread.
 *
 * Python:  my_thread = threading.Thread(target=print_sum); my_thread.start()
 *
 * The thread starts running as soon as shmq_thread_start returns; is_alive
 * tells whether it still runs, and join waits for it (with a timeout, like
 * Thread.join(timeout)) and hands back its return value.
 */
#include <stdio.h>
#include <stdlib.h>

#include <shmq.h>

static void *print_sum(void *arg)
{
	(void)arg;
	printf("The sum of 1 and 2 is 3\n");
	return (void *)(uintptr_t)3;
}

int main(void)
{
	shmq_thread *t;
	void *ret;
	int rc;

	rc = shmq_thread_start(print_sum, NULL, &t);
	if (rc) {
		fprintf(stderr, "thread_start: %s\n", shmq_strerror(rc));
		return 1;
	}
	rc = shmq_thread_join(t, 5 * 1000000000LL, &ret);
	if (rc) {
		fprintf(stderr, "thread_join: %s\n", shmq_strerror(rc));
		return 1;
	}
	printf("joined; alive: %s; returned %d\n", shmq_thread_is_alive(t) ? "yes" : "no",
	       (int)(uintptr_t)ret);
	shmq_thread_close(t);
	return (uintptr_t)ret != 3;
}
