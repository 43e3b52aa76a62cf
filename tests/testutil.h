/* SPDX-License-Identifier: MIT */
/* Helpers shared by the cmocka suites. */
#ifndef SHMQ_TESTUTIL_H
#define SHMQ_TESTUTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <malloc.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <shmq.h>

#include "core/time_int.h"
#include "core/wait_int.h"

/* A region name unique to this process and call site. */
static inline const char *tu_name(char *buf, size_t n, const char *tag)
{
	static unsigned seq;

	snprintf(buf, n, "/shmq-test-%s-%d-%u", tag, (int)getpid(), seq++);
	return buf;
}

/* Wait for a forked child and return its exit status (or 128 + signal). */
static inline int tu_wait_child(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

/* The fixture most suites share: a region of their own for each test. */
struct tu_region {
	char name[96];
	shmq_region *r;
};

/* A cmocka setup: a new region of size bytes, its name made from tag, as
 * the struct tu_region in *state. */
static inline int tu_region_setup(void **state, const char *tag, size_t size)
{
	struct tu_region *f = calloc(1, sizeof(*f));
	struct shmq_region_opts o = { .size = size };

	if (!f)
		return -1;
	tu_name(f->name, sizeof(f->name), tag);
	if (shmq_region_create(f->name, &o, &f->r)) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

/* The matching cmocka teardown. */
static inline int tu_region_teardown(void **state)
{
	struct tu_region *f = *state;

	shmq_region_close(f->r);
	shmq_region_unlink(f->name);
	free(f);
	return 0;
}

/* Children a test forked and may leave behind when an assertion fails:
 * tu_kids_track records one (returns pid), tu_kids_reap SIGKILLs and reaps
 * those still running (a teardown's job). */
struct tu_kids {
	pid_t pid[16];
	int n;
};

static inline pid_t tu_kids_track(struct tu_kids *k, pid_t pid)
{
	if (pid > 0 && k->n < (int)(sizeof(k->pid) / sizeof(k->pid[0])))
		k->pid[k->n++] = pid;
	return pid;
}

static inline void tu_kids_reap(struct tu_kids *k)
{
	for (int i = 0; i < k->n; i++) {
		if (waitpid(k->pid[i], NULL, WNOHANG) == 0) {
			kill(k->pid[i], SIGKILL);
			waitpid(k->pid[i], NULL, 0);
		}
	}
	k->n = 0;
}

/* In a forked child: attach to the region called name (the child's own
 * process-table slot); exits 90 when it cannot.  The alarm makes sure a
 * child never outlives a failed test by long. */
static inline shmq_region *tu_child_region(const char *name)
{
	shmq_region *r;

	alarm(60);
	if (shmq_region_open(name, &r))
		_exit(90);
	return r;
}

/* Sleep ns, resumed after a signal. */
static inline void tu_sleep_ns(int64_t ns)
{
	struct timespec ts = shmq__ns_to_timespec(ns);

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* How late the OS itself wakes a plain sleep of t right now: on a loaded
 * machine that lateness is not ours to answer for. */
static inline int64_t tu_os_lateness(int64_t t)
{
	int64_t t0 = shmq_now_ns();

	tu_sleep_ns(t);
	return shmq_now_ns() - t0 - t;
}

/* Descriptors this process has open (counting the one that reads them). */
static inline int tu_fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* A daemon that closed stdin, stdout and stderr: close 0-2, their copies in
 * saved[] for tu_stdio_restore.  Between the two nothing may print or
 * assert (cmocka writes to the closed stdout, and a failed assert would
 * leave it closed): collect results, restore, then assert. */
static inline void tu_stdio_close(int saved[3])
{
	for (int i = 0; i < 3; i++) {
		saved[i] = fcntl(i, F_DUPFD_CLOEXEC, 10);
		close(i);
	}
}

static inline void tu_stdio_restore(const int saved[3])
{
	for (int i = 0; i < 3; i++) {
		if (saved[i] >= 0) {
			dup2(saved[i], i);
			close(saved[i]);
		}
	}
}

/* How many of descriptors 0-2 are open (after tu_stdio_close: taken by a
 * descriptor of the library's, which it must not keep there). */
static inline int tu_stdio_taken(void)
{
	int n = 0;

	for (int i = 0; i < 3; i++)
		n += fcntl(i, F_GETFD) >= 0;
	return n;
}

/* Bytes the process's malloc holds now (0 where glibc's heap is not the
 * allocator: a sanitizer's or jemalloc's, which make a check of it moot). */
static inline size_t tu_heap_used(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
	return mallinfo2().uordblks;
#else
	return 0;
#endif
}

/* Process pid's main thread is asleep in a system call (state S in its
 * /proc stat): a test thread waits for it to block in the call it tests.
 * true when the file cannot be read, so a waiter never spins for ever. */
static inline bool tu_pid_sleeps(pid_t pid)
{
	char path[64], buf[256], *c;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)pid);
	f = fopen(path, "r");
	if (!f)
		return true;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	c = strrchr(buf, ')');
	return c && c[1] == ' ' && c[2] == 'S';
}

/* The same for this process's main thread. */
static inline bool tu_main_sleeps(void)
{
	return tu_pid_sleeps(getpid());
}

/*
 * Fork a child that stops this process (SIGSTOP) as soon as its main thread
 * sleeps in a system call, and continues it (SIGCONT) stop_ns later.
 * *cont_at, which must be in memory shared with the child (MAP_SHARED),
 * receives the time just before the SIGCONT.  Reap it with tu_wait_child
 * (0: it stopped and continued us).
 */
static inline pid_t tu_stop_while_asleep(int64_t stop_ns, int64_t *cont_at)
{
	pid_t me = getpid(), pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		int64_t give_up = shmq_now_ns() + 10 * SHMQ__NS_PER_SEC;

		while (!tu_pid_sleeps(me))
			if (shmq_now_ns() > give_up)
				_exit(90);
		if (kill(me, SIGSTOP))
			_exit(91);
		tu_sleep_ns(stop_ns);
		*cont_at = shmq_now_ns();
		_exit(kill(me, SIGCONT) ? 92 : 0);
	}
	return pid;
}

