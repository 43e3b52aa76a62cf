/* SPDX-License-Identifier: MIT */
/*
 * shmq-bench limits: this machine's physical limits, which every other figure
 * is read against.
 *
 *  - cache-line round trip: two sides pinned to two cores bounce one 64-byte
 *    line: side 0 writes 2i+1 and waits for 2i+2, side 1 waits for 2i+1 and
 *    writes 2i+2.  Measured between two threads and between two processes
 *    (MAP_SHARED).  The headline figure is the median, over batches of
 *    LIMITS_BATCH round trips each timed as a whole, of the mean round trip
 *    in the batch: no clock read inside a batch, and a batch in which a side
 *    was descheduled (a shared, loaded machine) does not move the median.
 *    The latency histogram times each round trip (one clock read per round
 *    trip, ~20-30 ns, is included), and in the two-process case both
 *    processes fill their own histogram in shared memory, merged after.
 *  - memcpy bandwidth: bytes copied per second, buffers far larger than the
 *    last-level cache (DRAM bound) and buffers that fit in L2.
 *  - clock read: the cost of one bench_now_ns(), included once in every
 *    latency sample any subcommand records.
 *
 * These have no OS baseline: they ARE the baseline of everything else.
 */
#include "config.h"

#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/atomic_int.h"
#include "core/compiler_int.h"

#include "bench.h"

/* ---------------------------------------------------------------- ping-pong */

#define LIMITS_BATCH 1000u
#define LIMITS_BATCHES_MAX 1000u

struct limits_pp {
	uint64_t word;                          /* the one line the sides bounce */
	uint8_t pad0[SHMQ__CACHELINE - sizeof(uint64_t)];
	struct bench_hist hist[2] SHMQ__ALIGNED(SHMQ__CACHELINE); /* one per side */
	uint64_t warmup;                        /* untimed, unrecorded round trips */
	uint64_t batches;                       /* of LIMITS_BATCH round trips, headline */
	uint64_t timed;                         /* round trips timed one by one */
	double batch_ns[LIMITS_BATCHES_MAX];    /* side 0: mean round trip per batch */
	int pinned;
};
SHMQ__LINE_ALIGNED_FIELD(struct limits_pp, hist);

/* A peer silent this long is dead or stuck: a slow (loaded, sanitized) run
 * still makes progress well within it. */
#define LIMITS_STALL_NS 10000000000LL

/*
 * Wait until the line holds want.  Bounded: on a box where the peer may be
 * descheduled (or share our only CPU) yield every 256 polls, and give up
 * when this one wait has lasted LIMITS_STALL_NS.  The clock is read only once
 * a wait has spun 4096 times, so a fast round trip never pays for it.
 */
static int limits_wait(const uint64_t *word, uint64_t want, bool pinned)
{
	int64_t until = 0;

	for (uint32_t spins = 1;; spins++) {
		/* pairs with the peer's store_release of want in limits_pp_side */
		if (shmq__load_acquire(word) == want)
			return 0;
		if (!pinned || spins % 256 == 0)
			sched_yield();
		else
			shmq__cpu_relax();
		if (spins % 4096 == 0) {
			int64_t now = bench_now_ns();

			if (!until)
				until = now + LIMITS_STALL_NS;
			else if (now > until)
				return -ETIMEDOUT;
		}
	}
}

/* One phase of n round trips starting at sequence *seq; with h, time each. */
static int limits_pp_phase(struct limits_pp *pp, int side, uint64_t n, uint64_t *seq,
			   struct bench_hist *h)
{
	int64_t prev = h ? bench_now_ns() : 0;

	for (uint64_t i = 0; i < n; i++, *seq += 2) {
		/* side 0 answers even values with odd ones, side 1 odd with even */
		uint64_t mine = *seq + (uint64_t)side + 1, theirs = mine + 1;
		int err;

		if (side == 1 && (err = limits_wait(&pp->word, mine - 1, pp->pinned)))
			return err;
		/* publishes mine; pairs with the peer's load_acquire in limits_wait */
		shmq__store_release(&pp->word, mine);
		if (side == 0 && (err = limits_wait(&pp->word, theirs, pp->pinned)))
			return err;
		if (h) {
			int64_t now = bench_now_ns();
			/* side 1's first interval starts before the first ping: skip it */
			if (side == 0 || i > 0)
				bench_hist_record(h, (uint64_t)(now - prev));
			prev = now;
		}
	}
	return 0;
}

static int limits_pp_side(void *arg, int side)
{
	struct limits_pp *pp = arg;
	uint64_t seq = 0;
	int err = limits_pp_phase(pp, side, pp->warmup, &seq, NULL);

	for (uint64_t i = 0; i < pp->batches && !err; i++) {
		int64_t t0 = bench_now_ns();
		err = limits_pp_phase(pp, side, LIMITS_BATCH, &seq, NULL);
		if (side == 0)
			pp->batch_ns[i] = (double)(bench_now_ns() - t0) / LIMITS_BATCH;
	}
	if (!err)
		err = limits_pp_phase(pp, side, pp->timed, &seq, &pp->hist[side]);
	return err;
}

