/* SPDX-License-Identifier: MIT */
/*
 * shmq-bench pipe: shmq_pipe between two processes pinned to two cores,
 * beside pipe(2), AF_UNIX SOCK_SEQPACKET, POSIX mq and ConcurrencyKit's
 * ck_ring SPSC (when built with it), on the same work.
 *
 *  - throughput, 8 / 64 / 1024 / 4096-byte messages, 64 KiB per direction
 *    for every transport:
 *      busy:     shmq_pipe_send / recv with SHMQ_NOWAIT in a polling loop,
 *                one message per call, beside ck_ring_enqueue/dequeue_spsc
 *                of a struct of that size (also one message per call);
 *      bulk:     shmq_pipe_send_bulk / recv_bulk, 32 messages per call,
 *                and for 64 B also beside a minimal batched ring's (K_MIN_BULK
 *                below: the bound for rings of plain stores);
 *      blocking: shmq_pipe_send / recv with SHMQ_FOREVER (poll, then sleep),
 *                beside write/read on pipe(2), send/recv on a SOCK_SEQPACKET
 *                socketpair, mq_send/mq_receive (10 messages deep, the
 *                system's default limit).
 *    Every receiver checks each message's sequence number.
 *  - one process: ns per send + recv pair, 64 B, SHMQ_NOWAIT, batches of
 *    32 sends then 32 receives, beside ck_ring SPSC's enqueue + dequeue the
 *    same way (64 KiB of ring each), 8 alternated rounds of each: the cost
 *    to one core with no line crossing to another.
 *  - 4096-byte messages in place: shmq_pipe_reserve / commit (one copy in)
 *    and shmq_pipe_peek / consume (the receiver reads the message where it
 *    lies, xor-folding every word), in GB/s, beside ck_ring and pipe(2)
 *    doing the same work through their copies.
 *  - round trip, 64-byte messages, side 0 sends and waits for the echo:
 *      awake:  both sides poll (SHMQ_NOWAIT), beside the raw cache-line
 *              round trip measured here the same way, ck_ring's, and a
 *              minimal ring's (K_MIN below: the bound for any ring);
 *      asleep: shmq_pipe_set_spin(p, 0), the receiver is always asleep on
 *              the futex when the message comes, beside pipe(2), seqpacket
 *              and mq (which always sleep);
 *      blocking: the default poll-then-sleep policy.
 *    The headline is the median of batch means (no clock read inside a
 *    batch); the latency lines time each round trip (one clock read each).
 *  - ring-size sweep, 64-byte and 56-byte messages (see pb_sweep), busy
 *    polling (SHMQ_NOWAIT) and blocking calls, at rings of 64 .. 65536
 *    messages: shmq_pipe with the smallest capacity that holds that many
 *    records (72 and 64 bytes) beside ck_ring SPSC with that many entries of
 *    the message's size (its best configuration: typed copy, no wait); each
 *    point is measured three times alternating shmq and
 *    ck, the ratio is the median of the three pairs and the spread their
 *    range; the mean ring occupancy (sampled by the consumer) is reported.
 *  - wakes per 1000 messages (the pipe's own counters, as `shmq stat` shows
 *    them): blocking calls streaming, and a bursty producer (1000 sends,
 *    100 us pause) whose consumer sleeps between bursts.
 *
 *  `-- rt` runs only the round trips, `-- tput` only the throughputs per size
 *  (one message per call, bulk, blocking), `-- cpu` only the one-process
 *  pair, `-- sweep` only the ring-size sweep (`-- sweep 256 1024`: those
 *  sizes), `-- pacing` only the receiver's pacing (see pb_pacing; in no
 *  default run).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <mqueue.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_CK
#include <ck_ring.h>
#endif

#include <shmq.h>
#include <shmq/introspect.h>

#include "core/atomic_int.h"
#include "core/compiler_int.h"

#include "bench.h"

#define PB_CAP     ((size_t)64 << 10) /* bytes per direction, every transport */
#define PB_MAXMSG  4096u
#define PB_BULK    32u
#define PB_RT_SIZE 64u
#define PB_BATCHES_MAX 400u
#define PB_DEADLINE_NS 120000000000LL /* a loaded box, not a hang */
#define PB_OCC_EVERY   65536u /* messages between two occupancy samples (a shmq sample
			       * walks the region directory: keep its cost < 1 %) */
#define PB_BURST       1000u /* bursty producer: messages per burst ... */
#define PB_BURST_PAUSE_NS 100000L /* ... and the pause between bursts */

enum pb_kind {
	K_SHMQ_BUSY, K_SHMQ_BULK, K_SHMQ_BLOCK, K_SHMQ_SLEEP, K_SHMQ_ZC,
	K_SHMQ_BURST,
	K_PIPE2, K_SEQPACKET, K_MQ, K_CK, K_CK_ZC, K_PIPE2_ZC, K_RAW, K_MIN,
	K_MIN_BULK,
};

/*
 * The minimal ring (K_MIN, round trips only): per direction PB_CAP bytes of
 * 128-byte slots, each a 64-byte payload line and a line holding the
 * message's sequence number, which the receiver polls.  No index, no
 * header, no wake-up, no check: with one message in flight a slot is
 * reused only after its message was answered.  Every ring that moves a
 * 64-byte message moves at least these two lines per direction through as
 * many distinct lines as the pipe cycles through, so its round trip is a
 * lower bound for any ring's at this ring size, the pipe's and ck_ring's
 * included; the bench reports it beside the cache-line round trip, which
 * reuses one line and no ring can reach.
 */
#define PB_MIN_SLOT  128u
#define PB_MIN_SLOTS (PB_CAP / PB_MIN_SLOT)

/*
 * The minimal batched ring (K_MIN_BULK, throughput of 64-byte messages
 * only): PB_CAP bytes of bare messages back to back, one line each, copied
 * with a copy of constant size, a tail index the sender stores once per batch of PB_BULK and a
 * head index the receiver stores once per batch it takes; nothing else: no
 * length, no wrap, no wake-up, no check of the indices.  The sender copies
 * each message in as the bulk send does; the receiver copies each out and
 * checks its sequence number, as tput_rx_bulk does.  Any ring that moves
 * the messages through PB_CAP bytes of shared memory moves at least these
 * lines, so its rate bounds the bulk calls' at this ring size (where the
 * machine takes plain stores; see tools/PERFORMANCE.md, "Bulk calls", for
 * what non-temporal stores do at each of the VM's placements).
 */
#define PB_MB_SIZE  64u
#define PB_MB_SLOTS (PB_CAP / PB_MB_SIZE)

/* The shmq_pipe kinds (made with shmq_pipe_create). */
static bool pb_is_shmq(int k)
{
	return k <= K_SHMQ_ZC || k == K_SHMQ_BURST;
}

struct pb_m8 { uint64_t w[1]; };
struct pb_m56 { uint64_t w[7]; };
struct pb_m64 { uint64_t w[8]; };
struct pb_m1024 { uint64_t w[128]; };
struct pb_m4096 { uint64_t w[512]; };

#ifdef HAVE_CK
CK_RING_PROTOTYPE(m8, pb_m8)
CK_RING_PROTOTYPE(m56, pb_m56)
CK_RING_PROTOTYPE(m64, pb_m64)
CK_RING_PROTOTYPE(m1024, pb_m1024)
CK_RING_PROTOTYPE(m4096, pb_m4096)
#endif

