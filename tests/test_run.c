/* SPDX-License-Identifier: MIT */
/* shmq_run: capture of both streams at once, input, timeouts that kill the
 * whole process group, missing programs, nothing left behind.  Every test
 * runs twice: on io_uring, and on the poll(2) fallback (SHMQ_RUN_BACKEND=poll). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>

#include "testutil.h"

#include "helper_talk.h"

#define BIG   ((size_t)50 << 20)
#define INPUT ((size_t)10 << 20)

static int fds_before;

static int setup(void **state)
{
	(void)state;
	fds_before = tu_fd_count();
	return 0;
}

/* After each test: no descriptor and no child left behind. */
static int teardown(void **state)
{
	(void)state;
	return tu_fd_count() == fds_before && tu_no_children() ? 0 : -1;
}

static void test_status_and_small_output(void **state)
{
	char *t[] = { "/bin/true", NULL };
	char *f[] = { "sh", "-c", "echo out; echo err >&2; exit 3", NULL };
	char *k[] = { "sh", "-c", "kill -TERM $$", NULL };
	struct shmq_run_opts o = { .capture = SHMQ_STDOUT | SHMQ_STDERR };
	struct shmq_run_result res;

	(void)state;
	assert_int_equal(shmq_run(t, NULL, &res), 0);
	assert_int_equal(res.status, 0);
	assert_null(res.out);
	assert_null(res.err);
	shmq_run_result_free(&res);

	assert_int_equal(shmq_run(f, &o, &res), 0);
	assert_int_equal(res.status, 3);
	assert_int_equal(res.out_len, 4);
	assert_string_equal(res.out, "out\n");
	assert_string_equal(res.err, "err\n");
	shmq_run_result_free(&res);
	assert_null(res.out);

	/* Only stderr captured: stdout goes to ours, out stays NULL. */
	o.capture = SHMQ_STDERR;
	assert_int_equal(shmq_run(f, &o, &res), 0);
	assert_null(res.out);
	assert_string_equal(res.err, "err\n");
	shmq_run_result_free(&res);

	assert_int_equal(shmq_run(k, NULL, &res), 0);
	assert_int_equal(res.status, -SIGTERM);
	shmq_run_result_free(&res);
}

static void check_pattern(const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((uint8_t)p[i] != helper_pattern(i))
			break;
	assert_int_equal(i, len);
}

static void test_50mib_on_both_streams(void **state)
{
	char path[PATH_MAX + 16], n[32];
	char *argv[] = { path, "gen", n, NULL };
	struct shmq_run_opts o = { .capture = SHMQ_STDOUT | SHMQ_STDERR };
	struct shmq_run_result res;

	(void)state;
	tu_helper_path(path, sizeof(path));
	snprintf(n, sizeof(n), "%zu", BIG);
	assert_int_equal(shmq_run(argv, &o, &res), 0);
	assert_int_equal(res.status, 0);
	assert_int_equal(res.out_len, BIG);
	assert_int_equal(res.err_len, BIG);
	check_pattern(res.out, res.out_len);
	check_pattern(res.err, res.err_len);
	shmq_run_result_free(&res);
}

/* Outputs around the size where buffers turn from heap blocks into page
 * mappings (1 MiB) come back whole and free cleanly (ASan checks the frees). */
static void test_sizes_around_mapping_threshold(void **state)
{
	static const size_t sizes[] = { 0, 1, 65535, 65536, 65537, (1u << 20) - 1, 1u << 20,
					(1u << 20) + 1, (2u << 20) + 12345 };
	char path[PATH_MAX + 16], n[32];
	char *argv[] = { path, "gen", n, NULL };
	struct shmq_run_opts o = { .capture = SHMQ_STDOUT | SHMQ_STDERR };
	struct shmq_run_result res;

	(void)state;
	tu_helper_path(path, sizeof(path));
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		snprintf(n, sizeof(n), "%zu", sizes[i]);
		assert_int_equal(shmq_run(argv, &o, &res), 0);
		assert_int_equal(res.out_len, sizes[i]);
		assert_int_equal(res.err_len, sizes[i]);
		assert_int_equal(res.out[sizes[i]], '\0');
		check_pattern(res.out, res.out_len);
		check_pattern(res.err, res.err_len);
		shmq_run_result_free(&res);
	}
}

