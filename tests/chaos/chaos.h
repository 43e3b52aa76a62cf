/* SPDX-License-Identifier: MIT */
/*
 * Chaos harness: runs a scenario's participants as forked processes and
 * kills one of them, the victim, at a random instruction.
 *
 * The victim is seized with ptrace as it starts (before it touches any
 * shared object).  After a random delay it is interrupted, single-stepped
 * a random number of instructions (0..max_steps), so that the stop lands
 * anywhere inside the library's hot loops, then SIGKILLed and reaped.  If
 * ptrace is refused (seccomp, a container without CAP_SYS_PTRACE, already
 * traced), the harness falls back to a plain SIGKILL after the delay and
 * says so.
 *
 * Environment:
 *   CHAOS_SEED=N       replay: the seed printed at start (per scenario)
 *   CHAOS_ROUNDS=N     rounds per scenario (default: the scenario's short pass)
 *   CHAOS_BUDGET=S     stop a short pass after S seconds (default 40; 0 = none)
 *   CHAOS_STEPS=N      most single steps per kill (default 2000, 1000 under TSan)
 *   CHAOS_NOPTRACE=1   force the timed-SIGKILL mode
 *
 * Scenarios are cmocka programs: participants never call cmocka (they run
 * in forked children): they report through their exit code and shared
 * memory, and the parent asserts.  Participants leave with _exit(): a killed
 * peer's leftovers are not leaks of theirs, and LeakSanitizer's tracer
 * cannot attach to a process that is already traced.
 */
#ifndef SHMQ_CHAOS_H
#define SHMQ_CHAOS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define CHAOS_MS ((int64_t)1000000)

struct chaos {
	const char *scenario;
	uint64_t seed;
	uint64_t rng;
	unsigned rounds;      /* rounds to run */
	int64_t budget_ns;    /* 0: none */
	int64_t start_ns;
	unsigned max_steps;
	bool ptrace;          /* false: timed SIGKILL fallback */
	bool long_run;        /* CHAOS_ROUNDS given */
	/* statistics */
	unsigned rounds_done;
	unsigned long kills;         /* victims killed by the harness */
	unsigned long kills_stepped; /* ... after at least one single step */
	unsigned long steps;         /* single steps taken in all */
	unsigned long kills_blocked; /* stepping stopped: victim asleep in a syscall */
	unsigned long early_exits;   /* victim exited before the strike */
};

/* A participant: runs in a forked child; its return value is the exit code. */
typedef int (*chaos_body)(void *arg, unsigned idx);

/* Read the environment, pick the seed and print it with the mode. */
void chaos_init(struct chaos *c, const char *scenario, unsigned short_rounds);
/* Another round to run?  (rounds left and, for a short pass, budget left) */
bool chaos_next_round(struct chaos *c);
/* Uniform in [0, n) (n > 0). */
uint64_t chaos_rand(struct chaos *c, uint64_t n);
/* Fork a participant running body(arg, idx).  A victim is seized by ptrace
 * before it starts its body.  Returns the pid, or -1. */
pid_t chaos_fork(struct chaos *c, chaos_body body, void *arg, unsigned idx, bool victim);
/* Wait delay_ns, stop the victim at a random instruction, SIGKILL and reap
 * it.  Returns true when it was killed, false when it had already exited
 * (its status is then stored in *status if non-NULL). */
bool chaos_strike(struct chaos *c, pid_t victim, int64_t delay_ns, int *status);
/* The same for a child this harness did not fork (a pool's worker, which
 * the pool reaps through its pidfd): seized at the strike, SIGKILLed after
 * the steps, never reaped here. */
bool chaos_strike_foreign(struct chaos *c, pid_t pid, int64_t delay_ns);
/* Reap a participant within timeout_ns: its exit code (0..255), 128 + signal
 * if a signal ended it, or -1 if it did not finish in time (it is then
 * SIGKILLed and reaped). */
int chaos_reap(pid_t pid, int64_t timeout_ns);
/* Print the statistics line. */
void chaos_report(const struct chaos *c);
/* A unique /dev/shm name for this scenario. */
void chaos_region_name(char *buf, size_t n, const char *scenario);
/* Monotonic clock, ns. */
int64_t chaos_now(void);
/* Sleep ns. */
void chaos_sleep(int64_t ns);

#endif
