/* SPDX-License-Identifier: MIT */
/* Chaos harness: see chaos.h. */
#include "config.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chaos.h"
#include "core/time_int.h"

#if defined(__SANITIZE_THREAD__)
#define CHAOS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CHAOS_TSAN 1
#endif
#endif

#define STEPS_DEFAULT      2000u
#define STEPS_DEFAULT_TSAN 1000u
/* A single step normally completes in microseconds; one that takes longer
 * resumed a blocking system call (a futex sleep): the victim dies there. */
#define STEP_TIMEOUT_NS    (20 * CHAOS_MS)
#define STOP_TIMEOUT_NS    (2000 * CHAOS_MS)

int64_t chaos_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return shmq__timespec_to_ns(&ts);
}

void chaos_sleep(int64_t ns)
{
	struct timespec ts = shmq__ns_to_timespec(ns);

	while (ns > 0 && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

uint64_t chaos_rand(struct chaos *c, uint64_t n)
{
	return n ? splitmix(&c->rng) % n : 0;
}

static unsigned long env_ulong(const char *name, unsigned long dflt)
{
	const char *v = getenv(name);

	return v && *v ? strtoul(v, NULL, 0) : dflt;
}

/* May this process trace its children?  Probe once with a throwaway child. */
static bool ptrace_probe(void)
{
	int st, rc;
	pid_t pid = fork();

	if (pid < 0)
		return false;
	if (pid == 0) {
		pause();
		_exit(0);
	}
	rc = (int)ptrace(PTRACE_SEIZE, pid, 0, (void *)(long)PTRACE_O_EXITKILL);
	kill(pid, SIGKILL);
	while (waitpid(pid, &st, __WALL) < 0 && errno == EINTR)
		;
	return rc == 0;
}

void chaos_init(struct chaos *c, const char *scenario, unsigned short_rounds)
{
	const char *seed = getenv("CHAOS_SEED");
	const char *rounds = getenv("CHAOS_ROUNDS");
#ifdef CHAOS_TSAN
	unsigned steps = STEPS_DEFAULT_TSAN;
#else
	unsigned steps = STEPS_DEFAULT;
#endif

	memset(c, 0, sizeof(*c));
	c->scenario = scenario;
	c->seed = seed && *seed ? strtoull(seed, NULL, 0)
				: (uint64_t)chaos_now() ^ ((uint64_t)getpid() << 32);
	c->rng = c->seed;
	c->long_run = rounds && *rounds;
	c->rounds = (unsigned)env_ulong("CHAOS_ROUNDS", short_rounds);
	c->budget_ns = c->long_run ? 0 : (int64_t)env_ulong("CHAOS_BUDGET", 40) * 1000 * CHAOS_MS;
	c->max_steps = (unsigned)env_ulong("CHAOS_STEPS", steps);
	c->ptrace = !env_ulong("CHAOS_NOPTRACE", 0) && ptrace_probe();
	c->start_ns = chaos_now();
	printf("chaos %s: seed=0x%llx rounds=%u mode=%s max_steps=%u (replay: CHAOS_SEED=0x%llx)\n",
	       scenario, (unsigned long long)c->seed, c->rounds,
	       c->ptrace ? "ptrace-singlestep" : "timed-sigkill (ptrace refused)", c->max_steps,
	       (unsigned long long)c->seed);
	fflush(stdout);
}

bool chaos_next_round(struct chaos *c)
{
	if (c->rounds_done >= c->rounds)
		return false;
	if (c->budget_ns && chaos_now() - c->start_ns > c->budget_ns) {
		printf("chaos %s: time budget reached after %u of %u rounds\n", c->scenario,
		       c->rounds_done, c->rounds);
		return false;
	}
	return true;
}

pid_t chaos_fork(struct chaos *c, chaos_body body, void *arg, unsigned idx, bool victim)
{
	int go[2];
	pid_t pid;
	char b = 0;

	if (pipe(go) < 0)
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		close(go[0]);
		close(go[1]);
		return -1;
	}
	if (pid == 0) {
		close(go[1]);
		/* wait until the parent has seized us (or decided not to) */
		while (read(go[0], &b, 1) < 0 && errno == EINTR)
			;
		close(go[0]);
		_exit(body(arg, idx));
	}
	close(go[0]);
	if (victim && c->ptrace &&
	    ptrace(PTRACE_SEIZE, pid, 0, (void *)(long)PTRACE_O_EXITKILL) != 0) {
		/* refused for this child: never mind, it dies by a plain SIGKILL */
	}
	while (write(go[1], &b, 1) < 0 && errno == EINTR)
		;
	close(go[1]);
	return pid;
}

/* Wait for a state change of pid until deadline: 1 (ptrace-stopped; *si
 * set), 2 (ended and reaped; *si set), 0 (deadline passed).  With reap false
 * an exit is never consumed: the process belongs to someone else's waitid
 * (a pool's worker), and only its stops are ours. */
static int wait_change(pid_t pid, siginfo_t *si, int64_t deadline, bool reap)
{
	unsigned spins = 0;
	int flags = WSTOPPED | WNOHANG | __WALL | (reap ? WEXITED : 0);

	for (;;) {
		memset(si, 0, sizeof(*si));
		if (waitid(P_PID, (id_t)pid, si, flags) == 0 && si->si_pid == pid)
			return si->si_code == CLD_TRAPPED || si->si_code == CLD_STOPPED ? 1 : 2;
		if (si->si_pid == 0 && errno == ECHILD)
			return 2;
		if (chaos_now() > deadline)
			return 0;
		if (++spins < 64)
			sched_yield();
		else
			chaos_sleep(50000);
	}
}

/* A signal the victim received while stopped: passed on at the next resume
 * (single-step traps and the interrupt's event stop are ours, not its). */
static int stop_signal(const siginfo_t *si)
{
	int sig = si->si_status & 0x7f;

	return sig == SIGTRAP || sig == SIGSTOP ? 0 : sig;
}

/* Step the stopped victim up to n instructions; returns the steps taken. */
static unsigned step_victim(struct chaos *c, pid_t pid, unsigned n, int sig, bool reap, bool *dead)
{
	unsigned i;
	siginfo_t si;

	for (i = 0; i < n; i++) {
		int w;

		if (ptrace(PTRACE_SINGLESTEP, pid, 0, (void *)(long)sig) != 0)
			break;
		w = wait_change(pid, &si, chaos_now() + STEP_TIMEOUT_NS, reap);
		if (w == 0) { /* resumed a sleeping system call (or exited, unreaped) */
			c->kills_blocked++;
			break;
		}
		if (w == 2) {
			*dead = true;
			break;
		}
		sig = stop_signal(&si);
	}
	return i;
}

static void kill_reap(pid_t pid)
{
	siginfo_t si;

	kill(pid, SIGKILL);
	for (;;) {
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)pid, &si, WEXITED | WSTOPPED | __WALL) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (si.si_code != CLD_TRAPPED && si.si_code != CLD_STOPPED)
			return;
	}
}

