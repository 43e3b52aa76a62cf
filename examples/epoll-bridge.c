/* SPDX-License-Identifier: MIT */
/*
 * epoll-bridge: an epoll TCP server whose workers are libshmq processes.
 *
 * The server's one thread runs a plain epoll loop over the listening
 * socket, the client connections and one more descriptor:
 * shmq_waitset_fd() of a waitset holding the workers' reply pipes and the
 * worker processes.  A request line read from a connection goes into a
 * shmq queue that every worker takes from; a worker answers (the line in
 * upper case) through its own shmq pipe, and when the epoll loop sees the
 * waitset's descriptor readable, shmq_waitset_wait() says which pipes have
 * replies (or which worker died), without blocking.
 *
 * The example is its own client: a thread connects CONNS times to the
 * server's ephemeral port on 127.0.0.1, sends ROUNDS requests on each,
 * checks every reply and tells the loop it is done; the program exits 0
 * only if every reply was right.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <shmq.h>

#define WORKERS 2
#define CONNS   4
#define ROUNDS  50
#define LINE_MAX_ 200
#define SEC 1000000000LL

struct msg {          /* a request or a reply */
	uint32_t conn;    /* the server's connection descriptor */
	uint32_t len;
	char line[LINE_MAX_];
};

/* ---- the worker processes ---- */

static int worker(shmq_region *r, const void *arg, size_t len)
{
	char name[32];
	shmq_queue *q;
	shmq_pipe *out;
	struct msg m;
	int idx;

	if (len != sizeof(idx))
		return 2;
	memcpy(&idx, arg, sizeof(idx));
	snprintf(name, sizeof(name), "reply.%d", idx);
	if (shmq_queue_open(r, "requests", &q) || shmq_pipe_open(r, name, 1, &out))
		return 3;
	for (;;) {
		ssize_t n = shmq_queue_get(q, &m, sizeof(m), 60 * SEC);

		if (n == 0)
			break; /* the server's stop message */
		if (n < (ssize_t)offsetof(struct msg, line) || m.len > LINE_MAX_ ||
		    (size_t)n != offsetof(struct msg, line) + m.len)
			return 4;
		for (uint32_t i = 0; i < m.len; i++)
			m.line[i] = (char)toupper((unsigned char)m.line[i]);
		if (shmq_pipe_send(out, &m, offsetof(struct msg, line) + m.len, 10 * SEC))
			return 5;
	}
	shmq_pipe_close(out);
	shmq_queue_close(q);
	return 0;
}
SHMQ_ENTRY(worker);

/* ---- the client thread ---- */

struct client {
	int port;
	int done_fd; /* eventfd: written when the client has finished */
	int failures;
};

