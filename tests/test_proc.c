/* SPDX-License-Identifier: MIT */
/* Processes: entries, shmq_dispatch, spawn and exec with posix_spawn, the
 * argument and the region handed over, pidfd lifecycle, nothing left behind. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "testutil.h"

#include "core/atomic_int.h"
#include "helper_talk.h"
#include "core/region_int.h"
#include "core/registry_int.h"

#define SMALL ((size_t)1 << 20)
#define NCHILD 64
#define BIG_ARG ((size_t)64 << 10)

/* The blob children of this program share with the parent. */
struct board {
	uint32_t sum;      /* children add their argument here */
	uint32_t go;       /* the parent sets it to let waiting children finish */
	uint32_t ids[NCHILD]; /* process-table ids the children report */
	uint32_t seen;     /* children that reported */
};

static struct board *board_of(shmq_region *r)
{
	struct board *b;

	if (shmq__obj_find(r, "board", SHMQ__OBJ_BLOB, (void **)&b, NULL))
		return NULL;
	return b;
}

/* ---- entries (run in the children) ---- */

static int exit_with(shmq_region *r, const void *arg, size_t len)
{
	int code;

	if (len != sizeof(code))
		return 100;
	memcpy(&code, arg, sizeof(code));
	return code;
}
SHMQ_ENTRY(exit_with);

/* Two different entries under one name: a programming error the registry
 * refuses by name, in the parent and in the child alike.  twin_a goes in
 * twice (a no-op the second time). */
static struct shmq_entry twin_a = { "twin", exit_with, NULL };
static struct shmq_entry twin_b = { "twin", exit_with, NULL };

__attribute__((constructor)) static void twins_register(void)
{
	shmq_entry_register(&twin_a);
	shmq_entry_register(&twin_a);
	shmq_entry_register(&twin_b);
}

static int die_by(shmq_region *r, const void *arg, size_t len)
{
	int sig;

	if (len != sizeof(sig))
		return 100;
	memcpy(&sig, arg, sizeof(sig));
	kill(getpid(), sig);
	return 101; /* not reached for fatal signals */
}
SHMQ_ENTRY(die_by);

/* The signals a child's disposition and mask are checked for: the standard
 * ones and the real-time ones an application may use (glibc keeps the two
 * below SIGRTMIN for itself). */
static bool sig_checked(int sig)
{
	return (sig >= 1 && sig < 32) || (sig >= SIGRTMIN && sig <= SIGRTMAX);
}

/* Once a byte arrives on stdin (the parent has put its own dispositions
 * back, so that its SIGCHLD no longer reaps us): 0 when no checked signal
 * is blocked, the three are not ignored, and SIGHUP and SIGUSR2 (which the
 * parent ignored) still are; else the first signal found wrong, plus 100
 * when it is blocked.  Other signals are left alone: what the test's own
 * environment ignores (a background job's SIGINT) is inherited, rightly.
 * A handler is the child's own (a sanitizer's runtime installs some): exec
 * reset the parent's. */
static int sig_state(shmq_region *r, const void *arg, size_t len)
{
	static const int reset[] = { SIGCHLD, SIGPIPE, SIGXFSZ }, kept[] = { SIGHUP, SIGUSR2 };
	struct sigaction sa;
	sigset_t blocked;
	char c;

	(void)r;
	(void)arg;
	(void)len;
	if (read(0, &c, 1) != 1)
		return 99;
	sigprocmask(SIG_SETMASK, NULL, &blocked);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig_checked(sig) && sigismember(&blocked, sig))
			return 100 + sig;
	for (size_t i = 0; i < 3; i++)
		if (sigaction(reset[i], NULL, &sa) || sa.sa_handler == SIG_IGN)
			return reset[i];
	for (size_t i = 0; i < 2; i++)
		if (sigaction(kept[i], NULL, &sa) || sa.sa_handler != SIG_IGN)
			return kept[i];
	return 0;
}
SHMQ_ENTRY(sig_state);

static int sleeper(shmq_region *r, const void *arg, size_t len)
{
	struct timespec ts = { 60, 0 };

	nanosleep(&ts, NULL); /* the test kills us long before */
	return 0;
}
SHMQ_ENTRY(sleeper);

static int check_big(shmq_region *r, const void *arg, size_t len)
{
	const uint8_t *p = arg;

	if (len != BIG_ARG)
		return 1;
	for (size_t i = 0; i < len; i++)
		if (p[i] != helper_pattern(i))
			return 2;
	return 0;
}
SHMQ_ENTRY(check_big);

/* Adds its argument to board.sum, reports its process-table id, then waits
 * for board.go (bounded) so the parent can look at the table. */
static int worker(shmq_region *r, const void *arg, size_t len)
{
	struct board *b = r ? board_of(r) : NULL;
	uint32_t idx;

	if (!b || len != sizeof(idx))
		return 100;
	memcpy(&idx, arg, sizeof(idx));
	shmq__fetch_add_seq_cst(&b->sum, idx + 1);
	shmq__store_seq_cst(&b->ids[idx], shmq__region_self(r));
	shmq__fetch_add_seq_cst(&b->seen, 1);
	for (int i = 0; i < 60000 && !shmq__load_seq_cst(&b->go); i++) /* past the parent's 30 s */
		usleep(1000);
	return (int)(idx & 0x7f);
}
SHMQ_ENTRY(worker);

/* Exit 0 when the only descriptors open are 0-2, the inherited region (3)
 * and the region's own mapping descriptor; else 10 + the stray descriptor. */
static int list_fds(shmq_region *r, const void *arg, size_t len)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int bad = 0;

	if (!d || !r)
		return 99;
	while ((de = readdir(d))) {
		int fd = atoi(de->d_name);

		if (de->d_name[0] == '.' || fd == dirfd(d) || fd <= 3 || fd == shmq__region_fd(r))
			continue;
		bad = 10 + fd;
	}
	closedir(d);
	return bad;
}
SHMQ_ENTRY(list_fds);

static int no_region(shmq_region *r, const void *arg, size_t len)
{
	return r == NULL && len == 0 && getenv("SHMQ_REGION_FD") == NULL ? 0 : 1;
}
SHMQ_ENTRY(no_region);

/* ---- helpers ---- */

static shmq_region *region_new(void)
{
	struct shmq_region_opts o = { .size = SMALL };
	shmq_region *r;
	struct board *b;

	assert_int_equal(shmq_region_create(NULL, &o, &r), 0);
	assert_int_equal(shmq__obj_create(r, "board", SHMQ__OBJ_BLOB, sizeof(*b), NULL, NULL,
					  (void **)&b), 0);
	return r;
}

static int spawn_int(shmq_region *r, const char *entry, int v, shmq_proc **p)
{
	return shmq_proc_spawn(r, entry, &v, sizeof(v), NULL, p);
}

static int join_code(shmq_proc *p)
{
	assert_int_equal(shmq_proc_join(p, SHMQ_FOREVER), 0);
	return shmq_proc_exitcode(p);
}

/* The exit code of p, without cmocka (in forgot_main's processes). */
static int join_code_raw(shmq_proc *p)
{
	int rc = shmq_proc_join(p, 30 * 1000000000LL);

	return rc ? rc : shmq_proc_exitcode(p);
}

/* ---- tests ---- */

static void test_exit_codes(void **state)
{
	static const int codes[] = { 0, 1, 7, 42, 255 };
	shmq_region *r = region_new();
	shmq_proc *p;

	(void)state;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		assert_int_equal(spawn_int(r, "exit_with", codes[i], &p), 0);
		assert_true(shmq_proc_pid(p) > 0);
		assert_int_equal(join_code(p), codes[i]);
		assert_false(shmq_proc_is_alive(p));
		assert_int_equal(shmq_proc_join(p, SHMQ_NOWAIT), 0); /* joining again is fine */
		assert_int_equal(shmq_proc_kill(p, SIGTERM), 0);     /* exited: not an error */
		shmq_proc_close(p);
	}
	/* Exit statuses keep their low 8 bits, as for any process. */
	assert_int_equal(spawn_int(r, "exit_with", 256 + 3, &p), 0);
	assert_int_equal(join_code(p), 3);
	shmq_proc_close(p);
	shmq_region_close(r);
	assert_true(tu_no_children());
}

