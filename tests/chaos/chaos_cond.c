/* SPDX-License-Identifier: MIT */
/*
 * Chaos: a condition's waiter (or its notifier) killed at a random
 * instruction: inside the wait's spin or sleep, between the notify and the
 * re-take, or holding the lock.
 *
 * A one-slot hand-off under a shmq_lock: the producer (index CONSUMERS)
 * puts an item in when the slot is empty and notifies one waiter; the
 * consumers wait on the condition (timeout WAIT_MS) until an item is there
 * or the round is done, take it and notify the producer (notify_all: the
 * producer and consumers share the condition, as Python code often does).
 * Every item is counted produced and consumed under the lock.  The victim
 * is any of them; it loops until killed.  Invariants:
 *  - no lost wake and no notify spent on a dead waiter: once the victim is
 *    dead and the parent has woken everybody, no survivor's wait times out
 *    (a notify handed to the dead consumer's slot would leave the item
 *    there and the live consumers asleep);
 *  - the parent's notify_all after the victim's death wakes no more waiters
 *    than there are survivors inside shmq_cond_wait (a dead waiter's slot
 *    is freed, not handed a ticket);
 *  - a victim killed holding the lock surfaces as exactly one -EOWNERDEAD
 *    (to whoever takes the lock next, in shmq_lock_acquire or in the
 *    re-take at the end of shmq_cond_wait), never more; the repairer finds
 *    produced - consumed - items in {0, 1} (the victim took the item but did
 *    not count it) and repairs the count;
 *  - after a dead producer, the parent ends the round (done, notify_all)
 *    and every consumer leaves promptly;
 *  - afterwards the condition still works: a try-wait says -EAGAIN and
 *    leaves no slot claimed (the next notify finds nobody).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"

#include "chaos.h"

#define CONSUMERS 3
#define PARTIES   (CONSUMERS + 1) /* index CONSUMERS is the producer */
#define ITEMS     300
#define WAIT_MS   5000

enum { CW_OK = 0, CW_OPEN = 10, CW_LOCK = 11, CW_WAIT = 12, CW_LOST = 13, CW_NOTIFY = 14 };

struct cond_state {
	uint64_t produced, consumed; /* under the lock */
	uint32_t items;              /* 0 or 1, under the lock */
	uint32_t done;               /* the round is over, under the lock */
	uint32_t inside[PARTIES];    /* holds the lock */
	uint32_t waiting[PARTIES];   /* inside shmq_cond_wait */
	uint32_t ownerdead;          /* -EOWNERDEAD seen this round */
	uint32_t bad_repair;
	int32_t last_error[PARTIES];
	uint32_t victim;
};

struct cond_ctx {
	struct chaos c;
	char name[96];
	shmq_region *r;
	shmq_lock *l;
	shmq_cond *cv;
	struct cond_state *s;
	unsigned victim;
};

/* The holder after a dead one: the victim may have taken an item without
 * counting it (consumer) or counted one it had not put in (producer). */
static void repair(struct cond_state *s)
{
	int64_t slack = (int64_t)(s->produced - s->consumed) - (int64_t)s->items;

	__atomic_add_fetch(&s->ownerdead, 1, __ATOMIC_SEQ_CST);
	if (slack < -1 || slack > 1)
		__atomic_add_fetch(&s->bad_repair, 1, __ATOMIC_SEQ_CST);
	s->consumed = s->produced - s->items;
}

/* Take the lock (or find it taken back in a wait): 0, or an exit code. */
static int took(struct cond_state *s, unsigned idx, int rc)
{
	if (rc == -EOWNERDEAD)
		repair(s);
	else if (rc) {
		s->last_error[idx] = rc;
		return CW_LOCK;
	}
	__atomic_store_n(&s->inside[idx], 1, __ATOMIC_SEQ_CST);
	return CW_OK;
}

static int drop(shmq_lock *l, struct cond_state *s, unsigned idx)
{
	__atomic_store_n(&s->inside[idx], 0, __ATOMIC_SEQ_CST);
	return shmq_lock_release(l) ? CW_LOCK : CW_OK;
}

/* Wait on the condition under the lock: 0, or an exit code.  A timeout
 * is a lost wake: every change of the state is notified by a live party,
 * and the parent notifies everybody once the victim is dead (a notifier
 * that died before notifying, or a waiter woken that died before it acted,
 * takes the wake with it: that is the application's loss, which the
 * parent's notify_all makes good, as a real program would). */
