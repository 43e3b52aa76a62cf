/* SPDX-License-Identifier: MIT */
/*
 * Private: layer 1, the wait layer.
 *
 * futex wait and wake on 32-bit words in shared memory (never
 * FUTEX_PRIVATE_FLAG: the words are reached from several processes), with
 * absolute CLOCK_MONOTONIC deadlines, EINTR retried, and the one adaptive
 * policy every blocking call in libshmq uses: spin a bounded, tunable while,
 * yield, then sleep.
 *
 * Protocol SLEEPERS: the sleeper count lets a waker skip the system call
 * when nobody sleeps.  For a word W and its sleeper count S:
 *
 *   waiter:  S += 1 (seq_cst);  if W still == old: futex_wait(W, old);  S -= 1
 *   waker:   change W (any order >= release);  if load(S) (seq_cst) != 0: futex_wake(W)
 *
 * The waker's change to W must be a seq_cst RMW or store (or be followed by
 * shmq__fence_seq_cst()) so that it and the load of S cannot be reordered:
 * then either the waiter's re-check of W sees the change, or the waker sees
 * S != 0 and wakes.  The kernel's own check of W inside futex_wait closes the
 * remaining window.
 *
 * Asymmetric fences.  A waker whose change to W is on a fast path (a ring's
 * publication) may instead make it with a release store, then
 * shmq__signal_fence() and a relaxed load of S, when every waiter runs
 * shmq__remote_fence() between its S += 1 and its re-check: that is
 * membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED), a full barrier on every CPU
 * running a process registered by shmq__remote_fence_register().  Either
 * the waker's store came before that barrier on its CPU (the re-check sees
 * it) or its load of S came after it (and sees S != 0).  A process the
 * kernel refuses registration publishes with seq_cst instead; a waiter
 * whose fence fails bounds its sleep by a short slice.
 *
 * Protocol FENCED: a membarrier interrupts every CPU running a registered
 * process (some 20 us on a 2-vCPU VM when the other CPU is busy), too dear
 * for every sleep.  A fence word F next to the counts lets waiters skip it
 * while they keep coming: F = gen << 12 | idle << 2 | VERIFIED | FENCED.
 *
 *   waiter:    S += 1;  CAS F to (gen + 1, idle 0, FENCED | its VERIFIED);
 *              unless F had FENCED and VERIFIED: membarrier, F |= VERIFIED;
 *              re-check;  sleep;  S -= 1
 *   publisher: store (release);  signal fence;  f = F (relaxed);
 *              if f has FENCED: F += IDLE_ONE (seq_cst RMW), loads of S
 *              seq_cst; if S == 0 and idle reached IDLE_MAX (so many
 *              publications since a waiter last entered): CAS F from what
 *              it made to (gen, 0) (drop);  else: loads of S (relaxed)
 *
 * No lost wake-up.  A waiter counts itself in before it touches F, and
 * every waiter's CAS moves gen, so no drop succeeds while a waiter is in
 * (the dropper read S == 0 after its RMW on F, so before the waiter's
 * S += 1, and the waiter's CAS on F then changed it).  A publisher that
 * found FENCED made an RMW on F: either after the waiter's CAS (its seq_cst
 * loads see S != 0) or before it (its store is visible to the waiter's
 * re-check, which follows the waiter's own RMW on F).  A publisher that
 * found no FENCED read F before the FENCED that the waiter's VERIFIED vouches
 * for, so before the membarrier that followed it: its store was visible
 * when that membarrier returned, before the waiter's re-check.  Only a
 * publisher drops FENCED, once IDLE_MAX publications passed with no waiter
 * entering; the next waiter then runs the membarrier again.  A waiter whose
 * CAS keeps failing runs the membarrier without the word.  F is a hint in
 * memory that may be written by anyone: garbage costs a spare RMW, or a
 * wake missed until the waiter's slice ends.
 */
#ifndef SHMQ__WAIT_H
#define SHMQ__WAIT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/atomic_int.h"
#include "core/compiler_int.h"

/* Deadlines are absolute CLOCK_MONOTONIC nanoseconds; SHMQ__NO_DEADLINE waits forever. */
#define SHMQ__NO_DEADLINE INT64_MAX

/* Compiler-only barrier: keeps the relaxed load of a sleeper count after the
 * publishing store (the CPU half comes from the sleeper's remote fence). */
#define shmq__signal_fence() __atomic_signal_fence(__ATOMIC_SEQ_CST)

/* Longest sleep of a waiter whose shmq__remote_fence() failed: bounds a
 * missed wake-up (see Asymmetric fences). */
#define SHMQ__UNFENCED_SLICE_NS ((int64_t)1000000)

/* Register this process as a target of the waiters' remote fences
 * (idempotent): 0, or a negative errno (the caller then publishes with
 * seq_cst). */
