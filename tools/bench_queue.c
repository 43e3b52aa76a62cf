/* SPDX-License-Identifier: MIT */
/*
 * shmq-bench queue: shmq_queue with N producer and N consumer processes
 * (1p1c, 2p2c, 4p4c; producers pinned to core 0, consumers to core 1), beside
 * POSIX mq, an AF_UNIX SOCK_SEQPACKET socketpair and ConcurrencyKit's
 * ck_ring MPMC (when built with it), on the same work.
 *
 *  - busy: shmq_queue_put / get with SHMQ_NOWAIT in a polling loop, one
 *    message per call, beside ck_ring_enqueue_mpmc / ck_ring_dequeue_mpmc of
 *    a struct of the message's size (one message per call, the same loop:
 *    cpu_relax, sched_yield every 64 failed tries);
 *  - blocking: shmq_queue_put / get with SHMQ_FOREVER (spin, then futex),
 *    beside mq_send / mq_receive and send / recv on the socketpair, which
 *    always sleep in the kernel.
 *  Every transport is 1024 messages deep where the system allows it (mq
 *  falls back to its default depth and says so); messages are 8, 64, 1024
 *  and 4096 bytes for 1p1c, 64 bytes for 2p2c and 4p4c, and the queue's
 *  slots hold exactly the message (max_msg = its size), as ck_ring's entries
 *  and the sweep's queues do: 4096-byte slots for 64-byte messages made the
 *  ring 4 MiB, one page per slot, and on a VM whose first touch of a page
 *  costs each process 10-50 us (shadow paging) the 8 processes of 4p4c spent
 *  a 60 ms run paying for that.  Each run lasts a fixed time; every consumer
 *  checks per-producer FIFO order.
 *  - stall: every consumer reads the clock once per 128 messages; the
 *    largest gap while producers were still putting is the run's stall.
 *    A queue must never stall over 100 ms.  The stretch from a consumer's
 *    last clock read to the stop counts as a gap too.  With more consumers
 *    than their core can run at once that gap also counts the time the
 *    consumer itself waited for the CPU while the others took messages, so
 *    2p2c and 4p4c also report the queue-wide stall: at each clock read, the
 *    time since the latest clock read of any consumer (an upper bound of
 *    the longest time in which no consumer took a message, coarse by up to
 *    128 messages per consumer).
 *  - scaling: 2p2c and 4p4c throughput over 1p1c's, same mode, 64 bytes.
 *
 *  - wakes: futex-wake system calls per 1000 messages and per sleep (the
 *    queue's own counters, as shmq stat shows them) for blocking 1p1c 64 B,
 *    streaming and with a bursty producer (1000 puts, then a 100 us pause),
 *    for the getter side and for the putter side.  One sleep should cost at
 *    most one wake (issue 15).
 *  - large: 64 KiB messages through put / get_alloc beside pipe(2)
 *    carrying the same bytes (1p1c, MB/s).
 *
 *  - two-phase: ns per message of get_begin + get_commit beside get, one
 *    process, 64 B, from a queue filled before the clock starts (the
 *    consumer's cost of the two-phase get over a plain get; blocks of each
 *    kind alternate so that both see the same machine).
 *
 *  - one process: ns per put + get pair, 64 B, SHMQ_NOWAIT, batches of 32
 *    puts then 32 gets, beside ck_ring MPMC's enqueue + dequeue the same
 *    way, 8 alternated rounds of each (ABBA): what the protocol's
 *    instructions and locked operations cost one core, with no line
 *    crossing to another (the two-process figures mix that with the
 *    machine's line transfers, which move with the VM's placement).
 *
 *  - ring-size sweep (issue 15): 1p1c, 64-byte messages, at rings of 64 ..
 *    65536 messages (256 .. 16384 with --quick): shmq_queue made with that
 *    capacity and max_msg 64 (its smallest slot for the message), busy and
 *    blocking, beside ck_ring MPMC with that many 64-byte entries and
 *    Vyukov's MPMC (QK_VY below: the protocol without crash safety); each
 *    point is measured BENCH_SWEEP_REPS times alternating shmq busy,
 *    ck_ring, shmq blocking and Vyukov's (tools/bench.h), the figures are the medians, the
 *    ratio's median and range (the spread) go to stderr, with the mean ring
 *    occupancy the consumers sampled.
 *
 *  `shmq-bench queue -- small` skips the 8, 1024 and 4096-byte 1p1c runs;
 *  `-- scaling` runs only 1p1c, 2p2c and 4p4c at 64 bytes (no wakes, sweep,
 *  two-phase, one process or large);
 *  `-- large`, `-- twophase`, `-- cpu`, `-- sweep` and `-- pacing` (see
 *  its section; in no default run) run only that figure; ring sizes after
 *  `-- sweep` (`-- sweep 1024 16384`) sweep only those.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <mqueue.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_CK
#include <ck_ring.h>
#endif

#include <shmq.h>

#include "core/atomic_int.h"
#include "core/compiler_int.h"
#include "core/region_int.h"
#include "ring/mpmc_int.h"

#include "bench.h"

#define QB_DEPTH     1024u
#define QB_MAXMSG    4096u
#define QB_WORKERS   8u
#define QB_STALL_EVERY 128u
#define QB_DEADLINE_NS 60000000000LL /* a loaded box, not a hang */
#define QB_POISON    UINT64_C(0x00ffffffffffffff)
#define QB_BURST     1000u   /* bursty producer: puts per burst */
#define QB_PAUSE_NS  100000L /* and the pause after each */

enum qb_kind { QK_BUSY, QK_BLOCK, QK_MQ, QK_SEQPACKET, QK_CK, QK_VY, QK_COUNT };

static const char *const qb_kind_name[QK_COUNT] = {
	"shmq busy", "shmq blocking", "POSIX mq", "AF_UNIX seqpacket", "ck_ring MPMC",
	"Vyukov MPMC",
};

/*
 * QK_VY, in the sweep only: Vyukov's bounded MPMC queue, the textbook form
 * of the protocol family shmq_queue belongs to (a sequence word per slot,
 * claims by a CAS on the index), written here for the bench.  Slots are the
 * sequence word and the message, rounded up to whole lines (128 bytes for
 * 64, as the queue's).  It names no claimer, so a claimer killed between its
 * CAS and its publication stalls every process behind it for ever, which
 * shmq_queue may not do: its rate over the queue's is what the crash safety
 * costs, and the queue's ratio to ck_ring cannot be expected above this
 * one's.
 */
struct qb_vy_index {
	uint64_t tail SHMQ__ALIGNED(SHMQ__CACHELINE);
	uint64_t head SHMQ__ALIGNED(SHMQ__CACHELINE);
};

struct qb_m8 { uint64_t w[1]; };
struct qb_m64 { uint64_t w[8]; };
struct qb_m1024 { uint64_t w[128]; };
struct qb_m4096 { uint64_t w[512]; };

#ifdef HAVE_CK
CK_RING_PROTOTYPE(qm8, qb_m8)
CK_RING_PROTOTYPE(qm64, qb_m64)
CK_RING_PROTOTYPE(qm1024, qb_m1024)
CK_RING_PROTOTYPE(qm4096, qb_m4096)
#endif

/* Per worker, one line each. */
struct qb_worker {
	uint64_t count;   /* consumer: messages received (poison excluded) */
	int64_t t_end;    /* consumer: when it received its poison */
	int64_t max_gap;  /* consumer: largest gap between clock reads before stop */
	uint64_t occ_sum; /* consumer: ring occupancy, summed over its samples */
	uint64_t occ_n;   /* and the number of samples */
	int64_t mark;     /* consumer: its last clock read (see stall, queue-wide) */
	int64_t max_qgap; /* consumer: largest queue-wide gap it saw before stop */
	int32_t err;      /* nonzero: transport error or FIFO violation */
	uint8_t pad[4];
};
_Static_assert(sizeof(struct qb_worker) == SHMQ__CACHELINE, "one line per worker");