static void test_input_echoed_by_cat(void **state)
{
	char *argv[] = { "cat", NULL };
	struct shmq_run_opts o = { .capture = SHMQ_STDOUT };
	struct shmq_run_result res;
	char *in = malloc(INPUT);

	(void)state;
	assert_non_null(in);
	for (size_t i = 0; i < INPUT; i++)
		in[i] = (char)helper_pattern(i);
	o.input = in;
	o.input_len = INPUT;
	assert_int_equal(shmq_run(argv, &o, &res), 0);
	assert_int_equal(res.status, 0);
	assert_int_equal(res.out_len, INPUT);
	assert_memory_equal(res.out, in, INPUT);
	shmq_run_result_free(&res);

	/* Empty input: the child sees EOF at once. */
	o.input_len = 0;
	assert_int_equal(shmq_run(argv, &o, &res), 0);
	assert_int_equal(res.status, 0);
	assert_int_equal(res.out_len, 0);
	assert_string_equal(res.out, "");
	shmq_run_result_free(&res);

	/* A child that never reads its input: no SIGPIPE here, no hang. */
	{
		char *t[] = { "true", NULL };

		o.input_len = INPUT;
		assert_int_equal(shmq_run(t, &o, &res), 0);
		assert_int_equal(res.status, 0);
		shmq_run_result_free(&res);
	}
	free(in);
}

