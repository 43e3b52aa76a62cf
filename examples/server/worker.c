/* SPDX-License-Identifier: MIT */
/*
 * The spawned processes: workers (each with its own SO_REUSEPORT listening
 * socket and a poll loop over its connections) and the logger (drains the
 * access-log queue into the log file).
 *
 * Protocol, one request per line:
 *   INCR <key>   ->  "<key> <new count>"   (and one access-log line)
 *   GET <key>    ->  "<key> <count>"
 *   CRASH <key>  ->  (only with -x) the worker dies halfway through an
 *                    increment, the stripe's lock held
 * anything else  ->  "ERR <reason>"
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server.h"

#define MAX_CONNS   256
#define IN_CAP      1024
#define OUT_CAP     16384
#define REPLY_MAX   (SRV_KEY_MAX + 32)
#define DRAIN_LIMIT (5 * SRV_S)     /* flushing replies at shutdown */
#define LOG_PUT_TIMEOUT (2 * SRV_S) /* a stuck logger costs lines, never a hang */

struct conn {
	int fd;
	bool eof;        /* no more input: the peer closed, or we stopped reading */
	size_t inlen, outoff, outlen;
	char in[IN_CAP];
	char out[OUT_CAP];
};

struct worker {
	struct srv_ctx c;
	const struct srv_worker_arg *a;
	int lfd, sfd;
	bool stopping;
	uint64_t seq;
	struct conn *conns[MAX_CONNS];
	unsigned nconns;
};

/* Callers keep REPLY_MAX bytes free in cn->out before serving a line. */
static void reply(struct conn *cn, const char *key, size_t klen, uint64_t n)
{
	int len = snprintf(cn->out + cn->outlen, OUT_CAP - cn->outlen, "%.*s %llu\n", (int)klen, key,
			   (unsigned long long)n);

	if (len > 0 && (size_t)len < OUT_CAP - cn->outlen)
		cn->outlen += (size_t)len;
}

static void reply_err(struct conn *cn, const char *why)
{
	int len = snprintf(cn->out + cn->outlen, OUT_CAP - cn->outlen, "ERR %s\n", why);

	if (len > 0 && (size_t)len < OUT_CAP - cn->outlen)
		cn->outlen += (size_t)len;
}

static void log_line(struct worker *w, const char *key, size_t klen, uint64_t n)
{
	char line[SRV_LOG_MAX];
	int len, rc;

	len = snprintf(line, sizeof(line), "%d %llu %.*s %llu\n", (int)getpid(),
		       (unsigned long long)++w->seq, (int)klen, key, (unsigned long long)n);
	if (len <= 0 || (size_t)len >= sizeof(line))
		return;
	rc = shmq_queue_put(w->c.q, line, (size_t)len, LOG_PUT_TIMEOUT);
	if (rc) /* relaxed: statistic */
		atomic_fetch_add_explicit(&w->c.ws->log_drops, 1, memory_order_relaxed);
}

static void do_incr(struct worker *w, struct conn *cn, const char *key, size_t klen, int die)
{
	unsigned s = srv_key_stripe(key, klen);
	uint64_t n;
	int rc;

	rc = srv_stripe_lock(&w->c, s);
	if (rc) {
		reply_err(cn, shmq_strerror(rc));
		return;
	}
	rc = srv_incr_locked(&w->c, s, key, klen, die, &n);
	srv_stripe_unlock(&w->c, s);
	if (rc) {
		reply_err(cn, rc == -ENOSPC ? "table full" : shmq_strerror(rc));
		return;
	}
	reply(cn, key, klen, n);
	log_line(w, key, klen, n);
}

static void do_get(struct worker *w, struct conn *cn, const char *key, size_t klen)
{
	unsigned s = srv_key_stripe(key, klen);
	uint64_t n = 0;
	int rc, found, idx;

	rc = srv_stripe_lock(&w->c, s);
	if (rc) {
		reply_err(cn, shmq_strerror(rc));
		return;
	}
	idx = srv_key_slot(&w->c, s, key, klen, &found);
	if (idx >= 0 && found) /* relaxed: under the stripe lock */
		n = atomic_load_explicit(&w->c.sh->stripe[s].slots[idx].count, memory_order_relaxed);
	srv_stripe_unlock(&w->c, s);
	reply(cn, key, klen, n);
}