/* Everything the processes see (MAP_SHARED, made before the forks). */
struct qb_shared {
	uint32_t ready;   /* workers attached */
	uint32_t go;      /* start */
	uint32_t stop;    /* producers stop putting */
	uint32_t pad0;
	int64_t t_start;
	int64_t t_stop;   /* when stop was set (published by its store) */
	uint8_t pad1[32];
	struct qb_worker w[QB_WORKERS];
#ifdef HAVE_CK
	struct ck_ring ck SHMQ__ALIGNED(SHMQ__CACHELINE);
#endif
	struct qb_vy_index vy;
};
SHMQ__LINE_ALIGNED_FIELD(struct qb_shared, w);

struct qb_run {
	struct bench *b;
	enum qb_kind kind;
	unsigned np, nc;
	size_t size;
	uint32_t depth;       /* ring capacity in messages, every transport */
	uint32_t max_msg;     /* the shmq queue's max_msg */
	int64_t duration_ns;
	struct qb_shared *sh;
	void *ckbuf;
	size_t ckbuf_size;
	uint8_t *vybuf;       /* QK_VY: depth slots of vy_slot bytes */
	size_t vy_slot;
	char region_name[64];
	char mq_name[64];
	long mq_depth;
	int sv[2];
	bool bursty;          /* the producer pauses QB_PAUSE_NS every QB_BURST puts */
	uint32_t pace;        /* busy and ck_ring consumers: pauses after an empty poll (0: one) */
	shmq_region *r;       /* shmq kinds: the creator's handle, for the counters */
};

/* A worker's own view of the transport. */
struct qb_end {
	struct qb_run *run;
	shmq_region *r;
	shmq_queue *q;
	mqd_t mq;
	int fd;
};

/* ---------------------------------------------------------------- transport */

static int qb_setup(struct qb_run *run)
{
	switch (run->kind) {
	case QK_BUSY:
	case QK_BLOCK: {
		struct shmq_region_opts o = { .size = 16u << 20 };
		struct shmq_queue_opts qo = { .capacity = run->depth, .max_msg = run->max_msg };
		shmq_region *r;
		shmq_queue *q;
		int rc;

		snprintf(run->region_name, sizeof(run->region_name), "/shmq-bench-queue-%d",
			 (int)getpid());
		shmq_region_unlink(run->region_name);
		rc = shmq_region_create(run->region_name, &o, &r);
		if (rc)
			return rc;
		rc = shmq_queue_create(r, "bench", &qo, &q);
		if (rc == 0)
			shmq_queue_close(q);
		if (rc)
			shmq_region_close(r);
		else
			run->r = r; /* the children open it by name; we read its counters */
		return rc;
	}
	case QK_MQ: {
		long depths[2] = { (long)run->depth, 10 };

		snprintf(run->mq_name, sizeof(run->mq_name), "/shmq-bench-queue-%d", (int)getpid());
		for (int i = 0; i < 2; i++) {
			struct mq_attr a = { .mq_maxmsg = depths[i], .mq_msgsize = (long)run->size };
			mqd_t mq;

			mq_unlink(run->mq_name);
			mq = mq_open(run->mq_name, O_CREAT | O_EXCL | O_RDWR, 0600, &a);
			if (mq != (mqd_t)-1) {
				mq_close(mq);
				run->mq_depth = depths[i];
				return 0;
			}
		}
		return -errno;
	}
	case QK_SEQPACKET: {
		int buf = (int)(run->depth * (run->size + 64));

		if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, run->sv))
			return -errno;
		setsockopt(run->sv[0], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
		setsockopt(run->sv[1], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
		return 0;
	}
	case QK_VY:
		if (!SHMQ__IS_POW2(run->depth))
			return -EINVAL;
		run->vy_slot = SHMQ__ALIGN_UP(8 + run->size, (size_t)SHMQ__CACHELINE);
		run->vybuf = bench_shared_alloc(run->depth * run->vy_slot);
		if (!run->vybuf)
			return -ENOMEM;
		for (uint32_t i = 0; i < run->depth; i++) /* before the fork */
			memcpy(run->vybuf + i * run->vy_slot, &(uint64_t){ i }, 8);
		return 0;
	case QK_CK:
#ifdef HAVE_CK
		run->ckbuf_size = run->depth * run->size;
		run->ckbuf = bench_shared_alloc(run->ckbuf_size);
		if (!run->ckbuf)
			return -ENOMEM;
		ck_ring_init(&run->sh->ck, run->depth);
		return 0;
#else
		return -ENOTSUP;
#endif
	default:
		return -EINVAL;
	}
}

static void qb_teardown(struct qb_run *run)
{
	switch (run->kind) {
	case QK_BUSY:
	case QK_BLOCK:
		if (run->r)
			shmq_region_close(run->r);
		run->r = NULL;
		shmq_region_unlink(run->region_name);
		break;
	case QK_MQ:
		mq_unlink(run->mq_name);
		break;
	case QK_SEQPACKET:
		close(run->sv[0]);
		close(run->sv[1]);
		break;
	case QK_CK:
		if (run->ckbuf)
			bench_shared_free(run->ckbuf, run->ckbuf_size);
		run->ckbuf = NULL;
		break;
	case QK_VY:
		bench_shared_free(run->vybuf, run->depth * run->vy_slot);
		run->vybuf = NULL;
		break;
	default:
		break;
	}
}

static int qb_attach(struct qb_run *run, struct qb_end *e, bool producer)
{
	memset(e, 0, sizeof(*e));
	e->run = run;
	switch (run->kind) {
	case QK_BUSY:
	case QK_BLOCK: {
		int rc = shmq_region_open(run->region_name, &e->r);

		return rc ? rc : shmq_queue_open(e->r, "bench", &e->q);
	}
	case QK_MQ:
		e->mq = mq_open(run->mq_name, producer ? O_WRONLY : O_RDONLY);
		return e->mq == (mqd_t)-1 ? -errno : 0;
	case QK_SEQPACKET:
		e->fd = producer ? run->sv[0] : run->sv[1];
		return 0;
	default:
		return 0;
	}
}

/* A failed try in a polling loop: pause (pauses times, at least once), and
 * yield now and then (the peer may share our core). */
static inline void qb_backoff(uint32_t *tries, uint32_t pauses)
{
	if (++*tries % 64 == 0) {
		sched_yield();
		return;
	}
	do
		shmq__cpu_relax();
	while (pauses-- > 1);
}

#ifdef HAVE_CK
static bool qb_ck_put(struct qb_run *run, const void *msg)
{
	struct ck_ring *ck = &run->sh->ck;

	switch (run->size) {
	case 8: return ck_ring_enqueue_mpmc_qm8(ck, run->ckbuf, (struct qb_m8 *)msg);
	case 64: return ck_ring_enqueue_mpmc_qm64(ck, run->ckbuf, (struct qb_m64 *)msg);
	case 1024: return ck_ring_enqueue_mpmc_qm1024(ck, run->ckbuf, (struct qb_m1024 *)msg);
	default: return ck_ring_enqueue_mpmc_qm4096(ck, run->ckbuf, (struct qb_m4096 *)msg);
	}
}

static bool qb_ck_get(struct qb_run *run, void *buf)
{
	struct ck_ring *ck = &run->sh->ck;

	switch (run->size) {
	case 8: return ck_ring_dequeue_mpmc_qm8(ck, run->ckbuf, buf);
	case 64: return ck_ring_dequeue_mpmc_qm64(ck, run->ckbuf, buf);
	case 1024: return ck_ring_dequeue_mpmc_qm1024(ck, run->ckbuf, buf);
	default: return ck_ring_dequeue_mpmc_qm4096(ck, run->ckbuf, buf);
	}
}
#endif

static inline uint64_t *qb_vy_seq(const struct qb_run *run, uint64_t pos)
{
	return (uint64_t *)(run->vybuf + (pos & (run->depth - 1)) * run->vy_slot);
}