static int exit_code_of(const siginfo_t *si)
{
	return si->si_code == CLD_EXITED ? si->si_status : 128 + si->si_status;
}

static bool strike(struct chaos *c, pid_t pid, int64_t delay_ns, int *status, bool reap)
{
	siginfo_t si;
	int w;
	bool dead = false;
	unsigned steps;

	chaos_sleep(delay_ns);
	if (reap) {
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | __WALL) == 0 &&
		    si.si_pid == pid) {
			c->early_exits++;
			if (status)
				*status = exit_code_of(&si);
			return false;
		}
	} else if (c->ptrace) {
		if (ptrace(PTRACE_SEIZE, pid, 0, (void *)(long)PTRACE_O_EXITKILL) != 0)
			goto kill;
	}
	if (!c->ptrace || ptrace(PTRACE_INTERRUPT, pid, 0, 0) != 0)
		goto kill;
	w = wait_change(pid, &si, chaos_now() + STOP_TIMEOUT_NS, reap);
	if (w == 2) { /* exited on its own just now */
		c->early_exits++;
		if (status)
			*status = exit_code_of(&si);
		return false;
	}
	if (w == 1) {
		steps = step_victim(c, pid, (unsigned)chaos_rand(c, c->max_steps + 1),
				    stop_signal(&si), reap, &dead);
		c->steps += steps;
		c->kills_stepped += steps > 0;
	}
	if (dead) {
		c->early_exits++;
		return false;
	}
kill:
	if (reap)
		kill_reap(pid);
	else
		kill(pid, SIGKILL);
	c->kills++;
	return true;
}

bool chaos_strike(struct chaos *c, pid_t pid, int64_t delay_ns, int *status)
{
	return strike(c, pid, delay_ns, status, true);
}

bool chaos_strike_foreign(struct chaos *c, pid_t pid, int64_t delay_ns)
{
	return strike(c, pid, delay_ns, NULL, false);
}

int chaos_reap(pid_t pid, int64_t timeout_ns)
{
	siginfo_t si;
	int64_t deadline = chaos_now() + timeout_ns;

	for (;;) {
		int w = wait_change(pid, &si, deadline, true);

		if (w == 2)
			break;
		if (w == 1) { /* a traced survivor: let it go on */
			ptrace(PTRACE_CONT, pid, 0, (void *)(long)stop_signal(&si));
			continue;
		}
		kill_reap(pid);
		return -1;
	}
	return exit_code_of(&si);
}

void chaos_report(const struct chaos *c)
{
	printf("chaos %s: seed=0x%llx rounds=%u kills=%lu (stepped %lu, %lu steps, %lu asleep in a "
	       "syscall) early-exits=%lu mode=%s %.1fs\n",
	       c->scenario, (unsigned long long)c->seed, c->rounds_done, c->kills, c->kills_stepped,
	       c->steps, c->kills_blocked, c->early_exits, c->ptrace ? "ptrace" : "timed-sigkill",
	       (double)(chaos_now() - c->start_ns) / 1e9);
	fflush(stdout);
}

void chaos_region_name(char *buf, size_t n, const char *scenario)
{
	static unsigned seq;

	snprintf(buf, n, "/shmq-chaos-%s-%d-%u", scenario, (int)getpid(), seq++);
}
