/* SPDX-License-Identifier: MIT */
/*
 * shmq-bench spawn / run: starting processes and running programs.
 *
 * spawn: spawn-to-exit latency of one child that does nothing.
 *   shmq      shmq_proc_spawn of the entry bench_trivial (this program,
 *             re-executed), shmq_proc_join, shmq_proc_close; once without a
 *             region and once handing over a 1 MiB anonymous region (the
 *             child maps it and enters its process table)
 *   baseline  the same program and entry started by raw posix_spawn +
 *             waitpid, and by fork + execve + waitpid
 *   The three are interleaved one iteration at a time, so drift on a shared
 *   machine hits them alike.
 *
 * run: shmq_run beside raw posix_spawn + waitpid / fork + execve + waitpid.
 *   latency    /bin/true, nothing captured; and /bin/true with stdout and
 *              stderr captured (pipes + the io_uring loop) against raw
 *              posix_spawn with two pipes read to EOF
 *   throughput `head -c 1G /dev/zero` captured whole (128M with --quick),
 *              against posix_spawn + one pipe read to EOF into a buffer that
 *              grows the same way (doubling)
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmq.h>

#include "bench.h"

static int bench_trivial(shmq_region *r, const void *arg, size_t len)
{
	(void)r;
	(void)arg;
	(void)len;
	return 0;
}
SHMQ_ENTRY(bench_trivial);

static char *const trivial_argv[] = { "shmq-bench", "--shmq-entry=bench_trivial", NULL };
static char *const true_argv[] = { "/bin/true", NULL };

/* ---- baselines ---- */

static int wait_pid(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EPROTO;
}

static int raw_spawn(const char *path, char *const argv[], const posix_spawn_file_actions_t *fa)
{
	pid_t pid;
	int rc = posix_spawn(&pid, path, fa, NULL, argv, environ);

	return rc ? -rc : wait_pid(pid);
}

static int raw_fork_exec(const char *path, char *const argv[])
{
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execve(path, argv, environ);
		_exit(127);
	}
	return wait_pid(pid);
}

/* Time one call of fn into h. */
#define TIMED(h, call)                                                                   \
	({                                                                               \
		int64_t t0_ = bench_now_ns();                                            \
		int rc_ = (call);                                                        \
		bench_hist_record((h), (uint64_t)(bench_now_ns() - t0_));                \
		rc_;                                                                     \
	})

/* ---- spawn ---- */

static int shmq_spawn_once(shmq_region *r)
{
	shmq_proc *p;
	int rc = shmq_proc_spawn(r, "bench_trivial", NULL, 0, NULL, &p);

	if (rc)
		return rc;
	rc = shmq_proc_join(p, SHMQ_FOREVER);
	if (!rc)
		rc = shmq_proc_exitcode(p) == 0 ? 0 : -EPROTO;
	shmq_proc_close(p);
	return rc;
}

enum { H_SHMQ, H_SHMQ_REGION, H_SPAWN, H_FORK, H_RUN_CAP, H_SPAWN_CAP, H_N };

struct hists {
	struct bench_hist *h[H_N];
};

static int hists_new(struct hists *hs)
{
	for (int i = 0; i < H_N; i++) {
		hs->h[i] = bench_hist_new();
		if (!hs->h[i])
			return -ENOMEM;
	}
	return 0;
}

static void hists_free(struct hists *hs)
{
	for (int i = 0; i < H_N; i++)
		bench_hist_free(hs->h[i]);
}

static int spawn_iteration(struct hists *hs, shmq_region *r)
{
	int rc = TIMED(hs->h[H_SHMQ], shmq_spawn_once(NULL));

	if (!rc)
		rc = TIMED(hs->h[H_SHMQ_REGION], shmq_spawn_once(r));
	if (!rc)
		rc = TIMED(hs->h[H_SPAWN], raw_spawn("/proc/self/exe", trivial_argv, NULL));
	if (!rc)
		rc = TIMED(hs->h[H_FORK], raw_fork_exec("/proc/self/exe", trivial_argv));
	return rc;
}

static int spawn_report(struct bench *b, struct hists *hs)
{
	int rc = bench_report_latency(b, "spawn-to-exit", hs->h[H_SHMQ], "posix_spawn+waitpid",
				      hs->h[H_SPAWN]);

	if (!rc)
		rc = bench_report_latency(b, "spawn-to-exit, 1 MiB region", hs->h[H_SHMQ_REGION],
					  "posix_spawn+waitpid", hs->h[H_SPAWN]);
	if (!rc)
		rc = bench_report_latency(b, "spawn-to-exit vs fork", hs->h[H_SHMQ],
					  "fork+execve+waitpid", hs->h[H_FORK]);
	return rc;
}