/* True when this process has no child left, zombie or alive. */
static inline bool tu_no_children(void)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	return waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 && errno == ECHILD;
}

/* The path of tests/helper_exec, beside the running test program. */
static inline void tu_helper_path(char *buf, size_t n)
{
	char self[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);

	assert_true(len > 0);
	self[len] = '\0';
	snprintf(buf, n, "%s/helper_exec", dirname(self));
}

/* tu_cas_hostile's answers besides the call's own result. */
#define TU_HOSTILE_NO_PTRACE INT_MIN       /* ptrace refused here: skip */
#define TU_HOSTILE_HUNG      (INT_MIN + 1) /* still running at the limit */
#define TU_HOSTILE_N         251u          /* values in the hostile cycle (a prime) */

/* Wait for the traced child's next stop or end, at most until until
 * (then kill it): true when it stopped. */
static inline bool tu_hostile_next(pid_t pid, int *st, int64_t until)
{
	for (;;) {
		pid_t w = waitpid(pid, st, WNOHANG);

		if (w == pid)
			return WIFSTOPPED(*st);
		if (w < 0)
			return false;
		if (shmq_now_ns() >= until) {
			kill(pid, SIGKILL);
			while (waitpid(pid, st, 0) == pid && WIFSTOPPED(*st))
				ptrace(PTRACE_CONT, pid, NULL, NULL);
			return false;
		}
		sched_yield();
	}
}

/* x86-64: a debug register watch on the child's word (reads and writes):
 * the child then stops after every instruction that touches it.  false
 * when the watch cannot be set (elsewhere: single steps instead). */
static inline bool tu_hostile_watch(pid_t pid, uintptr_t addr)
{
#if defined(__x86_64__)
	/* DR7: L0, RW0 = 11 (data reads and writes), LEN0 = 11 (4 bytes) */
	unsigned long dr7 = 1ul | 3ul << 16 | 3ul << 18;

	return (addr & 3) == 0 &&
	       ptrace(PTRACE_POKEUSER, pid, offsetof(struct user, u_debugreg[0]), (void *)addr) == 0 &&
	       ptrace(PTRACE_POKEUSER, pid, offsetof(struct user, u_debugreg[7]), (void *)dr7) == 0;
#else
	(void)pid;
	(void)addr;
	return false;
#endif
}

/*
 * The most effective hostile writer of a shared word: run call(open(arg,
 * &w)) in a traced child (open, untraced, makes the child's own handles and
 * says where the word is in its mapping, w) and store the next of
 * *basep + i * step (i = 1, 2, .. TU_HOSTILE_N - 1, 0, 1, ..; *basep read once
 * open returned, so open may set it through shared memory) in *word, the
 * same word in this process's mapping, each time the child has touched it
 * (a debug register watch; where there is none, after every instruction).
 * Every load of the word is then stale by the time of the CAS that follows
 * it, so every CAS on it fails, as no racing thread can make it (a CAS
 * loop on 2 cores loses a few in a row); a CAS that wins still finds a
 * new value at its next look.  Returns call's result, TU_HOSTILE_HUNG (the
 * child killed) when it has not returned after limit_ns, or
 * TU_HOSTILE_NO_PTRACE; *took_ns: how long.
 */