/* Everything both processes see (MAP_SHARED, made before the fork). */
struct pb {
	/* the work, set by side 0's process before the fork */
	int kind;
	uint32_t size;
	uint64_t n;          /* messages (throughput) */
	bool rt;             /* round trip instead of throughput */
	size_t cap;          /* shmq_pipe capacity, bytes per direction */
	size_t ck_n;         /* ck_ring entries (0: PB_CAP / size) */
	uint64_t warmup, batches, batch, timed;
	char region[64];
	char pname[32];
	shmq_pipe *h0;       /* side 0's handle (valid in side 0's process only) */
	int fd[2][2];        /* pipe(2): [dir][read, write]; seqpacket: fd[0] */
	mqd_t mq[2];         /* dir 0: side 0 -> 1, dir 1: back */
	void *ckbuf[2];
	uint8_t *minbuf[2];  /* K_MIN: dir 0 side 0 -> 1, dir 1 back */
	int pinned;
	uint32_t pace;       /* busy and ck_ring receivers: pauses per empty poll (0: one) */
	/* synchronisation */
	uint32_t ready SHMQ__ALIGNED(SHMQ__CACHELINE);
	uint64_t word SHMQ__ALIGNED(SHMQ__CACHELINE); /* the raw ping-pong line */
	uint64_t mb_tail SHMQ__ALIGNED(SHMQ__CACHELINE); /* K_MIN_BULK: messages sent */
	uint64_t mb_head SHMQ__ALIGNED(SHMQ__CACHELINE); /* K_MIN_BULK: messages taken */
#ifdef HAVE_CK
	struct ck_ring ckr[2] SHMQ__ALIGNED(SHMQ__CACHELINE);
#endif
	/* results */
	int64_t t0 SHMQ__ALIGNED(SHMQ__CACHELINE);
	int64_t t1;
	uint64_t sink;
	uint64_t occ_sum, occ_n; /* ring occupancy samples (messages) */
	uint64_t waits, wakes;   /* the pipe's futex counters after the run */
	double batch_ns[PB_BATCHES_MAX];
	struct bench_hist hist[2] SHMQ__ALIGNED(SHMQ__CACHELINE);
};

/* ---------------------------------------------------------------- helpers */

static uint64_t fold(const void *p, size_t n)
{
	const uint64_t *w = p;
	uint64_t x = 0;

	for (size_t i = 0; i < n / 8; i++)
		x ^= w[i];
	return x;
}

static int wait_ready(struct pb *pb)
{
	int64_t deadline = bench_now_ns() + PB_DEADLINE_NS;

	/* pairs with side 1's store_release of ready in pb_side */
	while (!shmq__load_acquire(&pb->ready)) {
		sched_yield();
		if (bench_now_ns() > deadline)
			return -ETIMEDOUT;
	}
	return 0;
}

/* Poll politely: pause (pauses times, at least once), and yield now and
 * then (unpinned or oversubscribed). */
static inline void relax_paced(uint32_t *spins, bool pinned, uint32_t pauses)
{
	if (!pinned || ++*spins % 256 == 0) {
		sched_yield();
		return;
	}
	do
		shmq__cpu_relax();
	while (pauses-- > 1);
}

static inline void relax(uint32_t *spins, bool pinned)
{
	relax_paced(spins, pinned, 1);
}

/* Bytes a record of a size-byte message takes in shmq_pipe's data area
 * (padded to 8, at least 16; its length is in a descriptor apart): how the
 * sweep turns ring bytes into messages. */
#define SHMQ_ALIGN_REC(size) ((uint64_t)(size) <= 16u ? (uint64_t)16 : \
			      ((uint64_t)(size) + 7u) & ~(uint64_t)7u)

struct pb_stat_arg {
	const char *name, *key;
	uint64_t *out;
	bool found;
};

static int pb_stat_one(const char *name, const struct shmq__obj_stat *st, void *arg)
{
	struct pb_stat_arg *a = arg;
	const struct shmq__stat_kv *kv;

	if (strcmp(name, a->name))
		return 0;
	kv = shmq__stat_get(st, a->key);
	if (kv && kv->kind == SHMQ__STAT_U64) {
		*a->out = kv->u;
		a->found = true;
	}
	return 1;
}

/* The pipe's fact `key` as `shmq stat` shows it: 0 or a negative errno. */
static int pb_pipe_stat(shmq_region *obs, const char *pname, const char *key, uint64_t *out)
{
	struct pb_stat_arg a = { pname, key, out, false };

	shmq__introspect_objects(obs, true, pb_stat_one, &a);
	return a.found ? 0 : -ENOENT;
}

/* ---------------------------------------------------------------- endpoints */

struct ep {
	struct pb *pb;
	int side;
	shmq_region *r;
	shmq_pipe *p;
	int wfd, rfd;
	mqd_t wmq, rmq;
	uint64_t min_tx, min_rx; /* K_MIN: messages sent, received */
#ifdef HAVE_CK
	struct ck_ring *ckw, *ckr;
	void *ckwb, *ckrb;
#endif
};

static int ep_open(struct ep *e, struct pb *pb, int side)
{
	int k = pb->kind;

	memset(e, 0, sizeof(*e));
	e->pb = pb;
	e->side = side;
	if (pb_is_shmq(k)) {
		int rc;

		if (side == 0) {
			e->p = pb->h0;
		} else {
			rc = shmq_region_open(pb->region, &e->r);
			if (!rc)
				rc = shmq_pipe_open(e->r, pb->pname, 1, &e->p);
			if (rc)
				return rc;
		}
		if (k == K_SHMQ_SLEEP)
			shmq_pipe_set_spin(e->p, 0);
		else
			shmq_pipe_set_spin(e->p, -1);
	} else if (k == K_PIPE2 || k == K_PIPE2_ZC) {
		e->wfd = pb->fd[side][1];
		e->rfd = pb->fd[1 - side][0];
	} else if (k == K_SEQPACKET) {
		e->wfd = e->rfd = pb->fd[0][side];
	} else if (k == K_MQ) {
		e->wmq = pb->mq[side];
		e->rmq = pb->mq[1 - side];
	}
#ifdef HAVE_CK
	e->ckw = &pb->ckr[side];
	e->ckr = &pb->ckr[1 - side];
	e->ckwb = pb->ckbuf[side];
	e->ckrb = pb->ckbuf[1 - side];
#endif
	return 0;
}

static void ep_close(struct ep *e)
{
	if (e->side == 1 && e->p)
		shmq_pipe_close(e->p);
	if (e->r)
		shmq_region_close(e->r);
}

static int full_write(int fd, const void *buf, size_t n)
{
	for (size_t done = 0; done < n;) {
		ssize_t w = write(fd, (const char *)buf + done, n - done);

		if (w < 0 && errno != EINTR)
			return -errno;
		if (w > 0)
			done += (size_t)w;
	}
	return 0;
}

static int full_read(int fd, void *buf, size_t n)
{
	for (size_t done = 0; done < n;) {
		ssize_t r = read(fd, (char *)buf + done, n - done);

		if (r == 0)
			return -EPIPE;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r > 0)
			done += (size_t)r;
	}
	return 0;
}

#ifdef HAVE_CK
/* One message through ck_ring, typed by size; busy-polls. */
static inline void ck_put(struct ep *e, const void *m, uint32_t size)
{
	uint32_t spins = 0;
	bool ok;

	for (;;) {
		switch (size) {
		case 8: ok = ck_ring_enqueue_spsc_m8(e->ckw, e->ckwb, (struct pb_m8 *)m); break;
		case 56: ok = ck_ring_enqueue_spsc_m56(e->ckw, e->ckwb, (struct pb_m56 *)m); break;
		case 64: ok = ck_ring_enqueue_spsc_m64(e->ckw, e->ckwb, (struct pb_m64 *)m); break;
		case 1024: ok = ck_ring_enqueue_spsc_m1024(e->ckw, e->ckwb, (struct pb_m1024 *)m); break;
		default: ok = ck_ring_enqueue_spsc_m4096(e->ckw, e->ckwb, (struct pb_m4096 *)m); break;
		}
		if (ok)
			return;
		relax_paced(&spins, e->pb->pinned, e->pb->pace);
	}
}

static inline void ck_get(struct ep *e, void *m, uint32_t size)
{
	uint32_t spins = 0;
	bool ok;

	for (;;) {
		switch (size) {
		case 8: ok = ck_ring_dequeue_spsc_m8(e->ckr, e->ckrb, m); break;
		case 56: ok = ck_ring_dequeue_spsc_m56(e->ckr, e->ckrb, m); break;
		case 64: ok = ck_ring_dequeue_spsc_m64(e->ckr, e->ckrb, m); break;
		case 1024: ok = ck_ring_dequeue_spsc_m1024(e->ckr, e->ckrb, m); break;
		default: ok = ck_ring_dequeue_spsc_m4096(e->ckr, e->ckrb, m); break;
		}
		if (ok)
			return;
		relax(&spins, e->pb->pinned);
	}
}
#endif

/* The minimal ring's slot for message number i in direction dir. */
static inline uint8_t *min_slot(const struct ep *e, int dir, uint64_t i)
{
	return e->pb->minbuf[dir] + (i % PB_MIN_SLOTS) * PB_MIN_SLOT;
}

