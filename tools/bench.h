/* SPDX-License-Identifier: MIT */
/*
 * shmq-bench harness: what every subcommand of shmq-bench is built with.
 *
 * A subcommand measures one libshmq facility beside the operating system's
 * nearest equivalent, on the same work, in the same run, and reports both
 * figures; the harness repeats it, takes medians, prints the table (or JSON,
 * or an HTML report) and the ratio.
 *
 * ---------------------------------------------------------------------------
 * Adding a subcommand (for a module owner)
 * ---------------------------------------------------------------------------
 *  1. Write tools/bench_X.c with one function
 *
 *         int bench_X(struct bench *b);
 *
 *     It performs ONE run of every measurement of the subcommand and reports
 *     each with bench_report() / bench_report_sized() / bench_report_latency().
 *     Return 0, or a negative errno (the run is abandoned and the error shown).
 *     The harness calls it bench_runs(b) times (default 5, --runs N) and
 *     reports, per figure, the median over runs; do not loop over runs
 *     yourself.  Use bench_quick(b) / bench_scale() to size the work so that
 *     `shmq-bench all --quick` finishes in well under a minute.
 *
 *  2. Add ONE line to tools/bench_list.h, in your module's slot:
 *
 *         BENCH_SUBCOMMAND(X, "one-line description")
 *
 *  3. In Makefile.am, in the "---- tools ----" section, your module's slot:
 *
 *         tools_shmq_bench_SOURCES += tools/bench_X.c
 *
 * Two sides: bench_pair_threads() and bench_proc_start()/bench_proc_wait()
 * run the two ends of a measurement pinned to two distinct cores (the first
 * two CPUs of the affinity mask, or --cpus A,B); with a single usable CPU
 * both run unpinned and bench_pinned() says so.  Memory both processes see
 * comes from bench_shared_alloc() (MAP_SHARED | MAP_ANONYMOUS, made before
 * the fork) or from a libshmq region.
 *
 * Latency: fill a struct bench_hist (fixed size, no pointers, so it can live
 * in shared memory and be filled from another process) with
 * bench_hist_record(); merge per-side histograms with bench_hist_merge(); then
 * bench_report_latency() reports p50, p99, p99.9 and max.
 *
 * Ratio: for every figure reported with a baseline, the harness prints
 * "ratio" = how many times better libshmq is than the baseline: the median
 * of libshmq's figure over the runs divided by the baseline's median when
 * higher is better, the inverse otherwise, so that it agrees with the two
 * medians printed beside it.  > 1 means libshmq wins.  Both sides are
 * measured in every run, side by side; --json also gives each run's ratio.
 *
 * Concurrency contract: the bench_* reporting calls are made by the thread
 * that runs the subcommand only.  bench_hist_record() on one histogram from
 * one thread at a time (use one histogram per side, merge after).
 * bench_pin_side(), bench_now_ns(), bench_hist_* are safe from any thread or
 * forked process.
 */
#ifndef SHMQ_BENCH_H
#define SHMQ_BENCH_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct bench; /* the harness context: options, collected results */

/* ---- options a subcommand consults ---- */

/* Number of runs the harness makes of the subcommand (>= 1). */
int bench_runs(const struct bench *b);

/* Index of the current run, 0 .. bench_runs(b) - 1. */
int bench_run_index(const struct bench *b);

/* True with --quick: do roughly a tenth of the work. */
bool bench_quick(const struct bench *b);

/* full, or quick when --quick (convenience for iteration counts). */
uint64_t bench_scale(const struct bench *b, uint64_t full, uint64_t quick);

/* Arguments after the subcommand that the harness did not consume. */
int bench_argc(const struct bench *b);
char **bench_argv(const struct bench *b);
/* Was `what` one of them (`shmq-bench queue -- scaling`)? */
bool bench_has_arg(const struct bench *b, const char *what);
/* The ring sizes among them (`-- sweep 256 1024`: the numbers), at most max
 * into out: how many (0: none given), or -EINVAL for a number that is no
 * power of two in [2, 65536] (ck_ring's sizes, which the sweeps compare). */
int bench_arg_rings(const struct bench *b, unsigned long *out, size_t max);