static void request(struct worker *w, struct conn *cn, char *line, size_t len)
{
	const char *sp, *key;
	size_t vlen;

	if (len && line[len - 1] == '\r')
		len--;
	if (len > SRV_LINE_MAX) {
		reply_err(cn, "line too long");
		return;
	}
	sp = memchr(line, ' ', len);
	key = sp ? sp + 1 : "";
	vlen = sp ? len - (size_t)(key - line) : 0;
	if (!sp || srv_key_check(key, vlen)) {
		reply_err(cn, "usage: INCR|GET <key of 1-47 [A-Za-z0-9._:-]>");
	} else if (sp - line == 4 && !memcmp(line, "INCR", 4)) {
		do_incr(w, cn, key, vlen, 0);
	} else if (sp - line == 3 && !memcmp(line, "GET", 3)) {
		do_get(w, cn, key, vlen);
	} else if (sp - line == 5 && !memcmp(line, "CRASH", 5) && w->a->crash_ok) {
		do_incr(w, cn, key, vlen, 1);
	} else {
		reply_err(cn, "unknown command");
		return;
	}
	/* relaxed: statistic */
	atomic_fetch_add_explicit(&w->c.ws->requests, 1, memory_order_relaxed);
}

/* Answer the complete lines in cn->in while the output has room. */
static void serve_lines(struct worker *w, struct conn *cn)
{
	size_t used = 0;
	char *nl;

	while (OUT_CAP - cn->outlen >= REPLY_MAX &&
	       (nl = memchr(cn->in + used, '\n', cn->inlen - used)) != NULL) {
		request(w, cn, cn->in + used, (size_t)(nl - (cn->in + used)));
		used = (size_t)(nl + 1 - cn->in);
	}
	memmove(cn->in, cn->in + used, cn->inlen - used);
	cn->inlen -= used;
	if (cn->inlen > SRV_LINE_MAX && !memchr(cn->in, '\n', cn->inlen)) {
		reply_err(cn, "line too long");
		cn->inlen = 0;
		cn->eof = true;
	}
}

/* Read what is there (non-blocking); false when the connection is done for. */
static bool conn_read(struct worker *w, struct conn *cn)
{
	ssize_t n;

	while (!cn->eof && cn->inlen < IN_CAP) {
		n = recv(cn->fd, cn->in + cn->inlen, IN_CAP - cn->inlen, 0);
		if (n > 0) {
			cn->inlen += (size_t)n;
			serve_lines(w, cn);
			if (OUT_CAP - cn->outlen < REPLY_MAX)
				break; /* back pressure: let the peer read first */
		} else if (n == 0) {
			cn->eof = true;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			break;
		} else if (errno != EINTR) {
			return false;
		}
	}
	serve_lines(w, cn);
	return true;
}

/* Write what is pending; false when the connection is done for. */
static bool conn_write(struct conn *cn)
{
	ssize_t n;

	while (cn->outoff < cn->outlen) {
		n = send(cn->fd, cn->out + cn->outoff, cn->outlen - cn->outoff, MSG_NOSIGNAL);
		if (n > 0)
			cn->outoff += (size_t)n;
		else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		else if (n < 0 && errno == EINTR)
			continue;
		else
			return false;
	}
	cn->outoff = cn->outlen = 0;
	return true;
}

static void conn_drop(struct worker *w, unsigned i)
{
	close(w->conns[i]->fd);
	free(w->conns[i]);
	w->conns[i] = w->conns[--w->nconns];
}

static void accept_all(struct worker *w)
{
	struct conn *cn;
	int fd;

	while (w->nconns < MAX_CONNS) {
		fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return; /* EAGAIN, or a connection that went away first */
		cn = malloc(sizeof(*cn));
		if (!cn) {
			close(fd);
			return;
		}
		cn->fd = fd;
		cn->eof = false;
		cn->inlen = cn->outoff = cn->outlen = 0;
		w->conns[w->nconns++] = cn;
	}
}

/*
 * SIGTERM: stop accepting (closing the listening socket takes this worker
 * out of the port's SO_REUSEPORT group), answer what every connection has
 * sent already, then close each once its replies are out.
 */