static inline void min_send(struct ep *e, const void *m)
{
	uint8_t *s = min_slot(e, e->side, e->min_tx++);

	memcpy(s, m, PB_RT_SIZE);
	/* pairs with min_recv's load_acquire: the payload is written */
	shmq__store_release((uint64_t *)(s + SHMQ__CACHELINE), e->min_tx);
}

static inline void min_recv(struct ep *e, void *m)
{
	uint8_t *s = min_slot(e, 1 - e->side, e->min_rx++);
	uint32_t spins = 0;

	/* pairs with min_send's store_release of the sequence number */
	while (shmq__load_acquire((const uint64_t *)(s + SHMQ__CACHELINE)) != e->min_rx)
		relax(&spins, e->pb->pinned);
	memcpy(m, s, PB_RT_SIZE);
}

/* Send one message of pb->size bytes: 0 or a negative errno. */
static inline int ep_send(struct ep *e, const void *m)
{
	uint32_t size = e->pb->size, spins = 0;
	int rc;

	switch (e->pb->kind) {
	case K_SHMQ_BUSY:
		while ((rc = shmq_pipe_send(e->p, m, size, SHMQ_NOWAIT)) == -EAGAIN)
			relax(&spins, e->pb->pinned);
		return rc;
	case K_SHMQ_BLOCK:
	case K_SHMQ_SLEEP:
	case K_SHMQ_BURST:
		return shmq_pipe_send(e->p, m, size, SHMQ_FOREVER);
	case K_PIPE2:
		return full_write(e->wfd, m, size);
	case K_SEQPACKET:
		return send(e->wfd, m, size, 0) == (ssize_t)size ? 0 : -errno;
	case K_MQ:
		return mq_send(e->wmq, m, size, 0) ? -errno : 0;
	case K_MIN:
		min_send(e, m);
		return 0;
#ifdef HAVE_CK
	case K_CK:
		ck_put(e, m, size);
		return 0;
#endif
	default:
		return -EINVAL;
	}
}

/* Receive one message into m (PB_MAXMSG bytes): 0 or a negative errno. */
static inline int ep_recv(struct ep *e, void *m)
{
	uint32_t size = e->pb->size, spins = 0;
	ssize_t n;

	switch (e->pb->kind) {
	case K_SHMQ_BUSY:
		while ((n = shmq_pipe_recv(e->p, m, PB_MAXMSG, SHMQ_NOWAIT)) == -EAGAIN)
			relax_paced(&spins, e->pb->pinned, e->pb->pace);
		break;
	case K_SHMQ_BLOCK:
	case K_SHMQ_SLEEP:
	case K_SHMQ_BURST:
		n = shmq_pipe_recv(e->p, m, PB_MAXMSG, SHMQ_FOREVER);
		break;
	case K_PIPE2:
		return full_read(e->rfd, m, size);
	case K_SEQPACKET:
		n = recv(e->rfd, m, PB_MAXMSG, 0);
		if (n < 0)
			return -errno;
		break;
	case K_MQ:
		n = mq_receive(e->rmq, m, size, NULL);
		if (n < 0)
			return -errno;
		break;
	case K_MIN:
		min_recv(e, m);
		return 0;
#ifdef HAVE_CK
	case K_CK:
		ck_get(e, m, size);
		return 0;
#endif
	default:
		return -EINVAL;
	}
	if (n < 0)
		return (int)n;
	return n == (ssize_t)size ? 0 : -EPROTO;
}

/* ---------------------------------------------------------------- throughput */

/* A bulk send's messages sit back to back, each starting a cache line, as
 * an array of them would (bulk_stride): 2 x PB_BULK of them, one batch sent
 * while the next is stamped.  They used to sit PB_MAXMSG (4096) bytes
 * apart: 64 addresses 4 KiB apart all fall into one set of the 8-way L1
 * cache, so the stamps and the send's copies evicted one another, and the
 * bench measured that (32 x 64 B: 91 against 170-189 M msg/s, same build,
 * at a cache-line round trip of 131 ns).
 *
 * The sequence numbers of a batch are written one batch ahead, into the
 * other half: written right before the send, the copy in the send would load
 * each 8-byte store back while it still sits in the store buffer inside a
 * wider load, which store forwarding cannot serve (a stall per message that
 * measures the bench, not the pipe). */
static size_t bulk_stride(uint32_t size)
{
	return SHMQ__ALIGN_UP((size_t)size, (size_t)SHMQ__CACHELINE);
}

static void bulk_stamp(struct pb *pb, uint8_t *m, uint64_t first)
{
	size_t stride = bulk_stride(pb->size);

	for (size_t j = 0; j < PB_BULK && first + j < pb->n; j++)
		memcpy(m + j * stride, &(uint64_t){ first + j }, 8);
}

/* m: 2 * PB_BULK * bulk_stride(pb->size) bytes */
static int tput_tx_bulk(struct ep *e, uint8_t *m)
{
	struct pb *pb = e->pb;
	size_t stride = bulk_stride(pb->size);
	struct iovec v[2][PB_BULK];
	uint32_t spins = 0;
	unsigned half = 0;

	for (size_t h = 0; h < 2; h++)
		for (size_t j = 0; j < PB_BULK; j++) {
			v[h][j].iov_base = m + (h * PB_BULK + j) * stride;
			v[h][j].iov_len = pb->size;
		}
	bulk_stamp(pb, m, 0);
	for (uint64_t i = 0; i < pb->n;) {
		size_t k = pb->n - i < PB_BULK ? (size_t)(pb->n - i) : PB_BULK;
		size_t done = 0;

		bulk_stamp(pb, m + (1 - half) * PB_BULK * stride, i + k);
		while (done < k) {
			ssize_t s = shmq_pipe_send_bulk(e->p, v[half] + done, k - done, SHMQ_NOWAIT);

			if (s == -EAGAIN)
				relax(&spins, pb->pinned);
			else if (s < 0)
				return (int)s;
			else
				done += (size_t)s;
		}
		i += k;
		half = 1 - half;
	}
	return 0;
}

static int tput_rx_bulk(struct ep *e, uint8_t *buf)
{
	struct pb *pb = e->pb;
	size_t lens[PB_BULK];
	uint32_t spins = 0;

	for (uint64_t i = 0; i < pb->n;) {
		ssize_t k = shmq_pipe_recv_bulk(e->p, buf, PB_BULK * PB_MAXMSG, lens, PB_BULK,
						SHMQ_NOWAIT);
		size_t off = 0;

		if (k == -EAGAIN) {
			relax(&spins, pb->pinned);
			continue;
		}
		if (k < 0)
			return (int)k;
		for (ssize_t j = 0; j < k; j++, i++) {
			uint64_t seq;

			memcpy(&seq, buf + off, 8);
			if (lens[j] != pb->size || seq != i)
				return -EPROTO;
			off += lens[j];
		}
	}
	return 0;
}

/* 4096-byte messages written and read in place. */
static int tput_tx_zc(struct ep *e, const uint8_t *src)
{
	struct pb *pb = e->pb;

	for (uint64_t i = 0; i < pb->n; i++) {
		void *slot;
		int rc = shmq_pipe_reserve(e->p, pb->size, &slot, SHMQ_FOREVER);

		if (rc)
			return rc;
		memcpy(slot, src, pb->size);
		memcpy(slot, &i, 8);
		rc = shmq_pipe_commit(e->p, pb->size, 0);
		if (rc)
			return rc;
	}
	return 0;
}

static int tput_rx_zc(struct ep *e)
{
	struct pb *pb = e->pb;
	uint64_t sink = 0;

	for (uint64_t i = 0; i < pb->n; i++) {
		const void *m;
		size_t len;
		uint64_t seq;
		int rc = shmq_pipe_peek(e->p, &m, &len, SHMQ_FOREVER);

		if (rc)
			return rc;
		memcpy(&seq, m, 8);
		if (len != pb->size || seq != i)
			return -EPROTO;
		sink += fold(m, len);
		shmq_pipe_consume(e->p);
	}
	pb->sink = sink;
	return 0;
}