/* Print a progress or diagnostic note on stderr (always; keep them rare). */
void bench_note(const struct bench *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* ---- clock ---- */

/* CLOCK_MONOTONIC in nanoseconds (vDSO: ~20 ns per call on TSC machines). */
int64_t bench_now_ns(void);

/* ---- cores ---- */

/* CPUs usable by this process (its affinity mask), >= 1. */
int bench_ncpus(void);

/* True when the two sides run on two distinct pinned cores. */
bool bench_pinned(const struct bench *b);

/* The core side (0 or 1) is pinned to, or -1 when pinning is off. */
int bench_side_cpu(const struct bench *b, int side);

/* Pin the calling thread (or process) to side's core.  0, or -errno; with a
 * single usable CPU this does nothing and returns 0. */
int bench_pin_side(const struct bench *b, int side);

/* Undo bench_pin_side(): the calling thread may run on every CPU again. */
void bench_unpin(const struct bench *b);

/* ---- two sides ---- */

/* Run fn(arg, 1) on a new thread pinned to side 1 and fn(arg, 0) on the
 * calling thread pinned to side 0; wait for both.  Returns the first nonzero
 * of side 0's, then side 1's result, or -errno if the thread failed to start. */
typedef int (*bench_side_fn)(void *arg, int side);
int bench_pair_threads(const struct bench *b, bench_side_fn fn, void *arg);

/* Fork a child pinned to side 1 that runs fn(arg, 1) and exits with its
 * result (0 -> 0, negative errno -> 1 .. 255).  Returns the child's pid or
 * -errno.  Call it before the subcommand starts any thread. */
pid_t bench_proc_start(const struct bench *b, bench_side_fn fn, void *arg);

/* Wait for a child from bench_proc_start: 0 when it exited 0, -EPROTO for any
 * other exit or a signal, -ETIMEDOUT (child killed) after timeout_ns. */
int bench_proc_wait(pid_t pid, int64_t timeout_ns);

/* Like bench_pair_threads, with side 1 in a forked process. */
int bench_pair_procs(const struct bench *b, bench_side_fn fn, void *arg);

/* Shared anonymous memory (MAP_SHARED), zeroed, page aligned, pre-faulted;
 * visible to children forked afterwards.  NULL on failure. */
void *bench_shared_alloc(size_t size);
void bench_shared_free(void *p, size_t size);

/* ---- latency histogram ---- */

/*
 * Log-linear histogram of nanosecond values: exact below 2^BENCH_HIST_SUB_BITS,
 * above that 2^BENCH_HIST_SUB_BITS linear buckets per power of two (relative
 * error < 1 / 2^BENCH_HIST_SUB_BITS, i.e. about 3 %).  Fixed size, no
 * pointers: it may be placed in shared memory and filled by another process.
 */
#define BENCH_HIST_SUB_BITS 5
#define BENCH_HIST_SUB      (1u << BENCH_HIST_SUB_BITS)
#define BENCH_HIST_GROUPS   (64 - BENCH_HIST_SUB_BITS)
#define BENCH_HIST_BUCKETS  ((BENCH_HIST_GROUPS + 1) * BENCH_HIST_SUB)

struct bench_hist {
	uint64_t count;
	uint64_t sum;
	uint64_t min;
	uint64_t max;
	uint64_t bucket[BENCH_HIST_BUCKETS];
};

void bench_hist_init(struct bench_hist *h);
void bench_hist_record(struct bench_hist *h, uint64_t ns);
void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src);
/* The value at quantile q (0 <= q <= 1; 0.999 is p99.9), 0 when empty.  Reported
 * as the upper edge of the bucket, clamped to max. */
uint64_t bench_hist_quantile(const struct bench_hist *h, double q);
double bench_hist_mean(const struct bench_hist *h);
/* A heap copy (free with bench_hist_free), NULL on ENOMEM. */
struct bench_hist *bench_hist_new(void);
void bench_hist_free(struct bench_hist *h);
/* Index <-> value mapping (the lowest value of bucket i). */
unsigned bench_hist_index(uint64_t ns);
uint64_t bench_hist_bucket_low(unsigned i);

/* ---- results ---- */

/*
 * Report one figure of this run: libshmq's value and the OS baseline's value
 * measured on the same work.  baseline_name NULL (and baseline_value ignored)
 * for figures without a baseline, such as the machine limits.  name is unique
 * within the subcommand and identical across runs; unit is printed as is
 * ("ns", "Mmsg/s", "GB/s").  Returns 0, -ENOMEM, -EEXIST (reported twice
 * in one run), or -EINVAL (name already used by another kind of figure).
 */
int bench_report(struct bench *b, const char *name, const char *unit, double shmq_value,
		 const char *baseline_name, double baseline_value, bool higher_is_better);

/* The same, for one point of a series measured at several message sizes
 * ("pipe throughput" at 8, 64, 4096 bytes): the HTML report draws one bar
 * group per size.  The figure's name is "SERIES SIZE" (e.g. "pipe 64B"). */
int bench_report_sized(struct bench *b, const char *series, uint64_t size, const char *unit,
		       double shmq_value, const char *baseline_name, double baseline_value,
		       bool higher_is_better);