/*
 * Claim the next position of index (the tail for a put, the head for a get):
 * its slot's sequence must read pos + lap, 0 for a put (emptied for this lap)
 * and 1 for a get (written in it).  The slot's sequence word, pos in *posp;
 * NULL when full (put) or empty (get).
 */
static inline uint64_t *qb_vy_claim(struct qb_run *run, uint64_t *index, uint64_t lap,
				    uint64_t *posp)
{
	/* relaxed: a guess, checked against the slot's sequence and by the CAS */
	uint64_t pos = shmq__load_relaxed(index), *seq;

	for (;;) {
		seq = qb_vy_seq(run, pos);
		/* pairs with the other side's store_release in qb_vy_put /
		 * qb_vy_get: the slot was emptied (put) or written (get) */
		int64_t d = (int64_t)(shmq__load_acquire(seq) - (pos + lap));

		if (d < 0)
			return NULL;
		/* relaxed: the slot's sequence above ordered what we touch */
		if (d == 0 && shmq__cas_relaxed(index, &pos, pos + 1))
			break;
		if (d > 0) /* relaxed: as above */
			pos = shmq__load_relaxed(index);
	}
	*posp = pos;
	return seq;
}

static bool qb_vy_put(struct qb_run *run, const void *msg)
{
	uint64_t pos, *seq = qb_vy_claim(run, &run->sh->vy.tail, 0, &pos);

	if (!seq)
		return false; /* full */
	memcpy(seq + 1, msg, run->size);
	/* pairs with qb_vy_claim's load_acquire in a get: the message is written */
	shmq__store_release(seq, pos + 1);
	return true;
}

static bool qb_vy_get(struct qb_run *run, void *buf)
{
	uint64_t pos, *seq = qb_vy_claim(run, &run->sh->vy.head, 1, &pos);

	if (!seq)
		return false; /* empty */
	memcpy(buf, seq + 1, run->size);
	/* pairs with qb_vy_claim's load_acquire in a put: the slot is free for lap + 1 */
	shmq__store_release(seq, pos + run->depth);
	return true;
}

/* One message; 0 or -errno. */
static int qb_put(struct qb_end *e, const void *msg)
{
	struct qb_run *run = e->run;
	uint32_t tries = 0;
	int rc;

	switch (run->kind) {
	case QK_BUSY:
		while ((rc = shmq_queue_put(e->q, msg, run->size, SHMQ_NOWAIT)) == -EAGAIN)
			qb_backoff(&tries, 1);
		return rc;
	case QK_BLOCK:
		return shmq_queue_put(e->q, msg, run->size, SHMQ_FOREVER);
	case QK_MQ:
		while (mq_send(e->mq, msg, run->size, 0))
			if (errno != EINTR)
				return -errno;
		return 0;
	case QK_SEQPACKET:
		while (send(e->fd, msg, run->size, 0) < 0)
			if (errno != EINTR)
				return -errno;
		return 0;
	case QK_VY:
		while (!qb_vy_put(run, msg))
			qb_backoff(&tries, 1);
		return 0;
	case QK_CK:
#ifdef HAVE_CK
		while (!qb_ck_put(run, msg))
			qb_backoff(&tries, 1);
		return 0;
#endif
	default:
		return -EINVAL;
	}
}

/* One message into buf (QB_MAXMSG bytes); its length or -errno. */
static ssize_t qb_get(struct qb_end *e, void *buf)
{
	struct qb_run *run = e->run;
	uint32_t tries = 0;
	ssize_t n;

	switch (run->kind) {
	case QK_BUSY:
		while ((n = shmq_queue_get(e->q, buf, QB_MAXMSG, SHMQ_NOWAIT)) == -EAGAIN)
			qb_backoff(&tries, run->pace);
		return n;
	case QK_BLOCK:
		return shmq_queue_get(e->q, buf, QB_MAXMSG, SHMQ_FOREVER);
	case QK_MQ:
		while ((n = mq_receive(e->mq, buf, QB_MAXMSG, NULL)) < 0)
			if (errno != EINTR)
				return -errno;
		return n;
	case QK_SEQPACKET:
		while ((n = recv(e->fd, buf, QB_MAXMSG, 0)) < 0)
			if (errno != EINTR)
				return -errno;
		return n;
	case QK_VY:
		while (!qb_vy_get(run, buf))
			qb_backoff(&tries, run->pace);
		return (ssize_t)run->size;
	case QK_CK:
#ifdef HAVE_CK
		while (!qb_ck_get(run, buf))
			qb_backoff(&tries, run->pace);
		return (ssize_t)run->size;
#endif
	default:
		return -EINVAL;
	}
}

/* Messages in the ring now (an advisory snapshot); 0 where the transport
 * does not say. */
static uint64_t qb_len(struct qb_end *e)
{
	switch (e->run->kind) {
	case QK_BUSY:
	case QK_BLOCK:
		return shmq_queue_len(e->q);
#ifdef HAVE_CK
	case QK_CK:
		return ck_ring_size(&e->run->sh->ck);
#endif
	case QK_VY: /* relaxed, both: an advisory snapshot */
		return shmq__load_relaxed(&e->run->sh->vy.tail) -
		       shmq__load_relaxed(&e->run->sh->vy.head);
	default:
		return 0;
	}
}

/* ---------------------------------------------------------------- workers */

static void qb_wait_go(struct qb_shared *sh)
{
	shmq__fetch_add_seq_cst(&sh->ready, 1);
	/* pairs with the parent's store_release of go */
	while (!shmq__load_acquire(&sh->go))
		sched_yield();
}

/* A producer's messages rotate through QB_TX_BYTES of slots, a whole number
 * of lines apart, each stamped with its sequence number half a rotation
 * before it is put: stamped right before the put, the put's first wide load
 * of it waited for that 8-byte store to reach the cache, which store
 * forwarding cannot serve, behind every store the previous put made to
 * lines another core held (as in shmq-bench pipe, tput_tx). */
#define QB_TX_BYTES ((size_t)16 << 10)

static int qb_producer(struct qb_run *run, unsigned id)
{
	static uint64_t slot[QB_TX_BYTES / 8] SHMQ__ALIGNED(64);
	size_t stride = SHMQ__ALIGN_UP((size_t)run->size, (size_t)SHMQ__CACHELINE) / 8;
	size_t slots = QB_TX_BYTES / 8 / stride, ahead = slots / 2;
	struct qb_end e;
	int rc = qb_attach(run, &e, true);

	if (rc)
		return rc;
	_Static_assert(QB_TX_BYTES >= 4 * QB_MAXMSG, "at least 4 slots");
	memset(slot, 0, sizeof(slot));
	for (uint64_t seq = 0; seq < ahead; seq++)
		slot[seq * stride] = (uint64_t)id << 56 | seq;
	qb_wait_go(run->sh);
	/* relaxed: a flag polled once per message; nothing is published by it */
	for (uint64_t seq = 0; !shmq__load_relaxed(&run->sh->stop); seq++) {
		uint64_t *msg = slot + (seq % slots) * stride;

		slot[((seq + ahead) % slots) * stride] = (uint64_t)id << 56 | (seq + ahead);
		rc = qb_put(&e, msg);
		if (rc)
			return rc;
		if (run->bursty && seq % QB_BURST == QB_BURST - 1) {
			struct timespec ts = { 0, QB_PAUSE_NS };

			nanosleep(&ts, NULL);
		}
	}
	slot[0] = (uint64_t)id << 56 | QB_POISON; /* one per consumer: np == nc */
	return qb_put(&e, slot);
}

/* The queue-wide gap at a consumer's clock read t: the time since the
 * latest clock read of any consumer (its own previous one included). */
static int64_t qb_queue_gap(const struct qb_run *run, int64_t t, int64_t t_prev)
{
	int64_t latest = t_prev;

	for (unsigned i = 0; i < run->nc; i++) {
		/* relaxed: a statistic; a stale mark only makes the gap look longer */
		int64_t m = shmq__load_relaxed(&run->sh->w[i].mark);

		latest = m > latest ? m : latest;
	}
	return t - latest;
}

