/* SPDX-License-Identifier: MIT */
/*
 * A pre-forked TCP counter server built on libshmq: the master.
 *
 *   server [-b ADDR] [-i MS] [-x] PORT WORKERS LOGFILE
 *
 * The master lays out the shared state in an anonymous region (see
 * server.h), spawns the logger and WORKERS workers (shmq_proc_spawn; each
 * worker binds its own SO_REUSEPORT socket to the port), waits at a barrier
 * until all of them listen, prints "port N" on stdout, and then runs a
 * shmq scheduler: statistics every MS milliseconds (default 1000) on
 * stderr, a watch on every child (a worker or logger that dies is
 * respawned), and the shutdown that SIGTERM or SIGINT starts:
 *
 *   1. SIGTERM to every worker: each stops accepting, answers what its
 *      connections have sent, and exits;
 *   2. once the last worker is gone, the access-log queue is shut down;
 *   3. the logger writes every queued line and exits (-EPIPE after drain);
 *   4. the master prints the counters ("final KEY COUNT" on stdout) and
 *      totals (stderr) and exits 0.
 * Every step has a deadline; a child that misses it is killed and the
 * master exits 1.  -x enables the CRASH command (tests of dead lock holders).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server.h"

#define MAX_RESPAWNS   32
#define STOP_DEADLINE  (15 * SRV_S) /* workers to exit after SIGTERM */
#define LOG_DEADLINE   (15 * SRV_S) /* logger to drain after the queue shut down */
#define READY_DEADLINE (60 * SRV_S) /* workers to listen (sanitizer builds start slowly) */

struct child {
	struct master *m;
	shmq_proc *p;
	unsigned index;     /* workers: 0..n-1; the logger: n */
};

struct master {
	struct srv_ctx c;
	shmq_region *r;
	shmq_sched *s;
	struct srv_worker_arg wa;
	struct srv_logger_arg la;
	unsigned nworkers, live_workers, respawns;
	struct child *kids;        /* nworkers workers, then the logger */
	shmq_event *stats_ev, *deadline_ev;
	bool stopping, queue_down, failed;
	_Atomic bool done;         /* tells the signal thread to return */
	int64_t interval, last_t;
	uint64_t last_n;
};

static uint64_t total_requests(struct master *m)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < m->nworkers; i++) /* relaxed: statistic */
		n += atomic_load_explicit(&m->c.sh->w[i].requests, memory_order_relaxed);
	return n;
}

static void print_stats(void *arg)
{
	struct master *m = arg;
	int64_t now = shmq_now_ns();
	uint64_t n = total_requests(m);
	double dt = (double)(now - m->last_t) / 1e9;

	fprintf(stderr, "server: %.0f req/s, total %llu, workers %u, log queue %zu, logged %llu\n",
		dt > 0 ? (double)(n - m->last_n) / dt : 0.0, (unsigned long long)n, m->live_workers,
		shmq_queue_len(m->c.q), /* relaxed: statistic */
		(unsigned long long)atomic_load_explicit(&m->c.sh->logged, memory_order_relaxed));
	m->last_t = now;
	m->last_n = n;
}

static void child_exited(void *arg);

static int spawn(struct master *m, struct child *k, bool first)
{
	int rc;

	if (k->index < m->nworkers) {
		struct srv_worker_arg wa = m->wa;

		wa.index = k->index;
		wa.first = first;
		rc = shmq_proc_spawn(m->r, "srv_worker", &wa, sizeof(wa), NULL, &k->p);
	} else {
		rc = shmq_proc_spawn(m->r, "srv_logger", &m->la, sizeof(m->la), NULL, &k->p);
	}
	if (!rc && m->s) {
		rc = shmq_sched_watch_proc(m->s, k->p, child_exited, k);
		if (rc) {
			shmq_proc_close(k->p); /* kills it: unwatched, nobody would see it end */
			k->p = NULL;
		}
	}
	if (!rc && k->index < m->nworkers)
		m->live_workers++;
	return rc;
}