static void test_signal_statuses(void **state)
{
	static const int sigs[] = { SIGTERM, SIGKILL, SIGHUP, SIGUSR1 };
	shmq_proc *p;

	(void)state;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		assert_int_equal(spawn_int(NULL, "die_by", sigs[i], &p), 0);
		assert_int_equal(join_code(p), -sigs[i]);
		shmq_proc_close(p);
	}
	assert_int_equal(shmq_proc_spawn(NULL, "sleeper", NULL, 0, NULL, &p), 0);
	assert_true(shmq_proc_is_alive(p));
	assert_int_equal(shmq_proc_exitcode(p), -EAGAIN);
	assert_int_equal(shmq_proc_kill(p, 0), -EINVAL);
	assert_int_equal(shmq_proc_kill(p, SIGINT), 0);
	assert_int_equal(join_code(p), -SIGINT);
	shmq_proc_close(p);
	assert_true(tu_no_children());
}

static void test_join_timeout(void **state)
{
	const int64_t t = 80 * 1000000LL;
	shmq_proc *p;
	int64_t t0, dt;

	(void)state;
	assert_int_equal(shmq_proc_spawn(NULL, "sleeper", NULL, 0, NULL, &p), 0);
	assert_int_equal(shmq_proc_join(p, SHMQ_NOWAIT), -EAGAIN);
	t0 = shmq_now_ns();
	assert_int_equal(shmq_proc_join(p, t), -ETIMEDOUT);
	dt = shmq_now_ns() - t0;
	assert_true(dt >= t);                 /* never early */
	assert_true(dt < t + 2000 * 1000000LL); /* and not stuck (loose: shared box) */
	assert_true(shmq_proc_is_alive(p));
	assert_int_equal(shmq_proc_kill(p, SIGKILL), 0);
	/* A retried join sees the exit well before its timeout. */
	assert_int_equal(shmq_proc_join(p, 10 * 1000000000LL), 0);
	assert_int_equal(shmq_proc_exitcode(p), -SIGKILL);
	shmq_proc_close(p);
	assert_true(tu_no_children());
}

/* A join stopped (SIGSTOP) in its wait and continued after its timeout
 * returns then: the deadline is on CLOCK_MONOTONIC, which runs on while the
 * caller is stopped; it does not wait again what was left when it stopped. */
static void test_join_timeout_across_stop(void **state)
{
	const int64_t t = 400 * 1000000LL;
	int64_t *cont_at, cont, t0, end;
	shmq_proc *p;
	pid_t stopper;

	(void)state;
	cont_at = mmap(NULL, sizeof(*cont_at), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		       -1, 0);
	assert_true(cont_at != MAP_FAILED);
	assert_int_equal(shmq_proc_spawn(NULL, "sleeper", NULL, 0, NULL, &p), 0);
	t0 = shmq_now_ns();
	stopper = tu_stop_while_asleep(2 * t, cont_at);
	assert_int_equal(shmq_proc_join(p, t), -ETIMEDOUT);
	end = shmq_now_ns();
	cont = *cont_at;
	munmap(cont_at, sizeof(*cont_at));
	assert_int_equal(shmq_proc_kill(p, SIGKILL), 0);
	assert_int_equal(shmq_proc_join(p, SHMQ_FOREVER), 0);
	shmq_proc_close(p);
	assert_int_equal(tu_wait_child(stopper), 0);
	assert_true(tu_no_children());
	assert_true(end - t0 >= t);
	assert_true(end - cont < t / 2); /* not t more (less the time before the stop) */
}

static void test_unknown_entry(void **state)
{
	char *argv[] = { "x", "--shmq-entry=no_such_entry", NULL };
	shmq_proc *p = NULL;
	pid_t pid;
	int fds = tu_fd_count();

	(void)state;
	/* The parent refuses before spawning anything. */
	assert_int_equal(shmq_proc_spawn(NULL, "no_such_entry", NULL, 0, NULL, &p), -ENOENT);
	assert_null(p);
	assert_true(tu_no_children());
	assert_int_equal(tu_fd_count(), fds);
	/* A child told to run an entry it lacks exits with SHMQ_EXIT_NOENTRY. */
	assert_int_equal(posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ), 0);
	assert_int_equal(tu_wait_child(pid), SHMQ_EXIT_NOENTRY);
	/* Argument checks. */
	assert_int_equal(shmq_proc_spawn(NULL, NULL, NULL, 0, NULL, &p), -EINVAL);
	assert_int_equal(shmq_proc_spawn(NULL, "exit_with", NULL, 4, NULL, &p), -EINVAL);
	{
		struct shmq_proc_opts o = { .flags = 0x80 };

		assert_int_equal(shmq_proc_spawn(NULL, "exit_with", NULL, 0, &o, &p), -EINVAL);
		o.flags = 0;
		o.reserved[2] = 1;
		assert_int_equal(shmq_proc_spawn(NULL, "exit_with", NULL, 0, &o, &p), -EINVAL);
	}
}

static void test_duplicate_entry(void **state)
{
	char *argv[] = { "x", "--shmq-entry=twin", NULL };
	shmq_proc *p = NULL;
	int code = 7;
	pid_t pid;

	(void)state;
	/* Refused in the parent: neither twin is picked silently. */
	assert_int_equal(shmq_proc_spawn(NULL, "twin", &code, sizeof(code), NULL, &p), -EEXIST);
	assert_null(p);
	assert_true(tu_no_children());
	/* A child told to run it runs neither. */
	assert_int_equal(posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ), 0);
	assert_int_equal(tu_wait_child(pid), SHMQ_EXIT_NOENTRY);
	/* A name registered once, by one struct, is unaffected. */
	assert_int_equal(shmq_proc_spawn(NULL, "exit_with", &code, sizeof(code), NULL, &p), 0);
	assert_int_equal(shmq_proc_join(p, INT64_C(10000000000)), 0);
	assert_int_equal(shmq_proc_exitcode(p), 7);
	shmq_proc_close(p);
}

/* The registry itself: the same rules whatever order items arrive in, and a
 * sorted snapshot that finds every unambiguous name and refuses the others. */
struct item {
	const char *name;
	struct item *next;
};

static const char *item_name(const void *it)
{
	return ((const struct item *)it)->name;
}

static void *item_next(const void *it)
{
	return ((const struct item *)it)->next;
}

static void item_set_next(void *it, void *next)
{
	((struct item *)it)->next = next;
}

static const struct shmq__registry_ops item_ops = { item_name, item_next, item_set_next };

static void registry_check(struct item *v, const int *order, int n)
{
	struct shmq__registry reg = SHMQ__REGISTRY_INIT(&item_ops);
	struct shmq__registry_snap snap = { 0 };
	uint32_t ver = shmq__registry_version(&reg);
	void *it;
	int i, dups = 0;

	for (i = 0; i < n; i++) {
		int rc = shmq__registry_add(&reg, &v[order[i]]);

		assert_true(rc == 0 || rc == -EEXIST);
		dups += rc == -EEXIST;
	}
	assert_int_equal(dups, 1); /* whichever "b" came second */
	assert_int_equal(shmq__registry_add(&reg, &v[0]), 0); /* again: a no-op */
	assert_int_not_equal(shmq__registry_version(&reg), ver);
	assert_int_equal(shmq__registry_add(&reg, NULL), -EINVAL);
	assert_int_equal(shmq__registry_find(&reg, "a", &it), 0);
	assert_ptr_equal(it, &v[0]);
	assert_int_equal(shmq__registry_find(&reg, "b", &it), -EEXIST);
	assert_int_equal(shmq__registry_find(&reg, "zz", &it), -ENOENT);
	assert_int_equal(shmq__registry_snap_take(&reg, &snap), 0);
	assert_int_equal(snap.n, 4);
	assert_int_equal(snap.version, shmq__registry_version(&reg));
	assert_int_equal(shmq__registry_snap_find(&snap, "a"), 0);
	assert_int_equal(shmq__registry_snap_find(&snap, "b"), -EEXIST);
	assert_int_equal(shmq__registry_snap_find(&snap, "c"), 3);
	assert_int_equal(shmq__registry_snap_find(&snap, "bb"), -ENOENT);
	for (i = 0; i < (int)snap.n; i++)
		assert_int_not_equal(snap.v[i].hash, 0);
	shmq__registry_snap_free(&snap);
}