/* A consumer's clock read at t, its previous at t_prev: the gap between
 * them and the queue-wide gap, each kept if the largest so far. */
static void qb_note_gap(const struct qb_run *run, struct qb_worker *w, int64_t t, int64_t t_prev)
{
	int64_t qgap = qb_queue_gap(run, t, t_prev);

	if (t - t_prev > w->max_gap)
		w->max_gap = t - t_prev;
	if (qgap > w->max_qgap)
		w->max_qgap = qgap;
}

static int qb_consumer(struct qb_run *run, unsigned id)
{
	uint64_t buf[QB_MAXMSG / 8];
	int64_t last[QB_WORKERS];
	struct qb_worker *w = &run->sh->w[id];
	struct qb_end e;
	int64_t t_prev;
	uint64_t count = 0;
	int rc = qb_attach(run, &e, false);

	if (rc)
		return rc;
	for (unsigned i = 0; i < QB_WORKERS; i++)
		last[i] = -1;
	qb_wait_go(run->sh);
	t_prev = bench_now_ns();
	for (;;) {
		ssize_t n = qb_get(&e, buf);
		uint64_t p, seq;

		if (n < 8)
			return n < 0 ? (int)n : -EBADMSG;
		p = buf[0] >> 56;
		seq = buf[0] & QB_POISON;
		if (seq == QB_POISON)
			break;
		if (p >= QB_WORKERS || (int64_t)seq <= last[p])
			return -EPROTO; /* per-producer FIFO violated */
		last[p] = (int64_t)seq;
		if (++count % QB_STALL_EVERY == 0) {
			int64_t t = bench_now_ns();

			w->occ_sum += qb_len(&e);
			w->occ_n++;
			/* relaxed: only stalls while producers run count */
			if (!shmq__load_relaxed(&run->sh->stop))
				qb_note_gap(run, w, t, t_prev);
			shmq__store_relaxed(&w->mark, t); /* relaxed: read by qb_queue_gap */
			t_prev = t;
		}
	}
	/* The stretch from our last clock read to stop counts too: a consumer
	 * that took fewer than QB_STALL_EVERY messages in it, or none in the
	 * whole run, waited all of it (before, such a run reported no stall).
	 * acquire: pairs with the seq_cst store of stop in qb_start (t_stop) */
	if (shmq__load_acquire(&run->sh->stop) && run->sh->t_stop > t_prev)
		qb_note_gap(run, w, run->sh->t_stop, t_prev);
	w->t_end = bench_now_ns();
	w->count = count;
	return 0;
}

struct qb_child {
	struct qb_run *run;
	unsigned id;
	bool producer;
};

static int qb_child_main(void *arg, int side)
{
	struct qb_child *c = arg;

	(void)side;
	return c->producer ? qb_producer(c->run, c->id) : qb_consumer(c->run, c->id);
}

static pid_t qb_fork(struct qb_run *run, unsigned id, bool producer)
{
	struct qb_child c = { run, id, producer };
	pid_t pid = fork();

	if (pid != 0)
		return pid < 0 ? -errno : pid;
	bench_pin_side(run->b, producer ? 0 : 1);
	_exit(qb_child_main(&c, producer ? 0 : 1) == 0 ? 0 : 1);
}

/* ---------------------------------------------------------------- one run */

struct qb_result {
	double mmsg_s;
	double stall_ms;
	double qstall_ms;    /* queue-wide (see stall in the header) */
	double occupancy;    /* mean messages in the ring at the consumers' samples */
	uint64_t msgs;       /* messages the consumers took */
	uint64_t waits[2];   /* shmq kinds: futex waits of getters, putters */
	uint64_t wakes[2];   /* and the wake calls issued for them */
};

static void qb_start(struct qb_run *run)
{
	struct timespec ts = { run->duration_ns / 1000000000, run->duration_ns % 1000000000 };

	while (shmq__load_seq_cst(&run->sh->ready) < run->np + run->nc)
		usleep(200);
	run->sh->t_start = bench_now_ns(); /* published by the release of go */
	shmq__store_release(&run->sh->go, 1u); /* pairs with qb_wait_go's acquire */
	nanosleep(&ts, NULL);
	run->sh->t_stop = bench_now_ns(); /* published by the store of stop */
	shmq__store_seq_cst(&run->sh->stop, 1u);
}

static int qb_collect(struct qb_run *run, struct qb_result *res)
{
	uint64_t total = 0, occ_sum = 0, occ_n = 0;
	int64_t end = 0, gap = 0, qgap = 0;

	for (unsigned i = 0; i < run->nc; i++) {
		const struct qb_worker *w = &run->sh->w[i];

		total += w->count;
		occ_sum += w->occ_sum;
		occ_n += w->occ_n;
		end = w->t_end > end ? w->t_end : end;
		gap = w->max_gap > gap ? w->max_gap : gap;
		qgap = w->max_qgap > qgap ? w->max_qgap : qgap;
	}
	if (end <= run->sh->t_start)
		return -EPROTO;
	res->mmsg_s = (double)total / (double)(end - run->sh->t_start) * 1e3;
	res->stall_ms = (double)gap / 1e6;
	res->qstall_ms = (double)qgap / 1e6;
	res->msgs = total;
	res->occupancy = occ_n ? (double)occ_sum / (double)occ_n : 0;
	memset(res->waits, 0, sizeof(res->waits));
	memset(res->wakes, 0, sizeof(res->wakes));
	if (run->r) {
		const struct shmq__mpmc_shared *q;
		uint64_t size;
		void *mem;

		if (shmq__obj_find(run->r, "bench", SHMQ__OBJ_QUEUE, &mem, &size) ||
		    size < sizeof(*q))
			return -EBADMSG;
		q = mem;
		/* relaxed: statistics read after every worker was reaped */
		res->waits[0] = shmq__load_relaxed(&q->get_waits);
		res->waits[1] = shmq__load_relaxed(&q->put_waits); /* relaxed: as above */
		res->wakes[0] = shmq__load_relaxed(&q->get_wakes); /* relaxed: as above */
		res->wakes[1] = shmq__load_relaxed(&q->put_wakes); /* relaxed: as above */
	}
	return 0;
}

/* One measurement: run's kind, workers, size, depth, max_msg and duration
 * set by the caller; the rest is filled here. */
static int qb_measure_ring(struct qb_run *proto, struct qb_result *res)
{
	struct qb_run run = *proto;
	struct bench *b = run.b;
	struct qb_shared *sh = run.sh;
	enum qb_kind kind = run.kind;
	unsigned n = run.np;
	size_t size = run.size;
	pid_t pids[2 * QB_WORKERS];
	unsigned started = 0;
	int rc, err = 0;

	memset(sh, 0, sizeof(*sh));
	rc = qb_setup(&run);
	if (rc)
		return rc;
	for (unsigned i = 0; i < 2 * n && err == 0; i++) {
		pid_t pid = qb_fork(&run, i % n, i < n);

		if (pid < 0)
			err = (int)pid;
		else
			pids[started++] = pid;
	}
	if (err == 0)
		qb_start(&run);
	for (unsigned i = 0; i < started; i++) {
		if (err)
			kill(pids[i], SIGKILL);
		rc = bench_proc_wait(pids[i], QB_DEADLINE_NS);
		err = err ? err : rc;
	}
	if (err == 0)
		err = qb_collect(&run, res);
	if (kind == QK_MQ && run.mq_depth != QB_DEPTH && bench_run_index(b) == 0 && size == 64 && n == 1)
		bench_note(b, "POSIX mq limited to %ld messages deep", run.mq_depth);
	qb_teardown(&run);
	return err;
}

static int qb_measure_run(struct bench *b, struct qb_shared *sh, enum qb_kind kind, unsigned n,
			  size_t size, bool bursty, struct qb_result *res)
{
	struct qb_run run = { .b = b, .kind = kind, .np = n, .nc = n, .size = size, .sh = sh,
			      .depth = QB_DEPTH, .max_msg = (uint32_t)size,
			      .duration_ns = (int64_t)bench_scale(b, 300, 60) * 1000000,
			      .bursty = bursty };

	return qb_measure_ring(&run, res);
}

