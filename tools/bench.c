/* SPDX-License-Identifier: MIT */
/*
 * shmq-bench harness: options, core pinning, two-sided runs, the latency
 * histogram, result collection over runs, and the output (table, JSON).
 * See bench.h for how a subcommand uses it.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <shmq.h>

#include "bench.h"
#include "bench_int.h"

/* ---------------------------------------------------------------- clock */

int64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---------------------------------------------------------------- options */

int bench_runs(const struct bench *b)
{
	return b->runs;
}

int bench_run_index(const struct bench *b)
{
	return b->run;
}

bool bench_quick(const struct bench *b)
{
	return b->quick;
}

uint64_t bench_scale(const struct bench *b, uint64_t full, uint64_t quick)
{
	return b->quick ? quick : full;
}

int bench_argc(const struct bench *b)
{
	return b->sub_argc;
}

char **bench_argv(const struct bench *b)
{
	return b->sub_argv;
}

bool bench_has_arg(const struct bench *b, const char *what)
{
	for (int i = 0; i < b->sub_argc; i++)
		if (strcmp(b->sub_argv[i], what) == 0)
			return true;
	return false;
}

int bench_arg_rings(const struct bench *b, unsigned long *out, size_t max)
{
	size_t n = 0;

	for (int i = 0; i < b->sub_argc && n < max; i++) {
		char *end;
		unsigned long v = strtoul(b->sub_argv[i], &end, 10);

		if (*end != '\0' || end == b->sub_argv[i])
			continue;
		if (v < 2 || v > 65536 || (v & (v - 1)) != 0)
			return -EINVAL;
		out[n++] = v;
	}
	return (int)n;
}

void bench_note(const struct bench *b, const char *fmt, ...)
{
	va_list ap;

	bench_progress_clear(b);
	fprintf(stderr, "shmq-bench: %s: ", b->cmd ? b->cmd->name : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---------------------------------------------------------------- cores */

int bench_ncpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return 1;
	int n = CPU_COUNT(&set);
	return n > 0 ? n : 1;
}

/* Fill b->cpu[] with the first two CPUs of the affinity mask unless --cpus
 * chose them; pinning is on when two distinct CPUs are available. */
int bench_cpus_setup(struct bench *b)
{
	if (sched_getaffinity(0, sizeof(b->orig_mask), &b->orig_mask) != 0)
		return -errno;
	if (b->cpus_given) {
		b->pinned = !b->no_pin && b->cpu[0] != b->cpu[1];
		return 0;
	}
	int found = 0;
	for (int c = 0; c < CPU_SETSIZE && found < 2; c++)
		if (CPU_ISSET(c, &b->orig_mask))
			b->cpu[found++] = c;
	b->pinned = !b->no_pin && found == 2;
	if (!b->pinned)
		b->cpu[0] = b->cpu[1] = -1;
	return 0;
}

bool bench_pinned(const struct bench *b)
{
	return b->pinned;
}

int bench_side_cpu(const struct bench *b, int side)
{
	return b->pinned ? b->cpu[side & 1] : -1;
}

int bench_pin_side(const struct bench *b, int side)
{
	cpu_set_t set;

	if (!b->pinned)
		return 0;
	CPU_ZERO(&set);
	CPU_SET(b->cpu[side & 1], &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0)
		return -errno;
	return 0;
}

void bench_unpin(const struct bench *b)
{
	if (b->pinned)
		(void)sched_setaffinity(0, sizeof(b->orig_mask), &b->orig_mask);
}

/* ---------------------------------------------------------------- two sides */

struct bench_side_arg {
	const struct bench *b;
	bench_side_fn fn;
	void *arg;
	int ret;
};

static void *bench_side1_thread(void *p)
{
	struct bench_side_arg *s = p;
	int err = bench_pin_side(s->b, 1);

	s->ret = err ? err : s->fn(s->arg, 1);
	return NULL;
}

int bench_pair_threads(const struct bench *b, bench_side_fn fn, void *arg)
{
	struct bench_side_arg s1 = { .b = b, .fn = fn, .arg = arg, .ret = 0 };
	pthread_t t;
	int err = pthread_create(&t, NULL, bench_side1_thread, &s1);

	if (err)
		return -err;
	int r0 = bench_pin_side(b, 0);
	if (r0 == 0)
		r0 = fn(arg, 0);
	pthread_join(t, NULL);
	bench_unpin(b);
	return r0 ? r0 : s1.ret;
}

pid_t bench_proc_start(const struct bench *b, bench_side_fn fn, void *arg)
{
	fflush(NULL); /* nothing buffered may be written twice */
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int r = bench_pin_side(b, 1);
		if (r == 0)
			r = fn(arg, 1);
		_exit(r == 0 ? 0 : (r < 0 ? ((-r) & 0xff ? (-r) & 0xff : 1) : 1));
	}
	return pid;
}