static void test_registry_rules(void **state)
{
	struct item v[4] = { { "a", NULL }, { "b", NULL }, { "b", NULL }, { "c", NULL } };
	const int fwd[4] = { 0, 1, 2, 3 }, rev[4] = { 3, 2, 1, 0 };

	(void)state;
	registry_check(v, fwd, 4);
	memset(v, 0, sizeof(v));
	v[0].name = "a", v[1].name = "b", v[2].name = "b", v[3].name = "c";
	registry_check(v, rev, 4);
}

static void test_big_argument(void **state)
{
	uint8_t *buf = malloc(BIG_ARG);
	shmq_proc *p;

	(void)state;
	assert_non_null(buf);
	for (size_t i = 0; i < BIG_ARG; i++)
		buf[i] = helper_pattern(i);
	assert_int_equal(shmq_proc_spawn(NULL, "check_big", buf, BIG_ARG, NULL, &p), 0);
	assert_int_equal(join_code(p), 0);
	shmq_proc_close(p);
	/* One flipped byte is noticed: the check above can fail. */
	buf[BIG_ARG / 2] ^= 1;
	assert_int_equal(shmq_proc_spawn(NULL, "check_big", buf, BIG_ARG, NULL, &p), 0);
	assert_int_equal(join_code(p), 2);
	shmq_proc_close(p);
	/* The wrong length is noticed too. */
	assert_int_equal(shmq_proc_spawn(NULL, "check_big", buf, BIG_ARG - 1, NULL, &p), 0);
	assert_int_equal(join_code(p), 1);
	shmq_proc_close(p);
	free(buf);
}

static void test_64_children(void **state)
{
	shmq_region *r = region_new();
	struct board *b = board_of(r);
	shmq_proc *p[NCHILD];
	uint32_t want = 0;

	(void)state;
	for (uint32_t i = 0; i < NCHILD; i++) {
		assert_int_equal(shmq_proc_spawn(r, "worker", &i, sizeof(i), NULL, &p[i]), 0);
		want += i + 1;
	}
	for (int i = 0; i < 30000 && shmq__load_seq_cst(&b->seen) < NCHILD; i++)
		usleep(1000);
	assert_int_equal(shmq__load_seq_cst(&b->seen), NCHILD);
	assert_int_equal(shmq__load_seq_cst(&b->sum), want);
	/* Every child entered the process table under its own, live id. */
	for (uint32_t i = 0; i < NCHILD; i++) {
		assert_int_not_equal(b->ids[i], 0);
		assert_int_not_equal(b->ids[i], shmq__region_self(r));
		assert_int_equal(shmq__region_id_alive(r, b->ids[i]), 1);
		assert_true(shmq_proc_is_alive(p[i]));
	}
	shmq__store_seq_cst(&b->go, 1);
	for (uint32_t i = 0; i < NCHILD; i++) {
		assert_int_equal(join_code(p[i]), (int)(i & 0x7f));
		assert_int_equal(shmq__region_id_alive(r, b->ids[i]), 0);
		shmq_proc_close(p[i]);
	}
	shmq_region_close(r);
	assert_true(tu_no_children());
}

static void test_killed_child_leaves_table(void **state)
{
	shmq_region *r = region_new();
	struct board *b = board_of(r);
	uint32_t idx = 5;
	shmq_proc *p;

	(void)state;
	assert_int_equal(shmq_proc_spawn(r, "worker", &idx, sizeof(idx), NULL, &p), 0);
	for (int i = 0; i < 30000 && !shmq__load_seq_cst(&b->seen); i++)
		usleep(1000);
	assert_int_equal(shmq__region_id_alive(r, b->ids[idx]), 1);
	assert_int_equal(shmq_proc_kill(p, SIGKILL), 0);
	assert_int_equal(join_code(p), -SIGKILL);
	/* It never left the table itself; liveness still reads it as dead. */
	assert_int_equal(shmq__region_id_alive(r, b->ids[idx]), 0);
	shmq_proc_close(p);
	shmq_region_close(r);
}

static void test_no_leaks(void **state)
{
	shmq_region *r = region_new();
	int stray[2], before;
	shmq_proc *p;
	uint8_t one = 1;
	pid_t pid;

	(void)state;
	/* A descriptor the host opened without O_CLOEXEC must not reach the child. */
	assert_int_equal(pipe(stray), 0);
	before = tu_fd_count();
	for (int i = 0; i < 8; i++) {
		assert_int_equal(shmq_proc_spawn(r, "list_fds", &one, 1, NULL, &p), 0);
		assert_int_equal(join_code(p), 0);
		shmq_proc_close(p);
	}
	assert_int_equal(tu_fd_count(), before);
	assert_true(tu_no_children());
	/* Closing a running child kills and reaps it: no zombie, no orphan. */
	assert_int_equal(shmq_proc_spawn(NULL, "sleeper", NULL, 0, NULL, &p), 0);
	pid = shmq_proc_pid(p);
	shmq_proc_close(p);
	assert_true(tu_no_children());
	assert_int_equal(kill(pid, 0), -1);
	assert_int_equal(tu_fd_count(), before);
	close(stray[0]);
	close(stray[1]);
	shmq_region_close(r);
}

static void test_spawn_without_region(void **state)
{
	shmq_proc *p;

	(void)state;
	/* Even with a stale SHMQ_REGION_FD in our environment, no region arrives. */
	setenv("SHMQ_REGION_FD", "3", 1);
	assert_int_equal(shmq_proc_spawn(NULL, "no_region", NULL, 0, NULL, &p), 0);
	unsetenv("SHMQ_REGION_FD");
	assert_int_equal(join_code(p), 0);
	shmq_proc_close(p);
}

/* A region handle inherited across fork() names the parent's attachment:
 * the child's spawn and exec refuse it with -EBADF, as every call in the
 * region does, and still start processes without a region. */
static void test_spawn_forked_region(void **state)
{
	shmq_region *r = region_new();
	int status;
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *argv[] = { "true", NULL };
		shmq_proc *p = NULL;
		int v = 5, bad = 0;

		if (shmq_proc_spawn(r, "exit_with", &v, sizeof(v), NULL, &p) != -EBADF)
			bad |= 1;
		if (shmq_proc_exec(r, argv, NULL, &p) != -EBADF)
			bad |= 2;
		if (shmq_proc_spawn(NULL, "exit_with", &v, sizeof(v), NULL, &p) != 0 ||
		    join_code_raw(p) != 5)
			bad |= 4;
		_exit(bad);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	shmq_region_close(r);
}