static int qb_measure(struct bench *b, struct qb_shared *sh, enum qb_kind kind, unsigned n,
		      size_t size, struct qb_result *res)
{
	return qb_measure_run(b, sh, kind, n, size, false, res);
}

/* ---------------------------------------------------------------- reporting */

/* All kinds at one configuration; a baseline that cannot run is reported
 * as missing (NaN), never as zero. */
static int qb_config(struct bench *b, struct qb_shared *sh, unsigned n, size_t size,
		     struct qb_result out[QK_COUNT])
{
	for (int k = 0; k < QK_COUNT; k++) {
		int rc;

		if (k == QK_VY) { /* the sweep's only */
			out[k].mmsg_s = out[k].stall_ms = out[k].qstall_ms = -1;
			continue;
		}
		rc = qb_measure(b, sh, (enum qb_kind)k, n, size, &out[k]);
		if (rc && (k == QK_BUSY || k == QK_BLOCK))
			return rc;
		if (rc) {
			if (bench_run_index(b) == 0)
				bench_note(b, "%s %up%uc %zuB: %s", qb_kind_name[k], n, n, size,
					   strerror(-rc));
			out[k].mmsg_s = out[k].stall_ms = out[k].qstall_ms = -1;
		}
	}
	return 0;
}

static int qb_report_pair(struct bench *b, const char *series, size_t size, double shmq,
			  const struct qb_result *base, enum qb_kind k)
{
	if (base->mmsg_s < 0)
		return bench_report_sized(b, series, size, "Mmsg/s", shmq, NULL, 0, true);
	return bench_report_sized(b, series, size, "Mmsg/s", shmq, qb_kind_name[k], base->mmsg_s,
				  true);
}

/* One kind of stall ("" per consumer, "queue-wide "), busy beside ck_ring
 * when it ran (ck < 0: it did not), and blocking. */
static int qb_report_stall(struct bench *b, const char *kind, unsigned n, double busy,
			   double block, double ck)
{
	char series[96];
	int rc;

	snprintf(series, sizeof(series), "queue max stall %sbusy %up%uc 64B", kind, n, n);
	rc = ck >= 0 ? bench_report(b, series, "ms", busy, "ck_ring MPMC", ck, false)
		     : bench_report(b, series, "ms", busy, NULL, 0, false);
	snprintf(series, sizeof(series), "queue max stall %sblocking %up%uc 64B", kind, n, n);
	return rc ? rc : bench_report(b, series, "ms", block, NULL, 0, false);
}

static int qb_report(struct bench *b, unsigned n, size_t size, const struct qb_result *r)
{
	char series[96];
	int rc;

	snprintf(series, sizeof(series), "queue busy %up%uc", n, n);
	rc = qb_report_pair(b, series, size, r[QK_BUSY].mmsg_s, &r[QK_CK], QK_CK);
	snprintf(series, sizeof(series), "queue blocking %up%uc vs mq", n, n);
	rc = rc ? rc : qb_report_pair(b, series, size, r[QK_BLOCK].mmsg_s, &r[QK_MQ], QK_MQ);
	snprintf(series, sizeof(series), "queue blocking %up%uc vs seqpacket", n, n);
	rc = rc ? rc : qb_report_pair(b, series, size, r[QK_BLOCK].mmsg_s, &r[QK_SEQPACKET],
				      QK_SEQPACKET);
	if (rc || size != 64)
		return rc;
	rc = qb_report_stall(b, "", n, r[QK_BUSY].stall_ms, r[QK_BLOCK].stall_ms,
			     r[QK_CK].stall_ms);
	if (rc || n == 1) /* one consumer: the same figure */
		return rc;
	return qb_report_stall(b, "queue-wide ", n, r[QK_BUSY].qstall_ms, r[QK_BLOCK].qstall_ms,
			       r[QK_CK].qstall_ms);
}

static int qb_report_scaling(struct bench *b, unsigned n, const struct qb_result *r,
			     const struct qb_result *one)
{
	char name[96];
	int rc;

	snprintf(name, sizeof(name), "queue busy %up%uc / 1p1c 64B", n, n);
	rc = bench_report(b, name, "x", r[QK_BUSY].mmsg_s / one[QK_BUSY].mmsg_s, NULL, 0, true);
	snprintf(name, sizeof(name), "queue blocking %up%uc / 1p1c 64B", n, n);
	return rc ? rc : bench_report(b, name, "x", r[QK_BLOCK].mmsg_s / one[QK_BLOCK].mmsg_s,
				      NULL, 0, true);
}

/* Wake system calls of blocking 1p1c 64 B (r: the streaming run already
 * measured), and of a bursty producer: per 1000 messages and per sleep, for
 * getters and putters (a side that never slept reports 0 per sleep). */
static int qb_report_wakes(struct bench *b, struct qb_shared *sh, const struct qb_result *stream)
{
	static const char *const side[2] = { "getter", "putter" };
	struct qb_result burst;
	int rc = qb_measure_run(b, sh, QK_BLOCK, 1, 64, true, &burst);

	for (int m = 0; m < 2 && rc == 0; m++) {
		const struct qb_result *r = m ? &burst : stream;

		for (int i = 0; i < 2 && rc == 0; i++) {
			char name[96];
			double per_k = r->msgs ? (double)r->wakes[i] * 1000.0 / (double)r->msgs : 0;
			double per_sleep = r->waits[i] ? (double)r->wakes[i] / (double)r->waits[i] : 0;

			snprintf(name, sizeof(name), "queue %s wakes / 1000 msgs, %s 1p1c 64B",
				 side[i], m ? "bursty" : "streaming");
			rc = bench_report(b, name, "wakes", per_k, NULL, 0, false);
			snprintf(name, sizeof(name), "queue %s wakes / sleep, %s 1p1c 64B", side[i],
				 m ? "bursty" : "streaming");
			rc = rc ? rc : bench_report(b, name, "wakes", per_sleep, NULL, 0, false);
		}
	}
	return rc;
}

/* ------------------------------------------------------------ sweep */

/* One ring size: shmq busy, ck_ring MPMC, shmq blocking and Vyukov's MPMC
 * (QK_VY), 1p1c 64 B, in alternation, BENCH_SWEEP_REPS times.  The queue
 * gets max_msg 64: its smallest slot for the message, as ck_ring gets
 * 64-byte entries. */
