/* SPDX-License-Identifier: MIT */
/* Layer 1: futex wait/wake on shared words and the spin-then-sleep policy. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <shmq.h>

#include "core/atomic_int.h"
#include "core/compiler_int.h"
#include "core/fd_int.h"
#include "core/time_int.h"
#include "core/wait_int.h"

/* Spins between sched_yield() calls inside the spin phase. */
#define SHMQ__SPIN_YIELD_EVERY 256u

int64_t shmq__deadline(int64_t timeout_ns)
{
	int64_t now;

	if (timeout_ns < 0)
		return SHMQ__NO_DEADLINE;
	now = shmq_now_ns();
	if (timeout_ns > SHMQ__NO_DEADLINE - now)
		return SHMQ__NO_DEADLINE;
	return now + timeout_ns;
}

int64_t shmq__remaining(int64_t deadline)
{
	int64_t now;

	if (deadline == SHMQ__NO_DEADLINE)
		return INT64_MAX;
	now = shmq_now_ns();
	return deadline > now ? deadline - now : 0;
}

int shmq__deadline_fd(int64_t deadline)
{
	/* an it_value of 0 would disarm the timer: a deadline at 0 is past */
	struct itimerspec its = { .it_value = shmq__ns_to_timespec(deadline > 0 ? deadline : 1) };
	int fd, rc;

	if (deadline == SHMQ__NO_DEADLINE)
		return -EINVAL;
	fd = shmq__fd_high(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)); /* core/fd_int.h */
	if (fd < 0)
		return -errno;
	if (timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
		return fd;
	rc = -errno;
	close(fd);
	return rc;
}

static uint32_t spin_budget_parse(void)
{
	const char *s = getenv("SHMQ_SPIN");
	char *end;
	unsigned long v;

	if (!s || !*s)
		return SHMQ__SPIN_DEFAULT;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > 10000000ul)
		return SHMQ__SPIN_DEFAULT;
	return (uint32_t)v;
}

int shmq__remote_fence_register(void)
{
	/* Registration is per process and idempotent. */
	if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0)
		return 0;
	return -errno;
}

int shmq__remote_fence(void)
{
	if (syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) == 0)
		return 0;
	return -errno;
}

#define FW_CAS_TRIES 64u /* each lost CAS means the word moved */

int shmq__fence_word_enter(uint32_t *fw)
{
	uint32_t f, nf;
	int rc;

	if (!fw)
		return shmq__remote_fence();
	/* relaxed: the CAS below checks it */
	f = shmq__load_relaxed(fw);
	for (unsigned i = 0;; i++) {
		/* a word that keeps moving (busy wakers, or garbage written
		 * into it): the membarrier alone is a fence that needs no word */
		if (i == FW_CAS_TRIES)
			return shmq__remote_fence();
		nf = ((f & ~SHMQ__FW_IDLE_MASK) + SHMQ__FW_GEN_ONE) | SHMQ__FW_FENCED;
		if (shmq__cas_seq_cst(fw, &f, nf)) /* seq_cst: Protocol FENCED */
			break;
	}
	if ((f & (SHMQ__FW_FENCED | SHMQ__FW_VERIFIED)) == (SHMQ__FW_FENCED | SHMQ__FW_VERIFIED))
		return 0;
	rc = shmq__remote_fence();
	if (rc)
		return rc;
	/* seq_cst: Protocol FENCED; no drop while we are counted in */
	shmq__fetch_or_seq_cst(fw, SHMQ__FW_VERIFIED);
	return 0;
}

uint32_t shmq__spin_budget(void)
{
	static uint32_t cached; /* 0: not read yet; else budget + 1 */
	/* relaxed: read once per process; the cached value is derived from
	 * the environment only, so a racing first call computes the same
	 * value, and nothing else is published through it */
	uint32_t v = shmq__load_relaxed(&cached);

	if (SHMQ__LIKELY(v))
		return v - 1;
	v = spin_budget_parse() + 1;
	shmq__store_relaxed(&cached, v); /* relaxed: every writer stores the same */
	return v - 1;
}

int shmq__futex_wait(const uint32_t *word, uint32_t expected, int64_t deadline)
{
	return shmq__futex_wait_bits(word, expected, deadline, FUTEX_BITSET_MATCH_ANY);
}

int shmq__futex_wait_bits(const uint32_t *word, uint32_t expected, int64_t deadline,
			  uint32_t bits)
{
	struct timespec ts, *tsp = NULL;
	long rc;

	if (deadline != SHMQ__NO_DEADLINE) {
		if (deadline <= shmq_now_ns())
			return -ETIMEDOUT;
		ts = shmq__ns_to_timespec(deadline);
		tsp = &ts;
	}
	for (;;) {
		/* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC timeout.
		 * Shared (not FUTEX_PRIVATE_FLAG): the word lives in a mapping
		 * other processes wait on too. */
		rc = syscall(SYS_futex, word, FUTEX_WAIT_BITSET, expected, tsp, NULL, bits);
		if (rc == 0)
			return 0;
		switch (errno) {
		case EINTR:
			continue;
		case EAGAIN:
			return 0; /* the word had changed already */
		case ETIMEDOUT:
			return -ETIMEDOUT;
		default:
			return -errno;
		}
	}
}