int bench_proc_wait(pid_t pid, int64_t timeout_ns)
{
	int64_t deadline = bench_now_ns() + timeout_ns;
	int status;

	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR)
			return -errno;
		if (bench_now_ns() > deadline) {
			kill(pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			return -ETIMEDOUT;
		}
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EPROTO;
}

int bench_pair_procs(const struct bench *b, bench_side_fn fn, void *arg)
{
	pid_t pid = bench_proc_start(b, fn, arg);

	if (pid < 0)
		return (int)pid;
	int r0 = bench_pin_side(b, 0);
	if (r0 == 0)
		r0 = fn(arg, 0);
	int r1 = bench_proc_wait(pid, r0 ? 5000000000LL : 600000000000LL);
	bench_unpin(b);
	return r0 ? r0 : r1;
}

void *bench_shared_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	memset(p, 0, size); /* pre-fault: no page fault inside a measurement */
	return p;
}

void bench_shared_free(void *p, size_t size)
{
	if (p)
		munmap(p, size);
}

/* ---------------------------------------------------------------- histogram */

void bench_hist_init(struct bench_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

unsigned bench_hist_index(uint64_t ns)
{
	if (ns < BENCH_HIST_SUB)
		return (unsigned)ns;
	unsigned msb = 63u - (unsigned)__builtin_clzll(ns);
	unsigned shift = msb - BENCH_HIST_SUB_BITS;
	return (shift + 1) * BENCH_HIST_SUB + (unsigned)((ns >> shift) - BENCH_HIST_SUB);
}

uint64_t bench_hist_bucket_low(unsigned i)
{
	if (i < BENCH_HIST_SUB)
		return i;
	unsigned shift = i / BENCH_HIST_SUB - 1;
	return (uint64_t)(BENCH_HIST_SUB + i % BENCH_HIST_SUB) << shift;
}

static uint64_t bench_hist_bucket_high(unsigned i)
{
	if (i < BENCH_HIST_SUB)
		return i;
	unsigned shift = i / BENCH_HIST_SUB - 1;
	return bench_hist_bucket_low(i) + ((uint64_t)1 << shift) - 1;
}

void bench_hist_record(struct bench_hist *h, uint64_t ns)
{
	h->bucket[bench_hist_index(ns)]++;
	h->count++;
	h->sum += ns;
	if (ns < h->min)
		h->min = ns;
	if (ns > h->max)
		h->max = ns;
}

void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src)
{
	for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++)
		dst->bucket[i] += src->bucket[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->count && src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t bench_hist_quantile(const struct bench_hist *h, double q)
{
	if (h->count == 0)
		return 0;
	if (q >= 1.0)
		return h->max;
	if (q < 0)
		q = 0;
	uint64_t rank = (uint64_t)ceil(q * (double)h->count);
	if (rank == 0)
		rank = 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= rank) {
			uint64_t v = bench_hist_bucket_high(i);
			if (v > h->max)
				v = h->max;
			if (v < h->min)
				v = h->min;
			return v;
		}
	}
	return h->max;
}