static int read_line(int fd, char *buf, size_t cap)
{
	size_t n = 0;

	while (n + 1 < cap) {
		ssize_t k = read(fd, &buf[n], 1);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		if (buf[n++] == '\n')
			break;
	}
	buf[n] = 0;
	return (int)n;
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)c->port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { 10, 0 };
	int fd[CONNS];
	uint64_t one = 1;

	for (int i = 0; i < CONNS; i++)
		fd[i] = -1;

	for (int i = 0; i < CONNS; i++) {
		fd[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		setsockopt(fd[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (fd[i] < 0 || connect(fd[i], (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			c->failures++;
			goto out;
		}
	}
	/* every connection has a request in flight at once, ROUNDS times */
	for (int round = 0; round < ROUNDS; round++) {
		char req[64], want[64], got[LINE_MAX_ + 2];

		for (int i = 0; i < CONNS; i++) {
			int n = snprintf(req, sizeof(req), "hello %d from %d\n", round, i);

			if (write(fd[i], req, (size_t)n) != n)
				c->failures++;
		}
		for (int i = 0; i < CONNS; i++) {
			snprintf(want, sizeof(want), "HELLO %d FROM %d\n", round, i);
			if (read_line(fd[i], got, sizeof(got)) < 0 || strcmp(got, want) != 0)
				c->failures++;
		}
	}
out:
	for (int i = 0; i < CONNS; i++)
		if (fd[i] >= 0)
			close(fd[i]);
	if (write(c->done_fd, &one, sizeof(one)) != sizeof(one))
		c->failures++;
	return NULL;
}

/* ---- the server ---- */

#define TAG_LISTEN (-1)
#define TAG_SHMQ   (-2)
#define TAG_DONE   (-3)

struct server {
	int ep;
	shmq_queue *q;
	shmq_pipe *reply[WORKERS];  /* our end (0) of each worker's pipe */
	shmq_proc *proc[WORKERS];
	shmq_waitset *ws;
	unsigned long requests, replies;
};

static int ep_add(int ep, int fd, int tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = tag == 0 ? fd : tag };

	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

/* A connection is readable: every full line becomes a request.  Requests
 * are short and the client waits for each reply, so one read holds whole
 * lines; a real server would keep a buffer per connection. */
static int on_conn(struct server *s, int fd)
{
	char buf[1024];
	ssize_t n = read(fd, buf, sizeof(buf));
	char *p = buf, *end;

	if (n <= 0) {
		epoll_ctl(s->ep, EPOLL_CTL_DEL, fd, NULL);
		close(fd);
		return 0;
	}
	while (p < buf + n && (end = memchr(p, '\n', (size_t)(buf + n - p)))) {
		struct msg m = { .conn = (uint32_t)fd, .len = (uint32_t)(end - p + 1) };

		if (m.len > LINE_MAX_)
			return -1;
		memcpy(m.line, p, m.len);
		if (shmq_queue_put(s->q, &m, offsetof(struct msg, line) + m.len, 10 * SEC))
			return -1;
		s->requests++;
		p = end + 1;
	}
	return 0;
}

/* The waitset's descriptor is readable: collect what is ready, never block. */
static int on_shmq(struct server *s)
{
	struct shmq_ready rd[WORKERS * 2];
	int n = shmq_waitset_wait(s->ws, rd, WORKERS * 2, SHMQ_NOWAIT);

	if (n == -ETIMEDOUT)
		return 0; /* a liveness tick: nothing to do */
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		uintptr_t cookie = (uintptr_t)rd[i].cookie;
		struct msg m;
		ssize_t len;

		if (cookie > WORKERS) {
			fprintf(stderr, "worker %lu exited early\n", (unsigned long)(cookie - WORKERS - 1));
			return -1;
		}
		while ((len = shmq_pipe_recv(s->reply[cookie - 1], &m, sizeof(m), SHMQ_NOWAIT)) > 0) {
			if (m.len > LINE_MAX_ || write((int)m.conn, m.line, m.len) != (ssize_t)m.len)
				return -1;
			s->replies++;
		}
		if (len != -EAGAIN)
			return (int)len;
	}
	return 0;
}

static int serve(struct server *s, int lfd)
{
	for (;;) {
		struct epoll_event ev[16];
		int n = epoll_wait(s->ep, ev, 16, 30000);

		if (n < 0 && errno == EINTR)
			continue; /* a signal, or io_uring's task work arriving here */
		if (n <= 0)
			return -1;
		for (int i = 0; i < n; i++) {
			int tag = ev[i].data.fd, rc = 0;

			if (tag == TAG_DONE)
				return 0;
			if (tag == TAG_LISTEN) {
				int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

				rc = c < 0 ? -1 : ep_add(s->ep, c, 0);
			} else if (tag == TAG_SHMQ) {
				rc = on_shmq(s);
			} else {
				rc = on_conn(s, tag);
			}
			if (rc < 0)
				return rc;
		}
	}
}

int main(int argc, char **argv)
{
	struct server s = { .ep = -1 };
	struct client c = { 0 };
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t salen = sizeof(sa);
	shmq_pipe *far[WORKERS];
	shmq_region *r;
	pthread_t client;
	int lfd, rc, bad = 0;

	shmq_dispatch(argc, argv);
	rc = shmq_region_create(NULL, NULL, &r);
	if (!rc)
		rc = shmq_queue_create(r, "requests",
				       &(struct shmq_queue_opts){ .capacity = 64, .max_msg = sizeof(struct msg) },
				       &s.q);
	if (!rc)
		rc = shmq_waitset_create(&s.ws);
	for (int i = 0; !rc && i < WORKERS; i++) {
		char name[32];

		snprintf(name, sizeof(name), "reply.%d", i);
		rc = shmq_pipe_create(r, name, NULL, &s.reply[i], &far[i]);
		if (!rc)
			rc = shmq_proc_spawn(r, "worker", &i, sizeof(i), NULL, &s.proc[i]);
		/* cookies: 1..WORKERS a reply pipe, WORKERS+1.. a worker's exit */
		if (!rc)
			rc = shmq_waitset_add_pipe(s.ws, s.reply[i], SHMQ_READABLE, (void *)(uintptr_t)(i + 1));
		if (!rc)
			rc = shmq_waitset_add_proc(s.ws, s.proc[i], (void *)(uintptr_t)(WORKERS + 1 + i));
	}
	if (rc) {
		fprintf(stderr, "setup: %s\n", shmq_strerror(rc));
		return 1;
	}

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	s.ep = epoll_create1(EPOLL_CLOEXEC);
	c.done_fd = eventfd(0, EFD_CLOEXEC);
	if (lfd < 0 || s.ep < 0 || c.done_fd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(lfd, 16) || getsockname(lfd, (struct sockaddr *)&sa, &salen) ||
	    ep_add(s.ep, lfd, TAG_LISTEN) || ep_add(s.ep, c.done_fd, TAG_DONE) ||
	    ep_add(s.ep, shmq_waitset_fd(s.ws), TAG_SHMQ)) {
		perror("socket setup");
		return 1;
	}
	c.port = ntohs(sa.sin_port);
	if (pthread_create(&client, NULL, client_main, &c)) {
		fprintf(stderr, "client thread\n");
		return 1;
	}
	rc = serve(&s, lfd);
	pthread_join(client, NULL);
	shmq_waitset_free(s.ws); /* before the pipes and processes it watches */

	/* stop the workers: one empty message each, then join */
	for (int i = 0; i < WORKERS; i++)
		bad |= shmq_queue_put(s.q, "", 0, 10 * SEC) != 0;
	for (int i = 0; i < WORKERS; i++) {
		bad |= shmq_proc_join(s.proc[i], 10 * SEC) != 0 || shmq_proc_exitcode(s.proc[i]) != 0;
		shmq_proc_close(s.proc[i]);
		shmq_pipe_close(far[i]);
		shmq_pipe_close(s.reply[i]);
	}
	shmq_queue_close(s.q);
	shmq_region_close(r);
	printf("epoll-bridge: %lu requests, %lu replies through %d worker processes, %d client errors\n",
	       s.requests, s.replies, WORKERS, c.failures);
	return rc || bad || c.failures || s.replies != (unsigned long)CONNS * ROUNDS;
}