/* The copying transports on the in-place work: copy out, then fold. */
static int tput_rx_fold(struct ep *e, uint8_t *buf)
{
	struct pb *pb = e->pb;
	uint64_t sink = 0;

	for (uint64_t i = 0; i < pb->n; i++) {
		uint64_t seq;
		int rc;

#ifdef HAVE_CK
		if (pb->kind == K_CK_ZC) {
			ck_get(e, buf, pb->size);
			rc = 0;
		} else
#endif
			rc = full_read(e->rfd, buf, pb->size);
		if (rc)
			return rc;
		memcpy(&seq, buf, 8);
		if (seq != i)
			return -EPROTO;
		sink += fold(buf, pb->size);
	}
	pb->sink = sink;
	return 0;
}

static int tput_tx_copy(struct ep *e, uint8_t *src)
{
	struct pb *pb = e->pb;

	for (uint64_t i = 0; i < pb->n; i++) {
		int rc;

		memcpy(src, &i, 8);
#ifdef HAVE_CK
		if (pb->kind == K_CK_ZC) {
			ck_put(e, src, pb->size);
			continue;
		}
#endif
		rc = full_write(e->wfd, src, pb->size);
		if (rc)
			return rc;
	}
	return 0;
}

/* Messages in the ring now, as the consumer sees them (a sample). */
static uint64_t ep_occupancy(struct ep *e, shmq_region *obs)
{
#ifdef HAVE_CK
	if (e->pb->kind == K_CK)
		return ck_ring_size(e->ckr);
#endif
	if (obs && pb_is_shmq(e->pb->kind)) {
		uint64_t depth = 0;

		if (pb_pipe_stat(obs, e->pb->pname, "depth_0to1", &depth) == 0)
			return depth / SHMQ_ALIGN_REC(e->pb->size);
	}
	return 0;
}

/* One message per call: the messages rotate through tx_slots(size) slots
 * back to back (bulk_stride apart), each stamped with its sequence number
 * half a rotation before it is sent.  Stamped right before the send (as it
 * was), the send's first wide load of the message overlapped the 8-byte
 * store still in the store buffer, which store forwarding cannot serve: the
 * load waited for the store to reach the cache, so behind every store the
 * previous send made to lines the other core held.  That stall was 76% of
 * shmq_pipe_send's samples and 51% of ck_put's (`perf record -e cpu-clock`,
 * `-- sweep 256`): it measured the bench, for every transport. */
static size_t tx_slots(uint32_t size)
{
	size_t n = ((size_t)16 << 10) / bulk_stride(size); /* at most 16 KiB of them */

	return n < 4 ? 4 : n > 2 * PB_BULK ? 2 * PB_BULK : n;
}

/* m: 2 * PB_BULK * bulk_stride(pb->size) bytes */
static int tput_tx(struct ep *e, uint8_t *m)
{
	struct pb *pb = e->pb;
	size_t stride = bulk_stride(pb->size), slots = tx_slots(pb->size), ahead = slots / 2;

	for (uint64_t i = 0; i < ahead && i < pb->n; i++)
		memcpy(m + i * stride, &i, 8);
	for (uint64_t i = 0; i < pb->n; i++) {
		uint64_t next = i + ahead;
		int rc;

		if (pb->kind == K_SHMQ_BURST && i && i % PB_BURST == 0)
			nanosleep(&(struct timespec){ 0, PB_BURST_PAUSE_NS }, NULL);
		memcpy(m + (next % slots) * stride, &next, 8);
		rc = ep_send(e, m + (i % slots) * stride);
		if (rc)
			return rc;
	}
	return 0;
}

static int tput_rx(struct ep *e, uint8_t *buf)
{
	struct pb *pb = e->pb;
	shmq_region *obs = NULL;

	if (pb->ck_n && pb_is_shmq(pb->kind))
		shmq__introspect_observe(pb->region, &obs); /* occupancy; none without */
	pb->occ_sum = pb->occ_n = 0;
	for (uint64_t i = 0; i < pb->n; i++) {
		uint64_t seq;
		int rc = ep_recv(e, buf);

		if (rc) {
			if (obs)
				shmq_region_close(obs);
			return rc;
		}
		memcpy(&seq, buf, 8);
		if (seq != i) {
			if (obs)
				shmq_region_close(obs);
			return -EPROTO;
		}
		if (pb->ck_n && i % PB_OCC_EVERY == PB_OCC_EVERY / 2) {
			pb->occ_sum += ep_occupancy(e, obs);
			pb->occ_n++;
		}
	}
	if (obs)
		shmq_region_close(obs);
	return 0;
}

/* K_MIN_BULK's sender: batches of PB_BULK from m (2 * PB_BULK messages
 * bulk_stride apart, stamped as for tput_tx_bulk), each published with one
 * store of the tail. */
static int tput_tx_min_bulk(struct ep *e, uint8_t *m)
{
	struct pb *pb = e->pb;
	size_t stride = bulk_stride(PB_MB_SIZE);
	uint64_t slots = PB_MB_SLOTS, tail = 0, head = 0;
	uint8_t *ring = pb->minbuf[0];
	uint32_t spins = 0;
	unsigned half = 0;

	bulk_stamp(pb, m, 0);
	while (tail < pb->n) {
		uint64_t k = pb->n - tail < PB_BULK ? pb->n - tail : PB_BULK;
		const uint8_t *src = m + half * PB_BULK * stride;

		bulk_stamp(pb, m + (1 - half) * PB_BULK * stride, tail + k);
		/* pairs with the receiver's store_release of mb_head: the
		 * slots it frees were read */
		while (tail + k - head > slots)
			if ((head = shmq__load_acquire(&pb->mb_head)) + slots < tail + k)
				relax(&spins, pb->pinned);
		for (uint64_t j = 0; j < k; j++)
			memcpy(ring + ((tail + j) & (slots - 1)) * PB_MB_SIZE, src + j * stride,
			       PB_MB_SIZE);
		tail += k;
		/* pairs with the receiver's load_acquire: the batch is written */
		shmq__store_release(&pb->mb_tail, tail);
		half = 1 - half;
	}
	return 0;
}

/* K_MIN_BULK's receiver: up to PB_BULK messages per look, each copied out
 * and its sequence number checked, then one store of the head. */
static int tput_rx_min_bulk(struct ep *e, uint8_t *buf)
{
	struct pb *pb = e->pb;
	uint64_t slots = PB_MB_SLOTS, head = 0, tail = 0;
	const uint8_t *ring = pb->minbuf[0];
	uint32_t spins = 0;

	while (head < pb->n) {
		uint64_t k;

		if (tail == head) {
			/* pairs with the sender's store_release of mb_tail */
			tail = shmq__load_acquire(&pb->mb_tail);
			if (tail == head) {
				relax_paced(&spins, pb->pinned, pb->pace);
				continue;
			}
		}
		k = tail - head < PB_BULK ? tail - head : PB_BULK;
		for (uint64_t j = 0; j < k; j++) {
			uint64_t seq;

			memcpy(buf + j * PB_MB_SIZE, ring + ((head + j) & (slots - 1)) * PB_MB_SIZE,
			       PB_MB_SIZE);
			memcpy(&seq, buf + j * PB_MB_SIZE, 8);
			if (seq != head + j)
				return -EPROTO;
		}
		head += k;
		/* pairs with the sender's load_acquire: these slots are free */
		shmq__store_release(&pb->mb_head, head);
	}
	return 0;
}

static int tput_side(struct ep *e, int side)
{
	static uint8_t bufs[PB_BULK][PB_MAXMSG] SHMQ__ALIGNED(64);
	static uint8_t bulk[2 * PB_BULK * PB_MAXMSG] SHMQ__ALIGNED(64);
	struct pb *pb = e->pb;
	int k = pb->kind, rc;

	memset(bufs, 0x5a, sizeof(bufs));
	if (side == 0) {
		memset(bulk, 0x5a, 2 * PB_BULK * bulk_stride(pb->size));
		pb->t0 = bench_now_ns();
		if (k == K_SHMQ_BULK)
			rc = tput_tx_bulk(e, bulk);
		else if (k == K_MIN_BULK)
			rc = tput_tx_min_bulk(e, bulk);
		else if (k == K_SHMQ_ZC)
			rc = tput_tx_zc(e, bufs[0]);
		else if (k == K_CK_ZC || k == K_PIPE2_ZC)
			rc = tput_tx_copy(e, bufs[0]);
		else
			rc = tput_tx(e, bulk);
		return rc;
	}
	if (k == K_SHMQ_BULK)
		rc = tput_rx_bulk(e, bufs[0]);
	else if (k == K_MIN_BULK)
		rc = tput_rx_min_bulk(e, bufs[0]);
	else if (k == K_SHMQ_ZC)
		rc = tput_rx_zc(e);
	else if (k == K_CK_ZC || k == K_PIPE2_ZC)
		rc = tput_rx_fold(e, bufs[0]);
	else
		rc = tput_rx(e, bufs[0]);
	pb->t1 = bench_now_ns();
	return rc;
}