static void test_exec_talks_over_region(void **state)
{
	char path[PATH_MAX + 16], name[96];
	char *argv[] = { path, "region", NULL };
	struct shmq_region_opts o = { .size = SMALL };
	struct talk *t;
	shmq_region *r;
	shmq_proc *p;

	(void)state;
	tu_helper_path(path, sizeof(path));
	/* Once anonymous, once named. */
	for (int named = 0; named < 2; named++) {
		assert_int_equal(shmq_region_create(named ? tu_name(name, sizeof(name), "exec") : NULL,
						    &o, &r), 0);
		assert_int_equal(shmq__obj_create(r, TALK_NAME, SHMQ__OBJ_BLOB, sizeof(*t), NULL,
						  NULL, (void **)&t), 0);
		strcpy(t->msg, "ping");
		shmq__store_release(&t->state, TALK_PING); /* pairs with the helper's load_acquire */
		assert_int_equal(shmq_proc_exec(r, argv, NULL, &p), 0);
		for (int i = 0; i < 30000 && shmq__load_acquire(&t->state) != TALK_PONG; i++)
			usleep(1000); /* pairs with the helper's store_release of TALK_PONG */
		assert_int_equal(shmq__load_acquire(&t->state), TALK_PONG);
		{
			char want[56];

			snprintf(want, sizeof(want), "pong %d", (int)shmq_proc_pid(p));
			assert_string_equal(t->msg, want);
		}
		assert_int_equal(shmq__region_id_alive(r, t->self_id), 1);
		shmq__store_release(&t->state, TALK_BYE);
		assert_int_equal(join_code(p), 0);
		assert_int_equal(shmq__region_id_alive(r, t->self_id), 0);
		shmq_proc_close(p);
		shmq_region_close(r);
		if (named)
			assert_int_equal(shmq_region_unlink(name), 0);
	}
	assert_true(tu_no_children());
}

/* An exec'ed program inherits the region and talks over a shmq pipe. */
static void test_exec_talks_over_pipe(void **state)
{
	char path[PATH_MAX + 16], buf[128], want[128];
	char *argv[] = { path, "pipe", NULL };
	shmq_region *r = region_new();
	shmq_pipe *a, *b;
	shmq_proc *p;

	(void)state;
	tu_helper_path(path, sizeof(path));
	assert_int_equal(shmq_pipe_create(r, "chan", NULL, &a, &b), 0);
	/* An end never opened counts as held by its creator for as long as the
	 * creator lives (pipe.h): open end 0 so that closing it is an EOF. */
	{
		shmq_pipe *a0 = a;

		assert_int_equal(shmq_pipe_open(r, "chan", 0, &a), 0);
		shmq_pipe_close(a0);
	}
	assert_int_equal(shmq_proc_exec(r, argv, NULL, &p), 0);
	for (int i = 0; i < 100; i++) {
		char msg[32];
		ssize_t n;

		snprintf(msg, sizeof(msg), "m%d", i);
		assert_int_equal(shmq_pipe_send(a, msg, strlen(msg), 10 * 1000000000LL), 0);
		n = shmq_pipe_recv(a, buf, sizeof(buf) - 1, 10 * 1000000000LL);
		assert_true(n > 0);
		buf[n] = '\0';
		snprintf(want, sizeof(want), "pong %d %s", (int)shmq_proc_pid(p), msg);
		assert_string_equal(buf, want);
		if (i == 0)
			shmq_pipe_close(b); /* the helper holds end 1 now */
	}
	shmq_pipe_close(a); /* EOF for the helper, which then exits 0 */
	{
		int code = join_code(p);

		if (code)
			print_message("helper exit %d\n", code);
		assert_int_equal(code, 0);
	}
	shmq_proc_close(p);
	shmq_region_close(r);
}

static ssize_t read_all(int fd, char *buf, size_t cap)
{
	size_t n = 0;

	for (;;) {
		ssize_t k = read(fd, buf + n, cap - 1 - n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	buf[n] = '\0';
	return (ssize_t)n;
}

static void test_exec_options(void **state)
{
	char path[PATH_MAX + 16], out[4096];
	char *argv[] = { path, "print", NULL };
	char *envp[] = { "SHMQ_TEST_VAR=hello", "SHMQ_REGION_FD=7", NULL };
	struct shmq_proc_opts o = { .envp = envp, .cwd = "/", .stdin_fd = SHMQ_PROC_DEVNULL };
	shmq_region *r = region_new();
	int fds[2], before = tu_fd_count();
	shmq_proc *p;

	(void)state;
	tu_helper_path(path, sizeof(path));
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	o.stdout_fd = fds[1];
	assert_int_equal(shmq_proc_exec(r, argv, &o, &p), 0);
	close(fds[1]);
	read_all(fds[0], out, sizeof(out));
	close(fds[0]);
	assert_int_equal(join_code(p), 0);
	shmq_proc_close(p);
	/* The caller's SHMQ_REGION_FD is replaced by the region's. */
	assert_string_equal(out, "cwd=/ var=hello region=3\n");

	/* Without a region the variable is gone; stdout on a low descriptor works. */
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	{
		int lowfd = fds[1], saved = dup(1);

		/* make the pipe's write end the caller's fd 1 and pass fd 1 itself:
		 * that is SHMQ_PROC_INHERIT's case and must still reach the child */
		assert_int_equal(dup2(lowfd, 1), 1);
		o.stdout_fd = 1;
		assert_int_equal(shmq_proc_exec(NULL, argv, &o, &p), 0);
		assert_int_equal(dup2(saved, 1), 1);
		close(saved);
	}
	close(fds[1]);
	read_all(fds[0], out, sizeof(out));
	close(fds[0]);
	assert_int_equal(join_code(p), 0);
	shmq_proc_close(p);
	assert_string_equal(out, "cwd=/ var=hello region=-\n");

	/* Only 0-2 and the region reach an exec'ed program. */
	argv[1] = "fds";
	o.cwd = NULL;
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	o.stdout_fd = fds[1];
	assert_int_equal(shmq_proc_exec(r, argv, &o, &p), 0);
	close(fds[1]);
	read_all(fds[0], out, sizeof(out));
	close(fds[0]);
	assert_int_equal(join_code(p), 0);
	shmq_proc_close(p);
	assert_string_equal(out, "0\n1\n2\n3\n");
	assert_int_equal(tu_fd_count(), before);
	shmq_region_close(r);
}

/* Make descriptors 3 and 4 open on /dev/null without O_CLOEXEC, as a careless
 * host program might leave them; saved[] keeps what they were. */
static void stray_low_fds(int saved[2])
{
	for (int fd = 3; fd <= 4; fd++) {
		int n;

		saved[fd - 3] = fcntl(fd, F_DUPFD_CLOEXEC, 10); /* -1: it was closed */
		n = open("/dev/null", O_RDONLY);
		assert_true(n >= 0);
		if (n != fd) {
			assert_int_equal(dup2(n, fd), fd); /* dup2 clears FD_CLOEXEC */
			close(n);
		}
	}
}

static void restore_low_fds(const int saved[2])
{
	for (int fd = 3; fd <= 4; fd++) {
		if (saved[fd - 3] < 0) {
			close(fd);
			continue;
		}
		dup2(saved[fd - 3], fd);
		fcntl(fd, F_SETFD, FD_CLOEXEC); /* the suite opens everything O_CLOEXEC */
		close(saved[fd - 3]);
	}
}

/* The child's descriptors >= 3 that are the null device (the strays). */
static int null_fds(shmq_region *r, const void *arg, size_t len)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int mask = 0;

	(void)r;
	(void)arg;
	(void)len;
	if (!d)
		return 99;
	while ((de = readdir(d))) {
		int fd = atoi(de->d_name);
		struct stat st;

		if (de->d_name[0] == '.' || fd < 3 || fd == dirfd(d) || fstat(fd, &st))
			continue;
		if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3))
			mask |= 1 << (fd < 7 ? fd : 7);
	}
	closedir(d);
	return mask;
}
SHMQ_ENTRY(null_fds);

static void exec_fds(shmq_region *r, char *out, size_t n)
{
	char path[PATH_MAX + 16];
	char *argv[] = { path, "fds", NULL };
	struct shmq_proc_opts o = { .stdout_fd = 0 };
	shmq_proc *p;
	int fds[2];

	tu_helper_path(path, sizeof(path));
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	o.stdout_fd = fds[1];
	assert_int_equal(shmq_proc_exec(r, argv, &o, &p), 0);
	close(fds[1]);
	read_all(fds[0], out, n);
	close(fds[0]);
	assert_int_equal(join_code(p), 0);
	shmq_proc_close(p);
}