/* pid is gone or a zombie within 5 s. */
static bool gone_soon(pid_t pid)
{
	for (int i = 0; i < 5000; i++) {
		char path[64], buf[512], *p;
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
		f = fopen(path, "r");
		if (!f)
			return true;
		p = fgets(buf, sizeof(buf), f);
		fclose(f);
		p = p ? strrchr(buf, ')') : NULL;
		if (p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'))
			return true;
		usleep(1000);
	}
	return false;
}

static void test_timeout_kills_group(void **state)
{
	/* The grandchild holds the pipes: without the group kill, no EOF ever. */
	char *argv[] = { "sh", "-c", "echo e >&2; sleep 100 & echo $!; sleep 100", NULL };
	struct shmq_run_opts o = { .capture = SHMQ_STDOUT | SHMQ_STDERR,
				   .timeout_ns = 2000 * 1000000LL }; /* sh has printed by then */
	struct shmq_run_result res;
	int64_t t0 = shmq_now_ns(), dt;

	(void)state;
	assert_int_equal(shmq_run(argv, &o, &res), -ETIMEDOUT);
	dt = shmq_now_ns() - t0;
	assert_true(dt >= o.timeout_ns);            /* never early */
	assert_true(dt < 15000 * 1000000LL);        /* and not held by the grandchild (100 s) */
	assert_int_equal(res.status, -SIGKILL);
	assert_string_equal(res.err, "e\n");        /* output so far kept */
	assert_true(res.out_len > 1 && res.out[res.out_len - 1] == '\n');
	/* The grandchild died with its group (init reaps it soon after). */
	assert_true(gone_soon((pid_t)atoi(res.out)));
	shmq_run_result_free(&res);

	/* A timeout that does not expire changes nothing. */
	{
		char *e[] = { "sh", "-c", "echo quick", NULL };

		o.timeout_ns = 30 * 1000000000LL;
		assert_int_equal(shmq_run(e, &o, &res), 0);
		assert_int_equal(res.status, 0);
		assert_string_equal(res.out, "quick\n");
		shmq_run_result_free(&res);
	}
}

/* Issue 14 item 7: the child exits (0) at once, its background grandchild
 * keeps the pipes open.  At the timeout the whole group is still killed, and
 * the status says so. */
static void test_timeout_after_child_exit(void **state)
{
	char *argv[] = { "sh", "-c", "sleep 100 & echo $!", NULL };
	/* 3 s: sh has printed the grandchild's pid by then */
	struct shmq_run_opts o = { .capture = SHMQ_STDOUT, .timeout_ns = 3000 * 1000000LL };
	struct shmq_run_result res;
	pid_t grandchild;
	bool gone;
	int rc;

	(void)state;
	rc = shmq_run(argv, &o, &res);
	assert_true(res.out_len > 1 && res.out[res.out_len - 1] == '\n');
	grandchild = (pid_t)atoi(res.out);
	assert_true(grandchild > 0);
	gone = gone_soon(grandchild);
	if (!gone)
		kill(grandchild, SIGKILL); /* do not leave it for 100 s */
	assert_int_equal(rc, -ETIMEDOUT);
	assert_true(gone);
	assert_int_equal(res.status, -SIGKILL);
	shmq_run_result_free(&res);
}

/* A run whose caller is stopped (SIGSTOP) in its wait and continued after
 * the timeout ends then: the deadline is on CLOCK_MONOTONIC, which runs on
 * while the caller is stopped; it does not wait again what was left when
 * the caller stopped. */
static void test_timeout_across_stop(void **state)
{
	char *argv[] = { "sleep", "100", NULL };
	struct shmq_run_opts o = { .capture = SHMQ_STDOUT, .timeout_ns = 400 * 1000000LL };
	struct shmq_run_result res;
	int64_t *cont_at, cont, t0, end;
	pid_t stopper;

	(void)state;
	cont_at = mmap(NULL, sizeof(*cont_at), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		       -1, 0);
	assert_true(cont_at != MAP_FAILED);
	t0 = shmq_now_ns();
	stopper = tu_stop_while_asleep(2 * o.timeout_ns, cont_at);
	assert_int_equal(shmq_run(argv, &o, &res), -ETIMEDOUT);
	end = shmq_now_ns();
	assert_int_equal(tu_wait_child(stopper), 0);
	cont = *cont_at;
	munmap(cont_at, sizeof(*cont_at));
	assert_int_equal(res.status, -SIGKILL);
	shmq_run_result_free(&res);
	assert_true(end - t0 >= o.timeout_ns);
	assert_true(end - cont < o.timeout_ns / 2); /* not the time left at the stop more */
}

static void test_missing_program(void **state)
{
	char *a[] = { "/nonexistent/shmq-none", NULL };
	char *b[] = { "shmq-no-such-program", NULL };
	struct shmq_run_opts o = { .capture = SHMQ_STDOUT | SHMQ_STDERR, .input = "x",
				   .input_len = 1, .timeout_ns = 1000000000LL };
	struct shmq_run_result res;

	(void)state;
	assert_int_equal(shmq_run(a, &o, &res), -ENOENT);
	assert_null(res.out);
	assert_null(res.err);
	assert_int_equal(shmq_run(b, NULL, &res), -ENOENT);
	shmq_run_result_free(&res); /* harmless after an error */
	assert_int_equal(shmq_run(NULL, NULL, &res), -EINVAL);
	o.capture = 0x10;
	assert_int_equal(shmq_run(a, &o, &res), -EINVAL);
}

static void test_cwd_and_env(void **state)
{
	char *argv[] = { "sh", "-c", "pwd; echo \"$V\"; echo \"${SHMQ_REGION_FD-unset}\"", NULL };
	char *envp[] = { "V=seven", "SHMQ_REGION_FD=3", NULL };
	struct shmq_run_opts o = { .capture = SHMQ_STDOUT, .cwd = "/", .envp = envp };
	struct shmq_run_result res;

	(void)state;
	assert_int_equal(shmq_run(argv, &o, &res), 0);
	assert_int_equal(res.status, 0);
	assert_string_equal(res.out, "/\nseven\nunset\n");
	shmq_run_result_free(&res);
}

/* A host that blocks signals and ignores SIGPIPE, SIGXFSZ, SIGHUP and
 * SIGUSR2: the program shmq_run starts has nothing blocked, SIGPIPE and
 * SIGXFSZ at their defaults, and SIGHUP and SIGUSR2 still ignored, as
 * across exec (nohup's SIGHUP).  Only these four are looked at: what the
 * test's own environment ignores (a background job's SIGINT) is inherited,
 * rightly.  (SIGCHLD cannot be ignored here: the kernel would reap the
 * child behind shmq_run's back; test_proc checks that one.) */
static void test_child_signal_defaults(void **state)
{
	static const int ignored[] = { SIGPIPE, SIGXFSZ, SIGHUP, SIGUSR2 };
	struct sigaction ign = { .sa_handler = SIG_IGN }, old[4];
	char *argv[] = { "cat", "/proc/self/status", NULL };
	struct shmq_run_opts o = { .capture = SHMQ_STDOUT };
	struct shmq_run_result res;
	uint64_t checked = 0, mine = 0, ign_mask, blk_mask;
	sigset_t block, was;
	const char *p;

	(void)state;
	for (int sig = 1; sig <= 64 && sig < NSIG; sig++) /* glibc keeps 32, 33 */
		if (sig < 32 || (sig >= SIGRTMIN && sig <= SIGRTMAX))
			checked |= 1ull << (sig - 1);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGTERM);
	assert_int_equal(pthread_sigmask(SIG_BLOCK, &block, &was), 0);
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(sigaction(ignored[i], &ign, &old[i]), 0);
		mine |= 1ull << (ignored[i] - 1);
	}
	assert_int_equal(shmq_run(argv, &o, &res), 0);
	for (size_t i = 0; i < 4; i++)
		sigaction(ignored[i], &old[i], NULL);
	pthread_sigmask(SIG_SETMASK, &was, NULL);
	assert_int_equal(res.status, 0);
	assert_non_null(p = strstr(res.out, "SigIgn:"));
	ign_mask = strtoull(p + 7, NULL, 16);
	assert_non_null(p = strstr(res.out, "SigBlk:"));
	blk_mask = strtoull(p + 7, NULL, 16);
	assert_int_equal(ign_mask & mine, (1ull << (SIGHUP - 1)) | (1ull << (SIGUSR2 - 1)));
	assert_int_equal(blk_mask & checked, 0);
	shmq_run_result_free(&res);
}