int shmq__remote_fence_register(void);

/* The waiter's half of an asymmetric Dekker pair (see Asymmetric fences):
 * 0, or a negative errno when the kernel refused. */
int shmq__remote_fence(void);

/* Protocol FENCED's fence word (see above). */
#define SHMQ__FW_FENCED    1u
#define SHMQ__FW_VERIFIED  2u
#define SHMQ__FW_IDLE_ONE  4u
#define SHMQ__FW_IDLE_MASK 0xffcu /* bits 2..11; an overflow carries into gen */
#define SHMQ__FW_GEN_ONE   (1u << 12)
/* A drop costs the next sleeper a membarrier (some 20 us), a FENCED
 * publication an RMW (some 10-20 ns): stay FENCED while sleepers come
 * at least once per this many publications. */
#define SHMQ__FW_IDLE_MAX  1000u

/* A waiter's half of Protocol FENCED, after it counted itself in and before
 * its re-check: 0, or a negative errno when the kernel refused the
 * membarrier (the waiter then bounds its sleep by SHMQ__UNFENCED_SLICE_NS).
 * fw NULL: no fence word, the membarrier every time. */
int shmq__fence_word_enter(uint32_t *fw);

/* A publisher's half, after its release store and shmq__signal_fence():
 * true when fw is FENCED and the caller must read the counts with seq_cst
 * (an RMW on fw was made; *f is the word after it); false: relaxed loads
 * will do. */
static inline bool shmq__fence_word_publish(uint32_t *fw, uint32_t *f)
{
	/* relaxed: Protocol FENCED, a publisher that finds no FENCED needs no
	 * order (the waiters' membarrier supplies it) */
	uint32_t v = shmq__load_relaxed(fw);

	if (SHMQ__LIKELY(!(v & SHMQ__FW_FENCED)))
		return false;
	*f = shmq__fetch_add_seq_cst(fw, SHMQ__FW_IDLE_ONE) + SHMQ__FW_IDLE_ONE;
	return true;
}

/* A fenced publisher found nobody counted in: drop FENCED once IDLE_MAX
 * publications passed since a waiter last entered (f from
 * shmq__fence_word_publish). */
static inline void shmq__fence_word_idle(uint32_t *fw, uint32_t f)
{
	if (((f & SHMQ__FW_IDLE_MASK) / SHMQ__FW_IDLE_ONE) < SHMQ__FW_IDLE_MAX)
		return;
	/* seq_cst: Protocol FENCED, fails if a waiter moved gen since */
	(void)shmq__cas_seq_cst(fw, &f, f & ~(SHMQ__FW_IDLE_MASK | SHMQ__FW_VERIFIED |
					       SHMQ__FW_FENCED));
}

/* Spin policy defaults, tunable with SHMQ_SPIN (iterations; 0 disables spinning). */
#define SHMQ__SPIN_DEFAULT 2000u

/* True for a timeout the API refuses: a negative other than SHMQ_FOREVER (-1).
 * Every public call that takes a timeout_ns returns -EINVAL for one before it
 * changes anything (API.md: SHMQ_NOWAIT, SHMQ_FOREVER or > 0). */
static inline bool shmq__timeout_bad(int64_t timeout_ns)
{
	return timeout_ns < -1;
}

/* Convert a relative API timeout (SHMQ_NOWAIT, SHMQ_FOREVER, > 0) to a deadline.
 * SHMQ_NOWAIT gives the current time (already expired).  Public calls refuse
 * other negatives first (shmq__timeout_bad); for internal callers any
 * negative still means no deadline. */
int64_t shmq__deadline(int64_t timeout_ns);

/* Nanoseconds left until deadline (0 if past, INT64_MAX for no deadline). */
int64_t shmq__remaining(int64_t deadline);

/* A timerfd (non-blocking, close-on-exec) that turns readable at deadline,
 * for a poll(2) set whose wait must end there: the kernel restarts a ppoll
 * that a stop signal interrupted (SIGSTOP, then SIGCONT) with the time that
 * was left when the caller stopped, so its own timeout ends late by the
 * stop's length, while the timer's expiry stays where it was.  The
 * descriptor, or a negative errno (deadline SHMQ__NO_DEADLINE: -EINVAL);
 * the caller closes it. */
int shmq__deadline_fd(int64_t deadline);

/* The spin budget for this process (SHMQ_SPIN, read once; SHMQ__SPIN_DEFAULT otherwise). */
uint32_t shmq__spin_budget(void);

/* futex(FUTEX_WAIT_BITSET) on a shared word until deadline.
 * 0: woken, or the word no longer held expected (re-check it), or a spurious
 * wake-up.  -ETIMEDOUT: the deadline passed.  EINTR is retried. */