/* Issue 14 item 9: descriptors 3 and 4 the caller opened without O_CLOEXEC
 * reach no child of shmq_proc_exec, shmq_proc_spawn or shmq_run: only 0-2
 * and what the library passes (the region at 3, the argument at 4). */
static void test_no_stray_low_fds(void **state)
{
	char path[PATH_MAX + 16], plain[256], with_region[256], out[256];
	char *argv[] = { path, "fds", NULL };
	struct shmq_run_opts ro = { .capture = SHMQ_STDOUT };
	struct shmq_run_result res[2];
	int saved[2], code[4] = { -1, -1, -1, -1 }, rc[2];
	uint8_t one = 1;
	shmq_region *r;
	shmq_proc *p;

	(void)state;
	tu_helper_path(path, sizeof(path));
	stray_low_fds(saved); /* first: the region's descriptor must not sit at 3 or 4 */
	r = region_new();
	exec_fds(NULL, plain, sizeof(plain));
	exec_fds(r, with_region, sizeof(with_region));
	if (shmq_proc_spawn(NULL, "null_fds", NULL, 0, NULL, &p) == 0) {
		code[0] = join_code(p);
		shmq_proc_close(p);
	}
	if (shmq_proc_spawn(r, "null_fds", NULL, 0, NULL, &p) == 0) {
		code[1] = join_code(p);
		shmq_proc_close(p);
	}
	if (shmq_proc_spawn(NULL, "null_fds", &one, 1, NULL, &p) == 0) {
		code[2] = join_code(p);
		shmq_proc_close(p);
	}
	rc[0] = shmq_run(argv, &ro, &res[0]);
	ro.timeout_ns = 30 * 1000000000LL; /* the process-group path */
	rc[1] = shmq_run(argv, &ro, &res[1]);
	restore_low_fds(saved);
	assert_string_equal(plain, "0\n1\n2\n");
	assert_string_equal(with_region, "0\n1\n2\n3\n");
	assert_int_equal(code[0], 0);
	assert_int_equal(code[1], 0);
	assert_int_equal(code[2], 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(rc[i], 0);
		assert_int_equal(res[i].status, 0);
		snprintf(out, sizeof(out), "%s", res[i].out ? res[i].out : "(null)");
		shmq_run_result_free(&res[i]);
		assert_string_equal(out, "0\n1\n2\n");
	}
	/* The region still arrives whole: the existing talk tests use it. */
	shmq_region_close(r);
}

static void test_exec_missing(void **state)
{
	char *argv[] = { "/nonexistent/shmq-no-such-program", NULL };
	char *argv2[] = { "shmq-no-such-program-in-path", NULL };
	shmq_proc *p = NULL;
	int before = tu_fd_count();

	(void)state;
	assert_int_equal(shmq_proc_exec(NULL, argv, NULL, &p), -ENOENT);
	assert_int_equal(shmq_proc_exec(NULL, argv2, NULL, &p), -ENOENT);
	assert_null(p);
	assert_true(tu_no_children());
	assert_int_equal(tu_fd_count(), before);
	{
		char *argv3[] = { "true", NULL }; /* PATH search */

		assert_int_equal(shmq_proc_exec(NULL, argv3, NULL, &p), 0);
		assert_int_equal(join_code(p), 0);
		shmq_proc_close(p);
	}
}

/* Issue 14 item 12: with no descriptor left (RLIMIT_NOFILE), spawn, exec and
 * run fail with -EMFILE, whatever the limit is: below the library's child
 * numbers (3, 4) or above them. */
static void test_spawn_out_of_descriptors(void **state)
{
	char *argv[] = { "true", NULL };
	struct shmq_run_opts ro = { .capture = SHMQ_STDOUT };
	struct shmq_run_result res;
	shmq_region *r = region_new();
	struct rlimit old, low;
	int rc[2][5], lowest, i = 0;
	shmq_proc *p = NULL;
	uint8_t one = 1;

	(void)state;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	lowest = open("/dev/null", O_RDONLY | O_CLOEXEC); /* the next descriptor number */
	assert_true(lowest > 0);
	close(lowest);
	for (int k = 0; k < 2; k++) {
		/* k = 0: the limit below 5 (F_DUPFD_CLOEXEC's floor); k = 1: every
		 * descriptor below the limit is taken */
		low = old;
		low.rlim_cur = k == 0 ? 4 : (rlim_t)lowest;
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
		rc[k][0] = shmq_proc_spawn(r, "exit_with", NULL, 0, NULL, &p);
		rc[k][1] = shmq_proc_spawn(NULL, "exit_with", &one, 1, NULL, &p);
		rc[k][2] = shmq_proc_exec(r, argv, NULL, &p);
		rc[k][3] = shmq_proc_exec(NULL, argv, NULL, &p);
		rc[k][4] = shmq_run(argv, &ro, &res);
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	}
	for (int k = 0; k < 2; k++)
		for (int j = 0; j < 5; j++)
			if (rc[k][j] != -EMFILE && ++i)
				print_message("limit %d, call %d: %d\n", k, j, rc[k][j]);
	assert_int_equal(i, 0);
	assert_null(p);
	assert_true(tu_no_children());
	shmq_region_close(r);
}

/* A daemon that closed stdin, stdout and stderr starts a child with pipes:
 * the ends it keeps are never 0-2, so its own writes there (a printf) do
 * not reach the child.  Old code put the end that feeds the child's stdin
 * at 0: the child echoed the host's junk before "ping". */
