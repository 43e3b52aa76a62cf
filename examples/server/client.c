/* SPDX-License-Identifier: MIT */
/*
 * Load generator and checker for the counter server.
 *
 *   client [-c CLIENTS] [-n REQUESTS] [-k KEYS] [-d DEPTH] [-t SECONDS] HOST PORT
 *     CLIENTS connections (one thread each, default 8) send REQUESTS
 *     "INCR k<i>" in all (default 10000) over the keys k0..k<KEYS-1>
 *     (default 37), DEPTH requests in flight per connection (default 1).
 *     Checks that every reply names its key and that, per key, the counts
 *     replied are consecutive without a gap or a duplicate; prints
 *     "KEY FIRST LAST" per key on stdout and the rate on stderr.
 *   client -C KEY [-t SECONDS] HOST PORT
 *     GET KEY, then CRASH KEY (a server run with -x dies with the key's
 *     stripe locked, mid-update: no reply), then INCR KEY, which must answer
 *     the count before the crash plus one.  Prints "KEY COUNT".
 * Every socket wait is bounded by SECONDS (default 20).  Exit 0: all good.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <shmq.h>

#define KEYLEN 32

struct rd {
	int fd;
	size_t len, off;
	char buf[4096];
};

static struct sockaddr_in addr;
static unsigned nclients = 8, nkeys = 37, depth = 1;
static unsigned long nreq = 10000;
static int timeout_s = 20;

struct record {
	uint32_t key;
	uint64_t count;
};

struct client {
	unsigned id;
	size_t n, cap;
	struct record *rec;  /* grows as replies come (a long run may be cut short) */
	int failed;
	shmq_thread *t;
};

static int dial(void)
{
	struct timeval tv = { .tv_sec = timeout_s };
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr))) {
		close(fd);
		return -1;
	}
	return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One reply line into line (NUL-terminated, newline dropped): its length,
 * 0 at end of stream, -1 on an error or timeout. */
static ssize_t read_line(struct rd *r, char *line, size_t cap)
{
	for (;;) {
		char *nl = memchr(r->buf + r->off, '\n', r->len - r->off);

		if (nl) {
			size_t n = (size_t)(nl - (r->buf + r->off));

			if (n >= cap)
				return -1;
			memcpy(line, r->buf + r->off, n);
			line[n] = '\0';
			r->off += n + 1;
			return (ssize_t)n + 1;
		}
		memmove(r->buf, r->buf + r->off, r->len - r->off);
		r->len -= r->off;
		r->off = 0;
		if (r->len == sizeof(r->buf))
			return -1;
		ssize_t got = recv(r->fd, r->buf + r->len, sizeof(r->buf) - r->len, 0);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return got == 0 && r->len == 0 ? 0 : -1;
		r->len += (size_t)got;
	}
}

/* "KEY N" -> N, checking the key; -1 if the line is anything else. */
static long long parse_reply(const char *line, const char *key)
{
	size_t kl = strlen(key);
	char *end;
	long long n;

	if (strncmp(line, key, kl) || line[kl] != ' ')
		return -1;
	errno = 0;
	n = strtoll(line + kl + 1, &end, 10);
	return errno || *end || n < 0 ? -1 : n;
}

static int grow(struct client *c)
{
	size_t cap = c->cap ? 2 * c->cap : 1024;
	struct record *rec = realloc(c->rec, cap * sizeof(*rec));

	if (!rec)
		return -1;
	c->rec = rec;
	c->cap = cap;
	return 0;
}