/* Report latency distributions (ns): p50, p99, p99.9 and max of each
 * histogram, median over runs; base may be NULL with baseline_name NULL. */
int bench_report_latency(struct bench *b, const char *name, const struct bench_hist *shmq,
			 const char *baseline_name, const struct bench_hist *base);

/* ---- sweeps: one point measured several times in alternation ---- */

/*
 * A sweep point (a ring size, say) is measured BENCH_SWEEP_REPS times,
 * libshmq and its baseline alternating (A, B, A, B, ...), so that a change
 * in the machine's load hits both alike; each repetition gives one ratio.
 * bench_spread() gives the median and the range of such values (NAN ones,
 * a baseline that could not run, are skipped; all NAN: NAN).  A ratio whose
 * range straddles a claim does not support it.
 */
#define BENCH_SWEEP_REPS 3

struct bench_spread {
	double median, lo, hi;
};

struct bench_spread bench_spread(const double *v, int n);

/* Report one sized figure (bench_report_sized) measured BENCH_SWEEP_REPS
 * times in alternation: the medians of shmq[] and base[]; *ratio gets the
 * spread of the per-repetition ratios, for the caller's note. */
int bench_report_reps(struct bench *b, const char *series, uint64_t size, const char *unit,
		      const double *shmq, const char *baseline_name, const double *base,
		      bool higher_is_better, struct bench_spread *ratio);

/* ---- one-process pairs: what a put + get costs one core ---- */

/* A block of one kind of work, timed: adds its ns to *ns; 0 or -errno. */
typedef int (*bench_block_fn)(void *arg, int64_t *ns);

/* Run a and b (b NULL: a alone) rounds times each, alternating which goes
 * first (ABBA), so that drift hits both alike; a's blocks add to ns[0], b's
 * to ns[1].  Stops at the first error and returns it. */
int bench_alternate(int rounds, bench_block_fn a, void *a_arg, bench_block_fn b, void *b_arg,
		    int64_t ns[2]);

#define BENCH_PAIR_BATCH 32u /* puts, then as many gets: one batch */

/*
 * The body of a one-process pair block, as an expression of type int:
 * blocks batches of BENCH_PAIR_BATCH puts, then as many gets, of a TYPE
 * with a uint64_t w[] whose w[0] numbers the message (checked on the way
 * out).  PUT(ctx, TYPE *) and GET(ctx, TYPE *) are true when the call did
 * its work.  Adds the time to *(ns); 0, -EIO (a put failed) or -EPROTO (a
 * get failed or got another message).  A macro so that each transport's
 * calls are inlined into a loop of its own, as in a caller's.
 */
#define BENCH_PAIR_BLOCK(TYPE, blocks, ns, PUT, GET, ctx)                                     \
	({                                                                                     \
		TYPE bpb_msg = { { 0 } }, bpb_buf;                                             \
		int64_t bpb_t0 = bench_now_ns();                                               \
		int bpb_rc = 0;                                                                \
                                                                                               \
		for (uint64_t bpb_i = 0; bpb_i < (blocks) && !bpb_rc; bpb_i++) {               \
			uint64_t bpb_n = bpb_i * BENCH_PAIR_BATCH;                             \
                                                                                               \
			for (uint32_t bpb_j = 0; bpb_j < BENCH_PAIR_BATCH; bpb_j++) {          \
				bpb_msg.w[0] = bpb_n + bpb_j;                                  \
				if (!PUT((ctx), &bpb_msg)) {                                   \
					bpb_rc = -EIO;                                         \
					break;                                                 \
				}                                                              \
			}                                                                      \
			for (uint32_t bpb_j = 0; bpb_j < BENCH_PAIR_BATCH && !bpb_rc; bpb_j++) \
				if (!GET((ctx), &bpb_buf) || bpb_buf.w[0] != bpb_n + bpb_j)    \
					bpb_rc = -EPROTO;                                      \
		}                                                                              \
		*(ns) += bench_now_ns() - bpb_t0;                                              \
		bpb_rc;                                                                        \
	})

/* ---- subcommand table ---- */

typedef int (*bench_cmd_fn)(struct bench *b);

struct bench_cmd {
	const char *name;
	const char *help;
	bench_cmd_fn fn;
};

/* Declarations of every subcommand function, from bench_list.h. */
#define BENCH_SUBCOMMAND(name, help) int bench_##name(struct bench *b);
#include "bench_list.h"
#undef BENCH_SUBCOMMAND

/* ---- the driver (used by shmq-bench.c) ---- */

/* Parse argv, run the selected subcommand(s) and print.  Exit status. */
int bench_main(int argc, char **argv, const struct bench_cmd *cmds, size_t ncmds);

#endif /* SHMQ_BENCH_H */