static void test_pipes_with_closed_stdio(void **state)
{
	static const char junk[] = "host junk\n";
	struct shmq_proc_opts o = { .pipes = SHMQ_STDIN | SHMQ_STDOUT };
	char *cat[] = { "cat", NULL };
	struct shmq_run_result res = { 0 };
	int saved[3], rc, rc2 = -1;
	shmq_proc *p = NULL;

	(void)state;
	for (int i = 0; i < 3; i++) {
		saved[i] = fcntl(i, F_DUPFD_CLOEXEC, 10);
		close(i);
	}
	rc = shmq_proc_exec(NULL, cat, &o, &p);
	for (int i = 0; i < 3; i++)
		(void)!write(i, junk, sizeof(junk) - 1); /* the host's printf */
	if (!rc)
		rc2 = shmq_proc_communicate(p, "ping", 4, &res, 10 * SHMQ__NS_PER_SEC);
	shmq_proc_close(p); /* before 0-2 are the host's again */
	for (int i = 0; i < 3; i++) {
		dup2(saved[i], i);
		close(saved[i]);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(rc2, 0);
	assert_int_equal(res.status, 0);
	assert_string_equal(res.out, "ping");
	shmq_run_result_free(&res);
}

/* A daemon that closed stdin, stdout and stderr spawns a child with an
 * argument and a program: the handles keep their pidfds above 2 (core/fd_int.h),
 * where the daemon's printf, or its reopening of 0-2 on /dev/null once it
 * has set up, would reach them.  Old code: the spawned child's pidfd at 0
 * (its argument's memfd, gone by then, had taken 0 before it), the exec'd
 * one's at 1. */
static void test_pidfd_with_closed_stdio(void **state)
{
	char *truth[] = { "true", NULL };
	int saved[3], rc[2], taken = -1, code[2] = { -1, -1 }, one = 1;
	shmq_proc *p[2] = { NULL, NULL };

	(void)state;
	tu_stdio_close(saved); /* nothing may assert until tu_stdio_restore */
	rc[0] = shmq_proc_spawn(NULL, "exit_with", &one, sizeof(one), NULL, &p[0]);
	rc[1] = shmq_proc_exec(NULL, truth, NULL, &p[1]);
	taken = tu_stdio_taken();
	for (int i = 0; i < 2; i++)
		if (rc[i] == 0)
			code[i] = shmq_proc_join(p[i], 10 * SHMQ__NS_PER_SEC);
	for (int i = 0; i < 2; i++)
		if (rc[i] == 0)
			code[i] = code[i] == 0 ? shmq_proc_exitcode(p[i]) : code[i] - 1000;
	shmq_proc_close(p[0]);
	shmq_proc_close(p[1]);
	tu_stdio_restore(saved);
	assert_int_equal(rc[0], 0);
	assert_int_equal(rc[1], 0);
	assert_int_equal(taken, 0);
	assert_int_equal(code[0], 1);
	assert_int_equal(code[1], 0);
}

/* The hex mask that /proc/self/status prints after tag ("SigIgn:"). */
static uint64_t status_mask(const char *status, const char *tag)
{
	const char *p = strstr(status, tag);

	return p ? strtoull(p + strlen(tag), NULL, 16) : UINT64_MAX;
}

static uint64_t sig_bit(int sig)
{
	return 1ull << (sig - 1);
}

/* A host that blocks signals and ignores SIGCHLD, SIGPIPE, SIGXFSZ, SIGHUP
 * and SIGUSR2: a spawned or exec'd child (and so a pool worker) starts with
 * nothing blocked, SIGCHLD, SIGPIPE and SIGXFSZ at their defaults, and
 * SIGHUP and SIGUSR2 still ignored (as across exec: nohup's SIGHUP).  Old
 * code left SIGCHLD ignored, with which the kernel reaps the child's own
 * children.  The children wait for a byte on stdin, sent once the host has
 * put its dispositions back, so that its ignored SIGCHLD cannot reap them. */
static void test_child_signal_defaults(void **state)
{
	static const int ignored[] = { SIGCHLD, SIGPIPE, SIGXFSZ, SIGHUP, SIGUSR2 };
	struct sigaction ign = { .sa_handler = SIG_IGN }, old[5];
	struct shmq_proc_opts o = { .pipes = SHMQ_STDIN | SHMQ_STDOUT };
	struct shmq_proc_opts in = { .pipes = SHMQ_STDIN };
	char *cat[] = { "sh", "-c", "read x; cat /proc/self/status", NULL };
	struct shmq_run_result res;
	uint64_t checked = 0, mine = 0, want_ign = sig_bit(SIGHUP) | sig_bit(SIGUSR2);
	shmq_proc *p, *q;
	sigset_t block, was;

	(void)state;
	for (int sig = 1; sig <= 64 && sig < NSIG; sig++)
		if (sig_checked(sig))
			checked |= sig_bit(sig);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGCHLD);
	assert_int_equal(pthread_sigmask(SIG_BLOCK, &block, &was), 0);
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(sigaction(ignored[i], &ign, &old[i]), 0);
		mine |= sig_bit(ignored[i]);
	}
	assert_int_equal(shmq_proc_spawn(NULL, "sig_state", NULL, 0, &in, &p), 0);
	assert_int_equal(shmq_proc_exec(NULL, cat, &o, &q), 0);
	for (size_t i = 0; i < 5; i++)
		sigaction(ignored[i], &old[i], NULL);
	pthread_sigmask(SIG_SETMASK, &was, NULL);

	assert_int_equal(write(shmq_proc_fd(p, 0), "x", 1), 1);
	assert_int_equal(shmq_proc_join(p, 10 * SHMQ__NS_PER_SEC), 0);
	assert_int_equal(shmq_proc_exitcode(p), 0);
	shmq_proc_close(p);

	assert_int_equal(shmq_proc_communicate(q, "x\n", 2, &res, 10 * SHMQ__NS_PER_SEC), 0);
	assert_int_equal(res.status, 0);
	assert_int_equal(status_mask(res.out, "SigIgn:") & mine, want_ign);
	assert_int_equal(status_mask(res.out, "SigBlk:") & checked, 0);
	shmq_run_result_free(&res);
	shmq_proc_close(q);
}

/* An argument longer than the process's RLIMIT_FSIZE (ulimit -f) cannot go
 * into the argument memfd: -EFBIG and no child.  Writing it past the limit
 * made the kernel raise SIGXFSZ, which ended the caller.  In a child, so
 * that the old code's signal ends only it. */
static void test_spawn_arg_above_file_size_limit(void **state)
{
	static uint8_t big[128 << 10];
	struct rlimit rl;
	shmq_proc *p = NULL;
	int code = 7;
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (getrlimit(RLIMIT_FSIZE, &rl) || rl.rlim_max < sizeof(big) / 2)
			_exit(0); /* cannot set the limit we want: nothing to check */
		rl.rlim_cur = sizeof(big) / 2;
		if (setrlimit(RLIMIT_FSIZE, &rl))
			_exit(0);
		if (shmq_proc_spawn(NULL, "exit_with", big, sizeof(big), NULL, &p) != -EFBIG || p)
			_exit(1);
		if (!tu_no_children())
			_exit(2);
		/* an argument below the limit still goes */
		if (shmq_proc_spawn(NULL, "exit_with", &code, sizeof(code), NULL, &p) ||
		    shmq_proc_join(p, 10 * 1000000000ll) || shmq_proc_exitcode(p) != 7)
			_exit(3);
		shmq_proc_close(p);
		_exit(0);
	}
	assert_int_equal(tu_wait_child(pid), 0);
}

/* ---- issue 14 item 10: a program that forgets shmq_dispatch ---- */

static int forgot_square(const void *in, void *out)
{
	int v;

	memcpy(&v, in, sizeof(v));
	v *= v;
	memcpy(out, &v, sizeof(v));
	return 0;
}
SHMQ_TASK(forgot_square);

/*
 * main() of a program that creates a pool (or spawns an entry) without
 * calling shmq_dispatch first.  Every process that runs it appends its depth
 * (0: the program itself, 1: a child started for an entry, ...) to the file
 * SHMQ_TEST_FORGOT_LOG.  Depth 3 stops on its own, so that a library that lets
 * children multiply still ends the test (2 + 4 + 8 processes of 2 workers'
 * pools, each retried).  The program prints its call's result and duration.
 */
static int forgot_main(const char *mode)
{
	const char *log = getenv("SHMQ_TEST_FORGOT_LOG");
	const char *ds = getenv("SHMQ_TEST_FORGOT_DEPTH");
	struct shmq_region_opts ro = { .size = (size_t)8 << 20 };
	int depth = ds ? atoi(ds) : 0, fd, rc, in[4] = { 1, 2, 3, 4 }, out[4];
	char digit = (char)('0' + depth), next[16];
	int64_t t0 = shmq_now_ns();
	shmq_region *r;

	fd = log ? open(log, O_WRONLY | O_APPEND | O_CLOEXEC) : -1;
	if (fd < 0 || write(fd, &digit, 1) != 1)
		return 90;
	close(fd);
	if (depth >= 3)
		return 91;
	snprintf(next, sizeof(next), "%d", depth + 1);
	setenv("SHMQ_TEST_FORGOT_DEPTH", next, 1);
	if (shmq_region_create(NULL, &ro, &r))
		return 92;
	if (strcmp(mode, "pool") == 0) {
		struct shmq_pool_opts po = { .workers = 2 };
		shmq_pool *pool;

		rc = shmq_pool_create(r, &po, &pool);
		if (!rc) {
			rc = shmq_pool_map(pool, "forgot_square", in, sizeof(int), out, sizeof(int),
					   4, 20 * 1000000000LL);
			shmq_pool_terminate(pool);
			shmq_pool_free(pool);
		}
	} else {
		shmq_proc *p;

		rc = shmq_proc_spawn(r, "exit_with", &depth, sizeof(depth), NULL, &p);
		if (!rc) {
			rc = join_code_raw(p);
			shmq_proc_close(p);
		}
	}
	printf("rc=%d ms=%lld\n", rc, (long long)((shmq_now_ns() - t0) / 1000000));
	fflush(stdout);
	shmq_region_close(r);
	return 0;
}