static void *client_run(void *arg)
{
	struct client *c = arg;
	struct rd *r = malloc(sizeof(*r));
	char req[64 * 32], line[128], key[KEYLEN];
	unsigned long j = c->id;

	if (!r || (r->fd = dial()) < 0) {
		fprintf(stderr, "client %u: connect: %s\n", c->id, strerror(errno));
		c->failed = 1;
		free(r);
		return NULL;
	}
	r->len = r->off = 0;
	while (j < nreq && !c->failed) {
		unsigned long batch[64];
		size_t len = 0, nb = 0;

		for (; nb < depth && j < nreq; nb++, j += nclients) {
			batch[nb] = j;
			len += (size_t)snprintf(req + len, sizeof(req) - len, "INCR k%lu\n", j % nkeys);
		}
		if (send_all(r->fd, req, len)) {
			fprintf(stderr, "client %u: send: %s\n", c->id, strerror(errno));
			c->failed = 1;
			break;
		}
		for (size_t b = 0; b < nb; b++) {
			ssize_t n = read_line(r, line, sizeof(line));
			long long v;

			snprintf(key, sizeof(key), "k%lu", batch[b] % nkeys);
			v = n > 0 ? parse_reply(line, key) : -1;
			if (v < 1) {
				fprintf(stderr, "client %u: request %lu (INCR %s): %s \"%s\"\n", c->id, batch[b],
					key, n > 0 ? "bad reply" : "no reply", n > 0 ? line : "");
				c->failed = 1;
				break;
			}
			if (c->n == c->cap && grow(c)) {
				fprintf(stderr, "client %u: out of memory\n", c->id);
				c->failed = 1;
				break;
			}
			c->rec[c->n++] = (struct record){ (uint32_t)(batch[b] % nkeys), (uint64_t)v };
		}
	}
	close(r->fd);
	free(r);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Per key: the counts replied are FIRST, FIRST+1, ..., LAST, each once. */
static int check(struct client *cl)
{
	uint64_t **counts = calloc(nkeys, sizeof(*counts));
	size_t *n = calloc(nkeys, sizeof(*n)), want;
	int bad = 0;

	if (!counts || !n) {
		free(counts);
		free(n);
		return 1;
	}
	for (unsigned k = 0; k < nkeys; k++) {
		counts[k] = malloc((nreq / nkeys + 1) * sizeof(**counts));
		bad |= !counts[k];
	}
	for (unsigned i = 0; !bad && i < nclients; i++) {
		for (size_t j = 0; j < cl[i].n; j++) {
			struct record *rc = &cl[i].rec[j];

			if (n[rc->key] < nreq / nkeys + 1)
				counts[rc->key][n[rc->key]++] = rc->count;
			else
				bad = 1;
		}
	}
	for (unsigned k = 0; !bad && k < nkeys; k++) {
		want = nreq / nkeys + (k < nreq % nkeys);
		if (n[k] != want) {
			fprintf(stderr, "client: k%u: %zu replies, %zu requests\n", k, n[k], want);
			bad = 1;
			break;
		}
		if (!want)
			continue;
		qsort(counts[k], n[k], sizeof(**counts), cmp_u64);
		for (size_t i = 1; i < n[k]; i++) {
			if (counts[k][i] != counts[k][i - 1] + 1) {
				fprintf(stderr, "client: k%u: reply %llu after %llu (%s)\n", k,
					(unsigned long long)counts[k][i],
					(unsigned long long)counts[k][i - 1],
					counts[k][i] == counts[k][i - 1] ? "duplicate" : "gap");
				bad = 1;
				break;
			}
		}
		printf("k%u %llu %llu\n", k, (unsigned long long)counts[k][0],
		       (unsigned long long)counts[k][n[k] - 1]);
	}
	for (unsigned k = 0; k < nkeys; k++)
		free(counts[k]);
	free(counts);
	free(n);
	return bad;
}

static int load(void)
{
	struct client *cl = calloc(nclients, sizeof(*cl));
	int64_t t0 = shmq_now_ns(), dt;
	int bad = !cl;

	for (unsigned i = 0; !bad && i < nclients; i++) {
		cl[i].id = i;
		if (shmq_thread_start(client_run, &cl[i], &cl[i].t)) {
			fprintf(stderr, "client: cannot start client %u\n", i);
			bad = 1;
		}
	}
	for (unsigned i = 0; cl && i < nclients; i++) {
		if (!cl[i].t)
			continue;
		if (shmq_thread_join(cl[i].t, SHMQ_FOREVER, NULL)) { /* each socket wait is bounded */
			bad = 1;
			continue;
		}
		shmq_thread_close(cl[i].t);
		bad |= cl[i].failed;
	}
	dt = shmq_now_ns() - t0;
	if (!bad) {
		fprintf(stderr, "client: %lu requests over %u connections (depth %u) in %.3f s: %.0f req/s\n",
			nreq, nclients, depth, (double)dt / 1e9, (double)nreq * 1e9 / (double)dt);
		bad = check(cl);
	}
	for (unsigned i = 0; cl && i < nclients; i++)
		free(cl[i].rec);
	free(cl);
	return bad;
}

/* One request on a fresh connection: the reply's count, or -1. */
static long long once(const char *cmd, const char *key, bool expect_eof)
{
	struct rd *r = malloc(sizeof(*r));
	char req[128], line[128];
	long long v = -1;
	ssize_t n;

	if (!r || (r->fd = dial()) < 0) {
		fprintf(stderr, "client: connect: %s\n", strerror(errno));
		free(r);
		return -1;
	}
	r->len = r->off = 0;
	snprintf(req, sizeof(req), "%s %s\n", cmd, key);
	n = send_all(r->fd, req, strlen(req)) ? -1 : read_line(r, line, sizeof(line));
	if (expect_eof) {
		/* The worker died: end of stream, or a reset. */
		v = n > 0 ? -1 : 0;
		if (n > 0)
			fprintf(stderr, "client: %s %s answered \"%s\" (server without -x?)\n", cmd, key, line);
	} else if (n > 0) {
		v = parse_reply(line, key);
		if (v < 0)
			fprintf(stderr, "client: %s %s: bad reply \"%s\"\n", cmd, key, line);
	} else {
		v = -2; /* no reply at all: the connection was lost before it was served */
	}
	close(r->fd);
	free(r);
	return v;
}

static int crash(const char *key)
{
	long long before = once("GET", key, false), after = -2;
	int64_t end = shmq_now_ns() + (int64_t)timeout_s * 1000000000;

	if (before < 0 || once("CRASH", key, true) < 0)
		return 1;
	/* A connection queued on the dead worker's socket is reset unserved:
	 * only then is it safe to ask again. */
	while (after == -2 && shmq_now_ns() < end)
		after = once("INCR", key, false);
	if (after != before + 1) {
		fprintf(stderr, "client: %s was %lld before the crash, INCR answered %lld\n", key, before,
			after);
		return 1;
	}
	printf("%s %lld\n", key, after);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: client [-c CLIENTS] [-n REQUESTS] [-k KEYS] [-d DEPTH] [-t SECONDS] HOST PORT\n"
			"       client -C KEY [-t SECONDS] HOST PORT\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *crash_key = NULL;
	int opt;
	long v;

	while ((opt = getopt(argc, argv, "c:n:k:d:t:C:")) != -1) {
		if (opt == 'C') {
			crash_key = optarg;
			continue;
		}
		v = atol(optarg);
		if (v < 1)
			usage();
		if (opt == 'c' && v <= 1024)
			nclients = (unsigned)v;
		else if (opt == 'n')
			nreq = (unsigned long)v;
		else if (opt == 'k' && v <= 1000000)
			nkeys = (unsigned)v;
		else if (opt == 'd' && v <= 64)
			depth = (unsigned)v;
		else if (opt == 't' && v <= 3600)
			timeout_s = (int)v;
		else
			usage();
	}
	if (argc - optind != 2)
		usage();
	addr.sin_family = AF_INET;
	v = atol(argv[optind + 1]);
	if (inet_pton(AF_INET, argv[optind], &addr.sin_addr) != 1 || v < 1 || v > 65535)
		usage();
	addr.sin_port = htons((uint16_t)v);
	return crash_key ? crash(crash_key) : load();
}