/* A child reaped behind the library's back (SIGCHLD set to SIG_IGN: the
 * kernel reaps it; the documented misuse) ends the call with -ECHILD, on
 * both loops, for shmq_run and for shmq_proc_communicate, instead of
 * spinning for ever on a pidfd that stays readable (old code: 100% CPU, the
 * timeout included).  Run in a forked child, whose alarm turns a hang into
 * a failure. */
static void test_reaped_behind_back(void **state)
{
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *argv[] = { "sh", "-c", "echo hi; sleep 0.2", NULL };
		char *cat[] = { "sh", "-c", "sleep 0.2; cat", NULL };
		struct shmq_run_opts o = { .capture = SHMQ_STDOUT, .timeout_ns = 5000000000LL };
		struct shmq_proc_opts po = { .pipes = SHMQ_STDIN | SHMQ_STDOUT };
		struct shmq_run_result res;
		shmq_proc *p;
		int rc;

		alarm(20);
		signal(SIGCHLD, SIG_IGN);
		rc = shmq_run(argv, &o, &res);
		shmq_run_result_free(&res);
		if (rc != -ECHILD)
			_exit(10);
		o.timeout_ns = 0;
		rc = shmq_run(argv, &o, &res);
		shmq_run_result_free(&res);
		if (rc != -ECHILD)
			_exit(11);
		if (shmq_proc_exec(NULL, cat, &po, &p))
			_exit(12);
		rc = shmq_proc_communicate(p, "x", 1, &res, SHMQ_FOREVER);
		shmq_run_result_free(&res);
		if (rc != -ECHILD)
			_exit(13);
		/* no status was seen: none is made up */
		if (shmq_proc_join(p, 0) != -ECHILD || shmq_proc_exitcode(p) != -ECHILD)
			_exit(14);
		shmq_proc_close(p);
		_exit(0);
	}
	assert_int_equal(tu_wait_child(pid), 0);
}

/* A server's thread cancelled (deferred) while it runs a program, or talks
 * to one it started with pipes: the calls are no cancellation points, so
 * each completes (output captured, child reaped) and the cancel acts after
 * it; the teardown finds no descriptor and no child left behind.  Old code:
 * the cancel acted inside the call (in a close, a write or the wait), which
 * left the child's pipes, its pidfd and the child itself behind; a cancel
 * in shmq_proc_exec lost even the handle. */