static int qb_sweep_point(struct bench *b, struct qb_shared *sh, uint32_t depth)
{
	static const enum qb_kind kinds[4] = { QK_BUSY, QK_CK, QK_BLOCK, QK_VY };
	struct qb_run run = { .b = b, .np = 1, .nc = 1, .size = 64, .sh = sh, .depth = depth,
			      .max_msg = 64,
			      .duration_ns = (int64_t)bench_scale(b, 150, 30) * 1000000 };
	double v[4][BENCH_SWEEP_REPS], occ[4] = { 0, 0, 0, 0 }, rb[BENCH_SWEEP_REPS],
		rk[BENCH_SWEEP_REPS], rv[BENCH_SWEEP_REPS], rvk[BENCH_SWEEP_REPS];
	struct bench_spread sv[4], sb, sk, sr, srk;
	char name[96];
	int rc = 0;

	for (int i = 0; i < BENCH_SWEEP_REPS && rc == 0; i++) {
		for (int k = 0; k < 4 && rc == 0; k++) {
			struct qb_result res;

			run.kind = kinds[k];
			rc = qb_measure_ring(&run, &res);
			if (rc && kinds[k] == QK_CK) { /* no ck_ring: no ratio */
				v[k][i] = NAN;
				rc = 0;
				continue;
			}
			v[k][i] = res.mmsg_s;
			occ[k] += res.occupancy * 100.0 / BENCH_SWEEP_REPS /
				  (kinds[k] == QK_CK ? depth - 1 : depth); /* ck holds one less */
		}
		rb[i] = v[0][i] / v[1][i];
		rk[i] = v[2][i] / v[1][i];
		rv[i] = v[0][i] / v[3][i];
		rvk[i] = v[3][i] / v[1][i];
	}
	if (rc)
		return rc;
	for (int k = 0; k < 4; k++)
		sv[k] = bench_spread(v[k], BENCH_SWEEP_REPS);
	sb = bench_spread(rb, BENCH_SWEEP_REPS);
	sk = bench_spread(rk, BENCH_SWEEP_REPS);
	sr = bench_spread(rv, BENCH_SWEEP_REPS);
	srk = bench_spread(rvk, BENCH_SWEEP_REPS);
	if (isfinite(sb.median))
		bench_note(b, "sweep ring %u msgs 1p1c 64B: busy/ck %.2fx (spread %.2f-%.2f), "
			   "blocking/ck %.2fx (spread %.2f-%.2f), Vyukov/ck %.2fx (spread "
			   "%.2f-%.2f), mean occupancy shmq busy %.0f%% blocking %.0f%% ck %.0f%%",
			   depth, sb.median, sb.lo, sb.hi, sk.median, sk.lo, sk.hi, srk.median,
			   srk.lo, srk.hi, occ[0], occ[2], occ[1]);
	bench_note(b, "sweep ring %u msgs 1p1c 64B: busy/Vyukov %.2fx (spread %.2f-%.2f)", depth,
		   sr.median, sr.lo, sr.hi);
	snprintf(name, sizeof(name), "queue busy 1p1c 64B, ring %u msgs", depth);
	rc = isfinite(sv[1].median)
		     ? bench_report(b, name, "Mmsg/s", sv[0].median, qb_kind_name[QK_CK],
				    sv[1].median, true)
		     : bench_report(b, name, "Mmsg/s", sv[0].median, NULL, 0, true);
	snprintf(name, sizeof(name), "queue blocking 1p1c 64B, ring %u msgs", depth);
	if (rc == 0)
		rc = isfinite(sv[1].median)
			     ? bench_report(b, name, "Mmsg/s", sv[2].median, qb_kind_name[QK_CK],
					    sv[1].median, true)
			     : bench_report(b, name, "Mmsg/s", sv[2].median, NULL, 0, true);
	snprintf(name, sizeof(name), "queue busy 1p1c 64B vs Vyukov, ring %u msgs", depth);
	if (rc == 0)
		rc = bench_report(b, name, "Mmsg/s", sv[0].median, qb_kind_name[QK_VY],
				  sv[3].median, true);
	snprintf(name, sizeof(name), "Vyukov MPMC 1p1c 64B, ring %u msgs", depth);
	if (rc == 0 && isfinite(sv[1].median))
		rc = bench_report(b, name, "Mmsg/s", sv[3].median, qb_kind_name[QK_CK],
				  sv[1].median, true);
	return rc;
}

/* The ring-size sweep (issue 15's sizes; the ends only without --quick).
 * Ring sizes after "--" (`-- sweep 1024 16384`) measure only those. */
static int qb_sweep(struct bench *b, struct qb_shared *sh)
{
	static const uint32_t full[] = { 64, 256, 1024, 4096, 16384, 65536 };
	static const uint32_t quick[] = { 256, 1024, 4096, 16384 };
	unsigned long chosen[16];
	bool q = bench_quick(b);
	size_t n = q ? SHMQ__ARRAY_SIZE(quick) : SHMQ__ARRAY_SIZE(full);
	int k = bench_arg_rings(b, chosen, SHMQ__ARRAY_SIZE(chosen)), rc = 0;

	if (k < 0)
		return k;
	for (int i = 0; i < k && rc == 0; i++)
		rc = qb_sweep_point(b, sh, (uint32_t)chosen[i]);
	for (size_t i = 0; i < n && rc == 0 && !k; i++)
		rc = qb_sweep_point(b, sh, q ? quick[i] : full[i]);
	return rc;
}

/* ------------------------------------------------------------ pacing */

/*
 * Pacing: the consumer's pace decides how a 1p1c ring of large messages
 * runs.  A consumer that polls again after one pause keeps up, reads each
 * slot right behind the producer and takes its lines away while they are
 * written; one that waits QB_PACE pauses after an empty poll lets the
 * producer run ahead.  At 1 KiB and 4 KiB, shmq busy beside ck_ring MPMC,
 * both consumers paced alike, at one pause and at QB_PACE pauses per empty
 * poll, each measured BENCH_SWEEP_REPS times in alternation; the figures
 * are the medians, the ratios' spread and the mean occupancies go to
 * stderr.  Only with `-- pacing`.
 */
#define QB_PACE 64u

static int qb_pacing_size(struct bench *b, struct qb_shared *sh, size_t size)
{
	static const enum qb_kind kinds[2] = { QK_BUSY, QK_CK };
	static const uint32_t paces[2] = { 1, QB_PACE };
	struct qb_run run = { .b = b, .np = 1, .nc = 1, .size = size, .sh = sh,
			      .depth = QB_DEPTH, .max_msg = (uint32_t)size,
			      .duration_ns = (int64_t)bench_scale(b, 150, 30) * 1000000 };
	double v[2][2][BENCH_SWEEP_REPS], occ[2][2] = { { 0, 0 }, { 0, 0 } };
	int rc = 0;

	for (int i = 0; i < BENCH_SWEEP_REPS && rc == 0; i++) {
		for (int p = 0; p < 2 && rc == 0; p++) {
			for (int k = 0; k < 2 && rc == 0; k++) {
				struct qb_result res = { .mmsg_s = 0 };

				run.kind = kinds[k];
				run.pace = paces[p];
				rc = qb_measure_ring(&run, &res);
				v[p][k][i] = res.mmsg_s;
				occ[p][k] += res.occupancy / BENCH_SWEEP_REPS;
			}
		}
	}
	for (int p = 0; p < 2 && rc == 0; p++) {
		struct bench_spread sr;
		char series[96];

		snprintf(series, sizeof(series), "queue busy 1p1c, consumer %u pause%s per empty poll",
			 paces[p], paces[p] == 1 ? "" : "s");
		rc = bench_report_reps(b, series, size, "Mmsg/s", v[p][0], qb_kind_name[QK_CK],
				       v[p][1], true, &sr);
		bench_note(b, "pacing %zuB, %u pause(s): shmq/ck %.2fx (spread %.2f-%.2f), mean "
			   "occupancy shmq %.0f ck %.0f of %u", size, paces[p], sr.median, sr.lo,
			   sr.hi, occ[p][0], occ[p][1], QB_DEPTH);
	}
	return rc;
}

static int qb_pacing(struct bench *b, struct qb_shared *sh)
{
#ifdef HAVE_CK
	int rc = qb_pacing_size(b, sh, 1024);

	return rc ? rc : qb_pacing_size(b, sh, 4096);
#else
	(void)sh;
	bench_note(b, "pacing: built without ck_ring, nothing to compare");
	return 0;
#endif
}

/* ------------------------------------------------------------ two-phase */

#define QB_TP_BLOCK 1024u /* messages per timed block: the queue's capacity */

/* Fill the queue (untimed), then take every message: ns of the taking,
 * by get (two false) or get_begin + get_commit (two true), 64 bytes,
 * SHMQ_NOWAIT.  Only the consumer's side is timed. */