static void kill_all(struct master *m, int sig)
{
	for (unsigned i = 0; i <= m->nworkers; i++)
		if (m->kids[i].p)
			shmq_proc_kill(m->kids[i].p, sig);
}

static void deadline_missed(void *arg)
{
	struct master *m = arg;

	m->deadline_ev = NULL;
	fprintf(stderr, "server: %s missed the shutdown deadline; killing\n",
		m->queue_down ? "the logger" : "a worker");
	m->failed = true;
	kill_all(m, SIGKILL);
}

static void set_deadline(struct master *m, int64_t ns)
{
	if (m->deadline_ev)
		shmq_sched_cancel(m->s, m->deadline_ev);
	m->deadline_ev = NULL;
	if (ns && shmq_sched_enter(m->s, ns, 0, deadline_missed, m, &m->deadline_ev))
		m->deadline_ev = NULL;
}

/* Step 2: no producer is left, so the queue may close; the logger drains it. */
static void workers_gone(struct master *m)
{
	m->queue_down = true;
	shmq_queue_shutdown(m->c.q);
	set_deadline(m, LOG_DEADLINE);
}

/* Step 1 (SIGTERM, SIGINT, or a failure). */
static void begin_stop(struct master *m)
{
	if (m->stopping)
		return;
	m->stopping = true;
	fprintf(stderr, "server: stopping %u workers\n", m->live_workers);
	for (unsigned i = 0; i < m->nworkers; i++)
		if (m->kids[i].p)
			shmq_proc_kill(m->kids[i].p, SIGTERM);
	set_deadline(m, STOP_DEADLINE);
	if (m->live_workers == 0)
		workers_gone(m);
}

static void on_signal(void *arg)
{
	begin_stop(arg);
}

/* A watched child exited: reap it, then respawn it or move the shutdown on. */
static void child_exited(void *arg)
{
	struct child *k = arg;
	struct master *m = k->m;
	bool worker = k->index < m->nworkers;
	pid_t pid = shmq_proc_pid(k->p);
	int code;

	shmq_proc_join(k->p, SRV_S);
	code = shmq_proc_exitcode(k->p);
	shmq_proc_close(k->p);
	k->p = NULL;
	if (worker)
		m->live_workers--;
	/* A worker told to stop exits 0, or -SIGTERM if the signal beat its setup. */
	if (m->stopping && worker && (code == 0 || code == -SIGTERM)) {
		if (m->live_workers == 0)
			workers_gone(m);
		return;
	}
	if (m->queue_down && !worker) {
		if (code != 0) {
			fprintf(stderr, "server: logger exited with %d\n", code);
			m->failed = true;
		}
		set_deadline(m, 0);
		shmq_sched_cancel(m->s, m->stats_ev);
		shmq_sched_stop(m->s);
		return;
	}
	fprintf(stderr, "server: %s %u (pid %d) %s %d; ", worker ? "worker" : "logger", k->index,
		(int)pid, code < 0 ? "killed by signal" : "exited with", code < 0 ? -code : code);
	if (m->respawns >= MAX_RESPAWNS || (m->stopping && worker)) {
		fprintf(stderr, "not respawned\n");
		m->failed = true;
	} else if (m->respawns++, spawn(m, k, false)) {
		fprintf(stderr, "respawn failed\n");
		m->failed = true;
	} else {
		fprintf(stderr, "respawned as pid %d\n", (int)shmq_proc_pid(k->p));
		return;
	}
	if (m->stopping && worker && m->live_workers == 0)
		workers_gone(m);
	begin_stop(m);
}

/* SIGTERM and SIGINT stay blocked in every thread; this one takes them and
 * hands them to the scheduler's thread as an event.  SIGUSR1 ends it. */
static void *signal_thread(void *arg)
{
	struct master *m = arg;
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	for (;;) {
		if (sigwait(&set, &sig))
			continue;
		if (sig != SIGUSR1)
			shmq_sched_enter(m->s, 0, -1, on_signal, m, NULL);
		else if (atomic_load_explicit(&m->done, memory_order_seq_cst))
			return NULL;
	}
}