struct cancelled_run {
	int which; /* 0: shmq_run; 1: shmq_proc_exec + communicate + close */
	int rc;
	struct shmq_run_result res;
};

static void *cancelled_run_main(void *arg)
{
	struct cancelled_run *c = arg;
	char *argv[] = { "sh", "-c", "cat; echo err >&2", NULL };
	struct shmq_run_opts o = { .capture = SHMQ_STDOUT | SHMQ_STDERR, .input = "hi",
				   .input_len = 2 };
	struct shmq_proc_opts po = { .pipes = SHMQ_STDIN | SHMQ_STDOUT | SHMQ_STDERR };
	shmq_proc *p;

	pthread_cancel(pthread_self()); /* deferred: pending in the call */
	if (c->which == 0) {
		c->rc = shmq_run(argv, &o, &c->res);
	} else {
		c->rc = shmq_proc_exec(NULL, argv, &po, &p);
		if (c->rc == 0) {
			c->rc = shmq_proc_communicate(p, "hi", 2, &c->res, SHMQ_FOREVER);
			shmq_proc_close(p);
		}
	}
	pthread_testcancel();
	return NULL;
}

static void test_cancelled_inside(void **state)
{
	(void)state;
	for (int which = 0; which < 2; which++) {
		struct cancelled_run c = { which, 1, { 0 } };
		pthread_t th;
		void *ret;

		assert_int_equal(pthread_create(&th, NULL, cancelled_run_main, &c), 0);
		assert_int_equal(pthread_join(th, &ret), 0);
		assert_ptr_equal(ret, PTHREAD_CANCELED);
		assert_int_equal(c.rc, 0);
		assert_int_equal(c.res.status, 0);
		assert_int_equal(c.res.out_len, 2);
		assert_memory_equal(c.res.out, "hi", 2);
		assert_string_equal(c.res.err, "err\n");
		shmq_run_result_free(&c.res);
		assert_int_equal(tu_fd_count(), fds_before);
		assert_true(tu_no_children());
	}
}

#define RUN_TESTS                                                                     \
	{                                                                             \
		cmocka_unit_test_setup_teardown(test_status_and_small_output, setup,  \
						teardown),                            \
		cmocka_unit_test_setup_teardown(test_50mib_on_both_streams, setup,    \
						teardown),                            \
		cmocka_unit_test_setup_teardown(test_sizes_around_mapping_threshold,  \
						setup, teardown),                     \
		cmocka_unit_test_setup_teardown(test_input_echoed_by_cat, setup,      \
						teardown),                            \
		cmocka_unit_test_setup_teardown(test_timeout_kills_group, setup,      \
						teardown),                            \
		cmocka_unit_test_setup_teardown(test_timeout_after_child_exit, setup, \
						teardown),                            \
		cmocka_unit_test_setup_teardown(test_timeout_across_stop, setup,      \
						teardown),                            \
		cmocka_unit_test_setup_teardown(test_missing_program, setup,          \
						teardown),                            \
		cmocka_unit_test_setup_teardown(test_cwd_and_env, setup, teardown),   \
		cmocka_unit_test_setup_teardown(test_reaped_behind_back, setup,       \
						teardown),                            \
		cmocka_unit_test_setup_teardown(test_child_signal_defaults, setup,    \
						teardown),                            \
		cmocka_unit_test_setup_teardown(test_cancelled_inside, setup,         \
						teardown),                            \
	}

int main(int argc, char **argv)
{
	const struct CMUnitTest uring[] = RUN_TESTS;
	const struct CMUnitTest poll[] = RUN_TESTS;
	int failed;

	shmq_dispatch(argc, argv);
	unsetenv("SHMQ_RUN_BACKEND");
	failed = cmocka_run_group_tests_name("run (io_uring)", uring, NULL, NULL);
	setenv("SHMQ_RUN_BACKEND", "poll", 1);
	failed += cmocka_run_group_tests_name("run (poll)", poll, NULL, NULL);
	return failed ? 1 : 0;
}
