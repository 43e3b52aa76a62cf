/* SPDX-License-Identifier: MIT */
/*
 * Test harness for the bridge suites: a real nats-server with JetStream,
 * started by the test itself on a free port of 127.0.0.1 with its store in
 * a temporary directory, and the `shmq bridge` command run as a child.
 *
 *   struct bu_server s;
 *   if (bu_server_start(&s, NULL)) exit(77);   // skip: no nats-server
 *   ... s.url ...
 *   bu_server_kill(&s); bu_server_start(&s, s.dir);   // kill -9, restart on the same store
 *   bu_server_stop(&s);                                // kill and remove the store
 *
 * Everything is time-bounded; bu_cleanup_install() kills every server and
 * child the harness started when the test exits, also through a failed
 * cmocka assertion (atexit) or a fatal signal.
 */
#ifndef BRIDGE_UTIL_H
#define BRIDGE_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


#ifndef BU_NATS_SERVER
#define BU_NATS_SERVER "nats-server"
#endif
#define BU_START_NS (10ll * 1000000000) /* a server answers within this */
#define BU_MAX_PIDS 16

struct bu_server {
	pid_t pid;
	int port;
	char dir[256];    /* the store (and the ports file); kept across restarts */
	char url[64];
};

static pid_t bu_pids[BU_MAX_PIDS]; /* everything to kill at exit */

static inline int64_t bu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void bu_sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static inline void bu_track(pid_t pid)
{
	for (int i = 0; i < BU_MAX_PIDS; i++)
		if (bu_pids[i] == 0) {
			bu_pids[i] = pid;
			return;
		}
}

static inline void bu_untrack(pid_t pid)
{
	for (int i = 0; i < BU_MAX_PIDS; i++)
		if (bu_pids[i] == pid)
			bu_pids[i] = 0;
}

static inline void bu_kill_all(void)
{
	for (int i = 0; i < BU_MAX_PIDS; i++)
		if (bu_pids[i] > 0) {
			kill(bu_pids[i], SIGCONT);
			kill(bu_pids[i], SIGKILL);
			waitpid(bu_pids[i], NULL, 0);
			bu_pids[i] = 0;
		}
}

static inline void bu_on_fatal(int sig)
{
	bu_kill_all();
	signal(sig, SIG_DFL);
	raise(sig);
}

static inline void bu_cleanup_install(void)
{
	atexit(bu_kill_all);
	signal(SIGTERM, bu_on_fatal);
	signal(SIGINT, bu_on_fatal);
	signal(SIGABRT, bu_on_fatal);
	signal(SIGALRM, bu_on_fatal);
}

/* Wait for pid to exit, at most ms; its status, or -1 (then it still runs). */
static inline int bu_wait(pid_t pid, int ms)
{
	int64_t end = bu_now() + (int64_t)ms * 1000000;
	int st;

	do {
		pid_t w = waitpid(pid, &st, WNOHANG);

		if (w == pid) {
			bu_untrack(pid);
			return st;
		}
		if (w < 0)
			return -1;
		bu_sleep_ms(5);
	} while (bu_now() < end);
	return -1;
}

static inline void bu_kill9(pid_t pid)
{
	kill(pid, SIGCONT);
	kill(pid, SIGKILL);
	bu_wait(pid, 5000);
}

/* The port from nats-server's ports file ({"nats":["nats://127.0.0.1:N"],...}). */
static inline int bu_read_port(const char *dir, pid_t pid)
{
	char path[512], buf[1024];
	ssize_t n;
	int fd;
	char *p;

	snprintf(path, sizeof path, "%s/nats-server_%d.ports", dir, (int)pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strstr(buf, "nats://");
	p = p ? strrchr(p, ':') : NULL;
	return p ? atoi(p + 1) : 0;
}

static inline bool bu_answers(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char buf[8];
	bool ok;

	if (fd < 0)
		return false;
	/* a NATS server greets with "INFO {...}" */
	ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	     setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){ .tv_sec = 1 },
			sizeof(struct timeval)) == 0 &&
	     recv(fd, buf, 4, MSG_WAITALL) == 4 && memcmp(buf, "INFO", 4) == 0;
	close(fd);
	return ok;
}

static inline bool bu_have_server(void)
{
	const char *p = BU_NATS_SERVER;

	return p[0] == '/' ? access(p, X_OK) == 0 : system("command -v nats-server >/dev/null 2>&1") == 0;
}

/* Start a server on store dir (NULL: a new temporary one on a free port;
 * s->dir: restart on the same store and port), with user (NULL: none) as
 * the one user it lets in, under password pass.  0, or -1 (no server, or it
 * did not answer within BU_START_NS; nothing left running). */