int bench_spawn(struct bench *b)
{
	struct shmq_region_opts o = { .size = (size_t)1 << 20 };
	uint64_t n = bench_scale(b, 200, 20);
	struct hists hs = { { 0 } };
	shmq_region *r = NULL;
	int rc = hists_new(&hs);

	if (!rc)
		rc = shmq_region_create(NULL, &o, &r);
	for (uint64_t i = 0; i < n + 3 && !rc; i++) {
		if (i == 3) /* the first few warm the page cache and the loader */
			for (int k = 0; k < H_N; k++)
				bench_hist_init(hs.h[k]);
		rc = spawn_iteration(&hs, r);
	}
	if (!rc)
		rc = spawn_report(b, &hs);
	shmq_region_close(r);
	hists_free(&hs);
	return rc;
}

/* ---- run: latency ---- */

static int shmq_run_once(char *const argv[], unsigned capture)
{
	struct shmq_run_opts o = { .capture = capture };
	struct shmq_run_result res;
	int rc = shmq_run(argv, &o, &res);

	if (!rc && res.status != 0)
		rc = -EPROTO;
	shmq_run_result_free(&res);
	return rc;
}

/* Read fds[0..n) to EOF, together, into buf (grown by doubling); with keep
 * false the bytes are dropped into a fixed scratch buffer. */
struct sink {
	char *p;
	size_t len, cap;
};

static int sink_read(int fd, struct sink *s)
{
	ssize_t k;

	if (s->cap - s->len < (64u << 10)) {
		size_t ncap = s->cap ? s->cap * 2 : (64u << 10);
		char *np = realloc(s->p, ncap);

		if (!np)
			return -ENOMEM;
		s->p = np;
		s->cap = ncap;
	}
	k = read(fd, s->p + s->len, s->cap - s->len);
	if (k < 0)
		return errno == EINTR ? 1 : -errno;
	s->len += (size_t)k;
	return k > 0;
}

static int drain_fds(int *fds, int n, struct sink *s)
{
	struct pollfd pf[2];
	int open = n;

	for (int i = 0; i < n; i++)
		pf[i] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
	while (open) {
		if (poll(pf, (nfds_t)n, -1) < 0 && errno != EINTR)
			return -errno;
		for (int i = 0; i < n; i++) {
			int rc;

			if (pf[i].fd < 0 || !pf[i].revents)
				continue;
			rc = sink_read(pf[i].fd, &s[i]);
			if (rc < 0)
				return rc;
			if (rc == 0) {
				pf[i].fd = -1;
				open--;
			}
		}
	}
	return 0;
}

/* posix_spawn argv with n (1 or 2) of stdout/stderr on pipes read to EOF. */
static int raw_capture(char *const argv[], int n, struct sink *s)
{
	posix_spawn_file_actions_t fa;
	int p[2][2] = { { -1, -1 }, { -1, -1 } }, rd[2], rc = 0;
	pid_t pid;

	posix_spawn_file_actions_init(&fa);
	for (int i = 0; i < n && !rc; i++) {
		if (pipe2(p[i], O_CLOEXEC))
			rc = -errno;
		else
			rc = -posix_spawn_file_actions_adddup2(&fa, p[i][1], 1 + i);
		fcntl(p[i][0], F_SETPIPE_SZ, 1 << 20);
		rd[i] = p[i][0];
	}
	if (!rc)
		rc = -posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	for (int i = 0; i < n; i++)
		if (p[i][1] >= 0)
			close(p[i][1]);
	if (!rc) {
		rc = drain_fds(rd, n, s);
		if (wait_pid(pid) && !rc)
			rc = -EPROTO;
	}
	for (int i = 0; i < n; i++)
		if (p[i][0] >= 0)
			close(p[i][0]);
	return rc;
}

static int raw_capture_true(void)
{
	struct sink s[2] = { { 0 } };
	int rc = raw_capture(true_argv, 2, s);

	free(s[0].p);
	free(s[1].p);
	return rc;
}

static int run_iteration(struct hists *hs)
{
	int rc = TIMED(hs->h[H_SHMQ], shmq_run_once(true_argv, 0));

	if (!rc)
		rc = TIMED(hs->h[H_SPAWN], raw_spawn("/bin/true", true_argv, NULL));
	if (!rc)
		rc = TIMED(hs->h[H_FORK], raw_fork_exec("/bin/true", true_argv));
	if (!rc)
		rc = TIMED(hs->h[H_RUN_CAP],
			   shmq_run_once(true_argv, SHMQ_STDOUT | SHMQ_STDERR));
	if (!rc)
		rc = TIMED(hs->h[H_SPAWN_CAP], raw_capture_true());
	return rc;
}