static void begin_stop(struct worker *w)
{
	w->stopping = true;
	close(w->lfd);
	w->lfd = -1;
	for (unsigned i = w->nconns; i-- > 0;) {
		struct conn *cn = w->conns[i];
		bool ok = conn_read(w, cn);

		cn->eof = true;
		shutdown(cn->fd, SHUT_RD);
		/* Flush, serving lines a full output held back, until the socket
		 * pushes back (poll takes over) or all is answered. */
		while (ok && cn->outlen) {
			ok = conn_write(cn);
			if (!ok || cn->outlen)
				break;
			if (cn->inlen)
				serve_lines(w, cn);
		}
		/* An answered connection is done now: nothing would wake poll for it. */
		if (!ok || cn->outlen == 0)
			conn_drop(w, i);
	}
}

static int listen_on(const struct srv_worker_arg *a)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(a->port) };
	int fd, one = 1;

	sa.sin_addr.s_addr = a->addr;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 512)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static int worker_loop(struct worker *w)
{
	struct pollfd pf[MAX_CONNS + 2];
	int64_t drain_end = 0;
	unsigned np, first;
	int n;

	while (!w->stopping || w->nconns) {
		np = 0;
		pf[np++] = (struct pollfd){ .fd = w->sfd, .events = POLLIN };
		if (w->lfd >= 0 && w->nconns < MAX_CONNS)
			pf[np++] = (struct pollfd){ .fd = w->lfd, .events = POLLIN };
		first = np;
		for (unsigned i = 0; i < w->nconns; i++) {
			struct conn *cn = w->conns[i];

			pf[np++] = (struct pollfd){
				.fd = cn->fd,
				.events = (short)((!cn->eof && OUT_CAP - cn->outlen >= REPLY_MAX ? POLLIN : 0) |
						  (cn->outlen ? POLLOUT : 0)),
			};
		}
		n = poll(pf, np, w->stopping ? (int)((drain_end - shmq_now_ns()) / SRV_MS) + 1 : -1);
		if (n < 0 && errno != EINTR)
			return 1;
		if (w->stopping && shmq_now_ns() >= drain_end) {
			fprintf(stderr, "worker %u: %u connections still unflushed after %d s; closing them\n",
				w->a->index, w->nconns, (int)(DRAIN_LIMIT / SRV_S));
			while (w->nconns)
				conn_drop(w, 0);
			break;
		}
		if (n <= 0)
			continue;
		/* Connections first (their pollfds match conns[] by position). */
		for (unsigned i = w->nconns; i-- > 0;) {
			struct conn *cn = w->conns[i];
			short re = pf[first + i].revents;
			bool ok = true;

			if (re & (POLLIN | POLLHUP | POLLERR))
				ok = conn_read(w, cn);
			if (ok && cn->outlen)
				ok = conn_write(cn);
			if (ok && cn->inlen) {
				serve_lines(w, cn); /* lines held back by a full output */
				if (cn->outlen)
					ok = conn_write(cn);
			}
			if (!ok || (cn->eof && cn->outlen == 0))
				conn_drop(w, i);
		}
		if (first == 2 && (pf[1].revents & POLLIN))
			accept_all(w);
		if (pf[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(w->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si) && !w->stopping) {
				begin_stop(w);
				drain_end = shmq_now_ns() + DRAIN_LIMIT;
			}
		}
	}
	return 0;
}

/* Signals arrive on a signalfd; the parent's death is a SIGTERM too. */
static int signals_setup(pid_t master)
{
	sigset_t set;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		return -errno;
	fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != master)
		kill(getpid(), SIGTERM); /* orphaned already: stop at once */
	return fd;
}

