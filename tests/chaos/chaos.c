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
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void chaos_sleep(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 };

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

/* Wait for a state change of pid until deadline: 1 (stopped, *st set),
 * 2 (exited or killed, *st set), 0 (deadline passed). */
static int wait_change(pid_t pid, int *st, int64_t deadline)
{
	unsigned spins = 0;

	for (;;) {
		pid_t w = waitpid(pid, st, WNOHANG | __WALL);

		if (w == pid)
			return WIFSTOPPED(*st) ? 1 : 2;
		if (w < 0 && errno != EINTR)
			return 2;
		if (chaos_now() > deadline)
			return 0;
		if (++spins < 64)
			sched_yield();
		else
			chaos_sleep(50000);
	}
}

/* A signal the victim received while stopped: passed on at the next resume. */
static int stop_signal(int st)
{
	int sig = WSTOPSIG(st);

	if ((st >> 16) == PTRACE_EVENT_STOP || sig == SIGTRAP)
		return 0;
	return sig;
}

/* Step the stopped victim up to n instructions; returns the steps taken. */
static unsigned step_victim(struct chaos *c, pid_t pid, unsigned n, int sig, bool *dead)
{
	unsigned i;
	int st;

	for (i = 0; i < n; i++) {
		int w;

		if (ptrace(PTRACE_SINGLESTEP, pid, 0, (void *)(long)sig) != 0)
			break;
		w = wait_change(pid, &st, chaos_now() + STEP_TIMEOUT_NS);
		if (w == 0) { /* resumed a sleeping system call */
			c->kills_blocked++;
			break;
		}
		if (w == 2) {
			*dead = true;
			break;
		}
		sig = stop_signal(st);
	}
	return i;
}

static void kill_reap(pid_t pid)
{
	int st;

	kill(pid, SIGKILL);
	while (waitpid(pid, &st, __WALL) == pid ? WIFSTOPPED(st) : errno == EINTR)
		;
}

bool chaos_strike(struct chaos *c, pid_t pid, int64_t delay_ns, int *status)
{
	int st, w;
	bool dead = false;
	unsigned steps;

	chaos_sleep(delay_ns);
	if (waitpid(pid, &st, WNOHANG | __WALL) == pid && !WIFSTOPPED(st)) {
		c->early_exits++;
		if (status)
			*status = st;
		return false;
	}
	if (!c->ptrace || ptrace(PTRACE_INTERRUPT, pid, 0, 0) != 0)
		goto kill;
	w = wait_change(pid, &st, chaos_now() + STOP_TIMEOUT_NS);
	if (w == 2) { /* exited on its own just now */
		c->early_exits++;
		if (status)
			*status = st;
		return false;
	}
	if (w == 1) {
		steps = step_victim(c, pid, (unsigned)chaos_rand(c, c->max_steps + 1), stop_signal(st),
				    &dead);
		c->steps += steps;
		c->kills_stepped += steps > 0;
	}
	if (dead) {
		c->early_exits++;
		return false;
	}
kill:
	kill_reap(pid);
	c->kills++;
	return true;
}

int chaos_reap(pid_t pid, int64_t timeout_ns)
{
	int st = 0;
	int64_t deadline = chaos_now() + timeout_ns;

	for (;;) {
		int w = wait_change(pid, &st, deadline);

		if (w == 2)
			break;
		if (w == 1) { /* a traced survivor: let it go on */
			ptrace(PTRACE_CONT, pid, 0, (void *)(long)stop_signal(st));
			continue;
		}
		kill_reap(pid);
		return -1;
	}
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
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