/* Run forgot_main(mode) as a program of its own; returns its printed rc. */
static int forgot_run(const char *mode, char *log, size_t n, long long *ms)
{
	char self[PATH_MAX], logpath[64], envlog[96], envmode[64];
	char *argv[] = { self, NULL };
	char *envp[] = { envlog, envmode, NULL };
	struct shmq_run_opts o = { .capture = SHMQ_STDOUT | SHMQ_STDERR, .envp = envp,
				   .timeout_ns = 60 * 1000000000LL };
	struct shmq_run_result res;
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	int fd, rc = 1;

	assert_true(len > 0);
	self[len] = '\0';
	snprintf(logpath, sizeof(logpath), "/tmp/shmq-forgot-%d", (int)getpid());
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(envlog, sizeof(envlog), "SHMQ_TEST_FORGOT_LOG=%s", logpath);
	snprintf(envmode, sizeof(envmode), "SHMQ_TEST_FORGOT=%s", mode);
	assert_int_equal(shmq_run(argv, &o, &res), 0);
	assert_int_equal(res.status, 0);
	assert_non_null(res.out);
	assert_int_equal(sscanf(res.out, "rc=%d ms=%lld", &rc, ms), 2);
	/* each refused child said why */
	assert_true(res.err_len == 0 || strstr(res.err, "first in main()") != NULL);
	shmq_run_result_free(&res);
	fd = open(logpath, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	len = read(fd, log, n - 1);
	close(fd);
	unlink(logpath);
	assert_true(len > 0);
	log[len] = '\0';
	return rc;
}

/* An entry that spawns an entry of its own: allowed once dispatched. */
static int nested(shmq_region *r, const void *arg, size_t len)
{
	int code = 42, rc;
	shmq_proc *p;

	(void)arg;
	(void)len;
	if (getenv("SHMQ_SPAWNED_ENTRY"))
		return 1; /* dispatch took the mark out */
	if (shmq_proc_spawn(r, "exit_with", &code, sizeof(code), NULL, &p))
		return 2;
	rc = join_code_raw(p);
	shmq_proc_close(p);
	return rc;
}
SHMQ_ENTRY(nested);

static void test_forgotten_dispatch(void **state)
{
	char log[4096];
	long long ms;
	shmq_proc *p;
	int rc;

	(void)state;
	/* Programs that do dispatch first are not affected, nested or not. */
	assert_int_equal(shmq_proc_spawn(NULL, "nested", NULL, 0, NULL, &p), 0);
	assert_int_equal(join_code(p), 42);
	shmq_proc_close(p);

	/* A spawn: the child starts nothing and ends with its own status. */
	rc = forgot_run("spawn", log, sizeof(log), &ms);
	assert_string_equal(log, "01");
	assert_int_equal(rc, SHMQ_EXIT_NODISPATCH);

	/* A pool: its workers start nothing; the creator's map fails. */
	rc = forgot_run("pool", log, sizeof(log), &ms);
	print_message("pool: rc %d after %lld ms, depths %s\n", rc, ms, log);
	assert_null(strchr(log, '2'));      /* no worker started a process */
	assert_int_equal(rc, -ECHILD);
	assert_true(ms < 5000);
}

/* ---- pipes: shmq_proc_fd, shmq_proc_communicate (Python's Popen) ---- */

#define TALK_BIG ((size_t)4 << 20)
#define NS_SEC 1000000000LL

static void write_all(int fd, const void *buf, size_t len)
{
	const char *q = buf;

	while (len) {
		ssize_t n = write(fd, q, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(101);
		q += n;
		len -= (size_t)n;
	}
}

/* Byte i of stream s's pattern: the two outputs differ, so a swap shows. */
static char pat(int s, size_t i)
{
	return (char)('a' + (i * (size_t)(s + 3) + i / 4096) % 26);
}

/*
 * The deadlock trap: TALK_BIG bytes on stdout and stderr in alternating
 * 64 KiB pieces before reading a byte of stdin (a parent that writes all its
 * input first, or drains one stream at a time, hangs), then all of stdin
 * echoed back on stdout.
 */
static int talker(shmq_region *r, const void *arg, size_t len)
{
	static char buf[64 << 10];
	ssize_t n;

	(void)r;
	(void)arg;
	(void)len;
	for (size_t off = 0; off < TALK_BIG; off += sizeof(buf))
		for (int s = 1; s <= 2; s++) {
			for (size_t i = 0; i < sizeof(buf); i++)
				buf[i] = pat(s, off + i);
			write_all(s, buf, sizeof(buf));
		}
	while ((n = read(0, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return 102;
		write_all(1, buf, (size_t)n);
	}
	return 9;
}
SHMQ_ENTRY(talker);

static void talk_big(void)
{
	const struct shmq_proc_opts o = { .pipes = SHMQ_STDIN | SHMQ_STDOUT | SHMQ_STDERR };
	struct shmq_run_result res;
	char *in = malloc(TALK_BIG);
	int before = tu_fd_count();
	shmq_proc *p;

	assert_non_null(in);
	for (size_t i = 0; i < TALK_BIG; i++)
		in[i] = (char)(i * 7 + i / 1000);
	assert_int_equal(shmq_proc_spawn(NULL, "talker", NULL, 0, &o, &p), 0);
	assert_int_equal(tu_fd_count(), before + 4); /* pidfd and three pipe ends */
	assert_int_equal(shmq_proc_communicate(p, in, TALK_BIG, &res, SHMQ_FOREVER), 0);
	assert_int_equal(res.status, 9);
	assert_int_equal(res.out_len, 2 * TALK_BIG);
	assert_int_equal(res.err_len, TALK_BIG);
	for (size_t i = 0; i < TALK_BIG; i++)
		if (res.out[i] != pat(1, i) || res.err[i] != pat(2, i))
			fail_msg("byte %zu of the outputs differs", i);
	assert_memory_equal(res.out + TALK_BIG, in, TALK_BIG);
	/* communicate closed the pipes and reaped the child */
	for (int t = 0; t < 3; t++)
		assert_int_equal(shmq_proc_fd(p, t), -EBADF);
	assert_int_equal(tu_fd_count(), before + 1);
	assert_int_equal(shmq_proc_exitcode(p), 9);
	assert_int_equal(shmq_proc_join(p, SHMQ_NOWAIT), 0);
	shmq_run_result_free(&res);
	shmq_proc_close(p);
	assert_int_equal(tu_fd_count(), before);
	assert_true(tu_no_children());
	free(in);
}

static void test_communicate_big(void **state)
{
	(void)state;
	talk_big();
	/* the same on the poll(2) backend (io_uring refused) */
	setenv("SHMQ_RUN_BACKEND", "poll", 1);
	talk_big();
	unsetenv("SHMQ_RUN_BACKEND");
}

/* A process that is gone, zombie or not, once its state reads Z or it has no
 * /proc entry; waits up to 5 s (init reaps the orphan when it pleases). */
static bool pid_dead(pid_t pid)
{
	char path[64], buf[256], *rp;
	int64_t end = shmq_now_ns() + 5 * NS_SEC;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	while (shmq_now_ns() < end) {
		FILE *f = fopen(path, "r");
		size_t n;

		if (!f)
			return true;
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		rp = strrchr(buf, ')');
		if (!rp || (rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X')))
			return true;
		usleep(10000);
	}
	return false;
}

static void test_communicate_timeout_kills_group(void **state)
{
	/* the grandchild holds stdout open too: without the group kill it
	 * would outlive the call */
	char *argv[] = { "sh", "-c", "sleep 100 & echo $!; exec sleep 100", NULL };
	const struct shmq_proc_opts o = { .pipes = SHMQ_STDOUT | SHMQ_STDERR,
					  .flags = SHMQ_PROC_NEWPGRP };
	struct shmq_run_result res;
	int before = tu_fd_count();
	shmq_proc *p;
	long gpid;

	(void)state;
	assert_int_equal(shmq_proc_exec(NULL, argv, &o, &p), 0);
	/* 2 s: sh has printed the grandchild's pid by then */
	assert_int_equal(shmq_proc_communicate(p, NULL, 0, &res, 2 * NS_SEC), -ETIMEDOUT);
	assert_int_equal(res.status, -SIGKILL);
	assert_non_null(res.out);
	assert_non_null(res.err);
	assert_int_equal(res.err_len, 0);
	gpid = strtol(res.out, NULL, 10);
	assert_true(gpid > 0);
	assert_true(pid_dead((pid_t)gpid));
	assert_int_equal(shmq_proc_exitcode(p), -SIGKILL);
	shmq_run_result_free(&res);
	shmq_proc_close(p);
	assert_int_equal(tu_fd_count(), before);
	assert_true(tu_no_children());
}

static void test_proc_fd_rules(void **state)
{
	char *argv[] = { "cat", NULL };
	struct shmq_proc_opts o = { .pipes = SHMQ_STDOUT };
	struct shmq_run_result res;
	int before = tu_fd_count(), fd;
	shmq_proc *p;
	char buf[16];

	(void)state;
	/* bad options change nothing: no process, no descriptor */
	o.pipes = 0x8;
	assert_int_equal(shmq_proc_exec(NULL, argv, &o, &p), -EINVAL);
	o.pipes = SHMQ_STDOUT;
	o.stdout_fd = SHMQ_PROC_DEVNULL; /* piped and redirected */
	assert_int_equal(shmq_proc_exec(NULL, argv, &o, &p), -EINVAL);
	o.stdout_fd = 0;
	o.reserved0 = 1;
	assert_int_equal(shmq_proc_exec(NULL, argv, &o, &p), -EINVAL);
	o.reserved0 = 0;
	/* a descriptor that is not open (was: -EMFILE, as if out of them) */
	fd = dup(2);
	assert_true(fd > 0);
	close(fd);
	o.stderr_fd = fd;
	assert_int_equal(shmq_proc_exec(NULL, argv, &o, &p), -EINVAL);
	o.stderr_fd = 0;
	assert_int_equal(tu_fd_count(), before);
	assert_true(tu_no_children());

	/* stdin and stderr are not piped: -EBADF; the piped one is ours */
	o.pipes = SHMQ_STDOUT | SHMQ_STDIN;
	assert_int_equal(shmq_proc_exec(NULL, argv, &o, &p), 0);
	assert_int_equal(shmq_proc_fd(p, 2), -EBADF);
	assert_int_equal(shmq_proc_fd(p, 3), -EINVAL);
	assert_int_equal(shmq_proc_fd(NULL, 1), -EINVAL);
	fd = shmq_proc_fd(p, 1);
	assert_true(fd > 2);
	assert_int_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	assert_int_equal(fcntl(shmq_proc_fd(p, 0), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	/* by hand through the descriptors: cat echoes */
	assert_int_equal(write(shmq_proc_fd(p, 0), "ping\n", 5), 5);
	assert_int_equal(read(fd, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "ping\n", 5);
	/* bad calls of communicate change nothing */
	assert_int_equal(shmq_proc_communicate(p, NULL, 3, &res, SHMQ_FOREVER), -EINVAL);
	assert_int_equal(shmq_proc_communicate(p, "x", 1, &res, SHMQ_NOWAIT), -EINVAL);
	assert_int_equal(shmq_proc_communicate(p, "x", 1, NULL, SHMQ_FOREVER), -EINVAL);
	assert_int_equal(shmq_proc_fd(p, 1), fd);
	assert_int_equal(shmq_proc_communicate(p, "pong", 4, &res, 10 * SHMQ__NS_PER_SEC), 0);
	assert_int_equal(res.status, 0);
	assert_int_equal(res.out_len, 4);
	assert_string_equal(res.out, "pong");
	assert_null(res.err);
	shmq_run_result_free(&res);
	shmq_proc_close(p);

	/* input without a piped stdin is refused */
	o.pipes = SHMQ_STDOUT;
	assert_int_equal(shmq_proc_exec(NULL, (char *[]){ "true", NULL }, &o, &p), 0);
	assert_int_equal(shmq_proc_communicate(p, "x", 1, &res, SHMQ_FOREVER), -EINVAL);
	assert_int_equal(shmq_proc_communicate(p, NULL, 0, &res, SHMQ_FOREVER), 0);
	assert_int_equal(res.out_len, 0);
	shmq_run_result_free(&res);
	shmq_proc_close(p);
	/* communicate after a join: the child is reaped, the pipes still drain */
	assert_int_equal(shmq_proc_exec(NULL, (char *[]){ "echo", "late", NULL }, &o, &p), 0);
	assert_int_equal(shmq_proc_join(p, 10 * SHMQ__NS_PER_SEC), 0);
	assert_int_equal(shmq_proc_communicate(p, NULL, 0, &res, SHMQ_FOREVER), 0);
	assert_int_equal(res.status, 0);
	assert_string_equal(res.out, "late\n");
	shmq_run_result_free(&res);
	assert_int_equal(shmq_proc_communicate(p, NULL, 0, &res, SHMQ_FOREVER), 0); /* no pipe left */
	assert_null(res.out);
	shmq_run_result_free(&res);
	shmq_proc_close(p);
	/* closing a handle whose pipes are open closes them */
	o.pipes = SHMQ_STDIN | SHMQ_STDOUT | SHMQ_STDERR;
	assert_int_equal(shmq_proc_exec(NULL, argv, &o, &p), 0);
	shmq_proc_close(p);
	assert_int_equal(tu_fd_count(), before);
	assert_true(tu_no_children());
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exit_codes),
		cmocka_unit_test(test_signal_statuses),
		cmocka_unit_test(test_join_timeout),
		cmocka_unit_test(test_join_timeout_across_stop),
		cmocka_unit_test(test_unknown_entry),
		cmocka_unit_test(test_duplicate_entry),
		cmocka_unit_test(test_registry_rules),
		cmocka_unit_test(test_big_argument),
		cmocka_unit_test(test_64_children),
		cmocka_unit_test(test_killed_child_leaves_table),
		cmocka_unit_test(test_no_leaks),
		cmocka_unit_test(test_spawn_without_region),
		cmocka_unit_test(test_spawn_forked_region),
		cmocka_unit_test(test_exec_talks_over_region),
		cmocka_unit_test(test_exec_talks_over_pipe),
		cmocka_unit_test(test_exec_options),
		cmocka_unit_test(test_exec_missing),
		cmocka_unit_test(test_no_stray_low_fds),
		cmocka_unit_test(test_forgotten_dispatch),
		cmocka_unit_test(test_spawn_out_of_descriptors),
		cmocka_unit_test(test_communicate_big),
		cmocka_unit_test(test_communicate_timeout_kills_group),
		cmocka_unit_test(test_proc_fd_rules),
		cmocka_unit_test(test_spawn_arg_above_file_size_limit),
		cmocka_unit_test(test_child_signal_defaults),
		cmocka_unit_test(test_pipes_with_closed_stdio),
		cmocka_unit_test(test_pidfd_with_closed_stdio),
	};

	if (getenv("SHMQ_TEST_FORGOT"))
		return forgot_main(getenv("SHMQ_TEST_FORGOT")); /* before dispatch: the mistake */
	shmq_dispatch(argc, argv);
	/* A shell starting us in the background ignores SIGINT, and exec keeps an
	 * ignored signal ignored: children would then survive the SIGINT that
	 * test_signal_statuses sends.  Spawned children inherit the default. */
	signal(SIGINT, SIG_DFL);
	return cmocka_run_group_tests_name("proc", tests, NULL, NULL);
}