static int run_latency(struct bench *b)
{
	uint64_t n = bench_scale(b, 200, 20);
	struct hists hs = { { 0 } };
	int rc = hists_new(&hs);

	for (uint64_t i = 0; i < n + 3 && !rc; i++) {
		if (i == 3)
			for (int k = 0; k < H_N; k++)
				bench_hist_init(hs.h[k]);
		rc = run_iteration(&hs);
	}
	if (!rc)
		rc = bench_report_latency(b, "run /bin/true", hs.h[H_SHMQ], "posix_spawn+waitpid",
					  hs.h[H_SPAWN]);
	if (!rc)
		rc = bench_report_latency(b, "run /bin/true vs fork", hs.h[H_SHMQ],
					  "fork+execve+waitpid", hs.h[H_FORK]);
	if (!rc)
		rc = bench_report_latency(b, "run /bin/true, both captured", hs.h[H_RUN_CAP],
					  "posix_spawn+2 pipes", hs.h[H_SPAWN_CAP]);
	hists_free(&hs);
	return rc;
}

/* ---- run: capture throughput ---- */

static int run_throughput(struct bench *b)
{
	char count[32];
	char *argv[] = { "head", "-c", count, "/dev/zero", NULL };
	uint64_t bytes = bench_scale(b, (uint64_t)1 << 30, (uint64_t)128 << 20);
	struct shmq_run_opts o = { .capture = SHMQ_STDOUT };
	struct shmq_run_result res;
	struct sink s = { 0 };
	int64_t t0, t_shmq, t_raw;
	int rc;

	snprintf(count, sizeof(count), "%llu", (unsigned long long)bytes);
	t0 = bench_now_ns();
	rc = shmq_run(argv, &o, &res);
	t_shmq = bench_now_ns() - t0;
	if (!rc && (res.status != 0 || res.out_len != bytes))
		rc = -EPROTO;
	shmq_run_result_free(&res);
	if (rc)
		return rc;
	t0 = bench_now_ns();
	rc = raw_capture(argv, 1, &s);
	t_raw = bench_now_ns() - t0;
	if (!rc && s.len != bytes)
		rc = -EPROTO;
	free(s.p);
	if (rc)
		return rc;
	return bench_report(b, "capture head -c N /dev/zero", "GB/s", (double)bytes / (double)t_shmq,
			    "posix_spawn+pipe+read", (double)bytes / (double)t_raw, true);
}

/* posix_spawn argv with stdout on a pipe, read into one reused buffer. */
static int raw_discard(char *const argv[], uint64_t *bytes)
{
	static char scratch[1 << 20];
	posix_spawn_file_actions_t fa;
	int p[2], rc;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC))
		return -errno;
	fcntl(p[0], F_SETPIPE_SZ, 1 << 20);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	rc = -posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	*bytes = 0;
	for (ssize_t k; !rc && (k = read(p[0], scratch, sizeof(scratch))) != 0;) {
		if (k < 0 && errno != EINTR)
			rc = -errno;
		else if (k > 0)
			*bytes += (uint64_t)k;
	}
	close(p[0]);
	if (!rc)
		rc = wait_pid(pid);
	return rc;
}

/* Write one byte per page of bytes fresh anonymous memory: GB/s. */
static double fresh_fill_rate(uint64_t bytes)
{
	int64_t t0 = bench_now_ns(), dt;
	char *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED)
		return 0;
	for (uint64_t i = 0; i < bytes; i += 4096)
		m[i] = 1;
	dt = bench_now_ns() - t0;
	munmap(m, bytes);
	return (double)bytes / (double)dt;
}

static int run_ceilings(struct bench *b)
{
	char count[32];
	char *argv[] = { "head", "-c", count, "/dev/zero", NULL };
	uint64_t bytes = bench_scale(b, (uint64_t)1 << 30, (uint64_t)128 << 20), got = 0;
	int64_t t0;
	double pipe_rate;
	int rc;

	snprintf(count, sizeof(count), "%llu", (unsigned long long)bytes);
	t0 = bench_now_ns();
	rc = raw_discard(argv, &got);
	pipe_rate = (double)got / (double)(bench_now_ns() - t0);
	if (!rc && got != bytes)
		rc = -EPROTO;
	if (!rc)
		rc = bench_report(b, "ceiling: same pipe, bytes dropped", "GB/s", pipe_rate, NULL, 0,
				  true);
	if (!rc)
		rc = bench_report(b, "ceiling: fresh memory fill", "GB/s", fresh_fill_rate(bytes),
				  NULL, 0, true);
	return rc;
}

int bench_run(struct bench *b)
{
	int rc = run_latency(b);

	if (!rc)
		rc = run_throughput(b);
	return rc ? rc : run_ceilings(b);
}