int shmq__futex_wake(const uint32_t *word, int n)
{
	long rc;

	rc = syscall(SYS_futex, word, FUTEX_WAKE, n, NULL, NULL, 0);
	return rc < 0 ? -errno : (int)rc;
}

int shmq__futex_wake_bits(const uint32_t *word, int n, uint32_t bits)
{
	long rc;

	rc = syscall(SYS_futex, word, FUTEX_WAKE_BITSET, n, NULL, NULL, bits);
	return rc < 0 ? -errno : (int)rc;
}

bool shmq__spin_word(const uint32_t *word, uint32_t old, int64_t deadline)
{
	uint32_t budget = shmq__spin_budget();

	for (uint32_t i = 0; i < budget; i++) {
		/* pairs with the waker's seq_cst change of *word (Protocol SLEEPERS) */
		if (shmq__load_acquire(word) != old)
			return true;
		if ((i + 1) % SHMQ__SPIN_YIELD_EVERY == 0) {
			if (deadline != SHMQ__NO_DEADLINE && shmq_now_ns() >= deadline)
				return false;
			sched_yield(); /* on 2 cores the waker may need ours */
		} else {
			shmq__cpu_relax();
		}
	}
	return false;
}

int shmq__wait_word(const uint32_t *word, uint32_t old, uint32_t *sleepers,
		    int64_t deadline, int64_t slice_ns)
{
	if (shmq__spin_word(word, old, deadline))
		return 0;
	return shmq__sleep_word(word, old, sleepers, deadline, slice_ns);
}

int shmq__sleep_word(const uint32_t *word, uint32_t old, uint32_t *sleepers,
		     int64_t deadline, int64_t slice_ns)
{
	return shmq__sleep_word_counted(word, old, sleepers, deadline, slice_ns, NULL);
}

int shmq__sleep_word_counted(const uint32_t *word, uint32_t old, uint32_t *sleepers,
			     int64_t deadline, int64_t slice_ns, uint64_t *waits)
{
	return shmq__sleep_word_listed(word, old, sleepers, NULL, 0, deadline, slice_ns, waits);
}

/* Put self into a free entry of list: its index, or -1 (none free). */
static int list_enter(uint32_t *list, uint32_t self)
{
	if (!list || !self)
		return -1;
	for (int i = 0; i < SHMQ__SLEEPER_LIST; i++) {
		uint32_t free_id = 0;

		/* relaxed: a first look, re-validated by the seq_cst CAS */
		if (shmq__load_relaxed(&list[i]) == 0 &&
		    shmq__cas_seq_cst(&list[i], &free_id, self))
			return i;
	}
	return -1;
}

/* Take our entry out: true when we did (and so pay for it in the count),
 * false when a reaper did (it paid), or forged data moved it. */
static bool list_leave(uint32_t *list, int slot, uint32_t self)
{
	uint32_t mine = self;

	return slot < 0 || shmq__cas_seq_cst(&list[slot], &mine, 0);
}

int shmq__sleep_word_listed(const uint32_t *word, uint32_t old, uint32_t *sleepers,
			    uint32_t *list, uint32_t self, int64_t deadline, int64_t slice_ns,
			    uint64_t *waits)
{
	int64_t until = deadline;
	int slot = -1;
	int rc;

	if (slice_ns > 0) {
		int64_t now = shmq_now_ns();

		if (deadline != SHMQ__NO_DEADLINE && deadline <= now)
			return -ETIMEDOUT;
		if (deadline == SHMQ__NO_DEADLINE || deadline - now > slice_ns)
			until = now + slice_ns;
	}
	if (sleepers) {
		shmq__fetch_add_seq_cst(sleepers, 1);
		slot = list_enter(list, self); /* after the count: see "Listed sleepers" */
	}
	/* Dekker with shmq__wake_word: our increment of *sleepers and this
	 * load are both seq_cst, as are the waker's change and its load of
	 * *sleepers, so at least one side sees the other. */
	if (shmq__load_seq_cst(word) != old) {
		rc = 0;
	} else {
		shmq__count_event(waits);
		rc = shmq__futex_wait(word, old, until);
	}
	if (sleepers && list_leave(list, slot, self))
		shmq__fetch_sub_seq_cst(sleepers, 1);
	if (rc == -ETIMEDOUT && until != deadline)
		/* pairs with the waker's change of *word (Protocol SLEEPERS) */
		return shmq__load_acquire(word) != old ? 0 : -EINTR;
	return rc; /* 0, -ETIMEDOUT, or an unexpected futex error (-EFAULT...) */
}

void shmq__wake_word(const uint32_t *word, const uint32_t *sleepers, int n)
{
	shmq__wake_word_counted(word, sleepers, n, NULL);
}

int shmq__wake_word_counted(const uint32_t *word, const uint32_t *sleepers, int n,
			    uint64_t *wakes)
{
	if (sleepers && shmq__load_seq_cst(sleepers) == 0)
		return -1;
	shmq__count_event(wakes);
	return shmq__futex_wake(word, n);
}