/* The port: bound (not listening) by the master for the run, so that a
 * port 0 request is resolved once and the workers join it. */
static int reserve_port(struct master *m, unsigned port, uint16_t *out)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	socklen_t sl = sizeof(sa);
	int fd, one = 1;

	sa.sin_addr.s_addr = m->wa.addr;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl)) {
		int err = -errno;

		close(fd);
		return err;
	}
	*out = ntohs(sa.sin_port);
	return fd;
}

/* Final counters, each stripe read under its lock (and repaired if a
 * worker was killed holding it). */
static uint64_t dump_counters(struct master *m, unsigned *keys)
{
	uint64_t sum = 0;

	*keys = 0;
	for (unsigned s = 0; s < SRV_STRIPES; s++) {
		struct srv_stripe *st = &m->c.sh->stripe[s];

		if (srv_stripe_lock(&m->c, s)) {
			fprintf(stderr, "server: stripe %u: lock unavailable; counters not shown\n", s);
			m->failed = true;
			continue;
		}
		for (unsigned i = 0; i < SRV_SLOTS; i++) {
			struct srv_slot *sl = &st->slots[i];
			/* relaxed: under the stripe lock */
			uint64_t n = atomic_load_explicit(&sl->count, memory_order_relaxed);

			if (!atomic_load_explicit(&sl->used, memory_order_relaxed))
				continue;
			if (!memchr(sl->key, '\0', sizeof(sl->key))) {
				m->failed = true; /* the region is not trusted */
				continue;
			}
			printf("final %s %llu\n", sl->key, (unsigned long long)n);
			sum += n;
			++*keys;
		}
		srv_stripe_unlock(&m->c, s);
	}
	return sum;
}

static void usage(void)
{
	fprintf(stderr, "usage: server [-b IPV4ADDR] [-i STATS_MS] [-x] PORT WORKERS LOGFILE\n"
			"  PORT 0 picks a free port; \"port N\" is printed on stdout once all\n"
			"  workers listen.  SIGTERM or SIGINT stops the server cleanly.\n"
			"  -x enables the CRASH <key> command (kills a worker mid-update).\n");
	exit(2);
}

static int setup(struct master *m, unsigned port, int *portfd)
{
	shmq_barrier *b = NULL;
	uint16_t p16 = 0;
	int rc;

	rc = shmq_region_create(NULL, &(struct shmq_region_opts){ .size = 4 << 20 }, &m->r);
	if (!rc)
		rc = srv_ctx_create(m->r, &m->c, m->nworkers);
	if (rc)
		return rc;
	*portfd = reserve_port(m, port, &p16);
	if (*portfd < 0)
		return *portfd;
	m->wa.port = p16;
	m->kids = calloc(m->nworkers + 1, sizeof(*m->kids));
	if (!m->kids)
		return -ENOMEM;
	for (unsigned i = 0; i <= m->nworkers; i++)
		m->kids[i] = (struct child){ .m = m, .index = i };
	rc = spawn(m, &m->kids[m->nworkers], false);
	for (unsigned i = 0; !rc && i < m->nworkers; i++)
		rc = spawn(m, &m->kids[i], true);
	if (!rc)
		rc = shmq_barrier_open(m->r, SRV_READY, &b);
	if (!rc) {
		rc = shmq_barrier_wait(b, READY_DEADLINE);
		if (rc < 0)
			shmq_barrier_abort(b);
		shmq_barrier_close(b);
	}
	if (rc < 0)
		return rc;
	printf("port %u\n", p16);
	fflush(stdout);
	return 0;
}

static int parse_uint(const char *s, unsigned long max, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > max || s[0] == '-')
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

