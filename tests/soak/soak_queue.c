/* SPDX-License-Identifier: MIT */
/*
 * Soak: MESSAGES (default 10^8) messages through one queue, 4 producer and
 * 4 consumer processes, with bulk puts and gets.  Each message carries its
 * producer, sequence number and a checksum of both; consumers check every
 * checksum and each producer's order, and sum what they received.  At the
 * end the counts and the order-independent sums must equal what was sent.
 * Resident sets of all nine processes are sampled at 5%, 50% and 95% of the
 * traffic; none may grow by more than SOAK_RSS_SLACK_KIB.  Prints throughput.
 *
 * usage: soak_queue [MESSAGES]
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmq.h>

#include "soak.h"

#define PRODUCERS 4
#define CONSUMERS 4
#define BULK      32

struct soak_msg {
	uint32_t producer;
	uint32_t check;
	uint64_t seq;
};

struct soak_state {
	uint64_t sent_sum[PRODUCERS];
	uint64_t recv_sum[CONSUMERS];
	uint64_t recv_count[CONSUMERS];
	uint64_t progress;   /* messages received so far, all consumers */
	uint32_t errors;
};

static uint32_t msg_check(uint32_t producer, uint64_t seq)
{
	uint64_t x = (seq + 1) * 0x9e3779b97f4a7c15ull ^ producer;

	x ^= x >> 29;
	return (uint32_t)(x * 0xbf58476d1ce4e5b9ull >> 32);
}

static uint64_t msg_hash(uint32_t producer, uint64_t seq)
{
	return ((uint64_t)msg_check(producer, seq) << 32 | producer) ^ (seq * 0x94d049bb133111ebull);
}

static int producer(shmq_queue *q, struct soak_state *s, unsigned p, uint64_t n)
{
	struct soak_msg m[BULK];
	struct iovec v[BULK];
	uint64_t seq = 0, sum = 0;

	while (seq < n) {
		size_t k = n - seq < BULK ? (size_t)(n - seq) : BULK;
		ssize_t put;

		for (size_t i = 0; i < k; i++) {
			m[i] = (struct soak_msg){ p, msg_check(p, seq + i), seq + i };
			v[i] = (struct iovec){ &m[i], sizeof(m[i]) };
		}
		put = shmq_queue_put_bulk(q, v, k, SHMQ_FOREVER);
		if (put <= 0)
			return 1;
		for (ssize_t i = 0; i < put; i++)
			sum += msg_hash(p, seq + (uint64_t)i);
		seq += (uint64_t)put;
	}
	s->sent_sum[p] = sum;
	return 0;
}

static int consumer(shmq_queue *q, struct soak_state *s, unsigned c)
{
	struct soak_msg m[BULK];
	struct iovec v[BULK];
	size_t lens[BULK];
	uint64_t next[PRODUCERS] = { 0 }, sum = 0, count = 0;

	for (size_t i = 0; i < BULK; i++)
		v[i] = (struct iovec){ &m[i], sizeof(m[i]) };
	for (;;) {
		ssize_t got = shmq_queue_get_bulk(q, v, lens, BULK, SHMQ_FOREVER);

		if (got == -EPIPE)
			break;
		if (got <= 0)
			return 1;
		for (ssize_t i = 0; i < got; i++) {
			if (lens[i] != sizeof(m[i]) || m[i].producer >= PRODUCERS ||
			    m[i].check != msg_check(m[i].producer, m[i].seq) ||
			    m[i].seq < next[m[i].producer])
				return 2;
			next[m[i].producer] = m[i].seq + 1;
			sum += msg_hash(m[i].producer, m[i].seq);
		}
		count += (uint64_t)got;
		__atomic_add_fetch(&s->progress, (uint64_t)got, __ATOMIC_RELAXED);
	}
	s->recv_sum[c] = sum;
	s->recv_count[c] = count;
	return 0;
}

static int child(const char *name, unsigned idx, uint64_t per_producer)
{
	shmq_region *r;
	shmq_queue *q;
	void *mem;
	size_t size;
	int rc;

	if (shmq_region_open(name, &r) || shmq_queue_open(r, "q", &q) ||
	    shmq_region_find(r, "state", &mem, &size))
		return 90;
	rc = idx < PRODUCERS ? producer(q, mem, idx, per_producer)
			     : consumer(q, mem, idx - PRODUCERS);
	shmq_queue_close(q);
	shmq_region_close(r);
	return rc;
}

struct rss_row {
	long v[PRODUCERS + CONSUMERS + 1];
};

static void sample(const pid_t *pid, struct rss_row *row)
{
	row->v[0] = soak_rss_kib(0);
	for (unsigned i = 0; i < PRODUCERS + CONSUMERS; i++)
		row->v[i + 1] = soak_rss_kib(pid[i]);
}