static int qb_tp_block(shmq_queue *q, bool two, int64_t *ns)
{
	uint64_t msg[8] = { 0 }, buf[8];
	int64_t t0;

	for (uint32_t i = 0; i < QB_TP_BLOCK; i++) {
		msg[0] = i;
		if (shmq_queue_put(q, msg, sizeof(msg), SHMQ_NOWAIT))
			return -EIO;
	}
	t0 = bench_now_ns();
	for (uint32_t i = 0; i < QB_TP_BLOCK; i++) {
		const void *in;
		uint64_t pos;
		ssize_t n;

		if (two) {
			n = shmq_queue_get_begin(q, &in, &pos, SHMQ_NOWAIT);
			if (n != (ssize_t)sizeof(msg) || *(const uint64_t *)in != i ||
			    shmq_queue_get_commit(q, pos))
				return -EPROTO;
		} else {
			n = shmq_queue_get(q, buf, sizeof(buf), SHMQ_NOWAIT);
			if (n != (ssize_t)sizeof(msg) || buf[0] != i)
				return -EPROTO;
		}
	}
	*ns += bench_now_ns() - t0;
	return 0;
}

static int qb_tp_get(void *q, int64_t *ns)
{
	return qb_tp_block(q, false, ns);
}

static int qb_tp_two(void *q, int64_t *ns)
{
	return qb_tp_block(q, true, ns);
}

static int qb_twophase_bench(struct bench *b)
{
	struct shmq_region_opts o = { .size = (size_t)4 << 20 };
	struct shmq_queue_opts qo = { .capacity = 1024, .max_msg = 64 };
	uint64_t blocks = bench_scale(b, 1000, 100);
	int64_t ns[2] = { 0, 0 };
	char region[64];
	shmq_region *r;
	shmq_queue *q;
	int rc;

	snprintf(region, sizeof(region), "/shmq-bench-qtp-%d", (int)getpid());
	rc = shmq_region_create(region, &o, &r);
	if (rc)
		return rc;
	shmq_region_unlink(region);
	rc = shmq_queue_create(r, "tp", &qo, &q);
	rc = rc ? rc : bench_alternate((int)blocks, qb_tp_get, q, qb_tp_two, q, ns);
	if (rc == 0)
		shmq_queue_close(q);
	shmq_region_close(r);
	if (rc)
		return rc;
	return bench_report(b, "queue two-phase 1 process 64B get_begin+commit vs get", "ns/msg",
			    (double)ns[1] / (double)(blocks * QB_TP_BLOCK), "get",
			    (double)ns[0] / (double)(blocks * QB_TP_BLOCK), false);
}

/* ---------------------------------------------------------- one process */

struct qb_cpu {
	uint64_t blocks;
	shmq_queue *q;
#ifdef HAVE_CK
	struct ck_ring ck;
	struct qb_m64 *ring;
#endif
};

static SHMQ__ALWAYS_INLINE bool qb_cpu_put(struct qb_cpu *c, struct qb_m64 *m)
{
	return shmq_queue_put(c->q, m, sizeof(*m), SHMQ_NOWAIT) == 0;
}

static SHMQ__ALWAYS_INLINE bool qb_cpu_get(struct qb_cpu *c, struct qb_m64 *m)
{
	return shmq_queue_get(c->q, m, sizeof(*m), SHMQ_NOWAIT) == (ssize_t)sizeof(*m);
}

static int qb_cpu_shmq(void *arg, int64_t *ns)
{
	struct qb_cpu *c = arg;

	return BENCH_PAIR_BLOCK(struct qb_m64, c->blocks, ns, qb_cpu_put, qb_cpu_get, c);
}

#ifdef HAVE_CK
static SHMQ__ALWAYS_INLINE bool qb_cpu_ck_put(struct qb_cpu *c, struct qb_m64 *m)
{
	return ck_ring_enqueue_mpmc_qm64(&c->ck, c->ring, m);
}

static SHMQ__ALWAYS_INLINE bool qb_cpu_ck_get(struct qb_cpu *c, struct qb_m64 *m)
{
	return ck_ring_dequeue_mpmc_qm64(&c->ck, c->ring, m);
}

static int qb_cpu_ck(void *arg, int64_t *ns)
{
	struct qb_cpu *c = arg;

	return BENCH_PAIR_BLOCK(struct qb_m64, c->blocks, ns, qb_cpu_ck_put, qb_cpu_ck_get, c);
}
#endif

/* The queue's put + get in one process (1024 slots of 64 bytes) beside
 * ck_ring MPMC's enqueue + dequeue (1024 entries of 64 bytes), 8 rounds of
 * each alternated: a figure of this machine's core alone (see the top). */
static int qb_cpu_bench(struct bench *b)
{
	struct shmq_region_opts o = { .size = (size_t)4 << 20 };
	struct shmq_queue_opts qo = { .capacity = 1024, .max_msg = sizeof(struct qb_m64) };
	struct qb_cpu c = { .blocks = bench_scale(b, 8192, 1024) };
	double pairs = 8.0 * (double)c.blocks * BENCH_PAIR_BATCH;
	bench_block_fn ck = NULL;
	int64_t ns[2] = { 0, 0 };
	char region[64];
	shmq_region *r;
	int rc;

#ifdef HAVE_CK
	c.ring = calloc(1024, sizeof(*c.ring));
	if (!c.ring)
		return -ENOMEM;
	ck_ring_init(&c.ck, 1024);
	ck = qb_cpu_ck;
#endif
	snprintf(region, sizeof(region), "/shmq-bench-qcpu-%d", (int)getpid());
	rc = shmq_region_create(region, &o, &r);
	if (rc == 0) {
		shmq_region_unlink(region);
		rc = shmq_queue_create(r, "cpu", &qo, &c.q);
		rc = rc ? rc : bench_alternate(8, qb_cpu_shmq, &c, ck, &c, ns);
		if (c.q)
			shmq_queue_close(c.q);
		shmq_region_close(r);
	}
#ifdef HAVE_CK
	free(c.ring);
#endif
	if (rc)
		return rc;
	return bench_report(b, "queue 1 process 64B put+get pair", "ns", (double)ns[0] / pairs,
			    ck ? qb_kind_name[QK_CK] : NULL, (double)ns[1] / pairs, false);
}

/* ---------------------------------------------------------------- large */

/*
 * Large messages (issue 16): 64 KiB messages, one producer and one consumer
 * process, through shmq_queue_put / shmq_queue_get_alloc (the bytes go
 * through the queue's heap: a copy in, a copy out into a malloc'd buffer)
 * beside pipe(2) carrying the same bytes (write / read of 64 KiB, looped
 * until whole; the pipe's buffer raised to 1 MiB where the system allows,
 * as the queue holds 64 messages in its heap).  Both sides check each
 * message's first word.  Throughput in MB/s over the same message count,
 * timed from the moment both sides are set up (region open, pinned) to the
 * consumer's last message: setup is no part of carrying bytes, for either.
 */
#define QB_LARGE (64u << 10)
#define QB_PIPE_BUF (1 << 20)

/* The two sides' start line and the consumer's finish, in shared memory. */
struct qb_large_sync {
	uint32_t ready;  /* sides set up */
	uint32_t pad;
	int64_t t_start; /* when the last side got ready */
	int64_t t_end;   /* the consumer's last message */
};

/* Count this side ready and wait (bounded) for the other one. */
static int qb_large_start(struct qb_large_sync *sy)
{
	int64_t until = bench_now_ns() + QB_DEADLINE_NS;

	/* seq_cst: the start line; the last side in stamps t_start */
	if (shmq__fetch_add_seq_cst(&sy->ready, 1) == 1)
		shmq__store_seq_cst(&sy->t_start, bench_now_ns());
	while (shmq__load_seq_cst(&sy->t_start) == 0) /* seq_cst: the store above */
		if (bench_now_ns() > until)
			return -ETIMEDOUT;
		else
			sched_yield();
	return 0;
}

static int qb_large_put(const char *region, uint64_t n, struct qb_large_sync *sy)
{
	uint64_t *msg = calloc(1, QB_LARGE);
	shmq_region *r;
	shmq_queue *q;
	int rc;

	if (!msg)
		return -ENOMEM;
	rc = shmq_region_open(region, &r);
	rc = rc ? rc : shmq_queue_open(r, "large", &q);
	rc = rc ? rc : qb_large_start(sy);
	for (uint64_t i = 0; i < n && rc == 0; i++) {
		msg[0] = i;
		rc = shmq_queue_put(q, msg, QB_LARGE, SHMQ_FOREVER);
	}
	free(msg);
	return rc;
}