/* ---------------------------------------------------------------- round trip */

static int raw_wait(const uint64_t *word, uint64_t want, bool pinned)
{
	uint32_t spins = 0;

	/* pairs with the peer's store_release in rt_once */
	while (shmq__load_acquire(word) != want)
		relax(&spins, pinned);
	return 0;
}

/* One round trip number seq: side 0 pings and waits, side 1 echoes. */
static inline int rt_once(struct ep *e, int side, uint64_t seq, uint8_t *buf)
{
	struct pb *pb = e->pb;
	int rc;

	if (pb->kind == K_RAW) {
		uint64_t mine = 2 * seq + (uint64_t)side + 1;

		if (side == 1)
			raw_wait(&pb->word, mine - 1, pb->pinned);
		/* publishes mine; pairs with the peer's load_acquire in raw_wait */
		shmq__store_release(&pb->word, mine);
		if (side == 0)
			raw_wait(&pb->word, mine + 1, pb->pinned);
		return 0;
	}
	if (side == 0) {
		memcpy(buf, &seq, 8);
		rc = ep_send(e, buf);
		return rc ? rc : ep_recv(e, buf);
	}
	rc = ep_recv(e, buf);
	return rc ? rc : ep_send(e, buf);
}

static int rt_side(struct ep *e, int side)
{
	static uint8_t buf[PB_MAXMSG] SHMQ__ALIGNED(64);
	struct pb *pb = e->pb;
	uint64_t seq = 0;
	int64_t prev;
	int rc = 0;

	for (uint64_t i = 0; i < pb->warmup && !rc; i++)
		rc = rt_once(e, side, seq++, buf);
	for (uint64_t b = 0; b < pb->batches && !rc; b++) {
		int64_t t0 = bench_now_ns();

		for (uint64_t i = 0; i < pb->batch && !rc; i++)
			rc = rt_once(e, side, seq++, buf);
		if (side == 0)
			pb->batch_ns[b] = (double)(bench_now_ns() - t0) / (double)pb->batch;
	}
	prev = bench_now_ns();
	for (uint64_t i = 0; i < pb->timed && !rc; i++) {
		int64_t now;

		rc = rt_once(e, side, seq++, buf);
		now = bench_now_ns();
		if (side == 0)
			bench_hist_record(&pb->hist[0], (uint64_t)(now - prev));
		prev = now;
	}
	return rc;
}

/* ---------------------------------------------------------------- driver */

static int pb_side(void *arg, int side)
{
	struct pb *pb = arg;
	struct ep e;
	int rc = ep_open(&e, pb, side);

	if (!rc) {
		if (side == 1)
			shmq__store_release(&pb->ready, 1u); /* pairs with wait_ready's load */
		else
			rc = wait_ready(pb);
	}
	if (!rc)
		rc = pb->rt ? rt_side(&e, side) : tput_side(&e, side);
	ep_close(&e);
	return rc;
}

struct pb_run {
	struct bench *b;
	struct pb *pb;
	int seq;          /* names of pipes and queues made in this run */
	shmq_region *r;
	bool have_mq;
};

static size_t ck_entries(const struct pb *pb)
{
	size_t n = pb->ck_n ? pb->ck_n : PB_CAP / pb->size;

	return n < 4 ? 4 : n;
}

/* Make the transport for one measurement (before the fork). */
static int pb_setup(struct pb_run *run)
{
	struct pb *pb = run->pb;
	int k = pb->kind;

	if (pb_is_shmq(k)) {
		struct shmq_pipe_opts o = { .capacity = pb->cap ? pb->cap : PB_CAP };
		shmq_pipe *end1;
		int rc;

		snprintf(pb->pname, sizeof(pb->pname), "p%d", run->seq++);
		rc = shmq_pipe_create(run->r, pb->pname, &o, &pb->h0, &end1);
		if (rc)
			return rc;
		shmq_pipe_close(end1); /* the child opens its own */
	} else if (k == K_PIPE2 || k == K_PIPE2_ZC) {
		for (int d = 0; d < 2; d++) {
			if (pipe(pb->fd[d]))
				return -errno;
			fcntl(pb->fd[d][1], F_SETPIPE_SZ, (int)PB_CAP);
		}
	} else if (k == K_SEQPACKET) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, pb->fd[0]))
			return -errno;
	} else if (k == K_MIN_BULK) {
		pb->mb_tail = pb->mb_head = 0;
		pb->minbuf[0] = bench_shared_alloc(PB_CAP);
		if (!pb->minbuf[0])
			return -ENOMEM;
	} else if (k == K_MIN) {
		for (int d = 0; d < 2; d++) {
			pb->minbuf[d] = bench_shared_alloc(PB_CAP); /* zeroed: no sequence 0 */
			if (!pb->minbuf[d])
				return -ENOMEM;
		}
	} else if (k == K_MQ) {
		struct mq_attr a = { .mq_maxmsg = 10, .mq_msgsize = pb->size };

		for (int d = 0; d < 2; d++) {
			char name[64];

			snprintf(name, sizeof(name), "/shmq-bench-%d-%d", (int)getpid(), run->seq++);
			pb->mq[d] = mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0600, &a);
			if (pb->mq[d] == (mqd_t)-1)
				return -errno;
			mq_unlink(name);
		}
	}
#ifdef HAVE_CK
	else if (k == K_CK || k == K_CK_ZC) {
		size_t n = ck_entries(pb);

		for (int d = 0; d < 2; d++) {
			pb->ckbuf[d] = bench_shared_alloc(n * pb->size);
			if (!pb->ckbuf[d])
				return -ENOMEM;
			ck_ring_init(&pb->ckr[d], (unsigned)n);
		}
	}
#endif
	return 0;
}

static void pb_teardown(struct pb_run *run)
{
	struct pb *pb = run->pb;
	int k = pb->kind;

	if (pb_is_shmq(k) && pb->h0)
		shmq_pipe_close(pb->h0);
	pb->h0 = NULL;
	if (k == K_PIPE2 || k == K_PIPE2_ZC)
		for (int d = 0; d < 2; d++) {
			close(pb->fd[d][0]);
			close(pb->fd[d][1]);
		}
	if (k == K_SEQPACKET) {
		close(pb->fd[0][0]);
		close(pb->fd[0][1]);
	}
	if (k == K_MQ)
		for (int d = 0; d < 2; d++)
			mq_close(pb->mq[d]);
	if (k == K_MIN)
		for (int d = 0; d < 2; d++) {
			bench_shared_free(pb->minbuf[d], PB_CAP);
			pb->minbuf[d] = NULL;
		}
	if (k == K_MIN_BULK) {
		bench_shared_free(pb->minbuf[0], PB_CAP);
		pb->minbuf[0] = NULL;
	}
#ifdef HAVE_CK
	if (k == K_CK || k == K_CK_ZC)
		for (int d = 0; d < 2; d++)
			bench_shared_free(pb->ckbuf[d], ck_entries(pb) * pb->size);
#endif
}

/* Run one measurement of kind on the current work parameters. */
static int pb_measure(struct pb_run *run, int kind)
{
	struct pb *pb = run->pb;
	int rc;

	pb->kind = kind;
	pb->ready = 0;
	pb->word = 0;
	pb->t0 = pb->t1 = 0;
	bench_hist_init(&pb->hist[0]);
	pb->waits = pb->wakes = 0;
	rc = pb_setup(run);
	if (!rc)
		rc = bench_pair_procs(run->b, pb_side, pb);
	if (!rc && pb_is_shmq(kind)) { /* as `shmq stat` shows them */
		shmq_region *obs;

		if (shmq__introspect_observe(pb->region, &obs) == 0) {
			pb_pipe_stat(obs, pb->pname, "waits", &pb->waits);
			pb_pipe_stat(obs, pb->pname, "wakes", &pb->wakes);
			shmq_region_close(obs);
		}
	}
	pb_teardown(run);
	return rc;
}