static void limits_pp_init(struct bench *b, struct limits_pp *pp)
{
	pp->word = 0;
	bench_hist_init(&pp->hist[0]);
	bench_hist_init(&pp->hist[1]);
	pp->warmup = bench_scale(b, 20000, 5000);
	pp->batches = bench_scale(b, 400, 40);
	pp->timed = bench_scale(b, 400000, 40000);
	pp->pinned = bench_pinned(b);
}

static int limits_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median of v[0..n) (sorts v). */
static double limits_median(double *v, uint64_t n)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), limits_cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int limits_pp_report(struct bench *b, struct limits_pp *pp, const char *what)
{
	char name[96];
	struct bench_hist *h = bench_hist_new();
	int err;

	if (!h)
		return -ENOMEM;
	bench_hist_merge(h, &pp->hist[0]);
	bench_hist_merge(h, &pp->hist[1]);
	snprintf(name, sizeof(name), "cache-line round trip, %s", what);
	err = bench_report(b, name, "ns", limits_median(pp->batch_ns, pp->batches), NULL, 0, false);
	snprintf(name, sizeof(name), "cache-line round trip, %s, each", what);
	if (!err)
		err = bench_report_latency(b, name, h, NULL, NULL);
	bench_hist_free(h);
	return err;
}

static int limits_pingpong(struct bench *b, bool procs)
{
	struct limits_pp *pp = bench_shared_alloc(sizeof(*pp));
	int err;

	if (!pp)
		return -ENOMEM;
	limits_pp_init(b, pp);
	err = procs ? bench_pair_procs(b, limits_pp_side, pp)
		    : bench_pair_threads(b, limits_pp_side, pp);
	if (!err)
		err = limits_pp_report(b, pp, procs ? "processes" : "threads");
	bench_shared_free(pp, sizeof(*pp));
	return err;
}

/* ---------------------------------------------------------------- memcpy */

/* Copy size bytes src -> dst repeatedly for at least min_ns (and 2 passes);
 * bytes copied per ns, i.e. GB/s. */
static double limits_copy_rate(uint8_t *dst, const uint8_t *src, size_t size, int64_t min_ns)
{
	uint64_t passes = 0;
	int64_t t0 = bench_now_ns(), t;

	memcpy(dst, src, size); /* warm the TLB and, for small sizes, the cache */
	do {
		memcpy(dst, src, size);
		/* keep the copy: dst is observed here */
		__asm__ __volatile__("" : : "r"(dst) : "memory");
		passes++;
		t = bench_now_ns();
	} while (passes < 2 || t - t0 < min_ns);
	return (double)(passes * size) / (double)(t - t0);
}

static int limits_memcpy(struct bench *b, size_t size, const char *name, int64_t min_ns)
{
	uint8_t *buf = mmap(NULL, 2 * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (buf == MAP_FAILED)
		return -ENOMEM;
	memset(buf, 0x5a, 2 * size); /* pre-fault both buffers */
	int err = bench_pin_side(b, 0);
	if (!err) {
		double rate = limits_copy_rate(buf + size, buf, size, min_ns);
		err = bench_report(b, name, "GB/s", rate, NULL, 0, true);
	}
	bench_unpin(b);
	munmap(buf, 2 * size);
	return err;
}

/* ---------------------------------------------------------------- clock */

static int limits_clock(struct bench *b)
{
	uint64_t n = bench_scale(b, 2000000, 200000);
	int64_t sink = 0, t0 = bench_now_ns();

	for (uint64_t i = 0; i < n; i++)
		sink ^= bench_now_ns();
	int64_t t = bench_now_ns() - t0;
	__asm__ __volatile__("" : : "r"(sink));
	return bench_report(b, "clock read (CLOCK_MONOTONIC)", "ns", (double)t / (double)n, NULL, 0,
			    false);
}

/* ---------------------------------------------------------------- subcommand */

int bench_limits(struct bench *b)
{
	int err = limits_pingpong(b, false);

	if (!err)
		err = limits_pingpong(b, true);
	if (!err)
		err = limits_memcpy(b, bench_scale(b, 128u << 20, 64u << 20),
				    "memcpy bandwidth, large buffers (DRAM)",
				    (int64_t)bench_scale(b, 400000000, 100000000));
	if (!err)
		err = limits_memcpy(b, 256u << 10, "memcpy bandwidth, 256 KiB (L2)",
				    (int64_t)bench_scale(b, 200000000, 50000000));
	if (!err)
		err = limits_clock(b);
	return err;
}