static int wait_cv(shmq_cond *cv, shmq_lock *l, struct cond_state *s, unsigned idx)
{
	int rc;

	__atomic_store_n(&s->inside[idx], 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&s->waiting[idx], 1, __ATOMIC_SEQ_CST);
	rc = shmq_cond_wait(cv, l, WAIT_MS * CHAOS_MS);
	__atomic_store_n(&s->waiting[idx], 0, __ATOMIC_SEQ_CST);
	if (rc == 0 || rc == -EOWNERDEAD)
		return took(s, idx, rc);
	s->last_error[idx] = rc;
	if (rc != -ETIMEDOUT)
		return CW_WAIT;
	__atomic_store_n(&s->inside[idx], 1, __ATOMIC_SEQ_CST);
	return s->done ? CW_OK : CW_LOST;
}

/* A victim consumer once the round is over: waits on the condition in
 * short slices until it is killed, so that it often dies registered in it
 * (and nobody but the parent notifies after that). */
static int victim_idle(shmq_cond *cv, shmq_lock *l, struct cond_state *s, unsigned idx)
{
	int rc;

	__atomic_store_n(&s->inside[idx], 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&s->waiting[idx], 1, __ATOMIC_SEQ_CST);
	rc = shmq_cond_wait(cv, l, CHAOS_MS);
	__atomic_store_n(&s->waiting[idx], 0, __ATOMIC_SEQ_CST);
	return took(s, idx, rc == -ETIMEDOUT ? 0 : rc);
}

static int consumer(shmq_lock *l, shmq_cond *cv, struct cond_state *s, unsigned idx,
		    bool victim)
{
	int rc = took(s, idx, shmq_lock_acquire(l, WAIT_MS * CHAOS_MS));

	while (!rc) {
		while (!rc && !s->items && !s->done)
			rc = wait_cv(cv, l, s, idx);
		if (rc || (s->done && !victim))
			break;
		if (s->items) {
			s->items = 0;
			s->consumed++;
			if (shmq_cond_notify_all(cv) < 0)
				rc = CW_NOTIFY;
		}
		if (!rc && victim && s->done)
			rc = victim_idle(cv, l, s, idx);
		else if (!rc && victim) /* let the others in now and then */
			rc = drop(l, s, idx) ?: took(s, idx, shmq_lock_acquire(l, WAIT_MS * CHAOS_MS));
	}
	return rc ? rc : drop(l, s, idx);
}

static int producer(shmq_lock *l, shmq_cond *cv, struct cond_state *s, unsigned idx,
		    bool victim)
{
	int rc = took(s, idx, shmq_lock_acquire(l, WAIT_MS * CHAOS_MS));

	for (unsigned i = 0; !rc && (victim || i < ITEMS); i++) {
		while (!rc && s->items)
			rc = wait_cv(cv, l, s, idx);
		if (rc)
			break;
		s->items = 1;
		s->produced++;
		if (shmq_cond_notify(cv, 1) < 0)
			rc = CW_NOTIFY;
	}
	/* the last item taken, the round is over */
	while (!rc && s->items)
		rc = wait_cv(cv, l, s, idx);
	if (!rc) {
		s->done = 1;
		if (shmq_cond_notify_all(cv) < 0)
			rc = CW_NOTIFY;
	}
	return rc ? rc : drop(l, s, idx);
}

static int party(void *arg, unsigned idx)
{
	struct cond_ctx *x = arg;
	shmq_region *r;
	shmq_lock *l;
	shmq_cond *cv;
	int rc;

	if (shmq_region_open(x->name, &r))
		return CW_OPEN;
	if (shmq_lock_open(r, "l", &l) || shmq_cond_open(r, "c", &cv))
		return CW_OPEN;
	if (idx == CONSUMERS)
		rc = producer(l, cv, x->s, idx, idx == x->victim);
	else
		rc = consumer(l, cv, x->s, idx, idx == x->victim);
	shmq_cond_close(cv);
	shmq_lock_close(l);
	shmq_region_close(r);
	return rc;
}

/* The parent takes the lock (repairing after a dead holder). */
static void parent_take(struct cond_ctx *x)
{
	int rc = shmq_lock_acquire(x->l, WAIT_MS * CHAOS_MS);

	if (rc == -EOWNERDEAD)
		repair(x->s);
	else
		assert_int_equal(rc, 0);
}