/* Messages per second of the last throughput measurement, in millions. */
static double pb_mmsgs(const struct pb *pb)
{
	return (double)pb->n / (double)(pb->t1 - pb->t0) * 1e3;
}

static int pb_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double pb_median_batch(struct pb *pb)
{
	uint64_t n = pb->batches;

	qsort(pb->batch_ns, n, sizeof(double), pb_cmp);
	return n % 2 ? pb->batch_ns[n / 2] : (pb->batch_ns[n / 2 - 1] + pb->batch_ns[n / 2]) / 2;
}

static const char *ck_name(void)
{
#ifdef HAVE_CK
	return "ck_ring spsc";
#else
	return NULL;
#endif
}

/* Throughput at one size: busy and bulk beside ck_ring; blocking beside the
 * kernel's three. */
static int pb_tput_size(struct pb_run *run, uint32_t size)
{
	struct bench *b = run->b;
	struct pb *pb = run->pb;
	bool small = size <= 64;
	double busy, bulk, minb = 0, block, ck = 0, p2, sp, mq = 0;
	int rc;

	pb->rt = false;
	pb->size = size;
	pb->n = small ? bench_scale(b, 20000000, 2000000)
		      : bench_scale(b, size == 1024 ? 4000000 : 1000000, 100000);
	if ((rc = pb_measure(run, K_SHMQ_BUSY)))
		return rc;
	busy = pb_mmsgs(pb);
	if ((rc = pb_measure(run, K_SHMQ_BULK)))
		return rc;
	bulk = pb_mmsgs(pb);
	if (size == 64) { /* the 0.2 target's size: its bound, right after */
		if ((rc = pb_measure(run, K_MIN_BULK)))
			return rc;
		minb = pb_mmsgs(pb);
	}
#ifdef HAVE_CK
	if ((rc = pb_measure(run, K_CK)))
		return rc;
	ck = pb_mmsgs(pb);
#endif
	pb->n = small ? bench_scale(b, 2000000, 200000) : bench_scale(b, 500000, 50000);
	if ((rc = pb_measure(run, K_SHMQ_BLOCK)))
		return rc;
	block = pb_mmsgs(pb);
	if ((rc = pb_measure(run, K_PIPE2)))
		return rc;
	p2 = pb_mmsgs(pb);
	if ((rc = pb_measure(run, K_SEQPACKET)))
		return rc;
	sp = pb_mmsgs(pb);
	if (run->have_mq) {
		rc = pb_measure(run, K_MQ);
		if (rc == -EMFILE || rc == -ENOSPC || rc == -EACCES || rc == -ENOSYS || rc == -EINVAL) {
			bench_note(b, "POSIX mq unavailable (%s): no mq baseline", strerror(-rc));
			run->have_mq = false;
		} else if (rc) {
			return rc;
		}
		mq = pb_mmsgs(pb);
	}
	rc = bench_report_sized(b, "pipe busy, 1 msg/call", size, "Mmsg/s", busy, ck_name(), ck, true);
	if (!rc)
		rc = bench_report_sized(b, "pipe busy, bulk 32/call", size, "Mmsg/s", bulk, ck_name(), ck,
					true);
	if (!rc && size == 64)
		rc = bench_report_sized(b, "pipe busy, bulk 32/call, beside its bound", size, "Mmsg/s",
					bulk, "minimal batched ring (bound)", minb, true);
	if (!rc && size == 64 && ck_name())
		rc = bench_report_sized(b, "the bound: minimal batched ring, 32/call", size, "Mmsg/s",
					minb, ck_name(), ck, true);
	if (!rc)
		rc = bench_report_sized(b, "pipe blocking vs pipe(2)", size, "Mmsg/s", block, "pipe(2)",
					p2, true);
	if (!rc)
		rc = bench_report_sized(b, "pipe blocking vs seqpacket", size, "Mmsg/s", block,
					"AF_UNIX SOCK_SEQPACKET", sp, true);
	if (!rc && run->have_mq)
		rc = bench_report_sized(b, "pipe blocking vs mq", size, "Mmsg/s", block, "POSIX mq", mq,
					true);
	return rc;
}

/*
 * The receiver's pacing: a receiver that polls again after one pause keeps
 * up with large messages and reads each record right behind the sender;
 * one that waits PB_PACE pauses after an empty poll lets the sender run
 * ahead.  At 1 KiB and 4 KiB, one message per call, shmq busy beside
 * ck_ring SPSC, both receivers paced alike, at one pause and at PB_PACE
 * pauses per empty poll, each measured BENCH_SWEEP_REPS times in
 * alternation; the figures are the medians, the ratios' spread goes to
 * stderr.
 */
#define PB_PACE 64u

static int pb_pacing_size(struct pb_run *run, uint32_t size)
{
	static const uint32_t paces[2] = { 1, PB_PACE };
	struct bench *b = run->b;
	struct pb *pb = run->pb;
	double v[2][2][BENCH_SWEEP_REPS];
	int rc = 0;

	pb->rt = false;
	pb->size = size;
	pb->n = bench_scale(b, size == 1024 ? 4000000 : 1000000, 100000);
	for (int i = 0; i < BENCH_SWEEP_REPS && rc == 0; i++) {
		for (int p = 0; p < 2 && rc == 0; p++) {
			pb->pace = paces[p];
			rc = pb_measure(run, K_SHMQ_BUSY);
			v[p][0][i] = rc ? NAN : pb_mmsgs(pb);
			rc = rc ? rc : pb_measure(run, K_CK);
			v[p][1][i] = rc ? NAN : pb_mmsgs(pb);
		}
	}
	pb->pace = 0;
	for (int p = 0; p < 2 && rc == 0; p++) {
		struct bench_spread sr;
		char series[96];

		snprintf(series, sizeof(series), "pipe busy, 1 msg/call, receiver %u pause%s per empty poll",
			 paces[p], paces[p] == 1 ? "" : "s");
		rc = bench_report_reps(b, series, size, "Mmsg/s", v[p][0], ck_name(), v[p][1], true,
				       &sr);
		bench_note(b, "pacing %uB, %u pause(s): shmq/ck %.2fx (spread %.2f-%.2f)", size,
			   paces[p], sr.median, sr.lo, sr.hi);
	}
	return rc;
}

static int pb_pacing(struct pb_run *run)
{
#ifdef HAVE_CK
	int rc = pb_pacing_size(run, 1024);

	return rc ? rc : pb_pacing_size(run, 4096);
#else
	bench_note(run->b, "pacing: built without ck_ring, nothing to compare");
	return 0;
#endif
}

struct pb_cpu {
	uint64_t blocks;
	shmq_pipe *tx, *rx;
#ifdef HAVE_CK
	struct ck_ring ck;
	struct pb_m64 *ring;
#endif
};

static SHMQ__ALWAYS_INLINE bool pb_cpu_send(struct pb_cpu *c, struct pb_m64 *m)
{
	return shmq_pipe_send(c->tx, m, sizeof(*m), SHMQ_NOWAIT) == 0;
}

static SHMQ__ALWAYS_INLINE bool pb_cpu_recv(struct pb_cpu *c, struct pb_m64 *m)
{
	return shmq_pipe_recv(c->rx, m, sizeof(*m), SHMQ_NOWAIT) == (ssize_t)sizeof(*m);
}

static int pb_cpu_shmq(void *arg, int64_t *ns)
{
	struct pb_cpu *c = arg;

	return BENCH_PAIR_BLOCK(struct pb_m64, c->blocks, ns, pb_cpu_send, pb_cpu_recv, c);
}

#ifdef HAVE_CK
static SHMQ__ALWAYS_INLINE bool pb_cpu_ck_put(struct pb_cpu *c, struct pb_m64 *m)
{
	return ck_ring_enqueue_spsc_m64(&c->ck, c->ring, m);
}

static SHMQ__ALWAYS_INLINE bool pb_cpu_ck_get(struct pb_cpu *c, struct pb_m64 *m)
{
	return ck_ring_dequeue_spsc_m64(&c->ck, c->ring, m);
}

