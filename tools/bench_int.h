/* SPDX-License-Identifier: MIT */
/* shmq-bench harness internals: the context and the collected results.
 * Subcommands use bench.h only. */
#ifndef SHMQ_BENCH_INT_H
#define SHMQ_BENCH_INT_H

#include <sched.h>
#include <stdio.h>

#include "bench.h"

#define BENCH_RUNS_MAX 101
#define BENCH_NVAL 4 /* scalar: [0]; latency: p50, p99, p99.9, max */

enum bench_kind { BENCH_SCALAR = 0, BENCH_LATENCY = 1 };

/* One figure, accumulated over runs. */
struct bench_result {
	char *cmd;        /* subcommand that reported it */
	char *name;       /* unique within cmd */
	char *series;     /* bench_report_sized's series, or NULL */
	char *unit;
	char *base_name;  /* NULL: no baseline */
	uint64_t size;    /* message size of a series point, else 0 */
	bool higher_is_better;
	int kind;
	int n;            /* runs reported so far */
	double *shmq;     /* [run * BENCH_NVAL + k] */
	double *base;
	struct bench_hist *shmq_hist; /* latency: merged over runs */
	struct bench_hist *base_hist;
};

/* Per-subcommand outcome. */
struct bench_cmd_status {
	const struct bench_cmd *cmd;
	int err;          /* 0, or the first error of a run */
	int runs_ok;
	int64_t elapsed_ns;
};

struct bench {
	/* options */
	int runs;
	bool quick;
	bool json;
	bool no_pin;
	bool cpus_given;
	bool progress;    /* stderr is a terminal */
	const char *report_dir;
	int cpu[2];
	bool pinned;
	cpu_set_t orig_mask;
	int sub_argc;
	char **sub_argv;

	/* state */
	const struct bench_cmd *cmd; /* running now */
	int run;
	int cmd_index;    /* of the running subcommand, in status[] */

	struct bench_result **results;
	size_t nresults, cap_results;
	struct bench_cmd_status *status;
	size_t nstatus;
	bool all;         /* `shmq-bench all`: add the summary */
};

extern const char *const bench_quantile_names[BENCH_NVAL];

int bench_cpus_setup(struct bench *b);
void bench_results_free(struct bench *b);
double bench_median(const double *v, int n, int stride);
double bench_ratio(const struct bench_result *r, int k);
double bench_ratio_of(double s, double o, bool higher_is_better);
void bench_size_str(uint64_t size, char *buf, size_t len, const char *series);
void bench_num_str(double v, char *buf, size_t len);
void bench_value_str(double v, const char *unit, char *buf, size_t len);
void bench_progress(const struct bench *b, const char *what);
void bench_progress_clear(const struct bench *b);

/* bench_out.c */
void bench_json_str(FILE *f, const char *s);
void bench_json_num(FILE *f, double v);
void bench_cpu_model(char *buf, size_t len);
const char *bench_allocator(void);
void bench_print_table(const struct bench *b, FILE *f, const struct bench_cmd_status *st);
void bench_print_summary(const struct bench *b, FILE *f);
void bench_print_json(const struct bench *b, FILE *f);
int bench_write_report(const struct bench *b, const char *dir);

#endif