int main(int argc, char **argv)
{
	struct master m = { .interval = SRV_S };
	unsigned port, ms;
	shmq_thread *sig_thr = NULL;
	sigset_t set;
	int opt, rc, portfd = -1, fd;
	uint64_t sum = 0, logged, repairs = 0, drops = 0;
	unsigned keys = 0;

	shmq_dispatch(argc, argv);
	m.wa.addr = htonl(INADDR_LOOPBACK);
	while ((opt = getopt(argc, argv, "b:i:x")) != -1) {
		if (opt == 'b' && inet_pton(AF_INET, optarg, &m.wa.addr) == 1)
			continue;
		if (opt == 'i' && !parse_uint(optarg, 3600000, &ms) && ms > 0)
			m.interval = ms * SRV_MS;
		else if (opt == 'x')
			m.wa.crash_ok = 1;
		else
			usage();
	}
	if (argc - optind != 3 || parse_uint(argv[optind], 65535, &port) ||
	    parse_uint(argv[optind + 1], SRV_MAX_WORKERS, &m.nworkers) || m.nworkers == 0 ||
	    strlen(argv[optind + 2]) >= sizeof(m.la.path))
		usage();
	strcpy(m.la.path, argv[optind + 2]);
	m.wa.master = m.la.master = (int32_t)getpid();

	/* Before any thread or child: the signals wait for the signal thread. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	fd = open(m.la.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "server: %s: %s\n", m.la.path, strerror(errno));
		return 1;
	}
	close(fd);

	rc = setup(&m, port, &portfd);
	if (!rc)
		rc = shmq_sched_create(NULL, &m.s);
	for (unsigned i = 0; !rc && i <= m.nworkers; i++)
		rc = shmq_sched_watch_proc(m.s, m.kids[i].p, child_exited, &m.kids[i]);
	if (!rc) {
		m.last_t = shmq_now_ns();
		rc = shmq_sched_enter_periodic(m.s, m.last_t + m.interval, m.interval, 1, print_stats, &m,
					       &m.stats_ev);
	}
	if (!rc)
		rc = shmq_thread_start(signal_thread, &m, &sig_thr);
	if (rc) {
		fprintf(stderr, "server: setup: %s\n", shmq_strerror(rc));
		m.failed = true;
		if (m.kids)
			kill_all(&m, SIGKILL);
	} else {
		fprintf(stderr, "server: %u workers on port %u, log %s, scheduler on %s\n", m.nworkers,
			m.wa.port, m.la.path, shmq_sched_backend(m.s));
		rc = (int)shmq_sched_run(m.s, true);
		if (rc) {
			fprintf(stderr, "server: scheduler: %s\n", shmq_strerror(rc));
			m.failed = true;
			kill_all(&m, SIGKILL);
		}
	}

	/* Reap whatever is left (only after a failure), then the counters. */
	for (unsigned i = 0; m.kids && i <= m.nworkers; i++) {
		if (!m.kids[i].p)
			continue;
		if (m.s)
			shmq_sched_unwatch(m.s, m.kids[i].p);
		shmq_proc_close(m.kids[i].p);
	}
	if (m.c.sh) {
		sum = dump_counters(&m, &keys);
		fflush(stdout);
		logged = atomic_load_explicit(&m.c.sh->logged, memory_order_relaxed); /* statistic */
		for (unsigned i = 0; i < m.nworkers; i++) { /* relaxed: statistics */
			repairs += atomic_load_explicit(&m.c.sh->w[i].repairs, memory_order_relaxed);
			drops += atomic_load_explicit(&m.c.sh->w[i].log_drops, memory_order_relaxed);
		}
		fprintf(stderr,
			"server: final: %llu requests, %llu increments over %u keys, %llu log lines, "
			"%llu lines dropped, %u respawns, %llu repairs\n",
			(unsigned long long)total_requests(&m), (unsigned long long)sum, keys,
			(unsigned long long)logged, (unsigned long long)drops, m.respawns,
			(unsigned long long)repairs);
	}
	if (sig_thr) {
		atomic_store_explicit(&m.done, true, memory_order_seq_cst);
		kill(getpid(), SIGUSR1);
		if (shmq_thread_join(sig_thr, 10 * SRV_S, NULL) == 0)
			shmq_thread_close(sig_thr);
	}
	shmq_sched_destroy(m.s);
	srv_ctx_close(&m.c);
	free(m.kids);
	if (portfd >= 0)
		close(portfd);
	shmq_region_close(m.r);
	return m.failed ? 1 : 0;
}