static int qb_large_get(const char *region, uint64_t n, struct qb_large_sync *sy)
{
	shmq_region *r;
	shmq_queue *q;
	int rc = shmq_region_open(region, &r);

	rc = rc ? rc : shmq_queue_open(r, "large", &q);
	rc = rc ? rc : qb_large_start(sy);
	for (uint64_t i = 0; i < n && rc == 0; i++) {
		void *m = NULL;
		ssize_t len = shmq_queue_get_alloc(q, &m, SHMQ_FOREVER);

		if (len != QB_LARGE || *(uint64_t *)m != i)
			rc = len < 0 ? (int)len : -EPROTO;
		free(m);
	}
	/* seq_cst: read by the parent after waitpid */
	shmq__store_seq_cst(&sy->t_end, bench_now_ns());
	return rc;
}

static int qb_pipe_io(int fd, uint64_t n, bool put, struct qb_large_sync *sy)
{
	uint64_t *msg = calloc(1, QB_LARGE);
	int rc = msg ? 0 : -ENOMEM;

	rc = rc ? rc : qb_large_start(sy);
	for (uint64_t i = 0; i < n && rc == 0; i++) {
		size_t done = 0;

		msg[0] = i;
		while (done < QB_LARGE && rc == 0) {
			ssize_t k = put ? write(fd, (uint8_t *)msg + done, QB_LARGE - done)
					: read(fd, (uint8_t *)msg + done, QB_LARGE - done);

			if (k > 0)
				done += (size_t)k;
			else if (k == 0 || errno != EINTR)
				rc = k == 0 ? -EPIPE : -errno;
		}
		if (rc == 0 && !put && msg[0] != i)
			rc = -EPROTO;
	}
	if (!put) /* seq_cst: read by the parent after waitpid */
		shmq__store_seq_cst(&sy->t_end, bench_now_ns());
	free(msg);
	return rc;
}

/* MB/s of n messages through shmq (pipe false) or pipe(2). */
static int qb_large_run(struct bench *b, bool pipe_kind, uint64_t n, double *mb_s)
{
	struct qb_large_sync *sy = bench_shared_alloc(sizeof(*sy));
	char region[64];
	int fds[2] = { -1, -1 }, rc = 0;
	pid_t pid[2];

	if (!sy)
		return -ENOMEM;
	snprintf(region, sizeof(region), "/shmq-bench-qlarge-%d", (int)getpid());
	if (pipe_kind) {
		if (pipe(fds)) {
			bench_shared_free(sy, sizeof(*sy));
			return -errno;
		}
		/* a sensible buffer for 64 KiB writes; the default (64 KiB)
		 * where the system refuses it */
		(void)fcntl(fds[1], F_SETPIPE_SZ, QB_PIPE_BUF);
	} else {
		struct shmq_region_opts o = { .size = 64u << 20 };
		struct shmq_queue_opts qo = { .capacity = 64, .max_msg = 256 };
		shmq_region *r;
		shmq_queue *q;

		shmq_region_unlink(region);
		rc = shmq_region_create(region, &o, &r);
		if (rc)
			return rc;
		rc = shmq_queue_create(r, "large", &qo, &q);
		if (rc == 0)
			shmq_queue_close(q);
		shmq_region_close(r);
		if (rc) {
			bench_shared_free(sy, sizeof(*sy));
			return rc;
		}
	}
	for (int side = 0; side < 2; side++) {
		pid[side] = fork();
		if (pid[side] == 0) {
			bench_pin_side(b, side);
			if (pipe_kind) {
				close(fds[side == 0 ? 0 : 1]);
				_exit(qb_pipe_io(fds[side == 0 ? 1 : 0], n, side == 0, sy) ? 1 : 0);
			}
			_exit((side == 0 ? qb_large_put(region, n, sy) : qb_large_get(region, n, sy))
				      ? 1 : 0);
		}
	}
	if (pipe_kind) {
		close(fds[0]);
		close(fds[1]);
	}
	for (int side = 0; side < 2; side++) {
		int w = pid[side] < 0 ? -EAGAIN : bench_proc_wait(pid[side], QB_DEADLINE_NS);

		rc = rc ? rc : w;
	}
	if (rc == 0 && sy->t_end <= sy->t_start)
		rc = -EPROTO;
	if (rc == 0)
		*mb_s = (double)n * QB_LARGE / 1e6 / ((double)(sy->t_end - sy->t_start) / 1e9);
	if (!pipe_kind)
		shmq_region_unlink(region);
	bench_shared_free(sy, sizeof(*sy));
	return rc;
}

static int qb_large_bench(struct bench *b)
{
	uint64_t n = bench_scale(b, 20000, 2000);
	double shmq, base;
	int rc = qb_large_run(b, false, n, &shmq);

	rc = rc ? rc : qb_large_run(b, true, n, &base);
	if (rc)
		return rc;
	return bench_report_sized(b, "queue large 1p1c put/get_alloc vs pipe", QB_LARGE, "MB/s",
				  shmq, "pipe(2)", base, true);
}

int bench_queue(struct bench *b)
{
	static const size_t sizes[] = { 64, 8, 1024, 4096 };
	static const unsigned ns[] = { 2, 4 };
	struct qb_result one64[QK_COUNT] = { { .mmsg_s = 0 } }, r[QK_COUNT];
	struct qb_shared *sh = bench_shared_alloc(sizeof(*sh));
	/* "-- small": 1p1c at 64 bytes only (and 2p2c, 4p4c as always) */
	size_t nsizes = bench_has_arg(b, "small") ? 1 : SHMQ__ARRAY_SIZE(sizes);
	int rc = 0;

	if (!sh)
		return -ENOMEM;
	if (bench_has_arg(b, "large") || bench_has_arg(b, "twophase") || bench_has_arg(b, "sweep") ||
	    bench_has_arg(b, "pacing") || bench_has_arg(b, "cpu")) {
		if (bench_has_arg(b, "sweep"))
			rc = qb_sweep(b, sh);
		if (rc == 0 && bench_has_arg(b, "pacing"))
			rc = qb_pacing(b, sh);
		if (rc == 0 && bench_has_arg(b, "twophase"))
			rc = qb_twophase_bench(b);
		if (rc == 0 && bench_has_arg(b, "cpu"))
			rc = qb_cpu_bench(b);
		if (rc == 0 && bench_has_arg(b, "large"))
			rc = qb_large_bench(b);
		bench_shared_free(sh, sizeof(*sh));
		return rc;
	}
	if (bench_has_arg(b, "scaling")) /* 1p1c, 2p2c and 4p4c at 64 B only */
		nsizes = 1;
	for (size_t i = 0; i < nsizes && rc == 0; i++) {
		rc = qb_config(b, sh, 1, sizes[i], r);
		rc = rc ? rc : qb_report(b, 1, sizes[i], r);
		if (sizes[i] == 64)
			memcpy(one64, r, sizeof(r));
		if (rc == 0 && sizes[i] == 64 && !bench_has_arg(b, "scaling"))
			rc = qb_report_wakes(b, sh, &r[QK_BLOCK]);
	}
	for (size_t i = 0; i < SHMQ__ARRAY_SIZE(ns) && rc == 0; i++) {
		rc = qb_config(b, sh, ns[i], 64, r);
		rc = rc ? rc : qb_report(b, ns[i], 64, r);
		rc = rc ? rc : qb_report_scaling(b, ns[i], r, one64);
	}
	if (bench_has_arg(b, "scaling")) {
		bench_shared_free(sh, sizeof(*sh));
		return rc;
	}
	rc = rc ? rc : qb_sweep(b, sh);
	rc = rc ? rc : qb_twophase_bench(b);
	rc = rc ? rc : qb_cpu_bench(b);
	rc = rc ? rc : qb_large_bench(b);
	bench_shared_free(sh, sizeof(*sh));
	return rc;
}