double bench_hist_mean(const struct bench_hist *h)
{
	return h->count ? (double)h->sum / (double)h->count : 0.0;
}

struct bench_hist *bench_hist_new(void)
{
	struct bench_hist *h = malloc(sizeof(*h));

	if (h)
		bench_hist_init(h);
	return h;
}

void bench_hist_free(struct bench_hist *h)
{
	free(h);
}

/* ---------------------------------------------------------------- results */

static char *bench_strdup0(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void bench_result_free(struct bench_result *r)
{
	free(r->cmd);
	free(r->name);
	free(r->series);
	free(r->unit);
	free(r->base_name);
	free(r->shmq);
	free(r->base);
	bench_hist_free(r->shmq_hist);
	bench_hist_free(r->base_hist);
	free(r);
}

void bench_results_free(struct bench *b)
{
	for (size_t i = 0; i < b->nresults; i++)
		bench_result_free(b->results[i]);
	free(b->results);
	b->results = NULL;
	b->nresults = b->cap_results = 0;
}

static struct bench_result *bench_result_find(struct bench *b, const char *name)
{
	for (size_t i = 0; i < b->nresults; i++) {
		struct bench_result *r = b->results[i];
		if (strcmp(r->cmd, b->cmd->name) == 0 && strcmp(r->name, name) == 0)
			return r;
	}
	return NULL;
}

static int bench_result_push(struct bench *b, struct bench_result *r)
{
	if (b->nresults == b->cap_results) {
		size_t cap = b->cap_results ? b->cap_results * 2 : 16;
		struct bench_result **v = realloc(b->results, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		b->results = v;
		b->cap_results = cap;
	}
	b->results[b->nresults++] = r;
	return 0;
}

/* Find the figure of this subcommand called name, or make it: 0, -EINVAL
 * when name was reported before as another kind, -ENOMEM. */
static int bench_result_get(struct bench *b, const char *name, const char *series, uint64_t size,
			    const char *unit, const char *baseline_name, bool hib, int kind,
			    struct bench_result **out)
{
	struct bench_result *r = bench_result_find(b, name);

	if (r) {
		*out = r;
		return r->kind == kind ? 0 : -EINVAL;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->kind = kind;
	r->size = size;
	r->higher_is_better = hib;
	r->cmd = bench_strdup0(b->cmd->name);
	r->name = bench_strdup0(name);
	r->series = bench_strdup0(series);
	r->unit = bench_strdup0(unit);
	r->base_name = bench_strdup0(baseline_name);
	r->shmq = calloc((size_t)b->runs * BENCH_NVAL, sizeof(double));
	r->base = calloc((size_t)b->runs * BENCH_NVAL, sizeof(double));
	if (!r->cmd || !r->name || !r->unit || !r->shmq || !r->base ||
	    (series && !r->series) || (baseline_name && !r->base_name) ||
	    bench_result_push(b, r) != 0) {
		bench_result_free(r);
		return -ENOMEM;
	}
	*out = r;
	return 0;
}

static int bench_report_one(struct bench *b, const char *name, const char *series, uint64_t size,
			    const char *unit, double sv, const char *bn, double bv, bool hib)
{
	struct bench_result *r;
	int err = bench_result_get(b, name, series, size, unit, bn, hib, BENCH_SCALAR, &r);

	if (err)
		return err;
	if (r->n >= b->runs)
		return -EEXIST; /* reported twice in one run */
	r->shmq[r->n * BENCH_NVAL] = sv;
	r->base[r->n * BENCH_NVAL] = bn ? bv : NAN;
	r->n++;
	return 0;
}

int bench_report(struct bench *b, const char *name, const char *unit, double shmq_value,
		 const char *baseline_name, double baseline_value, bool higher_is_better)
{
	return bench_report_one(b, name, NULL, 0, unit, shmq_value, baseline_name,
				baseline_value, higher_is_better);
}

int bench_report_sized(struct bench *b, const char *series, uint64_t size, const char *unit,
		       double shmq_value, const char *baseline_name, double baseline_value,
		       bool higher_is_better)
{
	char name[256];

	bench_size_str(size, name, sizeof(name), series);
	return bench_report_one(b, name, series, size, unit, shmq_value, baseline_name,
				baseline_value, higher_is_better);
}

static const double bench_quantiles[BENCH_NVAL] = { 0.5, 0.99, 0.999, 1.0 };
const char *const bench_quantile_names[BENCH_NVAL] = { "p50", "p99", "p99.9", "max" };

static void bench_hist_values(const struct bench_hist *h, double *v)
{
	for (int k = 0; k < BENCH_NVAL; k++)
		v[k] = h ? (double)bench_hist_quantile(h, bench_quantiles[k]) : NAN;
}

static int bench_hist_keep(struct bench_hist **dst, const struct bench_hist *src)
{
	if (!src)
		return 0;
	if (!*dst && !(*dst = bench_hist_new()))
		return -ENOMEM;
	bench_hist_merge(*dst, src);
	return 0;
}

int bench_report_latency(struct bench *b, const char *name, const struct bench_hist *shmq,
			 const char *baseline_name, const struct bench_hist *base)
{
	if (!shmq || (baseline_name && !base))
		return -EINVAL;
	struct bench_result *r;
	int err = bench_result_get(b, name, NULL, 0, "ns", baseline_name, false, BENCH_LATENCY, &r);
	if (err)
		return err;
	if (r->n >= b->runs)
		return -EEXIST;
	bench_hist_values(shmq, &r->shmq[r->n * BENCH_NVAL]);
	bench_hist_values(baseline_name ? base : NULL, &r->base[r->n * BENCH_NVAL]);
	if (bench_hist_keep(&r->shmq_hist, shmq) || (baseline_name && bench_hist_keep(&r->base_hist, base)))
		return -ENOMEM;
	r->n++;
	return 0;
}

/* ---------------------------------------------------------------- statistics */

static int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median of the finite values among v[0], v[stride], ... (n of them); NAN if none. */
double bench_median(const double *v, int n, int stride)
{
	double tmp[BENCH_RUNS_MAX];
	int m = 0;

	for (int i = 0; i < n && m < BENCH_RUNS_MAX; i++)
		if (isfinite(v[i * stride]))
			tmp[m++] = v[i * stride];
	if (m == 0)
		return NAN;
	qsort(tmp, (size_t)m, sizeof(double), bench_cmp_double);
	return m % 2 ? tmp[m / 2] : (tmp[m / 2 - 1] + tmp[m / 2]) / 2;
}

struct bench_spread bench_spread(const double *v, int n)
{
	struct bench_spread s = { bench_median(v, n, 1), NAN, NAN };

	for (int i = 0; i < n; i++) {
		if (!isfinite(v[i]))
			continue;
		s.lo = isfinite(s.lo) && s.lo < v[i] ? s.lo : v[i];
		s.hi = isfinite(s.hi) && s.hi > v[i] ? s.hi : v[i];
	}
	return s;
}

/* "How many times better libshmq is" from one pair of figures; NAN when
 * either is missing or not positive. */
double bench_ratio_of(double s, double o, bool higher_is_better)
{
	if (!(s > 0) || !(o > 0) || !isfinite(s) || !isfinite(o))
		return NAN;
	return higher_is_better ? s / o : o / s;
}

int bench_report_reps(struct bench *b, const char *series, uint64_t size, const char *unit,
		      const double *shmq, const char *baseline_name, const double *base,
		      bool higher_is_better, struct bench_spread *ratio)
{
	double r[BENCH_SWEEP_REPS];

	for (int i = 0; i < BENCH_SWEEP_REPS; i++)
		r[i] = bench_ratio_of(shmq[i], base[i], higher_is_better);
	*ratio = bench_spread(r, BENCH_SWEEP_REPS);
	return bench_report_sized(b, series, size, unit, bench_spread(shmq, BENCH_SWEEP_REPS).median,
				  baseline_name, bench_spread(base, BENCH_SWEEP_REPS).median,
				  higher_is_better);
}

int bench_alternate(int rounds, bench_block_fn a, void *a_arg, bench_block_fn b, void *b_arg,
		    int64_t ns[2])
{
	int rc = 0;

	for (int i = 0; i < rounds && rc == 0; i++) {
		bool b_first = b && i % 2;

		if (b_first)
			rc = b(b_arg, &ns[1]);
		rc = rc ? rc : a(a_arg, &ns[0]);
		if (b && !b_first)
			rc = rc ? rc : b(b_arg, &ns[1]);
	}
	return rc;
}

/* The ratio of the two medians over runs, for value k (see bench.h). */
double bench_ratio(const struct bench_result *r, int k)
{
	if (!r->base_name)
		return NAN;
	return bench_ratio_of(bench_median(r->shmq + k, r->n, BENCH_NVAL),
			      bench_median(r->base + k, r->n, BENCH_NVAL), r->higher_is_better);
}

/* ---------------------------------------------------------------- formatting */

/* "series 64B", "series 4KiB", or just series when size is 0. */
void bench_size_str(uint64_t size, char *buf, size_t len, const char *series)
{
	const char *sep = series && *series ? " " : "";

	if (!series)
		series = "";
	if (size == 0)
		snprintf(buf, len, "%s", series);
	else if (size % (1u << 20) == 0)
		snprintf(buf, len, "%s%s%lluMiB", series, sep, (unsigned long long)(size >> 20));
	else if (size % 1024 == 0)
		snprintf(buf, len, "%s%s%lluKiB", series, sep, (unsigned long long)(size >> 10));
	else
		snprintf(buf, len, "%s%s%lluB", series, sep, (unsigned long long)size);
}

/* A number with about four significant digits, never in exponent form. */
void bench_num_str(double v, char *buf, size_t len)
{
	double a = fabs(v);

	if (!isfinite(v))
		snprintf(buf, len, "-");
	else if (a >= 1000)
		snprintf(buf, len, "%.0f", v);
	else if (a >= 100)
		snprintf(buf, len, "%.1f", v);
	else if (a >= 10)
		snprintf(buf, len, "%.2f", v);
	else
		snprintf(buf, len, "%.3f", v);
}

/* "value unit" for people: nanosecond figures of 10 us and more are shown
 * in us, ms or s so that tails stay readable; "-" for a missing value. */
void bench_value_str(double v, const char *unit, char *buf, size_t len)
{
	static const char *const units[] = { "ns", "us", "ms", "s" };
	char num[48];
	int u = 0;

	if (!isfinite(v)) {
		snprintf(buf, len, "-");
		return;
	}
	if (strcmp(unit, "ns") == 0)
		for (; fabs(v) >= 10000 && u < 3; u++)
			v /= 1000;
	bench_num_str(v, num, sizeof(num));
	snprintf(buf, len, "%s %s", num, u ? units[u] : unit);
}

/* ---------------------------------------------------------------- progress */

void bench_progress(const struct bench *b, const char *what)
{
	if (!b->progress)
		return;
	fprintf(stderr, "\r\033[K[%d/%zu %s] run %d/%d %s", b->cmd_index + 1, b->nstatus,
		b->cmd ? b->cmd->name : "", b->run + 1, b->runs, what ? what : "");
	fflush(stderr);
}

void bench_progress_clear(const struct bench *b)
{
	if (!b->progress)
		return;
	fprintf(stderr, "\r\033[K");
	fflush(stderr);
}