static inline int bu_server_start_user(struct bu_server *s, const char *dir, const char *user,
				       const char *pass)
{
	char sd[300], port[16];
	int64_t end;

	if (!dir) {
		memset(s, 0, sizeof *s);
		snprintf(s->dir, sizeof s->dir, "/tmp/shmq-bridge-test.XXXXXX");
		if (!mkdtemp(s->dir))
			return -1;
	}
	snprintf(sd, sizeof sd, "%s/js", s->dir);
	/* a restart keeps the port, so that clients reconnect to the same URL */
	snprintf(port, sizeof port, "%d", dir && s->port > 0 ? s->port : -1);
	s->pid = fork();
	if (s->pid < 0)
		return -1;
	if (s->pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0) {
			dup2(null, 1);
			if (!getenv("BU_VERBOSE"))
				dup2(null, 2);
		}
		if (user)
			execlp(BU_NATS_SERVER, "nats-server", "-js", "-a", "127.0.0.1", "-p", port,
			       "-sd", sd, "--ports_file_dir", s->dir, "--user", user, "--pass", pass,
			       (char *)NULL);
		else
			execlp(BU_NATS_SERVER, "nats-server", "-js", "-a", "127.0.0.1", "-p", port,
			       "-sd", sd, "--ports_file_dir", s->dir, (char *)NULL);
		_exit(127);
	}
	bu_track(s->pid);
	end = bu_now() + BU_START_NS;
	while (bu_now() < end) {
		if (bu_wait(s->pid, 0) != -1)
			break; /* it exited */
		s->port = bu_read_port(s->dir, s->pid);
		if (s->port > 0 && bu_answers(s->port)) {
			snprintf(s->url, sizeof s->url, "nats://127.0.0.1:%d", s->port);
			return 0;
		}
		bu_sleep_ms(20);
	}
	bu_kill9(s->pid);
	s->pid = 0;
	return -1;
}

static inline int bu_server_start(struct bu_server *s, const char *dir)
{
	return bu_server_start_user(s, dir, NULL, NULL);
}

/* kill -9; the store stays (restart with bu_server_start(s, s->dir)). */
static inline void bu_server_kill(struct bu_server *s)
{
	char path[512];

	if (s->pid > 0) {
		bu_kill9(s->pid);
		snprintf(path, sizeof path, "%s/nats-server_%d.ports", s->dir, (int)s->pid);
		unlink(path);
	}
	s->pid = 0;
}

/* Whether every thread of pid is stopped ('T' in /proc/pid/task/N/stat). */
static inline bool bu_all_stopped(pid_t pid)
{
	char path[64], buf[512], *p;
	struct dirent *e;
	bool all = true;
	DIR *d;

	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return true; /* gone: nothing of it runs */
	while (all && (e = readdir(d))) {
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(buf, sizeof buf, "/proc/%d/task/%s/stat", (int)pid, e->d_name);
		f = fopen(buf, "r");
		if (!f)
			continue; /* the thread ended */
		p = fgets(buf, sizeof buf, f) ? strrchr(buf, ')') : NULL;
		all = !p || (p[1] == ' ' && (p[2] == 'T' || p[2] == 't' || p[2] == 'Z' || p[2] == 'X'));
		fclose(f);
	}
	closedir(d);
	return all;
}

/* SIGSTOP or SIGCONT the server.  A stop returns once every thread of the
 * server is stopped (at most 5 s): kill() only makes the signal pending, and
 * a server thread already running finishes what it holds first, so what the
 * caller sends after the pause must find the server stopped. */
static inline void bu_server_pause(struct bu_server *s, bool stop)
{
	kill(s->pid, stop ? SIGSTOP : SIGCONT);
	for (int t = 0; stop && t < 1000 && !bu_all_stopped(s->pid); t++)
		bu_sleep_ms(5);
}

/* Kill the server and remove its store. */
static inline void bu_server_stop(struct bu_server *s)
{
	char cmd[600];

	bu_server_kill(s);
	if (s->dir[0] && strncmp(s->dir, "/tmp/shmq-bridge-test.", 22) == 0) {
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "bridge_util: could not remove %s\n", s->dir);
	}
	s->dir[0] = 0;
}

/* Run argv (a tracked child, stdout and stderr to /dev/null unless
 * BU_VERBOSE is set); its pid, or -1. */
static inline pid_t bu_spawn(char *const argv[])
{
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0 && !getenv("BU_VERBOSE")) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	if (pid > 0)
		bu_track(pid);
	return pid;
}

#endif /* BRIDGE_UTIL_H */