int srv_worker(shmq_region *r, const void *arg, size_t len)
{
	struct worker w = { .lfd = -1, .sfd = -1 };
	char who[32];
	int rc, ret = 1;

	if (len != sizeof(*w.a) || !r)
		return 2;
	w.a = arg;
	if (w.a->index >= SRV_MAX_WORKERS)
		return 2;
	snprintf(who, sizeof(who), "worker %u", w.a->index);
	w.sfd = signals_setup(w.a->master);
	rc = w.sfd < 0 ? w.sfd : srv_ctx_open(r, &w.c);
	if (!rc) {
		w.c.who = who;
		w.c.ws = &w.c.sh->w[w.a->index];
		/* relaxed: statistic */
		atomic_store_explicit(&w.c.ws->pid, (int32_t)getpid(), memory_order_relaxed);
		w.lfd = listen_on(w.a);
		rc = w.lfd < 0 ? w.lfd : 0;
	}
	if (w.a->first) {
		shmq_barrier *b;

		if (!shmq_barrier_open(r, SRV_READY, &b)) {
			if (rc)
				shmq_barrier_abort(b); /* the master learns at once */
			else if (shmq_barrier_wait(b, 60 * SRV_S) < 0)
				rc = -EPIPE; /* a sibling failed or the master gave up */
			shmq_barrier_close(b);
		}
	}
	if (rc)
		fprintf(stderr, "%s: setup: %s\n", who, shmq_strerror(rc));
	else
		ret = worker_loop(&w);
	if (w.lfd >= 0)
		close(w.lfd);
	if (w.sfd >= 0)
		close(w.sfd);
	srv_ctx_close(&w.c);
	return ret;
}
SHMQ_ENTRY(srv_worker);

/* A message must be one printable line: the queue is shared memory. */
static bool log_ok(const char *m, size_t n)
{
	if (n == 0 || m[n - 1] != '\n')
		return false;
	for (size_t i = 0; i + 1 < n; i++)
		if (m[i] < ' ' || m[i] > '~')
			return false;
	return true;
}

/*
 * The logger ignores SIGTERM and SIGINT: it stops when the master shuts the
 * queue down (after the last worker left) and it has written every line.
 * If the master dies instead, it notices within a second, writes what is
 * queued and stops.
 */
int srv_logger(shmq_region *r, const void *arg, size_t len)
{
	const struct srv_logger_arg *a = arg;
	enum { BATCH = 64 };
	char (*buf)[SRV_LOG_MAX];
	struct iovec iov[BATCH];
	size_t lens[BATCH];
	struct srv_ctx c;
	FILE *f = NULL;
	int64_t wait = SRV_S;
	ssize_t n = 0;
	int rc, ret = 1;

	if (len != sizeof(*a) || !r || !memchr(a->path, '\0', sizeof(a->path)))
		return 2;
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	buf = malloc(BATCH * sizeof(*buf));
	rc = buf ? srv_ctx_open(r, &c) : -ENOMEM;
	if (rc) {
		fprintf(stderr, "logger: setup: %s\n", shmq_strerror(rc));
		free(buf);
		return 1;
	}
	f = fopen(a->path, "a");
	if (!f) {
		fprintf(stderr, "logger: %s: %s\n", a->path, strerror(errno));
		goto out;
	}
	for (unsigned i = 0; i < BATCH; i++)
		iov[i] = (struct iovec){ .iov_base = buf[i], .iov_len = sizeof(buf[i]) };
	for (;;) {
		n = shmq_queue_get_bulk(c.q, iov, lens, BATCH, wait);
		if (n == -ETIMEDOUT || n == -EAGAIN) {
			if (fflush(f))
				break;
			if (getppid() != a->master)
				wait = SHMQ_NOWAIT; /* orphaned: drain, then stop */
			else if (wait == SHMQ_NOWAIT)
				break;
			continue;
		}
		if (n < 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			bool ok = log_ok(buf[i], lens[i]);

			if (ok)
				fwrite(buf[i], 1, lens[i], f);
			/* relaxed: statistics */
			atomic_fetch_add_explicit(ok ? &c.sh->logged : &c.sh->log_bad, 1,
						  memory_order_relaxed);
		}
		if (n < BATCH && fflush(f))
			break;
	}
	if (n != -EPIPE && wait != SHMQ_NOWAIT)
		fprintf(stderr, "logger: %s\n", n < 0 ? shmq_strerror((int)n) : strerror(errno));
	else
		ret = 0;
	if (fclose(f) && !ret) {
		fprintf(stderr, "logger: %s: %s\n", a->path, strerror(errno));
		ret = 1;
	}
out:
	srv_ctx_close(&c);
	free(buf);
	return ret;
}
SHMQ_ENTRY(srv_logger);