static int pb_cpu_ck(void *arg, int64_t *ns)
{
	struct pb_cpu *c = arg;

	return BENCH_PAIR_BLOCK(struct pb_m64, c->blocks, ns, pb_cpu_ck_put, pb_cpu_ck_get, c);
}
#endif

/* The pipe's send + recv in one process beside ck_ring SPSC's enqueue +
 * dequeue (PB_CAP bytes of ring each, 64-byte messages), 8 rounds of each
 * alternated: this machine's core alone (see the top). */
static int pb_cpu(struct pb_run *run)
{
	struct shmq_pipe_opts o = { .capacity = PB_CAP };
	struct pb_cpu c = { .blocks = bench_scale(run->b, 8192, 1024) };
	double pairs = 8.0 * (double)c.blocks * BENCH_PAIR_BATCH;
	bench_block_fn ck = NULL;
	int64_t ns[2] = { 0, 0 };
	char name[32];
	int rc;

#ifdef HAVE_CK
	c.ring = calloc(PB_CAP / sizeof(*c.ring), sizeof(*c.ring));
	if (!c.ring)
		return -ENOMEM;
	ck_ring_init(&c.ck, (unsigned int)(PB_CAP / sizeof(*c.ring)));
	ck = pb_cpu_ck;
#endif
	snprintf(name, sizeof(name), "p%d", run->seq++);
	rc = shmq_pipe_create(run->r, name, &o, &c.tx, &c.rx);
	if (rc == 0) {
		rc = bench_alternate(8, pb_cpu_shmq, &c, ck, &c, ns);
		shmq_pipe_close(c.tx);
		shmq_pipe_close(c.rx);
	}
#ifdef HAVE_CK
	free(c.ring);
#endif
	if (rc)
		return rc;
	return bench_report(run->b, "pipe 1 process 64B send+recv pair", "ns", (double)ns[0] / pairs,
			    ck_name(), (double)ns[1] / pairs, false);
}

/* 4096-byte messages in place, GB/s. */
static int pb_zero_copy(struct pb_run *run)
{
	struct bench *b = run->b;
	struct pb *pb = run->pb;
	double zc, p2, ck = 0;
	int rc;

	pb->rt = false;
	pb->size = 4096;
	pb->n = bench_scale(b, 2000000, 200000);
	if ((rc = pb_measure(run, K_SHMQ_ZC)))
		return rc;
	zc = pb_mmsgs(pb) * 4096 / 1e3;
#ifdef HAVE_CK
	if ((rc = pb_measure(run, K_CK_ZC)))
		return rc;
	ck = pb_mmsgs(pb) * 4096 / 1e3;
#endif
	pb->n = bench_scale(b, 500000, 50000);
	if ((rc = pb_measure(run, K_PIPE2_ZC)))
		return rc;
	p2 = pb_mmsgs(pb) * 4096 / 1e3;
	rc = bench_report(b, "pipe reserve/commit + peek/consume 4096B", "GB/s", zc, ck_name(), ck, true);
	if (!rc)
		rc = bench_report(b, "pipe reserve/commit 4096B vs pipe(2)", "GB/s", zc, "pipe(2)", p2, true);
	return rc;
}

/* Round trip of kind: the median batch mean (ns); the histogram stays in pb. */
static int pb_rt(struct pb_run *run, int kind, bool slow, double *ns, struct bench_hist *h)
{
	struct pb *pb = run->pb;
	struct bench *b = run->b;
	int rc;

	pb->rt = true;
	pb->size = PB_RT_SIZE;
	pb->warmup = slow ? bench_scale(b, 500, 100) : bench_scale(b, 20000, 2000);
	pb->batch = slow ? 50 : 1000;
	pb->batches = slow ? bench_scale(b, 100, 20) : bench_scale(b, 200, 40);
	pb->timed = slow ? bench_scale(b, 5000, 500) : bench_scale(b, 100000, 10000);
	rc = pb_measure(run, kind);
	if (rc)
		return rc;
	*ns = pb_median_batch(pb);
	bench_hist_init(h);
	bench_hist_merge(h, &pb->hist[0]);
	return 0;
}

static int pb_round_trips(struct pb_run *run)
{
	struct bench *b = run->b;
	struct bench_hist *h[9];
	double raw, busy, min = 0, ck = 0, sleep, block, p2, sp, mq = 0;
	int rc = 0;

	for (int i = 0; i < 9; i++)
		if (!(h[i] = bench_hist_new()))
			rc = -ENOMEM;
	if (!rc)
		rc = pb_rt(run, K_RAW, false, &raw, h[0]);
	if (!rc)
		rc = pb_rt(run, K_SHMQ_BUSY, false, &busy, h[1]);
	if (!rc)
		rc = pb_rt(run, K_MIN, false, &min, h[8]);
#ifdef HAVE_CK
	if (!rc)
		rc = pb_rt(run, K_CK, false, &ck, h[2]);
#endif
	if (!rc)
		rc = pb_rt(run, K_SHMQ_SLEEP, true, &sleep, h[3]);
	if (!rc)
		rc = pb_rt(run, K_SHMQ_BLOCK, true, &block, h[4]);
	if (!rc)
		rc = pb_rt(run, K_PIPE2, true, &p2, h[5]);
	if (!rc)
		rc = pb_rt(run, K_SEQPACKET, true, &sp, h[6]);
	if (!rc && run->have_mq)
		rc = pb_rt(run, K_MQ, true, &mq, h[7]);
	if (!rc)
		rc = bench_report(b, "round trip 64B awake (busy)", "ns", busy, "cache-line round trip",
				  raw, false);
	if (!rc)
		rc = bench_report(b, "round trip 64B awake vs minimal ring", "ns", busy,
				  "minimal ring (bound)", min, false);
	if (!rc)
		rc = bench_report(b, "round trip 64B minimal ring (bound)", "ns", min,
				  "cache-line round trip", raw, false);
	if (!rc && ck_name())
		rc = bench_report(b, "round trip 64B awake vs ck_ring", "ns", busy, ck_name(), ck, false);
	if (!rc)
		rc = bench_report_latency(b, "round trip 64B awake, each", h[1], "cache-line", h[0]);
	if (!rc)
		rc = bench_report(b, "round trip 64B asleep (spin 0) vs pipe(2)", "ns", sleep, "pipe(2)",
				  p2, false);
	if (!rc)
		rc = bench_report(b, "round trip 64B asleep vs seqpacket", "ns", sleep,
				  "AF_UNIX SOCK_SEQPACKET", sp, false);
	if (!rc && run->have_mq)
		rc = bench_report(b, "round trip 64B asleep vs mq", "ns", sleep, "POSIX mq", mq, false);
	if (!rc)
		rc = bench_report(b, "round trip 64B blocking (spin, sleep) vs pipe(2)", "ns", block,
				  "pipe(2)", p2, false);
	if (!rc)
		rc = bench_report_latency(b, "round trip 64B asleep, each", h[3], "pipe(2)", h[5]);
	for (int i = 0; i < 9; i++)
		bench_hist_free(h[i]);
	return rc;
}

/* A fresh region under the run's name (children open it by that name):
 * every measurement makes its pipes anew and a region never gives their
 * room back, so each sweep point gets a region sized for its own pipes
 * (at 65536 slots 2 x 8 MiB per pipe, 2 kinds x BENCH_SWEEP_REPS pipes:
 * more than the 64 MiB the rest of the run shares). */
static int pb_fresh_region(struct pb_run *run, size_t pipe_bytes)
{
	size_t need = 2 * BENCH_SWEEP_REPS * pipe_bytes + ((size_t)16 << 20);
	struct shmq_region_opts o = { .size = need > ((size_t)64 << 20) ? need : (size_t)64 << 20 };

	if (run->r) {
		shmq_region_close(run->r);
		shmq_region_unlink(run->pb->region);
		run->r = NULL;
	}
	return shmq_region_create(run->pb->region, &o, &run->r);
}

/* One ring size of the sweep, messages of size bytes: shmq busy, ck_ring,
 * shmq blocking, in alternation, BENCH_SWEEP_REPS times (tools/bench.h). */