static void check_round(struct cond_ctx *x, bool victim_inside)
{
	struct cond_state *s = x->s;

	parent_take(x);
	assert_int_equal(s->bad_repair, 0);
	assert_true(s->ownerdead <= 1);
	if (victim_inside)
		assert_int_equal(s->ownerdead, 1);
	assert_int_equal(s->produced - s->consumed, s->items);
	/* the condition still works, and nobody is left registered */
	assert_int_equal(shmq_cond_wait(x->cv, x->l, SHMQ_NOWAIT), -EAGAIN);
	assert_int_equal(shmq_cond_notify_all(x->cv), 0);
	assert_int_equal(shmq_lock_release(x->l), 0);
}

static void run_round(struct cond_ctx *x, unsigned long *inside_kills, unsigned long *ownerdead)
{
	pid_t pid[PARTIES];
	bool inside = false;
	unsigned live_waiting = 0;
	int st = 0, woken;

	memset(x->s, 0, sizeof(*x->s));
	x->victim = (unsigned)chaos_rand(&x->c, PARTIES);
	x->s->victim = x->victim;
	for (unsigned i = 0; i < PARTIES; i++) {
		pid[i] = chaos_fork(&x->c, party, x, i, i == x->victim);
		assert_true(pid[i] > 0);
	}
	if (chaos_strike(&x->c, pid[x->victim], (int64_t)chaos_rand(&x->c, 10 * CHAOS_MS), &st)) {
		inside = __atomic_load_n(&x->s->inside[x->victim], __ATOMIC_SEQ_CST) != 0;
		*inside_kills += inside;
	} else {
		fprintf(stderr, "victim %u exited by itself: status 0x%x\n", x->victim, st);
		fail();
	}
	/* The victim is dead and reaped: wake everybody once (see wait_cv),
	 * and after a dead producer end the round for the consumers.  Every
	 * wait that starts from now on must be woken by a live party. */
	parent_take(x);
	if (x->victim == CONSUMERS)
		x->s->done = 1;
	woken = shmq_cond_notify_all(x->cv);
	assert_true(woken >= 0);
	/* With the lock ours, a survivor registered in the condition is
	 * marked waiting; the dead victim's slot (it is often killed inside
	 * its wait) must not take a ticket */
	for (unsigned i = 0; i < PARTIES; i++)
		live_waiting += i != x->victim && __atomic_load_n(&x->s->waiting[i], __ATOMIC_SEQ_CST);
	if ((unsigned)woken > live_waiting)
		fprintf(stderr, "notify_all woke %d, only %u survivors wait\n", woken, live_waiting);
	assert_true((unsigned)woken <= live_waiting);
	assert_int_equal(shmq_lock_release(x->l), 0);
	for (unsigned i = 0; i < PARTIES; i++) {
		if (i == x->victim)
			continue;
		int code = chaos_reap(pid[i], 60000 * CHAOS_MS);

		if (code != 0)
			fprintf(stderr, "party %u: exit %d (last error %d), victim %u\n", i, code,
				x->s->last_error[i], x->victim);
		assert_int_equal(code, 0);
	}
	if (x->victim != CONSUMERS)
		assert_true(x->s->produced >= ITEMS);
	check_round(x, inside);
	*ownerdead += x->s->ownerdead;
}

static void chaos_cond(void **state)
{
	struct cond_ctx x;
	struct shmq_region_opts o = { .size = (size_t)256 << 10 };
	unsigned long inside_kills = 0, ownerdead = 0;
	void *mem;

	(void)state;
	memset(&x, 0, sizeof(x));
	chaos_init(&x.c, "cond", 60);
	chaos_region_name(x.name, sizeof(x.name), "cond");
	assert_int_equal(shmq_region_create(x.name, &o, &x.r), 0);
	assert_int_equal(shmq_lock_create(x.r, "l", &x.l), 0);
	assert_int_equal(shmq_cond_create(x.r, "c", &x.cv), 0);
	assert_int_equal(shmq_region_alloc(x.r, "state", sizeof(struct cond_state), &mem), 0);
	x.s = mem;
	while (chaos_next_round(&x.c)) {
		run_round(&x, &inside_kills, &ownerdead);
		x.c.rounds_done++;
	}
	chaos_report(&x.c);
	printf("chaos cond: killed holding the lock %lu times, -EOWNERDEAD surfaced %lu times; "
	       "no survivor's wait timed out after the victim died\n",
	       inside_kills, ownerdead);
	shmq_cond_close(x.cv);
	shmq_lock_close(x.l);
	shmq_region_close(x.r);
	shmq_region_unlink(x.name);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(chaos_cond),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