static inline int tu_cas_hostile(uint32_t *word, const uint32_t *basep, uint32_t step,
				 void *(*open)(void *, uint32_t **), int (*call)(void *), void *arg,
				 int64_t limit_ns, int64_t *took_ns)
{
	int fds[2], st, rc = TU_HOSTILE_HUNG, req;
	int64_t t0, until;
	uint32_t base;
	uintptr_t addr;
	unsigned k = 0;
	pid_t pid;

	*took_ns = 0;
	if (pipe(fds))
		return TU_HOSTILE_NO_PTRACE;
	pid = fork();
	if (pid < 0)
		return TU_HOSTILE_NO_PTRACE;
	if (pid == 0) {
		uint32_t *w = NULL;
		int r;

		close(fds[0]);
		alarm(60);
		arg = open(arg, &w);
		addr = (uintptr_t)w;
		if (!arg || write(fds[1], &addr, sizeof(addr)) != (ssize_t)sizeof(addr))
			_exit(90);
		if (ptrace(PTRACE_TRACEME, 0, NULL, NULL))
			_exit(91);
		raise(SIGSTOP);
		r = call(arg);
		if (write(fds[1], &r, sizeof(r)) != (ssize_t)sizeof(r))
			_exit(92);
		_exit(0);
	}
	close(fds[1]);
	if (waitpid(pid, &st, 0) != pid || !WIFSTOPPED(st) ||
	    read(fds[0], &addr, sizeof(addr)) != (ssize_t)sizeof(addr)) {
		close(fds[0]);
		if (WIFSTOPPED(st))
			kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		return WIFEXITED(st) && WEXITSTATUS(st) == 91 ? TU_HOSTILE_NO_PTRACE : TU_HOSTILE_HUNG;
	}
	req = tu_hostile_watch(pid, addr) ? PTRACE_CONT : PTRACE_SINGLESTEP;
	base = __atomic_load_n(basep, __ATOMIC_SEQ_CST);
	t0 = shmq_now_ns();
	until = t0 + limit_ns;
	for (int sig = 0;;) {
		if (ptrace((enum __ptrace_request)req, pid, NULL, (void *)(intptr_t)sig)) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			break;
		}
		if (!tu_hostile_next(pid, &st, until))
			break; /* exited, or killed at the limit */
		sig = WSTOPSIG(st) == SIGTRAP ? 0 : WSTOPSIG(st);
		__atomic_store_n(word, base + ++k % TU_HOSTILE_N * step, __ATOMIC_SEQ_CST);
	}
	*took_ns = shmq_now_ns() - t0;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
	    read(fds[0], &rc, sizeof(rc)) != (ssize_t)sizeof(rc))
		rc = TU_HOSTILE_HUNG;
	close(fds[0]);
	return rc;
}

/* Kill the child pid asleep on an object with listed sleepers ("Listed
 * sleepers", core/wait_int.h) at the right moment: stopped (so frozen), with
 * the object counting one sleeper and listing one.  A waiter sleeps in
 * slices, and between two it is counted out for a moment (or counted in but
 * not listed yet); stopped there, it is let go on and tried again.  Reaps
 * the child. */
static inline void tu_kill_listed_sleeper(pid_t pid, const uint32_t *sleepers,
					  const uint32_t *ids)
{
	for (int tries = 0;; tries++) {
		unsigned listed = 0;
		int st;

		assert_true(tries < 1000);
		assert_int_equal(kill(pid, SIGSTOP), 0);
		assert_int_equal(waitpid(pid, &st, WUNTRACED), pid);
		assert_true(WIFSTOPPED(st));
		for (unsigned i = 0; i < SHMQ__SLEEPER_LIST; i++)
			listed += __atomic_load_n(&ids[i], __ATOMIC_SEQ_CST) != 0;
		if (__atomic_load_n(sleepers, __ATOMIC_SEQ_CST) == 1 && listed == 1)
			break;
		assert_int_equal(kill(pid, SIGCONT), 0);
		usleep(1000);
	}
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(tu_wait_child(pid), 128 + SIGKILL);
}

#endif