static int pb_sweep_point(struct pb_run *run, size_t msgs, uint32_t size)
{
	struct bench *b = run->b;
	struct pb *pb = run->pb;
	double busy[BENCH_SWEEP_REPS], blk[BENCH_SWEEP_REPS], ck[BENCH_SWEEP_REPS] = { 0 };
	double rb[BENCH_SWEEP_REPS], rk[BENCH_SWEEP_REPS], occ_s = 0, occ_c = 0;
	char name[96];
	int rc;

	pb->rt = false;
	pb->size = size;
	pb->ck_n = msgs;
	pb->cap = 64; /* the smallest power of two holding msgs records */
	while (pb->cap / SHMQ_ALIGN_REC(size) < msgs)
		pb->cap *= 2;
	if ((rc = pb_fresh_region(run, 2 * pb->cap)))
		return rc;
	pb->n = bench_scale(b, 4000000, 300000);
	for (int i = 0; i < BENCH_SWEEP_REPS; i++) {
		if ((rc = pb_measure(run, K_SHMQ_BUSY)))
			return rc;
		busy[i] = pb_mmsgs(pb);
		occ_s += pb->occ_n ? (double)pb->occ_sum / (double)pb->occ_n * 100.0 /
					     (double)(pb->cap / SHMQ_ALIGN_REC(size)) : 0;
#ifdef HAVE_CK
		if ((rc = pb_measure(run, K_CK)))
			return rc;
		ck[i] = pb_mmsgs(pb);
		occ_c += pb->occ_n ? (double)pb->occ_sum / (double)pb->occ_n * 100.0 /
					     (double)(msgs - 1) : 0; /* ck holds one less */
#endif
		if ((rc = pb_measure(run, K_SHMQ_BLOCK)))
			return rc;
		blk[i] = pb_mmsgs(pb);
		rb[i] = ck[i] > 0 ? busy[i] / ck[i] : 0;
		rk[i] = ck[i] > 0 ? blk[i] / ck[i] : 0;
	}
	occ_s /= BENCH_SWEEP_REPS;
	occ_c /= BENCH_SWEEP_REPS;
	if (ck_name()) {
		struct bench_spread sb = bench_spread(rb, BENCH_SWEEP_REPS);
		struct bench_spread sk = bench_spread(rk, BENCH_SWEEP_REPS);

		bench_note(b, "sweep ring %zu msgs %uB: busy/ck %.2fx (spread %.2f-%.2f), blocking/ck %.2fx "
			   "(spread %.2f-%.2f), mean occupancy (of each ring) shmq %.0f%% ck %.0f%%",
			   msgs, size, sb.median, sb.lo, sb.hi, sk.median, sk.lo, sk.hi, occ_s, occ_c);
	}
	snprintf(name, sizeof(name), "pipe %uB busy, ring %zu msgs", size, msgs);
	rc = bench_report(b, name, "Mmsg/s", bench_spread(busy, BENCH_SWEEP_REPS).median, ck_name(),
			  bench_spread(ck, BENCH_SWEEP_REPS).median, true);
	snprintf(name, sizeof(name), "pipe %uB blocking, ring %zu msgs", size, msgs);
	if (!rc)
		rc = bench_report(b, name, "Mmsg/s", bench_spread(blk, BENCH_SWEEP_REPS).median,
				  ck_name(), bench_spread(ck, BENCH_SWEEP_REPS).median, true);
	snprintf(name, sizeof(name), "pipe %uB busy occupancy %%, ring %zu msgs", size, msgs);
	if (!rc && ck_name())
		rc = bench_report(b, name, "%", occ_s, ck_name(), occ_c, false);
	pb->ck_n = 0;
	pb->cap = 0;
	return rc;
}

/*
 * The ring-size sweep: 64-byte messages at every size, and 56-byte ones
 * beside ck_ring's 56-byte entries.  A 64-byte message's record is one line
 * of the pipe's data area (its length in a descriptor apart, layout 5), as
 * ck_ring's 64-byte entry is; with 56 bytes, ck_ring's entries straddle
 * lines and the pipe's records share them.  (Layout 4's in-band 8-byte
 * header made a 64-byte message's record 72 bytes, so that with the
 * receiver right behind the sender nearly every line crossed twice.)  Ring
 * sizes after "--" (`-- sweep 256 1024`) measure only those.
 */
static int pb_sweep_size(struct pb_run *run, size_t msgs)
{
	int rc = pb_sweep_point(run, msgs, 64);

	return rc ? rc : pb_sweep_point(run, msgs, 56);
}

static int pb_sweep(struct pb_run *run)
{
	static const size_t full[] = { 64, 256, 1024, 4096, 16384, 65536 };
	static const size_t quick[] = { 256, 4096 };
	unsigned long chosen[16];
	bool q = bench_quick(run->b);
	size_t n = q ? SHMQ__ARRAY_SIZE(quick) : SHMQ__ARRAY_SIZE(full);
	int k = bench_arg_rings(run->b, chosen, SHMQ__ARRAY_SIZE(chosen)), rc = 0;

	if (k < 0)
		return k;
	for (int i = 0; !rc && i < k; i++)
		rc = pb_sweep_size(run, chosen[i]);
	for (size_t i = 0; !rc && !k && i < n; i++)
		rc = pb_sweep_size(run, q ? quick[i] : full[i]);
	return rc;
}

/* Futex wakes per 1000 messages through blocking calls, from the pipe's
 * counters: streaming, and a bursty producer. */
static int pb_wakes(struct pb_run *run)
{
	struct bench *b = run->b;
	struct pb *pb = run->pb;
	double wk[2], wt[2];
	int kinds[2] = { K_SHMQ_BLOCK, K_SHMQ_BURST }, rc = 0;

	pb->rt = false;
	pb->size = 64;
	for (int i = 0; i < 2 && !rc; i++) {
		pb->n = i ? bench_scale(b, 200000, 20000) : bench_scale(b, 2000000, 200000);
		rc = pb_measure(run, kinds[i]);
		wk[i] = 1000.0 * (double)pb->wakes / (double)pb->n;
		wt[i] = 1000.0 * (double)pb->waits / (double)pb->n;
	}
	/* baseline: the futex waits; ratio waits / wakes >= 1: one wake per sleep */
	if (!rc)
		rc = bench_report(b, "pipe 64B wakes/1000 msgs, streaming", "wakes", wk[0],
				  "futex waits/1000 msgs", wt[0], false);
	if (!rc)
		rc = bench_report(b, "pipe 64B wakes/1000 msgs, bursts of 1000 + 100us", "wakes", wk[1],
				  "futex waits/1000 msgs", wt[1], false);
	return rc;
}

int bench_pipe(struct bench *b)
{
	struct shmq_region_opts o = { .size = (size_t)64 << 20 };
	struct pb_run run = { .b = b, .have_mq = true };
	static const uint32_t sizes[] = { 8, 64, 1024, 4096 };
	int rc;

	run.pb = bench_shared_alloc(sizeof(*run.pb));
	if (!run.pb)
		return -ENOMEM;
	run.pb->pinned = bench_pinned(b);
	snprintf(run.pb->region, sizeof(run.pb->region), "/shmq-bench-pipe-%d", (int)getpid());
	rc = shmq_region_create(run.pb->region, &o, &run.r);
	if (!rc && bench_has_arg(b, "rt")) { /* the round trips alone */
		rc = pb_round_trips(&run);
		goto out;
	}
	if (!rc && bench_has_arg(b, "pacing")) { /* the receiver's pacing alone */
		rc = pb_pacing(&run);
		goto out;
	}
	if (!rc && bench_has_arg(b, "sweep")) { /* the ring-size sweep alone */
		rc = pb_sweep(&run);
		goto out;
	}
	if (!rc && bench_has_arg(b, "cpu")) { /* the one-process pair alone */
		rc = pb_cpu(&run);
		goto out;
	}
	for (size_t i = 0; !rc && i < sizeof(sizes) / sizeof(sizes[0]); i++)
		rc = pb_tput_size(&run, sizes[i]);
	if (bench_has_arg(b, "tput")) /* the per-size throughputs alone */
		goto out;
	if (!rc)
		rc = pb_cpu(&run);
	if (!rc)
		rc = pb_zero_copy(&run);
	if (!rc)
		rc = pb_round_trips(&run);
	if (!rc)
		rc = pb_wakes(&run);
	if (!rc)
		rc = pb_sweep(&run);
out:
	if (run.r) {
		shmq_region_close(run.r);
		shmq_region_unlink(run.pb->region);
	}
	bench_shared_free(run.pb, sizeof(*run.pb));
	return rc;
}