static void print_row(const char *when, const struct rss_row *row)
{
	printf("soak queue: rss %-6s parent %ld KiB, producers", when, row->v[0]);
	for (unsigned i = 0; i < PRODUCERS + CONSUMERS; i++)
		printf(i == PRODUCERS ? ", consumers %ld" : " %ld", row->v[i + 1]);
	printf(" KiB\n");
}

static int grew(const struct rss_row *a, const struct rss_row *b)
{
	for (unsigned i = 0; i < PRODUCERS + CONSUMERS + 1; i++)
		if (a->v[i] >= 0 && b->v[i] >= 0 && b->v[i] - a->v[i] > SOAK_RSS_SLACK_KIB)
			return 1;
	return 0;
}

/* Sample when progress passes pct% of total (or everything ended). */
static bool child_ended(void)
{
	siginfo_t si = { 0 };

	return waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || si.si_pid != 0;
}

static void sample_at(struct soak_state *s, uint64_t total, unsigned pct, const pid_t *pid,
		      struct rss_row *row)
{
	while (__atomic_load_n(&s->progress, __ATOMIC_RELAXED) < total / 100 * pct &&
	       !child_ended())
		usleep(20000);
	sample(pid, row);
}

int main(int argc, char **argv)
{
	uint64_t total = argc > 1 ? strtoull(argv[1], NULL, 0) : 100000000ull;
	uint64_t per = total / PRODUCERS, sent = 0, recv = 0, count = 0;
	struct shmq_queue_opts qo = { .capacity = 4096, .max_msg = sizeof(struct soak_msg) };
	struct rss_row r0, r1, r2;
	struct soak_state *s;
	pid_t pid[PRODUCERS + CONSUMERS];
	char name[64];
	shmq_region *r;
	shmq_queue *q;
	double t0, t1;
	int bad = 0;
	void *mem;

	snprintf(name, sizeof(name), "/shmq-soak-queue-%d", (int)getpid());
	if (shmq_region_create(name, &(struct shmq_region_opts){ .size = (size_t)8 << 20 }, &r) ||
	    shmq_queue_create(r, "q", &qo, &q) ||
	    shmq_region_alloc(r, "state", sizeof(*s), &mem)) {
		fprintf(stderr, "soak queue: setup failed\n");
		return 99;
	}
	s = mem;
	t0 = soak_now();
	for (unsigned i = 0; i < PRODUCERS + CONSUMERS; i++) {
		pid[i] = fork();
		if (pid[i] == 0)
			_exit(child(name, i, per));
	}
	sample_at(s, per * PRODUCERS, 5, pid, &r0);
	sample_at(s, per * PRODUCERS, 50, pid, &r1);
	sample_at(s, per * PRODUCERS, 95, pid, &r2);
	for (unsigned i = 0; i < PRODUCERS; i++) {
		int st;

		waitpid(pid[i], &st, 0);
		bad |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	}
	shmq_queue_shutdown(q);
	for (unsigned i = PRODUCERS; i < PRODUCERS + CONSUMERS; i++) {
		int st;

		waitpid(pid[i], &st, 0);
		bad |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	}
	t1 = soak_now();
	for (unsigned i = 0; i < PRODUCERS; i++)
		sent += s->sent_sum[i];
	for (unsigned i = 0; i < CONSUMERS; i++) {
		recv += s->recv_sum[i];
		count += s->recv_count[i];
	}
	printf("soak queue: %llu messages of %zu bytes, %d producers + %d consumers (bulk %d), "
	       "%.1f s, %.2f M msg/s\n",
	       (unsigned long long)count, sizeof(struct soak_msg), PRODUCERS, CONSUMERS, BULK,
	       t1 - t0, (double)count / (t1 - t0) / 1e6);
	print_row("5%", &r0);
	print_row("50%", &r1);
	print_row("95%", &r2);
	if (bad)
		fprintf(stderr, "soak queue: a participant failed\n");
	if (count != per * PRODUCERS || sent != recv) {
		fprintf(stderr, "soak queue: received %llu of %llu, checksum %s\n",
			(unsigned long long)count, (unsigned long long)(per * PRODUCERS),
			sent == recv ? "equal" : "DIFFERENT");
		bad = 1;
	}
	if (grew(&r0, &r1) || grew(&r0, &r2)) {
		fprintf(stderr, "soak queue: resident set grew by more than %ld KiB\n",
			SOAK_RSS_SLACK_KIB);
		bad = 1;
	}
	shmq_queue_close(q);
	shmq_region_close(r);
	shmq_region_unlink(name);
	printf("soak queue: %s\n", bad ? "FAILED" : "passed (counts and checksums equal)");
	return bad;
}