int shmq__futex_wait(const uint32_t *word, uint32_t expected, int64_t deadline);

/* Wake up to n sleepers on word (INT32_MAX for all).  Returns the number woken. */
int shmq__futex_wake(const uint32_t *word, int n);

/* As shmq__futex_wait and shmq__futex_wake, for sleepers that share a word
 * and a waker that can tell them apart: a sleeper is woken only by a wake
 * whose bits meet its own (shmq__futex_wake meets all).  bits != 0. */
int shmq__futex_wait_bits(const uint32_t *word, uint32_t expected, int64_t deadline,
			  uint32_t bits);
int shmq__futex_wake_bits(const uint32_t *word, int n, uint32_t bits);

/*
 * The adaptive wait: returns once *word != old (0), or at the deadline
 * (-ETIMEDOUT), or when the sleep slice ends (-EINTR: nothing happened yet;
 * the caller may check a peer's liveness, then call again).  Any other
 * negative value is an unexpected futex failure to pass on.
 *
 * Spins up to shmq__spin_budget() iterations (none once the deadline has
 * passed, however big SHMQ_SPIN is), then registers in *sleepers and
 * sleeps on the futex for at most slice_ns (0: no slice, sleep to the deadline).
 * sleepers may be NULL when the word's wakers always call futex_wake.
 */
int shmq__wait_word(const uint32_t *word, uint32_t old, uint32_t *sleepers,
		    int64_t deadline, int64_t slice_ns);

/* shmq__wait_word's spin phase alone: polls *word up to shmq__spin_budget()
 * times, yielding every 256 (on 2 cores the waker may need ours) and
 * looking at the deadline then, so a big SHMQ_SPIN keeps short timeouts.
 * true once *word != old; false when the budget is spent or the deadline
 * has passed. */
bool shmq__spin_word(const uint32_t *word, uint32_t old, int64_t deadline);

/* shmq__wait_word without its spin phase, for callers that spin by a policy
 * of their own first (a barrier spins without yielding, briefly): registers
 * in *sleepers and sleeps at once.  Same returns as shmq__wait_word. */
int shmq__sleep_word(const uint32_t *word, uint32_t old, uint32_t *sleepers,
		     int64_t deadline, int64_t slice_ns);

/* The waker's side: after changing *word with seq_cst, wake n sleepers if
 * *sleepers says there are any.  No system call when nobody sleeps. */
void shmq__wake_word(const uint32_t *word, const uint32_t *sleepers, int n);

/*
 * Slow-path statistics for `shmq stat` (core/introspect_int.h).  Objects keep free
 * running 64-bit counters of the futex waits their callers entered and of
 * the futex wakes issued for them, on a line of their shared block that no
 * fast path writes; a counter is bumped only right before the system call it
 * counts, so a call that neither sleeps nor wakes anybody never touches it.
 * At one event per microsecond a 64-bit counter wraps after 584 000 years.
 * ctr may be NULL (not counted).
 */
static inline void shmq__count_event(uint64_t *ctr)
{
	if (ctr)
		shmq__fetch_add_relaxed(ctr, 1); /* relaxed: statistics only */
}

/* shmq__sleep_word and shmq__wake_word that also count, in *waits, each
 * futex wait they enter and, in *wakes, each futex wake they issue.  The
 * wake returns how many the system call woke, or -1 when it made none. */
int shmq__sleep_word_counted(const uint32_t *word, uint32_t old, uint32_t *sleepers,
			     int64_t deadline, int64_t slice_ns, uint64_t *waits);
int shmq__wake_word_counted(const uint32_t *word, const uint32_t *sleepers, int n,
			    uint64_t *wakes);

/*
 * Listed sleepers.  A sleeper that dies asleep never takes its count back,
 * and every later wake of the word then makes a system call.  An object may
 * keep, beside S, a list of SHMQ__SLEEPER_LIST words into which a sleeper
 * puts its owner id (CAS 0 -> id) after its S += 1, and from which it takes
 * it out (CAS id -> 0) before its S -= 1.  A waker whose wake woke nobody
 * though S said some slept may take out the entry of a sleeper whose
 * process died (CAS id -> 0), and S down for it: whichever CAS takes the
 * entry out, the sleeper's or a reaper's, pays for it in S, once.  A sleeper
 * that finds no free entry counts in S alone, as does one killed between
 * its S += 1 and its entry (or its entry and its S -= 1): such a count stays.
 * self 0 or list NULL: S alone.
 */
#define SHMQ__SLEEPER_LIST 8
int shmq__sleep_word_listed(const uint32_t *word, uint32_t old, uint32_t *sleepers,
			    uint32_t *list, uint32_t self, int64_t deadline, int64_t slice_ns,
			    uint64_t *waits);

#endif /* SHMQ__WAIT_H */
